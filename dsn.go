package hooks

// DSNs are shown by what their driver parsed, never as text: a database
// hook is named by its target, user@host:port/database, and a DSN that does
// not parse is never shown at all, since the drivers' parse errors may quote
// it (a password included).

import (
	"errors"
	"net"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
)

// redactedMark replaces a password wherever one could show.
const redactedMark = "xxxxx"

// unparsableTarget is the target shown for a DSN that does not parse.
const unparsableTarget = "(unparsable DSN)"

// The errors of DSNs that do not parse. They hold no part of the DSN: the
// drivers' own errors may quote it, so they are dropped.
var (
	errPgDSN    = errors.New(`cannot parse PostgreSQL connection string (want keyword/value "host=... user=... dbname=..." or URL "postgres://user@host:port/dbname")`)
	errMySQLDSN = errors.New(`cannot parse MySQL DSN (want "user:password@tcp(host:port)/dbname?param=value")`)
	// A host with "@" is most likely the end of a password: libpq ends the
	// user info of a URL at its first "@", so "postgres://u:p@ss@db/x" has
	// the password "p" and the host "ss@db" — which a target would show.
	errDSNHostAt = errors.New(`a host name contains "@": write an "@" in the password as %40`)
)

// parsePgDSN parses a libpq connection string as pgx does (PG* environment
// variables and the password file included). Its error holds no part of dsn.
func parsePgDSN(dsn string) (*pgx.ConnConfig, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, errPgDSN
	}
	if strings.Contains(cfg.Host, "@") {
		return nil, errDSNHostAt
	}
	for _, fb := range cfg.Fallbacks {
		if strings.Contains(fb.Host, "@") {
			return nil, errDSNHostAt
		}
	}
	return cfg, nil
}

// parseMySQLDSN parses a go-sql-driver/mysql DSN. Its error holds no part of
// dsn.
func parseMySQLDSN(dsn string) (*mysql.Config, error) {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, errMySQLDSN
	}
	if strings.Contains(cfg.Addr, "@") {
		return nil, errDSNHostAt
	}
	return cfg, nil
}

// pgTarget names the server and database of cfg: user@host:port/database,
// of the first host if there are several.
func pgTarget(cfg *pgx.ConnConfig) string {
	return target(cfg.User, net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port))), cfg.Database)
}

// mysqlTarget names the server and database of cfg: user@host:port/database
// over TCP, user@unix(/path)/database over a Unix socket.
func mysqlTarget(cfg *mysql.Config) string {
	addr := cfg.Addr
	if cfg.Net != "tcp" {
		addr = cfg.Net + "(" + cfg.Addr + ")"
	}
	return target(cfg.User, addr, cfg.DBName)
}

// target joins user, address and database as user@addr/database, leaving
// out what is empty, and quotes the result if it holds a character that
// would break a line of a report.
func target(user, addr, database string) string {
	s := addr
	if user != "" {
		s = user + "@" + s
	}
	if database != "" {
		s += "/" + database
	}
	if !utf8.ValidString(s) || strings.ContainsFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) {
		s = strconv.Quote(s)
	}
	return s
}

// dsnTarget parses dsn with the driver of hook type typ and returns its
// target (see pgTarget, mysqlTarget), or an error that holds no part of dsn.
// For other types it returns "" and no error.
func dsnTarget(typ, dsn string) (string, error) {
	switch typ {
	case TypePostgresCheckpoint:
		cfg, err := parsePgDSN(dsn)
		if err != nil {
			return "", err
		}
		return pgTarget(cfg), nil
	case TypeMySQLLockTables:
		cfg, err := parseMySQLDSN(dsn)
		if err != nil {
			return "", err
		}
		return mysqlTarget(cfg), nil
	}
	return "", nil
}

// secretRedactedError is an error whose text never shows secret. It unwraps
// to the original error, so errors.As still finds a *pgconn.PgError or a
// *mysql.MySQLError.
type secretRedactedError struct {
	err    error
	secret string
}

func (e *secretRedactedError) Error() string {
	return strings.ReplaceAll(e.err.Error(), e.secret, redactedMark)
}

func (e *secretRedactedError) Unwrap() error { return e.err }

// redactSecret returns err with every occurrence of secret in its text
// replaced by redactedMark. The drivers do not put passwords into their
// errors once connected; this makes sure of it.
func redactSecret(err error, secret string) error {
	if err == nil || secret == "" {
		return err
	}
	return &secretRedactedError{err: err, secret: secret}
}

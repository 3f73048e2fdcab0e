package hooks

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"go.yaml.in/yaml/v3"
)

// The hook types, as written in the "type" key of a hook's configuration.
const (
	// TypeCommand runs an executable (see CommandHook).
	TypeCommand = "command"
	// TypePostgresCheckpoint runs CHECKPOINT on a PostgreSQL server before the
	// snapshot (see PgChkptHook).
	TypePostgresCheckpoint = "postgres-checkpoint"
	// TypeMySQLLockTables holds FLUSH TABLES WITH READ LOCK on a MySQL or
	// MariaDB server across the snapshot (see MySQLLockTables).
	TypeMySQLLockTables = "mysql-lock-tables"
	// TypeMariaDBBackupStage holds MariaDB's backup locks (BACKUP STAGE up to
	// BLOCK_COMMIT) across the snapshot; it takes the same keys as
	// TypeMySQLLockTables (see MariaDBBackupStage).
	TypeMariaDBBackupStage = "mariadb-backup-stage"
)

// DefaultHookTimeout is the timeout of a hook whose configuration gives none
// (or gives 0).
const DefaultHookTimeout = 30 * time.Second

// HookConfig is one entry of a hook list, as written in a configuration file
// (see ParseHookList) or built in Go. Validate checks it; WithDefaults fills
// in what was left out. HookFromConfig and ListFromConfig do both.
//
// String and LogValue hide the password of DSN; MarshalJSON and the YAML
// encoding do not, because they are meant to write configuration files.
type HookConfig struct {
	// Type is the kind of hook, YAML key "type": TypeCommand,
	// TypePostgresCheckpoint, TypeMySQLLockTables or TypeMariaDBBackupStage.
	// Required.
	Type string `yaml:"type" json:"type"`

	// ErrIsFatal, YAML key "err_is_fatal", makes a failure of the hook's Pre
	// edge stop the plan: no later Pre edge and no callback run (the Post
	// edges of the hooks before it still do). Default false.
	ErrIsFatal bool `yaml:"err_is_fatal,omitempty" json:"err_is_fatal,omitempty"`

	// Timeout bounds each edge of the hook, YAML key "timeout", written as a
	// Go duration such as "30s" or "1m30s". 0 means DefaultHookTimeout;
	// a negative timeout is an error.
	Timeout time.Duration `yaml:"timeout,omitempty" json:"timeout,omitempty"`

	// Filesystems, YAML key "filesystems", maps dataset patterns to whether
	// the hook runs for the datasets they match (see DatasetMapFilter).
	// Optional for command hooks, where it defaults to {"<": true} (every
	// dataset); required and non-empty for the database hooks.
	Filesystems map[string]bool `yaml:"filesystems,omitempty" json:"filesystems,omitempty"`

	// PostOnPreError, YAML key "post_on_pre_error", makes the hook's Post edge
	// run whenever its Pre edge ran, even if the Pre edge failed. Default
	// false, as in zrepl: a failed Pre edge skips its Post edge.
	PostOnPreError bool `yaml:"post_on_pre_error,omitempty" json:"post_on_pre_error,omitempty"`

	// Path, YAML key "path", is the absolute path of the executable of a
	// command hook. Required for command hooks, not allowed for the others.
	Path string `yaml:"path,omitempty" json:"path,omitempty"`

	// DSN, YAML key "dsn", says how to connect to the database of a
	// postgres-checkpoint hook (a libpq connection string: keyword/value
	// "host=db user=backup password=..." or URL "postgres://...") or of a
	// mysql-lock-tables or mariadb-backup-stage hook (a go-sql-driver/mysql
	// DSN "user:password@tcp(db:3306)/"). Required for those, not allowed for
	// command hooks.
	DSN string `yaml:"dsn,omitempty" json:"dsn,omitempty"`
}

// HookList is a list of hook configurations in the order the hooks run
// their Pre edges.
type HookList []HookConfig

// FieldError is an error about one field of a HookConfig, named by its YAML
// key (for instance "path" or "dsn").
type FieldError struct {
	Field string // the YAML key of the field
	Err   error  // what is wrong with it
}

// Error returns "<field>: <err>".
func (e *FieldError) Error() string {
	return fieldLabel(e.Field) + ": " + errText(e.Err)
}

// Unwrap returns e.Err.
func (e *FieldError) Unwrap() error { return e.Err }

// ConfigError is an error found by ParseHookList, with its position:
//
//	hook #2 (line 7): path: "bin/x" is not absolute
//
// The parts that are unknown or do not apply are left out: an error about
// the document as a whole has no hook number ("line 1: ..."), an error about
// a hook as a whole has no field.
type ConfigError struct {
	Hook  int    // 1-based number of the hook in the list; 0 outside any hook
	Field string // the YAML key concerned; "" for a hook or document as a whole
	Line  int    // 1-based line of the offending value or key; 0 if unknown
	Err   error  // what is wrong
}

// Error returns the error in the format shown at ConfigError.
func (e *ConfigError) Error() string {
	var b strings.Builder
	switch {
	case e.Hook > 0 && e.Line > 0:
		fmt.Fprintf(&b, "hook #%d (line %d): ", e.Hook, e.Line)
	case e.Hook > 0:
		fmt.Fprintf(&b, "hook #%d: ", e.Hook)
	case e.Line > 0:
		fmt.Fprintf(&b, "line %d: ", e.Line)
	}
	if e.Field != "" {
		b.WriteString(fieldLabel(e.Field))
		b.WriteString(": ")
	}
	b.WriteString(errText(e.Err))
	return b.String()
}

// Unwrap returns e.Err.
func (e *ConfigError) Unwrap() error { return e.Err }

// plainField matches the field names that an error message shows unquoted.
var plainField = regexp.MustCompile(`^[A-Za-z0-9_<>/.:-]+$`)

// fieldLabel returns the name of a field for an error message, quoted when
// it is not a plain word (an unknown key may hold anything).
func fieldLabel(field string) string {
	if plainField.MatchString(field) {
		return field
	}
	return strconv.Quote(field)
}

func errText(err error) string {
	if err == nil {
		return "invalid"
	}
	return err.Error()
}

// hookTypes lists the known types for error messages.
var hookTypes = fmt.Sprintf("%q, %q, %q or %q", TypeCommand, TypePostgresCheckpoint, TypeMySQLLockTables, TypeMariaDBBackupStage)

// Validate checks c as HookFromConfig needs it, whether c was built in Go or
// parsed: the type is known; a command hook has an absolute Path and no DSN;
// a database hook has a DSN that its driver can parse (pgx.ParseConfig,
// mysql.ParseDSN), a non-empty Filesystems and no Path; Timeout is not
// negative; every pattern of Filesystems is valid (see
// DatasetMapFilterFromConfig).
//
// It returns nil or a *FieldError about the first problem, in the order of
// the fields of HookConfig. The error never contains the password of the DSN,
// not even when the DSN is malformed. Validate does not apply defaults: it
// accepts a zero Timeout and, for command hooks, nil Filesystems.
func (c HookConfig) Validate() error {
	if ps := c.problems(); len(ps) > 0 {
		return &FieldError{Field: ps[0].field, Err: ps[0].err}
	}
	return nil
}

// problem is one finding of HookConfig.problems.
type problem struct {
	field   string // YAML key
	pattern string // for field "filesystems": the pattern at fault, if any
	err     error
}

// problems returns everything that is wrong with c, in field order; for
// Filesystems, the patterns in sorted order.
func (c HookConfig) problems() []problem {
	var ps []problem
	add := func(field, format string, args ...any) {
		ps = append(ps, problem{field: field, err: fmt.Errorf(format, args...)})
	}

	switch c.Type {
	case TypeCommand, TypePostgresCheckpoint, TypeMySQLLockTables, TypeMariaDBBackupStage:
	case "":
		add("type", "missing (want %s)", hookTypes)
	default:
		add("type", "unknown hook type %q (want %s)", c.Type, hookTypes)
	}
	isDB := c.Type == TypePostgresCheckpoint || c.Type == TypeMySQLLockTables || c.Type == TypeMariaDBBackupStage

	if c.Timeout < 0 {
		add("timeout", "%v is negative", c.Timeout)
	}

	if isDB && len(c.Filesystems) == 0 {
		add("filesystems", "required for a %s hook: list the datasets whose snapshots need the database quiesced", c.Type)
	}
	for _, pattern := range sortedPatterns(c.Filesystems) {
		if _, _, err := parseFilterPattern(pattern); err != nil {
			ps = append(ps, problem{field: "filesystems", pattern: pattern, err: err})
		}
	}

	switch {
	case c.Type == TypeCommand:
		switch {
		case c.Path == "":
			add("path", "required for a command hook")
		case strings.IndexByte(c.Path, 0) >= 0:
			add("path", "contains a NUL byte")
		case !filepath.IsAbs(c.Path):
			add("path", "%q is not absolute", c.Path)
		}
		if c.DSN != "" {
			add("dsn", "not allowed for a command hook")
		}
	case isDB:
		if c.Path != "" {
			add("path", "not allowed for a %s hook", c.Type)
		}
		if c.DSN == "" {
			add("dsn", "required for a %s hook", c.Type)
		} else if err := checkDSN(c.Type, c.DSN); err != nil {
			ps = append(ps, problem{field: "dsn", err: err})
		}
	}
	return ps
}

// WithDefaults returns c with the defaults applied: a zero Timeout becomes
// DefaultHookTimeout, and a command hook without Filesystems (nil or empty)
// gets {"<": true}, every dataset. The Filesystems of the result is a copy,
// so the result shares no map with c. It does not validate c.
func (c HookConfig) WithDefaults() HookConfig {
	if c.Timeout == 0 {
		c.Timeout = DefaultHookTimeout
	}
	switch {
	case c.Type == TypeCommand && len(c.Filesystems) == 0:
		c.Filesystems = map[string]bool{subtreeMarker: true}
	case c.Filesystems != nil:
		fs := make(map[string]bool, len(c.Filesystems))
		for k, v := range c.Filesystems {
			fs[k] = v
		}
		c.Filesystems = fs
	}
	return c
}

// String describes c on one line, as key=value pairs, with the password of
// the DSN replaced by RedactDSN.
func (c HookConfig) String() string {
	var b strings.Builder
	field := func(key, value string) {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(key)
		b.WriteByte('=')
		if value == "" || strings.ContainsAny(value, " \"=\\") || !strconv.CanBackquote(value) {
			value = strconv.Quote(value)
		}
		b.WriteString(value)
	}
	field("type", c.Type)
	if c.Path != "" {
		field("path", c.Path)
	}
	if c.DSN != "" {
		field("dsn", RedactDSN(c.Type, c.DSN))
	}
	field("timeout", c.Timeout.String())
	field("err_is_fatal", strconv.FormatBool(c.ErrIsFatal))
	field("post_on_pre_error", strconv.FormatBool(c.PostOnPreError))
	if c.Filesystems != nil {
		field("filesystems", formatPatterns(c.Filesystems))
	}
	return b.String()
}

// LogValue implements slog.LogValuer: c is logged as a group of its fields,
// with the password of the DSN replaced by RedactDSN.
func (c HookConfig) LogValue() slog.Value {
	attrs := []slog.Attr{slog.String("type", c.Type)}
	if c.Path != "" {
		attrs = append(attrs, slog.String("path", c.Path))
	}
	if c.DSN != "" {
		attrs = append(attrs, slog.String("dsn", RedactDSN(c.Type, c.DSN)))
	}
	attrs = append(attrs,
		slog.Duration("timeout", c.Timeout),
		slog.Bool("err_is_fatal", c.ErrIsFatal),
		slog.Bool("post_on_pre_error", c.PostOnPreError),
	)
	if c.Filesystems != nil {
		attrs = append(attrs, slog.String("filesystems", formatPatterns(c.Filesystems)))
	}
	return slog.GroupValue(attrs...)
}

// MarshalJSON encodes c as the JSON object that ParseHookList reads back:
// the keys of the YAML form, with the timeout as a duration string ("30s")
// rather than the nanoseconds encoding/json would write. The DSN is written
// as it is, password included.
func (c HookConfig) MarshalJSON() ([]byte, error) {
	type fields HookConfig // the fields without the methods
	var timeout string
	if c.Timeout != 0 {
		timeout = c.Timeout.String()
	}
	return json.Marshal(struct {
		fields
		Timeout string `json:"timeout,omitempty"`
	}{fields(c), timeout})
}

// --- DSNs ---------------------------------------------------------------

// redactedPassword replaces a password in RedactDSN.
const redactedPassword = "xxxxx"

// checkDSN parses dsn with the parser of the driver of the hook type typ and
// returns an error whose text never contains the password: the drivers'
// errors can quote the DSN, or parts of a malformed one, so their text is
// reduced to static reasons.
func checkDSN(typ, dsn string) error {
	var what, reason string
	switch typ {
	case TypePostgresCheckpoint:
		_, err := pgx.ParseConfig(dsn)
		if err == nil {
			return nil
		}
		what, reason = "cannot parse PostgreSQL connection string", pgParseReason(err)
	case TypeMySQLLockTables, TypeMariaDBBackupStage:
		_, err := mysql.ParseDSN(dsn)
		if err == nil {
			return nil
		}
		what, reason = "cannot parse MySQL DSN", mysqlParseReason(err)
	default:
		return nil
	}
	if reason != "" {
		// Last line of defence, should a driver change its messages: a
		// reason that contains the password, or a part of the DSN that may
		// be one, is dropped. (A password of a few characters may occur in
		// any text by chance; the reasons are static text anyway.)
		for _, secret := range dsnSecrets(typ, dsn) {
			if len(secret) >= 4 && strings.Contains(reason, secret) {
				reason = ""
				break
			}
		}
	}
	if reason == "" {
		return errors.New(what)
	}
	return errors.New(what + ": " + reason)
}

// pgParseReason extracts from an error of pgx.ParseConfig its static
// reason, without the connection string and without values.
func pgParseReason(err error) string {
	var pce *pgconn.ParseConfigError
	if !errors.As(err, &pce) {
		return ""
	}
	// The message of a ParseConfigError is "cannot parse `<dsn>`: <msg>" or
	// "... <msg> (<inner error>)". A copy without the connection string
	// yields <msg> alone.
	stripped := *pce
	stripped.ConnString = ""
	msg, ok := strings.CutPrefix(stripped.Error(), "cannot parse ``: ")
	if !ok {
		return ""
	}
	inner := errors.Unwrap(pce)
	if inner != nil {
		msg = strings.TrimSuffix(msg, " ("+inner.Error()+")")
	}
	reason := safeReason(msg)
	if inner != nil && reason != "" {
		if r := safeReason(inner.Error()); r != "" {
			reason += ": " + r
		}
	}
	return reason
}

// mysqlStaticErrors are the messages of go-sql-driver/mysql's DSN errors
// that hold no part of the DSN.
var mysqlStaticErrors = map[string]bool{
	"invalid DSN: did you forget to escape a param value?":                  true,
	"invalid DSN: network address not terminated (missing closing brace)":   true,
	"invalid DSN: missing the slash separating the database name":           true,
	"invalid DSN: interpolateParams can not be used with unsafe collations": true,
}

// mysqlParseReason extracts from an error of mysql.ParseDSN its static
// reason, without values.
func mysqlParseReason(err error) string {
	if msg := err.Error(); mysqlStaticErrors[msg] {
		return msg
	}
	return safeReason(err.Error())
}

// safeReason returns the text of an error message up to the first character
// that may introduce a value (a colon, a quote or a parenthesis) if that part
// is made of words only; otherwise "". Messages of the drivers put values
// after such a character ("invalid bool value: ..."), so what is left is
// static text.
func safeReason(msg string) string {
	if i := strings.IndexAny(msg, ":'\"`("); i >= 0 {
		msg = msg[:i]
	}
	msg = strings.TrimSpace(msg)
	if len(msg) > 100 || !strings.Contains(msg, " ") {
		return ""
	}
	for _, r := range msg {
		switch {
		case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z', '0' <= r && r <= '9':
		case r == ' ', r == '_', r == '-', r == '/':
		default:
			return ""
		}
	}
	return msg
}

// RedactDSN returns dsn with its passwords replaced by "xxxxx", for logs and
// error messages. typ is the hook type that dsn belongs to:
//
//   - TypePostgresCheckpoint, URL form ("postgres://" or "postgresql://"):
//     the password of the user info, and the values of the query parameters
//     password and sslpassword;
//   - TypePostgresCheckpoint, keyword/value form: the values of password and
//     sslpassword, quoted or not ("password='a b'" becomes "password=xxxxx");
//   - TypeMySQLLockTables, TypeMariaDBBackupStage: the password of
//     "user:password@...".
//
// For any other typ, the URL rules apply to a DSN that contains "://", and
// both the keyword/value and the MySQL rules to any other. The redaction never
// shows less than the password, also for a malformed DSN; it may hide more:
// in a malformed keyword/value string, all from the first malformed keyword
// on if a password follows; in a DSN with an "@" after the host, everything
// between the first ":" of the user info and the last "@". An empty password
// stays empty.
func RedactDSN(typ, dsn string) string {
	spans := dsnSecretSpans(typ, dsn)
	if len(spans) == 0 {
		return dsn
	}
	var b strings.Builder
	last := 0
	for _, s := range spans {
		b.WriteString(dsn[last:s.start])
		b.WriteString(redactedPassword)
		last = s.end
	}
	b.WriteString(dsn[last:])
	return b.String()
}

// dsnSecrets returns the texts that RedactDSN hides, and their
// percent-decoded forms.
func dsnSecrets(typ, dsn string) []string {
	var secrets []string
	for _, s := range dsnSecretSpans(typ, dsn) {
		secret := dsn[s.start:s.end]
		secrets = append(secrets, secret)
		if dec, err := url.PathUnescape(secret); err == nil && dec != secret && dec != "" {
			secrets = append(secrets, dec)
		}
	}
	return secrets
}

// span is the byte range [start, end) of a secret in a DSN.
type span struct{ start, end int }

// dsnSecretSpans returns the non-empty, non-overlapping ranges of dsn that
// hold secrets, in order.
func dsnSecretSpans(typ, dsn string) []span {
	var spans []span
	switch typ {
	case TypePostgresCheckpoint:
		spans = pgSecretSpans(dsn)
	case TypeMySQLLockTables, TypeMariaDBBackupStage:
		spans = mysqlSecretSpans(dsn)
	default:
		if strings.Contains(dsn, "://") {
			spans = pgURLSecretSpans(dsn, 0)
		} else {
			spans = append(pgKeywordSecretSpans(dsn), mysqlSecretSpans(dsn)...)
		}
	}
	return mergeSpans(spans)
}

// mergeSpans sorts spans, drops empty ones and merges those that overlap or
// touch.
func mergeSpans(spans []span) []span {
	sort.Slice(spans, func(i, j int) bool { return spans[i].start < spans[j].start })
	var out []span
	for _, s := range spans {
		if s.end <= s.start {
			continue
		}
		if n := len(out); n > 0 && s.start <= out[n-1].end {
			out[n-1].end = max(out[n-1].end, s.end)
			continue
		}
		out = append(out, s)
	}
	return out
}

// pgSecretSpans finds the secrets of a libpq connection string in the form
// that pgx would parse it in.
func pgSecretSpans(dsn string) []span {
	for _, scheme := range []string{"postgres://", "postgresql://"} {
		if strings.HasPrefix(dsn, scheme) {
			return pgURLSecretSpans(dsn, len(scheme))
		}
	}
	return pgKeywordSecretSpans(dsn)
}

// pgURLSecretSpans finds the password of the user info and the password
// query parameters of a connection URL whose authority starts at from. If
// from is 0, it first looks for "://".
func pgURLSecretSpans(dsn string, from int) []span {
	if from == 0 {
		i := strings.Index(dsn, "://")
		if i < 0 {
			return nil
		}
		from = i + len("://")
	}
	var spans []span
	rest := dsn[from:]
	// The user info ends at the last "@": a password with an unencoded "@"
	// is hidden whole, at the price of hiding more if an "@" comes later.
	if at := strings.LastIndexByte(rest, '@'); at >= 0 {
		if colon := strings.IndexByte(rest[:at], ':'); colon >= 0 {
			spans = append(spans, span{from + colon + 1, from + at})
		}
	}
	// Every "?" or "&" may start a parameter: a "?" inside a malformed
	// password must not hide a password parameter after it.
	for i := from; i < len(dsn); i++ {
		if dsn[i] != '?' && dsn[i] != '&' {
			continue
		}
		key, _, ok := strings.Cut(dsn[i+1:], "=")
		if !ok {
			break
		}
		if strings.ContainsAny(key, "?&") {
			continue
		}
		if dec, err := url.QueryUnescape(key); err == nil {
			key = dec
		}
		if !isPasswordKey(key) {
			continue
		}
		start := i + 1 + strings.IndexByte(dsn[i+1:], '=') + 1
		end := len(dsn)
		if j := strings.IndexByte(dsn[start:], '&'); j >= 0 {
			end = start + j
		}
		spans = append(spans, span{start, end})
	}
	return spans
}

// isPasswordKey reports whether a connection string key holds a secret.
func isPasswordKey(key string) bool {
	key = strings.ToLower(strings.TrimSpace(key))
	return key == "password" || key == "sslpassword"
}

func isSpaceByte(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '\r', '\v', '\f':
		return true
	}
	return false
}

// pgKeywordSecretSpans finds the values of password and sslpassword in a
// keyword/value connection string, scanning it as pgx does. On malformed
// input it hides everything from the malformed keyword on, if the word
// "password" appears there.
func pgKeywordSecretSpans(dsn string) []span {
	var spans []span
	n := len(dsn)
	skipSpace := func(i int) int {
		for i < n && isSpaceByte(dsn[i]) {
			i++
		}
		return i
	}
	malformed := func(from int) []span {
		if strings.Contains(strings.ToLower(dsn[from:]), "password") {
			spans = append(spans, span{from, n})
		}
		return spans
	}
	i := skipSpace(0)
	for i < n {
		keyStart := i
		eq := strings.IndexByte(dsn[i:], '=')
		if eq < 0 {
			return malformed(keyStart)
		}
		key := strings.TrimSpace(dsn[i : i+eq])
		if key == "" || strings.IndexFunc(key, func(r rune) bool { return r < 0x80 && isSpaceByte(byte(r)) }) >= 0 {
			return malformed(keyStart)
		}
		i = skipSpace(i + eq + 1)
		valStart := i
		if i < n && dsn[i] == '\'' {
			i++
			for i < n && dsn[i] != '\'' {
				if dsn[i] == '\\' {
					i++
				}
				i++
			}
			if i < n {
				i++ // the closing quote
			}
		} else {
			for i < n && !isSpaceByte(dsn[i]) {
				if dsn[i] == '\\' {
					i++
				}
				i++
			}
		}
		i = min(i, n)
		if isPasswordKey(key) {
			spans = append(spans, span{valStart, i})
		}
		i = skipSpace(i)
	}
	return spans
}

// mysqlSecretSpans finds the password of "user:password@..." in a
// go-sql-driver/mysql DSN: from the first ":" before the last "@" up to that
// "@".
func mysqlSecretSpans(dsn string) []span {
	at := strings.LastIndexByte(dsn, '@')
	if at < 0 {
		return nil
	}
	colon := strings.IndexByte(dsn[:at], ':')
	if colon < 0 {
		return nil
	}
	return []span{{colon + 1, at}}
}

// --- Parsing ------------------------------------------------------------

// hookKeys are the keys of a hook mapping, for error messages.
const hookKeys = "type, path, dsn, timeout, err_is_fatal, filesystems, post_on_pre_error"

// ParseHookList parses a hook list written in YAML (or JSON, which is YAML):
// either a list of hooks, or a mapping whose only key "hooks" holds that list
// (as in a zrepl job). An empty document, or an empty or null list, gives an
// empty list.
//
//	hooks:
//	  - type: command
//	    path: /etc/snaphook/pre-post.sh
//	    timeout: 10s
//	    err_is_fatal: true
//	    filesystems: {"tank/db<": true}
//	  - type: postgres-checkpoint
//	    dsn: "host=/run/postgresql dbname=postgres user=backup"
//	    filesystems: {"tank/pg<": true}
//
// It is strict: unknown keys, duplicate keys, values of the wrong kind, a
// missing type, an unknown type, and everything that Validate rejects are
// errors. Booleans may also be written yes/no/on/off, as YAML 1.1 (and zrepl)
// allowed. It does not apply defaults: a missing timeout stays 0 and missing
// filesystems stay nil; HookFromConfig and ListFromConfig apply them.
//
// On error it returns a nil list and every problem found, in document order,
// joined with errors.Join: each a *ConfigError naming the hook number, the
// field and the line, like
//
//	hook #2 (line 7): path: "bin/x" is not absolute
//
// A YAML syntax error ends parsing; it comes back as a *ConfigError with the
// line the YAML parser gave. Errors never contain the password of a DSN.
func ParseHookList(data []byte) (HookList, error) {
	root, cerr := parseDocument(data)
	if cerr != nil {
		return nil, errors.Join(cerr)
	}
	seq, errs := hookSequence(root)
	list := HookList{}
	if seq != nil {
		for i, item := range seq.Content {
			c, herrs := parseHook(i+1, item)
			errs = append(errs, herrs...)
			list = append(list, c)
		}
	}
	if len(errs) > 0 {
		joined := make([]error, len(errs))
		for i, e := range errs {
			joined[i] = e
		}
		return nil, errors.Join(joined...)
	}
	return list, nil
}

// parseDocument returns the root node of the only YAML document in data, or
// nil for an empty document.
func parseDocument(data []byte) (*yaml.Node, *ConfigError) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var root *yaml.Node
	for n := 0; ; n++ {
		var doc yaml.Node
		err := decodeNode(dec, &doc)
		if errors.Is(err, io.EOF) {
			return root, nil
		}
		if err != nil {
			return nil, yamlError(err)
		}
		var node *yaml.Node
		if len(doc.Content) > 0 {
			node = deref(doc.Content[0])
		}
		if node != nil && node.Kind == yaml.ScalarNode && node.ShortTag() == "!!null" {
			node = nil
		}
		switch {
		case n == 0:
			root = node
		case node != nil:
			return nil, &ConfigError{Line: node.Line, Err: errors.New("more than one YAML document")}
		}
	}
}

// decodeNode decodes the next document of dec, turning a panic of the
// parser into an error.
func decodeNode(dec *yaml.Decoder, doc *yaml.Node) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("yaml: parser failure: %v", r)
		}
	}()
	return dec.Decode(doc)
}

// yamlLine matches the position that the YAML parser puts in its errors.
var yamlLine = regexp.MustCompile(`^yaml: line (\d+): `)

// yamlError turns an error of the YAML parser into a *ConfigError, moving
// the line the parser gives into Line.
func yamlError(err error) *ConfigError {
	msg := err.Error()
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		if line, convErr := strconv.Atoi(m[1]); convErr == nil {
			return &ConfigError{Line: line, Err: errors.New("yaml: " + msg[len(m[0]):])}
		}
	}
	return &ConfigError{Err: err}
}

// deref follows aliases to the node they stand for.
func deref(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && n.Alias != nil && i < 100; i++ {
		n = n.Alias
	}
	return n
}

// describe names the kind of a YAML node for error messages: "a list",
// "a string", "null".
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping"
	case yaml.DocumentNode:
		return "a document"
	case yaml.AliasNode:
		return "an alias"
	case yaml.ScalarNode:
		switch tag := n.ShortTag(); tag {
		case "!!null":
			return "null"
		case "!!bool":
			return "a boolean"
		case "!!int":
			return "an integer"
		case "!!float":
			return "a number"
		case "!!str":
			return "a string"
		case "!!timestamp":
			return "a timestamp"
		case "!!binary":
			return "binary data"
		default:
			return "a value tagged " + strconv.Quote(tag)
		}
	}
	return "an unknown kind of YAML node"
}

// describeValue is describe with the value of a scalar, for fields whose
// values are no secret.
func describeValue(n *yaml.Node) string {
	if n.Kind != yaml.ScalarNode || n.ShortTag() == "!!null" {
		return describe(n)
	}
	v := n.Value
	if len(v) > 40 {
		v = v[:40] + "..."
	}
	return describe(n) + " " + strconv.Quote(v)
}

// hookSequence finds the list of hooks in the root node of the document.
func hookSequence(root *yaml.Node) (*yaml.Node, []*ConfigError) {
	if root == nil {
		return nil, nil
	}
	switch root.Kind {
	case yaml.SequenceNode:
		return root, nil
	case yaml.MappingNode:
	default:
		return nil, []*ConfigError{{Line: root.Line, Err: fmt.Errorf("want a list of hooks, not %s", describe(root))}}
	}

	var (
		errs      []*ConfigError
		hooks     *yaml.Node
		hooksLine int
		hasType   bool
	)
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], deref(root.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			errs = append(errs, &ConfigError{Line: k.Line, Err: fmt.Errorf("a key must be a string, not %s", describe(k))})
			continue
		}
		switch k.Value {
		case "hooks":
			if hooks != nil {
				errs = append(errs, &ConfigError{Line: k.Line, Field: "hooks", Err: fmt.Errorf("duplicate key (first on line %d)", hooksLine)})
				continue
			}
			hooks, hooksLine = v, k.Line
		case "type":
			hasType = true
			fallthrough
		default:
			errs = append(errs, &ConfigError{Line: k.Line, Field: k.Value, Err: errors.New(`unknown key: the document must be a list of hooks, or a mapping with the single key "hooks" holding that list`)})
		}
	}
	if hooks == nil && hasType {
		// A single hook where a list was expected: say so once.
		return nil, []*ConfigError{{Line: root.Line, Err: errors.New(`want a list of hooks, not a single hook: start it with "- "`)}}
	}
	if hooks == nil {
		return nil, errs
	}
	switch {
	case hooks.Kind == yaml.SequenceNode:
		return hooks, errs
	case hooks.Kind == yaml.ScalarNode && hooks.ShortTag() == "!!null":
		return nil, errs
	default:
		errs = append(errs, &ConfigError{Line: hooks.Line, Field: "hooks", Err: fmt.Errorf("must be a list of hooks, not %s", describe(hooks))})
		return nil, errs
	}
}

// parseHook decodes hook number num from node and checks it.
func parseHook(num int, item *yaml.Node) (HookConfig, []*ConfigError) {
	var (
		c           HookConfig
		errs        []*ConfigError
		seen        = map[string]int{} // key → line of its first occurrence
		valueLine   = map[string]int{} // key → line of its value
		patternLine = map[string]int{} // filesystems pattern → line of its key
		reported    = map[string]bool{}
	)
	fail := func(field string, line int, format string, args ...any) {
		errs = append(errs, &ConfigError{Hook: num, Field: field, Line: line, Err: fmt.Errorf(format, args...)})
		reported[field] = true
	}

	node := deref(item)
	if node.Kind != yaml.MappingNode {
		fail("", item.Line, "a hook must be a mapping of its settings (%s), not %s", hookKeys, describe(node))
		return c, errs
	}

	// str decodes a string field that must not be empty.
	str := func(key string, v *yaml.Node) string {
		if v.Kind != yaml.ScalarNode || v.ShortTag() != "!!str" {
			fail(key, v.Line, "must be a string, not %s", describe(v))
			return ""
		}
		if v.Value == "" {
			fail(key, v.Line, "must not be empty")
		}
		return v.Value
	}
	// boolean decodes a boolean field, or the value of a pattern if what
	// names it.
	boolean := func(key, what string, v *yaml.Node) (bool, bool) {
		var b bool
		if v.Kind != yaml.ScalarNode || v.Decode(&b) != nil {
			fail(key, v.Line, "%smust be true or false, not %s", what, describeValue(v))
			return false, false
		}
		return b, true
	}

	for i := 0; i+1 < len(node.Content); i += 2 {
		k, v := node.Content[i], deref(node.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			fail("", k.Line, "a key must be a string, not %s", describe(k))
			continue
		}
		key := k.Value
		if first, dup := seen[key]; dup {
			fail(key, k.Line, "duplicate key (first on line %d)", first)
			continue
		}
		seen[key] = k.Line
		valueLine[key] = v.Line

		switch key {
		case "type":
			c.Type = str(key, v)
		case "path":
			c.Path = str(key, v)
		case "dsn":
			c.DSN = str(key, v)
		case "err_is_fatal":
			c.ErrIsFatal, _ = boolean(key, "", v)
		case "post_on_pre_error":
			c.PostOnPreError, _ = boolean(key, "", v)
		case "timeout":
			if v.Kind != yaml.ScalarNode || v.ShortTag() == "!!null" {
				fail(key, v.Line, `must be a duration such as "30s", not %s`, describe(v))
				break
			}
			d, err := time.ParseDuration(v.Value)
			if err != nil {
				fail(key, v.Line, `%s is not a duration (write it like "30s" or "1m30s")`, strconv.Quote(v.Value))
				break
			}
			c.Timeout = d
		case "filesystems":
			if v.Kind == yaml.ScalarNode && v.ShortTag() == "!!null" {
				break // as if not given
			}
			if v.Kind != yaml.MappingNode {
				fail(key, v.Line, "must be a mapping of dataset patterns to true or false, not %s", describe(v))
				break
			}
			c.Filesystems = make(map[string]bool, len(v.Content)/2)
			for j := 0; j+1 < len(v.Content); j += 2 {
				pk, pv := v.Content[j], deref(v.Content[j+1])
				if pk.Kind != yaml.ScalarNode || pk.ShortTag() == "!!null" {
					fail(key, pk.Line, "a pattern must be a string, not %s", describe(pk))
					continue
				}
				pattern := pk.Value
				if first, dup := patternLine[pattern]; dup {
					fail(key, pk.Line, "duplicate pattern %q (first on line %d)", pattern, first)
					continue
				}
				patternLine[pattern] = pk.Line
				pass, ok := boolean(key, fmt.Sprintf("pattern %q: ", pattern), pv)
				if ok {
					c.Filesystems[pattern] = pass
				}
			}
		case "<<":
			fail(key, k.Line, "YAML merge keys are not supported")
		default:
			fail(key, k.Line, "unknown key (want one of %s)", hookKeys)
		}
	}

	for _, p := range c.problems() {
		if p.pattern == "" && reported[p.field] {
			continue // the value was rejected above; do not complain twice
		}
		line := item.Line // a missing field: the start of the hook
		if p.pattern != "" {
			line = patternLine[p.pattern]
		} else if l, ok := valueLine[p.field]; ok {
			line = l
		}
		errs = append(errs, &ConfigError{Hook: num, Field: p.field, Line: line, Err: p.err})
	}
	sort.SliceStable(errs, func(i, j int) bool { return errs[i].Line < errs[j].Line })
	return c, errs
}

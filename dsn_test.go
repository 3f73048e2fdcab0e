package hooks

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

func TestDSNTargets(t *testing.T) {
	pg, my := TypePostgresCheckpoint, TypeMySQLLockTables
	cases := []struct {
		name, typ, dsn, want string
	}{
		{"pg_url", pg, "postgres://chkpt:pw@127.0.0.1:55432/postgres?sslmode=disable", "chkpt@127.0.0.1:55432/postgres"},
		{"pg_url_default_port", pg, "postgresql://u:pw@db/x", "u@db:5432/x"},
		{"pg_keyword_value", pg, "host=db port=6432 user=backup password='a b' dbname=app", "backup@db:6432/app"},
		{"pg_unix_socket", pg, "host=/run/postgresql user=backup dbname=postgres", "backup@/run/postgresql:5432/postgres"},
		{"pg_ipv6", pg, "postgres://u:pw@[::1]:5433/x", "u@[::1]:5433/x"},
		{"pg_first_of_several_hosts", pg, "host=db1,db2 port=5432,5433 user=u dbname=x", "u@db1:5432/x"},
		{"pg_password_parameter", pg, "postgres://u@db/x?password=pw&sslpassword=pw2", "u@db:5432/x"},
		{"pg_odd_characters_are_quoted", pg, "host=db user='a\nb' dbname=x", `"a\nb@db:5432/x"`},
		{"mysql_tcp", my, "reload:pw@tcp(127.0.0.1:53306)/", "reload@127.0.0.1:53306"},
		{"mysql_default_port", my, "u:pw@tcp(db)/app", "u@db:3306/app"},
		{"mysql_unix_socket", my, "u:pw@unix(/run/mysqld/mysqld.sock)/", "u@unix(/run/mysqld/mysqld.sock)"},
		{"mysql_without_user", my, "tcp(db:3306)/app", "db:3306/app"},
		{"mysql_password_with_at_and_colon", my, "u:p@s:s@tcp(db)/", "u@db:3306"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := dsnTarget(c.typ, c.dsn)
			require.NoError(t, err)
			assert.Equal(t, c.want, got)
		})
	}
}

func TestDatabaseHooksAreNamedByTheirTarget(t *testing.T) {
	all := map[string]bool{"<": true}
	list, err := ListFromConfig(&HookList{
		{Type: TypePostgresCheckpoint, DSN: "postgres://chkpt:Hunter2Secret@127.0.0.1:55432/postgres", Filesystems: all},
		{Type: TypePostgresCheckpoint, DSN: "host=10.0.0.2 user=chkpt password=Hunter2Secret dbname=app", Filesystems: all},
		{Type: TypeMySQLLockTables, DSN: "reload:Hunter2Secret@tcp(127.0.0.1:53306)/", Filesystems: all},
		{Type: TypeMySQLLockTables, DSN: "reload:Hunter2Secret@tcp(127.0.0.1:53307)/", Filesystems: all},
	})
	require.NoError(t, err)
	want := []string{
		"postgres checkpoint (chkpt@127.0.0.1:55432/postgres)",
		"postgres checkpoint (chkpt@10.0.0.2:5432/app)",
		"MySQL FLUSH TABLES WITH READ LOCK (reload@127.0.0.1:53306)",
		"MySQL FLUSH TABLES WITH READ LOCK (reload@127.0.0.1:53307)",
	}
	for i, h := range *list {
		assert.Equal(t, want[i], h.String())
	}

	plan, err := NewPlan(list, PhaseSnapshot, NewCallbackHook("snapshot", func(context.Context) error { return nil }, nil), nil)
	require.NoError(t, err)
	report := plan.Report().String()
	for _, name := range want {
		assert.Contains(t, report, "[Pre]  "+name)
	}
	assert.NotContains(t, report, "Hunter2Secret")
}

// secretDSNs are DSNs, valid and not, that hold the password "Hunter2Secret"
// (or, where a password is split by the DSN's syntax, its two halves), also
// where the driver would echo it in its parse error.
var secretDSNs = []struct {
	name, typ, dsn string
	secrets        []string
}{
	{"pg_url_valid", TypePostgresCheckpoint, "postgres://backup:Hunter2Secret@db:5432/postgres", nil},
	{"pg_url_bad_port", TypePostgresCheckpoint, "postgres://backup:Hunter2Secret@db:x/postgres", nil},
	{"pg_url_password_in_port_position", TypePostgresCheckpoint, "postgres://backup@db:Hunter2Secret/postgres", nil},
	{"pg_url_colon_in_password", TypePostgresCheckpoint, "postgres://backup:Hunter2:Secret@db/postgres", []string{"Hunter2", "Secret"}},
	{"pg_url_slash_in_password", TypePostgresCheckpoint, "postgres://backup:Hunter2/Secret@db/postgres", []string{"Hunter2", "Secret"}},
	{"pg_url_at_in_password", TypePostgresCheckpoint, "postgres://backup:Hunter2@Secret@db/postgres", []string{"Hunter2", "Secret"}},
	{"pg_url_bad_escape_in_password", TypePostgresCheckpoint, "postgres://backup:Hunter2%zzSecret@db/postgres", []string{"Hunter2", "Secret"}},
	{"pg_url_unterminated_ipv6", TypePostgresCheckpoint, "postgresql://backup:Hunter2Secret@[::1/postgres", nil},
	{"pg_url_password_parameter", TypePostgresCheckpoint, "postgres://db/postgres?sslmode=bogus&password=Hunter2Secret", nil},
	{"pg_url_bad_parameter", TypePostgresCheckpoint, "postgres://backup:Hunter2Secret@db/postgres?connect_timeout=Hunter2Secret", nil},
	{"pg_kv_valid", TypePostgresCheckpoint, "host=db user=backup password=Hunter2Secret", nil},
	{"pg_kv_bad_port", TypePostgresCheckpoint, "host=db port=x password=Hunter2Secret", nil},
	{"pg_kv_quoted", TypePostgresCheckpoint, "host=db password='Hunter2 Secret' port=x", []string{"Hunter2", "Secret"}},
	{"pg_kv_quoted_with_escaped_quote", TypePostgresCheckpoint, `host=db password='Hunter2\' Secret' port=x`, []string{"Hunter2", "Secret"}},
	{"pg_kv_unterminated_quote", TypePostgresCheckpoint, "host=db password='Hunter2Secret", nil},
	{"pg_kv_spaces_around_equals", TypePostgresCheckpoint, "host=db password = Hunter2Secret port=x", nil},
	{"pg_kv_missing_equals", TypePostgresCheckpoint, "host=db password Hunter2Secret", nil},
	{"pg_kv_value_echoed_by_driver", TypePostgresCheckpoint, "password=Hunter2Secret target_session_attrs=Hunter2Secret", nil},
	{"pg_kv_value_echoed_by_driver_quoted", TypePostgresCheckpoint, "password=Hunter2Secret min_protocol_version=Hunter2Secret", nil},
	{"pg_kv_nul", TypePostgresCheckpoint, "password=Hunter2Secret \x00", nil},
	{"mysql_valid", TypeMySQLLockTables, "backup:Hunter2Secret@tcp(db:3306)/", nil},
	{"mysql_unterminated_address", TypeMySQLLockTables, "backup:Hunter2Secret@tcp(db:3306/", nil},
	{"mysql_no_slash", TypeMySQLLockTables, "backup:Hunter2Secret@tcp(db:3306)", nil},
	{"mysql_password_as_network", TypeMySQLLockTables, "backup:x@Hunter2Secret/", nil},
	{"mysql_bad_bool_parameter", TypeMySQLLockTables, "backup:Hunter2Secret@tcp(db)/?parseTime=Hunter2Secret", nil},
	{"mysql_bad_duration_parameter", TypeMySQLLockTables, "backup:Hunter2Secret@tcp(db)/?timeout=Hunter2Secret", nil},
	{"mysql_at_in_password", TypeMySQLLockTables, "backup:Hunter2@Secret@tcp(db)/", []string{"Hunter2", "Secret"}},
}

// configTexts returns every text that shows cfg or an error about it:
// Validate on it and on a command hook with its DSN, ParseHookList of its
// YAML, String and the fmt verbs, its log records in slog's text and JSON
// and in logfmt, and the hook's String if cfg builds one.
func configTexts(t testing.TB, cfg HookConfig) []string {
	var texts []string
	if err := cfg.Validate(); err != nil {
		texts = append(texts, err.Error())
	}
	wrong := cfg
	wrong.Type = TypeCommand
	if err := wrong.Validate(); err != nil {
		texts = append(texts, err.Error())
	}
	doc, err := yaml.Marshal(HookList{cfg})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseHookList(doc); err != nil {
		texts = append(texts, err.Error())
	}
	if h, err := HookFromConfig(cfg); err != nil {
		texts = append(texts, err.Error())
	} else {
		texts = append(texts, h.String())
	}
	if _, err := ListFromConfig(&HookList{cfg}); err != nil {
		texts = append(texts, err.Error())
	}
	texts = append(texts, cfg.String(), fmt.Sprintf("%v %+v %s", cfg, cfg, cfg))
	var logs bytes.Buffer
	for _, h := range []slog.Handler{slog.NewTextHandler(&logs, nil), slog.NewJSONHandler(&logs, nil), NewLogfmtHandler(&logs, nil)} {
		slog.New(h).Info("hook", "config", cfg)
	}
	return append(texts, logs.String())
}

func TestDSNPasswordNeverShown(t *testing.T) {
	for _, c := range secretDSNs {
		t.Run(c.name, func(t *testing.T) {
			secrets := c.secrets
			if secrets == nil {
				secrets = []string{"Hunter2Secret"}
			}
			texts := configTexts(t, HookConfig{Type: c.typ, DSN: c.dsn, Filesystems: map[string]bool{"<": true}})
			for _, text := range texts {
				for _, s := range secrets {
					assert.NotContains(t, text, s)
				}
			}
		})
	}
}

// TestUnparsableDSNErrorIsFixed: the error about a DSN that does not parse
// is one fixed text per driver, whatever the DSN holds.
func TestUnparsableDSNErrorIsFixed(t *testing.T) {
	const (
		pgErr = `dsn: cannot parse PostgreSQL connection string (want keyword/value "host=... user=... dbname=..." or URL "postgres://user@host:port/dbname")`
		myErr = `dsn: cannot parse MySQL DSN (want "user:password@tcp(host:port)/dbname?param=value")`
	)
	for _, c := range secretDSNs {
		cfg := HookConfig{Type: c.typ, DSN: c.dsn, Filesystems: map[string]bool{"<": true}}
		err := cfg.Validate()
		if _, perr := dsnTarget(c.typ, c.dsn); perr == nil {
			assert.NoError(t, err, c.name)
			continue
		}
		want := pgErr
		if c.typ == TypeMySQLLockTables {
			want = myErr
		}
		if strings.Contains(c.name, "at_in_password") && c.typ == TypePostgresCheckpoint {
			// libpq's parser ends the user info at the first "@".
			want = `dsn: a host name contains "@": write an "@" in the password as %40`
		}
		require.Error(t, err, c.name)
		assert.Equal(t, want, err.Error(), c.name)
		assert.Contains(t, cfg.String(), "target="+strconv.Quote(unparsableTarget), c.name)
	}
}

func TestHookConfigStringAndLogValue(t *testing.T) {
	cfg := HookConfig{
		Type:        TypeMySQLLockTables,
		DSN:         "u:pw@tcp(db)/",
		Timeout:     5 * time.Second,
		ErrIsFatal:  true,
		Filesystems: map[string]bool{"tank<": true},
	}
	assert.Equal(t, `type=mysql-lock-tables target=u@db:3306 timeout=5s err_is_fatal=true post_on_pre_error=false filesystems="{\"tank<\": true}"`, cfg.String())
	cmd := HookConfig{Type: TypeCommand, Path: "/bin/true", SkipExitCode: 75}
	assert.Equal(t, `type=command path=/bin/true timeout=0s err_is_fatal=false post_on_pre_error=false skip_exit_code=75`, cmd.String())

	var logs bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))
	logger.Info("hook", "config", cfg)
	assert.JSONEq(t, `{"level":"INFO","msg":"hook","config":{"type":"mysql-lock-tables","target":"u@db:3306",
		"timeout":5000000000,"err_is_fatal":true,"post_on_pre_error":false,"filesystems":"{\"tank<\": true}"}}`, logs.String())
	logs.Reset()
	logger.Info("hook", "config", cmd)
	assert.JSONEq(t, `{"level":"INFO","msg":"hook","config":{"type":"command","path":"/bin/true",
		"timeout":0,"err_is_fatal":false,"post_on_pre_error":false,"skip_exit_code":75}}`, logs.String())
}

func TestRedactSecret(t *testing.T) {
	err := redactSecret(fmt.Errorf("connect: bad password %q", "Hunter2Secret"), "Hunter2Secret")
	assert.Equal(t, `connect: bad password "`+redactedMark+`"`, err.Error())
	assert.NoError(t, redactSecret(nil, "x"))
	plain := fmt.Errorf("x")
	assert.Same(t, plain, redactSecret(plain, ""))
	assert.False(t, strings.Contains(redactSecret(fmt.Errorf("aHunter2Secretb"), "Hunter2Secret").Error(), "Hunter2Secret"))
}

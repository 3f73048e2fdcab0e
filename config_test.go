package hooks

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// configErrors returns the *ConfigErrors that ParseHookList joined into err.
func configErrors(t *testing.T, err error) []*ConfigError {
	t.Helper()
	require.Error(t, err)
	joined, ok := err.(interface{ Unwrap() []error })
	require.True(t, ok, "ParseHookList joins its errors: %v", err)
	var out []*ConfigError
	for _, e := range joined.Unwrap() {
		var ce *ConfigError
		require.True(t, errors.As(e, &ce), "not a *ConfigError: %T %v", e, e)
		out = append(out, ce)
	}
	return out
}

// fullYAML holds one hook of each type, with every key used.
const fullYAML = `# hooks for the snapshots of tank
hooks:
  - type: command
    path: /usr/local/bin/pre-post.sh
    timeout: 10s
    err_is_fatal: true
    post_on_pre_error: true
    filesystems:
      "tank<": true
      tank/tmp<: false
  - type: postgres-checkpoint
    dsn: "host=/run/postgresql dbname=postgres user=backup password='s3 cr3t'"
    timeout: 1m30s
    filesystems: {"tank/pg<": true}
  - type: mysql-lock-tables
    dsn: "backup:s3cr3t@tcp(127.0.0.1:3306)/"
    err_is_fatal: false
    filesystems:
      tank/mysql<: true
      tank/mysql/tmp: false
`

// fullJSON is fullYAML in JSON, as a bare list.
const fullJSON = `[
  {"type": "command", "path": "/usr/local/bin/pre-post.sh", "timeout": "10s",
   "err_is_fatal": true, "post_on_pre_error": true,
   "filesystems": {"tank<": true, "tank/tmp<": false}},
  {"type": "postgres-checkpoint",
   "dsn": "host=/run/postgresql dbname=postgres user=backup password='s3 cr3t'",
   "timeout": "1m30s", "filesystems": {"tank/pg<": true}},
  {"type": "mysql-lock-tables", "dsn": "backup:s3cr3t@tcp(127.0.0.1:3306)/",
   "err_is_fatal": false,
   "filesystems": {"tank/mysql<": true, "tank/mysql/tmp": false}}
]`

var fullList = HookList{
	{
		Type:           TypeCommand,
		Path:           "/usr/local/bin/pre-post.sh",
		Timeout:        10 * time.Second,
		ErrIsFatal:     true,
		PostOnPreError: true,
		Filesystems:    map[string]bool{"tank<": true, "tank/tmp<": false},
	},
	{
		Type:        TypePostgresCheckpoint,
		DSN:         "host=/run/postgresql dbname=postgres user=backup password='s3 cr3t'",
		Timeout:     90 * time.Second,
		Filesystems: map[string]bool{"tank/pg<": true},
	},
	{
		Type:        TypeMySQLLockTables,
		DSN:         "backup:s3cr3t@tcp(127.0.0.1:3306)/",
		Filesystems: map[string]bool{"tank/mysql<": true, "tank/mysql/tmp": false},
	},
}

func TestParseHookListValid(t *testing.T) {
	cases := []struct {
		name string
		in   string
		want HookList
	}{
		{"full_yaml_with_hooks_key", fullYAML, fullList},
		{"full_json_list", fullJSON, fullList},
		{"json_with_hooks_key", `{"hooks": ` + fullJSON + `}`, fullList},
		{"empty_document_is_an_empty_list", "", HookList{}},
		{"comments_only_is_an_empty_list", "# nothing yet\n", HookList{}},
		{"document_marker_only_is_an_empty_list", "---\n", HookList{}},
		{"null_is_an_empty_list", "null\n", HookList{}},
		{"empty_list", "[]\n", HookList{}},
		{"empty_hooks_list", "hooks: []\n", HookList{}},
		{"null_hooks_is_an_empty_list", "hooks:\n", HookList{}},
		{"empty_mapping_is_an_empty_list", "{}\n", HookList{}},
		{"trailing_empty_document_is_ignored", "- type: command\n  path: /bin/true\n---\n", HookList{{Type: TypeCommand, Path: "/bin/true"}}},
		{"defaults_are_not_applied", "- type: command\n  path: /bin/true\n", HookList{{Type: TypeCommand, Path: "/bin/true"}}},
		{"zero_timeout_means_default", "- {type: command, path: /bin/true, timeout: 0}\n", HookList{{Type: TypeCommand, Path: "/bin/true"}}},
		{"zero_seconds_timeout_means_default", "- {type: command, path: /bin/true, timeout: 0s}\n", HookList{{Type: TypeCommand, Path: "/bin/true"}}},
		{"null_filesystems_is_not_given", "- {type: command, path: /bin/true, filesystems: }\n", HookList{{Type: TypeCommand, Path: "/bin/true"}}},
		{"empty_filesystems_on_command_is_kept", "- {type: command, path: /bin/true, filesystems: {}}\n", HookList{{Type: TypeCommand, Path: "/bin/true", Filesystems: map[string]bool{}}}},
		{"yaml_1_1_booleans_as_in_zrepl", "- {type: command, path: /bin/true, err_is_fatal: yes, post_on_pre_error: on, filesystems: {tank<: no}}\n",
			HookList{{Type: TypeCommand, Path: "/bin/true", ErrIsFatal: true, PostOnPreError: true, Filesystems: map[string]bool{"tank<": false}}}},
		{"postgres_url_dsn", "- {type: postgres-checkpoint, dsn: 'postgres://backup:pw@db:5432/postgres?sslmode=disable', filesystems: {<: true}}\n",
			HookList{{Type: TypePostgresCheckpoint, DSN: "postgres://backup:pw@db:5432/postgres?sslmode=disable", Filesystems: map[string]bool{"<": true}}}},
		{"anchors_and_aliases_are_followed", "- &cmd {type: command, path: /bin/true}\n- *cmd\n",
			HookList{{Type: TypeCommand, Path: "/bin/true"}, {Type: TypeCommand, Path: "/bin/true"}}},
		{"numeric_dataset_names_are_patterns", "- {type: command, path: /bin/true, filesystems: {tank/2024<: true}}\n",
			HookList{{Type: TypeCommand, Path: "/bin/true", Filesystems: map[string]bool{"tank/2024<": true}}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseHookList([]byte(c.in))
			require.NoError(t, err)
			require.NotNil(t, got)
			assert.Equal(t, c.want, got)
			for i, h := range got {
				assert.NoError(t, h.Validate(), "hook #%d", i+1)
			}
		})
	}
}

func TestParseHookListErrors(t *testing.T) {
	type want struct {
		hook     int
		field    string
		line     int
		contains string
	}
	cases := []struct {
		name string
		in   string
		want []want
	}{
		{"unknown_key_is_an_error",
			"- type: command\n  path: /bin/true\n  pathh: /bin/false\n",
			[]want{{1, "pathh", 3, "unknown key"}}},
		{"duplicate_key_is_an_error",
			"- type: command\n  path: /bin/true\n  path: /bin/false\n",
			[]want{{1, "path", 3, "duplicate key (first on line 2)"}}},
		{"merge_keys_are_not_supported",
			"- type: command\n  path: /bin/true\n  <<: {timeout: 5s}\n",
			[]want{{1, "<<", 3, "merge keys are not supported"}}},
		{"hook_must_be_a_mapping",
			"- type: command\n  path: /bin/true\n- /bin/false\n",
			[]want{{2, "", 3, "must be a mapping"}}},
		{"empty_list_item_is_not_a_hook",
			"- type: command\n  path: /bin/true\n-\n",
			[]want{{2, "", 3, "not null"}}},
		{"missing_type_points_at_the_hook",
			"- type: command\n  path: /bin/true\n- path: /bin/false\n  timeout: 5s\n",
			[]want{{2, "type", 3, "missing"}}},
		{"unknown_type",
			"- type: comand\n  path: /bin/true\n",
			[]want{{1, "type", 1, `unknown hook type "comand"`}}},
		{"type_must_be_a_string",
			"- type: [command]\n  path: /bin/true\n",
			[]want{{1, "type", 1, "must be a string, not a list"}}},
		{"path_must_be_a_string_not_a_list",
			"- type: command\n  path:\n    - /bin/true\n",
			[]want{{1, "path", 3, "must be a string, not a list"}}},
		{"path_must_be_a_string_not_a_mapping",
			"- type: command\n  path: {a: b}\n",
			[]want{{1, "path", 2, "must be a string, not a mapping"}}},
		{"path_must_not_be_empty",
			"- type: command\n  path: ''\n",
			[]want{{1, "path", 2, "must not be empty"}}},
		{"command_needs_a_path",
			"- type: command\n  timeout: 5s\n",
			[]want{{1, "path", 1, "required for a command hook"}}},
		{"relative_path",
			"- type: command\n  path: bin/x\n",
			[]want{{1, "path", 2, `"bin/x" is not absolute`}}},
		{"dsn_does_not_belong_to_a_command_hook",
			"- type: command\n  path: /bin/true\n  dsn: host=db\n",
			[]want{{1, "dsn", 3, "not allowed for a command hook"}}},
		{"path_does_not_belong_to_a_db_hook",
			"- type: postgres-checkpoint\n  dsn: host=db\n  filesystems: {tank<: true}\n  path: /bin/true\n",
			[]want{{1, "path", 4, "not allowed for a postgres-checkpoint hook"}}},
		{"postgres_needs_a_dsn",
			"- type: postgres-checkpoint\n  filesystems: {tank<: true}\n",
			[]want{{1, "dsn", 1, "required for a postgres-checkpoint hook"}}},
		{"mysql_needs_a_dsn",
			"- type: mysql-lock-tables\n  filesystems: {tank<: true}\n",
			[]want{{1, "dsn", 1, "required for a mysql-lock-tables hook"}}},
		{"db_hook_needs_filesystems",
			"- type: mysql-lock-tables\n  dsn: u@tcp(db)/\n",
			[]want{{1, "filesystems", 1, "required for a mysql-lock-tables hook"}}},
		{"db_hook_needs_non_empty_filesystems",
			"- type: postgres-checkpoint\n  dsn: host=db\n  filesystems: {}\n",
			[]want{{1, "filesystems", 3, "required for a postgres-checkpoint hook"}}},
		{"unparsable_postgres_dsn",
			"- type: postgres-checkpoint\n  dsn: host=db port=x\n  filesystems: {tank<: true}\n",
			[]want{{1, "dsn", 2, "cannot parse PostgreSQL connection string: invalid port"}}},
		{"unparsable_postgres_url_dsn",
			"- type: postgres-checkpoint\n  dsn: postgres://u@[::1/db\n  filesystems: {tank<: true}\n",
			[]want{{1, "dsn", 2, "cannot parse PostgreSQL connection string: failed to parse as URL"}}},
		{"unparsable_mysql_dsn",
			"- type: mysql-lock-tables\n  dsn: u@tcp(db\n  filesystems: {tank<: true}\n",
			[]want{{1, "dsn", 2, "cannot parse MySQL DSN: invalid DSN"}}},
		{"err_is_fatal_must_be_a_boolean",
			"- type: command\n  path: /bin/true\n  err_is_fatal: maybe\n",
			[]want{{1, "err_is_fatal", 3, `must be true or false, not a string "maybe"`}}},
		{"err_is_fatal_must_not_be_a_number",
			"- type: command\n  path: /bin/true\n  err_is_fatal: 1\n",
			[]want{{1, "err_is_fatal", 3, "must be true or false, not an integer"}}},
		{"post_on_pre_error_must_be_a_boolean",
			"- type: command\n  path: /bin/true\n  post_on_pre_error: [true]\n",
			[]want{{1, "post_on_pre_error", 3, "must be true or false, not a list"}}},
		{"timeout_needs_a_unit",
			"- type: command\n  path: /bin/true\n  timeout: 30\n",
			[]want{{1, "timeout", 3, `"30" is not a duration`}}},
		{"timeout_must_be_a_duration",
			"- type: command\n  path: /bin/true\n  timeout: half a minute\n",
			[]want{{1, "timeout", 3, `"half a minute" is not a duration`}}},
		{"timeout_must_be_a_scalar",
			"- type: command\n  path: /bin/true\n  timeout: {s: 30}\n",
			[]want{{1, "timeout", 3, "not a mapping"}}},
		{"negative_timeout",
			"- type: command\n  path: /bin/true\n  timeout: -5s\n",
			[]want{{1, "timeout", 3, "-5s is negative"}}},
		{"filesystems_must_be_a_mapping",
			"- type: command\n  path: /bin/true\n  filesystems: [tank<]\n",
			[]want{{1, "filesystems", 3, "must be a mapping of dataset patterns to true or false, not a list"}}},
		{"filesystems_values_must_be_booleans",
			"- type: command\n  path: /bin/true\n  filesystems:\n    tank<: true\n    zroot<: sometimes\n",
			[]want{{1, "filesystems", 5, `pattern "zroot<": must be true or false`}}},
		{"filesystems_pattern_must_not_repeat",
			"- type: command\n  path: /bin/true\n  filesystems:\n    tank<: true\n    tank<: false\n",
			[]want{{1, "filesystems", 5, `duplicate pattern "tank<" (first on line 4)`}}},
		{"bad_filter_pattern_points_at_the_pattern",
			"- type: command\n  path: /bin/true\n  filesystems:\n    tank<: true\n    tank/<a: false\n",
			[]want{{1, "filesystems", 5, `pattern "tank/<a": "<" is only allowed at the end`}}},
		{"two_subtree_markers",
			"- type: postgres-checkpoint\n  dsn: host=db\n  filesystems:\n    tank<<: true\n",
			[]want{{1, "filesystems", 4, `pattern "tank<<": contains more than one "<"`}}},
		{"bad_value_and_no_valid_pattern_is_one_error",
			"- type: postgres-checkpoint\n  dsn: host=db\n  filesystems: {tank<: 1}\n",
			[]want{{1, "filesystems", 3, "must be true or false"}}},
		{"yaml_syntax_error_has_the_parser_line",
			"- type: command\n  path: /bin/true\n- type: command\n  path: a: b\n",
			[]want{{0, "", 4, "yaml: mapping values are not allowed in this context"}}},
		{"yaml_error_without_line",
			"- type: command\n  path: *nope\n",
			[]want{{0, "", 0, "yaml: unknown anchor 'nope' referenced"}}},
		{"tab_indentation_is_a_syntax_error",
			"- type: command\n\tpath: /bin/true\n",
			[]want{{0, "", 2, "yaml: "}}},
		{"single_hook_instead_of_a_list",
			"type: command\npath: /bin/true\n",
			[]want{{0, "", 1, `want a list of hooks, not a single hook: start it with "- "`}}},
		{"unknown_top_level_key",
			"hooks: []\njobs: []\n",
			[]want{{0, "jobs", 2, "unknown key"}}},
		{"hooks_must_be_a_list",
			"hooks: {type: command}\n",
			[]want{{0, "hooks", 1, "must be a list of hooks, not a mapping"}}},
		{"document_must_be_a_list",
			"just a string\n",
			[]want{{0, "", 1, "want a list of hooks, not a string"}}},
		{"more_than_one_document",
			"- type: command\n  path: /bin/true\n---\n- type: command\n  path: /bin/true\n",
			[]want{{0, "", 4, "more than one YAML document"}}},
		{"json_errors_have_lines_too",
			"[\n  {\"type\": \"command\",\n   \"path\": \"bin/x\"}\n]\n",
			[]want{{1, "path", 3, `"bin/x" is not absolute`}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			list, err := ParseHookList([]byte(c.in))
			assert.Nil(t, list)
			errs := configErrors(t, err)
			require.Len(t, errs, len(c.want), "errors: %v", err)
			for i, w := range c.want {
				e := errs[i]
				assert.Equal(t, w.hook, e.Hook, "hook of %q", e)
				assert.Equal(t, w.field, e.Field, "field of %q", e)
				assert.Equal(t, w.line, e.Line, "line of %q", e)
				assert.Contains(t, e.Error(), w.contains)
				assert.NotNil(t, e.Err)
			}
		})
	}
}

func TestParseHookListAcceptsTheExampleConfig(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "example.yml"))
	if errors.Is(err, os.ErrNotExist) {
		t.Skip("no testdata/example.yml")
	}
	require.NoError(t, err)
	list, err := ParseHookList(data)
	require.NoError(t, err)
	assert.NotEmpty(t, list)
}

func TestParseHookListErrorFormat(t *testing.T) {
	in := `hooks:
  - type: command
    path: /usr/bin/true
    timeout: 10s
    err_is_fatal: true
  - type: command
    path: bin/x
`
	_, err := ParseHookList([]byte(in))
	require.Error(t, err)
	assert.Equal(t, `hook #2 (line 7): path: "bin/x" is not absolute`, err.Error())

	var ce *ConfigError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, ConfigError{Hook: 2, Field: "path", Line: 7, Err: ce.Err}, *ce)
}

func TestParseHookListCollectsAllErrorsInDocumentOrder(t *testing.T) {
	in := `hooks:
  - type: command
    path: bin/x
    timeout: soon
  - type: postgres-checkpoint
    dsn: "host=db port=x password=hunter2"
    path: /bin/true
  - type: frobnicate
  - type: mysql-lock-tables
    color: blue
    filesystems:
      tank<<: true
    dsn: "u:hunter2@tcp(db"
  - type: command
    path: /bin/true
`
	_, err := ParseHookList([]byte(in))
	errs := configErrors(t, err)
	var got []string
	for _, e := range errs {
		got = append(got, fmt.Sprintf("#%d:%d:%s", e.Hook, e.Line, e.Field))
	}
	assert.Equal(t, []string{
		"#1:3:path",
		"#1:4:timeout",
		"#2:5:filesystems",
		"#2:6:dsn",
		"#2:7:path",
		"#3:8:type",
		"#4:10:color",
		"#4:12:filesystems",
		"#4:13:dsn",
	}, got, "all errors: %v", err)
	assert.NotContains(t, err.Error(), "hunter2")
	assert.Len(t, strings.Split(err.Error(), "\n"), len(errs), "one line per error")
}

func TestParseHookListRoundTrip(t *testing.T) {
	t.Run("yaml", func(t *testing.T) {
		data, err := yaml.Marshal(fullList)
		require.NoError(t, err)
		assert.Contains(t, string(data), "timeout: 10s")
		got, err := ParseHookList(data)
		require.NoError(t, err, "%s", data)
		assert.Equal(t, fullList, got)
	})
	t.Run("json", func(t *testing.T) {
		data, err := json.Marshal(fullList)
		require.NoError(t, err)
		assert.Contains(t, string(data), `"timeout":"10s"`)
		assert.NotContains(t, string(data), `"path":""`, "empty fields are omitted")
		got, err := ParseHookList(data)
		require.NoError(t, err, "%s", data)
		assert.Equal(t, fullList, got)
	})
}

func TestHookConfigValidate(t *testing.T) {
	pgDSN := "host=db user=backup"
	myDSN := "backup@tcp(db:3306)/"
	all := map[string]bool{"<": true}
	cases := []struct {
		name     string
		cfg      HookConfig
		field    string // "" for valid
		contains string
	}{
		{"command_with_absolute_path_is_valid", HookConfig{Type: TypeCommand, Path: "/bin/true"}, "", ""},
		{"command_with_everything_is_valid", HookConfig{Type: TypeCommand, Path: "/bin/true", Timeout: time.Minute, ErrIsFatal: true, PostOnPreError: true, Filesystems: all}, "", ""},
		{"postgres_is_valid", HookConfig{Type: TypePostgresCheckpoint, DSN: pgDSN, Filesystems: all}, "", ""},
		{"postgres_url_is_valid", HookConfig{Type: TypePostgresCheckpoint, DSN: "postgresql://backup@db/postgres", Filesystems: all}, "", ""},
		{"mysql_is_valid", HookConfig{Type: TypeMySQLLockTables, DSN: myDSN, Filesystems: all}, "", ""},
		{"missing_type", HookConfig{Path: "/bin/true"}, "type", "missing"},
		{"unknown_type", HookConfig{Type: "Command", Path: "/bin/true"}, "type", `unknown hook type "Command"`},
		{"negative_timeout", HookConfig{Type: TypeCommand, Path: "/bin/true", Timeout: -time.Second}, "timeout", "-1s is negative"},
		{"command_without_path", HookConfig{Type: TypeCommand}, "path", "required"},
		{"command_with_relative_path", HookConfig{Type: TypeCommand, Path: "./x"}, "path", `"./x" is not absolute`},
		{"command_with_nul_in_path", HookConfig{Type: TypeCommand, Path: "/bin/x\x00y"}, "path", "NUL"},
		{"command_with_dsn", HookConfig{Type: TypeCommand, Path: "/bin/true", DSN: pgDSN}, "dsn", "not allowed"},
		{"command_with_bad_pattern", HookConfig{Type: TypeCommand, Path: "/bin/true", Filesystems: map[string]bool{"a<b": true}}, "filesystems", `pattern "a<b"`},
		{"postgres_without_dsn", HookConfig{Type: TypePostgresCheckpoint, Filesystems: all}, "dsn", "required"},
		{"postgres_with_bad_dsn", HookConfig{Type: TypePostgresCheckpoint, DSN: "host=db port=x", Filesystems: all}, "dsn", "cannot parse PostgreSQL connection string"},
		{"postgres_without_filesystems", HookConfig{Type: TypePostgresCheckpoint, DSN: pgDSN}, "filesystems", "required"},
		{"postgres_with_path", HookConfig{Type: TypePostgresCheckpoint, DSN: pgDSN, Filesystems: all, Path: "/bin/true"}, "path", "not allowed"},
		{"mysql_without_dsn", HookConfig{Type: TypeMySQLLockTables, Filesystems: all}, "dsn", "required"},
		{"mysql_with_bad_dsn", HookConfig{Type: TypeMySQLLockTables, DSN: "no slash", Filesystems: all}, "dsn", "cannot parse MySQL DSN"},
		{"mysql_with_empty_filesystems", HookConfig{Type: TypeMySQLLockTables, DSN: myDSN, Filesystems: map[string]bool{}}, "filesystems", "required"},
		{"first_problem_in_field_order", HookConfig{Type: TypeCommand, Timeout: -1, DSN: "x"}, "timeout", "negative"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.cfg.Validate()
			if c.field == "" {
				assert.NoError(t, err)
				return
			}
			var fe *FieldError
			require.ErrorAs(t, err, &fe)
			assert.Equal(t, c.field, fe.Field)
			assert.Contains(t, err.Error(), c.contains)
			assert.True(t, strings.HasPrefix(err.Error(), c.field+": "), "error starts with the field: %v", err)
		})
	}
}

func TestHookConfigWithDefaults(t *testing.T) {
	cases := []struct {
		name string
		in   HookConfig
		want HookConfig
	}{
		{"zero_timeout_becomes_default",
			HookConfig{Type: TypePostgresCheckpoint, Filesystems: map[string]bool{"a<": true}},
			HookConfig{Type: TypePostgresCheckpoint, Timeout: DefaultHookTimeout, Filesystems: map[string]bool{"a<": true}}},
		{"explicit_timeout_is_kept",
			HookConfig{Type: TypeCommand, Timeout: time.Second, Filesystems: map[string]bool{"a<": true}},
			HookConfig{Type: TypeCommand, Timeout: time.Second, Filesystems: map[string]bool{"a<": true}}},
		{"command_without_filesystems_runs_for_all",
			HookConfig{Type: TypeCommand},
			HookConfig{Type: TypeCommand, Timeout: DefaultHookTimeout, Filesystems: map[string]bool{"<": true}}},
		{"command_with_empty_filesystems_runs_for_all",
			HookConfig{Type: TypeCommand, Filesystems: map[string]bool{}},
			HookConfig{Type: TypeCommand, Timeout: DefaultHookTimeout, Filesystems: map[string]bool{"<": true}}},
		{"db_hook_gets_no_default_filesystems",
			HookConfig{Type: TypeMySQLLockTables},
			HookConfig{Type: TypeMySQLLockTables, Timeout: DefaultHookTimeout}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			assert.Equal(t, c.want, c.in.WithDefaults())
		})
	}

	t.Run("result_shares_no_map", func(t *testing.T) {
		in := HookConfig{Type: TypeCommand, Filesystems: map[string]bool{"a<": true}}
		out := in.WithDefaults()
		out.Filesystems["b<"] = true
		assert.Len(t, in.Filesystems, 1)
	})
}

// secretDSNs are DSNs, valid and not, that hold the password "Hunter2Secret"
// (or, where a password is split by the DSN's syntax, its two halves). Where
// the secret also stands where no password belongs (a typo, or a value that
// a driver echoes in its error), only errors must hide it: RedactDSN cannot
// know that a port or a setting was meant to be a password.
var secretDSNs = []struct {
	name, typ, dsn string
	secrets        []string
	errorsOnly     bool
}{
	{"pg_url_valid", TypePostgresCheckpoint, "postgres://backup:Hunter2Secret@db:5432/postgres", nil, false},
	{"pg_url_bad_port", TypePostgresCheckpoint, "postgres://backup:Hunter2Secret@db:x/postgres", nil, false},
	{"pg_url_password_in_port_position", TypePostgresCheckpoint, "postgres://backup@db:Hunter2Secret/postgres", nil, true},
	{"pg_url_colon_in_password", TypePostgresCheckpoint, "postgres://backup:Hunter2:Secret@db/postgres", []string{"Hunter2", "Secret"}, false},
	{"pg_url_slash_in_password", TypePostgresCheckpoint, "postgres://backup:Hunter2/Secret@db/postgres", []string{"Hunter2", "Secret"}, false},
	{"pg_url_at_in_password", TypePostgresCheckpoint, "postgres://backup:Hunter2@Secret@db/postgres", []string{"Hunter2", "Secret"}, false},
	{"pg_url_bad_escape_in_password", TypePostgresCheckpoint, "postgres://backup:Hunter2%zzSecret@db/postgres", []string{"Hunter2", "Secret"}, false},
	{"pg_url_unterminated_ipv6", TypePostgresCheckpoint, "postgresql://backup:Hunter2Secret@[::1/postgres", nil, false},
	{"pg_url_password_parameter", TypePostgresCheckpoint, "postgres://db/postgres?sslmode=bogus&password=Hunter2Secret", nil, false},
	{"pg_url_bad_parameter", TypePostgresCheckpoint, "postgres://backup:Hunter2Secret@db/postgres?connect_timeout=Hunter2Secret", nil, true},
	{"pg_kv_valid", TypePostgresCheckpoint, "host=db user=backup password=Hunter2Secret", nil, false},
	{"pg_kv_bad_port", TypePostgresCheckpoint, "host=db port=x password=Hunter2Secret", nil, false},
	{"pg_kv_quoted", TypePostgresCheckpoint, "host=db password='Hunter2 Secret' port=x", []string{"Hunter2", "Secret"}, false},
	{"pg_kv_quoted_with_escaped_quote", TypePostgresCheckpoint, `host=db password='Hunter2\' Secret' port=x`, []string{"Hunter2", "Secret"}, false},
	{"pg_kv_unterminated_quote", TypePostgresCheckpoint, "host=db password='Hunter2Secret", nil, false},
	{"pg_kv_spaces_around_equals", TypePostgresCheckpoint, "host=db password = Hunter2Secret port=x", nil, false},
	{"pg_kv_missing_equals", TypePostgresCheckpoint, "host=db password Hunter2Secret", nil, false},
	{"pg_kv_value_echoed_by_driver", TypePostgresCheckpoint, "password=Hunter2Secret target_session_attrs=Hunter2Secret", nil, true},
	{"pg_kv_value_echoed_by_driver_quoted", TypePostgresCheckpoint, "password=Hunter2Secret min_protocol_version=Hunter2Secret", nil, true},
	{"pg_kv_nul", TypePostgresCheckpoint, "password=Hunter2Secret \x00", nil, false},
	{"mysql_valid", TypeMySQLLockTables, "backup:Hunter2Secret@tcp(db:3306)/", nil, false},
	{"mysql_unterminated_address", TypeMySQLLockTables, "backup:Hunter2Secret@tcp(db:3306/", nil, false},
	{"mysql_no_slash", TypeMySQLLockTables, "backup:Hunter2Secret@tcp(db:3306)", nil, false},
	{"mysql_password_as_network", TypeMySQLLockTables, "backup:x@Hunter2Secret/", nil, true},
	{"mysql_bad_bool_parameter", TypeMySQLLockTables, "backup:Hunter2Secret@tcp(db)/?parseTime=Hunter2Secret", nil, true},
	{"mysql_bad_duration_parameter", TypeMySQLLockTables, "backup:Hunter2Secret@tcp(db)/?timeout=Hunter2Secret", nil, true},
	{"mysql_at_in_password", TypeMySQLLockTables, "backup:Hunter2@Secret@tcp(db)/", []string{"Hunter2", "Secret"}, false},
}

func TestDSNPasswordNeverInErrors(t *testing.T) {
	for _, c := range secretDSNs {
		t.Run(c.name, func(t *testing.T) {
			secrets := c.secrets
			if secrets == nil {
				secrets = []string{"Hunter2Secret"}
			}
			cfg := HookConfig{Type: c.typ, DSN: c.dsn, Filesystems: map[string]bool{"<": true}}

			var texts []string
			if err := cfg.Validate(); err != nil {
				texts = append(texts, err.Error())
			}
			doc, err := yaml.Marshal(HookList{cfg})
			require.NoError(t, err)
			if _, err := ParseHookList(doc); err != nil {
				texts = append(texts, err.Error())
			}
			// The same DSN on the wrong hook type, and with other errors.
			wrong := cfg
			wrong.Type = TypeCommand
			if err := wrong.Validate(); err != nil {
				texts = append(texts, err.Error())
			}
			if !c.errorsOnly {
				texts = append(texts, cfg.String(), fmt.Sprintf("%v %+v %s", cfg, cfg, cfg), RedactDSN(c.typ, c.dsn))
				var logs bytes.Buffer
				slog.New(slog.NewTextHandler(&logs, nil)).Info("hook", "config", cfg)
				slog.New(slog.NewJSONHandler(&logs, nil)).Info("hook", "config", cfg)
				texts = append(texts, logs.String())
			}
			require.NotEmpty(t, texts)

			for _, text := range texts {
				for _, s := range secrets {
					assert.NotContains(t, text, s)
				}
			}
		})
	}
}

func TestDSNErrorsStayInformative(t *testing.T) {
	cases := []struct {
		name, typ, dsn, want string
	}{
		{"pg_invalid_port", TypePostgresCheckpoint, "host=db port=x password=pw", "dsn: cannot parse PostgreSQL connection string: invalid port"},
		{"pg_unterminated_quote", TypePostgresCheckpoint, "password='pw", "dsn: cannot parse PostgreSQL connection string: failed to parse as keyword/value: unterminated quoted string in connection info string"},
		{"pg_bad_sslmode", TypePostgresCheckpoint, "host=db sslmode=sometimes", "dsn: cannot parse PostgreSQL connection string: failed to configure TLS: sslmode is invalid"},
		{"pg_bad_setting_value_is_not_echoed", TypePostgresCheckpoint, "target_session_attrs=whatever", "dsn: cannot parse PostgreSQL connection string: unknown target_session_attrs value"},
		{"mysql_static_message_is_kept", TypeMySQLLockTables, "u:pw@tcp(db/x", "dsn: cannot parse MySQL DSN: invalid DSN: network address not terminated (missing closing brace)"},
		{"mysql_value_is_not_echoed", TypeMySQLLockTables, "u:pw@tcp(db)/?parseTime=maybe", "dsn: cannot parse MySQL DSN: invalid bool value"},
		{"mysql_unsafe_reason_is_dropped", TypeMySQLLockTables, "u:pw@tcp(db)/?timeout=soon", "dsn: cannot parse MySQL DSN"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := HookConfig{Type: c.typ, DSN: c.dsn, Filesystems: map[string]bool{"<": true}}.Validate()
			require.Error(t, err)
			assert.Equal(t, c.want, err.Error())
		})
	}
}

func TestSafeReasonKeepsOnlyStaticText(t *testing.T) {
	cases := []struct{ name, in, want string }{
		{"static_message_is_kept", "invalid port", "invalid port"},
		{"value_after_colon_is_cut", "invalid bool value: hunter2", "invalid bool value"},
		{"quoted_value_is_cut", "default addr for network 'hunter2' unknown", "default addr for network"},
		{"parenthesised_detail_is_cut", "failed to parse as URL (x)", "failed to parse as URL"},
		{"single_word_is_dropped", "time: invalid duration", ""},
		{"identifier_is_dropped", "strconv.Atoi: parsing", ""},
		{"odd_characters_are_dropped", "bad value hunter2@host", ""},
		{"empty_is_dropped", "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			assert.Equal(t, c.want, safeReason(c.in))
		})
	}
}

func TestRedactDSN(t *testing.T) {
	pg, my := TypePostgresCheckpoint, TypeMySQLLockTables
	cases := []struct {
		name, typ, in, want string
	}{
		{"pg_url_password", pg, "postgres://u:pw@db:5432/x?sslmode=disable", "postgres://u:xxxxx@db:5432/x?sslmode=disable"},
		{"pg_url_postgresql_scheme", pg, "postgresql://u:pw@db/x", "postgresql://u:xxxxx@db/x"},
		{"pg_url_without_password_is_unchanged", pg, "postgres://u@db/x", "postgres://u@db/x"},
		{"pg_url_without_userinfo_is_unchanged", pg, "postgres://db:5432/x", "postgres://db:5432/x"},
		{"pg_url_empty_password_stays_empty", pg, "postgres://u:@db/x", "postgres://u:@db/x"},
		{"pg_url_encoded_password", pg, "postgres://u:p%40ss@db/x", "postgres://u:xxxxx@db/x"},
		{"pg_url_password_parameter", pg, "postgres://db/x?user=u&password=pw&sslmode=disable", "postgres://db/x?user=u&password=xxxxx&sslmode=disable"},
		{"pg_url_sslpassword_parameter", pg, "postgres://db/x?sslpassword=pw", "postgres://db/x?sslpassword=xxxxx"},
		{"pg_url_encoded_parameter_key", pg, "postgres://db/x?pass%77ord=pw", "postgres://db/x?pass%77ord=xxxxx"},
		{"pg_url_at_in_password_hides_all_of_it", pg, "postgres://u:p@ss@db/x", "postgres://u:xxxxx@db/x"},
		{"pg_url_question_mark_in_password", pg, "postgres://u:p?w@db/x?password=pw2", "postgres://u:xxxxx@db/x?password=xxxxx"},
		{"pg_kv_password", pg, "host=db user=u password=pw dbname=x", "host=db user=u password=xxxxx dbname=x"},
		{"pg_kv_quoted_password", pg, "host=db password='p w' dbname=x", "host=db password=xxxxx dbname=x"},
		{"pg_kv_quoted_password_with_escapes", pg, `password='it\'s \\ x' host=db`, "password=xxxxx host=db"},
		{"pg_kv_escaped_space", pg, `password=a\ b host=db`, "password=xxxxx host=db"},
		{"pg_kv_spaces_around_equals", pg, "host=db password = pw dbname=x", "host=db password = xxxxx dbname=x"},
		{"pg_kv_sslpassword", pg, "sslpassword=pw sslkey=/k", "sslpassword=xxxxx sslkey=/k"},
		{"pg_kv_key_case_is_ignored", pg, "PASSWORD=pw", "PASSWORD=xxxxx"},
		{"pg_kv_unterminated_quote", pg, "host=db password='p w", "host=db password=xxxxx"},
		{"pg_kv_malformed_hides_the_rest", pg, "host=db oops password=pw", "host=db xxxxx"},
		{"pg_kv_malformed_without_password_is_kept", pg, "host=db oops", "host=db oops"},
		{"pg_kv_without_password_is_unchanged", pg, "host=db user=u", "host=db user=u"},
		{"pg_kv_password_lookalike_key_is_kept", pg, "password_file=x", "password_file=x"},
		{"mysql_password", my, "u:pw@tcp(db:3306)/x?parseTime=true", "u:xxxxx@tcp(db:3306)/x?parseTime=true"},
		{"mysql_without_password_is_unchanged", my, "u@tcp(db:3306)/x", "u@tcp(db:3306)/x"},
		{"mysql_without_user_is_unchanged", my, "tcp(db:3306)/x", "tcp(db:3306)/x"},
		{"mysql_colon_in_password", my, "u:p:w@unix(/run/mysqld.sock)/", "u:xxxxx@unix(/run/mysqld.sock)/"},
		{"mysql_at_in_password", my, "u:p@w@tcp(db)/", "u:xxxxx@tcp(db)/"},
		{"unknown_type_applies_url_rules", "", "postgres://u:pw@db/x", "postgres://u:xxxxx@db/x"},
		{"unknown_type_applies_keyword_rules", "", "host=db password=pw", "host=db password=xxxxx"},
		{"unknown_type_applies_mysql_rules", "", "u:pw@tcp(db)/", "u:xxxxx@tcp(db)/"},
		{"unknown_type_prefers_hiding_too_much", "", "u:pw@tcp(db)/ password=pw2", "xxxxx"},
		{"empty_dsn", pg, "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			assert.Equal(t, c.want, RedactDSN(c.typ, c.in))
		})
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
	assert.Equal(t, `type=mysql-lock-tables dsn=u:xxxxx@tcp(db)/ timeout=5s err_is_fatal=true post_on_pre_error=false filesystems="{\"tank<\": true}"`, cfg.String())

	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	})).Info("hook", "config", cfg)
	assert.JSONEq(t, `{"level":"INFO","msg":"hook","config":{"type":"mysql-lock-tables","dsn":"u:xxxxx@tcp(db)/",
		"timeout":5000000000,"err_is_fatal":true,"post_on_pre_error":false,"filesystems":"{\"tank<\": true}"}}`, logs.String())
}

func TestConfigErrorFormat(t *testing.T) {
	reason := errors.New("is wrong")
	cases := []struct {
		name string
		err  *ConfigError
		want string
	}{
		{"hook_line_and_field", &ConfigError{Hook: 2, Line: 7, Field: "path", Err: reason}, "hook #2 (line 7): path: is wrong"},
		{"hook_without_line", &ConfigError{Hook: 2, Field: "path", Err: reason}, "hook #2: path: is wrong"},
		{"hook_without_field", &ConfigError{Hook: 3, Line: 9, Err: reason}, "hook #3 (line 9): is wrong"},
		{"document_level", &ConfigError{Line: 1, Err: reason}, "line 1: is wrong"},
		{"odd_field_names_are_quoted", &ConfigError{Hook: 1, Line: 2, Field: "pa th\n", Err: reason}, `hook #1 (line 2): "pa th\n": is wrong`},
		{"nil_err_does_not_panic", &ConfigError{Hook: 1}, "hook #1: invalid"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			assert.Equal(t, c.want, c.err.Error())
			if c.err.Err != nil {
				assert.ErrorIs(t, c.err, reason)
			}
		})
	}
	fe := &FieldError{Field: "dsn", Err: reason}
	assert.Equal(t, "dsn: is wrong", fe.Error())
	assert.ErrorIs(t, fe, reason)
}

func ExampleParseHookList() {
	list, err := ParseHookList([]byte(`
hooks:
  - type: command
    path: /usr/local/bin/freeze
    err_is_fatal: true
    filesystems: {"tank/vm<": true}
  - type: postgres-checkpoint
    dsn: "host=/run/postgresql user=backup password=secret"
    filesystems: {"tank/pg<": true}
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, h := range list {
		fmt.Println(h.WithDefaults())
	}

	_, err = ParseHookList([]byte(`
- type: command
  path: bin/freeze
- type: mysql-lock-tables
  dsn: "backup:secret@tcp(db:3306)/"
`))
	fmt.Println(err)
	// Output:
	// type=command path=/usr/local/bin/freeze timeout=30s err_is_fatal=true post_on_pre_error=false filesystems="{\"tank/vm<\": true}"
	// type=postgres-checkpoint dsn="host=/run/postgresql user=backup password=xxxxx" timeout=30s err_is_fatal=false post_on_pre_error=false filesystems="{\"tank/pg<\": true}"
	// hook #1 (line 3): path: "bin/freeze" is not absolute
	// hook #2 (line 4): filesystems: required for a mysql-lock-tables hook: list the datasets whose snapshots need the database quiesced
}

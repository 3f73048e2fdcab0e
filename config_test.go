package hooks

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
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
    skip_exit_code: 75
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
   "err_is_fatal": true, "post_on_pre_error": true, "skip_exit_code": 75,
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
		SkipExitCode:   75,
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
		{"empty_filesystems_on_command_is_kept", "- {type: command, path: /bin/true, filesystems: {}}\n", HookList{{Type: TypeCommand, Path: "/bin/true", Filesystems: map[string]bool{}}}},
		{"yaml_1_1_booleans_as_in_zrepl", "- {type: command, path: /bin/true, err_is_fatal: yes, post_on_pre_error: on, filesystems: {tank<: no}}\n",
			HookList{{Type: TypeCommand, Path: "/bin/true", ErrIsFatal: true, PostOnPreError: true, Filesystems: map[string]bool{"tank<": false}}}},
		{"postgres_url_dsn", "- {type: postgres-checkpoint, dsn: 'postgres://backup:pw@db:5432/postgres?sslmode=disable', filesystems: {<: true}}\n",
			HookList{{Type: TypePostgresCheckpoint, DSN: "postgres://backup:pw@db:5432/postgres?sslmode=disable", Filesystems: map[string]bool{"<": true}}}},
		{"an_anchor_without_alias_is_harmless", "- &cmd {type: command, path: /bin/true}\n",
			HookList{{Type: TypeCommand, Path: "/bin/true"}}},
		{"largest_timeout", "- {type: command, path: /bin/true, timeout: 24h}\n", HookList{{Type: TypeCommand, Path: "/bin/true", Timeout: MaxHookTimeout}}},
		{"skip_exit_code_bounds", "- {type: command, path: /bin/true, skip_exit_code: 1}\n- {type: command, path: /bin/true, skip_exit_code: 255}\n",
			HookList{{Type: TypeCommand, Path: "/bin/true", SkipExitCode: 1}, {Type: TypeCommand, Path: "/bin/true", SkipExitCode: 255}}},
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
			[]want{{1, "dsn", 2, "cannot parse PostgreSQL connection string"}}},
		{"unparsable_postgres_url_dsn",
			"- type: postgres-checkpoint\n  dsn: postgres://u@[::1/db\n  filesystems: {tank<: true}\n",
			[]want{{1, "dsn", 2, "cannot parse PostgreSQL connection string"}}},
		{"unparsable_mysql_dsn",
			"- type: mysql-lock-tables\n  dsn: u@tcp(db\n  filesystems: {tank<: true}\n",
			[]want{{1, "dsn", 2, "cannot parse MySQL DSN"}}},
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
		{"unknown_anchor_has_the_line_of_its_alias",
			"- type: command\n  path: *nope\n",
			[]want{{0, "", 2, "yaml: unknown anchor 'nope' referenced"}}},
		{"unknown_anchor_line_skips_longer_names",
			"- type: command\n  path: /bin/true\n  dsn: '*nopex'\n  timeout: *nope\n",
			[]want{{0, "", 4, "yaml: unknown anchor 'nope' referenced"}}},
		{"invalid_utf8_has_its_line",
			"- type: command\n  path: /bin/true\n  timeout: 5\xffs\n",
			[]want{{0, "", 3, "yaml: invalid"}}},
		{"invalid_utf8_in_a_quoted_string_has_its_line",
			"- type: command\n\n  path: \"/bin/\xfe\"\n",
			[]want{{0, "", 3, "yaml: invalid"}}},
		{"control_character_has_its_line",
			"- type: command\n  path: /bin/true\n  \x01: x\n",
			[]want{{0, "", 3, "yaml: control characters are not allowed"}}},
		{"error_on_the_first_line_has_its_line",
			"- \"/bin/true",
			[]want{{0, "", 1, "yaml: found unexpected end of stream"}}},
		{"bad_indentation_has_its_line",
			"- type: command\n    path: /bin/true\n  timeout: 5s\n",
			[]want{{0, "", 2, "yaml: "}}},
		{"aliases_are_refused",
			"- &cmd {type: command, path: /bin/true}\n- *cmd\n",
			[]want{{0, "", 2, "YAML alias *cmd: aliases are not supported in a hook list"}}},
		{"alias_of_filesystems_is_refused",
			"- type: command\n  path: /bin/true\n  filesystems: &fs {tank<: true}\n- type: command\n  path: /bin/false\n  filesystems: *fs\n",
			[]want{{0, "", 6, "YAML alias *fs: aliases are not supported"}}},
		{"alias_as_merge_key_value_is_refused",
			"- &a {type: command, path: /bin/true}\n- <<: *a\n",
			[]want{{0, "", 2, "YAML alias *a"}}},
		{"null_err_is_fatal",
			"- type: command\n  path: /bin/true\n  err_is_fatal:\n",
			[]want{{1, "err_is_fatal", 3, "must be true or false, not null"}}},
		{"tilde_err_is_fatal",
			"- type: command\n  path: /bin/true\n  err_is_fatal: ~\n",
			[]want{{1, "err_is_fatal", 3, "must be true or false, not null"}}},
		{"null_post_on_pre_error",
			"- {type: command, path: /bin/true, post_on_pre_error: null}\n",
			[]want{{1, "post_on_pre_error", 1, "must be true or false, not null"}}},
		{"pattern_without_value",
			"- type: command\n  path: /bin/true\n  filesystems:\n    tank<:\n",
			[]want{{1, "filesystems", 4, `pattern "tank<": must be true or false, not null`}}},
		{"null_filesystems",
			"- type: command\n  path: /bin/true\n  filesystems:\n",
			[]want{{1, "filesystems", 3, "not null"}}},
		{"null_timeout",
			"- type: command\n  path: /bin/true\n  timeout:\n",
			[]want{{1, "timeout", 3, "not null"}}},
		{"null_type",
			"- type:\n  path: /bin/true\n",
			[]want{{1, "type", 1, "must be a string, not null"}}},
		{"null_dsn",
			"- type: postgres-checkpoint\n  filesystems: {tank<: true}\n  dsn: ~\n",
			[]want{{1, "dsn", 3, "must be a string, not null"}}},
		{"timeout_above_the_maximum",
			"- type: postgres-checkpoint\n  dsn: host=db\n  filesystems: {tank<: true}\n  timeout: 597h\n",
			[]want{{1, "timeout", 4, "597h0m0s is longer than the maximum of 24h0m0s"}}},
		{"timeout_that_overflows",
			"- type: command\n  path: /bin/true\n  timeout: 9999999999h\n",
			[]want{{1, "timeout", 3, `"9999999999h" is not a duration`}}},
		{"skip_exit_code_zero",
			"- type: command\n  path: /bin/true\n  skip_exit_code: 0\n",
			[]want{{1, "skip_exit_code", 3, "0 is not an exit status from 1 to 255"}}},
		{"skip_exit_code_above_255",
			"- type: command\n  path: /bin/true\n  skip_exit_code: 256\n",
			[]want{{1, "skip_exit_code", 3, "256 is not an exit status from 1 to 255"}}},
		{"skip_exit_code_negative",
			"- type: command\n  path: /bin/true\n  skip_exit_code: -1\n",
			[]want{{1, "skip_exit_code", 3, "-1 is not an exit status"}}},
		{"skip_exit_code_huge",
			"- type: command\n  path: /bin/true\n  skip_exit_code: 99999999999999999999\n",
			[]want{{1, "skip_exit_code", 3, "must be an exit status from 1 to 255, not a number"}}},
		{"skip_exit_code_must_be_a_number",
			"- type: command\n  path: /bin/true\n  skip_exit_code: '3'\n",
			[]want{{1, "skip_exit_code", 3, `not a string "3"`}}},
		{"skip_exit_code_null",
			"- type: command\n  path: /bin/true\n  skip_exit_code:\n",
			[]want{{1, "skip_exit_code", 3, "not null"}}},
		{"skip_exit_code_only_for_command_hooks",
			"- type: mysql-lock-tables\n  dsn: u@tcp(db)/\n  filesystems: {tank<: true}\n  skip_exit_code: 3\n",
			[]want{{1, "skip_exit_code", 4, "not allowed for a mysql-lock-tables hook"}}},
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

// TestParseHookListAliasBombFailsFast: a hook with thousands of patterns,
// aliased thousands of times, is a small file that stands for millions of
// patterns. It is refused at the first alias, with work and memory in
// proportion to the file, not to what the aliases stand for.
func TestParseHookListAliasBombFailsFast(t *testing.T) {
	const n = 2000
	var b strings.Builder
	b.WriteString("- &hook\n  type: command\n  path: /bin/true\n  filesystems:\n")
	for i := range n {
		fmt.Fprintf(&b, "    tank/d%d<: true\n", i)
	}
	for range n {
		b.WriteString("- *hook\n")
	}
	data := []byte(b.String())

	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	list, err := ParseHookList(data)
	runtime.ReadMemStats(&after)

	assert.Nil(t, list)
	errs := configErrors(t, err)
	require.Len(t, errs, 1, "%v", err)
	assert.Equal(t, n+5, errs[0].Line)
	assert.Contains(t, errs[0].Error(), "YAML alias *hook: aliases are not supported in a hook list")
	allocated := after.TotalAlloc - before.TotalAlloc
	limit := uint64(64*len(data) + 8<<20)
	t.Logf("%d bytes of YAML: %d bytes allocated", len(data), allocated)
	assert.Less(t, allocated, limit, "parsing allocated more than 64 bytes per byte of input")
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
	// type=postgres-checkpoint target=backup@/run/postgresql:5432 timeout=30s err_is_fatal=false post_on_pre_error=false filesystems="{\"tank/pg<\": true}"
	// hook #1 (line 3): path: "bin/freeze" is not absolute
	// hook #2 (line 4): filesystems: required for a mysql-lock-tables hook: list the datasets whose snapshots need the database quiesced
}

package hooks

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

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
		{"largest_timeout_is_valid", HookConfig{Type: TypePostgresCheckpoint, DSN: pgDSN, Filesystems: all, Timeout: MaxHookTimeout}, "", ""},
		{"timeout_above_the_maximum", HookConfig{Type: TypePostgresCheckpoint, DSN: pgDSN, Filesystems: all, Timeout: MaxHookTimeout + time.Nanosecond}, "timeout", "longer than the maximum of 24h0m0s"},
		{"largest_duration_as_timeout", HookConfig{Type: TypeCommand, Path: "/bin/true", Timeout: math.MaxInt64}, "timeout", "longer than the maximum"},
		{"command_with_skip_exit_code_is_valid", HookConfig{Type: TypeCommand, Path: "/bin/true", SkipExitCode: 75}, "", ""},
		{"skip_exit_code_out_of_range", HookConfig{Type: TypeCommand, Path: "/bin/true", SkipExitCode: 256}, "skip_exit_code", "256 is not an exit status from 1 to 255"},
		{"skip_exit_code_negative", HookConfig{Type: TypeCommand, Path: "/bin/true", SkipExitCode: -3}, "skip_exit_code", "-3 is not an exit status"},
		{"skip_exit_code_on_postgres", HookConfig{Type: TypePostgresCheckpoint, DSN: pgDSN, Filesystems: all, SkipExitCode: 3}, "skip_exit_code", "not allowed for a postgres-checkpoint hook"},
		{"first_problem_in_field_order", HookConfig{Type: TypeCommand, Timeout: -1, DSN: "x"}, "timeout", "negative"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.cfg.Validate()
			if c.field == "" {
				assert.NoError(t, err)
				return
			}
			var ce *ConfigError
			require.ErrorAs(t, err, &ce)
			assert.Equal(t, ConfigError{Field: c.field, Err: ce.Err}, *ce)
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
	validateForm := &ConfigError{Field: "dsn", Err: reason}
	assert.Equal(t, "dsn: is wrong", validateForm.Error(), "the form of HookConfig.Validate's errors")
}

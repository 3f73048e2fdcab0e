package hooks

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// environSize is the room the environment of this process takes in an exec.
func environSize() int {
	n := 0
	for _, kv := range os.Environ() {
		n += execSize(len(kv))
	}
	return n
}

func TestNewPlanRejectsAnEnvStringLinuxWouldRefuse(t *testing.T) {
	// "K=V" and its NUL may have MAX_ARG_STRLEN (131,072) bytes.
	valueOf := func(key HookEnvVar, total int) string { return strings.Repeat("x", total-len(key)-1) }
	hook := newCommandHook(t, "env", HookConfig{})
	list := List{hook}
	tests := []struct {
		name    string
		extra   Env
		wantErr string // "" for none
	}{
		{"a_value_at_the_limit_runs", Env{"BIG": valueOf("BIG", maxArgStrlen-1)}, ""},
		{"a_value_one_byte_over_fails", Env{"BIG": valueOf("BIG", maxArgStrlen)}, "BIG is too long"},
		{"a_huge_zrepl_fs_fails", Env{EnvFS: valueOf(EnvFS, 200_000)}, "ZREPL_FS is too long"},
		{"a_huge_zrepl_fs_list_fails", Env{EnvFS: "tank/db", EnvFSList: valueOf(EnvFSList, 200_000)}, "ZREPL_FS_LIST is too long"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := NewPlan(&list, PhaseSnapshot, benchNoCallback(), tt.extra)
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
				assert.Contains(t, err.Error(), "MAX_ARG_STRLEN")
				_, err = NewJobPlan(&list, PhaseSnapshot, benchNoCallback(), scopeOf(t, []string{"tank/db", "tank/log"}), tt.extra)
				if tt.extra[EnvFS] == "" && tt.extra[EnvFSList] == "" { // a job plan sets those two itself
					require.Error(t, err)
					assert.Contains(t, err.Error(), tt.wantErr)
				}
				return
			}
			require.NoError(t, err)
			p.Run(context.Background(), false)
			require.False(t, p.Report().HadError(), "a hook with the longest string Linux allows must start: %s", reportErrors(p.Report()))
		})
	}
}

func TestNewPlanRejectsAnEnvLinuxCouldNotStartAProgramWith(t *testing.T) {
	limit := execArgMax()
	hook := newCommandHook(t, "env", HookConfig{})
	list := List{hook}
	const valueLen = 100 << 10
	fill := func(room int) Env {
		env := Env{}
		for i := 0; room >= execSize(valueLen+10); i++ {
			env[HookEnvVar(fmt.Sprintf("FILL_%04d", i))] = strings.Repeat("x", valueLen)
			room -= execSize(valueLen + 10)
		}
		return env
	}

	t.Run("as_much_as_fits_runs", func(t *testing.T) {
		env := fill(limit - environSize() - execReserve)
		require.NotEmpty(t, env)
		p, err := NewPlan(&list, PhaseSnapshot, benchNoCallback(), env)
		require.NoError(t, err)
		p.Run(context.Background(), false)
		require.False(t, p.Report().HadError(), "a hook within the limit must start: %s", reportErrors(p.Report()))
	})
	t.Run("more_fails_before_any_hook_runs", func(t *testing.T) {
		env := fill(limit + valueLen)
		_, err := NewPlan(&list, PhaseSnapshot, benchNoCallback(), env)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "bytes Linux starts a program with")
		_, err = NewJobPlan(&list, PhaseSnapshot, benchNoCallback(), scopeOf(t, manyDatasets(1000)), env)
		require.Error(t, err)
	})
}

// TestNewPlanChecksOnlyTheEnvOfWhatStartsAProgram: an env that Linux would
// refuse a program is no error for a plan that starts none (in-process hooks,
// a Go callback); a callback made by NewCommandCallbackHook is checked as a
// command hook is, before any hook runs.
func TestNewPlanChecksOnlyTheEnvOfWhatStartsAProgram(t *testing.T) {
	t.Parallel()
	huge := Env{EnvFS: "tank/db", "BIG": strings.Repeat("x", maxArgStrlen)}
	inProcess := func(preRan *atomic.Bool) List {
		return List{&testHook{name: "a", pre: func(context.Context) error { preRan.Store(true); return nil }}}
	}

	t.Run("in_process_hooks_and_a_go_callback", func(t *testing.T) {
		t.Parallel()
		var got string
		var preRan atomic.Bool
		list := inProcess(&preRan)
		cb := NewCallbackHook("snapshot", func(ctx context.Context) error { got = CallbackEnv(ctx)["BIG"]; return nil }, nil)
		p, err := NewPlan(&list, PhaseSnapshot, cb, huge)
		require.NoError(t, err)
		p.Run(context.Background(), false)
		require.False(t, p.Report().HadError(), "%s", reportErrors(p.Report()))
		assert.True(t, preRan.Load())
		assert.Len(t, got, maxArgStrlen, "the callback sees the whole env")
	})
	t.Run("a_command_callback", func(t *testing.T) {
		t.Parallel()
		var preRan atomic.Bool
		list := inProcess(&preRan)
		cb := NewCommandCallbackHook("snapshot", "/bin/true", nil, nil, 0)
		_, err := NewPlan(&list, PhaseSnapshot, cb, huge)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "env of the callback snapshot: BIG is too long")
		_, err = NewJobPlan(&list, PhaseSnapshot, cb, scopeOf(t, []string{"tank/db", "tank/log"}), huge)
		assert.ErrorContains(t, err, "env of the callback snapshot: BIG is too long")
		assert.False(t, preRan.Load(), "no hook ran")
	})
	t.Run("a_command_callback_within_the_limits_runs", func(t *testing.T) {
		t.Parallel()
		out := filepath.Join(t.TempDir(), "env")
		cb := NewCommandCallbackHook("snapshot", "/bin/sh", []string{"-c", `printf %s "$ZREPL_FS $ZREPL_CONSISTENCY" >"$OUT"`}, Env{"OUT": out}, 0)
		p, err := NewPlan(&List{}, PhaseSnapshot, cb, Env{EnvFS: "tank/db"})
		require.NoError(t, err)
		p.Run(context.Background(), false)
		require.False(t, p.Report().HadError(), "%s", reportErrors(p.Report()))
		b, err := os.ReadFile(out)
		require.NoError(t, err)
		assert.Equal(t, "tank/db "+ConsistencyCrash, string(b))
	})
}

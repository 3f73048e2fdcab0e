package hooks

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCallbackGetsTheConsistencyLabel(t *testing.T) {
	fail := func(context.Context) error { return errors.New("cannot quiesce") }
	tests := []struct {
		name  string
		hooks List
		want  string // "" when the callback does not run
	}{
		{"no_hook_matched_is_crash", nil, ConsistencyCrash},
		{"one_hook_ok_is_application", List{&testHook{name: "a"}}, ConsistencyApplication},
		{"every_pre_edge_ok_is_application", List{&testHook{name: "a"}, &testHook{name: "b", fatal: true}}, ConsistencyApplication},
		{"a_failed_post_edge_does_not_count", List{&testHook{name: "a", post: fail}}, ConsistencyApplication},
		{"a_non_fatal_pre_error_is_crash", List{&testHook{name: "a"}, &testHook{name: "b", pre: fail}}, ConsistencyCrash},
		{"a_non_fatal_pre_error_with_post_on_pre_error_is_crash", List{&testHook{name: "a", pre: fail, postOnPreError: true}}, ConsistencyCrash},
		{"a_fatal_pre_error_runs_no_callback", List{&testHook{name: "a", pre: fail, fatal: true}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ran := "", false
			cb := NewCallbackHook("snapshot", func(ctx context.Context) error {
				got, ran = CallbackEnv(ctx)[EnvConsistency], true
				return nil
			}, nil)
			p, err := NewPlan(&tt.hooks, PhaseSnapshot, cb, Env{EnvFS: "tank/db"})
			require.NoError(t, err)
			p.Run(context.Background(), false)
			rep := p.Report()
			step, _ := rep.Callback()
			assert.Equal(t, tt.want != "", ran)
			assert.Equal(t, tt.want, got, "ZREPL_CONSISTENCY")
			assert.Equal(t, tt.want, step.Consistency, "Step.Consistency")

			js, err := json.Marshal(step)
			require.NoError(t, err)
			var lf strings.Builder
			require.NoError(t, rep.WriteLogfmt(&lf))
			if tt.want == "" {
				assert.NotContains(t, string(js), "consistency")
				assert.NotContains(t, lf.String(), "consistency")
				assert.NotContains(t, step.String(), "consistency")
				return
			}
			assert.Contains(t, string(js), `"consistency":"`+tt.want+`"`)
			assert.Contains(t, lf.String(), "edge=Callback status=Ok hook=snapshot fatal=false")
			assert.Contains(t, lf.String(), " consistency="+tt.want+" ")
			assert.True(t, strings.HasSuffix(step.String(), "[Callback]  snapshot consistency="+tt.want), step.String())
			assert.Contains(t, rep.String(), "consistency="+tt.want)
		})
	}
}

func TestCommandCallbackProgramGetsTheConsistencyLabelAndThePlanEnv(t *testing.T) {
	privateTempDir(t)
	hooks := List{&testHook{name: "a"}}
	cb := NewCallbackHook("snapshot", NewCommandCallback("snapshot", hookPath(t, "fs-list-file"), nil, Env{"WANT_LINES": "2"}, 0), nil)
	extra := Env{EnvSnapshot: "s1", "WANT_ENV_LIST": "set", "SEEN": t.TempDir() + "/seen", "WANT_LINES": "overridden by the callback's own env"}
	p, err := NewJobPlan(&hooks, PhaseSnapshot, cb, scopeOf(t, []string{"tank/db", "tank/log"}), extra)
	require.NoError(t, err)
	logger, logs := testLogger()
	p.Run(WithLogger(context.Background(), logger), false)
	rep := p.Report()
	require.False(t, rep.HadError(), reportErrors(rep))
	assert.Contains(t, logs.String(), `stdout="consistency=application"`)
}

package hooks

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestStepStatusAndEdgeNames(t *testing.T) {
	t.Parallel()
	for s, want := range map[StepStatus]string{
		StepPending: "Pending", StepExec: "Exec", StepOk: "Ok", StepErr: "Err",
		StepSkippedDueToFatalErr: "SkippedDueToFatalErr", StepSkippedDueToPreErr: "SkippedDueToPreErr",
		StepStatus(3): "StepStatus(3)",
	} {
		assert.Equal(t, want, s.String())
	}
	assert.Equal(t, []StepStatus{1, 2, 4, 8, 16, 32}, []StepStatus{StepPending, StepExec, StepOk, StepErr, StepSkippedDueToFatalErr, StepSkippedDueToPreErr})
	assert.Equal(t, []Edge{1, 2, 4}, []Edge{Pre, Callback, Post})
	assert.Equal(t, "Pre Callback Post Edge(3)", strings.Join([]string{Pre.String(), Callback.String(), Post.String(), Edge(3).String()}, " "))

	var s StepStatus
	require.NoError(t, s.UnmarshalText([]byte("SkippedDueToPreErr")))
	assert.Equal(t, StepSkippedDueToPreErr, s)
	assert.Error(t, s.UnmarshalText([]byte("Nope")))
	var e Edge
	require.NoError(t, e.UnmarshalText([]byte("Post")))
	assert.Equal(t, Post, e)
}

func sampleReport() PlanReport {
	begin := time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)
	fatalHook := &testHook{name: "/etc/hooks/freeze", fatal: true}
	cb := NewCallbackHook("snapshot", nil, exactFilter{})
	return PlanReport{
		{Hook: fatalHook, Edge: Pre, Status: StepOk, Begin: begin, End: begin.Add(12 * time.Millisecond), Report: okReport},
		{Hook: cb, Edge: Callback, Status: StepErr, Begin: begin, End: begin.Add(1500 * time.Millisecond),
			Report: &CallbackHookReport{Name: "snapshot", Err: errors.New("dataset busy")}},
		{Hook: fatalHook, Edge: Post, Status: StepSkippedDueToPreErr},
		{Hook: fatalHook, Edge: Post, Status: StepPending},
	}
}

func TestPlanReportString(t *testing.T) {
	t.Parallel()
	want := strings.Join([]string{
		"01 [Ok] [ 12ms] ! [Pre]  /etc/hooks/freeze",
		"02 [Err] [ 1.5s] ~ [Callback]  snapshot",
		"03 [SkippedDueToPreErr] [   0s] ~ [Post]  /etc/hooks/freeze",
		"04 [Pending] [  ...] ~ [Post]  /etc/hooks/freeze",
	}, "\n")
	assert.Equal(t, want, sampleReport().String())
	assert.False(t, PlanReport{}.HadError())
	assert.True(t, sampleReport().HadError())
	assert.False(t, sampleReport().HadFatalError())

	running := Step{Hook: &testHook{name: "x"}, Edge: Pre, Status: StepExec, Begin: time.Now().Add(-2 * time.Second)}
	assert.Regexp(t, `^\[Exec\] \[ *2(\.\d+)?s\] ~ \[Pre\]  x$`, running.String())
}

func TestPlanReportJSON(t *testing.T) {
	t.Parallel()
	b, err := json.Marshal(sampleReport())
	require.NoError(t, err)
	var steps []map[string]any
	require.NoError(t, json.Unmarshal(b, &steps))
	require.Len(t, steps, 4)
	assert.Equal(t, map[string]any{
		"step": 1.0, "edge": "Pre", "status": "Ok", "hook": "/etc/hooks/freeze", "fatal": true,
		"begin": "2026-11-25T08:00:00Z", "end": "2026-11-25T08:00:00.012Z",
		"duration": "12ms", "duration_seconds": 0.012, "report": "ok",
	}, steps[0])
	assert.Equal(t, "snapshot error: dataset busy", steps[1]["error"])
	assert.Equal(t, "SkippedDueToPreErr", steps[2]["status"])
	assert.NotContains(t, steps[2], "begin")
	assert.NotContains(t, steps[3], "report")

	one, err := json.Marshal(sampleReport()[1])
	require.NoError(t, err)
	assert.Contains(t, string(one), `"status":"Err"`)

	// A step without hook or report must not panic.
	_, err = json.Marshal(PlanReport{{}})
	assert.NoError(t, err)
}

func TestPlanReportLogfmt(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	require.NoError(t, sampleReport().WriteLogfmt(&buf))
	recs := logRecords(t, buf.String())
	require.Len(t, recs, 4)
	assert.Equal(t, "1", recs[0]["step"])
	assert.Equal(t, "Ok", recs[0]["status"])
	assert.Equal(t, "true", recs[0]["fatal"])
	assert.Equal(t, "snapshot error: dataset busy", recs[1]["error"])
	assert.Equal(t, "Pending", recs[3]["status"])
	assert.Equal(t, 4, strings.Count(buf.String(), "\n"))
}

func TestPlanReportCallback(t *testing.T) {
	t.Parallel()
	cb, ok := sampleReport().Callback()
	assert.True(t, ok)
	assert.Equal(t, StepErr, cb.Status)
	_, ok = PlanReport{}.Callback()
	assert.False(t, ok)
}

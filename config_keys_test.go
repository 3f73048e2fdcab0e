package hooks

import (
	"bytes"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

func TestHookTypes(t *testing.T) {
	want := []string{TypeCommand, TypePostgresCheckpoint, TypeMySQLLockTables, TypeMariaDBBackupStage, TypeFSFreeze, TypeQEMUGuestAgent}
	got := HookTypes()
	assert.Equal(t, want, got)
	got[0] = "changed"
	assert.Equal(t, want, HookTypes(), "HookTypes returns a slice of the caller's")
}

// TestHookKeyTable checks the table's own consistency: unique names, a
// decoder for each key, only known hook types, and no type that requires a
// key it does not take.
func TestHookKeyTable(t *testing.T) {
	seen := map[string]bool{}
	for _, k := range hookKeyTable {
		assert.False(t, seen[k.name], "key %s twice", k.name)
		seen[k.name] = true
		assert.NotNil(t, k.decode, "key %s has no decoder", k.name)
		for _, typ := range slices.Concat(k.types, k.required) {
			assert.Contains(t, HookTypes(), typ, "key %s", k.name)
		}
		for _, typ := range k.required {
			assert.True(t, k.takes(typ), "key %s is required for %s, which does not take it", k.name, typ)
		}
	}
	assert.Equal(t, "type, err_is_fatal, timeout, filesystems, post_on_pre_error, path, dsn, skip_exit_code, coverage, mountpoints, max_freeze, socket", hookKeyNames())
	assert.Equal(t, `"command", "postgres-checkpoint", "mysql-lock-tables", "mariadb-backup-stage", "fsfreeze" or "qemu-guest-agent"`, hookTypeNames())
}

// decodeValue decodes the YAML value src, the value of key "k" on line 1,
// with decode and returns the errors it reported.
func decodeValue(t *testing.T, decode func(*hookDecoder, string, *yaml.Node, *HookConfig), src string) []string {
	t.Helper()
	var doc yaml.Node
	require.NoError(t, yaml.Unmarshal([]byte(src), &doc))
	d := &hookDecoder{num: 1, patternLine: map[string]int{}, reported: map[string]bool{}}
	var c HookConfig
	decode(d, "k", doc.Content[0], &c)
	var errs []string
	for _, e := range d.errs {
		errs = append(errs, e.Error())
	}
	return errs
}

// The decoders for the kinds of keys that the table's doc comment shows:
// a list of strings, a duration and an enum.
func TestHookKeyDecoders(t *testing.T) {
	var list []string
	strs := stringsValue(func(*HookConfig) *[]string { return &list })
	assert.Empty(t, decodeValue(t, strs, "[/a, /b]"))
	assert.Equal(t, []string{"/a", "/b"}, list)
	assert.Equal(t, []string{"hook #1 (line 1): k: must be a list of strings, not a string"}, decodeValue(t, strs, "/a"))
	assert.Equal(t, []string{
		"hook #1 (line 1): k: item 2: must be a string, not an integer",
		"hook #1 (line 1): k: item 3: must not be empty",
	}, decodeValue(t, strs, `[/a, 1, ""]`))

	var d time.Duration
	dur := durationValue(func(*HookConfig) *time.Duration { return &d })
	assert.Empty(t, decodeValue(t, dur, "1m30s"))
	assert.Equal(t, 90*time.Second, d)
	assert.Equal(t, []string{`hook #1 (line 1): k: "soon" is not a duration (write it like "30s" or "1m30s")`}, decodeValue(t, dur, "soon"))

	var mode string
	enum := enumValue(func(*HookConfig) *string { return &mode }, "warn", "strict", "off")
	assert.Empty(t, decodeValue(t, enum, "strict"))
	assert.Equal(t, "strict", mode)
	assert.Equal(t, []string{`hook #1 (line 1): k: must be warn, strict or off, not a string "loud"`}, decodeValue(t, enum, "loud"))
	assert.Equal(t, []string{`hook #1 (line 1): k: must be warn, strict or off, not a boolean "off"`}, decodeValue(t, enum, "!!bool off"))

	assert.NoError(t, absPathProblem("/run/x.sock"))
	assert.EqualError(t, absPathProblem("x.sock"), `"x.sock" is not absolute`)
	assert.EqualError(t, absPathProblem("/x\x00"), "contains a NUL byte")
}

// tooLarge checks that err is ParseHookList's error for a hook list over
// MaxHookListSize.
func tooLarge(t *testing.T, err error) {
	t.Helper()
	errs := configErrors(t, err)
	require.Len(t, errs, 1)
	assert.Equal(t, "line 1: hook list is larger than 1 MiB, the most a hook list may be", errs[0].Error())
}

func TestParseHookListSizeBound(t *testing.T) {
	// A valid list padded with a comment to exactly the bound is accepted.
	list := "- type: command\n  path: /bin/true\n#"
	atBound := list + strings.Repeat("x", MaxHookListSize-len(list))
	hooks, err := ParseHookList([]byte(atBound))
	require.NoError(t, err)
	assert.Len(t, hooks, 1)

	hooks, err = ParseHookList([]byte(atBound + "x"))
	assert.Nil(t, hooks)
	tooLarge(t, err)
}

// endless is a reader of spaces that never ends; it counts what it gave.
type endless struct{ n int64 }

func (r *endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = ' '
	}
	r.n += int64(len(p))
	return len(p), nil
}

func TestReadHookList(t *testing.T) {
	hooks, err := ReadHookList(strings.NewReader("- type: command\n  path: /bin/true\n"))
	require.NoError(t, err)
	assert.Equal(t, HookList{{Type: TypeCommand, Path: "/bin/true"}}, hooks)

	r := &endless{}
	hooks, err = ReadHookList(r)
	assert.Nil(t, hooks)
	tooLarge(t, err)
	assert.Equal(t, int64(MaxHookListSize+1), r.n, "ReadHookList read past the bound")

	hooks, err = ReadHookList(bytes.NewReader(make([]byte, 3*MaxHookListSize)))
	assert.Nil(t, hooks)
	tooLarge(t, err)

	broken := errors.New("disk on fire")
	_, err = ReadHookList(io.MultiReader(strings.NewReader("- "), iotest.ErrReader(broken)))
	assert.ErrorIs(t, err, broken)
	assert.EqualError(t, err, "read hook list: disk on fire")
}

// hookKey.applies, the shared part of a key's check, for a key that only
// command hooks take and require.
func TestHookKeyApplies(t *testing.T) {
	k := hookKey{name: "k", types: []string{TypeCommand}, required: []string{TypeCommand}}
	for _, tc := range []struct {
		typ     string
		set     bool
		applies bool
		want    string
	}{
		{TypeCommand, true, true, ""},
		{TypeCommand, false, false, "required for a command hook"},
		{TypePostgresCheckpoint, true, false, "not allowed for a postgres-checkpoint hook"},
		{TypePostgresCheckpoint, false, false, ""},
		{"unknown", true, false, ""},
		{"", true, false, ""},
	} {
		var ps problems
		assert.Equal(t, tc.applies, k.applies(tc.typ, tc.set, &ps), "%q set=%v", tc.typ, tc.set)
		var got string
		if len(ps) > 0 {
			require.Len(t, ps, 1)
			assert.Equal(t, "k", ps[0].field)
			got = ps[0].err.Error()
		}
		assert.Equal(t, tc.want, got, "%q set=%v", tc.typ, tc.set)
	}
}

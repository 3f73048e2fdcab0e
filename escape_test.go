package hooks

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os/exec"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/go-logfmt/logfmt"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// hostile holds a control rune of every kind: C0 (ESC, CR, newline), DEL,
// C1 (CSI, OSC) and the bidi controls.
const hostile = "a\x1b[31mb\rc\nd\x7fe\u009b31mf\u009d0;owned\u0007g\u202eh\u2066i\u200fj\u061ck"

// requireNoControl fails if s holds a control rune other than a newline
// (which ends lines), or invalid UTF-8.
func requireNoControl(t *testing.T, s string) {
	t.Helper()
	require.True(t, utf8.ValidString(s), "invalid UTF-8 in %q", s)
	for i, r := range s {
		if r != '\n' && IsControl(r) {
			t.Fatalf("control rune %U at byte %d of %q", r, i, s)
		}
	}
}

func TestIsControl(t *testing.T) {
	for _, r := range []rune{0, '\t', '\n', '\r', 0x1b, 0x1f, 0x7f, 0x80, 0x9b, 0x9d, 0x9f, 0x61c, 0x200e, 0x200f, 0x202a, 0x202e, 0x2066, 0x2069} {
		assert.True(t, IsControl(r), "%U", r)
	}
	for _, r := range []rune{' ', '~', 'a', 0xa0, 0xfc, 0x200b, 0x2029, 0x2070, 0x202f, 0xfffd, '\\'} {
		assert.False(t, IsControl(r), "%U", r)
	}
}

func TestEscape(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain /etc/hooks/x 'q' \\ ü", "plain /etc/hooks/x 'q' \\ ü"},
		{"a\nb\tc\rd", `a\nb\tc\rd`},
		{"\x1b[2J\x00\x7f", `\u001b[2J\u0000\u007f`},
		{"x\u009by\u009dz", `x\u009by\u009dz`},
		{"\u202eevil\u202c \u2066\u2069 \u200e\u200f\u061c", `\u202eevil\u202c \u2066\u2069 \u200e\u200f\u061c`},
		{"bad\xffbyte", `bad\ufffdbyte`},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, Escape(tt.in), "%q", tt.in)
	}
	requireNoControl(t, Escape(hostile))
}

func TestLogfmtHandlerEscapesEveryControlRune(t *testing.T) {
	var buf strings.Builder
	log := slog.New(NewLogfmtHandler(&buf, nil))
	log.With("with", "w\u009bx").Info("msg\u202e"+hostile,
		"stdout", hostile,
		"bare", `back\slash`+"\u009b",
		"k\u009dey\u202e", "v",
		"err", errors.New("failed: \u009b6n"),
		slog.Group("g", "inner", "\u2066x"))
	out := buf.String()
	require.True(t, strings.HasSuffix(out, "\n"))
	requireNoControl(t, strings.TrimSuffix(out, "\n"))

	// Every value decodes to what was logged: the escapes are logfmt's own.
	d := logfmt.NewDecoder(strings.NewReader(out))
	require.True(t, d.ScanRecord())
	got := map[string]string{}
	for d.ScanKeyval() {
		got[string(d.Key())] = string(d.Value())
	}
	require.NoError(t, d.Err())
	assert.Equal(t, "msg\u202e"+hostile, got["msg"])
	assert.Equal(t, hostile, got["stdout"])
	assert.Equal(t, `back\slash`+"\u009b", got["bare"])
	assert.Equal(t, "v", got["key"], "controls are dropped from a key")
	assert.Equal(t, "failed: \u009b6n", got["err"])
	assert.Equal(t, "w\u009bx", got["with"])
	assert.Equal(t, "\u2066x", got["g.inner"])
}

// hostileHook is a hook whose name and report hold control runes.
type hostileHook struct{ testHook }

func (h *hostileHook) String() string { return "hook" + hostile }

func TestReportsEscapeEveryControlRune(t *testing.T) {
	hooks := List{&hostileHook{testHook{name: "x", pre: func(context.Context) error { return errors.New("pre" + hostile) }}}}
	cb := NewCallbackHook("snap"+hostile, func(context.Context) error { return nil }, nil)
	p, err := NewJobPlan(&hooks, PhaseSnapshot, cb, scopeOf(t, []string{"tank/db", "tank/log"}), nil)
	require.NoError(t, err)
	t.Setenv("TMPDIR", t.TempDir())
	p.Run(context.Background(), false)
	rep := p.Report()

	text := rep.String()
	assert.Len(t, strings.Split(text, "\n"), 3, "one line per step")
	requireNoControl(t, text)
	for _, s := range rep {
		requireNoControl(t, s.String())
	}
	assert.Contains(t, text, `[Callback]  snapa\u001b[31mb\rc\nd\u007fe\u009b31mf`)

	js, err := json.Marshal(rep)
	require.NoError(t, err)
	requireNoControl(t, string(js))
	var back []map[string]any
	require.NoError(t, json.Unmarshal(js, &back))
	assert.Equal(t, "hook"+hostile, back[0]["hook"], "JSON escapes decode to the runes")

	var lf strings.Builder
	require.NoError(t, rep.WriteLogfmt(&lf))
	requireNoControl(t, lf.String())
	d := logfmt.NewDecoder(strings.NewReader(lf.String()))
	require.True(t, d.ScanRecord())
	for d.ScanKeyval() {
		if string(d.Key()) == "hook" {
			assert.Equal(t, "hook"+hostile, string(d.Value()))
		}
	}
}

func TestCommandHookReportEscapesControlsAndStaysPastable(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Fatal("bash is needed to paste a $'...' line")
	}
	h := newCommandHook(t, "env", HookConfig{})
	value := "tank/db\ntank/log" + hostile + "'\\\xff"
	rep := runHook(t, context.Background(), h, Pre, false, Env{EnvFS: value, EnvSnapshot: "s"})
	require.NoError(t, rep.Err)
	requireNoControl(t, rep.String())
	assert.Contains(t, rep.String(), `ZREPL_FS=$'tank/db\ntank/log`)

	// Pasted into bash, the line runs the hook with the same env.
	line := strings.TrimSuffix(strings.TrimPrefix(rep.String(), `command hook: "`), `"`)
	out, err := exec.Command("bash", "-c", line).Output()
	require.NoError(t, err)
	assert.Equal(t, string(rep.CapturedStdoutStderrCombined), string(out))

	failed := &CommandHookReport{Command: "/bin/x\u009b", Env: Env{EnvFS: "\u202e"}, Err: errors.New("exit\u009b status 1")}
	requireNoControl(t, failed.String())
	requireNoControl(t, failed.Error())
}

func FuzzEscape(f *testing.F) {
	for _, s := range []string{"", "plain", hostile, "\xff\xfe", `\u009b`, "tank/db\ntank/log"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e := Escape(s)
		if !utf8.ValidString(e) {
			t.Fatalf("Escape(%q) = %q: invalid UTF-8", s, e)
		}
		for _, r := range e {
			if IsControl(r) {
				t.Fatalf("Escape(%q) = %q holds %U", s, e, r)
			}
		}
		if indexControl(s) < 0 && e != s {
			t.Fatalf("Escape(%q) = %q: a text without controls must stay as it is", s, e)
		}
		if Escape(e) != e {
			t.Fatalf("Escape is not idempotent on %q", s)
		}
		// The shell quoting of a report is reversible: bash's $'...' rules,
		// decoded here by strconv's Go rules for the escapes it uses.
		q := shellQuoteControls(s)
		for _, r := range q {
			if IsControl(r) {
				t.Fatalf("shellQuoteControls(%q) = %q holds %U", s, q, r)
			}
		}
		if back := unquoteANSIC(t, q); back != s {
			t.Fatalf("shellQuoteControls(%q) = %q decodes to %q", s, q, back)
		}
	})
}

// unquoteANSIC decodes a $'...' string of shellQuoteControls.
func unquoteANSIC(t *testing.T, q string) string {
	t.Helper()
	if !strings.HasPrefix(q, "$'") || !strings.HasSuffix(q, "'") {
		t.Fatalf("not $'...': %q", q)
	}
	q = q[2 : len(q)-1]
	var b []byte
	for i := 0; i < len(q); i++ {
		if q[i] != '\\' {
			b = append(b, q[i])
			continue
		}
		i++
		switch q[i] {
		case 'n':
			b = append(b, '\n')
		case 'r':
			b = append(b, '\r')
		case 't':
			b = append(b, '\t')
		case '\\', '\'':
			b = append(b, q[i])
		case 'x':
			var v byte
			for _, c := range []byte(q[i+1 : i+3]) {
				v = v<<4 | unhex(c)
			}
			b = append(b, v)
			i += 2
		case 'u':
			var r rune
			for _, c := range []byte(q[i+1 : i+5]) {
				r = r<<4 | rune(unhex(c))
			}
			b = utf8.AppendRune(b, r)
			i += 4
		default:
			t.Fatalf("unknown escape \\%c in %q", q[i], q)
		}
	}
	return string(b)
}

func unhex(c byte) byte {
	if c >= 'a' {
		return c - 'a' + 10
	}
	return c - '0'
}

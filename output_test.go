package hooks

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

type piece struct {
	text    string
	partial bool
}

func split(max int, writes ...string) []piece {
	var out []piece
	s := &lineSplitter{max: max, emit: func(line []byte, partial bool) {
		out = append(out, piece{string(line), partial})
	}}
	for _, w := range writes {
		s.Write([]byte(w))
	}
	s.Flush()
	return out
}

func TestLineSplitter(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name   string
		max    int
		writes []string
		want   []piece
	}{
		{"one_line_per_record", 0, []string{"a\nb\n"}, []piece{{"a", false}, {"b", false}}},
		{"line_split_across_writes_is_one_record", 0, []string{"hel", "lo\nwor", "ld\n"}, []piece{{"hello", false}, {"world", false}}},
		{"crlf_is_trimmed_even_across_writes", 0, []string{"a\r", "\nb\r\n"}, []piece{{"a", false}, {"b", false}}},
		{"last_line_without_newline_is_flushed", 0, []string{"a\nlast"}, []piece{{"a", false}, {"last", false}}},
		{"empty_lines_are_kept", 0, []string{"\n\n"}, []piece{{"", false}, {"", false}}},
		{"long_line_comes_in_pieces", 4, []string{"abcdefghij\n"}, []piece{{"abcd", true}, {"efgh", true}, {"ij", false}}},
		{"long_pending_line_comes_in_pieces", 4, []string{"abc", "defgh", "ij\n"}, []piece{{"abcd", true}, {"efgh", true}, {"ij", false}}},
		{"cr_at_a_cut_waits_for_its_newline", 4, []string{"abc\r", "\n"}, []piece{{"abc", false}}},
		{"lone_cr_is_kept", 0, []string{"a\rb\n"}, []piece{{"a\rb", false}}},
		{"nothing_in_nothing_out", 0, nil, nil},
	} {
		assert.Equal(t, c.want, split(c.max, c.writes...), c.name)
	}
}

// joinPieces rebuilds the stream a splitter saw, minus trimmed "\r\n".
func joinPieces(ps []piece) string {
	var b strings.Builder
	for _, p := range ps {
		b.WriteString(p.text)
		if !p.partial {
			b.WriteByte('\n')
		}
	}
	return b.String()
}

func FuzzLineSplitter(f *testing.F) {
	f.Add([]byte("hello\nworld"), uint8(3), uint8(5))
	f.Add([]byte("a\r\nb\rc\n\n\xff\x00"), uint8(1), uint8(2))
	f.Add(bytes.Repeat([]byte("x"), 300), uint8(7), uint8(64))
	f.Fuzz(func(t *testing.T, data []byte, chunk, max uint8) {
		size := int(chunk%16) + 1
		var writes []string
		for rest := data; len(rest) > 0; {
			n := min(size, len(rest))
			writes = append(writes, string(rest[:n]))
			rest = rest[n:]
		}
		lim := int(max%32) + 2
		ps := split(lim, writes...)
		for _, p := range ps {
			if len(p.text) > lim {
				t.Fatalf("piece longer than %d: %q", lim, p.text)
			}
			if strings.Contains(p.text, "\n") {
				t.Fatalf("piece with a newline: %q", p.text)
			}
		}
		// Every byte comes out once, in order, but for the "\r" of "\r\n"
		// and a final newline the input may lack.
		want := strings.ReplaceAll(string(data), "\r\n", "\n")
		got := joinPieces(ps)
		if !strings.HasSuffix(want, "\n") && len(want) > 0 {
			want += "\n"
		}
		if got != want {
			t.Fatalf("pieces %+v do not rebuild %q", ps, data)
		}
	})
}

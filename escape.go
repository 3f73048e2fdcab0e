package hooks

import (
	"strings"
	"unicode/utf8"
)

// IsControl reports whether r is a rune that this package never writes
// unescaped to a terminal, a log or a report, because a terminal may act on
// it or show text in an order other than the bytes': the C0 controls
// (U+0000–U+001F, newline and tab included), DEL (U+007F), the C1 controls
// (U+0080–U+009F, such as U+009B CSI and U+009D OSC), and the bidirectional
// controls (U+061C, U+200E, U+200F, U+202A–U+202E, U+2066–U+2069).
//
// It is the one rule for the package and the snaphook CLI: Escape, the
// logfmt handler (NewLogfmtHandler), the text, JSON and logfmt encodings of
// reports, and the output of snaphook all escape exactly these runes.
func IsControl(r rune) bool {
	switch {
	case r < 0x20, r >= 0x7f && r <= 0x9f:
		return true
	case r == 0x061c, r == 0x200e, r == 0x200f:
		return true
	case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069:
		return true
	}
	return false
}

// Escape returns s with every control rune (see IsControl) written as an
// escape in the style of Go's %q and of JSON: "\n", "\r", "\t", and "\u"
// with four hex digits for the others ("\u001b", "\u009b", "\u202e"). A byte
// that is not valid UTF-8 becomes "\ufffd". Everything else, the backslash
// included, is left as it is, so that a text without controls is returned
// unchanged (a shell-quoted command line stays one to paste): the result
// has no control rune and is valid UTF-8, but Escape is not reversible, as a
// text may hold "\u009b" literally.
func Escape(s string) string {
	i := indexControl(s)
	if i < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	b.WriteString(s[:i])
	for _, r := range s[i:] { // range yields U+FFFD for each invalid byte
		if r == utf8.RuneError || IsControl(r) {
			writeRuneEscape(&b, r)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// indexControl returns the index of the first control rune or invalid
// UTF-8 byte of s, or -1 if there is none.
func indexControl(s string) int {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c < 0x20 || c == 0x7f {
				return i
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError || IsControl(r) {
			return i
		}
		i += size
	}
	return -1
}

// writeRuneEscape writes the escape of the control rune r (or of an invalid
// byte, as U+FFFD).
func writeRuneEscape(b *strings.Builder, r rune) {
	const hex = "0123456789abcdef"
	switch r {
	case '\n':
		b.WriteString(`\n`)
	case '\r':
		b.WriteString(`\r`)
	case '\t':
		b.WriteString(`\t`)
	default:
		b.WriteString(`\u`)
		b.WriteByte(hex[r>>12&0xf])
		b.WriteByte(hex[r>>8&0xf])
		b.WriteByte(hex[r>>4&0xf])
		b.WriteByte(hex[r&0xf])
	}
}

// escapeLines escapes each line of s (see Escape) and keeps the newlines
// between them: for texts of several lines, such as PlanReport.String.
func escapeLines(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = Escape(l)
	}
	return strings.Join(lines, "\n")
}

// hasWideControl reports whether b holds DEL or a control rune at or above
// U+0080 (C1 or bidi), which encoding/json passes through as they are (and
// go-logfmt too, but for DEL).
func hasWideControl(b []byte) bool {
	for i := 0; i < len(b); {
		if b[i] < utf8.RuneSelf {
			if b[i] == 0x7f {
				return true
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(b[i:])
		if IsControl(r) {
			return true
		}
		i += size
	}
	return false
}

// escapeWideControls returns b, a JSON text or a quoted logfmt value, with
// each DEL, C1 and bidi control rune replaced by its "\uXXXX" escape, which
// both formats decode to the rune again. The encoders escape the C0
// controls themselves; b must hold these runes only inside quoted strings.
func escapeWideControls(b []byte) []byte {
	if !hasWideControl(b) {
		return b
	}
	var out strings.Builder
	out.Grow(len(b) + 16)
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r >= 0x7f && IsControl(r) {
			writeRuneEscape(&out, r)
		} else {
			out.Write(b[i : i+size])
		}
		i += size
	}
	return []byte(out.String())
}

// shellQuoteControls quotes s, which holds a control rune or invalid UTF-8,
// for a shell as $'...', the quoting of bash, zsh, ksh and POSIX.1-2024:
// a backslash and a quote are escaped with a backslash, the controls as by
// Escape ("\n", "\u009b", which bash and zsh decode), and each byte that is
// not valid UTF-8 as "\xff". The result has no control rune, and pasted into
// bash it is s again.
func shellQuoteControls(s string) string {
	const hex = "0123456789abcdef"
	var b strings.Builder
	b.Grow(len(s) + 16)
	b.WriteString("$'")
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b.WriteString(`\x`)
			b.WriteByte(hex[s[i]>>4])
			b.WriteByte(hex[s[i]&0xf])
		case r == '\\' || r == '\'':
			b.WriteByte('\\')
			b.WriteByte(s[i])
		case IsControl(r):
			writeRuneEscape(&b, r)
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	b.WriteByte('\'')
	return b.String()
}

// Command chatty is the very chatty hook of the benchmarks in bench_test.go:
// it writes a stream of fixed-size text lines to stdout as fast as it can.
//
// A command hook runs without arguments, so chatty is configured through its
// environment:
//
//	CHATTY_BYTES  how many bytes to write, rounded down to whole lines (default 256 MiB)
//	CHATTY_LINE   the length of a line, newline included (default 80, at least 2)
//
// It writes in chunks of whole lines just under 64 KiB (the size of a Linux
// pipe buffer) built once, so the writer costs next to nothing and the
// benchmark measures the reader.
package main

import (
	"fmt"
	"os"
	"strconv"
)

func main() {
	total := envInt("CHATTY_BYTES", 256<<20)
	lineLen := envInt("CHATTY_LINE", 80)
	if lineLen < 2 {
		fail("CHATTY_LINE must be at least 2, got %d", lineLen)
	}
	lines := total / lineLen

	perChunk := max(1, (64<<10)/lineLen)
	chunk := make([]byte, 0, perChunk*lineLen)
	const text = "chatty hook output: the quick brown fox jumps over the lazy dog, again and again. "
	for i := 0; i < perChunk; i++ {
		line := fmt.Sprintf("%06d %s", i, text)
		for len(line) < lineLen-1 {
			line += text
		}
		chunk = append(chunk, line[:lineLen-1]...)
		chunk = append(chunk, '\n')
	}

	for lines > 0 {
		n := min(lines, perChunk)
		if _, err := os.Stdout.Write(chunk[:n*lineLen]); err != nil {
			fail("write: %v", err)
		}
		lines -= n
	}
}

func envInt(name string, def int) int {
	s, ok := os.LookupEnv(name)
	if !ok || s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		fail("%s: want a non-negative integer, got %q", name, s)
	}
	return n
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "chatty: "+format+"\n", args...)
	os.Exit(2)
}

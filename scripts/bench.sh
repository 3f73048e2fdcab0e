#!/usr/bin/env bash
# scripts/bench.sh — run the benchmarks of issue 5 and print one table.
#
# Builds the test binary once, then runs the benchmarks of bench_test.go in
# SNAPHOOKS_BENCH_ROUNDS rounds (default 5). Each round runs every benchmark
# once, so the benchmarks interleave across rounds, and every benchmark
# measures its own baseline in the same run (inside one iteration where it
# can: the command hook against bare exec runs, Run with pollers against Run
# alone). The table shows medians over the rounds; ratios come from the same
# rounds. Then it runs one 1 GiB chatty hook per mode in a child process of
# its own (the test binary in a helper mode) and reports its peak RSS.
#
# Usage: scripts/bench.sh [-quick]
#   -quick   2 rounds, 256 MiB for the RSS runs: a smoke test, not numbers
#
# Environment:
#   SNAPHOOKS_BENCH_ROUNDS     rounds (default 5)
#   SNAPHOOKS_BENCH_RSS_BYTES  output of the RSS runs (default 1 GiB)
#   SNAPHOOKS_BENCH_OUT        where to keep the raw output and the table
#                              (default bench-results/, ignored by git)
#
# Never run this on a machine that matters for timing while other heavy work
# runs; the table says on what it ran.
set -euo pipefail

export PATH="/usr/local/go/bin:${PATH}"
cd "$(dirname "${BASH_SOURCE[0]}")/.."

rounds=${SNAPHOOKS_BENCH_ROUNDS:-5}
rss_bytes=${SNAPHOOKS_BENCH_RSS_BYTES:-$((1 << 30))}
if [[ "${1:-}" == "-quick" ]]; then
	rounds=2
	rss_bytes=$((256 << 20))
elif [[ $# -gt 0 ]]; then
	echo "usage: scripts/bench.sh [-quick]" >&2
	exit 2
fi
out=${SNAPHOOKS_BENCH_OUT:-bench-results}
mkdir -p "$out"
raw="$out/raw.txt"
table="$out/table.md"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

log() { printf '==> %s\n' "$*" >&2; }

log "building the test binary, testdata/chatty and testdata/benchtable"
go test -c -o "$tmp/hooks.test" .
go build -o "$tmp/chatty" ./testdata/chatty
go build -o "$tmp/benchtable" ./testdata/benchtable
export SNAPHOOKS_BENCH_CHATTY="$tmp/chatty"

# bench PATTERN BENCHTIME: one run of the benchmarks matching PATTERN into the raw output.
bench() {
	"$tmp/hooks.test" -test.run '^$' -test.bench "$1" -test.benchmem \
		-test.count 1 -test.benchtime "$2" -test.timeout 30m | tee -a "$raw" | grep '^Benchmark' >&2 || {
		echo "scripts/bench.sh: benchmark $1 failed; see $raw" >&2
		exit 1
	}
}

: >"$raw"
for ((r = 1; r <= rounds; r++)); do
	log "round $r of $rounds"
	bench '^BenchmarkCommandHookOverhead$' 300x
	bench '^BenchmarkPlanOrchestration$' 1s
	# 256 MiB per iteration: a few iterations where they are short.
	bench '^BenchmarkChattyHook$/^(baseline|nolog)$' 5x
	bench '^BenchmarkChattyHook$/^logfmt$' 1x
	bench '^BenchmarkReportPolling$' 1s
done

for mode in baseline nolog logfmt; do
	log "peak RSS: $mode, $((rss_bytes >> 20)) MiB"
	SNAPHOOKS_BENCH_RSS=$mode SNAPHOOKS_BENCH_RSS_BYTES=$rss_bytes \
		"$tmp/hooks.test" -test.run '^$' -test.bench '^BenchmarkChattyPeakRSS$' -test.benchtime 1x -test.count 1 -test.timeout 30m |
		grep '^BENCH-RSS' | tee -a "$raw" >&2
done

{
	echo "Machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(go version | cut -d' ' -f3-), Linux $(uname -r)"
	echo
	"$tmp/benchtable" <"$raw"
} | tee "$table"
log "raw output: $raw; table: $table"

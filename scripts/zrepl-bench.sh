#!/usr/bin/env bash
# scripts/zrepl-bench.sh — the in-process plan through zrepl's hooks package
# and through this one, side by side (docs/performance.md, "Side by side with
# zrepl").
#
# Usage: scripts/zrepl-bench.sh ZREPL_CHECKOUT [ROUNDS]
#
# ZREPL_CHECKOUT is a git checkout of github.com/zrepl/zrepl (commit b93a06d
# was measured). The script copies testdata/zreplbench/zz_snaphooks_bench_test.go
# into its internal/daemon/hooks (zrepl's package is internal to its module,
# so the benchmark has to live there), builds both test binaries, and runs
# ROUNDS (default 15) interleaved rounds of 100,000 plans on each. For every
# run it records go test's wall ns/op and the CPU time (user + system) of the
# whole process per plan, less that of a 1-plan run of the same binary. It
# prints the medians and the median of the per-round ratios; CPU time moves
# less than wall time on a shared machine, so it is the figure to read.
set -euo pipefail

export PATH="/usr/local/go/bin:${PATH}"
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [[ $# -lt 1 || $# -gt 2 ]]; then
	echo "usage: scripts/zrepl-bench.sh ZREPL_CHECKOUT [ROUNDS]" >&2
	exit 2
fi
zrepl=$1 rounds=${2:-15} plans=100000
[[ -d $zrepl/internal/daemon/hooks ]] || { echo "$zrepl: not a zrepl checkout (no internal/daemon/hooks)" >&2; exit 2; }

tmp=$(mktemp -d)
harness=$zrepl/internal/daemon/hooks/zz_snaphooks_bench_test.go
trap 'rm -rf "$tmp" "$harness"' EXIT
cp testdata/zreplbench/zz_snaphooks_bench_test.go "$harness"
(cd "$zrepl" && go test -c -o "$tmp/zrepl.test" ./internal/daemon/hooks)
go test -c -o "$tmp/snaphooks.test" .

# run BIN N: prints "CPU-seconds wall-ns/op" of one run of N plans.
run() {
	local TIMEFORMAT='%3U %3S' t
	t=$({ time "$tmp/$1.test" -test.run '^$' -test.bench 'PlanOrchestration/nolog$' -test.benchtime "$2x" >"$tmp/out"; } 2>&1)
	awk -v t="$t" '/^Bench/ { split(t, c, " "); print c[1] + c[2], $3 }' "$tmp/out"
}

for b in zrepl snaphooks; do # start-up CPU: the median of three 1-plan runs
	for _ in 1 2 3; do run "$b" 1; done | sort -n | awk 'NR == 2 { print $1 }' >"$tmp/$b.startup"
done
for ((r = 1; r <= rounds; r++)); do
	for b in zrepl snaphooks; do
		read -r cpu wall < <(run "$b" "$plans")
		awk -v r="$r" -v b="$b" -v cpu="$cpu" -v wall="$wall" -v s="$(cat "$tmp/$b.startup")" -v n="$plans" \
			'BEGIN { printf "%d %s %.0f %.0f\n", r, b, (cpu - s) / n * 1e9, wall }' >>"$tmp/rounds"
	done
done

awk '
function sort(a, n,   i, j, t) {
	for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j-1] > a[j]; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
}
function median(a, n) { sort(a, n); return n % 2 ? a[(n+1)/2] : (a[n/2] + a[n/2+1]) / 2 }
function row(what, z, s, q, n, unit) { # median and range of z, s and of the ratios q
	printf "  %-14s zrepl %.2f%s  snaphooks %.2f%s  snaphooks/zrepl %.2f (%.2f-%.2f)\n", what, median(z, n), unit, median(s, n), unit, median(q, n), q[1], q[n]
}
{ cpu[$2, $1] = $3 / 1000; wall[$2, $1] = $4 / 1000; if ($1 > n) n = $1 }
END {
	for (r = 1; r <= n; r++) {
		zc[r] = cpu["zrepl", r]; sc[r] = cpu["snaphooks", r]; qc[r] = sc[r] / zc[r]
		zw[r] = wall["zrepl", r]; sw[r] = wall["snaphooks", r]; qw[r] = sw[r] / zw[r]
	}
	printf "plan of 10 in-process hooks + callback, %d rounds: medians, and the range of the per-round ratios\n", n
	row("CPU per plan", zc, sc, qc, n, " µs")
	row("wall per plan", zw, sw, qw, n, " µs")
}' "$tmp/rounds"

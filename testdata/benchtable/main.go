// Command benchtable turns the output of the benchmarks of bench_test.go,
// run in several rounds by scripts/bench.sh, into one Markdown table: per
// figure the median over the rounds of what is measured, of its baseline
// from the same run, their ratio, the target of issue 5 and whether it is
// met. Lines "BENCH-RSS ..." from BenchmarkChattyPeakRSS add the peak RSS
// figures.
//
// Usage: benchtable < raw-output
package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// results holds, per benchmark name (without the -GOMAXPROCS suffix) and
// unit, the values of all rounds.
type results map[string]map[string][]float64

func (r results) add(name, unit string, v float64) {
	if r[name] == nil {
		r[name] = map[string][]float64{}
	}
	r[name][unit] = append(r[name][unit], v)
}

// median returns the median of the values of name and unit, and how many
// there are.
func (r results) median(name, unit string) (float64, int) {
	vs := append([]float64(nil), r[name][unit]...)
	if len(vs) == 0 {
		return 0, 0
	}
	sort.Float64s(vs)
	if len(vs)%2 == 1 {
		return vs[len(vs)/2], len(vs)
	}
	return (vs[len(vs)/2-1] + vs[len(vs)/2]) / 2, len(vs)
}

var procSuffix = regexp.MustCompile(`-\d+$`)

// rss is one line of BenchmarkChattyPeakRSS.
type rss struct {
	mode    string
	bytes   int64
	seconds float64
	hwmKiB  int64
}

func parse(in io.Reader) (results, []rss, error) {
	res := results{}
	var rs []rss
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "BENCH-RSS ") {
			var r rss
			for _, kv := range strings.Fields(line)[1:] {
				k, v, _ := strings.Cut(kv, "=")
				switch k {
				case "mode":
					r.mode = v
				case "bytes":
					r.bytes, _ = strconv.ParseInt(v, 10, 64)
				case "seconds":
					r.seconds, _ = strconv.ParseFloat(v, 64)
				case "vmhwm_kib":
					r.hwmKiB, _ = strconv.ParseInt(v, 10, 64)
				}
			}
			rs = append(rs, r)
			continue
		}
		if !strings.HasPrefix(line, "Benchmark") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 4 || len(f)%2 != 0 {
			continue
		}
		name := procSuffix.ReplaceAllString(f[0], "")
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			res.add(name, f[i+1], v)
		}
	}
	return res, rs, sc.Err()
}

// row is one line of the table.
type row struct {
	what, measured, baseline, ratio, target, met string
}

func dur(ns float64) string {
	switch {
	case ns >= 1e6:
		return fmt.Sprintf("%.2f ms", ns/1e6)
	case ns >= 1e3:
		return fmt.Sprintf("%.2f µs", ns/1e3)
	}
	return fmt.Sprintf("%.0f ns", ns)
}

func yes(ok bool) string {
	if ok {
		return "yes"
	}
	return "**no**"
}

func main() {
	res, rss, err := parse(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchtable:", err)
		os.Exit(1)
	}
	var t table
	t.commandHookRows(res)
	t.orchestrationRows(res)
	t.chattyRows(res)
	t.pollingRows(res)
	t.print()
	printRSS(rss)
}

// table is the Markdown table being built: its rows, and the most rounds
// any figure had.
type table struct {
	rows   []row
	rounds int
}

func (t *table) add(r ...row)        { t.rows = append(t.rows, r...) }
func (t *table) missing(what string) { t.add(row{what, "—", "—", "—", "—", "not run"}) }

// commandHookRows: 1. the command-hook overhead.
func (t *table) commandHookRows(res results) {
	const cmdB = "BenchmarkCommandHookOverhead"
	hook, n := res.median(cmdB, "hook-ns/op")
	if n == 0 {
		t.missing("command hook overhead")
		return
	}
	bare, _ := res.median(cmdB, "bare-ns/op")
	ratio, _ := res.median(cmdB, "ratio")
	t.rounds = max(t.rounds, n)
	t.add(row{"command hook /bin/true, pre+post (2 processes) vs. 2 bare exec.Command runs",
		dur(hook), dur(bare), fmt.Sprintf("%.3f", ratio), "≤ 1.10", yes(ratio <= 1.10)})
}

// orchestrationRows: 2. a plan's own cost.
func (t *table) orchestrationRows(res results) {
	const orch = "BenchmarkPlanOrchestration/"
	nolog, n := res.median(orch+"nolog", "ns/op")
	if n == 0 {
		t.missing("orchestration")
		return
	}
	direct, _ := res.median(orch+"direct", "ns/op")
	allocs, _ := res.median(orch+"nolog", "allocs/op")
	dAllocs, _ := res.median(orch+"direct", "allocs/op")
	t.add(row{"plan of 10 in-process hooks (21 steps), NewPlan+Run, no logger: time (baseline: the 21 calls without a plan)",
		dur(nolog), dur(direct), fmt.Sprintf("%.0f", nolog/direct), "≤ 3 µs", yes(nolog <= 3000)},
		row{"same: allocations per plan", fmt.Sprintf("%.0f", allocs), fmt.Sprintf("%.0f", dAllocs), "—", "≤ 25", yes(allocs <= 25)})
	if lf, n := res.median(orch+"logfmt", "ns/op"); n > 0 {
		la, _ := res.median(orch+"logfmt", "allocs/op")
		t.add(row{"same, logfmt handler to io.Discard (baseline: no logger)",
			fmt.Sprintf("%s, %.0f allocs", dur(lf), la), fmt.Sprintf("%s, %.0f allocs", dur(nolog), allocs), fmt.Sprintf("%.1f", lf/nolog), "—", "(no target)"})
	}
}

// chattyRows: 3. a chatty hook's throughput.
func (t *table) chattyRows(res results) {
	const ch = "BenchmarkChattyHook/"
	base, n := res.median(ch+"baseline", "MB/s")
	if n == 0 {
		t.missing("chatty hook")
		return
	}
	nolog, _ := res.median(ch+"nolog", "MB/s")
	lf, _ := res.median(ch+"logfmt", "MB/s")
	t.add(row{"chatty hook, 256 MiB of 80-byte lines, no logger (baseline: io.Copy of the same program's stdout to io.Discard)",
		fmt.Sprintf("%.0f MB/s", nolog), fmt.Sprintf("%.0f MB/s", base), fmt.Sprintf("%.2f", nolog/base), "≥ 0.40 of baseline", yes(nolog/base >= 0.40)},
		row{"chatty hook, logfmt handler to io.Discard",
			fmt.Sprintf("%.0f MB/s", lf), fmt.Sprintf("%.0f MB/s", base), fmt.Sprintf("%.2f", lf/base), "≥ 150 MB/s", yes(lf >= 150)})
}

// pollingRows: 4. Report() while a plan runs.
func (t *table) pollingRows(res results) {
	const po = "BenchmarkReportPolling/"
	if rep, n := res.median(po+"report", "ns/op"); n > 0 {
		idle, _ := res.median(po+"report_idle", "ns/op")
		t.add(row{"Report() of a running 21-step plan from 4 goroutines (baseline: 1 goroutine, finished plan)",
			dur(rep), dur(idle), fmt.Sprintf("%.2f", rep/idle), "—", "(no target)"})
	}
	if polled, n := res.median(po+"run_paced", "polled-ns/op"); n > 0 {
		run, _ := res.median(po+"run_paced", "run-ns/op")
		ratio, _ := res.median(po+"run_paced", "ratio")
		reports, _ := res.median(po+"run_paced", "reports/op")
		t.add(row{fmt.Sprintf("Run of 21 busy steps while 4 goroutines poll Report, paced (%.0f reports per run) vs. Run alone", reports),
			dur(polled), dur(run), fmt.Sprintf("%.3f", ratio), "≤ 1.05", yes(ratio <= 1.05)})
	}
	if polled, n := res.median(po+"run_spinning", "polled-ns/op"); n > 0 {
		run, _ := res.median(po+"run_spinning", "run-ns/op")
		control, _ := res.median(po+"run_spinning", "control-ns/op")
		ratio, _ := res.median(po+"run_spinning", "ratio")
		lock, _ := res.median(po+"run_spinning", "lock")
		reports, _ := res.median(po+"run_spinning", "reports/op")
		t.add(row{fmt.Sprintf("same, pollers spinning (%.0f reports per run) vs. spinning pollers doing the same work without the plan's lock", reports),
			dur(polled), dur(control), fmt.Sprintf("%.3f", lock), "≤ 1.05", yes(lock <= 1.05)},
			row{"same, spinning pollers vs. Run alone (4 busy goroutines on this machine's cores)",
				dur(polled), dur(run), fmt.Sprintf("%.3f", ratio), "—", "(CPU share, see text)"})
	}
	if len(res[po+"run_paced"]) == 0 && len(res[po+"report"]) == 0 {
		t.missing("polling")
	}
}

// print writes the table.
func (t *table) print() {
	fmt.Printf("Medians of %d rounds.\n\n", t.rounds)
	fmt.Println("| benchmark | measured | baseline | ratio | target | met? |")
	fmt.Println("|---|---|---|---|---|---|")
	for _, r := range t.rows {
		fmt.Printf("| %s | %s | %s | %s | %s | %s |\n", r.what, r.measured, r.baseline, r.ratio, r.target, r.met)
	}
}

// printRSS writes the peak-memory table, if there are figures for it.
func printRSS(runs []rss) {
	if len(runs) == 0 {
		return
	}
	fmt.Println()
	fmt.Println("Peak memory of a process running one chatty hook (VmHWM of a child test binary):")
	fmt.Println()
	fmt.Println("| run | output | time | peak RSS (VmHWM) | target | met? |")
	fmt.Println("|---|---|---|---|---|---|")
	for _, r := range runs {
		target, met := "< 24 MiB", yes(float64(r.hwmKiB)/1024 < 24)
		if r.mode == "baseline" {
			target, met = "—", "(baseline: io.Copy to io.Discard)"
		}
		fmt.Printf("| %s | %.0f MiB | %.1f s | %.1f MiB | %s | %s |\n", r.mode, float64(r.bytes)/(1<<20), r.seconds, float64(r.hwmKiB)/1024, target, met)
	}
}

//go:build e2e

package e2e_test

// The numbers of the "Snapshots of live databases" tables of
// docs/performance.md, and of the block-level writer stall of
// docs/consistency.md (BenchmarkBlockWriterStall, in block_test.go), from
// `scripts/e2e.sh --bench`: each benchmark runs SNAPHOOKS_E2E_ROUNDS rounds
// of every case, interleaved, and reports medians. Run them with
// -benchtime 1x: one benchmark iteration is all the rounds.

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkMariaDBWriterStall measures how long a concurrent writer goes
// without a commit around a snapshot of both MariaDB subvolumes: the longest
// gap between two of its commits that ends inside the plan's run. The floor
// is the snapshot itself (the plan's callback: two btrfs snapshots). The
// idle case is the same writer over a window as long as a snapshot, with no
// snapshot: its own jitter.
func BenchmarkMariaDBWriterStall(b *testing.B) {
	env := newMyEnv(b)
	cases := []myStrategy{{name: "no hook"}}
	for _, typ := range lockHookTypes {
		cases = append(cases, myStrategy{name: typ, lock: myLockList(b, env, typ)})
	}
	writerStall(b, env, "writer stall", "snapshot of both subvolumes", cases)
}

// writerStall runs SNAPHOOKS_E2E_ROUNDS rounds of every case (the first is
// "no hook") and of the idle writer, and logs the medians as result lines
// that start with label; what names the snapshot's column.
func writerStall(b *testing.B, env *myEnv, label, what string, cases []myStrategy) {
	if b.N > 1 {
		b.Fatal("one iteration runs every round: use -benchtime 1x")
	}
	db := setupMySchema(b, env)
	p := &myPrimary{env: env, db: db, w: startMyWriter(b, db)}
	rounds := envInt(b, "SNAPHOOKS_E2E_ROUNDS", 7)
	// A commit that waits for no fsync takes well under a millisecond, so
	// the gaps are measured to that resolution, not to the disk's flush
	// time. A snapshot holds it as well: it holds every completed write.
	if _, err := db.Exec("SET GLOBAL innodb_flush_log_at_trx_commit = 2"); err != nil {
		b.Fatal(err)
	}

	gaps := make(map[string][]time.Duration)
	snaps := make(map[string][]time.Duration)
	plans := make(map[string][]time.Duration)
	for range rounds {
		for _, s := range cases {
			r := snapRound(b, p, s)
			p.w.awaitCommitAfter(b, r.end) // the commit that ends the stall
			gap := p.w.longestGap(r.begin, r.end)
			gaps[s.name] = append(gaps[s.name], gap)
			snaps[s.name] = append(snaps[s.name], r.callback)
			plans[s.name] = append(plans[s.name], r.end.Sub(r.begin))
			deleteSnapshot(b, r.data)
			deleteSnapshot(b, r.log)
		}
		// The writer alone, over a window as long as the last bare snapshot:
		// a measuring interval, not a wait for anything.
		bare := snaps[cases[0].name]
		window := bare[len(bare)-1]
		from := time.Now()
		time.Sleep(window)
		to := time.Now()
		p.w.awaitCommitAfter(b, to)
		gap := p.w.longestGap(from, to)
		gaps["idle"] = append(gaps["idle"], gap)
	}

	ms := func(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d)/float64(time.Millisecond)) }
	result(b, "%s (%d rounds, median (min–max)) | case | longest gap between commits | %s | whole plan", label, rounds, what)
	result(b, "%s | writer alone, no snapshot | %s | | ", label, spread(gaps["idle"], ms))
	for _, s := range cases {
		result(b, "%s | %s | %s | %s | %s", label, s.name, spread(gaps[s.name], ms), spread(snaps[s.name], ms), spread(plans[s.name], ms))
		b.ReportMetric(float64(median(gaps[s.name]))/float64(time.Millisecond), "stall-ms-"+metricName(s.name))
	}
	p.w.mu.Lock()
	commits := len(p.w.commits)
	p.w.mu.Unlock()
	result(b, "%s: the writer committed %d transactions", label, commits)
}

// BenchmarkPostgresRestore measures what postgres-checkpoint buys a restore:
// after a checkpoint and pgBulkRows rows of writes (about 80 MB of WAL), the
// data and WAL subvolumes are snapshotted with and without the hook, and a
// server on the copies replays WAL before it accepts connections.
func BenchmarkPostgresRestore(b *testing.B) {
	if b.N > 1 {
		b.Fatal("one iteration runs every round: use -benchtime 1x")
	}
	env, admin, w := setupPg(b)
	rounds := envInt(b, "SNAPHOOKS_E2E_ROUNDS", 7)
	cases := pgCases(b, env)
	res := make(map[string][]pgRestore)
	for i := range rounds {
		for _, c := range cases {
			b.Run(fmt.Sprintf("%s/round%d", metricName(c.name), i+1), func(b *testing.B) {
				res[c.name] = append(res[c.name], pgRound(b, env, admin, w, c.list))
			})
		}
	}
	for _, c := range cases {
		result(b, "postgres restore | %s | %s", c.name, pgSummary(res[c.name]))
	}
}

// metricName turns a case name into a benchmark metric or name part.
func metricName(s string) string {
	out := []byte(s)
	for i, c := range out {
		if c == ' ' {
			out[i] = '-'
		}
	}
	return string(out)
}

//go:build e2e

package e2e_test

// MariaDB on two subvolumes — the datadir and the InnoDB redo log — under a
// writer whose transactions keep an invariant across InnoDB and
// non-transactional (Aria, MyISAM) tables. A plan takes read-only btrfs
// snapshots of both; a second server started on writable copies of them shows
// what a restore gets.

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/snaphooks/hooks"
)

// lockHookTypes are the hook types that hold MariaDB still for a snapshot.
// Each gets the same consistency test and benchmark; a new type is one more
// entry (HookFromConfig must know it, or its entry fails the test).
var lockHookTypes = []string{
	hooks.TypeMySQLLockTables,
	hooks.TypeMariaDBBackupStage,
}

const (
	myAccounts      = 10   // rows of the accounts table
	myStartBalance  = 1000 // of each account: the sum is always myAccounts*myStartBalance
	myFillerRows    = 100000
	myDatasetRoot   = "e2e/mariadb"
	myReadyTimeout  = 2 * time.Minute
	myQueryTimeout  = time.Minute
	myWarmupCommits = 200
)

// myNonTx are the non-transactional tables: the writer inserts a row with
// the transaction's id into each before it commits.
var myNonTx = []string{"audit_aria", "audit_myisam"}

// openMy opens cfg (with the server at addr when addr is not "") and closes
// it when the test ends.
func openMy(t testing.TB, cfg *mysql.Config, addr string) *sql.DB {
	t.Helper()
	c := cfg.Clone()
	if addr != "" {
		c.Addr = addr
	}
	c.Timeout = 5 * time.Second
	c.Logger = mysql.Logger(log.New(io.Discard, "", 0)) // not the noise of pinging a server that is starting
	c.ReadTimeout, c.WriteTimeout = myQueryTimeout, myQueryTimeout
	conn, err := mysql.NewConnector(c)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(conn)
	t.Cleanup(func() { db.Close() })
	return db
}

// setupMySchema creates database e2e with the writer's tables on the primary
// and returns a handle to it.
func setupMySchema(t testing.TB, env *myEnv) *sql.DB {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*myQueryTimeout)
	defer cancel()
	root := env.admin.Clone()
	root.DBName = ""
	if _, err := openMy(t, root, "").ExecContext(ctx, "CREATE DATABASE IF NOT EXISTS e2e"); err != nil {
		t.Fatal(err)
	}
	db := openMy(t, env.admin, "")
	stmts := []string{
		"DROP TABLE IF EXISTS accounts, ledger, audit_aria, audit_myisam, filler",
		"CREATE TABLE accounts (id INT PRIMARY KEY, balance BIGINT NOT NULL) ENGINE=InnoDB",
		fmt.Sprintf("INSERT INTO accounts SELECT seq, %d FROM seq_1_to_%d", myStartBalance, myAccounts),
		"CREATE TABLE ledger (id BIGINT PRIMARY KEY, src INT NOT NULL, dst INT NOT NULL, amount INT NOT NULL) ENGINE=InnoDB",
		"CREATE TABLE audit_aria (id BIGINT PRIMARY KEY) ENGINE=Aria TRANSACTIONAL=0",
		"CREATE TABLE audit_myisam (id BIGINT PRIMARY KEY) ENGINE=MyISAM",
		"CREATE TABLE filler (id INT PRIMARY KEY, n INT NOT NULL, pad CHAR(200) NOT NULL) ENGINE=InnoDB",
		fmt.Sprintf("INSERT INTO filler SELECT seq, 0, REPEAT('x', 200) FROM seq_1_to_%d", myFillerRows),
	}
	for _, s := range stmts {
		if _, err := db.ExecContext(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	return db
}

// myWriter commits transactions 1, 2, 3, ... on one connection, each moving
// an amount between two accounts, with one ledger row and, written before the
// commit, one row in each non-transactional table. It records which
// transactions were acknowledged and when.
type myWriter struct {
	cancel context.CancelFunc
	done   chan struct{}
	err    error // set before done is closed

	acked atomic.Int64 // the last id whose COMMIT returned

	mu      sync.Mutex
	commits []time.Time // guarded by mu: when each COMMIT returned, in order
}

// startMyWriter starts the writer and waits until it committed a few
// transactions. It is stopped when the test ends; an error of the writer
// fails the test.
func startMyWriter(t testing.TB, db *sql.DB) *myWriter {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := &myWriter{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		w.err = w.run(ctx, db)
	}()
	t.Cleanup(func() {
		if err := w.stop(); err != nil {
			t.Errorf("writer: %v", err)
		}
	})
	w.await(t, myWarmupCommits)
	return w
}

// await waits until n transactions were acknowledged.
func (w *myWriter) await(t testing.TB, n int64) {
	t.Helper()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(2 * time.Minute)
	for w.acked.Load() < n {
		select {
		case <-w.done:
			t.Fatalf("writer stopped: %v", w.err)
		case <-deadline:
			t.Fatalf("writer committed %d of %d transactions in 2 minutes", w.acked.Load(), n)
		case <-tick.C:
		}
	}
}

// awaitCommitAfter waits until the writer committed after t.
func (w *myWriter) awaitCommitAfter(tb testing.TB, t time.Time) {
	tb.Helper()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	deadline := time.After(2 * time.Minute)
	for {
		w.mu.Lock()
		done := len(w.commits) > 0 && w.commits[len(w.commits)-1].After(t)
		w.mu.Unlock()
		if done {
			return
		}
		select {
		case <-w.done:
			tb.Fatalf("writer stopped: %v", w.err)
		case <-deadline:
			tb.Fatalf("writer did not commit within 2 minutes")
		case <-tick.C:
		}
	}
}

func (w *myWriter) stop() error {
	w.cancel()
	<-w.done
	return w.err
}

func (w *myWriter) run(ctx context.Context, db *sql.DB) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	rng := rand.New(rand.NewPCG(15, 15))
	for id := int64(1); ; id++ {
		src := 1 + rng.IntN(myAccounts)
		dst := 1 + (src+rng.IntN(myAccounts-1))%myAccounts
		if err := w.commit(ctx, conn, id, src, dst, 1+rng.IntN(100)); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("transaction %d: %w", id, err)
		}
		now := time.Now()
		w.acked.Store(id)
		w.mu.Lock()
		w.commits = append(w.commits, now)
		w.mu.Unlock()
	}
}

func (w *myWriter) commit(ctx context.Context, conn *sql.Conn, id int64, src, dst, amount int) (err error) {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	for _, tb := range myNonTx {
		if _, err := tx.ExecContext(ctx, "INSERT INTO "+tb+" (id) VALUES (?)", id); err != nil {
			return err
		}
	}
	if _, err := tx.ExecContext(ctx, "UPDATE accounts SET balance = balance - ? WHERE id = ?", amount, src); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, "UPDATE accounts SET balance = balance + ? WHERE id = ?", amount, dst); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO ledger VALUES (?, ?, ?, ?)", id, src, dst, amount); err != nil {
		return err
	}
	return tx.Commit()
}

// longestGap returns the longest time between two consecutive commits
// that overlaps [from, to]: how long the writer was stalled during that
// window, at worst. Call it once the writer committed after to.
func (w *myWriter) longestGap(from, to time.Time) time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	var gap time.Duration
	for i := 1; i < len(w.commits); i++ {
		prev, c := w.commits[i-1], w.commits[i]
		if c.Before(from) || prev.After(to) {
			continue
		}
		gap = max(gap, c.Sub(prev))
	}
	return gap
}

// myCheckpoint returns InnoDB's last checkpoint LSN.
func myCheckpoint(ctx context.Context, db *sql.DB) (uint64, error) {
	var name, v string
	if err := db.QueryRowContext(ctx, "SHOW GLOBAL STATUS LIKE 'Innodb_lsn_last_checkpoint'").Scan(&name, &v); err != nil {
		return 0, fmt.Errorf("read the checkpoint LSN: %w", err)
	}
	return strconv.ParseUint(v, 10, 64)
}

// awaitCheckpointMove waits until InnoDB's checkpoint LSN is past from, or
// wait passed: then it returns nil, and the round reports that the
// checkpoint did not move.
func awaitCheckpointMove(ctx context.Context, db *sql.DB, from uint64, wait time.Duration) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(wait)
	for {
		c, err := myCheckpoint(ctx, db)
		if err != nil || c > from {
			return err
		}
		select {
		case <-deadline:
			return nil
		case <-tick.C:
		}
	}
}

// myOutcome is what a copy of the snapshots turned out to be.
type myOutcome struct {
	mountErr string        // why a volume's copy would not mount; "" if it did (or on subvolumes)
	startErr string        // why the server did not come up; "" if it did
	ready    time.Duration // how long it took to accept connections
	repaired []string      // tables CHECK TABLE flagged (then repaired, before the checks)
	problems []string      // broken invariants and lost transactions
}

func (o myOutcome) started() bool    { return o.mountErr == "" && o.startErr == "" }
func (o myOutcome) consistent() bool { return o.started() && len(o.problems) == 0 }
func (o myOutcome) String() string {
	switch {
	case o.mountErr != "":
		return "would not mount: " + o.mountErr
	case !o.started():
		return "would not start: " + o.startErr
	case len(o.problems) == 0 && len(o.repaired) == 0:
		return "consistent"
	}
	s := ""
	if len(o.repaired) > 0 {
		s = "needed repair: " + strings.Join(o.repaired, "; ")
	}
	if len(o.problems) > 0 {
		if s != "" {
			s += "; "
		}
		s += "inconsistent: " + strings.Join(o.problems, "; ")
	}
	return s
}

// checkMyCopy restores the snapshots of data and log, starts a server on the
// copies and checks them: CHECK TABLE (with automatic repair off, so that a
// table left open shows), REPAIR TABLE for what it flags, then the writer's
// invariant, and that every transaction up to ackedBefore is there. The
// server and the copies are gone when the test ends.
func checkMyCopy(t testing.TB, env *myEnv, r snapped) myOutcome {
	t.Helper()
	var out myOutcome
	dataCopy, err := restoreCopy(t, r.data)
	if err != nil {
		out.mountErr = err.Error()
		return out
	}
	logCopy, err := restoreCopy(t, r.log)
	if err != nil {
		out.mountErr = err.Error()
		return out
	}
	name := filepath.Base(r.data.snap)
	port := freePort(t)
	args := append([]string{"--no-defaults", "--user=mysql", "--datadir=" + dataCopy,
		"--innodb-log-group-home-dir=" + logCopy}, env.opts...)
	args = append(args,
		"--socket="+filepath.Join(env.tmp, name+".sock"),
		"--pid-file="+filepath.Join(env.tmp, name+".pid"),
		"--port="+strconv.Itoa(port), "--bind-address=127.0.0.1",
		"--myisam-recover-options=OFF", "--aria-recover-options=OFF",
		"--innodb-buffer-pool-size=64M")
	logPath := filepath.Join(env.tmp, name+".log")
	srv := startServer(t, "mariadbd on "+name, logPath, lookupAccount(t, "mysql"), nil, syscall.SIGKILL, env.mariadbd, args...)

	db := openMy(t, env.admin, fmt.Sprintf("127.0.0.1:%d", port))
	out.ready, err = srv.awaitReady(myReadyTimeout, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		return db.PingContext(ctx)
	})
	if err != nil {
		out.startErr = err.Error()
		tail := tailFile(logPath, 8)
		for _, l := range strings.Split(tail, "\n") {
			if i := strings.Index(l, "[ERROR] InnoDB"); i >= 0 {
				out.startErr += ": " + l[i:] // the first InnoDB error says why
				break
			}
		}
		t.Logf("log of %s:\n%s", srv.name, tail)
		return out
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*myQueryTimeout)
	defer cancel()

	tables := append([]string{"accounts", "ledger", "filler"}, myNonTx...)
	flagged := map[string]bool{}
	rows, err := db.QueryContext(ctx, "CHECK TABLE "+strings.Join(tables, ", "))
	if err != nil {
		out.problems = append(out.problems, "CHECK TABLE: "+err.Error())
		return out
	}
	for rows.Next() {
		var table, op, typ, text string
		if err := rows.Scan(&table, &op, &typ, &text); err != nil {
			t.Fatal(err)
		}
		if typ == "status" && text == "OK" || typ == "note" {
			continue
		}
		table = strings.TrimPrefix(table, "e2e.")
		out.repaired = append(out.repaired, table+": "+text)
		flagged[table] = true
	}
	if err := rows.Close(); err != nil {
		out.problems = append(out.problems, "CHECK TABLE: "+err.Error())
		return out
	}
	for tb := range flagged {
		if _, err := db.ExecContext(ctx, "REPAIR TABLE "+tb); err != nil {
			out.problems = append(out.problems, "REPAIR TABLE "+tb+": "+err.Error())
		}
	}
	out.problems = append(out.problems, myInvariant(ctx, db, r.ackedBefore, r.fillerN)...)
	return out
}

// myInvariant returns what is wrong with the writer's tables: the balances
// must add up, the ledger must hold transactions 1..M without a hole and at
// least up to ackedBefore, and each non-transactional table must hold every
// transaction of the ledger and at most one more (M+1, written before a
// commit that the snapshot did not see). Every row of the filler table must
// have n = fillerN: each UPDATE of it before the snapshot changed them all.
func myInvariant(ctx context.Context, db *sql.DB, ackedBefore, fillerN int64) []string {
	var problems []string
	var rows, nLo, nHi int64
	if err := db.QueryRowContext(ctx, "SELECT COUNT(*), MIN(n), MAX(n) FROM filler").Scan(&rows, &nLo, &nHi); err != nil {
		problems = append(problems, "read filler: "+err.Error())
	} else if rows != myFillerRows || nLo != fillerN || nHi != fillerN {
		problems = append(problems, fmt.Sprintf("filler: %d rows with n from %d to %d, want %d rows with n = %d (lost updates)", rows, nLo, nHi, myFillerRows, fillerN))
	}
	var n, lo, hi int64
	if err := db.QueryRowContext(ctx, "SELECT COUNT(*), COALESCE(MIN(id), 0), COALESCE(MAX(id), 0) FROM ledger").Scan(&n, &lo, &hi); err != nil {
		return append(problems, "read ledger: "+err.Error())
	}
	if n != hi || n > 0 && lo != 1 {
		problems = append(problems, fmt.Sprintf("ledger has holes: %d rows with ids %d..%d", n, lo, hi))
	}
	if hi < ackedBefore {
		problems = append(problems, fmt.Sprintf("lost committed transactions: the ledger ends at %d, %d were committed before the snapshot", hi, ackedBefore))
	}
	var sum, accounts int64
	if err := db.QueryRowContext(ctx, "SELECT COALESCE(SUM(balance), 0), COUNT(*) FROM accounts").Scan(&sum, &accounts); err != nil {
		return append(problems, "read accounts: "+err.Error())
	}
	if sum != myAccounts*myStartBalance || accounts != myAccounts {
		problems = append(problems, fmt.Sprintf("accounts: %d rows summing to %d, want %d summing to %d", accounts, sum, myAccounts, myAccounts*myStartBalance))
	}
	for _, tb := range myNonTx {
		var missing, extra, extraMin int64
		q := "SELECT COUNT(*) FROM ledger l LEFT JOIN " + tb + " a ON a.id = l.id WHERE a.id IS NULL"
		if err := db.QueryRowContext(ctx, q).Scan(&missing); err != nil {
			problems = append(problems, "read "+tb+": "+err.Error())
			continue
		}
		q = "SELECT COUNT(*), COALESCE(MIN(a.id), 0) FROM " + tb + " a LEFT JOIN ledger l ON l.id = a.id WHERE l.id IS NULL"
		if err := db.QueryRowContext(ctx, q).Scan(&extra, &extraMin); err != nil {
			problems = append(problems, "read "+tb+": "+err.Error())
			continue
		}
		if missing > 0 {
			problems = append(problems, fmt.Sprintf("%s lacks %d committed transactions", tb, missing))
		}
		if extra > 1 || extra == 1 && extraMin != hi+1 {
			problems = append(problems, fmt.Sprintf("%s has %d rows of transactions the ledger does not have", tb, extra))
		}
	}
	return problems
}

// myRound is one snapshot of both subvolumes and what its copy was.
type myRound struct {
	out       myOutcome
	ckptMoved bool // InnoDB's checkpoint moved between the two snapshots
}

// myTally sums up rounds for the report.
func myTally(rounds []myRound) string {
	var ok, repair, bad, nomount, nostart, moved int
	var examples []string
	var ready []time.Duration
	for _, r := range rounds {
		if r.out.started() {
			ready = append(ready, r.out.ready)
		}
		switch {
		case r.out.mountErr != "":
			nomount++
		case !r.out.started():
			nostart++
		case r.out.consistent() && len(r.out.repaired) == 0:
			ok++
		}
		if len(r.out.repaired) > 0 {
			repair++
		}
		if r.out.started() && !r.out.consistent() {
			bad++
		}
		if r.ckptMoved {
			moved++
		}
		if !r.out.consistent() || len(r.out.repaired) > 0 {
			if len(examples) < 2 {
				examples = append(examples, r.out.String())
			}
		}
	}
	sec := func(d time.Duration) string { return fmt.Sprintf("%.1f", d.Seconds()) }
	s := fmt.Sprintf("%d tries: %d consistent, %d inconsistent, %d needed repair, %d would not start", len(rounds), ok, bad, repair, nostart)
	if nomount > 0 {
		s += fmt.Sprintf(", %d would not mount", nomount)
	}
	s += fmt.Sprintf("; checkpoint moved between the snapshots in %d; copies started in %s s", moved, spread(ready, sec))
	if len(examples) > 0 {
		s += "; e.g. " + strings.Join(examples, " | ")
	}
	return s
}

// myStrategy is how a round takes the snapshots of the two subvolumes.
type myStrategy struct {
	name string
	// lock is the hook list of the lock, nil for none.
	lock *hooks.List
	// perSubvolume runs one plan (and lock) per subvolume, as zrepl does,
	// instead of one plan around both snapshots.
	perSubvolume bool
	// commitBetween waits, between the plans of perSubvolume, until the
	// writer committed once more: what happens whenever the daemon does
	// anything between two plans, or the machine is busy.
	commitBetween bool
	// flushing makes InnoDB flush dirty pages while the lock is held, and
	// waits (up to flushWait, 20 s when 0) for its checkpoint to move
	// between the snapshots.
	flushing  bool
	flushWait time.Duration
}

// myPrimary is the primary MariaDB under its writer.
type myPrimary struct {
	env     *myEnv
	db      *sql.DB
	w       *myWriter
	fillerN int64 // the n of every filler row, after the UPDATEs so far
}

// snapped is what a round took: the snapshots, the number of transactions
// acknowledged when the first callback began, the filler's n then, and
// whether InnoDB's checkpoint moved between the first and the last snapshot.
type snapped struct {
	data, log   subvol
	ackedBefore int64
	fillerN     int64
	ckptMoved   bool
	begin, end  time.Time     // the first plan's start, the last one's end
	callback    time.Duration // the snapshots alone: the sum of the callbacks
}

// snapRound takes the snapshots of the data and log subvolumes with
// strategy s under the writer.
func snapRound(t testing.TB, p *myPrimary, s myStrategy) snapped {
	t.Helper()
	env, db, w := p.env, p.db, p.w
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	set := env.snapshotSet(t, "my")
	r := snapped{data: set[0], log: set[1]}
	if s.flushing {
		for _, q := range []string{"SET GLOBAL innodb_max_dirty_pages_pct = 0", "UPDATE filler SET n = n + 1"} {
			if _, err := db.ExecContext(ctx, q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		p.fillerN++
		defer func() {
			if _, err := db.ExecContext(context.Background(), "SET GLOBAL innodb_max_dirty_pages_pct = 90"); err != nil {
				t.Errorf("reset innodb_max_dirty_pages_pct: %v", err)
			}
		}()
	}
	r.fillerN = p.fillerN
	var ckptFirst uint64
	first := func(ctx context.Context) error {
		r.ackedBefore = w.acked.Load()
		var err error
		ckptFirst, err = myCheckpoint(ctx, db)
		return err
	}
	between := func(ctx context.Context, _ int) error {
		if !s.flushing {
			return nil
		}
		wait := s.flushWait
		if wait == 0 {
			wait = 20 * time.Second
		}
		return awaitCheckpointMove(ctx, db, ckptFirst, wait)
	}
	timed := func(cb hooks.HookJobCallback) hooks.HookJobCallback {
		return func(ctx context.Context) error {
			start := time.Now()
			defer func() { r.callback += time.Since(start) }()
			return cb(ctx)
		}
	}
	r.begin = time.Now()
	if s.perSubvolume {
		for i, sv := range set {
			if i > 0 && s.commitBetween {
				w.await(t, w.acked.Load()+1)
			}
			cb := timed(snapshotCallback(t, []subvol{sv}, nil))
			runPlan(t, ctx, s.lock, myDatasetRoot+"/"+sv.name, func(ctx context.Context) error {
				if i == 0 {
					if err := first(ctx); err != nil {
						return err
					}
				}
				return cb(ctx)
			})
		}
	} else {
		cb := timed(snapshotCallback(t, set, between))
		runPlan(t, ctx, s.lock, myDatasetRoot, func(ctx context.Context) error {
			if err := first(ctx); err != nil {
				return err
			}
			return cb(ctx)
		})
	}
	r.end = time.Now()
	ckptLast, err := myCheckpoint(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	r.ckptMoved = ckptLast != ckptFirst
	return r
}

// measureMy takes n rounds of snapshots with strategy s, each in a subtest,
// and checks a copy of each.
func measureMy(t *testing.T, p *myPrimary, s myStrategy, n int) []myRound {
	t.Helper()
	var rounds []myRound
	for i := range n {
		t.Run(fmt.Sprintf("try%d", i+1), func(t *testing.T) {
			r := snapRound(t, p, s)
			out := checkMyCopy(t, p.env, r)
			t.Logf("%s: %s (checkpoint moved: %v)", s.name, out, r.ckptMoved)
			rounds = append(rounds, myRound{out: out, ckptMoved: r.ckptMoved})
		})
	}
	return rounds
}

// TestMariaDBSnapshot snapshots MariaDB's datadir and redo log subvolumes
// under a concurrent writer. With a lock hook around both snapshots, every
// copy whose snapshots the InnoDB checkpoint did not separate must start,
// hold the invariant, have no table needing repair and every transaction
// committed before the lock. The other strategies are measured and reported:
// no hook, one plan (and lock) per subvolume as zrepl does, and a lock
// around both while InnoDB flushes.
func TestMariaDBSnapshot(t *testing.T) {
	env := newMyEnv(t)
	db := setupMySchema(t, env)
	p := &myPrimary{env: env, db: db, w: startMyWriter(t, db)}
	tries := envInt(t, "SNAPHOOKS_E2E_TRIES", 5)

	measure := func(t *testing.T, s myStrategy, n int) []myRound { return measureMy(t, p, s, n) }

	for _, typ := range lockHookTypes {
		t.Run(typ, func(t *testing.T) {
			s := myStrategy{name: typ + " around both snapshots", lock: myLockList(t, env, typ)}
			rounds := measure(t, s, tries)
			stable := 0
			for i, r := range rounds {
				if r.ckptMoved {
					continue // the lock cannot help then: see the flushing case
				}
				stable++
				if !r.out.consistent() || len(r.out.repaired) > 0 {
					t.Errorf("round %d: the copy taken under %s is not clean: %s", i+1, typ, r.out)
				}
			}
			if stable == 0 {
				t.Errorf("the checkpoint moved between the snapshots in every round: nothing was shown")
			}
			result(t, "mariadb %-52s %s", s.name+":", myTally(rounds))
		})
	}

	cases := []myStrategy{{name: "no hook"}}
	for _, typ := range lockHookTypes {
		list := myLockList(t, env, typ)
		cases = append(cases,
			myStrategy{name: typ + " per subvolume (zrepl), back to back", lock: list, perSubvolume: true},
			myStrategy{name: typ + " per subvolume (zrepl), a commit between", lock: list, perSubvolume: true, commitBetween: true},
			myStrategy{name: typ + " around both, InnoDB flushing", lock: list, flushing: true})
	}
	for _, s := range cases {
		t.Run(strings.ReplaceAll(s.name, " ", "_"), func(t *testing.T) {
			result(t, "mariadb %-52s %s", s.name+":", myTally(measure(t, s, tries)))
		})
	}
}

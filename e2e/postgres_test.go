//go:build e2e

package e2e_test

// PostgreSQL with its data directory and its WAL on two subvolumes, under a
// writer. A plan snapshots both (data first, then WAL), with and without
// postgres-checkpoint; a second server on writable copies must recover and
// hold every committed row. How much WAL it replays and how long it takes to
// accept connections is what the CHECKPOINT buys.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/snaphooks/hooks"
)

const (
	pgAccounts     = 10
	pgStartBalance = 1000
	pgBulkRows     = 300000 // rows written between the last checkpoint and the snapshot: ~75 MB of WAL
	pgDataset      = "e2e/postgres"
	pgReadyTimeout = 3 * time.Minute
)

// pgEnv is what a PostgreSQL test needs from scripts/e2e.sh.
type pgEnv struct {
	admin     *pgx.ConnConfig
	chkptDSN  string
	data, wal string // the subvolumes (or volumes: their mount points) holding "data" and "wal"
	images    string // of the server on volumes: the directory of their backing files; "" on subvolumes
	bin       string
	tmp       string
}

// newPgEnv returns the environment of the PostgreSQL on btrfs subvolumes.
func newPgEnv(t testing.TB) *pgEnv {
	t.Helper()
	return newPgEnvFrom(t, "SNAPHOOKS_E2E_")
}

// newPgEnvFrom returns the environment of the PostgreSQL whose variables
// start with prefix (see newMyEnvFrom).
func newPgEnvFrom(t testing.TB, prefix string) *pgEnv {
	t.Helper()
	cfg, err := pgx.ParseConfig(getenv(t, prefix+"PG_ADMIN_DSN"))
	if err != nil {
		t.Fatal(err)
	}
	env := &pgEnv{
		admin:    cfg,
		chkptDSN: getenv(t, prefix+"PG_CHKPT_DSN"),
		data:     getenv(t, prefix+"PG_DATA"),
		wal:      getenv(t, prefix+"PG_WAL"),
		bin:      getenv(t, "SNAPHOOKS_E2E_PG_BIN"),
		tmp:      getenv(t, "SNAPHOOKS_E2E_TMP"),
	}
	if prefix == blockPrefix {
		env.images = getenv(t, blockPrefix+"IMAGES")
	}
	return env
}

// snapshotSet returns where a round's snapshots of the data and WAL go.
func (env *pgEnv) snapshotSet(t testing.TB, prefix string) []subvol {
	t.Helper()
	live := map[string]string{"data": env.data, "wal": env.wal}
	if env.images != "" {
		return newVolumeSet(t, env.images, prefix, live, "data", "wal")
	}
	return newSnapshotSet(t, prefix, live, "data", "wal")
}

// pgConnect connects as the admin, to port when it is not 0, and closes the
// connection when the test ends.
func pgConnect(t testing.TB, ctx context.Context, env *pgEnv, port uint16) (*pgx.Conn, error) {
	cfg := env.admin.Copy()
	if port != 0 {
		cfg.Port = port
	}
	cfg.ConnectTimeout = 5 * time.Second
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn, nil
}

func pgExec(t testing.TB, ctx context.Context, conn *pgx.Conn, stmts ...string) {
	t.Helper()
	for _, s := range stmts {
		if _, err := conn.Exec(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// pgWriter commits transactions 1, 2, 3, ...: each moves an amount between
// two accounts and adds its ledger row.
type pgWriter struct {
	cancel context.CancelFunc
	done   chan struct{}
	err    error
	acked  atomic.Int64
}

func startPgWriter(t testing.TB, env *pgEnv) *pgWriter {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	conn, err := pgConnect(t, ctx, env, 0)
	if err != nil {
		t.Fatal(err)
	}
	w := &pgWriter{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for id := int64(1); ; id++ {
			src := 1 + int(id)%pgAccounts
			dst := 1 + int(id+3)%pgAccounts
			err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
				if _, err := tx.Exec(ctx, "UPDATE accounts SET balance = balance - 7 WHERE id = $1", src); err != nil {
					return err
				}
				if _, err := tx.Exec(ctx, "UPDATE accounts SET balance = balance + 7 WHERE id = $1", dst); err != nil {
					return err
				}
				_, err := tx.Exec(ctx, "INSERT INTO ledger VALUES ($1)", id)
				return err
			})
			if err != nil {
				if ctx.Err() == nil {
					w.err = fmt.Errorf("transaction %d: %w", id, err)
				}
				return
			}
			w.acked.Store(id)
		}
	}()
	t.Cleanup(func() {
		w.cancel()
		<-w.done
		if w.err != nil {
			t.Errorf("writer: %v", w.err)
		}
	})
	return w
}

// pgRestore is what a copy of the snapshots showed.
type pgRestore struct {
	replayed int64         // bytes of WAL replayed at startup
	ready    time.Duration // from starting the server to its first accepted connection
	pre      time.Duration // the hooks' pre edges: the CHECKPOINT, when there is one
}

// pgRound makes WAL (a checkpoint, then pgBulkRows rows), snapshots the data
// and WAL subvolumes through a plan of list, restores them and starts a
// server on the copies. The copy must recover and hold every row committed
// before the snapshot; the test fails otherwise.
func pgRound(t testing.TB, env *pgEnv, admin *pgx.Conn, w *pgWriter, list *hooks.List) pgRestore {
	t.Helper()
	out := pgCheckCopy(t, env, pgSnap(t, env, admin, w, list, pgBulkRows, nil))
	if !out.started() {
		t.Fatalf("the copy did not start: %s", out)
	}
	for _, p := range out.problems {
		t.Error(p)
	}
	return out.res
}

// pgSnapped is what pgSnap took.
type pgSnapped struct {
	set         []subvol // data, wal
	ackedBefore int64    // transactions acknowledged when the callback began
	bulkRows    int64
	pre         time.Duration // the hooks' pre edges
}

// pgSnap makes WAL (a checkpoint, then bulkRows rows) and snapshots the data
// and WAL through a plan of list; between, when not nil, runs between the
// two snapshots.
func pgSnap(t testing.TB, env *pgEnv, admin *pgx.Conn, w *pgWriter, list *hooks.List, bulkRows int64, between func(context.Context, int) error) pgSnapped {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	pgExec(t, ctx, admin, "TRUNCATE bulk", "CHECKPOINT",
		fmt.Sprintf("INSERT INTO bulk SELECT g, repeat('x', 200) FROM generate_series(1, %d) g", bulkRows))

	r := pgSnapped{set: env.snapshotSet(t, "pg"), bulkRows: bulkRows}
	cb := snapshotCallback(t, r.set, between)
	rep := runPlan(t, ctx, list, pgDataset, func(ctx context.Context) error {
		r.ackedBefore = w.acked.Load()
		return cb(ctx)
	})
	for _, s := range rep {
		if s.Edge == hooks.Pre {
			r.pre += s.Duration()
		}
	}
	return r
}

// pgOutcome is what a copy of the snapshots turned out to be.
type pgOutcome struct {
	mountErr string // why a volume's copy would not mount
	startErr string // why the server did not come up
	problems []string
	res      pgRestore
}

func (o pgOutcome) started() bool { return o.mountErr == "" && o.startErr == "" }
func (o pgOutcome) String() string {
	switch {
	case o.mountErr != "":
		return "would not mount: " + o.mountErr
	case o.startErr != "":
		return "would not start: " + o.startErr
	case len(o.problems) > 0:
		return "inconsistent: " + strings.Join(o.problems, "; ")
	}
	return "consistent"
}

// pgCheckCopy restores the snapshots of r, starts a server on the copies and
// checks that it recovered every row committed before the snapshot.
func pgCheckCopy(t testing.TB, env *pgEnv, r pgSnapped) pgOutcome {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	out := pgOutcome{res: pgRestore{pre: r.pre}}
	dataCopy, err := restoreCopy(t, r.set[0])
	if err != nil {
		out.mountErr = err.Error()
		return out
	}
	walCopy, err := restoreCopy(t, r.set[1])
	if err != nil {
		out.mountErr = err.Error()
		return out
	}
	dataDir := filepath.Join(dataCopy, "data")
	// The copy's pg_wal is a symlink to the live WAL directory: point it at
	// the WAL copy. The copy's postmaster.pid names the live server, which
	// would keep the copy from starting.
	if err := os.Remove(filepath.Join(dataDir, "pg_wal")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(walCopy, "wal"), filepath.Join(dataDir, "pg_wal")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dataDir, "postmaster.pid")); err != nil {
		t.Fatal(err)
	}

	pg := lookupAccount(t, "postgres")
	port := freePort(t)
	logPath := filepath.Join(env.tmp, filepath.Base(r.set[0].snap)+".log")
	srv := startServer(t, "postgres on "+filepath.Base(r.set[0].snap), logPath, pg, &pg, syscall.SIGQUIT,
		filepath.Join(env.bin, "postgres"), "-D", dataDir, "-p", strconv.Itoa(port), "-k", env.tmp,
		"-c", "listen_addresses=127.0.0.1", "-c", "logging_collector=off")
	var conn *pgx.Conn
	out.res.ready, err = srv.awaitReady(pgReadyTimeout, func() error {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		cfg := env.admin.Copy()
		cfg.Port = uint16(port)
		conn, err = pgx.ConnectConfig(cctx, cfg)
		return err
	})
	if err != nil {
		tail := tailFile(logPath, 10)
		out.startErr = err.Error()
		for _, l := range strings.Split(tail, "\n") {
			if i := strings.Index(l, "PANIC:"); i >= 0 {
				out.startErr += ": " + l[i:] // says why
				break
			}
		}
		out.startErr += "; log:\n" + tail
		return out
	}
	defer conn.Close(context.Background())

	out.res.replayed, err = pgReplayed(logPath)
	if err != nil {
		t.Fatal(err)
	}
	out.problems = pgInvariant(ctx, conn, r)
	return out
}

// pgInvariant returns what is wrong with the writer's tables in the copy
// that conn is connected to.
func pgInvariant(ctx context.Context, conn *pgx.Conn, r pgSnapped) []string {
	var problems []string
	var sum, accounts, n, lo, hi, bulk int64
	if err := conn.QueryRow(ctx, "SELECT SUM(balance), COUNT(*) FROM accounts").Scan(&sum, &accounts); err != nil {
		return append(problems, "read accounts: "+err.Error())
	}
	if err := conn.QueryRow(ctx, "SELECT COUNT(*), COALESCE(MIN(id), 0), COALESCE(MAX(id), 0) FROM ledger").Scan(&n, &lo, &hi); err != nil {
		return append(problems, "read ledger: "+err.Error())
	}
	if err := conn.QueryRow(ctx, "SELECT COUNT(*) FROM bulk").Scan(&bulk); err != nil {
		return append(problems, "read bulk: "+err.Error())
	}
	if sum != pgAccounts*pgStartBalance || accounts != pgAccounts {
		problems = append(problems, fmt.Sprintf("accounts: %d rows summing to %d, want %d summing to %d", accounts, sum, pgAccounts, pgAccounts*pgStartBalance))
	}
	if n != hi || n > 0 && lo != 1 {
		problems = append(problems, fmt.Sprintf("ledger has holes: %d rows with ids %d..%d", n, lo, hi))
	}
	if hi < r.ackedBefore {
		problems = append(problems, fmt.Sprintf("lost committed transactions: the ledger ends at %d, %d were committed before the snapshot", hi, r.ackedBefore))
	}
	if bulk != r.bulkRows {
		problems = append(problems, fmt.Sprintf("bulk: %d rows, want %d", bulk, r.bulkRows))
	}
	return problems
}

var (
	redoStarts = regexp.MustCompile(`redo starts at ([0-9A-F]+)/([0-9A-F]+)`)
	redoDone   = regexp.MustCompile(`redo done at ([0-9A-F]+)/([0-9A-F]+)`)
)

// pgReplayed returns how many bytes of WAL the server whose log is at path
// replayed, from its "redo starts at" and "redo done at" lines; 0 when it
// says "redo is not required".
func pgReplayed(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	start, done := redoStarts.FindSubmatch(b), redoDone.FindSubmatch(b)
	if start == nil || done == nil {
		if regexp.MustCompile(`redo is not required`).Match(b) {
			return 0, nil
		}
		return 0, fmt.Errorf("no redo start and end in the log %s", path)
	}
	lsn := func(m [][]byte) int64 {
		hi, _ := strconv.ParseInt(string(m[1]), 16, 64)
		lo, _ := strconv.ParseInt(string(m[2]), 16, 64)
		return hi<<32 | lo
	}
	return lsn(done) - lsn(start), nil
}

// pgCases are the plans compared: no hook, and postgres-checkpoint.
func pgCases(t testing.TB, env *pgEnv) []struct {
	name string
	list *hooks.List
} {
	t.Helper()
	list, err := hooks.ListFromConfig(&hooks.HookList{{
		Type:        hooks.TypePostgresCheckpoint,
		DSN:         env.chkptDSN,
		Timeout:     5 * time.Minute,
		Filesystems: map[string]bool{pgDataset: true},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return []struct {
		name string
		list *hooks.List
	}{{"no hook", &hooks.List{}}, {hooks.TypePostgresCheckpoint, list}}
}

// setupPg creates the writer's tables on the PostgreSQL on subvolumes and
// starts the writer.
func setupPg(t testing.TB) (*pgEnv, *pgx.Conn, *pgWriter) {
	t.Helper()
	return setupPgOn(t, newPgEnv(t))
}

// setupPgOn creates the writer's tables on the server of env and starts the
// writer.
func setupPgOn(t testing.TB, env *pgEnv) (*pgEnv, *pgx.Conn, *pgWriter) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	admin, err := pgConnect(t, ctx, env, 0)
	if err != nil {
		t.Fatal(err)
	}
	pgExec(t, ctx, admin,
		"DROP TABLE IF EXISTS accounts, ledger, bulk",
		"CREATE TABLE accounts (id int PRIMARY KEY, balance bigint NOT NULL)",
		fmt.Sprintf("INSERT INTO accounts SELECT g, %d FROM generate_series(1, %d) g", pgStartBalance, pgAccounts),
		"CREATE TABLE ledger (id bigint PRIMARY KEY)",
		"CREATE TABLE bulk (id int, pad text)")
	return env, admin, startPgWriter(t, env)
}

// TestPostgresSnapshot snapshots PostgreSQL's data and WAL subvolumes under a
// writer, with and without postgres-checkpoint: every copy must recover and
// hold every committed row. It reports the WAL replayed and the time to
// accept connections.
func TestPostgresSnapshot(t *testing.T) {
	env, admin, w := setupPg(t)
	for _, c := range pgCases(t, env) {
		t.Run(c.name, func(t *testing.T) {
			var rs []pgRestore
			for i := range 2 {
				t.Run(fmt.Sprintf("round%d", i+1), func(t *testing.T) {
					rs = append(rs, pgRound(t, env, admin, w, c.list))
				})
			}
			result(t, "postgres %-20s %s", c.name+":", pgSummary(rs))
		})
	}
}

// pgSummary returns the medians of rs.
func pgSummary(rs []pgRestore) string {
	var replayed, ready, pre []time.Duration
	for _, r := range rs {
		replayed = append(replayed, time.Duration(r.replayed)) // bytes, sorted as durations
		ready = append(ready, r.ready)
		pre = append(pre, r.pre)
	}
	mb := func(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d)/1e6) }
	sec := func(d time.Duration) string { return fmt.Sprintf("%.2f", d.Seconds()) }
	ms := func(d time.Duration) string { return fmt.Sprintf("%.0f", float64(d)/float64(time.Millisecond)) }
	return fmt.Sprintf("%d restores, median (min–max): WAL replayed %s MB, ready in %s s; pre edges %s ms",
		len(rs), spread(replayed, mb), spread(ready, sec), spread(pre, ms))
}

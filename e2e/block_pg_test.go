//go:build e2e

package e2e_test

// PostgreSQL with its data directory and WAL on two volumes, snapshotted one
// after the other (data first) at the block level: see block_test.go.

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/snaphooks/hooks"
)

const (
	// pgBlockBulkRows are the rows written after the checkpoint that starts
	// each round: about 25 MB of WAL, more than a segment, small next to the
	// volumes.
	pgBlockBulkRows = 100000
	// pgActivityWait bounds the wait for the checkpoint between the two
	// snapshots: under a freeze it cannot finish until the thaw.
	pgActivityWait = 3 * time.Second
)

// pgActivity runs, between the two snapshots, a WAL switch and a CHECKPOINT
// on a connection of its own: the checkpoint lets the server recycle the WAL
// segments that the data volume's snapshot still needs.
type pgActivity struct {
	conn *pgx.Conn
	done chan struct{}
	err  error // set before done is closed
}

// between starts the switch and the checkpoint and waits until they are done
// or pgActivityWait passed.
func (a *pgActivity) between(context.Context, int) error {
	a.done = make(chan struct{})
	go func() {
		defer close(a.done)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		if _, a.err = a.conn.Exec(ctx, "SELECT pg_switch_wal()"); a.err == nil {
			_, a.err = a.conn.Exec(ctx, "CHECKPOINT")
		}
	}()
	select {
	case <-a.done:
	case <-time.After(pgActivityWait):
	}
	return nil
}

// await waits for the switch and the checkpoint to finish, which they can
// once the plan has thawed the filesystems.
func (a *pgActivity) await(t testing.TB) {
	t.Helper()
	<-a.done
	if a.err != nil {
		t.Fatalf("the checkpoint between the snapshots: %v", a.err)
	}
}

// pgBlockTally sums up the outcomes of a row.
func pgBlockTally(outs []pgOutcome) string {
	var ok, bad, nostart, nomount int
	var replayed, ready []time.Duration
	var examples []string
	for _, o := range outs {
		switch {
		case o.mountErr != "":
			nomount++
		case o.startErr != "":
			nostart++
		case len(o.problems) > 0:
			bad++
		default:
			ok++
		}
		if o.started() {
			replayed = append(replayed, time.Duration(o.res.replayed))
			ready = append(ready, o.res.ready)
		}
		if (!o.started() || len(o.problems) > 0) && len(examples) < 2 {
			examples = append(examples, firstLine(o.String()))
		}
	}
	mb := func(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d)/1e6) }
	sec := func(d time.Duration) string { return fmt.Sprintf("%.2f", d.Seconds()) }
	s := fmt.Sprintf("%d tries: %d consistent, %d inconsistent, %d would not start, %d would not mount; WAL replayed %s MB, ready in %s s",
		len(outs), ok, bad, nostart, nomount, spread(replayed, mb), spread(ready, sec))
	if len(examples) > 0 {
		s += "; e.g. " + strings.Join(examples, " | ")
	}
	return s
}

// firstLine returns s up to its first newline.
func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// TestBlockPostgres snapshots the volumes of PostgreSQL's data directory and
// WAL, data first, under the writer: with no hook, postgres-checkpoint and
// both volumes frozen; each also with a WAL switch and a checkpoint between
// the two snapshots. Copies taken frozen must recover every committed row;
// the others are measured and reported.
func TestBlockPostgres(t *testing.T) {
	env, admin, w := setupPgOn(t, newPgEnvFrom(t, blockPrefix))
	tries := envInt(t, "SNAPHOOKS_E2E_BLOCK_TRIES", 2)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	actConn, err := pgConnect(t, ctx, env, 0)
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		name   string
		list   *hooks.List
		frozen bool
	}
	var rows []row
	for _, c := range pgCases(t, env) {
		rows = append(rows, row{name: c.name, list: c.list})
	}
	rows = append(rows, row{name: freezeName, list: hookList(t, freezeHook(t, map[string]bool{pgDataset: true}, env.data, env.wal)), frozen: true})
	for _, activity := range []bool{false, true} {
		for _, c := range rows {
			name := c.name
			if activity {
				name += ", a checkpoint between the snapshots"
			}
			t.Run(strings.ReplaceAll(name, " ", "_"), func(t *testing.T) {
				var outs []pgOutcome
				for i := range tries {
					t.Run(fmt.Sprintf("try%d", i+1), func(t *testing.T) {
						var between func(context.Context, int) error
						act := &pgActivity{conn: actConn}
						if activity {
							between = act.between
							defer func() { // also when pgSnap fails the test
								if act.done != nil {
									<-act.done
								}
							}()
						}
						r := pgSnap(t, env, admin, w, c.list, pgBlockBulkRows, between)
						if activity {
							act.await(t)
						}
						out := pgCheckCopy(t, env, r)
						t.Logf("%s: %s", name, out)
						if c.frozen && (!out.started() || len(out.problems) > 0) {
							t.Errorf("the copy taken with %s is not consistent: %s", name, out)
						}
						outs = append(outs, out)
					})
				}
				result(t, "postgres on volumes %-62s %s", name+":", pgBlockTally(outs))
			})
		}
	}
}

package main

// The holder: the detached process that "snaphook pre" leaves behind. It runs
// an ordinary plan whose callback is "someone else takes the snapshot": when
// the callback starts, every pre edge is done, so it tells pre "held" and
// waits, inside the callback, for a "snaphook post" (the callback returns nil
// and the post edges run) or for --max-hold to pass (the callback fails with
// "hold expired", and the post edges run all the same). The hooks' state —
// the pinned database sessions — lives in the plan, in this process.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/snaphooks/hooks"
)

// holderCommand is the hidden subcommand that pre runs as the holder.
const holderCommand = "__hold"

// The descriptors pre hands the holder, after stdin, stdout and stderr.
const (
	holderCtrlFD = 3 // one end of a socket pair with pre
	holderSockFD = 4 // the listening socket for post
	holderLockFD = 5 // the lock file, flock'ed by pre for the holder
)

// holdExpiredMsg starts the callback's error when no post came in time.
const holdExpiredMsg = "hold expired after"

// newHoldPlan builds the plan of a hold: one job plan (hooks.NewJobPlan) of
// the hooks of list that match any of datasets (or, if recursive, anything
// below them), around cb, with ZREPL_FS, ZREPL_FS_LIST and ZREPL_SNAPNAME
// set.
func newHoldPlan(list hooks.List, datasets []string, recursive bool, snapshot, display string, cb hooks.HookJobCallback) (*hooks.Plan, error) {
	scope := hooks.Scope{Recursive: recursive}
	for _, d := range datasets {
		p, err := hooks.NewDatasetPath(d)
		if err != nil {
			return nil, err
		}
		scope.Datasets = append(scope.Datasets, p)
	}
	return hooks.NewJobPlan(&list, hooks.PhaseSnapshot, hooks.NewCallbackHook(display, cb, nil), scope, hooks.Env{hooks.EnvSnapshot: snapshot})
}

// holdDisplay names the callback step of a hold in reports.
func holdDisplay(maxHold time.Duration) string {
	return fmt.Sprintf("hold until snaphook post (at most %s)", maxHold)
}

// The states of a holder.
const (
	stateStarting  = iota // the pre edges run; pre waits
	stateHolding          // the callback waits for a post
	stateUnwinding        // the post edges run
	stateDone             // the plan is over
)

// holder is the state of the holder process.
type holder struct {
	job     holdJob
	maxHold time.Duration
	plan    *hooks.Plan
	ctrl    net.Conn // the socket pair with pre, until pre acknowledges "held"
	ctrlR   msgReader
	ln      *net.UnixListener
	logFile *cappedLog
	log     *slog.Logger
	postCh  chan struct{} // closed when a post claims the hold while holding
	// expired is closed when --max-hold has passed since the holder got
	// its job, whatever pre does meanwhile.
	expired chan struct{}

	// mu guards the fields below.
	mu       sync.Mutex
	state    int
	sink     *msgWriter    // where log lines go besides logFile: pre, then post
	pre      net.Conn      // the control socket while pre waits, else nil
	post     *net.UnixConn // the post that claimed the hold, or came after its end
	postReq  *postReq      // the request of post
	expiredB bool          // expired is closed

	conns sync.WaitGroup // the accept loop and the connection handlers
}

// runHolder is the holder's main. Its stdout and stderr are its log file;
// its descriptors 3, 4 and 5 come from pre.
func runHolder(s streams) int {
	ctrlF := os.NewFile(holderCtrlFD, "control")
	sockF := os.NewFile(holderSockFD, "listener")
	lockF := os.NewFile(holderLockFD, "lock")
	if ctrlF == nil || sockF == nil || lockF == nil {
		fmt.Fprintln(s.Stderr, "snaphook: "+holderCommand+" is run by snaphook pre, not by hand")
		return exitUsage
	}
	defer lockF.Close() // keeps the flock until the hold is over
	ctrl, err := net.FileConn(ctrlF)
	ctrlF.Close()
	if err != nil {
		fmt.Fprintf(s.Stderr, "snaphook holder: control socket: %v\n", err)
		return exitUsage
	}
	defer ctrl.Close()
	l, err := net.FileListener(sockF)
	sockF.Close()
	if err != nil {
		fmt.Fprintf(s.Stderr, "snaphook holder: listening socket: %v\n", err)
		return exitUsage
	}
	ln, ok := l.(*net.UnixListener)
	if !ok {
		l.Close()
		fmt.Fprintln(s.Stderr, "snaphook holder: the listening socket is not a Unix socket")
		return exitUsage
	}
	ln.SetUnlinkOnClose(false) // removed by finish, under the lock
	h := &holder{ctrl: ctrl, ctrlR: newMsgReader(ctrl), ln: ln, logFile: newCappedLog(s.Stderr), postCh: make(chan struct{}), expired: make(chan struct{})}
	h.sink = &msgWriter{ctrl}
	h.pre = ctrl
	return h.run(lockF)
}

// fail tells pre that the holder could not start, logs it and returns exitUsage.
func (h *holder) fail(err error) int {
	fmt.Fprintf(h.logFile, "snaphook holder: %v\n", err)
	_ = msgWriter{h.ctrl}.send(message{Error: err.Error()})
	h.ln.Close()
	return exitUsage
}

func (h *holder) run(lockF *os.File) int {
	msg, err := h.ctrlR.next()
	if err != nil || msg.Job == nil {
		return h.fail(fmt.Errorf("no job from snaphook pre: %v", err))
	}
	h.job = *msg.Job
	if h.maxHold, err = time.ParseDuration(h.job.MaxHold); err != nil || h.maxHold <= 0 {
		return h.fail(fmt.Errorf("bad max hold %q", h.job.MaxHold))
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(h.job.LogLevel)); err != nil {
		return h.fail(fmt.Errorf("bad log level %q", h.job.LogLevel))
	}
	h.log = slog.New(hooks.NewLogfmtHandler(logWriter{h}, &slog.HandlerOptions{Level: level}))
	cfg, err := hooks.ParseHookList(h.job.Config)
	if err != nil {
		return h.fail(fmt.Errorf("%s: %w", h.job.ConfigName, err))
	}
	list, err := hooks.ListFromConfig(&cfg)
	if err != nil {
		return h.fail(fmt.Errorf("%s: %w", h.job.ConfigName, err))
	}
	plan, err := newHoldPlan(*list, h.job.Datasets, h.job.Recursive, h.job.Snapshot, holdDisplay(h.maxHold), h.callback)
	if err != nil {
		return h.fail(err)
	}
	h.plan = plan

	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	sig := watchSignals(ctx, h.log, cancel)
	// The dead-man switch counts from here: the first hook may take its
	// lock any moment now.
	expiry := time.AfterFunc(h.maxHold, func() { h.expire(cancel) })
	defer expiry.Stop()
	h.conns.Add(1)
	go func() {
		defer h.conns.Done()
		h.serve()
	}()

	h.log.LogAttrs(ctx, slog.LevelInfo, "hold: running the pre edges", slog.String("fs", datasetList(h.job.Datasets, h.job.Recursive)),
		slog.String("snapshot", h.job.Snapshot), slog.Int("hooks", plan.Report().Hooks()), slog.Int("holder_pid", os.Getpid()), slog.Duration("max_hold", h.maxHold))
	plan.Run(hooks.WithLogger(ctx, h.log), false)
	signalName, signalAt := sig.stop()

	res := h.resultFor(plan.Report(), signalName, signalAt)
	h.log.LogAttrs(ctx, slog.LevelInfo, "hold: done", slog.Int("exit_code", res.Code), slog.String("result", lastLine(res.Text)))
	h.finish(res, lockF)
	h.logFile.close()
	return exitOK
}

// expire is the dead-man switch: it closes expired, and cancels the pre
// edges if they still run.
func (h *holder) expire(cancel context.CancelCauseFunc) {
	h.mu.Lock()
	h.expiredB = true
	starting := h.state == stateStarting
	h.mu.Unlock()
	close(h.expired)
	if starting {
		cancel(h.expiredErr("the pre edges had not ended"))
	}
}

// expiredErr is the error of a hold that expired; why says when.
func (h *holder) expiredErr(why string) error {
	return fmt.Errorf("%s %s: %s", holdExpiredMsg, h.maxHold, why)
}

// hasExpired reports whether --max-hold has passed.
func (h *holder) hasExpired() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.expiredB
}

// callback is the callback step of the hold: it reports "held" to pre and
// waits for a post, the dead-man switch, or a signal.
func (h *holder) callback(ctx context.Context) error {
	rep := h.plan.Report()
	steps, _ := json.Marshal(rep)
	preErr := false
	for _, st := range rep {
		preErr = preErr || st.Edge == hooks.Pre && st.Status == hooks.StepErr
	}
	info := &holdInfo{PID: os.Getpid(), Hooks: rep.Hooks(), PreError: preErr, Report: sanitize(rep.String()), Steps: steps}
	// From here on a post may claim the hold: pre returns once the holder
	// has confirmed its ack, and its caller may run post at once.
	h.mu.Lock()
	h.state = stateHolding
	h.mu.Unlock()
	err := msgWriter{h.ctrl}.send(message{Held: info})
	if err == nil {
		err = h.awaitAck(ctx)
	}
	if err == nil {
		err = msgWriter{h.ctrl}.send(message{Confirmed: true})
	}
	h.mu.Lock()
	switch {
	case err == nil: // pre returns 0: the hold is the post's business now
		h.pre = nil
		if h.post == nil {
			h.sink = nil // else it is the post's by now
		}
	case ctx.Err() == nil && !h.expiredB: // pre went away
		h.pre, h.sink = nil, nil
	} // else pre waits for the end of the plan
	if err != nil && h.state == stateHolding {
		h.state = stateUnwinding
	}
	h.mu.Unlock()
	switch {
	case h.hasExpired():
		h.log.LogAttrs(ctx, slog.LevelError, "hold expired before snaphook pre could return: unwinding", slog.Duration("max_hold", h.maxHold))
		return h.expiredErr("snaphook pre had not returned")
	case ctx.Err() != nil:
		return fmt.Errorf("hold ended before snaphook post: %w", context.Cause(ctx))
	case err != nil:
		return fmt.Errorf("snaphook pre went away before it could report the hold: %w", err)
	}
	h.ctrl.Close()
	h.log.LogAttrs(ctx, slog.LevelInfo, "hold: held; waiting for snaphook post", slog.Duration("max_hold", h.maxHold))

	select {
	case <-h.postCh:
		return h.posted()
	case <-h.expired:
		h.mu.Lock()
		h.state = stateUnwinding
		h.mu.Unlock()
		h.log.LogAttrs(ctx, slog.LevelError, "hold expired: no snaphook post came; unwinding", slog.Duration("max_hold", h.maxHold))
		return h.expiredErr("no snaphook post came")
	case <-ctx.Done():
		h.mu.Lock()
		h.state = stateUnwinding
		h.mu.Unlock()
		return fmt.Errorf("hold ended before snaphook post: %w", context.Cause(ctx))
	}
}

// posted ends the callback after a post claimed the hold: the post edges
// get post's environment (but for ZREPL_* variables, which are the plan's),
// and ZREPL_CALLBACK_RESULT says what post's --snapshot-result says.
func (h *holder) posted() error {
	h.mu.Lock()
	req := h.postReq
	h.mu.Unlock()
	env := hooks.Env{}
	for _, kv := range req.Env {
		if k, v, ok := strings.Cut(kv, "="); ok && !strings.HasPrefix(k, "ZREPL_") {
			env[hooks.HookEnvVar(k)] = v
		}
	}
	var err error
	switch req.SnapshotResult {
	case "ok": // the callback's own result: ok
	case "failed": // the callback's own result: error
		err = errors.New("snaphook post says the snapshot failed (--snapshot-result failed)")
	default:
		env[hooks.EnvCallbackResult] = "unknown"
	}
	h.plan.SetPostEnv(env)
	return err
}

// awaitAck waits for pre's acknowledgement of "held". It fails if pre is
// gone (the socket pair closed) or ctx is done.
func (h *holder) awaitAck(ctx context.Context) error {
	ack := make(chan error, 1)
	go func() {
		msg, err := h.ctrlR.next()
		if err == nil && !msg.Ack {
			err = errors.New("unexpected message")
		}
		ack <- err
	}()
	var err error
	select {
	case err = <-ack:
		return err
	case <-ctx.Done():
		err = context.Cause(ctx)
	case <-h.expired:
		err = h.expiredErr("snaphook pre had not acknowledged the hold")
	}
	// End the read, but keep the socket: pre may still read the end of
	// the plan.
	_ = h.ctrl.SetReadDeadline(time.Now())
	<-ack
	return err
}

// serve accepts connections until the listener is closed.
func (h *holder) serve() {
	for {
		c, err := h.ln.AcceptUnix()
		if err != nil {
			return
		}
		h.conns.Add(1)
		go func() {
			defer h.conns.Done()
			h.handle(c)
		}()
	}
}

// postReadTimeout bounds how long a client may take to send its request.
const postReadTimeout = 10 * time.Second

// handle serves one client: a post of the same uid claims the hold; any other
// client gets an error.
func (h *holder) handle(c *net.UnixConn) {
	w := msgWriter{c}
	uid, err := peerUID(c)
	if err != nil || uid != os.Geteuid() {
		if err == nil {
			err = fmt.Errorf("peer uid %d is not the holder's uid %d", uid, os.Geteuid())
		}
		h.log.LogAttrs(context.Background(), slog.LevelWarn, "hold: refused a connection", slog.String("err", err.Error()))
		_ = w.send(message{Error: "refused: " + err.Error()})
		c.Close()
		return
	}
	_ = c.SetReadDeadline(time.Now().Add(postReadTimeout))
	msg, err := newMsgReader(c).next()
	_ = c.SetReadDeadline(time.Time{})
	if err != nil || msg.Post == nil {
		_ = w.send(message{Error: fmt.Sprintf("expected a post request (%v)", err)})
		c.Close()
		return
	}
	if msg.Post.Config != "" && msg.Post.Config != h.job.ConfigName {
		h.log.LogAttrs(context.Background(), slog.LevelWarn, "hold: snaphook post names another config than pre; the post edges are those of pre's",
			slog.String("pre_config", h.job.ConfigName), slog.String("post_config", msg.Post.Config))
	}

	if msg.Post.Owner != h.job.Owner {
		h.log.LogAttrs(context.Background(), slog.LevelWarn, "hold: refused a snaphook post of another run", slog.Int("post_pid", msg.Post.PID))
		_ = w.send(message{Error: "this hold belongs to another run: not released"})
		c.Close()
		return
	}

	claimed := false
	h.mu.Lock()
	switch {
	case h.state == stateStarting:
		_ = w.send(message{Error: "not held yet: the pre edges are still running (snaphook pre has not returned)"})
		c.Close()
	case h.post != nil:
		_ = w.send(message{Error: "another snaphook post is already being served"})
		c.Close()
	default: // holding, unwinding after --max-hold, or done: the report is this post's
		h.post, h.postReq = c, msg.Post
		if h.state != stateDone {
			h.sink = &msgWriter{c}
		}
		if h.state == stateHolding {
			h.state = stateUnwinding
			close(h.postCh)
			claimed = true
		}
	}
	h.mu.Unlock()
	if claimed {
		h.log.LogAttrs(context.Background(), slog.LevelInfo, "hold: snaphook post came; running the post edges", slog.Int("post_pid", msg.Post.PID))
	}
}

// finish ends the hold, then hands the result to pre, if the plan ended
// before pre returned, or to the post that claimed the hold or came after
// its end; if neither waits, the result file keeps it for a later post.
// The hold ends first (see release), so that once they have the result, a
// new pre for the same datasets never collides with this one.
func (h *holder) finish(res holdResult, lockF *os.File) {
	h.mu.Lock()
	h.state = stateDone
	h.sink = nil
	h.mu.Unlock()
	h.ln.Close()
	h.conns.Wait() // a post that came meanwhile is h.post now

	h.mu.Lock()
	pre, post := h.pre, h.post
	h.pre = nil
	h.mu.Unlock()
	h.release(res, lockF, pre == nil && post == nil)
	if pre != nil {
		_ = msgWriter{pre}.send(message{Done: &res})
	}
	if post != nil {
		_ = msgWriter{post}.send(message{Done: &res})
		post.Close()
	}
}

// release ends the hold under the registry lock: it writes the result file
// if keep, removes the hold's entry and socket, and releases the hold's
// lock, so that a pre that sees no entry can take it.
func (h *holder) release(res holdResult, lockF *os.File, keep bool) {
	reg, err := lockRegistry(filepath.Dir(h.job.Files.Lock))
	if err != nil {
		fmt.Fprintf(h.logFile, "snaphook holder: %v (releasing the hold without it)\n", err)
	} else {
		defer reg.unlock()
	}
	if keep {
		if err := writeResult(h.job.Files.Result, res); err != nil {
			fmt.Fprintf(h.logFile, "snaphook holder: %v\n", err)
		}
	}
	_ = os.Remove(h.job.Files.Entry)
	_ = os.Remove(h.job.Files.Sock)
	_ = syscall.Flock(int(lockF.Fd()), syscall.LOCK_UN)
}

// logWriter writes each log record to the holder's log file and, while a
// client is attached, to that client.
type logWriter struct{ h *holder }

func (l logWriter) Write(p []byte) (int, error) {
	_, _ = l.h.logFile.Write(p)
	l.h.mu.Lock()
	defer l.h.mu.Unlock()
	if l.h.sink != nil {
		for _, line := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
			if err := l.h.sink.send(message{Log: line}); err != nil {
				l.h.sink = nil // the client went away; the log file has it all
				break
			}
		}
	}
	return len(p), nil
}

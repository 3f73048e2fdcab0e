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
	"io"
	"log/slog"
	"net"
	"os"
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
	logFile io.Writer
	log     *slog.Logger
	postCh  chan struct{} // closed when a post claims the hold while holding

	// mu guards the fields below.
	mu       sync.Mutex
	state    int
	sink     *msgWriter    // where log lines go besides logFile: pre, then post
	pre      net.Conn      // the control socket while pre waits, else nil
	post     *net.UnixConn // the post that claimed the hold
	result   *holdResult   // set in stateDone
	consumed bool          // result was handed to a late post

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
	h := &holder{ctrl: ctrl, ctrlR: newMsgReader(ctrl), ln: ln, logFile: s.Stderr, postCh: make(chan struct{})}
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
	return exitOK
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
	// From here on a post may claim the hold: pre returns once it has sent
	// its ack, and its caller may run post before this process has read it.
	h.mu.Lock()
	h.state = stateHolding
	h.mu.Unlock()
	err := msgWriter{h.ctrl}.send(message{Held: info})
	if err == nil {
		err = h.awaitAck(ctx)
	}
	h.mu.Lock()
	if h.post == nil {
		h.sink = nil // else it is the post's by now
	}
	h.pre = nil
	if err != nil && h.state == stateHolding {
		h.state = stateUnwinding
	}
	h.mu.Unlock()
	h.ctrl.Close()
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("hold ended before snaphook post: %w", context.Cause(ctx))
	case err != nil:
		return fmt.Errorf("snaphook pre went away before it could report the hold: %w", err)
	}
	h.log.LogAttrs(ctx, slog.LevelInfo, "hold: held; waiting for snaphook post", slog.Duration("max_hold", h.maxHold))

	timer := time.NewTimer(h.maxHold)
	defer timer.Stop()
	select {
	case <-h.postCh:
		return nil
	case <-timer.C:
		h.mu.Lock()
		h.state = stateUnwinding
		h.mu.Unlock()
		err := fmt.Errorf("%s %s: no snaphook post came", holdExpiredMsg, h.maxHold)
		h.log.LogAttrs(ctx, slog.LevelError, "hold expired: no snaphook post came; unwinding", slog.Duration("max_hold", h.maxHold))
		return err
	case <-ctx.Done():
		h.mu.Lock()
		h.state = stateUnwinding
		h.mu.Unlock()
		return fmt.Errorf("hold ended before snaphook post: %w", context.Cause(ctx))
	}
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
	select {
	case err := <-ack:
		return err
	case <-ctx.Done():
		h.ctrl.Close() // ends the read
		<-ack
		return context.Cause(ctx)
	}
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

	claimed := false
	h.mu.Lock()
	switch {
	case h.state == stateStarting:
		_ = w.send(message{Error: "not held yet: the pre edges are still running (snaphook pre has not returned)"})
		c.Close()
	case h.state == stateDone:
		// The hold ended without a post; its report is in the result file.
		if h.consumed || h.result == nil {
			_ = w.send(message{Error: "the hold has ended and its report was already given to another snaphook post"})
		} else {
			h.consumed = true
			_ = os.Remove(h.job.Files.Result)
			_ = w.send(message{Done: h.result})
		}
		c.Close()
	case h.post != nil:
		_ = w.send(message{Error: "another snaphook post is already being served"})
		c.Close()
	default:
		h.post = c
		h.sink = &msgWriter{c}
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

// finish hands the result to pre, if the plan ended before the hold, or to
// the post that claimed the hold, or else writes it to the result file for a
// later post; then it closes the socket, removes it
// and releases the lock.
func (h *holder) finish(res holdResult, lockF *os.File) {
	h.mu.Lock()
	h.state = stateDone
	h.result = &res
	h.sink = nil
	post := h.post
	delivered := false
	if h.pre != nil { // the plan ended before the hold: pre waits for this
		delivered = msgWriter{h.pre}.send(message{Done: &res}) == nil
		h.pre = nil
	}
	if post != nil {
		delivered = msgWriter{post}.send(message{Done: &res}) == nil
		post.Close()
	}
	if !delivered {
		if err := writeResult(h.job.Files.Result, res); err != nil {
			fmt.Fprintf(h.logFile, "snaphook holder: %v\n", err)
		}
	}
	h.mu.Unlock()

	h.ln.Close()
	h.conns.Wait()
	_ = os.Remove(h.job.Files.Sock)
	// Let the next pre take over at once, before this process is gone.
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

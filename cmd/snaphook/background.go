package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

// background owns goroutines that run until stop: the one pattern of
// snaphook's helpers that run beside a plan (the signal watcher, the live
// view, pre's signal forwarder). Each goroutine gets a ctx that stop
// cancels, and stop returns once every one has returned.
type background struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func newBackground() *background {
	b := &background{}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	return b
}

// Go runs f in a goroutine; f must return when its ctx is done.
func (b *background) Go(f func(ctx context.Context)) {
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		f(b.ctx)
	}()
}

// stop cancels the goroutines' ctx and waits for them.
func (b *background) stop() {
	b.cancel()
	b.wg.Wait()
}

// interruptSignals are the signals that cancel a run or a hold.
var interruptSignals = []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP}

// signalWatcher cancels a plan on SIGINT, SIGTERM or SIGHUP and logs the
// signals that come after.
type signalWatcher struct {
	bg *background
	// first is the first signal, and at the time it came; written by the
	// goroutine, read after bg.stop.
	first   string
	firstAt time.Time
}

// watchSignals cancels ctx's plan with cancel, with the cause "received
// SIGTERM", on the first of the interrupt signals, until stop.
func watchSignals(ctx context.Context, log *slog.Logger, cancel context.CancelCauseFunc) *signalWatcher {
	w := &signalWatcher{bg: newBackground()}
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, interruptSignals...)
	w.bg.Go(func(done context.Context) {
		defer signal.Stop(ch)
		for {
			select {
			case <-done.Done():
				return
			case sig := <-ch:
				name := signalName(sig)
				if w.first == "" {
					w.first, w.firstAt = name, time.Now()
					log.LogAttrs(ctx, slog.LevelWarn, "signal received: cancelling; the post edges of the hooks that ran still run", slog.String("signal", name))
					cancel(fmt.Errorf("received %s", name))
					continue
				}
				log.LogAttrs(ctx, slog.LevelWarn, "signal received again: still running the post edges, each within its timeout (SIGKILL abandons them)", slog.String("signal", name))
			}
		}
	})
	return w
}

// stop stops watching and returns the first signal received ("" if none)
// and when it came.
func (w *signalWatcher) stop() (string, time.Time) {
	w.bg.stop()
	return w.first, w.firstAt
}

// interruption is the cancellation cause an outcome names for a signal:
// "interrupted by SIGTERM".
type interruption string

func (i interruption) Error() string { return "interrupted by " + string(i) }

func signalName(sig os.Signal) string {
	switch sig {
	case syscall.SIGINT:
		return "SIGINT"
	case syscall.SIGTERM:
		return "SIGTERM"
	case syscall.SIGHUP:
		return "SIGHUP"
	}
	return sig.String()
}

package hooks

import (
	"fmt"
	"os"
	"sort"
	"syscall"
)

// Linux's limits on what a program is started with (execve(2)). Past them,
// exec fails with E2BIG, "argument list too long".
const (
	// maxArgStrlen is MAX_ARG_STRLEN, the most bytes one argument or
	// environment string may have, its terminating NUL included.
	maxArgStrlen = 32 * 4096
	// minArgMax is the least room all arguments and the environment have
	// together, whatever the stack limit (32 pages).
	minArgMax = 32 * 4096
	// maxArgMax is the most room they have: 3/4 of _STK_LIM (8 MiB).
	maxArgMax = 6 << 20
	// execReserve is the room a plan keeps free for what it cannot know
	// when it is made: the arguments of a hook or a callback, and the
	// variables added when an edge runs (EnvType, EnvDryRun, EnvTimeout,
	// EnvPreResult, EnvCallbackResult, EnvFSListFile, EnvConsistency).
	execReserve = 16 << 10
)

// execArgMax returns the room the arguments and the environment of a
// program started by this process have together, as Linux computes it: a
// quarter of the soft stack limit, at least minArgMax and at most
// maxArgMax. Each string counts with its NUL and a pointer to it.
func execArgMax() int {
	limit := uint64(maxArgMax)
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_STACK, &rl); err == nil && rl.Cur/4 < limit {
		limit = rl.Cur / 4
	}
	return int(max(limit, minArgMax))
}

// execSize is the room one string of the arguments or environment takes:
// its bytes, its NUL and a pointer to it.
func execSize(n int) int { return n + 1 + 8 }

// checkExecEnvs checks, before the plan runs, that the steps that start a
// program with the env the plan gives them (command hooks, and a callback
// made by NewCommandCallbackHook) can start it: no string of that env and
// the environment of this process longer than Linux allows (the error names
// the variable), and all of them together, with execReserve for arguments,
// within execArgMax.
func (p *Plan) checkExecEnvs() error {
	check := func(who string, env Env) error {
		base := 0 // the room the environment of this process takes
		for _, kv := range os.Environ() {
			base += execSize(len(kv))
		}
		total := base + execReserve
		var tooLong []string
		for k, v := range env {
			n := len(k) + 1 + len(v)
			if n+1 > maxArgStrlen {
				tooLong = append(tooLong, string(k))
			}
			total += execSize(n)
		}
		if len(tooLong) > 0 {
			sort.Strings(tooLong)
			k := HookEnvVar(tooLong[0])
			return fmt.Errorf("env of %s: %s is too long: %d bytes as \"%s=...\", and Linux starts no program with an environment string over %d bytes (MAX_ARG_STRLEN)",
				who, k, len(k)+1+len(env[k]), k, maxArgStrlen-1)
		}
		if total > minArgMax && total > execArgMax() { // within minArgMax, no stack limit matters
			return fmt.Errorf("env of %s: the environment of this process (%d bytes) and the plan's (%d bytes) with %d bytes kept for arguments are more than the %d bytes Linux starts a program with (a quarter of the stack limit, at most 6 MiB)",
				who, base, total-base-execReserve, execReserve, execArgMax())
		}
		return nil
	}
	for i := range p.hooks() {
		if h, ok := p.pre(i).Hook.(*CommandHook); ok {
			if err := check("hook "+hookName(h), p.env(i)); err != nil {
				return err
			}
			if p.envs == nil {
				return nil // every hook and the callback have cbEnv, just checked
			}
		}
	}
	if cb := p.callback().Hook.(*CallbackHook); cb.startsProgram {
		return check("the callback "+hookName(cb), p.cbEnv)
	}
	return nil
}

package hooks

import "context"

type callbackEnvKey struct{}

// withCallbackEnv returns a copy of ctx that carries env for CallbackEnv.
func withCallbackEnv(ctx context.Context, env Env) context.Context {
	return context.WithValue(ctx, callbackEnvKey{}, env)
}

// CallbackEnv returns the env a Plan gives the callback that runs with ctx:
// the extra env of the plan (EnvFS, EnvFSList, EnvSnapshot, ...), and
// EnvFSListFile and EnvConsistency, which the plan sets when Run reaches the
// callback. It returns nil for a ctx that is not that of a callback. The
// map belongs to the plan: read it, do not change it.
//
// A callback made by NewCommandCallback passes it on to its program; a Go
// callback reads what it needs, such as CallbackEnv(ctx)[EnvConsistency].
func CallbackEnv(ctx context.Context) Env {
	env, _ := ctx.Value(callbackEnvKey{}).(Env)
	return env
}

package hooks

import "context"

type (
	callbackEnvKey struct{}
	consistencyKey struct{}
)

// withCallbackEnv returns a copy of ctx that carries env for CallbackEnv.
func withCallbackEnv(ctx context.Context, env Env) context.Context {
	return context.WithValue(ctx, callbackEnvKey{}, env)
}

// withConsistency returns a copy of ctx that carries, for CallbackEnv, the
// EnvConsistency of its callback: *label, the callback step's Consistency,
// which is set before the callback runs and never changes after.
func withConsistency(ctx context.Context, label *string) context.Context {
	return context.WithValue(ctx, consistencyKey{}, label)
}

// CallbackEnv returns the env a Plan gives the callback that runs with ctx:
// the extra env of the plan (EnvFS, EnvFSList, EnvSnapshot, ...), and
// EnvFSListFile and EnvConsistency, which the plan sets when Run reaches the
// callback. It returns nil for a ctx that is not that of a callback. Read
// the map; do not change it.
//
// A callback made by NewCommandCallback passes it on to its program; a Go
// callback reads what it needs, such as CallbackEnv(ctx)[EnvConsistency].
func CallbackEnv(ctx context.Context) Env {
	env, _ := ctx.Value(callbackEnvKey{}).(Env)
	if label, ok := ctx.Value(consistencyKey{}).(*string); ok {
		env = copyEnv(env)
		env[EnvConsistency] = *label
	}
	return env
}

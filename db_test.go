package hooks

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestDescribeTimeout: a database hook says a cancelled caller as the
// command hook does ("cancelled (...)"), and its own timeout as "timed out
// after <timeout>".
func TestDescribeTimeout(t *testing.T) {
	boom := errors.New("driver: bad connection")

	parent, cancel := context.WithCancelCause(context.Background())
	ctx, cancelCtx := context.WithTimeout(parent, time.Hour)
	defer cancelCtx()
	require.Equal(t, boom, describeTimeout(parent, ctx, time.Hour, boom), "a ctx that has not ended adds nothing")
	cancel(errors.New("shutting down"))
	require.Equal(t, "cancelled (shutting down): driver: bad connection", describeTimeout(parent, ctx, time.Hour, boom).Error())

	expired, cancelExpired := context.WithTimeout(context.Background(), 0)
	defer cancelExpired()
	err := describeTimeout(context.Background(), expired, 5*time.Second, boom)
	require.Equal(t, "timed out after 5s: driver: bad connection", err.Error())
	require.ErrorIs(t, err, boom)
	require.NoError(t, describeTimeout(context.Background(), expired, time.Second, nil))
}

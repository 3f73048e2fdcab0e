package hooks

// A client of the QEMU guest agent: the JSON protocol that qemu-ga speaks on
// its channel, reached from the host through a unix socket (Proxmox:
// /var/run/qemu-server/VMID.qga; libvirt: the channel's source path). The
// channel takes one client at a time, so every call connects, synchronises,
// sends one command and disconnects.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"syscall"
	"time"
)

// errQGANotRunning is wrapped by the error of a call that found no agent
// listening on the socket.
var errQGANotRunning = errors.New("the agent is not running")

// qgaDelimiter precedes the agent's answer to guest-sync-delimited; sent by
// the client, it resets the agent's parser.
const qgaDelimiter = 0xFF

// qgaResponse is one answer of the agent.
type qgaResponse struct {
	Return json.RawMessage `json:"return"`
	Error  *struct {
		Class string `json:"class"`
		Desc  string `json:"desc"`
	} `json:"error"`
}

// qgaCall connects to the agent at socket, synchronises with it and runs one
// command with args (nil for none), decoding the return value into ret. ctx
// bounds the whole call.
func qgaCall(ctx context.Context, socket, command string, args any, ret any) (err error) {
	defer func() {
		if err != nil {
			err = fmt.Errorf("qemu-guest-agent %s: %s: %w", socket, command, err)
		}
	}()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%w (%w)", errQGANotRunning, err)
		}
		return err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	// A cancelled ctx interrupts a read or write at once.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	r := bufio.NewReader(conn)
	err = qgaSync(conn, r)
	if err == nil {
		err = qgaCommand(conn, r, command, args, ret)
	}
	if ctx.Err() != nil {
		return fmt.Errorf("no answer (is qemu-guest-agent running in the guest?): %w", ctx.Err())
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("no answer (is qemu-guest-agent running in the guest?): %w", context.DeadlineExceeded)
	}
	return err
}

// qgaSync runs guest-sync-delimited with a random id: it discards whatever
// an earlier client left in the channel, up to the delimiter that precedes
// the answer with our id.
func qgaSync(w net.Conn, r *bufio.Reader) error {
	id := rand.Int64N(1 << 53) // exact in a JSON number
	req, err := json.Marshal(map[string]any{"execute": "guest-sync-delimited", "arguments": map[string]any{"id": id}})
	if err != nil {
		return err
	}
	if _, err := w.Write(append([]byte{qgaDelimiter}, req...)); err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	for {
		if _, err := r.ReadSlice(qgaDelimiter); err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return fmt.Errorf("sync: %w", err)
		} else if err != nil {
			continue // a long stale answer: keep looking for the delimiter
		}
		line, err := r.ReadBytes('\n')
		if err != nil {
			return fmt.Errorf("sync: %w", err)
		}
		var resp struct{ Return int64 }
		if json.Unmarshal(line, &resp) == nil && resp.Return == id {
			return nil
		}
	}
}

// qgaCommand sends one command and reads its answer.
func qgaCommand(w net.Conn, r *bufio.Reader, command string, args any, ret any) error {
	msg := map[string]any{"execute": command}
	if args != nil {
		msg["arguments"] = args
	}
	req, err := json.Marshal(msg)
	if err != nil {
		return err
	}
	if _, err := w.Write(req); err != nil {
		return err
	}
	line, err := r.ReadBytes('\n')
	if err != nil {
		return err
	}
	var resp qgaResponse
	if err := json.Unmarshal(line, &resp); err != nil {
		return fmt.Errorf("bad answer %q: %w", line, err)
	}
	if resp.Error != nil {
		return fmt.Errorf("the guest answered: %s", resp.Error.Desc)
	}
	if resp.Return == nil {
		return fmt.Errorf("bad answer %q: no return value", line)
	}
	if err := json.Unmarshal(resp.Return, ret); err != nil {
		return fmt.Errorf("bad answer %q: %w", line, err)
	}
	return nil
}

// qgaFreeze freezes the guest's filesystems: all of them
// (guest-fsfreeze-freeze) if mountpoints is empty, else those mount points
// (guest-fsfreeze-freeze-list). It returns how many the agent froze. If the
// guest's fsfreeze hook or a freeze fails, the agent thaws what it froze and
// the error carries its description.
func qgaFreeze(ctx context.Context, socket string, mountpoints []string) (int, error) {
	var n int
	if len(mountpoints) == 0 {
		return n, qgaCall(ctx, socket, "guest-fsfreeze-freeze", nil, &n)
	}
	return n, qgaCall(ctx, socket, "guest-fsfreeze-freeze-list", map[string]any{"mountpoints": mountpoints}, &n)
}

// qgaThaw thaws the guest's filesystems (guest-fsfreeze-thaw) and returns
// how many the agent thawed: 0 if none was frozen.
func qgaThaw(ctx context.Context, socket string) (int, error) {
	var n int
	return n, qgaCall(ctx, socket, "guest-fsfreeze-thaw", nil, &n)
}

// qgaStatus returns the agent's freeze status: "thawed" or "frozen".
func qgaStatus(ctx context.Context, socket string) (string, error) {
	var s string
	return s, qgaCall(ctx, socket, "guest-fsfreeze-status", nil, &s)
}

package hooks

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// freezeList is a hook list with every key of the freeze hooks set.
var freezeList = HookList{
	{Type: TypeFSFreeze, Mountpoints: []string{"/srv/db", "/srv/log"}, MaxFreeze: 5 * time.Second,
		ErrIsFatal: true, Filesystems: map[string]bool{"tank/db<": true}},
	{Type: TypeQEMUGuestAgent, Socket: "/var/run/qemu-server/101.qga", Mountpoints: []string{"/var/lib/mysql"},
		MaxFreeze: 3 * time.Second, Filesystems: map[string]bool{"rpool/data/vm-101-disk-0": true}},
}

func TestParseHookListFreezeHooks(t *testing.T) {
	got, err := ParseHookList([]byte(`
- type: fsfreeze
  mountpoints: [/srv/db, /srv/log]
  max_freeze: 5s
  err_is_fatal: true
  filesystems: {"tank/db<": true}
- type: qemu-guest-agent
  socket: /var/run/qemu-server/101.qga
  mountpoints: [/var/lib/mysql]
  max_freeze: 3s
  filesystems: {"rpool/data/vm-101-disk-0": true}
`))
	require.NoError(t, err)
	assert.Equal(t, freezeList, got)

	t.Run("yaml_round_trip", func(t *testing.T) {
		data, err := yaml.Marshal(freezeList)
		require.NoError(t, err)
		back, err := ParseHookList(data)
		require.NoError(t, err, "%s", data)
		assert.Equal(t, freezeList, back)
	})
	t.Run("json_round_trip", func(t *testing.T) {
		data, err := json.Marshal(freezeList)
		require.NoError(t, err)
		assert.Contains(t, string(data), `"max_freeze":"5s"`)
		back, err := ParseHookList(data)
		require.NoError(t, err, "%s", data)
		assert.Equal(t, freezeList, back)
	})
	t.Run("defaults", func(t *testing.T) {
		c := HookConfig{Type: TypeQEMUGuestAgent, Socket: "/s", Filesystems: map[string]bool{"<": true}}.WithDefaults()
		assert.Equal(t, DefaultMaxFreeze, c.MaxFreeze)
		assert.Equal(t, time.Duration(0), HookConfig{Type: TypeCommand, Path: "/x"}.WithDefaults().MaxFreeze)
		assert.Equal(t, "type=qemu-guest-agent timeout=30s err_is_fatal=false post_on_pre_error=false socket=/s max_freeze=10s filesystems=\"{\\\"<\\\": true}\"", c.String())
	})
	t.Run("hooks", func(t *testing.T) {
		l, err := ListFromConfig(&freezeList)
		require.NoError(t, err)
		require.Len(t, *l, 2)
		f := (*l)[0].(*FSFreezeHook)
		assert.Equal(t, "fsfreeze /srv/db, /srv/log", f.String())
		assert.Equal(t, "fsthaw /srv/db, /srv/log", f.EdgeString(Post))
		assert.Equal(t, 5*time.Second, f.MaxFreeze())
		q := (*l)[1].(*QGAFreezeHook)
		assert.Equal(t, "qemu-guest-agent freeze (/var/run/qemu-server/101.qga)", q.String())
		assert.Equal(t, "qemu-guest-agent thaw (/var/run/qemu-server/101.qga)", q.EdgeString(Post))
	})
}

func TestParseHookListFreezeErrors(t *testing.T) {
	type want struct {
		hook     int
		field    string
		line     int
		contains string
	}
	const fs = "  filesystems: {tank<: true}\n"
	cases := []struct {
		name string
		in   string
		want []want
	}{
		{"fsfreeze_needs_mountpoints",
			"- type: fsfreeze\n" + fs,
			[]want{{1, "mountpoints", 1, "required for a fsfreeze hook"}}},
		{"fsfreeze_needs_non_empty_mountpoints",
			"- type: fsfreeze\n  mountpoints: []\n" + fs,
			[]want{{1, "mountpoints", 2, "required for a fsfreeze hook"}}},
		{"fsfreeze_needs_filesystems",
			"- type: fsfreeze\n  mountpoints: [/srv]\n",
			[]want{{1, "filesystems", 1, "list the datasets whose snapshots need the filesystems frozen"}}},
		{"qga_needs_filesystems",
			"- type: qemu-guest-agent\n  socket: /s\n",
			[]want{{1, "filesystems", 1, "required for a qemu-guest-agent hook"}}},
		{"mountpoints_must_be_a_list",
			"- type: fsfreeze\n  mountpoints: /srv\n" + fs,
			[]want{{1, "mountpoints", 2, "must be a list of strings, not"}}},
		{"mountpoint_must_be_a_string",
			"- type: fsfreeze\n  mountpoints: [[/srv]]\n" + fs,
			[]want{{1, "mountpoints", 2, "item 1: must be a string"}}},
		{"mountpoint_must_not_be_empty",
			"- type: fsfreeze\n  mountpoints: [/srv, '']\n" + fs,
			[]want{{1, "mountpoints", 2, "item 2: must not be empty"}}},
		{"mountpoint_must_be_absolute",
			"- type: fsfreeze\n  mountpoints: [/srv, srv/db]\n" + fs,
			[]want{{1, "mountpoints", 2, `item 2: "srv/db" is not absolute`}}},
		{"mountpoint_twice",
			"- type: fsfreeze\n  mountpoints: [/srv, /srv/]\n" + fs,
			[]want{{1, "mountpoints", 2, `item 2: "/srv/" is item 1 again`}}},
		{"qga_mountpoint_must_be_absolute",
			"- type: qemu-guest-agent\n  socket: /s\n  mountpoints: [data]\n" + fs,
			[]want{{1, "mountpoints", 3, `item 1: "data" is not absolute`}}},
		{"mountpoints_not_for_a_command_hook",
			"- type: command\n  path: /bin/true\n  mountpoints: [/srv]\n",
			[]want{{1, "mountpoints", 3, "not allowed for a command hook"}}},
		{"max_freeze_must_be_a_duration",
			"- type: fsfreeze\n  mountpoints: [/srv]\n  max_freeze: 10\n" + fs,
			[]want{{1, "max_freeze", 3, `"10" is not a duration`}}},
		{"max_freeze_negative",
			"- type: fsfreeze\n  mountpoints: [/srv]\n  max_freeze: -1s\n" + fs,
			[]want{{1, "max_freeze", 3, "-1s is negative"}}},
		{"max_freeze_too_long",
			"- type: qemu-guest-agent\n  socket: /s\n  max_freeze: 11m\n" + fs,
			[]want{{1, "max_freeze", 3, "11m0s is longer than the maximum of 10m0s"}}},
		{"max_freeze_not_for_a_db_hook",
			"- type: postgres-checkpoint\n  dsn: host=db\n  max_freeze: 5s\n" + fs,
			[]want{{1, "max_freeze", 3, "not allowed for a postgres-checkpoint hook"}}},
		{"qga_needs_a_socket",
			"- type: qemu-guest-agent\n" + fs,
			[]want{{1, "socket", 1, "required for a qemu-guest-agent hook"}}},
		{"socket_must_be_absolute",
			"- type: qemu-guest-agent\n  socket: 101.qga\n" + fs,
			[]want{{1, "socket", 2, `"101.qga" is not absolute`}}},
		{"socket_must_not_be_empty",
			"- type: qemu-guest-agent\n  socket: ''\n" + fs,
			[]want{{1, "socket", 2, "must not be empty"}}},
		{"socket_not_for_fsfreeze",
			"- type: fsfreeze\n  mountpoints: [/srv]\n  socket: /s\n" + fs,
			[]want{{1, "socket", 3, "not allowed for a fsfreeze hook"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			list, err := ParseHookList([]byte(c.in))
			assert.Nil(t, list)
			errs := configErrors(t, err)
			require.Len(t, errs, len(c.want), "errors: %v", err)
			for i, w := range c.want {
				e := errs[i]
				assert.Equal(t, w.hook, e.Hook, "hook of %q", e)
				assert.Equal(t, w.field, e.Field, "field of %q", e)
				assert.Equal(t, w.line, e.Line, "line of %q", e)
				assert.Contains(t, e.Error(), w.contains)
			}
		})
	}
}

func TestHookConfigValidateFreeze(t *testing.T) {
	all := map[string]bool{"<": true}
	assert.NoError(t, HookConfig{Type: TypeFSFreeze, Mountpoints: []string{"/srv"}, Filesystems: all, MaxFreeze: MaxMaxFreeze}.Validate())
	assert.NoError(t, HookConfig{Type: TypeQEMUGuestAgent, Socket: "/s", Filesystems: all}.Validate())
	err := HookConfig{Type: TypeFSFreeze, Mountpoints: []string{"/srv"}, Filesystems: all, MaxFreeze: MaxMaxFreeze + 1}.Validate()
	assert.ErrorContains(t, err, "max_freeze: ")
	err = HookConfig{Type: TypeCommand, Path: "/bin/true", Socket: "/s"}.Validate()
	assert.EqualError(t, err, "socket: not allowed for a command hook")
}

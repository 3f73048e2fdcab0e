package hooks

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// coverageFiles are a MariaDB server's directories on the datasets of
// testdata/mountinfo/db-server-tank.txt, with the redo log on tank/db/log.
func coverageFiles(t *testing.T) []ServerFile {
	t.Helper()
	table := readMountFixture(t, "db-server-tank.txt")
	var out []ServerFile
	for _, f := range []ServerFile{
		{Role: "the data directory", Path: "/tank/db"},
		{Role: "the redo log", Path: "/tank/db/log"},
	} {
		m, ok := table.find(f.Path)
		require.True(t, ok)
		f.Mount, f.FSType, f.Dataset = m.point, m.fsType, m.dataset()
		out = append(out, f)
	}
	return out
}

func scopeNamed(recursive bool, names ...string) Scope {
	s := Scope{Recursive: recursive}
	for _, n := range names {
		s.Datasets = append(s.Datasets, datasetName(n))
	}
	return s
}

func TestCheckCoverage(t *testing.T) {
	files := coverageFiles(t)
	for _, tt := range []struct {
		name  string
		scope Scope
		want  []string
	}{
		{"both_datasets_cover_everything", scopeNamed(false, "tank/db", "tank/db/log"), nil},
		{"the_data_dataset_alone_misses_the_redo_log", scopeNamed(false, "tank/db"),
			[]string{"the redo log (/tank/db/log) is on tank/db/log, which this snapshot does not include"}},
		{"the_log_dataset_alone_misses_the_data", scopeNamed(false, "tank/db/log"),
			[]string{"the data directory (/tank/db) is on tank/db, which this snapshot does not include"}},
		{"recursive_over_the_parent_covers_everything", scopeNamed(true, "tank"), nil},
		{"recursive_over_the_data_dataset_covers_its_child", scopeNamed(true, "tank/db"), nil},
		{"the_parent_alone_covers_nothing", scopeNamed(false, "tank"), []string{
			"the data directory (/tank/db) is on tank/db, which this snapshot does not include",
			"the redo log (/tank/db/log) is on tank/db/log, which this snapshot does not include"}},
		{"a_name_prefix_is_no_parent", scopeNamed(true, "tank/d"), []string{
			"the data directory (/tank/db) is on tank/db, which this snapshot does not include",
			"the redo log (/tank/db/log) is on tank/db/log, which this snapshot does not include"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			problems, err := CheckCoverage(files, tt.scope)
			require.NoError(t, err)
			var got []string
			for _, p := range problems {
				require.False(t, p.Unknown())
				got = append(got, p.String())
			}
			require.Equal(t, tt.want, got)
		})
	}

	t.Run("files_not_visible_here_are_unknown_said_once", func(t *testing.T) {
		why := "the server is reached at 192.0.2.1:3306 over the network, not on this host, so its files cannot be mapped to datasets here"
		remote := []ServerFile{{Role: "the data directory", Path: "/d", NotHere: why}, {Role: "the redo log", Path: "/l", NotHere: why}}
		problems, err := CheckCoverage(remote, scopeNamed(false, "tank/db"))
		require.NoError(t, err)
		require.Len(t, problems, 1)
		require.True(t, problems[0].Unknown())
		require.Equal(t, "coverage unknown: the data directory (/d), the redo log (/l): "+why, problems[0].Message)
	})
	t.Run("files_on_one_plain_filesystem_are_no_problem_but_unverified", func(t *testing.T) {
		plain := []ServerFile{{Role: "the data directory", Path: "/var/lib/mysql", Mount: "/", FSType: "ext4"}}
		problems, err := CheckCoverage(plain, scopeNamed(false, "tank/db"))
		require.NoError(t, err)
		require.Empty(t, problems)
		require.Equal(t, "coverage unknown: the data directory (/var/lib/mysql) on / (ext4), which is neither a ZFS dataset nor a btrfs subvolume mounted on its own",
			coverageUnverified(plain))
		require.Equal(t, "", coverageUnverified(files))
	})
	t.Run("files_spanning_several_filesystems_name_them", func(t *testing.T) {
		span := []ServerFile{
			{Role: "the data directory", Path: "/srv/zvol-ext4/mysql", Mount: "/srv/zvol-ext4", FSType: "ext4"},
			{Role: "the redo log", Path: "/tank/db/log", Mount: "/tank/db/log", FSType: "zfs", Dataset: "tank/db/log"},
		}
		problems, err := CheckCoverage(span, scopeNamed(false, "tank/db/log"))
		require.NoError(t, err)
		require.Len(t, problems, 1)
		require.True(t, problems[0].Unknown())
		require.Equal(t, "coverage unknown: the data directory (/srv/zvol-ext4/mysql) not on a ZFS dataset or a btrfs subvolume mounted on its own, "+
			"and the server's files span several filesystems (/srv/zvol-ext4 (ext4), /tank/db/log (tank/db/log)): a snapshot of one does not hold the others", problems[0].Message)
	})
	t.Run("an_invalid_scope_is_an_error", func(t *testing.T) {
		_, err := CheckCoverage(files, Scope{})
		require.ErrorContains(t, err, "no dataset")
	})
}

func TestCoverageScope(t *testing.T) {
	ctx := t.Context()
	require.Equal(t, scopeNamed(false, "tank/a", "tank/b"), coverageScope(ctx, Env{EnvFS: "tank/a", EnvFSList: "tank/a\ntank/b"}))
	require.Equal(t, scopeNamed(false, "tank/a"), coverageScope(ctx, Env{EnvFS: "tank/a"}))
	plan := scopeNamed(true, "tank")
	require.Equal(t, plan, coverageScope(withCoverageScope(ctx, plan), Env{EnvFS: "tank/a"}), "the plan's scope wins over the hook's env")
}

func TestCoverageCheckModes(t *testing.T) {
	files := coverageFiles(t)
	missing := "the redo log (/tank/db/log) is on tank/db/log, which this snapshot does not include"
	env := Env{EnvFS: "tank/db"}
	found := func(context.Context) ([]ServerFile, error) { return files, nil }
	denied := func(context.Context) ([]ServerFile, error) {
		return nil, errors.New("coverage unknown: the role may not read data_directory")
	}
	deniedUnknown := func(context.Context) ([]ServerFile, error) {
		return nil, errors.Join(ErrCoverageUnknown, errors.New("the role may not read data_directory"))
	}
	for _, tt := range []struct {
		name, mode string
		files      func(context.Context) ([]ServerFile, error)
		warnings   []string
		err        string
		logged     string
	}{
		{"warn_warns_and_goes_on", CoverageWarn, found, []string{missing}, "", "level=WARN msg=\"" + missing + "\""},
		{"strict_fails", CoverageStrict, found, nil, "coverage (strict): " + missing, ""},
		{"off_does_not_ask", CoverageOff, nil, nil, "", ""},
		{"an_unknown_coverage_warns_under_warn", CoverageWarn, deniedUnknown, []string{"coverage unknown\nthe role may not read data_directory"}, "", "level=WARN"},
		{"an_unknown_coverage_fails_under_strict", CoverageStrict, deniedUnknown, nil, "coverage (strict): coverage unknown", ""},
		{"other_errors_fail_in_every_mode", CoverageWarn, denied, nil, "coverage unknown: the role", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			log, buf := testLogger()
			warnings, err := coverageCheck(t.Context(), log, tt.mode, env, tt.files)
			if tt.err != "" {
				require.ErrorContains(t, err, tt.err)
			} else {
				require.NoError(t, err)
			}
			require.Equal(t, tt.warnings, warnings)
			if tt.logged != "" {
				require.Contains(t, buf.String(), tt.logged)
			} else {
				require.NotContains(t, buf.String(), "level=WARN")
			}
		})
	}
	t.Run("unverified_is_said_at_info_under_warn_and_fails_under_strict", func(t *testing.T) {
		plain := func(context.Context) ([]ServerFile, error) {
			return []ServerFile{{Role: "the data directory", Path: "/var/lib/mysql", Mount: "/", FSType: "ext4"}}, nil
		}
		log, buf := testLogger()
		warnings, err := coverageCheck(t.Context(), log, CoverageWarn, env, plain)
		require.NoError(t, err)
		require.Empty(t, warnings)
		require.Contains(t, buf.String(), "level=INFO msg=\"coverage unknown: the data directory (/var/lib/mysql) on / (ext4)")
		_, err = coverageCheck(t.Context(), slog.New(slog.DiscardHandler), CoverageStrict, env, plain)
		require.ErrorContains(t, err, "coverage (strict): coverage unknown: the data directory (/var/lib/mysql) on / (ext4)")
	})
}

func TestAddrOnThisHost(t *testing.T) {
	for _, tt := range []struct {
		network, addr string
		want          bool
	}{
		{"unix", "/run/mysqld/mysqld.sock", true},
		{"tcp", "127.0.0.1:3306", true},
		{"tcp", "[::1]:5432", true},
		{"tcp", "localhost:5432", true},
		{"tcp", "192.0.2.1:5432", false}, // TEST-NET-1: never an address of this host
		{"tcp", "198.51.100.7", false},
	} {
		got, err := addrOnThisHost(t.Context(), tt.network, tt.addr)
		require.NoError(t, err, tt.addr)
		require.Equal(t, tt.want, got, tt.addr)
	}
	t.Run("an_address_of_this_host_is_local", func(t *testing.T) {
		addrs, err := net.InterfaceAddrs()
		require.NoError(t, err)
		for _, a := range addrs {
			n, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			got, err := addrOnThisHost(t.Context(), "tcp", net.JoinHostPort(n.IP.String(), "5432"))
			require.NoError(t, err)
			require.True(t, got, n.IP.String())
		}
	})
	_, err := addrOnThisHost(t.Context(), "tcp", "no-such-host.invalid:5432")
	require.ErrorContains(t, err, `resolve the server's host "no-such-host.invalid"`)
	require.True(t, strings.HasPrefix(err.Error(), "resolve"))
}

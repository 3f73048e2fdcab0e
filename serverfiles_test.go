package hooks

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCoverageConfigKey(t *testing.T) {
	for _, mode := range []string{"warn", "strict", "off"} {
		hl, err := ParseHookList([]byte("- {type: mysql-lock-tables, dsn: \"u:p@tcp(db:3306)/\", filesystems: {\"tank<\": true}, coverage: " + mode + "}\n"))
		require.NoError(t, err, mode)
		require.Equal(t, mode, hl[0].Coverage)
		require.Contains(t, hl[0].String(), "coverage="+mode)
	}
	_, err := ParseHookList([]byte("- {type: postgres-checkpoint, dsn: \"host=db\", filesystems: {\"tank<\": true}, coverage: maybe}\n"))
	require.EqualError(t, err, `hook #1 (line 1): coverage: must be warn, strict or off, not a string "maybe"`)
	_, err = ParseHookList([]byte("- {type: command, path: /bin/true, coverage: warn}\n"))
	require.EqualError(t, err, "hook #1 (line 1): coverage: not allowed for a command hook")
	err = HookConfig{Type: TypeMariaDBBackupStage, DSN: "u:p@tcp(db:3306)/", Filesystems: map[string]bool{"tank<": true}, Coverage: "loud"}.Validate()
	require.EqualError(t, err, `coverage: "loud" is not warn, strict or off`)
}

func TestLocateServerFiles(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	require.NoError(t, os.Mkdir(data, 0o700))
	wal := filepath.Join(dir, "wal")
	require.NoError(t, os.Mkdir(wal, 0o700))
	require.NoError(t, os.Symlink(wal, filepath.Join(data, "pg_wal")))
	files := []ServerFile{
		{Role: "the data directory", Path: data},
		{Role: "the WAL", Path: filepath.Join(data, "pg_wal")},
		{Role: `the tablespace "gone"`, Path: filepath.Join(dir, "gone")},
	}

	t.Run("on_this_host_links_are_followed", func(t *testing.T) {
		got, err := locateServerFiles(t.Context(), files, "unix", "/run/postgresql/.s.PGSQL.5432")
		require.NoError(t, err)
		table, err := readMountTable()
		require.NoError(t, err)
		m, ok := table.find(dir)
		require.True(t, ok)
		require.Equal(t, ServerFile{Role: "the data directory", Path: data, Resolved: data, Mount: m.point, FSType: m.fsType, Dataset: m.dataset()}, got[0])
		require.Equal(t, wal, got[1].Resolved, "the WAL is where its link leads")
		require.Equal(t, "", got[2].Mount)
		require.True(t, strings.HasPrefix(got[2].NotHere, "no such directory on this host"), got[2].NotHere)
	})
	t.Run("a_server_on_another_host_is_not_mapped", func(t *testing.T) {
		got, err := locateServerFiles(t.Context(), files, "tcp", "192.0.2.1:5432")
		require.NoError(t, err)
		for _, f := range got {
			require.Equal(t, "", f.Resolved)
			require.Equal(t, "", f.Mount)
			require.Equal(t, "the server is reached at 192.0.2.1:5432 over the network, not on this host, so its files cannot be mapped to datasets here", f.NotHere)
		}
		problems, err := CheckCoverage(got, scopeNamed(false, "tank/db"))
		require.NoError(t, err)
		require.Len(t, problems, 1, "said once")
	})
}

// TestDBServerFiles asks the servers of scripts/test.sh where they keep
// their files: all in one temp dir, so on one filesystem here.
func TestDBServerFiles(t *testing.T) {
	for name, tt := range map[string]struct {
		cfg   HookConfig
		roles []string
	}{
		"mysql-lock-tables": {HookConfig{Type: TypeMySQLLockTables, DSN: dsnFromEnv(t, "SNAPHOOKS_TEST_MYSQL_DSN")},
			[]string{"the data directory"}},
		"mariadb-backup-stage": {HookConfig{Type: TypeMariaDBBackupStage, DSN: dsnFromEnv(t, "SNAPHOOKS_TEST_MYSQL_DSN")},
			[]string{"the data directory"}},
		"postgres-checkpoint": {HookConfig{Type: TypePostgresCheckpoint, DSN: dsnFromEnv(t, "SNAPHOOKS_TEST_PG_DSN")},
			[]string{"the data directory", "the WAL"}},
	} {
		t.Run(name, func(t *testing.T) {
			tt.cfg.Filesystems = map[string]bool{"tank<": true}
			h, err := HookFromConfig(tt.cfg)
			require.NoError(t, err)
			files, err := h.(ServerFiler).ServerFiles(t.Context())
			require.NoError(t, err)
			var roles []string
			for _, f := range files {
				roles = append(roles, f.Role)
				require.True(t, filepath.IsAbs(f.Path), f.Path)
				require.Equal(t, "", f.NotHere, "the server runs here")
				require.NotEqual(t, "", f.Mount)
			}
			require.Equal(t, tt.roles, roles, "every other directory is the data directory")
			if strings.HasPrefix(name, "postgres") {
				require.Equal(t, filepath.Join(files[0].Path, "pg_wal"), files[1].Path)
			}
		})
	}
	t.Run("postgres_role_without_pg_read_all_settings", func(t *testing.T) {
		h, err := HookFromConfig(HookConfig{Type: TypePostgresCheckpoint, DSN: dsnFromEnv(t, "SNAPHOOKS_TEST_PG_NOPRIV_DSN"), Filesystems: map[string]bool{"tank<": true}})
		require.NoError(t, err)
		_, err = h.(ServerFiler).ServerFiles(t.Context())
		require.True(t, errors.Is(err, ErrCoverageUnknown), "%v", err)
		require.ErrorContains(t, err, "GRANT pg_read_all_settings TO <role>")
		require.NotContains(t, err.Error(), "s3cret")
	})
	t.Run("wrong_password_is_an_error_without_it", func(t *testing.T) {
		dsn := strings.Replace(dsnFromEnv(t, "SNAPHOOKS_TEST_MYSQL_DSN"), "s3cret-my-reload", "s3cret-wrong", 1)
		h, err := HookFromConfig(HookConfig{Type: TypeMySQLLockTables, DSN: dsn, Filesystems: map[string]bool{"tank<": true}})
		require.NoError(t, err)
		_, err = h.(ServerFiler).ServerFiles(t.Context())
		require.ErrorContains(t, err, "connect: ")
		require.False(t, errors.Is(err, ErrCoverageUnknown))
		require.NotContains(t, err.Error(), "s3cret-wrong")
	})
}

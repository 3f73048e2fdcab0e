package hooks

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// readMountFixture parses testdata/mountinfo/name, a mount table of a real
// kind of system (there is no ZFS on the test machine: these stand in).
func readMountFixture(t *testing.T, name string) mountTable {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "mountinfo", name))
	require.NoError(t, err)
	defer f.Close()
	table, err := parseMountInfo(f)
	require.NoError(t, err)
	return table
}

func TestParseMountInfo(t *testing.T) {
	table := readMountFixture(t, "db-server-tank.txt")
	require.Len(t, table, 21)
	m := table[8]
	require.Equal(t, mount{id: 96, parent: 90, dev: "0:56", root: "/", point: "/srv/my data", fsType: "zfs", source: "tank/my data",
		superOptions: "rw,xattr,noacl,casesensitive"}, m, "octal escapes are decoded")

	t.Run("optional_fields_may_be_absent_or_many", func(t *testing.T) {
		table, err := parseMountInfo(strings.NewReader(
			"36 35 98:0 /mnt1 /mnt2 rw,noatime - ext3 /dev/root rw,errors=continue\n" +
				"37 35 98:0 / /x rw master:1 shared:2 propagate_from:3 - zfs tank/x rw\n"))
		require.NoError(t, err)
		require.Equal(t, "/mnt1", table[0].root)
		require.Equal(t, "ext3", table[0].fsType)
		require.Equal(t, "tank/x", table[1].dataset())
	})
	t.Run("malformed_lines_are_errors_that_name_the_line", func(t *testing.T) {
		for _, in := range []string{"36 35 98:0 / /x rw\n", "x 35 98:0 / /x rw - ext4 /dev/a rw\n", "1 2 3 / /x rw -\n"} {
			_, err := parseMountInfo(strings.NewReader("36 35 98:0 / / rw - ext4 /dev/a rw\n" + in))
			require.ErrorContains(t, err, "line 2: malformed", in)
		}
	})
	t.Run("escapes", func(t *testing.T) {
		require.Equal(t, "a b\tc\nd\\e", unescapeMountField(`a\040b\011c\012d\134e`))
		require.Equal(t, `a\04`, unescapeMountField(`a\04`), "a short escape is kept")
		require.Equal(t, `a\x`, unescapeMountField(`a\x`))
	})
	t.Run("this_host", func(t *testing.T) {
		table, err := readMountTable()
		require.NoError(t, err)
		m, ok := table.find("/")
		require.True(t, ok, "some mount holds /")
		require.Equal(t, "/", m.point)
	})
}

func TestMountTableFind(t *testing.T) {
	for _, tt := range []struct {
		fixture, path          string
		mount, fsType, dataset string
	}{
		{"ubuntu-root-on-zfs.txt", "/etc/mysql", "/", "zfs", "rpool/ROOT/ubuntu_8j3k2a"},
		{"ubuntu-root-on-zfs.txt", "/var/lib/mysql/ibdata1", "/var/lib/mysql", "zfs", "rpool/ROOT/ubuntu_8j3k2a/var/lib/mysql"},
		{"ubuntu-root-on-zfs.txt", "/var/lib/mysql/redo", "/var/lib/mysql/redo", "zfs", "rpool/ROOT/ubuntu_8j3k2a/var/lib/mysql/redo"},
		{"ubuntu-root-on-zfs.txt", "/var/lib/mysql/redo2", "/var/lib/mysql", "zfs", "rpool/ROOT/ubuntu_8j3k2a/var/lib/mysql"},
		{"ubuntu-root-on-zfs.txt", "/var/lib/postgresql/16/main", "/var/lib/postgresql", "zfs", "rpool/ROOT/ubuntu_8j3k2a/var/lib/postgresql"},
		{"ubuntu-root-on-zfs.txt", "/boot/efi/EFI", "/boot/efi", "vfat", ""},
		{"db-server-tank.txt", "/tank/db/log/ib_logfile0", "/tank/db/log", "zfs", "tank/db/log"},
		{"db-server-tank.txt", "/tank/db/ibdata1", "/tank/db", "zfs", "tank/db"},
		{"db-server-tank.txt", "/srv/my data/base", "/srv/my data", "zfs", "tank/my data"},
		{"db-server-tank.txt", "/srv/my data/wal dir", "/srv/my data/wal dir", "zfs", "tank/my data/wal dir"},
		{"db-server-tank.txt", "/var/lib/postgresql/16/main/pg_wal", "/var/lib/postgresql/16/main/pg_wal", "zfs", "tank/pg-legacy/wal"},
		{"db-server-tank.txt", "/var/lib/postgresql/16/main/base", "/var/lib/postgresql", "zfs", "tank/pg-legacy"},
		{"db-server-tank.txt", "/srv/zvol-ext4/mysql", "/srv/zvol-ext4", "ext4", ""},
		{"db-server-tank.txt", "/srv/zvol-xfs/pg", "/srv/zvol-xfs", "xfs", ""},
		{"db-server-tank.txt", "/var/lib/docker/overlay2/5f1e0c2a9b7d/merged/var/lib/mysql", "/var/lib/docker/overlay2/5f1e0c2a9b7d/merged", "overlay", ""},
		{"db-server-tank.txt", "/var/lib/docker/volumes/mysql-data/_data", "/var/lib/docker/volumes/mysql-data", "zfs", "tank/docker/volumes/mysql-data"},
		{"db-server-tank.txt", "/tank/old/x", "/tank/old", "zfs", "tank/new"},
		{"db-server-tank.txt", "/tank/dbx", "/tank", "zfs", "tank"},
		{"db-server-tank.txt", "/srv/btrfs-db/mysql", "/srv/btrfs-db", "btrfs", "tank/db"},
		{"db-server-tank.txt", "/srv/btrfs-top/tank/log", "/srv/btrfs-top", "btrfs", ""},
		{"db-server-tank.txt", "/home/x", "/", "ext4", ""},
	} {
		t.Run(strings.ReplaceAll(tt.fixture+tt.path, "/", "_"), func(t *testing.T) {
			m, ok := readMountFixture(t, tt.fixture).find(tt.path)
			require.True(t, ok)
			require.Equal(t, tt.mount, m.point)
			require.Equal(t, tt.fsType, m.fsType)
			require.Equal(t, tt.dataset, m.dataset())
		})
	}
}

func TestMountDatasetBtrfs(t *testing.T) {
	// The subvol= option wins over the root field, which a bind mount of a
	// directory inside the subvolume extends.
	require.Equal(t, "tank/db", mount{fsType: "btrfs", root: "/tank/db/sub", superOptions: "rw,subvolid=257,subvol=/tank/db"}.dataset())
	require.Equal(t, "tank/db", mount{fsType: "btrfs", root: "/tank/db"}.dataset(), "old kernels show no subvol=")
	require.Equal(t, "", mount{fsType: "btrfs", root: "/", superOptions: "rw,subvolid=5,subvol=/"}.dataset(), "the top level stands for no dataset")
}

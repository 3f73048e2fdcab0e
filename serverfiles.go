package hooks

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Where the database servers keep their files, and where that is on this
// host: the queries of ServerFiler, over one session, and the mapping of
// their answers to mounts and datasets.

// mysqlFileVars are the server variables that name the directories of a
// MySQL or MariaDB server. SHOW VARIABLES needs no privilege.
const mysqlFileVars = `SHOW GLOBAL VARIABLES WHERE Variable_name IN
	('datadir', 'innodb_data_home_dir', 'innodb_log_group_home_dir', 'innodb_undo_directory',
	 'log_bin', 'log_bin_basename', 'aria_log_dir_path')`

// mysqlServerFiles asks a MySQL or MariaDB server, on conn, where it keeps
// its files: datadir; the InnoDB system tablespace, redo log and undo
// tablespaces; the binary log, when log_bin is on; MariaDB's Aria log. A
// relative directory is relative to datadir, an empty one is datadir. A
// directory that an earlier role has is left out.
func mysqlServerFiles(ctx context.Context, conn *sql.Conn) ([]ServerFile, error) {
	rows, err := conn.QueryContext(ctx, mysqlFileVars)
	if err != nil {
		return nil, fmt.Errorf("read the server's directories: %w", err)
	}
	defer rows.Close()
	vars := map[string]string{}
	for rows.Next() {
		var name, value string
		if err := rows.Scan(&name, &value); err != nil {
			return nil, fmt.Errorf("read the server's directories: %w", err)
		}
		vars[strings.ToLower(name)] = value
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read the server's directories: %w", err)
	}
	datadir := vars["datadir"]
	if !filepath.IsAbs(datadir) {
		return nil, fmt.Errorf("read the server's directories: datadir %q is not an absolute path", datadir)
	}
	dir := func(v string) string {
		if filepath.IsAbs(v) {
			return filepath.Clean(v)
		}
		return filepath.Join(datadir, v)
	}
	var files serverFileList
	files.add("the data directory", dir(datadir))
	files.add("the InnoDB system tablespace", dir(vars["innodb_data_home_dir"]))
	files.add("the redo log", dir(vars["innodb_log_group_home_dir"]))
	files.add("the undo tablespaces", dir(vars["innodb_undo_directory"]))
	if strings.EqualFold(vars["log_bin"], "ON") && vars["log_bin_basename"] != "" {
		files.add("the binary log", filepath.Dir(dir(vars["log_bin_basename"])))
	}
	if v, ok := vars["aria_log_dir_path"]; ok {
		files.add("the Aria log", dir(v))
	}
	return files, nil
}

// pgServerFiles asks a PostgreSQL server, on conn, where it keeps its
// files: data_directory, its WAL (pg_wal in it, which initdb --waldir makes
// a symbolic link), and every tablespace outside it. Reading data_directory
// needs SUPERUSER or the privileges of pg_read_all_settings; without them
// the error wraps ErrCoverageUnknown.
func pgServerFiles(ctx context.Context, conn *pgx.Conn) ([]ServerFile, error) {
	var dataDir string
	if err := conn.QueryRow(ctx, "SELECT current_setting('data_directory')").Scan(&dataDir); err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == pgInsufficientPrivilege {
			return nil, fmt.Errorf("%w: the role may not read data_directory, so where the server keeps its files is not known: it needs SUPERUSER or the privileges of pg_read_all_settings (GRANT pg_read_all_settings TO <role>): %w", ErrCoverageUnknown, err)
		}
		return nil, fmt.Errorf("read data_directory: %w", err)
	}
	if !filepath.IsAbs(dataDir) {
		return nil, fmt.Errorf("read data_directory: %q is not an absolute path", dataDir)
	}
	var files serverFileList
	files.add("the data directory", filepath.Clean(dataDir))
	files.add("the WAL", filepath.Join(dataDir, "pg_wal"))
	rows, err := conn.Query(ctx, "SELECT spcname, pg_tablespace_location(oid) FROM pg_tablespace WHERE pg_tablespace_location(oid) <> '' ORDER BY spcname")
	if err != nil {
		return nil, fmt.Errorf("read the tablespaces: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var name, location string
		if err := rows.Scan(&name, &location); err != nil {
			return nil, fmt.Errorf("read the tablespaces: %w", err)
		}
		files.add(fmt.Sprintf("the tablespace %q", name), filepath.Clean(location))
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read the tablespaces: %w", err)
	}
	return files, nil
}

// mysqlLocatedFiles asks the MySQL or MariaDB server of cfg, on a session
// of its own that it closes, where it keeps its files, and locates them on
// this host.
func mysqlLocatedFiles(ctx context.Context, cfg *mysql.Config) ([]ServerFile, error) {
	s, err := openMySQLSession(ctx, GetLogger(ctx), cfg, "")
	if err != nil {
		return nil, err
	}
	defer func() { _ = s.end() }()
	files, err := mysqlServerFiles(ctx, s.conn)
	if err != nil {
		return nil, err
	}
	return locateServerFiles(ctx, files, cfg.Net, cfg.Addr)
}

// pgLocatedFiles asks the PostgreSQL server on conn where it keeps its
// files, and locates them on this host, for the address conn is connected
// to.
func pgLocatedFiles(ctx context.Context, conn *pgx.Conn) ([]ServerFile, error) {
	files, err := pgServerFiles(ctx, conn)
	if err != nil {
		return nil, err
	}
	remote := conn.PgConn().Conn().RemoteAddr()
	return locateServerFiles(ctx, files, remote.Network(), remote.String())
}

// boundedServerFiles runs files bounded by timeout, says an ended ctx as
// describeTimeout does, and takes secret out of the error: the ServerFiles
// of the database hooks.
func boundedServerFiles(parent context.Context, timeout time.Duration, secret string, files func(context.Context) ([]ServerFile, error)) ([]ServerFile, error) {
	ctx, cancel := context.WithTimeout(parent, timeout)
	defer cancel()
	out, err := files(ctx)
	if err != nil {
		return nil, redactSecret(describeTimeout(parent, ctx, timeout, err), secret)
	}
	return out, nil
}

// coverageMode is the mode of a hook's coverage key: "" is CoverageWarn.
func coverageMode(in HookConfig) string {
	if in.Coverage == "" {
		return CoverageWarn
	}
	return in.Coverage
}

// serverFileList collects the directories of a server, each once.
type serverFileList []ServerFile

func (l *serverFileList) add(role, path string) {
	for _, f := range *l {
		if f.Path == path {
			return
		}
	}
	*l = append(*l, ServerFile{Role: role, Path: path})
}

// locateServerFiles fills in where files are on this host, for a server
// reached at addr over network ("unix", "tcp"): if the server is not on
// this host, NotHere says so for every file; otherwise each path is
// resolved (symbolic links followed) and looked up in the mount table, and
// a path that is not visible here gets NotHere.
func locateServerFiles(ctx context.Context, files []ServerFile, network, addr string) ([]ServerFile, error) {
	local, err := addrOnThisHost(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	out := make([]ServerFile, len(files))
	if !local {
		for i, f := range files {
			f.NotHere = "the server is reached at " + addr + " over the network, not on this host, so its files cannot be mapped to datasets here"
			out[i] = f
		}
		return out, nil
	}
	table, err := readMountTable()
	if err != nil {
		return nil, err
	}
	for i, f := range files {
		out[i] = table.locate(f)
	}
	return out, nil
}

// locate resolves the path of f and fills in its mount and dataset, or
// NotHere.
func (t mountTable) locate(f ServerFile) ServerFile {
	resolved, err := filepath.EvalSymlinks(f.Path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		f.NotHere = "no such directory on this host: the server runs in another mount namespace (a container) or on another host"
		return f
	case err != nil:
		f.NotHere = "cannot be resolved on this host: " + err.Error()
		return f
	}
	f.Resolved = resolved
	m, ok := t.find(resolved)
	if !ok {
		f.NotHere = "no mount holds it in " + mountInfoPath
		return f
	}
	f.Mount, f.FSType, f.Dataset = m.point, m.fsType, m.dataset()
	return f
}

// addrOnThisHost reports whether a server reached at addr over network is
// on this host: a Unix socket is; a TCP address is if its host is, or
// resolves only to, loopback addresses or addresses of this host's
// interfaces.
func addrOnThisHost(ctx context.Context, network, addr string) (bool, error) {
	if network == "unix" || strings.HasPrefix(addr, "/") {
		return true, nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	var ips []net.IP
	if ip := net.ParseIP(host); ip != nil {
		ips = []net.IP{ip}
	} else {
		found, err := net.DefaultResolver.LookupIPAddr(ctx, host)
		if err != nil {
			return false, fmt.Errorf("resolve the server's host %q: %w", host, err)
		}
		for _, a := range found {
			ips = append(ips, a.IP)
		}
	}
	ifaddrs, err := net.InterfaceAddrs()
	if err != nil {
		return false, fmt.Errorf("list this host's addresses: %w", err)
	}
	for _, ip := range ips {
		if !ip.IsLoopback() && !ipAmong(ip, ifaddrs) {
			return false, nil
		}
	}
	return len(ips) > 0, nil
}

// ipAmong reports whether ip is one of the interface addresses addrs.
func ipAmong(ip net.IP, addrs []net.Addr) bool {
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip) {
			return true
		}
	}
	return false
}

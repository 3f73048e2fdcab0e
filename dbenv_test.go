package hooks

// Test helpers for the database servers that scripts/test.sh starts.
//
// scripts/test.sh starts a throwaway PostgreSQL and MariaDB on 127.0.0.1 and
// exports, besides SNAPHOOKS_REQUIRE_DB=1:
//
//	SNAPHOOKS_TEST_PG_ADMIN_DSN      superuser, for test setup (stats views, roles)
//	SNAPHOOKS_TEST_PG_DSN            LOGIN role with pg_checkpoint and pg_read_all_settings (not SUPERUSER)
//	SNAPHOOKS_TEST_PG_NOPRIV_DSN     LOGIN role with no rights
//	SNAPHOOKS_TEST_MYSQL_ADMIN_DSN   all privileges
//	SNAPHOOKS_TEST_MYSQL_DSN         only RELOAD ON *.* (enough for FLUSH TABLES WITH READ LOCK)
//	SNAPHOOKS_TEST_MYSQL_WRITER_DSN  INSERT, SELECT, CREATE on database snaphooks_test
//	SNAPHOOKS_TEST_PG_BIN            directory of initdb, pg_ctl, postgres, psql
//	SNAPHOOKS_TEST_MARIADB_BIN       directory of mariadbd
//	SNAPHOOKS_TEST_MARIADBD          path of mariadbd (or mysqld)
//	SNAPHOOKS_TEST_MARIADB_INSTALL_DB path of mariadb-install-db (or mysql_install_db)
//
// PostgreSQL DSNs are URLs (postgres://user:pass@127.0.0.1:PORT/postgres?sslmode=disable);
// MySQL DSNs use go-sql-driver syntax (user:pass@tcp(127.0.0.1:PORT)/db). Passwords look
// like s3cret-pg-admin or s3cret-my-reload, so a test can assert they never show up.
//
// Name database tests TestPostgres*, TestMySQL*, TestMariaDB* or TestDB*: the script counts them and
// fails when one of them is skipped.

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// dbTestTimeout bounds each helper's round trips to a test server.
const dbTestTimeout = 30 * time.Second

// dsnFromEnv returns the value of the environment variable name. When it is
// unset or empty, the test fails if SNAPHOOKS_REQUIRE_DB=1 (as under
// scripts/test.sh and CI) and is skipped otherwise.
func dsnFromEnv(t testing.TB, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v != "" {
		return v
	}
	if os.Getenv("SNAPHOOKS_REQUIRE_DB") == "1" {
		t.Fatalf("%s not set although SNAPHOOKS_REQUIRE_DB=1; run scripts/test.sh", name)
	}
	t.Skipf("%s not set; run scripts/test.sh", name)
	return ""
}

// pgConnect connects to the PostgreSQL DSN in the environment variable name and
// closes the connection when the test ends.
func pgConnect(t testing.TB, name string) *pgx.Conn {
	t.Helper()
	dsn := dsnFromEnv(t, name)
	ctx, cancel := context.WithTimeout(t.Context(), dbTestTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect to postgres with %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), dbTestTimeout)
		defer cancel()
		_ = conn.Close(ctx)
	})
	return conn
}

// pgAdmin returns a superuser connection (SNAPHOOKS_TEST_PG_ADMIN_DSN), closed
// when the test ends.
func pgAdmin(t testing.TB) *pgx.Conn {
	t.Helper()
	return pgConnect(t, "SNAPHOOKS_TEST_PG_ADMIN_DSN")
}

// mysqlOpen opens a pool for the MySQL DSN in the environment variable name,
// checks that it reaches the server, and closes it when the test ends.
func mysqlOpen(t testing.TB, name string) *sql.DB {
	t.Helper()
	dsn := dsnFromEnv(t, name)
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatalf("open mysql with %s: %v", name, err)
	}
	t.Cleanup(func() { _ = db.Close() })
	ctx, cancel := context.WithTimeout(t.Context(), dbTestTimeout)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		t.Fatalf("ping mysql with %s: %v", name, err)
	}
	return db
}

// mysqlAdmin returns a pool for the all-privileges user
// (SNAPHOOKS_TEST_MYSQL_ADMIN_DSN), closed when the test ends.
func mysqlAdmin(t testing.TB) *sql.DB {
	t.Helper()
	return mysqlOpen(t, "SNAPHOOKS_TEST_MYSQL_ADMIN_DSN")
}

// pgCheckpointsRequested returns the server's count of requested checkpoints
// (CHECKPOINT commands among them): pg_stat_checkpointer.num_requested from
// PostgreSQL 17 on, pg_stat_bgwriter.checkpoints_req before. The checkpointer
// publishes the count shortly after CHECKPOINT returns, so poll it with a
// deadline rather than read it once.
func pgCheckpointsRequested(t testing.TB, admin *pgx.Conn) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), dbTestTimeout)
	defer cancel()
	var hasCheckpointer bool
	if err := admin.QueryRow(ctx, "SELECT to_regclass('pg_catalog.pg_stat_checkpointer') IS NOT NULL").Scan(&hasCheckpointer); err != nil {
		t.Fatalf("look for pg_stat_checkpointer: %v", err)
	}
	q := "SELECT checkpoints_req FROM pg_stat_bgwriter"
	if hasCheckpointer {
		q = "SELECT num_requested FROM pg_stat_checkpointer"
	}
	var n int64
	if err := admin.QueryRow(ctx, q).Scan(&n); err != nil {
		t.Fatalf("read checkpoint count: %v", err)
	}
	return n
}

// TestDBEnvironment checks that the servers scripts/test.sh started are up and
// that every exported DSN has the rights it claims, no more.
func TestDBEnvironment(t *testing.T) {
	t.Run("binaries", func(t *testing.T) {
		pgBin := dsnFromEnv(t, "SNAPHOOKS_TEST_PG_BIN")
		for _, name := range []string{"initdb", "pg_ctl", "postgres"} {
			mustBeExecutable(t, filepath.Join(pgBin, name))
		}
		mustBeExecutable(t, dsnFromEnv(t, "SNAPHOOKS_TEST_MARIADBD"))
		mustBeExecutable(t, dsnFromEnv(t, "SNAPHOOKS_TEST_MARIADB_INSTALL_DB"))
		if dir := dsnFromEnv(t, "SNAPHOOKS_TEST_MARIADB_BIN"); filepath.Dir(os.Getenv("SNAPHOOKS_TEST_MARIADBD")) != filepath.Clean(dir) {
			t.Errorf("SNAPHOOKS_TEST_MARIADB_BIN=%q does not hold SNAPHOOKS_TEST_MARIADBD", dir)
		}
	})

	t.Run("postgres_admin_is_superuser", func(t *testing.T) {
		admin := pgAdmin(t)
		if !pgIsSuperuser(t, admin) {
			t.Fatal("the admin role is not superuser")
		}
		pgCheckpointsRequested(t, admin) // the stats view is readable
	})

	t.Run("postgres_checkpoint_role_can_checkpoint_only", func(t *testing.T) {
		admin := pgAdmin(t)
		conn := pgConnect(t, "SNAPHOOKS_TEST_PG_DSN")
		if pgIsSuperuser(t, conn) {
			t.Fatal("the checkpoint role is superuser; it must only have pg_checkpoint")
		}
		ctx, cancel := context.WithTimeout(t.Context(), dbTestTimeout)
		defer cancel()
		var member bool
		if err := conn.QueryRow(ctx, "SELECT pg_has_role(current_user, 'pg_checkpoint', 'MEMBER')").Scan(&member); err != nil {
			t.Fatalf("query pg_checkpoint membership: %v", err)
		}
		if !member {
			t.Fatal("the checkpoint role is not a member of pg_checkpoint")
		}

		before := pgCheckpointsRequested(t, admin)
		if _, err := conn.Exec(ctx, "CHECKPOINT"); err != nil {
			t.Fatalf("CHECKPOINT as the pg_checkpoint role: %v", err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for pgCheckpointsRequested(t, admin) <= before {
			if time.Now().After(deadline) {
				t.Fatalf("checkpoint count stayed at %d after CHECKPOINT", before)
			}
			time.Sleep(20 * time.Millisecond)
		}

		if _, err := conn.Exec(ctx, "CREATE ROLE snaphooks_env_probe"); !pgIsDenied(err) {
			t.Fatalf("CREATE ROLE as the checkpoint role: got %v, want permission denied", err)
		}
	})

	t.Run("postgres_nopriv_role_cannot_checkpoint", func(t *testing.T) {
		conn := pgConnect(t, "SNAPHOOKS_TEST_PG_NOPRIV_DSN")
		if pgIsSuperuser(t, conn) {
			t.Fatal("the no-rights role is superuser")
		}
		ctx, cancel := context.WithTimeout(t.Context(), dbTestTimeout)
		defer cancel()
		if _, err := conn.Exec(ctx, "CHECKPOINT"); !pgIsDenied(err) {
			t.Fatalf("CHECKPOINT as the no-rights role: got %v, want permission denied", err)
		}
	})

	t.Run("mysql_admin_has_all_privileges", func(t *testing.T) {
		grants := mysqlGrants(t, mysqlAdmin(t))
		if !strings.Contains(grants, "ALL PRIVILEGES ON *.*") {
			t.Fatalf("admin grants lack ALL PRIVILEGES ON *.*: %s", grants)
		}
	})

	t.Run("mysql_reload_user_can_lock_tables_only", func(t *testing.T) {
		db := mysqlOpen(t, "SNAPHOOKS_TEST_MYSQL_DSN")
		grants := mysqlGrants(t, db)
		if !strings.Contains(grants, "GRANT RELOAD ON *.*") || strings.Contains(grants, "ALL PRIVILEGES") {
			t.Fatalf("reload user grants: got %s, want only RELOAD ON *.*", grants)
		}
		ctx, cancel := context.WithTimeout(t.Context(), dbTestTimeout)
		defer cancel()
		// The lock belongs to a session: take and release it on one pinned connection.
		conn, err := db.Conn(ctx)
		if err != nil {
			t.Fatalf("pin a connection: %v", err)
		}
		defer conn.Close()
		if _, err := conn.ExecContext(ctx, "FLUSH TABLES WITH READ LOCK"); err != nil {
			t.Fatalf("FLUSH TABLES WITH READ LOCK as the reload user: %v", err)
		}
		if _, err := conn.ExecContext(ctx, "UNLOCK TABLES"); err != nil {
			t.Fatalf("UNLOCK TABLES as the reload user: %v", err)
		}
		if _, err := conn.ExecContext(ctx, "CREATE DATABASE snaphooks_env_probe"); !mysqlIsDenied(err) {
			t.Fatalf("CREATE DATABASE as the reload user: got %v, want access denied", err)
		}
	})

	t.Run("mysql_writer_can_write_but_not_lock", func(t *testing.T) {
		db := mysqlOpen(t, "SNAPHOOKS_TEST_MYSQL_WRITER_DSN")
		ctx, cancel := context.WithTimeout(t.Context(), dbTestTimeout)
		defer cancel()
		var current string
		if err := db.QueryRowContext(ctx, "SELECT DATABASE()").Scan(&current); err != nil {
			t.Fatalf("SELECT DATABASE(): %v", err)
		}
		if current != "snaphooks_test" {
			t.Fatalf("writer DSN selects database %q, want snaphooks_test", current)
		}
		if _, err := db.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS snaphooks_env_probe (id INT)"); err != nil {
			t.Fatalf("CREATE TABLE as the writer: %v", err)
		}
		if _, err := db.ExecContext(ctx, "INSERT INTO snaphooks_env_probe (id) VALUES (1)"); err != nil {
			t.Fatalf("INSERT as the writer: %v", err)
		}
		var n int
		if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM snaphooks_env_probe").Scan(&n); err != nil || n < 1 {
			t.Fatalf("SELECT as the writer: count %d, err %v", n, err)
		}
		if _, err := db.ExecContext(ctx, "FLUSH TABLES WITH READ LOCK"); !mysqlIsDenied(err) {
			t.Fatalf("FLUSH TABLES WITH READ LOCK as the writer: got %v, want access denied", err)
		}
	})
}

func mustBeExecutable(t *testing.T, path string) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Errorf("server binary: %v", err)
		return
	}
	if fi.IsDir() || fi.Mode().Perm()&0o111 == 0 {
		t.Errorf("server binary %s is not an executable file", path)
	}
}

func pgIsSuperuser(t *testing.T, conn *pgx.Conn) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), dbTestTimeout)
	defer cancel()
	var super bool
	if err := conn.QueryRow(ctx, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user").Scan(&super); err != nil {
		t.Fatalf("query rolsuper: %v", err)
	}
	return super
}

// pgIsDenied reports whether err is PostgreSQL's insufficient_privilege (42501).
func pgIsDenied(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "42501"
}

// mysqlIsDenied reports whether err is one of MySQL's access-denied errors
// (1044 database, 1045 login, 1142 table, 1227 global privilege).
func mysqlIsDenied(err error) bool {
	var myErr *mysql.MySQLError
	if !errors.As(err, &myErr) {
		return false
	}
	switch myErr.Number {
	case 1044, 1045, 1142, 1227:
		return true
	}
	return false
}

// mysqlGrants returns SHOW GRANTS for the current user, one grant per line.
func mysqlGrants(t *testing.T, db *sql.DB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), dbTestTimeout)
	defer cancel()
	rows, err := db.QueryContext(ctx, "SHOW GRANTS FOR CURRENT_USER()")
	if err != nil {
		t.Fatalf("SHOW GRANTS: %v", err)
	}
	defer rows.Close()
	var grants []string
	for rows.Next() {
		var g string
		if err := rows.Scan(&g); err != nil {
			t.Fatalf("SHOW GRANTS: %v", err)
		}
		grants = append(grants, g)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("SHOW GRANTS: %v", err)
	}
	return strings.Join(grants, "\n")
}

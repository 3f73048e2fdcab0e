#!/usr/bin/env bash
# scripts/test.sh — run the whole snaphooks test suite.
#
# On a fresh Debian machine with Go as the only prerequisite (run as root), this:
#   1. checks gofmt and runs go vet;
#   2. installs Debian's postgresql and mariadb-server (and qemu-guest-agent and
#      xfsprogs for the freeze tests) if missing, without letting
#      their maintainer scripts start system services;
#   3. starts a throwaway PostgreSQL and MariaDB on 127.0.0.1 (non-default ports,
#      data and sockets in a fresh temp dir) and creates least-privilege users;
#   4. exports their DSNs (SNAPHOOKS_TEST_*) and SNAPHOOKS_REQUIRE_DB=1, then runs
#      go test -race -count=1 -v ./... "$@" (printing a line per package, and the
#      whole log only when a test fails) and the bounded fuzz runs;
#   5. stops both servers and removes the temp dir, also on failure or interrupt.
#
# Usage: scripts/test.sh [go test flags...]     e.g. scripts/test.sh -run TestDBEnvironment
#
# Environment:
#   SNAPHOOKS_TEST_PG_PORT     PostgreSQL port (default 55432, next free one if busy)
#   SNAPHOOKS_TEST_MYSQL_PORT  MariaDB port    (default 53306, next free one if busy)
#   SNAPHOOKS_FUZZTIME         -fuzztime per fuzz target (default 15s; 0 = no fuzzing)
#   SNAPHOOKS_TEST_KEEP=1      keep the temp dir (server logs, test log) for debugging
set -euo pipefail

export PATH="/usr/local/go/bin:${PATH}:/usr/sbin:/sbin"
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

# Passwords are plain but unmistakable, so tests can assert they never leak into output.
readonly PG_ADMIN_USER=snaphooks_admin PG_ADMIN_PASS=s3cret-pg-admin
readonly PG_CHKPT_USER=snaphooks_chkpt PG_CHKPT_PASS=s3cret-pg-chkpt
readonly PG_NOPRIV_USER=snaphooks_nopriv PG_NOPRIV_PASS=s3cret-pg-nopriv
readonly MY_ADMIN_USER=snaphooks_admin MY_ADMIN_PASS=s3cret-my-admin
readonly MY_RELOAD_USER=snaphooks_reload MY_RELOAD_PASS=s3cret-my-reload
readonly MY_WRITER_USER=snaphooks_writer MY_WRITER_PASS=s3cret-my-writer
readonly MY_TEST_DB=snaphooks_test
readonly READY_TIMEOUT=60 # seconds a server may take to come up

die() {
	printf 'scripts/test.sh: error: %s\n' "$*" >&2
	exit 1
}

# ---------------------------------------------------------------------------
# State for cleanup. cleanup() is idempotent and runs on EXIT (which INT and
# TERM lead to), so servers never outlive the script.
TMP=""
PG_DATA=""
PG_BIN=""
PG_PID=""
MY_PID=""
CHILD_PGID=""
POLICY_INSTALLED=0
POLICY_BACKUP=""




stop_postgres() {
	[[ -n "$PG_PID" ]] || return 0
	if alive "$PG_PID"; then
		runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w -t 30 stop >/dev/null 2>&1 ||
			kill -INT "$PG_PID" 2>/dev/null || true # fast shutdown, also without postmaster.pid
		await_exit_or_kill "$PG_PID" postgres 100
	fi
	wait "$PG_PID" 2>/dev/null || true
	PG_PID=""
}

stop_mariadb() {
	[[ -n "$MY_PID" ]] || return 0
	if alive "$MY_PID"; then
		kill -TERM "$MY_PID" 2>/dev/null || true
		await_exit_or_kill "$MY_PID" mariadbd 300 # 30 s
	fi
	wait "$MY_PID" 2>/dev/null || true
	MY_PID=""
}


restore_policy_rc_d() {
	((POLICY_INSTALLED)) || return 0
	if [[ -n "$POLICY_BACKUP" ]]; then
		mv -f "$POLICY_BACKUP" /usr/sbin/policy-rc.d
	else
		rm -f /usr/sbin/policy-rc.d
	fi
	POLICY_INSTALLED=0
	POLICY_BACKUP=""
}

cleanup() {
	set +e
	stop_child
	stop_postgres
	stop_mariadb
	restore_policy_rc_d
	if [[ -n "$TMP" && -d "$TMP" ]]; then
		if [[ "${SNAPHOOKS_TEST_KEEP:-0}" == 1 ]]; then
			log "kept $TMP"
		else
			rm -rf "$TMP"
		fi
	fi
	TMP=""
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------
# Static checks first: they fail fast and need no server.

check_gofmt() {
	local unformatted
	unformatted=$(gofmt -l .)
	if [[ -n "$unformatted" ]]; then
		printf 'gofmt: these files are not formatted (run gofmt -w):\n%s\n' "$unformatted" >&2
		exit 1
	fi
}

log "gofmt -l ."
check_gofmt
log "go vet ./..."
go vet ./...

# ---------------------------------------------------------------------------
# Packages.

# Root installs the packages and runs the servers as their own users (postgres
# refuses to run as root).
[[ $(id -u) == 0 ]] || die "run as root: it installs packages and starts servers as the postgres and mysql users"



find_mariadbd() { first_cmd mariadbd mysqld /usr/sbin/mariadbd /usr/sbin/mysqld; }
find_install_db() { first_cmd mariadb-install-db mysql_install_db; }
find_my_client() { first_cmd mariadb mysql; }
find_my_admin() { first_cmd mariadb-admin mysqladmin; }

install_packages() {
	# One installer at a time: concurrent runs would also juggle policy-rc.d.
	exec 9>/run/lock/snaphooks-test-install.lock
	flock -w 900 9 || die "another scripts/test.sh has been installing packages for 15 minutes"
	local pkgs=()
	[[ -n "$(find_pg_bin)" ]] || pkgs+=(postgresql)
	if [[ -z "$(find_mariadbd)" || -z "$(find_install_db)" || -z "$(find_my_client)" || -z "$(find_my_admin)" ]]; then
		pkgs+=(mariadb-server mariadb-client)
	fi
	# TestDBCoverage mounts btrfs subvolumes of a loop device.
	command -v mkfs.btrfs >/dev/null && command -v btrfs >/dev/null || pkgs+=(btrfs-progs)
	# The freeze tests: a real guest agent, loop-mounted XFS (ext4 and util-linux are in the base system).
	command -v qemu-ga >/dev/null || [[ -x /usr/sbin/qemu-ga ]] || pkgs+=(qemu-guest-agent)
	command -v mkfs.xfs >/dev/null || [[ -x /usr/sbin/mkfs.xfs ]] || pkgs+=(xfsprogs)
	if ((${#pkgs[@]} == 0)); then
		exec 9>&-
		return 0
	fi

	log "installing ${pkgs[*]} (services will not be started)"
	# Keep the packages' maintainer scripts from starting system services.
	if [[ -e /usr/sbin/policy-rc.d ]]; then
		POLICY_BACKUP=$(mktemp /usr/sbin/.policy-rc.d.snaphooks.XXXXXX)
		cp -p /usr/sbin/policy-rc.d "$POLICY_BACKUP"
	fi
	POLICY_INSTALLED=1
	printf '#!/bin/sh\n# installed by snaphooks scripts/test.sh while it runs apt-get\nexit 101\n' \
		>/usr/sbin/policy-rc.d.snaphooks-new
	chmod 755 /usr/sbin/policy-rc.d.snaphooks-new
	mv -f /usr/sbin/policy-rc.d.snaphooks-new /usr/sbin/policy-rc.d

	local apt_opts=(-o DPkg::Lock::Timeout=300 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
	DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" update </dev/null
	DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" install -y --no-install-recommends "${pkgs[@]}" </dev/null
	restore_policy_rc_d
	exec 9>&-
}

install_packages

PG_BIN=$(find_pg_bin)
MARIADBD=$(find_mariadbd)
MY_INSTALL_DB=$(find_install_db)
MY_CLIENT=$(find_my_client)
MY_ADMIN=$(find_my_admin)
[[ -n "$PG_BIN" ]] || die "no PostgreSQL server binaries under /usr/lib/postgresql/*/bin"
[[ -n "$MARIADBD" ]] || die "no mariadbd or mysqld found"
[[ -n "$MY_INSTALL_DB" ]] || die "no mariadb-install-db or mysql_install_db found"
[[ -n "$MY_CLIENT" && -n "$MY_ADMIN" ]] || die "no mariadb/mariadb-admin client found"
id postgres >/dev/null 2>&1 || die "no postgres user (PostgreSQL refuses to run as root)"

# ---------------------------------------------------------------------------
# Servers.

TMP=$(mktemp -d /tmp/snaphooks-test.XXXXXX)
chmod 755 "$TMP" # the postgres and mysql users must reach their subdirectories



# pick_port VAR DEFAULT: an explicit env port must be free; the default moves on when busy.
pick_port() {
	local explicit=${!1:-}
	if [[ -n "$explicit" ]]; then
		[[ "$explicit" =~ ^[0-9]+$ ]] || die "$1=$explicit is not a port number"
		port_busy "$explicit" && die "$1=$explicit: the port is already in use"
		printf '%s\n' "$explicit"
	else
		free_port "$2"
	fi
}




start_postgres() {
	local base=$TMP/pg
	PG_DATA=$base/data
	mkdir -p "$base/run"
	printf '%s\n' "$PG_ADMIN_PASS" >"$base/pwfile"
	chown -R postgres:postgres "$base"
	chmod 700 "$base"

	runuser -u postgres -- "$PG_BIN/initdb" -D "$PG_DATA" -U "$PG_ADMIN_USER" --pwfile="$base/pwfile" \
		--auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C --no-sync \
		>"$base/initdb.log" 2>&1 || { show_log "$base/initdb.log"; die "initdb failed"; }
	rm -f "$base/pwfile"

	# The postmaster runs as our own child (not detached by pg_ctl start), in its own
	# process group: a Ctrl-C reaches only this script, whose trap stops it with
	# pg_ctl, and we reap it ourselves rather than leave a zombie to PID 1.
	local tries from=55432
	for ((tries = 1; ; tries++)); do
		PG_PORT=$(pick_port SNAPHOOKS_TEST_PG_PORT "$from")
		cat >"$PG_DATA/postgresql.auto.conf" <<-EOF
			# written by scripts/test.sh: a small, fast, throwaway server
			listen_addresses = '127.0.0.1'
			port = $PG_PORT
			unix_socket_directories = '$base/run'
			max_connections = 50
			shared_buffers = 32MB
			fsync = off
			synchronous_commit = off
			full_page_writes = off
		EOF
		chown postgres:postgres "$PG_DATA/postgresql.auto.conf"
		: >"$base/server.log"
		set -m
		setpriv --reuid=postgres --regid=postgres --init-groups -- \
			"$PG_BIN/postgres" -D "$PG_DATA" </dev/null >>"$base/server.log" 2>&1 &
		PG_PID=$!
		set +m
		await_ready "$PG_PID" "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -t 1 && return 0
		# Another process may have taken the port since we looked: try the next one.
		if ! alive "$PG_PID" && addr_in_use "$base/server.log" &&
			[[ -z "${SNAPHOOKS_TEST_PG_PORT:-}" ]] && ((tries < 5)); then
			log "postgres: port $PG_PORT was taken meanwhile; retrying"
			from=$((PG_PORT + 1))
			wait "$PG_PID" 2>/dev/null || true
			PG_PID=""
			continue
		fi
		show_log "$base/server.log"
		local why="did not come up within ${READY_TIMEOUT}s"
		alive "$PG_PID" || why="exited"
		stop_postgres
		die "postgres on 127.0.0.1:$PG_PORT $why (its log is above)"
	done
}

create_postgres_roles() {
	runuser -u postgres -- "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$TMP/pg/run" -p "$PG_PORT" \
		-U "$PG_ADMIN_USER" -d postgres >/dev/null <<-EOF
		CREATE ROLE $PG_CHKPT_USER LOGIN PASSWORD '$PG_CHKPT_PASS';
		GRANT pg_checkpoint, pg_read_all_settings TO $PG_CHKPT_USER;
		CREATE ROLE $PG_NOPRIV_USER LOGIN PASSWORD '$PG_NOPRIV_PASS';
	EOF
}

start_mariadb() {
	local base=$TMP/my run_as=root
	MY_DATA=$base/data
	MY_SOCK=$base/mysqld.sock
	mkdir -p "$MY_DATA" "$base/tmp"
	if id mysql >/dev/null 2>&1; then
		run_as=mysql
		chown -R mysql:mysql "$base"
	fi
	chmod 700 "$base"
	# Keep it light: the machine is small.
	local opts=(
		--datadir="$MY_DATA" --tmpdir="$base/tmp" --user="$run_as"
		--innodb-buffer-pool-size=32M --innodb-log-file-size=16M --innodb-log-buffer-size=4M
		--performance-schema=OFF --skip-log-bin --skip-name-resolve
		--innodb-flush-log-at-trx-commit=2 --innodb-doublewrite=0
	)

	"$MY_INSTALL_DB" --no-defaults "${opts[@]}" --auth-root-authentication-method=socket \
		--skip-test-db >"$base/install-db.log" 2>&1 ||
		{ show_log "$base/install-db.log"; die "$MY_INSTALL_DB failed"; }

	local tries from=53306
	for ((tries = 1; ; tries++)); do
		MY_PORT=$(pick_port SNAPHOOKS_TEST_MYSQL_PORT "$from")
		: >"$base/server.log"
		[[ "$run_as" == root ]] || chown "$run_as:$run_as" "$base/server.log"
		set -m # own process group, as for postgres
		"$MARIADBD" --no-defaults "${opts[@]}" --socket="$MY_SOCK" --port="$MY_PORT" \
			--bind-address=127.0.0.1 --skip-networking=0 --pid-file="$base/mysqld.pid" \
			--log-error="$base/server.log" --max-connections=100 </dev/null >>"$base/server.log" 2>&1 &
		MY_PID=$!
		set +m
		await_ready "$MY_PID" mariadb_ready "$MY_ADMIN" "$MY_SOCK" "$MY_PORT" && return 0
		if ! alive "$MY_PID" && addr_in_use "$base/server.log" &&
			[[ -z "${SNAPHOOKS_TEST_MYSQL_PORT:-}" ]] && ((tries < 5)); then
			log "mariadb: port $MY_PORT was taken meanwhile; retrying"
			from=$((MY_PORT + 1))
			wait "$MY_PID" 2>/dev/null || true
			MY_PID=""
			continue
		fi
		show_log "$base/server.log"
		local why="did not come up within ${READY_TIMEOUT}s"
		alive "$MY_PID" || why="exited"
		stop_mariadb
		die "mariadbd on 127.0.0.1:$MY_PORT $why (its log is above)"
	done
}

create_mariadb_users() {
	"$MY_CLIENT" --no-defaults --socket="$MY_SOCK" -u root <<-EOF
		CREATE USER '$MY_ADMIN_USER'@'127.0.0.1' IDENTIFIED BY '$MY_ADMIN_PASS';
		GRANT ALL PRIVILEGES ON *.* TO '$MY_ADMIN_USER'@'127.0.0.1' WITH GRANT OPTION;
		CREATE USER '$MY_RELOAD_USER'@'127.0.0.1' IDENTIFIED BY '$MY_RELOAD_PASS';
		GRANT RELOAD ON *.* TO '$MY_RELOAD_USER'@'127.0.0.1';
		CREATE DATABASE $MY_TEST_DB;
		CREATE USER '$MY_WRITER_USER'@'127.0.0.1' IDENTIFIED BY '$MY_WRITER_PASS';
		GRANT INSERT, SELECT, CREATE ON $MY_TEST_DB.* TO '$MY_WRITER_USER'@'127.0.0.1';
	EOF
}

t0=$(now)
log "starting postgres and mariadb in $TMP"
start_postgres
create_postgres_roles
pg_time=$(elapsed "$t0")
t1=$(now)
start_mariadb
create_mariadb_users
log "servers up in $(elapsed "$t0")s (postgres ${pg_time}s, mariadb $(elapsed "$t1")s, data dirs included):" \
	"postgres on 127.0.0.1:$PG_PORT, mariadb on 127.0.0.1:$MY_PORT"

# ---------------------------------------------------------------------------
# What the tests see.

pg_dsn() { printf 'postgres://%s:%s@127.0.0.1:%s/postgres?sslmode=disable' "$1" "$2" "$PG_PORT"; }
my_dsn() { printf '%s:%s@tcp(127.0.0.1:%s)/%s' "$1" "$2" "$MY_PORT" "${3:-}"; }

export SNAPHOOKS_REQUIRE_DB=1
export SNAPHOOKS_TEST_PG_ADMIN_DSN SNAPHOOKS_TEST_PG_DSN SNAPHOOKS_TEST_PG_NOPRIV_DSN
SNAPHOOKS_TEST_PG_ADMIN_DSN=$(pg_dsn "$PG_ADMIN_USER" "$PG_ADMIN_PASS")
SNAPHOOKS_TEST_PG_DSN=$(pg_dsn "$PG_CHKPT_USER" "$PG_CHKPT_PASS")
SNAPHOOKS_TEST_PG_NOPRIV_DSN=$(pg_dsn "$PG_NOPRIV_USER" "$PG_NOPRIV_PASS")
export SNAPHOOKS_TEST_MYSQL_ADMIN_DSN SNAPHOOKS_TEST_MYSQL_DSN SNAPHOOKS_TEST_MYSQL_WRITER_DSN
SNAPHOOKS_TEST_MYSQL_ADMIN_DSN=$(my_dsn "$MY_ADMIN_USER" "$MY_ADMIN_PASS")
SNAPHOOKS_TEST_MYSQL_DSN=$(my_dsn "$MY_RELOAD_USER" "$MY_RELOAD_PASS")
SNAPHOOKS_TEST_MYSQL_WRITER_DSN=$(my_dsn "$MY_WRITER_USER" "$MY_WRITER_PASS" "$MY_TEST_DB")
# Server binaries, so a test can start a private extra server that it may kill.
export SNAPHOOKS_TEST_PG_BIN=$PG_BIN
export SNAPHOOKS_TEST_MARIADB_BIN
SNAPHOOKS_TEST_MARIADB_BIN=$(dirname "$MARIADBD")
export SNAPHOOKS_TEST_MARIADBD=$MARIADBD
export SNAPHOOKS_TEST_MARIADB_INSTALL_DB=$MY_INSTALL_DB

# ---------------------------------------------------------------------------
# Tests.


# go_test runs the tests with -v into $TEST_LOG and prints one line per
# package; if a test fails, it prints the whole log, which has the detail.
go_test() {
	local rc=0
	go test -race -count=1 -v ./... "$@" >"$TEST_LOG" 2>&1 || rc=$?
	if ((rc == 0)); then
		grep -E '^(ok|\?|FAIL)[[:space:]]' "$TEST_LOG" || true
	else
		cat "$TEST_LOG"
	fi
	return "$rc"
}

# run_fuzz: bounded fuzz runs. Every `func FuzzXxx` in a *_test.go file at the
# module root is fuzzed for SNAPHOOKS_FUZZTIME (default 15s); 0 turns fuzzing off.
run_fuzz() {
	local fuzztime=${SNAPHOOKS_FUZZTIME:-15s}
	if [[ "$fuzztime" == 0 ]]; then
		log "fuzzing off (SNAPHOOKS_FUZZTIME=0)"
		return 0
	fi
	local targets name
	targets=$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' ./*_test.go 2>/dev/null | sort -u)
	[[ -n "$targets" ]] || return 0
	for name in $targets; do
		log "fuzzing $name for $fuzztime"
		run_child go test -run='^$' -fuzz="^${name}\$" -fuzztime="$fuzztime" . || return 1
	done
}

TEST_LOG=$TMP/go-test.log
log "go test -race -count=1 -v ./... $*"
test_rc=0
run_child go_test "$@" || test_rc=$?

fuzz_rc=0
if ((test_rc == 0)); then
	run_fuzz || fuzz_rc=$?
fi

# ---------------------------------------------------------------------------
# Summary. Top-level results are unindented "--- PASS/FAIL/SKIP: Name" lines.

count() { grep -cE "$1" "$TEST_LOG" || true; }
readonly DB_TESTS='(TestPostgres|TestMySQL|TestMariaDB|TestDB|TestSplitMariaDB|TestSanoid)'
passed=$(count '^--- PASS: ')
failed=$(count '^--- FAIL: ')
skipped=$(count '^--- SKIP: ')
db_passed=$(count "^--- PASS: ${DB_TESTS}")
# Any skipped database test or subtest, while the databases are required.
db_skipped=$(grep -E "^ *--- SKIP: ${DB_TESTS}" "$TEST_LOG" | sed -E 's/^ *--- SKIP: ([^ ]+).*/\1/' || true)

cleanup
trap - EXIT INT TERM

status=0
if ((test_rc != 0)); then
	printf 'go test failed (exit %s)\n' "$test_rc"
	status=1
fi
if ((fuzz_rc != 0)); then
	printf 'fuzzing failed\n'
	status=1
fi
if [[ -n "$db_skipped" ]]; then
	printf 'database tests were skipped although SNAPHOOKS_REQUIRE_DB=1: %s\n' "$(printf '%s' "$db_skipped" | tr '\n' ' ')"
	status=1
fi
if (($# == 0 && db_passed == 0 && test_rc == 0)); then
	printf 'no database test passed: the suite did not reach the servers\n'
	status=1
fi
printf 'database tests: %s passed\n' "$db_passed"
printf 'tests: %s passed, %s failed, %s skipped\n' "$passed" "$failed" "$skipped"
exit "$status"

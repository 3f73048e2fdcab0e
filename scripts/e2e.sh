#!/usr/bin/env bash
# scripts/e2e.sh — end-to-end tests: real btrfs snapshots of live MariaDB and
# PostgreSQL servers, taken through the library's plans (and once through
# `snaphook run` with two --fs), restored and checked.
#
# As root, this:
#   1. installs btrfs-progs (and postgresql, mariadb-server) if missing;
#   2. makes a btrfs filesystem on a sparse file in a fresh temp dir, attaches it
#      to a loop device and mounts it, with one subvolume each for MariaDB's
#      datadir, MariaDB's InnoDB redo log (innodb_log_group_home_dir),
#      PostgreSQL's data directory and its WAL (initdb --waldir);
#   3. starts a throwaway MariaDB and PostgreSQL on those subvolumes, on free
#      ports of 127.0.0.1, and exports what the tests need (SNAPHOOKS_E2E_*);
#   4. runs the tests in e2e/ (go test -tags e2e), or with --bench their
#      benchmarks (writer stall around a snapshot, PostgreSQL restore);
#   5. always tears down: the tests' own servers on snapshot copies, both
#      servers, the mount, the loop device and the temp dir — also when a test
#      fails or panics and when the script gets SIGINT or SIGTERM.
# It ends with the line "N passed, N failed" (top-level tests, or benchmarks).
#
# Usage: scripts/e2e.sh [--bench] [go test flags...]   e.g. scripts/e2e.sh -run TestMariaDB
#
# Environment:
#   SNAPHOOKS_E2E_TRIES        tries per negative case (default 5)
#   SNAPHOOKS_E2E_ROUNDS       rounds per benchmark case (default 7)
#   SNAPHOOKS_TEST_KEEP=1      keep the temp dir (server logs, test log), not the mount
set -euo pipefail

export PATH="/usr/local/go/bin:${PATH}:/usr/sbin:/sbin"
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

readonly MY_ADMIN_USER=e2e_admin MY_ADMIN_PASS=s3cret-e2e-my-admin
readonly MY_LOCK_USER=e2e_lock MY_LOCK_PASS=s3cret-e2e-my-lock
readonly PG_ADMIN_USER=e2e_admin PG_ADMIN_PASS=s3cret-e2e-pg-admin
readonly PG_CHKPT_USER=e2e_chkpt PG_CHKPT_PASS=s3cret-e2e-pg-chkpt
readonly READY_TIMEOUT=60 # seconds a server may take to come up

BENCH=0
if [[ "${1:-}" == --bench ]]; then
	BENCH=1
	shift
fi

die() {
	printf 'scripts/e2e.sh: error: %s\n' "$*" >&2
	exit 1
}

# ---------------------------------------------------------------------------
# State for cleanup, which is idempotent and runs on EXIT (INT and TERM lead
# there): nothing this script started may outlive it.
TMP=""
MNT=""
LOOP=""
PG_PID=""
MY_PID=""
CHILD_PGID=""
PG_BIN=""




# stop_strays kills every other process whose command line names our temp
# dir: a server the tests started on a snapshot copy that escaped the process
# group (its own session, a re-parented orphan). Found by our unique path,
# killed by pid.
stop_strays() {
	[[ -n "$TMP" ]] || return 0
	local f pid cmd
	for f in /proc/[0-9]*/cmdline; do
		pid=${f#/proc/}
		pid=${pid%/cmdline}
		[[ "$pid" == "$$" || "$pid" == "$PG_PID" || "$pid" == "$MY_PID" ]] && continue
		cmd=$(tr '\0' ' ' 2>/dev/null <"$f") || continue
		if [[ "$cmd" == *"$TMP/"* ]] && alive "$pid"; then
			log "killing stray process $pid: ${cmd:0:120}"
			kill -KILL "$pid" 2>/dev/null || true
		fi
	done
}

stop_postgres() {
	[[ -n "$PG_PID" ]] || return 0
	if alive "$PG_PID"; then
		kill -INT "$PG_PID" 2>/dev/null || true # fast shutdown
		await_exit_or_kill "$PG_PID" postgres 300
	fi
	wait "$PG_PID" 2>/dev/null || true
	PG_PID=""
}

stop_mariadb() {
	[[ -n "$MY_PID" ]] || return 0
	if alive "$MY_PID"; then
		kill -TERM "$MY_PID" 2>/dev/null || true
		await_exit_or_kill "$MY_PID" mariadbd 300
	fi
	wait "$MY_PID" 2>/dev/null || true
	MY_PID=""
}

unmount_all() {
	if [[ -n "$MNT" ]] && mountpoint -q "$MNT" 2>/dev/null; then
		local i
		for ((i = 0; i < 50; i++)); do
			umount "$MNT" 2>/dev/null && break
			sleep 0.2
		done
		if mountpoint -q "$MNT" 2>/dev/null; then
			log "umount $MNT: still busy after 10 s; detaching it lazily"
			umount -l "$MNT" || true
		fi
	fi
	if [[ -n "$LOOP" ]]; then
		losetup -d "$LOOP" 2>/dev/null || log "losetup -d $LOOP failed (it is set to detach itself when free)"
		LOOP=""
	fi
}

cleanup() {
	set +e
	stop_child
	stop_strays
	stop_postgres
	stop_mariadb
	stop_strays
	unmount_all
	if [[ -n "$TMP" && -d "$TMP" ]]; then
		if [[ "${SNAPHOOKS_TEST_KEEP:-0}" == 1 ]]; then
			rm -f "$TMP/btrfs.img"
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
# Checks and packages.

[[ $(id -u) == 0 ]] || die "run as root: it mounts a btrfs filesystem and starts servers as the postgres and mysql users"

log "gofmt -l e2e; go vet -tags e2e ./e2e/"
unformatted=$(gofmt -l e2e)
[[ -z "$unformatted" ]] || die "gofmt: not formatted: $unformatted"
go vet -tags e2e ./e2e/


install_missing() {
	local pkgs=()
	command -v mkfs.btrfs >/dev/null && command -v btrfs >/dev/null || pkgs+=(btrfs-progs)
	[[ -n "$(find_pg_bin)" ]] || pkgs+=(postgresql)
	[[ -n "$(first_cmd mariadbd mysqld)" && -n "$(first_cmd mariadb-install-db mysql_install_db)" ]] ||
		pkgs+=(mariadb-server mariadb-client)
	((${#pkgs[@]})) || return 0
	log "installing ${pkgs[*]} (services will not be started)"
	# Keep the maintainer scripts from starting system services.
	local policy_backup=""
	if [[ -e /usr/sbin/policy-rc.d ]]; then
		policy_backup=$(mktemp /usr/sbin/.policy-rc.d.e2e.XXXXXX)
		cp -p /usr/sbin/policy-rc.d "$policy_backup"
	fi
	printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
	chmod 755 /usr/sbin/policy-rc.d
	local opts=(-o DPkg::Lock::Timeout=300 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
	local rc=0
	{ DEBIAN_FRONTEND=noninteractive apt-get "${opts[@]}" update &&
		DEBIAN_FRONTEND=noninteractive apt-get "${opts[@]}" install -y --no-install-recommends "${pkgs[@]}"; } </dev/null || rc=$?
	if [[ -n "$policy_backup" ]]; then mv -f "$policy_backup" /usr/sbin/policy-rc.d; else rm -f /usr/sbin/policy-rc.d; fi
	((rc == 0)) || die "apt-get install ${pkgs[*]} failed"
}
install_missing

PG_BIN=$(find_pg_bin)
MARIADBD=$(first_cmd mariadbd mysqld)
MY_INSTALL_DB=$(first_cmd mariadb-install-db mysql_install_db)
MY_ADMIN=$(first_cmd mariadb-admin mysqladmin)
MY_CLIENT=$(first_cmd mariadb mysql)
[[ -n "$PG_BIN" && -n "$MARIADBD" && -n "$MY_INSTALL_DB" && -n "$MY_ADMIN" && -n "$MY_CLIENT" ]] ||
	die "PostgreSQL or MariaDB binaries not found"
id postgres >/dev/null 2>&1 && id mysql >/dev/null 2>&1 || die "users postgres and mysql must exist"
modprobe btrfs 2>/dev/null || true
grep -qw btrfs /proc/filesystems || die "the kernel has no btrfs"

# ---------------------------------------------------------------------------
# The filesystem.

t_start=$(now)

TMP=$(mktemp -d /tmp/snaphooks-e2e.XXXXXX)
chmod 755 "$TMP"
truncate -s 6G "$TMP/btrfs.img" # sparse: uses what the servers write
mkfs.btrfs -q -f "$TMP/btrfs.img" >/dev/null
LOOP=$(losetup --find --show "$TMP/btrfs.img")
MNT=$TMP/mnt
mkdir "$MNT"
mount -t btrfs "$LOOP" "$MNT"
for sv in my-data my-log pg-data pg-wal snap; do
	btrfs -q subvolume create "$MNT/$sv" >/dev/null
done
chmod 755 "$MNT"
chown mysql:mysql "$MNT/my-data" "$MNT/my-log"
chown postgres:postgres "$MNT/pg-data" "$MNT/pg-wal"
chmod 700 "$MNT/my-data" "$MNT/my-log" "$MNT/pg-data" "$MNT/pg-wal"
mkdir -p "$TMP/run/my" "$TMP/run/pg" "$TMP/copies"
chmod 1777 "$TMP/copies" # sockets and logs of the servers the tests start on copies
chown mysql:mysql "$TMP/run/my"
chown postgres:postgres "$TMP/run/pg"
log "btrfs on $LOOP mounted at $MNT"

# ---------------------------------------------------------------------------
# Servers.


# The MariaDB options of the primary, which the tests reuse for the servers
# they start on snapshot copies (with their own datadir, log dir and port).
MY_OPTS=(
	--innodb-buffer-pool-size=128M --innodb-log-file-size=96M
	--performance-schema=OFF --skip-log-bin --skip-name-resolve
	--max-connections=100
)

start_mariadb() {
	"$MY_INSTALL_DB" --no-defaults --user=mysql --datadir="$MNT/my-data" \
		--innodb-log-group-home-dir="$MNT/my-log" "${MY_OPTS[@]}" \
		--auth-root-authentication-method=socket --skip-test-db >"$TMP/run/my/install-db.log" 2>&1 ||
		{ show_log "$TMP/run/my/install-db.log"; die "$MY_INSTALL_DB failed"; }
	local tries
	for ((tries = 1; tries <= 5; tries++)); do
		MY_PORT=$(free_port 53406)
		set -m # own process group: a Ctrl-C reaches only this script, whose trap stops it
		"$MARIADBD" --no-defaults --user=mysql --datadir="$MNT/my-data" \
			--innodb-log-group-home-dir="$MNT/my-log" "${MY_OPTS[@]}" \
			--socket="$TMP/run/my/mysqld.sock" --port="$MY_PORT" --bind-address=127.0.0.1 \
			--pid-file="$TMP/run/my/mysqld.pid" --log-error="$TMP/run/my/server.log" \
			</dev/null >>"$TMP/run/my/server.log" 2>&1 &
		MY_PID=$!
		set +m
		await_ready "$MY_PID" mariadb_ready "$MY_ADMIN" "$TMP/run/my/mysqld.sock" "$MY_PORT" && return 0
		alive "$MY_PID" || ! addr_in_use "$TMP/run/my/server.log" || {
			wait "$MY_PID" 2>/dev/null || true
			MY_PID=""
			continue
		}
		break
	done
	show_log "$TMP/run/my/server.log"
	die "mariadbd did not come up"
}

start_postgres() {
	printf '%s\n' "$PG_ADMIN_PASS" >"$TMP/run/pg/pwfile"
	chown postgres "$TMP/run/pg/pwfile"
	runuser -u postgres -- "$PG_BIN/initdb" -D "$MNT/pg-data/data" --waldir="$MNT/pg-wal/wal" \
		-U "$PG_ADMIN_USER" --pwfile="$TMP/run/pg/pwfile" --auth-local=trust --auth-host=scram-sha-256 \
		-E UTF8 --locale=C >"$TMP/run/pg/initdb.log" 2>&1 ||
		{ show_log "$TMP/run/pg/initdb.log"; die "initdb failed"; }
	rm -f "$TMP/run/pg/pwfile"
	local tries
	for ((tries = 1; tries <= 5; tries++)); do
		PG_PORT=$(free_port 55532)
		# Defaults where they matter to a restore (fsync, full_page_writes,
		# checkpoint_timeout); small where they do not.
		cat >"$MNT/pg-data/data/postgresql.auto.conf" <<-EOF
			listen_addresses = '127.0.0.1'
			port = $PG_PORT
			unix_socket_directories = '$TMP/run/pg'
			max_connections = 30
			shared_buffers = 128MB
			max_wal_size = 1GB
		EOF
		chown postgres:postgres "$MNT/pg-data/data/postgresql.auto.conf"
		set -m
		setpriv --reuid=postgres --regid=postgres --init-groups -- \
			"$PG_BIN/postgres" -D "$MNT/pg-data/data" </dev/null >>"$TMP/run/pg/server.log" 2>&1 &
		PG_PID=$!
		set +m
		await_ready "$PG_PID" "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -t 1 && return 0
		alive "$PG_PID" || ! addr_in_use "$TMP/run/pg/server.log" || {
			wait "$PG_PID" 2>/dev/null || true
			PG_PID=""
			continue
		}
		break
	done
	show_log "$TMP/run/pg/server.log"
	die "postgres did not come up"
}

start_mariadb
"$MY_CLIENT" --no-defaults --socket="$TMP/run/my/mysqld.sock" -u root <<-EOF
	CREATE USER '$MY_ADMIN_USER'@'127.0.0.1' IDENTIFIED BY '$MY_ADMIN_PASS';
	GRANT ALL PRIVILEGES ON *.* TO '$MY_ADMIN_USER'@'127.0.0.1';
	CREATE USER '$MY_LOCK_USER'@'127.0.0.1' IDENTIFIED BY '$MY_LOCK_PASS';
	GRANT RELOAD ON *.* TO '$MY_LOCK_USER'@'127.0.0.1';
EOF
start_postgres
runuser -u postgres -- "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$TMP/run/pg" -p "$PG_PORT" \
	-U "$PG_ADMIN_USER" -d postgres >/dev/null <<-EOF
	CREATE ROLE $PG_CHKPT_USER LOGIN PASSWORD '$PG_CHKPT_PASS';
	GRANT pg_checkpoint, pg_read_all_settings TO $PG_CHKPT_USER;
EOF
log "set up in $(elapsed "$t_start")s: mariadb on 127.0.0.1:$MY_PORT, postgres on 127.0.0.1:$PG_PORT"

# ---------------------------------------------------------------------------
# What the tests see (documented in e2e/doc.go).

export SNAPHOOKS_E2E=1
export SNAPHOOKS_E2E_TMP=$TMP/copies
export SNAPHOOKS_E2E_SNAPDIR=$MNT/snap
export SNAPHOOKS_E2E_MY_DATA=$MNT/my-data SNAPHOOKS_E2E_MY_LOG=$MNT/my-log
export SNAPHOOKS_E2E_PG_DATA=$MNT/pg-data SNAPHOOKS_E2E_PG_WAL=$MNT/pg-wal
export SNAPHOOKS_E2E_MARIADBD=$MARIADBD SNAPHOOKS_E2E_PG_BIN=$PG_BIN
export SNAPHOOKS_E2E_MY_OPTS="${MY_OPTS[*]}"
export SNAPHOOKS_E2E_MY_ADMIN_DSN="$MY_ADMIN_USER:$MY_ADMIN_PASS@tcp(127.0.0.1:$MY_PORT)/"
export SNAPHOOKS_E2E_MY_LOCK_DSN="$MY_LOCK_USER:$MY_LOCK_PASS@tcp(127.0.0.1:$MY_PORT)/"
export SNAPHOOKS_E2E_PG_ADMIN_DSN="postgres://$PG_ADMIN_USER:$PG_ADMIN_PASS@127.0.0.1:$PG_PORT/postgres?sslmode=disable"
export SNAPHOOKS_E2E_PG_CHKPT_DSN="postgres://$PG_CHKPT_USER:$PG_CHKPT_PASS@127.0.0.1:$PG_PORT/postgres?sslmode=disable"
export SNAPHOOKS_E2E_TRIES=${SNAPHOOKS_E2E_TRIES:-5}
export SNAPHOOKS_E2E_ROUNDS=${SNAPHOOKS_E2E_ROUNDS:-7}

# ---------------------------------------------------------------------------
# Tests.

TEST_LOG=$TMP/go-test.log
go_test() {
	if ((BENCH)); then
		go test -tags e2e -count=1 -timeout 20m -run '^$' -bench . -benchtime 1x -v ./e2e/ "$@" 2>&1 | tee "$TEST_LOG"
	else
		go test -tags e2e -count=1 -timeout 10m -v ./e2e/ "$@" 2>&1 | tee "$TEST_LOG"
	fi
	return "${PIPESTATUS[0]}"
}

t_tests=$(now)
log "go test -tags e2e ./e2e/ $( ((BENCH)) && printf -- '-bench . ')$*"
test_rc=0
run_child go_test "$@" || test_rc=$?
test_time=$(elapsed "$t_tests")

# Results, and the measurements the tests logged as "RESULT ..." lines.
count() { grep -cE "$1" "$TEST_LOG" || true; }
if ((BENCH)); then
	# Top-level benchmarks: -v prints each name on a line of its own.
	failed=$(count '^--- FAIL: Benchmark[A-Za-z0-9_]+ ')
	passed=$(($(count '^Benchmark[A-Za-z0-9_]+$') - failed))
else
	passed=$(count '^--- PASS: ')
	# A test that did not finish (the binary crashed or was killed) has no
	# result line: every test that started and did not pass or skip failed.
	failed=$(($(count '^=== RUN   Test[A-Za-z0-9_]+$') - passed - $(count '^--- SKIP: ')))
fi
if ((test_rc != 0 && failed == 0)); then
	failed=1 # go test failed outside any test (build, vet, TestMain)
fi
skipped=$(count '^--- SKIP: ')
results=$(grep -E '^ *[a-z_]+\.go:[0-9]+: RESULT ' "$TEST_LOG" | sed -E 's/^ *[a-z_]+\.go:[0-9]+: RESULT //' || true)

cleanup
trap - EXIT INT TERM

if [[ -n "$results" ]]; then
	printf '\nmeasurements:\n%s\n' "$results"
fi
printf '\ntests took %ss, the whole run %ss\n' "$test_time" "$(elapsed "$t_start")"
status=0
if ((test_rc != 0)); then
	printf 'go test failed (exit %s)\n' "$test_rc"
	status=1
fi
if ((skipped > 0)); then
	printf '%s tests were skipped: the end-to-end tests must all run here\n' "$skipped"
	status=1
fi
if ((passed == 0 && status == 0)); then
	printf 'nothing ran\n'
	status=1
fi
printf '%s passed, %s failed\n' "$passed" "$failed"
exit "$status"

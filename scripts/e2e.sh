#!/usr/bin/env bash
# scripts/e2e.sh — end-to-end tests: real btrfs snapshots of live MariaDB and
# PostgreSQL servers, taken through the library's plans (and once through
# `snaphook run` with two --fs), restored and checked; and block-level
# snapshots (reflink copies of loop devices' backing files) of a second
# MariaDB and PostgreSQL whose data and logs are on two XFS volumes each.
#
# As root, this:
#   1. installs btrfs-progs, xfsprogs (and postgresql, mariadb-server) if missing;
#   2. makes a btrfs filesystem on a sparse file in a fresh temp dir, attaches it
#      to a loop device and mounts it, with one subvolume each for MariaDB's
#      datadir, MariaDB's InnoDB redo log (innodb_log_group_home_dir),
#      PostgreSQL's data directory and its WAL (initdb --waldir);
#   3. makes four XFS volumes (sparse backing files on the btrfs filesystem,
#      each on a loop device, mounted): MariaDB's datadir, its redo log,
#      PostgreSQL's data directory and its WAL, for the block-level tests;
#   4. starts a throwaway MariaDB and PostgreSQL on the subvolumes and another
#      pair on the XFS volumes, on free ports of 127.0.0.1, and exports what
#      the tests need (SNAPHOOKS_E2E_*, SNAPHOOKS_E2E_BLOCK_*);
#   5. runs the tests in e2e/ (go test -tags e2e), or with --bench their
#      benchmarks (writer stall around a snapshot, PostgreSQL restore);
#   6. always tears down: first it thaws every XFS volume (a test may have
#      frozen one), then the tests' own servers on snapshot copies, the four
#      servers, every mount and loop device under the temp dir and the temp
#      dir — also when a test fails or panics and when the script gets SIGINT
#      or SIGTERM.
# It ends with the line "N passed, N failed" (top-level tests, or benchmarks).
#
# Usage: scripts/e2e.sh [--bench] [go test flags...]   e.g. scripts/e2e.sh -run TestMariaDB
#
# Environment:
#   SNAPHOOKS_E2E_TRIES        tries per negative case (default 5)
#   SNAPHOOKS_E2E_BLOCK_TRIES  tries per case of the block-level tests, TestBlock* (default 2)
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
BPG_PID="" # the servers on the XFS volumes
BMY_PID=""
CHILD_PGID=""
PG_BIN=""
readonly BLOCK_VOLS=(my-data my-log pg-data pg-wal)
readonly BLOCK_SIZE=512M

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
		[[ "$pid" == "$$" || "$pid" == "$PG_PID" || "$pid" == "$MY_PID" ||
			"$pid" == "$BPG_PID" || "$pid" == "$BMY_PID" ]] && continue
		cmd=$(tr '\0' ' ' 2>/dev/null <"$f") || continue
		if [[ "$cmd" == *"$TMP/"* ]] && alive "$pid"; then
			log "killing stray process $pid: ${cmd:0:120}"
			kill -KILL "$pid" 2>/dev/null || true
		fi
	done
}

# stop_server VAR SIGNAL NAME stops the server whose pid is in the variable
# VAR with SIGNAL (postgres: INT, a fast shutdown; mariadbd: TERM), kills it
# after 30 s, and empties VAR.
stop_server() {
	local -n pid_ref=$1
	[[ -n "$pid_ref" ]] || return 0
	if alive "$pid_ref"; then
		kill "-$2" "$pid_ref" 2>/dev/null || true
		await_exit_or_kill "$pid_ref" "$3" 300
	fi
	wait "$pid_ref" 2>/dev/null || true
	pid_ref=""
}

# our_mounts prints the mount points under the temp dir but the btrfs one,
# deepest first: the XFS volumes and the copies the tests mounted.
our_mounts() {
	[[ -n "$TMP" ]] || return 0
	awk -v tmp="$TMP/" -v mnt="$MNT" 'index($2, tmp) == 1 && $2 != mnt { print $2 }' /proc/mounts | sort -r
}

# thaw_volumes thaws every mount under the temp dir, ignoring errors (most
# are not frozen). It comes first in cleanup: a process that writes to a
# frozen filesystem cannot be killed, and one left frozen stalls the machine.
thaw_volumes() {
	local m
	for m in $(our_mounts); do
		fsfreeze -u "$m" 2>/dev/null || true
	done
}

# unmount_volumes unmounts the XFS volumes and the tests' copies, and detaches
# every loop device whose backing file is on the btrfs filesystem.
unmount_volumes() {
	local m i dev back
	for m in $(our_mounts); do
		for ((i = 0; i < 50; i++)); do
			umount "$m" 2>/dev/null && break
			sleep 0.2
		done
		if mountpoint -q "$m" 2>/dev/null; then
			log "umount $m: still busy after 10 s; detaching it lazily"
			umount -l "$m" || true
		fi
	done
	[[ -n "$MNT" ]] || return 0
	while read -r dev back; do
		[[ "$back" == "$MNT/"* ]] || continue
		losetup -d "$dev" 2>/dev/null || log "losetup -d $dev failed (it is set to detach itself when free)"
	done < <(losetup -l -n -O NAME,BACK-FILE 2>/dev/null)
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
	thaw_volumes
	stop_child
	thaw_volumes # the tests may have frozen one since
	stop_strays
	stop_server PG_PID INT postgres
	stop_server MY_PID TERM mariadbd
	stop_server BPG_PID INT postgres
	stop_server BMY_PID TERM mariadbd
	stop_strays
	unmount_volumes
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
	command -v mkfs.xfs >/dev/null || pkgs+=(xfsprogs)
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
modprobe xfs 2>/dev/null || true
grep -qw xfs /proc/filesystems || die "the kernel has no xfs"
command -v fsfreeze >/dev/null || die "fsfreeze (util-linux) not found"

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

# The block volumes: XFS on loop devices over sparse files on the btrfs
# filesystem, which can copy those files by reflink (the tests' volume
# snapshots). Mounted at $TMP/vol/NAME; the volume snapshots go to $MNT/vols.
mkdir "$MNT/vols" "$TMP/vol"
for v in "${BLOCK_VOLS[@]}"; do
	truncate -s "$BLOCK_SIZE" "$MNT/vols/$v.img"
	mkfs.xfs -q "$MNT/vols/$v.img"
	dev=$(losetup --find --show "$MNT/vols/$v.img")
	mkdir "$TMP/vol/$v"
	mount -t xfs "$dev" "$TMP/vol/$v"
done
chown mysql:mysql "$TMP/vol/my-data" "$TMP/vol/my-log"
chown postgres:postgres "$TMP/vol/pg-data" "$TMP/vol/pg-wal"
chmod 700 "$TMP/vol/my-data" "$TMP/vol/my-log" "$TMP/vol/pg-data" "$TMP/vol/pg-wal"
mkdir -p "$TMP/run/bmy" "$TMP/run/bpg"
chown mysql:mysql "$TMP/run/bmy"
chown postgres:postgres "$TMP/run/bpg"
log "XFS volumes ${BLOCK_VOLS[*]} mounted under $TMP/vol"

# ---------------------------------------------------------------------------
# Servers.


# The MariaDB options of the primary, which the tests reuse for the servers
# they start on snapshot copies (with their own datadir, log dir and port).
MY_OPTS=(
	--innodb-buffer-pool-size=128M --innodb-log-file-size=96M
	--performance-schema=OFF --skip-log-bin --skip-name-resolve
	--max-connections=100
)

# start_mariadb PIDVAR PORTVAR DATADIR LOGDIR RUNDIR installs a MariaDB in
# DATADIR (InnoDB redo log in LOGDIR) and starts it with its socket, pid file
# and log in RUNDIR, its pid in PIDVAR and its port in PORTVAR, and adds the
# admin and lock users.
start_mariadb() {
	local -n pid_ref=$1 port_ref=$2
	local data=$3 logdir=$4 run=$5
	"$MY_INSTALL_DB" --no-defaults --user=mysql --datadir="$data" \
		--innodb-log-group-home-dir="$logdir" "${MY_OPTS[@]}" \
		--auth-root-authentication-method=socket --skip-test-db >"$run/install-db.log" 2>&1 ||
		{ show_log "$run/install-db.log"; die "$MY_INSTALL_DB failed"; }
	local tries
	for ((tries = 1; tries <= 5; tries++)); do
		port_ref=$(free_port 53406)
		set -m # own process group: a Ctrl-C reaches only this script, whose trap stops it
		"$MARIADBD" --no-defaults --user=mysql --datadir="$data" \
			--innodb-log-group-home-dir="$logdir" "${MY_OPTS[@]}" \
			--socket="$run/mysqld.sock" --port="$port_ref" --bind-address=127.0.0.1 \
			--pid-file="$run/mysqld.pid" --log-error="$run/server.log" \
			</dev/null >>"$run/server.log" 2>&1 &
		pid_ref=$!
		set +m
		if await_ready "$pid_ref" mariadb_ready "$MY_ADMIN" "$run/mysqld.sock" "$port_ref"; then
			"$MY_CLIENT" --no-defaults --socket="$run/mysqld.sock" -u root <<-EOF
				CREATE USER '$MY_ADMIN_USER'@'127.0.0.1' IDENTIFIED BY '$MY_ADMIN_PASS';
				GRANT ALL PRIVILEGES ON *.* TO '$MY_ADMIN_USER'@'127.0.0.1';
				CREATE USER '$MY_LOCK_USER'@'127.0.0.1' IDENTIFIED BY '$MY_LOCK_PASS';
				GRANT RELOAD ON *.* TO '$MY_LOCK_USER'@'127.0.0.1';
			EOF
			return 0
		fi
		alive "$pid_ref" || ! addr_in_use "$run/server.log" || {
			wait "$pid_ref" 2>/dev/null || true
			pid_ref=""
			continue
		}
		break
	done
	show_log "$run/server.log"
	die "mariadbd did not come up"
}

# start_postgres PIDVAR PORTVAR DIR WALDIR RUNDIR MAXWAL makes a cluster in
# DIR/data with its WAL in WALDIR/wal and starts it (max_wal_size MAXWAL),
# its socket and log in RUNDIR, its pid in PIDVAR and its port in PORTVAR,
# and adds the checkpoint role.
start_postgres() {
	local -n pid_ref=$1 port_ref=$2
	local dir=$3 waldir=$4 run=$5 maxwal=$6
	printf '%s\n' "$PG_ADMIN_PASS" >"$run/pwfile"
	chown postgres "$run/pwfile"
	runuser -u postgres -- "$PG_BIN/initdb" -D "$dir/data" --waldir="$waldir/wal" \
		-U "$PG_ADMIN_USER" --pwfile="$run/pwfile" --auth-local=trust --auth-host=scram-sha-256 \
		-E UTF8 --locale=C >"$run/initdb.log" 2>&1 ||
		{ show_log "$run/initdb.log"; die "initdb failed"; }
	rm -f "$run/pwfile"
	local tries
	for ((tries = 1; tries <= 5; tries++)); do
		port_ref=$(free_port 55532)
		# Defaults where they matter to a restore (fsync, full_page_writes,
		# checkpoint_timeout); small where they do not.
		cat >"$dir/data/postgresql.auto.conf" <<-EOF
			listen_addresses = '127.0.0.1'
			port = $port_ref
			unix_socket_directories = '$run'
			max_connections = 30
			shared_buffers = 128MB
			max_wal_size = $maxwal
		EOF
		chown postgres:postgres "$dir/data/postgresql.auto.conf"
		set -m
		setpriv --reuid=postgres --regid=postgres --init-groups -- \
			"$PG_BIN/postgres" -D "$dir/data" </dev/null >>"$run/server.log" 2>&1 &
		pid_ref=$!
		set +m
		if await_ready "$pid_ref" "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$port_ref" -t 1; then
			runuser -u postgres -- "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$run" -p "$port_ref" \
				-U "$PG_ADMIN_USER" -d postgres >/dev/null <<-EOF
				CREATE ROLE $PG_CHKPT_USER LOGIN PASSWORD '$PG_CHKPT_PASS';
				GRANT pg_checkpoint, pg_read_all_settings TO $PG_CHKPT_USER;
			EOF
			return 0
		fi
		alive "$pid_ref" || ! addr_in_use "$run/server.log" || {
			wait "$pid_ref" 2>/dev/null || true
			pid_ref=""
			continue
		}
		break
	done
	show_log "$run/server.log"
	die "postgres did not come up"
}

start_mariadb MY_PID MY_PORT "$MNT/my-data" "$MNT/my-log" "$TMP/run/my"
start_postgres PG_PID PG_PORT "$MNT/pg-data" "$MNT/pg-wal" "$TMP/run/pg" 1GB
# On the XFS volumes: the datadir is the volume's root; a smaller
# max_wal_size keeps the WAL well inside its volume.
start_mariadb BMY_PID BMY_PORT "$TMP/vol/my-data" "$TMP/vol/my-log" "$TMP/run/bmy"
start_postgres BPG_PID BPG_PORT "$TMP/vol/pg-data" "$TMP/vol/pg-wal" "$TMP/run/bpg" 256MB
log "set up in $(elapsed "$t_start")s: mariadb on 127.0.0.1:$MY_PORT and :$BMY_PORT (XFS), postgres on 127.0.0.1:$PG_PORT and :$BPG_PORT (XFS)"

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
export SNAPHOOKS_E2E_BLOCK_IMAGES=$MNT/vols
export SNAPHOOKS_E2E_BLOCK_MY_DATA=$TMP/vol/my-data SNAPHOOKS_E2E_BLOCK_MY_LOG=$TMP/vol/my-log
export SNAPHOOKS_E2E_BLOCK_PG_DATA=$TMP/vol/pg-data SNAPHOOKS_E2E_BLOCK_PG_WAL=$TMP/vol/pg-wal
export SNAPHOOKS_E2E_BLOCK_MY_ADMIN_DSN="$MY_ADMIN_USER:$MY_ADMIN_PASS@tcp(127.0.0.1:$BMY_PORT)/"
export SNAPHOOKS_E2E_BLOCK_MY_LOCK_DSN="$MY_LOCK_USER:$MY_LOCK_PASS@tcp(127.0.0.1:$BMY_PORT)/"
export SNAPHOOKS_E2E_BLOCK_PG_ADMIN_DSN="postgres://$PG_ADMIN_USER:$PG_ADMIN_PASS@127.0.0.1:$BPG_PORT/postgres?sslmode=disable"
export SNAPHOOKS_E2E_BLOCK_PG_CHKPT_DSN="postgres://$PG_CHKPT_USER:$PG_CHKPT_PASS@127.0.0.1:$BPG_PORT/postgres?sslmode=disable"
export SNAPHOOKS_E2E_BLOCK_TRIES=${SNAPHOOKS_E2E_BLOCK_TRIES:-2}
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

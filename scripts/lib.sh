# scripts/lib.sh — shell functions that scripts/test.sh and scripts/e2e.sh
# share: logging, waiting for and stopping processes and process groups,
# finding the server binaries, free ports. Sourced, not run. The scripts set
# CHILD_PGID (see run_child) themselves.

# alive tells whether process $1 exists and is not a zombie: kill -0 also
# succeeds for a zombie (our child until we wait for it; an orphan until PID 1,
# which on these machines is slow to reap, gets to it).
alive() {
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	stat=${stat##*) }
	[[ "${stat%% *}" != Z ]]
}

# group_alive tells whether process group $1 has a member that is not a zombie.
group_alive() {
	local f stat fields
	for f in /proc/[0-9]*/stat; do
		stat=$(cat "$f" 2>/dev/null) || continue
		read -r -a fields <<<"${stat##*) }"
		# fields: state ppid pgrp ...
		[[ "${fields[2]}" == "$1" && "${fields[0]}" != Z ]] && return 0
	done
	return 1
}

# await_exit_or_kill waits up to $3 tenths of a second for process $1 (named
# $2 in the log) to exit, then kills it.
await_exit_or_kill() {
	local i
	for ((i = 0; i < $3; i++)); do
		alive "$1" || return 0
		sleep 0.1
	done
	if alive "$1"; then
		log "$2 (pid $1) did not stop; killing it"
		kill -KILL "$1" 2>/dev/null || true
	fi
}

# stop_child ends the running go test (its own process group), if any.
stop_child() {
	[[ -n "$CHILD_PGID" ]] || return 0
	kill -TERM -- "-$CHILD_PGID" 2>/dev/null || true
	local i
	for ((i = 0; i < 100; i++)); do
		group_alive "$CHILD_PGID" || break
		sleep 0.1
	done
	kill -KILL -- "-$CHILD_PGID" 2>/dev/null || true
	wait "$CHILD_PGID" 2>/dev/null || true
	CHILD_PGID=""
}

# run_child runs "$@" in its own process group and waits for it, so that an
# interrupt or TERM reaches the trap at once and cleanup can end the whole group.
run_child() {
	set -m
	"$@" </dev/null &
	CHILD_PGID=$!
	set +m
	local rc=0
	wait "$CHILD_PGID" || rc=$?
	CHILD_PGID=""
	return "$rc"
}

find_pg_bin() {
	local d
	d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)
	if [[ -n "$d" && -x "$d/initdb" && -x "$d/pg_ctl" && -x "$d/postgres" ]]; then
		printf '%s\n' "$d"
	fi
}

# first_cmd prints the path of the first of its arguments that is an executable
# (a name is looked up in PATH, /usr/sbin and /usr/bin).
first_cmd() {
	local c
	for c in "$@"; do
		if [[ "$c" == /* ]]; then
			[[ -x "$c" ]] && { printf '%s\n' "$c"; return 0; }
		else
			PATH="$PATH:/usr/sbin:/usr/bin:/sbin:/bin" command -v "$c" 2>/dev/null && return 0
		fi
	done
	return 0
}

now() { date +%s.%N; }

elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# port_busy tells whether something accepts connections on 127.0.0.1:$1.
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# free_port prints the first port from $1 on that nobody listens on.
free_port() {
	local p=$1 i
	for ((i = 0; i < 200; i++, p++)); do
		port_busy "$p" || { printf '%s\n' "$p"; return 0; }
	done
	die "no free port in $1..$((p - 1))"
}

show_log() {
	printf -- '----- %s -----\n' "$1" >&2
	tail -n 60 "$1" >&2 2>/dev/null || true
	printf -- '----- end of %s -----\n' "$1" >&2
}

log() { printf '==> %s\n' "$*" >&2; }

addr_in_use() { grep -qiE 'address already in use|could not create any TCP/IP sockets|Bind on TCP/IP port' "$1" 2>/dev/null; }

# await_ready waits up to READY_TIMEOUT seconds for the server process $1 to
# accept connections, which the command "${@:2}" checks. It fails at once if
# the process is gone, and when the time is up.
await_ready() {
	local pid=$1 i
	shift
	for ((i = 0; i < READY_TIMEOUT * 10; i++)); do
		alive "$pid" || return 1
		"$@" && return 0
		sleep 0.1
	done
	return 1
}

# mariadb_ready ADMIN SOCKET PORT tells whether MariaDB answers a ping on
# SOCKET and listens on 127.0.0.1:PORT.
mariadb_ready() {
	"$1" --no-defaults --socket="$2" -u root --connect-timeout=1 ping >/dev/null 2>&1 && port_busy "$3"
}

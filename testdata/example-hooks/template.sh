#!/usr/bin/env bash
# template.sh - a starting point for a snaphook (or zrepl) command hook.
#
# Copy it, keep the structure, replace the example actions with real work.
# A command hook runs without arguments and without a shell around it; what it
# needs to know is in its environment (the same variables as in zrepl):
#
#   ZREPL_HOOKTYPE  pre_snapshot before the snapshot, post_snapshot after it
#                   (pre_testing / post_testing when a tool tests its hooks)
#   ZREPL_FS        the dataset, e.g. tank/db
#   ZREPL_SNAPNAME  the snapshot name, without the "tank/db@"
#   ZREPL_DRYRUN    "true" in a dry run (snaphook run --dry-run), else empty:
#                   check what you can, change nothing
#   ZREPL_TIMEOUT   whole seconds before the hook is stopped (SIGTERM to its
#                   process group, SIGKILL a few seconds later)
#
# Exit 0 on success. Any other exit status fails the step; for a hook with
# err_is_fatal: true, a failed pre_snapshot means no snapshot is taken. Both
# stdout and stderr go to the log, one record per line.
set -euo pipefail

# run prints a command and runs it, or only prints it in a dry run.
run() {
	if [[ "${ZREPL_DRYRUN:-}" == "true" ]]; then
		echo "dry run: would run: $*"
	else
		echo "run: $*"
		"$@"
	fi
}

snapshot="${ZREPL_FS:?not set}@${ZREPL_SNAPNAME:?not set}"

case "${ZREPL_HOOKTYPE:-}" in
pre_snapshot)
	echo "before $snapshot"
	# Example action: flush dirty buffers to disk. Harmless, and a real
	# hook might do the same before an application-level flush.
	run sync
	;;
post_snapshot)
	echo "after $snapshot"
	# Example action: nothing to undo; a real hook might notify someone.
	run true
	;;
pre_testing | post_testing)
	echo "test run ($ZREPL_HOOKTYPE) for $snapshot: nothing to do"
	;;
*)
	echo "unknown ZREPL_HOOKTYPE '${ZREPL_HOOKTYPE:-}'" >&2
	exit 2
	;;
esac

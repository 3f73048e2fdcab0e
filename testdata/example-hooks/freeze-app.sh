#!/usr/bin/env bash
# freeze-app.sh - pretends to freeze an application before the snapshot and
# to thaw it after, by creating and removing a lock file.
#
# A real hook would do the same with e.g. `fsfreeze --freeze /srv/app` and
# `fsfreeze --unfreeze /srv/app`, or by asking the application to pause.
# Configure it with err_is_fatal: true (no snapshot of an application that
# could not be frozen) and post_on_pre_error: true (thaw even when freezing
# failed halfway); snaphook runs the post_snapshot edge even when the snapshot
# command fails or snaphook is interrupted.
#
# The lock file is $SNAPHOOK_EXAMPLE_DIR/<dataset with / as _>.frozen, where
# SNAPHOOK_EXAMPLE_DIR defaults to ${TMPDIR:-/tmp}/snaphook-example.
# To watch a failure unwind, set SNAPHOOK_EXAMPLE_FAIL=pre_snapshot (or
# post_snapshot) in the environment of snaphook: hooks inherit it.
set -euo pipefail

dir="${SNAPHOOK_EXAMPLE_DIR:-${TMPDIR:-/tmp}/snaphook-example}"
lock="$dir/${ZREPL_FS//\//_}.frozen"

if [[ "${SNAPHOOK_EXAMPLE_FAIL:-}" == "${ZREPL_HOOKTYPE:-}" ]]; then
	echo "failing on purpose (SNAPHOOK_EXAMPLE_FAIL=$SNAPHOOK_EXAMPLE_FAIL)" >&2
	exit 1
fi

case "${ZREPL_HOOKTYPE:-}" in
pre_snapshot)
	if [[ "${ZREPL_DRYRUN:-}" == "true" ]]; then
		echo "dry run: would freeze the app for $ZREPL_FS ($lock)"
		exit 0
	fi
	mkdir -p "$dir"
	echo "$ZREPL_FS@$ZREPL_SNAPNAME" >"$lock"
	echo "froze the app: $lock"
	;;
post_snapshot)
	if [[ "${ZREPL_DRYRUN:-}" == "true" ]]; then
		echo "dry run: would thaw the app for $ZREPL_FS ($lock)"
		exit 0
	fi
	rm -f "$lock"
	echo "thawed the app: removed $lock"
	;;
*)
	echo "nothing to do for ZREPL_HOOKTYPE '${ZREPL_HOOKTYPE:-}'"
	;;
esac

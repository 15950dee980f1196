#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Run the whole test command N times in a row while one CPU-bound process
# keeps one core busy, as a busy CI runner would: a test that passes only on
# an idle machine fails here. Prints each run's time and result, then
# "soak: P/N runs passed"; exits non-zero if any run failed. Every run's
# output is kept (paths printed) so a rare failure can be read afterwards.
#
# Usage, as root: scripts/soak-tests.sh N [args for scripts/test.sh, e.g. -L unit]
set -uo pipefail

die() { echo "soak: $*" >&2; exit 1; }

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${SW_BUILD_DIR:-$ROOT/build} # where scripts/test.sh builds
N=${1:-}
[[ "$N" =~ ^[1-9][0-9]*$ ]] || die "N must be a positive integer, not '$N' (usage: scripts/soak-tests.sh N [test.sh args])"
shift
[ "$(id -u)" -eq 0 ] || die "must run as root like scripts/test.sh (run it from a root shell, or: sudo $0 $N)"

LOGDIR=$(mktemp -d /tmp/stallwatch-soak.XXXXXX) || die "cannot create a log directory under /tmp"
hog=
run=
stop_hog() {
	# only the process this script started, by its pid
	if [ -n "$hog" ]; then
		kill "$hog" 2>/dev/null
		wait "$hog" 2>/dev/null
		hog=
	fi
}
trap 'stop_hog' EXIT
# A signal stops the hog and the run in progress at once (the run is waited
# for in the background: bash runs traps only between foreground commands).
trap 'stop_hog; [ -z "$run" ] || kill -TERM -- "-$run" 2>/dev/null; exit 130' INT TERM HUP

# One core busy for the whole soak: a shell loop is CPU-bound and needs
# nothing installed.
(while :; do :; done) &
hog=$!
echo "soak: $N runs of scripts/test.sh $*, CPU hog pid $hog, logs in $LOGDIR"

passed=0
for i in $(seq 1 "$N"); do
	log=$LOGDIR/run-$i.log
	t0=$(date +%s)
	rc=0
	# its own process group, so that a signal reaches ctest and the tests too
	setsid "$ROOT/scripts/test.sh" "$@" >"$log" 2>&1 &
	run=$!
	wait "$run" || rc=$?
	run=
	dt=$(($(date +%s) - t0))
	# ctest's full output (every test's, not only the failures'): the block
	# tables that tests/root/residuals.py reads
	cp "$BUILD/Testing/Temporary/LastTest.log" "$LOGDIR/run-$i.ctest.log" 2>/dev/null
	last=$(grep -E '^test\.sh: [0-9]+ passed, [0-9]+ failed' "$log" | tail -n1)
	if [ "$rc" -eq 0 ]; then
		passed=$((passed + 1))
		echo "soak: run $i/$N passed in $dt s (${last:-no summary line})"
	else
		echo "soak: run $i/$N FAILED (exit $rc) in $dt s (${last:-no summary line}); log: $log"
	fi
done
stop_hog

# agent vs ground truth over every block of every run: the figures behind
# swtest.TOL_NS
if ls "$LOGDIR"/run-*.ctest.log >/dev/null 2>&1; then
	echo "soak: residuals of the agent against the workloads' ground truth:"
	/usr/bin/python3 "$ROOT/tests/root/residuals.py" "$LOGDIR"/run-*.ctest.log | sed 's/^/soak:   /'
fi
echo "soak: $passed/$N runs passed (logs: $LOGDIR)"
[ "$passed" -eq "$N" ]

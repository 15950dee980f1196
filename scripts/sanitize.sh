#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Build with -fsanitize=address,undefined (clang) in its own directory and run
# the unit tier and the collector's end-to-end root tests under it. Fails on
# any sanitizer report, wherever it happened: in a Criterion test (each test
# is a forked child), or in a collector or agent the python tests started and
# whose stderr they may never read. That is why reports go to files
# (log_path) and this script, not the tests, decides: a report file means
# failure.
#
# Usage: scripts/sanitize.sh [DIR]   (default: ${SW_BUILD_DIR:-build}/asan)
# Needs root for the root tests (they attach the agent's BPF programs).
set -uo pipefail

die() { echo "sanitize: $*" >&2; exit 1; }

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=${1:-${SW_BUILD_DIR:-$ROOT/build}/asan}
JOBS=${SW_JOBS:-2}
LOGS=$DIR/sanitizer-logs
# The root tests run under the sanitizer: tests/root/test_collector_ingest.py
# drives the collector with crafted frames, test_e2e.py runs agent +
# collector + node, test_utf8.py feeds both names cut inside a character,
# test_hostile_frames.py sends the amplification and worst accepted frames,
# test_auth.py wrong tokens and a stolen agent id (issue 9).
# They find the binaries through SW_BUILD (set by ctest).
TESTS='^(unit\..*|root\.test_collector_ingest|root\.test_e2e|root\.test_utf8|root\.test_hostile_frames|root\.test_auth)$'
ROOT_TESTS=(root.test_collector_ingest root.test_e2e root.test_utf8 root.test_hostile_frames
	root.test_auth)

command -v clang >/dev/null || die "clang not found: run scripts/install-deps.sh"
# A fresh configure when the directory holds another compiler: CMake would
# silently keep the cached one.
if [ -f "$DIR/CMakeCache.txt" ] && ! grep -q '^CMAKE_C_COMPILER:.*clang' "$DIR/CMakeCache.txt"; then
	rm -rf "$DIR"
fi
t0=$(date +%s)
CC=clang cmake -S "$ROOT" -B "$DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSW_WERROR=ON \
	-DSW_SANITIZE=address,undefined >/dev/null || die "cmake configure of $DIR failed"
cmake --build "$DIR" -j"$JOBS" >"$DIR.build.log" 2>&1 ||
	die "build of $DIR failed: $(grep -m1 -E 'error' "$DIR.build.log") (log: $DIR.build.log)"
echo "sanitize: built $DIR ($(($(date +%s) - t0)) s)"

# A renamed root test must not make this stage pass by running less.
listed=$(ctest --test-dir "$DIR" -N -R "$TESTS")
for t in "${ROOT_TESTS[@]}"; do
	grep -q ": $t\$" <<<"$listed" ||
		die "test $t is not registered in $DIR: update TESTS in scripts/sanitize.sh"
done

rm -rf "$LOGS" && mkdir -p "$LOGS" || die "cannot create $LOGS"
# halt/abort: the first report kills the process (Criterion reports the
# test as crashed, a collector dies and its test fails too); the report
# itself lands in $LOGS/<kind>.<pid>.
export ASAN_OPTIONS="halt_on_error=1:abort_on_error=1:detect_leaks=1:log_path=$LOGS/asan"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$LOGS/ubsan"
# Root tests fail, never skip, when they cannot attach.
export SW_CI=1

t1=$(date +%s)
rc=0
out=$DIR/ctest.log
# The unit tier two at a time (no timing in it), then the root tests one
# at a time (they measure real blocks).
: >"$out"
ctest --test-dir "$DIR" -R "$TESTS" -L unit -j"$JOBS" --output-on-failure --no-tests=error 2>&1 |
	tee -a "$out" || rc=$?
ctest --test-dir "$DIR" -R "$TESTS" -L root --output-on-failure --no-tests=error 2>&1 |
	tee -a "$out" || rc=$?
echo "sanitize: tests ran in $(($(date +%s) - t1)) s"
# ctest passes a skipped test: here it did not run under the sanitizers.
if grep -q '^The following tests did not run:' "$out"; then
	die "FAILED: tests skipped under the sanitizers: $(sed -n '/did not run:/,/^$/p' "$out" | grep -oE '[a-z]+\.[a-z_]+' | tr '\n' ' ')"
fi

reports=$(find "$LOGS" -type f | sort)
if [ -n "$reports" ]; then
	for f in $reports; do
		echo "---- $f"
		head -n 40 "$f"
	done
	die "FAILED: $(wc -l <<<"$reports") sanitizer report(s) in $LOGS (first: $(head -n1 <<<"$reports"))"
fi
[ "$rc" -eq 0 ] || die "FAILED: tests failed under the sanitizers (ctest exit $rc), no report file: see the ctest output above"
echo "sanitize: OK, no sanitizer report ($(($(date +%s) - t0)) s)"

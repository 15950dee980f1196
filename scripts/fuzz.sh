#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Build the libFuzzer target of the collector's ingest path
# (tests/fuzz/fuzz_collector.c: frame decoder -> store -> exports) with
# clang, ASan and UBSan, and run it for a bounded time from the committed
# seeds (tests/fuzz/corpus/). Fails on any crash, sanitizer report, leak or
# timeout; the input that caused it is kept and named.
#
# Usage: scripts/fuzz.sh [SECONDS] [DIR]   (default: 60 s, ${SW_BUILD_DIR:-build}/fuzz)
# New inputs found accumulate in DIR/corpus across runs (not committed);
# crashes go to DIR/artifacts/.
set -uo pipefail

die() { echo "fuzz: $*" >&2; exit 1; }

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SECONDS_=${1:-60}
DIR=${2:-${SW_BUILD_DIR:-$ROOT/build}/fuzz}
JOBS=${SW_JOBS:-2}
[[ "$SECONDS_" =~ ^[1-9][0-9]*$ ]] || die "SECONDS must be a positive integer, not '$SECONDS_' (usage: scripts/fuzz.sh [SECONDS] [DIR])"
command -v clang >/dev/null || die "clang not found: run scripts/install-deps.sh"

if [ -f "$DIR/CMakeCache.txt" ] && ! grep -q '^CMAKE_C_COMPILER:.*clang' "$DIR/CMakeCache.txt"; then
	rm -rf "$DIR"
fi
t0=$(date +%s)
CC=clang cmake -S "$ROOT" -B "$DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSW_WERROR=ON \
	-DSW_FUZZ=ON -DSW_SANITIZE=address,undefined >/dev/null ||
	die "cmake configure of $DIR failed (libFuzzer needs clang and libclang-rt-14-dev: run scripts/install-deps.sh)"
cmake --build "$DIR" -j"$JOBS" --target fuzz_collector gen_corpus >"$DIR.build.log" 2>&1 ||
	die "build of fuzz_collector failed: $(grep -m1 -E 'error' "$DIR.build.log") (log: $DIR.build.log)"
echo "fuzz: built $DIR/tests/fuzz_collector ($(($(date +%s) - t0)) s)"

mkdir -p "$DIR/corpus" "$DIR/artifacts" "$DIR/seeds-large" || die "cannot create $DIR/corpus"
# Seeds too big to commit (the distinct-incidents frame at the frame limit,
# the biggest frame the decode budget accepts), made here each run.
"$DIR/tests/gen_corpus" --large "$DIR/seeds-large" || die "gen_corpus --large $DIR/seeds-large failed"
log=$DIR/fuzz.log
# Leaks count as findings (libFuzzer checks them per input with
# -detect_leaks=1); the per-input timeout is generous because this machine
# is shared and the sanitizers slow every input down.
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
rc=0
# -max_len: a whole frame at the limit (header + SW_FRAME_MAX_PAYLOAD) and
# the two control bytes. libFuzzer's own guess is the largest seed, capped
# at 1 MiB, which would cut the distinct-incidents seed short.
MAX_LEN=$((8 + (4 << 20) + 2))
"$DIR/tests/fuzz_collector" -max_total_time="$SECONDS_" -timeout=25 -rss_limit_mb=2048 \
	-max_len="$MAX_LEN" -print_final_stats=1 -detect_leaks=1 \
	-dict="$ROOT/tests/fuzz/collector.dict" -artifact_prefix="$DIR/artifacts/" \
	"$DIR/corpus" "$ROOT/tests/fuzz/corpus" "$DIR/seeds-large" >"$log" 2>&1 || rc=$?

execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n1)
cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+' "$log" | tail -n1)
if [ "$rc" -ne 0 ]; then
	grep -E 'ERROR: |runtime error|SUMMARY' "$log" | head -n 5
	art=$(grep -oE "Test unit written to [^ ]+" "$log" | tail -n1 | sed 's/Test unit written to //')
	die "FAILED after ${execs:-?} executions: reproduce with $DIR/tests/fuzz_collector ${art:-(no artifact, see $log)} (log: $log)"
fi
[ -n "$execs" ] || die "FAILED: no final stats in $log (exit 0): did libFuzzer run?"
echo "fuzz: $execs executions in $SECONDS_ s (${rate:-?}/s; $cov), no crash (log: $log)"

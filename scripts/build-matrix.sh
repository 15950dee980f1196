#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Build every configuration we promise to build warning-free: Release,
# RelWithDebInfo and Debug, each with GCC and with Clang, with
# -DSW_WERROR=ON. The optimisation level changes which warnings fire (GCC's
# -Wstringop-* and -Wmaybe-uninitialized only look at -O2 code), so one
# configuration passing says little about the others.
#
# Usage: scripts/build-matrix.sh [DIR]   (default: ${SW_BUILD_DIR:-build}/matrix)
# Each configuration gets DIR/<cc>-<type>/ and its log DIR/<cc>-<type>.log.
# SW_MATRIX_SKIP="gcc-RelWithDebInfo ..." leaves configurations out, said in
# the result line: scripts/test.sh skips the one its own build just made
# with -Werror. Exit 0 when every configuration built without a warning;
# otherwise one line per failed configuration and exit 1.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=${1:-${SW_BUILD_DIR:-$ROOT/build}/matrix}
JOBS=${SW_JOBS:-2}
mkdir -p "$DIR" || { echo "build-matrix: cannot create $DIR: check permissions or pass another DIR" >&2; exit 1; }

failed=0
skipped=0
total=0
start=$(date +%s)
for cc in gcc clang; do
	command -v "$cc" >/dev/null || {
		echo "build-matrix: FAILED $cc: compiler not found (run scripts/install-deps.sh)" >&2
		failed=$((failed + 1))
		total=$((total + 1))
		continue
	}
	for type in Release RelWithDebInfo Debug; do
		cfg=$cc-$type
		case " ${SW_MATRIX_SKIP:-} " in
		*" $cfg "*)
			echo "build-matrix: skipped $cfg (SW_MATRIX_SKIP: built elsewhere)"
			skipped=$((skipped + 1))
			continue
			;;
		esac
		total=$((total + 1))
		b=$DIR/$cfg
		log=$DIR/$cfg.log
		t0=$(date +%s)
		# A fresh directory: a cached compiler or stale object would hide
		# what a packager's first build sees.
		rm -rf "$b"
		if ! cmake -S "$ROOT" -B "$b" -DCMAKE_C_COMPILER="$cc" -DCMAKE_BUILD_TYPE="$type" \
			-DSW_WERROR=ON >"$log" 2>&1; then
			echo "build-matrix: FAILED $cfg: cmake configure failed (log: $log)" >&2
			failed=$((failed + 1))
			continue
		fi
		if ! cmake --build "$b" -j"$JOBS" >>"$log" 2>&1; then
			first=$(grep -m1 -E '(error|warning):' "$log" || true)
			echo "build-matrix: FAILED $cfg: ${first:-build failed} (log: $log)" >&2
			failed=$((failed + 1))
			continue
		fi
		# -Werror does not reach everything (the generated protobuf code is
		# exempt, linker and cmake warnings are not compiler errors): any
		# warning left in the log fails the configuration too.
		first=$(grep -m1 -E 'warning[:s]|Warning' "$log" || true)
		if [ -n "$first" ]; then
			echo "build-matrix: FAILED $cfg: warning: $first (log: $log)" >&2
			failed=$((failed + 1))
			continue
		fi
		echo "build-matrix: ok $cfg ($(($(date +%s) - t0)) s)"
		# The objects are not needed again; the log is.
		rm -rf "$b"
	done
done

echo "build-matrix: $((total - failed))/$total configurations warning-free$([ "$skipped" -eq 0 ] || echo ", $skipped skipped") ($(($(date +%s) - start)) s)"
[ "$failed" -eq 0 ]

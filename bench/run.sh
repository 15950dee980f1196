#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Overhead benchmark, one run: installs deps, builds, then measures every
# figure with and without the agent (alternating, several repetitions,
# medians) and writes bench/out/results.md.
# Usage: sudo ./bench/run.sh [--reps N] [--wrk-seconds S] [--stages http,loop,incident,bystander,bpfstats,switch,uprobe,gil]
#        sudo ./bench/run.sh --stages ingest   # the collector: samples/s/core, RSS, scrape time
set -euo pipefail

die() { echo "bench: $*" >&2; exit 1; }

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${SW_BUILD_DIR:-$ROOT/build}
cd "$ROOT"
[ "$(id -u)" -eq 0 ] || die "must run as root: the agent loads BPF programs (run it from a root shell, or: sudo $0)"

"$ROOT/scripts/install-deps.sh" >&2 || die "dependency install failed"
if [ -z "${SW_SKIP_BUILD:-}" ]; then
	cmake -S "$ROOT" -B "$BUILD" >/dev/null || die "cmake configure failed"
	cmake --build "$BUILD" -j2 --target stallwatch-agent gil_uprobe stallwatch-collector ingest_load >/dev/null ||
		die "agent, collector or bench tool build failed"
fi
mkdir -p "$ROOT/bench/out"
# Debian's python3 (not a pyenv one on PATH): the harness uses only the stdlib,
# the Python workloads need Debian's python3-aiohttp.
exec /usr/bin/python3 "$ROOT/bench/bench.py" --agent "$BUILD/stallwatch-agent" "$@"

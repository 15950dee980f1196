#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# The one demo command, as root: ./scripts/demo.sh [--keep]
# Installs deps, builds, starts the collector, a Node HTTP service and a
# Python FastAPI (asyncio) service, attaches ONE agent to both, blocks their
# loops with a few requests, and shows the agent's incident lines as they
# happen, then the collector's /metrics and /api/incidents.
# --keep: leave everything running until Ctrl-C (e.g. to point Grafana at it).
# Ports: SW_COLLECTOR_LISTEN (default 127.0.0.1:7470), SW_COLLECTOR_HTTP
# (default 127.0.0.1:7471).
set -euo pipefail

die() { echo "demo: $*" >&2; exit 1; }
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${SW_BUILD_DIR:-$ROOT/build}
LISTEN=${SW_COLLECTOR_LISTEN:-127.0.0.1:7470}
HTTP=${SW_COLLECTOR_HTTP:-127.0.0.1:7471}
PY=/usr/bin/python3.11 # Debian's: python3-fastapi/uvicorn are installed for it
KEEP=0
[ "${1:-}" = "--keep" ] && KEEP=1
cd "$ROOT"

[ "$(id -u)" -eq 0 ] || die "must run as root: the agent loads BPF programs (run it from a root shell, or: sudo $0)"

say "install dependencies"
"$ROOT/scripts/install-deps.sh"

say "build"
cmake -S "$ROOT" -B "$BUILD" >/dev/null || die "cmake configure failed"
cmake --build "$BUILD" -j2 --target stallwatch-agent stallwatch-collector ||
	die "build failed (see the compiler output above)"

WORK=$(mktemp -d /tmp/stallwatch-demo.XXXXXX)
PIDS=()
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	# agent first (SIGINT: it flushes its last batch), then the rest
	for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
		kill -INT "${PIDS[i]}" 2>/dev/null || true
	done
	for pid in "${PIDS[@]}"; do
		for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$pid" 2>/dev/null || true
	done
	echo
	echo "demo: stopped; logs are in $WORK"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_for FILE REGEX SECONDS WHAT: wait until a line of FILE matches
wait_for() {
	local i
	for ((i = 0; i < $3 * 10; i++)); do
		grep -qE "$2" "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	echo "demo: timed out waiting for $4; last lines of $1:" >&2
	tail -n 5 "$1" >&2 || true
	exit 1
}

# the agents' shared secret: nothing of a connection without it is applied
(umask 077; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$WORK/token")
say "start the collector ($LISTEN, HTTP on $HTTP): stallwatch-collector --token-file $WORK/token"
"$BUILD/stallwatch-collector" --listen "$LISTEN" --http "$HTTP" --token-file "$WORK/token" \
	>"$WORK/collector.log" 2>&1 &
PIDS+=($!)
for i in $(seq 50); do
	curl -fs "http://$HTTP/metrics" >/dev/null && break
	kill -0 "${PIDS[0]}" 2>/dev/null || { cat "$WORK/collector.log" >&2; die "collector exited (is $LISTEN or $HTTP in use?)"; }
	sleep 0.1
	[ "$i" -lt 50 ] || die "collector does not answer on http://$HTTP/metrics"
done

say "start a Node HTTP service and a Python FastAPI service"
node "$ROOT/tests/workloads/node_http.js" >"$WORK/node.log" 2>&1 &
PIDS+=($!)
"$PY" "$ROOT/tests/workloads/py_http.py" --app fastapi >"$WORK/python.log" 2>&1 &
PIDS+=($!)
wait_for "$WORK/node.log" '"event": ?"ready"' 20 "the Node service"
wait_for "$WORK/python.log" '"event": ?"ready"' 20 "the Python service"
field() { grep -m1 '"ready"' "$1" | sed -E "s/.*\"$2\": ?([0-9]+).*/\\1/"; }
NODE_PID=$(field "$WORK/node.log" pid)
NODE_PORT=$(field "$WORK/node.log" port)
PY_PID=$(field "$WORK/python.log" pid)
PY_PORT=$(field "$WORK/python.log" port)
echo "node   pid $NODE_PID  http://127.0.0.1:$NODE_PORT"
echo "python pid $PY_PID  http://127.0.0.1:$PY_PORT"

say "attach one agent to both: stallwatch-agent --pid $NODE_PID --pid $PY_PID --threshold-ms 50 --interval 2 --collector $LISTEN --token-file $WORK/token"
"$BUILD/stallwatch-agent" --pid "$NODE_PID" --pid "$PY_PID" --threshold-ms 50 --interval 2 \
	--collector "$LISTEN" --token-file "$WORK/token" >"$WORK/agent.log" 2>&1 &
PIDS+=($!)
AGENT_PID=$!
# the agent's own lines, live, while the demo drives requests
tail --pid="$AGENT_PID" -n +1 -f "$WORK/agent.log" 2>/dev/null | sed -u 's/^/  agent| /' &
PIDS+=($!)
wait_for "$WORK/agent.log" "attached to pid $NODE_PID" 30 "the agent to attach to node pid $NODE_PID"
wait_for "$WORK/agent.log" "attached to pid $PY_PID" 30 "the agent to attach to python pid $PY_PID"

get() { # get PORT PATH: one request and how long it took
	local t
	t=$(curl -fsS -o /dev/null -w '%{time_total}' "http://127.0.0.1:$1$2") || die "GET :$1$2 failed"
	awk -v p=":$1$2" -v t="$t" 'BEGIN { printf "  curl| GET %-30s %7.1f ms\n", p, t * 1000 }'
}

say "drive requests: healthy routes, then routes that block the loop"
for _ in 1 2 3; do get "$NODE_PORT" /; get "$PY_PORT" /; done
sleep 1
get "$NODE_PORT" "/block?ms=300"        # synchronous CPU spin in the request handler
sleep 1.5
get "$NODE_PORT" "/pbkdf2?iter=300000"  # crypto.pbkdf2Sync on the loop thread
sleep 1.5
get "$PY_PORT" "/block?ms=250"          # time.sleep inside async def
sleep 1.5
get "$PY_PORT" "/spin?ms=150"           # CPU-bound work inside async def
sleep 1.5
# a healthy request queued behind a blocked loop pays the whole block
get "$NODE_PORT" "/block?ms=400" &
blocker=$!
sleep 0.1
get "$NODE_PORT" /
wait "$blocker" || die "the blocking request failed"
# the agent streams every --interval seconds; let the last batch arrive
sleep 4

kill -0 "$AGENT_PID" 2>/dev/null || die "the agent exited; see $WORK/agent.log"

say "collector: GET http://$HTTP/metrics (stallwatch_ and nodejs_ lines; buckets and zero incident counters left out)"
curl -fsS "http://$HTTP/metrics" >"$WORK/metrics.txt" || die "GET /metrics failed"
# from a file, not a pipe into head: pipefail would turn head's early exit into an error
grep -E '^(stallwatch_|nodejs_)' "$WORK/metrics.txt" | grep -v '_bucket{' |
	grep -Ev '^stallwatch_eventloop_blocked_(seconds_)?total\{.*\} 0$' >"$WORK/metrics.shown" || true
sed -n '1,80p' "$WORK/metrics.shown"
echo "($(wc -l <"$WORK/metrics.shown") lines shown of $(wc -l <"$WORK/metrics.txt"); all of it: $WORK/metrics.txt)"

say "collector: GET http://$HTTP/api/incidents"
curl -fsS "http://$HTTP/api/incidents" >"$WORK/incidents.json" || die "GET /api/incidents failed"
"$PY" -m json.tool "$WORK/incidents.json" >"$WORK/incidents.pretty" || die "/api/incidents is not JSON; see $WORK/incidents.json"
sed -n '1,80p' "$WORK/incidents.pretty"
echo "(all of it: $WORK/incidents.pretty)"

if [ "$KEEP" -eq 1 ]; then
	say "running; Prometheus can scrape http://$HTTP/metrics; Ctrl-C to stop"
	echo "try: curl 'http://127.0.0.1:$NODE_PORT/block?ms=500'  or  curl 'http://127.0.0.1:$PY_PORT/block?ms=500'"
	wait "$AGENT_PID" || true
fi
say "done"

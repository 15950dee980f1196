#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# deploy/systemd/*.service through systemd-analyze verify (syntax, known
# directives, the ExecStart binary), with ExecStart pointed at the built
# binary, and the collector started with the unit's own arguments (on free
# ports) to show it accepts them. Usage: check_deploy.sh SOURCE_DIR BUILD_DIR
# Exit 77 (skip) without systemd-analyze, unless SW_CI=1.
set -eu
src=$1 build=$2
if ! command -v systemd-analyze >/dev/null 2>&1; then
	[ "${SW_CI:-0}" = 1 ] && { echo "check_deploy: systemd-analyze not found (apt-get install systemd)"; exit 1; }
	echo "SKIP: no systemd-analyze"; exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"; [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null || true' EXIT
rc=0
for unit in "$src"/deploy/systemd/*.service; do
	name=$(basename "$unit")
	sed "s|/usr/local/bin/|$build/|g" "$unit" >"$tmp/$name"
	if ! out=$(systemd-analyze verify "$tmp/$name" 2>&1) || [ -n "$out" ]; then
		echo "check_deploy: $name: ${out:-systemd-analyze verify failed}"
		rc=1
	fi
done
# The collector's arguments from its unit, loopback ports swapped for free ones
args=$(sed -n 's|^ExecStart=/usr/local/bin/stallwatch-collector ||p' "$src/deploy/systemd/stallwatch-collector.service")
args=$(echo "$args" | sed 's|--listen [^ ]*|--listen 127.0.0.1:0|; s|--http [^ ]*|--http 127.0.0.1:0|')
# %d is systemd's credentials directory (LoadCredential=): a token made here
mkdir -p "$tmp/cred" && head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$tmp/cred/token"
args=$(echo "$args" | sed "s|%d/|$tmp/cred/|g")
# shellcheck disable=SC2086
"$build/stallwatch-collector" $args 2>"$tmp/err" &
pid=$!
sleep 1
if ! kill -0 "$pid" 2>/dev/null; then
	echo "check_deploy: stallwatch-collector $args exited: $(cat "$tmp/err")"
	rc=1
fi
[ $rc -eq 0 ] && echo "check_deploy: OK"
exit $rc

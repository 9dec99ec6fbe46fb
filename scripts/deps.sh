#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
#
# Install the Debian 12 packages that building, testing and benchmarking
# vigil need. Idempotent and quiet: when everything is installed it prints
# nothing and touches no package list. Runs as root (no sudo).
#
#   scripts/deps.sh           everything: build, tests, benchmarks
#   scripts/deps.sh --build   only what `make` needs (deploy/Dockerfile uses it)
#
# To add a dependency, append it to BUILD_PACKAGES (needed by `make`) or
# PACKAGES (tests, benchmarks) below.
set -euo pipefail

BUILD_PACKAGES=(
	make
	gcc
	libc6-dev
	clang-14        # BPF compiler pinned by the Makefile (BPF_CLANG)
	libclang-rt-14-dev # libFuzzer and sanitizer runtimes for clang-14 (make fuzz)
	llvm-14         # llvm-strip, llvm-objdump for the BPF object
	libbpf-dev
	bpftool         # skeleton generation, vmlinux.h, map dumps
	libelf-dev
	zlib1g-dev
	pkg-config
	libsqlite3-dev  # the durable event log
	libmicrohttpd-dev # Prometheus metrics endpoint
	libcurl4-openssl-dev # webhook alert sink
	libnats-dev     # NATS JetStream export (user/daemon/export.c)
	libssl-dev      # libcrypto: an nkey seed's public key (user/daemon/natsauth.c)
)
PACKAGES=(
	"${BUILD_PACKAGES[@]}"
	# tests
	iproute2        # ip netns, veth
	util-linux      # nsenter
	bsdutils        # script: vigil status --watch under a pseudo-terminal (tests/e2e/27-status-views.sh)
	procps          # pgrep, sysctl
	python3         # test helpers
	python3-yaml    # tests/e2e/95-deploy.sh parses the Kubernetes manifests
	python3-venv    # the Python agent installs into a venv (tests/e2e/94-python-agent.sh) ...
	python3-setuptools # ... built offline with Debian's setuptools (pip --no-build-isolation)
	python3-wheel   # ... which needs wheel to build it
	jq              # checks on --json output
	sqlite3         # inspecting the event log in tests
	prometheus      # promtool checks metrics and rules; tests/e2e/62-prometheus.sh runs a Prometheus
	prometheus-alertmanager # tests/e2e/71-alertmanager.sh: a real Alertmanager, and amtool
	nats-server     # the 3-node JetStream cluster of tests/e2e/90-nats.sh
	openssl         # tests/e2e/91-nats-auth.sh: a test CA, certificates, an nkey
	curl            # tests/e2e/60-metrics.sh fetches /metrics, /healthz, /readyz
	strace          # tests/e2e/95-deploy.sh checks vigil's syscalls against the unit's filter
	systemd         # systemd-analyze verifies the unit (tests/e2e/95-deploy.sh)
	# benchmarks
	gnuplot-nox     # plots
	stress-ng       # make bench section 6: load on the monitor's receive CPU
	frr             # make bench section 6: FRR's bfdd under the same load (no service is started)
	bpftrace        # bench/trace/*.bt: timestamps of the beat path (docs/design.md)
	libxdp-dev      # make bench section 2: the AF_XDP baseline (libxdp's xsk API)
)

LOG=/tmp/vigil-deps.log

die() {
	echo "deps.sh: $*" >&2
	exit 1
}

# Show the end of the log, then one line naming the step that failed.
fail_step() {
	tail -n 20 "$LOG" >&2
	die "$1 failed (full log: $LOG)"
}

case ${1:-} in
'') ;;
--build) PACKAGES=("${BUILD_PACKAGES[@]}") ;;
*) die "usage: scripts/deps.sh [--build]" ;;
esac
[ "$(id -u)" -eq 0 ] || die "must run as root (apt-get install needs it)"
command -v dpkg-query >/dev/null && command -v apt-get >/dev/null ||
	die "dpkg-query/apt-get not found: this script supports Debian 12 only"

missing=()
for pkg in "${PACKAGES[@]}"; do
	status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
	[ "$status" = "install ok installed" ] || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

: >"$LOG"
apt-get update -qq >>"$LOG" 2>&1 || fail_step "apt-get update"
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	"${missing[@]}" >>"$LOG" 2>&1 ||
	fail_step "apt-get install ${missing[*]}"
echo "deps.sh: installed ${missing[*]}"

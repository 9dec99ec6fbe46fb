#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
#
# The fleet view's benchmark (docs/fleet.md): `vigil fleet merge` against a
# real nats-server (JetStream, file storage, one node) started in a network
# namespace of its own, at 10,000 and 100,000 agents watched by 2 monitors.
# Runnable on its own; bench/run.sh runs it as its "fleet" section.
#
#   bench/fleet.sh [OUT.md]      full run (~5 min): the table to stdout (and OUT.md)
#   BENCH_QUICK=1 bench/fleet.sh smoke run: 2,000 agents
#
# The monitors are synthetic (build/vigil-fleetgen): their events are exactly
# what an exporter publishes (subject, message id, payload by the same
# function), but no XDP fleet of that size runs here. For each size:
#   1. the stream's own rate: one "up" per agent per monitor published as
#      fast as the stream acknowledges them (asynchronously), no merger;
#   2. the merge rate: the merger started on that backlog, records per second
#      as the view's reader receives them (the reference is 1);
#   3. exactly once under kills: a second backlog ("suspect", then "dead"
#      everywhere: 4 x agents events),
#      the merger started on it and SIGKILLed 5 times while it drains it
#      (counted only while the view's reader still waits), each restarted:
#      every event must reach the view once (duplicates and missing counted),
#      and the time a restart takes to rebuild its state from the view;
#   4. the merge lag: "dead" then "recovered" events at 2,000 per second
#      while the merger is caught up, from the event's detection
#      (CLOCK_MONOTONIC when published) to its record reaching the reader:
#      p50 and p99 of each of 3 runs (median, min-max).
set -u
export LC_ALL=C

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VIGIL=$ROOT/build/vigil
GEN=$ROOT/build/vigil-fleetgen
OUT_MD=${1:-}
QUICK=${BENCH_QUICK:-0}
if [ "$QUICK" = 1 ]; then
	SIZES=(2000) LAG_EVENTS=1000 RUNS=1 KILLS=2
else
	SIZES=(10000 100000) LAG_EVENTS=10000 RUNS=3 KILLS=5
fi
LAG_RATE=2000
PORT=14322
URL=nats://127.0.0.1:$PORT

die() {
	echo "bench/fleet.sh: $*" >&2
	exit 1
}
log() { echo "# $(date +%T) fleet: $*" >&2; }

[ "$(id -u)" -eq 0 ] || die "must run as root (network namespaces)"
for t in nats-server jq ip nsenter; do
	command -v "$t" >/dev/null || die "$t is missing (scripts/deps.sh installs it)"
done
[ -x "$VIGIL" ] && [ -x "$GEN" ] && [ -x "$ROOT/build/nats_read" ] ||
	die "build/vigil, build/vigil-fleetgen and build/nats_read are not built (make bench)"

NS=vg$$f
TMP=$(mktemp -d "/tmp/vg$$.XXXXXX") || die mktemp
declare -A PIDS=()
cleanup() {
	local p
	for p in "${PIDS[@]}" $(ip netns pids "$NS" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
	wait 2>/dev/null
	ip netns del "$NS" 2>/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
ip netns add "$NS" && ip -n "$NS" link set lo up || die "creating namespace $NS"

in_ns() { nsenter --net="/run/netns/$NS" "$@"; }
bg() { # bg NAME CMD...: in the namespace, output in $TMP/NAME.{out,err}
	local name=$1
	shift
	nsenter --net="/run/netns/$NS" "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" &
	PIDS[$name]=$! # nsenter execs: the command's own pid
}
stop() { # stop NAME [SIG]
	[ -n "${PIDS[$1]:-}" ] || return 0
	kill "-${2:-TERM}" "${PIDS[$1]}" 2>/dev/null
	wait "${PIDS[$1]}" 2>/dev/null
	unset "PIDS[$1]"
}
wait_for() { # wait_for SECONDS CMD...
	local i
	for ((i = 0; i < $1 * 20; i++)); do
		"${@:2}" >/dev/null 2>&1 && return 0
		sleep 0.05
	done
	return 1
}
gen() { in_ns "$GEN" --nats "$URL" "$@"; }
MERGES=0
start_merger() {
	MERGES=$((MERGES + 1))
	MERGER=merger-$MERGES
	bg "$MERGER" "$VIGIL" fleet merge --nats "$URL"
}
merging() { grep -q "appending after sequence" "$TMP/$MERGER.err"; }
view_msgs() { in_ns "$ROOT/build/nats_read" --servers "$URL" --stream VIGIL_FLEET --info | jq .msgs; }
observe() { # observe NAME EVENTS: the reader, in the background, once ready
	bg "$1" "$GEN" --nats "$URL" observe --events "$2" --timeout-s 600
	wait_for 20 grep -q ready "$TMP/$1.out" || die "the view's reader did not start ($(cat "$TMP/$1.err"))"
}
result() { # result NAME VAR: the reader's JSON, once it ends, into VAR
	wait "${PIDS[$1]}"
	unset "PIDS[$1]"
	printf -v "$2" '%s' "$(tail -n 1 "$TMP/$1.out")"
}
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)] }'; }
span() { sort -n | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%s-%s", lo, hi }'; }

ROWS=()
for n in "${SIZES[@]}"; do
	log "$n agents x 2 monitors"
	rm -rf "$TMP/js"
	bg nats nats-server -js -a 127.0.0.1 -p "$PORT" -sd "$TMP/js"
	wait_for 10 in_ns bash -c "exec 3<>/dev/tcp/127.0.0.1/$PORT" || die "nats-server does not start"
	gen setup || die "creating the streams"
	bg presence "$GEN" --nats "$URL" presence --hosts 2

	# 1 and 2: the stream's own rate, then the merger on that backlog.
	stream=$(gen publish --hosts 2 --agents "$n" --kind up) || die "publishing"
	observe drain $((2 * n))
	t0=$(date +%s%N)
	start_merger
	result drain drain
	drain_s=$(awk -v a="$t0" -v b="$(date +%s%N)" 'BEGIN { printf "%.2f", (b - a) / 1e9 }')

	# 3: exactly once while the merger is killed during a backlog.
	stop "$MERGER"
	view0=$(view_msgs)
	gen publish --hosts 2 --agents "$n" --kind suspect >/dev/null &&
		gen publish --hosts 2 --agents "$n" --kind dead >/dev/null || die "publishing"
	observe kills $((4 * n))
	start_merger
	rebuild=() mid=0
	for k in $(seq 1 "$KILLS"); do
		wait_for 120 merging || die "the merger does not start ($(tail -n 2 "$TMP/$MERGER.err"))"
		sleep "0.$((RANDOM % 3 + 1))"
		# Mid-stream: the reader has not seen the whole backlog yet.
		kill -0 "${PIDS[kills]}" 2>/dev/null && mid=$((mid + 1))
		stop "$MERGER" KILL
		t0=$(date +%s%N)
		start_merger
		wait_for 120 merging || die "the merger does not restart ($(tail -n 2 "$TMP/$MERGER.err"))"
		rebuild+=("$(awk -v a="$t0" -v b="$(date +%s%N)" 'BEGIN { printf "%.2f", (b - a) / 1e9 }')")
	done
	result kills kills
	# The view itself, whatever its reader saw: 4 x agents more records.
	grown() { [ "$(view_msgs)" -ge $((view0 + 4 * n)) ]; }
	wait_for 120 grown
	view_delta=$(($(view_msgs) - view0))

	# 4: the merge lag at a steady rate, the merger caught up.
	p50s=() p99s=()
	for r in $(seq 1 "$RUNS"); do
		for kind in dead recovered; do
			observe lag $((LAG_EVENTS / 2))
			gen publish --hosts 2 --agents $((LAG_EVENTS / 4)) --kind "$kind" --rate "$LAG_RATE" >/dev/null
			result lag lag
			p50s+=("$(jq .lag_p50_ms <<<"$lag")")
			p99s+=("$(jq .lag_p99_ms <<<"$lag")")
		done
	done
	stop "$MERGER"
	stop presence
	stop nats

	jq -n --argjson n "$n" --argjson stream "$stream" --argjson drain "$drain" \
		--argjson kills "$kills" --argjson mid "$mid" --argjson view_delta "$view_delta" --arg drain_s "$drain_s" --arg rebuild "${rebuild[*]}" \
		--arg p50 "${p50s[*]}" --arg p99 "${p99s[*]}" \
		'{agents: $n, stream: $stream, merge: $drain, drain_s: ($drain_s | tonumber), kills: $kills, kills_mid_stream: $mid, view_records_for_kill_backlog: $view_delta,
		  rebuild_s: ($rebuild | split(" ") | map(tonumber)), lag_p50_ms: ($p50 | split(" ") | map(tonumber)),
		  lag_p99_ms: ($p99 | split(" ") | map(tonumber))}' >"$TMP/fleet-$n.json"
	ROWS+=("$(printf '| %s | %s | %s | %.2f | %s | %s (%s) | %s (%s) | %s: %s for %s | %s |' "$n" \
		"$(jq .rate <<<"$stream")" "$(jq .rate <<<"$drain")" \
		"$(jq -n "$(jq .rate <<<"$drain") / $(jq .rate <<<"$stream")")" "$drain_s" \
		"$(printf '%s\n' "${p50s[@]}" | median)" "$(printf '%s\n' "${p50s[@]}" | span)" \
		"$(printf '%s\n' "${p99s[@]}" | median)" "$(printf '%s\n' "${p99s[@]}" | span)" \
		"$mid" "$view_delta" "$((4 * n))" \
		"$(printf '%s\n' "${rebuild[@]}" | median)")")
	log "$n agents: $(jq -c . "$TMP/fleet-$n.json")"
done

{
	echo "### Fleet view: merge lag and throughput (vigil fleet merge)"
	echo
	echo "Synthetic monitors: 2 hosts publishing format-exact events (build/vigil-fleetgen) into a"
	echo "one-node nats-server $(nats-server --version 2>/dev/null | awk '{ print $NF }') (JetStream, file storage) on loopback; no XDP fleet of"
	echo "this size can be driven here. Stream rate: one event per agent per monitor, published"
	echo "asynchronously as fast as the stream acknowledges. Merge rate: the merger on that backlog,"
	echo "records/s at the view's reader. Lag: detection (publication) to the record at the reader, at"
	echo "$LAG_RATE events/s, median of $((RUNS * 2)) runs (min-max). Kills: SIGKILL and restart during a"
	echo "backlog of 4 x agents events (kills while the reader still waited for some of it: the records
the view's stream grew by, for that many events: equal is exactly once); rebuild: median"
	echo "seconds from a restart to merging again."
	echo
	echo "| agents | stream (ev/s) | merge (ev/s) | merge / stream | drain 2 x agents (s) | lag p50 ms | lag p99 ms | kills mid-stream: records for events | rebuild (s) |"
	echo "|---|---|---|---|---|---|---|---|---|"
	printf '%s\n' "${ROWS[@]}"
} | tee "${OUT_MD:-/dev/null}"
[ -z "${BENCH_RAW:-}" ] || cp "$TMP"/fleet-*.json "$BENCH_RAW"/

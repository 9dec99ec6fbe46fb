#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
#
# The benchmark behind `make bench` (docs/BENCHMARKS.md explains the method).
# Needs root and at least 2 CPUs. Creates its own network namespaces and veth
# pair (198.18.0.0/15 only) and removes them, and every pin, on exit.
#
#   bench/run.sh                 full run (~25 min): prints the tables and writes
#                                docs/BENCHMARKS.md and docs/bench/*.png
#   BENCH_QUICK=1 bench/run.sh   smoke run (< 60 s): same steps, tiny sizes, writes
#                                into a temporary directory (BENCH_OUT to keep it)
#
# Environment: BENCH_OUT (directory for the document, plots and raw JSON;
# default: the repository's docs/ for a full run, a temporary one for a quick
# run), BENCH_GEN_CPU / BENCH_RX_CPU (default 0 and 1), BENCH_SKIP (space
# separated sections to leave out: fastpath throughput scale massfail overload
# starve fleet lease).
set -u
export LC_ALL=C

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=$ROOT/build
VIGIL=$BIN/vigil
QUICK=${BENCH_QUICK:-0}
GEN_CPU=${BENCH_GEN_CPU:-0}
RX_CPU=${BENCH_RX_CPU:-1}
SKIP=" ${BENCH_SKIP:-} "
T_START=$(date +%s)

die() {
	echo "bench/run.sh: $*" >&2
	exit 1
}
log() {
	echo "# $(date +%T) $*" >&2
}

[ "$(id -u)" -eq 0 ] || die "must run as root (it loads BPF programs and creates network namespaces)"
[ "$(nproc)" -ge 2 ] || die "needs at least 2 CPUs (generator and receiver on different ones)"
for t in ip nsenter jq gnuplot taskset sqlite3 awk; do
	command -v "$t" >/dev/null || die "$t is missing (scripts/deps.sh installs it)"
done
for b in vigil vigil-trafficgen vigil-bench vigil-baseline vigil-scale; do
	[ -x "$BIN/$b" ] || die "$BIN/$b is not built (make bench builds it)"
done
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf || die "cannot mount bpffs"

# ----------------------------------------------------------------- sizes
if [ "$QUICK" = 1 ]; then
	FP_ARGS=(--runs 5 --repeat 65536)
	TP_AGENTS=16384 TP_STEPS=1 TP_STEP_SEC=0.2 TP_WARM=0.5
	TP_METHOD=(--sat-trials 3 --searches 2 --rate-trials 2 --idle-sec 0.2)
	OV_METHOD=(--sat-trials 1 --searches 1 --rate-trials 0 --idle-sec 0)
	SCALE_SIZES=(10000) SCALE_ROUNDS=3 SCALE_INTERVAL=200
	MF_SIZES=(10000) MF_INTERVAL=200
	OV_AGENTS=100 OV_SEC=1.5
	ST_AGENTS=40 ST_SEC=4 ST_FLOOD=${ST_FLOOD:-20000}
	LEASE_KILLS=2
else
	FP_ARGS=(--runs 7 --repeat 1048576)
	TP_AGENTS=65536 TP_STEPS=7 TP_STEP_SEC=2 TP_WARM=3
	TP_METHOD=(--sat-trials 5 --searches 4 --rate-trials 5 --idle-sec 1)
	OV_METHOD=(--sat-trials 3 --searches 4 --rate-trials 0 --idle-sec 1)
	SCALE_SIZES=(10000 100000 1000000) SCALE_ROUNDS=5 SCALE_INTERVAL=1000
	MF_SIZES=(100000 1000000) MF_INTERVAL=1000
	OV_AGENTS=1000 OV_SEC=10
	ST_AGENTS=200 ST_SEC=30 ST_FLOOD=${ST_FLOOD:-50000}
	LEASE_KILLS=100
fi

if [ -n "${BENCH_OUT:-}" ]; then
	OUT=$BENCH_OUT
elif [ "$QUICK" = 1 ]; then
	OUT=$(mktemp -d "/tmp/vg$$-out.XXXXXX")
else
	OUT=$ROOT/docs
fi
DOC=$OUT/BENCHMARKS.md
PLOTS=$OUT/bench
mkdir -p "$OUT" "$PLOTS" || die "cannot create $OUT"

# ------------------------------------------------------- setup, cleanup
TMP=$(mktemp -d "/tmp/vg$$.XXXXXX") || die "mktemp"
RES=$TMP/results
mkdir -p "$RES"
NSG=vg$$g NSR=vg$$r IFG=vg$$G IFR=vg$$R
MAC_G=02:00:00:00:01:02 MAC_R=02:00:00:00:01:01
PIN_SINK=/sys/fs/bpf/vg$$-sink
PIN_V=/sys/fs/bpf/vg$$-vigil
BG=()

cleanup() {
	local rc=$? p
	trap - EXIT INT TERM
	for p in "${BG[@]}"; do
		kill -KILL "$p" 2>/dev/null
	done
	for p in "${BG[@]}"; do
		wait "$p" 2>/dev/null
	done
	[ -e "$PIN_V" ] && "$VIGIL" detach --pin-root "$PIN_V" >/dev/null 2>&1
	rm -rf "$PIN_V" "$PIN_SINK"
	for ns in "$NSG" "$NSR"; do
		p=$(ip netns pids "$ns" 2>/dev/null)
		# shellcheck disable=SC2086 # one pid per word
		[ -n "$p" ] && kill -KILL $p 2>/dev/null
		ip netns del "$ns" 2>/dev/null
	done
	if [ "${BENCH_KEEP:-0}" = 1 ]; then
		echo "bench/run.sh: kept $TMP" >&2
	else
		rm -rf "$TMP"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Foreground only: a backgrounded function is a subshell, and $! would be
# the subshell's pid, not the command's. Background jobs use nsenter directly
# (it execs the command, so $! is the command itself).
in_g() { nsenter --net="/run/netns/$NSG" "$@"; }
in_r() { nsenter --net="/run/netns/$NSR" "$@"; }
NS_G=(nsenter --net="/run/netns/$NSG")
NS_R=(nsenter --net="/run/netns/$NSR")

# A veth pair between two namespaces; 198.18.0.0/16 on-link, so sources from
# 198.18.16.0/20 (one per agent) pass the receiver's reverse-path check.
setup_veth() {
	ip netns add "$NSG" && ip netns add "$NSR" || return 1
	ip link add "$IFG" netns "$NSG" address "$MAC_G" type veth peer name "$IFR" netns "$NSR" \
		address "$MAC_R" || return 1
	ip -n "$NSG" addr add 198.18.0.2/16 dev "$IFG" && ip -n "$NSR" addr add 198.18.0.1/16 dev "$IFR" &&
		ip -n "$NSG" link set lo up && ip -n "$NSR" link set lo up &&
		ip -n "$NSG" link set "$IFG" up && ip -n "$NSR" link set "$IFR" up || return 1
	# Only our generator and beaters send into the receiver's ring.
	for ns in "$NSG" "$NSR"; do
		ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 \
			net.ipv6.conf.default.disable_ipv6=1
	done
	ip -n "$NSG" neigh replace 198.18.0.1 lladdr "$MAC_R" dev "$IFG" nud permanent
	for _ in $(seq 50); do
		ip -n "$NSR" link show "$IFR" | grep -q LOWER_UP && return 0
		sleep 0.1
	done
	return 1
}

# Threaded NAPI on the receiver, its thread on RX_CPU: without it, native
# veth XDP runs in softirq on the sender's CPU (design.md). veth has NAPI
# only while an XDP program is attached, and the setting can only change
# then; the thread is made anew with every attach, so set and pin after each.
set_threaded() {
	ip netns exec "$NSR" sh -c "echo $1 > /sys/class/net/$IFR/threaded" 2>/dev/null
	[ "$(ip netns exec "$NSR" cat "/sys/class/net/$IFR/threaded")" = "$1" ] ||
		die "cannot set threaded NAPI to $1 on $IFR"
}
# pin_napi_as CHRT_POLICY...: the receiver's NAPI thread(s) onto RX_CPU, under
# `chrt CHRT_POLICY... PID`; waits up to 2 s for one to appear (it is made
# anew with every attach). Returns 1 if there is none.
pin_napi_as() {
	local p n=0
	for _ in $(seq 20); do
		for p in $(pgrep "^napi/$IFR"); do
			taskset -pc "$RX_CPU" "$p" >/dev/null && chrt "$@" "$p" && n=$((n + 1))
		done
		[ "$n" -gt 0 ] && return 0
		sleep 0.1
	done
	return 1
}
# The thread also runs SCHED_FIFO: the ring holds 256 frames, about 1 ms at
# 250 kpps, and any other runnable task on that CPU could otherwise hold the
# thread off that long and make the ring overflow at a fraction of capacity.
pin_napi() {
	pin_napi_as -f -p 50 && return 0
	echo "bench/run.sh: no NAPI thread for $IFR found to pin" >&2
	return 1
}

# make_fleet N INTERVAL_MIN INTERVAL_MAX MULTIPLIER: $TMP/keys-N and $TMP/agents-N.conf.
make_fleet() {
	local n=$1
	[ -s "$TMP/keys-$n" ] || (umask 077 && "$VIGIL" key gen --id "1-$n" >"$TMP/keys-$n") ||
		die "vigil key gen"
	{
		echo "defaults interval-min-ms=$2 interval-max-ms=$3 multiplier=$4"
		seq 1 "$n" | sed 's/^/agent /'
	} >"$TMP/agents-$n.conf"
}

# start_vigil NAME N [ARGS...]: vigil run on the receiver for agents 1..N;
# waits until every agent is registered and keyed. Sets VIGIL_PID.
start_vigil() {
	local name=$1 n=$2
	shift 2
	rm -f "$TMP/$name".db*
	# shellcheck disable=SC2086 # VIGIL_EXTRA: options, one per word
	"${NS_R[@]}" "$@" "$VIGIL" run --iface "$IFR" --mode native --config "$TMP/agents-$n.conf" \
		--keys "$TMP/keys-$n" --pin-root "$PIN_V" --db "$TMP/$name.db" --quiet --metrics off \
		--max-agents "$n" ${VIGIL_EXTRA:-} >"$TMP/$name.out" 2>"$TMP/$name.err" &
	VIGIL_PID=$!
	BG+=("$VIGIL_PID")
	for _ in $(seq 1800); do
		grep -q "registered agents keyed" "$TMP/$name.err" && return 0
		kill -0 "$VIGIL_PID" 2>/dev/null || break
		sleep 0.1
	done
	cat "$TMP/$name.err" >&2
	die "vigil run did not start ($name)"
}
# settle_vigil: wait until the daemon has finished what its start left it
# (registering, the first floors pass) and used under 5 % of a CPU over a
# second, up to 30 s, so the case's idle check sees the receiver CPU as the
# beats will find it.
settle_vigil() {
	local a b hz
	hz=$(getconf CLK_TCK)
	for _ in $(seq 30); do
		a=$(awk '{print $14 + $15}' "/proc/$VIGIL_PID/stat" 2>/dev/null) || return 0
		sleep 1
		b=$(awk '{print $14 + $15}' "/proc/$VIGIL_PID/stat" 2>/dev/null) || return 0
		[ $((b - a)) -le $((hz / 20)) ] && return 0
	done
	log "   the daemon was still busy 30 s after it started"
}
stop_vigil() {
	kill -TERM "$VIGIL_PID" 2>/dev/null
	wait "$VIGIL_PID" 2>/dev/null
	"$VIGIL" detach --pin-root "$PIN_V" >/dev/null 2>&1
}

# Paced frames go in bursts of 16 (XDP's bulk-flush size; a NIC's interrupt
# moderation batches likewise): one receiver wake-up per burst, not per frame.
TG=("$BIN/vigil-trafficgen" --iface "$IFG" --dst-mac "$MAC_R" --cpu "$GEN_CPU" --burst 16)

# Beaters: `vigil beat` in the generator's namespace on GEN_CPU, every 10 ms,
# at a real-time priority when the system allows it, each with its send log
# (when every beat really went out: excuse.py tells an agent that did not
# send, held off its CPU, from a monitor that missed beats sent in time).
BEAT_PRIO=()
chrt -f 10 true 2>/dev/null && BEAT_PRIO=(chrt -f 10)
# beater IDS KEYS SEND_LOG ERR: one beater for agents IDS (N or A-B), its
# stderr appended to ERR; its pid in BEATER (and in BG).
beater() {
	"${NS_G[@]}" "${BEAT_PRIO[@]}" taskset -c "$GEN_CPU" "$VIGIL" beat --id "$1" \
		--target 198.18.0.1 --interval-ms 10 --keys "$2" \
		--send-log "$3" >/dev/null 2>>"$4" &
	BEATER=$!
	BG+=("$BEATER")
}
# beater_groups GROUPS LAST GAP KEYS LOGDIR ERR: agents 1..LAST beating from
# GROUPS beaters (ranges of equal size) started GAP s apart, with send logs
# LOGDIR/send.aK.jsonl; their pids in BEATERS.
beater_groups() {
	local groups=$1 last=$2 gap=$3 per=$((($2 + $1 - 1) / $1)) k lo hi
	BEATERS=()
	for ((k = 0; k < groups; k++)); do
		lo=$((1 + k * per)) hi=$(((k + 1) * per))
		[ "$hi" -gt "$last" ] && hi=$last
		[ "$lo" -le "$hi" ] || continue
		beater "$lo-$hi" "$4" "$5/send.a$k.jsonl" "$6"
		BEATERS+=("$BEATER")
		sleep "$gap"
	done
}

# sql DB QUERY: one value (or row, |-separated).
sql() {
	sqlite3 -readonly "$1" "$2" 2>/dev/null
}

setup_veth || die "creating namespaces $NSG/$NSR and a veth pair"

# Keep the CPUs out of deep idle while we measure throughput (PM QoS, released
# after, or when this process exits): an idle virtual CPU halts, and waking the receiving thread
# then takes the hypervisor's exit-and-resume, long enough now and then to
# overflow the 256-frame ring at rates far below capacity. The faster a
# receiver, the more often it sleeps: without this, the no-op ceiling loses
# frames at rates vigil handles without loss.
# Only for the throughput section: with every CPU polling, the hypervisor has
# less to schedule its other work on, and timers elsewhere suffer.
QOS_FD=
qos_on() {
	[ -w /dev/cpu_dma_latency ] || return 0
	exec {QOS_FD}>/dev/cpu_dma_latency && printf 0 >&"$QOS_FD"
}
qos_off() {
	[ -n "$QOS_FD" ] && exec {QOS_FD}>&-
	QOS_FD=
}

# Is the machine idle? Anything else running skews rates and CPU figures;
# the report says so.
b0=$(awk '/^cpu[0-9]/ { print $2 + $3 + $4 + $7 + $8, $2 + $3 + $4 + $5 + $6 + $7 + $8 }' /proc/stat)
sleep 1
b1=$(awk '/^cpu[0-9]/ { print $2 + $3 + $4 + $7 + $8, $2 + $3 + $4 + $5 + $6 + $7 + $8 }' /proc/stat)
paste <(echo "$b0") <(echo "$b1") | awk '{ printf "%s%.0f", (NR > 1 ? " " : ""), 100 * ($3 - $1) / (($4 - $2) ? ($4 - $2) : 1) }' \
	>"$RES/busy-before.txt"
echo "{\"busy_before\":\"$(cat "$RES/busy-before.txt")\",\"loadavg\":\"$(cut -d' ' -f1-3 /proc/loadavg)\",\"started\":\"$(date -u -d "@$T_START" '+%Y-%m-%d %H:%M UTC')\"}" >"$RES/machine.json"
log "namespaces $NSG, $NSR; veth $IFG -> $IFR; generator on CPU $GEN_CPU, receiver on CPU $RX_CPU"

# ============================================================ 1 fast path
section_fastpath() {
	log "1/5 fast path (BPF_PROG_TEST_RUN)"
	# A count mismatch is reported as a note; no result at all is fatal.
	fp() {
		"$BIN/vigil-bench" fastpath --json "${FP_ARGS[@]}" "${@:2}" >"$RES/$1.json"
		jq -e .cases "$RES/$1.json" >/dev/null 2>&1 || die "vigil-bench fastpath ${*:2} gave no result"
	}
	fp fp-hot --agents 1024 --rate-burst 0
	fp fp-fleet --agents 65536
}

# =========================================================== 2 throughput
# Every receiver is measured the same way (vigil-trafficgen --search, Method
# in docs/BENCHMARKS.md): its CPU checked idle, then saturated (flat out, 5
# runs), then loss-free (searches until two agree within 10 %, then 5 runs
# at that rate), then 5 runs at TP_COMMON pps, the rate all are compared at.
TP_COMMON=${TP_COMMON:-100000}
section_throughput() {
	local frames=(--keys "$TMP/keys-$TP_AGENTS" --agents "$TP_AGENTS" --src 198.18.16.0
		--src-random-bits 12 --src-per-agent --interval-ms 50)
	local search=("${frames[@]}" --rx-cpu "$RX_CPU" --search --json
		--steps "$TP_STEPS" --step-sec "$TP_STEP_SEC" --min-rate 100000 "${TP_METHOD[@]}"
		--common-rate "$TP_COMMON")
	log "2/5 throughput: $TP_AGENTS agents, authenticated beats, saturated and loss-free"
	qos_on
	# Beats announce 50 ms; a multiplier of 100 puts the deadline at 5 s, so
	# no agent goes SUSPECT at any rate the search tries (>= 100k pps: each
	# agent every 0.66 s or sooner), nor when a few of its beats are lost
	# in the ring: the daemon then has no verdicts to handle on the
	# receiver's CPU. The per-agent limit (4 x the announced rate, 80/s)
	# allows 5.2 Mpps over 65,536 agents.
	make_fleet "$TP_AGENTS" 10 1000 100
	# prog_stats NAME LINK: the kernel's run-time statistics of the XDP
	# program behind LINK over one flat-out run (kept apart from the
	# measured runs: counting costs every program two clock reads).
	prog_stats() {
		local p
		"$BIN/vigil-bench" bpfstats --link "$2" --out "$RES/bpfstats-$1.json" 2>"$TMP/bpfstats-$1.err" &
		p=$!
		BG+=("$p")
		for _ in $(seq 50); do
			grep -q ready "$TMP/bpfstats-$1.err" && break
			sleep 0.1
		done
		in_g "${TG[@]}" "${frames[@]}" --duration "$TP_STEP_SEC" --json >"$RES/bpfstats-$1-run.json" \
			2>/dev/null || die "generator (bpfstats $1)"
		kill -TERM "$p"
		wait "$p" || die "vigil-bench bpfstats ($1)"
	}
	# sink_search NAME [SINK_OPTION]: the search against a no-op receiver
	# (vigil-bench sink SINK_OPTION), into tp-NAME.json and tp-NAME.log.
	sink_search() {
		in_r "$BIN/vigil-bench" sink --iface "$IFR" --pin "$PIN_SINK" "${@:2}" || die "sink${2:+ $2}"
		set_threaded 1
		pin_napi
		in_g "${TG[@]}" "${search[@]}" --count "map:$PIN_SINK/count:0" \
			>"$RES/tp-$1.json" 2>"$RES/tp-$1.log" || die "generator ($1)"
		prog_stats "$1" "$PIN_SINK/link"
		rm -rf "$PIN_SINK"
		sleep 0.3
	}
	# baseline_search NAME VIA [SINK_OPTION]: the same against vigil-baseline
	# --via VIA on RX_CPU (the udp one behind an XDP_PASS sink).
	baseline_search() {
		local bpid
		[ -n "${3:-}" ] && { in_r "$BIN/vigil-bench" sink --iface "$IFR" --pin "$PIN_SINK" "$3" || die "sink $3"; }
		"${NS_R[@]}" "$BIN/vigil-baseline" --via "$2" --iface "$IFR" --keys "$TMP/keys-$TP_AGENTS" \
			--agents "$TP_AGENTS" --interval-min-ms 10 --multiplier 100 \
			--stats "$TMP/$1.stats" --cpu "$RX_CPU" >"$TMP/$1.out" 2>"$TMP/$1.err" &
		bpid=$!
		BG+=("$bpid")
		for _ in $(seq 100); do
			grep -q ready "$TMP/$1.err" && break
			kill -0 "$bpid" 2>/dev/null || { cat "$TMP/$1.err" >&2; die "vigil-baseline --via $2 did not start"; }
			sleep 0.1
		done
		set_threaded 1
		pin_napi
		in_g "${TG[@]}" "${search[@]}" --count "file:$TMP/$1.stats:8" \
			--drops "file:$TMP/$1.stats:56" --warmup-sec "$TP_WARM" --warmup-rate 200000 \
			>"$RES/tp-$1.json" 2>"$RES/tp-$1.log" || die "generator ($1)"
		kill -TERM "$bpid"
		wait "$bpid" 2>/dev/null
		rm -rf "$PIN_SINK"
		sleep 0.3
	}

	log "2a ceiling: no-op XDP_DROP"
	sink_search ceiling
	log "2a' reference: a no-op that reads the whole frame before dropping it"
	sink_search touch --touch

	log "2b vigil (native XDP, vigil run with keys, daemon on CPU $RX_CPU)"
	start_vigil tp "$TP_AGENTS" taskset -c "$RX_CPU"
	settle_vigil
	set_threaded 1
	pin_napi
	"$VIGIL" status --json --pin-root "$PIN_V" | jq -c .stats >"$RES/tp-vigil-stats0.json"
	in_g "${TG[@]}" "${search[@]}" --count "map:$PIN_V/vigil_stats:$("$BIN/vigil-bench" stats-offset beats)" \
		--warmup-sec "$TP_WARM" --warmup-rate 200000 \
		>"$RES/tp-vigil.json" 2>"$RES/tp-vigil.log" || die "generator (vigil)"
	"$VIGIL" status --json --pin-root "$PIN_V" | jq -c .stats >"$RES/tp-vigil-stats1.json"
	prog_stats vigil "$PIN_V/link"
	stop_vigil
	sleep 0.3

	log "2c userspace baseline (XDP_PASS, UDP socket, recvmmsg x64, on CPU $RX_CPU)"
	baseline_search baseline udp --pass
	log "2d AF_XDP baseline (XDP redirect to an AF_XDP socket, copy mode, on CPU $RX_CPU)"
	baseline_search xsk xsk
	qos_off
}

# ================================================================ 3 scale
section_scale() {
	local n
	for n in "${SCALE_SIZES[@]}"; do
		log "3/5 scale: $n agents beating every $SCALE_INTERVAL ms"
		# A failed check (e.g. an event late because the machine stalled)
		# is reported in the table, not fatal; no result at all is.
		"$BIN/vigil-scale" --agents "$n" --interval-ms "$SCALE_INTERVAL" --rounds "$SCALE_ROUNDS" \
			--json >"$TMP/scale-$n.out" 2>&1 ||
			sed 's/^/# vigil-scale: /' "$TMP/scale-$n.out" >&2
		tail -n 1 "$TMP/scale-$n.out" | jq -e .agents >/dev/null 2>&1 ||
			die "vigil-scale --agents $n gave no result"
		tail -n 1 "$TMP/scale-$n.out" >"$RES/scale-$n.json"
	done
}

# ======================================================== 4 mass failure
section_massfail() {
	local n rate tgpid t_stop got interval
	for n in "${MF_SIZES[@]}"; do
		# Each agent beats once per interval: MF_INTERVAL, or longer for big
		# fleets, so that keeping them all alive stays near 250k beats/s and
		# leaves the receiver CPU room for the daemon's log. A long
		# interval-max gives the first deadline (from registration) room for
		# registering a million agents.
		interval=$((n / 250 > MF_INTERVAL ? n / 250 : MF_INTERVAL))
		log "4/5 mass failure: $n agents beating every $interval ms (vigil run, keys, durable log)"
		make_fleet "$n" "$interval" 60000 3
		VIGIL_EXTRA="--ringbuf-mb 256" start_vigil "mf-$n" "$n" taskset -c "$RX_CPU"
		set_threaded 1
		pin_napi
		# Every agent beats once per interval, spread over 80 % of it, from its
		# own address, until every UP is in the log; then all stop at once.
		rate=$((n * 1000 * 5 / 4 / interval))
		"${NS_G[@]}" "${TG[@]}" --keys "$TMP/keys-$n" --agents "$n" --interval-ms "$interval" \
			--src 198.18.16.0 --src-random-bits 12 --src-per-agent --rate "$rate" --duration 600 \
			--json >"$RES/mf-$n-gen.json" 2>"$TMP/mf-$n-gen.err" &
		tgpid=$!
		BG+=("$tgpid")
		for _ in $(seq 600); do
			sleep 0.5
			got=$(sql "$TMP/mf-$n.db" "SELECT count(*) FROM events WHERE kind = 'up'")
			[ "${got:-0}" -ge "$n" ] && break
			kill -0 "$tgpid" 2>/dev/null || die "generator (mass failure $n) stopped"
		done
		sleep $((2 * interval / 1000 + 1))
		kill -TERM "$tgpid"
		wait "$tgpid"
		t_stop=$(date +%s%N)
		log "   all $n UP recorded; agents stopped; waiting for $n DEAD in the log"
		for _ in $(seq 1200); do
			sleep 0.5
			got=$(sql "$TMP/mf-$n.db" "SELECT count(*) FROM events WHERE kind = 'dead'")
			[ "${got:-0}" -ge "$n" ] && break
		done
		"$VIGIL" status --json --pin-root "$PIN_V" | jq -c .stats >"$RES/mf-$n-stats.json"
		stop_vigil
		# Wall-clock deadline = deadline_ns (monotonic) + (wall - monotonic) of the row.
		sql "$TMP/mf-$n.db" "
		  WITH d AS (SELECT deadline_ns + detected_wall_ns - detected_ns AS dl_wall,
		                    detected_ns - deadline_ns AS late, recorded_wall_ns AS rec,
		                    recorded_wall_ns - detected_wall_ns AS lag
		             FROM events WHERE kind = 'dead'),
		       n AS (SELECT count(*) AS c FROM d)
		  SELECT json_object('agents', $n, 'interval_ms', $interval, 'dead', (SELECT c FROM n), 't_stop', $t_stop,
		    'first_deadline', (SELECT min(dl_wall) FROM d), 'last_deadline', (SELECT max(dl_wall) FROM d),
		    'first_recorded', (SELECT min(rec) FROM d), 'last_recorded', (SELECT max(rec) FROM d),
		    'late_p50', (SELECT late FROM d ORDER BY late LIMIT 1 OFFSET (SELECT c / 2 FROM n)),
		    'late_p99', (SELECT late FROM d ORDER BY late LIMIT 1 OFFSET (SELECT c * 99 / 100 FROM n)),
		    'late_max', (SELECT max(late) FROM d),
		    'lag_p50', (SELECT lag FROM d ORDER BY lag LIMIT 1 OFFSET (SELECT c / 2 FROM n)),
		    'lag_p99', (SELECT lag FROM d ORDER BY lag LIMIT 1 OFFSET (SELECT c * 99 / 100 FROM n)),
		    'suspect', (SELECT count(*) FROM events WHERE kind = 'suspect'),
		    'rows', (SELECT count(*) FROM events))" >"$RES/mf-$n.json"
		jq -c '.run | {generated, generated_pps}' "$RES/mf-$n-gen.json" >"$RES/mf-$n-gen.short.json" 2>/dev/null
		# Rows over time, for the plot: seconds after the agents stopped.
		sql "$TMP/mf-$n.db" "SELECT kind, (recorded_wall_ns - $t_stop) / 1e9 FROM events
		  WHERE kind IN ('suspect', 'dead') ORDER BY recorded_wall_ns" |
			awk -F'|' -v n="$n" '{ c[$1]++; if (c[$1] % int(n / 200 + 1) == 0 || c[$1] == n) print $2, c[$1] / n, ($1 == "dead") }' \
				>"$RES/mf-$n-curve.dat"
		rm -f "$TMP/mf-$n".db* "$TMP/keys-$n" "$TMP/agents-$n.conf"
	done
}

# ============================================================= 5 overload
# flood MODE RATE: vigil run for OV_AGENTS agents beating every 10 ms from two
# `vigil beat` processes; the generator floods forged tags, random ids and
# replays from spoofed sources at RATE (0: flat out, "search": first find the
# highest rate vigil judges without loss, then flood at it); halfway through,
# the second beater (the last 5 %) is killed. MODE: shared (no threaded NAPI:
# the receive softirq runs on the generator's CPU) or threaded.
mono() { python3 -c 'import time; print(time.clock_gettime_ns(time.CLOCK_MONOTONIC))'; }
flood() {
	local mode=$1 rate=$2 name=ov-$1-$2 victims_lo=$((OV_AGENTS * 95 / 100 + 1))
	local pa pb tg st0 st1 drop0 drop1 t_start t_kill t_end flood_count
	log "5/5 overload ($mode, rate $rate): $OV_AGENTS agents every 10 ms + flood for $OV_SEC s"
	VIGIL_EXTRA="--events-file $TMP/$name.jsonl" start_vigil "$name" "$OV_AGENTS"
	# 1,000 agents behind one address send 100k beats/s: exactly the
	# default per-source limit. A deployment like that raises it, as we do.
	"$BIN/vigil-bench" config --pin-root "$PIN_V" source_pps=400000 || die "vigil-bench config"
	if [ "$mode" = threaded ]; then
		set_threaded 1
		pin_napi
	else
		set_threaded 0
	fi
	rm -f "$TMP"/send.*.jsonl
	# The survivors beat from 10 processes started 1 ms apart, so their beats
	# arrive in bursts of ~100, not one burst of 950 every 10 ms (which alone
	# could overflow the 256-frame ring when the receiver is on another CPU).
	beater_groups 10 $((victims_lo - 1)) 0.001 "$TMP/keys-$OV_AGENTS" "$TMP" "$TMP/beat-a.err"
	pa=("${BEATERS[@]}")
	: >"$TMP/beat-b.err"
	beater "$victims_lo-$OV_AGENTS" "$TMP/keys-$OV_AGENTS" "$TMP/send.b.jsonl" "$TMP/beat-b.err"
	pb=$BEATER
	sleep 1.5
	local gen=("${TG[@]}" --mix "forged=1,random=1,replay=1" --agents "$OV_AGENTS" --capture "$IFG"
		--capture-count 4096 --src 198.19.0.0 --src-random-bits 16 --json)
	if [ "$rate" = search ]; then
		# Counted flood = what vigil refused by reason; the agents' beats never land there.
		flood_count=$("$BIN/vigil-bench" stats-offset bad_tag unknown_agent duplicates replayed)
		in_g "${gen[@]}" --count "map:$PIN_V/vigil_stats:$flood_count" --rx-cpu "$RX_CPU" --search \
			--steps "$TP_STEPS" --step-sec "$TP_STEP_SEC" --min-rate 100000 "${OV_METHOD[@]}" \
			>"$RES/ov-search.json" 2>"$RES/ov-search.log" || die "generator (flood search)"
		rate=$(jq -r 'if .found and .loss_free_pps > 0 then .loss_free_pps | floor else 100000 end' "$RES/ov-search.json")
		log "   highest loss-free flood rate: $rate pps; flooding at it"
	fi
	sleep 1 # agents a search step starved recover before the measured flood
	t_start=$(mono)
	st0=$("$VIGIL" status --json --pin-root "$PIN_V" | jq -c .stats)
	drop0=$(ip -n "$NSG" -j -s link show "$IFG" | jq '.[0].stats64.tx.dropped')
	"${NS_G[@]}" "${gen[@]}" --rate "$rate" --duration "$OV_SEC" >"$RES/$name-gen.json" 2>"$TMP/ov-gen.err" &
	tg=$!
	BG+=("$tg")
	# Kill the last 5 % of the agents halfway through the flood.
	sleep "$(awk -v s="$OV_SEC" 'BEGIN { print s / 2 + 0.3 }')"
	t_kill=$(mono)
	kill -KILL "$pb"
	wait "$pb" 2>/dev/null
	wait "$tg" || die "generator (overload $mode)"
	st1=$("$VIGIL" status --json --pin-root "$PIN_V" | jq -c .stats)
	drop1=$(ip -n "$NSG" -j -s link show "$IFG" | jq '.[0].stats64.tx.dropped')
	t_end=$(mono)
	kill -TERM "${pa[@]}"
	wait "${pa[@]}" 2>/dev/null
	sleep 0.3
	stop_vigil
	local db=$TMP/$name.db v=$((victims_lo - 1)) excused
	# False alarms: SUSPECT, DEAD or RECOVERED of an agent while it was beating,
	# during the measured flood; those the agents' own send logs explain (no
	# beat sent before the deadline: the agent side) are counted apart.
	sql "$db" "SELECT event_seq FROM events WHERE kind IN ('suspect', 'dead', 'recovered')
	  AND detected_ns > $t_start AND ((agent_id <= $v AND detected_ns < $t_end)
	       OR (agent_id >= $victims_lo AND detected_ns < $t_kill))" | sort >"$TMP/$name.alarms"
	python3 "$ROOT/tests/e2e/excuse.py" excuse --send-logs "$TMP" --events "$TMP/$name.jsonl" \
		--agents "1-$OV_AGENTS" --until "$t_end" 2>"$TMP/$name.excuse.log" |
		sort >"$TMP/$name.excused"
	excused=$(comm -12 "$TMP/$name.alarms" "$TMP/$name.excused" | wc -l)
	sql "$db" "
	  WITH v AS (SELECT kind, detected_ns - deadline_ns AS late FROM events
	             WHERE agent_id >= $victims_lo AND kind IN ('suspect', 'dead') AND detected_ns > $t_kill),
	       s AS (SELECT late FROM v WHERE kind = 'suspect'), d AS (SELECT late FROM v WHERE kind = 'dead')
	  SELECT json_object('mode', '$mode', 'rate', $rate, 'agents', $OV_AGENTS,
	    'false_alarms_all', $(wc -l <"$TMP/$name.alarms"), 'excused', $excused,
	    'false_alarms', $(($(wc -l <"$TMP/$name.alarms") - excused)),
	    'stalls', '$(tr -d "\"'" <"$TMP/$name.excuse.log" | tr '
' ' ')',
	    'victims', $((OV_AGENTS - v)),
	    'victim_suspect', (SELECT count(*) FROM s), 'victim_dead', (SELECT count(*) FROM d),
	    'suspect_p50', (SELECT late FROM s ORDER BY late LIMIT 1 OFFSET (SELECT count(*) / 2 FROM s)),
	    'suspect_max', (SELECT max(late) FROM s),
	    'dead_p50', (SELECT late FROM d ORDER BY late LIMIT 1 OFFSET (SELECT count(*) / 2 FROM d)),
	    'dead_max', (SELECT max(late) FROM d),
	    'rejected_events', (SELECT count(*) FROM events WHERE kind = 'rejected'))" >"$RES/$name.json"
	jq -n --argjson a "$st0" --argjson b "$st1" --argjson d0 "$drop0" --argjson d1 "$drop1" \
		'($b | to_entries | map({key, value: (.value - $a[.key])}) | from_entries) + {veth_drops: ($d1 - $d0)}' \
		>"$RES/$name-delta.json"
}
section_overload() {
	make_fleet "$OV_AGENTS" 5 1000 3
	flood shared 0
	flood threaded search
	flood threaded 0
}

# ========================================================= 6 starvation
# The monitor starved, the agents not. The agents beat every 10 ms at
# real-time priority on GEN_CPU. The receiving veth runs threaded NAPI (its
# receive queue) on RX_CPU at normal priority, as a NIC's queue is served by
# ksoftirqd or a NAPI thread under load; on RX_CPU a CPU hog and a timer storm
# (stress-ng, nice -10) compete with it, and a flood of forged beats through
# the same veth adds receive work. The sweeper's timer is a softirq and still
# fires on time: a monitor that does not know its receive path is behind
# takes beats waiting in the queue for missed ones. Halfway, 5 % of the
# agents are killed for real. Run for vigil (evidence on), vigil with
# --hold-max-ms 0 (evidence ignored: what an unaware monitor does) and FRR's
# bfdd (10 ms x 3) under the same load.
pin_napi_normal() {
	pin_napi_as -o -p 0
}
ST_LOAD=()
# The hog runs in bursts at a real-time priority (ST_BURST_MS of every
# 100/ST_LOAD_PCT x as long): the receive queue's thread gets no CPU during a
# burst, as under a runaway real-time task or an interrupt storm, and its
# ring overflows. The timer storm is an ordinary task beside it.
ST_LOAD_PCT=${ST_LOAD_PCT:-40} ST_BURST_MS=${ST_BURST_MS:-40}
starve_load() { # SECONDS: the hog, the timer storm and the flood, in the background
	chrt -f 20 stress-ng --cpu 1 --cpu-load "$ST_LOAD_PCT" --cpu-load-slice "$ST_BURST_MS" \
		--taskset "$RX_CPU" --timeout "${1}s" >/dev/null 2>&1 &
	ST_LOAD=($!)
	BG+=($!)
	nice -n -10 stress-ng --timer 1 --timer-freq 20000 --taskset "$RX_CPU" --timeout "${1}s" \
		>/dev/null 2>&1 &
	ST_LOAD+=($!)
	BG+=($!)
	"${NS_G[@]}" "${TG[@]}" --mix "forged=1" --agents "$ST_AGENTS" --src 198.19.0.0 \
		--src-random-bits 16 --rate "$ST_FLOOD" --duration "$1" --json \
		>"$TMP/st-flood.json" 2>"$TMP/st-flood.err" &
	ST_LOAD+=($!)
	BG+=($!)
}
# help_default CMD OPTION: the default `vigil CMD --help` states for --OPTION.
help_default() {
	"$VIGIL" "$1" --help | awk -v o="--$2" '
		/^(  -[A-Za-z], |      )--/ { on = index($0, o " ") || index($0, o "[") }
		on { text = text " " $0 }
		END { if (match(text, /\(default: [^)]*\)/)) print substr(text, RSTART + 10, RLENGTH - 11) }'
}

starve_vigil() { # HOLD_MS
	local hold=$1 name=st-vigil-$1 victims_lo=$((ST_AGENTS * 95 / 100 + 1)) pa=() k
	local t_start t_kill t_end
	log "6/6 starvation: vigil, --hold-max-ms $hold: $ST_AGENTS agents every 10 ms, receive path starved for $ST_SEC s"
	VIGIL_EXTRA="--events-file $TMP/$name.jsonl --hold-max-ms $hold" start_vigil "$name" "$ST_AGENTS" \
		taskset -c "$RX_CPU"
	set_threaded 1
	pin_napi_normal || die "no NAPI thread for $IFR"
	log "   receive queue: $(for p in $(pgrep "^napi/$IFR"); do echo "$(cat "/proc/$p/comm") on CPU $(taskset -pc "$p" | awk '{ print $NF }'), $(chrt -p "$p" | head -1 | sed 's/.*: //')"; done | paste -sd';')"
	local logs=$TMP/$name-send
	mkdir -p "$logs"
	beater_groups 5 $((victims_lo - 1)) 0.002 "$TMP/keys-$ST_AGENTS" "$logs" "$TMP/st-beat.err"
	pa=("${BEATERS[@]}")
	# Each victim beats alone, and is killed at its own moment of the run.
	local vpids=() vkill=() id
	for ((id = victims_lo; id <= ST_AGENTS; id++)); do
		beater "$id" "$TMP/keys-$ST_AGENTS" "$logs/send.v$id.jsonl" "$TMP/st-beat.err"
		vpids+=("$BEATER")
	done
	sleep 1.5
	"$VIGIL" status --json --pin-root "$PIN_V" | jq -c '.stats' >"$TMP/$name-st0.json"
	t_start=$(mono)
	starve_load "$ST_SEC"
	# The victims die one by one over the middle of the run, at every phase
	# of the load.
	for ((k = 0; k < ${#vpids[@]}; k++)); do
		sleep "$(awk -v s="$ST_SEC" -v n="${#vpids[@]}" 'BEGIN { printf "%.3f", s * 0.8 / (n + 1) }')"
		vkill+=("$((victims_lo + k)):$(mono)")
		kill -KILL "${vpids[k]}"
	done
	wait "${vpids[@]}" 2>/dev/null
	t_kill=${vkill[0]#*:}
	wait "${ST_LOAD[@]}" 2>/dev/null
	t_end=$(mono)
	sleep 1
	"$VIGIL" status --json --pin-root "$PIN_V" >"$TMP/$name-status.json"
	kill -TERM "${pa[@]}"
	wait "${pa[@]}" 2>/dev/null
	sleep 0.3
	stop_vigil
	local db=$TMP/$name.db v=$((victims_lo - 1)) agent_side
	local kills="" killed="0" vk
	for vk in "${vkill[@]}"; do
		kills+=" OR (agent_id = ${vk%%:*} AND detected_ns < ${vk#*:})"
		killed+=" OR (agent_id = ${vk%%:*} AND detected_ns >= ${vk#*:})"
	done
	sql "$db" "SELECT event_seq FROM events WHERE kind IN ('suspect', 'dead', 'recovered')
	  AND detected_ns > $t_start AND ((agent_id <= $v AND detected_ns < $t_end)$kills)" |
		sort >"$TMP/$name.false"
	python3 "$ROOT/tests/e2e/excuse.py" excuse --send-logs "$logs" --events "$TMP/$name.jsonl" \
		--agents "1-$ST_AGENTS" --until "$t_end" 2>/dev/null | sort >"$TMP/$name.agentside"
	agent_side=$(comm -12 "$TMP/$name.false" "$TMP/$name.agentside" | wc -l)
	jq -n --slurpfile st0 "$TMP/$name-st0.json" --slurpfile s "$TMP/$name-status.json" '
	  ($s[0].stats) as $b | ($st0[0]) as $a |
	  { held: ($b.verdicts_held - $a.verdicts_held), held_decided: ($b.held_decided - $a.held_decided),
	    held_unverified: ($b.held_unverified - $a.held_unverified),
	    held_cancelled: ($b.held_cancelled - $a.held_cancelled), held_by_beat: ($b.held_by_beat - $a.held_by_beat),
	    held_max_ns: $b.held_max_ns, corrected: ($b.corrected - $a.corrected),
	    rx_behind_episodes: ([$s[0].receive_queues[].behind_episodes] | add // 0),
	    rx_behind_max_ns: ([$s[0].receive_queues[].behind_max_ns] | max // 0),
	    sweeper_behind_max_ticks: $s[0].sweeper.behind_max_ticks }' >"$TMP/$name-holds.json"
	sql "$db" "
	  WITH v AS (SELECT kind, detected_ns - deadline_ns AS late FROM events
	             WHERE kind IN ('suspect', 'dead') AND ($killed)),
	       s AS (SELECT late FROM v WHERE kind = 'suspect'), d AS (SELECT late FROM v WHERE kind = 'dead'),
	       h AS (SELECT aux_ns AS held FROM events WHERE (flags & 1) != 0 AND detected_ns > $t_start
	             AND detected_ns < $t_end)
	  SELECT json_object('hold_max_ms', $hold, 'agents', $ST_AGENTS, 'seconds', $ST_SEC,
	    'false_verdicts', $(wc -l <"$TMP/$name.false"), 'agent_side', $agent_side,
	    'victims', $((ST_AGENTS - v)),
	    'victim_suspect', (SELECT count(*) FROM s), 'victim_dead', (SELECT count(*) FROM d),
	    'suspect_p50', (SELECT late FROM s ORDER BY late LIMIT 1 OFFSET (SELECT count(*) / 2 FROM s)),
	    'suspect_p99', (SELECT late FROM s ORDER BY late LIMIT 1 OFFSET (SELECT count(*) * 99 / 100 FROM s)),
	    'suspect_max', (SELECT max(late) FROM s),
	    'dead_p50', (SELECT late FROM d ORDER BY late LIMIT 1 OFFSET (SELECT count(*) / 2 FROM d)),
	    'dead_max', (SELECT max(late) FROM d),
	    'held_p50', (SELECT held FROM h ORDER BY held LIMIT 1 OFFSET (SELECT count(*) / 2 FROM h)),
	    'held_events_max', (SELECT max(held) FROM h))" |
		jq -c --slurpfile h "$TMP/$name-holds.json" '. + $h[0]' >"$RES/$name.json"
}
starve_bfd() {
	local d s peer me t_start
	# bfdd drops to user frr: its directory must be reachable, unlike $TMP.
	d=$(mktemp -d "/tmp/vg$$-bfd.XXXXXX") || die "mktemp"
	chmod 0755 "$d"
	log "6/6 starvation: FRR bfdd, 10 ms x 3, the monitor's bfdd on CPU $RX_CPU, same load ($d)"
	command -v /usr/lib/frr/bfdd >/dev/null || { log "   /usr/lib/frr/bfdd missing (scripts/deps.sh installs frr): skipped"; return 0; }
	in_r "$BIN/vigil-bench" sink --iface "$IFR" --pin "$PIN_SINK" --pass || die "sink --pass"
	set_threaded 1
	pin_napi_normal || die "no NAPI thread for $IFR"
	mkdir -p "$d/vty-r" "$d/vty-g"
	chown -R frr:frr "$d" 2>/dev/null
	for s in r g; do
		if [ "$s" = r ]; then peer=198.18.0.2 me=198.18.0.1; else peer=198.18.0.1 me=198.18.0.2; fi
		printf 'bfd\n peer %s local-address %s\n  detect-multiplier 3\n  receive-interval 10\n  transmit-interval 10\n !\n!\n' \
			"$peer" "$me" >"$d/bfd-$s.conf"
		chown frr:frr "$d/bfd-$s.conf" 2>/dev/null
		if [ "$s" = r ]; then
			"${NS_R[@]}" taskset -c "$RX_CPU" /usr/lib/frr/bfdd -f "$d/bfd-$s.conf" --log "file:$d/bfd-$s.log" \
				-z "$d/zs-$s" -i "$d/bfd-$s.pid" --vty_socket "$d/vty-$s" --bfdctl "$d/ctl-$s" -u frr -g frr \
				>/dev/null 2>&1 &
		else
			"${NS_G[@]}" chrt -f 10 taskset -c "$GEN_CPU" /usr/lib/frr/bfdd -f "$d/bfd-$s.conf" \
				--log "file:$d/bfd-$s.log" -z "$d/zs-$s" -i "$d/bfd-$s.pid" --vty_socket "$d/vty-$s" \
				--bfdctl "$d/ctl-$s" -u frr -g frr >/dev/null 2>&1 &
		fi
		BG+=($!)
	done
	bfd_counter() {
		vtysh --vty_socket "$d/vty-r" -d bfdd -c 'show bfd peers counters json' 2>/dev/null |
			jq -r ".[0][\"$1\"] // empty"
	}
	for _ in $(seq 50); do
		[ "$(bfd_counter session-up)" = 1 ] && break
		sleep 0.2
	done
	local down0 up
	up=$(bfd_counter session-up)
	down0=$(bfd_counter session-down)
	t_start=$(mono)
	starve_load "$ST_SEC"
	wait "${ST_LOAD[@]}" 2>/dev/null
	sleep 1
	jq -n --arg up "${up:-0}" --arg d0 "${down0:-0}" --arg d1 "$(bfd_counter session-down)" \
		--arg sec "$ST_SEC" '{came_up: ($up | tonumber), session_down: (($d1 | tonumber) - ($d0 | tonumber)), seconds: ($sec | tonumber)}' \
		>"$RES/st-bfd.json"
	pkill -f "bfdd -f $d/" 2>/dev/null
	sleep 0.3
	cp "$d"/bfd-*.log "$TMP/" 2>/dev/null
	rm -rf "$PIN_SINK" "$d"
}
section_starve() {
	make_fleet "$ST_AGENTS" 5 1000 3
	starve_vigil "$(help_default run hold-max-ms)"
	starve_vigil 0
	starve_bfd
}

# The merged fleet view over NATS JetStream, and lease takeover after a
# monitor's death: their own scripts, also runnable alone. Each writes its
# table into $RES; the report prints it with the others.
section_fleet() {
	BENCH_QUICK=$QUICK "$ROOT/bench/fleet.sh" "$RES/fleet.md" >/dev/null ||
		log "bench/fleet.sh failed"
}
section_lease() {
	LEASE_KILLS=$LEASE_KILLS BENCH_OUT=$RES "$ROOT/bench/lease-takeover.sh" >"$RES/lease.md" ||
		log "bench/lease-takeover.sh failed"
}

for s in fastpath throughput scale massfail overload starve fleet lease; do
	case $SKIP in
	*" $s "*) log "skipping $s (BENCH_SKIP)" ;;
	*) "section_$s" ;;
	esac
done

# ================================================================ report
log "writing the report"
"$ROOT/bench/report.sh" "$RES" "$DOC" "$PLOTS" "$QUICK" "$T_START" "$GEN_CPU" "$RX_CPU" ||
	die "bench/report.sh failed"
rm -rf "$PLOTS/raw" && cp -r "$RES" "$PLOTS/raw"
log "done in $(($(date +%s) - T_START)) s: $DOC"

#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
#
# A flood that spoofs the agents' own address must not make them look dead.
#
# vigil in native XDP mode with keys watches 50 agents that beat every 10 ms
# from 198.18.0.2 (one `vigil beat --id 1-50` process), with the per-source
# limit lowered to 2,000 datagrams a second: the agents alone send 5,000 a
# second from that address. Then build/vigil-trafficgen floods from the same
# address, forged tags naming the 50 agents and random unknown ids, as fast
# as this machine allows, for 6 s.
#
# A datagram that names an agent from the address of that agent's newest
# accepted beat skips the per-source limit (docs/security.md, Rate limits),
# so:
#   - zero SUSPECT or DEAD for the 50 agents (less any the beater's own send
#     log explains), all ALIVE at the end, their beats getting through;
#   - the limit still holds the address for everything else: the unknown
#     ids are refused as over_rate_source (the rest as unknown_agent), and
#     the two add up to what was sent of them;
#   - every forgery naming an agent is judged on its tag: bad_tag, never
#     accepted.
# Before the skip, the agents' own beats spent that budget (and the flood
# with them), and they were dropped as over_rate_source: false alarms made
# by the monitor's own limiter.
#
# The generator and the receiving NAPI share a CPU, as in 40-flood.sh (which
# says why): nothing is lost in the veth ring before a program sees it.
# check_sh evaluates its single-quoted condition later (SC2016).
# shellcheck disable=SC2016
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
e2e_init

TG=$E2E_ROOT/build/vigil-trafficgen
BENCH=$E2E_ROOT/build/vigil-bench
[ -x "$TG" ] || die "$TG is not built (make test builds it)"
[ -x "$BENCH" ] || die "$BENCH is not built (make test builds it)"

N=50
INTERVAL_MS=10
FLOOD_S=6
SOURCE_PPS=2000
GEN_CPU=0

setup_veth_pair || die "creating namespaces $NS_MON/$NS_AGENT and a veth pair"
MAC_MON=$(ip -n "$NS_MON" -j link show "$IF_MON" | jq -r '.[0].address')
for ns in "$NS_MON" "$NS_AGENT"; do
	ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
done
ip -n "$NS_AGENT" neigh replace 198.18.0.1 lladdr "$MAC_MON" dev "$IF_AGENT" nud permanent
new_pin_root PIN spoof
KEYS=$E2E_TMP/keys
CONF=$E2E_TMP/agents.conf
EV=$E2E_TMP/events.jsonl
make_keys "$KEYS" "1-$N"
{
	echo "# $N agents for tests/e2e/41-spoofed-source.sh"
	echo "defaults interval-min-ms=5 interval-max-ms=1000 multiplier=3"
	for i in $(seq 1 $N); do echo "agent $i"; done
} >"$CONF"

start_daemon_or_die "vigil run attaches in native mode with a key file" \
	daemon "$NS_MON" "$PIN" --iface "$IF_MON" --mode native --config "$CONF" \
	--keys "$KEYS" --db "$E2E_TMP/vigil.db" --events-file "$EV" --dead-misses 2 --quiet
check "the per-source limit is lowered to $SOURCE_PPS/s (burst 200)" \
	"$BENCH" config --pin-root "$PIN" source_pps="$SOURCE_PPS" source_burst=200

start_bg beat "$NS_AGENT" "${BEAT_PRIO[@]}" taskset -c "$GEN_CPU" "$VIGIL" beat --id "1-$N" \
	--send-log "$E2E_TMP/send.beat.jsonl" \
	--target 198.18.0.1 --interval-ms "$INTERVAL_MS" --keys "$KEYS"

all_alive() {
	[ "$(count_state "$(status_json "$PIN")" alive)" -eq "$N" ]
}
if wait_for 10 all_alive; then
	ok "all $N agents are ALIVE, $((N * 1000 / INTERVAL_MS)) beats a second from 198.18.0.2"
else
	show_file "vigil beat stderr" "$E2E_TMP/beat.err"
	note "$(status_json "$PIN" | jq -c '.stats')"
	die "all $N agents are ALIVE, $((N * 1000 / INTERVAL_MS)) beats a second from 198.18.0.2"
fi

tx_dropped() { ip -n "$NS_AGENT" -j -s link show "$IF_AGENT" | jq -r '.[0].stats64.tx.dropped'; }
DROP0=$(tx_dropped)
T0=$(now)
ST0=$(status_json "$PIN")
if in_ns "$NS_AGENT" "$TG" --iface "$IF_AGENT" --dst-mac "$MAC_MON" --cpu "$GEN_CPU" \
	--mix forged=1,random=1 --first-id 1 --agents "$N" --src 198.18.0.2 \
	--duration "$FLOOD_S" --json >"$E2E_TMP/tg.json" 2>"$E2E_TMP/tg.err"; then
	ok "the generator flooded from 198.18.0.2 for ${FLOOD_S} s"
else
	show_file "vigil-trafficgen stderr" "$E2E_TMP/tg.err"
	die "the generator flooded from 198.18.0.2 for ${FLOOD_S} s"
fi
nap 0.3
ST1=$(status_json "$PIN")
T1=$(now)
VETH_DROPS=$(($(tx_dropped) - DROP0))

sent() { jq -r ".run.sent.$1" "$E2E_TMP/tg.json"; }
d() { echo $(($(jq -r ".stats.$1" <<<"$ST1") - $(jq -r ".stats.$1" <<<"$ST0"))); }
FORGED=$(sent forged)
RANDOM_IDS=$(sent random)
note "flood: $(jq -r .run.generated "$E2E_TMP/tg.json") frames in $(jq -r .run.seconds "$E2E_TMP/tg.json") s" \
	"($(jq -r .run.generated_pps "$E2E_TMP/tg.json") pps): forged $FORGED, random ids $RANDOM_IDS"
note "vigil: beats +$(d beats), bad_tag +$(d bad_tag), unknown_agent +$(d unknown_agent)," \
	"over_rate_source +$(d over_rate_source); veth dropped $VETH_DROPS"

check_sh "the flood outran the address's budget ($(((FLOOD_S + 1) * SOURCE_PPS)) in ${FLOOD_S} s) tenfold" \
	'[ "$FORGED" -gt 0 ] && [ "$RANDOM_IDS" -ge $((10 * (FLOOD_S + 1) * SOURCE_PPS)) ]'
# within NAME COUNTED SENT: counted what was sent, less at most what the
# veth ring dropped (frames no program saw), and less at most 1 %.
within() {
	local name=$1 got=$2 want=$3
	if [ "$got" -le "$want" ] && [ "$got" -ge $((want - VETH_DROPS)) ] &&
		[ $((got * 100)) -ge $((want * 99)) ]; then
		ok "$name: counted $got of $want sent"
	else
		not_ok "$name: counted $got of $want sent ($VETH_DROPS dropped by veth)"
	fi
}
within "forgeries naming the agents, from their address, judged on their tag: bad_tag" \
	"$(d bad_tag)" "$FORGED"
within "unknown ids refused, as over_rate_source or unknown_agent" \
	$(($(d over_rate_source) + $(d unknown_agent))) "$RANDOM_IDS"
check_sh "the address's limit held for the unknown ids (most refused as over_rate_source)" \
	'[ $(($(d over_rate_source) * 2)) -ge "$RANDOM_IDS" ]'

ROUNDS=$(awk -v a="$T0" -v b="$T1" -v i="$INTERVAL_MS" 'BEGIN { printf "%d", (b - a) * 1000 / i + 1 }')
BEATS=$(d beats)
note "legitimate: $BEATS beats accepted in about $ROUNDS rounds of $N"
check_sh "no forgery accepted, and the agents' beats kept getting through (90 % of $((N * ROUNDS)))" \
	'[ "$BEATS" -le $((N * (ROUNDS + 2))) ] && [ $((BEATS * 10)) -ge $((N * ROUNDS * 9)) ]'

T_STOP_NS=$(mono_ns)
kill_bg beat TERM
nap 0.2
agent_excuse "$EV" "1-$N" "$T_STOP_NS"
without_excused "$EV" "$E2E_TMP/events.checked.jsonl"
ALARMS=$(events_where "$E2E_TMP/events.checked.jsonl" \
	"(.kind == \"suspect\" or .kind == \"dead\") and .detected_ns < $T_STOP_NS")
check "zero SUSPECT or DEAD for the $N agents while their address was flooded" [ "$ALARMS" -eq 0 ]
[ "$ALARMS" -eq 0 ] || note "$(jq -c "select(.kind == \"suspect\" or .kind == \"dead\") | [.agent_id, .kind, .detected_ns, .last_seen_ns]" "$E2E_TMP/events.checked.jsonl" | head -10)"
check "all $N agents were ALIVE after the flood" [ "$(count_state "$ST1" alive)" -eq "$N" ]
check "the daemon kept running" alive daemon

e2e_finish

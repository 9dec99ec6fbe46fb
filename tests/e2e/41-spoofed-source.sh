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
# The generator and the receiving NAPI share a CPU: tests/e2e/lib_flood.sh
# says why.
# check_sh evaluates its single-quoted condition later (SC2016).
# shellcheck disable=SC2016
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
e2e_init
# shellcheck source=tests/e2e/lib_flood.sh
. "$E2E_ROOT/tests/e2e/lib_flood.sh"
BENCH=$E2E_ROOT/build/vigil-bench
[ -x "$BENCH" ] || die "$BENCH is not built (make test builds it)"

N=50
INTERVAL_MS=10
FLOOD_S=6
SOURCE_PPS=2000

flood_fleet spoof "$N" "$INTERVAL_MS"
check "the per-source limit is lowered to $SOURCE_PPS/s (burst 200), below the agents' $((N * 1000 / INTERVAL_MS))" \
	"$BENCH" config --pin-root "$PIN" source_pps="$SOURCE_PPS" source_burst=200
# A second of the agents alone: over the address's budget, and not limited.
Q0=$(status_json "$PIN" | jq .stats.over_rate_source)
nap 1
Q1=$(status_json "$PIN" | jq .stats.over_rate_source)
check "the agents' own $((N * 1000 / INTERVAL_MS)) beats a second from one address are not limited" \
	[ "$Q1" -eq "$Q0" ]

flood_run "the generator flooded from 198.18.0.2 for ${FLOOD_S} s" \
	--mix forged=1,random=1 --first-id 1 --agents "$N" --src 198.18.0.2 --duration "$FLOOD_S"

FORGED=$(sent forged)
RANDOM_IDS=$(sent random)
note "flood: $(jq -r .run.generated "$E2E_TMP/tg.json") frames in $(jq -r .run.seconds "$E2E_TMP/tg.json") s" \
	"($(jq -r .run.generated_pps "$E2E_TMP/tg.json") pps): forged $FORGED, random ids $RANDOM_IDS"
note "vigil: beats +$(d beats), bad_tag +$(d bad_tag), unknown_agent +$(d unknown_agent)," \
	"over_rate_source +$(d over_rate_source); veth dropped $VETH_DROPS"

check_sh "the flood outran the address's budget ($(((FLOOD_S + 1) * SOURCE_PPS)) in ${FLOOD_S} s) tenfold" \
	'[ "$FORGED" -gt 0 ] && [ "$RANDOM_IDS" -ge $((10 * (FLOOD_S + 1) * SOURCE_PPS)) ]'
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

flood_alarms
check "zero SUSPECT or DEAD for the $N agents while their address was flooded" [ "$ALARMS" -eq 0 ]
check "all $N agents were ALIVE after the flood" [ "$(count_state "$ST1" alive)" -eq "$N" ]
check "the daemon kept running" alive daemon

e2e_finish

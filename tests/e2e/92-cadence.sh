#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
#
# Adaptive cadence and storm control end to end (include/vigil/cadence.h,
# docs/leases.md#adaptive-cadence, user/daemon/storm.c):
#   1. step load: an agent (`vigil beat --adaptive 20,320`, queue depth read
#      from a file) whose queue depth steps 0 -> 1000 -> 0 changes its cadence
#      exactly 8 times (20, 40, 80, 160, 320 and back; printed), the monitor
#      follows (its view of the interval reaches 320 ms), a depth hovering
#      around the first threshold moves it at most once each way, and the
#      agent is never SUSPECT.
#   2. storm control (--storm-beats-per-sec 1000 --storm-interval-ms 200):
#      50 agents at 20 ms (2500 beats/s) bring a `storm` notice; every agent
#      announces 200 ms; the monitor's beat rate (vigil status --json
#      .stats.beats deltas) falls within the budget; the recommendation stays
#      in force while the fleet would exceed the budget at its own cadence
#      (no flapping); once 40 agents leave, `storm_over` comes, the other 10
#      return to 20 ms and the rate stays within the budget; no SUSPECT
#      throughout.
#
# One network namespace with only loopback; skb-mode XDP on its lo, which
# also carries the acknowledgements (XDP_TX) back to the agents.
# check_sh evaluates its single-quoted condition later (SC2016, SC2034); small
# predicates are called through check/wait_for (SC2317).
# shellcheck disable=SC2016,SC2034,SC2317
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
e2e_init
need_tools sqlite3

setup_lo_test "vg$$k" cadence
T=$E2E_TMP
QFILE=$T/queue-depth

BUDGET=1000     # --storm-beats-per-sec
STORM_IV=200    # --storm-interval-ms
FLEET_LO=11     # storm fleet: agents 11..60 at 20 ms
FLEET_HI=60
KEEP_HI=20      # 11..20 stay, 21..60 leave

make_keys "$KEYS" 1-60 || die "vigil key gen --id 1-60"
{
	echo "defaults interval-min-ms=10 interval-max-ms=1000 multiplier=3 group=cad"
	echo "agent 1 name=stepper"
	for ((i = FLEET_LO; i <= FLEET_HI; i++)); do echo "agent $i name=fleet-$i"; done
	echo "ack cad"
} >"$CONF"

start_daemon_or_die "vigil run attaches in skb mode to lo" daemon "$NS" "$PIN" --iface lo --mode skb \
	--config "$CONF" --keys "$KEYS" --db "$DB" --metrics off --storm-beats-per-sec "$BUDGET" \
	--storm-interval-ms "$STORM_IV"
[ ${#BEAT_PRIO[@]} -eq 0 ] || chrt -f -p 10 "${PIDS[daemon]}" >/dev/null 2>&1
ok "vigil run attaches (skb mode on lo, storm budget $BUDGET beats/s, ack group)"

q() { sqlite3 -cmd '.timeout 5000' "$DB" "$@"; }
n_kind() { q "SELECT count(*) FROM events WHERE kind = '$1' AND agent_id BETWEEN $2 AND $3"; }
n_notice() { q "SELECT count(*) FROM notices WHERE kind = '$1'"; }
notice_at_least() { [ "$(n_notice "$1")" -ge "$2" ]; }
state_of() { agent_field "$(status_json "$PIN")" "$1" state; }
monitor_iv() { agent_field "$(status_json "$PIN")" "$1" interval_ms; }
beats_total() { status_json "$PIN" | jq '.stats.beats'; }
# rate SECONDS: accepted beats per second over the next SECONDS.
rate() {
	local b0 b1 t0 t1
	b0=$(beats_total) t0=$(now)
	nap "$1"
	b1=$(beats_total) t1=$(now)
	awk -v b="$((b1 - b0))" -v t0="$t0" -v t1="$t1" 'BEGIN { printf "%d", b / (t1 - t0) }'
}
# cadence LOG: the intervals announced, in order, from --print-cadence lines.
cadence_seq() { jq -r '.interval_ms' "$1" 2>/dev/null | paste -sd, -; }
set_depth() { echo "$1" >"$QFILE.tmp" && mv "$QFILE.tmp" "$QFILE"; }
# hover_depth LO HI: for 5 s, a random queue depth in [LO, HI] every 50 ms.
hover_depth() {
	local end=$(($(date +%s) + 5))
	while [ "$(date +%s)" -lt "$end" ]; do
		set_depth $(($1 + RANDOM % ($2 - $1 + 1)))
		sleep 0.05
	done
}
# unexcused_misses A B SINCE_NS: MISSES := SUSPECT/DEAD of agents A..B
# detected after SINCE_NS (monotonic) that the agents' send logs do not explain.
unexcused_misses() {
	local ev=$T/ev.$1.jsonl evf=$T/evf.$1.jsonl
	log_json "$DB" | jq -c "select(.detected_ns >= $3)" >"$ev"
	agent_excuse "$ev" "$1-$2"
	without_excused "$ev" "$evf"
	MISSES=$(events_where "$evf" "(.kind == \"suspect\" or .kind == \"dead\") and .agent_id >= $1 and .agent_id <= $2")
}

# ------------------------------------------------------------ 1. step load
set_depth 0
t_step=$(mono_ns)
start_beater step "$NS" --id 1 --target 127.0.0.1 --keys "$KEYS" --adaptive 20,320 \
	--queue-depth-from "$QFILE" --print-cadence --leave
alive1() { [ "$(state_of 1)" = alive ]; }
last_iv() { [ "$(jq -r .interval_ms "$T/step.out" 2>/dev/null | tail -n 1)" = "$1" ]; }
wait_for 5 alive1 || die "the adaptive agent comes up"
nap 1
check_sh "at an empty queue the agent announces its shortest interval (monitor sees $(monitor_iv 1) ms, no change printed)" \
	'[ "$(monitor_iv 1)" = 20 ] && [ ! -s "$T/step.out" ]'
set_depth 1000
# 4 x (20 + 40 + 80 + 160) ms of dwell to reach the top.
wait_for 5 last_iv 320
nap 1
iv_top=$(monitor_iv 1)
set_depth 0
wait_for 6 last_iv 20
nap 0.5
steps=$(cadence_seq "$T/step.out")
n_steps=$(grep -c . "$T/step.out")
note "step load 0 -> 1000 -> 0: announced intervals $steps (ms), $n_steps changes"
check_sh "queue depth 0 -> 1000 -> 0 moves the cadence exactly 8 times, one level at a time: 40,80,160,320,160,80,40,20" \
	'[ "$steps" = "40,80,160,320,160,80,40,20" ]'
check_sh "the monitor followed the agent to 320 ms at the deep queue (saw $iv_top ms) and back to $(monitor_iv 1) ms" \
	'[ "$iv_top" = 320 ] && [ "$(monitor_iv 1)" = 20 ]'
# Noise around the first threshold (64): 48..80 every 50 ms for 5 s, then
# around the way back (16): 12..20.
n_before=$n_steps
hover_depth 48 80
n_up=$(($(grep -c . "$T/step.out") - n_before))
hover_depth 12 20
n_all=$(($(grep -c . "$T/step.out") - n_before))
note "noisy depth around 64 for 5 s: $n_up change(s); then around 16 for 5 s: $((n_all - n_up)) more ($(jq -r .interval_ms "$T/step.out" | tail -n +$((n_before + 1)) | paste -sd, -))"
check_sh "a queue depth hovering around a threshold does not make it oscillate (at most one change each way: $n_up up, $((n_all - n_up)) down)" \
	'[ "$n_up" -le 1 ] && [ "$((n_all - n_up))" -le 1 ] && [ "$n_up" -eq "$((n_all - n_up))" ]'
kill_bg step TERM
nap 0.3
unexcused_misses 1 1 "$t_step"
misses=$MISSES
check_sh "no SUSPECT or DEAD of the adaptive agent through all its cadence changes ($misses)" '[ "$misses" -eq 0 ]'

# ---------------------------------------------------------- 2. storm control
set_depth 0
t_fleet=$(now)
start_beater fleet-keep "$NS" --id "$FLEET_LO-$KEEP_HI" --target 127.0.0.1 --keys "$KEYS" \
	--interval-ms 20 --max-interval-ms 1000 --print-cadence --leave
start_beater fleet-go "$NS" --id "$((KEEP_HI + 1))-$FLEET_HI" --target 127.0.0.1 --keys "$KEYS" \
	--interval-ms 20 --max-interval-ms 1000 --print-cadence --leave
all_fleet_alive() {
	[ "$(status_json "$PIN" | jq "[.agents[] | select(.agent_id >= $FLEET_LO and .state == \"alive\")] | length")" -eq $((FLEET_HI - FLEET_LO + 1)) ]
}
wait_for 5 all_fleet_alive || die "50 agents beat every 20 ms"
t_alive=$(mono_ns) # before: the fleet's agents were NEW past their deadline
r_before=$(rate 0.5)
check_sh "50 agents at 20 ms: the monitor takes $r_before beats/s, over the budget of $BUDGET" \
	'[ "$r_before" -gt "$BUDGET" ]'
if wait_for 8 notice_at_least storm 1; then
	ok "a storm notice: $(q "SELECT detail FROM notices WHERE kind = 'storm' LIMIT 1")"
else
	show_file "daemon" "$T/daemon.err"
	not_ok "a storm notice comes within 8 s"
fi
slowed() { # slowed LOG N: N agents printed the storm interval
	[ "$(jq -r "select(.interval_ms == $STORM_IV) | .agent_id" "$1" 2>/dev/null | sort -u | wc -l)" -ge "$2" ]
}
wait_for 3 slowed "$T/fleet-keep.out" 10 && wait_for 3 slowed "$T/fleet-go.out" 40
n_slow=$(cat "$T/fleet-keep.out" "$T/fleet-go.out" | jq -r "select(.interval_ms == $STORM_IV) | .agent_id" | sort -u | wc -l)
check_sh "every agent of the fleet announces the recommended $STORM_IV ms ($n_slow of 50)" '[ "$n_slow" -eq 50 ]'
nap 3 # let the monitor measure the obeyed rate
r_storm=$(rate 2)
n_fleet_iv=$(status_json "$PIN" | jq "[.agents[] | select(.agent_id >= $FLEET_LO and .interval_ms == $STORM_IV)] | length")
check_sh "under storm the monitor takes $r_storm beats/s, within the budget of $BUDGET (was $r_before); it sees $n_fleet_iv agents at $STORM_IV ms" \
	'[ "$r_storm" -le "$BUDGET" ] && [ "$n_fleet_iv" -eq 50 ]'
# The fleet would exceed the budget again at its own cadence: no flapping.
nap 6
check_sh "the recommendation stays in force while 50 agents at their own cadence would exceed the budget (no storm_over after $(awk -v a="$t_fleet" -v b="$(now)" 'BEGIN { printf "%d", b - a }') s)" \
	'[ "$(n_notice storm_over)" -eq 0 ] && [ "$(n_notice storm)" -eq 1 ]'
# 40 agents leave: 10 at 20 ms would be 500 beats/s, under 80 % of the budget.
kill_bg fleet-go TERM
all_left() { [ "$(n_kind left "$((KEEP_HI + 1))" "$FLEET_HI")" -eq 40 ]; }
wait_for 3 all_left
n_left=$(n_kind left "$((KEEP_HI + 1))" "$FLEET_HI")
if wait_for 10 notice_at_least storm_over 1; then
	ok "40 agents leave ($n_left LEFT): storm_over: $(q "SELECT detail FROM notices WHERE kind = 'storm_over' LIMIT 1")"
else
	show_file "daemon" "$T/daemon.err"
	not_ok "storm_over comes within 10 s of 40 agents leaving"
fi
back() { # all 10 remaining agents printed 20 ms after the storm interval
	[ "$(jq -r 'select(.interval_ms == 20 and .previous_ms > 20) | .agent_id' "$T/fleet-keep.out" 2>/dev/null | sort -u | wc -l)" -ge 10 ]
}
wait_for 3 back
n_back=$(jq -r 'select(.interval_ms == 20 and .previous_ms > 20) | .agent_id' "$T/fleet-keep.out" | sort -u | wc -l)
r_after=$(rate 2)
check_sh "the remaining agents return to their own 20 ms ($n_back of 10) and the monitor takes $r_after beats/s, within the budget" \
	'[ "$n_back" -eq 10 ] && [ "$r_after" -le "$BUDGET" ] && [ "$r_after" -ge 300 ]'
nap 3
check_sh "no storm comes back ($(n_notice storm) storm, $(n_notice storm_over) storm_over notices)" \
	'[ "$(n_notice storm)" -eq 1 ] && [ "$(n_notice storm_over)" -eq 1 ]'
seq_keep=$(jq -r 'select(.agent_id == 11) | .interval_ms' "$T/fleet-keep.out" | paste -sd, -)
note "agent 11 announced: 20,$seq_keep ms"
kill_bg fleet-keep TERM
nap 0.3
unexcused_misses "$FLEET_LO" "$FLEET_HI" "$t_alive"
misses=$MISSES
check_sh "no SUSPECT or DEAD in the fleet through the storm, its slow-down and its end ($misses)" \
	'[ "$misses" -eq 0 ]'
[ "$misses" -eq 0 ] || show_file "daemon" "$T/daemon.out" 20

e2e_finish

#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
#
# The daemon's alert policy end to end (user/daemon/policy.c, user/daemon/escalate.c):
#   1. flap damping (--flap-half-life-s 2, default thresholds): an agent
#      whose beater is killed and restarted over and over is suppressed once
#      its penalty passes 5000 (one `suppressed` notice, at the event the
#      penalty model predicts); the exec sink gets fewer alerts than there are
#      SUSPECT/DEAD/RECOVERED events, every one of which is still in the log;
#      after calm it is released (`released` notice, at the time the model
#      predicts) and its current state is alerted once if that differs from
#      the last alert; afterwards its alerts flow again. A stable agent that
#      dies once gets all three alerts.
#   2. remediation (--remediate ... --remediate-max 3 --remediate-backoff-ms
#      100,400 --remediate-timeout-s 1): a failing hook is tried exactly 3
#      times (attempts 1, 2, 3) within the backoff ceilings, each with a
#      `remediation` notice; a succeeding hook once; an agent that recovers
#      gets no further attempt; a hanging hook is killed after the timeout
#      and the next attempt still comes, while another agent's death is
#      detected, logged and remediated on time; an agent that dies again
#      while its hook still runs does not get a second hook at the same time,
#      and its new episode gets its own attempts once the first hook is done.
#   3. bad policy options exit 2 with one line on stderr, nothing pinned.
#
# One network namespace with only loopback; skb-mode XDP on its lo.
# check_sh evaluates its single-quoted condition later (SC2016, SC2034); small
# predicates are called through check/wait_for (SC2317).
# shellcheck disable=SC2016,SC2034,SC2317
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
e2e_init
need_tools python3 sqlite3

setup_lo_test "vg$$p" policy
T=$E2E_TMP
ALERTS=$T/alerts.jsonl
REMEDY=$T/remedy.log
HUNG=$T/hung.log

INTERVAL_MS=20
HALF_LIFE_S=2
CYCLES=4           # flap cycles of agent 1: 12 transitions
FLAPPER=1
STABLE=2
R_FAIL=21          # hook exits 1: tried --remediate-max times
R_OK=22            # hook exits 0: tried once
R_RECOVER=23       # hook brings the agent back: no further attempt
R_HANG=24          # hook hangs: killed after --remediate-timeout-s
R_WITNESS=25       # dies while agent 24's hook hangs
R_AGAIN=26         # dies again while its (slow) hook runs
REM_MAX=3
BACKOFF_BASE=100
BACKOFF_CAP=400
HOOK_TIMEOUT_S=1
SLACK_MS=300       # two daemon loop turns (<= 100 ms each) plus the hook's own run time
LATE_MAX_US=20000

make_keys "$KEYS" 1-26 || die "vigil key gen --id 1-26"
{
	echo "defaults interval-min-ms=$INTERVAL_MS interval-max-ms=1000 multiplier=3 group=pol"
	for i in $FLAPPER $STABLE $R_FAIL $R_OK $R_RECOVER $R_HANG $R_WITNESS $R_AGAIN; do
		echo "agent $i name=pol-$i"
	done
} >"$CONF"

q() {
	sqlite3 -cmd '.timeout 5000' "$DB" "$@"
}
# n_ev AGENT KIND: logged events of that kind.
n_ev() {
	q "SELECT count(*) FROM events WHERE agent_id = $1 AND kind = '$2'"
}
ev_at_least() { [ "$(n_ev "$1" "$2")" -ge "$3" ]; }
# n_notice AGENT KIND
n_notice() {
	q "SELECT count(*) FROM notices WHERE agent_id = $1 AND kind = '$2'"
}
notice_at_least() { [ "$(n_notice "$1" "$2")" -ge "$3" ]; }
outbox_empty() {
	[ "$(q "SELECT count(*) FROM outbox")" -eq 0 ]
}
# alerts AGENT: the event_seq and kind of every alert the exec sink got for AGENT.
alerts() {
	[ -s "$ALERTS" ] || return 0
	jq -r --argjson a "$1" 'select(.agent_id == $a) | "\(.event_seq) \(.kind)"' "$ALERTS"
}
# attempts AGENT: the attempt numbers the hook saw for AGENT, space-separated.
attempts() {
	[ -s "$REMEDY" ] || return 0
	awk -v a="$1" '$1 == a { printf "%s%s", sep, $2; sep = " " }' "$REMEDY"
}
n_attempts() {
	[ -s "$REMEDY" ] || {
		echo 0
		return
	}
	awk -v a="$1" '$1 == a { n++ } END { print n + 0 }' "$REMEDY"
}
attempts_at_least() { [ "$(n_attempts "$1")" -ge "$2" ]; }
beat() { # beat AGENT INCARNATION
	start_beater "beat-$1" "$NS" --id "$1" --keys "$KEYS" --target 127.0.0.1 \
		--interval-ms "$INTERVAL_MS" --incarnation "$2"
}
state_of() {
	agent_field "$(status_json "$PIN")" "$1" state
}
all_alive() {
	[ "$(count_state "$(status_json "$PIN")" alive)" -eq 8 ]
}

# ------------------------------------------------- phase 3 first: bad options
# (run before anything is pinned, so "nothing pinned" means PIN is absent)
expect_bad() { # expect_bad DESCRIPTION REGEX OPTIONS...
	local what=$1 re=$2 rc
	shift 2
	in_ns "$NS" "$VIGIL" run --iface lo --mode skb --keys "$KEYS" --config "$CONF" \
		--pin-root "$PIN" --db "$DB" --metrics off "$@" >"$T/bad.out" 2>"$T/bad.err"
	rc=$?
	if [ "$rc" -eq 2 ] && [ "$(wc -l <"$T/bad.err")" -eq 1 ] && grep -qE -- "$re" "$T/bad.err" &&
		[ ! -e "$PIN" ] && [ ! -e "$DB" ]; then
		ok "$what: exit 2, \"$(cat "$T/bad.err")\", nothing pinned or created"
	else
		show_file stderr "$T/bad.err" 5
		not_ok "$what (exit $rc, pin root $([ -e "$PIN" ] && echo exists || echo absent))"
	fi
}
expect_bad "--flap-reuse 6000 --flap-suppress 5000" 'flap-reuse \(6000\) must be below --flap-suppress \(5000\)' \
	--flap-reuse 6000 --flap-suppress 5000
expect_bad "--flap-reuse 6000 alone (the default --flap-suppress is 5000)" 'flap-reuse \(6000\) must be below' \
	--flap-reuse 6000
expect_bad "--remediate-max 0" 'remediate-max: 0 is out of range' \
	--remediate 'true' --remediate-max 0
expect_bad "--remediate-backoff-ms abc" "remediate-backoff-ms: 'abc' is not" \
	--remediate 'true' --remediate-backoff-ms abc
expect_bad "--remediate-backoff-ms 400,100 (cap below base)" 'remediate-backoff-ms: 100 is out of range' \
	--remediate 'true' --remediate-backoff-ms 400,100
expect_bad "--remediate-timeout-s 0" 'remediate-timeout-s: 0 is out of range' \
	--remediate 'true' --remediate-timeout-s 0

# ------------------------------------------------------ phase 1: flap damping
# The exec sink appends each alert's JSON (one line each).
COMMON=(--iface lo --mode skb --keys "$KEYS" --config "$CONF" --db "$DB" --metrics off
	--alert-exec "cat >> $ALERTS; echo >> $ALERTS")
start_daemon_or_die "vigil run starts with --flap-half-life-s $HALF_LIFE_S" \
	daemon "$NS" "$PIN" "${COMMON[@]}" --flap-half-life-s "$HALF_LIFE_S"
ok "vigil run starts with --flap-half-life-s $HALF_LIFE_S and an exec sink"
for i in $FLAPPER $STABLE $R_FAIL $R_OK $R_RECOVER $R_HANG $R_WITNESS $R_AGAIN; do beat "$i" 1; done
wait_for 5 all_alive || die "all 8 agents are ALIVE after their first beats"

# Agent 1 flaps: killed, logged DEAD, restarted (a higher incarnation),
# logged RECOVERED, CYCLES times, as fast as the 20 ms cadence allows.
flap_ok=true
for ((c = 1; c <= CYCLES; c++)); do
	kill_bg "beat-$FLAPPER" KILL
	wait_for 3 ev_at_least "$FLAPPER" dead "$c" || flap_ok=false
	beat "$FLAPPER" $((c + 1))
	wait_for 3 ev_at_least "$FLAPPER" recovered "$c" || flap_ok=false
done
check "agent $FLAPPER flaps $CYCLES times (killed and restarted; each DEAD and RECOVERED logged)" $flap_ok

# Meanwhile, agent 2 dies once and comes back.
kill_bg "beat-$STABLE" KILL
wait_for 3 ev_at_least "$STABLE" dead 1 || not_ok "agent $STABLE stops beating: DEAD is logged"
beat "$STABLE" 2
wait_for 3 ev_at_least "$STABLE" recovered 1 || not_ok "agent $STABLE beats again: RECOVERED is logged"

wait_for 5 outbox_empty || not_ok "the exec sink drains the outbox"
# Detection and recording are never suppressed: every transition is logged.
n_s=$(n_ev $FLAPPER suspect)
n_d=$(n_ev $FLAPPER dead)
n_r=$(n_ev $FLAPPER recovered)
n_events=$((n_s + n_d + n_r))
check "all $((3 * CYCLES)) transitions of the flapping agent are in the event log (suspect $n_s, dead $n_d, recovered $n_r)" \
	[ "$n_s" -eq "$CYCLES" ] && [ "$n_d" -eq "$CYCLES" ] && [ "$n_r" -eq "$CYCLES" ]
n_sup=$(n_notice $FLAPPER suppressed)
check "one 'suppressed' notice for agent $FLAPPER in the notices table ($n_sup)" [ "$n_sup" -eq 1 ]
check "no 'released' notice yet (the penalty decays with a ${HALF_LIFE_S} s half-life)" \
	[ "$(n_notice $FLAPPER released)" -eq 0 ]
n_alerts=$(alerts $FLAPPER | wc -l)
check "the exec sink got fewer alerts ($n_alerts) than the agent's SUSPECT/DEAD/RECOVERED events ($n_events)" \
	[ "$n_alerts" -ge 3 ] && [ "$n_alerts" -lt "$n_events" ]

# The alerted events are exactly the first ones in the log: the first episode
# passes, everything from the event that crossed the threshold is withheld.
# A model of the penalty (1000 per transition, halving every HALF_LIFE_S,
# suppress above 5000, ceiling 16000, release below 1500) on the logged
# record times says where suppression starts and when release is due.
q -separator ' ' "SELECT event_seq, kind, recorded_wall_ns FROM events WHERE agent_id = $FLAPPER AND kind IN ('suspect', 'dead', 'recovered') ORDER BY event_seq" >"$T/flap-events.txt"
alerts $FLAPPER >"$T/flap-alerts.txt"
q -separator ' ' "SELECT kind, wall_ns FROM notices WHERE agent_id = $FLAPPER ORDER BY id" >"$T/flap-notices.txt"
model() { # model: "K PREDICTED_RELEASE_WALL_NS LAST_ALERTED_KIND"
	python3 - "$T/flap-events.txt" "$HALF_LIFE_S" <<'EOF'
import math, sys
evs = [l.split() for l in open(sys.argv[1]) if l.strip()]
hl = float(sys.argv[2]) * 1e9
p, t0, k, last = 0.0, None, None, None
for i, (seq, kind, t) in enumerate(evs):
    t = int(t)
    if t0 is not None:
        p *= 2 ** (-(t - t0) / hl)
    t0 = t
    p = min(p + 1000, 16000)
    if k is None and p > 5000:
        k = i
    if k is None:
        last = kind
release = t0 + hl * math.log2(p / 1500) if p > 1500 else t0
print(k if k is not None else -1, int(release), last)
EOF
}
read -r K_MODEL RELEASE_MODEL LAST_ALERTED <<<"$(model)"
first_k=$(awk '{ print $1 " " $2 }' "$T/flap-events.txt" | head -n "$n_alerts")
check_sh "the alerts are the first $n_alerts events (seq and kind), and the model suppresses from event $((K_MODEL + 1)) on" \
	'[ "$(cat "$T/flap-alerts.txt")" = "$first_k" ] && [ "$K_MODEL" -eq "$n_alerts" ]'
sup_at=$(awk '$1 == "suppressed" { print $2 }' "$T/flap-notices.txt")
withheld_first=$(awk -v k="$n_alerts" 'NR == k + 1 { print $3 }' "$T/flap-events.txt")
withheld_next=$(awk -v k="$n_alerts" 'NR == k + 2 { print $3 }' "$T/flap-events.txt")
check_sh "the 'suppressed' notice is recorded with the first withheld event (event $((n_alerts + 1)) of $n_events)" \
	'[ -n "$sup_at" ] && [ "$sup_at" -ge "$withheld_first" ] && { [ -z "$withheld_next" ] || [ "$sup_at" -le "$withheld_next" ]; }'

# Agent 2's single episode: all three alerts, no notice.
stable_ev=$(q -separator ' ' "SELECT event_seq, kind FROM events WHERE agent_id = $STABLE AND kind IN ('suspect', 'dead', 'recovered') ORDER BY event_seq")
stable_alerts() { [ "$(alerts "$STABLE" | sort -n)" = "$stable_ev" ]; }
wait_for 3 stable_alerts
check_sh "a stable agent that dies once gets all three alerts (suspect, dead, recovered) and no notice" \
	'[ "$(awk "{ print \$2 }" <<<"$stable_ev" | tr "\n" " ")" = "suspect dead recovered " ] && stable_alerts &&
	 [ "$(q "SELECT count(*) FROM notices WHERE agent_id = $STABLE")" -eq 0 ]'

# Release: after about log2(penalty / 1500) half-lives of calm.
wait_s=$(((RELEASE_MODEL - $(date +%s%N)) / 1000000000 + 5))
[ "$wait_s" -lt 5 ] && wait_s=5
note "model: suppression from event $((K_MODEL + 1)), release due in $(((RELEASE_MODEL - $(date +%s%N)) / 1000000)) ms"
if wait_for "$wait_s" notice_at_least $FLAPPER released 1; then
	rel_at=$(q "SELECT wall_ns FROM notices WHERE agent_id = $FLAPPER AND kind = 'released'")
	d_ms=$(((rel_at - RELEASE_MODEL) / 1000000))
	check_sh "'released' notice once the penalty decays below 1500 (${d_ms} ms after the model's time, within [-50, 400])" \
		'[ "$d_ms" -ge -50 ] && [ "$d_ms" -le 400 ] && [ "$(n_notice $FLAPPER released)" -eq 1 ]'
else
	not_ok "'released' notice for agent $FLAPPER within ${wait_s} s"
fi
# The current state (ALIVE, reached by the last RECOVERED) is alerted once,
# as that event, if the last alert before suppression was another kind.
last_r=$(q "SELECT max(event_seq) FROM events WHERE agent_id = $FLAPPER AND kind = 'recovered'")
withheld_alerts() {
	awk -v k="$n_alerts" 'NR > k { print $1 }' "$T/flap-events.txt" >"$T/withheld.txt"
	alerts $FLAPPER | awk 'NR == FNR { w[$1] = 1; next } ($1 in w)' "$T/withheld.txt" -
}
if [ "$LAST_ALERTED" != recovered ]; then
	wait_for 3 sh -c "[ -s '$ALERTS' ] && grep -q '\"event_seq\":$last_r,' '$ALERTS'"
	nap 0.3
	got=$(withheld_alerts)
	check "on release, one alert for the current state: 'recovered' as event $last_r (the last alert was '$LAST_ALERTED'); got '$got'" \
		[ "$got" = "$last_r recovered" ]
else
	nap 0.5
	check "on release, no alert: the last alert already was 'recovered'" [ -z "$(withheld_alerts)" ]
fi

# Alerts flow again: one more episode (penalty <= 1500 + 3000 < 5000).
before=$(alerts $FLAPPER | wc -l)
kill_bg "beat-$FLAPPER" KILL
wait_for 3 ev_at_least "$FLAPPER" dead $((CYCLES + 1))
beat "$FLAPPER" $((CYCLES + 2))
wait_for 3 ev_at_least "$FLAPPER" recovered $((CYCLES + 1))
post_ev=$(q -separator ' ' "SELECT event_seq, kind FROM events WHERE agent_id = $FLAPPER AND kind IN ('suspect', 'dead', 'recovered') ORDER BY event_seq" | tail -n 3)
post_alerts() { [ "$(alerts "$FLAPPER" | tail -n 3)" = "$post_ev" ]; }
wait_for 3 post_alerts
check_sh "after release, the next episode is alerted again (3 alerts, $(($(alerts $FLAPPER | wc -l) - before)) new), no second 'suppressed' notice" \
	'post_alerts && [ "$(($(alerts $FLAPPER | wc -l) - before))" -eq 3 ] && [ "$(n_notice $FLAPPER suppressed)" -eq 1 ]'

kill_bg daemon TERM
check "vigil run stops on SIGTERM (exit $LAST_RC)" [ "$LAST_RC" -eq 0 ]

# ------------------------------------------------------- phase 2: remediation
# The hook records its agent and attempt, then: agent 22 succeeds; agent 23
# starts the agent's beater again (it recovers during the attempt), waits
# for it to be seen and fails; agent 24 hangs (2.5 s > the 1 s timeout; a
# completed run would leave a line in hung.log); agent 26's takes 0.8 s and
# notes in overlap.log when another of its runs is still going; every other
# agent fails at once.
cat >"$T/hook.sh" <<EOF
case \$VIGIL_AGENT_ID in
$R_OK) exit 0 ;;
$R_RECOVER)
	"$VIGIL" beat --id $R_RECOVER --keys "$KEYS" --target 127.0.0.1 --interval-ms $INTERVAL_MS \\
		--incarnation 2 --duration 300 </dev/null >/dev/null 2>&1 &
	echo \$! >"$T/beat-$R_RECOVER.pid"
	sleep 0.3
	exit 1 ;;
$R_HANG)
	sleep 2.5
	echo "\$VIGIL_AGENT_ID \$VIGIL_ATTEMPT finished" >>"$HUNG"
	exit 1 ;;
$R_AGAIN)
	[ -e "$T/running-$R_AGAIN" ] && echo "attempt \$VIGIL_ATTEMPT overlaps" >>"$T/overlap.log"
	touch "$T/running-$R_AGAIN"
	sleep 0.8
	rm -f "$T/running-$R_AGAIN"
	exit 1 ;;
esac
exit 1
EOF
HOOK="echo \"\$VIGIL_AGENT_ID \$VIGIL_ATTEMPT\" >> $REMEDY; . $T/hook.sh"
start_daemon_or_die "vigil run starts (adopting) with --remediate" daemon2 "$NS" "$PIN" "${COMMON[@]}" \
	--remediate "$HOOK" --remediate-max "$REM_MAX" --remediate-backoff-ms "$BACKOFF_BASE,$BACKOFF_CAP" \
	--remediate-timeout-s "$HOOK_TIMEOUT_S"
ok "vigil run adopts the instance with --remediate, --remediate-max $REM_MAX, --remediate-backoff-ms $BACKOFF_BASE,$BACKOFF_CAP, --remediate-timeout-s $HOOK_TIMEOUT_S"

for i in $R_FAIL $R_OK $R_RECOVER $R_HANG $R_AGAIN; do kill_bg "beat-$i" KILL; done
# While agent 24's first hook hangs, agent 25 dies.
if wait_for 3 attempts_at_least $R_HANG 1; then
	kill_bg "beat-$R_WITNESS" KILL
	ok "agent $R_HANG's hook runs (and hangs); agent $R_WITNESS is stopped meanwhile"
else
	not_ok "agent $R_HANG's hook runs"
	kill_bg "beat-$R_WITNESS" KILL
fi

# Agent 26 comes back and dies again while its first hook runs.
if wait_for 3 attempts_at_least $R_AGAIN 1; then
	beat $R_AGAIN 2
	wait_for 3 ev_at_least $R_AGAIN recovered 1
	kill_bg "beat-$R_AGAIN" KILL
	wait_for 3 ev_at_least $R_AGAIN dead 2
	check_sh "agent $R_AGAIN recovers and dies again while its first hook still runs" \
		'ev_at_least $R_AGAIN dead 2 && [ -e "$T/running-$R_AGAIN" ]'
else
	not_ok "agent $R_AGAIN's hook runs"
fi

# notice_times AGENT: wall_ns of each remediation notice, oldest first.
notice_times() {
	q "SELECT wall_ns FROM notices WHERE agent_id = $1 AND kind = 'remediation' ORDER BY id" | tr '\n' ' '
}
notice_details() {
	q "SELECT detail FROM notices WHERE agent_id = $1 AND kind = 'remediation' ORDER BY id" | paste -sd, -
}
dead_wall() {
	q "SELECT detected_wall_ns FROM events WHERE agent_id = $1 AND kind = 'dead' ORDER BY event_seq DESC LIMIT 1"
}
# gaps_ok AGENT MIN_MS EXTRA_MS: attempt k+1 starts MIN_MS + [0, min(cap,
# base * 2^k) + SLACK] after attempt k; the first within SLACK of DEAD.
gaps_ok() {
	local a=$1 min=$2 t prev="" k=0 gap ceil dead
	dead=$(dead_wall "$a")
	GAPS=""
	for t in $(notice_times "$a"); do
		if [ -z "$prev" ]; then
			gap=$(((t - dead) / 1000000))
			GAPS="first $gap ms after DEAD"
			[ "$gap" -ge 0 ] && [ "$gap" -le "$SLACK_MS" ] || return 1
		else
			gap=$(((t - prev) / 1000000))
			ceil=$((BACKOFF_BASE << k))
			[ "$ceil" -gt "$BACKOFF_CAP" ] && ceil=$BACKOFF_CAP
			GAPS+=", then $gap ms (ceiling $min + $ceil)"
			[ "$gap" -ge "$min" ] && [ "$gap" -le $((min + ceil + SLACK_MS)) ] || return 1
		fi
		prev=$t
		k=$((k + 1))
	done
	[ "$k" -gt 0 ]
}

wait_for 5 attempts_at_least $R_FAIL $REM_MAX
wait_for 3 ev_at_least $R_WITNESS dead 1
# The witness: its SUSPECT on time although a hook hangs.
if ev_at_least $R_WITNESS suspect 1; then
	wj=$("$VIGIL" log query --db "$DB" --json --agent $R_WITNESS --kind suspect | tail -n 1)
	late=$(jq .late_us <<<"$wj")
	wseq=$(jq .event_seq <<<"$wj")
	read -r lag_ms w_det <<<"$(q -separator ' ' "SELECT (recorded_wall_ns - detected_wall_ns) / 1000000, detected_wall_ns FROM events WHERE event_seq = $wseq")"
	h1=$(notice_times $R_HANG | awk '{ print $1 }')
	check_sh "agent $R_WITNESS's SUSPECT comes while agent $R_HANG's hook hangs, on time (late_us $late < $LATE_MAX_US) and logged $lag_ms ms after detection (< 300)" \
		'[ -n "$h1" ] && [ "$w_det" -gt "$h1" ] && [ "$w_det" -lt $((h1 + HOOK_TIMEOUT_S * 1000000000)) ] &&
		 [ "$late" -ge 0 ] && [ "$late" -lt "$LATE_MAX_US" ] && [ "$lag_ms" -lt 300 ]'
	wait_for 2 attempts_at_least $R_WITNESS 1
	w1=$(notice_times $R_WITNESS | awk '{ print $1 }')
	w_gap=$(((${w1:-0} - $(dead_wall $R_WITNESS)) / 1000000))
	check_sh "... and its first remediation attempt starts $w_gap ms after its DEAD (<= $SLACK_MS), the hook still hanging" \
		'[ -n "$w1" ] && [ "$w_gap" -ge 0 ] && [ "$w_gap" -le "$SLACK_MS" ] && [ "$w1" -lt $((h1 + HOOK_TIMEOUT_S * 1000000000)) ]'
else
	not_ok "agent $R_WITNESS's SUSPECT is logged"
fi

# The hanging hook: 3 attempts, each killed after the timeout.
wait_for 8 attempts_at_least $R_HANG $REM_MAX
wait_for 5 attempts_at_least $R_AGAIN $((REM_MAX + 1))
h3=$(notice_times $R_HANG | awk '{ print $3 }')
if [ -n "$h3" ]; then
	# Long enough for the third run to have finished had it not been killed.
	sleep_rest "$(awk -v t="$h3" 'BEGIN { printf "%.3f", t / 1e9 }')" 2.8
fi
nap 0.5 # and for any attempt beyond the limit

check "a failing hook: exactly $REM_MAX attempts for agent $R_FAIL (attempts '$(attempts $R_FAIL)')" \
	[ "$(attempts $R_FAIL)" = "1 2 3" ]
check "... with $REM_MAX 'remediation' notices ($(notice_details $R_FAIL))" \
	[ "$(notice_details $R_FAIL)" = "attempt 1,attempt 2,attempt 3" ]
if gaps_ok $R_FAIL 0; then
	ok "... spaced within the full-jitter ceilings plus ${SLACK_MS} ms ($GAPS)"
else
	not_ok "... spaced within the full-jitter ceilings plus ${SLACK_MS} ms ($GAPS)"
fi
check "the agent is still DEAD: the hook could not help ($(state_of $R_FAIL))" [ "$(state_of $R_FAIL)" = dead ]
check "a succeeding hook: exactly 1 attempt for agent $R_OK (attempts '$(attempts $R_OK)', notices $(notice_details $R_OK))" \
	[ "$(attempts $R_OK)" = 1 ] && [ "$(notice_details $R_OK)" = "attempt 1" ]
check "an agent that recovers (its beater restarted by the hook): RECOVERED logged, state $(state_of $R_RECOVER)" \
	ev_at_least $R_RECOVER recovered 1
check "... and no further attempt after the failed first (attempts '$(attempts $R_RECOVER)')" \
	[ "$(attempts $R_RECOVER)" = 1 ] && [ "$(notice_details $R_RECOVER)" = "attempt 1" ]
check "a hanging hook: exactly $REM_MAX attempts for agent $R_HANG (attempts '$(attempts $R_HANG)')" \
	[ "$(attempts $R_HANG)" = "1 2 3" ] && [ "$(notice_details $R_HANG)" = "attempt 1,attempt 2,attempt 3" ]
check "... each killed by the ${HOOK_TIMEOUT_S} s timeout (no run completed: $(paste -sd, "$HUNG" 2>/dev/null))" \
	[ ! -s "$HUNG" ]
if gaps_ok $R_HANG $((HOOK_TIMEOUT_S * 1000)); then
	ok "... the next attempt comes after the timeout plus the backoff ($GAPS)"
else
	not_ok "... the next attempt comes after the timeout plus the backoff ($GAPS)"
fi
check "the witness agent $R_WITNESS: $REM_MAX attempts as well (attempts '$(attempts $R_WITNESS)')" \
	[ "$(attempts $R_WITNESS)" = "1 2 3" ]
check "an agent that dies again while its hook runs: never two hooks at once ($(paste -sd, "$T/overlap.log" 2>/dev/null))" \
	[ ! -s "$T/overlap.log" ]
check "... and its second episode gets its own $REM_MAX attempts after the first hook reports (attempts '$(attempts $R_AGAIN)')" \
	[ "$(attempts $R_AGAIN)" = "1 1 2 3" ]
others=$(awk -v ok=" $R_FAIL $R_OK $R_RECOVER $R_HANG $R_WITNESS $R_AGAIN " 'index(ok, " " $1 " ") == 0' "$REMEDY" | paste -sd, -)
check "no hook ran for agents that did not die ('$others')" [ -z "$others" ]

kill_bg daemon2 TERM
check "vigil run stops on SIGTERM (exit $LAST_RC)" [ "$LAST_RC" -eq 0 ]
[ -s "$T/beat-$R_RECOVER.pid" ] && kill -KILL "$(cat "$T/beat-$R_RECOVER.pid")" 2>/dev/null

e2e_finish

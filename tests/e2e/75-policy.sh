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
#      100,400 --remediate-timeout-s 2): a failing hook is tried exactly 3
#      times (attempts 1, 2, 3) within the backoff ceilings, each with a
#      `remediation` notice; a succeeding hook once; an agent that recovers
#      gets no further attempt; a hanging hook is killed after the timeout
#      and the next attempt still comes, while another agent's death is
#      detected, logged and remediated on time; an agent that dies again
#      while its hook still runs does not get a second hook at the same time,
#      and its new episode gets its own attempts once the first hook is done.
#   3. bad policy options exit 2 with one line on stderr, nothing pinned.
#
# On a busy machine a beater can be held off the CPU past its deadline (the
# beaters run at real-time priority; whole-machine stalls of 100 ms still
# happen on a shared VM): its agent then really misses a deadline, which is
# a transition like any other. Every transition of the agents is therefore
# checked against their send logs (excuse.py: a killed or stalled beater,
# never the monitor), the flap model is replayed over every transition the
# daemon recorded (flap_model.py), and each death is an episode of its own
# with its own remediation attempts.
# One network namespace with only loopback; skb-mode XDP on its lo.
# check_sh evaluates its single-quoted condition later (SC2016, SC2034); small
# predicates are called through check/wait_for (SC2317).
# shellcheck disable=SC2016,SC2034,SC2317
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
e2e_init
need_tools python3 sqlite3 flock

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
HOOK_TIMEOUT_S=2
HANG_S=$((HOOK_TIMEOUT_S + 1)) # agent 24's hook: longer than the timeout
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

# cycle AGENT INCARNATION: kill the agent's beater, wait for its next DEAD,
# restart it with INCARNATION, wait for its next RECOVERED (counted from
# before the kill: on a busy machine a beater held off the CPU past its
# deadline adds transitions of its own).
cycle() {
	local d r
	d=$(n_ev "$1" dead)
	r=$(n_ev "$1" recovered)
	kill_bg "beat-$1" KILL
	wait_for 3 ev_at_least "$1" dead $((d + 1)) || return 1
	beat "$1" "$2"
	wait_for 3 ev_at_least "$1" recovered $((r + 1))
}

# Agent 1 flaps: killed, logged DEAD, restarted (a higher incarnation),
# logged RECOVERED, CYCLES times, as fast as the 20 ms cadence allows.
flap_ok=true
for ((c = 1; c <= CYCLES; c++)); do
	cycle "$FLAPPER" $((c + 1)) || flap_ok=false
done
check "agent $FLAPPER flaps $CYCLES times (killed and restarted; each DEAD and RECOVERED logged)" $flap_ok

# Meanwhile, agent 2 dies once and comes back.
cycle "$STABLE" 2 || not_ok "agent $STABLE stops beating and comes back: DEAD and RECOVERED are logged"

wait_for 5 outbox_empty || not_ok "the exec sink drains the outbox"
# Detection and recording are never suppressed: every transition is logged,
# in order. (Transitions beyond the test's own are the beater's: held off
# the CPU past its deadline, as its send log shows; checked below.)
kinds=$(q "SELECT kind FROM events WHERE agent_id = $FLAPPER AND kind IN ('suspect', 'dead', 'recovered') ORDER BY event_seq" | paste -sd, -)
n_s=$(n_ev $FLAPPER suspect)
n_d=$(n_ev $FLAPPER dead)
n_r=$(n_ev $FLAPPER recovered)
check_sh "all transitions of the flapping agent are in the event log, in order: its $CYCLES deaths and any stall of its beater (suspect $n_s, dead $n_d, recovered $n_r)" \
	'grep -qE "^(suspect,(dead,)?recovered,?){$CYCLES,}\$" <<<"$kinds" && [ "$n_d" -ge "$CYCLES" ]'
n_sup=$(n_notice $FLAPPER suppressed)
check "one 'suppressed' notice for agent $FLAPPER in the notices table ($n_sup)" [ "$n_sup" -eq 1 ]
check "no 'released' notice yet (the penalty decays with a ${HALF_LIFE_S} s half-life)" \
	[ "$(n_notice $FLAPPER released)" -eq 0 ]
n_alerts=$(alerts $FLAPPER | wc -l)
n_events=$((n_s + n_d + n_r))
check_sh "the exec sink got fewer alerts ($n_alerts) than the agent's SUSPECT/DEAD/RECOVERED events ($n_events)" \
	'[ "$n_alerts" -ge 3 ] && [ "$n_alerts" -lt "$n_events" ]'

# Release: after about log2(penalty / 1500) half-lives of calm (at most
# 3.4 at the penalty's ceiling; later only if the agent flaps again).
wait_for 30 notice_at_least $FLAPPER released 1 || not_ok "'released' notice for agent $FLAPPER within 30 s"

# Alerts flow again: one more episode (penalty <= 1500 + 3000 < 5000).
released_at=$(q "SELECT wall_ns FROM notices WHERE agent_id = $FLAPPER AND kind = 'released' ORDER BY id LIMIT 1")
cycle "$FLAPPER" $((CYCLES + 2)) || not_ok "agent $FLAPPER dies and comes back after its release"
wait_for 5 outbox_empty || not_ok "the exec sink drains the outbox after the release"
UNTIL=$(date +%s%N) # the model replays what this daemon recorded

# Every SUSPECT and DEAD of agents 1 and 2 (and so their RECOVEREDs) is one
# their send logs explain: the test killed the beater, or the machine held
# it off the CPU past its deadline. None may be the monitor's.
log_json "$DB" | jq -c "select(.agent_id == $FLAPPER or .agent_id == $STABLE)" >"$T/phase1.jsonl"
: >"$E2E_TMP/excused"
agent_excuse "$T/phase1.jsonl" "$FLAPPER-$STABLE"
without_excused "$T/phase1.jsonl" "$T/phase1.unexcused.jsonl"
unexcused=$(jq -c 'select(.kind == "suspect" or .kind == "dead" or .kind == "recovered") | [.event_seq, .agent_id, .kind]' "$T/phase1.unexcused.jsonl" | paste -sd' ' -)
check "every SUSPECT, DEAD and RECOVERED of agents $FLAPPER and $STABLE is explained by their send logs (a killed beater, or one held off the CPU): none is the monitor's ($unexcused)" \
	[ -z "$unexcused" ]

# The daemon's decisions against the penalty model (1000 per transition,
# halving every HALF_LIFE_S, suppress above 5000, ceiling 16000, release
# below 1500), replayed over every transition it recorded, at the times it
# recorded them (flap_model.py).
model() { # model AGENT
	python3 "$E2E_ROOT/tests/e2e/flap_model.py" --db "$DB" --alerts "$ALERTS" --agent "$1" \
		--half-life-s "$HALF_LIFE_S" --until "$UNTIL"
}
M1=$(model $FLAPPER)
M2=$(model $STABLE)
n_d2=$(n_ev $STABLE dead)
mj() { jq -r "$2" <<<"$1"; }
k1=$(mj "$M1" '.suppressed_at[0] // 0')
check_sh "agent $FLAPPER: suppression starts at event $k1 of the $((3 * CYCLES)) flaps, where the model puts it, with one 'suppressed' notice recorded with that event" \
	'[ "$k1" -ge 1 ] && [ "$k1" -le $((3 * CYCLES)) ] && [ "$(mj "$M1" .suppressed_ok)" = true ]'
rel=$(mj "$M1" '.releases[0] // empty | "\(.diff_ms) \(.alert)"')
read -r d_ms rel_alert <<<"$rel"
check_sh "'released' notice once the penalty decays below 1500 (${d_ms:-no release} ms after the model's time, within [-50, 400])" \
	'[ -n "$rel" ] && ! mj "$M1" ".problems[]" | grep -qE "released|still suppressed"'
check_sh "on release, one alert for the current state if the last alert was another ('${rel_alert:-none}'; the alerts before: $(mj "$M1" '[.expected_alerts[] | split(" ")[1]] | .[:'"$((k1 - 1))"'] | join(",")'))" \
	'[ -n "$rel" ] && { [ -z "$rel_alert" ] || mj "$M1" ".alerts[]" | grep -qx "$rel_alert"; }'
check_sh "agent $FLAPPER: the exec sink got exactly the alerts the model predicts ($(mj "$M1" '.alerts | length') of $(mj "$M1" '.events | length') transitions$(mj "$M1" '.problems | if length > 0 then "; " + join("; ") else "" end'))" \
	'[ "$(mj "$M1" ".problems | length")" -eq 0 ]'
post_ev=$(q -separator ' ' "SELECT event_seq, kind FROM events WHERE agent_id = $FLAPPER AND kind IN ('suspect', 'dead', 'recovered') AND recorded_wall_ns > ${released_at:-0} ORDER BY event_seq LIMIT 3")
post_alerted=$(mj "$M1" '.alerts[]' | grep -cxF "$post_ev")
check_sh "after release, the next transitions are alerted again ($post_alerted of 3: $(paste -sd, <<<"$post_ev"))" \
	'[ "$post_alerted" -eq 3 ]'
# Agent 2's single death: all three alerts, no notice (and if its beater's
# own stalls flapped it too, whatever the model predicts).
kinds2=$(mj "$M2" .kinds)
check_sh "a stable agent that dies once gets all three alerts (suspect, dead, recovered) and no notice (transitions $kinds2; alerts $(mj "$M2" '.alerts | length'), as the model predicts$(mj "$M2" '.problems | if length > 0 then "; " + join("; ") else "" end'))" \
	'[ "$(mj "$M2" ".problems | length")" -eq 0 ] && [ "$n_d2" -ge 1 ] &&
	 { [ "$kinds2" != suspect,dead,recovered ] ||
	   { [ "$(mj "$M2" ".alerts | length")" -eq 3 ] && [ "$(q "SELECT count(*) FROM notices WHERE agent_id = $STABLE")" -eq 0 ]; }; }'

kill_bg daemon TERM
check "vigil run stops on SIGTERM (exit $LAST_RC)" [ "$LAST_RC" -eq 0 ]

# ------------------------------------------------------- phase 2: remediation
# The hook records its agent and attempt, then: agent 22 succeeds; agent 23
# starts the agent's beater again (once; it recovers during the attempt),
# waits for it to be seen and fails; agent 24 hangs (longer than the
# timeout; a completed run would leave a line in hung.log); agent 26's
# holds a lock (a run that finds it taken overlaps another) until the test
# says go; every other agent fails at once.
cat >"$T/hook.sh" <<HOOK
case \$VIGIL_AGENT_ID in
$R_OK) exit 0 ;;
$R_RECOVER)
	if [ ! -e "$T/beat-$R_RECOVER.pid" ]; then
		${BEAT_PRIO[*]} "$VIGIL" beat --send-log "$T/send.beat-$R_RECOVER-hook.jsonl" --id $R_RECOVER \\
			--keys "$KEYS" --target 127.0.0.1 --interval-ms $INTERVAL_MS --incarnation 2 --duration 300 \\
			</dev/null >/dev/null 2>&1 &
		echo \$! >"$T/beat-$R_RECOVER.pid"
	fi
	sleep 0.3
	exit 1 ;;
$R_HANG)
	sleep $HANG_S
	echo "\$VIGIL_AGENT_ID \$VIGIL_ATTEMPT finished" >>"$HUNG"
	exit 1 ;;
$R_AGAIN)
	exec 9>"$T/lock-$R_AGAIN"
	flock -n 9 || echo "attempt \$VIGIL_ATTEMPT overlaps" >>"$T/overlap.log"
	while [ ! -e "$T/go-$R_AGAIN" ]; do sleep 0.05; done
	exit 1 ;;
esac
exit 1
HOOK
HOOK="echo \"\$VIGIL_AGENT_ID \$VIGIL_ATTEMPT\" >> $REMEDY; . $T/hook.sh"
P2_WALL=$(date +%s%N) # what this daemon records: phase 2
start_daemon_or_die "vigil run starts (adopting) with --remediate" daemon2 "$NS" "$PIN" "${COMMON[@]}" \
	--remediate "$HOOK" --remediate-max "$REM_MAX" --remediate-backoff-ms "$BACKOFF_BASE,$BACKOFF_CAP" \
	--remediate-timeout-s "$HOOK_TIMEOUT_S"
ok "vigil run adopts the instance with --remediate, --remediate-max $REM_MAX, --remediate-backoff-ms $BACKOFF_BASE,$BACKOFF_CAP, --remediate-timeout-s $HOOK_TIMEOUT_S"

# deaths AGENT: detected_wall_ns of each DEAD this daemon recorded, oldest first.
deaths() {
	q "SELECT detected_wall_ns FROM events WHERE agent_id = $1 AND kind = 'dead' AND recorded_wall_ns >= $P2_WALL ORDER BY event_seq"
}
hook_running() { ! flock -n "$T/lock-$R_AGAIN" true; }

T_KILL=$(date +%s%N)
for i in $R_FAIL $R_OK $R_RECOVER $R_HANG $R_AGAIN; do kill_bg "beat-$i" KILL; done
# While agent 24's first hook hangs, agent 25 dies.
w_s=$(n_ev $R_WITNESS suspect)
w_d=$(n_ev $R_WITNESS dead)
if wait_for 3 attempts_at_least $R_HANG 1; then
	kill_bg "beat-$R_WITNESS" KILL
	ok "agent $R_HANG's hook runs (and hangs); agent $R_WITNESS is stopped meanwhile"
else
	not_ok "agent $R_HANG's hook runs"
	kill_bg "beat-$R_WITNESS" KILL
fi

# Agent 26 comes back and dies again while its first hook runs.
if wait_for 3 attempts_at_least $R_AGAIN 1; then
	d=$(n_ev $R_AGAIN dead)
	r=$(n_ev $R_AGAIN recovered)
	beat $R_AGAIN 2
	wait_for 3 ev_at_least $R_AGAIN recovered $((r + 1))
	kill_bg "beat-$R_AGAIN" KILL
	wait_for 3 ev_at_least $R_AGAIN dead $((d + 1))
	check_sh "agent $R_AGAIN recovers and dies again while its first hook still runs" \
		'ev_at_least $R_AGAIN dead $((d + 1)) && hook_running'
else
	not_ok "agent $R_AGAIN's hook runs"
fi
touch "$T/go-$R_AGAIN"

# notice_times AGENT [SINCE]: wall_ns of each remediation notice (since
# SINCE), oldest first; notice_details AGENT [SINCE]: their details.
notice_times() {
	q "SELECT wall_ns FROM notices WHERE agent_id = $1 AND kind = 'remediation' AND wall_ns >= ${2:-0} ORDER BY id" | tr '\n' ' '
}
notice_details() {
	q "SELECT detail FROM notices WHERE agent_id = $1 AND kind = 'remediation' AND wall_ns >= ${2:-0} ORDER BY id" | paste -sd, -
}
# episode AGENT [N]: detected_wall_ns of the agent's N-th death since the
# kill (default: its last), the start of the episode the test made.
episode() {
	local t
	t=$(deaths "$1" | awk -v k="$T_KILL" -v n="${2:-0}" '$1 >= k { d[++c] = $1 } END { print (n ? d[n] : d[c]) }')
	echo "${t:-0}"
}
# gaps_ok AGENT MIN_MS: in the agent's last episode, attempt k+1 starts
# MIN_MS + [0, min(cap, base * 2^k) + SLACK] after attempt k; the first
# within SLACK of its DEAD.
gaps_ok() {
	local a=$1 min=$2 t prev="" k=0 gap ceil dead
	dead=$(episode "$a")
	GAPS=""
	for t in $(notice_times "$a" "$dead"); do
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
wait_for 3 ev_at_least $R_WITNESS dead $((w_d + 1))
# The witness: its SUSPECT on time although a hook hangs.
if ev_at_least $R_WITNESS suspect $((w_s + 1)); then
	wj=$("$VIGIL" log query --db "$DB" --json --agent $R_WITNESS --kind suspect | tail -n 1)
	late=$(jq .late_us <<<"$wj")
	wseq=$(jq .event_seq <<<"$wj")
	read -r lag_ms w_det <<<"$(q -separator ' ' "SELECT (recorded_wall_ns - detected_wall_ns) / 1000000, detected_wall_ns FROM events WHERE event_seq = $wseq")"
	h1=$(notice_times $R_HANG "$(episode $R_HANG 1)" | awk '{ print $1 }')
	# A verdict waits for evidence, a beat sent after its deadline: when the
	# machine held every beater off the CPU it may come up to twice that
	# wait later (see 10-fleet.sh); the send logs say how long it was.
	w_wait=$(python3 "$EXCUSE_PY" evidence --send-logs "$E2E_TMP" --events <(echo "$wj") | awk '{ print int($2 / 1000) }')
	check_sh "agent $R_WITNESS's SUSPECT comes while agent $R_HANG's hook hangs, on time (late_us $late < $LATE_MAX_US + twice the wait for evidence, ${w_wait:-0} us) and logged $lag_ms ms after detection (< 300)" \
		'[ -n "$h1" ] && [ "$w_det" -gt "$h1" ] && [ "$w_det" -lt $((h1 + HOOK_TIMEOUT_S * 1000000000)) ] &&
		 [ "$late" -ge 0 ] && [ "$late" -lt $((LATE_MAX_US + 2 * ${w_wait:-0})) ] && [ "$lag_ms" -lt 300 ]'
	wait_for 2 attempts_at_least $R_WITNESS 1
	w_dead=$(episode $R_WITNESS)
	w1=$(notice_times $R_WITNESS "$w_dead" | awk '{ print $1 }')
	w_gap=$(((${w1:-0} - w_dead) / 1000000))
	check_sh "... and its first remediation attempt starts $w_gap ms after its DEAD (<= $SLACK_MS), the hook still hanging" \
		'[ -n "$w1" ] && [ "$w_gap" -ge 0 ] && [ "$w_gap" -le "$SLACK_MS" ] && [ "$w1" -lt $((h1 + HOOK_TIMEOUT_S * 1000000000)) ]'
else
	not_ok "agent $R_WITNESS's SUSPECT is logged"
fi

# The hanging hook: 3 attempts, each killed after the timeout.
wait_for 12 attempts_at_least $R_HANG $REM_MAX
wait_for 8 attempts_at_least $R_AGAIN $((REM_MAX + 1))
h3=$(notice_times $R_HANG "$(episode $R_HANG)" | awk '{ print $3 }')
if [ -n "$h3" ]; then
	# Long enough for the third run to have finished had it not been killed.
	sleep_rest "$(awk -v t="$h3" 'BEGIN { printf "%.3f", t / 1e9 }')" "$HANG_S.3"
fi
nap 0.5 # and for any attempt beyond the limit

# Every death this daemon recorded is the test's (a killed beater) or the
# agent's own (a beater held off the CPU past its deadline, as its send
# log shows): none is the monitor's. Each such death is an episode of its
# own, with its own attempts; the checks below look at the test's.
p2_dead="[$(q "SELECT event_seq FROM events WHERE kind = 'dead' AND recorded_wall_ns >= $P2_WALL" | paste -sd, -)]"
log_json "$DB" | jq -c --argjson x "$p2_dead" 'select(.event_seq as $s | $x | index($s))' >"$T/phase2.dead.jsonl"
: >"$E2E_TMP/excused"
agent_excuse "$T/phase2.dead.jsonl" "$FLAPPER-$STABLE,$R_FAIL-$R_AGAIN"
without_excused "$T/phase2.dead.jsonl" "$T/phase2.unexcused.jsonl"
check "every DEAD of this phase is explained by the agents' send logs (a killed beater, or one held off the CPU): none is the monitor's ($(jq -c '[.event_seq, .agent_id]' "$T/phase2.unexcused.jsonl" | paste -sd' ' -))" \
	[ ! -s "$T/phase2.unexcused.jsonl" ]

F0=$(episode $R_FAIL)
check "a failing hook: exactly $REM_MAX attempts for agent $R_FAIL (attempts '$(attempts $R_FAIL)')" \
	[ "$(notice_details $R_FAIL "$F0")" = "attempt 1,attempt 2,attempt 3" ]
check "... with $REM_MAX 'remediation' notices ($(notice_details $R_FAIL "$F0"))" \
	[ "$(q "SELECT count(*) FROM notices WHERE agent_id = $R_FAIL AND kind = 'remediation'")" -eq "$(attempts $R_FAIL | wc -w)" ]
if gaps_ok $R_FAIL 0; then
	ok "... spaced within the full-jitter ceilings plus ${SLACK_MS} ms ($GAPS)"
else
	not_ok "... spaced within the full-jitter ceilings plus ${SLACK_MS} ms ($GAPS)"
fi
check "the agent is still DEAD: the hook could not help ($(state_of $R_FAIL))" [ "$(state_of $R_FAIL)" = dead ]
check "a succeeding hook: exactly 1 attempt for agent $R_OK (attempts '$(attempts $R_OK)', notices $(notice_details $R_OK "$(episode $R_OK)"))" \
	[ "$(notice_details $R_OK "$(episode $R_OK)")" = "attempt 1" ]
check "an agent that recovers (its beater restarted by the hook): RECOVERED logged, state $(state_of $R_RECOVER)" \
	[ "$(q "SELECT count(*) FROM events WHERE agent_id = $R_RECOVER AND kind = 'recovered' AND recorded_wall_ns >= $T_KILL")" -ge 1 ]
# Its episode: from the death the test caused to the next one, if its
# restarted beater was held off the CPU long enough to die again.
rec_from=$(episode $R_RECOVER 1)
rec_to=$(episode $R_RECOVER 2)
rec_attempts=$(q "SELECT detail FROM notices WHERE agent_id = $R_RECOVER AND kind = 'remediation' AND wall_ns >= $rec_from AND (${rec_to:-0} = 0 OR wall_ns < ${rec_to:-0}) ORDER BY id" | paste -sd, -)
check_sh "... and no further attempt after the failed first ($rec_attempts; attempts in all '$(attempts $R_RECOVER)', one per death)" \
	'[ "$rec_attempts" = "attempt 1" ] && [ "$(attempts $R_RECOVER | wc -w)" -eq "$(deaths $R_RECOVER | wc -l)" ]'
check "a hanging hook: exactly $REM_MAX attempts for agent $R_HANG (attempts '$(attempts $R_HANG)')" \
	[ "$(notice_details $R_HANG "$(episode $R_HANG)")" = "attempt 1,attempt 2,attempt 3" ]
check "... each killed by the ${HOOK_TIMEOUT_S} s timeout (no run completed: $(paste -sd, "$HUNG" 2>/dev/null))" \
	[ ! -s "$HUNG" ]
if gaps_ok $R_HANG $((HOOK_TIMEOUT_S * 1000)); then
	ok "... the next attempt comes after the timeout plus the backoff ($GAPS)"
else
	not_ok "... the next attempt comes after the timeout plus the backoff ($GAPS)"
fi
check "the witness agent $R_WITNESS: $REM_MAX attempts as well (attempts '$(attempts $R_WITNESS)')" \
	[ "$(notice_details $R_WITNESS "$(episode $R_WITNESS)")" = "attempt 1,attempt 2,attempt 3" ]
check "an agent that dies again while its hook runs: never two hooks at once ($(paste -sd, "$T/overlap.log" 2>/dev/null))" \
	[ ! -s "$T/overlap.log" ]
check "... and its second episode gets its own $REM_MAX attempts after the first hook reports (attempts '$(attempts $R_AGAIN)')" \
	[ "$(notice_details $R_AGAIN "$(episode $R_AGAIN 1)")" = "attempt 1,attempt 1,attempt 2,attempt 3" ]
# Every hook ran for an agent this daemon saw die.
strays=$(touch "$REMEDY" && while read -r a n; do
	[ -n "$(deaths "$a")" ] || echo "$a:$n"
done <"$REMEDY" | paste -sd, -)
check "no hook ran for an agent that did not die ('$strays')" [ -z "$strays" ]

kill_bg daemon2 TERM
check "vigil run stops on SIGTERM (exit $LAST_RC)" [ "$LAST_RC" -eq 0 ]
[ -s "$T/beat-$R_RECOVER.pid" ] && kill -KILL "$(cat "$T/beat-$R_RECOVER.pid")" 2>/dev/null

e2e_finish

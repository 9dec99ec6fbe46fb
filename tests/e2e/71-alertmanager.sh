#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
#
# `--alert-format alertmanager` against a real Alertmanager (Debian's
# prometheus-alertmanager 0.25) that the test starts on 127.0.0.1 inside its
# own network namespace, with the shipped deploy/alertmanager/alertmanager.yml
# (its receivers pointed at http_receiver.py, which records Alertmanager's
# notifications; group_wait and group_interval 1 s; resolve_timeout 10 s).
# Everything is checked through Alertmanager's API (/api/v2/alerts,
# /api/v2/alerts/groups) and amtool:
#   1. amtool check-config accepts the shipped file.
#   2. SUSPECT fires VigilAgentSuspect (warning) with the documented labels;
#      DEAD fires VigilAgentDead (critical) and resolves the SUSPECT; an
#      agent back before DEAD resolves its SUSPECT (RECOVERED).
#   3. grouping: the two dead agents of group web are one group and one
#      notification; inhibition: a VigilAgentSuspect posted by hand (amtool
#      alert add) for a dead agent is suppressed, for a live one it is not.
#   4. an agent dead for longer than resolve_timeout and longer than the
#      alerts' own endsAt stays firing: vigil re-sends every --alert-resend-s
#      (2 s) with endsAt moved ahead; also after the daemon is SIGKILLed and a
#      new one starts, which re-sends from the log and the maps at once.
#   5. RECOVERED resolves VigilAgentDead (gone from the API, a resolved
#      notification).
#   6. Alertmanager down: a dying agent's alerts are retried, then
#      dead-lettered, and the re-sends fail; Alertmanager back (empty: it
#      keeps no alerts across a restart): the re-send restores the alert it
#      had accepted; `vigil dlq replay` delivers the dead-lettered DEAD, and a
#      SUSPECT replayed after it is not posted (it would fire what is over).
#
# One network namespace with only loopback; skb-mode XDP on its lo.
# check_sh evaluates its single-quoted condition later (SC2016/SC2034); small
# predicates are called through check/wait_for (SC2317).
# shellcheck disable=SC2016,SC2034,SC2317
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
e2e_init
need_tools prometheus-alertmanager amtool curl sqlite3

setup_lo_test "vg$$am" alertmanager
AM_PORT=19093
AM=http://127.0.0.1:$AM_PORT
METRICS=127.0.0.1:19748
RESEND_S=2
RESOLVE_TIMEOUT_S=10
INTERVAL_MS=100
SHIPPED=$E2E_ROOT/deploy/alertmanager/alertmanager.yml

cat >"$CONF" <<EOF
defaults interval-min-ms=20 interval-max-ms=1000 multiplier=3 group=web
agent 1 name=web-1
agent 2 name=web-2
agent 3 name=db-3 group=db
agent 4 name=web-4
agent 5 name=db-5 group=db
EOF

# ----------------------------------------------------------- Alertmanager

if amtool check-config "$SHIPPED" >"$E2E_TMP/check.out" 2>&1; then
	ok "amtool check-config accepts deploy/alertmanager/alertmanager.yml ($(grep -c '^ - ' "$E2E_TMP/check.out") sections)"
else
	show_file "amtool check-config" "$E2E_TMP/check.out"
	not_ok "amtool check-config accepts deploy/alertmanager/alertmanager.yml"
fi

# Alertmanager's notifications go to the home-made receiver.
start_http_receiver "$NS" "the notification receiver starts in $NS" ok
python3 - "$SHIPPED" "$E2E_TMP/am.yml" "$URL" "$RESOLVE_TIMEOUT_S" <<'EOF' || die "writing the test's alertmanager.yml from the shipped one"
import sys, yaml
src, dst, url, resolve = sys.argv[1:]
c = yaml.safe_load(open(src))
c["global"]["resolve_timeout"] = resolve + "s"
for r in [c["route"]] + c["route"].get("routes", []):
    r["group_wait"] = r["group_interval"] = "1s"
for rc in c["receivers"]:
    for w in rc.get("webhook_configs", []):
        w["url"] = url + "/" + rc["name"]
yaml.safe_dump(c, open(dst, "w"))
EOF

# start_am NAME: Alertmanager in $NS (no cluster port), with the test's
# configuration; waits until it is ready.
start_am() {
	start_bg "$1" "$NS" prometheus-alertmanager --config.file="$E2E_TMP/am.yml" \
		--storage.path="$E2E_TMP/am-data" --web.listen-address="127.0.0.1:$AM_PORT" \
		--cluster.listen-address= --log.level=warn
	wait_for 15 in_ns "$NS" curl -sf "$AM/-/ready"
}
start_am am || { show_file "alertmanager stderr" "$E2E_TMP/am.err"; die "Alertmanager starts on 127.0.0.1:$AM_PORT in $NS"; }
ok "Alertmanager $(prometheus-alertmanager --version 2>&1 | awk 'NR == 1 { print $3 }') is ready on 127.0.0.1:$AM_PORT in $NS"

# --------------------------------------------------------------- helpers

# am_alerts: every alert Alertmanager holds and does not consider ended
# (active, suppressed or unprocessed), as a JSON array.
am_alerts() {
	in_ns "$NS" curl -sf "$AM/api/v2/alerts"
}
# am_get NAME AGENT: that alert, or nothing.
am_get() {
	am_alerts | jq -c --arg n "$1" --arg a "$2" \
		'.[] | select(.labels.alertname == $n and .labels.agent_id == $a)'
}
am_has() { [ -n "$(am_get "$1" "$2")" ]; }
am_lacks() { local a; a=$(am_alerts) && [ -z "$(jq -c --arg n "$1" --arg g "$2" '.[] | select(.labels.alertname == $n and .labels.agent_id == $g)' <<<"$a")" ]; }
ev_seq() { # ev_seq AGENT KIND: the newest logged event of that kind
	"$VIGIL" log query --db "$DB" --json --agent "$1" --kind "$2" 2>/dev/null | tail -n 1 | jq -r '.event_seq // empty'
}
has_event() { [ -n "$(ev_seq "$1" "$2")" ]; }
newer_event() { local s; s=$(ev_seq "$1" "$2"); [ -n "$s" ] && [ "$s" -gt "$3" ]; }
beat() { # beat ID INCARNATION
	start_bg "beat-$1" "$NS" "$VIGIL" beat --id "$1" --target 127.0.0.1 \
		--interval-ms "$INTERVAL_MS" --incarnation "$2"
}
metric() { # metric NAME: its value on the daemon's /metrics
	in_ns "$NS" curl -sf "http://$METRICS/metrics" | awk -v n="$1" '$1 == n { print $2 }'
}
dlq_n() { "$VIGIL" dlq list --db "$DB" --json | wc -l; }

DAEMON_ARGS=(--iface lo --mode skb --no-auth --config "$CONF" --db "$DB" --quiet
	--dead-misses 30 --metrics "$METRICS"
	--alert-webhook "$AM/api/v2/alerts" --alert-format alertmanager
	--alert-resend-s "$RESEND_S" --alert-max-attempts 3 --alert-backoff-ms "100,300"
	--alert-timeout-ms 2000)
start_daemon_or_die "vigil run --alert-format alertmanager --alert-resend-s $RESEND_S starts" \
	daemon "$NS" "$PIN" "${DAEMON_ARGS[@]}"
check_daemon_says "it says it re-sends firing alerts every $RESEND_S s" daemon 5 \
	"webhook (alertmanager, firing alerts re-sent every $RESEND_S s)"
for i in 1 2 3 4 5; do beat "$i" 1; done
all_alive() { [ "$(count_state "$(status_json "$PIN")" alive)" -eq 5 ]; }
wait_for 5 all_alive || die "agents 1-5 are ALIVE after their first beats"

# ------------------------------------------- SUSPECT, DEAD, their labels
kill_bg beat-1 KILL
kill_bg beat-2 KILL
kill_bg beat-3 KILL
# --dead-misses 30: DEAD comes 3 s after SUSPECT, time to see the SUSPECT.
if wait_for 5 am_has VigilAgentSuspect 1 && wait_for 2 am_has VigilAgentSuspect 3; then
	s1=$(am_get VigilAgentSuspect 1)
	now=$(date -u +%Y-%m-%dT%H:%M:%S)
	suspect_alert_ok() {
		[ "$(jq -c '[.labels, .status.state, (.annotations.summary | test("web-1.*suspect")), (.annotations.event_seq | tonumber > 0)]' <<<"$s1")" = \
			'[{"agent_id":"1","alertname":"VigilAgentSuspect","group":"web","name":"web-1","severity":"warning"},"active",true,true]' ] &&
			[[ $(jq -r .endsAt <<<"$s1") > $now ]]
	}
	check "SUSPECT: Alertmanager has VigilAgentSuspect firing with labels {alertname, agent_id, name, group, severity: warning}, endsAt ahead ($(jq -r .endsAt <<<"$s1"))" \
		suspect_alert_ok
else
	show_file "vigil run stderr" "$E2E_TMP/daemon.err" 10
	not_ok "SUSPECT: Alertmanager has VigilAgentSuspect firing for agents 1 and 3"
fi
beat 3 2 # back before DEAD
if wait_for 5 has_event 3 recovered && wait_for 3 am_lacks VigilAgentSuspect 3; then
	ok "agent 3 beats again before DEAD: RECOVERED resolves its VigilAgentSuspect (no longer listed)"
else
	not_ok "agent 3 beats again before DEAD: RECOVERED resolves its VigilAgentSuspect"
fi
check "agent 3 never went DEAD" [ -z "$(ev_seq 3 dead)" ]

if wait_for 6 has_event 2 dead && wait_for 3 am_has VigilAgentDead 1 && wait_for 2 am_has VigilAgentDead 2; then
	d1=$(am_get VigilAgentDead 1)
	check "DEAD: VigilAgentDead firing with labels {alertname, agent_id, name, group, severity: critical}" \
		[ "$(jq -c '[.labels, .status.state]' <<<"$d1")" = \
		'[{"agent_id":"1","alertname":"VigilAgentDead","group":"web","name":"web-1","severity":"critical"},"active"]' ]
else
	show_file "vigil run stderr" "$E2E_TMP/daemon.err" 10
	not_ok "DEAD: Alertmanager has VigilAgentDead firing for agents 1 and 2"
fi
T_DEAD=$(now)
check "DEAD resolves the agent's VigilAgentSuspect (agents 1 and 2: no longer listed)" \
	wait_for 3 sh -c "! nsenter --net=/run/netns/$NS curl -sf $AM/api/v2/alerts | jq -e '.[] | select(.labels.alertname == \"VigilAgentSuspect\")' >/dev/null"

# ------------------------------------------------- grouping, inhibition
group_web() {
	in_ns "$NS" curl -sf "$AM/api/v2/alerts/groups" | jq -c \
		'[.[] | select(.labels == {"alertname": "VigilAgentDead", "group": "web"}) | .alerts[].labels.agent_id] | sort'
}
check "grouping (group_by alertname, group): one group {VigilAgentDead, web} holds agents 1 and 2 ($(group_web))" \
	wait_for 3 test "$(group_web)" = '["1","2"]'
notified_both() {
	jq -se '[.[] | .body | fromjson | select(.status == "firing" and .groupLabels == {"alertname": "VigilAgentDead", "group": "web"})
		| [.alerts[].labels.agent_id] | sort] | any(. == ["1","2"])' "$RLOG" >/dev/null
}
check "one notification to receiver oncall names both dead web agents" wait_for 5 notified_both

AMTOOL=(in_ns "$NS" amtool --alertmanager.url="$AM")
END=$(date -u -d '+2 min' +%Y-%m-%dT%H:%M:%SZ)
if ! "${AMTOOL[@]}" alert add alertname=VigilAgentSuspect agent_id=1 name=web-1 group=web \
	severity=warning --annotation=summary="a late SUSPECT" --end="$END" ||
	! "${AMTOOL[@]}" alert add alertname=VigilAgentSuspect agent_id=5 name=db-5 group=db \
		severity=warning --annotation=summary="a SUSPECT of a live agent" --end="$END"; then
	not_ok "amtool alert add posts two VigilAgentSuspect alerts"
fi
inhibited() {
	[ "$(am_get VigilAgentSuspect 1 | jq -r '"\(.status.state) \(.status.inhibitedBy | length)"')" = "suppressed 1" ] &&
		[ "$(am_get VigilAgentSuspect 5 | jq -r '"\(.status.state) \(.status.inhibitedBy | length)"')" = "active 0" ]
}
check "inhibition: a VigilAgentSuspect for dead agent 1 is suppressed by its VigilAgentDead; one for live agent 5 stays active" \
	wait_for 3 inhibited
q=$("${AMTOOL[@]}" alert query -o json alertname=VigilAgentDead 2>&1 | jq -c '[.[].labels.agent_id] | sort')
check "amtool alert query alertname=VigilAgentDead lists agents 1 and 2 ($q)" [ "$q" = '["1","2"]' ]

# ---------------------------------------- firing as long as the agent is DEAD
ends1=$(am_get VigilAgentDead 1 | jq -r .endsAt)
sleep_rest "$T_DEAD" $((RESOLVE_TIMEOUT_S + 2))
d1=$(am_get VigilAgentDead 1)
ends2=$(jq -r .endsAt <<<"$d1")
check_sh "$((RESOLVE_TIMEOUT_S + 2)) s after DEAD (resolve_timeout ${RESOLVE_TIMEOUT_S}s, endsAt $((4 * RESEND_S)) s ahead): still firing, endsAt renewed ($ends1 -> $ends2)" \
	'[ "$(jq -r .status.state <<<"$d1")" = active ] && [[ $ends2 > $ends1 ]]'
check_sh "vigil_alerts_firing 2, vigil_alerts_resent_total $(metric vigil_alerts_resent_total) (> 0)" \
	'[ "$(metric vigil_alerts_firing)" = 2 ] && [ "$(metric vigil_alerts_resent_total)" -gt 0 ]'

kill_bg daemon KILL
T_KILL=$(now)
ends_kill=$(am_get VigilAgentDead 1 | jq -r .endsAt)
nap $((RESEND_S + 1))
start_daemon_or_die "a new daemon adopts the instance after the SIGKILL" daemon2 "$NS" "$PIN" "${DAEMON_ARGS[@]}"
renewed() { [[ $(am_get VigilAgentDead 1 | jq -r .endsAt) > $ends_kill ]]; }
if wait_for 3 renewed; then
	ok "the new daemon re-sends at once, from the log and the maps: endsAt $ends_kill -> $(am_get VigilAgentDead 1 | jq -r .endsAt)"
else
	show_file "vigil run stderr" "$E2E_TMP/daemon2.err" 10
	not_ok "the new daemon re-sends at once, from the log and the maps (endsAt still $ends_kill)"
fi
sleep_rest "$T_KILL" $((4 * RESEND_S + 2))
check_sh "$((4 * RESEND_S + 2)) s after the SIGKILL (past the endsAt the old daemon set): agents 1 and 2 still firing" \
	'am_has VigilAgentDead 1 && am_has VigilAgentDead 2'

# ------------------------------------------------------------ RECOVERED
beat 1 2
resolved_1() {
	jq -se '[.[] | .body | fromjson | .alerts[]
		| select(.labels.alertname == "VigilAgentDead" and .labels.agent_id == "1" and .status == "resolved")] | length > 0' "$RLOG" >/dev/null
}
if wait_for 5 has_event 1 recovered && wait_for 3 am_lacks VigilAgentDead 1; then
	ok "agent 1 beats again: RECOVERED resolves VigilAgentDead (no longer listed); agent 2's stays: $(am_has VigilAgentDead 2 && echo yes || echo NO)"
else
	not_ok "agent 1 beats again: RECOVERED resolves VigilAgentDead"
fi
check "Alertmanager notifies receiver oncall that agent 1's VigilAgentDead is resolved" wait_for 5 resolved_1

# ----------------------------------- Alertmanager down: retries, DLQ, replay
kill_bg am TERM
kill_bg beat-4 KILL
dead_lettered() { [ "$(dlq_n)" -ge 2 ]; }
if wait_for 10 has_event 4 dead && wait_for 10 dead_lettered; then
	ok "Alertmanager down: agent 4's SUSPECT and DEAD are retried 3 times, then dead-lettered ($(dlq_n) in the queue)"
else
	show_file "vigil run stderr" "$E2E_TMP/daemon2.err" 10
	not_ok "Alertmanager down: agent 4's alerts are dead-lettered"
fi
dl=$("$VIGIL" dlq list --db "$DB" --json | jq -sc '[.[] | select(.sink == "webhook" and .event.agent_id == 4) | [.event.kind, .attempts, (.last_error | test("connect|Connection"))]] | sort')
check "vigil dlq list: agent 4's dead and suspect, 3 attempts each, last error a refused connection ($dl)" \
	[ "$dl" = '[["dead",3,true],["suspect",3,true]]' ]
check "the re-sends fail meanwhile: the daemon says so, vigil_alert_resends_failed_total rises" \
	wait_for $((RESEND_S + 2)) sh -c "grep -q 're-sending .* to Alertmanager failed' '$E2E_TMP/daemon2.err' &&
		[ \"\$(nsenter --net=/run/netns/$NS curl -sf http://$METRICS/metrics | awk '\$1 == \"vigil_alert_resends_failed_total\" { print \$2 }')\" -gt 0 ]"

start_am am2 || { show_file "alertmanager stderr" "$E2E_TMP/am2.err"; die "Alertmanager starts again"; }
check "Alertmanager back (empty): within one re-send period, agent 2's VigilAgentDead is firing again" \
	wait_for $((RESEND_S + 2)) am_has VigilAgentDead 2
check "... and the daemon says re-sending works again" \
	grep -q 're-sending to Alertmanager works again' "$E2E_TMP/daemon2.err"
check "agent 4's alerts, never accepted, are not re-sent: not in Alertmanager" am_lacks VigilAgentDead 4
# The DEAD first, then the rest: the SUSPECT, older than what Alertmanager
# now has, must not fire again.
dead_id=$("$VIGIL" dlq list --db "$DB" --json | jq -r 'select(.event.agent_id == 4 and .event.kind == "dead") | .id')
out=$("$VIGIL" dlq replay --db "$DB" --id "$dead_id")
if wait_for 5 am_has VigilAgentDead 4; then
	ok "vigil dlq replay --id $dead_id (\"$out\"): agent 4's VigilAgentDead fires"
else
	not_ok "vigil dlq replay --id $dead_id (\"$out\"): agent 4's VigilAgentDead fires"
fi
S4=$(ev_seq 4 suspect)
out=$("$VIGIL" dlq replay --db "$DB" --all)
superseded() { grep -q "(webhook, event $S4): not sent, Alertmanager has the agent's newer event $(ev_seq 4 dead)" "$E2E_TMP/daemon2.err"; }
if wait_for 5 superseded && [ "$(dlq_n)" -eq 0 ] && am_lacks VigilAgentSuspect 4; then
	ok "vigil dlq replay --all (\"$out\"): the older SUSPECT (event $S4) is not posted (the daemon says so), none fires, the dead-letter queue is empty"
else
	show_file "vigil run stderr" "$E2E_TMP/daemon2.err" 10
	not_ok "vigil dlq replay --all: the older SUSPECT (event $S4) is not posted"
fi
ends4=$(am_get VigilAgentDead 4 | jq -r .endsAt)
renewed4() { [[ $(am_get VigilAgentDead 4 | jq -r .endsAt) > $ends4 ]]; }
check "from then on agent 4's alert is re-sent too (endsAt renewed)" wait_for $((RESEND_S + 2)) renewed4

kill_bg daemon2 TERM
check "vigil run stops on SIGTERM (exit $LAST_RC)" [ "$LAST_RC" -eq 0 ]

e2e_finish

#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
#
# Migration from polling, end to end (docs/migration.md):
#   1. probe mode (`vigil beat --probe-*`): a command that passes, then fails
#      (SUSPECT, DEAD), then passes again (RECOVERED); a TCP listener started
#      here (closing it makes the agent SUSPECT); an HTTP server answering
#      200, then 500 (SUSPECT, DEAD), then 200 (RECOVERED); a check that hangs
#      is killed with its process group within its budget (80 % of the
#      interval), the check still runs once per interval, and the agent beats
#      again within about one interval of the check passing; a probe by
#      name keeps beating when its resolver stops answering (a DNS server
#      started here, then stopped), and with no earlier answer the check
#      fails within its budget instead of waiting for the resolver.
#   2. shadow mode (`vigil run --shadow` with --alert-exec, --remediate and a
#      lease): an agent dies, SUSPECT and DEAD are logged, the exec sink gets
#      nothing, `vigil log notices` shows would_alert (and would_remediate)
#      rows, no remediation runs, no lease is granted (`vigil lease list`: no
#      holder, the candidates never hear they hold it; lease_log has
#      would_grant, no granted); an alert left in the outbox by an earlier
#      run is not delivered either.
#   3. retention: `vigil run --retain-events 5` on a log with more events
#      leaves at most 5 once started; --retain-days 0 and --retain-events 0
#      are refused (exit 2, one line).
#
# Two network namespaces with only loopback (skb-mode XDP on each lo).
# check_sh evaluates its single-quoted condition later (SC2016, SC2034); small
# predicates are called through check/wait_for (SC2317).
# shellcheck disable=SC2016,SC2034,SC2317
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
e2e_init
need_tools sqlite3

T=$E2E_TMP
KEYS=$T/keys
make_keys "$KEYS" 1-30 || die "vigil key gen --id 1-30"

# ------------------------------------------------------------ 1. probe mode
NS=vg$$q
new_lo_monitor "$NS" PIN probe
DB=$T/probe.db
CONF=$T/probe.conf
IV=100     # probe agents' interval
HANG_IV=200
TCP_PORT=18082
HTTP_PORT=18083
# interval-max-ms 20000: an agent not beating yet (NEW) is timed with it, so
# the agents started one after the other are never SUSPECT before their
# first beat; the beats' own intervals (100, 200 ms) set their deadlines.
cat >"$CONF" <<EOF
defaults interval-min-ms=10 interval-max-ms=20000 multiplier=3 group=probe
agent 1 name=exec
agent 2 name=tcp
agent 3 name=http
agent 4 name=hang
agent 5 name=dns
agent 6 name=dns-cold
EOF
start_daemon daemon "$NS" "$PIN" --iface lo --mode skb --config "$CONF" --keys "$KEYS" --db "$DB" \
	--metrics off || {
	show_file "vigil run stderr" "$T/daemon.err"
	die "vigil run attaches in skb mode to lo"
}

q() { sqlite3 -cmd '.timeout 5000' "$1" "$2"; }
n_ev() { q "${DB_Q:-$DB}" "SELECT count(*) FROM events WHERE agent_id = $1 AND kind = '$2'"; }
ev_at_least() { [ "$(n_ev "$1" "$2")" -ge "${3:-1}" ]; }
state_of() { agent_field "$(status_json "$PIN")" "$1" state; }
is_state() { [ "$(state_of "$1")" = "$2" ]; }
probe_beater() { # probe_beater NAME ID INTERVAL PROBE-OPTION ARG
	start_beater "$1" "$NS" --id "$2" --target 127.0.0.1 --keys "$KEYS" --interval-ms "$3" "$4" "$5"
}

# exec: passes while $T/ok1 exists.
touch "$T/ok1"
probe_beater p-exec 1 "$IV" --probe-exec "test -e '$T/ok1'"
if wait_for 5 is_state 1 alive; then
	ok "--probe-exec: the agent beats while the command exits 0"
else
	show_file "beater stderr" "$T/p-exec.err"
	not_ok "--probe-exec: the agent beats while the command exits 0 (state $(state_of 1))"
fi
rm -f "$T/ok1"
wait_for 5 ev_at_least 1 dead
check_sh "--probe-exec: the command fails: SUSPECT, then DEAD ($(n_ev 1 suspect) suspect, $(n_ev 1 dead) dead)" \
	'[ "$(n_ev 1 suspect)" -eq 1 ] && [ "$(n_ev 1 dead)" -eq 1 ]'
touch "$T/ok1"
wait_for 5 ev_at_least 1 recovered
check_sh "--probe-exec: it passes again: RECOVERED ($(state_of 1))" \
	'[ "$(n_ev 1 recovered)" -eq 1 ] && is_state 1 alive'
check_sh "--probe-exec: the beater said when the probe failed and when it passed again" \
	'[ "$(grep -c "probe failed after" "$T/p-exec.err")" -eq 1 ] && [ "$(grep -c "probe passes" "$T/p-exec.err")" -eq 2 ]'

# tcp: a listener started here.
start_bg listener "$NS" python3 -c "
import socket
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('127.0.0.1', $TCP_PORT))
s.listen(128)
while True:
    c, _ = s.accept()
    c.close()
"
listening() { in_ns "$NS" python3 -c "import socket; socket.create_connection(('127.0.0.1', $TCP_PORT), 1).close()"; }
wait_for 5 listening || die "a TCP listener on 127.0.0.1:$TCP_PORT"
probe_beater p-tcp 2 "$IV" --probe-tcp "127.0.0.1:$TCP_PORT"
check "--probe-tcp: the agent beats while a TCP connection opens" wait_for 5 is_state 2 alive
kill_bg listener KILL
check "--probe-tcp: the listener closes: the agent goes SUSPECT" wait_for 5 ev_at_least 2 suspect

# http: 200 or 500, from a file.
echo 200 >"$T/http-status"
start_bg httpd "$NS" python3 -c "
import http.server
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        code = int(open('$T/http-status').read())
        self.send_response(code)
        self.send_header('Content-Length', '0')
        self.end_headers()
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(('127.0.0.1', $HTTP_PORT), H).serve_forever()
"
serving() { in_ns "$NS" python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$HTTP_PORT/healthz', timeout=1)"; }
wait_for 5 serving || die "an HTTP server on 127.0.0.1:$HTTP_PORT"
probe_beater p-http 3 "$IV" --probe-http "http://127.0.0.1:$HTTP_PORT/healthz"
check "--probe-http: the agent beats while the server answers 200" wait_for 5 is_state 3 alive
echo 500 >"$T/http-status"
wait_for 5 ev_at_least 3 dead
check_sh "--probe-http: the server answers 500: SUSPECT, then DEAD ($(n_ev 3 suspect) suspect, $(n_ev 3 dead) dead)" \
	'[ "$(n_ev 3 suspect)" -eq 1 ] && [ "$(n_ev 3 dead)" -eq 1 ]'
echo 200 >"$T/http-status"
check "--probe-http: 200 again: RECOVERED" wait_for 5 ev_at_least 3 recovered

# hang: while $T/hang exists the check sleeps far longer than the interval.
MARK="31.$$" # sleep's argument, to find its processes
cat >"$T/check4.sh" <<EOF
#!/bin/sh
echo "\$\$ \$(cat /proc/uptime)" >>"$T/check4.runs"
[ -e "$T/hang" ] && sleep $MARK
exit 0
EOF
chmod +x "$T/check4.sh"
probe_beater p-hang 4 "$HANG_IV" --probe-exec "$T/check4.sh"
check "--probe-exec: a check that returns at once lets the agent beat" wait_for 5 is_state 4 alive
touch "$T/hang"
runs0=$(wc -l <"$T/check4.runs")
max_sleeps=0
t_hang=$(now)
while awk -v a="$t_hang" -v b="$(now)" 'BEGIN { exit !(b - a < 3) }'; do
	n=$(pgrep -fc "sleep $MARK")
	[ "$n" -gt "$max_sleeps" ] && max_sleeps=$n
	sleep 0.02
done
runs=$(($(wc -l <"$T/check4.runs") - runs0))
check_sh "a hanging check: the agent goes SUSPECT and DEAD" 'ev_at_least 4 suspect && ev_at_least 4 dead'
check_sh "a hanging check is killed within its turn: at most one hanging at a time (saw $max_sleeps), and it runs once per interval: $runs checks in 3 s at $HANG_IV ms (the beat loop never stalls on it)" \
	'[ "$max_sleeps" -le 1 ] && [ "$runs" -ge 12 ] && [ "$runs" -le 16 ]'
budget=$(sed -n 's/.*probe failed after \([0-9.]*\) ms (budget \([0-9]*\) ms).*/\1 \2/p' "$T/p-hang.err" | tail -n 1)
check_sh "the check's budget is 80 % of the interval, and it was killed at it ($budget ms: after, budget)" \
	'read -r took b <<<"$budget"; [ "$b" = $((HANG_IV * 8 / 10)) ] && awk -v t="$took" -v b="$b" "BEGIN { exit !(t >= b && t < b + 50) }"'
t_pass=$(mono_ns)
rm -f "$T/hang"
wait_for 3 ev_at_least 4 recovered
rec_ns=$(log_json "$DB" | jq -r "select(.agent_id == 4 and .kind == \"recovered\" and .detected_ns > $t_pass) | .detected_ns" | tail -n 1)
back_ms=$(((${rec_ns:-0} - t_pass) / 1000000))
check_sh "once the check passes the agent beats again within about one interval (RECOVERED $back_ms ms later, interval $HANG_IV ms)" \
	'[ -n "$rec_ns" ] && [ "$back_ms" -ge 0 ] && [ "$back_ms" -le $((HANG_IV + HANG_IV * 8 / 10 + 150)) ]'
nap 0.3
check_sh "no check process is left behind ($(pgrep -fc "sleep $MARK"))" '[ "$(pgrep -fc "sleep $MARK")" -eq 0 ]'
# dns: --probe-tcp by name, resolved by a DNS server in the namespace, which
# then stops answering. The beaters see it through a resolv.conf of their
# own (bind-mounted in a private mount namespace: the host's stays as it is).
DNS_NAME=svc.vigil.test
DNS_PORT=18084
echo "nameserver 127.0.0.1" >"$T/resolv.conf"
start_bg dns "$NS" python3 "$E2E_ROOT/tests/e2e/dns_server.py" "$DNS_NAME" 127.0.0.1
start_bg listener2 "$NS" python3 -c "
import socket
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('127.0.0.1', $DNS_PORT))
s.listen(128)
while True:
    c, _ = s.accept()
    c.close()
"
resolves() { in_ns "$NS" unshare --mount sh -c "mount --bind '$T/resolv.conf' /etc/resolv.conf && python3 -c 'import socket; socket.getaddrinfo(\"$DNS_NAME\", 1)'"; }
wait_for 5 resolves || die "a DNS server in $NS answers for $DNS_NAME"
dns_beater() { # NAME ID: a probe of $DNS_NAME:$DNS_PORT every $IV ms
	start_bg "$1" "$NS" unshare --mount sh -c "mount --bind '$T/resolv.conf' /etc/resolv.conf &&
		exec ${BEAT_PRIO[*]} '$VIGIL' beat --send-log '$T/send.$1.jsonl' --id $2 \
		--target 127.0.0.1 --keys '$KEYS' --interval-ms $IV --probe-tcp $DNS_NAME:$DNS_PORT"
}
dns_beater p-dns 5
check "--probe-tcp by name: the agent beats while the name resolves and the port opens" \
	wait_for 5 is_state 5 alive
kill -STOP "${PIDS[dns]}"
nap 3
check_sh "the resolver stops answering for 3 s: agent 5 is still alive, with no SUSPECT ($(n_ev 5 suspect)); the prober said it used the last answer" \
	'is_state 5 alive && [ "$(n_ev 5 suspect)" -eq 0 ] && grep -q "resolving $DNS_NAME did not answer in time" "$T/p-dns.err"'
dns_beater p-dns-cold 6
wait_for 3 grep -q "probe failed after" "$T/p-dns-cold.err"
budget=$(sed -n 's/.*probe failed after \([0-9.]*\) ms (budget \([0-9]*\) ms).*/\1 \2/p' "$T/p-dns-cold.err" | head -n 1)
check_sh "with no answer yet, a lookup that hangs fails the check within its budget ($budget ms: after, budget)" \
	'read -r took b <<<"$budget"; [ "$b" = $((IV * 8 / 10)) ] && awk -v t="$took" -v b="$b" "BEGIN { exit !(t >= b && t < b + 50) }"'
kill -CONT "${PIDS[dns]}"
check "the resolver answers again: the agent without an earlier answer beats" wait_for 20 is_state 6 alive
for b in p-dns p-dns-cold dns listener2; do kill_bg "$b" KILL; done

expect_beat_bad() { # DESCRIPTION REGEX ARGS...
	expect_usage_error "$1" "$2" "$VIGIL" beat --target 127.0.0.1 "${@:3}"
}
expect_beat_bad "--probe-tcp without a port" "is not HOST:PORT" --id 9 --probe-tcp 127.0.0.1
expect_beat_bad "--probe-http https://" "must start with http://" --id 9 --probe-http https://x/
expect_beat_bad "two probes" "one --probe" --id 9 --probe-tcp 127.0.0.1:1 --probe-exec true
expect_beat_bad "a probe for a range of ids" "one agent id" --id 9-10 --probe-exec true

# ------------------------------------------------------------ 3. retention
# (on the probe log, which now holds more than 5 events)
for b in p-exec p-tcp p-http p-hang; do kill_bg "$b" KILL; done
all_dead() { is_state 1 dead && is_state 3 dead && is_state 4 dead && is_state 2 dead && is_state 5 dead && is_state 6 dead; }
wait_for 5 all_dead
nap 0.3
kill_bg daemon TERM
n_before=$(q "$DB" "SELECT count(*) FROM events")
newest_before=$(q "$DB" "SELECT max(event_seq) FROM events")
start_daemon daemon2 "$NS" "$PIN" --iface lo --mode skb --config "$CONF" --keys "$KEYS" --db "$DB" \
	--metrics off --retain-events 5 || die "vigil run --retain-events 5 adopts the instance"
# Of the events logged before the start (what the ring buffer held while no
# daemon ran, e.g. the monitor's own health events, comes after). Retention
# runs once the daemon serves, its first housekeeping after start_daemon
# has seen it adopt the instance: wait for it.
kept_before() { q "$DB" "SELECT count(*) FROM events WHERE event_seq <= $newest_before"; }
retained() { [ "$(kept_before)" -le 5 ]; }
wait_for 5 retained
n_after=$(kept_before)
check_sh "--retain-events 5: the log held $n_before events; once the daemon started it holds $n_after of them" \
	'[ "$n_before" -gt 5 ] && [ "$n_after" -le 5 ] && [ "$n_after" -ge 1 ]'
newest=$(q "$DB" "SELECT max(event_seq) FROM events")
check_sh "it kept the newest events (the highest event_seq, $newest_before, is still there: $newest)" \
	'[ "$newest" = "$newest_before" ]'
kill_bg daemon2 TERM
expect_run_bad() { # DESCRIPTION REGEX ARGS...
	expect_usage_error "$1" "$2" in_ns "$NS" "$VIGIL" run --iface lo --mode skb --config "$CONF" \
		--keys "$KEYS" --db "$DB" --pin-root "$PIN" --metrics off "${@:3}"
}
expect_run_bad "--retain-days 0" "retain-days: 0 is out of range" --retain-days 0
expect_run_bad "--retain-events 0" "retain-events: 0 is out of range" --retain-events 0
check_sh "the refused runs left the log alone ($(q "$DB" "SELECT count(*) FROM events") events)" \
	'[ "$(q "$DB" "SELECT count(*) FROM events")" -eq "$n_after" ]'

# ------------------------------------------------------------ 2. shadow mode
NS2=vg$$s
new_lo_monitor "$NS2" PIN2 shadow
DB2=$T/shadow.db
CONF2=$T/shadow.conf
SINK=$T/sink.jsonl
REMEDY=$T/remedy.log
cat >"$CONF2" <<EOF
defaults interval-min-ms=10 interval-max-ms=1000 multiplier=3 group=sh
agent 21 name=cand-a
agent 22 name=cand-b
agent 23 name=victim
ack sh
lease primary id=1 duration-ms=300 grace-ms=50 candidates=21:10,22:5
EOF
start_daemon shadow "$NS2" "$PIN2" --iface lo --mode skb --config "$CONF2" --keys "$KEYS" --db "$DB2" \
	--metrics off --shadow --alert-exec "cat >> $SINK; echo >> $SINK" \
	--remediate "echo \$VIGIL_AGENT_ID >> $REMEDY" --remediate-backoff-ms 100,200 || {
	show_file "vigil run stderr" "$T/shadow.err"
	die "vigil run --shadow attaches"
}
check "vigil run --shadow says what it will not do" \
	wait_for 5 grep -q "shadow mode: detecting and recording only" "$T/shadow.err"
state2() { agent_field "$(status_json "$PIN2")" "$1" state; }
alive2() { [ "$(state2 21)" = alive ] && [ "$(state2 22)" = alive ] && [ "$(state2 23)" = alive ]; }
for i in 21 22; do
	start_beater "c$i" "$NS2" --id "$i" --target 127.0.0.1 --keys "$KEYS" --interval-ms 50 --lease 1 --print-acks
done
start_beater victim "$NS2" --id 23 --target 127.0.0.1 --keys "$KEYS" --interval-ms 50
wait_for 5 alive2 || die "three agents beat under the shadow monitor"
would_grant() { [ "$(q "$DB2" "SELECT count(*) FROM lease_log WHERE event = 'would_grant'")" -ge 1 ]; }
wait_for 3 would_grant
kill_bg victim KILL
DB_Q=$DB2 wait_for 5 ev_at_least 23 dead
nap 1.5 # the alerter, the remediation backoff and the lease tick had their chance
check_sh "an agent dies under the shadow monitor: SUSPECT and DEAD are logged" \
	'DB_Q=$DB2 ev_at_least 23 suspect && DB_Q=$DB2 ev_at_least 23 dead'
check_sh "the exec sink received nothing ($( [ -e "$SINK" ] && wc -c <"$SINK" || echo 0) bytes) and the outbox is empty" \
	'[ ! -s "$SINK" ] && [ "$(q "$DB2" "SELECT count(*) FROM outbox")" -eq 0 ]'
"$VIGIL" log notices --db "$DB2" --json >"$T/notices.jsonl"
"$VIGIL" log notices --db "$DB2" >"$T/notices.txt"
n_would=$(jq -s '[.[] | select(.notice == "would_alert" and .agent_id == 23)] | length' "$T/notices.jsonl")
check_sh "vigil log notices shows would_alert rows for it ($n_would: $(jq -r 'select(.notice == "would_alert" and .agent_id == 23) | .detail' "$T/notices.jsonl" | paste -sd';' -))" \
	'[ "$n_would" -ge 2 ] && grep -q "would_alert.*shadow: would alert dead" "$T/notices.txt"'
check_sh "no remediation ran (would_remediate: $(jq -s '[.[] | select(.notice == "would_remediate")] | length' "$T/notices.jsonl"), remediation: $(jq -s '[.[] | select(.notice == "remediation")] | length' "$T/notices.jsonl"))" \
	'[ ! -e "$REMEDY" ] && [ "$(jq -s "[.[] | select(.notice == \"remediation\")] | length" "$T/notices.jsonl")" -eq 0 ] && [ "$(jq -s "[.[] | select(.notice == \"would_remediate\")] | length" "$T/notices.jsonl")" -ge 1 ]'
"$VIGIL" lease list --json --pin-root "$PIN2" --db "$DB2" >"$T/leases.json"
holder=$(jq -r '.leases[] | select(.name == "primary") | .holder' "$T/leases.json")
check_sh "no lease is granted: vigil lease list shows lease primary with no holder (holder $holder, state $(jq -r '.leases[0].state' "$T/leases.json"))" \
	'[ "$holder" = 0 ] && [ "$(jq -r ".leases[0].state" "$T/leases.json")" != held ]'
n_wg=$(q "$DB2" "SELECT count(*) FROM lease_log WHERE event = 'would_grant'")
n_g=$(q "$DB2" "SELECT count(*) FROM lease_log WHERE event = 'granted'")
check_sh "lease_log has would_grant ($n_wg: $(q "$DB2" "SELECT holder FROM lease_log WHERE event = 'would_grant' LIMIT 1") would have held it) and no granted ($n_g)" \
	'[ "$n_wg" -ge 1 ] && [ "$n_g" -eq 0 ]'
check_sh "no candidate heard that it holds the lease" \
	'! grep -q "\"holder\":true" "$T/c21.out" "$T/c22.out"'
# An alert left in the outbox by an earlier (non-shadow) run waits there.
kill_bg shadow TERM
q "$DB2" "INSERT INTO outbox (sink, instance_id, event_seq, agent_id, payload, next_attempt_wall_ns,
	created_wall_ns) VALUES ('exec', 0, 0, 23, '{\"left\":\"by an earlier run\"}', 0, 0)"
start_daemon shadow2 "$NS2" "$PIN2" --iface lo --mode skb --config "$CONF2" --keys "$KEYS" --db "$DB2" \
	--metrics off --shadow --alert-exec "cat >> $SINK; echo >> $SINK" ||
	die "vigil run --shadow adopts the instance"
nap 1.5
check_sh "a shadow run does not deliver an alert waiting in the outbox: the sink got nothing, it is still there" \
	'[ ! -s "$SINK" ] && [ "$(q "$DB2" "SELECT count(*) FROM outbox")" -eq 1 ]'

e2e_finish

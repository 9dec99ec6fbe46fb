#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
#
# Alert sinks end to end, against a real HTTP receiver (http_receiver.py)
# that the test switches between ok, fail, hang and recovery:
#   1. delivery: a dying agent's SUSPECT and DEAD (and its RECOVERED) reach
#      the webhook (JSON body = the logged event) and the exec sink (VIGIL_*
#      variables, the same JSON on stdin); UP and RESTART do not alert.
#   2. failure: with the receiver failing, each alert is retried after
#      full-jitter delays under doubling caps, then dead-lettered after
#      --alert-max-attempts; `vigil dlq list` shows them; the exec sink is
#      not held up meanwhile.
#   3. replay: after the receiver recovers, `vigil dlq replay --id` and
#      `--all` deliver them; bad replay arguments fail in one line.
#   4. hang: with the receiver hanging, another agent's SUSPECT is detected
#      and recorded on time, the exec sink still delivers it at once, and the
#      hung request times out.
#   5. at-least-once: SIGKILL the daemon while alerts are pending (one in
#      flight), an agent dies while no daemon runs; a new daemon delivers
#      every alert of every alerting event in the log (duplicates allowed).
#   6. a prompt stop with a delivery in flight, in the Alertmanager format
#      (the abandoned alert stays in the outbox). What Alertmanager makes of
#      that format is tested against a real one in 71-alertmanager.sh.
#   7. syslog: LOG_DAEMON, severity by kind, to a /dev/log listener in a
#      private mount namespace (the host's /dev is not touched); a run without
#      the webhook says that the webhook's alert waits in the outbox.
#
# One network namespace with only loopback; skb-mode XDP on its lo.
# check_sh evaluates its single-quoted condition later (SC2016/SC2034); small
# predicates are called through check/wait_for (SC2317).
# shellcheck disable=SC2016,SC2034,SC2317
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
e2e_init
need_tools python3 sqlite3

setup_lo_test "vg$$al" alerts
EXECD=$E2E_TMP/exec
mkdir -p "$EXECD"

INTERVAL_MS=100
MAX_ATTEMPTS=5
BACKOFF_BASE=100
BACKOFF_MAX=2000
TIMEOUT_MS=1000
LATE_MAX_US=50000 # the SUSPECT under a hanging webhook: two ticks plus scheduling

{
	echo "defaults interval-min-ms=20 interval-max-ms=1000 multiplier=3 group=web"
	for i in 1 2 3 4 5 6; do
		if [ "$i" -eq 2 ]; then echo "agent $i name=alert-$i group=db"; else echo "agent $i name=alert-$i"; fi
	done
} >"$CONF"

start_http_receiver "$NS" "the HTTP receiver starts on 127.0.0.1 in $NS" ok

# The exec sink writes the event's variables and its stdin, named by event
# sequence; the JSON appears last (mv), so a file that exists is complete.
EXEC_CMD="cat > $EXECD/\$VIGIL_EVENT_SEQ.tmp && env | grep '^VIGIL_' | sort > $EXECD/\$VIGIL_EVENT_SEQ.env && mv $EXECD/\$VIGIL_EVENT_SEQ.tmp $EXECD/\$VIGIL_EVENT_SEQ.json"
DAEMON_ARGS=(--iface lo --mode skb --no-auth --config "$CONF" --db "$DB" --quiet
	--alert-webhook "$URL" --alert-exec "$EXEC_CMD" --alert-max-attempts "$MAX_ATTEMPTS"
	--alert-backoff-ms "$BACKOFF_BASE,$BACKOFF_MAX" --alert-timeout-ms "$TIMEOUT_MS")
if "$VIGIL" run --help | grep -q -- '--metrics '; then
	DAEMON_ARGS+=(--metrics off)
fi

start_daemon_or_die "vigil run starts with --alert-webhook and --alert-exec" \
	daemon "$NS" "$PIN" "${DAEMON_ARGS[@]}"
ok "vigil run starts with --alert-webhook and --alert-exec"

# beat ID INCARNATION: agent ID beats every INTERVAL_MS from its own process.
beat() {
	start_bg "beat-$1" "$NS" "$VIGIL" beat --id "$1" --target 127.0.0.1 \
		--interval-ms "$INTERVAL_MS" --incarnation "$2"
}
for i in 1 2 3 4 5 6; do beat "$i" 1; done
all_alive() {
	[ "$(count_state "$(status_json "$PIN")" alive)" -eq 6 ]
}
wait_for 5 all_alive || die "all 6 agents are ALIVE after their first beats"

# ----------------------------------------------------------------- helpers

# ev_json AGENT KIND: the newest logged event of that kind, as vigil prints it.
ev_json() {
	"$VIGIL" log query --db "$DB" --json --agent "$1" --kind "$2" 2>/dev/null | tail -n 1
}
ev_seq() {
	ev_json "$1" "$2" | jq -r '.event_seq // empty'
}
has_event() {
	[ -n "$(ev_seq "$1" "$2")" ]
}
# newer_event AGENT KIND SEQ: the agent has a KIND event after event SEQ.
newer_event() {
	local s
	s=$(ev_seq "$1" "$2")
	[ -n "$s" ] && [ "$s" -gt "$3" ]
}
# recv_n SEQ MODE: requests the receiver got for event SEQ while in MODE.
recv_n() {
	jq -s --argjson s "$1" --arg m "$2" \
		'[.[] | select(.mode == $m and ((.body | fromjson) | if type == "array" then .[0].annotations.event_seq | tonumber else .event_seq end) == $s)] | length' \
		"$RLOG" 2>/dev/null || echo 0
}
delivered() { # delivered SEQ...: each has an accepted webhook request and an exec file
	local s
	for s in "$@"; do
		[ "$(recv_n "$s" ok)" -ge 1 ] && [ -s "$EXECD/$s.json" ] || return 1
	done
}
# recv_body SEQ: the body of the last accepted request for event SEQ.
recv_body() {
	jq -rs --argjson s "$1" \
		'[.[] | select(.mode == "ok" and (.body | fromjson | type) == "object" and (.body | fromjson).event_seq == $s)] | last | .body' "$RLOG"
}
dlq_n() {
	"$VIGIL" dlq list --db "$DB" --json | wc -l
}
outbox_n() {
	"$VIGIL" dlq list --db "$DB" --json --outbox | wc -l
}
outbox_empty() { [ "$(outbox_n)" -eq 0 ]; }
# env_of SEQ NAME: a variable the exec sink saw.
env_of() {
	sed -n "s/^$2=//p" "$EXECD/$1.env"
}
same_json() { # same_json A B: equal as JSON, ignoring "time" (printed from a clock read)
	[ "$(jq -Sc 'del(.time)' <<<"$1")" = "$(jq -Sc 'del(.time)' <<<"$2")" ]
}

# --------------------------------------------------- phase 1: delivery
kill_bg beat-1 KILL
if wait_for 5 has_event 1 dead; then
	ok "agent 1 stops beating: SUSPECT and DEAD are logged"
else
	die "agent 1 stops beating: SUSPECT and DEAD are logged"
fi
S1=$(ev_seq 1 suspect)
D1=$(ev_seq 1 dead)
if wait_for 5 delivered "$S1" "$D1"; then
	ok "SUSPECT (event $S1) and DEAD (event $D1) reach the webhook and the exec sink"
else
	show_file "receiver log" "$RLOG" 10
	show_file "vigil run stderr" "$E2E_TMP/daemon.err" 10
	not_ok "SUSPECT (event $S1) and DEAD (event $D1) reach the webhook and the exec sink"
fi

body_ok=1
for k in suspect dead; do
	s=$(ev_seq 1 "$k")
	logged=$(ev_json 1 "$k")
	body=$(recv_body "$s")
	req=$(jq -cs --argjson s "$s" '[.[] | select(.mode == "ok" and (.body | fromjson).event_seq == $s)] | last | {method, path, content_type}' "$RLOG")
	if ! same_json "$body" "$logged" ||
		[ "$(jq -r '"\(.agent_id) \(.name) \(.group) \(.kind) \(.state) \(.prev_state) \(.time != null)"' <<<"$body")" != "1 alert-1 web $k $k $([ "$k" = suspect ] && echo alive || echo suspect) true" ] ||
		[ "$req" != '{"method":"POST","path":"/hook","content_type":"application/json"}' ]; then
		note "$k: body $body"
		note "$k: logged $logged"
		note "$k: request $req"
		body_ok=0
	fi
done
check "webhook: POST application/json, body = the logged event (agent_id, name, group, kind, state, prev_state...)" \
	[ "$body_ok" -eq 1 ]

exec_ok=1
for k in suspect dead; do
	s=$(ev_seq 1 "$k")
	logged=$(ev_json 1 "$k")
	stdin=$(cat "$EXECD/$s.json" 2>/dev/null)
	want="$s 1 alert-1 web $k $k $([ "$k" = suspect ] && echo alive || echo suspect) $(jq -r .detected_ns <<<"$logged")"
	got="$(env_of "$s" VIGIL_EVENT_SEQ) $(env_of "$s" VIGIL_AGENT_ID) $(env_of "$s" VIGIL_AGENT_NAME) $(env_of "$s" VIGIL_GROUP) $(env_of "$s" VIGIL_KIND) $(env_of "$s" VIGIL_STATE) $(env_of "$s" VIGIL_PREV_STATE) $(env_of "$s" VIGIL_DETECTED_NS)"
	if [ "$got" != "$want" ] || ! same_json "$stdin" "$logged" ||
		[ "$(env_of "$s" VIGIL_EVENT_JSON)" != "$stdin" ]; then
		note "$k: env '$got', expected '$want'"
		note "$k: stdin $stdin"
		exec_ok=0
	fi
done
check "exec: VIGIL_EVENT_SEQ, _AGENT_ID, _AGENT_NAME, _GROUP, _KIND, _STATE, _PREV_STATE, _DETECTED_NS right; stdin = VIGIL_EVENT_JSON = the logged event" \
	[ "$exec_ok" -eq 1 ]

beat 1 2 # a new incarnation: RESTART, then RECOVERED
R1=0
if wait_for 5 has_event 1 recovered && R1=$(ev_seq 1 recovered) && wait_for 5 delivered "$R1"; then
	ok "agent 1 beats again: RECOVERED (event $R1) is delivered to both sinks"
else
	not_ok "agent 1 beats again: RECOVERED is delivered to both sinks"
fi
n_other=$(jq -s '[.[] | .body | fromjson | select(.kind != "suspect" and .kind != "dead" and .kind != "recovered")] | length' "$RLOG")
n_restart=$("$VIGIL" log query --db "$DB" --json --kind restart | wc -l)
check_sh "UP and RESTART events are logged ($n_restart restart) but not alerted ($n_other such requests)" \
	'[ "$n_other" -eq 0 ] && [ "$n_restart" -ge 1 ]'
check "the outbox is empty once everything is delivered" wait_for 3 outbox_empty

# ---------------------------------------------- phase 2: failure and DLQ
echo fail >"$MODE"
kill_bg beat-2 KILL
wait_for 5 has_event 2 dead || die "agent 2 stops beating: SUSPECT and DEAD are logged"
S2=$(ev_seq 2 suspect)
D2=$(ev_seq 2 dead)
two_dead_letters() { [ "$(dlq_n)" -eq 2 ]; }
if wait_for 20 two_dead_letters; then
	ok "with the receiver failing, both alerts (events $S2, $D2) land in the dead-letter queue"
else
	show_file "vigil run stderr" "$E2E_TMP/daemon.err" 20
	not_ok "with the receiver failing, both alerts (events $S2, $D2) land in the dead-letter queue"
fi
n_s2=$(recv_n "$S2" fail)
n_d2=$(recv_n "$D2" fail)
check_sh "each was tried exactly --alert-max-attempts=$MAX_ATTEMPTS times (got $n_s2 and $n_d2)" \
	'[ "$n_s2" -eq "$MAX_ATTEMPTS" ] && [ "$n_d2" -eq "$MAX_ATTEMPTS" ]'
check "meanwhile the exec sink delivered both at once" wait_for 2 test -s "$EXECD/$S2.json" -a -s "$EXECD/$D2.json"

# The daemon says what it drew for each retry; the receiver's clock says
# when the retries came. Caps must double from the base, each delay be a
# draw in [0, cap], and each gap between tries match the drawn delay.
backoff=$(python3 - "$E2E_TMP/daemon.err" "$RLOG" "$S2" "$D2" "$BACKOFF_BASE" "$BACKOFF_MAX" "$MAX_ATTEMPTS" <<'EOF'
import json, re, sys
err, rlog, seqs, base, cap_max, attempts = sys.argv[1], sys.argv[2], sys.argv[3:5], int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
pat = re.compile(r"\(webhook, event (\d+)\): attempt (\d+) of (\d+) failed: (HTTP 500[^;]*); retrying in (\d+) ms \(backoff cap (\d+) ms\)")
draws = {s: [] for s in seqs}
for line in open(err):
    m = pat.search(line)
    if m and m.group(1) in draws:
        draws[m.group(1)].append((int(m.group(2)), int(m.group(5)), int(m.group(6))))
times = {s: [] for s in seqs}
for line in open(rlog):
    r = json.loads(line)
    b = json.loads(r["body"])
    if r["mode"] == "fail" and isinstance(b, dict) and str(b.get("event_seq")) in times:
        times[str(b["event_seq"])].append(r["time"])
bad, shown, all_at_cap = [], [], True
for s in seqs:
    d, t = sorted(draws[s]), times[s]
    if [a for a, _, _ in d] != list(range(1, attempts)):
        bad.append(f"event {s}: retry lines for attempts {[a for a, _, _ in d]}")
        continue
    if len(t) != attempts:
        bad.append(f"event {s}: {len(t)} requests")
        continue
    for (a, x, c), t0, t1 in zip(d, t, t[1:]):
        want_cap = min(cap_max, base << (a - 1))
        gap = (t1 - t0) * 1000
        shown.append(f"{s}#{a}: cap {c} drew {x} gap {gap:.0f}")
        if c != want_cap or not 0 <= x <= c:
            bad.append(f"event {s} attempt {a}: delay {x} cap {c}, want cap {want_cap}")
        if not x - 30 <= gap <= x + 400:
            bad.append(f"event {s} attempt {a}: gap {gap:.0f} ms for a {x} ms delay")
        all_at_cap &= x == c
if all_at_cap:
    bad.append("every delay equals its cap: no jitter")
print("; ".join(bad) if bad else "ok", "|", ", ".join(shown))
EOF
)
note "retries: ${backoff#*| }"
check "retries: full-jitter delays in [0, cap], caps ${BACKOFF_BASE}, $((2 * BACKOFF_BASE)), $((4 * BACKOFF_BASE)), ... ms, and the receiver saw those gaps (${backoff%% |*})" \
	[ "${backoff%% |*}" = ok ]

dlq_json=$("$VIGIL" dlq list --db "$DB" --json)
dlq_good=$(jq -s --argjson a "$S2" --argjson b "$D2" --argjson n "$MAX_ATTEMPTS" \
	'[.[] | select(.sink == "webhook" and .attempts == $n and (.last_error | startswith("HTTP 500"))
		and .event.agent_id == 2 and .event_seq == .event.event_seq)] | map(.event_seq) | sort == ([$a, $b] | sort)' <<<"$dlq_json")
check "vigil dlq list --json: both, sink webhook, $MAX_ATTEMPTS attempts, last error HTTP 500, the event attached" \
	[ "$dlq_good" = true ]
dlq_table=$("$VIGIL" dlq list --db "$DB")
check "vigil dlq list (table) shows both events" \
	sh -c "printf '%s\n' \"\$1\" | grep -qE \"webhook +$S2 +2 \" && printf '%s\n' \"\$1\" | grep -qE \"webhook +$D2 +2 \"" _ "$dlq_table"
grep -q "(webhook, event $S2): $MAX_ATTEMPTS attempts failed .* moved to the dead-letter queue" "$E2E_TMP/daemon.err"
check "the daemon says when it dead-letters an alert" [ $? -eq 0 ]

# ---------------------------------------------------- phase 3: replay
echo ok >"$MODE"
# expect_fail_cli DESCRIPTION REGEX CMD...: non-zero exit, one line on stderr.
expect_fail_cli() {
	local what=$1 re=$2 rc
	shift 2
	"$@" >"$E2E_TMP/cli.out" 2>"$E2E_TMP/cli.err"
	rc=$?
	if [ "$rc" -ne 0 ] && [ "$(wc -l <"$E2E_TMP/cli.err")" -eq 1 ] && grep -qE -- "$re" "$E2E_TMP/cli.err"; then
		ok "$what: exit $rc, \"$(cat "$E2E_TMP/cli.err")\""
	else
		show_file stderr "$E2E_TMP/cli.err" 5
		not_ok "$what (exit $rc)"
	fi
}
expect_fail_cli "vigil dlq replay without --id or --all" 'either --id N or --all' "$VIGIL" dlq replay --db "$DB"
expect_fail_cli "vigil dlq replay --id of no dead letter" 'no alert with id 999999' \
	"$VIGIL" dlq replay --db "$DB" --id 999999
expect_fail_cli "vigil dlq replay --id abc" "--id: 'abc' is not" "$VIGIL" dlq replay --db "$DB" --id abc
expect_fail_cli "vigil dlq list on a missing event log" 'cannot open event log' \
	"$VIGIL" dlq list --db "$E2E_TMP/none/vigil.db"
expect_fail_cli "vigil dlq frob" "unknown verb 'dlq frob'" "$VIGIL" dlq frob
check "the failed replays changed nothing (2 dead letters)" [ "$(dlq_n)" -eq 2 ]

first_id=$(jq -rs 'sort_by(.id) | .[0].id' <<<"$dlq_json")
first_seq=$(jq -rs 'sort_by(.id) | .[0].event_seq' <<<"$dlq_json")
second_seq=$(jq -rs 'sort_by(.id) | .[1].event_seq' <<<"$dlq_json")
out=$("$VIGIL" dlq replay --db "$DB" --id "$first_id")
check "vigil dlq replay --id $first_id: \"$out\"" [ "$(dlq_n)" -eq 1 ]
if wait_for 5 sh -c "[ \$(jq -s '[.[] | select(.mode == \"ok\" and (.body | fromjson).event_seq == $first_seq)] | length' '$RLOG') -ge 1 ]"; then
	ok "the receiver recovered: the replayed alert (event $first_seq) is delivered"
else
	not_ok "the receiver recovered: the replayed alert (event $first_seq) is delivered"
fi
check "... and only that one (event $second_seq still waits in the dead-letter queue)" \
	[ "$(recv_n "$second_seq" ok)" -eq 0 ]
out=$("$VIGIL" dlq replay --db "$DB" --all)
if wait_for 5 delivered "$S2" "$D2" && [ "$(dlq_n)" -eq 0 ]; then
	ok "vigil dlq replay --all (\"$out\"): the rest is delivered, the dead-letter queue is empty"
else
	not_ok "vigil dlq replay --all (\"$out\"): the rest is delivered, the dead-letter queue is empty"
fi
check "the outbox is empty again" wait_for 3 outbox_empty

# ------------------------------------------------------- phase 4: hang
echo hang >"$MODE"
kill_bg beat-3 KILL
wait_for 5 has_event 3 suspect || die "agent 3 stops beating: SUSPECT is logged"
S3=$(ev_seq 3 suspect)
hanging() { [ "$(recv_n "$S3" hang)" -ge 1 ]; }
wait_for 3 hanging || not_ok "the webhook request for event $S3 reaches the hanging receiver"
kill_bg beat-4 KILL
if wait_for 3 has_event 4 suspect; then
	S4=$(ev_seq 4 suspect)
	# A verdict the sweeper reached on time may still wait for evidence
	# that the receive path is not behind (docs/design.md, "held"): that
	# wait is reported in held_us and bounded by --hold-max-ms (200), so
	# it is counted apart from the lateness.
	read -r late held <<<"$(ev_json 4 suspect | jq -r '"\(.late_us) \(.held_us // 0)"')"
	lag_ms=$(sqlite3 "$DB" "SELECT (recorded_wall_ns - detected_wall_ns) / 1000000 FROM events WHERE event_seq = $S4")
	check_sh "while the webhook hangs, agent 4's SUSPECT is detected on time (late_us $late - held_us $held <= $LATE_MAX_US, held <= 200 ms) and logged $lag_ms ms after detection (< 300)" \
		'[ "$late" -ge 0 ] && [ $((late - held)) -le "$LATE_MAX_US" ] && [ "$held" -le 200000 ] && [ "$lag_ms" -lt 300 ]'
	check "... and the exec sink delivers it meanwhile" wait_for 2 test -s "$EXECD/$S4.json"
else
	not_ok "while the webhook hangs, agent 4's SUSPECT is detected and logged"
fi
timed_out() {
	grep -q "(webhook, event $S3): attempt 1 of $MAX_ATTEMPTS failed: timed out after $TIMEOUT_MS ms" "$E2E_TMP/daemon.err"
}
if wait_for 4 timed_out; then
	ok "the hung delivery of event $S3 times out after $TIMEOUT_MS ms and is scheduled again"
else
	show_file "vigil run stderr" "$E2E_TMP/daemon.err" 10
	not_ok "the hung delivery of event $S3 times out after $TIMEOUT_MS ms and is scheduled again"
fi
err3=$("$VIGIL" dlq list --db "$DB" --json --outbox | jq -r --argjson s "$S3" 'select(.sink == "webhook" and .event_seq == $s) | "\(.attempts) \(.last_error)"')
check "vigil dlq list --outbox shows it waiting: '$err3'" [ "$err3" = "1 timed out after $TIMEOUT_MS ms" ]
wait_for 5 has_event 4 dead
echo ok >"$MODE"
D3=$(ev_seq 3 dead)
D4=$(ev_seq 4 dead)
if wait_for 30 delivered "$S3" "$D3" "$S4" "$D4"; then
	ok "the receiver recovers: agents 3 and 4's alerts (events $S3 $D3 $S4 $D4) are delivered"
else
	not_ok "the receiver recovers: agents 3 and 4's alerts (events $S3 $D3 $S4 $D4) are delivered"
fi

# ------------------------------------------- phase 5: at-least-once
echo hang >"$MODE"
kill_bg beat-5 KILL
wait_for 5 has_event 5 dead || die "agent 5 stops beating: SUSPECT and DEAD are logged"
S5=$(ev_seq 5 suspect)
D5=$(ev_seq 5 dead)
in_flight() { [ "$(recv_n "$S5" hang)" -ge 1 ] || [ "$(recv_n "$D5" hang)" -ge 1 ]; }
wait_for 3 in_flight
pending=$("$VIGIL" dlq list --db "$DB" --json --outbox | jq -s -c --argjson a "$S5" --argjson b "$D5" \
	'[.[] | select(.sink == "webhook" and (.event_seq == $a or .event_seq == $b)) | .event_seq] | sort')
check "before the crash, agent 5's alerts wait in the outbox ($pending), one delivery in flight" \
	[ "$pending" = "$(jq -c -n --argjson a "$S5" --argjson b "$D5" '[$a, $b] | sort')" ]
kill_bg daemon KILL
kill_bg beat-6 KILL # dies while no daemon runs
agent6_dead() {
	[ "$(agent_field "$(status_json "$PIN")" 6 state)" = dead ]
}
wait_for 3 agent6_dead
echo ok >"$MODE"
start_daemon_or_die "a new daemon adopts the instance after the SIGKILL" \
	daemon2 "$NS" "$PIN" "${DAEMON_ARGS[@]}"
wait_for 5 has_event 6 dead
S6=$(ev_seq 6 suspect)
D6=$(ev_seq 6 dead)
check_sh "the new daemon logs agent 6's SUSPECT and DEAD (events $S6, $D6) from while none ran" \
	'[ -n "$S6" ] && [ -n "$D6" ]'

# Every alerting event in the log, from every phase, reached both sinks.
missing() {
	local s out=""
	for s in $(sqlite3 "$DB" "SELECT event_seq FROM events WHERE kind IN ('suspect','dead','recovered') ORDER BY event_seq"); do
		delivered "$s" || out+=" $s"
	done
	echo "$out"
}
none_missing() { [ -z "$(missing)" ]; }
n_alerting=$(sqlite3 "$DB" "SELECT count(*) FROM events WHERE kind IN ('suspect','dead','recovered')")
if wait_for 30 none_missing; then
	ok "at-least-once: all $n_alerting alerting events in the log were delivered by both sinks"
else
	show_file "vigil run stderr" "$E2E_TMP/daemon2.err" 20
	not_ok "at-least-once: alerts never delivered for events:$(missing)"
fi
dups=$(jq -s '[.[] | select(.mode == "ok") | .body] | length - (unique | length)' "$RLOG")
note "duplicate webhook deliveries over the run: $dups (allowed)"
all_empty() { outbox_empty && [ "$(dlq_n)" -eq 0 ]; }
check "the outbox and the dead-letter queue are empty" wait_for 3 all_empty

# ------------------------------------- phase 6: prompt stop, Alertmanager form
kill_bg daemon2 TERM
check "vigil run stops on SIGTERM (exit $LAST_RC)" [ "$LAST_RC" -eq 0 ]
AM_ARGS=("${DAEMON_ARGS[@]}" --alert-format alertmanager --alert-timeout-ms 20000)
start_daemon daemon3 "$NS" "$PIN" "${AM_ARGS[@]}" || die "vigil run --alert-format alertmanager starts"
echo hang >"$MODE"
beat 2 2
wait_for 5 has_event 2 recovered
R2=$(ev_seq 2 recovered)
in_flight2() { [ "$(jq -s --arg s "$R2" '[.[] | select(.mode == "hang") | .body | fromjson | select(type == "array" and .[0].annotations.event_seq == $s)] | length' "$RLOG")" -ge 1 ]; }
wait_for 3 in_flight2 || not_ok "the webhook request for event $R2 reaches the hanging receiver"
t_stop=$(date +%s%N)
kill_bg daemon3 TERM
stop_ms=$((($(date +%s%N) - t_stop) / 1000000))
check_sh "SIGTERM during a 20 s hung delivery: vigil run exits in $stop_ms ms (< 1500), status $LAST_RC" \
	'[ "$stop_ms" -lt 1500 ] && [ "$LAST_RC" -eq 0 ]'
left=$("$VIGIL" dlq list --db "$DB" --json --outbox | jq -r --argjson s "$R2" 'select(.sink == "webhook" and .event_seq == $s) | .attempts')
check "the abandoned delivery stays in the outbox, its attempt not counted (attempts '$left')" [ "$left" = 0 ]

# ------------------------------------------------------------- phase 7: syslog
# The daemon runs in a mount namespace of its own whose /dev is a tmpfs with
# null/zero/random/urandom bound from the real one and /dev/log a datagram
# listener that appends every message to $SYSLOG_OUT. The listener leaves
# when the daemon does (its parent changes).
SYSLOG_OUT=$E2E_TMP/syslog.txt
: >"$SYSLOG_OUT"
cat >"$E2E_TMP/with-devlog.sh" <<'EOF_SH'
#!/bin/bash
# with-devlog.sh OUT DIR CMD...: run CMD with /dev/log going to OUT.
set -e
out=$1 dir=$2
shift 2
mkdir -p "$dir/dev"
mount --rbind /dev "$dir/dev"
mount -t tmpfs vigil-test-dev /dev
for n in null zero random urandom; do
	: >"/dev/$n"
	mount --bind "$dir/dev/$n" "/dev/$n"
done
python3 -c '
import os, select, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("/dev/log")
parent = os.getppid()
open(sys.argv[1] + ".ready", "w").close()
with open(sys.argv[1], "a") as f:
    while os.getppid() == parent:
        if select.select([s], [], [], 0.2)[0]:
            f.write(s.recv(65536).decode(errors="replace").rstrip("\n") + "\n")
            f.flush()
' "$out" &
for _ in $(seq 100); do [ -e "$out.ready" ] && break; sleep 0.05; done
exec "$@"
EOF_SH
chmod +x "$E2E_TMP/with-devlog.sh"
echo ok >"$MODE"
SL_ARGS=(--iface lo --mode skb --no-auth --config "$CONF" --db "$DB" --quiet --alert-syslog)
"$VIGIL" run --help | grep -q -- '--metrics ' && SL_ARGS+=(--metrics off)
start_bg daemon4 "$NS" unshare --mount --propagation private "$E2E_TMP/with-devlog.sh" \
	"$SYSLOG_OUT" "$E2E_TMP/devlog" "$VIGIL" run --pin-root "$PIN" "${SL_ARGS[@]}"
if wait_for 10 grep -qE 'attached to|adopted' "$E2E_TMP/daemon4.err" && alive daemon4; then
	ok "vigil run --alert-syslog starts (in a mount namespace with its own /dev/log)"
else
	show_file "vigil run stderr" "$E2E_TMP/daemon4.err"
	not_ok "vigil run --alert-syslog starts (in a mount namespace with its own /dev/log)"
fi
check "it says that the webhook's alert (event $R2) waits in the outbox: the webhook is not configured" \
	grep -q "1 alert(s) for sink 'webhook' wait in the outbox" "$E2E_TMP/daemon4.err"
R3_old=$(ev_seq 3 recovered)
beat 3 2
wait_for 5 newer_event 3 recovered "${R3_old:-0}"
R3=$(ev_seq 3 recovered)
kill_bg beat-3 KILL
wait_for 5 newer_event 3 dead "$D3"
S3b=$(ev_seq 3 suspect)
D3b=$(ev_seq 3 dead)
# <PRI> = facility LOG_DAEMON (3) * 8 + severity: CRIT 2, WARNING 4, NOTICE 5
syslog_has() { # syslog_has PRI KIND SEQ
	grep -q "^<$1>.*vigil\[[0-9]*\]: agent alert-3 (id 3, group web) $2: .*, event $3: {\"event_seq\":$3," "$SYSLOG_OUT"
}
all_syslogged() {
	syslog_has 29 recovered "$R3" && syslog_has 28 suspect "$S3b" && syslog_has 26 dead "$D3b"
}
if wait_for 5 all_syslogged; then
	ok "syslog: RECOVERED at LOG_NOTICE (<29>), SUSPECT at LOG_WARNING (<28>), DEAD at LOG_CRIT (<26>), facility LOG_DAEMON, the event as JSON"
else
	show_file "syslog" "$SYSLOG_OUT" 10
	not_ok "syslog: RECOVERED at LOG_NOTICE (<29>), SUSPECT at LOG_WARNING (<28>), DEAD at LOG_CRIT (<26>), facility LOG_DAEMON, the event as JSON"
fi
kill_bg daemon4 TERM

e2e_finish

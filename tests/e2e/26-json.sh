#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
#
# Every JSON output goes through the one writer (user/common/json.c) and is
# valid JSON whatever the bytes it carries. An agent's name can only be
# [A-Za-z0-9._-] in the agents file, so the test writes a hostile one into
# the agent's record in the pinned map (bpftool, as a careless tool could):
# quotes, a backslash, a newline, a tab, control characters, a byte that is
# not UTF-8 and a two-byte character. The daemon then names the agent's
# events with it, and each output must parse and give the name back (the
# invalid byte as U+FFFD):
#   vigil status --json, vigil agent list --json, vigil log query --json,
#   vigil events, the --events-file export, the webhook body (json and
#   Alertmanager formats), and vigil dlq list --json, whose last_error holds
#   the receiver's own hostile answer.
# (The NATS export's payload is the same event line: 90-nats.sh checks it
# byte for byte against vigil log query --json.)
# shellcheck disable=SC2016,SC2034,SC2317
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
e2e_init
need_tools python3 bpftool

setup_lo_test "vg$$js" json
FAIL_BODY=$E2E_TMP/fail-body
printf 'agent 1 name=json-1\nagent 2 name=json-2\n' >"$CONF"
# 17 bytes: a " b \ c LF d TAB e ^A f DEL g 0xff h é
NAME=$'a"b\\c\nd\te\x01f\x7fg\xffh\xc3\xa9'
printf '%s' "$NAME" >"$E2E_TMP/name"
printf 'no "way"\\ \n\t\x02\xfe end' >"$FAIL_BODY"

start_http_receiver "$NS" "the HTTP receiver starts in $NS" fail --fail-body "$FAIL_BODY"
# The webhook URL from a private file (kept off the command line).
(umask 077 && echo "$URL" >"$E2E_TMP/webhook-url")
DAEMON_ARGS=(--iface lo --mode skb --no-auth --config "$CONF" --db "$DB" --events-file "$EV"
	--quiet --metrics off --alert-webhook-file "$E2E_TMP/webhook-url" --alert-max-attempts 1)
start_daemon daemon "$NS" "$PIN" "${DAEMON_ARGS[@]}" || die "vigil run starts"
for i in 1 2; do
	start_bg "beat-$i" "$NS" "$VIGIL" beat --id "$i" --target 127.0.0.1 --interval-ms 200
done
alive2() { [ "$(count_state "$(status_json "$PIN")" alive)" -eq 2 ]; }
wait_for 5 alive2 || die "both agents are ALIVE"

# The name goes into agent 1's record in vigil_agent_info while it beats
# (accepted beats do not write that record, nor does the sweeper while the
# agent is on time).
SLOT=$(agent_field "$(status_json "$PIN")" 1 slot)
python3 - "$PIN/vigil_agent_info" "$SLOT" "$E2E_TMP/name" <<'EOF' 2>"$E2E_TMP/patch.err" ||
import json, subprocess, sys
pin, slot, name = sys.argv[1], int(sys.argv[2]), open(sys.argv[3], "rb").read()
key = [str(b) for b in slot.to_bytes(4, "little")]
out = subprocess.run(["bpftool", "-j", "map", "lookup", "pinned", pin, "key", *key],
                     check=True, capture_output=True, text=True).stdout
value = bytes(int(x, 16) for x in json.loads(out)["value"])
old = b"json-1\0"
at = value.index(old)
value = value[:at] + name + b"\0" + value[at + len(name) + 1:]
subprocess.run(["bpftool", "map", "update", "pinned", pin, "key", *key, "value",
                *[str(b) for b in value]], check=True)
EOF
	{ show_file "patch stderr" "$E2E_TMP/patch.err"; die "writing the name into agent 1's record"; }

# same_name: every JSON document on stdin parses (one per line, or one in
# all), and every "name" of agent 1 in it is the hostile name (but for its
# 'up' event, recorded before the name was written).
same_name() {
	python3 -c '
import json, sys
want = open(sys.argv[1], "rb").read().decode("utf-8", "replace")
text = sys.stdin.buffer.read().decode("utf-8")  # strict: the writer emits UTF-8 only
docs = [json.loads(l) for l in text.splitlines() if l.strip()]
found = []
def walk(x):
    if isinstance(x, dict):
        if x.get("agent_id") == 1 and "name" in x and x.get("kind") != "up":
            found.append(x["name"])
        for v in x.values():
            walk(v)
    elif isinstance(x, list):
        for v in x:
            walk(v)
for d in docs:
    walk(d)
bad = [n for n in found if n != want]
print("%d documents, %d names of agent 1, %d wrong" % (len(docs), len(found), len(bad)))
sys.exit(0 if found and not bad else 1)
' "$E2E_TMP/name"
}

# check_json WHAT CMD...: CMD's output parses and names agent 1 correctly.
check_json() {
	local what=$1 summary
	shift
	if summary=$("$@" 2>"$E2E_TMP/cmd.err" | same_name 2>"$E2E_TMP/py.err"); then
		ok "$what: valid JSON, the name given back ($summary)"
	else
		show_file "stderr" "$E2E_TMP/cmd.err" 3
		show_file "parse" "$E2E_TMP/py.err" 3
		not_ok "$what: valid JSON, the name given back (${summary:-does not parse})"
	fi
}

check_json "vigil status --json" "$VIGIL" status --json --pin-root "$PIN"
check_json "vigil agent list --json" "$VIGIL" agent list --json --pin-root "$PIN"

kill_bg beat-1 KILL
dead1() {
	"$VIGIL" log query --db "$DB" --json --agent 1 --kind dead 2>/dev/null | grep -q .
}
wait_for 10 dead1 || not_ok "agent 1 goes DEAD once it stops beating"
alerts_failed() { [ "$("$VIGIL" dlq list --db "$DB" --json 2>/dev/null | wc -l)" -ge 2 ]; }
wait_for 10 alerts_failed || not_ok "its SUSPECT and DEAD alerts fail once and go to the dead-letter queue"

check_json "vigil log query --json" "$VIGIL" log query --db "$DB" --json --agent 1
check_json "vigil events" "$VIGIL" events --db "$DB" --agent 1
check_json "the --events-file export" cat "$EV"
check_json "the webhook bodies (json)" python3 -c '
import json, sys
for l in open(sys.argv[1]):
    r = json.loads(l)
    assert r["utf8"], "a body that is not UTF-8"
    print(r["body"])' "$RLOG"

# The dead-letter queue: the event, and the receiver's hostile answer.
check_json "vigil dlq list --json" "$VIGIL" dlq list --db "$DB" --json
if "$VIGIL" dlq list --db "$DB" --json | python3 -c '
import json, sys
want = "HTTP 500: " + open(sys.argv[1], "rb").read().decode("utf-8", "replace")
want = want.replace("\n", " ").replace("\r", " ")  # the table shows last_error on one line
rows = [json.loads(l) for l in sys.stdin]
sys.exit(0 if rows and all(r["last_error"] == want for r in rows) else 1)' "$FAIL_BODY"; then
	ok "vigil dlq list --json: last_error is the receiver's answer, quotes and all (newlines as spaces)"
else
	not_ok "vigil dlq list --json: last_error is the receiver's answer, quotes and all (newlines as spaces)"
fi

# The Alertmanager body: replayed from the dead-letter queue to a daemon
# that formats for Alertmanager.
kill_bg daemon TERM
echo ok >"$MODE"
: >"$RLOG"
start_daemon daemon2 "$NS" "$PIN" "${DAEMON_ARGS[@]}" --alert-format alertmanager ||
	die "vigil run --alert-format alertmanager adopts the instance"
"$VIGIL" dlq replay --db "$DB" --all >/dev/null || not_ok "vigil dlq replay --all"
delivered() { [ "$(wc -l <"$RLOG")" -ge 2 ]; }
wait_for 10 delivered || not_ok "the replayed alerts reach the receiver"
if python3 -c '
import json, sys
want = open(sys.argv[1], "rb").read().decode("utf-8", "replace")
n = 0
for l in open(sys.argv[2]):
    r = json.loads(l)
    assert r["utf8"]
    for a in json.loads(r["body"]):
        assert a["labels"]["name"] == want, a["labels"]["name"]
        assert want in a["annotations"]["summary"]
        n += 1
sys.exit(0 if n else 1)' "$E2E_TMP/name" "$RLOG" 2>"$E2E_TMP/am.err"; then
	ok "the webhook bodies (Alertmanager): valid JSON, labels.name and the summary carry the name"
else
	show_file "check" "$E2E_TMP/am.err" 3
	not_ok "the webhook bodies (Alertmanager): valid JSON, labels.name and the summary carry the name"
fi

kill_bg daemon2 TERM
e2e_finish

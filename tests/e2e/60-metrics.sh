#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
#
# The Prometheus endpoint of `vigil run --metrics`:
#   - /metrics passes `promtool check metrics`, is served as text format
#     0.0.4, shows two beating agents alive and a killed one dead (one-hot),
#     counts beats, says authentication is required, and every histogram
#     is cumulative and ends with +Inf == _count; /healthz and /readyz
#     answer 200, other paths 404;
#     100 idle connections neither lock /healthz out nor stay open long.
#   - A malformed --metrics address and a port already taken each fail with
#     one line on stderr and a non-zero exit, before anything is pinned; the
#     running daemon keeps serving.
#   - SIGTERM stops the daemon (and its server thread) promptly with status 0.
#   - An adopting daemon serves on [::1] and, with --metrics-max-agents below
#     the fleet, leaves the per-agent series out and says how many.
#
# Everything runs in a namespace with only loopback (skb-mode XDP on its lo);
# the daemon's 127.0.0.1 is that namespace's, so curl runs there too.
# check_sh evaluates its single-quoted condition later (SC2016/SC2034); small
# predicates are called through check/wait_for (SC2317).
# shellcheck disable=SC2016,SC2034,SC2317
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
e2e_init

need_tools curl promtool

PORT=19747
setup_lo_test "vg$$m" metrics
new_pin_root PIN_BAD metrics-bad
make_keys "$KEYS" 1-3 || die "vigil key gen --id 1-3"
cat >"$CONF" <<EOF
defaults interval-min-ms=5 interval-max-ms=1000 multiplier=3
agent 1 name=steady-1 group=web
agent 2 name=steady-2 group=web
agent 3 name=victim group=db
EOF
DAEMON_ARGS=(--iface lo --mode skb --config "$CONF" --keys "$KEYS" --db "$DB" --quiet)

# fetch PATH OUT [ADDR]: GET http://ADDR/PATH inside the namespace into OUT;
# prints "CODE CONTENT-TYPE".
fetch() {
	in_ns "$NS" curl -sS -g --max-time 5 -o "$2" -w '%{http_code} %{content_type}' \
		"http://${3:-127.0.0.1:$PORT}$1" 2>"$E2E_TMP/curl.err"
}

# value FILE SERIES: the sample value of one exact series (empty if absent).
value() {
	awk -v s="$2" 'substr($0, 1, length(s) + 1) == s " " { print $NF; exit }' "$1"
}

# histograms_ok FILE: every *_bucket series has increasing le bounds and
# non-decreasing counts, ends with le="+Inf", and +Inf equals its _count.
# Prints one line per problem; returns non-zero if there was one.
histograms_ok() {
	awk '
	/^#/ { next }
	/_bucket\{/ {
		v = $NF; s = $0; sub(/ [^ ]+$/, "", s)
		match(s, /le="[^"]*"/); le = substr(s, RSTART + 4, RLENGTH - 5)
		k = s; sub(/,?le="[^"]*"/, "", k); sub(/_bucket\{/, "{", k); sub(/\{\}$/, "", k)
		b = (le == "+Inf") ? "inf" : le + 0
		if (k in lastv) {
			if (lastle[k] == "inf" || (b != "inf" && b <= lastle[k]))
				{ print "le not increasing: " s; bad = 1 }
			if (v + 0 < lastv[k] + 0) { print "not cumulative: " s; bad = 1 }
		}
		lastv[k] = v; lastle[k] = b; n++
		next
	}
	/_count[{ ]/ { k = $1; sub(/_count/, "", k); count[k] = $NF }
	END {
		for (k in lastv) {
			if (lastle[k] != "inf") { print "no +Inf bucket: " k; bad = 1 }
			else if (!(k in count)) { print "no _count: " k; bad = 1 }
			else if (count[k] != lastv[k]) { print "+Inf " lastv[k] " != _count " count[k] ": " k; bad = 1 }
		}
		if (n == 0) { print "no histogram buckets at all"; bad = 1 }
		exit bad
	}' "$1"
}

# state_is FILE ID STATE: the agent's one-hot state series say STATE, and
# only STATE.
state_is() {
	local f=$1 id=$2 want=$3 ones
	ones=$(grep -E "^vigil_agent_state\{agent_id=\"$id\"," "$f" | awk '$NF == 1' |
		sed -n 's/.*state="\([a-z]*\)".*/\1/p' | tr '\n' ' ')
	[ "$ones" = "$want " ] &&
		[ "$(grep -cE "^vigil_agent_state\{agent_id=\"$id\"," "$f")" -eq 5 ]
}

# -------------------------------------------------------- the daemon runs
start_daemon_or_die "vigil run --metrics 127.0.0.1:$PORT starts in $NS" \
	daemon "$NS" "$PIN" "${DAEMON_ARGS[@]}" --metrics "127.0.0.1:$PORT"
ok "vigil run --metrics 127.0.0.1:$PORT starts in $NS"
check "it announces the metrics address" grep -q "metrics: http://127.0.0.1:$PORT/metrics" \
	"$E2E_TMP/daemon.err"

BEAT=("$VIGIL" beat --interval-ms 20 --keys "$KEYS" --target 127.0.0.1)
start_bg beat-1-2 "$NS" "${BEAT[@]}" --id 1-2
start_bg beat-3 "$NS" "${BEAT[@]}" --id 3
all_alive() {
	[ "$(count_state "$(status_json "$PIN")" alive)" -eq 3 ]
}
check "agents 1-3 become ALIVE" wait_for 5 all_alive
sleep 0.5
kill_bg beat-3 KILL
victim_dead() {
	[ "$(agent_field "$(status_json "$PIN")" 3 state)" = dead ]
}
check "agent 3 is DEAD after its beater is killed" wait_for 3 victim_dead
ready() {
	[ "$(fetch /readyz "$E2E_TMP/readyz")" = "200 text/plain; charset=utf-8" ]
}
wait_for 5 ready

# ---------------------------------------------------------------- /metrics
M=$E2E_TMP/metrics.txt
r=$(fetch /metrics "$M")
check "GET /metrics answers 200 with Content-Type text/plain; version=0.0.4 ($r)" \
	grep -q '^200 text/plain; version=0.0.4' <<<"$r"
note "/metrics: $(wc -l <"$M") lines, $(wc -c <"$M") bytes"

if promtool check metrics <"$M" >"$E2E_TMP/promtool.out" 2>&1; then
	ok "promtool check metrics accepts the output"
else
	not_ok "promtool check metrics accepts the output"
	show_file "promtool" "$E2E_TMP/promtool.out"
fi

for id in 1 2; do
	if state_is "$M" "$id" alive; then
		ok "agent $id: vigil_agent_state is 1 for alive only"
	else
		not_ok "agent $id: vigil_agent_state is 1 for alive only"
		note "$(grep -E "^vigil_agent_state\{agent_id=\"$id\"," "$M")"
	fi
done
if state_is "$M" 3 dead; then
	ok "agent 3: vigil_agent_state is 1 for dead only"
else
	not_ok "agent 3: vigil_agent_state is 1 for dead only"
	note "$(grep -E '^vigil_agent_state\{agent_id="3",' "$M")"
fi
check_sh "the labels carry the agent's name and group" \
	'grep -q "^vigil_agent_state{agent_id=\"3\",name=\"victim\",group=\"db\",state=\"dead\"} 1$" "$M"'

beats=$(value "$M" vigil_beats_total)
b1=$(value "$M" 'vigil_agent_beats_total{agent_id="1",name="steady-1",group="web"}')
check "vigil_beats_total > 0 ($beats) and agent 1's beats_total > 0 ($b1)" \
	[ "${beats:-0}" -gt 0 -a "${b1:-0}" -gt 0 ]
check_sh "vigil_agents counts 2 alive and 1 dead" \
	'[ "$(value "$M" "vigil_agents{state=\"alive\"}")" = 2 ] &&
	 [ "$(value "$M" "vigil_agents{state=\"dead\"}")" = 1 ]'
check_sh "vigil_auth_required is 1: the daemon runs with --keys" \
	'[ "$(value "$M" vigil_auth_required)" = 1 ]'
check_sh "vigil_agent_series_omitted is 0 below --metrics-max-agents" \
	'[ "$(value "$M" vigil_agent_series_omitted)" = 0 ]'
check_sh "the sweeper ran within the last second (vigil_sweeper_last_run_age_seconds)" \
	'awk "BEGIN { exit !($(value "$M" vigil_sweeper_last_run_age_seconds) < 1) }"'
check_sh "events were recorded and their delivery lag measured" \
	'[ "$(value "$M" vigil_events_recorded_total)" -ge 5 ] &&
	 [ "$(value "$M" vigil_event_delivery_lag_seconds_count)" -ge 5 ]'

if histograms_ok "$M" >"$E2E_TMP/hist.out"; then
	ok "every histogram is cumulative and ends with le=\"+Inf\" equal to _count"
else
	not_ok "every histogram is cumulative and ends with le=\"+Inf\" equal to _count"
	show_file "problems" "$E2E_TMP/hist.out"
fi
h1=$(value "$M" 'vigil_agent_beat_interval_seconds_count{agent_id="1",name="steady-1",group="web"}')
in_20ms=$(value "$M" 'vigil_agent_beat_interval_seconds_bucket{agent_id="1",name="steady-1",group="web",le="0.032"}')
in_16ms=$(value "$M" 'vigil_agent_beat_interval_seconds_bucket{agent_id="1",name="steady-1",group="web",le="0.016"}')
note "agent 1 beat intervals: $h1 in all, $in_16ms under 16 ms, $in_20ms under 32 ms"
check "agent 1's inter-arrival histogram counts its 20 ms beats mostly in (16, 32] ms" \
	[ "${h1:-0}" -gt 10 -a $(( ${in_20ms:-0} - ${in_16ms:-0} )) -gt $(( ${h1:-0} / 2 )) ]

# ------------------------------------------------------- label escaping
# No agents file allows such a name, but the maps are not the file: write one
# into agent 3's slot (it is dead, nothing else writes it) and check that
# quote, backslash and newline are escaped and bytes that are not UTF-8 become
# '?', so one odd name cannot make Prometheus drop the whole scrape.
slot=$(agent_field "$(status_json "$PIN")" 3 slot)
if python3 - "$PIN/vigil_agent_info" "$slot" <<'EOF'; then
import json, subprocess, sys
path, slot = sys.argv[1], int(sys.argv[2])
key = [str(b) for b in slot.to_bytes(4, "little")]
out = json.loads(subprocess.check_output(
    ["bpftool", "-j", "map", "lookup", "pinned", path, "key", *key]))
val = bytearray(int(x, 16) for x in out["value"])
at = val.find(b"victim\0")
assert at >= 0, "agent 3's name not found in its slot"
name = b'q"b\\s\n\xff\xc3\xa9\xe2\x82'  # ends in a cut 3-byte character
val[at:at + 32] = name.ljust(32, b"\0")
subprocess.check_call(["bpftool", "map", "update", "pinned", path, "key", *key,
                       "value", *[str(b) for b in val]])
EOF
	fetch /metrics "$M" >/dev/null
	want='vigil_agent_state{agent_id="3",name="q\"b\\s\n?é??",group="db",state="dead"} 1'
	if grep -qxF -- "$want" "$M"; then
		ok "a name with \", \\, newline and invalid UTF-8 is escaped: $want"
	else
		not_ok "a name with \", \\, newline and invalid UTF-8 is escaped"
		note "$(grep -aE '^vigil_agent_state\{agent_id="3",' "$M")"
	fi
	if promtool check metrics <"$M" >"$E2E_TMP/promtool.out" 2>&1; then
		ok "promtool check metrics accepts the output with the odd name"
	else
		not_ok "promtool check metrics accepts the output with the odd name"
		show_file "promtool" "$E2E_TMP/promtool.out"
	fi
else
	not_ok "rewriting agent 3's name in $PIN/vigil_agent_info with bpftool"
fi

# ------------------------------------------------------- health, readiness
r=$(fetch /healthz "$E2E_TMP/healthz")
check "GET /healthz answers 200 while the sweeper runs ($r: $(head -c 80 "$E2E_TMP/healthz"))" \
	grep -q '^200 ' <<<"$r"
r=$(fetch /readyz "$E2E_TMP/readyz")
check "GET /readyz answers 200 after the initial drain ($r)" grep -q '^200 ' <<<"$r"

# Any process on the node may connect: IDLE connections that never send a
# request must neither lock the liveness probe out nor be held for long.
IDLE=100
start_bg idle "$NS" python3 -c '
import socket, sys, time
n, port = int(sys.argv[1]), int(sys.argv[2])
socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(n)]
print("open", len(socks), flush=True)
t0 = time.monotonic()
for s in socks:
	s.settimeout(max(0.1, 20 - (time.monotonic() - t0)))
	try:
		s.recv(1)
	except OSError:
		pass
print("closed after %.1f s" % (time.monotonic() - t0), flush=True)
' "$IDLE" "$PORT"
wait_for 10 grep -q '^open' "$E2E_TMP/idle.out"
r=$(in_ns "$NS" curl -sS -g --max-time 1 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/healthz" 2>&1)
check "GET /healthz answers 200 within 1 s beside $IDLE idle connections ($(head -c 40 "$E2E_TMP/idle.out"); $r)" \
	[ "$r" = 200 ]
wait_for 20 grep -q '^closed' "$E2E_TMP/idle.out"
closed=$(awk '/^closed/ { print $3 }' "$E2E_TMP/idle.out")
check "the server closes idle connections within 10 s (after ${closed:-more than 20} s)" \
	awk -v t="${closed:-99}" 'BEGIN { exit !(t <= 10) }'
kill_bg idle
r=$(fetch /nope "$E2E_TMP/nope")
check "GET /nope answers 404 ($r)" grep -q '^404 ' <<<"$r"
r=$(fetch /metrics/ "$E2E_TMP/nope")
check "GET /metrics/ (not an endpoint) answers 404 ($r)" grep -q '^404 ' <<<"$r"

# ------------------------------------------------------------ bad options
# expect_refused DESCRIPTION REGEX CMD...: CMD exits non-zero with exactly one
# line on stderr matching REGEX, pins nothing, and the daemon keeps serving.
expect_refused() {
	local what=$1 re=$2
	shift 2
	run_refused "$NS" nz "$re" "$@"
	[ -e "$PIN_BAD" ] && PROBLEMS+=("$PIN_BAD exists afterwards")
	alive daemon || PROBLEMS+=("the first daemon died")
	[ "$(fetch /healthz "$E2E_TMP/healthz")" = "200 text/plain; charset=utf-8" ] ||
		PROBLEMS+=("the first daemon stopped serving")
	refusal_result "$what" 160 || {
		"$VIGIL" detach --pin-root "$PIN_BAD" >/dev/null 2>&1
		rm -rf -- "$PIN_BAD"
	}
}
expect_refused "vigil run --metrics 127.0.0.1:notaport" "--metrics port: 'notaport' is not" \
	"$VIGIL" run "${DAEMON_ARGS[@]}" --pin-root "$PIN_BAD" --metrics 127.0.0.1:notaport
expect_refused "vigil run --metrics localhost:9747 (numeric addresses only)" \
	"'localhost:9747' is not a numeric IPv4 address" \
	"$VIGIL" run "${DAEMON_ARGS[@]}" --pin-root "$PIN_BAD" --metrics localhost:9747
expect_refused "a second daemon on the same port" \
	"cannot listen on 127.0.0.1:$PORT: Address already in use \(port in use\? pass --metrics ADDR:PORT or --metrics off\)" \
	"$VIGIL" run "${DAEMON_ARGS[@]}" --pin-root "$PIN_BAD" --metrics "127.0.0.1:$PORT"
expect_refused "a second daemon adopting the instance, on the same port" \
	"cannot listen on 127.0.0.1:$PORT" \
	"$VIGIL" run "${DAEMON_ARGS[@]}" --pin-root "$PIN" --metrics "127.0.0.1:$PORT"
expect_refused "a second daemon adopting the instance on another port (one daemon per pin root)" \
	"another 'vigil run' \(pid [0-9]+\) already serves" \
	"$VIGIL" run "${DAEMON_ARGS[@]}" --pin-root "$PIN" --metrics off

# ------------------------------------------------------------------ stop
t0=$(now)
kill_bg daemon TERM
took=$(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }')
check "SIGTERM stops the daemon with status 0 within 2 s (status $LAST_RC, ${took} s)" \
	[ "$LAST_RC" = 0 -a "$(awk -v t="$took" 'BEGIN { print (t < 2) }')" = 1 ]
r=$(fetch /healthz "$E2E_TMP/healthz")
check "nothing listens on 127.0.0.1:$PORT afterwards (curl: $r)" grep -q '^000' <<<"$r"

# ------------------------------------- IPv6, and the per-agent series cap
if in_ns "$NS" ip -6 addr show dev lo | grep -q '::1/128'; then
	V6="[::1]:$((PORT + 1))"
	if start_daemon daemon2 "$NS" "$PIN" "${DAEMON_ARGS[@]}" --metrics "$V6" \
		--metrics-max-agents 2; then
		ok "an adopting daemon starts with --metrics $V6 --metrics-max-agents 2"
		wait_for 5 sh -c "nsenter --net=/run/netns/$NS curl -sf -g http://$V6/readyz"
		r=$(fetch /metrics "$M" "$V6")
		check "GET http://$V6/metrics answers 200 ($r)" grep -q '^200 ' <<<"$r"
		if promtool check metrics <"$M" >"$E2E_TMP/promtool.out" 2>&1; then
			ok "promtool check metrics accepts the capped output"
		else
			not_ok "promtool check metrics accepts the capped output"
			show_file "promtool" "$E2E_TMP/promtool.out"
		fi
		check_sh "above the cap: no vigil_agent_* series, vigil_agent_series_omitted 3" \
			'! grep -qE "^vigil_agent_(state|beats_total|beat_interval_seconds_bucket)\{" "$M" &&
			 [ "$(value "$M" vigil_agent_series_omitted)" = 3 ] &&
			 [ "$(value "$M" "vigil_agents{state=\"alive\"}")" = 2 ]'
		check_sh "the HELP line of vigil_agent_series_omitted explains the cap" \
			'grep -q "^# HELP vigil_agent_series_omitted .*--metrics-max-agents (2)" "$M"'
		r=$(fetch /healthz "$E2E_TMP/healthz" "$V6")
		check "GET http://$V6/healthz answers 200 ($r)" grep -q '^200 ' <<<"$r"
		kill_bg daemon2 TERM
	else
		show_file "vigil run stderr" "$E2E_TMP/daemon2.err"
		not_ok "an adopting daemon starts with --metrics $V6 --metrics-max-agents 2"
	fi
else
	echo "# skip: no ::1 on lo in $NS (IPv6 disabled); the [::1] listener is not tested"
fi

e2e_finish

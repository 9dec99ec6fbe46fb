#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
#
# The Python agent (agents/python, docs/wire-format.md, docs/leases.md)
# against a real monitor:
#   a. it installs from the checkout into a venv with no network (the
#      README's command, run inside a namespace that has no route out), and
#      its own tests pass with the installed package: SipHash-2-4 against
#      the reference vectors, the packets against docs/wire-format.md's
#      examples, the cadence decision for decision against cadence.h, the
#      agent against a scripted monitor;
#   b. `vigil run` with native XDP on a veth, the agents in another
#      namespace: beats accepted, acknowledgements verified by the agent, a
#      LEAVING agent is `left`, a killed one goes SUSPECT then DEAD on time;
#   c. an agent with a forged key is refused (bad_tag), changes nothing and
#      gets no acknowledgement;
#   d. leases: the best candidate is granted a token; paused past its lease
#      it learns it lost the lease by its own deadline while the other
#      candidate holds a higher token; stopping hands the lease over
#      (`lease_released`), to a yet higher token;
#   e. on loopback, the monitor's own acknowledgements come back through
#      XDP and are counted as `passed` (docs/wire-format.md says so).
# check_sh evaluates its single-quoted condition later (SC2016).
# shellcheck disable=SC2016
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
e2e_init
B=$(dirname "$VIGIL")
[ -e "$B/xdp_pass.bpf.o" ] || die "$B/xdp_pass.bpf.o is not built (run make)"
# Debian's interpreter: python3-venv, python3-setuptools and python3-wheel
# (scripts/deps.sh) are its packages, whatever else is first on PATH.
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3)
"$PY" -c 'import venv, setuptools, wheel' 2>/dev/null ||
	die "$PY lacks venv, setuptools or wheel (scripts/deps.sh installs python3-venv python3-setuptools python3-wheel)"

setup_veth_pair || die "veth pair between $NS_MON and $NS_AGENT"
# XDP_TX frames reach a veth peer only if it has an XDP program.
ip -n "$NS_AGENT" link set dev "$IF_AGENT" xdpdrv obj "$B/xdp_pass.bpf.o" sec xdp ||
	die "no-op XDP program on the agents' veth (acknowledgements need it)"

# --------------------------------------------------------------- a. install
V=$E2E_TMP/venv
PKG=$E2E_ROOT/agents/python
if in_ns "$NS_AGENT" "$PY" -m venv --system-site-packages "$V" >"$E2E_TMP/venv.out" 2>&1 &&
	in_ns "$NS_AGENT" "$V/bin/pip" install --no-build-isolation "$PKG" >>"$E2E_TMP/venv.out" 2>&1; then
	ok "pip install --no-build-isolation ./agents/python into a venv, offline: $(grep -o 'Successfully installed.*' "$E2E_TMP/venv.out")"
else
	show_file "venv and pip" "$E2E_TMP/venv.out"
	die "pip install --no-build-isolation ./agents/python into a venv, offline"
fi
rm -rf "$PKG/build" "$PKG"/*.egg-info # what setuptools leaves in the checkout
where=$(cd / && "$V/bin/python" -c 'import vigil_agent; print(vigil_agent.__file__)')
check "the tests below use the installed package ($where)" test "${where#"$V"/}" != "$where"
AGENT=$V/bin/vigil-agent
check "the vigil-agent command is installed" test -x "$AGENT"

VIGIL_ROOT=$E2E_ROOT "$V/bin/python" "$PKG/tests/run.py" >"$E2E_TMP/unit.out" 2>"$E2E_TMP/unit.err"
unit_rc=$?
while IFS= read -r line; do
	case $line in
	PASS\ *) ok "python: ${line#PASS }" ;;
	FAIL\ *) not_ok "python: ${line#FAIL }" ;;
	SKIP\ *) note "skip python: ${line#SKIP }" ;;
	esac
done <"$E2E_TMP/unit.out"
if [ "$unit_rc" -ne 0 ] || ! grep -q '^PASS ' "$E2E_TMP/unit.out"; then
	show_file "python tests stderr" "$E2E_TMP/unit.err" 40
	not_ok "the Python agent's tests ran and passed (exit $unit_rc)"
fi

# ------------------------------------------------------------ b. the monitor
new_pin_root PIN py
DB=$E2E_TMP/vigil.db
CONF=$E2E_TMP/agents.conf
KEYS=$E2E_TMP/keys
make_keys "$KEYS" 1-5 || die "vigil key gen"
D=300 # lease duration, ms
G=100 # grace, ms
cat >"$CONF" <<EOF
defaults interval-min-ms=10 interval-max-ms=2000 multiplier=3 group=py
agent 1 name=py-1
agent 2 name=py-2
agent 3 name=py-3
agent 4 name=py-4
agent 5 name=py-canary
ack py
lease primary id=1 duration-ms=$D grace-ms=$G candidates=3:20,4:10
EOF
start_daemon_or_die "vigil run attaches in native XDP mode to $IF_MON" mon "$NS_MON" "$PIN" \
	--iface "$IF_MON" --config "$CONF" --keys "$KEYS" --db "$DB" --dead-misses 2 --metrics off
ok "vigil run attaches in native XDP mode to $IF_MON"

# start_py NAME ARGS...: the installed vigil-agent in the agents' namespace,
# at the beaters' real-time priority, printing JSON lines ($E2E_TMP/NAME.out).
start_py() {
	local name=$1
	shift
	start_bg "$name" "$NS_AGENT" "${BEAT_PRIO[@]}" "$AGENT" --target 198.18.0.1 --json "$@"
}
# last_json NAME: the agent's last JSON line.
last_json() {
	tail -n 1 "$E2E_TMP/$1.out"
}
state_of() {
	agent_field "$(status_json "$PIN")" "$1" state
}
beats_of() {
	agent_field "$(status_json "$PIN")" "$1" beats
}

start_py py1 --id 1 --keys "$KEYS" --interval-ms 50
if wait_for 10 sh -c "[ \"\$('$VIGIL' status --json --pin-root '$PIN' | jq '.agents[] | select(.agent_id == 1) | .beats')\" -ge 20 ]"; then
	ok "agent 1's beats are accepted: $(beats_of 1) beats, state $(state_of 1)"
else
	show_file "agent 1 stderr" "$E2E_TMP/py1.err"
	not_ok "agent 1's beats are accepted (beats $(beats_of 1), state $(state_of 1))"
fi
j=$(status_json "$PIN")
check_sh "no refusal for agent 1 ($(jq -c '.agents[] | select(.agent_id == 1) | {bad_tag, duplicates, replayed, malformed, over_rate}' <<<"$j"))" \
	'[ "$(jq ".agents[] | select(.agent_id == 1) | .bad_tag + .duplicates + .replayed + .malformed + .over_rate" <<<"$j")" = 0 ]'
kill_bg py1 TERM
last=$(last_json py1)
check_sh "agent 1 verified every acknowledgement: $(jq -c '{beats_sent, acks_ok, acks_rejected, acks_stale}' <<<"$last")" \
	'[ "$(jq ".event == \"stopped\" and .acks_ok >= 20 and .acks_rejected == 0" <<<"$last")" = true ]'
check "SIGTERM sends LEAVING: agent 1 is left" wait_for 3 sh -c "[ \"\$('$VIGIL' status --json --pin-root '$PIN' | jq -r '.agents[] | select(.agent_id == 1) | .state')\" = left ]"

# A killed agent: no LEAVING beat, so SUSPECT at 3 x 50 ms, DEAD at 5 x 50 ms.
# Agent 5 beats every 10 ms meanwhile: the monitor's evidence that its
# receive path is current, without which a verdict on a lone agent waits
# (docs/operations.md, "the monitor's own health").
start_py py5 --id 5 --keys "$KEYS" --interval-ms 10
start_py py1 --id 1 --keys "$KEYS" --interval-ms 50
wait_for 5 sh -c "[ \"\$('$VIGIL' status --json --pin-root '$PIN' | jq -r '.agents[] | select(.agent_id == 1) | .state')\" = alive ]" ||
	not_ok "agent 1 is alive again after a restart (state $(state_of 1))"
nap 0.5
kill_bg py1 KILL
if wait_for 5 sh -c "[ \"\$('$VIGIL' status --json --pin-root '$PIN' | jq -r '.agents[] | select(.agent_id == 1) | .state')\" = dead ]"; then
	ok "a killed agent goes DEAD"
else
	not_ok "a killed agent goes DEAD (state $(state_of 1))"
fi
nap 0.2
EVJ=$E2E_TMP/events.jsonl
log_json "$DB" >"$EVJ"
kill_bg py5 TERM
# The restarted agent has a higher incarnation: a `restart` beside its `up`.
kinds=$(jq -sr 'map(select(.agent_id == 1 and .kind != "restart")) | sort_by(.event_seq) | map(.kind) | join(" ")' "$EVJ")
check_sh "agent 1's events, in order: up left up suspect dead ($kinds)" \
	'[ "$kinds" = "up left up suspect dead" ]'
times=$(jq -sr 'map(select(.agent_id == 1 and (.kind == "suspect" or .kind == "dead")) |
	"\(.kind): deadline \((.deadline_ns - .last_seen_ns) / 1e6) ms after the last beat, taken \(.late_us) us after it") | join("; ")' "$EVJ")
check_sh "SUSPECT at 3 x 50 ms, DEAD at 5 x 50 ms after the last beat, each within 50 ms of its deadline ($times)" \
	'[ "$(jq -s "map(select(.agent_id == 1 and (.kind == \"suspect\" or .kind == \"dead\")) |
		[(.deadline_ns - .last_seen_ns) / 1e6, .late_us >= 0 and .late_us < 50000]) | tostring" "$EVJ")" = "\"[[150,true],[250,true]]\"" ]'

# ------------------------------------------------------------ c. forged key
FORGED=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
start_py py2 --id 2 --key "$FORGED" --interval-ms 20
wait_for 5 sh -c "[ \"\$('$VIGIL' status --json --pin-root '$PIN' | jq '.agents[] | select(.agent_id == 2) | .bad_tag')\" -ge 20 ]"
kill_bg py2 TERM
j=$(status_json "$PIN")
check_sh "a forged key is refused: agent 2 $(jq -c '.agents[] | select(.agent_id == 2) | {state, beats, bad_tag}' <<<"$j")" \
	'[ "$(jq -r ".agents[] | select(.agent_id == 2) | \"\(.state) \(.beats) \(.bad_tag >= 20)\"" <<<"$j")" = "new 0 true" ]'
last=$(last_json py2)
check_sh "a refused beat gets no acknowledgement: $(jq -c '{beats_sent, acks_ok, acks_rejected}' <<<"$last")" \
	'[ "$(jq ".beats_sent >= 20 and .acks_ok == 0 and .acks_rejected == 0" <<<"$last")" = true ]'

# ------------------------------------------------------------------ d. leases
LEASE=(--pin-root "$PIN" --db "$DB")
lease_json() {
	"$VIGIL" lease show 1 --json --history 0 "${LEASE[@]}" 2>/dev/null
}
# gained NAME [AFTER_TOKEN]: the token of NAME's last "gained" above AFTER_TOKEN.
gained() {
	jq -r --argjson t "${2:-0}" 'select(.event == "gained" and .token > $t) | .token' \
		"$E2E_TMP/$1.out" 2>/dev/null | tail -n 1
}
# Agent 3 first: the lease goes to the first healthy candidate, and on a busy
# machine the second Python process can beat before the first one does.
start_py py3 --id 3 --keys "$KEYS" --interval-ms 50 --lease 1
wait_for 10 sh -c "[ \"\$('$VIGIL' status --json --pin-root '$PIN' | jq -r '.agents[] | select(.agent_id == 3) | .state')\" = alive ]"
start_py py4 --id 4 --keys "$KEYS" --interval-ms 50 --lease 1
if wait_for 10 sh -c "[ -n \"\$(jq -r 'select(.event == \"gained\") | .token' '$E2E_TMP/py3.out' 2>/dev/null)\" ]"; then
	T1=$(gained py3)
	l=$(lease_json)
	check_sh "agent 3 (the best candidate) holds lease 1 under token $T1, as the monitor says ($(jq -c '{state, holder, token}' <<<"$l"))" \
		'[ "$(jq -r "\"\(.state) \(.holder) \(.token)\"" <<<"$l")" = "held 3 $T1" ]'
else
	show_file "agent 3" "$E2E_TMP/py3.out"
	show_file "agent 3 stderr" "$E2E_TMP/py3.err"
	die "agent 3 is granted lease 1"
fi
check_sh "agent 4 does not hold it" '[ -z "$(gained py4)" ]'

# Paused past its lease: the monitor expires it and grants agent 4 a higher
# token; agent 3, resumed, finds its own deadline passed.
kill -STOP "${PIDS[py3]}"
if wait_for 5 sh -c "[ -n \"\$(jq -r --argjson t $T1 'select(.event == \"gained\" and .token > \$t) | .token' '$E2E_TMP/py4.out' 2>/dev/null)\" ]"; then
	T2=$(gained py4 "$T1")
	ok "agent 3 paused: agent 4 is granted token $T2 > $T1"
else
	show_file "agent 4" "$E2E_TMP/py4.out"
	not_ok "agent 3 paused: agent 4 is granted a higher token"
	T2=$T1
fi
kill -CONT "${PIDS[py3]}"
if wait_for 3 sh -c "jq -e 'select(.event == \"lost\")' '$E2E_TMP/py3.out' >/dev/null 2>&1"; then
	lost=$(jq -c 'select(.event == "lost") | {token, reason}' "$E2E_TMP/py3.out" | head -n 1)
	check_sh "agent 3, resumed, knows it lost token $T1 by its own deadline ($lost)" \
		'[ "$(jq -r "\"\(.token) \(.reason)\"" <<<"$lost")" = "$T1 deadline" ]'
else
	not_ok "agent 3, resumed, reports the loss"
fi
nap 0.3
check_sh "agent 3 never holds again under token $T1, agent 4 holds $T2" \
	'[ "$(gained py3 "$T1")" = "" ] && [ "$(lease_json | jq -r "\"\(.holder) \(.token)\"")" = "4 $T2" ]'

# Stopping the holder hands the lease over at once.
kill_bg py4 TERM
last=$(last_json py4)
if wait_for 3 sh -c "[ -n \"\$(jq -r --argjson t $T2 'select(.event == \"gained\" and .token > \$t) | .token' '$E2E_TMP/py3.out' 2>/dev/null)\" ]"; then
	T3=$(gained py3 "$T2")
	ok "agent 4 stopped: agent 3 is granted token $T3 > $T2"
else
	not_ok "agent 4 stopped: agent 3 is granted a higher token"
fi
check_sh "agent 4's last word: lease lost (released), acknowledgements verified ($(jq -c '{holder, reason, acks_ok, acks_rejected}' <<<"$last"))" \
	'[ "$(jq ".holder == false and .reason == \"released\" and .acks_ok > 0 and .acks_rejected == 0" <<<"$last")" = true ]'
log_json "$DB" >"$EVJ"
rel=$(jq -c 'select(.kind == "lease_released") | {agent_id, lease_id, token}' "$EVJ" | tail -n 1)
check_sh "the monitor recorded lease_released by agent 4 under token $T2 ($rel)" \
	'[ "$(jq -r "\"\(.agent_id) \(.lease_id) \(.token)\"" <<<"$rel")" = "4 1 $T2" ]'
kill_bg py3 TERM
check_sh "agent 3 verified every acknowledgement ($(last_json py3 | jq -c '{acks_ok, acks_rejected, acks_stale}'))" \
	'[ "$(last_json py3 | jq ".acks_ok > 0 and .acks_rejected == 0")" = true ]'
kill_bg mon TERM

# ------------------------------------------------------------- e. loopback
setup_lo_ns "${NS_MON}l" || die "loopback namespace"
new_pin_root PINL lo
start_daemon_or_die "vigil run --mode skb on lo" monl "${NS_MON}l" "$PINL" --iface lo --mode skb \
	--config "$CONF" --keys "$KEYS" --db "$E2E_TMP/lo.db" --metrics off
before=$("$VIGIL" status --json --pin-root "$PINL" | jq '.stats.passed')
start_bg pylo "${NS_MON}l" "$AGENT" --target 127.0.0.1 --id 1 --keys "$KEYS" --interval-ms 10 \
	--count 100 --json
wait_exit pylo 10 || kill_bg pylo KILL
acks=$(last_json pylo | jq '.acks_ok')
passed=$(("$("$VIGIL" status --json --pin-root "$PINL" | jq '.stats.passed')" - before))
check_sh "on loopback each acknowledgement comes back through XDP as passed ($acks acks verified, passed +$passed)" \
	'[ "$acks" -ge 90 ] && [ "$passed" -ge "$acks" ] && [ "$passed" -le $((acks + 20)) ]'

e2e_finish

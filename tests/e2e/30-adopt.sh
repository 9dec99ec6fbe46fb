#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
#
# The instance outlives its daemon, and `vigil detach` ends it:
#   - SIGTERM the daemon: XDP stays attached, the sweeper keeps running, an
#     agent killed afterwards is DEAD in `vigil status`;
#   - a new `vigil run` adopts the instance: it records that failure once,
#     raises no false event for beating agents and writes nothing twice
#     (also when restarted again right away);
#   - `vigil run` refuses to adopt an instance onto another interface;
#   - `vigil detach` removes the XDP link (ip link shows no xdp), the pins,
#     the programs and the sweeper; the running daemon notices and exits.
#
# skb-mode (generic) XDP on the monitor side of a veth pair; 10-fleet.sh
# covers native mode. Events the agents' own send logs explain (no beat
# sent before the deadline) are left out of the counts and reported
# (excuse.py).
# check_sh evaluates its single-quoted condition later (SC2016/SC2034); small
# predicates are called through check/wait_for (SC2317).
# shellcheck disable=SC2016,SC2034,SC2317
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
e2e_init

setup_veth_pair || die "creating namespaces $NS_MON/$NS_AGENT and a veth pair"
new_pin_root PIN adopt
EV=$E2E_TMP/events.jsonl # JSON-lines export of the log, for jq
DB=$E2E_TMP/vigil.db      # the durable event log
CONF=$E2E_TMP/agents.conf
cat >"$CONF" <<EOF
defaults interval-min-ms=5 interval-max-ms=1000 multiplier=3
agent 1
agent 2
agent 3
agent 4 name=victim
EOF
KEYS=$E2E_TMP/keys
make_keys "$KEYS" 1-4 || die "vigil key gen --id 1-4"
DAEMON_ARGS=(--iface "$IF_MON" --mode skb --config "$CONF" --keys "$KEYS" --db "$DB" --events-file "$EV" --quiet)

start_daemon_or_die "vigil run attaches in skb mode to $IF_MON" \
	d1 "$NS_MON" "$PIN" "${DAEMON_ARGS[@]}"
ok "vigil run attaches in skb mode to $IF_MON"
start_beater beat-1-3 "$NS_AGENT" --id 1-3 --target 198.18.0.1 --interval-ms 20 --keys "$KEYS"
start_beater beat-4 "$NS_AGENT" --id 4 --target 198.18.0.1 --interval-ms 20 --keys "$KEYS"

state_of() {
	agent_field "$(status_json "$PIN")" "$1" state
}
all_alive() {
	[ "$(count_state "$(status_json "$PIN")" alive)" -eq 4 ]
}
check "agents 1-4 become ALIVE" wait_for 5 all_alive
nap 0.5

xdp_prog_id() {
	ip -n "$NS_MON" -d link show "$IF_MON" | sed -n 's/.*prog\/xdp id \([0-9]*\).*/\1/p'
}
PROG_ID=$(xdp_prog_id)
TIMER_MAP_ID=$(bpftool -j map show pinned "$PIN/vigil_timer" 2>/dev/null | jq -r '.id // empty')
note "XDP program id ${PROG_ID:-?}, sweeper timer map id ${TIMER_MAP_ID:-?}"

# -------------------------------------------- the daemon stops (SIGTERM)
kill_bg d1 TERM
check "the daemon exits with status 0 on SIGTERM" [ "$LAST_RC" -eq 0 ]
check "it says detection continues in the kernel" \
	grep -q 'detection continues' "$E2E_TMP/d1.err"
check "the XDP link stays pinned" [ -e "$PIN/link" ]
check_sh "ip link still shows the same vigil_xdp (id $PROG_ID) on $IF_MON" \
	'[ -n "$PROG_ID" ] && [ "$(xdp_prog_id)" = "$PROG_ID" ]'
# checked_events: $EVF := the log as it is now without what the agents' send
# logs explain (the beating agents' events, agent 4's before it was killed);
# N_CHECKED := its size.
EVS=$E2E_TMP/events.snapshot.jsonl
EVF=$E2E_TMP/events.checked.jsonl
T4_NS=
checked_events() {
	snapshot_events "$EV" "$EVS"
	: >"$E2E_TMP/excused"
	agent_excuse "$EVS" 1-3
	agent_excuse "$EVS" 4 "${T4_NS:-$(mono_ns)}"
	without_excused "$EVS" "$EVF"
	N_CHECKED=$(wc -l <"$EVF")
}
lines_stopped=$(wc -l <"$EV")

T4_NS=$(mono_ns)
kill_bg beat-4 KILL
agent4_dead() { [ "$(state_of 4)" = dead ]; }
if wait_for 3 agent4_dead; then
	ok "an agent killed after the daemon stopped is DEAD in vigil status"
else
	not_ok "an agent killed after the daemon stopped is DEAD in vigil status (state $(state_of 4))"
fi
st=$(status_json "$PIN")
r1=$(jq .sweeper.runs <<<"$st")
nap 0.3
st=$(status_json "$PIN")
r2=$(jq .sweeper.runs <<<"$st")
check "the sweeper keeps ticking without a daemon (runs $r1 -> $r2)" [ "${r2:-0}" -gt "${r1:-0}" ]
alive3() { [ "$(count_state "$(status_json "$PIN")" alive)" -eq 3 ]; }
check "agents 1-3 stay ALIVE without a daemon" wait_for 2 alive3
check "nothing is written to the log while no daemon runs" [ "$(wc -l <"$EV")" -eq "$lines_stopped" ]

# ---------------------------------------------------------------- adoption
# Adopting onto another interface is refused and leaves the instance alone.
in_ns "$NS_MON" "$VIGIL" run --iface lo --mode skb --keys "$KEYS" --pin-root "$PIN" --db "$DB" --events-file "$EV" \
	--quiet >"$E2E_TMP/wrong.out" 2>"$E2E_TMP/wrong.err"
rc=$?
if [ "$rc" -ne 0 ] && grep -q 'attached to another interface' "$E2E_TMP/wrong.err" &&
	[ -e "$PIN/link" ] && [ "$(xdp_prog_id)" = "$PROG_ID" ]; then
	ok "vigil run --iface lo refuses to adopt the instance on $IF_MON and leaves it attached"
else
	show_file stderr "$E2E_TMP/wrong.err"
	not_ok "vigil run --iface lo refuses to adopt the instance on $IF_MON and leaves it attached (exit $rc)"
fi

start_daemon_or_die "a new vigil run adopts the instance" d2 "$NS_MON" "$PIN" "${DAEMON_ARGS[@]}"
check "a new vigil run adopts the instance" grep -q 'adopted the running instance' "$E2E_TMP/d2.err"
check "it registers nothing anew (4 agents already watched)" \
	grep -q 'agents: 0 registered, 4 already watched' "$E2E_TMP/d2.err"
logged4() { [ "$(events_where "$EV" '.agent_id == 4 and .kind == "dead"')" -ge 1 ]; }
wait_for 5 logged4
nap 1.5

checked_events
kinds4=$(jq -rs '[.[] | select(.agent_id == 4) | .kind] | join(",")' "$EVF")
check "the adopting daemon records agent 4's SUSPECT and DEAD exactly once ($kinds4)" \
	[ "$kinds4" = "up,suspect,dead" ]
note "agent 4: $(jq -rs '[.[] | select(.agent_id == 4 and .kind != "up") |
	"\(.kind) reconciled=\(.reconciled) late_us=\(.late_us // "n/a")"] | join("; ")' "$EVF")"
false_ev=$(jq -c 'select(.agent_id <= 3 and .kind != "up")' "$EVF")
ups=$(events_where "$EVF" '.agent_id <= 3 and .kind == "up"')
if [ -z "$false_ev" ] && [ "$ups" -eq 3 ]; then
	ok "no false event for the beating agents 1-3 (one 'up' each)"
else
	note "$false_ev"
	not_ok "no false event for the beating agents 1-3 ($ups up)"
fi
dups=$(jq -s '[.[].event_seq] | group_by(.) | map(select(length > 1) | .[0])' "$EVS")
check "no event_seq appears twice in the log (duplicates: $dups)" [ "$dups" = "[]" ]
check "the log holds exactly 6 events (4 up, 1 suspect, 1 dead; $(wc -l <"$E2E_TMP/excused") excused)" \
	[ "$(wc -l <"$EVF")" -eq 6 ]

# Restart once more at once: nothing new to record, nothing recorded twice.
checked_events
lines=$N_CHECKED
kill_bg d2 TERM
if start_daemon d3 "$NS_MON" "$PIN" "${DAEMON_ARGS[@]}"; then
	nap 1.2
	checked_events
	after=$N_CHECKED
	if [ "$after" -eq "$lines" ]; then
		ok "a second adoption right away writes nothing new ($lines events)"
	else
		note "$(tail -n +"$((lines + 1))" "$EVF" | jq -c '{event_seq, agent_id, kind, reason, reconciled}' | head -n 12)"
		not_ok "a second adoption right away writes nothing new ($lines -> $after events)"
	fi
else
	show_file "vigil run stderr" "$E2E_TMP/d3.err"
	not_ok "a second adoption right away starts"
fi

check_replay "$DB" "$PIN" "vigil log replay --check" "vigil log replay --check: the log agrees with the maps"

# ------------------------------------------------------------------ detach
if "$VIGIL" detach --pin-root "$PIN" >"$E2E_TMP/detach.out" 2>"$E2E_TMP/detach.err"; then
	ok "vigil detach succeeds while a daemon runs"
else
	show_file stderr "$E2E_TMP/detach.err"
	not_ok "vigil detach succeeds while a daemon runs"
fi
link_line=$(ip -n "$NS_MON" -d link show "$IF_MON")
if grep -qE 'xdp|prog/' <<<"$link_line"; then
	note "$link_line"
	not_ok "ip link shows no xdp on $IF_MON after detach"
else
	ok "ip link shows no xdp on $IF_MON after detach"
fi
check "the pin directory $PIN is gone" [ ! -e "$PIN" ]

if wait_exit d3 5; then
	ok "the daemon sees its instance detached and exits by itself (status $LAST_RC)"
	check "it says why" grep -q 'was detached; exiting' "$E2E_TMP/d3.err"
else
	not_ok "the daemon sees its instance detached and exits by itself"
fi
# Compared once the daemon has exited: while it runs, an event can land
# between reading one and reading the other (the beaters' own stalls, which
# the send logs excuse, keep adding events on a busy machine).
check "the durable log (SQLite) holds the same events as the JSON-lines export" same_events "$EV" "$DB"

# With every user gone the programs and the sweeper's timer map are freed.
prog_gone() { ! bpftool prog show id "$PROG_ID" >/dev/null 2>&1; }
map_gone() { ! bpftool map show id "$TIMER_MAP_ID" >/dev/null 2>&1; }
check "the XDP program (id $PROG_ID) is unloaded" \
	wait_for 10 prog_gone
check "the sweeper's timer map (id $TIMER_MAP_ID) is freed: detection stopped" \
	wait_for 10 map_gone

# Beats now reach the stack instead of being consumed by XDP.
in_ns "$NS_MON" timeout 3 python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("198.18.0.1", 4747))
data, _ = s.recvfrom(2048)
sys.exit(0 if len(data) == 64 and data[:2] == b"VG" else 1)
' 2>"$E2E_TMP/py.err"
check "after detach, beats to 198.18.0.1:4747 reach a UDP socket (XDP no longer consumes them)" \
	[ $? -eq 0 ]
checked_events
check "detach raised no event (log unchanged at $lines events)" [ "$N_CHECKED" -eq "$lines" ]

e2e_finish

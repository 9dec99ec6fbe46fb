#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
#
# A receive queue stalled for longer than --hold-max-ms, the agents not:
# no false verdict, and an agent that really stopped is still reported.
#
# vigil in native XDP mode on a veth whose receive queue is served by a
# threaded NAPI thread on CPU 1 at normal priority, as a NIC queue is served
# by a NAPI thread or ksoftirqd under load. The agents beat every 10 ms from
# CPU 0 at real-time priority, with send logs. Three times, a real-time CPU
# hog on CPU 1 keeps the NAPI thread off the CPU for STALL_MS (3x the hold
# bound): no beat reaches XDP meanwhile, so no receive-path evidence
# arrives either, and before the monitor watched its queue in the kernel
# (docs/design.md, "a stalled receive queue") every agent went SUSPECT,
# "unverified", at the bound. Now:
#
#   - zero SUSPECT/DEAD/RECOVERED for the agents that kept beating (less
#     what their own send logs excuse: nothing sent before the deadline);
#   - each stall opens a MONITOR_BEHIND episode of the receive queue while it
#     lasts (the kernel shows the queue holding unprocessed packets);
#   - one agent killed just before the last stall is SUSPECT and DEAD after.
# check_sh evaluates its single-quoted condition later (SC2016).
# shellcheck disable=SC2016
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
e2e_init

[ "$(nproc)" -ge 2 ] || { echo "# SKIP: needs 2 CPUs (agents on one, the starved queue on the other)"; e2e_finish; }
chrt -f 50 true 2>/dev/null || { echo "# SKIP: cannot run a real-time task (chrt -f)"; e2e_finish; }

N=20
VICTIM=$N
HOLD_MS=200
STALL_MS=600
STALLS=3
RX_CPU=1 AGENT_CPU=0

setup_veth_pair || die "creating namespaces $NS_MON/$NS_AGENT and a veth pair"
new_pin_root PIN rxstall
KEYS=$E2E_TMP/keys CONF=$E2E_TMP/agents.conf DB=$E2E_TMP/vigil.db EV=$E2E_TMP/events.jsonl
make_keys "$KEYS" "1-$N"
{
	echo "defaults interval-min-ms=5 interval-max-ms=1000 multiplier=3"
	for i in $(seq 1 $N); do echo "agent $i"; done
} >"$CONF"

start_daemon_or_die "vigil run attaches in native mode" daemon "$NS_MON" "$PIN" \
	--iface "$IF_MON" --mode native --config "$CONF" --keys "$KEYS" --db "$DB" \
	--events-file "$EV" --hold-max-ms "$HOLD_MS" --quiet
ok "vigil run attaches in native mode to $IF_MON (--hold-max-ms $HOLD_MS)"

# Threaded NAPI exists only while XDP is attached; its thread goes to RX_CPU
# at normal priority.
ip netns exec "$NS_MON" sh -c "echo 1 > /sys/class/net/$IF_MON/threaded" ||
	die "cannot turn on threaded NAPI on $IF_MON"
NAPI=
wait_for 5 pgrep "^napi/$IF_MON" && NAPI=$(pgrep "^napi/$IF_MON" | head -1)
[ -n "$NAPI" ] || die "no NAPI thread for $IF_MON"
if ! taskset -pc "$RX_CPU" "$NAPI" >/dev/null || ! chrt -o -p 0 "$NAPI"; then
	die "cannot pin the NAPI thread"
fi
ok "the receive queue is served by $(cat "/proc/$NAPI/comm") on CPU $RX_CPU at normal priority"

# The agents as start_beater starts them (real-time priority, send logs),
# on AGENT_CPU.
agents_on_cpu() { # NAME IDS
	start_bg "$1" "$NS_AGENT" "${BEAT_PRIO[@]}" taskset -c "$AGENT_CPU" "$VIGIL" beat \
		--send-log "$E2E_TMP/send.$1.jsonl" --id "$2" --target 198.18.0.1 --interval-ms 10 --keys "$KEYS"
}
agents_on_cpu beat "1-$((N - 1))"
agents_on_cpu victim "$VICTIM"
all_alive() { [ "$(count_state "$(status_json "$PIN")" alive)" -eq "$N" ]; }
wait_for 10 all_alive || die "all $N agents ALIVE before the stalls"
ok "all $N agents are ALIVE"

T0=$(mono_ns)
STALL_AT=()
for ((k = 1; k <= STALLS; k++)); do
	# Past the last episode's calm second (HEALTH_CALM_MS): each stall
	# starts with the queue on time, as a first stall would.
	nap 2.5
	if [ "$k" -eq "$STALLS" ]; then
		T_KILL=$(mono_ns)
		kill_bg victim KILL
	fi
	STALL_AT+=("$(mono_ns)")
	timeout "$(awk -v m="$STALL_MS" 'BEGIN { printf "%.3f", m / 1000 }')" \
		chrt -f 50 taskset -c "$RX_CPU" sh -c 'while :; do :; done'
	STALL_AT+=("$(mono_ns)")
done
nap 1.5
T_END=$(mono_ns)
kill_bg beat TERM
nap 0.3
rx_record "$PIN"

snapshot_events "$EV" "$E2E_TMP/events.snap"
agent_excuse "$E2E_TMP/events.snap" "1-$((N - 1))" "$T_END"
without_excused "$E2E_TMP/events.snap" "$E2E_TMP/events.checked.jsonl"
FALSE=$(events_where "$E2E_TMP/events.checked.jsonl" \
	"(.kind == \"suspect\" or .kind == \"dead\" or .kind == \"recovered\") and .agent_id < $VICTIM and .detected_ns > $T0 and .detected_ns < $T_END")
check "no SUSPECT/DEAD/RECOVERED for the $((N - 1)) agents that kept beating through $STALLS stalls of $STALL_MS ms ($FALSE)" \
	[ "$FALSE" -eq 0 ]
[ "$FALSE" -eq 0 ] || note "$(jq -c "select(.agent_id < $VICTIM and .kind != \"up\") | [.agent_id, .kind, .late_us, .held_us, .unverified, .cause]" "$E2E_TMP/events.checked.jsonl" | head -8)"
# Each stall lay in a MONITOR_BEHIND episode of the receive queue that was
# open by its first half: seen while it lasted, not from the late beats after.
SEEN=$(python3 - "$E2E_TMP/events.snap" "$STALL_MS" "${STALL_AT[@]}" <<'EOF'
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1])]
half = int(sys.argv[2]) * 1e6 / 2
eps, since = [], None
for e in ev:
    if e.get("state") != "receive_queue":
        continue
    if e["kind"] == "monitor_behind":
        since = e["detected_ns"]
    elif e["kind"] == "monitor_caught_up" and since is not None:
        eps.append((since, e["detected_ns"]))
        since = None
if since is not None:
    eps.append((since, float("inf")))
w = list(map(int, sys.argv[3:]))
print(sum(any(s <= b - half and t >= b - half for s, t in eps) for b in w[1::2]))
EOF
)
check "each stall was seen while it lasted: a MONITOR_BEHIND episode of the receive queue open in its first half ($SEEN of $STALLS)" \
	[ "${SEEN:-0}" -eq "$STALLS" ]
VS=$(events_where "$E2E_TMP/events.snap" ".agent_id == $VICTIM and .kind == \"suspect\" and .detected_ns > $T_KILL")
VD=$(events_where "$E2E_TMP/events.snap" ".agent_id == $VICTIM and .kind == \"dead\" and .detected_ns > $T_KILL")
check_sh "the agent killed before the last stall is SUSPECT ($VS) and DEAD ($VD)" \
	'[ "$VS" -eq 1 ] && [ "$VD" -eq 1 ]'
# The check above proves something only if the agents kept beating through
# a stall: the machine can hold them off the CPU too, and then their send
# logs excuse what the monitor said.
CLEAN=$(python3 - "$E2E_TMP/send.beat.jsonl" "${STALL_AT[@]}" <<'EOF'
import json, sys
starts = sorted(json.loads(l)["start_ns"] for l in open(sys.argv[1]))
w = list(map(int, sys.argv[2:]))
clean = 0
for a, b in zip(w[0::2], w[1::2]):
    s = [t for t in starts if a - 30e6 <= t <= b + 30e6]
    clean += bool(s) and max(y - x for x, y in zip(s, s[1:])) < 30e6
print(clean)
EOF
)
check "the agents beat without a gap of a deadline (30 ms) through $CLEAN of the $STALLS stalls" \
	[ "${CLEAN:-0}" -ge 1 ]
check "the daemon kept running" alive daemon

e2e_finish

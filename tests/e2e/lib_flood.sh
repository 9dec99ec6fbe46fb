# SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
# shellcheck shell=bash disable=SC2034,SC2317
#
# A keyed fleet beating through a veth pair while build/vigil-trafficgen
# floods the same link, for the flood tests (40-flood.sh, 41-spoofed-source.sh).
# Source it after lib.sh and e2e_init:
#
#   flood_fleet NAME N INTERVAL_MS [RUN_ARGS...]
#                         a veth pair ($NS_MON/$IF_MON 198.18.0.1, $NS_AGENT/
#                         $IF_AGENT 198.18.0.2; IPv4 only, the neighbour
#                         fixed), keys ($KEYS) and an agents file for agents
#                         1-N, `vigil run` in native mode with them (pin root
#                         $PIN, events $EV), and one `vigil beat --id 1-N`
#                         every INTERVAL_MS from 198.18.0.2 (started as
#                         `beat`, with its send log) on $GEN_CPU, at a real-
#                         time priority where allowed; returns once all N
#                         are ALIVE (or dies). $TG is the generator.
#   flood_run DESC ARGS...
#                         the generator (ARGS) on $IF_AGENT towards $IF_MON,
#                         on $GEN_CPU, its JSON in $E2E_TMP/tg.json: ok DESC
#                         or die; vigil's status before ($ST0, at $T0) and
#                         0.3 s after ($ST1, at $T1); $VETH_DROPS, the frames
#                         the veth ring dropped
#   sent KIND, d COUNTER  frames of KIND the generator sent; how much vigil's
#                         COUNTER rose from $ST0 to $ST1
#   within NAME GOT SENT  ok when vigil counted what was sent, less at most
#                         what the veth ring dropped and at most 1 %
#   flood_alarms          stop the beater; $ALARMS: the SUSPECT and DEAD of
#                         agents 1-N detected before, less those the
#                         beater's send log explains (tests/e2e/excuse.py)
#
# Why the generator and the receiving NAPI share a CPU (no threaded NAPI;
# the beater and the generator on $GEN_CPU): frames handed to a veth peer go
# through a 256-frame ring. If the flood outran vigil on another CPU the
# ring would overflow and drop forged and legitimate frames alike before any
# program saw them, and neither "every forged frame counted" nor "no false
# alarm" would say anything about vigil. On one CPU the receive softirq runs
# after every batch of the generator (64 live frames; with the AF_PACKET
# engine, where the kernel refuses live frames, after each frame's
# transmit), so the flood goes exactly as fast as this machine can both make
# and judge frames, and nothing is lost on the way. (make bench measures the
# threaded, two-CPU case.)

TG=$E2E_ROOT/build/vigil-trafficgen
[ -x "$TG" ] || die "$TG is not built (make test builds it)"
GEN_CPU=0

flood_fleet() {
	local name=$1 n=$2 interval=$3
	shift 3
	FLOOD_N=$n
	setup_veth_pair || die "creating namespaces $NS_MON/$NS_AGENT and a veth pair"
	MAC_MON=$(ip -n "$NS_MON" -j link show "$IF_MON" | jq -r '.[0].address')
	# Nothing but the beater and the generator may send into $IF_MON's
	# ring: a frame sent from another CPU (IPv6 router solicitation, MLD
	# report, ARP probe from a timer) would start the receive poll there,
	# away from the generator (see above).
	for ns in "$NS_MON" "$NS_AGENT"; do
		ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 \
			net.ipv6.conf.default.disable_ipv6=1
	done
	ip -n "$NS_AGENT" neigh replace 198.18.0.1 lladdr "$MAC_MON" dev "$IF_AGENT" nud permanent
	new_pin_root PIN "$name"
	KEYS=$E2E_TMP/keys
	EV=$E2E_TMP/events.jsonl
	make_keys "$KEYS" "1-$n"
	{
		echo "# $n agents for tests/e2e/$(basename "$0")"
		echo "defaults interval-min-ms=5 interval-max-ms=1000 multiplier=3"
		for i in $(seq 1 "$n"); do echo "agent $i"; done
	} >"$E2E_TMP/agents.conf"
	start_daemon_or_die "vigil run attaches in native mode with a key file" \
		daemon "$NS_MON" "$PIN" --iface "$IF_MON" --mode native --config "$E2E_TMP/agents.conf" \
		--keys "$KEYS" --db "$E2E_TMP/vigil.db" --events-file "$EV" --dead-misses 2 --quiet "$@"
	ok "vigil run attaches in native mode to $IF_MON with keys for $n agents"
	start_bg beat "$NS_AGENT" "${BEAT_PRIO[@]}" taskset -c "$GEN_CPU" "$VIGIL" beat --id "1-$n" \
		--send-log "$E2E_TMP/send.beat.jsonl" \
		--target 198.18.0.1 --interval-ms "$interval" --keys "$KEYS"
	if wait_for 10 flood_all_alive; then
		ok "all $n agents are ALIVE before the flood, beating every $interval ms from 198.18.0.2"
	else
		show_file "vigil beat stderr" "$E2E_TMP/beat.err"
		note "$(status_json "$PIN" | jq -c '[.agents[] | .state] | group_by(.) | map([.[0], length])')"
		die "all $n agents are ALIVE before the flood"
	fi
}

flood_all_alive() {
	[ "$(count_state "$(status_json "$PIN")" alive)" -eq "$FLOOD_N" ]
}

flood_tx_dropped() {
	ip -n "$NS_AGENT" -j -s link show "$IF_AGENT" | jq -r '.[0].stats64.tx.dropped'
}

flood_run() {
	local desc=$1 drop0 rc=0
	shift
	drop0=$(flood_tx_dropped)
	T0=$(now)
	ST0=$(status_json "$PIN")
	in_ns "$NS_AGENT" "$TG" --iface "$IF_AGENT" --dst-mac "$MAC_MON" --cpu "$GEN_CPU" "$@" \
		--json >"$E2E_TMP/tg.json" 2>"$E2E_TMP/tg.err" || rc=$?
	VETH_DROPS=$(($(flood_tx_dropped) - drop0))
	if [ "$rc" -ne 0 ]; then
		show_file "vigil-trafficgen stderr" "$E2E_TMP/tg.err"
		die "$desc"
	fi
	ok "$desc"
	nap 0.3
	ST1=$(status_json "$PIN")
	T1=$(now)
}

sent() { jq -r ".run.sent.$1" "$E2E_TMP/tg.json"; }
d() { echo $(($(jq -r ".stats.$1" <<<"$ST1") - $(jq -r ".stats.$1" <<<"$ST0"))); }

within() {
	local name=$1 got=$2 want=$3
	if [ "$got" -le "$want" ] && [ "$got" -ge $((want - VETH_DROPS)) ] &&
		[ $((got * 100)) -ge $((want * 99)) ]; then
		ok "$name: counted $got of $want sent"
	else
		not_ok "$name: counted $got of $want sent ($VETH_DROPS dropped by veth)"
	fi
}

flood_alarms() {
	local t_stop
	t_stop=$(mono_ns)
	kill_bg beat TERM
	nap 0.2
	agent_excuse "$EV" "1-$FLOOD_N" "$t_stop"
	without_excused "$EV" "$E2E_TMP/events.checked.jsonl"
	ALARMS=$(events_where "$E2E_TMP/events.checked.jsonl" \
		"(.kind == \"suspect\" or .kind == \"dead\") and .detected_ns < $t_stop")
	[ "$ALARMS" -eq 0 ] || note "$(jq -c "select((.kind == \"suspect\" or .kind == \"dead\") and .detected_ns < $t_stop) | [.agent_id, .kind, .late_us, .detected_ns, .last_seen_ns]" "$E2E_TMP/events.checked.jsonl" | head -20)"
}

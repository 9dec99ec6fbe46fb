#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
#
# Several monitors per agent, and monitors watching each other
# (docs/monitors.md). Three monitor hosts on one bridge, each in its own
# namespace with native XDP on its veth; monitors 1 and 2 share a key set,
# monitor 3 has its own (the same agent ids, other keys). Each monitor's
# daemon beats to the other two (--peer, --peer-id 10N), and each agents file
# lists the other monitors as agents.
#   a. agents beat to all three: a range by the round loop (agents 1-3) and
#      single agents through the agent library (4-6), with monitor 3's key
#      set given as ADDR@FILE; every monitor sees every agent and its two
#      peers ALIVE.
#   b. an agent dies: each monitor reports it DEAD on its own.
#   c. monitor 1's host dies (daemon SIGKILL, XDP and pins removed, link
#      down): monitors 2 and 3 report agent 101 (monitor-1) DEAD, like any
#      agent; an agent that dies afterwards is still reported by both; no
#      other verdict on the surviving monitors.
#   d. monitor 3's daemon stops on purpose (SIGTERM): monitor 2 records its
#      LEAVING (left), not a death.
#   e. bad --target and --peer options: one line, exit 2.
# check_sh evaluates its single-quoted condition later (SC2016, SC2034).
# shellcheck disable=SC2016,SC2034,SC2317
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
e2e_init
# shellcheck source=tests/e2e/lib_monitors.sh
. "$E2E_ROOT/tests/e2e/lib_monitors.sh"

IV=50 # agents' and peers' beat interval, ms
monitors_net 3 agents || die "three monitor namespaces and an agents namespace on one bridge"
ok "three monitor namespaces (native XDP on veth) and an agents namespace on one bridge"
AG_NS=vg$$agents
KEYS=$E2E_TMP/keys   # monitors 1 and 2, and every agent's key as they know it
KEYS3=$E2E_TMP/keys3 # monitor 3's own key set
make_keys "$KEYS" 1-200 && make_keys "$KEYS3" 1-200 || die "vigil key gen"
CONF=$E2E_TMP/agents.conf
conf_for() { # conf_for I: monitor I's agents file: the agents and its two peers
	echo "defaults interval-min-ms=5 interval-max-ms=1000 multiplier=3 group=app"
	for a in 1 2 3 4 5 6; do echo "agent $a name=app-$a"; done
	echo "agent 99 name=canary"
	for m in 1 2 3; do
		[ "$m" = "$1" ] || echo "agent 10$m name=monitor-$m group=monitors"
	done
}
peers_of() { # peers_of I: --peer for monitor I (monitor 3 is known by its own keys)
	local m list=
	for m in 1 2 3; do
		[ "$m" = "$1" ] && continue
		list+="${list:+,}198.18.0.$m"
		if [ "$m" = 3 ] && [ "$1" != 3 ]; then list+="@$KEYS3"; fi
		if [ "$1" = 3 ]; then list+="@$KEYS"; fi
	done
	echo "$list"
}
keys_of() { [ "$1" = 3 ] && echo "$KEYS3" || echo "$KEYS"; }
up() { # up I: monitor I's daemon (mon-I)
	conf_for "$1" >"$E2E_TMP/agents-$1.conf"
	monitor_up "$1" "mon-$1" --config "$E2E_TMP/agents-$1.conf" --keys "$(keys_of "$1")" \
		--peer "$(peers_of "$1")" --peer-id "10$1" --peer-interval-ms "$IV"
}
for i in 1 2 3; do
	up "$i" || {
		show_file "monitor $i stderr" "$E2E_TMP/mon-$i.err"
		die "monitor $i starts with --peer $(peers_of "$i") --peer-id 10$i"
	}
done
ok "three daemons, each beating to the other two (--peer, --peer-id 101..103; monitor 3 by its own key set)"

TARGETS=198.18.0.1,198.18.0.2,198.18.0.3@$KEYS3
start_beater range "$AG_NS" --id 1-3 --target "$TARGETS" --keys "$KEYS" --interval-ms "$IV"
for a in 4 5 6; do
	start_beater "app-$a" "$AG_NS" --id "$a" --target 198.18.0.1 --target "198.18.0.2,198.18.0.3@$KEYS3" \
		--keys "$KEYS" --interval-ms "$IV"
done
# Evidence for verdicts (docs/design.md): a canary beating every 5 ms to all.
start_beater canary "$AG_NS" --id 99 --target "$TARGETS" --keys "$KEYS" --interval-ms 5
state_at() { agent_field "$(status_json "${MON_PIN[$1]}")" "$2" state; }
all_alive_at() { # all_alive_at I: agents 1-6 and monitor I's two peers
	local a
	for a in 1 2 3 4 5 6 101 102 103; do
		[ "$a" = "10$1" ] && continue
		[ "$(state_at "$1" "$a")" = alive ] || return 1
	done
}
for i in 1 2 3; do
	# Monitor 3 knows every agent by keys3 only: alive there means signed with it.
	check "monitor $i sees agents 1-6 (round loop and agent library) and its two peer monitors alive" \
		wait_for 10 all_alive_at "$i"
done

# Verdicts are judged from here: before, monitors and agents were starting
# (a busy machine may take longer than a registration's first deadline).
t_ready=$(mono_ns)

# ------------------------------------------------------------ b. agent death
EV() { echo "$E2E_TMP/mon-$1.out"; } # each daemon prints its events as JSON lines
# recorded I KIND AGENT: monitor I recorded a KIND event of AGENT.
recorded() {
	jq -e -s --arg k "$2" --argjson a "$3" 'any(.[]; .kind == $k and .agent_id == $a)' \
		"$(EV "$1")" >/dev/null 2>&1
}
dead_at() { recorded "$1" dead "$2"; }
kill_bg app-4 KILL
for i in 1 2 3; do
	check "agent 4 dies: monitor $i reports it DEAD on its own" wait_for 5 dead_at "$i" 4
done

# ------------------------------------------------------------ c. monitor death
t_dead=$(mono_ns)
monitor_host_dies 1 mon-1
for i in 2 3; do
	check "monitor 1's host dies: monitor $i reports agent 101 (monitor-1) DEAD" wait_for 5 dead_at "$i" 101
done
kill_bg app-5 KILL
for i in 2 3; do
	check "with monitor 1 gone, agent 5 dies: monitor $i still reports it" wait_for 5 dead_at "$i" 5
done
nap 0.5
t_end=$(mono_ns)
for i in 2 3; do
	agent_excuse "$(EV "$i")" 1-6 "$t_end"
	without_excused "$(EV "$i")" "$E2E_TMP/judged-$i.jsonl"
	# (The canary, 99, is the verdicts' evidence, not under test.)
	others=$(jq -c --argjson t "$t_ready" 'select((.kind == "suspect" or .kind == "dead") and .detected_ns > $t and (.agent_id as $a | [4, 5, 99, 101] | index($a) | not))' "$E2E_TMP/judged-$i.jsonl")
	check_sh "monitor $i: once all were up, no SUSPECT or DEAD for the agents and the peer that kept beating${others:+ ($(grep -c . <<<"$others"): $(head -c 300 <<<"$others"))}" \
		'[ -z "$others" ]'
done

# ------------------------------------------------------------ d. stop on purpose
kill_bg mon-3 TERM
wait_for 3 recorded 2 left 103
nap 0.5
check_sh "monitor 3's daemon stops on purpose (SIGTERM, exit $LAST_RC): monitor 2 records it left (LEAVING), not dead" \
	'recorded 2 left 103 && ! dead_at 2 103'

# ------------------------------------------------------------ e. bad options
expect_usage_error "vigil beat --target with a bad address" "--target: 'nope' is not an IPv4 or IPv6 address" \
	"$VIGIL" beat --id 1 --target 198.18.0.1,nope
expect_usage_error "vigil beat --target with nine monitors" "--target: at most 8 monitors" \
	"$VIGIL" beat --id 1 --target 198.18.0.1,198.18.0.2,198.18.0.3,198.18.0.4,198.18.0.5,198.18.0.6,198.18.0.7,198.18.0.8,198.18.0.9
expect_usage_error "vigil beat --target with a port out of range" "--target: the port of 198.18.0.1: 0 is out of range" \
	"$VIGIL" beat --id 1 --target 198.18.0.1:0
expect_usage_error "vigil run --peer without --peer-id" "--peer: give --peer-id" \
	"$VIGIL" run --iface lo --no-auth --peer 198.18.0.2 --db "$E2E_TMP/none.db"
expect_usage_error "vigil run --peer-id without a key for it in --keys" "no key for agent 900 \\(--peer-id\\) in --keys" \
	"$VIGIL" run --iface lo --keys "$KEYS" --peer 198.18.0.2 --peer-id 900 --db "$E2E_TMP/none.db"
check "the refused runs changed nothing (no database written)" test ! -e "$E2E_TMP/none.db"

e2e_finish

#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
#
# The merged fleet view across regions (docs/fleet.md, "Hosts and regions"),
# with real NATS servers in three JetStream domains, all started by the test:
#
#   vg<pid>eu: region eu's server (JetStream domain eu); monitors eu-1 and
#       eu-2 export to its stream VIGIL_EU;
#   vg<pid>us: region us's server (domain us); monitor us-1 exports to VIGIL_US;
#   vg<pid>g:  the global server (domain hub), to which each region's server
#       is a leaf node over a link of its own; VIGIL_GLOBAL sources VIGIL_EU
#       and VIGIL_US, KV_VIGIL_GLOBAL_MONITORS sources the regions' presence
#       buckets (both as docs/fleet.md gives them), and `vigil fleet merge`
#       there makes the global view. A merger in region eu makes eu's own.
#   Agents: 1-3 beat to eu-1 and eu-2, 4-5 to us-1, 6 to eu-1 and us-1 (one
#   `vigil beat --target` each; monitors with XDP on one bridge).
#
# It checks that:
#   1. the global view has every agent alive and the three monitors live,
#      with agent 6 watched from both regions;
#   2. a region partition (the link between eu's server and the global one
#      down) shows as docs/fleet.md says: eu's monitors lost, the agents only
#      eu watches `unknown`, never `dead`, even when one of them dies meanwhile
#      (which eu's own view shows at once); agent 6, watched from us too, is
#      judged by us-1 alone and is `dead` when it dies;
#   3. the link back: the sourcing resumes, eu's monitors turn live once their
#      backlog is merged, the dead agent goes from `unknown` to `dead` and the
#      others to `alive` without a stale state between; every event of both
#      regional streams is in the global stream and in the global view
#      exactly once.
#
# check_sh evaluates its single-quoted condition later (SC2016); predicates
# are called through check/wait_for (SC2317).
# shellcheck disable=SC2016,SC2317
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
e2e_init
need_tools nats-server
. "$E2E_ROOT/tests/e2e/lib_monitors.sh"
NATS_READ=$B/nats_read
[ -x "$NATS_READ" ] || make -s -C "$E2E_ROOT" build/nats_read >/dev/null 2>&1 ||
	die "building build/nats_read (make build/nats_read)"

INTERVAL_MS=100
KEYS=$E2E_TMP/keys
# Monitors 1-3 (bridge addresses 198.18.0.1-3) and what they watch.
MON_HOST=([1]=eu-1 [2]=eu-2 [3]=us-1)
watchers_of() { # the monitors agent $1 beats to
	case $1 in 1 | 2 | 3) echo "1 2" ;; 4 | 5) echo 3 ;; 6) echo "1 3" ;; esac
}

# ------------------------------------------------------------ network
# The regions' servers are hosts on the bridge (eu 198.18.0.11, us .12;
# agents .13); the global server is not on it: each region's server reaches
# it only over a link of its own (198.18.2R.0/24), the link a partition cuts.
monitors_net 3 eu us ag || die "three monitor namespaces and the servers' and agents' on one bridge"
NS_EU=vg$$eu NS_US=vg$$us NS_G=vg$$g NS_AG=vg$$ag
new_netns "$NS_G" || die "creating namespace $NS_G"
region_link() { # region_link REGION NS N: REGION's server to the global one, 198.18.2N.0/24
	ip link add "vg$$l$1" netns "$2" type veth peer name "vg$$k$1" netns "$NS_G" &&
		ip -n "$2" addr add "198.18.2$3.2/24" dev "vg$$l$1" &&
		ip -n "$NS_G" addr add "198.18.2$3.1/24" dev "vg$$k$1" &&
		ip -n "$2" link set "vg$$l$1" up && ip -n "$NS_G" link set "vg$$k$1" up
}
region_link eu "$NS_EU" 0 && region_link us "$NS_US" 1 || die "linking the regions' servers to the global one"
ok "monitors eu-1, eu-2, us-1 (native XDP), agents and three NATS server namespaces; eu and us linked to the global one"

# ------------------------------------------------------------ servers
# Pings every second: a leaf connection cut off is noticed in seconds. A
# region's leaf connection carries no vigil.events.> (docs/fleet.md): without
# the deny, every region's stream would also store the other regions' events.
nats_conf() { # nats_conf NAME DOMAIN [LEAF-REMOTE]
	cat <<EOF
server_name: $1
listen: 0.0.0.0:14222
ping_interval: "1s"
ping_max: 3
jetstream { store_dir: "$E2E_TMP/js-$1", domain: $2 }
EOF
	if [ -n "${3:-}" ]; then
		echo "leafnodes { reconnect: 1, remotes: [ { urls: [ \"nats-leaf://$3:7422\" ]"
		echo "  deny_exports: [ \"vigil.events.>\" ], deny_imports: [ \"vigil.events.>\" ] } ] }"
	else
		echo "leafnodes { listen: 0.0.0.0:7422 }"
	fi
}
nats_conf g hub >"$E2E_TMP/g.conf"
nats_conf eu eu 198.18.20.1 >"$E2E_TMP/eu.conf"
nats_conf us us 198.18.21.1 >"$E2E_TMP/us.conf"
for s in g eu us; do
	ns=vg$$$s
	start_bg "nats-$s" "$ns" nats-server -c "$E2E_TMP/$s.conf"
done
URL_G=nats://127.0.0.1:14222
URL_EU=nats://198.18.0.11:14222
URL_US=nats://198.18.0.12:14222
listening() { in_ns "$1" bash -c "exec 3<>/dev/tcp/127.0.0.1/14222" 2>/dev/null; }
for s in g eu us; do
	wait_for 10 listening "vg$$$s" || {
		show_file "nats-server $s" "$E2E_TMP/nats-$s.err"
		die "nats-server $s listens"
	}
done
leaf_up() { grep -c "Leafnode connection created" "$E2E_TMP/nats-g.err" | grep -qx 2; }
if wait_for 10 leaf_up; then
	ok "servers eu (domain eu) and us (domain us) are leaf nodes of the global server (domain hub)"
else
	show_file "nats-server g" "$E2E_TMP/nats-g.err"
	die "servers eu and us are leaf nodes of the global server"
fi

# ------------------------------------------------------------ monitors
make_keys "$KEYS" 1-6 || die "vigil key gen"
for m in 1 2 3; do
	{
		echo "defaults interval-min-ms=20 interval-max-ms=1000 multiplier=3 group=fleet"
		for i in 1 2 3 4 5 6; do
			[[ " $(watchers_of "$i") " == *" $m "* ]] && echo "agent $i name=agent-$i"
		done
	} >"$E2E_TMP/agents$m.conf"
	case $m in 3) url=$URL_US stream=VIGIL_US ;; *) url=$URL_EU stream=VIGIL_EU ;; esac
	monitor_up "$m" "mon-$m" --mode native --keys "$KEYS" --config "$E2E_TMP/agents$m.conf" \
		--export-nats "$url" --export-stream "$stream" --export-host "${MON_HOST[m]}" || {
		show_file "vigil run ${MON_HOST[m]}" "$E2E_TMP/mon-$m.err"
		die "monitor ${MON_HOST[m]} starts, exporting to $stream"
	}
done
agent_up() {
	local targets
	targets=$(watchers_of "$1" | sed 's/[0-9]/198.18.0.&/g; s/ /,/')
	start_beater "beat-$1" "$NS_AG" --id "$1" --target "$targets" --interval-ms "$INTERVAL_MS" \
		--keys "$KEYS"
}
for i in 1 2 3 4 5 6; do agent_up "$i"; done
exported() { grep -q "export: created stream" "$E2E_TMP/mon-$1.err" || grep -q "export: connected" "$E2E_TMP/mon-$1.err"; }
for m in 1 2 3; do wait_for 10 exported "$m" || die "monitor ${MON_HOST[m]} exports"; done
ok "eu-1 and eu-2 export to VIGIL_EU in domain eu, us-1 to VIGIL_US in domain us; six agents beat"

# ------------------------------------------------------------ the global view
# js_api URL SUBJECT JSON: a JetStream API request (reply in api.out).
js_api() { in_ns "$NS_G" "$NATS_READ" --servers "$1" --request "$2" "$3" >"$E2E_TMP/api.out" 2>&1; }
src() { echo "{\"name\":\"$1\",\"external\":{\"api\":\"\$JS.$2.API\"}}"; }
if js_api "$URL_G" '$JS.API.STREAM.CREATE.VIGIL_GLOBAL' \
	"{\"name\":\"VIGIL_GLOBAL\",\"storage\":\"file\",\"num_replicas\":1,\"sources\":[$(src VIGIL_EU eu),$(src VIGIL_US us)]}" &&
	js_api "$URL_G" '$JS.API.STREAM.CREATE.KV_VIGIL_GLOBAL_MONITORS' \
		"{\"name\":\"KV_VIGIL_GLOBAL_MONITORS\",\"storage\":\"file\",\"num_replicas\":1,\"max_msgs_per_subject\":1,\"sources\":[$(src KV_VIGIL_EU_MONITORS eu),$(src KV_VIGIL_US_MONITORS us)]}"; then
	ok "in the global server, VIGIL_GLOBAL sources VIGIL_EU and VIGIL_US, KV_VIGIL_GLOBAL_MONITORS their presence buckets (external, \$JS.<domain>.API)"
else
	show_file "JetStream API" "$E2E_TMP/api.out"
	die "the global streams are created"
fi
start_bg global "$NS_G" "$VIGIL" fleet merge --nats "$URL_G" --source VIGIL_GLOBAL \
	--presence VIGIL_GLOBAL_MONITORS
start_bg eu-view "$NS_EU" "$VIGIL" fleet merge --nats "$URL_EU" --source VIGIL_EU --out VIGIL_FLEET_EU
gstatus() { in_ns "$NS_G" "$VIGIL" fleet status --json --nats "$URL_G" 2>/dev/null; }
eustatus() { in_ns "$NS_EU" "$VIGIL" fleet status --json --nats "$URL_EU" --out VIGIL_FLEET_EU 2>/dev/null; }
gevents() { in_ns "$NS_G" "$VIGIL" fleet events --json --nats "$URL_G" 2>/dev/null; }
state_of() { "$1" | jq -r --argjson id "$2" '.agents[] | select(.agent_id == $id) | .state'; }
is_state() { [ "$(state_of "$1" "$2")" = "$3" ]; }
states() { gstatus | jq -c '[.agents[] | [.agent_id, .state]]'; }
live_of() { gstatus | jq -c '[.monitors | sort_by(.host)[] | [.host, .live]]'; }
all_alive() { [ "$(gstatus | jq -c '[.counts.alive, ([.monitors[] | select(.live)] | length)]')" = "[6,3]" ]; }
if wait_for 30 all_alive; then
	ok "the global view: 6 agents alive, monitors $(live_of)"
else
	show_file "global merger" "$E2E_TMP/global.err"
	die "the global view: 6 agents alive, 3 monitors live ($(states), $(live_of))"
fi
check_sh "agent 6 is watched from both regions: $(gstatus | jq -c '.agents[] | select(.agent_id == 6) | [.watchers[].host]')" \
	'[ "$(gstatus | jq -c "[.agents[] | select(.agent_id == 6) | .watchers[].host] | sort")" = "[\"eu-1\",\"us-1\"]" ]'

# ------------------------------------------------------------ partition
ip -n "$NS_EU" link set "vg$$leu" down || die "setting the eu-global link down"
t_cut=$(now)
note "partition: the link between region eu's server and the global one is down"
eu_lost() { [ "$(live_of)" = '[["eu-1",false],["eu-2",false],["us-1",true]]' ]; }
unknown_eu() { [ "$(states)" = '[[1,"unknown"],[2,"unknown"],[3,"unknown"],[4,"alive"],[5,"alive"],[6,"alive"]]' ]; }
if wait_for 15 eu_lost && wait_for 5 unknown_eu; then
	ok "eu-1 and eu-2 are lost for the global view $(awk -v t="$t_cut" -v n="$(now)" 'BEGIN { printf "%.1f", n - t }') s after the cut; agents 1-3 are unknown, 4-6 alive: $(states)"
else
	not_ok "the partition: eu's monitors lost, agents 1-3 unknown ($(live_of), $(states))"
fi
kill_bg beat-2 KILL
kill_bg beat-6 KILL
note "agents 2 (watched by eu only) and 6 (eu and us) die during the partition"
check "region eu's own view sees agent 2 DEAD (nothing changes inside the region)" \
	wait_for 10 is_state eustatus 2 dead
check "agent 6, watched from us too, is DEAD for the global view (us-1's verdict; eu-1 is lost)" \
	wait_for 10 is_state gstatus 6 dead
nap 2
check_sh "agent 2 stays unknown in the global view, never dead: $(states)" \
	'[ "$(states)" = "[[1,\"unknown\"],[2,\"unknown\"],[3,\"unknown\"],[4,\"alive\"],[5,\"alive\"],[6,\"dead\"]]" ]'
ids() { # ids NS URL STREAM: the stream's message ids, sorted
	in_ns "$1" "$NATS_READ" --servers "$2" --stream "$3" 2>/dev/null | cut -f4 | sort
}
eu_msgs() { in_ns "$NS_EU" "$NATS_READ" --servers "$URL_EU" --stream VIGIL_EU --info | jq .msgs; }
g_msgs() { in_ns "$NS_G" "$NATS_READ" --servers "$URL_G" --stream VIGIL_GLOBAL --info | jq .msgs; }
backlog=$(comm -23 <(ids "$NS_EU" "$URL_EU" VIGIL_EU) <(ids "$NS_G" "$URL_G" VIGIL_GLOBAL) | wc -l)
check "the partition's backlog: $backlog of VIGIL_EU's $(eu_msgs) events are not in VIGIL_GLOBAL yet" \
	[ "$backlog" -gt 0 ]

# ------------------------------------------------------------ heal
ip -n "$NS_EU" link set "vg$$leu" up || die "setting the eu-global link up"
t_heal=$(now)
healed() { [ "$(states)" = '[[1,"alive"],[2,"dead"],[3,"alive"],[4,"alive"],[5,"alive"],[6,"dead"]]' ]; }
if wait_for 60 healed; then
	ok "the link back: the global view is current $(awk -v t="$t_heal" -v n="$(now)" 'BEGIN { printf "%.1f", n - t }') s later: $(states), monitors $(live_of)"
else
	show_file "global merger" "$E2E_TMP/global.err"
	not_ok "the link back: agents 1, 3 alive and 2 dead in the global view ($(states), $(live_of))"
fi
# Agent 2's global states in stream order, from the cut on: unknown, then
# dead once eu's monitors are live again; nothing stale between.
gevents >"$E2E_TMP/global.jsonl"
a2=$(jq -sc '[.[] | select(.agent_id == 2 and (.state != .prev_state)) | .state]' "$E2E_TMP/global.jsonl")
a13=$(jq -sc '[.[] | select((.agent_id == 1 or .agent_id == 3) and (.state != .prev_state)) | [.agent_id, .state]]' "$E2E_TMP/global.jsonl")
check_sh "agent 2's states in the global view: $a2 (alive, then unknown through the partition, then dead)" \
	'[ "$a2" = "[\"alive\",\"unknown\",\"dead\"]" ]'
check_sh "agents 1 and 3: $a13 (never dead)" \
	'[ "$a13" = "[[1,\"alive\"],[3,\"alive\"],[1,\"unknown\"],[3,\"unknown\"],[1,\"alive\"],[3,\"alive\"]]" ]'
# Record numbers in the view: eu-1 lost (the cut), the first eu monitor
# live again after it, agent 2's first DEAD.
order=$(jq -sc 'to_entries as $r |
	([$r[] | select(.value.type == "monitor" and .value.host == "eu-1" and .value.state == "lost") | .key] | first) as $cut |
	[$cut, ([$r[] | select(.key > $cut and .value.type == "monitor" and .value.state == "live") | .key] | first),
	 ([$r[] | select(.value.agent_id == 2 and .value.state == "dead") | .key] | first)]' "$E2E_TMP/global.jsonl")
check_sh "agent 2 turns dead in the global view only once an eu monitor is live again (records: eu-1 lost, an eu monitor live, agent 2 dead: $order)" \
	'jq -e ".[0] < .[1] and .[1] < .[2]" <<<"$order" >/dev/null'

# ------------------------------------------------------------ exactly once
for m in 1 2 3; do kill_bg "mon-$m" TERM; done
eu_n=$(eu_msgs)
us_n=$(in_ns "$NS_US" "$NATS_READ" --servers "$URL_US" --stream VIGIL_US --info | jq .msgs)
g_caught_up() { [ "$(g_msgs)" -ge $((eu_n + us_n)) ]; }
merged_ids() { gevents | jq -r 'select(.type == "event") | "\(.host)-\(.instance)-\(.event_seq)"' | sort; }
view_caught_up() { [ "$(merged_ids | wc -l)" -ge $((eu_n + us_n)) ]; }
wait_for 20 g_caught_up && wait_for 20 view_caught_up
{ ids "$NS_EU" "$URL_EU" VIGIL_EU && ids "$NS_US" "$URL_US" VIGIL_US; } | sort >"$E2E_TMP/regions.ids"
ids "$NS_G" "$URL_G" VIGIL_GLOBAL >"$E2E_TMP/global.ids"
merged_ids >"$E2E_TMP/merged.ids"
n=$(wc -l <"$E2E_TMP/regions.ids")
check_sh "VIGIL_GLOBAL holds each of the regions' $n events once ($eu_n from eu, $us_n from us)" \
	'[ "$n" -gt 0 ] && cmp -s "$E2E_TMP/regions.ids" "$E2E_TMP/global.ids"'
dups=$(uniq -d "$E2E_TMP/merged.ids" | head -n 3 | tr '\n' ' ')
missing=$(comm -23 "$E2E_TMP/regions.ids" "$E2E_TMP/merged.ids" | head -n 3 | tr '\n' ' ')
check_sh "the global view merged each of them exactly once, the partition's backlog included${dups:+ (twice: $dups)}${missing:+ (missing: $missing)}" \
	'cmp -s "$E2E_TMP/regions.ids" "$E2E_TMP/merged.ids"'
kill_bg global TERM
check "the global merger stops on SIGTERM (exit $LAST_RC)" [ "$LAST_RC" -eq 0 ]
e2e_finish

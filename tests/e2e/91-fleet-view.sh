#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
#
# The merged fleet view (vigil fleet, docs/fleet.md) over real monitors and a
# real 3-node nats-server JetStream cluster, all started by the test:
#
#   namespace vg<pid>n: the cluster (client ports 14222-14224 on every
#       address of the namespace, routes on 127.0.0.1) and the merger;
#   vg<pid>m1..m3: three monitors, each with XDP (native) on a veth to the
#       agents and a veth to the cluster, exporting to one stream (3 replicas);
#   vg<pid>a: twelve agents, each one `vigil beat --target MON,MON` beating
#       to two monitors: agents 1-4 to m1 and m2, 5-8 to m2 and m3, 9-12 to
#       m3 and m1.
#
# It checks that:
#   1. every agent is alive for the fleet and every monitor live, learnt from
#      the monitors' presence, not from a list;
#   2. an agent that dies is DEAD for the fleet within its interval bound plus
#      the merge lag;
#   3. a partition (m1's link to the agents down) is disagreement, not DEAD,
#      for the agents m1 watches, and heals;
#   4. a dead monitor host (daemon SIGKILLed, XDP removed) is lost for the
#      fleet; agents that die afterwards are DEAD through their other monitor
#      within the bound plus the merge lag;
#   5. the merger is SIGKILLed and restarted 20 times while agents die and
#      come back: every event of the hosts' stream is in the view exactly
#      once, and the view's states agree with the monitors';
#   6. `vigil fleet events --follow`, running all along, prints every record
#      of the view once, in order, although its consumer is deleted under it
#      (its watchdog reads again after the last record printed) and the NATS
#      node it is connected to is restarted.
#
# check_sh evaluates its single-quoted condition later (SC2016); predicates
# are called through check/wait_for (SC2317).
# shellcheck disable=SC2016,SC2317
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
e2e_init
need_tools nats-server
NATS_READ=$E2E_ROOT/build/nats_read
[ -x "$NATS_READ" ] || make -s -C "$E2E_ROOT" build/nats_read >/dev/null 2>&1 ||
	die "building build/nats_read (make build/nats_read)"

NS_N=vg$$n
NS_A=vg$$a
KEYS=$E2E_TMP/keys
INTERVAL_MS=100
AGENTS=12
STREAM=VIGIL_EVENTS
URLS_N=nats://127.0.0.1:14222,nats://127.0.0.1:14223,nats://127.0.0.1:14224
# The monitors an agent beats to.
watchers_of() {
	if [ "$1" -le 4 ]; then echo "1 2"; elif [ "$1" -le 8 ]; then echo "2 3"; else echo "3 1"; fi
}

# ------------------------------------------------------------ network
new_netns "$NS_N" && new_netns "$NS_A" || die "creating namespaces $NS_N and $NS_A"
link() { # link NS_X IF_X ADDR_X NS_Y IF_Y ADDR_Y: a veth pair, both ends up
	ip link add "$2" netns "$1" type veth peer name "$5" netns "$4" &&
		ip -n "$1" addr add "$3/24" dev "$2" && ip -n "$4" addr add "$6/24" dev "$5" &&
		ip -n "$1" link set "$2" up && ip -n "$4" link set "$5" up
}
for m in 1 2 3; do
	new_netns "vg$$m$m" || die "creating namespace vg$$m$m"
	new_pin_root "PIN$m" "m$m"
	link "vg$$m$m" "vg$$m${m}a" "198.18.$m.1" "$NS_A" "vg$$a$m" "198.18.$m.2" &&
		link "vg$$m$m" "vg$$m${m}n" "198.18.$((10 + m)).2" "$NS_N" "vg$$n$m" "198.18.$((10 + m)).1" ||
		die "linking monitor $m to the agents and to the cluster"
done
carrier() { ip -n "$NS_A" link show "vg$$a$1" | grep -q LOWER_UP; }
for m in 1 2 3; do wait_for 5 carrier "$m" || die "carrier on vg$$a$m"; done
ok "three monitor namespaces, each linked to the agents' and to the cluster's (198.18.0.0/15)"

# ------------------------------------------------------------ the cluster
nats_conf() {
	cat <<EOF
server_name: n$1
listen: 0.0.0.0:$((14221 + $1))
jetstream { store_dir: "$E2E_TMP/n$1" }
cluster {
  name: vigil-fleet
  listen: 127.0.0.1:$((16221 + $1))
  no_advertise: true
  routes: [ nats-route://127.0.0.1:16222, nats-route://127.0.0.1:16223, nats-route://127.0.0.1:16224 ]
}
EOF
}
listening() { in_ns "$NS_N" bash -c "exec 3<>/dev/tcp/127.0.0.1/$((14221 + $1))" 2>/dev/null; }
for n in 1 2 3; do
	mkdir -p "$E2E_TMP/n$n"
	nats_conf "$n" >"$E2E_TMP/n$n.conf"
	start_bg "nats-$n" "$NS_N" nats-server -c "$E2E_TMP/n$n.conf"
done
for n in 1 2 3; do
	wait_for 10 listening "$n" || {
		show_file "nats-server n$n" "$E2E_TMP/nats-$n.err"
		die "nats-server n$n listens in $NS_N"
	}
done
ok "a 3-node nats-server cluster with JetStream runs in $NS_N"
expect_usage_error "vigil fleet merge --nats refuses what is not a nats:// URL list" \
	"--nats: 'http://x' is not a list of up to 16 nats:// or tls:// URLs" "$VIGIL" fleet merge --nats http://x
expect_usage_error "vigil fleet status --out refuses a stream name with a dot" \
	"--out: 'a.b' is not a name" "$VIGIL" fleet status --out a.b

# ------------------------------------------------------------ monitors
make_keys "$KEYS" "1-$AGENTS" || die "vigil key gen"
start_monitor() { # start_monitor M NAME: host-M's daemon (exporting), as NAME
	local m=$1 conf=$E2E_TMP/agents$1.conf i a=198.18.$((10 + $1)).1
	{
		echo "defaults interval-min-ms=20 interval-max-ms=1000 multiplier=3 group=fleet"
		for i in $(seq 1 "$AGENTS"); do
			[[ " $(watchers_of "$i") " == *" $m "* ]] && echo "agent $i name=agent-$i"
		done
	} >"$conf"
	start_daemon "$2" "vg$$m$m" "${!PIN_VAR}" --iface "vg$$m${m}a" --mode native --keys "$KEYS" \
		--config "$conf" --db "$E2E_TMP/m$m.db" --metrics off --export-host "host-$m" \
		--export-nats "nats://$a:14222,nats://$a:14223,nats://$a:14224" --export-replicas 3
}
for m in 1 2 3; do
	PIN_VAR=PIN$m
	start_monitor "$m" "daemon-$m" || {
		show_file "vigil run host-$m" "$E2E_TMP/daemon-$m.err"
		die "monitor host-$m starts with XDP on vg$$m${m}a and --export-nats"
	}
done
ok "three monitors run, XDP on their agent link, exporting to $STREAM as host-1..3"

declare -A INC=()
agent_up() { # agent_up ID: one process beating to both its monitors, a new incarnation
	local targets
	INC[$1]=$((${INC[$1]:-0} + 1))
	targets=$(watchers_of "$1" | sed 's/[0-9]/198.18.&.1/g; s/ /,/')
	start_beater "beat-$1" "$NS_A" --id "$1" --target "$targets" \
		--interval-ms "$INTERVAL_MS" --keys "$KEYS" --incarnation "${INC[$1]}"
}
agent_down() { kill_bg "beat-$1" KILL; } # agent_down ID: it dies (SIGKILL)
for i in $(seq 1 "$AGENTS"); do agent_up "$i"; done

# ------------------------------------------------------------ the merger
MERGER_N=0
start_merger() {
	MERGER_N=$((MERGER_N + 1))
	start_bg "merger-$MERGER_N" "$NS_N" "$VIGIL" fleet merge --nats "$URLS_N" --replicas 3
	MERGER=merger-$MERGER_N
}
fleet() { in_ns "$NS_N" "$VIGIL" fleet "$@" --nats "$URLS_N"; }
status() { fleet status --json 2>/dev/null; }
state_of() { status | jq -r --argjson id "$1" '.agents[] | select(.agent_id == $id) | .state'; }
is_state() { [ "$(state_of "$1")" = "$2" ]; }
all_alive() {
	[ "$(status | jq -c '[.counts.alive, ([.monitors[] | select(.live)] | length)]')" = "[$AGENTS,3]" ]
}
start_merger
if wait_for 30 all_alive; then
	ok "the fleet view: $AGENTS agents alive, 3 monitors live (from their presence)"
else
	show_file "merger" "$E2E_TMP/$MERGER.err"
	not_ok "the fleet view: $AGENTS agents alive, 3 monitors live ($(status | jq -c .counts))"
fi
start_bg follow "$NS_N" "$VIGIL" fleet events --follow --json --nats "$URLS_N"
run_refused "$NS_N" 1 "there is no stream NOPE" "$VIGIL" fleet status --nats "$URLS_N" --out NOPE
refusal_result "vigil fleet status on a view that does not exist" 80
watchers=$(status | jq -c '[.agents[] | [.agent_id, ([.watchers[].host] | sort)]]')
want=$(for i in $(seq 1 "$AGENTS"); do
	printf '[%d,[%s]]\n' "$i" "$(watchers_of "$i" | tr ' ' '\n' | sort | sed 's/.*/"host-&"/' | paste -sd,)"
done | jq -sc .)
check "which monitor watches which agent comes from their events (each agent: its two monitors)" \
	[ "$watchers" = "$want" ]

# The view across regions is a merger in the global cluster reading a stream
# that sources the regional ones, and presence from a stream that sources
# their buckets. Here one cluster plays both parts: VIGIL_GLOBAL sources
# VIGIL_EVENTS, KV_VIGIL_GLOBAL_MONITORS sources KV_VIGIL_EVENTS_MONITORS
# (created as docs/fleet.md gives them), read by a second merger.
# js_api SUBJECT JSON: a JetStream API request, its reply in api.out.
js_api() { in_ns "$NS_N" "$NATS_READ" --servers "$URLS_N" --request "\$JS.API.$1" "$2" >"$E2E_TMP/api.out" 2>&1; }
if js_api STREAM.CREATE.VIGIL_GLOBAL '{"name":"VIGIL_GLOBAL","storage":"file","num_replicas":3,"sources":[{"name":"VIGIL_EVENTS"}]}' &&
	js_api STREAM.CREATE.KV_VIGIL_GLOBAL_MONITORS '{"name":"KV_VIGIL_GLOBAL_MONITORS","storage":"file","num_replicas":3,"max_msgs_per_subject":1,"sources":[{"name":"KV_VIGIL_EVENTS_MONITORS"}]}'; then
	ok "streams VIGIL_GLOBAL and KV_VIGIL_GLOBAL_MONITORS source the hosts' stream and presence bucket"
else
	show_file "JetStream API" "$E2E_TMP/api.out"
	not_ok "streams VIGIL_GLOBAL and KV_VIGIL_GLOBAL_MONITORS source the hosts' stream and presence bucket"
fi
start_bg global "$NS_N" "$VIGIL" fleet merge --nats "$URLS_N" --replicas 3 --source VIGIL_GLOBAL \
	--presence VIGIL_GLOBAL_MONITORS --out VIGIL_FLEET_GLOBAL

# dead_lag ID T0: ms from T0 (ns) to the view's first DEAD record of agent ID
# after T0, and from the monitor's detection to that record ("TOTAL MERGE").
dead_lag() {
	fleet events --json --agent "$1" | jq -r --argjson t0 "$(($2 / 1000000))" '
		def ms: (.[0:19] + "Z" | fromdateiso8601) * 1000 + (.[20:23] | tonumber);
		select(.state == "dead" and .prev_state != "dead" and (.time | ms) >= $t0) |
		"\((.time | ms) - $t0) \(if .event then (.time | ms) - (.event.time | ms) else 0 end) \((.event.held_us // 0) / 1000 | floor)"' |
		head -n 1
}
# Interval bound: SUSPECT at 3 intervals, DEAD 2 later, plus however long the
# monitor held the verdict for receive-path evidence (held_us: its own bound,
# --hold-max-ms, checked by the monitor's tests).
BOUND_MS=$((5 * INTERVAL_MS))
MERGE_MAX_MS=2000
LAGS=()
check_dies() { # check_dies ID WHAT: kill agent ID, its fleet DEAD in time
	local t0 total merge held
	t0=$(date +%s%N)
	agent_down "$1"
	if ! wait_for 10 is_state "$1" dead; then
		not_ok "$2: agent $1 is DEAD for the fleet (it is $(state_of "$1"))"
		return
	fi
	read -r total merge held <<<"$(dead_lag "$1" "$t0")"
	LAGS+=("$merge")
	check_sh "$2: agent $1 DEAD for the fleet ${total} ms after it stopped (bound ${BOUND_MS} ms + held ${held} ms + merge lag ${merge} ms; merge lag at most ${MERGE_MAX_MS} ms)" \
		'[ -n "$total" ] && [ "$merge" -le "$MERGE_MAX_MS" ] &&
		[ "$total" -le $((BOUND_MS + held + merge + 300)) ]'
}
check_dies 1 "all monitors live"

# ------------------------------------------------------------ partition
M1_AGENTS=(2 3 4 9 10 11 12)
ip -n "$NS_A" link set "vg$$a1" down || die "setting vg$$a1 down"
note "partition: host-1's link to the agents is down"
disagree_m1() {
	local ids
	ids=$(status | jq -c '[.agents[] | select(.state == "disagree") | .agent_id]')
	[ "$ids" = "[2,3,4,9,10,11,12]" ]
}
if wait_for 10 disagree_m1; then
	ok "the partition: agents ${M1_AGENTS[*]} are 'disagree' (dead for host-1, alive for the other), none DEAD"
else
	not_ok "the partition shows as disagreement ($(status | jq -c '[.agents[] | [.agent_id, .state]]'))"
fi
nap 1
# The rule itself, on every record so far: DEAD only when no live monitor
# hears the agent. (A DEAD that both of an agent's monitors agreed on, e.g.
# when the loaded machine held the agent's beats back, is the fleet's right
# answer; it is counted, not excused.)
fleet events --json >"$E2E_TMP/partition.jsonl"
dead_heard=$(jq -s '[.[] | select(.state == "dead" and any(.watchers[]; .live and (.verdict == "alive" or .verdict == "suspect")))] | length' "$E2E_TMP/partition.jsonl")
dead_others=$(jq -s '[.[] | select(.agent_id != 1 and .state == "dead" and .prev_state != "dead")] | length' "$E2E_TMP/partition.jsonl")
check "no fleet DEAD while a live monitor heard the agent, through the partition (DEAD of agents other than 1, all monitors agreeing: $dead_others)" \
	[ "$dead_heard" -eq 0 ]
check_sh "vigil fleet status counts it: $(status | jq -c .counts)" \
	'[ "$(status | jq .counts.disagree)" -eq 7 ] && [ "$(status | jq .counts.dead)" -eq 1 ]'
ip -n "$NS_A" link set "vg$$a1" up || die "setting vg$$a1 up"
healed() { [ "$(status | jq -c '[.counts.alive, .counts.disagree]')" = "[11,0]" ]; }
check "the link is back: the agents recover at host-1 and are alive for the fleet again" wait_for 15 healed

# ------------------------------------------------------------ a dead monitor host
kill_bg daemon-3 KILL
"$VIGIL" detach --pin-root "$PIN3" >/dev/null 2>&1 || not_ok "vigil detach --pin-root $PIN3"
t_killed=$(now)
note "host-3 is dead: daemon SIGKILLed, its XDP removed"
m3_lost() { [ "$(status | jq -r '.monitors[] | select(.host == "host-3") | .live')" = false ]; }
if wait_for 10 m3_lost; then
	ok "host-3 is lost for the fleet $(awk -v t="$t_killed" -v n="$(now)" 'BEGIN { printf "%.1f", n - t }') s after its death (presence every 1 s, lost after 3)"
else
	not_ok "host-3 is lost for the fleet"
fi
check_sh "with host-3 lost, agents 5-12 are judged by their other monitor: all alive" \
	'[ "$(status | jq .counts.alive)" -eq 11 ]'
check_dies 6 "host-3 dead, agent watched by host-2 and host-3"
check_dies 10 "host-3 dead, agent watched by host-3 and host-1"

# ------------------------------------------------------------ merger restarts
# Agents that die and come back while the merger is killed and restarted.
CHURN=(2 3 5 7 9 11)
churn_step() {
	local i=${CHURN[$((RANDOM % ${#CHURN[@]}))]}
	if [ -n "${PIDS[beat-$i]:-}" ]; then
		agent_down "$i"
	else
		agent_up "$i"
	fi
}
# Under the follower: its consumer deleted (while no merger reads the view,
# so that only the follower's is there), then its NATS node restarted.
delete_consumers() { # delete_consumers STREAM: prints how many
	local c n=0
	js_api "CONSUMER.NAMES.$1" '{}' || return 1
	for c in $(jq -r '.consumers // [] | .[]' "$E2E_TMP/api.out"); do
		js_api "CONSUMER.DELETE.$1.$c" '{}' && n=$((n + 1))
	done
	echo "$n"
}
follower_node() { # the node (1-3) the follower is connected to
	in_ns "$NS_N" ss -tnpH state established | awk -v p="pid=${PIDS[follow]}," \
		'index($0, p) { n = split($4, a, ":"); print a[n] - 14221; exit }'
}
for k in $(seq 1 20); do
	churn_step
	nap "0.$((RANDOM % 5 + 3))"
	kill_bg "$MERGER" KILL
	if [ "$k" -eq 5 ]; then
		note "deleted the follower's consumer of VIGIL_FLEET ($(delete_consumers VIGIL_FLEET) consumer(s))"
	elif [ "$k" -eq 10 ]; then
		FNODE=$(follower_node)
		case $FNODE in 1 | 2 | 3) ;; *) die "the follower is connected to a node (got '$FNODE')" ;; esac
		kill_bg "nats-$FNODE" KILL
		note "killed n$FNODE, the follower's NATS node (SIGKILL)"
	elif [ "$k" -eq 13 ]; then
		start_bg "nats-$FNODE" "$NS_N" nats-server -c "$E2E_TMP/n$FNODE.conf"
		note "restarted n$FNODE"
	fi
	churn_step
	start_merger
	nap "0.$((RANDOM % 3 + 1))"
done
note "the merger was SIGKILLed and restarted 20 times while agents died and came back"
for i in "${CHURN[@]}"; do
	[ -n "${PIDS[beat-$i]:-}" ] || agent_up "$i"
done
back() { [ "$(status | jq .counts.alive)" -eq 9 ]; }
check "all churned agents are back: 9 alive (1, 6, 10 stay dead)" wait_for 20 back
gstatus() { in_ns "$NS_N" "$VIGIL" fleet status --json --nats "$URLS_N" --out VIGIL_FLEET_GLOBAL 2>/dev/null; }
# (monitors and watchers listed in the order each merger met them)
VIEW_JQ='[.counts, (.monitors | sort_by(.host)), (.agents | map(.watchers |= sort_by(.host)))]'
same_view() { [ "$(gstatus | jq -c "$VIEW_JQ")" = "$(status | jq -c "$VIEW_JQ")" ]; }
if wait_for 10 same_view; then
	ok "the view from the sourced streams (VIGIL_GLOBAL) is the direct view: $(gstatus | jq -c .counts), monitors $(gstatus | jq -c '[.monitors | sort_by(.host)[] | [.host, .live]]')"
else
	not_ok "the view from the sourced streams is the direct view ($(gstatus | jq -c .counts) vs $(status | jq -c .counts))"
fi
# Quiet the sources: the monitors stop, so the stream stops growing.
for m in 1 2; do kill_bg "daemon-$m" TERM; done
src_msgs=$(in_ns "$NS_N" "$NATS_READ" --servers "$URLS_N" --stream "$STREAM" --info | jq .msgs)
merged_count() { fleet events --json | jq -s '[.[] | select(.type == "event")] | length'; }
caught_up() { [ "$(merged_count)" -ge "$src_msgs" ]; }
wait_for 30 caught_up
in_ns "$NS_N" "$NATS_READ" --servers "$URLS_N" --stream "$STREAM" 2>/dev/null | cut -f4 | sort >"$E2E_TMP/source.ids"
fleet events --json >"$E2E_TMP/fleet.jsonl"
jq -r 'select(.type == "event") | "\(.host)-\(.instance)-\(.event_seq)"' "$E2E_TMP/fleet.jsonl" |
	sort >"$E2E_TMP/merged.ids"
n_src=$(wc -l <"$E2E_TMP/source.ids")
dups=$(uniq -d "$E2E_TMP/merged.ids" | head -n 3 | tr '\n' ' ')
missing=$(comm -23 "$E2E_TMP/source.ids" "$E2E_TMP/merged.ids" | head -n 3 | tr '\n' ' ')
extra=$(comm -13 "$E2E_TMP/source.ids" "$E2E_TMP/merged.ids" | head -n 3 | tr '\n' ' ')
check_sh "exactly once across 20 merger kills: the view holds each of the stream's $n_src events once${dups:+ (twice: $dups)}${missing:+ (missing: $missing)}${extra:+ (extra: $extra)}" \
	'[ "$n_src" -gt 0 ] && [ -z "$dups$missing$extra" ] && [ "$(wc -l <"$E2E_TMP/merged.ids")" -eq "$n_src" ]'
restarts=$(grep -h -c 'appending after sequence' "$E2E_TMP"/merger-*.err | awk '{ s += $1 } END { print s }')
note "merger sessions: $restarts; records: $(wc -l <"$E2E_TMP/fleet.jsonl") ($(jq -r .type "$E2E_TMP/fleet.jsonl" | sort | uniq -c | awk '{ printf "%s%s %s", sep, $1, $2; sep = ", " }'))"
# The view's verdicts agree with each monitor's own last event per agent (of
# those its exporter published before it stopped).
for m in 1 2 3; do
	# In event_seq order, the monitor's and its stream's (a restart and its
	# recovery share a detection time).
	"$VIGIL" log query --json --db "$E2E_TMP/m$m.db" | jq -sr --arg h "host-$m" \
		'sort_by(.event_seq)[] | select(.kind | IN("up", "suspect", "dead", "recovered", "restart", "left")) | "\($h)-\(.instance)-\(.event_seq) \(.agent_id) \($h) \(.state)"'
done | awk 'NR == FNR { in_stream[$1] = 1; next } ($1 in in_stream) { last[$2 " " $3] = $4 }
	END { for (k in last) print k, last[k] }' "$E2E_TMP/source.ids" - | sort >"$E2E_TMP/monitors.verdicts"
status | jq -r '.agents[] | .agent_id as $id | .watchers[] | "\($id) \(.host) \(.verdict)"' | sort >"$E2E_TMP/view.verdicts"
if cmp -s "$E2E_TMP/monitors.verdicts" "$E2E_TMP/view.verdicts"; then
	ok "the view's verdicts are each monitor's last word on each agent (24 pairs)"
else
	diff "$E2E_TMP/monitors.verdicts" "$E2E_TMP/view.verdicts" | head -n 6 | sed 's/^/# /'
	not_ok "the view's verdicts are each monitor's last word on each agent"
fi
# The view from the sourced streams: the same events once.
gmerged() { fleet events --json --out VIGIL_FLEET_GLOBAL | jq -r 'select(.type == "event") | "\(.host)-\(.instance)-\(.event_seq)"' | sort; }
gcaught_up() { [ "$(gmerged | wc -l)" -ge "$n_src" ]; }
wait_for 30 gcaught_up
gmerged >"$E2E_TMP/global.ids"
check "the view from the sourced streams holds each of the $n_src events once too" \
	cmp -s "$E2E_TMP/source.ids" "$E2E_TMP/global.ids"
# The follower printed what the view holds, each record once, in order.
follow_done() { [ "$(wc -l <"$E2E_TMP/follow.out")" -ge "$(wc -l <"$E2E_TMP/fleet.jsonl")" ]; }
wait_for 20 follow_done
fleet events --json >"$E2E_TMP/fleet.jsonl"
if cmp -s "$E2E_TMP/follow.out" "$E2E_TMP/fleet.jsonl"; then
	ok "vigil fleet events --follow printed the view's $(wc -l <"$E2E_TMP/fleet.jsonl") records once each, in order, through its consumer's deletion and n$FNODE's restart"
else
	note "follower: $(wc -l <"$E2E_TMP/follow.out") lines, $(sort "$E2E_TMP/follow.out" | uniq -d | wc -l) repeated; the view: $(wc -l <"$E2E_TMP/fleet.jsonl") records"
	show_file "vigil fleet events --follow stderr" "$E2E_TMP/follow.err"
	not_ok "vigil fleet events --follow printed the view's records once each, in order"
fi
check "the follower's watchdog saw its consumer stall and read again after the last record: $(grep -c 'stalled\|reading again' "$E2E_TMP/follow.err") time(s)" \
	grep -q "fleet: reading VIGIL_FLEET stalled with [0-9]* record(s) to go; reading again after sequence" "$E2E_TMP/follow.err"
kill_bg follow TERM
note "merge lag, monitor's detection to the fleet view: ${LAGS[*]} ms"
kill_bg "$MERGER" TERM
check "vigil fleet merge stops on SIGTERM (exit $LAST_RC)" [ "$LAST_RC" -eq 0 ]
e2e_finish

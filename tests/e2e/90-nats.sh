#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
#
# Export of the event log to NATS JetStream (user/daemon/export.c, docs/fleet.md),
# against a real 3-node nats-server cluster with JetStream that the test
# starts on 127.0.0.1 inside a network namespace of its own (client ports
# 14222-14224, cluster ports 16222-16224, one store directory per node).
# Agents die and come back (vigil beat processes killed and restarted with a
# new incarnation) throughout, while:
#   1. the exporter creates the stream (3 replicas, file storage, 2 min
#      duplicate window) and publishes to vigil.events.<host>;
#   2. the stream leader's node is killed (SIGKILL): the two others carry on;
#   3. the daemon, and with it the exporter, is killed (SIGKILL) and started
#      again, its cursor set one event back as if the kill had fallen between
#      a PubAck and the cursor's commit: it asks the stream and resumes after
#      the stream's last message (no re-publication, whatever the window);
#   4. the killed node is started again and catches up; a row appears below
#      the cursor (as a reloaded instance with a lower random id would) and
#      is published late, once;
#   5. the whole cluster is down: events wait in the log, the cursor stands
#      still; the cluster comes back and the export resumes by itself.
# At the end the stream is read back with an ordered consumer (nats_read):
# it holds every event of the log exactly once (the same (instance,
# event_seq) set, no message id twice), in the log's order, each as the same
# JSON line `vigil log query --json` prints.
#
# check_sh evaluates its single-quoted condition later (SC2016/SC2034); small
# predicates are called through check/wait_for (SC2317).
# shellcheck disable=SC2016,SC2034,SC2317
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
e2e_init
need_tools nats-server sqlite3
NATS_READ=$E2E_ROOT/build/nats_read
if [ ! -x "$NATS_READ" ]; then
	make -s -C "$E2E_ROOT" build/nats_read >/dev/null 2>&1 ||
		die "building build/nats_read (make build/nats_read)"
fi

setup_lo_test "vg$$n" nats
HOST=host-a
STREAM=VIGIL_EVENTS
SUBJECT=vigil.events.$HOST
URLS=nats://127.0.0.1:14222,nats://127.0.0.1:14223,nats://127.0.0.1:14224
AGENTS=8
INTERVAL_MS=100

make_keys "$KEYS" "1-$AGENTS" || die "vigil key gen --id 1-$AGENTS"
{
	echo "defaults interval-min-ms=20 interval-max-ms=1000 multiplier=3 group=nats"
	for i in $(seq 1 "$AGENTS"); do echo "agent $i name=nats-$i"; done
} >"$CONF"

# ------------------------------------------------------------ the cluster

nats_conf() { # nats_conf N: node N's configuration
	cat <<EOF
server_name: n$1
listen: 127.0.0.1:$((14221 + $1))
jetstream {
  store_dir: "$E2E_TMP/n$1"
}
cluster {
  name: vigil-test
  listen: 127.0.0.1:$((16221 + $1))
  routes: [
    nats-route://127.0.0.1:16222
    nats-route://127.0.0.1:16223
    nats-route://127.0.0.1:16224
  ]
}
EOF
}
for n in 1 2 3; do
	mkdir -p "$E2E_TMP/n$n"
	nats_conf "$n" >"$E2E_TMP/n$n.conf"
done
start_node() {
	start_bg "nats-$1" "$NS" nats-server -c "$E2E_TMP/n$1.conf"
}
listening() { # listening N: node N accepts clients
	in_ns "$NS" bash -c "exec 3<>/dev/tcp/127.0.0.1/$((14221 + $1))" 2>/dev/null
}
for n in 1 2 3; do start_node "$n"; done
for n in 1 2 3; do
	if ! wait_for 10 listening "$n"; then
		show_file "nats-server n$n stderr" "$E2E_TMP/nats-$n.err"
		die "nats-server n$n listens on 127.0.0.1:$((14221 + n)) in $NS"
	fi
done
ok "a 3-node nats-server cluster with JetStream listens on 127.0.0.1:14222-14224 in $NS"

nats_read() {
	in_ns "$NS" "$NATS_READ" --servers "$URLS" --stream "$STREAM" "$@"
}
info_field() { # info_field FIELD: from the stream's info (empty if unreachable)
	nats_read --info 2>/dev/null | jq -r ".$1"
}
log_count() {
	sqlite3 "$DB" "SELECT count(*) FROM events"
}
cursor() {
	sqlite3 "$DB" "SELECT printf('%016x-%d', instance_id, event_seq) FROM export_cursor" 2>/dev/null
}
last_key() {
	sqlite3 "$DB" "SELECT printf('%016x-%d', instance_id, event_seq) FROM events ORDER BY instance_id DESC, event_seq DESC LIMIT 1"
}
caught_up() { # every event of the log is in the stream
	local n
	n=$(info_field msgs)
	[ -n "$n" ] && [ "$n" = "$(log_count)" ] && [ "$(cursor)" = "$(last_key)" ]
}

# --------------------------------------------------------------- agents

declare -A INC=()
beat() { # beat ID: start agent ID's beater with a new incarnation
	INC[$1]=$((${INC[$1]:-0} + 1))
	start_beater "beat-$1" "$NS" --id "$1" --target 127.0.0.1 --interval-ms "$INTERVAL_MS" \
		--keys "$KEYS" --incarnation "${INC[$1]}"
}
# churn SECONDS: every 0.3 s, one random agent dies (SIGKILL) or comes back.
churn() {
	local end i
	end=$(($(date +%s%N) + $1 * 1000000000))
	while [ "$(date +%s%N)" -lt "$end" ]; do
		i=$((RANDOM % AGENTS + 1))
		if [ -n "${PIDS[beat-$i]:-}" ]; then
			kill_bg "beat-$i" KILL
		else
			beat "$i"
		fi
		nap 0.3
	done
}

# --------------------------------------------------------------- phase 1
DAEMON_ARGS=(--iface lo --mode skb --keys "$KEYS" --config "$CONF" --db "$DB" --metrics off
	--export-nats "$URLS" --export-replicas 3 --export-host "$HOST")
start_daemon_or_die "vigil run starts with --export-nats (3 URLs) --export-replicas 3" \
	daemon "$NS" "$PIN" "${DAEMON_ARGS[@]}"
ok "vigil run starts with --export-nats (3 URLs) --export-replicas 3 --export-host $HOST"
for i in $(seq 1 "$AGENTS"); do beat "$i"; done

check_daemon_says "the exporter creates stream $STREAM once the cluster has a JetStream leader" \
	daemon 30 "export: created stream $STREAM" || exit 1
info=$(nats_read --info)
check "the stream: 3 replicas on n1-n3, duplicate window 120 s ($info)" \
	[ "$(jq -c '[.replicas, .duplicates_ns, ([.leader] + [.peers[].name] | sort)]' <<<"$info")" = \
	'[3,120000000000,["n1","n2","n3"]]' ]
has_msgs() { [ "$(info_field msgs)" -gt 0 ] 2>/dev/null; }
check "the agents' first events reach the stream" wait_for 10 has_msgs
churn 5

# --------------------------------------------------------------- phase 2
leader=$(info_field leader)
victim=${leader#n}
case $victim in 1 | 2 | 3) ;; *) die "the stream has a leader (got '$leader')" ;; esac
before=$(info_field msgs)
kill_bg "nats-$victim" KILL
note "killed the stream leader, node n$victim (SIGKILL), with $before message(s) in the stream"
churn 8
grew() { [ "$(info_field msgs)" -gt "$before" ] 2>/dev/null; }
check "with n$victim down, the stream (now led by $(info_field leader)) keeps taking events" wait_for 10 grew

# --------------------------------------------------------------- phase 3
kill_bg daemon KILL
note "killed the daemon (SIGKILL) at cursor $(cursor); events wait in the ring buffer meanwhile"
sqlite3 "$DB" "UPDATE export_cursor SET event_seq = event_seq - 1" ||
	not_ok "moving the export cursor one event back"
churn 3
start_daemon_or_die "a new daemon adopts the instance and starts the exporter again" \
	daemon2 "$NS" "$PIN" "${DAEMON_ARGS[@]}"
check_daemon_says "a new daemon adopts the instance; its exporter finds the stream ahead of its cursor and resumes after the stream's last message" \
	daemon2 20 "export: the stream already holds instance .* resuming after it"
churn 5

# --------------------------------------------------------------- phase 4
start_node "$victim"
check "node n$victim starts again" wait_for 10 listening "$victim"
churn 5
current() { [ "$(nats_read --info 2>/dev/null | jq '[.peers[] | select(.current)] | length')" -eq 2 ]; }
check "node n$victim rejoins the stream as a current replica" wait_for 20 current
LATE_KEY=8000000000000001-7
# Its name is hostile (quotes, backslash, newline, tab, a control byte, a
# byte that is not UTF-8): the payload must still be valid JSON.
LATE_NAME_HEX=6C22615C740A65097401FF65
sqlite3 -cmd ".timeout 5000" "$DB" "INSERT INTO events (instance_id, event_seq, agent_id, kind,
	state, prev_state, name, grp, slot, seq, incarnation, interval_ms, last_seen_ns, detected_ns,
	detected_wall_ns, recorded_wall_ns) VALUES (-9223372036854775807, 7, 1, 'up', 'alive', 'new',
	CAST(X'$LATE_NAME_HEX' AS TEXT), 'nats', 0, 1, 1, 100, 1, 1, $(date +%s%N), $(date +%s%N))" ||
	not_ok "adding a row below the export cursor"
late() { grep -q "export: instance 8000000000000001 event 7 appeared below the export cursor" "$E2E_TMP/daemon2.err"; }
check "a row that appears below the cursor (instance 8000000000000001 event 7) is published late" \
	wait_for 5 late

# --------------------------------------------------------------- phase 5
for n in 1 2 3; do kill_bg "nats-$n" KILL; done
held=$(cursor)
logged=$(log_count)
churn 4
check_sh "with the whole cluster down, the log grows ($logged -> $(log_count) events) and the cursor stands still at $held" \
	'[ "$(log_count)" -gt "$logged" ] && [ "$(cursor)" = "$held" ]'
for n in 1 2 3; do start_node "$n"; done
churn 3

# ---------------------------------------------------------------- the end
# Let the last transitions happen (a dead agent goes SUSPECT, then DEAD).
nap 1.5
t0=$(now)
if wait_for 60 caught_up; then
	ok "the cluster is back: the exporter catches up by itself ($(log_count) events, cursor $(cursor))"
else
	show_file "vigil run stderr" "$E2E_TMP/daemon2.err" 20
	not_ok "the cluster is back: the exporter catches up ($(info_field msgs) messages for $(log_count) events; cursor $(cursor), last $(last_key))"
fi
note "$(awk -v t="$t0" -v n="$(now)" 'BEGIN { printf "caught up %.1f s after the churn stopped", n - t }')"

# The daemon keeps running, and on a busy machine it may record a monitor
# health event at any moment: compare what the log held when the exporter was
# seen caught up (the snapshot), plus any message the stream took since.
log_keys() {
	sqlite3 "$DB" "SELECT printf('%016x-%d', instance_id, event_seq) FROM events" | sort
}
log_keys >"$E2E_TMP/log.keys"
STREAM_OUT=$E2E_TMP/stream.tsv
nats_read >"$STREAM_OUT" 2>"$E2E_TMP/nats_read.err" || show_file "nats_read stderr" "$E2E_TMP/nats_read.err"
log_keys >"$E2E_TMP/log.keys.now"
n_log=$(wc -l <"$E2E_TMP/log.keys")
n_stream=$(wc -l <"$STREAM_OUT")
note "the log held $n_log events when the exporter was caught up; the stream holds $n_stream messages"
check "every message is on subject $SUBJECT" \
	[ "$(cut -f3 "$STREAM_OUT" | sort -u)" = "$SUBJECT" ]
dups=$(cut -f4 "$STREAM_OUT" | sort | uniq -d | head -n 3 | tr '\n' ' ')
check "no message id twice in the stream${dups:+ (twice: $dups)}" [ -z "$dups" ]
cut -f4 "$STREAM_OUT" | sed "s/^$HOST-//" | sort >"$E2E_TMP/stream.keys"
missing=$(comm -23 "$E2E_TMP/log.keys" "$E2E_TMP/stream.keys" | head -n 5 | tr '\n' ' ')
extra=$(comm -13 "$E2E_TMP/log.keys.now" "$E2E_TMP/stream.keys" | head -n 5 | tr '\n' ' ')
later=$(comm -13 "$E2E_TMP/log.keys" "$E2E_TMP/stream.keys" | wc -l)
[ "$later" -eq 0 ] || note "$later event(s) recorded after the snapshot are in the stream too"
check_sh "exactly once: the stream holds the log's $n_log (instance, event_seq) and nothing the log lacks${missing:+ (missing: $missing)}${extra:+ (extra: $extra)}" \
	'[ -z "$missing" ] && [ -z "$extra" ] && [ "$n_stream" -eq $((n_log + later)) ]'
# Message ids are <host>-<instance hex>-<event_seq> of their own payload.
bad_id=$(cut -f4,5 "$STREAM_OUT" | while IFS=$'\t' read -r id json; do
	[ "$id" = "$(jq -r --arg h "$HOST" '"\($h)-\(.instance)-\(.event_seq)"' <<<"$json")" ] || echo "$id"
done | head -n 3 | tr '\n' ' ')
check "each message id is $HOST-<instance>-<event_seq> of its payload${bad_id:+ (not: $bad_id)}" [ -z "$bad_id" ]
unordered=$(cut -f4 "$STREAM_OUT" | grep -v -- "-$LATE_KEY\$" | awk -F- '{ k = sprintf("%s %020d", $(NF - 1), $NF) } NR > 1 && k <= last { print $0 } { last = k }' | head -n 3 | tr '\n' ' ')
check "in order: the stream's (instance, event_seq) rise message after message, but for the late row${unordered:+ (out of order: $unordered)}" \
	[ -z "$unordered" ]
cut -f5 "$STREAM_OUT" | sort >"$E2E_TMP/stream.json"
# The log's own lines for the streamed events, filtered, never re-serialised.
log_json "$DB" | awk 'NR == FNR { in_stream[$1] = 1; next }
	match($0, /"event_seq":[0-9]+/) { seq = substr($0, RSTART + 12, RLENGTH - 12) }
	match($0, /"instance":"[0-9a-f]+"/) { inst = substr($0, RSTART + 12, RLENGTH - 13) }
	(inst "-" seq) in in_stream' "$E2E_TMP/stream.keys" - |
	sort >"$E2E_TMP/log.json"
if cmp -s "$E2E_TMP/stream.json" "$E2E_TMP/log.json"; then
	ok "the payloads are the log's events as 'vigil log query --json' prints them"
else
	diff "$E2E_TMP/log.json" "$E2E_TMP/stream.json" | head -n 6 | sed 's/^/# /'
	not_ok "the payloads are the log's events as 'vigil log query --json' prints them"
fi
if grep -F -- "-$LATE_KEY	" "$STREAM_OUT" | cut -f5 | python3 -c '
import json, sys
want = bytes.fromhex(sys.argv[1]).decode("utf-8", "replace")
sys.exit(0 if json.loads(sys.stdin.read())["name"] == want else 1)' "$LATE_NAME_HEX"; then
	ok "the late row's hostile name (quotes, newline, a control and a non-UTF-8 byte) is valid JSON in the stream"
else
	not_ok "the late row's hostile name (quotes, newline, a control and a non-UTF-8 byte) is valid JSON in the stream"
fi
# How long an event took from its commit to the log to its place in the
# stream (outages included: they make the tail).
sqlite3 -separator ' ' "$DB" "SELECT printf('%016x-%d', instance_id, event_seq), recorded_wall_ns FROM events" |
	sort >"$E2E_TMP/log.rec"
cut -f2,4 "$STREAM_OUT" | awk -v h="$HOST-" '{ sub("^" h, "", $2); print $2, $1 }' | sort >"$E2E_TMP/stream.rec"
join "$E2E_TMP/log.rec" "$E2E_TMP/stream.rec" | awk '{ print ($3 - $2) / 1e6 }' | sort -n >"$E2E_TMP/lag.ms"
note "$(awk '{ v[NR] = $1 } END { if (NR) printf "export lag, log commit to stream: p50 %.1f ms, p90 %.1f ms, max %.0f ms (outages included)", v[int(NR * 0.5 + 0.5)], v[int(NR * 0.9 + 0.5)], v[NR] }' "$E2E_TMP/lag.ms")"
kinds=$(jq -r .kind "$E2E_TMP/log.json" | sort | uniq -c | awk '{ printf "%s%s %s", sep, $1, $2; sep = ", " }')
note "events by kind: $kinds"
note "export errors retried: $(grep -c 'export: .*failed' "$E2E_TMP/daemon.err" "$E2E_TMP/daemon2.err" | awk -F: '{ s += $NF } END { print s }') distinct"

kill_bg daemon2 TERM
check "vigil run stops on SIGTERM with the exporter running (exit $LAST_RC)" [ "$LAST_RC" -eq 0 ]

e2e_finish

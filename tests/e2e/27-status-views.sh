#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
#
# What an SRE reads without the daemon's help (docs/maps.md,
# docs/operations.md "Watching the fleet"), on a real instance on loopback:
#   a. `bpftool map dump` prints states, statuses and lease states by name
#      (BTF enums), the same as `vigil status --json` says;
#   b. `vigil status --bpftool` prints the lookups of each slot in use (an
#      agent's two records, a lease) and `| sh` dumps exactly those, out of
#      a 64-slot array;
#   c. `vigil status --from-bpftool` adds each monotonic time as UTC and age,
#      stays JSON, leaves durations and zeros alone, and passes anything
#      else through unchanged;
#   d. `vigil status --watch` under a pseudo-terminal: N refreshes drawn in
#      place (cursor home, clear to end of line and below, never a full
#      clear), counts, rates, the agents that changed last first, '*' on a
#      change since the previous refresh; Ctrl-C ends it with the cursor
#      back; usage errors are one line, exit 2.
# check_sh evaluates its single-quoted condition later (SC2016).
# shellcheck disable=SC2016
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
e2e_init
need_tools bpftool script jq

setup_lo_test "vg$$s" views
make_keys "$KEYS" 1-4 || die "vigil key gen"
cat >"$CONF" <<EOF
defaults interval-min-ms=10 interval-max-ms=2000 multiplier=3 group=web
agent 1 name=web-1
agent 2 name=web-2
agent 3 name=db-1 group=db
agent 4 name=web-4
ack web
lease primary id=1 duration-ms=2000 grace-ms=100 candidates=1:10
EOF
start_daemon_or_die "vigil run on lo" daemon "$NS" "$PIN" --iface lo --mode skb --max-agents 64 \
	--config "$CONF" --keys "$KEYS" --db "$DB" --dead-misses 2 --metrics off
# Agent 1 holds the lease; agent 2 beats ten times then goes silent (dead);
# agent 3 never beats (new); agent 4 beats DRAINING until the watch below.
start_beater a1 "$NS" --id 1 --target 127.0.0.1 --keys "$KEYS" --interval-ms 100 --lease 1
start_beater a2 "$NS" --id 2 --target 127.0.0.1 --keys "$KEYS" --interval-ms 50 --count 10
start_beater a4 "$NS" --id 4 --target 127.0.0.1 --keys "$KEYS" --interval-ms 50 --status draining
st() {
	agent_field "$(status_json "$PIN")" "$1" state
}
wait_for 10 sh -c "[ \"\$('$VIGIL' status --json --pin-root '$PIN' | jq -r '[.agents[].state] | join(\" \")')\" = 'alive dead new alive' ]" ||
	note "states before the checks: 1 $(st 1), 2 $(st 2), 3 $(st 3), 4 $(st 4)"
wait_for 5 sh -c "'$VIGIL' lease show 1 --json --history 0 --pin-root '$PIN' --db '$DB' | jq -e '.state == \"held\"'"

# ------------------------------------------------------------ a. BTF names
DUMP=$E2E_TMP/agents.json
bpftool -j map dump pinned "$PIN/vigil_agents" >"$DUMP" 2>"$E2E_TMP/bpftool.err" ||
	die "bpftool map dump pinned $PIN/vigil_agents ($(head -c 200 "$E2E_TMP/bpftool.err"))"
names=$(jq -r '[.[].formatted.value | select(.agent_id != 0) | "\(.agent_id) \(.state) \(.status)"] | join(", ")' "$DUMP")
check_sh "bpftool prints agent states and statuses by name ($names)" \
	'[ "$names" = "1 VIGIL_AGENT_ALIVE VIGIL_STATUS_OK, 2 VIGIL_AGENT_DEAD VIGIL_STATUS_OK, 3 VIGIL_AGENT_NEW VIGIL_STATUS_OK, 4 VIGIL_AGENT_ALIVE VIGIL_STATUS_DRAINING" ]'
j=$(status_json "$PIN")
same=$(jq -r --argjson s "$j" '[.[].formatted.value | select(.agent_id != 0) |
	(.agent_id as $id | ($s.agents[] | select(.agent_id == $id) | .state | ascii_upcase)) as $want |
	select(.state != "VIGIL_AGENT_" + $want)] | length' "$DUMP")
check_sh "the names agree with vigil status --json" '[ "$same" = 0 ]'
free=$(jq '[.[].formatted.value | select(.agent_id == 0) | .state] | unique' -c "$DUMP")
check_sh "free slots print as VIGIL_AGENT_FREE ($free; $(jq length "$DUMP") slots in all)" \
	'[ "$free" = "[\"VIGIL_AGENT_FREE\"]" ] && [ "$(jq length "$DUMP")" = 64 ]'
lease=$(bpftool map lookup pinned "$PIN/vigil_leases" key 1 0 0 0 | jq -r '.value.state')
check_sh "a lease's state by name ($lease)" '[ "$lease" = VIGIL_LEASE_HELD ]'

# ------------------------------------------------------- b. slots in use
"$VIGIL" status --bpftool --pin-root "$PIN" >"$E2E_TMP/cmds" 2>"$E2E_TMP/cmds.err"
rc=$?
note "$(cat "$E2E_TMP/cmds")"
check_sh "--bpftool: a lookup of both records of each of the 4 agents and the lease, nothing else (exit $rc)" \
	'[ $rc = 0 ] && [ "$(grep -c "^bpftool map lookup pinned $PIN/vigil_agents key [0-9]* 0 0 0$" "$E2E_TMP/cmds")" = 4 ] &&
	 [ "$(grep -c "^bpftool map lookup pinned $PIN/vigil_agent_info key [0-9]* 0 0 0$" "$E2E_TMP/cmds")" = 4 ] &&
	 [ "$(grep -c "^bpftool map lookup pinned $PIN/vigil_leases key 1 0 0 0$" "$E2E_TMP/cmds")" = 1 ] &&
	 [ "$(grep -vc "^#" "$E2E_TMP/cmds")" = 9 ]'
sh "$E2E_TMP/cmds" >"$E2E_TMP/used.json" 2>"$E2E_TMP/used.err"
ids=$(jq -sr '[.[] | .value | if has("agent_id") then "agent \(.agent_id)" elif has("expires_ns") then "lease \(.name)" else "(\(.name))" end] | join(", ")' "$E2E_TMP/used.json")
check_sh "--bpftool | sh dumps exactly the slots in use, each agent with its names ($ids)" \
	'[ "$ids" = "agent 1, (web-1), agent 2, (web-2), agent 3, (db-1), agent 4, (web-4), lease primary" ]'

# -------------------------------------------------------------- c. times
sh "$E2E_TMP/cmds" | "$VIGIL" status --from-bpftool >"$E2E_TMP/conv.json" 2>"$E2E_TMP/conv.err"
rc=$?
check_sh "--from-bpftool output is still JSON (exit $rc)" \
	'[ $rc = 0 ] && jq -se "length == 9" "$E2E_TMP/conv.json" >/dev/null'
a1=$(jq -sc '(.[0].value + .[1].value) | {last_seen_ns, last_seen, state_since, hold_since_ns, has_hold_since: has("hold_since"), send_ts: has("send_ts"), clock_off: has("clock_off")}' "$E2E_TMP/conv.json")
note "agent 1: $a1"
check_sh "each time point has a UTC and age twin; zeros, durations and the agent's clock have none" \
	'[ "$(jq -r "\"\(.has_hold_since) \(.send_ts) \(.clock_off) \(.hold_since_ns)\"" <<<"$a1")" = "false false false 0" ] &&
	 jq -e ".last_seen | test(\"^20[0-9-]{8}T[0-9:.]{12}Z \\\\(0\\\\.[0-9]{3} s ago\\\\)$\")" <<<"$a1" >/dev/null'
# The UTC twin is the wall-clock time of the beat: within 2 s of now.
utc=$(jq -r '.last_seen | split(" ")[0]' <<<"$a1")
drift=$(($(date +%s) - $(date -d "$utc" +%s)))
check_sh "last_seen's UTC is the wall-clock time of the last beat ($utc, ${drift}s before now)" \
	'[ "$drift" -ge 0 ] && [ "$drift" -le 2 ]'
exp=$(jq -sr '.[8].value.expires' "$E2E_TMP/conv.json")
check_sh "a lease's expiry is in the future: \"$exp\"" '[[ $exp == *"(in "*" s)" ]]'
wheel=$(bpftool map dump pinned "$PIN/vigil_wheel" | "$VIGIL" status --from-bpftool | jq -r '.[0].value.last_run')
check_sh "the sweeper's last run, from a plain dump: \"$wheel\"" '[[ $wheel == *"s ago)" ]]'
raw=$(bpftool -j map lookup pinned "$PIN/vigil_leases" key 1 0 0 0 | "$VIGIL" status --from-bpftool | jq -r '.formatted.value.granted')
check_sh "and from bpftool -j: \"$raw\"" '[[ $raw == *"s ago)" ]]'
junk='hello 123 "last_seen_ns": "x", [1, -2.5e3] {"expires_ns": 0}'
out=$(printf '%s\n' "$junk" | "$VIGIL" status --from-bpftool)
check_sh "anything else passes through unchanged" '[ "$out" = "$junk" ]'

# ------------------------------------------------------------- d. --watch
W=$E2E_TMP/watch6.out
# Agent 4 stops beating after the first refresh: it goes SUSPECT, then DEAD
# while the view refreshes.
timeout 30 script -qfec "exec '$VIGIL' status --watch --count 6 --interval-ms 400 --pin-root '$PIN'" \
	/dev/null >"$W" 2>&1 </dev/null &
wpid=$!
wait_for 5 grep -q 'agents:' "$W"
kill_bg a4 KILL
wait "$wpid"
rc=$?
frames=$(grep -o $'\e\\[H' "$W" | wc -l)
check_sh "6 refreshes drawn in place, then exit 0 (exit $rc, $frames frames)" '[ $rc = 0 ] && [ "$frames" = 6 ]'
check_sh "never a full-screen clear; every line cleared to its end, the rest below each frame" \
	'! grep -q $'"'"'\e\[2J'"'"' "$W" && [ "$(grep -o $'"'"'\e\[J'"'"' "$W" | wc -l)" = 6 ] &&
	 [ "$(tr -d "\r" <"$W" | grep -c $'"'"'\e\[K$'"'"')" -ge 60 ]'
check_sh "the cursor is hidden while it runs and shown again at the end" \
	'head -c 6 "$W" | grep -q $'"'"'\e\[?25l'"'"' && tail -c 6 "$W" | grep -q $'"'"'\e\[?25h'"'"''
# The frames, one per file, as a terminal would show them.
awk 'BEGIN { RS = "\033\\[H" } NR > 1 { gsub(/\033\[(K|J|\?25[lh])/, ""); gsub(/\r/, ""); f = sprintf("%s/frame%d", dir, NR - 1); printf "%s", $0 > f; close(f) }' \
	dir="$E2E_TMP" "$W"
note "the last frame:
$(cat "$E2E_TMP/frame6")"
check_sh "counts: 4 agents: 1 new, 1 alive, 0 suspect, 2 dead, 0 left" \
	'grep -q "^4 agents: 1 new, 1 alive, 0 suspect, 2 dead, 0 left$" "$E2E_TMP/frame6"'
check_sh "rates from the second refresh on (beats per second, about 10/s from agent 1)" \
	'grep -q "rates next" "$E2E_TMP/frame1" &&
	 r=$(sed -n "s/^beats \([0-9.]*\)\/s.*/\1/p" "$E2E_TMP/frame6") && awk -v r="$r" "BEGIN { exit !(r >= 2.5 && r <= 20) }"'
order=$(awk '/^  ID /{t=1; next} t && NF {print ($1 == "*" ? $2 : $1)}' "$E2E_TMP/frame6" | tr '\n' ' ')
check_sh "the agents that changed last come first: agent 4 (dead just now), then 2 ($order)" \
	'[[ $order == "4 2 "* ]]'
marks=$(grep -h '^\* 4 ' "$E2E_TMP"/frame[2-6] | awk '{print $5}' | tr '\n' ' ')
check_sh "'*' marks agent 4 in the refreshes that saw it change ($marks)" \
	'[[ $marks == *dead* ]] && ! grep -q "^\* 4 .* alive " "$E2E_TMP"/frame[2-6]'

# Ctrl-C ends it, the cursor comes back. (script runs the command itself:
# its child is vigil.)
start_bg watch "$NS" script -qfec "exec '$VIGIL' status --watch --interval-ms 200 --pin-root '$PIN'" \
	/dev/null
wait_for 5 grep -q 'agents:' "$E2E_TMP/watch.out"
vpid=$(pgrep -P "${PIDS[watch]}" | head -n 1)
[ -n "$vpid" ] && kill -INT "$vpid"
if wait_exit watch 5; then
	check_sh "SIGINT ends --watch with exit 0 and the cursor shown (exit $LAST_RC)" \
		'[ "$LAST_RC" = 0 ] && tail -c 8 "$E2E_TMP/watch.out" | grep -q $'"'"'\e\[?25h'"'"''
else
	not_ok "SIGINT ends --watch (vigil pid ${vpid:-not found} still runs after 5 s)"
fi

expect_usage_error "--count without --watch" "--watch" "$VIGIL" status --count 3 --pin-root "$PIN"
expect_usage_error "--watch with --json" "one of" "$VIGIL" status --watch --json --pin-root "$PIN"
expect_usage_error "--interval-ms 10 (below 100)" "interval-ms" "$VIGIL" status --watch --interval-ms 10 --pin-root "$PIN"
run_refused "$NS" 1 "" "$VIGIL" status --watch --count 1 --pin-root "$PIN-none"
refusal_result "--watch on a pin root with no instance" 120

e2e_finish

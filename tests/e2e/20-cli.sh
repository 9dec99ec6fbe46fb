#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
#
# The command line: bad input gets one clear line on stderr, a non-zero exit
# and changes nothing (no pins, no event log); `vigil agent add/remove/list`
# do what they say on a running instance.
#
# Everything runs in a fresh network namespace with only loopback (skb-mode
# XDP on its lo), pinned under /sys/fs/bpf/vg$$-cli.
# check_sh evaluates its single-quoted condition later (SC2016/SC2034); small
# predicates are called through check/wait_for (SC2317).
# shellcheck disable=SC2016,SC2034,SC2317
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
e2e_init

setup_lo_test "vg$$c" cli
make_keys "$KEYS" 1-2 || die "vigil key gen --id 1-2"
RUN_SAFE=(--iface lo --mode skb --keys "$KEYS" --pin-root "$PIN" --db "$DB" --events-file "$EV")

# expect_fail DESCRIPTION RC REGEX CMD...: CMD (in our namespace) exits with RC
# ("nz" = any non-zero), prints exactly one line on stderr matching REGEX and
# nothing on stdout, and leaves no pin directory and no event log (SQLite or
# JSON lines).
expect_fail() {
	local what=$1 want=$2 re=$3
	shift 3
	run_refused "$NS" "$want" "$re" "$@"
	[ -s "$E2E_TMP/out" ] && PROBLEMS+=("printed on stdout")
	[ -e "$PIN" ] && PROBLEMS+=("$PIN exists afterwards")
	[ -e "$EV" ] && PROBLEMS+=("$EV exists afterwards")
	[ -e "$DB" ] && PROBLEMS+=("$DB exists afterwards")
	refusal_result "$what" 150 || {
		# Do not let one failure spoil the next cases.
		"$VIGIL" detach --pin-root "$PIN" >/dev/null 2>&1
		rm -rf -- "$PIN" "$EV" "$DB"
	}
}

# ------------------------------------------------------------- bad input
expect_fail "unknown command" 2 "unknown command 'frobnicate'" "$VIGIL" frobnicate
expect_fail "vigil run --port 0" 2 '--port: 0 is out of range' "$VIGIL" run "${RUN_SAFE[@]}" --port 0
expect_fail "vigil run --port abc" 2 "--port: 'abc' is not" "$VIGIL" run "${RUN_SAFE[@]}" --port abc
expect_fail "vigil run --port 0x10 (numbers are decimal)" 2 "--port: '0x10' is not" \
	"$VIGIL" run "${RUN_SAFE[@]}" --port 0x10
expect_fail "vigil run --mode foo" 2 "--mode: 'foo' is not 'native' or 'skb'" \
	"$VIGIL" run "${RUN_SAFE[@]}" --mode foo
expect_fail "vigil run --tick-us 0" 2 '--tick-us: 0 is out of range' "$VIGIL" run "${RUN_SAFE[@]}" --tick-us 0
expect_fail "vigil run with an unexpected extra argument" 2 "unexpected argument 'extra'" \
	"$VIGIL" run "${RUN_SAFE[@]}" extra

# Agents file errors: "FILE:LINE: problem", exit 2, nothing loaded.
agents_case() {
	local what=$1 line=$2 re=$3 body=$4 f
	f=$E2E_TMP/agents-$E2E_N.conf
	printf '%b' "$body" >"$f"
	expect_fail "agents file, $what" 2 "^vigil: $f:$line: .*$re" \
		"$VIGIL" run "${RUN_SAFE[@]}" --config "$f"
}
agents_case "unknown directive" 2 "unknown directive 'frob'" \
	'# fleet\nfrob 2\nagent 3\n'
agents_case "bad id" 3 "needs an id" \
	'defaults multiplier=3\nagent 1\nagent web1\n'
agents_case "id 0" 1 "needs an id" 'agent 0\n'
agents_case "duplicate id" 4 "agent 2 is declared twice" \
	'agent 1\nagent 2\n\nagent 2 name=again\n'
agents_case "unknown key" 2 "colour: unknown key" \
	'agent 1\nagent 2 colour=blue\n'
agents_case "interval-min-ms > interval-max-ms" 1 "interval-min-ms is larger than interval-max-ms" \
	'agent 1 interval-min-ms=500 interval-max-ms=100\n'
agents_case "interval-min-ms > interval-max-ms through defaults" 3 "interval-min-ms is larger" \
	'defaults interval-min-ms=500\nagent 1 interval-max-ms=1000\nagent 2 interval-max-ms=100\n'
agents_case "name too long" 1 "name must be 1-31 characters" \
	"agent 1 name=$(printf 'n%.0s' $(seq 1 32))\n"
agents_case "value not a number" 1 "multiplier must be a whole number" \
	'agent 1 multiplier=3x\n'
# Key files: checked before anything is loaded.
expect_fail "vigil run without --keys (authentication is required)" 2 \
	"authentication is required but no key file was given" \
	"$VIGIL" run --iface lo --mode skb --pin-root "$PIN" --db "$DB" --events-file "$EV"
cp "$KEYS" "$E2E_TMP/keys644" && chmod 644 "$E2E_TMP/keys644"
expect_fail "key file readable by others (mode 0644)" 2 "keys644: key file must be owned by root with mode 0600" \
	"$VIGIL" run --iface lo --mode skb --keys "$E2E_TMP/keys644" --pin-root "$PIN" --db "$DB" --events-file "$EV"
keys_case() {
	local what=$1 line=$2 re=$3 body=$4 f
	f=$E2E_TMP/keys-$E2E_N
	(umask 077 && printf '%b' "$body" >"$f")
	expect_fail "key file, $what" 2 "^vigil: $f:$line: .*$re" \
		"$VIGIL" run --iface lo --mode skb --keys "$f" --pin-root "$PIN" --db "$DB" --events-file "$EV"
}
keys_case "key not 32 hex digits" 3 "32 hex digits" \
	"# keys\n$(head -n 1 "$KEYS")\n2 0 0123abc\n"
keys_case "the same key slot twice" 3 "agent 1 key 0 is given twice" \
	"$(head -n 1 "$KEYS")\n$(sed -n 2p "$KEYS")\n$(head -n 1 "$KEYS")\n"
expect_fail "agents file that does not exist" 2 "$E2E_TMP/none.conf: cannot open agents file" \
	"$VIGIL" run "${RUN_SAFE[@]}" --config "$E2E_TMP/none.conf"

expect_fail "vigil beat without --id" 2 "--id is required for 'vigil beat'" \
	"$VIGIL" beat --target 127.0.0.1 --count 1
expect_fail "vigil beat --target not-an-address" 2 "--target: 'not-an-address' is not an IPv4 or IPv6 address" \
	"$VIGIL" beat --id 1 --target not-an-address --count 1
expect_fail "vigil beat --id 5-3 (range ends before it starts)" 2 "ends before it starts" \
	"$VIGIL" beat --id 5-3 --target 127.0.0.1 --count 1
expect_fail "vigil status with nothing pinned" nz "no vigil instance is pinned at $PIN" \
	"$VIGIL" status --pin-root "$PIN"
expect_fail "vigil status --json with nothing pinned" nz "no vigil instance is pinned at $PIN" \
	"$VIGIL" status --json --pin-root "$PIN"
expect_fail "vigil agent list with nothing pinned" nz "no vigil instance is pinned" \
	"$VIGIL" agent list --pin-root "$PIN"
expect_fail "vigil detach with nothing pinned" nz "nothing to detach" \
	"$VIGIL" detach --pin-root "$PIN"
expect_fail "vigil events without an event log" nz "$DB: cannot open event log" \
	"$VIGIL" events --db "$DB"
expect_fail "vigil log query without an event log" nz "$DB: cannot open event log" \
	"$VIGIL" log query --db "$DB"
# A refusal comes before the expensive work: verifying the programs takes
# seconds of CPU on a busy machine (a refused run was still loading after
# 10 s at a load average of 17). The bpf(2) calls of a refused run, traced:
# BPF_PROG_LOAD must not be among them.
STRACE=(strace -f -qq -e trace=bpf -o "$E2E_TMP/refused.bpf")
loaded_nothing() {
	! grep -q BPF_PROG_LOAD "$E2E_TMP/refused.bpf"
}
expect_fail "vigil run --mode native --iface lo (lo has no native XDP)" nz \
	"native XDP not supported on lo.*use --mode skb" \
	"${STRACE[@]}" "$VIGIL" run --iface lo --mode native --keys "$KEYS" --pin-root "$PIN" --db "$DB" \
	--events-file "$EV"
check "... refused before loading any program" loaded_nothing
no_xdp_on_lo() {
	! ip -n "$NS" -d link show lo | grep -q 'prog/xdp'
}
check "after the failed native attach, lo has no XDP program" no_xdp_on_lo

# Problems found only after loading: the half-started instance is removed,
# so a corrected run starts afresh instead of adopting it.
# expect_undone DESCRIPTION REGEX CMD...
expect_undone() {
	local what=$1 re=$2 rc problems=()
	shift 2
	timeout 10 nsenter --net="/run/netns/$NS" "$@" >"$E2E_TMP/out" 2>"$E2E_TMP/err" </dev/null
	rc=$?
	[ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] || problems+=("exit $rc")
	grep -qE -- "$re" "$E2E_TMP/err" || problems+=("stderr does not match /$re/")
	[ -e "$PIN" ] && problems+=("$PIN exists afterwards")
	no_xdp_on_lo || problems+=("XDP still attached to lo")
	if [ ${#problems[@]} -eq 0 ]; then
		ok "$what: exit $rc, \"$(grep -E -- "$re" "$E2E_TMP/err" | head -n 1)\", nothing left behind"
	else
		not_ok "$what ($(IFS=';'; echo "${problems[*]}"))"
		show_file stderr "$E2E_TMP/err" 5
		"$VIGIL" detach --pin-root "$PIN" >/dev/null 2>&1
		rm -rf -- "$PIN"
	fi
}
: >"$E2E_TMP/not-a-dir"
expect_undone "vigil run with an unusable --db" "not-a-dir/vigil.db: cannot" \
	"$VIGIL" run "${RUN_SAFE[@]}" --db "$E2E_TMP/not-a-dir/vigil.db"
rm -f -- "$DB" "$DB"-* "$EV"
expect_undone "vigil run with an unusable --events-file" "not-a-dir/ev.jsonl: cannot" \
	"$VIGIL" run "${RUN_SAFE[@]}" --events-file "$E2E_TMP/not-a-dir/ev.jsonl"
rm -f -- "$DB" "$DB"-* "$EV"
printf 'agent 1\nagent 2\nagent 3\n' >"$E2E_TMP/three.conf"
expect_undone "vigil run with more agents than --max-agents" "registers 3 agents, more than --max-agents 2.*larger --max-agents" \
	"${STRACE[@]}" "$VIGIL" run "${RUN_SAFE[@]}" --max-agents 2 --config "$E2E_TMP/three.conf"
check "... refused before loading any program" loaded_nothing
rm -f -- "$EV" "$DB" "$DB"-*

# ------------------------------------------------------ a running instance
cat >"$CONF" <<EOF
defaults interval-min-ms=5 interval-max-ms=1000 multiplier=3
agent 1 name=steady
agent 2 name=to-remove
EOF
start_daemon_or_die "vigil run --mode skb on lo in $NS starts" daemon "$NS" "$PIN" --iface lo \
	--mode skb --config "$CONF" --keys "$KEYS" --db "$DB" --events-file "$EV" --quiet
ok "vigil run --mode skb on lo in $NS starts"
start_beater beat-1 "$NS" --id 1 --target 127.0.0.1 --interval-ms 20 --keys "$KEYS"
start_beater beat-2 "$NS" --id 2 --target 127.0.0.1 --interval-ms 100 --keys "$KEYS"

state_of() {
	agent_field "$(status_json "$PIN")" "$1" state
}
both_alive() {
	[ "$(state_of 1)" = alive ] && [ "$(state_of 2)" = alive ]
}
check "agents 1 and 2 from the agents file become ALIVE" wait_for 5 both_alive

list=$(in_ns "$NS" "$VIGIL" agent list --json --pin-root "$PIN" | jq -sc '[.[] | [.agent_id, .name]] | sort')
check "vigil agent list --json lists the registered agents ($list)" \
	[ "$list" = '[[1,"steady"],[2,"to-remove"]]' ]

expect_fail_running() {
	# Like expect_fail, but the instance exists: check it is unchanged.
	local what=$1 re=$2 before after rc
	shift 2
	before=$(status_json "$PIN" | jq -c '[.agents[] | [.agent_id, .name, .interval_max_ms]] | sort')
	in_ns "$NS" "$@" >"$E2E_TMP/out" 2>"$E2E_TMP/err"
	rc=$?
	after=$(status_json "$PIN" | jq -c '[.agents[] | [.agent_id, .name, .interval_max_ms]] | sort')
	if [ "$rc" -ne 0 ] && [ "$(wc -l <"$E2E_TMP/err")" -eq 1 ] &&
		grep -qE -- "$re" "$E2E_TMP/err" && [ "$before" = "$after" ]; then
		ok "$what: exit $rc, \"$(cat "$E2E_TMP/err")\", registry unchanged"
	else
		not_ok "$what (exit $rc; registry $before -> $after)"
		show_file stderr "$E2E_TMP/err" 5
	fi
}
expect_fail_running "vigil agent add of an id already registered" "agent 1 is already registered" \
	"$VIGIL" agent add --id 1 --name impostor --interval-max-ms 20 --pin-root "$PIN"
expect_fail_running "vigil agent remove of an unknown id" "no agent 99 is registered" \
	"$VIGIL" agent remove --id 99 --pin-root "$PIN"
expect_fail_running "vigil agent add with interval-min-ms > interval-max-ms" \
	"interval-min-ms is larger than interval-max-ms" \
	"$VIGIL" agent add --id 5 --interval-min-ms 50 --interval-max-ms 10 --pin-root "$PIN"
expect_fail_running "vigil agent add with a bad --key" "--key: must be 32 hex digits" \
	"$VIGIL" agent add --id 5 --key 12345 --pin-root "$PIN"
expect_fail_running "vigil agent add without --id" "--id is required" \
	"$VIGIL" agent add --name x --pin-root "$PIN"
expect_fail_running "vigil agent frob" "unknown verb 'agent frob'" \
	"$VIGIL" agent frob --pin-root "$PIN"
check "agent 1 is still ALIVE and keeps its settings after the refused add" \
	[ "$(agent_field "$(status_json "$PIN")" 1 interval_max_ms)" = 1000 ]

# An added agent that never beats: SUSPECT at registration + 2 x 50 ms, DEAD
# 2 x 50 ms later (--dead-misses defaults to 2).
if in_ns "$NS" "$VIGIL" agent add --id 7 --name never-beats --group cli \
	--interval-min-ms 10 --interval-max-ms 50 --multiplier 2 --pin-root "$PIN"; then
	ok "vigil agent add --id 7 succeeds on the running instance"
else
	not_ok "vigil agent add --id 7 succeeds on the running instance"
fi
row=$(status_json "$PIN" | jq -c '.agents[] | select(.agent_id == 7) |
	[.name, .group, .interval_min_ms, .interval_max_ms, .multiplier]')
check "the added agent shows up in vigil status --json with its settings ($row)" \
	[ "$row" = '["never-beats","cli",10,50,2]' ]
in_list=$(in_ns "$NS" "$VIGIL" agent list --pin-root "$PIN" | awk '$1 == 7 { print $2 }')
check "the added agent shows up in vigil agent list" [ "$in_list" = never-beats ]
got7() {
	[ "$(events_where "$EV" '.agent_id == 7 and .kind == "dead"')" -ge 1 ]
}
wait_for 5 got7
kinds7=$(jq -rs '[.[] | select(.agent_id == 7) | .kind] | join(",")' "$EV")
check "the added agent that never beats gets one SUSPECT, then one DEAD ($kinds7)" \
	[ "$kinds7" = "suspect,dead" ]
# A verdict waits for evidence that the receive path has caught up (another
# beat sent after the deadline: here agent 1's, every 20 ms) and says how
# long (held_us); beyond that wait it is at most a tick or two late.
late7=$(jq -rs '[.[] | select(.agent_id == 7) | "\(.late_us)/\(.held_us // 0)"] | join(",")' "$EV")
lateok=$(jq -s '[.[] | select(.agent_id == 7) | select(.late_us < 0 or .late_us - (.held_us // 0) > 4000
	or (.held_us // 0) > 200000 or .unverified)] | length' "$EV")
check "its SUSPECT/DEAD are not early, taken on evidence within the hold bound, and at most 4 ms late beyond the wait for it (late_us/held_us $late7)" [ "$lateok" -eq 0 ]

# An added agent that beats (signed with the key given to agent add) comes up.
# The key never on a command line: a private file for agent add, the
# environment for the beater.
KEY8=$("$VIGIL" key gen --id 8 | awk '{ print $3 }')
(umask 077 && echo "$KEY8" >"$E2E_TMP/key8")
in_ns "$NS" "$VIGIL" agent add --id 8 --key-file "$E2E_TMP/key8" --pin-root "$PIN"
export VIGIL_KEY=$KEY8
start_beater beat-8 "$NS" --id 8 --target 127.0.0.1 --interval-ms 20
unset VIGIL_KEY
up8() { [ "$(events_where "$EV" '.agent_id == 8 and .kind == "up"')" -eq 1 ]; }
agent8_up() {
	wait_for 5 up8 && [ "$(state_of 8)" = alive ]
}
check "an added agent that beats gets an 'up' event and is ALIVE" agent8_up

# Secrets on the command line (docs/security.md): a key given as --key HEX
# is warned about and overwritten in /proc/PID/cmdline; --key - reads it
# from stdin; key files must be private.
start_bg beat-argv "$NS" "$VIGIL" beat --id 900 --target 127.0.0.1 --port 9 --interval-ms 100 \
	--duration 10 --key "$KEY8"
wait_for 3 grep -q "readable by every local user" "$E2E_TMP/beat-argv.err"
cmdline=$(tr '\0' ' ' <"/proc/${PIDS[beat-argv]}/cmdline")
check_sh "vigil beat --key HEX: warned on stderr, and the key is gone from /proc/PID/cmdline ($cmdline)" \
	'grep -q -- "--key: a secret on the command line is readable by every local user" "$E2E_TMP/beat-argv.err" &&
	 [[ $cmdline != *"$KEY8"* ]] && [[ $cmdline == *"--key xxxxxxxx"* ]]'
kill_bg beat-argv
if echo "$KEY8" | in_ns "$NS" "$VIGIL" agent add --id 12 --key - --pin-root "$PIN" 2>"$E2E_TMP/err" &&
	[ ! -s "$E2E_TMP/err" ]; then
	ok "vigil agent add --key - takes the key from stdin, with no warning"
else
	show_file stderr "$E2E_TMP/err" 5
	not_ok "vigil agent add --key - takes the key from stdin, with no warning"
fi
in_ns "$NS" "$VIGIL" agent remove --id 12 --pin-root "$PIN"
(umask 022 && echo "$KEY8" >"$E2E_TMP/key-loose" && make_keys "$E2E_TMP/keys-loose" 8 &&
	chmod 644 "$E2E_TMP/keys-loose")
expect_fail_running "vigil beat --key-file FILE that others can read" \
	"key-loose: the file of --key-file must be owned by you or root and private \(it is uid 0, mode 0644\); fix with: chmod 600" \
	"$VIGIL" beat --id 8 --target 127.0.0.1 --count 1 --key-file "$E2E_TMP/key-loose"
expect_fail_running "vigil beat --keys FILE that others can read" \
	"keys-loose: key file must be owned by you or root and private .*mode 0644" \
	"$VIGIL" beat --id 8 --target 127.0.0.1 --count 1 --keys "$E2E_TMP/keys-loose"
expect_fail_running "vigil agent add with --key and --key-file" "give --key or --key-file, not both" \
	"$VIGIL" agent add --id 12 --key - --key-file "$E2E_TMP/key8" --pin-root "$PIN"
(umask 022 && echo "http://127.0.0.1:9/hook" >"$E2E_TMP/url-loose")
expect_fail_running "vigil run --alert-webhook-file FILE that others can read" \
	"url-loose: the file of --alert-webhook-file must be owned by you or root and private" \
	"$VIGIL" run --no-auth --pin-root "$PIN" --db "$E2E_TMP/never.db" --alert-webhook-file "$E2E_TMP/url-loose"
expect_fail_running "vigil run with --export-nats and --export-nats-file" \
	"give --export-nats or --export-nats-file, not both" \
	"$VIGIL" run --no-auth --pin-root "$PIN" --db "$E2E_TMP/never.db" --export-nats nats://127.0.0.1:9 \
	--export-nats-file "$E2E_TMP/key8"

# Numbers on the command line are decimal, as in the agents file.
in_ns "$NS" "$VIGIL" agent add --id 010 --pin-root "$PIN" 2>"$E2E_TMP/err"
id010=$(status_json "$PIN" | jq -c '[.agents[].agent_id | select(. == 8 or . == 10)] | sort')
check "vigil agent add --id 010 registers agent 10, as 'agent 010' in the agents file would ($id010)" \
	[ "$id010" = "[8,10]" ]
in_ns "$NS" "$VIGIL" agent remove --id 10 --pin-root "$PIN"

# Removing agent 2: stop its beats, then remove it before its deadline
# (3 x 100 ms after its last beat). It must disappear and never be reported.
kill_bg beat-2 KILL
if in_ns "$NS" "$VIGIL" agent remove --id 2 --pin-root "$PIN"; then
	ok "vigil agent remove --id 2 succeeds"
else
	not_ok "vigil agent remove --id 2 succeeds"
fi
T2_NS=$(mono_ns)
st=$(status_json "$PIN")
check "the removed agent is gone from vigil status --json" \
	[ "$(jq '[.agents[] | select(.agent_id == 2)] | length' <<<"$st")" -eq 0 ]
not_listed() {
	! in_ns "$NS" "$VIGIL" agent list --pin-root "$PIN" | awk '{ print $1 }' | grep -qx "$1"
}
check "the removed agent is gone from vigil agent list" not_listed 2
nap 1.5
# Leave out what the agents' own send logs explain (normally nothing), from
# one snapshot of the log (the daemon goes on writing).
EVS=$E2E_TMP/events.snapshot.jsonl
EVF=$E2E_TMP/events.checked.jsonl
snapshot_events "$EV" "$EVS"
: >"$E2E_TMP/excused"
agent_excuse "$EVS" 1
agent_excuse "$EVS" 2 "$T2_NS"
without_excused "$EVS" "$EVF"
n2_after=$(events_where "$EVS" ".agent_id == 2 and .detected_ns >= $T2_NS")
kinds2=$(jq -rs '[.[] | select(.agent_id == 2) | .kind] | join(",")' "$EVF")
check_sh "the removed agent produces no further event (after removal: $n2_after; all: $kinds2)" \
	'[ "$n2_after" -eq 0 ] && [ "$kinds2" = up ]'
check "agent 1 stayed ALIVE throughout, with only its 'up' event" \
	[ "$(jq -rs '[.[] | select(.agent_id == 1) | .kind] | join(",")' "$EVF")" = up ]
check "the daemon is still running" alive daemon

# A removed id can be registered again and starts afresh.
in_ns "$NS" "$VIGIL" agent add --id 2 --name back --pin-root "$PIN"
check "a removed id can be added again (state new, name back)" \
	[ "$(status_json "$PIN" | jq -c '.agents[] | select(.agent_id == 2) | [.state, .name]')" = '["new","back"]' ]

kill_bg daemon TERM
check "the daemon stops on SIGTERM with status 0" [ "$LAST_RC" -eq 0 ]
if in_ns "$NS" "$VIGIL" detach --pin-root "$PIN" 2>"$E2E_TMP/err" && [ ! -e "$PIN" ]; then
	ok "vigil detach removes the instance"
else
	not_ok "vigil detach removes the instance"
	show_file stderr "$E2E_TMP/err"
fi

e2e_finish

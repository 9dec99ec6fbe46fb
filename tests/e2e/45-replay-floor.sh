#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
#
# Recorded beats stay refused when their agent is registered again
# (issue 14, item 1). An agent sends beats 5000, 5001 and 5002 (the last
# `leaving`); an on-path attacker keeps the frames. After each of these the
# same frames are sent again, byte for byte, and must change nothing (the
# agent stays NEW: neither ALIVE nor LEFT, and LEFT would never be watched
# again), while a new beat of the agent is still accepted:
#   1. `vigil agent remove` + `vigil agent add` (the daemon running);
#   2. `vigil detach` + a new `vigil run` (a fresh instance: the floor comes
#      from the event log, saved by the exiting daemon);
#   3. the daemon killed (SIGKILL, nothing saved on the way out) and the
#      pins removed, as a reboot leaves it: the floor comes from the events
#      the log recorded (the new agent left at 6002);
#   4. a plain daemon restart that adopts the instance.
#
# Network: one namespace vg$$f with only loopback (skb-mode XDP on lo).
# shellcheck disable=SC2317
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
e2e_init
need_tools python3 jq

setup_lo_test "vg$$f" floor
make_keys "$KEYS" 7 || die "vigil key gen --id 7"
KEY=$(key_of "$KEYS" 7)
# A long maximum interval: the re-registered agent stays NEW, whatever the
# machine's load, unless a beat is accepted.
echo 'agent 7 name=replayed interval-min-ms=10 interval-max-ms=600000 multiplier=3' >"$CONF"
RUN=(--iface lo --mode skb --config "$CONF" --keys "$KEYS" --db "$DB" --quiet)
FRAMES=$E2E_TMP/frames
INC=1732700000

frames() { # FILE SEQ[:leaving]...: signed beats of agent 7
	local f=$1
	shift
	python3 "$E2E_ROOT/tests/e2e/beat_frames.py" make "$f" 7 "$KEY" "$INC" "$@"
}
send() { in_ns "$NS" python3 "$E2E_ROOT/tests/e2e/beat_frames.py" send "$1" 127.0.0.1; }
field() { agent_field "$(status_json "$PIN")" 7 "$1"; }
is_state() { [ "$(field state)" = "$1" ]; }
refused_count() { # duplicates + replayed of agent 7
	local j
	j=$(status_json "$PIN") || return 1
	echo $(($(agent_field "$j" 7 duplicates) + $(agent_field "$j" 7 replayed)))
}

# replay_refused WHAT FILE N: FILE's N beats, sent again, are all refused and
# agent 7 stays NEW, with no beat accepted.
replay_refused() {
	local what=$1 before
	before=$(refused_count)
	send "$2"
	if wait_for 5 sh -c "[ \"\$(\"$VIGIL\" status --json --pin-root '$PIN' | jq '.agents[] | select(.agent_id == 7) | .duplicates + .replayed')\" -ge $((before + $3)) ]" &&
		is_state new && [ "$(field beats)" -eq 0 ]; then
		ok "$what: the $3 recorded beats are refused as replays, agent 7 stays NEW"
	else
		not_ok "$what: agent 7 is $(field state), $(field beats) beat(s) accepted, $(($(refused_count) - before)) of $3 refused"
	fi
}

# fresh_accepted WHAT SEQ: a new beat of the agent is accepted (ALIVE).
fresh_accepted() {
	frames "$E2E_TMP/fresh" "$2"
	send "$E2E_TMP/fresh"
	check "$1: a new beat (seq $2) is accepted: ALIVE" wait_for 5 is_state alive
}

start_daemon_or_die "vigil run" d1 "$NS" "$PIN" "${RUN[@]}"
frames "$FRAMES" 5000 5001 5002:leaving
send "$FRAMES"
check "beats 5000, 5001, 5002 (leaving) are accepted: agent 7 LEFT at seq 5002" \
	wait_for 5 sh -c "\"$VIGIL\" status --json --pin-root '$PIN' | jq -e '.agents[] | select(.agent_id == 7) | .state == \"left\" and .seq == 5002' >/dev/null"

# ------------------------------------------- 1. remove + add, daemon running
"$VIGIL" agent remove --id 7 --pin-root "$PIN" 2>"$E2E_TMP/remove.err"
check "vigil agent remove --id 7" [ $? -eq 0 ]
"$VIGIL" agent add --id 7 --key "$KEY" --interval-max-ms 600000 --pin-root "$PIN" \
	2>"$E2E_TMP/add.err"
check "vigil agent add --id 7 --key ...: NEW again" is_state new
replay_refused "remove + add" "$FRAMES" 3
fresh_accepted "remove + add" 5003

# --------------------------------------------- 2. detach + run (fresh load)
"$VIGIL" detach --pin-root "$PIN" >/dev/null 2>&1
check "after vigil detach the daemon exits by itself" wait_exit d1 10
start_daemon_or_die "vigil run after detach" d2 "$NS" "$PIN" "${RUN[@]}"
check "a fresh instance (new instance id), agent 7 NEW" is_state new
frames "$E2E_TMP/all" 5000 5001 5002:leaving 5003
replay_refused "detach + run" "$E2E_TMP/all" 4
fresh_accepted "detach + run" 5004

# ------------------------------- 3. killed, pins gone (as after a reboot)
frames "$E2E_TMP/later" 6000 6001 6002:leaving
send "$E2E_TMP/later"
check "beats 6000-6002 (leaving) accepted: LEFT" wait_for 5 is_state left
# Recorded: the LEFT event is in the log before the daemon dies.
check "the LEFT at 6002 is in the event log" wait_for 5 sh -c \
	"\"$VIGIL\" log query --db '$DB' --json | jq -se 'any(.[]; .kind == \"left\" and .seq == 6002)' >/dev/null"
kill_bg d2 KILL
"$VIGIL" detach --pin-root "$PIN" >/dev/null 2>&1
check "SIGKILL and detach: no pins left (as a reboot leaves it)" [ ! -e "$PIN/link" ]
start_daemon_or_die "vigil run after a kill" d3 "$NS" "$PIN" "${RUN[@]}"
replay_refused "kill + detach + run" "$E2E_TMP/later" 3
replay_refused "kill + detach + run (the older beats too)" "$E2E_TMP/all" 4

# ------------------------------------------- 4. daemon restart (adopting)
kill_bg d3 TERM
start_daemon_or_die "vigil run adopting" d4 "$NS" "$PIN" "${RUN[@]}"
replay_refused "daemon restart" "$E2E_TMP/later" 3
fresh_accepted "daemon restart" 6003

kill_bg d4 TERM
e2e_finish

# SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
# shellcheck shell=bash disable=SC2034,SC2317
# (LAST_RC and the helpers are used by the scripts that source this file.)
#
# Shared helpers for the end-to-end tests in tests/e2e/*.sh. Source it first:
#
#   . "$(dirname "$0")/lib.sh"
#
# It gives:
#   ok / not_ok / check / check_sh / note   TAP-like result lines ("ok N - what") and a count
#   e2e_init                     root check, bpffs, temp dir $E2E_TMP, cleanup trap
#   need_tools TOOL...           the test dies unless every TOOL is installed
#   setup_veth_pair              namespaces $NS_MON and $NS_AGENT joined by veth
#                                $IF_MON (198.18.0.1/24, fd00::1/64) <->
#                                $IF_AGENT (198.18.0.2/24, fd00::2/64)
#   setup_lo_ns NAME             a namespace with only loopback, up
#   new_lo_monitor NS VAR SUFFIX such a namespace and a pin root VAR for its monitor
#   setup_lo_test NS SUFFIX      the same as NS and PIN, and the usual file names
#                                under $E2E_TMP: DB, EV, CONF, KEYS
#   in_ns NS CMD...              run CMD in NS's network namespace only (keeps
#                                the host's /sys/fs/bpf, unlike `ip netns exec`)
#   start_bg NAME NS CMD...      start CMD in the background in NS, remember its
#                                pid (${PIDS[NAME]}) for cleanup; output in
#                                $E2E_TMP/NAME.out and NAME.err
#   start_beater NAME NS ARGS... `vigil beat ARGS` like start_bg, real-time
#                                priority, with its send log ($E2E_TMP/send.NAME.jsonl)
#   agent_excuse EV AGENTS [T]   events the agents' own send logs explain (the
#   without_excused EV OUT       agent did not beat) are told apart from monitor
#                                bugs and left out of the counts (excuse.py)
#   snapshot_events EV COPY      the complete lines of a live event log, for
#                                excusing and counting the same events
#   new_pin_root VAR SUFFIX      VAR=/sys/fs/bpf/vg$$-SUFFIX, detached at cleanup
#   wait_for SECONDS CMD...      poll CMD every 50 ms until it succeeds
#   make_keys FILE A-B           agent keys for `vigil run --keys` / `vigil beat --keys`
#   start_daemon NAME NS PIN ARGS `vigil run` in the background, waits until pinned
#   start_daemon_or_die WHAT NAME NS PIN ARGS  the same; if it fails, its stderr and die WHAT
#   check_daemon_says WHAT NAME SECONDS RE  its stderr has a line matching RE in time
#   start_http_receiver NS WHAT MODE ARGS  http_receiver.py in NS; sets URL, RLOG, MODE
#   check_replay DB PIN WHAT [FAIL]  `vigil log replay --check` as one result line
#   run_refused NS WANT RE CMD... / refusal_result WHAT CHARS
#                                a command that must refuse with one line on stderr
#   expect_usage_error WHAT RE CMD...  CMD exits 2 with one line on stderr matching RE
#   status_json PIN, log_json DB, events_where LOG FILTER, count_state, agent_field
#   e2e_finish                   exit status: non-zero if any check failed
#
# Pass `vigil run` a --db under $E2E_TMP (start_daemon adds one if missing):
# the default is the host's /var/lib/vigil/vigil.db. E2E_KEEP=1 keeps
# $E2E_TMP (logs, event logs, probe data) after the run.
#
# Everything a test creates (processes, namespaces, pins, temp files) is
# removed by e2e_cleanup, which runs on EXIT, INT and TERM even after a
# failure. Traffic stays inside the test's own namespaces: 198.18.0.0/15 and
# fd00::/8 only.

set -u
export LC_ALL=C

E2E_ROOT=${VIGIL_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
VIGIL=${VIGIL_BIN:-$E2E_ROOT/build/vigil}

E2E_N=0
E2E_FAILED=0
E2E_TMP=
declare -A PIDS=()
E2E_NETNS=()
E2E_PINS=()
E2E_MOUNTS=() # mount points (e2e_mount), unmounted at exit

ok() {
	E2E_N=$((E2E_N + 1))
	echo "ok $E2E_N - $*"
}

not_ok() {
	E2E_N=$((E2E_N + 1))
	E2E_FAILED=$((E2E_FAILED + 1))
	echo "not ok $E2E_N - $*"
}

note() {
	local line
	while IFS= read -r line; do
		echo "# $line"
	done <<<"$*"
}

# check DESCRIPTION CMD...: one result line for whether CMD succeeds.
check() {
	local what=$1
	shift
	if "$@"; then
		ok "$what"
	else
		not_ok "$what"
	fi
}

# check_sh DESCRIPTION 'SHELL CONDITION': the same for a compound condition.
check_sh() {
	if eval "$2"; then
		ok "$1"
	else
		not_ok "$1"
	fi
}

# Show a file's contents as comment lines (for failures).
show_file() {
	local label=$1 f=$2 max=${3:-30}
	[ -s "$f" ] || return 0
	echo "# --- $label ($f, last $max lines)"
	tail -n "$max" "$f" | sed 's/^/#   /'
}

die() {
	not_ok "$*"
	exit 1
}

e2e_init() {
	[ "$(id -u)" -eq 0 ] || {
		echo "# skip: must run as root"
		echo "not ok 1 - e2e tests need root"
		exit 1
	}
	[ -x "$VIGIL" ] || {
		echo "not ok 1 - $VIGIL is not built (run make)"
		exit 1
	}
	for tool in ip nsenter jq python3; do
		command -v "$tool" >/dev/null || {
			echo "not ok 1 - $tool is missing (scripts/deps.sh installs it)"
			exit 1
		}
	done
	if ! mountpoint -q /sys/fs/bpf; then
		mount -t bpf bpf /sys/fs/bpf || {
			echo "not ok 1 - cannot mount bpffs at /sys/fs/bpf"
			exit 1
		}
	fi
	E2E_TMP=$(mktemp -d "/tmp/vg$$.XXXXXX") || exit 1
	trap e2e_cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
}

# need_tools TOOL...: die (one result line) unless every TOOL is on PATH.
need_tools() {
	local tool
	for tool in "$@"; do
		command -v "$tool" >/dev/null || die "$tool is missing (scripts/deps.sh installs it)"
	done
}

e2e_cleanup() {
	local rc=$? name pid ns pin pids
	trap - EXIT INT TERM
	[ -n "$E2E_NAP" ] && kill -KILL "$E2E_NAP" 2>/dev/null
	for name in "${!PIDS[@]}"; do
		pid=${PIDS[$name]}
		kill -KILL "$pid" 2>/dev/null
	done
	for name in "${!PIDS[@]}"; do
		wait "${PIDS[$name]}" 2>/dev/null
	done
	for pin in "${E2E_PINS[@]}"; do
		if [ -e "$pin" ]; then
			"$VIGIL" detach --pin-root "$pin" >/dev/null 2>&1
			rm -rf -- "$pin"
		fi
	done
	for ns in "${E2E_NETNS[@]}"; do
		# Anything still running in our namespace was started by us.
		pids=$(ip netns pids "$ns" 2>/dev/null)
		# shellcheck disable=SC2086 # one pid per word
		[ -n "$pids" ] && kill -KILL $pids 2>/dev/null
		ip netns del "$ns" 2>/dev/null
	done
	for pin in "${E2E_MOUNTS[@]}"; do
		umount -l "$pin" 2>/dev/null
	done
	if [ -n "$E2E_TMP" ]; then
		# E2E_KEEP=1 keeps the logs (event logs, daemon output) for a look.
		if [ -n "${E2E_KEEP:-}" ]; then
			echo "# kept $E2E_TMP"
		else
			rm -rf -- "$E2E_TMP"
		fi
	fi
	exit "$rc"
}

# e2e_mount ARGS... DIR: mount(8) ARGS on DIR (the last argument), which the
# cleanup unmounts however the test ends.
e2e_mount() {
	mount "$@" || return 1
	E2E_MOUNTS+=("${!#}")
}

e2e_finish() {
	if [ "$E2E_FAILED" -ne 0 ]; then
		echo "# $E2E_FAILED of $E2E_N checks failed"
		exit 1
	fi
	echo "# all $E2E_N checks passed"
	exit 0
}

new_netns() {
	local ns=$1
	ip netns add "$ns" || return 1
	E2E_NETNS+=("$ns")
	ip -n "$ns" link set lo up
}

# Two namespaces joined by a veth pair. Sets NS_MON, NS_AGENT, IF_MON, IF_AGENT.
setup_veth_pair() {
	NS_MON=vg$$a
	NS_AGENT=vg$$b
	IF_MON=vg$$m
	IF_AGENT=vg$$g
	new_netns "$NS_MON" && new_netns "$NS_AGENT" || return 1
	ip link add "$IF_MON" netns "$NS_MON" type veth peer name "$IF_AGENT" netns "$NS_AGENT" ||
		return 1
	ip -n "$NS_MON" addr add 198.18.0.1/24 dev "$IF_MON" &&
		ip -n "$NS_MON" addr add fd00::1/64 dev "$IF_MON" nodad &&
		ip -n "$NS_AGENT" addr add 198.18.0.2/24 dev "$IF_AGENT" &&
		ip -n "$NS_AGENT" addr add fd00::2/64 dev "$IF_AGENT" nodad &&
		ip -n "$NS_MON" link set "$IF_MON" up &&
		ip -n "$NS_AGENT" link set "$IF_AGENT" up || return 1
	# Wait for carrier on both ends, so the first beats are not lost.
	wait_for 5 sh -c "ip -n $NS_MON link show $IF_MON | grep -q LOWER_UP &&
		ip -n $NS_AGENT link show $IF_AGENT | grep -q LOWER_UP"
}

# A namespace with only loopback (up).
setup_lo_ns() {
	new_netns "$1"
}

# new_lo_monitor NS VAR SUFFIX: the namespace NS with only loopback (the test
# dies if it cannot be made) and a pin root for the monitor in it
# (new_pin_root VAR SUFFIX).
new_lo_monitor() {
	setup_lo_ns "$1" || die "creating namespace $1"
	new_pin_root "$2" "$3"
}

# setup_lo_test NS SUFFIX: the layout of a test with one monitor on a
# loopback-only namespace: NS (new_lo_monitor NS PIN SUFFIX), and under
# $E2E_TMP the files most tests give it: DB (vigil.db, the durable event
# log), EV (events.jsonl, its JSON-lines export), CONF (agents.conf) and
# KEYS (keys). Nothing creates the files; a test uses those it needs.
setup_lo_test() {
	NS=$1
	new_lo_monitor "$NS" PIN "$2"
	DB=$E2E_TMP/vigil.db
	EV=$E2E_TMP/events.jsonl
	CONF=$E2E_TMP/agents.conf
	KEYS=$E2E_TMP/keys
}

# Run a command in a namespace's network namespace only. The mount namespace
# stays the host's, so /sys/fs/bpf pins are shared with the test.
in_ns() {
	local ns=$1
	shift
	nsenter --net="/run/netns/$ns" "$@"
}

# start_bg NAME NS CMD...: background process in NS; nsenter execs CMD, so the
# pid is CMD's own.
start_bg() {
	local name=$1 ns=$2
	shift 2
	nsenter --net="/run/netns/$ns" "$@" >"$E2E_TMP/$name.out" 2>"$E2E_TMP/$name.err" &
	PIDS[$name]=$!
}

# start_beater NAME NS ARGS...: `vigil beat ARGS` in the background, at a
# real-time priority when the system allows it, so that other work on the
# machine seldom holds the agents off. When it does, the beater's send log
# ($E2E_TMP/send.NAME.jsonl: when each beat really went out) tells that
# agent-side silence from a monitor that missed beats sent in time.
BEAT_PRIO=()
if chrt -f 10 true 2>/dev/null; then
	BEAT_PRIO=(chrt -f 10)
fi
start_beater() {
	local name=$1 ns=$2
	shift 2
	start_bg "$name" "$ns" "${BEAT_PRIO[@]}" "$VIGIL" beat --send-log "$E2E_TMP/send.$name.jsonl" "$@"
}

# start_canary NS TARGET KEYS [ID]: a canary agent (default id 99, which the
# agents file must register with interval-min-ms <= 5) beating every 5 ms
# through the same path as the agents. Its beats are the monitor's evidence
# that its receive path is current (docs/design.md): with it, a silent
# agent's verdict waits at most ~5 ms for that evidence, however sparse the
# agents under test beat.
CANARY_ID=99
start_canary() {
	start_beater canary "$1" --id "${4:-$CANARY_ID}" --target "$2" --interval-ms 5 --keys "$3"
}

# rx_record PIN: the monitor's record of its receive path and its verdicts
# (vigil status), as notes: lag per receive queue, episodes behind, held and
# corrected verdicts.
rx_record() {
	status_json "$1" | jq -r '"monitor: sweeper behind \(.sweeper.behind_episodes) times (worst \(.sweeper.behind_max_ticks) ticks); " +
		([.receive_queues[] | "queue \(.queue): \(.beats) beats, \(.behind_episodes) episodes behind (worst \(.behind_max_ns / 1e6) ms)"] | join("; ")) +
		"; verdicts held \(.stats.verdicts_held) (evidence \(.stats.held_decided), unverified \(.stats.held_unverified), dropped \(.stats.held_cancelled), late beat \(.stats.held_by_beat); longest \(.stats.held_max_ns / 1e6) ms), corrected \(.stats.corrected)"' |
		while IFS= read -r l; do note "$l"; done
}

EXCUSE_PY=$E2E_ROOT/tests/e2e/excuse.py

# mono_ns: CLOCK_MONOTONIC in ns, the clock of the events' *_ns fields.
mono_ns() {
	python3 "$EXCUSE_PY" now
}

# agent_excuse EV AGENTS [UNTIL_NS]: add to $E2E_TMP/excused the event_seq of
# every non-`up` event of AGENTS (e.g. 1-45) detected before UNTIL_NS that the
# agents' own send logs explain (they sent nothing between their last
# accepted beat and the deadline); print a note when there are any.
agent_excuse() {
	local ev=$1 agents=$2 until=${3:-} summary
	summary=$(python3 "$EXCUSE_PY" excuse --send-logs "$E2E_TMP" --events "$ev" \
		--agents "$agents" ${until:+--until "$until"} 2>&1 >>"$E2E_TMP/excused")
	case $summary in
	0\ of\ 0\ *) ;;
	*) note "agents $agents: $summary" ;;
	esac
}

# snapshot_events EV COPY: COPY := the complete lines of the event log EV
# now. A running daemon keeps appending (on a busy machine, events that the
# agents' own stalls explain), and a batch can be half written: excusing and
# counting must read one and the same set of events.
snapshot_events() {
	head -n "$(wc -l <"$1")" "$1" >"$2"
}

# without_excused EV OUT: the agents' events of EV except those in
# $E2E_TMP/excused (the monitor's own health events, monitor_*, are left
# out too: they are about the monitor, not an agent; rx_record shows them).
without_excused() {
	touch "$E2E_TMP/excused"
	jq -c --slurpfile x "$E2E_TMP/excused" \
		'select((.kind | startswith("monitor_") | not) and (.event_seq as $s | any($x[]; . == $s) | not))' \
		"$1" >"$2"
}

# event_tally EV: note each agent's events in EV but for a lone 'up', as
# "agent: kind,kind" (what an event count that came out wrong was made of).
event_tally() {
	note "events beyond one 'up' per agent: $(jq -rs 'group_by(.agent_id) | map(select(map(.kind) != ["up"]) |
		"\(.[0].agent_id): \(map(.kind) | join(","))") | join("; ")' "$1")"
}

# alive NAME: is the remembered process still running?
alive() {
	kill -0 "${PIDS[$1]}" 2>/dev/null
}

# kill_bg NAME [SIG]: signal, wait for the exit, and forget the process.
# The exit status is left in LAST_RC.
kill_bg() {
	local name=$1 sig=${2:-TERM} pid=${PIDS[$1]:-}
	LAST_RC=
	[ -n "$pid" ] || return 0
	kill "-$sig" "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	LAST_RC=$?
	unset "PIDS[$name]"
}

# wait_exit NAME SECONDS: wait for a process to end by itself; LAST_RC = status.
wait_exit() {
	local name=$1 secs=$2 pid=${PIDS[$1]} i
	for ((i = 0; i < secs * 20; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	kill -0 "$pid" 2>/dev/null && return 1
	wait "$pid" 2>/dev/null
	LAST_RC=$?
	unset "PIDS[$name]"
	return 0
}

# now: the current time in seconds (fractional), for sleep_rest.
now() {
	date +%s.%N
}

# nap SECONDS: sleep, but let INT/TERM interrupt it at once (bash runs a trap
# only after a foreground command ends; `wait` returns on a trapped signal).
E2E_NAP=
nap() {
	sleep "$1" &
	E2E_NAP=$!
	wait "$E2E_NAP"
	E2E_NAP=
}

# sleep_rest START SECONDS: sleep until SECONDS after START (a `now` value).
sleep_rest() {
	local d
	d=$(awk -v t="$1" -v s="$2" -v now="$(now)" 'BEGIN { d = s - (now - t); printf "%.3f", (d > 0 ? d : 0) }')
	nap "$d"
}

# new_pin_root VAR SUFFIX: set VAR to /sys/fs/bpf/vg$$-SUFFIX and remember it
# for cleanup. (Not a $(...) function: the subshell would forget it.)
new_pin_root() {
	printf -v "$1" '%s' "/sys/fs/bpf/vg$$-$2"
	E2E_PINS+=("/sys/fs/bpf/vg$$-$2")
}

wait_for() {
	local secs=$1 i
	shift
	for ((i = 0; i < secs * 20; i++)); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.05
	done
	return 1
}

# start_daemon NAME NS PIN_ROOT ARGS...: `vigil run` in the background; waits
# until the instance is pinned (or the daemon died). Returns 0 when it runs.
# Without --db in ARGS the event log goes to $E2E_TMP/NAME.db, never to the
# host's default (/var/lib/vigil).
start_daemon() {
	local name=$1 ns=$2 pin=$3 a
	local db=("--db" "$E2E_TMP/$1.db")
	shift 3
	for a in "$@"; do
		[[ $a == --db || $a == --db=* ]] && db=()
	done
	start_bg "$name" "$ns" "$VIGIL" run --pin-root "$pin" "${db[@]}" "$@"
	wait_for 20 sh -c "[ -e '$pin/link' ] && grep -qE 'attached to|adopted' '$E2E_TMP/$name.err' || ! kill -0 ${PIDS[$name]}"
	alive "$name" && [ -e "$pin/link" ]
}

# start_daemon_or_die WHAT NAME NS PIN_ROOT ARGS...: start_daemon NAME NS
# PIN_ROOT ARGS; when the daemon does not start, show its stderr and die
# with WHAT (a test that cannot go on without it).
start_daemon_or_die() {
	local what=$1 name=$2
	shift
	start_daemon "$@" && return 0
	show_file "vigil run stderr" "$E2E_TMP/$name.err"
	die "$what"
}

# check_daemon_says WHAT NAME SECONDS REGEX: the daemon NAME (start_daemon)
# prints a line matching REGEX (grep) on stderr within SECONDS: "ok - WHAT",
# or its stderr and "not ok - WHAT", and it returns 1.
check_daemon_says() {
	local what=$1 err=$E2E_TMP/$2.err
	if wait_for "$3" grep -q -- "$4" "$err"; then
		ok "$what"
		return 0
	fi
	show_file "vigil run stderr" "$err"
	not_ok "$what"
	return 1
}

# start_http_receiver NS WHAT MODE [ARGS...]: the webhook receiver
# (http_receiver.py, as "receiver") on 127.0.0.1 in NS, answering as MODE
# says (ok, fail, hang), with any further ARGS (--fail-body FILE). Waits
# until it listens, and sets URL (its webhook address), RLOG (its log, empty
# at the start: a JSON line per request) and MODE (the file the test writes
# to switch how it answers). When it does not start: its stderr, and the
# test dies with WHAT.
start_http_receiver() {
	local ns=$1 what=$2
	RLOG=$E2E_TMP/receiver.jsonl
	MODE=$E2E_TMP/receiver.mode
	echo "$3" >"$MODE"
	: >"$RLOG"
	shift 3
	start_bg receiver "$ns" python3 "$E2E_ROOT/tests/e2e/http_receiver.py" \
		--port-file "$E2E_TMP/receiver.port" --log "$RLOG" --mode-file "$MODE" "$@"
	if ! wait_for 10 test -s "$E2E_TMP/receiver.port"; then
		show_file "receiver stderr" "$E2E_TMP/receiver.err"
		die "$what"
	fi
	URL="http://127.0.0.1:$(cat "$E2E_TMP/receiver.port")/hook"
}

# check_replay DB PIN_ROOT WHAT [FAIL_WHAT]: one result line for `vigil log
# replay --check` (the durable log agrees with the maps): "WHAT: <its last
# line>", or its output and FAIL_WHAT (default WHAT) when it disagrees.
E2E_REPLAYS=0
check_replay() {
	local out
	E2E_REPLAYS=$((E2E_REPLAYS + 1))
	out=$E2E_TMP/replay$E2E_REPLAYS.out
	if "$VIGIL" log replay --check --db "$1" --pin-root "$2" >"$out" 2>&1; then
		ok "$3: $(tail -n 1 "$out")"
	else
		show_file "vigil log replay --check" "$out"
		not_ok "${4:-$3}"
	fi
}

# run_refused NS WANT REGEX CMD...: run CMD in NS (stdin /dev/null, killed
# after 10 s; stdout in $E2E_TMP/out, stderr in $E2E_TMP/err) as a command
# that must refuse, and list in PROBLEMS what is wrong with its refusal: an
# exit status other than WANT ("nz": any but 0), still running after 10 s,
# not exactly one line on stderr, or one that does not match REGEX. Its exit
# status is in REFUSED_RC. The caller adds its own problems, then calls
# refusal_result.
run_refused() {
	local ns=$1 want=$2 re=$3 lines
	shift 3
	PROBLEMS=()
	timeout 10 nsenter --net="/run/netns/$ns" "$@" >"$E2E_TMP/out" 2>"$E2E_TMP/err" </dev/null
	REFUSED_RC=$?
	lines=$(wc -l <"$E2E_TMP/err")
	if [ "$want" = nz ]; then
		[ "$REFUSED_RC" -ne 0 ] || PROBLEMS+=("exit 0")
	else
		[ "$REFUSED_RC" -eq "$want" ] || PROBLEMS+=("exit $REFUSED_RC, expected $want")
	fi
	[ "$REFUSED_RC" -eq 124 ] && PROBLEMS+=("still running after 10 s")
	[ "$lines" -eq 1 ] || PROBLEMS+=("$lines lines on stderr")
	grep -qE -- "$re" "$E2E_TMP/err" || PROBLEMS+=("stderr does not match /$re/")
}

# refusal_result WHAT CHARS: the result line of the last run_refused: "WHAT:
# exit RC, "<the first CHARS bytes of its stderr>"" when PROBLEMS is empty;
# otherwise "WHAT (the problems)" and its stderr, and it returns 1 (for the
# caller to clean up what the refused command left).
refusal_result() {
	if [ ${#PROBLEMS[@]} -eq 0 ]; then
		ok "$1: exit $REFUSED_RC, \"$(head -c "$2" "$E2E_TMP/err")\""
		return 0
	fi
	not_ok "$1 ($(IFS=';'; echo "${PROBLEMS[*]}"))"
	show_file stderr "$E2E_TMP/err" 5
	return 1
}

# expect_usage_error WHAT REGEX CMD...: CMD exits 2 with one line on stderr
# that matches REGEX: "WHAT: exit 2, "<the line>"", or its stderr and
# "WHAT (exit RC)".
expect_usage_error() {
	local what=$1 re=$2 rc
	shift 2
	"$@" >"$E2E_TMP/usage.out" 2>"$E2E_TMP/usage.err"
	rc=$?
	if [ "$rc" -eq 2 ] && [ "$(wc -l <"$E2E_TMP/usage.err")" -eq 1 ] &&
		grep -qE -- "$re" "$E2E_TMP/usage.err"; then
		ok "$what: exit 2, \"$(cat "$E2E_TMP/usage.err")\""
	else
		show_file stderr "$E2E_TMP/usage.err" 5
		not_ok "$what (exit $rc)"
	fi
}

# make_keys FILE IDS: a monitor key file (root-owned, mode 0600) with one
# random key per agent in IDS (A-B). Beaters sign with the same file.
make_keys() {
	(umask 077 && "$VIGIL" key gen --id "$2" >"$1")
}

# key_of FILE ID: the hex key of agent ID (key id 0) in a key file.
key_of() {
	awk -v id="$2" '$1 == id && $2 == 0 { print $3 }' "$1"
}

# status_json PIN: `vigil status --json` (the daemon need not run).
status_json() {
	"$VIGIL" status --json --pin-root "$1"
}

# agent_field JSON ID FIELD: one field of one agent in a status document.
agent_field() {
	jq -r --argjson id "$2" ".agents[] | select(.agent_id == \$id) | .$3" <<<"$1"
}

# count_state JSON STATE: how many agents are in STATE.
count_state() {
	jq --arg s "$2" '[.agents[] | select(.state == $s)] | length' <<<"$1"
}

# log_json DB: the durable event log (SQLite) as JSON lines.
log_json() {
	"$VIGIL" log query --db "$1" --json
}

# same_events JSONL DB: the JSON-lines export and the durable log hold the
# same events (event_seq, agent, kind, instance).
same_events() {
	local a b
	a=$(jq -sc 'map([.event_seq, .agent_id, .kind, .instance]) | sort' "$1") || return 1
	b=$(log_json "$2" | jq -sc 'map([.event_seq, .agent_id, .kind, .instance]) | sort') || return 1
	[ -n "$a" ] && [ "$a" = "$b" ]
}

# events_where LOG JQ_FILTER: the number of events matching a jq condition.
events_where() {
	jq -s "[.[] | select($2)] | length" "$1"
}

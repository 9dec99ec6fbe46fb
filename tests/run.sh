#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
#
# Test runner behind `make test` (which builds build/vigil, build/test_logic
# and build/test_prog first). Needs root.
#
#   tests/run.sh            run everything
#   tests/run.sh PATTERN    run only the programs whose path contains PATTERN
#                           (e.g. "test_logic", "e2e", "e2e/20_")
#
# Runs, in order: build/test_logic, build/test_policy, build/test_common, build/test_auth,
# build/test_agent, build/test_eventlog, build/test_prog,
# build/test_diff, the fuzzer smoke pass, then every executable
# tests/e2e/*.sh in sorted order, each from the repository root with stdin
# from /dev/null, under `timeout` (TEST_TIMEOUT seconds, default 600).
#
# Each program prints TAP-like lines: "ok N - what", "not ok N - what" and
# "# skip reason". The runner streams them to the console, keeps a copy in
# build/test-logs/NAME.log and counts the "ok"/"not ok" lines. A program also
# counts one failure when it times out, when it exits non-zero without a
# "not ok" line, or when it exits 0 having run no test.
#
# Afterwards it checks that nothing was left behind: network namespaces named
# vg*, and vg*/vigil* entries under /sys/fs/bpf. Leftovers count one failure
# and are removed (processes still inside a namespace are named, not killed).
# Entries that already existed before the run are noted and left alone: they
# are not this run's, and on a shared machine they may be someone else's.
#
# Programs get VIGIL_ROOT (repository root) and VIGIL_BIN (build/vigil) in
# their environment. The last line of output is always "N passed, M failed";
# the exit status is 0 iff M is 0.
set -u
export LC_ALL=C

if [ "$(id -u)" -ne 0 ]; then
	echo "tests/run.sh: must run as root (tests load BPF programs and create network namespaces)" >&2
	exit 1
fi

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 1
export VIGIL_ROOT="$ROOT"
export VIGIL_BIN="$ROOT/build/vigil"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1}"

TIMEOUT=${TEST_TIMEOUT:-600}
case $TIMEOUT in
'' | *[!0-9]*)
	echo "tests/run.sh: TEST_TIMEOUT must be a whole number of seconds, got '$TIMEOUT'" >&2
	exit 1
	;;
esac
PATTERN=${1:-}
LOGDIR=$ROOT/build/test-logs
BPFFS=/sys/fs/bpf

passed=0
failed=0
skips=0
failures=() # one line per failed case, for the summary
results=()  # one line per program, for the summary

fail() {
	failed=$((failed + 1))
	failures+=("$1")
}

# ------------------------------------------------------------ leftovers

# Print one leftover per line: "netns NAME" or "pin PATH". Tests name what
# they create vg<their pid>...; an entry whose pid is still a live process
# belongs to a test that is running right now (another session's, on a
# shared development machine) and is not ours to judge or remove.
list_leftovers() {
	{
		ip netns list 2>/dev/null | awk '$1 ~ /^vg/ { print "netns " $1 }'
		if [ -d "$BPFFS" ]; then
			find "$BPFFS" -mindepth 1 \( -name 'vg*' -o -name 'vigil*' \) -prune \
				-printf 'pin %p\n' 2>/dev/null
		fi
	} | while read -r kind what; do
		pid=$(basename "$what" | sed -n 's/^vg\([0-9][0-9]*\).*/\1/p')
		[ -n "$pid" ] && [ -d "/proc/$pid" ] && continue
		echo "$kind $what"
	done
}

# Describe leftovers on one line; for a namespace, name the processes still
# in it (deleting the name does not stop them, and we do not kill them).
describe_leftovers() {
	local kind what pids out=""
	while read -r kind what; do
		[ -n "$kind" ] || continue
		out+="${out:+, }$kind $what"
		if [ "$kind" = netns ]; then
			pids=$(ip netns pids "$what" 2>/dev/null | tr '\n' ' ')
			[ -n "${pids// /}" ] && out+=" (processes still inside: ${pids% })"
		fi
	done
	echo "$out"
}

remove_leftovers() {
	local kind what
	while read -r kind what; do
		case $kind in
		netns)
			ip netns delete "$what" 2>/dev/null
			;;
		pin)
			rm -rf -- "$what" 2>/dev/null
			;;
		esac
	done
}

# --------------------------------------------------------------- programs

programs=(build/test_logic build/test_policy build/test_common build/test_auth build/test_agent build/test_eventlog build/test_prog build/test_diff tests/fuzz/smoke.sh)
for f in tests/e2e/*.sh; do
	[ -e "$f" ] || continue
	if [ -x "$f" ]; then
		programs+=("$f")
	elif [[ $(basename "$f") != lib* ]]; then # lib*.sh: sourced helpers
		echo "# note: $f is not executable; not run"
	fi
done

selected=()
for p in "${programs[@]}"; do
	[[ -z $PATTERN || $p == *"$PATTERN"* ]] && selected+=("$p")
done

# Count lines matching an extended regex in a file (0 when none).
count() {
	grep -cE "$1" "$2" 2>/dev/null || true
}

# Run one program under timeout, streaming its output to the console and to
# $2; its exit status goes to $RUNTMP/rc. timeout puts the program in its own
# process group (so a timeout kills everything it started), which also keeps
# the terminal's Ctrl-C from reaching it: on INT/TERM we stop it ourselves.
run_timed() {
	local prog=$1 log=$2 pipe
	rm -f "$RUNTMP/pid" "$RUNTMP/rc"
	{
		timeout --kill-after=10 "$TIMEOUT" "./$prog" </dev/null 2>&1 &
		echo $! >"$RUNTMP/pid"
		wait $!
		echo $? >"$RUNTMP/rc"
	} | tee "$log" &
	pipe=$!
	wait "$pipe"
	while kill -0 "$pipe" 2>/dev/null; do
		# wait was cut short by a trapped signal
		[ -s "$RUNTMP/pid" ] && kill -TERM "$(cat "$RUNTMP/pid")" 2>/dev/null
		wait "$pipe"
	done
	rm -f "$RUNTMP/pid"
}

run_one() {
	local prog=$1 name log rc ok nok skip
	name=$(basename "$prog" .sh)
	log=$LOGDIR/$name.log

	echo "# ---- $prog"
	if [ ! -x "$prog" ]; then
		echo "not built: $prog (run 'make test')" >"$log"
		echo "# $prog: not built (run 'make test')"
		fail "$prog: not built"
		results+=("$prog: not built")
		return
	fi

	run_timed "$prog" "$log"
	rc=$(cat "$RUNTMP/rc" 2>/dev/null)
	rc=${rc:-255}
	# Tolerate CRLF output.
	sed -i 's/\r$//' "$log"

	ok=$(count '^ok ' "$log")
	nok=$(count '^not ok ' "$log")
	# "# skip reason" lines and TAP's "ok N - what # SKIP reason" (counted as passed)
	skip=$(grep -ciE '^# ?skip|^ok .*# ?skip' "$log" || true)
	passed=$((passed + ok))
	failed=$((failed + nok))
	skips=$((skips + skip))
	while IFS= read -r line; do
		failures+=("$prog: $line")
	done < <(grep -E '^not ok ' "$log")

	if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
		fail "$prog: timed out after ${TIMEOUT}s (exit $rc)"
		echo "# $prog: timed out after ${TIMEOUT}s"
	elif [ "$rc" -ne 0 ] && [ "$nok" -eq 0 ]; then
		fail "$prog: exited with status $rc"
	elif [ "$rc" -eq 0 ] && [ "$ok" -eq 0 ] && [ "$nok" -eq 0 ]; then
		fail "$prog: ran no test"
	fi
	results+=("$prog: $ok ok, $nok not ok, $skip skipped, exit $rc")
}

mkdir -p "$LOGDIR" || exit 1
RUNTMP=$(mktemp -d /tmp/vigil-run.XXXXXX) || exit 1
trap 'rm -rf "$RUNTMP"' EXIT

# What exists before we start is not ours (an earlier interrupted run, or
# someone else's work on a shared machine): noted, never checked or removed.
before=$(list_leftovers | sort)
if [ -n "$before" ]; then
	echo "# note: present before the run, ignored: $(describe_leftovers <<<"$before")"
fi

if [ ${#selected[@]} -eq 0 ]; then
	echo "# no test program matches '$PATTERN'"
	fail "no test program matches '$PATTERN'"
fi

interrupted=0
trap 'interrupted=1' INT TERM
for p in "${selected[@]}"; do
	run_one "$p"
	if [ "$interrupted" -eq 1 ]; then
		fail "interrupted during $p"
		break
	fi
done
trap - INT TERM

left=$(comm -13 <(echo "$before") <(list_leftovers | sort))
if [ -n "$left" ]; then
	fail "cleanup: leftovers $(describe_leftovers <<<"$left")"
	echo "# cleanup: removing leftovers: $(describe_leftovers <<<"$left")"
	remove_leftovers <<<"$left"
	left=$(comm -12 <(echo "$left") <(list_leftovers | sort))
	[ -n "$left" ] && echo "# cleanup: could not remove: $(describe_leftovers <<<"$left")"
fi

# ---------------------------------------------------------------- summary
{
	echo "# ---- summary (logs in ${LOGDIR#"$ROOT"/}/)"
	for r in "${results[@]}"; do
		echo "# $r"
	done
	[ "$skips" -gt 0 ] && echo "# $skips skipped (\"# skip\" or \"# SKIP\" lines); see the logs for reasons"
	for f in "${failures[@]}"; do
		echo "# FAILED $f"
	done
	echo "$passed passed, $failed failed"
} | tee "$LOGDIR/summary.log"

[ "$failed" -eq 0 ]

#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
#
# The event log's file, end to end (issue 14, items 5, 11):
#   1. what --db points at: a text file, a healthy log another process keeps
#      locked past the busy timeout, a log on a read-only mount, a directory
#      others may write: each a clear one-line error, exit non-zero, the
#      file untouched (not renamed, same bytes). A truly corrupt SQLite file
#      is still moved aside.
#   2. modes: under umask 022 the log, its -wal and -shm and the JSON-lines
#      export are created 0600, the directory vigil creates 0700; an old
#      0644 log is made 0600.
#   3. (item 14) a reconcile whose commit fails (an SQLite trigger fails the
#      reconciled rows) is counted in vigil_log_errors_total and retried;
#      once writes succeed the row lands exactly once.
#
# Network: one namespace vg$$l with only loopback (skb-mode XDP on lo).
# check_sh evaluates its single-quoted condition later (SC2016); small
# predicates are called through check/wait_for (SC2317).
# shellcheck disable=SC2016,SC2317
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
e2e_init
need_tools sqlite3

setup_lo_test "vg$$l" logstore
make_keys "$KEYS" 1-4 || die "vigil key gen --id 1-4"
printf 'defaults interval-min-ms=10 interval-max-ms=1000 multiplier=3\nagent 1\nagent 2\nagent 3\n' >"$CONF"
RUN=(--iface lo --mode skb --keys "$KEYS" --config "$CONF" --pin-root "$PIN" --quiet)
q() { sqlite3 -cmd '.timeout 5000' "$1" "$2"; }
cleanup_pin() { "$VIGIL" detach --pin-root "$PIN" >/dev/null 2>&1; rm -rf -- "$PIN"; }

# refused WHAT REGEX FILE ARGS...: vigil run with ARGS refuses (one line
# matching REGEX among its messages, exit non-zero) and FILE is untouched:
# still there, same checksum, nothing renamed next to it.
refused() {
	local what=$1 re=$2 file=$3 sum rc problems=()
	shift 3
	sum=$(sha256sum <"$file")
	timeout 30 nsenter --net="/run/netns/$NS" "$VIGIL" run "${RUN[@]}" "$@" \
		>"$E2E_TMP/out" 2>"$E2E_TMP/err" </dev/null
	rc=$?
	[ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] || problems+=("exit $rc")
	grep -qE -- "$re" "$E2E_TMP/err" || problems+=("stderr does not match /$re/")
	grep -q 'is damaged' "$E2E_TMP/err" && problems+=("called it damaged")
	[ "$(sha256sum <"$file" 2>/dev/null)" = "$sum" ] || problems+=("$file changed or gone")
	compgen -G "$file.corrupt-*" >/dev/null && problems+=("moved aside")
	if [ ${#problems[@]} -eq 0 ]; then
		ok "$what: exit $rc, \"$(grep -E -- "$re" "$E2E_TMP/err" | head -n 1)\", file untouched"
	else
		not_ok "$what ($(IFS=';'; echo "${problems[*]}"))"
		show_file stderr "$E2E_TMP/err" 5
	fi
	cleanup_pin
}

# ---------------------------------------------------- 1. what --db points at
D=$E2E_TMP/store
mkdir -m 700 "$D"
printf 'agent 1\nthis is not a database\n' >"$D/notes.txt"
refused "--db at a text file" "notes.txt: not an SQLite database" "$D/notes.txt" --db "$D/notes.txt"

# A healthy log (made by a daemon), then locked: rollback-journal mode so
# that the lock also shuts readers out, held past the 5 s busy timeout.
start_daemon_or_die "vigil run makes a log" daemon "$NS" "$PIN" "${RUN[@]:0:8}" --db "$D/v.db" \
	--events-file "$D/ev.jsonl" --metrics off --quiet
kill_bg daemon TERM
cleanup_pin
check "the daemon made a healthy log" [ "$(q "$D/v.db" 'PRAGMA quick_check')" = ok ]
q "$D/v.db" 'PRAGMA journal_mode=DELETE' >/dev/null
python3 -c '
import sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], isolation_level=None)
c.execute("BEGIN EXCLUSIVE")
open(sys.argv[2], "w").close()
time.sleep(12)
' "$D/v.db" "$E2E_TMP/locked" &
LOCKER=$!
wait_for 5 test -e "$E2E_TMP/locked"
refused "--db at a healthy log another process keeps locked" \
	"v.db: cannot write the event log: database is locked.*another process" "$D/v.db" --db "$D/v.db"
kill "$LOCKER" 2>/dev/null
wait "$LOCKER" 2>/dev/null

# Read-only: the same log on a read-only bind mount.
RO=$E2E_TMP/ro
mkdir -m 700 "$RO"
e2e_mount --bind "$D" "$RO" && mount -o remount,bind,ro "$RO" || die "a read-only bind mount of $D"
refused "--db on a read-only file system" "v.db: .*read-only" "$D/v.db" --db "$RO/v.db"
umount "$RO"

chmod 777 "$D"
refused "--db in a directory anyone may write (not sticky)" "writable by others .*chmod go-w" \
	"$D/v.db" --db "$D/v.db"
chmod 700 "$D"

# Real corruption: garbage over the pages after the first (the schema is
# unreadable, SQLite reports corruption): moved aside, a new log started.
cp "$D/v.db" "$D/bad.db"
PSZ=$(q "$D/bad.db" 'PRAGMA page_size')
dd if=/dev/urandom of="$D/bad.db" bs="$PSZ" seek=1 count=3 conv=notrunc status=none
start_daemon daemon "$NS" "$PIN" "${RUN[@]:0:8}" --db "$D/bad.db" --metrics off
# start_daemon returns once XDP is attached; the log is opened after that.
check "a truly corrupt SQLite file is moved aside and a new log started" \
	wait_for 10 sh -c "grep -q 'is damaged; moving it to' '$E2E_TMP/daemon.err' && ls '$D'/bad.db.corrupt-* && [ \"\$(sqlite3 '$D/bad.db' 'PRAGMA quick_check')\" = ok ]"
kill_bg daemon TERM
cleanup_pin

# ------------------------------------------------------------- 2. modes
M=$E2E_TMP/modes/new
start_daemon_or_die "vigil run under umask 022" daemon "$NS" "$PIN" "${RUN[@]:0:8}" \
	--db "$M/v.db" --events-file "$M/ev.jsonl" --metrics off
mode() { stat -c %a "$1"; }
have_side_files() { [ -e "$M/v.db-wal" ] && [ -e "$M/v.db-shm" ]; }
wait_for 5 have_side_files
check_sh "under umask $(umask): the log $(mode "$M/v.db"), -wal $(mode "$M/v.db-wal"), -shm $(mode "$M/v.db-shm"), export $(mode "$M/ev.jsonl"), the directory vigil made $(mode "$M")" \
	'[ "$(mode "$M/v.db")$(mode "$M/v.db-wal")$(mode "$M/v.db-shm")$(mode "$M/ev.jsonl")" = 600600600600 ] && [ "$(mode "$M")" = 700 ]'
kill_bg daemon TERM
cleanup_pin
chmod 644 "$D/v.db"
q "$D/v.db" 'PRAGMA journal_mode=WAL' >/dev/null
start_daemon_or_die "vigil run on a 0644 log" daemon "$NS" "$PIN" "${RUN[@]:0:8}" --db "$D/v.db" \
	--metrics off
check "an existing 0644 log is made 0600 (now $(mode "$D/v.db")), and says so" \
	sh -c "[ \"\$(stat -c %a '$D/v.db')\" = 600 ] && grep -q 'now 0600' '$E2E_TMP/daemon.err'"
kill_bg daemon TERM
cleanup_pin

# ------------------------------------------- 3. a reconcile that cannot commit
# Agent 2 dies while a daemon records it; with the daemon stopped (the
# instance stays), its rows are deleted, as if its event had been lost, and a
# trigger makes every reconciled row fail while the table inject has a row.
# The next daemon reconciles agent 2 at start: the commit fails, which must be
# counted and retried, and once the fault is gone the row lands exactly once.
R=$E2E_TMP/reconcile.db
PORT=19783
metric() {
	in_ns "$NS" curl -sS --max-time 2 "http://127.0.0.1:$PORT/metrics" 2>/dev/null |
		awk -v s="$1" '$1 == s { print $2 }'
}
rows2() { q "$R" "SELECT count(*) || '/' || ifnull(sum(reconciled), 0) FROM events WHERE agent_id = 2"; }
start_daemon_or_die "vigil run (reconcile)" daemon "$NS" "$PIN" "${RUN[@]:0:8}" --db "$R" --metrics off
for a in 1 2; do
	start_beater "beat$a" "$NS" --id "$a" --target 127.0.0.1 --interval-ms 100 --keys "$KEYS"
done
dead_logged() { [ "$(q "$R" "SELECT count(*) FROM events WHERE agent_id = 2 AND state = 'dead'")" -ge 1 ]; }
both_alive() { [ "$(q "$R" "SELECT count(DISTINCT agent_id) FROM events WHERE state = 'alive'")" -ge 2 ]; }
wait_for 10 both_alive || die "agents 1 and 2 never logged alive"
kill_bg beat2 KILL
wait_for 10 dead_logged || die "agent 2 never logged dead ($(rows2))"
kill_bg daemon TERM
q "$R" "DELETE FROM events WHERE agent_id = 2; CREATE TABLE inject(x); INSERT INTO inject VALUES (1);
	CREATE TRIGGER inject_fail BEFORE INSERT ON events WHEN NEW.reconciled = 1 AND
	EXISTS (SELECT 1 FROM inject) BEGIN SELECT RAISE(ABORT, 'injected write failure'); END;"
start_daemon_or_die "vigil run (reconcile, failing)" daemon "$NS" "$PIN" "${RUN[@]:0:8}" --db "$R" \
	--metrics "127.0.0.1:$PORT"
failing() { [ "$(metric vigil_log_errors_total)" -ge 2 ] 2>/dev/null; }
wait_for 10 failing
check_sh "a reconcile whose commit fails is counted and retried (vigil_log_errors_total $(metric vigil_log_errors_total), rows of agent 2 $(rows2), \"$(grep -o 'recording .* retrying' "$E2E_TMP/daemon.err" | head -n 1)\")" \
	'[ "$(rows2)" = 0/0 ] && failing && grep -q "reconciled transition(s) failed (start); retrying" "$E2E_TMP/daemon.err"'
q "$R" "DELETE FROM inject"
landed() { [ "$(rows2)" = 1/1 ]; }
wait_for 10 landed
check "once writes succeed the retry records agent 2 exactly once, reconciled (rows/reconciled $(rows2))" landed
sleep 1.5
check_sh "and not again (rows/reconciled $(rows2); vigil_events_reconciled_total $(metric vigil_events_reconciled_total))" \
	'[ "$(rows2)" = 1/1 ] && [ "$(metric vigil_events_reconciled_total)" = 1 ]'
kill_bg beat1
kill_bg daemon TERM
cleanup_pin

e2e_finish

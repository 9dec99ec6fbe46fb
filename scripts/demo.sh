#!/usr/bin/env bash
# README command 1: install what is missing, build, and watch vigil detect a
# failure. Runs the monitor on loopback (skb mode: lo has no native XDP) with
# the five-agent fleet of scripts/demo-agents.conf; after a few seconds agent 5
# (db-2) stops beating and SUSPECT, then DEAD, arrive. Everything it creates
# is removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
	echo "demo: run as root (loading XDP needs CAP_BPF and CAP_NET_ADMIN)" >&2
	exit 1
fi
scripts/deps.sh
make -s

VIGIL=build/vigil
PIN=/sys/fs/bpf/vigil-demo
WORK=$(mktemp -d /tmp/vigil-demo.XXXXXX)
DB=$WORK/vigil.db
KEYS=$WORK/keys
pids=()

cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	$VIGIL detach --pin-root "$PIN" 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

# A pinned instance left by an interrupted demo would be adopted; start clean.
[ -e "$PIN" ] && $VIGIL detach --pin-root "$PIN" 2>/dev/null || true

say() { printf '\n\033[1m>>> %s\033[0m\n' "$*"; }

say "one 128-bit SipHash key per agent (vigil key gen); beats without a valid tag are refused"
(umask 077; $VIGIL key gen --id 1-5 > "$KEYS")
sed 's/\(................\)[0-9a-f]*$/\1…/' "$KEYS"

say "starting the monitor on lo (events are JSON lines; the durable log is $DB)"
$VIGIL run --iface lo --mode skb --config scripts/demo-agents.conf --keys "$KEYS" \
	--pin-root "$PIN" --db "$DB" &
pids+=($!)
sleep 0.5

say "agents 1-5 beat every 100 ms"
$VIGIL beat --id 1-3 --target 127.0.0.1 --interval-ms 100 --keys "$KEYS" &
pids+=($!)
$VIGIL beat --id 4 --target 127.0.0.1 --interval-ms 100 --keys "$KEYS" &
db1=$!
pids+=($db1)
$VIGIL beat --id 5 --target 127.0.0.1 --interval-ms 100 --keys "$KEYS" &
victim=$!
pids+=($victim)
sleep 2

say "a forger without the key claims to be agent 5: refused as bad_tag, state unchanged"
VIGIL_KEY=00000000000000000000000000000000 $VIGIL beat --id 5 --target 127.0.0.1 --count 1
sleep 1

say "agent 5 (db-2) stops beating: expect SUSPECT after 300 ms, DEAD 200 ms later (each waits, up to
    one beat of the others, for evidence that the monitor's receive path is current: held_us)"
{ kill -9 "$victim"; wait "$victim"; } 2>/dev/null || true
sleep 1.5

say "vigil status (read straight from the pinned BPF maps)"
$VIGIL status --pin-root "$PIN"

say "the daemon stops; detection goes on in the kernel. Agent 4 (db-1) stops too:"
kill "${pids[0]}"
wait "${pids[0]}" 2>/dev/null || true
{ kill -9 "$db1"; wait "$db1"; } 2>/dev/null || true
sleep 1.5
$VIGIL status --pin-root "$PIN" | grep -E '^(ID|4 |5 )'

say "a new daemon adopts the running instance and reports what happened while it was away"
$VIGIL run --pin-root "$PIN" --db "$DB" --keys "$KEYS" --duration 2

say "the durable log (vigil log query), and a check that it replays to the same state as the maps"
$VIGIL log query --db "$DB"
$VIGIL log replay --check --db "$DB" --pin-root "$PIN"

say "demo done: removing the instance"

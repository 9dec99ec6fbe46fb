#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
#
# A short libFuzzer pass of build/fuzz_beat, as part of `make test` (which
# builds it first; this script builds nothing). It fuzzes a temporary copy of
# tests/fuzz/seeds, so the seeds stay as committed and nothing is left
# behind; a crashing input is kept in build/fuzz-artifacts/ for reproduction.
#
#   tests/fuzz/smoke.sh                 about 20 seconds
#   FUZZ_SMOKE_SECONDS=5 tests/fuzz/smoke.sh
#
# Prints one TAP line, "ok 1 - fuzz smoke: N runs, no crash" or "not ok 1 - ...",
# with "# " lines of context, and exits 0 iff ok. For longer runs that keep
# their corpus, use `make fuzz FUZZ_SECONDS=N`.
set -u
export LC_ALL=C

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN=$ROOT/build/fuzz_beat
SEEDS=$ROOT/tests/fuzz/seeds
ARTIFACTS=$ROOT/build/fuzz-artifacts
SECONDS_=${FUZZ_SMOKE_SECONDS:-20}
MAX_RUNS=${FUZZ_SMOKE_RUNS:-5000000}

case $SECONDS_$MAX_RUNS in
'' | *[!0-9]*)
	echo "not ok 1 - fuzz smoke: FUZZ_SMOKE_SECONDS and FUZZ_SMOKE_RUNS must be whole numbers"
	exit 1
	;;
esac
if [ ! -x "$BIN" ]; then
	echo "not ok 1 - fuzz smoke: build/fuzz_beat is missing (make build/fuzz_beat)"
	exit 1
fi
if ! compgen -G "$SEEDS/*" >/dev/null; then
	echo "not ok 1 - fuzz smoke: no seeds in tests/fuzz/seeds"
	exit 1
fi

TMP=$(mktemp -d /tmp/vigil-fuzz.XXXXXX) || exit 1
trap 'rm -rf "$TMP"' EXIT
mkdir -p "$TMP/corpus" "$TMP/artifacts"
cp "$SEEDS"/* "$TMP/corpus/"

# -print_final_stats gives the number of executed inputs; -artifact_prefix
# keeps crash files out of the working directory.
"$BIN" -max_total_time="$SECONDS_" -runs="$MAX_RUNS" -timeout=10 -rss_limit_mb=2048 \
	-print_final_stats=1 -artifact_prefix="$TMP/artifacts/" "$TMP/corpus" \
	>"$TMP/log" 2>&1 </dev/null
rc=$?

runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$TMP/log" | tail -n 1)
cov=$(grep -oE 'cov: [0-9]+' "$TMP/log" | tail -n 1)
corpus=$(ls "$TMP/corpus" | wc -l)

if [ "$rc" -eq 0 ] && [ -n "$runs" ] && [ "$runs" -gt 0 ]; then
	echo "ok 1 - fuzz smoke: $runs runs, no crash"
	echo "# ${SECONDS_}s at most; ${cov:-cov: ?} edges; corpus grew from $(ls "$SEEDS" | wc -l) seeds to $corpus inputs"
	exit 0
fi

echo "not ok 1 - fuzz smoke: build/fuzz_beat exited with status $rc after ${runs:-an unknown number of} runs"
if compgen -G "$TMP/artifacts/*" >/dev/null; then
	mkdir -p "$ARTIFACTS"
	cp "$TMP"/artifacts/* "$ARTIFACTS/"
	for f in "$TMP"/artifacts/*; do
		echo "# reproduce: build/fuzz_beat build/fuzz-artifacts/$(basename "$f")"
	done
fi
# The sanitizer's or the invariant's own words.
grep -E 'invariant failed|runtime error|ERROR: (AddressSanitizer|libFuzzer|LeakSanitizer)|SUMMARY' \
	"$TMP/log" | head -n 10 | sed 's/^/# /'
tail -n 5 "$TMP/log" | sed 's/^/# /'
exit 1

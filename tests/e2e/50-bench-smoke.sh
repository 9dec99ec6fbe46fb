#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
#
# Smoke run of the benchmark harness (make bench, docs/BENCHMARKS.md):
# BENCH_QUICK=1 bench/run.sh runs every section at tiny sizes in a minute or
# two. It must succeed, print its tables, write a document holding exactly
# those tables and the plots, and leave nothing behind (tests/run.sh checks
# for leftover namespaces and pins). The figures themselves are not checked:
# at these sizes, on a machine running other tests, they mean nothing.
# check_sh evaluates its single-quoted condition later (SC2016).
# shellcheck disable=SC2016
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
e2e_init

for b in vigil-trafficgen vigil-bench vigil-baseline vigil-scale; do
	[ -x "$E2E_ROOT/build/$b" ] || die "build/$b is not built (make test builds it)"
done
need_tools gnuplot

OUT=$E2E_TMP/out
t0=$(now)
if BENCH_QUICK=1 BENCH_OUT="$OUT" timeout 300 "$E2E_ROOT/bench/run.sh" \
	>"$E2E_TMP/bench.out" 2>"$E2E_TMP/bench.err"; then
	ok "BENCH_QUICK=1 bench/run.sh succeeds ($(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.0f", b - a }') s)"
else
	show_file "bench/run.sh stderr" "$E2E_TMP/bench.err"
	not_ok "BENCH_QUICK=1 bench/run.sh succeeds"
fi

for s in "### 1. Fast path" "### 2. Throughput" "### 3. Scale" "### 4. Mass failure" \
	"### 5. Overload" "### 6. Monitor starvation" "### Fleet view" "### Lease takeover" \
	"### Targets"; do
	check "it prints the table '$s'" grep -qF "$s" "$E2E_TMP/bench.out"
done
check "the fast-path table has the reference, known, unknown, authenticated and acknowledged beats" \
	sh -c "grep -q '^| reference: parse, one array lookup' '$E2E_TMP/bench.out' &&
		grep -q '^| known agent, no auth |' '$E2E_TMP/bench.out' &&
		grep -q '^| unknown agent |' '$E2E_TMP/bench.out' &&
		grep -q '^| known agent, authenticated |' '$E2E_TMP/bench.out' &&
		grep -q '^| beat with acknowledgement |' '$E2E_TMP/bench.out'"
check "the fast-path cases are ratios to the reference (or say why not)" \
	grep -qE '^\| known agent, authenticated \|[^|]*\| ([0-9.]+x \[|not computed: spread)' "$E2E_TMP/bench.out"
check "the throughput table has ceiling, reference, vigil, the recvmmsg and the AF_XDP baselines" \
	sh -c "grep -q '^| no-op XDP_DROP' '$E2E_TMP/bench.out' && grep -q '^| reference: no-op' '$E2E_TMP/bench.out' &&
		grep -q '^| vigil ' '$E2E_TMP/bench.out' && grep -q '^| userspace baseline' '$E2E_TMP/bench.out' &&
		grep -q '^| AF_XDP baseline' '$E2E_TMP/bench.out'"
# Each receiver row: saturated rate and CPU, loss-free rate and CPU, CPU at
# the common rate, and its CPU's idle check (7 cells), figures as medians
# with [min, max].
BAD_ROWS=$(awk -F'|' '/^\| (no-op XDP_DROP|reference: no-op|vigil \(native XDP|userspace baseline|AF_XDP baseline)/ {
		n++; if (NF != 9 || $3 !~ /\[/ || $4 !~ /\[/ || $7 !~ /\[/ || $8 !~ /%/) print }
		END { if (n != 5) print n " receiver rows, not 5" }' "$E2E_TMP/bench.out")
if [ -z "$BAD_ROWS" ]; then
	ok "every throughput row has both views, each a median [min, max], and the idle check"
else
	not_ok "every throughput row has both views, each a median [min, max], and the idle check"
	note "$BAD_ROWS"
fi
check "the lease takeover table has the standby's grant and the holder learning it" \
	sh -c "grep -q \"^| the standby's grant | [1-9]\" '$E2E_TMP/bench.out' &&
		grep -q '^| the holder knows its new token | ' '$E2E_TMP/bench.out'"
check "the targets include the issue 13 ratios" \
	sh -c "grep -q '^| saturated accepted rate ≥ 60 %' '$E2E_TMP/bench.out' &&
		grep -q '^| CPU per beat below the AF_XDP baseline' '$E2E_TMP/bench.out' &&
		grep -q '^| fast path, authenticated at 65,536 agents' '$E2E_TMP/bench.out'"

check "the starvation table has vigil with and without receive-path evidence, and FRR bfdd" \
	sh -c "grep -q '^| vigil (verdicts wait for receive-path evidence' '$E2E_TMP/bench.out' &&
		grep -q '^| vigil, --hold-max-ms 0' '$E2E_TMP/bench.out' && grep -q '^| FRR bfdd' '$E2E_TMP/bench.out'"

# Correctness, not speed: with its receive path starved, vigil takes no false
# verdict (nothing excused) and still reports every agent killed meanwhile.
# (the run at the default --hold-max-ms: st-vigil-<default>.json; st-vigil-0 is without)
ST=
for f in "$OUT"/bench/raw/st-vigil-*.json; do
	[ "${f##*/}" = st-vigil-0.json ] || ST=$f
done
if [ -s "$ST" ]; then
	check_sh "starved receive path: 0 false SUSPECT/DEAD/RECOVERED ($(jq .false_verdicts "$ST")), every killed agent SUSPECT and DEAD ($(jq -r '"\(.victim_suspect)/\(.victim_dead) of \(.victims)"' "$ST"))" \
		'[ "$(jq .false_verdicts "$ST")" -eq 0 ] && [ "$(jq .victim_suspect "$ST")" -eq "$(jq .victims "$ST")" ] && [ "$(jq .victim_dead "$ST")" -eq "$(jq .victims "$ST")" ]'
else
	not_ok "the starvation section wrote its results ($ST)"
fi

DOC=$OUT/BENCHMARKS.md
if [ -s "$DOC" ] && python3 - "$E2E_TMP/bench.out" "$DOC" <<'EOF'; then
import sys
printed = open(sys.argv[1]).read().strip()
doc = open(sys.argv[2]).read()
sys.exit(0 if printed and printed in doc else 1)
EOF
	ok "the document holds the printed tables verbatim"
else
	not_ok "the document holds the printed tables verbatim"
fi
check_sh "the document names machine, kernel, date and command" \
	'grep -q "^- Kernel: $(uname -r)" "$DOC" && grep -q "^- Date: " "$DOC" && grep -q "^- Command: " "$DOC"'
n_png=$(find "$OUT/bench" -name '*.png' -size +1k 2>/dev/null | wc -l)
check "gnuplot drew the plots ($n_png PNG files)" [ "$n_png" -ge 4 ]
# This run's bfdd, by its configuration directory (the log names it): other
# runs on the machine may have theirs.
BFD_DIR=$(sed -n 's/.*starvation: FRR bfdd.*(\(\/tmp\/vg[^)]*\))$/\1/p' "$E2E_TMP/bench.err" | tail -n 1)
check_sh "no generator, daemon or baseline is left running" \
	'! pgrep -f "$E2E_ROOT/build/vigil-(trafficgen|baseline)" >/dev/null &&
	 [ -n "$BFD_DIR" ] && ! pgrep -f "bfdd -f $BFD_DIR/" >/dev/null'

e2e_finish

#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
#
# bench/report.sh RESULTS DOC PLOTS QUICK T_START GEN_CPU RX_CPU
#
# Turns bench/run.sh's raw results (JSON, one file per measurement) into the
# tables it prints, docs/BENCHMARKS.md (the same tables, verbatim, with the
# machine, the method and what a missed target means) and PNG plots.
set -u
export LC_ALL=C

RES=$1 DOC=$2 PLOTS=$3 QUICK=$4 T_START=$5 GEN_CPU=$6 RX_CPU=$7
TABLES=$RES/tables.md
NOTES=$RES/notes.md
: >"$TABLES"
: >"$NOTES"

have() { [ -s "$RES/$1" ]; }
j() { jq -r "$2" "$RES/$1" 2>/dev/null; }
# f FORMAT VALUE: printf through awk (values may be fractional or "null").
f() { awk -v v="$2" -v fmt="$1" 'BEGIN { if (v == "" || v == "null") print "–"; else printf fmt, v }'; }
# calc EXPR: awk arithmetic on already substituted numbers.
calc() { awk "BEGIN { v = $1; printf \"%.6g\", v }"; }
t() { echo "$*" >>"$TABLES"; }
n() { echo "$*" >>"$NOTES"; }

# Targets, filled as sections are reported: "what|result|met".
TARGETS=()
target() { TARGETS+=("$1|$2|$3"); }
yesno() { awk -v c="$1" 'BEGIN { print (c + 0 ? "yes" : "**no**") }'; }

# ------------------------------------------------------------ 1 fast path
if have fp-hot.json; then
	R=$(j fp-hot.json .repeat) K=$(j fp-hot.json .runs)
	t "### 1. Fast path: ns per beat (BPF_PROG_TEST_RUN, $K runs x $R repeats; min / median)"
	t ""
	t "| case | 1,024 agents (cache-hot) | 65,536 agents | target |"
	t "|---|---|---|---|"
	cell() { # FILE JQ-PATH
		local a b
		a=$(j "$1" "$2.min") b=$(j "$1" "$2.median")
		[ "$a" = null ] || [ -z "$a" ] && { echo "–"; return; }
		echo "$(f %.0f "$a") / $(f %.0f "$b")"
	}
	casepath() { echo ".cases[] | select(.name == \"$1\")"; }
	t "| empty program (floor) | $(cell fp-hot.json .floor) | $(cell fp-fleet.json .floor) | |"
	t "| wrapper + tail call (subtracted) | $(cell fp-hot.json .wrapper) | $(cell fp-fleet.json .wrapper) | |"
	for c in "known agent, no auth|≤ 100" "unknown agent|" "known agent, authenticated|≤ 175"; do
		name=${c%%|*} tgt=${c#*|}
		t "| $name | $(cell fp-hot.json "($(casepath "$name"))") | $(cell fp-fleet.json "($(casepath "$name"))") | $tgt |"
	done
	if have fp-hot-nosrc.json; then
		t "| known agent, no auth, per-source limit off | $(cell fp-hot-nosrc.json "($(casepath "known agent, no auth"))") | | |"
	fi
	t "| beat with acknowledgement | n/a: acknowledgements not implemented (issue 4) | n/a | |"
	t ""
	t "Each case is floor + (wrapped case − wrapped empty program); every repeat is a fresh beat"
	t "with a rising sequence (see Method). The 1,024-agent runs turn the per-agent rate limit off"
	t "(each agent beats every ~100 µs in this loop); the 65,536-agent runs use the defaults."
	t ""
	known=$(j fp-hot.json "($(casepath "known agent, no auth")).median")
	authd=$(j fp-hot.json "($(casepath "known agent, authenticated")).median")
	knownf=$(j fp-fleet.json "($(casepath "known agent, no auth")).median")
	authf=$(j fp-fleet.json "($(casepath "known agent, authenticated")).median")
	target "fast path ≤ 100 ns, known agent, no auth (median, 1,024 agents)" "$(f %.0f "$known") ns (65,536 agents: $(f %.0f "$knownf") ns)" \
		"$(yesno "$(calc "$known <= 100")")"
	target "fast path ≤ 175 ns, authenticated (median, 1,024 agents)" "$(f %.0f "$authd") ns (65,536 agents: $(f %.0f "$authf") ns)" \
		"$(yesno "$(calc "$authd <= 175")")"
	for c in fp-hot fp-fleet; do
		bad=$(j $c.json '[.cases[] | select(.counted != .expected)] | length')
		[ "${bad:-0}" -eq 0 ] || n "- **Warning**: in $c, vigil did not count every beat as the case intended: $(j $c.json -c '[.cases[] | select(.counted != .expected) | {name, counted, expected}]')"
	done
fi

# ---------------------------------------------------------- 2 throughput
lf() { j "tp-$1.json" "if .found then .loss_free.generated_pps else null end"; }
if have tp-ceiling.json && have tp-vigil.json && have tp-baseline.json; then
	t "### 2. Throughput: highest loss-free rate on one veth pair (authenticated beats)"
	t ""
	t "| receiver (on CPU $RX_CPU) | loss-free rate | CPU ns per beat | flat-out: offered → accepted | note |"
	t "|---|---|---|---|---|"
	C=$(lf ceiling) V=$(lf vigil) B=$(lf baseline)
	CN=$(j tp-ceiling.json .loss_free.rx_ns_per_beat) VN=$(j tp-vigil.json .loss_free.rx_ns_per_beat)
	BN=$(j tp-baseline.json .loss_free.rx_ns_per_beat)
	flat() { echo "$(f %.2f "$(calc "$(j "tp-$1.json" .flat_out.generated_pps) / 1e6")") → $(f %.2f "$(calc "$(j "tp-$1.json" .flat_out.accepted_pps) / 1e6")") Mpps"; }
	gb() { [ "$(j "tp-$1.json" .generator_bound)" = true ] && echo " (generator-bound: ≥)"; }
	mp() { [ "$1" = null ] || [ -z "$1" ] && { echo "none ≥ 0.1 Mpps"; return; }; echo "$(f %.3f "$(calc "$1 / 1e6")") Mpps"; }
	t "| no-op XDP_DROP (ceiling) | $(mp "$C")$(gb ceiling) | $(f %.0f "$CN") | $(flat ceiling) | |"
	vnote=""
	if [ "$V" != null ] && [ "$C" != null ]; then
		vnote="$(f %.0f "$(calc "100 * $V / $C")") % of the ceiling"
	fi
	if [ "$V" != null ] && [ "$B" != null ]; then
		vnote="$vnote; $(f %.1f "$(calc "$V / $B")")x the baseline's rate, $(f %.1f "$(calc "$BN / $VN")")x less CPU per beat"
	fi
	t "| vigil (native XDP, vigil run) | $(mp "$V")$(gb vigil) | $(f %.0f "$VN") | $(flat vigil) | $vnote |"
	t "| userspace baseline (UDP, recvmmsg x64) | $(mp "$B")$(gb baseline) | $(f %.0f "$BN") | $(flat baseline) | receive-buffer drops: $(j tp-baseline.json .loss_free.drops) at the loss-free rate, $(j tp-baseline.json .flat_out.drops) flat out |"
	t ""
	t "Loss-free: generated − accepted ≤ $(j tp-vigil.json .loss_tolerance) of generated over a $(f %.1f "$(j tp-vigil.json .flat_out.seconds)") s step; CPU ns per"
	t "beat = busy time of CPU $RX_CPU (/proc/stat) / beats accepted, at the loss-free rate."
	t ""
	if [ "$V" != null ] && [ "$C" != null ]; then
		target "vigil ≥ 80 % of the no-op ceiling" "$(f %.0f "$(calc "100 * $V / $C")") %" "$(yesno "$(calc "$V >= 0.8 * $C")")"
	else
		target "vigil ≥ 80 % of the no-op ceiling" "not measured (no loss-free rate)" "**no**"
	fi
	if [ "$V" != null ] && [ "$B" != null ]; then
		target "vigil ≥ 6x the baseline's loss-free rate" "$(f %.1f "$(calc "$V / $B")")x" "$(yesno "$(calc "$V >= 6 * $B")")"
		target "vigil ≤ 1/8 of the baseline's CPU per beat" "1/$(f %.1f "$(calc "$BN / $VN")") ($(f %.0f "$VN") vs $(f %.0f "$BN") ns)" \
			"$(yesno "$(calc "$VN * 8 <= $BN")")"
	fi
	if have tp-vigil-stats0.json && have tp-vigil-stats1.json; then
		rej=$(jq -n --slurpfile a "$RES/tp-vigil-stats0.json" --slurpfile b "$RES/tp-vigil-stats1.json" \
			'[$b[0] | to_entries[] | select(.key != "packets" and .key != "beats" and .key != "events") | .value - $a[0][.key]] | add')
		[ "${rej:-0}" -eq 0 ] || n "- vigil refused or miscounted $rej frames during the throughput run (see raw/tp-vigil-stats*.json)."
	fi
fi

# --------------------------------------------------------------- 3 scale
scale_files=$(cd "$RES" && ls scale-*.json 2>/dev/null | sort -t- -k2 -n)
if [ -n "$scale_files" ]; then
	f1=$(echo "$scale_files" | head -1)
	t "### 3. Scale: agents beating every $(j "$f1" .interval_ms) ms, then all stopping (tick $(j "$f1" .tick_us) µs)"
	t ""
	t "| agents | memory per agent | sweeper CPU (while all beat) | SUSPECT lateness p50 / p99 / max | DEAD lateness p50 / p99 / max | delivery lag p50 / p99 | every deadline once, none early |"
	t "|---|---|---|---|---|---|---|"
	for sf in $scale_files; do
		lat() { echo "$(f %.2f "$(j "$sf" ".$1.p50")") / $(f %.2f "$(j "$sf" ".$1.p99")") / $(f %.2f "$(j "$sf" ".$1.max")") ms"; }
		ok=$(j "$sf" 'if .ok then "yes" else "**no** (missing \(.missing), twice \(.twice), early \(.early), ring full \(.ringbuf_full))" end')
		t "| $(j "$sf" .agents) | $(j "$sf" .mem_per_agent) B (+ $(f %.1f "$(calc "$(j "$sf" .mem_fixed) / 1048576")") MiB fixed) | $(f %.2f "$(j "$sf" .sweeper_pct)") % | $(lat suspect) | $(lat dead) | $(f %.2f "$(j "$sf" .lag.p50)") / $(f %.2f "$(j "$sf" .lag.p99)") ms | $ok |"
	done
	t ""
	t "Lateness: detection time − deadline (from the events' own timestamps). Delivery lag: detection"
	t "time → a ring-buffer consumer thread reading the event. Memory: what the kernel charges for the"
	t "per-agent maps, divided by agents; the fixed part (wheel, source table) and the ring buffer"
	t "($(f %.0f "$(calc "$(j "$f1" .mem_ringbuf) / 1048576")") MiB here, 16 MiB by default) are extra."
	t ""
	if have scale-1000000.json; then
		tk=$(calc "$(j scale-1000000.json .tick_us) / 1000 + 0.5")
		p99=$(calc "$(j scale-1000000.json .suspect.p99) > $(j scale-1000000.json .dead.p99) ? $(j scale-1000000.json .suspect.p99) : $(j scale-1000000.json .dead.p99)")
		target "lateness p99 ≤ 1 tick + 0.5 ms at 1M agents" "$(f %.2f "$p99") ms (limit $(f %.1f "$tk") ms)" "$(yesno "$(calc "$p99 <= $tk")")"
		target "sweeper < 5 % of one core, 1M agents beating once a second" "$(f %.2f "$(j scale-1000000.json .sweeper_pct)") %" \
			"$(yesno "$(calc "$(j scale-1000000.json .sweeper_pct) < 5")")"
	fi
fi

# -------------------------------------------------------- 4 mass failure
mf_files=$(cd "$RES" && ls mf-*.json 2>/dev/null | grep -E '^mf-[0-9]+\.json$' | sort -t- -k2 -n)
if [ -n "$mf_files" ]; then
	t "### 4. Mass failure: every agent dies at once (vigil run, keys, SQLite event log)"
	t ""
	t "| agents | all DEAD durable after the last DEAD deadline | … after the agents stopped | DEAD detection lateness p50 / p99 / max | detection → row written p50 / p99 | DEAD rows |"
	t "|---|---|---|---|---|---|"
	for mf in $mf_files; do
		a=$(j "$mf" .agents)
		t "| $a | $(f %.3f "$(calc "($(j "$mf" .last_recorded) - $(j "$mf" .last_deadline)) / 1e9")") s | $(f %.2f "$(calc "($(j "$mf" .last_recorded) - $(j "$mf" .t_stop)) / 1e9")") s | $(f %.2f "$(calc "$(j "$mf" .late_p50) / 1e6")") / $(f %.2f "$(calc "$(j "$mf" .late_p99) / 1e6")") / $(f %.2f "$(calc "$(j "$mf" .late_max) / 1e6")") ms | $(f %.3f "$(calc "$(j "$mf" .lag_p50) / 1e9")") / $(f %.3f "$(calc "$(j "$mf" .lag_p99) / 1e9")") s | $(j "$mf" .dead) of $a |"
	done
	t ""
	t "The agents beat through the veth pair (authenticated, from vigil-trafficgen) until every UP was"
	t "in the log, then all stopped at once; DEAD is due 5 intervals after an agent's last beat."
	t "\"Durable\": the row's recorded time in the daemon's SQLite log (WAL, synchronous=FULL; the"
	t "batch commits right after)."
	t ""
fi

# ------------------------------------------------------------ 5 overload
if have ov-shared.json || have ov-threaded.json; then
	t "### 5. Overload: flood (forged tags + random ids + replays, spoofed sources) while agents beat every 10 ms"
	t ""
	t "| setup | flood judged by vigil | frames lost in the veth ring | false SUSPECT / DEAD / RECOVERED | victims' SUSPECT lateness p50 / max | victims' DEAD lateness p50 / max |"
	t "|---|---|---|---|---|---|"
	for m in shared threaded; do
		have "ov-$m.json" || continue
		sec=$(j "ov-$m-gen.json" .run.seconds)
		judged=$(j "ov-$m-delta.json" '.bad_tag + .unknown_agent + .duplicates + .replayed')
		label="generator and receive softirq on CPU $GEN_CPU"
		[ $m = threaded ] && label="generator CPU $GEN_CPU, threaded NAPI CPU $RX_CPU"
		t "| $label | $(f %.2f "$(calc "$judged / $sec / 1e6")") Mpps of $(f %.2f "$(calc "$(j "ov-$m-gen.json" .run.generated_pps) / 1e6")") sent | $(j "ov-$m-delta.json" .veth_drops) | $(j "ov-$m.json" .false_alarms) | $(f %.2f "$(calc "$(j "ov-$m.json" .suspect_p50) / 1e6")") / $(f %.2f "$(calc "$(j "ov-$m.json" .suspect_max) / 1e6")") ms | $(f %.2f "$(calc "$(j "ov-$m.json" .dead_p50) / 1e6")") / $(f %.2f "$(calc "$(j "ov-$m.json" .dead_max) / 1e6")") ms |"
		target "zero false alarms under overload ($m)" "$(j "ov-$m.json" .false_alarms)" "$(yesno "$(calc "$(j "ov-$m.json" .false_alarms) == 0")")"
	done
	va=$(j ov-shared.json .victims)
	t ""
	t "Agents beat every 10 ms (deadline 30 ms, DEAD 20 ms later); $va of them are killed halfway"
	t "through the flood (victims). Lateness: detection − deadline, from the durable log."
	t ""
fi

# --------------------------------------------------------------- targets
if [ ${#TARGETS[@]} -gt 0 ]; then
	t "### Targets (issue 6)"
	t ""
	t "| target | measured | met |"
	t "|---|---|---|"
	for x in "${TARGETS[@]}"; do
		IFS='|' read -r a b c <<<"$x"
		t "| $a | $b | $c |"
	done
	t ""
fi

cat "$TABLES"

# ----------------------------------------------------------------- plots
PL=()
plot() { gnuplot 2>>"$RES/gnuplot.err" && PL+=("$1"); }
if have fp-hot.json; then
	jq -r '"floor \(.floor.median)", "wrapper \(.wrapper.median)", (.cases[] | "\"\(.name)\" \(.median)")' "$RES/fp-hot.json" >"$RES/fp-hot.dat"
	jq -r '"floor \(.floor.median)", "wrapper \(.wrapper.median)", (.cases[] | "\"\(.name)\" \(.median)")' "$RES/fp-fleet.json" >"$RES/fp-fleet.dat" 2>/dev/null
	paste -d' ' "$RES/fp-hot.dat" <(awk '{ print $NF }' "$RES/fp-fleet.dat") >"$RES/fp.dat"
	plot fastpath.png <<EOF
set terminal pngcairo size 900,450 font ",10"
set output "$PLOTS/fastpath.png"
set title "vigil_xdp cost per beat (median, BPF_PROG_TEST_RUN)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set ylabel "ns per beat"
set yrange [0:*]
set grid ytics
set key top left
set xtics rotate by -15
plot "$RES/fp.dat" using 2:xtic(1) title "1,024 agents (cache-hot)", "" using 3 title "65,536 agents"
EOF
fi
if have tp-vigil.log; then
	for r in ceiling vigil baseline; do
		sed -n 's/^step *[0-9]*: *\(paced\|flat \) *[0-9]* pps *generated *\([0-9]*\) pps *accepted *\([0-9]*\) pps.*/\2 \3/p' \
			"$RES/tp-$r.log" | sort -n >"$RES/tp-$r.dat"
	done
	plot throughput.png <<EOF
set terminal pngcairo size 900,500 font ",10"
set output "$PLOTS/throughput.png"
set title "Offered vs accepted, one veth pair (each point a 2 s step of the loss-free search)"
set xlabel "offered (Mpps)"
set ylabel "accepted (Mpps)"
set grid
set key top left
set xrange [0:*]
set yrange [0:*]
plot x title "no loss" dt 2 lc rgb "gray", \
     "$RES/tp-ceiling.dat" using (\$1/1e6):(\$2/1e6) with linespoints title "no-op XDP_DROP (ceiling)", \
     "$RES/tp-vigil.dat" using (\$1/1e6):(\$2/1e6) with linespoints title "vigil", \
     "$RES/tp-baseline.dat" using (\$1/1e6):(\$2/1e6) with linespoints title "userspace baseline"
EOF
fi
if [ -n "$scale_files" ]; then
	for sf in $scale_files; do
		jq -r '"\(.agents) \(.suspect.p50) \(.suspect.p99) \(.suspect.max) \(.dead.p99) \(.lag.p50) \(.lag.p99) \(.sweeper_pct)"' "$RES/$sf"
	done >"$RES/scale.dat"
	plot scale.png <<EOF
set terminal pngcairo size 900,500 font ",10"
set output "$PLOTS/scale.png"
set title "Detection lateness and delivery lag by fleet size"
set logscale x
set xlabel "agents"
set ylabel "ms"
set y2label "sweeper, % of one CPU"
set y2tics
set ytics nomirror
set grid
set key top left
plot "$RES/scale.dat" using 1:2 with linespoints title "SUSPECT lateness p50", \
     "" using 1:3 with linespoints title "SUSPECT lateness p99", \
     "" using 1:4 with linespoints title "SUSPECT lateness max", \
     "" using 1:7 with linespoints title "delivery lag p99", \
     "" using 1:8 axes x1y2 with linespoints dt 3 title "sweeper CPU (right)"
EOF
fi
if [ -n "$mf_files" ]; then
	cmd="plot "
	sep=""
	for mf in $mf_files; do
		a=$(j "$mf" .agents)
		[ -s "$RES/mf-$a-curve.dat" ] || continue
		cmd+="$sep\"$RES/mf-$a-curve.dat\" using 1:(\$3 == 1 ? \$2 : 1/0) with lines lw 2 title \"DEAD rows, $a agents\", \"$RES/mf-$a-curve.dat\" using 1:(\$3 == 0 ? \$2 : 1/0) with lines dt 2 title \"SUSPECT rows, $a agents\""
		sep=", "
	done
	plot massfail.png <<EOF
set terminal pngcairo size 900,500 font ",10"
set output "$PLOTS/massfail.png"
set title "Mass failure: events in the durable log after every agent stopped"
set xlabel "seconds after the agents stopped"
set ylabel "rows"
set logscale y
set grid
set key bottom right
$cmd
EOF
fi

# ------------------------------------------------------------- document
[ "$QUICK" = 1 ] && label="quick smoke run (BENCH_QUICK=1; tiny sizes, not figures to quote)" || label="full run"
cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
{
	echo "# Benchmarks"
	echo ""
	echo "Generated by \`make bench\` (bench/run.sh, $label). Do not edit by hand: run it again."
	echo ""
	echo "- Date: $(date -u '+%Y-%m-%d %H:%M UTC'), $(($(date +%s) - T_START)) s"
	echo "- Machine: $(nproc) CPUs, $cpu, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM"
	echo "- Kernel: $(uname -r) ($(uname -m)); libbpf $(pkg-config --modversion libbpf 2>/dev/null || echo '?'); BPF compiled with clang-14"
	echo "- vigil: $(git -C "$(dirname "$DOC")/.." describe --always --dirty 2>/dev/null || echo '?')"
	echo "- Command: \`make bench\` (as root); the generator runs on CPU $GEN_CPU, the receiver on CPU $RX_CPU"
	echo ""
	echo "## Results"
	echo ""
	cat "$TABLES"
	if [ -s "$NOTES" ]; then
		echo "Notes from this run:"
		echo ""
		cat "$NOTES"
		echo ""
	fi
	for p in "${PL[@]}"; do
		echo "![${p%.png}](bench/$p)"
		echo ""
	done
	cat "$(dirname "${BASH_SOURCE[0]}")/BENCHMARKS.method.md"
} >"$DOC"

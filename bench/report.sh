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

# Targets, filled as sections are reported: "what|result|met"; for a missed
# one, a paragraph (by how much, why, what would close it) goes to MISSES.
TARGETS=()
MISSES=$RES/misses.md
: >"$MISSES"
target() { TARGETS+=("$1|$2|$3"); }
miss() { # MET TEXT...: record TEXT when MET is not "yes"
	local met=$1
	shift
	[ "$met" = yes ] || printf -- '- %s\n' "$*" >>"$MISSES"
}
yesno() { awk -v c="$1" 'BEGIN { print (c + 0 ? "yes" : "**no**") }'; }

# ------------------------------------------------------------ 1 fast path
# A ratio and its spread (min and max over trials), against a TARGET that
# is an upper bound (or, with "ge", a lower one): "yes", "**no**", or
# "undecided" when the spread is wider than the ratio's distance from the
# target (the table then refuses the verdict).
# ratio_verdict MEDIAN MIN MAX TARGET [ge]
ratio_verdict() {
	awk -v r="$1" -v a="$2" -v b="$3" -v t="$4" -v ge="${5:-}" 'BEGIN {
		if (r == "" || r == "null" || a == "" || a == "null") { print "not measured"; exit }
		d = r - t; if (d < 0) d = -d
		if (b - a > d) printf "undecided: spread %.2f wider than the distance %.2f to the target\n", b - a, d
		else if (ge == "ge") print (r >= t ? "yes" : "**no**")
		else print (r <= t ? "yes" : "**no**") }'
}
# ratio_cell MEDIAN MIN MAX [TARGET]: "1.84x [1.70, 2.10]", or, when the
# spread is wider than the distance to TARGET, no ratio at all.
ratio_cell() {
	local v
	[ -z "$1" ] || [ "$1" = null ] && { echo "–"; return; }
	v=$([ -n "${4:-}" ] && ratio_verdict "$@")
	case $v in
	undecided*) echo "not computed: spread [$(f %.2f "$2"), $(f %.2f "$3")] wider than the distance to ${4}x" ;;
	*) echo "$(f %.2f "$1")x [$(f %.2f "$2"), $(f %.2f "$3")]" ;;
	esac
}
if have fp-hot.json; then
	R=$(j fp-hot.json .repeat) K=$(j fp-hot.json .runs)
	t "### 1. Fast path: ns per beat and ratio to the reference (BPF_PROG_TEST_RUN, $K paired rounds x $R repeats)"
	t ""
	t "| case | 1,024 agents (cache-hot): ns min / median / max | x reference: median [min, max] | 65,536 agents: ns min / median / max | x reference at 65,536 | target (ratio) |"
	t "|---|---|---|---|---|---|"
	ns3() { # FILE JQ-PATH
		local a
		a=$(j "$1" "$2.min")
		[ "$a" = null ] || [ -z "$a" ] && { echo "–"; return; }
		echo "$(f %.0f "$a") / $(f %.0f "$(j "$1" "$2.median")") / $(f %.0f "$(j "$1" "$2.max")")"
	}
	casepath() { echo ".cases[] | select(.name == \"$1\")"; }
	rcell() { # FILE CASE [TARGET]
		local p
		p=$(casepath "$2")
		ratio_cell "$(j "$1" "($p).ratio.median")" "$(j "$1" "($p).ratio.min")" "$(j "$1" "($p).ratio.max")" "${3:-}"
	}
	t "| empty program (floor) | $(ns3 fp-hot.json .floor) | | $(ns3 fp-fleet.json .floor) | | |"
	t "| wrapper + tail call (subtracted) | $(ns3 fp-hot.json .wrapper) | | $(ns3 fp-fleet.json .wrapper) | | |"
	t "| reference: parse, one array lookup by id, store last-seen and sequence | $(ns3 fp-hot.json .reference) | 1 | $(ns3 fp-fleet.json .reference) | 1 | |"
	# name|hot target|fleet target
	for c in "known agent, no auth|1.3|" "unknown agent||" "known agent, authenticated|2|2" \
		"beat with acknowledgement|2.5|" "known agent, no auth, per-source limit off||"; do
		IFS='|' read -r name th tf <<<"$c"
		[ -n "$(j fp-hot.json "$(casepath "$name") | .name")" ] || continue
		tg=""
		[ -n "$th" ] && tg="≤ ${th}x (1,024)"
		[ -n "$tf" ] && tg="$tg; ≤ ${tf}x (65,536)"
		t "| $name | $(ns3 fp-hot.json "($(casepath "$name"))") | $(rcell fp-hot.json "$name" "$th") | $(ns3 fp-fleet.json "($(casepath "$name"))") | $(rcell fp-fleet.json "$name" "$tf") | $tg |"
	done
	[ -n "$(j fp-hot.json "$(casepath "beat with acknowledgement") | .name")" ] ||
		t "| beat with acknowledgement | n/a: acknowledgements not implemented (issue 4) | | n/a | | |"
	t ""
	t "Each figure is floor + (wrapped case − wrapper alone), all three measured in the same round;"
	t "every repeat is a fresh beat with a rising sequence (see Method). The ratio divides a case by"
	t "the reference run on the same beats in the same round; its median, min and max are over the"
	t "rounds. Only ratios compare between machines. The 1,024-agent runs turn the per-agent rate"
	t "limit off (each agent beats every ~100 µs in this loop); the 65,536-agent runs use the"
	t "defaults. With acknowledgement: authenticated, and the agent's group has \`ack\`: vigil"
	t "answers with a signed acknowledgement (XDP_TX)."
	t ""
	# fp_target NAME FILE CASE TARGET: a target row and, if missed, why.
	fp_target() {
		local p med mn mx met
		p=$(casepath "$3")
		med=$(j "$2" "($p).ratio.median") mn=$(j "$2" "($p).ratio.min") mx=$(j "$2" "($p).ratio.max")
		[ -n "$med" ] && [ "$med" != null ] || return 0
		met=$(ratio_verdict "$med" "$mn" "$mx" "$4")
		target "fast path, $1 ≤ ${4}x the reference" "$(f %.2f "$med")x [$(f %.2f "$mn"), $(f %.2f "$mx")] ($(f %.0f "$(j "$2" "($p).median")") vs $(f %.0f "$(j "$2" .reference.median)") ns)" "$met"
		case $met in
		yes | undecided*) ;;
		*) miss no "**Fast path, $1: $(f %.2f "$med")x the reference against ${4}x" \
			"($(f %.0f "$(calc "100 * ($med / $4 - 1)")") % over).** $(f %.0f "$(j "$2" "($p).median")") ns where the reference (parse, one array" \
			"lookup, two stores) takes $(f %.0f "$(j "$2" .reference.median)") ns. Where the rest goes: *Profile of the beat path* below." ;;
		esac
	}
	fp_target "known agent, no auth (1,024 agents)" fp-hot.json "known agent, no auth" 1.3
	fp_target "authenticated (1,024 agents)" fp-hot.json "known agent, authenticated" 2
	fp_target "with acknowledgement (1,024 agents)" fp-hot.json "beat with acknowledgement" 2.5
	fp_target "authenticated at 65,536 agents (reference at 65,536)" fp-fleet.json "known agent, authenticated" 2
	for c in fp-hot fp-fleet; do
		bad=$(j $c.json '[.cases[] | select(.counted != .expected)] | length')
		[ "${bad:-0}" -eq 0 ] || n "- **Warning**: in $c, vigil did not count every beat as the case intended: $(j $c.json -c '[.cases[] | select(.counted != .expected) | {name, counted, expected}]')"
	done
fi

# ---------------------------------------------------------- 2 throughput
# spread3 FILE PATH SCALE FMT: "median [min, max]" of a {min,median,max} object.
spread3() {
	local m
	m=$(j "$1" "$2.median")
	[ -z "$m" ] || [ "$m" = null ] && { echo "–"; return; }
	echo "$(f "$4" "$(calc "$m / $3")") [$(f "$4" "$(calc "$(j "$1" "$2.min") / $3")"), $(f "$4" "$(calc "$(j "$1" "$2.max") / $3")")]"
}
# lf_range NAME: "median min max" of a receiver's loss-free rate: over its
# searches, or (generator-bound: no search) over its runs at that rate.
# shellcheck disable=SC2016 # jq's own $s
lf_range() {
	j "tp-$1.json" 'if (.searches | length) > 0 then (.searches | map(select(. > 0))) as $s
		| if ($s | length) == 0 then "null null null" else "\(.loss_free_pps) \($s | min) \($s | max)" end
		else "\(.loss_free_pps) \(.at_loss_free.accepted_pps.min // "null") \(.at_loss_free.accepted_pps.max // "null")" end'
}
# quotient A_JSON_PATH B_JSON_PATH FILE_A FILE_B: "median min max" of A/B from
# two {min,median,max} objects (unpaired: min/max over max/min).
quotient() {
	awk -v am="$(j "$3" "$1.median")" -v an="$(j "$3" "$1.min")" -v ax="$(j "$3" "$1.max")" \
		-v bm="$(j "$4" "$2.median")" -v bn="$(j "$4" "$2.min")" -v bx="$(j "$4" "$2.max")" 'BEGIN {
		if (am == "" || am == "null" || bm + 0 == 0 || bn + 0 == 0 || bx + 0 == 0) { print "null null null"; exit }
		printf "%.4f %.4f %.4f\n", am / bm, an / bx, ax / bn }'
}
TP_ROWS="ceiling|no-op XDP_DROP (ceiling)
touch|reference: no-op that reads the frame
vigil|vigil (native XDP, vigil run)
baseline|userspace baseline (UDP, recvmmsg x64)
xsk|AF_XDP baseline (XDP redirect, copy mode)"
if have tp-ceiling.json && have tp-vigil.json; then
	CR=$(j tp-vigil.json '.at_common_rate.rate // empty')
	t "### 2. Throughput: one veth pair, authenticated beats, saturated and loss-free"
	t ""
	t "Generator engine: $(j tp-vigil.json .engine); every receiver on CPU $RX_CPU. Figures: median [min, max] of the runs."
	t ""
	t "| receiver (on CPU $RX_CPU) | saturated: accepted Mpps | saturated: CPU ns per beat | loss-free Mpps (searches agree within 10 %?) | CPU ns per beat at the loss-free rate | CPU ns per beat at $(f %.2f "$(calc "${CR:-0} / 1e6")") Mpps | CPU $RX_CPU before the case: busy, steal; also running |"
	t "|---|---|---|---|---|---|---|"
	while IFS='|' read -r name label; do
		have "tp-$name.json" || continue
		read -r lm ln lx <<<"$(lf_range "$name")"
		if [ "$lm" = null ] || [ "$lm" = 0 ]; then
			lfc="none ≥ 0.1 Mpps"
		else
			lfc="$(f %.3f "$(calc "$lm / 1e6")") [$(f %.3f "$(calc "$ln / 1e6")"), $(f %.3f "$(calc "$lx / 1e6")")]"
			[ "$(j "tp-$name.json" .generator_bound)" = true ] && lfc="≥ $lfc (generator-bound)"
			[ "$(j "tp-$name.json" .agreed)" = true ] && lfc="$lfc, yes" || lfc="$lfc, **no**"
		fi
		idle=$(j "tp-$name.json" 'if .idle_check then "\(.idle_check.busy_pct | floor) %, \(.idle_check.steal_pct | floor) %\(if .idle_check.others != "" then "; \(.idle_check.others)" else "" end)\(if .idle_check.busy_pct > 5 then " — **not idle**" else "" end)" else "–" end')
		sat=$(spread3 "tp-$name.json" .saturated.accepted_pps 1e6 %.3f)
		[ "$(j "tp-$name.json" .generator_bound)" = true ] && sat="≥ $sat (generator-bound)"
		t "| $label | $sat | $(spread3 "tp-$name.json" .saturated.rx_ns_per_beat 1 %.0f) | $lfc | $(spread3 "tp-$name.json" .at_loss_free.rx_ns_per_beat 1 %.0f) | $(spread3 "tp-$name.json" .at_common_rate.rx_ns_per_beat 1 %.0f) | $idle |"
	done <<<"$TP_ROWS"
	t ""
	t "Saturated: the generator flat out, 5 runs; accepted = what the receiver counted. Loss-free:"
	t "generated − accepted ≤ $(j tp-vigil.json .loss_tolerance) of generated over a $(f %.1f "$(j tp-vigil.json .flat_out.seconds)") s run; the search is repeated until two"
	t "searches agree within 10 % (the figure is their mean; the brackets span every search). CPU ns per"
	t "beat = run time of the threads on CPU $RX_CPU (the scheduler's own count: the threaded NAPI"
	t "poller, the daemon or baseline) / beats accepted. Before each receiver its CPU is"
	t "watched with nothing sent: anything else running there shows in the last column, and its"
	t "figures are then not the receiver's alone. The no-op ceiling never reads the packet; any program"
	t "that judges a beat must pull the frame's cache lines, which the reference row shows on its own."
	t ""
	if have bpfstats-vigil.json; then
		t "| XDP program under traffic (flat out, one run, BPF_ENABLE_STATS) | runs | ns per run | xlated insns | JITed bytes | verifier insns |"
		t "|---|---|---|---|---|---|"
		for x in ceiling touch vigil; do
			have "bpfstats-$x.json" || continue
			t "| $(j "bpfstats-$x.json" .prog) | $(j "bpfstats-$x.json" .run_cnt) | $(f %.0f "$(j "bpfstats-$x.json" .ns_per_run)") | $(j "bpfstats-$x.json" .xlated_insns) | $(j "bpfstats-$x.json" .jited_bytes) | $(j "bpfstats-$x.json" .verified_insns) |"
		done
		t ""
		t "ns per run: the kernel's own count of time inside the program (\`kernel.bpf_stats_enabled\`'s"
		t "run_time_ns / run_cnt), with the frames arriving as they do above: the rest of the CPU per beat"
		t "is veth, NAPI and the frame's memory. Hardware counters (cycles, cache misses) are not available"
		t "on this machine kind, so \`bpftool prog profile\` cannot run; see *Profile of the beat path*."
		t ""
	fi
	# Targets (issue 13), each a ratio with its spread.
	read -r qm qn qx <<<"$(quotient .saturated.accepted_pps .saturated.accepted_pps tp-vigil.json tp-touch.json)"
	met=$(ratio_verdict "$qm" "$qn" "$qx" 0.6 ge)
	target "saturated accepted rate ≥ 60 % of the frame-reading no-op" "$(f %.0f "$(calc "100 * $qm")") % [$(f %.0f "$(calc "100 * $qn")"), $(f %.0f "$(calc "100 * $qx")")]" "$met"
	[ "$met" = "**no**" ] && miss no "**Saturated, vigil accepts $(f %.0f "$(calc "100 * $qm")") % of what the frame-reading no-op accepts, against 60 %.**" \
		"Per beat on the receiving CPU that is $(f %.0f "$(j tp-vigil.json .saturated.rx_ns_per_beat.median)") ns against $(f %.0f "$(j tp-touch.json .saturated.rx_ns_per_beat.median)") ns: vigil's own work is the difference" \
		"(with the $(j tp-vigil.json .engine) engine every receiver also pays for the skb; see Method). Where it goes: *Profile of the beat path*."
	read -r vm vn vx <<<"$(lf_range vigil)"
	read -r cm cn cx <<<"$(lf_range ceiling)"
	read -r qm qn qx <<<"$(awk -v am="$vm" -v an="$vn" -v ax="$vx" -v bm="$cm" -v bn="$cn" -v bx="$cx" 'BEGIN {
		if (am == "null" || bm == "null" || bm + 0 == 0 || bn + 0 == 0) print "null null null"
		else printf "%.4f %.4f %.4f\n", am / bm, an / bx, ax / bn }')"
	met=$(ratio_verdict "$qm" "$qn" "$qx" 0.9 ge)
	stable=$(j tp-vigil.json 'if .agreed and .at_loss_free.accepted_pps.median > 0 and ((.at_loss_free.accepted_pps.max - .at_loss_free.accepted_pps.min) <= 0.1 * .at_loss_free.accepted_pps.median) then "stable within 10 %" else "**not** stable within 10 %" end')
	[ "$met" = yes ] && [ "${stable#\*\*not}" != "$stable" ] && met="**no** (not stable)"
	target "loss-free rate ≥ 90 % of the no-op ceiling, stable within 10 % over 5 runs" "$(f %.0f "$(calc "100 * $qm")") % [$(f %.0f "$(calc "100 * $qn")"), $(f %.0f "$(calc "100 * $qx")")], $stable" "$met"
	[ "${met#\*\*no}" != "$met" ] && miss no "**vigil's loss-free rate is $(f %.0f "$(calc "100 * $qm")") % of the ceiling's, against 90 %; $stable.**" \
		"A loss-free rate is limited by the longest stall of the receiving thread the 256-frame ring absorbs" \
		"at that rate, so it tracks the per-beat cost (the saturated view) and the machine's stalls."
	if have tp-baseline.json; then
		read -r qm qn qx <<<"$(quotient .at_common_rate.rx_ns_per_beat .at_common_rate.rx_ns_per_beat tp-vigil.json tp-baseline.json)"
		met=$(ratio_verdict "$qm" "$qn" "$qx" 0.25)
		# The no-op XDP_DROP's own ratio: what no XDP program can go below.
		read -r fm fn fx <<<"$(quotient .at_common_rate.rx_ns_per_beat .at_common_rate.rx_ns_per_beat tp-ceiling.json tp-baseline.json)"
		target "CPU per beat ≤ 1/4 of the recvmmsg baseline's, at $(f %.2f "$(calc "${CR:-0} / 1e6")") Mpps" "$(f %.2f "$qm") [$(f %.2f "$qn"), $(f %.2f "$qx")] ($(f %.0f "$(j tp-vigil.json .at_common_rate.rx_ns_per_beat.median)") vs $(f %.0f "$(j tp-baseline.json .at_common_rate.rx_ns_per_beat.median)") ns; the no-op XDP_DROP itself: $(f %.2f "$fm") [$(f %.2f "$fn"), $(f %.2f "$fx")])" "$met"
		[ "$met" = "**no**" ] && miss no "**vigil uses $(f %.2f "$qm") of the recvmmsg baseline's CPU per beat at the same rate, against 1/4.**" \
			"Both pay for the veth ring and waking the NAPI thread per burst; the baseline adds an skb's trip through IP, UDP and a socket, and a process wake-up."
		if [ "$fm" != null ] && [ "$(calc "$fm > 0.25")" = 1 ]; then
			vn=$(j tp-vigil.json .at_common_rate.rx_ns_per_beat.median)
			cn=$(j tp-ceiling.json .at_common_rate.rx_ns_per_beat.median)
			bn=$(j tp-baseline.json .at_common_rate.rx_ns_per_beat.median)
			miss no "**CPU per beat ≤ 1/4 of the recvmmsg baseline's is below what the no-op XDP_DROP costs here:" \
				"$(f %.2f "$fm") of the baseline's at $(f %.2f "$(calc "${CR:-0} / 1e6")") Mpps.** At that rate every receiver pays mostly for the veth ring and a NAPI wake-up per burst" \
				"($(f %.0f "$cn") ns per beat with no program work at all), so no XDP program can meet it on this path." \
				"vigil's own work is what it costs above the no-op: $(f %.0f "$(calc "$vn - $cn")") ns per beat," \
				"$(f %.2f "$(calc "($vn - $cn) / $bn")") of the baseline's."
		fi
	fi
	if have tp-xsk.json; then
		read -r qm qn qx <<<"$(quotient .at_common_rate.rx_ns_per_beat .at_common_rate.rx_ns_per_beat tp-vigil.json tp-xsk.json)"
		met=$(ratio_verdict "$qm" "$qn" "$qx" 1)
		[ "$met" = yes ] && [ "$(calc "$qm < 1")" != 1 ] && met="**no**"
		target "CPU per beat below the AF_XDP baseline's, at $(f %.2f "$(calc "${CR:-0} / 1e6")") Mpps" "$(f %.2f "$qm") [$(f %.2f "$qn"), $(f %.2f "$qx")] ($(f %.0f "$(j tp-vigil.json .at_common_rate.rx_ns_per_beat.median)") vs $(f %.0f "$(j tp-xsk.json .at_common_rate.rx_ns_per_beat.median)") ns)" "$met"
		[ "$met" = "**no**" ] && miss no "**vigil uses $(f %.2f "$qm") of the AF_XDP baseline's CPU per beat at the same rate.**" \
			"The AF_XDP receiver copies each beat into its ring and wakes a process, but does no per-beat map work in the kernel."
	fi
	if have tp-vigil-stats0.json && have tp-vigil-stats1.json; then
		rej=$(jq -nc --slurpfile a "$RES/tp-vigil-stats0.json" --slurpfile b "$RES/tp-vigil-stats1.json" \
			'$b[0] | to_entries | map(select(.key != "packets" and .key != "beats" and .key != "events") | {key, value: (.value - $a[0][.key])} | select(.value != 0)) | from_entries')
		[ "$rej" = "{}" ] || n "- During the throughput run vigil also counted (not as accepted beats): \`$rej\`."
	fi
fi

# --------------------------------------------------------------- 3 scale
scale_files=$(cd "$RES" && for x in scale-*.json; do [ -e "$x" ] && echo "$x"; done | sort -t- -k2 -n)
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
	t "time → a consumer thread reading the event from the ring buffer (the daemon's lag, including"
	t "writing the event to its log, is in section 4). Memory: what the kernel charges for the"
	t "per-agent maps, divided by agents; the fixed part (wheel, source table) and the ring buffer"
	t "($(f %.0f "$(calc "$(j "$f1" .mem_ringbuf) / 1048576")") MiB here, 16 MiB by default) are extra."
	t ""
	if have scale-1000000.json; then
		tk=$(calc "$(j scale-1000000.json .tick_us) / 1000 + 0.5")
		p99=$(calc "$(j scale-1000000.json .suspect.p99) > $(j scale-1000000.json .dead.p99) ? $(j scale-1000000.json .suspect.p99) : $(j scale-1000000.json .dead.p99)")
		met=$(yesno "$(calc "$p99 <= $tk")")
		target "lateness p99 ≤ 1 tick + 0.5 ms at 1M agents" "$(f %.2f "$p99") ms (limit $(f %.1f "$tk") ms)" "$met"
		miss "$met" "**Detection lateness p99 at 1M agents is $(f %.2f "$p99") ms, against $(f %.1f "$tk") ms.**" \
			"Lateness is the wait for the next tick boundary (≤ 1 tick) plus the timer's latency plus the" \
			"walk of the due bucket; a p99 above the limit means the timer fired late (a busy or preempted" \
			"CPU) or a bucket took long. What would close it: a shorter tick (--tick-us), a quiet CPU for" \
			"the timer."
		sw=$(j scale-1000000.json .sweeper_pct)
		met=$(yesno "$(calc "$sw < 5")")
		target "sweeper < 5 % of one core, 1M agents beating once a second" "$(f %.2f "$sw") %" "$met"
		miss "$met" "**The sweeper uses $(f %.2f "$sw") % of a core at 1M agents, against 5 %.** It visits each" \
			"agent about once per deadline ($(j scale-1000000.json .visits_per_s) visits/s). What would close it:" \
			"re-filing slots further ahead (fewer visits per deadline)."
	fi
fi

# -------------------------------------------------------- 4 mass failure
mf_files=$(cd "$RES" && for x in mf-*.json; do [[ $x =~ ^mf-[0-9]+\.json$ ]] && echo "$x"; done | sort -t- -k2 -n)
if [ -n "$mf_files" ]; then
	t "### 4. Mass failure: every agent dies at once (vigil run, keys, SQLite event log)"
	t ""
	t "| agents | beat interval | all DEAD durable after the last DEAD deadline | … after the agents stopped | DEAD detection lateness p50 / p99 / max | detection → row written p50 / p99 | DEAD rows | DEAD rows written per second |"
	t "|---|---|---|---|---|---|---|---|"
	for mf in $mf_files; do
		a=$(j "$mf" .agents)
		t "| $a | $(f %.0f "$(calc "$(j "$mf" .interval_ms) / 1000")") s | $(f %.3f "$(calc "($(j "$mf" .last_recorded) - $(j "$mf" .last_deadline)) / 1e9")") s | $(f %.2f "$(calc "($(j "$mf" .last_recorded) - $(j "$mf" .t_stop)) / 1e9")") s | $(f %.2f "$(calc "$(j "$mf" .late_p50) / 1e6")") / $(f %.2f "$(calc "$(j "$mf" .late_p99) / 1e6")") / $(f %.2f "$(calc "$(j "$mf" .late_max) / 1e6")") ms | $(f %.3f "$(calc "$(j "$mf" .lag_p50) / 1e9")") / $(f %.3f "$(calc "$(j "$mf" .lag_p99) / 1e9")") s | $(j "$mf" .dead) of $a | $(j "$mf" 'if .first_recorded and .last_recorded > .first_recorded then (.dead * 1e9 / (.last_recorded - .first_recorded) | floor | tostring) else "–" end') |"
	done
	t ""
	t "The agents beat through the veth pair (authenticated, from vigil-trafficgen) until every UP was"
	t "in the log, then all stopped at once; SUSPECT is due 3 intervals, DEAD 5 intervals after an"
	t "agent's last beat."
	t "\"Durable\": the row's recorded time in the daemon's SQLite log (WAL, synchronous=FULL; the"
	t "batch commits right after)."
	t ""
fi

# ------------------------------------------------------------ 5 overload
ov_files=$(cd "$RES" && for x in ov-shared-0.json ov-threaded-search.json ov-threaded-0.json; do [ -s "$x" ] && echo "$x"; done)
if [ -n "$ov_files" ]; then
	t "### 5. Overload: flood (forged tags + random ids + replays, spoofed sources) while agents beat every 10 ms"
	t ""
	t "| setup | flood sent | judged by vigil | lost in the veth ring | false SUSPECT / DEAD / RECOVERED | victims' SUSPECT lateness p50 / max | victims' DEAD lateness p50 / max |"
	t "|---|---|---|---|---|---|---|"
	for m in $ov_files; do
		base=${m%.json}
		sec=$(j "$base-gen.json" .run.seconds)
		judged=$(j "$base-delta.json" '.bad_tag + .unknown_agent + .duplicates + .replayed')
		case $base in
		ov-shared-*) label="generator + receive softirq on CPU $GEN_CPU, flat out" ;;
		ov-threaded-0) label="threaded NAPI on CPU $RX_CPU, generator flat out" ;;
		*) label="threaded NAPI on CPU $RX_CPU, at vigil's loss-free flood rate" ;;
		esac
		t "| $label | $(f %.2f "$(calc "$(j "$base-gen.json" .run.generated_pps) / 1e6")") Mpps | $(f %.2f "$(calc "$judged / $sec / 1e6")") Mpps | $(j "$base-delta.json" .veth_drops) | $(j "$m" .false_alarms)$(j "$m" 'if .excused > 0 then " (+\(.excused) agent-side: no beat sent in time)" else "" end') | $(f %.2f "$(calc "$(j "$m" .suspect_p50) / 1e6")") / $(f %.2f "$(calc "$(j "$m" .suspect_max) / 1e6")") ms | $(f %.2f "$(calc "$(j "$m" .dead_p50) / 1e6")") / $(f %.2f "$(calc "$(j "$m" .dead_max) / 1e6")") ms |"
		met=$(yesno "$(calc "$(j "$m" .false_alarms) == 0")")
		target "zero false alarms under overload ($label)" "$(j "$m" .false_alarms)" "$met"
		miss "$met" "**$(j "$m" .false_alarms) false alarm(s) with $label.** The veth ring dropped" \
			"$(j "$base-delta.json" .veth_drops) frames before any program saw them, the agents' beats among" \
			"them; an agent whose beats are lost three times in a row is, correctly, SUSPECT. vigil" \
			"itself judged every frame it saw (see the note under the table). What would close it: see" \
			"*Reading the targets*: receive faster than the flood arrives."
	done
	first=$(echo "$ov_files" | head -1)
	unacc=0 late=0
	for m in $ov_files; do
		u=$(j "${m%.json}-delta.json" '.packets - .beats - .passed - .malformed - .bad_version - .unknown_agent - .duplicates - .not_allowed - .unauthenticated - .bad_tag - .replayed - .over_rate_agent - .over_rate_source')
		unacc=$((unacc + ${u#-}))
		late=$((late + $(j "${m%.json}-delta.json" '.reordered + .restarts')))
	done
	t ""
	t "$(j "$first" .agents) agents beat every 10 ms (deadline 30 ms, DEAD 20 ms later); $(j "$first" .victims) of them are killed halfway"
	t "through each flood (victims). Lateness: detection − deadline, from the durable log. False"
	t "alarms the agents' own send logs explain (tests/e2e/excuse.py: no beat sent between the last"
	t "accepted one and the deadline, the agent side) are shown apart."
	if [ "$unacc" -eq 0 ] && [ "$late" -eq 0 ]; then
		t "Every frame vigil saw was accepted as a beat of a beating agent or counted by a reason, and"
		t "none was accepted late or as a restart (raw/ov-*-delta.json)."
	else
		t "**$unacc frames are not accounted for by vigil's counters, $late beats were accepted late or as"
		t "a restart** (raw/ov-*-delta.json)."
	fi
	t """"
fi

# ---------------------------------------------------------- 6 starvation
st_on=$(cd "$RES" && ls st-vigil-*.json 2>/dev/null | grep -v 'st-vigil-0.json' | head -1)
if [ -n "$st_on" ] || have st-vigil-0.json || have st-bfd.json; then
	ms() { f %.1f "$(calc "$(j "$1" "$2") / 1e6")"; }
	t "### 6. Monitor starvation: the receive path starved, the agents not"
	t ""
	t "| monitor | false SUSPECT / DEAD / RECOVERED (of them, the agents' send logs excuse) | verdicts held: dropped (beat in time) / taken on evidence / unverified; longest | corrected (monitor_delay) | receive path behind, worst | killed agents: SUSPECT late p50 / p99 / max | DEAD late p50 / max |"
	t "|---|---|---|---|---|---|---|"
	for m in $st_on st-vigil-0.json; do
		have "$m" || continue
		if [ "$m" = st-vigil-0.json ]; then
			label="vigil, --hold-max-ms 0 (evidence ignored)"
		else
			label="vigil (verdicts wait for receive-path evidence, up to $(j "$m" .hold_max_ms) ms)"
		fi
		t "| $label | $(j "$m" .false_verdicts) ($(j "$m" .agent_side)) | $(j "$m" .held_cancelled) / $(j "$m" .held_decided) / $(j "$m" .held_unverified); $(ms "$m" .held_max_ns) ms | $(j "$m" .corrected) | $(ms "$m" .rx_behind_max_ns) ms | $(ms "$m" .suspect_p50) / $(ms "$m" .suspect_p99) / $(ms "$m" .suspect_max) ms | $(ms "$m" .dead_p50) / $(ms "$m" .dead_max) ms |"
	done
	if have st-bfd.json; then
		t "| FRR bfdd 8.4, 10 ms x 3 | $(j st-bfd.json .session_down) session downs | – | – | – | – | – |"
	fi
	t ""
	t "Agents beat every 10 ms (deadline 30 ms, DEAD 20 ms later) at real-time priority on CPU $GEN_CPU;"
	t "the receiving veth's threaded NAPI (its receive queue) runs at normal priority on CPU $RX_CPU,"
	t "against \`nice -n -10 stress-ng --cpu 2 --timer 1 --timer-freq 20000\` there and a flood of"
	t "forged beats through the same veth, for the whole run; halfway, 5 % of the agents are killed."
	t "\"False\": a verdict on an agent that was beating; the agents' send logs excuse one only when"
	t "they show the agent sent nothing between its last accepted beat and the deadline (the"
	t "machine held the beater off its CPU: tests/e2e/excuse.py). \"Worst behind\": the largest delay of"
	t "beats reaching XDP beyond their agent's least delay (vigil's MONITOR_BEHIND record). The"
	t "bfdd pair runs between the same namespaces, the monitor's bfdd on CPU $RX_CPU at normal"
	t "priority, its peer at real-time priority on CPU $GEN_CPU, under the same load."
	t ""
	if [ -n "$st_on" ]; then
		st_false=$(calc "$(j "$st_on" .false_verdicts) - $(j "$st_on" .agent_side)")
		met=$(yesno "$(calc "$st_false == 0")")
		target "zero false SUSPECT/DEAD/RECOVERED with the receive path starved (but what the agents' send logs excuse)" \
			"$st_false" "$met"
		miss "$met" "**$st_false false verdict(s) with the receive path starved.**" \
			"Held verdicts that reached the bound ($(j "$st_on" .held_unverified) unverified) mean the" \
			"receive path stayed behind longer than --hold-max-ms; raise it, or give the NAPI thread" \
			"(ksoftirqd) a CPU of its own (docs/operations.md)."
		met=$(yesno "$(calc "$(j "$st_on" .victim_suspect) == $(j "$st_on" .victims) && $(j "$st_on" .victim_dead) == $(j "$st_on" .victims)")")
		target "every killed agent still SUSPECT and DEAD under the same starvation" \
			"$(j "$st_on" .victim_suspect) / $(j "$st_on" .victim_dead) of $(j "$st_on" .victims)" "$met"
	fi
fi

# --------------------------------------------------------------- targets
# ------------------------------------------------------------ 7 fleet view
# bench/fleet.sh writes its own table (merge lag and rate of vigil fleet).
if have fleet.md; then
	cat "$RES/fleet.md" >>"$TABLES"
	t ""
fi

# ------------------------------------------------------- 8 lease takeover
# bench/lease-takeover.sh writes its own table (issue 11).
if have lease.md; then
	t "### Lease takeover after a monitor dies (bench/lease-takeover.sh)"
	t ""
	cat "$RES/lease.md" >>"$TABLES"
	t ""
fi

if [ ${#TARGETS[@]} -gt 0 ]; then
	t "### Targets (issues 6 and 13)"
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
set terminal pngcairo size 900,450 font ",10" noenhanced
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
	for r in ceiling vigil baseline xsk; do
		[ -s "$RES/tp-$r.log" ] || continue
		sed -n 's/^step *[0-9]*: *\(paced\|flat \) *[0-9]* pps *generated *\([0-9]*\) pps *accepted *\([0-9]*\) pps.*/\2 \3/p' \
			"$RES/tp-$r.log" | sort -n >"$RES/tp-$r.dat"
	done
	plot throughput.png <<EOF
set terminal pngcairo size 900,500 font ",10" noenhanced
set output "$PLOTS/throughput.png"
set title "Offered vs accepted, one veth pair (each point one step of the loss-free search)"
set xlabel "offered (Mpps)"
set ylabel "accepted (Mpps)"
set grid
set key top left
set xrange [0:*]
set yrange [0:*]
plot x title "no loss" dt 2 lc rgb "gray", \
     "$RES/tp-ceiling.dat" using (\$1/1e6):(\$2/1e6) with linespoints title "no-op XDP_DROP (ceiling)", \
     "$RES/tp-vigil.dat" using (\$1/1e6):(\$2/1e6) with linespoints title "vigil", \
     "$RES/tp-baseline.dat" using (\$1/1e6):(\$2/1e6) with linespoints title "userspace baseline", \
     "$RES/tp-xsk.dat" using (\$1/1e6):(\$2/1e6) with linespoints title "AF_XDP baseline"
EOF
fi
if [ -n "$scale_files" ]; then
	for sf in $scale_files; do
		jq -r '"\(.agents) \(.suspect.p50) \(.suspect.p99) \(.suspect.max) \(.dead.p99) \(.lag.p50) \(.lag.p99) \(.sweeper_pct)"' "$RES/$sf"
	done >"$RES/scale.dat"
	plot scale.png <<EOF
set terminal pngcairo size 900,500 font ",10" noenhanced
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
set terminal pngcairo size 900,500 font ",10" noenhanced
set output "$PLOTS/massfail.png"
set title "Mass failure: events in the durable log after every agent stopped"
set xlabel "seconds after the agents stopped"
set ylabel "fraction of the agents"
set yrange [0:1.05]
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
	echo "- Date: $(j machine.json '.started // empty' || true)$(have machine.json || date -u '+%Y-%m-%d %H:%M UTC'), $(($(date +%s) - T_START)) s"
	echo "- Machine: $(nproc) CPUs, $cpu, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM"
	echo "- Kernel: $(uname -r) ($(uname -m)); libbpf $(pkg-config --modversion libbpf 2>/dev/null || echo '?'); BPF compiled with clang-14"
	echo "- vigil: $(git -C "$(dirname "${BASH_SOURCE[0]}")/.." describe --always --dirty 2>/dev/null || echo '?')"
	echo "- Command: \`make bench\` (as root); the generator runs on CPU $GEN_CPU, the receiver on CPU $RX_CPU"
	engine=$(cat "$RES"/tp-*.json "$RES"/ov-*-gen.json 2>/dev/null | jq -rs 'map(.engine // empty) | unique | join(", ")')
	[ -n "$engine" ] && echo "- Traffic generator engine: $engine (see Method: rates of different engines do not compare)"
	if have machine.json; then
		echo "- Before the run: CPUs busy $(j machine.json .busy_before | sed 's/ / %, /g') % (1 s sample), load average $(j machine.json .loadavg)$(
			j machine.json .busy_before | awk '{ for (i = 1; i <= NF; i++) if ($i > 5) { print " — **the machine was not idle: figures are noisy**"; exit } }')"
	fi
	echo ""
	echo "## Results"
	echo ""
	cat "$TABLES"
	if [ -s "$MISSES" ]; then
		echo "### Missed targets"
		echo ""
		cat "$MISSES"
		echo ""
	fi
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

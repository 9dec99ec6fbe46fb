#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
#
# Per-part cost of the beat path by ablation (docs/BENCHMARKS.md, *Profile of
# the beat path*). Hardware counters are not available everywhere (not on
# the machines this was written on), so instead of sampling, each part is
# taken out in turn: bpf/ is copied, one edit removes the part, the copy is
# compiled as the Makefile compiles bpf/vigil.bpf.c, and `vigil-bench
# fastpath --variant` measures it on the state of a normally loaded vigil,
# paired with the reference monitor. The saving of a part is the drop in the
# ratio to the reference (robust to the machine's speed) and in ns.
#
#   bench/profile.sh [VARIANT...]     as root; prints a Markdown table
#
# Environment: PROFILE_RUNS (default 7), PROFILE_REPEAT (default 262144),
# PROFILE_KEEP=1 keeps the build directory. The variants' edits match the
# code as it is; when the code moves on, the edit that no longer applies
# says so, and the variant is skipped.
set -u
export LC_ALL=C

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=$ROOT/build
RUNS=${PROFILE_RUNS:-7}
REPEAT=${PROFILE_REPEAT:-262144}
ARCH=$(uname -m | sed -e 's/x86_64/x86/' -e 's/aarch64/arm64/')
BPF_CLANG=${BPF_CLANG:-clang-14}
WORK=$(mktemp -d "/tmp/vg$$-profile.XXXXXX") || exit 1
trap '[ "${PROFILE_KEEP:-0}" = 1 ] && echo "kept $WORK" >&2 || rm -rf "$WORK"' EXIT

[ "$(id -u)" -eq 0 ] || { echo "bench/profile.sh: must run as root" >&2; exit 1; }
[ -x "$BIN/vigil-bench" ] || { echo "bench/profile.sh: build/vigil-bench is not built (make bench)" >&2; exit 1; }

# NAME|FILE|what it takes out|perl substitution (applied with -0, must match)
VARIANTS='none||nothing (the copy as it is)|
no-evidence|accept.bpf.h|receive-path evidence: send-time estimate, loss accounting, the per-queue record (vigil_rxq)|s/\n\tbeat_evidence\(st, s, b, c->rv, state, rxq, p, c->now, &proof\);/\n\t__builtin_memset(&proof, 0, sizeof(proof));/
no-gap-histogram|checks.bpf.h|the gap histogram (run-length coded in the slot, under its lock)|s/\n\t\tif \(vigil_state_of\(s->state\) != VIGIL_AGENT_NEW && now > c->p.last_seen_ns\)\n\t\t\tvigil_gap_count\([^;]*;//
no-beat-counter|checks.bpf.h|the per-agent beat counter (under the slot lock)|s/\n\t\ts->beats\+\+;//
no-hold|accept.bpf.h|ending a held verdict (a read of hold_since_ns)|s/\n\tend_hold\(st, s, c->slot, state, p, proof.flags, c->now\);//
no-replay-lock|checks.bpf.h|the slot spin lock around the window, rate and counts (unsafe: measurement only)|s/\n\tbpf_spin_lock\(&s->lock\);//; s/\n\t\tbpf_spin_unlock\(&s->lock\);//; s/\n\tbpf_spin_unlock\(&s->lock\);//
index-only|checks.bpf.h|the computed index taken out: every id through the index hash, as before the layout (adds, not saves)|s/\n\tif \(d < max_agents\) \{/\n\tif (0) {/'

want=" $* "
build() { # NAME FILE SUBST -> $WORK/NAME/vigil.bpf.o
	local d=$WORK/$1
	mkdir -p "$d"
	cp -r "$ROOT/bpf" "$d/bpf"
	if [ -n "$2" ]; then
		local before after
		before=$(md5sum <"$d/bpf/$2")
		perl -0pi -e "$3" "$d/bpf/$2"
		after=$(md5sum <"$d/bpf/$2")
		if [ "$before" = "$after" ]; then
			echo "bench/profile.sh: $1: its edit no longer matches bpf/$2; skipped" >&2
			return 1
		fi
	fi
	"$BPF_CLANG" -g -O2 -target bpf -mcpu=v3 -D__TARGET_ARCH_"$ARCH" -Wall -Werror \
		-I"$ROOT/include" -I"$d/bpf" -I"$ROOT" -c "$d/bpf/vigil.bpf.c" -o "$d/vigil.bpf.o" 2>"$d/cc.err" || {
		echo "bench/profile.sh: $1: does not compile:" >&2
		cat "$d/cc.err" >&2
		return 1
	}
}
measure() { # NAME -> $WORK/NAME-{hot,fleet}.json
	if ! "$BIN/vigil-bench" fastpath --json --runs "$RUNS" --repeat "$REPEAT" --agents 1024 \
		--rate-burst 0 --variant "$WORK/$1/vigil.bpf.o" >"$WORK/$1-hot.json" 2>"$WORK/$1-hot.err" ||
		! "$BIN/vigil-bench" fastpath --json --runs "$RUNS" --repeat "$REPEAT" --agents 65536 \
			--variant "$WORK/$1/vigil.bpf.o" >"$WORK/$1-fleet.json" 2>"$WORK/$1-fleet.err"; then
		echo "bench/profile.sh: $1: vigil-bench fastpath failed:" >&2
		cat "$WORK/$1"-*.err >&2
		return 1
	fi
}
# cell FILE CASE: "ns (ratio x)"
cell() {
	jq -r --arg c "$2" '.cases[] | select(.name == $c) | "\(.median | floor) ns (\(.ratio.median * 100 | floor / 100)x)"' "$1"
}
val() { jq -r --arg c "$2" ".cases[] | select(.name == \$c) | $3" "$1"; }

echo "| variant: taken out | insns (xlated) | known, 1,024 agents | authenticated, 1,024 | authenticated, 65,536 | saving, authenticated 1,024 / 65,536 (ratio points, ns) |"
echo "|---|---|---|---|---|---|"
while IFS='|' read -r name file what subst; do
	[ "$want" = "  " ] || [ "${want#* "$name" }" != "$want" ] || [ "$name" = none ] || continue
	if ! build "$name" "$file" "$subst" || ! measure "$name"; then
		continue
	fi
	auth="known agent, authenticated"
	save="–"
	if [ "$name" != none ] && [ -s "$WORK/none-hot.json" ]; then
		save=$(awk -v a="$(val "$WORK/none-hot.json" "$auth" .ratio.median)" -v b="$(val "$WORK/$name-hot.json" "$auth" .ratio.median)" \
			-v c="$(val "$WORK/none-fleet.json" "$auth" .ratio.median)" -v d="$(val "$WORK/$name-fleet.json" "$auth" .ratio.median)" \
			-v e="$(val "$WORK/none-hot.json" "$auth" .median)" -v g="$(val "$WORK/$name-hot.json" "$auth" .median)" \
			-v h="$(val "$WORK/none-fleet.json" "$auth" .median)" -v i="$(val "$WORK/$name-fleet.json" "$auth" .median)" \
			'BEGIN { printf "%.2f, %.0f ns / %.2f, %.0f ns", a - b, e - g, c - d, h - i }')
	fi
	echo "| $name: $what | $(jq -r .programs.vigil_xdp.xlated_insns "$WORK/$name-hot.json") | $(cell "$WORK/$name-hot.json" "known agent, no auth") | $(cell "$WORK/$name-hot.json" "$auth") | $(cell "$WORK/$name-fleet.json" "$auth") | $save |"
done <<<"$VARIANTS"
echo ""
echo "Reference monitor: $(jq -r '.reference.median | floor' "$WORK/none-hot.json" 2>/dev/null) ns (1,024 agents), $(jq -r '.reference.median | floor' "$WORK/none-fleet.json" 2>/dev/null) ns (65,536); $RUNS paired rounds of $REPEAT beats per figure; $(uname -r), $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)."

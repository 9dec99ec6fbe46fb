/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * Pure decision logic shared by the XDP program, the sweeper and the host
 * (tests, fuzzing, `vigil status`). No map access, no clocks: callers pass
 * the current time in, so the host can test every edge deterministically.
 */
#ifndef VIGIL_LOGIC_H
#define VIGIL_LOGIC_H

#include "types.h"
#include "maps.h"

VIGIL_INLINE __u32 vigil_clamp_interval(__u32 ms, __u32 min_ms, __u32 max_ms)
{
	if (ms < min_ms)
		return min_ms;
	if (ms > max_ms)
		return max_ms;
	return ms;
}

/* How a beat's (incarnation, sequence) relates to what the slot holds. */
enum vigil_seq_verdict {
	VIGIL_SEQ_ACCEPT = 0,    /* newer sequence, same incarnation (or first beat) */
	VIGIL_SEQ_RESTART = 1,   /* higher incarnation: the agent restarted */
	VIGIL_SEQ_DUPLICATE = 2, /* same sequence again: changes nothing */
	VIGIL_SEQ_REORDERED = 3, /* older sequence or older incarnation: changes nothing */
};

VIGIL_INLINE enum vigil_seq_verdict
vigil_seq_classify(int first_beat, __u32 slot_inc, __u64 slot_seq, __u32 inc, __u64 seq)
{
	if (first_beat)
		return VIGIL_SEQ_ACCEPT;
	if (inc > slot_inc)
		return VIGIL_SEQ_RESTART;
	if (inc < slot_inc)
		return VIGIL_SEQ_REORDERED;
	if (seq == slot_seq)
		return VIGIL_SEQ_DUPLICATE;
	if (seq < slot_seq)
		return VIGIL_SEQ_REORDERED;
	return VIGIL_SEQ_ACCEPT;
}

/* What the sweeper does with a slot it visits. */
enum vigil_sweep_action {
	VIGIL_SWEEP_KEEP = 0,       /* not due: file again at *next_ns */
	VIGIL_SWEEP_TO_SUSPECT = 1, /* deadline passed: ALIVE/NEW -> SUSPECT, file at *next_ns */
	VIGIL_SWEEP_TO_DEAD = 2,    /* dead_misses more intervals passed: SUSPECT -> DEAD, leave wheel */
	VIGIL_SWEEP_DROP = 3,       /* nothing to watch (FREE, DEAD, LEFT): leave wheel */
};

/* Deadline of the first miss. */
VIGIL_INLINE __u64 vigil_deadline(__u64 last_seen_ns, __u32 interval_ms, __u32 multiplier)
{
	return last_seen_ns + (__u64)multiplier * interval_ms * VIGIL_NSEC_PER_MSEC;
}

/* Time at which a SUSPECT agent becomes DEAD. */
VIGIL_INLINE __u64 vigil_dead_at(__u64 last_seen_ns, __u32 interval_ms, __u32 multiplier,
				 __u32 dead_misses)
{
	return vigil_deadline(last_seen_ns, interval_ms, multiplier) +
	       (__u64)dead_misses * interval_ms * VIGIL_NSEC_PER_MSEC;
}

/*
 * Decide what to do with a slot at time `now`. Never early: SUSPECT only when
 * now >= deadline, DEAD only when now >= dead_at. *next_ns is when the slot
 * next needs a look (before the horizon clamp, see vigil_wheel_due()).
 */
VIGIL_INLINE enum vigil_sweep_action
vigil_sweep_eval(__u32 state, __u64 last_seen_ns, __u32 interval_ms, __u32 multiplier,
		 __u32 dead_misses, __u64 now, __u64 *next_ns)
{
	__u64 deadline = vigil_deadline(last_seen_ns, interval_ms, multiplier);
	__u64 dead_at = vigil_dead_at(last_seen_ns, interval_ms, multiplier, dead_misses);

	switch (state) {
	case VIGIL_AGENT_NEW:
	case VIGIL_AGENT_ALIVE:
		if (now < deadline) {
			*next_ns = deadline;
			return VIGIL_SWEEP_KEEP;
		}
		*next_ns = dead_at;
		return VIGIL_SWEEP_TO_SUSPECT;
	case VIGIL_AGENT_SUSPECT:
		if (now >= dead_at)
			return VIGIL_SWEEP_TO_DEAD;
		*next_ns = dead_at;
		return VIGIL_SWEEP_KEEP;
	default:
		return VIGIL_SWEEP_DROP;
	}
}

/*
 * The tick whose bucket a slot is filed in. Beats move deadlines without
 * touching the wheel, which is safe while they only move later; a beat that
 * shortens the advertised interval can move it earlier, but never closer to
 * the beat than multiplier x interval_min. Filing no further ahead than that
 * horizon therefore guarantees the slot is looked at no later than the first
 * tick at or after any deadline a later beat can set. Rounding up makes "due"
 * imply "now >= deadline", so nothing is ever reported early.
 */
VIGIL_INLINE __u64 vigil_wheel_due(__u64 now, __u64 next_ns, __u64 horizon_ns, __u64 tick_ns)
{
	__u64 t = next_ns;

	if (t > now + horizon_ns)
		t = now + horizon_ns;
	return (t + tick_ns - 1) / tick_ns;
}

/* Histogram bucket of a gap between beats: floor(log2(ms)) + 1, clamped. */
VIGIL_INLINE __u32 vigil_gap_bucket(__u64 gap_ns)
{
	__u64 ms = gap_ns / VIGIL_NSEC_PER_MSEC;
	__u32 b = 0;

	/* Branchy binary search: BPF has no count-leading-zeros. */
	if (ms >> 16) { ms >>= 16; b += 16; }
	if (ms >> 8) { ms >>= 8; b += 8; }
	if (ms >> 4) { ms >>= 4; b += 4; }
	if (ms >> 2) { ms >>= 2; b += 2; }
	if (ms >> 1) { ms >>= 1; b += 1; }
	b += (__u32)ms; /* ms is now 0 or 1: 0 ms -> bucket 0, [1,2) -> 1, ... */
	return b < VIGIL_GAP_BUCKETS ? b : VIGIL_GAP_BUCKETS - 1;
}

/* Horizon for a slot: the earliest a deadline can lie after a beat. */
VIGIL_INLINE __u64 vigil_horizon_ns(__u32 interval_min_ms, __u32 multiplier)
{
	return (__u64)multiplier * interval_min_ms * VIGIL_NSEC_PER_MSEC;
}

#endif /* VIGIL_LOGIC_H */

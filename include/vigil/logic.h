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

/* Count a gap between beats in an agent's histogram, run-length coded: the
 * last *run gaps all fell in bucket *bucket and are not in hist yet; they go
 * there when a gap falls in another bucket. A steady agent's gaps so stay in
 * two small fields, and the histogram (a cache line of its own) is written
 * only when the cadence changes. Readers add *run to hist[*bucket]. */
VIGIL_INLINE void vigil_gap_count(__u8 *bucket, __u32 *run, __u32 *hist, __u64 gap_ns)
{
	__u32 g = vigil_gap_bucket(gap_ns);

	if (g == *bucket) {
		(*run)++;
		return;
	}
	if (*run)
		hist[*bucket & (VIGIL_GAP_BUCKETS - 1)] += *run;
	*bucket = (__u8)g;
	*run = 1;
}

/*
 * Receive-path evidence (docs/design.md). A missed deadline proves a missing
 * beat only if the monitor would have seen a beat sent in time: the agent's
 * receive queue must already have processed some beat sent at or after the
 * deadline (its send-time watermark), and must not have been losing beats
 * over the agent's silence (a loss burst). Without that evidence the verdict
 * waits, at most hold_max_ns past the deadline; then it is taken anyway and
 * says so.
 */
/* While the monitor knows the agent's receive queue is in trouble (losing
 * beats, or behind), a verdict may wait this many times the hold bound: the
 * trouble, not the agent, is the likely cause. */
#define VIGIL_HOLD_TROUBLE_FACTOR 10
/* Losses are found only when the losing agents beat again: for this long
 * after a loss burst (send times), the evidence must pass a deadline by
 * half the hold bound before a verdict is taken. */
#define VIGIL_LOSS_RECENT_NS (1000 * VIGIL_NSEC_PER_MSEC)

enum vigil_gate {
	VIGIL_GATE_DECIDE = 0,     /* the receive path has caught up with the deadline */
	VIGIL_GATE_HOLD = 1,       /* no evidence yet: look again later */
	VIGIL_GATE_UNVERIFIED = 2, /* no evidence within the bound: decide, flagged */
};

VIGIL_INLINE enum vigil_gate vigil_verdict_gate(__u64 due_ns, __u64 wm_ns, __u64 now,
					       __u64 hold_max_ns, int losing, __u64 margin_ns)
{
	/* A queue that was losing beats over the silence is no evidence: the
	 * agent's own beats may be among those lost. After recent losses the
	 * watermark must pass the deadline by a margin, so that agents whose
	 * beats were lost have beaten again and shown their gaps. */
	if (wm_ns >= due_ns + margin_ns && !losing)
		return VIGIL_GATE_DECIDE;
	if (now >= due_ns + hold_max_ns)
		return VIGIL_GATE_UNVERIFIED;
	return VIGIL_GATE_HOLD;
}

/* Ticks until the next look at a held verdict: 1, 2, 4, then every 8, so
 * that a held slot costs one visit per 8 ticks, not one per tick, and a
 * verdict is taken within 8 ticks of its evidence (a longer step made it
 * wait up to as long again as it had been held); never past the bound. */
#define VIGIL_HOLD_STEP_MAX 8
VIGIL_INLINE __u64 vigil_hold_next_tick(__u64 now_tick, __u32 *step, __u64 bound_ns, __u64 tick_ns)
{
	__u32 s = *step ? *step * 2 : 1;
	__u64 t, end = (bound_ns + tick_ns - 1) / tick_ns;

	if (s > VIGIL_HOLD_STEP_MAX)
		s = VIGIL_HOLD_STEP_MAX;
	*step = s;
	t = now_tick + s;
	return t < end ? t : end;
}

/*
 * The agent's clock against the monitor's. Each timestamped beat gives
 * off = arrival - send_ts = (clock offset) + (this beat's delay). The
 * estimate is the least off seen, allowed to rise since by at most
 * VIGIL_CLOCK_DRIFT_PPM of the time elapsed: a minimum filter with a drift
 * bound, as NTP's clock filter. It follows an agent clock that runs slow
 * (within the bound) or fast (at once), and a receive path that stays behind
 * for minutes raises it by the drift bound only, never by its backlog. An
 * agent clock that steps backwards breaks it: agents send a clock that does
 * not step (CLOCK_MONOTONIC or CLOCK_BOOTTIME), and a restart (a new
 * incarnation, perhaps a new clock) starts afresh (*at = 0).
 * Returns the estimate at `now`.
 */
#define VIGIL_CLOCK_DRIFT_PPM 200
VIGIL_INLINE __s64 vigil_clock_update(__s64 *off_min, __u64 *at, __u64 now, __s64 off)
{
	__u64 elapsed = now - *at;
	__s64 est;

	if (!*at || now < *at) {
		*off_min = off;
		*at = now;
		return off;
	}
	if (elapsed > (1ULL << 50))
		elapsed = 1ULL << 50; /* 13 days: no overflow below */
	est = *off_min + (__s64)(elapsed / 1000 * VIGIL_CLOCK_DRIFT_PPM / 1000);
	if (off <= est) {
		*off_min = off;
		*at = now;
		return off;
	}
	return est;
}

/*
 * A timestamped beat's estimated send time on the monitor's clock: its
 * arrival less its delay beyond the agent's least (off_this - off_min).
 * Never later than the arrival; 0 when the timestamp says nothing usable
 * (a clock step larger than VIGIL_CLOCK_SANE_NS, or older than boot).
 * Differences are taken modulo 2^64, so any timestamp is safe.
 */
#define VIGIL_CLOCK_SANE_NS (1ULL << 40) /* 18 minutes */
VIGIL_INLINE __u64 vigil_send_estimate(__u64 now, __u64 send_ts, __s64 off_min)
{
	__u64 lag = (now - send_ts) - (__u64)off_min;

	if ((__s64)lag < 0)
		lag = 0;
	if (lag > VIGIL_CLOCK_SANE_NS || lag >= now)
		return 0;
	return now - lag;
}

/*
 * Lost beats. A beat whose sequence is `gap` above the next one expected
 * proves `gap` beats were sent and never reached XDP. The first of them left
 * within one interval of the beat before (the agent's promise, from that
 * beat's estimated send time prior_est), and about gap intervals before
 * this one (est): the earlier of the two is returned (0: unknown). A sender
 * held up before this beat does not make its lost ones look late.
 */
VIGIL_INLINE __u64 vigil_first_lost_ns(__u64 est, __u64 gap, __u32 interval_ms, __u64 prior_est)
{
	__u64 ivl = (__u64)interval_ms * VIGIL_NSEC_PER_MSEC, back = gap * ivl, t = 0;

	if (!est || !gap)
		return 0;
	if (back < est)
		t = est - back;
	if (prior_est && prior_est < est && (!t || prior_est + ivl < t))
		t = prior_est + ivl < est ? prior_est + ivl : est;
	return t;
}

/* Loss episodes merge when their send times come within this of each other;
 * one with at least VIGIL_LOSS_BURST lost beats is a burst. */
#define VIGIL_LOSS_JOIN_NS (10 * VIGIL_NSEC_PER_MSEC)
#define VIGIL_LOSS_BURST 4
#define VIGIL_LOSS_GAP_MAX 1000 /* a larger sequence jump is not counted as loss */

/* Add lost beats sent in [from, to] to a queue's current loss episode (or
 * start one); returns 1 when the episode is (still) a burst. */
VIGIL_INLINE int vigil_loss_add(__u64 *ep_from, __u64 *ep_to, __u32 *ep_beats, __u64 from,
				__u64 to, __u32 n)
{
	if (*ep_beats && from <= *ep_to + VIGIL_LOSS_JOIN_NS && to + VIGIL_LOSS_JOIN_NS >= *ep_from) {
		if (from < *ep_from)
			*ep_from = from;
		if (to > *ep_to)
			*ep_to = to;
		*ep_beats += n;
	} else {
		*ep_from = from;
		*ep_to = to;
		*ep_beats = n;
	}
	return *ep_beats >= VIGIL_LOSS_BURST;
}

/* Did a loss burst on the agent's queue cover its silence, from its last
 * beat's send time to the deadline? */
VIGIL_INLINE int vigil_loss_overlaps(__u64 burst_from, __u64 burst_to, __u64 last_seen,
				     __u64 due)
{
	return burst_to && burst_to >= last_seen && burst_from <= due;
}

/* Horizon for a slot: the earliest a deadline can lie after a beat. */
VIGIL_INLINE __u64 vigil_horizon_ns(__u32 interval_min_ms, __u32 multiplier)
{
	return (__u64)multiplier * interval_min_ms * VIGIL_NSEC_PER_MSEC;
}

#endif /* VIGIL_LOGIC_H */

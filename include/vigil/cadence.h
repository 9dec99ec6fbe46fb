/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * Adaptive cadence: the pure decision behind the agent library's beat
 * interval (libagent/libagent.c, docs/leases.md#adaptive-cadence). No clocks, no
 * I/O: the caller passes the time in, so every rule below is unit-tested
 * step by step (tests/unit/test_agent.c).
 *
 * What a beat promises. Every beat carries `interval_ms` = P, and P is a
 * promise: the next beat comes within P. The monitor's deadline is the beat's
 * arrival + multiplier x P. Hence the promise rule: a beat sent at t with P
 * means the following beat is due no later than t + P, whatever is decided
 * in between. A decision to lengthen the interval therefore takes effect one
 * beat late: the beat due under the old promise goes out on time announcing
 * the new, longer interval, and only the beats after it are spaced by it.
 * Shortening takes effect at once (a beat may always come early).
 *
 * The agent's own cadence: levels. Level k beats every min_ms x 2^k, capped
 * at max_ms; the top level is the first that reaches max_ms. The queue depth
 * moves the level one step at a time, with hysteresis in depth and in time:
 *   - up from k when depth >= high x 2^k,
 *   - down from k when depth <= low x 2^(k-1)   (low < high),
 *   - at most one step per dwell time (dwell_ms, or 4 x the interval of the
 *     current level), counted from the previous step.
 * Leaving level k upwards needs depth >= high x 2^k, coming back needs
 * depth <= low x 2^k: a load has to fall by the factor high/low (4 by
 * default) before a step is undone, so a load hovering around a threshold
 * moves the cadence once, not back and forth; and a step change of the load
 * moves it at most `top` times (every step in one direction).
 *
 * The monitor's advice (storm control): an acknowledgement's
 * recommend_interval_ms R > 0 means "no faster than R". The interval
 * announced is then max(own, R clamped into [min_ms, max_ms]); R = 0 gives
 * the own cadence back (shorter: at once). A lease holder never announces
 * more than a third of its remaining lease (cap_ms, not below min_ms), so its
 * renewals stay frequent enough.
 */
#ifndef VIGIL_CADENCE_H
#define VIGIL_CADENCE_H

#include "types.h"

#define VIGIL_CADENCE_QUEUE_HIGH 64 /* default `high` */
#define VIGIL_CADENCE_DWELL_BEATS 4 /* default dwell: this many current intervals */
#define VIGIL_CADENCE_MAX_LEVEL 16

struct vigil_cadence_cfg {
	__u32 min_ms;   /* the own cadence at an empty queue; hard lower bound */
	__u32 max_ms;   /* hard upper bound (>= min_ms) */
	__u32 dwell_ms; /* least time between two level steps; 0: 4 x the current level's interval */
	__u16 high;     /* step up from level k at depth >= high << k (0: 64) */
	__u16 low;      /* step down from level k at depth <= low << (k - 1) (0: high / 4; < high) */
	__u8 adaptive;  /* 0: the queue depth does not move the cadence */
};

struct vigil_cadence {
	__u64 next_ns;        /* the next beat is due at this time (0: at once) */
	__u64 level_since_ns; /* time of the last level step (0: none yet) */
	__u32 level;          /* the queue level */
	__u32 promised_ms;    /* what the last beat announced (0: no beat yet) */
	__u32 changes;        /* how often the announced interval changed */
	__u32 level_changes;  /* how often the level stepped */
};

/* Fill in defaults and make the bounds consistent. */
VIGIL_INLINE void vigil_cadence_cfg_fix(struct vigil_cadence_cfg *c)
{
	if (!c->min_ms)
		c->min_ms = 1;
	if (c->max_ms < c->min_ms)
		c->max_ms = c->min_ms;
	if (!c->high)
		c->high = VIGIL_CADENCE_QUEUE_HIGH;
	if (!c->low && c->high >= 4)
		c->low = c->high / 4;
	if (c->low >= c->high)
		c->low = c->high - 1;
}

/* The highest level: the first whose interval reaches max_ms. */
VIGIL_INLINE __u32 vigil_cadence_top(const struct vigil_cadence_cfg *c)
{
	__u32 k = 0;

	while (k < VIGIL_CADENCE_MAX_LEVEL && ((__u64)c->min_ms << k) < c->max_ms)
		k++;
	return k;
}

/* The interval of level k. */
VIGIL_INLINE __u32 vigil_cadence_level_ms(const struct vigil_cadence_cfg *c, __u32 k)
{
	__u64 ms = (__u64)c->min_ms << (k < VIGIL_CADENCE_MAX_LEVEL ? k : VIGIL_CADENCE_MAX_LEVEL);

	return ms > c->max_ms ? c->max_ms : (__u32)ms;
}

/* Depth thresholds of level k (saturating: a __u16 depth never reaches a
 * threshold above 65535). */
VIGIL_INLINE __u64 vigil_cadence_up_at(const struct vigil_cadence_cfg *c, __u32 k)
{
	return (__u64)c->high << k;
}

VIGIL_INLINE __u64 vigil_cadence_down_at(const struct vigil_cadence_cfg *c, __u32 k)
{
	return k ? (__u64)c->low << (k - 1) : 0;
}

/* Move the level at most one step for this queue depth at `now`, within the
 * hysteresis and the dwell time. Returns 1 when it stepped. */
VIGIL_INLINE int vigil_cadence_step(const struct vigil_cadence_cfg *c, struct vigil_cadence *s,
				    __u16 depth, __u64 now)
{
	__u64 dwell_ms = c->dwell_ms ? c->dwell_ms :
			 (__u64)VIGIL_CADENCE_DWELL_BEATS * vigil_cadence_level_ms(c, s->level);
	__u32 top = vigil_cadence_top(c);

	if (!c->adaptive) {
		s->level = 0;
		return 0;
	}
	if (s->level > top)
		s->level = top; /* bounds changed */
	if (s->level_since_ns && now - s->level_since_ns < dwell_ms * VIGIL_NSEC_PER_MSEC)
		return 0;
	if (s->level < top && depth >= vigil_cadence_up_at(c, s->level))
		s->level++;
	else if (s->level > 0 && depth <= vigil_cadence_down_at(c, s->level))
		s->level--;
	else
		return 0;
	s->level_since_ns = now;
	s->level_changes++;
	return 1;
}

/* The interval to announce, given the level: the own cadence, no faster
 * than the monitor's advice (clamped into the bounds), no slower than a
 * holder's cap. */
VIGIL_INLINE __u32 vigil_cadence_pick(const struct vigil_cadence_cfg *c,
				      const struct vigil_cadence *s, __u32 recommend_ms,
				      __u32 cap_ms)
{
	__u32 iv = c->adaptive ? vigil_cadence_level_ms(c, s->level) : c->min_ms;

	if (recommend_ms) {
		__u32 r = recommend_ms < c->min_ms ? c->min_ms :
			  recommend_ms > c->max_ms ? c->max_ms : recommend_ms;

		if (r > iv)
			iv = r;
	}
	if (cap_ms && iv > cap_ms)
		iv = cap_ms < c->min_ms ? c->min_ms : cap_ms;
	return iv;
}

/*
 * A beat goes out at `now`: decide the interval it announces (returned) and
 * when the following beat is due (s->next_ns). A beat at or after the due
 * time is a scheduled one: the next is due one announced interval after the
 * due time (beats stay on their grid), or after `now` when it was held off
 * longer than that (no catch-up burst). A beat before the due time (a status
 * change) keeps the earlier of the old due time and now + its own interval.
 * Either way s->next_ns - now <= the returned interval: the promise.
 */
VIGIL_INLINE __u32 vigil_cadence_on_send(const struct vigil_cadence_cfg *c,
					 struct vigil_cadence *s, __u16 depth,
					 __u32 recommend_ms, __u32 cap_ms, __u64 now)
{
	__u32 p;
	__u64 p_ns, next;

	vigil_cadence_step(c, s, depth, now);
	p = vigil_cadence_pick(c, s, recommend_ms, cap_ms);
	p_ns = (__u64)p * VIGIL_NSEC_PER_MSEC;
	if (s->next_ns && now < s->next_ns) {
		next = now + p_ns < s->next_ns ? now + p_ns : s->next_ns;
	} else {
		next = (s->next_ns ? s->next_ns : now) + p_ns;
		if (next <= now)
			next = now + p_ns;
	}
	if (s->promised_ms && p != s->promised_ms)
		s->changes++;
	s->promised_ms = p;
	s->next_ns = next;
	return p;
}

/* The beat due at `now` was not sent (probe mode: the check failed). No new
 * promise was made; the next slot follows on the same grid. */
VIGIL_INLINE void vigil_cadence_on_skip(const struct vigil_cadence_cfg *c,
					struct vigil_cadence *s, __u64 now)
{
	__u64 p_ns = (__u64)(s->promised_ms ? s->promised_ms : vigil_cadence_level_ms(c, s->level)) *
		     VIGIL_NSEC_PER_MSEC;
	__u64 next = (s->next_ns ? s->next_ns : now) + p_ns;

	s->next_ns = next <= now ? now + p_ns : next;
}

#endif /* VIGIL_CADENCE_H */

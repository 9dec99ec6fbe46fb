/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The monitor's own health, sampled by the sweeper: is a receive queue
 * late delivering beats to XDP, is the sweeper late on its ticks? Each is a
 * MONITOR_BEHIND episode, reported when it starts and (MONITOR_CAUGHT_UP)
 * when it ends; a verdict taken during one says so (VIGIL_EVF_MONITOR_BEHIND,
 * set in verdict_ready).
 */
#ifndef VIGIL_HEALTH_BPF_H
#define VIGIL_HEALTH_BPF_H

#include "events.bpf.h"

/* The receive queues are sampled this often; an episode ends after a whole
 * second without a late sample, so a machine that is often a little late
 * makes one long episode, not a flap per stall. */
#define HEALTH_PERIOD_NS (10 * VIGIL_NSEC_PER_MSEC)
#define HEALTH_CALM_MS 1000

struct health_ctx {
	__u64 now;
	__u64 behind_ns; /* more than this is behind: one tick */
	__u64 stall_ns;  /* the interface's longest NAPI stall (napi.bpf.h) */
	struct vigil_stats *st;
};

/* One MONITOR_BEHIND episode step: a sample `late` (or on time). */
static __always_inline void health_step(struct vigil_stats *st, __u64 *since, __u64 *max,
					__u32 *last_late_ms, __u32 *episodes, int late,
					__u64 lag_ns, __u32 part, __u32 slot, __u64 now)
{
	__u32 now_ms = (__u32)(now / VIGIL_NSEC_PER_MSEC);

	if (late) {
		*last_late_ms = now_ms;
		if (lag_ns > *max || !*since)
			*max = lag_ns;
		if (!*since) {
			*since = now;
			(*episodes)++;
			emit_health(st, VIGIL_EV_MONITOR_BEHIND, part, slot, lag_ns, 0, now);
		}
	} else if (*since && now_ms - *last_late_ms >= HEALTH_CALM_MS) {
		emit_health(st, VIGIL_EV_MONITOR_CAUGHT_UP, part, slot, *max, *since, now);
		*since = 0;
	}
}

/* bpf_loop step: sample one receive queue that has carried beats: the least
 * delay of its beats since the last sample, or what the kernel shows of a
 * stall of the interface's receive queues, whichever is more. A stalled
 * queue delivers no beat at all, so without that a queue that accepted no
 * beat since the last sample could not be judged either way. */
static long health_rxq(__u64 i, struct health_ctx *h)
{
	__u32 q = (__u32)i;
	struct rxq_state *r = bpf_map_lookup_elem(&vigil_rxq, &q);
	__u64 lag;

	if (!r)
		return 1;
	lag = r->win_lag_min_ns;
	if (!r->beats || (lag == ~0ULL && h->stall_ns <= h->behind_ns))
		return 0;
	if (lag == ~0ULL || h->stall_ns > lag)
		lag = h->stall_ns;
	r->win_lag_min_ns = ~0ULL;
	health_step(h->st, &r->behind_since_ns, &r->behind_max_ns, &r->last_late_ms, &r->episodes,
		    lag > h->behind_ns, lag, VIGIL_PART_RXQ, q, h->now);
	return 0;
}

/* The sweeper's own lateness, `lag` ticks of backlog at this callback. */
static __always_inline void health_sweeper(struct wheel_state *ws, struct vigil_stats *st,
					   __u64 lag, __u64 now)
{
	__u64 max = ws->behind_max_ticks * tick_ns;
	__u32 episodes = (__u32)ws->behind_episodes;

	ws->lag_ticks = lag;
	health_step(st, &ws->behind_since_ns, &max, &ws->last_late_ms, &episodes, lag > 1,
		    lag * tick_ns, VIGIL_PART_SWEEPER, NO_SLOT, now);
	ws->behind_max_ticks = max / tick_ns;
	ws->behind_episodes = episodes;
}

#endif /* VIGIL_HEALTH_BPF_H */

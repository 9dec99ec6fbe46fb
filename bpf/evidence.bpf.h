/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Receive-path evidence, the beat path's half (docs/design.md,
 * "receive-path evidence"). A timestamped beat moves the agent's clock
 * estimate and its queue's send-time watermark, and proves beats lost by
 * the gap in its sequence; from these, whether a verdict taken before it
 * was the monitor's delay rather than the agent's. A verdict the sweeper
 * holds waiting for this evidence (verdict_ready, in wheel.bpf.h) is ended
 * here when a beat clears the hold first.
 */
#ifndef VIGIL_EVIDENCE_BPF_H
#define VIGIL_EVIDENCE_BPF_H

#include "vigil/logic.h"
#include "events.bpf.h"

/*
 * What a timestamped beat says about the receive path: the agent's clock
 * estimate moves, and the queue's send-time watermark with it. Returns the
 * beat's estimated send time on the monitor's clock (the earliest it could
 * have reached XDP), or 0 for a beat without a timestamp.
 */
static __always_inline __u64 note_send_time(struct vigil_stats *st, struct agent_slot *s,
					    const struct vigil_beat_info *b, __u32 rxq,
					    const struct prior_beat *p, __u64 gap,
					    __u64 *first_lost, __u64 now)
{
	__u32 q = rxq & (VIGIL_MAX_RXQ - 1), ivl;
	struct rxq_state *r;
	__u64 est, lag;
	__s64 off;

	if (!b->send_ts_ns)
		return 0;
	off = vigil_clock_update(&s->clock_off_ns, &s->clock_at_ns, now,
				 (__s64)(now - b->send_ts_ns));
	s->rxq = (__u16)q;
	est = vigil_send_estimate(now, b->send_ts_ns, off);
	if (!est)
		return 0;
	lag = now - est;
	r = bpf_map_lookup_elem(&vigil_rxq, &q);
	if (!r)
		return est;
	/* Losses first: a sweeper that sees the watermark move sees them too. */
	ivl = vigil_clamp_interval(b->interval_ms, s->interval_min_ms, s->interval_max_ms);
	*first_lost = vigil_first_lost_ns(est, gap, ivl,
					  p->send_ts_ns ? vigil_send_estimate(p->last_seen_ns,
									      p->send_ts_ns, off) : 0);
	if (*first_lost) {
		__u64 last = est - (__u64)ivl * VIGIL_NSEC_PER_MSEC;

		if (vigil_loss_add(&r->loss_from_ns, &r->loss_to_ns, &r->loss_beats, *first_lost,
				   last > *first_lost ? last : *first_lost, (__u32)gap)) {
			if (r->burst_from_ns != r->loss_from_ns)
				r->bursts++;
			r->burst_from_ns = r->loss_from_ns;
			r->burst_to_ns = r->loss_to_ns;
		}
		r->lost += gap;
		st->lost_beats += gap;
	}
	/* One CPU serves a queue at a time; a lost race only delays evidence. */
	if (est > r->sent_wm_ns)
		r->sent_wm_ns = est;
	r->last_rx_ns = now;
	r->lag_ns = lag;
	if (lag < r->win_lag_min_ns)
		r->win_lag_min_ns = lag;
	r->beats++;
	return est;
}

/* What the beat proves about a verdict its prior deadline led to, in
 * *proof (no flags: nothing). Its send time and the beats its sequence shows
 * lost are noted on the way, for the sweeper's holds. */
static __always_inline void beat_evidence(struct vigil_stats *st, struct agent_slot *s,
					  const struct vigil_beat_info *b,
					  enum vigil_replay_verdict v, __u32 state, __u32 rxq,
					  const struct prior_beat *p, __u64 now,
					  struct verdict_note *proof)
{
	__u64 est, gap = 0, first_lost = 0;

	if (v == VIGIL_REPLAY_RESTART)
		s->clock_at_ns = 0; /* a new incarnation may bring a new clock */
	/* Beats of this incarnation that never arrived (a bounded gap: a larger
	 * jump is a sender that moved its sequence, not a loss). */
	if (v == VIGIL_REPLAY_NEWER && state != VIGIL_AGENT_NEW && b->seq > p->seq + 1 &&
	    b->seq - p->seq - 1 <= VIGIL_LOSS_GAP_MAX)
		gap = b->seq - p->seq - 1;
	est = note_send_time(st, s, b, rxq, p, gap, &first_lost, now);

	/* Sent in time, yet the verdict was taken: what held it up came after
	 * the agent (the receive path, the network). Or beats sent in time were
	 * lost on the way (its sequence says so). */
	proof->flags = 0;
	proof->aux_ns = 0;
	if (est && est <= p->deadline) {
		proof->flags = VIGIL_EVF_MONITOR_DELAY;
		proof->aux_ns = est;
	} else if (first_lost && first_lost <= p->deadline) {
		proof->flags = VIGIL_EVF_BEATS_LOST;
		proof->aux_ns = first_lost;
	}
}

/* A hold of `held_ns` ended with a verdict: count it. */
static __always_inline void count_hold(struct vigil_stats *st, __u64 held_ns)
{
	st->held_ns += held_ns;
	if (held_ns > st->held_max_ns)
		st->held_max_ns = held_ns;
}

/*
 * A verdict the sweeper holds (hold_since_ns) belongs to whoever clears it
 * first. A beat that does so decides it from its own send time: sent in
 * time for the deadline, the agent never missed it and nothing is
 * reported; sent after it, the agent did miss it, and the SUSPECT the hold
 * kept back is reported now, followed by the recovery this beat is. Called
 * after the beat's liveness facts are stored, so a sweeper that finds the
 * hold gone sees them. Returns the agent's state afterwards.
 */
static __always_inline __u32 end_hold(struct vigil_stats *st, struct agent_slot *s, __u32 slot,
				      __u32 state, const struct prior_beat *p, __u16 in_time,
				      __u64 now)
{
	__u64 h = s->hold_since_ns;
	struct verdict_note note = { .flags = VIGIL_EVF_HELD | VIGIL_EVF_BY_BEAT };

	if (!h || __sync_val_compare_and_swap(&s->hold_since_ns, h, 0) != h)
		return state;
	note.aux_ns = now > h ? now - h : 0;
	count_hold(st, note.aux_ns);
	if (in_time || (state != VIGIL_AGENT_ALIVE && state != VIGIL_AGENT_NEW)) {
		/* Sent in time, delayed or lost on the way (or a held DEAD,
		 * which the recovery below ends). */
		st->held_cancelled++;
		return state;
	}
	st->held_by_beat++;
	emit_as_was(st, s, slot, VIGIL_EV_SUSPECT, state, VIGIL_AGENT_SUSPECT, p, now, &note);
	emit(st, s, slot, s->agent_id, VIGIL_EV_RECOVERED, VIGIL_AGENT_SUSPECT, VIGIL_AGENT_ALIVE,
	     now, VIGIL_REJECT_NONE, NULL, NULL);
	if (state == VIGIL_AGENT_NEW)
		__sync_val_compare_and_swap(&s->state, VIGIL_AGENT_NEW, VIGIL_AGENT_ALIVE);
	return VIGIL_AGENT_ALIVE;
}

#endif /* VIGIL_EVIDENCE_BPF_H */

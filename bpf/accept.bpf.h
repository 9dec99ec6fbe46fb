/* SPDX-License-Identifier: GPL-2.0 */
/*
 * An accepted beat: one that passed every check (checks.bpf.h). It tells
 * what it proves about the verdict its deadline led to (evidence.bpf.h),
 * stores its liveness facts in the agent's slot (and its source as the
 * agent's own address), renews the lease it names,
 * ends a hold, and takes the agent's state edges. The beat path never
 * touches the timing wheel: an agent the sweeper dropped is handed back
 * through the inbox.
 */
#ifndef VIGIL_ACCEPT_BPF_H
#define VIGIL_ACCEPT_BPF_H

#include "vigil/logic.h"
#include "events.bpf.h"
#include "checks.bpf.h"
#include "evidence.bpf.h"
#include "lease.bpf.h"
#include "wheel.bpf.h"

/* What the beat says about the agent, into its slot, counted. Its
 * sequence, the window and the counts were committed under the slot's lock
 * (check_replay). */
static __always_inline void store_beat(struct vigil_stats *st, struct agent_slot *s,
				       const struct vigil_beat_info *b,
				       enum vigil_replay_verdict v, __u64 now)
{
	if (v == VIGIL_REPLAY_LATE) {
		/* Authentic and inside the window, just out of order: it still
		 * proves the agent alive, but everything else it reports is older
		 * than what the slot holds (status, interval, lease), so only
		 * liveness is taken from it. */
		st->reordered++;
	} else {
		s->send_ts_ns = b->send_ts_ns;
		s->interval_ms = vigil_clamp_interval(b->interval_ms, s->interval_min_ms,
						      s->interval_max_ms);
		s->status = b->status;
		s->queue_depth = b->queue_depth;
		s->lease_id = b->lease_id;
	}
	if (v == VIGIL_REPLAY_RESTART)
		st->restarts++;
	/* Liveness last, and with an exchange: a full barrier, so the state
	 * read that follows (beat_edges) comes after it on every CPU. The
	 * sweeper's side is take_verdict: whichever of the two reads second
	 * sees the other's write. */
	__sync_lock_test_and_set(&s->last_seen_ns, now);
	st->beats++;
}

/* The state edges the beat takes from `state`. A RECOVERED carries the
 * beat's proof, and counts as a false verdict undone when the proof is the
 * monitor's own delay. */
static __always_inline void beat_edges(struct vigil_stats *st, struct agent_slot *s, __u32 slot,
				       __u32 state, const struct vigil_beat_info *b, int late,
				       const struct verdict_note *proof, __u64 now)
{
	/* The sweeper is reporting an edge it just took: it answers this beat
	 * once that is done (take_verdict). */
	if (state & VIGIL_AGENT_BUSY)
		return;
	/* A late beat neither announces a departure a newer beat took back nor
	 * undoes one that overtook it: LEAVING is judged on the newest beat. */
	if (b->status == VIGIL_STATUS_LEAVING && !late) {
		if (state != VIGIL_AGENT_LEFT)
			transition(st, s, slot, state, VIGIL_AGENT_LEFT, VIGIL_EV_LEFT, now);
		return;
	}
	switch (state) {
	case VIGIL_AGENT_NEW:
		transition(st, s, slot, state, VIGIL_AGENT_ALIVE, VIGIL_EV_UP, now);
		break;
	case VIGIL_AGENT_SUSPECT:
	case VIGIL_AGENT_DEAD:
		if (!transition_noted(st, s, slot, state, VIGIL_AGENT_ALIVE, VIGIL_EV_RECOVERED,
				      now, proof))
			break;
		if (proof->flags & VIGIL_EVF_MONITOR_DELAY)
			st->corrected++;
		/* The sweeper dropped a DEAD agent from the wheel; hand it back. */
		if (state == VIGIL_AGENT_DEAD)
			hand_to_sweeper(st, slot);
		break;
	case VIGIL_AGENT_LEFT:
		if (late)
			break;
		if (transition(st, s, slot, state, VIGIL_AGENT_ALIVE, VIGIL_EV_UP, now))
			hand_to_sweeper(st, slot);
		break;
	}
}

/* The steps in their order: the evidence is judged against the slot as it
 * was, the facts are stored before the hold is ended (end_hold says why),
 * and the edges are taken last, from the state the slot is in by then. */
static __always_inline void accept_beat(const struct beat_ctx *c, __u32 rxq)
{
	struct vigil_stats *st = c->st;
	struct agent_slot *s = c->s;
	const struct vigil_beat_info *b = &c->b;
	const struct prior_beat *p = &c->p; /* the deadline this beat answers */
	int late = c->rv == VIGIL_REPLAY_LATE;
	__u32 state = vigil_state_of(READ_ONCE(s->state));
	struct verdict_note proof;

	beat_evidence(st, s, b, c->rv, state, rxq, p, c->now, &proof);
	store_beat(st, s, b, c->rv, c->now);
	if (!late)
		note_agent_source(c->k, c->src);
	if (c->rv == VIGIL_REPLAY_RESTART)
		emit(st, s, c->slot, s->agent_id, VIGIL_EV_RESTART, state, state, c->now,
		     VIGIL_REJECT_NONE, NULL, NULL);
	if (!late && b->lease_id)
		renew_lease(st, s, b, c->now);
	end_hold(st, s, c->slot, state, p, proof.flags, c->now);
	/* The edges start from the state as it is now, not as it was read
	 * above: a verdict the sweeper took meanwhile, on the facts before this
	 * beat's, is answered here (store_beat's exchange orders the facts
	 * before this read; the sweeper's side is take_verdict). */
	beat_edges(st, s, c->slot, READ_ONCE(s->state), b, late, &proof, c->now);
}

#endif /* VIGIL_ACCEPT_BPF_H */

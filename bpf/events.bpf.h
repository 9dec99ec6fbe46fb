/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Ring-buffer events to the daemon. Every record is framed by event_begin
 * and event_end: the event sequence is taken first, so a full ring buffer
 * shows up as a gap the daemon reconciles from the maps. Here are the
 * agent events (emit), the state edges that report themselves once
 * (transition) and the monitor's health events (emit_health); lease edges
 * (lease.bpf.h) and a SUSPECT reported late (evidence.bpf.h) are framed the
 * same way.
 */
#ifndef VIGIL_EVENTS_BPF_H
#define VIGIL_EVENTS_BPF_H

#include "vigil/logic.h"
#include "parse.bpf.h"
#include "maps.bpf.h"

/* vigil_event.slot of an event that names no slot. */
#define NO_SLOT 0xffffffffu

/* Hand out the next event sequence and reserve its record. The sequence is
 * taken even when the ring buffer is full, so the daemon sees the gap and
 * reconciles from the maps. Returns NULL (and counts it) when full. */
static __always_inline struct vigil_event *event_begin(struct vigil_stats *st, __u32 kind,
						       __u64 now, __u64 *seq_out)
{
	struct vigil_globals *g = bpf_map_lookup_elem(&vigil_globals, &zero);
	struct vigil_event *e;
	__u64 seq;

	if (!g)
		return NULL;
	seq = __sync_fetch_and_add(&g->event_seq, 1) + 1;
	*seq_out = seq;
	e = bpf_ringbuf_reserve(&vigil_events, sizeof(*e), 0);
	if (!e) {
		st->ringbuf_full++;
		return NULL;
	}
	__builtin_memset(e, 0, sizeof(*e));
	e->event_seq = seq;
	e->kind = kind;
	e->detected_ns = now;
	return e;
}

static __always_inline void event_end(struct vigil_stats *st, struct vigil_event *e)
{
	bpf_ringbuf_submit(e, 0);
	st->events++;
}

/* How a verdict was reached, for the event (vigil_event.flags, aux_ns). */
struct verdict_note {
	__u16 flags;
	__u64 aux_ns;
};

/* An agent's last accepted beat as the slot held it at one moment: what a
 * decision was taken on, and what its event reports. The beat path stores
 * new facts at any time, so a decision reads them once, here, and never
 * goes back to the slot for them. */
struct prior_beat {
	__u64 last_seen_ns, seq, deadline, send_ts_ns;
	__u32 incarnation, interval_ms;
};

static __always_inline void read_prior_beat(const struct agent_slot *s, struct prior_beat *p)
{
	p->last_seen_ns = READ_ONCE(s->last_seen_ns);
	p->seq = READ_ONCE(s->replay.top);
	p->send_ts_ns = READ_ONCE(s->send_ts_ns);
	p->incarnation = READ_ONCE(s->replay.incarnation);
	p->interval_ms = READ_ONCE(s->interval_ms);
	p->deadline = vigil_deadline(p->last_seen_ns, p->interval_ms, s->multiplier);
}

/* The agent's state changed with event `seq`: noted in its cold record, for
 * the daemon's reconciliation. */
static __always_inline void note_edge(__u32 slot, __u64 seq, __u64 now)
{
	struct agent_info *i = info_of(slot);

	if (i) {
		i->last_event_seq = seq;
		i->state_since_ns = now;
	}
}

/* An agent event (s may be NULL for refused beats of unknown agents). */
static __always_inline void emit(struct vigil_stats *st, struct agent_slot *s, __u32 slot,
				 __u64 agent_id, __u32 kind, __u32 prev, __u32 state, __u64 now,
				 __u32 reason, const struct src_addr *src,
				 const struct verdict_note *note)
{
	struct vigil_event *e;
	__u64 seq = 0;

	e = event_begin(st, kind, now, &seq);
	if (s && prev != state && seq)
		note_edge(slot, seq, now);
	if (!e)
		return;
	e->agent_id = agent_id;
	e->slot = slot;
	e->prev_state = prev;
	e->state = state;
	e->reason = reason;
	if (note) {
		e->flags = note->flags;
		e->aux_ns = note->aux_ns;
	}
	if (src)
		__builtin_memcpy(e->src_addr, src->a, sizeof(e->src_addr));
	if (s) {
		e->last_seen_ns = s->last_seen_ns;
		e->seq = s->replay.top;
		e->incarnation = s->replay.incarnation;
		e->interval_ms = s->interval_ms;
	} else {
		e->last_seen_ns = now;
	}
	event_end(st, e);
}

/* Take a state edge exactly once; report it when we won the race. */
static __always_inline int transition_noted(struct vigil_stats *st, struct agent_slot *s,
					    __u32 slot, __u32 from, __u32 to, __u32 kind, __u64 now,
					    const struct verdict_note *note)
{
	if (__sync_val_compare_and_swap(&s->state, from, to) != from)
		return 0;
	emit(st, s, slot, s->agent_id, kind, from, to, now, VIGIL_REJECT_NONE, NULL, note);
	return 1;
}

static __always_inline int transition(struct vigil_stats *st, struct agent_slot *s, __u32 slot,
				      __u32 from, __u32 to, __u32 kind, __u64 now)
{
	return transition_noted(st, s, slot, from, to, kind, now, NULL);
}

/* An agent event that reports the facts a decision was taken on (p), not
 * what the slot holds now: a beat may have moved them since. */
static __always_inline void emit_as_was(struct vigil_stats *st, struct agent_slot *s, __u32 slot,
					__u32 kind, __u32 prev, __u32 state,
					const struct prior_beat *p, __u64 now,
					const struct verdict_note *note)
{
	struct vigil_event *e;
	__u64 seq = 0;

	e = event_begin(st, kind, now, &seq);
	if (seq)
		note_edge(slot, seq, now);
	if (!e)
		return;
	e->agent_id = s->agent_id;
	e->slot = slot;
	e->prev_state = prev;
	e->state = state;
	e->last_seen_ns = p->last_seen_ns;
	e->seq = p->seq;
	e->incarnation = p->incarnation;
	e->interval_ms = p->interval_ms;
	if (note) {
		e->flags = note->flags;
		e->aux_ns = note->aux_ns;
	}
	event_end(st, e);
}

/* A MONITOR_BEHIND or MONITOR_CAUGHT_UP edge of one part of the monitor. */
static __always_inline void emit_health(struct vigil_stats *st, __u32 kind, __u32 part, __u32 slot,
					__u64 lag_ns, __u64 since_ns, __u64 now)
{
	struct vigil_event *e;
	__u64 seq;

	e = event_begin(st, kind, now, &seq);
	if (!e)
		return;
	e->slot = slot;
	e->state = part;
	e->aux_ns = lag_ns;
	e->last_seen_ns = since_ns ? since_ns : now;
	event_end(st, e);
}

#endif /* VIGIL_EVENTS_BPF_H */

/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Leases in the kernel half. The daemon grants a lease (struct lease_slot);
 * from then on the holder's beats renew it or give it up (renew_lease), and
 * the sweeper expires it once they stop (visit_lease, in wheel.bpf.h). Each
 * edge leaves HELD by a compare-and-swap, so it happens and is reported
 * once (lease_transition).
 */
#ifndef VIGIL_LEASE_BPF_H
#define VIGIL_LEASE_BPF_H

#include "events.bpf.h"

/* A lease edge: the holder lost it (expired) or gave it up (released). */
static __always_inline void lease_transition(struct vigil_stats *st, struct lease_slot *l,
					     __u32 lease_id, __u32 to, __u32 kind, __u64 now)
{
	struct vigil_event *e;
	__u64 seq;

	if (__sync_val_compare_and_swap(&l->state, VIGIL_LEASE_HELD, to) != VIGIL_LEASE_HELD)
		return;
	e = event_begin(st, kind, now, &seq);
	if (!e)
		return;
	e->agent_id = l->holder;
	e->slot = lease_id;
	e->seq = l->token;
	e->last_seen_ns = l->expires_ns;
	e->interval_ms = l->duration_ms;
	e->prev_state = VIGIL_LEASE_HELD;
	e->state = to;
	event_end(st, e);
}

/* The holder's fresh beat naming its lease renews it, up to the granting
 * monitor's term when the lease is replicated (vigil_lease_terms: a monitor
 * that can no longer renew its term in the lease bucket stops renewing here
 * by then, so a standby may take over); DRAINING or LEAVING gives it up at
 * once. Beats of other agents naming the lease do nothing. */
static __always_inline void renew_lease(struct vigil_stats *st, struct agent_slot *s,
					const struct vigil_beat_info *b, __u64 now)
{
	__u32 id = b->lease_id;
	struct lease_slot *l;
	__u64 until, *term;

	if (id >= VIGIL_MAX_LEASES)
		return;
	l = bpf_map_lookup_elem(&vigil_leases, &id);
	if (!l || l->state != VIGIL_LEASE_HELD || l->holder != s->agent_id)
		return;
	if (b->status == VIGIL_STATUS_DRAINING || b->status == VIGIL_STATUS_LEAVING) {
		lease_transition(st, l, id, VIGIL_LEASE_RELEASED, VIGIL_EV_LEASE_RELEASED, now);
		return;
	}
	/* Only ever later, even when two CPUs renew at once: a CAS, so an
	 * earlier renewal can never overwrite a later one. */
	until = now + (__u64)l->duration_ms * VIGIL_NSEC_PER_MSEC;
	term = bpf_map_lookup_elem(&vigil_lease_terms, &id);
	if (term) {
		__u64 t = *(volatile __u64 *)term;

		if (t && until > t)
			until = t;
	}
	for (int i = 0; i < 4; i++) {
		__u64 old = l->expires_ns;

		if (until <= old || __sync_val_compare_and_swap(&l->expires_ns, old, until) == old)
			break;
	}
	__sync_fetch_and_add(&l->renewals, 1);
}

#endif /* VIGIL_LEASE_BPF_H */

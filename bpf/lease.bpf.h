/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Leases in the kernel half. The daemon grants a lease (struct lease_slot);
 * from then on the holder's beats renew it or give it up (renew_lease), and
 * the sweeper expires it once they stop (visit_lease, in wheel.bpf.h). Every
 * look at a lease and every change is made under its lock, which the
 * daemon's grants take too (BPF_F_LOCK): a grant is seen whole or not at
 * all. An edge leaves HELD under the lock, so it happens and is reported
 * once; the report is made after the lock is dropped, from a copy.
 */
#ifndef VIGIL_LEASE_BPF_H
#define VIGIL_LEASE_BPF_H

#include "events.bpf.h"

/* What a report or an acknowledgement says of a grant, copied under the
 * lease's lock. */
struct lease_view {
	__u64 holder;
	__u64 token;
	__u64 expires_ns;
	__u32 duration_ms;
	__u32 state;
};

static __always_inline void lease_copy(const struct lease_slot *l, struct lease_view *v)
{
	v->holder = l->holder;
	v->token = l->token;
	v->expires_ns = l->expires_ns;
	v->duration_ms = l->duration_ms;
	v->state = l->state;
}

/* A lease edge taken under the lock: the holder lost the grant `v`
 * (expired) or gave it up (released). */
static __always_inline void report_lease_end(struct vigil_stats *st, const struct lease_view *v,
					     __u32 lease_id, __u32 kind, __u64 now)
{
	struct vigil_event *e;
	__u64 seq;

	e = event_begin(st, kind, now, &seq);
	if (!e)
		return;
	e->agent_id = v->holder;
	e->slot = lease_id;
	e->seq = v->token;
	e->last_seen_ns = v->expires_ns;
	e->interval_ms = v->duration_ms;
	e->prev_state = VIGIL_LEASE_HELD;
	e->state = v->state;
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
	struct lease_view v;
	int released = 0;
	__u64 cap = 0, *term;

	if (id >= VIGIL_MAX_LEASES)
		return;
	l = bpf_map_lookup_elem(&vigil_leases, &id);
	if (!l)
		return;
	/* The granting monitor's term, read before the lock (no helper call
	 * may run under it). */
	term = bpf_map_lookup_elem(&vigil_lease_terms, &id);
	if (term)
		cap = *(volatile __u64 *)term;
	bpf_spin_lock(&l->lock);
	if (l->state == VIGIL_LEASE_HELD && l->holder == s->agent_id) {
		if (b->status == VIGIL_STATUS_DRAINING || b->status == VIGIL_STATUS_LEAVING) {
			l->state = VIGIL_LEASE_RELEASED;
			lease_copy(l, &v);
			released = 1;
		} else {
			/* Only ever later: an earlier renewal never undoes a later one. */
			__u64 until = now + (__u64)l->duration_ms * VIGIL_NSEC_PER_MSEC;

			if (cap && until > cap)
				until = cap;
			if (until > l->expires_ns)
				l->expires_ns = until;
			l->renewals++;
		}
	}
	bpf_spin_unlock(&l->lock);
	if (released)
		report_lease_end(st, &v, id, VIGIL_EV_LEASE_RELEASED, now);
}

#endif /* VIGIL_LEASE_BPF_H */

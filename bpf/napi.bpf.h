/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Is a receive queue holding packets it has not processed? (docs/design.md,
 * "a stalled receive queue".) Beats tell how late the receive path is only
 * once they arrive: a queue whose poller gets no CPU delivers nothing at
 * all, and a silent queue looks like agents that stopped. The kernel knows
 * better: a NAPI instance with packets waiting is scheduled (NAPI_STATE_SCHED)
 * until a poll drains it. So every poll of the watched interface's NAPI
 * instances is noted (vigil_napi_poll on tp_btf/napi_poll), and the sweeper's
 * health sampler reads each one's state: scheduled, and not polled since
 * it was first seen so, is a queue stalled for that long.
 */
#ifndef VIGIL_NAPI_BPF_H
#define VIGIL_NAPI_BPF_H

#include <bpf/bpf_core_read.h>

/* The interface watched: its index and its network namespace's inode (set
 * by the daemon before load; 0 watches nothing). */
const volatile __u32 rx_ifindex = 0;
const volatile __u32 rx_netns_ino = 0;

/* A poll noted longer ago than this is not read: a NAPI instance that
 * went away (a device reconfigured) leaves its entry behind. */
#define NAPI_WATCH_MAX_NS (10000ULL * VIGIL_NSEC_PER_MSEC)

struct napi_watch {
	__u64 napi;           /* struct napi_struct *, read with probe reads only */
	__u64 polled_ns;      /* end of its last poll (vigil_napi_poll) */
	__u64 seen_sched_ns;  /* first sample that found it scheduled since; 0: not */
};

/* vigil_napi: napi_id -> its watch, for the watched interface's NAPI
 * instances; added and polled_ns written by vigil_napi_poll, seen_sched_ns
 * by the sweeper. Here rather than in maps.bpf.h: only this file reads it,
 * it is not pinned, and no userspace code knows its layout. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, VIGIL_MAX_RXQ);
	__type(key, __u32);
	__type(value, struct napi_watch);
} vigil_napi SEC(".maps");

/* A poll of some NAPI instance of this machine: note it if it is ours. */
static __always_inline void note_napi_poll(struct napi_struct *n)
{
	struct net_device *dev = n->dev;
	struct napi_watch *w, fresh = {};
	__u32 id;

	if (!dev || dev->ifindex != (int)rx_ifindex || dev->nd_net.net->ns.inum != rx_netns_ino)
		return;
	id = n->napi_id;
	w = bpf_map_lookup_elem(&vigil_napi, &id);
	if (!w) {
		fresh.napi = (__u64)n;
		fresh.polled_ns = bpf_ktime_get_ns();
		bpf_map_update_elem(&vigil_napi, &id, &fresh, BPF_NOEXIST);
		return;
	}
	w->napi = (__u64)n;
	w->polled_ns = bpf_ktime_get_ns();
}

struct napi_sample {
	__u64 now;
	__u64 stall_ns; /* the longest stall found */
};

/* bpf_for_each_map_elem step: how long has this instance been stalled? */
static long sample_napi(struct bpf_map *map, __u32 *id, struct napi_watch *w,
			struct napi_sample *c)
{
	struct napi_struct *n = (struct napi_struct *)w->napi;
	unsigned long state;
	__u32 nid;
	__u64 from;

	if (c->now - w->polled_ns > NAPI_WATCH_MAX_NS)
		return 0;
	/* The pointer is only as good as its napi_id: re-read it. */
	if (bpf_core_read(&nid, sizeof(nid), &n->napi_id) || nid != *id ||
	    bpf_core_read(&state, sizeof(state), &n->state))
		return 0;
	if (!(state & (1UL << NAPI_STATE_SCHED))) {
		w->seen_sched_ns = 0;
		return 0;
	}
	if (!w->seen_sched_ns)
		w->seen_sched_ns = c->now;
	from = w->seen_sched_ns > w->polled_ns ? w->seen_sched_ns : w->polled_ns;
	if (c->now > from && c->now - from > c->stall_ns)
		c->stall_ns = c->now - from;
	return 0;
}

/* How long the longest stalled NAPI instance of the interface has held
 * its packets unprocessed, as far as the samples tell (0: none is). */
static __always_inline __u64 napi_stall_ns(__u64 now)
{
	struct napi_sample c = { .now = now };

	if (rx_ifindex)
		bpf_for_each_map_elem(&vigil_napi, sample_napi, &c, 0);
	return c.stall_ns;
}

#endif /* VIGIL_NAPI_BPF_H */

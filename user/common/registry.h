/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/* The agent registry as the maps hold it: add, remove, read, count. */
#ifndef VIGIL_REGISTRY_H
#define VIGIL_REGISTRY_H

#include <linux/types.h>
#include "vigil/maps.h"
#include "common/instance.h"

/* One agent as declared in the config file or by `vigil agent add`. */
struct vg_agent_def {
	__u64 id;
	__u32 interval_min_ms;
	__u32 interval_max_ms;
	__u32 multiplier;
	char name[VIGIL_NAME_LEN];
	char group[VIGIL_GROUP_LEN];
	/* Keys and policy; group_id is filled in from `group` by vg_agent_add. */
	struct agent_auth auth;
};

void vg_agent_def_default(struct vg_agent_def *d, __u64 id);
/* One agent as the maps hold it: its slot (what a beat reads and writes)
 * and the rest (names, counters, histogram), both at its slot number. */
struct vg_agent {
	struct agent_slot s;
	struct agent_info i;
};

/* Register an agent: claim a free slot, publish it in the index and hand it
 * to the sweeper. An id in the instance's dense range (m->id_base onwards)
 * gets slot id - id_base when that is free, where the beat path finds it
 * without the index; any other id the highest free slot. Its replay window
 * starts at the id's floor, if vigil_floors has one. *hint (may be NULL)
 * is where the search for a free slot starts (counting down from the top)
 * and is advanced, which makes bulk registration linear.
 * Returns 0, -EINVAL (id 0, never registered), -EEXIST, -ENOSPC, or another
 * -errno. */
int vg_agent_add(const struct vg_maps *m, const struct vg_agent_def *d, __u32 *hint);
/* Replace the keys and policy of the agents in slots[0..n) (key rotation,
 * allowlist changes), each at once: the copy of vigil_auth XDP does not read
 * is written, then the element's `sel` flips to it. A copy that was in force is
 * rewritten only after an RCU grace period (membarrier(2)), so no beat ever
 * reads a key set half written; that wait (~15 ms) is once per call. Callers
 * that may race hold the registry lock. Returns 0 or -errno. */
int vg_auth_set(const struct vg_maps *m, size_t n, const __u32 *slots,
		const struct agent_auth *auths);
/* vg_auth_set for one agent. */
int vg_agent_set_auth(const struct vg_maps *m, __u32 slot, const struct agent_auth *a);
/* The keys and policy in force for a slot. Returns 0 or -errno. */
int vg_agent_get_auth(const struct vg_maps *m, __u32 slot, struct agent_auth *out);
/* The policy flags the daemon recorded for a group (0 when none). */
__u32 vg_group_flags(const struct vg_maps *m, const char *group);
/* Keep (incarnation, seq) as agent id's replay floor in vigil_floors unless
 * the floor there is already as high. Returns 0 or -errno. */
int vg_floor_raise(const struct vg_maps *m, __u64 id, __u32 incarnation, __u64 seq);
/* Unregister: the index entry and the keys' owner go first so no beat is
 * committed any more; the replay window stays behind as the id's floor
 * (vg_floor_raise), for the next registration of the id to start from. */
int vg_agent_remove(const struct vg_maps *m, __u64 id);
/* Read an agent (state without VIGIL_AGENT_BUSY). Returns 0 or -ENOENT. */
int vg_agent_get(const struct vg_maps *m, __u64 id, __u32 *slot, struct vg_agent *out);
/* Both records of slot `slot`, whoever holds it (state without the busy
 * bit). Returns 0 or -ENOENT. */
int vg_agent_at(const struct vg_maps *m, __u32 slot, struct vg_agent *out);
/* Visit the slots [*from, *from + n) that hold an agent, their hot records
 * only, read in batches (a system call per 1,024 slots, where
 * vg_agent_foreach makes four per agent), each under its slot's lock if
 * `locked`; *from is left at the next slot (max_agents at the end). A slot
 * being registered or removed meanwhile may be visited. Stops when cb
 * returns non-zero. */
int vg_agent_slots_foreach(const struct vg_maps *m, bool locked, __u32 *from, __u32 n,
			   int (*cb)(__u32 slot, const struct agent_slot *s, void *ctx), void *ctx);
/* Visit every registered agent (in index order). Stops when cb returns non-zero. */
int vg_agent_foreach(const struct vg_maps *m,
		     int (*cb)(__u32 slot, const struct vg_agent *a, void *ctx), void *ctx);
/* An agent's gap histogram: agent_info.gap_hist with the slot's pending
 * run (gap_run gaps in gap_bucket) added. */
void vg_agent_gap_hist(const struct vg_agent *a, __u32 out[VIGIL_GAP_BUCKETS]);
/* Sum the per-CPU counters. */
int vg_stats_read(const struct vg_maps *m, struct vigil_stats *out);

/* Serialise registry changes between processes (daemon, CLI): an flock on
 * the pin directory. Returns an fd to pass to vg_registry_unlock, or -1. */
int vg_registry_lock(const char *pin_root);
void vg_registry_unlock(int fd);

#endif

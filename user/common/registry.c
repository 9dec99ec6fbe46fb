// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/membarrier.h>
#include <bpf/bpf.h>
#include "common/log.h"
#include "common/registry.h"
#include "common/util.h"

void vg_agent_def_default(struct vg_agent_def *d, __u64 id)
{
	memset(d, 0, sizeof(*d));
	d->id = id;
	d->interval_min_ms = 10;
	d->interval_max_ms = 10000;
	d->multiplier = 3;
	snprintf(d->name, sizeof(d->name), "agent-%llu", (unsigned long long)id);
	vg_strlcpy(d->group, "default", sizeof(d->group));
}

/* A slot can be reused once it is FREE and the sweeper has dropped it, so a
 * stale wheel entry never meets a new agent. */
static int slot_is_free(const struct vg_maps *m, __u32 i)
{
	struct agent_slot s;
	struct wheel_link l;

	if (bpf_map_lookup_elem(m->agents, &i, &s) || s.state != VIGIL_AGENT_FREE)
		return 0;
	return bpf_map_lookup_elem(m->links, &i, &l) == 0 && !l.in_wheel;
}

__u32 vg_group_flags(const struct vg_maps *m, const char *group)
{
	__u32 id = vigil_group_id(group, VIGIL_GROUP_LEN);
	struct group_policy p;

	return bpf_map_lookup_elem(m->groups, &id, &p) ? 0 : p.flags;
}

/* Wait until every BPF program run that started before has finished: an
 * RCU grace period (membarrier(2)'s MEMBARRIER_CMD_GLOBAL is
 * synchronize_rcu(), and XDP and the sweeper run inside RCU read sections). */
static void rcu_sync(void)
{
	static bool said;

	if (syscall(__NR_membarrier, MEMBARRIER_CMD_GLOBAL, 0, 0) == 0)
		return;
	if (!said)
		pr_warn("membarrier(MEMBARRIER_CMD_GLOBAL) failed (%s; nohz_full?): waiting 1 s "
			"instead of a grace period before reusing key copies\n", strerror(errno));
	said = true;
	usleep(1000 * 1000);
}

int vg_auth_set(const struct vg_maps *m, size_t n, const __u32 *slots,
		const struct agent_auth *auths)
{
	__u32 *gen = calloc(n ? n : 1, sizeof(*gen));
	bool wait = false;
	int err = 0;

	if (!gen)
		return -ENOMEM;
	for (size_t i = 0; i < n && !err; i++) {
		if (bpf_map_lookup_elem(m->auth_sel, &slots[i], &gen[i]))
			err = -errno;
		wait |= gen[i] != 0; /* the copy to write was in force once */
	}
	/* Every beat that still reads a copy we are about to write began
	 * before its last flip: after a grace period there is none. */
	if (!err && wait)
		rcu_sync();
	for (size_t i = 0; i < n && !err; i++) {
		__u32 copy = slots[i] + ((gen[i] + 1) & 1) * m->max_agents, next = gen[i] + 1;

		if (bpf_map_update_elem(m->auth, &copy, &auths[i], BPF_ANY) ||
		    bpf_map_update_elem(m->auth_sel, &slots[i], &next, BPF_ANY))
			err = -errno;
	}
	free(gen);
	return err;
}

int vg_agent_set_auth(const struct vg_maps *m, __u32 slot, const struct agent_auth *a)
{
	return vg_auth_set(m, 1, &slot, a);
}

int vg_agent_get_auth(const struct vg_maps *m, __u32 slot, struct agent_auth *out)
{
	__u32 gen, copy;

	if (bpf_map_lookup_elem(m->auth_sel, &slot, &gen))
		return -errno;
	copy = slot + (gen & 1) * m->max_agents;
	return bpf_map_lookup_elem(m->auth, &copy, out) ? -errno : 0;
}

int vg_floor_raise(const struct vg_maps *m, __u64 id, __u32 incarnation, __u64 seq)
{
	struct replay_floor f = {};

	if (bpf_map_lookup_elem(m->floors, &id, &f) == 0 &&
	    !vigil_replay_after(incarnation, seq, f.incarnation, f.seq))
		return 0;
	f.incarnation = incarnation;
	f.seq = seq;
	return bpf_map_update_elem(m->floors, &id, &f, BPF_ANY) ? -errno : 0;
}

int vg_agent_add(const struct vg_maps *m, const struct vg_agent_def *d, __u32 *hint)
{
	struct agent_guard guard = {};
	struct agent_auth auth = d->auth;
	struct replay_floor floor;
	__u32 copy, gen0 = 0;
	bool floored;
	struct agent_slot s = {};
	__u32 start = hint ? *hint : 0, slot = 0, existing;
	__u32 n = m->max_agents;
	int found = 0;

	/* Id 0 is "no agent" on the wire and in the maps (a lease's holder,
	 * an empty slot): registering it would make "nobody" an agent. */
	if (d->id == 0)
		return -EINVAL;
	if (bpf_map_lookup_elem(m->index, &d->id, &existing) == 0)
		return -EEXIST;
	for (__u32 k = 0; k < n; k++) {
		slot = (start + k) % n;
		if (slot_is_free(m, slot)) {
			found = 1;
			break;
		}
	}
	if (!found)
		return -ENOSPC;

	s.agent_id = d->id;
	s.state = VIGIL_AGENT_NEW;
	/* The first deadline runs from registration, at the slowest cadence
	 * the agent may announce. */
	s.last_seen_ns = vg_mono_ns();
	s.state_since_ns = s.last_seen_ns;
	s.interval_min_ms = d->interval_min_ms;
	s.interval_max_ms = d->interval_max_ms;
	s.interval_ms = d->interval_max_ms;
	s.multiplier = d->multiplier;
	vg_strlcpy(s.name, d->name, sizeof(s.name));
	vg_strlcpy(s.group, d->group, sizeof(s.group));
	auth.group_id = vigil_group_id(s.group, sizeof(s.group));
	/* The id beat before: its window starts where it stood, so none of the
	 * beats accepted then is accepted again (docs/security.md). */
	floored = bpf_map_lookup_elem(m->floors, &d->id, &floor) == 0;
	if (floored)
		vigil_replay_from_floor(&guard.replay, floor.incarnation, floor.seq);
	/* Keys and the replay window first: the slot is unreachable until the
	 * index names it, so no beat can see a half-registered agent. Both
	 * key copies, and a generation 0 (the other copy never in force). */
	copy = slot + m->max_agents;
	if (bpf_map_update_elem(m->auth, &slot, &auth, BPF_ANY) ||
	    bpf_map_update_elem(m->auth, &copy, &auth, BPF_ANY) ||
	    bpf_map_update_elem(m->auth_sel, &slot, &gen0, BPF_ANY) ||
	    bpf_map_update_elem(m->guard, &slot, &guard, BPF_ANY) ||
	    bpf_map_update_elem(m->agents, &slot, &s, BPF_ANY))
		return -errno;
	if (bpf_map_update_elem(m->index, &d->id, &slot, BPF_NOEXIST)) {
		int err = -errno;

		memset(&s, 0, sizeof(s));
		bpf_map_update_elem(m->agents, &slot, &s, BPF_ANY);
		return err == -E2BIG ? -ENOSPC : err;
	}
	if (floored) /* the window holds it now; vg_agent_remove puts it back */
		bpf_map_delete_elem(m->floors, &d->id);
	if (bpf_map_update_elem(m->inbox, NULL, &slot, BPF_ANY))
		pr_warn("agent %llu: handing slot %u to the sweeper failed: %s\n",
			(unsigned long long)d->id, slot, strerror(errno));
	if (hint)
		*hint = slot + 1;
	return 0;
}

int vg_agent_remove(const struct vg_maps *m, __u64 id)
{
	struct agent_slot s = {};
	struct agent_guard g;
	__u32 slot;
	int err;

	if (bpf_map_lookup_elem(m->index, &id, &slot))
		return -ENOENT;
	if (bpf_map_delete_elem(m->index, &id))
		return -errno;
	/* FREE: the sweeper drops it on its next visit. */
	if (bpf_map_update_elem(m->agents, &slot, &s, BPF_ANY))
		return -errno;
	/* The window outlives the registration, as the id's floor. Read under
	 * the agent's lock after the slot is FREE: a beat that takes the lock
	 * later sees the slot gone and moves nothing (check_replay), so the
	 * floor holds every beat the window ever accepted. */
	if (bpf_map_lookup_elem_flags(m->guard, &slot, &g, BPF_F_LOCK))
		return -errno;
	if (g.replay.started) {
		err = vg_floor_raise(m, id, g.replay.incarnation, g.replay.top);
		if (err)
			return err;
	}
	return 0;
}

int vg_agent_get(const struct vg_maps *m, __u64 id, __u32 *slot, struct agent_slot *out)
{
	__u32 i;

	if (bpf_map_lookup_elem(m->index, &id, &i) || bpf_map_lookup_elem(m->agents, &i, out))
		return -ENOENT;
	out->state = vigil_state_of(out->state);
	if (slot)
		*slot = i;
	return 0;
}

int vg_agent_foreach(const struct vg_maps *m,
		     int (*cb)(__u32 slot, const struct agent_slot *s, void *ctx), void *ctx)
{
	__u64 key, next;
	__u64 *prev = NULL;
	struct agent_slot s;
	__u32 slot;
	int ret;

	while (bpf_map_get_next_key(m->index, prev, &next) == 0) {
		key = next;
		prev = &key;
		if (bpf_map_lookup_elem(m->index, &key, &slot) ||
		    bpf_map_lookup_elem(m->agents, &slot, &s))
			continue; /* removed while we walked */
		s.state = vigil_state_of(s.state);
		ret = cb(slot, &s, ctx);
		if (ret)
			return ret;
	}
	return 0;
}

int vg_stats_read(const struct vg_maps *m, struct vigil_stats *out)
{
	size_t nf = sizeof(struct vigil_stats) / sizeof(__u64);
	struct vigil_stats *percpu = calloc(m->ncpus, sizeof(*percpu));
	__u32 zero = 0;

	memset(out, 0, sizeof(*out));
	if (!percpu)
		return -ENOMEM;
	if (bpf_map_lookup_elem(m->stats, &zero, percpu)) {
		free(percpu);
		return -errno;
	}
	for (int c = 0; c < m->ncpus; c++)
		for (size_t f = 0; f < nf; f++)
			((__u64 *)out)[f] += ((__u64 *)&percpu[c])[f];
	/* A maximum, not a sum. */
	out->held_max_ns = 0;
	for (int c = 0; c < m->ncpus; c++)
		if (percpu[c].held_max_ns > out->held_max_ns)
			out->held_max_ns = percpu[c].held_max_ns;
	free(percpu);
	return 0;
}

int vg_registry_lock(const char *pin_root)
{
	int fd = open(pin_root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		return -1;
	if (flock(fd, LOCK_EX)) {
		close(fd);
		return -1;
	}
	return fd;
}

void vg_registry_unlock(int fd)
{
	if (fd >= 0)
		close(fd);
}

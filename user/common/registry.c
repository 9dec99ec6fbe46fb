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

/* Where agent `id` goes: its own slot (id - id_base) when the id is in the
 * dense range and that slot is free, else the highest free slot from *hint
 * down (sparse ids fill the table from the top, the dense range from the
 * bottom, so they meet only when it is nearly full). Returns 0 or -ENOSPC. */
static int claim_slot(const struct vg_maps *m, __u64 id, __u32 *hint, __u32 *slot)
{
	__u32 n = m->max_agents, from = hint ? *hint : 0;

	if (id - m->id_base < n && slot_is_free(m, (__u32)(id - m->id_base))) {
		*slot = (__u32)(id - m->id_base);
		return 0;
	}
	for (__u32 k = 0; k < n; k++) {
		__u32 i = (from + k) % n;

		if (slot_is_free(m, n - 1 - i)) {
			*slot = n - 1 - i;
			if (hint)
				*hint = i + 1;
			return 0;
		}
	}
	return -ENOSPC;
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
	struct agent_keys *ks = calloc(n ? n : 1, sizeof(*ks));
	bool wait = false;
	int err = 0;

	if (!ks)
		return -ENOMEM;
	for (size_t i = 0; i < n && !err; i++) {
		if (bpf_map_lookup_elem(m->auth, &slots[i], &ks[i]))
			err = -errno;
		wait |= ks[i].sel != 0; /* the copy to write was in force once */
	}
	/* Every beat that still reads a copy we are about to write began
	 * before its last flip: after a grace period there is none. */
	if (!err && wait)
		rcu_sync();
	/* Two writes per agent: the new copy (every other byte as it is, so a
	 * beat reading the copy in force meanwhile reads what it always did),
	 * then the flip. */
	for (size_t i = 0; i < n && !err; i++) {
		struct agent_keys *k = &ks[i];

		k->copy[(k->sel + 1) & 1] = auths[i];
		if (bpf_map_update_elem(m->auth, &slots[i], k, BPF_ANY))
			err = -errno;
		k->sel++;
		if (!err && bpf_map_update_elem(m->auth, &slots[i], k, BPF_ANY))
			err = -errno;
	}
	free(ks);
	return err;
}

int vg_agent_set_auth(const struct vg_maps *m, __u32 slot, const struct agent_auth *a)
{
	return vg_auth_set(m, 1, &slot, a);
}

int vg_agent_get_auth(const struct vg_maps *m, __u32 slot, struct agent_auth *out)
{
	struct agent_keys k;

	if (bpf_map_lookup_elem(m->auth, &slot, &k))
		return -errno;
	*out = k.copy[k.sel & 1];
	return 0;
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
	struct agent_keys keys = {};
	struct agent_info info = {};
	struct agent_slot s = {};
	struct replay_floor floor;
	__u32 slot = 0, existing;
	bool floored;
	int err;

	/* Id 0 is "no agent" on the wire and in the maps (a lease's holder,
	 * an empty slot): registering it would make "nobody" an agent. */
	if (d->id == 0)
		return -EINVAL;
	if (bpf_map_lookup_elem(m->index, &d->id, &existing) == 0)
		return -EEXIST;
	err = claim_slot(m, d->id, hint, &slot);
	if (err)
		return err;

	s.agent_id = d->id;
	s.state = VIGIL_AGENT_NEW;
	/* The first deadline runs from registration, at the slowest cadence
	 * the agent may announce. */
	s.last_seen_ns = vg_mono_ns();
	s.interval_min_ms = d->interval_min_ms;
	s.interval_max_ms = d->interval_max_ms;
	s.interval_ms = d->interval_max_ms;
	s.multiplier = (__u16)d->multiplier;
	info.state_since_ns = s.last_seen_ns;
	vg_strlcpy(info.name, d->name, sizeof(info.name));
	vg_strlcpy(info.group, d->group, sizeof(info.group));
	keys.agent_id = d->id;
	keys.copy[0] = d->auth;
	keys.copy[0].group_id = vigil_group_id(info.group, sizeof(info.group));
	keys.copy[1] = keys.copy[0]; /* generation 0: copy 1 never in force */
	/* The id beat before: its window starts where it stood, so none of the
	 * beats accepted then is accepted again (docs/security.md). */
	floored = bpf_map_lookup_elem(m->floors, &d->id, &floor) == 0;
	if (floored)
		vigil_replay_from_floor(&s.replay, floor.incarnation, floor.seq);
	/* Keys and names first. The slot itself is written whole under its
	 * lock: a beat that finds it by its id (id_base's range needs no
	 * index) commits nothing before it holds that lock, and then sees the
	 * whole registration, the floor included. */
	if (bpf_map_update_elem(m->auth, &slot, &keys, BPF_ANY) ||
	    bpf_map_update_elem(m->info, &slot, &info, BPF_ANY) ||
	    bpf_map_update_elem(m->agents, &slot, &s, BPF_F_LOCK))
		return -errno;
	if (bpf_map_update_elem(m->index, &d->id, &slot, BPF_NOEXIST)) {
		err = -errno;
		memset(&s, 0, sizeof(s));
		bpf_map_update_elem(m->agents, &slot, &s, BPF_F_LOCK);
		return err == -E2BIG ? -ENOSPC : err;
	}
	if (floored) /* the window holds it now; vg_agent_remove puts it back */
		bpf_map_delete_elem(m->floors, &d->id);
	if (bpf_map_update_elem(m->inbox, NULL, &slot, BPF_ANY))
		pr_warn("agent %llu: handing slot %u to the sweeper failed: %s\n",
			(unsigned long long)d->id, slot, strerror(errno));
	return 0;
}

int vg_agent_remove(const struct vg_maps *m, __u64 id)
{
	struct agent_info info = {};
	struct agent_slot s = {}, g;
	struct agent_keys k;
	__u32 slot;
	int err;

	if (bpf_map_lookup_elem(m->index, &id, &slot))
		return -ENOENT;
	if (bpf_map_delete_elem(m->index, &id))
		return -errno;
	/* The keys no longer belong to the id: a beat that takes the slot's
	 * lock after this commits nothing (check_replay). */
	if (bpf_map_lookup_elem(m->auth, &slot, &k))
		return -errno;
	k.agent_id = 0;
	if (bpf_map_update_elem(m->auth, &slot, &k, BPF_ANY))
		return -errno;
	/* So the window read under the lock now is final: the floor holds
	 * every beat it ever accepted. Then the slot is FREE: the sweeper
	 * drops it on its next visit. */
	if (bpf_map_lookup_elem_flags(m->agents, &slot, &g, BPF_F_LOCK) ||
	    bpf_map_update_elem(m->agents, &slot, &s, BPF_F_LOCK) ||
	    bpf_map_update_elem(m->info, &slot, &info, BPF_ANY))
		return -errno;
	if (g.agent_id == id && g.replay.started) {
		err = vg_floor_raise(m, id, g.replay.incarnation, g.replay.top);
		if (err)
			return err;
	}
	return 0;
}

int vg_agent_at(const struct vg_maps *m, __u32 slot, struct vg_agent *out)
{
	if (bpf_map_lookup_elem(m->agents, &slot, &out->s) ||
	    bpf_map_lookup_elem(m->info, &slot, &out->i))
		return -ENOENT;
	out->s.state = vigil_state_of(out->s.state);
	return 0;
}

int vg_agent_get(const struct vg_maps *m, __u64 id, __u32 *slot, struct vg_agent *out)
{
	__u32 i;

	if (bpf_map_lookup_elem(m->index, &id, &i) || vg_agent_at(m, i, out))
		return -ENOENT;
	if (slot)
		*slot = i;
	return 0;
}

int vg_agent_slots_foreach(const struct vg_maps *m, bool locked, __u32 *from, __u32 n,
			   int (*cb)(__u32 slot, const struct agent_slot *s, void *ctx), void *ctx)
{
	enum { CHUNK = 1024 };
	LIBBPF_OPTS(bpf_map_batch_opts, o, .elem_flags = locked ? BPF_F_LOCK : 0);
	struct agent_slot *v = calloc(CHUNK, sizeof(*v));
	__u32 keys[CHUNK], in = *from, prev, out, count;
	int err = 0;

	if (!v)
		return -ENOMEM;
	while (!err && n && in < m->max_agents) {
		count = n < CHUNK ? n : CHUNK;
		/* The batch starts after in_batch: none for slot 0. */
		prev = in - 1;
		if (bpf_map_lookup_batch(m->agents, in ? &prev : NULL, &out, keys, v, &count, &o) &&
		    errno != ENOENT) {
			err = -errno;
			break;
		}
		if (!count)
			break;
		for (__u32 i = 0; i < count && !err; i++)
			if (v[i].agent_id)
				err = cb(keys[i], &v[i], ctx);
		in = keys[count - 1] + 1;
		n -= count;
	}
	*from = in < m->max_agents ? in : m->max_agents;
	free(v);
	return err;
}

int vg_agent_foreach(const struct vg_maps *m,
		     int (*cb)(__u32 slot, const struct vg_agent *a, void *ctx), void *ctx)
{
	__u64 key, next;
	__u64 *prev = NULL;
	struct vg_agent a;
	__u32 slot;
	int ret;

	while (bpf_map_get_next_key(m->index, prev, &next) == 0) {
		key = next;
		prev = &key;
		if (bpf_map_lookup_elem(m->index, &key, &slot) || vg_agent_at(m, slot, &a))
			continue; /* removed while we walked */
		ret = cb(slot, &a, ctx);
		if (ret)
			return ret;
	}
	return 0;
}

void vg_agent_gap_hist(const struct vg_agent *a, __u32 out[VIGIL_GAP_BUCKETS])
{
	memcpy(out, a->i.gap_hist, sizeof(a->i.gap_hist));
	out[a->s.gap_bucket & (VIGIL_GAP_BUCKETS - 1)] += a->s.gap_run;
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

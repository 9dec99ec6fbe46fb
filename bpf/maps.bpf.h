/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Every map of the program and the load-time settings, in one place. The
 * value layouts are include/vigil/maps.h's (shared with userspace); who
 * writes which map is said here and in docs/maps.md. The definitions keep
 * their order: it is the order of the object's maps, and so of the
 * skeleton's.
 */
#ifndef VIGIL_MAPS_BPF_H
#define VIGIL_MAPS_BPF_H

#include "vigil/maps.h"

/* One load of a field another CPU may be writing (the compiler may neither
 * repeat nor merge it). */
#ifndef READ_ONCE
#define READ_ONCE(x) (*(const volatile __typeof__(x) *)&(x))
#endif

/* Load-time settings (set by the daemon before load, fixed afterwards). */
const volatile __u16 beat_port_be = 0; /* UDP destination port, network order */
const volatile __u64 tick_ns = 1000000;
/* Wheel slots 0..max_agents-1 are agents; max_agents + lease id are leases. */
const volatile __u32 max_agents = VIGIL_MAX_AGENTS;
/* Agent id id_base + i is placed in slot i when that slot is free (most
 * fleets number their agents): the beat path finds it without the index. */
const volatile __u64 id_base = 1;

/* vigil_agents: what a beat reads and writes, one slot per registered agent;
 * see struct agent_slot. Mmapable for the alignment only: its elements start
 * on a page, so each 128-byte slot is one cache-line pair (a plain array's
 * elements start 56 bytes into a line). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, VIGIL_MAX_AGENTS);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct agent_slot);
} vigil_agents SEC(".maps");

/* vigil_agent_info: the rest of each agent (names, counters, histogram). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, VIGIL_MAX_AGENTS);
	__type(key, __u32);
	__type(value, struct agent_info);
} vigil_agent_info SEC(".maps");

/* vigil_index: agent id -> slot, for every agent; the beat path needs it only
 * for ids outside id_base's range or placed elsewhere. Preallocated; written
 * by the daemon only. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, VIGIL_MAX_AGENTS);
	__type(key, __u64);
	__type(value, __u32);
} vigil_index SEC(".maps");

/* vigil_links: the wheel's per-slot links; written by the sweeper only. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, VIGIL_MAX_AGENTS);
	__type(key, __u32);
	__type(value, struct wheel_link);
} vigil_links SEC(".maps");

/* vigil_buckets: the wheel's list heads; written by the sweeper only. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, VIGIL_WHEEL_BUCKETS);
	__type(key, __u32);
	__type(value, struct wheel_bucket);
} vigil_buckets SEC(".maps");

/* vigil_wheel: the sweeper's cursor and health; written by the sweeper only. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct wheel_state);
} vigil_wheel SEC(".maps");

/* vigil_inbox: slots that must (re-)enter the wheel: pushed by the daemon on
 * registration and by XDP when a DEAD or LEFT agent comes back. Twice the
 * agent capacity: at most one pending push per slot from each side. */
struct {
	__uint(type, BPF_MAP_TYPE_QUEUE);
	__uint(max_entries, 2 * VIGIL_MAX_AGENTS);
	__type(value, __u32);
} vigil_inbox SEC(".maps");

struct sweeper_timer {
	struct bpf_timer timer;
};

/* vigil_timer: the sweeper's one bpf_timer. Pinned so that detection goes on
 * while no daemon runs. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sweeper_timer);
} vigil_timer SEC(".maps");

/* vigil_auth: each agent's two key sets and which is in force; written by
 * userspace only (see struct agent_keys, and auth_in_force). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, VIGIL_MAX_AGENTS);
	__uint(map_flags, BPF_F_MMAPABLE); /* 128-byte aligned, as vigil_agents */
	__type(key, __u32);
	__type(value, struct agent_keys);
} vigil_auth SEC(".maps");

/* vigil_groups: group policy for userspace; XDP does not read it. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct group_policy);
} vigil_groups SEC(".maps");

#ifndef VIGIL_MAX_SOURCES
#define VIGIL_MAX_SOURCES 65536
#endif
/* vigil_sources: rate state per source address; written by XDP. LRU and
 * preallocated: a flood of new sources evicts, never allocates. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, VIGIL_MAX_SOURCES);
	__type(key, struct source_key);
	__type(value, __u64);
} vigil_sources SEC(".maps");

/* vigil_allow: per-group source allowlists; written by the daemon. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 4096);
	__uint(map_flags, BPF_F_NO_PREALLOC); /* LPM tries require it; only the daemon inserts */
	__type(key, struct allow_key);
	__type(value, __u32);
} vigil_allow SEC(".maps");

/* vigil_leases: one entry per lease id; see struct lease_slot for who writes what. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, VIGIL_MAX_LEASES);
	__type(key, __u32);
	__type(value, struct lease_slot);
} vigil_leases SEC(".maps");

/* vigil_lease_terms: per lease id, the granting monitor's term (monotonic ns;
 * 0: none): renewals never move a lease's expiry past it. Written only by the
 * daemon of a replicated lease (docs/leases.md), through mmap with an atomic
 * store, while XDP renews; read by XDP. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, VIGIL_MAX_LEASES);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, __u64);
} vigil_lease_terms SEC(".maps");

/* vigil_rxq: each receive queue's progress (send-time watermark, lateness);
 * written by XDP on the queue's CPU, sampled and reset by the sweeper. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, VIGIL_MAX_RXQ);
	__type(key, __u32);
	__type(value, struct rxq_state);
} vigil_rxq SEC(".maps");

/* vigil_config: run-time settings; written by the daemon. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct vigil_config);
} vigil_config SEC(".maps");

/* vigil_globals: the event sequence and the unknown-agent rate window. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct vigil_globals);
} vigil_globals SEC(".maps");

/* vigil_stats: per-CPU counters of the beat path. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct vigil_stats);
} vigil_stats SEC(".maps");

/* vigil_meta: load-time facts for adopting daemons; written by the loader. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct vigil_meta);
} vigil_meta SEC(".maps");

/* vigil_events: state transitions to the daemon. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 << 20);
} vigil_events SEC(".maps");

/* vigil_floors: an agent id's replay floor across registrations; written
 * by userspace only (struct replay_floor). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, VIGIL_MAX_AGENTS);
	__type(key, __u64);
	__type(value, struct replay_floor);
} vigil_floors SEC(".maps");

/* The key of the one-entry maps: helpers take keys by address. */
static const __u32 zero = 0;

/*
 * An agent's keys and policy as they are in force now: the copy the
 * element's `sel` names. Userspace never writes the copy XDP reads: it
 * writes the other, flips `sel`, and lets an RCU grace period pass (every
 * beat that read the old copy has finished) before it writes that copy
 * again (vg_auth_set). So a beat sees one whole key set, the same from the
 * tag check to its acknowledgement (docs/security.md, "Why a swap cannot
 * race with a beat").
 */
static __always_inline const struct agent_auth *auth_in_force(const struct agent_keys *k)
{
	return &k->copy[READ_ONCE(k->sel) & 1];
}

/* The cold half of slot `slot`, or NULL. */
static __always_inline struct agent_info *info_of(__u32 slot)
{
	return bpf_map_lookup_elem(&vigil_agent_info, &slot);
}

#endif /* VIGIL_MAPS_BPF_H */

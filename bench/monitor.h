/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * vigil's job done in userspace, as a user would without vigil: the part of
 * the benchmark's baselines (bench/baseline.c) that does not depend on how
 * the datagrams arrive. The same decisions as the XDP program, made with the
 * same code from include/vigil: vigil_beat_decode, an agent table (hash id ->
 * slot), the SipHash-2-4 tag check (vigil_beat_tag_ok), the replay window
 * (vigil_replay_check), the deadline logic (vigil_sweep_eval) on a timing
 * wheel with a 1 ms tick (vigil_wheel_due). Transitions are counted (and
 * printed with print_events). It does not rate-limit, keep an allowlist or
 * write an event log: all of that would only make it slower.
 *
 * Counters go to a file (struct baseline_stats, bench/bench.h) that
 * vigil-trafficgen reads while it steps the rate.
 */
#ifndef VIGIL_BENCH_MONITOR_H
#define VIGIL_BENCH_MONITOR_H

#include <stdbool.h>
#include <linux/types.h>
#include "vigil/logic.h"
#include "bench.h"
#include "common/u64map.h"

#define MONITOR_WHEEL 65536 /* buckets of 1 ms: as vigil's wheel */

struct monitor_slot {
	struct vigil_replay replay;
	struct vigil_key key[2];
	__u64 id;
	__u64 last_seen_ns;
	__u64 seq;
	__u64 beats;
	__u64 due_tick;
	__u32 valid_keys;
	__u32 state;
	__u32 incarnation;
	__u32 interval_ms, interval_min_ms, interval_max_ms, multiplier;
	__u32 next;     /* next slot + 1 in the same bucket */
	__u32 in_wheel;
};

struct monitor {
	struct monitor_slot *slots;
	__u32 n;
	struct u64map index; /* agent id -> slot + 1 */
	__u32 buckets[MONITOR_WHEEL];
	__u64 next_tick;
	__u32 dead_misses;
	bool print_events;
	volatile struct baseline_stats *st; /* the stats file, mapped */
};

struct monitor_opts {
	const char *keys_path;  /* the key file vigil run gets */
	const char *stats_path; /* created or truncated */
	__u64 first_id;         /* agents first_id .. first_id + agents - 1 */
	__u32 agents;
	__u32 interval_min_ms, interval_max_ms, multiplier;
	bool print_events;
};

/* Load the agents' keys, map the stats file and file every agent in the
 * wheel. Returns 0 or -1 (message printed). m must be zeroed. */
int monitor_init(struct monitor *m, const struct monitor_opts *o);
void monitor_free(struct monitor *m);

/* One datagram's payload (the beat), received at `now`. */
void monitor_beat(struct monitor *m, const __u8 *payload, __u32 len, __u64 now);

/* Take the deadlines due by `now`; true when a tick passed (the caller may
 * then refresh its once-a-tick counters). */
bool monitor_tick(struct monitor *m, __u64 now);

#endif

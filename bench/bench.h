/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * Shared between bench/bench.bpf.c (receiver sinks, fast-path wrappers, the
 * scale harness's beat driver) and the tools that load it.
 */
#ifndef VIGIL_BENCH_BENCH_H
#define VIGIL_BENCH_BENCH_H

#include "vigil/types.h"

/* sink_count: what a no-op receiver saw (PERCPU_ARRAY of 1). */
struct sink_count {
	__u64 packets;
	__u64 bytes;
};

/* fp_table: one precomputed beat per BPF_PROG_TEST_RUN repeat, with the
 * IPv4 source it comes from and the header checksum that goes with it. */
struct fp_entry {
	__u32 saddr; /* network order */
	__u16 check; /* IPv4 header checksum, network order */
	__u16 pad;
	__u8 beat[64];
};

/* ref_agents: what the fast path's reference monitor keeps per agent. */
struct ref_agent {
	__u64 last_seen_ns;
	__u64 seq;
};

/* The userspace baseline's counters (bench/baseline.c), kept in a file the
 * traffic generator reads (file:PATH:OFFSET). Only ever rise. */
struct baseline_stats {
	__u64 received;     /* datagrams read from the socket */
	__u64 accepted;     /* valid beats that changed an agent's state */
	__u64 malformed;
	__u64 unknown_agent;
	__u64 unauthenticated;
	__u64 bad_tag;
	__u64 replayed;     /* duplicates, too old, older incarnation */
	__u64 rcvbuf_drops; /* the socket's receive-queue drops (SO_MEMINFO) */
	__u64 events;       /* state transitions taken */
	__u64 suspect, dead;
	__u64 sweeps;       /* ticks the deadline wheel ran */
	__u64 calls;        /* recvmmsg calls that returned datagrams */
};

#define BASELINE_OFF_ACCEPTED 8
#define BASELINE_OFF_RCVBUF_DROPS 56

#endif

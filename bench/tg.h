/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * Shared between the traffic generator's XDP program (bench/trafficgen.bpf.c)
 * and its loader (bench/trafficgen.c): the frame it rewrites, its settings
 * and its counters. Fixed-width types only, widest fields first.
 *
 * Either engine (bench/tg_frame.h: live frames in the XDP program, or
 * AF_PACKET in the loader) runs on one CPU only (the calling thread's), so
 * the counters need no atomics.
 */
#ifndef VIGIL_BENCH_TG_H
#define VIGIL_BENCH_TG_H

#include "vigil/types.h"
#include "vigil/wire.h"

/* What one generated frame is. */
enum tg_mode {
	TG_VALID = 0,     /* correctly signed beat of a known agent, sequence rising */
	TG_FORGED = 1,    /* known agent, rising sequence, random tag */
	TG_RANDOM = 2,    /* random (unknown) agent id, random tag */
	TG_REPLAY = 3,    /* a captured valid beat, sent again unchanged */
	TG_MALFORMED = 4, /* bad magic, unknown flag, bad status, zero interval, short UDP length */
	TG_NMODES = 5,
};

/* Ethernet + IPv4 (no options) + UDP + beat: the only frame shape we send. */
#define TG_ETH_LEN 14
#define TG_IP_OFF TG_ETH_LEN
#define TG_UDP_OFF (TG_IP_OFF + 20)
#define TG_BEAT_OFF (TG_UDP_OFF + 8)
#define TG_FRAME_LEN (TG_BEAT_OFF + 64)

/* Slots of the mode schedule: frame k has mode sched[k % TG_SCHED]. */
#define TG_SCHED 64

struct tg_config {
	__u64 first_id;      /* agents first_id .. first_id + n_agents - 1 */
	__u64 seq_base;      /* sequence of round 0 (rises by one per round) */
	__u64 gap_ps;        /* pacing: picoseconds between frames; 0 = flat out */
	__u64 slack_ps;      /* never catch up more than this after a stall */
	__u32 n_agents;      /* size of the key table */
	__u32 n_replay;      /* captured beats in the replay table */
	__u32 src_base;      /* IPv4 source, network order */
	__u32 src_mask;      /* host-order mask of low source bits that vary (0: fixed source) */
	__u32 src_per_agent; /* 1: valid/forged beats take those bits from the agent index
			      * (each agent its own address); 0: random per frame */
	__u32 sign;          /* 1: valid beats carry a tag; 0: unsigned (--no-auth) */
	__u32 ip_sum_nosrc;  /* one's-complement sum of the IPv4 header without source and checksum */
	__u32 burst;         /* pacing: frames sent back to back, then burst x gap of pause */
	__u8 sched[TG_SCHED];
	__u8 beat[64];       /* template beat: every frame starts from it */
};

struct tg_stats {
	__u64 sent[TG_NMODES]; /* frames returned as XDP_TX, by mode */
	__u64 idle;            /* pacing: frames dropped because it was not yet time */
	__u64 stalls;          /* pacing: times we fell more than slack behind */
	__u64 next_ps;         /* pacing: when the next burst is due (ns x 1000) */
	__u64 in_burst;        /* pacing: frames sent of the current burst */
	__u64 agent_idx;       /* next valid/forged agent (0 .. n_agents-1) */
	__u64 round;           /* completed passes over all agents */
	__u64 replay_idx;
	__u64 frames;          /* all frames the program ran on */
	__u64 t_first, t_last; /* monotonic ns of the first and latest timed frame
				* (one in 64): the window the frames went out in */
};

#endif /* VIGIL_BENCH_TG_H */

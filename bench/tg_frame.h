/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * What varies from frame to frame of the traffic generator, written once for
 * both of its engines: the XDP program run with live frames
 * (bench/trafficgen.bpf.c) and the AF_PACKET sender (bench/trafficgen.c).
 * Both call tg_pace() then tg_build() per frame, on the same tg_config and
 * tg_stats, so the frames and their order are the same whichever engine runs.
 *
 * The includer defines, before including this file:
 *   __u64 tg_now_ns(void)                          monotonic clock, ns
 *   __u32 tg_rand32(void)                          32 random bits
 *   const struct vigil_key *tg_agent_key(__u32 i)  key of agent first_id + i, or NULL
 *   const struct vigil_beat *tg_captured(__u32 i)  captured beat i, or NULL
 */
#ifndef VIGIL_BENCH_TG_FRAME_H
#define VIGIL_BENCH_TG_FRAME_H

#include "vigil/auth.h"
#include "tg.h"

#ifndef __bpf__
#include <linux/ip.h>
#include <linux/udp.h>
#endif

/* tg_build()'s answer when a table lookup failed. */
#define TG_FAIL (-1)

/*
 * Pacing (cfg->gap_ps != 0): is it time for the next frame? Frames go in
 * bursts of cfg->burst (like a NIC's interrupt moderation, or XDP's 16-frame
 * bulk flush), each followed by a pause of burst x gap. Flat out, always, and
 * the clock is read for one frame in 64 only. Either way the window the
 * frames went out in is kept in st->t_first, st->t_last.
 */
static __always_inline int tg_pace(const struct tg_config *cfg, struct tg_stats *st)
{
	if (cfg->gap_ps) {
		__u64 now_ns = tg_now_ns(), now = now_ns * 1000;

		if (now < st->next_ps) {
			st->idle++;
			return 0;
		}
		/* After a stall (preemption), catch up by at most slack. */
		if (now - st->next_ps > cfg->slack_ps) {
			st->stalls++;
			st->next_ps = now;
			st->in_burst = 0;
		}
		if (++st->in_burst >= cfg->burst) {
			st->in_burst = 0;
			st->next_ps += cfg->gap_ps * cfg->burst;
		}
		if (!st->t_first)
			st->t_first = now_ns;
		st->t_last = now_ns;
	} else if (!(st->frames & (TG_SCHED - 1))) {
		__u64 now_ns = tg_now_ns();

		if (!st->t_first)
			st->t_first = now_ns;
		st->t_last = now_ns;
	}
	return 1;
}

static __always_inline __u64 tg_rand64(void)
{
	return (__u64)tg_rand32() << 32 | tg_rand32();
}

/* Rewrite the IPv4 source: low bits from `bits`, checksum to match. */
static __always_inline void tg_set_source(const struct tg_config *cfg, struct iphdr *ip, __u32 bits)
{
	__u32 src = vg_be32(cfg->src_base) | (bits & cfg->src_mask);
	__u32 sum = cfg->ip_sum_nosrc + (src >> 16) + (src & 0xffff);

	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	ip->saddr = vg_be32(src);
	ip->check = vg_be16((__u16)~sum);
}

static __always_inline void tg_random_tag(struct vigil_beat *b)
{
	__u64 t = tg_rand64();

	b->flags |= VIGIL_F_MAC;
	__builtin_memcpy(b->mac, &t, 8);
}

/* The next known agent and its sequence: round robin, sequence rising by
 * one per pass over all agents. */
static __always_inline __u32 tg_next_agent(const struct tg_config *cfg, struct tg_stats *st,
					   __u64 *seq)
{
	__u32 idx = st->agent_idx;

	*seq = cfg->seq_base + st->round;
	if (idx + 1 >= cfg->n_agents) {
		st->agent_idx = 0;
		st->round++;
	} else {
		st->agent_idx = idx + 1;
	}
	return idx;
}

/*
 * Rewrite the frame at f (TG_FRAME_LEN bytes, Ethernet and IPv4 headers from
 * the template) into the next one of the schedule. Every field that varies
 * is written, so a buffer may be reused without restoring the template.
 * Returns the frame's kind (enum tg_mode) or TG_FAIL.
 */
static __always_inline int tg_build(__u8 *f, const struct tg_config *cfg, struct tg_stats *st)
{
	struct vigil_beat *b = (struct vigil_beat *)(f + TG_BEAT_OFF);
	struct iphdr *ip = (struct iphdr *)(f + TG_IP_OFF);
	struct udphdr *udp = (struct udphdr *)(f + TG_UDP_OFF);
	__u32 mode = cfg->sched[st->frames & (TG_SCHED - 1)], idx;
	__u64 seq;

	st->frames++;
	udp->len = vg_be16(8 + sizeof(*b));
	__builtin_memcpy(b, cfg->beat, sizeof(*b));
	/* Valid and forged beats may come from their agent's own address; the
	 * rest from a random one in the range. */
	if (cfg->src_mask && !(cfg->src_per_agent && (mode == TG_VALID || mode == TG_FORGED)))
		tg_set_source(cfg, ip, tg_rand32());

	switch (mode) {
	case TG_VALID: {
		const struct vigil_key *k;

		idx = tg_next_agent(cfg, st, &seq);
		if (cfg->src_mask && cfg->src_per_agent)
			tg_set_source(cfg, ip, idx);
		b->agent_id = vg_be64(cfg->first_id + idx);
		b->seq = vg_be64(seq);
		/* A real agent's send time (within 64 frames when flat out): the
		 * monitor's receive-path evidence comes from it. */
		b->send_ts_ns = vg_be64(st->t_last);
		if (cfg->sign) {
			k = tg_agent_key(idx);
			if (!k)
				return TG_FAIL;
			vigil_beat_sign(b, k, 0);
		}
		return TG_VALID;
	}
	case TG_FORGED:
		idx = tg_next_agent(cfg, st, &seq);
		if (cfg->src_mask && cfg->src_per_agent)
			tg_set_source(cfg, ip, idx);
		b->agent_id = vg_be64(cfg->first_id + idx);
		b->seq = vg_be64(seq);
		tg_random_tag(b);
		return TG_FORGED;
	case TG_RANDOM:
		/* Top bit set: never one of the registered ids the benchmarks use. */
		b->agent_id = vg_be64(tg_rand64() | (1ULL << 63));
		b->seq = vg_be64(st->frames);
		tg_random_tag(b);
		return TG_RANDOM;
	case TG_REPLAY: {
		const struct vigil_beat *r;

		idx = st->replay_idx;
		st->replay_idx = idx + 1 >= cfg->n_replay ? 0 : idx + 1;
		r = tg_captured(idx);
		if (!r)
			return TG_FAIL;
		__builtin_memcpy(b, r, sizeof(*b));
		return TG_REPLAY;
	}
	default: /* TG_MALFORMED: one of five defects, in turn */
		switch ((st->frames >> 6) % 5) {
		case 0:
			b->magic = 0;
			break;
		case 1:
			b->flags |= 0x80;
			break;
		case 2:
			b->status = VIGIL_STATUS_MAX + 1;
			break;
		case 3:
			b->interval_ms = 0;
			break;
		default: /* UDP length says the beat is half as long as it is */
			udp->len = vg_be16(8 + sizeof(*b) / 2);
			break;
		}
		return TG_MALFORMED;
	}
}

#endif /* VIGIL_BENCH_TG_FRAME_H */

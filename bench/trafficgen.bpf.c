// SPDX-License-Identifier: GPL-2.0
/*
 * The traffic generator's XDP program. Run by BPF_PROG_TEST_RUN with
 * BPF_F_TEST_XDP_LIVE_FRAMES on one end of a veth pair: each invocation
 * rewrites what must vary in one frame and returns XDP_TX, which the kernel
 * turns into a transmit on that interface, i.e. a frame arriving at the
 * peer. Frames are recycled by the page pool with whatever we wrote last,
 * so every frame is rewritten from the template, never patched.
 *
 * Pacing (cfg.gap_ps != 0): a frame whose time has not come is dropped
 * instead of sent, so the calling CPU spins at a precise rate: frames go in
 * bursts of cfg.burst (like a NIC's interrupt moderation, or XDP's 16-frame
 * bulk flush), each followed by a pause of burst x gap. Long bursts would
 * overflow the 256-frame veth ring at any average rate.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "vigil/wire.h"
#include "vigil/auth.h"
#include "tg.h"

char LICENSE[] SEC("license") = "GPL";

/* Settings, written by the loader between runs. */
struct tg_config cfg = {};
/* Counters and cursors; the loader reads them after a run. */
struct tg_stats st = {};

/* tg_keys: key of agent first_id + i at index i (valid beats). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct vigil_key);
} tg_keys SEC(".maps");

/* tg_replay: captured valid beats, sent again as they were. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct vigil_beat);
} tg_replay SEC(".maps");

static __always_inline __u64 rand64(void)
{
	return (__u64)bpf_get_prandom_u32() << 32 | bpf_get_prandom_u32();
}

/* Rewrite the IPv4 source: low bits from `bits`, checksum to match. */
static __always_inline void set_source(struct iphdr *ip, __u32 bits)
{
	__u32 src = bpf_ntohl(cfg.src_base) | (bits & cfg.src_mask);
	__u32 sum = cfg.ip_sum_nosrc + (src >> 16) + (src & 0xffff);

	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	ip->saddr = bpf_htonl(src);
	ip->check = bpf_htons((__u16)~sum);
}

static __always_inline void random_tag(struct vigil_beat *b)
{
	__u64 t = rand64();

	b->flags |= VIGIL_F_MAC;
	__builtin_memcpy(b->mac, &t, 8);
}

/* The next known agent and its sequence: round robin, sequence rising by
 * one per pass over all agents. */
static __always_inline __u32 next_agent(__u64 *seq)
{
	__u32 idx = st.agent_idx;

	*seq = cfg.seq_base + st.round;
	if (idx + 1 >= cfg.n_agents) {
		st.agent_idx = 0;
		st.round++;
	} else {
		st.agent_idx = idx + 1;
	}
	return idx;
}

SEC("xdp")
int tg_gen(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *data_end = (void *)(long)ctx->data_end;
	struct vigil_beat *b = data + TG_BEAT_OFF;
	struct iphdr *ip = data + TG_IP_OFF;
	struct udphdr *udp = data + TG_UDP_OFF;
	__u32 mode, idx;
	__u64 seq;

	if (data + TG_FRAME_LEN > data_end)
		return XDP_ABORTED;
	if (cfg.gap_ps) {
		__u64 now_ns = bpf_ktime_get_ns(), now = now_ns * 1000;

		if (now < st.next_ps) {
			st.idle++;
			return XDP_DROP;
		}
		if (now - st.next_ps > cfg.slack_ps) {
			st.stalls++;
			st.next_ps = now;
			st.in_burst = 0;
		}
		if (++st.in_burst >= cfg.burst) {
			st.in_burst = 0;
			st.next_ps += cfg.gap_ps * cfg.burst;
		}
		if (!st.t_first)
			st.t_first = now_ns;
		st.t_last = now_ns;
	} else if (!(st.frames & (TG_SCHED - 1))) {
		/* Flat out: read the clock for one frame in 64 only. */
		__u64 now_ns = bpf_ktime_get_ns();

		if (!st.t_first)
			st.t_first = now_ns;
		st.t_last = now_ns;
	}
	mode = cfg.sched[st.frames & (TG_SCHED - 1)];
	st.frames++;

	udp->len = bpf_htons(8 + sizeof(*b));
	__builtin_memcpy(b, cfg.beat, sizeof(*b));
	/* Valid and forged beats may come from their agent's own address; the
	 * rest from a random one in the range. */
	if (cfg.src_mask && !(cfg.src_per_agent && (mode == TG_VALID || mode == TG_FORGED)))
		set_source(ip, bpf_get_prandom_u32());

	switch (mode) {
	case TG_VALID: {
		struct vigil_key *k;

		idx = next_agent(&seq);
		if (cfg.src_mask && cfg.src_per_agent)
			set_source(ip, idx);
		b->agent_id = vg_be64(cfg.first_id + idx);
		b->seq = vg_be64(seq);
		/* A real agent's send time (within 64 frames when flat out): the
		 * monitor's receive-path evidence comes from it. */
		b->send_ts_ns = vg_be64(st.t_last);
		if (cfg.sign) {
			k = bpf_map_lookup_elem(&tg_keys, &idx);
			if (!k)
				return XDP_ABORTED;
			vigil_beat_sign(b, k, 0);
		}
		break;
	}
	case TG_FORGED:
		idx = next_agent(&seq);
		if (cfg.src_mask && cfg.src_per_agent)
			set_source(ip, idx);
		b->agent_id = vg_be64(cfg.first_id + idx);
		b->seq = vg_be64(seq);
		random_tag(b);
		break;
	case TG_RANDOM:
		/* Top bit set: never one of the registered ids the benchmarks use. */
		b->agent_id = vg_be64(rand64() | (1ULL << 63));
		b->seq = vg_be64(st.frames);
		random_tag(b);
		break;
	case TG_REPLAY: {
		struct vigil_beat *r;

		idx = st.replay_idx;
		st.replay_idx = idx + 1 >= cfg.n_replay ? 0 : idx + 1;
		r = bpf_map_lookup_elem(&tg_replay, &idx);
		if (!r)
			return XDP_ABORTED;
		__builtin_memcpy(b, r, sizeof(*b));
		break;
	}
	default: /* TG_MALFORMED: one of five defects, in turn */
		switch ((st.frames >> 6) % 5) {
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
			udp->len = bpf_htons(8 + sizeof(*b) / 2);
			break;
		}
		mode = TG_MALFORMED;
		break;
	}
	if (mode < TG_NMODES)
		st.sent[mode]++;
	return XDP_TX;
}

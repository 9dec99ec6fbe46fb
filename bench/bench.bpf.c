// SPDX-License-Identifier: GPL-2.0
/*
 * Benchmark-only XDP programs:
 *
 *   sink_drop, sink_pass  no-op receivers that count what they see: the
 *                         throughput ceiling (drop) and the front of the
 *                         userspace baseline (pass up to the stack).
 *   fp_wrap               writes the next precomputed beat (fp_table) into
 *                         the packet and tail-calls fp_target[0]. Repeating a
 *                         single packet with BPF_PROG_TEST_RUN makes every
 *                         repeat after the first a duplicate; this wrapper
 *                         makes each repeat a fresh beat with a rising
 *                         sequence. Its own cost is measured by running it
 *                         with fp_empty in fp_target[0], and subtracted.
 *   fp_empty              XDP_DROP: the empty-program floor.
 *   fp_reference          the least any beat monitor must do: parse the
 *                         frame (vigil's own parser), one array lookup by
 *                         agent id, store last-seen time and sequence. The
 *                         reference vigil's fast path is a ratio to.
 *   xsk_beats             the AF_XDP baseline's program (bench/baseline.c
 *                         --via xsk): beats to the AF_XDP socket of their
 *                         receive queue, everything else to the stack.
 *   beat_driver           for bench/scale.c: agent id = first + n-th call,
 *                         one sequence per round, unsigned; tail-calls
 *                         fp_target[0] (vigil_xdp).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "parse.bpf.h"
#include "vigil/wire.h"
#include "tg.h"
#include "bench.h"

char LICENSE[] SEC("license") = "GPL";

/* sink_count: packets seen by a sink, per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sink_count);
} sink_count SEC(".maps");

/* fp_table: precomputed beats, written by the loader through mmap. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct fp_entry);
} fp_table SEC(".maps");

/* fp_target: the program a wrapper hands the packet to. */
struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} fp_target SEC(".maps");

/* ref_agents: the reference monitor's whole state, agent id N at N - 1. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ref_agent);
} ref_agents SEC(".maps");

/* xsks: the AF_XDP baseline's socket per receive queue (written by it). */
struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u32);
} xsks SEC(".maps");

__be16 xsk_port; /* the beat port xsk_beats hands over, network order */

/* BPF_PROG_TEST_RUN runs on one CPU: plain counters suffice. */
__u32 fp_n = 1, fp_next;
__u64 ref_beats; /* beats the reference took */
/* Ethernet, IPv4 and UDP headers every wrapped repeat starts from: vigil
 * may have turned the previous one into an acknowledgement (addresses and
 * ports swapped). */
__u8 fp_hdr[TG_BEAT_OFF];
__u64 drv_first_id, drv_next, drv_seq;

static __always_inline int count(struct xdp_md *ctx)
{
	__u32 zero = 0;
	struct sink_count *c = bpf_map_lookup_elem(&sink_count, &zero);

	if (c) {
		c->packets++;
		c->bytes += ctx->data_end - ctx->data;
	}
	return 0;
}

SEC("xdp")
int sink_drop(struct xdp_md *ctx)
{
	count(ctx);
	return XDP_DROP;
}

SEC("xdp")
int sink_pass(struct xdp_md *ctx)
{
	count(ctx);
	return XDP_PASS;
}

/* Like sink_drop, but reads every byte of the beat first, as any program
 * that judges a beat must: the frame's cache lines come from the sender's
 * CPU. Separates that cost from vigil's own in the throughput table. */
SEC("xdp")
int sink_touch(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *data_end = (void *)(long)ctx->data_end;
	__u32 zero = 0;
	struct sink_count *c = bpf_map_lookup_elem(&sink_count, &zero);
	__u64 x = 0;

	if (data + TG_FRAME_LEN <= data_end)
		for (int i = 0; i < TG_FRAME_LEN / 8; i++)
			x ^= *(__u64 *)(data + 8 * i);
	if (c) {
		c->packets++;
		c->bytes += x & 1; /* keeps the reads */
	}
	return XDP_DROP;
}

/* What a user writing an AF_XDP monitor would attach: find the beats as
 * vigil does (its parser), count them, and hand them to userspace. */
SEC("xdp")
int xsk_beats(struct xdp_md *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	struct hdr_cursor c = { .pos = (void *)(long)ctx->data };
	struct src_addr src;
	__be16 dport = 0;

	if (parse_ethhdr(&c, data_end) != bpf_htons(ETH_P_IP) ||
	    parse_iphdr(&c, data_end, &src) != IPPROTO_UDP_ ||
	    parse_udphdr(&c, data_end, &dport) < 0 || dport != xsk_port)
		return XDP_PASS;
	count(ctx);
	return bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS);
}

SEC("xdp")
int fp_empty(struct xdp_md *ctx)
{
	return XDP_DROP;
}

SEC("xdp")
int fp_reference(struct xdp_md *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	struct hdr_cursor c = { .pos = (void *)(long)ctx->data };
	struct vigil_beat *b;
	struct ref_agent *a;
	struct src_addr src;
	__be16 dport = 0;
	__u32 idx;

	if (parse_ethhdr(&c, data_end) != bpf_htons(ETH_P_IP) ||
	    parse_iphdr(&c, data_end, &src) != IPPROTO_UDP_ ||
	    parse_udphdr(&c, data_end, &dport) < (int)sizeof(*b) ||
	    dport != bpf_htons(VIGIL_DEFAULT_PORT))
		return XDP_PASS;
	b = c.pos;
	if ((void *)(b + 1) > data_end || b->magic != bpf_htons(VIGIL_MAGIC))
		return XDP_PASS;
	idx = (__u32)vg_be64(b->agent_id) - 1;
	a = bpf_map_lookup_elem(&ref_agents, &idx);
	if (!a)
		return XDP_PASS;
	a->last_seen_ns = bpf_ktime_get_ns();
	a->seq = vg_be64(b->seq);
	ref_beats++;
	return XDP_DROP;
}

SEC("xdp")
int fp_wrap(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *data_end = (void *)(long)ctx->data_end;
	struct iphdr *ip = data + TG_IP_OFF;
	struct fp_entry *e;
	__u32 i = fp_next;

	if (data + TG_FRAME_LEN > data_end)
		return XDP_ABORTED;
	fp_next = i + 1 >= fp_n ? 0 : i + 1;
	e = bpf_map_lookup_elem(&fp_table, &i);
	if (!e)
		return XDP_ABORTED;
	__builtin_memcpy(data, fp_hdr, TG_BEAT_OFF);
	ip->saddr = e->saddr;
	ip->check = e->check;
	__builtin_memcpy(data + TG_BEAT_OFF, e->beat, 64);
	bpf_tail_call(ctx, &fp_target, 0);
	return XDP_ABORTED;
}

SEC("xdp")
int beat_driver(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *data_end = (void *)(long)ctx->data_end;
	struct vigil_beat *b = data + TG_BEAT_OFF;

	if (data + TG_FRAME_LEN > data_end)
		return XDP_ABORTED;
	b->agent_id = vg_be64(drv_first_id + drv_next);
	b->seq = vg_be64(drv_seq);
	b->send_ts_ns = vg_be64(bpf_ktime_get_ns()); /* as real agents do */
	drv_next++;
	bpf_tail_call(ctx, &fp_target, 0);
	return XDP_ABORTED;
}

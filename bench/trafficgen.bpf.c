// SPDX-License-Identifier: GPL-2.0
/*
 * The traffic generator's XDP program. Run by BPF_PROG_TEST_RUN with
 * BPF_F_TEST_XDP_LIVE_FRAMES on one end of a veth pair: each invocation
 * rewrites what must vary in one frame and returns XDP_TX, which the kernel
 * turns into a transmit on that interface, i.e. a frame arriving at the
 * peer. Frames are recycled by the page pool with whatever we wrote last,
 * so every frame is rewritten from the template, never patched
 * (bench/tg_frame.h, shared with the AF_PACKET engine).
 *
 * Pacing (cfg.gap_ps != 0): a frame whose time has not come is dropped
 * instead of sent, so the calling CPU spins at a precise rate. Long bursts
 * would overflow the 256-frame veth ring at any average rate.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
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

static __always_inline __u64 tg_now_ns(void)
{
	return bpf_ktime_get_ns();
}

static __always_inline __u32 tg_rand32(void)
{
	return bpf_get_prandom_u32();
}

static __always_inline const struct vigil_key *tg_agent_key(__u32 idx)
{
	return bpf_map_lookup_elem(&tg_keys, &idx);
}

static __always_inline const struct vigil_beat *tg_captured(__u32 idx)
{
	return bpf_map_lookup_elem(&tg_replay, &idx);
}

#include "tg_frame.h"

SEC("xdp")
int tg_gen(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *data_end = (void *)(long)ctx->data_end;
	int mode;

	if (data + TG_FRAME_LEN > data_end)
		return XDP_ABORTED;
	/* A frame whose time has not come is dropped: the CPU spins at the rate. */
	if (!tg_pace(&cfg, &st))
		return XDP_DROP;
	mode = tg_build(data, &cfg, &st);
	if (mode < 0 || mode >= TG_NMODES)
		return XDP_ABORTED;
	st.sent[mode]++;
	return XDP_TX;
}

// SPDX-License-Identifier: GPL-2.0
/*
 * vigil's kernel half: the XDP beat path and the deadline sweeper.
 *
 *   beat   -> vigil_xdp: parse, find the agent's slot, store last-seen time
 *             and sequence, report only edges (first beat, recovery, restart,
 *             leaving). Never touches the timing wheel.
 *   tick   -> sweep_tick (one bpf_timer): walk the due buckets of a timing
 *             wheel, take ALIVE->SUSPECT->DEAD edges, re-file the rest.
 *   poll   -> vigil_napi_poll: note each poll of the interface's receive
 *             queues, so that the sweeper sees a queue that stalls.
 *
 * Every state change is a compare-and-swap on agent_slot.state, so the beat
 * path and the sweeper can race and each transition still happens once.
 *
 * This file holds the entry points and the beat path's top-level flow;
 * the parts live in headers, by role, each included once, here:
 *   parse.bpf.h     packet parsing, one header at a time
 *   maps.bpf.h      every map and the load-time settings
 *   events.bpf.h    ring-buffer events and the state edges that report them
 *   checks.bpf.h    the checks of a datagram, and the one refusal path
 *   evidence.bpf.h  receive-path evidence: send times, losses, holds
 *   lease.bpf.h     lease renewal, release and expiry
 *   health.bpf.h    the monitor's own lateness (MONITOR_BEHIND)
 *   napi.bpf.h      receive queues the kernel shows stalled
 *   wheel.bpf.h     the timing wheel and the sweeper
 *   accept.bpf.h    what an accepted beat stores and the edges it takes
 *   ack.bpf.h       the acknowledgement sent back in place of the beat
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "parse.bpf.h"
#include "vigil/wire.h"
#include "vigil/maps.h"
#include "vigil/logic.h"
#include "vigil/auth.h"
#include "maps.bpf.h"
#include "events.bpf.h"
#include "checks.bpf.h"
#include "evidence.bpf.h"
#include "lease.bpf.h"
#include "health.bpf.h"
#include "napi.bpf.h"
#include "wheel.bpf.h"
#include "accept.bpf.h"
#include "ack.bpf.h"

char LICENSE[] SEC("license") = "GPL"; /* bpf_timer and bpf_loop need GPL */

#define CLOCK_MONOTONIC 1

/*
 * One datagram to the beat port: checked, cheapest first (checks.bpf.h),
 *   decode -> source rate -> known agent -> allowlist -> tag -> replay+rate
 * then accepted (accept.bpf.h) and, for agents that want it, acknowledged
 * (ack.bpf.h). Every refusal leaves by the one reject() at the end.
 */
static __always_inline int handle_beat(struct xdp_md *ctx, const struct beat_frame *f,
				       const struct hdr_cursor *hc, void *data_end, int plen,
				       struct vigil_stats *st, const struct src_addr *src)
{
	void *payload = hc->pos;
	struct vigil_config *cfg = bpf_map_lookup_elem(&vigil_config, &zero);
	struct beat_ctx c = {
		.st = st,
		.cfg = cfg,
		.src = src,
		.rv = VIGIL_REPLAY_NEWER,
		.now = bpf_ktime_get_ns(),
	};
	const struct agent_auth *auth;
	struct agent_keys *k;
	__u32 reason;

	if (!cfg)
		return XDP_PASS;
	reason = check_sender(ctx, &c, payload, data_end, plen, hc->left, hc->truncated);
	if (reason)
		goto refuse;
	k = c.k;
	if (!k)
		return XDP_PASS; /* unreachable: check_sender refused it */
	auth = auth_in_force(k);
	/* The decoder said OK, so all 64 bytes were in the packet: payload is
	 * the beat. */
	if (payload + sizeof(struct vigil_beat) > data_end)
		return XDP_PASS; /* unreachable; keeps the verifier's range */
	reason = check_agent(&c, payload, k, auth);
	if (reason)
		goto refuse;
	accept_beat(&c, ctx->rx_queue_index);
	if (auth->flags & VIGIL_AUTH_ACK)
		return send_ack(f, data_end, payload, auth, &c.b, cfg, c.now);
	return beat_verdict(cfg);
refuse:
	return reject(&c, reason);
}

SEC("xdp")
int vigil_xdp(struct xdp_md *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	struct hdr_cursor c = { .pos = (void *)(long)ctx->data };
	struct beat_frame f = { .eth = (void *)(long)ctx->data };
	struct src_addr src;
	struct vigil_stats *st;
	__be16 dport = 0;
	int proto, plen;

	st = bpf_map_lookup_elem(&vigil_stats, &zero);
	if (!st)
		return XDP_PASS;
	st->packets++;

	proto = parse_ethhdr(&c, data_end);
	f.l3 = c.pos;
	if (proto == bpf_htons(ETH_P_IP)) {
		proto = parse_iphdr(&c, data_end, &src);
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		f.v6 = 1;
		proto = parse_ip6hdr(&c, data_end, &src);
	} else {
		goto pass;
	}
	if (proto != IPPROTO_UDP_)
		goto pass;
	f.udp = c.pos;
	plen = parse_udphdr(&c, data_end, &dport);
	if (dport != beat_port_be || dport == 0)
		goto pass;
	return handle_beat(ctx, &f, &c, data_end, plen, st, &src);
pass:
	st->passed++;
	return XDP_PASS;
}

/* Every NAPI poll of the machine: the watched interface's are noted, so the
 * sweeper can tell a stalled receive queue from silent agents (napi.bpf.h). */
SEC("tp_btf/napi_poll")
int BPF_PROG(vigil_napi_poll, struct napi_struct *napi, int work, int budget)
{
	note_napi_poll(napi);
	return 0;
}

/* Run once by the daemon (BPF_PROG_TEST_RUN) to start the sweeper. */
SEC("syscall")
int vigil_start_sweeper(void *ctx)
{
	struct sweeper_timer *t = bpf_map_lookup_elem(&vigil_timer, &zero);
	long err;

	if (!t)
		return -1;
	err = bpf_timer_init(&t->timer, &vigil_timer, CLOCK_MONOTONIC);
	if (err && err != -16 /* EBUSY: already initialised */)
		return err;
	err = bpf_timer_set_callback(&t->timer, sweep_tick);
	if (err)
		return err;
	return arm(t);
}

// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/*
 * test_prog: vigil's BPF programs driven through BPF_PROG_TEST_RUN.
 *
 * The object is loaded exactly as the daemon loads it (skeleton, rodata,
 * sweeper timer started) but neither attached nor pinned. Crafted frames go
 * through vigil_xdp; each case states the verdict it expects and the exact
 * change to the agent slots, the per-CPU counters and the ring buffer, and
 * everything else must stay as it was. The deadline cases then let the real
 * sweeper (1 ms tick) run against the clock.
 *
 * Output is TAP: "ok N - what" per case, "# " lines for context. Needs root.
 * VIGIL_TEST_VERBOSE=1 prints libbpf's messages (and the verifier log on a
 * failed load).
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "vigil.skel.h"
#include "instance.h"
#include "log.h"
#include "registry.h"
#include "util.h"
#include "vigil/maps.h"
#include "vigil/wire.h"
#include "pkt.h"
#include "tap.h"

#define TICK_NS VIGIL_NSEC_PER_MSEC
#define MS VIGIL_NSEC_PER_MSEC
/* A transition may be reported up to two ticks after its deadline (one for
 * rounding the deadline up to a tick, one for the timer period) plus what the
 * scheduler adds; 5 ms is generous for that. */
#define SCHED_SLACK_NS (5 * MS)
#define LATE_BOUND_NS (2 * TICK_NS + SCHED_SLACK_NS)
#define NO_SLOT 0xffffffffu

static struct vg_maps maps;
static struct vigil_bpf *skel;
static struct ring_buffer *rb;
static int xdp_fd;
static struct vigil_config loaded_cfg;
static const __u32 zero;

/* ------------------------------------------------------------ event log */

/* Every record the ring buffer delivered, in the order it delivered them. */
static struct vigil_event *evlog;
static size_t ev_n, ev_cap, ev_bad_size;

static int on_event(void *ctx, void *data, size_t len)
{
	(void)ctx;
	if (len != sizeof(struct vigil_event)) {
		ev_bad_size++;
		return 0;
	}
	if (ev_n == ev_cap) {
		size_t cap = ev_cap ? 2 * ev_cap : 4096;
		struct vigil_event *p = realloc(evlog, cap * sizeof(*p));

		if (!p) {
			fprintf(stderr, "out of memory for the event log\n");
			exit(2);
		}
		evlog = p;
		ev_cap = cap;
	}
	memcpy(&evlog[ev_n++], data, sizeof(struct vigil_event));
	return 0;
}

/* Collect whatever the ring buffer holds; returns the log length. */
static size_t drain(void)
{
	ring_buffer__consume(rb);
	return ev_n;
}

static const char *kind_name(__u32 k)
{
	return vg_kind_name(k);
}

static const char *state_name(__u32 s)
{
	return vg_state_name(s);
}

/* ---------------------------------------------------------------- beats */

/* Run vigil_xdp once on a frame. Returns the verdict, or -errno when the
 * kernel refused to run it; t0/t1 bracket the run on the monotonic clock. */
static int xdp_run(const __u8 *frame, size_t len, __u64 *t0, __u64 *t1)
{
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = frame, .data_size_in = len);
	int err;

	*t0 = vg_mono_ns();
	err = bpf_prog_test_run_opts(xdp_fd, &o);
	*t1 = vg_mono_ns();
	if (err)
		return err < 0 ? err : -errno;
	return (int)o.retval;
}

static int send_beat(const struct frame_spec *f, const struct vigil_beat_info *b,
		     const struct beat_patch *patch, __u64 *t0, __u64 *t1)
{
	__u8 frame[PKT_MAX];
	size_t len = build_frame(frame, f, b, patch);

	return xdp_run(frame, len, t0, t1);
}

/* A plain IPv4 beat, as the deadline cases send them. */
static int beat_v4(__u64 id, __u64 seq, __u32 interval_ms, __u64 *t0, __u64 *t1)
{
	static const struct frame_spec f = {};
	struct vigil_beat_info b = {
		.agent_id = id, .seq = seq, .incarnation = 1, .interval_ms = interval_ms,
	};

	return send_beat(&f, &b, NULL, t0, t1);
}

static int add_agent(__u64 id, __u32 min_ms, __u32 max_ms, __u32 mult, __u32 *hint)
{
	struct vg_agent_def d;

	vg_agent_def_default(&d, id);
	d.interval_min_ms = min_ms;
	d.interval_max_ms = max_ms;
	d.multiplier = mult;
	return vg_agent_add(&maps, &d, hint);
}

static int set_pass_beats(__u32 v)
{
	struct vigil_config c = loaded_cfg;

	c.pass_beats = v;
	return bpf_map_update_elem(maps.config, &zero, &c, BPF_ANY);
}

static int read_globals(struct vigil_globals *g)
{
	return bpf_map_lookup_elem(maps.globals, &zero, g);
}

/* ------------------------------------------------ slot and counter diffs */

#define SF(f) { #f, offsetof(struct agent_slot, f), sizeof(((struct agent_slot *)0)->f) }
static const struct slot_field {
	const char *name;
	size_t off, size;
} slot_fields[] = {
	SF(agent_id), SF(last_seen_ns), SF(seq), SF(send_ts_ns), SF(state_since_ns),
	SF(last_event_seq), SF(beats), SF(duplicates), SF(reordered), SF(malformed),
	SF(bad_version), SF(restarts), SF(state), SF(incarnation), SF(interval_ms),
	SF(interval_min_ms), SF(interval_max_ms), SF(multiplier), SF(lease_id),
	SF(queue_depth), SF(status), SF(pad0), SF(name), SF(group),
};
#define N_SLOT_FIELDS (sizeof(slot_fields) / sizeof(slot_fields[0]))

static __u64 field_val(const void *base, size_t off, size_t size)
{
	const char *p = (const char *)base + off;
	__u64 v = 0;

	switch (size) {
	case 8: v = *(const __u64 *)p; break;
	case 4: v = *(const __u32 *)p; break;
	case 2: v = *(const __u16 *)p; break;
	case 1: v = *(const __u8 *)p; break;
	}
	return v;
}

/* Compare every field of two slots, note each difference; returns how many. */
static int slot_diff(__u64 id, const struct agent_slot *want, const struct agent_slot *got)
{
	size_t covered = 0;
	int n = 0;

	for (size_t i = 0; i < N_SLOT_FIELDS; i++) {
		const struct slot_field *f = &slot_fields[i];

		covered += f->size;
		if (!memcmp((const char *)want + f->off, (const char *)got + f->off, f->size))
			continue;
		n++;
		if (f->size > 8)
			note("agent %llu: %s is '%.*s', want '%.*s'", (unsigned long long)id,
			     f->name, (int)f->size, (const char *)got + f->off, (int)f->size,
			     (const char *)want + f->off);
		else
			note("agent %llu: %s is %llu, want %llu", (unsigned long long)id, f->name,
			     (unsigned long long)field_val(got, f->off, f->size),
			     (unsigned long long)field_val(want, f->off, f->size));
	}
	if (covered != sizeof(struct agent_slot)) {
		note("slot_fields covers %zu of %zu bytes of struct agent_slot: update the test",
		     covered, sizeof(struct agent_slot));
		n++;
	}
	return n;
}

static const char *const stat_names[] = {
	"packets", "beats", "passed", "malformed", "bad_version", "unknown_agent", "duplicates",
	"reordered", "restarts", "events", "ringbuf_full", "queue_full", "stale_slot",
};
_Static_assert(sizeof(stat_names) / sizeof(stat_names[0]) == sizeof(struct vigil_stats) / 8,
	       "stat_names must name every counter of struct vigil_stats");
#define N_STATS (sizeof(stat_names) / sizeof(stat_names[0]))

static __u64 stat_at(const struct vigil_stats *s, size_t i)
{
	return ((const __u64 *)s)[i];
}

/* Check that every counter moved by exactly `want` between a and b. */
static int stats_diff(const struct vigil_stats *a, const struct vigil_stats *b,
		      const struct vigil_stats *want)
{
	int n = 0;

	for (size_t i = 0; i < N_STATS; i++) {
		__u64 d = stat_at(b, i) - stat_at(a, i);

		if (d == stat_at(want, i))
			continue;
		n++;
		note("counter %s moved by %lld, want %llu", stat_names[i], (long long)d,
		     (unsigned long long)stat_at(want, i));
	}
	return n;
}

/* --------------------------------------------------------- packet cases */

/* The agents the packet cases talk to: all are checked after every case. */
#define AG_A 1001 /* IPv4, and the one most cases are about */
#define AG_B 1002 /* IPv6 */
#define AG_C 1003 /* IPv4 behind one 802.1Q tag */
#define AG_D 1004 /* IPv6 behind one 802.1Q tag */
#define AG_UNKNOWN 999999
static const __u64 pkt_agents[] = { AG_A, AG_B, AG_C, AG_D };
#define N_PKT_AGENTS (sizeof(pkt_agents) / sizeof(pkt_agents[0]))
/* Long intervals: the sweeper must have no reason to touch these slots. */
#define PKT_MIN_MS 1000
#define PKT_MAX_MS 10000

enum slot_change {
	SC_NONE,    /* no agent slot changes at all */
	SC_COUNTER, /* only the counter at .counter of .agent rises by one */
	SC_ACCEPT,  /* .agent accepts the beat */
};

#define CNT(f) offsetof(struct agent_slot, f)

struct pkt_case {
	const char *desc;
	struct frame_spec f;
	struct vigil_beat_info b;
	struct beat_patch patch;
	int verdict;
	__u64 agent;
	enum slot_change sc;
	size_t counter;      /* SC_COUNTER: CNT(field) */
	__u32 state;         /* SC_ACCEPT: state afterwards */
	__u32 interval;      /* SC_ACCEPT: stored interval, after clamping */
	int restart;         /* SC_ACCEPT: incarnation rose */
	__u32 ev[2];         /* expected ring-buffer records, in order */
	struct vigil_stats st; /* expected counter deltas; packets and events implied */
	int pass_beats;      /* run with vigil_config.pass_beats = 1 */
};

#define BEAT(id, s, inc, ivl) { .agent_id = (id), .seq = (s), .incarnation = (inc), \
			       .interval_ms = (ivl), .send_ts_ns = 1000 + (s), .queue_depth = 3 }

static const struct pkt_case pkt_cases[] = {
	{ "IPv4 beat from a NEW agent: DROP, slot updated, ALIVE, one UP event",
	  .b = BEAT(AG_A, 1, 1, 2000), .verdict = XDP_DROP, .agent = AG_A, .sc = SC_ACCEPT,
	  .state = VIGIL_AGENT_ALIVE, .interval = 2000, .ev = { VIGIL_EV_UP }, .st = { .beats = 1 } },
	{ "IPv6 beat from a NEW agent: DROP, slot updated, ALIVE, one UP event",
	  .f = { .l3 = L3_IPV6 }, .b = BEAT(AG_B, 1, 1, 2000), .verdict = XDP_DROP, .agent = AG_B,
	  .sc = SC_ACCEPT, .state = VIGIL_AGENT_ALIVE, .interval = 2000, .ev = { VIGIL_EV_UP },
	  .st = { .beats = 1 } },
	{ "IPv4 beat behind one 802.1Q tag from a NEW agent: accepted, one UP event",
	  .f = { .vlans = 1 }, .b = BEAT(AG_C, 1, 1, 2000), .verdict = XDP_DROP, .agent = AG_C,
	  .sc = SC_ACCEPT, .state = VIGIL_AGENT_ALIVE, .interval = 2000, .ev = { VIGIL_EV_UP },
	  .st = { .beats = 1 } },
	{ "IPv6 beat behind one 802.1Q tag from a NEW agent: accepted, one UP event",
	  .f = { .l3 = L3_IPV6, .vlans = 1 }, .b = BEAT(AG_D, 1, 1, 2000), .verdict = XDP_DROP,
	  .agent = AG_D, .sc = SC_ACCEPT, .state = VIGIL_AGENT_ALIVE, .interval = 2000,
	  .ev = { VIGIL_EV_UP }, .st = { .beats = 1 } },
	{ "next sequence, same incarnation: accepted, no event",
	  .b = BEAT(AG_A, 2, 1, 2000), .verdict = XDP_DROP, .agent = AG_A, .sc = SC_ACCEPT,
	  .state = VIGIL_AGENT_ALIVE, .interval = 2000, .st = { .beats = 1 } },
	{ "sequence gap (2 -> 5): accepted, no event",
	  .b = BEAT(AG_A, 5, 1, 2000), .verdict = XDP_DROP, .agent = AG_A, .sc = SC_ACCEPT,
	  .state = VIGIL_AGENT_ALIVE, .interval = 2000, .st = { .beats = 1 } },
	{ "beat with Ethernet padding after the IP packet: accepted",
	  .f = { .trailer = 6 }, .b = BEAT(AG_A, 6, 1, 2000), .verdict = XDP_DROP, .agent = AG_A,
	  .sc = SC_ACCEPT, .state = VIGIL_AGENT_ALIVE, .interval = 2000, .st = { .beats = 1 } },
	{ "IPv4 header with 8 bytes of options: accepted",
	  .f = { .ip_opt_words = 2 }, .b = BEAT(AG_A, 7, 1, 2000), .verdict = XDP_DROP,
	  .agent = AG_A, .sc = SC_ACCEPT, .state = VIGIL_AGENT_ALIVE, .interval = 2000,
	  .st = { .beats = 1 } },
	{ "status DEGRADED, queue depth 65535, lease 7: stored",
	  .b = { .agent_id = AG_A, .seq = 8, .incarnation = 1, .interval_ms = 2000,
		 .status = VIGIL_STATUS_DEGRADED, .queue_depth = 65535, .lease_id = 7,
		 .send_ts_ns = 0xfedcba9876543210ULL },
	  .verdict = XDP_DROP, .agent = AG_A, .sc = SC_ACCEPT, .state = VIGIL_AGENT_ALIVE,
	  .interval = 2000, .st = { .beats = 1 } },
	{ "duplicate sequence: DROP, duplicates +1, nothing else (last_seen_ns kept)",
	  .b = BEAT(AG_A, 8, 1, 2000), .verdict = XDP_DROP, .agent = AG_A, .sc = SC_COUNTER,
	  .counter = CNT(duplicates), .st = { .duplicates = 1 } },
	{ "older sequence: DROP, reordered +1, nothing else",
	  .b = BEAT(AG_A, 4, 1, 2000), .verdict = XDP_DROP, .agent = AG_A, .sc = SC_COUNTER,
	  .counter = CNT(reordered), .st = { .reordered = 1 } },
	{ "incarnation rise with sequence reset: accepted, restarts +1, one RESTART event",
	  .b = BEAT(AG_A, 1, 2, 2000), .verdict = XDP_DROP, .agent = AG_A, .sc = SC_ACCEPT,
	  .state = VIGIL_AGENT_ALIVE, .interval = 2000, .restart = 1, .ev = { VIGIL_EV_RESTART },
	  .st = { .beats = 1, .restarts = 1 } },
	{ "lower incarnation, higher sequence: DROP, reordered +1, nothing else",
	  .b = BEAT(AG_A, 100, 1, 2000), .verdict = XDP_DROP, .agent = AG_A, .sc = SC_COUNTER,
	  .counter = CNT(reordered), .st = { .reordered = 1 } },
	{ "interval below the agent's minimum: clamped to the minimum",
	  .b = BEAT(AG_A, 2, 2, 1), .verdict = XDP_DROP, .agent = AG_A, .sc = SC_ACCEPT,
	  .state = VIGIL_AGENT_ALIVE, .interval = PKT_MIN_MS, .st = { .beats = 1 } },
	{ "interval above the agent's maximum: clamped to the maximum",
	  .b = BEAT(AG_A, 3, 2, 4000000000u), .verdict = XDP_DROP, .agent = AG_A, .sc = SC_ACCEPT,
	  .state = VIGIL_AGENT_ALIVE, .interval = PKT_MAX_MS, .st = { .beats = 1 } },
	{ "interval exactly the minimum: kept",
	  .b = BEAT(AG_A, 4, 2, PKT_MIN_MS), .verdict = XDP_DROP, .agent = AG_A, .sc = SC_ACCEPT,
	  .state = VIGIL_AGENT_ALIVE, .interval = PKT_MIN_MS, .st = { .beats = 1 } },
	{ "status LEAVING: state LEFT, one LEFT event",
	  .b = { .agent_id = AG_A, .seq = 5, .incarnation = 2, .interval_ms = 2000,
		 .status = VIGIL_STATUS_LEAVING },
	  .verdict = XDP_DROP, .agent = AG_A, .sc = SC_ACCEPT, .state = VIGIL_AGENT_LEFT,
	  .interval = 2000, .ev = { VIGIL_EV_LEFT }, .st = { .beats = 1 } },
	{ "LEAVING again while LEFT: accepted, stays LEFT, no event",
	  .b = { .agent_id = AG_A, .seq = 6, .incarnation = 2, .interval_ms = 2000,
		 .status = VIGIL_STATUS_LEAVING },
	  .verdict = XDP_DROP, .agent = AG_A, .sc = SC_ACCEPT, .state = VIGIL_AGENT_LEFT,
	  .interval = 2000, .st = { .beats = 1 } },
	{ "OK beat after LEFT: ALIVE again, one UP event",
	  .b = BEAT(AG_A, 7, 2, 2000), .verdict = XDP_DROP, .agent = AG_A, .sc = SC_ACCEPT,
	  .state = VIGIL_AGENT_ALIVE, .interval = 2000, .ev = { VIGIL_EV_UP }, .st = { .beats = 1 } },
	{ "pass_beats=1: a valid beat is XDP_PASS and still counted",
	  .b = BEAT(AG_A, 8, 2, 2000), .verdict = XDP_PASS, .agent = AG_A, .sc = SC_ACCEPT,
	  .state = VIGIL_AGENT_ALIVE, .interval = 2000, .st = { .beats = 1 }, .pass_beats = 1 },
	{ "pass_beats=1: a malformed beat is XDP_PASS too, and counted",
	  .b = BEAT(AG_A, 9, 2, 0), .verdict = XDP_PASS, .agent = AG_A, .sc = SC_COUNTER,
	  .counter = CNT(malformed), .st = { .malformed = 1 }, .pass_beats = 1 },
	{ "unknown agent id: DROP, unknown_agent +1, one UNKNOWN_AGENT event",
	  .b = BEAT(AG_UNKNOWN, 1, 1, 2000), .verdict = XDP_DROP, .sc = SC_NONE,
	  .ev = { VIGIL_EV_UNKNOWN_AGENT }, .st = { .unknown_agent = 1 } },
	{ "unknown version: DROP, bad_version +1 globally and for the agent, nothing else",
	  .b = BEAT(AG_A, 9, 2, 2000), .patch = { 2, 1, 2 }, .verdict = XDP_DROP, .agent = AG_A,
	  .sc = SC_COUNTER, .counter = CNT(bad_version), .st = { .bad_version = 1 } },
	{ "unknown version in a 20-byte payload: still bad_version for the agent",
	  .f = { .short_payload = 1, .payload_len = 20 }, .b = BEAT(AG_A, 9, 2, 2000),
	  .patch = { 2, 1, 7 }, .verdict = XDP_DROP, .agent = AG_A, .sc = SC_COUNTER,
	  .counter = CNT(bad_version), .st = { .bad_version = 1 } },
	{ "unknown version from an unknown agent: bad_version +1, no event",
	  .b = BEAT(AG_UNKNOWN, 9, 1, 2000), .patch = { 2, 1, 2 }, .verdict = XDP_DROP,
	  .sc = SC_NONE, .st = { .bad_version = 1 } },
	{ "bad magic: DROP, malformed +1, no agent named",
	  .b = BEAT(AG_A, 9, 2, 2000), .patch = { 0, 2, 0x4756 }, .verdict = XDP_DROP,
	  .sc = SC_NONE, .st = { .malformed = 1 } },
	{ "unknown flag bit: DROP, malformed +1 globally and for the agent",
	  .b = BEAT(AG_A, 9, 2, 2000), .patch = { 3, 1, 0x80 }, .verdict = XDP_DROP,
	  .agent = AG_A, .sc = SC_COUNTER, .counter = CNT(malformed), .st = { .malformed = 1 } },
	{ "status beyond LEAVING: malformed",
	  .b = BEAT(AG_A, 9, 2, 2000), .patch = { 4, 1, VIGIL_STATUS_MAX + 1 }, .verdict = XDP_DROP,
	  .agent = AG_A, .sc = SC_COUNTER, .counter = CNT(malformed), .st = { .malformed = 1 } },
	{ "key_id 2: malformed",
	  .b = BEAT(AG_A, 9, 2, 2000), .patch = { 5, 1, 2 }, .verdict = XDP_DROP, .agent = AG_A,
	  .sc = SC_COUNTER, .counter = CNT(malformed), .st = { .malformed = 1 } },
	{ "reserved field non-zero: malformed",
	  .b = BEAT(AG_A, 9, 2, 2000), .patch = { 44, 4, 1 }, .verdict = XDP_DROP, .agent = AG_A,
	  .sc = SC_COUNTER, .counter = CNT(malformed), .st = { .malformed = 1 } },
	{ "interval 0: malformed",
	  .b = BEAT(AG_A, 9, 2, 0), .verdict = XDP_DROP, .agent = AG_A, .sc = SC_COUNTER,
	  .counter = CNT(malformed), .st = { .malformed = 1 } },
	{ "UDP length field below 8: DROP, malformed +1 globally only",
	  .f = { .udp_len = 4 }, .b = BEAT(AG_A, 9, 2, 2000), .verdict = XDP_DROP, .sc = SC_NONE,
	  .st = { .malformed = 1 } },
	{ "UDP length field claims 100 payload bytes, frame holds 64: malformed",
	  .f = { .udp_len = 108 }, .b = BEAT(AG_A, 9, 2, 2000), .verdict = XDP_DROP, .agent = AG_A,
	  .sc = SC_COUNTER, .counter = CNT(malformed), .st = { .malformed = 1 } },
	{ "UDP length field claims 65 payload bytes (one padding byte follows): malformed",
	  .f = { .udp_len = 73, .trailer = 1 }, .b = BEAT(AG_A, 9, 2, 2000), .verdict = XDP_DROP,
	  .agent = AG_A, .sc = SC_COUNTER, .counter = CNT(malformed), .st = { .malformed = 1 } },
	{ "beat to UDP port 4748: PASS, nothing changes",
	  .f = { .dport = 4748 }, .b = BEAT(AG_A, 9, 2, 2000), .verdict = XDP_PASS, .sc = SC_NONE,
	  .st = { .passed = 1 } },
	{ "IPv6 beat to UDP port 4748: PASS, nothing changes",
	  .f = { .l3 = L3_IPV6, .dport = 4748 }, .b = BEAT(AG_B, 2, 1, 2000), .verdict = XDP_PASS,
	  .sc = SC_NONE, .st = { .passed = 1 } },
	{ "TCP segment to port 4747 carrying a beat: PASS, nothing changes",
	  .f = { .l4 = L4_TCP }, .b = BEAT(AG_A, 9, 2, 2000), .verdict = XDP_PASS, .sc = SC_NONE,
	  .st = { .passed = 1 } },
	{ "ARP request: PASS, nothing changes",
	  .f = { .l3 = L3_ARP }, .verdict = XDP_PASS, .sc = SC_NONE, .st = { .passed = 1 } },
	{ "IPv4 first fragment (MF) to port 4747: PASS, nothing changes",
	  .f = { .frag_off = 0x2000 }, .b = BEAT(AG_A, 9, 2, 2000), .verdict = XDP_PASS,
	  .sc = SC_NONE, .st = { .passed = 1 } },
	{ "IPv4 later fragment (offset 8 bytes): PASS, nothing changes",
	  .f = { .frag_off = 0x0001 }, .b = BEAT(AG_A, 9, 2, 2000), .verdict = XDP_PASS,
	  .sc = SC_NONE, .st = { .passed = 1 } },
	{ "two 802.1Q tags (only one is parsed): PASS, nothing changes",
	  .f = { .vlans = 2 }, .b = BEAT(AG_A, 9, 2, 2000), .verdict = XDP_PASS, .sc = SC_NONE,
	  .st = { .passed = 1 } },
	{ "IPv6 with a hop-by-hop header (not parsed): PASS, nothing changes",
	  .f = { .l3 = L3_IPV6, .ip6_hbh = 1 }, .b = BEAT(AG_B, 2, 1, 2000), .verdict = XDP_PASS,
	  .sc = SC_NONE, .st = { .passed = 1 } },
	{ "IPv6 LEAVING: state LEFT, one LEFT event",
	  .f = { .l3 = L3_IPV6 }, .b = { .agent_id = AG_B, .seq = 2, .incarnation = 1,
					.interval_ms = 2000, .status = VIGIL_STATUS_LEAVING },
	  .verdict = XDP_DROP, .agent = AG_B, .sc = SC_ACCEPT, .state = VIGIL_AGENT_LEFT,
	  .interval = 2000, .ev = { VIGIL_EV_LEFT }, .st = { .beats = 1 } },
	{ "back from LEFT with a higher incarnation: RESTART then UP, in that order",
	  .f = { .l3 = L3_IPV6 }, .b = BEAT(AG_B, 1, 2, 2000), .verdict = XDP_DROP, .agent = AG_B,
	  .sc = SC_ACCEPT, .state = VIGIL_AGENT_ALIVE, .interval = 2000, .restart = 1,
	  .ev = { VIGIL_EV_RESTART, VIGIL_EV_UP }, .st = { .beats = 1, .restarts = 1 } },
	{ "after all that, the next sequence is accepted as usual",
	  .b = BEAT(AG_A, 9, 2, 2000), .verdict = XDP_DROP, .agent = AG_A, .sc = SC_ACCEPT,
	  .state = VIGIL_AGENT_ALIVE, .interval = 2000, .st = { .beats = 1 } },
};

static int snapshot(struct agent_slot *out)
{
	for (size_t i = 0; i < N_PKT_AGENTS; i++)
		if (vg_agent_get(&maps, pkt_agents[i], NULL, &out[i]))
			return -1;
	return 0;
}

static int nexp_events(const struct pkt_case *c)
{
	return !!c->ev[0] + !!c->ev[1];
}

/* Check one ring-buffer record against what case c should have produced. */
static int check_event(const struct pkt_case *c, const struct vigil_event *e, __u32 kind,
		       __u64 want_seq, __u64 t0, __u64 t1, const struct agent_slot *before,
		       const struct agent_slot *after, __u32 slot)
{
	int bad = 0;

#define EXPECT(cond, ...) do { if (!(cond)) { note(__VA_ARGS__); bad++; } } while (0)
	EXPECT(e->kind == kind, "event kind %s, want %s", kind_name(e->kind), kind_name(kind));
	EXPECT(e->event_seq == want_seq, "event_seq %llu, want %llu",
	       (unsigned long long)e->event_seq, (unsigned long long)want_seq);
	EXPECT(e->detected_ns >= t0 && e->detected_ns <= t1,
	       "detected_ns %llu outside the test run [%llu, %llu]",
	       (unsigned long long)e->detected_ns, (unsigned long long)t0, (unsigned long long)t1);
	if (kind == VIGIL_EV_UNKNOWN_AGENT) {
		EXPECT(e->agent_id == c->b.agent_id, "event agent_id %llu, want %llu",
		       (unsigned long long)e->agent_id, (unsigned long long)c->b.agent_id);
		EXPECT(e->slot == NO_SLOT, "unknown-agent event names slot %u", e->slot);
		EXPECT(e->state == VIGIL_AGENT_FREE && e->prev_state == VIGIL_AGENT_FREE,
		       "unknown-agent event states %u -> %u", e->prev_state, e->state);
		return bad;
	}
	if (!before || !after)
		return note("a %s record, but the case names no agent", kind_name(kind)), 1;
	EXPECT(e->agent_id == c->agent, "event agent_id %llu, want %llu",
	       (unsigned long long)e->agent_id, (unsigned long long)c->agent);
	EXPECT(e->slot == slot, "event slot %u, want %u", e->slot, slot);
	EXPECT(e->last_seen_ns == after->last_seen_ns && e->seq == after->seq &&
	       e->incarnation == after->incarnation && e->interval_ms == after->interval_ms,
	       "event carries last_seen %llu seq %llu inc %u interval %u, slot has %llu %llu %u %u",
	       (unsigned long long)e->last_seen_ns, (unsigned long long)e->seq, e->incarnation,
	       e->interval_ms, (unsigned long long)after->last_seen_ns,
	       (unsigned long long)after->seq, after->incarnation, after->interval_ms);
	if (kind == VIGIL_EV_RESTART)
		EXPECT(e->prev_state == before->state && e->state == before->state,
		       "RESTART event states %s -> %s, want %s -> %s", state_name(e->prev_state),
		       state_name(e->state), state_name(before->state), state_name(before->state));
	else
		EXPECT(e->prev_state == before->state && e->state == c->state,
		       "event states %s -> %s, want %s -> %s", state_name(e->prev_state),
		       state_name(e->state), state_name(before->state), state_name(c->state));
	return bad;
#undef EXPECT
}

/* Run one packet case; print its TAP line. Returns true when it passed. */
static bool run_pkt_case(const struct pkt_case *c)
{
	struct agent_slot before[N_PKT_AGENTS], after[N_PKT_AGENTS], want[N_PKT_AGENTS];
	struct vigil_stats st0, st1, dst = c->st;
	struct vigil_globals g0, g1;
	__u64 t0, t1, trans_seq = 0;
	int bad = 0, idx = -1, nexp = nexp_events(c), ret;
	size_t ev0, ev1;
	__u32 slot = NO_SLOT;

	for (size_t i = 0; i < N_PKT_AGENTS; i++)
		if (pkt_agents[i] == c->agent)
			idx = (int)i;
	if (c->sc != SC_NONE && idx < 0)
		return tap_result(false, "%s (test bug: agent %llu is not a packet agent)", c->desc,
				  (unsigned long long)c->agent);
	if (c->pass_beats && set_pass_beats(1))
		return tap_result(false, "%s (writing vigil_config: %s)", c->desc, strerror(errno));
	ev0 = drain();
	if (snapshot(before) || vg_stats_read(&maps, &st0) || read_globals(&g0)) {
		set_pass_beats(0);
		return tap_result(false, "%s (reading the maps: %s)", c->desc, strerror(errno));
	}
	ret = send_beat(&c->f, &c->b, &c->patch, &t0, &t1);
	ev1 = drain();
	if (snapshot(after) || vg_stats_read(&maps, &st1) || read_globals(&g1))
		bad++, note("reading the maps after the run failed: %s", strerror(errno));
	if (c->pass_beats && set_pass_beats(0))
		bad++, note("restoring vigil_config failed: %s", strerror(errno));

	if (ret < 0)
		return tap_result(false, "%s (BPF_PROG_TEST_RUN failed: %s)", c->desc,
				  strerror(-ret));
	if (ret != c->verdict)
		bad++, note("verdict %d, want %d", ret, c->verdict);

	/* Events first: the expected slot refers to the transition's sequence. */
	if ((int)(ev1 - ev0) != nexp) {
		bad++;
		note("%zu ring-buffer records, want %d", ev1 - ev0, nexp);
		for (size_t i = ev0; i < ev1; i++)
			note("  got %s for agent %llu", kind_name(evlog[i].kind),
			     (unsigned long long)evlog[i].agent_id);
	} else {
		if (idx >= 0)
			vg_agent_get(&maps, c->agent, &slot, &after[idx]);
		for (int i = 0; i < nexp; i++) {
			bad += check_event(c, &evlog[ev0 + i], c->ev[i], g0.event_seq + 1 + i, t0, t1,
					   idx >= 0 ? &before[idx] : NULL,
					   idx >= 0 ? &after[idx] : NULL, slot);
			if (c->ev[i] != VIGIL_EV_RESTART && c->ev[i] != VIGIL_EV_UNKNOWN_AGENT)
				trans_seq = evlog[ev0 + i].event_seq;
		}
	}
	if (g1.event_seq - g0.event_seq != (__u64)nexp)
		bad++, note("event_seq rose by %llu, want %d",
			    (unsigned long long)(g1.event_seq - g0.event_seq), nexp);

	/* The expected slots: everything as before, except what the case says. */
	memcpy(want, before, sizeof(want));
	if (c->sc == SC_COUNTER) {
		__u64 *p = (__u64 *)((char *)&want[idx] + c->counter);

		(*p)++;
	} else if (c->sc == SC_ACCEPT) {
		struct agent_slot *w = &want[idx];
		const struct agent_slot *a = &after[idx];

		if (a->last_seen_ns < t0 || a->last_seen_ns > t1)
			bad++, note("last_seen_ns %llu outside the test run [%llu, %llu]",
				    (unsigned long long)a->last_seen_ns, (unsigned long long)t0,
				    (unsigned long long)t1);
		w->last_seen_ns = a->last_seen_ns;
		w->seq = c->b.seq;
		w->send_ts_ns = c->b.send_ts_ns;
		w->interval_ms = c->interval;
		w->status = c->b.status;
		w->queue_depth = c->b.queue_depth;
		w->lease_id = c->b.lease_id;
		w->beats++;
		/* Learnt from the first beat, equal afterwards, risen on restart:
		 * a slot left at 0 would make the next beat look like a restart. */
		w->incarnation = c->b.incarnation;
		if (c->restart)
			w->restarts++;
		w->state = c->state;
		if (c->state != before[idx].state) {
			w->state_since_ns = a->last_seen_ns;
			w->last_event_seq = trans_seq;
		}
	}
	for (size_t i = 0; i < N_PKT_AGENTS; i++)
		bad += slot_diff(pkt_agents[i], &want[i], &after[i]);

	dst.packets = 1;
	dst.events = nexp;
	bad += stats_diff(&st0, &st1, &dst);
	return tap_result(!bad, "%s", c->desc);
}

static char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	if (!s) {
		fprintf(stderr, "out of memory\n");
		exit(2);
	}
	return s;
}

/* Every truncation of a beat: of the UDP payload (length field agreeing), of
 * the frame inside the headers, and of the frame inside the payload (length
 * field still claiming 64 bytes). Generated, then run like the table. */
static void run_truncation_cases(void)
{
	static const struct { const char *name; struct frame_spec f; } fams[] = {
		{ "IPv4", {} },
		{ "802.1Q+IPv4", { .vlans = 1 } },
		{ "IPv6", { .l3 = L3_IPV6 } },
	};
	struct pkt_case c = {
		.b = BEAT(AG_A, 50, 2, 2000), .verdict = XDP_DROP, .agent = AG_A,
		.st = { .malformed = 1 },
	};
	struct vigil_beat_info next = BEAT(AG_A, 10, 2, 2000);
	char *d;

	/* UDP payload truncated, UDP and IP length fields agreeing. */
	for (int k = 0; k < (int)sizeof(struct vigil_beat); k++) {
		c.f = (struct frame_spec){ .short_payload = 1, .payload_len = k };
		c.sc = k >= VIGIL_BEAT_ID_END ? SC_COUNTER : SC_NONE;
		c.counter = CNT(malformed);
		c.desc = d = xasprintf("IPv4 UDP payload of %d bytes: DROP, malformed +1%s, "
				       "no state change", k,
				       k >= VIGIL_BEAT_ID_END ? " (also for the agent)" : "");
		run_pkt_case(&c);
		free(d);
	}
	for (int k = 0; k < (int)sizeof(struct vigil_beat); k += 9) {
		c.f = (struct frame_spec){ .l3 = L3_IPV6, .vlans = 1, .short_payload = 1,
					   .payload_len = k };
		c.sc = k >= VIGIL_BEAT_ID_END ? SC_COUNTER : SC_NONE;
		c.desc = d = xasprintf("802.1Q+IPv6 UDP payload of %d bytes: DROP, malformed +1%s",
				       k, k >= VIGIL_BEAT_ID_END ? " (also for the agent)" : "");
		run_pkt_case(&c);
		free(d);
	}

	/* Shorter than an Ethernet header: the kernel refuses to run XDP on it
	 * (no NIC delivers one either); should that change, it must PASS. */
	{
		__u8 frame[PKT_MAX] = {};
		int refused = 0, passed = 0, other = 0;
		__u64 t0, t1;

		for (size_t len = 0; len < PKT_ETH_HLEN; len++) {
			int r = xdp_run(frame, len, &t0, &t1);

			refused += r == -EINVAL;
			passed += r == XDP_PASS;
			if (r != -EINVAL && r != XDP_PASS)
				other++, note("frame of %zu bytes: got %d", len, r);
		}
		tap_result(!other, "frames of 0..%d bytes never reach XDP as a beat (%d refused "
			   "by BPF_PROG_TEST_RUN with EINVAL, %d PASS)", PKT_ETH_HLEN - 1, refused,
			   passed);
	}

	/* The frame cut inside Ethernet, VLAN, IP or UDP header: not a beat. */
	for (size_t fi = 0; fi < sizeof(fams) / sizeof(fams[0]); fi++) {
		size_t hdr = frame_hdr_len(&fams[fi].f);

		for (size_t len = 0; len < hdr; len++) {
			c.f = fams[fi].f;
			c.f.cut = 1;
			c.f.frame_len = (int)len;
			c.verdict = XDP_PASS;
			c.sc = SC_NONE;
			c.st = (struct vigil_stats){ .passed = 1 };
			if (len < PKT_ETH_HLEN)
				continue; /* tried once, below */
			c.desc = d = xasprintf("%s frame cut to %zu of %zu header bytes: PASS, "
					       "nothing changes", fams[fi].name, len, hdr);
			run_pkt_case(&c);
			free(d);
		}
	}

	/* The frame cut inside the beat while the UDP length still says 64. */
	c.verdict = XDP_DROP;
	c.st = (struct vigil_stats){ .malformed = 1 };
	for (size_t fi = 0; fi < sizeof(fams) / sizeof(fams[0]); fi++) {
		size_t hdr = frame_hdr_len(&fams[fi].f);
		int step = fi ? 7 : 1; /* every length for IPv4, a sample for the others */

		for (int k = 0; k < (int)sizeof(struct vigil_beat); k += step) {
			c.f = fams[fi].f;
			c.f.cut = 1;
			c.f.frame_len = (int)hdr + k;
			c.sc = k >= VIGIL_BEAT_ID_END ? SC_COUNTER : SC_NONE;
			c.desc = d = xasprintf("%s frame cut %d bytes into a 64-byte beat: DROP, "
					       "malformed +1%s", fams[fi].name, k,
					       k >= VIGIL_BEAT_ID_END ? " (also for the agent)" : "");
			run_pkt_case(&c);
			free(d);
		}
	}

	/* None of that may have disturbed the sequence: the next beat is fine. */
	c = (struct pkt_case){
		.desc = "after every truncation, the next sequence is accepted as usual",
		.b = next, .verdict = XDP_DROP, .agent = AG_A, .sc = SC_ACCEPT,
		.state = VIGIL_AGENT_ALIVE, .interval = 2000, .st = { .beats = 1 },
	};
	run_pkt_case(&c);
}

/* Unknown agents are reported at most unknown_events_per_sec times a second. */
static void run_unknown_burst(void)
{
	const int n = 50;
	struct vigil_beat_info b = BEAT(AG_UNKNOWN + 1, 1, 1, 2000);
	struct frame_spec f = {};
	struct vigil_stats st0, st1, want = { .packets = n, .unknown_agent = n };
	struct vigil_globals g0, g1;
	__u64 t0, t1, first = 0, last = 0;
	size_t ev0, ev1, got = 0;
	int bad = 0, verdicts = 0;
	long long room;

	ev0 = drain();
	vg_stats_read(&maps, &st0);
	read_globals(&g0);
	for (int i = 0; i < n; i++) {
		b.seq = i + 1;
		verdicts += send_beat(&f, &b, NULL, &t0, &t1) == XDP_DROP;
		if (!i)
			first = t0;
		last = t1;
	}
	ev1 = drain();
	vg_stats_read(&maps, &st1);
	read_globals(&g1);
	for (size_t i = ev0; i < ev1; i++)
		got += evlog[i].kind == VIGIL_EV_UNKNOWN_AGENT && evlog[i].agent_id == b.agent_id;
	if (verdicts != n)
		bad++, note("%d of %d verdicts were XDP_DROP", verdicts, n);
	if (got != ev1 - ev0)
		bad++, note("%zu records that are not UNKNOWN_AGENT for %llu", ev1 - ev0 - got,
			    (unsigned long long)b.agent_id);
	want.events = got;
	bad += stats_diff(&st0, &st1, &want);
	/* Room left in the window that was open when the burst began; if the
	 * burst straddled a window boundary, only the cap itself holds. */
	room = (long long)loaded_cfg.unknown_events_per_sec - (long long)g0.unknown_in_window;
	if (first - g0.unknown_window_ns >= VIGIL_NSEC_PER_SEC || room < 0)
		room = first - g0.unknown_window_ns >= VIGIL_NSEC_PER_SEC ?
			       loaded_cfg.unknown_events_per_sec : 0;
	note("unknown-agent burst: %d beats in %.2f ms gave %zu events (cap %u/s, %lld left "
	     "in the open window)", n, (last - first) / 1e6, got,
	     loaded_cfg.unknown_events_per_sec, room);
	if (got > loaded_cfg.unknown_events_per_sec)
		bad++, note("more events than the cap");
	if (last - g0.unknown_window_ns < VIGIL_NSEC_PER_SEC && got != (size_t)room)
		bad++, note("want exactly %lld (the burst stayed inside one window)", room);
	if (!got && room > 0)
		bad++, note("no UNKNOWN_AGENT event at all");
	tap_result(!bad, "%d unknown-agent beats at once: all DROP and counted, at most "
		   "unknown_events_per_sec=%u events", n, loaded_cfg.unknown_events_per_sec);
}

static void run_packet_tests(void)
{
	struct agent_slot s;
	__u64 t0, t1;
	int bad = 0;

	t0 = vg_mono_ns();
	for (size_t i = 0; i < N_PKT_AGENTS; i++) {
		int err = add_agent(pkt_agents[i], PKT_MIN_MS, PKT_MAX_MS, 3, NULL);

		if (err)
			bad++, note("vg_agent_add(%llu): %s", (unsigned long long)pkt_agents[i],
				    strerror(-err));
	}
	t1 = vg_mono_ns();
	for (size_t i = 0; !bad && i < N_PKT_AGENTS; i++) {
		if (vg_agent_get(&maps, pkt_agents[i], NULL, &s)) {
			bad++, note("agent %llu not found", (unsigned long long)pkt_agents[i]);
			continue;
		}
		if (s.state != VIGIL_AGENT_NEW || s.last_seen_ns < t0 || s.last_seen_ns > t1 ||
		    s.interval_ms != PKT_MAX_MS || s.beats || s.seq)
			bad++, note("agent %llu: state %s last_seen %llu interval %u beats %llu",
				    (unsigned long long)pkt_agents[i], state_name(s.state),
				    (unsigned long long)s.last_seen_ns, s.interval_ms,
				    (unsigned long long)s.beats);
	}
	if (!tap_result(!bad, "registration: %zu agents NEW, deadline from registration at the "
			"maximum interval", N_PKT_AGENTS))
		return;

	for (size_t i = 0; i < sizeof(pkt_cases) / sizeof(pkt_cases[0]); i++)
		run_pkt_case(&pkt_cases[i]);
	run_truncation_cases();
	run_unknown_burst();

	for (size_t i = 0; i < N_PKT_AGENTS; i++)
		vg_agent_remove(&maps, pkt_agents[i]);
}

/* ------------------------------------------------------ deadline tests */

/* Lateness samples: detected_ns - (the time the transition became due). */
struct late {
	__s64 *v;
	size_t n, cap;
	size_t early;
};

static void late_add(struct late *l, __s64 ns)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 1024;
		l->v = realloc(l->v, l->cap * sizeof(*l->v));
		if (!l->v) {
			fprintf(stderr, "out of memory\n");
			exit(2);
		}
	}
	l->v[l->n++] = ns;
	if (ns < 0)
		l->early++;
}

static int cmp_s64(const void *a, const void *b)
{
	__s64 x = *(const __s64 *)a, y = *(const __s64 *)b;

	return x < y ? -1 : x > y;
}

static __s64 late_max(struct late *l)
{
	__s64 m = l->n ? l->v[0] : 0;

	for (size_t i = 0; i < l->n; i++)
		if (l->v[i] > m)
			m = l->v[i];
	return m;
}

static size_t late_over(const struct late *l, __s64 bound)
{
	size_t n = 0;

	for (size_t i = 0; i < l->n; i++)
		n += l->v[i] > bound;
	return n;
}

static void late_note(const char *what, struct late *l)
{
	if (!l->n) {
		note("%s: no samples", what);
		return;
	}
	qsort(l->v, l->n, sizeof(*l->v), cmp_s64);
	note("%s lateness over %zu events: min %.3f ms, median %.3f ms, p99 %.3f ms, "
	     "max %.3f ms (bound %.1f ms)", what, l->n, l->v[0] / 1e6, l->v[l->n / 2] / 1e6,
	     l->v[l->n * 99 / 100] / 1e6, l->v[l->n - 1] / 1e6, LATE_BOUND_NS / 1e6);
}

static struct late all_suspect, all_dead;
static __u32 dead_misses;

/*
 * When a SUSPECT or DEAD record was due, from its own last_seen_ns and
 * interval_ms. Written out here rather than taken from vigil/logic.h, so a
 * mistake there cannot hide by moving both the program and the test.
 */
static __u64 due_ns(const struct vigil_event *e, __u32 mult)
{
	__u64 misses = mult + (e->kind == VIGIL_EV_DEAD ? dead_misses : 0);

	return e->last_seen_ns + misses * e->interval_ms * MS;
}

/* Check a SUSPECT or DEAD record against its due time; count it into the
 * lateness samples. Returns 0 when it was neither early nor beyond the bound. */
static int check_deadline(const struct vigil_event *e, __u32 mult)
{
	__s64 late = (__s64)(e->detected_ns - due_ns(e, mult));

	late_add(e->kind == VIGIL_EV_SUSPECT ? &all_suspect : &all_dead, late);
	return late < 0 || late > (__s64)LATE_BOUND_NS;
}

enum dl_group { G_DEAD, G_SUSPECT, G_STEADY, G_SHORTEN, G_N };

static const struct dl_group_def {
	const char *name;
	int n;
	__u32 min_ms, max_ms, interval_ms;
	__u32 seq[6]; /* the events each agent must produce, in order */
	int nseq;
} dl_groups[G_N] = {
	[G_DEAD] = { "beat once, beat again when DEAD", 64, 5, 1000, 20,
		     { VIGIL_EV_UP, VIGIL_EV_SUSPECT, VIGIL_EV_DEAD, VIGIL_EV_RECOVERED,
		       VIGIL_EV_SUSPECT, VIGIL_EV_DEAD }, 6 },
	[G_SUSPECT] = { "beat once, beat again when SUSPECT", 64, 5, 1000, 20,
			{ VIGIL_EV_UP, VIGIL_EV_SUSPECT, VIGIL_EV_RECOVERED, VIGIL_EV_SUSPECT,
			  VIGIL_EV_DEAD }, 5 },
	[G_STEADY] = { "beat every 10 ms for 1 s, then stop", 4, 5, 1000, 20,
		       { VIGIL_EV_UP, VIGIL_EV_SUSPECT, VIGIL_EV_DEAD }, 3 },
	[G_SHORTEN] = { "advertise 1000 ms, then 10 ms, then stop", 64, 10, 1000, 10,
			{ VIGIL_EV_UP, VIGIL_EV_SUSPECT, VIGIL_EV_DEAD }, 3 },
};

#define DL_MULT 3
#define DL_BASE 5000
#define DL_MAX_EV 8
#define DL_MAX_BEATS 4
#define DL_MAX_AGENTS 256
#define STEADY_PERIOD_NS (10 * MS)
#define STEADY_FOR_NS (1000 * MS)

struct dl_agent {
	__u64 id;
	int group;
	__u64 seq;
	int nbeats;
	__u64 beat_t0[DL_MAX_BEATS], beat_t1[DL_MAX_BEATS];
	int nev, extra;
	struct vigil_event ev[DL_MAX_EV];
	int reacted;
};

static struct dl_agent dl[DL_MAX_AGENTS];
static int n_dl;

struct dl_action {
	__u64 at;
	int agent;
	__u32 interval_ms;
	int done;
};

static struct dl_action actions[2 * DL_MAX_AGENTS];
static int n_actions;
static int beat_errors;

static void schedule(__u64 at, int agent, __u32 interval_ms)
{
	if (n_actions < (int)(sizeof(actions) / sizeof(actions[0])))
		actions[n_actions++] = (struct dl_action){ at, agent, interval_ms, 0 };
}

static void dl_beat(struct dl_agent *a, __u32 interval_ms)
{
	__u64 t0, t1;
	int r = beat_v4(a->id, ++a->seq, interval_ms, &t0, &t1);

	if (r != XDP_DROP)
		beat_errors++;
	if (a->nbeats < DL_MAX_BEATS) {
		a->beat_t0[a->nbeats] = t0;
		a->beat_t1[a->nbeats] = t1;
	}
	a->nbeats++;
}

/* The steady agents' own thread: beats on a fixed cadence, as an agent would. */
struct steady {
	pthread_t thr;
	int first, n;
	__u64 start, stop, max_gap, last_t0[8], last_t1[8];
	int beats, errors;
};

static void *steady_main(void *arg)
{
	struct steady *s = arg;
	struct timespec ts;
	__u64 next = s->start, prev = 0;

	while (next < s->start + STEADY_FOR_NS) {
		ts.tv_sec = next / VIGIL_NSEC_PER_SEC;
		ts.tv_nsec = next % VIGIL_NSEC_PER_SEC;
		clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
		for (int i = 0; i < s->n; i++) {
			struct dl_agent *a = &dl[s->first + i];
			__u64 t0, t1;

			if (beat_v4(a->id, ++a->seq, dl_groups[G_STEADY].interval_ms, &t0, &t1) !=
			    XDP_DROP)
				s->errors++;
			s->last_t0[i] = t0;
			s->last_t1[i] = t1;
			if (!i && prev && t0 - prev > s->max_gap)
				s->max_gap = t0 - prev;
			if (!i)
				prev = t0;
		}
		s->beats++;
		next += STEADY_PERIOD_NS;
	}
	s->stop = vg_mono_ns();
	return NULL;
}

/* The beat whose last_seen_ns an event must carry: the last one sent before
 * the event was detected. */
static bool last_seen_matches(const struct dl_agent *a, const struct vigil_event *e,
			      const struct steady *st)
{
	int j, n = a->nbeats < DL_MAX_BEATS ? a->nbeats : DL_MAX_BEATS;

	if (a->group == G_STEADY) {
		int i = (int)(a - dl) - st->first;

		if (e->kind == VIGIL_EV_UP)
			return true; /* the thread's first beat; not recorded */
		return e->last_seen_ns >= st->last_t0[i] && e->last_seen_ns <= st->last_t1[i];
	}
	for (j = n - 1; j >= 0 && a->beat_t0[j] > e->detected_ns; j--)
		;
	return j >= 0 && e->last_seen_ns >= a->beat_t0[j] && e->last_seen_ns <= a->beat_t1[j];
}

static void dl_on_event(const struct vigil_event *e, __u64 now)
{
	struct dl_agent *a;

	if (e->agent_id < DL_BASE || e->agent_id >= (__u64)DL_BASE + n_dl)
		return;
	a = &dl[e->agent_id - DL_BASE];
	if (a->nev < DL_MAX_EV)
		a->ev[a->nev++] = *e;
	else
		a->extra++;
	/* The reactions that make the second half of each script happen. */
	if (!a->reacted && a->group == G_DEAD && e->kind == VIGIL_EV_DEAD) {
		a->reacted = 1;
		schedule(now, (int)(a - dl), dl_groups[G_DEAD].interval_ms);
	} else if (!a->reacted && a->group == G_SUSPECT && e->kind == VIGIL_EV_SUSPECT) {
		a->reacted = 1;
		schedule(now, (int)(a - dl), dl_groups[G_SUSPECT].interval_ms);
	}
}

static bool seq_is(const struct dl_agent *a, const __u32 *want, int n)
{
	if (a->nev + a->extra != n)
		return false;
	for (int i = 0; i < n; i++)
		if (a->ev[i].kind != want[i])
			return false;
	return true;
}

static void note_seq(const struct dl_agent *a)
{
	char buf[256];
	size_t o = 0;

	for (int i = 0; i < a->nev && o < sizeof(buf); i++)
		o += snprintf(buf + o, sizeof(buf) - o, " %s", kind_name(a->ev[i].kind));
	note("agent %llu (%s): events%s%s", (unsigned long long)a->id, dl_groups[a->group].name,
	     o ? buf : " none", a->extra ? " ..." : "");
}

/* The event script of every agent, group by group. */
static void dl_check_sequences(const struct steady *steady)
{
	int bad, shown;

	for (int g = 0; g < G_N; g++) {
		bad = shown = 0;
		for (int i = 0; i < n_dl; i++) {
			if (dl[i].group != g || seq_is(&dl[i], dl_groups[g].seq, dl_groups[g].nseq))
				continue;
			bad++;
			if (shown++ < 5)
				note_seq(&dl[i]);
		}
		switch (g) {
		case G_DEAD:
			tap_result(!bad, "deadline: one beat then silence gives SUSPECT then DEAD, "
				   "exactly once each; a beat when DEAD gives RECOVERED and the agent "
				   "is watched again through the inbox (SUSPECT, DEAD again) "
				   "[%d agents, %d wrong]", dl_groups[g].n, bad);
			break;
		case G_SUSPECT:
			tap_result(!bad, "deadline: a beat when SUSPECT gives RECOVERED, then "
				   "SUSPECT and DEAD again, exactly once each [%d agents, %d wrong]",
				   dl_groups[g].n, bad);
			break;
		case G_STEADY:
			for (int i = 0; i < steady->n; i++) {
				struct dl_agent *a = &dl[steady->first + i];

				for (int j = 0; j < a->nev; j++)
					if (a->ev[j].kind == VIGIL_EV_SUSPECT &&
					    a->ev[j].detected_ns < steady->stop)
						bad++, note("agent %llu SUSPECT while beating",
							    (unsigned long long)a->id);
			}
			note("steady beater: %d rounds, largest gap between beats %.2f ms",
			     steady->beats, steady->max_gap / 1e6);
			if (bad && steady->max_gap >= DL_MULT * dl_groups[g].interval_ms * MS) {
				/* The beater itself was descheduled past the deadline:
				 * a SUSPECT was then correct, and proves nothing. */
				tap_skip("the beater thread stalled past the deadline",
					 "deadline: agents beating every 10 ms get no SUSPECT");
				break;
			}
			tap_result(!bad && !steady->errors,
				   "deadline: agents beating every 10 ms (interval 20 ms) get no "
				   "SUSPECT for 1 s, and SUSPECT then DEAD once they stop [%d agents]",
				   steady->n);
			break;
		case G_SHORTEN: {
			int wrong_ivl = 0;

			for (int i = 0; i < n_dl; i++)
				if (dl[i].group == g && dl[i].nev > 1 &&
				    dl[i].ev[1].interval_ms != dl_groups[g].interval_ms)
					wrong_ivl++;
			tap_result(!bad && !wrong_ivl,
				   "deadline: an agent that shortens its interval (1000 -> 10 ms, "
				   "the minimum) and stops gets SUSPECT and DEAD from the new, "
				   "shorter deadline [%d agents, %d wrong]", dl_groups[g].n,
				   bad + wrong_ivl);
			break;
		}
		}
	}
}

/* Every SUSPECT and DEAD: never early, never beyond the bound; every record:
 * states chain, last_seen_ns is the beat that set it. */
static void dl_check_records(const struct steady *steady)
{
	int early_late = 0, chain = 0, seen = 0, shortened_late = 0;
	struct late shorten = {};

	for (int i = 0; i < n_dl; i++) {
		struct dl_agent *a = &dl[i];
		__u32 prev = VIGIL_AGENT_NEW;

		for (int j = 0; j < a->nev; j++) {
			const struct vigil_event *e = &a->ev[j];

			if (e->prev_state != prev)
				chain++, note("agent %llu: %s record says %s -> %s, previous "
					      "state was %s", (unsigned long long)a->id,
					      kind_name(e->kind), state_name(e->prev_state),
					      state_name(e->state), state_name(prev));
			prev = e->state;
			if (!last_seen_matches(a, e, steady))
				seen++, note("agent %llu: %s carries last_seen_ns %llu, not the "
					     "time of the beat before it",
					     (unsigned long long)a->id, kind_name(e->kind),
					     (unsigned long long)e->last_seen_ns);
			if (e->kind != VIGIL_EV_SUSPECT && e->kind != VIGIL_EV_DEAD)
				continue;
			if (e->interval_ms != dl_groups[a->group].interval_ms)
				seen++, note("agent %llu: %s carries interval %u ms, want %u",
					     (unsigned long long)a->id, kind_name(e->kind),
					     e->interval_ms, dl_groups[a->group].interval_ms);
			if (check_deadline(e, DL_MULT)) {
				early_late++;
				if (early_late <= 10)
					note("agent %llu: %s %+.3f ms from its due time",
					     (unsigned long long)a->id, kind_name(e->kind),
					     (__s64)(e->detected_ns - due_ns(e, DL_MULT)) / 1e6);
			}
			if (a->group == G_SHORTEN && e->kind == VIGIL_EV_SUSPECT) {
				__s64 l = (__s64)(e->detected_ns - e->last_seen_ns) -
					  (__s64)(DL_MULT * 10 * MS);

				late_add(&shorten, l);
				shortened_late += l < 0 || l > (__s64)LATE_BOUND_NS;
			}
		}
	}
	tap_result(!chain, "deadline: every record's prev_state is the state the one "
		   "before it left");
	tap_result(!seen, "deadline: every record carries the last_seen_ns (and every "
		   "SUSPECT/DEAD the interval) of the beat before it");
	tap_result(!all_suspect.early,
		   "deadline: no SUSPECT before last_seen + 3 x interval (%zu records)",
		   all_suspect.n);
	tap_result(!late_over(&all_suspect, LATE_BOUND_NS),
		   "deadline: every SUSPECT within 2 ticks + 5 ms of its deadline (worst "
		   "%.3f ms)", late_max(&all_suspect) / 1e6);
	tap_result(!all_dead.early, "deadline: no DEAD before deadline + dead_misses x "
		   "interval (%zu records)", all_dead.n);
	tap_result(!late_over(&all_dead, LATE_BOUND_NS),
		   "deadline: every DEAD within 2 ticks + 5 ms of its due time (worst %.3f ms)",
		   late_max(&all_dead) / 1e6);
	tap_result(!shortened_late && shorten.n == (size_t)dl_groups[G_SHORTEN].n,
		   "deadline: horizon rule: after shortening to 10 ms, SUSPECT within bound "
		   "of the 30 ms deadline (worst %.3f ms)", late_max(&shorten) / 1e6);
	late_note("deadline SUSPECT", &all_suspect);
	late_note("deadline DEAD", &all_dead);
	late_note("shortened-interval SUSPECT", &shorten);
	free(shorten.v);
}

static void run_deadline_tests(void)
{
	struct steady steady = {};
	__u64 start, hard_end, quiet_until = 0, now;
	size_t processed;
	__u32 hint = 0;

	/* Register the groups. */
	for (int g = 0; g < G_N; g++) {
		for (int i = 0; i < dl_groups[g].n; i++) {
			struct dl_agent *a = &dl[n_dl];
			int err;

			a->id = DL_BASE + n_dl;
			a->group = g;
			err = add_agent(a->id, dl_groups[g].min_ms, dl_groups[g].max_ms, DL_MULT,
					&hint);
			if (err) {
				tap_result(false, "deadline: registering agent %llu: %s",
					   (unsigned long long)a->id, strerror(-err));
				return;
			}
			if (g == G_STEADY && !steady.n)
				steady.first = n_dl;
			steady.n += g == G_STEADY;
			n_dl++;
		}
	}
	note("deadline: %d agents, tick 1 ms, multiplier %d, dead_misses %u; bound: deadline + "
	     "2 ticks + %.0f ms", n_dl, DL_MULT, dead_misses, SCHED_SLACK_NS / 1e6);

	/* The script: first beats staggered over 20 ms so deadlines fall at
	 * every offset within a tick; the shortening group advertises 1000 ms
	 * first and 10 ms 1..40 ms later. */
	start = vg_mono_ns() + 5 * MS;
	for (int i = 0; i < n_dl; i++) {
		const struct dl_group_def *g = &dl_groups[dl[i].group];
		__u64 at = start + (__u64)(i % 20) * MS + (__u64)(i % 7) * 131000;

		switch (dl[i].group) {
		case G_DEAD:
		case G_SUSPECT:
			schedule(at, i, g->interval_ms);
			break;
		case G_SHORTEN:
			schedule(at, i, g->max_ms);
			schedule(at + MS + (__u64)(i * 7 % 40) * MS + (__u64)(i % 3) * 333000, i,
				 g->interval_ms);
			break;
		}
	}
	steady.start = start;
	if (pthread_create(&steady.thr, NULL, steady_main, &steady)) {
		tap_result(false, "deadline: starting the steady beater thread failed");
		return;
	}

	processed = drain();
	hard_end = start + STEADY_FOR_NS + 3000 * MS;
	for (;;) {
		bool complete = true;

		now = vg_mono_ns();
		for (int i = 0; i < n_actions; i++) {
			if (actions[i].done || actions[i].at > now)
				continue;
			actions[i].done = 1;
			dl_beat(&dl[actions[i].agent], actions[i].interval_ms);
		}
		ring_buffer__poll(rb, 1);
		now = vg_mono_ns();
		for (; processed < ev_n; processed++)
			dl_on_event(&evlog[processed], now);
		for (int i = 0; i < n_dl && complete; i++)
			complete = dl[i].nev + dl[i].extra >= dl_groups[dl[i].group].nseq;
		if (complete && !quiet_until)
			quiet_until = now + 200 * MS; /* long enough for any duplicate */
		if ((quiet_until && now >= quiet_until) || now >= hard_end)
			break;
	}
	pthread_join(steady.thr, NULL);
	drain();
	for (; processed < ev_n; processed++)
		dl_on_event(&evlog[processed], vg_mono_ns());
	note("deadline phase took %.0f ms%s", (vg_mono_ns() - start) / 1e6,
	     now >= hard_end ? " (hit the time limit)" : "");

	/* A scripted beat that was not accepted would void its agent's script. */
	if (beat_errors || steady.errors)
		note("%d scripted beats and %d steady beats did not return XDP_DROP", beat_errors,
		     steady.errors);

	dl_check_sequences(&steady);
	dl_check_records(&steady);
}

/* ------------------------------------------------------- 10,000 agents */

#define BULK_N 10000
#define BULK_BASE 1000000

static int cmp_u64(const void *a, const void *b)
{
	__u64 x = *(const __u64 *)a, y = *(const __u64 *)b;

	return x < y ? -1 : x > y;
}

static void run_bulk_test(void)
{
	struct bulk {
		__u64 t0, t1;
		int up, suspect, dead, other;
		__u64 suspect_ns, dead_ns;
	} *b = calloc(BULK_N, sizeof(*b));
	static int perm[BULK_N];
	struct late sus = {}, dead = {};
	__u64 *seqs = NULL, start, end, now;
	size_t ev0, nseq = 0;
	int err = 0, verdicts = 0, order = 0, miss_seen = 0, wrong_ivl = 0;
	int n_up = 0, n_sus = 0, n_dead = 0, up1 = 0, sus1 = 0, dead1 = 0, other = 0;
	__u32 hint = 0;

	if (!b) {
		tap_result(false, "bulk: out of memory");
		return;
	}
	start = vg_mono_ns();
	for (int i = 0; i < BULK_N && !err; i++)
		err = add_agent(BULK_BASE + i, 5, 1000, DL_MULT, &hint);
	note("bulk: registering %d agents took %.1f ms", BULK_N, (vg_mono_ns() - start) / 1e6);
	if (!tap_result(!err, "bulk: %d agents registered%s%s", BULK_N, err ? ": " : "",
			err ? strerror(-err) : "")) {
		free(b);
		return;
	}

	ev0 = drain();
	start = vg_mono_ns();
	/* In a shuffled order, so that beats fall at every phase of the
	 * sweeper's visits (a slot is looked at every horizon = 15 ms). */
	for (int i = 0; i < BULK_N; i++)
		perm[i] = i;
	srand(4747);
	for (int i = BULK_N - 1; i > 0; i--) {
		int j = rand() % (i + 1), t = perm[i];

		perm[i] = perm[j];
		perm[j] = t;
	}
	for (int k = 0; k < BULK_N; k++) {
		int i = perm[k];

		verdicts += beat_v4(BULK_BASE + i, 1, 20, &b[i].t0, &b[i].t1) == XDP_DROP;
	}
	end = vg_mono_ns();
	note("bulk: %d first beats (interval 20 ms) sent in %.1f ms", BULK_N, (end - start) / 1e6);

	/* Wait for every SUSPECT and DEAD, then a quiet spell for duplicates. */
	for (__u64 quiet = 0;;) {
		ring_buffer__poll(rb, 5);
		now = vg_mono_ns();
		if (!quiet) {
			size_t n = 0;

			for (size_t i = ev0; i < ev_n; i++)
				n += evlog[i].kind == VIGIL_EV_DEAD && evlog[i].agent_id >= BULK_BASE &&
				     evlog[i].agent_id < BULK_BASE + BULK_N;
			if (n >= BULK_N)
				quiet = now + 200 * MS;
		}
		if ((quiet && now >= quiet) || now >= end + 3000 * MS)
			break;
	}
	drain();

	seqs = malloc((ev_n - ev0 + 1) * sizeof(*seqs));
	for (size_t i = ev0; i < ev_n; i++) {
		const struct vigil_event *e = &evlog[i];
		struct bulk *x;

		if (e->agent_id < BULK_BASE || e->agent_id >= BULK_BASE + BULK_N) {
			other++;
			continue;
		}
		if (seqs)
			seqs[nseq++] = e->event_seq;
		x = &b[e->agent_id - BULK_BASE];
		if (e->last_seen_ns < x->t0 || e->last_seen_ns > x->t1)
			miss_seen++;
		switch (e->kind) {
		case VIGIL_EV_UP:
			x->up++;
			n_up++;
			break;
		case VIGIL_EV_SUSPECT:
			x->suspect++;
			n_sus++;
			x->suspect_ns = e->detected_ns;
			late_add(&sus, (__s64)(e->detected_ns - due_ns(e, DL_MULT)));
			wrong_ivl += e->interval_ms != 20;
			break;
		case VIGIL_EV_DEAD:
			x->dead++;
			n_dead++;
			x->dead_ns = e->detected_ns;
			late_add(&dead, (__s64)(e->detected_ns - due_ns(e, DL_MULT)));
			wrong_ivl += e->interval_ms != 20;
			break;
		default:
			x->other++;
		}
	}
	for (int i = 0; i < BULK_N; i++) {
		up1 += b[i].up == 1;
		sus1 += b[i].suspect == 1;
		dead1 += b[i].dead == 1;
		order += b[i].suspect == 1 && b[i].dead == 1 && b[i].dead_ns <= b[i].suspect_ns;
		other += b[i].other;
	}
	if (other)
		note("bulk: %d records of other kinds or agents", other);

	tap_result(verdicts == BULK_N && up1 == BULK_N && n_up == BULK_N,
		   "bulk: %d first beats DROP and give exactly one UP each (%d UP records)", BULK_N,
		   n_up);
	tap_result(sus1 == BULK_N && n_sus == BULK_N,
		   "bulk: exactly %d SUSPECT records, one per agent (got %d)", BULK_N, n_sus);
	tap_result(dead1 == BULK_N && n_dead == BULK_N && !order,
		   "bulk: exactly %d DEAD records, one per agent, each after its SUSPECT (got %d)",
		   BULK_N, n_dead);
	tap_result(!sus.early && !dead.early,
		   "bulk: no SUSPECT before last_seen + 3 x 20 ms, no DEAD before + 2 x 20 ms more");
	tap_result(!late_over(&sus, LATE_BOUND_NS) && !late_over(&dead, LATE_BOUND_NS),
		   "bulk: every SUSPECT and DEAD within 2 ticks + 5 ms (worst %.3f ms / %.3f ms, "
		   "%zu beyond)", late_max(&sus) / 1e6, late_max(&dead) / 1e6,
		   late_over(&sus, LATE_BOUND_NS) + late_over(&dead, LATE_BOUND_NS));
	tap_result(!miss_seen && !wrong_ivl, "bulk: every record carries the last_seen_ns "
		   "(and SUSPECT/DEAD the 20 ms interval) of the agent's beat");
	{
		int dup = 0;

		if (seqs) {
			qsort(seqs, nseq, sizeof(*seqs), cmp_u64);
			for (size_t i = 1; i < nseq; i++)
				dup += seqs[i] == seqs[i - 1];
		}
		tap_result(seqs && !dup, "bulk: all %zu event_seq values distinct", nseq);
	}
	late_note("bulk SUSPECT", &sus);
	late_note("bulk DEAD", &dead);
	free(seqs);
	free(sus.v);
	free(dead.v);
	free(b);
}

/* ------------------------------------------------------ whole-run checks */

static void run_log_checks(void)
{
	struct vigil_stats st;
	struct vigil_globals g;
	struct wheel_state ws;
	__u64 *seqs;
	size_t gaps = 0, dups = 0;

	drain();
	seqs = malloc((ev_n + 1) * sizeof(*seqs));
	if (!seqs) {
		tap_result(false, "event log: out of memory");
		return;
	}
	for (size_t i = 0; i < ev_n; i++)
		seqs[i] = evlog[i].event_seq;
	qsort(seqs, ev_n, sizeof(*seqs), cmp_u64);
	for (size_t i = 0; i < ev_n; i++) {
		if (i && seqs[i] == seqs[i - 1])
			dups++;
		else if (seqs[i] != (i ? seqs[i - 1] : 0) + 1)
			gaps++;
	}
	vg_stats_read(&maps, &st);
	read_globals(&g);
	tap_result(!dups && !gaps && !ev_bad_size && ev_n && seqs[ev_n - 1] == g.event_seq,
		   "event log: %zu records, event_seq distinct and gapless from 1 to %llu "
		   "(= vigil_globals.event_seq), all 64 bytes", ev_n,
		   (unsigned long long)g.event_seq);
	tap_result(!st.ringbuf_full && !st.queue_full && !st.stale_slot && st.events == ev_n,
		   "counters: ringbuf_full %llu, queue_full %llu, stale_slot %llu all 0; events "
		   "%llu = records read", (unsigned long long)st.ringbuf_full,
		   (unsigned long long)st.queue_full, (unsigned long long)st.stale_slot,
		   (unsigned long long)st.events);
	if (!bpf_map_lookup_elem(maps.wheel, &zero, &ws))
		note("sweeper: %llu runs, %llu visits, %llu re-filed, %llu slots filed, max lag "
		     "%llu ticks, %llu budget-exhausted runs, %.1f us busy per run",
		     (unsigned long long)ws.runs, (unsigned long long)ws.visits,
		     (unsigned long long)ws.refiled, (unsigned long long)ws.filed,
		     (unsigned long long)ws.max_lag_ticks, (unsigned long long)ws.budget_exhausted,
		     ws.runs ? ws.busy_ns / 1e3 / ws.runs : 0.0);
	free(seqs);
}

int main(void)
{
	struct vg_load_opts o;
	__u64 t0;
	int err;

	setvbuf(stdout, NULL, _IOLBF, 0);
	vg_log_set_level(getenv("VIGIL_TEST_VERBOSE") ? VG_LOG_DEBUG : VG_LOG_WARN);
	vg_log_hook_libbpf();

	vg_load_opts_default(&o);
	o.pin_root = NULL;
	o.iface = NULL;
	o.tick_ns = TICK_NS;
	o.port = VIGIL_DEFAULT_PORT;
	loaded_cfg = o.cfg;
	dead_misses = o.cfg.dead_misses;

	t0 = vg_mono_ns();
	err = vg_instance_load(&o, &maps, &skel);
	if (!tap_result(!err, "verifier accepts the programs built by the pinned clang")) {
		note("re-run with VIGIL_TEST_VERBOSE=1 for libbpf's log");
		return tap_finish();
	}
	note("loaded in %.1f ms; max_agents %u, %d possible CPUs, config: dead_misses %u, "
	     "unknown_events_per_sec %u, sweep_budget %u", (vg_mono_ns() - t0) / 1e6,
	     maps.max_agents, maps.ncpus, o.cfg.dead_misses, o.cfg.unknown_events_per_sec,
	     o.cfg.sweep_budget);
	xdp_fd = bpf_program__fd(skel->progs.vigil_xdp);
	rb = ring_buffer__new(maps.events, on_event, NULL, NULL);
	if (!tap_result(rb != NULL, "ring buffer opened")) {
		vigil_bpf__destroy(skel);
		return tap_finish();
	}

	run_packet_tests();
	run_deadline_tests();
	run_bulk_test();
	run_log_checks();

	ring_buffer__free(rb);
	vigil_bpf__destroy(skel);
	free(evlog);
	return tap_finish();
}

// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/*
 * test_prog: vigil's BPF programs driven through BPF_PROG_TEST_RUN.
 *
 * The object is loaded exactly as the daemon loads it (skeleton, rodata,
 * sweeper timer started) but neither attached nor pinned. Crafted frames go
 * through vigil_xdp; each case states the verdict it expects and the exact
 * change to the agent slots, the per-CPU counters and the ring buffer, and
 * everything else must stay as it was. Beats are signed with the agent's key
 * unless a case says otherwise, so the tables run the authenticated path.
 * Then: authentication, anti-replay and rate-limit tables, SipHash-2-4
 * reference vectors run inside the kernel, the key file parser, and the
 * deadline cases, which let the real sweeper (1 ms tick) run against the
 * clock.
 *
 * Output is TAP: "ok N - what" per case, "# " lines for context. Needs root.
 * VIGIL_TEST_VERBOSE=1 prints libbpf's messages (and the verifier log on a
 * failed load).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "vigil.skel.h"
#include "siphash.test.skel.h"
#include "common/instance.h"
#include "common/keys.h"
#include "common/log.h"
#include "common/registry.h"
#include "common/event.h"
#include "common/util.h"
#include "vigil/auth.h"
#include "vigil/logic.h"
#include "vigil/maps.h"
#include "vigil/wire.h"
#include "auth_vectors.h"
#include "pkt.h"
#include "tap.h"

/* Table entries start from a macro (ACCEPT, REFUSE, LATE) and override what
 * differs; a later designator overriding an earlier one is well defined. */
#pragma GCC diagnostic ignored "-Woverride-init"

#define TICK_NS VIGIL_NSEC_PER_MSEC
#define MS VIGIL_NSEC_PER_MSEC
/* A transition may be reported up to two ticks after its deadline (one for
 * rounding the deadline up to a tick, one for the timer period) plus what the
 * machine adds: on a virtual machine an idle vCPU's timer interrupt can come
 * 10+ ms late (docs/design.md). The bound is generous; the figures are
 * measured by `make bench` (scale, mass failure), and printed here. */
#define SCHED_SLACK_NS (25 * MS)
#define LATE_BOUND_NS (2 * TICK_NS + SCHED_SLACK_NS)
#define NO_SLOT 0xffffffffu

static struct vg_maps maps;
static struct vigil_bpf *skel;
static struct ring_buffer *rb;
static int xdp_fd;
static const __u32 zero;

/* The daemon's defaults, as loaded; the deadline and bulk phases run with them. */
static struct vigil_config base_cfg;
/* The packet tables: the defaults, except that every refusal is reported
 * (so each case expects exactly its REJECTED record) and the per-agent rate
 * allows far more than a table sends (the rate cases set their own). */
static struct vigil_config table_cfg;

/* ------------------------------------------------------------ event log */

/* Every record the ring buffer delivered, in the order it delivered them. */
static struct vigil_event *evlog;
static size_t ev_n, ev_cap, ev_bad_size;
/* The monitor's own health records (MONITOR_BEHIND/CAUGHT_UP) come from the
 * sweeper whenever this machine holds it up; they are kept apart so that a
 * case's records are exactly its own, and their sequences are known. */
static struct vigil_event hlog[4096];
static size_t h_n;

/* Health records with event_seq in (lo, hi]. */
static __u64 health_between(__u64 lo, __u64 hi)
{
	__u64 n = 0;

	for (size_t i = 0; i < h_n; i++)
		n += hlog[i].event_seq > lo && hlog[i].event_seq <= hi;
	return n;
}

/* Wait (briefly) until every record numbered (lo, hi] has been read: a
 * health record's sequence is taken before the sweeper submits it. */
static void settle(__u64 lo, __u64 hi, size_t ev0);

static int on_event(void *ctx, void *data, size_t len)
{
	(void)ctx;
	if (len != sizeof(struct vigil_event)) {
		ev_bad_size++;
		return 0;
	}
	if (vg_kind_is_monitor(((struct vigil_event *)data)->kind)) {
		if (h_n < sizeof(hlog) / sizeof(hlog[0]))
			memcpy(&hlog[h_n++], data, sizeof(hlog[0]));
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

static void settle(__u64 lo, __u64 hi, size_t ev0)
{
	/* Up to 1 s: a vCPU descheduled by the hypervisor mid-callback. */
	for (int i = 0; i < 10000; i++) {
		__u64 n = health_between(lo, hi);

		for (size_t j = ev0; j < ev_n; j++)
			n += evlog[j].event_seq > lo && evlog[j].event_seq <= hi;
		if (n >= hi - lo)
			return;
		usleep(100);
		ring_buffer__consume(rb);
	}
}

static const char *kind_name(__u32 k)
{
	return vg_kind_name(k);
}

static const char *state_name(__u32 s)
{
	return vg_state_name(s);
}

static const char *reason_name(__u32 r)
{
	return r ? vg_reason_name(r) : "none";
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

static void sleep_until(__u64 mono_ns)
{
	struct timespec ts = { .tv_sec = mono_ns / VIGIL_NSEC_PER_SEC,
			       .tv_nsec = mono_ns % VIGIL_NSEC_PER_SEC };

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

/* ----------------------------------------------------------------- keys */

static __u64 splitmix(__u64 x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

/* Key `which` (0 or 1) of an agent: fixed per id, different for every id. */
static struct vigil_key agent_key(__u64 id, int which)
{
	__u64 x = splitmix(id * 2 + (__u64)which);

	return (struct vigil_key){ .k0 = x, .k1 = splitmix(x) };
}

/* A key no agent holds. */
static const struct vigil_key wrong_key = { 0x0123456789abcdefULL, 0xfedcba9876543210ULL };

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

/* A plain IPv4 beat signed with the agent's key 0, as the deadline cases
 * send them. */
static int beat_v4(__u64 id, __u64 seq, __u32 interval_ms, __u64 *t0, __u64 *t1)
{
	struct vigil_key k = agent_key(id, 0);
	struct frame_spec f = { .key = &k };
	struct vigil_beat_info b = {
		.agent_id = id, .seq = seq, .incarnation = 1, .interval_ms = interval_ms,
	};
	__u8 frame[PKT_MAX];
	size_t len = build_frame(frame, &f, &b, NULL);

	return xdp_run(frame, len, t0, t1);
}

/* Register an agent holding the keys in `valid` (bit i: key i), in `group`. */
static int add_agent_keys(__u64 id, __u32 min_ms, __u32 max_ms, __u32 mult, __u32 *hint,
			  __u32 valid, const char *group)
{
	struct vg_agent_def d;

	vg_agent_def_default(&d, id);
	d.interval_min_ms = min_ms;
	d.interval_max_ms = max_ms;
	d.multiplier = mult;
	d.auth.key[0] = agent_key(id, 0);
	d.auth.key[1] = agent_key(id, 1);
	d.auth.valid = valid;
	if (group) {
		vg_strlcpy(d.group, group, sizeof(d.group));
		/* As the daemon does: the group's policy comes from vigil_groups. */
		d.auth.flags = vg_group_flags(&maps, group);
	}
	return vg_agent_add(&maps, &d, hint);
}

static int add_agent(__u64 id, __u32 min_ms, __u32 max_ms, __u32 mult, __u32 *hint)
{
	return add_agent_keys(id, min_ms, max_ms, mult, hint, 1, NULL);
}

/* Change which of an agent's keys are valid, as a key reload does. */
static int set_valid_keys(__u64 id, __u32 valid)
{
	struct agent_auth a;
	struct vg_agent s;
	__u32 slot;

	if (vg_agent_get(&maps, id, &slot, &s) || vg_agent_get_auth(&maps, slot, &a))
		return -1;
	a.valid = valid;
	return vg_agent_set_auth(&maps, slot, &a);
}

static int cfg_write(const struct vigil_config *c)
{
	return bpf_map_update_elem(maps.config, &zero, c, BPF_ANY);
}

static int read_globals(struct vigil_globals *g)
{
	return bpf_map_lookup_elem(maps.globals, &zero, g);
}

/* ------------------------------------------------ slot and counter diffs */

#define SF(f) { #f, offsetof(struct vg_agent, f), sizeof(((struct vg_agent *)0)->f), 0 }
/* A field compared element by element (an array of elem-byte counters). */
#define SFA(f) { #f, offsetof(struct vg_agent, f), sizeof(((struct vg_agent *)0)->f), \
		 sizeof(((struct vg_agent *)0)->f[0]) }
static const struct slot_field {
	const char *name;
	size_t off, size, elem;
} slot_fields[] = {
	SF(s.agent_id), SF(s.last_seen_ns), SF(s.replay.top), SF(s.replay.seen),
	SF(s.replay.incarnation), SF(s.replay.started), SF(s.rate_tat), SF(s.send_ts_ns),
	SF(s.clock_off_ns), SF(s.clock_at_ns), SF(s.hold_since_ns), SF(s.beats), SF(s.state),
	SF(s.lock), SF(s.interval_ms), SF(s.interval_min_ms), SF(s.interval_max_ms),
	SF(s.rate_interval_ms), SF(s.lease_id), SF(s.gap_run), SF(s.multiplier),
	SF(s.queue_depth), SF(s.rxq), SF(s.status), SF(s.gap_bucket),
	SF(i.state_since_ns), SF(i.last_event_seq), SF(i.duplicates), SF(i.reordered),
	SF(i.malformed), SF(i.bad_version), SF(i.restarts), SF(i.bad_tag), SF(i.replayed),
	SF(i.over_rate), SFA(i.gap_hist), SF(i.name), SF(i.group),
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
static int slot_diff(__u64 id, const struct vg_agent *want, const struct vg_agent *got)
{
	size_t covered = 0;
	int n = 0;

	for (size_t i = 0; i < N_SLOT_FIELDS; i++) {
		const struct slot_field *f = &slot_fields[i];

		covered += f->size;
		if (!memcmp((const char *)want + f->off, (const char *)got + f->off, f->size))
			continue;
		if (f->elem) {
			for (size_t e = 0; e < f->size / f->elem; e++) {
				size_t off = f->off + e * f->elem;

				if (field_val(want, off, f->elem) == field_val(got, off, f->elem))
					continue;
				n++;
				note("agent %llu: %s[%zu] is %llu, want %llu", (unsigned long long)id,
				     f->name, e, (unsigned long long)field_val(got, off, f->elem),
				     (unsigned long long)field_val(want, off, f->elem));
			}
			continue;
		}
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
	if (covered != sizeof(struct vg_agent)) {
		note("slot_fields covers %zu of %zu bytes of struct vg_agent: update the test",
		     covered, sizeof(struct vg_agent));
		n++;
	}
	return n;
}

static const char *const stat_names[] = {
	"packets", "beats", "passed", "malformed", "bad_version", "unknown_agent", "duplicates",
	"reordered", "restarts", "events", "ringbuf_full", "queue_full", "stale_slot",
	"not_allowed", "unauthenticated", "bad_tag", "replayed", "over_rate_agent",
	"over_rate_source", "verdicts_held", "held_decided", "held_unverified", "held_cancelled",
	"held_by_beat", "held_ns", "held_max_ns", "corrected", "lost_beats", "mapped_source",
};
_Static_assert(sizeof(stat_names) / sizeof(stat_names[0]) == sizeof(struct vigil_stats) / 8,
	       "stat_names must name every counter of struct vigil_stats");
#define N_STATS (sizeof(stat_names) / sizeof(stat_names[0]))

static __u64 stat_at(const struct vigil_stats *s, size_t i)
{
	return ((const __u64 *)s)[i];
}

/* Health records the sweeper may have counted in `events` meanwhile. */
static __u64 events_slack;

/* Check that every counter moved by exactly `want` between a and b (the
 * `events` counter by up to events_slack more). */
static int stats_diff(const struct vigil_stats *a, const struct vigil_stats *b,
		      const struct vigil_stats *want)
{
	size_t ev_i = offsetof(struct vigil_stats, events) / 8;
	int n = 0;

	for (size_t i = 0; i < N_STATS; i++) {
		__u64 d = stat_at(b, i) - stat_at(a, i);

		if (d == stat_at(want, i) ||
		    (i == ev_i && d >= stat_at(want, i) && d <= stat_at(want, i) + events_slack))
			continue;
		n++;
		note("counter %s moved by %lld, want %llu", stat_names[i], (long long)d,
		     (unsigned long long)stat_at(want, i));
	}
	return n;
}

/* ------------------------------------------------------- watched agents */

/* Every agent the packet cases talk to; all are compared after every case,
 * so a case that changes an agent it should not is caught. */
#define MAX_WATCH 32
static __u64 watch[MAX_WATCH];
static size_t n_watch;

static void watch_add(__u64 id)
{
	if (n_watch < MAX_WATCH)
		watch[n_watch++] = id;
}

static int watch_idx(__u64 id)
{
	for (size_t i = 0; i < n_watch; i++)
		if (watch[i] == id)
			return (int)i;
	return -1;
}

static void unwatch_all(void)
{
	for (size_t i = 0; i < n_watch; i++)
		vg_agent_remove(&maps, watch[i]);
	n_watch = 0;
}

/* Each watched agent's records and slot number. */
static int snapshot(struct vg_agent *out, __u32 *slots)
{
	for (size_t i = 0; i < n_watch; i++)
		if (vg_agent_get(&maps, watch[i], &slots[i], &out[i]))
			return -1;
	return 0;
}

/* Did an agent's replay window or rate state change? (The lock word is not
 * compared: lookups return it zeroed.) */
static bool guard_changed(const struct agent_slot *a, const struct agent_slot *b)
{
	return memcmp(&a->replay, &b->replay, sizeof(a->replay)) || a->rate_tat != b->rate_tat ||
	       a->rate_interval_ms != b->rate_interval_ms;
}

/* --------------------------------------------------------- packet cases */

/* The agents of the main table. */
#define AG_A 1001 /* IPv4, and the one most cases are about */
#define AG_B 1002 /* IPv6 */
#define AG_C 1003 /* IPv4 behind one 802.1Q tag */
#define AG_D 1004 /* IPv6 behind one 802.1Q tag */
#define AG_UNKNOWN 999999
/* Agents of the authentication cases: far from AG_A in every bit, so no
 * single-bit flip of AG_A's id names one of them. */
#define AG_ALLOW 0x5a0001ULL
#define AG_RATE 0x5a0002ULL
#define AG_RATE2 0x5a0003ULL
#define AG_ALLOW_V6 0x5a0004ULL
#define AG_FLOOR 0x5a0005ULL
#define AG_SPARSE 0x5a0006ULL /* outside id_base's range: found through the index */
#define AG_REPLAY 0x5b0000ULL /* + block number */
static const __u64 pkt_agents[] = { AG_A, AG_B, AG_C, AG_D };
#define N_PKT_AGENTS (sizeof(pkt_agents) / sizeof(pkt_agents[0]))
/* Long intervals and a large multiplier: the sweeper must have no reason to
 * touch these slots while the tables run (deadline >= 60 s after a beat). */
#define PKT_MIN_MS 1000
#define PKT_MAX_MS 10000
#define PKT_MULT 30

enum slot_change {
	SC_NONE,    /* no agent slot changes at all */
	SC_COUNTER, /* only the counter at .counter of .agent rises by one */
	SC_ACCEPT,  /* .agent accepts the beat */
	SC_LATE,    /* .agent accepts the beat as late: liveness only */
};

/* How the case's beat is signed. */
enum sign_mode {
	SIGN_K0 = 0,   /* key 0 of the agent the beat names, key_id 0 */
	SIGN_NONE,     /* unsigned (flags as in .b) */
	SIGN_K1,       /* key 1, key_id 1 */
	SIGN_K1_AS_0,  /* key 1's tag, but key_id 0 */
	SIGN_WRONG,    /* a key nobody holds, key_id 0 */
	SIGN_WRONG_1,  /* a key nobody holds, key_id 1 */
};

#define KEYS(mask) (0x100 | (mask))

#define CNT(f) offsetof(struct vg_agent, i.f)

struct pkt_case {
	const char *desc;
	struct frame_spec f;
	struct vigil_beat_info b;
	struct beat_patch patch;
	int verdict;
	__u64 agent;         /* the agent whose slot changes */
	enum slot_change sc;
	size_t counter;      /* SC_COUNTER: CNT(field) */
	__u32 state;         /* SC_ACCEPT: state afterwards (SC_LATE: 0 = unchanged) */
	__u32 interval;      /* SC_ACCEPT: stored interval, after clamping */
	int restart;         /* SC_ACCEPT: incarnation rose */
	__u32 ev[2];         /* expected transition records, in order */
	__u32 reason;        /* non-zero: then one REJECTED record with this reason */
	struct vigil_stats st; /* expected counter deltas; packets and events implied */
	enum sign_mode sign;
	int keys;            /* KEYS(mask): set .agent's valid keys first (it stays so) */
	int pass_beats;      /* run with vigil_config.pass_beats = 1 */
	int no_auth;         /* run with vigil_config.auth_required = 0 */
	const struct vigil_config *cfg; /* run with this config instead of table_cfg */
};

#define BEAT(id, s, inc, ivl) { .agent_id = (id), .seq = (s), .incarnation = (inc), \
			       .interval_ms = (ivl), .send_ts_ns = 1000 + (s), .queue_depth = 3 }
#define ACCEPT(ag, st_) .verdict = XDP_DROP, .agent = (ag), .sc = SC_ACCEPT, .state = (st_), \
			.interval = 2000, .st = { .beats = 1 }
#define REFUSE(ag, cnt, rsn) .verdict = XDP_DROP, .agent = (ag), .sc = SC_COUNTER, \
			     .counter = CNT(cnt), .reason = (rsn)
#define LATE(ag) .verdict = XDP_DROP, .agent = (ag), .sc = SC_LATE, \
		 .st = { .beats = 1, .reordered = 1 }

static const struct pkt_case pkt_cases[] = {
	{ "IPv4 beat from a NEW agent: DROP, slot updated, ALIVE, one UP event",
	  .b = BEAT(AG_A, 1, 1, 2000), ACCEPT(AG_A, VIGIL_AGENT_ALIVE), .ev = { VIGIL_EV_UP } },
	{ "IPv6 beat from a NEW agent: DROP, slot updated, ALIVE, one UP event",
	  .f = { .l3 = L3_IPV6 }, .b = BEAT(AG_B, 1, 1, 2000), ACCEPT(AG_B, VIGIL_AGENT_ALIVE),
	  .ev = { VIGIL_EV_UP } },
	{ "IPv4 beat behind one 802.1Q tag from a NEW agent: accepted, one UP event",
	  .f = { .vlans = 1 }, .b = BEAT(AG_C, 1, 1, 2000), ACCEPT(AG_C, VIGIL_AGENT_ALIVE),
	  .ev = { VIGIL_EV_UP } },
	{ "IPv6 beat behind one 802.1Q tag from a NEW agent: accepted, one UP event",
	  .f = { .l3 = L3_IPV6, .vlans = 1 }, .b = BEAT(AG_D, 1, 1, 2000),
	  ACCEPT(AG_D, VIGIL_AGENT_ALIVE), .ev = { VIGIL_EV_UP } },
	{ "next sequence, same incarnation: accepted, no event",
	  .b = BEAT(AG_A, 2, 1, 2000), ACCEPT(AG_A, VIGIL_AGENT_ALIVE) },
	{ "sequence gap (2 -> 5): accepted, no event",
	  .b = BEAT(AG_A, 5, 1, 2000), ACCEPT(AG_A, VIGIL_AGENT_ALIVE) },
	{ "beat with Ethernet padding after the IP packet: accepted",
	  .f = { .trailer = 6 }, .b = BEAT(AG_A, 6, 1, 2000), ACCEPT(AG_A, VIGIL_AGENT_ALIVE) },
	{ "IPv4 header with 8 bytes of options: accepted",
	  .f = { .ip_opt_words = 2 }, .b = BEAT(AG_A, 7, 1, 2000),
	  ACCEPT(AG_A, VIGIL_AGENT_ALIVE) },
	{ "status DEGRADED, queue depth 65535, lease 7: stored",
	  .b = { .agent_id = AG_A, .seq = 8, .incarnation = 1, .interval_ms = 2000,
		 .status = VIGIL_STATUS_DEGRADED, .queue_depth = 65535, .lease_id = 7,
		 .send_ts_ns = 0xfedcba9876543210ULL },
	  ACCEPT(AG_A, VIGIL_AGENT_ALIVE) },
	{ "replay of the last accepted beat: DROP, duplicates +1, REJECTED replay, nothing else "
	  "(last_seen_ns kept)",
	  .b = { .agent_id = AG_A, .seq = 8, .incarnation = 1, .interval_ms = 2000,
		 .status = VIGIL_STATUS_DEGRADED, .queue_depth = 65535, .lease_id = 7,
		 .send_ts_ns = 0xfedcba9876543210ULL },
	  REFUSE(AG_A, duplicates, VIGIL_REJECT_REPLAY), .st = { .duplicates = 1 } },
	{ "same sequence, different content (a tag over other bytes): still a duplicate",
	  .b = BEAT(AG_A, 8, 1, 2000), REFUSE(AG_A, duplicates, VIGIL_REJECT_REPLAY),
	  .st = { .duplicates = 1 } },
	{ "older sequence inside the window (8 -> 4): accepted late, reordered +1, last_seen "
	  "refreshed; seq, status, interval, lease and send_ts stay those of the newest beat",
	  .b = { .agent_id = AG_A, .seq = 4, .incarnation = 1, .interval_ms = 5000,
		 .status = VIGIL_STATUS_DRAINING, .queue_depth = 9, .lease_id = 3,
		 .send_ts_ns = 4 },
	  LATE(AG_A) },
	{ "the same late sequence again: duplicate",
	  .b = BEAT(AG_A, 4, 1, 2000), REFUSE(AG_A, duplicates, VIGIL_REJECT_REPLAY),
	  .st = { .duplicates = 1 } },
	{ "incarnation rise with sequence reset: accepted, restarts +1, one RESTART event",
	  .b = BEAT(AG_A, 1, 2, 2000), ACCEPT(AG_A, VIGIL_AGENT_ALIVE), .restart = 1,
	  .ev = { VIGIL_EV_RESTART }, .st = { .beats = 1, .restarts = 1 } },
	{ "lower incarnation, higher sequence: DROP, replayed +1, REJECTED replay, nothing else",
	  .b = BEAT(AG_A, 100, 1, 2000), REFUSE(AG_A, replayed, VIGIL_REJECT_REPLAY),
	  .st = { .replayed = 1 } },
	{ "interval below the agent's minimum: clamped to the minimum",
	  .b = BEAT(AG_A, 2, 2, 1), ACCEPT(AG_A, VIGIL_AGENT_ALIVE), .interval = PKT_MIN_MS },
	{ "interval above the agent's maximum: clamped to the maximum",
	  .b = BEAT(AG_A, 3, 2, 4000000000u), ACCEPT(AG_A, VIGIL_AGENT_ALIVE),
	  .interval = PKT_MAX_MS },
	{ "interval exactly the minimum: kept",
	  .b = BEAT(AG_A, 4, 2, PKT_MIN_MS), ACCEPT(AG_A, VIGIL_AGENT_ALIVE),
	  .interval = PKT_MIN_MS },
	{ "status LEAVING (sequence 6): state LEFT, one LEFT event",
	  .b = { .agent_id = AG_A, .seq = 6, .incarnation = 2, .interval_ms = 2000,
		 .status = VIGIL_STATUS_LEAVING },
	  ACCEPT(AG_A, VIGIL_AGENT_LEFT), .ev = { VIGIL_EV_LEFT } },
	{ "an OK beat sent before the LEAVING one (sequence 5) arrives late: accepted late, "
	  "stays LEFT, no UP event",
	  .b = BEAT(AG_A, 5, 2, 2000), LATE(AG_A) },
	{ "LEAVING again while LEFT: accepted, stays LEFT, no event",
	  .b = { .agent_id = AG_A, .seq = 7, .incarnation = 2, .interval_ms = 2000,
		 .status = VIGIL_STATUS_LEAVING },
	  ACCEPT(AG_A, VIGIL_AGENT_LEFT) },
	{ "OK beat after LEFT: ALIVE again, one UP event",
	  .b = BEAT(AG_A, 8, 2, 2000), ACCEPT(AG_A, VIGIL_AGENT_ALIVE), .ev = { VIGIL_EV_UP } },
	{ "pass_beats=1: a valid beat is XDP_PASS and still counted",
	  .b = BEAT(AG_A, 9, 2, 2000), ACCEPT(AG_A, VIGIL_AGENT_ALIVE), .verdict = XDP_PASS,
	  .pass_beats = 1 },
	{ "pass_beats=1: a malformed beat is XDP_PASS too, and counted",
	  .b = BEAT(AG_A, 10, 2, 0), REFUSE(AG_A, malformed, VIGIL_REJECT_MALFORMED),
	  .verdict = XDP_PASS, .st = { .malformed = 1 }, .pass_beats = 1 },
	{ "pass_beats=1: a replayed beat is XDP_PASS, and counted",
	  .b = BEAT(AG_A, 9, 2, 2000), REFUSE(AG_A, duplicates, VIGIL_REJECT_REPLAY),
	  .verdict = XDP_PASS, .st = { .duplicates = 1 }, .pass_beats = 1 },
	{ "unknown agent id: DROP, unknown_agent +1, one REJECTED unknown_agent event",
	  .b = BEAT(AG_UNKNOWN, 1, 1, 2000), .verdict = XDP_DROP, .sc = SC_NONE,
	  .reason = VIGIL_REJECT_UNKNOWN_AGENT, .st = { .unknown_agent = 1 } },
	{ "unknown agent id over IPv6: REJECTED carries the IPv6 source",
	  .f = { .l3 = L3_IPV6 }, .b = BEAT(AG_UNKNOWN, 2, 1, 2000), .verdict = XDP_DROP,
	  .sc = SC_NONE, .reason = VIGIL_REJECT_UNKNOWN_AGENT, .st = { .unknown_agent = 1 } },
	{ "unknown version: DROP, bad_version +1 globally and for the agent, nothing else",
	  .b = BEAT(AG_A, 10, 2, 2000), .patch = { 2, 1, 2 },
	  REFUSE(AG_A, bad_version, VIGIL_REJECT_BAD_VERSION), .st = { .bad_version = 1 } },
	{ "unknown version in a 20-byte payload: still bad_version for the agent",
	  .f = { .short_payload = 1, .payload_len = 20 }, .b = BEAT(AG_A, 10, 2, 2000),
	  .patch = { 2, 1, 7 }, REFUSE(AG_A, bad_version, VIGIL_REJECT_BAD_VERSION),
	  .st = { .bad_version = 1 } },
	{ "unknown version from an unknown agent: bad_version +1, REJECTED without a slot",
	  .b = BEAT(AG_UNKNOWN, 9, 1, 2000), .patch = { 2, 1, 2 }, .verdict = XDP_DROP,
	  .sc = SC_NONE, .reason = VIGIL_REJECT_BAD_VERSION, .st = { .bad_version = 1 } },
	{ "bad magic: DROP, malformed +1, no agent named",
	  .b = BEAT(AG_A, 10, 2, 2000), .patch = { 0, 2, 0x4756 }, .verdict = XDP_DROP,
	  .sc = SC_NONE, .reason = VIGIL_REJECT_MALFORMED, .st = { .malformed = 1 } },
	{ "unknown flag bit: DROP, malformed +1 globally and for the agent",
	  .b = BEAT(AG_A, 10, 2, 2000), .patch = { 3, 1, 0x81 },
	  REFUSE(AG_A, malformed, VIGIL_REJECT_MALFORMED), .st = { .malformed = 1 } },
	{ "status beyond LEAVING: malformed",
	  .b = BEAT(AG_A, 10, 2, 2000), .patch = { 4, 1, VIGIL_STATUS_MAX + 1 },
	  REFUSE(AG_A, malformed, VIGIL_REJECT_MALFORMED), .st = { .malformed = 1 } },
	{ "key_id 2: malformed",
	  .b = BEAT(AG_A, 10, 2, 2000), .patch = { 5, 1, 2 },
	  REFUSE(AG_A, malformed, VIGIL_REJECT_MALFORMED), .st = { .malformed = 1 } },
	{ "reserved field non-zero: malformed",
	  .b = BEAT(AG_A, 10, 2, 2000), .patch = { 44, 4, 1 },
	  REFUSE(AG_A, malformed, VIGIL_REJECT_MALFORMED), .st = { .malformed = 1 } },
	{ "interval 0: malformed",
	  .b = BEAT(AG_A, 10, 2, 0), REFUSE(AG_A, malformed, VIGIL_REJECT_MALFORMED),
	  .st = { .malformed = 1 } },
	{ "UDP length field below 8: DROP, malformed +1 globally only, REJECTED without agent",
	  .f = { .udp_len = 4 }, .b = BEAT(AG_A, 10, 2, 2000), .verdict = XDP_DROP, .sc = SC_NONE,
	  .reason = VIGIL_REJECT_MALFORMED, .st = { .malformed = 1 } },
	{ "UDP length field claims 100 payload bytes, frame holds 64: malformed",
	  .f = { .udp_len = 108 }, .b = BEAT(AG_A, 10, 2, 2000),
	  REFUSE(AG_A, malformed, VIGIL_REJECT_MALFORMED), .st = { .malformed = 1 } },
	{ "UDP length field claims 65 payload bytes (one padding byte follows): malformed",
	  .f = { .udp_len = 73, .trailer = 1 }, .b = BEAT(AG_A, 10, 2, 2000),
	  REFUSE(AG_A, malformed, VIGIL_REJECT_MALFORMED), .st = { .malformed = 1 } },
	{ "beat to UDP port 4748: PASS, nothing changes",
	  .f = { .dport = 4748 }, .b = BEAT(AG_A, 10, 2, 2000), .verdict = XDP_PASS, .sc = SC_NONE,
	  .st = { .passed = 1 } },
	{ "IPv6 beat to UDP port 4748: PASS, nothing changes",
	  .f = { .l3 = L3_IPV6, .dport = 4748 }, .b = BEAT(AG_B, 2, 1, 2000), .verdict = XDP_PASS,
	  .sc = SC_NONE, .st = { .passed = 1 } },
	{ "TCP segment to port 4747 carrying a beat: PASS, nothing changes",
	  .f = { .l4 = L4_TCP }, .b = BEAT(AG_A, 10, 2, 2000), .verdict = XDP_PASS, .sc = SC_NONE,
	  .st = { .passed = 1 } },
	{ "ARP request: PASS, nothing changes",
	  .f = { .l3 = L3_ARP }, .verdict = XDP_PASS, .sc = SC_NONE, .st = { .passed = 1 } },
	{ "IPv4 first fragment (MF) to port 4747: PASS, nothing changes",
	  .f = { .frag_off = 0x2000 }, .b = BEAT(AG_A, 10, 2, 2000), .verdict = XDP_PASS,
	  .sc = SC_NONE, .st = { .passed = 1 } },
	{ "IPv4 later fragment (offset 8 bytes): PASS, nothing changes",
	  .f = { .frag_off = 0x0001 }, .b = BEAT(AG_A, 10, 2, 2000), .verdict = XDP_PASS,
	  .sc = SC_NONE, .st = { .passed = 1 } },
	{ "two 802.1Q tags (only one is parsed): PASS, nothing changes",
	  .f = { .vlans = 2 }, .b = BEAT(AG_A, 10, 2, 2000), .verdict = XDP_PASS, .sc = SC_NONE,
	  .st = { .passed = 1 } },
	{ "IPv6 with a hop-by-hop header (not parsed): PASS, nothing changes",
	  .f = { .l3 = L3_IPV6, .ip6_hbh = 1 }, .b = BEAT(AG_B, 2, 1, 2000), .verdict = XDP_PASS,
	  .sc = SC_NONE, .st = { .passed = 1 } },
	/* Frames the stack would drop for their IP header go up untouched, so
	 * it drops and counts them as it would without vigil (ip_rcv_core,
	 * ipv6_rcv): a well-signed beat inside changes nothing. */
	{ "IPv4 version nibble 0 on a signed beat: PASS, nothing changes",
	  .f = { .ip_version = IPV_0 }, .b = BEAT(AG_A, 10, 2, 2000), .verdict = XDP_PASS,
	  .sc = SC_NONE, .st = { .passed = 1 } },
	{ "IPv4 version nibble 5: PASS, nothing changes",
	  .f = { .ip_version = 5 }, .b = BEAT(AG_A, 10, 2, 2000), .verdict = XDP_PASS,
	  .sc = SC_NONE, .st = { .passed = 1 } },
	{ "IPv4 version nibble 6 (an IPv6 nibble under the IPv4 ethertype): PASS",
	  .f = { .ip_version = 6 }, .b = BEAT(AG_A, 10, 2, 2000), .verdict = XDP_PASS,
	  .sc = SC_NONE, .st = { .passed = 1 } },
	{ "IPv4 version nibble 10: PASS, nothing changes",
	  .f = { .ip_version = 10 }, .b = BEAT(AG_A, 10, 2, 2000), .verdict = XDP_PASS,
	  .sc = SC_NONE, .st = { .passed = 1 } },
	{ "IPv4 version nibble 15: PASS, nothing changes",
	  .f = { .ip_version = 15 }, .b = BEAT(AG_A, 10, 2, 2000), .verdict = XDP_PASS,
	  .sc = SC_NONE, .st = { .passed = 1 } },
	{ "IPv4 total length 19, shorter than its own header: PASS, nothing changes",
	  .f = { .ip_len = 19 }, .b = BEAT(AG_A, 10, 2, 2000), .verdict = XDP_PASS,
	  .sc = SC_NONE, .st = { .passed = 1 } },
	{ "IPv4 total length 24, shorter than header + UDP header: PASS, nothing changes",
	  .f = { .ip_len = 24 }, .b = BEAT(AG_A, 10, 2, 2000), .verdict = XDP_PASS,
	  .sc = SC_NONE, .st = { .passed = 1 } },
	{ "IPv4 total length one byte beyond the frame, the whole beat there: truncated, so "
	  "malformed for the agent it names",
	  .f = { .ip_len = 20 + 8 + 64 + 1 }, .b = BEAT(AG_A, 10, 2, 2000),
	  REFUSE(AG_A, malformed, VIGIL_REJECT_MALFORMED), .st = { .malformed = 1 } },
	{ "IPv4 total length 28 before a whole signed 64-byte beat (the stack keeps only the UDP "
	  "header): malformed, no agent named, nothing else",
	  .f = { .ip_len = 28 }, .b = BEAT(AG_A, 10, 2, 2000), .verdict = XDP_DROP, .sc = SC_NONE,
	  .reason = VIGIL_REJECT_MALFORMED, .st = { .malformed = 1 } },
	{ "IPv4 total length leaves 16 bytes of the beat: malformed for the agent they name",
	  .f = { .ip_len = 20 + 8 + 16 }, .b = BEAT(AG_A, 10, 2, 2000),
	  REFUSE(AG_A, malformed, VIGIL_REJECT_MALFORMED), .st = { .malformed = 1 } },
	{ "IPv4 total length one byte short of the beat, the byte still in the frame: malformed",
	  .f = { .ip_len = 20 + 8 + 63 }, .b = BEAT(AG_A, 10, 2, 2000),
	  REFUSE(AG_A, malformed, VIGIL_REJECT_MALFORMED), .st = { .malformed = 1 } },
	{ "IPv4 with options, total length one byte short of the beat: malformed",
	  .f = { .ip_opt_words = 2, .ip_len = 28 + 8 + 63 }, .b = BEAT(AG_A, 10, 2, 2000),
	  REFUSE(AG_A, malformed, VIGIL_REJECT_MALFORMED), .st = { .malformed = 1 } },
	{ "IPv6 version nibble 4 under the IPv6 ethertype: PASS, nothing changes",
	  .f = { .l3 = L3_IPV6, .ip_version = 4 }, .b = BEAT(AG_B, 2, 1, 2000),
	  .verdict = XDP_PASS, .sc = SC_NONE, .st = { .passed = 1 } },
	{ "IPv6 version nibble 0: PASS, nothing changes",
	  .f = { .l3 = L3_IPV6, .ip_version = IPV_0 }, .b = BEAT(AG_B, 2, 1, 2000),
	  .verdict = XDP_PASS, .sc = SC_NONE, .st = { .passed = 1 } },
	{ "IPv6 payload length one byte beyond the frame, the whole beat there: malformed",
	  .f = { .l3 = L3_IPV6, .ip_len = 8 + 64 + 1 }, .b = BEAT(AG_B, 2, 1, 2000),
	  REFUSE(AG_B, malformed, VIGIL_REJECT_MALFORMED), .st = { .malformed = 1 } },
	{ "IPv6 payload length 4, shorter than the UDP header: PASS, nothing changes",
	  .f = { .l3 = L3_IPV6, .ip_len = 4 }, .b = BEAT(AG_B, 2, 1, 2000),
	  .verdict = XDP_PASS, .sc = SC_NONE, .st = { .passed = 1 } },
	{ "IPv6 payload length 8 before a whole signed beat: malformed, no agent named",
	  .f = { .l3 = L3_IPV6, .ip_len = 8 }, .b = BEAT(AG_B, 2, 1, 2000),
	  .verdict = XDP_DROP, .sc = SC_NONE, .reason = VIGIL_REJECT_MALFORMED,
	  .st = { .malformed = 1 } },
	{ "IPv6 payload length one byte short of the beat: malformed for the agent",
	  .f = { .l3 = L3_IPV6, .ip_len = 8 + 63 }, .b = BEAT(AG_B, 2, 1, 2000),
	  REFUSE(AG_B, malformed, VIGIL_REJECT_MALFORMED), .st = { .malformed = 1 } },
	{ "auth_required=0: an unsigned IPv6 beat is accepted",
	  .f = { .l3 = L3_IPV6 }, .b = BEAT(AG_B, 2, 1, 2000), .sign = SIGN_NONE, .no_auth = 1,
	  ACCEPT(AG_B, VIGIL_AGENT_ALIVE) },
	{ "IPv6 LEAVING: state LEFT, one LEFT event",
	  .f = { .l3 = L3_IPV6 }, .b = { .agent_id = AG_B, .seq = 3, .incarnation = 1,
					.interval_ms = 2000, .status = VIGIL_STATUS_LEAVING },
	  ACCEPT(AG_B, VIGIL_AGENT_LEFT), .ev = { VIGIL_EV_LEFT } },
	{ "back from LEFT with a higher incarnation: RESTART then UP, in that order",
	  .f = { .l3 = L3_IPV6 }, .b = BEAT(AG_B, 1, 2, 2000), ACCEPT(AG_B, VIGIL_AGENT_ALIVE),
	  .restart = 1, .ev = { VIGIL_EV_RESTART, VIGIL_EV_UP },
	  .st = { .beats = 1, .restarts = 1 } },
	{ "after all that, the next sequence is accepted as usual",
	  .b = BEAT(AG_A, 10, 2, 2000), ACCEPT(AG_A, VIGIL_AGENT_ALIVE) },
};

static int nexp_events(const struct pkt_case *c)
{
	return !!c->ev[0] + !!c->ev[1] + !!c->reason;
}

/* The agent id a refused datagram names, as its REJECTED record must carry
 * it: the id of a beat that got far enough to name one (magic right, at
 * least 16 bytes of payload seen), else 0. */
static __u64 named_id(const __u8 *frame, size_t len, const struct frame_spec *f, __u32 reason)
{
	size_t hdr = frame_hdr_len(f), avail, n;
	const __u8 *p = frame + hdr;
	int plen, in_ip = frame_ip_payload(f);
	__u64 id = 0;

	/* Refused for its source before it is decoded. */
	if (reason == VIGIL_REJECT_MAPPED_SOURCE || len < hdr || in_ip < 0)
		return 0;
	plen = (p[-4] << 8 | p[-3]) - 8;
	if (plen < 0)
		return 0;
	/* What the datagram holds: what is in the frame, within the IP
	 * packet's own length. */
	avail = len - hdr < (size_t)in_ip ? len - hdr : (size_t)in_ip;
	n = (size_t)plen < avail ? (size_t)plen : avail;
	if (n < VIGIL_BEAT_ID_END || (p[0] << 8 | p[1]) != VIGIL_MAGIC)
		return 0;
	for (int i = 0; i < 8; i++)
		id = id << 8 | p[8 + i];
	return id;
}

#define EXPECT(cond, ...) do { if (!(cond)) { note(__VA_ARGS__); bad++; } } while (0)

static const __u8 no_addr[16];

/* Check one transition record against what case c should have produced. */
static int check_transition(const struct pkt_case *c, const struct vigil_event *e, __u32 kind,
			    const struct vg_agent *before, const struct vg_agent *after,
			    __u32 slot)
{
	int bad = 0;

	if (!before || !after)
		return note("a %s record, but the case names no agent", kind_name(kind)), 1;
	EXPECT(e->agent_id == c->agent, "event agent_id %llu, want %llu",
	       (unsigned long long)e->agent_id, (unsigned long long)c->agent);
	EXPECT(e->slot == slot, "event slot %u, want %u", e->slot, slot);
	EXPECT(e->last_seen_ns == after->s.last_seen_ns && e->seq == after->s.replay.top &&
	       e->incarnation == after->s.replay.incarnation && e->interval_ms == after->s.interval_ms,
	       "event carries last_seen %llu seq %llu inc %u interval %u, slot has %llu %llu %u %u",
	       (unsigned long long)e->last_seen_ns, (unsigned long long)e->seq, e->incarnation,
	       e->interval_ms, (unsigned long long)after->s.last_seen_ns,
	       (unsigned long long)after->s.replay.top, after->s.replay.incarnation, after->s.interval_ms);
	EXPECT(e->reason == VIGIL_REJECT_NONE && !memcmp(e->src_addr, no_addr, 16),
	       "%s record carries reason %u and a source address", kind_name(kind), e->reason);
	if (kind == VIGIL_EV_RESTART)
		EXPECT(e->prev_state == before->s.state && e->state == before->s.state,
		       "RESTART event states %s -> %s, want %s -> %s", state_name(e->prev_state),
		       state_name(e->state), state_name(before->s.state), state_name(before->s.state));
	else
		EXPECT(e->prev_state == before->s.state && e->state == c->state,
		       "event states %s -> %s, want %s -> %s", state_name(e->prev_state),
		       state_name(e->state), state_name(before->s.state), state_name(c->state));
	return bad;
}

/* Check a REJECTED record: the reason, the sender, the agent the datagram
 * named (and its slot and unchanged state, when it is registered). */
static int check_rejected(const struct pkt_case *c, const struct vigil_event *e, __u64 id,
			  const struct frame_spec *f, const struct vg_agent *before,
			  const __u32 *slots)
{
	int bad = 0, w = id ? watch_idx(id) : -1;
	__u32 want_slot = w >= 0 ? slots[w] : NO_SLOT;
	__u32 want_state = w >= 0 ? before[w].s.state : VIGIL_AGENT_FREE;
	__u8 src[16];
	char got_a[64], want_a[64];

	frame_src_mapped(f, src);
	EXPECT(e->reason == c->reason, "REJECTED reason %s, want %s", reason_name(e->reason),
	       reason_name(c->reason));
	EXPECT(e->agent_id == id, "REJECTED agent_id %llu, want %llu",
	       (unsigned long long)e->agent_id, (unsigned long long)id);
	EXPECT(e->slot == want_slot, "REJECTED slot %u, want %u", e->slot, want_slot);
	EXPECT(e->state == want_state && e->prev_state == want_state,
	       "REJECTED states %s -> %s, want %s unchanged", state_name(e->prev_state),
	       state_name(e->state), state_name(want_state));
	EXPECT(e->last_seen_ns == e->detected_ns && !e->seq && !e->incarnation && !e->interval_ms,
	       "REJECTED carries last_seen %llu (detected %llu) seq %llu inc %u interval %u",
	       (unsigned long long)e->last_seen_ns, (unsigned long long)e->detected_ns,
	       (unsigned long long)e->seq, e->incarnation, e->interval_ms);
	if (memcmp(e->src_addr, src, 16)) {
		vg_fmt_addr(e->src_addr, got_a, sizeof(got_a));
		vg_fmt_addr(src, want_a, sizeof(want_a));
		EXPECT(0, "REJECTED src_addr %s, want %s", got_a, want_a);
	}
	return bad;
}

/* The key a case signs with. */
static void case_frame_spec(const struct pkt_case *c, struct frame_spec *f, struct vigil_key *k)
{
	*f = c->f;
	switch (c->sign) {
	case SIGN_K0:
		*k = agent_key(c->b.agent_id, 0);
		f->key = k;
		f->key_id = 0;
		break;
	case SIGN_NONE:
		f->key = NULL;
		break;
	case SIGN_K1:
	case SIGN_K1_AS_0:
		*k = agent_key(c->b.agent_id, 1);
		f->key = k;
		f->key_id = c->sign == SIGN_K1;
		break;
	case SIGN_WRONG:
	case SIGN_WRONG_1:
		*k = wrong_key;
		f->key = k;
		f->key_id = c->sign == SIGN_WRONG_1;
		break;
	}
}

/* Run one packet case; returns how many expectations failed (each noted). */
static int pkt_case_check(const struct pkt_case *c)
{
	struct vg_agent before[MAX_WATCH], after[MAX_WATCH], want[MAX_WATCH];
	struct vigil_stats st0, st1, dst = c->st;
	struct vigil_config cfg = c->cfg ? *c->cfg : table_cfg;
	bool own_cfg = c->cfg || c->pass_beats || c->no_auth;
	struct vigil_globals g0, g1;
	struct frame_spec f;
	struct vigil_key key;
	__u8 frame[PKT_MAX];
	size_t len, ev0, ev1;
	__u64 t0, t1, trans_seq = 0, rej_id = 0;
	__u32 slots[MAX_WATCH], slot = NO_SLOT;
	int bad = 0, idx = -1, nexp = nexp_events(c), ret;

	idx = c->agent ? watch_idx(c->agent) : -1;
	if (c->sc != SC_NONE && idx < 0)
		return note("test bug: agent %llu is not watched", (unsigned long long)c->agent), 1;
	if (c->keys && set_valid_keys(c->agent, c->keys & 0xff))
		return note("setting the keys of agent %llu failed", (unsigned long long)c->agent), 1;
	cfg.pass_beats |= c->pass_beats;
	if (c->no_auth)
		cfg.auth_required = 0;
	if (own_cfg && cfg_write(&cfg))
		return note("writing vigil_config: %s", strerror(errno)), 1;
	case_frame_spec(c, &f, &key);
	len = build_frame(frame, &f, &c->b, &c->patch);

	ev0 = drain();
	if (snapshot(before, slots) || vg_stats_read(&maps, &st0) || read_globals(&g0)) {
		if (own_cfg)
			cfg_write(&table_cfg);
		return note("reading the maps: %s", strerror(errno)), 1;
	}
	ret = xdp_run(frame, len, &t0, &t1);
	if (snapshot(after, slots) || vg_stats_read(&maps, &st1) || read_globals(&g1))
		bad++, note("reading the maps after the run failed: %s", strerror(errno));
	drain();
	settle(g0.event_seq, g1.event_seq, ev0);
	ev1 = ev_n;
	if (own_cfg && cfg_write(&table_cfg))
		bad++, note("restoring vigil_config failed: %s", strerror(errno));

	if (ret < 0)
		return note("BPF_PROG_TEST_RUN failed: %s", strerror(-ret)), bad + 1;
	EXPECT(ret == c->verdict, "verdict %d, want %d", ret, c->verdict);
	if (idx >= 0)
		slot = slots[idx];

	/* Events first: the expected slot refers to the transition's sequence. */
	if ((int)(ev1 - ev0) != nexp) {
		bad++;
		note("%zu ring-buffer records, want %d", ev1 - ev0, nexp);
		for (size_t i = ev0; i < ev1; i++)
			note("  got %s (%s) for agent %llu", kind_name(evlog[i].kind),
			     reason_name(evlog[i].reason), (unsigned long long)evlog[i].agent_id);
	} else {
		for (int i = 0; i < nexp; i++) {
			const struct vigil_event *e = &evlog[ev0 + i];
			__u32 kind = i < nexp - !!c->reason ? c->ev[i] : VIGIL_EV_REJECTED;

			EXPECT(e->kind == kind, "event %d kind %s, want %s", i, kind_name(e->kind),
			       kind_name(kind));
			EXPECT(e->event_seq == g0.event_seq + 1 + i +
						       health_between(g0.event_seq, e->event_seq),
			       "event_seq %llu, want %llu", (unsigned long long)e->event_seq,
			       (unsigned long long)(g0.event_seq + 1 + i));
			EXPECT(e->detected_ns >= t0 && e->detected_ns <= t1,
			       "detected_ns %llu outside the test run [%llu, %llu]",
			       (unsigned long long)e->detected_ns, (unsigned long long)t0,
			       (unsigned long long)t1);
			if (e->kind != kind)
				continue;
			if (kind == VIGIL_EV_REJECTED) {
				rej_id = named_id(frame, len, &f, c->reason);
				bad += check_rejected(c, e, rej_id, &f, before, slots);
				continue;
			}
			bad += check_transition(c, e, kind, idx >= 0 ? &before[idx] : NULL,
						idx >= 0 ? &after[idx] : NULL, slot);
			if (kind != VIGIL_EV_RESTART)
				trans_seq = e->event_seq;
		}
	}
	EXPECT(g1.event_seq - g0.event_seq - health_between(g0.event_seq, g1.event_seq) ==
		       (__u64)nexp,
	       "event_seq rose by %llu, want %d", (unsigned long long)(g1.event_seq - g0.event_seq),
	       nexp);

	/* The expected slots: everything as before, except what the case says. */
	memcpy(want, before, sizeof(want[0]) * n_watch);
	if (c->sc == SC_COUNTER) {
		__u64 *p = (__u64 *)((char *)&want[idx] + c->counter);

		(*p)++;
	} else if (c->sc == SC_ACCEPT || c->sc == SC_LATE) {
		struct vg_agent *w = &want[idx];
		const struct vg_agent *a = &after[idx], *b = &before[idx];
		__u32 state = c->state ? c->state : b->s.state;

		EXPECT(a->s.last_seen_ns >= t0 && a->s.last_seen_ns <= t1,
		       "last_seen_ns %llu outside the test run [%llu, %llu]",
		       (unsigned long long)a->s.last_seen_ns, (unsigned long long)t0,
		       (unsigned long long)t1);
		w->s.last_seen_ns = a->s.last_seen_ns;
		w->s.beats++;
		/* A timestamp moves the clock estimate (XDP's now is last_seen);
		 * a restart starts it afresh. */
		if (c->restart)
			w->s.clock_at_ns = 0;
		if (c->b.send_ts_ns) {
			__s64 off = vigil_clock_update(&w->s.clock_off_ns, &w->s.clock_at_ns,
						       a->s.last_seen_ns,
						       (__s64)(a->s.last_seen_ns - c->b.send_ts_ns));
			__u64 est = vigil_send_estimate(a->s.last_seen_ns, c->b.send_ts_ns, off);
			/* A sequence gap in this incarnation: beats proven lost. */
			__u64 gap = c->sc == SC_ACCEPT && !c->restart && b->s.state != VIGIL_AGENT_NEW &&
					    c->b.seq > b->s.replay.top + 1 &&
					    c->b.seq - b->s.replay.top - 1 <= VIGIL_LOSS_GAP_MAX ?
				    c->b.seq - b->s.replay.top - 1 : 0;

			if (vigil_first_lost_ns(est, gap, c->interval,
						b->s.send_ts_ns ? vigil_send_estimate(b->s.last_seen_ns,
										    b->s.send_ts_ns, off) : 0))
				dst.lost_beats += gap;
			w->s.rxq = 0;
		}
		if (b->s.state != VIGIL_AGENT_NEW && a->s.last_seen_ns > b->s.last_seen_ns)
			vigil_gap_count(&w->s.gap_bucket, &w->s.gap_run, w->i.gap_hist,
					a->s.last_seen_ns - b->s.last_seen_ns);
		/* The window and the rate: checked on their own below. */
		w->s.replay = a->s.replay;
		w->s.rate_tat = a->s.rate_tat;
		w->s.rate_interval_ms = a->s.rate_interval_ms;
		if (c->sc == SC_LATE) {
			/* Proof of life only: what it reports is older than the slot. */
			w->i.reordered++;
		} else {
			w->s.send_ts_ns = c->b.send_ts_ns;
			w->s.interval_ms = c->interval;
			w->s.status = c->b.status;
			w->s.queue_depth = c->b.queue_depth;
			w->s.lease_id = c->b.lease_id;
			if (c->restart)
				w->i.restarts++;
		}
		w->s.state = state;
		if (state != b->s.state) {
			w->i.state_since_ns = a->s.last_seen_ns;
			w->i.last_event_seq = trans_seq;
		}
	}
	for (size_t i = 0; i < n_watch; i++)
		bad += slot_diff(watch[i], &want[i], &after[i]);
	/* Only an accepted beat moves its agent's window and rate; a beat over
	 * the agent's rate is authentic and marks its sequence seen. Nothing a
	 * forger sends may move them, and no beat moves another agent's. */
	for (size_t i = 0; i < n_watch; i++) {
		bool may = (int)i == idx && (c->sc == SC_ACCEPT || c->sc == SC_LATE ||
					     (c->sc == SC_COUNTER && c->counter == CNT(over_rate)));

		if (!may && guard_changed(&before[i].s, &after[i].s))
			bad++, note("agent %llu: replay window or rate changed (top %llu -> %llu, seen %#llx -> "
				    "%#llx, rate_tat %llu -> %llu)", (unsigned long long)watch[i],
				    (unsigned long long)before[i].s.replay.top,
				    (unsigned long long)after[i].s.replay.top,
				    (unsigned long long)before[i].s.replay.seen,
				    (unsigned long long)after[i].s.replay.seen,
				    (unsigned long long)before[i].s.rate_tat,
				    (unsigned long long)after[i].s.rate_tat);
		if ((int)i == idx && (c->sc == SC_ACCEPT || c->sc == SC_LATE)) {
			const struct vigil_replay *r0 = &before[i].s.replay, *r1 = &after[i].s.replay;
			__u64 top = c->sc == SC_LATE ? r0->top : c->b.seq;
			__u64 dist = top - c->b.seq;

			if (r1->top != top || r1->incarnation != c->b.incarnation || !r1->started ||
			    dist >= 64 || !(r1->seen & (1ULL << dist)) ||
			    /* GCRA: an accepted beat leaves the next theoretical
			     * arrival in the future (it may move back when the
			     * agent announces a faster cadence: rescaled debt). */
			    (after[i].s.rate_tat != before[i].s.rate_tat && after[i].s.rate_tat <= t0))
				bad++, note("agent %llu: window after an accepted beat: top %llu "
					    "(want %llu) inc %u seen %#llx rate_tat %llu (was %llu)",
					    (unsigned long long)watch[i], (unsigned long long)r1->top,
					    (unsigned long long)top, r1->incarnation,
					    (unsigned long long)r1->seen,
					    (unsigned long long)after[i].s.rate_tat,
					    (unsigned long long)before[i].s.rate_tat);
		}
		if ((int)i == idx && c->sc == SC_COUNTER && c->counter == CNT(over_rate) &&
		    before[i].s.rate_tat != after[i].s.rate_tat)
			bad++, note("agent %llu: a beat over the rate moved rate_tat",
				    (unsigned long long)watch[i]);
	}

	dst.packets = 1;
	dst.events = nexp;
	events_slack = health_between(g0.event_seq > 2 ? g0.event_seq - 2 : 0, g1.event_seq + 2);
	bad += stats_diff(&st0, &st1, &dst);
	return bad;
}

static bool run_pkt_case(const struct pkt_case *c)
{
	return tap_result(!pkt_case_check(c), "%s", c->desc);
}

static bool run_pkt_case_desc(const struct pkt_case *c, const char *desc)
{
	return tap_result(!pkt_case_check(c), "%s", desc);
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
		.reason = VIGIL_REJECT_MALFORMED, .st = { .malformed = 1 },
	};
	struct vigil_beat_info next = BEAT(AG_A, 11, 2, 2000);
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

		for (size_t len = PKT_ETH_HLEN; len < hdr; len++) {
			c.f = fams[fi].f;
			c.f.cut = 1;
			c.f.frame_len = (int)len;
			c.verdict = XDP_PASS;
			c.sc = SC_NONE;
			c.reason = 0;
			c.st = (struct vigil_stats){ .passed = 1 };
			c.desc = d = xasprintf("%s frame cut to %zu of %zu header bytes: PASS, "
					       "nothing changes", fams[fi].name, len, hdr);
			run_pkt_case(&c);
			free(d);
		}
	}

	/* The frame cut inside the beat while the UDP length still says 64. */
	c.verdict = XDP_DROP;
	c.reason = VIGIL_REJECT_MALFORMED;
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
		.b = next, ACCEPT(AG_A, VIGIL_AGENT_ALIVE),
	};
	run_pkt_case(&c);
}

/* -------------------------------------------------------- authentication */

/* Keys and tags on AG_A (incarnation 2, highest sequence 11 by now), then
 * rotation: key 1 joins, the agent switches without a missed beat, key 0
 * leaves. The replay window is one per agent, whatever key signed. */
static const struct pkt_case key_cases[] = {
	{ "valid tag with key 0: accepted",
	  .b = BEAT(AG_A, 12, 2, 2000), ACCEPT(AG_A, VIGIL_AGENT_ALIVE) },
	{ "key_id 1 while only key 0 is valid: bad_tag +1, REJECTED bad_tag, nothing else",
	  .b = BEAT(AG_A, 13, 2, 2000), .sign = SIGN_K1,
	  REFUSE(AG_A, bad_tag, VIGIL_REJECT_BAD_TAG), .st = { .bad_tag = 1 } },
	{ "tag made with key 1 but labelled key_id 0: bad_tag",
	  .b = BEAT(AG_A, 13, 2, 2000), .sign = SIGN_K1_AS_0,
	  REFUSE(AG_A, bad_tag, VIGIL_REJECT_BAD_TAG), .st = { .bad_tag = 1 } },
	{ "tag made with a key the agent does not hold: bad_tag",
	  .b = BEAT(AG_A, 13, 2, 2000), .sign = SIGN_WRONG,
	  REFUSE(AG_A, bad_tag, VIGIL_REJECT_BAD_TAG), .st = { .bad_tag = 1 } },
	{ "wrong key with key_id 1: bad_tag",
	  .b = BEAT(AG_A, 13, 2, 2000), .sign = SIGN_WRONG_1,
	  REFUSE(AG_A, bad_tag, VIGIL_REJECT_BAD_TAG), .st = { .bad_tag = 1 } },
	{ "valid tag, mac[15] = 1 (the unused half must be zero): bad_tag",
	  .b = BEAT(AG_A, 13, 2, 2000), .patch = { 63, 1, 1 },
	  REFUSE(AG_A, bad_tag, VIGIL_REJECT_BAD_TAG), .st = { .bad_tag = 1 } },
	{ "valid tag, mac[8] = 0x80: bad_tag",
	  .b = BEAT(AG_A, 13, 2, 2000), .patch = { 56, 1, 0x80 },
	  REFUSE(AG_A, bad_tag, VIGIL_REJECT_BAD_TAG), .st = { .bad_tag = 1 } },
	{ "VIGIL_F_MAC set, mac all zero: bad_tag",
	  .b = { .agent_id = AG_A, .seq = 13, .incarnation = 2, .interval_ms = 2000,
		 .flags = VIGIL_F_MAC },
	  .sign = SIGN_NONE, REFUSE(AG_A, bad_tag, VIGIL_REJECT_BAD_TAG), .st = { .bad_tag = 1 } },
	{ "no VIGIL_F_MAC while authentication is required: unauthenticated +1 globally, "
	  "REJECTED unauthenticated, the slot unchanged",
	  .b = BEAT(AG_A, 13, 2, 2000), .sign = SIGN_NONE, .verdict = XDP_DROP, .agent = AG_A,
	  .sc = SC_NONE, .reason = VIGIL_REJECT_UNAUTHENTICATED, .st = { .unauthenticated = 1 } },
	{ "no VIGIL_F_MAC, over IPv6: unauthenticated, REJECTED carries the IPv6 source",
	  .f = { .l3 = L3_IPV6 }, .b = BEAT(AG_A, 13, 2, 2000), .sign = SIGN_NONE,
	  .verdict = XDP_DROP, .agent = AG_A, .sc = SC_NONE,
	  .reason = VIGIL_REJECT_UNAUTHENTICATED, .st = { .unauthenticated = 1 } },
	{ "no VIGIL_F_MAC with auth_required=0: accepted",
	  .b = BEAT(AG_A, 13, 2, 2000), .sign = SIGN_NONE, .no_auth = 1,
	  ACCEPT(AG_A, VIGIL_AGENT_ALIVE) },
	{ "auth_required=0 still checks a tag that is there: bad_tag",
	  .b = BEAT(AG_A, 14, 2, 2000), .sign = SIGN_WRONG, .no_auth = 1,
	  REFUSE(AG_A, bad_tag, VIGIL_REJECT_BAD_TAG), .st = { .bad_tag = 1 } },
	{ "rotation: key 1 added (both valid), the agent still signs with key 0: accepted",
	  .b = BEAT(AG_A, 14, 2, 2000), .keys = KEYS(3), ACCEPT(AG_A, VIGIL_AGENT_ALIVE) },
	{ "rotation: the next beat signed with key 1: accepted, no beat missed",
	  .b = BEAT(AG_A, 15, 2, 2000), .sign = SIGN_K1, ACCEPT(AG_A, VIGIL_AGENT_ALIVE) },
	{ "rotation: that beat again, re-signed with key 0: duplicate (one window per agent)",
	  .b = BEAT(AG_A, 15, 2, 2000), REFUSE(AG_A, duplicates, VIGIL_REJECT_REPLAY),
	  .st = { .duplicates = 1 } },
	{ "rotation: the key-0 beat before it, re-signed with key 1: duplicate",
	  .b = BEAT(AG_A, 14, 2, 2000), .sign = SIGN_K1,
	  REFUSE(AG_A, duplicates, VIGIL_REJECT_REPLAY), .st = { .duplicates = 1 } },
	{ "rotation: key 0 retired (only key 1 valid): a key-0 beat is bad_tag",
	  .b = BEAT(AG_A, 16, 2, 2000), .keys = KEYS(2),
	  REFUSE(AG_A, bad_tag, VIGIL_REJECT_BAD_TAG), .st = { .bad_tag = 1 } },
	{ "rotation: the same sequence signed with key 1: accepted (the refusal used nothing up)",
	  .b = BEAT(AG_A, 16, 2, 2000), .sign = SIGN_K1, ACCEPT(AG_A, VIGIL_AGENT_ALIVE) },
	{ "keys back to key 0 only: a key-0 beat is accepted",
	  .b = BEAT(AG_A, 17, 2, 2000), .keys = KEYS(1), ACCEPT(AG_A, VIGIL_AGENT_ALIVE) },
	{ "... and a key-1 beat is bad_tag",
	  .b = BEAT(AG_A, 18, 2, 2000), .sign = SIGN_K1,
	  REFUSE(AG_A, bad_tag, VIGIL_REJECT_BAD_TAG), .st = { .bad_tag = 1 } },
	{ "an agent with no key at all: a signed beat is bad_tag",
	  .b = BEAT(AG_C, 2, 1, 2000), .keys = KEYS(0), .f = { .vlans = 1 },
	  REFUSE(AG_C, bad_tag, VIGIL_REJECT_BAD_TAG), .st = { .bad_tag = 1 } },
	{ "an agent with no key at all, auth_required=0: an unsigned beat is accepted",
	  .b = BEAT(AG_C, 2, 1, 2000), .f = { .vlans = 1 }, .sign = SIGN_NONE, .no_auth = 1,
	  ACCEPT(AG_C, VIGIL_AGENT_ALIVE) },
	{ "keys restored: a signed beat is accepted again",
	  .b = BEAT(AG_C, 3, 1, 2000), .keys = KEYS(1), .f = { .vlans = 1 },
	  ACCEPT(AG_C, VIGIL_AGENT_ALIVE) },
};

/* What the beat path must conclude about one 64-byte datagram from the
 * default IPv4 source, worked out on the host from the beat's bytes, the
 * registered agents and their keys. Used for the bit flips, where writing
 * 512 expectations by hand would only repeat this. */
static void expect_for_beat(struct pkt_case *c, const struct vigil_beat *beat)
{
	struct vigil_beat_info bi = {};
	enum vigil_beat_verdict v = vigil_beat_decode(beat, sizeof(*beat), &bi);
	__u64 id = bi.has_agent_id ? bi.agent_id : 0;
	int w = id ? watch_idx(id) : -1;
	struct agent_auth a;
	struct vg_agent s;
	__u32 slot;

	c->verdict = XDP_DROP;
	c->agent = w >= 0 ? id : 0;
	c->sc = w >= 0 ? SC_COUNTER : SC_NONE;
	memset(&c->st, 0, sizeof(c->st));
	if (v == VIGIL_BEAT_BAD_VERSION) {
		c->reason = VIGIL_REJECT_BAD_VERSION;
		c->counter = CNT(bad_version);
		c->st.bad_version = 1;
	} else if (v != VIGIL_BEAT_OK) {
		c->reason = VIGIL_REJECT_MALFORMED;
		c->counter = CNT(malformed);
		c->st.malformed = 1;
	} else if (w < 0) {
		c->reason = VIGIL_REJECT_UNKNOWN_AGENT;
		c->st.unknown_agent = 1;
	} else if (!(bi.flags & VIGIL_F_MAC)) {
		c->reason = VIGIL_REJECT_UNAUTHENTICATED;
		c->sc = SC_NONE;
		c->st.unauthenticated = 1;
	} else {
		c->reason = VIGIL_REJECT_BAD_TAG;
		c->counter = CNT(bad_tag);
		c->st.bad_tag = 1;
		/* A flip that still verifies would be a forgery: flag it. */
		if (!vg_agent_get(&maps, id, &slot, &s) &&
		    !vg_agent_get_auth(&maps, slot, &a) &&
		    (a.valid & (1u << bi.key_id)) && vigil_beat_tag_ok(beat, &a.key[bi.key_id]))
			c->reason = VIGIL_REJECT_NONE;
	}
}

/* Every single-bit flip of a signed 64-byte beat. None may be accepted or
 * change anything but one refusal counter; a flip in the tag is bad_tag, a
 * flip in the body is bad_tag unless it breaks the format (or names another
 * agent, or clears VIGIL_F_MAC) first. Then the beat itself still goes in. */
static void run_bit_flips(void)
{
	static const char *const fields[] = {
		[0] = "magic", [1] = "magic", [2] = "version", [3] = "flags", [4] = "status",
		[5] = "key_id", [6] = "queue_depth", [7] = "queue_depth",
	};
	const struct vigil_beat_info bi = BEAT(AG_A, 19, 2, 2000);
	struct vigil_key k = agent_key(AG_A, 0);
	int by_reason[VIGIL_REJECT_REASON_MAX + 1] = {};
	char *d;

	for (int bit = 0; bit < 8 * (int)sizeof(struct vigil_beat); bit++) {
		int byte = bit / 8;
		struct pkt_case c = { .b = bi, .patch = { byte, 1, 1u << (bit % 8), 1 } };
		struct frame_spec f = { .key = &k };
		struct vigil_beat beat;
		const char *field = byte < 8 ? fields[byte] : byte < 16 ? "agent_id" :
				    byte < 24 ? "seq" : byte < 32 ? "send_ts_ns" :
				    byte < 36 ? "incarnation" : byte < 40 ? "interval_ms" :
				    byte < 44 ? "lease_id" : byte < 48 ? "reserved" :
				    byte < 56 ? "tag" : "mac[8..15]";
		int bad = 0;

		build_beat(&beat, &f, &bi, &c.patch);
		expect_for_beat(&c, &beat);
		if (c.reason == VIGIL_REJECT_NONE)
			bad++, note("the flipped beat verifies: a forgery");
		if (byte >= VIGIL_TAG_COVERS && c.reason != VIGIL_REJECT_BAD_TAG)
			bad++, note("a flip in the tag must be bad_tag, the model says %s",
				    reason_name(c.reason));
		if (!bad)
			bad += pkt_case_check(&c);
		by_reason[c.reason]++;
		if (c.agent && c.agent != AG_A)
			d = xasprintf(" for agent %llu", (unsigned long long)c.agent);
		else
			d = xasprintf("%s", "");
		tap_result(!bad, "bit flip %d (byte %d, %s, bit %d): refused as %s%s, nothing "
			   "else changes", bit, byte, field, bit % 8, reason_name(c.reason), d);
		free(d);
	}
	note("bit flips: %d bad_tag, %d malformed, %d bad_version, %d unknown_agent, "
	     "%d unauthenticated", by_reason[VIGIL_REJECT_BAD_TAG],
	     by_reason[VIGIL_REJECT_MALFORMED], by_reason[VIGIL_REJECT_BAD_VERSION],
	     by_reason[VIGIL_REJECT_UNKNOWN_AGENT], by_reason[VIGIL_REJECT_UNAUTHENTICATED]);
	{
		struct pkt_case c = { .desc = "after 512 refused flips, the unflipped beat (same "
					      "sequence) is accepted: no flip used up the window",
				      .b = bi, ACCEPT(AG_A, VIGIL_AGENT_ALIVE) };

		run_pkt_case(&c);
	}
}

/* Beats recorded before an agent was removed are refused after it is added
 * again (issue 14, item 1): the window's floor outlives the registration in
 * vigil_floors, and a recorded LEAVING beat cannot make the new
 * registration LEFT. */
static void run_floor_cases(void)
{
	static const struct pkt_case sent[] = {
		{ "floor: beat 5000 of a new agent: UP",
		  .b = BEAT(AG_FLOOR, 5000, 3, 2000), ACCEPT(AG_FLOOR, VIGIL_AGENT_ALIVE),
		  .ev = { VIGIL_EV_UP } },
		{ "floor: beat 5001", .b = BEAT(AG_FLOOR, 5001, 3, 2000),
		  ACCEPT(AG_FLOOR, VIGIL_AGENT_ALIVE) },
		{ "floor: beat 5002, LEAVING: LEFT",
		  .b = { .agent_id = AG_FLOOR, .seq = 5002, .incarnation = 3, .interval_ms = 2000,
			 .status = VIGIL_STATUS_LEAVING },
		  ACCEPT(AG_FLOOR, VIGIL_AGENT_LEFT), .ev = { VIGIL_EV_LEFT } },
	};
	struct replay_floor f = {};
	struct agent_slot g = {};
	struct pkt_case c;
	__u32 slot;
	int err;

	err = add_agent_keys(AG_FLOOR, PKT_MIN_MS, PKT_MAX_MS, PKT_MULT, NULL, 1, NULL);
	if (!tap_result(!err, "floor: agent registered"))
		return;
	watch_add(AG_FLOOR);
	for (size_t i = 0; i < 3; i++)
		run_pkt_case(&sent[i]);

	err = vg_agent_remove(&maps, AG_FLOOR) ||
	      bpf_map_lookup_elem(maps.floors, &(__u64){ AG_FLOOR }, &f);
	tap_result(!err && f.incarnation == 3 && f.seq == 5002,
		   "floor: vg_agent_remove leaves the window's top in vigil_floors: incarnation "
		   "%u, seq %llu (want 3, 5002)", f.incarnation, (unsigned long long)f.seq);
	err = add_agent_keys(AG_FLOOR, PKT_MIN_MS, PKT_MAX_MS, PKT_MULT, NULL, 1, NULL) ||
	      vg_agent_get(&maps, AG_FLOOR, &slot, &(struct vg_agent){}) ||
	      bpf_map_lookup_elem_flags(maps.agents, &slot, &g, BPF_F_LOCK);
	tap_result(!err && g.replay.started && g.replay.incarnation == 3 &&
			   g.replay.top == 5002 && g.replay.seen == ~0ULL &&
			   bpf_map_lookup_elem(maps.floors, &(__u64){ AG_FLOOR }, &f) == -ENOENT,
		   "floor: added again, its window starts at the floor (everything up to 5002 "
		   "seen), and the floor is taken from vigil_floors");

	/* The same frames, byte for byte: duplicates now, nothing changes. */
	for (size_t i = 0; i < 3; i++) {
		char *d = xasprintf("floor: after remove + add, the recorded beat %llu again: "
				    "duplicate, stays NEW", (unsigned long long)sent[i].b.seq);

		c = (struct pkt_case){ .b = sent[i].b, REFUSE(AG_FLOOR, duplicates, VIGIL_REJECT_REPLAY),
				       .st = { .duplicates = 1 } };
		run_pkt_case_desc(&c, d);
		free(d);
	}
	c = (struct pkt_case){ .b = BEAT(AG_FLOOR, 4000, 3, 2000),
			       REFUSE(AG_FLOOR, replayed, VIGIL_REJECT_REPLAY), .st = { .replayed = 1 } };
	run_pkt_case_desc(&c, "floor: an older beat, below the window: replayed");
	c = (struct pkt_case){ .b = BEAT(AG_FLOOR, 9000, 2, 2000),
			       REFUSE(AG_FLOOR, replayed, VIGIL_REJECT_REPLAY), .st = { .replayed = 1 } };
	run_pkt_case_desc(&c, "floor: a beat of an older incarnation: replayed");
	c = (struct pkt_case){ .b = BEAT(AG_FLOOR, 5003, 3, 2000), ACCEPT(AG_FLOOR, VIGIL_AGENT_ALIVE),
			       .ev = { VIGIL_EV_UP } };
	run_pkt_case_desc(&c, "floor: the agent's next beat (5003) is accepted: UP");
}

/* Where agents go (registry.c): an id in id_base's range in the slot of its
 * own number, any other id from the top of the table down. An id whose own
 * slot another agent holds goes elsewhere and, like every agent outside its
 * own slot, is found through the index; a beat of an unknown id that falls
 * on another agent's slot is unknown. */
static void run_placement_cases(void)
{
	__u32 s_a = 0, s_sparse = 0, s_clash = 0;
	__u64 clash = 0;
	struct pkt_case c;
	int err;

	err = add_agent_keys(AG_SPARSE, PKT_MIN_MS, PKT_MAX_MS, PKT_MULT, NULL, 1, NULL) ||
	      vg_agent_get(&maps, AG_A, &s_a, &(struct vg_agent){}) ||
	      vg_agent_get(&maps, AG_SPARSE, &s_sparse, &(struct vg_agent){});
	if (!tap_result(!err && s_a == AG_A - maps.id_base && s_sparse >= maps.max_agents - 64,
			"placement: agent %llu in slot %u (id - id_base %llu), agent %#llx outside "
			"the range at the top (slot %u of %u)", (unsigned long long)AG_A, s_a,
			(unsigned long long)maps.id_base, (unsigned long long)AG_SPARSE, s_sparse,
			maps.max_agents))
		return;
	watch_add(AG_SPARSE);
	c = (struct pkt_case){ .b = BEAT(AG_SPARSE, 1, 1, 2000),
			       ACCEPT(AG_SPARSE, VIGIL_AGENT_ALIVE), .ev = { VIGIL_EV_UP } };
	run_pkt_case_desc(&c, "placement: a beat of the agent outside the range: accepted, UP");
	clash = maps.id_base + s_sparse;
	c = (struct pkt_case){ .b = BEAT(clash, 1, 1, 2000), .verdict = XDP_DROP, .sc = SC_NONE,
			       .reason = VIGIL_REJECT_UNKNOWN_AGENT, .st = { .unknown_agent = 1 } };
	run_pkt_case_desc(&c, "placement: an unknown id whose own slot another agent holds: "
			      "unknown_agent, that agent untouched");
	err = add_agent_keys(clash, PKT_MIN_MS, PKT_MAX_MS, PKT_MULT, NULL, 1, NULL) ||
	      vg_agent_get(&maps, clash, &s_clash, &(struct vg_agent){});
	if (!tap_result(!err && s_clash != s_sparse,
			"placement: registered, agent %llu goes to slot %u, its own (%u) being held",
			(unsigned long long)clash, s_clash, s_sparse))
		return;
	watch_add(clash);
	c = (struct pkt_case){ .b = BEAT(clash, 1, 1, 2000), ACCEPT(clash, VIGIL_AGENT_ALIVE),
			       .ev = { VIGIL_EV_UP } };
	run_pkt_case_desc(&c, "placement: its beat is found through the index: accepted, UP");
	c = (struct pkt_case){ .b = BEAT(AG_SPARSE, 2, 1, 2000),
			       ACCEPT(AG_SPARSE, VIGIL_AGENT_ALIVE) };
	run_pkt_case_desc(&c, "placement: and the agent in its slot still gets its own beats");
}

/* The anti-replay script of auth_vectors.h, beat by beat, one new agent per
 * block, each step checked like a table case. The host runs the same script
 * against vigil_replay_check() in test_auth. */
static void run_replay_script(void)
{
	static struct replay_step steps[REPLAY_MAX_STEPS];
	size_t n = replay_script(steps), i = 0;
	int block_bad = 0, block_steps = 0;

	while (i < n) {
		const struct replay_step *s = &steps[i];
		__u64 id = AG_REPLAY + s->block;
		const struct vigil_beat_info b = BEAT(id, s->seq, s->inc, 2000);
		struct pkt_case c;
		int bad;

		if (s->fresh) {
			int err = add_agent(id, PKT_MIN_MS, PKT_MAX_MS, PKT_MULT, NULL);

			if (err) {
				tap_result(false, "replay script block %u: registering agent: %s",
					   s->block, strerror(-err));
				return;
			}
			watch_add(id);
			block_bad = block_steps = 0;
		}
		switch (s->want) {
		case VIGIL_REPLAY_FIRST:
			c = (struct pkt_case){ .b = b, ACCEPT(id, VIGIL_AGENT_ALIVE),
					       .ev = { VIGIL_EV_UP } };
			break;
		case VIGIL_REPLAY_NEWER:
			c = (struct pkt_case){ .b = b, ACCEPT(id, VIGIL_AGENT_ALIVE) };
			break;
		case VIGIL_REPLAY_RESTART:
			c = (struct pkt_case){ .b = b, ACCEPT(id, VIGIL_AGENT_ALIVE), .restart = 1,
					       .ev = { VIGIL_EV_RESTART },
					       .st = { .beats = 1, .restarts = 1 } };
			break;
		case VIGIL_REPLAY_LATE:
			c = (struct pkt_case){ .b = b, LATE(id) };
			break;
		case VIGIL_REPLAY_DUPLICATE:
			c = (struct pkt_case){ .b = b, REFUSE(id, duplicates, VIGIL_REJECT_REPLAY),
					       .st = { .duplicates = 1 } };
			break;
		default:
			c = (struct pkt_case){ .b = b, REFUSE(id, replayed, VIGIL_REJECT_REPLAY),
					       .st = { .replayed = 1 } };
			break;
		}
		bad = pkt_case_check(&c);
		if (bad)
			note("replay script step %zu (block %u): incarnation %u seq %llu, want %s",
			     i, s->block, s->inc, (unsigned long long)s->seq,
			     replay_verdict_name(s->want));
		block_bad += !!bad;
		block_steps++;
		/* Block 1 walks the edges one TAP line each; the bulk blocks get one. */
		if (s->block == 1)
			tap_result(!bad, "replay script: incarnation %u, seq %llu -> %s", s->inc,
				   (unsigned long long)s->seq, replay_verdict_name(s->want));
		i++;
		if (s->block != 1 && (i == n || steps[i].fresh))
			tap_result(!block_bad, "replay script block %u: %d beats, each accepted or "
				   "refused as the window says (%d wrong)", s->block, block_steps,
				   block_bad);
	}
}

static const __u8 allow_in4[4] = { 198, 18, 5, 7 };
static const __u8 allow_lo4[4] = { 198, 18, 5, 0 };
static const __u8 allow_hi4[4] = { 198, 18, 5, 255 };
static const __u8 allow_below4[4] = { 198, 18, 4, 255 };
static const __u8 allow_above4[4] = { 198, 18, 6, 0 };
static const __u8 allow_other4[4] = { 198, 18, 6, 7 };
static const __u8 allow_in6[16] = { 0xfd, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 7 };
static const __u8 allow_out6[16] = { 0xfd, 0, 0, 0, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0, 7 };
static const __u8 allow_in4_mapped[16] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff,
					   198, 18, 5, 7 };

/* Allowlist agent: first beat gives UP. */
static const struct pkt_case allow_cases[] = {
	{ "allowlist: IPv4 source inside the group's 198.18.5.0/24: accepted, UP",
	  .f = { .saddr = allow_in4 }, .b = BEAT(AG_ALLOW, 1, 1, 2000),
	  ACCEPT(AG_ALLOW, VIGIL_AGENT_ALIVE), .ev = { VIGIL_EV_UP } },
	{ "allowlist: 198.18.5.0, the first address of the prefix: accepted",
	  .f = { .saddr = allow_lo4 }, .b = BEAT(AG_ALLOW, 2, 1, 2000),
	  ACCEPT(AG_ALLOW, VIGIL_AGENT_ALIVE) },
	{ "allowlist: 198.18.5.255, the last address of the prefix: accepted",
	  .f = { .saddr = allow_hi4 }, .b = BEAT(AG_ALLOW, 3, 1, 2000),
	  ACCEPT(AG_ALLOW, VIGIL_AGENT_ALIVE) },
	{ "allowlist: 198.18.4.255, just below: not_allowed +1 globally, REJECTED not_allowed, "
	  "the slot unchanged",
	  .f = { .saddr = allow_below4 }, .b = BEAT(AG_ALLOW, 4, 1, 2000), .verdict = XDP_DROP,
	  .agent = AG_ALLOW, .sc = SC_NONE, .reason = VIGIL_REJECT_NOT_ALLOWED,
	  .st = { .not_allowed = 1 } },
	{ "allowlist: 198.18.6.0, just above: not_allowed",
	  .f = { .saddr = allow_above4 }, .b = BEAT(AG_ALLOW, 4, 1, 2000), .verdict = XDP_DROP,
	  .agent = AG_ALLOW, .sc = SC_NONE, .reason = VIGIL_REJECT_NOT_ALLOWED,
	  .st = { .not_allowed = 1 } },
	{ "allowlist: 198.18.6.7, in another group's list only: not_allowed",
	  .f = { .saddr = allow_other4 }, .b = BEAT(AG_ALLOW, 4, 1, 2000), .verdict = XDP_DROP,
	  .agent = AG_ALLOW, .sc = SC_NONE, .reason = VIGIL_REJECT_NOT_ALLOWED,
	  .st = { .not_allowed = 1 } },
	{ "allowlist: checked before the tag: an unsigned beat from outside is not_allowed",
	  .f = { .saddr = allow_other4 }, .b = BEAT(AG_ALLOW, 4, 1, 2000), .sign = SIGN_NONE,
	  .verdict = XDP_DROP, .agent = AG_ALLOW, .sc = SC_NONE,
	  .reason = VIGIL_REJECT_NOT_ALLOWED, .st = { .not_allowed = 1 } },
	{ "allowlist: the same beat from inside, badly signed: bad_tag",
	  .f = { .saddr = allow_in4 }, .b = BEAT(AG_ALLOW, 4, 1, 2000), .sign = SIGN_WRONG,
	  REFUSE(AG_ALLOW, bad_tag, VIGIL_REJECT_BAD_TAG), .st = { .bad_tag = 1 } },
	{ "allowlist: IPv6 source inside fd00:0:0:5::/64: accepted",
	  .f = { .l3 = L3_IPV6, .saddr = allow_in6 }, .b = BEAT(AG_ALLOW, 4, 1, 2000),
	  ACCEPT(AG_ALLOW, VIGIL_AGENT_ALIVE) },
	{ "allowlist: IPv6 source in fd00:0:0:6::/64: not_allowed, REJECTED carries it",
	  .f = { .l3 = L3_IPV6, .saddr = allow_out6 }, .b = BEAT(AG_ALLOW, 5, 1, 2000),
	  .verdict = XDP_DROP, .agent = AG_ALLOW, .sc = SC_NONE,
	  .reason = VIGIL_REJECT_NOT_ALLOWED, .st = { .not_allowed = 1 } },
	{ "allowlist: IPv6 default source (fd00::2, no list entry): not_allowed",
	  .f = { .l3 = L3_IPV6 }, .b = BEAT(AG_ALLOW, 5, 1, 2000), .verdict = XDP_DROP,
	  .agent = AG_ALLOW, .sc = SC_NONE, .reason = VIGIL_REJECT_NOT_ALLOWED,
	  .st = { .not_allowed = 1 } },
	{ "allowlist: 198.18.5.7 (inside) mapped into IPv6, ::ffff:198.18.5.7: mapped_source, "
	  "not accepted",
	  .f = { .l3 = L3_IPV6, .saddr = allow_in4_mapped }, .b = BEAT(AG_ALLOW, 5, 1, 2000),
	  .verdict = XDP_DROP, .sc = SC_NONE, .reason = VIGIL_REJECT_MAPPED_SOURCE,
	  .st = { .mapped_source = 1 } },
	{ "allowlist: group 'anyv6' (allow ::/0): an IPv6 source is accepted",
	  .f = { .l3 = L3_IPV6, .saddr = allow_out6 }, .b = BEAT(AG_ALLOW_V6, 1, 1, 2000),
	  ACCEPT(AG_ALLOW_V6, VIGIL_AGENT_ALIVE), .ev = { VIGIL_EV_UP } },
	{ "allowlist: group 'anyv6' (allow ::/0): an IPv4 source is not_allowed (::/0 is all "
	  "of IPv6, none of IPv4)",
	  .b = BEAT(AG_ALLOW_V6, 2, 1, 2000), .verdict = XDP_DROP, .agent = AG_ALLOW_V6,
	  .sc = SC_NONE, .reason = VIGIL_REJECT_NOT_ALLOWED, .st = { .not_allowed = 1 } },
	{ "allowlist: an agent without the flag takes the same outside source: accepted",
	  .f = { .saddr = allow_other4 }, .b = BEAT(AG_A, 20, 2, 2000),
	  ACCEPT(AG_A, VIGIL_AGENT_ALIVE) },
};

static int allow_put(__u32 group_id, const __u8 *addr, int v6, __u32 plen)
{
	struct allow_key k = { .group_id = group_id, .family = v6 ? 6 : 4,
			       .prefixlen = VIGIL_ALLOW_PREFIX_BASE + plen };
	__u32 one = 1;

	memcpy(k.addr, addr, v6 ? 16 : 4);
	return bpf_map_update_elem(maps.allow, &k, &one, BPF_ANY);
}

static void run_allowlist_cases(void)
{
	static const __u8 net4[4] = { 198, 18, 5, 0 }, other4[4] = { 198, 18, 6, 0 };
	static const __u8 net6[16] = { 0xfd, 0, 0, 0, 0, 0, 0, 5 };
	struct group_policy edge = { .flags = VIGIL_AUTH_ALLOWLIST, .name = "edge" };
	struct group_policy other = { .flags = VIGIL_AUTH_ALLOWLIST, .name = "other" };
	struct group_policy anyv6 = { .flags = VIGIL_AUTH_ALLOWLIST, .name = "anyv6" };
	__u32 edge_id = vigil_group_id("edge", VIGIL_GROUP_LEN);
	__u32 other_id = vigil_group_id("other", VIGIL_GROUP_LEN);
	__u32 anyv6_id = vigil_group_id("anyv6", VIGIL_GROUP_LEN);
	static const __u8 any6[16];
	struct allow_key k, next;
	struct agent_auth a;
	struct vg_agent s;
	__u32 slot;
	int err;

	err = bpf_map_update_elem(maps.groups, &edge_id, &edge, BPF_ANY) ||
	      bpf_map_update_elem(maps.groups, &other_id, &other, BPF_ANY) ||
	      allow_put(edge_id, net4, 0, 24) || allow_put(edge_id, net6, 1, 64) ||
	      allow_put(other_id, other4, 0, 24) ||
	      bpf_map_update_elem(maps.groups, &anyv6_id, &anyv6, BPF_ANY) ||
	      allow_put(anyv6_id, any6, 1, 0);
	if (!err)
		err = add_agent_keys(AG_ALLOW, PKT_MIN_MS, PKT_MAX_MS, PKT_MULT, NULL, 1, "edge") ||
		      add_agent_keys(AG_ALLOW_V6, PKT_MIN_MS, PKT_MAX_MS, PKT_MULT, NULL, 1, "anyv6");
	if (!err) {
		watch_add(AG_ALLOW);
		watch_add(AG_ALLOW_V6);
		err = vg_agent_get(&maps, AG_ALLOW, &slot, &s) ||
		      vg_agent_get_auth(&maps, slot, &a);
	}
	if (!tap_result(!err && a.flags == VIGIL_AUTH_ALLOWLIST && a.group_id == edge_id,
			"allowlist: group 'edge' (198.18.5.0/24, fd00:0:0:5::/64) and an agent "
			"registered in it, with VIGIL_AUTH_ALLOWLIST from vigil_groups"))
		return;
	for (size_t i = 0; i < sizeof(allow_cases) / sizeof(allow_cases[0]); i++)
		run_pkt_case(&allow_cases[i]);

	/* Leave no policy behind for the phases that follow. */
	while (!bpf_map_get_next_key(maps.allow, NULL, &next)) {
		k = next;
		if (bpf_map_delete_elem(maps.allow, &k))
			break;
	}
	bpf_map_delete_elem(maps.groups, &edge_id);
	bpf_map_delete_elem(maps.groups, &other_id);
	bpf_map_delete_elem(maps.groups, &anyv6_id);
}

/* The agent's own rate: rate_multiple x its advertised rate, rate_burst
 * beats of burst, for authentic beats only. */
static void run_agent_rate_cases(void)
{
	struct vigil_config rc = table_cfg, dc = base_cfg;
	struct vigil_beat_info b = BEAT(AG_RATE, 1, 1, 1000);
	struct pkt_case c;
	__u64 start, t;
	int bad;
	char *d;

	rc.rate_multiple = 4; /* 1000 ms advertised: one beat per 250 ms ... */
	rc.rate_burst = 3;    /* ... and 3 more at once: 4 in a burst */
	/* The daemon's limits, every refusal reported. */
	dc.reject_events_per_sec = table_cfg.reject_events_per_sec;
	if (!tap_result(!add_agent(AG_RATE, 10, PKT_MAX_MS, PKT_MULT, NULL),
			"agent rate: agent registered"))
		return;
	watch_add(AG_RATE);
	start = vg_mono_ns();
	for (int i = 1; i <= 4; i++) {
		b.seq = i;
		c = (struct pkt_case){ .b = b, ACCEPT(AG_RATE, VIGIL_AGENT_ALIVE), .interval = 1000,
				       .cfg = &rc, .ev = { i == 1 ? VIGIL_EV_UP : 0 } };
		run_pkt_case_desc(&c, d = xasprintf("agent rate: beat %d of a burst (rate_multiple "
						    "4 x 1 per 1000 ms, rate_burst 3): accepted", i));
		free(d);
	}
	for (int i = 5; i <= 6; i++) {
		b.seq = i;
		c = (struct pkt_case){ .b = b, REFUSE(AG_RATE, over_rate,
						     VIGIL_REJECT_OVER_RATE_AGENT),
				       .st = { .over_rate_agent = 1 }, .cfg = &rc };
		run_pkt_case_desc(&c, d = xasprintf("agent rate: beat %d of the burst: over_rate "
						    "+1, REJECTED over_rate_agent, nothing else", i));
		free(d);
	}
	t = vg_mono_ns();
	if (t - start >= 250 * MS)
		note("the burst took %.1f ms, more than one emission interval: expect noise",
		     (t - start) / 1e6);
	/* One emission interval later there is room for exactly one more. */
	sleep_until(start + 250 * MS + 20 * MS);
	b.seq = 7;
	c = (struct pkt_case){ .b = b, ACCEPT(AG_RATE, VIGIL_AGENT_ALIVE), .interval = 1000,
			       .cfg = &rc };
	run_pkt_case_desc(&c, "agent rate: 270 ms later (one emission interval): accepted");
	b.seq = 8;
	c = (struct pkt_case){ .b = b, REFUSE(AG_RATE, over_rate, VIGIL_REJECT_OVER_RATE_AGENT),
			       .st = { .over_rate_agent = 1 }, .cfg = &rc };
	run_pkt_case_desc(&c, "agent rate: ... and the one right after it: over_rate");
	b.seq = 9;
	c = (struct pkt_case){ .b = b, .sign = SIGN_WRONG,
			       REFUSE(AG_RATE, bad_tag, VIGIL_REJECT_BAD_TAG),
			       .st = { .bad_tag = 1 }, .cfg = &rc };
	run_pkt_case_desc(&c, "agent rate: a forgery is refused as bad_tag before the rate is "
			  "looked at");

	/* Adaptive cadence: an agent that shortens its interval is limited by
	 * what it now announces (bpf/checks.bpf.h, check_replay). */
	if (!tap_result(!add_agent(AG_RATE2, 10, PKT_MAX_MS, PKT_MULT, NULL),
			"agent rate: second agent registered"))
		return;
	watch_add(AG_RATE2);
	b = (struct vigil_beat_info)BEAT(AG_RATE2, 1, 1, 1000);
	c = (struct pkt_case){ .b = b, ACCEPT(AG_RATE2, VIGIL_AGENT_ALIVE), .interval = 1000,
			       .ev = { VIGIL_EV_UP }, .cfg = &dc };
	run_pkt_case_desc(&c, "agent rate, default limits: a beat announcing 1000 ms: accepted");
	b.seq = 2;
	b.interval_ms = 10;
	c = (struct pkt_case){ .b = b, ACCEPT(AG_RATE2, VIGIL_AGENT_ALIVE), .interval = 10,
			       .cfg = &dc };
	bad = pkt_case_check(&c);
	tap_result(!bad, "agent rate, default limits: the next beat, 1 ms later, announcing 10 ms, "
		   "is accepted (adaptive cadence: the debt is rescaled to the new interval)");
}

/* The per-source limit: one address cannot make the beat path do more than
 * source_pps (plus source_burst) datagrams' work, except the agents whose
 * newest accepted beat came from it: a datagram that names such an agent
 * from its own address is judged on its content (agent_keys.beat_src). */
static void run_source_rate_cases(void)
{
	static const __u8 src1[4] = { 198, 18, 9, 1 }, src2[4] = { 198, 18, 9, 2 };
	static const __u8 src3[4] = { 198, 18, 9, 3 };
	static const __u8 mapped3[16] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 198, 18, 9, 3 };
	static const __u8 src6[16] = { 0xfd, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 1 };
	struct vigil_config sc = table_cfg;
	struct source_key k;
	struct pkt_case c;
	__u64 seq = 21, seq_c = 10, refused_seq;
	char *d;

	sc.source_pps = 1;   /* one datagram a second ... */
	sc.source_burst = 3; /* ... and 3 more at once: 4 in a burst */
	c = (struct pkt_case){ .b = BEAT(AG_C, seq_c, 1, 2000), ACCEPT(AG_C, VIGIL_AGENT_ALIVE),
			       .cfg = &sc };
	run_pkt_case_desc(&c, "source rate: agent 1003 beats from its usual address");
	c = (struct pkt_case){ .f = { .saddr = src1 }, .b = BEAT(AG_A, seq, 2, 2000),
			       ACCEPT(AG_A, VIGIL_AGENT_ALIVE), .cfg = &sc };
	seq++;
	run_pkt_case_desc(&c, "source rate: datagram 1 from 198.18.9.1 (source_pps 1, "
			  "source_burst 3), agent 1001's first beat from there: accepted");
	for (int i = 2; i <= 4; i++) {
		c = (struct pkt_case){ .f = { .saddr = src1 }, .b = BEAT(AG_UNKNOWN, i, 1, 2000),
				       .sign = SIGN_NONE, .verdict = XDP_DROP, .sc = SC_NONE,
				       .reason = VIGIL_REJECT_UNKNOWN_AGENT,
				       .st = { .unknown_agent = 1 }, .cfg = &sc };
		run_pkt_case_desc(&c, d = xasprintf("source rate: datagram %d from 198.18.9.1, an "
						    "unknown agent: unknown_agent", i));
		free(d);
	}
	c = (struct pkt_case){ .f = { .saddr = src1 }, .b = BEAT(AG_UNKNOWN, 5, 1, 2000),
			       .sign = SIGN_NONE, .verdict = XDP_DROP, .sc = SC_NONE,
			       .reason = VIGIL_REJECT_OVER_RATE_SOURCE,
			       .st = { .over_rate_source = 1 }, .cfg = &sc };
	run_pkt_case_desc(&c, "source rate: datagram 5: over_rate_source +1, REJECTED naming "
			  "the id it carries, no slot changes");
	c.b = (struct vigil_beat_info)BEAT(AG_UNKNOWN, 6, 1, 2000);
	c.patch = (struct beat_patch){ .off = 0, .len = 2, .val = 0 };
	run_pkt_case_desc(&c, "source rate: datagram 6, not even a beat: over_rate_source, "
			  "not malformed");
	seq_c += 2;
	refused_seq = seq_c;
	c = (struct pkt_case){ .f = { .saddr = src1 }, .b = BEAT(AG_C, refused_seq, 1, 2000),
			       .verdict = XDP_DROP, .sc = SC_NONE,
			       .reason = VIGIL_REJECT_OVER_RATE_SOURCE,
			       .st = { .over_rate_source = 1 }, .cfg = &sc };
	run_pkt_case_desc(&c, "source rate: agent 1003's signed beat from 198.18.9.1, not its "
			  "address: over_rate_source, no slot changes");
	for (int i = 1; i <= 6; i++) {
		c = (struct pkt_case){ .f = { .saddr = src1 }, .b = BEAT(AG_A, seq, 2, 2000),
				       ACCEPT(AG_A, VIGIL_AGENT_ALIVE), .cfg = &sc };
		seq++;
		run_pkt_case_desc(&c, d = xasprintf("source rate: agent 1001's beat %d from its "
						    "own address, which is over its rate: "
						    "accepted", i));
		free(d);
	}
	c = (struct pkt_case){ .f = { .saddr = src1 }, .b = BEAT(AG_A, seq, 2, 2000),
			       .sign = SIGN_WRONG, REFUSE(AG_A, bad_tag, VIGIL_REJECT_BAD_TAG),
			       .st = { .bad_tag = 1 }, .cfg = &sc };
	run_pkt_case_desc(&c, "source rate: a forgery naming agent 1001 from its address is "
			  "judged on its tag: bad_tag, not over_rate_source");
	c = (struct pkt_case){ .f = { .saddr = src2 }, .b = BEAT(AG_A, seq, 2, 2000),
			       ACCEPT(AG_A, VIGIL_AGENT_ALIVE), .cfg = &sc };
	seq++;
	run_pkt_case_desc(&c, "source rate: meanwhile another source (198.18.9.2) is accepted");
	c = (struct pkt_case){ .f = { .l3 = L3_IPV6, .saddr = src6 },
			       .b = BEAT(AG_A, seq, 2, 2000), ACCEPT(AG_A, VIGIL_AGENT_ALIVE),
			       .cfg = &sc };
	seq++;
	run_pkt_case_desc(&c, "source rate: ... and an IPv6 source is accepted");
	c = (struct pkt_case){ .f = { .saddr = src1 }, .b = BEAT(AG_A, seq, 2, 2000),
			       .verdict = XDP_DROP, .sc = SC_NONE,
			       .reason = VIGIL_REJECT_OVER_RATE_SOURCE,
			       .st = { .over_rate_source = 1 }, .cfg = &sc };
	run_pkt_case_desc(&c, "source rate: agent 1001 moved to another address: from "
			  "198.18.9.1 it is over_rate_source again");
	c = (struct pkt_case){ .f = { .dport = 4748, .saddr = src1 },
			       .b = BEAT(AG_A, seq, 2, 2000), .verdict = XDP_PASS, .sc = SC_NONE,
			       .st = { .passed = 1 }, .cfg = &sc };
	run_pkt_case_desc(&c, "source rate: the limited source's traffic to other ports "
			  "passes, uncounted by the limit");
	c = (struct pkt_case){ .b = BEAT(AG_C, refused_seq + 1, 1, 2000),
			       ACCEPT(AG_C, VIGIL_AGENT_ALIVE), .cfg = &sc };
	run_pkt_case_desc(&c, "source rate: agent 1003's next beat from its usual address is "
			  "accepted");
	c = (struct pkt_case){ .b = { .agent_id = AG_C, .seq = refused_seq, .incarnation = 1,
				      .interval_ms = 2000, .status = VIGIL_STATUS_LEAVING },
			       LATE(AG_C) };
	run_pkt_case_desc(&c, "the beat refused for its source's rate never reached the window: "
			  "sent again, it is accepted late; and a late LEAVING does not make an "
			  "agent that beat since LEFT");
	seq++;

	/* An IPv6 datagram from ::ffff:198.18.9.3 would read as IPv4 source
	 * 198.18.9.3: same rate state, same allowlist entries. Refused first. */
	for (int i = 1; i <= 5; i++) {
		c = (struct pkt_case){ .f = { .l3 = L3_IPV6, .saddr = mapped3 },
				       .b = BEAT(AG_A, 1000 + i, 2, 2000), .sign = SIGN_NONE,
				       .verdict = XDP_DROP, .sc = SC_NONE,
				       .reason = VIGIL_REJECT_MAPPED_SOURCE,
				       .st = { .mapped_source = 1 }, .cfg = &sc };
		run_pkt_case_desc(&c, d = xasprintf("IPv4-mapped source: unsigned IPv6 datagram %d "
						    "from ::ffff:198.18.9.3: mapped_source +1, "
						    "REJECTED without agent, nothing else", i));
		free(d);
	}
	seq++;
	c = (struct pkt_case){ .f = { .saddr = src3 }, .b = BEAT(AG_A, seq, 2, 2000),
			       ACCEPT(AG_A, VIGIL_AGENT_ALIVE), .cfg = &sc };
	run_pkt_case_desc(&c, "IPv4-mapped source: after those 5, the agent's signed beat from "
			  "IPv4 198.18.9.3 is accepted (its source budget, 4 in a burst, is "
			  "untouched)");
	seq++;
	c = (struct pkt_case){ .f = { .l3 = L3_IPV6, .saddr = mapped3 },
			       .b = BEAT(AG_A, seq, 2, 2000), .verdict = XDP_DROP, .sc = SC_NONE,
			       .reason = VIGIL_REJECT_MAPPED_SOURCE, .st = { .mapped_source = 1 } };
	run_pkt_case_desc(&c, "IPv4-mapped source: a correctly signed beat over IPv6 from "
			  "::ffff:198.18.9.3 is refused all the same");

	/* These sources' rate state would outlive the test config. */
	memset(&k, 0, sizeof(k));
	k.addr[10] = k.addr[11] = 0xff;
	memcpy(k.addr + 12, src1, 4);
	bpf_map_delete_elem(maps.sources, &k);
	memcpy(k.addr + 12, src2, 4);
	bpf_map_delete_elem(maps.sources, &k);
	memcpy(k.addr + 12, src3, 4);
	bpf_map_delete_elem(maps.sources, &k);
	memcpy(k.addr, src6, 16);
	bpf_map_delete_elem(maps.sources, &k);
}

/* Wait until the REJECTED-event window open now (if any) has closed, so the
 * next refusal opens a fresh one. */
static void await_fresh_reject_window(void)
{
	struct vigil_globals g;

	if (!read_globals(&g) && g.reject_window_ns)
		sleep_until(g.reject_window_ns + VIGIL_NSEC_PER_SEC + MS);
}

/* A flood of refusals: every one counted, at most reject_events_per_sec
 * reported per second, and the next second reports again. */
static void run_reject_cap(void)
{
	static const __u8 src6[16] = { 0xfd, 0, 0, 0, 0, 0, 0, 0x11, 0, 0, 0, 0, 0, 0, 0, 5 };
	const int n = 50;
	struct vigil_config cc = table_cfg;
	struct vigil_key wk = wrong_key;
	struct vg_agent s0, s1;
	__u8 want_src[16];

	cc.reject_events_per_sec = 10;
	if (cfg_write(&cc)) {
		tap_result(false, "reject cap: writing vigil_config: %s", strerror(errno));
		return;
	}
	for (int round = 0; round < 2; round++) {
		struct frame_spec f = round ? (struct frame_spec){ .l3 = L3_IPV6, .saddr = src6 } :
					      (struct frame_spec){ .key = &wk };
		struct vigil_beat_info b = round ? (struct vigil_beat_info)BEAT(AG_UNKNOWN + 1, 1, 1, 2000) :
						   (struct vigil_beat_info)BEAT(AG_A, 100, 2, 2000);
		struct vigil_stats st0, st1, want = { .packets = n, .events = cc.reject_events_per_sec };
		struct vigil_globals g0, g1;
		__u64 t0, t1, first = 0, last = 0;
		size_t ev0, ev1;
		int bad = 0, verdicts = 0, wrong = 0;
		__u8 frame[PKT_MAX];

		if (round)
			want.unknown_agent = n;
		else
			want.bad_tag = n;
		frame_src_mapped(&f, want_src);
		await_fresh_reject_window();
		ev0 = drain();
		vg_stats_read(&maps, &st0);
		read_globals(&g0);
		vg_agent_get(&maps, AG_A, NULL, &s0);
		for (int i = 0; i < n; i++) {
			size_t len;

			b.seq = 100 + i;
			len = build_frame(frame, &f, &b, NULL);
			verdicts += xdp_run(frame, len, &t0, &t1) == XDP_DROP;
			if (!i)
				first = t0;
			last = t1;
		}
		vg_stats_read(&maps, &st1);
		read_globals(&g1);
		vg_agent_get(&maps, AG_A, NULL, &s1);
		drain();
		settle(g0.event_seq, g1.event_seq, ev0);
		ev1 = ev_n;
		if (verdicts != n)
			bad++, note("%d of %d verdicts were XDP_DROP", verdicts, n);
		if (last - first >= VIGIL_NSEC_PER_SEC)
			note("the flood took %.0f ms: it spans two windows", (last - first) / 1e6);
		if (ev1 - ev0 != cc.reject_events_per_sec)
			bad++, note("%zu records, want exactly %u", ev1 - ev0, cc.reject_events_per_sec);
		for (size_t i = ev0; i < ev1; i++) {
			const struct vigil_event *e = &evlog[i];

			wrong += e->kind != VIGIL_EV_REJECTED || e->agent_id != b.agent_id ||
				 e->reason != (round ? VIGIL_REJECT_UNKNOWN_AGENT : VIGIL_REJECT_BAD_TAG) ||
				 memcmp(e->src_addr, want_src, 16) ||
				 e->event_seq != g0.event_seq + 1 + (i - ev0) +
							 health_between(g0.event_seq, e->event_seq) ||
				 e->detected_ns < first || e->detected_ns > last;
		}
		if (wrong)
			bad++, note("%d records are not the flood's REJECTED records, in order", wrong);
		if (g1.event_seq - g0.event_seq - health_between(g0.event_seq, g1.event_seq) !=
		    cc.reject_events_per_sec)
			bad++, note("event_seq rose by %llu", (unsigned long long)(g1.event_seq - g0.event_seq));
		events_slack = health_between(g0.event_seq > 2 ? g0.event_seq - 2 : 0, g1.event_seq + 2);
		bad += stats_diff(&st0, &st1, &want);
		s0.i.bad_tag += round ? 0 : n;
		bad += slot_diff(AG_A, &s0, &s1);
		tap_result(!bad, "reject cap: %d %s at once: all DROP and counted, exactly "
			   "reject_events_per_sec=%u REJECTED records (%s, source, agent), event_seq "
			   "without gaps", n, round ? "unknown-agent beats over IPv6 in the next second" :
			   "forged beats", cc.reject_events_per_sec,
			   round ? "unknown_agent" : "bad_tag");
	}
	if (cfg_write(&table_cfg))
		tap_result(false, "reject cap: restoring vigil_config: %s", strerror(errno));
}

/* ---------------------------------------------------- SipHash in the kernel */

/* The reference vectors through the test-only syscall program, i.e. the
 * verifier-accepted, JIT-compiled vigil_siphash24() the XDP program inlines.
 * A syscall program's context is copied back into ctx_in after the run
 * (BPF_PROG_TEST_RUN refuses ctx_out for this program type). */
static void run_siphash_vectors(void)
{
	struct siphash_test *st = siphash_test__open_and_load();
	int fd, bad = 0;

	if (!tap_result(st != NULL, "siphash: the test program (vigil_siphash24 for lengths "
			"0..63) passes the verifier")) {
		note("re-run with VIGIL_TEST_VERBOSE=1 for the verifier log");
		return;
	}
	fd = bpf_program__fd(st->progs.siphash_vector);
	for (__u32 len = 0; len <= SIPVEC_N; len++) {
		struct sipvec_ctx c = { .len = len, .out = 0xdeadbeefULL };
		LIBBPF_OPTS(bpf_test_run_opts, o, .ctx_in = &c, .ctx_size_in = sizeof(c));
		int err;

		sipvec_input(c.key, c.data);
		err = bpf_prog_test_run_opts(fd, &o);
		if (len == SIPVEC_N) {
			tap_result(!err && o.retval == 1, "siphash: length 64 is refused by the test "
				   "program (retval %u)", o.retval);
			break;
		}
		bad = err || o.retval || c.out != sipvec_want[len];
		tap_result(!bad, "siphash in BPF: reference vector %u (%u-byte input) = "
			   "0x%016llx (got 0x%016llx%s)", len, len,
			   (unsigned long long)sipvec_want[len], (unsigned long long)c.out,
			   err ? ", run failed" : o.retval ? ", bad retval" : "");
	}
	siphash_test__destroy(st);
}

/* ------------------------------------------------------------ key files */

static int write_file(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode), ok;

	if (fd < 0)
		return -1;
	ok = write(fd, text, strlen(text)) == (ssize_t)strlen(text);
	fchmod(fd, mode);
	close(fd);
	return ok ? 0 : -1;
}

/* user/common/keys.c, linked into this program with the rest of user/: the key
 * file format, and that its byte order is the one the SipHash reference
 * uses (key bytes 00 01 .. 0f). */
static void run_keyfile_cases(void)
{
	static const struct { const char *text; const char *why; } bad_files[] = {
		{ "7 0 00112233445566778899aabbccddeef\n", "31 hex digits" },
		{ "7 0 00112233445566778899aabbccddeeff0\n", "33 hex digits" },
		{ "7 0 00112233445566778899aabbccddeeg0\n", "a non-hex digit" },
		{ "7 2 00112233445566778899aabbccddeeff\n", "key id 2" },
		{ "0 0 00112233445566778899aabbccddeeff\n", "agent id 0" },
		{ "-7 0 00112233445566778899aabbccddeeff\n", "a negative agent id" },
		{ "18446744073709551616 0 00112233445566778899aabbccddeeff\n", "agent id 2^64" },
		{ "7 0\n", "two fields" },
		{ "7 0 00112233445566778899aabbccddeeff x\n", "four fields" },
		{ "7 0 00112233445566778899aabbccddeeff\n7 0 ffeeddccbbaa99887766554433221100\n",
		  "the same key twice" },
	};
	char dir[] = "/tmp/vigil-test-keys.XXXXXX", path[64];
	struct vg_keyfile kf;
	const struct agent_auth *a7, *a8;
	struct vigil_key k;
	char hex[33];
	__u8 data[SIPVEC_N], kb[16];
	int ok, bad;

	ok = !vg_key_parse("000102030405060708090a0b0c0d0e0f", &k) &&
	     k.k0 == 0x0706050403020100ULL && k.k1 == 0x0f0e0d0c0b0a0908ULL;
	sipvec_input(kb, data);
	bad = 0;
	for (int n = 0; ok && n < SIPVEC_N; n++)
		bad += vigil_siphash24(data, n, &k) != sipvec_want[n];
	vg_key_format(&k, hex);
	tap_result(ok && !bad && !strcmp(hex, "000102030405060708090a0b0c0d0e0f"),
		   "keys: '000102..0f' parses to the reference key (byte 0 first; all 64 vectors "
		   "match with it) and formats back to the same text");
	ok = !vg_key_parse("00112233445566778899AABBCCDDEEFF", &k);
	vg_key_format(&k, hex);
	tap_result(ok && !strcmp(hex, "00112233445566778899aabbccddeeff"),
		   "keys: upper-case hex is accepted and formats as lower case");

	if (!mkdtemp(dir)) {
		tap_result(false, "keys: mkdtemp: %s", strerror(errno));
		return;
	}
	snprintf(path, sizeof(path), "%s/keys", dir);
	write_file(path, "# agent key-id key\n\n7 0 000102030405060708090a0b0c0d0e0f\n"
		   "  7 1 ffeeddccbbaa99887766554433221100  # next\n8 1 "
		   "00112233445566778899aabbccddeeff\r\n", 0600);
	ok = !vg_keyfile_load(path, true, &kf);
	a7 = ok ? vg_keyfile_get(&kf, 7) : NULL;
	a8 = ok ? vg_keyfile_get(&kf, 8) : NULL;
	tap_result(ok && a7 && a8 && !vg_keyfile_get(&kf, 9) && a7->valid == 3 && a8->valid == 2 &&
		   a7->key[0].k0 == 0x0706050403020100ULL && a7->key[1].k0 == 0x8899aabbccddeeffULL &&
		   a8->key[1].k1 == 0xffeeddccbbaa9988ULL,
		   "keys: a root-owned 0600 file with comments, blank lines, indentation and CRLF: "
		   "agent 7 keys 0 and 1, agent 8 key 1, nothing for agent 9");
	if (ok)
		vg_keyfile_free(&kf);
	chmod(path, 0644);
	tap_result(vg_keyfile_load(path, true, &kf) == -1,
		   "keys: the monitor (strict) refuses the same file with mode 0644");
	tap_result(vg_keyfile_load(path, false, &kf) == -1,
		   "keys: an agent (not strict) refuses it too: others can read it");
	chmod(path, 0600);
	ok = !vg_keyfile_load(path, false, &kf);
	tap_result(ok, "keys: an agent (not strict) reads it at mode 0600");
	if (ok)
		vg_keyfile_free(&kf);
	for (size_t i = 0; i < sizeof(bad_files) / sizeof(bad_files[0]); i++) {
		write_file(path, bad_files[i].text, 0600);
		tap_result(vg_keyfile_load(path, false, &kf) == -1,
			   "keys: a file with %s is refused", bad_files[i].why);
	}
	unlink(path);
	rmdir(dir);
}

/* ------------------------------------------------------------- driver */

/* Leases replicated between monitors (docs/leases.md): the holder's beats
 * renew a lease up to the granting monitor's term in vigil_lease_terms,
 * never past it; without a term (0) as far as the duration. */
static void run_lease_term_cases(void)
{
	const __u64 id = 9100;
	const __u32 lease = 9;
	struct vigil_key k = agent_key(id, 0);
	struct frame_spec f = { .key = &k };
	struct vigil_beat_info b = { .agent_id = id, .incarnation = 1, .interval_ms = 100,
				     .lease_id = lease };
	struct lease_slot l = { .holder = id, .token = 1, .duration_ms = 1000,
				.state = VIGIL_LEASE_HELD };
	__u8 frame[PKT_MAX];
	__u64 t0, t1, term, zero64 = 0, exp1, exp2;
	bool ok;

	if (!tap_result(!add_agent(id, 10, PKT_MAX_MS, PKT_MULT, NULL), "lease term: agent registered"))
		return;
	/* Granted as the daemon does under a term: expiring by the term at the
	 * latest (here sooner). */
	l.granted_ns = vg_mono_ns();
	l.expires_ns = l.granted_ns + 100 * VIGIL_NSEC_PER_MSEC;
	term = l.granted_ns + 300 * VIGIL_NSEC_PER_MSEC;
	ok = !bpf_map_update_elem(maps.leases, &lease, &l, BPF_ANY) &&
	     !bpf_map_update_elem(maps.lease_terms, &lease, &term, BPF_ANY);
	b.seq = 1;
	ok = ok && xdp_run(frame, build_frame(frame, &f, &b, NULL), &t0, &t1) == XDP_DROP &&
	     !bpf_map_lookup_elem(maps.leases, &lease, &l);
	exp1 = l.expires_ns;
	tap_result(ok && l.state == VIGIL_LEASE_HELD && exp1 == term && l.renewals == 1,
		   "lease term: the holder's beat renews a 1000 ms lease only up to the granting "
		   "monitor's term, 300 ms away (expires %+.1f ms from the term)",
		   ((double)exp1 - (double)term) / 1e6);
	/* The term ended: a renewal never moves the expiry earlier either. */
	term = vg_mono_ns() - 1;
	b.seq = 2;
	ok = !bpf_map_update_elem(maps.lease_terms, &lease, &term, BPF_ANY) &&
	     xdp_run(frame, build_frame(frame, &f, &b, NULL), &t0, &t1) == XDP_DROP &&
	     !bpf_map_lookup_elem(maps.leases, &lease, &l);
	tap_result(ok && l.expires_ns == exp1 && l.state == VIGIL_LEASE_HELD,
		   "lease term: with the term over, a renewing beat leaves the expiry where it was");
	b.seq = 3;
	ok = !bpf_map_update_elem(maps.lease_terms, &lease, &zero64, BPF_ANY) &&
	     xdp_run(frame, build_frame(frame, &f, &b, NULL), &t0, &t1) == XDP_DROP &&
	     !bpf_map_lookup_elem(maps.leases, &lease, &l);
	exp2 = l.expires_ns;
	tap_result(ok && exp2 >= t0 + 1000 * VIGIL_NSEC_PER_MSEC &&
			   exp2 <= t1 + 1000 * VIGIL_NSEC_PER_MSEC,
		   "lease term: no term (0, a lease one monitor grants alone): renewed by the full "
		   "duration");
	l = (struct lease_slot){};
	bpf_map_update_elem(maps.leases, &lease, &l, BPF_ANY);
	vg_agent_remove(&maps, id);
	drain();
}

static void run_packet_tests(void)
{
	struct vg_agent a0;
	struct agent_slot s;
	__u64 t0, t1;
	int bad = 0;

	if (cfg_write(&table_cfg)) {
		tap_result(false, "writing the table config: %s", strerror(errno));
		return;
	}
	t0 = vg_mono_ns();
	for (size_t i = 0; i < N_PKT_AGENTS; i++) {
		int err = add_agent(pkt_agents[i], PKT_MIN_MS, PKT_MAX_MS, PKT_MULT, NULL);

		if (err)
			bad++, note("vg_agent_add(%llu): %s", (unsigned long long)pkt_agents[i],
				    strerror(-err));
		else
			watch_add(pkt_agents[i]);
	}
	t1 = vg_mono_ns();
	for (size_t i = 0; !bad && i < N_PKT_AGENTS; i++) {
		struct agent_auth a;
		struct vigil_key k0 = agent_key(pkt_agents[i], 0), k1 = agent_key(pkt_agents[i], 1);
		__u32 slot;

		if (vg_agent_get(&maps, pkt_agents[i], &slot, &a0) ||
		    vg_agent_get_auth(&maps, slot, &a)) {
			bad++, note("agent %llu not found", (unsigned long long)pkt_agents[i]);
			continue;
		}
		s = a0.s;
		if (s.state != VIGIL_AGENT_NEW || s.last_seen_ns < t0 || s.last_seen_ns > t1 ||
		    s.interval_ms != PKT_MAX_MS || s.beats || s.replay.top)
			bad++, note("agent %llu: state %s last_seen %llu interval %u beats %llu",
				    (unsigned long long)pkt_agents[i], state_name(s.state),
				    (unsigned long long)s.last_seen_ns, s.interval_ms,
				    (unsigned long long)s.beats);
		if (a.valid != 1 || memcmp(&a.key[0], &k0, sizeof(k0)) ||
		    memcmp(&a.key[1], &k1, sizeof(k1)) || a.flags ||
		    a.group_id != vigil_group_id("default", VIGIL_GROUP_LEN))
			bad++, note("agent %llu: vigil_auth holds valid %u flags %u group %u",
				    (unsigned long long)pkt_agents[i], a.valid, a.flags, a.group_id);
		if (s.replay.started || s.replay.seen || s.rate_tat || s.rate_interval_ms)
			bad++, note("agent %llu: replay window or rate not zeroed",
				    (unsigned long long)pkt_agents[i]);
	}
	if (!tap_result(!bad, "registration: %zu agents NEW, deadline from registration at the "
			"maximum interval; their keys in vigil_auth, a fresh replay window and rate",
			N_PKT_AGENTS))
		return;
	tap_result(add_agent(0, PKT_MIN_MS, PKT_MAX_MS, PKT_MULT, NULL) == -EINVAL &&
			   vg_agent_get(&maps, 0, NULL, &a0) == -ENOENT,
		   "registration: agent id 0 (\"no agent\") is refused with EINVAL, nothing added");

	for (size_t i = 0; i < sizeof(pkt_cases) / sizeof(pkt_cases[0]); i++)
		run_pkt_case(&pkt_cases[i]);
	run_truncation_cases();
	for (size_t i = 0; i < sizeof(key_cases) / sizeof(key_cases[0]); i++)
		run_pkt_case(&key_cases[i]);
	run_bit_flips();
	run_allowlist_cases();
	run_placement_cases();
	run_source_rate_cases();
	run_agent_rate_cases();
	run_replay_script();
	run_floor_cases();
	run_reject_cap();

	unwatch_all();
	if (cfg_write(&base_cfg))
		tap_result(false, "restoring the default config: %s", strerror(errno));
}


/* ------------------------------------------------------- torn values */

/*
 * Values the daemon rewrites while XDP reads them (issue 14, item 3): a
 * writer thread swaps an agent's keys and re-grants a lease as fast as it
 * can while beats run through vigil_xdp, for TORN_SECONDS. Every grant it
 * writes pairs an odd token with holder AG_TORN and an even one with
 * AG_TORN2; both key sets take the beats signed with TORN_KEY_SHARED (key 1),
 * each has its own key 0. So:
 *  - an acknowledgement always names a holder that matches its token's
 *    parity (never the new holder with the old token);
 *  - an acknowledgement always verifies with the key its beat was signed
 *    with (the key set did not change under the beat);
 *  - a beat signed with key 0 of set A is accepted only if set A was in
 *    force, so never with set B's key 0 tag in its ack;
 *  - a DRAINING beat of AG_TORN releases only a grant to AG_TORN (odd
 *    token), never AG_TORN2's.
 */
#define AG_TORN 0x5c0001ULL
#define AG_TORN2 0x5c0002ULL
#define TORN_LEASE 9
#define TORN_SECONDS 3

static volatile int torn_stop;
static __u64 torn_swaps, torn_grants;

static struct agent_auth torn_set(int which)
{
	struct agent_auth a = { .valid = 3, .flags = VIGIL_AUTH_ACK,
				.group_id = vigil_group_id("default", VIGIL_GROUP_LEN) };

	a.key[0] = agent_key(AG_TORN, 10 + which);
	a.key[1] = agent_key(AG_TORN, 1);
	return a;
}

static void *torn_writer(void *arg)
{
	__u32 slot = *(__u32 *)arg, id = TORN_LEASE;

	for (__u64 n = 1; !torn_stop; n++) {
		struct lease_slot l = {
			.holder = n & 1 ? AG_TORN : AG_TORN2, .token = n,
			.expires_ns = vg_mono_ns() + 60 * VIGIL_NSEC_PER_SEC,
			.granted_ns = vg_mono_ns(), .duration_ms = 60000,
			.state = VIGIL_LEASE_HELD,
		};
		struct agent_auth a = torn_set((n >> 4) & 1);

		/* As the daemon grants (grants.c) and reloads keys (keys.c). */
		if (bpf_map_update_elem(maps.leases, &id, &l, BPF_F_LOCK) == 0)
			torn_grants++;
		if ((n & 15) == 0 && vg_agent_set_auth(&maps, slot, &a) == 0)
			torn_swaps++;
	}
	return NULL;
}

/* Run a frame and keep what comes back (an acknowledgement, for XDP_TX). */
static int xdp_run_out(const __u8 *frame, size_t len, __u8 *out, __u32 *out_len)
{
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = frame, .data_size_in = len, .data_out = out,
		    .data_size_out = PKT_MAX);
	int err = bpf_prog_test_run_opts(xdp_fd, &o);

	*out_len = o.data_size_out;
	return err ? (err < 0 ? err : -errno) : (int)o.retval;
}

static void run_torn_value_tests(void)
{
	struct vigil_config hc = base_cfg;
	struct vigil_key shared = agent_key(AG_TORN, 1), k0[2] = { agent_key(AG_TORN, 10),
								       agent_key(AG_TORN, 11) };
	__u64 beats = 0, acks = 0, bad_holder = 0, bad_tag = 0, wrong_set = 0, releases = 0;
	__u64 bad_release = 0, run_errors = 0, seq = 1, until;
	struct agent_auth a = torn_set(0);
	size_t ev0;
	pthread_t th;
	__u32 slot;

	hc.rate_burst = 0;
	hc.source_pps = 0;
	if (add_agent_keys(AG_TORN, PKT_MIN_MS, PKT_MAX_MS, PKT_MULT, NULL, 3, NULL) ||
	    add_agent_keys(AG_TORN2, PKT_MIN_MS, PKT_MAX_MS, PKT_MULT, NULL, 3, NULL) ||
	    vg_agent_get(&maps, AG_TORN, &slot, &(struct vg_agent){}) ||
	    vg_agent_set_auth(&maps, slot, &a) || cfg_write(&hc)) {
		tap_result(false, "torn values: setting up the agents failed: %s", strerror(errno));
		return;
	}
	drain();
	ev0 = ev_n;
	torn_stop = 0;
	if (pthread_create(&th, NULL, torn_writer, &slot)) {
		tap_result(false, "torn values: starting the writer failed");
		return;
	}
	until = vg_mono_ns() + TORN_SECONDS * VIGIL_NSEC_PER_SEC;
	while (vg_mono_ns() < until) {
		/* Mostly key 1 (in both sets), some key 0 of either set, and
		 * now and then DRAINING, which gives up a grant to AG_TORN. */
		int kind = (int)(seq % 8), kid = kind < 2 ? 0 : 1;
		const struct vigil_key *k = kid ? &shared : &k0[kind & 1];
		struct frame_spec f = { .key = k, .key_id = (__u8)kid };
		struct vigil_beat_info b = {
			.agent_id = AG_TORN, .seq = seq++, .incarnation = 1, .interval_ms = 2000,
			.lease_id = TORN_LEASE,
			.status = kind == 7 ? VIGIL_STATUS_DRAINING : VIGIL_STATUS_OK,
		};
		__u8 frame[PKT_MAX], out[PKT_MAX];
		size_t len = build_frame(frame, &f, &b, NULL);
		__u32 out_len = 0;
		int v = xdp_run_out(frame, len, out, &out_len);
		const struct vigil_ack *ack = (const void *)(out + frame_hdr_len(&f));

		beats++;
		if (v < 0) {
			run_errors++;
			continue;
		}
		if (v != XDP_TX)
			continue;
		acks++;
		if (out_len < frame_hdr_len(&f) + sizeof(*ack) || !vigil_ack_tag_ok(ack, k))
			bad_tag++;
		else if (kid == 0 && memcmp(k, &k0[0], sizeof(*k)) && memcmp(k, &k0[1], sizeof(*k)))
			wrong_set++;
		if (ack->lease_state == VIGIL_LEASE_FREE && !ack->holder && !ack->token)
			continue; /* before the writer's first grant */
		if ((vg_be64(ack->holder) == AG_TORN) != (vg_be64(ack->token) & 1) ||
		    (vg_be64(ack->holder) != AG_TORN && vg_be64(ack->holder) != AG_TORN2)) {
			if (!bad_holder)
				note("acknowledgement: lease state %u, holder %#llx, token %llu",
				     ack->lease_state, (unsigned long long)vg_be64(ack->holder),
				     (unsigned long long)vg_be64(ack->token));
			bad_holder++;
		}
		if ((seq & 1023) == 0)
			drain();
	}
	torn_stop = 1;
	pthread_join(th, NULL);
	drain();
	for (size_t i = ev0; i < ev_n; i++) {
		const struct vigil_event *e = &evlog[i];

		if (e->kind != VIGIL_EV_LEASE_RELEASED || e->slot != TORN_LEASE)
			continue;
		releases++;
		if (e->agent_id != AG_TORN || !(e->seq & 1))
			bad_release++;
	}
	note("torn values: %llu beats, %llu acknowledged, %llu grants and %llu key swaps written "
	     "meanwhile, %llu releases", (unsigned long long)beats, (unsigned long long)acks,
	     (unsigned long long)torn_grants, (unsigned long long)torn_swaps,
	     (unsigned long long)releases);
	tap_result(!run_errors && acks > 1000 && torn_grants > 1000 && torn_swaps > 10,
		   "torn values: beats ran while a writer re-granted a lease and swapped keys "
		   "(%llu errors)", (unsigned long long)run_errors);
	tap_result(!bad_holder, "torn values: every acknowledgement names the holder of the grant "
		   "its token belongs to (%llu mixed of %llu)", (unsigned long long)bad_holder,
		   (unsigned long long)acks);
	tap_result(!bad_tag && !wrong_set, "torn values: every acknowledgement verifies with the "
		   "key its beat was signed with (%llu do not, %llu from the wrong set)",
		   (unsigned long long)bad_tag, (unsigned long long)wrong_set);
	tap_result(releases && !bad_release, "torn values: DRAINING beats of %#llx released only "
		   "its own grants (%llu of %llu releases were another holder's)",
		   (unsigned long long)AG_TORN, (unsigned long long)bad_release,
		   (unsigned long long)releases);
	vg_agent_remove(&maps, AG_TORN);
	vg_agent_remove(&maps, AG_TORN2);
	bpf_map_update_elem(maps.leases, &(__u32){ TORN_LEASE }, &(struct lease_slot){}, BPF_F_LOCK);
	cfg_write(&base_cfg);
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

/* vigil_wheel.max_lag_ticks when the current timed phase began. */
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

/* The steady agents' own thread: beats on a fixed cadence, as an agent would.
 * Every beat's send window is kept: a machine that holds the thread off
 * its CPU makes a SUSPECT correct, and only the agent's own beats can say so. */
#define STEADY_MAX_AGENTS 4
#define STEADY_MAX_BEATS (STEADY_FOR_NS / STEADY_PERIOD_NS + 8)
struct steady {
	pthread_t thr;
	int first, n;
	__u64 start, stop, max_gap;
	__u64 t0[STEADY_MAX_AGENTS][STEADY_MAX_BEATS], t1[STEADY_MAX_AGENTS][STEADY_MAX_BEATS];
	int nb[STEADY_MAX_AGENTS];
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

			/* The last agent's beats stop for 90 ms halfway, as if the
			 * machine held it off the CPU: its verdicts then must be
			 * the ones its own beats explain, and only those. */
			if (i == s->n - 1 && next >= s->start + STEADY_FOR_NS / 2 &&
			    next < s->start + STEADY_FOR_NS / 2 + 90 * MS)
				continue;
			if (beat_v4(a->id, ++a->seq, dl_groups[G_STEADY].interval_ms, &t0, &t1) !=
			    XDP_DROP)
				s->errors++;
			if (s->nb[i] < (int)STEADY_MAX_BEATS) {
				s->t0[i][s->nb[i]] = t0;
				s->t1[i][s->nb[i]++] = t1;
			}
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

/* Did the beat sent in [t0, t1] set last_seen_ns? */
static bool set_by(const struct vigil_event *e, __u64 t0, __u64 t1)
{
	return e->last_seen_ns >= t0 && e->last_seen_ns <= t1;
}

/* The beat whose last_seen_ns an event must carry: the last one sent before
 * the event was detected; for a steady agent also the one before, when the
 * last was still being sent as the verdict was taken (they cross). */
static bool last_seen_matches(const struct dl_agent *a, const struct vigil_event *e,
			      const struct steady *st)
{
	int j, n = a->nbeats < DL_MAX_BEATS ? a->nbeats : DL_MAX_BEATS;

	if (a->group == G_STEADY) {
		int i = (int)(a - dl) - st->first;
		const __u64 *t0 = st->t0[i], *t1 = st->t1[i];

		if (e->kind == VIGIL_EV_UP)
			return true; /* the thread's first beat; not recorded */
		for (j = st->nb[i] - 1; j >= 0 && t0[j] > e->detected_ns; j--)
			;
		return j >= 0 && (set_by(e, t0[j], t1[j]) ||
				  (j > 0 && t1[j] >= e->detected_ns && set_by(e, t0[j - 1], t1[j - 1])));
	}
	for (j = n - 1; j >= 0 && a->beat_t0[j] > e->detected_ns; j--)
		;
	return j >= 0 && e->last_seen_ns >= a->beat_t0[j] && e->last_seen_ns <= a->beat_t1[j];
}

/* A steady agent's SUSPECT or DEAD that its own beats explain: it sent no
 * beat after the one the verdict was decided on until the verdict's due time
 * (the machine held the beater off its CPU that long). */
static bool steady_stalled(const struct steady *st, int i, const struct vigil_event *e)
{
	for (int j = 0; j < st->nb[i]; j++)
		if (st->t0[i][j] > e->last_seen_ns)
			return st->t0[i][j] >= due_ns(e, DL_MULT);
	return true; /* none after it: the thread had stopped */
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
		case G_STEADY: {
			/* While beating: no SUSPECT or DEAD but what the agent's own
			 * beats explain (a measured stall of the beater; its
			 * RECOVERED follows); once stopped: SUSPECT, then DEAD. */
			int excused = 0;

			bad = 0;
			for (int i = 0; i < steady->n; i++) {
				struct dl_agent *a = &dl[steady->first + i];
				int k = a->nev, wrong = a->extra || !a->nev ||
							a->ev[0].kind != VIGIL_EV_UP || k < 3 ||
							a->ev[k - 2].kind != VIGIL_EV_SUSPECT ||
							a->ev[k - 1].kind != VIGIL_EV_DEAD;

				for (int j = 1; j < k - 2 && !wrong; j++) {
					const struct vigil_event *e = &a->ev[j];

					if (e->kind == VIGIL_EV_RECOVERED)
						continue;
					if ((e->kind != VIGIL_EV_SUSPECT && e->kind != VIGIL_EV_DEAD) ||
					    !steady_stalled(steady, i, e)) {
						wrong = 1;
						note("agent %llu %s while beating, %.1f ms after its "
						     "last beat, which the beater followed in time",
						     (unsigned long long)a->id, kind_name(e->kind),
						     (e->detected_ns - e->last_seen_ns) / 1e6);
					} else {
						excused++;
					}
				}
				if (wrong) {
					bad++;
					note_seq(a);
				}
			}
			note("steady beater: %d rounds, largest gap between beats %.2f ms; %d "
			     "verdict(s) while beating that the beater's stalls explain",
			     steady->beats, steady->max_gap / 1e6, excused);
			tap_result(!bad && !steady->errors,
				   "deadline: agents beating every 10 ms (interval 20 ms) get no "
				   "SUSPECT for 1 s but what a measured stall of their beater "
				   "explains, and SUSPECT then DEAD once they stop [%d agents]",
				   steady->n);
			break;
		}
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
	char *d;

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
	d = xasprintf("deadline: every SUSPECT within 2 ticks + 25 ms of its deadline (worst "
		      "%.3f ms)", late_max(&all_suspect) / 1e6);
	tap_result(!late_over(&all_suspect, LATE_BOUND_NS), "%s", d);
	free(d);
	tap_result(!all_dead.early, "deadline: no DEAD before deadline + dead_misses x "
		   "interval (%zu records)", all_dead.n);
	d = xasprintf("deadline: every DEAD within 2 ticks + 25 ms of its due time (worst %.3f ms)",
		      late_max(&all_dead) / 1e6);
	tap_result(!late_over(&all_dead, LATE_BOUND_NS), "%s", d);
	free(d);
	if (shorten.n != (size_t)dl_groups[G_SHORTEN].n)
		note("%zu shortened-interval SUSPECT records, want %d", shorten.n,
		     dl_groups[G_SHORTEN].n);
	d = xasprintf("deadline: horizon rule: after shortening to 10 ms, SUSPECT within bound "
		      "of the 30 ms deadline (worst %.3f ms)", late_max(&shorten) / 1e6);
	if (shorten.n != (size_t)dl_groups[G_SHORTEN].n || shorten.early)
		tap_result(false, "%s", d);
	else
		tap_result(!shortened_late, "%s", d);
	free(d);
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
	 * first and 10 ms 250..290 ms later. (Not sooner: the agent's rate
	 * limit judges the second beat against the first one's 250 ms emission
	 * interval, see the "agent rate" cases; 250..290 ms still falls at every
	 * phase of the sweeper's 30 ms visits.) */
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
			schedule(at + 250 * MS + (__u64)(i * 7 % 40) * MS + (__u64)(i % 3) * 333000,
				 i, g->interval_ms);
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
	{
		char *d = xasprintf("bulk: every SUSPECT and DEAD within 2 ticks + 25 ms (worst %.3f "
				    "ms / %.3f ms, %zu beyond)", late_max(&sus) / 1e6,
				    late_max(&dead) / 1e6,
				    late_over(&sus, LATE_BOUND_NS) + late_over(&dead, LATE_BOUND_NS));

		tap_result(!late_over(&sus, LATE_BOUND_NS) && !late_over(&dead, LATE_BOUND_NS), "%s", d);
		free(d);
	}
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


/* ----------------------------------------------- verdicts racing beats */

/*
 * The sweeper decides from an agent's last beat, then publishes the verdict
 * with a compare-and-swap; a beat on another CPU may store newer facts in
 * between. Agents here beat round-robin as fast as BPF_PROG_TEST_RUN goes,
 * with a deadline of about one round, so verdicts and beats cross all the
 * time. What must hold: a verdict reports the beat it was decided on (never
 * early against its own facts), and no beat that came after those facts
 * leaves it standing (it is answered by a RECOVERED no later than that beat
 * returned, or than the verdict itself when the beat was first).
 */
#define RACE_BASE 4000000
#define RACE_MAX 4096
#define RACE_IVL_MS 2
#define RACE_MULT 2
#define RACE_RUN_NS (1500 * MS)

struct race_beat {
	__u64 t0, t1;
};

static int cmp_agent_seq(const void *a, const void *b)
{
	const struct vigil_event *x = a, *y = b;

	if (x->agent_id != y->agent_id)
		return x->agent_id < y->agent_id ? -1 : 1;
	return x->event_seq < y->event_seq ? -1 : x->event_seq > y->event_seq;
}

/* Records of agents [lo, hi) in event_seq order, each picking up where the
 * agent's previous one left it. Returns how many do not. */
static int chain_breaks(size_t ev0, __u64 lo, __u64 hi)
{
	struct vigil_event *v = malloc((ev_n - ev0 + 1) * sizeof(*v));
	size_t n = 0;
	int breaks = 0;

	if (!v)
		return -1;
	for (size_t k = ev0; k < ev_n; k++)
		if (evlog[k].agent_id >= lo && evlog[k].agent_id < hi)
			v[n++] = evlog[k];
	qsort(v, n, sizeof(*v), cmp_agent_seq);
	for (size_t k = 1; k < n; k++) {
		if (v[k].agent_id != v[k - 1].agent_id || v[k].prev_state == v[k - 1].state)
			continue;
		if (breaks++ < 3)
			note("race: agent %llu: %s (from %s) numbered after %s (to %s)",
			     (unsigned long long)v[k].agent_id, kind_name(v[k].kind),
			     state_name(v[k].prev_state), kind_name(v[k - 1].kind),
			     state_name(v[k - 1].state));
	}
	free(v);
	return breaks;
}

/* vg_agent_slots_foreach (the replay floors' periodic pass) against the
 * index walk: in steps that cross its batches and start mid-array, every
 * slot that holds an agent once, with that agent's id, and the cursor left
 * at the end. */
static __u32 *walk_seen;

static int walk_one(__u32 slot, const struct agent_slot *s, void *ctx)
{
	(void)ctx;
	if (slot < maps.max_agents && s->agent_id)
		walk_seen[slot]++;
	return 0;
}

static int index_one(__u32 slot, const struct vg_agent *a, void *ctx)
{
	__u64 *ids = ctx;

	ids[slot] = a->s.agent_id;
	return 0;
}

static void run_slot_walk_test(void)
{
	__u64 *ids = calloc(maps.max_agents, sizeof(*ids));
	__u32 cursor = 0, steps = 0, want = 0, once = 0, extra = 0;
	int err = 0;

	walk_seen = calloc(maps.max_agents, sizeof(*walk_seen));
	if (!ids || !walk_seen) {
		tap_result(false, "slot walk: out of memory");
		goto out;
	}
	vg_agent_foreach(&maps, index_one, ids);
	while (!err && cursor < maps.max_agents && steps++ < maps.max_agents)
		err = vg_agent_slots_foreach(&maps, steps & 1, &cursor, 1000 + steps % 3, walk_one,
					     NULL);
	for (__u32 i = 0; i < maps.max_agents; i++) {
		want += ids[i] != 0;
		once += ids[i] && walk_seen[i] == 1;
		extra += !ids[i] && walk_seen[i];
	}
	tap_result(!err && want > 1024 && once == want && !extra && cursor == maps.max_agents,
		   "slot walk: in %u steps of about 1,000 slots (locked and not), each of the %u "
		   "registered agents' slots visited once (%u), no other (%u), the cursor at the "
		   "end (%u of %u)%s", steps, want, once, extra, cursor, maps.max_agents,
		   err ? ", an error" : "");
out:
	free(ids);
	free(walk_seen);
}

static void run_race_test(void)
{
	static struct race_beat *beats[RACE_MAX];
	static size_t nb[RACE_MAX], cap[RACE_MAX];
	__u64 seq = 1, t0, t1, start, end;
	int n = 256, err = 0, errors = 0, early = 0, unanswered = 0, verdicts = 0, crossed = 0;
	int breaks;
	struct vigil_config cfg = base_cfg;
	struct vigil_stats st0, st1;
	__u64 sent = 0;
	size_t ev0;
	__u32 hint = 0;

	/* One source sends far more than its default budget here, and a round
	 * may come round faster than the agents' rate allows: no limits. */
	cfg.source_pps = 0;
	cfg.rate_burst = 0;
	cfg_write(&cfg);
	/* As many agents as one round of beats in about one deadline. */
	for (int i = 0; i < n && !err; i++)
		err = add_agent(RACE_BASE + i, 1, 1000, RACE_MULT, &hint);
	start = vg_mono_ns();
	for (int i = 0; i < n && !err; i++)
		errors += beat_v4(RACE_BASE + i, seq, RACE_IVL_MS, &t0, &t1) != XDP_DROP;
	seq++;
	end = vg_mono_ns();
	n = (int)(RACE_MULT * RACE_IVL_MS * MS * (__u64)n / (end - start + 1));
	n = n < 64 ? 64 : n > RACE_MAX ? RACE_MAX : n;
	for (int i = 256; i < n && !err; i++)
		err = add_agent(RACE_BASE + i, 1, 1000, RACE_MULT, &hint);
	if (!tap_result(!err, "race: %d agents registered (deadline %d ms, one round of beats "
			"about as long)", n, RACE_MULT * RACE_IVL_MS)) {
		return;
	}

	ev0 = drain();
	vg_stats_read(&maps, &st0);
	start = vg_mono_ns();
	end = start + RACE_RUN_NS;
	for (; vg_mono_ns() < end; seq++) {
		for (int i = 0; i < n; i++) {
			struct race_beat *rb_;

			if (nb[i] == cap[i]) {
				cap[i] = cap[i] ? 2 * cap[i] : 64;
				beats[i] = realloc(beats[i], cap[i] * sizeof(*beats[i]));
				if (!beats[i]) {
					fprintf(stderr, "out of memory\n");
					exit(2);
				}
			}
			rb_ = &beats[i][nb[i]++];
			sent++;
			errors += beat_v4(RACE_BASE + i, seq, RACE_IVL_MS, &rb_->t0, &rb_->t1) !=
				  XDP_DROP;
		}
		ring_buffer__poll(rb, 0);
	}
	/* Let the last verdicts come, then stop watching these agents. */
	sleep_until(vg_mono_ns() + 50 * MS);
	drain();
	vg_stats_read(&maps, &st1);
	cfg_write(&base_cfg);

	for (size_t k = ev0; k < ev_n; k++) {
		const struct vigil_event *e = &evlog[k];
		size_t i = e->agent_id - RACE_BASE, j;
		__u64 answer_by = 0;

		if (e->agent_id < RACE_BASE || i >= (size_t)n ||
		    (e->kind != VIGIL_EV_SUSPECT && e->kind != VIGIL_EV_DEAD))
			continue;
		verdicts++;
		if (e->detected_ns < due_ns(e, RACE_MULT)) {
			if (early++ < 3)
				note("race: agent %llu %s detected %.3f ms before the deadline of the "
				     "beat it reports", (unsigned long long)e->agent_id,
				     kind_name(e->kind),
				     (due_ns(e, RACE_MULT) - e->detected_ns) / 1e6);
		}
		/* The first beat stored after the facts the verdict reports. */
		for (j = 0; j < nb[i] && beats[i][j].t0 <= e->last_seen_ns; j++)
			;
		if (j == nb[i])
			continue;
		answer_by = beats[i][j].t1 > e->detected_ns ? beats[i][j].t1 : e->detected_ns;
		/* The agent's next RECOVERED must have come by then (a DEAD on
		 * the way is judged in its own right). */
		for (size_t m = k + 1; m < ev_n; m++) {
			if (evlog[m].agent_id != e->agent_id || evlog[m].kind == VIGIL_EV_DEAD)
				continue;
			if (evlog[m].kind == VIGIL_EV_RECOVERED && evlog[m].detected_ns <= answer_by) {
				crossed += evlog[m].detected_ns == e->detected_ns;
				answer_by = 0;
			}
			break;
		}
		if (answer_by && unanswered < 3)
			for (size_t m = k + 1, shown = 0; m < ev_n && shown < 4; m++)
				if (evlog[m].agent_id == e->agent_id && ++shown)
					note("  then %s at %llu (last seen %llu)", kind_name(evlog[m].kind),
					     (unsigned long long)evlog[m].detected_ns,
					     (unsigned long long)evlog[m].last_seen_ns);
		if (answer_by && unanswered++ < 3)
			note("race: agent %llu %s at %llu (last seen %llu) still standing after the "
			     "beat of %llu-%llu", (unsigned long long)e->agent_id, kind_name(e->kind),
			     (unsigned long long)e->detected_ns, (unsigned long long)e->last_seen_ns,
			     (unsigned long long)beats[i][j].t0, (unsigned long long)beats[i][j].t1);
	}
	note("race: %llu rounds of %d beats in %.0f ms, %d verdicts, %d of them crossed by a beat "
	     "and answered by the sweeper at once", (unsigned long long)seq - 2, n, RACE_RUN_NS / 1e6, verdicts,
	     crossed);
	tap_result(!errors && st1.beats - st0.beats == sent,
		   "race: every beat DROP and accepted (%llu of %llu)",
		   (unsigned long long)(st1.beats - st0.beats), (unsigned long long)sent);
	tap_result(!early, "race: every SUSPECT and DEAD reports the beat it was decided on: none "
		   "early against it (%d of %d)", early, verdicts);
	tap_result(!unanswered, "race: no verdict outlives a later beat: each is answered by a "
		   "RECOVERED by the time that beat returned (%d of %d not)", unanswered, verdicts);
	breaks = chain_breaks(ev0, RACE_BASE, RACE_BASE + n);
	tap_result(!breaks, "race: in event_seq order each agent's records chain, every one "
		   "leaving from the state the one before reached (%d do not)", breaks);
	for (int i = 0; i < n; i++) {
		vg_agent_remove(&maps, RACE_BASE + i);
		free(beats[i]);
	}
}

/* ------------------------------------------------------ evidence tests */

/*
 * Receive-path evidence (docs/design.md): a verdict is taken only once the
 * agent's receive queue has processed a beat sent at or after the deadline,
 * or at the hold bound, flagged; a beat that ends a hold is judged by its
 * own send time; a beat sent in time that arrives after its verdict undoes
 * it (cause monitor_delay); late beats make a MONITOR_BEHIND episode. The
 * beats here carry CLOCK_MONOTONIC send times: the agent's clock is ours.
 */
#define EV_BASE 3000000
#define EV_HOLD_MS 100
#define EV_IVL_MS 10 /* deadline 30 ms after a beat */

/* Each agent's own sequence; ev_skip: sequences lost before the next beat. */
static __u64 ev_seq[16], ev_skip;

static int beat_ts(__u64 id, __u64 send_ts, __u8 status)
{
	struct vigil_key k = agent_key(id, 0);
	struct frame_spec f = { .key = &k };
	struct vigil_beat_info b = {
		.agent_id = id, .seq = (ev_seq[(id - EV_BASE) & 15] += ev_skip + 1), .incarnation = 1,
		.interval_ms = EV_IVL_MS, .send_ts_ns = send_ts, .status = status,
	};
	__u8 frame[PKT_MAX];
	size_t len = build_frame(frame, &f, &b, NULL);
	__u64 t0, t1;

	return xdp_run(frame, len, &t0, &t1);
}

/* Run the ring and a canary (every 2 ms, if canary) until `until` or until
 * cond() holds; returns the longest gap between canary beats. */
static __u64 ev_wait(__u64 until, __u64 canary, bool (*cond)(void))
{
	__u64 last = 0, gap = 0, now;

	while ((now = vg_mono_ns()) < until) {
		if (canary && now - last >= 2 * MS) {
			if (last && now - last > gap)
				gap = now - last;
			beat_ts(canary, vg_mono_ns(), VIGIL_STATUS_OK);
			last = now;
		}
		ring_buffer__poll(rb, 0);
		if (cond && cond())
			break;
		usleep(200);
	}
	drain();
	return gap;
}

/* The records of one agent since ev0: kinds in order into k[], up to n. */
static size_t ev_of(__u64 id, size_t ev0, const struct vigil_event **out, size_t n)
{
	size_t m = 0;

	for (size_t i = ev0; i < ev_n && m < n; i++)
		if (evlog[i].agent_id == id)
			out[m++] = &evlog[i];
	return m;
}

static __u64 ev_watch_id;
static size_t ev_watch_from, ev_watch_want;

static bool ev_have(void)
{
	const struct vigil_event *e[8];

	return ev_of(ev_watch_id, ev_watch_from, e, 8) >= ev_watch_want;
}

/* Beat a few times in time (UP, the clock learnt), then fall silent;
 * returns the deadline of the last beat. */
static __u64 ev_then_silent(__u64 id)
{
	struct vg_agent a;

	for (int i = 0; i < 3; i++) {
		beat_ts(id, vg_mono_ns(), VIGIL_STATUS_OK);
		if (i < 2)
			usleep(EV_IVL_MS * 1000 / 2);
	}
	if (vg_agent_get(&maps, id, NULL, &a))
		return 0;
	return vigil_deadline(a.s.last_seen_ns, a.s.interval_ms, a.s.multiplier);
}

static void ev_leave(__u64 id)
{
	beat_ts(id, vg_mono_ns(), VIGIL_STATUS_LEAVING);
}

static struct vigil_stats ev_stats(void)
{
	struct vigil_stats st = {};

	vg_stats_read(&maps, &st);
	return st;
}

static void run_evidence_tests(void)
{
	const __u64 A = EV_BASE + 1, B = EV_BASE + 2, C = EV_BASE + 3, D = EV_BASE + 4,
		    E = EV_BASE + 5, F = EV_BASE + 6, CAN = EV_BASE + 9;
	struct vigil_config cfg = base_cfg;
	const struct vigil_event *e[8];
	struct vigil_stats st0, st1;
	__u64 dl, gap, hold = EV_HOLD_MS * MS, sent;
	size_t ev0, n;
	__u32 hint = 0;

	for (__u64 id = EV_BASE + 1; id <= EV_BASE + 9; id++)
		if (add_agent(id, 5, 1000, DL_MULT, &hint)) {
			tap_result(false, "evidence: registering agent %llu", (unsigned long long)id);
			return;
		}
	cfg.hold_max_ms = EV_HOLD_MS;
	if (cfg_write(&cfg)) {
		tap_result(false, "evidence: writing vigil_config: %s", strerror(errno));
		return;
	}
	/* Each agent beats only in its own case (until then it is NEW, its
	 * first deadline seconds away), so no case sees another's records. */
	beat_ts(CAN, vg_mono_ns(), VIGIL_STATUS_OK);

	/* A: evidence from a canary -> judged promptly, not flagged unverified. */
	dl = ev_then_silent(A);
	ev0 = drain();
	st0 = ev_stats();
	ev_watch_id = A, ev_watch_from = ev0, ev_watch_want = 2;
	gap = ev_wait(dl + (DL_MULT - 1 + 2) * EV_IVL_MS * MS + hold, CAN, ev_have);
	n = ev_of(A, ev0, e, 8);
	if (gap > 20 * MS) {
		tap_skip("this test's canary thread was held off the CPU (agent side)",
			 "evidence: with a canary beating, a silent agent's SUSPECT/DEAD are "
			 "taken within a canary interval of the deadline (longest canary gap "
			 "%.1f ms)", gap / 1e6);
	} else {
		bool ok = n == 2 && e[0]->kind == VIGIL_EV_SUSPECT && e[1]->kind == VIGIL_EV_DEAD &&
			  !(e[0]->flags & VIGIL_EVF_RX_UNVERIFIED) &&
			  !(e[1]->flags & VIGIL_EVF_RX_UNVERIFIED) && e[0]->detected_ns >= dl &&
			  e[0]->detected_ns <= dl + LATE_BOUND_NS + 2 * MS;

		tap_result(ok, "evidence: with a canary beating, a silent agent's SUSPECT and DEAD "
			   "are taken with evidence, within 2 ticks + a canary interval + slack of "
			   "the deadline (SUSPECT %.3f ms late, flags %#x)",
			   n ? ((double)e[0]->detected_ns - (double)dl) / 1e6 : -1.0,
			   n ? e[0]->flags : 0);
	}

	ev_leave(CAN);

	/* B: nobody beats -> held to the bound, then taken, flagged. */
	dl = ev_then_silent(B);
	ev0 = drain();
	st0 = ev_stats();
	ev_watch_id = B, ev_watch_from = ev0, ev_watch_want = 2;
	ev_wait(dl + (DL_MULT - 1) * EV_IVL_MS * MS + 2 * hold + 100 * MS, 0, ev_have);
	n = ev_of(B, ev0, e, 8);
	st1 = ev_stats();
	tap_result(n == 2 && e[0]->kind == VIGIL_EV_SUSPECT && e[1]->kind == VIGIL_EV_DEAD &&
			   (e[0]->flags & (VIGIL_EVF_HELD | VIGIL_EVF_RX_UNVERIFIED)) ==
				   (VIGIL_EVF_HELD | VIGIL_EVF_RX_UNVERIFIED) &&
			   e[0]->detected_ns >= dl + hold &&
			   e[0]->detected_ns <= dl + hold + LATE_BOUND_NS &&
			   e[0]->aux_ns >= hold - 2 * MS && e[0]->aux_ns <= hold + LATE_BOUND_NS &&
			   (e[1]->flags & VIGIL_EVF_RX_UNVERIFIED) &&
			   st1.held_unverified - st0.held_unverified == 2,
		   "evidence: without any other beat a verdict waits the hold bound (%d ms), then "
		   "is taken flagged held+unverified (SUSPECT %.3f ms after the deadline, held "
		   "%.3f ms, flags %#x; %llu held_unverified)", EV_HOLD_MS,
		   n ? ((double)e[0]->detected_ns - (double)dl) / 1e6 : -1.0,
		   n ? e[0]->aux_ns / 1e6 : -1.0, n ? e[0]->flags : 0,
		   (unsigned long long)(st1.held_unverified - st0.held_unverified));

	/* C: a beat sent in time arrives during the hold -> no verdict at all. */
	dl = ev_then_silent(C);
	ev0 = drain();
	st0 = ev_stats();
	ev_wait(dl + 30 * MS, 0, NULL);
	sent = vg_mono_ns();
	beat_ts(C, dl - 5 * MS, VIGIL_STATUS_OK); /* sent 5 ms before the deadline, delayed */
	ev_wait(vg_mono_ns() + 5 * MS, 0, NULL);
	n = ev_of(C, ev0, e, 8);
	st1 = ev_stats();
	if (sent >= dl + hold) {
		tap_skip("this test was held off the CPU past the hold bound (agent side)",
			 "evidence: a beat sent in time ends the hold: no verdict");
	} else {
		struct vg_agent a = {};
		const struct agent_slot *s = &a.s;

		vg_agent_get(&maps, C, NULL, &a);
		tap_result(n == 0 && s->state == VIGIL_AGENT_ALIVE && !s->hold_since_ns &&
				   st1.held_cancelled - st0.held_cancelled == 1,
			   "evidence: a beat sent before the deadline that arrives during the hold "
			   "ends it with no verdict (%zu records, state %s, %llu held_cancelled)", n,
			   vg_state_name(s->state),
			   (unsigned long long)(st1.held_cancelled - st0.held_cancelled));
	}
	ev_leave(C);

	/* D: a beat sent after the deadline ends the hold -> SUSPECT, RECOVERED. */
	dl = ev_then_silent(D);
	ev0 = drain();
	ev_wait(dl + 30 * MS, 0, NULL);
	sent = vg_mono_ns();
	beat_ts(D, sent, VIGIL_STATUS_OK);
	ev_wait(vg_mono_ns() + 5 * MS, 0, NULL);
	n = ev_of(D, ev0, e, 8);
	if (sent >= dl + hold) {
		tap_skip("this test was held off the CPU past the hold bound (agent side)",
			 "evidence: a beat sent after the deadline ends the hold with SUSPECT, "
			 "RECOVERED");
	} else {
		tap_result(n == 2 && e[0]->kind == VIGIL_EV_SUSPECT &&
				   e[0]->flags == (VIGIL_EVF_HELD | VIGIL_EVF_BY_BEAT) &&
				   e[0]->last_seen_ns < dl && e[1]->kind == VIGIL_EV_RECOVERED &&
				   !(e[1]->flags & VIGIL_EVF_MONITOR_DELAY) &&
				   e[0]->event_seq + 1 == e[1]->event_seq,
			   "evidence: a beat sent after the deadline that ends the hold reports the "
			   "miss: SUSPECT (held, by the beat, with the old last-seen) then RECOVERED "
			   "(%zu records, flags %#x)", n, n ? e[0]->flags : 0);
	}
	ev_leave(D);

	/* E: no hold (0 ms): SUSPECT at once; then a beat sent in time corrects it. */
	cfg.hold_max_ms = 0;
	cfg_write(&cfg);
	dl = ev_then_silent(E);
	ev0 = drain();
	st0 = ev_stats();
	ev_watch_id = E, ev_watch_from = ev0, ev_watch_want = 1;
	ev_wait(dl + 20 * MS, 0, ev_have);
	beat_ts(E, dl - 5 * MS, VIGIL_STATUS_OK);
	ev_wait(vg_mono_ns() + 5 * MS, 0, NULL);
	n = ev_of(E, ev0, e, 8);
	st1 = ev_stats();
	tap_result(n == 2 && e[0]->kind == VIGIL_EV_SUSPECT &&
			   (e[0]->flags & VIGIL_EVF_RX_UNVERIFIED) && !(e[0]->flags & VIGIL_EVF_HELD) &&
			   e[1]->kind == VIGIL_EV_RECOVERED &&
			   e[1]->flags == VIGIL_EVF_MONITOR_DELAY && e[1]->aux_ns <= dl &&
			   e[1]->aux_ns >= dl - 6 * MS && st1.corrected - st0.corrected == 1,
		   "evidence: a beat sent in time that arrives after its SUSPECT gives RECOVERED "
		   "with cause monitor_delay and its send time (%zu records, flags %#x, sent %.3f "
		   "ms before the deadline, %llu corrected)", n, n > 1 ? e[1]->flags : 0,
		   n > 1 ? ((double)dl - (double)e[1]->aux_ns) / 1e6 : -1.0,
		   (unsigned long long)(st1.corrected - st0.corrected));
	ev_leave(E);
	cfg.hold_max_ms = EV_HOLD_MS;
	cfg_write(&cfg);

	/* H: a verdict held long (a longer bound) is taken within 8 ticks of
	 * the evidence that arrives during its hold, not at the next look of a
	 * doubling back-off. Its interval is at least 50 ms, so its horizon
	 * (3 x 50 ms) does not bring the looks closer by itself. */
	{
		const __u64 H = EV_BASE + 14, W = EV_BASE + 13;
		__u64 ev_at;

		cfg.hold_max_ms = 4 * EV_HOLD_MS;
		cfg_write(&cfg);
		add_agent(H, 50, 1000, DL_MULT, &hint);
		add_agent(W, 5, 1000, DL_MULT, &hint);
		beat_ts(W, vg_mono_ns(), VIGIL_STATUS_OK);
		dl = ev_then_silent(H);
		beat_ts(W, vg_mono_ns(), VIGIL_STATUS_OK); /* sent before the deadline */
		ev0 = drain();
		ev_wait(dl + 130 * MS, 0, NULL); /* held past 64 ticks */
		ev_at = vg_mono_ns();
		beat_ts(W, ev_at, VIGIL_STATUS_OK); /* the evidence: sent after the deadline */
		ev_watch_id = H, ev_watch_from = ev0, ev_watch_want = 1;
		ev_wait(dl + 4 * hold, 0, ev_have);
		n = ev_of(H, ev0, e, 8);
		if (ev_at >= dl + 4 * hold - 2 * LATE_BOUND_NS) {
			tap_skip("this test was held off the CPU past the hold bound (agent side)",
				 "evidence: a held verdict is taken within 8 ticks of its evidence");
		} else {
			__s64 after = n ? (__s64)(e[0]->detected_ns - ev_at) : -1;

			tap_result(n >= 1 && e[0]->kind == VIGIL_EV_SUSPECT &&
					   (e[0]->flags & VIGIL_EVF_HELD) &&
					   !(e[0]->flags & VIGIL_EVF_RX_UNVERIFIED) && after >= 0 &&
					   after <= (__s64)(8 * TICK_NS + LATE_BOUND_NS),
				   "evidence: a verdict held %.0f ms is taken within 8 ticks + 2 ticks + "
				   "slack of the evidence that came meanwhile (%.3f ms after it, held "
				   "%.3f ms, flags %#x)", (ev_at - dl) / 1e6,
				   after / 1e6, n ? e[0]->aux_ns / 1e6 : -1.0, n ? e[0]->flags : 0);
		}
		ev_leave(H);
		ev_leave(W);
		cfg.hold_max_ms = EV_HOLD_MS;
		cfg_write(&cfg);
	}

	/* G: the receive ring dropping: beats of others arrive after the
	 * deadline, but with sequence gaps (a burst of losses): no evidence;
	 * the silent agent's next beat, itself after a gap, ends the hold with
	 * no verdict. */
	{
		const __u64 G = EV_BASE + 7, O[3] = { EV_BASE + 10, EV_BASE + 11, EV_BASE + 12 };
		__u64 t_dl;

		for (int i = 0; i < 3; i++)
			add_agent(O[i], 5, 1000, DL_MULT, &hint);
		for (int i = 0; i < 3; i++)
			beat_ts(O[i], vg_mono_ns(), VIGIL_STATUS_OK);
		dl = ev_then_silent(G);
		for (int i = 0; i < 3; i++)
			beat_ts(O[i], vg_mono_ns(), VIGIL_STATUS_OK);
		ev0 = drain();
		st0 = ev_stats();
		ev_wait(dl + 5 * MS, 0, NULL);
		ev_skip = 2; /* each of the others lost two beats */
		for (int i = 0; i < 3; i++)
			beat_ts(O[i], vg_mono_ns(), VIGIL_STATUS_OK);
		ev_skip = 0;
		t_dl = vg_mono_ns();
		ev_wait(dl + 40 * MS, 0, NULL);
		n = ev_of(G, ev0, e, 8);
		ev_skip = 6; /* and so did the silent one: its beats of the last 60 ms */
		sent = vg_mono_ns();
		beat_ts(G, sent, VIGIL_STATUS_OK);
		ev_skip = 0;
		ev_wait(vg_mono_ns() + 5 * MS, 0, NULL);
		st1 = ev_stats();
		if (sent >= dl + hold || t_dl >= dl + hold) {
			tap_skip("this test was held off the CPU past the hold bound (agent side)",
				 "evidence: a loss burst over the silence holds the verdict");
		} else {
			size_t m = ev_of(G, ev0, e, 8);

			size_t others = 0;

			for (int i = 0; i < 3; i++)
				others += ev_of(O[i], ev0, e, 8);
			/* The others were silent past their deadlines too: theirs
			 * end the same way. */
			tap_result(n == 0 && m == 0 && !others &&
					   st1.lost_beats - st0.lost_beats == 12 &&
					   st1.held_cancelled - st0.held_cancelled == 4,
				   "evidence: beats arriving after the deadline with sequence gaps (a "
				   "burst of %llu lost beats) are no evidence: the verdict waits, and the "
				   "silent agent's beat after its own gap ends it with no verdict (%zu "
				   "records; held %llu, dropped %llu)",
				   (unsigned long long)(st1.lost_beats - st0.lost_beats), m,
				   (unsigned long long)(st1.verdicts_held - st0.verdicts_held),
				   (unsigned long long)(st1.held_cancelled - st0.held_cancelled));
		}
		ev_leave(G);
		for (int i = 0; i < 3; i++)
			ev_leave(O[i]);
	}

	/* J: a queue that is behind and has lost beats lately is dropping what
	 * it has no room for (a starved poller, a full ring), and which frames
	 * it drops is chance: a beat of another agent sent after the deadline
	 * is then no evidence. The verdict waits; the silent agent's own beat,
	 * after its gap, ends it with no verdict. */
	{
		const __u64 J = EV_BASE + 8, Q = EV_BASE + 15;
		__u64 t_end, t_last;
		size_t m;

		add_agent(Q, 5, 1000, DL_MULT, &hint);
		for (int i = 0; i < 5; i++) {
			beat_ts(Q, vg_mono_ns(), VIGIL_STATUS_OK);
			usleep(2000);
		}
		usleep(60 * 1000);
		ev_skip = 5; /* Q lost a burst, before J's silence */
		beat_ts(Q, vg_mono_ns(), VIGIL_STATUS_OK);
		ev_skip = 0;
		dl = ev_then_silent(J);
		ev0 = drain();
		st0 = ev_stats();
		/* Q's beats reach XDP 5 ms late (the queue is behind), and are
		 * sent past J's deadline by more than the lossy margin. */
		t_end = dl + hold / 2 + 40 * MS;
		t_last = vg_mono_ns();
		gap = 0;
		while (vg_mono_ns() < t_end) {
			__u64 now = vg_mono_ns();

			if (now - t_last > gap)
				gap = now - t_last;
			t_last = now;
			beat_ts(Q, now - 5 * MS, VIGIL_STATUS_OK);
			ring_buffer__poll(rb, 0);
			usleep(3000); /* within Q's rate limit: a refused beat would be a gap */
		}
		drain();
		n = ev_of(J, ev0, e, 8);
		ev_skip = (vg_mono_ns() - dl) / (EV_IVL_MS * MS) + 2; /* J's beats since, lost */
		sent = vg_mono_ns();
		beat_ts(J, sent, VIGIL_STATUS_OK);
		ev_skip = 0;
		ev_wait(vg_mono_ns() + 5 * MS, 0, NULL);
		st1 = ev_stats();
		m = ev_of(J, ev0, e, 8);
		if (gap > 8 * MS || sent >= dl + 10 * hold / 2) {
			tap_skip("this test was held off the CPU (agent side)",
				 "evidence: a queue behind and dropping gives no evidence of others' beats");
		} else {
			tap_result(n == 0 && m == 0 && st1.verdicts_held > st0.verdicts_held &&
					   st1.held_cancelled > st0.held_cancelled,
				   "evidence: while the queue is behind and has lost beats lately, "
				   "another agent's beats sent %.0f ms past the deadline are no evidence: "
				   "the verdict waits, and the silent agent's beat after its gap ends it "
				   "with no verdict (%zu records; held %llu, dropped %llu)",
				   (t_end - dl) / 1e6, m,
				   (unsigned long long)(st1.verdicts_held - st0.verdicts_held),
				   (unsigned long long)(st1.held_cancelled - st0.held_cancelled));
		}
		ev_leave(J);
		ev_leave(Q);
	}

	/* F: beats 5 ms late for 60 ms -> MONITOR_BEHIND on queue 0, then CAUGHT_UP. */
	{
		size_t h0, behind = 0, caught = 0;
		__u64 t_end = vg_mono_ns() + 1200 * MS, lag_seen = 0, max_seen = 0;

		/* The least delay learnt, and any episode the delayed beats of
		 * the cases above opened closed by beats on time. */
		while (vg_mono_ns() < t_end) {
			beat_ts(F, vg_mono_ns(), VIGIL_STATUS_OK);
			ring_buffer__poll(rb, 0);
			usleep(1000);
		}
		drain();
		h0 = h_n;
		t_end = vg_mono_ns() + 60 * MS;
		while (vg_mono_ns() < t_end) {
			beat_ts(F, vg_mono_ns() - 5 * MS, VIGIL_STATUS_OK);
			usleep(1000);
		}
		t_end = vg_mono_ns() + 1300 * MS;
		while (vg_mono_ns() < t_end) {
			beat_ts(F, vg_mono_ns(), VIGIL_STATUS_OK);
			ring_buffer__poll(rb, 0);
			usleep(1000);
		}
		drain();
		for (size_t i = h0; i < h_n; i++) {
			if (hlog[i].state != VIGIL_PART_RXQ || hlog[i].slot != 0)
				continue;
			if (hlog[i].kind == VIGIL_EV_MONITOR_BEHIND)
				behind++, lag_seen = hlog[i].aux_ns;
			else
				caught++, max_seen = hlog[i].aux_ns;
		}
		tap_result(behind == 1 && caught == 1 && lag_seen >= 4 * MS && lag_seen <= 7 * MS &&
				   max_seen >= lag_seen,
			   "health: beats reaching XDP 5 ms late make one MONITOR_BEHIND episode of "
			   "receive queue 0 (behind %.3f ms) and one CAUGHT_UP (worst %.3f ms) once "
			   "they are on time again (%zu behind, %zu caught up)", lag_seen / 1e6,
			   max_seen / 1e6, behind, caught);
		ev_leave(F);
	}
	ev_leave(A);
	ev_leave(B);
	cfg_write(&base_cfg);
}

/* ------------------------------------------------------ whole-run checks */

static void run_log_checks(void)
{
	struct vigil_stats st;
	struct vigil_globals g;
	struct wheel_state ws;
	__u64 *seqs;
	size_t gaps = 0, dups = 0, n = 0;
	__u64 last = 0;

	/* The sweeper may take a record (a health episode ending) at any
	 * moment: judge the log as of a moment when no sequence was handed out
	 * between reading the last one and reading the counters, once every
	 * record up to it has arrived. */
	for (int tries = 0; tries < 100; tries++) {
		read_globals(&g);
		last = g.event_seq;
		settle(0, last, 0);
		vg_stats_read(&maps, &st);
		read_globals(&g);
		if (g.event_seq == last)
			break;
	}
	drain();
	seqs = malloc((ev_n + h_n + 1) * sizeof(*seqs));
	if (!seqs) {
		tap_result(false, "event log: out of memory");
		return;
	}
	for (size_t i = 0; i < ev_n; i++)
		if (evlog[i].event_seq <= last)
			seqs[n++] = evlog[i].event_seq;
	for (size_t i = 0; i < h_n; i++)
		if (hlog[i].event_seq <= last)
			seqs[n++] = hlog[i].event_seq;
	qsort(seqs, n, sizeof(*seqs), cmp_u64);
	for (size_t i = 0; i < n; i++) {
		if (i && seqs[i] == seqs[i - 1])
			dups++;
		else if (seqs[i] != (i ? seqs[i - 1] : 0) + 1)
			gaps++;
	}
	tap_result(!dups && !gaps && !ev_bad_size && n && seqs[n - 1] == last,
		   "event log: %zu records (%zu of the monitor's own health), event_seq distinct "
		   "and gapless from 1 to %llu (= vigil_globals.event_seq), all %zu bytes", n, h_n,
		   (unsigned long long)last, sizeof(struct vigil_event));
	tap_result(!st.ringbuf_full && !st.queue_full && !st.stale_slot && st.events == n,
		   "counters: ringbuf_full %llu, queue_full %llu, stale_slot %llu all 0; events "
		   "%llu = records read", (unsigned long long)st.ringbuf_full,
		   (unsigned long long)st.queue_full, (unsigned long long)st.stale_slot,
		   (unsigned long long)st.events);
	if (h_n > sizeof(hlog) / sizeof(hlog[0]) - 1)
		tap_result(false, "event log: more health records than the test keeps");
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
	base_cfg = o.cfg;
	/* The deadline and bulk phases send beats without timestamps, so no
	 * receive-path evidence: they check the wheel's own timing, deciding at
	 * the deadline. The evidence phase runs with the default hold. */
	base_cfg.hold_max_ms = 0;
	table_cfg = o.cfg;
	table_cfg.reject_events_per_sec = 1u << 30;
	table_cfg.rate_burst = 1u << 20;
	dead_misses = o.cfg.dead_misses;

	t0 = vg_mono_ns();
	err = vg_instance_load(&o, &maps, &skel);
	if (!tap_result(!err, "verifier accepts the programs built by the pinned clang")) {
		note("re-run with VIGIL_TEST_VERBOSE=1 for libbpf's log");
		return tap_finish();
	}
	note("loaded in %.1f ms; max_agents %u, %d possible CPUs, config: dead_misses %u, "
	     "reject_events_per_sec %u, sweep_budget %u, auth_required %u, replay_window %u, "
	     "rate %u x advertised + %u burst, source %u/s + %u burst",
	     (vg_mono_ns() - t0) / 1e6, maps.max_agents, maps.ncpus, o.cfg.dead_misses,
	     o.cfg.reject_events_per_sec, o.cfg.sweep_budget, o.cfg.auth_required,
	     o.cfg.replay_window, o.cfg.rate_multiple, o.cfg.rate_burst, o.cfg.source_pps,
	     o.cfg.source_burst);
	if (o.cfg.replay_window != REPLAY_W || !o.cfg.auth_required)
		note("the default config changed: the replay script assumes a %d-wide window and "
		     "the tables assume authentication is required", REPLAY_W);
	xdp_fd = bpf_program__fd(skel->progs.vigil_xdp);
	rb = ring_buffer__new(maps.events, on_event, NULL, NULL);
	if (!tap_result(rb != NULL, "ring buffer opened")) {
		vigil_bpf__destroy(skel);
		return tap_finish();
	}

	run_siphash_vectors();
	run_keyfile_cases();
	run_packet_tests();
	run_torn_value_tests();
	run_lease_term_cases();
	run_deadline_tests();
	run_bulk_test();
	run_slot_walk_test();
	run_race_test();
	run_evidence_tests();
	run_log_checks();

	ring_buffer__free(rb);
	vigil_bpf__destroy(skel);
	free(evlog);
	return tap_finish();
}

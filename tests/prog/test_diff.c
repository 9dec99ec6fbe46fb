// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/*
 * test_diff: the XDP beat path against a host model of it, frame by frame.
 *
 * The real program is loaded as the daemon loads it (not attached, not
 * pinned) with the rate limits off, so every verdict is a function of the
 * frame and of the agents' state. A seeded generator makes a million frames:
 * honest signed beats and every way of spoiling one (bit flips, cuts at every
 * layer, random bytes, unknown agents, wrong keys and key ids, missing tags,
 * replays, sequences around the window, incarnation changes, odd UDP
 * lengths, IP headers the stack would refuse (version, length), other ports
 * and protocols). Each frame runs through vigil_xdp
 * with BPF_PROG_TEST_RUN and through the model below; the two must agree on
 * the verdict, on every per-CPU counter, on every field of every agent slot
 * (last_seen_ns: "changed, to a time inside the run") and on the ring-buffer
 * records the frame produced.
 *
 * The model shares the pure functions of include/vigil with the kernel
 * (vigil_beat_decode, vigil_beat_tag_ok, vigil_replay_check,
 * vigil_clamp_interval): one source of truth for what a beat means. The
 * order of the checks, the frame parsing (Ethernet, one VLAN tag, IPv4,
 * IPv6, UDP, the IP length fields) and the handling of short, truncated and
 * padded datagrams are written
 * here again, from the documented behaviour, so a slip in vigil.bpf.c's glue
 * shows up as a disagreement.
 *
 * The sweeper runs on its real timer; agents are registered with intervals
 * of at least ten minutes so no deadline passes during the run. SUSPECT and
 * DEAD are instead injected now and then by writing the slot's state, which
 * is what the sweeper would have done.
 *
 * VIGIL_DIFF_SEED=S and VIGIL_DIFF_N=N override the seed (always printed)
 * and the number of frames (default 1000000). VIGIL_TEST_VERBOSE=1 prints
 * libbpf's messages. Output is TAP. Needs root.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include "vigil.skel.h"
#include "common/instance.h"
#include "common/log.h"
#include "common/registry.h"
#include "common/event.h"
#include "common/util.h"
#include "vigil/wire.h"
#include "vigil/maps.h"
#include "vigil/logic.h"
#include "vigil/auth.h"
#include "tap.h"

#define N_AGENTS 8
#define MAX_AGENTS 16
#define BEAT_PORT 4747
#define WINDOW 64
#define FRAME_MAX 512
#define NO_SLOT 0xffffffffu
#define DEFAULT_N 1000000ULL
#define SHOW_MISMATCHES 5
#define GUARD_CHECK_EVERY 8192
/* One injected SUSPECT or DEAD per this many frames, on average. */
#define INJECT_EVERY 3000

static struct vg_maps maps;
static struct vigil_bpf *skel;
static struct ring_buffer *rb;
static int xdp_fd;

/* ------------------------------------------------------------------ PRNG */

static __u64 rs[4]; /* xoshiro256** */

static __u64 rotl(__u64 x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static __u64 rnd(void)
{
	__u64 r = rotl(rs[1] * 5, 7) * 9, t = rs[1] << 17;

	rs[2] ^= rs[0];
	rs[3] ^= rs[1];
	rs[1] ^= rs[2];
	rs[0] ^= rs[3];
	rs[2] ^= t;
	rs[3] = rotl(rs[3], 45);
	return r;
}

static void rnd_seed(__u64 seed)
{
	for (int i = 0; i < 4; i++) { /* splitmix64 */
		__u64 z = (seed += 0x9e3779b97f4a7c15ULL);

		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
		z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
		rs[i] = z ^ (z >> 31);
	}
}

/* Uniform in [0, n), n > 0. */
static __u32 below(__u32 n)
{
	return (__u32)(((rnd() >> 32) * n) >> 32);
}

/* True with probability per_mille / 1000. */
static bool chance(__u32 per_mille)
{
	return below(1000) < per_mille;
}

static void rnd_bytes(__u8 *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (__u8)rnd();
}

/* ------------------------------------------------------------ byte order */

static __u16 rd16(const __u8 *p)
{
	return (__u16)(p[0] << 8 | p[1]);
}

static void wr16(__u8 *p, __u16 v)
{
	p[0] = v >> 8;
	p[1] = v & 0xff;
}

static void wr32(__u8 *p, __u32 v)
{
	wr16(p, v >> 16);
	wr16(p + 2, v & 0xffff);
}

/* ---------------------------------------------------------------- agents */

/* The registered fleet. Id 0 is not in it: the registry refuses it (it is
 * "no agent"), so a beat naming it, or too short to name any agent, is an
 * unknown agent's. Key bits: which of key[0], key[1] are valid (0: none,
 * every beat is refused). */
static const struct agent_spec {
	__u64 id;
	__u32 valid;
	int fenced; /* in group "fenced", whose allowlist is below */
	__u32 min_ms, max_ms;
} specs[N_AGENTS] = {
	{ 3, 1, 0, 600000, 3600000 },
	{ 1, 2, 0, 600000, 3600000 },
	{ 2, 3, 0, 900000, 7200000 },
	{ 0x0123456789abcdefULL, 3, 0, 600000, 600000 }, /* min == max */
	{ 0xfffffffffffffffeULL, 0, 0, 600000, 3600000 },
	{ 0x8000000000000000ULL, 1, 0, 700000, 3600000 },
	{ 4747, 3, 1, 600000, 3600000 },
	{ 0xffffffffffffffffULL, 1, 1, 600000, 86400000 },
};

#define FENCED_GROUP "fenced"

/* The fenced group's allowlist: 198.18.0.0/24 and fd00::/16, each for
 * sources of its own family only. */
static const struct prefix {
	int v6;
	__u8 addr[16]; /* IPv4 in the first 4 bytes */
	int bits;
} allow_list[] = {
	{ 0, { 198, 18, 0, 0 }, 24 },
	{ 1, { 0xfd, 0x00 }, 16 },
};

/* The model's copy of one agent. */
struct magent {
	__u64 id;
	__u32 slot;
	__u32 valid, flags;
	struct vigil_key key[2];
	struct vg_agent m;     /* what vigil_agents[slot] and vigil_agent_info[slot] must hold */
};

static struct magent ag[N_AGENTS];

static struct magent *find_agent(__u64 id)
{
	for (int i = 0; i < N_AGENTS; i++)
		if (ag[i].id == id)
			return &ag[i];
	return NULL;
}

static bool prefix_match(const __u8 *a, const struct prefix *p)
{
	int full = p->bits / 8, rest = p->bits % 8;

	if (memcmp(a, p->addr, full))
		return false;
	return !rest || !((a[full] ^ p->addr[full]) & (0xff << (8 - rest)));
}

static bool source_allowed(const struct magent *a, const __u8 src[16], bool v6)
{
	if (!(a->flags & VIGIL_AUTH_ALLOWLIST))
		return true;
	for (size_t i = 0; i < sizeof(allow_list) / sizeof(allow_list[0]); i++)
		if (allow_list[i].v6 == v6 && prefix_match(v6 ? src : src + 12, &allow_list[i]))
			return true;
	return false;
}

/* ----------------------------------------------------------------- model */

enum outcome {
	O_EINVAL, /* BPF_PROG_TEST_RUN refuses the frame (shorter than Ethernet) */
	O_PASS,   /* not for the beat port */
	O_ACCEPT,
	O_MALFORMED,
	O_BAD_VERSION,
	O_UNKNOWN,
	O_NOT_ALLOWED,
	O_MAPPED,   /* IPv6 from an IPv4-mapped source */
	O_UNAUTH,
	O_BAD_TAG,
	O_DUPLICATE,
	O_REPLAYED, /* too old or an older incarnation */
	O_N,
};

static const char *const outcome_name[O_N] = {
	"einval", "pass", "accept", "malformed", "bad_version", "unknown",
	"not_allowed", "mapped", "unauth", "bad_tag", "duplicate", "replayed",
};

/* What the model says one frame does. */
struct expect {
	int err;                /* errno BPF_PROG_TEST_RUN fails with, or 0 */
	__u32 verdict;
	enum outcome out;
	struct vigil_stats d;   /* counter deltas (events: filled in from the ring) */
	int agent;              /* index of the known agent the frame names, or -1 */
	/* refused at the beat port: what a REJECTED record says */
	__u32 reason;
	__u64 rej_agent_id;
	__u8 src[16];
	/* accepted */
	enum vigil_replay_verdict rv;
	__u32 prev_state;
	__u64 prev_last_seen;
	__u64 prev_deadline;    /* the deadline this beat answers */
	__u64 gap;              /* beats of this incarnation that never arrived */
	__u64 prev_send_ts;     /* the beat before's timestamp, for the lost beats' send time */
	__u32 ivl;              /* the beat's clamped interval */
	__u64 send_ts;          /* its timestamp: the clock estimate moves after the run */
	int n_ev;
	__u32 ev_kind[2], ev_prev[2], ev_state[2];
	bool edge;              /* the last expected record is a state edge */
	__u8 beat[64];          /* the beat as decoded (for the replay history) */
};

/* Where a frame's UDP payload is, per the model's own parser. */
struct l4info {
	int plen;               /* UDP length field - 8, or -1 when below 8 */
	size_t off;             /* payload offset in the frame */
	size_t end;             /* where the datagram's bytes end: the IP packet's
				 * end by its length field, or the frame's if sooner */
	bool truncated;         /* the IP packet's length runs past the frame */
	bool v6;                /* an IPv6 packet */
	__u8 src[16];           /* IPv6 source, or IPv4 mapped (::ffff:a.b.c.d) */
};

/*
 * Is this a UDP datagram to the beat port? Ethernet, at most one 802.1Q or
 * 802.1ad tag, then IPv4 (any header length, not a fragment) or IPv6 with
 * UDP right after the fixed header, each with the right version and a
 * length field at least as long as its header. The packet is as long as that
 * field says (what follows is padding); a UDP header the packet does not
 * hold is not read. Anything else goes up the stack, which drops what it
 * finds wrong with the IP header itself.
 */
static bool model_parse(const __u8 *f, size_t len, struct l4info *o)
{
	size_t off = 14, ihl, ip_end;
	__u16 type = rd16(f + 12);
	__u8 proto;

	if (type == 0x8100 || type == 0x88a8) {
		if (len < 18)
			return false;
		type = rd16(f + 16);
		off = 18;
	}
	switch (type) {
	case 0x0800:
		if (len < off + 20 || f[off] >> 4 != 4)
			return false;
		ihl = (f[off] & 0x0f) * 4u;
		if (ihl < 20 || len < off + ihl || rd16(f + off + 2) < ihl)
			return false;
		if (rd16(f + off + 6) & 0x3fff) /* more fragments, or an offset */
			return false;
		memset(o->src, 0, 10);
		o->src[10] = o->src[11] = 0xff;
		memcpy(o->src + 12, f + off + 12, 4);
		proto = f[off + 9];
		ip_end = off + rd16(f + off + 2);
		off += ihl;
		break;
	case 0x86dd:
		if (len < off + 40 || f[off] >> 4 != 6)
			return false;
		memcpy(o->src, f + off + 8, 16);
		o->v6 = true;
		proto = f[off + 6];
		ip_end = off + 40 + rd16(f + off + 4);
		off += 40;
		break;
	default:
		return false;
	}
	o->truncated = ip_end > len;
	o->end = o->truncated ? len : ip_end;
	if (proto != 17 || o->end < off + 8 || rd16(f + off + 2) != BEAT_PORT)
		return false;
	o->plen = (int)rd16(f + off + 4) - 8;
	if (o->plen < 0)
		o->plen = -1;
	o->off = off + 8;
	return true;
}

static const __u8 v4mapped_prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

static void refuse(struct expect *e, enum outcome out, __u32 reason, __u64 agent_id)
{
	e->out = out;
	e->reason = reason;
	e->rej_agent_id = agent_id;
}

static void expect_event(struct expect *e, __u32 kind, __u32 prev, __u32 state)
{
	e->ev_kind[e->n_ev] = kind;
	e->ev_prev[e->n_ev] = prev;
	e->ev_state[e->n_ev] = state;
	e->n_ev++;
	e->edge = prev != state;
}

/*
 * Predict what vigil_xdp does with a frame, and apply it to the model's
 * agents. Time-dependent fields (last_seen_ns, state_since_ns,
 * last_event_seq, the gap histogram) are settled in check_frame() once the
 * kernel's clock reading and event sequence are known.
 */
static void model_frame(const __u8 *f, size_t len, struct expect *e)
{
	union {
		struct vigil_beat b;
		__u8 u[64];
	} beat;
	struct vigil_beat_info bi = {};
	enum vigil_beat_verdict v;
	struct l4info p = {};
	struct magent *a;
	size_t present;
	__u64 prev_top;
	bool late;
	__u32 st;

	memset(e, 0, sizeof(*e));
	e->agent = -1;
	if (len < 14) {
		e->err = EINVAL;
		e->out = O_EINVAL;
		return;
	}
	e->d.packets = 1;
	if (!model_parse(f, len, &p)) {
		e->verdict = XDP_PASS;
		e->d.passed = 1;
		e->out = O_PASS;
		return;
	}
	e->verdict = XDP_DROP; /* pass_beats = 0: every beat-port datagram is consumed */
	memcpy(e->src, p.src, 16);
	if (p.v6 && !memcmp(p.src, v4mapped_prefix, sizeof(v4mapped_prefix))) {
		/* It would pass for IPv4 source a.b.c.d: refused unread. */
		e->d.mapped_source = 1;
		refuse(e, O_MAPPED, VIGIL_REJECT_MAPPED_SOURCE, 0);
		return;
	}
	if (p.plen < 0) {
		e->d.malformed = 1;
		refuse(e, O_MALFORMED, VIGIL_REJECT_MALFORMED, 0);
		return;
	}

	/* A complete datagram is decoded at its UDP length (padding after it
	 * is ignored). One that is not all there (the UDP length claims more
	 * than the IP packet holds, or the packet runs past the frame) is judged
	 * on the bytes that are, and is never a valid beat. */
	memset(&beat, 0, sizeof(beat));
	present = p.end - p.off;
	if (!p.truncated && present >= (size_t)p.plen) {
		memcpy(beat.u, f + p.off, p.plen < 64 ? (size_t)p.plen : 64);
		v = vigil_beat_decode(&beat.b, p.plen, &bi);
	} else {
		if (present > (size_t)p.plen)
			present = p.plen;
		memcpy(beat.u, f + p.off, present < 64 ? present : 64);
		v = vigil_beat_decode(&beat.b, present, &bi);
		if (v == VIGIL_BEAT_OK)
			v = VIGIL_BEAT_MALFORMED;
	}
	memcpy(e->beat, beat.u, 64);

	a = bi.has_agent_id ? find_agent(bi.agent_id) : NULL;
	if (a)
		e->agent = (int)(a - ag);
	if (v == VIGIL_BEAT_BAD_VERSION) {
		e->d.bad_version = 1;
		if (a)
			a->m.i.bad_version++;
		refuse(e, O_BAD_VERSION, VIGIL_REJECT_BAD_VERSION, bi.has_agent_id ? bi.agent_id : 0);
		return;
	}
	if (v != VIGIL_BEAT_OK) {
		e->d.malformed = 1;
		if (a)
			a->m.i.malformed++;
		refuse(e, O_MALFORMED, VIGIL_REJECT_MALFORMED, bi.has_agent_id ? bi.agent_id : 0);
		return;
	}
	if (!a) {
		e->d.unknown_agent = 1;
		refuse(e, O_UNKNOWN, VIGIL_REJECT_UNKNOWN_AGENT, bi.agent_id);
		return;
	}
	if (!source_allowed(a, p.src, p.v6)) {
		e->d.not_allowed = 1;
		refuse(e, O_NOT_ALLOWED, VIGIL_REJECT_NOT_ALLOWED, bi.agent_id);
		return;
	}
	if (!(bi.flags & VIGIL_F_MAC)) { /* auth_required = 1 */
		e->d.unauthenticated = 1;
		refuse(e, O_UNAUTH, VIGIL_REJECT_UNAUTHENTICATED, bi.agent_id);
		return;
	}
	if (!(a->valid & (1u << bi.key_id)) || !vigil_beat_tag_ok(&beat.b, &a->key[bi.key_id])) {
		e->d.bad_tag = 1;
		a->m.i.bad_tag++;
		refuse(e, O_BAD_TAG, VIGIL_REJECT_BAD_TAG, bi.agent_id);
		return;
	}
	prev_top = a->m.s.replay.top; /* the sequence of the agent's last beat */
	e->rv = vigil_replay_check(&a->m.s.replay, bi.incarnation, bi.seq, WINDOW);
	if (!vigil_replay_accepted(e->rv)) {
		if (e->rv == VIGIL_REPLAY_DUPLICATE) {
			e->d.duplicates = 1;
			a->m.i.duplicates++;
			refuse(e, O_DUPLICATE, VIGIL_REJECT_REPLAY, bi.agent_id);
		} else {
			e->d.replayed = 1;
			a->m.i.replayed++;
			refuse(e, O_REPLAYED, VIGIL_REJECT_REPLAY, bi.agent_id);
		}
		return;
	}

	/* Accepted. A late beat (inside the window, below the top) proves the
	 * agent alive and nothing more: what it reports is older than what the
	 * slot holds, so sequence, status, interval, lease and LEAVING stay as
	 * the newest beat left them, and it does not bring back a LEFT agent. */
	e->out = O_ACCEPT;
	st = e->prev_state = a->m.s.state;
	e->prev_last_seen = a->m.s.last_seen_ns;
	e->prev_deadline = vigil_deadline(a->m.s.last_seen_ns, a->m.s.interval_ms, a->m.s.multiplier);
	e->send_ts = bi.send_ts_ns;
	e->ivl = vigil_clamp_interval(bi.interval_ms, a->m.s.interval_min_ms, a->m.s.interval_max_ms);
	e->prev_send_ts = a->m.s.send_ts_ns;
	e->gap = e->rv == VIGIL_REPLAY_NEWER && st != VIGIL_AGENT_NEW && bi.seq > prev_top + 1 &&
			 bi.seq - prev_top - 1 <= VIGIL_LOSS_GAP_MAX ?
		 bi.seq - prev_top - 1 : 0;
	late = e->rv == VIGIL_REPLAY_LATE;
	if (late) {
		a->m.i.reordered++;
		e->d.reordered = 1;
	} else {
		a->m.s.send_ts_ns = bi.send_ts_ns;
		a->m.s.interval_ms = vigil_clamp_interval(bi.interval_ms, a->m.s.interval_min_ms,
							a->m.s.interval_max_ms);
		a->m.s.status = bi.status;
		a->m.s.queue_depth = bi.queue_depth;
		a->m.s.lease_id = bi.lease_id;
	}
	if (e->rv == VIGIL_REPLAY_RESTART) {
		a->m.i.restarts++;
		e->d.restarts = 1;
	}
	a->m.s.beats++;
	e->d.beats = 1;
	if (e->rv == VIGIL_REPLAY_RESTART)
		expect_event(e, VIGIL_EV_RESTART, st, st);
	if (!late && bi.status == VIGIL_STATUS_LEAVING) {
		if (st != VIGIL_AGENT_LEFT)
			expect_event(e, VIGIL_EV_LEFT, st, VIGIL_AGENT_LEFT);
	} else if (st == VIGIL_AGENT_NEW || (st == VIGIL_AGENT_LEFT && !late)) {
		expect_event(e, VIGIL_EV_UP, st, VIGIL_AGENT_ALIVE);
	} else if (st == VIGIL_AGENT_SUSPECT || st == VIGIL_AGENT_DEAD) {
		expect_event(e, VIGIL_EV_RECOVERED, st, VIGIL_AGENT_ALIVE);
	}
	if (e->n_ev && e->edge)
		a->m.s.state = e->ev_state[e->n_ev - 1];
}

/* ------------------------------------------------------------- generator */

enum frame_class {
	C_VALID, C_BITFLIP, C_TRUNC, C_RANDOM, C_RANDPAYLOAD, C_UNKNOWN, C_WRONG_KEY,
	C_WRONG_KEYID, C_NO_TAG, C_REPLAY, C_WINDOW, C_INCARNATION, C_FIELDS, C_UDPLEN,
	C_OTHER, C_IPHDR, C_N,
};

static const char *const class_name[C_N] = {
	"valid", "bitflip", "truncated", "random", "rand-payload", "unknown-id", "wrong-key",
	"wrong-key-id", "no-tag", "replay", "window", "incarnation", "bad-fields", "udp-len",
	"other-port", "ip-header",
};

/* Per mille; sums to 1000. */
static const __u32 class_weight[C_N] = {
	170, 150, 100, 30, 40, 40, 50, 40, 40, 60, 80, 30, 50, 40, 50, 30,
};

/* How a frame is wrapped around its payload. */
struct shape {
	int vlans;
	__u16 tpid[2];
	__u16 type;        /* ethertype after the tags */
	int ip_opt_words;  /* IPv4 options, in 32-bit words */
	__u16 frag_off;    /* IPv4 flags and fragment offset */
	int hbh;           /* IPv6: a hop-by-hop header before the L4 header */
	__u8 proto;
	__u16 sport, dport;
	int udp_len;       /* UDP length field; -1: the true length */
	int trailer;       /* zero padding after the datagram */
	__u8 src[16];      /* IPv4 in bytes 12..15 */
};

static const __u8 src_pool[][16] = {
	{ 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 198, 18, 0, 2 },   /* default, allowed */
	{ 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 198, 18, 0, 200 }, /* allowed */
	{ 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 198, 18, 1, 2 },   /* not allowed */
	{ 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 1 },     /* not allowed */
	{ 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2 },          /* default v6, allowed */
	{ 0xfd, 0, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1 },    /* allowed */
	{ 0xfd, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2 },          /* not allowed */
	{ 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 198, 18, 0, 9 },   /* in IPv6: mapped, refused */
};

static const __u8 dst4[4] = { 198, 18, 0, 1 };
static const __u8 dst6[16] = { 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1 };

static __u16 ip_csum(const __u8 *p, size_t n)
{
	__u32 sum = 0;

	for (size_t i = 0; i + 1 < n; i += 2)
		sum += rd16(p + i);
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

static size_t build_frame(__u8 *buf, const struct shape *sh, const __u8 *pl, size_t plen)
{
	static const __u8 dmac[6] = { 2, 0, 0, 0, 0, 1 }, smac[6] = { 2, 0, 0, 0, 0, 2 };
	size_t n = 12, iphl;

	memcpy(buf, dmac, 6);
	memcpy(buf + 6, smac, 6);
	for (int i = 0; i < sh->vlans; i++) {
		wr16(buf + n, sh->tpid[i]);
		wr16(buf + n + 2, 100 + i);
		n += 4;
	}
	wr16(buf + n, sh->type);
	n += 2;
	if (sh->type == 0x0800) {
		iphl = 20 + 4 * sh->ip_opt_words;
		buf[n] = 0x40 | (__u8)(iphl / 4);
		buf[n + 1] = 0;
		wr16(buf + n + 2, (__u16)(iphl + 8 + plen));
		wr16(buf + n + 4, 0x1234);
		wr16(buf + n + 6, sh->frag_off);
		buf[n + 8] = 64;
		buf[n + 9] = sh->proto;
		wr16(buf + n + 10, 0);
		memcpy(buf + n + 12, sh->src + 12, 4);
		memcpy(buf + n + 16, dst4, 4);
		memset(buf + n + 20, 1, iphl - 20); /* NOP options */
		wr16(buf + n + 10, ip_csum(buf + n, iphl));
		n += iphl;
	} else if (sh->type == 0x86dd) {
		wr32(buf + n, 0x60000000);
		wr16(buf + n + 4, (__u16)((sh->hbh ? 8 : 0) + 8 + plen));
		buf[n + 6] = sh->hbh ? 0 : sh->proto;
		buf[n + 7] = 64;
		memcpy(buf + n + 8, sh->src, 16);
		memcpy(buf + n + 24, dst6, 16);
		n += 40;
		if (sh->hbh) {
			buf[n] = sh->proto;
			buf[n + 1] = 0;
			buf[n + 2] = 1; /* PadN, 4 bytes */
			buf[n + 3] = 4;
			memset(buf + n + 4, 0, 4);
			n += 8;
		}
	} else { /* ARP or anything else: the payload as opaque bytes */
		memcpy(buf + n, pl, plen);
		n += plen;
		goto out;
	}
	/* UDP (or whatever proto says) with a zero checksum: XDP does not
	 * verify L4 checksums; the tag protects the beat. */
	wr16(buf + n, sh->sport);
	wr16(buf + n + 2, sh->dport);
	wr16(buf + n + 4, sh->udp_len < 0 ? (__u16)(8 + plen) : (__u16)sh->udp_len);
	wr16(buf + n + 6, 0);
	n += 8;
	memcpy(buf + n, pl, plen);
	n += plen;
out:
	memset(buf + n, 0, sh->trailer);
	return n + sh->trailer;
}

/* Offset of the L4 header for a shape (IP types only). */
static size_t l4_offset(const struct shape *sh)
{
	size_t n = 14 + 4 * sh->vlans;

	if (sh->type == 0x0800)
		return n + 20 + 4 * sh->ip_opt_words;
	return n + 40 + (sh->hbh ? 8 : 0);
}

/* The way most agents' beats arrive, with some variety. */
static void random_shape(struct shape *sh)
{
	bool v6 = chance(250);

	memset(sh, 0, sizeof(*sh));
	sh->type = v6 ? 0x86dd : 0x0800;
	if (chance(80)) {
		sh->vlans = 1;
		sh->tpid[0] = chance(800) ? 0x8100 : 0x88a8;
	}
	if (!v6 && chance(50))
		sh->ip_opt_words = 1 + below(10);
	sh->frag_off = 0x4000; /* DF */
	sh->proto = 17;
	sh->sport = 1024 + below(60000);
	sh->dport = BEAT_PORT;
	sh->udp_len = -1;
	if (chance(100))
		sh->trailer = 1 + below(32);
	if (chance(100))
		memcpy(sh->src, src_pool[(v6 ? 4 : 0) + below(4)], 16);
	else
		memcpy(sh->src, src_pool[v6 ? 4 : 0], 16);
}

union beatbuf {
	struct vigil_beat b;
	__u8 u[64];
};

static __u8 pick_status(void)
{
	__u32 r = below(1000);

	if (r < 3)
		return VIGIL_STATUS_LEAVING;
	if (r < 750)
		return VIGIL_STATUS_OK;
	return r < 875 ? VIGIL_STATUS_DEGRADED : VIGIL_STATUS_DRAINING;
}

static __u32 pick_interval(const struct magent *a)
{
	__u32 lo = a->m.s.interval_min_ms, hi = a->m.s.interval_max_ms;

	switch (below(9)) {
	case 0: return 1;
	case 1: return lo - 1;
	case 2: return lo;
	case 3: return lo + 1;
	case 4: return hi;
	case 5: return hi + 1;
	case 6: return 0xffffffffu;
	case 7: return 1 + below(0xfffffffe);
	default: return lo + below(hi - lo + 1);
	}
}

static __u8 pick_key_id(const struct magent *a)
{
	if (a->valid == 1)
		return 0;
	if (a->valid == 2)
		return 1;
	return (__u8)below(2);
}

/* The next beat an honest agent would send: next sequence in its current
 * incarnation (sometimes skipping a few), or a fresh start. */
static void honest_info(struct vigil_beat_info *bi, const struct magent *a)
{
	memset(bi, 0, sizeof(*bi));
	bi->agent_id = a->id;
	if (a->m.s.replay.started && a->m.s.replay.top < ~0ULL - (1ULL << 20)) {
		bi->incarnation = a->m.s.replay.incarnation;
		bi->seq = a->m.s.replay.top + 1 + (chance(200) ? below(200) : 0);
	} else if (a->m.s.replay.started) { /* about to wrap: an agent restarts its count */
		bi->incarnation = a->m.s.replay.incarnation + 1;
		bi->seq = 0;
	} else {
		bi->incarnation = below(4);
		bi->seq = chance(700) ? below(1000) : rnd() >> below(64);
	}
	bi->status = pick_status();
	bi->queue_depth = chance(500) ? (__u16)below(8) : (__u16)rnd();
	bi->lease_id = chance(500) ? 0 : (__u32)rnd();
	/* Mostly a clock that makes sense (ours, shifted per agent, sometimes
	 * a little behind: a beat delayed on its way), else anything at all. */
	bi->send_ts_ns = chance(700) ? vg_mono_ns() + (__u64)(a - ag) * 1000000007ULL -
					       (chance(300) ? below(50000000) : 0) :
				       chance(500) ? 0 : rnd();
	bi->interval_ms = pick_interval(a);
	bi->flags = VIGIL_F_MAC;
	bi->key_id = pick_key_id(a);
}

/* Encode, and sign with k (NULL: leave unsigned). */
static void make_beat(union beatbuf *bb, const struct vigil_beat_info *bi, const struct vigil_key *k)
{
	vigil_beat_encode(&bb->b, bi);
	if (k)
		vigil_beat_sign(&bb->b, k, bi->key_id);
}

static void random_key(struct vigil_key *k)
{
	k->k0 = rnd();
	k->k1 = rnd();
}

/* History of accepted beats, for replays. */
#define HIST 1024
static struct {
	__u8 beat[64];
} hist[HIST];
static size_t hist_n;

/* A signed beat whose IP header the stack would find wrong: another
 * version, or a length field shorter than the headers, shorter than the
 * datagram, or longer than the frame (the IPv4 checksum is kept right). */
static void spoil_ip_header(__u8 *buf, const struct shape *sh, size_t len)
{
	bool v4 = sh->type == 0x0800;
	size_t ip = 14 + 4 * sh->vlans, hl = v4 ? 20 + 4 * sh->ip_opt_words : 40;
	/* The length field counts the whole packet (IPv4) or what follows
	 * the fixed header (IPv6); headers_min is where UDP's header ends. */
	__u32 field = (__u32)(len - sh->trailer - ip - (v4 ? 0 : 40));
	__u32 headers_min = (__u32)(v4 ? hl + 8 : (sh->hbh ? 16 : 8)), r = below(10), v;

	if (r < 3) {
		do
			v = below(16);
		while (v == (v4 ? 4u : 6u));
		buf[ip] = (__u8)(v << 4 | (buf[ip] & 0x0f));
	} else {
		if (r < 4)
			v = below(headers_min);
		else if (r < 7)
			v = field - 1 - below(72);
		else if (r < 9)
			v = field + 1 + below(40);
		else
			v = (__u32)rnd() & 0xffff;
		wr16(buf + ip + (v4 ? 2 : 4), (__u16)v);
	}
	if (v4) {
		wr16(buf + ip + 10, 0);
		wr16(buf + ip + 10, ip_csum(buf + ip, hl));
	}
}

/* Build one frame of class c into buf; returns its length. */
static size_t gen_frame(int c, __u8 *buf)
{
	struct magent *a = &ag[below(N_AGENTS)];
	__u8 pl[FRAME_MAX];
	size_t plen = 64, len, l4, cut;
	struct vigil_beat_info bi;
	struct vigil_key k;
	union beatbuf bb;
	struct shape sh;
	__u32 r;

	random_shape(&sh);
	honest_info(&bi, a);

	switch (c) {
	case C_VALID:
	case C_BITFLIP:
	case C_TRUNC:
	case C_IPHDR:
		make_beat(&bb, &bi, &a->key[bi.key_id]);
		break;
	case C_RANDOM:
		len = 14 + below(300);
		rnd_bytes(buf, len);
		if (chance(400)) { /* make it reach the beat port with random L4 bytes */
			size_t o = 14;

			if (rnd() & 1) {
				wr16(buf + 12, 0x0800);
				buf[o] = 0x45;
				wr16(buf + o + 6, 0);
				buf[o + 9] = 17;
				o += 20;
			} else {
				wr16(buf + 12, 0x86dd);
				buf[o + 6] = 17;
				o += 40;
			}
			if (len < o + 8)
				len = o + 8 + below(80);
			rnd_bytes(buf + o, len - o);
			wr16(buf + o + 2, BEAT_PORT);
			if (chance(500))
				wr16(buf + o + 4, (__u16)(len - o));
			if (chance(300) && len >= o + 8 + 4) {
				wr16(buf + o + 8, VIGIL_MAGIC);
				buf[o + 10] = VIGIL_VERSION;
			}
		}
		return len;
	case C_RANDPAYLOAD:
		plen = chance(200) ? 64 : below(100);
		rnd_bytes(pl, plen);
		if (plen >= 4 && chance(600)) {
			wr16(pl, VIGIL_MAGIC);
			if (chance(500))
				pl[2] = VIGIL_VERSION;
		}
		if (plen >= 16 && chance(400)) {
			bb.b.agent_id = vg_be64(a->id);
			memcpy(pl + 8, &bb.b.agent_id, 8);
		}
		if (plen == 64 && chance(300)) {
			/* random but well-formed: random sequence and incarnation */
			memcpy(bb.u, pl, 64);
			bb.b.magic = vg_be16(VIGIL_MAGIC);
			bb.b.version = VIGIL_VERSION;
			bb.b.flags &= VIGIL_F_KNOWN;
			bb.b.status &= 3;
			bb.b.reserved = 0;
			if (!bb.b.interval_ms)
				bb.b.interval_ms = vg_be32(1);
			bb.b.incarnation = vg_be32(below(8));
			bb.b.agent_id = vg_be64(a->id);
			if (bb.b.status == VIGIL_STATUS_LEAVING && !chance(20))
				bb.b.status = 0;
			if (chance(800)) {
				__u8 kid = pick_key_id(a);

				vigil_beat_sign(&bb.b, &a->key[kid], kid);
			}
			memcpy(pl, bb.u, 64);
		}
		return build_frame(buf, &sh, pl, plen);
	case C_UNKNOWN:
		r = below(10);
		if (r < 5)
			bi.agent_id = rnd();
		else if (r < 8)
			bi.agent_id = a->id ^ (1ULL << below(64));
		else
			bi.agent_id = below(20); /* sometimes a known one after all */
		random_key(&k);
		make_beat(&bb, &bi, &k);
		break;
	case C_WRONG_KEY:
		r = below(10);
		if (r < 4)
			k = ag[below(N_AGENTS)].key[below(2)]; /* may be its own: then fine */
		else if (r < 7)
			k = a->key[bi.key_id ^ 1];
		else
			random_key(&k);
		make_beat(&bb, &bi, &k);
		break;
	case C_WRONG_KEYID:
		if (a->valid != 3 && chance(500)) {
			/* a key slot the agent does not have, signed with its bytes */
			bi.key_id = a->valid == 1 ? 1 : 0;
			make_beat(&bb, &bi, &a->key[bi.key_id]);
		} else {
			/* signed with one key, naming the other */
			__u8 kid = bi.key_id;

			bi.key_id ^= 1;
			vigil_beat_encode(&bb.b, &bi);
			bb.b.flags |= VIGIL_F_MAC;
			{
				__u64 tag = vigil_beat_tag(&bb.b, &a->key[kid]);

				for (int i = 0; i < 8; i++)
					bb.u[48 + i] = (__u8)(tag >> (8 * i));
			}
		}
		break;
	case C_NO_TAG:
		r = below(10);
		if (r < 4) { /* no tag at all */
			bi.flags = 0;
			make_beat(&bb, &bi, NULL);
		} else if (r < 6) { /* a good tag, but the flag cleared afterwards */
			make_beat(&bb, &bi, &a->key[bi.key_id]);
			bb.b.flags &= ~VIGIL_F_MAC;
		} else if (r < 8) { /* flag set, mac all zero */
			make_beat(&bb, &bi, NULL);
		} else { /* good tag, junk in the unused half of mac[] */
			make_beat(&bb, &bi, &a->key[bi.key_id]);
			bb.u[56 + below(8)] |= (__u8)(1 + below(255));
		}
		break;
	case C_REPLAY:
		memcpy(bb.u, hist[below(hist_n < HIST ? (__u32)hist_n : HIST)].beat, 64);
		break;
	case C_WINDOW:
		if (a->m.s.replay.started) {
			__u64 top = a->m.s.replay.top;

			r = below(10);
			if (r < 5)
				bi.seq = top - below(80);
			else if (r < 7)
				bi.seq = top + 1 + below(100);
			else if (r < 8)
				bi.seq = top + 64 + below(1000);
			else if (r < 9)
				bi.seq = top - 65 + below(4); /* the window's edge */
			else
				bi.seq = top + (1ULL << below(64));
		}
		make_beat(&bb, &bi, &a->key[bi.key_id]);
		break;
	case C_INCARNATION:
		if (a->m.s.replay.started) {
			if (chance(650) || a->m.s.replay.incarnation == 0) {
				bi.incarnation = a->m.s.replay.incarnation + 1 + below(3);
				bi.seq = chance(300) ? 0 : below(100);
			} else {
				bi.incarnation = a->m.s.replay.incarnation - 1 -
						 (a->m.s.replay.incarnation > 1 ? below(2) : 0);
				bi.seq = a->m.s.replay.top + 1;
			}
		}
		make_beat(&bb, &bi, &a->key[bi.key_id]);
		break;
	case C_FIELDS:
		vigil_beat_encode(&bb.b, &bi);
		bb.b.flags = VIGIL_F_MAC;
		switch (below(7)) {
		case 0: {
			static const __u8 versions[] = { 0, 2, 3, 0x81, 0xff };

			bb.b.version = versions[below(sizeof(versions))];
			break;
		}
		case 1: bb.b.flags |= (__u8)(2 << below(7)); break;
		case 2: bb.b.status = (__u8)(4 + below(252)); break;
		case 3: bi.key_id = (__u8)(2 + below(254)); break;
		case 4: bb.b.reserved = (__u32)rnd() | 1; break;
		case 5: bb.b.interval_ms = 0; break;
		default: bb.b.magic ^= vg_be16((__u16)(1 + below(0xffff))); break;
		}
		{ /* signed after the change, so only the field is wrong */
			const struct vigil_key *kk = &a->key[bi.key_id & 1];

			vigil_beat_sign(&bb.b, kk, bi.key_id);
		}
		if (bb.b.version != VIGIL_VERSION && chance(300))
			plen = 4 + below(60);
		break;
	case C_UDPLEN:
		make_beat(&bb, &bi, &a->key[bi.key_id]);
		r = below(10);
		if (r < 2)
			sh.udp_len = below(8);
		else if (r < 3)
			sh.udp_len = 8;
		else if (r < 5)
			sh.udp_len = 8 + below(64);
		else if (r < 6)
			sh.udp_len = 8 + 65 + below(200);
		else if (r < 7)
			sh.udp_len = 0xffff;
		else if (r < 8)
			sh.udp_len = 72; /* true; extra bytes after the datagram below */
		else
			sh.udp_len = 8 + 64 + 1 + below(40); /* covers the extra bytes */
		if (r >= 7) {
			memcpy(pl, bb.u, 64);
			plen = 64 + 1 + below(40);
			rnd_bytes(pl + 64, plen - 64);
			return build_frame(buf, &sh, pl, plen);
		}
		break;
	case C_OTHER:
		make_beat(&bb, &bi, &a->key[bi.key_id]);
		switch (below(9)) {
		case 0: {
			static const __u16 ports[] = { 0, BEAT_PORT - 1, BEAT_PORT + 1, 0x8b12, 53 };

			sh.dport = chance(500) ? ports[below(5)] : (__u16)rnd();
			if (sh.dport == BEAT_PORT)
				sh.dport++;
			break;
		}
		case 1: sh.sport = BEAT_PORT; sh.dport = 40000; break;
		case 2: {
			static const __u8 protos[] = { 6, 1, 0, 255, 58, 132 };

			sh.proto = protos[below(sizeof(protos))];
			break;
		}
		case 3: sh.type = chance(500) ? 0x0806 : (__u16)rnd(); break;
		case 4: /* IPv4 fragments, and flag values that are not fragments */
			sh.type = 0x0800;
			sh.vlans = 0;
			{
				static const __u16 fo[] = { 0x2000, 0x0001, 0x2001, 0x1fff, 0x6000,
							    0x0000, 0x8000, 0x4000 };

				sh.frag_off = fo[below(sizeof(fo) / sizeof(fo[0]))];
			}
			memcpy(sh.src, src_pool[0], 16);
			break;
		case 5: /* IPv6 with a hop-by-hop header */
			sh.type = 0x86dd;
			sh.hbh = 1;
			memcpy(sh.src, src_pool[4], 16);
			break;
		case 6: /* two tags (QinQ) */
			sh.vlans = 2;
			sh.tpid[0] = 0x88a8;
			sh.tpid[1] = 0x8100;
			break;
		case 7: /* ethertype says IPv6, the packet is IPv4, or the reverse */
			sh.type = sh.type == 0x0800 ? 0x86dd : 0x0800;
			len = build_frame(buf, &sh, bb.u, 64);
			wr16(buf + 12 + 4 * sh.vlans, sh.type == 0x0800 ? 0x86dd : 0x0800);
			return len;
		default: /* TCP-sized header claiming UDP */
			sh.proto = 6;
			break;
		}
		break;
	}

	len = build_frame(buf, &sh, bb.u, plen);
	if (c == C_IPHDR)
		spoil_ip_header(buf, &sh, len);
	else if (c == C_BITFLIP) {
		int flips = 1 + below(3);

		for (int i = 0; i < flips; i++) {
			size_t pos = chance(500) ? len - sh.trailer - 64 + below(64) : below(len);

			buf[pos] ^= (__u8)(1 << below(8));
		}
	} else if (c == C_TRUNC) {
		/* Cut at every layer, mostly right at a boundary. */
		l4 = l4_offset(&sh);
		r = below(100);
		if (r < 2) {
			cut = below(14);
		} else if (r < 25) {
			cut = below(len);
		} else if (r < 35) {
			cut = 14 + below((__u32)(l4 - 14 + 1)); /* inside L2/L3 */
		} else if (r < 45) {
			cut = l4 + below(9); /* inside UDP */
		} else {
			static const int at[] = { 0, 1, 2, 3, 4, 5, 8, 15, 16, 17, 24, 36, 47, 48, 56, 63 };

			cut = l4 + 8 + at[below(sizeof(at) / sizeof(at[0]))];
		}
		if (cut < len)
			len = cut;
	}
	return len;
}

/* ------------------------------------------------------ kernel plumbing */

#define EV_MAX 16
static struct vigil_event pkt_ev[EV_MAX];
static int pkt_ev_n, ev_overflow, ev_bad_size;
static __u64 last_event_seq;
/* The monitor's own health records (the sweeper's, whenever this machine
 * holds it up, or beats arriving late) are no frame's: their sequences are
 * kept to skip them, and `events` may count them a frame early or late. */
#define H_MAX 4096
static __u64 hseq[H_MAX];
static int h_n, h_frame;
static __s64 ev_balance; /* stats `events` minus records received */

static bool health_seq(__u64 seq)
{
	for (int i = 0; i < h_n; i++)
		if (hseq[i] == seq)
			return true;
	return false;
}

/* Step last_event_seq over health records. */
static void skip_health(void)
{
	while (health_seq(last_event_seq + 1))
		last_event_seq++;
}

static int on_event(void *ctx, void *data, size_t len)
{
	(void)ctx;
	if (len != sizeof(struct vigil_event)) {
		ev_bad_size++;
		return 0;
	}
	if (vg_kind_is_monitor(((const struct vigil_event *)data)->kind)) {
		if (h_n < H_MAX)
			hseq[h_n++] = ((const struct vigil_event *)data)->event_seq;
		h_frame++;
		return 0;
	}
	if (pkt_ev_n == EV_MAX) {
		ev_overflow++;
		return 0;
	}
	memcpy(&pkt_ev[pkt_ev_n++], data, sizeof(struct vigil_event));
	return 0;
}

static int xdp_run(const __u8 *frame, size_t len, __u32 *ret, __u64 *t0, __u64 *t1)
{
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = frame, .data_size_in = (__u32)len);
	int err;

	*t0 = vg_mono_ns();
	err = bpf_prog_test_run_opts(xdp_fd, &o);
	*t1 = vg_mono_ns();
	*ret = o.retval;
	if (err)
		return err < 0 ? err : -errno;
	return 0;
}

static int read_slots(struct vg_agent *out)
{
	for (int i = 0; i < N_AGENTS; i++)
		if (vg_agent_at(&maps, ag[i].slot, &out[i]))
			return -ENOENT;
	return 0;
}

/* An agent's slot as its lock holder sees it: the replay window whole. */
static int read_guard(int i, struct agent_slot *g)
{
	return bpf_map_lookup_elem_flags(maps.agents, &ag[i].slot, g, BPF_F_LOCK) ? -errno : 0;
}

/* -------------------------------------------------------------- checking */

struct field {
	const char *name;
	size_t off, size;
};

#define SLOT_F(f) { #f, offsetof(struct vg_agent, f), sizeof(((struct vg_agent *)0)->f) }
static const struct field slot_fields[] = {
	SLOT_F(s.agent_id), SLOT_F(s.last_seen_ns), SLOT_F(s.replay.top), SLOT_F(s.replay.seen),
	SLOT_F(s.replay.incarnation), SLOT_F(s.replay.started), SLOT_F(s.rate_tat),
	SLOT_F(s.send_ts_ns), SLOT_F(s.clock_off_ns), SLOT_F(s.clock_at_ns),
	SLOT_F(s.hold_since_ns), SLOT_F(s.beats), SLOT_F(s.state), SLOT_F(s.lock),
	SLOT_F(s.interval_ms), SLOT_F(s.interval_min_ms), SLOT_F(s.interval_max_ms),
	SLOT_F(s.rate_interval_ms), SLOT_F(s.lease_id), SLOT_F(s.gap_run), SLOT_F(s.multiplier),
	SLOT_F(s.queue_depth), SLOT_F(s.rxq), SLOT_F(s.status), SLOT_F(s.gap_bucket),
	SLOT_F(i.state_since_ns), SLOT_F(i.last_event_seq), SLOT_F(i.duplicates),
	SLOT_F(i.reordered), SLOT_F(i.malformed), SLOT_F(i.bad_version), SLOT_F(i.restarts),
	SLOT_F(i.bad_tag), SLOT_F(i.replayed), SLOT_F(i.over_rate), SLOT_F(i.gap_hist),
	SLOT_F(i.name), SLOT_F(i.group),
};

/* What an accepted beat writes, apart from counters: if any of these moves
 * on a refused frame, a bad beat changed an agent. */
static const struct field beat_fields[] = {
	SLOT_F(s.last_seen_ns), SLOT_F(s.replay), SLOT_F(s.send_ts_ns), SLOT_F(i.state_since_ns),
	SLOT_F(i.last_event_seq), SLOT_F(s.beats), SLOT_F(s.state), SLOT_F(s.interval_ms),
	SLOT_F(s.lease_id), SLOT_F(s.queue_depth), SLOT_F(s.status), SLOT_F(s.gap_run),
};

#define STAT_F(f) { #f, offsetof(struct vigil_stats, f), 8 }
static const struct field stat_fields[] = {
	STAT_F(packets), STAT_F(beats), STAT_F(passed), STAT_F(malformed), STAT_F(bad_version),
	STAT_F(unknown_agent), STAT_F(duplicates), STAT_F(reordered), STAT_F(restarts),
	STAT_F(events), STAT_F(ringbuf_full), STAT_F(queue_full), STAT_F(stale_slot),
	STAT_F(not_allowed), STAT_F(unauthenticated), STAT_F(bad_tag), STAT_F(replayed),
	STAT_F(over_rate_agent), STAT_F(over_rate_source), STAT_F(verdicts_held),
	STAT_F(held_decided), STAT_F(held_unverified), STAT_F(held_cancelled),
	STAT_F(held_by_beat), STAT_F(held_ns), STAT_F(held_max_ns), STAT_F(corrected),
	STAT_F(lost_beats), STAT_F(mapped_source),
};

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

static __u64 fval(const void *base, const struct field *f)
{
	const __u8 *p = (const __u8 *)base + f->off;
	__u64 v = 0;

	switch (f->size) {
	case 8: memcpy(&v, p, 8); break;
	case 4: { __u32 x; memcpy(&x, p, 4); v = x; break; }
	case 2: { __u16 x; memcpy(&x, p, 2); v = x; break; }
	case 1: v = *p; break;
	}
	return v;
}

/* Diagnostics of the current frame, printed if it is among the first
 * mismatches. */
static char why[8192];
static size_t why_n;

__attribute__((format(printf, 1, 2))) static void whyf(const char *fmt, ...)
{
	va_list ap;
	int n;

	if (why_n >= sizeof(why) - 1)
		return;
	va_start(ap, fmt);
	n = vsnprintf(why + why_n, sizeof(why) - why_n, fmt, ap);
	va_end(ap);
	if (n > 0)
		why_n += (size_t)n < sizeof(why) - why_n ? (size_t)n : sizeof(why) - why_n - 1;
}

static int diff_fields(const char *what, const void *want, const void *got,
		       const struct field *fs, size_t nf, size_t whole)
{
	int n = 0;

	for (size_t i = 0; i < nf; i++) {
		const struct field *f = &fs[i];

		if (!memcmp((const __u8 *)want + f->off, (const __u8 *)got + f->off, f->size))
			continue;
		n++;
		if (f->size > 8)
			whyf("#   %s.%s differs\n", what, f->name);
		else
			whyf("#   %s.%s: model %" PRIu64 ", kernel %" PRIu64 "\n", what, f->name,
			     (uint64_t)fval(want, f), (uint64_t)fval(got, f));
	}
	if (!n && whole && memcmp(want, got, whole)) {
		whyf("#   %s: bytes outside the known fields differ\n", what);
		n++;
	}
	return n;
}

static void hexdump(const __u8 *p, size_t n)
{
	char line[80];

	for (size_t i = 0; i < n; i += 16) {
		size_t k = 0;

		k += snprintf(line + k, sizeof(line) - k, "#   %04zx ", i);
		for (size_t j = i; j < i + 16 && j < n; j++)
			k += snprintf(line + k, sizeof(line) - k, " %02x", p[j]);
		puts(line);
	}
}

static const char *verdict_s(__u32 v)
{
	return v == XDP_PASS ? "XDP_PASS" : v == XDP_DROP ? "XDP_DROP" : v == XDP_TX ? "XDP_TX" :
	       v == XDP_ABORTED ? "XDP_ABORTED" : "?";
}

static const char *state_s(__u32 s)
{
	return vg_state_name(s);
}

/* Totals over the run. */
static __u64 n_frames, cls_count[C_N], out_count[C_N][O_N], rv_count[8];
static __u64 ev_count[VIGIL_EV_KIND_MAX + 1], injected;
static __u64 late_leaving, late_left, late_recover;
static __u64 mm_any, mm_verdict, mm_stats, mm_slot, mm_events, mm_invariant, mm_guard;
static __u64 refused_frames, rejected_records, guard_checks;
static bool kernel_error;

static struct vg_agent kprev[N_AGENTS], know[N_AGENTS];
static struct vigil_stats sprev;

/* Compare one frame's effects; returns the number of disagreements. */
static int check_frame(struct expect *e, int err, __u32 ret, __u64 t0, __u64 t1)
{
	struct vigil_stats snow, dgot, dwant;
	struct magent *a = e->agent >= 0 ? &ag[e->agent] : NULL;
	int bad_v = 0, bad_s = 0, bad_sl = 0, bad_e = 0, bad_i = 0;
	bool edge_seen = false;
	__u64 edge_seq = 0;

	why_n = 0;

	/* Verdict. */
	if (e->err) {
		if (err != -e->err) {
			bad_v++;
			whyf("#   test_run: model fails with %s, kernel returned %d (retval %u)\n",
			     strerror(e->err), err, ret);
		}
	} else if (err) {
		bad_v++;
		whyf("#   test_run failed: %s\n", strerror(-err));
	} else if (ret != e->verdict) {
		bad_v++;
		whyf("#   verdict: model %s, kernel %s (%u)\n", verdict_s(e->verdict),
		     verdict_s(ret), ret);
	}

	if (vg_stats_read(&maps, &snow) || read_slots(know)) {
		kernel_error = true;
		return 1;
	}

	/* Ring-buffer records of this frame. */
	for (int i = 0; i < pkt_ev_n; i++) {
		const struct vigil_event *ev = &pkt_ev[i];

		skip_health();
		if (ev->event_seq != last_event_seq + 1) {
			bad_e++;
			whyf("#   event_seq %" PRIu64 " after %" PRIu64 "\n", (uint64_t)ev->event_seq,
			     (uint64_t)last_event_seq);
		}
		last_event_seq = ev->event_seq;
		if (ev->kind <= VIGIL_EV_KIND_MAX)
			ev_count[ev->kind]++;
		if (ev->detected_ns < t0 || ev->detected_ns > t1) {
			bad_e++;
			whyf("#   event %d detected_ns outside the run\n", i);
		}
	}
	if (e->out == O_ACCEPT) {
		const struct vg_agent *k = &know[e->agent];
		__u64 est = 0, first_lost = 0;

		/* The clock estimate, with the kernel's arrival time (last_seen):
		 * the one thing the model cannot know before the run. */
		if (e->rv == VIGIL_REPLAY_RESTART)
			a->m.s.clock_at_ns = 0; /* a restart starts the estimate afresh */
		if (e->send_ts) {
			__s64 off = vigil_clock_update(&a->m.s.clock_off_ns, &a->m.s.clock_at_ns, k->s.last_seen_ns,
						       (__s64)(k->s.last_seen_ns - e->send_ts));

			a->m.s.rxq = 0;
			est = vigil_send_estimate(k->s.last_seen_ns, e->send_ts, off);
			first_lost = vigil_first_lost_ns(est, e->gap, e->ivl,
							 e->prev_send_ts ?
								 vigil_send_estimate(e->prev_last_seen,
										     e->prev_send_ts, off) :
								 0);
			if (first_lost)
				e->d.lost_beats += e->gap;
		}
		for (int i = 0; i < pkt_ev_n && i < e->n_ev; i++) {
			const struct vigil_event *ev = &pkt_ev[i];
			/* A RECOVERED whose beat was sent in time for the missed
			 * deadline says so (cause monitor_delay). */
			bool rec = ev->kind == VIGIL_EV_RECOVERED;
			bool delayed = rec && est && est <= e->prev_deadline;
			bool lost = rec && !delayed && first_lost && first_lost <= e->prev_deadline;
			__u32 flags = delayed ? VIGIL_EVF_MONITOR_DELAY : lost ? VIGIL_EVF_BEATS_LOST : 0;
			__u64 aux = delayed ? est : lost ? first_lost : 0;

			if (ev->flags != flags || ev->aux_ns != aux) {
				bad_e++;
				whyf("#   record %d: flags %#x aux %" PRIu64 ", model %#x aux %" PRIu64
				     "\n", i, ev->flags, (uint64_t)ev->aux_ns, flags, (uint64_t)aux);
			}
			if (delayed)
				e->d.corrected++;
		}
		if (pkt_ev_n != e->n_ev) {
			bad_e++;
			whyf("#   records: model %d, kernel %d\n", e->n_ev, pkt_ev_n);
		}
		for (int i = 0; i < pkt_ev_n && i < e->n_ev; i++) {
			const struct vigil_event *ev = &pkt_ev[i];

			if (ev->kind != e->ev_kind[i] || ev->prev_state != e->ev_prev[i] ||
			    ev->state != e->ev_state[i] || ev->agent_id != a->id ||
			    ev->slot != a->slot || ev->reason != 0 || ev->seq != a->m.s.replay.top ||
			    ev->incarnation != a->m.s.replay.incarnation ||
			    ev->interval_ms != a->m.s.interval_ms ||
			    ev->last_seen_ns != k->s.last_seen_ns ||
			    ev->detected_ns != k->s.last_seen_ns) {
				bad_e++;
				whyf("#   record %d: model %s %s->%s, kernel %s %s->%s (agent %" PRIx64
				     " slot %u seq %" PRIu64 " inc %u interval %u)\n", i,
				     vg_kind_name(e->ev_kind[i]), state_s(e->ev_prev[i]),
				     state_s(e->ev_state[i]), vg_kind_name(ev->kind),
				     state_s(ev->prev_state), state_s(ev->state),
				     (uint64_t)ev->agent_id, ev->slot, (uint64_t)ev->seq,
				     ev->incarnation, ev->interval_ms);
			}
			if (i == e->n_ev - 1 && e->edge) {
				edge_seen = true;
				edge_seq = ev->event_seq;
			}
		}
	} else if (e->out == O_PASS || e->out == O_EINVAL) {
		if (pkt_ev_n) {
			bad_e++;
			whyf("#   %d record(s) for a frame that is not a beat\n", pkt_ev_n);
		}
	} else {
		/* Refused: at most one REJECTED record (they are rate-capped). */
		if (pkt_ev_n > 1) {
			bad_e++;
			whyf("#   %d records for one refused frame\n", pkt_ev_n);
		}
		if (pkt_ev_n >= 1) {
			const struct vigil_event *ev = &pkt_ev[0];
			__u32 st = a ? a->m.s.state : VIGIL_AGENT_FREE;

			rejected_records++;
			if (ev->kind != VIGIL_EV_REJECTED || ev->reason != e->reason ||
			    ev->agent_id != e->rej_agent_id || ev->slot != (a ? a->slot : NO_SLOT) ||
			    ev->prev_state != st || ev->state != st ||
			    memcmp(ev->src_addr, e->src, 16) || ev->seq || ev->incarnation ||
			    ev->interval_ms || ev->last_seen_ns != ev->detected_ns) {
				bad_e++;
				whyf("#   REJECTED record: model reason %s agent %" PRIx64
				     " slot %u, kernel kind %s reason %s agent %" PRIx64 " slot %u%s\n",
				     vg_reason_name(e->reason), (uint64_t)e->rej_agent_id,
				     a ? a->slot : NO_SLOT, vg_kind_name(ev->kind),
				     vg_reason_name(ev->reason), (uint64_t)ev->agent_id, ev->slot,
				     memcmp(ev->src_addr, e->src, 16) ? " (source differs)" : "");
			}
		}
	}

	/* Counters: the model's deltas, with events = what the ring delivered. */
	for (size_t i = 0; i < sizeof(snow) / 8; i++)
		((__u64 *)&dgot)[i] = ((__u64 *)&snow)[i] - ((__u64 *)&sprev)[i];
	dwant = e->d;
	dwant.events = pkt_ev_n;
	ev_balance += (__s64)dgot.events - pkt_ev_n - h_frame;
	h_frame = 0;
	if (ev_balance >= -2 && ev_balance <= 2)
		dgot.events = dwant.events; /* health records, a frame early or late */
	if (memcmp(&dwant, &dgot, sizeof(dgot))) {
		bad_s++;
		diff_fields("stats(delta)", &dwant, &dgot, stat_fields, N_OF(stat_fields),
			    sizeof(dgot));
	}
	sprev = snow;

	/* Slots. */
	if (e->out == O_ACCEPT) {
		const struct vg_agent *k = &know[e->agent];

		if (k->s.last_seen_ns < t0 || k->s.last_seen_ns > t1) {
			bad_sl++;
			whyf("#   last_seen_ns not set to a time inside the run\n");
		}
		if (e->prev_state != VIGIL_AGENT_NEW && k->s.last_seen_ns > e->prev_last_seen)
			vigil_gap_count(&a->m.s.gap_bucket, &a->m.s.gap_run, a->m.i.gap_hist,
					k->s.last_seen_ns - e->prev_last_seen);
		a->m.s.last_seen_ns = k->s.last_seen_ns;
		if (e->edge) {
			a->m.i.state_since_ns = k->s.last_seen_ns;
			a->m.i.last_event_seq = edge_seen ? edge_seq : k->i.last_event_seq;
		}
	}
	for (int i = 0; i < N_AGENTS; i++) {
		char what[32];

		if (!memcmp(&ag[i].m, &know[i], sizeof(know[i])))
			continue;
		bad_sl++;
		snprintf(what, sizeof(what), "agent[%d]", i);
		diff_fields(what, &ag[i].m, &know[i], slot_fields, N_OF(slot_fields),
			    sizeof(know[i]));
	}

	/* Independently of the model: a frame the kernel refused (no accepted
	 * beat counted) must not have moved any agent's beat fields. */
	if (dgot.beats == 0) {
		refused_frames++;
		for (int i = 0; i < N_AGENTS; i++) {
			char what[40];

			snprintf(what, sizeof(what), "refused: agent[%d]", i);
			for (size_t f = 0; f < N_OF(beat_fields); f++)
				if (memcmp((const __u8 *)&kprev[i] + beat_fields[f].off,
					   (const __u8 *)&know[i] + beat_fields[f].off,
					   beat_fields[f].size)) {
					bad_i++;
					diff_fields(what, &kprev[i], &know[i], &beat_fields[f], 1, 0);
				}
		}
	}
	memcpy(kprev, know, sizeof(kprev));

	mm_verdict += bad_v > 0;
	mm_stats += bad_s > 0;
	mm_slot += bad_sl > 0;
	mm_events += bad_e > 0;
	mm_invariant += bad_i > 0;
	return bad_v + bad_s + bad_sl + bad_e + bad_i;
}

/* After a disagreement, take the kernel's view so one slip does not
 * cascade into a million reports. */
static void resync(void)
{
	for (int i = 0; i < N_AGENTS; i++)
		ag[i].m = know[i];
}

static int check_guards(void)
{
	struct agent_slot g;
	int bad = 0;

	guard_checks++;
	for (int i = 0; i < N_AGENTS; i++) {
		if (read_guard(i, &g)) {
			kernel_error = true;
			return 1;
		}
		if (memcmp(&g.replay, &ag[i].m.s.replay, sizeof(g.replay)) || g.rate_tat) {
			bad++;
			if (mm_guard < SHOW_MISMATCHES)
				note("replay window of agent[%d]: model top %" PRIu64 " seen %016" PRIx64
				     " inc %u started %u; kernel top %" PRIu64 " seen %016" PRIx64
				     " inc %u started %u rate_tat %" PRIu64, i, (uint64_t)ag[i].m.s.replay.top,
				     (uint64_t)ag[i].m.s.replay.seen, ag[i].m.s.replay.incarnation, ag[i].m.s.replay.started,
				     (uint64_t)g.replay.top, (uint64_t)g.replay.seen,
				     g.replay.incarnation, g.replay.started, (uint64_t)g.rate_tat);
			ag[i].m.s.replay = g.replay;
		}
	}
	mm_guard += bad > 0;
	return bad;
}

/* What the sweeper would do after missed deadlines: ALIVE -> SUSPECT or
 * DEAD, written into the slot directly. */
static void inject_state(void)
{
	int i = below(N_AGENTS);
	__u32 to = chance(500) ? VIGIL_AGENT_SUSPECT : VIGIL_AGENT_DEAD;
	struct agent_slot s;

	if (ag[i].m.s.state != VIGIL_AGENT_ALIVE)
		return;
	if (bpf_map_lookup_elem(maps.agents, &ag[i].slot, &s)) {
		kernel_error = true;
		return;
	}
	s.state = to;
	if (bpf_map_update_elem(maps.agents, &ag[i].slot, &s, BPF_ANY)) {
		kernel_error = true;
		return;
	}
	ag[i].m.s.state = to;
	kprev[i].s.state = to;
	injected++;
}

/* ------------------------------------------------------------------ setup */

static int setup_agents(void)
{
	__u32 hint = 0, gid = vigil_group_id(FENCED_GROUP, VIGIL_GROUP_LEN);

	for (size_t j = 0; j < N_OF(allow_list); j++) {
		struct allow_key k = { .prefixlen = VIGIL_ALLOW_PREFIX_BASE + allow_list[j].bits,
				       .group_id = gid, .family = allow_list[j].v6 ? 6 : 4 };
		__u32 one = 1;

		memcpy(k.addr, allow_list[j].addr, 16);
		if (bpf_map_update_elem(maps.allow, &k, &one, BPF_ANY)) {
			note("adding the allowlist failed: %s", strerror(errno));
			return -1;
		}
	}
	for (int i = 0; i < N_AGENTS; i++) {
		struct vg_agent_def d;
		struct magent *a = &ag[i];
		int err;

		vg_agent_def_default(&d, specs[i].id);
		d.interval_min_ms = specs[i].min_ms;
		d.interval_max_ms = specs[i].max_ms;
		d.multiplier = 3;
		if (specs[i].fenced) {
			vg_strlcpy(d.group, FENCED_GROUP, sizeof(d.group));
			d.auth.flags = VIGIL_AUTH_ALLOWLIST;
		}
		for (int k = 0; k < 2; k++)
			random_key(&d.auth.key[k]); /* set even when not valid */
		d.auth.valid = specs[i].valid;
		err = vg_agent_add(&maps, &d, &hint);
		if (err) {
			note("registering agent %" PRIx64 " failed: %s", (uint64_t)specs[i].id,
			     strerror(-err));
			return -1;
		}
		a->id = specs[i].id;
		a->valid = specs[i].valid;
		a->flags = d.auth.flags;
		a->key[0] = d.auth.key[0];
		a->key[1] = d.auth.key[1];
		if (vg_agent_get(&maps, a->id, &a->slot, &a->m))
			return -1;
	}
	return 0;
}

static int env_u64(const char *name, __u64 *out)
{
	const char *s = getenv(name);
	char *end;

	if (!s || !*s)
		return 0;
	errno = 0;
	*out = strtoull(s, &end, 0);
	if (errno || *end) {
		fprintf(stderr, "%s must be a number, got '%s'\n", name, s);
		return -1;
	}
	return 1;
}

/* ------------------------------------------------------------------- main */

int main(void)
{
	static const __u32 reasons_expected[] = { O_ACCEPT, O_PASS, O_MALFORMED, O_BAD_VERSION,
						  O_UNKNOWN, O_NOT_ALLOWED, O_MAPPED, O_UNAUTH, O_BAD_TAG,
						  O_DUPLICATE, O_REPLAYED, O_EINVAL };
	__u64 seed = vg_wall_ns() ^ ((__u64)getpid() << 32), n = DEFAULT_N, t_start, t_end;
	struct vg_load_opts o;
	__u8 frame[FRAME_MAX];
	struct expect e;
	int rc;

	setvbuf(stdout, NULL, _IOLBF, 0);
	vg_log_set_level(getenv("VIGIL_TEST_VERBOSE") ? VG_LOG_DEBUG : VG_LOG_WARN);
	vg_log_hook_libbpf();
	if (env_u64("VIGIL_DIFF_SEED", &seed) < 0 || env_u64("VIGIL_DIFF_N", &n) < 0)
		return 2;
	rnd_seed(seed);
	note("seed %" PRIu64 " (VIGIL_DIFF_SEED=%" PRIu64 " repeats this run), %" PRIu64 " frames",
	     (uint64_t)seed, (uint64_t)seed, (uint64_t)n);

	vg_load_opts_default(&o);
	o.pin_root = NULL;
	o.iface = NULL;
	o.port = BEAT_PORT;
	o.max_agents = MAX_AGENTS;
	o.ringbuf_bytes = 1 << 20;
	o.cfg.rate_burst = 0;  /* no per-agent limit */
	o.cfg.source_pps = 0;  /* no per-source limit */
	o.cfg.auth_required = 1;
	o.cfg.replay_window = WINDOW;
	o.cfg.pass_beats = 0;
	if (!tap_result(vg_instance_load(&o, &maps, &skel) == 0,
			"program loaded (rate limits off, auth required, window %d)", WINDOW)) {
		note("re-run with VIGIL_TEST_VERBOSE=1 for libbpf's log");
		return tap_finish();
	}
	xdp_fd = bpf_program__fd(skel->progs.vigil_xdp);
	rb = ring_buffer__new(maps.events, on_event, NULL, NULL);
	if (!tap_result(rb && setup_agents() == 0,
			"%d agents registered (keys: none, one, both; two behind an allowlist)",
			N_AGENTS)) {
		if (rb)
			ring_buffer__free(rb);
		vigil_bpf__destroy(skel);
		return tap_finish();
	}
	if (vg_stats_read(&maps, &sprev) || read_slots(kprev)) {
		tap_result(false, "reading the maps");
		vigil_bpf__destroy(skel);
		return tap_finish();
	}
	ring_buffer__consume(rb);
	pkt_ev_n = 0;

	t_start = vg_mono_ns();
	for (__u64 i = 0; i < n && !kernel_error; i++) {
		__u32 r = below(1000), ret = 0;
		__u64 t0, t1;
		size_t len;
		int c = 0, err;

		if (below(INJECT_EVERY) == 0)
			inject_state();
		while (r >= class_weight[c]) {
			r -= class_weight[c];
			c++;
		}
		if (c == C_REPLAY && !hist_n)
			c = C_VALID; /* nothing accepted yet to replay */
		len = gen_frame(c, frame);
		model_frame(frame, len, &e);
		pkt_ev_n = 0;
		err = xdp_run(frame, len, &ret, &t0, &t1);
		ring_buffer__consume(rb);
		n_frames++;
		cls_count[c]++;
		out_count[c][e.out]++;
		if (e.out == O_ACCEPT && e.rv == VIGIL_REPLAY_LATE) {
			late_leaving += e.beat[4] == VIGIL_STATUS_LEAVING;
			late_left += e.prev_state == VIGIL_AGENT_LEFT;
			late_recover += e.prev_state == VIGIL_AGENT_SUSPECT ||
					e.prev_state == VIGIL_AGENT_DEAD;
		}
		if (e.out == O_ACCEPT) {
			rv_count[e.rv]++;
			memcpy(hist[hist_n % HIST].beat, e.beat, 64);
			hist_n++;
		}
		if (check_frame(&e, err, ret, t0, t1)) {
			mm_any++;
			if (mm_any <= SHOW_MISMATCHES) {
				note("mismatch %" PRIu64 " at frame %" PRIu64 " (class %s; model: %s, "
				     "agent index %d)", (uint64_t)mm_any, (uint64_t)i, class_name[c],
				     outcome_name[e.out], e.agent);
				fputs(why, stdout);
				note("frame (%zu bytes):", len);
				hexdump(frame, len);
			}
			resync();
		}
		if ((i + 1) % GUARD_CHECK_EVERY == 0)
			check_guards();
	}
	t_end = vg_mono_ns();
	check_guards();

	/* ------------------------------------------------------ report */
	note("%" PRIu64 " frames in %.1f s (%.2f us per frame, model and checks included); "
	     "%" PRIu64 " SUSPECT/DEAD injected", (uint64_t)n_frames, (t_end - t_start) / 1e9,
	     n_frames ? (t_end - t_start) / 1e3 / n_frames : 0.0, (uint64_t)injected);
	for (int c = 0; c < C_N; c++) {
		char line[512];
		size_t k = 0;

		k += snprintf(line + k, sizeof(line) - k, "%-13s %8" PRIu64 ":", class_name[c],
			      (uint64_t)cls_count[c]);
		for (int x = 0; x < O_N; x++)
			if (out_count[c][x])
				k += snprintf(line + k, sizeof(line) - k, " %s %" PRIu64,
					      outcome_name[x], (uint64_t)out_count[c][x]);
		note("%s", line);
	}
	{
		__u64 tot[O_N] = {};
		char line[512];
		size_t k = 0;

		for (int c = 0; c < C_N; c++)
			for (int x = 0; x < O_N; x++)
				tot[x] += out_count[c][x];
		k += snprintf(line + k, sizeof(line) - k, "%-13s %8" PRIu64 ":", "all",
			      (uint64_t)n_frames);
		for (int x = 0; x < O_N; x++)
			k += snprintf(line + k, sizeof(line) - k, " %s %" PRIu64, outcome_name[x],
				      (uint64_t)tot[x]);
		note("%s", line);
		note("accepted as: first %" PRIu64 ", newer %" PRIu64 ", late (in window) %" PRIu64
		     ", restart %" PRIu64, (uint64_t)rv_count[VIGIL_REPLAY_FIRST],
		     (uint64_t)rv_count[VIGIL_REPLAY_NEWER], (uint64_t)rv_count[VIGIL_REPLAY_LATE],
		     (uint64_t)rv_count[VIGIL_REPLAY_RESTART]);
		note("late beats: %" PRIu64 " saying LEAVING, %" PRIu64 " while LEFT, %" PRIu64
		     " from SUSPECT or DEAD", (uint64_t)late_leaving, (uint64_t)late_left,
		     (uint64_t)late_recover);
		note("records: UP %" PRIu64 ", RECOVERED %" PRIu64 ", RESTART %" PRIu64 ", LEFT %" PRIu64
		     ", REJECTED %" PRIu64 " (capped at %u/s), SUSPECT %" PRIu64 ", DEAD %" PRIu64,
		     (uint64_t)ev_count[VIGIL_EV_UP], (uint64_t)ev_count[VIGIL_EV_RECOVERED],
		     (uint64_t)ev_count[VIGIL_EV_RESTART], (uint64_t)ev_count[VIGIL_EV_LEFT],
		     (uint64_t)ev_count[VIGIL_EV_REJECTED], o.cfg.reject_events_per_sec,
		     (uint64_t)ev_count[VIGIL_EV_SUSPECT], (uint64_t)ev_count[VIGIL_EV_DEAD]);

		tap_result(!kernel_error && n_frames == n,
			   "%" PRIu64 " frames run through vigil_xdp and the model", (uint64_t)n_frames);
		tap_result(mm_verdict == 0, "verdicts agree (%" PRIu64 " frames disagree)",
			   (uint64_t)mm_verdict);
		tap_result(mm_stats == 0, "per-CPU counters agree after every frame (%" PRIu64
			   " frames disagree)", (uint64_t)mm_stats);
		tap_result(mm_slot == 0, "every field of every agent slot agrees after every frame "
			   "(%" PRIu64 " frames disagree)", (uint64_t)mm_slot);
		tap_result(mm_events == 0 && !ev_overflow && !ev_bad_size,
			   "ring buffer: one record of the right kind per accepted edge and restart, "
			   "REJECTED records match, event_seq gapless (%" PRIu64 " frames disagree)",
			   (uint64_t)mm_events);
		tap_result(mm_invariant == 0, "no refused frame changed any agent's beat fields "
			   "(%" PRIu64 " refused frames, %" PRIu64 " violations)",
			   (uint64_t)refused_frames, (uint64_t)mm_invariant);
		tap_result(mm_guard == 0, "replay windows in vigil_agents, read under the lock, agree with the model "
			   "(%" PRIu64 " comparisons of all agents)", (uint64_t)guard_checks);
		{
			struct vigil_stats s;
			struct vigil_globals g;
			__u32 zero = 0;

			rc = vg_stats_read(&maps, &s) == 0 &&
			     bpf_map_lookup_elem(maps.globals, &zero, &g) == 0;
			ring_buffer__consume(rb);
			skip_health();
			tap_result(rc && !s.ringbuf_full && !s.queue_full && !s.stale_slot &&
				   !s.over_rate_agent && !s.over_rate_source &&
				   g.event_seq == last_event_seq,
				   "no ring buffer loss, queue_full, stale_slot or rate refusal; "
				   "event_seq %" PRIu64 " = last record", rc ? (uint64_t)g.event_seq : 0);
		}
		{
			bool all = true;
			char miss[256] = "";
			size_t k2 = 0;

			for (size_t x = 0; x < N_OF(reasons_expected); x++)
				if (!tot[reasons_expected[x]]) {
					all = false;
					k2 += snprintf(miss + k2, sizeof(miss) - k2, " %s",
						       outcome_name[reasons_expected[x]]);
				}
			for (int rv = VIGIL_REPLAY_NEWER; rv <= VIGIL_REPLAY_FIRST; rv++)
				if (n >= 100000 && !rv_count[rv]) {
					all = false;
					k2 += snprintf(miss + k2, sizeof(miss) - k2, " replay-verdict-%d", rv);
				}
			if (n >= 100000 && (!ev_count[VIGIL_EV_UP] || !ev_count[VIGIL_EV_RECOVERED] ||
					    !ev_count[VIGIL_EV_RESTART] || !ev_count[VIGIL_EV_LEFT])) {
				all = false;
				k2 += snprintf(miss + k2, sizeof(miss) - k2, " some-event-kind");
			}
			if (n >= 500000 && (!late_leaving || !late_left || !late_recover)) {
				all = false;
				k2 += snprintf(miss + k2, sizeof(miss) - k2, " some-late-beat-case");
			}
			if (n < 100000)
				tap_skip("fewer than 100000 frames", "coverage of every outcome");
			else
				tap_result(all, "coverage: every outcome, replay verdict and record kind "
					   "occurred%s%s", all ? "" : "; missing:", miss);
		}
	}
	if (mm_any > SHOW_MISMATCHES)
		note("%" PRIu64 " frames disagreed; the first %d are shown above", (uint64_t)mm_any,
		     SHOW_MISMATCHES);
	if (mm_any)
		note("reproduce with VIGIL_DIFF_SEED=%" PRIu64 " VIGIL_DIFF_N=%" PRIu64,
		     (uint64_t)seed, (uint64_t)n);

	ring_buffer__free(rb);
	vigil_bpf__destroy(skel);
	return tap_finish();
}

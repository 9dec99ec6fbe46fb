/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The checks a datagram to the beat port goes through before it counts as a
 * beat, cheapest first (docs/security.md):
 *   check_sender: decode -> source rate (unless from the named agent's own
 *                 address) -> known agent
 *   check_agent:  allowlist -> tag -> replay window + the agent's rate
 * Nothing an unauthenticated sender controls changes any state but
 * counters. Every refusal leaves through reject(), which counts it for its
 * reason and reports it.
 */
#ifndef VIGIL_CHECKS_BPF_H
#define VIGIL_CHECKS_BPF_H

#include "vigil/wire.h"
#include "vigil/auth.h"
#include "vigil/logic.h"
#include "events.bpf.h"

/* One datagram on its way through the checks: what they learnt of it so
 * far, which is also what a refusal reports. */
struct beat_ctx {
	struct vigil_stats *st;
	const struct vigil_config *cfg;
	const struct src_addr *src;
	struct agent_slot *s;         /* the known agent it names, or NULL */
	struct agent_keys *k;         /* s's keys (set with s) */
	__u32 slot;                   /* s's slot */
	enum vigil_replay_verdict rv; /* once check_replay has judged it */
	struct vigil_beat_info b;     /* decoded; zero before */
	struct prior_beat p;          /* the agent's last beat before this one
				       * (check_replay, under the lock) */
	__u64 now;
};

static __always_inline int beat_verdict(const struct vigil_config *cfg)
{
	return cfg && cfg->pass_beats ? XDP_PASS : XDP_DROP;
}

/* One more refusal on this CPU, and in the agent's slot when there is one
 * with a counter for it. */
static __always_inline void bump(__u64 *here, __u64 *agent)
{
	(*here)++;
	if (agent)
		__sync_fetch_and_add(agent, 1);
}

/* Count a refusal for its reason: on this CPU, and in the record of the
 * agent the datagram names when that agent is known and has a counter for
 * it (s: its cold record, or NULL). */
static __always_inline void count_reject(struct vigil_stats *st, struct agent_info *s,
					 __u32 reason, enum vigil_replay_verdict rv)
{
#define SLOT(f) (s ? &s->f : NULL)
	switch (reason) {
	case VIGIL_REJECT_OVER_RATE_SOURCE: bump(&st->over_rate_source, NULL); break;
	case VIGIL_REJECT_MAPPED_SOURCE: bump(&st->mapped_source, NULL); break;
	case VIGIL_REJECT_MALFORMED: bump(&st->malformed, SLOT(malformed)); break;
	case VIGIL_REJECT_BAD_VERSION: bump(&st->bad_version, SLOT(bad_version)); break;
	case VIGIL_REJECT_UNKNOWN_AGENT: bump(&st->unknown_agent, NULL); break;
	case VIGIL_REJECT_NOT_ALLOWED: bump(&st->not_allowed, NULL); break;
	case VIGIL_REJECT_UNAUTHENTICATED: bump(&st->unauthenticated, NULL); break;
	case VIGIL_REJECT_BAD_TAG: bump(&st->bad_tag, SLOT(bad_tag)); break;
	case VIGIL_REJECT_OVER_RATE_AGENT: bump(&st->over_rate_agent, SLOT(over_rate)); break;
	case VIGIL_REJECT_REPLAY:
		/* One reason in the event, two counters: the same beat again
		 * apart from an older one. */
		if (rv == VIGIL_REPLAY_DUPLICATE)
			bump(&st->duplicates, SLOT(duplicates));
		else
			bump(&st->replayed, SLOT(replayed));
		break;
	}
#undef SLOT
}

/* Every refused datagram ends here: counted for its reason, and reported at
 * a capped rate so an operator (or `vigil run --learn`) sees an attack
 * without an event storm. Always returns the verdict for consumed beat-port
 * traffic. */
static __always_inline int reject(const struct beat_ctx *c, __u32 reason)
{
	struct vigil_globals *g = bpf_map_lookup_elem(&vigil_globals, &zero);
	const struct vigil_config *cfg = c->cfg;
	struct agent_slot *s = c->s;
	__u64 now = bpf_ktime_get_ns();

	count_reject(c->st, s ? info_of(c->slot) : NULL, reason, c->rv);
	if (!g || !cfg)
		return XDP_DROP;
	if (now - g->reject_window_ns >= VIGIL_NSEC_PER_SEC) {
		/* Racy reset across CPUs is fine: the cap is approximate by design. */
		g->reject_window_ns = now;
		g->reject_in_window = 0;
	}
	if (__sync_fetch_and_add(&g->reject_in_window, 1) < cfg->reject_events_per_sec)
		emit(c->st, NULL, s ? c->slot : NO_SLOT, c->b.agent_id, VIGIL_EV_REJECTED,
		     s ? vigil_state_of(s->state) : VIGIL_AGENT_FREE,
		     s ? vigil_state_of(s->state) : VIGIL_AGENT_FREE, now, reason,
		     c->src, NULL);
	return beat_verdict(cfg);
}

/* ------------------------------------------------------------ the sender */

/* GCRA on one u64 shared by all CPUs: a compare-and-swap publishes the new
 * arrival time; losing the race twice counts as conforming rather than
 * refusing an honest beat. */
static __always_inline int rate_ok(__u64 *tat, __u64 now, __u64 emission_ns, __u32 burst)
{
	for (int i = 0; i < 2; i++) {
		__u64 old = *tat, next = vigil_gcra(old, now, emission_ns, burst);

		if (!next)
			return 0;
		if (__sync_val_compare_and_swap(tat, old, next) == old)
			return 1;
	}
	return 1;
}

/* Per-source limit, before the tag is checked: bounds what one address can
 * make the beat path do. */
static __always_inline int source_ok(const struct vigil_config *cfg, const struct src_addr *src,
				     __u64 now)
{
	struct source_key key;
	__u64 emission, *tat, init;

	if (!cfg->source_pps)
		return 1;
	__builtin_memcpy(key.addr, src->a, sizeof(key.addr));
	emission = VIGIL_NSEC_PER_SEC / cfg->source_pps;
	tat = bpf_map_lookup_elem(&vigil_sources, &key);
	if (!tat) {
		init = now + emission;
		bpf_map_update_elem(&vigil_sources, &key, &init, BPF_NOEXIST);
		return 1;
	}
	return rate_ok(tat, now, emission, cfg->source_burst);
}

/* Decode the datagram into *b, however short it is. `avail` is how much of
 * its payload there is (within the IP packet's length and the frame);
 * `truncated`: the IP packet runs past the frame. A datagram that is not
 * all there is judged on what is, and is never a valid beat. */
static __always_inline enum vigil_beat_verdict decode_beat(struct xdp_md *ctx, void *payload,
							   void *data_end, int plen, __u32 avail,
							   __u32 truncated, struct vigil_beat_info *b)
{
	enum vigil_beat_verdict v;

	if (!truncated && (__u32)plen <= avail && payload + sizeof(struct vigil_beat) <= data_end)
		return vigil_beat_decode(payload, plen, b);
	/* Decode from a zero-padded copy of what is really there. */
	struct vigil_beat tmp = {};
	__u32 n = (__u32)plen < avail ? (__u32)plen : avail;

	if (n > sizeof(tmp))
		n = sizeof(tmp);
	if (n > 0 && bpf_xdp_load_bytes(ctx, payload - (void *)(long)ctx->data, &tmp, n))
		n = 0;
	v = vigil_beat_decode(&tmp, n, b);
	return v == VIGIL_BEAT_OK ? VIGIL_BEAT_MALFORMED : v;
}

/* Find the live slot of an agent, or NULL. An id in id_base's range is
 * looked for at its own slot first (registry.c puts it there when it can):
 * an array element by a computed index, not a hash lookup. Any other id,
 * or one whose own slot another agent holds, is found through the index. */
static __always_inline struct agent_slot *find_slot(__u64 agent_id, __u32 *slot_out,
						    struct vigil_stats *st)
{
	__u64 d = agent_id - id_base;
	struct agent_slot *s;
	__u32 slot, *idx;

	if (d < max_agents) {
		slot = (__u32)d;
		s = bpf_map_lookup_elem(&vigil_agents, &slot);
		if (s && s->agent_id == agent_id && s->state != VIGIL_AGENT_FREE) {
			*slot_out = slot;
			return s;
		}
	}
	idx = bpf_map_lookup_elem(&vigil_index, &agent_id);
	if (!idx)
		return NULL;
	s = bpf_map_lookup_elem(&vigil_agents, idx);
	if (!s || s->agent_id != agent_id || s->state == VIGIL_AGENT_FREE) {
		st->stale_slot++;
		return NULL;
	}
	*slot_out = *idx;
	return s;
}

/* Whether the datagram comes from the address the agent it names sent its
 * newest accepted beat from (agent_keys.beat_src). Only a sender that can
 * use that address gets past here, and it could as well send the agent's
 * real beats: what it makes the beat path do is one tag check a datagram. */
static __always_inline int from_agent_source(const struct agent_keys *k,
					     const struct src_addr *src)
{
	__u64 hi = *(const __u64 *)&k->beat_src[0], lo = *(const __u64 *)&k->beat_src[8];

	return (hi | lo) && hi == *(const __u64 *)&src->a[0] &&
	       lo == *(const __u64 *)&src->a[8];
}

/* An accepted beat's source becomes the agent's own (from_agent_source). */
static __always_inline void note_agent_source(struct agent_keys *k, const struct src_addr *src)
{
	__u64 hi = *(const __u64 *)&src->a[0], lo = *(const __u64 *)&src->a[8];

	if (*(__u64 *)&k->beat_src[0] != hi || *(__u64 *)&k->beat_src[8] != lo) {
		*(__u64 *)&k->beat_src[0] = hi;
		*(__u64 *)&k->beat_src[8] = lo;
	}
}

/* Who sent it: a well-formed beat of our version, from an agent we know,
 * within its source's rate unless it comes from that agent's own address.
 * Fills c->b, c->s, c->k and c->slot as far as it gets.
 *
 * Decoding and finding the agent come before the source's rate: both are
 * bounded and change nothing but counters, and they are what lets an
 * agent's real beats through while a flood spoofs its address. */
static __always_inline __u32 check_sender(struct xdp_md *ctx, struct beat_ctx *c, void *payload,
					  void *data_end, int plen, __u32 avail, __u32 truncated)
{
	enum vigil_beat_verdict v = VIGIL_BEAT_MALFORMED;

	/* ::ffff:a.b.c.d is the key of IPv4 source a.b.c.d, whose budget (and
	 * whose agents' addresses) an IPv6 sender must not use. */
	if (c->src->v4mapped)
		return VIGIL_REJECT_MAPPED_SOURCE;
	if (plen >= 0)
		v = decode_beat(ctx, payload, data_end, plen, avail, truncated, &c->b);
	/* Looked up before the verdict is read: a beat that fails to
	 * decode but names a known agent counts in that agent's slot too. */
	if (c->b.has_agent_id) {
		c->s = find_slot(c->b.agent_id, &c->slot, c->st);
		if (c->s)
			c->k = bpf_map_lookup_elem(&vigil_auth, &c->slot);
	}
	if (!(c->k && from_agent_source(c->k, c->src)) && !source_ok(c->cfg, c->src, c->now))
		return VIGIL_REJECT_OVER_RATE_SOURCE;
	if (v == VIGIL_BEAT_BAD_VERSION)
		return VIGIL_REJECT_BAD_VERSION;
	if (v != VIGIL_BEAT_OK)
		return VIGIL_REJECT_MALFORMED;
	if (!c->s || !c->k) /* k: cannot fail, vigil_auth has vigil_agents' size */
		return VIGIL_REJECT_UNKNOWN_AGENT;
	return VIGIL_REJECT_NONE;
}

/* ------------------------------------------------------------- the agent */

/* A group with an allowlist takes beats only from its sources: the full
 * address, looked up in the group's prefixes of its family. */
static __always_inline int source_allowed(const struct agent_auth *a, const struct src_addr *src)
{
	struct allow_key key = {};

	if (!(a->flags & VIGIL_AUTH_ALLOWLIST))
		return 1;
	key.group_id = a->group_id;
	if (src->v6) {
		key.prefixlen = VIGIL_ALLOW_PREFIX_BASE + 128;
		key.family = 6;
		__builtin_memcpy(key.addr, src->a, sizeof(key.addr));
	} else {
		key.prefixlen = VIGIL_ALLOW_PREFIX_BASE + 32;
		key.family = 4;
		__builtin_memcpy(key.addr, &src->a[12], 4);
	}
	return bpf_map_lookup_elem(&vigil_allow, &key) != NULL;
}

/* The tag, when present, must verify with the key the beat names. */
static __always_inline __u32 check_auth(const struct vigil_config *cfg, const struct vigil_beat *b,
					__u8 flags, __u8 key_id, const struct agent_auth *k)
{
	if (!(flags & VIGIL_F_MAC))
		return cfg->auth_required ? VIGIL_REJECT_UNAUTHENTICATED : VIGIL_REJECT_NONE;
	if (!(k->valid & (1u << (key_id & 1))))
		return VIGIL_REJECT_BAD_TAG;
	if (!vigil_beat_tag_ok(b, &k->key[key_id & 1]))
		return VIGIL_REJECT_BAD_TAG;
	return VIGIL_REJECT_NONE;
}

/*
 * Anti-replay and the agent's own rate limit, together under the slot's
 * lock; an accepted beat is committed there (window, rate, counts) and the
 * facts of the agent's previous beat are read for what follows (c->p).
 * Only authentic beats get here, so forgeries cannot use up an agent's
 * window or its rate.
 */
static __always_inline __u32 check_replay(struct beat_ctx *c, const struct agent_keys *k)
{
	const struct vigil_config *cfg = c->cfg;
	const struct vigil_beat_info *b = &c->b;
	struct agent_info *info = info_of(c->slot);
	struct agent_slot *s = c->s;
	__u32 reason = VIGIL_REJECT_NONE, interval, window = cfg->replay_window;
	__u32 multiple = cfg->rate_multiple, burst = cfg->rate_burst;
	__u64 emission = 0, tat = 0, now = c->now;
	struct vigil_replay r;

	if (!info)
		return VIGIL_REJECT_REPLAY;
	bpf_spin_lock(&s->lock);
	/* Removed since find_slot looked: vg_agent_remove took the keys away,
	 * then read this window under the lock as the id's floor. A beat
	 * judged after that must not move a window nobody will read again. A
	 * registration writes the whole slot under the lock, so what is read
	 * here is one agent's. */
	if (s->agent_id != b->agent_id || READ_ONCE(k->agent_id) != b->agent_id) {
		bpf_spin_unlock(&s->lock);
		return VIGIL_REJECT_UNKNOWN_AGENT;
	}
	read_prior_beat(s, &c->p);
	/* The beat's own (authentic, clamped) interval sets its allowed rate,
	 * so an agent that speeds up is limited by what it now announces. */
	interval = vigil_clamp_interval(b->interval_ms, s->interval_min_ms, s->interval_max_ms);
	if (burst && multiple)
		emission = (__u64)interval * VIGIL_NSEC_PER_MSEC / multiple;
	/* Judge on copies and commit both only when the beat passes both, so a
	 * beat refused for its rate does not use up its sequence number. */
	r = s->replay;
	c->rv = vigil_replay_check(&r, b->incarnation, b->seq, window);
	if (!vigil_replay_accepted(c->rv)) {
		reason = VIGIL_REJECT_REPLAY;
	} else if (emission) {
		tat = vigil_gcra(vigil_gcra_rescale(s->rate_tat, now, s->rate_interval_ms, interval),
				 now, emission, burst);
		if (!tat)
			reason = VIGIL_REJECT_OVER_RATE_AGENT;
	}
	if (reason == VIGIL_REJECT_NONE) {
		s->replay = r;
		if (emission) {
			s->rate_tat = tat;
			s->rate_interval_ms = interval;
		}
		s->beats++;
		if (c->rv == VIGIL_REPLAY_LATE)
			info->reordered++;
		else if (c->rv == VIGIL_REPLAY_RESTART)
			info->restarts++;
		if (vigil_state_of(s->state) != VIGIL_AGENT_NEW && now > c->p.last_seen_ns)
			vigil_gap_count(&s->gap_bucket, &s->gap_run, info->gap_hist,
					now - c->p.last_seen_ns);
	}
	bpf_spin_unlock(&s->lock);
	return reason;
}

/* Whether the agent really sent it, and may: from a source its group
 * allows, with a tag that verifies, fresh, within its rate. Sets c->rv.
 * `beat` is the whole 64-byte beat in the packet; `auth` the key set in
 * force of the agent's keys `k`. */
static __always_inline __u32 check_agent(struct beat_ctx *c, const struct vigil_beat *beat,
					 const struct agent_keys *k, const struct agent_auth *auth)
{
	__u32 reason;

	if (!source_allowed(auth, c->src))
		return VIGIL_REJECT_NOT_ALLOWED;
	reason = check_auth(c->cfg, beat, c->b.flags, c->b.key_id, auth);
	if (reason)
		return reason;
	reason = check_replay(c, k);
	if (reason == VIGIL_REJECT_UNKNOWN_AGENT) {
		c->st->stale_slot++;
		c->s = NULL; /* no longer its agent's */
	}
	return reason;
}

#endif /* VIGIL_CHECKS_BPF_H */

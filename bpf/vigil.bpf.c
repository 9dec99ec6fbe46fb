// SPDX-License-Identifier: GPL-2.0
/*
 * vigil's kernel half: the XDP beat path and the deadline sweeper.
 *
 *   beat   -> vigil_xdp: parse, find the agent's slot, store last-seen time
 *             and sequence, report only edges (first beat, recovery, restart,
 *             leaving). Never touches the timing wheel.
 *   tick   -> sweep_tick (one bpf_timer): walk the due buckets of a timing
 *             wheel, take ALIVE->SUSPECT->DEAD edges, re-file the rest.
 *
 * Every state change is a compare-and-swap on agent_slot.state, so the beat
 * path and the sweeper can race and each transition still happens once.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "parse.bpf.h"
#include "vigil/wire.h"
#include "vigil/maps.h"
#include "vigil/logic.h"
#include "vigil/auth.h"

char LICENSE[] SEC("license") = "GPL"; /* bpf_timer and bpf_loop need GPL */

#define CLOCK_MONOTONIC 1
#define NO_SLOT 0xffffffffu

/* Load-time settings (set by the daemon before load, fixed afterwards). */
const volatile __u16 beat_port_be = 0; /* UDP destination port, network order */
const volatile __u64 tick_ns = 1000000;
/* Wheel slots 0..max_agents-1 are agents; max_agents + lease id are leases. */
const volatile __u32 max_agents = VIGIL_MAX_AGENTS;

/* vigil_agents: one slot per registered agent; see struct agent_slot. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, VIGIL_MAX_AGENTS);
	__type(key, __u32);
	__type(value, struct agent_slot);
} vigil_agents SEC(".maps");

/* vigil_index: agent id -> slot. Preallocated; written by the daemon only. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, VIGIL_MAX_AGENTS);
	__type(key, __u64);
	__type(value, __u32);
} vigil_index SEC(".maps");

/* vigil_links: the wheel's per-slot links; written by the sweeper only. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, VIGIL_MAX_AGENTS);
	__type(key, __u32);
	__type(value, struct wheel_link);
} vigil_links SEC(".maps");

/* vigil_buckets: the wheel's list heads; written by the sweeper only. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, VIGIL_WHEEL_BUCKETS);
	__type(key, __u32);
	__type(value, struct wheel_bucket);
} vigil_buckets SEC(".maps");

/* vigil_wheel: the sweeper's cursor and health; written by the sweeper only. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct wheel_state);
} vigil_wheel SEC(".maps");

/* vigil_inbox: slots that must (re-)enter the wheel: pushed by the daemon on
 * registration and by XDP when a DEAD or LEFT agent comes back. Twice the
 * agent capacity: at most one pending push per slot from each side. */
struct {
	__uint(type, BPF_MAP_TYPE_QUEUE);
	__uint(max_entries, 2 * VIGIL_MAX_AGENTS);
	__type(value, __u32);
} vigil_inbox SEC(".maps");

struct sweeper_timer {
	struct bpf_timer timer;
};

/* vigil_timer: the sweeper's one bpf_timer. Pinned so that detection goes on
 * while no daemon runs. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sweeper_timer);
} vigil_timer SEC(".maps");

/* vigil_auth: each agent's keys and source policy; written by the daemon. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, VIGIL_MAX_AGENTS);
	__type(key, __u32);
	__type(value, struct agent_auth);
} vigil_auth SEC(".maps");

/* vigil_groups: group policy for userspace; XDP does not read it. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct group_policy);
} vigil_groups SEC(".maps");

/* vigil_guard: anti-replay window and rate state; written by XDP under the
 * per-agent lock, reset by the daemon on registration. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, VIGIL_MAX_AGENTS);
	__type(key, __u32);
	__type(value, struct agent_guard);
} vigil_guard SEC(".maps");

#ifndef VIGIL_MAX_SOURCES
#define VIGIL_MAX_SOURCES 65536
#endif
/* vigil_sources: rate state per source address; written by XDP. LRU and
 * preallocated: a flood of new sources evicts, never allocates. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, VIGIL_MAX_SOURCES);
	__type(key, struct source_key);
	__type(value, __u64);
} vigil_sources SEC(".maps");

/* vigil_allow: per-group source allowlists; written by the daemon. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 4096);
	__uint(map_flags, BPF_F_NO_PREALLOC); /* LPM tries require it; only the daemon inserts */
	__type(key, struct allow_key);
	__type(value, __u32);
} vigil_allow SEC(".maps");

/* vigil_leases: one entry per lease id; see struct lease_slot for who writes what. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, VIGIL_MAX_LEASES);
	__type(key, __u32);
	__type(value, struct lease_slot);
} vigil_leases SEC(".maps");

/* vigil_rxq: each receive queue's progress (send-time watermark, lateness);
 * written by XDP on the queue's CPU, sampled and reset by the sweeper. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, VIGIL_MAX_RXQ);
	__type(key, __u32);
	__type(value, struct rxq_state);
} vigil_rxq SEC(".maps");

/* vigil_config: run-time settings; written by the daemon. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct vigil_config);
} vigil_config SEC(".maps");

/* vigil_globals: the event sequence and the unknown-agent rate window. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct vigil_globals);
} vigil_globals SEC(".maps");

/* vigil_stats: per-CPU counters of the beat path. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct vigil_stats);
} vigil_stats SEC(".maps");

/* vigil_meta: load-time facts for adopting daemons; written by the loader. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct vigil_meta);
} vigil_meta SEC(".maps");

/* vigil_events: state transitions to the daemon. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 << 20);
} vigil_events SEC(".maps");

static const __u32 zero = 0;

/* Hand out the next event sequence and reserve its record. The sequence is
 * taken even when the ring buffer is full, so the daemon sees the gap and
 * reconciles from the maps. Returns NULL (and counts it) when full. */
static __always_inline struct vigil_event *event_begin(struct vigil_stats *st, __u32 kind,
						       __u64 now, __u64 *seq_out)
{
	struct vigil_globals *g = bpf_map_lookup_elem(&vigil_globals, &zero);
	struct vigil_event *e;
	__u64 seq;

	if (!g)
		return NULL;
	seq = __sync_fetch_and_add(&g->event_seq, 1) + 1;
	*seq_out = seq;
	e = bpf_ringbuf_reserve(&vigil_events, sizeof(*e), 0);
	if (!e) {
		st->ringbuf_full++;
		return NULL;
	}
	__builtin_memset(e, 0, sizeof(*e));
	e->event_seq = seq;
	e->kind = kind;
	e->detected_ns = now;
	return e;
}

static __always_inline void event_end(struct vigil_stats *st, struct vigil_event *e)
{
	bpf_ringbuf_submit(e, 0);
	st->events++;
}

/* How a verdict was reached, for the event (vigil_event.flags, aux_ns). */
struct verdict_note {
	__u16 flags;
	__u64 aux_ns;
};

/* An agent event (s may be NULL for refused beats of unknown agents). */
static __always_inline void emit(struct vigil_stats *st, struct agent_slot *s, __u32 slot,
				 __u64 agent_id, __u32 kind, __u32 prev, __u32 state, __u64 now,
				 __u32 reason, const struct src_addr *src,
				 const struct verdict_note *note)
{
	struct vigil_event *e;
	__u64 seq = 0;

	e = event_begin(st, kind, now, &seq);
	if (s && prev != state && seq) {
		s->last_event_seq = seq;
		s->state_since_ns = now;
	}
	if (!e)
		return;
	e->agent_id = agent_id;
	e->slot = slot;
	e->prev_state = prev;
	e->state = state;
	e->reason = reason;
	if (note) {
		e->flags = note->flags;
		e->aux_ns = note->aux_ns;
	}
	if (src)
		__builtin_memcpy(e->src_addr, src->a, sizeof(e->src_addr));
	if (s) {
		e->last_seen_ns = s->last_seen_ns;
		e->seq = s->seq;
		e->incarnation = s->incarnation;
		e->interval_ms = s->interval_ms;
	} else {
		e->last_seen_ns = now;
	}
	event_end(st, e);
}

/* A lease edge: the holder lost it (expired) or gave it up (released). */
static __always_inline void lease_transition(struct vigil_stats *st, struct lease_slot *l,
					     __u32 lease_id, __u32 to, __u32 kind, __u64 now)
{
	struct vigil_event *e;
	__u64 seq;

	if (__sync_val_compare_and_swap(&l->state, VIGIL_LEASE_HELD, to) != VIGIL_LEASE_HELD)
		return;
	e = event_begin(st, kind, now, &seq);
	if (!e)
		return;
	e->agent_id = l->holder;
	e->slot = lease_id;
	e->seq = l->token;
	e->last_seen_ns = l->expires_ns;
	e->interval_ms = l->duration_ms;
	e->prev_state = VIGIL_LEASE_HELD;
	e->state = to;
	event_end(st, e);
}

/* Take a state edge exactly once; report it when we won the race. */
static __always_inline int transition_noted(struct vigil_stats *st, struct agent_slot *s,
					    __u32 slot, __u32 from, __u32 to, __u32 kind, __u64 now,
					    const struct verdict_note *note)
{
	if (__sync_val_compare_and_swap(&s->state, from, to) != from)
		return 0;
	emit(st, s, slot, s->agent_id, kind, from, to, now, VIGIL_REJECT_NONE, NULL, note);
	return 1;
}

static __always_inline int transition(struct vigil_stats *st, struct agent_slot *s, __u32 slot,
				      __u32 from, __u32 to, __u32 kind, __u64 now)
{
	return transition_noted(st, s, slot, from, to, kind, now, NULL);
}

/* A hold of `held_ns` ended with a verdict: count it. */
static __always_inline void count_hold(struct vigil_stats *st, __u64 held_ns)
{
	st->held_ns += held_ns;
	if (held_ns > st->held_max_ns)
		st->held_max_ns = held_ns;
}

/* ---------------------------------------------------------------- beats */

static __always_inline int beat_verdict(const struct vigil_config *cfg)
{
	return cfg && cfg->pass_beats ? XDP_PASS : XDP_DROP;
}

/* A refused datagram: counted by the caller, reported here at a capped rate
 * so an operator (or `vigil run --learn`) sees an attack without an event
 * storm. Always returns the verdict for consumed beat-port traffic. */
static __always_inline int reject(struct vigil_stats *st, const struct vigil_config *cfg,
				  struct agent_slot *s, __u32 slot, __u64 agent_id, __u32 reason,
				  const struct src_addr *src)
{
	struct vigil_globals *g = bpf_map_lookup_elem(&vigil_globals, &zero);
	__u64 now = bpf_ktime_get_ns();

	if (!g || !cfg)
		return XDP_DROP;
	if (now - g->reject_window_ns >= VIGIL_NSEC_PER_SEC) {
		/* Racy reset across CPUs is fine: the cap is approximate by design. */
		g->reject_window_ns = now;
		g->reject_in_window = 0;
	}
	if (__sync_fetch_and_add(&g->reject_in_window, 1) < cfg->reject_events_per_sec)
		emit(st, NULL, s ? slot : NO_SLOT, agent_id, VIGIL_EV_REJECTED,
		     s ? s->state : VIGIL_AGENT_FREE, s ? s->state : VIGIL_AGENT_FREE, now, reason,
		     src, NULL);
	return beat_verdict(cfg);
}

/* Find the live slot of an agent, or NULL. */
static __always_inline struct agent_slot *find_slot(__u64 agent_id, __u32 *slot_out,
						    struct vigil_stats *st)
{
	struct agent_slot *s;
	__u32 *idx = bpf_map_lookup_elem(&vigil_index, &agent_id);

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

static __always_inline void hand_to_sweeper(struct vigil_stats *st, __u32 slot)
{
	if (bpf_map_push_elem(&vigil_inbox, &slot, 0))
		st->queue_full++;
}

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

/* Per-source limit, before any per-agent work: bounds what one address can
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

static __always_inline int source_allowed(const struct agent_auth *a, const struct src_addr *src)
{
	struct allow_key key;

	if (!(a->flags & VIGIL_AUTH_ALLOWLIST))
		return 1;
	key.prefixlen = 32 + 128;
	key.group_id = a->group_id;
	__builtin_memcpy(key.addr, src->a, sizeof(key.addr));
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

/* Anti-replay and the agent's own rate limit, together under its lock.
 * Only authentic beats get here, so forgeries cannot use up an agent's
 * window or its rate. */
static __always_inline __u32 check_replay(const struct vigil_config *cfg, struct agent_slot *s,
					  __u32 slot, const struct vigil_beat_info *b, __u64 now,
					  enum vigil_replay_verdict *verdict)
{
	struct agent_guard *g = bpf_map_lookup_elem(&vigil_guard, &slot);
	__u32 reason = VIGIL_REJECT_NONE, interval;
	struct vigil_replay r;
	__u64 emission = 0, tat = 0;

	if (!g)
		return VIGIL_REJECT_REPLAY;
	/* The beat's own (authentic, clamped) interval sets its allowed rate,
	 * so an agent that speeds up is limited by what it now announces. */
	interval = vigil_clamp_interval(b->interval_ms, s->interval_min_ms, s->interval_max_ms);
	if (cfg->rate_burst && cfg->rate_multiple)
		emission = (__u64)interval * VIGIL_NSEC_PER_MSEC / cfg->rate_multiple;
	bpf_spin_lock(&g->lock);
	/* Judge on copies and commit both only when the beat passes both, so a
	 * beat refused for its rate does not use up its sequence number. */
	r = g->replay;
	*verdict = vigil_replay_check(&r, b->incarnation, b->seq, cfg->replay_window);
	if (!vigil_replay_accepted(*verdict)) {
		reason = VIGIL_REJECT_REPLAY;
	} else if (emission) {
		tat = vigil_gcra(vigil_gcra_rescale(g->rate_tat, now, g->rate_interval_ms, interval),
				 now, emission, cfg->rate_burst);
		if (!tat)
			reason = VIGIL_REJECT_OVER_RATE_AGENT;
	}
	if (reason == VIGIL_REJECT_NONE) {
		g->replay = r;
		if (emission) {
			g->rate_tat = tat;
			g->rate_interval_ms = interval;
		}
	}
	bpf_spin_unlock(&g->lock);
	return reason;
}

/* The holder's fresh beat naming its lease renews it; DRAINING or LEAVING
 * gives it up at once. Beats of other agents naming the lease do nothing. */
static __always_inline void renew_lease(struct vigil_stats *st, struct agent_slot *s,
					const struct vigil_beat_info *b, __u64 now)
{
	__u32 id = b->lease_id;
	struct lease_slot *l;
	__u64 until;

	if (id >= VIGIL_MAX_LEASES)
		return;
	l = bpf_map_lookup_elem(&vigil_leases, &id);
	if (!l || l->state != VIGIL_LEASE_HELD || l->holder != s->agent_id)
		return;
	if (b->status == VIGIL_STATUS_DRAINING || b->status == VIGIL_STATUS_LEAVING) {
		lease_transition(st, l, id, VIGIL_LEASE_RELEASED, VIGIL_EV_LEASE_RELEASED, now);
		return;
	}
	/* Only ever later, even when two CPUs renew at once: a CAS, so an
	 * earlier renewal can never overwrite a later one. */
	until = now + (__u64)l->duration_ms * VIGIL_NSEC_PER_MSEC;
	for (int i = 0; i < 4; i++) {
		__u64 old = l->expires_ns;

		if (until <= old || __sync_val_compare_and_swap(&l->expires_ns, old, until) == old)
			break;
	}
	__sync_fetch_and_add(&l->renewals, 1);
}

/* The beat as the slot held it before this one moved it. */
struct prior_beat {
	__u64 last_seen_ns, seq, deadline, send_ts_ns;
	__u32 incarnation, interval_ms;
};

/*
 * What a timestamped beat says about the receive path: the agent's clock
 * estimate moves, and the queue's send-time watermark with it. Returns the
 * beat's estimated send time on the monitor's clock (the earliest it could
 * have reached XDP), or 0 for a beat without a timestamp.
 */
static __always_inline __u64 note_send_time(struct vigil_stats *st, struct agent_slot *s,
					    const struct vigil_beat_info *b, __u32 rxq,
					    const struct prior_beat *p, __u64 gap,
					    __u64 *first_lost, __u64 now)
{
	__u32 q = rxq & (VIGIL_MAX_RXQ - 1), ivl;
	struct rxq_state *r;
	__u64 est, lag;
	__s64 off;

	if (!b->send_ts_ns)
		return 0;
	off = vigil_clock_update(&s->clock_off_ns, &s->clock_at_ns, now,
				 (__s64)(now - b->send_ts_ns));
	s->rxq = (__u16)q;
	est = vigil_send_estimate(now, b->send_ts_ns, off);
	if (!est)
		return 0;
	lag = now - est;
	r = bpf_map_lookup_elem(&vigil_rxq, &q);
	if (!r)
		return est;
	/* Losses first: a sweeper that sees the watermark move sees them too. */
	ivl = vigil_clamp_interval(b->interval_ms, s->interval_min_ms, s->interval_max_ms);
	*first_lost = vigil_first_lost_ns(est, gap, ivl,
					  p->send_ts_ns ? vigil_send_estimate(p->last_seen_ns,
									      p->send_ts_ns, off) : 0);
	if (*first_lost) {
		__u64 last = est - (__u64)ivl * VIGIL_NSEC_PER_MSEC;

		if (vigil_loss_add(&r->loss_from_ns, &r->loss_to_ns, &r->loss_beats, *first_lost,
				   last > *first_lost ? last : *first_lost, (__u32)gap)) {
			if (r->burst_from_ns != r->loss_from_ns)
				r->bursts++;
			r->burst_from_ns = r->loss_from_ns;
			r->burst_to_ns = r->loss_to_ns;
		}
		r->lost += gap;
		st->lost_beats += gap;
	}
	/* One CPU serves a queue at a time; a lost race only delays evidence. */
	if (est > r->sent_wm_ns)
		r->sent_wm_ns = est;
	r->last_rx_ns = now;
	r->lag_ns = lag;
	if (lag < r->win_lag_min_ns)
		r->win_lag_min_ns = lag;
	r->beats++;
	return est;
}



/* Report a deadline the agent really missed, seen only now (a held verdict
 * ended by a beat sent too late): a SUSPECT as the sweeper would have
 * taken it, from the slot as it was. */
static __always_inline void emit_missed(struct vigil_stats *st, struct agent_slot *s, __u32 slot,
					__u32 prev, const struct prior_beat *p, __u64 now,
					const struct verdict_note *note)
{
	struct vigil_event *e;
	__u64 seq = 0;

	e = event_begin(st, VIGIL_EV_SUSPECT, now, &seq);
	if (seq) {
		s->last_event_seq = seq;
		s->state_since_ns = now;
	}
	if (!e)
		return;
	e->agent_id = s->agent_id;
	e->slot = slot;
	e->prev_state = prev;
	e->state = VIGIL_AGENT_SUSPECT;
	e->last_seen_ns = p->last_seen_ns;
	e->seq = p->seq;
	e->incarnation = p->incarnation;
	e->interval_ms = p->interval_ms;
	e->flags = note->flags;
	e->aux_ns = note->aux_ns;
	event_end(st, e);
}

/*
 * A verdict the sweeper holds (hold_since_ns) belongs to whoever clears it
 * first. A beat that does so decides it from its own send time: sent in
 * time for the deadline, the agent never missed it and nothing is
 * reported; sent after it, the agent did miss it, and the SUSPECT the hold
 * kept back is reported now, followed by the recovery this beat is. Called
 * after the beat's liveness facts are stored, so a sweeper that finds the
 * hold gone sees them. Returns the agent's state afterwards.
 */
static __always_inline __u32 end_hold(struct vigil_stats *st, struct agent_slot *s, __u32 slot,
				      __u32 state, const struct prior_beat *p, __u16 in_time,
				      __u64 now)
{
	__u64 h = s->hold_since_ns;
	struct verdict_note note = { .flags = VIGIL_EVF_HELD | VIGIL_EVF_BY_BEAT };

	if (!h || __sync_val_compare_and_swap(&s->hold_since_ns, h, 0) != h)
		return state;
	note.aux_ns = now > h ? now - h : 0;
	count_hold(st, note.aux_ns);
	if (in_time || (state != VIGIL_AGENT_ALIVE && state != VIGIL_AGENT_NEW)) {
		/* Sent in time, delayed or lost on the way (or a held DEAD,
		 * which the recovery below ends). */
		st->held_cancelled++;
		return state;
	}
	st->held_by_beat++;
	emit_missed(st, s, slot, state, p, now, &note);
	emit(st, s, slot, s->agent_id, VIGIL_EV_RECOVERED, VIGIL_AGENT_SUSPECT, VIGIL_AGENT_ALIVE,
	     now, VIGIL_REJECT_NONE, NULL, NULL);
	if (state == VIGIL_AGENT_NEW)
		__sync_val_compare_and_swap(&s->state, VIGIL_AGENT_NEW, VIGIL_AGENT_ALIVE);
	return VIGIL_AGENT_ALIVE;
}

static __always_inline void accept_beat(struct vigil_stats *st, struct agent_slot *s, __u32 slot,
					const struct vigil_beat_info *b,
					enum vigil_replay_verdict v, __u32 rxq, __u64 now)
{
	__u32 state = s->state;
	int late = v == VIGIL_REPLAY_LATE;
	/* The deadline this beat answers, before it moves it. */
	struct prior_beat p = {
		.last_seen_ns = s->last_seen_ns,
		.seq = s->seq,
		.deadline = vigil_deadline(s->last_seen_ns, s->interval_ms, s->multiplier),
		.send_ts_ns = s->send_ts_ns,
		.incarnation = s->incarnation,
		.interval_ms = s->interval_ms,
	};
	struct verdict_note proof = {};
	__u64 est, gap = 0, first_lost = 0;

	if (v == VIGIL_REPLAY_RESTART)
		s->clock_at_ns = 0; /* a new incarnation may bring a new clock */
	/* Beats of this incarnation that never arrived (a bounded gap: a larger
	 * jump is a sender that moved its sequence, not a loss). */
	if (v == VIGIL_REPLAY_NEWER && state != VIGIL_AGENT_NEW && b->seq > p.seq + 1 &&
	    b->seq - p.seq - 1 <= VIGIL_LOSS_GAP_MAX)
		gap = b->seq - p.seq - 1;
	est = note_send_time(st, s, b, rxq, &p, gap, &first_lost, now);

	/* Sent in time, yet the verdict was taken: what held it up came after
	 * the agent (the receive path, the network). Or beats sent in time were
	 * lost on the way (its sequence says so). */
	if (est && est <= p.deadline) {
		proof.flags = VIGIL_EVF_MONITOR_DELAY;
		proof.aux_ns = est;
	} else if (first_lost && first_lost <= p.deadline) {
		proof.flags = VIGIL_EVF_BEATS_LOST;
		proof.aux_ns = first_lost;
	}
	if (late) {
		/* Authentic and inside the window, just out of order: it still
		 * proves the agent alive, but everything else it reports is older
		 * than what the slot holds (sequence, status, interval, lease),
		 * so only liveness is taken from it. */
		__sync_fetch_and_add(&s->reordered, 1);
		st->reordered++;
	} else {
		s->seq = b->seq;
		s->incarnation = b->incarnation;
	}
	if (v == VIGIL_REPLAY_RESTART) {
		__sync_fetch_and_add(&s->restarts, 1);
		st->restarts++;
	}
	if (state != VIGIL_AGENT_NEW && now > s->last_seen_ns)
		__sync_fetch_and_add(&s->gap_hist[vigil_gap_bucket(now - s->last_seen_ns) &
						   (VIGIL_GAP_BUCKETS - 1)], 1);
	/* Liveness facts first: the state CAS below publishes them, so the
	 * sweeper can never see ALIVE together with the old last-seen time. */
	s->last_seen_ns = now;
	if (!late) {
		s->send_ts_ns = b->send_ts_ns;
		s->interval_ms = vigil_clamp_interval(b->interval_ms, s->interval_min_ms,
						      s->interval_max_ms);
		s->status = b->status;
		s->queue_depth = b->queue_depth;
		s->lease_id = b->lease_id;
	}
	__sync_fetch_and_add(&s->beats, 1);
	st->beats++;

	if (v == VIGIL_REPLAY_RESTART)
		emit(st, s, slot, s->agent_id, VIGIL_EV_RESTART, state, state, now,
		     VIGIL_REJECT_NONE, NULL, NULL);

	if (!late && b->lease_id)
		renew_lease(st, s, b, now);

	state = end_hold(st, s, slot, state, &p, proof.flags, now);

	/* A late beat neither announces a departure a newer beat took back nor
	 * undoes one that overtook it: LEAVING is judged on the newest beat. */
	if (b->status == VIGIL_STATUS_LEAVING && !late) {
		if (state != VIGIL_AGENT_LEFT)
			transition(st, s, slot, state, VIGIL_AGENT_LEFT, VIGIL_EV_LEFT, now);
		return;
	}
	switch (state) {
	case VIGIL_AGENT_NEW:
		transition(st, s, slot, state, VIGIL_AGENT_ALIVE, VIGIL_EV_UP, now);
		break;
	case VIGIL_AGENT_SUSPECT:
		if (transition_noted(st, s, slot, state, VIGIL_AGENT_ALIVE, VIGIL_EV_RECOVERED, now,
				     &proof) && (proof.flags & VIGIL_EVF_MONITOR_DELAY))
			st->corrected++;
		break;
	case VIGIL_AGENT_DEAD:
		/* The sweeper dropped it from the wheel; hand it back. */
		if (transition_noted(st, s, slot, state, VIGIL_AGENT_ALIVE, VIGIL_EV_RECOVERED, now,
				     &proof)) {
			if (proof.flags & VIGIL_EVF_MONITOR_DELAY)
				st->corrected++;
			hand_to_sweeper(st, slot);
		}
		break;
	case VIGIL_AGENT_LEFT:
		if (late)
			break;
		if (transition(st, s, slot, state, VIGIL_AGENT_ALIVE, VIGIL_EV_UP, now))
			hand_to_sweeper(st, slot);
		break;
	}
}

/* Where the headers of the datagram start, for turning it into an ack. */
struct beat_frame {
	struct ethhdr *eth;
	void *l3;
	struct udphdr *udp;
	int v6;
};

/* UDP over IPv6 must carry a checksum (RFC 8200); IPv4 may send 0. */
static __always_inline __u16 udp6_csum(struct ipv6hdr *ip6, struct udphdr *uh, void *data_end)
{
	__be32 pseudo[2] = { bpf_htonl(sizeof(*uh) + sizeof(struct vigil_ack)),
			     bpf_htonl(IPPROTO_UDP_) };
	__s64 sum;

	if ((void *)(ip6 + 1) > data_end ||
	    (void *)uh + sizeof(*uh) + sizeof(struct vigil_ack) > data_end)
		return 0;
	sum = bpf_csum_diff(0, 0, (__be32 *)&ip6->saddr, 32, 0);
	sum = bpf_csum_diff(0, 0, pseudo, sizeof(pseudo), sum);
	sum = bpf_csum_diff(0, 0, (__be32 *)uh, sizeof(*uh) + sizeof(struct vigil_ack), sum);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = ~sum & 0xffff;
	return sum ? (__u16)sum : 0xffff;
}

/*
 * Answer a valid beat in place: the 64-byte beat becomes a 64-byte
 * acknowledgement (lengths, and so the IPv4 header checksum, stay as they
 * are), addresses and ports are swapped, and the frame goes back out of the
 * interface it came in on. It tells the agent what the monitor knows of the
 * lease the beat named, tagged with the agent's key.
 */
static __always_inline int send_ack(const struct beat_frame *f, void *data_end, void *payload,
				    const struct agent_auth *auth, const struct vigil_beat_info *b,
				    const struct vigil_config *cfg, __u64 now)
{
	struct vigil_ack *a = payload;
	struct ethhdr *eth = f->eth;
	struct udphdr *uh = f->udp;
	struct lease_slot *l = NULL;
	__u32 id = b->lease_id, remaining = 0, rec = cfg->recommend_interval_ms;
	__u8 kid = b->key_id & 1, mac[6];
	__be16 port;

	if ((void *)(eth + 1) > data_end || (void *)(uh + 1) > data_end ||
	    (void *)(a + 1) > data_end)
		return XDP_DROP;
	if (id && id < VIGIL_MAX_LEASES)
		l = bpf_map_lookup_elem(&vigil_leases, &id);
	a->magic = bpf_htons(VIGIL_MAGIC);
	a->version = VIGIL_VERSION;
	a->flags = VIGIL_F_ACK;
	a->key_id = kid;
	a->recommend_interval_ms = bpf_htons(rec > 65535 ? 65535 : rec);
	a->agent_id = vg_be64(b->agent_id);
	a->seq = vg_be64(b->seq);
	a->lease_id = vg_be32(id);
	if (l) {
		if (l->state == VIGIL_LEASE_HELD && l->expires_ns > now)
			remaining = (l->expires_ns - now) / VIGIL_NSEC_PER_MSEC;
		a->lease_state = l->state;
		a->token = vg_be64(l->token);
		a->holder = vg_be64(l->holder);
	} else {
		a->lease_state = VIGIL_LEASE_FREE;
		a->token = 0;
		a->holder = 0;
	}
	a->remaining_ms = vg_be32(remaining);
	if ((b->flags & VIGIL_F_MAC) && (auth->valid & (1u << kid)))
		vigil_ack_sign(a, &auth->key[kid]);
	else
		__builtin_memset(a->mac, 0, sizeof(a->mac));

	__builtin_memcpy(mac, eth->h_dest, 6);
	__builtin_memcpy(eth->h_dest, eth->h_source, 6);
	__builtin_memcpy(eth->h_source, mac, 6);
	if (f->v6) {
		struct ipv6hdr *ip6 = f->l3;
		struct in6_addr t;

		if ((void *)(ip6 + 1) > data_end)
			return XDP_DROP;
		t = ip6->saddr;
		ip6->saddr = ip6->daddr;
		ip6->daddr = t;
	} else {
		struct iphdr *ip = f->l3;
		__be32 t;

		if ((void *)(ip + 1) > data_end)
			return XDP_DROP;
		t = ip->saddr;
		ip->saddr = ip->daddr;
		ip->daddr = t;
	}
	port = uh->source;
	uh->source = uh->dest;
	uh->dest = port;
	uh->check = 0;
	if (f->v6)
		uh->check = udp6_csum(f->l3, uh, data_end);
	return XDP_TX;
}

/*
 * One datagram to the beat port. Cheapest checks first; nothing that an
 * unauthenticated sender controls changes any state but counters:
 *   source rate -> decode -> known agent -> allowlist -> tag -> replay+rate
 */
static __always_inline int handle_beat(struct xdp_md *ctx, const struct beat_frame *f,
				       void *payload, void *data_end, int plen,
				       struct vigil_stats *st, const struct src_addr *src)
{
	struct vigil_config *cfg = bpf_map_lookup_elem(&vigil_config, &zero);
	enum vigil_replay_verdict rv = VIGIL_REPLAY_NEWER;
	struct vigil_beat_info b = {};
	enum vigil_beat_verdict v;
	struct agent_auth *auth;
	struct agent_slot *s;
	__u32 slot = 0, reason;
	__u64 now = bpf_ktime_get_ns();

	if (!cfg)
		return XDP_PASS;
	if (!source_ok(cfg, src, now)) {
		st->over_rate_source++;
		return reject(st, cfg, NULL, 0, 0, VIGIL_REJECT_OVER_RATE_SOURCE, src);
	}
	if (plen < 0) {
		st->malformed++;
		return reject(st, cfg, NULL, 0, 0, VIGIL_REJECT_MALFORMED, src);
	}
	if (payload + sizeof(struct vigil_beat) <= data_end) {
		v = vigil_beat_decode(payload, plen, &b);
	} else {
		/* Short: decode from a zero-padded copy of what is really there. */
		struct vigil_beat tmp = {};
		__u32 avail = data_end - payload;
		__u32 n = (__u32)plen < avail ? (__u32)plen : avail;

		if (n > sizeof(tmp))
			n = sizeof(tmp);
		if (n > 0 && bpf_xdp_load_bytes(ctx, payload - (void *)(long)ctx->data, &tmp, n))
			n = 0;
		v = vigil_beat_decode(&tmp, n, &b);
	}

	s = b.has_agent_id ? find_slot(b.agent_id, &slot, st) : NULL;
	if (v != VIGIL_BEAT_OK) {
		if (v == VIGIL_BEAT_BAD_VERSION) {
			st->bad_version++;
			if (s)
				__sync_fetch_and_add(&s->bad_version, 1);
			return reject(st, cfg, s, slot, b.agent_id, VIGIL_REJECT_BAD_VERSION, src);
		}
		st->malformed++;
		if (s)
			__sync_fetch_and_add(&s->malformed, 1);
		return reject(st, cfg, s, slot, b.agent_id, VIGIL_REJECT_MALFORMED, src);
	}
	if (!s) {
		st->unknown_agent++;
		return reject(st, cfg, NULL, 0, b.agent_id, VIGIL_REJECT_UNKNOWN_AGENT, src);
	}
	auth = bpf_map_lookup_elem(&vigil_auth, &slot);
	if (!auth)
		return XDP_PASS; /* cannot happen: same size as vigil_agents */
	if (!source_allowed(auth, src)) {
		st->not_allowed++;
		return reject(st, cfg, s, slot, b.agent_id, VIGIL_REJECT_NOT_ALLOWED, src);
	}
	/* v == OK means all 64 bytes were in the packet: payload is the beat. */
	if (payload + sizeof(struct vigil_beat) > data_end)
		return XDP_PASS; /* unreachable; keeps the verifier's range */
	reason = check_auth(cfg, payload, b.flags, b.key_id, auth);
	if (reason) {
		if (reason == VIGIL_REJECT_BAD_TAG) {
			st->bad_tag++;
			__sync_fetch_and_add(&s->bad_tag, 1);
		} else {
			st->unauthenticated++;
		}
		return reject(st, cfg, s, slot, b.agent_id, reason, src);
	}
	reason = check_replay(cfg, s, slot, &b, now, &rv);
	if (reason == VIGIL_REJECT_REPLAY) {
		if (rv == VIGIL_REPLAY_DUPLICATE) {
			__sync_fetch_and_add(&s->duplicates, 1);
			st->duplicates++;
		} else {
			__sync_fetch_and_add(&s->replayed, 1);
			st->replayed++;
		}
		return reject(st, cfg, s, slot, b.agent_id, reason, src);
	}
	if (reason == VIGIL_REJECT_OVER_RATE_AGENT) {
		__sync_fetch_and_add(&s->over_rate, 1);
		st->over_rate_agent++;
		return reject(st, cfg, s, slot, b.agent_id, reason, src);
	}
	accept_beat(st, s, slot, &b, rv, ctx->rx_queue_index, now);
	if (auth->flags & VIGIL_AUTH_ACK)
		return send_ack(f, data_end, payload, auth, &b, cfg, now);
	return beat_verdict(cfg);
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
	return handle_beat(ctx, &f, c.pos, data_end, plen, st, &src);
pass:
	st->passed++;
	return XDP_PASS;
}

/* -------------------------------------------------------------- sweeper */

struct sweep_ctx {
	__u64 now;
	__u64 now_tick;
	__u64 visits;
	__u64 refiled;
	__u64 hold_max_ns;
	__u32 dead_misses;
	__u32 sweeper_behind; /* the sweeper is in a MONITOR_BEHIND episode */
};

/* File a slot in the bucket of tick `due` (never behind the cursor). */
static __always_inline void file_slot(struct wheel_state *ws, struct wheel_link *l, __u32 slot,
				      __u64 due)
{
	struct wheel_bucket *bk;
	__u32 b;

	if (due < ws->next_tick)
		due = ws->next_tick;
	b = due & (VIGIL_WHEEL_BUCKETS - 1);
	bk = bpf_map_lookup_elem(&vigil_buckets, &b);
	if (!bk) {
		l->in_wheel = 0;
		return;
	}
	l->due_tick = due;
	l->next = bk->head;
	bk->head = slot + 1;
	bk->len++;
}

static __always_inline void leave_wheel(struct wheel_state *ws, struct wheel_link *l)
{
	l->in_wheel = 0;
	l->next = 0;
	l->hold_step = 0;
	if (ws->filed)
		ws->filed--;
}

/* A lease in the wheel: expire it once its holder stopped renewing. Renewals
 * only move expires_ns later, so filing at it needs no horizon. */
static __always_inline void visit_lease(struct sweep_ctx *c, struct wheel_state *ws,
					struct vigil_stats *st, __u32 slot, struct wheel_link *l)
{
	__u32 id = slot - max_agents;
	struct lease_slot *ls = bpf_map_lookup_elem(&vigil_leases, &id);

	c->visits++;
	if (!ls || ls->state != VIGIL_LEASE_HELD) {
		leave_wheel(ws, l);
	} else if (c->now >= ls->expires_ns) {
		lease_transition(st, ls, id, VIGIL_LEASE_EXPIRED, VIGIL_EV_LEASE_EXPIRED, c->now);
		leave_wheel(ws, l);
	} else {
		c->refiled++;
		file_slot(ws, l, slot, vigil_wheel_due(c->now, ls->expires_ns,
						       ls->expires_ns - c->now, tick_ns));
	}
}

/*
 * May the verdict due at `due` be taken now? Only with evidence that the
 * agent's receive queue has caught up with the deadline, or once the hold
 * bound has passed (docs/design.md, "receive-path evidence"). Returns 1 and
 * fills *note to decide now; 0 to look again at *next_tick (holding, or a
 * beat just ended the hold and the slot must be judged afresh).
 */
static __always_inline int verdict_ready(struct sweep_ctx *c, struct vigil_stats *st,
					 struct agent_slot *s, struct wheel_link *l, __u64 due,
					 struct verdict_note *note, __u64 *next_tick)
{
	__u32 q = s->rxq & (VIGIL_MAX_RXQ - 1), step = l->hold_step;
	struct rxq_state *r = bpf_map_lookup_elem(&vigil_rxq, &q);
	__u64 h = s->hold_since_ns, sent = 0;
	int losing;

	/* Losses count from the send time of the agent's last beat: that beat
	 * may itself have waited out the trouble in the queue. */
	if (s->send_ts_ns)
		sent = vigil_send_estimate(s->last_seen_ns, s->send_ts_ns, s->clock_off_ns);
	losing = r && vigil_loss_overlaps(r->burst_from_ns, r->burst_to_ns,
					  sent ? sent : s->last_seen_ns, due);
	int rx_behind = r && r->behind_since_ns;
	int lossy = r && r->burst_to_ns && r->burst_to_ns + VIGIL_LOSS_RECENT_NS >= due;
	/* The queue's own trouble stretches the bound; a late sweeper (a busy
	 * or descheduled CPU) only delays verdicts and is only noted. */
	__u64 bound = c->hold_max_ns * (losing || rx_behind || lossy ? VIGIL_HOLD_TROUBLE_FACTOR : 1);
	enum vigil_gate g = vigil_verdict_gate(due, r ? r->sent_wm_ns : 0, c->now, bound, losing,
					      lossy ? c->hold_max_ns / 2 : 0);

	if (g == VIGIL_GATE_HOLD) {
		if (!h) {
			s->hold_since_ns = c->now;
			st->verdicts_held++;
		}
		*next_tick = vigil_hold_next_tick(c->now_tick, &step, due + bound, tick_ns);
		l->hold_step = (__u16)step;
		return 0;
	}
	l->hold_step = 0;
	if (h) {
		if (__sync_val_compare_and_swap(&s->hold_since_ns, h, 0) != h) {
			*next_tick = 0; /* next tick */
			return 0;
		}
		note->flags |= VIGIL_EVF_HELD;
		note->aux_ns = c->now - h;
		count_hold(st, c->now - h);
		if (g == VIGIL_GATE_DECIDE)
			st->held_decided++;
		else
			st->held_unverified++;
	}
	if (g == VIGIL_GATE_UNVERIFIED)
		note->flags |= VIGIL_EVF_RX_UNVERIFIED;
	if (rx_behind || c->sweeper_behind)
		note->flags |= VIGIL_EVF_MONITOR_BEHIND;
	if (losing)
		note->flags |= VIGIL_EVF_BEATS_LOST;
	return 1;
}

/* Where a held slot goes: its next look, but never past the horizon, so a
 * beat that ends the hold and then the agent's death are still seen in time. */
static __always_inline __u64 hold_due(const struct sweep_ctx *c, __u64 tick, __u64 horizon)
{
	return tick ? vigil_wheel_due(c->now, tick * tick_ns, horizon, tick_ns) : 0;
}

/* Look at one slot: take due edges, then re-file or drop it. */
static __always_inline void visit(struct sweep_ctx *c, struct wheel_state *ws,
				  struct vigil_stats *st, __u32 slot)
{
	struct agent_slot *s = bpf_map_lookup_elem(&vigil_agents, &slot);
	struct wheel_link *l = bpf_map_lookup_elem(&vigil_links, &slot);
	enum vigil_sweep_action act;
	struct verdict_note note = {};
	__u64 next_ns = 0, horizon, due, again = 0;
	__u32 state;

	if (slot >= max_agents) {
		if (l)
			visit_lease(c, ws, st, slot, l);
		return;
	}
	if (!s || !l)
		return;
	c->visits++;
	state = s->state;
	act = vigil_sweep_eval(state, s->last_seen_ns, s->interval_ms, s->multiplier,
			       c->dead_misses, c->now, &next_ns);
	horizon = vigil_horizon_ns(s->interval_min_ms, s->multiplier);
	switch (act) {
	case VIGIL_SWEEP_KEEP:
		l->hold_step = 0;
		c->refiled++;
		file_slot(ws, l, slot, vigil_wheel_due(c->now, next_ns, horizon, tick_ns));
		break;
	case VIGIL_SWEEP_TO_SUSPECT:
		due = vigil_deadline(s->last_seen_ns, s->interval_ms, s->multiplier);
		if (!verdict_ready(c, st, s, l, due, &note, &again))
			file_slot(ws, l, slot, hold_due(c, again, horizon));
		else if (transition_noted(st, s, slot, state, VIGIL_AGENT_SUSPECT, VIGIL_EV_SUSPECT,
					  c->now, &note))
			file_slot(ws, l, slot, vigil_wheel_due(c->now, next_ns, horizon, tick_ns));
		else /* a beat or the daemon changed it meanwhile: look again next tick */
			file_slot(ws, l, slot, 0);
		break;
	case VIGIL_SWEEP_TO_DEAD:
		due = vigil_dead_at(s->last_seen_ns, s->interval_ms, s->multiplier, c->dead_misses);
		if (!verdict_ready(c, st, s, l, due, &note, &again))
			file_slot(ws, l, slot, hold_due(c, again, horizon));
		else if (transition_noted(st, s, slot, state, VIGIL_AGENT_DEAD, VIGIL_EV_DEAD, c->now,
					  &note))
			leave_wheel(ws, l);
		else
			file_slot(ws, l, slot, 0);
		break;
	case VIGIL_SWEEP_DROP:
		leave_wheel(ws, l);
		break;
	}
}

/* bpf_loop step: admit one slot from the inbox. */
static long admit_one(__u64 i, struct sweep_ctx *c)
{
	struct wheel_state *ws = bpf_map_lookup_elem(&vigil_wheel, &zero);
	struct vigil_stats *st = bpf_map_lookup_elem(&vigil_stats, &zero);
	struct wheel_link *l;
	__u32 slot;

	if (!ws || !st || bpf_map_pop_elem(&vigil_inbox, &slot))
		return 1;
	l = bpf_map_lookup_elem(&vigil_links, &slot);
	if (!l || l->in_wheel)
		return 0; /* already watched */
	l->in_wheel = 1;
	ws->filed++;
	visit(c, ws, st, slot);
	return 0;
}

/* bpf_loop step: visit one slot of the work list, or detach the next due
 * bucket into the work list. Returns 1 when nothing is due any more. */
static long sweep_one(__u64 i, struct sweep_ctx *c)
{
	struct wheel_state *ws = bpf_map_lookup_elem(&vigil_wheel, &zero);
	struct vigil_stats *st = bpf_map_lookup_elem(&vigil_stats, &zero);
	struct wheel_bucket *bk;
	struct wheel_link *l;
	__u32 slot, b;

	if (!ws || !st)
		return 1;
	if (!ws->work_head) {
		if (ws->next_tick > c->now_tick)
			return 1;
		b = ws->next_tick & (VIGIL_WHEEL_BUCKETS - 1);
		bk = bpf_map_lookup_elem(&vigil_buckets, &b);
		if (!bk)
			return 1;
		ws->work_head = bk->head;
		bk->head = 0;
		bk->len = 0;
		ws->next_tick++;
		return 0;
	}
	slot = ws->work_head - 1;
	l = bpf_map_lookup_elem(&vigil_links, &slot);
	if (!l) {
		ws->work_head = 0; /* cannot happen: slot numbers come from us */
		return 1;
	}
	ws->work_head = l->next;
	visit(c, ws, st, slot);
	return 0;
}

/* ------------------------------------------------------ monitor health */

/* The receive queues are sampled this often; an episode ends after a whole
 * second without a late sample, so a machine that is often a little late
 * makes one long episode, not a flap per stall. */
#define HEALTH_PERIOD_NS (10 * VIGIL_NSEC_PER_MSEC)
#define HEALTH_CALM_MS 1000

struct health_ctx {
	__u64 now;
	__u64 behind_ns; /* more than this is behind: one tick */
	struct vigil_stats *st;
};

static __always_inline void emit_health(struct vigil_stats *st, __u32 kind, __u32 part, __u32 slot,
					__u64 lag_ns, __u64 since_ns, __u64 now)
{
	struct vigil_event *e;
	__u64 seq;

	e = event_begin(st, kind, now, &seq);
	if (!e)
		return;
	e->slot = slot;
	e->state = part;
	e->aux_ns = lag_ns;
	e->last_seen_ns = since_ns ? since_ns : now;
	event_end(st, e);
}

/* One MONITOR_BEHIND episode step: a sample `late` (or on time). */
static __always_inline void health_step(struct vigil_stats *st, __u64 *since, __u64 *max,
					__u32 *last_late_ms, __u32 *episodes, int late,
					__u64 lag_ns, __u32 part, __u32 slot, __u64 now)
{
	__u32 now_ms = (__u32)(now / VIGIL_NSEC_PER_MSEC);

	if (late) {
		*last_late_ms = now_ms;
		if (lag_ns > *max || !*since)
			*max = lag_ns;
		if (!*since) {
			*since = now;
			(*episodes)++;
			emit_health(st, VIGIL_EV_MONITOR_BEHIND, part, slot, lag_ns, 0, now);
		}
	} else if (*since && now_ms - *last_late_ms >= HEALTH_CALM_MS) {
		emit_health(st, VIGIL_EV_MONITOR_CAUGHT_UP, part, slot, *max, *since, now);
		*since = 0;
	}
}

/* bpf_loop step: sample one receive queue. A queue that accepted no
 * timestamped beat since the last sample is not judged either way. */
static long health_rxq(__u64 i, struct health_ctx *h)
{
	__u32 q = (__u32)i;
	struct rxq_state *r = bpf_map_lookup_elem(&vigil_rxq, &q);
	__u64 lag;

	if (!r)
		return 1;
	lag = r->win_lag_min_ns;
	if (!r->beats || lag == ~0ULL)
		return 0;
	r->win_lag_min_ns = ~0ULL;
	health_step(h->st, &r->behind_since_ns, &r->behind_max_ns, &r->last_late_ms, &r->episodes,
		    lag > h->behind_ns, lag, VIGIL_PART_RXQ, q, h->now);
	return 0;
}

/* The sweeper's own lateness, `lag` ticks of backlog at this callback. */
static __always_inline void health_sweeper(struct wheel_state *ws, struct vigil_stats *st,
					   __u64 lag, __u64 now)
{
	__u64 max = ws->behind_max_ticks * tick_ns;
	__u32 episodes = (__u32)ws->behind_episodes;

	ws->lag_ticks = lag;
	health_step(st, &ws->behind_since_ns, &max, &ws->last_late_ms, &episodes, lag > 1,
		    lag * tick_ns,
		    VIGIL_PART_SWEEPER, NO_SLOT, now);
	ws->behind_max_ticks = max / tick_ns;
	ws->behind_episodes = episodes;
}

/* Fire on the next tick boundary of the monotonic clock. A relative re-arm
 * would drift by the callback's own run time and let a deadline that falls
 * just after a boundary wait almost two ticks. */
static __always_inline long arm(struct sweeper_timer *t)
{
	__u64 next = (bpf_ktime_get_ns() / tick_ns + 1) * tick_ns;

	return bpf_timer_start(&t->timer, next, BPF_F_TIMER_ABS);
}

static int sweep_tick(void *map, __u32 *key, struct sweeper_timer *t)
{
	struct wheel_state *ws = bpf_map_lookup_elem(&vigil_wheel, &zero);
	struct vigil_config *cfg = bpf_map_lookup_elem(&vigil_config, &zero);
	struct vigil_stats *st = bpf_map_lookup_elem(&vigil_stats, &zero);
	struct sweep_ctx c = {};
	__u32 budget;
	long n;

	c.now = bpf_ktime_get_ns();
	if (ws && cfg && st) {
		__u64 lag;

		c.now_tick = c.now / tick_ns;
		c.dead_misses = cfg->dead_misses;
		c.hold_max_ns = (__u64)cfg->hold_max_ms * VIGIL_NSEC_PER_MSEC;
		if (!ws->next_tick)
			ws->next_tick = c.now_tick;
		lag = c.now_tick > ws->next_tick ? c.now_tick - ws->next_tick : 0;
		if (lag > ws->max_lag_ticks)
			ws->max_lag_ticks = lag;
		health_sweeper(ws, st, lag, c.now);
		c.sweeper_behind = ws->behind_since_ns != 0;
		budget = cfg->sweep_budget ? cfg->sweep_budget : 1;
		if (budget > (1 << 23))
			budget = 1 << 23;
		bpf_loop(budget, admit_one, &c, 0);
		n = bpf_loop(budget, sweep_one, &c, 0);
		if (n >= budget)
			ws->budget_exhausted++;
		ws->runs++;
		ws->visits += c.visits;
		ws->refiled += c.refiled;
		ws->last_run_ns = c.now;
		if (c.now >= ws->health_next_ns) {
			struct health_ctx h = { .now = c.now, .behind_ns = tick_ns, .st = st };

			ws->health_next_ns = c.now + HEALTH_PERIOD_NS;
			bpf_loop(VIGIL_MAX_RXQ, health_rxq, &h, 0);
		}
		ws->busy_ns += bpf_ktime_get_ns() - c.now;
	}
	arm(t);
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

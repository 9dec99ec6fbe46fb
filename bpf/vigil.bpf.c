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

char LICENSE[] SEC("license") = "GPL"; /* bpf_timer and bpf_loop need GPL */

#define CLOCK_MONOTONIC 1
#define NO_SLOT 0xffffffffu

/* Load-time settings (set by the daemon before load, fixed afterwards). */
const volatile __u16 beat_port_be = 0; /* UDP destination port, network order */
const volatile __u64 tick_ns = 1000000;

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

/* Hand out the next event sequence and send one record. The sequence is
 * taken even when the ring buffer is full, so the daemon sees the gap and
 * reconciles from the maps. */
static __always_inline void emit(struct vigil_stats *st, struct agent_slot *s, __u32 slot,
				 __u64 agent_id, __u32 kind, __u32 prev, __u32 state, __u64 now)
{
	struct vigil_globals *g = bpf_map_lookup_elem(&vigil_globals, &zero);
	struct vigil_event *e;
	__u64 seq;

	if (!g)
		return;
	seq = __sync_fetch_and_add(&g->event_seq, 1) + 1;
	if (s && prev != state) {
		s->last_event_seq = seq;
		s->state_since_ns = now;
	}
	e = bpf_ringbuf_reserve(&vigil_events, sizeof(*e), 0);
	if (!e) {
		st->ringbuf_full++;
		return;
	}
	e->event_seq = seq;
	e->agent_id = agent_id;
	e->detected_ns = now;
	e->slot = slot;
	e->kind = kind;
	e->prev_state = prev;
	e->state = state;
	if (s) {
		e->last_seen_ns = s->last_seen_ns;
		e->seq = s->seq;
		e->incarnation = s->incarnation;
		e->interval_ms = s->interval_ms;
	} else {
		e->last_seen_ns = now;
		e->seq = 0;
		e->incarnation = 0;
		e->interval_ms = 0;
	}
	bpf_ringbuf_submit(e, 0);
	st->events++;
}

/* Take a state edge exactly once; report it when we won the race. */
static __always_inline int transition(struct vigil_stats *st, struct agent_slot *s, __u32 slot,
				      __u32 from, __u32 to, __u32 kind, __u64 now)
{
	if (__sync_val_compare_and_swap(&s->state, from, to) != from)
		return 0;
	emit(st, s, slot, s->agent_id, kind, from, to, now);
	return 1;
}

/* ---------------------------------------------------------------- beats */

static __always_inline int beat_verdict(const struct vigil_config *cfg)
{
	return cfg && cfg->pass_beats ? XDP_PASS : XDP_DROP;
}

/* Beats for ids nobody registered: counted, and reported at a capped rate so
 * an operator (or `vigil run --learn`) hears of them without an event storm. */
static __always_inline void report_unknown(struct vigil_stats *st, const struct vigil_config *cfg,
					   __u64 agent_id)
{
	struct vigil_globals *g = bpf_map_lookup_elem(&vigil_globals, &zero);
	__u64 now = bpf_ktime_get_ns();

	if (!g || !cfg)
		return;
	if (now - g->unknown_window_ns >= VIGIL_NSEC_PER_SEC) {
		/* Racy reset across CPUs is fine: the cap is approximate by design. */
		g->unknown_window_ns = now;
		g->unknown_in_window = 0;
	}
	if (__sync_fetch_and_add(&g->unknown_in_window, 1) >= cfg->unknown_events_per_sec)
		return;
	emit(st, NULL, NO_SLOT, agent_id, VIGIL_EV_UNKNOWN_AGENT, VIGIL_AGENT_FREE,
	     VIGIL_AGENT_FREE, now);
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

static __always_inline void accept_beat(struct vigil_stats *st, struct agent_slot *s, __u32 slot,
					const struct vigil_beat_info *b, int restart)
{
	__u64 now = bpf_ktime_get_ns();
	__u32 state;

	/* Equal for an ordinary beat; learnt on the first one; risen on restart. */
	s->incarnation = b->incarnation;
	if (restart) {
		__sync_fetch_and_add(&s->restarts, 1);
		st->restarts++;
	}
	/* Liveness facts first: the state CAS below publishes them, so the
	 * sweeper can never see ALIVE together with the old last-seen time. */
	s->last_seen_ns = now;
	s->send_ts_ns = b->send_ts_ns;
	s->interval_ms = vigil_clamp_interval(b->interval_ms, s->interval_min_ms, s->interval_max_ms);
	s->status = b->status;
	s->queue_depth = b->queue_depth;
	s->lease_id = b->lease_id;
	__sync_fetch_and_add(&s->beats, 1);
	st->beats++;

	if (restart)
		emit(st, s, slot, s->agent_id, VIGIL_EV_RESTART, s->state, s->state, now);

	state = s->state;
	if (b->status == VIGIL_STATUS_LEAVING) {
		if (state != VIGIL_AGENT_LEFT)
			transition(st, s, slot, state, VIGIL_AGENT_LEFT, VIGIL_EV_LEFT, now);
		return;
	}
	switch (state) {
	case VIGIL_AGENT_NEW:
		transition(st, s, slot, state, VIGIL_AGENT_ALIVE, VIGIL_EV_UP, now);
		break;
	case VIGIL_AGENT_SUSPECT:
		transition(st, s, slot, state, VIGIL_AGENT_ALIVE, VIGIL_EV_RECOVERED, now);
		break;
	case VIGIL_AGENT_DEAD:
		/* The sweeper dropped it from the wheel; hand it back. */
		if (transition(st, s, slot, state, VIGIL_AGENT_ALIVE, VIGIL_EV_RECOVERED, now))
			hand_to_sweeper(st, slot);
		break;
	case VIGIL_AGENT_LEFT:
		if (transition(st, s, slot, state, VIGIL_AGENT_ALIVE, VIGIL_EV_UP, now))
			hand_to_sweeper(st, slot);
		break;
	}
}

static __always_inline int handle_beat(struct xdp_md *ctx, void *payload, void *data_end,
				       int plen, struct vigil_stats *st)
{
	struct vigil_config *cfg = bpf_map_lookup_elem(&vigil_config, &zero);
	struct vigil_beat_info b = {};
	enum vigil_beat_verdict v;
	enum vigil_seq_verdict sv;
	struct agent_slot *s;
	__u32 slot = 0;
	__u64 seq;

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

	if (v != VIGIL_BEAT_OK) {
		if (v == VIGIL_BEAT_BAD_VERSION)
			st->bad_version++;
		else
			st->malformed++;
		if (b.has_agent_id && (s = find_slot(b.agent_id, &slot, st))) {
			if (v == VIGIL_BEAT_BAD_VERSION)
				__sync_fetch_and_add(&s->bad_version, 1);
			else
				__sync_fetch_and_add(&s->malformed, 1);
		}
		return beat_verdict(cfg);
	}

	s = find_slot(b.agent_id, &slot, st);
	if (!s) {
		st->unknown_agent++;
		report_unknown(st, cfg, b.agent_id);
		return beat_verdict(cfg);
	}

	seq = s->seq;
	sv = vigil_seq_classify(s->state == VIGIL_AGENT_NEW, s->incarnation, seq, b.incarnation,
				b.seq);
	switch (sv) {
	case VIGIL_SEQ_DUPLICATE:
		__sync_fetch_and_add(&s->duplicates, 1);
		st->duplicates++;
		break;
	case VIGIL_SEQ_REORDERED:
		__sync_fetch_and_add(&s->reordered, 1);
		st->reordered++;
		break;
	case VIGIL_SEQ_RESTART:
	case VIGIL_SEQ_ACCEPT:
		/* Two CPUs may carry beats of one agent; the CAS lets exactly one
		 * of them advance the sequence, the other counts as reordered. */
		if (__sync_val_compare_and_swap(&s->seq, seq, b.seq) != seq) {
			__sync_fetch_and_add(&s->reordered, 1);
			st->reordered++;
			break;
		}
		accept_beat(st, s, slot, &b, sv == VIGIL_SEQ_RESTART);
		break;
	}
	return beat_verdict(cfg);
}

SEC("xdp")
int vigil_xdp(struct xdp_md *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	struct hdr_cursor c = { .pos = (void *)(long)ctx->data };
	struct vigil_stats *st;
	__be16 dport = 0;
	int proto, plen;

	st = bpf_map_lookup_elem(&vigil_stats, &zero);
	if (!st)
		return XDP_PASS;
	st->packets++;

	proto = parse_ethhdr(&c, data_end);
	if (proto == bpf_htons(ETH_P_IP))
		proto = parse_iphdr(&c, data_end);
	else if (proto == bpf_htons(ETH_P_IPV6))
		proto = parse_ip6hdr(&c, data_end);
	else
		goto pass;
	if (proto != IPPROTO_UDP_)
		goto pass;
	plen = parse_udphdr(&c, data_end, &dport);
	if (dport != beat_port_be || dport == 0)
		goto pass;
	if (plen < 0) {
		st->malformed++;
		return beat_verdict(bpf_map_lookup_elem(&vigil_config, &zero));
	}
	return handle_beat(ctx, c.pos, data_end, plen, st);
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
	__u32 dead_misses;
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
	if (ws->filed)
		ws->filed--;
}

/* Look at one slot: take due edges, then re-file or drop it. */
static __always_inline void visit(struct sweep_ctx *c, struct wheel_state *ws,
				  struct vigil_stats *st, __u32 slot)
{
	struct agent_slot *s = bpf_map_lookup_elem(&vigil_agents, &slot);
	struct wheel_link *l = bpf_map_lookup_elem(&vigil_links, &slot);
	enum vigil_sweep_action act;
	__u64 next_ns = 0, horizon;
	__u32 state;

	if (!s || !l)
		return;
	c->visits++;
	state = s->state;
	act = vigil_sweep_eval(state, s->last_seen_ns, s->interval_ms, s->multiplier,
			       c->dead_misses, c->now, &next_ns);
	horizon = vigil_horizon_ns(s->interval_min_ms, s->multiplier);
	switch (act) {
	case VIGIL_SWEEP_KEEP:
		c->refiled++;
		file_slot(ws, l, slot, vigil_wheel_due(c->now, next_ns, horizon, tick_ns));
		break;
	case VIGIL_SWEEP_TO_SUSPECT:
		if (transition(st, s, slot, state, VIGIL_AGENT_SUSPECT, VIGIL_EV_SUSPECT, c->now))
			file_slot(ws, l, slot, vigil_wheel_due(c->now, next_ns, horizon, tick_ns));
		else /* a beat or the daemon changed it meanwhile: look again next tick */
			file_slot(ws, l, slot, 0);
		break;
	case VIGIL_SWEEP_TO_DEAD:
		if (transition(st, s, slot, state, VIGIL_AGENT_DEAD, VIGIL_EV_DEAD, c->now))
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
	struct sweep_ctx c = {};
	__u32 budget;
	long n;

	c.now = bpf_ktime_get_ns();
	if (ws && cfg) {
		c.now_tick = c.now / tick_ns;
		c.dead_misses = cfg->dead_misses;
		if (!ws->next_tick)
			ws->next_tick = c.now_tick;
		if (c.now_tick >= ws->next_tick && c.now_tick - ws->next_tick > ws->max_lag_ticks)
			ws->max_lag_ticks = c.now_tick - ws->next_tick;
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

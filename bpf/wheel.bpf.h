/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The timing wheel and the sweeper that turns it, once a tick on one
 * bpf_timer. Each watched slot (an agent, or max_agents + a lease id) is
 * filed in the bucket of the tick it is next due; a tick detaches the due
 * buckets and visits their slots: takes ALIVE->SUSPECT->DEAD edges (held
 * back while the receive path may still deliver the beat, see
 * verdict_ready), expires leases, re-files the rest. The links and buckets
 * are the sweeper's alone, so the lists need no locks; the beat path and
 * the daemon only push slots to the inbox.
 */
#ifndef VIGIL_WHEEL_BPF_H
#define VIGIL_WHEEL_BPF_H

#include "vigil/logic.h"
#include "events.bpf.h"
#include "evidence.bpf.h"
#include "lease.bpf.h"
#include "health.bpf.h"
#include "napi.bpf.h"

/* One tick of the sweeper: its clock, settings and tallies. */
struct sweep_ctx {
	__u64 now;
	__u64 now_tick;
	__u64 visits;
	__u64 refiled;
	__u64 hold_max_ns;
	__u32 dead_misses;
	__u32 sweeper_behind; /* the sweeper is in a MONITOR_BEHIND episode */
};

/* A slot must (re-)enter the wheel: the sweeper admits it on its next tick. */
static __always_inline void hand_to_sweeper(struct vigil_stats *st, __u32 slot)
{
	if (bpf_map_push_elem(&vigil_inbox, &slot, 0))
		st->queue_full++;
}

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
	struct lease_view v = {};
	int expired = 0;

	c->visits++;
	if (ls) {
		bpf_spin_lock(&ls->lock);
		if (ls->state == VIGIL_LEASE_HELD && c->now >= ls->expires_ns) {
			ls->state = VIGIL_LEASE_EXPIRED;
			expired = 1;
		}
		lease_copy(ls, &v);
		bpf_spin_unlock(&ls->lock);
	}
	if (expired) {
		report_lease_end(st, &v, id, VIGIL_EV_LEASE_EXPIRED, c->now);
		leave_wheel(ws, l);
	} else if (v.state != VIGIL_LEASE_HELD) {
		leave_wheel(ws, l);
	} else {
		c->refiled++;
		file_slot(ws, l, slot, vigil_wheel_due(c->now, v.expires_ns, v.expires_ns - c->now,
						       tick_ns));
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
					 struct agent_slot *s, const struct prior_beat *p,
					 struct wheel_link *l, __u64 due, struct verdict_note *note,
					 __u64 *next_tick)
{
	__u32 q = s->rxq & (VIGIL_MAX_RXQ - 1), step = l->hold_step;
	struct rxq_state *r = bpf_map_lookup_elem(&vigil_rxq, &q);
	__u64 h = s->hold_since_ns, sent = 0;
	int losing;

	/* Losses count from the send time of the agent's last beat: that beat
	 * may itself have waited out the trouble in the queue. */
	if (p->send_ts_ns)
		sent = vigil_send_estimate(p->last_seen_ns, p->send_ts_ns, s->clock_off_ns);
	losing = r && vigil_loss_overlaps(r->burst_from_ns, r->burst_to_ns,
					  sent ? sent : p->last_seen_ns, due);
	int rx_behind = r && r->behind_since_ns;
	int lossy = r && r->burst_to_ns && r->burst_to_ns + VIGIL_LOSS_RECENT_NS >= due;
	/* The queue's own trouble stretches the bound; a late sweeper (a busy
	 * or descheduled CPU) only delays verdicts and is only noted. */
	__u64 bound = c->hold_max_ns * (losing || rx_behind || lossy ? VIGIL_HOLD_TROUBLE_FACTOR : 1);
	/* A queue that is behind and has lost beats lately is dropping frames
	 * it has no room for (a starved poller, a full ring): which beats it
	 * drops is chance, so a newer beat of another agent says nothing of
	 * this one's. The verdict then waits for the agent's own beat, the
	 * queue catching up, or the stretched bound. */
	enum vigil_gate g = vigil_verdict_gate(due, r ? r->sent_wm_ns : 0, c->now, bound,
					      losing || (rx_behind && lossy),
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

/*
 * Take the verdict `to`, decided on the facts p. Returns 1 when the agent is
 * left in `to`; 0 when it must be judged again next tick: its state moved
 * meanwhile, or a beat stored newer facts while the verdict was being taken.
 *
 * The edge is taken with VIGIL_AGENT_BUSY set and cleared once its event is
 * in the ring, so no beat can report a recovery from it before it is
 * reported itself. A beat that finds the bit leaves its edge to us; one that
 * read the state before our compare-and-swap did not see the verdict at
 * all. Either way it stored its facts before it read the state, so they
 * show in the last-seen time read after the bit is cleared, and the beat is
 * answered here. A beat that reads the state after that answers the verdict
 * itself; the compare-and-swap lets exactly one of us report it.
 */
static __always_inline int take_verdict(struct vigil_stats *st, struct agent_slot *s, __u32 slot,
					__u32 from, __u32 to, __u32 kind,
					const struct prior_beat *p, __u64 now,
					const struct verdict_note *note)
{
	if (__sync_val_compare_and_swap(&s->state, from, to | VIGIL_AGENT_BUSY) != from)
		return 0;
	emit_as_was(st, s, slot, kind, from, to, p, now, note);
	/* Only a removal (a whole new slot) changes a busy state. */
	if (__sync_val_compare_and_swap(&s->state, to | VIGIL_AGENT_BUSY, to) !=
	    (to | VIGIL_AGENT_BUSY))
		return 0;
	if (READ_ONCE(s->last_seen_ns) == p->last_seen_ns)
		return 1;
	if (READ_ONCE(s->status) == VIGIL_STATUS_LEAVING)
		transition(st, s, slot, to, VIGIL_AGENT_LEFT, VIGIL_EV_LEFT, now);
	else
		transition(st, s, slot, to, VIGIL_AGENT_ALIVE, VIGIL_EV_RECOVERED, now);
	return 0;
}

/* Look at one slot: take due edges, then re-file or drop it. The slot's
 * facts are read once: the decision, its evidence and its event all
 * describe the same beat. */
static __always_inline void visit(struct sweep_ctx *c, struct wheel_state *ws,
				  struct vigil_stats *st, __u32 slot)
{
	struct agent_slot *s = bpf_map_lookup_elem(&vigil_agents, &slot);
	struct wheel_link *l = bpf_map_lookup_elem(&vigil_links, &slot);
	enum vigil_sweep_action act;
	struct verdict_note note = {};
	struct prior_beat p;
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
	state = READ_ONCE(s->state);
	read_prior_beat(s, &p);
	act = vigil_sweep_eval(state, p.last_seen_ns, p.interval_ms, s->multiplier,
			       c->dead_misses, c->now, &next_ns);
	horizon = vigil_horizon_ns(s->interval_min_ms, s->multiplier);
	switch (act) {
	case VIGIL_SWEEP_KEEP:
		l->hold_step = 0;
		c->refiled++;
		file_slot(ws, l, slot, vigil_wheel_due(c->now, next_ns, horizon, tick_ns));
		break;
	case VIGIL_SWEEP_TO_SUSPECT:
		if (!verdict_ready(c, st, s, &p, l, p.deadline, &note, &again))
			file_slot(ws, l, slot, hold_due(c, again, horizon));
		else if (take_verdict(st, s, slot, state, VIGIL_AGENT_SUSPECT, VIGIL_EV_SUSPECT,
				      &p, c->now, &note))
			file_slot(ws, l, slot, vigil_wheel_due(c->now, next_ns, horizon, tick_ns));
		else /* a beat or the daemon changed it meanwhile: look again next tick */
			file_slot(ws, l, slot, 0);
		break;
	case VIGIL_SWEEP_TO_DEAD:
		due = vigil_dead_at(p.last_seen_ns, p.interval_ms, s->multiplier, c->dead_misses);
		if (!verdict_ready(c, st, s, &p, l, due, &note, &again))
			file_slot(ws, l, slot, hold_due(c, again, horizon));
		else if (take_verdict(st, s, slot, state, VIGIL_AGENT_DEAD, VIGIL_EV_DEAD, &p, c->now,
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

/*
 * visit() as a function of its own, which the verifier checks once, alone,
 * rather than along every path through both loops that call it: the
 * sweeper stays far below the verifier's limit as visit() grows.
 */
__noinline int sweep_visit(struct sweep_ctx *c, __u32 slot)
{
	struct wheel_state *ws = bpf_map_lookup_elem(&vigil_wheel, &zero);
	struct vigil_stats *st = bpf_map_lookup_elem(&vigil_stats, &zero);

	if (!c || !ws || !st)
		return 0;
	visit(c, ws, st, slot);
	return 0;
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
	sweep_visit(c, slot);
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
	sweep_visit(c, slot);
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

/* The timer callback: note its own lateness, admit the inbox, visit what is
 * due (both within the budget), sample the receive queues now and then,
 * and re-arm. */
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
			struct health_ctx h = { .now = c.now, .behind_ns = tick_ns,
						.stall_ns = napi_stall_ns(c.now), .st = st };

			ws->health_next_ns = c.now + HEALTH_PERIOD_NS;
			bpf_loop(VIGIL_MAX_RXQ, health_rxq, &h, 0);
		}
		ws->busy_ns += bpf_ktime_get_ns() - c.now;
	}
	arm(t);
	return 0;
}

#endif /* VIGIL_WHEEL_BPF_H */

// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/*
 * One event's path through the daemon: read from the ring buffer (a copy:
 * the kernel reuses the space once released), described with what the slot
 * knows, recorded in the log with its alert in the same transaction
 * (common/eventlog.c runs the escalation as it records), printed, and only
 * then released. What the ring buffer lost is reconciled from the maps.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <bpf/bpf.h>
#include "vigil/logic.h"
#include "common/event.h"
#include "common/log.h"
#include "common/registry.h"
#include "common/util.h"
#include "daemon/state.h"

/* Describe an event with what the slot knows (name, deadline it answered). */
static void view_of(struct daemon *d, const struct vigil_event *e, struct vg_agent *a,
		    struct vg_event_view *v)
{
	memset(v, 0, sizeof(*v));
	v->e = e;
	if (vg_kind_is_lease(e->kind)) {
		/* `slot` is the lease id: name the holder by its id. */
		if (vg_agent_get(&d->maps, e->agent_id, NULL, a) == 0) {
			v->name = a->i.name;
			v->group = a->i.group;
		}
		return;
	}
	if (e->slot == 0xffffffffu || vg_agent_at(&d->maps, e->slot, a) ||
	    a->s.agent_id != e->agent_id)
		return;
	v->name = a->i.name;
	v->group = a->i.group;
	if (e->kind == VIGIL_EV_SUSPECT)
		v->deadline_ns = vigil_deadline(e->last_seen_ns, e->interval_ms, a->s.multiplier);
	else if (e->kind == VIGIL_EV_DEAD)
		v->deadline_ns = vigil_dead_at(e->last_seen_ns, e->interval_ms, a->s.multiplier,
					       d->cfg.dead_misses);
}

/* The log's on_recorded hook: a new event, inside its transaction. */
void vg_daemon_recorded(void *ctx, const struct vg_event_view *v)
{
	struct daemon *d = ctx;
	__u64 now = vg_mono_ns();

	atomic_fetch_add(&d->ds.events_recorded, 1);
	/* A row of rejections is recorded when it closes, up to a window after
	 * its first: not a recording lag. */
	if (v->e->kind != VIGIL_EV_REJECTED)
		vg_dstats_lag(&d->ds, now > v->e->detected_ns ? now - v->e->detected_ns : 0);
	vg_floors_note(&d->floors, v->e);
	vg_escalation_on_event(&d->esc, v);
	if (!d->o->quiet)
		vg_event_print_json(stdout, v);
}

static void record(struct daemon *d, const struct vg_event_view *v)
{
	if (vg_eventlog_append(&d->log, v) < 0)
		atomic_fetch_add(&d->ds.log_errors, 1);
}

static void learn(struct daemon *d, __u64 agent_id)
{
	struct vg_agent_def def;
	int lock, err;

	/* Id 0 is never registered (docs/wire-format.md): its beats stay
	 * counted as unknown_agent. */
	if (agent_id == 0 || d->learned >= d->o->learn_cap)
		return;
	vg_agent_def_default(&def, agent_id);
	vg_auth_for(&d->maps, NULL, agent_id, "learned", &def.auth);
	snprintf(def.name, sizeof(def.name), "learned-%llu", (unsigned long long)agent_id);
	vg_strlcpy(def.group, "learned", sizeof(def.group));
	lock = vg_registry_lock(d->o->load.pin_root);
	err = vg_floors_offer(&d->floors, agent_id) ? -EIO : vg_agent_add(&d->maps, &def, NULL);
	vg_registry_unlock(lock);
	if (err == 0) {
		d->learned++;
		atomic_fetch_add(&d->ds.learned, 1);
		pr_info("learned agent %llu (%u of at most %u)\n", (unsigned long long)agent_id,
			d->learned, d->o->learn_cap);
		if (d->learned == d->o->learn_cap)
			pr_warn("learning cap of %u agents reached; further unknown agents are only "
				"counted\n", d->o->learn_cap);
	} else if (err != -EEXIST) {
		pr_warn("learning agent %llu failed: %s\n", (unsigned long long)agent_id,
			strerror(-err));
	}
}

static void on_event(void *ctx, const void *data, __u32 len)
{
	struct daemon *d = ctx;
	struct vigil_event e = {};
	struct vg_event_view v;
	struct vg_agent a;

	/* Copy: the record lives in the ring, which the kernel may reuse once
	 * the batch is released. A shorter record (older layout) is zero-padded. */
	memcpy(&e, data, len < sizeof(e) ? len : sizeof(e));
	view_of(d, &e, &a, &v);
	record(d, &v);
	if (e.kind == VIGIL_EV_REJECTED && e.reason == VIGIL_REJECT_UNKNOWN_AGENT && d->o->learn)
		learn(d, e.agent_id);
}

/* Read a batch, make it durable, and only then let the kernel reuse it. */
int vg_daemon_drain(struct daemon *d)
{
	struct vg_ringbuf *rb = d->rb;

	long n;

	do {
		n = vg_ringbuf_peek(rb, on_event, d, 65536);
		if (vg_eventlog_sync(&d->log)) {
			atomic_fetch_add(&d->ds.log_errors, 1);
			return -1; /* not released: re-read after a restart */
		}
		vg_ringbuf_release(rb);
	} while (n > 0);
	return 0;
}

static __u32 kind_for_state(__u32 state, __u32 recorded)
{
	switch (state) {
	case VIGIL_AGENT_SUSPECT:
		return VIGIL_EV_SUSPECT;
	case VIGIL_AGENT_DEAD:
		return VIGIL_EV_DEAD;
	case VIGIL_AGENT_LEFT:
		return VIGIL_EV_LEFT;
	default:
		return recorded == VIGIL_AGENT_SUSPECT || recorded == VIGIL_AGENT_DEAD ?
			       VIGIL_EV_RECOVERED : VIGIL_EV_UP;
	}
}

/* An agent whose latest transition is newer than what the log holds lost its
 * event (ring buffer full, or the daemon died between reading and writing).
 * Record the transition it is in now, marked as reconciled. */
static int reconcile_one(__u32 slot, const struct vg_agent *a, void *ctx)
{
	const struct agent_slot *s = &a->s;
	const struct agent_info *i = &a->i;
	struct daemon *d = ctx;
	struct vigil_event e = {};
	struct vg_event_view v = {};
	__u64 rec_seq = 0;
	__u32 rec_state = VIGIL_AGENT_NEW;

	/* The agent's last recorded transition first (in memory); the database
	 * only for those whose transition may be missing. */
	if (!i->last_event_seq || i->last_event_seq > d->reconcile_upto)
		return 0;
	if (vg_eventlog_agent_last(&d->log, s->agent_id, &rec_seq, &rec_state) &&
	    rec_seq >= i->last_event_seq)
		return 0;
	if (vg_eventlog_has(&d->log, i->last_event_seq))
		return 0;
	e.event_seq = i->last_event_seq;
	e.agent_id = s->agent_id;
	e.last_seen_ns = s->last_seen_ns;
	e.detected_ns = i->state_since_ns;
	e.seq = s->replay.top;
	e.slot = slot;
	e.kind = kind_for_state(s->state, rec_state);
	e.incarnation = s->replay.incarnation;
	e.interval_ms = s->interval_ms;
	e.state = s->state;
	e.prev_state = rec_state;
	v.e = &e;
	v.name = i->name;
	v.group = i->group;
	v.reconciled = true;
	record(d, &v);
	d->reconciled++;
	return 0;
}

void vg_daemon_reconcile(struct daemon *d, const char *why)
{
	struct vigil_globals g;
	__u64 before = d->reconciled;
	bool retry = d->reconcile_due;
	__u32 zero = 0;

	/* Only transitions the ring buffer has had its chance to deliver: read
	 * the kernel's event sequence, then drain. A transition newer than
	 * that is still on its way through the ring and must not be recorded
	 * here (it would be mislabelled reconciled, or land out of order). */
	d->reconcile_upto = bpf_map_lookup_elem(d->maps.globals, &zero, &g) ? 0 : g.event_seq;
	d->reconcile_due = true;
	if (vg_daemon_drain(d))
		return;
	vg_agent_foreach(&d->maps, reconcile_one, d);
	/* A failed commit rolled the reconciled rows back: nothing else would
	 * bring them back before the next ring-buffer overflow or restart, so
	 * housekeeping retries until one commits. */
	if (vg_eventlog_sync(&d->log)) {
		atomic_fetch_add(&d->ds.log_errors, 1);
		if (!retry) /* said once; log_errors counts every attempt */
			pr_warn("recording %llu reconciled transition(s) failed (%s); retrying\n",
				(unsigned long long)(d->reconciled - before), why);
		d->reconciled = before;
		return;
	}
	d->reconcile_due = false;
	atomic_fetch_add(&d->ds.events_reconciled, d->reconciled - before);
	if (d->reconciled != before)
		pr_info("reconciled %llu transition(s) from the maps (%s)\n",
			(unsigned long long)(d->reconciled - before), why);
}

// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/*
 * `vigil run`: load (or adopt) the kernel half, register the agents file,
 * consume the ring buffer into the durable event log, and reconcile from the
 * maps whatever the ring buffer could not deliver. Detection itself never
 * depends on this process: stopping it leaves the pinned instance running.
 */
#include <errno.h>
#include <getopt.h>
#include <net/if.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "vigil.skel.h"
#include "vigil/logic.h"
#include "alert.h"
#include "caps.h"
#include "cli.h"
#include "config.h"
#include "dstats.h"
#include "escalate.h"
#include "eventlog.h"
#include "export.h"
#include "instance.h"
#include "keys.h"
#include "lease.h"
#include "log.h"
#include "metrics.h"
#include "registry.h"
#include "ringbuf.h"
#include "util.h"

struct daemon {
	struct vg_maps maps;
	struct vigil_bpf *skel; /* NULL when adopted */
	bool adopted;           /* maps were opened from the pins */
	struct vg_eventlog log;
	struct vg_alert_cfg acfg;   /* alert sinks (alert.h) */
	struct vg_alerter *alerter; /* NULL: no sink configured */
	struct vg_export_cfg xcfg;     /* NATS JetStream export (export.h) */
	struct vg_exporter *exporter; /* NULL: no --export-nats */
	struct vg_escalation esc;   /* what to alert, flap damping, remediation */
	struct vg_leases leases;    /* grants leases with fencing tokens */
	bool shadow;                /* detect and record; alert, remediate, grant nothing */
	const char *db_path;
	__u64 retain_days, retain_events; /* 0: keep everything */
	__u64 last_prune_ns;
	/* Storm control: over budget, acknowledgements recommend a slower
	 * interval; hysteresis keeps it from flapping. */
	struct {
		__u32 beats_per_sec, events_per_sec, interval_ms;
		__u64 last_beats, last_events;
		__u32 over, calm;
		bool active;
		__u32 since;       /* seconds (calls) since it became active */
		__u64 rate_before; /* beats in the second that turned it on */
		__u64 rate_obeyed; /* beats in a second once agents obeyed (0: not yet) */
	} storm;
	struct vigil_config cfg;
	const char *pin_root;
	const char *keys_path;   /* NULL: no key file (only with --no-auth/--learn) */
	struct vg_keyfile keys;
	bool quiet;
	bool learn;
	__u32 learn_cap, learned;
	__u64 ringbuf_full_seen;
	__u64 reconciled;
	__u64 reconcile_upto;       /* reconcile transitions up to this event_seq */
	struct vg_daemon_stats ds;  /* read by the metrics thread */
	struct vg_metrics *metrics; /* NULL with --metrics off */
};

static volatile sig_atomic_t stop_requested, reload_requested;

static void on_signal(int sig)
{
	if (sig == SIGHUP)
		reload_requested = 1;
	else
		stop_requested = 1;
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: vigil run [OPTIONS]\n"
		"Load vigil's XDP program and sweeper (or adopt a running instance) and record\n"
		"its events. Stopping the daemon leaves detection running in the kernel.\n"
		"\n"
		"  -i, --iface IFACE        interface to attach to (default lo)\n"
		"  -m, --mode native|skb    XDP mode (default native; skb must be asked for)\n"
		"  -p, --port PORT          UDP beat port (default 4747)\n"
		"  -c, --config FILE        agents file to register (docs/config.md)\n"
		"  -k, --keys FILE          agent keys (root-owned, mode 0600); SIGHUP reloads it\n"
		"      --no-auth            development only: accept beats without a tag\n"
		"      --pin-root DIR       where the instance is pinned (default %s)\n"
		"      --db FILE            durable event log, SQLite (default %s)\n"
		"      --events-file FILE   also append every event to FILE as JSON lines\n"
		"      --retain-days N, --retain-events N  prune older events from the log at\n"
		"                           start and hourly (default: keep everything)\n"
		VG_ALERT_USAGE
		VG_EXPORT_USAGE
		VG_ESC_USAGE
		"      --tick-us N          sweeper tick in microseconds (default 1000)\n"
		"      --dead-misses N      further missed intervals from SUSPECT to DEAD (default 2)\n"
		"      --hold-max-ms N      longest a verdict waits for evidence that the receive\n"
		"                           path has caught up (default %u; 0: decide at once)\n"
		"      --max-agents N       agent capacity (default %u)\n"
		"      --ringbuf-mb N       ring buffer size in MiB, power of two (default 16)\n"
		"      --sweep-budget N     slots the sweeper may visit per tick (default 262144)\n"
		"      --pass               pass consumed beats up the stack (default: drop)\n"
		"      --learn[=CAP]        development only: register unknown agents without keys\n"
		"                           (implies --no-auth; default cap 64)\n"
		"      --metrics ADDR:PORT  serve Prometheus /metrics, /healthz, /readyz there\n"
		"                           (default %s; [::1]:PORT for IPv6; 'off' for none)\n"
		"      --metrics-max-agents N  leave out per-agent series above N agents (default %u)\n"
		"      --duration SEC       stop after SEC seconds (default: until SIGTERM)\n"
		"      --shadow             detect and record, but send no alert, run no\n"
		"                           remediation and grant no lease (for migrating)\n"
		"      --storm-beats-per-sec N, --storm-events-per-sec N  budgets: above\n"
		"                           either, acknowledgements recommend a slower beat\n"
		"      --storm-interval-ms N  the interval they recommend (default 1000)\n"
		"  -q, --quiet              do not print events on stdout\n"
		"  -v, --verbose            debug logging, including libbpf and the verifier\n"
		"\n"
		"Examples:\n"
		"  vigil run --iface eth0 --config /etc/vigil/agents.conf --keys /etc/vigil/keys\n"
		"  vigil run --iface lo --mode skb --learn\n",
		VIGIL_DEFAULT_PIN_ROOT, VIGIL_DEFAULT_DB, VIGIL_DEFAULT_HOLD_MAX_MS, VIGIL_MAX_AGENTS,
		VG_METRICS_DEFAULT_LISTEN,
		VG_METRICS_DEFAULT_MAX_AGENTS);
}

/* Describe an event with what the slot knows (name, deadline it answered). */
static void view_of(struct daemon *d, const struct vigil_event *e, struct agent_slot *s,
		    struct vg_event_view *v)
{
	memset(v, 0, sizeof(*v));
	v->e = e;
	if (vg_kind_is_lease(e->kind)) {
		/* `slot` is the lease id: name the holder by its id. */
		if (vg_agent_get(&d->maps, e->agent_id, NULL, s) == 0) {
			v->name = s->name;
			v->group = s->group;
		}
		return;
	}
	if (e->slot == 0xffffffffu || bpf_map_lookup_elem(d->maps.agents, &e->slot, s) ||
	    s->agent_id != e->agent_id)
		return;
	v->name = s->name;
	v->group = s->group;
	if (e->kind == VIGIL_EV_SUSPECT)
		v->deadline_ns = vigil_deadline(e->last_seen_ns, e->interval_ms, s->multiplier);
	else if (e->kind == VIGIL_EV_DEAD)
		v->deadline_ns = vigil_dead_at(e->last_seen_ns, e->interval_ms, s->multiplier,
					       d->cfg.dead_misses);
}

static void record(struct daemon *d, const struct vg_event_view *v)
{
	struct vg_event_view shown = *v;
	int added = vg_eventlog_append(&d->log, v);

	if (added < 0)
		atomic_fetch_add(&d->ds.log_errors, 1);
	if (added > 0) {
		__u64 now = vg_mono_ns();

		atomic_fetch_add(&d->ds.events_recorded, 1);
		vg_dstats_lag(&d->ds, now > v->e->detected_ns ? now - v->e->detected_ns : 0);
	}

	/* In the event's own transaction: the alert is as durable as the event. */
	if (added > 0)
		vg_escalation_on_event(&d->esc, v);
	if (added > 0 && !d->quiet) {
		shown.instance_id = d->log.instance_id;
		vg_event_print_json(stdout, &shown);
	}
}

static void learn(struct daemon *d, __u64 agent_id)
{
	struct vg_agent_def def;
	int lock, err;

	if (d->learned >= d->learn_cap)
		return;
	vg_agent_def_default(&def, agent_id);
	vg_auth_for(&d->maps, NULL, agent_id, "learned", &def.auth);
	snprintf(def.name, sizeof(def.name), "learned-%llu", (unsigned long long)agent_id);
	vg_strlcpy(def.group, "learned", sizeof(def.group));
	lock = vg_registry_lock(d->pin_root);
	err = vg_agent_add(&d->maps, &def, NULL);
	vg_registry_unlock(lock);
	if (err == 0) {
		d->learned++;
		atomic_fetch_add(&d->ds.learned, 1);
		pr_info("learned agent %llu (%u of at most %u)\n", (unsigned long long)agent_id,
			d->learned, d->learn_cap);
		if (d->learned == d->learn_cap)
			pr_warn("learning cap of %u agents reached; further unknown agents are only "
				"counted\n", d->learn_cap);
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
	struct agent_slot s;

	/* Copy: the record lives in the ring, which the kernel may reuse once
	 * the batch is released. A shorter record (older layout) is zero-padded. */
	memcpy(&e, data, len < sizeof(e) ? len : sizeof(e));
	view_of(d, &e, &s, &v);
	record(d, &v);
	if (e.kind == VIGIL_EV_REJECTED && e.reason == VIGIL_REJECT_UNKNOWN_AGENT && d->learn)
		learn(d, e.agent_id);
}

/* Read a batch, make it durable, and only then let the kernel reuse it. */
static int drain(struct daemon *d, struct vg_ringbuf *rb)
{
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
static int reconcile_one(__u32 slot, const struct agent_slot *s, void *ctx)
{
	struct daemon *d = ctx;
	struct vigil_event e = {};
	struct vg_event_view v = {};
	__u64 rec_seq = 0;
	__u32 rec_state = VIGIL_AGENT_NEW;

	if (!s->last_event_seq || s->last_event_seq > d->reconcile_upto ||
	    vg_eventlog_has(&d->log, s->last_event_seq))
		return 0;
	if (vg_eventlog_agent_last(&d->log, s->agent_id, &rec_seq, &rec_state) &&
	    rec_seq >= s->last_event_seq)
		return 0;
	e.event_seq = s->last_event_seq;
	e.agent_id = s->agent_id;
	e.last_seen_ns = s->last_seen_ns;
	e.detected_ns = s->state_since_ns;
	e.seq = s->seq;
	e.slot = slot;
	e.kind = kind_for_state(s->state, rec_state);
	e.incarnation = s->incarnation;
	e.interval_ms = s->interval_ms;
	e.state = s->state;
	e.prev_state = rec_state;
	v.e = &e;
	v.name = s->name;
	v.group = s->group;
	v.reconciled = true;
	record(d, &v);
	d->reconciled++;
	atomic_fetch_add(&d->ds.events_reconciled, 1);
	return 0;
}

static int drain(struct daemon *d, struct vg_ringbuf *rb);

static void reconcile(struct daemon *d, struct vg_ringbuf *rb, const char *why)
{
	struct vigil_globals g;
	__u64 before = d->reconciled;
	__u32 zero = 0;

	/* Only transitions the ring buffer has had its chance to deliver: read
	 * the kernel's event sequence, then drain. A transition newer than
	 * that is still on its way through the ring and must not be recorded
	 * here (it would be mislabelled reconciled, or land out of order). */
	d->reconcile_upto = bpf_map_lookup_elem(d->maps.globals, &zero, &g) ? 0 : g.event_seq;
	if (drain(d, rb))
		return;
	vg_agent_foreach(&d->maps, reconcile_one, d);
	if (d->reconciled != before)
		pr_info("reconciled %llu transition(s) from the maps (%s)\n",
			(unsigned long long)(d->reconciled - before), why);
	vg_eventlog_sync(&d->log);
}

/* The policy flags a group gets from the agents file (allow, ack lines). */
static __u32 group_flags(const struct vg_config *c, const char *group)
{
	__u32 flags = 0;

	for (size_t i = 0; i < c->n_allow; i++)
		if (!strcmp(c->allow[i].group, group))
			flags |= VIGIL_AUTH_ALLOWLIST;
	for (size_t i = 0; i < c->n_ack; i++)
		if (!strcmp(c->ack[i], group))
			flags |= VIGIL_AUTH_ACK;
	return flags;
}

static int put_group(struct daemon *d, const struct vg_config *c, const char *group)
{
	struct group_policy p = { .flags = group_flags(c, group) };
	__u32 gid = vigil_group_id(group, VIGIL_GROUP_LEN);

	vg_strlcpy(p.name, group, sizeof(p.name));
	if (bpf_map_update_elem(d->maps.groups, &gid, &p, BPF_ANY)) {
		pr_warn("writing the policy of group %s failed: %s\n", group, strerror(errno));
		return -1;
	}
	return 0;
}

/* Publish the agents file's group policies (allowlists, acknowledgements):
 * groups first (so registration picks up their flags), new prefixes before
 * stale ones go, so a source that stays allowed is never refused between. */
static int apply_group_policy(struct daemon *d, const struct vg_config *c)
{
	struct allow_key key, next, *prev = NULL;
	__u32 one = 1, gid, *gprev = NULL, gnext;
	struct group_policy p;

	for (size_t i = 0; i < c->n_allow; i++) {
		if (put_group(d, c, c->allow[i].group) ||
		    bpf_map_update_elem(d->maps.allow, &c->allow[i].key, &one, BPF_ANY)) {
			pr_warn("writing the allowlist of group %s failed: %s\n", c->allow[i].group,
				strerror(errno));
			return -1;
		}
	}
	for (size_t i = 0; i < c->n_ack; i++)
		if (put_group(d, c, c->ack[i]))
			return -1;
	while (bpf_map_get_next_key(d->maps.allow, prev, &next) == 0) {
		bool keep = false;

		key = next;
		prev = &key;
		for (size_t i = 0; i < c->n_allow && !keep; i++)
			keep = !memcmp(&c->allow[i].key, &key, sizeof(key));
		if (!keep && bpf_map_delete_elem(d->maps.allow, &key) == 0)
			prev = NULL; /* restart the walk after a delete */
	}
	while (bpf_map_get_next_key(d->maps.groups, gprev, &gnext) == 0) {
		gid = gnext;
		gprev = &gid;
		if (bpf_map_lookup_elem(d->maps.groups, &gid, &p) == 0 && !group_flags(c, p.name) &&
		    bpf_map_delete_elem(d->maps.groups, &gid) == 0)
			gprev = NULL;
	}
	return 0;
}

static int register_config(struct daemon *d, const struct vg_config *c)
{
	__u32 hint = 0, added = 0, kept = 0;
	int lock = vg_registry_lock(d->pin_root), ret = 0;

	for (size_t i = 0; i < c->n; i++) {
		struct vg_agent_def def = c->agents[i];
		int err;

		vg_auth_for(&d->maps, d->keys_path ? &d->keys : NULL, def.id, def.group, &def.auth);
		err = vg_agent_add(&d->maps, &def, &hint);

		if (err == 0) {
			added++;
		} else if (err == -EEXIST) {
			kept++; /* adopted instance already watches it: keep its state */
		} else {
			pr_warn("registering agent %llu failed: %s%s\n",
				(unsigned long long)c->agents[i].id, strerror(-err),
				err == -ENOSPC ? " (capacity is fixed at load: 'vigil detach', then run with "
						 "a larger --max-agents)" : "");
			ret = -1;
			break;
		}
	}
	vg_registry_unlock(lock);
	pr_info("agents: %u registered, %u already watched\n", added, kept);
	return ret;
}

/* (Re)load the key file and rewrite every agent's keys and policy. */
static int load_keys(struct daemon *d)
{
	struct vg_keyfile kf;
	long keyed;

	if (!d->keys_path)
		return 0;
	if (vg_keyfile_load(d->keys_path, true, &kf))
		return -1;
	vg_keyfile_free(&d->keys);
	d->keys = kf;
	keyed = vg_auth_apply(&d->maps, &d->keys);
	pr_info("keys: %zu agents in %s, %ld registered agents keyed\n", d->keys.n, d->keys_path,
		keyed);
	return 0;
}

/* Seconds after the switch on at which the beat rate counts as obeyed: the
 * recommendation reaches each agent with the acknowledgement of its next
 * beat, and takes effect with the beat after that. */
#define STORM_SETTLE_S 3

/*
 * Called once a second with the beat path's counters. Over budget for two
 * seconds in a row: acknowledgements recommend storm.interval_ms, which
 * agents obey within their bounds. Back under 80 % of it for five seconds:
 * the recommendation is withdrawn. Each switch is a notice.
 *
 * While the recommendation is in force the beat rate is low because agents
 * obey it, so "under budget" alone would withdraw it, the agents would speed
 * up, and the storm would come back (it would flap with a period of about
 * 7 s). The beat rate is therefore judged as it would be without the
 * recommendation: scaled by the slow-down it caused, measured as the rate
 * of the second that switched it on over the rate STORM_SETTLE_S seconds
 * later. The recommendation is withdrawn only when the fleet, back at its
 * own cadence, would stay under 80 % of the budget: when it shrank or slowed
 * down by itself. (Events are not scaled: slower beats do not make fewer
 * transitions.)
 */
static void storm_control(struct daemon *d, const struct vigil_stats *st)
{
	__u64 beats = st->beats - d->storm.last_beats, events = st->events - d->storm.last_events;
	bool first = !d->storm.last_beats && !d->storm.last_events;
	__u32 zero = 0;
	bool over, calm;

	d->storm.last_beats = st->beats;
	d->storm.last_events = st->events;
	if (first || (!d->storm.beats_per_sec && !d->storm.events_per_sec))
		return;
	over = (d->storm.beats_per_sec && beats > d->storm.beats_per_sec) ||
	       (d->storm.events_per_sec && events > d->storm.events_per_sec);
	if (d->storm.active && ++d->storm.since == STORM_SETTLE_S)
		d->storm.rate_obeyed = beats ? beats : 1;
	if (d->storm.active && d->storm.beats_per_sec) {
		/* beats x (before / obeyed) < 80 % of the budget; nothing is
		 * calm before the obeyed rate is known. */
		calm = d->storm.rate_obeyed &&
		       (unsigned __int128)beats * d->storm.rate_before * 5 <
			       (unsigned __int128)d->storm.beats_per_sec * 4 * d->storm.rate_obeyed;
	} else {
		calm = !d->storm.beats_per_sec || beats * 5 < d->storm.beats_per_sec * 4;
	}
	calm = calm && (!d->storm.events_per_sec || events * 5 < d->storm.events_per_sec * 4);
	d->storm.over = over ? d->storm.over + 1 : 0;
	d->storm.calm = calm ? d->storm.calm + 1 : 0;
	if ((!d->storm.active && d->storm.over >= 2) || (d->storm.active && d->storm.calm >= 5)) {
		char detail[128];

		d->storm.active = !d->storm.active;
		d->storm.since = 0;
		d->storm.rate_before = beats;
		d->storm.rate_obeyed = 0;
		d->storm.over = d->storm.calm = 0;
		d->cfg.recommend_interval_ms = d->storm.active ? d->storm.interval_ms : 0;
		if (bpf_map_update_elem(d->maps.config, &zero, &d->cfg, BPF_ANY))
			pr_warn("storm control: writing vigil_config failed: %s\n", strerror(errno));
		snprintf(detail, sizeof(detail), "%llu beats/s, %llu events/s: %s",
			 (unsigned long long)beats, (unsigned long long)events,
			 d->storm.active ? "acknowledgements recommend a slower interval" :
					   "recommendation withdrawn");
		vg_eventlog_notice(&d->log, 0, d->storm.active ? "storm" : "storm_over", detail);
		vg_eventlog_sync(&d->log);
		pr_info("storm control: %s\n", detail);
	}
}

/* Retention: at start, then hourly. Pruning runs on its own connection and
 * deletes only old rows, so it never blocks recording for long. */
static void retention(struct daemon *d, __u64 now)
{
	long removed = 0;

	if ((!d->retain_days && !d->retain_events) ||
	    (d->last_prune_ns && now - d->last_prune_ns < 3600 * VIGIL_NSEC_PER_SEC))
		return;
	d->last_prune_ns = now;
	if (vg_log_prune(d->db_path, d->retain_days * 86400, d->retain_events, &removed) == 0 &&
	    removed)
		pr_info("retention: removed %ld events from the log\n", removed);
}

/* Periodic checks: the instance still exists; ring buffer losses. */
static int housekeeping(struct daemon *d, struct vg_ringbuf *rb)
{
	struct vigil_stats st;

	if (!vg_instance_exists(d->pin_root)) {
		pr_warn("the instance at %s was detached; exiting\n", d->pin_root);
		return -1;
	}
	if (vg_stats_read(&d->maps, &st))
		return 0;
	if (st.ringbuf_full != d->ringbuf_full_seen) {
		d->ringbuf_full_seen = st.ringbuf_full;
		reconcile(d, rb, "ring buffer was full");
	}
	storm_control(d, &st);
	retention(d, vg_mono_ns());
	return 0;
}

int cmd_run(int argc, char **argv)
{
	enum {
		OPT_METRICS = 0x4200,
		OPT_METRICS_MAX_AGENTS,
		OPT_SHADOW,
		OPT_STORM_BEATS,
		OPT_STORM_EVENTS,
		OPT_STORM_INTERVAL,
		OPT_RETAIN_DAYS,
		OPT_RETAIN_EVENTS,
		OPT_HOLD_MAX,
	};
	static const struct option opts[] = {
		{ "iface", required_argument, NULL, 'i' },
		{ "mode", required_argument, NULL, 'm' },
		{ "port", required_argument, NULL, 'p' },
		{ "config", required_argument, NULL, 'c' },
		{ "keys", required_argument, NULL, 'k' },
		{ "no-auth", no_argument, NULL, 'N' },
		{ "pin-root", required_argument, NULL, 'P' },
		{ "events-file", required_argument, NULL, 'E' },
		{ "db", required_argument, NULL, 'b' },
		{ "tick-us", required_argument, NULL, 'T' },
		{ "dead-misses", required_argument, NULL, 'D' },
		{ "max-agents", required_argument, NULL, 'M' },
		{ "ringbuf-mb", required_argument, NULL, 'R' },
		{ "sweep-budget", required_argument, NULL, 'B' },
		{ "pass", no_argument, NULL, 'A' },
		{ "learn", optional_argument, NULL, 'L' },
		{ "duration", required_argument, NULL, 'u' },
		{ "metrics", required_argument, NULL, OPT_METRICS },
		{ "metrics-max-agents", required_argument, NULL, OPT_METRICS_MAX_AGENTS },
		{ "quiet", no_argument, NULL, 'q' },
		{ "shadow", no_argument, NULL, OPT_SHADOW },
		{ "retain-days", required_argument, NULL, OPT_RETAIN_DAYS },
		{ "retain-events", required_argument, NULL, OPT_RETAIN_EVENTS },
		{ "storm-beats-per-sec", required_argument, NULL, OPT_STORM_BEATS },
		{ "storm-events-per-sec", required_argument, NULL, OPT_STORM_EVENTS },
		{ "storm-interval-ms", required_argument, NULL, OPT_STORM_INTERVAL },
		{ "hold-max-ms", required_argument, NULL, OPT_HOLD_MAX },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		VG_ALERT_LONGOPTS,
		VG_EXPORT_LONGOPTS,
		VG_ESC_LONGOPTS,
		{}
	};
	const char *config_path = NULL, *events_path = NULL, *db_path = VIGIL_DEFAULT_DB;
	const char *metrics_addr = VG_METRICS_DEFAULT_LISTEN;
	__u32 metrics_max_agents = VG_METRICS_DEFAULT_MAX_AGENTS;
	bool iface_given = false, mode_given = false, root_existed;
	/* Load-time options this run was given explicitly (fixed once loaded). */
	bool port_given = false, tick_given = false, max_given = false, ringbuf_given = false;
	struct vg_config cfgfile = {};
	struct vg_load_opts o;
	struct daemon d = {};
	struct vg_ringbuf *rb = NULL;
	struct vigil_meta meta;
	__u32 v32, zero = 0, duration_s = 0;
	__u64 started = 0, last_house = 0; /* started: 0 until the instance serves */
	bool log_failed = false;
	int opt, ret = 1, lock_fd = -1;

	vg_load_opts_default(&o);
	vg_escalation_defaults(&d.esc);
	d.storm.interval_ms = 1000;
	d.learn_cap = 64;
	atomic_store(&d.ds.started_wall_ns, vg_wall_ns());
	vg_alert_cfg_default(&d.acfg);
	vg_export_cfg_default(&d.xcfg);
	setvbuf(stdout, NULL, _IOLBF, 0);
	while ((opt = getopt_long(argc, argv, "i:m:p:c:k:qvh", opts, NULL)) != -1) {
		switch (opt) {
		case 'i':
			o.iface = optarg;
			iface_given = true;
			break;
		case 'm':
			if (strcmp(optarg, "native") && strcmp(optarg, "skb")) {
				pr_warn("--mode: '%s' is not 'native' or 'skb'\n", optarg);
				return 2;
			}
			o.skb_mode = !strcmp(optarg, "skb");
			mode_given = true;
			break;
		case 'p':
			if (vg_parse_u32(optarg, "--port", 1, 65535, &v32))
				return 2;
			o.port = (__u16)v32;
			port_given = true;
			break;
		case 'c':
			config_path = optarg;
			break;
		case 'k':
			d.keys_path = optarg;
			break;
		case 'N':
			o.cfg.auth_required = 0;
			break;
		case 'P':
			o.pin_root = optarg;
			break;
		case 'E':
			events_path = optarg;
			break;
		case 'b':
			db_path = optarg;
			break;
		case 'T':
			if (vg_parse_u32(optarg, "--tick-us", 10, 1000000, &v32))
				return 2;
			o.tick_ns = (__u64)v32 * 1000;
			tick_given = true;
			break;
		case 'D':
			if (vg_parse_u32(optarg, "--dead-misses", 0, 1000, &o.cfg.dead_misses))
				return 2;
			break;
		case 'M':
			if (vg_parse_u32(optarg, "--max-agents", 1, 16u << 20, &o.max_agents))
				return 2;
			max_given = true;
			break;
		case 'R':
			if (vg_parse_u32(optarg, "--ringbuf-mb", 1, 1024, &v32))
				return 2;
			if (v32 & (v32 - 1)) {
				pr_warn("--ringbuf-mb: %u is not a power of two\n", v32);
				return 2;
			}
			o.ringbuf_bytes = v32 << 20;
			ringbuf_given = true;
			break;
		case 'B':
			if (vg_parse_u32(optarg, "--sweep-budget", 1, 1u << 23, &o.cfg.sweep_budget))
				return 2;
			break;
		case 'A':
			o.cfg.pass_beats = 1;
			break;
		case 'L':
			d.learn = true;
			o.cfg.auth_required = 0;
			if (optarg && vg_parse_u32(optarg, "--learn", 1, 1u << 20, &d.learn_cap))
				return 2;
			break;
		case 'u':
			if (vg_parse_u32(optarg, "--duration", 1, 86400 * 365, &duration_s))
				return 2;
			break;
		case OPT_METRICS:
			metrics_addr = strcmp(optarg, "off") ? optarg : NULL;
			break;
		case OPT_METRICS_MAX_AGENTS:
			if (vg_parse_u32(optarg, "--metrics-max-agents", 0, UINT32_MAX,
					 &metrics_max_agents))
				return 2;
			break;
		case OPT_SHADOW:
			d.shadow = true;
			break;
		case OPT_RETAIN_DAYS:
			if (vg_parse_u64(optarg, "--retain-days", 1, 36500, &d.retain_days))
				return 2;
			break;
		case OPT_RETAIN_EVENTS:
			if (vg_parse_u64(optarg, "--retain-events", 1, UINT64_MAX >> 2, &d.retain_events))
				return 2;
			break;
		case OPT_STORM_BEATS:
			if (vg_parse_u32(optarg, "--storm-beats-per-sec", 1, UINT32_MAX,
					 &d.storm.beats_per_sec))
				return 2;
			break;
		case OPT_STORM_EVENTS:
			if (vg_parse_u32(optarg, "--storm-events-per-sec", 1, UINT32_MAX,
					 &d.storm.events_per_sec))
				return 2;
			break;
		case OPT_HOLD_MAX:
			if (vg_parse_u32(optarg, "--hold-max-ms", 0, 60000, &o.cfg.hold_max_ms))
				return 2;
			break;
		case OPT_STORM_INTERVAL:
			if (vg_parse_u32(optarg, "--storm-interval-ms", 1, 65535, &d.storm.interval_ms))
				return 2;
			break;
		case 'q':
			d.quiet = true;
			break;
		case 'v':
			vg_log_set_level(VG_LOG_DEBUG);
			break;
		case VG_ALERT_OPT_FIRST ... VG_ALERT_OPT_LAST:
			if (vg_alert_parse_opt(&d.acfg, opt, optarg))
				return 2;
			break;
		case VG_EXPORT_OPT_FIRST ... VG_EXPORT_OPT_LAST:
			if (vg_export_parse_opt(&d.xcfg, opt, optarg))
				return 2;
			break;
		case VG_ESC_OPT_FIRST ... VG_ESC_OPT_LAST:
			if (vg_escalation_parse_opt(&d.esc, opt, optarg))
				return 2;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		pr_warn("run: unexpected argument '%s' (see vigil run --help)\n", argv[optind]);
		return 2;
	}
	d.pin_root = o.pin_root;
	if (config_path && vg_config_load(config_path, &cfgfile))
		return 2;
	if (d.esc.pcfg.reuse >= d.esc.pcfg.suppress) {
		pr_warn("--flap-reuse (%u) must be below --flap-suppress (%u)\n", d.esc.pcfg.reuse,
			d.esc.pcfg.suppress);
		return 2;
	}
	if (o.cfg.auth_required && !d.keys_path) {
		pr_warn("authentication is required but no key file was given: pass --keys FILE "
			"(make one with 'vigil key gen'), or --no-auth for development\n");
		return 2;
	}
	if (d.keys_path) {
		/* Checked before touching the kernel, so a bad file changes nothing. */
		if (vg_keyfile_load(d.keys_path, true, &d.keys))
			return 2;
	}

	/* Before any socket, mount or bpf(): one line naming a missing capability. */
	if (vg_caps_check_run(o.iface, o.pin_root))
		goto out;

	/* Bound now, so a busy port is refused before the kernel is touched. */
	if (metrics_addr) {
		int err = vg_metrics_bind(metrics_addr, &d.metrics);

		if (err) {
			ret = err == -EINVAL ? 2 : 1; /* 2: malformed, like other bad options */
			goto out;
		}
	}
	lock_fd = vg_daemon_lock(o.pin_root);
	if (lock_fd < 0)
		goto out;
	root_existed = access(o.pin_root, F_OK) == 0;
	if (vg_ensure_bpffs(o.pin_root))
		goto out;
	if (vg_instance_exists(o.pin_root)) {
		if (vg_instance_open(o.pin_root, &d.maps, &meta))
			goto out;
		d.adopted = true;
		if (iface_given && meta.ifindex != if_nametoindex(o.iface)) {
			pr_warn("the instance at %s is attached to another interface (ifindex %u); "
				"run 'vigil detach' first to move it to %s\n", o.pin_root,
				meta.ifindex, o.iface);
			goto out;
		}
		/* Load-time settings belong to the loaded programs and maps. */
		if (mode_given && meta.skb_mode != o.skb_mode)
			pr_warn("--mode ignored: the adopted instance runs in %s mode\n",
				meta.skb_mode ? "skb" : "native");
		if (port_given && meta.port != o.port)
			pr_warn("--port ignored: the adopted instance listens on %u\n", meta.port);
		if (tick_given && meta.tick_ns != o.tick_ns)
			pr_warn("--tick-us ignored: the adopted instance ticks every %llu us\n",
				(unsigned long long)(meta.tick_ns / 1000));
		if (max_given && meta.max_agents != o.max_agents)
			pr_warn("--max-agents ignored: the adopted instance holds %u agents\n",
				meta.max_agents);
		if (ringbuf_given)
			pr_warn("--ringbuf-mb ignored: the ring buffer was sized at load\n");
		if ((port_given && meta.port != o.port) || (tick_given && meta.tick_ns != o.tick_ns) ||
		    (max_given && meta.max_agents != o.max_agents) || ringbuf_given)
			pr_warn("load-time options take effect only on a fresh load: 'vigil detach' "
				"(drops the kernel state), then 'vigil run' again\n");
		/* Run-time settings follow this daemon's options. */
		if (bpf_map_update_elem(d.maps.config, &zero, &o.cfg, BPF_ANY))
			pr_warn("updating vigil_config failed: %s\n", strerror(errno));
		pr_info("adopted the running instance at %s (port %u, tick %llu us, %s mode)\n",
			o.pin_root, meta.port, (unsigned long long)(meta.tick_ns / 1000),
			meta.skb_mode ? "skb" : "native");
	} else {
		if (vg_instance_load(&o, &d.maps, &d.skel)) {
			if (!root_existed)
				rmdir(o.pin_root); /* a failed start leaves nothing behind */
			goto out;
		}
		pr_info("attached to %s (%s mode), beat port %u, tick %llu us, pinned at %s\n",
			o.iface, o.skb_mode ? "skb" : "native", o.port,
			(unsigned long long)(o.tick_ns / 1000), o.pin_root);
	}
	bpf_map_lookup_elem(d.maps.config, &zero, &d.cfg);
	if (d.metrics && vg_metrics_serve(d.metrics, &d.maps, &d.ds, metrics_max_agents))
		goto out;
	if (!o.cfg.auth_required) {
		pr_warn("WARNING: authentication is OFF (--no-auth or --learn): anyone who can "
			"send UDP to port %u can make any agent look alive. Development only.\n",
			o.port);
		if (d.learn)
			pr_warn("WARNING: --learn registers unknown agents, up to %u\n", d.learn_cap);
	}
	/* Without an agents file the adopted instance keeps its group
	 * policies; an empty one would silently drop every allowlist. */
	if (config_path && apply_group_policy(&d, &cfgfile))
		goto out;
	if (config_path && register_config(&d, &cfgfile))
		goto out;
	if (d.keys_path)
		pr_info("keys: %zu agents in %s, %ld registered agents keyed\n", d.keys.n,
			d.keys_path, vg_auth_apply(&d.maps, &d.keys));
	if (bpf_map_lookup_elem(d.maps.meta, &zero, &meta)) {
		pr_warn("reading vigil_meta failed: %s\n", strerror(errno));
		goto out;
	}
	if (vg_eventlog_open(&d.log, db_path, events_path, meta.instance_id))
		goto out;
	d.db_path = db_path;
	retention(&d, vg_mono_ns());
	/* Delivers the outbox, including alerts left by an earlier run. A
	 * shadow monitor sends nothing: they wait for a run that is not. */
	if ((!d.shadow && vg_alerter_start(db_path, &d.acfg, &d.ds, &d.alerter)) ||
	    vg_exporter_start(db_path, &d.xcfg, &d.ds, &d.exporter) ||
	    vg_escalation_start(&d.esc, &d.log, &d.acfg, &d.ds, &d.maps, d.quiet) ||
	    vg_leases_start(&d.leases, &d.maps, d.log.db, cfgfile.leases, cfgfile.n_leases,
			    meta.max_agents, d.quiet))
		goto out;
	d.esc.shadow = d.leases.shadow = d.shadow;
	if (d.shadow)
		pr_warn("shadow mode: detecting and recording only; no alert is sent, no "
			"remediation run, no lease granted ('vigil log notices' and 'vigil lease show' "
			"show what would "
			"have been)\n");
	rb = vg_ringbuf_open(d.maps.events);
	if (!rb)
		goto out;
	/* Events that waited in the ring buffer while no daemon ran, then
	 * whatever the ring buffer could not hold. */
	if (drain(&d, rb))
		goto out;
	reconcile(&d, rb, "start");
	atomic_store(&d.ds.ready, true);
	{
		struct vigil_stats st;

		if (vg_stats_read(&d.maps, &st) == 0)
			d.ringbuf_full_seen = st.ringbuf_full;
	}

	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGHUP, on_signal);
	signal(SIGPIPE, SIG_IGN);
	started = vg_mono_ns();
	while (!stop_requested) {
		/* Grants due; wait for events no longer than until the next one. */
		int err = vg_ringbuf_wait(rb, vg_leases_tick(&d.leases, 100));
		__u64 now = vg_mono_ns();

		if (err) {
			pr_warn("waiting for the ring buffer failed: %s\n", strerror(-err));
			break;
		}
		if (drain(&d, rb)) {
			pr_warn("the event log cannot be written; stopping so that no event is "
				"released unrecorded (they wait in the ring buffer)\n");
			log_failed = true;
			break;
		}
		/* Flap releases and remediation; their notices and alerts are
		 * committed right away. */
		vg_escalation_tick(&d.esc);
		if (vg_eventlog_sync(&d.log))
			atomic_fetch_add(&d.ds.log_errors, 1);
		if (reload_requested) {
			reload_requested = 0;
			if (load_keys(&d))
				pr_warn("key reload failed; the previous keys stay in force\n");
		}
		if (now - last_house >= VIGIL_NSEC_PER_SEC) {
			last_house = now;
			if (housekeeping(&d, rb))
				break;
		}
		if (duration_s && now - started >= (__u64)duration_s * VIGIL_NSEC_PER_SEC)
			break;
	}
	drain(&d, rb);
	if (vg_instance_exists(o.pin_root))
		pr_info("stopping; detection continues in the kernel (vigil detach removes it)\n");
	ret = log_failed ? 1 : 0; /* non-zero: a supervisor restarts us */
out:
	vg_metrics_stop(d.metrics); /* first: it reads the maps closed below */
	/* An instance this run loaded but never served with (bad --events-file,
	 * more agents than --max-agents...) is removed, so that fixing the
	 * option and running again starts afresh instead of adopting it. */
	if (ret && d.skel && !started)
		vg_instance_remove(o.pin_root);
	vg_ringbuf_close(rb);
	vg_alerter_stop(d.alerter);
	vg_exporter_stop(d.exporter);
	vg_escalation_stop(&d.esc);
	vg_leases_stop(&d.leases);
	vg_eventlog_close(&d.log);
	if (d.skel)
		vigil_bpf__destroy(d.skel);
	else if (d.adopted)
		vg_maps_close(&d.maps);
	vg_config_free(&cfgfile);
	vg_keyfile_free(&d.keys);
	if (lock_fd >= 0)
		close(lock_fd);
	return ret;
}

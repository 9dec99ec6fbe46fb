// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/*
 * The daemon behind `vigil run`, in phases: open (the event log and the
 * replay floors it keeps; adopt the pinned instance or load a new one),
 * publish (the agents file and keys into the maps), start (the workers:
 * alerts, export, escalation, leases, metrics), catch up (what waited in the ring buffer while no daemon ran,
 * then what it could not hold), serve (until a signal, a detach or a log
 * that cannot be written), stop. One event's path is in record.c.
 */
#include <errno.h>
#include <net/if.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "vigil.skel.h"
#include "common/caps.h"
#include "common/log.h"
#include "common/registry.h"
#include "common/util.h"
#include "daemon/state.h"

void vg_run_opts_default(struct vg_run_opts *o)
{
	memset(o, 0, sizeof(*o));
	vg_load_opts_default(&o->load);
	o->load.id_base = 0; /* chosen from the agents file, unless --id-base */
	vg_escalation_defaults(&o->esc);
	vg_alert_cfg_default(&o->acfg);
	vg_export_cfg_default(&o->xcfg);
	vg_lease_repl_cfg_default(&o->lcfg);
	o->db_path = VIGIL_DEFAULT_DB;
	o->retain_rejections_days = VG_REJECT_RETAIN_DAYS;
	o->metrics_addr = VG_METRICS_DEFAULT_LISTEN;
	o->metrics_max_agents = VG_METRICS_DEFAULT_MAX_AGENTS;
	o->storm_interval_ms = 1000;
	o->peers.interval_ms = 100;
	o->learn_cap = 64;
}

void vg_run_opts_free(struct vg_run_opts *o)
{
	vg_config_free(&o->config);
	vg_keyfile_free(&o->keys);
	for (size_t i = 0; i < sizeof(o->owned) / sizeof(o->owned[0]); i++)
		free(o->owned[i]);
}

static volatile sig_atomic_t stop_requested, reload_requested;

static void on_signal(int sig)
{
	if (sig == SIGHUP)
		reload_requested = 1;
	else
		stop_requested = 1;
}

/* ------------------------------------------------------------------ open */

/* An adopting daemon keeps the instance's load-time settings: say so for
 * each one this run asked for otherwise. */
static void warn_load_time(const struct vg_run_opts *o, const struct vigil_meta *m)
{
	const struct vg_load_opts *l = &o->load;
	bool port = o->port_given && m->port != l->port, tick = o->tick_given && m->tick_ns != l->tick_ns;
	bool max = o->max_given && m->max_agents != l->max_agents;
	bool id_base = o->id_base_given && m->id_base != l->id_base;

	if (o->mode_given && m->skb_mode != l->skb_mode)
		pr_warn("--mode ignored: the adopted instance runs in %s mode\n",
			m->skb_mode ? "skb" : "native");
	if (port)
		pr_warn("--port ignored: the adopted instance listens on %u\n", m->port);
	if (tick)
		pr_warn("--tick-us ignored: the adopted instance ticks every %llu us\n",
			(unsigned long long)(m->tick_ns / 1000));
	if (max)
		pr_warn("--max-agents ignored: the adopted instance holds %u agents\n", m->max_agents);
	if (id_base)
		pr_warn("--id-base ignored: the adopted instance places agents from id %llu\n",
			(unsigned long long)m->id_base);
	if (o->ringbuf_given)
		pr_warn("--ringbuf-mb ignored: the ring buffer was sized at load\n");
	if (port || tick || max || id_base || o->ringbuf_given)
		pr_warn("load-time options take effect only on a fresh load: 'vigil detach' "
			"(drops the kernel state), then 'vigil run' again\n");
}

static int adopt(struct daemon *d)
{
	const struct vg_run_opts *o = d->o;
	const struct vg_load_opts *l = &o->load;
	__u32 zero = 0;

	if (vg_instance_open(l->pin_root, &d->maps, &d->meta))
		return -1;
	d->adopted = true;
	if (o->iface_given && d->meta.ifindex != if_nametoindex(l->iface)) {
		pr_warn("the instance at %s is attached to another interface (ifindex %u); "
			"run 'vigil detach' first to move it to %s\n", l->pin_root, d->meta.ifindex,
			l->iface);
		return -1;
	}
	warn_load_time(o, &d->meta);
	/* Run-time settings follow this daemon's options. */
	if (bpf_map_update_elem(d->maps.config, &zero, &l->cfg, BPF_ANY))
		pr_warn("updating vigil_config failed: %s\n", strerror(errno));
	pr_info("adopted the running instance at %s (port %u, tick %llu us, %s mode)\n",
		l->pin_root, d->meta.port, (unsigned long long)(d->meta.tick_ns / 1000),
		d->meta.skb_mode ? "skb" : "native");
	return 0;
}

/* root_existed: whether the pin directory was there before this run. */
static int load(struct daemon *d, bool root_existed, __u64 instance_id)
{
	struct vg_load_opts l = d->o->load;

	l.instance_id = instance_id;
	if (vg_instance_load(&l, &d->maps, &d->skel)) {
		if (!root_existed)
			rmdir(l.pin_root); /* a failed start leaves nothing behind */
		return -1;
	}
	pr_info("attached to %s (%s mode), beat port %u, tick %llu us, pinned at %s\n", l.iface,
		l.skb_mode ? "skb" : "native", l.port, (unsigned long long)(l.tick_ns / 1000),
		l.pin_root);
	return 0;
}

/* The event log, and the replay floors it keeps: before a fresh instance is
 * loaded, so that the agents are registered, each at its floor, right after
 * XDP is attached, however long the log takes to open. */
static int open_log(struct daemon *d, __u64 instance_id)
{
	const struct vg_run_opts *o = d->o;

	if (vg_eventlog_open(&d->log, o->db_path, o->events_path, instance_id))
		return -1;
	d->log.on_recorded = vg_daemon_recorded;
	d->log.on_recorded_ctx = d;
	return vg_floors_open(&d->floors, d->log.db);
}

/* A fresh start that failed after opening the log leaves no log behind that
 * it created: nothing was recorded in it. */
static void forget_new_log(struct daemon *d, bool db_new, bool ev_new)
{
	const struct vg_run_opts *o = d->o;
	char side[4200];

	vg_floors_close(&d->floors);
	vg_eventlog_close(&d->log);
	if (db_new) {
		unlink(o->db_path);
		snprintf(side, sizeof(side), "%s-wal", o->db_path);
		unlink(side);
		snprintf(side, sizeof(side), "%s-shm", o->db_path);
		unlink(side);
	}
	if (ev_new)
		unlink(o->events_path);
}

/* A fresh instance has room for --max-agents agents, fixed at load. */
static bool too_many_agents(const struct vg_run_opts *o)
{
	if (o->config.n <= o->load.max_agents)
		return false;
	pr_warn("the agents file registers %zu agents, more than --max-agents %u (the capacity "
		"is fixed at load: run with a larger --max-agents)\n", o->config.n,
		o->load.max_agents);
	return true;
}

/* Returns 0, or the exit status: 2 for a malformed --metrics, else 1. */
static int open_instance(struct daemon *d)
{
	const struct vg_run_opts *o = d->o;
	const char *pin_root = o->load.pin_root;
	bool root_existed = access(pin_root, F_OK) == 0;
	__u32 zero = 0;

	/* Before any socket, mount or bpf(): one line naming a missing capability. */
	if (vg_caps_check_run(o->load.iface, pin_root))
		return 1;
	/* Bound now, so a busy port is refused before the kernel is touched. */
	if (o->metrics_addr) {
		int err = vg_metrics_bind(o->metrics_addr, &d->metrics);

		if (err)
			return err == -EINVAL ? 2 : 1;
	}
	d->lock_fd = vg_daemon_lock(pin_root);
	if (d->lock_fd < 0 || vg_ensure_bpffs(pin_root))
		return 1;
	if (vg_instance_exists(pin_root)) {
		if (adopt(d) || open_log(d, d->meta.instance_id))
			return 1;
	} else {
		__u64 id = vg_instance_new_id();
		bool db_new = access(o->db_path, F_OK) != 0;
		bool ev_new = o->events_path && access(o->events_path, F_OK) != 0;

		/* Refuse what can be told now, before the load: verifying the
		 * programs takes seconds of CPU on a busy machine. */
		if ((o->load.iface && vg_instance_can_attach(o->load.iface, o->load.skb_mode)) ||
		    too_many_agents(o) || open_log(d, id)) {
			if (!root_existed)
				rmdir(pin_root);
			return 1;
		}
		if (load(d, root_existed, id)) {
			forget_new_log(d, db_new, ev_new);
			return 1;
		}
	}
	if (vg_floors_publish(&d->floors, &d->maps))
		return 1;
	if (bpf_map_lookup_elem(d->maps.meta, &zero, &d->meta)) {
		pr_warn("reading vigil_meta failed: %s\n", strerror(errno));
		return 1;
	}
	bpf_map_lookup_elem(d->maps.config, &zero, &d->cfg);
	return 0;
}

/* --------------------------------------------------------------- publish */

static int publish(struct daemon *d)
{
	const struct vg_run_opts *o = d->o;

	if (!o->load.cfg.auth_required) {
		pr_warn("WARNING: authentication is OFF (--no-auth or --learn): anyone who can "
			"send UDP to port %u can make any agent look alive. Development only.\n",
			d->meta.port);
		if (o->learn)
			pr_warn("WARNING: --learn registers unknown agents, up to %u\n", o->learn_cap);
	}
	/* Without an agents file the adopted instance keeps its group
	 * policies; an empty one would silently drop every allowlist. */
	if (o->config_path && (vg_daemon_publish_groups(d, &o->config) ||
			       vg_daemon_register(d, &o->config)))
		return -1;
	return o->keys_path ? vg_daemon_apply_keys(d) : 0;
}

/* ----------------------------------------------------------------- start */

/* Retention: at start, then hourly. Pruning runs on its own connection and
 * deletes only old rows, so it never blocks recording for long. */
static void retention(struct daemon *d, __u64 now)
{
	const struct vg_run_opts *o = d->o;
	long removed = 0;

	if (d->last_prune_ns && now - d->last_prune_ns < 3600 * VIGIL_NSEC_PER_SEC)
		return;
	d->last_prune_ns = now;
	if (vg_log_prune(o->db_path, o->retain_days * 86400, o->retain_events,
			 o->retain_rejections_days * 86400, &removed) == 0 &&
	    removed)
		pr_info("retention: removed %ld events from the log\n", removed);
}

static int start_workers(struct daemon *d)
{
	const struct vg_run_opts *o = d->o;

	if (d->metrics && vg_metrics_serve(d->metrics, &d->maps, &d->ds, o->metrics_max_agents))
		return -1;
	retention(d, vg_mono_ns());
	/* Delivers the outbox, including alerts left by an earlier run. A
	 * shadow monitor sends nothing: they wait for a run that is not. */
	if ((!o->shadow && vg_alerter_start(o->db_path, &o->acfg, &d->maps, d->meta.instance_id, &d->ds,
					      &d->alerter)) ||
	    vg_exporter_start(o->db_path, &o->xcfg, &d->ds, &d->exporter) ||
	    vg_escalation_start(&d->esc, &d->log, &o->acfg, &d->ds, &d->maps, o->quiet) ||
	    /* A shadow monitor grants nothing, so it takes no term either. */
	    (!o->shadow && vg_lease_repl_start(&o->lcfg, o->config.leases, o->config.n_leases,
					       d->maps.lease_terms, &d->repl)) ||
	    vg_leases_start(&d->leases, &d->maps, d->log.db, o->config.leases, o->config.n_leases,
			    d->meta.max_agents, o->quiet, d->repl))
		return -1;
	d->esc.shadow = d->leases.shadow = o->shadow;
	if (vg_peers_start(&o->peers, &d->peer_agent))
		return -1;
	if (o->shadow)
		pr_warn("shadow mode: detecting and recording only; no alert is sent, no "
			"remediation run, no lease granted ('vigil log notices' and 'vigil lease show' "
			"show what would have been)%s\n",
			o->lcfg.nats_urls ? "; --lease-nats ignored: it takes no term" : "");
	return 0;
}

/* Events that waited in the ring buffer while no daemon ran, then whatever
 * the ring buffer could not hold. */
static int catch_up(struct daemon *d)
{
	struct vigil_stats st;

	d->rb = vg_ringbuf_open(d->maps.events);
	if (!d->rb || vg_daemon_drain(d))
		return -1;
	vg_daemon_reconcile(d, "start");
	atomic_store(&d->ds.ready, true);
	if (vg_stats_read(&d->maps, &st) == 0)
		d->ringbuf_full_seen = st.ringbuf_full;
	return 0;
}

/* ----------------------------------------------------------------- serve */

/* Once a second: the instance still exists; ring buffer losses; storm
 * control; the row of rejections at the end of its window; retention; now
 * and then, the replay floors. */
static int housekeeping(struct daemon *d)
{
	struct vigil_stats st;
	__u64 now = vg_mono_ns();

	/* Events first: a step of the floors' pass waits while records do,
	 * up to a minute (the events raise their agents' floors themselves). */
	if ((!vg_ringbuf_backlog(d->rb) || now - d->floors.saved_ns >= VG_FLOORS_DEFER_MAX_NS) &&
	    vg_floors_tick(&d->floors, now))
		atomic_fetch_add(&d->ds.log_errors, 1);
	if (!vg_instance_exists(d->o->load.pin_root)) {
		pr_warn("the instance at %s was detached; exiting\n", d->o->load.pin_root);
		return -1;
	}
	if (vg_stats_read(&d->maps, &st))
		return 0;
	if (st.ringbuf_full != d->ringbuf_full_seen) {
		d->ringbuf_full_seen = st.ringbuf_full;
		vg_daemon_reconcile(d, "ring buffer was full");
	} else if (d->reconcile_due) {
		vg_daemon_reconcile(d, "retry after a failed commit");
	}
	vg_daemon_storm(d, &st);
	if (vg_eventlog_tick(&d->log))
		atomic_fetch_add(&d->ds.log_errors, 1);
	retention(d, vg_mono_ns());
	return 0;
}

/* Returns the exit status: 1 when the log cannot be written (a supervisor
 * restarts us; the events wait in the ring buffer), else 0. */
static int serve(struct daemon *d)
{
	__u64 last_house = 0, limit = (__u64)d->o->duration_s * VIGIL_NSEC_PER_SEC;

	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGHUP, on_signal);
	signal(SIGPIPE, SIG_IGN);
	d->started_ns = vg_mono_ns();
	while (!stop_requested) {
		/* Grants due; wait for events no longer than until the next one. */
		int err = vg_ringbuf_wait(d->rb, vg_leases_tick(&d->leases, 100));
		__u64 now = vg_mono_ns();

		if (err) {
			pr_warn("waiting for the ring buffer failed: %s\n", strerror(-err));
			break;
		}
		/* A grant never waits behind other work: the events that woke
		 * us (the old holder's DEAD falls due with the grace's end) are
		 * committed after it, and grants that fell due meanwhile go out
		 * before alerts and housekeeping. Candidates' health is read
		 * from the kernel, so the log need not be current for it. */
		vg_leases_tick(&d->leases, 100);
		if (vg_daemon_drain(d)) {
			pr_warn("the event log cannot be written; stopping so that no event is "
				"released unrecorded (they wait in the ring buffer)\n");
			return 1;
		}
		vg_leases_tick(&d->leases, 100);
		/* Flap releases and remediation; their notices and alerts are
		 * committed right away. */
		vg_escalation_tick(&d->esc);
		if (vg_eventlog_sync(&d->log))
			atomic_fetch_add(&d->ds.log_errors, 1);
		if (reload_requested) {
			reload_requested = 0;
			if (vg_daemon_reload_keys(d))
				pr_warn("key reload failed; the previous keys stay in force\n");
		}
		if (now - last_house >= VIGIL_NSEC_PER_SEC) {
			last_house = now;
			if (housekeeping(d))
				break;
		}
		if (limit && now - d->started_ns >= limit)
			break;
	}
	vg_daemon_drain(d);
	if (vg_instance_exists(d->o->load.pin_root))
		pr_info("stopping; detection continues in the kernel (vigil detach removes it)\n");
	return 0;
}

/* ------------------------------------------------------------------ stop */

static void stop(struct daemon *d, int ret)
{
	/* A stop on purpose leaves the peers' watch; a failing daemon goes
	 * DEAD there, as it should. */
	vg_peers_stop(d->peer_agent, !ret);
	vg_metrics_stop(d->metrics); /* first: it reads the maps closed below */
	/* An instance this run loaded but never served with (bad --events-file,
	 * more agents than --max-agents...) is removed, so that fixing the
	 * option and running again starts afresh instead of adopting it. */
	if (ret && d->skel && !d->started_ns)
		vg_instance_remove(d->o->load.pin_root);
	vg_ringbuf_close(d->rb);
	vg_alerter_stop(d->alerter);
	vg_exporter_stop(d->exporter);
	vg_escalation_stop(&d->esc);
	vg_leases_stop(&d->leases);
	vg_lease_repl_stop(d->repl); /* before the maps it writes are closed */
	/* Where the windows stand, also after a detach (the maps are still
	 * open): the next instance starts from there. */
	if (d->started_ns)
		vg_floors_save(&d->floors);
	vg_floors_close(&d->floors);
	vg_eventlog_close(&d->log);
	if (d->skel)
		vigil_bpf__destroy(d->skel);
	else if (d->adopted)
		vg_maps_close(&d->maps);
	if (d->lock_fd >= 0)
		close(d->lock_fd);
}

int vg_daemon_run(struct vg_run_opts *o)
{
	struct daemon d = { .o = o, .keys = &o->keys, .esc = o->esc, .lock_fd = -1 };
	int ret;

	setvbuf(stdout, NULL, _IOLBF, 0);
	atomic_store(&d.ds.started_wall_ns, vg_wall_ns());
	ret = open_instance(&d);
	if (!ret)
		ret = publish(&d) || start_workers(&d) || catch_up(&d) ? 1 : serve(&d);
	stop(&d, ret);
	return ret;
}

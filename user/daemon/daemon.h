/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * `vigil run`, the daemon. cli/run.c parses the command line into struct
 * vg_run_opts and checks it (files readable, options consistent);
 * vg_daemon_run() then does the rest, in phases (daemon.c): open or load
 * the instance, publish the agents file and keys, start the workers, catch
 * up with what happened while no daemon ran, serve until told to stop.
 */
#ifndef VIGIL_DAEMON_H
#define VIGIL_DAEMON_H

#include <stdbool.h>
#include <linux/types.h>
#include "common/config.h"
#include "common/instance.h"
#include "common/keys.h"
#include "daemon/alert.h"
#include "daemon/escalate.h"
#include "daemon/export.h"
#include "daemon/lease_repl.h"
#include "daemon/peers.h"

struct vg_run_opts {
	struct vg_load_opts load; /* a fresh load's settings; load.cfg applies at every start */
	/* Load-time options given explicitly: an adopting daemon warns that
	 * they are the instance's, not its own. */
	bool iface_given, mode_given, port_given, tick_given, max_given, ringbuf_given, id_base_given;
	const char *config_path;  /* agents file, NULL: none */
	struct vg_config config;  /* ... as loaded by the check */
	const char *keys_path;    /* key file, NULL: none (--no-auth, --learn) */
	struct vg_keyfile keys;   /* ... as loaded by the check */
	const char *db_path;
	const char *events_path;  /* JSON-lines export, NULL: none */
	const char *metrics_addr; /* NULL: --metrics off */
	__u32 metrics_max_agents;
	__u64 retain_days, retain_events; /* 0: keep everything */
	__u64 retain_rejections_days;     /* the breakdown of rejections */
	__u32 duration_s;         /* 0: until SIGTERM */
	bool no_auth, shadow, quiet, learn;
	__u32 learn_cap;
	__u32 storm_beats_per_sec, storm_events_per_sec, storm_interval_ms;
	struct vg_alert_cfg acfg;
	struct vg_export_cfg xcfg;
	/* --alert-webhook-file, --export-nats-file; what they and the
	 * environment gave, and URLs moved off argv, are held in owned[]. */
	const char *webhook_file, *nats_file;
	char *owned[3];
	struct vg_lease_repl_cfg lcfg; /* --lease-*: leases replicated through NATS */
	struct vg_escalation esc; /* its configuration part */
	struct vg_peers peers;    /* --peer: this monitor as an agent of its peers */
};

void vg_run_opts_default(struct vg_run_opts *o);
void vg_run_opts_free(struct vg_run_opts *o);
/* Run until stopped; returns the exit status (non-zero: a supervisor
 * restarts it). Takes over o's loaded files. */
int vg_daemon_run(struct vg_run_opts *o);

#endif

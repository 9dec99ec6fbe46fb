/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * The running daemon's state, shared by its parts: daemon.c (the phases and
 * the loop), record.c (one event's path: ring buffer -> log -> alerts),
 * registration.c (the agents file and keys into the maps), storm.c (storm
 * control). Nothing outside user/daemon/ sees it.
 */
#ifndef VIGIL_DAEMON_STATE_H
#define VIGIL_DAEMON_STATE_H

#include "common/eventlog.h"
#include "daemon/daemon.h"
#include "daemon/dstats.h"
#include "daemon/floors.h"
#include "daemon/grants.h"
#include "daemon/metrics.h"
#include "daemon/ringbuf.h"

struct vigil_bpf;

struct daemon {
	const struct vg_run_opts *o;
	struct vg_maps maps;
	struct vigil_bpf *skel;     /* NULL when adopted */
	bool adopted;               /* maps were opened from the pins */
	struct vigil_meta meta;
	struct vigil_config cfg;    /* as in force in the kernel */
	struct vg_keyfile *keys;    /* o's, replaced on SIGHUP */
	struct vg_eventlog log;
	struct vg_floors floors;    /* the agents' replay floors in the log */
	struct vg_alerter *alerter; /* NULL: no sink configured */
	struct vg_exporter *exporter; /* NULL: no --export-nats */
	struct vg_escalation esc;   /* what to alert, flap damping, remediation */
	struct vg_leases leases;    /* grants leases with fencing tokens */
	struct vg_lease_repl *repl; /* --lease-nats: their terms and tokens in NATS */
	struct vg_ringbuf *rb;
	struct vg_daemon_stats ds;  /* read by the metrics thread */
	struct vg_metrics *metrics; /* NULL with --metrics off */
	struct vigil_agent *peer_agent; /* --peer: beats to the peer monitors */
	int lock_fd;
	__u64 started_ns;           /* 0 until the instance serves */
	__u64 last_prune_ns;
	__u32 learned;
	__u64 ringbuf_full_seen;
	__u64 reconciled;
	__u64 reconcile_upto;       /* reconcile transitions up to this event_seq */
	bool reconcile_due;         /* the last reconcile did not commit: retry */
	/* Storm control (storm.c): over budget, acknowledgements recommend a
	 * slower interval; hysteresis keeps it from flapping. */
	struct {
		__u64 last_beats, last_events;
		__u32 over, calm;
		bool active;
		__u32 since;       /* seconds (calls) since it became active */
		__u64 rate_before; /* beats in the second that turned it on */
		__u64 rate_obeyed; /* beats in a second once agents obeyed (0: not yet) */
	} storm;
};

/* record.c: read a batch, make it durable, only then release it; -1 when
 * the log cannot be written (nothing released). */
int vg_daemon_drain(struct daemon *d);
/* record.c: the event log's on_recorded hook (escalation, stdout). */
void vg_daemon_recorded(void *ctx, const struct vg_event_view *v);
/* record.c: record the transitions the ring buffer lost, from the maps. */
void vg_daemon_reconcile(struct daemon *d, const char *why);
/* registration.c */
int vg_daemon_publish_groups(struct daemon *d, const struct vg_config *c);
int vg_daemon_register(struct daemon *d, const struct vg_config *c);
int vg_daemon_reload_keys(struct daemon *d);
/* registration.c: every agent's keys and policy from d->keys, under the
 * registry lock; -1 when they could not be written. */
int vg_daemon_apply_keys(struct daemon *d);
/* storm.c: once a second, with the beat path's counters. */
void vg_daemon_storm(struct daemon *d, const struct vigil_stats *st);

#endif

/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * The merged fleet view's state (docs/fleet.md), as pure bookkeeping that
 * `vigil fleet` (user/cli/fleet.c) feeds from JetStream:
 *
 *  - monitors, by host name, and whether each is live (its presence keeps
 *    coming, and its events have reached the view);
 *  - each monitor's last verdict on each agent it watches: a monitor watches
 *    an agent once it has published an event about it;
 *  - the fleet's state of each agent, judged from the verdicts of the live
 *    monitors that watch it (vg_fleet_judge);
 *  - which events were merged, per (host, instance): the highest event_seq
 *    and the holes below it, so that an event is merged exactly once by
 *    (host, instance, event_seq) even when it comes late or twice.
 */
#ifndef VIGIL_FLEET_H
#define VIGIL_FLEET_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>
#include "common/u64map.h"
#include "vigil/maps.h"

#define VG_FLEET_HOST_LEN 64     /* a subject token, as --export-host */
#define VG_FLEET_MAX_WATCHERS 8  /* monitors per agent kept */
#define VG_FLEET_MAX_HOLES 64    /* event_seq ranges not yet seen, per (host, instance) */

/* What one monitor's last event said about an agent. */
enum vg_verdict {
	VG_VERDICT_NONE,
	VG_VERDICT_ALIVE,
	VG_VERDICT_SUSPECT,
	VG_VERDICT_DEAD,
	VG_VERDICT_LEFT,
	VG_VERDICT_MAX = VG_VERDICT_LEFT,
};

/* What the fleet says about an agent. */
enum vg_fleet_state {
	VG_FLEET_UNKNOWN,  /* no live monitor watches it */
	VG_FLEET_ALIVE,    /* every live monitor that watches it sees it alive */
	VG_FLEET_SUSPECT,  /* one suspects it, none contradicts with a firm verdict */
	VG_FLEET_DEAD,     /* every live monitor that watches it says dead (or left) */
	VG_FLEET_LEFT,     /* it left, as every live monitor saw */
	VG_FLEET_DISAGREE, /* alive for one live monitor, dead or gone for another */
	VG_FLEET_STATE_MAX = VG_FLEET_DISAGREE,
};

const char *vg_verdict_name(__u32 v);
const char *vg_fleet_state_name(__u32 s);
/* The verdict an event's `state` field ("alive", "dead"...) gives; NONE for
 * the others ("new", lease and monitor states). */
enum vg_verdict vg_verdict_of_state(const char *state);

struct vg_fleet_monitor {
	char host[VG_FLEET_HOST_LEN + 1];
	bool live;
	bool announced;       /* a presence arrived in this run */
	__u64 presence_ns;    /* the merger's CLOCK_MONOTONIC when it arrived */
	__u32 interval_ms;    /* the presence interval it announced */
	__u64 presence_inst;  /* how far its export had come: instance ... */
	__u64 presence_seq;   /* ... and event_seq (0: nothing yet) */
};

struct vg_fleet_watch {
	__u32 monitor;        /* index into the monitors */
	__u8 verdict;         /* enum vg_verdict */
};

struct vg_fleet_agent {
	__u64 id;
	__u8 state;           /* enum vg_fleet_state, as last published */
	__u8 n;               /* watchers */
	struct vg_fleet_watch w[VG_FLEET_MAX_WATCHERS];
	char name[VIGIL_NAME_LEN];
};

struct vg_fleet_range {
	__u64 lo, hi;
};

struct vg_fleet_seen {
	__u32 monitor;
	__u64 inst;
	__u64 hi;             /* highest event_seq merged (0: none) */
	__u32 n_holes;        /* ranges below hi not merged yet, ascending */
	struct vg_fleet_range holes[VG_FLEET_MAX_HOLES];
};

struct vg_fleet {
	struct vg_idtab monitors; /* struct vg_fleet_monitor, by a hash of the host */
	struct vg_idtab agents;   /* struct vg_fleet_agent, by agent id */
	struct vg_idtab seen;     /* struct vg_fleet_seen, by (monitor, instance) */
};

void vg_fleet_init(struct vg_fleet *f);
void vg_fleet_free(struct vg_fleet *f);

static inline struct vg_fleet_monitor *vg_fleet_mon(const struct vg_fleet *f, __u32 i)
{
	return vg_idtab_row(&f->monitors, i);
}

/* The index of host's monitor, added (not live) if new; -1 when out of
 * memory or the name is not a host token. */
int vg_fleet_monitor(struct vg_fleet *f, const char *host);
/* The index of an existing monitor, or -1. */
int vg_fleet_find_monitor(const struct vg_fleet *f, const char *host);

/* The agent, added (UNKNOWN, no watcher) if new; NULL when out of memory. */
struct vg_fleet_agent *vg_fleet_agent(struct vg_fleet *f, __u64 id);

/* Record monitor m's verdict on agent a (a new watcher if m had none).
 * Returns -1 when a already has VG_FLEET_MAX_WATCHERS other watchers. */
int vg_fleet_set_verdict(struct vg_fleet_agent *a, __u32 m, enum vg_verdict v);
/* The verdict of monitor m on a, NONE if it does not watch it. */
enum vg_verdict vg_fleet_verdict(const struct vg_fleet_agent *a, __u32 m);
/* The fleet's state of a: from the verdicts of its live watchers. */
enum vg_fleet_state vg_fleet_judge(const struct vg_fleet *f, const struct vg_fleet_agent *a);

/* Was (monitor m, inst, seq) merged already? */
bool vg_fleet_seen(const struct vg_fleet *f, __u32 m, __u64 inst, __u64 seq);
/* Mark it merged. Returns -1 when out of memory (nothing changed). When the
 * holes overflow, the oldest is forgotten (counted as merged). */
int vg_fleet_mark(struct vg_fleet *f, __u32 m, __u64 inst, __u64 seq);
/* The record of (m, inst), or NULL. */
struct vg_fleet_seen *vg_fleet_seen_of(const struct vg_fleet *f, __u32 m, __u64 inst);
/* Set (m, inst)'s record as a fleet record carried it: hi and the holes as
 * "lo-hi,lo-hi" ("" none). -1 on a malformed list or out of memory. */
int vg_fleet_seen_set(struct vg_fleet *f, __u32 m, __u64 inst, __u64 hi, const char *holes);
/* The holes as that list, into buf (truncated lists end early, at a range). */
void vg_fleet_holes_fmt(const struct vg_fleet_seen *s, char *buf, size_t len);

#endif

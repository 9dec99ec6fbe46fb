/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * Replay floors in the event log: where each agent id's replay window stood,
 * kept durably so that a registration after a detach, a reboot or a new
 * instance starts the window there instead of empty (docs/security.md,
 * "Anti-replay"). The daemon raises an id's floor with every agent event it
 * records (in the event's own transaction) and from every window now and
 * then; at start it hands the floors to the kernel (vigil_floors) before
 * any agent is registered.
 */
#ifndef VIGIL_DAEMON_FLOORS_H
#define VIGIL_DAEMON_FLOORS_H

#include <linux/types.h>
#include "common/instance.h"
#include "common/u64map.h"
#include "vigil/maps.h"

struct sqlite3;
struct sqlite3_stmt;
struct vigil_event;

/* How often the daemon saves the windows of agents that beat without an
 * event (what a crash can lose: the beats accepted since): a pass over the
 * slots begins every 5 s, and takes VG_FLOORS_STEP_SLOTS slots a second, so
 * that the event log is never held for long, and only while no event waits.
 * Up to 65,536 agents a pass is one step; a million take 16 s. */
#define VG_FLOORS_SAVE_NS (5 * VIGIL_NSEC_PER_SEC)
#define VG_FLOORS_STEP_SLOTS 65536
/* A step waits while events wait in the ring buffer, up to this long after
 * its pass began. */
#define VG_FLOORS_DEFER_MAX_NS (60 * VIGIL_NSEC_PER_SEC)

struct vg_floors {
	struct sqlite3 *db;
	struct sqlite3_stmt *upsert; /* raises one id's row (write_row) */
	const struct vg_maps *maps;
	struct vg_idtab saved; /* agent id -> struct replay_floor as in the log */
	__u64 saved_ns;        /* when the last pass over the windows began */
	__u32 cursor;          /* next slot of the pass under way; max_agents: none */
	bool failed;           /* the last save failed (said once) */
};

/* Read the log's floors (the first time, from its recorded events).
 * Returns 0 or -1 after saying why. */
int vg_floors_open(struct vg_floors *f, struct sqlite3 *db);
/* The instance's maps: raise vigil_floors to the log's floors, for
 * registrations by anyone (`vigil agent add` too). Returns 0 or -1. */
int vg_floors_publish(struct vg_floors *f, const struct vg_maps *m);
/* Put id's floor from the log into vigil_floors, for its registration to
 * start from (vigil_floors is an LRU map: it may have lost it). Returns 0 or
 * -1 after saying why. */
int vg_floors_offer(struct vg_floors *f, __u64 id);
/* An event being recorded: raise its agent's floor, in the event's
 * transaction. */
void vg_floors_note(struct vg_floors *f, const struct vigil_event *e);
/* Save every window that moved (registered agents, and vigil_floors) in one
 * transaction of its own. Returns 0 or -1. */
int vg_floors_save(struct vg_floors *f);
/* Once a second: the next step of the periodic pass (VG_FLOORS_SAVE_NS),
 * in a transaction of its own. Returns 0 or -1. */
int vg_floors_tick(struct vg_floors *f, __u64 now);
void vg_floors_close(struct vg_floors *f);

#endif

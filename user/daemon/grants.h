/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * Leases with fencing tokens (docs/leases.md). The kernel renews a lease on
 * each fresh beat of its holder and expires it on the timing wheel; this
 * module grants it: to the best healthy candidate, with a token one above
 * any token ever handed out for it, written durably before the grant takes
 * effect, so tokens rise strictly across daemon restarts and reboots.
 */
#ifndef VIGIL_LEASE_H
#define VIGIL_LEASE_H

#include <stdbool.h>
#include <linux/types.h>
#include "vigil/maps.h"
#include "common/instance.h"

#include "common/config.h" /* struct vg_lease_def: a `lease` line of the agents file */

struct sqlite3;
struct vg_lease_state; /* per-lease bookkeeping, grants.c */
struct vg_lease_repl;  /* replication through NATS JetStream, lease_repl.h */

struct vg_leases {
	const struct vg_maps *maps;
	struct sqlite3 *db;
	const struct vg_lease_def *defs;
	struct vg_lease_state *st;
	size_t n;
	__u32 max_agents;
	bool quiet;
	bool shadow; /* decide and log grants, never write them to the kernel */
	struct vg_lease_repl *repl; /* NULL: not replicated; this monitor alone grants */
};

/* Create the lease tables if needed, publish the leases' names and
 * durations, and pick up tokens from both the database and the maps. With
 * `repl`, a lease is granted only while this monitor holds its term, under
 * a token reserved in the bucket (lease_repl.h). */
int vg_leases_start(struct vg_leases *l, const struct vg_maps *m, struct sqlite3 *db,
		    const struct vg_lease_def *defs, size_t n, __u32 max_agents, bool quiet,
		    struct vg_lease_repl *repl);
void vg_leases_stop(struct vg_leases *l);
/* Grant what is due. Returns how many ms until something is due next (the
 * daemon waits no longer than that), at most `cap_ms`. */
int vg_leases_tick(struct vg_leases *l, int cap_ms);

#endif

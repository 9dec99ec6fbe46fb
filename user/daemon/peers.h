/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * Monitors watching each other (docs/monitors.md): with --peer, the daemon
 * is also an agent of its peer monitors. It beats to each of them through
 * the agent library (include/vigil/agent.h) under --peer-id, the agent id
 * its peers' agents files give this monitor, so a monitor that dies (host,
 * daemon) goes SUSPECT and DEAD on its peers like any agent, and a daemon
 * stopped on purpose leaves (LEAVING) instead of alarming them.
 */
#ifndef VIGIL_DAEMON_PEERS_H
#define VIGIL_DAEMON_PEERS_H

#include <stdbool.h>
#include <linux/types.h>
#include "vigil/agent.h"
#include "common/keys.h"
#include "common/targets.h"

struct vg_peers {
	/* Options. */
	struct vg_targets targets; /* --peer */
	__u64 id;                  /* --peer-id */
	__u32 interval_ms;         /* --peer-interval-ms */
	/* Resolved by vg_peers_check(). */
	struct vigil_agent_monitor mons[VG_MAX_TARGETS];
	__u8 key[16];
	bool has_key;
	__u8 key_id;
};

/* Before the kernel is touched: --peer-id given with --peer, and a key for
 * it at every peer (from `keys`, the daemon's --keys, the set it shares with
 * its peers, or the peer's own ADDR@FILE). Ports default to `port`. One line
 * and 2 on error, else 0. */
int vg_peers_check(struct vg_peers *p, const struct vg_keyfile *keys, bool keys_given,
		   __u16 port);
/* Start beating to the peers into *out (NULL without --peer). 0, or -1
 * after one line. */
int vg_peers_start(const struct vg_peers *p, struct vigil_agent **out);
/* Stop; `leave`: with a LEAVING beat (a stop on purpose). NULL: nothing. */
void vg_peers_stop(struct vigil_agent *a, bool leave);

#endif

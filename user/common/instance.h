/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * A vigil instance is the set of maps, the sweeper timer and the XDP link,
 * pinned under one directory (default /sys/fs/bpf/vigil). It is either
 * loaded fresh or adopted from the pins a previous daemon left behind.
 */
#ifndef VIGIL_INSTANCE_H
#define VIGIL_INSTANCE_H

#include <stdbool.h>
#include <linux/types.h>
#include "vigil/maps.h"

#define VIGIL_DEFAULT_PIN_ROOT "/sys/fs/bpf/vigil"
/* How long a verdict may wait for receive-path evidence (vigil run --hold-max-ms). */
#define VIGIL_DEFAULT_HOLD_MAX_MS 200

/* File descriptors of every map, from a fresh load or from the pins. */
struct vg_maps {
	int agents, info, index, links, buckets, wheel, inbox, config, globals, stats, events, meta;
	int auth, groups, sources, allow, leases, rxq, floors, lease_terms;
	__u32 max_agents;
	__u64 id_base; /* vigil_meta.id_base: agent id_base + i belongs in slot i */
	int ncpus;
};

/* What `vigil run` decides before loading. */
struct vg_load_opts {
	const char *pin_root; /* NULL: do not pin (tests) */
	const char *iface;    /* NULL: do not attach (tests drive BPF_PROG_TEST_RUN) */
	bool skb_mode;
	__u16 port;
	__u64 tick_ns;
	__u32 max_agents;
	__u32 ringbuf_bytes;
	__u64 id_base;        /* agent ids from here on get their own slots: slot id - id_base */
	__u64 instance_id;    /* vigil_meta.instance_id; 0: a new random one */
	struct vigil_config cfg;
};

struct vigil_bpf;

void vg_load_opts_default(struct vg_load_opts *o);
/* A new random instance id (never 0). */
__u64 vg_instance_new_id(void);
/* Before anything is loaded: does IFACE exist, is it free of other XDP
 * programs, and (native mode) does its driver have XDP? Says why not, once;
 * a kernel that cannot tell the last is given the benefit of the doubt. */
int vg_instance_can_attach(const char *iface, bool skb_mode);
/* Load, start the sweeper, attach (if o->iface) and pin (if o->pin_root).
 * On success *skel_out owns the programs; maps are in *m. */
int vg_instance_load(const struct vg_load_opts *o, struct vg_maps *m, struct vigil_bpf **skel_out);
/* Is there a pinned instance under pin_root? */
bool vg_instance_exists(const char *pin_root);
/* Open the maps of a pinned instance and check its layout version. */
int vg_instance_open(const char *pin_root, struct vg_maps *m, struct vigil_meta *meta);
/* Fill m from a loaded skeleton (tests). */
void vg_maps_from_skel(struct vigil_bpf *skel, struct vg_maps *m);
void vg_maps_close(struct vg_maps *m);
/* Detach XDP, stop the sweeper and remove every pin. */
int vg_instance_remove(const char *pin_root);
/* One daemon per pin root: two would share the ring buffer's read position.
 * Takes a lock file under /run/lock for the process's lifetime; returns its
 * fd, or -1 after saying which process holds it. */
int vg_daemon_lock(const char *pin_root);
/* Make sure a bpffs is mounted where the pins go. */
int vg_ensure_bpffs(const char *pin_root);

#endif

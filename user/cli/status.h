/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * `vigil status` and its views (status.c; status_views.c: --watch,
 * --bpftool, --from-bpftool): one read of the pinned maps, shared.
 */
#ifndef VIGIL_CLI_STATUS_H
#define VIGIL_CLI_STATUS_H

#include <stddef.h>
#include "vigil/maps.h"
#include "common/registry.h"

struct agent_row {
	__u32 slot;
	struct vg_agent a;
};

struct rows {
	struct agent_row *v;
	size_t n, cap;
};

/* What `vigil status` shows, read once from the pinned maps. */
struct snapshot {
	struct vigil_meta meta;
	struct vigil_config cfg;
	struct vigil_stats st;
	struct wheel_state ws;
	struct rows rows; /* registered agents, by id */
	__u32 counts[VIGIL_AGENT_STATE_MAX + 1];
	__u32 qs[VIGIL_MAX_RXQ];
	struct rxq_state rxq[VIGIL_MAX_RXQ];
	size_t nq;
	__u64 now;
};

/* Read every map `vigil status` shows; 0, or 1 after one line on stderr.
 * The caller frees sn->rows.v. */
int read_snapshot(const char *pin_root, struct snapshot *sn);

/* The refusal counters of struct vigil_stats, one X(field) per reason. */
#define VIGIL_REFUSALS(X)                                                                \
	X(malformed) X(bad_version) X(unknown_agent) X(not_allowed) X(unauthenticated)   \
	X(bad_tag) X(duplicates) X(replayed) X(over_rate_agent) X(over_rate_source)    \
	X(mapped_source)

/* Their sum: every datagram refused, whatever the reason. */
__u64 snapshot_refused(const struct vigil_stats *st);

/* The views: each returns the exit status. */
int status_watch(const char *pin_root, __u32 interval_ms, __u32 count);
int status_bpftool(const char *pin_root);
int status_from_bpftool(FILE *in, FILE *out);

#endif

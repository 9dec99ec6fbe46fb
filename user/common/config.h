/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * The agents file (docs/config.md):
 *
 *   # comment
 *   defaults interval-min-ms=10 interval-max-ms=5000 multiplier=3 group=web
 *   agent 1 name=web-1
 *   agent 2 name=web-2 group=db multiplier=4
 *   allow db 198.18.0.0/15 fd00::/8
 *   ack db
 *   lease primary id=1 duration-ms=500 grace-ms=100 candidates=1:30,2:20,3:10
 *
 * `defaults` applies to the agent lines after it. Errors name file and line.
 */
#ifndef VIGIL_CONFIG_H
#define VIGIL_CONFIG_H

#include <stddef.h>
#include "common/registry.h"

#define VG_LEASE_MAX_CANDIDATES 16

/* One `lease` line of the agents file (granted by daemon/grants.c). */
struct vg_lease_def {
	__u32 id;
	__u32 duration_ms;
	__u32 grace_ms;
	__u32 n_cand;
	struct {
		__u64 agent_id;
		__u32 priority; /* higher wins */
	} cand[VG_LEASE_MAX_CANDIDATES];
	char name[VIGIL_NAME_LEN];
};

/* One `allow GROUP PREFIX` entry: beats for agents of GROUP are accepted
 * only from sources inside one of the group's prefixes. */
struct vg_allow {
	char group[VIGIL_GROUP_LEN];
	struct allow_key key;
};

struct vg_config {
	struct vg_agent_def *agents;
	size_t n, cap;
	struct vg_allow *allow;
	size_t n_allow;
	char (*ack)[VIGIL_GROUP_LEN]; /* groups whose beats are acknowledged */
	size_t n_ack;
	struct vg_lease_def *leases;
	size_t n_leases;
};

/* Returns 0, or -1 after printing "FILE:LINE: problem". */
int vg_config_load(const char *path, struct vg_config *out);
void vg_config_free(struct vg_config *c);
/* Apply one key=value to an agent definition; returns NULL or a problem. */
const char *vg_agent_def_set(struct vg_agent_def *d, const char *key, const char *val);
/* Parse "198.18.0.0/15" or "fd00::/8" into an allowlist key for a group.
 * Returns 0, -1 (not a prefix) or -2 (an IPv6 prefix inside ::ffff:0:0/96,
 * whose sources are refused). */
int vg_prefix_parse(const char *s, const char *group, struct allow_key *key);
/* Check cross-field rules (min <= max, ...); returns NULL or a problem. */
const char *vg_agent_def_check(const struct vg_agent_def *d);
/* The value of one of those keys, as the agents file writes it ("" for an
 * unknown key): what `vigil agent add --help` shows as the defaults. */
void vg_agent_def_get(const struct vg_agent_def *d, const char *key, char *buf, size_t len);

#endif

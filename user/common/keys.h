/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * Agent keys (docs/security.md). A key file has one line per key:
 *
 *   # agent-id  key-id  key (32 hex digits = 128 bits)
 *   7 0 00112233445566778899aabbccddeeff
 *   7 1 ffeeddccbbaa99887766554433221100
 *
 * An agent may hold key 0 and key 1 at once so keys roll without a missed
 * beat. The monitor's file must be owned by root and mode 0600.
 */
#ifndef VIGIL_KEYS_H
#define VIGIL_KEYS_H

#include <stdbool.h>
#include "vigil/auth.h"
#include "vigil/maps.h"
#include "common/instance.h"
#include "common/u64map.h"

struct vg_keyfile {
	struct vg_idtab agents; /* agent id -> struct agent_auth (keys and `valid` only) */
};

/* Load a key file. With `strict`, refuse one not owned by root with mode
 * 0600 (the monitor); without, one that is not private to its user (an
 * agent's: vg_private_file_check). Errors print
 * "FILE:LINE: problem" or "FILE: problem" and return -1. */
int vg_keyfile_load(const char *path, bool strict, struct vg_keyfile *kf);
void vg_keyfile_free(struct vg_keyfile *kf);
/* The keys of one agent, or NULL. */
const struct agent_auth *vg_keyfile_get(const struct vg_keyfile *kf, __u64 agent_id);
/* Parse 32 hex digits. */
int vg_key_parse(const char *hex, struct vigil_key *k);
void vg_key_format(const struct vigil_key *k, char out[33]);
/* An agent's complete auth entry: its keys from kf (none if kf is NULL or
 * does not name it) and its group's policy from vigil_groups. */
void vg_auth_for(const struct vg_maps *m, const struct vg_keyfile *kf, __u64 agent_id,
		 const char *group, struct agent_auth *out);
/* Rewrite every registered agent's keys and policy, each agent's at once
 * (vg_auth_set). Returns how many agents have at least one key, or -1 after
 * saying why nothing changed. Callers hold the registry lock. */
long vg_auth_apply(const struct vg_maps *m, const struct vg_keyfile *kf);

#endif

// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/*
 * The agents file and the key file, into the maps: group policies
 * (allowlists, acknowledgements), new agents, keys (again on SIGHUP).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <bpf/bpf.h>
#include "common/log.h"
#include "common/registry.h"
#include "common/util.h"
#include "daemon/state.h"

/* The policy flags a group gets from the agents file (allow, ack lines). */
static __u32 agents_file_group_flags(const struct vg_config *c, const char *group)
{
	__u32 flags = 0;

	for (size_t i = 0; i < c->n_allow; i++)
		if (!strcmp(c->allow[i].group, group))
			flags |= VIGIL_AUTH_ALLOWLIST;
	for (size_t i = 0; i < c->n_ack; i++)
		if (!strcmp(c->ack[i], group))
			flags |= VIGIL_AUTH_ACK;
	return flags;
}

static int put_group(struct daemon *d, const struct vg_config *c, const char *group)
{
	struct group_policy p = { .flags = agents_file_group_flags(c, group) };
	__u32 gid = vigil_group_id(group, VIGIL_GROUP_LEN);

	vg_strlcpy(p.name, group, sizeof(p.name));
	if (bpf_map_update_elem(d->maps.groups, &gid, &p, BPF_ANY)) {
		pr_warn("writing the policy of group %s failed: %s\n", group, strerror(errno));
		return -1;
	}
	return 0;
}

/* Publish the agents file's group policies (allowlists, acknowledgements):
 * groups first (so registration picks up their flags), new prefixes before
 * stale ones go, so a source that stays allowed is never refused between. */
int vg_daemon_publish_groups(struct daemon *d, const struct vg_config *c)
{
	struct allow_key key, next, *prev = NULL;
	__u32 one = 1, gid, *gprev = NULL, gnext;
	struct group_policy p;

	for (size_t i = 0; i < c->n_allow; i++) {
		if (put_group(d, c, c->allow[i].group) ||
		    bpf_map_update_elem(d->maps.allow, &c->allow[i].key, &one, BPF_ANY)) {
			pr_warn("writing the allowlist of group %s failed: %s\n", c->allow[i].group,
				strerror(errno));
			return -1;
		}
	}
	for (size_t i = 0; i < c->n_ack; i++)
		if (put_group(d, c, c->ack[i]))
			return -1;
	while (bpf_map_get_next_key(d->maps.allow, prev, &next) == 0) {
		bool keep = false;

		key = next;
		prev = &key;
		for (size_t i = 0; i < c->n_allow && !keep; i++)
			keep = !memcmp(&c->allow[i].key, &key, sizeof(key));
		if (!keep && bpf_map_delete_elem(d->maps.allow, &key) == 0)
			prev = NULL; /* restart the walk after a delete */
	}
	while (bpf_map_get_next_key(d->maps.groups, gprev, &gnext) == 0) {
		gid = gnext;
		gprev = &gid;
		if (bpf_map_lookup_elem(d->maps.groups, &gid, &p) == 0 && !agents_file_group_flags(c, p.name) &&
		    bpf_map_delete_elem(d->maps.groups, &gid) == 0)
			gprev = NULL;
	}
	return 0;
}

int vg_daemon_register(struct daemon *d, const struct vg_config *c)
{
	__u32 hint = 0, added = 0, kept = 0;
	int lock = vg_registry_lock(d->o->load.pin_root), ret = 0;

	for (size_t i = 0; i < c->n; i++) {
		struct vg_agent_def def = c->agents[i];
		int err;

		vg_auth_for(&d->maps, d->o->keys_path ? d->keys : NULL, def.id, def.group, &def.auth);
		err = vg_floors_offer(&d->floors, def.id) ? -EIO : vg_agent_add(&d->maps, &def, &hint);

		if (err == 0) {
			added++;
		} else if (err == -EEXIST) {
			kept++; /* adopted instance already watches it: keep its state */
		} else {
			pr_warn("registering agent %llu failed: %s%s\n",
				(unsigned long long)c->agents[i].id, strerror(-err),
				err == -ENOSPC ? " (capacity is fixed at load: 'vigil detach', then run with "
						 "a larger --max-agents)" : "");
			ret = -1;
			break;
		}
	}
	vg_registry_unlock(lock);
	pr_info("agents: %u registered, %u already watched\n", added, kept);
	return ret;
}

/* Rewrite every registered agent's keys and policy from d->keys. */
int vg_daemon_apply_keys(struct daemon *d)
{
	int lock = vg_registry_lock(d->o->load.pin_root);
	long keyed = vg_auth_apply(&d->maps, d->keys);

	vg_registry_unlock(lock);
	if (keyed < 0)
		return -1;
	pr_info("keys: %zu agents in %s, %ld registered agents keyed\n", d->keys->agents.n,
		d->o->keys_path, keyed);
	return 0;
}

/* (Re)load the key file and rewrite every agent's keys and policy. */
int vg_daemon_reload_keys(struct daemon *d)
{
	struct vg_keyfile kf;

	if (!d->o->keys_path)
		return 0;
	if (vg_keyfile_load(d->o->keys_path, true, &kf))
		return -1;
	vg_keyfile_free(d->keys);
	*d->keys = kf;
	return vg_daemon_apply_keys(d);
}


// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/* Monitors watching each other: the daemon as an agent of its peers (peers.h). */
#include <errno.h>
#include <string.h>
#include "common/log.h"
#include "daemon/peers.h"

/* Agent id's key in a key file, as the agent library takes it: key 0 if it
 * has one, else key 1. false when the file has neither. */
static bool find_key(const struct vg_keyfile *kf, __u64 id, __u8 out[16], __u8 *key_id)
{
	const struct agent_auth *a = vg_keyfile_get(kf, id);

	if (!a || !(a->valid & 3))
		return false;
	*key_id = a->valid & 1 ? 0 : 1;
	for (int j = 0; j < 16; j++) /* vigil_key_from_bytes() backwards */
		out[j] = (__u8)((j < 8 ? a->key[*key_id].k0 : a->key[*key_id].k1) >> (8 * (j % 8)));
	return true;
}

int vg_peers_check(struct vg_peers *p, const struct vg_keyfile *keys, bool keys_given,
		   __u16 port)
{
	if (!p->targets.n) {
		if (p->id) {
			pr_warn("--peer-id: no --peer to beat to\n");
			return 2;
		}
		return 0;
	}
	if (!p->id) {
		pr_warn("--peer: give --peer-id, this monitor's agent id in its peers' agents "
			"files\n");
		return 2;
	}
	vg_targets_set_port(&p->targets, port);
	if (keys_given)
		p->has_key = find_key(keys, p->id, p->key, &p->key_id);
	for (unsigned i = 0; i < p->targets.n; i++) {
		const struct vg_target *t = &p->targets.t[i];
		struct vigil_agent_monitor *m = &p->mons[i];
		struct vg_keyfile kf = {};

		m->address = t->addr;
		m->port = t->port;
		if (t->keys_path) {
			/* The key this peer knows us by, from its own key set. */
			if (vg_keyfile_load(t->keys_path, true, &kf))
				return 2;
			m->has_key = find_key(&kf, p->id, m->key, &m->key_id);
			vg_keyfile_free(&kf);
			if (!m->has_key) {
				pr_warn("--peer %s: %s has no key for agent %llu (--peer-id)\n",
					t->addr, t->keys_path, (unsigned long long)p->id);
				return 2;
			}
		} else if (keys_given && !p->has_key) {
			pr_warn("--peer %s: no key for agent %llu (--peer-id) in --keys; add this "
				"monitor's key to the key set it shares with its peers, or give the "
				"peer's own (--peer ADDR@FILE)\n", t->addr,
				(unsigned long long)p->id);
			return 2;
		}
	}
	return 0;
}

int vg_peers_start(const struct vg_peers *p, struct vigil_agent **out)
{
	struct vigil_agent_config c = {
		.agent_id = p->id,
		.monitors = p->mons,
		.n_monitors = p->targets.n,
		.has_key = p->has_key,
		.key_id = p->key_id,
		.interval_ms = p->interval_ms,
		/* Peers run --no-auth exactly when no key is known for them. */
		.allow_unsigned_acks = !p->has_key,
	};

	*out = NULL;
	if (!p->targets.n)
		return 0;
	memcpy(c.key, p->key, sizeof(c.key));
	*out = vigil_agent_start(&c);
	if (!*out) {
		pr_warn("peers: starting the beats to the peer monitors failed: %s\n",
			strerror(errno));
		return -1;
	}
	pr_info("peers: beating every %u ms as agent %llu to %u peer monitor(s)\n",
		p->interval_ms, (unsigned long long)p->id, p->targets.n);
	return 0;
}

void vg_peers_stop(struct vigil_agent *a, bool leave)
{
	if (a)
		vigil_agent_stop(a, leave);
}

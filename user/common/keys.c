// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <bpf/bpf.h>
#include "common/keys.h"
#include "common/log.h"
#include "common/registry.h"
#include "common/secret.h"
#include "common/util.h"

int vg_key_parse(const char *hex, struct vigil_key *k)
{
	__u8 b[16];

	if (strlen(hex) != 32)
		return -1;
	for (int i = 0; i < 16; i++) {
		unsigned int v;

		if (!isxdigit((unsigned char)hex[2 * i]) || !isxdigit((unsigned char)hex[2 * i + 1]) ||
		    sscanf(hex + 2 * i, "%2x", &v) != 1)
			return -1;
		b[i] = (__u8)v;
	}
	vigil_key_from_bytes(k, b);
	return 0;
}

void vg_key_format(const struct vigil_key *k, char out[33])
{
	static const char hex[] = "0123456789abcdef";

	for (int i = 0; i < 16; i++) {
		__u8 b = (__u8)((i < 8 ? k->k0 : k->k1) >> (8 * (i % 8)));

		out[2 * i] = hex[b >> 4];
		out[2 * i + 1] = hex[b & 15];
	}
	out[32] = '\0';
}

/* `AGENT-ID KEY-ID KEY` */
static int key_line(void *ctx, char *line, const char *path, int lineno)
{
	struct vg_keyfile *kf = ctx;
	char *f[4], *save = NULL, *end, *id_s, *kid_s, *hex;
	struct agent_auth *e;
	struct vigil_key k;
	unsigned long long id;
	int n = 0;

	/* Whole fields, whatever their length: a width-limited scanf would
	 * split an over-long id into an id and a key id, silently. */
	for (char *t = strtok_r(line, " \t", &save); t && n < 4;
	     t = strtok_r(NULL, " \t", &save))
		f[n++] = t;
	if (n != 3) {
		pr_warn("%s:%d: expected 'AGENT-ID KEY-ID KEY' (3 fields), got %d\n", path, lineno,
			n);
		return -1;
	}
	id_s = f[0], kid_s = f[1], hex = f[2];
	errno = 0;
	id = strtoull(id_s, &end, 10);
	if (!isdigit((unsigned char)id_s[0]) || *end || errno || id == 0) {
		pr_warn("%s:%d: agent id '%.40s' is not a whole number from 1 to 2^64-1\n", path,
			lineno, id_s);
		return -1;
	}
	if (strcmp(kid_s, "0") && strcmp(kid_s, "1")) {
		pr_warn("%s:%d: key id '%s' must be 0 or 1\n", path, lineno, kid_s);
		return -1;
	}
	if (vg_key_parse(hex, &k)) {
		pr_warn("%s:%d: key must be 32 hex digits (128 bits)\n", path, lineno);
		return -1;
	}
	e = vg_idtab_add(&kf->agents, id);
	if (!e) {
		pr_warn("%s:%d: out of memory\n", path, lineno);
		return -1;
	}
	n = kid_s[0] - '0';
	if (e->valid & (1u << n)) {
		pr_warn("%s:%d: agent %llu key %d is given twice\n", path, lineno, id, n);
		return -1;
	}
	e->key[n] = k;
	e->valid |= 1u << n;
	return 0;
}

int vg_keyfile_load(const char *path, bool strict, struct vg_keyfile *kf)
{
	struct stat st;
	int ret = -1;
	FILE *f;

	memset(kf, 0, sizeof(*kf));
	kf->agents.size = sizeof(struct agent_auth);
	f = fopen(path, "r");
	if (!f) {
		pr_warn("%s: cannot open key file: %s\n", path, strerror(errno));
		return -1;
	}
	if (strict && (fstat(fileno(f), &st) || st.st_uid != 0 || (st.st_mode & 077)))
		pr_warn("%s: key file must be owned by root with mode 0600 (it is uid %u, mode %04o); "
			"fix with: chown root %s && chmod 600 %s\n", path, (unsigned)st.st_uid,
			(unsigned)(st.st_mode & 07777), path, path);
	else if (strict || !vg_private_file_check(fileno(f), path, "key file"))
		ret = vg_each_line(f, path, key_line, kf) ? -1 : 0;
	fclose(f);
	if (ret)
		vg_keyfile_free(kf);
	return ret;
}

void vg_keyfile_free(struct vg_keyfile *kf)
{
	vg_idtab_free(&kf->agents);
}

const struct agent_auth *vg_keyfile_get(const struct vg_keyfile *kf, __u64 agent_id)
{
	return vg_idtab_get(&kf->agents, agent_id);
}

void vg_auth_for(const struct vg_maps *m, const struct vg_keyfile *kf, __u64 agent_id,
		 const char *group, struct agent_auth *out)
{
	const struct agent_auth *k = kf ? vg_keyfile_get(kf, agent_id) : NULL;

	memset(out, 0, sizeof(*out));
	if (k) {
		out->key[0] = k->key[0];
		out->key[1] = k->key[1];
		out->valid = k->valid;
	}
	out->group_id = vigil_group_id(group, VIGIL_GROUP_LEN);
	out->flags = vg_group_flags(m, group);
}

struct apply_ctx {
	const struct vg_maps *m;
	const struct vg_keyfile *kf;
	__u32 *slots;
	struct agent_auth *auths;
	size_t n, cap;
	long keyed;
};

static int collect_one(__u32 slot, const struct vg_agent *ag, void *ctx)
{
	struct apply_ctx *a = ctx;

	if (a->n == a->cap) {
		size_t cap = a->cap ? 2 * a->cap : 1024;
		__u32 *sl = realloc(a->slots, cap * sizeof(*sl));
		struct agent_auth *au = sl ? realloc(a->auths, cap * sizeof(*au)) : NULL;

		if (sl)
			a->slots = sl;
		if (!au)
			return -ENOMEM;
		a->auths = au;
		a->cap = cap;
	}
	vg_auth_for(a->m, a->kf, ag->s.agent_id, ag->i.group, &a->auths[a->n]);
	a->keyed += a->auths[a->n].valid != 0;
	a->slots[a->n++] = slot;
	return 0;
}

long vg_auth_apply(const struct vg_maps *m, const struct vg_keyfile *kf)
{
	struct apply_ctx a = { .m = m, .kf = kf };
	int err = vg_agent_foreach(m, collect_one, &a);

	/* All agents in one swap: one grace period, however many there are. */
	if (!err)
		err = vg_auth_set(m, a.n, a.slots, a.auths);
	if (err) {
		pr_warn("writing the agents' keys failed: %s; the previous keys stay in force\n",
			strerror(-err));
		a.keyed = -1;
	}
	free(a.slots);
	free(a.auths);
	return a.keyed;
}

// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
#include <stdlib.h>
#include <string.h>
#include "common/u64map.h"
#include "common/util.h"

static size_t slot_of(__u64 key, size_t cap)
{
	key ^= key >> 33;
	key *= 0xff51afd7ed558ccdULL;
	key ^= key >> 33;
	return (size_t)key & (cap - 1);
}

void u64map_free(struct u64map *m)
{
	free(m->keys);
	free(m->vals);
	m->keys = m->vals = NULL;
	m->cap = m->len = 0;
}

static int grow(struct u64map *m)
{
	struct u64map n = { .cap = m->cap ? m->cap * 2 : 1024 };

	n.keys = calloc(n.cap, sizeof(__u64));
	n.vals = calloc(n.cap, sizeof(__u64));
	if (!n.keys || !n.vals) {
		free(n.keys);
		free(n.vals);
		return -1;
	}
	for (size_t i = 0; i < m->cap; i++)
		if (m->keys[i])
			u64map_put(&n, m->keys[i], m->vals[i]);
	u64map_free(m);
	*m = n;
	return 0;
}

int u64map_put(struct u64map *m, __u64 key, __u64 val)
{
	size_t i;

	if ((m->len + 1) * 2 > m->cap && grow(m))
		return -1;
	for (i = slot_of(key, m->cap); m->keys[i] && m->keys[i] != key; i = (i + 1) & (m->cap - 1))
		;
	if (!m->keys[i]) {
		m->keys[i] = key;
		m->len++;
	}
	m->vals[i] = val;
	return 0;
}

bool u64map_get(const struct u64map *m, __u64 key, __u64 *val)
{
	if (!m->cap)
		return false;
	for (size_t i = slot_of(key, m->cap); m->keys[i]; i = (i + 1) & (m->cap - 1)) {
		if (m->keys[i] == key) {
			if (val)
				*val = m->vals[i];
			return true;
		}
	}
	return false;
}

void *vg_idtab_get(const struct vg_idtab *t, __u64 id)
{
	__u64 pos;

	return u64map_get(&t->index, id, &pos) ? vg_idtab_row(t, pos - 1) : NULL;
}

void *vg_idtab_add(struct vg_idtab *t, __u64 id)
{
	size_t cap_ids = t->cap; /* the two arrays grow together */
	void *row = vg_idtab_get(t, id);

	if (row)
		return row;
	if (vg_grow(&t->ids, &cap_ids, t->n, sizeof(*t->ids), 64) ||
	    vg_grow(&t->rows, &t->cap, t->n, t->size, 64) || u64map_put(&t->index, id, t->n + 1))
		return NULL;
	row = vg_idtab_row(t, t->n);
	memset(row, 0, t->size);
	t->ids[t->n++] = id;
	return row;
}

void vg_idtab_free(struct vg_idtab *t)
{
	size_t size = t->size;

	u64map_free(&t->index);
	free(t->ids);
	free(t->rows);
	memset(t, 0, sizeof(*t));
	t->size = size;
}

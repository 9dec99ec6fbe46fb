/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/* A small open-addressing hash map from u64 to u64 (key 0 is reserved),
 * for the daemon's bookkeeping: seen event sequences, per-agent records. */
#ifndef VIGIL_U64MAP_H
#define VIGIL_U64MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>

struct u64map {
	__u64 *keys;
	__u64 *vals;
	size_t cap; /* power of two */
	size_t len;
};

void u64map_free(struct u64map *m);
/* Insert or overwrite. key must not be 0. Returns 0 or -1 (out of memory). */
int u64map_put(struct u64map *m, __u64 key, __u64 val);
bool u64map_get(const struct u64map *m, __u64 key, __u64 *val);

/* Records of `size` bytes keyed by a u64 id, in one array in insertion
 * order (a record's place never changes): the key file's agents, the
 * policy's. Zero-initialise with .size set. */
struct vg_idtab {
	size_t size;
	struct u64map index; /* id -> place + 1 */
	__u64 *ids;
	void *rows;
	size_t n, cap;
};

static inline void *vg_idtab_row(const struct vg_idtab *t, size_t i)
{
	return (char *)t->rows + i * t->size;
}

/* The record of id, or NULL. */
void *vg_idtab_get(const struct vg_idtab *t, __u64 id);
/* The record of id, zeroed and added if it was not there; NULL when out of
 * memory. */
void *vg_idtab_add(struct vg_idtab *t, __u64 id);
void vg_idtab_free(struct vg_idtab *t);

#endif

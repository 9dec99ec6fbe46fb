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

#endif

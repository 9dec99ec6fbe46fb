/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * A BPF ring-buffer consumer that releases records only when told to.
 *
 * libbpf's ring_buffer__consume() advances the consumer position after each
 * record's callback, so a daemon killed between reading a record and making
 * it durable loses it for good. This reader hands out a batch, and the
 * caller advances past it (vg_ringbuf_release) only after the batch is
 * committed; a crash before that re-reads the batch on restart, where the
 * store's idempotent insert drops what was already recorded.
 */
#ifndef VIGIL_RINGBUF_H
#define VIGIL_RINGBUF_H

#include <stddef.h>
#include <linux/types.h>

struct vg_ringbuf;

typedef void (*vg_ringbuf_fn)(void *ctx, const void *data, __u32 len);

struct vg_ringbuf *vg_ringbuf_open(int map_fd);
void vg_ringbuf_close(struct vg_ringbuf *rb);
/* Wait up to timeout_ms for records (epoll on the map). */
int vg_ringbuf_wait(struct vg_ringbuf *rb, int timeout_ms);
/* Call fn for up to `max` records after the last released position without
 * releasing them. Returns the number of records handed out. */
long vg_ringbuf_peek(struct vg_ringbuf *rb, vg_ringbuf_fn fn, void *ctx, long max);
/* Release everything handed out by the last peek. */
void vg_ringbuf_release(struct vg_ringbuf *rb);
/* Bytes of records waiting after the last released position. */
unsigned long vg_ringbuf_backlog(struct vg_ringbuf *rb);

#endif

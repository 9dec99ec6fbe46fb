/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * A worker thread's stop flag and wake-up: the worker naps on it between
 * passes; whoever owns the worker wakes or stops it. Used by the alert
 * sinks and the exporter. The lock may also guard what the stopper must
 * not race with (the exporter's NATS connection).
 */
#ifndef VIGIL_WAKER_H
#define VIGIL_WAKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <linux/types.h>

struct vg_waker {
	pthread_mutex_t lock;
	pthread_cond_t wake; /* on CLOCK_MONOTONIC */
	atomic_bool stop;
};

void vg_waker_init(struct vg_waker *w);
void vg_waker_destroy(struct vg_waker *w);
static inline bool vg_waker_stopping(struct vg_waker *w)
{
	return atomic_load(&w->stop);
}
/* Sleep up to ms, or until woken or stopped. */
void vg_waker_nap(struct vg_waker *w, __u64 ms);
void vg_waker_stop(struct vg_waker *w);
/* pthread_create with every signal blocked in the new thread (and in the
 * threads it starts): the daemon's handlers run in its main thread, and a
 * peer that closes a pipe early gives EPIPE, not a SIGPIPE that ends the
 * process. Returns pthread_create's result. */
int vg_worker_start(pthread_t *t, void *(*fn)(void *), void *arg);

#endif

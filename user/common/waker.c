// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/* A worker thread's stop flag and wake-up (common/waker.h). */
#include <signal.h>
#include <time.h>
#include "common/util.h"
#include "common/waker.h"

void vg_waker_init(struct vg_waker *w)
{
	pthread_condattr_t ca;

	pthread_mutex_init(&w->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&w->wake, &ca);
	pthread_condattr_destroy(&ca);
	atomic_store(&w->stop, false);
}

void vg_waker_destroy(struct vg_waker *w)
{
	pthread_cond_destroy(&w->wake);
	pthread_mutex_destroy(&w->lock);
}

void vg_waker_nap(struct vg_waker *w, __u64 ms)
{
	struct timespec until;

	vg_timespec_after(&until, ms);
	pthread_mutex_lock(&w->lock);
	if (!vg_waker_stopping(w))
		pthread_cond_timedwait(&w->wake, &w->lock, &until);
	pthread_mutex_unlock(&w->lock);
}

void vg_waker_stop(struct vg_waker *w)
{
	pthread_mutex_lock(&w->lock);
	atomic_store(&w->stop, true);
	pthread_cond_broadcast(&w->wake);
	pthread_mutex_unlock(&w->lock);
}

int vg_worker_start(pthread_t *t, void *(*fn)(void *), void *arg)
{
	sigset_t all, old;
	int err;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	err = pthread_create(t, NULL, fn, arg);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return err;
}

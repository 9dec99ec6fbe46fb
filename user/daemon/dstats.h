/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * The daemon's own counters, shared between its threads (ring-buffer
 * consumer, alert worker, metrics server). Plain atomics: every field is
 * written by one thread and read by the metrics thread.
 */
#ifndef VIGIL_DSTATS_H
#define VIGIL_DSTATS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <linux/types.h>

/* Event delivery lag (kernel detection -> durable commit) histogram bounds,
 * in seconds, for the Prometheus histogram vigil_event_delivery_lag_seconds. */
#define VG_LAG_BUCKETS 12
static const double vg_lag_bounds[VG_LAG_BUCKETS] = {
	0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0,
};

struct vg_daemon_stats {
	atomic_bool ready;              /* initial drain and reconcile done */
	atomic_ullong started_wall_ns;
	atomic_ullong events_recorded;  /* new rows in the event log */
	atomic_ullong events_reconciled;
	atomic_ullong log_errors;       /* failed commits */
	atomic_ullong lag_count;
	atomic_ullong lag_sum_ns;
	atomic_ullong lag_bucket[VG_LAG_BUCKETS]; /* cumulative is computed when printed */
	atomic_ullong alerts_enqueued;
	atomic_ullong alerts_delivered;
	atomic_ullong alert_attempts_failed;
	atomic_ullong alerts_dead_lettered;
	atomic_ullong alerts_suppressed; /* withheld by flap damping */
	atomic_ullong agents_flapping;   /* gauge: agents whose alerts flap damping withholds */
	atomic_ullong alerts_resent;     /* firing alerts Alertmanager accepted again */
	atomic_ullong alert_resends_failed; /* re-send requests that failed */
	atomic_ullong alerts_firing;     /* gauge: what the last re-send kept firing */
	atomic_ullong alerts_pending;    /* gauge: rows in the outbox */
	atomic_ullong alerts_dead_letter_queue; /* gauge: rows in the dead-letter table */
	atomic_ullong remediations_run;
	atomic_ullong learned;
	atomic_ullong events_exported;   /* acknowledged by NATS JetStream (export.c) */
	atomic_ullong export_errors;     /* failed export steps, each retried */
};

/* Record one delivery lag sample. */
static inline void vg_dstats_lag(struct vg_daemon_stats *ds, __u64 lag_ns)
{
	double s = lag_ns / 1e9;

	atomic_fetch_add(&ds->lag_count, 1);
	atomic_fetch_add(&ds->lag_sum_ns, lag_ns);
	for (int i = 0; i < VG_LAG_BUCKETS; i++) {
		if (s <= vg_lag_bounds[i]) {
			atomic_fetch_add(&ds->lag_bucket[i], 1);
			break;
		}
	}
}

#endif

/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * Export of the event log to NATS JetStream (docs/fleet.md).
 *
 * A thread with its own connection to the event log publishes every event
 * row, in (instance_id, event_seq) order, to the subject vigil.events.<host>
 * as the shared JSON line format, each with the message id
 * <host>-<instance hex>-<event_seq>, so the stream drops a re-publication
 * within its duplicate window. Each publish waits for the stream's
 * acknowledgement (PubAck) before the next, and only then is the row
 * recorded as exported in the `export_cursor` table. While NATS is
 * unreachable the events simply wait in the log and the exporter retries
 * with backoff; a restart resumes at the cursor, after asking the stream
 * which of this host's messages it stored last (that closes the window
 * between a PubAck and the cursor's commit, whatever the duplicate window).
 *
 * A row that appears below the cursor (a transition recovered from the maps
 * after the ring buffer lost it, or a new instance whose random id sorts
 * below the current one) falls in a gap the exporter skipped; gaps are kept
 * in `export_gaps` and such rows are published when they appear, after the
 * rows already in the stream.
 */
#ifndef VIGIL_EXPORT_H
#define VIGIL_EXPORT_H

#include <stdbool.h>
#include <linux/types.h>
#include "daemon/natsauth.h"

struct vg_daemon_stats;

struct vg_export_cfg {
	const char *nats_urls; /* comma-separated NATS URLs; NULL: no export */
	const char *stream;    /* JetStream stream name */
	const char *host;      /* subject token and message-id prefix; NULL: the host name */
	__u32 replicas;        /* of the stream, when the exporter creates it */
	bool no_create;        /* the operator manages the stream */
	/* Authentication and TLS (daemon/natsauth.h): also the lease
	 * replication's (lease_repl.h). */
	struct vg_nats_files auth;
};

#define VG_EXPORT_STREAM "VIGIL_EVENTS"
#define VG_EXPORT_SUBJECT_PREFIX "vigil.events."
#define VG_EXPORT_DUPLICATE_WINDOW_S 120
/* Each exporter puts {host, interval_ms, instance, event_seq, time_ns} under
 * its host name in the key-value bucket <stream>_MONITORS every
 * VG_EXPORT_PRESENCE_MS: how `vigil fleet merge` knows which monitors are
 * live (docs/fleet.md). */
#define VG_EXPORT_PRESENCE_SUFFIX "_MONITORS"
#define VG_EXPORT_PRESENCE_MS 1000

void vg_export_cfg_default(struct vg_export_cfg *cfg);

/* The default host: the host name, as a subject token (also the lease
 * replication's default monitor name). */
void vg_export_default_host(char *out, size_t len);

/* The settings a table cannot check: the URL list, the stream name, the
 * host token and the credential files. One line and -1 if wrong. */
int vg_export_cfg_check(const struct vg_export_cfg *cfg);

struct vg_exporter;

/* Start exporting the event log at db_path (which must exist). cfg is
 * copied; ds (may be NULL) receives the export counters. Nothing is started,
 * and *out is NULL, when cfg->nats_urls is NULL. NATS need not be reachable:
 * the exporter connects, and creates the stream, in the background. */
int vg_exporter_start(const char *db_path, const struct vg_export_cfg *cfg,
		      struct vg_daemon_stats *ds, struct vg_exporter **out);
/* Stop promptly: a publish in flight is abandoned (it is published again,
 * and deduplicated, by the next run). NULL is a no-op. */
void vg_exporter_stop(struct vg_exporter *x);

#endif

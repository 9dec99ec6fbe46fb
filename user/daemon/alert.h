/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * Alert delivery (docs/operations.md): at-least-once, through
 * the event log's `outbox` table.
 *
 * The daemon calls vg_alert_enqueue() for an event inside the same open
 * transaction that records the event, so an alert is durable exactly when its
 * event is: a crash before the commit loses both (and the ring buffer hands
 * the event over again), a crash after it loses neither. The alerter then
 * delivers every outbox row from threads of its own, one per sink, each with
 * its own SQLite connection: a slow or hanging sink delays neither the
 * ring-buffer consumer nor the other sinks, and every attempt is bounded by
 * the timeout. A row leaves the outbox when its sink accepted it; a failed
 * attempt is retried after a full-jitter exponential backoff; after
 * max_attempts failures the row moves to the `dlq` table, from which
 * `vigil dlq replay` puts it back.
 *
 * Alertmanager ends an alert that its client stops sending. With the
 * `alertmanager` format, every firing alert carries an endsAt
 * VG_ALERT_VALIDITY_PERIODS re-send periods ahead, and the webhook worker
 * re-sends, every resend_s, each alert Alertmanager accepted whose agent is
 * still SUSPECT or DEAD: what it accepted is kept per agent in the log's
 * `alertmanager_alerts` table, the agent's state is read from the maps, so a
 * restarted daemon keeps the alerts of the one before firing.
 */
#ifndef VIGIL_ALERT_H
#define VIGIL_ALERT_H

#include <stdbool.h>
#include <linux/types.h>

struct sqlite3;
struct vg_event_view;
struct vg_daemon_stats;
struct vg_maps;

struct vg_alert_cfg {
	const char *exec_cmd;    /* run via /bin/sh -c; NULL: no exec sink */
	const char *webhook_url; /* POST target; NULL: no webhook sink */
	bool alertmanager;       /* webhook body in Alertmanager v2 form */
	bool use_syslog;
	__u32 max_attempts;      /* failures before an alert is dead-lettered */
	__u64 backoff_base_ms, backoff_max_ms, timeout_ms;
	__u32 resend_s;          /* alertmanager: firing alerts are re-sent this often */
};

#define VG_ALERT_MAX_ATTEMPTS 8
#define VG_ALERT_BACKOFF_BASE_MS 500
#define VG_ALERT_BACKOFF_MAX_MS 60000
#define VG_ALERT_TIMEOUT_MS 5000
#define VG_ALERT_RESEND_S 60
/* A firing alert sent to Alertmanager ends this many re-send periods later
 * unless it is sent again (as Prometheus does: 4 x its resend delay). */
#define VG_ALERT_VALIDITY_PERIODS 4

void vg_alert_cfg_default(struct vg_alert_cfg *cfg);
/* Is any sink configured? */
bool vg_alert_enabled(const struct vg_alert_cfg *cfg);

/* The settings a table cannot check: an exec command that is not empty, a
 * webhook that is an http:// or https:// URL. One line and -1 if not. */
int vg_alert_cfg_check(const struct vg_alert_cfg *cfg);

/* Queue one alert per configured sink for an event, as outbox rows due now.
 * Call it inside the transaction that records the event. Returns the number
 * of rows queued, or -1 on a database error (already reported). */
int vg_alert_enqueue(struct sqlite3 *db, const struct vg_alert_cfg *cfg, __u64 instance_id,
		     const struct vg_event_view *v);

struct vg_alerter;

/* Start delivering from the outbox of the event log at db_path (which must
 * exist) for the instance whose maps are given (they must stay open until
 * vg_alerter_stop). cfg is copied; ds receives the alert counters.
 * Nothing is started, and *out is NULL, when no sink is configured. */
int vg_alerter_start(const char *db_path, const struct vg_alert_cfg *cfg,
		     const struct vg_maps *maps, __u64 instance_id, struct vg_daemon_stats *ds,
		     struct vg_alerter **out);
/* Stop promptly: an attempt in flight is abandoned (the row stays due and is
 * delivered again by the next run). NULL is a no-op. */
void vg_alerter_stop(struct vg_alerter *a);

#endif

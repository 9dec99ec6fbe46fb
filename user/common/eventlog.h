/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * The durable event log (docs/operations.md): an SQLite database in WAL
 * mode with synchronous=FULL, one append-only row per event keyed by
 * (instance, event_seq), so inserting the same event twice is a no-op and a
 * missing sequence number is a visible gap. Optionally every new event is
 * also appended to a JSON-lines file (--events-file) for tools like jq.
 *
 * Appends go into an open transaction; vg_eventlog_sync() commits it (one
 * fsync per batch). The daemon releases ring-buffer records only after that
 * commit, so nothing the kernel reported is lost or recorded twice: an
 * event already in the database (its unique key, or a range of rejections
 * that covers it) is never recorded again.
 *
 * REJECTED records (anyone can cause up to 10 a second) are not one row
 * each: consecutive ones within a 10-minute window are one row covering
 * event_seq .. event_seq_last ("open" while it may still grow), and a
 * breakdown by window, reason and source (at most VG_REJECT_SOURCES keys
 * per window, the rest as source "other") goes to the table `rejections`,
 * kept --retain-rejections-days. Nothing in memory grows with them.
 */
#ifndef VIGIL_EVENTLOG_H
#define VIGIL_EVENTLOG_H

#include <stdbool.h>
#include <stdio.h>
#include "vigil/maps.h"
#include "common/event.h"
#include "common/u64map.h"

struct sqlite3;
struct sqlite3_stmt;

struct vg_eventlog {
	struct sqlite3 *db;
	const char *path;
	FILE *jsonl;              /* optional export, NULL if none */
	const char *jsonl_path;
	__u64 instance_id;
	struct u64map agent_last; /* agent_id -> (event_seq << 3 | state), this instance */
	/* event_seq -> 1: in the export but not (yet) committed: written in the
	 * transaction in progress, or found after the last commit's end of the
	 * file at open (a crash between the two). Emptied at each commit. */
	struct u64map jsonl_seen;
	struct vg_reject_run {    /* the row of rejections that may still grow */
		bool open;
		__u64 first, last;    /* the event_seq range it covers */
		__u64 window_ns;      /* the wall-clock start of its window */
	} run;
	__u64 written;
	bool in_txn;
	struct sqlite3_stmt *stmt[8]; /* prepared once each (eventlog.c's enum stmt) */
	bool failed;              /* an append failed: the next sync rolls back */
	/* Run for each newly recorded event, inside its transaction, so that
	 * what it writes (the daemon queues the event's alerts) is exactly as
	 * durable as the event: committed with it, or rolled back with it. */
	void (*on_recorded)(void *ctx, const struct vg_event_view *v);
	void *on_recorded_ctx;
};

/* Open (creating if needed) the database and, if jsonl_path, the export. */
int vg_eventlog_open(struct vg_eventlog *log, const char *db_path, const char *jsonl_path,
		     __u64 instance_id);
void vg_eventlog_close(struct vg_eventlog *log);
/* Is event_seq recorded (a row of its own, or covered by rejections)? Asks
 * the database. */
bool vg_eventlog_has(struct vg_eventlog *log, __u64 event_seq);
/* Last recorded (event_seq, state) of an agent; false if none. */
bool vg_eventlog_agent_last(const struct vg_eventlog *log, __u64 agent_id, __u64 *seq, __u32 *state);
/* Record an event (skipped if already recorded), then run on_recorded for
 * it. Returns 1 if new, 0 if known, -1 on a database error; after an error
 * every append fails until the next sync. */
int vg_eventlog_append(struct vg_eventlog *log, const struct vg_event_view *v);
/* Commit what was appended since the last call (durable on return). Returns
 * -1 if an append failed since the last call or the commit failed: then
 * nothing since the last sync is recorded (rolled back), and the caller must
 * not release those events; appending them again is the retry. */
int vg_eventlog_sync(struct vg_eventlog *log);
/* Now and then (the daemon: once a second): close the row of rejections
 * when its window has ended, so that it is exported; committed. -1 if that
 * failed (retried at the next call). */
int vg_eventlog_tick(struct vg_eventlog *log);
/* Record a policy notice (flap suppression, release, remediation) in the
 * current transaction. */
int vg_eventlog_notice(struct vg_eventlog *log, __u64 agent_id, const char *kind,
		       const char *detail);
/* The columns of an event row, in the order vg_event_from_row() reads them:
 * "SELECT " VG_EVENT_COLS " FROM events ...". Extra columns may follow. */
#define VG_EVENT_COLS                                                                      \
	"instance_id, event_seq, agent_id, kind, state, prev_state, name, grp, slot, seq,"  \
	" incarnation, interval_ms, last_seen_ns, detected_ns, deadline_ns, reason, source," \
	" detected_wall_ns, reconciled, recorded_wall_ns, flags, aux_ns, event_seq_last, open"
/* The last event_seq a row covers (event_seq, but for rejections). */
#define VG_EVENT_SEQ_END "coalesce(event_seq_last, event_seq)"
/* Rebuild a recorded event and its view from such a row, so that it prints
 * as it did when it was recorded. v's strings point into the statement: valid
 * until it steps again. */
void vg_event_from_row(struct sqlite3_stmt *st, struct vigil_event *e, struct vg_event_view *v);
/* A text column, "" for NULL. */
const char *vg_col_text(struct sqlite3_stmt *st, int i);
/* Open the database read-only for queries (`vigil log`, `vigil events`). */
struct sqlite3 *vg_eventlog_open_ro(const char *db_path);
/* Retention: remove events older than max_age_s and/or beyond the newest
 * max_events, and the breakdown of rejections older than rejections_age_s
 * (0 = no limit). */
int vg_log_prune(const char *db_path, unsigned long long max_age_s, unsigned long long max_events,
		 unsigned long long rejections_age_s, long *removed);

/* Rejections: the length of a window, and the (reason, source) keys each
 * window counts apart before the rest go to source "other". */
#define VG_REJECT_WINDOW_NS (600 * 1000000000ull)
#define VG_REJECT_SOURCES 16
#define VG_REJECT_RETAIN_DAYS 7

/* The lease tables: tokens, the grant history, transfer requests. */
extern const char vg_lease_schema[];

/* Where the daemon keeps its log unless --db says otherwise. */
#define VIGIL_DEFAULT_DB "/var/lib/vigil/vigil.db"

#endif

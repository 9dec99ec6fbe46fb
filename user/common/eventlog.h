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
 * commit, so nothing the kernel reported is lost or recorded twice.
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
	__u64 instance_id;
	struct u64map seen;       /* event_seq -> 1, this instance */
	struct u64map agent_last; /* agent_id -> (event_seq << 3 | state), this instance */
	struct u64map jsonl_seen; /* event_seq -> 1 already in the export, this instance */
	__u64 max_seq;
	__u64 written;
	bool in_txn;
	struct sqlite3_stmt *insert_stmt; /* prepared once, reused per event */
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
bool vg_eventlog_has(const struct vg_eventlog *log, __u64 event_seq);
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
/* Record a policy notice (flap suppression, release, remediation) in the
 * current transaction. */
int vg_eventlog_notice(struct vg_eventlog *log, __u64 agent_id, const char *kind,
		       const char *detail);
/* The columns of an event row, in the order vg_event_from_row() reads them:
 * "SELECT " VG_EVENT_COLS " FROM events ...". Extra columns may follow. */
#define VG_EVENT_COLS                                                                      \
	"instance_id, event_seq, agent_id, kind, state, prev_state, name, grp, slot, seq,"  \
	" incarnation, interval_ms, last_seen_ns, detected_ns, deadline_ns, reason, source," \
	" detected_wall_ns, reconciled, recorded_wall_ns, flags, aux_ns"
/* Rebuild a recorded event and its view from such a row, so that it prints
 * as it did when it was recorded. v's strings point into the statement: valid
 * until it steps again. */
void vg_event_from_row(struct sqlite3_stmt *st, struct vigil_event *e, struct vg_event_view *v);
/* A text column, "" for NULL. */
const char *vg_col_text(struct sqlite3_stmt *st, int i);
/* Open the database read-only for queries (`vigil log`, `vigil events`). */
struct sqlite3 *vg_eventlog_open_ro(const char *db_path);
/* Retention: remove events older than max_age_s and/or beyond the newest
 * max_events (0 = no limit). */
int vg_log_prune(const char *db_path, unsigned long long max_age_s, unsigned long long max_events,
		 long *removed);

/* The lease tables: tokens, the grant history, transfer requests. */
extern const char vg_lease_schema[];

/* Where the daemon keeps its log unless --db says otherwise. */
#define VIGIL_DEFAULT_DB "/var/lib/vigil/vigil.db"

#endif

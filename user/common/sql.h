/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * SQLite, the way the event log's users need it: one statement, its
 * parameters bound from a format, run to the end. In the format, each
 * character binds the next argument to the next parameter (?1, ?2, ...):
 *
 *   'i'  an integer, as a long long (cast it: (long long)x)
 *   't'  a text (const char *; NULL binds NULL), copied
 *
 *   vg_sql_run(db, "UPDATE outbox SET attempts = ?2 WHERE id = ?1", "ii", id, n);
 */
#ifndef VIGIL_SQL_H
#define VIGIL_SQL_H

#include <stdbool.h>
#include <linux/types.h>

struct sqlite3;
struct sqlite3_stmt;

/* Statements without parameters (several, separated by ';'). */
bool vg_sql_exec(struct sqlite3 *db, const char *sql);
/* The same, or -1 after a line naming `what` ("event log: committing
 * events failed: database is locked"); 0 when it ran. */
int vg_sql_exec_or_say(struct sqlite3 *db, const char *sql, const char *what);
/* One statement; true when it ran to completion. */
bool vg_sql_run(struct sqlite3 *db, const char *sql, const char *fmt, ...);
/* A statement run once per row of a hot loop, parsed once: prepare it
 * (NULL on failure: sqlite3_errmsg says why), then run it with vg_sql_step
 * as often as needed, and sqlite3_finalize it. */
struct sqlite3_stmt *vg_sql_prepare(struct sqlite3 *db, const char *sql);
/* Bind the arguments, run it to the end and reset it for the next run;
 * true when it ran to completion. */
bool vg_sql_step(struct sqlite3_stmt *st, const char *fmt, ...);
/* The first column of the first row, as an integer: true with *out set, or
 * false (*out 0) when there is no row or the statement fails. */
bool vg_sql_u64(struct sqlite3 *db, __u64 *out, const char *sql, const char *fmt, ...);

#endif

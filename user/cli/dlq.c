// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/*
 * `vigil dlq list|replay`: the alerts that failed max-attempts times (the
 * event log's `dlq` table). Replay moves them back into the outbox, due now
 * with no attempts counted; the running daemon's alert worker for their sink
 * delivers them.
 */
#include <stdio.h>
#include <string.h>
#include <sqlite3.h>
#include "cli/cli.h"
#include "common/eventlog.h"
#include "common/json.h"
#include "common/log.h"
#include "common/options.h"
#include "common/util.h"

static void print_row_json(sqlite3_stmt *st, bool outbox, const char *created,
			   const char *when)
{
	struct vg_json j;
	char inst[17];

	snprintf(inst, sizeof(inst), "%016llx", (unsigned long long)sqlite3_column_int64(st, 2));
	vg_json_begin(&j, stdout);
	vg_json_obj(&j);
	vg_json_s64_field(&j, "id", sqlite3_column_int64(st, 0));
	vg_json_str_field(&j, "sink", vg_col_text(st, 1));
	vg_json_str_field(&j, "instance", inst);
	vg_json_s64_field(&j, "event_seq", sqlite3_column_int64(st, 3));
	vg_json_u64_field(&j, "agent_id", (__u64)sqlite3_column_int64(st, 4));
	vg_json_s64_field(&j, "attempts", sqlite3_column_int(st, 5));
	vg_json_str_field(&j, "last_error", vg_col_text(st, 6));
	vg_json_str_field(&j, "created", created);
	vg_json_str_field(&j, outbox ? "next_attempt" : "failed", when);
	/* The payload is the event as the daemon printed it: JSON already. */
	vg_json_raw_field(&j, "event", vg_col_text(st, 9));
	vg_json_end(&j);
}

static int dlq_list(const char *db_path, bool json, bool outbox)
{
	/* Both tables read the same way; for the outbox, "when" is the next attempt. */
	const char *sql = outbox ?
		"SELECT id, sink, instance_id, event_seq, agent_id, attempts, last_error,"
		" created_wall_ns, next_attempt_wall_ns, payload FROM outbox ORDER BY id" :
		"SELECT id, sink, instance_id, event_seq, agent_id, attempts, last_error,"
		" created_wall_ns, failed_wall_ns, payload FROM dlq ORDER BY id";
	sqlite3 *db = vg_eventlog_open_ro(db_path);
	sqlite3_stmt *st;
	int rc;

	if (!db)
		return 1;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
		pr_warn("%s: cannot read the %s: %s (is it a vigil event log?)\n", db_path,
			outbox ? "outbox" : "dead-letter queue", sqlite3_errmsg(db));
		sqlite3_close(db);
		return 1;
	}
	if (!json)
		printf("%-6s %-8s %8s %-10s %8s %-24s %s\n", "ID", "SINK", "EVENT", "AGENT",
		       "ATTEMPTS", outbox ? "NEXT-ATTEMPT" : "FAILED", "LAST-ERROR");
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		char created[40], when[40];

		vg_fmt_wall((__u64)sqlite3_column_int64(st, 7), created, sizeof(created));
		vg_fmt_wall((__u64)sqlite3_column_int64(st, 8), when, sizeof(when));
		if (!json) {
			printf("%-6lld %-8s %8lld %-10llu %8d %-24s %s\n",
			       (long long)sqlite3_column_int64(st, 0), vg_col_text(st, 1),
			       (long long)sqlite3_column_int64(st, 3),
			       (unsigned long long)sqlite3_column_int64(st, 4),
			       sqlite3_column_int(st, 5), when, vg_col_text(st, 6));
			continue;
		}
		print_row_json(st, outbox, created, when);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		pr_warn("%s: reading failed: %s\n", db_path, sqlite3_errmsg(db));
	sqlite3_close(db);
	return rc == SQLITE_DONE ? 0 : 1;
}

static int dlq_replay(const char *db_path, __u64 id)
{
	static const char move[] =
		"INSERT INTO outbox (sink, instance_id, event_seq, agent_id, payload, attempts,"
		" next_attempt_wall_ns, last_error, created_wall_ns)"
		" SELECT sink, instance_id, event_seq, agent_id, payload, 0, ?2, last_error,"
		" created_wall_ns FROM dlq WHERE ?1 = 0 OR id = ?1 ORDER BY id";
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int moved = -1;

	if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
		pr_warn("%s: cannot open event log: %s\n", db_path,
			db ? sqlite3_errmsg(db) : "out of memory");
		sqlite3_close(db);
		return 1;
	}
	sqlite3_busy_timeout(db, 5000);
	if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, move, -1, &st, NULL) != SQLITE_OK)
		goto fail;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)id);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)vg_wall_ns());
	if (sqlite3_step(st) != SQLITE_DONE)
		goto fail;
	moved = sqlite3_changes(db);
	sqlite3_finalize(st);
	st = NULL;
	if (id && !moved) {
		pr_warn("dlq replay: no alert with id %llu in the dead-letter queue (see vigil dlq "
			"list)\n", (unsigned long long)id);
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		sqlite3_close(db);
		return 1;
	}
	if (sqlite3_prepare_v2(db, "DELETE FROM dlq WHERE ?1 = 0 OR id = ?1", -1, &st, NULL) !=
	    SQLITE_OK)
		goto fail;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)id);
	if (sqlite3_step(st) != SQLITE_DONE || sqlite3_changes(db) != moved)
		goto fail;
	sqlite3_finalize(st);
	st = NULL;
	if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		goto fail;
	sqlite3_close(db);
	printf("replayed %d alert(s) into the outbox; a running 'vigil run' with their sink "
	       "delivers them\n", moved);
	return 0;
fail:
	pr_warn("%s: replaying the dead-letter queue failed: %s (is it a vigil event log?)\n",
		db_path, sqlite3_errmsg(db));
	sqlite3_finalize(st);
	sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	sqlite3_close(db);
	return 1;
}

struct dlq_opts {
	const char *db_path;
	bool json, outbox, all;
	__u64 id;
};

static const struct vg_opt list_opts[] = {
	{ VG_OPT_DB(struct dlq_opts, db_path) },
	{ VG_OPT_JSON(struct dlq_opts, json, "one JSON object per line, the event under \"event\"") },
	{ VG_OPT_FLAG(0, "outbox", struct dlq_opts, outbox,
		      "the alerts still waiting for delivery instead") },
	{}
};

static const struct vg_opt replay_opts[] = {
	{ VG_OPT_DB(struct dlq_opts, db_path) },
	{ VG_OPT_UINT(0, "id", struct dlq_opts, id, 1, INT64_MAX, "N", "this alert (vigil dlq list)") },
	{ VG_OPT_FLAG(0, "all", struct dlq_opts, all, "every alert in the dead-letter queue") },
	{}
};

static const struct dlq_opts dlq_defaults = { .db_path = VIGIL_DEFAULT_DB };

#define DLQ_CMD(fn) .size = sizeof(struct dlq_opts), .defaults = &dlq_defaults, .run = fn

static int list_run(const struct vg_parsed *p)
{
	const struct dlq_opts *o = p->opts;

	return dlq_list(o->db_path, o->json, o->outbox);
}

static const struct vg_cmd list_cmd = {
	VG_CMD("dlq list", "the alerts that failed every attempt (--outbox: still waiting)",
	       "The alerts that failed every attempt (vigil run --alert-max-attempts), with "
	       "their last error.", "  vigil dlq list\n"),
	.opts = list_opts, DLQ_CMD(list_run),
};

static int replay_run(const struct vg_parsed *p)
{
	const struct dlq_opts *o = p->opts;

	if (!o->id == !o->all) {
		pr_warn("dlq replay: give either --id N or --all\n");
		return 2;
	}
	return dlq_replay(o->db_path, o->id);
}

static const struct vg_cmd replay_cmd = {
	VG_CMD("dlq replay", "move them back to the outbox, for the daemon to deliver",
	       "Move alerts back from the dead-letter queue to the outbox, due now with no "
	       "attempt counted, for the running daemon to deliver.",
	       "  vigil dlq replay --all\n"),
	.opts = replay_opts, DLQ_CMD(replay_run),
};

VG_VERBS(cli_dlq, "dlq",
	 "list or replay alerts that failed every delivery attempt",
	 "The dead-letter queue: alerts that failed every delivery attempt.",
	 { .cmd = &list_cmd }, { .cmd = &replay_cmd });

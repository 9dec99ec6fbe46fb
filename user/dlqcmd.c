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
#include "cli.h"
#include "eventlog.h"
#include "log.h"
#include "util.h"

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: vigil dlq list [--db FILE] [--json] [--outbox]\n"
		"       vigil dlq replay [--db FILE] --id N | --all\n"
		"The dead-letter queue: alerts that failed every attempt ('vigil run\n"
		"--alert-max-attempts'). 'list' shows them (--outbox: the alerts still waiting\n"
		"for delivery instead); 'replay' moves them back to the outbox, due now, for\n"
		"the running daemon to deliver.\n"
		"\n"
		"      --db FILE   the event log (default %s)\n"
		"      --json      one JSON object per line, with the event under \"event\"\n"
		"\n"
		"Examples:\n"
		"  vigil dlq list\n"
		"  vigil dlq replay --all\n",
		VIGIL_DEFAULT_DB);
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
		printf("{\"id\":%lld,\"sink\":", (long long)sqlite3_column_int64(st, 0));
		vg_json_str(stdout, vg_col_text(st, 1));
		printf(",\"instance\":\"%016llx\",\"event_seq\":%lld,\"agent_id\":%llu,"
		       "\"attempts\":%d,\"last_error\":",
		       (unsigned long long)sqlite3_column_int64(st, 2),
		       (long long)sqlite3_column_int64(st, 3),
		       (unsigned long long)sqlite3_column_int64(st, 4), sqlite3_column_int(st, 5));
		vg_json_str(stdout, vg_col_text(st, 6));
		/* The payload is the event as the daemon printed it: JSON already. */
		printf(",\"created\":\"%s\",\"%s\":\"%s\",\"event\":%s}\n", created,
		       outbox ? "next_attempt" : "failed", when,
		       *vg_col_text(st, 9) ? vg_col_text(st, 9) : "null");
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

int cmd_dlq(int argc, char **argv)
{
	const char *db_path = VIGIL_DEFAULT_DB, *verb;
	bool json = false, all = false, outbox = false;
	__u64 id = 0;

	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	verb = argv[1];
	if (strcmp(verb, "list") && strcmp(verb, "replay")) {
		pr_warn("dlq: unknown action '%s' (expected list or replay)\n", verb);
		return 2;
	}
	for (int i = 2; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		bool listing = !strcmp(verb, "list");

		if (!strcmp(a, "--db") && v) {
			db_path = v;
			i++;
		} else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			usage(stdout);
			return 0;
		} else if (listing && !strcmp(a, "--json")) {
			json = true;
		} else if (listing && !strcmp(a, "--outbox")) {
			outbox = true;
		} else if (!listing && !strcmp(a, "--id") && v) {
			if (vg_parse_u64(v, "--id", 1, INT64_MAX, &id))
				return 2;
			i++;
		} else if (!listing && !strcmp(a, "--all")) {
			all = true;
		} else {
			pr_warn("dlq %s: unexpected argument '%s' (see vigil dlq --help)\n", verb, a);
			return 2;
		}
	}
	if (!strcmp(verb, "list"))
		return dlq_list(db_path, json, outbox);
	if (!id == !all) {
		pr_warn("dlq replay: give either --id N or --all\n");
		return 2;
	}
	return dlq_replay(db_path, id);
}

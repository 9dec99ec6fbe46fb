// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/*
 * `vigil events` (and its twin `vigil log query`): the recorded events, from
 * the SQLite log the daemon writes (--db), never the kernel; --follow keeps
 * printing new ones as they are recorded.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sqlite3.h>
#include "cli/cli.h"
#include "common/event.h"
#include "common/eventlog.h"
#include "common/log.h"
#include "common/options.h"
#include "common/u64map.h"
#include "common/util.h"

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

/* Parse a time: seconds since the epoch, or an age like 90s, 15m, 2h, 7d. */
static int parse_time(const char *s, void *field, const struct vg_opt *o)
{
	__u64 *wall_ns = field;
	char what[32];
	static const struct { char unit; __u64 ns; } units[] = {
		{ 's', VIGIL_NSEC_PER_SEC }, { 'm', 60 * VIGIL_NSEC_PER_SEC },
		{ 'h', 3600 * VIGIL_NSEC_PER_SEC }, { 'd', 86400 * VIGIL_NSEC_PER_SEC },
	};
	size_t n = strlen(s);
	char buf[32];
	__u64 v;

	snprintf(what, sizeof(what), "--%s", o->name);
	if (n == 0 || n >= sizeof(buf))
		goto bad;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (s[n - 1] != units[i].unit)
			continue;
		memcpy(buf, s, n - 1);
		buf[n - 1] = '\0';
		if (vg_parse_u64(buf, what, 0, UINT64_MAX / units[i].ns, &v))
			return -1;
		*wall_ns = vg_wall_ns() - v * units[i].ns;
		return 0;
	}
	if (vg_parse_u64(s, what, 0, UINT64_MAX / VIGIL_NSEC_PER_SEC, &v))
		return -1;
	*wall_ns = v * VIGIL_NSEC_PER_SEC;
	return 0;
bad:
	pr_warn("%s: '%s' is not seconds since the epoch or an age like 15m, 2h, 7d\n", what, s);
	return -1;
}

static int parse_kind(const char *s, void *field, const struct vg_opt *o)
{
	if (!vg_name_to(s, vg_kind_name, VIGIL_EV_KIND_MAX)) {
		pr_warn("--%s: '%s' is not one of up, suspect, dead, recovered, restart, left, "
			"rejected, lease_expired, lease_released, monitor_behind, monitor_caught_up\n",
			o->name, s);
		return -1;
	}
	*(const char **)field = s;
	return 0;
}

/* One row as the daemon printed it (the shared JSON line format). */
static void print_row_json(sqlite3_stmt *st)
{
	struct vigil_event e;
	struct vg_event_view v;

	vg_event_from_row(st, &e, &v);
	vg_event_print_json(stdout, &v);
}

static void print_row_table(sqlite3_stmt *st)
{
	char when[40];

	vg_fmt_wall((__u64)sqlite3_column_int64(st, 17), when, sizeof(when));
	printf("%-24s %8lld %-10llu %-16s %-13s %-8s %s%s%s\n", when,
	       (long long)sqlite3_column_int64(st, 1),
	       (unsigned long long)sqlite3_column_int64(st, 2), vg_col_text(st, 6), vg_col_text(st, 3),
	       vg_col_text(st, 4), vg_col_text(st, 15), *vg_col_text(st, 15) ? " " : "",
	       sqlite3_column_int(st, 18) ? "(reconciled)" : "");
}

struct query {
	const char *db_path;
	__u64 agent, since, until, limit;
	const char *kind;
	bool json, follow;
};

static int run_query(const struct vg_parsed *p)
{
	const struct query *q = p->opts;
	char sql[1024];
	sqlite3_stmt *st = NULL;
	sqlite3 *db = vg_eventlog_open_ro(q->db_path);
	struct u64map shown = {};
	__u64 after = 0;
	int rc, ret = 1;

	if (!db)
		return 1;
	snprintf(sql, sizeof(sql),
		 "SELECT " VG_EVENT_COLS " FROM events WHERE (?1 = 0 OR agent_id = ?1)"
		 " AND (?2 IS NULL OR kind = ?2) AND detected_wall_ns >= ?3"
		 " AND (?4 = 0 OR detected_wall_ns <= ?4) AND recorded_wall_ns >= ?5"
		 /* Following: a row of rejections once it is final (its
		  * recorded_wall_ns is then the time it closed). */
		 " AND (?7 = 0 OR open IS NULL)"
		 " ORDER BY detected_wall_ns, event_seq LIMIT ?6");
	if (!q->json && !q->follow)
		printf("%-24s %8s %-10s %-16s %-13s %-8s %s\n", "TIME", "EVENT", "AGENT", "NAME",
		       "KIND", "STATE", "REASON");
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	setvbuf(stdout, NULL, _IOLBF, 0);
	do {
		__u64 newest = after;

		if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
			pr_warn("%s: query failed: %s (is it a vigil event log?)\n", q->db_path,
				sqlite3_errmsg(db));
			goto out;
		}
		sqlite3_bind_int64(st, 1, (sqlite3_int64)q->agent);
		if (q->kind)
			sqlite3_bind_text(st, 2, q->kind, -1, SQLITE_STATIC);
		else
			sqlite3_bind_null(st, 2);
		sqlite3_bind_int64(st, 3, (sqlite3_int64)q->since);
		sqlite3_bind_int64(st, 4, (sqlite3_int64)q->until);
		/* Following: rows recorded since the last round (a second early, as
		 * commit order and clock reads can disagree), deduplicated below. */
		sqlite3_bind_int64(st, 5, (sqlite3_int64)(after > VIGIL_NSEC_PER_SEC ?
							    after - VIGIL_NSEC_PER_SEC : 0));
		sqlite3_bind_int64(st, 6, q->limit ? (sqlite3_int64)q->limit : -1);
		sqlite3_bind_int(st, 7, q->follow);
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			__u64 key = ((__u64)sqlite3_column_int64(st, 0) * 0x9e3779b97f4a7c15ULL) ^
				    (__u64)sqlite3_column_int64(st, 1);
			__u64 rec = (__u64)sqlite3_column_int64(st, 19);

			if (rec > newest)
				newest = rec;
			if (q->follow && u64map_get(&shown, key | 1, NULL))
				continue;
			u64map_put(&shown, key | 1, 1);
			if (q->json || q->follow)
				print_row_json(st);
			else
				print_row_table(st);
		}
		sqlite3_finalize(st);
		st = NULL;
		if (rc != SQLITE_DONE) {
			pr_warn("%s: reading failed: %s\n", q->db_path, sqlite3_errmsg(db));
			goto out;
		}
		after = newest ? newest : vg_wall_ns();
		if (q->follow)
			usleep(200 * 1000);
	} while (q->follow && !stop_requested);
	ret = 0;
out:
	sqlite3_finalize(st);
	sqlite3_close(db);
	u64map_free(&shown);
	return ret;
}

static const struct vg_opt query_opts[] = {
	{ VG_OPT_DB(struct query, db_path) },
	{ VG_OPT_UINT(0, "agent", struct query, agent, 1, UINT64_MAX, "ID", "only this agent's events") },
	{ VG_OPT_FUNC(0, "kind", struct query, kind, parse_kind, "KIND",
		      "only events of this kind (up, suspect, dead, recovered, restart, left, "
		      "rejected, lease_expired, lease_released, monitor_behind, monitor_caught_up)") },
	{ VG_OPT_FUNC(0, "since", struct query, since, parse_time, "T",
		      "detected at or after T: seconds since the epoch, or an age like 90s, 15m, "
		      "2h, 7d") },
	{ VG_OPT_FUNC(0, "until", struct query, until, parse_time, "T", "detected at or before T") },
	{ VG_OPT_UINT(0, "limit", struct query, limit, 1, UINT64_MAX >> 1, "N",
		      "at most N events") },
	{ VG_OPT_JSON(struct query, json, "one JSON line per event (vigil events: always)") },
	{ VG_OPT_FLAG('f', "follow", struct query, follow,
		      "keep printing events as they are recorded (JSON lines), until SIGINT") },
	{}
};

static const struct query query_defaults = { .db_path = VIGIL_DEFAULT_DB };
static const struct query events_defaults = { .db_path = VIGIL_DEFAULT_DB, .json = true };

const struct vg_cmd cli_events = {
	VG_CMD("events", "print or follow the recorded events (JSON lines)",
	       "Print the recorded events as JSON lines (the daemon's own format), oldest "
	       "first; --follow keeps printing new ones.",
	       "  vigil events --follow\n  vigil events --agent 7 --since 2h\n"),
	.opts = query_opts, .size = sizeof(struct query), .defaults = &events_defaults,
	.run = run_query,
};

const struct vg_cmd cli_log_query = {
	VG_CMD("log query", "the events: a table, or --json lines (see vigil events)",
	       "Query the durable event log: a table, or --json lines; --follow keeps "
	       "printing new events as JSON lines.", "  vigil log query --agent 7 --since 2h\n"
	       "  vigil log query --kind dead --json | jq .name\n"),
	.opts = query_opts, .size = sizeof(struct query), .defaults = &query_defaults,
	.run = run_query,
};

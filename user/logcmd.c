// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/*
 * Reading the durable event log: `vigil log query|replay|gaps|prune` and
 * `vigil events` (follow the log as JSON lines). All read the SQLite
 * database the daemon writes (--db), never the kernel.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sqlite3.h>
#include "cli.h"
#include "eventlog.h"
#include "instance.h"
#include "log.h"
#include "registry.h"
#include "u64map.h"
#include "util.h"

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

/* Parse a time: seconds since the epoch, or an age like 90s, 15m, 2h, 7d. */
static int parse_time(const char *s, const char *what, __u64 *wall_ns)
{
	static const struct { char unit; __u64 ns; } units[] = {
		{ 's', VIGIL_NSEC_PER_SEC }, { 'm', 60 * VIGIL_NSEC_PER_SEC },
		{ 'h', 3600 * VIGIL_NSEC_PER_SEC }, { 'd', 86400 * VIGIL_NSEC_PER_SEC },
	};
	size_t n = strlen(s);
	char buf[32];
	__u64 v;

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

#define EVENT_COLS VG_EVENT_COLS

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

static int run_query(const struct query *q)
{
	char sql[1024];
	sqlite3_stmt *st = NULL;
	sqlite3 *db = vg_eventlog_open_ro(q->db_path);
	struct u64map shown = {};
	__u64 after = 0;
	int rc, ret = 1;

	if (!db)
		return 1;
	snprintf(sql, sizeof(sql),
		 "SELECT " EVENT_COLS " FROM events WHERE (?1 = 0 OR agent_id = ?1)"
		 " AND (?2 IS NULL OR kind = ?2) AND detected_wall_ns >= ?3"
		 " AND (?4 = 0 OR detected_wall_ns <= ?4) AND recorded_wall_ns >= ?5"
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
		sqlite3_bind_int64(st, 5, (sqlite3_int64)(after > VIGIL_NSEC_PER_SEC ? after - VIGIL_NSEC_PER_SEC : 0));
		sqlite3_bind_int64(st, 6, q->limit ? (sqlite3_int64)q->limit : -1);
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

static int parse_query(int argc, char **argv, struct query *q, bool events_cmd)
{
	static const struct option opts[] = {
		{ "db", required_argument, NULL, 'b' },
		{ "agent", required_argument, NULL, 'a' },
		{ "kind", required_argument, NULL, 'k' },
		{ "since", required_argument, NULL, 's' },
		{ "until", required_argument, NULL, 'u' },
		{ "limit", required_argument, NULL, 'n' },
		{ "json", no_argument, NULL, 'j' },
		{ "follow", no_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	int opt;

	memset(q, 0, sizeof(*q));
	q->db_path = VIGIL_DEFAULT_DB;
	q->json = events_cmd;
	while ((opt = getopt_long(argc, argv, "fh", opts, NULL)) != -1) {
		switch (opt) {
		case 'b':
			q->db_path = optarg;
			break;
		case 'a':
			if (vg_parse_u64(optarg, "--agent", 1, UINT64_MAX, &q->agent))
				return 2;
			break;
		case 'k':
			if (!vg_name_to(optarg, vg_kind_name, VIGIL_EV_KIND_MAX)) {
				pr_warn("--kind: '%s' is not one of up, suspect, dead, recovered, "
					"restart, left, rejected, lease_expired, lease_released\n",
					optarg);
				return 2;
			}
			q->kind = optarg;
			break;
		case 's':
			if (parse_time(optarg, "--since", &q->since))
				return 2;
			break;
		case 'u':
			if (parse_time(optarg, "--until", &q->until))
				return 2;
			break;
		case 'n':
			if (vg_parse_u64(optarg, "--limit", 1, UINT64_MAX >> 1, &q->limit))
				return 2;
			break;
		case 'j':
			q->json = true;
			break;
		case 'f':
			q->follow = true;
			break;
		case 'h':
			printf("Usage: vigil %s [--db FILE] [--agent ID] [--kind KIND] [--since T] "
			       "[--until T] [--limit N]%s\n"
			       "T is seconds since the epoch or an age like 90s, 15m, 2h, 7d.\n"
			       "Kinds: up suspect dead recovered restart left rejected\n",
			       events_cmd ? "events" : "log query",
			       events_cmd ? " [--follow]" : " [--json] [--follow]");
			return 1;
		default:
			return 2;
		}
	}
	if (optind < argc) {
		pr_warn("unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	return 0;
}

int cmd_events(int argc, char **argv)
{
	struct query q;
	int err = parse_query(argc, argv, &q, true);

	return err ? (err == 1 ? 0 : err) : run_query(&q);
}

/* Rebuild every agent's state from the log (its last event by sequence);
 * with --check compare it with the pinned maps. */
static int log_replay(const char *db_path, const char *pin_root, bool check)
{
	struct vg_maps m;
	struct vigil_meta meta = {};
	struct u64map state = {};
	sqlite3_stmt *st = NULL;
	sqlite3 *db;
	long agents = 0, mismatches = 0;
	int rc;

	if (check && vg_instance_open(pin_root, &m, &meta))
		return 1;
	db = vg_eventlog_open_ro(db_path);
	if (!db)
		return 1;
	rc = sqlite3_prepare_v2(db,
				"SELECT agent_id, state, event_seq FROM events WHERE kind != 'rejected'"
				" AND kind NOT LIKE 'lease_%'"
				" AND (?1 = 0 OR instance_id = ?1) ORDER BY instance_id, event_seq",
				-1, &st, NULL);
	if (rc != SQLITE_OK) {
		pr_warn("%s: query failed: %s\n", db_path, sqlite3_errmsg(db));
		sqlite3_close(db);
		return 1;
	}
	sqlite3_bind_int64(st, 1, (sqlite3_int64)meta.instance_id);
	while (sqlite3_step(st) == SQLITE_ROW)
		u64map_put(&state, (__u64)sqlite3_column_int64(st, 0),
			   vg_name_to(vg_col_text(st, 1), vg_state_name, VIGIL_AGENT_STATE_MAX) + 1);
	sqlite3_finalize(st);
	sqlite3_close(db);
	for (size_t i = 0; i < state.cap; i++) {
		struct agent_slot s;
		__u32 replayed;

		if (!state.keys[i])
			continue;
		agents++;
		replayed = (__u32)state.vals[i] - 1;
		if (!check) {
			printf("%llu %s\n", (unsigned long long)state.keys[i], vg_state_name(replayed));
			continue;
		}
		if (vg_agent_get(&m, state.keys[i], NULL, &s)) {
			printf("agent %llu: log says %s, not registered in the maps\n",
			       (unsigned long long)state.keys[i], vg_state_name(replayed));
			mismatches++;
		} else if (s.state != replayed) {
			printf("agent %llu: log says %s, maps say %s\n",
			       (unsigned long long)state.keys[i], vg_state_name(replayed),
			       vg_state_name(s.state));
			mismatches++;
		}
	}
	u64map_free(&state);
	if (check) {
		vg_maps_close(&m);
		printf("replayed %ld agents from the log: %ld differ from the maps\n", agents,
		       mismatches);
	}
	return mismatches ? 1 : 0;
}

/* Missing event sequences per instance: events lost before they were
 * recorded (and not reconciled) or removed by retention. */
static int log_gaps(const char *db_path)
{
	sqlite3_stmt *st = NULL;
	sqlite3 *db = vg_eventlog_open_ro(db_path);
	__u64 inst = 0, prev = 0, missing = 0;
	bool first = true;

	if (!db)
		return 1;
	if (sqlite3_prepare_v2(db, "SELECT instance_id, event_seq FROM events "
				   "ORDER BY instance_id, event_seq", -1, &st, NULL) != SQLITE_OK) {
		pr_warn("%s: query failed: %s\n", db_path, sqlite3_errmsg(db));
		sqlite3_close(db);
		return 1;
	}
	while (sqlite3_step(st) == SQLITE_ROW) {
		__u64 i = (__u64)sqlite3_column_int64(st, 0), seq = (__u64)sqlite3_column_int64(st, 1);

		if (first || i != inst) {
			printf("instance %016llx: first recorded event %llu\n", (unsigned long long)i,
			       (unsigned long long)seq);
			first = false;
			inst = i;
		} else if (seq > prev + 1) {
			printf("instance %016llx: events %llu-%llu missing\n", (unsigned long long)i,
			       (unsigned long long)(prev + 1), (unsigned long long)(seq - 1));
			missing += seq - prev - 1;
		}
		prev = seq;
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	printf("%llu events missing\n", (unsigned long long)missing);
	return missing ? 1 : 0;
}

int vg_log_prune(const char *db_path, unsigned long long max_age_s, unsigned long long max_events,
		 long *removed)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st;
	int rc = -1;

	if (sqlite3_open(db_path, &db) != SQLITE_OK)
		goto out;
	sqlite3_busy_timeout(db, 5000);
	*removed = 0;
	if (max_age_s) {
		if (sqlite3_prepare_v2(db, "DELETE FROM events WHERE detected_wall_ns < ?", -1, &st,
				       NULL) != SQLITE_OK)
			goto out;
		sqlite3_bind_int64(st, 1, (sqlite3_int64)(vg_wall_ns() - max_age_s * VIGIL_NSEC_PER_SEC));
		rc = sqlite3_step(st);
		sqlite3_finalize(st);
		if (rc != SQLITE_DONE)
			goto out;
		*removed += sqlite3_changes(db);
	}
	if (max_events) {
		if (sqlite3_prepare_v2(db, "DELETE FROM events WHERE recorded_wall_ns < (SELECT "
				       "recorded_wall_ns FROM events ORDER BY recorded_wall_ns DESC "
				       "LIMIT 1 OFFSET ?)", -1, &st, NULL) != SQLITE_OK)
			goto out;
		sqlite3_bind_int64(st, 1, (sqlite3_int64)max_events - 1);
		rc = sqlite3_step(st);
		sqlite3_finalize(st);
		if (rc != SQLITE_DONE)
			goto out;
		*removed += sqlite3_changes(db);
	}
	rc = 0;
out:
	if (rc)
		pr_warn("%s: pruning failed: %s\n", db_path, db ? sqlite3_errmsg(db) : "cannot open");
	sqlite3_close(db);
	return rc;
}

/* What the policy decided: flap suppression and release, remediation,
 * storm control, and in shadow mode what would have been done. */
static int log_notices(const char *db_path, bool json)
{
	sqlite3_stmt *st = NULL;
	sqlite3 *db = vg_eventlog_open_ro(db_path);

	if (!db)
		return 1;
	if (sqlite3_prepare_v2(db, "SELECT wall_ns, agent_id, kind, detail FROM notices ORDER BY id",
			       -1, &st, NULL) != SQLITE_OK) {
		pr_warn("%s: query failed: %s\n", db_path, sqlite3_errmsg(db));
		sqlite3_close(db);
		return 1;
	}
	if (!json)
		printf("%-24s %-10s %-16s %s\n", "TIME", "AGENT", "NOTICE", "DETAIL");
	while (sqlite3_step(st) == SQLITE_ROW) {
		char when[40];

		vg_fmt_wall((__u64)sqlite3_column_int64(st, 0), when, sizeof(when));
		if (json) {
			printf("{\"time\":\"%s\",\"agent_id\":%llu,\"notice\":", when,
			       (unsigned long long)sqlite3_column_int64(st, 1));
			vg_json_str(stdout, vg_col_text(st, 2));
			printf(",\"detail\":");
			vg_json_str(stdout, vg_col_text(st, 3));
			printf("}\n");
		} else {
			printf("%-24s %-10llu %-16s %s\n", when,
			       (unsigned long long)sqlite3_column_int64(st, 1), vg_col_text(st, 2),
			       vg_col_text(st, 3));
		}
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	return 0;
}

static void log_usage(FILE *f)
{
	fprintf(f,
		"Usage: vigil log query [--db FILE] [--agent ID] [--kind KIND] [--since T] [--until T]\n"
		"                       [--limit N] [--json] [--follow]\n"
		"       vigil log replay [--db FILE] [--check [--pin-root DIR]]\n"
		"       vigil log gaps [--db FILE]\n"
		"       vigil log notices [--db FILE] [--json]\n"
		"       vigil log prune [--db FILE] [--max-age-days N] [--max-events N]\n"
		"Query the durable event log; replay rebuilds each agent's state from it\n"
		"(--check: compare with the pinned maps, non-zero exit on any difference).\n"
		"\n"
		"Examples:\n"
		"  vigil log query --agent 7 --since 2h\n"
		"  vigil log replay --check\n");
}

int cmd_log(int argc, char **argv)
{
	const char *db_path = VIGIL_DEFAULT_DB, *pin_root = VIGIL_DEFAULT_PIN_ROOT, *verb;
	__u64 max_age_days = 0, max_events = 0;
	bool check = false, json = false;
	long removed;

	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		log_usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	verb = argv[1];
	if (!strcmp(verb, "query")) {
		struct query q;
		int err = parse_query(argc - 1, argv + 1, &q, false);

		return err ? (err == 1 ? 0 : err) : run_query(&q);
	}
	for (int i = 2; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(a, "--db") && v) {
			db_path = v;
			i++;
		} else if (!strcmp(a, "--pin-root") && v) {
			pin_root = v;
			i++;
		} else if (!strcmp(a, "--check")) {
			check = true;
		} else if (!strcmp(a, "--json")) {
			json = true;
		} else if (!strcmp(a, "--max-age-days") && v) {
			if (vg_parse_u64(v, "--max-age-days", 1, 1u << 20, &max_age_days))
				return 2;
			i++;
		} else if (!strcmp(a, "--max-events") && v) {
			if (vg_parse_u64(v, "--max-events", 1, UINT64_MAX >> 2, &max_events))
				return 2;
			i++;
		} else {
			pr_warn("log %s: unexpected argument '%s'\n", verb, a);
			return 2;
		}
	}
	if (!strcmp(verb, "replay"))
		return log_replay(db_path, pin_root, check);
	if (!strcmp(verb, "gaps"))
		return log_gaps(db_path);
	if (!strcmp(verb, "notices"))
		return log_notices(db_path, json);
	if (!strcmp(verb, "prune")) {
		if (!max_age_days && !max_events) {
			pr_warn("log prune: give --max-age-days and/or --max-events\n");
			return 2;
		}
		if (vg_log_prune(db_path, max_age_days * 86400, max_events, &removed))
			return 1;
		printf("removed %ld events\n", removed);
		return 0;
	}
	pr_warn("log: unknown action '%s' (expected query, replay, gaps, notices or prune)\n", verb);
	return 2;
}

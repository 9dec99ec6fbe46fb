// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/*
 * `vigil log query|replay|gaps|notices|prune`: the durable event log, the
 * SQLite database the daemon writes (--db), never the kernel (but replay
 * --check compares with the pinned maps). `log query` is in events.c, the
 * twin of `vigil events`.
 */
#include <stdio.h>
#include <string.h>
#include <sqlite3.h>
#include "cli/cli.h"
#include "common/event.h"
#include "common/eventlog.h"
#include "common/instance.h"
#include "common/json.h"
#include "common/log.h"
#include "common/options.h"
#include "common/registry.h"
#include "common/u64map.h"
#include "common/util.h"

struct log_opts {
	const char *db_path, *pin_root;
	bool check, json;
	__u64 max_age_days, max_events;
};

/* The options struct, its defaults and the command, for every verb here. */
#define LOG_CMD(fn) .size = sizeof(struct log_opts), .defaults = &log_defaults, .run = fn

static const struct log_opts log_defaults = { .db_path = VIGIL_DEFAULT_DB,
					      .pin_root = VIGIL_DEFAULT_PIN_ROOT };

/* Rebuild every agent's state from the log (its last event by sequence);
 * with --check compare it with the pinned maps. */
static int log_replay(const struct vg_parsed *p)
{
	const struct log_opts *o = p->opts;
	const char *db_path = o->db_path;
	bool check = o->check;
	struct vg_maps m;
	struct vigil_meta meta = {};
	struct u64map state = {};
	sqlite3_stmt *st = NULL;
	sqlite3 *db;
	long agents = 0, mismatches = 0;
	int rc;

	if (check && vg_instance_open(o->pin_root, &m, &meta))
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
		struct vg_agent a;
		__u32 replayed;

		if (!state.keys[i])
			continue;
		agents++;
		replayed = (__u32)state.vals[i] - 1;
		if (!check) {
			printf("%llu %s\n", (unsigned long long)state.keys[i], vg_state_name(replayed));
			continue;
		}
		if (vg_agent_get(&m, state.keys[i], NULL, &a)) {
			printf("agent %llu: log says %s, not registered in the maps\n",
			       (unsigned long long)state.keys[i], vg_state_name(replayed));
			mismatches++;
		} else if (a.s.state != replayed) {
			printf("agent %llu: log says %s, maps say %s\n",
			       (unsigned long long)state.keys[i], vg_state_name(replayed),
			       vg_state_name(a.s.state));
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

static const struct vg_opt replay_opts[] = {
	{ VG_OPT_DB(struct log_opts, db_path) },
	{ VG_OPT_FLAG(0, "check", struct log_opts, check,
		      "compare with the pinned maps; exit 1 on any difference") },
	{ VG_OPT_PIN_ROOT(struct log_opts, pin_root) },
	{}
};

static const struct vg_cmd replay_cmd = {
	VG_CMD("log replay", "every agent's state rebuilt from the log; --check: vs the maps",
	       "Rebuild every agent's state from the log (its last event by sequence) and "
	       "print it; --check compares it with the pinned maps instead.",
	       "  vigil log replay --check\n"),
	.opts = replay_opts, LOG_CMD(log_replay),
};

/* Missing event sequences per instance: events lost before they were
 * recorded (and not reconciled) or removed by retention. */
static int log_gaps(const struct vg_parsed *p)
{
	const char *db_path = ((const struct log_opts *)p->opts)->db_path;
	sqlite3_stmt *st = NULL;
	sqlite3 *db = vg_eventlog_open_ro(db_path);
	__u64 inst = 0, prev = 0, missing = 0;
	bool first = true;

	if (!db)
		return 1;
	/* A row of rejections covers event_seq .. event_seq_last. */
	if (sqlite3_prepare_v2(db, "SELECT instance_id, event_seq, " VG_EVENT_SEQ_END " FROM events "
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
		prev = (__u64)sqlite3_column_int64(st, 2);
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	printf("%llu events missing\n", (unsigned long long)missing);
	return missing ? 1 : 0;
}

static const struct vg_opt db_only_opts[] = {
	{ VG_OPT_DB(struct log_opts, db_path) },
	{}
};

static const struct vg_cmd gaps_cmd = {
	VG_CMD("log gaps", "missing event sequences per daemon instance",
	       "Missing event sequences per daemon instance: events lost before they were "
	       "recorded (and not reconciled from the maps), or removed by retention. Exit 1 "
	       "when any is missing.", NULL),
	.opts = db_only_opts, LOG_CMD(log_gaps),
};

/* What the policy decided: flap suppression and release, remediation,
 * storm control, and in shadow mode what would have been done. */
static int log_notices(const struct vg_parsed *p)
{
	const struct log_opts *o = p->opts;
	const char *db_path = o->db_path;
	bool json = o->json;
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
			struct vg_json j;

			vg_json_begin(&j, stdout);
			vg_json_obj(&j);
			vg_json_str_field(&j, "time", when);
			vg_json_u64_field(&j, "agent_id", (__u64)sqlite3_column_int64(st, 1));
			vg_json_str_field(&j, "notice", vg_col_text(st, 2));
			vg_json_str_field(&j, "detail", vg_col_text(st, 3));
			vg_json_end(&j);
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

static const struct vg_opt notices_opts[] = {
	{ VG_OPT_DB(struct log_opts, db_path) },
	{ VG_OPT_JSON(struct log_opts, json, "one JSON line per notice") },
	{}
};

static const struct vg_cmd notices_cmd = {
	VG_CMD("log notices", "what the policy decided (flap damping, remediation, storms)",
	       "What the policy decided: flap suppression and release, remediation, storm "
	       "control, and in shadow mode what would have been done.", NULL),
	.opts = notices_opts, LOG_CMD(log_notices),
};

static const struct vg_opt prune_opts[] = {
	{ VG_OPT_DB(struct log_opts, db_path) },
	{ VG_OPT_UINT(0, "max-age-days", struct log_opts, max_age_days, 1, 1u << 20, "N",
		      "remove events, and the breakdown of rejections, older than N days") },
	{ VG_OPT_UINT(0, "max-events", struct log_opts, max_events, 1, UINT64_MAX >> 2, "N",
		      "keep only the newest N events") },
	{}
};

static int log_prune(const struct vg_parsed *p)
{
	const struct log_opts *o = p->opts;
	long removed;

	if (!o->max_age_days && !o->max_events) {
		pr_warn("log prune: give --max-age-days and/or --max-events\n");
		return 2;
	}
	if (vg_log_prune(o->db_path, o->max_age_days * 86400, o->max_events,
			 o->max_age_days * 86400, &removed))
		return 1;
	printf("removed %ld events\n", removed);
	return 0;
}

static const struct vg_cmd prune_cmd = {
	VG_CMD("log prune", "remove old events now",
	       "Remove old events from the log now (vigil run --retain-days/--retain-events "
	       "does it hourly). Give one or both limits.", NULL),
	.opts = prune_opts, LOG_CMD(log_prune),
};

VG_VERBS(cli_log, "log",
	 "query, replay, check and prune the durable event log",
	 "The durable event log (SQLite, --db), read without the kernel.",
	 { .cmd = &cli_log_query }, { .cmd = &replay_cmd }, { .cmd = &gaps_cmd },
	 { .cmd = &notices_cmd }, { .cmd = &prune_cmd });

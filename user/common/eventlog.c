// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sqlite3.h>
#include "common/eventlog.h"
#include "common/log.h"
#include "common/sql.h"
#include "common/util.h"

/* Schema version 1. Only ever extended with new tables or nullable columns;
 * the `meta` table records the version for a future migration. */
static const char schema[] =
	"CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);"
	"INSERT OR IGNORE INTO meta VALUES ('schema_version', '1');"
	"CREATE TABLE IF NOT EXISTS events ("
	"  instance_id INTEGER NOT NULL,"  /* the pinned instance (vigil_meta) */
	"  event_seq INTEGER NOT NULL,"    /* from the kernel; gaps = losses */
	"  agent_id INTEGER NOT NULL,"
	"  kind TEXT NOT NULL, state TEXT NOT NULL, prev_state TEXT NOT NULL,"
	"  name TEXT, grp TEXT, slot INTEGER, seq INTEGER, incarnation INTEGER,"
	"  interval_ms INTEGER, last_seen_ns INTEGER, detected_ns INTEGER,"
	"  deadline_ns INTEGER, reason TEXT, source TEXT,"
	"  detected_wall_ns INTEGER NOT NULL,"
	"  recorded_wall_ns INTEGER NOT NULL,"
	"  reconciled INTEGER NOT NULL DEFAULT 0,"
	"  flags INTEGER, aux_ns INTEGER,"
	"  PRIMARY KEY (instance_id, event_seq)) WITHOUT ROWID;"
	"CREATE INDEX IF NOT EXISTS events_agent ON events(agent_id, detected_wall_ns);"
	"CREATE INDEX IF NOT EXISTS events_time ON events(detected_wall_ns);"
	/* Alerts waiting for delivery, written in the same transaction as
	 * their event (at-least-once), removed once a sink accepted them. */
	"CREATE TABLE IF NOT EXISTS outbox ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT, sink TEXT NOT NULL,"
	"  instance_id INTEGER, event_seq INTEGER, agent_id INTEGER,"
	"  payload TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,"
	"  next_attempt_wall_ns INTEGER NOT NULL, last_error TEXT,"
	"  created_wall_ns INTEGER NOT NULL);"
	/* Alerts that failed too often; `vigil dlq replay` moves them back. */
	"CREATE TABLE IF NOT EXISTS dlq ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT, sink TEXT NOT NULL,"
	"  instance_id INTEGER, event_seq INTEGER, agent_id INTEGER,"
	"  payload TEXT NOT NULL, attempts INTEGER NOT NULL, last_error TEXT,"
	"  created_wall_ns INTEGER NOT NULL, failed_wall_ns INTEGER NOT NULL);"
	/* What the daemon's policy decided (flap suppression, remediation). */
	"CREATE TABLE IF NOT EXISTS notices ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT, agent_id INTEGER, kind TEXT NOT NULL,"
	"  detail TEXT, wall_ns INTEGER NOT NULL);";

/* The lease tables (daemon/grants.c writes them, `vigil lease` reads them). */
const char vg_lease_schema[] =
	/* The highest token ever reserved per lease: a grant's token is
	 * committed here before the grant is written to the kernel. */
	"CREATE TABLE IF NOT EXISTS leases (lease_id INTEGER PRIMARY KEY, name TEXT,"
	"  token INTEGER NOT NULL DEFAULT 0, holder INTEGER, granted_wall_ns INTEGER);"
	"CREATE TABLE IF NOT EXISTS lease_log (id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  lease_id INTEGER, name TEXT, event TEXT, holder INTEGER, token INTEGER,"
	"  wall_ns INTEGER);"
	/* `vigil lease transfer`: the next grant goes to this agent if healthy. */
	"CREATE TABLE IF NOT EXISTS lease_requests (lease_id INTEGER PRIMARY KEY,"
	"  to_agent INTEGER, wall_ns INTEGER);";

/* The directories up to path's, creating what is missing: its own
 * directory 0700 (the log holds agent names, alert payloads and the lease
 * history), the ones above it 0755. An existing directory that others may
 * write could swap the database or plant its -wal/-shm: refused, unless
 * it is sticky (like /tmp: others cannot rename or remove our files). */
static int log_dir(const char *path)
{
	char *dup = strdup(path), *dir;
	struct stat sb;
	int ret = -1;

	if (!dup)
		return -1;
	dir = dirname(dup);
	for (char *p = dir + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(dir, 0755) && errno != EEXIST)
			goto out;
		*p = '/';
	}
	if (mkdir(dir, 0700) && errno != EEXIST)
		goto out;
	if (stat(dir, &sb))
		goto out;
	if ((sb.st_mode & (S_IWGRP | S_IWOTH)) && !(sb.st_mode & S_ISVTX)) {
		pr_warn("%s: its directory %s is writable by others (mode %04o), who could "
			"replace the event log; chmod go-w it or use another --db\n", path, dir,
			(unsigned)(sb.st_mode & 07777));
		errno = EPERM;
		goto out;
	}
	ret = 0;
out:
	if (ret && errno != EPERM)
		pr_warn("%s: cannot create its directory %s: %s\n", path, dir, strerror(errno));
	free(dup);
	return ret;
}

/* Create path 0600 if it does not exist (SQLite gives its -wal and -shm
 * the database's mode), or take group and world access away from an
 * existing log made by an older version. */
static int private_file(const char *path, bool say)
{
	struct stat sb;
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);

	if (fd >= 0)
		return close(fd);
	if (errno != EEXIST)
		return -1;
	if (stat(path, &sb))
		return errno == ENOENT ? 0 : -1;
	if (!(sb.st_mode & 077))
		return 0;
	if (say)
		pr_info("%s: mode %04o gave others access to the event log; now 0600\n", path,
			(unsigned)(sb.st_mode & 07777));
	return chmod(path, sb.st_mode & 07700);
}

static int exec_sql(sqlite3 *db, const char *sql, const char *what)
{
	char said[96];

	snprintf(said, sizeof(said), "event log: %s", what);
	return vg_sql_exec_or_say(db, sql, said);
}

static void remember(struct vg_eventlog *log, __u64 seq, __u64 agent_id, __u32 state)
{
	__u64 last;

	u64map_put(&log->seen, seq, 1);
	if (seq > log->max_seq)
		log->max_seq = seq;
	if (!agent_id || state == VIGIL_AGENT_FREE)
		return;
	if (!u64map_get(&log->agent_last, agent_id, &last) || (last >> 3) < seq)
		u64map_put(&log->agent_last, agent_id, seq << 3 | state);
}

static __u32 state_from_name(const char *s)
{
	for (__u32 i = 0; s && i <= VIGIL_AGENT_STATE_MAX; i++)
		if (!strcmp(s, vg_state_name(i)))
			return i;
	return VIGIL_AGENT_FREE;
}

/* What is at path before SQLite opens it: nothing or an empty file (a
 * new log), an SQLite database, or something else, which is refused with
 * nothing touched (--db pointing at the wrong file). */
static int looks_like_sqlite(const char *path)
{
	static const char magic[16] = "SQLite format 3";
	char head[16];
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		pr_warn("%s: cannot read the event log: %s\n", path, strerror(errno));
		return -1;
	}
	n = read(fd, head, sizeof(head));
	close(fd);
	if (n == 0 || (n == (ssize_t)sizeof(head) && !memcmp(head, magic, sizeof(magic))))
		return 0;
	pr_warn("%s: not an SQLite database (nothing was changed); point --db at the event "
		"log, or at a new file\n", path);
	return -1;
}

/* The log must be writable and ours to write before its health is judged:
 * a read-only file system or another writer holding the lock past the
 * busy timeout is an error with nothing touched, never "damage". */
static int writable(sqlite3 *db, const char *path)
{
	if (sqlite3_db_readonly(db, "main") == 1) {
		pr_warn("%s: the event log is read-only (%s); vigil run needs to write it\n", path,
			access(path, W_OK) ? strerror(errno) : "opened read-only");
		return -1;
	}
	if (vg_sql_exec(db, "BEGIN IMMEDIATE") && vg_sql_exec(db, "ROLLBACK"))
		return 0;
	if (sqlite3_errcode(db) == SQLITE_CORRUPT || sqlite3_errcode(db) == SQLITE_NOTADB)
		return 0; /* for check_integrity to judge */
	pr_warn("%s: cannot write the event log: %s%s\n", path, sqlite3_errmsg(db),
		sqlite3_errcode(db) == SQLITE_BUSY ?
			" (another process holds its lock: a second vigil run on this --db?)" :
			"");
	return -1;
}

/* A database whose pages are damaged (a torn or truncated file) is moved
 * aside, never trusted: the daemon starts a new one and reconciles the
 * current state from the maps. SQLite itself drops a torn WAL tail, whose
 * frames fail their checksums. Only a check that ran and found damage, or
 * SQLite's own verdict of corruption, counts: any other failure (I/O, a
 * lock, no memory) is an error that leaves the file alone. */
static int check_integrity(sqlite3 **db, const char *path)
{
	sqlite3_stmt *st = NULL;
	char aside[4096];
	int rc, err;

	rc = sqlite3_prepare_v2(*db, "PRAGMA quick_check", -1, &st, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && !strcmp(vg_col_text(st, 0), "ok")) {
		sqlite3_finalize(st);
		return 0;
	}
	sqlite3_finalize(st);
	err = sqlite3_extended_errcode(*db) & 0xff;
	if (rc != SQLITE_ROW && err != SQLITE_CORRUPT && err != SQLITE_NOTADB) {
		pr_warn("%s: checking the event log failed: %s (nothing was changed)\n", path,
			sqlite3_errmsg(*db));
		return -1;
	}
	snprintf(aside, sizeof(aside), "%s.corrupt-%llu", path, (unsigned long long)vg_wall_ns());
	pr_warn("event log %s is damaged; moving it to %s and starting a new one (current state "
		"is reconciled from the maps)\n", path, aside);
	sqlite3_close(*db);
	*db = NULL;
	if (rename(path, aside))
		return -1;
	for (const char *sfx = "-wal"; sfx; sfx = strcmp(sfx, "-wal") ? NULL : "-shm") {
		char a[4200], b[4200];

		snprintf(a, sizeof(a), "%s%s", path, sfx);
		snprintf(b, sizeof(b), "%s%s", aside, sfx);
		rename(a, b);
	}
	if (private_file(path, false))
		return -1;
	return sqlite3_open(path, db) == SQLITE_OK ? 0 : -1;
}

/* Columns added after schema version 1 was first written: logs made before
 * them gain them empty (NULL), which reads as "no flags". */
static int add_columns(sqlite3 *db)
{
	static const char *const cols[][2] = {
		{ "flags", "ALTER TABLE events ADD COLUMN flags INTEGER" },
		{ "aux_ns", "ALTER TABLE events ADD COLUMN aux_ns INTEGER" },
	};
	sqlite3_stmt *st;
	bool have[2] = {};

	if (sqlite3_prepare_v2(db, "SELECT name FROM pragma_table_info('events')", -1, &st,
			       NULL) != SQLITE_OK)
		return -1;
	while (sqlite3_step(st) == SQLITE_ROW)
		for (size_t i = 0; i < 2; i++)
			if (!strcmp(vg_col_text(st, 0), cols[i][0]))
				have[i] = true;
	sqlite3_finalize(st);
	for (size_t i = 0; i < 2; i++)
		if (!have[i] && exec_sql(db, cols[i][1], "adding a column to the event log"))
			return -1;
	return 0;
}

static int load(struct vg_eventlog *log)
{
	sqlite3_stmt *st;
	int rc;

	rc = sqlite3_prepare_v2(log->db,
				"SELECT event_seq, agent_id, kind, state FROM events "
				"WHERE instance_id = ?", -1, &st, NULL);
	if (rc != SQLITE_OK)
		return -1;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)log->instance_id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *kind = (const char *)sqlite3_column_text(st, 2);

		remember(log, (__u64)sqlite3_column_int64(st, 0),
			 kind && !vg_kind_changes_agent(vg_name_to(kind, vg_kind_name,
								   VIGIL_EV_KIND_MAX)) ?
				 0 : (__u64)sqlite3_column_int64(st, 1),
			 state_from_name((const char *)sqlite3_column_text(st, 3)));
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

/* The export dedupes on its own (a crash can fall between writing a line and
 * committing the database): read back what this instance already wrote. */
static int load_jsonl(struct vg_eventlog *log, const char *path)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int last = '\n';
	FILE *f = fopen(path, "r");

	if (!f)
		return errno == ENOENT ? 0 : -1;
	while ((n = getline(&line, &cap, f)) > 0) {
		unsigned long long seq, inst;
		char *p = strstr(line, "\"instance\":\"");

		last = line[n - 1];
		if (last == '\n' && p && sscanf(p + 12, "%llx", &inst) == 1 &&
		    inst == log->instance_id && sscanf(line, "{\"event_seq\":%llu,", &seq) == 1)
			u64map_put(&log->jsonl_seen, seq, 1);
	}
	free(line);
	fclose(f);
	if (last != '\n') {
		/* A torn last line: start the next one on a line of its own. */
		f = fopen(path, "a");
		if (f) {
			fputc('\n', f);
			fclose(f);
		}
	}
	return 0;
}

/* The database file, checked and open: see log_dir, looks_like_sqlite,
 * private_file, writable and check_integrity for what is refused. */
static int open_db(struct vg_eventlog *log, const char *db_path)
{
	if (log_dir(db_path) || looks_like_sqlite(db_path))
		return -1;
	if (private_file(db_path, true)) {
		pr_warn("%s: cannot create the event log: %s\n", db_path, strerror(errno));
		return -1;
	}
	for (const char *sfx = "-wal"; sfx; sfx = strcmp(sfx, "-wal") ? NULL : "-shm") {
		char side[4200];

		snprintf(side, sizeof(side), "%s%s", db_path, sfx);
		if (!access(side, F_OK) && private_file(side, true)) {
			pr_warn("%s: cannot make it private: %s\n", side, strerror(errno));
			return -1;
		}
	}
	if (sqlite3_open_v2(db_path, &log->db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
		pr_warn("%s: cannot open event log: %s\n", db_path, sqlite3_errmsg(log->db));
		return -1;
	}
	sqlite3_busy_timeout(log->db, 5000);
	return writable(log->db, db_path) || check_integrity(&log->db, db_path) ? -1 : 0;
}

/* The export, created 0600 like the database. */
static FILE *open_jsonl(const char *path)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	FILE *f = fd < 0 ? NULL : fdopen(fd, "a");

	if (fd >= 0 && !f)
		close(fd);
	return f;
}

int vg_eventlog_open(struct vg_eventlog *log, const char *db_path, const char *jsonl_path,
		     __u64 instance_id)
{
	memset(log, 0, sizeof(*log));
	log->path = db_path;
	log->instance_id = instance_id;
	if (open_db(log, db_path))
		goto fail;
	if (exec_sql(log->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;", "setting WAL") ||
	    exec_sql(log->db, schema, "creating the schema") || add_columns(log->db) ||
	    load(log)) {
		pr_warn("%s: cannot use event log: %s\n", db_path, sqlite3_errmsg(log->db));
		goto fail;
	}
	if (jsonl_path) {
		if (log_dir(jsonl_path) || load_jsonl(log, jsonl_path) ||
		    !(log->jsonl = open_jsonl(jsonl_path))) {
			pr_warn("%s: cannot open the JSON-lines export: %s\n", jsonl_path,
				strerror(errno));
			goto fail;
		}
	}
	return 0;
fail:
	vg_eventlog_close(log);
	return -1;
}

void vg_eventlog_close(struct vg_eventlog *log)
{
	if (log->db) {
		vg_eventlog_sync(log);
		sqlite3_finalize(log->insert_stmt);
		log->insert_stmt = NULL;
		sqlite3_close(log->db);
	}
	if (log->jsonl)
		fclose(log->jsonl);
	u64map_free(&log->seen);
	u64map_free(&log->agent_last);
	u64map_free(&log->jsonl_seen);
	log->db = NULL;
	log->jsonl = NULL;
}

struct sqlite3 *vg_eventlog_open_ro(const char *db_path)
{
	sqlite3 *db = NULL;

	if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
		pr_warn("%s: cannot open event log: %s (is 'vigil run' writing elsewhere? see "
			"--db)\n", db_path, db ? sqlite3_errmsg(db) : "out of memory");
		sqlite3_close(db);
		return NULL;
	}
	sqlite3_busy_timeout(db, 5000);
	return db;
}

bool vg_eventlog_has(const struct vg_eventlog *log, __u64 event_seq)
{
	return u64map_get(&log->seen, event_seq, NULL);
}

bool vg_eventlog_agent_last(const struct vg_eventlog *log, __u64 agent_id, __u64 *seq, __u32 *state)
{
	__u64 v;

	if (!u64map_get(&log->agent_last, agent_id, &v))
		return false;
	*seq = v >> 3;
	*state = v & 7;
	return true;
}


const char *vg_col_text(struct sqlite3_stmt *st, int i)
{
	const char *t = (const char *)sqlite3_column_text(st, i);

	return t ? t : "";
}

void vg_event_from_row(sqlite3_stmt *st, struct vigil_event *e, struct vg_event_view *v)
{
	const char *src = vg_col_text(st, 16);

	memset(e, 0, sizeof(*e));
	memset(v, 0, sizeof(*v));
	v->e = e;
	v->instance_id = (__u64)sqlite3_column_int64(st, 0);
	e->event_seq = (__u64)sqlite3_column_int64(st, 1);
	e->agent_id = (__u64)sqlite3_column_int64(st, 2);
	e->kind = vg_name_to(vg_col_text(st, 3), vg_kind_name, VIGIL_EV_KIND_MAX);
	if (vg_kind_is_monitor(e->kind)) {
		e->state = (__u16)vg_name_to(vg_col_text(st, 4), vg_part_name, VIGIL_PART_SWEEPER);
	} else if (vg_kind_is_lease(e->kind)) {
		e->state = (__u16)vg_name_to(vg_col_text(st, 4), vg_lease_state_name, VIGIL_LEASE_STATE_MAX);
		e->prev_state = (__u16)vg_name_to(vg_col_text(st, 5), vg_lease_state_name,
					       VIGIL_LEASE_STATE_MAX);
	} else {
		e->state = (__u16)vg_name_to(vg_col_text(st, 4), vg_state_name, VIGIL_AGENT_STATE_MAX);
		e->prev_state = (__u16)vg_name_to(vg_col_text(st, 5), vg_state_name,
					       VIGIL_AGENT_STATE_MAX);
	}
	v->name = vg_col_text(st, 6);
	v->group = vg_col_text(st, 7);
	e->slot = (__u32)sqlite3_column_int64(st, 8);
	e->seq = (__u64)sqlite3_column_int64(st, 9);
	e->incarnation = (__u32)sqlite3_column_int64(st, 10);
	e->interval_ms = (__u32)sqlite3_column_int64(st, 11);
	e->last_seen_ns = (__u64)sqlite3_column_int64(st, 12);
	e->detected_ns = (__u64)sqlite3_column_int64(st, 13);
	v->deadline_ns = (__u64)sqlite3_column_int64(st, 14);
	e->reason = vg_name_to(vg_col_text(st, 15), vg_reason_name, VIGIL_REJECT_REASON_MAX);
	if (*src) {
		char mapped[64];

		/* Stored as text; back to the IPv4-mapped form the printer expects. */
		if (!strchr(src, ':'))
			snprintf(mapped, sizeof(mapped), "::ffff:%s", src);
		else
			snprintf(mapped, sizeof(mapped), "%s", src);
		vg_parse_addr(mapped, e->src_addr);
	}
	v->detected_wall_ns = (__u64)sqlite3_column_int64(st, 17);
	v->reconciled = sqlite3_column_int(st, 18);
	e->flags = (__u16)sqlite3_column_int(st, 20);
	e->aux_ns = (__u64)sqlite3_column_int64(st, 21);
}

static int insert(struct vg_eventlog *log, const struct vg_event_view *v)
{
	static const char sql[] =
		"INSERT OR IGNORE INTO events (instance_id, event_seq, agent_id, kind, state,"
		" prev_state, name, grp, slot, seq, incarnation, interval_ms, last_seen_ns,"
		" detected_ns, deadline_ns, reason, source, detected_wall_ns, recorded_wall_ns,"
		" reconciled, flags, aux_ns) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)";
	const struct vigil_event *e = v->e;
	sqlite3_stmt *st;
	char src[64] = "";
	int rc, i = 1;

	/* Prepared once: a mass failure inserts a million rows. */
	if (!log->insert_stmt &&
	    sqlite3_prepare_v2(log->db, sql, -1, &log->insert_stmt, NULL) != SQLITE_OK)
		return -1;
	st = log->insert_stmt;
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (e->kind == VIGIL_EV_REJECTED)
		vg_fmt_addr(e->src_addr, src, sizeof(src));
	sqlite3_bind_int64(st, i++, (sqlite3_int64)log->instance_id);
	sqlite3_bind_int64(st, i++, (sqlite3_int64)e->event_seq);
	sqlite3_bind_int64(st, i++, (sqlite3_int64)e->agent_id);
	sqlite3_bind_text(st, i++, vg_kind_name(e->kind), -1, SQLITE_STATIC);
	sqlite3_bind_text(st, i++, vg_event_state_name(e->kind, e->state), -1, SQLITE_STATIC);
	sqlite3_bind_text(st, i++, vg_event_state_name(e->kind, e->prev_state), -1, SQLITE_STATIC);
	sqlite3_bind_text(st, i++, v->name ? v->name : "", -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, i++, v->group ? v->group : "", -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, i++, e->slot == 0xffffffffu ? -1 : (sqlite3_int64)e->slot);
	sqlite3_bind_int64(st, i++, (sqlite3_int64)e->seq);
	sqlite3_bind_int64(st, i++, e->incarnation);
	sqlite3_bind_int64(st, i++, e->interval_ms);
	sqlite3_bind_int64(st, i++, (sqlite3_int64)e->last_seen_ns);
	sqlite3_bind_int64(st, i++, (sqlite3_int64)e->detected_ns);
	if (v->deadline_ns)
		sqlite3_bind_int64(st, i++, (sqlite3_int64)v->deadline_ns);
	else
		sqlite3_bind_null(st, i++);
	if (e->kind == VIGIL_EV_REJECTED) {
		sqlite3_bind_text(st, i++, vg_reason_name(e->reason), -1, SQLITE_STATIC);
		sqlite3_bind_text(st, i++, src, -1, SQLITE_TRANSIENT);
	} else {
		sqlite3_bind_null(st, i++);
		sqlite3_bind_null(st, i++);
	}
	sqlite3_bind_int64(st, i++, (sqlite3_int64)vg_mono_to_wall(e->detected_ns));
	sqlite3_bind_int64(st, i++, (sqlite3_int64)vg_wall_ns());
	sqlite3_bind_int(st, i++, v->reconciled);
	sqlite3_bind_int(st, i++, e->flags);
	sqlite3_bind_int64(st, i++, (sqlite3_int64)e->aux_ns);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

int vg_eventlog_append(struct vg_eventlog *log, const struct vg_event_view *v)
{
	struct vg_event_view vi = *v;
	int added = 0;

	vi.instance_id = log->instance_id;
	if (log->failed)
		return -1; /* the transaction is lost anyway; do not wait on the lock again */
	if (log->jsonl && !u64map_get(&log->jsonl_seen, v->e->event_seq, NULL)) {
		vg_event_print_json(log->jsonl, &vi);
		u64map_put(&log->jsonl_seen, v->e->event_seq, 1);
	}
	if (vg_eventlog_has(log, v->e->event_seq))
		return 0;
	if (!log->in_txn) {
		if (exec_sql(log->db, "BEGIN IMMEDIATE", "starting a transaction")) {
			log->failed = true;
			return -1;
		}
		log->in_txn = true;
	}
	if (insert(log, &vi)) {
		pr_warn("event log: recording event %llu failed: %s\n",
			(unsigned long long)v->e->event_seq, sqlite3_errmsg(log->db));
		log->failed = true;
		return -1;
	}
	added = 1;
	remember(log, v->e->event_seq, vg_kind_changes_agent(v->e->kind) ? v->e->agent_id : 0,
		 v->e->state);
	log->written++;
	if (log->on_recorded)
		log->on_recorded(log->on_recorded_ctx, &vi);
	return added;
}

int vg_eventlog_notice(struct vg_eventlog *log, __u64 agent_id, const char *kind,
		       const char *detail)
{
	sqlite3_stmt *st;
	int rc;

	if (log->failed)
		return -1;
	if (!log->in_txn) {
		if (exec_sql(log->db, "BEGIN IMMEDIATE", "starting a transaction")) {
			log->failed = true;
			return -1;
		}
		log->in_txn = true;
	}
	if (sqlite3_prepare_v2(log->db, "INSERT INTO notices (agent_id, kind, detail, wall_ns) "
					"VALUES (?, ?, ?, ?)", -1, &st, NULL) != SQLITE_OK) {
		log->failed = true;
		return -1;
	}
	sqlite3_bind_int64(st, 1, (sqlite3_int64)agent_id);
	sqlite3_bind_text(st, 2, kind, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, detail, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)vg_wall_ns());
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		log->failed = true;
		return -1;
	}
	return 0;
}

/* Undo what the failed transaction appended: roll it back and rebuild the
 * in-memory view (seen sequences, per-agent last state) from what the
 * database really holds, so that the same events are appended again. */
static void roll_back(struct vg_eventlog *log)
{
	if (!sqlite3_get_autocommit(log->db))
		sqlite3_exec(log->db, "ROLLBACK", NULL, NULL, NULL);
	u64map_free(&log->seen);
	u64map_free(&log->agent_last);
	log->max_seq = 0;
	if (load(log))
		pr_warn("event log: re-reading %s after a failed write failed: %s\n", log->path,
			sqlite3_errmsg(log->db));
}

int vg_eventlog_sync(struct vg_eventlog *log)
{
	bool failed = log->failed;

	if (log->jsonl && fflush(log->jsonl))
		pr_warn("writing the JSON-lines export failed: %s\n", strerror(errno));
	log->failed = false;
	if (log->in_txn) {
		log->in_txn = false;
		if (!failed && exec_sql(log->db, "COMMIT", "committing events") == 0)
			return 0;
		failed = true;
	}
	if (failed)
		roll_back(log);
	return failed ? -1 : 0;
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

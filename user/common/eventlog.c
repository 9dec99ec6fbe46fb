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
	/* Rejections: the row covers event_seq .. event_seq_last; open while
	 * the daemon may still add to it (the export waits for it). */
	"  event_seq_last INTEGER, open INTEGER,"
	"  PRIMARY KEY (instance_id, event_seq)) WITHOUT ROWID;"
	"CREATE INDEX IF NOT EXISTS events_agent ON events(agent_id, detected_wall_ns);"
	"CREATE INDEX IF NOT EXISTS events_time ON events(detected_wall_ns);"
	/* Rejections by window, reason and source (at most VG_REJECT_SOURCES
	 * sources per window; the rest as 'other'). */
	"CREATE TABLE IF NOT EXISTS rejections ("
	"  instance_id INTEGER NOT NULL, window_wall_ns INTEGER NOT NULL,"
	"  reason TEXT NOT NULL, source TEXT NOT NULL, count INTEGER NOT NULL,"
	"  agent_id INTEGER,"   /* the agent id the last of them claimed */
	"  first_wall_ns INTEGER NOT NULL, last_wall_ns INTEGER NOT NULL,"
	"  PRIMARY KEY (instance_id, window_wall_ns, reason, source)) WITHOUT ROWID;"
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
	"  to_agent INTEGER, wall_ns INTEGER);"
	/* Leases replicated through NATS (--lease-nats): the bucket's record as
	 * this monitor (`monitor`) last read it, for `vigil lease list` on a
	 * monitor that stands by. */
	"CREATE TABLE IF NOT EXISTS lease_replica (lease_id INTEGER PRIMARY KEY,"
	"  monitor TEXT, granter TEXT, holder INTEGER, token INTEGER, revision INTEGER,"
	"  term_ms INTEGER, wall_ns INTEGER);";

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

/* The statements an append may run, prepared once each (log->stmt). */
enum stmt {
	ST_INSERT,
	ST_COVER,     /* the row at or before an event_seq, and where it ends */
	ST_EXTEND,    /* a row of rejections grows by one */
	ST_CLOSE,
	ST_ROW,       /* one row, as the readers see it */
	ST_SOURCES,   /* a window's (reason, source) keys so far, and whether one is there */
	ST_COUNT,     /* one more rejection in the breakdown */
	ST_MAX,
};

static const char *const stmt_sql[ST_MAX] = {
	[ST_INSERT] =
		"INSERT OR IGNORE INTO events (instance_id, event_seq, agent_id, kind, state,"
		" prev_state, name, grp, slot, seq, incarnation, interval_ms, last_seen_ns,"
		" detected_ns, deadline_ns, reason, source, detected_wall_ns, recorded_wall_ns,"
		" reconciled, flags, aux_ns, event_seq_last, open)"
		" VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
	[ST_COVER] = "SELECT " VG_EVENT_SEQ_END " FROM events WHERE instance_id = ?1 AND"
		     " event_seq <= ?2 ORDER BY event_seq DESC LIMIT 1",
	[ST_EXTEND] = "UPDATE events SET event_seq_last = ?3, aux_ns = ?4 WHERE instance_id = ?1"
		      " AND event_seq = ?2",
	[ST_CLOSE] = "UPDATE events SET open = NULL, recorded_wall_ns = ?3 WHERE instance_id = ?1"
		     " AND event_seq = ?2",
	[ST_ROW] = "SELECT " VG_EVENT_COLS " FROM events WHERE instance_id = ?1 AND event_seq = ?2",
	[ST_SOURCES] = "SELECT count(*), coalesce(sum(reason = ?3 AND source = ?4), 0) FROM"
		       " rejections WHERE instance_id = ?1 AND window_wall_ns = ?2 AND"
		       " source != 'other'",
	[ST_COUNT] = "INSERT INTO rejections VALUES (?1, ?2, ?3, ?4, 1, ?5, ?6, ?6) ON CONFLICT"
		     " DO UPDATE SET count = count + 1, agent_id = excluded.agent_id,"
		     " last_wall_ns = excluded.last_wall_ns",
};

/* Statement id, reset, its bindings cleared and ?1 bound to the instance;
 * NULL if it cannot be prepared. */
static sqlite3_stmt *stmt(struct vg_eventlog *log, enum stmt id)
{
	_Static_assert(ST_MAX <= sizeof(log->stmt) / sizeof(log->stmt[0]), "room for them");
	sqlite3_stmt *st = log->stmt[id];

	if (!st && sqlite3_prepare_v2(log->db, stmt_sql[id], -1, &log->stmt[id], NULL) != SQLITE_OK)
		return NULL;
	st = log->stmt[id];
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (id != ST_INSERT)
		sqlite3_bind_int64(st, 1, (sqlite3_int64)log->instance_id);
	return st;
}

/* Step a statement that returns nothing; true when done. */
static bool step_done(sqlite3_stmt *st)
{
	int rc = st ? sqlite3_step(st) : SQLITE_ERROR;

	if (st)
		sqlite3_reset(st);
	return rc == SQLITE_DONE;
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
		{ "event_seq_last", "ALTER TABLE events ADD COLUMN event_seq_last INTEGER" },
		{ "open", "ALTER TABLE events ADD COLUMN open INTEGER" },
	};
	enum { N_COLS = sizeof(cols) / sizeof(cols[0]) };
	sqlite3_stmt *st;
	bool have[N_COLS] = {};

	if (sqlite3_prepare_v2(db, "SELECT name FROM pragma_table_info('events')", -1, &st,
			       NULL) != SQLITE_OK)
		return -1;
	while (sqlite3_step(st) == SQLITE_ROW)
		for (size_t i = 0; i < N_COLS; i++)
			if (!strcmp(vg_col_text(st, 0), cols[i][0]))
				have[i] = true;
	sqlite3_finalize(st);
	for (size_t i = 0; i < N_COLS; i++)
		if (!have[i] && exec_sql(db, cols[i][1], "adding a column to the event log"))
			return -1;
	return 0;
}

/* What the daemon keeps of the log in memory, read back: each agent's last
 * transition (one row per agent, whatever the log holds), and the row of
 * rejections that was still open (a daemon that stopped without closing
 * it: this one carries on with it). Rows of other instances' that were
 * left open can no longer grow: they are closed. */
static int load(struct vg_eventlog *log)
{
	sqlite3_stmt *st;
	int rc;

	rc = sqlite3_prepare_v2(log->db,
				"SELECT agent_id, max(event_seq), state FROM events WHERE instance_id = ?"
				" AND kind != 'rejected' AND kind NOT LIKE 'lease%'"
				" AND kind NOT LIKE 'monitor%' GROUP BY agent_id", -1, &st, NULL);
	if (rc != SQLITE_OK)
		return -1;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)log->instance_id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		remember(log, (__u64)sqlite3_column_int64(st, 1), (__u64)sqlite3_column_int64(st, 0),
			 state_from_name((const char *)sqlite3_column_text(st, 2)));
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return -1;
	memset(&log->run, 0, sizeof(log->run));
	rc = sqlite3_prepare_v2(log->db,
				"SELECT event_seq, event_seq_last, detected_wall_ns FROM events WHERE"
				" instance_id = ? AND open IS NOT NULL", -1, &st, NULL);
	if (rc != SQLITE_OK)
		return -1;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)log->instance_id);
	if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		__u64 wall = (__u64)sqlite3_column_int64(st, 2);

		log->run = (struct vg_reject_run){
			.open = true,
			.first = (__u64)sqlite3_column_int64(st, 0),
			.last = (__u64)sqlite3_column_int64(st, 1),
			.window_ns = wall - wall % VG_REJECT_WINDOW_NS,
		};
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return -1;
	if (sqlite3_prepare_v2(log->db, "UPDATE events SET open = NULL WHERE open IS NOT NULL AND"
					" instance_id != ?", -1, &st, NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)log->instance_id);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

/* The meta key of the export's end of file at the last commit. */
static void jsonl_end_key(const char *path, char *buf, size_t len)
{
	snprintf(buf, len, "jsonl_end:%s", path);
}

/* The export dedupes on its own: a crash can fall between writing a line
 * and committing its event, which is then appended (and written) again.
 * Only lines after the export's end at the last commit can be such lines:
 * read those back (all of the file if it is shorter: replaced or rotated). */
static int load_jsonl(struct vg_eventlog *log, const char *path)
{
	char *line = NULL, key[4200];
	size_t cap = 0;
	ssize_t n;
	int last = '\n';
	long long end = 0;
	sqlite3_stmt *st;
	struct stat sb;
	FILE *f = fopen(path, "r");

	if (!f)
		return errno == ENOENT ? 0 : -1;
	jsonl_end_key(path, key, sizeof(key));
	if (sqlite3_prepare_v2(log->db, "SELECT value FROM meta WHERE key = ?", -1, &st, NULL) ==
	    SQLITE_OK) {
		sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
		if (sqlite3_step(st) == SQLITE_ROW)
			end = sqlite3_column_int64(st, 0);
		sqlite3_finalize(st);
	}
	if (!fstat(fileno(f), &sb) && end > 0 && end <= sb.st_size && fseeko(f, end - 1, SEEK_SET) == 0)
		last = fgetc(f); /* the character before: a line end, or a line torn there */
	while ((n = getline(&line, &cap, f)) > 0) {
		unsigned long long seq, inst;
		char *p = strstr(line, "\"instance\":\"");

		if (last == '\n' && line[n - 1] == '\n' && p && sscanf(p + 12, "%llx", &inst) == 1 &&
		    inst == log->instance_id && sscanf(line, "{\"event_seq\":%llu,", &seq) == 1)
			u64map_put(&log->jsonl_seen, seq, 1);
		last = line[n - 1];
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

/* In the transaction being committed: where the export ends now. */
static int note_jsonl_end(struct vg_eventlog *log)
{
	char key[4200];
	struct stat sb;
	sqlite3_stmt *st;
	int rc;

	if (!log->jsonl || fstat(fileno(log->jsonl), &sb))
		return 0;
	jsonl_end_key(log->jsonl_path, key, sizeof(key));
	if (sqlite3_prepare_v2(log->db, "INSERT OR REPLACE INTO meta VALUES (?, ?)", -1, &st,
			       NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)sb.st_size);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : -1;
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
		log->jsonl_path = jsonl_path;
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

static int close_run(struct vg_eventlog *log);
static int begin(struct vg_eventlog *log);

void vg_eventlog_close(struct vg_eventlog *log)
{
	if (log->db) {
		/* Stopping: the row of rejections is final. */
		vg_eventlog_sync(log);
		if (log->run.open && !begin(log))
			close_run(log);
		vg_eventlog_sync(log);
		for (size_t i = 0; i < sizeof(log->stmt) / sizeof(log->stmt[0]); i++) {
			sqlite3_finalize(log->stmt[i]);
			log->stmt[i] = NULL;
		}
		sqlite3_close(log->db);
	}
	if (log->jsonl)
		fclose(log->jsonl);
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

/* 1 if a row covers event_seq, 0 if none, -1 on a database error. */
static int covered(struct vg_eventlog *log, __u64 event_seq)
{
	sqlite3_stmt *st;
	int rc;

	if (log->run.open && event_seq >= log->run.first && event_seq <= log->run.last)
		return 1;
	st = stmt(log, ST_COVER);
	if (!st)
		return -1;
	sqlite3_bind_int64(st, 2, (sqlite3_int64)event_seq);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		rc = (__u64)sqlite3_column_int64(st, 0) >= event_seq;
	else
		rc = rc == SQLITE_DONE ? 0 : -1;
	sqlite3_reset(st);
	return rc;
}

bool vg_eventlog_has(struct vg_eventlog *log, __u64 event_seq)
{
	return covered(log, event_seq) == 1;
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
	v->seq_last = (__u64)sqlite3_column_int64(st, 22);
	v->open = sqlite3_column_int(st, 23) != 0;
}

/* A new row: an event, or the first of a row of rejections (open). */
static int insert(struct vg_eventlog *log, const struct vg_event_view *v)
{
	const struct vigil_event *e = v->e;
	sqlite3_stmt *st = stmt(log, ST_INSERT);
	bool rejected = e->kind == VIGIL_EV_REJECTED;
	char src[64] = "";
	int i = 1;

	if (!st)
		return -1;
	if (rejected)
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
	if (rejected) {
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
	/* A row of rejections: aux_ns is when its last one was detected. */
	sqlite3_bind_int64(st, i++, (sqlite3_int64)(rejected ? e->detected_ns : e->aux_ns));
	if (rejected) {
		sqlite3_bind_int64(st, i++, (sqlite3_int64)e->event_seq);
		sqlite3_bind_int(st, i++, 1);
	}
	return step_done(st) ? 0 : -1;
}

static int begin(struct vg_eventlog *log)
{
	if (log->in_txn)
		return 0;
	if (exec_sql(log->db, "BEGIN IMMEDIATE", "starting a transaction")) {
		log->failed = true;
		return -1;
	}
	log->in_txn = true;
	return 0;
}

/* A recorded row to the JSON-lines export (once) and the on_recorded hook. */
static void recorded(struct vg_eventlog *log, const struct vg_event_view *v)
{
	if (log->jsonl && !u64map_get(&log->jsonl_seen, v->e->event_seq, NULL)) {
		vg_event_print_json(log->jsonl, v);
		u64map_put(&log->jsonl_seen, v->e->event_seq, 1);
	}
	if (log->on_recorded)
		log->on_recorded(log->on_recorded_ctx, v);
}

/* The row of rejections is final: mark it so (the export takes it now), and
 * report it as recorded, as it reads back. */
static int close_run(struct vg_eventlog *log)
{
	sqlite3_stmt *st = stmt(log, ST_CLOSE);
	struct vigil_event e;
	struct vg_event_view v;
	int ret = -1;

	log->run.open = false;
	if (!st)
		goto out;
	sqlite3_bind_int64(st, 2, (sqlite3_int64)log->run.first);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)vg_wall_ns());
	if (!step_done(st) || !(st = stmt(log, ST_ROW)))
		goto out;
	sqlite3_bind_int64(st, 2, (sqlite3_int64)log->run.first);
	if (sqlite3_step(st) == SQLITE_ROW) {
		vg_event_from_row(st, &e, &v);
		recorded(log, &v);
		ret = 0;
	}
	sqlite3_reset(st);
out:
	if (ret) {
		pr_warn("event log: closing the rejections from event %llu failed: %s\n",
			(unsigned long long)log->run.first, sqlite3_errmsg(log->db));
		log->failed = true;
	}
	return ret;
}

/* One more rejection in the breakdown by window, reason and source: a new
 * (reason, source) key while the window has VG_REJECT_SOURCES counts as
 * source "other". */
static int count_rejection(struct vg_eventlog *log, const struct vigil_event *e, __u64 window,
			   __u64 wall)
{
	sqlite3_stmt *st = stmt(log, ST_SOURCES);
	const char *reason = vg_reason_name(e->reason);
	char src[64];
	bool other = false;

	vg_fmt_addr(e->src_addr, src, sizeof(src));
	if (!st)
		return -1;
	sqlite3_bind_int64(st, 2, (sqlite3_int64)window);
	sqlite3_bind_text(st, 3, reason, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, src, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_ROW) {
		sqlite3_reset(st);
		return -1;
	}
	other = sqlite3_column_int64(st, 1) == 0 && sqlite3_column_int64(st, 0) >= VG_REJECT_SOURCES;
	sqlite3_reset(st);
	st = stmt(log, ST_COUNT);
	if (!st)
		return -1;
	sqlite3_bind_int64(st, 2, (sqlite3_int64)window);
	sqlite3_bind_text(st, 3, reason, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, other ? "other" : src, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 5, (sqlite3_int64)e->agent_id);
	sqlite3_bind_int64(st, 6, (sqlite3_int64)wall);
	return step_done(st) ? 0 : -1;
}

/* A rejection: the open row grows by it when it is the next event_seq in
 * the same window; otherwise that row is closed and a new one starts. */
static int append_rejected(struct vg_eventlog *log, const struct vg_event_view *v)
{
	const struct vigil_event *e = v->e;
	__u64 wall = vg_mono_to_wall(e->detected_ns), window = wall - wall % VG_REJECT_WINDOW_NS;
	struct vg_reject_run *r = &log->run;
	sqlite3_stmt *st;

	if (r->open && e->event_seq == r->last + 1 && window == r->window_ns) {
		st = stmt(log, ST_EXTEND);
		if (!st)
			return -1;
		sqlite3_bind_int64(st, 2, (sqlite3_int64)r->first);
		sqlite3_bind_int64(st, 3, (sqlite3_int64)e->event_seq);
		sqlite3_bind_int64(st, 4, (sqlite3_int64)e->detected_ns);
		if (!step_done(st))
			return -1;
		r->last = e->event_seq;
	} else {
		if ((r->open && close_run(log)) || insert(log, v))
			return -1;
		*r = (struct vg_reject_run){
			.open = true, .first = e->event_seq, .last = e->event_seq, .window_ns = window
		};
	}
	return count_rejection(log, e, window, wall);
}

int vg_eventlog_append(struct vg_eventlog *log, const struct vg_event_view *v)
{
	const struct vigil_event *e = v->e;
	struct vg_event_view vi = *v;
	int known;

	vi.instance_id = log->instance_id;
	if (log->failed)
		return -1; /* the transaction is lost anyway; do not wait on the lock again */
	if (e->kind == VIGIL_EV_REJECTED) {
		/* Inside a row of rejections, or not: the database knows. */
		known = covered(log, e->event_seq);
		if (known)
			goto out;
		if (begin(log) || append_rejected(log, &vi))
			goto failed;
	} else {
		/* The row of rejections cannot grow past this event; the insert
		 * itself tells whether the event was recorded before. */
		if (begin(log) ||
		    (log->run.open && e->event_seq > log->run.last && close_run(log)) ||
		    insert(log, &vi))
			goto failed;
		if (!sqlite3_changes(log->db))
			return 0;
		remember(log, e->event_seq, vg_kind_changes_agent(e->kind) ? e->agent_id : 0,
			 e->state);
		recorded(log, &vi);
	}
	log->written++;
	return 1;
failed:
	pr_warn("event log: recording event %llu failed: %s\n", (unsigned long long)e->event_seq,
		sqlite3_errmsg(log->db));
	known = -1;
out:
	if (known < 0)
		log->failed = true;
	return known < 0 ? -1 : 0;
}

int vg_eventlog_notice(struct vg_eventlog *log, __u64 agent_id, const char *kind,
		       const char *detail)
{
	sqlite3_stmt *st;
	int rc;

	if (log->failed || begin(log))
		return -1;
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

/* Undo what the failed transaction appended: roll it back and read the
 * in-memory view (per-agent last state, the open row of rejections) back
 * from what the database really holds, so that the same events are
 * appended again. */
static void roll_back(struct vg_eventlog *log)
{
	if (!sqlite3_get_autocommit(log->db))
		sqlite3_exec(log->db, "ROLLBACK", NULL, NULL, NULL);
	u64map_free(&log->agent_last);
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
		if (!failed && !note_jsonl_end(log) &&
		    exec_sql(log->db, "COMMIT", "committing events") == 0) {
			/* Committed: the database dedupes these from now on. */
			u64map_free(&log->jsonl_seen);
			return 0;
		}
		failed = true;
	}
	if (failed)
		roll_back(log);
	return failed ? -1 : 0;
}

int vg_eventlog_tick(struct vg_eventlog *log)
{
	__u64 wall = vg_wall_ns();

	if (!log->run.open || wall < log->run.window_ns + VG_REJECT_WINDOW_NS || log->failed)
		return 0;
	if (begin(log) || close_run(log)) {
		vg_eventlog_sync(log);
		return -1;
	}
	return vg_eventlog_sync(log);
}

int vg_log_prune(const char *db_path, unsigned long long max_age_s, unsigned long long max_events,
		 unsigned long long rejections_age_s, long *removed)
{
	static const char *const sql[] = {
		"DELETE FROM events WHERE detected_wall_ns < ?",
		"DELETE FROM events WHERE recorded_wall_ns < (SELECT recorded_wall_ns FROM events"
		" ORDER BY recorded_wall_ns DESC LIMIT 1 OFFSET ?)",
		"DELETE FROM rejections WHERE last_wall_ns < ?",
	};
	__u64 now = vg_wall_ns();
	sqlite3_int64 arg[] = {
		(sqlite3_int64)(now - max_age_s * VIGIL_NSEC_PER_SEC),
		(sqlite3_int64)max_events - 1,
		(sqlite3_int64)(now - rejections_age_s * VIGIL_NSEC_PER_SEC),
	};
	bool on[] = { max_age_s, max_events, rejections_age_s };
	sqlite3 *db = NULL;
	sqlite3_stmt *st;
	int rc = -1;

	if (sqlite3_open(db_path, &db) != SQLITE_OK)
		goto out;
	sqlite3_busy_timeout(db, 5000);
	*removed = 0;
	for (size_t i = 0; i < sizeof(sql) / sizeof(sql[0]); i++) {
		if (!on[i])
			continue;
		/* The breakdown of rejections is not events: not counted. */
		if (sqlite3_prepare_v2(db, sql[i], -1, &st, NULL) != SQLITE_OK)
			goto out;
		sqlite3_bind_int64(st, 1, arg[i]);
		rc = sqlite3_step(st);
		sqlite3_finalize(st);
		if (rc != SQLITE_DONE) {
			rc = -1;
			goto out;
		}
		if (i < 2)
			*removed += sqlite3_changes(db);
	}
	rc = 0;
out:
	if (rc)
		pr_warn("%s: pruning failed: %s\n", db_path, db ? sqlite3_errmsg(db) : "cannot open");
	sqlite3_close(db);
	return rc;
}

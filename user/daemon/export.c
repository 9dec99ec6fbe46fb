// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/*
 * The NATS JetStream exporter (see export.h for the delivery contract).
 *
 * One thread, with its own connection to the event log and its own NATS
 * connection. Like the alert workers, it never holds a database lock while
 * it talks to the network: it reads a batch of rows, lets go of the
 * database, publishes them one at a time (each waits for its PubAck, which
 * keeps the stream in the log's order even when a publish must be retried),
 * and records each acknowledged row in a short transaction of its own.
 *
 * Export order is (instance_id, event_seq); the cursor is the last row
 * acknowledged. Everything at or below the cursor is either published or
 * inside a recorded gap: when the cursor moves from C to a row R that is not
 * C's successor (a hole in event_seq, a change of instance), the keys
 * strictly between them are recorded as a gap. A row that later appears
 * inside a gap (a transition reconciled from the maps, a new instance whose
 * random id sorts lower) is published then, and the gap split around it.
 * Before passing a hole the exporter waits HOLD_MS for it to fill, so rows
 * that merely arrive out of order (two CPUs, one ring buffer) keep their
 * order in the stream.
 *
 * Each acknowledged row is committed at once with synchronous=NORMAL (it
 * survives the process, not yet a power cut), and each pass that moved the
 * cursor ends with one fsync'ed commit: a power cut can only forget the
 * steps of the pass in progress. A crash between a PubAck and the cursor's
 * commit is corrected on start: the exporter reads this host's last message
 * in the stream and moves the cursor up to it, so that row is not published
 * twice whatever the duplicate window. Rows it steps over (a cursor that
 * lost steps to a power cut) go into a gap and are published again -- the
 * stream drops them within its duplicate window -- rather than risked.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/random.h>
#include <nats/nats.h>
#include <sqlite3.h>
#include "daemon/dstats.h"
#include "common/eventlog.h"
#include "common/json.h"
#include "daemon/export.h"
#include "daemon/natsauth.h"
#include "common/log.h"
#include "common/secret.h"
#include "common/sql.h"
#include "common/waker.h"
#include "common/util.h"

/* The worker looks for new rows at least this often, and sooner when the
 * daemon committed (PRAGMA data_version, checked every WAKE_MS). */
#define POLL_MS 100
#define WAKE_MS 5
/* Rows read per query; a full batch is followed by another at once. */
#define BATCH 64
/* How often rows inside gaps (below the cursor) are looked for. */
#define GAP_SCAN_MS 1000
/* How long the row after a hole waits for the hole to fill. */
#define HOLD_MS 1000
/* Wait for a PubAck or a JetStream API reply. */
#define REQUEST_WAIT_MS 2000
#define CONNECT_TIMEOUT_MS 1000
/* Retry delay after a failure: uniform in [cap/2, cap], cap doubling from
 * BACKOFF_BASE_MS up to BACKOFF_MAX_MS. */
#define BACKOFF_BASE_MS 100ULL
#define BACKOFF_MAX_MS 5000ULL
#define MAX_URLS 16
#define NAME_MAX_LEN 64
/* How often the exporter announces itself in the presence bucket. */
#define PRESENCE_MS VG_EXPORT_PRESENCE_MS
#define ERR_LEN 384

void vg_export_cfg_default(struct vg_export_cfg *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->stream = VG_EXPORT_STREAM;
	cfg->replicas = 1;
}

/* Stream names and subject tokens: no dots, wildcards, spaces or slashes. */
static bool token_ok(const char *s)
{
	return vg_token_ok(s, NAME_MAX_LEN);
}

static int check_urls(const char *arg)
{
	const char *p = arg;
	int n = 0;

	for (;;) {
		size_t len = strcspn(p, ",");

		if (!len || (strncmp(p, "nats://", 7) && strncmp(p, "tls://", 6)) ||
		    ++n > MAX_URLS) {
			pr_warn("--export-nats: '%s' is not a list of up to %d nats:// or tls:// URLs "
				"separated by commas\n", arg, MAX_URLS);
			return -1;
		}
		if (!p[len])
			return 0;
		p += len + 1;
	}
}

int vg_export_cfg_check(const struct vg_export_cfg *cfg)
{
	struct vg_nats_auth a;

	if (cfg->nats_urls && check_urls(cfg->nats_urls))
		return -1;
	if (cfg->nats_urls) {
		if (vg_nats_auth_load(&cfg->auth, &a))
			return -1;
		vg_nats_auth_free(&a);
	}
	if (!token_ok(cfg->stream)) {
		pr_warn("--export-stream: '%s' is not a stream name (1-%d of A-Z a-z 0-9 _ -)\n",
			cfg->stream, NAME_MAX_LEN);
		return -1;
	}
	if (cfg->host && !token_ok(cfg->host)) {
		pr_warn("--export-host: '%s' is not a subject token (1-%d of A-Z a-z 0-9 _ -)\n",
			cfg->host, NAME_MAX_LEN);
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------------- keys */

/* A row's place in export order, in SQLite's (signed) integer order. */
struct key {
	sqlite3_int64 inst, seq;
};

static const struct key key_min = { INT64_MIN, INT64_MIN };

static int key_cmp(struct key a, struct key b)
{
	if (a.inst != b.inst)
		return a.inst < b.inst ? -1 : 1;
	return a.seq < b.seq ? -1 : a.seq > b.seq;
}

/* event_seq is at least 1, far from either end of the range. */
static struct key key_succ(struct key k)
{
	k.seq++;
	return k;
}

static struct key key_pred(struct key k)
{
	k.seq--;
	return k;
}

/* ----------------------------------------------------------- exporter */

struct row {
	struct key k, end; /* the row's key, and the last event_seq it covers (rejections) */
	char *payload;
	size_t len;
};

struct vg_exporter {
	struct vg_export_cfg cfg;
	char host[NAME_MAX_LEN + 1];
	char subject[sizeof(VG_EXPORT_SUBJECT_PREFIX) + NAME_MAX_LEN];
	char target[2 * NAME_MAX_LEN + sizeof(VG_EXPORT_SUBJECT_PREFIX) + 2];
	char presence_subject[2 * NAME_MAX_LEN + 32]; /* $KV.<stream>_MONITORS.<host> */
	char *urls_buf;         /* the URLs, split */
	size_t urls_len;
	const char *urls[MAX_URLS];
	int n_urls;
	char urls_shown[1024];  /* the URLs without credentials, for messages */
	struct vg_nats_auth auth;
	struct vg_daemon_stats *ds;
	struct vg_waker w; /* its lock guards nc against vg_exporter_stop's close */
	pthread_t thread;
	bool running;

	/* The worker's own. */
	sqlite3 *db;
	natsConnection *nc;
	jsCtx *js;
	bool stream_ready;      /* looked up (or created) and resumed since the last error */
	bool have_cursor;
	struct key cursor;      /* last row acknowledged, in export order */
	bool holding;
	struct key hold_key;    /* the row after a hole, waiting for it to fill */
	__u64 hold_since;
	__u64 last_gap_scan;
	__u64 last_presence;
	bool cursor_dirty;      /* committed since the last fsync'ed commit */
	sqlite3_int64 data_version;
	__u32 failures;         /* in a row */
	char last_err[ERR_LEN]; /* last reported, so a retry loop says it once */
	__u64 rng;
	__u64 exported, duplicates;
};

static bool stopping(struct vg_exporter *x)
{
	return vg_waker_stopping(&x->w);
}

/* The same for a request on the connection, which mostly fails because no
 * server is reachable while libnats reconnects. */
static const char *request_why(struct vg_exporter *x, natsStatus s)
{
	static __thread char why[96];

	if (x->nc && natsConnection_Status(x->nc) == NATS_CONN_STATUS_RECONNECTING)
		return "no NATS server reachable (reconnecting)";
	if (s == NATS_TIMEOUT) {
		snprintf(why, sizeof(why), "no reply from JetStream within %d ms", REQUEST_WAIT_MS);
		return why;
	}
	return vg_nats_why(s);
}

/* One failed step: counted, said once per streak of the same error (later
 * repeats at debug level), followed by a backoff. Always returns -1. */
static int failed(struct vg_exporter *x, const char *step, const char *why)
{
	char msg[ERR_LEN];

	snprintf(msg, sizeof(msg), "%s failed: %s", step, why);
	x->failures++;
	if (x->ds)
		atomic_fetch_add(&x->ds->export_errors, 1);
	if (strcmp(msg, x->last_err)) {
		pr_warn("export: %s; retrying with backoff (events wait in the event log)\n", msg);
		vg_strlcpy(x->last_err, msg, sizeof(x->last_err));
	} else {
		pr_debug("export: %s (attempt %u)\n", msg, x->failures);
	}
	return -1;
}

static void backoff(struct vg_exporter *x)
{
	__u64 cap = BACKOFF_MAX_MS;

	if (x->failures <= 6 && (BACKOFF_BASE_MS << (x->failures - 1)) < cap)
		cap = BACKOFF_BASE_MS << (x->failures - 1);
	vg_waker_nap(&x->w, cap / 2 + vg_splitmix64(&x->rng) % (cap / 2 + 1));
}

/* A step succeeded: the next failure starts a new streak. */
static void recovered(struct vg_exporter *x)
{
	if (!x->failures)
		return;
	pr_info("export: working again after %u failed attempt(s)\n", x->failures);
	x->failures = 0;
	x->last_err[0] = '\0';
}

/* ------------------------------------------------------ the database */

static const char schema[] =
	/* The last row the stream acknowledged, per target (stream/subject). */
	"CREATE TABLE IF NOT EXISTS export_cursor ("
	"  target TEXT PRIMARY KEY, instance_id INTEGER, event_seq INTEGER);"
	/* Key ranges below the cursor the export order skipped (inclusive);
	 * a row that appears in one is published late. */
	"CREATE TABLE IF NOT EXISTS export_gaps ("
	"  target TEXT NOT NULL, lo_instance INTEGER NOT NULL, lo_seq INTEGER NOT NULL,"
	"  hi_instance INTEGER NOT NULL, hi_seq INTEGER NOT NULL,"
	"  PRIMARY KEY (target, lo_instance, lo_seq)) WITHOUT ROWID;";

/* Run one statement binding the target, then up to four integers. */
static bool run4(struct vg_exporter *x, const char *sql, int n, sqlite3_int64 a, sqlite3_int64 b,
		 sqlite3_int64 c, sqlite3_int64 d)
{
	sqlite3_int64 v[4] = { a, b, c, d };
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(x->db, sql, -1, &st, NULL) != SQLITE_OK)
		return false;
	sqlite3_bind_text(st, 1, x->target, -1, SQLITE_STATIC);
	for (int i = 0; i < n; i++)
		sqlite3_bind_int64(st, i + 2, v[i]);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE;
}

static bool add_gap(struct vg_exporter *x, struct key lo, struct key hi)
{
	if (key_cmp(lo, hi) > 0)
		return true; /* empty */
	return run4(x, "INSERT OR REPLACE INTO export_gaps VALUES (?1, ?2, ?3, ?4, ?5)", 4,
		    lo.inst, lo.seq, hi.inst, hi.seq);
}

static int commit_or_roll_back(struct vg_exporter *x, bool ok)
{
	if (ok && vg_sql_exec(x->db, "COMMIT"))
		return 0;
	vg_sql_exec(x->db, "ROLLBACK");
	return -1;
}

/* The row k .. end (end = k but for a row of rejections) was acknowledged
 * in export order: move the cursor to its end, and record what the order
 * stepped over as a gap. */
static int advance(struct vg_exporter *x, struct key k, struct key end)
{
	struct key lo = x->have_cursor ? key_succ(x->cursor) : key_min;
	bool ok = vg_sql_exec(x->db, "BEGIN IMMEDIATE") && add_gap(x, lo, key_pred(k)) &&
		  run4(x, "INSERT OR REPLACE INTO export_cursor VALUES (?1, ?2, ?3)", 2, end.inst,
		       end.seq, 0, 0);

	if (commit_or_roll_back(x, ok))
		return failed(x, "recording the export cursor", sqlite3_errmsg(x->db));
	x->cursor = end;
	x->have_cursor = true;
	x->cursor_dirty = true;
	return 0;
}

/* The row k .. end, inside the gap [lo, hi], was acknowledged: split the gap. */
static int fill(struct vg_exporter *x, struct key lo, struct key hi, struct key k, struct key end)
{
	bool ok = vg_sql_exec(x->db, "BEGIN IMMEDIATE") &&
		  run4(x, "DELETE FROM export_gaps WHERE target = ?1 AND lo_instance = ?2 AND "
			  "lo_seq = ?3", 2, lo.inst, lo.seq, 0, 0) &&
		  add_gap(x, lo, key_pred(k)) && add_gap(x, key_succ(end), hi);

	if (commit_or_roll_back(x, ok))
		return failed(x, "recording a late event as exported", sqlite3_errmsg(x->db));
	x->cursor_dirty = true;
	return 0;
}

/* Make what the pass recorded durable: one fsync'ed rewrite of the cursor
 * (the WAL is one file, so it carries the earlier commits to the disk too). */
static void sync_cursor(struct vg_exporter *x)
{
	bool ok;

	if (!x->cursor_dirty || !x->have_cursor)
		return;
	ok = vg_sql_exec(x->db, "PRAGMA synchronous=FULL") &&
	     run4(x, "INSERT OR REPLACE INTO export_cursor VALUES (?1, ?2, ?3)", 2, x->cursor.inst,
		  x->cursor.seq, 0, 0);
	vg_sql_exec(x->db, "PRAGMA synchronous=NORMAL");
	if (ok)
		x->cursor_dirty = false;
}

static int load_cursor(struct vg_exporter *x)
{
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(x->db, "SELECT instance_id, event_seq FROM export_cursor WHERE "
				      "target = ?1", -1, &st, NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_text(st, 1, x->target, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		x->cursor.inst = sqlite3_column_int64(st, 0);
		x->cursor.seq = sqlite3_column_int64(st, 1);
		x->have_cursor = true;
	}
	sqlite3_finalize(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -1;
}

/* The event as one line of the shared JSON format, without the newline. */
static int row_of(sqlite3_stmt *st, struct row *r)
{
	struct vigil_event e;
	struct vg_event_view v;

	vg_event_from_row(st, &e, &v);
	r->k.inst = sqlite3_column_int64(st, 0);
	r->k.seq = sqlite3_column_int64(st, 1);
	r->end = r->k;
	if (v.seq_last)
		r->end.seq = (sqlite3_int64)v.seq_last;
	r->payload = vg_event_json_line(&v, &r->len);
	return r->payload ? 0 : -1;
}

/* Read up to max rows with keys in [lo, hi] (or above the cursor when lo is
 * NULL), in export order, into memory; not a row of rejections that may
 * still grow (it is the log's last: nothing waits behind it). Returns how
 * many, -1 on error. */
static int read_rows(struct vg_exporter *x, const struct key *lo, const struct key *hi,
		     struct row *rows, int max)
{
	sqlite3_stmt *st;
	int n = 0, rc = SQLITE_DONE;
	const char *sql =
		lo ? "SELECT " VG_EVENT_COLS " FROM events WHERE (instance_id, event_seq) >= (?1, ?2)"
		     " AND (instance_id, event_seq) <= (?3, ?4) AND open IS NULL"
		     " ORDER BY instance_id, event_seq LIMIT ?5"
		   : "SELECT " VG_EVENT_COLS " FROM events WHERE (instance_id, event_seq) > (?1, ?2)"
		     " AND open IS NULL ORDER BY instance_id, event_seq LIMIT ?5";
	struct key after = x->have_cursor ? x->cursor : key_min;

	if (sqlite3_prepare_v2(x->db, sql, -1, &st, NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_int64(st, 1, lo ? lo->inst : after.inst);
	sqlite3_bind_int64(st, 2, lo ? lo->seq : after.seq);
	if (lo) {
		sqlite3_bind_int64(st, 3, hi->inst);
		sqlite3_bind_int64(st, 4, hi->seq);
	}
	sqlite3_bind_int(st, 5, max);
	while (n < max && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (row_of(st, &rows[n])) {
			rc = SQLITE_NOMEM;
			break;
		}
		n++;
	}
	sqlite3_finalize(st); /* no read transaction stays open while publishing */
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		while (n)
			free(rows[--n].payload);
		return -1;
	}
	return n;
}

static void free_rows(struct row *rows, int n)
{
	for (int i = 0; i < n; i++)
		free(rows[i].payload);
}

/* ------------------------------------------------------------ NATS */

static void disconnect(struct vg_exporter *x)
{
	pthread_mutex_lock(&x->w.lock);
	if (x->js)
		jsCtx_Destroy(x->js);
	if (x->nc)
		natsConnection_Destroy(x->nc);
	x->js = NULL;
	x->nc = NULL;
	pthread_mutex_unlock(&x->w.lock);
	x->stream_ready = false;
}

/* From libnats' own thread, while it reconnects by itself. */
static void on_disconnected(natsConnection *nc, void *closure)
{
	struct vg_exporter *x = closure;

	(void)nc;
	if (!stopping(x))
		pr_warn("export: lost the connection to NATS; reconnecting (events wait in the "
			"event log)\n");
}

/* The server a connection is on, without credentials. */
static const char *connected_url(natsConnection *nc, char *buf, size_t len)
{
	char url[1024] = "";

	natsConnection_GetConnectedUrl(nc, url, sizeof(url));
	vg_url_redact(url, buf, len);
	explicit_bzero(url, sizeof(url));
	return buf;
}

static void on_reconnected(natsConnection *nc, void *closure)
{
	char url[256];

	(void)closure;
	pr_info("export: reconnected to NATS at %s\n", connected_url(nc, url, sizeof(url)));
}

static int connect_nats(struct vg_exporter *x)
{
	natsConnection *nc = NULL;
	natsOptions *o = NULL;
	jsCtx *js = NULL;
	jsOptions jo;
	char name[NAME_MAX_LEN + 16], url[256];
	natsStatus s;

	snprintf(name, sizeof(name), "vigil-export %s", x->host);
	s = natsOptions_Create(&o);
	if (s == NATS_OK)
		s = natsOptions_SetServers(o, x->urls, x->n_urls);
	if (s == NATS_OK)
		s = natsOptions_SetName(o, name);
	if (s == NATS_OK)
		s = natsOptions_SetTimeout(o, CONNECT_TIMEOUT_MS);
	/* Once connected, libnats reconnects by itself, to any server of the
	 * list or that the cluster advertises; a publish meanwhile fails after
	 * REQUEST_WAIT_MS and is retried with backoff. */
	if (s == NATS_OK)
		s = natsOptions_SetMaxReconnect(o, -1);
	if (s == NATS_OK)
		s = natsOptions_SetReconnectWait(o, 250);
	if (s == NATS_OK)
		s = natsOptions_SetReconnectJitter(o, 100, 1000);
	/* A server that vanished without closing the connection is noticed
	 * within about three ping intervals. */
	if (s == NATS_OK)
		s = natsOptions_SetPingInterval(o, 5000);
	if (s == NATS_OK)
		s = natsOptions_SetMaxPingsOut(o, 2);
	if (s == NATS_OK)
		s = natsOptions_SetDisconnectedCB(o, on_disconnected, x);
	if (s == NATS_OK)
		s = natsOptions_SetReconnectedCB(o, on_reconnected, x);
	if (s == NATS_OK)
		s = vg_nats_auth_apply(o, &x->cfg.auth, &x->auth);
	if (s == NATS_OK)
		s = natsConnection_Connect(&nc, o);
	natsOptions_Destroy(o);
	if (s != NATS_OK) {
		char step[64 + 256];

		snprintf(step, sizeof(step), "connecting to NATS (%.256s)", x->urls_shown);
		return failed(x, step, vg_nats_why(s));
	}
	jsOptions_Init(&jo);
	jo.Wait = REQUEST_WAIT_MS;
	s = natsConnection_JetStream(&js, nc, &jo);
	if (s != NATS_OK) {
		natsConnection_Destroy(nc);
		return failed(x, "opening a JetStream context", vg_nats_why(s));
	}
	pthread_mutex_lock(&x->w.lock);
	x->nc = nc;
	x->js = js;
	if (stopping(x))
		natsConnection_Close(nc); /* stop raced with the connect */
	pthread_mutex_unlock(&x->w.lock);
	pr_info("export: connected to NATS at %s\n", connected_url(nc, url, sizeof(url)));
	return 0;
}

static int lookup_or_create_stream(struct vg_exporter *x)
{
	const char *subjects[] = { VG_EXPORT_SUBJECT_PREFIX ">" };
	jsStreamInfo *si = NULL;
	jsErrCode jerr = 0;
	jsStreamConfig sc;
	char step[160], why[ERR_LEN];
	natsStatus s;

	s = js_GetStreamInfo(&si, x->js, x->cfg.stream, NULL, &jerr);
	if (s == NATS_OK) {
		if (si->Config && si->Config->Duplicates > 0 &&
		    si->Config->Duplicates < (int64_t)VG_EXPORT_DUPLICATE_WINDOW_S * 1000000000LL)
			pr_info("export: stream %s deduplicates within %lld s only\n", x->cfg.stream,
				(long long)(si->Config->Duplicates / 1000000000LL));
		jsStreamInfo_Destroy(si);
		return 0;
	}
	snprintf(step, sizeof(step), "looking up stream %s", x->cfg.stream);
	if (s != NATS_NOT_FOUND && jerr != JSStreamNotFoundErr)
		return failed(x, step, request_why(x, s));
	if (x->cfg.no_create) {
		snprintf(why, sizeof(why), "it does not exist, and --export-no-create leaves it to "
			 "the operator (subjects must include %s)", x->subject);
		return failed(x, step, why);
	}
	jsStreamConfig_Init(&sc);
	sc.Name = x->cfg.stream;
	sc.Subjects = subjects;
	sc.SubjectsLen = 1;
	sc.Storage = js_FileStorage;
	sc.Replicas = x->cfg.replicas;
	sc.Duplicates = (int64_t)VG_EXPORT_DUPLICATE_WINDOW_S * 1000000000LL;
	s = js_AddStream(&si, x->js, &sc, NULL, &jerr);
	if (s != NATS_OK) {
		snprintf(step, sizeof(step), "creating stream %s (%u replica(s))", x->cfg.stream,
			 x->cfg.replicas);
		return failed(x, step, request_why(x, s));
	}
	jsStreamInfo_Destroy(si);
	pr_info("export: created stream %s (subjects %s>, file storage, %u replica(s), "
		"duplicate window %d s)\n", x->cfg.stream, VG_EXPORT_SUBJECT_PREFIX,
		x->cfg.replicas, VG_EXPORT_DUPLICATE_WINDOW_S);
	return 0;
}

/* The presence bucket (docs/fleet.md): the fleet view's evidence that this
 * host's export works. Best effort: without it the export goes on. */
static void lookup_or_create_presence(struct vg_exporter *x)
{
	char bucket[NAME_MAX_LEN + sizeof(VG_EXPORT_PRESENCE_SUFFIX)];
	kvStore *kv = NULL;
	kvConfig kc;
	natsStatus s;

	snprintf(bucket, sizeof(bucket), "%s" VG_EXPORT_PRESENCE_SUFFIX, x->cfg.stream);
	s = js_KeyValue(&kv, x->js, bucket);
	if (s != NATS_OK && !x->cfg.no_create) {
		kvConfig_Init(&kc);
		kc.Bucket = bucket;
		kc.History = 1;
		kc.StorageType = js_FileStorage;
		kc.Replicas = (int)x->cfg.replicas;
		s = js_CreateKeyValue(&kv, x->js, &kc);
		if (s == NATS_OK)
			pr_info("export: created presence bucket %s (%u replica(s))\n", bucket,
				x->cfg.replicas);
	}
	kvStore_Destroy(kv);
	if (s != NATS_OK)
		pr_warn("export: no presence bucket %s (%s): the fleet view will count host %s "
			"as a monitor that is not live\n", bucket,
			x->cfg.no_create ? "--export-no-create leaves it to the operator" :
			request_why(x, s), x->host);
}

/* Parse "<host>-<16 hex>-<seq>" of this host. */
static bool parse_msg_id(const struct vg_exporter *x, const char *id, struct key *k)
{
	size_t n = strlen(x->host);
	unsigned long long inst, seq;
	int used = 0;

	if (strncmp(id, x->host, n) || id[n] != '-' ||
	    sscanf(id + n + 1, "%16llx-%llu%n", &inst, &seq, &used) != 2 || id[n + 1 + used])
		return false;
	k->inst = (sqlite3_int64)inst;
	k->seq = (sqlite3_int64)seq;
	return true;
}

/* Where does the stream stand for this host? A last message beyond the
 * cursor was acknowledged (or stored while we waited) but not recorded:
 * the publish in flight when an error or a crash interrupted it. */
static int resume(struct vg_exporter *x)
{
	natsMsg *m = NULL;
	jsErrCode jerr = 0;
	const char *id = NULL;
	char step[200];
	unsigned long long first;
	struct key k, start;
	natsStatus s;

	s = js_GetLastMsg(&m, x->js, x->cfg.stream, x->subject, NULL, &jerr);
	if (s == NATS_NOT_FOUND || jerr == JSNoMessageFoundErr)
		return 0; /* nothing of this host's yet */
	if (s != NATS_OK) {
		snprintf(step, sizeof(step), "reading the last message of %s in stream %s",
			 x->subject, x->cfg.stream);
		return failed(x, step, request_why(x, s));
	}
	if (natsMsgHeader_Get(m, "Nats-Msg-Id", &id) != NATS_OK || !id || !parse_msg_id(x, id, &k)) {
		pr_warn("export: the last message of %s in stream %s has message id '%s', not one "
			"of this exporter's; is --export-host %s used by another host?\n", x->subject,
			x->cfg.stream, id ? id : "(none)", x->host);
		natsMsg_Destroy(m);
		return 0;
	}
	/* The message id names the last event_seq it covers; the payload
	 * begins with the first. */
	start = k;
	if (natsMsg_GetDataLength(m) > 0 &&
	    sscanf(natsMsg_GetData(m), "{\"event_seq\":%llu", &first) == 1 &&
	    (sqlite3_int64)first <= k.seq)
		start.seq = (sqlite3_int64)first;
	natsMsg_Destroy(m);
	if (x->have_cursor && key_cmp(k, x->cursor) <= 0)
		return 0;
	pr_info("export: the stream already holds instance %016llx event %llu (acknowledged, "
		"not yet recorded); resuming after it\n", (unsigned long long)k.inst,
		(unsigned long long)k.seq);
	if (advance(x, start, k))
		return -1;
	sync_cursor(x);
	return 0;
}

/* Announce this host in the presence bucket: fire and forget, the next one
 * follows in PRESENCE_MS. The value says how far the export has come, so
 * the fleet view can tell a host that is live but behind. */
static void publish_presence(struct vg_exporter *x)
{
	char inst[17] = "", *buf = NULL;
	struct vg_json j;
	size_t len = 0;
	FILE *f;

	x->last_presence = vg_mono_ns();
	f = open_memstream(&buf, &len);
	if (!f)
		return;
	if (x->have_cursor)
		snprintf(inst, sizeof(inst), "%016llx", (unsigned long long)x->cursor.inst);
	vg_json_begin(&j, f);
	vg_json_obj(&j);
	vg_json_str_field(&j, "host", x->host);
	vg_json_u64_field(&j, "interval_ms", PRESENCE_MS);
	vg_json_str_field(&j, "instance", inst);
	vg_json_u64_field(&j, "event_seq", x->have_cursor ? (__u64)x->cursor.seq : 0);
	vg_json_u64_field(&j, "time_ns", vg_wall_ns());
	vg_json_close(&j);
	if (!fclose(f) && x->nc)
		natsConnection_Publish(x->nc, x->presence_subject, buf, (int)len);
	free(buf);
}

static int publish(struct vg_exporter *x, const struct row *r)
{
	char id[NAME_MAX_LEN + 48], step[NAME_MAX_LEN + 160];
	jsPubAck *pa = NULL;
	jsErrCode jerr = 0;
	jsPubOptions po;
	natsStatus s;

	/* A row of rejections is named by its last event_seq: resume() moves
	 * the cursor to the end of what the stream holds. */
	snprintf(id, sizeof(id), "%s-%016llx-%llu", x->host, (unsigned long long)r->end.inst,
		 (unsigned long long)r->end.seq);
	jsPubOptions_Init(&po);
	po.MsgId = id;
	po.MaxWait = REQUEST_WAIT_MS;
	s = js_Publish(&pa, x->js, x->subject, r->payload, (int)r->len, &po, &jerr);
	/* The stream is checked in the acknowledgement, not with an
	 * expected-stream header: that header is stored with the message, and
	 * nats-server 2.9 then refuses to source or mirror it into another
	 * stream (the global view of docs/fleet.md). */
	if (s == NATS_OK && (!pa->Stream || strcmp(pa->Stream, x->cfg.stream))) {
		pr_warn("export: %s went to stream %s, not %s: does another stream take subject %s?\n",
			id, pa->Stream ? pa->Stream : "(none)", x->cfg.stream, x->subject);
		jsPubAck_Destroy(pa);
		s = NATS_ERR;
	}
	if (s != NATS_OK) {
		snprintf(step, sizeof(step), "publishing event %llu of instance %016llx to %s",
			 (unsigned long long)r->k.seq, (unsigned long long)r->k.inst, x->subject);
		failed(x, step, request_why(x, s));
		/* Before the retry: is the stream there, and did this one land? */
		x->stream_ready = false;
		if (x->nc && natsConnection_IsClosed(x->nc))
			disconnect(x);
		return -1;
	}
	if (pa->Duplicate) {
		x->duplicates++;
		pr_debug("export: %s was already in stream %s (deduplicated)\n", id, x->cfg.stream);
	}
	jsPubAck_Destroy(pa);
	x->exported++;
	if (x->ds)
		atomic_fetch_add(&x->ds->events_exported, 1);
	return 0;
}

/* Rows that appeared inside gaps, one at a time (each splits its gap). */
static int scan_gaps(struct vg_exporter *x)
{
	for (int done = 0; done < BATCH && !stopping(x);) {
		struct key lo = key_min, hi = key_min;
		struct row r = {};
		sqlite3_stmt *st;
		bool found = false;
		int rc = SQLITE_DONE;

		if (sqlite3_prepare_v2(x->db, "SELECT lo_instance, lo_seq, hi_instance, hi_seq FROM "
					      "export_gaps WHERE target = ?1 ORDER BY lo_instance, lo_seq",
				       -1, &st, NULL) != SQLITE_OK)
			return failed(x, "reading export gaps", sqlite3_errmsg(x->db));
		sqlite3_bind_text(st, 1, x->target, -1, SQLITE_STATIC);
		while (!found && (rc = sqlite3_step(st)) == SQLITE_ROW) {
			lo = (struct key){ sqlite3_column_int64(st, 0), sqlite3_column_int64(st, 1) };
			hi = (struct key){ sqlite3_column_int64(st, 2), sqlite3_column_int64(st, 3) };
			rc = read_rows(x, &lo, &hi, &r, 1);
			if (rc < 0)
				break;
			found = rc == 1;
		}
		sqlite3_finalize(st);
		if (rc < 0 || (!found && rc != SQLITE_DONE))
			return failed(x, "reading events inside export gaps", sqlite3_errmsg(x->db));
		if (!found)
			return 0;
		pr_info("export: instance %016llx event %llu appeared below the export cursor; "
			"publishing it now\n", (unsigned long long)r.k.inst, (unsigned long long)r.k.seq);
		rc = publish(x, &r);
		free(r.payload);
		if (rc || fill(x, lo, hi, r.k, r.end))
			return -1;
		done++;
	}
	return 0;
}

/* One pass: late rows in gaps now and then, then new rows in order.
 * Returns 1 if there may be more at once, 0 when idle, -1 after a failure. */
static int pass(struct vg_exporter *x)
{
	struct row rows[BATCH];
	__u64 now = vg_mono_ns();
	int n, i, ret = 0;

	if (now - x->last_gap_scan >= GAP_SCAN_MS * 1000000ULL) {
		int err = scan_gaps(x);

		sync_cursor(x);
		if (err)
			return -1;
		x->last_gap_scan = now;
	}
	n = read_rows(x, NULL, NULL, rows, BATCH);
	if (n < 0)
		return failed(x, "reading the event log", sqlite3_errmsg(x->db));
	for (i = 0; i < n && !stopping(x); i++) {
		struct key k = rows[i].k;

		if (x->have_cursor && key_cmp(k, key_succ(x->cursor))) {
			/* A hole, or another instance: give it a moment to fill. */
			if (!x->holding || key_cmp(k, x->hold_key)) {
				x->holding = true;
				x->hold_key = k;
				x->hold_since = vg_mono_ns();
			}
			if (vg_mono_ns() - x->hold_since < HOLD_MS * 1000000ULL)
				break;
		}
		x->holding = false;
		if (publish(x, &rows[i]) || advance(x, k, rows[i].end)) {
			ret = -1;
			break;
		}
	}
	if (!ret && i == BATCH)
		ret = 1;
	free_rows(rows, n);
	sync_cursor(x);
	return ret;
}

/* Did another connection (the daemon) commit since the last call? */
static bool log_changed(struct vg_exporter *x)
{
	sqlite3_stmt *st;
	sqlite3_int64 v = x->data_version;

	if (sqlite3_prepare_v2(x->db, "PRAGMA data_version", -1, &st, NULL) != SQLITE_OK)
		return true;
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	if (v == x->data_version)
		return false;
	x->data_version = v;
	return true;
}

/* Idle: until the log changes, or POLL_MS. */
static void idle_wait(struct vg_exporter *x)
{
	for (int i = 0; i < POLL_MS / WAKE_MS && !stopping(x); i++) {
		vg_waker_nap(&x->w, WAKE_MS);
		if (log_changed(x))
			return;
	}
}

static void *worker_main(void *arg)
{
	struct vg_exporter *x = arg;

	while (!stopping(x)) {
		bool passed = false, idle = false;
		int r;

		if (!x->js) {
			r = connect_nats(x);
		} else if (!x->stream_ready) {
			r = lookup_or_create_stream(x);
			if (!r)
				r = resume(x);
			if (!r)
				lookup_or_create_presence(x);
			x->stream_ready = !r;
		} else {
			r = pass(x);
			passed = true;
			idle = r == 0;
		}
		if (stopping(x))
			break;
		if (r < 0) {
			backoff(x);
			continue;
		}
		if (passed)
			recovered(x);
		if (passed && vg_mono_ns() - x->last_presence >= PRESENCE_MS * 1000000ULL)
			publish_presence(x);
		if (idle)
			idle_wait(x);
	}
	disconnect(x);
	return NULL;
}

/* --------------------------------------------------------- lifecycle */

static sqlite3 *open_db(const char *path)
{
	sqlite3 *db = NULL;

	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
		pr_warn("%s: the exporter cannot open the event log: %s\n", path,
			db ? sqlite3_errmsg(db) : "out of memory");
		sqlite3_close(db);
		return NULL;
	}
	sqlite3_busy_timeout(db, 5000);
	vg_sql_exec(db, "PRAGMA synchronous=NORMAL");
	return db;
}

void vg_export_default_host(char *out, size_t len)
{
	char name[256] = "";

	if (gethostname(name, sizeof(name) - 1) || !*name)
		vg_strlcpy(name, "localhost", sizeof(name));
	vg_strlcpy(out, name, len);
	for (char *p = out; *p; p++)
		if (!(*p >= 'a' && *p <= 'z') && !(*p >= 'A' && *p <= 'Z') &&
		    !(*p >= '0' && *p <= '9') && *p != '_' && *p != '-')
			*p = '_';
}

static __u64 waiting_rows(struct vg_exporter *x)
{
	struct key after = x->have_cursor ? x->cursor : key_min;
	sqlite3_stmt *st;
	__u64 n = 0;

	if (sqlite3_prepare_v2(x->db, "SELECT count(*) FROM events WHERE (instance_id, event_seq)"
				      " > (?1, ?2)", -1, &st, NULL) != SQLITE_OK)
		return 0;
	sqlite3_bind_int64(st, 1, after.inst);
	sqlite3_bind_int64(st, 2, after.seq);
	if (sqlite3_step(st) == SQLITE_ROW)
		n = (__u64)sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return n;
}

int vg_exporter_start(const char *db_path, const struct vg_export_cfg *cfg,
		      struct vg_daemon_stats *ds, struct vg_exporter **out)
{
	struct vg_exporter *x;
	char *save = NULL;
	__u64 seed = 0;

	*out = NULL;
	if (!cfg->nats_urls)
		return 0;
	x = calloc(1, sizeof(*x));
	if (!x) {
		pr_warn("export: out of memory\n");
		return -1;
	}
	x->cfg = *cfg;
	x->ds = ds;
	vg_waker_init(&x->w);
	if (cfg->host)
		vg_strlcpy(x->host, cfg->host, sizeof(x->host));
	else
		vg_export_default_host(x->host, sizeof(x->host));
	snprintf(x->subject, sizeof(x->subject), VG_EXPORT_SUBJECT_PREFIX "%s", x->host);
	snprintf(x->target, sizeof(x->target), "nats:%s:%s", cfg->stream, x->subject);
	x->urls_len = strlen(cfg->nats_urls);
	snprintf(x->presence_subject, sizeof(x->presence_subject),
		 "$KV.%s" VG_EXPORT_PRESENCE_SUFFIX ".%s", cfg->stream, x->host);
	x->urls_buf = strdup(cfg->nats_urls);
	if (!x->urls_buf) {
		pr_warn("export: out of memory\n");
		goto fail;
	}
	for (char *u = strtok_r(x->urls_buf, ",", &save); u && x->n_urls < MAX_URLS;
	     u = strtok_r(NULL, ",", &save))
		x->urls[x->n_urls++] = u;
	vg_urls_redact(cfg->nats_urls, x->urls_shown, sizeof(x->urls_shown));
	if (vg_nats_auth_load(&cfg->auth, &x->auth))
		goto fail;

	x->db = open_db(db_path);
	if (!x->db)
		goto fail;
	if (!vg_sql_exec(x->db, schema) || load_cursor(x)) {
		pr_warn("%s: creating the export tables failed: %s\n", db_path,
			sqlite3_errmsg(x->db));
		goto fail;
	}
	if (getrandom(&seed, sizeof(seed), 0) != sizeof(seed))
		seed = vg_mono_ns();
	x->rng = seed;
	pr_info("export: %llu event(s) of the log to publish to %s, stream %s, via %s\n",
		(unsigned long long)waiting_rows(x), x->subject, cfg->stream, x->urls_shown);

	/* The worker and the threads libnats starts from it block every
	 * signal (vg_worker_start). */
	if (vg_worker_start(&x->thread, worker_main, x)) {
		pr_warn("export: cannot start the exporter thread\n");
		goto fail;
	}
	x->running = true;
	*out = x;
	return 0;
fail:
	vg_exporter_stop(x);
	return -1;
}

void vg_exporter_stop(struct vg_exporter *x)
{
	if (!x)
		return;
	vg_waker_stop(&x->w);
	/* Ends a publish or request in flight at once. */
	pthread_mutex_lock(&x->w.lock);
	if (x->nc)
		natsConnection_Close(x->nc);
	pthread_mutex_unlock(&x->w.lock);
	if (x->running) {
		pthread_join(x->thread, NULL);
		pr_info("export: stopped (%llu event(s) published this run, %llu already in the "
			"stream)\n", (unsigned long long)x->exported,
			(unsigned long long)x->duplicates);
		/* Waits for libnats' threads, so that no callback runs after
		 * x is freed. */
		nats_CloseAndWait(2000);
	}
	sqlite3_close(x->db);
	vg_waker_destroy(&x->w);
	vg_nats_auth_free(&x->auth);
	if (x->urls_buf)
		explicit_bzero(x->urls_buf, x->urls_len);
	free(x->urls_buf);
	free(x);
}

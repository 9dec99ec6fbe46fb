// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/*
 * The event log under unauthenticated junk (docs/operations.md#rejections):
 * N REJECTED records (default 200,000, VIGIL_REJECTS=N to change; the kernel
 * lets through at most 10 a second, so they are spaced 100 ms apart: 5.5
 * hours of a flood), from spoofed sources with four reasons, with a real
 * event every 2,000, appended in batches of 1,000 with a commit each, as the
 * daemon does (common/eventlog.c). One batch is rolled back and appended
 * again (a failed commit), one is appended again after its commit (a
 * daemon killed between commit and release), and the log is closed and
 * reopened half way. Checked: rows, breakdown rows, database size and the
 * process's resident memory stay bounded, before and after reopening; every
 * event_seq is accounted for exactly once (what `vigil log gaps` checks);
 * each rejection is counted exactly once; the JSON-lines export says the
 * same. The figures are printed (docs/operations.md quotes them).
 *
 * Built without sanitizers: it measures resident memory, which ASan's
 * shadow and quarantine would swamp.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sqlite3.h>
#include "check.h"
#include "common/eventlog.h"
#include "common/util.h"

#define BATCH 1000
#define REAL_EVERY 2000
#define SPACING_NS 100000000ull /* 10 rejections a second, the kernel's cap */

static char dir[] = "/tmp/vg-eventlog-XXXXXX";
static char db_path[256], jsonl_path[256];
static __u64 start_ns, n_rejects, n_real;

/* VmRSS of this process, in KiB. */
static long rss_kib(void)
{
	char line[256];
	long kib = -1;
	FILE *f = fopen("/proc/self/status", "r");

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
			break;
	if (f)
		fclose(f);
	return kib;
}

static long long file_size(const char *path)
{
	struct stat st;

	return stat(path, &st) ? 0 : (long long)st.st_size;
}

/* Event seq (1-based): a real event every REAL_EVERY, otherwise a rejection
 * from one of 65,536 spoofed sources with one of four reasons. */
static void make_event(__u64 seq, struct vigil_event *e, struct vg_event_view *v)
{
	static const __u16 reasons[] = { VIGIL_REJECT_MALFORMED, VIGIL_REJECT_BAD_TAG,
					 VIGIL_REJECT_UNKNOWN_AGENT, VIGIL_REJECT_OVER_RATE_SOURCE };
	__u64 h = seq * 0x9e3779b97f4a7c15ull;

	memset(e, 0, sizeof(*e));
	memset(v, 0, sizeof(*v));
	v->e = e;
	e->event_seq = seq;
	e->detected_ns = start_ns + seq * SPACING_NS;
	e->slot = 0xffffffffu;
	if (seq % REAL_EVERY == 0) {
		e->kind = VIGIL_EV_UP;
		e->agent_id = 1 + seq / REAL_EVERY % 50;
		e->slot = (__u32)e->agent_id;
		e->state = VIGIL_AGENT_ALIVE;
		e->prev_state = VIGIL_AGENT_NEW;
		v->name = "agent";
		v->group = "g";
		return;
	}
	e->kind = VIGIL_EV_REJECTED;
	e->agent_id = h >> 40;
	e->reason = reasons[(h >> 8) % 4];
	e->src_addr[10] = e->src_addr[11] = 0xff;
	e->src_addr[12] = 198;
	e->src_addr[13] = 18;
	e->src_addr[14] = (__u8)(h >> 16);
	e->src_addr[15] = (__u8)(h >> 24);
}

/* Append events [lo, hi]; the number newly recorded. */
static long append_range(struct vg_eventlog *log, __u64 lo, __u64 hi)
{
	long added = 0;

	for (__u64 s = lo; s <= hi; s++) {
		struct vigil_event e;
		struct vg_event_view v;
		int r;

		make_event(s, &e, &v);
		r = vg_eventlog_append(log, &v);
		if (r < 0)
			return -1;
		added += r;
	}
	return added;
}

static __u64 query_u64(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st;
	__u64 v = (__u64)-1;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
		diag("%s: %s", sql, sqlite3_errmsg(db));
		return v;
	}
	if (sqlite3_step(st) == SQLITE_ROW)
		v = (__u64)sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

/* Every event_seq 1..total covered by exactly one row, none twice, none
 * missing: what `vigil log gaps` checks. Returns the problems found. */
static long coverage_problems(sqlite3 *db, __u64 total)
{
	sqlite3_stmt *st;
	__u64 next = 1;
	long bad = 0;

	if (sqlite3_prepare_v2(db, "SELECT event_seq, coalesce(event_seq_last, event_seq) FROM "
				   "events ORDER BY event_seq", -1, &st, NULL) != SQLITE_OK) {
		diag("coverage query: %s", sqlite3_errmsg(db));
		return -1;
	}
	while (sqlite3_step(st) == SQLITE_ROW) {
		__u64 a = (__u64)sqlite3_column_int64(st, 0), b = (__u64)sqlite3_column_int64(st, 1);

		if (a != next && bad++ < 3)
			diag("row %llu-%llu: expected it to start at %llu", (unsigned long long)a,
			     (unsigned long long)b, (unsigned long long)next);
		next = b + 1;
	}
	sqlite3_finalize(st);
	if (next != total + 1 && bad++ < 3)
		diag("the rows end at %llu, not %llu", (unsigned long long)next - 1,
		     (unsigned long long)total);
	return bad;
}

/* The JSON-lines export: its lines, and the event_seqs they cover (each
 * line's event_seq .. event_seq_last), checked for overlap. */
static void jsonl_figures(__u64 *lines, __u64 *covered, __u64 *overlaps)
{
	char *line = NULL;
	size_t cap = 0;
	__u64 last_end = 0;
	FILE *f = fopen(jsonl_path, "r");

	*lines = *covered = *overlaps = 0;
	while (f && getline(&line, &cap, f) > 0) {
		unsigned long long a = 0, b = 0;
		char *p = strstr(line, "\"event_seq_last\":");

		sscanf(line, "{\"event_seq\":%llu", &a);
		if (!p || sscanf(p, "\"event_seq_last\":%llu", &b) != 1)
			b = a;
		(*lines)++;
		*covered += b - a + 1;
		if (a <= last_end)
			(*overlaps)++;
		last_end = b;
	}
	free(line);
	if (f)
		fclose(f);
}

int main(void)
{
	const char *n_env = getenv("VIGIL_REJECTS");
	struct vg_eventlog log;
	__u64 total, half, lines, covered, overlaps, rows, breakdown, rej_rows;
	long rss0, rss_quarter = 0, rss_end, rss_reopen = 0, rss_reopen0 = 0, bad;
	long rss_final0, rss_final = -1;
	long added, again;
	long long db_bytes;
	sqlite3 *db;
	bool ok_appends = true;

	total = n_env ? strtoull(n_env, NULL, 10) : 200000;
	total += total / (REAL_EVERY - 1); /* room for the real events */
	half = total / 2 / BATCH * BATCH;
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(db_path, sizeof(db_path), "%s/vigil.db", dir);
	snprintf(jsonl_path, sizeof(jsonl_path), "%s/events.jsonl", dir);
	start_ns = vg_mono_ns() - total * SPACING_NS - VIGIL_NSEC_PER_SEC;
	for (__u64 s = 1; s <= total; s++)
		if (s % REAL_EVERY == 0)
			n_real++;
	n_rejects = total - n_real;

	rss0 = rss_kib();
	if (vg_eventlog_open(&log, db_path, jsonl_path, 0x1234)) {
		printf("not ok 1 - opening the event log\n");
		return 1;
	}
	for (__u64 lo = 1; lo <= total; lo += BATCH) {
		__u64 hi = lo + BATCH - 1 < total ? lo + BATCH - 1 : total;

		if (lo == half + 1) { /* half way: close and reopen */
			vg_eventlog_close(&log);
			rss_reopen0 = rss_kib();
			if (vg_eventlog_open(&log, db_path, jsonl_path, 0x1234)) {
				ok_appends = false;
				break;
			}
			rss_reopen = rss_kib();
		}
		if (lo == BATCH * 10 + 1) { /* a failed commit: rolled back, appended again */
			append_range(&log, lo, hi);
			log.failed = true;
			if (vg_eventlog_sync(&log) != -1)
				ok_appends = false;
		}
		added = append_range(&log, lo, hi);
		if (added != (long)(hi - lo + 1) || vg_eventlog_sync(&log))
			ok_appends = false;
		if (lo == BATCH * 20 + 1) { /* committed, then delivered again */
			again = append_range(&log, lo, hi);
			if (again != 0 || vg_eventlog_sync(&log))
				ok_appends = false;
		}
		if (hi >= total / 4 && !rss_quarter)
			rss_quarter = rss_kib();
	}
	rss_end = rss_kib();
	vg_eventlog_close(&log);
	/* The whole log reopened, as a restarted daemon does. */
	rss_final0 = rss_kib();
	if (vg_eventlog_open(&log, db_path, NULL, 0x1234) == 0) {
		rss_final = rss_kib();
		vg_eventlog_close(&log);
	}

	CHECK(ok_appends, "every event is recorded once: a rolled-back batch again, a committed "
			  "batch delivered twice not at all");
	db = vg_eventlog_open_ro(db_path);
	if (!db)
		return 1;
	sqlite3_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL);
	rows = query_u64(db, "SELECT count(*) FROM events");
	rej_rows = query_u64(db, "SELECT count(*) FROM events WHERE kind = 'rejected'");
	breakdown = query_u64(db, "SELECT count(*) FROM rejections");
	db_bytes = file_size(db_path) + file_size(strcat(strcpy((char[300]){ 0 }, db_path), "-wal"));
	printf("# %llu rejected and %llu real events: %llu rows (%llu of rejections), %llu breakdown "
	       "rows, database %.1f MiB\n", (unsigned long long)n_rejects,
	       (unsigned long long)n_real, (unsigned long long)rows, (unsigned long long)rej_rows,
	       (unsigned long long)breakdown, db_bytes / 1048576.0);
	printf("# resident memory: %.1f MiB at open, +%.1f MiB after a quarter, +%.1f MiB at the "
	       "end; reopening: +%.1f MiB half way, +%.1f MiB at the end\n", rss0 / 1024.0,
	       (rss_quarter - rss0) / 1024.0, (rss_end - rss0) / 1024.0,
	       (rss_reopen - rss_reopen0) / 1024.0, (rss_final - rss_final0) / 1024.0);
	/* 10-minute windows: a run of rejections is one row per window, or
	 * between two real events. */
	CHECK(rows != (__u64)-1 && rows <= n_real + 2 * (n_real + total * SPACING_NS / 600000000000ull + 4),
	      "rows stay bounded: one per real event, one per run of rejections in a 10-minute "
	      "window");
	CHECK(breakdown != (__u64)-1 &&
		      breakdown <= (total * SPACING_NS / 600000000000ull + 2) * (16 + 4),
	      "the breakdown by reason and source stays bounded: at most 16 sources per window, "
	      "the rest counted as other");
	CHECK(db_bytes < 4 << 20, "the database stays under 4 MiB");
	CHECK(rss_end - rss_quarter < 2048, "resident memory does not grow with the rejections "
					    "(from a quarter to the end: under 2 MiB)");
	CHECK(rss_reopen - rss_reopen0 < 4096 && rss_final >= 0 && rss_final - rss_final0 < 4096,
	      "reopening the log costs under 4 MiB, however many rejections it holds");
	bad = coverage_problems(db, total);
	CHECK(bad == 0, "every event_seq is in exactly one row: no gap, no overlap");
	CHECK(query_u64(db, "SELECT sum(count) FROM rejections") == n_rejects &&
		      query_u64(db, "SELECT sum(event_seq_last - event_seq + 1) FROM events WHERE "
				    "kind = 'rejected'") == n_rejects,
	      "each rejection is counted once, in the breakdown and in the rows");
	CHECK(query_u64(db, "SELECT count(*) FROM events WHERE open IS NOT NULL") == 0,
	      "closing the log closes the last run of rejections");
	sqlite3_close(db);
	jsonl_figures(&lines, &covered, &overlaps);
	diag("jsonl: %llu lines covering %llu events, %llu overlaps", (unsigned long long)lines,
	     (unsigned long long)covered, (unsigned long long)overlaps);
	CHECK(lines == rows && covered == total && overlaps == 0,
	      "the JSON-lines export has the same rows: every event once");
	{
		char cmd[300];

		snprintf(cmd, sizeof(cmd), "rm -rf -- '%s'", dir);
		if (system(cmd))
			perror("removing the temporary directory");
	}
	printf("# %u passed, %u failed\n", tap_count - tap_failed, tap_failed);
	return tap_failed ? 1 : 0;
}

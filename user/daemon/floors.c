// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
#include <errno.h>
#include <string.h>
#include <bpf/bpf.h>
#include <sqlite3.h>
#include "vigil/auth.h"
#include "common/log.h"
#include "common/registry.h"
#include "common/sql.h"
#include "common/util.h"
#include "daemon/floors.h"

/* One row per agent id that ever had a beat accepted here. seq is the
 * 64-bit sequence in SQLite's signed integer; write_row compares it as
 * unsigned. */
static const char schema[] =
	"CREATE TABLE IF NOT EXISTS replay_floors (agent_id INTEGER PRIMARY KEY,"
	" incarnation INTEGER NOT NULL, seq INTEGER NOT NULL, saved_wall_ns INTEGER NOT NULL)";

/* The kinds whose (incarnation, seq) is that of a beat just accepted. */
static bool from_accepted_beat(__u32 kind)
{
	return kind == VIGIL_EV_UP || kind == VIGIL_EV_RECOVERED || kind == VIGIL_EV_RESTART ||
	       kind == VIGIL_EV_LEFT;
}

/* Raise the floor of id in the cache of what the log holds; true when it
 * rose (or is new). */
static bool raise_saved(struct vg_floors *f, __u64 id, __u32 inc, __u64 seq)
{
	struct replay_floor *r = vg_idtab_get(&f->saved, id);

	if (r && !vigil_replay_after(inc, seq, r->incarnation, r->seq))
		return false;
	if (!r && !(r = vg_idtab_add(&f->saved, id)))
		return false; /* out of memory: the next save tries again */
	r->incarnation = inc;
	r->seq = seq;
	return true;
}

/* Raise the row of id to (inc, seq), never lower it: a floor only rises.
 * Run for every moved window and every event of an accepted beat, so
 * parsed once (vg_floors_open). */
static const char upsert_sql[] =
	"INSERT INTO replay_floors (agent_id, incarnation, seq, saved_wall_ns) "
	"VALUES (?1, ?2, ?3, ?4) ON CONFLICT(agent_id) DO UPDATE SET "
	"incarnation = ?2, seq = ?3, saved_wall_ns = ?4 WHERE ?2 > incarnation OR "
	"(?2 = incarnation AND CASE WHEN (?3 < 0) != (seq < 0) THEN ?3 < 0 "
	"ELSE ?3 > seq END)";

static bool write_row(struct vg_floors *f, __u64 id, __u32 inc, __u64 seq)
{
	return vg_sql_step(f->upsert, "iiii", (long long)id, (long long)inc, (long long)seq,
			   (long long)vg_wall_ns());
}

/* Rows of (agent id, incarnation, seq) into the cache; with `save`, those
 * that raised a floor are written back. */
static int read_rows(struct vg_floors *f, const char *sql, bool save)
{
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(f->db, sql, -1, &st, NULL) != SQLITE_OK)
		return -1;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		__u64 id = (__u64)sqlite3_column_int64(st, 0), seq = (__u64)sqlite3_column_int64(st, 2);
		__u32 inc = (__u32)sqlite3_column_int64(st, 1);

		if (raise_saved(f, id, inc, seq) && save && !write_row(f, id, inc, seq)) {
			rc = SQLITE_ERROR;
			break;
		}
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

int vg_floors_open(struct vg_floors *f, struct sqlite3 *db)
{
	bool first;
	__u64 n;

	memset(f, 0, sizeof(*f));
	f->db = db;
	f->saved.size = sizeof(struct replay_floor);
	f->saved_ns = vg_mono_ns();
	first = !vg_sql_u64(db, &n, "SELECT 1 FROM sqlite_master WHERE name = 'replay_floors'", "");
	if (vg_sql_exec_or_say(db, "BEGIN IMMEDIATE", "replay floors: reading the log"))
		return -1;
	/* A log from before floors were kept: its recorded events say where
	 * each agent's window stood, once. */
	if (vg_sql_exec_or_say(db, schema, "replay floors: creating their table") ||
	    !(f->upsert = vg_sql_prepare(db, upsert_sql)) ||
	    (first && read_rows(f, "SELECT agent_id, incarnation, seq FROM events WHERE kind IN "
				   "('up', 'recovered', 'restart', 'left')", true)) ||
	    read_rows(f, "SELECT agent_id, incarnation, seq FROM replay_floors", false)) {
		pr_warn("replay floors: reading them from the event log failed: %s\n",
			sqlite3_errmsg(db));
		vg_sql_exec(db, "ROLLBACK");
		vg_floors_close(f);
		return -1;
	}
	if (vg_sql_exec_or_say(db, "COMMIT", "replay floors: committing")) {
		vg_floors_close(f);
		return -1;
	}
	return 0;
}

int vg_floors_publish(struct vg_floors *f, const struct vg_maps *m)
{
	f->maps = m;
	for (size_t i = 0; i < f->saved.n; i++)
		if (vg_floors_offer(f, f->saved.ids[i]))
			return -1;
	if (f->saved.n)
		pr_info("replay floors: %zu agent ids from the event log\n", f->saved.n);
	return 0;
}

int vg_floors_offer(struct vg_floors *f, __u64 id)
{
	const struct replay_floor *r = vg_idtab_get(&f->saved, id);
	__u32 slot;
	int err;

	/* A registered agent's window is ahead of any floor of it. */
	if (!r || bpf_map_lookup_elem(f->maps->index, &id, &slot) == 0)
		return 0;
	err = vg_floor_raise(f->maps, id, r->incarnation, r->seq);

	if (err)
		pr_warn("replay floors: writing agent %llu's into vigil_floors failed: %s\n",
			(unsigned long long)id, strerror(-err));
	return err ? -1 : 0;
}

void vg_floors_note(struct vg_floors *f, const struct vigil_event *e)
{
	/* Straight to the log, not through the cache: the event's transaction
	 * may yet roll back. A failure here fails it too, and it is retried
	 * with it. */
	if (f->db && from_accepted_beat(e->kind))
		write_row(f, e->agent_id, e->incarnation, e->seq);
}

/* A window as it stands: written when it moved since the last save. */
static int save_one(struct vg_floors *f, __u64 id, __u32 inc, __u64 seq)
{
	if (!raise_saved(f, id, inc, seq))
		return 0;
	return write_row(f, id, inc, seq) ? 0 : -1;
}

/* Each window read under its slot's lock: whole, not torn by a beat. */
static int save_registered(__u32 slot, const struct agent_slot *g, void *ctx)
{
	(void)slot;
	if (!g->replay.started)
		return 0;
	return save_one(ctx, g->agent_id, g->replay.incarnation, g->replay.top);
}

/* Save the windows of slots [*cursor, *cursor + n) that moved, and at the
 * end of the slots those of removed agents (vigil_floors), in one
 * transaction of its own. */
static int save_step(struct vg_floors *f, __u32 *cursor, __u32 n)
{
	__u64 key, next, *prev = NULL;
	struct replay_floor r;
	int err;

	if (vg_sql_exec_or_say(f->db, "BEGIN IMMEDIATE", "replay floors: saving"))
		return -1;
	err = vg_agent_slots_foreach(f->maps, true, cursor, n, save_registered, f);
	/* Removed agents: their floors wait in vigil_floors. */
	while (!err && *cursor >= f->maps->max_agents &&
	       bpf_map_get_next_key(f->maps->floors, prev, &next) == 0) {
		key = next;
		prev = &key;
		if (bpf_map_lookup_elem(f->maps->floors, &key, &r) == 0)
			err = save_one(f, key, r.incarnation, r.seq);
	}
	if (err || vg_sql_exec_or_say(f->db, "COMMIT", "replay floors: committing")) {
		if (!f->failed)
			pr_warn("replay floors: saving them failed (%s); they are kept in the "
				"kernel and saved again later\n", sqlite3_errmsg(f->db));
		f->failed = true;
		vg_sql_exec(f->db, "ROLLBACK");
		/* The cache ran ahead of the log: read it back. */
		vg_idtab_free(&f->saved);
		f->saved.size = sizeof(struct replay_floor);
		read_rows(f, "SELECT agent_id, incarnation, seq FROM replay_floors", false);
		*cursor = f->maps->max_agents; /* this pass is over; the next starts again */
		return -1;
	}
	f->failed = false;
	return 0;
}

int vg_floors_save(struct vg_floors *f)
{
	__u32 cursor = 0;

	if (!f->db || !f->maps)
		return 0;
	f->saved_ns = vg_mono_ns();
	f->cursor = f->maps->max_agents; /* no pass under way any more */
	return save_step(f, &cursor, f->maps->max_agents);
}

int vg_floors_tick(struct vg_floors *f, __u64 now)
{
	if (!f->db || !f->maps)
		return 0;
	if (f->cursor >= f->maps->max_agents) {
		if (now - f->saved_ns < VG_FLOORS_SAVE_NS)
			return 0;
		f->saved_ns = now; /* a pass begins */
		f->cursor = 0;
	}
	return save_step(f, &f->cursor, VG_FLOORS_STEP_SLOTS);
}

void vg_floors_close(struct vg_floors *f)
{
	sqlite3_finalize(f->upsert); /* a no-op on NULL */
	f->upsert = NULL;
	vg_idtab_free(&f->saved);
	f->db = NULL;
}

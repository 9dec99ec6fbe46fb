// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <bpf/bpf.h>
#include <sqlite3.h>
#include "lease.h"
#include "log.h"
#include "registry.h"
#include "util.h"

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

struct vg_lease_state {
	bool shadow_logged; /* shadow mode: this lease's would-be grant is logged */
	__u64 reserved;     /* token committed for the next grant, 0 = none */
	__u64 last_holder;  /* holder of the grant that ended, avoided on release */
	__u32 last_state;   /* kernel state seen at the last tick */
	__u64 since_ns;     /* first tick that looked at this lease */
};

static int sql(struct sqlite3 *db, const char *s)
{
	char *err = NULL;

	if (sqlite3_exec(db, s, NULL, NULL, &err) != SQLITE_OK) {
		pr_warn("leases: %s: %s\n", s, err ? err : sqlite3_errmsg(db));
		sqlite3_free(err);
		return -1;
	}
	return 0;
}

static __u64 db_token(struct sqlite3 *db, __u32 id)
{
	sqlite3_stmt *st;
	__u64 t = 0;

	if (sqlite3_prepare_v2(db, "SELECT token FROM leases WHERE lease_id = ?", -1, &st, NULL))
		return 0;
	sqlite3_bind_int64(st, 1, id);
	if (sqlite3_step(st) == SQLITE_ROW)
		t = (__u64)sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return t;
}

/* Durably raise the lease's token to `token` (fsync on return). */
static int reserve(struct vg_leases *l, const struct vg_lease_def *d, __u64 token)
{
	sqlite3_stmt *st;
	int rc;

	if (sql(l->db, "BEGIN IMMEDIATE"))
		return -1;
	rc = sqlite3_prepare_v2(l->db,
				"INSERT INTO leases (lease_id, name, token) VALUES (?1, ?2, ?3) "
				"ON CONFLICT(lease_id) DO UPDATE SET token = MAX(token, ?3), name = ?2",
				-1, &st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, d->id);
		sqlite3_bind_text(st, 2, d->name, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, (sqlite3_int64)token);
		rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
		sqlite3_finalize(st);
	}
	if (rc != SQLITE_OK) {
		pr_warn("leases: persisting token %llu of %s failed: %s\n",
			(unsigned long long)token, d->name, sqlite3_errmsg(l->db));
		sql(l->db, "ROLLBACK");
		return -1;
	}
	return sql(l->db, "COMMIT");
}

static void log_event(struct vg_leases *l, const struct vg_lease_def *d, const char *event,
		      __u64 holder, __u64 token)
{
	sqlite3_stmt *st;

	if (sqlite3_prepare_v2(l->db, "INSERT INTO lease_log (lease_id, name, event, holder, "
				      "token, wall_ns) VALUES (?, ?, ?, ?, ?, ?)", -1, &st, NULL))
		return;
	sqlite3_bind_int64(st, 1, d->id);
	sqlite3_bind_text(st, 2, d->name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, event, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)holder);
	sqlite3_bind_int64(st, 5, (sqlite3_int64)token);
	sqlite3_bind_int64(st, 6, (sqlite3_int64)vg_wall_ns());
	sqlite3_step(st);
	sqlite3_finalize(st);
	if (!l->quiet)
		printf("{\"lease\":\"%s\",\"lease_id\":%u,\"event\":\"%s\",\"holder\":%llu,"
		       "\"token\":%llu}\n", d->name, d->id, event, (unsigned long long)holder,
		       (unsigned long long)token);
}

static __u64 requested_agent(struct vg_leases *l, __u32 id)
{
	sqlite3_stmt *st;
	__u64 a = 0;

	if (sqlite3_prepare_v2(l->db, "SELECT to_agent FROM lease_requests WHERE lease_id = ?", -1,
			       &st, NULL))
		return 0;
	sqlite3_bind_int64(st, 1, id);
	if (sqlite3_step(st) == SQLITE_ROW)
		a = (__u64)sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return a;
}

static bool healthy(struct vg_leases *l, __u64 agent_id)
{
	struct agent_slot s;

	return vg_agent_get(l->maps, agent_id, NULL, &s) == 0 && s.state == VIGIL_AGENT_ALIVE &&
	       (s.status == VIGIL_STATUS_OK || s.status == VIGIL_STATUS_DEGRADED);
}

/* The best healthy candidate: a requested transfer first, then by
 * priority; the holder that just gave the lease up only as a last resort. */
static __u64 choose(struct vg_leases *l, const struct vg_lease_def *d, __u64 avoid)
{
	__u64 want = requested_agent(l, d->id), best = 0, fallback = 0;
	__u32 best_prio = 0;

	if (want && healthy(l, want))
		return want;
	for (__u32 i = 0; i < d->n_cand; i++) {
		__u64 a = d->cand[i].agent_id;

		if (!healthy(l, a))
			continue;
		if (a == avoid) {
			fallback = a;
			continue;
		}
		if (!best || d->cand[i].priority > best_prio) {
			best = a;
			best_prio = d->cand[i].priority;
		}
	}
	return best ? best : fallback;
}

static void publish_static(struct vg_leases *l, const struct vg_lease_def *d)
{
	struct lease_slot ls;
	__u32 id = d->id;

	if (bpf_map_lookup_elem(l->maps->leases, &id, &ls))
		return;
	if (ls.state == VIGIL_LEASE_HELD)
		return; /* never rewrite a live grant; the next grant carries them */
	ls.duration_ms = d->duration_ms;
	vg_strlcpy(ls.name, d->name, sizeof(ls.name));
	bpf_map_update_elem(l->maps->leases, &id, &ls, BPF_ANY);
}

int vg_leases_start(struct vg_leases *l, const struct vg_maps *m, struct sqlite3 *db,
		    const struct vg_lease_def *defs, size_t n, __u32 max_agents, bool quiet)
{
	memset(l, 0, sizeof(*l));
	l->maps = m;
	l->db = db;
	l->defs = defs;
	l->n = n;
	l->max_agents = max_agents;
	l->quiet = quiet;
	if (!n)
		return 0;
	l->st = calloc(n, sizeof(*l->st));
	if (!l->st || sql(db, vg_lease_schema))
		return -1;
	for (size_t i = 0; i < n; i++)
		publish_static(l, &defs[i]);
	return 0;
}

void vg_leases_stop(struct vg_leases *l)
{
	free(l->st);
	l->st = NULL;
}

/* Grant lease d now: write the reserved token's grant into the kernel and
 * hand the lease to the sweeper. */
static int grant(struct vg_leases *l, const struct vg_lease_def *d, struct vg_lease_state *ls,
		 const char *why)
{
	struct lease_slot k = {};
	__u32 id = d->id, wheel = l->max_agents + d->id;
	/* The holder that let the lease expire or gave it up is the last
	 * resort: it is likely still failing even if it looks alive. */
	__u64 holder = choose(l, d, strcmp(why, "initial") ? ls->last_holder : 0);
	__u64 now = vg_mono_ns();

	if (!holder)
		return -1; /* nobody healthy: try again next tick */
	if (l->shadow) {
		/* Once per lease state: the kernel's state never changes here. */
		if (ls->last_holder != holder || !ls->shadow_logged) {
			log_event(l, d, "would_grant", holder, ls->reserved);
			ls->shadow_logged = true;
			ls->last_holder = holder;
		}
		return 0;
	}
	k.holder = holder;
	k.token = ls->reserved;
	k.granted_ns = now;
	k.expires_ns = now + (__u64)d->duration_ms * VIGIL_NSEC_PER_MSEC;
	k.duration_ms = d->duration_ms;
	k.state = VIGIL_LEASE_HELD;
	vg_strlcpy(k.name, d->name, sizeof(k.name));
	if (bpf_map_update_elem(l->maps->leases, &id, &k, BPF_ANY)) {
		pr_warn("leases: granting %s failed: %s\n", d->name, strerror(errno));
		return -1;
	}
	if (bpf_map_update_elem(l->maps->inbox, NULL, &wheel, BPF_ANY))
		pr_warn("leases: handing %s to the sweeper failed: %s\n", d->name, strerror(errno));
	ls->reserved = 0;
	log_event(l, d, "granted", holder, k.token);
	{
		sqlite3_stmt *st;

		if (!sqlite3_prepare_v2(l->db, "UPDATE leases SET holder = ?, granted_wall_ns = ? "
					       "WHERE lease_id = ?; ", -1, &st, NULL)) {
			sqlite3_bind_int64(st, 1, (sqlite3_int64)holder);
			sqlite3_bind_int64(st, 2, (sqlite3_int64)vg_wall_ns());
			sqlite3_bind_int64(st, 3, id);
			sqlite3_step(st);
			sqlite3_finalize(st);
		}
		if (!sqlite3_prepare_v2(l->db, "DELETE FROM lease_requests WHERE lease_id = ?", -1,
					&st, NULL)) {
			sqlite3_bind_int64(st, 1, id);
			sqlite3_step(st);
			sqlite3_finalize(st);
		}
	}
	return 0;
}

int vg_leases_tick(struct vg_leases *l, int cap_ms)
{
	__u64 now = vg_mono_ns();
	int wait_ms = cap_ms;

	for (size_t i = 0; i < l->n; i++) {
		const struct vg_lease_def *d = &l->defs[i];
		struct vg_lease_state *s = &l->st[i];
		struct lease_slot k;
		__u32 id = d->id;
		__u64 due;
		const char *why;

		if (bpf_map_lookup_elem(l->maps->leases, &id, &k))
			continue;
		if (k.state != s->last_state) {
			if (k.state == VIGIL_LEASE_EXPIRED || k.state == VIGIL_LEASE_RELEASED)
				s->last_holder = k.holder;
			s->last_state = k.state;
		}
		if (k.state == VIGIL_LEASE_HELD)
			continue;
		/* Reserve the next token as soon as a grant is needed, well
		 * before it is due: the fsync is then off the failover path.
		 * A shadow monitor hands out nothing, so it reserves nothing. */
		if (!s->reserved && !l->shadow) {
			__u64 t = db_token(l->db, id);

			if (k.token > t)
				t = k.token;
			if (reserve(l, d, t + 1))
				continue;
			s->reserved = t + 1;
		}
		switch (k.state) {
		case VIGIL_LEASE_EXPIRED:
			due = k.expires_ns + (__u64)d->grace_ms * VIGIL_NSEC_PER_MSEC;
			why = "expired";
			break;
		case VIGIL_LEASE_RELEASED:
			/* Given up by its holder: at once. Released by an
			 * operator: the holder may act until expires_ns. */
			due = k.flags & VIGIL_LEASE_F_FORCED ? k.expires_ns : now;
			why = "released";
			break;
		default:
			/* Never granted in this instance. If the database has
			 * granted it before (new instance, reboot), a former
			 * holder may still act for one lease duration. */
			if (!s->since_ns)
				s->since_ns = now;
			due = s->reserved > 1 && !k.token ?
				      s->since_ns + (__u64)(d->duration_ms + d->grace_ms) *
							    VIGIL_NSEC_PER_MSEC : now;
			why = "initial";
			break;
		}
		if (now < due) {
			__u64 ms = (due - now + VIGIL_NSEC_PER_MSEC - 1) / VIGIL_NSEC_PER_MSEC;

			if (ms < (__u64)wait_ms)
				wait_ms = (int)ms;
			continue;
		}
		if (grant(l, d, s, why) && wait_ms > 10)
			wait_ms = 10; /* no healthy candidate yet: look again soon */
	}
	return wait_ms;
}

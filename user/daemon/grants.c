// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <bpf/bpf.h>
#include <sqlite3.h>
#include "common/eventlog.h"
#include "daemon/grants.h"
#include "daemon/lease_repl.h"
#include "common/json.h"
#include "common/log.h"
#include "common/registry.h"
#include "common/sql.h"
#include "common/util.h"

struct vg_lease_state {
	bool shadow_logged; /* shadow mode: this lease's would-be grant is logged */
	__u64 reserved;     /* token committed for the next grant, 0 = none */
	__u64 last_holder;  /* holder of the grant that ended, avoided on release */
	__u32 last_state;   /* kernel state seen at the last tick */
	__u64 since_ns;     /* first tick that looked at this lease */
	__u64 term_end;     /* replicated: this monitor's term ends (monotonic ns) */
	__u64 bucket_token; /* replicated: the highest token recorded in the database
			     * (the bucket's, as seen; the database's at start) */
	struct vg_lease_repl_view shown; /* replicated: what lease_replica says */
	__u64 shown_ns;     /* ... since (monotonic ns) */
};

static int sql(struct sqlite3 *db, const char *s)
{
	return vg_sql_exec_or_say(db, s, "leases: SQL");
}

static __u64 db_token(struct sqlite3 *db, __u32 id)
{
	__u64 t;

	vg_sql_u64(db, &t, "SELECT token FROM leases WHERE lease_id = ?", "i", (long long)id);
	return t;
}

/* Durably raise the lease's token to `token` (fsync on return). */
static int reserve(struct vg_leases *l, const struct vg_lease_def *d, __u64 token)
{
	if (sql(l->db, "BEGIN IMMEDIATE"))
		return -1;
	if (!vg_sql_run(l->db, "INSERT INTO leases (lease_id, name, token) VALUES (?1, ?2, ?3) "
			"ON CONFLICT(lease_id) DO UPDATE SET token = MAX(token, ?3), name = ?2",
			"iti", (long long)d->id, d->name, (long long)token)) {
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
	vg_sql_run(l->db, "INSERT INTO lease_log (lease_id, name, event, holder, token, wall_ns) "
		   "VALUES (?, ?, ?, ?, ?, ?)", "ittiii", (long long)d->id, d->name, event,
		   (long long)holder, (long long)token, (long long)vg_wall_ns());
	if (!l->quiet) {
		struct vg_json j;

		vg_json_begin(&j, stdout);
		vg_json_obj(&j);
		vg_json_str_field(&j, "lease", d->name);
		vg_json_u64_field(&j, "lease_id", d->id);
		vg_json_str_field(&j, "event", event);
		vg_json_u64_field(&j, "holder", holder);
		vg_json_u64_field(&j, "token", token);
		vg_json_end(&j);
	}
}

static __u64 requested_agent(struct vg_leases *l, __u32 id)
{
	__u64 a;

	vg_sql_u64(l->db, &a, "SELECT to_agent FROM lease_requests WHERE lease_id = ?", "i",
		   (long long)id);
	return a;
}

/* ALIVE, and not past a deadline: a candidate whose verdict the sweeper
 * holds (waiting for evidence that the receive path is current) has missed
 * its deadline and may be dead; it is granted nothing until it beats again. */
static bool healthy(struct vg_leases *l, __u64 agent_id)
{
	struct vg_agent a;

	return vg_agent_get(l->maps, agent_id, NULL, &a) == 0 && a.s.state == VIGIL_AGENT_ALIVE &&
	       !a.s.hold_since_ns &&
	       (a.s.status == VIGIL_STATUS_OK || a.s.status == VIGIL_STATUS_DEGRADED);
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

	if (bpf_map_lookup_elem_flags(l->maps->leases, &id, &ls, BPF_F_LOCK))
		return;
	if (ls.state == VIGIL_LEASE_HELD)
		return; /* never rewrite a live grant; the next grant carries them */
	ls.duration_ms = d->duration_ms;
	vg_strlcpy(ls.name, d->name, sizeof(ls.name));
	bpf_map_update_elem(l->maps->leases, &id, &ls, BPF_F_LOCK);
}

/* A lease this monitor grants alone has no term: whatever a replicated run
 * left in the kernel must not cut its renewals short. */
static void clear_term(struct vg_leases *l, const struct vg_lease_def *d)
{
	__u64 none = 0;
	__u32 id = d->id;

	if (bpf_map_update_elem(l->maps->lease_terms, &id, &none, BPF_ANY))
		pr_warn("leases: clearing the term of %s failed: %s\n", d->name, strerror(errno));
}

int vg_leases_start(struct vg_leases *l, const struct vg_maps *m, struct sqlite3 *db,
		    const struct vg_lease_def *defs, size_t n, __u32 max_agents, bool quiet,
		    struct vg_lease_repl *repl)
{
	memset(l, 0, sizeof(*l));
	l->maps = m;
	l->db = db;
	l->defs = defs;
	l->n = n;
	l->max_agents = max_agents;
	l->quiet = quiet;
	l->repl = repl;
	if (!n)
		return 0;
	l->st = calloc(n, sizeof(*l->st));
	if (!l->st || sql(db, vg_lease_schema))
		return -1;
	/* A record of an earlier, replicated run would describe a bucket this
	 * run does not read. */
	if (!repl)
		sql(db, "DELETE FROM lease_replica");
	for (size_t i = 0; i < n; i++) {
		publish_static(l, &defs[i]);
		if (!repl)
			clear_term(l, &defs[i]);
	}
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
	if (l->repl && k.expires_ns > ls->term_end)
		k.expires_ns = ls->term_end; /* as XDP's renewals will be */
	k.duration_ms = d->duration_ms;
	k.state = VIGIL_LEASE_HELD;
	vg_strlcpy(k.name, d->name, sizeof(k.name));
	if (bpf_map_update_elem(l->maps->leases, &id, &k, BPF_F_LOCK)) {
		pr_warn("leases: granting %s failed: %s\n", d->name, strerror(errno));
		return -1;
	}
	if (bpf_map_update_elem(l->maps->inbox, NULL, &wheel, BPF_ANY))
		pr_warn("leases: handing %s to the sweeper failed: %s\n", d->name, strerror(errno));
	ls->reserved = 0;
	if (l->repl)
		vg_lease_repl_granted(l->repl, (size_t)(d - l->defs), holder, k.token);
	log_event(l, d, "granted", holder, k.token);
	vg_sql_run(l->db, "UPDATE leases SET holder = ?, granted_wall_ns = ? WHERE lease_id = ?",
		   "iii", (long long)holder, (long long)vg_wall_ns(), (long long)id);
	vg_sql_run(l->db, "DELETE FROM lease_requests WHERE lease_id = ?", "i", (long long)id);
	return 0;
}

/* A replicated lease: this monitor may grant it only while it holds the
 * term, under a token the bucket has reserved for it, which is recorded in
 * the database too before it is used. false: not now. */
static bool repl_ready(struct vg_leases *l, size_t i, const struct lease_slot *k)
{
	const struct vg_lease_def *d = &l->defs[i];
	struct vg_lease_state *s = &l->st[i];
	__u64 local = k->token, token;

	/* The database's highest, without asking it at every tick. */
	if (s->bucket_token > local)
		local = s->bucket_token;
	if (s->reserved > local)
		local = s->reserved;
	if (!vg_lease_repl_may_grant(l->repl, i, local, &token, &s->term_end))
		return false;
	if (token != s->reserved) {
		if (reserve(l, d, token))
			return false;
		s->reserved = token;
	}
	return true;
}

/* A replicated lease: keep the bucket's token in the database as well, so
 * that this monitor's own record stays above every token granted anywhere. */
static void note_bucket_token(struct vg_leases *l, size_t i)
{
	struct vg_lease_state *s = &l->st[i];
	__u64 t = vg_lease_repl_token(l->repl, i);

	if (t > s->bucket_token && !reserve(l, &l->defs[i], t))
		s->bucket_token = t;
}

/* A replicated lease: the bucket's record into lease_replica, for `vigil
 * lease list`, when who grants, the holder or the token changed, and every
 * REPLICA_REFRESH_S (its time says how current it is). Not at every renewal:
 * that would be a database write per third of a term. */
#define REPLICA_REFRESH_S 10
static void note_replica(struct vg_leases *l, size_t i, __u64 now)
{
	struct vg_lease_state *s = &l->st[i];
	struct vg_lease_repl_view v;

	vg_lease_repl_view(l->repl, i, &v);
	if (!v.revision ||
	    (!strcmp(v.granter, s->shown.granter) && v.holder == s->shown.holder &&
	     v.token == s->shown.token &&
	     now - s->shown_ns < REPLICA_REFRESH_S * VIGIL_NSEC_PER_SEC))
		return;
	if (vg_sql_run(l->db, "INSERT OR REPLACE INTO lease_replica (lease_id, monitor, granter, "
		       "holder, token, revision, term_ms, wall_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
		       "ittiiiii", (long long)l->defs[i].id, v.monitor, v.granter,
		       (long long)v.holder, (long long)v.token, (long long)v.revision,
		       (long long)v.term_ms, (long long)vg_wall_ns())) {
		s->shown = v;
		s->shown_ns = now;
	}
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
		int err;

		if (bpf_map_lookup_elem_flags(l->maps->leases, &id, &k, BPF_F_LOCK))
			continue;
		if (!s->since_ns) {
			s->since_ns = now;
			if (l->repl)
				s->bucket_token = db_token(l->db, id);
		}
		if (k.state != s->last_state) {
			if (k.state == VIGIL_LEASE_EXPIRED || k.state == VIGIL_LEASE_RELEASED)
				s->last_holder = k.holder;
			s->last_state = k.state;
		}
		if (l->repl) {
			note_bucket_token(l, i);
			note_replica(l, i, now);
		}
		/* Reserve the next token while the lease is still held: the
		 * write and its fsync are then off the failover path, which on
		 * a busy disk (or behind another connection's lock) can take
		 * far longer than the grace. A shadow monitor hands out
		 * nothing, so it reserves nothing; with replication the bucket
		 * holds the tokens. */
		if (!l->repl && !s->reserved && !l->shadow) {
			__u64 t = db_token(l->db, id);

			if (k.token > t)
				t = k.token;
			if (reserve(l, d, t + 1))
				continue;
			s->reserved = t + 1;
		}
		if (k.state == VIGIL_LEASE_HELD)
			continue;
		if (l->repl && !repl_ready(l, i, &k)) {
			if (wait_ms > 10)
				wait_ms = 10; /* a standby, or the bucket is slow */
			continue;
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
		err = grant(l, d, s, why);
		if (l->repl)
			vg_lease_repl_no_candidate(l->repl, i, err != 0);
		if (err && wait_ms > 10)
			wait_ms = 10; /* no healthy candidate yet: look again soon */
	}
	return wait_ms;
}

// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/*
 * `vigil lease list|show|transfer|release` (docs/leases.md). The kernel's
 * view (holder, token, time left, renewals) comes from the pinned
 * vigil_leases map; the durable one (the highest token reserved, pending
 * transfers, the grant history) from the daemon's SQLite tables. Transfer and
 * release hand the lease back to the daemon, which grants it again once the
 * current holder can no longer act (docs/leases.md, "Operator actions").
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <sqlite3.h>
#include "cli/cli.h"
#include "common/instance.h"
#include "common/eventlog.h"
#include "common/json.h"
#include "common/log.h"
#include "common/options.h"
#include "common/registry.h"
#include "common/sql.h"
#include "common/util.h"

/* A lease replicated through NATS (docs/leases.md): the bucket's record as
 * the daemon last read it (table lease_replica). */
struct replica {
	bool have;
	char monitor[65], granter[65]; /* this monitor's name; who grants ("": nobody) */
	__u64 holder, token, revision, wall_ns;
	__u32 term_ms;
};

struct lease_row {
	__u32 id;
	struct lease_slot k;
	bool have_db;        /* the database knows this lease */
	__u64 reserved;      /* highest token reserved (leases.token) */
	__u64 transfer_to;   /* pending transfer, 0 = none */
	char holder_name[VIGIL_NAME_LEN];
	struct replica rep;
};

/* Open the database if it exists; NULL (and quietly) if it does not and the
 * caller did not insist. */
static sqlite3 *open_db(const char *path, bool rw, bool must)
{
	sqlite3 *db = NULL;

	if (!must && access(path, F_OK) != 0)
		return NULL;
	if (sqlite3_open_v2(path, &db, rw ? SQLITE_OPEN_READWRITE : SQLITE_OPEN_READONLY, NULL) !=
	    SQLITE_OK) {
		if (must)
			pr_warn("%s: cannot open the database: %s (see --db)\n", path,
				db ? sqlite3_errmsg(db) : "out of memory");
		sqlite3_close(db);
		return NULL;
	}
	sqlite3_busy_timeout(db, 5000);
	return db;
}

/* Does this monitor stand by while another grants (or nobody does)? Its
 * kernel then holds no grant, and the bucket says who holds the lease. */
static bool standby(const struct lease_row *r)
{
	return r->rep.have && strcmp(r->rep.granter, r->rep.monitor) &&
	       r->k.state != VIGIL_LEASE_HELD;
}

static void fill_replica(sqlite3 *db, struct lease_row *r)
{
	sqlite3_stmt *st = NULL;
	struct replica *p = &r->rep;

	memset(p, 0, sizeof(*p));
	/* A database of a daemon without --lease-nats has no such table. */
	if (!db || sqlite3_prepare_v2(db, "SELECT monitor, granter, holder, token, revision, term_ms, "
				      "wall_ns FROM lease_replica WHERE lease_id = ?", -1, &st,
				      NULL) != SQLITE_OK) {
		sqlite3_finalize(st);
		return;
	}
	sqlite3_bind_int64(st, 1, r->id);
	if (sqlite3_step(st) == SQLITE_ROW) {
		p->have = true;
		vg_strlcpy(p->monitor, vg_col_text(st, 0), sizeof(p->monitor));
		vg_strlcpy(p->granter, vg_col_text(st, 1), sizeof(p->granter));
		p->holder = (__u64)sqlite3_column_int64(st, 2);
		p->token = (__u64)sqlite3_column_int64(st, 3);
		p->revision = (__u64)sqlite3_column_int64(st, 4);
		p->term_ms = (__u32)sqlite3_column_int64(st, 5);
		p->wall_ns = (__u64)sqlite3_column_int64(st, 6);
	}
	sqlite3_finalize(st);
}

static void fill_row(const struct vg_maps *m, sqlite3 *db, struct lease_row *r)
{
	struct vg_agent a;
	__u64 holder;

	r->have_db = vg_sql_u64(db, &r->reserved, "SELECT token FROM leases WHERE lease_id = ?",
				"i", (long long)r->id);
	vg_sql_u64(db, &r->transfer_to, "SELECT to_agent FROM lease_requests WHERE lease_id = ?",
		   "i", (long long)r->id);
	fill_replica(db, r);
	holder = standby(r) ? r->rep.holder : r->k.holder;
	r->holder_name[0] = '\0';
	if (holder && vg_agent_get(m, holder, NULL, &a) == 0)
		vg_strlcpy(r->holder_name, a.i.name, sizeof(r->holder_name));
}

static bool in_use(const struct lease_slot *k)
{
	return k->name[0] || k->token || k->state != VIGIL_LEASE_FREE;
}

/* NAME or numeric id -> lease id, from the names the daemon published. */
static int resolve(const struct vg_maps *m, const char *arg, struct lease_row *r)
{
	char *end;
	unsigned long v = strtoul(arg, &end, 10);

	memset(r, 0, sizeof(*r));
	if (*arg && !*end && v > 0 && v < VIGIL_MAX_LEASES) {
		r->id = (__u32)v;
		if (bpf_map_lookup_elem(m->leases, &r->id, &r->k) == 0 && in_use(&r->k))
			return 0;
	}
	for (__u32 id = 1; id < VIGIL_MAX_LEASES; id++) {
		if (bpf_map_lookup_elem(m->leases, &id, &r->k))
			continue;
		if (r->k.name[0] && !strncmp(r->k.name, arg, sizeof(r->k.name))) {
			r->id = id;
			return 0;
		}
	}
	pr_warn("lease '%s': no such lease (see vigil lease list)\n", arg);
	return -1;
}

static double remaining_ms(const struct lease_slot *k, __u64 now)
{
	return k->state == VIGIL_LEASE_HELD && k->expires_ns > now ?
		       (double)(k->expires_ns - now) / 1e6 : 0.0;
}

static void replica_json(struct vg_json *j, const struct replica *p, bool standing_by)
{
	char when[40];

	vg_json_key(j, "replicated");
	if (!p->have) {
		vg_json_null(j);
		return;
	}
	vg_fmt_wall(p->wall_ns, when, sizeof(when));
	vg_json_obj(j);
	vg_json_str_field(j, "monitor", p->monitor);
	vg_json_str_field(j, "granter", p->granter);
	vg_json_bool_field(j, "standby", standing_by);
	vg_json_u64_field(j, "holder", p->holder);
	vg_json_u64_field(j, "token", p->token);
	vg_json_u64_field(j, "revision", p->revision);
	vg_json_u64_field(j, "term_ms", p->term_ms);
	vg_json_u64_field(j, "read_wall_ns", p->wall_ns);
	vg_json_str_field(j, "read_time", when);
	vg_json_close(j);
}

/* The row's fields, into an object the caller has opened (show adds the
 * history before closing it). */
static void row_json(struct vg_json *j, const struct lease_row *r, __u64 now)
{
	const struct lease_slot *k = &r->k;
	bool sb = standby(r);

	vg_json_u64_field(j, "lease_id", r->id);
	vg_json_str_field(j, "name", k->name);
	vg_json_str_field(j, "state", sb ? "standby" : vg_lease_state_name(k->state));
	vg_json_u64_field(j, "holder", sb ? r->rep.holder : k->holder);
	vg_json_str_field(j, "holder_name", r->holder_name);
	vg_json_u64_field(j, "token", sb ? r->rep.token : k->token);
	vg_json_double_field(j, "remaining_ms", "%.3f", remaining_ms(k, now));
	vg_json_u64_field(j, "duration_ms", k->duration_ms);
	vg_json_u64_field(j, "renewals", k->renewals);
	vg_json_double_field(j, "held_for_ms", "%.3f",
			     k->state == VIGIL_LEASE_HELD && k->granted_ns && now > k->granted_ns ?
				     (double)(now - k->granted_ns) / 1e6 : 0.0);
	vg_json_bool_field(j, "forced", k->flags & VIGIL_LEASE_F_FORCED);
	vg_json_key(j, "reserved_token");
	if (r->have_db)
		vg_json_u64(j, r->reserved);
	else
		vg_json_null(j);
	vg_json_key(j, "transfer_to");
	if (r->transfer_to)
		vg_json_u64(j, r->transfer_to);
	else
		vg_json_null(j);
	replica_json(j, &r->rep, sb);
}

static void print_header(void)
{
	printf("%-4s %-20s %-9s %-10s %-12s %10s %12s %9s %10s %9s\n", "ID", "NAME", "STATE",
	       "HOLDER", "HOLDER-NAME", "TOKEN", "REMAINING", "DURATION", "RENEWALS", "RESERVED");
}

/* The line under a replicated lease: who grants it, from the bucket. */
static void print_replica(const struct lease_row *r)
{
	const struct replica *p = &r->rep;
	__u64 wall = vg_wall_ns();
	char who[200];

	if (!p->have)
		return;
	if (!p->granter[0])
		snprintf(who, sizeof(who), "no monitor grants it now (the term is free)");
	else if (!strcmp(p->granter, p->monitor))
		snprintf(who, sizeof(who), "this monitor ('%s') grants it", p->monitor);
	else
		snprintf(who, sizeof(who), "monitor '%s' grants it; this one ('%s') stands by",
			 p->granter, p->monitor);
	printf("     replicated: %s (term %u ms); the bucket: holder %llu, token %llu, revision "
	       "%llu, read %.1f s ago\n", who, p->term_ms, (unsigned long long)p->holder,
	       (unsigned long long)p->token, (unsigned long long)p->revision,
	       wall > p->wall_ns ? (double)(wall - p->wall_ns) / 1e9 : 0.0);
}

static void print_row_text(const struct lease_row *r, __u64 now)
{
	const struct lease_slot *k = &r->k;
	bool sb = standby(r);
	char rem[24], dur[16], res[24];

	snprintf(rem, sizeof(rem), "%.1fms", remaining_ms(k, now));
	snprintf(dur, sizeof(dur), "%ums", k->duration_ms);
	if (r->have_db)
		snprintf(res, sizeof(res), "%llu", (unsigned long long)r->reserved);
	else
		snprintf(res, sizeof(res), "-");
	printf("%-4u %-20s %-9s %-10llu %-12s %10llu %12s %9s %10llu %9s%s\n", r->id,
	       k->name[0] ? k->name : "-", sb ? "standby" : vg_lease_state_name(k->state),
	       (unsigned long long)(sb ? r->rep.holder : k->holder),
	       r->holder_name[0] ? r->holder_name : "-",
	       (unsigned long long)(sb ? r->rep.token : k->token), rem, dur,
	       (unsigned long long)k->renewals, res,
	       k->flags & VIGIL_LEASE_F_FORCED ? "  (released by an operator)" : "");
	print_replica(r);
	if (r->transfer_to)
		printf("     transfer to agent %llu pending\n", (unsigned long long)r->transfer_to);
}

static int lease_list(const struct vg_maps *m, sqlite3 *db, bool json)
{
	__u64 now = vg_mono_ns();
	struct vg_json j;
	int n = 0;

	vg_json_begin(&j, stdout);
	if (json) {
		vg_json_obj(&j);
		vg_json_arr_field(&j, "leases");
	} else {
		print_header();
	}
	for (__u32 id = 1; id < VIGIL_MAX_LEASES; id++) {
		struct lease_row r = { .id = id };

		if (bpf_map_lookup_elem(m->leases, &id, &r.k) || !in_use(&r.k))
			continue;
		fill_row(m, db, &r);
		if (json) {
			vg_json_obj(&j);
			row_json(&j, &r, now);
			vg_json_close(&j);
		} else {
			print_row_text(&r, now);
		}
		n++;
	}
	if (json)
		vg_json_end(&j);
	else if (!n)
		printf("(no leases: declare them with 'lease' lines in the agents file)\n");
	return 0;
}

static void history_row(struct vg_json *j, sqlite3_stmt *st)
{
	const char *ev = vg_col_text(st, 1);
	char when[40];

	vg_fmt_wall((__u64)sqlite3_column_int64(st, 4), when, sizeof(when));
	if (!j) {
		printf("  %s  %-20s agent %-10llu token %llu\n", when, ev,
		       (unsigned long long)sqlite3_column_int64(st, 2),
		       (unsigned long long)sqlite3_column_int64(st, 3));
		return;
	}
	vg_json_obj(j);
	vg_json_s64_field(j, "id", sqlite3_column_int64(st, 0));
	vg_json_str_field(j, "event", ev);
	vg_json_u64_field(j, "holder", (__u64)sqlite3_column_int64(st, 2));
	vg_json_u64_field(j, "token", (__u64)sqlite3_column_int64(st, 3));
	vg_json_u64_field(j, "wall_ns", (__u64)sqlite3_column_int64(st, 4));
	vg_json_str_field(j, "time", when);
	vg_json_close(j);
}

static int lease_show(const struct vg_maps *m, sqlite3 *db, const char *arg, bool json,
		      __u32 history)
{
	__u64 now = vg_mono_ns();
	struct lease_row r;
	struct vg_json j;
	sqlite3_stmt *st = NULL;
	int n = 0;

	if (resolve(m, arg, &r))
		return 1;
	fill_row(m, db, &r);
	vg_json_begin(&j, stdout);
	if (json) {
		vg_json_obj(&j);
		row_json(&j, &r, now);
		vg_json_arr_field(&j, "history");
	} else {
		print_header();
		print_row_text(&r, now);
		printf("\nhistory (newest last):\n");
	}
	if (db && history &&
	    sqlite3_prepare_v2(db, "SELECT id, event, holder, token, wall_ns FROM (SELECT * FROM "
				   "lease_log WHERE lease_id = ? ORDER BY id DESC LIMIT ?) ORDER BY id",
			       -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, r.id);
		sqlite3_bind_int64(st, 2, history);
		for (; sqlite3_step(st) == SQLITE_ROW; n++)
			history_row(json ? &j : NULL, st);
		sqlite3_finalize(st);
	}
	if (json)
		vg_json_end(&j);
	else if (!n)
		printf("  (none recorded%s)\n", db ? "" : ": no database, see --db");
	return 0;
}

/* End the current grant: RELEASED, marked as forced, with expires_ns no
 * earlier than any deadline the holder may have been told (a renewal racing
 * this write moves it at most to now + duration). The daemon grants again
 * at expires_ns. */
static int force_release(const struct vg_maps *m, struct lease_row *r)
{
	struct lease_slot k;
	__u64 until;

	if (bpf_map_lookup_elem_flags(m->leases, &r->id, &k, BPF_F_LOCK)) {
		pr_warn("lease %s: reading vigil_leases failed: %s\n", r->k.name, strerror(errno));
		return -1;
	}
	if (k.state != VIGIL_LEASE_HELD)
		return 0; /* ended meanwhile: the daemon grants it anyway */
	until = vg_mono_ns() + ((__u64)k.duration_ms + 1) * VIGIL_NSEC_PER_MSEC;
	if (k.expires_ns < until)
		k.expires_ns = until;
	k.state = VIGIL_LEASE_RELEASED;
	k.flags |= VIGIL_LEASE_F_FORCED;
	if (bpf_map_update_elem(m->leases, &r->id, &k, BPF_F_LOCK | BPF_EXIST)) {
		pr_warn("lease %s: writing vigil_leases failed: %s\n", r->k.name, strerror(errno));
		return -1;
	}
	r->k = k;
	return 1;
}

static int lease_change(const struct vg_maps *m, const char *db_path, const char *arg,
			__u64 to, bool transfer)
{
	const char *name;
	struct lease_row r;
	struct vg_agent a;
	sqlite3 *db;
	int ended;

	if (resolve(m, arg, &r))
		return 1;
	name = r.k.name[0] ? r.k.name : arg;
	if (transfer && vg_agent_get(m, to, NULL, &a)) {
		pr_warn("lease %s: agent %llu is not registered (see vigil agent list)\n", name,
			(unsigned long long)to);
		return 1;
	}
	if (transfer && r.k.state == VIGIL_LEASE_HELD && r.k.holder == to) {
		printf("lease %s: agent %llu holds it already (token %llu)\n", name,
		       (unsigned long long)to, (unsigned long long)r.k.token);
		return 0;
	}
	db = open_db(db_path, true, true);
	if (!db)
		return 1;
	/* The request is durable before the grant ends, so the daemon that
	 * grants next (this one or a restarted one) sees it. */
	if (!vg_sql_exec(db, vg_lease_schema) ||
	    (transfer && !vg_sql_run(db, "INSERT INTO lease_requests (lease_id, to_agent, wall_ns) "
				     "VALUES (?1, ?2, ?3) ON CONFLICT(lease_id) DO UPDATE SET "
				     "to_agent = ?2, wall_ns = ?3", "iii", (long long)r.id,
				     (long long)to, (long long)vg_wall_ns())) ||
	    !vg_sql_run(db, "INSERT INTO lease_log (lease_id, name, event, holder, token, wall_ns) "
			"VALUES (?1, (SELECT name FROM leases WHERE lease_id = ?1), ?2, ?3, ?4, ?5)",
			"itiii", (long long)r.id, transfer ? "transfer_requested" : "release_requested",
			(long long)(transfer ? to : r.k.holder), (long long)r.k.token,
			(long long)vg_wall_ns())) {
		pr_warn("%s: recording the request failed: %s\n", db_path, sqlite3_errmsg(db));
		sqlite3_close(db);
		return 1;
	}
	sqlite3_close(db);
	ended = force_release(m, &r);
	if (ended < 0)
		return 1;
	if (!ended) {
		printf("lease %s: not held (%s); %s\n", name, vg_lease_state_name(r.k.state),
		       transfer ? "the next grant goes to the requested agent if it is healthy" :
				  "nothing to release");
		return 0;
	}
	printf("lease %s: grant %llu of agent %llu ended; the next grant (to ", name,
	       (unsigned long long)r.k.token, (unsigned long long)r.k.holder);
	if (transfer)
		printf("agent %llu if it is healthy", (unsigned long long)to);
	else
		printf("another healthy candidate");
	printf(") follows within %u ms, when the holder's lease time has run out\n",
	       r.k.duration_ms + 1);
	return 0;
}

struct lease_opts {
	const char *pin_root, *db_path;
	bool json;
	__u32 history;
	__u64 to;
};

#define LEASE struct lease_opts

static const struct vg_opt list_opts[] = {
	{ VG_OPT_JSON(LEASE, json, "print one JSON object") },
	{ VG_OPT_PIN_ROOT(LEASE, pin_root) },
	{ VG_OPT_DB(LEASE, db_path) },
	{}
};

static const struct vg_opt show_opts[] = {
	{ VG_OPT_JSON(LEASE, json, "print one JSON object") },
	{ VG_OPT_UINT(0, "history", LEASE, history, 0, 1000000, "N",
		      "the last N grants and releases") },
	{ VG_OPT_PIN_ROOT(LEASE, pin_root) },
	{ VG_OPT_DB(LEASE, db_path) },
	{}
};

static const struct vg_opt transfer_opts[] = {
	{ VG_OPT_UINT(0, "to", LEASE, to, 1, UINT64_MAX, "AGENT",
		      "the agent id to hand the lease to"), .required = true },
	{ VG_OPT_PIN_ROOT(LEASE, pin_root) },
	{ VG_OPT_DB(LEASE, db_path) },
	{}
};

static const struct vg_opt release_opts[] = {
	{ VG_OPT_PIN_ROOT(LEASE, pin_root) },
	{ VG_OPT_DB(LEASE, db_path) },
	{}
};

static const struct lease_opts lease_defaults = { .pin_root = VIGIL_DEFAULT_PIN_ROOT,
						  .db_path = VIGIL_DEFAULT_DB, .history = 20 };

/* The lease the positional argument names (every verb but list), the
 * instance opened. Returns 0, or the exit status. */
static int lease_begin(const struct lease_opts *o, const struct vg_parsed *p, const char **arg,
		       struct vg_maps *m)
{
	struct vigil_meta meta;

	*arg = p->argc ? p->argv[0] : NULL;
	if (p->cmd->max_args && !*arg) {
		pr_warn("%s: which lease? (NAME or ID; see vigil lease list)\n", p->cmd->name);
		return 2;
	}
	return vg_instance_open(o->pin_root, m, &meta) ? 1 : 0;
}

/* list and show: the maps, and the database if given (then it must open)
 * or present. */
static int read_run(const struct vg_parsed *p)
{
	const struct lease_opts *o = p->opts;
	bool db_given = vg_opt_given(p, &o->db_path);
	const char *arg;
	struct vg_maps m;
	sqlite3 *db;
	int ret = lease_begin(o, p, &arg, &m);

	if (ret)
		return ret;
	db = open_db(o->db_path, false, db_given);
	if (db_given && !db)
		ret = 1;
	else
		ret = arg ? lease_show(&m, db, arg, o->json, o->history) :
			    lease_list(&m, db, o->json);
	sqlite3_close(db);
	vg_maps_close(&m);
	return ret;
}

static int change_run(const struct vg_parsed *p, bool transfer)
{
	const struct lease_opts *o = p->opts;
	const char *arg;
	struct vg_maps m;
	int ret;

	ret = lease_begin(o, p, &arg, &m);
	if (ret)
		return ret;
	ret = lease_change(&m, o->db_path, arg, o->to, transfer);
	vg_maps_close(&m);
	return ret;
}

static int transfer_run(const struct vg_parsed *p)
{
	return change_run(p, true);
}

static int release_run(const struct vg_parsed *p)
{
	return change_run(p, false);
}

#define LEASE_CMD(fn) .size = sizeof(struct lease_opts), .defaults = &lease_defaults, .run = fn

static const struct vg_cmd list_cmd = {
	VG_CMD("lease list", "every lease, its holder and fencing token",
	       "Every lease: who holds it, under which fencing token, for how long.",
	       "  vigil lease list\n"),
	.opts = list_opts, LEASE_CMD(read_run),
};

static const struct vg_cmd show_cmd = {
	VG_CMD("lease show", "one lease and its recent grants",
	       "One lease and its recent grants and releases.",
	       "  vigil lease show primary --json\n"),
	.args = "NAME|ID", .opts = show_opts, .max_args = 1, LEASE_CMD(read_run),
};

static const struct vg_cmd transfer_cmd = {
	VG_CMD("lease transfer", "hand a lease to another agent",
	       "Make AGENT (if healthy) the next holder. The current grant ends; the daemon "
	       "grants again once the current holder's lease time has run out (it may act "
	       "until then).", "  vigil lease transfer primary --to 2\n"),
	.args = "NAME|ID", .opts = transfer_opts, .max_args = 1, LEASE_CMD(transfer_run),
};

static const struct vg_cmd release_cmd = {
	VG_CMD("lease release", "end the current grant; the daemon picks the next",
	       "End the current grant and let the daemon pick the next holder, once the "
	       "current holder's lease time has run out.", NULL),
	.args = "NAME|ID", .opts = release_opts, .max_args = 1, LEASE_CMD(release_run),
};

VG_VERBS(cli_lease, "lease",
	 "list, show, transfer or release leases (fencing tokens)",
	 "Leases with fencing tokens (docs/leases.md): who holds each, under which "
	 "token, for how long; operator transfer and release.",
	 { .cmd = &list_cmd }, { .cmd = &show_cmd }, { .cmd = &transfer_cmd },
	 { .cmd = &release_cmd });

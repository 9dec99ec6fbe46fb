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
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <sqlite3.h>
#include "cli.h"
#include "instance.h"
#include "lease.h"
#include "log.h"
#include "registry.h"
#include "util.h"

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: vigil lease list [--json]\n"
		"       vigil lease show NAME|ID [--json] [--history N]\n"
		"       vigil lease transfer NAME|ID --to AGENT\n"
		"       vigil lease release NAME|ID\n"
		"Leases with fencing tokens: who holds each, under which token, for how long.\n"
		"'transfer' makes AGENT (if healthy) the next holder, 'release' lets the daemon\n"
		"pick one; either ends the current grant, and the daemon grants again once the\n"
		"current holder's lease time has run out (it may act until then).\n"
		"\n"
		"      --json           JSON output\n"
		"      --history N      'show': the last N grants and releases (default 20)\n"
		"      --to AGENT       'transfer': the agent id to hand the lease to\n"
		"      --pin-root DIR   the instance (default %s)\n"
		"      --db FILE        the daemon's database (default %s)\n"
		"\n"
		"Examples:\n"
		"  vigil lease list\n"
		"  vigil lease show primary --json\n"
		"  vigil lease transfer primary --to 2\n",
		VIGIL_DEFAULT_PIN_ROOT, VIGIL_DEFAULT_DB);
}

struct lease_row {
	__u32 id;
	struct lease_slot k;
	bool have_db;        /* the database knows this lease */
	__u64 reserved;      /* highest token reserved (leases.token) */
	__u64 transfer_to;   /* pending transfer, 0 = none */
	char holder_name[VIGIL_NAME_LEN];
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

static __u64 db_u64(sqlite3 *db, const char *sql, __u32 id, bool *found)
{
	sqlite3_stmt *st;
	__u64 v = 0;

	if (found)
		*found = false;
	if (!db || sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return 0;
	sqlite3_bind_int64(st, 1, id);
	if (sqlite3_step(st) == SQLITE_ROW) {
		v = (__u64)sqlite3_column_int64(st, 0);
		if (found)
			*found = true;
	}
	sqlite3_finalize(st);
	return v;
}

static void fill_row(const struct vg_maps *m, sqlite3 *db, struct lease_row *r)
{
	struct agent_slot s;

	r->reserved = db_u64(db, "SELECT token FROM leases WHERE lease_id = ?", r->id, &r->have_db);
	r->transfer_to = db_u64(db, "SELECT to_agent FROM lease_requests WHERE lease_id = ?", r->id,
				NULL);
	r->holder_name[0] = '\0';
	if (r->k.holder && vg_agent_get(m, r->k.holder, NULL, &s) == 0)
		vg_strlcpy(r->holder_name, s.name, sizeof(r->holder_name));
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

static void print_row_json(const struct lease_row *r, __u64 now)
{
	const struct lease_slot *k = &r->k;

	printf("{\"lease_id\":%u,\"name\":", r->id);
	vg_json_str(stdout, k->name);
	printf(",\"state\":\"%s\",\"holder\":%llu,\"holder_name\":", vg_lease_state_name(k->state),
	       (unsigned long long)k->holder);
	vg_json_str(stdout, r->holder_name);
	printf(",\"token\":%llu,\"remaining_ms\":%.3f,\"duration_ms\":%u,\"renewals\":%llu,"
	       "\"held_for_ms\":%.3f,\"forced\":%s",
	       (unsigned long long)k->token, remaining_ms(k, now), k->duration_ms,
	       (unsigned long long)k->renewals,
	       k->state == VIGIL_LEASE_HELD && k->granted_ns && now > k->granted_ns ?
		       (double)(now - k->granted_ns) / 1e6 : 0.0,
	       k->flags & VIGIL_LEASE_F_FORCED ? "true" : "false");
	if (r->have_db)
		printf(",\"reserved_token\":%llu", (unsigned long long)r->reserved);
	else
		printf(",\"reserved_token\":null");
	if (r->transfer_to)
		printf(",\"transfer_to\":%llu", (unsigned long long)r->transfer_to);
	else
		printf(",\"transfer_to\":null");
}

static void print_header(void)
{
	printf("%-4s %-20s %-9s %-10s %-12s %10s %12s %9s %10s %9s\n", "ID", "NAME", "STATE",
	       "HOLDER", "HOLDER-NAME", "TOKEN", "REMAINING", "DURATION", "RENEWALS", "RESERVED");
}

static void print_row_text(const struct lease_row *r, __u64 now)
{
	const struct lease_slot *k = &r->k;
	char rem[24], dur[16], res[24];

	snprintf(rem, sizeof(rem), "%.1fms", remaining_ms(k, now));
	snprintf(dur, sizeof(dur), "%ums", k->duration_ms);
	if (r->have_db)
		snprintf(res, sizeof(res), "%llu", (unsigned long long)r->reserved);
	else
		snprintf(res, sizeof(res), "-");
	printf("%-4u %-20s %-9s %-10llu %-12s %10llu %12s %9s %10llu %9s%s\n", r->id,
	       k->name[0] ? k->name : "-", vg_lease_state_name(k->state),
	       (unsigned long long)k->holder, r->holder_name[0] ? r->holder_name : "-",
	       (unsigned long long)k->token, rem, dur, (unsigned long long)k->renewals, res,
	       k->flags & VIGIL_LEASE_F_FORCED ? "  (released by an operator)" : "");
	if (r->transfer_to)
		printf("     transfer to agent %llu pending\n", (unsigned long long)r->transfer_to);
}

static int lease_list(const struct vg_maps *m, sqlite3 *db, bool json)
{
	__u64 now = vg_mono_ns();
	int n = 0;

	if (json)
		printf("{\"leases\":[");
	else
		print_header();
	for (__u32 id = 1; id < VIGIL_MAX_LEASES; id++) {
		struct lease_row r = { .id = id };

		if (bpf_map_lookup_elem(m->leases, &id, &r.k) || !in_use(&r.k))
			continue;
		fill_row(m, db, &r);
		if (json) {
			printf("%s", n ? "," : "");
			print_row_json(&r, now);
			printf("}");
		} else {
			print_row_text(&r, now);
		}
		n++;
	}
	if (json)
		printf("]}\n");
	else if (!n)
		printf("(no leases: declare them with 'lease' lines in the agents file)\n");
	return 0;
}

static int lease_show(const struct vg_maps *m, sqlite3 *db, const char *arg, bool json,
		      __u32 history)
{
	__u64 now = vg_mono_ns();
	struct lease_row r;
	sqlite3_stmt *st = NULL;
	int n = 0;

	if (resolve(m, arg, &r))
		return 1;
	fill_row(m, db, &r);
	if (json) {
		print_row_json(&r, now);
		printf(",\"history\":[");
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
		while (sqlite3_step(st) == SQLITE_ROW) {
			const char *ev = (const char *)sqlite3_column_text(st, 1);
			char when[40];

			vg_fmt_wall((__u64)sqlite3_column_int64(st, 4), when, sizeof(when));
			if (json) {
				printf("%s{\"id\":%lld,\"event\":", n ? "," : "",
				       (long long)sqlite3_column_int64(st, 0));
				vg_json_str(stdout, ev ? ev : "");
				printf(",\"holder\":%llu,\"token\":%llu,\"wall_ns\":%llu,\"time\":\"%s\"}",
				       (unsigned long long)sqlite3_column_int64(st, 2),
				       (unsigned long long)sqlite3_column_int64(st, 3),
				       (unsigned long long)sqlite3_column_int64(st, 4), when);
			} else {
				printf("  %s  %-20s agent %-10llu token %llu\n", when, ev ? ev : "",
				       (unsigned long long)sqlite3_column_int64(st, 2),
				       (unsigned long long)sqlite3_column_int64(st, 3));
			}
			n++;
		}
		sqlite3_finalize(st);
	}
	if (json)
		printf("]}\n");
	else if (!n)
		printf("  (none recorded%s)\n", db ? "" : ": no database, see --db");
	return 0;
}

/* Run one statement with ?1 = id, ?2 = a, ?3 = b, ?4 = the wall clock and
 * ?5 = text. */
static int db_exec(sqlite3 *db, const char *sql, __u32 id, __u64 a, __u64 b, const char *text)
{
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)a);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)b);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)vg_wall_ns());
	if (text)
		sqlite3_bind_text(st, 5, text, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

/* End the current grant: RELEASED, marked as forced, with expires_ns no
 * earlier than any deadline the holder may have been told (a renewal racing
 * this write moves it at most to now + duration). The daemon grants again
 * at expires_ns. */
static int force_release(const struct vg_maps *m, struct lease_row *r)
{
	struct lease_slot k;
	__u64 until;

	if (bpf_map_lookup_elem(m->leases, &r->id, &k)) {
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
	if (bpf_map_update_elem(m->leases, &r->id, &k, BPF_EXIST)) {
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
	struct agent_slot s;
	sqlite3 *db;
	int ended;

	if (resolve(m, arg, &r))
		return 1;
	name = r.k.name[0] ? r.k.name : arg;
	if (transfer && vg_agent_get(m, to, NULL, &s)) {
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
	if (sqlite3_exec(db, vg_lease_schema, NULL, NULL, NULL) != SQLITE_OK ||
	    (transfer && db_exec(db, "INSERT INTO lease_requests (lease_id, to_agent, wall_ns) "
				     "VALUES (?1, ?2, ?4) ON CONFLICT(lease_id) DO UPDATE SET "
				     "to_agent = ?2, wall_ns = ?4",
				 r.id, to, 0, NULL)) ||
	    db_exec(db, "INSERT INTO lease_log (lease_id, name, event, holder, token, wall_ns) "
			"VALUES (?1, (SELECT name FROM leases WHERE lease_id = ?1), ?5, ?2, ?3, ?4)",
		    r.id, transfer ? to : r.k.holder, r.k.token,
		    transfer ? "transfer_requested" : "release_requested")) {
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

int cmd_lease(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "history", required_argument, NULL, 'H' },
		{ "to", required_argument, NULL, 't' },
		{ "pin-root", required_argument, NULL, 'P' },
		{ "db", required_argument, NULL, 'b' },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	const char *pin_root = VIGIL_DEFAULT_PIN_ROOT, *db_path = VIGIL_DEFAULT_DB, *sub, *arg = NULL;
	bool json = false, db_given = false, have_to = false;
	__u32 history = 20;
	__u64 to = 0;
	struct vigil_meta meta;
	struct vg_maps m;
	sqlite3 *db = NULL;
	int opt, ret;

	if (argc < 2) {
		pr_warn("lease: which subcommand? (list, show, transfer or release; see vigil lease "
			"--help)\n");
		return 2;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		usage(stdout);
		return 0;
	}
	sub = argv[1];
	if (strcmp(sub, "list") && strcmp(sub, "show") && strcmp(sub, "transfer") &&
	    strcmp(sub, "release")) {
		pr_warn("lease: unknown subcommand '%s' (expected list, show, transfer or release)\n",
			sub);
		return 2;
	}
	argc--;
	argv++;
	while ((opt = getopt_long(argc, argv, "jh", opts, NULL)) != -1) {
		switch (opt) {
		case 'j':
			json = true;
			break;
		case 'H':
			if (vg_parse_u32(optarg, "--history", 0, 1000000, &history))
				return 2;
			break;
		case 't':
			if (vg_parse_u64(optarg, "--to", 1, UINT64_MAX, &to))
				return 2;
			have_to = true;
			break;
		case 'P':
			pin_root = optarg;
			break;
		case 'b':
			db_path = optarg;
			db_given = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (strcmp(sub, "list")) {
		if (optind >= argc) {
			pr_warn("lease %s: which lease? (NAME or ID; see vigil lease list)\n", sub);
			return 2;
		}
		arg = argv[optind++];
	}
	if (optind < argc) {
		pr_warn("lease %s: unexpected argument '%s'\n", sub, argv[optind]);
		return 2;
	}
	if (!strcmp(sub, "transfer") != have_to) {
		pr_warn(have_to ? "lease %s: --to is for transfer only\n" :
				  "lease %s: --to AGENT is required\n", sub);
		return 2;
	}
	if (vg_instance_open(pin_root, &m, &meta))
		return 1;
	if (!strcmp(sub, "list") || !strcmp(sub, "show")) {
		db = open_db(db_path, false, db_given);
		if (db_given && !db) {
			vg_maps_close(&m);
			return 1;
		}
		ret = !strcmp(sub, "list") ? lease_list(&m, db, json) :
					     lease_show(&m, db, arg, json, history);
		sqlite3_close(db);
	} else {
		ret = lease_change(&m, db_path, arg, to, !strcmp(sub, "transfer"));
	}
	vg_maps_close(&m);
	return ret;
}

// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/config.h"
#include "common/log.h"
#include "common/u64map.h"
#include "common/util.h"

#define MAX_INTERVAL_MS 3600000u /* one hour */
#define MAX_MULTIPLIER 100u

static int valid_label(const char *s)
{
	if (!*s)
		return 0;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '-' && *s != '_' && *s != '.')
			return 0;
	return 1;
}

/* Strict whole-number parse without printing (the caller words the error). */
static int num(const char *s, __u64 max, __u64 *out)
{
	char *end;

	if (!isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	*out = strtoull(s, &end, 10);
	return errno || *end || *out > max ? -1 : 0;
}

const char *vg_agent_def_set(struct vg_agent_def *d, const char *key, const char *val)
{
	__u64 v;

	if (!strcmp(key, "name")) {
		if (strlen(val) >= sizeof(d->name) || !valid_label(val))
			return "name must be 1-31 characters of [A-Za-z0-9._-]";
		vg_strlcpy(d->name, val, sizeof(d->name));
	} else if (!strcmp(key, "group")) {
		if (strlen(val) >= sizeof(d->group) || !valid_label(val))
			return "group must be 1-15 characters of [A-Za-z0-9._-]";
		vg_strlcpy(d->group, val, sizeof(d->group));
	} else if (!strcmp(key, "interval-min-ms")) {
		if (num(val, MAX_INTERVAL_MS, &v) || v < 1)
			return "interval-min-ms must be a whole number from 1 to 3600000";
		d->interval_min_ms = (__u32)v;
	} else if (!strcmp(key, "interval-max-ms")) {
		if (num(val, MAX_INTERVAL_MS, &v) || v < 1)
			return "interval-max-ms must be a whole number from 1 to 3600000";
		d->interval_max_ms = (__u32)v;
	} else if (!strcmp(key, "multiplier")) {
		if (num(val, MAX_MULTIPLIER, &v) || v < 1)
			return "multiplier must be a whole number from 1 to 100";
		d->multiplier = (__u32)v;
	} else {
		return "unknown key (expected name, group, interval-min-ms, interval-max-ms, multiplier)";
	}
	return NULL;
}

void vg_agent_def_get(const struct vg_agent_def *d, const char *key, char *buf, size_t len)
{
	if (!strcmp(key, "name"))
		snprintf(buf, len, "%s", d->name);
	else if (!strcmp(key, "group"))
		snprintf(buf, len, "%s", d->group);
	else if (!strcmp(key, "interval-min-ms"))
		snprintf(buf, len, "%u", d->interval_min_ms);
	else if (!strcmp(key, "interval-max-ms"))
		snprintf(buf, len, "%u", d->interval_max_ms);
	else if (!strcmp(key, "multiplier"))
		snprintf(buf, len, "%u", d->multiplier);
	else if (len)
		buf[0] = '\0';
}

const char *vg_agent_def_check(const struct vg_agent_def *d)
{
	if (d->interval_min_ms > d->interval_max_ms)
		return "interval-min-ms is larger than interval-max-ms";
	return NULL;
}

int vg_prefix_parse(const char *s, const char *group, struct allow_key *key)
{
	static const __u8 v4mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	char buf[INET6_ADDRSTRLEN + 8], *slash;
	__u64 len;
	int v4;

	if (strlen(s) >= sizeof(buf))
		return -1;
	strcpy(buf, s);
	slash = strchr(buf, '/');
	if (!slash)
		return -1;
	*slash = '\0';
	memset(key, 0, sizeof(*key));
	v4 = inet_pton(AF_INET, buf, key->addr) == 1;
	if (!v4 && inet_pton(AF_INET6, buf, key->addr) != 1)
		return -1;
	if (num(slash + 1, v4 ? 32 : 128, &len))
		return -1;
	/* IPv6 sources in ::ffff:0:0/96 are refused: a prefix inside it
	 * could match nothing. An IPv4 prefix is written as IPv4. */
	if (!v4 && len >= 96 && !memcmp(key->addr, v4mapped, sizeof(v4mapped)))
		return -2;
	key->family = v4 ? 4 : 6;
	key->prefixlen = VIGIL_ALLOW_PREFIX_BASE + (__u32)len;
	key->group_id = vigil_group_id(group, VIGIL_GROUP_LEN);
	return 0;
}

static int parse_allow(struct vg_config *c, char **save, const char *path, int lineno)
{
	char *group = strtok_r(NULL, " \t", save), *tok;
	int n = 0;

	if (!group || strlen(group) >= VIGIL_GROUP_LEN || !valid_label(group)) {
		pr_warn("%s:%d: 'allow' needs a group name (1-15 characters of [A-Za-z0-9._-])\n",
			path, lineno);
		return -1;
	}
	while ((tok = strtok_r(NULL, " \t", save))) {
		struct vg_allow *a = realloc(c->allow, (c->n_allow + 1) * sizeof(*a));

		if (!a)
			return -1;
		c->allow = a;
		a = &c->allow[c->n_allow];
		vg_strlcpy(a->group, group, sizeof(a->group));
		switch (vg_prefix_parse(tok, group, &a->key)) {
		case 0:
			break;
		case -2:
			pr_warn("%s:%d: '%s' is an IPv4-mapped IPv6 prefix, which matches no source "
				"(such sources are refused); write the IPv4 prefix\n", path, lineno, tok);
			return -1;
		default:
			pr_warn("%s:%d: '%s' is not an address prefix like 198.18.0.0/15 or fd00::/8\n",
				path, lineno, tok);
			return -1;
		}
		c->n_allow++;
		n++;
	}
	if (!n) {
		pr_warn("%s:%d: 'allow %s' lists no prefix\n", path, lineno, group);
		return -1;
	}
	return 0;
}

static int parse_ack(struct vg_config *c, char **save, const char *path, int lineno)
{
	char *group = strtok_r(NULL, " \t", save), (*a)[VIGIL_GROUP_LEN];

	if (!group || strlen(group) >= VIGIL_GROUP_LEN || !valid_label(group) ||
	    strtok_r(NULL, " \t", save)) {
		pr_warn("%s:%d: 'ack' takes one group name (1-15 characters of [A-Za-z0-9._-])\n",
			path, lineno);
		return -1;
	}
	a = realloc(c->ack, (c->n_ack + 1) * sizeof(*a));
	if (!a)
		return -1;
	c->ack = a;
	vg_strlcpy(c->ack[c->n_ack++], group, VIGIL_GROUP_LEN);
	return 0;
}

/* lease NAME id=N duration-ms=D grace-ms=G candidates=ID:PRIO,... */
static int parse_lease(struct vg_config *c, char **save, const char *path, int lineno)
{
	char *name = strtok_r(NULL, " \t", save), *tok;
	struct vg_lease_def d = { .grace_ms = 0 }, *a;
	__u64 v;

	if (!name || strlen(name) >= sizeof(d.name) || !valid_label(name)) {
		pr_warn("%s:%d: 'lease' needs a name (1-31 characters of [A-Za-z0-9._-])\n", path,
			lineno);
		return -1;
	}
	vg_strlcpy(d.name, name, sizeof(d.name));
	while ((tok = strtok_r(NULL, " \t", save))) {
		char *eq = strchr(tok, '='), *val;

		if (!eq) {
			pr_warn("%s:%d: '%s' is not key=value\n", path, lineno, tok);
			return -1;
		}
		*eq = '\0';
		val = eq + 1;
		if (!strcmp(tok, "id")) {
			if (num(val, VIGIL_MAX_LEASES - 1, &v) || v < 1) {
				pr_warn("%s:%d: id: must be a whole number from 1 to %u\n", path, lineno,
					VIGIL_MAX_LEASES - 1);
				return -1;
			}
			d.id = (__u32)v;
		} else if (!strcmp(tok, "duration-ms") || !strcmp(tok, "grace-ms")) {
			if (num(val, MAX_INTERVAL_MS, &v) || (tok[0] == 'd' && v < 10)) {
				pr_warn("%s:%d: %s: must be a whole number of ms (duration 10 to 3600000, "
					"grace 0 to 3600000)\n", path, lineno, tok);
				return -1;
			}
			*(tok[0] == 'd' ? &d.duration_ms : &d.grace_ms) = (__u32)v;
		} else if (!strcmp(tok, "candidates")) {
			char *save2 = NULL, *cand;

			for (cand = strtok_r(val, ",", &save2); cand; cand = strtok_r(NULL, ",", &save2)) {
				char *colon = strchr(cand, ':');
				__u64 id, prio = 1;

				if (colon)
					*colon = '\0';
				if (d.n_cand == VG_LEASE_MAX_CANDIDATES || num(cand, UINT64_MAX, &id) ||
				    !id || (colon && num(colon + 1, 1000000, &prio))) {
					pr_warn("%s:%d: candidates: expected up to %d AGENT-ID[:PRIORITY] "
						"separated by commas\n", path, lineno,
						VG_LEASE_MAX_CANDIDATES);
					return -1;
				}
				d.cand[d.n_cand].agent_id = id;
				d.cand[d.n_cand++].priority = (__u32)prio;
			}
		} else {
			pr_warn("%s:%d: %s: unknown key (expected id, duration-ms, grace-ms, "
				"candidates)\n", path, lineno, tok);
			return -1;
		}
	}
	if (!d.id || !d.duration_ms || !d.n_cand) {
		pr_warn("%s:%d: lease %s needs id=, duration-ms= and candidates=\n", path, lineno,
			d.name);
		return -1;
	}
	for (size_t i = 0; i < c->n_leases; i++) {
		if (c->leases[i].id == d.id || !strcmp(c->leases[i].name, d.name)) {
			pr_warn("%s:%d: lease %s (id %u) is declared twice\n", path, lineno, d.name,
				d.id);
			return -1;
		}
	}
	a = realloc(c->leases, (c->n_leases + 1) * sizeof(*a));
	if (!a)
		return -1;
	c->leases = a;
	c->leases[c->n_leases++] = d;
	return 0;
}

static int push(struct vg_config *c, const struct vg_agent_def *d)
{
	if (vg_grow(&c->agents, &c->cap, c->n, sizeof(*c->agents), 64))
		return -1;
	c->agents[c->n++] = *d;
	return 0;
}

/* Directives that are not agents: each parses the rest of its line. */
typedef int (*directive_fn)(struct vg_config *c, char **save, const char *path, int lineno);
static const struct {
	const char *word;
	directive_fn parse;
} policies[] = {
	{ "allow", parse_allow },
	{ "ack", parse_ack },
	{ "lease", parse_lease },
};

/* What one pass over the agents file carries from line to line. */
struct reading {
	struct vg_config *out;
	struct vg_agent_def defaults; /* as the `defaults` lines so far set them */
	struct u64map ids;            /* agents declared */
};

/* `agent ID KEY=VALUE...` or `defaults KEY=VALUE...`, after the word. */
static int agent_line(struct reading *r, bool is_agent, char **save, const char *path,
		      int lineno)
{
	struct vg_agent_def d = r->defaults;
	const char *err;
	char *tok;
	__u64 id;

	if (is_agent) {
		tok = strtok_r(NULL, " \t", save);
		if (!tok || num(tok, UINT64_MAX, &id) || id == 0) {
			pr_warn("%s:%d: 'agent' needs an id from 1 to 2^64-1 first, got '%s'\n", path,
				lineno, tok ? tok : "");
			return -1;
		}
		if (u64map_get(&r->ids, id, NULL)) {
			pr_warn("%s:%d: agent %llu is declared twice\n", path, lineno,
				(unsigned long long)id);
			return -1;
		}
		d.id = id;
		snprintf(d.name, sizeof(d.name), "agent-%llu", (unsigned long long)id);
	}
	while ((tok = strtok_r(NULL, " \t", save))) {
		char *eq = strchr(tok, '=');

		if (!eq) {
			pr_warn("%s:%d: '%s' is not key=value\n", path, lineno, tok);
			return -1;
		}
		*eq = '\0';
		if (!is_agent && !strcmp(tok, "name")) {
			pr_warn("%s:%d: name cannot be a default\n", path, lineno);
			return -1;
		}
		err = vg_agent_def_set(&d, tok, eq + 1);
		if (err) {
			pr_warn("%s:%d: %s: %s\n", path, lineno, tok, err);
			return -1;
		}
	}
	err = vg_agent_def_check(&d);
	if (err) {
		pr_warn("%s:%d: %s\n", path, lineno, err);
		return -1;
	}
	if (!is_agent) {
		r->defaults = d;
	} else if (push(r->out, &d) || u64map_put(&r->ids, d.id, 1)) {
		pr_warn("%s:%d: out of memory\n", path, lineno);
		return -1;
	}
	return 0;
}

static int config_line(void *ctx, char *line, const char *path, int lineno)
{
	struct reading *r = ctx;
	char *save = NULL, *word = strtok_r(line, " \t", &save);

	for (size_t i = 0; i < sizeof(policies) / sizeof(policies[0]); i++)
		if (!strcmp(word, policies[i].word))
			return policies[i].parse(r->out, &save, path, lineno);
	if (!strcmp(word, "agent") || !strcmp(word, "defaults"))
		return agent_line(r, !strcmp(word, "agent"), &save, path, lineno);
	pr_warn("%s:%d: unknown directive '%s' (expected agent, defaults, allow, ack or lease)\n",
		path, lineno, word);
	return -1;
}

int vg_config_load(const char *path, struct vg_config *out)
{
	struct reading r = { .out = out };
	FILE *f = fopen(path, "r");
	int ret;

	memset(out, 0, sizeof(*out));
	if (!f) {
		pr_warn("%s: cannot open agents file: %s\n", path, strerror(errno));
		return -1;
	}
	vg_agent_def_default(&r.defaults, 0);
	ret = vg_each_line(f, path, config_line, &r) ? -1 : 0;
	fclose(f);
	u64map_free(&r.ids);
	if (ret)
		vg_config_free(out);
	return ret;
}

void vg_config_free(struct vg_config *c)
{
	free(c->agents);
	free(c->allow);
	free(c->ack);
	free(c->leases);
	memset(c, 0, sizeof(*c));
}

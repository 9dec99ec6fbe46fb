// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/* `vigil agent add|remove|list`: change the registry of a running instance,
 * at once, with or without a daemon. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <bpf/bpf.h>
#include "cli/cli.h"
#include "common/config.h"
#include "common/instance.h"
#include "common/json.h"
#include "common/keys.h"
#include "common/log.h"
#include "common/options.h"
#include "common/registry.h"
#include "common/secret.h"
#include "common/util.h"

struct agent_opts {
	const char *pin_root;
	__u64 id;
	struct vg_agent_def def; /* add: set as the agents file's keys are */
	struct vg_key_src key;     /* --key, --key-file, VIGIL_KEY */
	__u32 key_id;
	bool json;
};

static void agent_init(void *opts)
{
	struct agent_opts *o = opts;

	o->pin_root = VIGIL_DEFAULT_PIN_ROOT;
	vg_agent_def_default(&o->def, 0);
	o->def.name[0] = '\0'; /* agent-ID, once the id is known */
}

/* What every verb's table says besides its options. */
#define AGENT_CMD(fn) .size = sizeof(struct agent_opts), .init = agent_init, .run = fn

/* --name, --group, --interval-min-ms ...: the agents file's key of the same
 * name, checked by the same code. */
static int set_def_key(const char *arg, void *field, const struct vg_opt *o)
{
	const char *problem = vg_agent_def_set(field, o->name, arg);

	if (problem)
		pr_warn("--%s: %s\n", o->name, problem);
	return problem ? -1 : 0;
}

static void show_def_key(const void *field, const struct vg_opt *o, char *buf, size_t len)
{
	vg_agent_def_get(field, o->name, buf, len);
}

#define DEF_KEY(n, mv, h) \
	VG_OPT_FUNC(0, n, struct agent_opts, def, set_def_key, mv, h), .show = show_def_key

#define AGENT struct agent_opts
#define OPT_ID(h) VG_OPT_UINT(0, "id", AGENT, id, 1, UINT64_MAX, "ID", h), .required = true

static const struct vg_opt add_opts[] = {
	{ OPT_ID("the agent's id") },
	{ DEF_KEY("name", "NAME", "1-31 of [A-Za-z0-9._-]"), .zero = "agent-ID" },
	{ DEF_KEY("group", "GROUP", "its group: allowlist, acknowledgements, leases") },
	{ DEF_KEY("interval-min-ms", "N", "the shortest interval it may announce") },
	{ DEF_KEY("interval-max-ms", "N", "the longest interval it may announce") },
	{ DEF_KEY("multiplier", "N", "missed intervals before SUSPECT") },
	VG_OPT_KEY(AGENT, key, "its key (without one, and authentication required, its beats "
			       "are refused until the key file names it)"),
	{ VG_OPT_UINT(0, "key-id", AGENT, key_id, 0, 1, "0|1", "which of its two keys --key is") },
	{ VG_OPT_PIN_ROOT(AGENT, pin_root) },
	{}
};

static const struct vg_opt remove_opts[] = {
	{ OPT_ID("the agent's id") },
	{ VG_OPT_PIN_ROOT(AGENT, pin_root) },
	{}
};

static const struct vg_opt list_opts[] = {
	{ VG_OPT_JSON(AGENT, json, "one JSON line per agent") },
	{ VG_OPT_PIN_ROOT(AGENT, pin_root) },
	{}
};

static int list_one(__u32 slot, const struct vg_agent *a, void *ctx)
{
	const struct agent_slot *s = &a->s;
	struct vg_json j;

	if (!*(bool *)ctx) {
		printf("%-20llu %-24s %-16s %8u %8u %4u\n", (unsigned long long)s->agent_id,
		       a->i.name, a->i.group, s->interval_min_ms, s->interval_max_ms, s->multiplier);
		return 0;
	}
	vg_json_begin(&j, stdout);
	vg_json_obj(&j);
	vg_json_u64_field(&j, "agent_id", s->agent_id);
	vg_json_str_field(&j, "name", a->i.name);
	vg_json_str_field(&j, "group", a->i.group);
	vg_json_u64_field(&j, "slot", slot);
	vg_json_u64_field(&j, "interval_min_ms", s->interval_min_ms);
	vg_json_u64_field(&j, "interval_max_ms", s->interval_max_ms);
	vg_json_u64_field(&j, "multiplier", s->multiplier);
	vg_json_end(&j);
	return 0;
}

static int list_run(const struct vg_parsed *p)
{
	struct agent_opts *o = p->opts;
	struct vigil_meta meta;
	struct vg_maps m;

	if (vg_instance_open(o->pin_root, &m, &meta))
		return 1;
	if (!o->json)
		printf("%-20s %-24s %-16s %8s %8s %4s\n", "ID", "NAME", "GROUP", "MIN_MS", "MAX_MS",
		       "MULT");
	vg_agent_foreach(&m, list_one, &o->json);
	vg_maps_close(&m);
	return 0;
}

static const struct vg_cmd list_cmd = {
	VG_CMD("agent list", "the registered agents",
	       "Every registered agent: id, name, group and limits (vigil status shows states).",
	       NULL),
	.opts = list_opts, AGENT_CMD(list_run),
};

/* One line naming what went wrong with a registry change, or 0. */
static int report(const char *verb, int err, __u64 id, const struct vg_maps *m)
{
	if (err == -EEXIST)
		pr_warn("agent add: agent %llu is already registered\n", (unsigned long long)id);
	else if (err == -ENOENT)
		pr_warn("agent remove: no agent %llu is registered\n", (unsigned long long)id);
	else if (err == -ENOSPC)
		pr_warn("agent add: all %u slots are in use; capacity is fixed at load: 'vigil detach', "
			"then 'vigil run --max-agents N'\n", m->max_agents);
	else if (err)
		pr_warn("agent %s: %s\n", verb, strerror(-err));
	return err ? 1 : 0;
}

static void warn_keyless(const struct vg_maps *m, __u64 id)
{
	struct vigil_config cfg;
	__u32 zero = 0;

	if (bpf_map_lookup_elem(m->config, &zero, &cfg) == 0 && cfg.auth_required)
		pr_warn("agent %llu has no key and authentication is required: its beats are "
			"refused until it gets one (add it to the key file and send the daemon "
			"SIGHUP, or re-add it with --key)\n", (unsigned long long)id);
}

static int add_run(const struct vg_parsed *p)
{
	struct agent_opts *o = p->opts;
	bool keyed;
	struct vigil_meta meta;
	struct vg_maps m;
	const char *problem;
	int lock, ret;

	if (vg_key_choose(&o->key))
		return 2;
	keyed = o->key.have;
	o->def.id = o->id;
	if (!o->def.name[0])
		snprintf(o->def.name, sizeof(o->def.name), "agent-%llu", (unsigned long long)o->id);
	problem = vg_agent_def_check(&o->def);
	if (problem) {
		pr_warn("agent add: %s\n", problem);
		return 2;
	}
	if (vg_instance_open(o->pin_root, &m, &meta))
		return 1;
	lock = vg_registry_lock(o->pin_root);
	vg_auth_for(&m, NULL, o->id, o->def.group, &o->def.auth);
	if (keyed) {
		o->def.auth.key[o->key_id] = o->key.key;
		o->def.auth.valid = 1u << o->key_id;
	}
	ret = report("add", vg_agent_add(&m, &o->def, NULL), o->id, &m);
	vg_registry_unlock(lock);
	if (!ret && !keyed)
		warn_keyless(&m, o->id);
	vg_maps_close(&m);
	return ret;
}

static const struct vg_cmd add_cmd = {
	VG_CMD("agent add", "register one agent",
	       "Register one agent with the same keys, limits and defaults as an agents file "
	       "'agent' line (not its 'defaults' lines). It starts as NEW, its first deadline "
	       "counted from now. The change applies at once and lasts until 'vigil detach'; "
	       "add it to the agents file (and the key to the key file) to keep it.",
	       "  vigil agent add --id 42 --name db-1 --group db --interval-max-ms 500\n"),
	.opts = add_opts, AGENT_CMD(add_run),
};

static int remove_run(const struct vg_parsed *p)
{
	const struct agent_opts *o = p->opts;
	struct vigil_meta meta;
	struct vg_maps m;
	int lock, ret;

	if (vg_instance_open(o->pin_root, &m, &meta))
		return 1;
	lock = vg_registry_lock(o->pin_root);
	ret = report("remove", vg_agent_remove(&m, o->id), o->id, &m);
	vg_registry_unlock(lock);
	vg_maps_close(&m);
	return ret;
}

static const struct vg_cmd remove_cmd = {
	VG_CMD("agent remove", "unregister one agent",
	       "Unregister one agent at once: its beats become unknown_agent and it raises no "
	       "further event.", "  vigil agent remove --id 42\n"),
	.opts = remove_opts, AGENT_CMD(remove_run),
};

VG_VERBS(cli_agent, "agent",
	 "add, remove or list agents of a running instance",
	 "Change the agents a running instance watches, at once, with or without a "
	 "daemon. Keep the change in the agents file (and the key file) too: a fresh "
	 "load or a key reload starts from the files.",
	 { .cmd = &add_cmd }, { .cmd = &remove_cmd }, { .cmd = &list_cmd });

// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/* `vigil agent add|remove|list` change the registry of a running instance;
 * `vigil detach` removes the instance. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <bpf/bpf.h>
#include "cli.h"
#include "config.h"
#include "instance.h"
#include "keys.h"
#include "log.h"
#include "registry.h"
#include "util.h"

static void agent_usage(FILE *f)
{
	fprintf(f,
		"Usage: vigil agent add --id ID [--name N] [--group G] [--interval-min-ms N]\n"
		"                       [--interval-max-ms N] [--multiplier N] [--key HEX [--key-id 0|1]]\n"
		"       vigil agent remove --id ID\n"
		"       vigil agent list [--json]\n"
		"Change the agents a running instance watches (common option: --pin-root DIR).\n"
		"Changes apply at once; add them to the agents file (and the key to the key\n"
		"file, or the next key reload drops it) to keep them across restarts.\n"
		"\n"
		"Examples:\n"
		"  vigil agent add --id 42 --name db-1 --group db --interval-max-ms 500\n"
		"  vigil agent remove --id 42\n");
}

static int list_one(__u32 slot, const struct agent_slot *s, void *ctx)
{
	bool json = *(bool *)ctx;

	if (json) {
		printf("{\"agent_id\":%llu,\"name\":", (unsigned long long)s->agent_id);
		vg_json_str(stdout, s->name);
		printf(",\"group\":");
		vg_json_str(stdout, s->group);
		printf(",\"slot\":%u,\"interval_min_ms\":%u,\"interval_max_ms\":%u,\"multiplier\":%u}\n",
		       slot, s->interval_min_ms, s->interval_max_ms, s->multiplier);
	} else {
		printf("%-20llu %-24s %-16s %8u %8u %4u\n", (unsigned long long)s->agent_id, s->name,
		       s->group, s->interval_min_ms, s->interval_max_ms, s->multiplier);
	}
	return 0;
}

int cmd_agent(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "id", required_argument, NULL, 'i' },
		{ "name", required_argument, NULL, 'n' },
		{ "group", required_argument, NULL, 'g' },
		{ "interval-min-ms", required_argument, NULL, 'a' },
		{ "interval-max-ms", required_argument, NULL, 'b' },
		{ "multiplier", required_argument, NULL, 'x' },
		{ "json", no_argument, NULL, 'j' },
		{ "key", required_argument, NULL, 'K' },
		{ "key-id", required_argument, NULL, 'X' },
		{ "pin-root", required_argument, NULL, 'P' },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	static const char *const keys[] = { ['n'] = "name", ['g'] = "group",
					    ['a'] = "interval-min-ms", ['b'] = "interval-max-ms",
					    ['x'] = "multiplier" };
	const char *pin_root = VIGIL_DEFAULT_PIN_ROOT, *verb, *problem;
	struct vg_agent_def def;
	struct vigil_meta meta;
	struct vg_maps m;
	bool json = false, name_given = false, key_given = false;
	struct vigil_key key;
	__u32 key_id = 0;
	__u64 id = 0;
	int opt, err, lock, ret = 1;

	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		agent_usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	verb = argv[1];
	if (strcmp(verb, "add") && strcmp(verb, "remove") && strcmp(verb, "list")) {
		pr_warn("agent: unknown action '%s' (expected add, remove or list)\n", verb);
		return 2;
	}
	vg_agent_def_default(&def, 0);
	argc--;
	argv++;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 'i':
			if (vg_parse_u64(optarg, "--id", 1, UINT64_MAX, &id))
				return 2;
			break;
		case 'n':
		case 'g':
		case 'a':
		case 'b':
		case 'x':
			name_given |= opt == 'n';
			problem = vg_agent_def_set(&def, keys[opt], optarg);
			if (problem) {
				pr_warn("--%s: %s\n", keys[opt], problem);
				return 2;
			}
			break;
		case 'j':
			json = true;
			break;
		case 'K':
			if (vg_key_parse(optarg, &key)) {
				pr_warn("--key: must be 32 hex digits (128 bits)\n");
				return 2;
			}
			key_given = true;
			break;
		case 'X':
			if (vg_parse_u32(optarg, "--key-id", 0, 1, &key_id))
				return 2;
			break;
		case 'P':
			pin_root = optarg;
			break;
		case 'h':
			agent_usage(stdout);
			return 0;
		default:
			agent_usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		pr_warn("agent %s: unexpected argument '%s'\n", verb, argv[optind]);
		return 2;
	}
	if (strcmp(verb, "list") && !id) {
		pr_warn("agent %s: --id is required\n", verb);
		return 2;
	}
	if (!strcmp(verb, "add")) {
		def.id = id;
		if (!name_given)
			snprintf(def.name, sizeof(def.name), "agent-%llu", (unsigned long long)id);
		problem = vg_agent_def_check(&def);
		if (problem) {
			pr_warn("agent add: %s\n", problem);
			return 2;
		}
	}
	if (vg_instance_open(pin_root, &m, &meta))
		return 1;
	if (!strcmp(verb, "list")) {
		if (!json)
			printf("%-20s %-24s %-16s %8s %8s %4s\n", "ID", "NAME", "GROUP", "MIN_MS",
			       "MAX_MS", "MULT");
		vg_agent_foreach(&m, list_one, &json);
		ret = 0;
		goto out;
	}
	lock = vg_registry_lock(pin_root);
	if (!strcmp(verb, "add")) {
		vg_auth_for(&m, NULL, id, def.group, &def.auth);
		if (key_given) {
			def.auth.key[key_id] = key;
			def.auth.valid = 1u << key_id;
		}
		err = vg_agent_add(&m, &def, NULL);
	}
	else
		err = vg_agent_remove(&m, id);
	vg_registry_unlock(lock);
	if (err == -EEXIST)
		pr_warn("agent add: agent %llu is already registered\n", (unsigned long long)id);
	else if (err == -ENOENT)
		pr_warn("agent remove: no agent %llu is registered\n", (unsigned long long)id);
	else if (err == -ENOSPC)
		pr_warn("agent add: all %u slots are in use; capacity is fixed at load: 'vigil detach', "
			"then 'vigil run --max-agents N'\n",
			m.max_agents);
	else if (err)
		pr_warn("agent %s: %s\n", verb, strerror(-err));
	else
		ret = 0;
	if (!err && !strcmp(verb, "add") && !key_given) {
		struct vigil_config cfg;
		__u32 zero = 0;

		if (bpf_map_lookup_elem(m.config, &zero, &cfg) == 0 && cfg.auth_required)
			pr_warn("agent %llu has no key and authentication is required: its beats "
				"are refused until it gets one (add it to the key file and send the "
				"daemon SIGHUP, or re-add it with --key)\n", (unsigned long long)id);
	}
out:
	vg_maps_close(&m);
	return ret;
}

int cmd_detach(int argc, char **argv)
{
	const char *pin_root = VIGIL_DEFAULT_PIN_ROOT;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--pin-root") && i + 1 < argc) {
			pin_root = argv[++i];
		} else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			printf("Usage: vigil detach [--pin-root DIR]\n"
			       "Detach XDP, stop the sweeper and remove every pin of the instance.\n");
			return 0;
		} else {
			pr_warn("detach: unexpected argument '%s'\n", argv[i]);
			return 2;
		}
	}
	if (vg_instance_remove(pin_root))
		return 1;
	pr_info("detached and removed %s\n", pin_root);
	return 0;
}

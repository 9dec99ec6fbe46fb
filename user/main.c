// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/* vigil: one binary, subcommands in the manner of bpftool and xdp-loader. */
#include <stdio.h>
#include <string.h>
#include "cli.h"
#include "log.h"

static const struct {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *help;
} commands[] = {
	{ "run", cmd_run, "load (or adopt) the monitor and record its events" },
	{ "beat", cmd_beat, "send beats as one agent or a range of agents" },
	{ "status", cmd_status, "every agent's state and counters, from the pinned maps" },
	{ "events", cmd_events, "print or follow the recorded events (JSON lines)" },
	{ "log", cmd_log, "query, replay, check and prune the durable event log" },
	{ "agent", cmd_agent, "add, remove or list agents of a running instance" },
	{ "detach", cmd_detach, "detach XDP, stop the sweeper, remove the pins" },
	{ "key", cmd_key, "generate agent keys" },
	{ "dlq", cmd_dlq, "list or replay alerts that failed every delivery attempt" },
	{ "lease", cmd_lease, "list, show, transfer or release leases (fencing tokens)" },
};

static void usage(FILE *f)
{
	fprintf(f, "Usage: vigil COMMAND [OPTIONS]   (vigil COMMAND --help for details)\n\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].help);
	fprintf(f, "\nExamples:\n"
		   "  vigil run --iface lo --mode skb --config agents.conf\n"
		   "  vigil beat --id 7 --target 127.0.0.1 --interval-ms 100\n"
		   "  vigil status --json\n");
}

int main(int argc, char **argv)
{
	vg_log_hook_libbpf();
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return 0;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(argv[1], commands[i].name))
			return commands[i].fn(argc - 1, argv + 1);
	pr_warn("unknown command '%s' (see vigil --help)\n", argv[1]);
	return 2;
}

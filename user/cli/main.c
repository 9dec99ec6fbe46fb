// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/* vigil: one binary; `vigil X` lives in user/cli/X.c (bpftool's manner). */
#include "cli/cli.h"
#include "common/log.h"

static const struct vg_verb commands[] = {
	{ .cmd = &cli_run }, { .cmd = &cli_beat }, { .cmd = &cli_status },
	{ .cmd = &cli_events }, { .group = &cli_log }, { .group = &cli_agent },
	{ .cmd = &cli_detach }, { .group = &cli_key }, { .group = &cli_dlq },
	{ .group = &cli_lease }, { .group = &cli_fleet }, {}
};

static const struct vg_verbs vigil = {
	.about = "A kernel-assisted liveness monitor: agents send UDP beats, XDP judges them.",
	.verbs = commands,
	.examples = "  vigil run --iface lo --mode skb --config agents.conf\n"
		    "  vigil beat --id 7 --target 127.0.0.1 --interval-ms 100\n"
		    "  vigil status --json\n",
};

int main(int argc, char **argv)
{
	vg_log_hook_libbpf();
	return vg_verb_run(&vigil, argc, argv);
}

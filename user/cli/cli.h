/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * The commands of the one `vigil` binary, as tables (common/options.h):
 * `vigil X` is cli_X in user/cli/X.c, a command or a set of verbs.
 */
#ifndef VIGIL_CLI_H
#define VIGIL_CLI_H

#include "common/options.h"

extern const struct vg_cmd cli_run, cli_beat, cli_status, cli_events, cli_detach;
extern const struct vg_verbs cli_log, cli_agent, cli_key, cli_dlq, cli_lease, cli_fleet;
extern const struct vg_cmd cli_log_query; /* events.c: the twin of vigil events */

#endif

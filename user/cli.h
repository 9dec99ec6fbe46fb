/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/* Subcommands of the one `vigil` binary; each returns the exit status. */
#ifndef VIGIL_CLI_H
#define VIGIL_CLI_H

int cmd_run(int argc, char **argv);    /* daemon.c */
int cmd_beat(int argc, char **argv);   /* beat.c */
int cmd_status(int argc, char **argv); /* status.c */
int cmd_events(int argc, char **argv); /* logcmd.c */
int cmd_log(int argc, char **argv);    /* logcmd.c */
int cmd_agent(int argc, char **argv);  /* agent.c */
int cmd_detach(int argc, char **argv); /* agent.c */
int cmd_key(int argc, char **argv);    /* keycmd.c */
int cmd_dlq(int argc, char **argv);    /* dlqcmd.c */
int cmd_lease(int argc, char **argv);  /* leasecmd.c */

/* Shared by the subcommands' option parsers. */
#define VIGIL_DEFAULT_DB "/var/lib/vigil/vigil.db"

/* Retention: remove events older than max_age_s and/or beyond the newest
 * max_events (0 = no limit). */
int vg_log_prune(const char *db_path, unsigned long long max_age_s, unsigned long long max_events,
		 long *removed);

#endif

/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * Monitor addresses as the command line gives them (`vigil beat --target`,
 * `vigil run --peer`; docs/monitors.md): a comma-separated list, the option
 * repeatable, each entry
 *
 *   ADDR              IPv4 or IPv6, the command's --port
 *   ADDR:PORT         IPv4 with its own port
 *   [ADDR]:PORT       IPv6 with its own port
 *
 * optionally followed by @KEYFILE: the key file this monitor knows the
 * agents by (each monitor its own key set); without it the command's own
 * key file (one key set shared by every monitor). Key file names cannot
 * contain commas here.
 */
#ifndef VIGIL_TARGETS_H
#define VIGIL_TARGETS_H

#include <netinet/in.h>
#include <sys/socket.h>
#include <linux/types.h>

#define VG_MAX_TARGETS 8 /* VIGIL_AGENT_MAX_MONITORS */

struct vg_target {
	char addr[INET6_ADDRSTRLEN]; /* the address alone, for the agent library */
	__u16 port;                  /* 0: the command's --port */
	const char *keys_path;       /* @KEYFILE (allocated; the process keeps it),
				      * NULL: the command's key file */
	struct sockaddr_storage ss;  /* the address (its port set by vg_targets_set_port) */
	socklen_t len;
};

struct vg_targets {
	struct vg_target t[VG_MAX_TARGETS];
	unsigned n;
};

/* Append the entries of one option argument. On error: one line naming
 * --opt and the entry, and -1 (the list keeps its earlier entries). */
int vg_targets_parse(struct vg_targets *ts, const char *arg, const char *opt);
/* Give every entry without a port of its own `port`, and every address its
 * port. */
void vg_targets_set_port(struct vg_targets *ts, __u16 port);
/* "ADDR" or "[ADDR]:PORT"-style name of entry i, for messages. */
const char *vg_target_name(const struct vg_target *t, char *buf, size_t len);

#endif

/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * Probe mode (docs/migration.md): `vigil beat` beats on behalf of a service
 * that cannot be changed, and only while a check of it passes. The check's
 * own timeout is bounded by the beat interval, so a hanging check can never
 * hold back a beat longer than a missed one would; that includes resolving
 * the host's name, which a thread of the probe's own does (beat_probe.c).
 */
#ifndef VIGIL_PROBE_H
#define VIGIL_PROBE_H

#include <stdbool.h>
#include <linux/types.h>

enum vg_probe_kind { VG_PROBE_NONE = 0, VG_PROBE_EXEC, VG_PROBE_TCP, VG_PROBE_HTTP };

struct vg_resolver;

struct vg_probe {
	enum vg_probe_kind kind;
	const char *cmd;  /* EXEC: /bin/sh -c cmd, passes on exit 0 */
	char host[256];   /* TCP/HTTP: numeric address or name */
	char port[8];
	char path[512];   /* HTTP: request path */
	__u32 http_status_max; /* HTTP: passes on a status below this (default 400) */
	struct vg_resolver *res; /* TCP/HTTP: the host's addresses (beat_probe.c) */
};

/* Parse --probe-exec CMD, --probe-tcp HOST:PORT, --probe-http URL
 * (http://HOST[:PORT]/PATH). One line on error, -1. */
int vg_probe_parse(struct vg_probe *p, const char *kind, const char *arg);
/* Run the check once, giving up after timeout_ms. True when it passes. */
bool vg_probe_run(const struct vg_probe *p, __u32 timeout_ms);

#endif

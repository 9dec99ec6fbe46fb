/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * Prometheus metrics over HTTP (libmicrohttpd, one internal polling thread):
 *   GET /metrics  text exposition format 0.0.4, read from the maps per scrape
 *   GET /healthz  200 while the sweeper runs (it ran within the last second)
 *   GET /readyz   200 once the daemon finished its initial drain and reconcile
 * The metrics and their meaning are in the HELP lines (user/daemon/metrics.c).
 */
#ifndef VIGIL_METRICS_H
#define VIGIL_METRICS_H

#include <linux/types.h>
#include "daemon/dstats.h"
#include "common/instance.h"

#define VG_METRICS_DEFAULT_LISTEN "127.0.0.1:9747"
/* Above this many agents the per-agent series are left out (the totals and
 * vigil_agent_series_omitted remain): one agent is ~40 series. */
#define VG_METRICS_DEFAULT_MAX_AGENTS 10000

struct vg_metrics;

/* Parse "ADDR:PORT" (IPv4) or "[ADDR]:PORT" (IPv6; numeric addresses only)
 * and bind a listening socket to exactly that address. Done before the
 * daemon touches the kernel, so a busy port changes nothing. On failure
 * prints one line naming the address and the fix; returns -EINVAL for a
 * malformed address, another -errno when the bind fails. */
int vg_metrics_bind(const char *addr, struct vg_metrics **out);
/* Start answering on the bound socket. m and ds must outlive the server. */
int vg_metrics_serve(struct vg_metrics *mt, const struct vg_maps *m, struct vg_daemon_stats *ds,
		     __u32 max_agents);
/* Both at once, with the default agent cap. */
int vg_metrics_start(const char *addr, const struct vg_maps *m, struct vg_daemon_stats *ds,
		     struct vg_metrics **out);
/* Stop the server (waits for its thread) and close the socket; NULL is fine. */
void vg_metrics_stop(struct vg_metrics *mt);

#endif

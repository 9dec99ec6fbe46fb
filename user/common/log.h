/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/* Logging in the xdp-tools manner: one line per message on stderr, libbpf's
 * own messages one level quieter than ours. */
#ifndef VIGIL_LOG_H
#define VIGIL_LOG_H

enum vg_log_level { VG_LOG_WARN = 0, VG_LOG_INFO = 1, VG_LOG_DEBUG = 2 };

void vg_log_set_level(enum vg_log_level lvl);
void vg_log(enum vg_log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Route libbpf's messages through vg_log, one level below ours. */
void vg_log_hook_libbpf(void);

#define pr_warn(...) vg_log(VG_LOG_WARN, __VA_ARGS__)
#define pr_info(...) vg_log(VG_LOG_INFO, __VA_ARGS__)
#define pr_debug(...) vg_log(VG_LOG_DEBUG, __VA_ARGS__)

#endif

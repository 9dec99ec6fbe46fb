// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
#include <stdarg.h>
#include <stdio.h>
#include <bpf/libbpf.h>
#include "common/log.h"

static enum vg_log_level log_level = VG_LOG_INFO;

void vg_log_set_level(enum vg_log_level lvl)
{
	log_level = lvl;
}

void vg_log(enum vg_log_level lvl, const char *fmt, ...)
{
	va_list ap;

	if (lvl > log_level)
		return;
	va_start(ap, fmt);
	fputs("vigil: ", stderr);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
}

static int libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	/* libbpf WARN -> our INFO, libbpf INFO/DEBUG -> our DEBUG. */
	enum vg_log_level lvl = level == LIBBPF_WARN ? VG_LOG_INFO : VG_LOG_DEBUG;

	if (lvl > log_level)
		return 0;
	fputs("libbpf: ", stderr);
	return vfprintf(stderr, fmt, ap);
}

void vg_log_hook_libbpf(void)
{
	libbpf_set_print(libbpf_print);
}

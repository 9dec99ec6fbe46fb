/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * The smallest TAP producer that does the job, in the manner of the kernel
 * selftests' ksft_test_result(): one "ok N - what" or "not ok N - what" line
 * per case, "# " lines for context, the plan at the end.
 */
#ifndef VIGIL_TEST_TAP_H
#define VIGIL_TEST_TAP_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>

static int tap_count, tap_failed, tap_skipped;

__attribute__((format(printf, 1, 2)))
static void note(const char *fmt, ...)
{
	va_list ap;

	fputs("# ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
}

__attribute__((format(printf, 2, 3)))
static bool tap_result(bool ok, const char *fmt, ...)
{
	va_list ap;

	tap_count++;
	if (!ok)
		tap_failed++;
	printf("%sok %d - ", ok ? "" : "not ", tap_count);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
	return ok;
}

__attribute__((format(printf, 2, 3)))
static void tap_skip(const char *why, const char *fmt, ...)
{
	va_list ap;

	tap_count++;
	tap_skipped++;
	printf("ok %d - ", tap_count);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf(" # SKIP %s\n", why);
}

/* Print the plan and a summary; the process exit status. */
static int tap_finish(void)
{
	printf("1..%d\n", tap_count);
	note("%d passed, %d failed, %d skipped", tap_count - tap_failed - tap_skipped,
	     tap_failed, tap_skipped);
	return tap_failed ? 1 : 0;
}

#endif /* VIGIL_TEST_TAP_H */

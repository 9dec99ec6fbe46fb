/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * The smallest TAP producer that does the job, in the manner of the kernel
 * selftests' ksft_test_result(): one "ok N - what" or "not ok N - what" line
 * per case, "# " lines for context, the plan at the end. The unit tests'
 * harness (tests/unit/check.h) builds on it.
 */
#ifndef VIGIL_TEST_TAP_H
#define VIGIL_TEST_TAP_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>

static unsigned tap_count, tap_failed, tap_skipped;

__attribute__((format(printf, 1, 2)))
static inline void note(const char *fmt, ...)
{
	va_list ap;

	fputs("# ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
}

/* One case's line, counted. */
static inline void tap_vresult(bool ok, const char *fmt, va_list ap)
{
	tap_count++;
	if (!ok)
		tap_failed++;
	printf("%sok %u - ", ok ? "" : "not ", tap_count);
	vprintf(fmt, ap);
	fputc('\n', stdout);
}

__attribute__((format(printf, 2, 3)))
static inline bool tap_result(bool ok, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	tap_vresult(ok, fmt, ap);
	va_end(ap);
	return ok;
}

__attribute__((format(printf, 2, 3)))
static inline void tap_skip(const char *why, const char *fmt, ...)
{
	va_list ap;

	tap_count++;
	tap_skipped++;
	printf("ok %u - ", tap_count);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf(" # SKIP %s\n", why);
}

/* Print the plan and a summary; the process exit status. */
static inline int tap_finish(void)
{
	printf("1..%u\n", tap_count);
	note("%u passed, %u failed, %u skipped", tap_count - tap_failed - tap_skipped,
	     tap_failed, tap_skipped);
	return tap_failed ? 1 : 0;
}

#endif /* VIGIL_TEST_TAP_H */

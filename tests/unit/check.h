/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * The host unit tests' harness, on tests/prog/tap.h: one TAP-like line per
 * case ("ok N - what it proves" / "not ok N - ..."; tap_count cases so far,
 * tap_failed of them failed), "#" diagnostics collected with diag() and
 * printed only when the case fails, the plan and a summary at the end
 * (check_finish), and a deterministic PRNG (splitmix64) whose seed the test
 * sets (VIGIL_TEST_SEED).
 */
#ifndef VIGIL_TEST_CHECK_H
#define VIGIL_TEST_CHECK_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "../prog/tap.h"

static char diag_buf[4096];
static size_t diag_len;

/* Remember a diagnostic line; printed only if the current case fails. */
__attribute__((format(printf, 1, 2))) static inline void diag(const char *fmt, ...)
{
	va_list ap;
	int n;

	if (diag_len >= sizeof(diag_buf) - 2)
		return;
	n = snprintf(diag_buf + diag_len, sizeof(diag_buf) - diag_len, "#   ");
	if (n > 0)
		diag_len += (size_t)n;
	if (diag_len >= sizeof(diag_buf) - 2) {
		diag_len = sizeof(diag_buf) - 2;
		diag_buf[diag_len++] = '\n';
		diag_buf[diag_len] = '\0';
		return;
	}
	va_start(ap, fmt);
	n = vsnprintf(diag_buf + diag_len, sizeof(diag_buf) - diag_len, fmt, ap);
	va_end(ap);
	if (n > 0)
		diag_len += (size_t)n;
	if (diag_len >= sizeof(diag_buf) - 1)
		diag_len = sizeof(diag_buf) - 2;
	diag_buf[diag_len++] = '\n';
	diag_buf[diag_len] = '\0';
}

/* One case: its line, counted, then (if it failed) the condition that did
 * not hold, when there is one, and the diagnostics collected for it.
 * Flushed, so that a crash later loses no line. */
__attribute__((format(printf, 5, 6))) static inline bool check_(bool ok, const char *expr,
								 const char *file, int line,
								 const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	tap_vresult(ok, fmt, ap);
	va_end(ap);
	if (!ok) {
		if (expr)
			printf("#   failed: %s (%s:%d)\n", expr, file, line);
		fputs(diag_buf, stdout);
	}
	diag_len = 0;
	diag_buf[0] = '\0';
	fflush(stdout);
	return ok;
}

/* CHECK(condition, "what it proves", ...): one case, one output line. */
#define CHECK(cond, ...) check_(!!(cond), #cond, __FILE__, __LINE__, __VA_ARGS__)
/* result(ok, "what it proves", ...): the same for an outcome the test worked
 * out step by step (no single condition to show when it fails). */
#define result(ok, ...) check_(!!(ok), NULL, NULL, 0, __VA_ARGS__)

/* The plan ("1..N") and a summary line; the process's exit status. */
static inline int check_finish(void)
{
	printf("1..%u\n", tap_count);
	printf("# %u passed, %u failed\n", tap_count - tap_failed, tap_failed);
	return tap_failed ? 1 : 0;
}

/* Deterministic PRNG (splitmix64). */
static uint64_t rng_state;

static uint64_t rnd(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Uniform in [lo, hi] (inclusive; hi - lo < 2^64 - 1). */
static inline uint64_t rnd_range(uint64_t lo, uint64_t hi)
{
	return lo + rnd() % (hi - lo + 1);
}

#endif /* VIGIL_TEST_CHECK_H */

/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * The host unit tests' harness: one TAP-like line per case ("ok N - what it
 * proves" / "not ok N - ..."), "#" diagnostics collected with diag() and
 * printed only when the case fails, and a deterministic PRNG (splitmix64)
 * whose seed the test sets (VIGIL_TEST_SEED).
 */
#ifndef VIGIL_TEST_CHECK_H
#define VIGIL_TEST_CHECK_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>


static unsigned n_cases, n_failed;
static char diag_buf[4096];
static size_t diag_len;

/* Remember a diagnostic line; printed only if the current case fails. */
__attribute__((format(printf, 1, 2))) static void diag(const char *fmt, ...)
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

__attribute__((format(printf, 5, 6))) static bool check_(bool ok, const char *expr,
							  const char *file, int line,
							  const char *fmt, ...)
{
	va_list ap;

	n_cases++;
	printf("%sok %u - ", ok ? "" : "not ", n_cases);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	if (!ok) {
		n_failed++;
		printf("#   failed: %s (%s:%d)\n", expr, file, line);
		fputs(diag_buf, stdout);
	}
	diag_len = 0;
	diag_buf[0] = '\0';
	return ok;
}

/* CHECK(condition, "what it proves", ...): one case, one output line. */
#define CHECK(cond, ...) check_(!!(cond), #cond, __FILE__, __LINE__, __VA_ARGS__)

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

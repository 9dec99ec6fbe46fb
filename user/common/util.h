/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/* Small helpers every subcommand uses: strict number parsing, clocks, names. */
#ifndef VIGIL_UTIL_H
#define VIGIL_UTIL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <linux/types.h>

/* Parse a whole decimal number in [min, max]. On error print one
 * line naming `what` and return -1. */
int vg_parse_u64(const char *s, const char *what, __u64 min, __u64 max, __u64 *out);
int vg_parse_u32(const char *s, const char *what, __u32 min, __u32 max, __u32 *out);
/* Parse "A" or "A-B" into an inclusive range. */
int vg_parse_range(const char *s, const char *what, __u64 *lo, __u64 *hi);

/* A line-based file (the agents file, the key file): fn is called for each
 * line with something on it, '#' comments and the line end cut off, with
 * its 1-based number. Stops at the first non-zero fn result and returns
 * it; -1 after "PATH: read error: ..."; else 0. */
typedef int (*vg_line_fn)(void *ctx, char *line, const char *path, int lineno);
int vg_each_line(FILE *f, const char *path, vg_line_fn fn, void *ctx);

/* CLOCK_MONOTONIC in ns: the same clock as bpf_ktime_get_ns(). */
__u64 vg_mono_ns(void);
/* CLOCK_REALTIME in ns. */
__u64 vg_wall_ns(void);
/* Convert a monotonic timestamp to wall-clock ns (for humans and logs). */
__u64 vg_mono_to_wall(__u64 mono_ns);
/* ISO-8601 UTC with milliseconds, into buf (at least 32 bytes). */
void vg_fmt_wall(__u64 wall_ns, char *buf, size_t len);

/* Print an IPv6 or IPv4-mapped address (as plain IPv4). */
void vg_fmt_addr(const __u8 a[16], char *buf, size_t len);
/* Parse an IPv6 (or ::ffff:a.b.c.d) address into 16 bytes; 0 on success. */
int vg_parse_addr(const char *s, __u8 out[16]);

/* Room for element n of a growing array (*arr, holding *cap elements of
 * `size` bytes): doubles it, starting at `first`, when full. 0, or -1 when
 * out of memory (the array is left as it was). */
static inline int vg_grow(void *arr, size_t *cap, size_t n, size_t size, size_t first)
{
	void **p = arr;
	size_t c;
	void *v;

	if (n < *cap)
		return 0;
	c = *cap ? *cap * 2 : first;
	v = realloc(*p, c * size);
	if (!v)
		return -1;
	*p = v;
	*cap = c;
	return 0;
}

/* CLOCK_MONOTONIC, ms from now: the deadline of a timed wait. */
static inline void vg_timespec_after(struct timespec *ts, __u64 ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += (time_t)(ms / 1000);
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

/* splitmix64: a fast per-thread generator, for jitter (not for keys). */
static inline __u64 vg_splitmix64(__u64 *state)
{
	__u64 z = (*state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Copy a NUL-terminated string into a fixed field, always terminated. */
void vg_strlcpy(char *dst, const char *src, size_t size);

/* A name that is one NATS subject token and a valid stream or bucket name:
 * 1..max characters of [A-Za-z0-9_-] (no dots, wildcards, spaces). */
bool vg_token_ok(const char *s, size_t max);

#endif

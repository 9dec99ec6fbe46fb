/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/* Small helpers every subcommand uses: strict number parsing, clocks, names. */
#ifndef VIGIL_UTIL_H
#define VIGIL_UTIL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <linux/types.h>

/* Parse a whole decimal number in [min, max]. On error print one
 * line naming `what` and return -1. */
int vg_parse_u64(const char *s, const char *what, __u64 min, __u64 max, __u64 *out);
int vg_parse_u32(const char *s, const char *what, __u32 min, __u32 max, __u32 *out);
/* Parse "A" or "A-B" into an inclusive range. */
int vg_parse_range(const char *s, const char *what, __u64 *lo, __u64 *hi);

/* CLOCK_MONOTONIC in ns: the same clock as bpf_ktime_get_ns(). */
__u64 vg_mono_ns(void);
/* CLOCK_REALTIME in ns. */
__u64 vg_wall_ns(void);
/* Convert a monotonic timestamp to wall-clock ns (for humans and logs). */
__u64 vg_mono_to_wall(__u64 mono_ns);
/* ISO-8601 UTC with milliseconds, into buf (at least 32 bytes). */
void vg_fmt_wall(__u64 wall_ns, char *buf, size_t len);

const char *vg_state_name(__u32 state);
const char *vg_kind_name(__u32 kind);
const char *vg_lease_state_name(__u32 state);
/* Lease events carry the lease id in `slot`, the token in `seq` and lease
 * states in state/prev_state. */
bool vg_kind_is_lease(__u32 kind);
/* MONITOR_BEHIND/CAUGHT_UP: the monitor's own health; `state` is the part. */
bool vg_kind_is_monitor(__u32 kind);
const char *vg_part_name(__u32 part);
/* Does an event of this kind record an agent's state (not REJECTED/lease/monitor)? */
bool vg_kind_changes_agent(__u32 kind);
/* Name of an event's state fields, agent or lease states by kind. */
const char *vg_event_state_name(__u32 kind, __u32 state);
const char *vg_status_name(__u32 status);
const char *vg_reason_name(__u32 reason);
/* Print an IPv6 or IPv4-mapped address (as plain IPv4). */
void vg_fmt_addr(const __u8 a[16], char *buf, size_t len);
/* Parse an IPv6 (or ::ffff:a.b.c.d) address into 16 bytes; 0 on success. */
int vg_parse_addr(const char *s, __u8 out[16]);
int vg_status_parse(const char *s, __u32 *out);

/* Print s as a JSON string (with quotes), escaping as needed. */
void vg_json_str(FILE *f, const char *s);

/* Copy a NUL-terminated string into a fixed field, always terminated. */
void vg_strlcpy(char *dst, const char *src, size_t size);

#endif

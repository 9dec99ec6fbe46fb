/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * Small helpers the benchmark tools share: CPU pinning, per-CPU busy time
 * from /proc/stat, reading a receiver's counter (a pinned BPF map or a
 * stats file), MAC addresses, percentiles.
 */
#ifndef VIGIL_BENCH_COMMON_H
#define VIGIL_BENCH_COMMON_H

#include <stddef.h>
#include <linux/types.h>

/* Pin the calling thread to one CPU. Returns 0 or -1 (message printed). */
int bc_pin_cpu(int cpu);

/* Busy nanoseconds of one CPU so far (user+nice+system+irq+softirq from
 * /proc/stat, in USER_HZ ticks converted to ns). Returns 0 on error. */
__u64 bc_cpu_busy_ns(int cpu);

/*
 * A receiver's counter, named by a spec string:
 *   map:PATH[:OFFSET]   u64 at OFFSET of key 0 of a pinned (per-CPU) array, summed over CPUs
 *   file:PATH[:OFFSET]  u64 at OFFSET of a file (bench/baseline.c's stats file)
 * OFFSET may be a sum, OFF+OFF+...: the counters are added.
 */
#define BC_MAX_OFFS 8
struct bc_counter {
	int fd;
	int is_map;
	int percpu;
	int ncpus;
	size_t offs[BC_MAX_OFFS];
	int n_offs;
	__u32 value_size;
	void *buf;
};

int bc_counter_open(const char *spec, struct bc_counter *c);
int bc_counter_read(struct bc_counter *c, __u64 *out);
void bc_counter_close(struct bc_counter *c);

/* "02:00:00:00:00:01" -> bytes. Returns 0 or -1. */
int bc_parse_mac(const char *s, __u8 mac[6]);
/* The MAC address and first IPv4 address (network order, 0 if none) of an
 * interface in the current network namespace. */
int bc_iface_addrs(const char *ifname, __u8 mac[6], __u32 *ip4);

/* Sort v and return the q-quantile (0..1), nearest rank. */
__u64 bc_quantile(__u64 *v, size_t n, double q);
double bc_quantile_d(double *v, size_t n, double q);

/* An Ethernet + IPv4 + UDP frame with a zeroed 64-byte beat in the layout of
 * bench/tg.h (TG_FRAME_LEN bytes), MACs 02:00:00:00:00:01 <- :02, header
 * checksum set, UDP checksum 0. Addresses in network order. */
void bc_frame_template(__u8 *frame, __u32 saddr, __u32 daddr, __u16 port);
/* IPv4 header checksum (network order) of the 20 bytes at ip. */
__u16 bc_ip_csum(const __u8 *ip);

/* Seconds as a decimal ("2.5") into ns. Returns 0 or -1 (message printed). */
int bc_parse_seconds(const char *s, const char *what, __u64 *ns);

#endif

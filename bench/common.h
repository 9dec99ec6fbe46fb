/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * Small helpers the benchmark tools share: CPU pinning, what ran on a CPU,
 * reading a receiver's counter (a pinned BPF map or a stats file), MAC
 * addresses, percentiles.
 */
#ifndef VIGIL_BENCH_COMMON_H
#define VIGIL_BENCH_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>

/* Pin the calling thread to one CPU. Returns 0 or -1 (message printed). */
int bc_pin_cpu(int cpu);

/*
 * What threads ran on one CPU, by the scheduler's own count of each
 * thread's run time (/proc/PID/task/TID/schedstat, ns). /proc/stat charges
 * a whole tick (10 ms) to whatever runs when the tick fires, so short bursts
 * of work on an otherwise idle CPU (a receiver at a modest rate) are mostly
 * missed or mostly overcounted; this sees each of them. A thread counts
 * for the CPU it was last on in the later snapshot; work done outside any
 * thread (hard interrupts, softirqs on the way out of one) is not seen: a
 * receiver measured so runs its NAPI threaded.
 */
struct bc_threads;
struct bc_threads *bc_threads_snap(void); /* NULL on error; free() it */
__u64 bc_threads_cpu_ns(const struct bc_threads *a, const struct bc_threads *b, int cpu);

/* Is one CPU idle of everything else? Samples it for window_ns: its busy
 * and steal time, and the threads that ran there (the three that took the
 * most CPU, thread self_pid left out, as "comm 12 %, ..."). */
struct bc_idle {
	double seconds, busy_pct, steal_pct;
	char others[160];
};
int bc_idle_check(int cpu, __u64 window_ns, int self_pid, struct bc_idle *r);

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

/*
 * A tool's command-line options, each written once: its getopt_long entry
 * and, for the common kinds, where its value goes and its bounds. The table
 * ends with {}. bc_getopt() stores those values itself; the rest (BC_OTHER:
 * checks of their own, --help) it returns to the tool's switch.
 *
 *   const struct bc_opt opts[] = {
 *           BC_U32("port", 'p', &port, 1, 65535),
 *           BC_STR("keys", 'k', &keys_path),
 *           BC_OTHER("help", 'h', no_argument),
 *           {}
 *   };
 *   while ((opt = bc_getopt(argc, argv, "p:k:h", opts)) != -1)
 *           switch (opt) { case BC_BAD: return 2; case 'h': ...; default: usage; }
 */
enum bc_opt_kind {
	BC_OPT_OTHER,   /* returned to the tool */
	BC_OPT_FLAG,    /* bool = true */
	BC_OPT_STR,     /* const char * = the argument */
	BC_OPT_U32,     /* __u32 in [min, max] (vg_parse_u32) */
	BC_OPT_U64,     /* __u64 in [min, max] (vg_parse_u64) */
	BC_OPT_INT,     /* int in [min, max] (a CPU number) */
	BC_OPT_SECONDS, /* __u64 ns (bc_parse_seconds) */
};

struct bc_opt {
	const char *name; /* without the leading "--" */
	int val;          /* getopt_long's value: a short option's letter, or >= 256 */
	enum bc_opt_kind kind;
	int has_arg;      /* BC_OPT_OTHER: no_argument or required_argument */
	void *dst;
	__u64 min, max;
};

/* The pointer, if it is one to type T (else the build fails). */
#define BC_PTR(T, p) ((void *)(1 ? (p) : (T *)0))
#define BC_OTHER(n, v, arg) { .name = n, .val = v, .kind = BC_OPT_OTHER, .has_arg = arg }
#define BC_FLAG(n, v, p) { .name = n, .val = v, .kind = BC_OPT_FLAG, .dst = BC_PTR(bool, p) }
#define BC_STR(n, v, p) { .name = n, .val = v, .kind = BC_OPT_STR, .dst = BC_PTR(const char *, p) }
#define BC_SECONDS(n, v, p) { .name = n, .val = v, .kind = BC_OPT_SECONDS, .dst = BC_PTR(__u64, p) }
#define BC_U32(n, v, p, lo, hi) \
	{ .name = n, .val = v, .kind = BC_OPT_U32, .dst = BC_PTR(__u32, p), .min = lo, .max = hi }
#define BC_U64(n, v, p, lo, hi) \
	{ .name = n, .val = v, .kind = BC_OPT_U64, .dst = BC_PTR(__u64, p), .min = lo, .max = hi }
#define BC_INT(n, v, p, lo, hi) \
	{ .name = n, .val = v, .kind = BC_OPT_INT, .dst = BC_PTR(int, p), .min = lo, .max = hi }

/* bc_getopt() returns this for a bad value (its message printed). */
#define BC_BAD (-2)
#define BC_MAX_OPTS 48

/* getopt_long(argc, argv, shortopts) over the table: stores the values of
 * the options with a kind, and returns the next one without (BC_OPT_OTHER),
 * '?' as getopt_long does (an unknown option, a missing argument), BC_BAD,
 * or -1 at the end. */
int bc_getopt(int argc, char **argv, const char *shortopts, const struct bc_opt *opts);

#endif

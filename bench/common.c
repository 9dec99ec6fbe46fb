// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "common.h"
#include "tg.h"
#include "common/util.h"

int bc_pin_cpu(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set)) {
		fprintf(stderr, "pinning to CPU %d failed: %s\n", cpu, strerror(errno));
		return -1;
	}
	return 0;
}

/* busy (user+nice+system+irq+softirq), steal and all time of one CPU so
 * far, in ns; 0 on success. */
static int cpu_times(int cpu, __u64 *busy, __u64 *steal, __u64 *all)
{
	char line[512], name[16];
	unsigned long long v[10] = {};
	long hz = sysconf(_SC_CLK_TCK);
	__u64 tick = 1000000000ULL / (hz > 0 ? hz : 100);
	FILE *f = fopen("/proc/stat", "r");
	int ret = -1;

	if (!f)
		return -1;
	snprintf(name, sizeof(name), "cpu%d ", cpu);
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, name, strlen(name)))
			continue;
		sscanf(line + strlen(name), "%llu %llu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0],
		       &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7], &v[8], &v[9]);
		/* user nice system idle iowait irq softirq steal guest guest_nice;
		 * guest time is already part of user. */
		*busy = (v[0] + v[1] + v[2] + v[5] + v[6]) * tick;
		*steal = v[7] * tick;
		*all = (v[0] + v[1] + v[2] + v[3] + v[4] + v[5] + v[6] + v[7]) * tick;
		ret = 0;
		break;
	}
	fclose(f);
	return ret;
}

/* CPU time (ticks) of every thread in the system, with the CPU it last ran
 * on. Sorted by tid. */
struct task_time {
	int tid, cpu;
	unsigned long long ticks;
	__u64 run_ns; /* the scheduler's own count (schedstat), 0 if not known */
	char comm[16];
};

static int cmp_tid(const void *a, const void *b)
{
	return ((const struct task_time *)a)->tid - ((const struct task_time *)b)->tid;
}

static size_t task_times(struct task_time *out, size_t max)
{
	DIR *proc = opendir("/proc");
	struct dirent *p;
	size_t n = 0;

	if (!proc)
		return 0;
	while ((p = readdir(proc)) && n < max) {
		char path[600];
		DIR *tasks;
		struct dirent *t;

		if (p->d_name[0] < '0' || p->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/task", p->d_name);
		tasks = opendir(path);
		if (!tasks)
			continue;
		while ((t = readdir(tasks)) && n < max) {
			char buf[1024], *rp;
			unsigned long long ut, st;
			int cpu;
			FILE *f;

			if (t->d_name[0] < '0' || t->d_name[0] > '9')
				continue;
			snprintf(path, sizeof(path), "/proc/%s/task/%s/stat", p->d_name, t->d_name);
			f = fopen(path, "r");
			if (!f)
				continue;
			rp = fgets(buf, sizeof(buf), f) ? strrchr(buf, ')') : NULL;
			fclose(f);
			/* after "(comm)": state ppid pgrp session tty tpgid flags minflt
			 * cminflt majflt cmajflt utime stime ... processor (field 39) */
			if (!rp || sscanf(rp + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu "
					  "%*d %*d %*d %*d %*d %*d %*u %*u %*d %*u %*u %*u %*u %*u "
					  "%*u %*u %*u %*u %*u %*u %*u %*u %*d %d", &ut, &st, &cpu) != 3)
				continue;
			out[n].tid = atoi(t->d_name);
			out[n].cpu = cpu;
			out[n].ticks = ut + st;
			out[n].run_ns = 0;
			snprintf(path, sizeof(path), "/proc/%s/task/%s/schedstat", p->d_name,
				 t->d_name);
			f = fopen(path, "r");
			if (f) {
				unsigned long long ns;

				if (fscanf(f, "%llu", &ns) == 1)
					out[n].run_ns = ns;
				fclose(f);
			}
			*rp = '\0';
			snprintf(out[n].comm, sizeof(out[n].comm), "%s", strchr(buf, '(') + 1);
			n++;
		}
		closedir(tasks);
	}
	closedir(proc);
	qsort(out, n, sizeof(*out), cmp_tid);
	return n;
}

#define MAX_TASKS 8192

struct bc_threads {
	size_t n;
	struct task_time t[MAX_TASKS];
};

struct bc_threads *bc_threads_snap(void)
{
	struct bc_threads *s = malloc(sizeof(*s));

	if (s)
		s->n = task_times(s->t, MAX_TASKS);
	return s;
}

__u64 bc_threads_cpu_ns(const struct bc_threads *a, const struct bc_threads *b, int cpu)
{
	__u64 sum = 0;

	for (size_t i = 0, j = 0; i < b->n; i++) {
		__u64 before = 0;

		if (b->t[i].cpu != cpu)
			continue;
		while (j < a->n && a->t[j].tid < b->t[i].tid)
			j++;
		if (j < a->n && a->t[j].tid == b->t[i].tid)
			before = a->t[j].run_ns;
		if (b->t[i].run_ns > before)
			sum += b->t[i].run_ns - before;
	}
	return sum;
}

int bc_idle_check(int cpu, __u64 window_ns, int self_pid, struct bc_idle *r)
{
	struct task_time *a = calloc(MAX_TASKS, sizeof(*a)), *b = calloc(MAX_TASKS, sizeof(*b));
	__u64 busy0 = 0, steal0 = 0, all0 = 0, busy1 = 0, steal1 = 0, all1 = 0;
	long hz = sysconf(_SC_CLK_TCK);
	struct timespec ts = { .tv_sec = window_ns / 1000000000ULL,
			       .tv_nsec = window_ns % 1000000000ULL };
	size_t na, nb, len = 0;
	int ret = -1;

	memset(r, 0, sizeof(*r));
	if (!a || !b)
		goto out;
	na = task_times(a, MAX_TASKS);
	if (cpu_times(cpu, &busy0, &steal0, &all0))
		goto out;
	nanosleep(&ts, NULL);
	if (cpu_times(cpu, &busy1, &steal1, &all1))
		goto out;
	nb = task_times(b, MAX_TASKS);
	r->seconds = (double)window_ns / 1e9;
	if (all1 > all0) {
		r->busy_pct = 100.0 * (double)(busy1 - busy0) / (double)(all1 - all0);
		r->steal_pct = 100.0 * (double)(steal1 - steal0) / (double)(all1 - all0);
	}
	/* The threads that ran on that CPU meanwhile (as far as /proc tells:
	 * the CPU a thread last ran on), most CPU first, ours left out. */
	for (int k = 0; k < 3; k++) {
		size_t best = nb;
		unsigned long long bd = 0;

		for (size_t i = 0, j = 0; i < nb; i++) {
			unsigned long long d;

			while (j < na && a[j].tid < b[i].tid)
				j++;
			d = b[i].ticks - (j < na && a[j].tid == b[i].tid ? a[j].ticks : 0);
			if (b[i].cpu == cpu && b[i].tid != self_pid && d > bd && d < ~0ULL / 2) {
				best = i;
				bd = d;
			}
		}
		if (best == nb)
			break;
		len += snprintf(r->others + len, sizeof(r->others) - len, "%s%s %.0f %%",
				len ? ", " : "", b[best].comm,
				100.0 * (double)bd / (hz > 0 ? hz : 100) / r->seconds);
		b[best].ticks = 0; /* not again */
		for (size_t j = 0; j < na; j++)
			if (a[j].tid == b[best].tid)
				a[j].ticks = 0;
		if (len >= sizeof(r->others))
			break;
	}
	ret = 0;
out:
	free(a);
	free(b);
	return ret;
}

int bc_counter_open(const char *spec, struct bc_counter *c)
{
	char path[512];
	const char *rest, *colon;
	size_t len, maxoff = 0;

	memset(c, 0, sizeof(*c));
	c->fd = -1;
	if (!strncmp(spec, "map:", 4)) {
		c->is_map = 1;
		rest = spec + 4;
	} else if (!strncmp(spec, "file:", 5)) {
		rest = spec + 5;
	} else {
		fprintf(stderr, "counter '%s': expected map:PATH[:OFFSET[+OFFSET...]] or "
				"file:PATH[:OFFSET[+OFFSET...]]\n", spec);
		return -1;
	}
	colon = strrchr(rest, ':');
	len = colon ? (size_t)(colon - rest) : strlen(rest);
	if (len >= sizeof(path)) {
		fprintf(stderr, "counter '%s': path too long\n", spec);
		return -1;
	}
	memcpy(path, rest, len);
	path[len] = '\0';
	c->offs[0] = 0;
	c->n_offs = 1;
	if (colon) {
		const char *p = colon + 1;

		c->n_offs = 0;
		while (*p && c->n_offs < BC_MAX_OFFS) {
			char *end;

			c->offs[c->n_offs++] = strtoul(p, &end, 10);
			if (end == p || (*end && *end != '+')) {
				fprintf(stderr, "counter '%s': bad offset list\n", spec);
				return -1;
			}
			p = *end ? end + 1 : end;
		}
	}
	for (int i = 0; i < c->n_offs; i++) {
		if (c->offs[i] % 8) {
			fprintf(stderr, "counter '%s': offsets must be multiples of 8\n", spec);
			return -1;
		}
		if (c->offs[i] > maxoff)
			maxoff = c->offs[i];
	}
	if (c->is_map) {
		struct bpf_map_info info = {};
		__u32 ilen = sizeof(info);

		c->fd = bpf_obj_get(path);
		if (c->fd < 0 || bpf_obj_get_info_by_fd(c->fd, &info, &ilen)) {
			fprintf(stderr, "counter: opening pinned map %s failed: %s\n", path,
				strerror(errno));
			return -1;
		}
		c->percpu = info.type == BPF_MAP_TYPE_PERCPU_ARRAY ||
			    info.type == BPF_MAP_TYPE_PERCPU_HASH;
		c->ncpus = c->percpu ? libbpf_num_possible_cpus() : 1;
		c->value_size = (info.value_size + 7) & ~7u;
		if (maxoff + 8 > info.value_size) {
			fprintf(stderr, "counter: offset %zu is outside %s's %u-byte value\n", maxoff,
				path, info.value_size);
			return -1;
		}
		c->buf = calloc(c->ncpus, c->value_size);
		if (!c->buf)
			return -1;
	} else {
		c->fd = open(path, O_RDONLY | O_CLOEXEC);
		if (c->fd < 0) {
			fprintf(stderr, "counter: opening %s failed: %s\n", path, strerror(errno));
			return -1;
		}
	}
	return 0;
}

int bc_counter_read(struct bc_counter *c, __u64 *out)
{
	__u32 zero = 0;

	*out = 0;
	if (!c->is_map) {
		for (int i = 0; i < c->n_offs; i++) {
			__u64 v;

			if (pread(c->fd, &v, 8, c->offs[i]) != 8)
				return -1;
			*out += v;
		}
		return 0;
	}
	if (bpf_map_lookup_elem(c->fd, &zero, c->buf))
		return -1;
	for (int cpu = 0; cpu < c->ncpus; cpu++)
		for (int i = 0; i < c->n_offs; i++)
			*out += *(__u64 *)((char *)c->buf + (size_t)cpu * c->value_size + c->offs[i]);
	return 0;
}

void bc_counter_close(struct bc_counter *c)
{
	if (c->fd >= 0)
		close(c->fd);
	free(c->buf);
	c->fd = -1;
	c->buf = NULL;
}

int bc_parse_mac(const char *s, __u8 mac[6])
{
	unsigned int b[6];
	char extra;

	if (sscanf(s, "%x:%x:%x:%x:%x:%x%c", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5], &extra) != 6)
		return -1;
	for (int i = 0; i < 6; i++) {
		if (b[i] > 255)
			return -1;
		mac[i] = (__u8)b[i];
	}
	return 0;
}

int bc_iface_addrs(const char *ifname, __u8 mac[6], __u32 *ip4)
{
	struct ifaddrs *ifa, *i;
	struct ifreq ifr = {};
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	*ip4 = 0;
	if (fd < 0)
		return -1;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	if (ioctl(fd, SIOCGIFHWADDR, &ifr)) {
		close(fd);
		return -1;
	}
	memcpy(mac, ifr.ifr_hwaddr.sa_data, 6);
	close(fd);
	if (getifaddrs(&ifa) == 0) {
		for (i = ifa; i; i = i->ifa_next)
			if (i->ifa_addr && i->ifa_addr->sa_family == AF_INET &&
			    !strcmp(i->ifa_name, ifname)) {
				*ip4 = ((struct sockaddr_in *)i->ifa_addr)->sin_addr.s_addr;
				break;
			}
		freeifaddrs(ifa);
	}
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	__u64 x = *(const __u64 *)a, y = *(const __u64 *)b;

	return x < y ? -1 : x > y;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Sort v (n elements of size bytes) and point at its q-quantile, nearest
 * rank; NULL when there is none. */
static const void *quantile_of(void *v, size_t n, size_t size,
			       int (*cmp)(const void *, const void *), double q)
{
	size_t i = (size_t)(q * (double)n);

	if (!n)
		return NULL;
	qsort(v, n, size, cmp);
	return (const char *)v + (i >= n ? n - 1 : i) * size;
}

__u64 bc_quantile(__u64 *v, size_t n, double q)
{
	const __u64 *x = quantile_of(v, n, sizeof(*v), cmp_u64, q);

	return x ? *x : 0;
}

double bc_quantile_d(double *v, size_t n, double q)
{
	const double *x = quantile_of(v, n, sizeof(*v), cmp_d, q);

	return x ? *x : 0;
}

int bc_parse_seconds(const char *s, const char *what, __u64 *ns)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || *end || end == s || v < 0 || v > 86400 * 365) {
		fprintf(stderr, "%s: '%s' is not a number of seconds\n", what, s);
		return -1;
	}
	*ns = (__u64)(v * 1e9);
	return 0;
}

__u16 bc_ip_csum(const __u8 *ip)
{
	__u32 s = 0;

	for (int i = 0; i < 20; i += 2)
		if (i != 10)
			s += (__u32)ip[i] << 8 | ip[i + 1];
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return htons((__u16)~s);
}

void bc_frame_template(__u8 *p, __u32 saddr, __u32 daddr, __u16 port)
{
	__u8 *ip = p + TG_IP_OFF, *udp = p + TG_UDP_OFF;
	__u16 c;

	memset(p, 0, TG_FRAME_LEN);
	memcpy(p, "\x02\x00\x00\x00\x00\x01\x02\x00\x00\x00\x00\x02\x08\x00", 14);
	ip[0] = 0x45;
	ip[3] = 20 + 8 + 64;
	ip[6] = 0x40; /* DF */
	ip[8] = 64;
	ip[9] = 17;
	memcpy(ip + 12, &saddr, 4);
	memcpy(ip + 16, &daddr, 4);
	c = bc_ip_csum(ip);
	memcpy(ip + 10, &c, 2);
	udp[0] = 40001 >> 8;
	udp[1] = 40001 & 0xff;
	udp[2] = port >> 8;
	udp[3] = port & 0xff;
	udp[5] = 8 + 64;
}

int bc_getopt(int argc, char **argv, const char *shortopts, const struct bc_opt *opts)
{
	struct option lo[BC_MAX_OPTS + 1] = {};
	const struct bc_opt *o;
	char what[64];
	size_t n = 0;
	__u32 v32;
	int opt;

	for (o = opts; o->name; o++) {
		if (n == BC_MAX_OPTS) {
			fprintf(stderr, "bc_getopt: more than %d options\n", BC_MAX_OPTS);
			return BC_BAD;
		}
		lo[n++] = (struct option){
			.name = o->name,
			.has_arg = o->kind == BC_OPT_OTHER ? o->has_arg :
				   o->kind == BC_OPT_FLAG  ? no_argument : required_argument,
			.val = o->val,
		};
	}
	while ((opt = getopt_long(argc, argv, shortopts, lo, NULL)) != -1) {
		for (o = opts; o->name && o->val != opt; o++)
			;
		if (!o->name || o->kind == BC_OPT_OTHER)
			return opt;
		snprintf(what, sizeof(what), "--%s", o->name);
		switch (o->kind) {
		case BC_OPT_FLAG:
			*(bool *)o->dst = true;
			break;
		case BC_OPT_STR:
			*(const char **)o->dst = optarg;
			break;
		case BC_OPT_U32:
			if (vg_parse_u32(optarg, what, (__u32)o->min, (__u32)o->max, o->dst))
				return BC_BAD;
			break;
		case BC_OPT_U64:
			if (vg_parse_u64(optarg, what, o->min, o->max, o->dst))
				return BC_BAD;
			break;
		case BC_OPT_INT:
			if (vg_parse_u32(optarg, what, (__u32)o->min, (__u32)o->max, &v32))
				return BC_BAD;
			*(int *)o->dst = (int)v32;
			break;
		case BC_OPT_SECONDS:
			if (bc_parse_seconds(optarg, what, o->dst))
				return BC_BAD;
			break;
		case BC_OPT_OTHER:
			break;
		}
	}
	return -1;
}

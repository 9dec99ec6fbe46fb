// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/*
 * vigil-scale: register N agents, let each beat R times at its interval
 * (through BPF_PROG_TEST_RUN, so no NIC limits the rate), then stop them
 * all and check that every missed deadline is reported exactly once, never
 * early, and how late. Prints memory per agent, sweeper CPU and lateness
 * percentiles. Used by docs/scale.md (1,000,000 agents) and `make bench`.
 *
 *   build/vigil-scale --agents 1000000 --interval-ms 1000 --rounds 3
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "vigil.skel.h"
#include "vigil/logic.h"
#include "instance.h"
#include "log.h"
#include "registry.h"
#include "util.h"
#include "pkt.h"

struct agent_seen {
	__u64 suspect_late_ns; /* detected - deadline; valid when n_suspect */
	__u64 dead_late_ns;
	__u8 n_suspect, n_dead, early;
};

struct run {
	struct vg_maps m;
	struct vigil_bpf *skel;
	__u32 n, interval_ms, multiplier, dead_misses;
	struct agent_seen *seen; /* by agent id - 1 */
	__u64 events, bad_events, dup_seq;
	struct u64set { __u64 *bits; } seqs;
	volatile int stop;
};

static int on_event(void *ctx, void *data, size_t len)
{
	struct run *r = ctx;
	const struct vigil_event *e = data;
	struct agent_seen *a;
	__u64 deadline;

	if (len < sizeof(*e))
		return 0;
	r->events++;
	if (e->event_seq / 64 < (__u64)r->n * 4) {
		__u64 bit = 1ULL << (e->event_seq % 64);

		if (r->seqs.bits[e->event_seq / 64] & bit)
			r->dup_seq++;
		r->seqs.bits[e->event_seq / 64] |= bit;
	}
	if (e->agent_id < 1 || e->agent_id > r->n) {
		r->bad_events++;
		return 0;
	}
	a = &r->seen[e->agent_id - 1];
	deadline = vigil_deadline(e->last_seen_ns, e->interval_ms, r->multiplier);
	if (e->kind == VIGIL_EV_SUSPECT) {
		a->n_suspect++;
		a->early |= e->detected_ns < deadline;
		a->suspect_late_ns = e->detected_ns - deadline;
	} else if (e->kind == VIGIL_EV_DEAD) {
		deadline += (__u64)r->dead_misses * e->interval_ms * VIGIL_NSEC_PER_MSEC;
		a->n_dead++;
		a->early |= e->detected_ns < deadline;
		a->dead_late_ns = e->detected_ns - deadline;
	} else if (e->kind != VIGIL_EV_UP) {
		r->bad_events++;
	}
	return 0;
}

static void *consumer(void *arg)
{
	struct run *r = arg;
	struct ring_buffer *rb = ring_buffer__new(r->m.events, on_event, r, NULL);

	if (!rb)
		return NULL;
	while (!r->stop)
		ring_buffer__poll(rb, 50);
	ring_buffer__consume(rb);
	ring_buffer__free(rb);
	return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
	__u64 x = *(const __u64 *)a, y = *(const __u64 *)b;

	return x < y ? -1 : x > y;
}

static void percentiles(const char *what, __u64 *v, size_t n)
{
	if (!n) {
		printf("%s: none\n", what);
		return;
	}
	qsort(v, n, sizeof(*v), cmp_u64);
	printf("%-26s p50 %8.3f ms   p99 %8.3f ms   max %8.3f ms   (n=%zu)\n", what,
	       v[n / 2] / 1e6, v[(n * 99) / 100] / 1e6, v[n - 1] / 1e6, n);
}

/* Bytes the kernel charges for all of vigil's maps, from /proc fdinfo. */
static __u64 map_memory(const struct vg_maps *m)
{
	const int fds[] = { m->agents, m->index, m->links, m->buckets, m->wheel, m->inbox,
			    m->config, m->globals, m->stats, m->events, m->meta };
	__u64 total = 0;

	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) {
		char path[64], line[256];
		FILE *f;

		snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fds[i]);
		f = fopen(path, "r");
		if (!f)
			continue;
		while (fgets(line, sizeof(line), f)) {
			unsigned long long v;

			if (sscanf(line, "memlock: %llu", &v) == 1)
				total += v;
		}
		fclose(f);
	}
	return total;
}


int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "agents", required_argument, NULL, 'n' },
		{ "interval-ms", required_argument, NULL, 'i' },
		{ "rounds", required_argument, NULL, 'r' },
		{ "tick-us", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	struct run r = { .n = 100000, .interval_ms = 1000, .multiplier = 3, .dead_misses = 2 };
	struct frame_spec spec = {};
	struct vigil_beat_info bi = {};
	struct vg_load_opts o;
	struct wheel_state ws0 = {}, ws1 = {};
	struct vigil_stats st;
	__u32 rounds = 3, tick_us = 1000, hint = 0, zero = 0;
	__u64 t0, t_reg, t_beat_start, t_last_beat, wait_until, busy_window_ns;
	__u8 frame[PKT_MAX];
	pthread_t thr;
	int opt, prog_fd, failed = 0;

	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 'n':
			if (vg_parse_u32(optarg, "--agents", 1, 4u << 20, &r.n))
				return 2;
			break;
		case 'i':
			if (vg_parse_u32(optarg, "--interval-ms", 10, 60000, &r.interval_ms))
				return 2;
			break;
		case 'r':
			if (vg_parse_u32(optarg, "--rounds", 1, 100, &rounds))
				return 2;
			break;
		case 't':
			if (vg_parse_u32(optarg, "--tick-us", 100, 100000, &tick_us))
				return 2;
			break;
		default:
			fprintf(stderr, "Usage: vigil-scale [--agents N] [--interval-ms N] "
					"[--rounds N] [--tick-us N]\n");
			return opt == 'h' ? 0 : 2;
		}
	}
	vg_log_hook_libbpf();
	vg_load_opts_default(&o);
	o.pin_root = NULL;
	o.iface = NULL;
	o.max_agents = r.n;
	o.tick_ns = (__u64)tick_us * 1000;
	o.ringbuf_bytes = 64 << 20;
	o.cfg.dead_misses = r.dead_misses;
	o.cfg.auth_required = 0; /* this run measures detection; bench/ measures auth cost */
	if (vg_instance_load(&o, &r.m, &r.skel))
		return 1;
	r.seen = calloc(r.n, sizeof(*r.seen));
	r.seqs.bits = calloc((size_t)r.n * 4 + 1, sizeof(__u64));
	if (!r.seen || !r.seqs.bits)
		return 1;
	if (pthread_create(&thr, NULL, consumer, &r))
		return 1;

	printf("# vigil-scale: %u agents, interval %u ms, multiplier %u, dead after %u more, "
	       "tick %u us, %u beat rounds\n", r.n, r.interval_ms, r.multiplier, r.dead_misses,
	       tick_us, rounds);
	t0 = vg_mono_ns();
	for (__u32 i = 0; i < r.n; i++) {
		struct vg_agent_def d;
		int err;

		vg_agent_def_default(&d, i + 1);
		/* Registration allows a long first deadline, so agents registered
		 * early do not go SUSPECT before their first beat. */
		d.interval_min_ms = r.interval_ms;
		d.interval_max_ms = 600000;
		d.multiplier = r.multiplier;
		err = vg_agent_add(&r.m, &d, &hint);
		if (err) {
			fprintf(stderr, "registering agent %u: %s\n", i + 1, strerror(-err));
			return 1;
		}
	}
	t_reg = vg_mono_ns();
	printf("registered %u agents in %.2f s\n", r.n, (t_reg - t0) / 1e9);
	printf("map memory: %.1f MiB, %.0f bytes per agent (all maps incl. 64 MiB ring buffer: "
	       "%.0f without it)\n", map_memory(&r.m) / 1048576.0, (double)map_memory(&r.m) / r.n,
	       (double)(map_memory(&r.m) - (64ull << 20)) / r.n);

	prog_fd = bpf_program__fd(r.skel->progs.vigil_xdp);
	bi.interval_ms = r.interval_ms;
	bi.incarnation = 1;
	t_beat_start = vg_mono_ns();
	for (__u32 round = 0; round < rounds; round++) {
		__u64 round_start = t_beat_start + (__u64)round * r.interval_ms * VIGIL_NSEC_PER_MSEC;

		while (vg_mono_ns() < round_start)
			usleep(1000);
		if (round == 1)
			bpf_map_lookup_elem(r.m.wheel, &zero, &ws0);
		for (__u32 i = 0; i < r.n; i++) {
			LIBBPF_OPTS(bpf_test_run_opts, t);
			size_t len;

			bi.agent_id = i + 1;
			bi.seq = round + 1;
			len = build_frame(frame, &spec, &bi, NULL);
			t.data_in = frame;
			t.data_size_in = len;
			if (bpf_prog_test_run_opts(prog_fd, &t) || t.retval != 1 /* XDP_DROP */) {
				vg_stats_read(&r.m, &st);
				fprintf(stderr, "beat for agent %u not consumed (retval %u, passed %llu, packets %llu)\n", i + 1,
					t.retval, (unsigned long long)st.passed, (unsigned long long)st.packets);
				return 1;
			}
		}
		if (round == rounds - 1 && rounds > 1)
			bpf_map_lookup_elem(r.m.wheel, &zero, &ws1);
		printf("beat round %u: %u beats in %.2f s\n", round + 1, r.n,
		       (vg_mono_ns() - round_start) / 1e9);
	}
	t_last_beat = vg_mono_ns();
	if (rounds > 1) {
		busy_window_ns = t_last_beat - t_beat_start - r.interval_ms * VIGIL_NSEC_PER_MSEC;
		printf("sweeper while all agents beat: %.2f %% of one CPU (%llu visits/s)\n",
		       100.0 * (ws1.busy_ns - ws0.busy_ns) / (double)busy_window_ns,
		       (unsigned long long)((ws1.visits - ws0.visits) * 1e9 / busy_window_ns));
	}
	/* Everyone stops now: wait past the last DEAD deadline, plus slack. */
	wait_until = t_last_beat +
		     (__u64)(r.multiplier + r.dead_misses) * r.interval_ms * VIGIL_NSEC_PER_MSEC +
		     2 * VIGIL_NSEC_PER_SEC;
	while (vg_mono_ns() < wait_until)
		usleep(100000);
	r.stop = 1;
	pthread_join(thr, NULL);
	vg_stats_read(&r.m, &st);
	bpf_map_lookup_elem(r.m.wheel, &zero, &ws1);

	{
		__u64 *sl = malloc(r.n * sizeof(__u64)), *dl = malloc(r.n * sizeof(__u64));
		size_t ns = 0, nd = 0, missing = 0, twice = 0, early = 0;

		for (__u32 i = 0; i < r.n; i++) {
			struct agent_seen *a = &r.seen[i];

			missing += a->n_suspect == 0 || a->n_dead == 0;
			twice += a->n_suspect > 1 || a->n_dead > 1;
			early += a->early;
			if (a->n_suspect)
				sl[ns++] = a->suspect_late_ns;
			if (a->n_dead)
				dl[nd++] = a->dead_late_ns;
		}
		printf("events: %llu received, %llu lost to a full ring buffer, %llu duplicate "
		       "event_seq, %llu unexpected\n", (unsigned long long)r.events,
		       (unsigned long long)st.ringbuf_full, (unsigned long long)r.dup_seq,
		       (unsigned long long)r.bad_events);
		printf("missed deadlines: %u agents; reported SUSPECT %zu, DEAD %zu; missing %zu, "
		       "twice %zu, early %zu\n", r.n, ns, nd, missing, twice, early);
		percentiles("SUSPECT lateness", sl, ns);
		percentiles("DEAD lateness", dl, nd);
		printf("sweeper: %llu ticks, largest backlog %llu ticks, budget exhausted %llu times\n",
		       (unsigned long long)ws1.runs, (unsigned long long)ws1.max_lag_ticks,
		       (unsigned long long)ws1.budget_exhausted);
		failed = missing || twice || early || r.dup_seq || r.bad_events || st.ringbuf_full;
		printf("%s\n", failed ? "RESULT: FAIL" : "RESULT: every missed deadline reported exactly once, none early");
		free(sl);
		free(dl);
	}
	vigil_bpf__destroy(r.skel);
	free(r.seen);
	free(r.seqs.bits);
	return failed;
}

// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/*
 * vigil-scale: register N agents, let each beat R times at its interval,
 * then stop them all and check that every missed deadline is reported
 * exactly once, never early, and how late. Prints memory per agent, the
 * sweeper's CPU time while everyone beats, detection lateness and the
 * event delivery lag to a ring-buffer consumer. Used by docs/scale.md and
 * `make bench` (docs/BENCHMARKS.md, sections 3 and 4).
 *
 *   build/vigil-scale --agents 1000000 --interval-ms 1000 --rounds 5
 *
 * Beats are driven through BPF_PROG_TEST_RUN by bench.bpf.c's beat_driver,
 * which writes the next agent id into the packet and tail-calls vigil_xdp,
 * so one call beats for a chunk of agents (about 0.2 us per beat instead of
 * a syscall each). Each round is spread evenly over --spread of the interval,
 * as beats of agents with independent phases arrive.
 *
 * The beats are unsigned and come from one test address, so this harness
 * turns authentication and both rate limits off: it measures detection
 * (bench/run.sh measures authentication cost and throughput separately).
 */
#include <errno.h>
#include <sched.h>
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <linux/if_link.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "vigil/logic.h"
#include "tg.h"
#include "bench.h"
#include "bench.skel.h"
#include "vigil.skel.h"
#include "common.h"
#include "common/instance.h"
#include "common/log.h"
#include "common/registry.h"
#include "common/event.h"
#include "common/util.h"

struct agent_seen {
	__u64 suspect_late_ns; /* detected - deadline; valid when n_suspect */
	__u64 dead_late_ns;
	__u8 n_suspect, n_dead, early;
};

struct run {
	struct vg_maps m;
	struct vigil_bpf *skel;
	struct bench_bpf *drv;
	__u32 n, interval_ms, multiplier, dead_misses;
	struct agent_seen *seen; /* by agent id - 1 */
	__u64 events, bad_events, dup_seq, max_seq;
	__u64 *seq_bits;
	__u64 *lag;              /* delivery lag of SUSPECT and DEAD events */
	size_t n_lag;
	__u64 last_dead_read_ns; /* when the consumer read the last DEAD */
	volatile int stop;
	__u64 health_events;     /* MONITOR_BEHIND/CAUGHT_UP */
};

static int on_event(void *ctx, void *data, size_t len)
{
	struct run *r = ctx;
	const struct vigil_event *e = data;
	__u64 now = vg_mono_ns(), deadline;
	struct agent_seen *a;

	if (len < sizeof(*e))
		return 0;
	if (vg_kind_is_monitor(e->kind)) {
		r->health_events++; /* the monitor's own health, not an agent's */
		return 0;
	}
	r->events++;
	if (e->event_seq <= r->max_seq) {
		__u64 bit = 1ULL << (e->event_seq % 64);

		if (r->seq_bits[e->event_seq / 64] & bit)
			r->dup_seq++;
		r->seq_bits[e->event_seq / 64] |= bit;
	}
	if (e->agent_id == (__u64)r->n + 1)
		return 0; /* the canary's own up, and its end after the run */
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
		r->lag[r->n_lag++ % (2 * (size_t)r->n)] = now - e->detected_ns;
	} else if (e->kind == VIGIL_EV_DEAD) {
		deadline += (__u64)r->dead_misses * e->interval_ms * VIGIL_NSEC_PER_MSEC;
		a->n_dead++;
		a->early |= e->detected_ns < deadline;
		a->dead_late_ns = e->detected_ns - deadline;
		r->lag[r->n_lag++ % (2 * (size_t)r->n)] = now - e->detected_ns;
		r->last_dead_read_ns = now;
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

struct pct {
	double p50, p99, max; /* ms */
	size_t n;
};

static struct pct percentiles(const char *what, __u64 *v, size_t n)
{
	struct pct p = { .n = n };

	if (!n) {
		printf("%s: none\n", what);
		return p;
	}
	p.p50 = bc_quantile(v, n, 0.5) / 1e6;
	p.p99 = bc_quantile(v, n, 0.99) / 1e6;
	p.max = v[n - 1] / 1e6;
	printf("%-26s p50 %8.3f ms   p99 %8.3f ms   max %8.3f ms   (n=%zu)\n", what, p.p50, p.p99,
	       p.max, n);
	return p;
}

/* Bytes the kernel charges for a map, from /proc fdinfo. */
static __u64 memlock_of(int fd)
{
	char path[64], line[256];
	__u64 total = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	f = fopen(path, "r");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		unsigned long long v;

		if (sscanf(line, "memlock: %llu", &v) == 1)
			total += v;
	}
	fclose(f);
	return total;
}

static void sleep_until(__u64 t)
{
	struct timespec ts = { .tv_sec = t / VIGIL_NSEC_PER_SEC, .tv_nsec = t % VIGIL_NSEC_PER_SEC };

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "agents", required_argument, NULL, 'n' },
		{ "interval-ms", required_argument, NULL, 'i' },
		{ "rounds", required_argument, NULL, 'r' },
		{ "tick-us", required_argument, NULL, 't' },
		{ "spread", required_argument, NULL, 's' },
		{ "ringbuf-mb", required_argument, NULL, 'R' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	struct run r = { .n = 100000, .interval_ms = 1000, .multiplier = 3, .dead_misses = 2 };
	struct vigil_beat_info bi = {};
	struct vigil_beat beat;
	struct vg_load_opts o;
	struct wheel_state ws0 = {}, ws1 = {};
	struct vigil_stats st;
	__u32 rounds = 5, tick_us = 1000, hint = 0, zero = 0, spread_pct = 80, ringbuf_mb = 64;
	__u64 t0, t_reg, t_beat_start, t_last_beat, wait_until, win0 = 0, win1 = 0, late_rounds = 0;
	__u64 mem_agent = 0, mem_fixed = 0, mem_ring = 0;
	double sweeper_pct = 0, visits_per_s = 0, round_s[100] = {};
	__u8 frame[TG_FRAME_LEN];
	pthread_t thr;
	int opt, prog_fd, vigil_fd, failed = 0, json = 0;
	struct pct ps = {}, pd = {}, pl = {};
	size_t missing = 0, twice = 0, early = 0;

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
		case 's':
			if (vg_parse_u32(optarg, "--spread", 1, 100, &spread_pct))
				return 2;
			break;
		case 'R':
			if (vg_parse_u32(optarg, "--ringbuf-mb", 1, 1024, &ringbuf_mb) ||
			    (ringbuf_mb & (ringbuf_mb - 1))) {
				fprintf(stderr, "--ringbuf-mb: a power of two from 1 to 1024\n");
				return 2;
			}
			break;
		case 'j':
			json = 1;
			break;
		default:
			fprintf(stderr, "Usage: vigil-scale [--agents N] [--interval-ms N] [--rounds N] "
					"[--tick-us N] [--spread PCT] [--ringbuf-mb N] [--json]\n");
			return opt == 'h' ? 0 : 2;
		}
	}
	vg_log_hook_libbpf();
	vg_load_opts_default(&o);
	o.pin_root = NULL;
	o.iface = NULL;
	o.max_agents = r.n + 1; /* and the canary */
	o.tick_ns = (__u64)tick_us * 1000;
	o.ringbuf_bytes = ringbuf_mb << 20;
	o.cfg.dead_misses = r.dead_misses;
	o.cfg.auth_required = 0; /* see the comment at the top */
	o.cfg.source_pps = 0;
	o.cfg.rate_burst = 0;
	if (vg_instance_load(&o, &r.m, &r.skel))
		return 1;
	r.drv = bench_bpf__open_and_load();
	if (!r.drv) {
		fprintf(stderr, "loading bench.bpf.o failed: %s\n", strerror(errno));
		return 1;
	}
	vigil_fd = bpf_program__fd(r.skel->progs.vigil_xdp);
	if (bpf_map_update_elem(bpf_map__fd(r.drv->maps.fp_target), &zero, &vigil_fd, BPF_ANY)) {
		fprintf(stderr, "tail-call target: %s\n", strerror(errno));
		return 1;
	}
	r.drv->bss->drv_first_id = 1;
	prog_fd = bpf_program__fd(r.drv->progs.beat_driver);
	/* BPF_PROG_TEST_RUN with repeat > 1 swaps the program into the XDP
	 * dispatcher and out again, which costs ~15 ms per call here. A program
	 * attached to an interface stays in the dispatcher, so attach the driver
	 * (generic mode) to the loopback of a private, unnamed network namespace
	 * that vanishes with this process and carries no traffic. */
	if (unshare(CLONE_NEWNET) ||
	    bpf_xdp_attach(1 /* lo */, prog_fd, XDP_FLAGS_SKB_MODE, NULL))
		fprintf(stderr, "note: could not keep the beat driver in the XDP dispatcher (%s); "
				"each BPF_PROG_TEST_RUN call will be slow\n", strerror(errno));

	r.seen = calloc(r.n, sizeof(*r.seen));
	r.max_seq = (__u64)r.n * 4;
	r.seq_bits = calloc(r.max_seq / 64 + 1, sizeof(__u64));
	r.lag = calloc(2 * (size_t)r.n, sizeof(__u64));
	if (!r.seen || !r.seq_bits || !r.lag)
		return 1;
	if (pthread_create(&thr, NULL, consumer, &r))
		return 1;

	printf("# vigil-scale: %u agents, interval %u ms, multiplier %u, dead after %u more, "
	       "tick %u us, %u beat rounds spread over %u %% of the interval\n", r.n, r.interval_ms,
	       r.multiplier, r.dead_misses, tick_us, rounds, spread_pct);
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
	{
		/* The canary (agent n + 1) keeps beating while the others have
		 * stopped: the monitor's evidence that its receive path is current
		 * (docs/design.md). Without it, every deadline waits the hold
		 * bound, as in a whole-fleet failure (the mass-failure section). */
		struct vg_agent_def d;

		vg_agent_def_default(&d, r.n + 1);
		d.interval_min_ms = 1;
		d.interval_max_ms = 600000;
		if (vg_agent_add(&r.m, &d, &hint)) {
			fprintf(stderr, "registering the canary failed\n");
			return 1;
		}
	}
	t_reg = vg_mono_ns();
	printf("registered %u agents and a canary in %.2f s\n", r.n, (t_reg - t0) / 1e9);
	{
		const int per_agent[] = { r.m.agents, r.m.info, r.m.index, r.m.links, r.m.auth,
					  r.m.inbox };
		const int fixed[] = { r.m.buckets, r.m.wheel, r.m.config, r.m.globals, r.m.stats,
				      r.m.meta, r.m.groups, r.m.sources, r.m.allow };

		for (size_t i = 0; i < sizeof(per_agent) / sizeof(per_agent[0]); i++)
			mem_agent += memlock_of(per_agent[i]);
		for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
			mem_fixed += memlock_of(fixed[i]);
		mem_ring = memlock_of(r.m.events);
		printf("map memory: %.0f bytes per agent (agents, index, wheel links, keys, replay "
		       "windows, inbox), %.1f MiB fixed (wheel, source table, ...), %.0f MiB ring "
		       "buffer\n", (double)mem_agent / r.n, mem_fixed / 1048576.0,
		       mem_ring / 1048576.0);
	}

	bc_frame_template(frame, htonl(0xc6120002), htonl(0xc6120001), VIGIL_DEFAULT_PORT);
	/* The first round takes every agent NEW -> ALIVE (an UP event each) and
	 * can take a few seconds at a million agents: when more rounds follow,
	 * its beats announce ten intervals, so nobody misses a deadline before
	 * the second round. */
	bi.interval_ms = rounds > 1 ? r.interval_ms * 10 : r.interval_ms;
	bi.incarnation = 1;
	vigil_beat_encode(&beat, &bi);
	memcpy(frame + TG_BEAT_OFF, &beat, sizeof(beat));
	t_beat_start = vg_mono_ns() + 100 * VIGIL_NSEC_PER_MSEC;
	for (__u32 round = 0; round < rounds; round++) {
		__u64 round_start = t_beat_start + (__u64)round * r.interval_ms * VIGIL_NSEC_PER_MSEC;
		__u64 spread = (__u64)r.interval_ms * VIGIL_NSEC_PER_MSEC * spread_pct / 100;
		__u32 chunk = r.n / 1000 ? r.n / 1000 : 1;

		if (round == 1) {
			/* Time the other rounds from the first one's end; from now on
			 * the beats announce the real interval. */
			t_beat_start = vg_mono_ns() - (__u64)r.interval_ms * VIGIL_NSEC_PER_MSEC;
			round_start = vg_mono_ns();
			bi.interval_ms = r.interval_ms;
			vigil_beat_encode(&beat, &bi);
			memcpy(frame + TG_BEAT_OFF, &beat, sizeof(beat));
		}
		if (vg_mono_ns() > round_start + VIGIL_NSEC_PER_MSEC)
			late_rounds++;
		sleep_until(round_start);
		if (round == (rounds > 2 ? 2 : 1)) {
			bpf_map_lookup_elem(r.m.wheel, &zero, &ws0);
			win0 = vg_mono_ns();
		}
		for (__u32 k = 0; k < r.n; k += chunk) {
			LIBBPF_OPTS(bpf_test_run_opts, t, .data_in = frame, .data_size_in = sizeof(frame));

			sleep_until(round_start + spread * k / r.n);
			t.repeat = k + chunk <= r.n ? chunk : r.n - k;
			r.drv->bss->drv_next = k;
			r.drv->bss->drv_seq = round + 1;
			if (bpf_prog_test_run_opts(prog_fd, &t) || t.retval != XDP_DROP) {
				vg_stats_read(&r.m, &st);
				fprintf(stderr, "beats for agents %u.. not consumed (retval %u, passed %llu)\n",
					k + 1, t.retval, (unsigned long long)st.passed);
				return 1;
			}
		}
		if (round < 100)
			round_s[round] = (vg_mono_ns() - round_start) / 1e9;
		if (!json)
			printf("beat round %u: %u beats in %.2f s\n", round + 1, r.n, round_s[round]);
	}
	t_last_beat = vg_mono_ns();
	if (rounds > 1) {
		/* Everyone beats until one interval after the last round began. */
		sleep_until(t_beat_start + (__u64)rounds * r.interval_ms * VIGIL_NSEC_PER_MSEC);
		bpf_map_lookup_elem(r.m.wheel, &zero, &ws1);
		win1 = vg_mono_ns();
		sweeper_pct = 100.0 * (double)(ws1.busy_ns - ws0.busy_ns) / (double)(win1 - win0);
		visits_per_s = (double)(ws1.visits - ws0.visits) * 1e9 / (double)(win1 - win0);
		printf("sweeper while all agents beat: %.2f %% of one CPU (%.0f visits/s, %.0f ticks/s)\n",
		       sweeper_pct, visits_per_s, (double)(ws1.runs - ws0.runs) * 1e9 / (double)(win1 - win0));
	}
	vg_stats_read(&r.m, &st);
	if (st.beats != (__u64)r.n * rounds) { /* the canary starts below */
		fprintf(stderr, "vigil accepted %llu beats, expected %llu\n",
			(unsigned long long)st.beats, (unsigned long long)r.n * rounds);
		failed = 1;
	}
	/* Everyone stops now: wait past the last DEAD deadline, plus slack. */
	wait_until = t_last_beat +
		     (__u64)(r.multiplier + r.dead_misses) * r.interval_ms * VIGIL_NSEC_PER_MSEC +
		     2 * VIGIL_NSEC_PER_SEC;
	bi.interval_ms = 1;
	vigil_beat_encode(&beat, &bi);
	memcpy(frame + TG_BEAT_OFF, &beat, sizeof(beat));
	for (__u64 cseq = rounds + 1; vg_mono_ns() < wait_until; cseq++) {
		LIBBPF_OPTS(bpf_test_run_opts, t, .data_in = frame, .data_size_in = sizeof(frame));

		r.drv->bss->drv_next = r.n;
		r.drv->bss->drv_seq = cseq;
		bpf_prog_test_run_opts(prog_fd, &t);
		usleep(200);
	}
	r.stop = 1;
	pthread_join(thr, NULL);
	vg_stats_read(&r.m, &st);
	bpf_map_lookup_elem(r.m.wheel, &zero, &ws1);

	{
		__u64 *sl = malloc(r.n * sizeof(__u64)), *dl = malloc(r.n * sizeof(__u64));
		size_t ns = 0, nd = 0, nl = r.n_lag < 2 * (size_t)r.n ? r.n_lag : 2 * (size_t)r.n;

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
		       "event_seq, %llu unexpected; %llu of the monitor's own health\n",
		       (unsigned long long)r.events, (unsigned long long)st.ringbuf_full,
		       (unsigned long long)r.dup_seq, (unsigned long long)r.bad_events,
		       (unsigned long long)r.health_events);
		printf("missed deadlines: %u agents; reported SUSPECT %zu, DEAD %zu; missing %zu, "
		       "twice %zu, early %zu\n", r.n, ns, nd, missing, twice, early);
		ps = percentiles("SUSPECT lateness", sl, ns);
		pd = percentiles("DEAD lateness", dl, nd);
		pl = percentiles("delivery lag (to consumer)", r.lag, nl);
		printf("sweeper: %llu ticks, largest backlog %llu ticks, budget exhausted %llu times\n",
		       (unsigned long long)ws1.runs, (unsigned long long)ws1.max_lag_ticks,
		       (unsigned long long)ws1.budget_exhausted);
		if (late_rounds)
			printf("note: %llu beat round(s) started late: the harness, not vigil, was slow\n",
			       (unsigned long long)late_rounds);
		failed |= missing || twice || early || r.dup_seq || r.bad_events || st.ringbuf_full;
		printf("%s\n", failed ? "RESULT: FAIL" : "RESULT: every missed deadline reported exactly once, none early");
		free(sl);
		free(dl);
	}
	if (json)
		printf("{\"agents\":%u,\"interval_ms\":%u,\"tick_us\":%u,\"rounds\":%u,"
		       "\"register_s\":%.2f,\"mem_per_agent\":%.0f,\"mem_fixed\":%llu,"
		       "\"mem_ringbuf\":%llu,\"sweeper_pct\":%.3f,\"visits_per_s\":%.0f,"
		       "\"suspect\":{\"p50\":%.3f,\"p99\":%.3f,\"max\":%.3f,\"n\":%zu},"
		       "\"dead\":{\"p50\":%.3f,\"p99\":%.3f,\"max\":%.3f,\"n\":%zu},"
		       "\"lag\":{\"p50\":%.3f,\"p99\":%.3f,\"max\":%.3f,\"n\":%zu},"
		       "\"missing\":%zu,\"twice\":%zu,\"early\":%zu,\"ringbuf_full\":%llu,"
		       "\"max_lag_ticks\":%llu,\"late_rounds\":%llu,\"ok\":%s}\n",
		       r.n, r.interval_ms, tick_us, rounds, (t_reg - t0) / 1e9,
		       (double)mem_agent / r.n, (unsigned long long)mem_fixed,
		       (unsigned long long)mem_ring, sweeper_pct, visits_per_s, ps.p50, ps.p99, ps.max,
		       ps.n, pd.p50, pd.p99, pd.max, pd.n, pl.p50, pl.p99, pl.max, pl.n, missing, twice,
		       early, (unsigned long long)st.ringbuf_full,
		       (unsigned long long)ws1.max_lag_ticks, (unsigned long long)late_rounds,
		       failed ? "false" : "true");
	bench_bpf__destroy(r.drv);
	vigil_bpf__destroy(r.skel);
	free(r.seen);
	free(r.seq_bits);
	free(r.lag);
	return failed;
}

// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/*
 * `vigil-bench fastpath`: what one beat costs vigil_xdp, by BPF_PROG_TEST_RUN
 * with a large repeat count (docs/BENCHMARKS.md, section 1).
 *
 * Repeating one packet makes every repeat after the first a duplicate, which
 * vigil refuses after the tag check: that is not the accept path. So each
 * case runs bench.bpf.c's fp_wrap, which copies the next of `repeat`
 * precomputed beats (rising sequences, 4,096 source addresses) into the
 * packet and tail-calls vigil_xdp. The wrapper's own cost is measured with
 * the identical wrapper tail-calling an empty XDP_DROP program (fp_empty),
 * and the result is reported as
 *
 *     floor + (wrapped vigil - wrapped empty)
 *
 * where floor is fp_empty run directly: the figure a direct BPF_PROG_TEST_RUN
 * of vigil_xdp would give if every repeat were a fresh beat.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "vigil/auth.h"
#include "vigil/maps.h"
#include "tg.h"
#include "bench.h"
#include "bench.skel.h"
#include "vigil.skel.h"
#include "common.h"
#include "common/instance.h"
#include "common/log.h"
#include "common/registry.h"
#include "common/util.h"

#define MAX_SOURCES 4096 /* distinct IPv4 sources: 16 agents each at 65,536 agents */

struct fp {
	struct bench_bpf *b;
	struct vigil_bpf *v;
	struct vg_maps m;
	struct fp_entry *table; /* mmap of fp_table */
	struct vigil_key *keys;
	__u32 repeat, runs, agents;
	__u64 seq_base;
	__u32 retval;
	__u8 frame[TG_FRAME_LEN];
};

static __u32 n_sources(__u32 agents)
{
	return agents < MAX_SOURCES ? agents : MAX_SOURCES;
}

/* Agent i's address: 198.18.16.0 + (i mod sources), within 198.18.16.0/20. */
static __u32 source_of(__u32 agents, __u32 agent_idx)
{
	return htonl(0xc6121000u + agent_idx % n_sources(agents));
}

enum fill_kind { FILL_UNSIGNED, FILL_SIGNED, FILL_UNKNOWN };

/* One fresh beat per repeat: agent i % agents, sequence rising by one per
 * pass over the agents and never reused across runs. */
static void fill(struct fp *f, enum fill_kind kind)
{
	struct vigil_beat_info bi = { .interval_ms = 10, .incarnation = 1 };
	__u8 ip[20];

	memcpy(ip, f->frame + TG_IP_OFF, 20);
	for (__u32 i = 0; i < f->repeat; i++) {
		struct fp_entry *e = &f->table[i];
		__u32 a = i % f->agents;
		struct vigil_beat b;

		bi.agent_id = kind == FILL_UNKNOWN ? (1ULL << 40) + i : a + 1;
		bi.seq = f->seq_base + i / f->agents;
		bi.flags = kind == FILL_SIGNED ? VIGIL_F_MAC : 0;
		vigil_beat_encode(&b, &bi);
		if (kind == FILL_SIGNED)
			vigil_beat_sign(&b, &f->keys[a], 0);
		e->saddr = source_of(f->agents, a);
		memcpy(ip + 12, &e->saddr, 4);
		e->check = bc_ip_csum(ip);
		memcpy(e->beat, &b, sizeof(b));
	}
	f->seq_base += f->repeat / f->agents + 1;
}

/* ns per repeat of one BPF_PROG_TEST_RUN call; the last verdict in *retval. */
static int run_once(struct fp *f, int prog_fd, double *ns)
{
	LIBBPF_OPTS(bpf_test_run_opts, t, .data_in = f->frame, .data_size_in = TG_FRAME_LEN,
		    .repeat = f->repeat);

	f->b->bss->fp_next = 0;
	if (bpf_prog_test_run_opts(prog_fd, &t)) {
		fprintf(stderr, "fastpath: BPF_PROG_TEST_RUN failed: %s\n", strerror(errno));
		return -1;
	}
	*ns = t.duration;
	f->retval = t.retval;
	return 0;
}

static int set_target(struct fp *f, int prog_fd)
{
	__u32 zero = 0;

	if (bpf_map_update_elem(bpf_map__fd(f->b->maps.fp_target), &zero, &prog_fd, BPF_ANY)) {
		fprintf(stderr, "fastpath: setting the tail-call target failed: %s\n",
			strerror(errno));
		return -1;
	}
	return 0;
}

static int set_auth(struct fp *f, __u32 required)
{
	struct vigil_config cfg;
	__u32 zero = 0;

	if (bpf_map_lookup_elem(f->m.config, &zero, &cfg))
		return -1;
	cfg.auth_required = required;
	return bpf_map_update_elem(f->m.config, &zero, &cfg, BPF_ANY);
}

struct series {
	const char *name;
	double v[64];
	int n;
	double min, median;
	__u64 counted, expected; /* what vigil counted for the case, and should have */
	const char *counter;
	__u32 retval;            /* verdict of the last repeat */
};

static void summarize(struct series *s)
{
	double tmp[64];

	memcpy(tmp, s->v, sizeof(double) * s->n);
	s->min = bc_quantile_d(tmp, s->n, 0);
	s->median = bc_quantile_d(tmp, s->n, 0.5);
}

/* Run `runs` times with the given fill; values are floor + (run - wrapper). */
static int measure_case(struct fp *f, struct series *s, enum fill_kind kind, double floor_ns,
			double wrap_ns)
{
	int prog = bpf_program__fd(f->b->progs.fp_wrap);
	struct vigil_stats st0, st1;
	double ns;

	/* Warm-up: first beats (NEW -> ALIVE), caches, the LRU of sources. */
	fill(f, kind);
	if (run_once(f, prog, &ns))
		return -1;
	vg_stats_read(&f->m, &st0);
	for (__u32 r = 0; r < f->runs; r++) {
		fill(f, kind);
		if (run_once(f, prog, &ns))
			return -1;
		s->v[s->n++] = floor_ns + ns - wrap_ns;
	}
	vg_stats_read(&f->m, &st1);
	s->expected = (__u64)f->repeat * f->runs;
	s->retval = f->retval;
	if (kind == FILL_UNKNOWN) {
		s->counted = st1.unknown_agent - st0.unknown_agent;
		s->counter = "unknown_agent";
	} else {
		s->counted = st1.beats - st0.beats;
		s->counter = "beats";
	}
	summarize(s);
	return 0;
}

int cmd_fastpath(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "runs", required_argument, NULL, 'r' },
		{ "repeat", required_argument, NULL, 'n' },
		{ "agents", required_argument, NULL, 'a' },
		{ "json", no_argument, NULL, 'j' },
		{ "source-pps", required_argument, NULL, 's' },
		{ "rate-burst", required_argument, NULL, 'b' },
		{}
	};
	__u32 source_pps = 100000, rate_burst = 8;
	struct fp f = { .runs = 7, .repeat = 1u << 20, .agents = 65536, .seq_base = 1 };
	struct series floor_s = { .name = "empty program (floor)" },
		      wrap_s = { .name = "wrapper + tail call to empty" },
		      known = { .name = "known agent, no auth" },
		      unknown = { .name = "unknown agent" },
		      authd = { .name = "known agent, authenticated" },
		      acked = { .name = "beat with acknowledgement" };
#ifdef VIGIL_AUTH_ACK
	struct series *cases[] = { &known, &unknown, &authd, &acked };
#else
	struct series *cases[] = { &known, &unknown, &authd };
#endif
	struct vg_load_opts o;
	size_t table_bytes;
	int opt, json = 0, ret = 1, failed = 0;
	__u32 hint = 0;
	double ns;

	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'r':
			if (vg_parse_u32(optarg, "--runs", 5, 64, &f.runs))
				return 2;
			break;
		case 'n':
			if (vg_parse_u32(optarg, "--repeat", 65536, 1u << 24, &f.repeat))
				return 2;
			break;
		case 'a':
			if (vg_parse_u32(optarg, "--agents", 1, 1u << 20, &f.agents))
				return 2;
			break;
		case 'j':
			json = 1;
			break;
		case 's':
			if (vg_parse_u32(optarg, "--source-pps", 0, UINT32_MAX, &source_pps))
				return 2;
			break;
		case 'b':
			if (vg_parse_u32(optarg, "--rate-burst", 0, UINT32_MAX, &rate_burst))
				return 2;
			break;
		default:
			fprintf(stderr, "Usage: vigil-bench fastpath [--runs N] [--repeat N] "
					"[--agents N] [--json]\n");
			return 2;
		}
	}
	bc_frame_template(f.frame, htonl(0xc6121000), htonl(0xc6120001), VIGIL_DEFAULT_PORT);

	f.b = bench_bpf__open();
	if (!f.b)
		return 1;
	bpf_map__set_max_entries(f.b->maps.fp_table, f.repeat);
	if (bench_bpf__load(f.b)) {
		fprintf(stderr, "fastpath: loading bench.bpf.o failed: %s\n", strerror(errno));
		goto out;
	}
	f.b->data->fp_n = f.repeat;
	memcpy(f.b->bss->fp_hdr, f.frame, TG_BEAT_OFF);
	table_bytes = (size_t)f.repeat * sizeof(struct fp_entry);
	f.table = mmap(NULL, table_bytes, PROT_READ | PROT_WRITE, MAP_SHARED,
		       bpf_map__fd(f.b->maps.fp_table), 0);
	if (f.table == MAP_FAILED) {
		fprintf(stderr, "fastpath: mmap of fp_table failed: %s\n", strerror(errno));
		f.table = NULL;
		goto out;
	}

	/* vigil, loaded as `vigil run` would (defaults: auth required, replay
	 * window 64, agent rate x4 burst 8, 100k pps per source) but attached
	 * nowhere: BPF_PROG_TEST_RUN drives it. */
	vg_load_opts_default(&o);
	o.pin_root = NULL;
	o.iface = NULL;
	o.max_agents = f.agents;
	o.cfg.source_pps = source_pps;
	o.cfg.rate_burst = rate_burst;
	if (vg_instance_load(&o, &f.m, &f.v))
		goto out;
	f.keys = calloc(f.agents, sizeof(*f.keys));
	if (!f.keys)
		goto out;
	for (__u32 i = 0; i < f.agents; i++) {
		struct vg_agent_def d;
		int err;

		vg_agent_def_default(&d, i + 1);
		/* Beats announce 10 ms; with a multiplier of 100 the deadline is
		 * 1 s, longer than any pause between runs, so no agent goes
		 * SUSPECT while we refill the table. */
		d.interval_min_ms = 10;
		d.interval_max_ms = 1000;
		d.multiplier = 100;
		if (getrandom(&f.keys[i], sizeof(f.keys[i]), 0) != sizeof(f.keys[i]))
			goto out;
		d.auth.key[0] = f.keys[i];
		d.auth.valid = 1;
		err = vg_agent_add(&f.m, &d, &hint);
		if (err) {
			fprintf(stderr, "fastpath: registering agent %u: %s\n", i + 1, strerror(-err));
			goto out;
		}
	}

	/* Floor: the empty program, run directly. */
	for (__u32 r = 0; r <= f.runs; r++) {
		if (run_once(&f, bpf_program__fd(f.b->progs.fp_empty), &ns))
			goto out;
		if (r)
			floor_s.v[floor_s.n++] = ns; /* the first run warms up */
	}
	summarize(&floor_s);
	/* The wrapper's own cost: same wrapper, tail call to the empty program. */
	if (set_target(&f, bpf_program__fd(f.b->progs.fp_empty)))
		goto out;
	fill(&f, FILL_SIGNED);
	for (__u32 r = 0; r <= f.runs; r++) {
		if (run_once(&f, bpf_program__fd(f.b->progs.fp_wrap), &ns))
			goto out;
		if (r)
			wrap_s.v[wrap_s.n++] = ns;
	}
	summarize(&wrap_s);

	if (set_target(&f, bpf_program__fd(f.v->progs.vigil_xdp)))
		goto out;
	if (set_auth(&f, 0) ||
	    measure_case(&f, &known, FILL_UNSIGNED, floor_s.median, wrap_s.median) ||
	    measure_case(&f, &unknown, FILL_UNKNOWN, floor_s.median, wrap_s.median) ||
	    set_auth(&f, 1) ||
	    measure_case(&f, &authd, FILL_SIGNED, floor_s.median, wrap_s.median))
		goto out;
#ifdef VIGIL_AUTH_ACK
	/* Acknowledgements: every agent's group answers valid beats (vigil
	 * turns the beat into a signed ack and returns XDP_TX). */
	for (__u32 i = 0; i < f.agents; i++) {
		struct agent_auth a = { .key = { f.keys[i] }, .valid = 1, .flags = VIGIL_AUTH_ACK };
		struct agent_slot as;
		__u32 slot;

		if (vg_agent_get(&f.m, i + 1, &slot, &as) ||
		    (a.group_id = vigil_group_id("default", VIGIL_GROUP_LEN),
		     vg_agent_set_auth(&f.m, slot, &a))) {
			fprintf(stderr, "fastpath: turning acknowledgements on for agent %u failed\n", i + 1);
			goto out;
		}
	}
	if (measure_case(&f, &acked, FILL_SIGNED, floor_s.median, wrap_s.median))
		goto out;
	if (acked.retval != XDP_TX) {
		fprintf(stderr, "fastpath: with acknowledgements on, vigil_xdp returned %u, not XDP_TX\n",
			acked.retval);
		failed = 1;
	}
#endif

	if (json) {
		printf("{\"runs\":%u,\"repeat\":%u,\"agents\":%u,\"sources\":%u,"
		       "\"source_pps\":%u,\"rate_burst\":%u,\"floor\":{\"min\":%.1f,\"median\":%.1f},"
		       "\"wrapper\":{\"min\":%.1f,\"median\":%.1f},\"cases\":[",
		       f.runs, f.repeat, f.agents, n_sources(f.agents),
		       source_pps, rate_burst, floor_s.min, floor_s.median, wrap_s.min, wrap_s.median);
		for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
			printf("%s{\"name\":\"%s\",\"min\":%.1f,\"median\":%.1f,\"counter\":\"%s\","
			       "\"counted\":%llu,\"expected\":%llu}", i ? "," : "", cases[i]->name,
			       cases[i]->min, cases[i]->median, cases[i]->counter,
			       (unsigned long long)cases[i]->counted,
			       (unsigned long long)cases[i]->expected);
		printf("]}\n");
	} else {
		printf("# fast path: BPF_PROG_TEST_RUN, %u runs x %u repeats, %u agents from %u "
		       "sources, source_pps %u, rate_burst %u\n", f.runs, f.repeat, f.agents,
		       n_sources(f.agents), source_pps, rate_burst);
		printf("%-34s %8s %8s\n", "case", "min ns", "median");
		printf("%-34s %8.1f %8.1f\n", floor_s.name, floor_s.min, floor_s.median);
		printf("%-34s %8.1f %8.1f\n", wrap_s.name, wrap_s.min, wrap_s.median);
		for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
			printf("%-34s %8.1f %8.1f   (%s +%llu of %llu)\n", cases[i]->name,
			       cases[i]->min, cases[i]->median, cases[i]->counter,
			       (unsigned long long)cases[i]->counted,
			       (unsigned long long)cases[i]->expected);
#ifndef VIGIL_AUTH_ACK
		printf("%-34s %8s %8s   n/a: acknowledgements not implemented (issue 4)\n",
		       "beat with acknowledgement", "-", "-");
#endif
	}
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (cases[i]->counted != cases[i]->expected) {
			fprintf(stderr, "fastpath: %s: vigil counted %llu %s, expected %llu\n",
				cases[i]->name, (unsigned long long)cases[i]->counted,
				cases[i]->counter, (unsigned long long)cases[i]->expected);
			failed = 1;
		}
	ret = failed;
out:
	if (f.table)
		munmap(f.table, (size_t)f.repeat * sizeof(struct fp_entry));
	free(f.keys);
	if (f.v)
		vigil_bpf__destroy(f.v);
	bench_bpf__destroy(f.b);
	return ret;
}

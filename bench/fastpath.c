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
 *
 * Absolute figures move a lot between machines and from minute to minute on
 * a shared one, so every case is also a ratio to a reference measured on
 * the same beats in the same round: fp_reference, the least a beat monitor
 * must do (parse, one array lookup by agent id, store last-seen time and
 * sequence). Each run of a case is paired with a run of the wrapper alone
 * and one of the reference, in alternating order; the ratio's median, min
 * and max are over those pairs.
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
	struct bpf_program *target;  /* vigil_xdp, or a variant's (--variant) */
	struct bpf_object *variant;
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

/* Authentication required or not, and the per-source limit. */
static int set_config(struct fp *f, __u32 auth_required, __u32 source_pps)
{
	struct vigil_config cfg;
	__u32 zero = 0;

	if (bpf_map_lookup_elem(f->m.config, &zero, &cfg))
		return -1;
	cfg.auth_required = auth_required;
	cfg.source_pps = source_pps;
	return bpf_map_update_elem(f->m.config, &zero, &cfg, BPF_ANY);
}

#define MAX_RUNS 320 /* --runs at most 64, for each of up to 5 cases */

struct series {
	const char *name;
	double v[MAX_RUNS];
	double ratio[MAX_RUNS]; /* v / the reference's figure in the same round */
	int n;
	double min, median, max;
	double rmin, rmedian, rmax;
	__u64 counted, expected; /* what vigil counted for the case, and should have */
	const char *counter;
	__u32 retval;            /* verdict of the last repeat */
};

static void quantiles(const double *v, int n, double *min, double *median, double *max)
{
	double tmp[MAX_RUNS];

	memcpy(tmp, v, sizeof(double) * n);
	*min = bc_quantile_d(tmp, n, 0);
	*median = bc_quantile_d(tmp, n, 0.5);
	*max = bc_quantile_d(tmp, n, 1);
}

static void summarize(struct series *s)
{
	quantiles(s->v, s->n, &s->min, &s->median, &s->max);
	quantiles(s->ratio, s->n, &s->rmin, &s->rmedian, &s->rmax);
}

static void add(struct series *s, double v, double ratio)
{
	if (s->n < MAX_RUNS) {
		s->ratio[s->n] = ratio;
		s->v[s->n++] = v;
	}
}

/* ns per repeat of the wrapper with `target` in fp_target. */
static int run_wrapped(struct fp *f, struct bpf_program *target, double *ns)
{
	return set_target(f, bpf_program__fd(target)) ||
	       run_once(f, bpf_program__fd(f->b->progs.fp_wrap), ns);
}

/* Run `runs` rounds with the given fill. A round: fresh beats, the wrapper
 * alone, then vigil and the reference on the same beats (in alternating
 * order). Figures are floor + (wrapped run - wrapper alone); the ratio is
 * vigil's figure over the reference's. The reference's figures go to ref
 * (but for unknown agents, which it mostly refuses), the wrapper's to wrap. */
static int measure_case(struct fp *f, struct series *s, enum fill_kind kind, double floor_ns,
			struct series *ref, struct series *wrap)
{
	struct bpf_program *vigil = f->target, *refp = f->b->progs.fp_reference;
	struct vigil_stats st0, st1;
	__u64 ref0;
	double w, v, r;

	/* Warm-up: first beats (NEW -> ALIVE), caches, the LRU of sources. */
	fill(f, kind);
	if (run_wrapped(f, vigil, &v) || run_wrapped(f, refp, &r))
		return -1;
	vg_stats_read(&f->m, &st0);
	ref0 = f->b->bss->ref_beats;
	for (__u32 i = 0; i < f->runs; i++) {
		fill(f, kind);
		if (run_wrapped(f, f->b->progs.fp_empty, &w))
			return -1;
		for (int k = 0; k < 2; k++) {
			int is_ref = (k == 0) == (i & 1); /* odd rounds: the reference first */

			if (run_wrapped(f, is_ref ? refp : vigil, is_ref ? &r : &v))
				return -1;
			if (!is_ref)
				s->retval = f->retval;
		}
		v = floor_ns + v - w;
		r = floor_ns + r - w;
		/* The wrapper alone ran slower than a wrapped program: another
		 * task took the CPU in this round, which then says nothing (and
		 * its ratio would not even be a number). */
		if (v <= 0 || r <= 0) {
			fprintf(stderr, "fastpath: %s: round %u left out (wrapper %.0f ns, wrapped %.0f "
				"and %.0f ns): the CPU was taken meanwhile\n", s->name, i, w, v - floor_ns + w,
				r - floor_ns + w);
			continue;
		}
		add(s, v, v / r);
		if (kind != FILL_UNKNOWN)
			add(ref, r, 1);
		add(wrap, w, 1);
	}
	if (!s->n) {
		fprintf(stderr, "fastpath: %s: every round was disturbed; run it on a quieter machine\n",
			s->name);
		return -1;
	}
	vg_stats_read(&f->m, &st1);
	s->expected = (__u64)f->repeat * f->runs;
	/* Unknown agents: the reference refuses those outside its table. */
	if (kind != FILL_UNKNOWN && f->b->bss->ref_beats - ref0 != s->expected) {
		fprintf(stderr, "fastpath: the reference took %llu beats of %llu\n",
			(unsigned long long)(f->b->bss->ref_beats - ref0),
			(unsigned long long)s->expected);
		return -1;
	}
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

/* "NAME":{"min":..,"median":..,"max":..}, (without NAME: the fields only),
 * with the ratio to the reference when `ratio`. */
static void json_series(const char *name, const struct series *s, int ratio)
{
	if (name)
		printf("\"%s\":{", name);
	printf("\"min\":%.1f,\"median\":%.1f,\"max\":%.1f", s->min, s->median, s->max);
	if (ratio)
		printf(",\"ratio\":{\"min\":%.3f,\"median\":%.3f,\"max\":%.3f}", s->rmin,
		       s->rmedian, s->rmax);
	printf(name ? "}," : ",");
}

/*
 * --variant OBJ: measure another build of bpf/vigil.bpf.c (bench/profile.sh
 * builds them, each with one part of the beat path taken out) on the state
 * of the instance loaded here: its vigil_xdp is loaded with every map reused
 * from that instance (internal maps, whose names carry the object's name,
 * by their section suffix), and the cases tail-call it instead.
 */
static int load_variant(struct fp *f, const char *path)
{
	struct bpf_program *p;
	struct bpf_map *m;

	f->variant = bpf_object__open_file(path, NULL);
	if (!f->variant) {
		fprintf(stderr, "fastpath: opening %s failed: %s\n", path, strerror(errno));
		return -1;
	}
	bpf_object__for_each_map(m, f->variant) {
		const char *name = bpf_map__name(m), *dot = strchr(name, '.');
		struct bpf_map *v = bpf_object__find_map_by_name(f->v->obj, name), *w;

		if (!v && dot)
			bpf_object__for_each_map(w, f->v->obj) {
				const char *wd = strchr(bpf_map__name(w), '.');

				if (wd && !strcmp(wd, dot))
					v = w;
			}
		if (!v || bpf_map__reuse_fd(m, bpf_map__fd(v))) {
			fprintf(stderr, "fastpath: %s: map %s has no counterpart in vigil\n", path, name);
			return -1;
		}
	}
	bpf_object__for_each_program(p, f->variant)
		bpf_program__set_autoload(p, !strcmp(bpf_program__name(p), "vigil_xdp"));
	if (bpf_object__load(f->variant)) {
		fprintf(stderr, "fastpath: loading %s failed: %s\n", path, strerror(errno));
		return -1;
	}
	f->target = bpf_object__find_program_by_name(f->variant, "vigil_xdp");
	return f->target ? 0 : -1;
}

/* "NAME":{"xlated_insns":..,"jited_bytes":..,"verified_insns":..}: a
 * program's size as loaded, as the verifier walked it, and as JITed. */
static void json_prog_size(const char *name, int fd)
{
	struct bpf_prog_info info = {};
	__u32 len = sizeof(info);

	if (bpf_obj_get_info_by_fd(fd, &info, &len))
		memset(&info, 0, sizeof(info));
	printf("\"%s\":{\"xlated_insns\":%u,\"jited_bytes\":%u,\"verified_insns\":%u}", name,
	       info.xlated_prog_len / 8, info.jited_prog_len, info.verified_insns);
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
		{ "variant", required_argument, NULL, 'V' },
		{}
	};
	__u32 source_pps = 100000, rate_burst = 8;
	struct fp f = { .runs = 7, .repeat = 1u << 20, .agents = 65536, .seq_base = 1 };
	struct series floor_s = { .name = "empty program (floor)" },
		      wrap_s = { .name = "wrapper + tail call to empty" },
		      ref_s = { .name = "reference monitor" },
		      known = { .name = "known agent, no auth" },
		      unknown = { .name = "unknown agent" },
		      authd = { .name = "known agent, authenticated" },
		      acked = { .name = "beat with acknowledgement" },
		      nosrc = { .name = "known agent, no auth, per-source limit off" };
#ifdef VIGIL_AUTH_ACK
	struct series *cases[] = { &known, &unknown, &authd, &nosrc, &acked };
#else
	struct series *cases[] = { &known, &unknown, &authd, &nosrc };
#endif
	struct vg_load_opts o;
	const char *variant = NULL;
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
		case 'V':
			variant = optarg;
			break;
		case 'b':
			if (vg_parse_u32(optarg, "--rate-burst", 0, UINT32_MAX, &rate_burst))
				return 2;
			break;
		default:
			fprintf(stderr, "Usage: vigil-bench fastpath [--runs N] [--repeat N] [--variant OBJ] "
					"[--agents N] [--json]\n");
			return 2;
		}
	}
	bc_frame_template(f.frame, htonl(0xc6121000), htonl(0xc6120001), VIGIL_DEFAULT_PORT);

	f.b = bench_bpf__open();
	if (!f.b)
		return 1;
	bpf_map__set_max_entries(f.b->maps.fp_table, f.repeat);
	bpf_map__set_max_entries(f.b->maps.ref_agents, f.agents);
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
	f.target = f.v->progs.vigil_xdp;
	if (variant && load_variant(&f, variant))
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

	/* The per-source limit's own cost: the known case again without it. */
	if (set_config(&f, 0, source_pps) ||
	    measure_case(&f, &known, FILL_UNSIGNED, floor_s.median, &ref_s, &wrap_s) ||
	    measure_case(&f, &unknown, FILL_UNKNOWN, floor_s.median, &ref_s, &wrap_s) ||
	    set_config(&f, 1, source_pps) ||
	    measure_case(&f, &authd, FILL_SIGNED, floor_s.median, &ref_s, &wrap_s) ||
	    set_config(&f, 0, 0) ||
	    measure_case(&f, &nosrc, FILL_UNSIGNED, floor_s.median, &ref_s, &wrap_s) ||
	    set_config(&f, 1, source_pps))
		goto out;
#ifdef VIGIL_AUTH_ACK
	/* Acknowledgements: every agent's group answers valid beats (vigil
	 * turns the beat into a signed ack and returns XDP_TX). */
	for (__u32 i = 0; i < f.agents; i++) {
		struct agent_auth a = { .key = { f.keys[i] }, .valid = 1, .flags = VIGIL_AUTH_ACK };
		struct vg_agent as;
		__u32 slot;

		if (vg_agent_get(&f.m, i + 1, &slot, &as) ||
		    (a.group_id = vigil_group_id("default", VIGIL_GROUP_LEN),
		     vg_agent_set_auth(&f.m, slot, &a))) {
			fprintf(stderr, "fastpath: turning acknowledgements on for agent %u failed\n", i + 1);
			goto out;
		}
	}
	if (measure_case(&f, &acked, FILL_SIGNED, floor_s.median, &ref_s, &wrap_s))
		goto out;
	if (acked.retval != XDP_TX) {
		fprintf(stderr, "fastpath: with acknowledgements on, vigil_xdp returned %u, not XDP_TX\n",
			acked.retval);
		failed = 1;
	}
#endif

	summarize(&wrap_s);
	summarize(&ref_s);
	if (json) {
		printf("{\"runs\":%u,\"repeat\":%u,\"agents\":%u,\"sources\":%u,"
		       "\"source_pps\":%u,\"rate_burst\":%u,", f.runs, f.repeat, f.agents,
		       n_sources(f.agents), source_pps, rate_burst);
		json_series("floor", &floor_s, 0);
		json_series("wrapper", &wrap_s, 0);
		json_series("reference", &ref_s, 0);
		printf("\"programs\":{");
		json_prog_size("vigil_xdp", bpf_program__fd(f.target));
		putchar(',');
		json_prog_size("fp_reference", bpf_program__fd(f.b->progs.fp_reference));
		printf("},\"cases\":[");
		for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
			printf("%s{\"name\":\"%s\",", i ? "," : "", cases[i]->name);
			json_series(NULL, cases[i], 1);
			printf("\"counter\":\"%s\",\"counted\":%llu,\"expected\":%llu}",
			       cases[i]->counter, (unsigned long long)cases[i]->counted,
			       (unsigned long long)cases[i]->expected);
		}
		printf("]}\n");
	} else {
		printf("# fast path: BPF_PROG_TEST_RUN, %u runs x %u repeats, %u agents from %u "
		       "sources, source_pps %u, rate_burst %u\n", f.runs, f.repeat, f.agents,
		       n_sources(f.agents), source_pps, rate_burst);
		printf("%-34s %8s %8s %8s   %s\n", "case", "min ns", "median", "max",
		       "x reference: median [min, max]");
		printf("%-34s %8.1f %8.1f %8.1f\n", floor_s.name, floor_s.min, floor_s.median,
		       floor_s.max);
		printf("%-34s %8.1f %8.1f %8.1f\n", wrap_s.name, wrap_s.min, wrap_s.median, wrap_s.max);
		printf("%-34s %8.1f %8.1f %8.1f\n", ref_s.name, ref_s.min, ref_s.median, ref_s.max);
		for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
			printf("%-34s %8.1f %8.1f %8.1f   %.2f [%.2f, %.2f]  (%s +%llu of %llu)\n",
			       cases[i]->name, cases[i]->min, cases[i]->median, cases[i]->max,
			       cases[i]->rmedian, cases[i]->rmin, cases[i]->rmax, cases[i]->counter,
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
	bpf_object__close(f.variant);
	if (f.v)
		vigil_bpf__destroy(f.v);
	bench_bpf__destroy(f.b);
	return ret;
}

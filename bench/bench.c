// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/*
 * vigil-bench: the benchmark's helpers that are not traffic (bench/run.sh
 * drives them; docs/BENCHMARKS.md explains the method).
 *
 *   vigil-bench sink --iface IF --pin DIR [--pass|--touch]
 *       attach a counting no-op XDP program (XDP_DROP; XDP_PASS for the
 *       userspace baseline; --touch reads the frame, then drops it) in native
 *       mode; pins DIR/link and DIR/count.
 *       `rm -r DIR` detaches it.
 *   vigil-bench fastpath [--runs N] [--repeat N] [--json]
 *       ns per beat of vigil_xdp through BPF_PROG_TEST_RUN (section 1).
 *   vigil-bench config --pin-root DIR KEY=VALUE...
 *       change vigil_config fields of a running instance (e.g. source_pps).
 *   vigil-bench stats-offset FIELD...
 *       byte offsets of vigil_stats fields, as OFF+OFF for a counter spec.
 *   vigil-bench bpfstats --link PIN --out FILE
 *       the kernel's run-time statistics (BPF_ENABLE_STATS, held only while
 *       this runs) of the XDP program behind a pinned link, from start until
 *       SIGTERM: runs, ns per run, and the program's size, as JSON in FILE.
 */
#include <errno.h>
#include <getopt.h>
#include <net/if.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <linux/if_link.h>
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

/* ------------------------------------------------------------- sink */

static int cmd_sink(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "iface", required_argument, NULL, 'i' },
		{ "pin", required_argument, NULL, 'P' },
		{ "pass", no_argument, NULL, 'p' },
		{ "touch", no_argument, NULL, 't' },
		{}
	};
	const char *iface = NULL, *pin = NULL;
	LIBBPF_OPTS(bpf_link_create_opts, lopts, .flags = XDP_FLAGS_DRV_MODE);
	struct bench_bpf *skel;
	char path[512];
	int pass = 0, opt, ifindex, link_fd, ret = 1;

	while ((opt = getopt_long(argc, argv, "i:", opts, NULL)) != -1) {
		switch (opt) {
		case 'i':
			iface = optarg;
			break;
		case 'P':
			pin = optarg;
			break;
		case 'p':
			pass = 1;
			break;
		case 't':
			pass = 2;
			break;
		default:
			return 2;
		}
	}
	if (!iface || !pin) {
		fprintf(stderr, "Usage: vigil-bench sink --iface IF --pin DIR [--pass|--touch]\n");
		return 2;
	}
	ifindex = (int)if_nametoindex(iface);
	if (!ifindex) {
		fprintf(stderr, "sink: no interface '%s' here\n", iface);
		return 1;
	}
	skel = bench_bpf__open_and_load();
	if (!skel) {
		fprintf(stderr, "sink: loading bench.bpf.o failed: %s\n", strerror(errno));
		return 1;
	}
	link_fd = bpf_link_create(bpf_program__fd(pass == 1 ? skel->progs.sink_pass :
						  pass == 2 ? skel->progs.sink_touch :
							      skel->progs.sink_drop),
				  ifindex, BPF_XDP, &lopts);
	if (link_fd < 0) {
		fprintf(stderr, "sink: attaching XDP (native) to %s failed: %s\n", iface,
			strerror(errno));
		goto out;
	}
	if (vg_ensure_bpffs(pin))
		goto out;
	snprintf(path, sizeof(path), "%s/count", pin);
	if (bpf_map__pin(skel->maps.sink_count, path)) {
		fprintf(stderr, "sink: pinning %s failed: %s\n", path, strerror(errno));
		goto out;
	}
	snprintf(path, sizeof(path), "%s/link", pin);
	if (bpf_obj_pin(link_fd, path)) {
		fprintf(stderr, "sink: pinning %s failed: %s\n", path, strerror(errno));
		snprintf(path, sizeof(path), "%s/count", pin);
		unlink(path);
		goto out;
	}
	ret = 0;
out:
	if (link_fd >= 0)
		close(link_fd);
	bench_bpf__destroy(skel);
	return ret;
}

/* ------------------------------------------------- fields by name */

/* A field of a map value's struct, for the commands that take its name. */
struct field {
	const char *name;
	size_t off;
};

#define FIELDS_END { NULL, 0 }

/* The field called by the first len bytes of name, or NULL. */
static const struct field *field_named(const struct field *fs, const char *name, size_t len)
{
	for (; fs->name; fs++)
		if (strlen(fs->name) == len && !strncmp(name, fs->name, len))
			return fs;
	return NULL;
}

#define F(x) { #x, offsetof(struct vigil_config, x) }
static const struct field config_fields[] = {
	F(dead_misses), F(pass_beats), F(reject_events_per_sec), F(sweep_budget),
	F(auth_required), F(replay_window), F(rate_multiple), F(rate_burst),
	F(source_pps), F(source_burst), FIELDS_END
};
#undef F

#define F(x) { #x, offsetof(struct vigil_stats, x) }
static const struct field stats_fields[] = {
	F(packets), F(beats), F(passed), F(malformed), F(bad_version), F(unknown_agent),
	F(duplicates), F(reordered), F(restarts), F(events), F(ringbuf_full),
	F(queue_full), F(stale_slot), F(not_allowed), F(unauthenticated), F(bad_tag),
	F(replayed), F(over_rate_agent), F(over_rate_source), FIELDS_END
};
#undef F

/* ----------------------------------------------------------- config */

static int cmd_config(int argc, char **argv)
{
	const char *pin_root = NULL;
	struct vigil_config cfg;
	struct vigil_meta meta;
	struct vg_maps m;
	__u32 zero = 0;
	int i = 1;

	if (argc > 2 && !strcmp(argv[1], "--pin-root")) {
		pin_root = argv[2];
		i = 3;
	}
	if (!pin_root || i >= argc) {
		fprintf(stderr, "Usage: vigil-bench config --pin-root DIR FIELD=VALUE...\n");
		return 2;
	}
	if (vg_instance_open(pin_root, &m, &meta))
		return 1;
	if (bpf_map_lookup_elem(m.config, &zero, &cfg)) {
		fprintf(stderr, "config: reading vigil_config failed: %s\n", strerror(errno));
		vg_maps_close(&m);
		return 1;
	}
	for (; i < argc; i++) {
		char *eq = strchr(argv[i], '=');
		const struct field *f = eq ? field_named(config_fields, argv[i], eq - argv[i]) : NULL;
		__u32 v;

		if (!f) {
			fprintf(stderr, "config: '%s' is not FIELD=VALUE of struct vigil_config\n",
				argv[i]);
			vg_maps_close(&m);
			return 2;
		}
		if (vg_parse_u32(eq + 1, f->name, 0, UINT32_MAX, &v)) {
			vg_maps_close(&m);
			return 2;
		}
		memcpy((char *)&cfg + f->off, &v, sizeof(v));
	}
	if (bpf_map_update_elem(m.config, &zero, &cfg, BPF_ANY)) {
		fprintf(stderr, "config: writing vigil_config failed: %s\n", strerror(errno));
		vg_maps_close(&m);
		return 1;
	}
	vg_maps_close(&m);
	return 0;
}

/* Byte offsets of vigil_stats fields, joined with '+', for a counter spec
 * (vigil-trafficgen --count map:PIN/vigil_stats:OFFSETS). */
static int cmd_stats_offset(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		const struct field *f = field_named(stats_fields, argv[i], strlen(argv[i]));

		if (!f) {
			fprintf(stderr, "stats-offset: no field '%s' in struct vigil_stats\n", argv[i]);
			return 2;
		}
		printf("%s%zu", i > 1 ? "+" : "", f->off);
	}
	printf("\n");
	return argc > 1 ? 0 : 2;
}

/* ---------------------------------------------------------- bpfstats */

static volatile sig_atomic_t bpfstats_stop;

static void bpfstats_signal(int sig)
{
	(void)sig;
	bpfstats_stop = 1;
}

static int cmd_bpfstats(int argc, char **argv)
{
	struct bpf_prog_info i0 = {}, i1 = {};
	struct bpf_link_info li = {};
	__u32 len = sizeof(li);
	struct sigaction sa = { .sa_handler = bpfstats_signal };
	const char *link = NULL, *out = NULL;
	int stats_fd, link_fd, prog_fd = -1, ret = 1;
	FILE *f;

	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--link"))
			link = argv[i + 1];
		else if (!strcmp(argv[i], "--out"))
			out = argv[i + 1];
	}
	if (!link || !out) {
		fprintf(stderr, "Usage: vigil-bench bpfstats --link PIN --out FILE\n");
		return 2;
	}
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	/* Counting costs every BPF program two clock reads per run: only for as
	 * long as this holds the fd. */
	stats_fd = bpf_enable_stats(BPF_STATS_RUN_TIME);
	if (stats_fd < 0) {
		fprintf(stderr, "bpfstats: BPF_ENABLE_STATS failed: %s\n", strerror(errno));
		return 1;
	}
	link_fd = bpf_obj_get(link);
	if (link_fd < 0 || bpf_obj_get_info_by_fd(link_fd, &li, &len) ||
	    (prog_fd = bpf_prog_get_fd_by_id(li.prog_id)) < 0) {
		fprintf(stderr, "bpfstats: no program behind %s: %s\n", link, strerror(errno));
		goto out;
	}
	len = sizeof(i0);
	if (bpf_obj_get_info_by_fd(prog_fd, &i0, &len))
		goto out;
	fprintf(stderr, "bpfstats: counting %s, ready\n", i0.name);
	while (!bpfstats_stop)
		pause();
	len = sizeof(i1);
	if (bpf_obj_get_info_by_fd(prog_fd, &i1, &len))
		goto out;
	f = fopen(out, "w");
	if (!f)
		goto out;
	fprintf(f, "{\"prog\":\"%s\",\"run_cnt\":%llu,\"run_time_ns\":%llu,\"ns_per_run\":%.1f,"
		   "\"xlated_insns\":%u,\"jited_bytes\":%u,\"verified_insns\":%u}\n", i1.name,
		(unsigned long long)(i1.run_cnt - i0.run_cnt),
		(unsigned long long)(i1.run_time_ns - i0.run_time_ns),
		i1.run_cnt > i0.run_cnt ? (double)(i1.run_time_ns - i0.run_time_ns) /
					  (double)(i1.run_cnt - i0.run_cnt) : 0.0,
		i1.xlated_prog_len / 8, i1.jited_prog_len, i1.verified_insns);
	ret = fclose(f) ? 1 : 0;
out:
	if (prog_fd >= 0)
		close(prog_fd);
	if (link_fd >= 0)
		close(link_fd);
	close(stats_fd);
	return ret;
}

int cmd_fastpath(int argc, char **argv);

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "Usage: vigil-bench sink|fastpath|config|stats-offset|bpfstats ... "
				"(see bench/bench.c)\n");
		return 2;
	}
	vg_log_hook_libbpf();
	if (!strcmp(argv[1], "sink"))
		return cmd_sink(argc - 1, argv + 1);
	if (!strcmp(argv[1], "config"))
		return cmd_config(argc - 1, argv + 1);
	if (!strcmp(argv[1], "stats-offset"))
		return cmd_stats_offset(argc - 1, argv + 1);
	if (!strcmp(argv[1], "fastpath"))
		return cmd_fastpath(argc - 1, argv + 1);
	if (!strcmp(argv[1], "bpfstats"))
		return cmd_bpfstats(argc - 1, argv + 1);
	fprintf(stderr, "vigil-bench: unknown command '%s'\n", argv[1]);
	return 2;
}

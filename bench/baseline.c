// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/*
 * vigil-baseline: vigil's job done the way a user would without vigil, as
 * the benchmark's comparison point (docs/BENCHMARKS.md, section 2).
 *
 * One process, one UDP socket, recvmmsg() in batches of 64, and the same
 * decisions as the XDP program, made with the same code from include/vigil:
 * vigil_beat_decode, an agent table (hash id -> slot), SipHash-2-4 tag check
 * (vigil_beat_tag_ok), the replay window (vigil_replay_check), the deadline
 * logic (vigil_sweep_eval) on a timing wheel with a 1 ms tick
 * (vigil_wheel_due). Transitions are counted (and printed with --events).
 * It does not rate-limit, keep an allowlist or write an event log: all of
 * that would only make it slower.
 *
 * Counters go to a file (struct baseline_stats, bench/bench.h) that
 * vigil-trafficgen reads while it steps the rate; rcvbuf_drops is the
 * socket's own drop count (SO_MEMINFO, read once per tick).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <linux/sock_diag.h>
#include <unistd.h>
#include "vigil/auth.h"
#include "vigil/logic.h"
#include "vigil/wire.h"
#include "bench.h"
#include "common.h"
#include "common/keys.h"
#include "common/log.h"
#include "common/u64map.h"
#include "common/util.h"

#define BATCH 64
#define WHEEL 65536 /* buckets of 1 ms: as vigil's wheel */
#define TICK_NS VIGIL_NSEC_PER_MSEC

struct slot {
	struct vigil_replay replay;
	struct vigil_key key[2];
	__u64 id;
	__u64 last_seen_ns;
	__u64 seq;
	__u64 beats;
	__u64 due_tick;
	__u32 valid_keys;
	__u32 state;
	__u32 incarnation;
	__u32 interval_ms, interval_min_ms, interval_max_ms, multiplier;
	__u32 next;     /* next slot + 1 in the same bucket */
	__u32 in_wheel;
};

struct baseline {
	struct slot *slots;
	__u32 n;
	struct u64map index; /* agent id -> slot + 1 */
	__u32 buckets[WHEEL];
	__u64 next_tick;
	__u32 dead_misses;
	bool print_events;
	volatile struct baseline_stats *st;
};

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static void event(struct baseline *b, struct slot *s, const char *kind, __u64 now)
{
	b->st->events++;
	if (b->print_events)
		printf("{\"agent_id\":%llu,\"kind\":\"%s\",\"now_ns\":%llu,\"last_seen_ns\":%llu}\n",
		       (unsigned long long)s->id, kind, (unsigned long long)now,
		       (unsigned long long)s->last_seen_ns);
}

static void file_slot(struct baseline *b, __u32 i, __u64 due)
{
	struct slot *s = &b->slots[i];
	__u32 k;

	if (due < b->next_tick)
		due = b->next_tick;
	k = due & (WHEEL - 1);
	s->due_tick = due;
	s->next = b->buckets[k];
	b->buckets[k] = i + 1;
	s->in_wheel = 1;
}

/* The sweeper: as sweep_tick in bpf/wheel.bpf.h, one bucket per elapsed tick. */
static void sweep(struct baseline *b, __u64 now)
{
	__u64 now_tick = now / TICK_NS;

	while (b->next_tick <= now_tick) {
		__u32 k = b->next_tick & (WHEEL - 1), i = b->buckets[k];

		b->buckets[k] = 0;
		b->next_tick++;
		while (i) {
			struct slot *s = &b->slots[i - 1];
			__u32 cur = i - 1;
			__u64 next_ns = 0, horizon = vigil_horizon_ns(s->interval_min_ms, s->multiplier);
			enum vigil_sweep_action act;

			i = s->next;
			s->in_wheel = 0;
			act = vigil_sweep_eval(s->state, s->last_seen_ns, s->interval_ms, s->multiplier,
					       b->dead_misses, now, &next_ns);
			switch (act) {
			case VIGIL_SWEEP_KEEP:
				file_slot(b, cur, vigil_wheel_due(now, next_ns, horizon, TICK_NS));
				break;
			case VIGIL_SWEEP_TO_SUSPECT:
				s->state = VIGIL_AGENT_SUSPECT;
				b->st->suspect++;
				event(b, s, "suspect", now);
				file_slot(b, cur, vigil_wheel_due(now, next_ns, horizon, TICK_NS));
				break;
			case VIGIL_SWEEP_TO_DEAD:
				s->state = VIGIL_AGENT_DEAD;
				b->st->dead++;
				event(b, s, "dead", now);
				break;
			default:
				break;
			}
		}
		b->st->sweeps++;
	}
}

static void handle(struct baseline *b, const __u8 *p, __u32 len, __u64 now)
{
	const struct vigil_beat *beat = (const void *)p;
	struct vigil_beat_info bi;
	enum vigil_replay_verdict rv;
	struct slot *s;
	__u64 pos;
	__u32 prev;

	if (vigil_beat_decode(beat, len, &bi) != VIGIL_BEAT_OK) {
		b->st->malformed++;
		return;
	}
	if (!u64map_get(&b->index, bi.agent_id, &pos)) {
		b->st->unknown_agent++;
		return;
	}
	s = &b->slots[pos - 1];
	if (!(bi.flags & VIGIL_F_MAC)) {
		b->st->unauthenticated++;
		return;
	}
	if (!(s->valid_keys & (1u << (bi.key_id & 1))) || !vigil_beat_tag_ok(beat, &s->key[bi.key_id & 1])) {
		b->st->bad_tag++;
		return;
	}
	rv = vigil_replay_check(&s->replay, bi.incarnation, bi.seq, 64);
	if (!vigil_replay_accepted(rv)) {
		b->st->replayed++;
		return;
	}
	if (rv != VIGIL_REPLAY_LATE) {
		s->seq = bi.seq;
		s->incarnation = bi.incarnation;
	}
	s->last_seen_ns = now;
	s->interval_ms = vigil_clamp_interval(bi.interval_ms, s->interval_min_ms, s->interval_max_ms);
	s->beats++;
	b->st->accepted++;
	prev = s->state;
	if (prev != VIGIL_AGENT_ALIVE) {
		s->state = VIGIL_AGENT_ALIVE;
		event(b, s, prev == VIGIL_AGENT_NEW ? "up" : "recovered", now);
		if (!s->in_wheel)
			file_slot(b, (__u32)(pos - 1), now / TICK_NS + 1);
	}
}

int main(int argc, char **argv)
{
	struct baseline b = { .dead_misses = 2 };
	const char *keys_path = NULL, *stats_path = NULL;
	__u32 port = VIGIL_DEFAULT_PORT, n = 1000, imin = 10, imax = 1000, mult = 3;
	__u32 rcvbuf = 4u << 20;
	__u64 first = 1;
	int opt, fd, sfd, cpu = -1;
	const struct bc_opt opts[] = {
		BC_U32("port", 'p', &port, 1, 65535),
		BC_STR("keys", 'k', &keys_path),
		BC_U32("agents", 'n', &n, 1, 16u << 20),
		BC_U64("first-id", 'f', &first, 1, UINT64_MAX / 2),
		BC_U32("interval-min-ms", 'm', &imin, 1, 3600000),
		BC_U32("interval-max-ms", 'M', &imax, 1, 3600000),
		BC_U32("multiplier", 'x', &mult, 1, 1000),
		BC_STR("stats", 's', &stats_path),
		BC_INT("cpu", 'c', &cpu, 0, 4095),
		BC_U32("rcvbuf", 'b', &rcvbuf, 4096, 1u << 30),
		BC_FLAG("events", 'e', &b.print_events),
		BC_OTHER("help", 'h', no_argument),
		{}
	};
	struct vg_keyfile kf = {};
	struct mmsghdr msgs[BATCH];
	struct iovec iov[BATCH];
	static __u8 bufs[BATCH][128];
	struct sockaddr_in addr = { .sin_family = AF_INET };
	struct timeval tv = { .tv_usec = 1000 };
	__u64 now;

	while ((opt = bc_getopt(argc, argv, "p:k:n:h", opts)) != -1) {
		if (opt == BC_BAD)
			return 2;
		fprintf(opt == 'h' ? stdout : stderr,
			"Usage: vigil-baseline --keys FILE --stats FILE [--agents N] [--first-id ID]\n"
			"        [--port P] [--interval-min-ms N] [--interval-max-ms N]\n"
			"        [--multiplier N] [--cpu N] [--rcvbuf BYTES] [--events]\n"
			"vigil's beat handling in one userspace process (UDP, recvmmsg x%d).\n"
			"Stats file: struct baseline_stats (bench/bench.h); accepted at offset %d,\n"
			"receive-buffer drops at offset %d.\n", BATCH, BASELINE_OFF_ACCEPTED,
			BASELINE_OFF_RCVBUF_DROPS);
		return opt == 'h' ? 0 : 2;
	}
	if (!keys_path || !stats_path) {
		fprintf(stderr, "vigil-baseline: --keys and --stats are required (see --help)\n");
		return 2;
	}
	if (cpu >= 0 && bc_pin_cpu(cpu))
		return 1;
	setvbuf(stdout, NULL, _IOLBF, 0);

	sfd = open(stats_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (sfd < 0 || ftruncate(sfd, 4096)) {
		fprintf(stderr, "%s: %s\n", stats_path, strerror(errno));
		return 1;
	}
	b.st = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, sfd, 0);
	if (b.st == MAP_FAILED) {
		fprintf(stderr, "mmap %s: %s\n", stats_path, strerror(errno));
		return 1;
	}

	/* The agent table, from the same key file vigil run gets. */
	if (vg_keyfile_load(keys_path, false, &kf))
		return 1;
	b.n = n;
	b.slots = calloc(n, sizeof(*b.slots));
	if (!b.slots)
		return 1;
	now = vg_mono_ns();
	b.next_tick = now / TICK_NS;
	for (__u32 i = 0; i < n; i++) {
		const struct agent_auth *a = vg_keyfile_get(&kf, first + i);
		struct slot *s = &b.slots[i];

		if (!a) {
			fprintf(stderr, "%s: no key for agent %llu\n", keys_path,
				(unsigned long long)(first + i));
			return 1;
		}
		s->id = first + i;
		s->key[0] = a->key[0];
		s->key[1] = a->key[1];
		s->valid_keys = a->valid;
		s->state = VIGIL_AGENT_NEW;
		s->last_seen_ns = now;
		s->interval_min_ms = imin;
		s->interval_max_ms = imax;
		s->interval_ms = imax;
		s->multiplier = mult;
		if (u64map_put(&b.index, s->id, i + 1))
			return 1;
		file_slot(&b, i, b.next_tick + 1);
	}
	vg_keyfile_free(&kf);

	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	addr.sin_port = htons((__u16)port);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)) ||
	    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) ||
	    bind(fd, (struct sockaddr *)&addr, sizeof(addr))) {
		fprintf(stderr, "vigil-baseline: UDP socket on port %u: %s\n", port, strerror(errno));
		return 1;
	}
	for (int i = 0; i < BATCH; i++) {
		iov[i].iov_base = bufs[i];
		iov[i].iov_len = sizeof(bufs[i]);
	}
	{
		struct sigaction sa = { .sa_handler = on_signal };

		sigaction(SIGINT, &sa, NULL);
		sigaction(SIGTERM, &sa, NULL);
	}
	fprintf(stderr, "vigil-baseline: %u agents, port %u, ready\n", n, port);

	while (!stop_requested) {
		int got;

		for (int i = 0; i < BATCH; i++) {
			memset(&msgs[i].msg_hdr, 0, sizeof(msgs[i].msg_hdr));
			msgs[i].msg_hdr.msg_iov = &iov[i];
			msgs[i].msg_hdr.msg_iovlen = 1;
		}
		got = recvmmsg(fd, msgs, BATCH, MSG_WAITFORONE, NULL);
		now = vg_mono_ns();
		if (got > 0) {
			b.st->calls++;
			b.st->received += (__u64)got;
			for (int i = 0; i < got; i++)
				handle(&b, bufs[i], msgs[i].msg_len, now);
		} else if (got < 0 && errno != EAGAIN && errno != EINTR) {
			fprintf(stderr, "recvmmsg: %s\n", strerror(errno));
			break;
		}
		if (now / TICK_NS >= b.next_tick) {
			__u32 mi[SK_MEMINFO_VARS];
			socklen_t ml = sizeof(mi);

			sweep(&b, now);
			/* Once a tick: the socket's own count of datagrams it dropped. */
			if (getsockopt(fd, SOL_SOCKET, SO_MEMINFO, mi, &ml) == 0)
				b.st->rcvbuf_drops = mi[SK_MEMINFO_DROPS];
		}
	}
	close(fd);
	free(b.slots);
	u64map_free(&b.index);
	return 0;
}

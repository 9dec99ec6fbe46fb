// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/*
 * A protected resource for tests/e2e/85-leases.sh: it accepts a write only
 * if its fencing token is the highest it has seen (what docs/leases.md asks
 * of any resource a lease guards), and it audits what the lease holders did:
 *
 *   accepted        writes accepted
 *   stale_rejected  writes refused because a higher token was seen before
 *                   (a former holder that acted late: what fencing is for)
 *   stale_accepted  accepted writes whose token was below one accepted
 *                   earlier (must be 0; checked independently of the rule)
 *   same_token      writes under a token another writer (agent id or
 *                   process) used first: two holders acting with one token
 *   overlaps        pairs of successive grants whose holders' beliefs
 *                   overlapped in time: a write under token T was decided
 *                   after the first write under a higher token T'
 *
 * Usage: fence_resource --socket PATH --summary FILE [--log FILE]
 * It serves until SIGTERM/SIGINT, then writes the summary as one JSON
 * object (also on SIGUSR1, without stopping).
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include "fence.h"

#define MAX_TOKENS 65536

struct token_rec {
	uint64_t token, agent_id, writes, accepted, first_ns, last_ns;
	uint32_t pid;
};

static struct token_rec *recs;
static size_t n_recs;
static uint64_t writes, accepted, stale_rejected, stale_accepted, same_token, malformed;
static uint64_t highest, highest_accepted;
static volatile sig_atomic_t stop, dump;

static void on_signal(int sig)
{
	if (sig == SIGUSR1)
		dump = 1;
	else
		stop = 1;
}

static struct token_rec *rec_for(const struct fence_write *w)
{
	for (size_t i = n_recs; i-- > 0;)
		if (recs[i].token == w->token)
			return &recs[i];
	if (n_recs == MAX_TOKENS)
		return NULL;
	recs[n_recs] = (struct token_rec){ .token = w->token, .agent_id = w->agent_id,
					   .pid = w->pid, .first_ns = w->decided_ns,
					   .last_ns = w->decided_ns };
	return &recs[n_recs++];
}

static int by_token(const void *a, const void *b)
{
	uint64_t x = ((const struct token_rec *)a)->token, y = ((const struct token_rec *)b)->token;

	return x < y ? -1 : x > y;
}

static void write_summary(const char *path)
{
	struct token_rec *s = malloc((n_recs ? n_recs : 1) * sizeof(*s));
	uint64_t overlaps = 0;
	int64_t min_gap = INT64_MAX;
	char tmp[4096];
	FILE *f;

	if (!s)
		return;
	memcpy(s, recs, n_recs * sizeof(*s));
	qsort(s, n_recs, sizeof(*s), by_token);
	/* One holder at a time: every write decided under token T comes
	 * before the first write decided under any higher token. */
	for (size_t i = 1; i < n_recs; i++) {
		uint64_t last_before = 0;

		for (size_t j = 0; j < i; j++)
			if (s[j].last_ns > last_before)
				last_before = s[j].last_ns;
		if (last_before >= s[i].first_ns)
			overlaps++;
		if ((int64_t)(s[i].first_ns - last_before) < min_gap)
			min_gap = (int64_t)(s[i].first_ns - last_before);
	}
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "w");
	if (!f) {
		free(s);
		return;
	}
	fprintf(f, "{\"writes\":%llu,\"accepted\":%llu,\"stale_rejected\":%llu,"
		   "\"stale_accepted\":%llu,\"same_token\":%llu,\"overlaps\":%llu,"
		   "\"malformed\":%llu,\"highest\":%llu,\"min_gap_ns\":%lld,\"tokens\":[",
		(unsigned long long)writes, (unsigned long long)accepted,
		(unsigned long long)stale_rejected, (unsigned long long)stale_accepted,
		(unsigned long long)same_token, (unsigned long long)overlaps,
		(unsigned long long)malformed, (unsigned long long)highest,
		(long long)(n_recs > 1 ? min_gap : 0));
	for (size_t i = 0; i < n_recs; i++)
		fprintf(f, "%s{\"token\":%llu,\"agent_id\":%llu,\"pid\":%u,\"writes\":%llu,"
			   "\"accepted\":%llu,\"first_ns\":%llu,\"last_ns\":%llu}",
			i ? "," : "", (unsigned long long)s[i].token,
			(unsigned long long)s[i].agent_id, s[i].pid,
			(unsigned long long)s[i].writes, (unsigned long long)s[i].accepted,
			(unsigned long long)s[i].first_ns, (unsigned long long)s[i].last_ns);
	fprintf(f, "]}\n");
	fclose(f);
	rename(tmp, path);
	free(s);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "summary", required_argument, NULL, 'S' },
		{ "log", required_argument, NULL, 'l' },
		{}
	};
	const char *sock_path = NULL, *summary = NULL, *log_path = NULL;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct sigaction act = { .sa_handler = on_signal };
	FILE *log = NULL;
	int opt, fd;

	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 's':
			sock_path = optarg;
			break;
		case 'S':
			summary = optarg;
			break;
		case 'l':
			log_path = optarg;
			break;
		default:
			return 2;
		}
	}
	if (!sock_path || !summary || strlen(sock_path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "usage: fence_resource --socket PATH --summary FILE [--log FILE]\n");
		return 2;
	}
	recs = calloc(MAX_TOKENS, sizeof(*recs));
	if (!recs)
		return 1;
	if (log_path) {
		log = fopen(log_path, "w");
		if (!log) {
			perror(log_path);
			return 1;
		}
		setvbuf(log, NULL, _IOLBF, 0);
	}
	strcpy(sa.sun_path, sock_path);
	unlink(sock_path);
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		perror("fence_resource: socket");
		return 1;
	}
	/* No SA_RESTART: recv returns EINTR so a signal is seen at once. */
	sigaction(SIGTERM, &act, NULL);
	sigaction(SIGINT, &act, NULL);
	sigaction(SIGUSR1, &act, NULL);
	while (!stop) {
		struct fence_write w;
		struct token_rec *r;
		ssize_t n = recv(fd, &w, sizeof(w), 0);
		int ok;

		if (dump) {
			dump = 0;
			write_summary(summary);
		}
		if (n < 0) {
			if (errno == EINTR)
				continue;
			perror("fence_resource: recv");
			break;
		}
		if (n != (ssize_t)sizeof(w) || w.magic != FENCE_MAGIC) {
			malformed++;
			continue;
		}
		writes++;
		/* The rule: only the highest token seen so far is accepted. */
		ok = w.token >= highest;
		if (ok) {
			highest = w.token;
			accepted++;
			/* Audit, independently of the rule above. */
			if (w.token < highest_accepted)
				stale_accepted++;
			highest_accepted = w.token;
		} else {
			stale_rejected++;
		}
		r = rec_for(&w);
		if (r) {
			if (r->agent_id != w.agent_id || r->pid != w.pid)
				same_token++;
			r->writes++;
			r->accepted += ok;
			if (w.decided_ns < r->first_ns)
				r->first_ns = w.decided_ns;
			if (w.decided_ns > r->last_ns)
				r->last_ns = w.decided_ns;
		}
		if (log)
			fprintf(log, "{\"agent_id\":%llu,\"pid\":%u,\"token\":%llu,\"n\":%llu,"
				     "\"decided_ns\":%llu,\"deadline_ns\":%llu,\"accepted\":%s}\n",
				(unsigned long long)w.agent_id, w.pid, (unsigned long long)w.token,
				(unsigned long long)w.n, (unsigned long long)w.decided_ns,
				(unsigned long long)w.deadline_ns, ok ? "true" : "false");
	}
	write_summary(summary);
	close(fd);
	unlink(sock_path);
	if (log)
		fclose(log);
	return 0;
}

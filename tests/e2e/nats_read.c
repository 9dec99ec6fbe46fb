// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/*
 * Read a JetStream stream back for tests/e2e/90-nats.sh, the way a consumer
 * of vigil's export would: an ephemeral ordered consumer from the first
 * message, until the stream's last message at the time of the call.
 *
 *   nats_read --servers URL[,URL...] --stream NAME [--subject FILTER]
 *   nats_read --servers URL[,URL...] --stream NAME --info
 *   nats_read --servers URL[,URL...] --request SUBJECT JSON
 *
 * Messages are printed one per line: stream sequence, the time the stream
 * stored it (ns since the epoch), subject, Nats-Msg-Id and the payload,
 * separated by tabs. --info prints the stream's message
 * count, replicas, duplicate window and cluster leader as one JSON object;
 * --request sends JSON to a JetStream API subject (e.g.
 * $JS.API.STREAM.CREATE.NAME, a stream that sources others, as an operator
 * would create it) and prints the reply.
 * Errors: one line naming the failing step, exit status 1.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <nats/nats.h>

#define WAIT_MS 5000
#define MAX_URLS 16

static int fail(const char *step, natsStatus s)
{
	const char *t = nats_GetLastError(NULL);

	fprintf(stderr, "nats_read: %s failed: %s\n", step, t && *t ? t : natsStatus_GetText(s));
	return 1;
}

static int print_info(jsStreamInfo *si)
{
	printf("{\"msgs\":%llu,\"first_seq\":%llu,\"last_seq\":%llu,\"replicas\":%lld,"
	       "\"duplicates_ns\":%lld,\"leader\":\"%s\",\"peers\":[",
	       (unsigned long long)si->State.Msgs, (unsigned long long)si->State.FirstSeq,
	       (unsigned long long)si->State.LastSeq, (long long)si->Config->Replicas,
	       (long long)si->Config->Duplicates,
	       si->Cluster && si->Cluster->Leader ? si->Cluster->Leader : "");
	for (int i = 0; si->Cluster && i < si->Cluster->ReplicasLen; i++)
		printf("%s{\"name\":\"%s\",\"current\":%s}", i ? "," : "",
		       si->Cluster->Replicas[i]->Name,
		       si->Cluster->Replicas[i]->Current ? "true" : "false");
	printf("]}\n");
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "servers", required_argument, NULL, 's' },
		{ "stream", required_argument, NULL, 'n' },
		{ "subject", required_argument, NULL, 'j' },
		{ "info", no_argument, NULL, 'i' },
		{ "request", required_argument, NULL, 'r' },
		{}
	};
	const char *servers = NULL, *stream = NULL, *subject = "vigil.events.>", *request = NULL;
	const char *urls[MAX_URLS];
	char *buf, *save = NULL;
	bool info = false;
	int opt, n_urls = 0, ret = 1;
	natsConnection *nc = NULL;
	natsOptions *o = NULL;
	natsSubscription *sub = NULL;
	jsStreamInfo *si = NULL;
	jsCtx *js = NULL;
	jsErrCode jerr = 0;
	jsSubOptions so;
	jsOptions jo;
	natsStatus s;
	unsigned long long n = 0;

	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 's':
			servers = optarg;
			break;
		case 'n':
			stream = optarg;
			break;
		case 'j':
			subject = optarg;
			break;
		case 'i':
			info = true;
			break;
		case 'r':
			request = optarg;
			break;
		default:
			fprintf(stderr, "usage: nats_read --servers URLS --stream NAME "
					"[--subject FILTER] [--info]\n");
			return 2;
		}
	}
	if (!servers || (!stream && !(request && optind == argc - 1))) {
		fprintf(stderr, "nats_read: --servers and --stream (or --request SUBJECT JSON) are required\n");
		return 2;
	}
	buf = strdup(servers);
	for (char *u = strtok_r(buf, ",", &save); u && n_urls < MAX_URLS; u = strtok_r(NULL, ",", &save))
		urls[n_urls++] = u;

	s = natsOptions_Create(&o);
	if (s == NATS_OK)
		s = natsOptions_SetServers(o, urls, n_urls);
	if (s == NATS_OK)
		s = natsOptions_SetTimeout(o, 1000);
	if (s == NATS_OK)
		s = natsConnection_Connect(&nc, o);
	if (s != NATS_OK) {
		fail("connecting", s);
		goto out;
	}
	if (request) {
		natsMsg *reply = NULL;

		s = natsConnection_RequestString(&reply, nc, request, argv[optind], WAIT_MS);
		if (s != NATS_OK) {
			fail("the request", s);
			goto out;
		}
		printf("%.*s\n", natsMsg_GetDataLength(reply), natsMsg_GetData(reply));
		ret = strstr(natsMsg_GetData(reply), "\"error\"") ? 1 : 0;
		natsMsg_Destroy(reply);
		goto out;
	}
	jsOptions_Init(&jo);
	jo.Wait = WAIT_MS;
	s = natsConnection_JetStream(&js, nc, &jo);
	if (s != NATS_OK) {
		fail("opening a JetStream context", s);
		goto out;
	}
	s = js_GetStreamInfo(&si, js, stream, NULL, &jerr);
	if (s != NATS_OK) {
		fail("looking up the stream", s);
		goto out;
	}
	if (info) {
		ret = print_info(si);
		goto out;
	}
	if (si->State.Msgs == 0) {
		ret = 0;
		goto out;
	}
	jsSubOptions_Init(&so);
	so.Stream = stream;
	so.Ordered = true;
	so.Config.DeliverPolicy = js_DeliverAll;
	/* A cluster that just lost and regained a node (or a loaded machine)
	 * can take a while to answer consumer creation: retry a few times. */
	for (int attempt = 0; attempt < 6; attempt++) {
		s = js_SubscribeSync(&sub, js, subject, &jo, &so, &jerr);
		if (s != NATS_TIMEOUT)
			break;
		fprintf(stderr, "nats_read: creating the consumer timed out, retrying\n");
	}
	if (s != NATS_OK) {
		fail("creating an ordered consumer", s);
		goto out;
	}
	for (;;) {
		jsMsgMetaData *meta = NULL;
		const char *id = NULL;
		natsMsg *m = NULL;
		unsigned long long seq, stored;

		s = natsSubscription_NextMsg(&m, sub, WAIT_MS);
		if (s == NATS_TIMEOUT) {
			/* A narrower filter may end before the stream does. */
			ret = 0;
			break;
		}
		if (s != NATS_OK) {
			fail("reading the next message", s);
			break;
		}
		s = natsMsg_GetMetaData(&meta, m);
		if (s != NATS_OK) {
			natsMsg_Destroy(m);
			fail("reading a message's metadata", s);
			break;
		}
		seq = (unsigned long long)meta->Sequence.Stream;
		stored = (unsigned long long)meta->Timestamp;
		jsMsgMetaData_Destroy(meta);
		natsMsgHeader_Get(m, "Nats-Msg-Id", &id);
		printf("%llu\t%llu\t%s\t%s\t%.*s\n", seq, stored, natsMsg_GetSubject(m), id ? id : "",
		       natsMsg_GetDataLength(m), natsMsg_GetData(m));
		natsMsg_Destroy(m);
		n++;
		if (seq >= si->State.LastSeq) {
			ret = 0;
			break;
		}
	}
	fprintf(stderr, "nats_read: %llu message(s) of stream %s (last sequence %llu)\n", n,
		stream, (unsigned long long)si->State.LastSeq);
out:
	natsSubscription_Destroy(sub);
	jsStreamInfo_Destroy(si);
	jsCtx_Destroy(js);
	natsConnection_Destroy(nc);
	natsOptions_Destroy(o);
	free(buf);
	nats_Close();
	return ret;
}

// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/*
 * Leases replicated through a NATS JetStream key-value bucket: the granting
 * term and the token reservation (the protocol is in lease_repl.h; the
 * reasoning and the bounds in docs/leases.md).
 *
 * One thread with its own NATS connection. Each pass reads every lease's
 * key and, depending on who holds the term, renews it (reserving a token
 * when the daemon asks for one, recording a new holder), hands it back, takes
 * it over, or only watches. The kernel's term (vigil_lease_terms) is written
 * through an mmap of the map with an atomic store, so XDP reading it while
 * it renews never sees half a value.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <nats/nats.h>
#include "common/log.h"
#include "common/secret.h"
#include "common/util.h"
#include "common/waker.h"
#include "daemon/export.h" /* vg_export_default_host */
#include "daemon/lease_repl.h"

#define POLL_MS 50           /* a standby reads the key this often */
#define CONNECT_TIMEOUT_MS 1000
#define RETRY_MS 500         /* after a failed connection */
#define NAME_LEN 64
/* Revisions the bucket keeps per key: a reservation looks at all of them
 * (see step()). */
#define HISTORY 16

/* A lease's record in the bucket. */
struct rec {
	__u64 token;  /* highest token ever reserved */
	__u64 holder; /* holder of the grant under `token`; 0: reserved, not granted */
	char granter[NAME_LEN + 1]; /* "" : nobody holds the term */
	__u32 term_ms;
};

struct repl_lease {
	const struct vg_lease_def *d;
	char key[32];
	/* The thread's and the daemon's, under r->w.lock. */
	__u64 rev;          /* newest revision seen */
	__u64 seen_ns;      /* when this thread first saw it */
	struct rec cur;     /* its value */
	bool mine;          /* cur.granter is this monitor, term running */
	__u64 last_send_ns; /* when our last successful write was sent */
	__u64 term_end_ns;  /* our term ends (0: none) */
	bool want_token;    /* the daemon waits for a reservation */
	__u64 reserved;     /* reserved for our next grant during this term (0: none) */
	__u64 local_max;    /* the daemon's highest token (database, kernel) */
	__u64 holder;       /* the daemon granted to this agent ... */
	bool holder_dirty;  /* ... not yet recorded in the bucket */
	__u64 none_since;   /* no healthy candidate since (0: there is one) */
	__u64 history_token; /* the highest token in the key's history (see step) */
	char last_err[128]; /* said once per streak */
};

struct vg_lease_repl {
	struct vg_lease_repl_cfg cfg;
	char host[NAME_LEN + 1];
	char *urls_buf;
	const char *urls[16];
	int n_urls;
	struct repl_lease *ls;
	size_t n;
	__u64 *terms; /* mmap of vigil_lease_terms */
	size_t terms_len;
	struct vg_nats_auth auth; /* what the credential files gave */
	natsConnection *nc;
	jsCtx *js;
	kvStore *kv;
	struct vg_waker w; /* its lock guards the leases' shared fields */
	pthread_t thread;
	bool running;
	char conn_err[128];
};

void vg_lease_repl_cfg_default(struct vg_lease_repl_cfg *c)
{
	memset(c, 0, sizeof(*c));
	c->bucket = VG_LEASE_BUCKET;
	c->replicas = 1;
	c->term_ms = VG_LEASE_TERM_MS;
	c->drift_ppm = 1000;
}

static bool name_ok(const char *s)
{
	return vg_token_ok(s, NAME_LEN);
}

int vg_lease_repl_cfg_check(const struct vg_lease_repl_cfg *c)
{
	const char *p = c->nats_urls;
	int n = 0;

	if (!p)
		return 0;
	for (;;) {
		size_t len = strcspn(p, ",");

		if (!len || (strncmp(p, "nats://", 7) && strncmp(p, "tls://", 6)) || ++n > 16) {
			pr_warn("--lease-nats: '%s' is not a list of up to 16 nats:// or tls:// URLs "
				"separated by commas\n", c->nats_urls);
			return -1;
		}
		if (!p[len])
			break;
		p += len + 1;
	}
	if (!name_ok(c->bucket)) {
		pr_warn("--lease-bucket: '%s' is not a bucket name (1-%d of A-Z a-z 0-9 _ -)\n",
			c->bucket, NAME_LEN);
		return -1;
	}
	if (c->host && !name_ok(c->host)) {
		pr_warn("--lease-host: '%s' is not a name (1-%d of A-Z a-z 0-9 _ -)\n", c->host,
			NAME_LEN);
		return -1;
	}
	{
		struct vg_nats_auth a;

		if (vg_nats_auth_load(&c->auth, &a))
			return -1;
		vg_nats_auth_free(&a);
	}
	return 0;
}

__u64 vg_lease_repl_takeover_ns(const struct vg_lease_repl_cfg *c)
{
	__u64 t = (__u64)c->term_ms * VIGIL_NSEC_PER_MSEC;

	/* (1 + rho) / (1 - rho) < 1 + 3 rho for rho <= 1/3: the granter's term,
	 * measured on its clock from before the write we saw, has ended on
	 * ours once this much of our time has passed since we saw it. */
	return t + t / 1000000 * 3 * c->drift_ppm + t % 1000000 * 3 * c->drift_ppm / 1000000;
}

/* ------------------------------------------------------------ records */

static int rec_format(const struct rec *v, char *buf, size_t len)
{
	return snprintf(buf, len, "{\"token\":%llu,\"holder\":%llu,\"granter\":\"%s\",\"term_ms\":%u,"
			"\"wall_ns\":%llu}", (unsigned long long)v->token,
			(unsigned long long)v->holder, v->granter, v->term_ms,
			(unsigned long long)vg_wall_ns());
}

/* Only vigil writes these records, always in rec_format's layout. */
static int rec_parse(const char *s, struct rec *v)
{
	unsigned long long token, holder;
	char granter[NAME_LEN + 1] = "";
	int n = 0;

	memset(v, 0, sizeof(*v));
	if (sscanf(s, "{\"token\":%llu,\"holder\":%llu,\"granter\":\"%n", &token, &holder, &n) < 2 ||
	    !n)
		return -1;
	s += n;
	n = (int)strcspn(s, "\"");
	if (n > NAME_LEN || s[n] != '"' || sscanf(s + n, "\",\"term_ms\":%u", &v->term_ms) != 1)
		return -1;
	memcpy(granter, s, (size_t)n);
	granter[n] = '\0';
	if (n && !name_ok(granter))
		return -1;
	v->token = token;
	v->holder = holder;
	memcpy(v->granter, granter, sizeof(v->granter));
	return 0;
}

/* ------------------------------------------------------------- NATS */

/* Say a failing step once per streak (per lease, or of the connection). */
static void failed(char *last, size_t len, const char *step, natsStatus s)
{
	char msg[128];

	snprintf(msg, sizeof(msg), "%s", vg_nats_why(s));
	if (!strcmp(last, msg))
		return;
	snprintf(last, len, "%s", msg);
	pr_warn("leases: %s failed: %s (retrying; the term lapses meanwhile)\n", step, msg);
}

static void disconnect(struct vg_lease_repl *r)
{
	kvStore_Destroy(r->kv);
	jsCtx_Destroy(r->js);
	natsConnection_Destroy(r->nc);
	r->kv = NULL;
	r->js = NULL;
	r->nc = NULL;
}

static int connect_bucket(struct vg_lease_repl *r)
{
	natsOptions *o = NULL;
	jsOptions jo;
	kvConfig kc;
	char name[NAME_LEN + 16], url[256] = "", shown[256];
	natsStatus s;
	const char *step = "connecting to NATS";

	snprintf(name, sizeof(name), "vigil-leases %s", r->host);
	s = natsOptions_Create(&o);
	if (s == NATS_OK)
		s = natsOptions_SetServers(o, r->urls, r->n_urls);
	if (s == NATS_OK)
		s = natsOptions_SetName(o, name);
	if (s == NATS_OK)
		s = natsOptions_SetTimeout(o, CONNECT_TIMEOUT_MS);
	if (s == NATS_OK)
		s = natsOptions_SetMaxReconnect(o, -1);
	if (s == NATS_OK)
		s = natsOptions_SetReconnectWait(o, 100);
	if (s == NATS_OK)
		s = natsOptions_SetPingInterval(o, 1000);
	if (s == NATS_OK)
		s = natsOptions_SetMaxPingsOut(o, 2);
	if (s == NATS_OK)
		s = vg_nats_auth_apply(o, &r->cfg.auth, &r->auth);
	if (s == NATS_OK)
		s = natsConnection_Connect(&r->nc, o);
	natsOptions_Destroy(o);
	if (s == NATS_OK) {
		step = "opening a JetStream context";
		jsOptions_Init(&jo);
		/* A write slower than a third of the term cannot keep it. */
		jo.Wait = r->cfg.term_ms / 3 > 100 ? r->cfg.term_ms / 3 : 100;
		s = natsConnection_JetStream(&r->js, r->nc, &jo);
	}
	if (s == NATS_OK) {
		step = "opening the lease bucket";
		s = js_KeyValue(&r->kv, r->js, r->cfg.bucket);
		if (s == NATS_NOT_FOUND) {
			kvConfig_Init(&kc);
			kc.Bucket = r->cfg.bucket;
			kc.History = HISTORY;
			kc.StorageType = js_FileStorage;
			kc.Replicas = (int)r->cfg.replicas;
			step = "creating the lease bucket";
			s = js_CreateKeyValue(&r->kv, r->js, &kc);
			if (s == NATS_OK)
				pr_info("leases: created bucket %s (%u replica(s), file storage)\n",
					r->cfg.bucket, r->cfg.replicas);
		}
	}
	if (s != NATS_OK) {
		failed(r->conn_err, sizeof(r->conn_err), step, s);
		disconnect(r);
		return -1;
	}
	r->conn_err[0] = '\0';
	natsConnection_GetConnectedUrl(r->nc, url, sizeof(url));
	pr_info("leases: replicating %zu lease(s) in bucket %s at %s as '%s' (term %u ms)\n", r->n,
		r->cfg.bucket, vg_urls_redact(url, shown, sizeof(shown)), r->host, r->cfg.term_ms);
	return 0;
}

/* --------------------------------------------------------- one lease */

/* The kernel's term for lease L (monotonic ns): XDP renews no later. */
static void set_term(struct vg_lease_repl *r, struct repl_lease *L, __u64 end_ns)
{
	__atomic_store_n(&r->terms[L->d->id], end_ns, __ATOMIC_RELEASE);
}

/* Under the lock: what to write for lease L now, if anything. */
static bool next_write(struct vg_lease_repl *r, struct repl_lease *L, __u64 now, struct rec *out,
		       const char **what)
{
	__u64 t = (__u64)r->cfg.term_ms * VIGIL_NSEC_PER_MSEC;

	*out = L->cur;
	out->term_ms = r->cfg.term_ms;
	if (!strcmp(L->cur.granter, r->host)) {
		if (L->none_since && now - L->none_since >= t && !L->want_token) {
			out->granter[0] = '\0';
			*what = "hand the term back";
			return true;
		}
		if (L->want_token) {
			__u64 top = L->cur.token > L->local_max ? L->cur.token : L->local_max;

			out->token = (top > L->history_token ? top : L->history_token) + 1;
			out->holder = 0;
			*what = "reserve a token";
			return true;
		}
		if (L->holder_dirty) {
			out->holder = L->holder;
			*what = "record the holder";
			return true;
		}
		*what = "renew the term";
		return !L->mine || now - L->last_send_ns >= t / 3;
	}
	if (!L->cur.granter[0] ||
	    now - L->seen_ns >= vg_lease_repl_takeover_ns(&r->cfg) +
					(__u64)L->d->grace_ms * VIGIL_NSEC_PER_MSEC) {
		snprintf(out->granter, sizeof(out->granter), "%s", r->host);
		*what = "take the term over";
		return true;
	}
	return false;
}

/* The highest token in the retained revisions of L's key, into *top; -1
 * when the history cannot be read.
 * In a clustered stream, JetStream checks a write's expected revision before
 * its Raft proposal, not in it (nats-server issue 4320; fixed for most cases
 * in 2.9.21): two writes on one revision can then both be stored, one right
 * after the other, and the later one hides the earlier's token. Reserving
 * above every retained revision keeps tokens unique even so. */
static int history_token(struct vg_lease_repl *r, struct repl_lease *L, __u64 *top)
{
	*top = 0;
	/* Raced writes are stored right after one another: the revisions just
	 * below the newest (those of other keys are not found). */
	for (__u64 i = 1; i <= HISTORY && i < L->rev; i++) {
		kvEntry *e = NULL;
		struct rec v;
		natsStatus s = kvStore_GetRevision(&e, r->kv, L->key, L->rev - i);

		if (s == NATS_NOT_FOUND)
			continue;
		if (s != NATS_OK)
			return -1;
		if (!rec_parse(kvEntry_ValueString(e), &v) && v.token > *top)
			*top = v.token;
		kvEntry_Destroy(e);
	}
	return 0;
}

static void step(struct vg_lease_repl *r, struct repl_lease *L)
{
	char buf[256];
	kvEntry *e = NULL;
	struct rec v, w;
	const char *what;
	uint64_t rev = 0;
	__u64 now, sent;
	natsStatus s;
	bool write, was_mine;

	s = kvStore_Get(&e, r->kv, L->key);
	now = vg_mono_ns();
	if (s == NATS_NOT_FOUND) {
		/* The first monitor to create the key grants first. */
		pthread_mutex_lock(&r->w.lock);
		v = (struct rec){ .token = L->local_max, .term_ms = r->cfg.term_ms };
		pthread_mutex_unlock(&r->w.lock);
		snprintf(v.granter, sizeof(v.granter), "%s", r->host);
		rec_format(&v, buf, sizeof(buf));
		sent = vg_mono_ns();
		s = kvStore_Create(&rev, r->kv, L->key, buf, (int)strlen(buf));
		if (s != NATS_OK)
			return; /* another monitor created it: read it next pass */
		pthread_mutex_lock(&r->w.lock);
		L->cur = v;
		L->rev = rev;
		L->seen_ns = now;
		goto written;
	}
	if (s != NATS_OK) {
		snprintf(buf, sizeof(buf), "reading %s", L->key);
		failed(L->last_err, sizeof(L->last_err), buf, s);
		return;
	}
	rev = kvEntry_Revision(e);
	if (rec_parse(kvEntry_ValueString(e), &v)) {
		snprintf(buf, sizeof(buf), "%s: '%.60s' is not a lease record; not touching it",
			 L->key, kvEntry_ValueString(e));
		kvEntry_Destroy(e);
		if (strcmp(L->last_err, buf)) {
			snprintf(L->last_err, sizeof(L->last_err), "%s", buf);
			pr_warn("leases: %s\n", buf);
		}
		return;
	}
	kvEntry_Destroy(e);

	pthread_mutex_lock(&r->w.lock);
	if (rev != L->rev) {
		if (strcmp(v.granter, r->host) && strcmp(v.granter, L->cur.granter) && v.granter[0])
			pr_info("leases: %s: standing by; monitor '%s' grants it (token %llu)\n",
				L->d->name, v.granter, (unsigned long long)v.token);
		L->rev = rev;
		L->seen_ns = now;
		L->cur = v;
		if (strcmp(v.granter, r->host))
			L->mine = false;
	}
	if (L->mine && now >= L->term_end_ns)
		L->mine = false; /* lapsed: a reservation of that term is void */
	if (!L->mine)
		L->reserved = 0;
	write = L->want_token && !strcmp(L->cur.granter, r->host);
	pthread_mutex_unlock(&r->w.lock);
	if (write) {
		__u64 h;

		if (history_token(r, L, &h))
			return; /* without the history, no reservation */
		pthread_mutex_lock(&r->w.lock);
		L->history_token = h;
		pthread_mutex_unlock(&r->w.lock);
	}
	pthread_mutex_lock(&r->w.lock);
	write = next_write(r, L, now, &w, &what);
	pthread_mutex_unlock(&r->w.lock);
	if (!write)
		return;
	rec_format(&w, buf, sizeof(buf));
	sent = vg_mono_ns();
	s = kvStore_Update(&rev, r->kv, L->key, buf, (int)strlen(buf), L->rev);
	if (s != NATS_OK) {
		char st[96];

		/* Another write came first (the next pass reads it), or the
		 * outcome is unknown: the term is not extended either way. */
		snprintf(st, sizeof(st), "%s: trying to %s", L->d->name, what);
		failed(L->last_err, sizeof(L->last_err), st, s);
		return;
	}
	pthread_mutex_lock(&r->w.lock);
	L->cur = w;
	L->rev = rev;
	L->seen_ns = vg_mono_ns();
	v = w;
written:
	L->last_err[0] = '\0';
	was_mine = L->mine;
	L->mine = !strcmp(v.granter, r->host);
	if (L->mine) {
		/* The term runs from the moment the write was sent. */
		L->last_send_ns = sent;
		L->term_end_ns = sent + (__u64)r->cfg.term_ms * VIGIL_NSEC_PER_MSEC;
		set_term(r, L, L->term_end_ns);
		if (L->want_token && v.holder == 0 && v.token > L->local_max) {
			L->reserved = v.token;
			L->want_token = false;
		}
		if (L->holder_dirty && v.holder == L->holder)
			L->holder_dirty = false;
	} else {
		L->reserved = 0;
		L->none_since = 0;
	}
	pthread_mutex_unlock(&r->w.lock);
	if (L->mine && !was_mine)
		pr_info("leases: %s: this monitor grants it now (term %u ms, token %llu so far, "
			"revision %llu)\n", L->d->name, r->cfg.term_ms,
			(unsigned long long)v.token, (unsigned long long)rev);
	else if (!L->mine && was_mine)
		pr_info("leases: %s: handed the term back (no healthy candidate here)\n",
			L->d->name);
}

static void *repl_thread(void *arg)
{
	struct vg_lease_repl *r = arg;

	while (!vg_waker_stopping(&r->w)) {
		if (!r->kv && connect_bucket(r)) {
			vg_waker_nap(&r->w, RETRY_MS);
			continue;
		}
		for (size_t i = 0; i < r->n && !vg_waker_stopping(&r->w); i++)
			step(r, &r->ls[i]);
		vg_waker_nap(&r->w, POLL_MS);
	}
	return NULL;
}

/* ------------------------------------------------------------ the API */

int vg_lease_repl_start(const struct vg_lease_repl_cfg *c, const struct vg_lease_def *defs,
			size_t n, int terms_fd, struct vg_lease_repl **out)
{
	struct vg_lease_repl *r;
	long page = sysconf(_SC_PAGESIZE);
	char *p;

	*out = NULL;
	if (!c->nats_urls)
		return 0;
	if (!n) {
		pr_warn("--lease-nats: the agents file defines no lease; nothing to replicate\n");
		return 0;
	}
	r = calloc(1, sizeof(*r));
	if (!r)
		return -1;
	r->cfg = *c;
	r->n = n;
	r->ls = calloc(n, sizeof(*r->ls));
	r->urls_buf = strdup(c->nats_urls);
	if (!r->ls || !r->urls_buf)
		goto fail;
	if (c->host)
		snprintf(r->host, sizeof(r->host), "%s", c->host);
	else
		vg_export_default_host(r->host, sizeof(r->host));
	for (p = strtok(r->urls_buf, ","); p && r->n_urls < 16; p = strtok(NULL, ","))
		r->urls[r->n_urls++] = p;
	r->terms_len = ((VIGIL_MAX_LEASES * sizeof(__u64)) + (size_t)page - 1) & ~((size_t)page - 1);
	r->terms = mmap(NULL, r->terms_len, PROT_READ | PROT_WRITE, MAP_SHARED, terms_fd, 0);
	if (r->terms == MAP_FAILED) {
		pr_warn("leases: mapping vigil_lease_terms failed: %s\n", strerror(errno));
		r->terms = NULL;
		goto fail;
	}
	if (vg_nats_auth_load(&c->auth, &r->auth))
		goto fail;
	for (size_t i = 0; i < n; i++) {
		r->ls[i].d = &defs[i];
		snprintf(r->ls[i].key, sizeof(r->ls[i].key), "lease.%u", defs[i].id);
	}
	vg_waker_init(&r->w);
	if (vg_worker_start(&r->thread, repl_thread, r)) {
		pr_warn("leases: starting the replication thread failed\n");
		vg_waker_destroy(&r->w);
		goto fail;
	}
	r->running = true;
	*out = r;
	return 0;
fail:
	vg_nats_auth_free(&r->auth);
	if (r->terms)
		munmap(r->terms, r->terms_len);
	free(r->urls_buf);
	free(r->ls);
	free(r);
	return -1;
}

void vg_lease_repl_stop(struct vg_lease_repl *r)
{
	if (!r)
		return;
	if (r->running) {
		vg_waker_stop(&r->w);
		pthread_join(r->thread, NULL);
		vg_waker_destroy(&r->w);
	}
	disconnect(r);
	vg_nats_auth_free(&r->auth);
	munmap(r->terms, r->terms_len);
	free(r->urls_buf);
	free(r->ls);
	free(r);
}

bool vg_lease_repl_may_grant(struct vg_lease_repl *r, size_t i, __u64 local_max, __u64 *token,
			     __u64 *term_end)
{
	struct repl_lease *L = &r->ls[i];
	__u64 now = vg_mono_ns();
	bool ok = false, ask = false;

	pthread_mutex_lock(&r->w.lock);
	if (local_max > L->local_max)
		L->local_max = local_max;
	if (L->mine && now < L->term_end_ns) {
		/* Equal: the daemon has recorded this reservation itself. */
		if (L->reserved && L->reserved >= L->local_max) {
			*token = L->reserved;
			*term_end = L->term_end_ns;
			ok = true;
		} else if (!L->want_token) {
			L->want_token = ask = true;
		}
	}
	pthread_mutex_unlock(&r->w.lock);
	if (ask)
		pthread_cond_signal(&r->w.wake);
	return ok;
}

void vg_lease_repl_granted(struct vg_lease_repl *r, size_t i, __u64 holder, __u64 token)
{
	struct repl_lease *L = &r->ls[i];

	pthread_mutex_lock(&r->w.lock);
	if (L->reserved == token)
		L->reserved = 0; /* used */
	L->holder = holder;
	L->holder_dirty = true;
	L->none_since = 0;
	pthread_mutex_unlock(&r->w.lock);
	pthread_cond_signal(&r->w.wake);
}

void vg_lease_repl_no_candidate(struct vg_lease_repl *r, size_t i, bool none)
{
	struct repl_lease *L = &r->ls[i];

	pthread_mutex_lock(&r->w.lock);
	if (!none)
		L->none_since = 0;
	else if (!L->none_since)
		L->none_since = vg_mono_ns();
	pthread_mutex_unlock(&r->w.lock);
}

void vg_lease_repl_view(struct vg_lease_repl *r, size_t i, struct vg_lease_repl_view *v)
{
	struct repl_lease *L = &r->ls[i];

	pthread_mutex_lock(&r->w.lock);
	v->monitor = r->host;
	snprintf(v->granter, sizeof(v->granter), "%s", L->cur.granter);
	v->holder = L->cur.holder;
	v->token = L->cur.token;
	v->revision = L->rev;
	v->term_ms = L->cur.term_ms;
	pthread_mutex_unlock(&r->w.lock);
}

__u64 vg_lease_repl_token(struct vg_lease_repl *r, size_t i)
{
	__u64 t;

	pthread_mutex_lock(&r->w.lock);
	t = r->ls[i].cur.token;
	pthread_mutex_unlock(&r->w.lock);
	return t;
}

/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * Leases that outlive their monitor (docs/leases.md#leases-that-outlive-their-monitor).
 *
 * Several monitors watch the same candidates; one of them, the granter,
 * grants each lease. Its right to grant is a term recorded in a NATS
 * JetStream key-value bucket (one key per lease, lease.<id>), whose value
 * also holds the highest fencing token ever reserved:
 *
 *   {"token":T,"holder":H,"granter":"host-a","term_ms":1000,"wall_ns":...}
 *
 * Every write is a compare-and-set on the key's revision, so of two
 * monitors writing on the same revision one fails: two monitors never both
 * take the term, and never reserve the same token.
 *
 *  - The granter renews its term every term/3 (a write on the revision it
 *    wrote last). A term runs from the moment the renewing write was SENT;
 *    the granter hands its end to the kernel (vigil_lease_terms), which never
 *    renews the lease past it. A granter that cannot write (NATS down, cut
 *    off, a standby took over) thus stops renewing by the end of its term
 *    even if the daemon is dead and only XDP runs.
 *  - Before a grant, the granter reserves the token in the same kind of
 *    write: token = max(bucket, local database, kernel) + 1. Only after the
 *    bucket acknowledged it is the grant written to the kernel.
 *  - A standby reads the key every poll; when it has seen the same revision
 *    for term x (1 + 3 x drift) (+ grace), the granter's term has ended on
 *    any clock within the drift bound and its holder has stopped acting:
 *    it takes the term with a write on that revision, then reserves a
 *    token (a write on its own) and grants.
 *  - A granter whose lease stays unheld with no healthy candidate hands the
 *    term back (granter ""), so a monitor that sees the candidates grants.
 *
 * The thread talks to NATS; the daemon's main loop asks it, without
 * blocking, whether it may grant and for a reserved token.
 */
#ifndef VIGIL_LEASE_REPL_H
#define VIGIL_LEASE_REPL_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>
#include "common/config.h"
#include "daemon/natsauth.h"

struct vg_lease_repl_cfg {
	const char *nats_urls; /* --lease-nats; NULL: leases are not replicated */
	const char *bucket;    /* --lease-bucket */
	const char *host;      /* --lease-host; NULL: the host name */
	__u32 replicas;        /* --lease-replicas, when vigil creates the bucket */
	__u32 term_ms;         /* --lease-term-ms */
	__u32 drift_ppm;       /* clock rate bound between monitors (1000) */
	struct vg_nats_files auth; /* the export's: --export-nats-creds ... -key */
};

#define VG_LEASE_BUCKET "VIGIL_LEASES"
#define VG_LEASE_TERM_MS 1000

void vg_lease_repl_cfg_default(struct vg_lease_repl_cfg *c);
/* One line and -1 if the URLs, bucket or host name are malformed, or the
 * credential files unusable. */
int vg_lease_repl_cfg_check(const struct vg_lease_repl_cfg *c);
/* How long a standby waits on an unchanged revision before taking over. */
__u64 vg_lease_repl_takeover_ns(const struct vg_lease_repl_cfg *c);

struct vg_lease_repl;

/* Start the thread for the n leases in defs; terms_fd is the kernel's
 * vigil_lease_terms map. NATS need not be reachable. 0, or -1 after one line. */
int vg_lease_repl_start(const struct vg_lease_repl_cfg *c, const struct vg_lease_def *defs,
			size_t n, int terms_fd, struct vg_lease_repl **out);
void vg_lease_repl_stop(struct vg_lease_repl *r);

/* Lease i: may this monitor grant it now? If so, *token is a token the
 * bucket holds reserved for this monitor's next grant (the reservation is
 * asked for, and false returned, until it is), above local_max (the
 * database's and the kernel's highest), and *term_end when the term ends
 * (monotonic ns). */
bool vg_lease_repl_may_grant(struct vg_lease_repl *r, size_t i, __u64 local_max, __u64 *token,
			     __u64 *term_end);
/* Lease i was granted to holder under token (recorded in the bucket with
 * the next renewal). */
void vg_lease_repl_granted(struct vg_lease_repl *r, size_t i, __u64 holder, __u64 token);
/* Lease i cannot be granted here (no healthy candidate): after a term of
 * that, a granter hands the term back. */
void vg_lease_repl_no_candidate(struct vg_lease_repl *r, size_t i, bool none);
/* The highest token the bucket holds for lease i (0: unknown yet). */
__u64 vg_lease_repl_token(struct vg_lease_repl *r, size_t i);

/* Lease i's record as this monitor last read it (for `vigil lease list`). */
struct vg_lease_repl_view {
	const char *monitor;  /* this monitor's name in the bucket */
	char granter[65];     /* "": nobody holds the term */
	__u64 holder, token;  /* holder 0: reserved, not granted */
	__u64 revision;       /* 0: not read yet */
	__u32 term_ms;
};
void vg_lease_repl_view(struct vg_lease_repl *r, size_t i, struct vg_lease_repl_view *v);

#endif

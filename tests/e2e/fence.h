/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * The message a lease candidate (lease_candidate.c) sends to the protected
 * resource (fence_resource.c) in tests/e2e/85-leases.sh: one datagram on a
 * Unix socket per write. Both run on the same machine, so decided_ns (the
 * writer's CLOCK_BOOTTIME when it checked that it held the lease) compares
 * across processes.
 */
#ifndef VIGIL_TEST_FENCE_H
#define VIGIL_TEST_FENCE_H

#include <stdint.h>

#define FENCE_MAGIC 0x464e4357u /* "FNCW" */

struct fence_write {
	uint32_t magic;
	uint32_t pid;         /* writer process */
	uint64_t agent_id;
	uint64_t token;       /* fencing token presented */
	uint64_t decided_ns;  /* when the writer checked vigil_agent_holds() */
	uint64_t deadline_ns; /* the writer's lease deadline at that check */
	uint64_t n;           /* the writer's own write counter */
};

#endif

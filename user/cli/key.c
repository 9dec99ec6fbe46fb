// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/* `vigil key gen`: keys from the kernel's random source, in key-file format. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include "cli/cli.h"
#include "common/keys.h"
#include "common/log.h"
#include "common/options.h"
#include "common/util.h"

struct gen_opts {
	__u64 lo, hi;
	__u32 key_id;
};

static const struct vg_opt gen_opts[] = {
	{ VG_OPT_PAIR("id", struct gen_opts, lo, hi, 1, UINT64_MAX, 0, '-', VG_OPT_PAIR_SAME,
		      "ID|A-B", "the agent, or an inclusive range of agents"), .required = true },
	{ VG_OPT_UINT(0, "key-id", struct gen_opts, key_id, 0, 1, "0|1",
		      "which of each agent's two keys (a new one, for a rollover)") },
	{}
};

static int gen_run(const struct vg_parsed *p)
{
	const struct gen_opts *o = p->opts;

	for (__u64 id = o->lo;; id++) {
		__u8 raw[16];
		struct vigil_key k;
		char hex[33];

		if (getrandom(raw, sizeof(raw), 0) != sizeof(raw)) {
			pr_warn("key gen: getrandom failed: %s\n", strerror(errno));
			return 1;
		}
		vigil_key_from_bytes(&k, raw);
		vg_key_format(&k, hex);
		printf("%llu %u %s\n", (unsigned long long)id, o->key_id, hex);
		if (id == o->hi)
			break; /* hi may be UINT64_MAX */
	}
	return 0;
}

static const struct vg_cmd gen_cmd = {
	VG_CMD("key gen", "new keys, in key-file format",
	       "Print one key-file line per agent ('ID KEY-ID KEY'), from getrandom(2). The "
	       "monitor's key file must be root-owned, mode 0600.",
	       "  (umask 077; vigil key gen --id 1-50 > /etc/vigil/keys)\n"),
	.opts = gen_opts, .size = sizeof(struct gen_opts), .run = gen_run,
};

VG_VERBS(cli_key, "key",
	 "generate agent keys",
	 "Agent keys (128-bit, SipHash tags on every beat: docs/security.md).",
	 { .cmd = &gen_cmd });

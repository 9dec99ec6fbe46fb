// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/* `vigil key gen`: keys from the kernel's random source, in key-file format. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include "cli.h"
#include "keys.h"
#include "log.h"
#include "util.h"

int cmd_key(int argc, char **argv)
{
	__u64 lo = 0, hi = 0;
	__u32 key_id = 0;

	if (argc < 2 || strcmp(argv[1], "gen")) {
		fprintf(argc < 2 ? stderr : stdout,
			"Usage: vigil key gen --id ID|A-B [--key-id 0|1]\n"
			"Print one key-file line per agent ('ID KEY-ID KEY'), from getrandom(2).\n"
			"Example (monitor's file must be root-owned, mode 0600):\n"
			"  (umask 077; vigil key gen --id 1-50 > /etc/vigil/keys)\n");
		return argc < 2 || strcmp(argv[1], "--help") ? 2 : 0;
	}
	for (int i = 2; i < argc; i++) {
		if (!strcmp(argv[i], "--id") && i + 1 < argc) {
			if (vg_parse_range(argv[++i], "--id", &lo, &hi))
				return 2;
		} else if (!strcmp(argv[i], "--key-id") && i + 1 < argc) {
			if (vg_parse_u32(argv[++i], "--key-id", 0, 1, &key_id))
				return 2;
		} else {
			pr_warn("key gen: unexpected argument '%s'\n", argv[i]);
			return 2;
		}
	}
	if (!lo) {
		pr_warn("key gen: --id is required\n");
		return 2;
	}
	for (__u64 id = lo;; id++) {
		__u8 raw[16];
		struct vigil_key k;
		char hex[33];

		if (getrandom(raw, sizeof(raw), 0) != sizeof(raw)) {
			pr_warn("key gen: getrandom failed: %s\n", strerror(errno));
			return 1;
		}
		vigil_key_from_bytes(&k, raw);
		vg_key_format(&k, hex);
		printf("%llu %u %s\n", (unsigned long long)id, key_id, hex);
		if (id == hi)
			break;
	}
	return 0;
}

// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/*
 * include/vigil/cadence.h driven by a script on stdin, one decision per
 * output line, so that another implementation of the same rules (the Python
 * agent, agents/python/tests/test_cadence.py) can be compared with the C one
 * decision for decision.
 *
 *   first line:  MIN_MS MAX_MS DWELL_MS HIGH LOW ADAPTIVE   (the config, then fixed up)
 *   then:        s DEPTH RECOMMEND_MS CAP_MS NOW_NS        (a beat goes out: on_send)
 *                k NOW_NS                                  (a beat is skipped: on_skip)
 *   prints:      INTERVAL NEXT_NS LEVEL PROMISED CHANGES LEVEL_CHANGES (INTERVAL 0 for k)
 */
#include <stdio.h>
#include "vigil/cadence.h"

int main(void)
{
	struct vigil_cadence_cfg c = {};
	struct vigil_cadence s = {};
	unsigned min, max, dwell, high, low, adaptive;
	char op;

	if (scanf("%u %u %u %u %u %u", &min, &max, &dwell, &high, &low, &adaptive) != 6) {
		fprintf(stderr, "cadence_trace: expected MIN MAX DWELL HIGH LOW ADAPTIVE\n");
		return 2;
	}
	c.min_ms = min;
	c.max_ms = max;
	c.dwell_ms = dwell;
	c.high = (__u16)high;
	c.low = (__u16)low;
	c.adaptive = (__u8)adaptive;
	vigil_cadence_cfg_fix(&c);
	while (scanf(" %c", &op) == 1) {
		unsigned depth, rec, cap;
		unsigned long long now;
		__u32 iv = 0;

		if (op == 's' && scanf("%u %u %u %llu", &depth, &rec, &cap, &now) == 4) {
			iv = vigil_cadence_on_send(&c, &s, (__u16)depth, rec, cap, now);
		} else if (op == 'k' && scanf("%llu", &now) == 1) {
			vigil_cadence_on_skip(&c, &s, now);
		} else {
			fprintf(stderr, "cadence_trace: bad line starting with '%c'\n", op);
			return 2;
		}
		printf("%u %llu %u %u %u %u\n", iv, (unsigned long long)s.next_ns, s.level,
		       s.promised_ms, s.changes, s.level_changes);
	}
	return 0;
}

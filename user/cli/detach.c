// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/* `vigil detach`: remove the instance (detach XDP, stop the sweeper, remove
 * every pin). The only way detection stops. */
#include "cli/cli.h"
#include "common/instance.h"
#include "common/log.h"
#include "common/options.h"

struct detach_opts {
	const char *pin_root;
};

static const struct vg_opt detach_opts[] = {
	{ VG_OPT_PIN_ROOT(struct detach_opts, pin_root) },
	{}
};

static const struct detach_opts detach_defaults = { .pin_root = VIGIL_DEFAULT_PIN_ROOT };

static int detach_run(const struct vg_parsed *p)
{
	const struct detach_opts *o = p->opts;

	if (vg_instance_remove(o->pin_root))
		return 1;
	pr_info("detached and removed %s\n", o->pin_root);
	return 0;
}

const struct vg_cmd cli_detach = {
	VG_CMD("detach", "detach XDP, stop the sweeper, remove the pins",
	       "Detach XDP, stop the sweeper and remove every pin of the instance: detection "
	       "stops (stopping the daemon alone does not stop it).", NULL),
	.opts = detach_opts, .size = sizeof(struct detach_opts), .defaults = &detach_defaults,
	.run = detach_run,
};

/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * Command-line options, each written once: a command describes its options
 * in a table (name, kind, bounds, metavar, help, where the value goes in its
 * options struct) and gives a struct holding its defaults. From those, one
 * parser fills the struct and one printer writes `--help`, defaults included,
 * in the manner of xdp-tools' params.h. Sub-verbs (`vigil log query`) are a
 * verb table, as in bpftool.
 *
 *   struct opts { __u16 port; const char *db; bool json; };
 *   static const struct vg_opt opts[] = {
 *           { VG_OPT_UINT('p', "port", struct opts, port, 1, 65535, "PORT", "UDP beat port") },
 *           { VG_OPT_DB(struct opts, db) },
 *           { VG_OPT_JSON(struct opts, json, "print one JSON object") },
 *           {}
 *   };
 *   static const struct opts defaults = { .port = 4747, .db = VIGIL_DEFAULT_DB };
 *   static int run(const struct vg_parsed *p) { struct opts *o = p->opts; ... }
 *   const struct vg_cmd cli_status = { .name = "status", .summary = "...",
 *           .about = "...", .opts = opts, .size = sizeof(struct opts),
 *           .defaults = &defaults, .run = run };
 *
 * vg_cmd_run(&cli_status, argc, argv) parses into a fresh struct and calls
 * run; --help prints the usage (exit 0), a bad option one line (exit 2).
 *
 * Every command also takes -h/--help and -v/--verbose. Errors are one line
 * on stderr ("vigil: --port: 0 is out of range [1, 65535]"), exit status 2.
 */
#ifndef VIGIL_OPTIONS_H
#define VIGIL_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <linux/types.h>

enum vg_opt_kind {
	VG_OPT_END,
	VG_OPT_FLAG,   /* bool field = true */
	VG_OPT_UINT,   /* unsigned field = typed value x scale, typed value in [min, max] */
	VG_OPT_PAIR,   /* two unsigned fields: "A" or "A<sep>B", B >= A (see VG_OPT_PAIR_SAME) */
	VG_OPT_STR,    /* const char * field = the argument (none_word: NULL) */
	VG_OPT_CHOICE, /* unsigned field = the index of the argument in choices */
	VG_OPT_FUNC,   /* parse(arg, field, opt) does it, printing its own error */
	VG_OPT_SECTION, /* not an option: a heading in the usage (help is its title) */
};

#define VG_OPT_PAIR_SAME 0x1 /* PAIR: "A" alone sets B = A too (an id range) */

struct vg_opt {
	enum vg_opt_kind kind;
	char short_name;            /* 0: none */
	const char *name;           /* without the leading "--" */
	size_t off, off2;           /* the field (PAIR: fields) in the options struct */
	unsigned size, size2;       /* their sizes in bytes */
	__u64 min, max, scale;      /* UINT, PAIR: bounds of the typed value; scale 0 is 1 */
	char sep;                   /* PAIR: ',' or '-' */
	unsigned flags;             /* VG_OPT_PAIR_* */
	const char *const *choices; /* CHOICE: NULL-terminated */
	const char *none_word;      /* STR: this argument stores NULL ("off") */
	bool required;              /* the command refuses to run without it */
	bool arg_optional;          /* UINT: --name[=N]; without N the field keeps its default */
	size_t flag_off;            /* with arg_optional: this bool is set as well (0: none) */
	int (*parse)(const char *arg, void *field, const struct vg_opt *o); /* FUNC */
	/* FUNC, optional: the field's value as the usage shows a default */
	void (*show)(const void *field, const struct vg_opt *o, char *buf, size_t len);
	const char *metavar;        /* NULL for FLAG */
	const char *help;           /* one line; the usage wraps it */
	const char *zero;           /* usage: the default when the field is 0 or NULL */
};

/* Rows of a table, one option per row: { VG_OPT_UINT(...) }, with any
 * further field after it ({ VG_OPT_UINT(...), .zero = "off" }). */
#define VG_SZ(T, f) ((unsigned)sizeof(((T *)0)->f))
#define VG_OPT_SECTION(title) .kind = VG_OPT_SECTION, .help = title
#define VG_OPT_FLAG(s, n, T, f, h) \
	.kind = VG_OPT_FLAG, .short_name = s, .name = n, .off = offsetof(T, f), \
	.size = VG_SZ(T, f), .help = h
#define VG_OPT_UINT(s, n, T, f, lo, hi, mv, h) \
	.kind = VG_OPT_UINT, .short_name = s, .name = n, .off = offsetof(T, f), \
	.size = VG_SZ(T, f), .min = lo, .max = hi, .metavar = mv, .help = h
/* UINT whose field holds the typed value times sc (seconds typed, ns kept). */
#define VG_OPT_SCALED(n, T, f, lo, hi, sc, mv, h) \
	.kind = VG_OPT_UINT, .name = n, .off = offsetof(T, f), .size = VG_SZ(T, f), \
	.min = lo, .max = hi, .scale = sc, .metavar = mv, .help = h
#define VG_OPT_PAIR(n, T, a, b, lo, hi, sc, sp, fl, mv, h) \
	.kind = VG_OPT_PAIR, .name = n, .off = offsetof(T, a), .size = VG_SZ(T, a), \
	.off2 = offsetof(T, b), .size2 = VG_SZ(T, b), .min = lo, .max = hi, .scale = sc, \
	.sep = sp, .flags = fl, .metavar = mv, .help = h
#define VG_OPT_STR(s, n, T, f, mv, h) \
	.kind = VG_OPT_STR, .short_name = s, .name = n, .off = offsetof(T, f), \
	.size = VG_SZ(T, f), .metavar = mv, .help = h
#define VG_OPT_CHOICE(s, n, T, f, ch, mv, h) \
	.kind = VG_OPT_CHOICE, .short_name = s, .name = n, .off = offsetof(T, f), \
	.size = VG_SZ(T, f), .choices = ch, .metavar = mv, .help = h
#define VG_OPT_FUNC(s, n, T, f, fn, mv, h) \
	.kind = VG_OPT_FUNC, .short_name = s, .name = n, .off = offsetof(T, f), \
	.size = VG_SZ(T, f), .parse = fn, .metavar = mv, .help = h

/* Options several commands take, defined once. */
#define VG_OPT_PIN_ROOT(T, f) VG_OPT_STR(0, "pin-root", T, f, "DIR", "where the instance is pinned")
#define VG_OPT_DB(T, f) VG_OPT_STR(0, "db", T, f, "FILE", "the durable event log (SQLite)")
#define VG_OPT_JSON(T, f, h) VG_OPT_FLAG(0, "json", T, f, h)

struct vg_parsed;

struct vg_cmd {
	const char *name;        /* "run", "log query" */
	const char *summary;     /* one line, in the list of commands or verbs */
	const char *args;        /* what its positional arguments are ("NAME|ID"); NULL: none */
	const char *about;       /* what it does; the usage wraps it */
	const struct vg_opt *opts; /* ends with {} (kind VG_OPT_END) */
	const char *examples;    /* lines, each ending in '\n'; NULL: none */
	int max_args;            /* positional arguments allowed (args names them) */
	/* For vg_cmd_run(): the options struct, its defaults, the command. */
	size_t size;
	const void *defaults;    /* copied in first (NULL: zeroes) */
	void (*init)(void *opts); /* then called, for defaults only code knows */
	int (*run)(const struct vg_parsed *p); /* p->opts; returns the exit status */
};

/* A command's words, in vg_cmd's order: its full name, the one-line summary
 * for the list it is in, what it does, and examples (NULL: none). */
#define VG_CMD(n, summ, what, ex) .name = n, .summary = summ, .about = what, .examples = ex

struct vg_parsed {
	const struct vg_cmd *cmd;
	void *opts;              /* the options struct parsed into */
	__u64 given[4];          /* bit i: opts[i] was on the command line */
	int argc;                /* positional arguments, in order */
	char **argv;
};

/* vg_opts_parse() returns this to go on; otherwise the exit status. */
#define VG_OPTS_GO (-1)

/* Parse argv[1..] into cfg (cfg_size bytes), which holds the defaults on
 * entry (--help shows them). Returns VG_OPTS_GO, 0 after printing --help,
 * or 2 after one line naming the problem (unknown option, missing or bad
 * argument, too many positional arguments). */
int vg_opts_parse(const struct vg_cmd *c, void *cfg, size_t cfg_size, int argc, char **argv,
		  struct vg_parsed *p);
/* The whole of a command: a fresh options struct with its defaults, parsed
 * from argv, then c->run. Returns the exit status. */
int vg_cmd_run(const struct vg_cmd *c, int argc, char **argv);
/* Whether the option storing into `field` (a member of the parsed struct)
 * was given. */
bool vg_opt_given(const struct vg_parsed *p, const void *field);
/* The generated usage: "vigil NAME ARGS --required X [OPTIONS]", about,
 * options with the defaults in `defaults` (the command's options struct;
 * NULL: none shown), examples. */
void vg_opts_usage(const struct vg_cmd *c, const void *defaults, FILE *f);

/* Sub-verbs of a command (`vigil log query`), and the commands of `vigil`
 * itself, in the manner of bpftool's {"show", do_show} tables. */
struct vg_verbs;

struct vg_verb {
	const struct vg_cmd *cmd;      /* a command, called by its name's last word ... */
	const struct vg_verbs *group;  /* ... or verbs of its own (`vigil log`) */
};

struct vg_verbs {
	const char *cmd;             /* "log"; NULL for vigil's own commands */
	const char *summary;         /* one line, in vigil's list of commands */
	const char *about;
	const struct vg_verb *verbs; /* ends with {} */
	const char *examples;        /* NULL: the verbs' own */
};

/* A command with verbs: VG_VERBS(cli_log, "log", summary, about, { .cmd = &a }, ...)
 * defines cli_log and its table. */
#define VG_VERBS(var, n, summ, what, ...)                                                  \
	static const struct vg_verb var##_verbs[] = { __VA_ARGS__, {} };                  \
	const struct vg_verbs var = { .cmd = n, .summary = summ, .about = what,           \
				      .verbs = var##_verbs }

/* Run the verb named by argv[1]. --help (or `help`) lists the verbs (exit
 * 0); no verb or an unknown one is one line naming the choices (exit 2). */
int vg_verb_run(const struct vg_verbs *v, int argc, char **argv);
void vg_verbs_usage(const struct vg_verbs *v, FILE *f);

#endif

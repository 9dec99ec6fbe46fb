// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/*
 * The one option parser and usage printer (common/options.h). The parser
 * builds getopt_long's table from the command's, so an option exists in
 * exactly one place; the usage prints each option's default from the
 * command's defaults struct, so a default is stated exactly once.
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include "common/log.h"
#include "common/options.h"
#include "common/util.h"

#define USAGE_WIDTH 79
#define HELP_COLUMN 28

/* Every command takes these; they are not in the tables. */
enum { BUILTIN_HELP = -1, BUILTIN_VERBOSE = -2, NOT_AN_OPTION = -3 };

static size_t count_opts(const struct vg_opt *o)
{
	size_t n = 0;

	while (o[n].kind != VG_OPT_END)
		n++;
	return n;
}

static __u64 get_uint(const void *field, unsigned size)
{
	switch (size) {
	case 1: return *(const __u8 *)field;
	case 2: return *(const __u16 *)field;
	case 4: return *(const __u32 *)field;
	default: return *(const __u64 *)field;
	}
}

static void set_uint(void *field, unsigned size, __u64 v)
{
	switch (size) {
	case 1: *(__u8 *)field = (__u8)v; break;
	case 2: *(__u16 *)field = (__u16)v; break;
	case 4: *(__u32 *)field = (__u32)v; break;
	default: *(__u64 *)field = v; break;
	}
}

static __u64 scale_of(const struct vg_opt *o)
{
	return o->scale ? o->scale : 1;
}

static __u64 size_max(unsigned size)
{
	return size >= 8 ? UINT64_MAX : (1ULL << (size * 8)) - 1;
}

/* A table mistake is the programmer's: say which and stop, whatever the
 * command line. The e2e tests print every command's --help, so none ships. */
static void check_table(const struct vg_cmd *c)
{
	size_t n = count_opts(c->opts);
	const char *bad = NULL;

	if (n > sizeof(((struct vg_parsed *)0)->given) * 8)
		bad = "too many options";
	for (size_t i = 0; i < n && !bad; i++) {
		const struct vg_opt *o = &c->opts[i];
		bool uint = o->kind == VG_OPT_UINT || o->kind == VG_OPT_PAIR;

		if (o->kind == VG_OPT_SECTION) {
			if (!o->help)
				bad = "(a section without a title)";
			continue;
		}
		if (!o->name || !o->help || (o->kind != VG_OPT_FLAG && !o->metavar))
			bad = o->name ? o->name : "an option without a name";
		else if (uint && (o->min > o->max || o->max > size_max(o->size) / scale_of(o) ||
				  (o->kind == VG_OPT_PAIR && o->max > size_max(o->size2) / scale_of(o))))
			bad = o->name; /* bounds the field cannot hold */
		else if ((o->kind == VG_OPT_FLAG && o->size != 1 && o->size != 4) ||
			 (o->kind == VG_OPT_STR && o->size != sizeof(char *)) ||
			 (o->kind == VG_OPT_CHOICE && !o->choices) ||
			 (o->kind == VG_OPT_FUNC && !o->parse))
			bad = o->name;
		for (size_t j = 0; j < i && !bad; j++) {
			const struct vg_opt *q = &c->opts[j];

			if (q->kind != VG_OPT_SECTION &&
			    (!strcmp(o->name, q->name) ||
			     (o->short_name && o->short_name == q->short_name)))
				bad = o->name; /* twice */
		}
		if (!strcmp(o->name, "help") || !strcmp(o->name, "verbose") || o->short_name == 'h' ||
		    o->short_name == 'v')
			bad = o->name; /* built in */
	}
	if (bad) {
		pr_warn("internal error: the option table of 'vigil %s' is wrong at --%s\n", c->name,
			bad);
		abort();
	}
}

/* ------------------------------------------------------------- parsing */

static int parse_pair(const struct vg_opt *o, const char *arg, void *cfg)
{
	char what[96], a[32];
	const char *sep = strchr(arg, o->sep);
	__u64 lo, hi;

	snprintf(what, sizeof(what), "--%s", o->name);
	if (!sep) {
		if (vg_parse_u64(arg, what, o->min, o->max, &lo))
			return -1;
		hi = o->flags & VG_OPT_PAIR_SAME ? lo :
			get_uint((char *)cfg + o->off2, o->size2) / scale_of(o);
	} else {
		if ((size_t)(sep - arg) >= sizeof(a)) {
			pr_warn("%s: '%s' is not %s\n", what, arg, o->metavar);
			return -1;
		}
		memcpy(a, arg, sep - arg);
		a[sep - arg] = '\0';
		if (vg_parse_u64(a, what, o->min, o->max, &lo) ||
		    vg_parse_u64(sep + 1, what, o->min, o->max, &hi))
			return -1;
	}
	if (hi < lo) {
		/* B's range starts at A (vg_parse_range()'s and vg_parse_u64()'s
		 * wording); without a typed B, its default is below A. */
		if (sep && (o->flags & VG_OPT_PAIR_SAME))
			pr_warn("%s: range '%s' ends before it starts\n", what, arg);
		else if (sep)
			pr_warn("%s: %llu is out of range [%llu, %llu]\n", what, (unsigned long long)hi,
				(unsigned long long)lo, (unsigned long long)o->max);
		else
			pr_warn("%s: '%s' needs a second number of at least %llu (%s)\n", what, arg,
				(unsigned long long)lo, o->metavar);
		return -1;
	}
	set_uint((char *)cfg + o->off, o->size, lo * scale_of(o));
	set_uint((char *)cfg + o->off2, o->size2, hi * scale_of(o));
	return 0;
}

static void print_choices(FILE *f, const char *const *ch, const char *last_sep)
{
	for (size_t i = 0; ch[i]; i++)
		fprintf(f, "%s'%s'", i == 0 ? "" : ch[i + 1] ? ", " : last_sep, ch[i]);
}

static int parse_choice(const struct vg_opt *o, const char *arg, void *field)
{
	char *list = NULL;
	size_t len = 0;
	FILE *f;

	for (size_t i = 0; o->choices[i]; i++) {
		if (!strcmp(arg, o->choices[i])) {
			set_uint(field, o->size, i);
			return 0;
		}
	}
	f = open_memstream(&list, &len);
	if (f) {
		print_choices(f, o->choices, " or ");
		fclose(f);
	}
	pr_warn("--%s: '%s' is not %s\n", o->name, arg, list ? list : "a known value");
	free(list);
	return -1;
}

static int apply(const struct vg_opt *o, const char *arg, void *cfg)
{
	void *field = (char *)cfg + o->off;
	char what[96];
	__u64 v;

	snprintf(what, sizeof(what), "--%s", o->name);
	switch (o->kind) {
	case VG_OPT_FLAG:
		set_uint(field, o->size, 1); /* a bool, or a kernel struct's __u32 */
		return 0;
	case VG_OPT_UINT:
		if (o->flag_off)
			*(bool *)((char *)cfg + o->flag_off) = true;
		if (!arg)
			return 0; /* --name without its optional N */
		if (vg_parse_u64(arg, what, o->min, o->max, &v))
			return -1;
		set_uint(field, o->size, v * scale_of(o));
		return 0;
	case VG_OPT_PAIR:
		return parse_pair(o, arg, cfg);
	case VG_OPT_STR:
		*(const char **)field = o->none_word && !strcmp(arg, o->none_word) ? NULL : arg;
		return 0;
	case VG_OPT_CHOICE:
		return parse_choice(o, arg, field);
	case VG_OPT_FUNC:
		return o->parse(arg, field, o);
	case VG_OPT_END:
	case VG_OPT_SECTION:
		break;
	}
	return -1;
}

/* getopt_long's tables, built from the command's. Long-only options get
 * codes above any character; the built-ins come last. */
struct getopt_tables {
	struct option *longs;
	char shorts[2 + 3 * 64 + 8];
};

#define CODE_BASE 0x1000

static int build_tables(const struct vg_opt *opts, size_t n, struct getopt_tables *t)
{
	size_t s = 0, l = 0;

	t->longs = calloc(n + 3, sizeof(*t->longs));
	if (!t->longs)
		return -1;
	t->shorts[s++] = ':'; /* tell a missing argument from an unknown option */
	for (size_t i = 0; i < n; i++) {
		const struct vg_opt *o = &opts[i];
		bool takes = o->kind != VG_OPT_FLAG;

		if (o->kind == VG_OPT_SECTION)
			continue;
		t->longs[l++] = (struct option){ o->name,
						 !takes ? no_argument :
						 o->arg_optional ? optional_argument :
						 required_argument,
						 NULL, CODE_BASE + (int)i };
		if (o->short_name && s + 4 < sizeof(t->shorts)) {
			t->shorts[s++] = o->short_name;
			if (takes)
				t->shorts[s++] = ':';
		}
	}
	t->longs[l] = (struct option){ "help", no_argument, NULL, 'h' };
	t->longs[l + 1] = (struct option){ "verbose", no_argument, NULL, 'v' };
	memcpy(t->shorts + s, "hv", 3);
	return 0;
}

static int index_of_short(const struct vg_opt *opts, size_t n, int ch)
{
	for (size_t i = 0; i < n; i++)
		if (opts[i].short_name == ch)
			return (int)i;
	return ch == 'h' ? BUILTIN_HELP : ch == 'v' ? BUILTIN_VERBOSE : NOT_AN_OPTION;
}

/* The option getopt just complained about, as the user typed it. */
static const char *offending(char **argv, int argc)
{
	int i = optind - 1;

	return i >= 1 && i < argc ? argv[i] : "?";
}

int vg_opts_parse(const struct vg_cmd *c, void *cfg, size_t cfg_size, int argc, char **argv,
		  struct vg_parsed *p)
{
	size_t n = count_opts(c->opts);
	void *defaults = malloc(cfg_size);
	struct getopt_tables t;
	int ch, ret = VG_OPTS_GO;

	check_table(c);
	memset(p, 0, sizeof(*p));
	p->cmd = c;
	p->opts = cfg;
	if (!defaults || build_tables(c->opts, n, &t)) {
		free(defaults);
		pr_warn("out of memory parsing the options\n");
		return 2;
	}
	memcpy(defaults, cfg, cfg_size); /* what --help shows, whatever came before it */
	opterr = 0;
	optind = 0; /* glibc: start afresh (verbs parse again) */
	while (ret == VG_OPTS_GO && (ch = getopt_long(argc, argv, t.shorts, t.longs, NULL)) != -1) {
		int i = ch >= CODE_BASE ? ch - CODE_BASE : index_of_short(c->opts, n, ch);

		if (ch == '?') {
			const char *arg = offending(argv, argc);

			if (optopt && !strncmp(arg, "--", 2)) /* --flag=value */
				pr_warn("%.*s takes no argument (see vigil %s --help)\n",
					(int)strcspn(arg, "="), arg, c->name);
			else
				pr_warn("unknown option '%s' for 'vigil %s' (see vigil %s --help)\n",
					optopt ? (char[]){ '-', (char)optopt, 0 } : arg, c->name,
					c->name);
			ret = 2;
		} else if (ch == ':') {
			pr_warn("%s needs an argument (see vigil %s --help)\n", offending(argv, argc),
				c->name);
			ret = 2;
		} else if (i == BUILTIN_HELP) {
			vg_opts_usage(c, defaults, stdout);
			ret = 0;
		} else if (i == BUILTIN_VERBOSE) {
			vg_log_set_level(VG_LOG_DEBUG);
		} else if (i >= 0 && apply(&c->opts[i], optarg, cfg) == 0) {
			p->given[i / 64] |= 1ULL << (i % 64);
		} else {
			ret = 2;
		}
	}
	free(t.longs);
	free(defaults);
	if (ret != VG_OPTS_GO)
		return ret;
	for (size_t i = 0; i < n; i++) {
		if (c->opts[i].required && !(p->given[i / 64] & (1ULL << (i % 64)))) {
			pr_warn("--%s is required for 'vigil %s' (see vigil %s --help)\n",
				c->opts[i].name, c->name, c->name);
			return 2;
		}
	}
	p->argc = argc - optind;
	p->argv = argv + optind;
	if (p->argc > c->max_args) {
		pr_warn("unexpected argument '%s' for 'vigil %s' (see vigil %s --help)\n",
			p->argv[c->max_args], c->name, c->name);
		return 2;
	}
	return VG_OPTS_GO;
}

int vg_cmd_run(const struct vg_cmd *c, int argc, char **argv)
{
	struct vg_parsed p;
	void *o = calloc(1, c->size ? c->size : 1);
	int ret;

	if (!o) {
		pr_warn("out of memory\n");
		return 1;
	}
	if (c->defaults)
		memcpy(o, c->defaults, c->size);
	if (c->init)
		c->init(o);
	ret = vg_opts_parse(c, o, c->size, argc, argv, &p);
	if (ret == VG_OPTS_GO)
		ret = c->run(&p);
	free(o);
	return ret;
}

bool vg_opt_given(const struct vg_parsed *p, const void *field)
{
	size_t off = (size_t)((const char *)field - (const char *)p->opts);
	const struct vg_opt *o = p->cmd->opts;

	for (size_t i = 0; o[i].kind != VG_OPT_END; i++)
		if (o[i].kind != VG_OPT_SECTION &&
		    (o[i].off == off || (o[i].kind == VG_OPT_PAIR && o[i].off2 == off)) &&
		    (p->given[i / 64] & (1ULL << (i % 64))))
			return true;
	return false;
}

/* --------------------------------------------------------------- usage */

/* Write words, wrapping at USAGE_WIDTH; a new line starts at `indent`.
 * "\v" in text joins two words unbreakably (the printer turns it into a
 * space). `col` is where the cursor is; returns where it ends. */
static int wrap(FILE *f, const char *text, int col, int indent)
{
	while (*text) {
		size_t len = strcspn(text, " ");

		if (col > indent && col + 1 + (int)len > USAGE_WIDTH) {
			fprintf(f, "\n%*s", indent, "");
			col = indent;
		} else if (col > indent) {
			fputc(' ', f);
			col++;
		}
		for (size_t i = 0; i < len; i++)
			fputc(text[i] == '\v' ? ' ' : text[i], f);
		col += (int)len;
		text += len;
		while (*text == ' ')
			text++;
	}
	return col;
}

static void default_text(const struct vg_opt *o, const void *defaults, char *buf, size_t len)
{
	const void *field = (const char *)defaults + o->off;
	const char *zero = o->zero;
	__u64 v;

	buf[0] = '\0';
	if (!defaults)
		return;
	switch (o->kind) {
	case VG_OPT_UINT:
		/* 0 below the minimum means "not set": only the zero text says what
		 * that does (--limit: none shown; --duration: until SIGTERM). */
		v = get_uint(field, o->size) / scale_of(o);
		if (v || (!zero && o->min == 0))
			snprintf(buf, len, "%llu", (unsigned long long)v);
		break;
	case VG_OPT_PAIR:
		v = get_uint(field, o->size) / scale_of(o);
		if (v || (!zero && o->min == 0))
			snprintf(buf, len, "%llu%c%llu", (unsigned long long)v, o->sep,
				 (unsigned long long)(get_uint((const char *)defaults + o->off2,
							       o->size2) / scale_of(o)));
		break;
	case VG_OPT_STR:
		if (*(const char *const *)field)
			snprintf(buf, len, "%s", *(const char *const *)field);
		break;
	case VG_OPT_CHOICE:
		snprintf(buf, len, "%s", o->choices[get_uint(field, o->size)]);
		return;
	case VG_OPT_FUNC:
		if (o->show)
			o->show(field, o, buf, len);
		break;
	default:
		break;
	}
	if (!buf[0] && zero)
		snprintf(buf, len, "%s", zero);
}

/* "  -p, --port PORT", "      --learn[=CAP]"; returns the width printed. */
static int print_left(FILE *f, const struct vg_opt *o)
{
	int col = o->short_name ? fprintf(f, "  -%c, --%s", o->short_name, o->name) :
				  fprintf(f, "      --%s", o->name);

	if (o->kind == VG_OPT_FLAG)
		return col;
	if (o->arg_optional)
		return col + fprintf(f, "[=%s]", o->metavar);
	return col + fprintf(f, " %s", o->metavar);
}

static void print_opt(FILE *f, const struct vg_opt *o, const void *defaults)
{
	char def[128], suffix[160];
	int col = print_left(f, o);

	if (col + 2 > HELP_COLUMN)
		fprintf(f, "\n%*s", HELP_COLUMN, "");
	else
		fprintf(f, "%*s", HELP_COLUMN - col, "");
	col = wrap(f, o->help, HELP_COLUMN, HELP_COLUMN);
	default_text(o, defaults, def, sizeof(def));
	if (def[0]) {
		/* one unbreakable unit, so that the docs test finds it whole */
		snprintf(suffix, sizeof(suffix), "(default:\v%s)", def);
		for (char *s = suffix; *s; s++)
			if (*s == ' ')
				*s = '\v';
		wrap(f, suffix, col, HELP_COLUMN);
	}
	fputc('\n', f);
}

void vg_opts_usage(const struct vg_cmd *c, const void *defaults, FILE *f)
{
	static const struct vg_opt builtins[] = {
		{ .kind = VG_OPT_FLAG, .short_name = 'v', .name = "verbose",
		  .help = "debug logging, including libbpf and the verifier log" },
		{ .kind = VG_OPT_FLAG, .short_name = 'h', .name = "help", .help = "show this help" },
	};

	check_table(c);
	fprintf(f, "Usage: vigil %s%s%s", c->name, c->args ? " " : "", c->args ? c->args : "");
	for (const struct vg_opt *o = c->opts; o->kind != VG_OPT_END; o++)
		if (o->required)
			fprintf(f, " --%s %s", o->name, o->metavar);
	fputs(" [OPTIONS]\n", f);
	wrap(f, c->about, 0, 0);
	fputs("\n", f);
	if (c->opts[0].kind != VG_OPT_SECTION)
		fputs("\nOptions:\n", f);
	for (const struct vg_opt *o = c->opts; o->kind != VG_OPT_END; o++) {
		if (o->kind == VG_OPT_SECTION)
			fprintf(f, "\n%s:\n", o->help);
		else
			print_opt(f, o, defaults);
	}
	for (size_t i = 0; i < sizeof(builtins) / sizeof(builtins[0]); i++)
		print_opt(f, &builtins[i], NULL);
	if (c->examples)
		fprintf(f, "\nExamples:\n%s", c->examples);
}

/* --------------------------------------------------------------- verbs */

static const char *verbs_name(const struct vg_verbs *v)
{
	return v->cmd ? v->cmd : "";
}

/* What a verb is called: "query" for the command "log query". */
static const char *verb_name(const struct vg_verb *e)
{
	const char *sp;

	if (!e->cmd)
		return e->group->cmd;
	sp = strrchr(e->cmd->name, ' ');
	return sp ? sp + 1 : e->cmd->name;
}

static const char *verb_summary(const struct vg_verb *e)
{
	return e->cmd ? e->cmd->summary : e->group->summary;
}

static bool verb_end(const struct vg_verb *e)
{
	return !e->cmd && !e->group;
}

void vg_verbs_usage(const struct vg_verbs *v, FILE *f)
{
	fprintf(f, "Usage: vigil %s%s%s [OPTIONS]   (vigil %s%s%s --help for details)\n",
		verbs_name(v), v->cmd ? " " : "", v->cmd ? "VERB" : "COMMAND", verbs_name(v),
		v->cmd ? " " : "", v->cmd ? "VERB" : "COMMAND");
	wrap(f, v->about, 0, 0);
	fputs("\n\n", f);
	for (const struct vg_verb *e = v->verbs; !verb_end(e); e++)
		fprintf(f, "  %-9s %s\n", verb_name(e), verb_summary(e));
	fputs("\nExamples:\n", f);
	if (v->examples)
		fputs(v->examples, f);
	for (const struct vg_verb *e = v->verbs; !v->examples && !verb_end(e); e++)
		if (e->cmd && e->cmd->examples)
			fputs(e->cmd->examples, f);
}

/* "query, replay, gaps or prune" */
static void verb_list(const struct vg_verbs *v, char *buf, size_t len)
{
	size_t n = 0, at = 0;

	while (!verb_end(&v->verbs[n]))
		n++;
	buf[0] = '\0';
	for (size_t i = 0; i < n && at < len; i++)
		at += (size_t)snprintf(buf + at, len - at, "%s%s",
				       i == 0 ? "" : i + 1 == n ? " or " : ", ",
				       verb_name(&v->verbs[i]));
}

int vg_verb_run(const struct vg_verbs *v, int argc, char **argv)
{
	const char *what = v->cmd ? "verb" : "command";
	char list[256];

	verb_list(v, list, sizeof(list));
	if (argc < 2) {
		pr_warn("%s%swhich %s? %s (see vigil %s%s--help)\n", verbs_name(v), v->cmd ? ": " : "",
			what, list, verbs_name(v), v->cmd ? " " : "");
		return 2;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		vg_verbs_usage(v, stdout);
		return 0;
	}
	for (const struct vg_verb *e = v->verbs; !verb_end(e); e++)
		if (!strcmp(argv[1], verb_name(e)))
			return e->cmd ? vg_cmd_run(e->cmd, argc - 1, argv + 1) :
					vg_verb_run(e->group, argc - 1, argv + 1);
	pr_warn("unknown %s '%s%s%s' (expected %s; see vigil %s%s--help)\n", what, verbs_name(v),
		v->cmd ? " " : "", argv[1], list, verbs_name(v), v->cmd ? " " : "");
	return 2;
}

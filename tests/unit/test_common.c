// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/*
 * Host unit tests of user/common/: the option mechanism (options.c), the
 * JSON writer (json.c), the agents file (config.c) and the key file parser
 * (keys.c). Errors are checked as the user sees them: the one line on
 * stderr, captured.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include "check.h"
#include "common/config.h"
#include "common/fleet.h"
#include "common/json.h"
#include "common/keys.h"
#include "common/options.h"
#include "common/secret.h"

/* ------------------------------------------------------------ harness */

static char err_line[1024];
static int saved_stderr = -1;
static FILE *err_file;

static void capture_begin(void)
{
	fflush(stderr);
	err_file = tmpfile();
	saved_stderr = dup(2);
	dup2(fileno(err_file), 2);
}

/* Returns how many lines were written to stderr; the text is in err_line. */
static int capture_end(void)
{
	size_t n;
	int lines = 0;

	fflush(stderr);
	dup2(saved_stderr, 2);
	close(saved_stderr);
	rewind(err_file);
	n = fread(err_line, 1, sizeof(err_line) - 1, err_file);
	err_line[n] = '\0';
	fclose(err_file);
	for (size_t i = 0; i < n; i++)
		lines += err_line[i] == '\n';
	return lines;
}

static char tmpdir[] = "/tmp/vg-unit-XXXXXX";

static const char *write_file(const char *name, const char *text, mode_t mode)
{
	static char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	f = fopen(path, "w");
	if (f) {
		fputs(text, f);
		fclose(f);
	}
	chmod(path, mode);
	return path;
}

/* A file its loader must refuse: the text, and what the one line on stderr
 * says after "vigil: PATH". */
struct bad_file {
	const char *text, *err;
};

/* Each of bad[] written to NAME (mode MODE) and given to load, which must
 * refuse it with exactly that line on stderr: one case each, named "WHAT
 * error I:ERR". */
static void check_bad_files(const char *what, const char *name, mode_t mode,
			    int (*load)(const char *path), const struct bad_file *bad, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const char *path = write_file(name, bad[i].text, mode);
		char want[512];
		int lines, ret;

		snprintf(want, sizeof(want), "vigil: %s%s\n", path, bad[i].err);
		capture_begin();
		ret = load(path);
		lines = capture_end();
		diag("stderr: %s", err_line);
		diag("wanted: %s", want);
		CHECK(ret == -1 && lines == 1 && !strcmp(err_line, want), "%s error %zu:%s", what, i,
		      bad[i].err);
	}
}

/* ------------------------------------------------------------ options */

struct topts {
	const char *str, *off;
	bool flag, learn;
	__u16 port;
	__u64 ns;
	__u32 cap;
	__u64 base, max, lo, hi;
	__u32 mode;
	int func;
};

static int parse_func(const char *arg, void *field, const struct vg_opt *o)
{
	(void)o;
	*(int *)field = (int)strlen(arg);
	return strcmp(arg, "bad") ? 0 : -1;
}

static const char *const modes[] = { "native", "skb", NULL };

static const struct vg_opt topts[] = {
	{ VG_OPT_SECTION("First") },
	{ VG_OPT_STR('s', "str", struct topts, str, "S", "a string") },
	{ VG_OPT_STR(0, "off", struct topts, off, "ADDR", "a string with an off word"),
	  .none_word = "off", .zero = "off" },
	{ VG_OPT_FLAG('f', "flag", struct topts, flag, "a flag") },
	{ VG_OPT_UINT('p', "port", struct topts, port, 1, 65535, "PORT", "a port") },
	{ VG_OPT_SCALED("tick-us", struct topts, ns, 10, 1000000, 1000, "N", "scaled by 1000") },
	{ VG_OPT_UINT(0, "learn", struct topts, cap, 1, 100, "CAP", "optional argument"),
	  .arg_optional = true, .flag_off = offsetof(struct topts, learn) },
	{ VG_OPT_SECTION("Second") },
	{ VG_OPT_PAIR("backoff", struct topts, base, max, 1, 1000, 0, ',', 0, "BASE[,MAX]",
		      "a pair whose second keeps its default") },
	{ VG_OPT_PAIR("id", struct topts, lo, hi, 1, UINT64_MAX, 0, '-', VG_OPT_PAIR_SAME, "A[-B]",
		      "a range") },
	{ VG_OPT_CHOICE('m', "mode", struct topts, mode, modes, "native|skb", "a choice") },
	{ VG_OPT_FUNC(0, "func", struct topts, func, parse_func, "X", "a parse function with a "
		      "long help text that the usage has to wrap onto a second and maybe a "
		      "third line, at most 79 columns wide") },
	{}
};

static const struct vg_cmd tcmd = {
	.name = "test",
	.args = "[ARG]",
	.about = "A command for the unit test.",
	.opts = topts,
	.examples = "  vigil test --port 1\n",
	.max_args = 1,
};

struct ropts {
	__u32 x;
};

static const struct vg_opt ropts[] = {
	{ VG_OPT_UINT(0, "x", struct ropts, x, 0, 9, "N", "a required number"), .required = true },
	{}
};

static const struct vg_cmd rcmd = { .name = "req", .about = "Needs --x.", .opts = ropts };

static const struct topts tdefaults = { .str = "dflt", .off = "127.0.0.1:1", .port = 4747,
					.ns = 1000000, .cap = 64, .base = 500, .max = 60000 };

/* Parse a command line given as one string (split on spaces). */
static int tparse(const char *line, struct topts *o, struct vg_parsed *p, int *lines)
{
	static char buf[512];
	char *argv[32];
	int argc = 0, ret;

	snprintf(buf, sizeof(buf), "test %s", line);
	for (char *t = strtok(buf, " "); t && argc < 31; t = strtok(NULL, " "))
		argv[argc++] = t;
	argv[argc] = NULL;
	*o = tdefaults;
	capture_begin();
	ret = vg_opts_parse(&tcmd, o, sizeof(*o), argc, argv, p);
	*lines = capture_end();
	return ret;
}

static void test_options(void)
{
	struct vg_parsed p;
	struct topts o;
	char *usage = NULL;
	size_t len = 0;
	FILE *f;
	int lines, ret, widest = 0, col = 0;

	ret = tparse("", &o, &p, &lines);
	CHECK(ret == VG_OPTS_GO && !memcmp(&o, &tdefaults, sizeof(o)) && p.argc == 0 && !lines,
	      "no options: the defaults stay as they were, nothing printed");
	ret = tparse("-s x --off=off -f -p 80 --tick-us 20 -m skb --backoff 7 --id 5 arg", &o, &p,
		     &lines);
	CHECK(ret == VG_OPTS_GO && !strcmp(o.str, "x") && !o.off && o.flag && o.port == 80 &&
		      o.ns == 20000 && o.mode == 1 && o.base == 7 && o.max == 60000 && o.lo == 5 &&
		      o.hi == 5 && p.argc == 1 && !strcmp(p.argv[0], "arg"),
	      "every kind parses: str, off word, flag, uint, scaled, choice, pair (one value), "
	      "range (one id), a positional argument");
	CHECK(vg_opt_given(&p, &o.port) && vg_opt_given(&p, &o.hi) && !vg_opt_given(&p, &o.cap),
	      "vg_opt_given: by field, either field of a pair, false when not given");
	ret = tparse("--backoff 7,9 --id 3-8 --learn", &o, &p, &lines);
	CHECK(ret == VG_OPTS_GO && o.base == 7 && o.max == 9 && o.lo == 3 && o.hi == 8 &&
		      o.learn && o.cap == 64,
	      "pairs take both values; --learn without its optional CAP sets the flag only");
	ret = tparse("--learn=5", &o, &p, &lines);
	CHECK(ret == VG_OPTS_GO && o.learn && o.cap == 5, "--learn=5 sets both");

	static const struct {
		const char *line, *err;
	} bad[] = {
		{ "--port 0", "vigil: --port: 0 is out of range [1, 65535]\n" },
		{ "--port 65536", "vigil: --port: 65536 is out of range [1, 65535]\n" },
		{ "--port abc", "vigil: --port: 'abc' is not a non-negative whole number\n" },
		{ "--port 0x10", "vigil: --port: '0x10' is not a non-negative whole number\n" },
		{ "--port -1", "vigil: --port: '-1' is not a non-negative whole number\n" },
		{ "--port", "vigil: --port needs an argument (see vigil test --help)\n" },
		{ "--tick-us 9", "vigil: --tick-us: 9 is out of range [10, 1000000]\n" },
		{ "--mode foo", "vigil: --mode: 'foo' is not 'native' or 'skb'\n" },
		{ "--backoff 9,7", "vigil: --backoff: 7 is out of range [9, 1000]\n" },
		{ "--id 5-3", "vigil: --id: range '5-3' ends before it starts\n" },
		{ "--backoff 5,2000", "vigil: --backoff: 2000 is out of range [1, 1000]\n" },
		{ "--id 0", "vigil: --id: 0 is out of range [1, 18446744073709551615]\n" },
		{ "--learn=0", "vigil: --learn: 0 is out of range [1, 100]\n" },
		{ "--func bad", "" },
		{ "--frob", "vigil: unknown option '--frob' for 'vigil test' (see vigil test --help)\n" },
		{ "-x", "vigil: unknown option '-x' for 'vigil test' (see vigil test --help)\n" },
		{ "--flag=1", "vigil: --flag takes no argument (see vigil test --help)\n" },
		{ "a b", "vigil: unexpected argument 'b' for 'vigil test' (see vigil test --help)\n" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ret = tparse(bad[i].line, &o, &p, &lines);
		diag("stderr: %s", err_line);
		CHECK(ret == 2 && lines == (*bad[i].err ? 1 : 0) && !strcmp(err_line, bad[i].err),
		      "'vigil test %s': exit 2, one line naming the problem%s", bad[i].line,
		      *bad[i].err ? "" : " (the parse function's own)");
	}

	{
		struct ropts r = {};
		char *argv[] = { "req", "--x", "0", NULL };

		capture_begin();
		ret = vg_opts_parse(&rcmd, &r, sizeof(r), 1, argv, &p);
		lines = capture_end();
		diag("stderr: %s", err_line);
		CHECK(ret == 2 && lines == 1 &&
			      !strcmp(err_line, "vigil: --x is required for 'vigil req' (see vigil req "
						"--help)\n"),
		      "a required option missing: exit 2, one line naming it");
		ret = vg_opts_parse(&rcmd, &r, sizeof(r), 3, argv, &p);
		CHECK(ret == VG_OPTS_GO && r.x == 0 && vg_opt_given(&p, &r.x),
		      "given (even as 0), it satisfies the requirement");
		f = open_memstream(&usage, &len);
		vg_opts_usage(&rcmd, &r, f);
		fclose(f);
		CHECK(strstr(usage, "Usage: vigil req --x N [OPTIONS]\n") != NULL,
		      "the usage line names the required option with its metavar");
		free(usage);
		usage = NULL;
	}
	f = open_memstream(&usage, &len);
	vg_opts_usage(&tcmd, &tdefaults, f);
	fclose(f);
	for (const char *s = usage; *s; s++) {
		col = *s == '\n' ? 0 : col + 1;
		if (col > widest)
			widest = col;
	}
	diag("%s", usage);
	CHECK(strstr(usage, "Usage: vigil test [ARG] [OPTIONS]\n") &&
		      strstr(usage, "\nFirst:\n  -s, --str S") && strstr(usage, "\nSecond:\n") &&
		      strstr(usage, "(default: dflt)") && strstr(usage, "(default: 4747)") &&
		      strstr(usage, "(default: 1000)") && strstr(usage, "(default: 500,60000)") &&
		      strstr(usage, "(default: native)") && strstr(usage, "(default: 127.0.0.1:1)") &&
		      strstr(usage, "--learn[=CAP]") && strstr(usage, "(default: 64)") &&
		      strstr(usage, "  -h, --help") && strstr(usage, "  -v, --verbose") &&
		      strstr(usage, "Examples:\n  vigil test --port 1\n") && widest <= 79,
	      "the usage: sections, every default from the defaults struct (scaled back), the "
	      "built-in -h and -v, examples, nothing wider than 79 columns (widest %d)", widest);
	struct topts zero = tdefaults;
	zero.off = NULL;
	free(usage);
	usage = NULL;
	f = open_memstream(&usage, &len);
	vg_opts_usage(&tcmd, &zero, f);
	fclose(f);
	CHECK(strstr(usage, "(default: off)") && !strstr(usage, "(default: 0)"),
	      "a NULL default shows the zero text; a pair or range at 0 shows no default");
	free(usage);
}

/* ---------------------------------------------------------------- json */

static char *json_of(void (*fn)(struct vg_json *j, const void *arg), const void *arg)
{
	struct vg_json j;
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	vg_json_begin(&j, f);
	fn(&j, arg);
	vg_json_end(&j);
	fclose(f);
	return buf;
}

static void one_string(struct vg_json *j, const void *s)
{
	vg_json_string(j, s);
}

static void nested(struct vg_json *j, const void *arg)
{
	(void)arg;
	vg_json_obj(j);
	vg_json_u64_field(j, "a", 18446744073709551615ULL);
	vg_json_s64_field(j, "b", -5);
	vg_json_arr_field(j, "c");
	vg_json_bool(j, true);
	vg_json_null(j);
	vg_json_obj(j);
	vg_json_close(j);
	vg_json_double(j, "%.1f", 1.25);
	vg_json_double(j, "%.1f", 1.0 / 0.0);
	vg_json_close(j);
	vg_json_str_field(j, "d", NULL);
	vg_json_raw_field(j, "e", "{\"x\":1}");
	vg_json_raw_field(j, "f", "");
	vg_json_obj_field(j, "g"); /* left open: vg_json_end closes it */
}

static void test_json(void)
{
	static const struct {
		const char *in, *out;
	} strings[] = {
		{ "plain", "\"plain\"\n" },
		{ "q\"uote", "\"q\\\"uote\"\n" },
		{ "back\\slash", "\"back\\\\slash\"\n" },
		{ "new\nline\ttab\rcr\bbs\ffeed", "\"new\\nline\\ttab\\rcr\\bbs\\ffeed\"\n" },
		{ "\x01\x1f\x7f", "\"\\u0001\\u001f\\u007f\"\n" },
		{ "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"\n" },
		{ "bad\xff\xc3(\xed\xa0\x80\xc0\xaf", "\"bad\\ufffd\\ufffd(\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd\"\n" },
	};
	char *out;

	for (size_t i = 0; i < sizeof(strings) / sizeof(strings[0]); i++) {
		out = json_of(one_string, strings[i].in);
		diag("got %s", out);
		CHECK(!strcmp(out, strings[i].out),
		      "string %zu: quotes, backslashes, control characters escaped; UTF-8 kept, "
		      "invalid bytes (stray, truncated, surrogate, overlong) become U+FFFD", i);
		free(out);
	}
	out = json_of(nested, NULL);
	diag("got %s", out);
	CHECK(!strcmp(out, "{\"a\":18446744073709551615,\"b\":-5,\"c\":[true,null,{},1.2,null],"
			   "\"d\":null,\"e\":{\"x\":1},\"f\":null,\"g\":{}}\n"),
	      "commas, nesting, keys, null for a NULL string and a non-finite number, raw JSON, "
	      "what is left open closed by vg_json_end");
	free(out);
}

/* Reading fields back: what a consumer of the event lines needs. */
static void test_json_read(void)
{
	static const char doc[] = " { \"a\" : 18446744073709551615, \"s\":\"q\\\"\\\\\\n\","
				  "\"o\":{\"a\":2,\"x\":[1,{\"y\":\"}\"}]},\"t\":true,\"b\":7}";
	static const char *const bad[] = {
		"", "[]", "{", "{\"b\":}", "{\"a\":1 \"b\":7}", "{\"a\":\"x}", "{\"a\":[1,}, \"b\":7}",
		"{\"a\":\"\x01\",\"b\":7}",
	};
	char buf[16];
	size_t n;
	__u64 v = 0;
	const char *p;

	CHECK(vg_json_get_u64(doc, sizeof(doc) - 1, "a", &v) && v == UINT64_MAX,
	      "a top-level number, up to 2^64-1");
	CHECK(vg_json_get_u64(doc, sizeof(doc) - 1, "b", &v) && v == 7,
	      "the member after a nested object whose strings hold braces");
	CHECK(vg_json_get_str(doc, sizeof(doc) - 1, "s", buf, sizeof(buf)) &&
	      !strcmp(buf, "q\"\\\n"), "a string, unescaped");
	p = vg_json_lookup(doc, sizeof(doc) - 1, "o", &n);
	CHECK(p && n == 25 && *p == '{', "an object member whole (%zu bytes)", n);
	CHECK(!vg_json_get_u64(doc, sizeof(doc) - 1, "x", &v) && !vg_json_get_u64(doc, sizeof(doc) - 1, "t", &v) &&
	      !vg_json_get_str(doc, sizeof(doc) - 1, "a", buf, sizeof(buf)),
	      "a nested key is not a member; a bool is not a number, a number not a string");
	CHECK(!vg_json_get_u64(doc, 20, "b", &v), "a truncated document hides what is past its end");
	CHECK(!vg_json_get_str("{\"s\":\"0123456789abcdef\"}", 24, "s", buf, sizeof(buf)),
	      "a string longer than the buffer is refused, not cut");
	CHECK(!vg_json_get_u64("{\"a\":18446744073709551616}", 26, "a", &v),
	      "2^64 is refused");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK(!vg_json_get_u64(bad[i], strlen(bad[i]), "b", &v),
		      "malformed document %zu: nothing found", i);
}

/* --------------------------------------------------------------- fleet */

/* The fleet's verdict from its monitors', and exactly-once bookkeeping. */
static void test_fleet(void)
{
	static const struct {
		const char *what;
		__u8 v[3];
		bool live[3];
		enum vg_fleet_state want;
	} cases[] = {
		{ "all live monitors see it alive", { 1, 1, 1 }, { 1, 1, 1 }, VG_FLEET_ALIVE },
		{ "every live monitor says dead", { 3, 3, 3 }, { 1, 1, 1 }, VG_FLEET_DEAD },
		{ "dead for the live ones; the lost one's alive does not count", { 3, 3, 1 },
		  { 1, 1, 0 }, VG_FLEET_DEAD },
		{ "one dead, one alive: a partition, not a death", { 3, 1, 0 }, { 1, 1, 1 },
		  VG_FLEET_DISAGREE },
		{ "left for one, alive for another: disagreement", { 4, 1, 0 }, { 1, 1, 1 },
		  VG_FLEET_DISAGREE },
		{ "one suspects, the other hears it", { 2, 1, 0 }, { 1, 1, 1 }, VG_FLEET_SUSPECT },
		{ "one suspects, one says dead", { 2, 3, 0 }, { 1, 1, 1 }, VG_FLEET_SUSPECT },
		{ "dead for one, left for the other", { 3, 4, 0 }, { 1, 1, 1 }, VG_FLEET_DEAD },
		{ "left for all", { 4, 4, 0 }, { 1, 1, 1 }, VG_FLEET_LEFT },
		{ "no live monitor watches it", { 3, 1, 0 }, { 0, 0, 1 }, VG_FLEET_UNKNOWN },
	};
	struct vg_fleet f;
	char buf[64];
	bool ok = true;

	vg_fleet_init(&f);
	CHECK(vg_fleet_monitor(&f, "host-a") == 0 && vg_fleet_monitor(&f, "host-b") == 1 &&
	      vg_fleet_monitor(&f, "host-c") == 2 && vg_fleet_monitor(&f, "host-b") == 1 &&
	      vg_fleet_monitor(&f, "a.b") < 0 && vg_fleet_find_monitor(&f, "host-d") < 0,
	      "monitors by host name; a name that is not a subject token is refused");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct vg_fleet_agent *a = vg_fleet_agent(&f, 100 + i);

		for (__u32 m = 0; m < 3; m++) {
			vg_fleet_mon(&f, m)->live = cases[i].live[m];
			if (cases[i].v[m])
				vg_fleet_set_verdict(a, m, cases[i].v[m]);
		}
		CHECK(vg_fleet_judge(&f, a) == cases[i].want, "%s: %s", cases[i].what,
		      vg_fleet_state_name(vg_fleet_judge(&f, a)));
	}
	for (__u32 m = 0; m <= VG_FLEET_MAX_WATCHERS; m++) {
		snprintf(buf, sizeof(buf), "h%u", m);
		if (m >= 3)
			vg_fleet_monitor(&f, buf);
		if (m < VG_FLEET_MAX_WATCHERS)
			ok &= !vg_fleet_set_verdict(vg_fleet_agent(&f, 1), m, VG_VERDICT_ALIVE);
	}
	CHECK(ok && vg_fleet_set_verdict(vg_fleet_agent(&f, 1), VG_FLEET_MAX_WATCHERS, 1) < 0 &&
	      !vg_fleet_set_verdict(vg_fleet_agent(&f, 1), 2, VG_VERDICT_DEAD) &&
	      vg_fleet_verdict(vg_fleet_agent(&f, 1), 2) == VG_VERDICT_DEAD,
	      "at most %d monitors per agent", VG_FLEET_MAX_WATCHERS);

	/* (host-a, instance 7): 1, 2, then 5 (a hole 3-4), then 4, then 2 again. */
	ok = !vg_fleet_seen(&f, 0, 7, 1) && !vg_fleet_mark(&f, 0, 7, 1) && !vg_fleet_mark(&f, 0, 7, 2) &&
	     !vg_fleet_mark(&f, 0, 7, 5);
	vg_fleet_holes_fmt(vg_fleet_seen_of(&f, 0, 7), buf, sizeof(buf));
	CHECK(ok && !strcmp(buf, "3-4") && vg_fleet_seen(&f, 0, 7, 2) && !vg_fleet_seen(&f, 0, 7, 4) &&
	      !vg_fleet_seen(&f, 0, 7, 6) && !vg_fleet_seen(&f, 1, 7, 1) && !vg_fleet_seen(&f, 0, 8, 1),
	      "merged: 1, 2, 5; not 3-4 (a hole), 6, nor another host's or instance's 1 (%s)", buf);
	vg_fleet_mark(&f, 0, 7, 4);
	vg_fleet_holes_fmt(vg_fleet_seen_of(&f, 0, 7), buf, sizeof(buf));
	CHECK(!strcmp(buf, "3-3") && vg_fleet_seen(&f, 0, 7, 4), "a late event fills its hole (%s)", buf);
	vg_fleet_mark(&f, 0, 7, 10);
	vg_fleet_mark(&f, 0, 7, 8);
	vg_fleet_holes_fmt(vg_fleet_seen_of(&f, 0, 7), buf, sizeof(buf));
	CHECK(!strcmp(buf, "3-3,6-7,9-9"), "a late event in the middle splits its hole (%s)", buf);
	CHECK(!vg_fleet_seen_set(&f, 1, 9, 20, "2-3,6-7") && vg_fleet_seen(&f, 1, 9, 5) &&
	      !vg_fleet_seen(&f, 1, 9, 7) && vg_fleet_seen(&f, 1, 9, 20) && !vg_fleet_seen(&f, 1, 9, 21),
	      "the record a fleet record carries is read back");
	CHECK(vg_fleet_seen_set(&f, 1, 9, 20, "6-7,2-3") && vg_fleet_seen_set(&f, 1, 9, 20, "2-30") &&
	      vg_fleet_seen_set(&f, 1, 9, 20, "3-2") && vg_fleet_seen_set(&f, 1, 9, 20, "2-3;") &&
	      vg_fleet_seen(&f, 1, 9, 5), "malformed hole lists are refused and change nothing");
	for (__u64 s = 30; s < 30 + 2 * (VG_FLEET_MAX_HOLES + 2); s += 2)
		vg_fleet_mark(&f, 2, 1, s);
	CHECK(vg_fleet_seen_of(&f, 2, 1)->n_holes == VG_FLEET_MAX_HOLES && vg_fleet_seen(&f, 2, 1, 1) &&
	      !vg_fleet_seen(&f, 2, 1, 30 + 2 * (VG_FLEET_MAX_HOLES + 2) - 3),
	      "beyond %d holes the oldest are forgotten", VG_FLEET_MAX_HOLES);
	vg_fleet_free(&f);
}

/* -------------------------------------------------------------- config */

static int load_config(const char *path)
{
	struct vg_config c;
	int ret;

	memset(&c, 0, sizeof(c));
	ret = vg_config_load(path, &c);
	vg_config_free(&c);
	return ret;
}

static void test_config(void)
{
	struct vg_config c = {};
	const char *path;
	int lines, ret;

	path = write_file("agents.conf",
			  "# fleet\n"
			  "defaults interval-min-ms=20 interval-max-ms=5000 multiplier=3 group=web\n"
			  "agent 1 name=web-1   # trailing comment\n"
			  "agent 2\n"
			  "defaults group=db\n"
			  "agent 10 name=db-1 multiplier=4\n"
			  "allow db 198.18.0.0/15 fd00::/8\n"
			  "ack db\n"
			  "lease primary id=1 duration-ms=500 grace-ms=100 candidates=10:30,2\n",
			  0644);
	capture_begin();
	ret = vg_config_load(path, &c);
	lines = capture_end();
	CHECK(ret == 0 && !lines && c.n == 3 && c.agents[0].id == 1 &&
		      !strcmp(c.agents[0].name, "web-1") && !strcmp(c.agents[0].group, "web") &&
		      c.agents[0].interval_min_ms == 20 && c.agents[0].interval_max_ms == 5000 &&
		      !strcmp(c.agents[1].name, "agent-2") && !strcmp(c.agents[2].group, "db") &&
		      c.agents[2].multiplier == 4 && c.agents[2].interval_min_ms == 20,
	      "agents: defaults apply to the lines after them, each defaults line changes only "
	      "its keys, names default to agent-ID");
	CHECK(c.n_allow == 2 && !strcmp(c.allow[0].group, "db") && c.n_ack == 1 &&
		      !strcmp(c.ack[0], "db") && c.n_leases == 1 && c.leases[0].id == 1 &&
		      c.leases[0].duration_ms == 500 && c.leases[0].grace_ms == 100 &&
		      c.leases[0].n_cand == 2 && c.leases[0].cand[0].agent_id == 10 &&
		      c.leases[0].cand[0].priority == 30 && c.leases[0].cand[1].priority == 1,
	      "allow (two prefixes), ack, and a lease with candidates and default priority 1");
	vg_config_free(&c);

	{
		/* An allowlist prefix is keyed by its family, so an IPv6
		 * prefix (even ::/0) never covers an IPv4 source, nor the
		 * reverse. */
		static const __u8 v4[4] = { 198, 18, 0, 0 };
		struct allow_key k4, k6, kall, kcontains;
		__u32 gid = vigil_group_id("db", VIGIL_GROUP_LEN);

		CHECK(vg_prefix_parse("198.18.0.0/15", "db", &k4) == 0 && k4.family == 4 &&
			      k4.prefixlen == VIGIL_ALLOW_PREFIX_BASE + 15 && k4.group_id == gid &&
			      !memcmp(k4.addr, v4, 4) && !k4.addr[4] && !k4.addr[15],
		      "allow prefix 198.18.0.0/15: family 4, the address in its first 4 bytes");
		CHECK(vg_prefix_parse("fd00::/8", "db", &k6) == 0 && k6.family == 6 &&
			      k6.prefixlen == VIGIL_ALLOW_PREFIX_BASE + 8 && k6.addr[0] == 0xfd,
		      "allow prefix fd00::/8: family 6");
		CHECK(vg_prefix_parse("::/0", "db", &kall) == 0 && kall.family == 6 &&
			      kall.prefixlen == VIGIL_ALLOW_PREFIX_BASE,
		      "allow prefix ::/0 is all of IPv6 and nothing of IPv4 (family 6, no address bits)");
		CHECK(vg_prefix_parse("::/80", "db", &kcontains) == 0 && kcontains.family == 6 &&
			      vg_prefix_parse("::ffff:10.0.0.0/104", "db", &kcontains) == -2 &&
			      vg_prefix_parse("::ffff:0:0/95", "db", &kcontains) == 0,
		      "an IPv6 prefix inside ::ffff:0:0/96 is refused (-2); one that only "
		      "contains it is IPv6 like any other");
	}

	/* The errors docs/config.md lists, each "FILE:LINE: problem". */
	static const struct bad_file bad[] = {
		{ "agents 1\n", ":1: unknown directive 'agents' (expected agent, defaults, allow, ack or lease)" },
		{ "agent 0\n", ":1: 'agent' needs an id from 1 to 2^64-1 first, got '0'" },
		{ "agent 1\nagent 1\n", ":2: agent 1 is declared twice" },
		{ "agent 1 name\n", ":1: 'name' is not key=value" },
		{ "agent 1 colour=red\n", ":1: colour: unknown key (expected name, group, interval-min-ms, interval-max-ms, multiplier)" },
		{ "defaults name=x\n", ":1: name cannot be a default" },
		{ "agent 1 interval-min-ms=50 interval-max-ms=20\n", ":1: interval-min-ms is larger than interval-max-ms" },
		{ "agent 1 multiplier=101\n", ":1: multiplier: multiplier must be a whole number from 1 to 100" },
		{ "agent 1 interval-max-ms=3600001\n", ":1: interval-max-ms: interval-max-ms must be a whole number from 1 to 3600000" },
		{ "agent 1 group=a\"b\n", ":1: group: group must be 1-15 characters of [A-Za-z0-9._-]" },
		{ "allow\n", ":1: 'allow' needs a group name (1-15 characters of [A-Za-z0-9._-])" },
		{ "allow db\n", ":1: 'allow db' lists no prefix" },
		{ "allow db 10.0.0.0\n", ":1: '10.0.0.0' is not an address prefix like 198.18.0.0/15 or fd00::/8" },
		{ "allow db ::ffff:198.18.0.0/112\n", ":1: '::ffff:198.18.0.0/112' is an IPv4-mapped IPv6 prefix, which matches no source (such sources are refused); write the IPv4 prefix" },
		{ "allow db ::ffff:0:0/96\n", ":1: '::ffff:0:0/96' is an IPv4-mapped IPv6 prefix, which matches no source (such sources are refused); write the IPv4 prefix" },
		{ "ack a b\n", ":1: 'ack' takes one group name (1-15 characters of [A-Za-z0-9._-])" },
		{ "lease p id=1024 duration-ms=10 candidates=1\n", ":1: id: must be a whole number from 1 to 1023" },
		{ "lease p id=1\n", ":1: lease p needs id=, duration-ms= and candidates=" },
		{ "lease p id=1 duration-ms=10 candidates=x\n", ":1: candidates: expected up to 16 AGENT-ID[:PRIORITY] separated by commas" },
		{ "lease p id=1 duration-ms=10 candidates=1\nlease q id=1 duration-ms=10 candidates=1\n", ":2: lease q (id 1) is declared twice" },
	};
	check_bad_files("agents file", "bad.conf", 0644, load_config, bad, sizeof(bad) / sizeof(bad[0]));
	capture_begin();
	ret = vg_config_load("/nonexistent/agents.conf", &c);
	lines = capture_end();
	CHECK(ret == -1 && lines == 1 &&
		      strstr(err_line, "/nonexistent/agents.conf: cannot open agents file"),
	      "a missing agents file is one line naming it");

	struct vg_agent_def d;
	char v[64];

	vg_agent_def_default(&d, 7);
	CHECK(!vg_agent_def_set(&d, "interval-min-ms", "25") &&
		      (vg_agent_def_get(&d, "interval-min-ms", v, sizeof(v)), !strcmp(v, "25")) &&
		      vg_agent_def_set(&d, "interval-min-ms", "0") &&
		      (vg_agent_def_get(&d, "interval-min-ms", v, sizeof(v)), !strcmp(v, "25")),
	      "vg_agent_def_set/get: a key round-trips; a refused value changes nothing");
}

/* ---------------------------------------------------------------- keys */

static int load_keyfile(const char *path)
{
	struct vg_keyfile kf;
	int ret;

	memset(&kf, 0, sizeof(kf));
	ret = vg_keyfile_load(path, false, &kf);
	vg_keyfile_free(&kf);
	return ret;
}

static void test_keys(void)
{
	struct vg_keyfile kf = {};
	struct vigil_key k;
	const struct agent_auth *a;
	char hex[33];
	const char *path;
	int lines, ret;

	CHECK(vg_key_parse("00112233445566778899aabbccddeeff", &k) == 0 &&
		      (vg_key_format(&k, hex), !strcmp(hex, "00112233445566778899aabbccddeeff")) &&
		      vg_key_parse("00112233445566778899aabbccddeef", &k) &&
		      vg_key_parse("00112233445566778899aabbccddeefg", &k) &&
		      vg_key_parse("00112233445566778899aabbccddeeff0", &k),
	      "keys: 32 hex digits round-trip; 31, 33 or a non-hex digit are refused");
	path = write_file("keys", "# agent key-id key\n"
				  "7 0 00112233445566778899aabbccddeeff\n"
				  "7 1 FFEEDDCCBBAA99887766554433221100\n"
				  "9 1 0123456789abcdef0123456789abcdef  # a comment\n",
			  0600);
	capture_begin();
	ret = vg_keyfile_load(path, geteuid() == 0, &kf);
	lines = capture_end();
	a = vg_keyfile_get(&kf, 7);
	CHECK(ret == 0 && !lines && kf.agents.n == 2 && a && a->valid == 3 && vg_keyfile_get(&kf, 9) &&
		      vg_keyfile_get(&kf, 9)->valid == 2 && !vg_keyfile_get(&kf, 8),
	      "a key file: both keys of agent 7, key 1 of agent 9, comments, upper-case hex");
	vg_keyfile_free(&kf);

	static const struct bad_file bad[] = {
		{ "7 0\n", ":1: expected 'AGENT-ID KEY-ID KEY' (3 fields), got 2" },
		{ "7 2 00112233445566778899aabbccddeeff\n", ":1: key id '2' must be 0 or 1" },
		{ "7 0 0011\n", ":1: key must be 32 hex digits (128 bits)" },
		/* A 32-digit id with no key id: once read as agent 7, key 1. */
		{ "00000000000000000000000000000071 00112233445566778899aabbccddeeff\n",
		  ":1: expected 'AGENT-ID KEY-ID KEY' (3 fields), got 2" },
		{ "1 0 00112233445566778899aabbccddeeff\n1 0 00112233445566778899aabbccddeeff\n",
		  ":2: agent 1 key 0 is given twice" },
	};
	check_bad_files("key file", "badkeys", 0600, load_keyfile, bad, sizeof(bad) / sizeof(bad[0]));
	if (geteuid() == 0) {
		path = write_file("loose", "7 0 00112233445566778899aabbccddeeff\n", 0644);
		memset(&kf, 0, sizeof(kf));
		capture_begin();
		ret = vg_keyfile_load(path, true, &kf);
		lines = capture_end();
		diag("stderr: %s", err_line);
		CHECK(ret == -1 && lines == 1 &&
			      strstr(err_line, "key file must be owned by root with mode 0600 (it is "
					       "uid 0, mode 0644)") && strstr(err_line, "chmod 600"),
		      "the monitor refuses a key file others can read, and says how to fix it");
		vg_keyfile_free(&kf);
	} else {
		printf("# skip: the key file ownership check needs root (this run is uid %u)\n",
		       geteuid());
	}
}

/* ------------------------------------------------------------- secrets */

static void test_secrets(void)
{
	static const char *const urls[][2] = {
		{ "nats://alice:s3cret@127.0.0.1:4222", "nats://***@127.0.0.1:4222" },
		{ "tls://t0ken@[fd00::1]:4222/", "tls://***@[fd00::1]:4222" },
		{ "nats://127.0.0.1:4222", "nats://127.0.0.1:4222" },
		{ "https://hooks.example/services/T0/B0/XYZ?k=1", "https://hooks.example/..." },
		{ "http://u:p@h/?token=abc", "http://***@h/..." },
		{ "alice:s3cret@host", "(not shown)" },
	};
	struct vigil_key k, want;
	char buf[256];
	bool all = true;
	const char *path;
	int lines, ret;

	for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++) {
		vg_url_redact(urls[i][0], buf, sizeof(buf));
		diag("%s -> %s (want %s)", urls[i][0], buf, urls[i][1]);
		all &= !strcmp(buf, urls[i][1]) && !strstr(buf, "s3cret") && !strstr(buf, "t0ken");
	}
	vg_urls_redact("nats://a:pw1@h1:4222,nats://h2:4222", buf, sizeof(buf));
	diag("list -> %s", buf);
	CHECK(all && !strcmp(buf, "nats://***@h1:4222,nats://h2:4222"),
	      "URLs in logs: credentials become ***@, a path or query /..., a non-URL is not shown");
	CHECK(vg_url_has_secret("nats://a:b@h") && vg_url_has_secret("https://h/x?token=1") &&
		      !vg_url_has_secret("nats://h:4222") && !vg_url_has_secret("https://h/hook"),
	      "a URL with credentials or a query counts as a secret");

	vg_key_parse("00112233445566778899aabbccddeeff", &want);
	path = write_file("key1", "  00112233445566778899aabbccddeeff \n", 0600);
	capture_begin();
	ret = vg_key_from_file(path, &k, "--key-file");
	lines = capture_end();
	CHECK(ret == 0 && !lines && k.k0 == want.k0 && k.k1 == want.k1,
	      "--key-file: the key from a private file, blanks and line end around it ignored");
	path = write_file("key2", "00112233445566778899aabbccddeeff\n", 0640);
	capture_begin();
	ret = vg_key_from_file(path, &k, "--key-file");
	lines = capture_end();
	diag("stderr: %s", err_line);
	CHECK(ret == -1 && lines == 1 && strstr(err_line, "mode 0640") && strstr(err_line, "chmod 600"),
	      "--key-file: a file the group can read is refused, with the fix");
	path = write_file("key3", "\n", 0600);
	capture_begin();
	ret = vg_key_from_file(path, &k, "--key-file");
	lines = capture_end();
	diag("stderr: %s", err_line);
	CHECK(ret == -1 && lines == 1 && strstr(err_line, "--key-file: nothing read from"),
	      "--key-file: an empty file is refused");
	path = write_file("agentkeys", "7 0 00112233445566778899aabbccddeeff\n", 0644);
	capture_begin();
	ret = load_keyfile(path);
	lines = capture_end();
	diag("stderr: %s", err_line);
	CHECK(ret == -1 && lines == 1 && strstr(err_line, "key file must be owned by you or root and "
							  "private (it is uid") &&
		      strstr(err_line, "mode 0644"),
	      "an agent's key file (vigil beat --keys) that others can read is refused");

	struct vg_key_src ks = {};
	struct vg_opt key_opt = { .name = "key" }, file_opt = { .name = "key-file" };
	char hexarg[] = "00112233445566778899aabbccddeeff";

	capture_begin();
	ret = vg_key_opt(hexarg, &ks, &key_opt);
	lines = capture_end();
	CHECK(ret == 0 && ks.have && lines == 1 && strstr(err_line, "readable by every local user") &&
		      !strcmp(hexarg, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"),
	      "--key HEX: taken, warned about, and overwritten where it was (argv)");
	capture_begin();
	ret = vg_key_opt(path, &ks, &file_opt);
	lines = capture_end();
	CHECK(ret == -1 && lines == 1 && strstr(err_line, "give --key or --key-file, not both"),
	      "--key and --key-file together are refused, before either is read");
	setenv(VG_KEY_ENV, "ffeeddccbbaa99887766554433221100", 1);
	memset(&ks, 0, sizeof(ks));
	ret = vg_key_choose(&ks);
	vg_key_parse("ffeeddccbbaa99887766554433221100", &want);
	CHECK(ret == 0 && ks.have && ks.key.k0 == want.k0 && ks.key.k1 == want.k1,
	      "without --key or --key-file the key comes from " VG_KEY_ENV);
	setenv(VG_KEY_ENV, "nothex", 1);
	memset(&ks, 0, sizeof(ks));
	capture_begin();
	ret = vg_key_choose(&ks);
	lines = capture_end();
	unsetenv(VG_KEY_ENV);
	CHECK(ret == -1 && lines == 1 && strstr(err_line, VG_KEY_ENV ": must be 32 hex digits"),
	      "a bad " VG_KEY_ENV " is one line naming it");
}

int main(void)
{
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	test_options();
	test_json();
	test_json_read();
	test_fleet();
	test_config();
	test_keys();
	test_secrets();
	{
		char cmd[300];

		snprintf(cmd, sizeof(cmd), "rm -rf -- '%s'", tmpdir);
		if (system(cmd))
			perror("removing the temporary directory");
	}
	printf("# %u passed, %u failed\n", tap_count - tap_failed, tap_failed);
	return tap_failed ? 1 : 0;
}

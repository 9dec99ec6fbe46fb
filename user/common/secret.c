// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "common/keys.h"
#include "common/log.h"
#include "common/secret.h"

int vg_private_file_check(int fd, const char *path, const char *what)
{
	struct stat st;

	if (fstat(fd, &st)) {
		pr_warn("%s: cannot check %s: %s\n", path, what, strerror(errno));
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		pr_warn("%s: %s must be a regular file\n", path, what);
		return -1;
	}
	if ((st.st_uid != 0 && st.st_uid != geteuid()) || (st.st_mode & 077)) {
		pr_warn("%s: %s must be owned by you or root and private (it is uid %u, mode %04o); "
			"fix with: chmod 600 %s\n", path, what, (unsigned)st.st_uid,
			(unsigned)(st.st_mode & 07777), path);
		return -1;
	}
	return 0;
}

/* Without the line end and blanks around it. */
static char *trimmed(char *s)
{
	size_t n;

	while (isspace((unsigned char)*s))
		s++;
	n = strcspn(s, "\r\n");
	while (n && isspace((unsigned char)s[n - 1]))
		n--;
	s[n] = '\0';
	return s;
}

char *vg_secret_read(const char *path, const char *opt)
{
	bool is_stdin = !strcmp(path, "-");
	char *line = NULL, *out = NULL, what[96];
	size_t cap = 0;
	FILE *f = is_stdin ? stdin : fopen(path, "re");

	if (!f) {
		pr_warn("%s: cannot open %s: %s\n", opt, path, strerror(errno));
		return NULL;
	}
	snprintf(what, sizeof(what), "the file of %s", opt);
	if (!is_stdin && vg_private_file_check(fileno(f), path, what))
		goto out;
	if (getline(&line, &cap, f) < 0 || !*trimmed(line)) {
		pr_warn("%s: nothing read from %s\n", opt, is_stdin ? "stdin" : path);
		goto out;
	}
	out = strdup(trimmed(line));
	if (!out)
		pr_warn("%s: out of memory\n", opt);
out:
	if (line) /* not left lying in the heap */
		explicit_bzero(line, cap);
	free(line);
	if (!is_stdin)
		fclose(f);
	return out;
}

void vg_secret_on_argv(const char *arg, const char *opt, const char *instead)
{
	pr_warn("%s: a secret on the command line is readable by every local user "
		"(/proc/PID/cmdline); use %s\n", opt, instead);
	memset((char *)arg, 'x', strlen(arg));
}

static int key_from(const char *hex, struct vigil_key *k, const char *opt)
{
	if (vg_key_parse(hex, k)) {
		pr_warn("%s: must be 32 hex digits (128 bits)\n", opt);
		return -1;
	}
	return 0;
}

int vg_key_from_file(const char *path, struct vigil_key *k, const char *opt)
{
	char *hex = vg_secret_read(path, opt);
	int ret;

	if (!hex)
		return -1;
	ret = key_from(hex, k, opt);
	explicit_bzero(hex, strlen(hex));
	free(hex);
	return ret;
}

int vg_key_opt(const char *arg, void *field, const struct vg_opt *o)
{
	struct vg_key_src *ks = field;

	if (ks->have || ks->from_stdin || ks->file) {
		pr_warn("give --key or --key-file, not both\n");
		return -1;
	}
	if (!strcmp(o->name, "key-file"))
		ks->file = arg;
	else if (!strcmp(arg, "-"))
		ks->from_stdin = true;
	else if (key_from(arg, &ks->key, "--key"))
		return -1;
	else
		vg_secret_on_argv(arg, "--key", "--key-file FILE, --key - (stdin) or " VG_KEY_ENV);
	ks->have = !ks->file && !ks->from_stdin;
	return 0;
}

int vg_key_choose(struct vg_key_src *ks)
{
	const char *hex = getenv(VG_KEY_ENV);
	int ret = 0;

	if (ks->file || ks->from_stdin)
		ret = vg_key_from_file(ks->file ? ks->file : "-", &ks->key,
				       ks->file ? "--key-file" : "--key");
	else if (!ks->have && hex)
		ret = key_from(hex, &ks->key, VG_KEY_ENV);
	else
		return 0;
	ks->have = ret == 0;
	return ret;
}

/* The parts of scheme://[userinfo@]host[:port][/path][?query]. */
struct url_parts {
	size_t scheme; /* length of "scheme://" (0: not a URL) */
	const char *auth;
	size_t auth_len; /* userinfo@host:port */
	const char *host; /* after any userinfo@ */
	bool has_userinfo, has_rest;
};

static struct url_parts url_split(const char *url)
{
	struct url_parts u = {};
	const char *sep = strstr(url, "://"), *at;

	if (!sep || sep == url || strcspn(url, ":/?@") != (size_t)(sep - url))
		return u;
	u.scheme = (size_t)(sep - url) + 3;
	u.auth = url + u.scheme;
	u.auth_len = strcspn(u.auth, "/?#");
	at = memrchr(u.auth, '@', u.auth_len);
	u.has_userinfo = at != NULL;
	u.host = at ? at + 1 : u.auth;
	u.has_rest = u.auth[u.auth_len] && strcmp(u.auth + u.auth_len, "/");
	return u;
}

bool vg_url_has_secret(const char *url)
{
	return strpbrk(url, "@?") != NULL;
}

const char *vg_url_redact(const char *url, char *buf, size_t len)
{
	struct url_parts u = url_split(url);

	if (!u.scheme)
		snprintf(buf, len, "(not shown)");
	else
		snprintf(buf, len, "%.*s%s%.*s%s", (int)u.scheme, url, u.has_userinfo ? "***@" : "",
			 (int)(u.auth + u.auth_len - u.host), u.host, u.has_rest ? "/..." : "");
	return buf;
}

const char *vg_urls_redact(const char *urls, char *buf, size_t len)
{
	size_t used = 0;

	buf[0] = '\0';
	for (const char *p = urls; *p && used + 1 < len;) {
		size_t n = strcspn(p, ",");
		char one[1024], shown[1024];

		snprintf(one, sizeof(one), "%.*s", (int)n, p);
		vg_url_redact(one, shown, sizeof(shown));
		used += (size_t)snprintf(buf + used, len - used, "%s%s", used ? "," : "", shown);
		p += n + (p[n] == ',');
	}
	return buf;
}

/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * Secrets handed to commands: agent keys, URLs that carry credentials.
 * Given on the command line they are readable by every local user in
 * /proc/PID/cmdline (ps shows them), so each can also come from a private
 * file, the environment (/proc/PID/environ is readable by the same user
 * and root only) or stdin (docs/security.md#secrets-on-the-command-line).
 */
#ifndef VIGIL_SECRET_H
#define VIGIL_SECRET_H

#include <stdbool.h>
#include <stddef.h>
#include "vigil/auth.h"
#include "common/options.h"

/* Is the open file fd (named path, a `what` for the message) private: a
 * regular file owned by root or the caller, with no access for group or
 * others? -1 after one line that says how to fix it. */
int vg_private_file_check(int fd, const char *path, const char *what);

/* The first line of a private file (vg_private_file_check) or, for path
 * "-", of stdin, without the line end or surrounding blanks: malloc'd. NULL
 * after one line naming opt (an option's name, "--key-file") and the problem
 * (unreadable, not private, empty). */
char *vg_secret_read(const char *path, const char *opt);

/* A secret given on the command line (opt's argument arg): warn that any
 * local user can read it, naming the safer forms `instead`, and overwrite
 * it in argv so /proc/PID/cmdline no longer shows it from here on (it did
 * until now: this narrows the window, it does not close it). arg must
 * point into argv and no longer be needed. */
void vg_secret_on_argv(const char *arg, const char *opt, const char *instead);

/* An agent's key, from `--key HEX|-`, `--key-file FILE` or the environment
 * variable VIGIL_KEY. The two options are one field of the command's
 * options (VG_OPT_KEY); they only note where the key is, and
 * vg_key_choose() reads it once the command line is known to be good. */
struct vg_key_src {
	struct vigil_key key;
	bool have;        /* key holds it (after vg_key_choose: from any source) */
	bool from_stdin;  /* --key - */
	const char *file; /* --key-file */
};

#define VG_KEY_ENV "VIGIL_KEY"
int vg_key_opt(const char *arg, void *field, const struct vg_opt *o);
/* --key HEX|- and --key-file FILE, into the vg_key_src field f of T; the
 * help says what the key is for. */
#define VG_OPT_KEY(T, f, what)                                                              \
	{ VG_OPT_FUNC(0, "key-file", T, f, vg_key_opt, "FILE",                             \
		      what " from FILE (32 hex digits), private to you (mode 0600); or "  \
		      "set " VG_KEY_ENV) },                                                 \
	{ VG_OPT_FUNC(0, "key", T, f, vg_key_opt, "HEX|-",                                 \
		      "the same from the command line (warned: every local user can read "   \
		      "it there), or from stdin (-)") }
/* The key, from where the options said, or else from VIGIL_KEY if set:
 * 0 (ks->have says whether there is one), or -1 after one line. */
int vg_key_choose(struct vg_key_src *ks);

/* A private file's key (for --key-file; 32 hex digits on its first line). */
int vg_key_from_file(const char *path, struct vigil_key *k, const char *opt);

/* Does the URL (or comma-separated list of them) carry credentials
 * (user:password@, token@) or a query string? Such a URL is warned about
 * on the command line. */
bool vg_url_has_secret(const char *url);
/* The URL as logs may show it: scheme://host[:port], with "***@" for any
 * credentials and "/..." for any path or query, in buf (len bytes). A
 * string that is not scheme://... is shown as "(not shown)". Returns buf. */
const char *vg_url_redact(const char *url, char *buf, size_t len);
/* The same for a comma-separated list of URLs. */
const char *vg_urls_redact(const char *urls, char *buf, size_t len);

#endif

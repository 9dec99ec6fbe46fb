/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * The one JSON writer, in the manner of bpftool's json_writer.c: it streams
 * to a FILE (stdout, a file, or open_memstream() for a webhook body or an
 * export payload), puts the commas itself and escapes every string, so no
 * output is ever a format string with quotes in it.
 *
 *   struct vg_json j;
 *   vg_json_begin(&j, stdout);
 *   vg_json_obj(&j);
 *   vg_json_u64_field(&j, "agent_id", 7);
 *   vg_json_str_field(&j, "name", name);     // quotes, \, control bytes escaped
 *   vg_json_end(&j);                         // closes what is open, then '\n'
 *
 * Strings are written as valid JSON whatever their bytes: control
 * characters as \uXXXX (or \n, \t...), bytes that are not UTF-8 as U+FFFD.
 */
#ifndef VIGIL_JSON_H
#define VIGIL_JSON_H

#include <stdbool.h>
#include <stdio.h>
#include <linux/types.h>

#define VG_JSON_MAX_DEPTH 16

struct vg_json {
	FILE *f;
	unsigned depth;
	bool need_comma; /* a value was written at this depth */
	bool after_key;  /* the next value belongs to a key */
	char closer[VG_JSON_MAX_DEPTH];
};

void vg_json_begin(struct vg_json *j, FILE *f);
/* Close whatever is still open and end the line. */
void vg_json_end(struct vg_json *j);

void vg_json_obj(struct vg_json *j);
void vg_json_arr(struct vg_json *j);
void vg_json_close(struct vg_json *j); /* the innermost object or array */
void vg_json_key(struct vg_json *j, const char *key);

void vg_json_string(struct vg_json *j, const char *s); /* NULL: null */
void vg_json_u64(struct vg_json *j, __u64 v);
void vg_json_s64(struct vg_json *j, __s64 v);
void vg_json_bool(struct vg_json *j, bool v);
void vg_json_null(struct vg_json *j);
/* Text that is JSON already (an event line kept in the log); empty: null. */
void vg_json_raw(struct vg_json *j, const char *json);
/* A number printed with fmt ("%.3f"); not finite: null. */
void vg_json_double(struct vg_json *j, const char *fmt, double v);

/* key: value */
void vg_json_str_field(struct vg_json *j, const char *key, const char *s);
void vg_json_u64_field(struct vg_json *j, const char *key, __u64 v);
void vg_json_s64_field(struct vg_json *j, const char *key, __s64 v);
void vg_json_bool_field(struct vg_json *j, const char *key, bool v);
void vg_json_double_field(struct vg_json *j, const char *key, const char *fmt, double v);
void vg_json_raw_field(struct vg_json *j, const char *key, const char *json);
/* key: { ... opened, for the caller to fill and vg_json_close() */
void vg_json_obj_field(struct vg_json *j, const char *key);
void vg_json_arr_field(struct vg_json *j, const char *key);

/* s as a JSON string, quotes included, for a caller that is not writing a
 * whole document (a Prometheus label is not JSON: it has its own escaping). */
void vg_json_write_string(FILE *f, const char *s);

/* Reading back a flat field of one JSON object (an event line, a fleet
 * record), for the few fields a consumer needs; the object is checked for
 * well-formedness up to the key. The value's text (a string with its quotes
 * and escapes, a number, a whole object or array) and its length, or NULL
 * when the key is not a top-level member. */
const char *vg_json_lookup(const char *doc, size_t len, const char *key, size_t *vlen);
/* A member that is an unsigned integer; false if missing, not one, or too big. */
bool vg_json_get_u64(const char *doc, size_t len, const char *key, __u64 *out);
/* A member that is a string, unescaped into buf (size bytes with the NUL);
 * false if missing, not a string, too long, or with a \u escape. */
bool vg_json_get_str(const char *doc, size_t len, const char *key, char *buf, size_t size);

#endif

// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/* The one JSON writer (common/json.h). */
#include <math.h>
#include <stdint.h>
#include <string.h>
#include "common/json.h"

void vg_json_begin(struct vg_json *j, FILE *f)
{
	j->f = f;
	j->depth = 0;
	j->need_comma = false;
	j->after_key = false;
}

/* Before any value or key: the comma that separates it from the last. */
static void sep(struct vg_json *j)
{
	if (j->after_key)
		j->after_key = false;
	else if (j->need_comma)
		fputc(',', j->f);
	j->need_comma = true;
}

static void open_level(struct vg_json *j, char c, char closer)
{
	sep(j);
	fputc(c, j->f);
	if (j->depth < VG_JSON_MAX_DEPTH)
		j->closer[j->depth] = closer;
	j->depth++;
	j->need_comma = false;
}

void vg_json_obj(struct vg_json *j)
{
	open_level(j, '{', '}');
}

void vg_json_arr(struct vg_json *j)
{
	open_level(j, '[', ']');
}

void vg_json_close(struct vg_json *j)
{
	if (!j->depth)
		return;
	j->depth--;
	fputc(j->depth < VG_JSON_MAX_DEPTH ? j->closer[j->depth] : '}', j->f);
	j->need_comma = true;
	j->after_key = false;
}

void vg_json_end(struct vg_json *j)
{
	while (j->depth)
		vg_json_close(j);
	fputc('\n', j->f);
	j->need_comma = false;
}

/* Length of the UTF-8 sequence at s (1-4), or 0 when it is not one:
 * overlong forms, surrogates and code points above U+10FFFF are not. */
static int utf8_len(const unsigned char *s)
{
	unsigned char c = s[0];
	int n;
	__u32 cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		n = 2, cp = c & 0x1f;
	else if (c >= 0xe0 && c <= 0xef)
		n = 3, cp = c & 0x0f;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 4, cp = c & 0x07;
	else
		return 0;
	for (int i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return n;
}

void vg_json_write_string(FILE *f, const char *str)
{
	const unsigned char *s = (const unsigned char *)str;

	fputc('"', f);
	while (*s) {
		int n = utf8_len(s);

		switch (*s) {
		case '"': fputs("\\\"", f); break;
		case '\\': fputs("\\\\", f); break;
		case '\n': fputs("\\n", f); break;
		case '\r': fputs("\\r", f); break;
		case '\t': fputs("\\t", f); break;
		case '\b': fputs("\\b", f); break;
		case '\f': fputs("\\f", f); break;
		default:
			if (*s < 0x20 || *s == 0x7f)
				fprintf(f, "\\u%04x", *s);
			else if (n == 0)
				fputs("\\ufffd", f); /* not UTF-8: the replacement character */
			else
				fwrite(s, 1, (size_t)n, f);
		}
		s += n ? n : 1;
	}
	fputc('"', f);
}

void vg_json_key(struct vg_json *j, const char *key)
{
	sep(j);
	vg_json_write_string(j->f, key);
	fputc(':', j->f);
	j->after_key = true;
}

void vg_json_string(struct vg_json *j, const char *s)
{
	sep(j);
	if (s)
		vg_json_write_string(j->f, s);
	else
		fputs("null", j->f);
}

void vg_json_u64(struct vg_json *j, __u64 v)
{
	sep(j);
	fprintf(j->f, "%llu", (unsigned long long)v);
}

void vg_json_s64(struct vg_json *j, __s64 v)
{
	sep(j);
	fprintf(j->f, "%lld", (long long)v);
}

void vg_json_bool(struct vg_json *j, bool v)
{
	sep(j);
	fputs(v ? "true" : "false", j->f);
}

void vg_json_null(struct vg_json *j)
{
	sep(j);
	fputs("null", j->f);
}

void vg_json_raw(struct vg_json *j, const char *json)
{
	sep(j);
	fputs(json && *json ? json : "null", j->f);
}

void vg_json_double(struct vg_json *j, const char *fmt, double v)
{
	sep(j);
	if (isfinite(v))
		fprintf(j->f, fmt, v);
	else
		fputs("null", j->f);
}

void vg_json_str_field(struct vg_json *j, const char *key, const char *s)
{
	vg_json_key(j, key);
	vg_json_string(j, s);
}

void vg_json_u64_field(struct vg_json *j, const char *key, __u64 v)
{
	vg_json_key(j, key);
	vg_json_u64(j, v);
}

void vg_json_s64_field(struct vg_json *j, const char *key, __s64 v)
{
	vg_json_key(j, key);
	vg_json_s64(j, v);
}

void vg_json_bool_field(struct vg_json *j, const char *key, bool v)
{
	vg_json_key(j, key);
	vg_json_bool(j, v);
}

void vg_json_double_field(struct vg_json *j, const char *key, const char *fmt, double v)
{
	vg_json_key(j, key);
	vg_json_double(j, fmt, v);
}

void vg_json_obj_field(struct vg_json *j, const char *key)
{
	vg_json_key(j, key);
	vg_json_obj(j);
}

void vg_json_arr_field(struct vg_json *j, const char *key)
{
	vg_json_key(j, key);
	vg_json_arr(j);
}

void vg_json_raw_field(struct vg_json *j, const char *key, const char *json)
{
	vg_json_key(j, key);
	vg_json_raw(j, json);
}

/* ------------------------------------------------------------- reading */

/* The end of the string whose opening quote is at p, or NULL. */
static const char *skip_string(const char *p, const char *end)
{
	for (p++; p < end; p++) {
		if (*p == '\\')
			p++;
		else if (*p == '"')
			return p + 1;
		else if ((unsigned char)*p < 0x20)
			return NULL;
	}
	return NULL;
}

static const char *skip_ws(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	return p;
}

/* The end of the value at p (after white space), or NULL if it is not one. */
static const char *skip_value(const char *p, const char *end, unsigned depth)
{
	p = skip_ws(p, end);
	if (p >= end || depth > VG_JSON_MAX_DEPTH)
		return NULL;
	if (*p == '"')
		return skip_string(p, end);
	if (*p == '{' || *p == '[') {
		char close = *p == '{' ? '}' : ']';

		p = skip_ws(p + 1, end);
		if (p < end && *p == close)
			return p + 1;
		for (;;) {
			if (close == '}') {
				p = skip_ws(p, end);
				if (p >= end || *p != '"' || !(p = skip_string(p, end)))
					return NULL;
				p = skip_ws(p, end);
				if (p >= end || *p++ != ':')
					return NULL;
			}
			p = skip_value(p, end, depth + 1);
			if (!p)
				return NULL;
			p = skip_ws(p, end);
			if (p < end && *p == ',') {
				p++;
				continue;
			}
			return p < end && *p == close ? p + 1 : NULL;
		}
	}
	{
		const char *s = p;

		while (p < end && ((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') ||
				   *p == '-' || *p == '+' || *p == '.' || *p == 'E'))
			p++;
		return p > s ? p : NULL;
	}
}

const char *vg_json_lookup(const char *doc, size_t len, const char *key, size_t *vlen)
{
	const char *end = doc + len, *p = skip_ws(doc, end);
	size_t klen = strlen(key);

	if (p >= end || *p++ != '{')
		return NULL;
	p = skip_ws(p, end);
	if (p < end && *p == '}')
		return NULL;
	while (p < end) {
		const char *k = p, *v, *ve;

		if (*p != '"' || !(p = skip_string(p, end)))
			return NULL;
		p = skip_ws(p, end);
		if (p >= end || *p++ != ':')
			return NULL;
		v = skip_ws(p, end);
		ve = skip_value(v, end, 1);
		if (!ve)
			return NULL;
		if ((size_t)(p - 1 - k) >= klen + 2 && !memcmp(k + 1, key, klen) && k[klen + 1] == '"') {
			*vlen = (size_t)(ve - v);
			return v;
		}
		p = skip_ws(ve, end);
		if (p < end && *p == ',')
			p = skip_ws(p + 1, end);
		else
			return NULL;
	}
	return NULL;
}

bool vg_json_get_u64(const char *doc, size_t len, const char *key, __u64 *out)
{
	size_t n;
	const char *v = vg_json_lookup(doc, len, key, &n);
	__u64 x = 0;

	if (!v || !n || n > 20)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (v[i] < '0' || v[i] > '9' || x > (UINT64_MAX - (__u64)(v[i] - '0')) / 10)
			return false;
		x = x * 10 + (__u64)(v[i] - '0');
	}
	*out = x;
	return true;
}

bool vg_json_get_str(const char *doc, size_t len, const char *key, char *buf, size_t size)
{
	size_t n, o = 0;
	const char *v = vg_json_lookup(doc, len, key, &n);

	if (!v || n < 2 || *v != '"' || !size)
		return false;
	for (size_t i = 1; i + 1 < n; i++) {
		char c = v[i];

		if (c == '\\') {
			static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
			const char *e = v[++i] ? strchr(from, v[i]) : NULL;

			if (!e) /* \uXXXX: not in the fields read back */
				return false;
			c = to[e - from];
		}
		if (o + 1 >= size)
			return false;
		buf[o++] = c;
	}
	buf[o] = '\0';
	return true;
}

// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/* SQLite helpers (common/sql.h). */
#include <stdarg.h>
#include <stddef.h>
#include <sqlite3.h>
#include "common/log.h"
#include "common/sql.h"

bool vg_sql_exec(sqlite3 *db, const char *sql)
{
	return sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK;
}

int vg_sql_exec_or_say(sqlite3 *db, const char *sql, const char *what)
{
	if (vg_sql_exec(db, sql))
		return 0;
	pr_warn("%s failed: %s\n", what, sqlite3_errmsg(db));
	return -1;
}

/* Bind the arguments to st's parameters, as the format says (sql.h). */
static void bind(sqlite3_stmt *st, const char *fmt, va_list ap)
{
	int i = 1;

	for (const char *f = fmt; *f; f++, i++) {
		if (*f == 'i') {
			sqlite3_bind_int64(st, i, va_arg(ap, long long));
		} else {
			const char *t = va_arg(ap, const char *);

			if (t)
				sqlite3_bind_text(st, i, t, -1, SQLITE_TRANSIENT);
			else
				sqlite3_bind_null(st, i);
		}
	}
}

static sqlite3_stmt *prepare(sqlite3 *db, const char *sql, const char *fmt, va_list ap)
{
	sqlite3_stmt *st;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return NULL;
	bind(st, fmt, ap);
	return st;
}

sqlite3_stmt *vg_sql_prepare(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st;

	if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK)
		return NULL;
	return st;
}

bool vg_sql_step(sqlite3_stmt *st, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	bind(st, fmt, ap);
	va_end(ap);
	rc = sqlite3_step(st);
	sqlite3_reset(st); /* the next run binds every parameter again */
	return rc == SQLITE_DONE;
}

bool vg_sql_run(sqlite3 *db, const char *sql, const char *fmt, ...)
{
	sqlite3_stmt *st;
	va_list ap;
	int rc;

	va_start(ap, fmt);
	st = prepare(db, sql, fmt, ap);
	va_end(ap);
	if (!st)
		return false;
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE;
}

bool vg_sql_u64(sqlite3 *db, __u64 *out, const char *sql, const char *fmt, ...)
{
	sqlite3_stmt *st;
	va_list ap;
	bool found = false;

	*out = 0;
	va_start(ap, fmt);
	st = db ? prepare(db, sql, fmt, ap) : NULL;
	va_end(ap);
	if (!st)
		return false;
	if (sqlite3_step(st) == SQLITE_ROW) {
		*out = (__u64)sqlite3_column_int64(st, 0);
		found = true;
	}
	sqlite3_finalize(st);
	return found;
}

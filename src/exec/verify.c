/*
 * exec/verify.c - the chunked row-by-row comparison of exec/verify.h.
 *
 * A chunk is (last, hi] in key order: hi is the batch-th key after last,
 * found in the chunk's own snapshot, or none for the last chunk (to the
 * end of the table).  Keys travel as the text of each key column, bound as
 * parameters.
 */
#include "config.h"

#include "exec/verify.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/clock.h"
#include "core/dialect.h"
#include "core/strbuf.h"
#include "core/xmalloc.h"

static void
add_key_list(enum db_backend b, const struct exec_verify *v, struct strbuf *sb)
{
	size_t i;

	for (i = 0; i < v->n_keys; i++) {
		if (i)
			strbuf_addstr(sb, ", ");
		dialect_quote_ident(b, sb, v->keys[i]);
	}
}

/* "k op $n" or "(a, b) op ($n, $n+1)"; returns the next parameter number. */
static int
add_key_cmp(enum db_backend b, const struct exec_verify *v, const char *op, int n,
	    struct strbuf *sb)
{
	size_t i;
	bool row = v->n_keys > 1;

	strbuf_addstr(sb, row ? "(" : "");
	add_key_list(b, v, sb);
	strbuf_addf(sb, "%s %s %s", row ? ")" : "", op, row ? "(" : "");
	for (i = 0; i < v->n_keys; i++)
		strbuf_addf(sb, "%s$%d", i ? ", " : "", n++);
	strbuf_addstr(sb, row ? ")" : "");
	return n;
}

/* " WHERE (keys) > last AND (keys) <= hi", either bound left out when absent. */
static void
add_range(enum db_backend b, const struct exec_verify *v, bool lo, bool hi, struct strbuf *sb)
{
	int n = 1;

	strbuf_addstr(sb, " WHERE 1 = 1");
	if (lo) {
		strbuf_addstr(sb, " AND ");
		n = add_key_cmp(b, v, ">", n, sb);
	}
	if (hi) {
		strbuf_addstr(sb, " AND ");
		add_key_cmp(b, v, "<=", n, sb);
	}
}

/* Key values longer than this are cut (on a character boundary) in messages. */
#define KEY_TEXT_MAX 64

/* The key values of row r of res as "id=42" or "(a=1, b=x)"; owned. */
static char *
key_text(const struct exec_verify *v, const struct db_result *res, size_t r)
{
	struct strbuf sb = STRBUF_INIT;
	size_t i;

	if (v->n_keys > 1)
		strbuf_addch(&sb, '(');
	for (i = 0; i < v->n_keys; i++) {
		const char *val = db_result_value(res, r, i);
		size_t len = val ? strlen(val) : 0, cut = len;

		if (len > KEY_TEXT_MAX) {
			cut = KEY_TEXT_MAX - 3;
			while (cut > 0 && ((unsigned char)val[cut] & 0xC0) == 0x80)
				cut--;
		}
		strbuf_addf(&sb, "%s%s=%.*s%s", i ? ", " : "", v->keys[i], (int)cut,
			    val ? val : "NULL", cut < len ? "..." : "");
	}
	if (v->n_keys > 1)
		strbuf_addch(&sb, ')');
	return strbuf_detach(&sb);
}

static void
free_values(char **vals, size_t n)
{
	size_t i;

	if (vals == NULL)
		return;
	for (i = 0; i < n; i++)
		free(vals[i]);
	free(vals);
}

static const char *
begin_snapshot_sql(enum db_backend b)
{
	switch (b) {
	case DB_BACKEND_POSTGRESQL:
		return "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";
	case DB_BACKEND_MYSQL:
		return "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY";
	default:
		return "BEGIN DEFERRED";
	}
}

/*
 * One chunk after last (NULL: from the start), in one snapshot: its upper
 * key into *hi (NULL: the chunk ran to the end), its rows and differences
 * added to v.  Nothing is added unless the whole chunk succeeds.
 */
static int
run_chunk(struct db_conn *conn, struct exec_verify *v, char **last, long size, char ***hi,
	  struct dbphase_error *err)
{
	enum db_backend b = conn->drv->backend;
	struct db_param *params = xcalloc(2 * v->n_keys + 1, sizeof(*params));
	uint64_t *diff = xcalloc(v->n_cmps, sizeof(*diff));
	char ***found = xcalloc(v->n_cmps, sizeof(*found));
	size_t *n_found = xcalloc(v->n_cmps, sizeof(*n_found));
	struct db_result *res = NULL;
	struct strbuf sql = STRBUF_INIT;
	size_t i, k, np = 0;
	uint64_t rows = 0;
	int rc;

	*hi = NULL;
	if ((rc = db_exec(conn, begin_snapshot_sql(b), err)) < 0)
		goto out;
	conn->in_transaction = true;
	/* The upper key: the size-th key after last. */
	strbuf_addstr(&sql, "SELECT ");
	add_key_list(b, v, &sql);
	strbuf_addstr(&sql, " FROM ");
	dialect_quote_ident(b, &sql, v->table);
	if (last) {
		strbuf_addstr(&sql, " WHERE ");
		add_key_cmp(b, v, ">", 1, &sql);
		for (i = 0; i < v->n_keys; i++)
			params[np++] = DB_TEXT(last[i]);
	}
	strbuf_addstr(&sql, " ORDER BY ");
	add_key_list(b, v, &sql);
	strbuf_addf(&sql, " LIMIT 1 OFFSET $%zu", np + 1);
	params[np++] = DB_INT(size - 1);
	if ((rc = db_query(conn, sql.buf, params, np, &res, err)) < 0)
		goto fail;
	if (res->n_rows > 0) {
		*hi = xcalloc(v->n_keys, sizeof(char *));
		for (i = 0; i < v->n_keys; i++) {
			const char *val = db_result_value(res, 0, i);

			(*hi)[i] = xstrdup(val ? val : "");
		}
	}
	db_result_free(res);
	res = NULL;
	/* Rows in (last, hi], and the rows where each comparison finds a difference. */
	np = 0;
	if (last)
		for (i = 0; i < v->n_keys; i++)
			params[np++] = DB_TEXT(last[i]);
	if (*hi)
		for (i = 0; i < v->n_keys; i++)
			params[np++] = DB_TEXT((*hi)[i]);
	strbuf_reset(&sql);
	strbuf_addstr(&sql, "SELECT COUNT(*)");
	for (k = 0; k < v->n_cmps; k++)
		strbuf_addf(&sql, ", SUM(CASE WHEN %s THEN 1 ELSE 0 END)", v->cmps[k].differs_sql);
	strbuf_addstr(&sql, " FROM ");
	dialect_quote_ident(b, &sql, v->table);
	add_range(b, v, last != NULL, *hi != NULL, &sql);
	if ((rc = db_query(conn, sql.buf, params, np, &res, err)) < 0)
		goto fail;
	if (res->n_rows == 1) {
		const char *c = db_result_value(res, 0, 0);

		rows = c ? strtoull(c, NULL, 10) : 0;
		for (k = 0; k < v->n_cmps; k++) {
			const char *d = db_result_value(res, 0, k + 1);

			diff[k] = d ? strtoull(d, NULL, 10) : 0;
		}
	}
	db_result_free(res);
	res = NULL;
	/* Narrow a differing chunk to its first differing keys. */
	for (k = 0; k < v->n_cmps; k++) {
		size_t want = v->max_keys > v->cmps[k].n_keys ? v->max_keys - v->cmps[k].n_keys : 0;

		if (diff[k] == 0 || want == 0)
			continue;
		strbuf_reset(&sql);
		strbuf_addstr(&sql, "SELECT ");
		add_key_list(b, v, &sql);
		strbuf_addstr(&sql, " FROM ");
		dialect_quote_ident(b, &sql, v->table);
		add_range(b, v, last != NULL, *hi != NULL, &sql);
		strbuf_addf(&sql, " AND (%s) ORDER BY ", v->cmps[k].differs_sql);
		add_key_list(b, v, &sql);
		strbuf_addf(&sql, " LIMIT %zu", want);
		if ((rc = db_query(conn, sql.buf, params, np, &res, err)) < 0)
			goto fail;
		found[k] = xcalloc(res->n_rows + 1, sizeof(char *));
		for (i = 0; i < res->n_rows; i++)
			found[k][n_found[k]++] = key_text(v, res, i);
		db_result_free(res);
		res = NULL;
	}
	if ((rc = conn->drv->commit(conn, err)) < 0)
		goto fail;
	v->rows += rows;
	v->chunks++;
	for (k = 0; k < v->n_cmps; k++) {
		struct exec_compare *c = &v->cmps[k];

		c->differing += diff[k];
		if (n_found[k] == 0)
			continue;
		c->keys = xrealloc(c->keys, (c->n_keys + n_found[k]) * sizeof(char *));
		for (i = 0; i < n_found[k]; i++)
			c->keys[c->n_keys++] = found[k][i];
		n_found[k] = 0;
	}
	goto out;
fail:
	db_result_free(res);
	conn->drv->rollback(conn, &(struct dbphase_error)DBPHASE_ERROR_INIT);
	free_values(*hi, v->n_keys);
	*hi = NULL;
out:
	for (k = 0; k < v->n_cmps; k++)
		free_values(found[k], n_found[k]);
	free(found);
	free(n_found);
	free(diff);
	free(params);
	strbuf_release(&sql);
	return rc;
}

int
exec_verify_run(struct db_conn *conn, struct exec_verify *v, const struct exec_opts *o,
		struct dbphase_error *err)
{
	long size = o->batch_size > 0 ? o->batch_size : 1000;
	long max = o->max_batch_size >= size ? o->max_batch_size : size;
	uint64_t total = 0;
	char **last = NULL, **hi = NULL;
	int rc, attempt = 0;

	if ((rc = db_estimate_rows(conn, v->table, &total, err)) < 0)
		return err_prefixf(err, "verify of table '%s'", v->table);
	if (o->lock_timeout_ms > 0 &&
	    (rc = conn->drv->set_lock_timeout(conn, o->lock_timeout_ms, err)) < 0)
		return rc;
	for (;;) {
		double t0;

		if (o->stop && *o->stop) {
			rc = err_setf(err, DBPHASE_EINTERRUPTED,
				      "verify of table '%s' stopped by a signal", v->table);
			break;
		}
		t0 = clock_now_ms();
		rc = run_chunk(conn, v, last, size, &hi, err);
		if (rc < 0 && (rc == DBPHASE_ELOCK_TIMEOUT || err->retryable) &&
		    ++attempt <= o->max_retries) {
			/* A lock wait or a transient failure: the same chunk again, later. */
			v->retries++;
			clock_sleep_ms(100.0 * (1 << (attempt < 6 ? attempt - 1 : 5)));
			err_release(err);
			continue;
		}
		if (rc < 0) {
			err_prefixf(err, "verify of table '%s'", v->table);
			break;
		}
		attempt = 0;
		if (v->progress)
			v->progress(v->arg, v, total);
		free_values(last, v->n_keys);
		last = hi;
		hi = NULL;
		if (last == NULL)
			break;
		/* Aim at batch_time_ms per chunk, as migrate's batches do. */
		if (o->batch_time_ms > 0) {
			double ms = clock_now_ms() - t0, f = ms > 0 ? o->batch_time_ms / ms : 2;

			f = f > 2 ? 2 : f < 0.5 ? 0.5 : f;
			size = (long)((double)size * f);
			size = size < 1 ? 1 : size > max ? max : size;
		}
	}
	free_values(last, v->n_keys);
	return rc;
}

void
exec_verify_release(struct exec_verify *v)
{
	size_t k;

	for (k = 0; k < v->n_cmps; k++) {
		free_values(v->cmps[k].keys, v->cmps[k].n_keys);
		v->cmps[k].keys = NULL;
		v->cmps[k].n_keys = 0;
	}
}

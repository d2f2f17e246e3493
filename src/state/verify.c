/*
 * state/verify.c - proof before contract (state/verify.h): which checks of
 * the plan to run, one walk per table for all its checks, the outcome in a
 * report, and the contract gate built on it.
 */
#include "config.h"

#include "state/verify.h"

#include <stdlib.h>
#include <string.h>

#include "core/strbuf.h"
#include "core/xmalloc.h"
#include "exec/verify.h"

static void
emit(const struct machine_opts *o, const struct machine_event *ev)
{
	if (o->event)
		o->event(o->event_arg, ev);
}

static void
on_progress(void *arg, const struct exec_verify *v, uint64_t rows_total)
{
	const struct machine_opts *o = arg;
	struct machine_event ev = { .kind = MACHINE_VERIFY_PROGRESS, .phase = PHASE_CONTRACT,
				    .table = v->table, .rows_done = v->rows,
				    .rows_total = rows_total, .chunks = v->chunks };

	emit(o, &ev);
}

static bool
same_keys(const struct plan_check *a, const struct plan_check *b)
{
	size_t i;

	if (strcmp(a->table, b->table) != 0 || a->n_keys != b->n_keys)
		return false;
	for (i = 0; i < a->n_keys; i++)
		if (strcmp(a->keys[i], b->keys[i]) != 0)
			return false;
	return true;
}

/* The first column c needs that info (may be NULL: not known) lacks, or NULL. */
static const char *
column_missing(const struct plan_check *c, const struct db_table_info *info)
{
	size_t i;

	for (i = 0; info && i < c->n_needs; i++)
		if (!db_table_info_column(info, c->needs[i]))
			return c->needs[i];
	return NULL;
}

/* describe_table, or false when the table cannot be described (a view...). */
static bool
describe(struct state *st, const char *table, struct db_table_info *info)
{
	struct dbphase_error e = DBPHASE_ERROR_INIT;
	bool ok;

	memset(info, 0, sizeof(*info));
	ok = st->conn->drv->describe_table(st->conn, table, info, &e) == 0 && info->n_columns > 0;
	if (!ok)
		db_table_info_release(info);
	err_release(&e);
	return ok;
}

/*
 * Whether the contract of version (the first above the contracted one) has
 * started: a contract step of it is recorded, or (MariaDB commits DDL
 * before its record) a column its checks compare is gone.  *why says which.
 */
static int
contract_started(struct state *st, const struct plan *plan, const struct verify_report *rep,
		 int64_t version, char **why, struct dbphase_error *err)
{
	size_t i;
	int rc = 0;

	*why = NULL;
	for (i = 0; i < plan->n_steps && rc == 0 && *why == NULL; i++) {
		const struct plan_step *s = &plan->steps[i];
		char *id;
		bool done = false;

		if (s->version != version || s->phase != PHASE_CONTRACT)
			continue;
		id = plan_step_id(s);
		if ((rc = state_step_done(st, id, &done, err)) == 0 && done)
			*why = xasprintf("step %s is recorded", id);
		free(id);
	}
	for (i = 0; i < rep->n && rc == 0 && *why == NULL; i++) {
		const struct plan_check *c = rep->results[i].check;
		struct db_table_info info;
		const char *gone;

		if (c->version != version || !describe(st, c->table, &info))
			continue;
		if ((gone = column_missing(c, &info)) != NULL)
			*why = xasprintf("column '%s' of table '%s' is gone", gone, c->table);
		db_table_info_release(&info);
	}
	return rc;
}

/* Walk one table for the results [first, first + n) of rep that share it. */
static int
verify_table(struct state *st, struct verify_report *rep, size_t *idx, size_t n,
	     const struct machine_opts *o, struct dbphase_error *err)
{
	const struct plan_check *c0 = rep->results[idx[0]].check;
	struct exec_compare *cmps = xcalloc(n, sizeof(*cmps));
	size_t *which = xcalloc(n, sizeof(*which));
	struct exec_verify v = { .table = c0->table, .keys = c0->keys, .n_keys = c0->n_keys,
				 .cmps = cmps, .max_keys = VERIFY_MAX_KEYS,
				 .progress = on_progress, .arg = (void *)o };
	struct machine_event ev = { .phase = PHASE_CONTRACT, .table = c0->table };
	struct db_table_info info;
	bool have_info = describe(st, c0->table, &info);
	size_t i, differ = 0;
	char *msg = NULL;
	int rc = 0;

	for (i = 0; i < n && rc == 0; i++) {
		struct verify_result *r = &rep->results[idx[i]];
		const struct plan_check *c = r->check;
		const char *gone = column_missing(c, have_info ? &info : NULL);

		if (r->skipped)
			continue;
		if (gone)
			rc = err_setf(err, DBPHASE_EERROR,
				      "cannot verify %s (%s): column '%s' of table '%s' is not in "
				      "the database, although version %lld is expanded and not "
				      "contracted", c->op_kind, c->op_where, gone, c->table,
				      (long long)c->version);
		which[v.n_cmps] = idx[i];
		cmps[v.n_cmps++].differs_sql = c->differs_sql;
	}
	if (have_info)
		db_table_info_release(&info);
	if (rc < 0 || v.n_cmps == 0)
		goto out;
	ev.kind = MACHINE_VERIFY_START;
	emit(o, &ev);
	rc = exec_verify_run(st->conn, &v, &o->exec, err);
	for (i = 0; i < v.n_cmps; i++) {
		struct verify_result *r = &rep->results[which[i]];

		r->rows = v.rows;
		r->chunks = v.chunks;
		r->differing = cmps[i].differing;
		r->keys = cmps[i].keys;
		r->n_keys = cmps[i].n_keys;
		cmps[i].keys = NULL;
		cmps[i].n_keys = 0;
		differ += r->differing > 0;
	}
	if (rc < 0)
		goto out;
	msg = differ ? xasprintf("%zu of %zu column%s differ%s from %s", differ,
				 v.n_cmps, v.n_cmps == 1 ? "" : "s", differ == 1 ? "s" : "",
				 differ == 1 ? "its source" : "their sources") :
		       xasprintf("%zu column%s agree%s with %s", v.n_cmps, v.n_cmps == 1 ? "" : "s",
				 v.n_cmps == 1 ? "s" : "",
				 v.n_cmps == 1 ? "its source" : "their sources");
	ev.kind = MACHINE_VERIFY_DONE;
	ev.rows_done = v.rows;
	ev.chunks = v.chunks;
	ev.message = msg;
	emit(o, &ev);
out:
	exec_verify_release(&v);
	free(msg);
	free(which);
	free(cmps);
	return rc;
}

int
verify_versions(struct state *st, const struct plan *plan, int64_t after, int64_t upto,
		const struct machine_opts *o, struct verify_report *rep,
		struct dbphase_error *err)
{
	bool *done;
	size_t *idx, i, j, n;
	char *why = NULL;
	int rc = 0;

	memset(rep, 0, sizeof(*rep));
	rep->after = after;
	rep->upto = upto;
	rep->results = xcalloc(plan->n_checks + 1, sizeof(*rep->results));
	for (i = 0; i < plan->n_checks; i++)
		if (plan->checks[i].version > after && plan->checks[i].version <= upto)
			rep->results[rep->n++].check = &plan->checks[i];
	/*
	 * A contract that stopped in its first version may have dropped what
	 * one side of its checks reads; they were compared when it started.
	 */
	if (rep->n > 0 && (rc = contract_started(st, plan, rep, after + 1, &why, err)) == 0 &&
	    why != NULL) {
		struct machine_event w = { .kind = MACHINE_WARNING, .phase = PHASE_CONTRACT };

		for (i = 0; i < rep->n; i++)
			if (rep->results[i].check->version == after + 1)
				rep->results[i].skipped =
					xasprintf("not compared: the contract of version %lld "
						  "had started (%s); it was verified before it "
						  "started", (long long)(after + 1), why);
		w.message = rep->results[0].check->version == after + 1 ?
			    rep->results[0].skipped : NULL;
		for (i = 0; w.message == NULL && i < rep->n; i++)
			w.message = rep->results[i].skipped;
		emit(o, &w);
		free(why);
	}
	done = xcalloc(rep->n + 1, sizeof(*done));
	idx = xcalloc(rep->n + 1, sizeof(*idx));
	/* One walk per table (and key) for all its checks. */
	for (i = 0; i < rep->n && rc == 0; i++) {
		if (done[i] || rep->results[i].skipped)
			continue;
		for (j = i, n = 0; j < rep->n; j++)
			if (!done[j] && same_keys(rep->results[i].check, rep->results[j].check)) {
				done[j] = true;
				idx[n++] = j;
			}
		rc = verify_table(st, rep, idx, n, o, err);
	}
	for (i = 0; i < rep->n; i++)
		rep->n_differ += rep->results[i].differing > 0;
	free(done);
	free(idx);
	return rc;
}

void
verify_report_release(struct verify_report *rep)
{
	size_t i, k;

	for (i = 0; i < rep->n; i++) {
		for (k = 0; k < rep->results[i].n_keys; k++)
			free(rep->results[i].keys[k]);
		free(rep->results[i].keys);
		free(rep->results[i].skipped);
	}
	free(rep->results);
	memset(rep, 0, sizeof(*rep));
}

char *
verify_report_differences(const struct verify_report *rep)
{
	struct strbuf sb = STRBUF_INIT;
	size_t i, k;

	for (i = 0; i < rep->n; i++) {
		const struct verify_result *r = &rep->results[i];
		const struct plan_check *c = r->check;

		if (r->differing == 0)
			continue;
		strbuf_addf(&sb, "%stable '%s': column '%s' %s %s%s in %llu of %llu rows "
			    "(%s at %s), first at ", sb.len ? "; " : "", c->table, c->column,
			    c->kind == CHECK_DERIVED ? "is NULL where" : "differs from",
			    c->source, c->kind == CHECK_DERIVED ? " is not NULL" : "",
			    (unsigned long long)r->differing, (unsigned long long)r->rows,
			    check_kind_name(c->kind), c->op_where);
		for (k = 0; k < r->n_keys; k++)
			strbuf_addf(&sb, "%s%s", k ? ", " : "", r->keys[k]);
	}
	return strbuf_detach(&sb);
}

int
verify_gate(struct state *st, const struct plan *plan, const struct state_versions *v,
	    int64_t target, const struct machine_opts *o, char **forced,
	    struct dbphase_error *err)
{
	struct verify_report rep;
	size_t i, n = 0;
	char *diff;
	int rc;

	for (i = 0; i < plan->n_checks; i++)
		n += plan->checks[i].version > v->contract && plan->checks[i].version <= target;
	if (n == 0)
		return 0;
	if (o->skip_verify) {
		struct machine_event ev = { .kind = MACHINE_WARNING, .phase = PHASE_CONTRACT };
		char *msg = xasprintf("--skip-verify: contract to %lld without comparing %zu "
				      "derived column%s with %s", (long long)target, n,
				      n == 1 ? "" : "s", n == 1 ? "its source" : "their sources");
		char *all = *forced ? xasprintf("%s; %s", *forced, msg) : xstrdup(msg);

		ev.message = msg;
		emit(o, &ev);
		free(*forced);
		*forced = all;
		free(msg);
		return 0;
	}
	if ((rc = verify_versions(st, plan, v->contract, target, o, &rep, err)) == 0 &&
	    rep.n_differ > 0) {
		diff = verify_report_differences(&rep);
		rc = err_setf(err, DBPHASE_EREFUSED,
			      "contract to %lld refused: verify found %zu derived column%s that "
			      "differ%s from %s: %s; find out why the triggers or batches "
			      "left them apart and fix those rows ('dbphase verify' compares "
			      "again), or contract anyway with --skip-verify",
			      (long long)target, rep.n_differ, rep.n_differ == 1 ? "" : "s",
			      rep.n_differ == 1 ? "s" : "",
			      rep.n_differ == 1 ? "its source" : "their sources", diff);
		free(diff);
	}
	verify_report_release(&rep);
	return rc;
}

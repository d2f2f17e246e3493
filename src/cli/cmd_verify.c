/*
 * cli/cmd_verify.c - `dbphase verify [VERSION]`: contract's proof on its
 * own (state/verify.h).  Every column the versions above the contracted
 * one derive is compared with its source; exit 0 when all are equal, 5
 * (as contract would be refused) naming the first differing keys.  Reads
 * only: it takes no lock and writes no history.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/xmalloc.h"
#include "state/verify.h"

static json_t *
report_json(const struct cli *cli, const struct verify_report *rep)
{
	json_t *o = json_object(), *checks = json_array();
	size_t i, k;

	json_object_set_new(o, "repository", json_string(cli->st.repo));
	json_object_set_new(o, "from", json_integer(rep->after));
	json_object_set_new(o, "to", json_integer(rep->upto));
	json_object_set_new(o, "equal", json_boolean(rep->n_differ == 0));
	for (i = 0; i < rep->n; i++) {
		const struct verify_result *r = &rep->results[i];
		const struct plan_check *c = r->check;
		json_t *ck = json_object(), *keys = json_array();

		json_object_set_new(ck, "version", json_integer(c->version));
		json_object_set_new(ck, "operation", json_string(check_kind_name(c->kind)));
		json_object_set_new(ck, "where", json_string(c->op_where));
		json_object_set_new(ck, "table", json_string(c->table));
		json_object_set_new(ck, "column", json_string(c->column));
		json_object_set_new(ck, "source", json_string(c->source));
		json_object_set_new(ck, "rows", json_integer((json_int_t)r->rows));
		json_object_set_new(ck, "chunks", json_integer(r->chunks));
		json_object_set_new(ck, "differing_rows", json_integer((json_int_t)r->differing));
		for (k = 0; k < r->n_keys; k++)
			json_array_append_new(keys, json_string(r->keys[k]));
		json_object_set_new(ck, "first_differing_keys", keys);
		if (r->skipped)
			json_object_set_new(ck, "skipped", json_string(r->skipped));
		json_array_append_new(checks, ck);
	}
	json_object_set_new(o, "checks", checks);
	return o;
}

static void
report_text(const struct verify_report *rep)
{
	size_t i, k;

	for (i = 0; i < rep->n; i++) {
		const struct verify_result *r = &rep->results[i];
		const struct plan_check *c = r->check;

		printf("  v%03lld %-18s %s.%s %s %s: ", (long long)c->version,
		       check_kind_name(c->kind), c->table, c->column,
		       c->kind == CHECK_DERIVED ? "filled from" : "=", c->source);
		if (r->skipped)
			printf("%s\n", r->skipped);
		else if (r->differing == 0)
			printf("equal in %llu rows\n", (unsigned long long)r->rows);
		else {
			printf("%llu of %llu rows %s, first at ", (unsigned long long)r->differing,
			       (unsigned long long)r->rows,
			       c->kind == CHECK_DERIVED ? "left NULL" : "differ");
			for (k = 0; k < r->n_keys; k++)
				printf("%s%s", k ? ", " : "", r->keys[k]);
			printf("\n");
		}
	}
}

int
cmd_verify(struct cli *cli, int argc, char **argv)
{
	struct state_versions v;
	struct verify_report rep;
	struct machine_opts o;
	int64_t target;
	int rc, i;

	for (i = 1; i < argc; i++)
		if (argv[i][0] == '-' && argv[i][1] != '\0')
			return cli_usage_error(cli, "unknown option '%s'", argv[i]);
	if (argc > 2)
		return cli_usage_error(cli, "verify takes at most one VERSION");
	if ((rc = cli_load_repo(cli)) < 0)
		return rc;
	if (argc == 2 && (rc = cli_parse_version(cli, argv[1], &target)) < 0)
		return rc;
	if (argc == 2 && (target < 1 || target > repo_latest(&cli->repo)))
		return cli_usage_error(cli, "version %lld is not in repository '%s' (1 to %lld)",
				       (long long)target, cli->repo.dir,
				       (long long)repo_latest(&cli->repo));
	if ((rc = cli_open_state(cli)) < 0 ||
	    (rc = machine_check(&cli->st, &cli->repo, &cli->err)) < 0 ||
	    (rc = state_read(&cli->st, &v, &cli->err)) < 0)
		return rc;
	if (argc < 2)
		target = v.expand;	/* every version whose columns are in place */
	if (target > v.migrate)
		return err_setf(&cli->err, DBPHASE_EREFUSED,
				"verify to %lld refused: migrate is at %lld, so the rows of the "
				"versions above it are not all filled yet; run db_sync --migrate "
				"%lld first", (long long)target, (long long)v.migrate,
				(long long)target);
	cli_machine_opts(cli, &o, "verify");
	if (cli->format == CLI_JSON)
		o.event = NULL;		/* one document at the end */
	else
		printf("verify: %s: the derived columns of versions %lld to %lld (contract is "
		       "at %lld)\n", cli->st.repo, (long long)v.contract + 1, (long long)target,
		       (long long)v.contract);
	rc = verify_versions(&cli->st, &cli->plan, v.contract, target, &o, &rep, &cli->err);
	if (rc == 0) {
		if (cli->format == CLI_JSON)
			cli_print_json(report_json(cli, &rep));
		else if (rep.n == 0)
			printf("verify: nothing to compare: no version above %lld derives a column "
			       "from another\n", (long long)v.contract);
		else
			report_text(&rep);
	}
	if (rc == 0 && rep.n_differ > 0) {
		char *diff = verify_report_differences(&rep);

		rc = err_setf(&cli->err, DBPHASE_EREFUSED,
			      "verify found %zu derived column%s that differ%s from %s, so "
			      "contract to %lld would be refused: %s", rep.n_differ,
			      rep.n_differ == 1 ? "" : "s", rep.n_differ == 1 ? "s" : "",
			      rep.n_differ == 1 ? "its source" : "their sources", (long long)target,
			      diff);
		free(diff);
	} else if (rc == 0 && cli->format == CLI_TEXT && rep.n > 0) {
		printf("verify: every derived column agrees with its source\n");
	}
	verify_report_release(&rep);
	return rc;
}

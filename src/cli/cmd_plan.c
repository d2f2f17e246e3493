/*
 * cli/cmd_plan.c - `dbphase plan`: the steps each phase would run, the
 * reason for each classification, and with --sql the exact SQL, headed by
 * the lock timeout the executor sets on its connections (so that SQL piped
 * into psql or mariadb is guarded the same way).  With --dialect no
 * database is needed (offline mode).
 */
#include "config.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/dialect.h"
#include "core/strbuf.h"
#include "core/xmalloc.h"

/* The statements a step runs, for --sql (backfills and rebuilds described). */
static void
step_sql(enum db_backend b, const struct plan_step *s, json_t *list, struct strbuf *text)
{
	struct strbuf sb = STRBUF_INIT;
	size_t i;

	switch (s->action) {
	case STEP_SQL:
		for (i = 0; i < s->n_sql; i++) {
			json_array_append_new(list, json_string(s->sql[i]));
			strbuf_addf(text, "%s;\n", s->sql[i]);
		}
		break;
	case STEP_BACKFILL:
		strbuf_addstr(&sb, "UPDATE ");
		dialect_quote_ident(b, &sb, s->table);
		strbuf_addf(&sb, " SET %s WHERE (%s) AND ", s->set_sql,
			    s->where_sql ? s->where_sql : "1 = 1");
		if (s->n_keys > 1)
			strbuf_addch(&sb, '(');
		for (i = 0; i < s->n_keys; i++) {
			if (i)
				strbuf_addstr(&sb, ", ");
			dialect_quote_ident(b, &sb, s->keys[i]);
		}
		if (s->n_keys > 1)
			strbuf_addch(&sb, ')');
		strbuf_addstr(&sb, " > $last AND ... <= $upper");
		json_array_append_new(list, json_string(sb.buf));
		strbuf_addf(text, "-- in batches by key, each with its checkpoint, from the first "
			    "key to the last:\n%s;\n", sb.buf);
		break;
	case STEP_REBUILD:
		strbuf_addf(&sb, "-- rebuild of table '%s' with column '%s'", s->table, s->column);
		if (s->set_not_null >= 0)
			strbuf_addstr(&sb, s->set_not_null ? " NOT NULL" : " nullable");
		if (s->set_default)
			strbuf_addf(&sb, " DEFAULT %s", s->set_default);
		if (s->drop_default)
			strbuf_addstr(&sb, " without its default");
		strbuf_addstr(&sb, ": in one transaction, create the new table, copy the rows, "
			      "drop the old one, rename, recreate its indexes and triggers");
		json_array_append_new(list, json_string(sb.buf));
		strbuf_addf(text, "%s\n", sb.buf);
		break;
	}
	strbuf_release(&sb);
}

int
cmd_plan(struct cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "phase", required_argument, NULL, 'p' },
		{ "sql", no_argument, NULL, 's' },
		{ "dialect", required_argument, NULL, 'D' },
		{ "all", no_argument, NULL, 'a' },
		{ NULL, 0, NULL, 0 },
	};
	struct state_versions v = { 0 };
	int only = -1, dialect = -1, c, rc, ph;
	bool sql = false, all = false;
	int64_t target;
	enum db_backend backend;
	json_t *doc = NULL, *phases = NULL;
	char *session_sql;
	size_t i, k, shown = 0;

	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+:", longopts, NULL)) != -1) {
		switch (c) {
		case 'p':
			if ((only = phase_from_name(optarg)) < 0)
				return cli_usage_error(cli, "--phase must be expand, migrate or contract");
			break;
		case 's':
			sql = true;
			break;
		case 'D':
			if ((dialect = db_backend_from_name(optarg)) < 0)
				return cli_usage_error(cli, "--dialect must be postgresql, mysql or sqlite");
			break;
		case 'a':
			all = true;
			break;
		case ':':
			return cli_usage_error(cli, "option '%s' needs a value", argv[optind - 1]);
		default:
			return cli_usage_error(cli, "unknown option '%s'", argv[optind - 1]);
		}
	}
	if ((rc = cli_load_repo(cli)) < 0)
		return rc;
	target = repo_latest(&cli->repo);
	if (optind == argc - 1 && (rc = cli_parse_version(cli, argv[optind], &target)) < 0)
		return rc;
	if (optind < argc - 1)
		return cli_usage_error(cli, "too many arguments");
	if (dialect >= 0) {
		backend = (enum db_backend)dialect;
		if ((rc = cli_load_plan(cli, backend)) < 0)
			return rc;
	} else {
		if ((rc = cli_open_state(cli)) < 0 ||
		    (rc = machine_check(&cli->st, &cli->repo, &cli->err)) < 0 ||
		    (rc = state_read(&cli->st, &v, &cli->err)) < 0)
			return rc;
		backend = cli->url.backend;
	}
	/* What the executor sets on every connection before running a step. */
	session_sql = dialect_lock_timeout_sql(backend, cli->cfg.lock_timeout_ms);
	if (cli->format == CLI_JSON) {
		doc = json_object();
		phases = json_array();
		json_object_set_new(doc, "repository", json_string(cli->repo.id));
		json_object_set_new(doc, "backend", json_string(db_backend_name(backend)));
		json_object_set_new(doc, "target", json_integer(target));
		json_object_set_new(doc, "offline", json_boolean(dialect >= 0));
		{
			json_t *list = json_array();

			for (k = 0; dialect_session_sql(backend)[k]; k++)
				json_array_append_new(list, json_string(dialect_session_sql(backend)[k]));
			json_array_append_new(list, json_string(session_sql));
			json_object_set_new(doc, "session_sql", list);
		}
	} else {
		printf("-- plan of repository '%s' to version %lld for %s", cli->repo.id,
		       (long long)target, db_backend_name(backend));
		if (dialect < 0)
			printf(" (expanded %lld, migrated %lld, contracted %lld)", (long long)v.expand,
			       (long long)v.migrate, (long long)v.contract);
		printf("\n");
		if (sql && dialect_session_sql(backend)[0]) {
			printf("-- dbphase's sessions are set up so (as it does at connect):\n");
			for (k = 0; dialect_session_sql(backend)[k]; k++)
				printf("%s;\n", dialect_session_sql(backend)[k]);
		}
		if (sql)
			printf("-- dbphase runs every statement below under this lock timeout"
			       " (--lock-timeout, lock_timeout_ms):\n%s;\n", session_sql);
	}
	for (ph = 0; ph < PHASE__COUNT; ph++) {
		int64_t from = all || dialect >= 0 ? 0 :
			       ph == PHASE_EXPAND ? v.expand : ph == PHASE_MIGRATE ? v.migrate : v.contract;
		json_t *steps = json_array();
		bool header = false;

		if (only >= 0 && ph != only) {
			json_decref(steps);
			continue;
		}
		for (i = 0; i < cli->plan.n_steps; i++) {
			const struct plan_step *s = &cli->plan.steps[i];
			struct strbuf text = STRBUF_INIT;
			json_t *list = json_array();
			char *id;

			if (s->phase != (enum phase)ph || s->version <= from || s->version > target) {
				json_decref(list);
				continue;
			}
			id = plan_step_id(s);
			step_sql(backend, s, list, &text);
			if (doc) {
				json_t *o = json_object();

				json_object_set_new(o, "id", json_string(id));
				json_object_set_new(o, "version", json_integer(s->version));
				json_object_set_new(o, "operation", json_string(s->op_kind));
				json_object_set_new(o, "where", json_string(s->op_where));
				json_object_set_new(o, "source", json_string(s->source));
				json_object_set_new(o, "reason", json_string(s->reason));
				json_object_set_new(o, "sql", list);
				list = NULL;
				json_array_append_new(steps, o);
			} else {
				if (!header)
					printf("\n-- %s\n", phase_name((enum phase)ph));
				header = true;
				printf("-- %s %s (%s)\n--   %s [%s]\n", id, s->op_kind, s->op_where,
				       s->reason, s->source);
				if (sql)
					printf("%s", text.buf);
			}
			shown++;
			json_decref(list);
			strbuf_release(&text);
			free(id);
		}
		if (doc) {
			json_t *p = json_object();

			json_object_set_new(p, "phase", json_string(phase_name((enum phase)ph)));
			json_object_set_new(p, "steps", steps);
			json_array_append_new(phases, p);
		} else {
			json_decref(steps);
		}
	}
	if (doc) {
		json_object_set_new(doc, "phases", phases);
		cli_print_json(doc);
	} else if (shown == 0) {
		printf("\n-- nothing to do\n");
	}
	free(session_sql);
	return 0;
}

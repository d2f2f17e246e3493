/*
 * cli/context.c - loading what a command needs, in data-flow order:
 * configuration, database URL, repository, catalog and plan (all checked
 * before any connection is made), then the connection and the state.
 * Also the shared output of the state machine's events.
 */
#include "config.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "core/xmalloc.h"

#define DEFAULT_DATABASE "sqlite:///dbphase.sqlite"
#define DEFAULT_REPOSITORY "migrations"

static int
cli_resolve_url(struct cli *cli)
{
	const char *env = getenv("DBPHASE_DATABASE");
	int rc;

	if (cli->have_url)
		return 0;
	if ((rc = cli_load_config(cli)) < 0)
		return rc;
	if (cli->database) {
		cli->url_text = xstrdup(cli->database);
		cli->url_source = xstrdup("--database");
	} else if (env && *env) {
		cli->url_text = xstrdup(env);
		cli->url_source = xstrdup("$DBPHASE_DATABASE");
	} else if (cli->cfg.connection) {
		cli->url_text = xstrdup(cli->cfg.connection);
		cli->url_source = xasprintf("[database] connection at %s", cli->cfg.connection_from);
	} else {
		cli->url_text = xstrdup(DEFAULT_DATABASE);
		cli->url_source = xstrdup("the default");
	}
	rc = db_url_parse(cli->url_text, &cli->url, &cli->err);
	if (rc < 0)
		return err_prefixf(&cli->err, "database URL from %s", cli->url_source);
	cli->have_url = true;
	return 0;
}

int
cli_load_repo(struct cli *cli)
{
	const char *dir;
	int rc;

	if (cli->have_repo)
		return 0;
	if ((rc = cli_load_config(cli)) < 0)
		return rc;
	dir = cli->repository ? cli->repository :
	      cli->cfg.repository ? cli->cfg.repository : DEFAULT_REPOSITORY;
	if ((rc = repo_load(&cli->repo, dir, cli->extension, &cli->err)) < 0)
		return rc;
	cli->have_repo = true;
	return 0;
}

int
cli_load_plan(struct cli *cli, enum db_backend backend)
{
	int rc;

	if (cli->have_plan)
		return 0;
	if ((rc = cli_load_repo(cli)) < 0)
		return rc;
	if (!cli->have_cat) {
		if ((rc = catalog_load(&cli->cat, cli->repo.phases_dir, &cli->err)) < 0)
			return rc;
		cli->have_cat = true;
	}
	if ((rc = plan_build(&cli->plan, &cli->repo, &cli->cat, backend, &cli->err)) < 0)
		return rc;
	cli->have_plan = true;
	return 0;
}

int
cli_connect(struct cli *cli)
{
	int rc;

	if (cli->conn)
		return 0;
	if ((rc = cli_resolve_url(cli)) < 0)
		return rc;
	/* Every migration is checked before anything touches the database. */
	if ((rc = cli_load_plan(cli, cli->url.backend)) < 0)
		return rc;
	if ((rc = db_connect(&cli->url, &cli->conn, &cli->err)) < 0) {
		if (rc == DBPHASE_ECONNECT && cli->url.backend != DB_BACKEND_SQLITE) {
			char *masked = db_url_mask(cli->url_text);

			err_prefixf(&cli->err, "cannot connect to %s (from %s)", masked,
				    cli->url_source);
			free(masked);
		}
		return rc;
	}
	cli_defer_signals(cli);
	/* Where SQL depends on the server's version, plan again for this one. */
	plan_release(&cli->plan);
	cli->have_plan = false;
	if ((rc = plan_build_for_server(&cli->plan, &cli->repo, &cli->cat, cli->url.backend,
					cli->conn->server_version, &cli->err)) < 0)
		return rc;
	cli->have_plan = true;
	return 0;
}

int
cli_open_state(struct cli *cli)
{
	char *key;
	int rc;

	if (cli->have_state)
		return 0;
	if ((rc = cli_connect(cli)) < 0)
		return rc;
	key = repo_state_key(&cli->repo);
	state_init(&cli->st, cli->conn, key, cli->repo.version_table);
	free(key);
	cli->have_state = true;
	return 0;
}

void
cli_defer_signals(struct cli *cli)
{
	cli->signals_deferred = 1;
}

void
cli_release(struct cli *cli)
{
	size_t i;

	if (cli->have_state)
		state_release(&cli->st);
	db_close(cli->conn);
	if (cli->have_plan)
		plan_release(&cli->plan);
	if (cli->have_cat)
		catalog_release(&cli->cat);
	if (cli->have_repo)
		repo_release(&cli->repo);
	if (cli->have_url)
		db_url_release(&cli->url);
	if (cli->have_cfg)
		config_release(&cli->cfg);
	progress_release(&cli->progress);
	for (i = 0; i < cli->n_config_files; i++)
		free(cli->config_files[i]);
	for (i = 0; i < cli->n_overrides; i++)
		free(cli->overrides[i].where);
	free(cli->overrides);
	free(cli->config_files);
	free(cli->config_dir);
	free(cli->database);
	free(cli->repository);
	free(cli->extension);
	free(cli->url_text);
	free(cli->url_source);
	err_release(&cli->err);
}

void
cli_machine_opts(struct cli *cli, struct machine_opts *o, const char *command)
{
	machine_opts_init(o);
	o->exec.lock_timeout_ms = cli->cfg.lock_timeout_ms;
	o->exec.batch_size = cli->cfg.batch_size;
	o->exec.max_batch_size = cli->cfg.max_batch_size;
	o->exec.batch_time_ms = cli->cfg.batch_time_ms;
	o->exec.max_rate = cli->cfg.max_rate;
	o->exec.jobs = cli->cfg.jobs;
	o->url = &cli->url;
	o->exec.stop = &cli->stop;
	o->lock_wait_s = cli->cfg.lock_wait_s;
	o->node_ttl_s = cli->cfg.node_ttl_s;
	o->command = command;
	o->event = cli_print_event;
	o->event_arg = cli;
}

int
cli_parse_version(struct cli *cli, const char *text, int64_t *out)
{
	char *end;
	long long v;

	if (strcmp(text, "head") == 0 || strcmp(text, "latest") == 0 ||
	    strcmp(text, "heads") == 0) {
		int rc = cli_load_repo(cli);

		if (rc < 0)
			return rc;
		*out = repo_latest(&cli->repo);
		return 0;
	}
	v = strtoll(text, &end, 10);
	if (*text == '\0' || *end != '\0' || v < 0)
		return cli_usage_error(cli, "'%s' is not a version number", text);
	*out = v;
	return 0;
}

int
cli_usage_error(struct cli *cli, const char *fmt, ...)
{
	va_list ap;
	char *msg;

	va_start(ap, fmt);
	msg = xvasprintf(fmt, ap);
	va_end(ap);
	err_setf(&cli->err, DBPHASE_EUSAGE, "%s", msg);
	free(msg);
	return DBPHASE_EUSAGE;
}

void
cli_print_json(json_t *doc)
{
	char *text = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

	if (text) {
		printf("%s\n", text);
		free(text);
	}
	json_decref(doc);
}

static void
print_json_line(json_t *obj)
{
	char *text = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER);

	if (text) {
		printf("%s\n", text);
		fflush(stdout);
		free(text);
	}
	json_decref(obj);
}

static const char *const event_names[] = {
	"phase_start", "already_done", "step_start", "step_done", "step_skipped",
	"progress", "version_done", "phase_done", "warning", "step_undone",
};

static void
event_json(const struct machine_event *ev)
{
	json_t *o = json_object();
	const struct plan_step *s = ev->step;

	json_object_set_new(o, "event", json_string(event_names[ev->kind]));
	json_object_set_new(o, "phase", json_string(phase_name(ev->phase)));
	if (ev->kind == MACHINE_PHASE_START || ev->kind == MACHINE_PHASE_DONE ||
	    ev->kind == MACHINE_ALREADY_DONE) {
		json_object_set_new(o, "from", json_integer(ev->from));
		json_object_set_new(o, "to", json_integer(ev->to));
	}
	if (ev->kind == MACHINE_VERSION_DONE)
		json_object_set_new(o, "version", json_integer(ev->to));
	if (s) {
		char *id = plan_step_id(s);

		json_object_set_new(o, "step", json_string(id));
		json_object_set_new(o, "version", json_integer(s->version));
		json_object_set_new(o, "operation", json_string(s->op_kind));
		json_object_set_new(o, "where", json_string(s->op_where));
		if (s->table)
			json_object_set_new(o, "table", json_string(s->table));
		free(id);
	}
	if (ev->kind == MACHINE_STEP_START && s)
		json_object_set_new(o, "reason", json_string(s->reason));
	if (ev->result) {
		json_object_set_new(o, "seconds", json_real(ev->result->seconds));
		json_object_set_new(o, "rows", json_integer((json_int_t)ev->result->rows));
		json_object_set_new(o, "batches", json_integer(ev->result->batches));
		json_object_set_new(o, "retries", json_integer(ev->result->retries));
	}
	if (ev->kind == MACHINE_PROGRESS) {
		json_object_set_new(o, "rows_done", json_integer((json_int_t)ev->rows_done));
		json_object_set_new(o, "rows_total", json_integer((json_int_t)ev->rows_total));
		json_object_set_new(o, "batch_ms", json_real(ev->batch_ms));
	}
	if (ev->kind == MACHINE_PHASE_DONE)
		json_object_set_new(o, "seconds", json_real(ev->seconds));
	if (ev->downgrade)
		json_object_set_new(o, "downgrade", json_true());
	if (ev->message)
		json_object_set_new(o, "message", json_string(ev->message));
	print_json_line(o);
}

void
cli_print_event(void *arg, const struct machine_event *ev)
{
	struct cli *cli = arg;
	const struct plan_step *s = ev->step;
	char *id = s ? plan_step_id(s) : NULL;

	if (cli->format == CLI_JSON) {
		event_json(ev);
		free(id);
		return;
	}
	switch (ev->kind) {
	case MACHINE_PHASE_START:
		progress_clear(&cli->progress);
		printf("%s: %lld -> %lld\n", ev->downgrade ? "downgrade" : phase_name(ev->phase),
		       (long long)ev->from, (long long)ev->to);
		break;
	case MACHINE_ALREADY_DONE:
		if (ev->downgrade)
			printf("downgrade: expand is at %lld, nothing above %lld to undo\n",
			       (long long)ev->from, (long long)ev->to);
		else
			printf("%s: already at %lld, nothing to do\n", phase_name(ev->phase),
			       (long long)ev->from);
		break;
	case MACHINE_STEP_START:
		progress_start(&cli->progress, id, s->action == STEP_SQL ? s->op_kind : s->table);
		break;
	case MACHINE_STEP_DONE:
		progress_finish(&cli->progress, id);
		printf("  %-18s %-15s %-28.28s %7.3f s", id, s->op_kind,
		       s->table ? s->table : "", ev->result->seconds);
		if (s->action == STEP_BACKFILL)
			printf("  %llu rows in %u batches", (unsigned long long)ev->result->rows,
			       ev->result->batches);
		if (ev->result->retries)
			printf("  (%u retries)", ev->result->retries);
		printf("\n      %s\n", s->reason);
		break;
	case MACHINE_STEP_SKIPPED:
		printf("  %-18s %-15s %s\n", id, s->op_kind,
		       ev->message ? ev->message : "already done by an earlier run");
		break;
	case MACHINE_STEP_UNDONE:
		printf("  %-18s %-15s %s (%.3f s)\n", id, s->op_kind,
		       ev->message ? ev->message : "undone", ev->result->seconds);
		break;
	case MACHINE_PROGRESS:
		progress_update(&cli->progress, id, ev->rows_done, ev->rows_total);
		break;
	case MACHINE_VERSION_DONE:
		break;
	case MACHINE_PHASE_DONE:
		printf("%s: done, now at %lld (%.2f s)\n",
		       ev->downgrade ? "downgrade" : phase_name(ev->phase), (long long)ev->to,
		       ev->seconds);
		break;
	case MACHINE_WARNING:
		progress_clear(&cli->progress);
		fprintf(stderr, "dbphase: warning: %s\n", ev->message);
		break;
	}
	fflush(stdout);
	free(id);
}

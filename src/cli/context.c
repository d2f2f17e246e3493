/*
 * cli/context.c - loading what a command needs, in data-flow order:
 * configuration, database URL, repository, catalog and plan (all checked
 * before any connection is made), then the connection and the state.
 * Also the shared output of the state machine's events.
 */
#include "config.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli/cli.h"
#include "core/strbuf.h"
#include "core/xmalloc.h"

#define DEFAULT_DATABASE "sqlite:///dbphase.sqlite"
#define DEFAULT_REPOSITORY "migrations"

/*
 * The database URL: --database, else the config files named on the command
 * line, else $DBPHASE_DATABASE, else the SQLite default, which is refused
 * when config files were given (they were meant to name the database).
 */
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
	} else if (cli->cfg.connection) {
		cli->url_text = xstrdup(cli->cfg.connection);
		cli->url_source = xstrdup(cli->cfg.connection_from);
		if (cli->cfg.connection_warning)
			fprintf(stderr, "dbphase: warning: %s\n", cli->cfg.connection_warning);
	} else if (env && *env) {
		cli->url_text = xstrdup(env);
		cli->url_source = xstrdup("$DBPHASE_DATABASE");
	} else if (cli->n_config_sources > 0) {
		struct strbuf names = STRBUF_INIT;
		size_t i;

		for (i = 0; i < cli->n_config_sources; i++)
			strbuf_addf(&names, "%s%s", i ? ", " : "", cli->config_sources[i].path);
		rc = err_setf(&cli->err, DBPHASE_EBADINPUT, "no database: the config given (%s)"
			      " sets no [database] connection; set one there, or give --database"
			      " or $DBPHASE_DATABASE", names.buf);
		strbuf_release(&names);
		return rc;
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

static bool
repo_exists(const char *dir)
{
	struct stat st;
	char *versions = xasprintf("%s/versions", dir);
	bool yes = stat(versions, &st) == 0 && S_ISDIR(st.st_mode);

	free(versions);
	return yes;
}

/*
 * The repository: --repository, else [dbphase] repository, else a
 * migrations folder beside the config (the last config source first), else
 * ./migrations.  *dir is owned by the caller.
 */
static int
find_repository(struct cli *cli, char **dir)
{
	struct strbuf looked = STRBUF_INIT;
	size_t i;
	char *cand;

	if (cli->repository || cli->cfg.repository) {
		*dir = xstrdup(cli->repository ? cli->repository : cli->cfg.repository);
		return 0;
	}
	for (i = cli->n_config_sources; i-- > 0;) {
		const struct cli_config_source *src = &cli->config_sources[i];
		const char *slash = strrchr(src->path, '/');

		if (src->is_dir)
			cand = xasprintf("%s/migrations", src->path);
		else if (slash == NULL)
			cand = xstrdup(DEFAULT_REPOSITORY);
		else
			cand = xasprintf("%.*s/migrations", (int)(slash - src->path + (slash == src->path)),
					 src->path);
		if (repo_exists(cand)) {
			*dir = cand;
			strbuf_release(&looked);
			return 0;
		}
		strbuf_addf(&looked, "%s (beside %s), ", cand, src->path);
		free(cand);
	}
	if (looked.len == 0 || repo_exists(DEFAULT_REPOSITORY)) {
		/* Nothing else to try: repo_load names what is wrong with it. */
		*dir = xstrdup(DEFAULT_REPOSITORY);
		strbuf_release(&looked);
		return 0;
	}
	err_setf(&cli->err, DBPHASE_EBADINPUT, "no migration repository found: no --repository,"
		 " no [dbphase] repository, and none of %s./%s has a versions/ folder",
		 looked.buf, DEFAULT_REPOSITORY);
	strbuf_release(&looked);
	return DBPHASE_EBADINPUT;
}

int
cli_load_repo(struct cli *cli)
{
	char *dir;
	int rc;

	if (cli->have_repo)
		return 0;
	if ((rc = cli_load_config(cli)) < 0 || (rc = find_repository(cli, &dir)) < 0)
		return rc;
	rc = repo_load(&cli->repo, dir, cli->extension, &cli->err);
	free(dir);
	if (rc < 0)
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

	if (cli->conn == NULL) {
		if ((rc = cli_resolve_url(cli)) < 0)
			return rc;
		/* Every migration is checked before anything touches the database. */
		if ((rc = cli_load_plan(cli, cli->url.backend)) < 0)
			return rc;
		if ((rc = db_connect(&cli->url, &cli->conn, &cli->err)) < 0) {
			if (rc == DBPHASE_ECONNECT && cli->url.backend != DB_BACKEND_SQLITE) {
				err_prefixf(&cli->err, "cannot connect to %s (from %s)",
					    cli->url.masked, cli->url_source);
			}
			return rc;
		}
		cli_defer_signals(cli);
		/* Where SQL depends on the server's version, plan again for this one. */
		plan_release(&cli->plan);
		cli->have_plan = false;
	}
	if (cli->have_plan)
		return 0;
	if ((rc = cli_load_repo(cli)) < 0)
		return rc;
	if (!cli->have_cat) {
		if ((rc = catalog_load(&cli->cat, cli->repo.phases_dir, &cli->err)) < 0)
			return rc;
		cli->have_cat = true;
	}
	if ((rc = plan_build_for_server(&cli->plan, &cli->repo, &cli->cat, cli->url.backend,
					cli->conn->server_version, &cli->err)) < 0)
		return rc;
	cli->have_plan = true;
	return 0;
}

/* Release what was loaded for one repository: its state, plan, catalog and files. */
static void
release_repository(struct cli *cli)
{
	if (cli->have_state)
		state_release(&cli->st);
	if (cli->have_plan)
		plan_release(&cli->plan);
	if (cli->have_cat)
		catalog_release(&cli->cat);
	if (cli->have_repo)
		repo_release(&cli->repo);
	cli->have_state = cli->have_plan = cli->have_cat = cli->have_repo = false;
}

void
cli_use_extension(struct cli *cli, const char *name)
{
	release_repository(cli);
	free(cli->extension);
	cli->extension = name ? xstrdup(name) : NULL;
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

int
cli_open_state_to_change(struct cli *cli)
{
	int rc;

	if ((rc = cli_open_state(cli)) < 0 || cli->announced)
		return rc;
	/* Before anything changes: which database, and who said so. */
	cli->announced = true;
	fprintf(stderr, "dbphase: database %s (from %s)\n", cli->url.masked, cli->url_source);
	return 0;
}

int
cli_check_readonly(struct cli *cli, const struct state_versions *v)
{
	int rc = v ? machine_verify(&cli->st, &cli->repo, v, &cli->err)
		   : machine_check(&cli->st, &cli->repo, &cli->err);

	/* An older package can still look: it says so, and changes nothing. */
	if (rc == DBPHASE_EAHEAD) {
		fprintf(stderr, "dbphase: warning: %s\n", cli->err.message);
		err_release(&cli->err);
		rc = 0;
	}
	return rc;
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

	/* The state before the connection it uses. */
	release_repository(cli);
	db_close(cli->conn);
	if (cli->have_url)
		db_url_release(&cli->url);
	if (cli->have_cfg)
		config_release(&cli->cfg);
	progress_release(&cli->progress);
	for (i = 0; i < cli->n_config_sources; i++)
		free(cli->config_sources[i].path);
	for (i = 0; i < cli->n_overrides; i++)
		free(cli->overrides[i].where);
	free(cli->overrides);
	free(cli->config_sources);
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
	o->reconnect_wait_s = cli->cfg.reconnect_wait_s;
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

/* "+N" or "-N": a version relative to the database's (Alembic's upgrade +1). */
static bool
is_relative_version(const char *a)
{
	if ((a[0] != '+' && a[0] != '-') || a[1] == '\0')
		return false;
	for (a++; *a; a++)
		if (*a < '0' || *a > '9')
			return false;
	return true;
}

int
cli_args_parse(struct cli *cli, int argc, char **argv, const struct option *longopts,
	       struct cli_args *a)
{
	size_t alloc_opts = 0, alloc_pos = 0, len, k, found;
	bool only_pos = false;
	const char *value;
	int i, rc = 0;

	memset(a, 0, sizeof(*a));
	for (i = 1; i < argc && rc == 0; i++) {
		const char *w = argv[i];

		if (only_pos || w[0] != '-' || w[1] == '\0' || is_relative_version(w)) {
			XGROW(a->pos, a->n_pos, alloc_pos);
			a->pos[a->n_pos++] = argv[i];
			continue;
		}
		if (strcmp(w, "--") == 0) {
			only_pos = true;
			continue;
		}
		if (w[1] != '-') {
			rc = cli_usage_error(cli, "unknown option '%s'", w);
			break;
		}
		/* --name, --name=value, or a unique prefix of a name, as getopt allows. */
		len = strcspn(w + 2, "=");
		found = SIZE_MAX;
		for (k = 0; longopts[k].name; k++) {
			if (strncmp(longopts[k].name, w + 2, len) != 0)
				continue;
			if (strlen(longopts[k].name) == len) {
				found = k;
				break;
			}
			found = found == SIZE_MAX ? k : SIZE_MAX - 1;
		}
		if (found >= SIZE_MAX - 1) {
			rc = cli_usage_error(cli, found == SIZE_MAX ? "unknown option '%.*s'"
					     : "option '%.*s' is ambiguous", (int)len + 2, w);
			break;
		}
		value = NULL;
		if (longopts[found].has_arg == no_argument && w[2 + len] == '=') {
			rc = cli_usage_error(cli, "option '--%s' takes no value", longopts[found].name);
			break;
		}
		if (longopts[found].has_arg == required_argument) {
			if (w[2 + len] == '=') {
				value = w + 3 + len;
			} else if (i + 1 < argc) {
				value = argv[++i];
			} else {
				rc = cli_usage_error(cli, "option '--%s' needs a value",
						     longopts[found].name);
				break;
			}
		}
		XGROW(a->opts, a->n_opts, alloc_opts);
		a->opts[a->n_opts].val = longopts[found].val;
		a->opts[a->n_opts].value = value;
		a->n_opts++;
	}
	if (rc < 0)
		cli_args_release(a);
	return rc;
}

void
cli_args_release(struct cli_args *a)
{
	free(a->opts);
	free(a->pos);
	memset(a, 0, sizeof(*a));
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
	"verify_start", "verify_progress", "verify_done",
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
	if (ev->table)
		json_object_set_new(o, "table", json_string(ev->table));
	if (ev->kind == MACHINE_VERIFY_PROGRESS || ev->kind == MACHINE_VERIFY_DONE) {
		json_object_set_new(o, "rows_done", json_integer((json_int_t)ev->rows_done));
		if (ev->kind == MACHINE_VERIFY_PROGRESS)
			json_object_set_new(o, "rows_total", json_integer((json_int_t)ev->rows_total));
		json_object_set_new(o, "chunks", json_integer(ev->chunks));
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
	case MACHINE_VERIFY_START:
		progress_start(&cli->progress, "verify", ev->table);
		break;
	case MACHINE_VERIFY_PROGRESS:
		progress_update(&cli->progress, "verify", ev->rows_done, ev->rows_total);
		break;
	case MACHINE_VERIFY_DONE:
		progress_finish(&cli->progress, "verify");
		printf("verify: %s: %llu rows in %u chunk%s, %s\n", ev->table,
		       (unsigned long long)ev->rows_done, ev->chunks, ev->chunks == 1 ? "" : "s",
		       ev->message);
		break;
	}
	fflush(stdout);
	free(id);
}

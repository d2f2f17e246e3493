/*
 * cli/cmd_sync.c - the commands that read or move the version row:
 * db_sync (keystone, glance's db sync), upgrade/downgrade/version_control/
 * goto (sqlalchemy-migrate, glance), stamp (Alembic, mogan), db_version and
 * version, create_schema, and forget (sqlalchemy-migrate's DROP TABLE
 * migrate_version).
 *
 * VERSION words, wherever a command takes one: a number, head (latest,
 * heads) for the repository's latest, base for 0, and for upgrade and
 * downgrade +N / -N relative to the database: upgrade +1 goes one version
 * past the contracted version (what db_version prints), downgrade -1 one
 * below the expanded version (the newest applied).
 */
#include "config.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/xmalloc.h"

/* For commands that take no options of their own (--help is global). */
static const struct option no_options[] = { { NULL, 0, NULL, 0 } };

/* Parse a command's words and refuse more than max_pos positionals. */
static int
parse_args(struct cli *cli, int argc, char **argv, const struct option *longopts,
	   size_t max_pos, struct cli_args *a)
{
	int rc = cli_args_parse(cli, argc, argv, longopts, a);

	if (rc == 0 && a->n_pos > max_pos) {
		rc = max_pos == 0 ? cli_usage_error(cli, "%s takes no arguments", argv[0])
				  : cli_usage_error(cli, "too many arguments: '%s'", a->pos[max_pos]);
		cli_args_release(a);
	}
	return rc;
}

/* The database's row, read without changing anything. */
static int
read_versions(struct cli *cli, struct state_versions *v)
{
	int rc;

	if ((rc = cli_open_state(cli)) < 0)
		return rc;
	return state_read(&cli->st, v, &cli->err);
}

/*
 * A VERSION word.  base is 0; +N and -N count from *from, which is read
 * from the database through from_of when first needed (NULL: relative
 * versions are not taken here).
 */
static int
parse_target(struct cli *cli, const char *text, int64_t (*from_of)(const struct state_versions *),
	     int64_t *out)
{
	struct state_versions v;
	long long n;
	char *end;
	int rc;

	if (strcmp(text, "base") == 0) {
		*out = 0;
		return 0;
	}
	if (text[0] != '+' && text[0] != '-')
		return cli_parse_version(cli, text, out);
	n = strtoll(text + 1, &end, 10);
	if (from_of == NULL || *end != '\0' || n < 0)
		return cli_usage_error(cli, "'%s' is not a version number", text);
	if ((rc = read_versions(cli, &v)) < 0)
		return rc;
	*out = from_of(&v) + (text[0] == '+' ? n : -n);
	if (*out < 0)
		*out = 0;
	return 0;
}

static int64_t
contracted(const struct state_versions *v)
{
	return v->contract;
}

static int64_t
expanded(const struct state_versions *v)
{
	return v->expand;
}

/* The repository's latest, or an error for a repository with none. */
static int
latest_version(struct cli *cli, int64_t *target)
{
	int rc;

	if ((rc = cli_load_repo(cli)) < 0)
		return rc;
	*target = repo_latest(&cli->repo);
	if (*target == 0)
		return err_setf(&cli->err, DBPHASE_EBADINPUT, "repository '%s' has no migrations",
				cli->repo.dir);
	return 0;
}

static int
check_target(struct cli *cli, int64_t target)
{
	if (target < 1 || target > repo_latest(&cli->repo))
		return cli_usage_error(cli, "version %lld is not in repository '%s' (1 to %lld)",
				       (long long)target, cli->repo.dir,
				       (long long)repo_latest(&cli->repo));
	return 0;
}

/* What db_sync --check says of the current repository: 0, 2, 3 or 4. */
static int
check_one(struct cli *cli, int64_t target, json_t *list, int *next)
{
	static const char *const what[] = {
		[0] = "up to date", [2] = "expand needed", [3] = "migrate needed",
		[4] = "contract needed",
	};
	static const char *const cmd[] = {
		[2] = "--expand", [3] = "--migrate", [4] = "--contract",
	};
	struct state_versions v;
	int rc;

	if ((rc = read_versions(cli, &v)) < 0)
		return rc;
	if (v.exists && (rc = cli_check_readonly(cli, &v)) < 0)
		return rc;
	*next = machine_next(&v, target);
	if (list != NULL) {
		json_t *o = json_object();

		json_object_set_new(o, "repository", json_string(cli->st.repo));
		if (cli->extension)
			json_object_set_new(o, "extension", json_string(cli->extension));
		json_object_set_new(o, "target", json_integer(target));
		json_object_set_new(o, "expand_version", json_integer(v.expand));
		json_object_set_new(o, "migrate_version", json_integer(v.migrate));
		json_object_set_new(o, "contract_version", json_integer(v.contract));
		json_object_set_new(o, "next", json_string(what[*next]));
		json_object_set_new(o, "exit_code", json_integer(*next));
		json_array_append_new(list, o);
	} else if (*next == 0) {
		printf("%s: up to date at version %lld\n", cli->st.repo, (long long)target);
	} else {
		printf("%s: %s (expand %lld, migrate %lld, contract %lld; target %lld): "
		       "run dbphase%s%s db_sync %s %lld\n", cli->st.repo, what[*next],
		       (long long)v.expand, (long long)v.migrate, (long long)v.contract,
		       (long long)target, cli->extension ? " --extension " : "",
		       cli->extension ? cli->extension : "", cmd[*next], (long long)target);
	}
	return 0;
}

/*
 * The extensions a plain db_sync also covers: every extension of the main
 * repository when no --extension was given (keystone: "db_sync without
 * --extension migrates all extensions"); *n = 0 otherwise.
 */
static int
extensions_to_cover(struct cli *cli, char ***names, size_t *n)
{
	int rc;

	*names = NULL;
	*n = 0;
	if (cli->extension)
		return 0;
	if ((rc = cli_load_repo(cli)) < 0)
		return rc;
	return repo_list_extensions(cli->repo.dir, names, n, &cli->err);
}

static void
free_names(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

/*
 * db_sync --check: the main repository (or the --extension) and, without
 * --extension, every extension.  The exit code is the earliest phase
 * pending anywhere: 0 only when everything is up to date.
 */
static int
print_check(struct cli *cli, int64_t target)
{
	json_t *list = cli->format == CLI_JSON ? json_array() : NULL;
	char **ext = NULL;
	size_t n_ext = 0, i;
	int rc, next, worst = 0;

	if ((rc = extensions_to_cover(cli, &ext, &n_ext)) < 0)
		goto out;
	if ((rc = check_one(cli, target, list, &next)) < 0)
		goto out;
	worst = next;
	for (i = 0; i < n_ext; i++) {
		cli_use_extension(cli, ext[i]);
		if ((rc = latest_version(cli, &target)) < 0 ||
		    (rc = check_one(cli, target, list, &next)) < 0)
			goto out;
		if (next != 0 && (worst == 0 || next < worst))
			worst = next;
	}
	if (list != NULL) {
		/* The main repository's object, with its extensions' inside. */
		json_t *o = json_incref(json_array_get(list, 0));

		json_array_remove(list, 0);
		if (n_ext > 0) {
			json_object_set_new(o, "exit_code", json_integer(worst));
			json_object_set(o, "extensions", list);
		}
		cli_print_json(o);
	}
	rc = worst;
out:
	json_decref(list);
	free_names(ext, n_ext);
	return rc;
}

/* How a command that runs phases was asked to run them. */
struct sync_opts {
	const char *command;	/* for the history */
	bool force;		/* past live old nodes */
	bool skip_verify;	/* contract without verify */
};

/* All three phases in order, each with its gate. */
static int
sync_all(struct cli *cli, int64_t target, const struct sync_opts *so)
{
	struct machine_opts o;
	int rc = 0, ph;

	cli_machine_opts(cli, &o, so->command);
	o.force = so->force;
	o.skip_verify = so->skip_verify;
	for (ph = PHASE_EXPAND; ph <= PHASE_CONTRACT && rc == 0; ph++)
		rc = machine_phase(&cli->st, &cli->repo, &cli->plan, (enum phase)ph, target, &o,
				   &cli->err);
	return rc;
}

static int
downgrade_to(struct cli *cli, int64_t target, const char *command, bool allow_data_loss)
{
	struct machine_opts o;
	int rc;

	if ((rc = cli_open_state_to_change(cli)) < 0)
		return rc;
	cli_machine_opts(cli, &o, command);
	o.allow_data_loss = allow_data_loss;
	return machine_downgrade(&cli->st, &cli->repo, &cli->plan, target, &o, &cli->err);
}

static int
stamp_to(struct cli *cli, int64_t version, const char *command)
{
	struct machine_opts o;
	int rc;

	if ((rc = cli_open_state_to_change(cli)) < 0)
		return rc;
	cli_machine_opts(cli, &o, command);
	rc = machine_stamp(&cli->st, &cli->repo, version, &o, &cli->err);
	if (rc == 0 && cli->format == CLI_TEXT)
		printf("%s: stamped at version %lld (no migration was run)\n", cli->st.repo,
		       (long long)version);
	return rc;
}

/*
 * glance's "db sync VERSION CURRENT_VERSION": a database not yet under
 * version control is first put under it at CURRENT_VERSION; one already
 * under it must be at CURRENT_VERSION.
 */
static int
control_at(struct cli *cli, int64_t current)
{
	struct state_versions v;
	char *at;
	int rc;

	if ((rc = read_versions(cli, &v)) < 0)
		return rc;
	if (!v.exists)
		return stamp_to(cli, current, "db_sync (version_control)");
	if (v.expand == current && v.contract == current)
		return 0;
	at = state_versions_text(&v);
	rc = err_setf(&cli->err, DBPHASE_EREFUSED, "db_sync refused: the database is already"
		      " under version control at %s, not at %lld; give only the version to"
		      " sync to", at, (long long)current);
	free(at);
	return rc;
}

/*
 * A full db_sync of the current repository to target: all three phases, or
 * a downgrade when target is below the expanded version (keystone's and
 * sqlalchemy-migrate's db_sync VERSION goes either way).
 */
static int
sync_to(struct cli *cli, int64_t target, const struct sync_opts *so)
{
	struct state_versions v;
	int rc;

	if ((rc = read_versions(cli, &v)) < 0)
		return rc;
	if (target < v.expand)
		return downgrade_to(cli, target, so->command, false);
	if (target == 0)
		return 0;
	if ((rc = check_target(cli, target)) < 0 || (rc = cli_open_state_to_change(cli)) < 0)
		return rc;
	return sync_all(cli, target, so);
}

int
cmd_db_sync(struct cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "expand", no_argument, NULL, 'e' },
		{ "migrate", no_argument, NULL, 'm' },
		{ "contract", no_argument, NULL, 'c' },
		{ "check", no_argument, NULL, 'k' },
		{ "force", no_argument, NULL, 'f' },
		{ "skip-verify", no_argument, NULL, 's' },
		{ NULL, 0, NULL, 0 },
	};
	struct sync_opts so = { 0 };
	struct cli_args a;
	struct machine_opts o;
	int phase = -1, rc, n_flags = 0;
	bool check = false;
	int64_t target = 0, current = -1;
	char *command = NULL, **ext = NULL;
	size_t i, n_ext = 0;

	if ((rc = parse_args(cli, argc, argv, longopts, 2, &a)) < 0)
		return rc;
	for (i = 0; i < a.n_opts; i++) {
		switch (a.opts[i].val) {
		case 'e':
			phase = PHASE_EXPAND;
			n_flags++;
			break;
		case 'm':
			phase = PHASE_MIGRATE;
			n_flags++;
			break;
		case 'c':
			phase = PHASE_CONTRACT;
			n_flags++;
			break;
		case 'k':
			check = true;
			n_flags++;
			break;
		case 'f':
			so.force = true;
			break;
		case 's':
			so.skip_verify = true;
			break;
		}
	}
	if (n_flags > 1) {
		rc = cli_usage_error(cli, "give at most one of --expand, --migrate, --contract, --check");
		goto out;
	}
	if (a.n_pos == 2 && n_flags > 0) {
		rc = cli_usage_error(cli, "db sync VERSION CURRENT_VERSION takes no phase flag");
		goto out;
	}
	if ((rc = cli_load_repo(cli)) < 0)
		goto out;
	if (a.n_pos == 2 && (rc = parse_target(cli, a.pos[1], NULL, &current)) < 0)
		goto out;
	if (current > repo_latest(&cli->repo)) {
		rc = cli_usage_error(cli, "current version %lld is not in repository '%s' (0 to %lld)",
				     (long long)current, cli->repo.dir,
				     (long long)repo_latest(&cli->repo));
		goto out;
	}
	if (a.n_pos >= 1)
		rc = parse_target(cli, a.pos[0], NULL, &target);
	else
		rc = latest_version(cli, &target);
	if (rc < 0)
		goto out;
	/* Every word is checked before the database is touched. */
	if (phase >= 0 || check || target > repo_latest(&cli->repo)) {
		if ((rc = check_target(cli, target)) < 0)
			goto out;
	}
	if (check) {
		rc = print_check(cli, target);
		goto out;
	}
	command = xasprintf("db_sync%s%s%s%s", phase < 0 ? "" : " --",
			    phase < 0 ? "" : phase_name((enum phase)phase), so.force ? " --force" : "",
			    so.skip_verify ? " --skip-verify" : "");
	so.command = command;
	if (phase >= 0) {
		if ((rc = cli_open_state_to_change(cli)) < 0)
			goto out;
		cli_machine_opts(cli, &o, command);
		o.force = so.force;
		o.skip_verify = so.skip_verify;
		rc = machine_phase(&cli->st, &cli->repo, &cli->plan, (enum phase)phase, target,
				   &o, &cli->err);
		goto out;
	}
	if (current >= 0 && (rc = control_at(cli, current)) < 0)
		goto out;
	/* A version names the main repository's; every extension goes to its latest. */
	if (a.n_pos == 0 && (rc = extensions_to_cover(cli, &ext, &n_ext)) < 0)
		goto out;
	rc = sync_to(cli, target, &so);
	for (i = 0; i < n_ext && rc == 0; i++) {
		cli_use_extension(cli, ext[i]);
		if ((rc = latest_version(cli, &target)) == 0)
			rc = sync_to(cli, target, &so);
		if (rc < 0)
			err_prefixf(&cli->err, "extension '%s'", ext[i]);
	}
out:
	free_names(ext, n_ext);
	free(command);
	cli_args_release(&a);
	return rc;
}

int
cmd_upgrade(struct cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "revision", required_argument, NULL, 'r' },
		{ "force", no_argument, NULL, 'f' },
		{ "skip-verify", no_argument, NULL, 's' },
		{ NULL, 0, NULL, 0 },
	};
	struct sync_opts so = { .command = "upgrade" };
	const char *revision = NULL;
	struct cli_args a;
	int64_t target;
	size_t i;
	int rc;

	if ((rc = parse_args(cli, argc, argv, longopts, 1, &a)) < 0)
		return rc;
	for (i = 0; i < a.n_opts; i++) {
		if (a.opts[i].val == 'r')
			revision = a.opts[i].value;
		else if (a.opts[i].val == 'f')
			so.force = true;
		else
			so.skip_verify = true;
	}
	if (revision && a.n_pos > 0) {
		rc = cli_usage_error(cli, "give the version once: as an argument or with --revision");
		goto out;
	}
	if (revision == NULL && a.n_pos == 1)
		revision = a.pos[0];
	if ((rc = cli_load_repo(cli)) < 0)
		goto out;
	rc = revision ? parse_target(cli, revision, contracted, &target)
		      : latest_version(cli, &target);
	if (rc < 0)
		goto out;
	if (target == 0) {		/* upgrade base: nothing to run */
		rc = 0;
		goto out;
	}
	if ((rc = check_target(cli, target)) < 0 || (rc = cli_open_state_to_change(cli)) < 0)
		goto out;
	if (so.skip_verify)
		so.command = "upgrade --skip-verify";
	rc = sync_all(cli, target, &so);
out:
	cli_args_release(&a);
	return rc;
}

int
cmd_downgrade(struct cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "allow-data-loss", no_argument, NULL, 'L' },
		{ NULL, 0, NULL, 0 },
	};
	struct cli_args a;
	int64_t target;
	bool loss;
	int rc;

	if ((rc = parse_args(cli, argc, argv, longopts, 1, &a)) < 0)
		return rc;
	loss = a.n_opts > 0;
	if (a.n_pos != 1)
		rc = cli_usage_error(cli, "downgrade needs one VERSION (a number, base, or -N)");
	else if ((rc = cli_load_repo(cli)) == 0 &&
		 (rc = parse_target(cli, a.pos[0], expanded, &target)) == 0)
		rc = downgrade_to(cli, target, loss ? "downgrade --allow-data-loss" : "downgrade",
				  loss);
	cli_args_release(&a);
	return rc;
}

/*
 * db_version and version: one token, the contracted version (the schema
 * every node may rely on), as the seed tools print one number; the phases
 * are in --format json and in status.
 */
int
cmd_db_version(struct cli *cli, int argc, char **argv)
{
	struct state_versions v;
	struct cli_args a;
	int rc;

	if ((rc = parse_args(cli, argc, argv, no_options, 0, &a)) < 0)
		return rc;
	cli_args_release(&a);
	if ((rc = cli_open_state(cli)) < 0 || (rc = cli_check_readonly(cli, NULL)) < 0 ||
	    (rc = state_read(&cli->st, &v, &cli->err)) < 0)
		return rc;
	if (cli->format == CLI_JSON) {
		json_t *o = json_object();

		json_object_set_new(o, "repository", json_string(cli->st.repo));
		json_object_set_new(o, "version", json_integer(v.contract));
		json_object_set_new(o, "expand_version", json_integer(v.expand));
		json_object_set_new(o, "migrate_version", json_integer(v.migrate));
		json_object_set_new(o, "contract_version", json_integer(v.contract));
		json_object_set_new(o, "latest", json_integer(repo_latest(&cli->repo)));
		json_object_set_new(o, "under_version_control", json_boolean(v.exists));
		cli_print_json(o);
	} else {
		printf("%lld\n", (long long)v.contract);
	}
	return 0;
}

int
cmd_version_control(struct cli *cli, int argc, char **argv)
{
	struct state_versions v;
	struct cli_args a;
	int64_t version = 0;
	int rc;

	if ((rc = parse_args(cli, argc, argv, no_options, 1, &a)) < 0)
		return rc;
	if ((rc = cli_load_repo(cli)) < 0 ||
	    (a.n_pos == 1 && (rc = parse_target(cli, a.pos[0], NULL, &version)) < 0))
		goto out;
	/* As sqlalchemy-migrate: only a database not yet under version control. */
	if ((rc = cli_open_state_to_change(cli)) < 0 || (rc = state_read(&cli->st, &v, &cli->err)) < 0)
		goto out;
	if (v.exists) {
		rc = err_setf(&cli->err, DBPHASE_EREFUSED,
			      "version_control refused: repository '%s' is already under version "
			      "control (expand %lld, migrate %lld, contract %lld); use goto or "
			      "stamp to set another version", cli->st.repo, (long long)v.expand,
			      (long long)v.migrate, (long long)v.contract);
		goto out;
	}
	rc = stamp_to(cli, version, "version_control");
out:
	cli_args_release(&a);
	return rc;
}

/*
 * forget: dbphase's own rows of this repository, and its tables once no
 * other repository uses them; never an application table.  --yes is
 * required: a tool run from scripts does not ask.
 */
int
cmd_forget(struct cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "yes", no_argument, NULL, 'y' },
		{ NULL, 0, NULL, 0 },
	};
	struct machine_opts o;
	struct cli_args a;
	char *removed = NULL, *key;
	bool yes;
	int rc;

	if ((rc = parse_args(cli, argc, argv, longopts, 0, &a)) < 0)
		return rc;
	yes = a.n_opts > 0;
	cli_args_release(&a);
	if ((rc = cli_load_repo(cli)) < 0)
		return rc;
	if (!yes) {
		key = repo_state_key(&cli->repo);
		rc = cli_usage_error(cli, "forget needs --yes: it removes repository '%s' from "
				     "dbphase's tables (its rows in %s, dbphase_migrations, "
				     "dbphase_steps, dbphase_progress, dbphase_nodes, "
				     "dbphase_history and dbphase_locks) and drops those tables "
				     "and dbphase_meta once no other repository uses them; the "
				     "application's tables stay", key, cli->repo.version_table);
		free(key);
		return rc;
	}
	if ((rc = cli_open_state_to_change(cli)) < 0)
		return rc;
	cli_machine_opts(cli, &o, "forget");
	if ((rc = machine_forget(&cli->st, &o, &removed, &cli->err)) < 0)
		return rc;
	if (cli->format == CLI_JSON) {
		json_t *j = json_object();

		json_object_set_new(j, "repository", json_string(cli->st.repo));
		json_object_set_new(j, "forgotten", json_boolean(removed != NULL));
		json_object_set_new(j, "detail", removed ? json_string(removed) :
				    json_string("dbphase's tables do not exist"));
		cli_print_json(j);
	} else if (removed) {
		printf("forget: %s\n", removed);
	} else {
		printf("forget: dbphase's tables do not exist here: nothing to forget\n");
	}
	free(removed);
	return 0;
}

int
cmd_goto(struct cli *cli, int argc, char **argv)
{
	struct cli_args a;
	int64_t version;
	int rc;

	if ((rc = parse_args(cli, argc, argv, no_options, 1, &a)) < 0)
		return rc;
	if (a.n_pos != 1)
		rc = cli_usage_error(cli, "goto needs exactly one VERSION");
	else if ((rc = cli_load_repo(cli)) == 0 &&
		 (rc = parse_target(cli, a.pos[0], NULL, &version)) == 0)
		rc = stamp_to(cli, version, "goto");
	cli_args_release(&a);
	return rc;
}

int
cmd_stamp(struct cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "revision", required_argument, NULL, 'r' },
		{ NULL, 0, NULL, 0 },
	};
	const char *revision = NULL;
	struct cli_args a;
	int64_t version;
	int rc;

	if ((rc = parse_args(cli, argc, argv, longopts, 1, &a)) < 0)
		return rc;
	if (a.n_opts > 0)
		revision = a.opts[a.n_opts - 1].value;
	if ((revision != NULL) == (a.n_pos == 1))
		rc = cli_usage_error(cli, "stamp needs one version: --revision VERSION");
	else if ((rc = cli_load_repo(cli)) == 0 &&
		 (rc = parse_target(cli, revision ? revision : a.pos[0], NULL, &version)) == 0)
		rc = stamp_to(cli, version, "stamp");
	cli_args_release(&a);
	return rc;
}

int
cmd_create_schema(struct cli *cli, int argc, char **argv)
{
	char *app = NULL;
	struct cli_args a;
	int64_t latest;
	int rc;

	if ((rc = parse_args(cli, argc, argv, no_options, 0, &a)) < 0)
		return rc;
	cli_args_release(&a);
	if ((rc = cli_open_state_to_change(cli)) < 0 || (rc = machine_check(&cli->st, &cli->repo, &cli->err)) < 0)
		return rc;
	latest = repo_latest(&cli->repo);
	if (latest == 0)
		return err_setf(&cli->err, DBPHASE_EBADINPUT, "repository '%s' has no migrations",
				cli->repo.dir);
	if ((rc = state_app_table(&cli->st, &app, &cli->err)) < 0)
		return rc;
	if (app) {
		rc = err_setf(&cli->err, DBPHASE_EREFUSED,
			      "create_schema refused: the database already holds application "
			      "tables (such as '%s'); use db_sync, or version_control for a "
			      "database created another way", app);
		free(app);
		return rc;
	}
	/*
	 * On an empty database every phase of every version can run at once:
	 * there is no old code to keep working.
	 */
	return sync_all(cli, latest, &(struct sync_opts){ .command = "create_schema" });
}

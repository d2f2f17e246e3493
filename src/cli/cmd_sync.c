/*
 * cli/cmd_sync.c - the commands that read or move the version row:
 * db_sync (keystone), upgrade/downgrade/version_control/goto (sqlalchemy-
 * migrate, glance), stamp (Alembic, mogan), db_version, create_schema.
 */
#include "config.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/xmalloc.h"

/* For commands that take no options of their own (--help is global). */
static const struct option no_options[] = { { NULL, 0, NULL, 0 } };

/* Run getopt_long on a command's argv; usage errors name the option. */
static int
next_opt(struct cli *cli, int argc, char **argv, const char *shortopts,
	 const struct option *longopts, int *c)
{
	opterr = 0;
	*c = getopt_long(argc, argv, shortopts, longopts, NULL);
	if (*c == '?') {
		if (optopt)
			return cli_usage_error(cli, "unknown option '-%c'", optopt);
		return cli_usage_error(cli, "unknown option '%s'", argv[optind - 1]);
	}
	if (*c == ':')
		return cli_usage_error(cli, "option '%s' needs a value", argv[optind - 1]);
	return 0;
}

/* The optional VERSION argument: latest when absent. */
static int
target_version(struct cli *cli, int argc, char **argv, int64_t *target)
{
	int rc;

	if ((rc = cli_load_repo(cli)) < 0)
		return rc;
	if (optind < argc - 1)
		return cli_usage_error(cli, "too many arguments: '%s'", argv[optind + 1]);
	if (optind == argc - 1)
		return cli_parse_version(cli, argv[optind], target);
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

static int
print_check(struct cli *cli, int64_t target)
{
	static const char *const what[] = {
		[0] = "up to date", [2] = "expand needed", [3] = "migrate needed",
		[4] = "contract needed",
	};
	static const char *const cmd[] = {
		[2] = "--expand", [3] = "--migrate", [4] = "--contract",
	};
	struct state_versions v;
	int rc, next;

	if ((rc = cli_open_state(cli)) < 0 || (rc = state_read(&cli->st, &v, &cli->err)) < 0)
		return rc;
	if (v.exists && (rc = machine_verify(&cli->st, &cli->repo, &v, &cli->err)) < 0)
		return rc;
	next = machine_next(&v, target);
	if (cli->format == CLI_JSON) {
		json_t *o = json_object();

		json_object_set_new(o, "repository", json_string(cli->st.repo));
		json_object_set_new(o, "target", json_integer(target));
		json_object_set_new(o, "expand_version", json_integer(v.expand));
		json_object_set_new(o, "migrate_version", json_integer(v.migrate));
		json_object_set_new(o, "contract_version", json_integer(v.contract));
		json_object_set_new(o, "next", json_string(what[next]));
		json_object_set_new(o, "exit_code", json_integer(next));
		cli_print_json(o);
	} else if (next == 0) {
		printf("%s: up to date at version %lld\n", cli->st.repo, (long long)target);
	} else {
		printf("%s: %s (expand %lld, migrate %lld, contract %lld; target %lld): "
		       "run dbphase db_sync %s %lld\n", cli->st.repo, what[next],
		       (long long)v.expand, (long long)v.migrate, (long long)v.contract,
		       (long long)target, cmd[next], (long long)target);
	}
	return next;
}

/* All three phases in order, each with its gate. */
static int
sync_all(struct cli *cli, int64_t target, bool force, bool skip_verify, const char *command)
{
	struct machine_opts o;
	int rc = 0, ph;

	cli_machine_opts(cli, &o, command);
	o.force = force;
	o.skip_verify = skip_verify;
	for (ph = PHASE_EXPAND; ph <= PHASE_CONTRACT && rc == 0; ph++)
		rc = machine_phase(&cli->st, &cli->repo, &cli->plan, (enum phase)ph, target, &o,
				   &cli->err);
	return rc;
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
	struct machine_opts o;
	int phase = -1, c, rc, n_flags = 0;
	bool check = false, force = false, skip_verify = false;
	int64_t target;
	char *command;

	optind = 0;
	for (;;) {
		if ((rc = next_opt(cli, argc, argv, "+", longopts, &c)) < 0)
			return rc;
		if (c == -1)
			break;
		switch (c) {
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
			force = true;
			break;
		case 's':
			skip_verify = true;
			break;
		}
	}
	if (n_flags > 1)
		return cli_usage_error(cli, "give at most one of --expand, --migrate, --contract, --check");
	if ((rc = target_version(cli, argc, argv, &target)) < 0 || (rc = check_target(cli, target)) < 0)
		return rc;
	if (check)
		return print_check(cli, target);
	if ((rc = cli_open_state(cli)) < 0)
		return rc;
	command = xasprintf("db_sync%s%s%s%s", phase < 0 ? "" : " --",
			    phase < 0 ? "" : phase_name((enum phase)phase), force ? " --force" : "",
			    skip_verify ? " --skip-verify" : "");
	if (phase < 0) {
		rc = sync_all(cli, target, force, skip_verify, command);
	} else {
		cli_machine_opts(cli, &o, command);
		o.force = force;
		o.skip_verify = skip_verify;
		rc = machine_phase(&cli->st, &cli->repo, &cli->plan, (enum phase)phase, target,
				   &o, &cli->err);
	}
	free(command);
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
	const char *revision = NULL;
	bool force = false, skip_verify = false;
	int64_t target;
	int c, rc;

	optind = 0;
	for (;;) {
		if ((rc = next_opt(cli, argc, argv, "+:", longopts, &c)) < 0)
			return rc;
		if (c == -1)
			break;
		if (c == 'r')
			revision = optarg;
		else if (c == 'f')
			force = true;
		else if (c == 's')
			skip_verify = true;
	}
	if (revision && optind < argc)
		return cli_usage_error(cli, "give the version once: as an argument or with --revision");
	if (revision) {
		if ((rc = cli_load_repo(cli)) < 0 || (rc = cli_parse_version(cli, revision, &target)) < 0)
			return rc;
	} else if ((rc = target_version(cli, argc, argv, &target)) < 0) {
		return rc;
	}
	if ((rc = check_target(cli, target)) < 0 || (rc = cli_open_state(cli)) < 0)
		return rc;
	return sync_all(cli, target, force, skip_verify,
			skip_verify ? "upgrade --skip-verify" : "upgrade");
}

int
cmd_downgrade(struct cli *cli, int argc, char **argv)
{
	struct machine_opts o;
	int64_t target;
	int rc, c;

	optind = 0;
	if ((rc = next_opt(cli, argc, argv, "+", no_options, &c)) < 0)
		return rc;
	if (argc != 2)
		return cli_usage_error(cli, "downgrade needs exactly one VERSION");
	if ((rc = cli_load_repo(cli)) < 0 || (rc = cli_parse_version(cli, argv[1], &target)) < 0 ||
	    (rc = cli_open_state(cli)) < 0)
		return rc;
	cli_machine_opts(cli, &o, "downgrade");
	return machine_downgrade(&cli->st, &cli->repo, &cli->plan, target, &o, &cli->err);
}

int
cmd_db_version(struct cli *cli, int argc, char **argv)
{
	struct state_versions v;
	int rc, c;

	optind = 0;
	if ((rc = next_opt(cli, argc, argv, "+", no_options, &c)) < 0)
		return rc;
	if (argc > 1)
		return cli_usage_error(cli, "db_version takes no arguments");
	if ((rc = cli_open_state(cli)) < 0 || (rc = machine_check(&cli->st, &cli->repo, &cli->err)) < 0 ||
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
	} else if (v.expand == v.contract) {
		printf("%lld\n", (long long)v.contract);
	} else {
		printf("%lld (expand %lld, migrate %lld, contract %lld)\n", (long long)v.contract,
		       (long long)v.expand, (long long)v.migrate, (long long)v.contract);
	}
	return 0;
}

int
cmd_version(struct cli *cli, int argc, char **argv)
{
	int rc;

	if (argc > 1)
		return cli_usage_error(cli, "version takes no arguments");
	if ((rc = cli_load_repo(cli)) < 0)
		return rc;
	if (cli->format == CLI_JSON) {
		json_t *o = json_object();

		json_object_set_new(o, "repository", json_string(cli->repo.id));
		json_object_set_new(o, "latest", json_integer(repo_latest(&cli->repo)));
		cli_print_json(o);
	} else {
		printf("%lld\n", (long long)repo_latest(&cli->repo));
	}
	return 0;
}

static int
stamp_to(struct cli *cli, int64_t version, const char *command)
{
	struct machine_opts o;
	int rc;

	if ((rc = cli_open_state(cli)) < 0)
		return rc;
	cli_machine_opts(cli, &o, command);
	rc = machine_stamp(&cli->st, &cli->repo, version, &o, &cli->err);
	if (rc == 0 && cli->format == CLI_TEXT)
		printf("%s: stamped at version %lld (no migration was run)\n", cli->st.repo,
		       (long long)version);
	return rc;
}

int
cmd_version_control(struct cli *cli, int argc, char **argv)
{
	struct state_versions v;
	int64_t version = 0;
	int rc, c;

	optind = 0;
	if ((rc = next_opt(cli, argc, argv, "+", no_options, &c)) < 0)
		return rc;
	if (argc > 2)
		return cli_usage_error(cli, "version_control takes at most one VERSION");
	if ((rc = cli_load_repo(cli)) < 0)
		return rc;
	if (argc == 2 && (rc = cli_parse_version(cli, argv[1], &version)) < 0)
		return rc;
	/* As sqlalchemy-migrate: only a database not yet under version control. */
	if ((rc = cli_open_state(cli)) < 0 || (rc = state_read(&cli->st, &v, &cli->err)) < 0)
		return rc;
	if (v.exists)
		return err_setf(&cli->err, DBPHASE_EREFUSED,
				"version_control refused: repository '%s' is already under version "
				"control (expand %lld, migrate %lld, contract %lld); use goto or "
				"stamp to set another version", cli->st.repo, (long long)v.expand,
				(long long)v.migrate, (long long)v.contract);
	return stamp_to(cli, version, "version_control");
}

int
cmd_goto(struct cli *cli, int argc, char **argv)
{
	int64_t version;
	int rc, c;

	optind = 0;
	if ((rc = next_opt(cli, argc, argv, "+", no_options, &c)) < 0)
		return rc;
	if (argc != 2)
		return cli_usage_error(cli, "goto needs exactly one VERSION");
	if ((rc = cli_load_repo(cli)) < 0 || (rc = cli_parse_version(cli, argv[1], &version)) < 0)
		return rc;
	return stamp_to(cli, version, "goto");
}

int
cmd_stamp(struct cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "revision", required_argument, NULL, 'r' },
		{ NULL, 0, NULL, 0 },
	};
	const char *revision = NULL;
	int64_t version;
	int rc, c;

	optind = 0;
	for (;;) {
		if ((rc = next_opt(cli, argc, argv, "+:", longopts, &c)) < 0)
			return rc;
		if (c == -1)
			break;
		revision = optarg;
	}
	if (revision == NULL && optind == argc - 1)
		revision = argv[optind++];
	if (revision == NULL || optind < argc)
		return cli_usage_error(cli, "stamp needs one version: --revision VERSION");
	if ((rc = cli_load_repo(cli)) < 0 || (rc = cli_parse_version(cli, revision, &version)) < 0)
		return rc;
	return stamp_to(cli, version, "stamp");
}

int
cmd_create_schema(struct cli *cli, int argc, char **argv)
{
	char **tables = NULL;
	size_t n = 0, i, app = 0;
	int64_t latest;
	int rc, c;

	optind = 0;
	if ((rc = next_opt(cli, argc, argv, "+", no_options, &c)) < 0)
		return rc;
	if (argc > 1)
		return cli_usage_error(cli, "create_schema takes no arguments");
	if ((rc = cli_open_state(cli)) < 0 || (rc = machine_check(&cli->st, &cli->repo, &cli->err)) < 0)
		return rc;
	latest = repo_latest(&cli->repo);
	if (latest == 0)
		return err_setf(&cli->err, DBPHASE_EBADINPUT, "repository '%s' has no migrations",
				cli->repo.dir);
	if ((rc = cli->conn->drv->list_tables(cli->conn, &tables, &n, &cli->err)) < 0)
		return rc;
	for (i = 0; i < n; i++) {
		if (strncmp(tables[i], "dbphase_", 8) != 0 &&
		    strcmp(tables[i], cli->repo.version_table) != 0 && app++ == 0)
			err_setf(&cli->err, DBPHASE_EREFUSED,
				 "create_schema refused: the database already holds application "
				 "tables (such as '%s'); use db_sync, or version_control for a "
				 "database created another way", tables[i]);
		free(tables[i]);
	}
	free(tables);
	if (app > 0)
		return DBPHASE_EREFUSED;
	/*
	 * On an empty database every phase of every version can run at once:
	 * there is no old code to keep working.
	 */
	return sync_all(cli, latest, false, false, "create_schema");
}

/*
 * cli/main.c - dbphase's entry point: global options, the command table,
 * dispatch, signals, and the one mapping from errors to exit codes.
 */
#include "config.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/excerpt.h"
#include "core/log.h"
#include "core/strbuf.h"
#include "core/xmalloc.h"

const struct cli_command cli_commands[] = {
	{ "db_sync", "sync|db sync|database sync|db-sync",
	  "[--expand|--migrate|--contract|--check] [--force] [--skip-verify] [VERSION]",
	  "move the schema to VERSION (default: latest), all phases or one",
	  "  --expand      additive changes only; old code keeps working\n"
	  "  --migrate     copy data into its new shape in batches (after expand)\n"
	  "  --contract    drop what only old code needed (after migrate, once no\n"
	  "                live node runs old code)\n"
	  "  --check       say what is next: exit 0 up to date, 2 expand needed,\n"
	  "                3 migrate needed, 4 contract needed\n"
	  "  --force       contract even though live nodes need an older schema, or\n"
	  "                nodes seen within 300 s when node_ttl_s is shorter\n"
	  "  --skip-verify contract without first comparing the derived columns with\n"
	  "                their sources (see verify); recorded in the history\n"
	  "  with no phase flag, all three phases run in order (offline upgrade)\n",
	  cmd_db_sync },
	{ "upgrade", "db upgrade|database upgrade", "[VERSION | --revision VERSION]",
	  "all three phases up to VERSION (default: latest), as db_sync does",
	  "  --revision V  the version to upgrade to (Alembic's spelling)\n"
	  "  --force       as for db_sync --contract\n"
	  "  --skip-verify as for db_sync --contract\n",
	  cmd_upgrade },
	{ "downgrade", "db downgrade|database downgrade", "[--allow-data-loss] VERSION",
	  "undo the expand steps of versions above VERSION not yet contracted",
	  "  below the last contracted version dbphase refuses: restore from backup,\n"
	  "  or:\n"
	  "  --allow-data-loss  take back contracted versions too, when each of their\n"
	  "                contract steps dropped only what those versions created:\n"
	  "                what they created is dropped with its data (recorded in the\n"
	  "                history as 'ok (data loss)'); a contract that dropped an\n"
	  "                older column or table still refuses (exit 5)\n",
	  cmd_downgrade },
	{ "db_version", "db version|database version|current|db current", "",
	  "print the database's version: one token, the contracted version",
	  "  --format json gives the expanded, migrated and contracted versions too\n",
	  cmd_db_version },
	{ "version", "", "",
	  "print the database's version, as db_version does",
	  "  the repository's latest version is in status and db_version --format json\n",
	  cmd_db_version },
	{ "version_control", "database version_control|version-control", "[VERSION]",
	  "put an existing database under dbphase at VERSION (default 0), running nothing",
	  "  refused when the database is already under version control: use goto\n",
	  cmd_version_control },
	{ "goto", "database goto", "VERSION",
	  "set every phase to VERSION without running migrations (recorded in history)",
	  "", cmd_goto },
	{ "forget", "db forget|database forget", "--yes",
	  "remove dbphase's own tables (DROP TABLE migrate_version), nothing else",
	  "  --yes         required: removes this repository's rows from dbphase's\n"
	  "                tables, then the tables once no other repository uses\n"
	  "                them; refused (exit 5) while a phase is in flight\n",
	  cmd_forget },
	{ "stamp", "db stamp|database stamp", "--revision VERSION | VERSION",
	  "set every phase to VERSION without running migrations (Alembic's stamp)",
	  "  --revision V  the version to stamp\n", cmd_stamp },
	{ "create_schema", "create-schema|database create_schema", "",
	  "create the latest schema on an empty database and stamp it",
	  "  refuses when the database already holds application tables\n",
	  cmd_create_schema },
	{ "plan", "", "[--phase expand|migrate|contract] [--sql] [--dialect D] [--all] [VERSION]",
	  "show the steps each phase would run, and why",
	  "  --phase P     only that phase\n"
	  "  --sql         print exactly the SQL each phase would run\n"
	  "  --dialect D   postgresql, mysql or sqlite: plan offline, no database\n"
	  "  --all         every version, not only those still to run\n",
	  cmd_plan },
	{ "status", "", "",
	  "versions on disk and in the database, the next action, progress, nodes, history",
	  "", cmd_status },
	{ "verify", "", "[VERSION]",
	  "compare every derived column with its source, as contract does first",
	  "  VERSION       compare the versions above the contracted one up to VERSION\n"
	  "                (default: the expanded version); renamed columns, shadow\n"
	  "                columns of type changes, derived backfills, in chunks by key\n"
	  "  exit 0 when all are equal, 5 when a column differs (the first differing\n"
	  "  keys are named) or migrate has not reached VERSION\n",
	  cmd_verify },
	{ "validate", "", "[--repair]",
	  "check recorded checksums against the migration files",
	  "  --repair      record the files' current checksums on purpose\n",
	  cmd_validate },
	{ "node", "", "register|heartbeat|retire|list [--name NAME] [--schema-version N] [--force]",
	  "the registry of application nodes and the schema version their code needs",
	  "  register --name NAME --schema-version N [--force]\n"
	  "                refused (exit 5) below the contracted version unless --force\n"
	  "  heartbeat --name NAME\n"
	  "  retire --name NAME\n"
	  "  list\n",
	  cmd_node },
	{ "revision", "db revision", "-m MESSAGE",
	  "create the next migration file in the repository",
	  "  -m, --message MSG   what the migration does; names the file\n"
	  "  --autogenerate      refused: dbphase plans from the operations you write,\n"
	  "                      not from a diff of models\n",
	  cmd_revision },
};
const size_t cli_n_commands = sizeof(cli_commands) / sizeof(cli_commands[0]);

static const char global_help[] =
	"Global options (before or after the command):\n"
	"  --database URL        postgresql://, mysql://, mariadb:// or sqlite:/// URL\n"
	"                        (else [database] connection, else $DBPHASE_DATABASE,\n"
	"                        else sqlite:///dbphase.sqlite); its password is\n"
	"                        blanked in ps once read, but $DBPHASE_DATABASE or a\n"
	"                        config file keeps it out of the process table\n"	"  --config-file PATH    INI file; repeatable, later wins\n"
	"  --config-dir DIR      every *.conf in DIR, sorted\n"
	"  --repository DIR      the migration repository (default [dbphase] repository,\n"
	"                        else migrations/ beside the config, else ./migrations)\n"
	"  --extension NAME      work on DIR/extensions/NAME\n"
	"  --format text|json    output format\n"
	"  --jobs N, --batch-size N, --max-batch-size N, --batch-time MS, --max-rate N,\n"
	"  --lock-timeout MS, --lock-wait S, --reconnect-wait S, --node-ttl S\n"
	"                        override the [dbphase] settings of the same names\n"
	"  -d, --debug           log every statement sent to stderr (connection, time\n"
	"                        taken, rows), each lock wait and retry; more detail\n"
	"                        in errors\n"
	"  -h, --help            this help; COMMAND --help for a command's\n"
	"      --version         print the version\n";

static void
print_usage(FILE *f)
{
	size_t i;

	fprintf(f, "usage: dbphase [global options] COMMAND [options] [args]\n\n"
		   "Expand / migrate / contract schema migrations for rolling upgrades.\n\n"
		   "Commands:\n");
	for (i = 0; i < cli_n_commands; i++)
		fprintf(f, "  %-16s %s\n", cli_commands[i].name, cli_commands[i].summary);
	fprintf(f, "\n%s\nExit codes: 0 ok, 1 error, 2-4 db_sync --check, 5 refused by the "
		   "state machine,\n64 usage, 65 bad migration or config, 69 database "
		   "unreachable, 75 lock timeout,\n130 interrupted (resumable).\n", global_help);
}

void
cli_command_help(const struct cli_command *cmd)
{
	printf("usage: dbphase %s %s\n\n%s.\n", cmd->name, cmd->args, cmd->summary);
	if (cmd->aliases && *cmd->aliases)
		printf("Also spelled: %s\n", cmd->aliases);
	if (cmd->help && *cmd->help)
		printf("\nOptions:\n%s", cmd->help);
	printf("\n%s", global_help);
}

static int
exit_code(int rc)
{
	switch (rc) {
	case DBPHASE_OK:
		return 0;
	case DBPHASE_EUSAGE:
		return 64;
	case DBPHASE_EBADINPUT:
	case DBPHASE_ECHECKSUM:
		return 65;
	case DBPHASE_ECONNECT:
		return 69;
	case DBPHASE_ELOCK_TIMEOUT:
		return 75;
	case DBPHASE_EREFUSED:
	case DBPHASE_EAHEAD:
		return 5;
	case DBPHASE_EINTERRUPTED:
		return 130;
	default:
		return rc > 0 ? rc : 1;
	}
}

/* Does c have alias a single word equal to word? */
static bool
one_word_alias(const struct cli_command *c, const char *word)
{
	const char *a = c->aliases;

	while (a && *a) {
		size_t len = strcspn(a, "|");

		if (memchr(a, ' ', len) == NULL && strlen(word) == len && strncmp(word, a, len) == 0)
			return true;
		a += len + (a[len] == '|');
	}
	return false;
}

/* Match argv[*i] (and the next word) against a command name or its aliases as written. */
static const struct cli_command *
find_command_word(int argc, char **argv, int *i)
{
	size_t k;

	for (k = 0; k < cli_n_commands; k++) {
		const struct cli_command *c = &cli_commands[k];
		const char *a = c->aliases;

		if (strcmp(argv[*i], c->name) == 0)
			return c;
		while (a && *a) {
			size_t len = strcspn(a, "|");
			const char *space = memchr(a, ' ', len);

			if (space == NULL) {
				if (strlen(argv[*i]) == len && strncmp(argv[*i], a, len) == 0)
					return c;
			} else if (*i + 1 < argc &&
				   strlen(argv[*i]) == (size_t)(space - a) &&
				   strncmp(argv[*i], a, (size_t)(space - a)) == 0 &&
				   strlen(argv[*i + 1]) == len - (size_t)(space - a) - 1 &&
				   strncmp(argv[*i + 1], space + 1, len - (size_t)(space - a) - 1) == 0) {
				(*i)++;
				return c;
			}
			a += len + (a[len] == '|');
		}
	}
	return NULL;
}

/* Match argv[*i] (and the next word) against a command name or alias. */
static const struct cli_command *
find_command(int argc, char **argv, int *i)
{
	const struct cli_command *c;
	int next;
	size_t k;

	if ((c = find_command_word(argc, argv, i)) != NULL)
		return c;
	/* glance and sqlalchemy-migrate: "db CMD" and "database CMD" for every command. */
	if ((strcmp(argv[*i], "db") == 0 || strcmp(argv[*i], "database") == 0) && *i + 1 < argc) {
		next = *i + 1;
		for (k = 0; k < cli_n_commands; k++) {
			c = &cli_commands[k];
			if (strcmp(argv[next], c->name) == 0 || one_word_alias(c, argv[next])) {
				*i = next;
				return c;
			}
		}
	}
	return NULL;
}


enum {
	OPT_CONFIG_FILE = 256, OPT_CONFIG_DIR, OPT_DATABASE, OPT_REPOSITORY, OPT_EXTENSION,
	OPT_FORMAT, OPT_VERSION, OPT_SETTING,
};

static const struct {
	const char *option;
	const char *key;
} setting_options[] = {
	{ "jobs", "jobs" },
	{ "batch-size", "batch_size" },
	{ "max-batch-size", "max_batch_size" },
	{ "batch-time", "batch_time_ms" },
	{ "max-rate", "max_rate" },
	{ "lock-timeout", "lock_timeout_ms" },
	{ "lock-wait", "lock_wait_s" },
	{ "reconnect-wait", "reconnect_wait_s" },
	{ "node-ttl", "node_ttl_s" },
};

int
cli_load_config(struct cli *cli)
{
	size_t i;
	int rc;

	if (cli->have_cfg)
		return 0;
	config_init(&cli->cfg);
	cli->have_cfg = true;
	/* In command-line order, files and folders alike: a later one wins. */
	for (i = 0; i < cli->n_config_sources; i++) {
		const struct cli_config_source *src = &cli->config_sources[i];

		rc = src->is_dir ? config_load_dir(&cli->cfg, src->path, &cli->err)
				 : config_load_file(&cli->cfg, src->path, &cli->err);
		if (rc < 0)
			return rc;
	}
	for (i = 0; i < cli->n_overrides; i++)
		if ((rc = config_set(&cli->cfg, cli->overrides[i].key, cli->overrides[i].value,
				     cli->overrides[i].where, &cli->err)) < 0) {
			cli->err.code = DBPHASE_EUSAGE;
			return DBPHASE_EUSAGE;
		}
	return 0;
}

/*
 * The library's log, with -d: "dbphase: debug: [main pg#12345] 3.2 ms: SQL",
 * one write per line (SQLite's statements log from the thread pool).
 */
static void
log_to_stderr(void *arg, enum log_level level, const char *context, const char *message)
{
	struct strbuf line = STRBUF_INIT;

	strbuf_addf(&line, "dbphase: %s: ", log_level_name(level));
	if (context)
		strbuf_addf(&line, "[%s] ", context);
	strbuf_addstr(&line, message);
	strbuf_addch(&line, '\n');
	fwrite(line.buf, 1, line.len, stderr);
	strbuf_release(&line);
	(void)arg;
}

/*
 * SIGINT and SIGTERM.  Until the command starts to change something (its
 * first database connection, or a file it writes: cli_defer_signals), there
 * is nothing to finish or undo, so a signal ends the program at once with
 * 130, also in the middle of loading a large repository.  From then on it
 * sets the running command's stop flag, and the batch in flight finishes
 * first.  Only async-signal-safe calls here: write and _exit.
 */
static struct cli *signal_cli;

static void
on_signal(int sig)
{
	static const char int_msg[] =
		"dbphase: stopped by SIGINT before anything was changed\n";
	static const char term_msg[] =
		"dbphase: stopped by SIGTERM before anything was changed\n";
	ssize_t ignored;

	if (signal_cli == NULL)
		return;
	if (signal_cli->signals_deferred) {
		signal_cli->stop = 1;
		return;
	}
	if (sig == SIGINT)
		ignored = write(STDERR_FILENO, int_msg, sizeof(int_msg) - 1);
	else
		ignored = write(STDERR_FILENO, term_msg, sizeof(term_msg) - 1);
	(void)ignored;
	_exit(130);
}

/*
 * Split argv into global options (consumed here) and the command with its
 * own arguments.  Global options may stand before or after the command.
 * Returns 1 when --help or --version was answered: nothing more to do.
 */
static int
parse_globals(struct cli *cli, int argc, char **argv, const struct cli_command **cmd,
	      int *cargc, char ***cargv)
{
	static const struct option longopts[] = {
		{ "config-file", required_argument, NULL, OPT_CONFIG_FILE },
		{ "config-dir", required_argument, NULL, OPT_CONFIG_DIR },
		{ "database", required_argument, NULL, OPT_DATABASE },
		{ "repository", required_argument, NULL, OPT_REPOSITORY },
		{ "extension", required_argument, NULL, OPT_EXTENSION },
		{ "format", required_argument, NULL, OPT_FORMAT },
		{ "debug", no_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, OPT_VERSION },
		{ NULL, 0, NULL, 0 },
	};
	char **rest = xcalloc((size_t)argc + 1, sizeof(char *));
	int n_rest = 0, i;
	bool help = false;

	*cmd = NULL;
	*cargv = rest;		/* main frees it, also after an error here */
	for (i = 1; i < argc; i++) {
		const char *a = argv[i];
		const struct option *o = NULL;
		const char *value = NULL;
		size_t k;

		if (strcmp(a, "--") == 0) {
			while (i < argc)
				rest[n_rest++] = argv[i++];
			break;
		}
		if (strcmp(a, "-d") == 0) {
			cli->debug = true;
			continue;
		}
		if (strcmp(a, "-h") == 0) {
			help = true;
			continue;
		}
		if (strncmp(a, "--", 2) == 0) {
			size_t len = strcspn(a + 2, "=");

			for (k = 0; longopts[k].name; k++)
				if (strlen(longopts[k].name) == len &&
				    strncmp(longopts[k].name, a + 2, len) == 0)
					o = &longopts[k];
			for (k = 0; !o && k < sizeof(setting_options) / sizeof(setting_options[0]); k++)
				if (strlen(setting_options[k].option) == len &&
				    strncmp(setting_options[k].option, a + 2, len) == 0) {
					static const struct option setting = { "", required_argument,
									       NULL, OPT_SETTING };

					o = &setting;
					break;
				}
			if (o && o->has_arg == required_argument) {
				if (a[2 + len] == '=')
					value = a + 3 + len;
				else if (i + 1 < argc)
					value = argv[++i];
				else
					return err_setf(&cli->err, DBPHASE_EUSAGE,
							"option '%s' needs a value", a);
			} else if (o && a[2 + len] == '=') {
				return err_setf(&cli->err, DBPHASE_EUSAGE,
						"option '--%.*s' takes no value", (int)len, a + 2);
			}
			if (o) {
				switch (o->val) {
				case OPT_CONFIG_FILE:
				case OPT_CONFIG_DIR:
					cli->config_sources = xrealloc(cli->config_sources,
						(cli->n_config_sources + 1) * sizeof(*cli->config_sources));
					cli->config_sources[cli->n_config_sources++] =
						(struct cli_config_source){ xstrdup(value),
									    o->val == OPT_CONFIG_DIR };
					break;
				case OPT_DATABASE:
					free(cli->database);
					cli->database = xstrdup(value);
					/*
					 * ps and /proc/PID/cmdline show argv's memory for
					 * the whole run: keep the URL, not its password.
					 */
					db_url_scrub((char *)value);
					break;
				case OPT_REPOSITORY:
					free(cli->repository);
					cli->repository = xstrdup(value);
					break;
				case OPT_EXTENSION:
					free(cli->extension);
					cli->extension = xstrdup(value);
					break;
				case OPT_FORMAT:
					if (strcmp(value, "text") == 0)
						cli->format = CLI_TEXT;
					else if (strcmp(value, "json") == 0)
						cli->format = CLI_JSON;
					else
						return err_setf(&cli->err, DBPHASE_EUSAGE,
								"--format must be text or json, not '"
								EXCERPT_FMT "'", EXCERPT(value));
					break;
				case 'd':
					cli->debug = true;
					break;
				case 'h':
					help = true;
					break;
				case OPT_VERSION:
					printf("dbphase %s\n", DBPHASE_VERSION);
					free(rest);
					return 1;
				case OPT_SETTING:
					for (k = 0; k < sizeof(setting_options) / sizeof(setting_options[0]); k++)
						if (strlen(setting_options[k].option) == len &&
						    strncmp(setting_options[k].option, a + 2, len) == 0)
							break;
					cli->overrides = xrealloc(cli->overrides,
						(cli->n_overrides + 1) * sizeof(*cli->overrides));
					cli->overrides[cli->n_overrides].key = setting_options[k].key;
					cli->overrides[cli->n_overrides].value = value;
					cli->overrides[cli->n_overrides].where =
						xasprintf("--%s", setting_options[k].option);
					cli->n_overrides++;
					break;
				}
				continue;
			}
		}
		if (*cmd == NULL && a[0] != '-') {
			*cmd = find_command(argc, argv, &i);
			if (*cmd == NULL)
				return err_setf(&cli->err, DBPHASE_EUSAGE,
						"unknown command '" EXCERPT_FMT "'; see"
						" 'dbphase --help'", EXCERPT(a));
			continue;
		}
		rest[n_rest++] = argv[i];
	}
	if (help) {
		if (*cmd)
			cli_command_help(*cmd);
		else
			print_usage(stdout);
		free(rest);
		return 1;
	}
	*cargc = n_rest;
	*cargv = rest;
	return 0;
}

int
main(int argc, char **argv)
{
	struct cli cli = { 0 };
	const struct cli_command *cmd = NULL;
	struct sigaction sa;
	char **cargv = NULL;
	int cargc = 0, rc, code;

	cli.progress_tty = isatty(STDERR_FILENO);
	progress_init(&cli.progress, cli.progress_tty);
	rc = parse_globals(&cli, argc, argv, &cmd, &cargc, &cargv);
	if (rc == 1) {
		cli_release(&cli);
		return 0;
	}
	if (rc == 0 && cli.debug) {
		/* Bars redrawn in place would garble the log's lines: plain lines instead. */
		log_set_sink(log_to_stderr, NULL, LOG_LEVEL_DEBUG);
		cli.progress_tty = cli.progress.tty = false;
	}
	if (rc == 0 && cmd == NULL) {
		/* mogan-dbsync and Alembic's habit: no command is upgrade. */
		int at = 0;
		char *upgrade[] = { "upgrade" };

		cmd = find_command(1, upgrade, &at);
	}
	if (rc == 0) {
		char **args = xcalloc((size_t)cargc + 2, sizeof(char *));

		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = on_signal;
		sigaction(SIGINT, &sa, NULL);
		sigaction(SIGTERM, &sa, NULL);
		/* A closed pipe on stdout must not kill a phase half way: writes fail instead. */
		signal(SIGPIPE, SIG_IGN);
		signal_cli = &cli;
		cli.command = cmd->name;
		/* A command sees itself as argv[0], as getopt expects. */
		args[0] = (char *)cmd->name;
		memcpy(args + 1, cargv, (size_t)cargc * sizeof(char *));
		rc = cmd->run(&cli, cargc + 1, args);
		free(args);
	}
	code = rc >= 0 ? rc : exit_code(rc);
	if (rc < 0) {
		fprintf(stderr, "dbphase: %s\n",
			cli.err.message ? cli.err.message : dbphase_strerror(rc));
		if (cli.debug)
			fprintf(stderr, "dbphase: (error %s%s%s)\n", dbphase_err_name(rc),
				cli.err.sqlstate[0] ? ", SQLSTATE " : "", cli.err.sqlstate);
		if (rc == DBPHASE_EUSAGE && cmd)
			fprintf(stderr, "usage: dbphase %s %s\n", cmd->name, cmd->args);
		else if (rc == DBPHASE_EUSAGE)
			fprintf(stderr, "usage: dbphase [global options] COMMAND [options] [args]\n");
	}
	free(cargv);
	signal_cli = NULL;
	cli_release(&cli);
	return code;
}

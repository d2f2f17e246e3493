/*
 * cli/cli.h - what the command-line front end shares: the parsed global
 * options, the loaded configuration, repository, catalog and plan, the
 * database connection, and output helpers.
 *
 * cli is the top of the stack: cli -> state -> {plan, exec} -> drivers ->
 * core (doc/architecture.md).  It is the only place that prints and the
 * only place that knows exit codes.
 */
#ifndef DBPHASE_CLI_CLI_H
#define DBPHASE_CLI_CLI_H

#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "core/config.h"
#include "core/error.h"
#include "core/repo.h"
#include "cli/progress.h"
#include "core/url.h"
#include "drivers/driver.h"
#include "plan/catalog.h"
#include "plan/planner.h"
#include "state/machine.h"
#include "state/state.h"

enum cli_format {
	CLI_TEXT,
	CLI_JSON,
};

struct cli_override {
	const char *key;		/* config key */
	const char *value;		/* borrowed from argv */
	char *where;			/* "--jobs"; owned */
};

/* One --config-file or --config-dir, in the order given. */
struct cli_config_source {
	char *path;
	bool is_dir;
};

struct cli {
	/* Global options, as given. */
	struct cli_config_source *config_sources;	/* in command-line order */
	size_t n_config_sources;
	char *database;
	char *repository;
	char *extension;
	enum cli_format format;
	bool debug;
	struct cli_override *overrides;	/* --jobs and friends, applied after config files */
	size_t n_overrides;

	/* Loaded on demand by cli_load_* / cli_connect. */
	struct dbphase_config cfg;
	bool have_cfg;
	char *url_text;			/* the chosen URL; owned */
	char *url_source;		/* where it came from, for messages; owned */
	struct db_url url;
	bool have_url;
	struct repo repo;
	bool have_repo;
	struct catalog cat;
	bool have_cat;
	struct plan plan;
	bool have_plan;
	struct db_conn *conn;
	struct state st;
	bool have_state;
	bool announced;			/* "dbphase: database ..." printed */

	struct dbphase_error err;	/* the failure main reports */
	const char *command;		/* the command's canonical name */
	volatile sig_atomic_t stop;	/* set by SIGINT/SIGTERM once deferred */
	volatile sig_atomic_t signals_deferred;	/* see cli_defer_signals */
	bool progress_tty;		/* stderr is a terminal: live progress */
	struct progress progress;
};

struct cli_command {
	const char *name;
	const char *aliases;		/* other spellings, '|'-separated ("db sync|database sync") */
	const char *args;		/* usage after the name */
	const char *summary;
	const char *help;		/* the command's options, one per line */
	int (*run)(struct cli *cli, int argc, char **argv);
};

extern const struct cli_command cli_commands[];
extern const size_t cli_n_commands;

/* Loading, in data-flow order; each is a no-op once done. */
int cli_load_config(struct cli *cli);
int cli_load_repo(struct cli *cli);
int cli_load_plan(struct cli *cli, enum db_backend backend);
int cli_connect(struct cli *cli);	/* also loads the plan for the backend */
/*
 * The integrity check of a command that only reads (machine_check, or
 * machine_verify of v when given): a database ahead of this repository is a
 * warning here, not an error.
 */
int cli_check_readonly(struct cli *cli, const struct state_versions *v);

/*
 * Work on extension name of the same repository (NULL: the main one) from
 * now on: the repository, plan and state are loaded again on demand; the
 * configuration and the connection stay.
 */
void cli_use_extension(struct cli *cli, const char *name);
int cli_open_state(struct cli *cli);	/* connect + state for the repository */
/* cli_open_state for a command that changes the database: first says which. */
int cli_open_state_to_change(struct cli *cli);
void cli_release(struct cli *cli);

/*
 * From now on SIGINT/SIGTERM set cli->stop (the work in flight finishes,
 * resumably) instead of ending the program at once with 130.  Called when
 * the command starts to change something: it connects, or writes a file.
 */
void cli_defer_signals(struct cli *cli);

/* Options every state-changing command takes: fills o from the config. */
void cli_machine_opts(struct cli *cli, struct machine_opts *o, const char *command);

/* Parse a version argument ("5", "head"/"latest" -> latest); usage error otherwise. */
/*
 * A command's arguments: long options anywhere among the positionals (as
 * argparse allows: db_sync 2 --expand), "--name=value" or "--name value",
 * "--" ending the options, "+N"/"-N" taken as positionals (relative
 * versions).  Positionals are borrowed from argv.
 */
struct cli_args {
	struct cli_arg {
		int val;		/* the option's val */
		const char *value;	/* its value, or NULL */
	} *opts;
	size_t n_opts;
	char **pos;
	size_t n_pos;
};

int cli_args_parse(struct cli *cli, int argc, char **argv, const struct option *longopts,
		   struct cli_args *a);
void cli_args_release(struct cli_args *a);

int cli_parse_version(struct cli *cli, const char *text, int64_t *out);

/* Usage error for a command: DBPHASE_EUSAGE with the command's usage line. */
int cli_usage_error(struct cli *cli, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Print the command's --help to stdout. */
void cli_command_help(const struct cli_command *cmd);

/* Text or JSON: print a JSON document (steals the reference) to stdout. */
void cli_print_json(json_t *doc);

/* The machine's events as text lines or JSON lines. */
void cli_print_event(void *arg, const struct machine_event *ev);

/* The commands. */
int cmd_db_sync(struct cli *cli, int argc, char **argv);
int cmd_upgrade(struct cli *cli, int argc, char **argv);
int cmd_downgrade(struct cli *cli, int argc, char **argv);
int cmd_db_version(struct cli *cli, int argc, char **argv);
int cmd_version_control(struct cli *cli, int argc, char **argv);
int cmd_goto(struct cli *cli, int argc, char **argv);
int cmd_forget(struct cli *cli, int argc, char **argv);
int cmd_stamp(struct cli *cli, int argc, char **argv);
int cmd_create_schema(struct cli *cli, int argc, char **argv);
int cmd_plan(struct cli *cli, int argc, char **argv);
int cmd_status(struct cli *cli, int argc, char **argv);
int cmd_validate(struct cli *cli, int argc, char **argv);
int cmd_verify(struct cli *cli, int argc, char **argv);
int cmd_node(struct cli *cli, int argc, char **argv);
int cmd_revision(struct cli *cli, int argc, char **argv);

#endif

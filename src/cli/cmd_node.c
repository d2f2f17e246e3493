/*
 * cli/cmd_node.c - `dbphase node`: application nodes say which schema
 * version their code needs, and keep saying it; contract waits for them.
 * A node is live while its last heartbeat is younger than node_ttl_s.
 * Only register creates dbphase's tables; heartbeat, retire and list on a
 * database without them find no node and create nothing.  A node whose
 * code needs a version below the contracted one is refused (exit 5)
 * unless --force, which is loud and recorded in the history.
 */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/xmalloc.h"

/* Register a node, refusing code older than the contracted schema unless forced. */
static int
node_register(struct cli *cli, const char *name, int64_t version, bool force)
{
	struct state_versions v;
	char *warning = NULL, *row = NULL;
	int rc;

	if ((rc = state_read(&cli->st, &v, &cli->err)) < 0)
		return rc;
	if (version < v.contract && !force)
		return err_setf(&cli->err, DBPHASE_EREFUSED,
				"node '%s' refused: its code needs schema version %lld, but version "
				"%lld is contracted, so what that code needs is gone; deploy code "
				"that needs version %lld or later, or register with --force", name,
				(long long)version, (long long)v.contract, (long long)v.contract);
	if ((rc = state_node_register(&cli->st, name, version, &cli->err)) < 0)
		return rc;
	if (version < v.contract) {
		warning = xasprintf("--force: node '%s' registered for schema version %lld, but "
				    "version %lld is contracted: what its code needs is gone",
				    name, (long long)version, (long long)v.contract);
		fprintf(stderr, "dbphase: warning: %s\n", warning);
		row = state_versions_text(&v);
		rc = state_history_add(&cli->st, "node register --force", row, row, "ok (forced)",
				       0, warning, &cli->err);
		if (rc < 0)
			err_prefixf(&cli->err, "node '%s' is registered, but the override was not "
				    "recorded in dbphase_history", name);
	}
	if (rc == 0 && cli->format == CLI_TEXT)
		printf("node '%s' registered: needs schema version %lld\n", name,
		       (long long)version);
	free(warning);
	free(row);
	return rc;
}

/* After a heartbeat: say so when the node's code needs a contracted-away schema. */
static int
node_warn_if_behind(struct cli *cli, const char *name)
{
	struct state_versions v;
	struct state_node *nodes;
	size_t n, i;
	int rc;

	if ((rc = state_read(&cli->st, &v, &cli->err)) < 0 || v.contract == 0)
		return rc;
	if ((rc = state_node_list(&cli->st, &nodes, &n, &cli->err)) < 0)
		return rc;
	for (i = 0; i < n; i++)
		if (strcmp(nodes[i].name, name) == 0 && nodes[i].schema_version < v.contract)
			fprintf(stderr, "dbphase: warning: node '%s' needs schema version %lld, but "
				"version %lld is contracted: what its code needs is gone\n", name,
				(long long)nodes[i].schema_version, (long long)v.contract);
	state_nodes_free(nodes, n);
	return 0;
}

int
cmd_node(struct cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "name", required_argument, NULL, 'n' },
		{ "schema-version", required_argument, NULL, 's' },
		{ "force", no_argument, NULL, 'f' },
		{ NULL, 0, NULL, 0 },
	};
	const char *sub, *name = NULL, *schema = NULL;
	int64_t version = 0;
	bool force = false;
	int c, rc;

	if (argc < 2)
		return cli_usage_error(cli, "node needs a subcommand: register, heartbeat, retire or list");
	sub = argv[1];
	optind = 2;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+:", longopts, NULL)) != -1) {
		switch (c) {
		case 'n':
			name = optarg;
			break;
		case 's':
			schema = optarg;
			break;
		case 'f':
			force = true;
			break;
		case ':':
			return cli_usage_error(cli, "option '%s' needs a value", argv[optind - 1]);
		default:
			return cli_usage_error(cli, "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return cli_usage_error(cli, "unexpected argument '%s'", argv[optind]);
	if (strcmp(sub, "list") != 0 && name == NULL)
		return cli_usage_error(cli, "node %s needs --name NAME", sub);
	if (strcmp(sub, "register") == 0) {
		if (schema == NULL)
			return cli_usage_error(cli, "node register needs --schema-version N");
		if ((rc = cli_parse_version(cli, schema, &version)) < 0)
			return rc;
	} else if (strcmp(sub, "heartbeat") != 0 && strcmp(sub, "retire") != 0 &&
		   strcmp(sub, "list") != 0) {
		return cli_usage_error(cli, "unknown node subcommand '%s'; expected register, "
				       "heartbeat, retire or list", sub);
	}
	if (force && strcmp(sub, "register") != 0)
		return cli_usage_error(cli, "--force goes with node register only");
	/* register and retire name the database first; heartbeats stay quiet (cron, timers). */
	rc = strcmp(sub, "register") == 0 || strcmp(sub, "retire") == 0 ?
	     cli_open_state_to_change(cli) : cli_open_state(cli);
	if (rc < 0)
		return rc;
	if (strcmp(sub, "register") == 0 && (rc = state_ensure_tables(&cli->st, &cli->err)) < 0)
		return rc;
	/*
	 * A changed migration file stops every schema change, and a listing.
	 * Writes to the registry go on, loudly: a node whose heartbeat were
	 * refused would look gone after node_ttl_s, and contract would stop
	 * waiting for it.
	 */
	if ((rc = cli_check_readonly(cli, NULL)) < 0) {
		if (strcmp(sub, "list") == 0)
			return rc;
		fprintf(stderr, "dbphase: warning: %s\n", cli->err.message);
		err_release(&cli->err);
		rc = 0;
	}
	if (strcmp(sub, "register") == 0) {
		rc = node_register(cli, name, version, force);
	} else if (strcmp(sub, "heartbeat") == 0) {
		if ((rc = state_node_heartbeat(&cli->st, name, &cli->err)) == 0)
			rc = node_warn_if_behind(cli, name);
	} else if (strcmp(sub, "retire") == 0) {
		rc = state_node_retire(&cli->st, name, &cli->err);
		if (rc == 0 && cli->format == CLI_TEXT)
			printf("node '%s' retired\n", name);
	} else {
		struct state_node *nodes;
		size_t n, i;
		json_t *arr = json_array();

		if ((rc = state_node_list(&cli->st, &nodes, &n, &cli->err)) < 0) {
			json_decref(arr);
			return rc;
		}
		for (i = 0; i < n; i++) {
			bool live = nodes[i].age_s <= cli->cfg.node_ttl_s;

			if (cli->format == CLI_TEXT) {
				printf("%-24s needs %-4lld heartbeat %llds ago  %s\n", nodes[i].name,
				       (long long)nodes[i].schema_version, (long long)nodes[i].age_s,
				       live ? "live" : "stale");
			} else {
				json_t *o = json_object();

				json_object_set_new(o, "name", json_string(nodes[i].name));
				json_object_set_new(o, "schema_version",
						    json_integer(nodes[i].schema_version));
				json_object_set_new(o, "heartbeat_age_s", json_integer(nodes[i].age_s));
				json_object_set_new(o, "live", json_boolean(live));
				json_array_append_new(arr, o);
			}
		}
		if (cli->format == CLI_JSON)
			cli_print_json(arr);
		else
			json_decref(arr);
		state_nodes_free(nodes, n);
	}
	return rc;
}

/*
 * cli/cmd_status.c - `dbphase status` (what an operator looks at during a
 * rolling upgrade) and `dbphase validate` (do the applied files still match
 * what was applied?).
 */
#include "config.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "core/xmalloc.h"
#include "state/clients.h"

static const char *const next_action[] = {
	[0] = "none: up to date", [2] = "expand", [3] = "migrate", [4] = "contract",
};

/*
 * Backfill progress, one entry per step (state_progress_list): text, or
 * into arr.
 */
static int
show_progress(struct cli *cli, json_t *arr, bool text)
{
	struct state_progress *pr;
	size_t i, n;
	int rc;

	if ((rc = state_progress_list(&cli->st, &pr, &n, &cli->err)) < 0)
		return rc;
	for (i = 0; i < n; i++) {
		if (arr) {
			json_t *o = json_object();

			json_object_set_new(o, "step", json_string(pr[i].step_id));
			json_object_set_new(o, "rows_done", json_integer(pr[i].rows_done));
			json_object_set_new(o, "rows_estimated", pr[i].rows_total >= 0 ?
					    json_integer(pr[i].rows_total) : json_null());
			json_object_set_new(o, "chunks", json_integer((json_int_t)pr[i].chunks));
			json_object_set_new(o, "finished", json_boolean(pr[i].finished));
			json_array_append_new(arr, o);
		}
		if (text) {
			printf("    %-20s %lld rows of ~", pr[i].step_id, (long long)pr[i].rows_done);
			if (pr[i].rows_total >= 0)
				printf("%lld", (long long)pr[i].rows_total);
			else
				printf("?");
			printf("%s\n", pr[i].finished ? " (done)" : " (in progress or interrupted)");
		}
	}
	state_progress_free(pr, n);
	return 0;
}

/*
 * The live connections repository.yaml's clients asks about, like the
 * nodes: text, or into obj as "clients" (null when nothing is asked on
 * this backend).  A server that cannot tell, or a failed read (a missing
 * privilege), is shown, not an error: status still shows the rest.
 */
static void
show_clients(struct cli *cli, json_t *obj)
{
	struct clients_report rep;
	json_t *jc, *conns;
	size_t i;

	if (clients_read(&cli->st, &cli->repo, &rep, &cli->err) < 0) {
		rep.unreadable = xstrdup(cli->err.message ? cli->err.message : "");
		err_release(&cli->err);
	}
	if (rep.config == NULL) {
		if (obj)
			json_object_set_new(obj, "clients", json_null());
		clients_report_release(&rep);
		return;
	}
	if (obj == NULL) {
		printf("  clients (%s matching %s)\n", rep.config->attribute, rep.config->pattern);
		for (i = 0; i < rep.n; i++)
			printf("    %-24s needs %-4lld session %s, %s '%s'\n",
			       clients_address(&rep.entries[i]), (long long)rep.entries[i].version,
			       rep.entries[i].id, rep.config->attribute, rep.entries[i].value);
		if (rep.unreadable)
			printf("    cannot be read: %s\n", rep.unreadable);
		else if (rep.n == 0)
			printf("    none connected\n");
		clients_report_release(&rep);
		return;
	}
	jc = json_object();
	conns = json_array();
	json_object_set_new(jc, "attribute", json_string(rep.config->attribute));
	json_object_set_new(jc, "pattern", json_string(rep.config->pattern));
	json_object_set_new(jc, "unreadable", rep.unreadable ? json_string(rep.unreadable) :
			    json_null());
	for (i = 0; i < rep.n; i++) {
		json_t *o = json_object();

		json_object_set_new(o, "session", json_string(rep.entries[i].id));
		json_object_set_new(o, "address", rep.entries[i].address ?
				    json_string(rep.entries[i].address) : json_null());
		json_object_set_new(o, "value", json_string(rep.entries[i].value));
		json_object_set_new(o, "schema_version", json_integer(rep.entries[i].version));
		json_array_append_new(conns, o);
	}
	json_object_set_new(jc, "connections", conns);
	json_object_set_new(obj, "clients", jc);
	clients_report_release(&rep);
}

/* Status of the open repository, as text or into a JSON object. */
static int
status_one(struct cli *cli, json_t *obj)
{
	struct state_versions v;
	struct state_node *nodes = NULL;
	struct state_history *hist = NULL;
	size_t n_nodes = 0, n_hist = 0, i;
	int64_t latest = repo_latest(&cli->repo);
	bool exist, text = obj == NULL;
	int rc, next;

	if ((rc = cli_check_readonly(cli, NULL)) < 0 ||
	    (rc = state_tables_exist(&cli->st, &exist, &cli->err)) < 0 ||
	    (rc = state_read(&cli->st, &v, &cli->err)) < 0)
		return rc;
	next = machine_next(&v, latest);
	if (exist && ((rc = state_node_list(&cli->st, &nodes, &n_nodes, &cli->err)) < 0 ||
		      (rc = state_history_list(&cli->st, 5, &hist, &n_hist, &cli->err)) < 0))
		goto out;
	if (text) {
		printf("repository %s (%s)\n", cli->st.repo, cli->repo.dir);
		printf("  latest on disk   %lld\n", (long long)latest);
		printf("  expanded to      %lld\n  migrated to      %lld\n  contracted to    %lld\n",
		       (long long)v.expand, (long long)v.migrate, (long long)v.contract);
		if (next)
			printf("  next             %s to %lld: dbphase db_sync --%s %lld\n",
			       next_action[next], (long long)latest, next_action[next],
			       (long long)latest);
		else
			printf("  next             nothing: up to date\n");
		if (exist) {
			printf("  progress\n");
			if ((rc = show_progress(cli, NULL, true)) < 0)
				goto out;
		}
		printf("  nodes (live within %d s)\n", cli->cfg.node_ttl_s);
		for (i = 0; i < n_nodes; i++)
			printf("    %-24s needs %-4lld last heartbeat %llds ago (%s)\n", nodes[i].name,
			       (long long)nodes[i].schema_version, (long long)nodes[i].age_s,
			       nodes[i].age_s <= cli->cfg.node_ttl_s ? "live" : "stale");
		if (n_nodes == 0)
			printf("    none registered\n");
		show_clients(cli, NULL);
		printf("  history (newest first)\n");
		for (i = 0; i < n_hist; i++) {
			time_t at = (time_t)hist[i].at;
			char when[32];

			strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", gmtime(&at));
			printf("    %s  %-26s %s -> %s  %s (%.2f s) by %s\n", when, hist[i].command,
			       hist[i].from_state ? hist[i].from_state : "-",
			       hist[i].to_state ? hist[i].to_state : "-", hist[i].result,
			       hist[i].seconds, hist[i].who);
		}
		if (n_hist == 0)
			printf("    none\n");
	} else {
		json_t *jn = json_array(), *jh = json_array(), *jp = json_array(), *next_o;

		json_object_set_new(obj, "repository", json_string(cli->st.repo));
		json_object_set_new(obj, "directory", json_string(cli->repo.dir));
		json_object_set_new(obj, "latest", json_integer(latest));
		json_object_set_new(obj, "under_version_control", json_boolean(v.exists));
		json_object_set_new(obj, "expand_version", json_integer(v.expand));
		json_object_set_new(obj, "migrate_version", json_integer(v.migrate));
		json_object_set_new(obj, "contract_version", json_integer(v.contract));
		next_o = json_object();
		json_object_set_new(next_o, "action", next ? json_string(next_action[next]) : json_null());
		json_object_set_new(next_o, "exit_code", json_integer(next));
		if (next) {
			char *cmd = xasprintf("dbphase db_sync --%s %lld", next_action[next],
					      (long long)latest);

			json_object_set_new(next_o, "command", json_string(cmd));
			free(cmd);
		}
		json_object_set_new(obj, "next", next_o);
		if (exist && (rc = show_progress(cli, jp, false)) < 0) {
			json_decref(jn);
			json_decref(jh);
			json_decref(jp);
			goto out;
		}
		for (i = 0; i < n_nodes; i++) {
			json_t *o = json_object();

			json_object_set_new(o, "name", json_string(nodes[i].name));
			json_object_set_new(o, "schema_version", json_integer(nodes[i].schema_version));
			json_object_set_new(o, "heartbeat_age_s", json_integer(nodes[i].age_s));
			json_object_set_new(o, "live", json_boolean(nodes[i].age_s <= cli->cfg.node_ttl_s));
			json_array_append_new(jn, o);
		}
		for (i = 0; i < n_hist; i++) {
			json_t *o = json_object();

			json_object_set_new(o, "at", json_integer(hist[i].at));
			json_object_set_new(o, "who", json_string(hist[i].who));
			json_object_set_new(o, "command", json_string(hist[i].command));
			json_object_set_new(o, "from", hist[i].from_state ? json_string(hist[i].from_state) : json_null());
			json_object_set_new(o, "to", hist[i].to_state ? json_string(hist[i].to_state) : json_null());
			json_object_set_new(o, "result", json_string(hist[i].result));
			json_object_set_new(o, "seconds", json_real(hist[i].seconds));
			json_object_set_new(o, "detail", hist[i].detail ? json_string(hist[i].detail) : json_null());
			json_array_append_new(jh, o);
		}
		json_object_set_new(obj, "progress", jp);
		json_object_set_new(obj, "nodes", jn);
		show_clients(cli, obj);
		json_object_set_new(obj, "history", jh);
	}
out:
	state_nodes_free(nodes, n_nodes);
	state_history_free(hist, n_hist);
	return rc;
}

int
cmd_status(struct cli *cli, int argc, char **argv)
{
	json_t *doc = NULL, *repos = NULL;
	char **extensions = NULL;
	size_t n_ext = 0, i;
	int rc;

	if (argc > 1)
		return cli_usage_error(cli, "status takes no arguments");
	if ((rc = cli_open_state(cli)) < 0)
		return rc;
	/* A changed applied file stops status before it prints anything. */
	if ((rc = cli_check_readonly(cli, NULL)) < 0)
		return rc;
	if (cli->format == CLI_JSON) {
		char *masked = db_url_mask(cli->url_text);

		doc = json_object();
		repos = json_array();
		json_object_set_new(doc, "database", json_string(masked));
		json_object_set_new(doc, "backend", json_string(db_backend_name(cli->url.backend)));
		json_object_set_new(doc, "server_version",
				    json_string(cli->conn->server_version_text ?
						cli->conn->server_version_text : ""));
		json_object_set_new(doc, "node_ttl_s", json_integer(cli->cfg.node_ttl_s));
		free(masked);
	} else {
		char *masked = db_url_mask(cli->url_text);

		printf("database %s (%s %s)\n", masked, db_backend_name(cli->url.backend),
		       cli->conn->server_version_text ? cli->conn->server_version_text : "");
		free(masked);
	}
	/* The main repository (or the one extension asked for), then its extensions. */
	if (!cli->extension && cli->repo.n_extensions) {
		extensions = cli->repo.extensions;
		n_ext = cli->repo.n_extensions;
	}
	{
		json_t *o = doc ? json_object() : NULL;

		rc = status_one(cli, o);
		if (o)
			json_array_append_new(repos, o);
	}
	for (i = 0; i < n_ext && rc == 0; i++) {
		struct repo ext;
		struct state st;
		char *key;
		json_t *o = doc ? json_object() : NULL;
		struct repo saved_repo = cli->repo;
		struct state saved_st = cli->st;

		if ((rc = repo_load(&ext, cli->repo.dir, extensions[i], &cli->err)) < 0) {
			json_decref(o);
			break;
		}
		key = repo_state_key(&ext);
		state_init(&st, cli->conn, key, ext.version_table);
		cli->repo = ext;
		cli->st = st;
		rc = status_one(cli, o);
		cli->repo = saved_repo;
		cli->st = saved_st;
		if (o)
			json_array_append_new(repos, o);
		state_release(&st);
		repo_release(&ext);
		free(key);
	}
	if (doc) {
		json_object_set_new(doc, "repositories", repos);
		if (rc == 0)
			cli_print_json(doc);
		else
			json_decref(doc);
	}
	return rc;
}

int
cmd_validate(struct cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "repair", no_argument, NULL, 'r' },
		{ NULL, 0, NULL, 0 },
	};
	struct state_versions v;
	struct machine_opts o;
	const struct migration *first_bad = NULL;
	int64_t *versions = NULL;
	char **sums = NULL;
	json_t *doc = NULL, *files = NULL;
	bool repair = false, exist;
	size_t i, k, n = 0, bad = 0;
	int c, rc;

	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+", longopts, NULL)) != -1) {
		if (c != 'r')
			return cli_usage_error(cli, "unknown option '%s'", argv[optind - 1]);
		repair = true;
	}
	if (optind < argc)
		return cli_usage_error(cli, "validate takes no arguments");
	if ((rc = repair ? cli_open_state_to_change(cli) : cli_open_state(cli)) < 0)
		return rc;
	if (repair) {
		cli_machine_opts(cli, &o, "validate --repair");
		if ((rc = machine_repair(&cli->st, &cli->repo, &o, &cli->err)) < 0)
			return rc;
	}
	if ((rc = state_tables_exist(&cli->st, &exist, &cli->err)) < 0 ||
	    (rc = state_read(&cli->st, &v, &cli->err)) < 0 ||
	    (exist && (rc = state_checksums_list(&cli->st, &versions, &sums, &n, &cli->err)) < 0))
		return rc;
	if (cli->format == CLI_JSON) {
		doc = json_object();
		files = json_array();
	}
	for (i = 0; i < cli->repo.n_migrations; i++) {
		const struct migration *m = &cli->repo.migrations[i];
		const char *sum = NULL, *verdict;

		for (k = 0; k < n; k++)
			if (versions[k] == m->version)
				sum = sums[k];
		if (sum && strcmp(sum, m->checksum) != 0) {
			verdict = "changed";
			if (bad++ == 0)
				first_bad = m;
		} else if (sum) {
			verdict = m->version > v.expand ? "ok (partly applied)" : "ok";
		} else {
			verdict = m->version > v.expand ? "not applied yet" :
				  "applied, no checksum recorded";
		}
		if (files) {
			json_t *f = json_object();

			json_object_set_new(f, "path", json_string(m->path));
			json_object_set_new(f, "version", json_integer(m->version));
			json_object_set_new(f, "checksum", json_string(m->checksum));
			json_object_set_new(f, "recorded", sum ? json_string(sum) : json_null());
			json_object_set_new(f, "verdict", json_string(verdict));
			json_array_append_new(files, f);
		} else {
			printf("%-40s version %-4lld %s\n", m->path, (long long)m->version,
			       strcmp(verdict, "changed") == 0 ? "CHANGED since it was applied" :
			       verdict);
		}
	}
	for (k = 0; k < n; k++)
		if (repo_migration(&cli->repo, versions[k]) == NULL && bad++ == 0 && rc == 0)
			rc = err_setf(&cli->err, DBPHASE_ECHECKSUM,
				      "version %lld was applied but repository '%s' has no file for "
				      "it any more: restore the file", (long long)versions[k],
				      cli->repo.dir);
	if (doc) {
		json_object_set_new(doc, "repository", json_string(cli->st.repo));
		json_object_set_new(doc, "ok", json_boolean(bad == 0));
		json_object_set_new(doc, "files", files);
		cli_print_json(doc);
	}
	if (first_bad && rc == 0)
		rc = err_setf(&cli->err, DBPHASE_ECHECKSUM,
			      "%s (version %lld) changed on disk since it was applied%s; restore "
			      "%s or run 'dbphase validate --repair' to accept the change",
			      first_bad->path, (long long)first_bad->version,
			      bad > 1 ? " (and others)" : "",
			      bad == 1 ? "it" : "them");
	for (k = 0; k < n; k++)
		free(sums[k]);
	free(sums);
	free(versions);
	return rc;
}

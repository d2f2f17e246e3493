/*
 * tests/integration/test-state.c - the phase state machine on SQLite,
 * PostgreSQL and MariaDB: every gate and its message, --force and the
 * history, node liveness, callers racing as real processes, runs killed
 * with SIGKILL and resumed, work a killed MariaDB run left unrecorded,
 * downgrade, and the reading of statements that downgrade relies on.
 *
 * Library-level tests drive machine_* directly and record its events;
 * the process tests run the built dbphase ($DBPHASE_BIN).  Each test has
 * its own database (testlib) and its own repository folder.
 */
#include "config.h"

#include <signal.h>

#include "cli-run.h"	/* testlib.h (criterion) first */

#include "core/repo.h"
#include "plan/catalog.h"
#include "plan/planner.h"
#include "state/effect.h"
#include "state/machine.h"
#include "state/state.h"

TestSuite(state, .timeout = 240);
TestSuite(effect, .timeout = 30);

#define REPO_ID "st"

/* ---- fixtures ----------------------------------------------------------- */

static const char v1_items[] =
	"description: items\n"
	"operations:\n"
	"  - create_table:\n"
	"      name: items\n"
	"      columns:\n"
	"        - {name: id, type: bigint, primary_key: true}\n"
	"        - {name: n, type: integer, nullable: false, default: 0}\n"
	"        - {name: label, type: \"varchar(50)\"}\n";

static const char v2_note[] =
	"description: a note and its index\n"
	"operations:\n"
	"  - add_column: {table: items, column: {name: note, type: \"varchar(100)\"}}\n"
	"  - add_index: {table: items, name: ix_items_note, columns: [note]}\n";

static const char v3_rename[] =
	"description: label becomes title; n gets an index\n"
	"operations:\n"
	"  - rename_column: {table: items, from: label, to: title}\n"
	"  - add_index: {table: items, name: ix_items_n, columns: [n]}\n"
	"  - drop_column: {table: items, column: note}\n";

/* A repository, database and state, driven through the library. */
struct env {
	struct test_db db;
	struct db_conn *conn;
	struct db_url url;
	char *dir;
	struct repo repo;
	struct catalog cat;
	struct plan plan;
	bool loaded;
	struct state st;
	struct machine_opts o;
	struct strbuf events;	/* one line per event: "kind phase step [message]" */
	struct dbphase_error err;
};

static const char *const event_kinds[] = {
	"phase_start", "already_done", "step_start", "step_done", "step_skipped",
	"progress", "version_done", "phase_done", "warning", "step_undone",
	"verify_start", "verify_progress", "verify_done",
};

static void
record_event(void *arg, const struct machine_event *ev)
{
	struct env *e = arg;
	char *id = ev->step ? plan_step_id(ev->step) : NULL;

	if (ev->kind == MACHINE_PROGRESS || ev->kind == MACHINE_VERIFY_PROGRESS) {
		free(id);
		return;
	}
	strbuf_addf(&e->events, "%s %s %s%s%s\n", event_kinds[ev->kind], phase_name(ev->phase),
		    id ? id : "-", ev->message ? " " : "", ev->message ? ev->message : "");
	free(id);
}

static void
env_load(struct env *e)
{
	cr_assert_eq(repo_load(&e->repo, e->dir, NULL, &e->err), 0, "%s", e->err.message);
	cr_assert_eq(catalog_load(&e->cat, e->repo.phases_dir, &e->err), 0, "%s", e->err.message);
	cr_assert_eq(plan_build(&e->plan, &e->repo, &e->cat, e->db.backend, &e->err), 0, "%s",
		     e->err.message);
	e->loaded = true;
}

static void
env_unload(struct env *e)
{
	if (!e->loaded)
		return;
	plan_release(&e->plan);
	catalog_release(&e->cat);
	repo_release(&e->repo);
	e->loaded = false;
}

static void
env_open(struct env *e, enum db_backend backend, const char *const *versions, size_t n)
{
	memset(e, 0, sizeof(*e));
	strbuf_init(&e->events);
	test_db_create(backend, &e->db);
	e->conn = test_db_connect(&e->db);
	cr_assert_eq(db_url_parse(e->db.url, &e->url, &e->err), 0, "%s", e->err.message);
	e->dir = repo_create(REPO_ID, versions, n);
	env_load(e);
	state_init(&e->st, e->conn, REPO_ID, e->repo.version_table);
	machine_opts_init(&e->o);
	e->o.url = &e->url;
	e->o.event = record_event;
	e->o.event_arg = e;
	e->o.lock_wait_s = 60;
}

static void
env_close(struct env *e)
{
	state_release(&e->st);
	env_unload(e);
	db_url_release(&e->url);
	db_close(e->conn);
	test_db_drop(&e->db);
	test_rmtree(e->dir);
	free(e->dir);
	strbuf_release(&e->events);
	err_release(&e->err);
}

/* Rewrite a version's file, then load the repository and plan again. */
static void
env_rewrite(struct env *e, int version, const char *text)
{
	char *name = xasprintf("versions/%03d_v%d.yaml", version, version);

	test_write_file(e->dir, name, text);
	free(name);
	env_unload(e);
	env_load(e);
}

static const char *
bname(const struct env *e)
{
	return db_backend_name(e->db.backend);
}

/* Run a phase; its return code (the message stays in e->err). */
static int
phase(struct env *e, enum phase ph, int64_t target)
{
	err_release(&e->err);
	return machine_phase(&e->st, &e->repo, &e->plan, ph, target, &e->o, &e->err);
}

static void
phase_ok(struct env *e, enum phase ph, int64_t target)
{
	int rc = phase(e, ph, target);

	cr_assert_eq(rc, 0, "[%s] %s to %lld: %s", bname(e), phase_name(ph), (long long)target,
		     e->err.message);
}

static void
all_phases(struct env *e, int64_t target)
{
	phase_ok(e, PHASE_EXPAND, target);
	phase_ok(e, PHASE_MIGRATE, target);
	phase_ok(e, PHASE_CONTRACT, target);
}

static void
assert_row(struct env *e, const char *want)
{
	char *row = version_row(e->conn, REPO_ID);

	cr_assert_str_eq(row, want, "[%s] version row is %s, want %s", bname(e), row, want);
	free(row);
}

/* The newest history entry's command, result and detail, "|"-joined; owned. */
static char *
last_history(struct env *e)
{
	struct state_history *h;
	size_t n;
	char *text;

	cr_assert_eq(state_history_list(&e->st, 1, &h, &n, &e->err), 0, "%s", e->err.message);
	cr_assert_eq(n, 1, "[%s] no history", bname(e));
	text = xasprintf("%s|%s|%s|%s|%s", h[0].command, h[0].result, h[0].from_state,
			 h[0].to_state, h[0].detail ? h[0].detail : "");
	state_history_free(h, n);
	return text;
}

static long long
count_steps(struct env *e, const char *like)
{
	char *sql = xasprintf("SELECT count(*) FROM dbphase_steps WHERE repository = '%s' "
			      "AND step_id LIKE '%s'", REPO_ID, like);
	long long n = query_ll(e->conn, sql);

	free(sql);
	return n;
}

/* Whether one line of text holds a, and b after it. */
static bool
line_has(const char *text, const char *a, const char *b)
{
	const char *p = text;

	while ((p = strstr(p, a)) != NULL) {
		const char *nl = strchr(p, '\n'), *q = strstr(p, b);

		if (q && (nl == NULL || q < nl))
			return true;
		p += strlen(a);
	}
	return false;
}

/* A value that may not be readable yet (tables still being created): -1. */
static long long
try_ll(struct db_conn *conn, const char *sql)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct db_result *res = NULL;
	long long n = -1;

	if (db_query(conn, sql, NULL, 0, &res, &err) == 0 && res->n_rows > 0 &&
	    db_result_value(res, 0, 0))
		n = strtoll(db_result_value(res, 0, 0), NULL, 10);
	db_result_free(res);
	err_release(&err);
	return n;
}

/* Every history entry, oldest first, one line each: "result from to"; owned. */
static char *
history_lines(struct env *e)
{
	struct state_history *h;
	struct strbuf sb = STRBUF_INIT;
	size_t n, i;

	cr_assert_eq(state_history_list(&e->st, 100, &h, &n, &e->err), 0, "%s", e->err.message);
	for (i = n; i-- > 0;)
		strbuf_addf(&sb, "%s %s %s\n", h[i].result, h[i].from_state, h[i].to_state);
	state_history_free(h, n);
	return strbuf_detach(&sb);
}

static void
assert_history(struct env *e, const char *want)
{
	char *have = history_lines(e);

	cr_assert_str_eq(have, want, "[%s] history is\n%swant\n%s", bname(e), have, want);
	free(have);
}

/*
 * Make every insert into dbphase_history fail (or work again): a stand-in
 * for a server that dies, or a disk that fills, between a transition's
 * work and its history row.
 */
static void
break_history(struct env *e, bool broken)
{
	switch (e->db.backend) {
	case DB_BACKEND_POSTGRESQL:
		test_exec(e->conn, broken ?
			  "CREATE OR REPLACE FUNCTION no_history() RETURNS trigger LANGUAGE plpgsql "
			  "AS $$BEGIN RAISE EXCEPTION 'history is read-only'; END$$" :
			  "DROP TRIGGER no_history ON dbphase_history");
		if (broken)
			test_exec(e->conn, "CREATE TRIGGER no_history BEFORE INSERT ON dbphase_history "
				  "FOR EACH ROW EXECUTE FUNCTION no_history()");
		break;
	case DB_BACKEND_MYSQL:
		test_exec(e->conn, broken ?
			  "CREATE TRIGGER no_history BEFORE INSERT ON dbphase_history FOR EACH ROW "
			  "SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'history is read-only'" :
			  "DROP TRIGGER no_history");
		break;
	default:
		test_exec(e->conn, broken ?
			  "CREATE TRIGGER no_history BEFORE INSERT ON dbphase_history "
			  "BEGIN SELECT RAISE(ABORT, 'history is read-only'); END" :
			  "DROP TRIGGER no_history");
		break;
	}
}

/* ---- gates, force, nodes -------------------------------------------------- */

BACKEND_TEST(state, gates_refuse_and_name_what_comes_first)
{
	const char *const v[] = { v1_items, v2_note };
	struct env e;
	char *h;

	env_open(&e, *backend, v, 2);
	/* Migrate before expand. */
	cr_assert_eq(phase(&e, PHASE_MIGRATE, 1), DBPHASE_EREFUSED, "[%s] %s", bname(&e),
		     e.err.message);
	cr_assert_str_eq(e.err.message, "migrate to 1 refused: expand is at 0; run db_sync "
			 "--expand 1 first");
	h = last_history(&e);
	cr_assert(strncmp(h, "db_sync|refused|0/0/0|0/0/0|migrate to 1 refused", 48) == 0,
		  "[%s] history: %s", bname(&e), h);
	free(h);
	/* Contract before anything. */
	cr_assert_eq(phase(&e, PHASE_CONTRACT, 1), DBPHASE_EREFUSED);
	cr_assert_str_eq(e.err.message, "contract to 1 refused: expand is at 0 and migrate at 0; "
			 "run db_sync --expand 1, then db_sync --migrate 1 first");
	phase_ok(&e, PHASE_EXPAND, 1);
	assert_row(&e, "1/0/0");
	/* Contract before migrate. */
	cr_assert_eq(phase(&e, PHASE_CONTRACT, 1), DBPHASE_EREFUSED);
	cr_assert_str_eq(e.err.message, "contract to 1 refused: migrate is at 0; run db_sync "
			 "--migrate 1 first");
	/* Migrate past expand. */
	cr_assert_eq(phase(&e, PHASE_MIGRATE, 2), DBPHASE_EREFUSED);
	cr_assert_str_eq(e.err.message, "migrate to 2 refused: expand is at 1; run db_sync "
			 "--expand 2 first");
	assert_row(&e, "1/0/0");
	/* The legal order, one version at a time, then both at once. */
	phase_ok(&e, PHASE_MIGRATE, 1);
	assert_row(&e, "1/1/0");
	phase_ok(&e, PHASE_CONTRACT, 1);
	assert_row(&e, "1/1/1");
	phase_ok(&e, PHASE_EXPAND, 2);
	phase_ok(&e, PHASE_MIGRATE, 2);
	phase_ok(&e, PHASE_CONTRACT, 2);
	assert_row(&e, "2/2/2");
	/* Again: nothing to do, and said so. */
	strbuf_reset(&e.events);
	phase_ok(&e, PHASE_EXPAND, 2);
	cr_assert_str_eq(e.events.buf, "already_done expand -\n", "[%s] %s", bname(&e), e.events.buf);
	/* A version that is not in the repository. */
	cr_assert_eq(phase(&e, PHASE_EXPAND, 3), DBPHASE_EUSAGE);
	h = last_history(&e);
	cr_assert(strncmp(h, "db_sync|ok|2/2/1|2/2/2", 22) == 0, "[%s] %s", bname(&e), h);
	free(h);
	env_close(&e);
}

BACKEND_TEST(state, contract_waits_for_live_nodes_and_force_says_so)
{
	const char *const v[] = { v1_items, v2_note };
	struct env e;
	char *h;

	env_open(&e, *backend, v, 2);
	all_phases(&e, 1);
	cr_assert_eq(state_node_register(&e.st, "app-1", 1, &e.err), 0, "%s", e.err.message);
	cr_assert_eq(state_node_register(&e.st, "app-2", 2, &e.err), 0, "%s", e.err.message);
	phase_ok(&e, PHASE_EXPAND, 2);
	phase_ok(&e, PHASE_MIGRATE, 2);
	/* app-1 still runs code that needs version 1; app-2 is already on 2. */
	cr_assert_eq(phase(&e, PHASE_CONTRACT, 2), DBPHASE_EREFUSED, "[%s] %s", bname(&e),
		     e.err.message);
	cr_assert(strstr(e.err.message, "contract to 2 refused: 1 live node still runs code "
			 "that needs an older schema: 'app-1' (needs version 1") != NULL,
		  "[%s] %s", bname(&e), e.err.message);
	cr_assert(strstr(e.err.message, "app-2") == NULL, "%s", e.err.message);
	cr_assert(strstr(e.err.message, "upgrade or retire it first") != NULL, "%s",
		  e.err.message);
	assert_row(&e, "2/2/1");
	/* A heartbeat keeps it live. */
	cr_assert_eq(state_node_heartbeat(&e.st, "app-1", &e.err), 0, "%s", e.err.message);
	cr_assert_eq(phase(&e, PHASE_CONTRACT, 2), DBPHASE_EREFUSED);
	/* --force overrides, warns, and the history says so and names the node. */
	e.o.force = true;
	e.o.command = "db_sync --contract --force";
	strbuf_reset(&e.events);
	phase_ok(&e, PHASE_CONTRACT, 2);
	assert_row(&e, "2/2/2");
	cr_assert(strstr(e.events.buf, "warning contract - --force: contracted to 2 although "
			 "live nodes need an older schema: 'app-1'") != NULL,
		  "[%s] events: %s", bname(&e), e.events.buf);
	h = last_history(&e);
	cr_assert(strncmp(h, "db_sync --contract --force|ok (forced)|2/2/1|2/2/2|--force: "
			  "contracted to 2", 61) == 0, "[%s] history: %s", bname(&e), h);
	cr_assert(strstr(h, "'app-1'") != NULL, "%s", h);
	free(h);
	env_close(&e);
}

BACKEND_TEST(state, stale_and_retired_nodes_do_not_block)
{
	const char *const v[] = { v1_items, v2_note };
	struct env e;
	char *sql;
	char *h;

	env_open(&e, *backend, v, 2);
	all_phases(&e, 1);
	cr_assert_eq(state_node_register(&e.st, "old-1", 1, &e.err), 0, "%s", e.err.message);
	cr_assert_eq(state_node_register(&e.st, "old-2", 1, &e.err), 0, "%s", e.err.message);
	phase_ok(&e, PHASE_EXPAND, 2);
	phase_ok(&e, PHASE_MIGRATE, 2);
	cr_assert_eq(phase(&e, PHASE_CONTRACT, 2), DBPHASE_EREFUSED);
	cr_assert(strstr(e.err.message, "2 live nodes still run code") != NULL, "%s",
		  e.err.message);
	/* old-1's last heartbeat is an hour old: stale with the default 300 s TTL. */
	sql = xasprintf("UPDATE dbphase_nodes SET heartbeat_at = heartbeat_at - 3600 "
			"WHERE name = 'old-1'");
	test_exec(e.conn, sql);
	free(sql);
	cr_assert_eq(phase(&e, PHASE_CONTRACT, 2), DBPHASE_EREFUSED);
	cr_assert(strstr(e.err.message, "'old-2'") != NULL && strstr(e.err.message, "old-1") == NULL,
		  "[%s] the stale node still blocks: %s", bname(&e), e.err.message);
	/* old-2 retires. */
	cr_assert_eq(state_node_retire(&e.st, "old-2", &e.err), 0, "%s", e.err.message);
	cr_assert_eq(state_node_retire(&e.st, "old-2", &e.err), DBPHASE_ENOTFOUND);
	e.o.force = false;
	phase_ok(&e, PHASE_CONTRACT, 2);
	assert_row(&e, "2/2/2");
	h = last_history(&e);
	cr_assert(strncmp(h, "db_sync|ok|2/2/1|2/2/2|", 23) == 0, "[%s] %s", bname(&e), h);
	free(h);
	/* A retired node is gone from the registry. */
	cr_assert_eq(state_node_heartbeat(&e.st, "old-2", &e.err), DBPHASE_ENOTFOUND);
	env_close(&e);
}

/*
 * --node-ttl shorter than the default is no way around the gate: a node
 * seen 2 s ago with a 1 s TTL still blocks, named, until --force, and the
 * history says forced.  A node silent for longer than the default TTL is
 * gone whatever the TTL.
 */
BACKEND_TEST(state, a_short_node_ttl_does_not_open_the_gate_unforced)
{
	const char *const v[] = { v1_items, v2_note, v3_rename };
	struct env e;
	char *h;

	env_open(&e, *backend, v, 3);
	all_phases(&e, 1);
	cr_assert_eq(state_node_register(&e.st, "app-1", 1, &e.err), 0, "%s", e.err.message);
	phase_ok(&e, PHASE_EXPAND, 3);
	phase_ok(&e, PHASE_MIGRATE, 3);
	test_exec(e.conn, "UPDATE dbphase_nodes SET heartbeat_at = heartbeat_at - 2");
	e.o.node_ttl_s = 1;
	cr_assert_eq(phase(&e, PHASE_CONTRACT, 2), DBPHASE_EREFUSED, "[%s] contract ran: %s",
		     bname(&e), e.err.message);
	cr_assert(strstr(e.err.message, "contract to 2 refused: node 'app-1' (needs version 1, "
			 "heartbeat ") == e.err.message &&
		  strstr(e.err.message, "s ago) may still be running: node_ttl_s is 1 s, but a node "
			 "counts as gone only 300 s after its last heartbeat"), "[%s] %s", bname(&e),
		  e.err.message);
	assert_row(&e, "3/3/1");
	h = last_history(&e);
	cr_assert(strncmp(h, "db_sync|refused|3/3/1|3/3/1|contract to 2 refused", 49) == 0,
		  "[%s] %s", bname(&e), h);
	free(h);
	/* --force: loud, and recorded as forced, naming the node and the TTL. */
	e.o.force = true;
	strbuf_reset(&e.events);
	phase_ok(&e, PHASE_CONTRACT, 2);
	cr_assert(strstr(e.events.buf, "warning contract - --force: contracted to 2 although "
			 "node 'app-1' (needs version 1, heartbeat ") &&
		  strstr(e.events.buf, "s ago) may still be running (node_ttl_s 1 s)"),
		  "[%s] events: %s", bname(&e), e.events.buf);
	h = last_history(&e);
	cr_assert(strncmp(h, "db_sync|ok (forced)|3/3/1|3/3/2|--force: contracted to 2", 56) == 0 &&
		  strstr(h, "'app-1'") && strstr(h, "node_ttl_s 1 s"), "[%s] %s", bname(&e), h);
	free(h);
	/* Silent for longer than the default TTL: gone, plain ok. */
	e.o.force = false;
	test_exec(e.conn, "UPDATE dbphase_nodes SET heartbeat_at = heartbeat_at - 400");
	phase_ok(&e, PHASE_CONTRACT, 3);
	h = last_history(&e);
	cr_assert(strncmp(h, "db_sync|ok|3/3/2|3/3/3|", 23) == 0, "[%s] %s", bname(&e), h);
	free(h);
	env_close(&e);
}

/* ---- history ---------------------------------------------------------------- */

/*
 * A transition that cannot write its history row fails, and does not move
 * the row either: the row and its history commit together.  Run again once
 * the history can be written, it leaves exactly one row per transition.
 */
BACKEND_TEST(state, a_transition_without_its_history_row_fails_and_moves_nothing)
{
	const char *const v[] = { v1_items, v2_note };
	struct env e;

	env_open(&e, *backend, v, 2);
	phase_ok(&e, PHASE_EXPAND, 1);
	break_history(&e, true);
	cr_assert_lt(phase(&e, PHASE_EXPAND, 2), 0, "[%s] expand succeeded without history",
		     bname(&e));
	cr_assert(strstr(e.err.message, "not recorded in dbphase_history") &&
		  strstr(e.err.message, "history is read-only"), "[%s] %s", bname(&e),
		  e.err.message);
	assert_row(&e, "1/0/0");
	/* A refusal stays a refusal, and says it went unrecorded. */
	cr_assert_eq(phase(&e, PHASE_MIGRATE, 2), DBPHASE_EREFUSED, "[%s] %s", bname(&e),
		     e.err.message);
	cr_assert(strncmp(e.err.message, "migrate to 2 refused: expand is at 1", 36) == 0 &&
		  strstr(e.err.message, "not recorded in dbphase_history"), "[%s] %s", bname(&e),
		  e.err.message);
	cr_assert_lt(machine_stamp(&e.st, &e.repo, 2, &e.o, &e.err), 0, "[%s] stamp succeeded "
		     "without history", bname(&e));
	assert_row(&e, "1/0/0");
	cr_assert_lt(machine_downgrade(&e.st, &e.repo, &e.plan, 0, &e.o, &e.err), 0,
		     "[%s] downgrade succeeded without history", bname(&e));
	cr_assert(strstr(e.err.message, "not recorded in dbphase_history"), "[%s] %s", bname(&e),
		  e.err.message);
	assert_history(&e, "ok 0/0/0 1/0/0\n");
	break_history(&e, false);
	phase_ok(&e, PHASE_EXPAND, 2);
	assert_row(&e, "2/0/0");
	assert_history(&e, "ok 0/0/0 1/0/0\nok 0/0/0 2/0/0\n");
	env_close(&e);
}

/* ---- integrity ------------------------------------------------------------ */

BACKEND_TEST(state, changed_file_stops_transitions_until_repaired)
{
	const char *const v[] = { v1_items, v2_note };
	struct env e;
	char *h, *changed;

	env_open(&e, *backend, v, 2);
	phase_ok(&e, PHASE_EXPAND, 1);
	changed = xasprintf("%s  - add_column: {table: items, column: {name: extra, type: "
			    "integer}}\n", v1_items);
	env_rewrite(&e, 1, changed);
	cr_assert_eq(phase(&e, PHASE_EXPAND, 2), DBPHASE_ECHECKSUM);
	cr_assert(strstr(e.err.message, "versions/001_v1.yaml: version 1 was applied from a file "
			 "with checksum") != NULL, "[%s] %s", bname(&e), e.err.message);
	cr_assert(strstr(e.err.message, "dbphase validate --repair") != NULL, "%s", e.err.message);
	cr_assert_eq(machine_check(&e.st, &e.repo, &e.err), DBPHASE_ECHECKSUM);
	cr_assert_eq(machine_stamp(&e.st, &e.repo, 2, &e.o, &e.err), DBPHASE_ECHECKSUM);
	cr_assert_eq(machine_downgrade(&e.st, &e.repo, &e.plan, 0, &e.o, &e.err),
		     DBPHASE_ECHECKSUM);
	assert_row(&e, "1/0/0");
	/* Repair records the file as it is, in the history. */
	e.o.command = "validate --repair";
	cr_assert_eq(machine_repair(&e.st, &e.repo, &e.o, &e.err), 0, "%s", e.err.message);
	h = last_history(&e);
	cr_assert(strstr(h, "validate --repair|repaired|1/0/0|1/0/0|") == h &&
		  strstr(h, "001_v1.yaml (version 1): accepted the file's new checksum") != NULL,
		  "[%s] %s", bname(&e), h);
	free(h);
	cr_assert_eq(machine_check(&e.st, &e.repo, &e.err), 0, "%s", e.err.message);
	e.o.command = "db_sync --expand";
	phase_ok(&e, PHASE_EXPAND, 2);
	assert_row(&e, "2/0/0");
	free(changed);
	env_close(&e);
}

/* ---- resume and work left unrecorded ----------------------------------------- */

/*
 * On MariaDB every DDL statement commits by itself, so a run killed after
 * a step's DDL and before its record leaves the effect without the record.
 * The same holds on every backend for steps that are not atomic (CREATE
 * INDEX CONCURRENTLY, SQLite's index builds).  Simulate it by removing the
 * records of exactly those steps after a successful expand, and putting the
 * row back: the next expand must find their effects and record them, not
 * run them again (ADD COLUMN twice would fail).
 */
BACKEND_TEST(state, effect_without_record_is_found_not_rerun)
{
	const char *const v[] = { v1_items, v2_note, v3_rename };
	struct state_versions sv = { 2, 2, 2, true };
	struct strbuf expect = STRBUF_INIT;
	size_t i, lost = 0;
	struct env e;

	env_open(&e, *backend, v, 3);
	all_phases(&e, 2);
	phase_ok(&e, PHASE_EXPAND, 3);
	for (i = 0; i < e.plan.n_steps; i++) {
		const struct plan_step *s = &e.plan.steps[i];
		char *id, *sql;

		if (s->version != 3 || s->phase != PHASE_EXPAND || s->action != STEP_SQL ||
		    (s->atomic && *backend != DB_BACKEND_MYSQL))
			continue;
		id = plan_step_id(s);
		sql = xasprintf("DELETE FROM dbphase_steps WHERE step_id = '%s'", id);
		test_exec(e.conn, sql);
		strbuf_addf(&expect, "step_skipped expand %s its effect was already in the "
			    "database (an earlier run stopped before recording it): recorded, "
			    "not run again\n", id);
		lost++;
		free(sql);
		free(id);
	}
	cr_assert_geq(lost, *backend == DB_BACKEND_MYSQL ? 3 : 1, "[%s] only %zu steps",
		      bname(&e), lost);
	cr_assert_eq(state_write(&e.st, &sv, &e.err), 0, "%s", e.err.message);
	strbuf_reset(&e.events);
	phase_ok(&e, PHASE_EXPAND, 3);
	assert_row(&e, "3/2/2");
	cr_assert_eq(count_steps(&e, "v003.expand.%"), (long long)plan_count(&e.plan, 3, PHASE_EXPAND));
	{
		/* Every lost step is reported as found, in order, and none ran. */
		const char *p = e.events.buf, *q = expect.buf;

		while (*q) {
			const char *nl = strchr(q, '\n');
			char *line = xstrndup(q, (size_t)(nl - q + 1));

			p = strstr(p, line);
			cr_assert(p != NULL, "[%s] missing event %s in:\n%s", bname(&e), line,
				  e.events.buf);
			free(line);
			q = nl + 1;
		}
		cr_assert(strstr(e.events.buf, "step_start") == NULL, "[%s] a step ran again:\n%s",
			  bname(&e), e.events.buf);
	}
	/* The rest of the way still works. */
	phase_ok(&e, PHASE_MIGRATE, 3);
	phase_ok(&e, PHASE_CONTRACT, 3);
	strbuf_release(&expect);
	env_close(&e);
}

/* A step found half done (one of its objects missing) runs again, safely. */
BACKEND_TEST(state, half_done_step_runs_again)
{
	const char *const v[] = { v1_items, v2_note, v3_rename };
	struct state_versions sv = { 2, 2, 2, true };
	const struct plan_step *trig = NULL;
	struct env e;
	struct db_table_info info;
	char *id, *sql;
	size_t i;

	env_open(&e, *backend, v, 3);
	all_phases(&e, 2);
	phase_ok(&e, PHASE_EXPAND, 3);
	/* The step that creates rename_column's triggers. */
	for (i = 0; i < e.plan.n_steps && trig == NULL; i++)
		if (e.plan.steps[i].version == 3 && e.plan.steps[i].phase == PHASE_EXPAND &&
		    e.plan.steps[i].n_sql > 2 && strstr(e.plan.steps[i].sql[1], "TRIGGER"))
			trig = &e.plan.steps[i];
	cr_assert_not_null(trig, "[%s] no trigger step", bname(&e));
	memset(&info, 0, sizeof(info));
	cr_assert_eq(e.conn->drv->describe_table(e.conn, "items", &info, &e.err), 0, "%s",
		     e.err.message);
	cr_assert_geq(info.n_triggers, 1, "[%s] no triggers on items", bname(&e));
	/* Lose the record and one trigger, as a run killed inside the step would. */
	sql = xasprintf(*backend == DB_BACKEND_POSTGRESQL ? "DROP TRIGGER \"%s\" ON items" :
			"DROP TRIGGER %s", info.triggers[info.n_triggers - 1].name);
	test_exec(e.conn, sql);
	free(sql);
	db_table_info_release(&info);
	id = plan_step_id(trig);
	sql = xasprintf("DELETE FROM dbphase_steps WHERE step_id = '%s'", id);
	test_exec(e.conn, sql);
	free(sql);
	cr_assert_eq(state_write(&e.st, &sv, &e.err), 0, "%s", e.err.message);
	strbuf_reset(&e.events);
	phase_ok(&e, PHASE_EXPAND, 3);
	sql = xasprintf("step_start expand %s\n", id);
	cr_assert(strstr(e.events.buf, sql) != NULL, "[%s] %s did not run again:\n%s", bname(&e),
		  id, e.events.buf);
	free(sql);
	memset(&info, 0, sizeof(info));
	cr_assert_eq(e.conn->drv->describe_table(e.conn, "items", &info, &e.err), 0, "%s",
		     e.err.message);
	cr_assert_geq(info.n_triggers, *backend == DB_BACKEND_POSTGRESQL ? 1 :
		      *backend == DB_BACKEND_MYSQL ? 2 : 4, "[%s] %zu triggers", bname(&e),
		      info.n_triggers);
	db_table_info_release(&info);
	/* Old code's write reaches new code's column. */
	test_exec(e.conn, "INSERT INTO items (id, n, label) VALUES (77, 1, 'old code')");
	sql = test_query_value(e.conn, "SELECT title FROM items WHERE id = 77");
	cr_assert_str_eq(sql, "old code", "[%s] trigger did not copy", bname(&e));
	free(sql);
	free(id);
	env_close(&e);
}

/* ---- real processes ---------------------------------------------------------- */

static const char counter_v1[] =
	"description: a counter\n"
	"operations:\n"
	"  - create_table:\n"
	"      name: counter\n"
	"      columns:\n"
	"        - {name: id, type: bigint, primary_key: true, autoincrement: true}\n"
	"        - {name: who, type: \"varchar(20)\"}\n";

/* Not idempotent: a second run adds a second row. */
static const char counter_v2[] =
	"description: count the runs of this step\n"
	"operations:\n"
	"  - sql: {phase: expand, all: \"INSERT INTO counter (who) VALUES ('expand')\"}\n"
	"  - add_column: {table: counter, column: {name: extra, type: integer}}\n"
	"  - add_index: {table: counter, name: ix_counter_who, columns: [who]}\n";

BACKEND_TEST(state, eight_processes_expand_once)
{
	const char *const v[] = { counter_v1, counter_v2 };
	enum { N = 8 };
	struct env e;
	char *out[N], *err[N], *tmp = test_mkdtemp();
	pid_t pid[N];
	int gate[2], code[N], started = 0, already = 0, i;

	env_open(&e, *backend, v, 2);
	cr_assert_eq(pipe(gate), 0);
	for (i = 0; i < N; i++) {
		char *argv[] = { "--database", e.db.url, "--repository", e.dir, "db_sync",
				 "--expand", NULL };

		out[i] = xasprintf("%s/out%d", tmp, i);
		err[i] = xasprintf("%s/err%d", tmp, i);
		pid[i] = spawn_dbphase(argv, out[i], err[i], gate);
	}
	close(gate[0]);
	close(gate[1]);		/* all eight go at once */
	for (i = 0; i < N; i++)
		code[i] = wait_child(pid[i]);
	for (i = 0; i < N; i++) {
		char *o = slurp(out[i]), *er = slurp(err[i]);

		cr_assert_eq(code[i], 0, "[%s] process %d: exit %d\n%s%s", bname(&e), i, code[i], o, er);
		if (strstr(o, "expand: 0 -> 2\n"))
			started++;
		else if (strcmp(o, "expand: already at 2, nothing to do\n") == 0)
			already++;
		else
			cr_assert_fail("[%s] process %d said:\n%s%s", bname(&e), i, o, er);
		free(o);
		free(er);
		free(out[i]);
		free(err[i]);
	}
	cr_assert_eq(started, 1, "[%s] %d processes ran the expand", bname(&e), started);
	cr_assert_eq(already, N - 1);
	/* Each step exactly once: one record each, and the INSERT ran once. */
	cr_assert_eq(query_ll(e.conn, "SELECT count(*) FROM counter"), 1,
		     "[%s] the INSERT step ran more than once", bname(&e));
	cr_assert_eq(count_steps(&e, "v001.expand.%"), (long long)plan_count(&e.plan, 1, PHASE_EXPAND));
	cr_assert_eq(count_steps(&e, "v002.expand.%"), (long long)plan_count(&e.plan, 2, PHASE_EXPAND));
	cr_assert_eq(query_ll(e.conn, "SELECT count(*) FROM dbphase_history WHERE "
			      "command = 'db_sync --expand'"), 1);
	assert_row(&e, "2/0/0");
	test_rmtree(tmp);
	free(tmp);
	env_close(&e);
}

/*
 * Eight nodes register at once on a database dbphase never touched: the
 * tables are created once, each registration is one atomic upsert (two
 * processes per name), and all eight succeed.
 */
BACKEND_TEST(state, eight_nodes_register_at_once_on_a_fresh_database)
{
	const char *const v[] = { v1_items };
	enum { N = 8 };
	struct env e;
	char *out[N], *err[N], *tmp = test_mkdtemp();
	pid_t pid[N];
	int gate[2], code[N], i;

	env_open(&e, *backend, v, 1);
	cr_assert_eq(pipe(gate), 0);
	for (i = 0; i < N; i++) {
		char name[16], version[16];
		char *argv[] = { "--database", e.db.url, "--repository", e.dir, "node", "register",
				 "--name", name, "--schema-version", version, NULL };

		snprintf(name, sizeof(name), "app-%d", i % (N / 2));
		snprintf(version, sizeof(version), "%d", 1);
		out[i] = xasprintf("%s/out%d", tmp, i);
		err[i] = xasprintf("%s/err%d", tmp, i);
		pid[i] = spawn_dbphase(argv, out[i], err[i], gate);
	}
	close(gate[0]);
	close(gate[1]);
	for (i = 0; i < N; i++)
		code[i] = wait_child(pid[i]);
	for (i = 0; i < N; i++) {
		char *o = slurp(out[i]), *er = slurp(err[i]);

		cr_assert_eq(code[i], 0, "[%s] process %d: exit %d\n%s%s", bname(&e), i, code[i], o,
			     er);
		/* Nothing but the line naming the database. */
		cr_assert_str_eq(after_database_line(er), "", "[%s] process %d: %s", bname(&e), i, er);
		free(o);
		free(er);
		free(out[i]);
		free(err[i]);
	}
	cr_assert_eq(query_ll(e.conn, "SELECT count(*) FROM dbphase_nodes"), N / 2);
	cr_assert_eq(query_ll(e.conn, "SELECT count(*) FROM dbphase_meta"), 1);
	test_rmtree(tmp);
	free(tmp);
	env_close(&e);
}

/* A step that takes a few seconds and changes nothing that lasts. */
static const char slow_v2[] =
	"description: count, then think, then add\n"
	"operations:\n"
	"  - sql: {phase: expand, all: \"INSERT INTO counter (who) VALUES ('first')\"}\n"
	"  - sql:\n"
	"      phase: expand\n"
	"      postgresql: \"DO $$BEGIN PERFORM pg_sleep(4); END$$\"\n"
	"      mysql: \"DO SLEEP(4)\"\n"
	"      sqlite: >-\n"
	"        CREATE TABLE burn AS WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL\n"
	"        SELECT x + 1 FROM c WHERE x < 25000000) SELECT count(*) AS n FROM c\n"
	"  - sql: {phase: expand, all: \"INSERT INTO counter (who) VALUES ('third')\"}\n"
	"  - add_column: {table: counter, column: {name: extra, type: integer}}\n";

BACKEND_TEST(state, killed_between_expand_steps_resumes_at_the_next)
{
	const char *const v[] = { counter_v1, slow_v2 };
	struct env e;
	struct run r;
	char *argv[7];
	pid_t pid;
	double t0;
	int code;

	env_open(&e, *backend, v, 2);
	phase_ok(&e, PHASE_EXPAND, 1);
	argv[0] = "--database";
	argv[1] = e.db.url;
	argv[2] = "--repository";
	argv[3] = e.dir;
	argv[4] = "db_sync";
	argv[5] = "--expand";
	argv[6] = NULL;
	pid = spawn_dbphase(argv, NULL, NULL, NULL);
	/* Wait for the first step's record: the child is then in the slow one. */
	for (t0 = mono_s(); mono_s() - t0 < 30; sleep_ms(20))
		if (try_ll(e.conn, "SELECT count(*) FROM dbphase_steps WHERE step_id = "
			   "'v002.expand.1'") == 1)
			break;
	cr_assert_eq(try_ll(e.conn, "SELECT count(*) FROM dbphase_steps WHERE step_id = "
			    "'v002.expand.1'"), 1, "[%s] the first step never completed", bname(&e));
	sleep_ms(300);
	kill(pid, SIGKILL);
	code = wait_child(pid);
	cr_assert_eq(code, 128 + SIGKILL, "[%s] the child was not killed (exit %d)", bname(&e), code);
	cr_assert_eq(count_steps(&e, "v002.expand.2"), 0, "[%s] killed too late", bname(&e));
	cr_assert_eq(query_ll(e.conn, "SELECT count(*) FROM counter"), 1);
	assert_row(&e, "1/0/0");
	/* Again: the first step is skipped, the rest runs once. */
	run_dbphase(&r, "--database", e.db.url, "--repository", e.dir, "db_sync", "--expand", NULL);
	cr_assert_eq(r.code, 0, "[%s] " RUN_FMT, bname(&e), RUN_ARGS(r));
	cr_assert(line_has(r.out, "v002.expand.1 ", "already done by an earlier run"),
		  "[%s] " RUN_FMT, bname(&e), RUN_ARGS(r));
	cr_assert(strstr(r.out, "v002.expand.2 ") != NULL && strstr(r.out, "expand: 1 -> 2\n"),
		  "[%s] %s", bname(&e), r.out);
	cr_assert_eq(query_ll(e.conn, "SELECT count(*) FROM counter WHERE who = 'first'"), 1);
	cr_assert_eq(query_ll(e.conn, "SELECT count(*) FROM counter WHERE who = 'third'"), 1);
	cr_assert_eq(count_steps(&e, "v002.expand.%"), 4);
	assert_row(&e, "2/0/0");
	/* The killed run wrote none; the rerun one, from where it found the row. */
	assert_history(&e, "ok 0/0/0 1/0/0\nok 1/0/0 2/0/0\n");
	run_release(&r);
	env_close(&e);
}

static const char fix_v2[] =
	"description: a one-off fix, every n goes up by one\n"
	"operations:\n"
	"  - backfill: {table: items, set: {n: \"n + 1\"}}\n";

BACKEND_TEST(state, killed_migrate_resumes_every_row_exactly_once)
{
	const char *const v[] = { v1_items, fix_v2 };
	enum { ROWS = 20000 };
	struct env e;
	struct run r;
	char *fill;
	pid_t pid;
	double t0;
	long long done = -1, total;
	int code;

	env_open(&e, *backend, v, 2);
	all_phases(&e, 1);
	fill = *backend == DB_BACKEND_POSTGRESQL ?
	       xasprintf("INSERT INTO items (id, n) SELECT g, 0 FROM generate_series(1, %d) g",
			 ROWS) :
	       *backend == DB_BACKEND_MYSQL ?
	       xasprintf("INSERT INTO items (id, n) SELECT seq, 0 FROM seq_1_to_%d", ROWS) :
	       xasprintf("INSERT INTO items (id, n) WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL "
			 "SELECT i + 1 FROM g WHERE i < %d) SELECT i, 0 FROM g", ROWS);
	test_exec(e.conn, fill);
	free(fill);
	phase_ok(&e, PHASE_EXPAND, 2);
	{
		/* Small batches, throttled: the run takes seconds, killed in the middle. */
		char *argv[] = { "--database", e.db.url, "--repository", e.dir, "--batch-size", "50",
				 "--max-batch-size", "50", "--max-rate", "4000", "--jobs", "2",
				 "db_sync", "--migrate", NULL };

		pid = spawn_dbphase(argv, NULL, NULL, NULL);
	}
	for (t0 = mono_s(); mono_s() - t0 < 60; sleep_ms(20)) {
		done = try_ll(e.conn, "SELECT sum(rows_done) FROM dbphase_progress WHERE "
			      "step_id = 'v002.migrate.1'");
		if (done >= 3000)
			break;
	}
	kill(pid, SIGKILL);
	code = wait_child(pid);
	cr_assert_eq(code, 128 + SIGKILL, "[%s] exit %d", bname(&e), code);
	cr_assert_geq(done, 3000, "[%s] no progress (%lld)", bname(&e), done);
	done = query_ll(e.conn, "SELECT sum(rows_done) FROM dbphase_progress WHERE "
			"step_id = 'v002.migrate.1'");
	cr_assert_lt(done, ROWS, "[%s] finished before the kill", bname(&e));
	cr_assert_eq(count_steps(&e, "v002.migrate.%"), 0);
	/* state_progress_list (what `status` shows) sums the step's chunks. */
	{
		struct state_progress *pr;
		size_t n;

		cr_assert_eq(state_progress_list(&e.st, &pr, &n, &e.err), 0, "%s", e.err.message);
		cr_assert_eq(n, 1, "[%s] %zu steps in progress", bname(&e), n);
		cr_assert_str_eq(pr[0].step_id, "v002.migrate.1");
		cr_assert_eq(pr[0].rows_done, done);
		cr_assert_eq((long long)pr[0].chunks,
			     query_ll(e.conn, "SELECT count(*) FROM dbphase_progress WHERE "
				      "step_id = 'v002.migrate.1'"));
		cr_assert_not(pr[0].finished, "[%s] the killed step is finished", bname(&e));
		state_progress_free(pr, n);
	}
	/* What the checkpoints say is exactly what the table holds. */
	cr_assert_eq(query_ll(e.conn, "SELECT count(*) FROM items WHERE n = 1"), done,
		     "[%s] checkpoints and rows disagree", bname(&e));
	cr_assert_eq(query_ll(e.conn, "SELECT count(*) FROM items WHERE n NOT IN (0, 1)"), 0);
	assert_row(&e, "2/1/1");
	run_dbphase(&r, "--database", e.db.url, "--repository", e.dir, "--batch-size", "500",
		    "db_sync", "--migrate", NULL);
	cr_assert_eq(r.code, 0, "[%s] " RUN_FMT, bname(&e), RUN_ARGS(r));
	total = query_ll(e.conn, "SELECT count(*) FROM items");
	cr_assert_eq(total, ROWS);
	cr_assert_eq(query_ll(e.conn, "SELECT count(*) FROM items WHERE n = 1"), ROWS,
		     "[%s] a row was missed or updated twice: %lld rows at 1, %lld at 2", bname(&e),
		     query_ll(e.conn, "SELECT count(*) FROM items WHERE n = 1"),
		     query_ll(e.conn, "SELECT count(*) FROM items WHERE n = 2"));
	cr_assert_eq(count_steps(&e, "v002.migrate.%"), 1);
	assert_row(&e, "2/2/1");
	assert_history(&e, "ok 0/0/0 1/0/0\nok 1/0/0 1/1/0\nok 1/1/0 1/1/1\nok 1/1/1 2/1/1\n"
		       "ok 2/1/1 2/2/1\n");
	run_release(&r);
	env_close(&e);
}

/* ---- downgrade ------------------------------------------------------------------ */

/* Every application table's columns, indexes, triggers and constraints; owned. */
static char *
schema_text(struct env *e)
{
	struct strbuf sb = STRBUF_INIT;
	char *tables = app_tables(e->conn), *save = NULL, *t;
	size_t i;

	for (t = strtok_r(tables, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		struct db_table_info info;

		memset(&info, 0, sizeof(info));
		cr_assert_eq(e->conn->drv->describe_table(e->conn, t, &info, &e->err), 0, "%s",
			     e->err.message);
		strbuf_addf(&sb, "table %s\n", t);
		for (i = 0; i < info.n_columns; i++)
			strbuf_addf(&sb, "  column %s %s %s default %s%s\n", info.columns[i].name,
				    info.columns[i].type, info.columns[i].nullable ? "null" : "not null",
				    info.columns[i].default_expr ? info.columns[i].default_expr : "-",
				    info.columns[i].primary_key ? " pk" : "");
		for (i = 0; i < info.n_indexes; i++)
			strbuf_addf(&sb, "  index %s%s\n", info.indexes[i].name,
				    info.indexes[i].unique ? " unique" : "");
		for (i = 0; i < info.n_triggers; i++)
			strbuf_addf(&sb, "  trigger %s\n", info.triggers[i].name);
		for (i = 0; i < info.n_constraints; i++)
			strbuf_addf(&sb, "  constraint %s\n", info.constraints[i].name);
		db_table_info_release(&info);
	}
	free(tables);
	return strbuf_detach(&sb);
}

static char *
source_path(const char *rel)
{
	const char *root = getenv("DBPHASE_SOURCE_ROOT");

	return xasprintf("%s/%s", root && *root ? root : "..", rel);
}

/*
 * The sample shop: release 2 in place, expand and migrate to 5 (renames,
 * type changes, triggers, shadow columns, indexes, a NOT VALID check),
 * then back to 2: the schema is release 2's again, release 2's code
 * works, and the way up is open again.
 */
BACKEND_TEST(state, downgrade_takes_back_expand_and_migrate)
{
	struct env e;
	char *before, *after, *h, *shop = source_path("doc/examples/shop");
	int rc;

	memset(&e, 0, sizeof(e));
	strbuf_init(&e.events);
	test_db_create(*backend, &e.db);
	e.conn = test_db_connect(&e.db);
	cr_assert_eq(db_url_parse(e.db.url, &e.url, &e.err), 0, "%s", e.err.message);
	e.dir = test_mkdtemp();
	cr_assert_eq(repo_load(&e.repo, shop, NULL, &e.err), 0, "%s", e.err.message);
	cr_assert_eq(catalog_load(&e.cat, NULL, &e.err), 0, "%s", e.err.message);
	cr_assert_eq(plan_build(&e.plan, &e.repo, &e.cat, *backend, &e.err), 0, "%s", e.err.message);
	e.loaded = true;
	state_init(&e.st, e.conn, "shop", e.repo.version_table);
	machine_opts_init(&e.o);
	e.o.url = &e.url;
	e.o.event = record_event;
	e.o.event_arg = &e;
	all_phases(&e, 2);
	test_exec(e.conn, "INSERT INTO customers (name, email, score) VALUES ('Ann', 'Ann@X.org', 3)");
	before = schema_text(&e);
	phase_ok(&e, PHASE_EXPAND, 5);
	phase_ok(&e, PHASE_MIGRATE, 5);
	after = schema_text(&e);
	cr_assert_str_neq(before, after);
	free(after);
	/* Below 2 is contracted: refused, nothing touched. */
	rc = machine_downgrade(&e.st, &e.repo, &e.plan, 1, &e.o, &e.err);
	cr_assert_eq(rc, DBPHASE_EREFUSED, "[%s] %s", bname(&e), e.err.message);
	cr_assert_str_eq(e.err.message, "downgrade to 1 refused: version 2 is already contracted, "
			 "so what only older code needed is gone; --allow-data-loss would take "
			 "back versions 2 to 5, whose every step has an inverse, dropping what they "
			 "created and the data in it (table 'loyalty_cards', column 'language' of "
			 "'customers', column 'full_name' of 'customers', column 'email_lower' of "
			 "'customers'); or restore from backup");
	strbuf_reset(&e.events);
	e.o.command = "downgrade";
	rc = machine_downgrade(&e.st, &e.repo, &e.plan, 2, &e.o, &e.err);
	cr_assert_eq(rc, 0, "[%s] %s\n%s", bname(&e), e.err.message, e.events.buf);
	{
		char *v = version_row(e.conn, "shop");

		cr_assert_str_eq(v, "2/2/2", "[%s] %s", bname(&e), v);
		free(v);
	}
	after = schema_text(&e);
	cr_assert_str_eq(after, before, "[%s] the schema differs after downgrade:\n--- before\n%s"
			 "--- after\n%s", bname(&e), before, after);
	free(after);
	/* Steps undone newest first; records, progress and checksums forgotten. */
	cr_assert(strstr(e.events.buf, "phase_start expand -\nstep_undone migrate v00")
		  == e.events.buf, "[%s] %s", bname(&e), e.events.buf);
	cr_assert(strstr(e.events.buf, "step_undone expand v003.expand.1\nphase_done expand -\n")
		  != NULL, "[%s] %s", bname(&e), e.events.buf);
	cr_assert_eq(query_ll(e.conn, "SELECT count(*) FROM dbphase_steps WHERE step_id LIKE "
			      "'v003.%' OR step_id LIKE 'v004.%' OR step_id LIKE 'v005.%'"), 0);
	cr_assert_eq(query_ll(e.conn, "SELECT count(*) FROM dbphase_progress"), 0);
	cr_assert_eq(query_ll(e.conn, "SELECT max(version) FROM dbphase_migrations"), 2);
	h = xasprintf("SELECT count(*) FROM dbphase_history WHERE command = 'downgrade' AND "
		      "result = 'ok' AND from_state = '5/5/2' AND to_state = '2/2/2'");
	cr_assert_eq(query_ll(e.conn, h), 1, "[%s] no history of the downgrade", bname(&e));
	free(h);
	/* Release 2's code works. */
	test_exec(e.conn, "INSERT INTO customers (name, email, score) VALUES ('Bob', 'b@x.org', 7)");
	cr_assert_eq(query_ll(e.conn, "SELECT count(*) FROM customers"), 2);
	/* Nothing more to undo. */
	strbuf_reset(&e.events);
	cr_assert_eq(machine_downgrade(&e.st, &e.repo, &e.plan, 2, &e.o, &e.err), 0);
	cr_assert_str_eq(e.events.buf, "already_done expand -\n");
	/* And up again, all the way. */
	e.o.command = "db_sync";
	all_phases(&e, 5);
	h = test_query_value(e.conn, "SELECT full_name FROM customers WHERE email = 'b@x.org'");
	cr_assert_str_eq(h, "Bob", "[%s] %s", bname(&e), h);
	free(h);
	free(before);
	free(shop);
	env_close(&e);
}

/* A version whose expand stopped half way is taken back by downgrade too. */
BACKEND_TEST(state, downgrade_takes_back_a_failed_expand)
{
	static const char broken_v2[] =
		"description: the third step fails\n"
		"operations:\n"
		"  - add_column: {table: items, column: {name: note, type: \"varchar(100)\"}}\n"
		"  - add_index: {table: items, name: ix_items_note, columns: [note]}\n"
		"  - sql: {phase: expand, all: \"ALTER TABLE no_such_table ADD COLUMN x integer\"}\n";
	const char *const v[] = { v1_items, broken_v2 };
	struct env e;
	char *before, *after;

	env_open(&e, *backend, v, 2);
	all_phases(&e, 1);
	before = schema_text(&e);
	cr_assert_lt(phase(&e, PHASE_EXPAND, 2), 0);
	cr_assert(strstr(e.err.message, "v002.expand.3") != NULL, "%s", e.err.message);
	assert_row(&e, "1/1/1");
	cr_assert_eq(count_steps(&e, "v002.expand.%"), 2);
	after = schema_text(&e);
	cr_assert_str_neq(before, after);
	free(after);
	/* The file changed after its expand started: caught, and the way out named. */
	env_rewrite(&e, 2, v2_note);
	cr_assert_eq(phase(&e, PHASE_EXPAND, 2), DBPHASE_ECHECKSUM);
	cr_assert(strstr(e.err.message, "version 2 is partly applied") != NULL &&
		  strstr(e.err.message, "'dbphase downgrade 1'") != NULL, "%s", e.err.message);
	env_rewrite(&e, 2, broken_v2);
	cr_assert_eq(machine_downgrade(&e.st, &e.repo, &e.plan, 1, &e.o, &e.err), 0, "[%s] %s",
		     bname(&e), e.err.message);
	after = schema_text(&e);
	cr_assert_str_eq(after, before, "[%s]\n%s---\n%s", bname(&e), before, after);
	free(after);
	cr_assert_eq(count_steps(&e, "v002.%"), 0);
	assert_row(&e, "1/1/1");
	/* Fixed file, clean start. */
	env_rewrite(&e, 2, v2_note);
	phase_ok(&e, PHASE_EXPAND, 2);
	assert_row(&e, "2/1/1");
	free(before);
	env_close(&e);
}

BACKEND_TEST(state, downgrade_refuses_what_it_cannot_undo)
{
	const char *const v[] = { counter_v1, counter_v2 };
	struct env e;
	char *h;

	env_open(&e, *backend, v, 2);
	all_phases(&e, 1);
	phase_ok(&e, PHASE_EXPAND, 2);
	cr_assert_eq(machine_downgrade(&e.st, &e.repo, &e.plan, 1, &e.o, &e.err), DBPHASE_EREFUSED);
	cr_assert(strstr(e.err.message, "downgrade to 1 refused: step v002.expand.1 (sql at ") ==
		  e.err.message, "[%s] %s", bname(&e), e.err.message);
	cr_assert(strstr(e.err.message, "knows no inverse of 'INSERT INTO counter (who) VALUES "
			 "('expand')'; restore from backup") != NULL, "%s", e.err.message);
	/* Nothing was touched. */
	assert_row(&e, "2/1/1");
	cr_assert_eq(count_steps(&e, "v002.expand.%"), 3);
	h = last_history(&e);
	cr_assert(strncmp(h, "db_sync|refused|2/1/1|2/1/1|downgrade to 1 refused", 49) == 0,
		  "%s", h);
	free(h);
	/* Partly contracted above the target: refused as well. */
	phase_ok(&e, PHASE_MIGRATE, 2);
	test_exec(e.conn, "INSERT INTO dbphase_steps (repository, step_id, done_at) VALUES "
		  "('" REPO_ID "', 'v002.contract.1', 0)");
	cr_assert_eq(machine_downgrade(&e.st, &e.repo, &e.plan, 1, &e.o, &e.err), DBPHASE_EREFUSED);
	cr_assert(strstr(e.err.message, "downgrade to 1 refused: version 2 is partly contracted, "
			 "so what only older code needed is gone; restore from backup (even with "
			 "--allow-data-loss: step v002.expand.1 (sql at ") == e.err.message,
		  "[%s] %s", bname(&e), e.err.message);
	env_close(&e);
}

static const char every_v1[] =
	"description: parents, kids and two tables to rename and drop\n"
	"operations:\n"
	"  - create_table:\n"
	"      name: parents\n"
	"      columns:\n"
	"        - {name: id, type: bigint, primary_key: true}\n"
	"        - {name: code, type: \"varchar(20)\", nullable: false}\n"
	"  - create_table:\n"
	"      name: kids\n"
	"      columns:\n"
	"        - {name: id, type: bigint, primary_key: true}\n"
	"        - {name: parent_id, type: bigint}\n"
	"        - {name: name, type: \"varchar(50)\", nullable: false}\n"
	"        - {name: score, type: integer, nullable: false, default: 0}\n"
	"        - {name: flag, type: boolean}\n"
	"        - {name: memo, type: text}\n"
	"  - add_index: {table: kids, name: ix_kids_name, columns: [name]}\n"
	"  - create_table:\n"
	"      name: olds\n"
	"      columns:\n"
	"        - {name: id, type: bigint, primary_key: true}\n"
	"  - create_table:\n"
	"      name: gone\n"
	"      columns:\n"
	"        - {name: id, type: bigint, primary_key: true}\n";

/* Every operation whose expand and migrate dbphase can take back by itself. */
static const char every_v2[] =
	"description: one of each\n"
	"operations:\n"
	"  - add_column: {table: kids, column: {name: note, type: \"varchar(10)\"}}\n"
	"  - add_column: {table: kids, column: {name: must, type: integer, nullable: false}}\n"
	"  - backfill: {table: kids, set: {must: \"score\"}}\n"
	"  - add_index: {table: kids, name: ix_kids_score, columns: [score]}\n"
	"  - add_unique: {table: parents, name: uq_parents_code, columns: [code]}\n"
	"  - add_check: {table: kids, name: ck_kids_parent, check: \"parent_id > 0\"}\n"
	"  - add_foreign_key: {table: kids, name: fk_kids_parent, columns: [parent_id], "
	"references: parents}\n"
	"  - rename_column: {table: kids, from: name, to: full_name}\n"
	"  - change_type: {table: kids, column: score, to: bigint}\n"
	"  - set_not_null: {table: kids, column: flag}\n"
	"  - rename_table: {name: olds, to: ancients}\n"
	"  - drop_column: {table: kids, column: memo}\n"
	"  - drop_index: {name: ix_kids_name}\n"
	"  - drop_table: {name: gone}\n";

/* Expand and migrate of every operation, taken back: the schema is v1's again. */
BACKEND_TEST(state, downgrade_takes_back_every_operation)
{
	const char *const v[] = { every_v1, every_v2 };
	struct env e;
	char *before, *after;
	int rc;

	env_open(&e, *backend, v, 2);
	all_phases(&e, 1);
	test_exec(e.conn, "INSERT INTO parents (id, code) VALUES (1, 'p1'), (2, 'p2')");
	test_exec(e.conn, "INSERT INTO kids (id, parent_id, name, score, flag, memo) VALUES "
		  "(1, 1, 'k1', 5, 1 = 1, 'm'), (2, 2, 'k2', 6, 1 = 0, NULL)");
	before = schema_text(&e);
	phase_ok(&e, PHASE_EXPAND, 2);
	phase_ok(&e, PHASE_MIGRATE, 2);
	strbuf_reset(&e.events);
	rc = machine_downgrade(&e.st, &e.repo, &e.plan, 1, &e.o, &e.err);
	cr_assert_eq(rc, 0, "[%s] %s\n%s", bname(&e), e.err.message, e.events.buf);
	cr_assert(strstr(e.events.buf, "warning") == NULL, "[%s] %s", bname(&e), e.events.buf);
	after = schema_text(&e);
	cr_assert_str_eq(after, before, "[%s] the schema differs after downgrade:\n--- before\n%s"
			 "--- after\n%s", bname(&e), before, after);
	assert_row(&e, "1/1/1");
	/* Old code still writes, and the way up is open again. */
	test_exec(e.conn, "INSERT INTO kids (id, parent_id, name, score, flag) VALUES "
		  "(3, 1, 'k3', 7, 1 = 1)");
	all_phases(&e, 2);
	free(after);
	after = test_query_value(e.conn, "SELECT full_name FROM kids WHERE id = 3");
	cr_assert_str_eq(after, "k3");
	free(after);
	free(before);
	env_close(&e);
}

/*
 * Inverses the catalog gives (a changed default, a dropped NOT NULL) and
 * one the author gives (an sql operation's 'undo'): downgrade takes all
 * three back and the schema is what it was.
 */
BACKEND_TEST(state, downgrade_puts_defaults_not_null_and_author_sql_back)
{
	static const char v2[] =
		"description: a default, a nullable name, and the author's own SQL\n"
		"operations:\n"
		"  - set_default: {table: kids, column: score, default: 3}\n"
		"  - drop_not_null: {table: kids, column: name}\n"
		"  - sql:\n"
		"      phase: expand\n"
		"      all: \"INSERT INTO parents (id, code) VALUES (99, 'added')\"\n"
		"      undo: \"DELETE FROM parents WHERE id = 99\"\n";
	const char *const v[] = { every_v1, v2 };
	struct env e;
	char *before, *during, *after, *n;

	env_open(&e, *backend, v, 2);
	all_phases(&e, 1);
	before = schema_text(&e);
	phase_ok(&e, PHASE_EXPAND, 2);
	during = schema_text(&e);
	cr_assert_str_neq(before, during, "[%s] expand changed nothing", bname(&e));
	n = test_query_value(e.conn, "SELECT count(*) FROM parents WHERE id = 99");
	cr_assert_str_eq(n, "1");
	free(n);
	cr_assert_eq(machine_downgrade(&e.st, &e.repo, &e.plan, 1, &e.o, &e.err), 0,
		     "[%s] %s", bname(&e), e.err.message);
	assert_row(&e, "1/1/1");
	after = schema_text(&e);
	cr_assert_str_eq(after, before, "[%s] the schema after downgrade differs:\n%s\nbefore:\n%s",
			 bname(&e), after, before);
	n = test_query_value(e.conn, "SELECT count(*) FROM parents WHERE id = 99");
	cr_assert_str_eq(n, "0", "[%s] the author's undo did not run", bname(&e));
	free(n);
	/* And the way up works again. */
	phase_ok(&e, PHASE_EXPAND, 2);
	free(before);
	free(during);
	free(after);
	env_close(&e);
}

/*
 * A rename of a NOT NULL column with a default (its default moves to the
 * triggers in expand) and a drop of a NOT NULL column (relaxed in expand):
 * downgrade puts both back as they were.
 */
BACKEND_TEST(state, downgrade_puts_a_renamed_default_and_a_relaxed_column_back)
{
	static const char v2[] =
		"description: rename a defaulted column, drop a required one\n"
		"operations:\n"
		"  - rename_column: {table: kids, from: score, to: points}\n"
		"  - drop_column: {table: kids, column: name}\n";
	const char *const v[] = { every_v1, v2 };
	struct env e;
	char *before, *after;

	env_open(&e, *backend, v, 2);
	all_phases(&e, 1);
	before = schema_text(&e);
	phase_ok(&e, PHASE_EXPAND, 2);
	cr_assert_eq(machine_downgrade(&e.st, &e.repo, &e.plan, 1, &e.o, &e.err), 0,
		     "[%s] %s", bname(&e), e.err.message);
	assert_row(&e, "1/1/1");
	after = schema_text(&e);
	cr_assert_str_eq(after, before, "[%s] the schema after downgrade differs:\n%s\nbefore:\n%s",
			 bname(&e), after, before);
	phase_ok(&e, PHASE_EXPAND, 2);
	free(before);
	free(after);
	env_close(&e);
}

/* ---- reading statements -------------------------------------------------------- */

static void
check_effect(const char *sql, enum effect_kind kind, const char *table, const char *name,
	     const char *undo_pg, const char *undo_my, const char *undo_lite)
{
	struct effect e;
	const char *want[3] = { undo_lite, undo_pg, undo_my };
	enum db_backend b[3] = { DB_BACKEND_SQLITE, DB_BACKEND_POSTGRESQL, DB_BACKEND_MYSQL };
	int i;

	effect_parse(sql, &e);
	cr_assert_eq(e.kind, kind, "%s: kind %d, want %d", sql, e.kind, kind);
	if (table)
		cr_assert_str_eq(e.table, table, "%s", sql);
	if (name)
		cr_assert_str_eq(e.name, name, "%s", sql);
	for (i = 0; i < 3; i++) {
		struct strbuf sb[EFFECT_UNDO_MAX] = { STRBUF_INIT, STRBUF_INIT };
		size_t n = effect_undo_sql(&e, b[i], sb), k;

		if (want[i] == NULL)
			cr_assert_eq(n, 0, "%s: %s inverse '%s'", sql, db_backend_name(b[i]), sb[0].buf);
		else if (n > 1)
			strbuf_addf(&sb[0], "; %s", sb[1].buf);
		if (want[i])
			cr_assert_str_eq(sb[0].buf, want[i], "%s on %s", sql, db_backend_name(b[i]));
		for (k = 0; k < EFFECT_UNDO_MAX; k++)
			strbuf_release(&sb[k]);
	}
	effect_release(&e);
}

Test(effect, creates_and_their_inverses)
{
	check_effect("CREATE TABLE \"items\" (\"id\" bigint PRIMARY KEY)", EFFECT_TABLE, NULL,
		     "items", "DROP TABLE IF EXISTS \"items\"", "DROP TABLE IF EXISTS `items`",
		     "DROP TABLE IF EXISTS \"items\"");
	check_effect("ALTER TABLE `t` ADD COLUMN `c d` varchar(10) DEFAULT 'a, b', LOCK=NONE",
		     EFFECT_COLUMN, "t", "c d", "ALTER TABLE \"t\" DROP COLUMN IF EXISTS \"c d\"",
		     "ALTER TABLE `t` DROP COLUMN IF EXISTS `c d`",
		     "ALTER TABLE \"t\" DROP COLUMN \"c d\"");
	check_effect("CREATE UNIQUE INDEX CONCURRENTLY \"ix\" ON \"t\" (\"a\", \"b\")",
		     EFFECT_INDEX, "t", "ix", "DROP INDEX CONCURRENTLY IF EXISTS \"ix\"",
		     "DROP INDEX IF EXISTS `ix` ON `t`", "DROP INDEX IF EXISTS \"ix\"");
	check_effect("CREATE INDEX IF NOT EXISTS `ix` ON `t` (`a`) ALGORITHM=INPLACE LOCK=NONE",
		     EFFECT_INDEX, "t", "ix", "DROP INDEX CONCURRENTLY IF EXISTS \"ix\"",
		     "DROP INDEX IF EXISTS `ix` ON `t`", "DROP INDEX IF EXISTS \"ix\"");
	check_effect("CREATE TRIGGER \"tr\" BEFORE INSERT OR UPDATE ON \"t\" FOR EACH ROW "
		     "EXECUTE FUNCTION \"f\"()", EFFECT_TRIGGER, "t", "tr",
		     "DROP TRIGGER IF EXISTS \"tr\" ON \"t\"", "DROP TRIGGER IF EXISTS `tr`",
		     "DROP TRIGGER IF EXISTS \"tr\"");
	check_effect("CREATE TRIGGER \"tr\" AFTER UPDATE OF \"a\" ON \"t\" FOR EACH ROW WHEN "
		     "NEW.\"a\" IS NOT OLD.\"a\" BEGIN UPDATE \"t\" SET \"b\" = 1; END",
		     EFFECT_TRIGGER, "t", "tr", "DROP TRIGGER IF EXISTS \"tr\" ON \"t\"",
		     "DROP TRIGGER IF EXISTS `tr`", "DROP TRIGGER IF EXISTS \"tr\"");
	check_effect("CREATE OR REPLACE FUNCTION \"f\"() RETURNS trigger LANGUAGE plpgsql AS "
		     "$dbphase$ BEGIN RETURN NEW; END $dbphase$", EFFECT_FUNCTION, NULL, "f",
		     "DROP FUNCTION IF EXISTS \"f\"()", "DROP FUNCTION IF EXISTS `f`", NULL);
	check_effect("ALTER TABLE \"t\" ADD CONSTRAINT \"fk\" FOREIGN KEY (\"a\") REFERENCES "
		     "\"u\" (\"id\") NOT VALID", EFFECT_FOREIGN_KEY, "t", "fk",
		     "ALTER TABLE \"t\" DROP CONSTRAINT IF EXISTS \"fk\"",
		     "ALTER TABLE `t` DROP FOREIGN KEY IF EXISTS `fk`; DROP INDEX IF EXISTS `fk` ON `t`",
		     NULL);
	check_effect("ALTER TABLE `t` ADD CONSTRAINT `uq` UNIQUE (`a`), ALGORITHM=INPLACE, "
		     "LOCK=NONE", EFFECT_CONSTRAINT, "t", "uq",
		     "ALTER TABLE \"t\" DROP CONSTRAINT IF EXISTS \"uq\"",
		     "DROP INDEX IF EXISTS `uq` ON `t`", NULL);
	check_effect("CREATE ALGORITHM=MERGE VIEW `v` AS SELECT * FROM `t`", EFFECT_VIEW, NULL,
		     "v", "DROP VIEW IF EXISTS \"v\"", "DROP VIEW IF EXISTS `v`",
		     "DROP VIEW IF EXISTS \"v\"");
	check_effect("ALTER TABLE \"t\" ALTER COLUMN \"c\" DROP NOT NULL", EFFECT_DROP_NOT_NULL,
		     "t", "c", "ALTER TABLE \"t\" ALTER COLUMN \"c\" SET NOT NULL", NULL, NULL);
}

Test(effect, preparation_and_unknown_statements)
{
	static const char *const none[] = {
		"DROP TRIGGER IF EXISTS \"x\" ON \"t\"",
		"DROP INDEX CONCURRENTLY IF EXISTS \"ix\"",
		"ALTER TABLE \"t\" DROP CONSTRAINT IF EXISTS \"c\"",
		"ALTER TABLE \"t\" VALIDATE CONSTRAINT \"c\"",
		"SET SESSION foreign_key_checks = 0",
		"  -- a comment\n  DROP TABLE IF EXISTS x;",
		"CREATE TEMP TABLE \"chk\" (n INTEGER CHECK (n = 0))",
		"DROP TABLE temp.\"chk\"",
	};
	static const char *const unknown[] = {
		"INSERT INTO counter (who) VALUES ('x')",
		"UPDATE t SET a = 1",
		"ALTER TABLE `t` MODIFY COLUMN `c` bigint NOT NULL, LOCK=NONE",
		"ALTER TABLE \"t\" ALTER COLUMN \"c\" SET DEFAULT 5",
		"ALTER TABLE `t` ADD COLUMN `a` int, ADD COLUMN `b` int",
		"DROP TABLE t",
		"CREATE INDEX ON t (a)",
		"CREATE TABLE s.t (a int)",
		"SELECT 1",
		"",
	};
	size_t i;
	struct effect e;

	for (i = 0; i < sizeof(none) / sizeof(none[0]); i++) {
		effect_parse(none[i], &e);
		cr_assert_eq(e.kind, EFFECT_NONE, "'%s': kind %d", none[i], e.kind);
		effect_release(&e);
	}
	for (i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
		effect_parse(unknown[i], &e);
		cr_assert_eq(e.kind, EFFECT_UNKNOWN, "'%s': kind %d", unknown[i], e.kind);
		effect_release(&e);
	}
}

/* A contract statement read for downgrade --allow-data-loss: kind, drop, table, name. */
static void
check_contract(const char *sql, enum effect_kind kind, bool drop, const char *table,
	       const char *name)
{
	struct effect e;

	effect_parse_contract(sql, &e);
	cr_assert_eq(e.kind, kind, "%s: kind %d, want %d", sql, e.kind, kind);
	cr_assert_eq(e.drop, drop, "%s: drop %d", sql, e.drop);
	if (table)
		cr_assert_str_eq(e.table, table, "%s", sql);
	else
		cr_assert_null(e.table, "%s: table %s", sql, e.table);
	if (name)
		cr_assert_str_eq(e.name, name, "%s", sql);
	else
		cr_assert_null(e.name, "%s: name %s", sql, e.name);
	effect_release(&e);
}

/*
 * Statements are read through the one SQL lexer: comments and quoted names
 * anywhere, MariaDB's backslash escapes and # comments, and PostgreSQL's
 * $tag$ strings are each taken whole, so a comma, parenthesis or quote in
 * them is not read as part of the statement.
 */
Test(effect, statements_are_read_with_each_dialect_s_quoting)
{
	check_effect("ALTER TABLE /* , DROP */ \"t\" -- (\n ADD COLUMN \"a\"\"b\" int", EFFECT_COLUMN,
		     "t", "a\"b", "ALTER TABLE \"t\" DROP COLUMN IF EXISTS \"a\"\"b\"",
		     "ALTER TABLE `t` DROP COLUMN IF EXISTS `a\"b`", "ALTER TABLE \"t\" DROP COLUMN \"a\"\"b\"");
	check_effect("ALTER TABLE `t` ADD COLUMN `c` varchar(9) DEFAULT 'it\\', x', LOCK=NONE",
		     EFFECT_COLUMN, "t", "c", "ALTER TABLE \"t\" DROP COLUMN IF EXISTS \"c\"",
		     "ALTER TABLE `t` DROP COLUMN IF EXISTS `c`", "ALTER TABLE \"t\" DROP COLUMN \"c\"");
	check_effect("ALTER TABLE `t` ADD COLUMN `c` int # , ADD COLUMN `d` int\n, LOCK=NONE",
		     EFFECT_COLUMN, "t", "c", "ALTER TABLE \"t\" DROP COLUMN IF EXISTS \"c\"",
		     "ALTER TABLE `t` DROP COLUMN IF EXISTS `c`", "ALTER TABLE \"t\" DROP COLUMN \"c\"");
	check_effect("ALTER TABLE \"t\" ADD COLUMN \"c\" text DEFAULT $d$a, (b$d$", EFFECT_COLUMN,
		     "t", "c", "ALTER TABLE \"t\" DROP COLUMN IF EXISTS \"c\"",
		     "ALTER TABLE `t` DROP COLUMN IF EXISTS `c`", "ALTER TABLE \"t\" DROP COLUMN \"c\"");
	check_effect("CREATE FUNCTION \"f\"(\"a\" text DEFAULT ')') RETURNS int AS $$ SELECT 1 $$",
		     EFFECT_FUNCTION, NULL, "f", "DROP FUNCTION IF EXISTS \"f\"(\"a\" text DEFAULT ')')",
		     "DROP FUNCTION IF EXISTS `f`", NULL);
	/* A DO block is one token after DO: nothing in it is read as a statement. */
	check_contract("DO $x$ BEGIN ALTER TABLE t DROP COLUMN c; END $x$", EFFECT_UNKNOWN, false,
		       NULL, NULL);
	check_contract("DROP TABLE \"gone\" /* ; */ -- ;", EFFECT_TABLE, true, NULL, "gone");
}

Test(effect, contract_statements_name_what_they_drop_or_change)
{
	struct strbuf sb[EFFECT_UNDO_MAX] = { STRBUF_INIT, STRBUF_INIT };
	struct effect e;

	check_contract("DROP TRIGGER IF EXISTS \"tr\" ON \"t\"", EFFECT_TRIGGER, true, "t", "tr");
	check_contract("DROP TRIGGER IF EXISTS `tr`", EFFECT_TRIGGER, true, NULL, "tr");
	check_contract("DROP FUNCTION IF EXISTS \"f\"()", EFFECT_FUNCTION, true, NULL, "f");
	check_contract("DROP INDEX CONCURRENTLY IF EXISTS \"ix\"", EFFECT_INDEX, true, NULL, "ix");
	check_contract("DROP INDEX IF EXISTS `ix` ON `t`", EFFECT_INDEX, true, "t", "ix");
	check_contract("DROP TABLE \"gone\"", EFFECT_TABLE, true, NULL, "gone");
	check_contract("DROP VIEW `v`", EFFECT_VIEW, true, NULL, "v");
	check_contract("ALTER TABLE \"t\" DROP COLUMN \"c\"", EFFECT_COLUMN, true, "t", "c");
	check_contract("ALTER TABLE `t` DROP COLUMN IF EXISTS `c`, LOCK=NONE", EFFECT_COLUMN, true,
		       "t", "c");
	check_contract("ALTER TABLE \"t\" DROP CONSTRAINT IF EXISTS \"ck\"", EFFECT_CONSTRAINT,
		       true, "t", "ck");
	check_contract("ALTER TABLE `t` DROP FOREIGN KEY IF EXISTS `fk`", EFFECT_FOREIGN_KEY,
		       true, "t", "fk");
	check_contract("BEGIN NOT ATOMIC IF EXISTS (SELECT 1 FROM information_schema.COLUMNS "
		       "WHERE TABLE_NAME = 't' AND COLUMN_NAME = 'c') THEN ALTER TABLE `t` DROP "
		       "COLUMN `c`, LOCK=NONE; END IF; END", EFFECT_COLUMN, true, "t", "c");
	/* Other changes: of a column, or of the table when the reader is unsure. */
	check_contract("ALTER TABLE \"t\" ALTER COLUMN \"c\" SET NOT NULL", EFFECT_ALTER, false,
		       "t", "c");
	check_contract("ALTER TABLE `t` MODIFY COLUMN `c` bigint NOT NULL, LOCK=NONE",
		       EFFECT_ALTER, false, "t", "c");
	check_contract("ALTER TABLE `t` DROP COLUMN `a`, CHANGE COLUMN `b` `a` bigint, "
		       "ALGORITHM=NOCOPY", EFFECT_ALTER, false, "t", NULL);
	/* Creations read as in expand; what lasts nothing; what dbphase will not read. */
	check_contract("CREATE INDEX \"ix\" ON \"t\" (\"a\")", EFFECT_INDEX, false, "t", "ix");
	check_contract("ALTER TABLE \"t\" ALTER COLUMN \"c\" DROP NOT NULL", EFFECT_DROP_NOT_NULL,
		       false, "t", "c");
	check_contract("ALTER TABLE \"t\" VALIDATE CONSTRAINT \"ck\"", EFFECT_NONE, false, NULL,
		       NULL);
	check_contract("LOCK TABLES `t` WRITE", EFFECT_NONE, false, NULL, NULL);
	check_contract("UNLOCK TABLES", EFFECT_NONE, false, NULL, NULL);
	check_contract("ALTER TABLE \"t\" RENAME TO \"u\"", EFFECT_UNKNOWN, false, NULL, NULL);
	check_contract("RENAME TABLE `t` TO `u`", EFFECT_UNKNOWN, false, NULL, NULL);
	check_contract("DO $dbphase$ BEGIN NULL; END $dbphase$", EFFECT_UNKNOWN, false, NULL,
		       NULL);
	check_contract("BEGIN NOT ATOMIC IF EXISTS (SELECT 1) THEN ALTER TABLE `t` DROP COLUMN "
		       "`c`; DROP TABLE `u`; END IF; END", EFFECT_UNKNOWN, false, NULL, NULL);
	/* A drop has no inverse; a renamed index gets its name back on PostgreSQL. */
	effect_parse_contract("ALTER TABLE \"t\" DROP COLUMN \"c\"", &e);
	cr_assert_eq(effect_undo_sql(&e, DB_BACKEND_POSTGRESQL, sb), 0);
	effect_release(&e);
	effect_parse_contract("ALTER INDEX \"ix_new\" RENAME TO \"ix\"", &e);
	cr_assert_eq(e.kind, EFFECT_INDEX_RENAME);
	cr_assert_eq(effect_undo_sql(&e, DB_BACKEND_POSTGRESQL, sb), 1);
	cr_assert_str_eq(sb[0].buf, "ALTER INDEX IF EXISTS \"ix\" RENAME TO \"ix_new\"");
	effect_release(&e);
	strbuf_release(&sb[0]);
	strbuf_release(&sb[1]);
}

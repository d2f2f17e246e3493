/*
 * tests/rolling/rolling.c - the zero-downtime proof: two versions of an
 * application run side by side while dbphase upgrades the schema under
 * them, on a real server, and not one client statement may fail.
 *
 * "v1" clients read and write accounts through the old shape (name,
 * score integer, fullname, legacy); "v2" clients through the new one
 * (display_name, score bigint, email_lower, first_name + last_name, an
 * audit_log table).  Each client is a thread with its own connection,
 * issuing inserts, updates and reads at a steady rate, registered as a
 * dbphase node with the schema version it needs.  The scenario follows a
 * rolling upgrade:
 *
 *   v1 schema, ROWS rows; v1 clients start
 *   db_sync --expand 2; db_sync --migrate 2; v2 clients start beside v1
 *   db_sync --contract 2 while a v1 node is live  -> must exit 5
 *   v1 clients stop and retire; db_sync --contract 2 -> must exit 0
 *   a v1 node registering again -> must exit 5 (its schema is gone)
 *   v2 clients keep running (now with scores beyond 32 bits)
 *
 * Every node command's exit status is checked (register, heartbeat and
 * retire 0; the late v1 registration 5).
 *
 * Every row a client writes is recorded in a ledger with the values its
 * writer meant.  Clients of each version read rows the other version wrote
 * and check them through their own shape, and both directions must have
 * happened: old code reading what new code wrote, and new code reading
 * what old code wrote.  At the end every ledger row is
 * compared with the table (by a checksum over the whole ledger and row by
 * row on a mismatch).  Statement latencies are kept per phase and printed.
 *
 * usage: rolling --backend postgresql|mysql|sqlite [--rows N] [--seconds S]
 *        (servers from DBPHASE_TEST_PG_URL / DBPHASE_TEST_MYSQL_URL)
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/strbuf.h"
#include "core/xmalloc.h"
#include "drivers/driver.h"

enum window {
	WIN_BEFORE,		/* v1 only, before expand */
	WIN_EXPAND,		/* during db_sync --expand */
	WIN_MIGRATE,		/* during db_sync --migrate */
	WIN_ROLLING,		/* v1 and v2 side by side */
	WIN_CONTRACT,		/* during db_sync --contract (v2 only) */
	WIN_AFTER,		/* v2 only, new schema */
	WIN__COUNT,
};

static const char *const window_names[WIN__COUNT] = {
	"before", "expand", "migrate", "rolling", "contract", "after",
};

#define MAX_LAT 200000		/* samples per client per window kept */

/* What a row's writer meant, in the v2 vocabulary (v1's name is display_name). */
struct ledger_row {
	int64_t id;
	char name[48];
	char email[64];
	int64_t score;
	char first[24];
	char last[24];
	int writer;		/* 1 or 2 */
	atomic_int busy;	/* being written: readers skip it */
	atomic_uint seq;
};

struct ledger {
	pthread_mutex_t lock;
	struct ledger_row **rows;
	size_t n;
	size_t alloc;
};

struct client {
	pthread_t thread;
	int version;		/* 1 or 2 */
	int index;
	char node[32];
	struct db_conn *conn;
	atomic_bool stop;
	unsigned seed;
	/* Rows this client owns (inserted); only it updates them. */
	size_t *owned;
	size_t n_owned;
	size_t alloc_owned;
	/* Results. */
	uint64_t statements;
	uint64_t errors;
	uint64_t cross_checks;
	double *lat[WIN__COUNT];
	size_t n_lat[WIN__COUNT];
	char first_error[512];
};

static struct {
	enum db_backend backend;
	const char *server_url;
	char *url;
	char *dbname;
	char *dir;
	char *repo;
	long rows;
	int seconds;
	atomic_int window;
	struct ledger ledger;
	pthread_mutex_t sqlite_writer;	/* SQLite: one writer at a time */
	FILE *log;
	int node_commands;		/* dbphase node ... run */
	int node_failures;		/* ... that exited otherwise than expected */
	char first_node_failure[160];
} g;

static void
die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "rolling: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(1);
}

static double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static void
sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static struct db_conn *
connect_or_die(const char *url)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct db_url u;
	struct db_conn *c = NULL;

	if (db_url_parse(url, &u, &err) < 0 || db_connect(&u, &c, &err) < 0)
		die("cannot connect: %s", err.message);
	db_url_release(&u);
	return c;
}

static void
exec_or_die(struct db_conn *c, const char *sql)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;

	if (db_exec(c, sql, &err) < 0)
		die("%s\n  failed: %s", sql, err.message);
}

/* ---- dbphase as a child process ---------------------------------------------- */

/* Run dbphase on the test database with the given arguments (NULL-terminated). */
static int
dbphase(const char *first, ...)
{
	const char *bin = getenv("DBPHASE_BIN");
	const char *argv[32] = { bin ? bin : "dbphase", "--database", g.url, "--repository",
				 g.repo, "--node-ttl", "5", first };
	size_t n = 8;
	va_list ap;
	pid_t pid;
	int status;

	va_start(ap, first);
	while (n < 31 && (argv[n] = va_arg(ap, const char *)) != NULL)
		n++;
	va_end(ap);
	argv[n] = NULL;
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		dup2(fileno(g.log), 1);
		dup2(fileno(g.log), 2);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/*
 * dbphase node SUB --name NAME [--schema-version VERSION], which must exit
 * with want; a failure is counted (and the first one kept) for the report.
 */
static void
node(int want, const char *sub, const char *name, const char *version)
{
	int code = version ? dbphase("node", sub, "--name", name, "--schema-version", version,
				     NULL) :
			     dbphase("node", sub, "--name", name, NULL);

	g.node_commands++;
	if (code == want)
		return;
	if (g.node_failures++ == 0)
		snprintf(g.first_node_failure, sizeof(g.first_node_failure),
			 "node %s --name %s%s%s exited %d, not %d", sub, name,
			 version ? " --schema-version " : "", version ? version : "", code, want);
}

/* ---- the ledger ------------------------------------------------------------------ */

/* A new ledger row, marked busy; *index gets its place in the ledger. */
static struct ledger_row *
ledger_add(int writer, size_t *index)
{
	struct ledger_row *r = XNEW(struct ledger_row);

	r->writer = writer;
	atomic_store(&r->busy, 1);
	pthread_mutex_lock(&g.ledger.lock);
	XGROW(g.ledger.rows, g.ledger.n, g.ledger.alloc);
	*index = g.ledger.n++;
	g.ledger.rows[*index] = r;
	pthread_mutex_unlock(&g.ledger.lock);
	return r;
}

/* A random settled row written by the other version, or NULL. */
static struct ledger_row *
ledger_pick_other(struct client *c)
{
	struct ledger_row *r = NULL;
	size_t n;

	pthread_mutex_lock(&g.ledger.lock);
	n = g.ledger.n;
	if (n > 0) {
		r = g.ledger.rows[(size_t)rand_r(&c->seed) % n];
		if (r->writer == c->version || atomic_load(&r->busy) || r->id == 0)
			r = NULL;
	}
	pthread_mutex_unlock(&g.ledger.lock);
	return r;
}

/* ---- client statements ------------------------------------------------------------- */

static void
record_latency(struct client *c, double ms)
{
	int w = atomic_load(&g.window);

	if (c->n_lat[w] < MAX_LAT)
		c->lat[w][c->n_lat[w]++] = ms;
}

static void
client_error(struct client *c, const char *what, const struct dbphase_error *err)
{
	c->errors++;
	if (c->first_error[0] == '\0')
		snprintf(c->first_error, sizeof(c->first_error), "v%d client %d in %s: %s: %s",
			 c->version, c->index, window_names[atomic_load(&g.window)], what,
			 err && err->message ? err->message : "wrong result");
	fprintf(stderr, "rolling: ERROR v%d client %d during %s: %s: %s\n", c->version, c->index,
		window_names[atomic_load(&g.window)], what,
		err && err->message ? err->message : "wrong result");
}

/* Run one statement, timing it; false (and an error counted) if it fails. */
static bool
run(struct client *c, const char *what, const char *sql, const struct db_param *p, size_t n,
    struct db_result **res)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	double t0 = now_ms();
	int rc;

	if (g.backend == DB_BACKEND_SQLITE)
		pthread_mutex_lock(&g.sqlite_writer);
	rc = db_query(c->conn, sql, p, n, res, &err);
	if (g.backend == DB_BACKEND_SQLITE)
		pthread_mutex_unlock(&g.sqlite_writer);
	record_latency(c, now_ms() - t0);
	c->statements++;
	if (rc < 0) {
		client_error(c, what, &err);
		err_release(&err);
		return false;
	}
	return true;
}

/*
 * New values for a row; the email only for a new row, since updates never
 * write it (email_lower must follow it all the same).
 */
static void
make_values(struct client *c, struct ledger_row *r, bool big_score, bool new_row)
{
	int a = rand_r(&c->seed) % 100000, b = rand_r(&c->seed) % 100000;

	snprintf(r->first, sizeof(r->first), "F%d", a);
	snprintf(r->last, sizeof(r->last), "L%d", b);
	snprintf(r->name, sizeof(r->name), "N%d-%d-%u", c->version, c->index, rand_r(&c->seed));
	if (new_row)
		snprintf(r->email, sizeof(r->email), "User.%d.%u@Example.COM", c->index,
			 rand_r(&c->seed));
	r->score = big_score ? 5000000000LL + rand_r(&c->seed) % 1000 : rand_r(&c->seed) % 100000;
}

static void
lower_copy(char *dst, const char *src, size_t n)
{
	size_t i;

	for (i = 0; i + 1 < n && src[i]; i++)
		dst[i] = (char)(src[i] >= 'A' && src[i] <= 'Z' ? src[i] - 'A' + 'a' : src[i]);
	dst[i] = '\0';
}

/* Insert a row through this client's shape; the ledger gets its id. */
static void
client_insert(struct client *c)
{
	size_t index;
	struct ledger_row *r = ledger_add(c->version, &index);
	struct db_result *res = NULL;
	char fullname[64], lower[64], score[32];
	bool big = c->version == 2 && atomic_load(&g.window) == WIN_AFTER;
	bool ok;

	make_values(c, r, big, true);
	snprintf(fullname, sizeof(fullname), "%s %s", r->first, r->last);
	snprintf(score, sizeof(score), "%lld", (long long)r->score);
	lower_copy(lower, r->email, sizeof(lower));
	if (c->version == 1) {
		struct db_param p[5] = { DB_TEXT(r->name), DB_TEXT(r->email), DB_TEXT(score),
					 DB_TEXT(fullname), DB_TEXT("legacy") };

		ok = run(c, "v1 insert", "INSERT INTO accounts (name, email, score, fullname, legacy) "
			 "VALUES ($1, $2, $3, $4, $5)", p, 5, NULL);
	} else {
		struct db_param p[6] = { DB_TEXT(r->name), DB_TEXT(r->email), DB_TEXT(lower),
					 DB_TEXT(score), DB_TEXT(r->first), DB_TEXT(r->last) };

		ok = run(c, "v2 insert", "INSERT INTO accounts (display_name, email, email_lower, "
			 "score, first_name, last_name) VALUES ($1, $2, $3, $4, $5, $6)", p, 6, NULL);
		if (ok) {
			struct db_param a[2] = { DB_TEXT(r->name), DB_TEXT("insert") };

			ok = run(c, "v2 audit insert", "INSERT INTO audit_log (account_name, action) "
				 "VALUES ($1, $2)", a, 2, NULL);
		}
	}
	if (ok) {
		struct db_param p = DB_TEXT(r->name);

		/* Names are unique per writer: find the id the row got. */
		ok = run(c, "find inserted id", c->version == 1 ?
			 "SELECT id FROM accounts WHERE name = $1" :
			 "SELECT id FROM accounts WHERE display_name = $1", &p, 1, &res);
		if (ok && res->n_rows == 1)
			r->id = strtoll(db_result_value(res, 0, 0), NULL, 10);
		else if (ok)
			client_error(c, "inserted row not found", NULL);
		db_result_free(res);
	}
	if (r->id) {
		XGROW(c->owned, c->n_owned, c->alloc_owned);
		c->owned[c->n_owned++] = index;
	}
	atomic_fetch_add(&r->seq, 1);
	atomic_store(&r->busy, 0);
}

static void
client_update(struct client *c)
{
	struct ledger_row *r;
	char fullname[64], score[32], id[32];
	size_t k;
	bool big = c->version == 2 && atomic_load(&g.window) == WIN_AFTER;

	if (c->n_owned == 0)
		return;
	k = c->owned[(size_t)rand_r(&c->seed) % c->n_owned];
	pthread_mutex_lock(&g.ledger.lock);
	r = g.ledger.rows[k];
	pthread_mutex_unlock(&g.ledger.lock);
	atomic_store(&r->busy, 1);
	make_values(c, r, big, false);
	snprintf(fullname, sizeof(fullname), "%s %s", r->first, r->last);
	snprintf(score, sizeof(score), "%lld", (long long)r->score);
	snprintf(id, sizeof(id), "%lld", (long long)r->id);
	if (c->version == 1) {
		struct db_param p[4] = { DB_TEXT(r->name), DB_TEXT(score), DB_TEXT(fullname),
					 DB_TEXT(id) };

		run(c, "v1 update", "UPDATE accounts SET name = $1, score = $2, fullname = $3 "
		    "WHERE id = $4", p, 4, NULL);
	} else {
		struct db_param p[5] = { DB_TEXT(r->name), DB_TEXT(score), DB_TEXT(r->first),
					 DB_TEXT(r->last), DB_TEXT(id) };

		run(c, "v2 update", "UPDATE accounts SET display_name = $1, score = $2, "
		    "first_name = $3, last_name = $4 WHERE id = $5", p, 5, NULL);
	}
	/* The email does not change, so email_lower must not either. */
	atomic_fetch_add(&r->seq, 1);
	atomic_store(&r->busy, 0);
}

/* Read a row the other version wrote, through this version's shape. */
static void
client_cross_read(struct client *c)
{
	struct ledger_row *r = ledger_pick_other(c);
	struct db_result *res = NULL;
	struct ledger_row snap;
	unsigned seq;
	char id[32], want_full[64], want_lower[64], score[32];

	if (r == NULL)
		return;
	seq = atomic_load(&r->seq);
	memcpy(&snap, r, sizeof(snap));
	snprintf(id, sizeof(id), "%lld", (long long)snap.id);
	{
		struct db_param p = DB_TEXT(id);

		if (!run(c, "cross read", c->version == 1 ?
			 "SELECT name, score, fullname FROM accounts WHERE id = $1" :
			 "SELECT display_name, score, first_name, last_name, email_lower "
			 "FROM accounts WHERE id = $1", &p, 1, &res))
			return;
	}
	/* Changed meanwhile: nothing to conclude. */
	if (atomic_load(&r->busy) || atomic_load(&r->seq) != seq || res->n_rows != 1) {
		db_result_free(res);
		return;
	}
	snprintf(want_full, sizeof(want_full), "%s %s", snap.first, snap.last);
	snprintf(score, sizeof(score), "%lld", (long long)snap.score);
	lower_copy(want_lower, snap.email, sizeof(want_lower));
#define SAME(col, want) (db_result_value(res, 0, col) && strcmp(db_result_value(res, 0, col), want) == 0)
	if (c->version == 1 ? !(SAME(0, snap.name) && SAME(1, score) && SAME(2, want_full)) :
			      !(SAME(0, snap.name) && SAME(1, score) && SAME(2, snap.first) &&
				SAME(3, snap.last) && SAME(4, want_lower))) {
		struct dbphase_error e = DBPHASE_ERROR_INIT;

		err_setf(&e, DBPHASE_EERROR,
			 "row %s written by v%d reads back through v%d's shape as "
			 "(%s, %s, %s%s%s) instead of (%s, %s, %s)", id, snap.writer, c->version,
			 db_result_value(res, 0, 0) ? db_result_value(res, 0, 0) : "NULL",
			 db_result_value(res, 0, 1) ? db_result_value(res, 0, 1) : "NULL",
			 db_result_value(res, 0, 2) ? db_result_value(res, 0, 2) : "NULL",
			 c->version == 2 ? " " : "",
			 c->version == 2 && db_result_value(res, 0, 3) ? db_result_value(res, 0, 3) : "",
			 snap.name, score, want_full);
		client_error(c, "cross-version read", &e);
		err_release(&e);
	}
#undef SAME
	c->cross_checks++;
	db_result_free(res);
}

static void *
client_main(void *arg)
{
	struct client *c = arg;
	int i;

	for (i = 0; i < WIN__COUNT; i++)
		c->lat[i] = xcalloc(MAX_LAT, sizeof(double));
	c->conn = connect_or_die(g.url);
	while (!atomic_load(&c->stop)) {
		int dice = rand_r(&c->seed) % 10;

		if (dice < 3)
			client_insert(c);
		else if (dice < 6)
			client_update(c);
		else
			client_cross_read(c);
		sleep_ms(2 + rand_r(&c->seed) % 4);
	}
	db_close(c->conn);
	return NULL;
}

static void
client_start(struct client *c, int version, int index)
{
	char schema[8];

	c->version = version;
	c->index = index;
	c->seed = (unsigned)(version * 1000 + index) ^ (unsigned)time(NULL);
	snprintf(c->node, sizeof(c->node), "app-v%d-%d", version, index);
	snprintf(schema, sizeof(schema), "%d", version);
	node(0, "register", c->node, schema);
	if (pthread_create(&c->thread, NULL, client_main, c) != 0)
		die("pthread_create failed");
}

static void
client_stop(struct client *c)
{
	atomic_store(&c->stop, true);
	pthread_join(c->thread, NULL);
}

/* ---- the database and the repository ------------------------------------------------- */

static const char *
split_first(void)
{
	switch (g.backend) {
	case DB_BACKEND_POSTGRESQL:
		return "split_part(fullname, ' ', 1)";
	case DB_BACKEND_MYSQL:
		return "SUBSTRING_INDEX(fullname, ' ', 1)";
	default:
		return "substr(fullname, 1, instr(fullname, ' ') - 1)";
	}
}

static const char *
split_last(void)
{
	switch (g.backend) {
	case DB_BACKEND_POSTGRESQL:
		return "split_part(fullname, ' ', 2)";
	case DB_BACKEND_MYSQL:
		return "SUBSTRING_INDEX(fullname, ' ', -1)";
	default:
		return "substr(fullname, instr(fullname, ' ') + 1)";
	}
}

static const char *
join_names(void)
{
	return g.backend == DB_BACKEND_MYSQL ? "CONCAT(first_name, ' ', last_name)"
					     : "first_name || ' ' || last_name";
}

static void
write_file(const char *rel, const char *text)
{
	char *path = xasprintf("%s/%s", g.repo, rel);
	FILE *f = fopen(path, "w");

	if (f == NULL)
		die("cannot write %s: %s", path, strerror(errno));
	fputs(text, f);
	fclose(f);
	free(path);
}

static void
write_repository(void)
{
	char *v2, *vdir = xasprintf("%s/versions", g.repo);

	mkdir(g.repo, 0755);
	mkdir(vdir, 0755);
	free(vdir);
	write_file("repository.yaml", "id: rolling\n");
	write_file("versions/001_accounts.yaml",
		   "description: release 1 of the application\n"
		   "operations:\n"
		   "  - create_table:\n"
		   "      name: accounts\n"
		   "      columns:\n"
		   "        - {name: id, type: bigint, primary_key: true, autoincrement: true}\n"
		   "        - {name: name, type: \"varchar(48)\", nullable: false}\n"
		   "        - {name: email, type: \"varchar(64)\", nullable: false}\n"
		   "        - {name: score, type: integer, nullable: false, default: 0}\n"
		   "        - {name: fullname, type: \"varchar(64)\"}\n"
		   "        - {name: legacy, type: \"varchar(16)\"}\n"
		   "  - add_index: {table: accounts, name: ux_accounts_name, columns: [name], unique: true}\n");
	v2 = xasprintf(
		   "description: release 2 - every zero-downtime shape at once\n"
		   "operations:\n"
		   "  - rename_column: {table: accounts, from: name, to: display_name}\n"
		   "  - change_type: {table: accounts, column: score, to: bigint}\n"
		   "  - add_column:\n"
		   "      table: accounts\n"
		   "      column: {name: email_lower, type: \"varchar(64)\", nullable: false}\n"
		   "  - backfill:\n"
		   "      table: accounts\n"
		   "      set: {email_lower: \"lower(email)\"}\n"
		   "  - add_column: {table: accounts, column: {name: first_name, type: \"varchar(24)\"}}\n"
		   "  - add_column: {table: accounts, column: {name: last_name, type: \"varchar(24)\"}}\n"
		   "  - backfill:\n"
		   "      table: accounts\n"
		   "      set: {first_name: \"%s\", last_name: \"%s\"}\n"
		   "      reverse: {fullname: \"%s\"}\n"
		   "  - create_table:\n"
		   "      name: audit_log\n"
		   "      columns:\n"
		   "        - {name: id, type: bigint, primary_key: true, autoincrement: true}\n"
		   "        - {name: account_name, type: \"varchar(48)\", nullable: false}\n"
		   "        - {name: action, type: \"varchar(16)\", nullable: false}\n"
		   "  - add_index: {table: audit_log, name: ix_audit_log_account, columns: [account_name]}\n"
		   "  - drop_column: {table: accounts, column: fullname}\n"
		   "  - drop_column: {table: accounts, column: legacy}\n",
		   split_first(), split_last(), join_names());
	write_file("versions/002_accounts_v2.yaml", v2);
	free(v2);
}

/* A fresh database on the server (or file), and its URL in g.url. */
static void
create_database(void)
{
	struct strbuf sql = STRBUF_INIT;
	struct db_conn *admin;
	const char *slash;

	if (g.backend == DB_BACKEND_SQLITE) {
		g.url = xasprintf("sqlite:///%s/rolling.sqlite", g.dir);
		return;
	}
	g.dbname = xasprintf("dbphase_rolling_%ld", (long)getpid());
	admin = connect_or_die(g.server_url);
	strbuf_addstr(&sql, "CREATE DATABASE ");
	admin->drv->quote_ident(&sql, g.dbname);
	exec_or_die(admin, sql.buf);
	db_close(admin);
	strbuf_release(&sql);
	slash = strstr(g.server_url, "://");
	slash = slash ? strchr(slash + 3, '/') : NULL;
	g.url = xasprintf("%.*s/%s", slash ? (int)(slash - g.server_url) : (int)strlen(g.server_url),
			  g.server_url, g.dbname);
}

static void
drop_database(void)
{
	struct strbuf sql = STRBUF_INIT;
	struct db_conn *admin;

	if (g.backend == DB_BACKEND_SQLITE || g.dbname == NULL)
		return;
	admin = connect_or_die(g.server_url);
	strbuf_addstr(&sql, "DROP DATABASE IF EXISTS ");
	admin->drv->quote_ident(&sql, g.dbname);
	exec_or_die(admin, sql.buf);
	db_close(admin);
	strbuf_release(&sql);
}

/* ROWS rows of release 1, written in bulk; they join the ledger. */
static void
seed(struct db_conn *c)
{
	struct strbuf sql = STRBUF_INIT;

	strbuf_addstr(&sql, "INSERT INTO accounts (name, email, score, fullname, legacy) ");
	switch (g.backend) {
	case DB_BACKEND_POSTGRESQL:
		strbuf_addf(&sql, "SELECT 'seed-' || g, 'Seed.' || g || '@Example.COM', g %% 1000, "
			    "'F' || g || ' L' || g, 'x' FROM generate_series(1, %ld) g", g.rows);
		break;
	case DB_BACKEND_MYSQL:
		strbuf_addf(&sql, "SELECT CONCAT('seed-', seq), CONCAT('Seed.', seq, '@Example.COM'), "
			    "seq %% 1000, CONCAT('F', seq, ' L', seq), 'x' FROM seq_1_to_%ld", g.rows);
		break;
	default:
		strbuf_addf(&sql, "WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s "
			    "WHERE g < %ld) SELECT 'seed-' || g, 'Seed.' || g || '@Example.COM', "
			    "g %% 1000, 'F' || g || ' L' || g, 'x' FROM s", g.rows);
		break;
	}
	exec_or_die(c, sql.buf);
	strbuf_release(&sql);
}

/* ---- the run ------------------------------------------------------------------------ */

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static void
report_latency(struct client *clients, size_t n)
{
	int w, v;

	printf("# statement latency per phase (ms)\n");
	printf("# %-9s %-3s %9s %8s %8s %8s\n", "phase", "app", "count", "p50", "p99", "max");
	for (w = 0; w < WIN__COUNT; w++) {
		for (v = 1; v <= 2; v++) {
			size_t total = 0, k = 0, i;
			double *all;

			for (i = 0; i < n; i++)
				if (clients[i].version == v)
					total += clients[i].n_lat[w];
			if (total == 0)
				continue;
			all = xcalloc(total, sizeof(double));
			for (i = 0; i < n; i++)
				if (clients[i].version == v) {
					memcpy(all + k, clients[i].lat[w], clients[i].n_lat[w] * sizeof(double));
					k += clients[i].n_lat[w];
				}
			qsort(all, total, sizeof(double), cmp_double);
			printf("# %-9s v%-2d %9zu %8.2f %8.2f %8.2f\n", window_names[w], v, total,
			       all[total / 2], all[(size_t)((double)(total - 1) * 0.99)], all[total - 1]);
			free(all);
		}
	}
}

static uint64_t
fnv64(uint64_t h, const char *s)
{
	for (; s && *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return h ^ 0xff;
}

/*
 * Every ledger row against the table, through the final (v2) shape: a
 * checksum over all of them, and the first few differences by name.
 */
static int
verify_final(struct db_conn *c)
{
	uint64_t want = 1469598103934665603ULL, got = 1469598103934665603ULL;
	size_t i, bad = 0;

	for (i = 0; i < g.ledger.n; i++) {
		struct ledger_row *r = g.ledger.rows[i];
		struct dbphase_error err = DBPHASE_ERROR_INIT;
		struct db_result *res = NULL;
		char id[32], score[32], lower[64];
		struct db_param p;

		if (r->id == 0)
			continue;
		snprintf(id, sizeof(id), "%lld", (long long)r->id);
		snprintf(score, sizeof(score), "%lld", (long long)r->score);
		lower_copy(lower, r->email, sizeof(lower));
		p = DB_TEXT(id);
		want = fnv64(fnv64(fnv64(fnv64(fnv64(fnv64(want, id), r->name), score), r->first),
				   r->last), lower);
		if (db_query(c, "SELECT display_name, score, first_name, last_name, email_lower "
			     "FROM accounts WHERE id = $1", &p, 1, &res, &err) < 0)
			die("final read: %s", err.message);
		if (res->n_rows != 1) {
			if (bad++ < 10)
				fprintf(stderr, "rolling: row %s (written by v%d) is missing\n", id, r->writer);
		} else {
			got = fnv64(fnv64(fnv64(fnv64(fnv64(fnv64(got, id), db_result_value(res, 0, 0)),
							  db_result_value(res, 0, 1)),
						    db_result_value(res, 0, 2)),
					      db_result_value(res, 0, 3)),
				    db_result_value(res, 0, 4));
			if (strcmp(db_result_value(res, 0, 0), r->name) != 0 ||
			    strcmp(db_result_value(res, 0, 1), score) != 0 ||
			    !db_result_value(res, 0, 2) || strcmp(db_result_value(res, 0, 2), r->first) != 0 ||
			    !db_result_value(res, 0, 3) || strcmp(db_result_value(res, 0, 3), r->last) != 0 ||
			    !db_result_value(res, 0, 4) || strcmp(db_result_value(res, 0, 4), lower) != 0) {
				if (bad++ < 10)
					fprintf(stderr, "rolling: row %s (written by v%d) is (%s, %s, %s, %s, %s), "
						"meant (%s, %s, %s, %s, %s)\n", id, r->writer,
						db_result_value(res, 0, 0), db_result_value(res, 0, 1),
						db_result_value(res, 0, 2) ? db_result_value(res, 0, 2) : "NULL",
						db_result_value(res, 0, 3) ? db_result_value(res, 0, 3) : "NULL",
						db_result_value(res, 0, 4) ? db_result_value(res, 0, 4) : "NULL",
						r->name, score, r->first, r->last, lower);
			}
		}
		db_result_free(res);
	}
	printf("# ledger: %zu rows written by the clients, checksum %s (%016llx vs %016llx)\n",
	       g.ledger.n, want == got ? "equal" : "DIFFERENT", (unsigned long long)want,
	       (unsigned long long)got);
	return bad == 0 && want == got ? 0 : -1;
}

/* Seeded rows: every one filled right through the new shape. */
static int
verify_seeded(struct db_conn *c)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct db_result *res = NULL;
	long wrong;
	char *sql = xasprintf("SELECT count(*) FROM accounts WHERE display_name LIKE 'seed-%%' "
			      "AND NOT (email_lower = lower(email) AND first_name = %s AND "
			      "last_name = %s)",
			      g.backend == DB_BACKEND_MYSQL ? "CONCAT('F', SUBSTRING(display_name, 6))" :
			      "'F' || substr(display_name, 6)",
			      g.backend == DB_BACKEND_MYSQL ? "CONCAT('L', SUBSTRING(display_name, 6))" :
			      "'L' || substr(display_name, 6)");

	if (db_query(c, sql, NULL, 0, &res, &err) < 0)
		die("checking seeded rows: %s", err.message);
	wrong = strtol(db_result_value(res, 0, 0), NULL, 10);
	printf("# seeded rows filled wrongly by the migrate phase: %ld of %ld\n", wrong, g.rows);
	db_result_free(res);
	free(sql);
	return wrong == 0 ? 0 : -1;
}

/* Keep every running client's node alive while waiting. */
static void
heartbeat_wait(struct client *clients, size_t n, int seconds)
{
	double end = now_ms() + seconds * 1000.0;
	size_t i;

	while (now_ms() < end) {
		for (i = 0; i < n; i++)
			if (clients[i].thread && !atomic_load(&clients[i].stop))
				node(0, "heartbeat", clients[i].node, NULL);
		sleep_ms(1000);
	}
}

/* Run a phase while clients keep going, heartbeating in the meantime. */
static int
phase(enum window w, const char *flag)
{
	int code;

	atomic_store(&g.window, w);
	printf("# %s\n", flag);
	fflush(stdout);
	code = dbphase("db_sync", flag, "2", NULL);
	return code;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "backend", required_argument, NULL, 'b' },
		{ "rows", required_argument, NULL, 'r' },
		{ "seconds", required_argument, NULL, 's' },
		{ NULL, 0, NULL, 0 },
	};
	enum { N_V1 = 3, N_V2 = 3 };
	struct client *clients = xcalloc(N_V1 + N_V2, sizeof(*clients));
	struct db_conn *c;
	char *logpath;
	int opt, fails = 0, tests = 0, code, i, backend = -1;
	uint64_t statements = 0, errors = 0, cross[3] = { 0, 0, 0 };

	g.rows = 100000;
	g.seconds = 4;
	while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		if (opt == 'b')
			backend = db_backend_from_name(optarg);
		else if (opt == 'r')
			g.rows = atol(optarg);
		else if (opt == 's')
			g.seconds = atoi(optarg);
		else
			die("usage: rolling --backend postgresql|mysql|sqlite [--rows N] [--seconds S]");
	}
	if (backend < 0)
		die("usage: rolling --backend postgresql|mysql|sqlite [--rows N] [--seconds S]");
	g.backend = (enum db_backend)backend;
	if (g.backend == DB_BACKEND_POSTGRESQL)
		g.server_url = getenv("DBPHASE_TEST_PG_URL");
	else if (g.backend == DB_BACKEND_MYSQL)
		g.server_url = getenv("DBPHASE_TEST_MYSQL_URL");
	if (g.backend != DB_BACKEND_SQLITE && (g.server_url == NULL || !*g.server_url)) {
		const char *env = g.backend == DB_BACKEND_POSTGRESQL ? "DBPHASE_TEST_PG_URL" :
								       "DBPHASE_TEST_MYSQL_URL";
		const char *allow = getenv("DBPHASE_TEST_ALLOW_SKIP");
		const char *require = getenv("DBPHASE_TEST_REQUIRE_SERVERS");

		/* As tests/testlib.c: a missing server fails unless skipping is allowed. */
		if (allow && strcmp(allow, "1") == 0 && !(require && strcmp(require, "1") == 0)) {
			printf("1..0 # SKIP no %s server: %s not set (DBPHASE_TEST_ALLOW_SKIP=1)\n",
			       db_backend_name(g.backend), env);
			free(clients);
			return 0;
		}
		die("no %s server: set %s (tools/test starts one), or set"
		    " DBPHASE_TEST_ALLOW_SKIP=1 to skip", db_backend_name(g.backend), env);
	}
	{
		char tmpl[] = "/tmp/dbphase-rolling-XXXXXX";

		if (mkdtemp(tmpl) == NULL)
			die("mkdtemp: %s", strerror(errno));
		g.dir = xstrdup(tmpl);
	}
	g.repo = xasprintf("%s/repo", g.dir);
	logpath = xasprintf("%s/dbphase.log", g.dir);
	g.log = fopen(logpath, "w+");
	pthread_mutex_init(&g.ledger.lock, NULL);
	pthread_mutex_init(&g.sqlite_writer, NULL);
	write_repository();
	create_database();
	printf("TAP version 13\n# rolling upgrade on %s, %ld rows, %d s per window\n",
	       db_backend_name(g.backend), g.rows, g.seconds);

	if ((code = dbphase("db_sync", "1", NULL)) != 0)
		die("db_sync 1 exited %d (log: %s)", code, logpath);
	c = connect_or_die(g.url);
	seed(c);

	for (i = 0; i < N_V1; i++)
		client_start(&clients[i], 1, i);
	heartbeat_wait(clients, N_V1 + N_V2, g.seconds);

	code = phase(WIN_EXPAND, "--expand");
	printf("%s %d - db_sync --expand 2 exits 0 (got %d)\n", code == 0 ? "ok" : "not ok",
	       ++tests, code);
	fails += code != 0;
	atomic_store(&g.window, WIN_EXPAND);
	heartbeat_wait(clients, N_V1 + N_V2, g.seconds / 2 + 1);

	code = phase(WIN_MIGRATE, "--migrate");
	printf("%s %d - db_sync --migrate 2 exits 0 (got %d)\n", code == 0 ? "ok" : "not ok",
	       ++tests, code);
	fails += code != 0;

	atomic_store(&g.window, WIN_ROLLING);
	for (i = 0; i < N_V2; i++)
		client_start(&clients[N_V1 + i], 2, i);
	heartbeat_wait(clients, N_V1 + N_V2, g.seconds);

	code = dbphase("db_sync", "--contract", "2", NULL);
	printf("%s %d - db_sync --contract 2 is refused while v1 nodes are live: exit 5 (got %d)\n",
	       code == 5 ? "ok" : "not ok", ++tests, code);
	fails += code != 5;
	heartbeat_wait(clients, N_V1 + N_V2, 1);

	for (i = 0; i < N_V1; i++) {
		client_stop(&clients[i]);
		node(0, "retire", clients[i].node, NULL);
	}
	code = phase(WIN_CONTRACT, "--contract");
	printf("%s %d - db_sync --contract 2 exits 0 once v1 is gone (got %d)\n",
	       code == 0 ? "ok" : "not ok", ++tests, code);
	fails += code != 0;
	/* A v1 node coming back after contract is turned away: its columns are gone. */
	node(5, "register", clients[0].node, "1");

	atomic_store(&g.window, WIN_AFTER);
	heartbeat_wait(clients, N_V1 + N_V2, g.seconds);
	for (i = 0; i < N_V2; i++)
		client_stop(&clients[N_V1 + i]);

	for (i = 0; i < N_V1 + N_V2; i++) {
		statements += clients[i].statements;
		errors += clients[i].errors;
		cross[clients[i].version] += clients[i].cross_checks;
		if (clients[i].errors)
			printf("# first error: %s\n", clients[i].first_error);
	}
	printf("%s %d - no client statement failed (%llu statements, %llu failed)\n",
	       errors == 0 ? "ok" : "not ok", ++tests, (unsigned long long)statements,
	       (unsigned long long)errors);
	fails += errors != 0;
	printf("%s %d - v1 code read rows v2 code wrote, through its own shape (%llu checks)\n",
	       cross[1] > 0 ? "ok" : "not ok", ++tests, (unsigned long long)cross[1]);
	fails += cross[1] == 0;
	printf("%s %d - v2 code read rows v1 code wrote, through its own shape (%llu checks)\n",
	       cross[2] > 0 ? "ok" : "not ok", ++tests, (unsigned long long)cross[2]);
	fails += cross[2] == 0;
	printf("%s %d - every node command exited as expected (%d commands)\n",
	       g.node_failures == 0 ? "ok" : "not ok", ++tests, g.node_commands);
	if (g.node_failures)
		printf("# %d node commands failed; first: %s\n", g.node_failures,
		       g.first_node_failure);
	fails += g.node_failures != 0;
	code = verify_final(c);
	printf("%s %d - every row written by either version has the values its writer meant\n",
	       code == 0 ? "ok" : "not ok", ++tests);
	fails += code != 0;
	code = verify_seeded(c);
	printf("%s %d - every seeded row was migrated\n", code == 0 ? "ok" : "not ok", ++tests);
	fails += code != 0;
	report_latency(clients, N_V1 + N_V2);
	printf("1..%d\n", tests);
	if (fails) {
		char line[512];

		printf("# dbphase's output (%s):\n", logpath);
		rewind(g.log);
		while (fgets(line, sizeof(line), g.log))
			printf("#   %s", line);
	}
	printf("# %d passed, %d failed\n", tests - fails, fails);
	db_close(c);
	drop_database();
	fclose(g.log);
	if (fails == 0) {
		unlink(logpath);
		remove(g.repo);
	}
	for (i = 0; i < N_V1 + N_V2; i++) {
		int w;

		for (w = 0; w < WIN__COUNT; w++)
			free(clients[i].lat[w]);
		free(clients[i].owned);
	}
	for (size_t k = 0; k < g.ledger.n; k++)
		free(g.ledger.rows[k]);
	free(g.ledger.rows);
	free(clients);
	free(logpath);
	return fails ? 1 : 0;
}

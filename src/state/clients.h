/*
 * state/clients.h - the contract gate's second source: live database
 * connections that say which code they run.  repository.yaml's 'clients'
 * (core/repo.h) names, per backend, the attribute a connection carries
 * (PostgreSQL application_name, a MariaDB connection attribute such as
 * program_name) and a pattern whose first group is the schema version that
 * code needs; the driver lists the connections (db_list_clients), this
 * applies the pattern.  A connection whose attribute does not match, or
 * whose first group is not a version number, says nothing and is left out.
 */
#ifndef DBPHASE_STATE_CLIENTS_H
#define DBPHASE_STATE_CLIENTS_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "core/repo.h"
#include "state/state.h"

struct clients_entry {
	char *id;			/* the server's session id; owned */
	char *address;			/* "host:port", or NULL (local or unknown); owned */
	char *value;			/* the attribute's value; owned */
	int64_t version;		/* the schema version its code needs */
};

struct clients_report {
	const struct repo_clients *config;	/* NULL: nothing to check here */
	struct clients_entry *entries;		/* in session order */
	size_t n;
	char *unreadable;		/* why the server cannot tell (e.g.
					 * performance_schema off), or NULL; owned */
};

/*
 * Read the connections repo asks about on st's backend into rep (released
 * with clients_report_release).  Nothing asked (config NULL) on SQLite and
 * when repository.yaml names no pattern for the backend.  A server that
 * keeps no attributes is not an error here but rep->unreadable: the gate
 * refuses on it, status shows it.  Other failures are errors.
 */
int clients_read(struct state *st, const struct repo *repo, struct clients_report *rep,
		 struct dbphase_error *err);

void clients_report_release(struct clients_report *rep);

/* Where e connects from: its "host:port", or "local or unknown address". */
const char *clients_address(const struct clients_entry *e);

#endif

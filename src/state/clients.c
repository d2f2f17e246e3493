/*
 * state/clients.c - apply repository.yaml's clients pattern to the live
 * connections the driver lists (state/clients.h).
 */
#include "config.h"

#include "state/clients.h"

#include <regex.h>
#include <stdlib.h>
#include <string.h>

#include "core/xmalloc.h"
#include "drivers/driver.h"

/* The version in value's first group of re, or -1 when it holds none. */
static int64_t
version_of(const regex_t *re, const char *value)
{
	regmatch_t m[2];
	int64_t v = 0;
	regoff_t i;

	if (regexec(re, value, 2, m, 0) != 0 || m[1].rm_so < 0 || m[1].rm_eo <= m[1].rm_so)
		return -1;
	for (i = m[1].rm_so; i < m[1].rm_eo; i++) {
		if (value[i] < '0' || value[i] > '9' || v > (INT64_MAX - (value[i] - '0')) / 10)
			return -1;
		v = v * 10 + (value[i] - '0');
	}
	return v;
}

int
clients_read(struct state *st, const struct repo *repo, struct clients_report *rep,
	     struct dbphase_error *err)
{
	struct db_client *clients = NULL;
	size_t n = 0, i;
	int rc;

	memset(rep, 0, sizeof(*rep));
	rep->config = repo_clients_for(repo, st->conn->drv->backend);
	if (rep->config == NULL)
		return 0;
	rc = db_list_clients(st->conn, rep->config->attribute, &clients, &n, err);
	if (rc == DBPHASE_EUNSUPPORTED) {
		rep->unreadable = xstrdup(err->message ? err->message : "");
		err_release(err);
		return 0;
	}
	if (rc < 0)
		return err_prefixf(err, "cannot read the live connections that %s asks about",
				   rep->config->where);
	rep->entries = xcalloc(n ? n : 1, sizeof(*rep->entries));
	for (i = 0; i < n; i++) {
		int64_t v = version_of(rep->config->re, clients[i].value);
		struct clients_entry *e = &rep->entries[rep->n];

		if (v < 0)
			continue;
		e->id = clients[i].id;
		e->address = clients[i].address;
		e->value = clients[i].value;
		e->version = v;
		memset(&clients[i], 0, sizeof(clients[i]));
		rep->n++;
	}
	db_clients_free(clients, n);
	return 0;
}

void
clients_report_release(struct clients_report *rep)
{
	size_t i;

	for (i = 0; i < rep->n; i++) {
		free(rep->entries[i].id);
		free(rep->entries[i].address);
		free(rep->entries[i].value);
	}
	free(rep->entries);
	free(rep->unreadable);
	memset(rep, 0, sizeof(*rep));
}

const char *
clients_address(const struct clients_entry *e)
{
	return e->address ? e->address : "local or unknown address";
}

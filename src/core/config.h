/*
 * core/config.h - dbphase settings from INI files.
 *
 * Files are read in the order given (--config-file and --config-dir, whose
 * *.conf files are read sorted by name); a later value wins.  They are read
 * as oslo.config reads them (config.c says how), and only these settings
 * are taken, so an OpenStack service's config file (keystone.conf,
 * nova.conf) works unchanged:
 *   [database] connection = URL    (or the deprecated [sql] connection)
 *   [dbphase]  repository, jobs, batch_size, max_batch_size, batch_time_ms,
 *              max_rate, lock_timeout_ms, lock_wait_s, reconnect_wait_s,
 *              node_ttl_s
 * The database URL itself is chosen by the CLI.
 */
#ifndef DBPHASE_CORE_CONFIG_H
#define DBPHASE_CORE_CONFIG_H

#include <stddef.h>

#include "core/error.h"

/* One value as a file wrote it. */
struct config_entry {
	char *section;		/* lower case, but DEFAULT */
	char *key;
	char *value;		/* unquoted; continuation lines joined by '\n' */
	char *where;		/* "path:line" */
	int continued_to;	/* last line of a value that goes on, else 0 */
};

struct dbphase_config {
	char *connection;	/* [database] connection, or NULL; owned */
	char *connection_from;	/* "[database] connection at path:line", or NULL; owned */
	char *connection_warning; /* set when a deprecated name gave it; owned */
	char *repository;	/* [dbphase] repository, or NULL; owned */
	int jobs;		/* concurrent copy connections (4) */
	int batch_size;		/* starting rows per batch (1000) */
	int max_batch_size;	/* cap on adaptive batch size (100000) */
	int batch_time_ms;	/* target time per batch (100) */
	int max_rate;		/* rows per second, 0 = unlimited (0) */
	int lock_timeout_ms;	/* per DDL statement (2000) */
	int lock_wait_s;	/* wait for the cluster lock (300) */
	int reconnect_wait_s;	/* reconnect after a lost connection this long (60) */
	int node_ttl_s;		/* a node is live this long after a heartbeat (300) */
	struct config_entry *entries;	/* every value read, in reading order */
	size_t n_entries;
	size_t alloc_entries;
};

/* Set every field to its default. */
void config_init(struct dbphase_config *cfg);
void config_release(struct dbphase_config *cfg);

/*
 * Read one INI file into cfg.  A line oslo.config cannot read, an unknown
 * key of [dbphase] and a value out of range are DBPHASE_EBADINPUT
 * "path:line: ..."; other sections are ignored.
 */
int config_load_file(struct dbphase_config *cfg, const char *path,
		     struct dbphase_error *err);

/* The same for text already in memory (len bytes), named path in messages. */
int config_load_text(struct dbphase_config *cfg, const char *path, const char *text,
		     size_t len, struct dbphase_error *err);

/* Read every *.conf in dir, sorted by name. */
int config_load_dir(struct dbphase_config *cfg, const char *dir,
		    struct dbphase_error *err);

/*
 * Set one [dbphase] key from text (for command-line overrides such as
 * --jobs); where names the source for messages ("--jobs").
 */
int config_set(struct dbphase_config *cfg, const char *key, const char *value,
	       const char *where, struct dbphase_error *err);

/* The keys of [dbphase], NULL-terminated, for docs and --help checks. */
extern const char *const config_keys[];

#endif

/*
 * core/config.h - dbphase settings from INI files.
 *
 * Files are read in the order given (--config-file, repeatable, then each
 * *.conf of --config-dir sorted by name); a later value wins.  Only two
 * sections are read, so an OpenStack service's config file (keystone.conf,
 * nova.conf) works unchanged:
 *   [database] connection = URL
 *   [dbphase]  repository, jobs, batch_size, max_batch_size, batch_time_ms,
 *              max_rate, lock_timeout_ms, lock_wait_s, reconnect_wait_s,
 *              node_ttl_s
 * Parsing uses inih.  The database URL itself is chosen by the CLI:
 * --database, then $DBPHASE_DATABASE, then [database] connection, then the
 * SQLite file ./dbphase.sqlite.
 */
#ifndef DBPHASE_CORE_CONFIG_H
#define DBPHASE_CORE_CONFIG_H

#include <stddef.h>

#include "core/error.h"

struct dbphase_config {
	char *connection;	/* [database] connection, or NULL; owned */
	char *connection_from;	/* "path:line" it came from, or NULL; owned */
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
};

/* Set every field to its default. */
void config_init(struct dbphase_config *cfg);
void config_release(struct dbphase_config *cfg);

/*
 * Read one INI file into cfg.  Unknown keys of [dbphase] and values out of
 * range are DBPHASE_EBADINPUT "path:line: ..."; other sections are ignored.
 */
int config_load_file(struct dbphase_config *cfg, const char *path,
		     struct dbphase_error *err);

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

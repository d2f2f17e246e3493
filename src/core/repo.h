/*
 * core/repo.h - a migration repository on disk.
 *
 *   DIR/repository.yaml         id: shop   version_table: dbphase_version
 *   DIR/versions/NNN_slug.yaml  one migration; NNN is its version
 *   DIR/extensions/NAME/        the same layout again, with its own state row
 *   DIR/phases/NAME.yaml        optional operation catalog additions
 *
 * Loading reads and checks the structure of every file before anything
 * touches a database: YAML syntax, the top-level keys of a migration, that
 * 'operations' is a list of one-key mappings, version numbering (no gaps,
 * no duplicates, starting at 1).  What each operation's fields mean is the
 * planner's to check, against the operation catalog.
 */
#ifndef DBPHASE_CORE_REPO_H
#define DBPHASE_CORE_REPO_H

#include <regex.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "core/url.h"
#include "core/ydoc.h"

struct migration_op {
	const char *kind;		/* the operation's key, e.g. "add_column" */
	const struct ynode *node;	/* the one-key mapping (its position) */
	const struct ynode *args;	/* the value under the key */
};

struct migration {
	int64_t version;
	char *slug;			/* "customer_names"; owned */
	char *path;			/* as given to the loader + relative part; owned */
	char *checksum;			/* hex SHA-256 of the file's bytes; owned */
	char *description;		/* may be NULL; owned */
	struct ydoc doc;		/* owns every node below */
	struct migration_op *ops;	/* owned array */
	size_t n_ops;
};

/*
 * repository.yaml 'clients', for one backend: which attribute of a live
 * connection names the application's code, and the pattern whose first
 * group is the schema version that code needs (the state machine applies
 * it; see doc/migration-format.md).
 */
struct repo_clients {
	char *attribute;		/* NULL: no check on this backend; owned */
	char *pattern;			/* POSIX extended regular expression; owned */
	char *where;			/* "path:line:column" of the pattern; owned */
	regex_t *re;			/* pattern compiled; owned */
};

struct repo {
	char *dir;			/* owned */
	char *id;			/* repository.yaml id, default: folder name; owned */
	char *extension;		/* NULL for the main repository; owned */
	char *parent_id;		/* an extension's: the main repository's id; owned */
	char *version_table;		/* default "dbphase_version"; owned */
	char *phases_dir;		/* DIR/phases if it exists, else NULL; owned */
	struct migration *migrations;	/* sorted by version, 1..n */
	size_t n_migrations;
	char **extensions;		/* names under DIR/extensions, sorted; owned */
	size_t n_extensions;
	struct repo_clients clients[DB_BACKEND__COUNT];	/* by backend; SQLite's unused */
};

/*
 * Load the repository at dir, or its extension when extension is not NULL
 * (DIR/extensions/EXTENSION).  Errors are "path:line:column: message" with
 * DBPHASE_EBADINPUT, or DBPHASE_EIO when a file cannot be read.
 */
int repo_load(struct repo *repo, const char *dir, const char *extension,
	      struct dbphase_error *err);

/*
 * The names of the extensions of the repository in dir (its extensions/
 * folders that hold a versions/ folder), sorted; the caller frees each
 * name and the array.
 */
int repo_list_extensions(const char *dir, char ***names, size_t *n, struct dbphase_error *err);

void repo_release(struct repo *repo);

/*
 * The repository's key in the version table: its id, or "MAIN/NAME" for
 * extension NAME of repository MAIN, so that an extension has a row of its
 * own.  Caller frees.
 */
char *repo_state_key(const struct repo *repo);

/* The clients check for backend, or NULL when repository.yaml asks none. */
const struct repo_clients *repo_clients_for(const struct repo *repo, enum db_backend backend);

/* The latest version on disk (0 for an empty repository). */
int64_t repo_latest(const struct repo *repo);

/* The migration with that version, or NULL. */
const struct migration *repo_migration(const struct repo *repo, int64_t version);

/* Hex SHA-256 of len bytes (65 bytes with the NUL); caller frees. */
char *sha256_hex(const void *data, size_t len);

#endif

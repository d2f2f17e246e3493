/*
 * core/error.h - the one error type of dbphase.
 *
 * Every function that can fail returns an int: 0 (DBPHASE_OK) on success or
 * a negative DBPHASE_E* code, and fills a caller-owned struct dbphase_error
 * with a message that says what failed and why.  The error is filled where
 * the failure is understood and printed only by the CLI; the library never
 * prints and never exits.  Database errors also carry the server's SQLSTATE
 * or error number and whether a retry may succeed.
 *
 * The drivers classify alike what every backend has: a lock not obtained
 * within the lock timeout is DBPHASE_ELOCK_TIMEOUT (retryable); a statement
 * the server stopped on request (the driver's cancel, pg_cancel_backend or
 * KILL QUERY from elsewhere, a statement timeout) is DBPHASE_ECANCELLED
 * (not retryable: the server cannot say who asked, so a caller that
 * cancelled on purpose knows it by itself).  DBPHASE_EINTERRUPTED is
 * dbphase's own stop on SIGINT/SIGTERM, never a driver's.
 */
#ifndef DBPHASE_CORE_ERROR_H
#define DBPHASE_CORE_ERROR_H

#include <stdbool.h>

/* X(NAME, text): each line becomes DBPHASE_E<NAME> and its text. */
#define DBPHASE_ERR_MAP(X)                                                   \
	X(ERROR, "error")                                                    \
	X(USAGE, "usage error")                                              \
	X(BADINPUT, "bad migration or configuration")                        \
	X(CONNECT, "database unreachable")                                   \
	X(LOCK_TIMEOUT, "lock not obtained in time")                         \
	X(REFUSED, "refused by the state machine")                           \
	X(DB, "database error")                                              \
	X(IO, "input/output error")                                          \
	X(UNSUPPORTED, "not supported")                                      \
	X(NOTFOUND, "not found")                                             \
	X(INTERRUPTED, "interrupted")                                        \
	X(CANCELLED, "statement cancelled")                                  \
	X(CHECKSUM, "applied migration changed on disk")                    \
	X(AHEAD, "database ahead of this repository")

enum dbphase_err {
	DBPHASE_OK = 0,
#define DBPHASE_ERR_ENUM(name, text) DBPHASE_E##name,
	DBPHASE__ERR_FIRST = -100,
	DBPHASE_ERR_MAP(DBPHASE_ERR_ENUM)
#undef DBPHASE_ERR_ENUM
	DBPHASE__ERR_LAST
};

struct dbphase_error {
	int code;		/* DBPHASE_E*, or 0 when clear */
	char *message;		/* owned; NULL when clear */
	char sqlstate[6];	/* PostgreSQL/MariaDB SQLSTATE, "" if none */
	int server_code;	/* MariaDB errno or SQLite extended code, 0 if none */
	bool retryable;		/* a transient failure: the same work may succeed */
};

#define DBPHASE_ERROR_INIT { 0, NULL, "", 0, false }

/* The fixed text of a code ("database unreachable"); never NULL. */
const char *dbphase_strerror(int code);

/* The code's name ("CONNECT") for JSON output and logs; never NULL. */
const char *dbphase_err_name(int code);

/*
 * Set err to code with a printf-style message, replacing what it held.
 * Returns code, so that "return err_setf(err, ...)" reads as one step.
 * err may be NULL, in which case only the code is returned.
 */
int err_setf(struct dbphase_error *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/*
 * Put context in front of the message already held: "prefix: message".
 * Returns err->code.  Used as an error travels up through the layers.
 */
int err_prefixf(struct dbphase_error *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Move src into dst (dst released first); src is left clear. */
void err_move(struct dbphase_error *dst, struct dbphase_error *src);

/* Free the message and clear the error; it may be reused. */
void err_release(struct dbphase_error *err);

#endif

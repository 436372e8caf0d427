/* Blocking libpq helpers for the places where blocking is right: rolloutctl, and rolloutd's
 * start-up check before the event loop runs. Never call these from inside the loop. */
#ifndef ROLLOUT_PGUTIL_H
#define ROLLOUT_PGUTIL_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

#define PGUTIL_ERROR_MAX 1024

/* The table `rolloutctl migrate` keeps; the daemon reads it to know the schema version. */
#define PGUTIL_MIGRATIONS_TABLE "schema_migrations"

/* Connects with conninfo (empty: the PG* environment variables), application_name defaulting
 * to app, client_encoding UTF8. Returns NULL and libpq's message in err on failure. */
PGconn *pgutil_connect(const char *conninfo, const char *app, char err[PGUTIL_ERROR_MAX]);

/* libpq's message of a failed result (or of the connection when res is NULL), on one line:
 * trailing newlines removed, the DETAIL and HINT appended when the server sent them. */
void pgutil_error_text(const PGconn *conn, const PGresult *res, char *out, size_t outlen);

/* Runs one or more statements without parameters and without rows; false with the error in
 * err. */
bool pgutil_exec(PGconn *conn, const char *sql, char err[PGUTIL_ERROR_MAX]);

/* The newest applied migration (the highest version in schema_migrations): 0 when the table
 * does not exist (a database never migrated), -1 on error with err set. */
int pgutil_schema_version(PGconn *conn, char err[PGUTIL_ERROR_MAX]);

/* Whether the database is at exactly `expected`; otherwise false with a message saying what
 * to do (run `rolloutctl migrate`, or install the newer binaries). For the daemon's start-up
 * and /readyz. */
bool pgutil_schema_check(PGconn *conn, int expected, char err[PGUTIL_ERROR_MAX]);

/* Whether the connection is unusable (broken, or the server ended the session): callers map
 * that to "unavailable" rather than to a data error. */
bool pgutil_connection_lost(const PGconn *conn, const PGresult *res);

#endif

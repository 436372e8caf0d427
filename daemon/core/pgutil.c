#include "pgutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void trim_newlines(char *s)
{
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' '))
        s[--n] = '\0';
}

PGconn *pgutil_connect(const char *conninfo, const char *app, char err[PGUTIL_ERROR_MAX])
{
    /* dbname first with expand_dbname, so a full conninfo string is accepted there and the
     * keywords after it only fill in what it leaves open (fallback_application_name) or
     * override what must hold for our code (client_encoding: the CSV files and JSON are
     * UTF-8 whatever the server's or the shell's locale). */
    const char *keys[] = {"dbname", "fallback_application_name", "client_encoding", NULL};
    const char *vals[] = {conninfo ? conninfo : "", app, "UTF8", NULL};
    PGconn *conn = PQconnectdbParams(keys, vals, 1);
    if (conn == NULL) {
        snprintf(err, PGUTIL_ERROR_MAX, "out of memory");
        return NULL;
    }
    if (PQstatus(conn) != CONNECTION_OK) {
        snprintf(err, PGUTIL_ERROR_MAX, "%s", PQerrorMessage(conn));
        trim_newlines(err);
        PQfinish(conn);
        return NULL;
    }
    return conn;
}

void pgutil_error_text(const PGconn *conn, const PGresult *res, char *out, size_t outlen)
{
    const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    if (primary == NULL) {
        /* not a server error (a lost connection, libpq itself): the whole message */
        snprintf(out, outlen, "%s",
                 res && *PQresultErrorMessage(res) ? PQresultErrorMessage(res)
                                                   : PQerrorMessage(conn));
        trim_newlines(out);
        for (char *p = out; *p; p++)
            if (*p == '\n')
                *p = ' ';
        return;
    }
    const char *detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
    const char *hint = PQresultErrorField(res, PG_DIAG_MESSAGE_HINT);
    if (detail)
        snprintf(out, outlen, "%s (%s)", primary, detail);
    else
        snprintf(out, outlen, "%s", primary);
    if (hint) {
        size_t n = strlen(out);
        snprintf(out + n, outlen - n, "; %s", hint);
    }
}

bool pgutil_exec(PGconn *conn, const char *sql, char err[PGUTIL_ERROR_MAX])
{
    PGresult *res = PQexec(conn, sql);
    ExecStatusType st = PQresultStatus(res);
    bool ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
    if (!ok)
        pgutil_error_text(conn, res, err, PGUTIL_ERROR_MAX);
    PQclear(res);
    return ok;
}

int pgutil_schema_version(PGconn *conn, char err[PGUTIL_ERROR_MAX])
{
    /* to_regclass: no error (and no aborted transaction) when the table is missing */
    PGresult *res = PQexec(conn, "SELECT CASE WHEN to_regclass('" PGUTIL_MIGRATIONS_TABLE
                                 "') IS NULL THEN -1 ELSE 0 END");
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        pgutil_error_text(conn, res, err, PGUTIL_ERROR_MAX);
        PQclear(res);
        return -1;
    }
    bool exists = strcmp(PQgetvalue(res, 0, 0), "0") == 0;
    PQclear(res);
    if (!exists)
        return 0;
    res = PQexec(conn, "SELECT coalesce(max(version), 0) FROM " PGUTIL_MIGRATIONS_TABLE);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        pgutil_error_text(conn, res, err, PGUTIL_ERROR_MAX);
        PQclear(res);
        return -1;
    }
    int v = (int)strtol(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return v;
}

bool pgutil_schema_check(PGconn *conn, int expected, char err[PGUTIL_ERROR_MAX])
{
    int v = pgutil_schema_version(conn, err);
    if (v < 0)
        return false;
    if (v < expected) {
        snprintf(err, PGUTIL_ERROR_MAX,
                 "the database is at schema version %d, these binaries need %d: run "
                 "`rolloutctl migrate` first",
                 v, expected);
        return false;
    }
    if (v > expected) {
        snprintf(err, PGUTIL_ERROR_MAX,
                 "the database is at schema version %d, newer than the %d these binaries were "
                 "built for: install the matching release",
                 v, expected);
        return false;
    }
    return true;
}

bool pgutil_connection_lost(const PGconn *conn, const PGresult *res)
{
    if (PQstatus(conn) != CONNECTION_OK)
        return true;
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    /* class 08, connection exception, but not 08P01 (a protocol violation: our mistake, the
     * connection lives on); 57P01..57P03: the server shuts down or cannot start */
    return state != NULL && ((strncmp(state, "08", 2) == 0 && strcmp(state, "08P01") != 0) ||
                             strncmp(state, "57P0", 4) == 0);
}

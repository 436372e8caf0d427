/* The group commit's SQL function (schema/002_group_commit.sql) as PostgreSQL runs it: what it
 * guards without foreign keys, that its transaction sends no NOTIFY, and that its lookups stay
 * index probes whatever the tables' sizes were when its plan was cached. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

static struct th_db db;

static void setup(void)
{
    th_db_create(&db);
}

static void teardown(void)
{
    th_db_drop(&db);
}

TestSuite(schema, .init = setup, .fini = teardown, .timeout = 120);

/* What the foreign keys of the event log gave (schema/002 dropped them from the write path):
 * a row the log refers to cannot be deleted, and no event names an item outside the
 * catalogue. */
Test(schema, rows_the_event_log_refers_to_are_never_deleted)
{
    static const char *const refused[] = {
        "DELETE FROM employee WHERE personnel_number = 'P0000001'",
        "TRUNCATE employee CASCADE",
        "DELETE FROM item WHERE key = 'wlan_autologin'",
        "DELETE FROM api_token",
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        PGresult *res = PQexec(db.conn, refused[i]);
        cr_expect_eq(PQresultStatus(res), PGRES_FATAL_ERROR, "the superuser could: %s",
                     refused[i]);
        const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
        cr_expect(msg && strstr(msg, "never deleted"), "%s: %s", refused[i], msg ? msg : "");
        PQclear(res);
    }
    cr_assert_eq(th_sql_int(&db, "SELECT count(*) FROM employee WHERE personnel_number = 'P0000001'"),
                 1);

    const char *p[] = {"[{\"i\": 0, \"event_id\": \"6f1c2a4e-8b7d-4c3a-9e21-0a5b6c7d8e9f\","
                       " \"employee\": \"P0000001\", \"item\": \"fax_machine\", \"state\": \"planned\","
                       " \"occurred_at\": \"2026-11-01T10:00:00Z\", \"hash\": \""
                       "00000000000000000000000000000000000000000000000000000000000000aa\"}]"};
    PGresult *res = PQexecParams(db.conn, "SELECT * FROM rollout_apply_events($1::jsonb)", 1, NULL,
                                 p, NULL, NULL, 0);
    cr_expect_eq(PQresultStatus(res), PGRES_FATAL_ERROR, "an unknown item was applied");
    cr_expect(strstr(PQresultErrorMessage(res), "outside the catalogue"), "%s",
              PQresultErrorMessage(res));
    PQclear(res);
    cr_assert_eq(th_sql_int(&db, "SELECT count(*) FROM event"), 0);
}

/* The group commit's transaction sends no NOTIFY: a notifying transaction holds PostgreSQL's
 * notify lock until its commit is flushed, which made the pool's commits wait for each other.
 * The daemon tells the other instances with its next progress read instead (test_instances). */
Test(schema, applying_events_does_not_notify)
{
    PGconn *l = PQconnectdb(db.conninfo_service);
    cr_assert_eq(PQstatus(l), CONNECTION_OK, "%s", PQerrorMessage(l));
    PQclear(PQexec(l, "LISTEN rollout_progress"));
    const char *p[] = {"[{\"i\": 0, \"event_id\": \"6f1c2a4e-8b7d-4c3a-9e21-0a5b6c7d8e9f\","
                       " \"employee\": \"P0000001\", \"item\": \"mobile_device\", \"state\": \"planned\","
                       " \"occurred_at\": \"2026-11-01T10:00:00Z\", \"hash\": \""
                       "00000000000000000000000000000000000000000000000000000000000000aa\"}]"};
    PGresult *res = PQexecParams(db.conn, "SELECT status FROM rollout_apply_events($1::jsonb)", 1,
                                 NULL, p, NULL, NULL, 0);
    cr_assert_eq(PQresultStatus(res), PGRES_TUPLES_OK, "%s", PQresultErrorMessage(res));
    cr_assert_str_eq(PQgetvalue(res, 0, 0), "201");
    PQclear(res);
    /* a round trip on the listener after the commit: a notification would have arrived */
    usleep(200 * 1000);
    PQclear(PQexec(l, "SELECT 1"));
    PQconsumeInput(l);
    PGnotify *n = PQnotifies(l);
    cr_expect_null(n, "the commit sent NOTIFY %s", n ? n->relname : "");
    PQfreemem(n);
    PQfinish(l);
}

/* Applies one event for employee `personnel` (state planned) on conn; asserts it was created. */
static void apply_one(PGconn *conn, const char *personnel, int n)
{
    char body[512];
    snprintf(body, sizeof body,
             "[{\"i\": 0, \"event_id\": \"00000000-0000-4000-8000-%012d\", \"employee\": \"%s\","
             " \"item\": \"wlan_autologin\", \"state\": \"planned\","
             " \"occurred_at\": \"2026-11-02T10:00:00Z\", \"hash\": \"%064d\"}]",
             n, personnel, n);
    const char *p[] = {body};
    PGresult *res = PQexecParams(conn, "SELECT status FROM rollout_apply_events($1::jsonb)", 1,
                                 NULL, p, NULL, NULL, 0);
    cr_assert_eq(PQresultStatus(res), PGRES_TUPLES_OK, "%s", PQresultErrorMessage(res));
    cr_assert_str_eq(PQgetvalue(res, 0, 0), "201", "event %d for %s", n, personnel);
    PQclear(res);
}

/* A connection's plan is cached. Made while the event log and item_state were nearly empty (a
 * new database), its lookups must still be index probes once the tables have grown: a
 * sequential scan planned on an empty table would read the whole log for every event. */
Test(schema, lookups_stay_index_probes_after_the_tables_grow)
{
    /* no ANALYZE in between: the plan made on the empty tables is the one that runs */
    PQclear(th_sql(&db, "ALTER TABLE event SET (autovacuum_enabled = false)", 0, NULL));
    PQclear(th_sql(&db, "ALTER TABLE item_state SET (autovacuum_enabled = false)", 0, NULL));
    PQclear(th_sql(&db, "ANALYZE event, item_state", 0, NULL));
    PGconn *c = PQconnectdb(db.conninfo_service);
    cr_assert_eq(PQstatus(c), CONNECTION_OK, "%s", PQerrorMessage(c));
    /* more calls than PostgreSQL's five custom plans: the generic plan is cached */
    for (int n = 1; n <= 8; n++) {
        char who[16];
        snprintf(who, sizeof who, "P%07d", n);
        apply_one(c, who, n);
    }
    /* the log grows behind the cached plan: 20,000 events, 20,000 states */
    PQclear(th_sql(&db,
                   "INSERT INTO employee (personnel_number, dienststelle)"
                   " SELECT format('G%s', lpad(g::text, 7, '0')), 'JUS-F-01'"
                   "   FROM generate_series(1, 5000) g",
                   0, NULL));
    PQclear(th_sql(&db,
                   "INSERT INTO event (event_id, employee_id, item, state, applied, occurred_at,"
                   "                   request_hash)"
                   " SELECT gen_random_uuid(), e.id, i.key, 'planned', true, '2026-10-01',"
                   "        sha256(e.id::text::bytea || i.key::bytea)"
                   "   FROM employee e CROSS JOIN item i WHERE e.personnel_number LIKE 'G%'",
                   0, NULL));
    PQclear(th_sql(&db,
                   "INSERT INTO item_state (employee_id, item, state, since)"
                   " SELECT employee_id, item, state, occurred_at FROM event"
                   "  WHERE employee_id IN (SELECT id FROM employee WHERE personnel_number LIKE 'G%')",
                   0, NULL));
    PGresult *res = PQexec(c, "BEGIN");
    PQclear(res);
    apply_one(c, "P0000020", 9);
    apply_one(c, "P0000021", 10);
    res = PQexec(c, "SELECT relname, seq_scan, coalesce(seq_tup_read, 0)"
                    "  FROM pg_stat_xact_user_tables"
                    " WHERE relname IN ('event', 'item_state', 'employee') ORDER BY 1");
    cr_assert_eq(PQresultStatus(res), PGRES_TUPLES_OK, "%s", PQresultErrorMessage(res));
    cr_assert_eq(PQntuples(res), 3);
    for (int r = 0; r < PQntuples(res); r++)
        cr_expect_str_eq(PQgetvalue(res, r, 2), "0",
                         "applying two events read %s rows of %s sequentially (%s scans)",
                         PQgetvalue(res, r, 2), PQgetvalue(res, r, 0), PQgetvalue(res, r, 1));
    PQclear(res);
    PQclear(PQexec(c, "COMMIT"));
    PQfinish(c);
}

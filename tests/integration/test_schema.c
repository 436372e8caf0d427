/* The group commit's SQL function (schema/002_group_commit.sql to 005_state_columns.sql) as
 * PostgreSQL runs it: what it guards without foreign keys, that its transaction sends no NOTIFY,
 * that its lookups stay index probes whatever the tables' sizes were when its plan was cached,
 * and that the counter shards stay as few as the writers that ran at once. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "harness_cli.h"

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

/* A connection as the daemon's role (rolloutd), which calls the functions under test. */
static PGconn *service_conn(void)
{
    PGconn *c = PQconnectdb(db.conninfo_service);
    cr_assert_eq(PQstatus(c), CONNECTION_OK, "%s", PQerrorMessage(c));
    return c;
}

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
    PGconn *l = service_conn();
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

/* One event of a group: `personnel`'s wlan_autologin planned, event_id and hash numbered
 * `id` and `hash`, at position i. */
static void planned_event(char *out, size_t len, int i, int id, const char *personnel, int hash)
{
    snprintf(out, len,
             "{\"i\": %d, \"event_id\": \"00000000-0000-4000-8000-%012d\", \"employee\": \"%s\","
             " \"item\": \"wlan_autologin\", \"state\": \"planned\","
             " \"occurred_at\": \"2026-11-02T10:00:00Z\", \"hash\": \"%064d\"}",
             i, id, personnel, hash);
}

/* Applies the group `body` on conn; its answers as "i result status code" joined by "; ". */
static char *apply_group(PGconn *conn, const char *body)
{
    const char *p[] = {body};
    PGresult *res = PQexecParams(conn, "SELECT i, result, status, coalesce(code, '')"
                                       "  FROM rollout_apply_events($1::jsonb) ORDER BY i",
                                 1, NULL, p, NULL, NULL, 0);
    cr_assert_eq(PQresultStatus(res), PGRES_TUPLES_OK, "%s", PQresultErrorMessage(res));
    char *out = calloc(1, 64 * (size_t)PQntuples(res) + 1);
    for (int r = 0; r < PQntuples(res); r++)
        sprintf(out + strlen(out), "%s%s %s %s %s", r ? "; " : "", PQgetvalue(res, r, 0),
                PQgetvalue(res, r, 1), PQgetvalue(res, r, 2), PQgetvalue(res, r, 3));
    PQclear(res);
    return out;
}

/* Applies one event for employee `personnel` (state planned) on conn; asserts it was created. */
static void apply_one(PGconn *conn, const char *personnel, int n)
{
    char ev[512], body[520];
    planned_event(ev, sizeof ev, 0, n, personnel, n);
    snprintf(body, sizeof body, "[%s]", ev);
    char *got = apply_group(conn, body);
    cr_assert_str_eq(got, "0 created 201 ", "event %d for %s", n, personnel);
    free(got);
}

/* A group with an event_id that is taken (schema/004 inserts without ON CONFLICT): the
 * set-based writes are rolled back and the group goes the serial way, which answers every event
 * as before; nothing of the first attempt stays behind. A retry that its state now refuses is
 * answered as the retry it is, on the set-based path. */
Test(schema, a_taken_event_id_rolls_the_group_back_and_answers_it_serially)
{
    static const char planned[] = "SELECT coalesce(sum(n), 0) FROM progress_counter"
                                  " WHERE item = 'wlan_autologin' AND state = 'planned'";
    PGconn *c = service_conn();
    apply_one(c, "P0000001", 1);
    int before = th_sql_int(&db, planned);
    cr_assert_eq(before, 1);
    /* P0000001: the same event again (planned to planned would be illegal); P0000003: a new
     * event under event 1's id; P0000002 and P0000004: new events */
    char ev[4][512], body[2100];
    planned_event(ev[0], sizeof ev[0], 0, 2, "P0000002", 2);
    planned_event(ev[1], sizeof ev[1], 1, 1, "P0000003", 3);
    planned_event(ev[2], sizeof ev[2], 2, 4, "P0000004", 4);
    planned_event(ev[3], sizeof ev[3], 3, 1, "P0000001", 1);

    /* the retry alone (no taken id to roll back): the set-based path answers it */
    char retry[512];
    planned_event(retry, sizeof retry, 0, 1, "P0000001", 1);
    snprintf(body, sizeof body, "[%s]", retry);
    char *got = apply_group(c, body);
    cr_expect_str_eq(got, "0 duplicate 200 ");
    free(got);

    snprintf(body, sizeof body, "[%s, %s, %s, %s]", ev[0], ev[1], ev[2], ev[3]);
    got = apply_group(c, body);
    cr_expect_str_eq(got, "0 created 201 ; 1 rejected 409 event_id_conflict; 2 created 201 ; "
                          "3 duplicate 200 ",
                     "one answer per event, each once");
    free(got);
    PQfinish(c);
    /* stored once: events 1, 2 and 4; the states and counters of 2 and 4, counted once */
    cr_expect_eq(th_sql_int(&db, "SELECT count(*) FROM event"), 3);
    cr_expect_eq(th_sql_int(&db, "SELECT count(*) FROM item_state s JOIN employee e"
                                 " ON e.id = s.employee_id WHERE e.personnel_number = 'P0000003'"),
                 0);
    cr_expect_eq(th_sql_int(&db, "SELECT count(*) FROM item_state"), 3);
    cr_expect_eq(th_sql_int(&db, planned), before + 2);
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
    PGconn *c = service_conn();
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

/* The counter shard that conn's open transaction wrote to. The rows it changed carry its xid or
 * that of a subtransaction (schema/004 writes in one), assigned after it; rows of a transaction
 * that started later are not visible to it before they commit, and none commits meanwhile. */
static int lane_written(PGconn *conn)
{
    PGresult *res = PQexec(conn, "SELECT min(shard), max(shard) FROM progress_count"
                                 " WHERE xmin::text::bigint >= txid_current() % 4294967296");
    cr_assert_eq(PQresultStatus(res), PGRES_TUPLES_OK, "%s", PQresultErrorMessage(res));
    cr_assert(!PQgetisnull(res, 0, 0), "the transaction wrote no counter row");
    cr_assert_str_eq(PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1), "one transaction, two shards");
    int lane = atoi(PQgetvalue(res, 0, 0));
    PQclear(res);
    return lane;
}

/* Concurrent group commits write to different counter rows (none waits for another's), and the
 * shards in use stay as many as the writers that ran at once: a new connection does not start a
 * new shard (a shard per backend pid made the rows a reader sums grow with every reconnect). */
Test(schema, counter_lanes_stay_as_few_as_concurrent_writers)
{
    PGconn *c[3];
    int lane[3];
    for (int k = 0; k < 3; k++) {
        c[k] = service_conn();
        PQclear(PQexec(c[k], "BEGIN"));
        char who[16];
        snprintf(who, sizeof who, "P%07d", k + 1);
        apply_one(c[k], who, 100 + k);
        lane[k] = lane_written(c[k]);
    }
    /* three transactions open at once: three lanes, the first three */
    cr_expect_eq(lane[0] + lane[1] + lane[2], 0 + 1 + 2, "lanes %d %d %d", lane[0], lane[1],
                 lane[2]);
    cr_expect(lane[0] != lane[1] && lane[1] != lane[2] && lane[0] != lane[2], "lanes %d %d %d",
              lane[0], lane[1], lane[2]);
    for (int k = 0; k < 3; k++) {
        PQclear(PQexec(c[k], "COMMIT"));
        PQfinish(c[k]);
    }
    /* one writer at a time, each on a new connection (a new backend): always lane 0 */
    for (int k = 0; k < 5; k++) {
        PGconn *one = service_conn();
        PQclear(PQexec(one, "BEGIN"));
        char who[16];
        snprintf(who, sizeof who, "P%07d", 11 + k);
        apply_one(one, who, 200 + k);
        cr_expect_eq(lane_written(one), 0, "writer %d on a new connection", k);
        PQclear(PQexec(one, "COMMIT"));
        PQfinish(one);
    }
    cr_assert_eq(th_sql_int(&db, "SELECT max(shard) FROM progress_count"), 2);
}

/* 003 and 005 on a database that 002 wrote to: 003 folds the counters of every shard so far
 * into lane 0, 005 turns the rows per state into a row per office and item with a column per
 * state, and every sum stays what it was. The test takes both back out (their functions, 005's
 * table and view, their rows in schema_migrations; progress_counter again the table of 001) and
 * lets rolloutctl migrate apply them again. */
Test(schema, migrations_003_and_005_fold_the_counters_and_keep_the_sums)
{
    static const char sums[] =
        "SELECT coalesce(string_agg(format('%s/%s/%s=%s', dienststelle, item, state, n), ' '"
        "                           ORDER BY dienststelle, item, state), '')"
        "  FROM (SELECT dienststelle, item, state, sum(n) AS n FROM progress_counter"
        "         GROUP BY 1, 2, 3 HAVING sum(n) <> 0) x";
    static const char days[] =
        "SELECT coalesce(string_agg(format('%s/%s/%s=%s', day, dienststelle, item, n), ' '"
        "                           ORDER BY day, dienststelle, item), '')"
        "  FROM (SELECT day, dienststelle, item, sum(n) AS n FROM daily_done"
        "         GROUP BY 1, 2, 3 HAVING sum(n) <> 0) x";
    PQclear(th_sql(&db,
                   "DROP VIEW progress_counter;"
                   "DROP FUNCTION rollout_add_counts(text[], text[], rollout_state[], integer[],"
                   "                                 smallint);"
                   "DROP TABLE progress_count;"
                   "CREATE TABLE progress_counter ("
                   " dienststelle text NOT NULL REFERENCES dienststelle (code),"
                   " item text NOT NULL REFERENCES item (key), state rollout_state NOT NULL,"
                   " shard smallint NOT NULL CHECK (shard BETWEEN 0 AND 63), n bigint NOT NULL,"
                   " PRIMARY KEY (dienststelle, item, state, shard));"
                   "DROP FUNCTION rollout_counter_shard();"
                   "DELETE FROM schema_migrations WHERE version IN (3, 5)",
                   0, NULL));
    /* what shards by backend pid left behind: one office's counts spread over several shards */
    PQclear(th_sql(&db,
                   "INSERT INTO progress_counter (dienststelle, item, state, shard, n) VALUES"
                   " ('FIN-WI-01', 'mobile_device', 'active', 17, 5),"
                   " ('FIN-WI-01', 'mobile_device', 'active', 40, 2),"
                   " ('FIN-WI-01', 'mobile_device', 'planned', 40, -1),"
                   " ('FIN-WI-01', 'hessen_voice', 'ordered', 63, 3),"
                   " ('FIN-WI-01', 'hessen_voice', 'ordered', 9, -3)",
                   0, NULL));
    PQclear(th_sql(&db,
                   "INSERT INTO daily_done (day, dienststelle, item, shard, n) VALUES"
                   " ('2026-11-02', 'FIN-WI-01', 'mobile_device', 17, 4),"
                   " ('2026-11-02', 'FIN-WI-01', 'mobile_device', 33, 1)",
                   0, NULL));
    char *before = th_sql_text(&db, sums);
    char *days_before = th_sql_text(&db, days);
    cr_assert(strstr(before, "FIN-WI-01/mobile_device/active="), "%s", before);

    struct th_ctl_run r = th_ctl("--db", db.conninfo_super, "--schema-dir",
                                 ROLLOUT_SOURCE_DIR "/schema", "migrate", NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    th_assert_has(r.err, "applied 003_counter_lanes.sql");
    th_assert_has(r.err, "applied 005_state_columns.sql");
    th_ctl_run_free(&r);

    char *after = th_sql_text(&db, sums);
    char *days_after = th_sql_text(&db, days);
    cr_expect_str_eq(after, before);
    cr_expect_str_eq(days_after, days_before);
    cr_expect_eq(th_sql_int(&db, "SELECT count(*) FROM progress_count WHERE shard <> 0"), 0);
    cr_expect_eq(th_sql_int(&db, "SELECT count(*) FROM daily_done WHERE shard <> 0"), 0);
    /* one row per office and item with counts, none that counts nothing */
    cr_expect_eq(th_sql_int(&db, "SELECT count(*) FROM progress_count"),
                 th_sql_int(&db, "SELECT count(DISTINCT (dienststelle, item)) FROM progress_counter"));
    cr_expect_eq(th_sql_int(&db, "SELECT count(*) FROM progress_count WHERE (planned, ordered,"
                                 " delivered, active, returned, cancelled) = (0, 0, 0, 0, 0, 0)"),
                 0);
    /* the group commit writes the new table, and the service role reads it through the view */
    static const char planned[] =
        "SELECT coalesce(sum(n), 0) FROM progress_counter WHERE dienststelle = 'FIN-WI-01'"
        " AND item = 'wlan_autologin' AND state = 'planned'";
    long long planned_before = th_sql_int(&db, planned);
    PGconn *c = service_conn();
    apply_one(c, "P0000002", 300);
    PGresult *res = PQexec(c, planned);
    cr_assert_eq(PQresultStatus(res), PGRES_TUPLES_OK, "%s", PQresultErrorMessage(res));
    cr_expect_eq(atoll(PQgetvalue(res, 0, 0)), planned_before + 1);
    PQclear(res);
    PQfinish(c);
    free(before);
    free(after);
    free(days_before);
    free(days_after);
}

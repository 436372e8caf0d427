/* rolloutctl events import/export, verify and forget against the fixture (see harness.h):
 * the import applies exactly the API's rules through the same SQL function, twice the same file
 * changes nothing, verify finds what was corrupted on purpose, and forget leaves no personal
 * data while the totals stay. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness_cli.h"

static struct th_db db;
static char dir[64];

static void setup(void)
{
    th_db_create(&db);
    th_scratch_dir_create(dir, "rolloutctl-events");
}

static void teardown(void)
{
    th_scratch_dir_remove(dir);
    th_db_drop(&db);
}

TestSuite(cli_events, .init = setup, .fini = teardown, .timeout = 120);

#define ctl(...) th_ctl("--db", db.conninfo_admin, __VA_ARGS__)

static char *path_of(const char *name)
{
    char *p = malloc(256);
    snprintf(p, 256, "%s/%s", dir, name);
    return p;
}

/* Eight events that are all fine: two employees' items step by step, a device with an IMEI, a
 * note, features, and one late event (older than the state it would replace). */
static char *clean_events(void)
{
    char *d6 = th_days_ago(&db, 6), *d5 = th_days_ago(&db, 5), *d3 = th_days_ago(&db, 3),
         *d2 = th_days_ago(&db, 2), *d1 = th_days_ago(&db, 1);
    char id[8][37];
    for (int i = 0; i < 8; i++)
        th_uuid(id[i]);
    char *text = malloc(8192);
    snprintf(text, 8192,
             "{\"event_id\":\"%s\",\"employee\":\"P0000003\",\"item\":\"mobile_device\","
             "\"state\":\"ordered\",\"occurred_at\":\"%sT08:00:00Z\"}\n"
             "{\"event_id\":\"%s\",\"employee\":\"P0000003\",\"item\":\"mobile_device\","
             "\"state\":\"active\",\"occurred_at\":\"%sT08:00:00Z\","
             "\"device\":{\"serial\":\"5CG0TEST001\",\"model\":\"HP EliteBook 840\"}}\n"
             "{\"event_id\":\"%s\",\"employee\":\"P0000003\",\"item\":\"hessen_voice\","
             "\"state\":\"active\",\"occurred_at\":\"%sT09:00:00Z\","
             "\"features\":{\"cti\":true,\"one_number\":false}}\n"
             "{\"event_id\":\"%s\",\"employee\":\"P0000004\",\"item\":\"hessen_smartphone\","
             "\"state\":\"active\",\"occurred_at\":\"%sT10:00:00Z\","
             "\"device\":{\"serial\":\"R58N0TEST01\",\"model\":\"Galaxy A54\","
             "\"imei\":\"356938035643809\"},\"note\":\"Gerät an Testperson 4 übergeben\"}\n"
             "{\"event_id\":\"%s\",\"employee\":\"P0000021\",\"item\":\"wlan_autologin\","
             "\"state\":\"planned\",\"occurred_at\":\"%sT08:00:00Z\"}\n"
             "{\"event_id\":\"%s\",\"employee\":\"P0000021\",\"item\":\"wlan_autologin\","
             "\"state\":\"active\",\"occurred_at\":\"%sT08:00:00Z\"}\n"
             "{\"event_id\":\"%s\",\"employee\":\"P0000021\",\"item\":\"wlan_autologin\","
             "\"state\":\"planned\",\"occurred_at\":\"%sT08:00:00Z\"}\n"
             "{\"event_id\":\"%s\",\"employee\":\"P0000031\",\"item\":\"mobile_device\","
             "\"state\":\"planned\",\"occurred_at\":\"%sT12:30:00.25Z\"}\n",
             id[0], d3, id[1], d2, id[2], d2, id[3], d1, id[4], d5, id[5], d1, id[6], d6, id[7],
             d1);
    free(d6);
    free(d5);
    free(d3);
    free(d2);
    free(d1);
    return text;
}

/* Everything events may touch, as one fingerprint. */
static char *state_of_db(void)
{
    return th_sql_text(&db, "SELECT md5(concat_ws('#',"
                            " (SELECT string_agg(t::text, '|' ORDER BY t.id) FROM event t),"
                            " (SELECT string_agg(t::text, '|' ORDER BY t::text) FROM item_state t),"
                            " (SELECT string_agg(t::text, '|' ORDER BY t::text)"
                            "   FROM progress_counter t),"
                            " (SELECT string_agg(t::text, '|' ORDER BY t::text) FROM daily_done t),"
                            " (SELECT string_agg(t::text, '|' ORDER BY t::text) FROM device t),"
                            " (SELECT string_agg(t::text, '|' ORDER BY t::text)"
                            "   FROM device_holding t)))");
}

static void import_clean(void)
{
    char *path = path_of("clean.ndjson"), *events = clean_events();
    th_write_file(path, events);
    struct th_ctl_run r = ctl("events", "import", path, NULL);
    cr_assert_eq(r.status, 0, "exit %d\nstdout:\n%s\nstderr:\n%s", r.status, r.out, r.err);
    th_ctl_run_free(&r);
    free(events);
    free(path);
}

Test(cli_events, importing_the_same_file_twice_changes_nothing_the_second_time)
{
    char *path = path_of("clean.ndjson"), *events = clean_events();
    th_write_file(path, events);
    struct th_ctl_run r = ctl("events", "import", path, NULL);
    cr_assert_eq(r.status, 0, "first import: %s%s", r.out, r.err);
    cr_assert_str_eq(r.out, "1 created\n2 created\n3 created\n4 created\n5 created\n6 created\n"
                            "7 created\n8 created\n");
    th_assert_has(r.err, "8 events, 8 created, 0 duplicate, 0 rejected");
    th_ctl_run_free(&r);
    cr_assert_eq(th_sql_int(&db, "SELECT count(*) FROM event"), 8);
    cr_assert_eq(th_sql_int(&db, "SELECT count(*) FROM event WHERE NOT applied"), 1,
                 "the late event must be stored without being applied");
    char *state = th_sql_text(&db, "SELECT state FROM item_state s JOIN employee e ON e.id ="
                                   " s.employee_id WHERE e.personnel_number = 'P0000021'");
    cr_assert_str_eq(state, "active", "a late event moved the state backwards");
    free(state);

    char *before = state_of_db();
    r = ctl("events", "import", path, NULL);
    char *after = state_of_db();
    cr_assert_eq(r.status, 0, "second import: %s%s", r.out, r.err);
    cr_assert_str_eq(r.out, "1 duplicate\n2 duplicate\n3 duplicate\n4 duplicate\n5 duplicate\n"
                            "6 duplicate\n7 duplicate\n8 duplicate\n");
    th_assert_has(r.err, "8 events, 0 created, 8 duplicate, 0 rejected");
    cr_assert_str_eq(before, after, "the second import changed the database");
    th_ctl_run_free(&r);
    free(before);
    free(after);
    free(events);
    free(path);
}

Test(cli_events, every_line_gets_the_apis_answer)
{
    char *d1 = th_days_ago(&db, 1), *d2 = th_days_ago(&db, 2);
    char id[8][37];
    for (int i = 0; i < 8; i++)
        th_uuid(id[i]);
    char text[4096];
    snprintf(text, sizeof text,
             "{\"event_id\":\"%s\",\"employee\":\"P0000005\",\"item\":\"mobile_device\","
             "\"state\":\"active\",\"occurred_at\":\"%sT08:00:00Z\"}\n"
             "{\"event_id\": \"%s\", \"employee\": \n"
             "{\"event_id\":\"%s\",\"employee\":\"P0000005\",\"item\":\"mobile_device\","
             "\"state\":\"active\",\"occurred_at\":\"%sT08:00:00Z\",\"colour\":\"blue\"}\n"
             "{\"event_id\":\"%s\",\"employee\":\"P0000099\",\"item\":\"mobile_device\","
             "\"state\":\"active\",\"occurred_at\":\"%sT08:00:00Z\"}\n"
             "{\"event_id\":\"%s\",\"employee\":\"P0000005\",\"item\":\"mobile_device\","
             "\"state\":\"planned\",\"occurred_at\":\"%sT09:00:00Z\"}\n"
             "\n"
             "[{\"event_id\":\"%s\"}]\n"
             "{\"event_id\":\"%s\",\"employee\":\"P0000006\",\"item\":\"hessen_smartphone\","
             "\"state\":\"active\",\"occurred_at\":\"%sT08:00:00Z\","
             "\"device\":{\"serial\":\"R58BAD\",\"imei\":\"356938035643808\"}}\n",
             id[0], d2, id[1], id[2], d2, id[3], d2, id[4], d1, id[5], id[6], d1);
    free(d1);
    free(d2);
    char *path = path_of("mixed.ndjson");
    th_write_file(path, text);
    struct th_ctl_run r = ctl("events", "import", path, NULL);
    cr_assert_eq(r.status, 65, "exit %d with rejected lines; stderr:\n%s", r.status, r.err);
    char *lines[16];
    int n = 0;
    for (char *save = NULL, *l = strtok_r(r.out, "\n", &save); l && n < 16;
         l = strtok_r(NULL, "\n", &save))
        lines[n++] = l;
    cr_assert_eq(n, 7, "one result per non-blank line, got %d", n);
    cr_assert_str_eq(lines[0], "1 created");
    cr_assert(th_starts_with(lines[1], "2 rejected invalid_json "), "%s", lines[1]);
    cr_assert(th_starts_with(lines[2], "3 rejected unknown_field "), "%s", lines[2]);
    cr_assert_str_eq(lines[3],
                     "4 rejected unknown_employee no employee with personnel number P0000099");
    cr_assert_str_eq(lines[4], "5 rejected illegal_transition cannot go from active to planned for "
                               "mobile_device");
    cr_assert(th_starts_with(lines[5], "7 rejected invalid_body "), "%s", lines[5]);
    cr_assert(th_starts_with(lines[6], "8 rejected invalid_imei "), "%s", lines[6]);
    th_assert_has(r.err, "7 events, 1 created, 0 duplicate, 6 rejected");
    th_ctl_run_free(&r);
    cr_assert_eq(th_sql_int(&db, "SELECT count(*) FROM event"), 1);
    cr_assert_eq(th_sql_int(&db, "SELECT count(*) FROM device"), 0);
    free(path);
}

Test(cli_events, export_gives_back_what_import_reads)
{
    import_clean();
    struct th_ctl_run r = ctl("events", "export", NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    char *original = clean_events(); /* new ids, but the same shape line by line */
    int lines = 0;
    for (char *save = NULL, *l = strtok_r(r.out, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        json_error_t jerr;
        json_t *e = json_loads(l, 0, &jerr);
        cr_assert(e != NULL, "line %d is not JSON: %s", lines + 1, l);
        cr_assert(json_object_get(e, "event_id") && json_object_get(e, "occurred_at"), "%s", l);
        cr_assert(json_object_get(e, "hash") == NULL && json_object_get(e, "applied") == NULL,
                  "internal fields leaked into the export: %s", l);
        json_decref(e);
        lines++;
    }
    cr_assert_eq(lines, 8);
    free(original);
    th_ctl_run_free(&r);

    /* read back into the same database: every line a duplicate (same ids, same bodies) */
    r = ctl("events", "export", NULL);
    char *path = path_of("export.ndjson");
    th_write_file(path, r.out);
    th_ctl_run_free(&r);
    char *before = state_of_db();
    r = ctl("events", "import", path, NULL);
    char *after = state_of_db();
    cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
    th_assert_has(r.err, "8 events, 0 created, 8 duplicate, 0 rejected");
    cr_assert_str_eq(before, after);
    th_ctl_run_free(&r);

    r = ctl("events", "export", "--format", "csv", NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert(
        th_starts_with(r.out,
                       "event_id,employee,item,state,previous_state,applied,occurred_at,"
                       "received_at,device_serial,device_model,device_imei,features,note,token\n"),
        "%s", r.out);
    th_assert_has(r.out, ",P0000004,hessen_smartphone,active,,true,");
    th_assert_has(r.out, "356938035643809");
    th_ctl_run_free(&r);

    r = ctl("events", "export", "--since", "2999-01-01", NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_str_empty(r.out);
    th_ctl_run_free(&r);
    free(before);
    free(after);
    free(path);
}

Test(cli_events, verify_is_quiet_when_the_books_agree)
{
    import_clean();
    struct th_ctl_run r = ctl("verify", NULL);
    cr_assert_eq(r.status, 0, "verify found differences in a clean database:\n%s%s", r.out, r.err);
    cr_assert_str_empty(r.out);
    th_ctl_run_free(&r);
}

Test(cli_events, verify_finds_a_counter_corrupted_on_purpose)
{
    import_clean();
    PQclear(
        th_sql(&db,
               "UPDATE progress_count SET active = active + 1 WHERE (dienststelle, item, shard) ="
               " (SELECT dienststelle, item, shard FROM progress_count"
               "  WHERE dienststelle = 'FIN-WI-01' AND item = 'mobile_device' AND active <> 0"
               "  LIMIT 1)",
               0, NULL));
    struct th_ctl_run r = ctl("verify", NULL);
    cr_assert_eq(r.status, 1, "exit %d; stdout:\n%s", r.status, r.out);
    cr_assert_str_eq(r.out, "counter FIN-WI-01 mobile_device active: progress_counter sums to 2, "
                            "the current states count 1\n");
    th_assert_has(r.err, "1 difference");
    th_ctl_run_free(&r);

    /* a counter row for a combination nobody is in must sum to 0 */
    PQclear(
        th_sql(&db,
               "UPDATE progress_count SET active = active - 1 WHERE dienststelle = 'FIN-WI-01'"
               " AND item = 'mobile_device' AND active <> 0;"
               "INSERT INTO progress_count (dienststelle, item, shard, returned)"
               " VALUES ('JUS-F-01', 'hessen_voice', 9, 1)",
               0, NULL));
    r = ctl("verify", NULL);
    cr_assert_eq(r.status, 1);
    cr_assert_str_eq(r.out, "counter JUS-F-01 hessen_voice returned: progress_counter sums to 1, "
                            "the current states count 0\n");
    th_ctl_run_free(&r);
}

Test(cli_events, verify_finds_a_wrong_state_and_a_wrong_day)
{
    import_clean();
    PQclear(th_sql(
        &db,
        "UPDATE item_state SET state = 'delivered' WHERE item = 'hessen_voice' AND employee_id"
        " = (SELECT id FROM employee WHERE personnel_number = 'P0000003');"
        "UPDATE daily_done SET n = n + 5 WHERE item = 'wlan_autologin'",
        0, NULL));
    struct th_ctl_run r = ctl("verify", NULL);
    cr_assert_eq(r.status, 1);
    th_assert_has(r.out, "state P0000003 hessen_voice: current state delivered since ");
    th_assert_has(r.out, "but the event log ends in active");
    th_assert_has(r.out, "daily_done ");
    th_assert_has(r.out, " INN-WI-01 wlan_autologin: daily_done sums to 6, the event log gives 1");
    /* the state now disagrees with its counter too */
    th_assert_has(r.out, "counter FIN-WI-01 hessen_voice active: progress_counter sums to 1, the "
                         "current states count 0");
    th_ctl_run_free(&r);
}

/* Rows of all tables of the schema whose text contains needle; report: log where. */
static long long rows_mentioning(const char *needle, bool report)
{
    PGresult *tables = th_sql(&db,
                              "SELECT table_name FROM information_schema.tables"
                              " WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
                              0, NULL);
    long long total = 0;
    for (int i = 0; i < PQntuples(tables); i++) {
        char sql[512];
        snprintf(sql, sizeof sql, "SELECT count(*) FROM \"%s\" t WHERE t::text LIKE '%%%s%%'",
                 PQgetvalue(tables, i, 0), needle);
        long long n = th_sql_int(&db, sql);
        if (n && report)
            cr_log_error("table %s still holds \"%s\" in %lld rows", PQgetvalue(tables, i, 0),
                         needle, n);
        total += n;
    }
    PQclear(tables);
    return total;
}

Test(cli_events, forget_leaves_no_personal_data_and_keeps_the_totals)
{
    import_clean();
    struct th_ctl_run r = ctl("employee", "show", "P0000004", NULL); /* an access log entry */
    cr_assert_eq(r.status, 0, "%s", r.err);
    th_ctl_run_free(&r);
    char *totals = th_sql_text(&db, "SELECT string_agg(item || ' ' || state || ' ' || n, ', '"
                                    " ORDER BY item, state) FROM (SELECT item, state, sum(n) AS n"
                                    " FROM progress_counter GROUP BY item, state) x");
    long long days = th_sql_int(&db, "SELECT sum(n) FROM daily_done");
    long long id = th_sql_int(&db, "SELECT id FROM employee WHERE personnel_number = 'P0000004'");
    cr_assert(rows_mentioning("Testperson 4", false) > 0, "the test data lacks the name");

    r = ctl("forget", "P0000004", "--yes", NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_str_empty(r.out);
    th_assert_has(r.err, "Removed:");
    th_assert_has(r.err, "the personnel number P0000004 and the name");
    th_assert_has(r.err, "1 free-text note");
    th_assert_has(r.err, "R58N0TEST01");
    th_assert_has(r.err, "Kept, with nothing that names the person:");
    th_assert_has(r.err, "the counts per Dienststelle, Ressort and overall");
    th_assert_has(r.err, "erased by rolloutctl:rolloutctl");
    th_ctl_run_free(&r);

    cr_assert_eq(rows_mentioning("P0000004", true), 0, "the personnel number survived");
    cr_assert_eq(rows_mentioning("Testperson 4", true), 0,
                 "the name (or the note naming it) survived");
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM event WHERE employee_id = %lld AND (note IS NOT NULL OR"
             " device_serial IS NOT NULL OR device_imei IS NOT NULL OR request_hash IS NOT NULL)",
             id);
    cr_assert_eq(th_sql_int(&db, sql), 0, "event details of the person survived");
    snprintf(sql, sizeof sql, "SELECT count(*) FROM device WHERE holder_id = %lld", id);
    cr_assert_eq(th_sql_int(&db, sql), 0, "a device is still linked to the person");
    snprintf(sql, sizeof sql, "SELECT count(*) FROM device_holding WHERE employee_id = %lld", id);
    cr_assert_eq(th_sql_int(&db, sql), 0, "a holding still names the person");
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM erasure WHERE employee_id = %lld"
             " AND erased_by = 'rolloutctl:rolloutctl'",
             id);
    cr_assert_eq(th_sql_int(&db, sql), 1, "the erasure was not recorded");

    char *after = th_sql_text(&db, "SELECT string_agg(item || ' ' || state || ' ' || n, ', '"
                                   " ORDER BY item, state) FROM (SELECT item, state, sum(n) AS n"
                                   " FROM progress_counter GROUP BY item, state) x");
    cr_assert_str_eq(after, totals, "the totals changed");
    cr_assert_eq(th_sql_int(&db, "SELECT sum(n) FROM daily_done"), days);
    r = ctl("verify", NULL);
    cr_assert_eq(r.status, 0, "verify after forget:\n%s", r.out);
    th_ctl_run_free(&r);

    r = ctl("forget", "P0000004", "--yes", NULL);
    cr_assert_eq(r.status, 65, "forgetting twice: exit %d", r.status);
    th_ctl_run_free(&r);
    free(totals);
    free(after);
}

Test(cli_events, forget_off_a_terminal_needs_yes)
{
    struct th_ctl_run r = ctl("forget", "P0000004", NULL);
    cr_assert_eq(r.status, 64, "exit %d", r.status);
    th_assert_has(r.err, "--yes");
    th_ctl_run_free(&r);
    cr_assert_eq(th_sql_int(&db, "SELECT count(*) FROM employee WHERE personnel_number ="
                                 " 'P0000004' AND name = 'Testperson 4'"),
                 1);
    cr_assert_eq(th_sql_int(&db, "SELECT count(*) FROM erasure"), 0);
}

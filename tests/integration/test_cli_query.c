/* rolloutctl search, progress, report, employee show and device show, checked against figures
 * worked out by hand from the fixture (see harness.h) and a few events posted through
 * `rolloutctl events import`:
 *   hessen_smartphone  P0000001 active, P0000002 ordered (FIN-WI-01), P0000011 active
 *                      (FIN-KS-01), P0000021 active (INN-WI-01)
 *   mobile_device      P0000003 active then returned with device 5CG0QUERY01, which P0000004
 *                      then gets (active); all FIN-WI-01
 *   wlan_autologin     P0000031 planned (JUS-F-01)
 * all within the last 7 days. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness_cli.h"

static struct th_db db;
static char dir[64];

#define ctl(...) th_ctl("--db", db.conninfo_admin, __VA_ARGS__)

static int count_lines(const char *text)
{
    int n = 0;
    for (const char *p = text; *p; p++)
        n += *p == '\n';
    return n;
}

static void setup(void)
{
    th_db_create(&db);
    th_scratch_dir_create(dir, "rolloutctl-query");

    char *d3 = th_days_ago(&db, 3);
    char *d2 = th_days_ago(&db, 2);
    char *d1 = th_days_ago(&db, 1);
    static const struct {
        const char *employee, *item, *state;
        int day; /* days ago */
        const char *time, *extra;
    } ev[] = {
        {"P0000001", "hessen_smartphone", "active", 2, "09:00:00", ""},
        {"P0000002", "hessen_smartphone", "ordered", 2, "09:00:00", ""},
        {"P0000011", "hessen_smartphone", "active", 1, "09:00:00", ""},
        {"P0000021", "hessen_smartphone", "active", 1, "09:00:00", ""},
        {"P0000003", "mobile_device", "active", 3, "09:00:00",
         ",\"device\":{\"serial\":\"5CG0QUERY01\",\"model\":\"Dell Latitude 5440\"}"},
        {"P0000003", "mobile_device", "returned", 1, "08:00:00",
         ",\"device\":{\"serial\":\"5CG0QUERY01\"}"},
        {"P0000004", "mobile_device", "active", 1, "10:00:00",
         ",\"device\":{\"serial\":\"5CG0QUERY01\"}"},
        {"P0000031", "wlan_autologin", "planned", 3, "09:00:00", ""},
    };
    const char *days[] = {NULL, d1, d2, d3};
    char path[256];
    snprintf(path, sizeof path, "%s/events.ndjson", dir);
    FILE *f = fopen(path, "w");
    cr_assert(f != NULL);
    for (size_t i = 0; i < sizeof ev / sizeof ev[0]; i++) {
        char id[37];
        th_uuid(id);
        fprintf(f,
                "{\"event_id\":\"%s\",\"employee\":\"%s\",\"item\":\"%s\",\"state\":\"%s\","
                "\"occurred_at\":\"%sT%sZ\"%s}\n",
                id, ev[i].employee, ev[i].item, ev[i].state, days[ev[i].day], ev[i].time,
                ev[i].extra);
    }
    fclose(f);
    free(d1);
    free(d2);
    free(d3);
    struct th_ctl_run r = ctl("events", "import", path, NULL);
    cr_assert_eq(r.status, 0, "setting up the events failed:\n%s%s", r.out, r.err);
    th_ctl_run_free(&r);
}

static void teardown(void)
{
    th_scratch_dir_remove(dir);
    th_db_drop(&db);
}

TestSuite(cli_query, .init = setup, .fini = teardown, .timeout = 120);

Test(cli_query, search_finds_hmdf_without_an_active_smartphone)
{
    struct th_ctl_run r = ctl("search", "--ressort", "HMdF", "--item", "hessen_smartphone",
                              "--not-state", "active", "--format", "csv", NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert(th_starts_with(
                  r.out, "personnel_number,ressort,dienststelle,mobile_device,hessen_smartphone,"
                         "hessen_voice,wlan_autologin,name\n"),
              "%s", r.out);
    cr_assert_eq(count_lines(r.out), 1 + 18, "HMdF has 20 employees, 2 with an active phone");
    th_assert_has(r.out, "\nP0000002,HMdF,FIN-WI-01,,ordered,,,Testperson 2\n");
    th_assert_has(r.out, "\nP0000003,HMdF,FIN-WI-01,returned,,,,Testperson 3\n");
    th_assert_has(r.out, "\nP0000012,HMdF,FIN-KS-01,,,,,\n");
    cr_assert(strstr(r.out, "P0000001,") == NULL && strstr(r.out, "P0000011,") == NULL);
    cr_assert(strstr(r.out, "P0000021") == NULL, "another Ressort came in");
    th_ctl_run_free(&r);
}

Test(cli_query, search_filters_and_formats)
{
    struct th_ctl_run r =
        ctl("search", "--item", "mobile_device", "--state", "active", "--format", "json", NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    json_error_t jerr;
    json_t *list = json_loads(r.out, 0, &jerr);
    cr_assert(json_is_array(list) && json_array_size(list) == 1, "%s", r.out);
    json_t *e = json_array_get(list, 0);
    cr_assert_str_eq(json_string_value(json_object_get(e, "personnel_number")), "P0000004");
    cr_assert_str_eq(json_string_value(json_object_get(e, "mobile_device")), "active");
    cr_assert(json_is_null(json_object_get(e, "hessen_voice")));
    json_decref(list);
    th_ctl_run_free(&r);

    r = ctl("search", "--dienststelle", "JUS-F-01", "--state", "none", NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert(th_starts_with(r.out, "PERSONNEL_NUMBER  RESSORT  DIENSTSTELLE"), "%s", r.out);
    cr_assert_eq(count_lines(r.out), 1 + 9, "P0000031 has a state, the other 9 none:\n%s", r.out);
    cr_assert(strstr(r.out, "P0000031") == NULL);
    th_ctl_run_free(&r);

    r = ctl("search", "--not-state", "none", "--format", "csv", NULL);
    cr_assert_eq(count_lines(r.out), 1 + 7, "%s", r.out);
    th_ctl_run_free(&r);

    r = ctl("search", "--ressort", "HMXX", NULL);
    cr_assert_eq(r.status, 65);
    th_ctl_run_free(&r);
    r = ctl("search", "--state", "lost", NULL);
    cr_assert_eq(r.status, 64);
    th_ctl_run_free(&r);
}

/* The progress item object for key in a GET /v1/progress-shaped document. */
static json_t *item_of(json_t *doc, const char *key)
{
    json_t *items = json_object_get(doc, "items");
    for (size_t i = 0; i < json_array_size(items); i++) {
        json_t *it = json_array_get(items, i);
        if (strcmp(json_string_value(json_object_get(it, "item")), key) == 0)
            return it;
    }
    cr_assert_fail("no item %s", key);
    return NULL;
}

static json_t *progress(const char *opt, const char *value)
{
    struct th_ctl_run r = opt ? ctl("progress", opt, value, "--format", "json", NULL)
                              : ctl("progress", "--format", "json", NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    json_error_t jerr;
    json_t *doc = json_loads(r.out, 0, &jerr);
    cr_assert(doc != NULL, "not JSON: %s", r.out);
    th_ctl_run_free(&r);
    return doc;
}

static long long num(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    cr_assert(json_is_integer(v), "%s is not a whole number", key);
    return (long long)json_integer_value(v);
}

static const char *str(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static char *days_from_today(int n)
{
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT ((now() AT TIME ZONE 'Europe/Berlin')::date + %d)::text", n);
    return th_sql_text(&db, sql);
}

Test(cli_query, progress_gives_the_apis_figures)
{
    json_t *doc = progress(NULL, NULL);
    cr_assert(json_is_null(json_object_get(json_object_get(doc, "scope"), "ressort")));
    json_t *sp = item_of(doc, "hessen_smartphone");
    cr_assert_eq(num(sp, "target"), 40);
    cr_assert_str_eq(str(sp, "target_source"), "overall");
    cr_assert_str_eq(str(sp, "deadline"), "2027-12-31");
    json_t *counts = json_object_get(sp, "counts");
    cr_assert_eq(num(counts, "active"), 3);
    cr_assert_eq(num(counts, "ordered"), 1);
    cr_assert_eq(num(counts, "planned"), 0);
    cr_assert_eq(num(sp, "done"), 3);
    cr_assert_float_eq(json_real_value(json_object_get(sp, "ratio")), 0.075, 1e-9);
    cr_assert_eq(num(sp, "rate_7d"), 3);
    /* 37 to go at 3 a week: ceil(37 * 7 / 3) = 87 days */
    char *expect = days_from_today(87);
    cr_assert_str_eq(str(sp, "forecast"), expect);
    free(expect);
    json_t *md = item_of(doc, "mobile_device");
    cr_assert_eq(num(json_object_get(md, "counts"), "returned"), 1);
    cr_assert_eq(num(md, "done"), 1);
    cr_assert_eq(num(md, "rate_7d"), 1, "+1 (P0000003), -1 (returned), +1 (P0000004)");
    json_decref(doc);

    doc = progress("--ressort", "HMdF");
    cr_assert_str_eq(str(json_object_get(doc, "scope"), "ressort"), "HMdF");
    sp = item_of(doc, "hessen_smartphone");
    cr_assert_eq(num(sp, "target"), 15);
    cr_assert_str_eq(str(sp, "target_source"), "ressort");
    cr_assert_str_eq(str(sp, "deadline"), "2027-06-30");
    cr_assert_eq(num(sp, "done"), 2);
    cr_assert_eq(num(sp, "rate_7d"), 2);
    expect = days_from_today(46); /* ceil(13 * 7 / 2) */
    cr_assert_str_eq(str(sp, "forecast"), expect);
    free(expect);
    md = item_of(doc, "mobile_device");
    cr_assert_eq(num(md, "target"), 20, "pro rata: 40 * 20 / 40");
    cr_assert_str_eq(str(md, "target_source"), "pro_rata");
    json_decref(doc);

    doc = progress("--ressort", "HMdIS");
    sp = item_of(doc, "hessen_smartphone");
    cr_assert_eq(num(sp, "target"), 10);
    cr_assert_str_eq(str(sp, "target_source"), "pro_rata");
    cr_assert_eq(num(sp, "done"), 1);
    json_decref(doc);

    doc = progress("--dienststelle", "FIN-KS-01");
    cr_assert_str_eq(str(json_object_get(doc, "scope"), "ressort"), "HMdF");
    sp = item_of(doc, "hessen_smartphone");
    cr_assert_eq(num(sp, "target"), 8, "round(15 * 10 / 20)");
    cr_assert_str_eq(str(sp, "target_source"), "pro_rata");
    cr_assert_eq(num(sp, "done"), 1);
    json_decref(doc);

    doc = progress("--ressort", "HMdJ");
    md = item_of(doc, "mobile_device");
    cr_assert_eq(num(md, "done"), 0);
    cr_assert_eq(num(md, "rate_7d"), 0);
    cr_assert(json_is_null(json_object_get(md, "forecast")));
    cr_assert(json_is_false(json_object_get(md, "on_track")));
    json_decref(doc);

    struct th_ctl_run r = ctl("progress", "--ressort", "HMXX", NULL);
    cr_assert_eq(r.status, 65);
    th_ctl_run_free(&r);
    r = ctl("progress", "--ressort", "HMdJ", "--dienststelle", "FIN-KS-01", NULL);
    cr_assert_eq(r.status, 65);
    th_assert_has(r.err, "FIN-KS-01 belongs to Ressort HMdF");
    th_ctl_run_free(&r);

    r = ctl("progress", "--format", "csv", NULL);
    cr_assert_eq(r.status, 0);
    cr_assert(th_starts_with(r.out, "item,title,target,target_source,deadline,planned,ordered,"));
    th_assert_has(r.out, "\nhessen_smartphone,HessenSmartphone,40,overall,2027-12-31,0,1,0,3,0,0,3,"
                         "0.0750,3,");
    th_ctl_run_free(&r);
    r = ctl("progress", NULL);
    cr_assert_eq(r.status, 0);
    th_assert_has(r.out, "hessen_smartphone");
    cr_assert(strstr(r.out, "\033[") == NULL, "colour on a pipe");
    th_ctl_run_free(&r);
}

Test(cli_query, report_has_a_row_per_office_and_item)
{
    struct th_ctl_run r = ctl("report", NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    static const char header[] =
        "ressort,dienststelle,item,planned,ordered,delivered,active,returned,cancelled,headcount\n";
    cr_assert(th_starts_with(r.out, header), "%s", r.out);
    cr_assert_eq(count_lines(r.out), 1 + 4 * 4);
    th_assert_has(r.out, "\nHMdF,FIN-KS-01,mobile_device,0,0,0,0,0,0,10\n");
    th_assert_has(r.out, "\nHMdF,FIN-WI-01,mobile_device,0,0,0,1,1,0,10\n");
    th_assert_has(r.out, "\nHMdF,FIN-WI-01,hessen_smartphone,0,1,0,1,0,0,10\n");
    th_assert_has(r.out, "\nHMdIS,INN-WI-01,hessen_smartphone,0,0,0,1,0,0,10\n");
    th_assert_has(r.out, "\nHMdJ,JUS-F-01,wlan_autologin,1,0,0,0,0,0,10\n");
    /* ordered by Ressort, Dienststelle and the item catalogue */
    cr_assert(strstr(r.out, "HMdF,FIN-KS-01,") < strstr(r.out, "HMdF,FIN-WI-01,"));
    cr_assert(strstr(r.out, "FIN-WI-01,mobile_device") < strstr(r.out, "FIN-WI-01,wlan_autologin"));
    th_ctl_run_free(&r);

    r = ctl("report", "--ressort", "HMdIS", NULL);
    cr_assert_eq(count_lines(r.out), 1 + 4);
    th_ctl_run_free(&r);
}

Test(cli_query, employee_show_tells_all_and_records_the_read)
{
    struct th_ctl_run r = ctl("employee", "show", "P0000003", NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    th_assert_has(r.out, "Employee      P0000003");
    th_assert_has(r.out, "Testperson 3");
    th_assert_has(r.out, "FIN-WI-01 – Finanzamt Wiesbaden I (Wiesbaden)");
    th_assert_has(r.out, "mobile_device      returned");
    th_assert_has(r.out, "Devices held: none");
    const char *history = strstr(r.out, "History");
    cr_assert(history != NULL);
    cr_assert(strstr(history, "returned") < strstr(history, "active"),
              "history not newest first:\n%s", r.out);
    th_ctl_run_free(&r);
    cr_assert_eq(th_sql_int(&db, "SELECT count(*) FROM access_log a JOIN employee e ON e.id ="
                                 " a.employee_id WHERE e.personnel_number = 'P0000003' AND"
                                 " a.action = 'cli.employee.show' AND a.actor ="
                                 " 'rolloutctl:rolloutctl'"),
                 1);

    r = ctl("employee", "show", "P0000004", "--format", "json", NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    json_error_t jerr;
    json_t *doc = json_loads(r.out, 0, &jerr);
    cr_assert(doc != NULL, "%s", r.out);
    cr_assert_str_eq(str(doc, "ressort"), "HMdF");
    json_t *md = json_object_get(json_object_get(doc, "items"), "mobile_device");
    cr_assert_str_eq(str(md, "state"), "active");
    json_t *devices = json_object_get(doc, "devices");
    cr_assert_eq(json_array_size(devices), 1);
    cr_assert_str_eq(str(json_array_get(devices, 0), "serial"), "5CG0QUERY01");
    cr_assert_str_eq(str(json_array_get(devices, 0), "model"), "Dell Latitude 5440");
    cr_assert_eq(json_array_size(json_object_get(doc, "events")), 1);
    json_decref(doc);
    th_ctl_run_free(&r);

    r = ctl("employee", "show", "P0009999", NULL);
    cr_assert_eq(r.status, 65);
    th_assert_has(r.err, "P0009999");
    th_ctl_run_free(&r);
}

Test(cli_query, device_show_names_its_holders)
{
    struct th_ctl_run r = ctl("device", "show", "5CG0QUERY01", NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    th_assert_has(r.out, "Item     mobile_device");
    th_assert_has(r.out, "Holder   P0000004 (since ");
    char *p4 = strstr(r.out, "\nP0000004 "), *p3 = strstr(r.out, "\nP0000003 ");
    cr_assert(p4 && p3 && p4 < p3, "holders not newest first:\n%s", r.out);
    th_ctl_run_free(&r);

    r = ctl("device", "show", "5CG0QUERY01", "--format", "json", NULL);
    json_error_t jerr;
    json_t *doc = json_loads(r.out, 0, &jerr);
    cr_assert(doc != NULL, "%s", r.out);
    cr_assert_str_eq(str(doc, "holder"), "P0000004");
    json_t *holders = json_object_get(doc, "holders");
    cr_assert_eq(json_array_size(holders), 2);
    cr_assert(json_is_null(json_object_get(json_array_get(holders, 0), "until")));
    cr_assert_str_eq(str(json_array_get(holders, 1), "employee"), "P0000003");
    cr_assert(str(json_array_get(holders, 1), "until") != NULL);
    json_decref(doc);
    th_ctl_run_free(&r);
    cr_assert_eq(th_sql_int(&db, "SELECT count(*) FROM access_log WHERE action = "
                                 "'cli.device.show'"),
                 4, "two reads, two people each");

    r = ctl("device", "show", "NO-SUCH-DEVICE", NULL);
    cr_assert_eq(r.status, 65);
    th_ctl_run_free(&r);
}

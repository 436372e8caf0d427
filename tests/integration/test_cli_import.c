/* rolloutctl import: a good file is merged (and a moved employee takes their counts along), a
 * bad file changes nothing and names every bad line with its reason. Runs the real rolloutctl
 * as the admins' role against the fixture (see harness.h). */
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
    th_scratch_dir_create(dir, "rolloutctl-import");
}

static void teardown(void)
{
    th_scratch_dir_remove(dir);
    th_db_drop(&db);
}

TestSuite(cli_import, .init = setup, .fini = teardown, .timeout = 120);

/* rolloutctl --db <admin conninfo> ARGS... (NULL-terminated) */
#define ctl(...) th_ctl("--db", db.conninfo_admin, __VA_ARGS__)

/* Writes a file into the test's directory; returns its path (static buffer per call site). */
static const char *file(const char *name, const char *content)
{
    static char paths[8][256];
    static int next;
    char *path = paths[next++ % 8];
    snprintf(path, 256, "%s/%s", dir, name);
    th_write_file(path, content);
    return path;
}

/* A fingerprint of everything an import may touch. */
static char *state_of_db(void)
{
    return th_sql_text(&db,
                       "SELECT md5(concat_ws('#',"
                       " (SELECT string_agg(t::text, '|' ORDER BY t::text) FROM ressort t),"
                       " (SELECT string_agg(t::text, '|' ORDER BY t::text) FROM dienststelle t),"
                       " (SELECT string_agg(t::text, '|' ORDER BY t::text) FROM employee t),"
                       " (SELECT string_agg(t::text, '|' ORDER BY t::text)"
                       "   FROM progress_count t),"
                       " (SELECT string_agg(t::text, '|' ORDER BY t::text) FROM daily_done t)))");
}

/* Imports a bad file, checks nothing changed and every expected "FILE:LINE: ..." was named. */
static void expect_refused(const char *what, const char *path, const char *const *expected)
{
    char *before = state_of_db();
    struct th_ctl_run r = ctl("import", what, path, NULL);
    char *after = state_of_db();
    cr_assert_eq(r.status, 65, "exit status %d, expected 65; stderr:\n%s", r.status, r.err);
    cr_assert_str_eq(before, after, "a refused import changed the database");
    for (const char *const *e = expected; *e; e++) {
        char want[512];
        snprintf(want, sizeof want, "%s:%s", path, *e);
        th_assert_has(r.err, want);
    }
    cr_assert_str_empty(r.out, "output on stdout: %s", r.out);
    free(before);
    free(after);
    th_ctl_run_free(&r);
}

Test(cli_import, good_files_are_merged_with_a_summary)
{
    struct th_ctl_run r =
        ctl("import", "ressorts",
            file("ressorts.csv", "ressort,name\n"
                                 "HMdF,Hessisches Ministerium der Finanzen\n"
                                 "HMWK,\"Hessisches Ministerium für Wissenschaft und "
                                 "Forschung, Kunst und Kultur\"\n"),
            NULL);
    cr_assert_eq(r.status, 0, "ressorts: %s", r.err);
    th_assert_has(r.err, "2 rows, 1 unchanged, 0 updated, 1 inserted");
    th_ctl_run_free(&r);

    /* columns in another order, Windows line ends, a byte order mark */
    r = ctl("import", "dienststellen",
            file("dst.csv", "\xEF\xBB\xBF"
                            "ressort,dienststelle,city,name\r\n"
                            "HMWK,MUS-KS-001,Kassel,Museumslandschaft Hessen Kassel\r\n"
                            "HMdF,FIN-KS-01,Kassel,Finanzamt Kassel I\r\n"),
            NULL);
    cr_assert_eq(r.status, 0, "dienststellen: %s", r.err);
    th_assert_has(r.err, "2 rows, 0 unchanged, 1 updated, 1 inserted");
    th_ctl_run_free(&r);
    cr_assert_eq(th_sql_int(&db, "SELECT count(*) FROM dienststelle WHERE code = 'FIN-KS-01'"
                                 " AND name = 'Finanzamt Kassel I'"),
                 1);
    cr_assert_eq(th_sql_int(&db, "SELECT count(*) FROM ressort WHERE name LIKE '%Kunst und "
                                 "Kultur'"),
                 1, "the quoted comma did not survive");

    r = ctl("import", "employees",
            file("emp.csv", "personnel_number,dienststelle,name\n"
                            "P0000001,FIN-WI-01,Testperson 1\n"
                            "P0000041,MUS-KS-001,\"Neu, Anna\"\n"
                            "P0000002,FIN-WI-01,Umbenannt\n"),
            NULL);
    cr_assert_eq(r.status, 0, "employees: %s", r.err);
    th_assert_has(r.err, "3 rows, 1 unchanged, 1 updated, 1 inserted");
    cr_assert_str_empty(r.out);
    th_ctl_run_free(&r);
    cr_assert_eq(th_sql_int(&db,
                            "SELECT count(*) FROM employee WHERE personnel_number ="
                            " 'P0000041' AND dienststelle = 'MUS-KS-001' AND name = 'Neu, Anna'"),
                 1);
    cr_assert_eq(th_sql_int(&db, "SELECT count(*) FROM employee"), 41,
                 "rows missing from the file must not be deleted");
}

Test(cli_import, a_file_without_names_keeps_the_names)
{
    struct th_ctl_run r =
        ctl("import", "employees",
            file("emp.csv", "personnel_number,dienststelle\nP0000001,FIN-KS-01\n"), NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    th_ctl_run_free(&r);
    char *name = th_sql_text(&db, "SELECT name FROM employee WHERE personnel_number = 'P0000001'");
    cr_assert_str_eq(name, "Testperson 1");
    free(name);
}

/* Events for P0000005 through the CLI: its states count in FIN-WI-01. */
static void give_states_to_p5(void)
{
    char *day = th_sql_text(&db, "SELECT to_char(now() - interval '2 days', 'YYYY-MM-DD')");
    char a[37], b[37], c[37], body[2048];
    th_uuid(a);
    th_uuid(b);
    th_uuid(c);
    snprintf(body, sizeof body,
             "{\"event_id\":\"%s\",\"employee\":\"P0000005\",\"item\":\"mobile_device\","
             "\"state\":\"ordered\",\"occurred_at\":\"%sT08:00:00Z\"}\n"
             "{\"event_id\":\"%s\",\"employee\":\"P0000005\",\"item\":\"mobile_device\","
             "\"state\":\"active\",\"occurred_at\":\"%sT09:00:00Z\"}\n"
             "{\"event_id\":\"%s\",\"employee\":\"P0000005\",\"item\":\"hessen_voice\","
             "\"state\":\"planned\",\"occurred_at\":\"%sT09:00:00Z\"}\n",
             a, day, b, day, c, day);
    free(day);
    struct th_ctl_run r = ctl("events", "import", file("p5.ndjson", body), NULL);
    cr_assert_eq(r.status, 0, "events import: %s%s", r.out, r.err);
    th_ctl_run_free(&r);
}

static long long counter(const char *dst, const char *item, const char *state)
{
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT coalesce(sum(n), 0) FROM progress_counter WHERE dienststelle = '%s'"
             " AND item = '%s' AND state = '%s'",
             dst, item, state);
    return th_sql_int(&db, sql);
}

static long long done_days(const char *dst)
{
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT coalesce(sum(n), 0) FROM daily_done WHERE dienststelle = '%s'", dst);
    return th_sql_int(&db, sql);
}

Test(cli_import, a_moved_employee_takes_the_counts_along)
{
    give_states_to_p5();
    cr_assert_eq(counter("FIN-WI-01", "mobile_device", "active"), 1);
    cr_assert_eq(counter("FIN-WI-01", "hessen_voice", "planned"), 1);
    cr_assert_eq(done_days("FIN-WI-01"), 1);
    long long total = th_sql_int(&db, "SELECT sum(n) FROM progress_counter");

    struct th_ctl_run r = ctl("import", "employees",
                              file("emp.csv", "personnel_number,dienststelle,name\n"
                                              "P0000004,FIN-WI-01,Testperson 4\n"
                                              "P0000005,FIN-KS-01,Testperson 5\n"),
                              NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    th_assert_has(r.err, "2 rows, 1 unchanged, 1 updated (1 moved to another Dienststelle), 0 "
                         "inserted");
    th_ctl_run_free(&r);

    cr_assert_eq(counter("FIN-WI-01", "mobile_device", "active"), 0);
    cr_assert_eq(counter("FIN-KS-01", "mobile_device", "active"), 1);
    cr_assert_eq(counter("FIN-WI-01", "hessen_voice", "planned"), 0);
    cr_assert_eq(counter("FIN-KS-01", "hessen_voice", "planned"), 1);
    cr_assert_eq(done_days("FIN-WI-01"), 0, "the completion stayed in the old office");
    cr_assert_eq(done_days("FIN-KS-01"), 1);
    cr_assert_eq(th_sql_int(&db, "SELECT sum(n) FROM progress_counter"), total,
                 "moving changed the totals");

    r = ctl("verify", NULL);
    cr_assert_eq(r.status, 0, "verify after the move:\n%s%s", r.out, r.err);
    th_ctl_run_free(&r);

    /* the same file again: nothing to do */
    r = ctl("import", "employees",
            file("emp2.csv", "personnel_number,dienststelle,name\n"
                             "P0000005,FIN-KS-01,Testperson 5\n"),
            NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    th_assert_has(r.err, "1 rows, 1 unchanged, 0 updated, 0 inserted");
    th_ctl_run_free(&r);
    cr_assert_eq(counter("FIN-KS-01", "mobile_device", "active"), 1);
}

Test(cli_import, wrong_columns_are_refused)
{
    static const char *const missing[] = {"1: the header has no column \"dienststelle\"", NULL};
    expect_refused("employees", file("a.csv", "personnel_number,name\nP0000099,X\n"), missing);
    static const char *const unknown[] = {"1: unknown column \"office\"", NULL};
    expect_refused("employees",
                   file("b.csv", "personnel_number,office,name\nP0000099,FIN-WI-01,X\n"), unknown);
    static const char *const semicolons[] = {
        "1: unknown column \"personnel_number;dienststelle\" in the header; employees files have "
        "the columns personnel_number,dienststelle[,name] (the first line must name them); "
        "separate the fields with commas, not semicolons",
        NULL};
    expect_refused("employees", file("c.csv", "personnel_number;dienststelle\nP1;FIN-WI-01\n"),
                   semicolons);
    static const char *const fields[] = {"3: 4 fields, but the header names 3", NULL};
    expect_refused("employees",
                   file("d.csv", "personnel_number,dienststelle,name\n"
                                 "P0000098,FIN-WI-01,Ok\n"
                                 "P0000099,FIN-WI-01,Too,Many\n"),
                   fields);
}

Test(cli_import, duplicate_personnel_numbers_are_refused)
{
    static const char *const expected[] = {
        "3: personnel number P0000050 appears again (first on line 2)",
        "5: personnel number P0000050 appears again (first on line 2)", NULL};
    expect_refused("employees",
                   file("dup.csv", "personnel_number,dienststelle\n"
                                   "P0000050,FIN-WI-01\n"
                                   "P0000050,FIN-KS-01\n"
                                   "P0000051,FIN-KS-01\n"
                                   "P0000050,JUS-F-01\n"),
                   expected);
    cr_assert_eq(th_sql_int(&db, "SELECT count(*) FROM employee WHERE personnel_number IN "
                                 "('P0000050', 'P0000051')"),
                 0, "the good row P0000051 was imported from a refused file");
}

Test(cli_import, unknown_ressort_and_dienststelle_are_refused)
{
    static const char *const ressort[] = {"3: unknown Ressort \"HMXX\"", NULL};
    expect_refused("dienststellen",
                   file("dst.csv", "dienststelle,ressort,name,city\n"
                                   "FIN-F-09,HMdF,Finanzamt Frankfurt IX,Frankfurt am Main\n"
                                   "XX-F-01,HMXX,Amt ohne Ressort,Frankfurt am Main\n"),
                   ressort);
    static const char *const dst[] = {"2: unknown Dienststelle \"NOWHERE-1\"",
                                      "4: dienststelle is empty", NULL};
    expect_refused("employees",
                   file("emp.csv", "personnel_number,dienststelle,name\n"
                                   "P0000060,NOWHERE-1,Niemand\n"
                                   "P0000061,FIN-WI-01,Jemand\n"
                                   "P0000062,,Leer\n"),
                   dst);
}

Test(cli_import, broken_utf8_is_refused_with_its_line)
{
    /* every bad row is reported, not only the first: line 2 (unknown office), line 4 (a Latin-1
     * "ü"), line 5 (a bad code) */
    static const char *const expected[] = {"2: unknown Dienststelle", "4: not valid UTF-8",
                                           "5: personnel_number \"P 63\" is not valid", NULL};
    expect_refused("employees",
                   file("latin1.csv", "personnel_number,dienststelle,name\n"
                                      "P0000060,NOWHERE-1,Niemand\n"
                                      "P0000061,FIN-WI-01,Jemand\n"
                                      "P0000062,FIN-WI-01,M\xfcller\n"
                                      "P 63,FIN-WI-01,Leerzeichen\n"),
                   expected);
}

Test(cli_import, line_numbers_count_line_breaks_inside_quotes)
{
    static const char *const expected[] = {"5: unknown Dienststelle \"NOWHERE-2\"", NULL};
    expect_refused("employees",
                   file("nl.csv", "personnel_number,dienststelle,name\n"
                                  "P0000070,FIN-WI-01,\"Zwei\n"
                                  "Zeilen\"\n"
                                  "P0000071,FIN-WI-01,Eins\n"
                                  "P0000072,NOWHERE-2,Drei\n"),
                   expected);
    static const char *const unterminated[] = {"3: a quoted field starts here and is never closed",
                                               NULL};
    expect_refused("employees",
                   file("open.csv", "personnel_number,dienststelle,name\n"
                                    "P0000070,FIN-WI-01,Gut\n"
                                    "P0000071,FIN-WI-01,\"Offen\n"
                                    "P0000072,FIN-WI-01,Drei\n"),
                   unterminated);
}

Test(cli_import, missing_and_empty_files)
{
    struct th_ctl_run r = ctl("import", "employees", "/nonexistent/employees.csv", NULL);
    cr_assert_eq(r.status, 66, "exit status %d for a missing file", r.status);
    th_assert_has(r.err, "/nonexistent/employees.csv");
    th_ctl_run_free(&r);
    static const char *const empty[] = {NULL};
    expect_refused("employees", file("empty.csv", ""), empty);
    r = ctl("import", "offices", file("x.csv", "a\n"), NULL);
    cr_assert_eq(r.status, 64);
    th_ctl_run_free(&r);
}

Test(cli_import, loads_thousands_of_rows_in_one_go)
{
    /* 5000 new employees spread over the four offices, through COPY */
    char *path = (char *)file("many.csv", "");
    FILE *f = fopen(path, "w");
    cr_assert(f != NULL);
    static const char *const offices[] = {"FIN-WI-01", "FIN-KS-01", "INN-WI-01", "JUS-F-01"};
    fputs("personnel_number,dienststelle,name\n", f);
    for (int i = 0; i < 5000; i++)
        fprintf(f, "Q%07d,%s,Person %d\n", i, offices[i % 4], i);
    fclose(f);
    struct th_ctl_run r = ctl("import", "employees", path, NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    th_assert_has(r.err, "5000 rows, 0 unchanged, 0 updated, 5000 inserted");
    th_ctl_run_free(&r);
    cr_assert_eq(th_sql_int(&db, "SELECT count(*) FROM employee WHERE dienststelle = 'JUS-F-01'"),
                 10 + 1250);
}

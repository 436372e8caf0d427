/* Security properties that are not about one request's answer: TLS, what the logs never
 * contain, and what the daemon's database role cannot do. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

static struct th_db db;

/* th_run with a list of string literals (the harness takes char *const[]). */
static int run(const char *const argv[], char **out, char **err)
{
    return th_run((char *const *)argv, NULL, out, err);
}

static void setup(void)
{
    th_db_create(&db);
}

static void teardown(void)
{
    th_db_drop(&db);
}

TestSuite(security, .init = setup, .fini = teardown, .timeout = 120);

/* TLS with a certificate the test makes; curl checks the chain against it. */
Test(security, tls_serves_https_with_the_configured_certificate)
{
    char dir[] = "/tmp/rolloutd-tls-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char cert[300], key[300], subj[] = "/CN=127.0.0.1";
    snprintf(cert, sizeof cert, "%s/cert.pem", dir);
    snprintf(key, sizeof key, "%s/key.pem", dir);
    const char *const gen[] = {"/usr/bin/openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                   "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj", subj,
                   "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", key, "-out", cert, NULL};
    char *err = NULL;
    cr_assert_eq(run(gen, NULL, &err), 0, "openssl req failed: %s", err);
    free(err);

    char extra[1024];
    snprintf(extra, sizeof extra,
             "listen = { address = \"127.0.0.1\"; port = @PORT@; tls_certificate = \"%s\"; "
             "tls_key = \"%s\"; };\n",
             cert, key);
    struct th_daemon d;
    cr_assert_eq(th_daemon_spawn(&d, &db, extra, 0), -1, "rolloutd with TLS did not start");

    char url[128], body[300];
    snprintf(url, sizeof url, "https://127.0.0.1:%d/readyz", d.port);
    /* a file, not /dev/null: curl truncates its output before a retry, and fails (23) on
     * /dev/null when the daemon was not listening yet at the first try */
    snprintf(body, sizeof body, "%s/readyz.out", dir);
    const char *const curl[] = {"/usr/bin/curl", "-sS", "--cacert", cert, "-o", body, "-w", "%{http_code}",
                    "--retry", "30", "--retry-connrefused", "--retry-delay", "1",
                    "--retry-all-errors", url, NULL};
    char *out = NULL;
    err = NULL;
    run(curl, &out, &err);
    cr_assert_str_eq(out, "200", "HTTPS /readyz: %s %s", out, err);
    free(out);
    free(err);

    /* the same port does not speak plain HTTP */
    struct th_response *plain = th_http(&d, "GET", "/healthz", NULL, NULL, NULL, 0);
    cr_assert_neq(plain->status, 200, "plain HTTP was answered on the TLS port");
    th_response_free(plain);

    /* and a client that does not trust the certificate is refused */
    const char *const strict[] = {"/usr/bin/curl", "-sS", "-o", "/dev/null", url, NULL};
    cr_assert_neq(run(strict, NULL, NULL), 0, "curl accepted an unknown certificate");

    cr_assert_eq(th_daemon_stop(&d, SIGTERM), 0);
    const char *const rm[] = {"/bin/rm", "-rf", dir, NULL};
    run(rm, NULL, NULL);
}

/* Tokens, personnel numbers, names and notes never reach the log, even on errors. */
Test(security, logs_hold_no_token_and_no_personal_data)
{
    PQclear(th_sql(&db,
                   "UPDATE employee SET name = 'Erika Mustermann' WHERE personnel_number = 'P0000001'",
                   0, NULL));
    char *admin = th_token(&db, "log-admin", "admin", NULL);
    struct th_daemon d;
    th_daemon_start(&d, &db, "log = { level = \"debug\"; };\n");

    char id[37], body[1024];
    th_uuid(id);
    snprintf(body, sizeof body,
             "{\"event_id\":\"%s\",\"employee\":\"P0000001\",\"item\":\"hessen_smartphone\","
             "\"state\":\"planned\",\"occurred_at\":\"2026-11-20T09:30:00+01:00\","
             "\"note\":\"Erika Mustermann, Zimmer 4711\"}",
             id);
    struct th_response *r = th_http(&d, "POST", "/v1/events", admin, NULL, body, strlen(body));
    cr_assert_eq(r->status, 201, "post: %d %s", r->status, r->body);
    th_response_free(r);
    /* an illegal transition and an unknown employee: errors are where data leaks usually */
    r = th_http(&d, "POST", "/v1/events", admin, NULL, body, strlen(body) - 3);
    th_response_free(r);
    r = th_http(&d, "GET", "/v1/employees/P0000001", admin, NULL, NULL, 0);
    cr_assert_eq(r->status, 200);
    th_response_free(r);
    r = th_http(&d, "GET", "/v1/employees/P0000099/events", admin, NULL, NULL, 0);
    cr_assert_eq(r->status, 404);
    th_response_free(r);
    r = th_http(&d, "GET", "/v1/progress", "rlt_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", NULL,
                NULL, 0);
    cr_assert_eq(r->status, 401);
    th_response_free(r);

    cr_assert_eq(th_daemon_stop(&d, SIGTERM), 0);
    char *log = th_daemon_log(&d);
    cr_assert(strstr(log, "POST /v1/events 201") != NULL, "the request line is missing:\n%s", log);
    cr_assert(strstr(log, "token=log-admin") != NULL, "the token's name is missing:\n%s", log);
    cr_assert_null(strstr(log, admin), "the token itself is in the log");
    cr_assert_null(strstr(log, "rlt_"), "something token-shaped is in the log");
    cr_assert_null(strstr(log, "P0000001"), "a personnel number is in the log");
    cr_assert_null(strstr(log, "P0000099"), "a personnel number is in the log");
    cr_assert_null(strstr(log, "Mustermann"), "a name is in the log");
    cr_assert_null(strstr(log, "4711"), "a note is in the log");
    free(log);
    free(admin);
}

/* The daemon's role reads and records through the functions, and nothing more. */
Test(security, the_service_role_cannot_change_structure_or_tokens)
{
    PGconn *c = PQconnectdb(db.conninfo_service);
    cr_assert_eq(PQstatus(c), CONNECTION_OK, "%s", PQerrorMessage(c));
    static const char *const forbidden[] = {
        "CREATE TABLE x (a int)",
        "DROP TABLE event",
        "INSERT INTO api_token (name, role, hash) VALUES ('x', 'admin', '\\x00')",
        "UPDATE api_token SET revoked_at = NULL",
        "SELECT personnel_number, name FROM employee",
        "SELECT note FROM event",
        "DELETE FROM event",
        "UPDATE item_state SET state = 'active'",
        "SELECT rollout_forget('P0000001', 'x')",
        "SELECT * FROM rollout_apply_events_serial('[]')",
        "UPDATE progress_count SET active = active + 1",
        "SELECT rollout_add_counts('{FIN-WI-01}', '{hessen_voice}', '{active}', '{1}', 0::smallint)",
    };
    for (size_t i = 0; i < sizeof forbidden / sizeof forbidden[0]; i++) {
        PGresult *res = PQexec(c, forbidden[i]);
        cr_expect_eq(PQresultStatus(res), PGRES_FATAL_ERROR, "the service role may: %s",
                     forbidden[i]);
        PQclear(res);
    }
    /* but it may do its job */
    PGresult *res = PQexec(c, "SELECT count(*) FROM progress_counter");
    cr_expect_eq(PQresultStatus(res), PGRES_TUPLES_OK, "%s", PQresultErrorMessage(res));
    PQclear(res);
    PQfinish(c);
}

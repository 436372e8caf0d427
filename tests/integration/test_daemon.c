/* The daemon as a process: start-up checks, SIGHUP, token revocation, and a slow database that
 * must not stall anything but the requests that wait for it. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "harness_load.h"

static struct th_db db;

static void setup(void)
{
    th_db_create(&db);
}

static void teardown(void)
{
    th_db_drop(&db);
}

TestSuite(daemon, .init = setup, .fini = teardown, .timeout = 120);

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One event as JSON, with a new event_id. */
static void event_json(char *out, size_t size, const char *employee, const char *item,
                       const char *state)
{
    char id[37];
    th_uuid(id);
    snprintf(out, size,
             "{\"event_id\":\"%s\",\"employee\":\"%s\",\"item\":\"%s\",\"state\":\"%s\","
             "\"occurred_at\":\"2026-11-20T09:30:00+01:00\"}",
             id, employee, item, state);
}

static int post_event(struct th_daemon *d, const char *token, const char *employee,
                      const char *item, const char *state)
{
    char body[512];
    event_json(body, sizeof body, employee, item, state);
    struct th_response *r = th_http(d, "POST", "/v1/events", token, NULL, body, strlen(body));
    int status = r->status;
    th_response_free(r);
    return status;
}

Test(daemon, refuses_to_start_on_a_schema_it_was_not_built_for)
{
    PQclear(th_sql(&db, "UPDATE schema_migrations SET version = version + 1000", 0, NULL));
    struct th_daemon d;
    int rc = th_daemon_spawn(&d, &db, "", 15000);
    cr_assert_eq(rc, 78, "exit status %d, expected 78 (EX_CONFIG)", rc);
    char *log = th_daemon_log(&d);
    cr_assert(strstr(log, "schema version") && strstr(log, "rolloutctl migrate"),
              "the message does not say what is wrong and what to do:\n%s", log);
    free(log);
}

Test(daemon, a_bad_configuration_stops_start_up_with_file_line_and_reason)
{
    struct th_daemon d;
    int rc = th_daemon_spawn(&d, &db, "http = {\n  max_body_bytes = 12;\n};\n", 15000);
    cr_assert_eq(rc, 78, "exit status %d", rc);
    char *log = th_daemon_log(&d);
    cr_assert(strstr(log, "rolloutd.conf:") && strstr(log, "http.max_body_bytes is 12"),
              "no file:line: reason in:\n%s", log);
    free(log);

    rc = th_daemon_spawn(&d, &db, "no_such_group = { x = 1; };\n", 15000);
    cr_assert_eq(rc, 78);
    log = th_daemon_log(&d);
    cr_assert(strstr(log, "unknown setting \"no_such_group\""), "%s", log);
    free(log);
}

/* Seconds until the daemon closes a new connection on which `sent` (if any) was written,
 * reading whatever it answers meanwhile; -1 if it is still open after `limit` seconds. */
static double seconds_until_closed(int port, const char *sent, double limit)
{
    int fd = th_connect(port);
    cr_assert(fd >= 0, "cannot connect to rolloutd: %s", strerror(errno));
    double start = now_s();
    if (sent)
        cr_assert_eq(send(fd, sent, strlen(sent), MSG_NOSIGNAL), (ssize_t)strlen(sent));
    double closed = -1;
    while (closed < 0 && now_s() - start < limit) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 50) <= 0)
            continue;
        char buf[4096];
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n == 0 || (n < 0 && errno == ECONNRESET))
            closed = now_s() - start;
    }
    close(fd);
    return closed;
}

/* http.timeout is the slow-client defence: a connection that sends nothing, one that stops in
 * the middle of its request, and a kept-alive one after its answer are all closed once it has
 * passed; meanwhile the daemon serves others. */
Test(daemon, idle_trickling_and_kept_alive_connections_close_after_http_timeout)
{
    struct th_daemon d;
    th_daemon_start(&d, &db, "http = { timeout = 1; };");
    const struct {
        const char *what, *sent;
    } cases[] = {
        {"a connection that sends nothing", NULL},
        {"a request cut off in its headers", "GET /status HTTP/1.1\r\nHost"},
        {"a kept-alive connection after its answer", "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        double took = seconds_until_closed(d.port, cases[i].sent, 5.0);
        cr_expect(took >= 0.8 && took < 3.0,
                  "%s: closed after %.2f s with http.timeout = 1 (-1: still open after 5 s)",
                  cases[i].what, took);
    }
    struct th_response *r = th_http(&d, "GET", "/healthz", NULL, NULL, NULL, 0);
    cr_expect_eq(r->status, 200);
    th_response_free(r);
    th_daemon_stop(&d, SIGTERM);
}

/* The daemon's own request ids: 14 hex digits, the Unix second of the request and a counter,
 * so that an id reported with a 500 names one line of the journal, also after a restart (a
 * client's own id comes back as sent: tests/api/cases/058-request-id-echoed.case). */
Test(daemon, request_ids_are_the_unix_second_and_a_counter_or_the_clients_own)
{
    struct th_daemon d;
    th_daemon_start(&d, &db, "");
    char ids[3][40] = {{0}};
    for (int i = 0; i < 3; i++) {
        time_t before = time(NULL);
        struct th_response *r = th_http(&d, "GET", "/healthz", NULL, NULL, NULL, 0);
        time_t after = time(NULL);
        cr_assert(r->request_id != NULL, "no X-Request-Id in the answer");
        cr_assert_eq(strlen(r->request_id), 14, "request id %s: not 14 characters", r->request_id);
        cr_assert_eq(strspn(r->request_id, "0123456789abcdef"), 14, "request id %s: not hex",
                     r->request_id);
        char second[9];
        memcpy(second, r->request_id, 8);
        second[8] = '\0';
        long long at = strtoll(second, NULL, 16);
        cr_expect(at >= ((long long)before & 0xffffffffLL) - 1 &&
                      at <= ((long long)after & 0xffffffffLL) + 1,
                  "request id %s: its second %lld is not now (%lld)", r->request_id, at,
                  (long long)before);
        snprintf(ids[i], sizeof ids[i], "%s", r->request_id);
        th_response_free(r);
    }
    cr_expect(strcmp(ids[0], ids[1]) != 0 && strcmp(ids[1], ids[2]) != 0,
              "request ids repeat: %s %s %s", ids[0], ids[1], ids[2]);
    th_daemon_stop(&d, SIGTERM);
}

Test(daemon, a_revoked_token_is_refused_within_a_second)
{
    char *tok = th_token(&db, "soon-revoked", "admin", NULL);
    struct th_daemon d;
    th_daemon_start(&d, &db, "");
    cr_assert_eq(post_event(&d, tok, "P0000001", "wlan_autologin", "planned"), 201);
    PQclear(th_sql(&db, "UPDATE api_token SET revoked_at = now() WHERE name = 'soon-revoked'", 0, NULL));
    double start = now_s();
    int status = 0;
    while (now_s() - start < 3.0) {
        struct th_response *r = th_http(&d, "GET", "/v1/employees/P0000001", tok, NULL, NULL, 0);
        status = r->status;
        th_response_free(r);
        if (status == 401)
            break;
        usleep(50 * 1000);
    }
    double took = now_s() - start;
    cr_assert_eq(status, 401, "a revoked token still works after %.1f s", took);
    cr_assert_lt(took, 1.5, "revocation took %.2f s", took);
    th_daemon_stop(&d, SIGTERM);
    free(tok);
}

Test(daemon, sighup_reloads_settings_and_keeps_serving)
{
    char *tok = th_token(&db, "hup-admin", "admin", NULL);
    struct th_daemon d;
    th_daemon_start(&d, &db, "");
    /* batches of 3 are fine before the reload ... */
    char body[2048];
    char a[37], b[37], c[37];
    th_uuid(a);
    th_uuid(b);
    th_uuid(c);
    snprintf(body, sizeof body,
             "[{\"event_id\":\"%s\",\"employee\":\"P0000002\",\"item\":\"wlan_autologin\","
             "\"state\":\"planned\",\"occurred_at\":\"2026-11-20T09:30:00Z\"},"
             "{\"event_id\":\"%s\",\"employee\":\"P0000003\",\"item\":\"wlan_autologin\","
             "\"state\":\"planned\",\"occurred_at\":\"2026-11-20T09:30:00Z\"},"
             "{\"event_id\":\"%s\",\"employee\":\"P0000004\",\"item\":\"wlan_autologin\","
             "\"state\":\"planned\",\"occurred_at\":\"2026-11-20T09:30:00Z\"}]",
             a, b, c);
    struct th_response *r = th_http(&d, "POST", "/v1/events", tok, NULL, body, strlen(body));
    cr_assert_eq(r->status, 200);
    th_response_free(r);

    /* ... then the limit drops to 2 with SIGHUP, without a restart */
    FILE *f = fopen(d.config_path, "a");
    cr_assert_not_null(f);
    fputs("http = { batch_max_events = 2; };\n", f);
    fclose(f);
    pid_t pid = d.pid;
    kill(d.pid, SIGHUP);
    usleep(300 * 1000);
    r = th_http(&d, "POST", "/v1/events", tok, NULL, body, strlen(body));
    cr_assert_eq(r->status, 413, "after SIGHUP the new batch limit does not hold: %d", r->status);
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(r->json, "error"), "code")),
                     "batch_too_large");
    th_response_free(r);
    cr_assert_eq(d.pid, pid);

    /* a broken file on SIGHUP is refused and the old settings stay */
    f = fopen(d.config_path, "a");
    fputs("http = { batch_max_events = \"many\"; };\n", f);
    fclose(f);
    kill(d.pid, SIGHUP);
    usleep(300 * 1000);
    r = th_http(&d, "GET", "/healthz", NULL, NULL, NULL, 0);
    cr_assert_eq(r->status, 200, "the daemon died on a broken reload");
    th_response_free(r);
    char *log = th_daemon_log(&d);
    cr_assert(strstr(log, "not reloaded"), "the refused reload is not logged:\n%s", log);
    free(log);
    cr_assert_eq(th_daemon_stop(&d, SIGTERM), 0);
    free(tok);
}

/* A post on a thread of its own, for a test that acts while it waits. */
struct async_post {
    struct th_daemon *d;
    const char *token;
    char body[1024];
    atomic_int status; /* 0 until answered */
};

static void *async_post_run(void *arg)
{
    struct async_post *p = arg;
    struct th_response *r =
        th_http(p->d, "POST", "/v1/events", p->token, NULL, p->body, strlen(p->body));
    atomic_store(&p->status, r->status ? r->status : -1);
    th_response_free(r);
    return NULL;
}

/* A database that does not answer (a table lock held elsewhere) delays only the posts that
 * wait for it: health, status, metrics and progress come from memory, at once. */
Test(daemon, a_slow_database_does_not_stall_other_requests)
{
    char *tok = th_token(&db, "slow-admin", "admin", NULL);
    struct th_daemon d;
    th_daemon_start(&d, &db, "database = { conninfo = \"@CONNINFO@\"; pool_size = 2; };\n");
    PGconn *locker = PQconnectdb(db.conninfo_super);
    cr_assert_eq(PQstatus(locker), CONNECTION_OK);
    PQclear(PQexec(locker, "BEGIN"));
    PGresult *res = PQexec(locker, "LOCK TABLE employee IN ACCESS EXCLUSIVE MODE");
    cr_assert_eq(PQresultStatus(res), PGRES_COMMAND_OK, "%s", PQresultErrorMessage(res));
    PQclear(res);

    static struct async_post p;
    p = (struct async_post){.d = &d, .token = tok};
    event_json(p.body, sizeof p.body, "P0000005", "mobile_device", "planned");
    pthread_t t;
    pthread_create(&t, NULL, async_post_run, &p);
    usleep(300 * 1000); /* the post now waits on the lock */

    static const char *const paths[] = {"/healthz", "/status", "/metrics", "/v1/progress"};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        double start = now_s();
        struct th_response *r = th_http(&d, "GET", paths[i], NULL, NULL, NULL, 0);
        double took = now_s() - start;
        cr_expect_eq(r->status, 200, "%s: %d", paths[i], r->status);
        cr_expect_lt(took, 0.5, "%s took %.2f s while the database was stuck", paths[i], took);
        th_response_free(r);
    }
    cr_expect_eq(atomic_load(&p.status), 0,
                 "the post was answered although its commit cannot have happened");

    PQclear(PQexec(locker, "COMMIT"));
    PQfinish(locker);
    pthread_join(t, NULL);
    cr_assert_eq(atomic_load(&p.status), 201, "the waiting post ended with %d",
                 atomic_load(&p.status));
    th_daemon_stop(&d, SIGTERM);
    free(tok);
}

/* A batch: "planned" for the mobile device of each of the employees. */
static void batch_json(char *out, size_t size, const char *const *employees, int n)
{
    size_t len = (size_t)snprintf(out, size, "[");
    for (int i = 0; i < n; i++) {
        char ev[512];
        event_json(ev, sizeof ev, employees[i], "mobile_device", "planned");
        len += (size_t)snprintf(out + len, size - len, "%s%s", i ? "," : "", ev);
    }
    snprintf(out + len, size - len, "]");
}

static bool wait_until(bool (*pred)(void *), void *arg, int timeout_ms)
{
    for (int waited = 0; waited < timeout_ms; waited += 20) {
        if (pred(arg))
            return true;
        th_sleep_ms(20);
    }
    return pred(arg);
}

static bool group_waits_on_lock(void *arg)
{
    return th_sql_int(arg, "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                           "AND query LIKE '%rollout_apply_events%'") == 1;
}

static bool one_event_queued(void *arg)
{
    return th_metric(arg, "rolloutd_queue_events") == 1;
}

static bool both_answered(void *arg)
{
    struct async_post **p = arg;
    return atomic_load(&p[0]->status) != 0 && atomic_load(&p[1]->status) != 0;
}

/* queue.group_parallel_min_events: while one group commit runs (here: held up by a row lock),
 * fewer waiting events than the setting wait for it, and that many go beside it at once. */
Test(daemon, a_small_group_waits_for_the_running_one_a_large_one_goes_beside_it)
{
    char *tok = th_token(&db, "group-admin", "admin", NULL);
    struct th_daemon d;
    th_daemon_start(&d, &db,
                    "database = { conninfo = \"@CONNINFO@\"; pool_size = 2; };\n"
                    "queue = { group_parallel_min_events = 3; };\n");
    PGconn *locker = PQconnectdb(db.conninfo_super);
    cr_assert_eq(PQstatus(locker), CONNECTION_OK);
    PQclear(PQexec(locker, "BEGIN"));
    PGresult *res =
        PQexec(locker, "SELECT 1 FROM employee WHERE personnel_number = 'P0000005' FOR UPDATE");
    cr_assert_eq(PQresultStatus(res), PGRES_TUPLES_OK, "%s", PQresultErrorMessage(res));
    PQclear(res);

    static const char *const held[] = {"P0000005"}, *const single[] = {"P0000006"},
                             *const batch[] = {"P0000007", "P0000008", "P0000009"};
    static struct async_post a, b, c;
    a = (struct async_post){.d = &d, .token = tok};
    b = a;
    c = a;
    event_json(a.body, sizeof a.body, held[0], "mobile_device", "planned");
    event_json(b.body, sizeof b.body, single[0], "mobile_device", "planned");
    batch_json(c.body, sizeof c.body, batch, 3);
    pthread_t ta, tb, tc;

    pthread_create(&ta, NULL, async_post_run, &a);
    cr_assert(wait_until(group_waits_on_lock, &db, 10000),
              "the first group commit never waited for the row lock");

    pthread_create(&tb, NULL, async_post_run, &b);
    cr_assert(wait_until(one_event_queued, &d, 10000), "the second post was not queued");
    th_sleep_ms(300); /* time enough for a group beside the held one, were one started */
    cr_expect_eq(atomic_load(&b.status), 0, "one event went beside the running group commit");
    cr_expect_eq(th_metric(&d, "rolloutd_queue_events"), 1);
    cr_expect_eq(th_sql_int(&db, "SELECT count(*) FROM event e JOIN employee p ON p.id = "
                                 "e.employee_id WHERE p.personnel_number = 'P0000006'"),
                 0);

    pthread_create(&tc, NULL, async_post_run, &c);
    struct async_post *bc[] = {&b, &c};
    cr_assert(wait_until(both_answered, bc, 10000),
              "four waiting events did not go beside the held group commit (statuses %d, %d)",
              atomic_load(&b.status), atomic_load(&c.status));
    cr_expect_eq(atomic_load(&b.status), 201);
    cr_expect_eq(atomic_load(&c.status), 200);
    cr_expect_eq(atomic_load(&a.status), 0, "answered although its commit cannot have happened");
    cr_expect_eq(th_sql_int(&db, "SELECT count(*) FROM event e JOIN employee p ON p.id = "
                                 "e.employee_id WHERE p.personnel_number IN "
                                 "('P0000006', 'P0000007', 'P0000008', 'P0000009')"),
                 4);

    PQclear(PQexec(locker, "COMMIT"));
    PQfinish(locker);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    pthread_join(tc, NULL);
    cr_assert_eq(atomic_load(&a.status), 201, "the held post ended with %d",
                 atomic_load(&a.status));
    cr_assert_eq(th_daemon_stop(&d, SIGTERM), 0);
    free(tok);
}

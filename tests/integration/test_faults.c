/* Faults under a posting load (issue 6): PostgreSQL killed and started again, rolloutd killed
 * with SIGKILL and started again, SIGTERM. Each time: every event that got a 2xx is stored,
 * nothing is stored that the clients were not told about (unless they could not know), the
 * counters equal a recount, and the daemon recovers by itself. For SIGTERM: every request that
 * was completely sent before the signal (and so not refused at connect) gets an answer, 2xx or
 * 503, also when the daemon was idle and had not read it yet.
 *
 * PostgreSQL is stopped in a private cluster of the test's own (harness_pg.h): the shared test
 * cluster serves the other tests. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "harness_load.h"
#include "harness_pg.h"

/* ------------------------------------------------------------------------------------------ */
/* Helpers */

static void log_daemon_tail(struct th_daemon *d)
{
    char *log = th_daemon_log(d);
    size_t n = strlen(log);
    cr_log_error("rolloutd log (last part of %s):\n%s", d->log_path,
                 n > 6000 ? log + n - 6000 : log);
    free(log);
}

/* Polls GET /readyz until it answers `want` or timeout_ms passed; returns the last status. */
static int readyz_until(struct th_daemon *d, int want, int timeout_ms)
{
    long long deadline = th_now_ms() + timeout_ms;
    for (;;) {
        struct th_response *r = th_http(d, "GET", "/readyz", NULL, NULL, NULL, 0);
        int st = r->status;
        th_response_free(r);
        if (st == want || th_now_ms() >= deadline)
            return st;
        th_sleep_ms(20);
    }
}

struct after {
    long long t;
};

static bool ok_after(const struct th_load_stats *st, void *arg)
{
    return st->last_ok_ms > ((struct after *)arg)->t;
}

/* Every attempt got an HTTP answer, 2xx or 503 with Retry-After (the daemon ran throughout). */
static void assert_all_answered(struct th_load *l)
{
    int n;
    const struct th_load_attempt *a = th_load_attempts(l, &n);
    int bad = 0;
    for (int i = 0; i < n; i++) {
        bool ok = a[i].outcome == TH_LOAD_ANSWERED && ((a[i].status >= 200 && a[i].status < 300) ||
                                                       (a[i].status == 503 && a[i].retry_after));
        if (!ok && bad++ < 10)
            cr_log_error("attempt %s (%s): outcome %d, status %d %s, %lld ms", a[i].event_id,
                         a[i].state, (int)a[i].outcome, a[i].status, a[i].code,
                         a[i].t_done - a[i].t_start);
    }
    cr_assert_eq(bad, 0,
                 "%d attempts did not get a 2xx or a 503 with Retry-After (the first ones are "
                 "logged above; load: %s)",
                 bad, th_load_summary(l));
}

/* A post while the database is down: a quick 503 with Retry-After, not a hang. The employee
 * does not exist, so even a wrongly stored event could not disturb the load's lanes. */
static void assert_post_refused_quickly(struct th_daemon *d, const char *token)
{
    char id[37], body[300];
    th_uuid(id);
    snprintf(body, sizeof body,
             "{\"event_id\":\"%s\",\"employee\":\"P9999999\",\"item\":\"mobile_device\","
             "\"state\":\"planned\",\"occurred_at\":\"2026-01-05T10:00:00+01:00\"}",
             id);
    long long t = th_now_ms();
    struct th_response *r = th_http(d, "POST", "/v1/events", token, NULL, body, strlen(body));
    long long took = th_now_ms() - t;
    cr_expect_eq(r->status, 503, "a post while PostgreSQL is down: expected 503, got %d: %s",
                 r->status, r->body);
    cr_expect(r->retry_after != NULL, "the 503 while PostgreSQL is down has no Retry-After");
    cr_expect(took < 2000, "the 503 while PostgreSQL is down took %lld ms (a hang?)", took);
    th_response_free(r);
}

/* ------------------------------------------------------------------------------------------ */

Test(faults, postgres_killed_and_started, .timeout = 60)
{
    long long t0 = th_now_ms();
    struct th_pg pg;
    th_pg_init(&pg, NULL);
    th_pg_start(&pg);
    struct th_db db;
    th_pg_db_create(&pg, &db);
    char *token = th_token(&db, "load", "admin", NULL);
    struct th_daemon d;
    th_daemon_start(&d, &db, NULL);
    long long t_setup = th_now_ms();

    struct th_load_opts o = {.ports = {d.port}, .nports = 1, .token = token, .concurrency = 16};
    struct th_load *l = th_load_start(&o);
    cr_assert(th_load_wait_acked(l, 200, 20000), "the load did not get 200 events through: %s",
              th_load_summary(l));

    /* kill PostgreSQL in the middle of the load */
    struct th_load_stats before;
    th_load_stats(l, &before);
    long long t_kill = th_now_ms();
    th_pg_stop(&pg, "immediate");
    long long t_stopped = th_now_ms();

    int ready = readyz_until(&d, 503, 5000);
    long long t_noticed = th_now_ms();
    cr_expect_eq(ready, 503, "GET /readyz answered %d within 5 s of PostgreSQL's end, not 503",
                 ready);
    assert_post_refused_quickly(&d, token);
    th_sleep_ms(1000);
    ready = readyz_until(&d, 503, 0);
    cr_expect_eq(ready, 503, "GET /readyz answered %d while PostgreSQL was still down", ready);
    struct th_load_stats down;
    th_load_stats(l, &down);

    /* start it again: rolloutd must find its way back by itself */
    th_pg_start(&pg);
    struct after up = {th_now_ms()};
    bool recovered = th_load_wait(l, ok_after, &up, 30000);
    long long t_recovered = th_now_ms();
    if (!recovered)
        log_daemon_tail(&d);
    cr_assert(recovered,
              "no post got a 2xx within 30 s of PostgreSQL's restart: rolloutd did not "
              "recover by itself (load: %s)",
              th_load_summary(l));
    ready = readyz_until(&d, 200, 5000);
    cr_expect_eq(ready, 200, "GET /readyz answered %d after the recovery, not 200", ready);

    struct th_load_stats after_up;
    th_load_stats(l, &after_up);
    cr_assert(th_load_wait_acked(l, after_up.acked + 150, 20000),
              "the load did not carry on after the recovery: %s", th_load_summary(l));
    th_load_stop(l);

    struct th_load_stats st;
    th_load_stats(l, &st);
    cr_log_info("postgres_killed: set-up %lld ms; PostgreSQL stopped %lld ms after the kill "
                "began; /readyz 503 %lld ms later; down %lld ms; first 2xx %lld ms after the "
                "restart; %ld 503s while down; %s",
                t_setup - t0, t_stopped - t_kill, t_noticed - t_stopped, up.t - t_stopped,
                t_recovered - up.t, down.s503 - before.s503, th_load_summary(l));
    cr_expect(st.s503 > before.s503, "no post got a 503 while PostgreSQL was down");
    assert_all_answered(l);

    th_db_reconnect(&db);
    long stored = th_load_check_stored(l, &db);
    th_check_counters(&db);
    char why[512] = "";
    long long agreed = th_wait_snapshot_agrees(&d, &db, 3000, why, sizeof why);
    cr_expect(agreed >= 0, "rolloutd's figures do not match the database 3 s after the load: %s",
              why);
    cr_log_info("postgres_killed: %ld events stored, %ld acknowledged", stored, st.acked);

    int exit_code = th_daemon_stop(&d, SIGTERM);
    cr_expect_eq(exit_code, 0, "rolloutd exited with %d after SIGTERM", exit_code);
    th_load_free(l);
    free(token);
    th_pg_db_close(&db);
    th_pg_destroy(&pg);
    cr_log_info("postgres_killed: %lld ms in all", th_now_ms() - t0);
}

/* ------------------------------------------------------------------------------------------ */

Test(faults, rolloutd_killed_and_started, .timeout = 60)
{
    long long t0 = th_now_ms();
    struct th_db db;
    th_db_create(&db);
    char *token = th_token(&db, "load", "admin", NULL);
    struct th_daemon d1, d2;
    th_daemon_start(&d1, &db, NULL);

    struct th_load_opts o = {.ports = {d1.port}, .nports = 1, .token = token, .concurrency = 16};
    struct th_load *l = th_load_start(&o);
    cr_assert(th_load_wait_acked(l, 300, 20000), "the load did not get 300 events through: %s",
              th_load_summary(l));

    struct th_load_stats before;
    th_load_stats(l, &before);
    long long t_kill = th_now_ms();
    int st = th_daemon_stop(&d1, SIGKILL);
    cr_assert_eq(st, 128 + SIGKILL, "rolloutd did not die of SIGKILL (status %d)", st);

    th_daemon_start(&d2, &db, NULL);
    th_load_set_port(l, 0, d2.port);
    long long t_ready = th_now_ms();
    struct after up = {t_ready};
    bool resumed = th_load_wait(l, ok_after, &up, 20000);
    if (!resumed)
        log_daemon_tail(&d2);
    cr_assert(resumed, "no post got a 2xx within 20 s of the new rolloutd being ready: %s",
              th_load_summary(l));
    struct th_load_stats mid;
    th_load_stats(l, &mid);
    cr_assert(th_load_wait_acked(l, mid.acked + 200, 20000),
              "the load did not carry on after the restart: %s", th_load_summary(l));
    th_load_stop(l);

    /* while the daemon was gone the clients could not connect or lost their answer; before and
     * after, every attempt was answered */
    int n, bad = 0, unheard = 0;
    const struct th_load_attempt *a = th_load_attempts(l, &n);
    for (int i = 0; i < n; i++) {
        bool gone = a[i].t_start <= t_ready && a[i].t_done >= t_kill;
        bool answered = a[i].outcome == TH_LOAD_ANSWERED &&
                        ((a[i].status >= 200 && a[i].status < 300) || a[i].status == 503);
        unheard += gone && a[i].outcome == TH_LOAD_NO_ANSWER && a[i].t_sent > 0;
        if (!answered && !gone && bad++ < 10)
            cr_log_error("attempt %s (%s) outside the kill: outcome %d, status %d %s",
                         a[i].event_id, a[i].state, (int)a[i].outcome, a[i].status, a[i].code);
    }
    cr_expect_eq(bad, 0, "%d attempts outside the time rolloutd was gone got no 2xx/503 answer",
                 bad);

    long stored = th_load_check_stored(l, &db);
    th_check_counters(&db);
    char why[512] = "";
    long long agreed = th_wait_snapshot_agrees(&d2, &db, 3000, why, sizeof why);
    cr_expect(agreed >= 0, "the new rolloutd's figures do not match the database: %s", why);
    cr_log_info("rolloutd_killed: %d requests lost their answer with the process, new daemon "
                "ready %lld ms after the kill, first 2xx %lld ms later; %ld events stored; %s",
                unheard, t_ready - t_kill, mid.last_ok_ms - t_ready, stored, th_load_summary(l));

    int exit_code = th_daemon_stop(&d2, SIGTERM);
    cr_expect_eq(exit_code, 0, "rolloutd exited with %d after SIGTERM", exit_code);
    th_load_free(l);
    free(token);
    th_db_drop(&db);
    cr_log_info("rolloutd_killed: %lld ms in all", th_now_ms() - t0);
}

/* ------------------------------------------------------------------------------------------ */

static bool requests_waiting(const struct th_load_stats *s, void *arg)
{
    (void)arg;
    return s->waiting >= 4;
}

Test(faults, sigterm_answers_everything_accepted, .timeout = 60)
{
    long long t0 = th_now_ms();
    struct th_db db;
    th_db_create(&db);
    char *token = th_token(&db, "load", "admin", NULL);
    struct th_daemon d;
    th_daemon_start(&d, &db, NULL);

    struct th_load_opts o = {.ports = {d.port}, .nports = 1, .token = token, .concurrency = 32};
    struct th_load *l = th_load_start(&o);
    cr_assert(th_load_wait_acked(l, 300, 20000), "the load did not get 300 events through: %s",
              th_load_summary(l));
    /* the signal goes out while requests wait for their answers: on a busy machine the load's
     * thread can lag, and a SIGTERM between its answers and its next requests proves nothing */
    cr_assert(th_load_wait(l, requests_waiting, NULL, 5000),
              "no request was waiting for its answer: %s", th_load_summary(l));

    th_load_mark_signal(l, TH_LOAD_SIGNALLING);
    long long t_sig = th_now_ms();
    th_daemon_signal(&d, SIGTERM);
    th_load_mark_signal(l, TH_LOAD_SIGNALLED);
    int exit_code = th_daemon_reap(&d, SIGTERM);
    long long t_exit = th_now_ms();
    th_load_stop(l);

    /* A request counts as accepted when it was completely sent before the SIGTERM (the daemon
     * had every chance to read it), and as waiting at it when its answer came after; both by
     * the load's marks around the kill(), not by the clock: a group commit answers its
     * requests at once and the load sends the next ones within the same millisecond, so by
     * the clock a SIGTERM in that millisecond found every one of them "sent after it". A
     * connection refused at connect carried nothing. */
    int n, accepted = 0, inflight = 0, bad = 0;
    int later_answered = 0, later_refused = 0, later_unanswered = 0;
    const struct th_load_attempt *a = th_load_attempts(l, &n);
    for (int i = 0; i < n; i++) {
        if (!a[i].sent_before_signal) {
            later_answered += a[i].outcome == TH_LOAD_ANSWERED;
            later_refused += a[i].outcome == TH_LOAD_REFUSED;
            later_unanswered += a[i].outcome == TH_LOAD_NO_ANSWER;
            continue;
        }
        accepted++;
        inflight += a[i].done_after_signal;
        bool ok = a[i].outcome == TH_LOAD_ANSWERED &&
                  ((a[i].status >= 200 && a[i].status < 300) || a[i].status == 503);
        if (!ok && bad++ < 10)
            cr_log_error("sent %lld ms before SIGTERM, then: outcome %d, status %d %s (connect "
                         "began %lld ms before, ended %lld ms after the SIGTERM)",
                         t_sig - a[i].t_sent, (int)a[i].outcome, a[i].status, a[i].code,
                         t_sig - a[i].t_start, a[i].t_done - t_sig);
    }
    cr_log_info("sigterm: %d requests sent before the SIGTERM, %d of them still waiting at it; "
                "exit after %lld ms; after the SIGTERM: %d answered, %d refused at connect, %d "
                "connected but unanswered; %s",
                accepted, inflight, t_exit - t_sig, later_answered, later_refused, later_unanswered,
                th_load_summary(l));
    cr_expect_eq(exit_code, 0, "rolloutd exited with %d after SIGTERM, not 0", exit_code);
    cr_expect(inflight > 0, "no request was waiting at the SIGTERM: the test proved nothing");
    cr_expect_eq(bad, 0,
                 "%d of %d requests sent before the SIGTERM got no answer, or one other than "
                 "2xx/503 (the first ones are logged above)",
                 bad, accepted);

    th_load_check_stored(l, &db);
    th_check_counters(&db);
    th_load_free(l);
    free(token);
    th_db_drop(&db);
    cr_log_info("sigterm: %lld ms in all", th_now_ms() - t0);
}

/* ------------------------------------------------------------------------------------------ */

/* Sends a complete POST on a new blocking connection; returns the socket. */
static int send_post(int port, const char *token, const char *body)
{
    int fd = th_connect(port);
    cr_assert(fd >= 0, "connect to rolloutd: %s", strerror(errno));
    char req[4096];
    int n = snprintf(req, sizeof req,
                     "POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAuthorization: Bearer "
                     "%s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n%s",
                     port, token, strlen(body), body);
    cr_assert(send(fd, req, (size_t)n, MSG_NOSIGNAL) == n, "send: %s", strerror(errno));
    return fd;
}

/* Reads the answer until the server closes (at most timeout_ms); returns the HTTP status, 0
 * when the connection ended without one. */
static int read_status(int fd, int timeout_ms)
{
    char buf[4096];
    size_t len = 0;
    long long deadline = th_now_ms() + timeout_ms;
    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        long long left = deadline - th_now_ms();
        if (left <= 0 || poll(&p, 1, (int)left) <= 0)
            break;
        ssize_t got = recv(fd, buf + len, sizeof buf - 1 - len, 0);
        if (got <= 0)
            break;
        len += (size_t)got;
        if (len == sizeof buf - 1)
            break;
    }
    buf[len] = '\0';
    int status = 0;
    if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1)
        status = 0;
    return status;
}

/* The sharpest case of "answer everything accepted": an idle daemon gets SIGTERM a moment after
 * complete requests were sent on connections the kernel accepted for it. */
Test(faults, sigterm_right_after_requests_were_sent, .timeout = 60)
{
    struct th_db db;
    th_db_create(&db);
    char *token = th_token(&db, "poster", "admin", NULL);
    struct th_daemon d;
    th_daemon_start(&d, &db, NULL);

    enum { N = 8 };
    int fds[N];
    char ids[N][37];
    for (int i = 0; i < N; i++) {
        char body[1024];
        th_uuid(ids[i]);
        snprintf(body, sizeof body,
                 "{\"event_id\":\"%s\",\"employee\":\"P%07d\",\"item\":\"wlan_autologin\","
                 "\"state\":\"active\",\"occurred_at\":\"2026-01-05T10:00:00+01:00\"}",
                 ids[i], i + 1);
        fds[i] = send_post(d.port, token, body);
    }
    pid_t pid = d.pid;
    kill(pid, SIGTERM);
    int statuses[N], unanswered = 0;
    for (int i = 0; i < N; i++) {
        statuses[i] = read_status(fds[i], 15000);
        close(fds[i]);
        bool ok = (statuses[i] >= 200 && statuses[i] < 300) || statuses[i] == 503;
        unanswered += !ok;
        if (!ok)
            cr_log_error("request %d (event %s), sent completely before the SIGTERM: %s", i, ids[i],
                         statuses[i] ? "an answer other than 2xx/503" : "no answer at all");
    }
    int exit_code = th_daemon_stop(&d, 0); /* signal 0: no second SIGTERM, just wait */
    cr_expect_eq(exit_code, 0, "rolloutd exited with %d after SIGTERM", exit_code);
    cr_expect_eq(unanswered, 0,
                 "%d of %d requests sent completely before the SIGTERM got no 2xx/503 answer "
                 "(the connection was closed without one)",
                 unanswered, N);

    /* what was acknowledged is stored */
    for (int i = 0; i < N; i++) {
        if (statuses[i] < 200 || statuses[i] >= 300)
            continue;
        const char *params[] = {ids[i]};
        PGresult *r = th_sql(&db, "SELECT 1 FROM event WHERE event_id = $1", 1, params);
        cr_expect_eq(PQntuples(r), 1, "event %s got %d but is not stored", ids[i], statuses[i]);
        PQclear(r);
    }
    th_check_counters(&db);
    free(token);
    th_db_drop(&db);
}

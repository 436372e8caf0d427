/* Bad input (issue 6): a catalogue of requests that are malformed, hostile or just odd, sent to
 * ONE running daemon, each with the status and error code the contract gives it. The cases are
 * data in tests/api/badinput/NNN-name.case, in the format documented at the top of
 * test_api_contract.c (whose case machinery this file includes; its tests are left out here).
 * A client that sends its request one byte a second, and requests pipelined on one connection
 * (answers to HEAD without content), are C below.
 *
 * The daemon runs with small limits: http.max_body_bytes 65536, http.batch_max_events 50.
 * The cases that store events use an employee and item of their own (so no case depends on
 * another's state); after the whole catalogue the daemon must still be up and the database must
 * hold exactly the events the daemon said it stored (201s and batch "created" results). */
#define TEST_API_LIBRARY_ONLY
#include "test_api_contract.c"

#define BADINPUT_CONFIG "http = { max_body_bytes = 65536; batch_max_events = 50; };"
#define BADINPUT_MAX 512
#define BADINPUT_MIN 60

/* A client that sends its request one byte a second while others are served. Returns whether
 * every /healthz meanwhile answered 200 within a second. */
static bool trickle(struct th_daemon *d, int bytes)
{
    static const char req[] = "POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\n";
    int fd = th_connect(d->port);
    cr_assert(fd >= 0, "cannot connect to rolloutd");
    bool ok = true;
    for (int i = 0; i < bytes && i < (int)sizeof req - 1; i++) {
        long long start = api_now_ms();
        bool sent = api_write_all(fd, req + i, 1);
        cr_expect(sent, "the slow client's byte %d could not be sent (connection closed early)",
                  i + 1);
        struct api_resp *r = api_http(d, "GET", "/healthz", NULL, NULL, NULL, 0);
        long long took = api_now_ms() - start;
        cr_expect_eq(r->status, 200, "GET /healthz while a client trickles: %d", r->status);
        cr_expect_lt(took, 1000, "GET /healthz took %lld ms while a client trickles its request "
                                 "(byte %d of %d)",
                     took, i + 1, bytes);
        ok &= r->status == 200 && took < 1000;
        resp_free(r);
        long long left = 1000 - (api_now_ms() - start);
        if (left > 0)
            api_sleep_ms((int)left);
    }
    close(fd);
    return ok;
}

/* Two requests in one write on one connection (HTTP/1.1 pipelining): `method path`, then
 * GET /healthz. The answers must come back in order and framed, so the second is found right
 * where the first ends; an answer to HEAD has no content (RFC 9110 9.3.2, RFC 9112 6.3), or a
 * client on a kept-alive connection reads it as the start of the next answer. */
static bool pipelined(struct th_daemon *d, const char *method, const char *path,
                      int want_status)
{
    char req[512];
    snprintf(req, sizeof req,
             "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
             "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
             method, path);
    int fd = th_connect(d->port);
    cr_assert(fd >= 0, "cannot connect to rolloutd");
    api_write_all(fd, req, strlen(req));
    struct abuf in = {0};
    long long deadline = api_now_ms() + 5000;
    while (api_now_ms() < deadline) {
        struct pollfd pfd = {fd, POLLIN, 0};
        if (poll(&pfd, 1, 200) <= 0)
            continue;
        char chunk[8192];
        ssize_t got = recv(fd, chunk, sizeof chunk, 0);
        if (got <= 0)
            break;
        abuf_add(&in, chunk, (size_t)got);
    }
    close(fd);
    char what[160];
    snprintf(what, sizeof what, "pipelined %s %s, then GET /healthz", method, path);
    bool ok = in.data != NULL;
    char *end = ok ? strstr(in.data, "\r\n\r\n") : NULL;
    int status = ok ? atoi(in.data + 9) : 0;
    ok = end != NULL && strncmp(in.data, "HTTP/1.1 ", 9) == 0 && status == want_status;
    cr_expect(ok, "%s: the first answer must be %d; got: %.300s", what, want_status,
              in.data ? in.data : "(nothing)");
    if (ok) {
        /* the content of the first answer, by its Content-Length (none for HEAD) */
        char *next = end + 4;
        bool head = strcmp(method, "HEAD") == 0;
        char *cl = strstr(in.data, "Content-Length:");
        if (!head && cl && cl < end)
            next += strtol(cl + 15, NULL, 10);
        char ex[200];
        api_excerpt(next, strlen(next), ex, sizeof ex);
        ok = strncmp(next, "HTTP/1.1 200", 12) == 0 && strstr(next, "{\"status\":\"alive\"}");
        cr_expect(ok, "%s: the answer to GET /healthz must follow right after the first "
                      "answer%s; found instead: %s",
                  what, head ? " (an answer to HEAD has no content)" : "", ex);
    }
    free(in.data);
    return ok;
}

Test(badinput, catalogue_against_one_daemon, .timeout = 300)
{
    static struct api_case_file files[BADINPUT_MAX];
    int n = case_list("badinput", files, BADINPUT_MAX);
    cr_assert_geq(n, BADINPUT_MIN, "tests/api/badinput holds %d cases; issue 6 asks for at least "
                                   "%d",
                  n, BADINPUT_MIN);
    char dir[512];
    case_dir("badinput", dir, sizeof dir);

    struct th_db db;
    th_db_create(&db);
    /* every token any case needs exists before the daemon starts and loads them */
    struct api_tokens tokens = {0};
    tokens_need(&tokens, &db, "admin");
    for (int i = 0; i < n; i++) {
        struct api_case c;
        case_load(&c, dir, files[i].file, 0, NULL);
        cr_assert(c.config == NULL, "%s: the catalogue shares one daemon; no config: here",
                  c.name);
        tokens_need(&tokens, &db, c.token);
        for (int s = 0; s < c.nsteps; s++)
            if (c.steps[s].token)
                tokens_need(&tokens, &db, c.steps[s].token);
        case_free(&c);
    }
    struct th_daemon d;
    th_daemon_start(&d, &db, BADINPUT_CONFIG);
    struct api_run run = {.d = &d, .db = &db, .tokens = &tokens};

    long long start = api_now_ms();
    int failed = 0, requests = 0;
    struct abuf failures = {0};
    for (int i = 0; i < n; i++) {
        struct api_case c;
        case_load(&c, dir, files[i].file, d.port, &tokens);
        for (int k = 0; k < c.nsetup; k++)
            PQclear(th_sql(&db, c.setup[k], 0, NULL));
        bool ok = case_run_steps(&c, &run);
        requests += c.nsteps;
        if (!ok) {
            failed++;
            abuf_puts(&failures, "\n  ");
            abuf_puts(&failures, c.name);
            abuf_puts(&failures, ": ");
            abuf_puts(&failures, c.description);
        }
        /* after every case: still alive */
        struct api_resp *h = api_http(&d, "GET", "/healthz", NULL, NULL, NULL, 0);
        cr_assert_eq(h->status, 200, "rolloutd no longer answers /healthz after %s (status %d)",
                     c.name, h->status);
        resp_free(h);
        case_free(&c);
    }
    cr_log_info("bad input: %d cases (%d requests) in %lld ms, %d failed%s", n, requests,
                api_now_ms() - start, failed, failures.data ? failures.data : "");
    free(failures.data);

    /* a client that sends its request one byte a second; others are served meanwhile */
    trickle(&d, 5);

    struct api_resp *h = api_http(&d, "GET", "/healthz", NULL, NULL, NULL, 0);
    cr_expect_eq(h->status, 200, "after the catalogue GET /healthz answered %d", h->status);
    resp_free(h);
    h = api_http(&d, "GET", "/readyz", NULL, NULL, NULL, 0);
    cr_expect_eq(h->status, 200, "after the catalogue GET /readyz answered %d", h->status);
    resp_free(h);
    long long stored = th_sql_int(&db, "SELECT count(*) FROM event");
    cr_expect_eq(stored, run.created,
                 "the database holds %lld events; the daemon said it stored %d (201s and batch "
                 "\"created\" results)",
                 stored, run.created);
    cr_log_info("bad input: %d events accepted and %lld in the database", run.created, stored);
    cr_expect_gt(run.created, 0, "the catalogue has cases that must be accepted");

    char *log = th_daemon_log(&d);
    cr_expect(strstr(log, " 500 ") == NULL, "rolloutd answered 500 to some request; its log:\n%s",
              log);
    free(log);
    int st = th_daemon_stop(&d, SIGTERM);
    cr_expect_eq(st, 0, "rolloutd exited with %d on SIGTERM after the catalogue", st);
    th_db_drop(&db);
}

/* Requests pipelined on one connection: GET as a control, then HEAD, whose answers must have no
 * content whatever their status. */
Test(badinput, pipelined_requests_and_head_answers_without_content, .timeout = 60)
{
    struct th_db db;
    th_db_create(&db);
    struct th_daemon d;
    th_daemon_start(&d, &db, BADINPUT_CONFIG);
    pipelined(&d, "GET", "/healthz", 200);
    pipelined(&d, "GET", "/v1/nothing", 404);
    pipelined(&d, "HEAD", "/healthz", 200);
    pipelined(&d, "HEAD", "/v1/progress", 200);
    pipelined(&d, "HEAD", "/status", 200);
    pipelined(&d, "HEAD", "/v1/events", 405);
    pipelined(&d, "HEAD", "/v1/nothing", 404);
    cr_expect_eq(th_daemon_stop(&d, SIGTERM), 0);
    th_db_drop(&db);
}

/* Several rolloutd instances on one database (issues 4 and 8): a commit through one instance
 * reaches the others' progress snapshots through LISTEN/NOTIFY within a second, and three
 * instances posting at once store every event once with exact counters. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "domain.h"
#include "harness.h"
#include "harness_load.h"

#define AGREE_MS 1000

static void post_active(struct th_daemon *d, const char *token, int employee, enum item item)
{
    char id[37], body[300];
    th_uuid(id);
    snprintf(body, sizeof body,
             "{\"event_id\":\"%s\",\"employee\":\"P%07d\",\"item\":\"%s\",\"state\":\"active\","
             "\"occurred_at\":\"2026-01-05T10:00:00+01:00\"}",
             id, employee, item_info(item)->key);
    struct th_response *r = th_http(d, "POST", "/v1/events", token, NULL, body, strlen(body));
    cr_assert_eq(r->status, 201, "POST to the instance on port %d: expected 201, got %d: %s",
                 d->port, r->status, r->body);
    th_response_free(r);
}

Test(instances, two_instances_agree_within_a_second, .timeout = 60)
{
    struct th_db db;
    th_db_create(&db);
    char *token = th_token(&db, "poster", "admin", NULL);
    struct th_daemon a, b;
    th_daemon_start(&a, &db, NULL);
    th_daemon_start(&b, &db, NULL);
    struct th_daemon *inst[2] = {&a, &b};
    char why[512] = "";
    for (int i = 0; i < 2; i++)
        cr_assert(th_wait_snapshot_agrees(inst[i], &db, 3000, why, sizeof why) >= 0,
                  "before any post: %s", why);

    /* eight commits, each through one instance; the other one must show it within a second
     * (it hears of it only by NOTIFY: without a commit of its own it reads nothing) */
    long long worst = 0;
    for (int round = 0; round < 8; round++) {
        struct th_daemon *writer = round < 6 ? &a : &b, *reader = writer == &a ? &b : &a;
        post_active(writer, token, round + 1, (enum item)(round % ITEM_COUNT));
        long long t_ack = th_now_ms();
        long long t = th_wait_snapshot_agrees(reader, &db, 5000, why, sizeof why);
        cr_assert(t >= 0,
                  "round %d: the instance on port %d did not show the commit made through port "
                  "%d within 5 s: %s",
                  round, reader->port, writer->port, why);
        long long took = t - t_ack;
        cr_expect(took < AGREE_MS,
                  "round %d: the instance on port %d showed the commit made through port %d "
                  "only after %lld ms (at most %d allowed)",
                  round, reader->port, writer->port, took, AGREE_MS);
        if (took > worst)
            worst = took;
        cr_assert(th_wait_snapshot_agrees(writer, &db, AGREE_MS, why, sizeof why) >= 0,
                  "round %d: the writing instance's own figures: %s", round, why);
    }
    cr_log_info("two instances: the other instance agreed at worst %lld ms after the 201", worst);

    for (int i = 0; i < 2; i++)
        cr_expect_eq(th_daemon_stop(inst[i], SIGTERM), 0, "instance %d did not exit with 0", i);
    free(token);
    th_db_drop(&db);
}

/* The other instances hear of a commit through the committing instance's next progress read.
 * An instance stopped right after its last commit still tells them before it exits. */
Test(instances, a_stopping_instance_still_tells_the_others, .timeout = 60)
{
    struct th_db db;
    th_db_create(&db);
    char *token = th_token(&db, "poster", "admin", NULL);
    struct th_daemon a, b;
    th_daemon_start(&a, &db, "progress = { snapshot_refresh_ms = 2000; };\n");
    th_daemon_start(&b, &db, NULL);
    char why[512] = "";
    cr_assert(th_wait_snapshot_agrees(&b, &db, 3000, why, sizeof why) >= 0, "before: %s", why);

    post_active(&a, token, 1, ITEM_MOBILE_DEVICE);
    /* at once: a's next read (and its NOTIFY) is up to 2 s away */
    cr_expect_eq(th_daemon_stop(&a, SIGTERM), 0, "the writing instance did not exit with 0");
    long long t = th_wait_snapshot_agrees(&b, &db, 1000, why, sizeof why);
    cr_expect(t >= 0, "the other instance did not show the stopped instance's last commit: %s",
              why);

    cr_expect_eq(th_daemon_stop(&b, SIGTERM), 0);
    free(token);
    th_db_drop(&db);
}

Test(instances, three_instances_one_database, .timeout = 60)
{
    long long t0 = th_now_ms();
    struct th_db db;
    th_db_create(&db);
    char *token = th_token(&db, "load", "admin", NULL);
    struct th_daemon d[3];
    for (int i = 0; i < 3; i++)
        th_daemon_start(&d[i], &db, NULL);

    enum { EVENTS = 1200 };
    struct th_load_opts o = {.ports = {d[0].port, d[1].port, d[2].port},
                             .nports = 3,
                             .token = token,
                             .concurrency = 24,
                             .max_events = EVENTS};
    long long t_load = th_now_ms();
    struct th_load *l = th_load_start(&o);
    cr_assert(th_load_wait_acked(l, EVENTS, 40000), "the load did not finish within 40 s: %s",
              th_load_summary(l));
    th_load_stop(l);
    struct th_load_stats st;
    th_load_stats(l, &st);
    cr_log_info("three instances: %s in %lld ms", th_load_summary(l), st.last_ok_ms - t_load);
    cr_expect_eq(st.attempts, st.ok, "without a fault every post must get a 2xx: %s",
                 th_load_summary(l));

    /* every event once, nothing else, counters exact */
    long stored = th_load_check_stored(l, &db);
    cr_expect_eq(stored, st.acked, "%ld events stored, %ld acknowledged", stored, st.acked);
    th_check_counters(&db);

    /* every instance's /status and /v1/progress within a second of the last commit */
    char why[512] = "";
    for (int i = 0; i < 3; i++) {
        long long t = th_wait_snapshot_agrees(&d[i], &db, 5000, why, sizeof why);
        cr_assert(t >= 0, "instance %d (port %d) does not show the database's figures: %s", i,
                  d[i].port, why);
        cr_expect(t - st.last_ok_ms < AGREE_MS,
                  "instance %d (port %d) agreed only %lld ms after the last commit", i, d[i].port,
                  t - st.last_ok_ms);
        cr_log_info("instance %d agreed %lld ms after the last 2xx", i, t - st.last_ok_ms);
    }

    for (int i = 0; i < 3; i++)
        cr_expect_eq(th_daemon_stop(&d[i], SIGTERM), 0, "instance %d did not exit with 0", i);
    th_load_free(l);
    free(token);
    th_db_drop(&db);
    cr_log_info("three instances: %lld ms in all", th_now_ms() - t0);
}

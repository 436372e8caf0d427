/* Concurrency through the real daemon and PostgreSQL: the same event posted at the same moment
 * on many connections (idempotency under races, and after a restart), mixed batches posted in
 * parallel (good events stored, bad ones not, checked by SQL), and a random mix of posts from
 * many clients after which the counters agree with a recount and the state with the history,
 * and events that arrive together going into one group commit.
 *
 * Clients are threads. A thread uses the harness's th_http (its own event_base per call) or a
 * plain socket; "at the same moment" means: every thread has connected and sent all but the
 * last byte of its request, then all send their last byte at once (a barrier). Threads make no
 * Criterion assertions; they record, and the test thread checks. */
#define TEST_API_LIBRARY_ONLY
#include "test_api_contract.c"

#include <pthread.h>

#define CLIENTS 16

struct shot {
    /* in */
    struct th_daemon *d;
    pthread_barrier_t *barrier;
    const char *request; /* whole raw request (plain socket mode) */
    size_t request_len;
    const char *token, *body; /* th_http mode */
    bool plain;
    /* out */
    struct api_resp *resp;
};

static void *shot_run(void *arg)
{
    struct shot *s = arg;
    if (s->plain) {
        int fd = th_connect(s->d->port);
        bool ok = fd >= 0 && api_write_all(fd, s->request, s->request_len - 1);
        pthread_barrier_wait(s->barrier);
        if (ok)
            ok = api_write_all(fd, s->request + s->request_len - 1, 1);
        s->resp = ok ? api_read_answer(fd, false, 30000) : NULL;
        if (fd >= 0)
            close(fd);
    } else {
        pthread_barrier_wait(s->barrier);
        s->resp = api_http(s->d, "POST", "/v1/events", s->token, NULL, s->body, strlen(s->body));
    }
    return NULL;
}

static char *raw_post(int port, const char *token, const char *body, size_t *len)
{
    struct abuf b = {0};
    char head[512];
    snprintf(head, sizeof head,
             "POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n"
             "Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
             "Content-Length: %zu\r\n\r\n",
             port, token, strlen(body));
    abuf_puts(&b, head);
    abuf_puts(&b, body);
    *len = b.len;
    return abuf_take(&b);
}

/* Posts body from CLIENTS clients at once; resp[i] are the answers (NULL: none). */
static void post_at_once(struct th_daemon *d, const char *token, const char *body, bool plain,
                         struct api_resp *resp[CLIENTS])
{
    pthread_barrier_t barrier;
    pthread_barrier_init(&barrier, NULL, CLIENTS);
    size_t len = 0;
    char *req = raw_post(d->port, token, body, &len);
    struct shot shots[CLIENTS];
    pthread_t th[CLIENTS];
    for (int i = 0; i < CLIENTS; i++) {
        shots[i] = (struct shot){.d = d, .barrier = &barrier, .request = req, .request_len = len,
                                 .token = token, .body = body, .plain = plain};
        cr_assert_eq(pthread_create(&th[i], NULL, shot_run, &shots[i]), 0, "pthread_create");
    }
    for (int i = 0; i < CLIENTS; i++) {
        pthread_join(th[i], NULL);
        resp[i] = shots[i].resp;
    }
    pthread_barrier_destroy(&barrier);
    free(req);
}

static long long count_event(struct th_db *db, const char *id)
{
    const char *params[] = {id};
    PGresult *r = th_sql(db, "SELECT count(*) FROM event WHERE event_id = $1", 1, params);
    long long n = atoll(PQgetvalue(r, 0, 0));
    PQclear(r);
    return n;
}

/* ---- the same event on 16 connections at once -------------------------------------------- */

#define ROUNDS 12

Test(concurrency, same_event_at_the_same_moment_is_stored_once, .timeout = 120)
{
    struct th_db db;
    th_db_create(&db);
    char *admin = th_token(&db, "test-admin", "admin", NULL);
    struct th_daemon d;
    th_daemon_start(&d, &db, NULL);

    char ids[ROUNDS][37];
    char *first_body[ROUNDS];
    char *bodies[ROUNDS];
    for (int round = 0; round < ROUNDS; round++) {
        /* half through plain sockets with the last byte sent together, half through th_http */
        bool plain = round % 2 == 0;
        th_uuid(ids[round]);
        char emp[16];
        snprintf(emp, sizeof emp, "P%07d", round + 1);
        bodies[round] = event_json(ids[round], emp, "hessen_smartphone", "delivered",
                                   "2026-10-01T08:00:00+02:00",
                                   ", \"device\": {\"serial\": \"CONC-1\", \"model\": \"A54\"}");
        /* one device for all rounds would be device_in_use; give each its own */
        char *p = strstr(bodies[round], "CONC-1");
        p[5] = (char)('A' + round);
        struct api_resp *resp[CLIENTS];
        post_at_once(&d, admin, bodies[round], plain, resp);

        int created = 0, replayed = 0, other = 0;
        const struct api_resp *the201 = NULL;
        for (int i = 0; i < CLIENTS; i++) {
            struct api_resp *r = resp[i];
            if (r && r->status == 201) {
                created++;
                the201 = r;
                cr_expect(resp_header(r, "Idempotent-Replayed") == NULL,
                          "round %d: the 201 must not say Idempotent-Replayed", round);
            } else if (r && r->status == 200) {
                replayed++;
                const char *h = resp_header(r, "Idempotent-Replayed");
                cr_expect(h && strcmp(h, "true") == 0,
                          "round %d: a replayed answer without Idempotent-Replayed: true", round);
            } else {
                other++;
                cr_expect(0, "round %d (%s): client %d got %d: %s", round,
                          plain ? "last byte together" : "th_http", i, r ? r->status : -1,
                          r ? r->body : "(no answer)");
            }
        }
        cr_expect_eq(created, 1, "round %d (%s): exactly one 201 expected, got %d (and %d 200, "
                                 "%d other)",
                     round, plain ? "last byte together" : "th_http", created, replayed, other);
        cr_expect_eq(replayed, CLIENTS - 1, "round %d: %d answers 200 expected, got %d", round,
                     CLIENTS - 1, replayed);
        first_body[round] = NULL;
        if (the201) {
            first_body[round] = api_strdup(the201->body);
            for (int i = 0; i < CLIENTS; i++)
                if (resp[i] && resp[i]->status == 200)
                    cr_expect_str_eq(resp[i]->body, the201->body,
                                     "round %d: a replayed body differs from the first answer",
                                     round);
        }
        cr_expect_eq(count_event(&db, ids[round]), 1, "round %d: rows in event for the id",
                     round);
        for (int i = 0; i < CLIENTS; i++)
            resp_free(resp[i]);
    }
    cr_expect_eq(th_sql_int(&db, "SELECT count(*) FROM event"), ROUNDS);
    cr_expect_eq(th_sql_int(&db, "SELECT coalesce(sum(n), 0) FROM progress_counter WHERE "
                                 "state = 'delivered'"),
                 ROUNDS, "every event counted once");
    cr_expect_eq(th_sql_int(&db, "SELECT count(*) FROM device_holding"), ROUNDS,
                 "every device handed over once");

    /* the same in concurrent batches: one "created", the rest "duplicate" */
    char bid[37];
    th_uuid(bid);
    char *ev = event_json(bid, "P0000040", "wlan_autologin", "active", "2026-10-01T08:00:00Z",
                          NULL);
    char *batch = malloc(strlen(ev) * 2 + 64);
    cr_assert(batch != NULL);
    /* the event twice in each batch: 2 * CLIENTS results, one of them created */
    snprintf(batch, strlen(ev) * 2 + 64, "[%s, %s]", ev, ev);
    struct api_resp *resp[CLIENTS];
    post_at_once(&d, admin, batch, true, resp);
    int created = 0, dup = 0;
    for (int i = 0; i < CLIENTS; i++) {
        cr_expect(resp[i] && resp[i]->status == 200, "batch client %d: %d %s", i,
                  resp[i] ? resp[i]->status : -1, resp[i] ? resp[i]->body : "");
        json_t *res = resp[i] ? json_object_get(resp[i]->json, "results") : NULL;
        size_t k;
        json_t *v;
        json_array_foreach(res, k, v)
        {
            const char *what = json_string_value(json_object_get(v, "result"));
            created += what && strcmp(what, "created") == 0;
            dup += what && strcmp(what, "duplicate") == 0;
        }
        resp_free(resp[i]);
    }
    cr_expect_eq(created, 1, "concurrent batches: one created expected, got %d", created);
    cr_expect_eq(dup, 2 * CLIENTS - 1, "concurrent batches: %d duplicates expected, got %d",
                 2 * CLIENTS - 1, dup);
    cr_expect_eq(count_event(&db, bid), 1);
    free(batch);
    free(ev);

    /* after a restart the replay still answers 200 with the first body */
    int st = th_daemon_stop(&d, SIGTERM);
    cr_expect_eq(st, 0, "rolloutd exited with %d on SIGTERM", st);
    th_daemon_start(&d, &db, NULL);
    for (int round = 0; round < ROUNDS; round++) {
        struct api_resp *r = api_http(&d, "POST", "/v1/events", admin, NULL, bodies[round],
                                      strlen(bodies[round]));
        cr_expect_eq(r->status, 200, "after the restart, round %d's event: %d %s", round,
                     r->status, r->body);
        const char *h = resp_header(r, "Idempotent-Replayed");
        cr_expect(h && strcmp(h, "true") == 0, "after the restart: Idempotent-Replayed: true");
        if (first_body[round])
            cr_expect_str_eq(r->body, first_body[round],
                             "after the restart the replay of round %d must be the first body",
                             round);
        resp_free(r);
        free(first_body[round]);
        free(bodies[round]);
    }
    cr_expect_eq(th_sql_int(&db, "SELECT count(*) FROM event"), ROUNDS + 1);
    st = th_daemon_stop(&d, SIGTERM);
    cr_expect_eq(st, 0);
    free(admin);
    th_db_drop(&db);
}

/* ---- mixed batches in parallel ------------------------------------------------------------ */

#define BATCHES 4
#define BATCH_EVENTS 30

struct batch_client {
    struct th_daemon *d;
    pthread_barrier_t *barrier;
    const char *token;
    char *body;
    struct api_resp *resp;
};

static void *batch_run(void *arg)
{
    struct batch_client *b = arg;
    pthread_barrier_wait(b->barrier);
    b->resp = api_http(b->d, "POST", "/v1/events", b->token, NULL, b->body, strlen(b->body));
    return NULL;
}

Test(concurrency, parallel_mixed_batches_store_the_good_and_nothing_of_the_bad, .timeout = 120)
{
    struct th_db db;
    th_db_create(&db);
    char *admin = th_token(&db, "test-admin", "admin", NULL);
    char *fin = th_token(&db, "test-support-fin", "support", "HMdF");
    struct th_daemon d;
    th_daemon_start(&d, &db, NULL);

    /* Each batch: 30 events cycling through 10 kinds, of which 0, 1 and 7 are good (each on
     * an employee and item of its own); batch b writes employees 10b+1 .. 10b+10, so batches
     * never collide. The last batch goes in with a support token of HMdF while its employees
     * (31..40) are HMdJ's: even its good events are outside_scope, nothing of it is stored. */
    json_t *good = json_array();
    struct batch_client clients[BATCHES];
    for (int b = 0; b < BATCHES; b++) {
        struct abuf body = {0};
        abuf_puts(&body, "[");
        for (int k = 0; k < BATCH_EVENTS; k++) {
            char id[37], emp[16], at[40];
            th_uuid(id);
            /* batch b uses employees 10b+1 .. 10b+10; kind k % 10 */
            int e = 10 * b + k % 10 + 1;
            int kind = k % 10;
            snprintf(emp, sizeof emp, "P%07d", e);
            const char *item = k < 10 ? "mobile_device" : k < 20 ? "hessen_voice" : "wlan_autologin";
            snprintf(at, sizeof at, "2026-09-%02dT08:00:00Z", 1 + k / 10);
            char *ev = NULL;
            switch (kind) {
            case 0: /* good */
            case 1:
                ev = event_json(id, emp, item, "planned", at, NULL);
                if (b < BATCHES - 1)
                    json_array_append_new(good, json_string(id));
                break;
            case 2: /* invalid uuid */
                ev = event_json("123", emp, item, "planned", at, NULL);
                break;
            case 3: /* unknown employee */
                ev = event_json(id, "P9999999", item, "planned", at, NULL);
                break;
            case 4: /* illegal: returned from nothing */
                ev = event_json(id, emp, item, "returned", at, NULL);
                break;
            case 5: /* unknown item */
                ev = event_json(id, emp, "tablet", "planned", at, NULL);
                break;
            case 6: /* invalid IMEI */
                ev = event_json(id, emp, item, "planned", at,
                                ", \"device\": {\"serial\": \"X1\", \"imei\": \"356938035643808\"}");
                break;
            case 7: /* good, with a device of its own */
            {
                char dev[96];
                snprintf(dev, sizeof dev, ", \"device\": {\"serial\": \"MB-%d-%d\"}", b, k);
                ev = event_json(id, emp, item, "ordered", at, dev);
                if (b < BATCHES - 1)
                    json_array_append_new(good, json_string(id));
                break;
            }
            case 8: /* timestamp in the future */
                ev = event_json(id, emp, item, "planned", "2099-01-01T00:00:00Z", NULL);
                break;
            default: /* features on an item that has none */
                ev = event_json(id, emp, "mobile_device", "planned", at,
                                ", \"features\": {\"cti\": true}");
                break;
            }
            abuf_puts(&body, k ? ", " : "");
            abuf_puts(&body, ev);
            free(ev);
        }
        abuf_puts(&body, "]");
        clients[b] = (struct batch_client){.d = &d, .token = admin, .body = abuf_take(&body)};
    }
    clients[BATCHES - 1].token = fin;

    pthread_barrier_t barrier;
    pthread_barrier_init(&barrier, NULL, BATCHES);
    pthread_t th[BATCHES];
    for (int b = 0; b < BATCHES; b++) {
        clients[b].barrier = &barrier;
        cr_assert_eq(pthread_create(&th[b], NULL, batch_run, &clients[b]), 0);
    }
    for (int b = 0; b < BATCHES; b++)
        pthread_join(th[b], NULL);
    pthread_barrier_destroy(&barrier);

    for (int b = 0; b < BATCHES; b++) {
        struct api_resp *r = clients[b].resp;
        cr_expect_eq(r->status, 200, "batch %d: %d %s", b, r->status, r->body);
        json_t *res = json_object_get(r->json, "results");
        cr_expect_eq(json_array_size(res), BATCH_EVENTS, "batch %d: one result per event", b);
        size_t k;
        json_t *v;
        json_array_foreach(res, k, v)
        {
            int kind = (int)k % 10;
            const char *what = json_string_value(json_object_get(v, "result"));
            bool should = b < BATCHES - 1 && (kind == 0 || kind == 1 || kind == 7);
            cr_expect(what && strcmp(what, should ? "created" : "rejected") == 0,
                      "batch %d event %zu (kind %d): expected %s, got %s", b, k, kind,
                      should ? "created" : "rejected", json_dumps(v, JSON_COMPACT));
        }
        resp_free(r);
        free(clients[b].body);
    }

    /* by SQL: exactly the good events of the admin batches, nothing else, nothing half */
    char *want = json_dumps(good, JSON_COMPACT);
    const char *params[] = {want};
    PGresult *q = th_sql(&db,
                         "SELECT (SELECT count(*) FROM event) || ' ' || "
                         "(SELECT count(*) FROM event WHERE event_id::text IN "
                         " (SELECT jsonb_array_elements_text($1::jsonb))) || ' ' || "
                         "(SELECT count(*) FROM item_state) || ' ' || "
                         "(SELECT count(*) FROM device) || ' ' || "
                         "(SELECT coalesce(sum(n), 0) FROM progress_counter)",
                         1, params);
    char expect_line[128];
    size_t ng = json_array_size(good);
    /* each good event is one item state and one counted state; one in three has a device */
    snprintf(expect_line, sizeof expect_line, "%zu %zu %zu %zu %zu", ng, ng, ng, ng / 3, ng);
    cr_expect_str_eq(PQgetvalue(q, 0, 0), expect_line,
                     "events, good ones among them, item states, devices, counted states: "
                     "expected %s, got %s",
                     expect_line, PQgetvalue(q, 0, 0));
    PQclear(q);
    expect_counters_match_item_state(&db, "after the parallel batches");
    free(want);
    json_decref(good);
    cr_expect_eq(th_daemon_stop(&d, SIGTERM), 0);
    free(admin);
    free(fin);
    th_db_drop(&db);
}

/* ---- a random mix from many clients: counters against recounts ---------------------------- */

#define MIX_CLIENTS 8
#define MIX_POSTS 80

struct mix_client {
    struct th_daemon *d;
    const char *token;
    unsigned seed;
    int created, rejected, other, batches;
    char other_body[256];
    json_t *created_ids; /* event_ids answered 201 or "created" */
};

static const char *const mix_items[] = {"mobile_device", "hessen_smartphone", "hessen_voice",
                                        "wlan_autologin"};
static const char *const mix_states[] = {"planned", "ordered",  "delivered",
                                         "active",  "returned", "cancelled"};

static char *mix_event(unsigned *seed, int step, char id_out[37])
{
    char emp[16], at[40];
    th_uuid(id_out);
    /* 12 employees of all Ressorts, so that clients meet on the same rows */
    int e = (int)(rand_r(seed) % 12) * 3 + 1;
    snprintf(emp, sizeof emp, "P%07d", e);
    /* time moves on with every post (all clients alike, so they overlap), jittered; one event
     * in eight is from a day before: a late upload */
    int minute = step * 50 + (int)(rand_r(seed) % 100) + 1440;
    if (rand_r(seed) % 8 == 0)
        minute -= 1440;
    snprintf(at, sizeof at, "2026-11-%02dT%02d:%02d:00+01:00", 20 + minute / 1440,
             minute / 60 % 24, minute % 60);
    return event_json(id_out, emp, mix_items[rand_r(seed) % 4], mix_states[rand_r(seed) % 6], at,
                      NULL);
}

static void *mix_run(void *arg)
{
    struct mix_client *c = arg;
    for (int i = 0; i < MIX_POSTS; i++) {
        /* one post in five is a batch of 5 */
        bool batch = rand_r(&c->seed) % 5 == 0;
        int n = batch ? 5 : 1;
        char ids[5][37];
        struct abuf body = {0};
        if (batch)
            abuf_puts(&body, "[");
        for (int k = 0; k < n; k++) {
            char *ev = mix_event(&c->seed, i, ids[k]);
            abuf_puts(&body, k ? ", " : "");
            abuf_puts(&body, ev);
            free(ev);
        }
        if (batch)
            abuf_puts(&body, "]");
        struct api_resp *r = api_http(c->d, "POST", "/v1/events", c->token, NULL, body.data,
                                      body.len);
        if (batch && r->status == 200) {
            c->batches++;
            json_t *res = json_object_get(r->json, "results");
            for (int k = 0; k < n; k++) {
                const char *what =
                    json_string_value(json_object_get(json_array_get(res, (size_t)k), "result"));
                if (what && strcmp(what, "created") == 0) {
                    c->created++;
                    json_array_append_new(c->created_ids, json_string(ids[k]));
                } else {
                    c->rejected++;
                }
            }
        } else if (!batch && r->status == 201) {
            c->created++;
            json_array_append_new(c->created_ids, json_string(ids[0]));
        } else if (!batch && (r->status == 409 || r->status == 400)) {
            c->rejected++;
        } else {
            c->other++;
            snprintf(c->other_body, sizeof c->other_body, "%d %.200s", r->status, r->body);
        }
        resp_free(r);
        free(body.data);
    }
    return NULL;
}

Test(concurrency, a_random_mix_keeps_counters_states_and_history_consistent, .timeout = 120)
{
    struct th_db db;
    th_db_create(&db);
    char *admin = th_token(&db, "test-admin", "admin", NULL);
    struct th_daemon d;
    th_daemon_start(&d, &db, NULL);

    unsigned base = (unsigned)time(NULL);
    cr_log_info("random mix: seeds %u..%u", base, base + MIX_CLIENTS - 1);
    struct mix_client c[MIX_CLIENTS];
    pthread_t th[MIX_CLIENTS];
    for (int i = 0; i < MIX_CLIENTS; i++) {
        c[i] = (struct mix_client){.d = &d, .token = admin, .seed = base + (unsigned)i,
                                   .created_ids = json_array()};
        cr_assert_eq(pthread_create(&th[i], NULL, mix_run, &c[i]), 0);
    }
    json_t *all = json_array();
    int created = 0, rejected = 0;
    for (int i = 0; i < MIX_CLIENTS; i++) {
        pthread_join(th[i], NULL);
        created += c[i].created;
        rejected += c[i].rejected;
        cr_expect_eq(c[i].other, 0, "client %d got %d answers that are neither 201/200 nor "
                                    "400/409; the last: %s",
                     i, c[i].other, c[i].other_body);
        json_array_extend(all, c[i].created_ids);
        json_decref(c[i].created_ids);
    }
    cr_log_info("random mix: %d created, %d rejected", created, rejected);
    cr_expect_gt(created, 50, "the mix must store a fair number of events (got %d)", created);
    cr_expect_gt(rejected, 20, "the mix must also meet illegal transitions (got %d)", rejected);

    /* exactly the acknowledged events are stored */
    char *ids = json_dumps(all, JSON_COMPACT);
    const char *params[] = {ids};
    PGresult *q = th_sql(&db,
                         "SELECT (SELECT count(*) FROM event) || ' ' || (SELECT count(*) FROM "
                         "event WHERE event_id::text IN (SELECT jsonb_array_elements_text($1)))",
                         1, params);
    char want[64];
    snprintf(want, sizeof want, "%d %d", created, created);
    cr_expect_str_eq(PQgetvalue(q, 0, 0), want,
                     "events in the table, and the acknowledged ones among them: expected %s, "
                     "got %s",
                     want, PQgetvalue(q, 0, 0));
    PQclear(q);
    free(ids);
    json_decref(all);

    /* the counters against a recount of the states */
    expect_counters_match_item_state(&db, "after the random mix");
    /* the net completions per day against a recount from the history */
    long long dd = th_sql_int(
        &db, "WITH re AS ("
             " SELECT (e.occurred_at AT TIME ZONE 'Europe/Berlin')::date AS day, m.dienststelle,"
             "        e.item, sum(CASE WHEN e.state = 'active' AND e.previous_state IS DISTINCT"
             "                         FROM 'active' THEN 1"
             "                         WHEN e.previous_state = 'active' AND e.state <> 'active'"
             "                         THEN -1 ELSE 0 END) AS n"
             "   FROM event e JOIN employee m ON m.id = e.employee_id WHERE e.applied"
             "  GROUP BY 1, 2, 3 HAVING sum(CASE WHEN e.state = 'active' AND e.previous_state"
             "        IS DISTINCT FROM 'active' THEN 1 WHEN e.previous_state = 'active' AND"
             "        e.state <> 'active' THEN -1 ELSE 0 END) <> 0),"
             " dd AS (SELECT day, dienststelle, item, sum(n) AS n FROM daily_done"
             "  GROUP BY 1, 2, 3 HAVING sum(n) <> 0)"
             "SELECT count(*) FROM ((SELECT * FROM re EXCEPT SELECT * FROM dd)"
             " UNION ALL (SELECT * FROM dd EXCEPT SELECT * FROM re)) x");
    cr_expect_eq(dd, 0, "daily_done differs from a recount of the history in %lld rows", dd);
    /* the state of every item is the newest applied event's, with its time */
    long long bad_state = th_sql_int(
        &db, "SELECT count(*) FROM item_state s LEFT JOIN LATERAL (SELECT e.state, e.occurred_at "
             "FROM event e WHERE e.employee_id = s.employee_id AND e.item = s.item AND e.applied "
             "ORDER BY e.occurred_at DESC, e.id DESC LIMIT 1) l ON true "
             "WHERE l.state IS DISTINCT FROM s.state OR l.occurred_at IS DISTINCT FROM s.since");
    cr_expect_eq(bad_state, 0, "%lld item states are not their newest applied event", bad_state);
    long long orphan = th_sql_int(
        &db, "SELECT count(*) FROM (SELECT DISTINCT employee_id, item FROM event WHERE applied) a "
             "WHERE NOT EXISTS (SELECT 1 FROM item_state s WHERE s.employee_id = a.employee_id "
             "AND s.item = a.item)");
    cr_expect_eq(orphan, 0, "%lld items have applied events but no state", orphan);
    /* the history is a chain: each applied event's previous_state is the state before it */
    long long chain = th_sql_int(
        &db, "SELECT count(*) FROM (SELECT previous_state, lag(state) OVER (PARTITION BY "
             "employee_id, item ORDER BY id) AS before FROM event WHERE applied) x WHERE "
             "previous_state IS DISTINCT FROM before");
    cr_expect_eq(chain, 0, "%lld applied events do not follow the one before them", chain);
    /* and every applied event was a legal transition */
    long long illegal = th_sql_int(
        &db, "SELECT count(*) FROM event WHERE applied AND NOT "
             "rollout_transition_allowed(previous_state, state)");
    cr_expect_eq(illegal, 0, "%lld applied events are illegal transitions", illegal);
    /* late events did not move anything: their previous_state is the state at their arrival */
    long long late = th_sql_int(&db, "SELECT count(*) FROM event WHERE NOT applied");
    cr_log_info("random mix: %lld late events kept in the history only", late);

    cr_expect_eq(th_daemon_stop(&d, SIGTERM), 0);
    free(admin);
    th_db_drop(&db);
}

/* ---- events that arrive together commit together ----------------------------------------- */

#define TOGETHER 8

/* Requests read in the same pass of the daemon's loop go into one group commit. The group
 * starts at the end of the pass: started with the first event, a free connection would take
 * that event alone and the other seven would follow in a second group. The daemon is stopped
 * (SIGSTOP) while the eight clients send their whole requests, so that it finds all eight
 * readable at once when it continues. */
Test(concurrency, events_that_arrive_together_share_one_group_commit, .timeout = 60)
{
    struct th_db db;
    th_db_create(&db);
    char *admin = th_token(&db, "test-admin", "admin", NULL);
    struct th_daemon d;
    th_daemon_start(&d, &db, NULL);

    /* the token is looked up in the database once, then known: a first event learns it */
    char id[37];
    th_uuid(id);
    char *first = event_json(id, "P0000001", "wlan_autologin", "planned", "2026-10-01T08:00:00Z",
                             NULL);
    struct th_response *r = th_http(&d, "POST", "/v1/events", admin, NULL, first, strlen(first));
    cr_assert_eq(r->status, 201, "%d %s", r->status, r->body);
    th_response_free(r);
    free(first);

    int fd[TOGETHER];
    char *req[TOGETHER];
    size_t len[TOGETHER];
    for (int i = 0; i < TOGETHER; i++) {
        char emp[16];
        th_uuid(id);
        snprintf(emp, sizeof emp, "P%07d", i + 2);
        char *body = event_json(id, emp, "wlan_autologin", "planned", "2026-10-01T08:00:00Z",
                                NULL);
        req[i] = raw_post(d.port, admin, body, &len[i]);
        free(body);
        fd[i] = th_connect(d.port);
        cr_assert(fd[i] >= 0, "connect");
    }
    api_sleep_ms(300); /* the daemon has accepted the eight connections */
    double groups = th_metric(&d, "rolloutd_group_commits_total");
    double events = th_metric(&d, "rolloutd_group_commit_events_total");

    cr_assert_eq(kill(d.pid, SIGSTOP), 0);
    bool sent = true;
    for (int i = 0; i < TOGETHER; i++)
        sent = api_write_all(fd[i], req[i], len[i]) && sent;
    cr_assert_eq(kill(d.pid, SIGCONT), 0);
    cr_assert(sent, "a request could not be sent");
    for (int i = 0; i < TOGETHER; i++) {
        struct api_resp *a = api_read_answer(fd[i], false, 30000);
        cr_expect(a && a->status == 201, "client %d: %d %s", i, a ? a->status : -1,
                  a ? a->body : "(no answer)");
        resp_free(a);
        close(fd[i]);
        free(req[i]);
    }
    cr_expect_eq(th_metric(&d, "rolloutd_group_commit_events_total") - events, TOGETHER);
    cr_expect_eq(th_metric(&d, "rolloutd_group_commits_total") - groups, 1,
                 "%d events that arrived together went into %g group commits", TOGETHER,
                 th_metric(&d, "rolloutd_group_commits_total") - groups);

    cr_expect_eq(th_daemon_stop(&d, SIGTERM), 0);
    free(admin);
    th_db_drop(&db);
}

#include "ingest.h"

#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "log.h"
#include "metrics.h"

TAILQ_HEAD(ingest_queue, ingest_item);

struct ingest {
    struct event_base *base;
    struct db_pool *pool;
    struct metrics *metrics;
    struct ingest_queue queue;
    int queued;
    int inflight;
    int max_queue;
    int group_max;
    int parallel_min;    /* events a group needs to start beside a running one */
    int running;         /* group commits on a connection, not done yet */
    bool group_waiting;  /* a group job sits in the pool's queue and will take the events */
    struct event *kick;  /* submits the next group outside of the pool's callbacks */
    void (*commit_hook)(void *arg, int created);
    void *commit_arg;
};

/* One group commit: the events it took and their outcomes, held until the commit is known. */
struct group {
    struct db_job job;
    struct ingest *ing;
    struct ingest_item **items;
    int n;
    bool sent; /* taken by a connection (group_send ran) */
    PGresult *res;   /* the one result of rollout_apply_events */
};

static void group_submit(struct ingest *ing);

static void deliver(struct ingest_item *item, const struct ingest_outcome *o)
{
    item->state = INGEST_ITEM_DONE;
    item->done(item, o);
}

static void fail_item(struct ingest_item *item, int status, const char *code, const char *msg)
{
    struct ingest_outcome o = {.result = "rejected", .status = status, .code = code,
                               .message = msg, .applied = -1};
    deliver(item, &o);
}

/* Appends one event of the group to the function's argument (a JSON array). The event is its
 * canonical text, which validation printed for the fingerprint, with what the function needs
 * besides put in front: its index, fingerprint, token and scope. Printing every event again
 * with jansson was a fifth of rolloutd's time for batches. The canonical text holds occurred_at
 * as microseconds; the text as the client wrote it follows at the end, and jsonb keeps the last
 * value of a key given twice, so the function reads what the client wrote (with its offset), as
 * before. It is a validated RFC 3339 date-time (event_parse_timestamp): digits, "-:.+", T or t,
 * Z or z, nothing to escape. */
static void group_add_event(struct evbuffer *out, int k, const struct ingest_item *item,
                            const char *scope)
{
    const char *canon = item->canonical;
    size_t len = strlen(canon);
    evbuffer_add_printf(out, "%s{\"i\":%d,\"hash\":\"%s\"", k ? "," : "", k,
                        json_string_value(json_object_get(item->event, "hash")));
    if (item->token_id)
        evbuffer_add_printf(out, ",\"token\":%d", item->token_id);
    if (scope)
        evbuffer_add_printf(out, ",\"scope\":%s", scope);
    /* the canonical object's members: without its braces */
    evbuffer_add(out, ",", 1);
    evbuffer_add(out, canon + 1, len - 2);
    evbuffer_add_printf(out, ",\"occurred_at\":\"%s\"}",
                        json_string_value(json_object_get(item->event, "occurred_at")));
}

static bool group_send(struct db_job *job, PGconn *conn)
{
    struct group *g = job->arg;
    struct ingest *ing = g->ing;
    ing->group_waiting = false;
    g->sent = true;
    ing->running++;
    int take = ing->queued < ing->group_max ? ing->queued : ing->group_max;
    if (take > 0 && TAILQ_FIRST(&ing->queue)->single)
        take = 1; /* retried after its group failed: alone, to find the one that fails */
    g->items = calloc(take > 0 ? (size_t)take : 1, sizeof *g->items);
    struct evbuffer *payload = evbuffer_new();
    evbuffer_add(payload, "[", 1);
    /* the scope is the token's: the same for all events of a request, printed once for them */
    const json_t *scope_of = NULL;
    char *scope = NULL;
    bool printed = true;
    for (int k = 0; k < take; k++) {
        struct ingest_item *item = TAILQ_FIRST(&ing->queue);
        TAILQ_REMOVE(&ing->queue, item, link);
        ing->queued--;
        ing->inflight++;
        item->state = INGEST_ITEM_INFLIGHT;
        g->items[g->n++] = item;
        if (item->scope != scope_of) {
            free(scope);
            scope_of = item->scope;
            scope = item->scope ? json_dumps(item->scope, JSON_COMPACT) : NULL;
        }
        /* never an event of a scoped token without its scope (out of memory): the group
         * fails and its clients are told to retry */
        printed = printed && (item->scope == NULL || scope != NULL);
        group_add_event(payload, k, item, scope);
    }
    free(scope);
    evbuffer_add(payload, "]", 2); /* with the terminating NUL */
    if (ing->queued > 0)
        event_active(ing->kick, EV_TIMEOUT, 0);
    metrics_observe_group(ing->metrics, g->n);

    const char *params[1] = {(const char *)evbuffer_pullup(payload, -1)};
    int ok = printed && params[0] != NULL &&
             PQsendQueryPrepared(conn, "apply_events", 1, params, NULL, NULL, 0) == 1;
    evbuffer_free(payload);
    return ok;
}

static void group_result(struct db_job *job, const PGresult *res)
{
    struct group *g = job->arg;
    if (PQresultStatus(res) == PGRES_TUPLES_OK && g->res == NULL)
        g->res = (PGresult *)PQcopyResult(res, PG_COPYRES_ATTRS | PG_COPYRES_TUPLES);
}

static const char *col(const PGresult *res, int row, int c)
{
    return PQgetisnull(res, row, c) ? NULL : PQgetvalue(res, row, c);
}

static void group_free(struct group *g)
{
    if (g->res)
        PQclear(g->res);
    free(g->items);
    free(g);
}

static void fail_queued(struct ingest *ing)
{
    struct ingest_item *item;
    while ((item = TAILQ_FIRST(&ing->queue)) != NULL) {
        TAILQ_REMOVE(&ing->queue, item, link);
        ing->queued--;
        metrics_count_event(ing->metrics, "unavailable");
        fail_item(item, 503, "database_unavailable",
                  "the database is unreachable; nothing was stored: retry later with the same "
                  "event_id");
    }
}

static void group_done(struct db_job *job, enum db_job_outcome outcome, const char *error)
{
    struct group *g = job->arg;
    struct ingest *ing = g->ing;
    if (!g->sent) {
        /* failed while waiting for a connection (the last one broke): the events it would
         * have taken are still queued and no connection is left to take them */
        ing->group_waiting = false;
        group_free(g);
        fail_queued(ing);
        return;
    }
    ing->inflight -= g->n;
    ing->running--;
    /* The events that waited for this group go now, before its answers are written: the server
     * works on them meanwhile. (A failed group's events are queued again first, below.) */
    if (outcome != DB_JOB_FAILED)
        group_submit(ing);

    if (outcome == DB_JOB_OK && g->res != NULL && PQntuples(g->res) == g->n) {
        /* committed: now, and only now, the answers may go out */
        int created = 0;
        for (int r = 0; r < g->n; r++) {
            int i = atoi(PQgetvalue(g->res, r, 0));
            if (i < 0 || i >= g->n)
                continue;
            const char *applied = col(g->res, r, 10);
            struct ingest_outcome o = {
                .result = col(g->res, r, 1),
                .code = col(g->res, r, 2),
                .message = col(g->res, r, 3),
                .field = col(g->res, r, 4),
                .status = atoi(PQgetvalue(g->res, r, 5)),
                .employee = col(g->res, r, 6),
                .item = col(g->res, r, 7),
                .state = col(g->res, r, 8),
                .previous_state = col(g->res, r, 9),
                .applied = applied ? applied[0] == 't' : -1,
            };
            created += strcmp(o.result, "created") == 0;
            metrics_count_event(ing->metrics, o.result);
            deliver(g->items[i], &o);
        }
        if (ing->commit_hook && created > 0)
            ing->commit_hook(ing->commit_arg, created);
    } else if (outcome == DB_JOB_LOST || (outcome == DB_JOB_OK && g->n > 0)) {
        /* unknown whether it committed: 503, the client retries, idempotency does the rest */
        log_warn("group of %d events: connection lost (%s)", g->n, error ? error : "no result");
        for (int k = 0; k < g->n; k++) {
            metrics_count_event(ing->metrics, "unavailable");
            fail_item(g->items[k], 503, "database_unavailable",
                      "the database connection was lost; retry with the same event_id");
        }
    } else if (outcome == DB_JOB_FAILED) {
        if (g->n == 1 && g->items[0]->single) {
            log_error("event failed on its own: %s", error ? error : "");
            metrics_count_event(ing->metrics, "error");
            fail_item(g->items[0], 500, "internal",
                      "the database refused this event; the operators have been told");
        } else {
            /* retry each on its own, at the front of the queue, in the original order */
            log_warn("group of %d events failed (%s); retrying them one by one", g->n,
                     error ? error : "");
            for (int k = g->n - 1; k >= 0; k--) {
                struct ingest_item *item = g->items[k];
                item->single = true;
                item->state = INGEST_ITEM_QUEUED;
                TAILQ_INSERT_HEAD(&ing->queue, item, link);
                ing->queued++;
            }
        }
        group_submit(ing);
    }
    group_free(g);
}

static void group_submit(struct ingest *ing)
{
    if (ing->group_waiting || ing->queued == 0)
        return;
    /* Each group commit costs the server a fixed part (the statement's start, the commit) on
     * top of its events. Small groups side by side pay it twice and take the CPU from each
     * other; waiting for the running one makes one larger group instead. */
    if (ing->running > 0 && ing->queued < ing->parallel_min)
        return;
    struct group *g = calloc(1, sizeof *g);
    g->ing = ing;
    g->job.name = "apply_events";
    g->job.send = group_send;
    g->job.on_result = group_result;
    g->job.on_done = group_done;
    g->job.arg = g;
    /* set before submitting: a free connection sends the group (and clears this) at once */
    ing->group_waiting = true;
    if (!db_pool_submit(ing->pool, &g->job)) {
        ing->group_waiting = false;
        free(g);
        fail_queued(ing);
        return;
    }
}

static void ingest_kick(evutil_socket_t fd, short what, void *arg)
{
    group_submit(arg);
}

struct ingest *ingest_new(struct event_base *base, struct db_pool *pool, int max_queue,
                          int group_max, int parallel_min, struct metrics *metrics)
{
    struct ingest *ing = calloc(1, sizeof *ing);
    ing->base = base;
    ing->pool = pool;
    ing->metrics = metrics;
    ing->max_queue = max_queue;
    ing->group_max = group_max;
    ing->parallel_min = parallel_min;
    TAILQ_INIT(&ing->queue);
    ing->kick = event_new(base, -1, 0, ingest_kick, ing);
    return ing;
}

bool ingest_submit(struct ingest *ing, struct ingest_item **items, int n, bool *db_down)
{
    *db_down = false;
    if (!db_pool_available(ing->pool)) {
        *db_down = true;
        return false;
    }
    if (ing->queued + n > ing->max_queue)
        return false;
    for (int k = 0; k < n; k++) {
        items[k]->state = INGEST_ITEM_QUEUED;
        items[k]->single = false;
        TAILQ_INSERT_TAIL(&ing->queue, items[k], link);
        ing->queued++;
    }
    /* The group starts at the end of this pass of the loop, not here: the requests read in the
     * same pass then go into one group commit. Started here, a free connection would take this
     * first event alone, and the ones parsed after it in the same pass would wait for the next
     * free connection. */
    if (!ing->group_waiting)
        event_active(ing->kick, EV_TIMEOUT, 0);
    return true;
}

void ingest_withdraw(struct ingest *ing, struct ingest_item *item)
{
    if (item->state != INGEST_ITEM_QUEUED)
        return;
    TAILQ_REMOVE(&ing->queue, item, link);
    ing->queued--;
    item->state = INGEST_ITEM_DONE;
}

int ingest_queue_depth(const struct ingest *ing)
{
    return ing->queued;
}

int ingest_inflight(const struct ingest *ing)
{
    return ing->inflight;
}

void ingest_set_commit_hook(struct ingest *ing, void (*hook)(void *arg, int created), void *arg)
{
    ing->commit_hook = hook;
    ing->commit_arg = arg;
}

void ingest_free(struct ingest *ing)
{
    if (ing == NULL)
        return;
    event_free(ing->kick);
    free(ing);
}

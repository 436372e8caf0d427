#include "api.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <time.h>

#include "event.h"
#include "log.h"
#include "version.h"

#define API_BODY_SLACK (16 * 1024 * 1024)
#define API_DRAIN_ACCEPT_MS 100

extern const unsigned char dashboard_page[];
extern const size_t dashboard_page_len;

const struct db_statement api_statements[] = {
    {"apply_events", "SELECT * FROM rollout_apply_events($1::jsonb)", 1},
    {"tokens", AUTH_TOKENS_SQL, 0},
    {"employee_view", "SELECT rollout_employee_view($1, $2::integer, $3, $4::text[])", 4},
    {"employee_events",
     "SELECT rollout_employee_events($1, $2::integer, $3, $4::text[], $5::integer, "
     "CASE WHEN $6::bigint IS NULL THEN NULL ELSE timestamptz 'epoch' + $6::bigint * interval "
     "'1 microsecond' END, $7::bigint)",
     7},
    {NULL, NULL, 0},
};

/* Where one request stands. Changed only through req_set_state(). */
enum req_state {
    REQ_HANDLING, /* inside the evhttp callback */
    REQ_WAITING,  /* deferred: waiting for the database, with a deadline timer */
    REQ_ANSWERED  /* the reply went out (or the client left); freed once nothing is pending */
};

struct api_request {
    struct api *api;
    struct evhttp_request *req; /* NULL once answered or the client left */
    struct evhttp_connection *conn;
    enum req_state state;
    enum route route;
    const char *method;
    char id[40];
    struct timespec start;
    struct auth_identity who;
    bool authenticated;
    struct event *deadline;
    TAILQ_ENTRY(api_request) link;

    /* POST /v1/events */
    json_t *body;
    bool batch;
    int n;
    json_t **events;   /* validated, per index (NULL where invalid) */
    char **results;    /* per index: the JSON text of its answer (a single event: the body) */
    struct ingest_item *items;
    int pending;       /* items whose outcome has not come back */
    int status;        /* single event: 201, 200 (replayed), or the error's status */

    /* reads through the pool */
    struct db_job job;
    bool job_queued;
    char *params[7];
    int nparams;
    json_t *answer;
};

TAILQ_HEAD(request_list, api_request);

struct api {
    struct api_deps d;
    struct evhttp *http;
    struct evconnlistener *listener;
    struct evhttp_bound_socket *bound;
    struct event *accept_retry;
    struct event *close_listener; /* draining: closes the listening socket a moment later */
    SSL_CTX *ssl;
    int port;
    unsigned long long next_id;
    struct request_list waiting;
    int nwaiting;
    bool draining; /* shutting down: answers close their connections */
    struct status_cache *status; /* the last /status JSON, reused while nothing in it changed */
};

/* Everything /status shows; the same key means the same bytes. */
struct status_key {
    time_t second; /* uptime_seconds and generated_at */
    unsigned version;
    int ready, queue;
    bool schema_ok, draining;
};

/* Sent by reference, not copied: each answer in flight holds one reference, and the api holds
 * one while this is the current cache; the last one frees it. */
struct status_cache {
    struct status_key key;
    int http_status;
    int refs;
    size_t len;
    char body[];
};

/* ---- answering -------------------------------------------------------------------------- */

static double elapsed(const struct timespec *start)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - start->tv_sec) + (double)(now.tv_nsec - start->tv_nsec) / 1e9;
}

static const char *const route_paths[ROUTE_COUNT] = {
    [ROUTE_EVENTS] = "/v1/events",
    [ROUTE_EMPLOYEE] = "/v1/employees/{id}",
    [ROUTE_EMPLOYEE_EVENTS] = "/v1/employees/{id}/events",
    [ROUTE_PROGRESS] = "/v1/progress",
    [ROUTE_PROGRESS_DAILY] = "/v1/progress/daily",
    [ROUTE_RESSORTS] = "/v1/ressorts",
    [ROUTE_STATUS] = "/status",
    [ROUTE_METRICS] = "/metrics",
    [ROUTE_HEALTHZ] = "/healthz",
    [ROUTE_READYZ] = "/readyz",
    [ROUTE_DASHBOARD] = "/",
    [ROUTE_OTHER] = "(other)",
};

static void req_free(struct api_request *r)
{
    if (r->deadline)
        event_free(r->deadline);
    auth_identity_clear(&r->who);
    if (r->events) {
        for (int i = 0; i < r->n; i++) {
            json_decref(r->events[i]);
            free(r->results[i]);
            free(r->items[i].canonical);
        }
    }
    free(r->events);
    free(r->results);
    free(r->items);
    json_decref(r->body);
    json_decref(r->answer);
    for (int i = 0; i < r->nparams; i++)
        free(r->params[i]);
    free(r);
}

static bool req_busy(const struct api_request *r)
{
    return r->pending > 0 || r->job_queued;
}

static void req_set_state(struct api_request *r, enum req_state state)
{
    struct api *api = r->api;
    if (r->state == REQ_WAITING && state != REQ_WAITING) {
        TAILQ_REMOVE(&api->waiting, r, link);
        api->nwaiting--;
        evtimer_del(r->deadline);
        if (r->req)
            evhttp_connection_set_closecb(r->conn, NULL, NULL);
    }
    if (state == REQ_WAITING && r->state != REQ_WAITING) {
        TAILQ_INSERT_TAIL(&api->waiting, r, link);
        api->nwaiting++;
    }
    r->state = state;
}

/* Frees the request once it is answered and no database work still refers to it. */
static void req_release(struct api_request *r)
{
    if (r->state == REQ_ANSWERED && !req_busy(r))
        req_free(r);
}

/* The one place that answers a request: headers, log line, metrics, and then the request is
 * gone (evhttp frees it), so every pointer to it is cleared here. */
static void reply(struct api_request *r, int status, const char *content_type,
                  struct evbuffer *body)
{
    if (r->req == NULL) {
        req_set_state(r, REQ_ANSWERED);
        return;
    }
    struct evkeyvalq *h = evhttp_request_get_output_headers(r->req);
    evhttp_add_header(h, "Content-Type", content_type);
    evhttp_add_header(h, "X-Request-Id", r->id);
    if (r->route != ROUTE_DASHBOARD)
        evhttp_add_header(h, "Cache-Control", "no-store");
    evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
    double secs = elapsed(&r->start);
    metrics_observe_request(r->api->d.metrics, r->route, status, secs);
    log_info("%s %s %d %.1fms rid=%s token=%s", r->method, route_paths[r->route], status,
             secs * 1000.0, r->id, r->authenticated ? r->who.name : "-");
    struct evhttp_request *req = r->req;
    req_set_state(r, REQ_ANSWERED);
    r->req = NULL;
    /* HEAD: the headers of the GET, no content (libevent 2.1 would send the body) */
    evhttp_send_reply(req, status, NULL,
                      evhttp_request_get_command(req) == EVHTTP_REQ_HEAD ? NULL : body);
}

/* A JSON answer already printed into buf: the closing newline, sent, buf freed. */
static void reply_text(struct api_request *r, int status, struct evbuffer *buf)
{
    evbuffer_add(buf, "\n", 1);
    reply(r, status, "application/json", buf);
    evbuffer_free(buf);
}

static void reply_json(struct api_request *r, int status, json_t *body)
{
    struct evbuffer *buf = evbuffer_new();
    char *text = json_dumps(body, JSON_COMPACT | JSON_REAL_PRECISION(10));
    evbuffer_add(buf, text, strlen(text));
    free(text);
    json_decref(body);
    reply_text(r, status, buf);
}

static void reply_error(struct api_request *r, const struct api_error *err)
{
    if (r->req) {
        struct evkeyvalq *h = evhttp_request_get_output_headers(r->req);
        if (err->status == 503)
            evhttp_add_header(h, "Retry-After", "2");
        if (err->status == 401)
            evhttp_add_header(h, "WWW-Authenticate", "Bearer realm=\"rolloutd\"");
        if (err->status == 405)
            evhttp_add_header(h, "Allow", r->route == ROUTE_EVENTS ? "POST" : "GET, HEAD");
    }
    reply_json(r, err->status, api_error_json(err));
}

static void fail(struct api_request *r, int status, const char *code, const char *field,
                 const char *msg)
{
    struct api_error err;
    api_error_set(&err, status, code, field, "%s", msg);
    reply_error(r, &err);
}

/* ---- waiting for the database ----------------------------------------------------------- */

static void withdraw_items(struct api_request *r)
{
    for (int i = 0; r->items && i < r->n; i++) {
        struct ingest_item *it = &r->items[i];
        if (it->owner == r && it->state == INGEST_ITEM_QUEUED) {
            ingest_withdraw(r->api->d.ingest, it);
            r->pending--;
        }
    }
    if (r->job_queued && db_pool_cancel(r->api->d.pool, &r->job))
        r->job_queued = false;
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    struct api_request *r = arg;
    withdraw_items(r);
    log_warn("request %s waited longer than http.request_deadline_ms", r->id);
    fail(r, 503, "timeout", NULL,
         "the database did not answer in time; retry later (events: with the same event_id)");
    req_release(r);
}

/* The client closed its connection while its request waited: evhttp frees the request right
 * after this returns, so forget it and drop the answer when it comes. */
static void on_client_gone(struct evhttp_connection *conn, void *arg)
{
    struct api_request *r = arg;
    log_info("%s %s client left rid=%s", r->method, route_paths[r->route], r->id);
    r->req = NULL;
    withdraw_items(r);
    req_set_state(r, REQ_ANSWERED);
    req_release(r);
}

static void wait_for_db(struct api_request *r)
{
    int ms = r->api->d.cfg->http_request_deadline_ms;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    r->deadline = evtimer_new(r->api->d.base, on_deadline, r);
    evtimer_add(r->deadline, &tv);
    evhttp_connection_set_closecb(r->conn, on_client_gone, r);
    req_set_state(r, REQ_WAITING);
}

/* ---- POST /v1/events -------------------------------------------------------------------- */

/* The JSON text of a value, then freed (the answers of the events are kept as text). */
static char *dump_text(json_t *v)
{
    char *text = json_dumps(v, JSON_COMPACT);
    json_decref(v);
    return text;
}

/* Whether a string goes into JSON as it is, between quotes: no quote, backslash or control
 * character, which jansson would escape (it writes other UTF-8 as it is). */
static bool json_plain(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == '"' || *p == '\\')
            return false;
    return true;
}

static json_t *created_body(const char *event_id, const struct ingest_outcome *o,
                            const char *result)
{
    json_t *b = json_object();
    json_object_set_new(b, "event_id", json_string(event_id));
    json_object_set_new(b, "result", json_string(result));
    json_object_set_new(b, "employee", json_string(o->employee ? o->employee : ""));
    json_object_set_new(b, "item", json_string(o->item ? o->item : ""));
    json_object_set_new(b, "state", json_string(o->state ? o->state : ""));
    json_object_set_new(b, "previous_state",
                        o->previous_state ? json_string(o->previous_state) : json_null());
    json_object_set_new(b, "applied", json_boolean(o->applied == 1));
    return b;
}

/* The answer for an event stored now or before, as JSON text. Its values are a validated
 * event_id and a personnel number, item and states as the schema's CHECKs and enums allow them,
 * so they are printed as they are, for every event of a batch; should one ever need escaping,
 * jansson prints the answer (the same bytes otherwise: members in this order, compact). */
static char *created_text(const char *event_id, const struct ingest_outcome *o, const char *result)
{
    const char *employee = o->employee ? o->employee : "", *item = o->item ? o->item : "";
    const char *state = o->state ? o->state : "";
    char buf[512];
    int n = -1;
    if (json_plain(event_id) && json_plain(employee) && json_plain(item) && json_plain(state) &&
        (o->previous_state == NULL || json_plain(o->previous_state)))
        n = snprintf(buf, sizeof buf,
                     "{\"event_id\":\"%s\",\"result\":\"%s\",\"employee\":\"%s\",\"item\":\"%s\","
                     "\"state\":\"%s\",\"previous_state\":%s%s%s,\"applied\":%s}",
                     event_id, result, employee, item, state, o->previous_state ? "\"" : "",
                     o->previous_state ? o->previous_state : "null",
                     o->previous_state ? "\"" : "", o->applied == 1 ? "true" : "false");
    if (n < 0 || (size_t)n >= sizeof buf)
        return dump_text(created_body(event_id, o, result));
    char *text = malloc((size_t)n + 1);
    if (text)
        memcpy(text, buf, (size_t)n + 1);
    return text;
}

static json_t *rejected_error(const struct ingest_outcome *o)
{
    json_t *e = json_pack("{s:s, s:s}", "code", o->code ? o->code : "internal", "message",
                          o->message ? o->message : "");
    json_object_set_new(e, "field", o->field ? json_string(o->field) : json_null());
    if (o->code && strcmp(o->code, "illegal_transition") == 0)
        json_object_set_new(e, "current_state", o->previous_state
                                                    ? json_string(o->previous_state)
                                                    : json_null());
    return e;
}

static void events_answer(struct api_request *r)
{
    for (int i = 0; i < r->n; i++) {
        if (r->results[i] == NULL) { /* out of memory while printing it */
            fail(r, 500, "internal", NULL,
                 "the answer could not be written; send the same events again (with the same "
                 "event_id): those stored are answered as duplicates");
            return;
        }
    }
    struct evbuffer *buf = evbuffer_new();
    if (r->batch) {
        evbuffer_add(buf, "{\"results\":[", 12);
        for (int i = 0; i < r->n; i++) {
            if (i > 0)
                evbuffer_add(buf, ",", 1);
            evbuffer_add(buf, r->results[i], strlen(r->results[i]));
        }
        evbuffer_add(buf, "]}", 2);
        reply_text(r, 200, buf);
        return;
    }
    if (r->req && r->status == 503)
        evhttp_add_header(evhttp_request_get_output_headers(r->req), "Retry-After", "2");
    if (r->req && r->status == 200)
        evhttp_add_header(evhttp_request_get_output_headers(r->req), "Idempotent-Replayed",
                          "true");
    evbuffer_add(buf, r->results[0], strlen(r->results[0]));
    reply_text(r, r->status, buf);
}

static void on_event_outcome(struct ingest_item *item, const struct ingest_outcome *o)
{
    struct api_request *r = item->owner;
    int i = (int)(item - r->items);
    const char *event_id = json_string_value(json_object_get(r->events[i], "event_id"));
    char *text;
    if (strcmp(o->result, "rejected") == 0) {
        r->status = o->status;
        text = dump_text(r->batch ? json_pack("{s:s, s:s, s:o}", "event_id", event_id, "result",
                                              "rejected", "error", rejected_error(o))
                                  : json_pack("{s:o}", "error", rejected_error(o)));
    } else {
        bool dup = strcmp(o->result, "duplicate") == 0;
        /* a replayed single event gets the first answer's body, word for word */
        text = created_text(event_id, o, dup && r->batch ? "duplicate" : "created");
        r->status = dup ? 200 : 201;
    }
    r->results[i] = text;
    r->pending--;
    if (r->pending == 0 && r->state == REQ_WAITING)
        events_answer(r);
    req_release(r);
}

static bool json_content_type(struct evhttp_request *req)
{
    const char *ct = evhttp_find_header(evhttp_request_get_input_headers(req), "Content-Type");
    if (ct == NULL)
        return false;
    size_t n = strlen("application/json");
    return strncasecmp(ct, "application/json", n) == 0 && (ct[n] == '\0' || ct[n] == ';' ||
                                                           ct[n] == ' ');
}

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void handle_post_events(struct api_request *r, struct evhttp_request *req)
{
    struct api *api = r->api;
    if (r->who.role == ROLE_READER) {
        fail(r, 403, "forbidden_role", NULL, "a reader token may not post events");
        return;
    }
    if (!json_content_type(req)) {
        fail(r, 415, "unsupported_media_type", NULL,
             "send the events as Content-Type: application/json");
        return;
    }
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    if (len > (size_t)api->d.cfg->http_max_body_bytes) {
        struct api_error err;
        api_error_set(&err, 413, "body_too_large", NULL,
                      "the body has %zu bytes; at most %d are accepted: split the batch", len,
                      api->d.cfg->http_max_body_bytes);
        reply_error(r, &err);
        return;
    }
    struct api_error err;
    r->body = event_parse_body((const char *)evbuffer_pullup(in, -1), len, &err);
    if (r->body == NULL) {
        metrics_count_event(api->d.metrics, "invalid");
        reply_error(r, &err);
        return;
    }
    r->batch = json_is_array(r->body);
    r->n = r->batch ? (int)json_array_size(r->body) : 1;
    if (r->batch && r->n == 0) {
        fail(r, 400, "empty_batch", NULL, "the batch is empty; send at least one event");
        return;
    }
    if (r->n > api->d.cfg->batch_max_events) {
        api_error_set(&err, 413, "batch_too_large", NULL,
                      "the batch has %d events; at most %d are accepted in one request", r->n,
                      api->d.cfg->batch_max_events);
        reply_error(r, &err);
        return;
    }
    r->events = calloc((size_t)r->n, sizeof *r->events);
    r->results = calloc((size_t)r->n, sizeof *r->results);
    r->items = calloc((size_t)r->n, sizeof *r->items);
    struct ingest_item **queue = calloc((size_t)r->n, sizeof *queue);
    int nqueue = 0;
    int64_t now = now_us();
    for (int i = 0; i < r->n; i++) {
        json_t *ev = r->batch ? json_array_get(r->body, (size_t)i) : r->body;
        struct ingest_item *it = &r->items[i];
        r->events[i] = event_validate_canonical(ev, now, &it->canonical, &err);
        if (r->events[i] == NULL) {
            metrics_count_event(api->d.metrics, "invalid");
            if (!r->batch) {
                free(queue);
                reply_error(r, &err);
                return;
            }
            json_t *id = json_is_object(ev) ? json_object_get(ev, "event_id") : NULL;
            r->results[i] = dump_text(json_pack("{s:o, s:s, s:o}", "event_id",
                                                json_is_string(id) ? json_incref(id) : json_null(),
                                                "result", "rejected", "error",
                                                api_error_body(&err)));
            continue;
        }
        it->event = r->events[i];
        it->token_id = r->who.token_id;
        it->scope = r->who.scope;
        it->done = on_event_outcome;
        it->owner = r;
        queue[nqueue++] = it;
    }
    if (nqueue == 0) {
        free(queue);
        events_answer(r);
        return;
    }
    bool db_down;
    if (!ingest_submit(api->d.ingest, queue, nqueue, &db_down)) {
        free(queue);
        for (int i = 0; i < nqueue; i++)
            metrics_count_event(api->d.metrics, "unavailable");
        if (db_down)
            fail(r, 503, "database_unavailable", NULL,
                 "the database is unreachable; nothing was stored: retry later");
        else
            fail(r, 503, "queue_full", NULL,
                 "too many events are waiting for the database; nothing was stored: retry "
                 "later");
        return;
    }
    free(queue);
    r->pending = nqueue;
    wait_for_db(r);
}

/* ---- reads through the pool ------------------------------------------------------------- */

static bool read_send(struct db_job *job, PGconn *conn)
{
    struct api_request *r = job->arg;
    return PQsendQueryPrepared(conn, job->name, r->nparams, (const char *const *)r->params, NULL,
                               NULL, 0) == 1;
}

static void read_result(struct db_job *job, const PGresult *res)
{
    struct api_request *r = job->arg;
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
        return;
    json_decref(r->answer);
    r->answer = PQgetisnull(res, 0, 0) ? json_null()
                                       : json_loads(PQgetvalue(res, 0, 0), 0, NULL);
}

static void read_done(struct db_job *job, enum db_job_outcome outcome, const char *error)
{
    struct api_request *r = job->arg;
    r->job_queued = false;
    if (r->state != REQ_WAITING) {
        req_release(r);
        return;
    }
    if (outcome != DB_JOB_OK || r->answer == NULL) {
        if (outcome == DB_JOB_FAILED)
            log_error("request %s: %s", r->id, error ? error : "");
        if (outcome == DB_JOB_FAILED)
            fail(r, 500, "internal", NULL, "the database refused the query");
        else
            fail(r, 503, "database_unavailable", NULL, "the database is unreachable; retry later");
    } else if (json_is_null(r->answer)) {
        fail(r, 404, "unknown_employee", NULL, "no employee with that personnel number");
    } else if (json_object_get(r->answer, "forbidden")) {
        fail(r, 403, "outside_scope", NULL,
             "this employee belongs to a Ressort this token may not read");
    } else {
        json_t *a = r->answer;
        r->answer = NULL;
        reply_json(r, 200, a);
    }
    req_release(r);
}

static char *scope_literal(const json_t *scope)
{
    if (scope == NULL)
        return NULL;
    char buf[1024];
    size_t n = 0;
    buf[n++] = '{';
    size_t i;
    json_t *v;
    json_array_foreach(scope, i, v)
    {
        n += (size_t)snprintf(buf + n, sizeof buf - n, "%s%s", i ? "," : "", json_string_value(v));
        if (n >= sizeof buf - 2)
            break;
    }
    buf[n++] = '}';
    buf[n] = '\0';
    return strdup(buf);
}

static void start_read(struct api_request *r, const char *statement)
{
    r->job = (struct db_job){
        .name = statement, .send = read_send, .on_result = read_result, .on_done = read_done,
        .arg = r};
    if (!db_pool_submit(r->api->d.pool, &r->job)) {
        fail(r, 503, "database_unavailable", NULL, "the database is unreachable; retry later");
        return;
    }
    r->job_queued = true;
    wait_for_db(r);
}

static bool personnel_number_ok(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n > EVENT_EMPLOYEE_MAX)
        return false;
    for (const char *p = id; *p; p++)
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
              *p == '_' || *p == '-'))
            return false;
    return true;
}

static void handle_employee(struct api_request *r, const char *id, struct evkeyvalq *query)
{
    if (r->who.role == ROLE_READER) {
        fail(r, 403, "forbidden_role", NULL, "a reader token may not read employees' data");
        return;
    }
    if (!personnel_number_ok(id)) {
        fail(r, 404, "unknown_employee", NULL, "no employee with that personnel number");
        return;
    }
    char actor[96];
    snprintf(actor, sizeof actor, "token:%s", r->who.name);
    char tok[16];
    snprintf(tok, sizeof tok, "%d", r->who.token_id);
    r->params[0] = strdup(id);
    r->params[1] = strdup(tok);
    r->params[2] = strdup(actor);
    r->params[3] = scope_literal(r->who.scope);
    r->nparams = 4;
    if (r->route == ROUTE_EMPLOYEE) {
        start_read(r, "employee_view");
        return;
    }
    long limit = 100;
    const char *ls = evhttp_find_header(query, "limit");
    if (ls) {
        char *end;
        limit = strtol(ls, &end, 10);
        if (*ls == '\0' || *end != '\0' || limit < 1 || limit > 1000) {
            fail(r, 400, "invalid_parameter", "limit", "limit must be a number from 1 to 1000");
            return;
        }
    }
    char lim[16];
    snprintf(lim, sizeof lim, "%ld", limit);
    r->params[4] = strdup(lim);
    r->params[5] = NULL;
    r->params[6] = NULL;
    r->nparams = 7;
    const char *cursor = evhttp_find_header(query, "cursor");
    if (cursor) {
        long long at, eid;
        char extra;
        if (sscanf(cursor, "%lld.%lld%c", &at, &eid, &extra) != 2 || at < 0 || eid < 1) {
            fail(r, 400, "invalid_cursor", "cursor",
                 "cursor must be the \"next\" value of the previous page");
            return;
        }
        char a[32], b[32];
        snprintf(a, sizeof a, "%lld", at);
        snprintf(b, sizeof b, "%lld", eid);
        r->params[5] = strdup(a);
        r->params[6] = strdup(b);
    }
    start_read(r, "employee_events");
}

/* ---- snapshot reads --------------------------------------------------------------------- */

static bool find_scope(struct api_request *r, struct evkeyvalq *query, struct progress_scope *sc)
{
    const char *what = NULL;
    const char *ressort = evhttp_find_header(query, "ressort");
    const char *dst = evhttp_find_header(query, "dienststelle");
    if (progress_find_scope(r->api->d.progress, ressort, dst, sc, &what))
        return true;
    char msg[160];
    snprintf(msg, sizeof msg, "no %s with that code; GET /v1/ressorts lists them",
             strcmp(what, "ressort") == 0 ? "Ressort" : "Dienststelle");
    fail(r, 404, strcmp(what, "ressort") == 0 ? "unknown_ressort" : "unknown_dienststelle", what,
         msg);
    return false;
}

static bool snapshot_ready(struct api_request *r)
{
    if (progress_ready(r->api->d.progress))
        return true;
    fail(r, 503, "database_unavailable", NULL,
         "the progress figures have not been read from the database yet; retry shortly");
    return false;
}

static void handle_progress(struct api_request *r, struct evkeyvalq *query)
{
    struct progress_scope sc;
    if (!snapshot_ready(r) || !find_scope(r, query, &sc))
        return;
    if (r->route == ROUTE_PROGRESS_DAILY) {
        if (sc.dienststelle >= 0) {
            fail(r, 400, "invalid_parameter", "dienststelle",
                 "the daily series exist overall and per Ressort, not per Dienststelle");
            return;
        }
        reply_json(r, 200, progress_daily_json(r->api->d.progress, sc));
        return;
    }
    reply_json(r, 200, progress_json(r->api->d.progress, sc));
}

static const char *overall_status(const struct api *api, int *http_status)
{
    int ready = db_pool_ready(api->d.pool), size = db_pool_size(api->d.pool);
    *http_status = 200;
    if (ready == 0 || !*api->d.schema_ok) {
        *http_status = 503;
        return "down";
    }
    if (ready < size || ingest_queue_depth(api->d.ingest) * 5 > api->d.cfg->queue_max_events * 4 ||
        !progress_ready(api->d.progress))
        return "degraded";
    return "ok";
}

static void iso_time(double t, char out[32])
{
    time_t s = (time_t)t;
    struct tm tm;
    gmtime_r(&s, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* An evbuffer cleanup callback too: an answer's reference is released once it was written. */
static void status_cache_unref(const void *data, size_t len, void *arg)
{
    (void)data;
    (void)len;
    struct status_cache *c = arg;
    if (c && --c->refs == 0)
        free(c);
}

/* Renders /status into api->status for key (what the bytes show). */
static void status_render(struct api *api, const struct status_key *key)
{
    int http_status;
    const char *status = overall_status(api, &http_status);
    struct progress_scope all = {-1, -1};
    json_t *items = json_array();
    for (int i = 0; i < ITEM_COUNT && progress_ready(api->d.progress); i++) {
        struct progress_item_figures f;
        progress_figures(api->d.progress, all, (enum item)i, &f);
        json_array_append_new(items, json_pack("{s:s, s:I, s:I, s:f}", "item",
                                               item_info((enum item)i)->key, "done",
                                               (json_int_t)f.done, "target", (json_int_t)f.target,
                                               "ratio", f.ratio));
    }
    char last[32], now[32];
    double le = progress_last_event(api->d.progress);
    iso_time(le, last);
    iso_time((double)time(NULL), now);
    json_t *body = json_pack(
        "{s:s, s:s, s:i, s:{s:b, s:i, s:i}, s:I, s:i, s:o, s:s, s:o}", "status", status,
        "version", ROLLOUT_VERSION, "schema_version", ROLLOUT_SCHEMA_VERSION, "database",
        "reachable", db_pool_available(api->d.pool), "connections", db_pool_size(api->d.pool),
        "connections_ready", db_pool_ready(api->d.pool), "uptime_seconds",
        (json_int_t)((double)time(NULL) - metrics_start_time(api->d.metrics)), "queue_depth",
        ingest_queue_depth(api->d.ingest), "last_event_at",
        le > 0 ? json_string(last) : json_null(), "generated_at", now, "items", items);
    char *text = json_dumps(body, JSON_COMPACT | JSON_REAL_PRECISION(10));
    json_decref(body);
    size_t len = strlen(text);
    status_cache_unref(NULL, 0, api->status);
    api->status = malloc(sizeof *api->status + len + 1);
    api->status->key = *key;
    api->status->http_status = http_status;
    api->status->refs = 1;
    api->status->len = len + 1;
    memcpy(api->status->body, text, len);
    api->status->body[len] = '\n';
    free(text);
}

static void handle_status(struct api_request *r, struct evkeyvalq *query)
{
    struct api *api = r->api;
    const char *format = evhttp_find_header(query, "format");
    if (format && strcmp(format, "text") == 0) {
        int http_status;
        const char *status = overall_status(api, &http_status);
        struct progress_scope all = {-1, -1};
        struct evbuffer *buf = evbuffer_new();
        const char *word = strcmp(status, "ok") == 0         ? "OK"
                           : strcmp(status, "degraded") == 0 ? "WARNING"
                                                             : "CRITICAL";
        evbuffer_add_printf(buf, "ROLLOUTD %s - db %s, queue %d", word,
                            db_pool_available(api->d.pool) ? "up" : "down",
                            ingest_queue_depth(api->d.ingest));
        for (int i = 0; i < ITEM_COUNT && progress_ready(api->d.progress); i++) {
            struct progress_item_figures f;
            progress_figures(api->d.progress, all, (enum item)i, &f);
            evbuffer_add_printf(buf, ", %s %lld/%lld (%.1f%%)", item_info((enum item)i)->key,
                                f.done, f.target, f.ratio * 100.0);
        }
        evbuffer_add_printf(buf, " | queue=%d db_ready=%d\n", ingest_queue_depth(api->d.ingest),
                            db_pool_ready(api->d.pool));
        reply(r, http_status, "text/plain; charset=utf-8", buf);
        evbuffer_free(buf);
        return;
    }
    if (format && strcmp(format, "json") != 0) {
        fail(r, 400, "invalid_parameter", "format", "format must be json or text");
        return;
    }
    /* monitoring polls this all day: serve the same bytes until something in them changes */
    struct status_key key;
    memset(&key, 0, sizeof key); /* compared with memcmp: the padding must be zero too */
    key.second = time(NULL);
    key.version = progress_version(api->d.progress);
    key.ready = db_pool_ready(api->d.pool);
    key.queue = ingest_queue_depth(api->d.ingest);
    key.schema_ok = *api->d.schema_ok;
    key.draining = api->draining;
    if (api->status == NULL || memcmp(&api->status->key, &key, sizeof key) != 0)
        status_render(api, &key);
    struct evbuffer *buf = evbuffer_new();
    api->status->refs++;
    if (evbuffer_add_reference(buf, api->status->body, api->status->len, status_cache_unref,
                               api->status) != 0) {
        api->status->refs--; /* not taken: a copy instead */
        evbuffer_add(buf, api->status->body, api->status->len);
    }
    reply(r, api->status->http_status, "application/json", buf);
    evbuffer_free(buf);
}

static void handle_metrics(struct api_request *r)
{
    struct evbuffer *buf = evbuffer_new();
    metrics_render(r->api->d.metrics, buf);
    if (progress_ready(r->api->d.progress))
        progress_render_metrics(r->api->d.progress, buf);
    reply(r, 200, "text/plain; version=0.0.4; charset=utf-8", buf);
    evbuffer_free(buf);
}

static void handle_readyz(struct api_request *r)
{
    struct api *api = r->api;
    bool db = db_pool_available(api->d.pool);
    /* draining counts as not ready: load balancers stop sending before the process ends */
    bool ok = db && *api->d.schema_ok && auth_loaded(api->d.auth) &&
              progress_ready(api->d.progress) && !api->draining;
    json_t *body = json_pack("{s:s, s:b, s:b, s:b, s:b}", "status", ok ? "ready" : "not_ready",
                             "database", db, "schema", *api->d.schema_ok, "tokens",
                             auth_loaded(api->d.auth), "progress", progress_ready(api->d.progress));
    if (!ok && r->req)
        evhttp_add_header(evhttp_request_get_output_headers(r->req), "Retry-After", "2");
    reply_json(r, ok ? 200 : 503, body);
}

static void handle_dashboard(struct api_request *r)
{
    struct evbuffer *buf = evbuffer_new();
    evbuffer_add_reference(buf, dashboard_page, dashboard_page_len, NULL, NULL);
    if (r->req)
        evhttp_add_header(evhttp_request_get_output_headers(r->req), "Content-Security-Policy",
                          "default-src 'none'; connect-src 'self'; style-src 'unsafe-inline'; "
                          "script-src 'unsafe-inline'; img-src 'self' data:");
    reply(r, 200, "text/html; charset=utf-8", buf);
    evbuffer_free(buf);
}

/* ---- routing ---------------------------------------------------------------------------- */

enum need { NEED_NOTHING, NEED_TOKEN, NEED_TOKEN_UNLESS };

static enum route route_of(const char *path, char *id, size_t idlen)
{
    static const struct {
        const char *path;
        enum route route;
    } exact[] = {
        {"/v1/events", ROUTE_EVENTS},       {"/v1/progress", ROUTE_PROGRESS},
        {"/v1/progress/daily", ROUTE_PROGRESS_DAILY}, {"/v1/ressorts", ROUTE_RESSORTS},
        {"/status", ROUTE_STATUS},          {"/metrics", ROUTE_METRICS},
        {"/healthz", ROUTE_HEALTHZ},        {"/readyz", ROUTE_READYZ},
        {"/", ROUTE_DASHBOARD},
    };
    for (size_t i = 0; i < sizeof exact / sizeof exact[0]; i++)
        if (strcmp(path, exact[i].path) == 0)
            return exact[i].route;
    const char *prefix = "/v1/employees/";
    size_t pl = strlen(prefix);
    if (strncmp(path, prefix, pl) == 0) {
        const char *rest = path + pl;
        const char *slash = strchr(rest, '/');
        size_t n = slash ? (size_t)(slash - rest) : strlen(rest);
        if (n == 0 || n >= idlen)
            return ROUTE_OTHER;
        memcpy(id, rest, n);
        id[n] = '\0';
        if (slash == NULL)
            return ROUTE_EMPLOYEE;
        if (strcmp(slash, "/events") == 0)
            return ROUTE_EMPLOYEE_EVENTS;
    }
    return ROUTE_OTHER;
}

static const char *method_name(enum evhttp_cmd_type t)
{
    switch (t) {
    case EVHTTP_REQ_GET: return "GET";
    case EVHTTP_REQ_POST: return "POST";
    case EVHTTP_REQ_HEAD: return "HEAD";
    case EVHTTP_REQ_PUT: return "PUT";
    case EVHTTP_REQ_DELETE: return "DELETE";
    case EVHTTP_REQ_OPTIONS: return "OPTIONS";
    case EVHTTP_REQ_TRACE: return "TRACE";
    case EVHTTP_REQ_CONNECT: return "CONNECT";
    case EVHTTP_REQ_PATCH: return "PATCH";
    }
    return "OTHER";
}

static bool authenticate(struct api_request *r, struct evhttp_request *req, bool optional)
{
    const char *h = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
    if (optional && h == NULL)
        return true;
    enum auth_result res = auth_check(r->api->d.auth, h, now_us(), &r->who);
    switch (res) {
    case AUTH_OK:
        r->authenticated = true;
        return true;
    case AUTH_MISSING:
        fail(r, 401, "missing_token", NULL, "send Authorization: Bearer <token>");
        return false;
    case AUTH_MALFORMED:
    case AUTH_UNKNOWN:
        fail(r, 401, "invalid_token", NULL, "the token is not valid; ask an admin for one");
        return false;
    case AUTH_EXPIRED:
        fail(r, 401, "token_expired", NULL, "the token has expired; ask an admin for a new one");
        return false;
    case AUTH_REVOKED:
        fail(r, 401, "token_revoked", NULL, "the token was revoked; ask an admin for a new one");
        return false;
    case AUTH_UNAVAILABLE:
        fail(r, 503, "database_unavailable", NULL,
             "tokens cannot be checked before the database was reached; retry shortly");
        return false;
    }
    return false;
}

static void set_request_id(struct api_request *r, struct evhttp_request *req)
{
    const char *given = evhttp_find_header(evhttp_request_get_input_headers(req), "X-Request-Id");
    bool ok = given && strlen(given) > 0 && strlen(given) < sizeof r->id;
    for (const char *p = given; ok && *p; p++)
        ok = (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
             *p == '-' || *p == '_' || *p == '.';
    if (ok) {
        memcpy(r->id, given, strlen(given) + 1);
        return;
    }
    /* ours: the Unix second (the loop's cached clock) and a counter, 8 + 6 hex digits, so an
     * id a user reports names one line of the journal, also across restarts and reboots
     * (written by hand: every request has one, and snprintf was most of rolloutd's own time on
     * a /status) */
    static const char hex[] = "0123456789abcdef";
    struct timeval now = {0, 0};
    event_base_gettimeofday_cached(r->api->d.base, &now);
    uint64_t v = ((uint64_t)now.tv_sec & 0xffffffffu) << 24 | (r->api->next_id++ & 0xffffffu);
    for (int i = 13; i >= 0; i--, v >>= 4)
        r->id[i] = hex[v & 0xf];
    r->id[14] = '\0';
}

static void on_request(struct evhttp_request *req, void *arg)
{
    struct api *api = arg;
    struct api_request *r = calloc(1, sizeof *r);
    r->api = api;
    r->req = req;
    r->conn = evhttp_request_get_connection(req);
    r->state = REQ_HANDLING;
    clock_gettime(CLOCK_MONOTONIC, &r->start);
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
    r->method = method_name(cmd);
    set_request_id(r, req);

    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    char id[EVENT_EMPLOYEE_MAX + 2] = "";
    size_t decoded_len = 0;
    /* only a path with a %-escape needs decoding into a copy; the others route as they are */
    const char *route_path = path;
    char *decoded = NULL;
    if (path && strchr(path, '%')) {
        decoded = evhttp_uridecode(path, 0, &decoded_len);
        /* a %00 would cut the path short in C: such a path names nothing */
        route_path = decoded && strlen(decoded) == decoded_len ? decoded : NULL;
    }
    r->route = route_path ? route_of(route_path, id, sizeof id) : ROUTE_OTHER;
    free(decoded);

    struct evkeyvalq query;
    TAILQ_INIT(&query);
    if (r->route == ROUTE_OTHER) {
        fail(r, 404, "not_found", NULL, "no such path; see docs/openapi.yaml");
        goto out;
    }
    bool post = r->route == ROUTE_EVENTS;
    if ((post && cmd != EVHTTP_REQ_POST) ||
        (!post && cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD)) {
        fail(r, 405, "method_not_allowed", NULL,
             post ? "use POST for /v1/events" : "use GET (or HEAD) for this path");
        goto out;
    }

    /* only the routes that take parameters read the query; the others ignore it, as a
     * monitoring probe's cache-buster "?x" should not break a health check */
    bool takes_query = r->route == ROUTE_EMPLOYEE_EVENTS || r->route == ROUTE_PROGRESS ||
                       r->route == ROUTE_PROGRESS_DAILY || r->route == ROUTE_STATUS;
    const char *qs = uri ? evhttp_uri_get_query(uri) : NULL;
    if (takes_query && qs && evhttp_parse_query_str(qs, &query) != 0) {
        fail(r, 400, "invalid_parameter", NULL,
             "the query string cannot be parsed; use name=value pairs joined by &");
        goto out;
    }
    /* draining: still served (the client sent it before it could know), but the connection
     * closes after the answer, so keep-alive clients move to another instance */
    if (api->draining)
        evhttp_add_header(evhttp_request_get_output_headers(req), "Connection", "close");
    const struct rollout_config *cfg = api->d.cfg;
    switch (r->route) {
    case ROUTE_EVENTS:
        if (authenticate(r, req, false))
            handle_post_events(r, req);
        break;
    case ROUTE_EMPLOYEE:
    case ROUTE_EMPLOYEE_EVENTS:
        if (authenticate(r, req, false))
            handle_employee(r, id, &query);
        break;
    case ROUTE_PROGRESS:
    case ROUTE_PROGRESS_DAILY:
        if (authenticate(r, req, cfg->public_dashboard))
            handle_progress(r, &query);
        break;
    case ROUTE_RESSORTS:
        if (authenticate(r, req, cfg->public_dashboard) && snapshot_ready(r))
            reply_json(r, 200, progress_ressorts_json(api->d.progress));
        break;
    case ROUTE_STATUS:
        if (authenticate(r, req, cfg->public_status))
            handle_status(r, &query);
        break;
    case ROUTE_METRICS:
        if (authenticate(r, req, cfg->public_metrics))
            handle_metrics(r);
        break;
    case ROUTE_HEALTHZ:
        reply_json(r, 200, json_pack("{s:s}", "status", "alive"));
        break;
    case ROUTE_READYZ:
        handle_readyz(r);
        break;
    case ROUTE_DASHBOARD:
        /* the page holds no data (its data calls are checked like any other), and a browser
         * cannot send a token on a plain page load: always served */
        handle_dashboard(r);
        break;
    case ROUTE_OTHER:
    case ROUTE_COUNT:
        break;
    }
out:
    evhttp_clear_headers(&query);
    if (r->state == REQ_HANDLING) {
        /* a handler that neither answered nor deferred is a bug: never leave a client hanging */
        log_error("request %s: no answer from the handler", r->id);
        fail(r, 500, "internal", NULL, "internal error");
    }
    req_release(r);
}

/* ---- the listener ----------------------------------------------------------------------- */

static void on_accept_retry(evutil_socket_t fd, short what, void *arg)
{
    struct api *api = arg;
    if (api->listener && !api->draining)
        evconnlistener_enable(api->listener);
}

/* Out of file descriptors: stop accepting for a moment instead of spinning on accept(). */
static void on_accept_error(struct evconnlistener *l, void *arg)
{
    struct api *api = arg;
    int err = EVUTIL_SOCKET_ERROR();
    log_error("accept failed: %s; pausing new connections for 1 s",
              evutil_socket_error_to_string(err));
    evconnlistener_disable(l);
    struct timeval tv = {1, 0};
    evtimer_add(api->accept_retry, &tv);
}

static struct bufferevent *make_tls_bev(struct event_base *base, void *arg)
{
    struct api *api = arg;
    SSL *ssl = SSL_new(api->ssl);
    return bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                          BEV_OPT_CLOSE_ON_FREE);
}

static bool setup_tls(struct api *api)
{
    const struct rollout_config *cfg = api->d.cfg;
    api->ssl = SSL_CTX_new(TLS_server_method());
    SSL_CTX_set_min_proto_version(api->ssl, TLS1_2_VERSION);
    if (SSL_CTX_use_certificate_chain_file(api->ssl, cfg->tls_certificate) != 1 ||
        SSL_CTX_use_PrivateKey_file(api->ssl, cfg->tls_key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(api->ssl) != 1) {
        char buf[256];
        ERR_error_string_n(ERR_get_error(), buf, sizeof buf);
        log_error("TLS: cannot use certificate %s with key %s: %s", cfg->tls_certificate,
                  cfg->tls_key, buf);
        return false;
    }
    evhttp_set_bevcb(api->http, make_tls_bev, api);
    return true;
}

struct api *api_new(const struct api_deps *deps)
{
    struct api *api = calloc(1, sizeof *api);
    api->d = *deps;
    TAILQ_INIT(&api->waiting);
    const struct rollout_config *cfg = deps->cfg;
    api->http = evhttp_new(deps->base);
    /* evhttp limits nothing by default. Bodies up to 16 MiB over the limit are read so that
     * the client gets the contract's JSON 413 from us; beyond that evhttp answers 413 itself
     * (libevent 2.1 has no hook for its own error pages) and closes the connection. */
    evhttp_set_max_body_size(api->http, (ev_ssize_t)cfg->http_max_body_bytes + API_BODY_SLACK);
    evhttp_set_max_headers_size(api->http, cfg->http_max_header_bytes);
    /* Every connection has the same read and write timeout, and evhttp re-arms them around
     * every request: as a libevent "common timeout" they wait in one queue, re-armed in O(1),
     * instead of the timer heap (about 5% of a /status request's CPU, side by side). */
    struct timeval timeout = {cfg->http_timeout_s, 0};
    const struct timeval *common = event_base_init_common_timeout(deps->base, &timeout);
    evhttp_set_timeout_tv(api->http, common ? common : &timeout);
    /* every method evhttp knows reaches us, so each gets the contract's 405 with Allow */
    evhttp_set_allowed_methods(api->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                              EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                              EVHTTP_REQ_PATCH | EVHTTP_REQ_OPTIONS |
                                              EVHTTP_REQ_TRACE);
    evhttp_set_default_content_type(api->http, "application/json");
    evhttp_set_flags(api->http, EVHTTP_SERVER_LINGERING_CLOSE);
    evhttp_set_gencb(api->http, on_request, api);
    if (cfg->tls_certificate[0] && !setup_tls(api)) {
        api_free(api);
        return NULL;
    }

    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)cfg->listen_port)};
    struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6,
                                .sin6_port = htons((uint16_t)cfg->listen_port)};
    struct sockaddr *sa;
    socklen_t salen;
    if (inet_pton(AF_INET, cfg->listen_address, &sin.sin_addr) == 1) {
        sa = (struct sockaddr *)&sin;
        salen = sizeof sin;
    } else if (inet_pton(AF_INET6, cfg->listen_address, &sin6.sin6_addr) == 1) {
        sa = (struct sockaddr *)&sin6;
        salen = sizeof sin6;
    } else {
        log_error("listen.address \"%s\" is not an IP address", cfg->listen_address);
        api_free(api);
        return NULL;
    }
    api->listener = evconnlistener_new_bind(deps->base, NULL, NULL,
                                            LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE |
                                                LEV_OPT_CLOSE_ON_EXEC,
                                            1024, sa, (int)salen);
    if (api->listener == NULL) {
        log_error("cannot listen on %s port %d: %s", cfg->listen_address, cfg->listen_port,
                  strerror(errno));
        api_free(api);
        return NULL;
    }
    /* Answers are written in pieces (headers, body chains): without TCP_NODELAY, Nagle's
     * algorithm holds the last piece until the client's delayed ACK, 40 ms later. Accepted
     * sockets inherit it from the listening one on Linux. */
    int one = 1;
    setsockopt(evconnlistener_get_fd(api->listener), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    api->accept_retry = evtimer_new(deps->base, on_accept_retry, api);
    api->bound = evhttp_bind_listener(api->http, api->listener);
    if (api->bound == NULL) {
        log_error("cannot hand the listener to evhttp");
        api_free(api);
        return NULL;
    }
    evconnlistener_set_error_cb(api->listener, on_accept_error);
    struct sockaddr_storage bound = {0};
    socklen_t blen = sizeof bound;
    getsockname(evconnlistener_get_fd(api->listener), (struct sockaddr *)&bound, &blen);
    api->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                  : ((struct sockaddr_in *)&bound)->sin_port);
    return api;
}

int api_port(const struct api *api)
{
    return api->port;
}

static void on_close_listener(evutil_socket_t fd, short what, void *arg)
{
    struct api *api = arg;
    if (api->bound) {
        /* closes the socket (LEV_OPT_CLOSE_ON_FREE): new connection attempts are refused */
        evhttp_del_accept_socket(api->http, api->bound);
        api->bound = NULL;
        api->listener = NULL;
    }
}

void api_stop_listening(struct api *api)
{
    if (api->draining)
        return;
    api->draining = true;
    if (api->accept_retry)
        evtimer_del(api->accept_retry);
    /* Connections the kernel completed before the signal sit in the backlog, their requests
     * possibly sent: accept them for one more moment, then close the socket. */
    if (api->listener)
        evconnlistener_enable(api->listener);
    api->close_listener = evtimer_new(api->d.base, on_close_listener, api);
    struct timeval tv = {0, API_DRAIN_ACCEPT_MS * 1000};
    evtimer_add(api->close_listener, &tv);
}

bool api_listening(const struct api *api)
{
    return api->bound != NULL;
}

int api_waiting(const struct api *api)
{
    return api->nwaiting;
}

void api_fail_waiting(struct api *api)
{
    struct api_request *r;
    while ((r = TAILQ_FIRST(&api->waiting)) != NULL) {
        withdraw_items(r);
        fail(r, 503, "shutting_down", NULL, "the service is shutting down; retry");
        req_release(r);
    }
}

void api_free(struct api *api)
{
    if (api == NULL)
        return;
    if (api->http)
        evhttp_free(api->http); /* frees the bound listener too */
    else if (api->listener)
        evconnlistener_free(api->listener);
    if (api->accept_retry)
        event_free(api->accept_retry);
    if (api->close_listener)
        event_free(api->close_listener);
    status_cache_unref(NULL, 0, api->status);
    if (api->ssl)
        SSL_CTX_free(api->ssl);
    free(api);
}

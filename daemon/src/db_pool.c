#include "db_pool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

/* The life of one connection. Every change goes through conn_set_state(). */
enum db_conn_state {
    DB_CONN_DISCONNECTED, /* no connection; a reconnect timer is armed unless draining */
    DB_CONN_CONNECTING,   /* PQconnectPoll in progress, waiting for the socket it asked for */
    DB_CONN_SETUP,        /* connected, in pipeline mode, SET/PREPARE/LISTEN in flight */
    DB_CONN_READY,        /* idle: can take a job */
    DB_CONN_ACTIVE        /* one job in flight */
};

static const char *const conn_state_names[] = {"disconnected", "connecting", "setup", "ready",
                                               "active"};

struct db_conn {
    struct db_pool *pool;
    int index;
    enum db_conn_state state;
    PGconn *pg;
    int fd;
    struct event *io;        /* connecting: one-shot; connected: persistent read (+write) */
    struct event *timer;     /* connect deadline, or the reconnect back-off */
    bool want_write;         /* output is pending: also wait for writability */
    struct db_job *job;      /* in flight (ACTIVE) */
    bool job_error;          /* an error result arrived for the current unit */
    char error[256];
    int backoff_ms;
    bool listener;           /* this connection LISTENs */
};

TAILQ_HEAD(db_job_queue, db_job);

struct db_pool {
    struct event_base *base;
    struct db_pool_settings s;
    struct db_conn *conns;
    struct db_job_queue queue;
    int queued;
    bool draining;
};

static void conn_connect(struct db_conn *c);
static void conn_broken(struct db_conn *c, const char *why);
static void conn_on_io(evutil_socket_t fd, short what, void *arg);
static void pool_dispatch(struct db_pool *pool);

static void conn_set_state(struct db_conn *c, enum db_conn_state state)
{
    if (c->state == state)
        return;
    log_debug("db[%d]: %s -> %s", c->index, conn_state_names[c->state], conn_state_names[state]);
    bool was_up = c->state == DB_CONN_READY || c->state == DB_CONN_ACTIVE;
    bool is_up = state == DB_CONN_READY || state == DB_CONN_ACTIVE;
    c->state = state;
    if (was_up != is_up && c->pool->s.on_ready_change)
        c->pool->s.on_ready_change(c->pool->s.arg);
}

static void conn_clear_io(struct db_conn *c)
{
    if (c->io) {
        event_free(c->io);
        c->io = NULL;
    }
}

static void conn_arm(struct db_conn *c, short what, bool persist)
{
    conn_clear_io(c);
    c->fd = PQsocket(c->pg);
    c->io = event_new(c->pool->base, c->fd, what | (persist ? EV_PERSIST : 0), conn_on_io, c);
    event_add(c->io, NULL);
}

/* Connected: always read (that is how a server that went away and NOTIFYs are seen), write
 * only while libpq has output it could not send. */
static void conn_arm_connected(struct db_conn *c)
{
    conn_arm(c, (short)(EV_READ | (c->want_write ? EV_WRITE : 0)), true);
}

static void conn_on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct db_conn *c = arg;
    if (c->state == DB_CONN_CONNECTING)
        conn_broken(c, "connect timeout");
    else if (c->state == DB_CONN_DISCONNECTED && !c->pool->draining)
        conn_connect(c);
}

static void conn_schedule_reconnect(struct db_conn *c)
{
    if (c->pool->draining)
        return;
    /* exponential back-off with jitter, so a fleet does not reconnect in lockstep */
    int max_ms = c->pool->s.reconnect_max_s * 1000;
    c->backoff_ms = c->backoff_ms == 0 ? 100 : c->backoff_ms * 2;
    if (c->backoff_ms > max_ms)
        c->backoff_ms = max_ms;
    int delay = c->backoff_ms / 2 + (int)(random() % (c->backoff_ms / 2 + 1));
    struct timeval tv = {delay / 1000, (delay % 1000) * 1000};
    evtimer_add(c->timer, &tv);
}

/* Flushes libpq's output buffer; arms write interest while it is not empty. */
static bool conn_flush(struct db_conn *c)
{
    int r = PQflush(c->pg);
    if (r < 0)
        return false;
    bool want = r == 1;
    if (want != c->want_write) {
        c->want_write = want;
        conn_arm_connected(c);
    }
    return true;
}

static void job_finish(struct db_job *job, enum db_job_outcome outcome, const char *error)
{
    job->on_done(job, outcome, error);
}

/* The one teardown of a connection: fail its job exactly once, close, plan the reconnect. */
static void conn_broken(struct db_conn *c, const char *why)
{
    const char *pgmsg = c->pg ? PQerrorMessage(c->pg) : "";
    char msg[512];
    snprintf(msg, sizeof msg, "%s%s%s", why, *pgmsg ? ": " : "", pgmsg);
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
        msg[--n] = '\0';
    if (c->state != DB_CONN_CONNECTING || c->backoff_ms < 1000)
        log_warn("db[%d]: connection lost (%s); reconnecting", c->index, msg);
    conn_clear_io(c);
    evtimer_del(c->timer);
    struct db_job *job = c->job;
    c->job = NULL;
    c->want_write = false;
    if (c->pg) {
        PQfinish(c->pg);
        c->pg = NULL;
    }
    conn_set_state(c, DB_CONN_DISCONNECTED);
    if (job)
        job_finish(job, DB_JOB_LOST, msg);
    conn_schedule_reconnect(c);

    /* With no connection up, queued jobs would only wait for their deadlines: fail them now. */
    struct db_pool *pool = c->pool;
    if (!db_pool_available(pool)) {
        struct db_job *j;
        while ((j = TAILQ_FIRST(&pool->queue)) != NULL) {
            TAILQ_REMOVE(&pool->queue, j, link);
            pool->queued--;
            job_finish(j, DB_JOB_LOST, "database unavailable");
        }
    }
}

static bool conn_send_setup(struct db_conn *c)
{
    char sql[64];
    snprintf(sql, sizeof sql, "SET statement_timeout = %d", c->pool->s.statement_timeout_ms);
    if (!PQsendQueryParams(c->pg, sql, 0, NULL, NULL, NULL, NULL, 0))
        return false;
    for (const struct db_statement *st = c->pool->s.statements; st && st->name; st++)
        if (!PQsendPrepare(c->pg, st->name, st->sql, st->nparams, NULL))
            return false;
    if (c->listener) {
        for (const char *const *ch = c->pool->s.listen_channels; ch && *ch; ch++) {
            char listen[128];
            snprintf(listen, sizeof listen, "LISTEN %s", *ch);
            if (!PQsendQueryParams(c->pg, listen, 0, NULL, NULL, NULL, NULL, 0))
                return false;
        }
    }
    return PQpipelineSync(c->pg) == 1;
}

static void conn_connected(struct db_conn *c)
{
    evtimer_del(c->timer);
    if (PQenterPipelineMode(c->pg) != 1) {
        conn_broken(c, "cannot enter pipeline mode");
        return;
    }
    /* One connection listens for the other instances' commits; the first to connect. */
    c->listener = true;
    for (int i = 0; i < c->pool->s.size; i++) {
        struct db_conn *o = &c->pool->conns[i];
        if (o != c && o->listener && o->state != DB_CONN_DISCONNECTED)
            c->listener = false;
    }
    conn_set_state(c, DB_CONN_SETUP);
    c->job_error = false;
    c->want_write = false;
    conn_arm_connected(c);
    if (!conn_send_setup(c) || !conn_flush(c))
        conn_broken(c, "cannot send the connection set-up");
}

static void conn_poll_connect(struct db_conn *c)
{
    switch (PQconnectPoll(c->pg)) {
    case PGRES_POLLING_READING:
        conn_arm(c, EV_READ, false);
        break;
    case PGRES_POLLING_WRITING:
        conn_arm(c, EV_WRITE, false);
        break;
    case PGRES_POLLING_OK:
        conn_connected(c);
        break;
    case PGRES_POLLING_FAILED:
    default:
        conn_broken(c, "connect failed");
        break;
    }
}

/* Server notices (a WARNING before an immediate shutdown, say) go to our log, not raw to
 * stderr. */
static void conn_notice(void *arg, const char *message)
{
    struct db_conn *c = arg;
    char msg[512];
    snprintf(msg, sizeof msg, "%s", message);
    size_t n = strlen(msg);
    while (n > 0 && msg[n - 1] == '\n')
        msg[--n] = '\0';
    log_warn("db[%d]: %s", c->index, msg);
}

static void conn_connect(struct db_conn *c)
{
    const char *keys[] = {"dbname", "fallback_application_name", NULL};
    const char *vals[] = {c->pool->s.conninfo, "rolloutd", NULL};
    c->pg = PQconnectStartParams(keys, vals, 1);
    if (c->pg == NULL || PQstatus(c->pg) == CONNECTION_BAD) {
        conn_broken(c, "cannot start a connection");
        return;
    }
    PQsetnonblocking(c->pg, 1);
    PQsetNoticeProcessor(c->pg, conn_notice, c);
    conn_set_state(c, DB_CONN_CONNECTING);
    struct timeval tv = {c->pool->s.connect_timeout_s, 0};
    evtimer_add(c->timer, &tv);
    /* libpq wants the socket writable first */
    conn_arm(c, EV_WRITE, false);
}

/* Reads every result that is complete. Driven by what we sent, not by NULLs: a NULL only ends
 * one statement's results; PGRES_PIPELINE_SYNC ends the unit (setup or job). */
static void conn_drain_results(struct db_conn *c)
{
    while (c->state == DB_CONN_SETUP || c->state == DB_CONN_ACTIVE) {
        if (PQisBusy(c->pg))
            return;
        PGresult *res = PQgetResult(c->pg);
        if (res == NULL) {
            if (PQisBusy(c->pg))
                return;
            /* between two statements' results; look again for the next one */
            res = PQgetResult(c->pg);
            if (res == NULL)
                return;
        }
        ExecStatusType st = PQresultStatus(res);
        if (st == PGRES_PIPELINE_SYNC) {
            PQclear(res);
            bool failed = c->job_error;
            c->job_error = false;
            if (c->state == DB_CONN_SETUP) {
                if (failed) {
                    log_error("db[%d]: connection set-up failed: %s", c->index, c->error);
                    conn_broken(c, "set-up failed");
                    return;
                }
                c->backoff_ms = 0;
                log_info("db[%d]: connected%s", c->index, c->listener ? " (listening)" : "");
                conn_set_state(c, DB_CONN_READY);
            } else {
                struct db_job *job = c->job;
                char error[sizeof c->error];
                snprintf(error, sizeof error, "%s", failed ? c->error : "");
                c->job = NULL;
                conn_set_state(c, DB_CONN_READY);
                /* The next job first: the server works on it while this one's outcome is
                 * handled (for a group commit, while its answers are written), instead of
                 * idling until then. */
                pool_dispatch(c->pool);
                job_finish(job, failed ? DB_JOB_FAILED : DB_JOB_OK, failed ? error : NULL);
            }
            pool_dispatch(c->pool); /* what the outcome submitted */
            return; /* the connection may have taken a new job or broken: start over later */
        }
        if (st == PGRES_FATAL_ERROR || st == PGRES_PIPELINE_ABORTED) {
            if (!c->job_error) {
                const char *m = PQresultErrorMessage(res);
                snprintf(c->error, sizeof c->error, "%s", *m ? m : "aborted");
                size_t n = strlen(c->error);
                while (n > 0 && c->error[n - 1] == '\n')
                    c->error[--n] = '\0';
            }
            c->job_error = true;
        } else if (c->state == DB_CONN_ACTIVE && c->job->on_result) {
            c->job->on_result(c->job, res);
        }
        PQclear(res);
    }
}

static void conn_on_io(evutil_socket_t fd, short what, void *arg)
{
    struct db_conn *c = arg;
    if (c->state == DB_CONN_CONNECTING) {
        conn_poll_connect(c);
        return;
    }
    if ((what & EV_WRITE) && !conn_flush(c)) {
        conn_broken(c, "write failed");
        return;
    }
    if (what & EV_READ) {
        if (!PQconsumeInput(c->pg)) {
            conn_broken(c, "read failed");
            return;
        }
        PGnotify *n;
        while ((n = PQnotifies(c->pg)) != NULL) {
            if (c->pool->s.on_notify)
                c->pool->s.on_notify(n->relname, n->extra, c->pool->s.arg);
            PQfreemem(n);
        }
        /* the server may wait for us to read before it takes more of our output */
        if (c->want_write && !conn_flush(c)) {
            conn_broken(c, "write failed");
            return;
        }
        conn_drain_results(c);
        if (c->pg && PQstatus(c->pg) == CONNECTION_BAD)
            conn_broken(c, "connection closed");
    }
}

static void conn_start_job(struct db_conn *c, struct db_job *job)
{
    c->job = job;
    c->job_error = false;
    conn_set_state(c, DB_CONN_ACTIVE);
    if (!job->send(job, c->pg) || PQpipelineSync(c->pg) != 1 || !conn_flush(c)) {
        conn_broken(c, "cannot send");
        return;
    }
}

static void pool_dispatch(struct db_pool *pool)
{
    for (int i = 0; i < pool->s.size && !TAILQ_EMPTY(&pool->queue); i++) {
        struct db_conn *c = &pool->conns[i];
        if (c->state != DB_CONN_READY)
            continue;
        struct db_job *job = TAILQ_FIRST(&pool->queue);
        TAILQ_REMOVE(&pool->queue, job, link);
        pool->queued--;
        conn_start_job(c, job);
    }
}

struct db_pool *db_pool_new(struct event_base *base, const struct db_pool_settings *settings)
{
    struct db_pool *pool = calloc(1, sizeof *pool);
    pool->base = base;
    pool->s = *settings;
    TAILQ_INIT(&pool->queue);
    pool->conns = calloc((size_t)settings->size, sizeof *pool->conns);
    for (int i = 0; i < settings->size; i++) {
        struct db_conn *c = &pool->conns[i];
        c->pool = pool;
        c->index = i;
        c->fd = -1;
        c->timer = evtimer_new(base, conn_on_timer, c);
    }
    return pool;
}

void db_pool_start(struct db_pool *pool)
{
    for (int i = 0; i < pool->s.size; i++)
        conn_connect(&pool->conns[i]);
}

bool db_pool_submit(struct db_pool *pool, struct db_job *job)
{
    if (pool->draining || !db_pool_available(pool))
        return false;
    TAILQ_INSERT_TAIL(&pool->queue, job, link);
    pool->queued++;
    pool_dispatch(pool);
    return true;
}

bool db_pool_cancel(struct db_pool *pool, struct db_job *job)
{
    struct db_job *j;
    TAILQ_FOREACH(j, &pool->queue, link)
    {
        // cppcheck-suppress uninitvar ; TAILQ_FOREACH assigns j, cppcheck does not see it
        if (j == job) {
            TAILQ_REMOVE(&pool->queue, job, link);
            pool->queued--;
            return true;
        }
    }
    return false;
}

int db_pool_size(const struct db_pool *pool)
{
    return pool->s.size;
}

int db_pool_ready(const struct db_pool *pool)
{
    int n = 0;
    for (int i = 0; i < pool->s.size; i++)
        n += pool->conns[i].state == DB_CONN_READY || pool->conns[i].state == DB_CONN_ACTIVE;
    return n;
}

int db_pool_busy(const struct db_pool *pool)
{
    int n = 0;
    for (int i = 0; i < pool->s.size; i++)
        n += pool->conns[i].state == DB_CONN_ACTIVE;
    return n;
}

int db_pool_queued(const struct db_pool *pool)
{
    return pool->queued;
}

bool db_pool_available(const struct db_pool *pool)
{
    return db_pool_ready(pool) > 0;
}

void db_pool_drain(struct db_pool *pool)
{
    pool->draining = true;
    for (int i = 0; i < pool->s.size; i++)
        if (pool->conns[i].state == DB_CONN_DISCONNECTED)
            evtimer_del(pool->conns[i].timer);
}

void db_pool_free(struct db_pool *pool)
{
    if (pool == NULL)
        return;
    pool->draining = true;
    struct db_job *j;
    while ((j = TAILQ_FIRST(&pool->queue)) != NULL) {
        TAILQ_REMOVE(&pool->queue, j, link);
        job_finish(j, DB_JOB_LOST, "shutting down");
    }
    for (int i = 0; i < pool->s.size; i++) {
        struct db_conn *c = &pool->conns[i];
        conn_clear_io(c);
        struct db_job *job = c->job;
        c->job = NULL;
        if (c->pg)
            PQfinish(c->pg);
        c->pg = NULL;
        if (job)
            job_finish(job, DB_JOB_LOST, "shutting down");
        event_free(c->timer);
    }
    free(pool->conns);
    free(pool);
}

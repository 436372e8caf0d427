/* rolloutd: records the rollout of the mobile digital workplace in PostgreSQL and shows the
 * progress against the targets. One libevent loop; after start-up nothing on it blocks. */
#include <event2/event.h>
#include <getopt.h>
#include <libpq-fe.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "api.h"
#include "auth.h"
#include "config.h"
#include "db_pool.h"
#include "ingest.h"
#include "log.h"
#include "metrics.h"
#include "notify.h"
#include "progress.h"
#include "version.h"

#define SHUTDOWN_TICK_MS 50
#define DRAIN_MIN_S 0.3

/* The daemon's phases. */
enum daemon_phase {
    PHASE_STARTING, /* loop running, waiting for the first database connection */
    PHASE_SERVING,  /* listening and serving */
    PHASE_DRAINING, /* SIGTERM: not accepting, answering what waits, committing the queue */
    PHASE_STOPPED   /* loop told to exit */
};

struct daemon {
    enum daemon_phase phase;
    const char *config_path;
    struct rollout_config cfg;
    struct event_base *base;
    struct db_pool *pool;
    struct ingest *ingest;
    struct auth *auth;
    struct progress *progress;
    struct metrics *metrics;
    struct api *api;
    struct event *sigterm, *sigint, *sighup, *shutdown_timer, *watchdog, *ready_timer;
    struct db_job schema_job;
    bool schema_busy;
    bool schema_ok;
    bool schema_checked;
    int schema_found;
    struct timespec drain_started;
    int exit_code;
    bool notified_ready;
};

static const char *const listen_channels[] = {"rollout_progress", NULL};

/* ---- metrics sources -------------------------------------------------------------------- */

static int src_queue(void *arg)
{
    return ingest_queue_depth(((struct daemon *)arg)->ingest);
}
static int src_inflight(void *arg)
{
    return ingest_inflight(((struct daemon *)arg)->ingest);
}
static int src_pool_size(void *arg)
{
    return db_pool_size(((struct daemon *)arg)->pool);
}
static int src_pool_ready(void *arg)
{
    return db_pool_ready(((struct daemon *)arg)->pool);
}
static int src_pool_busy(void *arg)
{
    return db_pool_busy(((struct daemon *)arg)->pool);
}
static int src_waiting(void *arg)
{
    struct daemon *d = arg;
    return d->api ? api_waiting(d->api) : 0;
}

/* ---- the schema check ------------------------------------------------------------------- */

static bool schema_send(struct db_job *job, PGconn *conn)
{
    return PQsendQueryParams(conn, "SELECT coalesce(max(version), 0) FROM schema_migrations", 0,
                             NULL, NULL, NULL, NULL, 0) == 1;
}

static void schema_result(struct db_job *job, const PGresult *res)
{
    struct daemon *d = job->arg;
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
        d->schema_found = atoi(PQgetvalue(res, 0, 0));
}

static void begin_shutdown(struct daemon *d, int exit_code);

static void schema_done(struct db_job *job, enum db_job_outcome outcome, const char *error)
{
    struct daemon *d = job->arg;
    d->schema_busy = false;
    if (outcome == DB_JOB_LOST)
        return; /* checked again on the next connection */
    d->schema_ok = outcome == DB_JOB_OK && d->schema_found == ROLLOUT_SCHEMA_VERSION;
    bool first = !d->schema_checked;
    d->schema_checked = true;
    if (d->schema_ok)
        return;
    log_error("the database has schema version %d, this rolloutd needs %d: run `rolloutctl "
              "migrate` (or install the rolloutd that matches the database)%s%s",
              d->schema_found, ROLLOUT_SCHEMA_VERSION, error ? ": " : "", error ? error : "");
    if (first)
        begin_shutdown(d, EX_CONFIG);
}

static void schema_check(struct daemon *d)
{
    if (d->schema_busy)
        return;
    d->schema_found = -1;
    d->schema_job = (struct db_job){.name = "schema",
                                    .send = schema_send,
                                    .on_result = schema_result,
                                    .on_done = schema_done,
                                    .arg = d};
    if (db_pool_submit(d->pool, &d->schema_job))
        d->schema_busy = true;
}

/* ---- database events -------------------------------------------------------------------- */

/* Ready means what /readyz means: database, schema, tokens and the progress snapshot. */
static bool daemon_ready(const struct daemon *d)
{
    return d->phase == PHASE_SERVING && db_pool_available(d->pool) && d->schema_ok &&
           auth_loaded(d->auth) && progress_ready(d->progress);
}

static void notify_status(struct daemon *d)
{
    char status[160];
    snprintf(status, sizeof status, "STATUS=%s, %d/%d database connections, queue %d",
             d->phase == PHASE_DRAINING ? "draining" : "serving", db_pool_ready(d->pool),
             db_pool_size(d->pool), ingest_queue_depth(d->ingest));
    if (!d->notified_ready && daemon_ready(d)) {
        char msg[200];
        snprintf(msg, sizeof msg, "READY=1\n%s", status);
        notify_send(msg);
        d->notified_ready = true;
    } else {
        notify_send(status);
    }
}

static void on_pool_change(void *arg)
{
    struct daemon *d = arg;
    if (d->phase == PHASE_DRAINING || d->phase == PHASE_STOPPED)
        return;
    if (db_pool_available(d->pool)) {
        /* (re)connected: the world may have moved while we were away */
        schema_check(d);
        auth_reload(d->auth);
        progress_reload(d->progress, &d->cfg);
    }
    notify_status(d);
}

/* "frame": targets, offices or employees changed (rolloutctl); anything else: counts. */
static void on_notify(const char *channel, const char *payload, void *arg)
{
    struct daemon *d = arg;
    if (payload && strcmp(payload, "frame") == 0)
        progress_reload(d->progress, &d->cfg);
    else
        progress_changed(d->progress);
}

static void on_commit(void *arg, int created)
{
    struct daemon *d = arg;
    progress_committed(d->progress);
}

/* ---- signals and shutdown --------------------------------------------------------------- */

static double since(const struct timespec *t)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - t->tv_sec) + (double)(now.tv_nsec - t->tv_nsec) / 1e9;
}

/* Draining: wait until every accepted request is answered and the queue is committed. */
static void on_shutdown_tick(evutil_socket_t fd, short what, void *arg)
{
    struct daemon *d = arg;
    /* idle: the socket is closed, the requests of the last accepted connections had a moment
     * to arrive, nothing waits for the database */
    bool idle = !api_listening(d->api) && since(&d->drain_started) >= DRAIN_MIN_S &&
                api_waiting(d->api) == 0 && ingest_queue_depth(d->ingest) == 0 &&
                ingest_inflight(d->ingest) == 0 &&
                /* the other instances heard of our last commits (unless the database is gone) */
                (!progress_notify_pending(d->progress) || !db_pool_ready(d->pool));
    double limit = d->cfg.http_request_deadline_ms / 1000.0 + 1.0;
    if (!idle && since(&d->drain_started) < limit) {
        struct timeval tv = {0, SHUTDOWN_TICK_MS * 1000};
        evtimer_add(d->shutdown_timer, &tv);
        return;
    }
    if (!idle && api_waiting(d->api) > 0) {
        log_warn("shutdown: %d requests still waiting after %.0f s; answering them with 503",
                 api_waiting(d->api), limit);
        api_fail_waiting(d->api);
    }
    log_info("shutdown: done");
    d->phase = PHASE_STOPPED;
    event_base_loopexit(d->base, NULL);
}

static void begin_shutdown(struct daemon *d, int exit_code)
{
    if (d->phase == PHASE_DRAINING || d->phase == PHASE_STOPPED)
        return;
    d->exit_code = exit_code;
    d->phase = PHASE_DRAINING;
    notify_send("STOPPING=1");
    log_info("shutdown: not accepting new connections; answering %d waiting requests, %d "
             "queued events",
             d->api ? api_waiting(d->api) : 0, ingest_queue_depth(d->ingest));
    if (d->api)
        api_stop_listening(d->api);
    clock_gettime(CLOCK_MONOTONIC, &d->drain_started);
    on_shutdown_tick(-1, 0, d);
}

static void on_sigterm(evutil_socket_t sig, short what, void *arg)
{
    struct daemon *d = arg;
    log_info("%s received", sig == SIGINT ? "SIGINT" : "SIGTERM");
    begin_shutdown(d, EX_OK);
}

static void on_sighup(evutil_socket_t sig, short what, void *arg)
{
    struct daemon *d = arg;
    struct rollout_config fresh;
    char err[CONFIG_ERROR_MAX];
    if (!config_load(&fresh, d->config_path, err)) {
        log_error("SIGHUP: configuration not reloaded, the old one stays in force: %s", err);
        config_free(&fresh);
        metrics_count_reload(d->metrics, 0);
        return;
    }
    config_apply_reloadable(&d->cfg, &fresh);
    config_free(&fresh);
    enum log_level lvl = LOG_LEVEL_INFO;
    log_level_parse(d->cfg.log_level, &lvl);
    log_set_level(lvl);
    auth_set_refresh(d->auth, d->cfg.token_refresh_ms);
    auth_reload(d->auth);
    progress_reload(d->progress, &d->cfg);
    metrics_count_reload(d->metrics, 1);
    log_info("SIGHUP: configuration reloaded (tokens, targets, access, log level %s)",
             d->cfg.log_level);
}

/* Until systemd was told READY=1: look every 50 ms whether everything is in place. */
static void on_ready_check(evutil_socket_t fd, short what, void *arg)
{
    struct daemon *d = arg;
    notify_status(d);
    if (d->notified_ready)
        event_del(d->ready_timer);
}

static void on_watchdog(evutil_socket_t fd, short what, void *arg)
{
    struct daemon *d = arg;
    /* the loop turns: that is what the watchdog wants to know */
    notify_send("WATCHDOG=1");
    notify_status(d);
}

/* ---- start-up --------------------------------------------------------------------------- */

static void usage(FILE *out)
{
    fprintf(out,
            "usage: rolloutd [--config FILE] [--check-config] [--print-config] [--version]\n"
            "  --config FILE    configuration (default /etc/rolloutd/rolloutd.conf)\n"
            "  --check-config   read the configuration, report problems, exit\n"
            "  --print-config   print the documented example configuration, exit\n"
            "  --version        print the version, exit\n");
}

/* Before the loop runs, a blocking look at the database is allowed: refuse to start on a
 * schema we were not built for. An unreachable database is not fatal: the pool keeps trying
 * and the same check runs on the first connection. */
static int startup_schema_check(const struct rollout_config *cfg)
{
    const char *keys[] = {"dbname", "connect_timeout", "fallback_application_name", NULL};
    char timeout[16];
    snprintf(timeout, sizeof timeout, "%d", cfg->db_connect_timeout_s);
    const char *vals[] = {cfg->db_conninfo, timeout, "rolloutd", NULL};
    PGconn *conn = PQconnectdbParams(keys, vals, 1);
    if (PQstatus(conn) != CONNECTION_OK) {
        log_warn("database unreachable at start (%s); serving 503 until it is back",
                 strtok(PQerrorMessage(conn), "\n"));
        PQfinish(conn);
        return EX_OK;
    }
    PGresult *res = PQexec(conn, "SELECT coalesce(max(version), 0) FROM schema_migrations");
    int rc = EX_OK;
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        log_error("the database has no rolloutd schema (%s): run `rolloutctl migrate` first",
                  strtok(PQresultErrorMessage(res), "\n"));
        rc = EX_CONFIG;
    } else if (atoi(PQgetvalue(res, 0, 0)) != ROLLOUT_SCHEMA_VERSION) {
        log_error("the database has schema version %s, this rolloutd needs %d: run `rolloutctl "
                  "migrate` (or install the rolloutd that matches the database)",
                  PQgetvalue(res, 0, 0), ROLLOUT_SCHEMA_VERSION);
        rc = EX_CONFIG;
    }
    PQclear(res);
    PQfinish(conn);
    return rc;
}

static int run(struct daemon *d)
{
    /* epoll: the adds and deletes of one pass of the loop go out as the fewest epoll_ctl calls
     * (evhttp turns reading off and on again around every request). Safe because no descriptor
     * of this process is ever dup()ed, the one case where the change list goes wrong. */
    struct event_config *ec = event_config_new();
    if (ec != NULL) {
        event_config_set_flag(ec, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
        d->base = event_base_new_with_config(ec);
        event_config_free(ec);
    }
    if (d->base == NULL) {
        log_error("cannot create the event loop");
        return EX_OSERR;
    }
    const struct db_statement *statements = api_statements;
    struct db_pool_settings ps = {
        .conninfo = d->cfg.db_conninfo,
        .size = d->cfg.db_pool_size,
        .connect_timeout_s = d->cfg.db_connect_timeout_s,
        .statement_timeout_ms = d->cfg.db_statement_timeout_ms,
        .reconnect_max_s = d->cfg.db_reconnect_max_s,
        .statements = statements,
        .listen_channels = listen_channels,
        .on_notify = on_notify,
        .on_ready_change = on_pool_change,
        .arg = d,
    };
    d->pool = db_pool_new(d->base, &ps);
    struct metrics_source src = {src_queue,      src_inflight, src_pool_size, src_pool_ready,
                                 src_pool_busy, src_waiting,  d};
    d->metrics = metrics_new(&src);
    d->ingest = ingest_new(d->base, d->pool, d->cfg.queue_max_events, d->cfg.group_max_events,
                           d->cfg.group_parallel_min_events, d->metrics);
    ingest_set_commit_hook(d->ingest, on_commit, d);
    d->auth = auth_new(d->base, d->pool, d->cfg.token_refresh_ms);
    d->progress = progress_new(d->base, d->pool, &d->cfg);

    struct api_deps deps = {d->base,  &d->cfg,       d->pool,    d->ingest,
                            d->auth,  d->progress,   d->metrics, &d->schema_ok};
    d->api = api_new(&deps);
    if (d->api == NULL)
        return EX_UNAVAILABLE;

    d->sigterm = evsignal_new(d->base, SIGTERM, on_sigterm, d);
    d->sigint = evsignal_new(d->base, SIGINT, on_sigterm, d);
    d->sighup = evsignal_new(d->base, SIGHUP, on_sighup, d);
    d->shutdown_timer = evtimer_new(d->base, on_shutdown_tick, d);
    event_add(d->sigterm, NULL);
    event_add(d->sigint, NULL);
    event_add(d->sighup, NULL);
    uint64_t wd = notify_watchdog_usec();
    if (wd > 0) {
        d->watchdog = event_new(d->base, -1, EV_PERSIST, on_watchdog, d);
        struct timeval tv = {(time_t)(wd / 2 / 1000000), (suseconds_t)(wd / 2 % 1000000)};
        event_add(d->watchdog, &tv);
    }

    d->ready_timer = event_new(d->base, -1, EV_PERSIST, on_ready_check, d);
    struct timeval ready_tv = {0, 50 * 1000};
    event_add(d->ready_timer, &ready_tv);
    d->phase = PHASE_SERVING;
    log_info("rolloutd %s listening on %s:%d%s (schema %d, %d database connections)",
             ROLLOUT_VERSION, d->cfg.listen_address, api_port(d->api),
             d->cfg.tls_certificate[0] ? " (TLS)" : "", ROLLOUT_SCHEMA_VERSION,
             d->cfg.db_pool_size);
    db_pool_start(d->pool);
    auth_start(d->auth);
    progress_start(d->progress);

    event_base_dispatch(d->base);

    /* Shutdown order: nothing listens or waits any more; the pool's queue is committed. */
    api_free(d->api);
    d->api = NULL;
    db_pool_free(d->pool);
    ingest_free(d->ingest);
    auth_free(d->auth);
    progress_free(d->progress);
    metrics_free(d->metrics);
    event_free(d->sigterm);
    event_free(d->sigint);
    event_free(d->sighup);
    event_free(d->shutdown_timer);
    event_free(d->ready_timer);
    if (d->watchdog)
        event_free(d->watchdog);
    event_base_free(d->base);
    return d->exit_code;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"check-config", no_argument, NULL, 'k'},
        {"print-config", no_argument, NULL, 'p'}, {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
    };
    struct daemon d = {.config_path = "/etc/rolloutd/rolloutd.conf"};
    bool check_only = false;
    int c;
    while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            d.config_path = optarg;
            break;
        case 'k':
            check_only = true;
            break;
        case 'p':
            config_write_example(stdout);
            return EX_OK;
        case 'V':
            printf("rolloutd %s (schema %d)\n", ROLLOUT_VERSION, ROLLOUT_SCHEMA_VERSION);
            return EX_OK;
        case 'h':
            usage(stdout);
            return EX_OK;
        default:
            usage(stderr);
            return EX_USAGE;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return EX_USAGE;
    }
    char err[CONFIG_ERROR_MAX];
    if (!config_load(&d.cfg, d.config_path, err)) {
        fprintf(stderr, "rolloutd: %s\n", err);
        config_free(&d.cfg);
        return EX_CONFIG;
    }
    if (check_only) {
        config_free(&d.cfg);
        return EX_OK;
    }
    enum log_level lvl = LOG_LEVEL_INFO;
    log_level_parse(d.cfg.log_level, &lvl);
    log_init("rolloutd", lvl, d.cfg.log_syslog);
    signal(SIGPIPE, SIG_IGN);
    srandom((unsigned)time(NULL) ^ (unsigned)getpid());

    int rc = startup_schema_check(&d.cfg);
    if (rc == EX_OK)
        rc = run(&d);
    config_free(&d.cfg);
    return rc;
}

#include "metrics.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "version.h"

static const char *const route_names[ROUTE_COUNT] = {
    [ROUTE_EVENTS] = "events",
    [ROUTE_EMPLOYEE] = "employee",
    [ROUTE_EMPLOYEE_EVENTS] = "employee_events",
    [ROUTE_PROGRESS] = "progress",
    [ROUTE_PROGRESS_DAILY] = "progress_daily",
    [ROUTE_RESSORTS] = "ressorts",
    [ROUTE_STATUS] = "status",
    [ROUTE_METRICS] = "metrics",
    [ROUTE_HEALTHZ] = "healthz",
    [ROUTE_READYZ] = "readyz",
    [ROUTE_DASHBOARD] = "dashboard",
    [ROUTE_OTHER] = "other",
};

const char *route_name(enum route r)
{
    return route_names[r];
}

static const char *const event_results[] = {"created", "duplicate", "rejected", "invalid",
                                            "unavailable", "error"};
#define EVENT_RESULTS (sizeof event_results / sizeof event_results[0])

/* The status codes the API answers with; anything else counts as "other". */
static const int codes[] = {200, 201, 400, 401, 403, 404, 405, 409, 413, 415, 500, 503};
#define CODES (sizeof codes / sizeof codes[0])

static const double buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                 0.05,   0.1,   0.25,   0.5,   1,    2.5, 5, 10};
#define BUCKETS (sizeof buckets / sizeof buckets[0])

struct metrics {
    struct metrics_source src;
    double start_time;
    uint64_t events[EVENT_RESULTS];
    uint64_t groups, group_events;
    uint64_t reloads_ok, reloads_failed;
    uint64_t requests[ROUTE_COUNT][CODES + 1];
    uint64_t duration_buckets[ROUTE_COUNT][BUCKETS];
    uint64_t duration_count[ROUTE_COUNT];
    double duration_sum[ROUTE_COUNT];
};

enum metric_kind { GAUGE, COUNTER };

/* The table of scalar metrics: one place for name, help and where the value comes from. */
struct metric_def {
    const char *name;
    enum metric_kind kind;
    const char *help;
    double (*value)(const struct metrics *m);
};

static double v_queue(const struct metrics *m)
{
    return m->src.queue_depth(m->src.arg);
}
static double v_inflight(const struct metrics *m)
{
    return m->src.inflight(m->src.arg);
}
static double v_pool_size(const struct metrics *m)
{
    return m->src.pool_size(m->src.arg);
}
static double v_pool_ready(const struct metrics *m)
{
    return m->src.pool_ready(m->src.arg);
}
static double v_pool_busy(const struct metrics *m)
{
    return m->src.pool_busy(m->src.arg);
}
static double v_waiting(const struct metrics *m)
{
    return m->src.waiting_requests(m->src.arg);
}
static double v_groups(const struct metrics *m)
{
    return (double)m->groups;
}
static double v_group_events(const struct metrics *m)
{
    return (double)m->group_events;
}
static double v_start(const struct metrics *m)
{
    return m->start_time;
}
static double v_reloads(const struct metrics *m)
{
    return (double)m->reloads_ok;
}
static double v_reload_failures(const struct metrics *m)
{
    return (double)m->reloads_failed;
}

static const struct metric_def scalars[] = {
    {"rolloutd_queue_events", GAUGE, "Events waiting for a database connection.", v_queue},
    {"rolloutd_inflight_events", GAUGE, "Events in a group commit on a connection.", v_inflight},
    {"rolloutd_db_pool_connections", GAUGE, "Configured database connections.", v_pool_size},
    {"rolloutd_db_pool_ready_connections", GAUGE, "Database connections that are up.",
     v_pool_ready},
    {"rolloutd_db_pool_busy_connections", GAUGE, "Database connections running a job.",
     v_pool_busy},
    {"rolloutd_http_waiting_requests", GAUGE, "Requests waiting for the database.", v_waiting},
    {"rolloutd_group_commits_total", COUNTER, "Group commits sent to the database.", v_groups},
    {"rolloutd_group_commit_events_total", COUNTER, "Events sent in group commits.",
     v_group_events},
    {"rolloutd_config_reloads_total", COUNTER, "Successful SIGHUP reloads.", v_reloads},
    {"rolloutd_config_reload_failures_total", COUNTER, "SIGHUP reloads refused.",
     v_reload_failures},
    {"process_start_time_seconds", GAUGE, "Start time of the process since the Unix epoch.",
     v_start},
};

struct metrics *metrics_new(const struct metrics_source *src)
{
    struct metrics *m = calloc(1, sizeof *m);
    m->src = *src;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    m->start_time = (double)now.tv_sec + now.tv_nsec / 1e9;
    return m;
}

void metrics_free(struct metrics *m)
{
    free(m);
}

void metrics_count_event(struct metrics *m, const char *result)
{
    for (size_t i = 0; i < EVENT_RESULTS; i++)
        if (strcmp(result, event_results[i]) == 0)
            m->events[i]++;
}

void metrics_observe_group(struct metrics *m, int events)
{
    m->groups++;
    m->group_events += (uint64_t)events;
}

void metrics_observe_request(struct metrics *m, enum route route, int status, double seconds)
{
    size_t c = CODES;
    for (size_t i = 0; i < CODES; i++)
        if (codes[i] == status)
            c = i;
    m->requests[route][c]++;
    for (size_t b = 0; b < BUCKETS; b++)
        if (seconds <= buckets[b])
            m->duration_buckets[route][b]++;
    m->duration_count[route]++;
    m->duration_sum[route] += seconds;
}

void metrics_count_reload(struct metrics *m, int ok)
{
    if (ok)
        m->reloads_ok++;
    else
        m->reloads_failed++;
}

double metrics_value(const struct metrics *m, const char *name)
{
    for (size_t i = 0; i < sizeof scalars / sizeof scalars[0]; i++)
        if (strcmp(scalars[i].name, name) == 0)
            return scalars[i].value(m);
    return 0;
}

double metrics_start_time(const struct metrics *m)
{
    return m->start_time;
}

void metrics_render(const struct metrics *m, struct evbuffer *out)
{
    evbuffer_add_printf(out,
                        "# HELP rolloutd_build_info Version of rolloutd and the schema it needs.\n"
                        "# TYPE rolloutd_build_info gauge\n"
                        "rolloutd_build_info{version=\"%s\",schema_version=\"%d\"} 1\n",
                        ROLLOUT_VERSION, ROLLOUT_SCHEMA_VERSION);
    for (size_t i = 0; i < sizeof scalars / sizeof scalars[0]; i++) {
        const struct metric_def *d = &scalars[i];
        evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n%s %.17g\n", d->name, d->help,
                            d->name, d->kind == GAUGE ? "gauge" : "counter", d->name, d->value(m));
    }
    evbuffer_add_printf(out, "# HELP rolloutd_events_total Events posted, by outcome.\n"
                             "# TYPE rolloutd_events_total counter\n");
    for (size_t i = 0; i < EVENT_RESULTS; i++)
        evbuffer_add_printf(out, "rolloutd_events_total{result=\"%s\"} %llu\n", event_results[i],
                            (unsigned long long)m->events[i]);

    evbuffer_add_printf(out, "# HELP rolloutd_http_requests_total HTTP requests, by route and "
                             "status code.\n# TYPE rolloutd_http_requests_total counter\n");
    for (int r = 0; r < ROUTE_COUNT; r++) {
        for (size_t c = 0; c <= CODES; c++) {
            if (m->requests[r][c] == 0)
                continue;
            char code[8];
            if (c < CODES)
                snprintf(code, sizeof code, "%d", codes[c]);
            else
                snprintf(code, sizeof code, "other");
            evbuffer_add_printf(out, "rolloutd_http_requests_total{route=\"%s\",code=\"%s\"} %llu\n",
                                route_names[r], code, (unsigned long long)m->requests[r][c]);
        }
    }
    evbuffer_add_printf(out,
                        "# HELP rolloutd_http_request_duration_seconds Time from a request's "
                        "arrival to its answer.\n"
                        "# TYPE rolloutd_http_request_duration_seconds histogram\n");
    for (int r = 0; r < ROUTE_COUNT; r++) {
        if (m->duration_count[r] == 0)
            continue;
        for (size_t b = 0; b < BUCKETS; b++)
            evbuffer_add_printf(out,
                                "rolloutd_http_request_duration_seconds_bucket{route=\"%s\","
                                "le=\"%g\"} %llu\n",
                                route_names[r], buckets[b],
                                (unsigned long long)m->duration_buckets[r][b]);
        evbuffer_add_printf(out,
                            "rolloutd_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"}"
                            " %llu\n"
                            "rolloutd_http_request_duration_seconds_sum{route=\"%s\"} %.9g\n"
                            "rolloutd_http_request_duration_seconds_count{route=\"%s\"} %llu\n",
                            route_names[r], (unsigned long long)m->duration_count[r], route_names[r],
                            m->duration_sum[r], route_names[r],
                            (unsigned long long)m->duration_count[r]);
    }
}

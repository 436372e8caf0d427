/* The daemon's own counters and gauges. Every metric is declared once, in the table in
 * metrics.c (name, type, help, where its value comes from); /metrics renders that table and
 * /status reads the same values through metrics_value(). */
#ifndef ROLLOUT_METRICS_H
#define ROLLOUT_METRICS_H

#include <event2/buffer.h>
#include <stdint.h>

/* Routes, a bounded label set for request counts and durations. */
enum route {
    ROUTE_EVENTS,
    ROUTE_EMPLOYEE,
    ROUTE_EMPLOYEE_EVENTS,
    ROUTE_PROGRESS,
    ROUTE_PROGRESS_DAILY,
    ROUTE_RESSORTS,
    ROUTE_STATUS,
    ROUTE_METRICS,
    ROUTE_HEALTHZ,
    ROUTE_READYZ,
    ROUTE_DASHBOARD,
    ROUTE_OTHER,
    ROUTE_COUNT
};

const char *route_name(enum route r);

/* Values the metrics table reads from the rest of the daemon. */
struct metrics_source {
    int (*queue_depth)(void *arg);
    int (*inflight)(void *arg);
    int (*pool_size)(void *arg);
    int (*pool_ready)(void *arg);
    int (*pool_busy)(void *arg);
    int (*waiting_requests)(void *arg);
    void *arg;
};

struct metrics;

struct metrics *metrics_new(const struct metrics_source *src);
void metrics_free(struct metrics *m);

/* result: "created", "duplicate", "rejected", "unavailable", "error", "invalid" */
void metrics_count_event(struct metrics *m, const char *result);
void metrics_observe_group(struct metrics *m, int events);
void metrics_observe_request(struct metrics *m, enum route route, int status, double seconds);
void metrics_count_reload(struct metrics *m, int ok);

/* A metric's current value by name (0 when unknown), for /status. */
double metrics_value(const struct metrics *m, const char *name);
double metrics_start_time(const struct metrics *m);

/* Appends the daemon's own metrics in the Prometheus text format 0.0.4. */
void metrics_render(const struct metrics *m, struct evbuffer *out);

#endif

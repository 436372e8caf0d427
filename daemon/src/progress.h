/* The progress snapshot: counts per office, item and state, recent completions, targets and
 * the burn-up history, held in memory so that /status, /metrics and /v1/progress cost the same
 * whatever the number of events or employees.
 *
 * Three parts, each re-read by one pooled job:
 *  - the frame: Ressorts, Dienststellen, headcounts, targets (at start, on SIGHUP, every minute,
 *    and when a count names an office the frame does not know yet);
 *  - the counts: progress_counter summed over shards, the last 7 days of daily_done, the time
 *    of the newest event (after our own commits and after a NOTIFY from another instance, at
 *    most every progress.snapshot_refresh_ms);
 *  - the history: daily_done per Ressort for the burn-up chart (every 10 s when it changed). */
#ifndef ROLLOUT_PROGRESS_H
#define ROLLOUT_PROGRESS_H

#include <event2/buffer.h>
#include <event2/event.h>
#include <jansson.h>
#include <stdbool.h>

#include "config.h"
#include "db_pool.h"

struct progress;

/* A scope of the figures: overall, one Ressort or one Dienststelle. */
struct progress_scope {
    int ressort;      /* index, or -1 */
    int dienststelle; /* index, or -1 */
};

struct progress_item_figures {
    long long counts[STATE_COUNT];
    long long done;
    long long target;
    const char *target_source; /* "overall", "ressort", "pro_rata" */
    char deadline[11];
    double ratio;
    long long rate_7d;
    bool has_forecast;
    char forecast[11];
    bool on_track;
};

struct progress *progress_new(struct event_base *base, struct db_pool *pool,
                              const struct rollout_config *cfg);
void progress_start(struct progress *ps);
/* Another instance's NOTIFY: re-read the counts soon. */
void progress_changed(struct progress *ps);
/* Our own commit: re-read the counts soon, and NOTIFY the other instances with that read. */
void progress_committed(struct progress *ps);
/* Commits of ours that the other instances have not been told of yet (shutdown waits). */
bool progress_notify_pending(const struct progress *ps);
/* SIGHUP: re-read the frame (targets) and take the new configuration's defaults. */
void progress_reload(struct progress *ps, const struct rollout_config *cfg);
bool progress_ready(const struct progress *ps);

/* Looks a scope up by code; false when unknown. NULL codes mean "not narrowed". */
bool progress_find_scope(const struct progress *ps, const char *ressort, const char *dienststelle,
                         struct progress_scope *out, const char **unknown_what);
void progress_figures(const struct progress *ps, struct progress_scope scope, enum item item,
                      struct progress_item_figures *out);

/* The bodies of GET /v1/progress, /v1/progress/daily and /v1/ressorts (new references). */
json_t *progress_json(const struct progress *ps, struct progress_scope scope);
json_t *progress_daily_json(const struct progress *ps, struct progress_scope scope);
json_t *progress_ressorts_json(const struct progress *ps);

/* Changes whenever the figures change (for caches of rendered answers). */
unsigned progress_version(const struct progress *ps);
/* Seconds since the epoch of the newest event's arrival, 0 when none. */
double progress_last_event(const struct progress *ps);
/* The progress gauges in the Prometheus text format. */
void progress_render_metrics(const struct progress *ps, struct evbuffer *out);
void progress_free(struct progress *ps);

#endif

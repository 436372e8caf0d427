#include "progress.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

#define FRAME_REFRESH_S 60
#define HISTORY_REFRESH_S 10

struct target {
    bool set;
    long long target;
    char deadline[11];
};

struct ressort {
    char code[40];
    char *name;
    long long headcount;
    struct target own[ITEM_COUNT];
    long long counts[ITEM_COUNT][STATE_COUNT];
    long long recent[ITEM_COUNT];
    /* burn-up: per item, (day, cumulative done) after each day that changed it */
    int *days[ITEM_COUNT];
    long long *cum[ITEM_COUNT];
    int ndays[ITEM_COUNT];
};

struct office {
    char code[40];
    int ressort;
    long long headcount;
    long long counts[ITEM_COUNT][STATE_COUNT];
    long long recent[ITEM_COUNT];
};

/* The frame: what changes only with imports and targets. */
struct frame {
    struct ressort *ressorts;
    int nressorts;
    struct office *offices; /* sorted by code */
    int noffices;
    long long headcount;
    struct target overall[ITEM_COUNT];
};

/* Counts are read into these, then swapped in. */
struct counts_buf {
    long long (*office_counts)[ITEM_COUNT][STATE_COUNT];
    long long (*office_recent)[ITEM_COUNT];
    int today;
    double last_event;
    bool unknown_office;
    unsigned frame_gen; /* the frame the office indexes refer to */
};

struct progress {
    struct event_base *base;
    struct db_pool *pool;
    struct target defaults[ITEM_COUNT]; /* from the configuration */
    int refresh_ms;

    struct frame frame;
    bool frame_loaded;
    bool counts_loaded;
    long long overall_counts[ITEM_COUNT][STATE_COUNT];
    long long overall_recent[ITEM_COUNT];
    int today; /* days since the epoch, Europe/Berlin, from the database */
    double last_event;
    int *odays[ITEM_COUNT]; /* overall burn-up */
    long long *ocum[ITEM_COUNT];
    int ondays[ITEM_COUNT];

    /* jobs: one of each kind at a time */
    struct db_job frame_job, counts_job, history_job;
    bool frame_busy, counts_busy, history_busy;
    bool counts_dirty, history_dirty, frame_dirty;
    bool notify_pending;  /* our commits since the last NOTIFY to the other instances */
    bool counts_notifies; /* the running counts job carries that NOTIFY */
    int result_no; /* which statement's result of the running job */
    struct frame next_frame;
    struct event *counts_timer, *frame_timer, *history_timer;
    bool counts_timer_armed;
    struct timespec counts_started;
    int counts_last_ms; /* how long the last counts read took */
    struct counts_buf cbuf;
    unsigned frame_gen; /* bumped whenever a new frame is swapped in */
    unsigned version;   /* bumped whenever any figure may have changed */
};

/* ---- dates ---------------------------------------------------------------------------- */

static int days_from_civil(int y, int m, int d)
{
    y -= m <= 2;
    const int era = (y >= 0 ? y : y - 399) / 400;
    const int yoe = y - era * 400;
    const int doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int z, char out[11])
{
    z += 719468;
    const int era = (z >= 0 ? z : z - 146096) / 146097;
    const int doe = z - era * 146097;
    const int yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int y = yoe + era * 400;
    const int doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const int mp = (5 * doy + 2) / 153;
    const int d = doy - (153 * mp + 2) / 5 + 1;
    const int m = mp + (mp < 10 ? 3 : -9);
    y += m <= 2;
    snprintf(out, 11, "%04d-%02d-%02d", (y % 10000 + 10000) % 10000, (m % 13 + 13) % 13,
             (d % 32 + 32) % 32);
}

static int parse_day(const char *s)
{
    int y, m, d;
    if (sscanf(s, "%d-%d-%d", &y, &m, &d) != 3)
        return 0;
    return days_from_civil(y, m, d);
}

/* ---- the frame ------------------------------------------------------------------------ */

static void frame_free(struct frame *f)
{
    for (int r = 0; r < f->nressorts; r++) {
        free(f->ressorts[r].name);
        for (int i = 0; i < ITEM_COUNT; i++) {
            free(f->ressorts[r].days[i]);
            free(f->ressorts[r].cum[i]);
        }
    }
    free(f->ressorts);
    free(f->offices);
    memset(f, 0, sizeof *f);
}

static int find_ressort(const struct frame *f, const char *code)
{
    for (int r = 0; r < f->nressorts; r++)
        if (strcmp(f->ressorts[r].code, code) == 0)
            return r;
    return -1;
}

static int cmp_office(const void *key, const void *elem)
{
    return strcmp(key, ((const struct office *)elem)->code);
}

static int find_office(const struct frame *f, const char *code)
{
    if (f->noffices == 0) /* the first frame has nothing to search (and no array) */
        return -1;
    const struct office *o = bsearch(code, f->offices, (size_t)f->noffices, sizeof *f->offices,
                                     cmp_office);
    return o ? (int)(o - f->offices) : -1;
}

static const char *const frame_sql[] = {
    "SELECT code, name FROM ressort ORDER BY code",
    "SELECT d.code, d.ressort, coalesce(h.headcount, 0) FROM dienststelle d "
    "LEFT JOIN dienststelle_headcount h ON h.dienststelle = d.code ORDER BY d.code COLLATE \"C\"",
    "SELECT item, ressort, target, deadline::text FROM target",
};

static bool frame_send(struct db_job *job, PGconn *conn)
{
    struct progress *ps = job->arg;
    ps->result_no = 0;
    frame_free(&ps->next_frame);
    for (size_t i = 0; i < sizeof frame_sql / sizeof frame_sql[0]; i++)
        if (PQsendQueryParams(conn, frame_sql[i], 0, NULL, NULL, NULL, NULL, 0) != 1)
            return false;
    return true;
}

static void frame_result(struct db_job *job, const PGresult *res)
{
    struct progress *ps = job->arg;
    struct frame *f = &ps->next_frame;
    int n = PQntuples(res);
    switch (ps->result_no++) {
    case 0:
        f->ressorts = calloc((size_t)n + 1, sizeof *f->ressorts);
        f->nressorts = n;
        for (int r = 0; r < n; r++) {
            snprintf(f->ressorts[r].code, sizeof f->ressorts[r].code, "%s", PQgetvalue(res, r, 0));
            f->ressorts[r].name = strdup(PQgetvalue(res, r, 1));
        }
        break;
    case 1:
        f->offices = calloc((size_t)n + 1, sizeof *f->offices);
        f->noffices = n;
        for (int r = 0; r < n; r++) {
            struct office *o = &f->offices[r];
            snprintf(o->code, sizeof o->code, "%s", PQgetvalue(res, r, 0));
            o->ressort = find_ressort(f, PQgetvalue(res, r, 1));
            o->headcount = atoll(PQgetvalue(res, r, 2));
            f->headcount += o->headcount;
            if (o->ressort >= 0)
                f->ressorts[o->ressort].headcount += o->headcount;
        }
        break;
    case 2:
        for (int r = 0; r < n; r++) {
            enum item item;
            if (!item_parse(PQgetvalue(res, r, 0), &item))
                continue;
            struct target t = {.set = true, .target = atoll(PQgetvalue(res, r, 2))};
            snprintf(t.deadline, sizeof t.deadline, "%s", PQgetvalue(res, r, 3));
            if (PQgetisnull(res, r, 1)) {
                f->overall[item] = t;
            } else {
                int rs = find_ressort(f, PQgetvalue(res, r, 1));
                if (rs >= 0)
                    f->ressorts[rs].own[item] = t;
            }
        }
        break;
    default:
        break;
    }
}

static void schedule_counts(struct progress *ps);
static void schedule_history(struct progress *ps);
static void frame_load(struct progress *ps);

/* A new frame (an import, new targets) keeps serving the figures we have, matched by code,
 * until the counts are read against it: readers never see a gap. */
static void carry_over(struct frame *old, struct frame *fresh)
{
    for (int o = 0; o < fresh->noffices; o++) {
        struct office *nf = &fresh->offices[o];
        int k = find_office(old, nf->code);
        if (k < 0)
            continue;
        memcpy(nf->counts, old->offices[k].counts, sizeof nf->counts);
        memcpy(nf->recent, old->offices[k].recent, sizeof nf->recent);
        if (nf->ressort < 0)
            continue;
        struct ressort *r = &fresh->ressorts[nf->ressort];
        for (int i = 0; i < ITEM_COUNT; i++) {
            for (int st = 0; st < STATE_COUNT; st++)
                r->counts[i][st] += nf->counts[i][st];
            r->recent[i] += nf->recent[i];
        }
    }
    for (int r = 0; r < fresh->nressorts; r++) {
        int k = find_ressort(old, fresh->ressorts[r].code);
        if (k < 0)
            continue;
        for (int i = 0; i < ITEM_COUNT; i++) { /* the burn-up series move over */
            fresh->ressorts[r].days[i] = old->ressorts[k].days[i];
            fresh->ressorts[r].cum[i] = old->ressorts[k].cum[i];
            fresh->ressorts[r].ndays[i] = old->ressorts[k].ndays[i];
            old->ressorts[k].days[i] = NULL;
            old->ressorts[k].cum[i] = NULL;
            old->ressorts[k].ndays[i] = 0;
        }
    }
}

static void frame_done(struct db_job *job, enum db_job_outcome outcome, const char *error)
{
    struct progress *ps = job->arg;
    ps->frame_busy = false;
    if (outcome != DB_JOB_OK || ps->result_no != 3) {
        if (outcome == DB_JOB_FAILED)
            log_error("cannot read the progress frame: %s", error ? error : "");
        frame_free(&ps->next_frame);
        if (ps->frame_dirty && outcome != DB_JOB_LOST)
            frame_load(ps);
        return;
    }
    carry_over(&ps->frame, &ps->next_frame);
    frame_free(&ps->frame);
    ps->frame = ps->next_frame;
    memset(&ps->next_frame, 0, sizeof ps->next_frame);
    ps->frame_loaded = true;
    ps->frame_gen++; /* indexes changed: a counts read in flight is stale */
    ps->version++;
    ps->counts_dirty = true;
    ps->history_dirty = true;
    schedule_counts(ps);
    schedule_history(ps);
    if (ps->frame_dirty) /* changed while we read: once more, now that this read is done */
        frame_load(ps);
}

static void frame_load(struct progress *ps)
{
    if (ps->frame_busy) {
        ps->frame_dirty = true; /* the read in flight may predate the change: read again */
        return;
    }
    ps->frame_dirty = false;
    ps->frame_job = (struct db_job){.name = "progress_frame",
                                    .send = frame_send,
                                    .on_result = frame_result,
                                    .on_done = frame_done,
                                    .arg = ps};
    if (db_pool_submit(ps->pool, &ps->frame_job))
        ps->frame_busy = true;
}

/* ---- the counts ----------------------------------------------------------------------- */

_Static_assert(STATE_COUNT - STATE_FIRST_REAL == 6, "the counts read six state columns");

static const char *const counts_sql[] = {
    /* progress_count itself, its state columns in the order of enum rollout_state from
     * STATE_FIRST_REAL: not the view progress_counter, whose row per state made this read take
     * 25-30 ms instead of 2 at 800 offices */
    "SELECT dienststelle, item, sum(planned)::bigint, sum(ordered)::bigint, "
    "sum(delivered)::bigint, sum(active)::bigint, sum(returned)::bigint, sum(cancelled)::bigint "
    "FROM progress_count GROUP BY 1, 2",
    "SELECT dienststelle, item, sum(n)::bigint FROM daily_done "
    "WHERE day > (now() AT TIME ZONE 'Europe/Berlin')::date - 7 GROUP BY 1, 2",
    "SELECT (now() AT TIME ZONE 'Europe/Berlin')::date::text, "
    "coalesce(extract(epoch FROM (SELECT max(received_at) FROM event)), 0)",
};


static bool counts_send(struct db_job *job, PGconn *conn)
{
    struct progress *ps = job->arg;
    struct counts_buf *cb = &ps->cbuf;
    ps->result_no = 0;
    cb->frame_gen = ps->frame_gen;
    free(cb->office_counts);
    free(cb->office_recent);
    size_t n = (size_t)ps->frame.noffices + 1;
    cb->office_counts = calloc(n, sizeof *cb->office_counts);
    cb->office_recent = calloc(n, sizeof *cb->office_recent);
    cb->unknown_office = false;
    for (size_t i = 0; i < sizeof counts_sql / sizeof counts_sql[0]; i++)
        if (PQsendQueryParams(conn, counts_sql[i], 0, NULL, NULL, NULL, NULL, 0) != 1)
            return false;
    /* Tells every instance (this one too) that counts changed: one NOTIFY per read, not one
     * per group commit. A transaction that notifies holds PostgreSQL's notify lock until its
     * commit is flushed, so a NOTIFY in each group commit made the pool's commits wait for one
     * another. This read commits nothing, so the lock is held only for a moment. */
    ps->counts_notifies = ps->notify_pending;
    ps->notify_pending = false;
    if (ps->counts_notifies &&
        PQsendQueryParams(conn, "SELECT pg_notify('rollout_progress', '')", 0, NULL, NULL, NULL,
                          NULL, 0) != 1)
        return false;
    return true;
}

static void counts_result(struct db_job *job, const PGresult *res)
{
    struct progress *ps = job->arg;
    struct counts_buf *cb = &ps->cbuf;
    int n = PQntuples(res);
    if (cb->frame_gen != ps->frame_gen) { /* the frame changed under us: indexes are stale */
        ps->result_no++;
        return;
    }
    switch (ps->result_no++) {
    case 0:
        for (int r = 0; r < n; r++) {
            int o = find_office(&ps->frame, PQgetvalue(res, r, 0));
            enum item item;
            if (o < 0) {
                cb->unknown_office = true;
                continue;
            }
            if (!item_parse(PQgetvalue(res, r, 1), &item))
                continue;
            for (int st = STATE_FIRST_REAL; st < STATE_COUNT; st++)
                cb->office_counts[o][item][st] =
                    atoll(PQgetvalue(res, r, 2 + st - STATE_FIRST_REAL));
        }
        break;
    case 1:
        for (int r = 0; r < n; r++) {
            int o = find_office(&ps->frame, PQgetvalue(res, r, 0));
            enum item item;
            if (o >= 0 && item_parse(PQgetvalue(res, r, 1), &item))
                cb->office_recent[o][item] = atoll(PQgetvalue(res, r, 2));
        }
        break;
    case 2:
        if (n == 1) {
            cb->today = parse_day(PQgetvalue(res, 0, 0));
            cb->last_event = atof(PQgetvalue(res, 0, 1));
        }
        break;
    default:
        break;
    }
}

static void counts_done(struct db_job *job, enum db_job_outcome outcome, const char *error)
{
    struct progress *ps = job->arg;
    struct counts_buf *cb = &ps->cbuf;
    ps->counts_busy = false;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    ps->counts_last_ms = (int)((now.tv_sec - ps->counts_started.tv_sec) * 1000 +
                               (now.tv_nsec - ps->counts_started.tv_nsec) / 1000000);
    bool complete = outcome == DB_JOB_OK && ps->result_no == 3 + (ps->counts_notifies ? 1 : 0);
    if (!complete)
        ps->notify_pending |= ps->counts_notifies; /* not sent: with the next read */
    if (!complete || cb->frame_gen != ps->frame_gen) {
        if (outcome == DB_JOB_FAILED)
            log_error("cannot read the progress counts: %s", error ? error : "");
        ps->counts_dirty = true;
        if (outcome != DB_JOB_LOST)
            schedule_counts(ps);
        return;
    }
    struct frame *f = &ps->frame;
    memset(ps->overall_counts, 0, sizeof ps->overall_counts);
    memset(ps->overall_recent, 0, sizeof ps->overall_recent);
    for (int r = 0; r < f->nressorts; r++) {
        memset(f->ressorts[r].counts, 0, sizeof f->ressorts[r].counts);
        memset(f->ressorts[r].recent, 0, sizeof f->ressorts[r].recent);
    }
    for (int o = 0; o < f->noffices; o++) {
        struct office *of = &f->offices[o];
        memcpy(of->counts, cb->office_counts[o], sizeof of->counts);
        memcpy(of->recent, cb->office_recent[o], sizeof of->recent);
        for (int i = 0; i < ITEM_COUNT; i++) {
            for (int s = 0; s < STATE_COUNT; s++) {
                ps->overall_counts[i][s] += of->counts[i][s];
                if (of->ressort >= 0)
                    f->ressorts[of->ressort].counts[i][s] += of->counts[i][s];
            }
            ps->overall_recent[i] += of->recent[i];
            if (of->ressort >= 0)
                f->ressorts[of->ressort].recent[i] += of->recent[i];
        }
    }
    ps->today = cb->today;
    ps->last_event = cb->last_event;
    ps->counts_loaded = true;
    ps->version++;
    if (cb->unknown_office)
        frame_load(ps); /* an office imported after our frame was read */
    if (ps->counts_dirty)
        schedule_counts(ps);
}

static void counts_load(struct progress *ps)
{
    if (ps->counts_busy || !ps->frame_loaded)
        return;
    ps->counts_dirty = false;
    ps->counts_job = (struct db_job){.name = "progress_counts",
                                     .send = counts_send,
                                     .on_result = counts_result,
                                     .on_done = counts_done,
                                     .arg = ps};
    if (db_pool_submit(ps->pool, &ps->counts_job)) {
        ps->counts_busy = true;
        clock_gettime(CLOCK_MONOTONIC, &ps->counts_started);
    } else {
        ps->counts_dirty = true;
    }
}

static void counts_tick(evutil_socket_t fd, short what, void *arg)
{
    struct progress *ps = arg;
    ps->counts_timer_armed = false;
    if (ps->counts_dirty)
        counts_load(ps);
}

/* At most one read per refresh interval: a burst of commits costs one query. And never more
 * than a quarter of one connection's time: when a read gets slow (a large or bloated counter
 * table), the interval stretches to four times its duration. */
static void schedule_counts(struct progress *ps)
{
    if (ps->counts_timer_armed)
        return;
    ps->counts_timer_armed = true;
    int ms = ps->refresh_ms;
    if (ms < 4 * ps->counts_last_ms)
        ms = 4 * ps->counts_last_ms;
    struct timeval tv = {ms / 1000, (suseconds_t)(ms % 1000) * 1000};
    evtimer_add(ps->counts_timer, &tv);
}

/* ---- the burn-up history --------------------------------------------------------------- */

static bool history_send(struct db_job *job, PGconn *conn)
{
    return PQsendQueryParams(conn,
                             "SELECT (dd.day - DATE '1970-01-01'), d.ressort, dd.item, "
                             "sum(dd.n)::bigint FROM daily_done dd "
                             "JOIN dienststelle d ON d.code = dd.dienststelle "
                             "GROUP BY 1, 2, 3 HAVING sum(dd.n) <> 0 ORDER BY 1",
                             0, NULL, NULL, NULL, NULL, 0) == 1;
}

static void series_append(int **days, long long **cum, int *n, int day, long long delta)
{
    if (*n > 0 && (*days)[*n - 1] == day) {
        (*cum)[*n - 1] += delta;
        return;
    }
    *days = realloc(*days, (size_t)(*n + 1) * sizeof **days);
    *cum = realloc(*cum, (size_t)(*n + 1) * sizeof **cum);
    (*days)[*n] = day;
    (*cum)[*n] = (*n > 0 ? (*cum)[*n - 1] : 0) + delta;
    (*n)++;
}

static void history_result(struct db_job *job, const PGresult *res)
{
    struct progress *ps = job->arg;
    struct frame *f = &ps->frame;
    for (int i = 0; i < ITEM_COUNT; i++) {
        free(ps->odays[i]);
        free(ps->ocum[i]);
        ps->odays[i] = NULL;
        ps->ocum[i] = NULL;
        ps->ondays[i] = 0;
        for (int r = 0; r < f->nressorts; r++) {
            free(f->ressorts[r].days[i]);
            free(f->ressorts[r].cum[i]);
            f->ressorts[r].days[i] = NULL;
            f->ressorts[r].cum[i] = NULL;
            f->ressorts[r].ndays[i] = 0;
        }
    }
    for (int row = 0; row < PQntuples(res); row++) {
        int day = atoi(PQgetvalue(res, row, 0));
        int r = find_ressort(f, PQgetvalue(res, row, 1));
        enum item item;
        if (!item_parse(PQgetvalue(res, row, 2), &item))
            continue;
        long long n = atoll(PQgetvalue(res, row, 3));
        series_append(&ps->odays[item], &ps->ocum[item], &ps->ondays[item], day, n);
        if (r >= 0)
            series_append(&f->ressorts[r].days[item], &f->ressorts[r].cum[item],
                          &f->ressorts[r].ndays[item], day, n);
    }
}

static void history_done(struct db_job *job, enum db_job_outcome outcome, const char *error)
{
    struct progress *ps = job->arg;
    ps->history_busy = false;
    if (outcome == DB_JOB_FAILED)
        log_error("cannot read the progress history: %s", error ? error : "");
    if (outcome != DB_JOB_OK)
        ps->history_dirty = true;
}

static void history_tick(evutil_socket_t fd, short what, void *arg)
{
    struct progress *ps = arg;
    if (ps->history_dirty && !ps->history_busy && ps->frame_loaded) {
        ps->history_dirty = false;
        ps->history_job = (struct db_job){.name = "progress_history",
                                          .send = history_send,
                                          .on_result = history_result,
                                          .on_done = history_done,
                                          .arg = ps};
        if (db_pool_submit(ps->pool, &ps->history_job))
            ps->history_busy = true;
        else
            ps->history_dirty = true;
    }
    struct timeval tv = {HISTORY_REFRESH_S, 0};
    evtimer_add(ps->history_timer, &tv);
}

static void schedule_history(struct progress *ps)
{
    ps->history_dirty = true;
    if (!ps->history_busy && ps->frame_loaded)
        history_tick(-1, 0, ps);
}

static void frame_tick(evutil_socket_t fd, short what, void *arg)
{
    struct progress *ps = arg;
    frame_load(ps);
    struct timeval tv = {FRAME_REFRESH_S, 0};
    evtimer_add(ps->frame_timer, &tv);
}

/* ---- public --------------------------------------------------------------------------- */

static void take_defaults(struct progress *ps, const struct rollout_config *cfg)
{
    for (int i = 0; i < ITEM_COUNT; i++) {
        ps->defaults[i].set = cfg->targets[i].set;
        ps->defaults[i].target = cfg->targets[i].target;
        memcpy(ps->defaults[i].deadline, cfg->targets[i].deadline, 11);
    }
    ps->refresh_ms = cfg->snapshot_refresh_ms;
}

struct progress *progress_new(struct event_base *base, struct db_pool *pool,
                              const struct rollout_config *cfg)
{
    struct progress *ps = calloc(1, sizeof *ps);
    ps->base = base;
    ps->pool = pool;
    take_defaults(ps, cfg);
    ps->counts_timer = evtimer_new(base, counts_tick, ps);
    ps->frame_timer = evtimer_new(base, frame_tick, ps);
    ps->history_timer = evtimer_new(base, history_tick, ps);
    return ps;
}

void progress_start(struct progress *ps)
{
    frame_tick(-1, 0, ps);
}

bool progress_notify_pending(const struct progress *ps)
{
    return ps->notify_pending || (ps->counts_busy && ps->counts_notifies);
}

void progress_committed(struct progress *ps)
{
    ps->notify_pending = true;
    progress_changed(ps);
}

void progress_changed(struct progress *ps)
{
    ps->counts_dirty = true;
    ps->history_dirty = true;
    schedule_counts(ps);
}

void progress_reload(struct progress *ps, const struct rollout_config *cfg)
{
    take_defaults(ps, cfg);
    frame_load(ps);
}

bool progress_ready(const struct progress *ps)
{
    return ps->frame_loaded && ps->counts_loaded;
}

bool progress_find_scope(const struct progress *ps, const char *ressort, const char *dienststelle,
                         struct progress_scope *out, const char **unknown_what)
{
    out->ressort = -1;
    out->dienststelle = -1;
    if (ressort) {
        out->ressort = find_ressort(&ps->frame, ressort);
        if (out->ressort < 0) {
            *unknown_what = "ressort";
            return false;
        }
    }
    if (dienststelle) {
        out->dienststelle = find_office(&ps->frame, dienststelle);
        if (out->dienststelle < 0 ||
            (out->ressort >= 0 && ps->frame.offices[out->dienststelle].ressort != out->ressort)) {
            *unknown_what = "dienststelle";
            return false;
        }
        out->ressort = ps->frame.offices[out->dienststelle].ressort;
    }
    return true;
}

static struct target overall_target(const struct progress *ps, enum item item)
{
    if (ps->frame.overall[item].set)
        return ps->frame.overall[item];
    return ps->defaults[item];
}

void progress_figures(const struct progress *ps, struct progress_scope scope, enum item item,
                      struct progress_item_figures *out)
{
    memset(out, 0, sizeof *out);
    const struct frame *f = &ps->frame;
    const long long *counts = ps->overall_counts[item];
    long long recent = ps->overall_recent[item];
    struct target t = overall_target(ps, item);
    out->target_source = "overall";
    long long target = t.target;
    if (scope.ressort >= 0) {
        const struct ressort *r = &f->ressorts[scope.ressort];
        if (r->own[item].set) {
            t = r->own[item];
            target = t.target;
            out->target_source = "ressort";
        } else {
            target = f->headcount > 0 ? llround((double)t.target * (double)r->headcount /
                                               (double)f->headcount)
                                      : 0;
            out->target_source = "pro_rata";
        }
        counts = r->counts[item];
        recent = r->recent[item];
        if (scope.dienststelle >= 0) {
            const struct office *o = &f->offices[scope.dienststelle];
            target = r->headcount > 0 ? llround((double)target * (double)o->headcount /
                                                (double)r->headcount)
                                      : 0;
            out->target_source = "pro_rata";
            counts = o->counts[item];
            recent = o->recent[item];
        }
    }
    memcpy(out->counts, counts, sizeof out->counts);
    memcpy(out->deadline, t.deadline, sizeof out->deadline);
    out->target = target;
    out->done = counts[STATE_ACTIVE];
    out->ratio = target > 0 ? round((double)out->done / (double)target * 10000.0) / 10000.0 : 0;
    out->rate_7d = recent;
    int deadline = t.deadline[0] ? parse_day(t.deadline) : 0;
    if (target > 0 && out->done >= target) {
        out->has_forecast = true;
        civil_from_days(ps->today, out->forecast);
        out->on_track = true;
    } else if (recent > 0 && target > 0) {
        double per_day = (double)recent / 7.0;
        double days = ceil((double)(target - out->done) / per_day);
        if (days < 365.0 * 200) {
            int when = ps->today + (int)days;
            out->has_forecast = true;
            civil_from_days(when, out->forecast);
            out->on_track = deadline == 0 || when <= deadline;
        }
    }
}

static json_t *scope_json(const struct progress *ps, struct progress_scope scope)
{
    const struct frame *f = &ps->frame;
    return json_pack("{s:o, s:o}", "ressort",
                     scope.ressort >= 0 ? json_string(f->ressorts[scope.ressort].code)
                                        : json_null(),
                     "dienststelle",
                     scope.dienststelle >= 0 ? json_string(f->offices[scope.dienststelle].code)
                                             : json_null());
}

static json_t *now_json(void)
{
    char buf[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return json_string(buf);
}

json_t *progress_json(const struct progress *ps, struct progress_scope scope)
{
    json_t *items = json_array();
    for (int i = 0; i < ITEM_COUNT; i++) {
        struct progress_item_figures fg;
        progress_figures(ps, scope, (enum item)i, &fg);
        json_t *counts = json_object();
        for (int s = STATE_FIRST_REAL; s < STATE_COUNT; s++)
            json_object_set_new(counts, state_name((enum rollout_state)s),
                                json_integer(fg.counts[s]));
        const struct item_info *info = item_info((enum item)i);
        json_array_append_new(
            items, json_pack("{s:s, s:s, s:s, s:I, s:s, s:o, s:o, s:I, s:f, s:I, s:o, s:b}",
                             "item", info->key, "title", info->title, "recommendation",
                             info->recommendation, "target", (json_int_t)fg.target,
                             "target_source", fg.target_source, "deadline",
                             fg.deadline[0] ? json_string(fg.deadline) : json_null(), "counts",
                             counts, "done", (json_int_t)fg.done, "ratio", fg.ratio, "rate_7d",
                             (json_int_t)fg.rate_7d, "forecast",
                             fg.has_forecast ? json_string(fg.forecast) : json_null(),
                             "on_track", fg.on_track));
    }
    return json_pack("{s:o, s:o, s:o}", "scope", scope_json(ps, scope), "generated_at",
                     now_json(), "items", items);
}

json_t *progress_daily_json(const struct progress *ps, struct progress_scope scope)
{
    json_t *items = json_array();
    for (int i = 0; i < ITEM_COUNT; i++) {
        struct progress_item_figures fg;
        progress_figures(ps, scope, (enum item)i, &fg);
        int n = ps->ondays[i];
        const int *days = ps->odays[i];
        const long long *cum = ps->ocum[i];
        if (scope.ressort >= 0) {
            const struct ressort *r = &ps->frame.ressorts[scope.ressort];
            n = r->ndays[i];
            days = r->days[i];
            cum = r->cum[i];
        }
        json_t *series = json_array();
        for (int k = 0; k < n; k++) {
            char day[11];
            civil_from_days(days[k], day);
            json_array_append_new(series, json_pack("[s, I]", day, (json_int_t)cum[k]));
        }
        json_array_append_new(items, json_pack("{s:s, s:I, s:o, s:o}", "item",
                                               item_info((enum item)i)->key, "target",
                                               (json_int_t)fg.target, "deadline",
                                               fg.deadline[0] ? json_string(fg.deadline)
                                                              : json_null(),
                                               "days", series));
    }
    return json_pack("{s:o, s:o, s:o}", "scope", scope_json(ps, scope), "generated_at",
                     now_json(), "items", items);
}

json_t *progress_ressorts_json(const struct progress *ps)
{
    json_t *arr = json_array();
    for (int r = 0; r < ps->frame.nressorts; r++) {
        const struct ressort *rs = &ps->frame.ressorts[r];
        json_array_append_new(arr, json_pack("{s:s, s:s, s:I}", "ressort", rs->code, "name",
                                             rs->name, "headcount", (json_int_t)rs->headcount));
    }
    return json_pack("{s:o}", "ressorts", arr);
}

unsigned progress_version(const struct progress *ps)
{
    return ps->version;
}

double progress_last_event(const struct progress *ps)
{
    return ps->last_event;
}

void progress_render_metrics(const struct progress *ps, struct evbuffer *out)
{
    struct progress_scope all = {-1, -1};
    evbuffer_add_printf(out, "# HELP rolloutd_rollout_employees Employees per item and current "
                             "state.\n# TYPE rolloutd_rollout_employees gauge\n");
    for (int i = 0; i < ITEM_COUNT; i++)
        for (int s = STATE_FIRST_REAL; s < STATE_COUNT; s++)
            evbuffer_add_printf(out, "rolloutd_rollout_employees{item=\"%s\",state=\"%s\"} %lld\n",
                                item_info((enum item)i)->key, state_name((enum rollout_state)s),
                                ps->overall_counts[i][s]);
    evbuffer_add_printf(out, "# HELP rolloutd_rollout_ressort_employees Employees per Ressort, "
                             "item and current state.\n"
                             "# TYPE rolloutd_rollout_ressort_employees gauge\n");
    for (int r = 0; r < ps->frame.nressorts; r++)
        for (int i = 0; i < ITEM_COUNT; i++)
            for (int s = STATE_FIRST_REAL; s < STATE_COUNT; s++)
                evbuffer_add_printf(
                    out, "rolloutd_rollout_ressort_employees{ressort=\"%s\",item=\"%s\",state=\"%s\"} %lld\n",
                    ps->frame.ressorts[r].code, item_info((enum item)i)->key,
                    state_name((enum rollout_state)s), ps->frame.ressorts[r].counts[i][s]);

    static const struct {
        const char *name, *help;
    } per_item[] = {
        {"rolloutd_rollout_target", "Target count per item (overall)."},
        {"rolloutd_rollout_done", "Employees with the item active (overall)."},
        {"rolloutd_rollout_ratio", "Done divided by target (overall)."},
        {"rolloutd_rollout_completions_7d", "Net completions in the last 7 days (overall)."},
        {"rolloutd_rollout_deadline_timestamp_seconds", "Deadline of the item's target."},
        {"rolloutd_rollout_on_track", "1 when the forecast meets the deadline."},
    };
    for (size_t k = 0; k < sizeof per_item / sizeof per_item[0]; k++) {
        evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s gauge\n", per_item[k].name,
                            per_item[k].help, per_item[k].name);
        for (int i = 0; i < ITEM_COUNT; i++) {
            struct progress_item_figures fg;
            progress_figures(ps, all, (enum item)i, &fg);
            double v = 0;
            switch (k) {
            case 0: v = (double)fg.target; break;
            case 1: v = (double)fg.done; break;
            case 2: v = fg.ratio; break;
            case 3: v = (double)fg.rate_7d; break;
            case 4: v = fg.deadline[0] ? parse_day(fg.deadline) * 86400.0 : 0; break;
            case 5: v = fg.on_track; break;
            }
            evbuffer_add_printf(out, "%s{item=\"%s\"} %.17g\n", per_item[k].name,
                                item_info((enum item)i)->key, v);
        }
    }
    evbuffer_add_printf(out, "# HELP rolloutd_last_event_timestamp_seconds Arrival time of the "
                             "newest stored event.\n"
                             "# TYPE rolloutd_last_event_timestamp_seconds gauge\n"
                             "rolloutd_last_event_timestamp_seconds %.17g\n",
                        ps->last_event);
}

void progress_free(struct progress *ps)
{
    if (ps == NULL)
        return;
    event_free(ps->counts_timer);
    event_free(ps->frame_timer);
    event_free(ps->history_timer);
    frame_free(&ps->frame);
    frame_free(&ps->next_frame);
    for (int i = 0; i < ITEM_COUNT; i++) {
        free(ps->odays[i]);
        free(ps->ocum[i]);
    }
    free(ps->cbuf.office_counts);
    free(ps->cbuf.office_recent);
    free(ps);
}

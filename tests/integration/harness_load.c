/* The posting load and the stored-versus-acknowledged checks (see harness_load.h). */
#include "harness_load.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "domain.h"

#define EMPLOYEES 40
#define STOP_POLL_MS 5

static const char *const lane_states[] = {"planned", "ordered", "delivered", "active", "returned"};
#define LANE_CYCLE 5

long long th_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void th_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n, size);
    if (p == NULL)
        abort(); /* the load thread must not assert; out of memory ends the test loudly */
    return p;
}

/* ------------------------------------------------------------------------------------------ */
/* State */

/* One employee and item: one event at a time, in a legal order. */
struct lane {
    char employee[9];
    const char *item;
    int seq;           /* the pending event's number: its state is lane_states[seq % 5] */
    char event_id[37]; /* the pending event */
    bool unknown;      /* an attempt of the pending event may have been committed unheard */
    int acked;         /* events of this lane with a 2xx */
};

/* One client: at most one request at a time. */
struct slot {
    struct th_load *l;
    struct bufferevent *bev;
    struct event *deadline; /* the request's timeout */
    struct event *pause;    /* the wait after a failure */
    bool busy;
    int lane;
    struct th_load_attempt a;
    bool headers_done;
    long content_length;
    int status;
    bool retry_after;
};

struct th_load {
    struct th_load_opts o;
    _Atomic int ports[TH_LOAD_MAX_TARGETS];
    pthread_t thread;
    bool thread_started;
    struct event_base *base;
    struct event *stop_timer;
    atomic_int stop;
    unsigned next_target;

    struct lane lanes[TH_LOAD_LANES];
    int free_lanes[TH_LOAD_LANES + 1]; /* a ring of the lanes not in flight */
    int free_head, free_count;
    long long occurred_base; /* epoch seconds of every lane's first event */

    struct slot *slots;
    struct th_load_attempt *attempts; /* owned by the thread until it ends */
    int nattempts, capattempts;

    atomic_long n_attempts, n_ok, n_503, n_503_ra, n_other, n_refused, n_no_answer, n_timeout,
        n_acked, n_waiting;
    _Atomic int signal_phase; /* enum th_load_signal_phase */
    _Atomic long long last_ok_ms, max_503_ms;
    char summary[400];
};

static void random_uuid(char out[37])
{
    unsigned char b[16];
    FILE *f = fopen("/dev/urandom", "rb");
    if (f == NULL || fread(b, 1, sizeof b, f) != sizeof b)
        abort();
    fclose(f);
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
             b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
             b[14], b[15]);
}

static const char *lane_state(const struct lane *ln, int seq)
{
    return lane_states[seq % LANE_CYCLE];
}

static void lane_push(struct th_load *l, int lane)
{
    int tail = (l->free_head + l->free_count) % (TH_LOAD_LANES + 1);
    l->free_lanes[tail] = lane;
    l->free_count++;
}

static int lane_pop(struct th_load *l)
{
    if (l->free_count == 0)
        return -1;
    int lane = l->free_lanes[l->free_head];
    l->free_head = (l->free_head + 1) % (TH_LOAD_LANES + 1);
    l->free_count--;
    return lane;
}

/* ------------------------------------------------------------------------------------------ */
/* One request */

static void slot_next(struct slot *s);

static void record(struct th_load *l, const struct th_load_attempt *a)
{
    if (l->nattempts == l->capattempts) {
        int cap = l->capattempts ? l->capattempts * 2 : 1024;
        struct th_load_attempt *p = realloc(l->attempts, (size_t)cap * sizeof *p);
        if (p == NULL)
            abort();
        l->attempts = p;
        l->capattempts = cap;
    }
    l->attempts[l->nattempts++] = *a;
}

static void slot_finish(struct slot *s, enum th_load_outcome outcome)
{
    struct th_load *l = s->l;
    struct th_load_attempt *a = &s->a;
    a->outcome = outcome;
    a->status = outcome == TH_LOAD_ANSWERED ? s->status : 0;
    a->retry_after = s->retry_after;
    a->t_done = th_now_ms();
    a->done_after_signal = atomic_load(&l->signal_phase) == TH_LOAD_SIGNALLED;
    if (a->t_sent > 0)
        atomic_fetch_sub(&l->n_waiting, 1);
    if (s->bev) {
        bufferevent_free(s->bev);
        s->bev = NULL;
    }
    evtimer_del(s->deadline);
    s->busy = false;

    struct lane *ln = &l->lanes[s->lane];
    bool ok = outcome == TH_LOAD_ANSWERED && a->status >= 200 && a->status < 300;
    atomic_fetch_add(&l->n_attempts, 1);
    if (ok) {
        atomic_fetch_add(&l->n_ok, 1);
        atomic_store(&l->last_ok_ms, a->t_done);
        if (atomic_fetch_add(&l->n_acked, 1) + 1 == l->o.max_events)
            atomic_store(&l->stop, 1);
        ln->acked++;
        ln->seq++;
        ln->unknown = false;
        random_uuid(ln->event_id);
    } else if (outcome == TH_LOAD_ANSWERED && a->status == 503) {
        atomic_fetch_add(&l->n_503, 1);
        if (a->retry_after)
            atomic_fetch_add(&l->n_503_ra, 1);
        long long took = a->t_done - a->t_start;
        if (took > atomic_load(&l->max_503_ms))
            atomic_store(&l->max_503_ms, took);
        ln->unknown = true;
    } else if (outcome == TH_LOAD_ANSWERED) {
        /* a definite answer the load did not expect (the test will say so); the lane's next
         * attempt repeats the event, which a correct daemon answers the same way */
        atomic_fetch_add(&l->n_other, 1);
    } else if (outcome == TH_LOAD_REFUSED) {
        atomic_fetch_add(&l->n_refused, 1);
    } else {
        atomic_fetch_add(outcome == TH_LOAD_TIMEOUT ? &l->n_timeout : &l->n_no_answer, 1);
        ln->unknown = true;
    }
    record(l, a);
    lane_push(l, s->lane);
    s->lane = -1;
    if (ok) {
        slot_next(s);
    } else {
        struct timeval tv = {l->o.retry_ms / 1000, (l->o.retry_ms % 1000) * 1000};
        evtimer_add(s->pause, &tv);
    }
}

/* The error code of a JSON error answer. */
static void parse_code(struct slot *s, const char *body, size_t len)
{
    s->a.code[0] = '\0';
    static const char key[] = "\"code\":\"";
    const char *p = NULL;
    for (size_t i = 0; i + sizeof key - 1 <= len && p == NULL; i++)
        if (memcmp(body + i, key, sizeof key - 1) == 0)
            p = body + i + sizeof key - 1;
    if (p == NULL)
        return;
    size_t n = 0;
    while (p + n < body + len && p[n] != '"' && n < sizeof s->a.code - 1)
        n++;
    memcpy(s->a.code, p, n);
    s->a.code[n] = '\0';
}

/* Parses what has arrived; returns true when the answer is complete (eof: nothing more
 * comes). */
static bool parse_answer(struct slot *s, bool eof)
{
    struct evbuffer *in = bufferevent_get_input(s->bev);
    if (!s->headers_done) {
        struct evbuffer_ptr end = evbuffer_search(in, "\r\n\r\n", 4, NULL);
        if (end.pos < 0)
            return false;
        size_t hlen = (size_t)end.pos + 4;
        char *h = xcalloc(1, hlen + 1);
        evbuffer_remove(in, h, hlen);
        s->headers_done = true;
        s->content_length = -1;
        if (sscanf(h, "HTTP/1.%*d %d", &s->status) != 1)
            s->status = 0;
        for (char *line = strstr(h, "\r\n"); line != NULL; line = strstr(line + 2, "\r\n")) {
            const char *v = line + 2;
            if (strncasecmp(v, "Content-Length:", 15) == 0)
                s->content_length = strtol(v + 15, NULL, 10);
            else if (strncasecmp(v, "Retry-After:", 12) == 0)
                s->retry_after = true;
        }
        free(h);
    }
    size_t have = evbuffer_get_length(in);
    if (s->content_length >= 0 && have < (size_t)s->content_length)
        return false;
    if (s->content_length < 0 && !eof)
        return false;
    size_t n = s->content_length >= 0 ? (size_t)s->content_length : have;
    const char *body = (const char *)evbuffer_pullup(in, (ev_ssize_t)n);
    parse_code(s, body ? body : "", body ? n : 0);
    return s->status > 0;
}

static void on_read(struct bufferevent *bev, void *arg)
{
    struct slot *s = arg;
    if (parse_answer(s, false))
        slot_finish(s, TH_LOAD_ANSWERED);
}

static void on_write(struct bufferevent *bev, void *arg)
{
    struct slot *s = arg;
    if (s->a.t_sent == 0 && evbuffer_get_length(bufferevent_get_output(bev)) == 0) {
        s->a.t_sent = th_now_ms();
        s->a.sent_before_signal = atomic_load(&s->l->signal_phase) == TH_LOAD_UNSIGNALLED;
        atomic_fetch_add(&s->l->n_waiting, 1);
    }
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    struct slot *s = arg;
    if (what & BEV_EVENT_CONNECTED) {
        s->a.connected = true;
        return;
    }
    if (what & BEV_EVENT_EOF) {
        bool complete = s->headers_done || evbuffer_get_length(bufferevent_get_input(bev)) > 0
                            ? parse_answer(s, true)
                            : false;
        slot_finish(s, complete ? TH_LOAD_ANSWERED : TH_LOAD_NO_ANSWER);
        return;
    }
    if (what & BEV_EVENT_ERROR) {
        slot_finish(s, s->a.connected ? TH_LOAD_NO_ANSWER : TH_LOAD_REFUSED);
        return;
    }
    if (what & BEV_EVENT_TIMEOUT)
        slot_finish(s, TH_LOAD_TIMEOUT);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    slot_finish(arg, TH_LOAD_TIMEOUT);
}

static void on_pause(evutil_socket_t fd, short what, void *arg)
{
    slot_next(arg);
}

static bool stopping(struct th_load *l)
{
    return atomic_load(&l->stop) != 0;
}

/* Starts the slot's next request (a free lane's pending event), unless the load ends. */
static void slot_next(struct slot *s)
{
    struct th_load *l = s->l;
    if (stopping(l))
        return;
    int lane = lane_pop(l);
    if (lane < 0)
        return; /* cannot happen with concurrency <= lanes */
    struct lane *ln = &l->lanes[lane];
    int target = (int)(l->next_target++ % (unsigned)l->o.nports);
    int port = atomic_load(&l->ports[target]);

    s->busy = true;
    s->lane = lane;
    s->headers_done = false;
    s->status = 0;
    s->retry_after = false;
    memset(&s->a, 0, sizeof s->a);
    memcpy(s->a.event_id, ln->event_id, sizeof s->a.event_id);
    s->a.lane = lane;
    s->a.state = lane_state(ln, ln->seq);
    s->a.port = port;
    s->a.t_start = th_now_ms();

    char when[32];
    time_t at = (time_t)(l->occurred_base + ln->seq);
    struct tm tm;
    gmtime_r(&at, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    char body[400];
    int blen = snprintf(body, sizeof body,
                        "{\"event_id\":\"%s\",\"employee\":\"%s\",\"item\":\"%s\","
                        "\"state\":\"%s\",\"occurred_at\":\"%s\",\"note\":\"load\"}",
                        ln->event_id, ln->employee, ln->item, s->a.state, when);

    s->bev = bufferevent_socket_new(l->base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (s->bev == NULL)
        abort();
    bufferevent_setcb(s->bev, on_read, on_write, on_event, s);
    bufferevent_enable(s->bev, EV_READ | EV_WRITE);
    evbuffer_add_printf(bufferevent_get_output(s->bev),
                        "POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                        "Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
                        "Content-Length: %d\r\nConnection: close\r\n\r\n%s",
                        port, l->o.token, blen, body);
    struct timeval tv = {l->o.timeout_ms / 1000, (l->o.timeout_ms % 1000) * 1000};
    evtimer_add(s->deadline, &tv);
    struct sockaddr_in sin = {.sin_family = AF_INET,
                              .sin_port = htons((unsigned short)port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bufferevent_socket_connect(s->bev, (struct sockaddr *)&sin, sizeof sin) != 0) {
        /* failed at once (the bufferevent is freed by slot_finish) */
        slot_finish(s, TH_LOAD_REFUSED);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* The thread */

static void on_stop_timer(evutil_socket_t fd, short what, void *arg)
{
    struct th_load *l = arg;
    if (!stopping(l))
        return;
    for (int i = 0; i < l->o.concurrency; i++) {
        if (l->slots[i].busy)
            return;
        evtimer_del(l->slots[i].pause);
    }
    event_base_loopbreak(l->base);
}

static void *load_main(void *arg)
{
    struct th_load *l = arg;
    for (int i = 0; i < l->o.concurrency; i++)
        slot_next(&l->slots[i]);
    event_base_dispatch(l->base);
    return NULL;
}

struct th_load *th_load_start(const struct th_load_opts *opts)
{
    cr_assert(opts->nports >= 1 && opts->nports <= TH_LOAD_MAX_TARGETS,
              "th_load_start: 1 to %d targets", TH_LOAD_MAX_TARGETS);
    cr_assert(opts->token != NULL, "th_load_start: a token is needed");
    struct th_load *l = xcalloc(1, sizeof *l);
    l->o = *opts;
    if (l->o.concurrency <= 0)
        l->o.concurrency = 16;
    if (l->o.lanes <= 0 || l->o.lanes > TH_LOAD_LANES)
        l->o.lanes = TH_LOAD_LANES;
    if (l->o.retry_ms <= 0)
        l->o.retry_ms = 50;
    if (l->o.timeout_ms <= 0)
        l->o.timeout_ms = 15000;
    cr_assert(l->o.concurrency <= l->o.lanes,
              "th_load_start: concurrency %d above the %d lanes (two requests of one lane at "
              "once could be illegal transitions)",
              l->o.concurrency, l->o.lanes);
    for (int i = 0; i < l->o.nports; i++)
        atomic_store(&l->ports[i], opts->ports[i]);
    /* 20 days ago: in the past whatever the pace, and no lane reaches today */
    l->occurred_base = (long long)time(NULL) - 20 * 86400;
    for (int i = 0; i < l->o.lanes; i++) {
        struct lane *ln = &l->lanes[i];
        snprintf(ln->employee, sizeof ln->employee, "P%07d", 1 + i % EMPLOYEES);
        ln->item = item_info((enum item)(i / EMPLOYEES))->key;
        random_uuid(ln->event_id);
        lane_push(l, i);
    }
    l->base = event_base_new();
    cr_assert(l->base != NULL, "event_base_new failed");
    l->slots = xcalloc((size_t)l->o.concurrency, sizeof *l->slots);
    for (int i = 0; i < l->o.concurrency; i++) {
        struct slot *s = &l->slots[i];
        s->l = l;
        s->lane = -1;
        s->deadline = evtimer_new(l->base, on_deadline, s);
        s->pause = evtimer_new(l->base, on_pause, s);
    }
    l->stop_timer = event_new(l->base, -1, EV_PERSIST, on_stop_timer, l);
    struct timeval tv = {0, STOP_POLL_MS * 1000};
    event_add(l->stop_timer, &tv);
    cr_assert(pthread_create(&l->thread, NULL, load_main, l) == 0, "pthread_create failed");
    l->thread_started = true;
    return l;
}

void th_load_stats(struct th_load *l, struct th_load_stats *out)
{
    out->attempts = atomic_load(&l->n_attempts);
    out->ok = atomic_load(&l->n_ok);
    out->s503 = atomic_load(&l->n_503);
    out->s503_retry_after = atomic_load(&l->n_503_ra);
    out->other_status = atomic_load(&l->n_other);
    out->refused = atomic_load(&l->n_refused);
    out->no_answer = atomic_load(&l->n_no_answer);
    out->timeouts = atomic_load(&l->n_timeout);
    out->acked = atomic_load(&l->n_acked);
    out->last_ok_ms = atomic_load(&l->last_ok_ms);
    out->max_503_ms = atomic_load(&l->max_503_ms);
    out->waiting = atomic_load(&l->n_waiting);
}

void th_load_mark_signal(struct th_load *l, enum th_load_signal_phase phase)
{
    atomic_store(&l->signal_phase, (int)phase);
}

void th_load_set_port(struct th_load *l, int i, int port)
{
    cr_assert(i >= 0 && i < l->o.nports, "th_load_set_port: no target %d", i);
    atomic_store(&l->ports[i], port);
}

bool th_load_wait(struct th_load *l, bool (*pred)(const struct th_load_stats *, void *), void *arg,
                  int timeout_ms)
{
    long long deadline = th_now_ms() + timeout_ms;
    for (;;) {
        struct th_load_stats st;
        th_load_stats(l, &st);
        if (pred(&st, arg))
            return true;
        if (th_now_ms() >= deadline)
            return false;
        th_sleep_ms(10);
    }
}

static bool acked_at_least(const struct th_load_stats *st, void *arg)
{
    return st->acked >= *(long *)arg;
}

bool th_load_wait_acked(struct th_load *l, long acked, int timeout_ms)
{
    return th_load_wait(l, acked_at_least, &acked, timeout_ms);
}

void th_load_stop(struct th_load *l)
{
    if (!l->thread_started)
        return;
    atomic_store(&l->stop, 1);
    pthread_join(l->thread, NULL);
    l->thread_started = false;
}

const struct th_load_attempt *th_load_attempts(struct th_load *l, int *n)
{
    cr_assert(!l->thread_started, "th_load_attempts before th_load_stop");
    *n = l->nattempts;
    return l->attempts;
}

const char *th_load_summary(struct th_load *l)
{
    struct th_load_stats st;
    th_load_stats(l, &st);
    snprintf(l->summary, sizeof l->summary,
             "%ld attempts: %ld 2xx (%ld distinct events), %ld 503 (%ld with Retry-After, "
             "slowest %lld ms), %ld other status, %ld refused at connect, %ld without answer, "
             "%ld timed out",
             st.attempts, st.ok, st.acked, st.s503, st.s503_retry_after, st.max_503_ms,
             st.other_status, st.refused, st.no_answer, st.timeouts);
    return l->summary;
}

void th_load_free(struct th_load *l)
{
    if (l == NULL)
        return;
    th_load_stop(l);
    for (int i = 0; i < l->o.concurrency; i++) {
        if (l->slots[i].bev)
            bufferevent_free(l->slots[i].bev);
        event_free(l->slots[i].deadline);
        event_free(l->slots[i].pause);
    }
    event_free(l->stop_timer);
    event_base_free(l->base);
    free(l->slots);
    free(l->attempts);
    free(l);
}

/* ------------------------------------------------------------------------------------------ */
/* Checks against the database */

/* A growing string. */
struct sbuf {
    char *p;
    size_t len, cap;
};

static void sb_add(struct sbuf *b, const char *s)
{
    size_t n = strlen(s);
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        b->p = realloc(b->p, cap);
        cr_assert(b->p != NULL, "out of memory");
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n + 1);
    b->len += n;
}

static bool is_2xx(const struct th_load_attempt *a)
{
    return a->outcome == TH_LOAD_ANSWERED && a->status >= 200 && a->status < 300;
}

static const char *outcome_name(enum th_load_outcome o)
{
    switch (o) {
    case TH_LOAD_ANSWERED:
        return "answered";
    case TH_LOAD_REFUSED:
        return "refused";
    case TH_LOAD_NO_ANSWER:
        return "no answer";
    case TH_LOAD_TIMEOUT:
        return "timeout";
    }
    return "?";
}

/* Logs every attempt of one event (for a failure message). */
static void log_history(struct th_load *l, const char *event_id)
{
    for (int i = 0; i < l->nattempts; i++) {
        const struct th_load_attempt *a = &l->attempts[i];
        if (strcmp(a->event_id, event_id) != 0)
            continue;
        cr_log_error("  %s lane %d %s port %d: %s %d %s (start %lld, sent %lld, done %lld)",
                     a->event_id, a->lane, a->state, a->port, outcome_name(a->outcome), a->status,
                     a->code, a->t_start, a->t_sent, a->t_done);
    }
}

long th_load_check_stored(struct th_load *l, struct th_db *db)
{
    cr_assert(!l->thread_started, "th_load_check_stored before th_load_stop");
    /* the acknowledged events as a uuid[] literal */
    struct sbuf acked = {0};
    sb_add(&acked, "{");
    int nacked = 0;
    for (int i = 0; i < l->nattempts; i++) {
        if (!is_2xx(&l->attempts[i]))
            continue;
        if (nacked++)
            sb_add(&acked, ",");
        sb_add(&acked, l->attempts[i].event_id);
    }
    sb_add(&acked, "}");
    const char *params[] = {acked.p};

    /* 1. nothing acknowledged is missing */
    PGresult *r = th_sql(db,
                         "SELECT DISTINCT x::text FROM unnest($1::uuid[]) AS x "
                         "WHERE NOT EXISTS (SELECT 1 FROM event e WHERE e.event_id = x)",
                         1, params);
    int missing = PQntuples(r);
    for (int i = 0; i < missing && i < 10; i++) {
        cr_log_error("acknowledged but not stored: %s", PQgetvalue(r, i, 0));
        log_history(l, PQgetvalue(r, i, 0));
    }
    PQclear(r);
    cr_assert_eq(missing, 0,
                 "%d events got a 2xx but are not in the event table (the first ones and their "
                 "attempts are logged above; load: %s)",
                 missing, th_load_summary(l));

    /* 2. nothing stored that was not posted, and unacknowledged ones only where the client
     * could not know the outcome */
    r = th_sql(db, "SELECT event_id::text FROM event WHERE event_id <> ALL ($1::uuid[])", 1,
               params);
    bool pending_stored[TH_LOAD_LANES] = {false};
    int bad = 0;
    for (int i = 0; i < PQntuples(r); i++) {
        const char *id = PQgetvalue(r, i, 0);
        int lane = -1;
        for (int k = 0; k < l->o.lanes; k++)
            if (strcmp(l->lanes[k].event_id, id) == 0)
                lane = k;
        if (lane >= 0 && l->lanes[lane].unknown) {
            pending_stored[lane] = true;
            continue;
        }
        if (bad++ < 10) {
            cr_log_error("stored, but %s: %s",
                         lane >= 0 ? "its every attempt was answered with a definite non-2xx"
                                   : "never posted by this load or acknowledged",
                         id);
            log_history(l, id);
        }
    }
    PQclear(r);
    cr_assert_eq(bad, 0, "%d stored events were neither acknowledged nor of unknown outcome", bad);

    /* 3. each lane's current state is that of its newest stored event */
    r = th_sql(db,
               "SELECT e.personnel_number, s.item, s.state::text FROM item_state s "
               "JOIN employee e ON e.id = s.employee_id",
               0, NULL);
    const char *found[TH_LOAD_LANES] = {NULL};
    for (int i = 0; i < PQntuples(r); i++) {
        int emp = atoi(PQgetvalue(r, i, 0) + 1);
        enum item it;
        cr_assert(item_parse(PQgetvalue(r, i, 1), &it), "unknown item %s", PQgetvalue(r, i, 1));
        int lane = (int)it * EMPLOYEES + emp - 1;
        cr_assert(lane >= 0 && lane < l->o.lanes, "a state for %s %s, which no lane posted",
                  PQgetvalue(r, i, 0), PQgetvalue(r, i, 1));
        found[lane] = lane_states[0];
        for (int k = 0; k < LANE_CYCLE; k++)
            if (strcmp(lane_states[k], PQgetvalue(r, i, 2)) == 0)
                found[lane] = lane_states[k];
        cr_assert(strcmp(found[lane], PQgetvalue(r, i, 2)) == 0, "unexpected state %s",
                  PQgetvalue(r, i, 2));
    }
    PQclear(r);
    for (int k = 0; k < l->o.lanes; k++) {
        const struct lane *ln = &l->lanes[k];
        const char *want = pending_stored[k] ? lane_state(ln, ln->seq)
                           : ln->seq > 0     ? lane_state(ln, ln->seq - 1)
                                             : NULL;
        cr_assert(want == found[k],
                  "%s %s: item_state is %s, but the newest stored event says %s (%d events "
                  "acknowledged, the next one %s)",
                  ln->employee, ln->item, found[k] ? found[k] : "(none)", want ? want : "(none)",
                  ln->acked, pending_stored[k] ? "stored unheard" : "not stored");
    }
    free(acked.p);
    return th_sql_int(db, "SELECT count(*) FROM event");
}

void th_check_counters(struct th_db *db)
{
    PGresult *r =
        th_sql(db,
               "SELECT format('%s %s %s: counter %s, recount %s', dienststelle, item, state, "
               "coalesce(c.n, 0), coalesce(s.n, 0)) "
               "FROM (SELECT dienststelle, item, state, sum(n) AS n FROM progress_counter "
               "      GROUP BY 1, 2, 3 HAVING sum(n) <> 0) c "
               "FULL JOIN (SELECT e.dienststelle, s.item, s.state, count(*) AS n FROM item_state s "
               "           JOIN employee e ON e.id = s.employee_id GROUP BY 1, 2, 3) s "
               "USING (dienststelle, item, state) "
               "WHERE c.n IS DISTINCT FROM s.n ORDER BY 1",
               0, NULL);
    int diffs = PQntuples(r);
    for (int i = 0; i < diffs && i < 20; i++)
        cr_log_error("progress_counter differs: %s", PQgetvalue(r, i, 0));
    PQclear(r);
    cr_assert_eq(diffs, 0, "%d progress_counter figures differ from a recount of item_state",
                 diffs);

    r = th_sql(db,
               "SELECT format('%s %s %s: daily_done %s, recount %s', day, dienststelle, item, "
               "coalesce(c.n, 0), coalesce(s.n, 0)) "
               "FROM (SELECT day, dienststelle, item, sum(n) AS n FROM daily_done "
               "      GROUP BY 1, 2, 3 HAVING sum(n) <> 0) c "
               "FULL JOIN (SELECT (ev.occurred_at AT TIME ZONE 'Europe/Berlin')::date AS day, "
               "                  e.dienststelle, ev.item, "
               "                  sum(CASE WHEN ev.state = 'active' THEN 1 ELSE -1 END) AS n "
               "             FROM event ev JOIN employee e ON e.id = ev.employee_id "
               "            WHERE ev.applied AND ((ev.state = 'active' AND "
               "                  ev.previous_state IS DISTINCT FROM 'active') OR "
               "                  (ev.previous_state = 'active' AND ev.state <> 'active')) "
               "            GROUP BY 1, 2, 3 HAVING sum(CASE WHEN ev.state = 'active' THEN 1 "
               "                                        ELSE -1 END) <> 0) s "
               "USING (day, dienststelle, item) "
               "WHERE c.n IS DISTINCT FROM s.n ORDER BY 1",
               0, NULL);
    diffs = PQntuples(r);
    for (int i = 0; i < diffs && i < 20; i++)
        cr_log_error("daily_done differs: %s", PQgetvalue(r, i, 0));
    PQclear(r);
    cr_assert_eq(diffs, 0, "%d daily_done figures differ from a recount of the events", diffs);

    if (access(ROLLOUTCTL_BIN, X_OK) != 0) {
        cr_log_info("%s not built: `rolloutctl verify` not run (the SQL recount above passed)",
                    ROLLOUTCTL_BIN);
        return;
    }
    char *argv[] = {(char *)ROLLOUTCTL_BIN, (char *)"--db", db->conninfo_admin, (char *)"verify",
                    NULL};
    char *out = NULL, *err = NULL;
    int st = th_run(argv, NULL, &out, &err);
    if (st != 0)
        cr_log_error("rolloutctl verify (status %d):\n%s%s", st, out, err);
    free(out);
    free(err);
    cr_assert_eq(st, 0, "rolloutctl verify exited %d (its output is above)", st);
}

/* ------------------------------------------------------------------------------------------ */
/* The daemon's snapshot against the database */

struct truth {
    long long counts[ITEM_COUNT][STATE_COUNT];
};

static void read_truth(struct th_db *db, struct truth *t)
{
    memset(t, 0, sizeof *t);
    PGresult *r =
        th_sql(db, "SELECT item, state::text, count(*) FROM item_state GROUP BY 1, 2", 0, NULL);
    for (int i = 0; i < PQntuples(r); i++) {
        enum item it;
        enum rollout_state st;
        if (item_parse(PQgetvalue(r, i, 0), &it) && state_parse(PQgetvalue(r, i, 1), &st))
            t->counts[it][st] = atoll(PQgetvalue(r, i, 2));
    }
    PQclear(r);
}

/* Whether /status and /v1/progress of d show t; a description of the first difference in
 * why. */
static bool snapshot_matches(struct th_daemon *d, const struct truth *t, char *why, size_t size)
{
    bool ok = true;
    struct th_response *st = th_http(d, "GET", "/status", NULL, NULL, NULL, 0);
    json_t *items = st->json ? json_object_get(st->json, "items") : NULL;
    if (st->status != 200 || !json_is_array(items) || json_array_size(items) != ITEM_COUNT) {
        snprintf(why, size, "GET /status: %d %.200s", st->status, st->body);
        ok = false;
    }
    for (int i = 0; ok && i < ITEM_COUNT; i++) {
        json_t *it = json_array_get(items, (size_t)i);
        const char *key = json_string_value(json_object_get(it, "item"));
        enum item k;
        if (key == NULL || !item_parse(key, &k)) {
            snprintf(why, size, "GET /status: item %d without a known key", i);
            ok = false;
            break;
        }
        long long done = json_integer_value(json_object_get(it, "done"));
        if (done != t->counts[k][STATE_ACTIVE]) {
            snprintf(why, size, "GET /status on port %d: %s done %lld, the database %lld", d->port,
                     key, done, t->counts[k][STATE_ACTIVE]);
            ok = false;
        }
    }
    th_response_free(st);
    if (!ok)
        return false;

    struct th_response *pr = th_http(d, "GET", "/v1/progress", NULL, NULL, NULL, 0);
    items = pr->json ? json_object_get(pr->json, "items") : NULL;
    if (pr->status != 200 || !json_is_array(items) || json_array_size(items) != ITEM_COUNT) {
        snprintf(why, size, "GET /v1/progress: %d %.200s", pr->status, pr->body);
        ok = false;
    }
    for (int i = 0; ok && i < ITEM_COUNT; i++) {
        json_t *it = json_array_get(items, (size_t)i);
        const char *key = json_string_value(json_object_get(it, "item"));
        enum item k;
        if (key == NULL || !item_parse(key, &k)) {
            snprintf(why, size, "GET /v1/progress: item %d without a known key", i);
            ok = false;
            break;
        }
        json_t *counts = json_object_get(it, "counts");
        for (int s = STATE_FIRST_REAL; ok && s < STATE_COUNT; s++) {
            const char *name = state_name((enum rollout_state)s);
            long long n = json_integer_value(json_object_get(counts, name));
            if (n != t->counts[k][s]) {
                snprintf(why, size, "GET /v1/progress on port %d: %s %s %lld, the database %lld",
                         d->port, key, name, n, t->counts[k][s]);
                ok = false;
            }
        }
        long long done = json_integer_value(json_object_get(it, "done"));
        if (ok && done != t->counts[k][STATE_ACTIVE]) {
            snprintf(why, size, "GET /v1/progress on port %d: %s done %lld, the database %lld",
                     d->port, key, done, t->counts[k][STATE_ACTIVE]);
            ok = false;
        }
    }
    th_response_free(pr);
    return ok;
}

long long th_wait_snapshot_agrees(struct th_daemon *d, struct th_db *db, int timeout_ms, char *why,
                                  size_t why_size)
{
    struct truth t;
    read_truth(db, &t);
    char local[512];
    if (why == NULL) {
        why = local;
        why_size = sizeof local;
    }
    long long deadline = th_now_ms() + timeout_ms;
    for (;;) {
        if (snapshot_matches(d, &t, why, why_size))
            return th_now_ms();
        if (th_now_ms() >= deadline)
            return -1;
        th_sleep_ms(10);
    }
}

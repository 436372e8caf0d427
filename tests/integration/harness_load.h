/* A posting load for the fault and multi-instance tests: many concurrent clients posting
 * unique, legal rollout events to one or more rolloutd instances, recording every attempt, and
 * the checks that compare what the clients were told with what PostgreSQL holds.
 *
 * The load runs in a thread of its own (its own libevent loop, plain HTTP/1.1 over loopback,
 * one connection per request with `Connection: close`), so the test can stop PostgreSQL, kill
 * the daemon or poll /readyz while it runs. The thread never asserts; the test reads the
 * figures (th_load_stats) while it runs and the attempts after th_load_stop.
 *
 * Events: the fixture has 40 employees and 4 items, so 160 "lanes" (an employee and an item).
 * Each lane walks planned → ordered → delivered → active → returned → planned … with
 * increasing occurred_at, one request at a time, so every event is legal whatever the
 * interleaving. An event that got no 2xx (503, no answer, a timeout) is posted again with the
 * same event_id until it gets one (as a careful client does); only then does its lane move on.
 * So at the end each lane's state in the database is that of its last acknowledged event, or of
 * the one after it if that one was committed without the client hearing so. */
#ifndef ROLLOUT_TEST_HARNESS_LOAD_H
#define ROLLOUT_TEST_HARNESS_LOAD_H

#include <stdbool.h>

#include "harness.h"

#define TH_LOAD_MAX_TARGETS 8
#define TH_LOAD_LANES 160

/* Milliseconds on the monotonic clock (the load's times are on it too). */
long long th_now_ms(void);
void th_sleep_ms(int ms);

struct th_load_opts {
    int ports[TH_LOAD_MAX_TARGETS]; /* rolloutd instances, used round-robin */
    int nports;
    const char *token;
    int concurrency; /* requests in flight at once (default 16) */
    int lanes;       /* lanes used, 1..160 (default 160) */
    int max_events;  /* end by itself once this many distinct events got a 2xx; 0: never */
    int retry_ms;    /* a client pauses this long after a failure before its next request
                        (default 50) */
    int timeout_ms;  /* one request at most (default 15000) */
};

/* How one attempt ended. */
enum th_load_outcome {
    TH_LOAD_ANSWERED,  /* an HTTP answer arrived (status) */
    TH_LOAD_REFUSED,   /* the connection could not be made: nothing was sent */
    TH_LOAD_NO_ANSWER, /* connected, then the connection ended (EOF, reset) without an answer */
    TH_LOAD_TIMEOUT    /* no answer within timeout_ms */
};

struct th_load_attempt {
    char event_id[37];
    int lane;
    const char *state; /* the event's state */
    int port;
    enum th_load_outcome outcome;
    int status;       /* when ANSWERED */
    bool retry_after; /* the answer had a Retry-After header */
    char code[40];    /* error.code of an error answer, "" otherwise */
    bool connected;
    long long t_start; /* th_now_ms() when the connection was begun */
    long long t_sent;  /* when the whole request was handed to the kernel; 0 if it never was */
    long long t_done;  /* when the outcome was known */
    /* Against th_load_mark_signal, exactly (a millisecond clock cannot order a request sent
     * in the same millisecond as a signal): the whole request was handed to the kernel before
     * the mark TH_LOAD_SIGNALLING; its outcome was known after the mark TH_LOAD_SIGNALLED. */
    bool sent_before_signal;
    bool done_after_signal;
};

/* Figures while the load runs (read without stopping it). */
struct th_load_stats {
    long attempts, ok, s503, s503_retry_after, other_status, refused, no_answer, timeouts;
    long acked;           /* distinct events with a 2xx */
    long long last_ok_ms; /* th_now_ms() of the newest 2xx, 0 if none */
    long long max_503_ms; /* the slowest 503 (from start to answer) */
    long waiting;         /* requests sent whole and not answered yet */
};

struct th_load;

struct th_load *th_load_start(const struct th_load_opts *opts);
void th_load_stats(struct th_load *l, struct th_load_stats *out);
/* Points target i at another port (a restarted daemon) for the requests that start later. */
void th_load_set_port(struct th_load *l, int i, int port);
/* Waits until pred holds for the current figures (polling every 10 ms) or timeout_ms passed;
 * returns whether it held. */
bool th_load_wait(struct th_load *l, bool (*pred)(const struct th_load_stats *, void *), void *arg,
                  int timeout_ms);
bool th_load_wait_acked(struct th_load *l, long acked, int timeout_ms);
/* Starts no more requests, waits for those in flight (each ends by timeout_ms), ends the
 * thread. Also right for a load that ended by itself (max_events). */
void th_load_stop(struct th_load *l);
/* For a test that signals a daemon under this load: TH_LOAD_SIGNALLING right before the
 * kill(), TH_LOAD_SIGNALLED right after it (see sent_before_signal, done_after_signal). */
enum th_load_signal_phase { TH_LOAD_UNSIGNALLED, TH_LOAD_SIGNALLING, TH_LOAD_SIGNALLED };
void th_load_mark_signal(struct th_load *l, enum th_load_signal_phase phase);
/* After th_load_stop: every attempt in the order they ended. */
const struct th_load_attempt *th_load_attempts(struct th_load *l, int *n);
/* A one-line summary of the figures, for logs and messages (static buffer). */
const char *th_load_summary(struct th_load *l);
void th_load_free(struct th_load *l);

/* After th_load_stop, against the database the daemons wrote to (asserts):
 *  - every event that got a 2xx is in the event table;
 *  - every event in the table was posted by this load, and one that never got a 2xx is a
 *    lane's last event whose outcome the client could not know (503, no answer, timeout);
 *  - each lane's item_state is the state of its newest stored event.
 * Returns the number of events stored. */
long th_load_check_stored(struct th_load *l, struct th_db *db);

/* The counters equal a recount (asserts): progress_counter (summed over shards) against the
 * current states in item_state, daily_done against the applied events that entered or left
 * `active`; and `rolloutctl verify` exits 0 when ROLLOUTCTL_BIN has been built. */
void th_check_counters(struct th_db *db);

/* Polls GET /status and GET /v1/progress of d until both show exactly the database's current
 * counts (per item: done; per item and state: the count) or timeout_ms passed. Returns
 * th_now_ms() at the moment both agreed, or -1 with a description of the last difference in
 * why (when not NULL). */
long long th_wait_snapshot_agrees(struct th_daemon *d, struct th_db *db, int timeout_ms, char *why,
                                  size_t why_size);

#endif

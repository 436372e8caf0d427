/* The bounded queue in front of the database and the group commit.
 *
 * Validated events wait here. Whenever a pool connection is free, one group job takes every
 * waiting event (up to queue.group_max_events) and applies them with one call of
 * rollout_apply_events() in one transaction, so concurrent clients share one commit and one
 * fsync. While a group commit runs, another one starts beside it only when it would take at
 * least queue.group_parallel_min_events; fewer wait and go together when the running one ends.
 * Outcomes are handed back only after the sync that ends the transaction arrived, i.e. after
 * the commit. If the group fails for an unexpected reason, its events are retried one by one,
 * so one poisonous event cannot take the others down with it. */
#ifndef ROLLOUT_INGEST_H
#define ROLLOUT_INGEST_H

#include <event2/event.h>
#include <jansson.h>
#include <stdbool.h>
#include <sys/queue.h>

#include "db_pool.h"

/* Where one event's outcome stands. */
enum ingest_item_state {
    INGEST_ITEM_NEW,      /* not queued yet */
    INGEST_ITEM_QUEUED,   /* waiting for a connection */
    INGEST_ITEM_INFLIGHT, /* part of a group on a connection */
    INGEST_ITEM_DONE      /* outcome delivered */
};

/* The outcome of one event, as rollout_apply_events() returned it, or a failure. */
struct ingest_outcome {
    const char *result; /* "created", "duplicate", "rejected" */
    int status;         /* 201, 200, or the error's HTTP status */
    const char *code, *message, *field; /* for rejected */
    const char *employee, *item, *state, *previous_state; /* previous_state may be NULL */
    int applied; /* 1, 0, or -1 when not known */
};

struct ingest_item;
typedef void (*ingest_done_fn)(struct ingest_item *item, const struct ingest_outcome *outcome);

struct ingest_item {
    json_t *event;      /* the validated event (owned by the caller) */
    char *canonical;    /* its canonical text, from event_validate_canonical (owned by the caller) */
    int token_id;       /* the acting token, 0 for none */
    json_t *scope;      /* array of Ressorts the token may write, or NULL for all (borrowed) */
    ingest_done_fn done;
    void *owner;
    enum ingest_item_state state;
    bool single; /* retried on its own after its group failed */
    TAILQ_ENTRY(ingest_item) link;
};

struct metrics;
struct ingest;

struct ingest *ingest_new(struct event_base *base, struct db_pool *pool, int max_queue,
                          int group_max, int parallel_min, struct metrics *metrics);
/* Queues n items at once, or none: false when the queue has no room for all of them (the
 * caller answers 503 queue_full) or the database is down (503 database_unavailable, told by
 * *db_down). */
bool ingest_submit(struct ingest *ing, struct ingest_item **items, int n, bool *db_down);
/* Takes an item out of the queue if it was not sent yet (its client went away). */
void ingest_withdraw(struct ingest *ing, struct ingest_item *item);
int ingest_queue_depth(const struct ingest *ing);
int ingest_inflight(const struct ingest *ing);
/* Called after every committed group with its count of created events. */
void ingest_set_commit_hook(struct ingest *ing, void (*hook)(void *arg, int created), void *arg);
void ingest_free(struct ingest *ing);

#endif

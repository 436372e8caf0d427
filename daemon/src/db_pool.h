/* A pool of PostgreSQL connections driven by the libevent loop: non-blocking connect, pipeline
 * mode, results read as the socket becomes readable. Nothing here ever blocks the loop.
 *
 * Work is submitted as jobs. A job sends one or more statements on one connection and ends at
 * one pipeline sync, so it is one transaction on the server: its results reach on_result in
 * order, then on_done once with the outcome. One job runs per connection at a time; jobs wait
 * in FIFO order for a free connection. */
#ifndef ROLLOUT_DB_POOL_H
#define ROLLOUT_DB_POOL_H

#include <event2/event.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <sys/queue.h>

enum db_job_outcome {
    DB_JOB_OK,     /* the sync was reached without an error: committed */
    DB_JOB_FAILED, /* the server reported an error: the whole job was rolled back */
    DB_JOB_LOST    /* the connection broke (or never came): unknown whether it committed */
};

struct db_job;
typedef bool (*db_job_send_fn)(struct db_job *job, PGconn *conn);
typedef void (*db_job_result_fn)(struct db_job *job, const PGresult *res);
typedef void (*db_job_done_fn)(struct db_job *job, enum db_job_outcome outcome,
                               const char *error);

struct db_job {
    const char *name;           /* for logs */
    db_job_send_fn send;        /* queue the statements (PQsend*); false: send failed */
    db_job_result_fn on_result; /* each result with rows or a command status */
    db_job_done_fn on_done;     /* exactly once */
    void *arg;
    TAILQ_ENTRY(db_job) link;
};

struct db_statement {
    const char *name;
    const char *sql;
    int nparams;
};

struct db_pool_settings {
    const char *conninfo;
    int size;
    int connect_timeout_s;
    int statement_timeout_ms;
    int reconnect_max_s;
    const struct db_statement *statements; /* prepared on every connection, NULL-name ended */
    const char *const *listen_channels;    /* LISTENed on one connection, NULL ended */
    /* a NOTIFY arrived on one of the channels */
    void (*on_notify)(const char *channel, const char *payload, void *arg);
    /* a connection became ready (a good moment to submit queued work) or the count changed */
    void (*on_ready_change)(void *arg);
    void *arg;
};

struct db_pool;

struct db_pool *db_pool_new(struct event_base *base, const struct db_pool_settings *settings);
/* Starts connecting every connection. */
void db_pool_start(struct db_pool *pool);
/* Queues a job. False (and on_done is not called) when no connection is up or coming up soon:
 * the caller answers 503 at once instead of letting the client wait. */
bool db_pool_submit(struct db_pool *pool, struct db_job *job);
/* Removes a job that has not been sent yet; false when it is already on a connection. */
bool db_pool_cancel(struct db_pool *pool, struct db_job *job);

int db_pool_size(const struct db_pool *pool);
int db_pool_ready(const struct db_pool *pool); /* connected: idle or busy */
int db_pool_busy(const struct db_pool *pool);  /* running a job */
int db_pool_queued(const struct db_pool *pool);
bool db_pool_available(const struct db_pool *pool); /* at least one connection is up */
/* Stops reconnecting; jobs still queued fail as LOST, running ones finish. */
void db_pool_drain(struct db_pool *pool);
/* PQfinish on every connection; running jobs end as LOST. */
void db_pool_free(struct db_pool *pool);

#endif

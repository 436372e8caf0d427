/* The HTTP side: evhttp on our own listener, the routes of the contract, requests that wait
 * for the database, and the one function that answers them. */
#ifndef ROLLOUT_API_H
#define ROLLOUT_API_H

#include <event2/event.h>
#include <stdbool.h>

#include "auth.h"
#include "config.h"
#include "db_pool.h"
#include "ingest.h"
#include "metrics.h"
#include "progress.h"

struct api_deps {
    struct event_base *base;
    struct rollout_config *cfg; /* live: reloadable settings change under SIGHUP */
    struct db_pool *pool;
    struct ingest *ingest;
    struct auth *auth;
    struct progress *progress;
    struct metrics *metrics;
    bool *schema_ok;
};

struct api;

/* Binds the listener (listen.address and listen.port; port 0 picks one). NULL on failure,
 * with the reason logged. */
struct api *api_new(const struct api_deps *deps);
int api_port(const struct api *api);
/* Shutdown, step one: answers close their connections, /readyz says not ready, connections
 * already in the kernel's backlog are still taken for a moment, then the socket is closed. */
void api_stop_listening(struct api *api);
/* Whether the listening socket is still open. */
bool api_listening(const struct api *api);
/* Requests that wait for the database. */
int api_waiting(const struct api *api);
/* Answers every waiting request with 503 (shutdown, when the drain took too long). */
void api_fail_waiting(struct api *api);
void api_free(struct api *api);

/* The prepared statements the API's reads use, for the pool. */
extern const struct db_statement api_statements[];

#endif

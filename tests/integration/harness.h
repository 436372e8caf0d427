/* Test harness for the integration tests: a real PostgreSQL (started by `tools/dev test`, found
 * through ROLLOUT_TEST_PGHOST / ROLLOUT_TEST_PGPORT), a fresh database per test cloned from the
 * template `rollout_template` (migrated, empty), the real rolloutd and rolloutctl binaries, and
 * real HTTP over loopback through libevent's HTTP client. Every helper asserts with Criterion,
 * so a test reads as the story it checks. */
#ifndef ROLLOUT_TEST_HARNESS_H
#define ROLLOUT_TEST_HARNESS_H

#include <criterion/criterion.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <sys/types.h>

struct th_db {
    char name[64];
    char conninfo_super[512];   /* user postgres: for setting up and for checking */
    char conninfo_service[512]; /* user rolloutd (role rollout_service): what the daemon uses */
    char conninfo_admin[512];   /* user rolloutctl (role rollout_admin): what the CLI uses */
    PGconn *conn;               /* an open superuser connection */
};

/* A fresh database from rollout_template with tests/integration/fixture.sql loaded:
 * Ressorts HMdF, HMdIS, HMdJ; Dienststellen FIN-WI-01 (HMdF), FIN-KS-01 (HMdF), INN-WI-01
 * (HMdIS), JUS-F-01 (HMdJ); employees P0000001..P0000040 (1-10 FIN-WI-01, 11-20 FIN-KS-01,
 * 21-30 INN-WI-01, 31-40 JUS-F-01); targets for every item. */
void th_db_create(struct th_db *db);
void th_db_drop(struct th_db *db);

/* Runs SQL as superuser and asserts success. Parameters are $1.. as text (NULL for SQL NULL). */
PGresult *th_sql(struct th_db *db, const char *sql, int nparams, const char *const *params);
/* The first column of the first row as a number / as a new string (NULL for SQL NULL). */
long long th_sql_int(struct th_db *db, const char *sql);
char *th_sql_text(struct th_db *db, const char *sql);

/* A token of role ("admin", "reader", "support") inserted directly (hash only), support tokens
 * scoped to the comma-separated ressorts. Returns a new string with the token. */
char *th_token(struct th_db *db, const char *name, const char *role, const char *ressorts);

struct th_daemon {
    pid_t pid;
    int port;
    char dir[256];         /* scratch directory: config and log */
    char config_path[300];
    char log_path[300];
    struct th_db *db;
};

/* Writes a config (listen 127.0.0.1 on a free port, the db's service conninfo, then `extra`
 * appended verbatim: libconfig settings that override), starts ROLLOUTD_BIN, waits up to 15 s
 * for GET /readyz to answer 200. */
void th_daemon_start(struct th_daemon *d, struct th_db *db, const char *extra_config);
/* Same, but does not wait for readiness and does not assert it started (for start-up errors).
 * Returns the exit status if the process ended within wait_ms, or -1 if it still runs. */
int th_daemon_spawn(struct th_daemon *d, struct th_db *db, const char *extra_config, int wait_ms);
/* Sends sig, waits up to 30 s for the exit and returns the exit status (128+n for a signal). */
int th_daemon_stop(struct th_daemon *d, int sig);
/* The same in two steps, for a test that acts between the signal and the wait. */
void th_daemon_signal(struct th_daemon *d, int sig);
int th_daemon_reap(struct th_daemon *d, int sig);
/* The daemon's log so far (new string). */
char *th_daemon_log(struct th_daemon *d);

struct th_response {
    int status;  /* 0 when the connection failed */
    char *body;  /* NUL-terminated */
    size_t len;
    json_t *json; /* parsed body, or NULL if not JSON */
    char *content_type, *retry_after, *replayed, *request_id; /* header values or NULL */
};

/* One HTTP request on a new connection. token may be NULL (no Authorization header);
 * content_type NULL means "application/json" when a body is given. */
struct th_response *th_http(struct th_daemon *d, const char *method, const char *path,
                            const char *token, const char *content_type, const char *body,
                            size_t len);
void th_response_free(struct th_response *r);
/* The value of one sample line of the daemon's /metrics (GET /metrics without a token), or -1
 * when it is not there. */
double th_metric(struct th_daemon *d, const char *series);

/* Runs argv (argv[0] a path), waits, returns the exit status; stdout/stderr captured into new
 * strings when out/err are not NULL. stdin_data may be NULL. */
int th_run(char *const argv[], const char *stdin_data, char **out, char **err);

/* A raw TCP connection to 127.0.0.1:port with TCP_NODELAY, for bytes no HTTP client library
 * would send; -1 if the connection is refused. */
int th_connect(int port);

/* A random version 4 UUID (for event ids). */
void th_uuid(char out[37]);

#endif

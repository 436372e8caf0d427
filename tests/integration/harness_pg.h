/* A private, throw-away PostgreSQL 15 cluster for tests that must stop, kill or promote the
 * server (the shared test cluster of `tools/dev test` serves every other test and must never
 * be stopped). The cluster lives in a mkdtemp directory under /tmp owned by the OS user
 * `postgres` (PostgreSQL refuses to run as root; when the tests run as root, initdb and pg_ctl
 * run through `runuser -u postgres --`), listens only on a unix socket in that directory and
 * is removed when the test process exits (ROLLOUT_TEST_KEEP=1 keeps it). Clusters left behind
 * by a test process that was killed are removed by the next th_pg_init.
 *
 * Every helper asserts with Criterion, like the rest of the harness. */
#ifndef ROLLOUT_TEST_HARNESS_PG_H
#define ROLLOUT_TEST_HARNESS_PG_H

#include <stdbool.h>
#include <stddef.h>

#include "harness.h"

struct th_pg {
    char dir[128];  /* the cluster's directory: unix socket, postgres.log, data/ */
    char data[160]; /* PGDATA */
    char log[160];  /* the server's log (pg_ctl -l) */
    int port;       /* names the socket file; nothing listens on TCP */
};

/* initdb into a fresh directory (not started). extra_conf: lines appended to postgresql.conf
 * (NULL for none). */
void th_pg_init(struct th_pg *pg, const char *extra_conf);
/* pg_ctl start, waiting until the server accepts connections (at most 60 s). */
void th_pg_start(struct th_pg *pg);
/* pg_ctl stop -m mode ("immediate": like a crash; "fast"; "smart"), waiting for the end. */
void th_pg_stop(struct th_pg *pg, const char *mode);
/* Whether the server runs (pg_ctl status). */
bool th_pg_running(struct th_pg *pg);
/* Stops the server (immediate) and removes the directory (unless ROLLOUT_TEST_KEEP=1). */
void th_pg_destroy(struct th_pg *pg);
/* The server's log so far (new string). */
char *th_pg_log(struct th_pg *pg);

/* "host=DIR port=PORT dbname=DBNAME user=USER" into out. */
void th_pg_conninfo(const struct th_pg *pg, const char *dbname, const char *user, char *out,
                    size_t size);

/* The database `rollout_private` on the cluster, set up the way tools/dev sets up a database
 * (`rolloutctl migrate` when ROLLOUTCTL_BIN has been built, otherwise the schema/NNN_*.sql files
 * applied with their schema_migrations rows exactly as migrate records them; the login roles
 * rolloutd and rolloutctl), then tests/integration/fixture.sql, as th_db_create does. db is
 * filled like th_db_create fills it (conninfos, an open superuser connection). Close it with
 * th_pg_db_close, never with th_db_drop (that one drops on the shared cluster). */
void th_pg_db_create(struct th_pg *pg, struct th_db *db);
void th_pg_db_close(struct th_db *db);

/* Opens db->conn again (after the server was restarted, the old connection is dead). */
void th_db_reconnect(struct th_db *db);

/* A streaming standby of primary (which must run): pg_basebackup -R into a fresh directory,
 * extra_conf appended to its postgresql.conf. Not started. For synchronous replication set the
 * primary's synchronous_standby_names only once the standby runs (ALTER SYSTEM and
 * pg_reload_conf()): before that every commit on the primary waits. The standby's
 * application_name on the primary is its cluster_name when extra_conf sets one. */
void th_pg_init_standby(struct th_pg *standby, struct th_pg *primary, const char *extra_conf);
/* pg_ctl promote, waiting until the server accepts writes. */
void th_pg_promote(struct th_pg *pg);

#endif

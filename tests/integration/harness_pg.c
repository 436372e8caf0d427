/* Private PostgreSQL clusters for the fault tests (see harness_pg.h). */
#include "harness_pg.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PGBIN "/usr/lib/postgresql/15/bin"
#define RUNUSER "/usr/sbin/runuser"
#define PG_OS_USER "postgres"
#define DIR_PREFIX "/tmp/rolloutd-pg-"
#define OWNER_FILE "owner.pid"
#define PRIVATE_DB "rollout_private"
#define SCHEMA_DIR ROLLOUT_SOURCE_DIR "/schema"
#define FIXTURE_PATH ROLLOUT_SOURCE_DIR "/tests/integration/fixture.sql"
#define MAX_CLUSTERS 8

/* ------------------------------------------------------------------------------------------ */
/* Small utilities */

static void pg_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

static char *slurp(const char *path, size_t *len_out)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    size_t cap = 8192, n = 0;
    char *buf = malloc(cap);
    cr_assert(buf != NULL, "out of memory");
    for (;;) {
        if (n + 1 >= cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            cr_assert(buf != NULL, "out of memory");
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0)
            break;
    }
    fclose(f);
    buf[n] = '\0';
    if (len_out)
        *len_out = n;
    return buf;
}

/* The last lines of a text (for messages): a pointer into s. */
static const char *tail_of(const char *s, int lines)
{
    const char *p = s + strlen(s);
    int seen = 0;
    while (p > s) {
        p--;
        if (*p == '\n' && ++seen > lines)
            return p + 1;
    }
    return s;
}

/* Runs a PostgreSQL program as the OS user postgres (through runuser when we are root).
 * args: NULL-terminated, args[0] the program's path. Returns the exit status; output in
 * *out_err (stdout and stderr joined) when not NULL. */
static int run_as_postgres(const char *const *args, char **out_err)
{
    char *argv[40];
    int n = 0;
    if (geteuid() == 0) {
        argv[n++] = (char *)RUNUSER;
        argv[n++] = (char *)"-u";
        argv[n++] = (char *)PG_OS_USER;
        argv[n++] = (char *)"--";
    }
    for (int i = 0; args[i] != NULL; i++) {
        cr_assert(n < 39, "too many arguments for %s", args[0]);
        argv[n++] = (char *)args[i];
    }
    argv[n] = NULL;
    char *out = NULL, *err = NULL;
    int st = th_run(argv, NULL, &out, &err);
    if (out_err) {
        size_t lo = strlen(out), le = strlen(err);
        char *both = malloc(lo + le + 1);
        cr_assert(both != NULL, "out of memory");
        memcpy(both, out, lo);
        memcpy(both + lo, err, le + 1);
        *out_err = both;
    }
    free(out);
    free(err);
    return st;
}

static int pick_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert(fd >= 0, "socket: %s", strerror(errno));
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert(bind(fd, (struct sockaddr *)&sin, sizeof sin) == 0, "bind: %s", strerror(errno));
    socklen_t len = sizeof sin;
    getsockname(fd, (struct sockaddr *)&sin, &len);
    close(fd);
    return ntohs(sin.sin_port);
}

/* ------------------------------------------------------------------------------------------ */
/* Clean-up: at exit, and of clusters whose test process died */

static struct {
    char dir[128];
    char data[160];
} clusters[MAX_CLUSTERS];
static bool cleanup_registered;

static void stop_and_remove(const char *dir, const char *data, bool remove)
{
    struct stat st;
    char pidfile[200];
    snprintf(pidfile, sizeof pidfile, "%s/postmaster.pid", data);
    if (stat(pidfile, &st) == 0) {
        const char *args[] = {PGBIN "/pg_ctl", "-D", data, "-m", "immediate", "-w", "stop", NULL};
        run_as_postgres(args, NULL);
    }
    if (remove) {
        char *argv[] = {(char *)"/bin/rm", (char *)"-rf", (char *)dir, NULL};
        th_run(argv, NULL, NULL, NULL);
    }
}

static void cleanup_at_exit(void)
{
    const char *keep = getenv("ROLLOUT_TEST_KEEP");
    bool remove = !(keep && strcmp(keep, "1") == 0);
    for (int i = 0; i < MAX_CLUSTERS; i++) {
        if (clusters[i].dir[0] == '\0')
            continue;
        stop_and_remove(clusters[i].dir, clusters[i].data, remove);
        clusters[i].dir[0] = '\0';
    }
}

static void track_cluster(const struct th_pg *pg)
{
    if (!cleanup_registered) {
        atexit(cleanup_at_exit);
        cleanup_registered = true;
    }
    for (int i = 0; i < MAX_CLUSTERS; i++) {
        if (clusters[i].dir[0] == '\0') {
            snprintf(clusters[i].dir, sizeof clusters[i].dir, "%s", pg->dir);
            snprintf(clusters[i].data, sizeof clusters[i].data, "%s", pg->data);
            return;
        }
    }
    cr_assert_fail("more than %d private clusters in one test process", MAX_CLUSTERS);
}

static void untrack_cluster(const struct th_pg *pg)
{
    for (int i = 0; i < MAX_CLUSTERS; i++)
        if (strcmp(clusters[i].dir, pg->dir) == 0)
            clusters[i].dir[0] = '\0';
}

/* A test process killed by a timeout cannot clean up: its clusters would run on. Each
 * directory names its owner; remove those whose owner is gone. */
static void remove_stale_clusters(void)
{
    static bool done;
    if (done || getenv("ROLLOUT_TEST_KEEP") != NULL)
        return;
    done = true;
    DIR *d = opendir("/tmp");
    if (d == NULL)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, "rolloutd-pg-", 12) != 0)
            continue;
        char dir[128], data[160], owner[200];
        snprintf(dir, sizeof dir, "/tmp/%.100s", e->d_name);
        snprintf(data, sizeof data, "%s/data", dir);
        snprintf(owner, sizeof owner, "%s/" OWNER_FILE, dir);
        char *text = slurp(owner, NULL);
        long pid = text ? strtol(text, NULL, 10) : 0;
        free(text);
        if (pid <= 0 || pid == (long)getpid() || kill((pid_t)pid, 0) == 0 || errno != ESRCH)
            continue;
        stop_and_remove(dir, data, true);
    }
    closedir(d);
}

/* ------------------------------------------------------------------------------------------ */
/* The cluster */

static void chown_to_postgres(const char *path)
{
    if (geteuid() != 0)
        return;
    struct passwd *pw = getpwnam(PG_OS_USER);
    cr_assert(pw != NULL, "there is no OS user %s (install postgresql-15)", PG_OS_USER);
    cr_assert(chown(path, pw->pw_uid, pw->pw_gid) == 0, "chown %s: %s", path, strerror(errno));
}

/* A new directory owned by postgres, with the owner file; fills dir, data, log and port. */
static void make_cluster_dir(struct th_pg *pg)
{
    memset(pg, 0, sizeof *pg);
    remove_stale_clusters();
    snprintf(pg->dir, sizeof pg->dir, DIR_PREFIX "XXXXXX");
    cr_assert(mkdtemp(pg->dir) != NULL, "mkdtemp: %s", strerror(errno));
    snprintf(pg->data, sizeof pg->data, "%s/data", pg->dir);
    snprintf(pg->log, sizeof pg->log, "%s/postgres.log", pg->dir);
    pg->port = pick_port();
    char owner[200];
    snprintf(owner, sizeof owner, "%s/" OWNER_FILE, pg->dir);
    FILE *f = fopen(owner, "w");
    cr_assert(f != NULL, "cannot write %s: %s", owner, strerror(errno));
    fprintf(f, "%ld\n", (long)getpid());
    fclose(f);
    chown_to_postgres(pg->dir);
    track_cluster(pg);
}

/* Our settings, appended to the postgresql.conf that initdb or pg_basebackup wrote. */
static void append_conf(const struct th_pg *pg, const char *extra_conf)
{
    char path[200];
    snprintf(path, sizeof path, "%s/postgresql.conf", pg->data);
    FILE *f = fopen(path, "a");
    cr_assert(f != NULL, "cannot append to %s: %s", path, strerror(errno));
    fprintf(f,
            "\n# tests/integration/harness_pg.c: a private cluster for one test\n"
            "listen_addresses = ''\n"
            "unix_socket_directories = '%s'\n"
            "port = %d\n"
            "max_connections = 100\n"
            "shared_buffers = 32MB\n"
            "fsync = on\n"
            "synchronous_commit = on\n"
            "wal_level = replica\n"
            "max_wal_senders = 4\n"
            "log_min_messages = warning\n"
            "log_line_prefix = '%%m [%%p] %%u@%%d '\n"
            "timezone = 'UTC'\n"
            "%s\n",
            pg->dir, pg->port, extra_conf ? extra_conf : "");
    cr_assert(fclose(f) == 0, "cannot write %s", path);
}

void th_pg_init(struct th_pg *pg, const char *extra_conf)
{
    make_cluster_dir(pg);
    const char *args[] = {PGBIN "/initdb",    "-D",           pg->data, "-U",
                          "postgres",         "--auth=trust", "-E",     "UTF8",
                          "--locale=C.UTF-8", "-N",           NULL};
    char *out = NULL;
    int st = run_as_postgres(args, &out);
    if (st != 0) {
        cr_log_error("initdb output:\n%s", out);
        free(out);
        cr_assert_fail("initdb into %s failed with status %d (output above; is postgresql-15 "
                       "installed?)",
                       pg->data, st);
    }
    free(out);
    append_conf(pg, extra_conf);
}

void th_pg_start(struct th_pg *pg)
{
    const char *args[] = {PGBIN "/pg_ctl", "-D", pg->data, "-l", pg->log, "-w", "-t", "60",
                          "start",         NULL};
    char *out = NULL;
    int st = run_as_postgres(args, &out);
    if (st != 0) {
        char *log = th_pg_log(pg);
        cr_log_error("pg_ctl start:\n%s\nserver log (%s):\n%s", out, pg->log, tail_of(log, 30));
        free(log);
        free(out);
        cr_assert_fail("the private PostgreSQL in %s did not start (status %d; output above)",
                       pg->dir, st);
    }
    free(out);
}

void th_pg_stop(struct th_pg *pg, const char *mode)
{
    const char *args[] = {PGBIN "/pg_ctl", "-D", pg->data, "-m", mode, "-w", "-t", "60",
                          "stop",          NULL};
    char *out = NULL;
    int st = run_as_postgres(args, &out);
    if (st != 0) {
        cr_log_error("pg_ctl stop -m %s:\n%s", mode, out);
        free(out);
        cr_assert_fail("pg_ctl stop -m %s of %s failed with status %d", mode, pg->dir, st);
    }
    free(out);
}

bool th_pg_running(struct th_pg *pg)
{
    const char *args[] = {PGBIN "/pg_ctl", "-D", pg->data, "status", NULL};
    return run_as_postgres(args, NULL) == 0;
}

void th_pg_destroy(struct th_pg *pg)
{
    if (pg->dir[0] == '\0')
        return;
    const char *keep = getenv("ROLLOUT_TEST_KEEP");
    stop_and_remove(pg->dir, pg->data, !(keep && strcmp(keep, "1") == 0));
    untrack_cluster(pg);
    pg->dir[0] = '\0';
}

char *th_pg_log(struct th_pg *pg)
{
    char *log = slurp(pg->log, NULL);
    if (log == NULL) {
        log = strdup("");
        cr_assert(log != NULL, "out of memory");
    }
    return log;
}

void th_pg_conninfo(const struct th_pg *pg, const char *dbname, const char *user, char *out,
                    size_t size)
{
    int n =
        snprintf(out, size, "host=%s port=%d dbname=%s user=%s", pg->dir, pg->port, dbname, user);
    cr_assert(n > 0 && (size_t)n < size, "conninfo too long");
}

/* ------------------------------------------------------------------------------------------ */
/* The database */

static void quiet_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

static PGconn *pg_connect(const char *ci)
{
    PGconn *c = PQconnectdb(ci);
    if (PQstatus(c) != CONNECTION_OK) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", PQerrorMessage(c));
        PQfinish(c);
        cr_assert_fail("cannot connect to the private PostgreSQL (%s): %s", ci, msg);
    }
    PQsetNoticeProcessor(c, quiet_notice, NULL);
    return c;
}

static void pg_exec(PGconn *c, const char *sql, int nparams, const char *const *params,
                    const char *what)
{
    PGresult *r =
        nparams == 0 ? PQexec(c, sql) : PQexecParams(c, sql, nparams, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", PQresultErrorMessage(r));
        PQclear(r);
        cr_assert_fail("%s failed: %s", what, msg);
    }
    PQclear(r);
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

static int migration_file(const struct dirent *e)
{
    const char *n = e->d_name;
    size_t len = strlen(n);
    return len > 8 && n[0] >= '0' && n[0] <= '9' && n[1] >= '0' && n[1] <= '9' && n[2] >= '0' &&
           n[2] <= '9' && n[3] == '_' && strcmp(n + len - 4, ".sql") == 0;
}

/* What `rolloutctl migrate` does, for a build where rolloutctl does not exist (yet): each file
 * in its own transaction with its schema_migrations row (version, name, SHA-256 in hex). */
static void migrate_by_sql(PGconn *c)
{
    pg_exec(c,
            "CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL,"
            " checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now());"
            "GRANT SELECT ON schema_migrations TO PUBLIC",
            0, NULL, "creating schema_migrations");
    struct dirent **list;
    int n = scandir(SCHEMA_DIR, &list, migration_file, by_name);
    cr_assert(n > 0, "no migrations in %s", SCHEMA_DIR);
    for (int i = 0; i < n; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s", SCHEMA_DIR, list[i]->d_name);
        size_t len;
        char *sql = slurp(path, &len);
        cr_assert(sql != NULL, "cannot read %s: %s", path, strerror(errno));
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int mdlen = 0;
        EVP_Digest(sql, len, md, &mdlen, EVP_sha256(), NULL);
        char hex[2 * EVP_MAX_MD_SIZE + 1];
        for (unsigned int k = 0; k < mdlen; k++)
            snprintf(hex + 2 * k, 3, "%02x", md[k]);
        char version[8];
        snprintf(version, sizeof version, "%d", atoi(list[i]->d_name));
        pg_exec(c, "BEGIN", 0, NULL, "BEGIN");
        pg_exec(c, sql, 0, NULL, path);
        const char *params[] = {version, list[i]->d_name, hex};
        pg_exec(c, "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)", 3,
                params, "recording the migration");
        pg_exec(c, "COMMIT", 0, NULL, "COMMIT");
        free(sql);
        free(list[i]);
    }
    free(list);
}

static void migrate(struct th_db *db, PGconn *c)
{
    if (access(ROLLOUTCTL_BIN, X_OK) != 0) {
        cr_log_info("harness_pg: %s not built; applying %s/*.sql directly", ROLLOUTCTL_BIN,
                    SCHEMA_DIR);
        migrate_by_sql(c);
        return;
    }
    char *argv[] = {(char *)ROLLOUTCTL_BIN,
                    (char *)"--db",
                    db->conninfo_super,
                    (char *)"--schema-dir",
                    (char *)SCHEMA_DIR,
                    (char *)"migrate",
                    NULL};
    char *out = NULL, *err = NULL;
    int st = th_run(argv, NULL, &out, &err);
    if (st != 0)
        cr_log_error("rolloutctl migrate:\n%s%s", out, err);
    free(out);
    free(err);
    cr_assert_eq(st, 0, "rolloutctl migrate on the private cluster failed with status %d", st);
}

void th_pg_db_create(struct th_pg *pg, struct th_db *db)
{
    memset(db, 0, sizeof *db);
    char maint[512];
    th_pg_conninfo(pg, "postgres", "postgres", maint, sizeof maint);
    PGconn *c = pg_connect(maint);
    pg_exec(c, "CREATE DATABASE " PRIVATE_DB, 0, NULL, "CREATE DATABASE " PRIVATE_DB);
    PQfinish(c);

    snprintf(db->name, sizeof db->name, "%s", PRIVATE_DB);
    th_pg_conninfo(pg, PRIVATE_DB, "postgres", db->conninfo_super, sizeof db->conninfo_super);
    th_pg_conninfo(pg, PRIVATE_DB, "rolloutd", db->conninfo_service, sizeof db->conninfo_service);
    th_pg_conninfo(pg, PRIVATE_DB, "rolloutctl", db->conninfo_admin, sizeof db->conninfo_admin);
    db->conn = pg_connect(db->conninfo_super);
    migrate(db, db->conn);
    /* the login roles, as tools/dev's db_setup creates them */
    pg_exec(db->conn,
            "DO $$ BEGIN "
            "IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'rolloutd') THEN "
            "CREATE ROLE rolloutd LOGIN IN ROLE rollout_service; END IF; "
            "IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'rolloutctl') THEN "
            "CREATE ROLE rolloutctl LOGIN IN ROLE rollout_admin; END IF; "
            "END $$",
            0, NULL, "creating the roles rolloutd and rolloutctl");
    char *fixture = slurp(FIXTURE_PATH, NULL);
    cr_assert(fixture != NULL, "cannot read %s: %s", FIXTURE_PATH, strerror(errno));
    pg_exec(db->conn, fixture, 0, NULL, FIXTURE_PATH);
    free(fixture);
}

void th_pg_db_close(struct th_db *db)
{
    if (db->conn)
        PQfinish(db->conn);
    db->conn = NULL;
    db->name[0] = '\0';
}

void th_db_reconnect(struct th_db *db)
{
    if (db->conn)
        PQfinish(db->conn);
    db->conn = NULL;
    /* the server may still be finishing its recovery */
    for (int attempt = 0; attempt < 100; attempt++) {
        PGconn *c = PQconnectdb(db->conninfo_super);
        if (PQstatus(c) == CONNECTION_OK) {
            PQsetNoticeProcessor(c, quiet_notice, NULL);
            db->conn = c;
            return;
        }
        PQfinish(c);
        pg_sleep_ms(100);
    }
    db->conn = pg_connect(db->conninfo_super); /* asserts with libpq's message */
}

/* ------------------------------------------------------------------------------------------ */
/* Replication */

void th_pg_init_standby(struct th_pg *standby, struct th_pg *primary, const char *extra_conf)
{
    make_cluster_dir(standby);
    char port[16];
    snprintf(port, sizeof port, "%d", primary->port);
    const char *args[] = {PGBIN "/pg_basebackup",
                          "-D",
                          standby->data,
                          "-h",
                          primary->dir,
                          "-p",
                          port,
                          "-U",
                          "postgres",
                          "-R",
                          "-X",
                          "stream",
                          "-c",
                          "fast",
                          NULL};
    char *out = NULL;
    int st = run_as_postgres(args, &out);
    if (st != 0) {
        cr_log_error("pg_basebackup:\n%s", out);
        free(out);
        cr_assert_fail("pg_basebackup from %s failed with status %d (output above)", primary->dir,
                       st);
    }
    free(out);
    append_conf(standby, extra_conf);
}

void th_pg_promote(struct th_pg *pg)
{
    const char *args[] = {PGBIN "/pg_ctl", "-D", pg->data, "-w", "-t", "60", "promote", NULL};
    char *out = NULL;
    int st = run_as_postgres(args, &out);
    if (st != 0) {
        cr_log_error("pg_ctl promote:\n%s", out);
        free(out);
        cr_assert_fail("pg_ctl promote of %s failed with status %d", pg->dir, st);
    }
    free(out);
}

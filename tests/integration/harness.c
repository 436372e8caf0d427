/* The integration test harness (see harness.h). Every helper asserts with Criterion, so a failed
 * set-up step ends the test with a message saying what failed and what to do about it.
 *
 * Extra configuration text for th_daemon_start/th_daemon_spawn is inserted as-is, with these
 * placeholders replaced:
 *   @CONNINFO@        the service conninfo (user rolloutd)
 *   @ADMIN_CONNINFO@  the admin conninfo (user rolloutctl)
 *   @PORT@            the free port the harness picked (also in th_daemon.port)
 * libconfig rejects a setting given twice, so the harness writes its default `listen` and
 * `database` groups only when the extra text does not define that group itself (`listen =`,
 * `database =`, or with `:`); a test that sets `database = { ... }` must then give
 * `conninfo = "@CONNINFO@";` in it.
 *
 * Scratch directories (config and log) are removed when the test process exits, unless
 * ROLLOUT_TEST_KEEP=1 is set; a daemon a test forgot to stop is killed then too, and with
 * PR_SET_PDEATHSIG it also dies with a test process that crashed. */
#include "harness.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/rand.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "token.h"

#define FIXTURE_PATH ROLLOUT_SOURCE_DIR "/tests/integration/fixture.sql"
#define TEMPLATE_DB_DEFAULT "rollout_template"
#define READY_TIMEOUT_MS 15000
#define READY_POLL_MS 50
#define HTTP_TIMEOUT_S 30
#define STOP_TIMEOUT_MS 30000
#define RUN_TIMEOUT_MS 300000

/* ------------------------------------------------------------------------------------------ */
/* Small utilities */

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

static char *xstrdup(const char *s)
{
    char *p = strdup(s);
    cr_assert(p != NULL, "out of memory");
    return p;
}

/* A growing NUL-terminated byte buffer. */
struct buf {
    char *data;
    size_t len, cap;
};

static void buf_append(struct buf *b, const void *p, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *d = realloc(b->data, cap);
        cr_assert(d != NULL, "out of memory");
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static void buf_puts(struct buf *b, const char *s)
{
    buf_append(b, s, strlen(s));
}

static char *buf_take(struct buf *b)
{
    if (b->data == NULL)
        buf_append(b, "", 0);
    char *d = b->data;
    b->data = NULL;
    b->len = b->cap = 0;
    return d;
}

/* The whole file as a new string, or NULL (errno set). */
static char *read_file(const char *path, size_t *len_out)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    struct buf b = {0};
    char chunk[8192];
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            close(fd);
            free(b.data);
            errno = e;
            return NULL;
        }
        if (n == 0)
            break;
        buf_append(&b, chunk, (size_t)n);
    }
    close(fd);
    if (len_out)
        *len_out = b.len;
    return buf_take(&b);
}

static int exit_status(int wstatus)
{
    if (WIFEXITED(wstatus))
        return WEXITSTATUS(wstatus);
    if (WIFSIGNALED(wstatus))
        return 128 + WTERMSIG(wstatus);
    return -1;
}

/* Waits up to timeout_ms for pid; returns its exit status or -1 if it still runs. */
static int wait_exit(pid_t pid, int timeout_ms)
{
    long long deadline = now_ms() + timeout_ms;
    for (;;) {
        int ws;
        pid_t r = waitpid(pid, &ws, WNOHANG);
        if (r == pid)
            return exit_status(ws);
        if (r < 0 && errno != EINTR)
            return -1;
        if (now_ms() >= deadline)
            return -1;
        sleep_ms(10);
    }
}

/* In a freshly forked child: die with the test process and undo what the test process ignores
 * (an ignored SIGPIPE would survive exec). */
static void child_common_setup(pid_t parent)
{
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent)
        _exit(127); /* the parent is already gone */
    signal(SIGPIPE, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

/* ------------------------------------------------------------------------------------------ */
/* PostgreSQL */

static void pg_env(const char **host, const char **port)
{
    *host = getenv("ROLLOUT_TEST_PGHOST");
    *port = getenv("ROLLOUT_TEST_PGPORT");
    if (*host == NULL || **host == '\0' || *port == NULL || **port == '\0')
        cr_assert_fail("ROLLOUT_TEST_PGHOST and ROLLOUT_TEST_PGPORT are not set: the integration "
                       "tests need the test PostgreSQL; run them through tools/dev test (or "
                       "export both for a running test cluster)");
}

static void conninfo(char *out, size_t size, const char *dbname, const char *user)
{
    const char *host, *port;
    pg_env(&host, &port);
    int n = snprintf(out, size, "host=%s port=%s dbname=%s user=%s", host, port, dbname, user);
    cr_assert(n > 0 && (size_t)n < size, "conninfo too long for host %s", host);
}

static void noop_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

static PGconn *connect_or_fail(const char *ci)
{
    PGconn *c = PQconnectdb(ci);
    if (PQstatus(c) != CONNECTION_OK) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", PQerrorMessage(c));
        PQfinish(c);
        cr_assert_fail("cannot connect to the test PostgreSQL (%s): %s(is it running? start it "
                       "with tools/dev test)",
                       ci, msg);
    }
    /* quiet: the NOTICEs of DROP ... IF EXISTS and the like are no test's business */
    PQsetNoticeProcessor(c, noop_notice, NULL);
    return c;
}

/* Runs a command without parameters on c; on failure copies the error into err and returns
 * false. */
static bool exec_ok(PGconn *c, const char *sql, char *err, size_t errsize)
{
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    bool ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
    if (!ok && err)
        snprintf(err, errsize, "%s", PQresultErrorMessage(r));
    PQclear(r);
    return ok;
}

/* Databases of test processes that died before th_db_drop: dropped once per process when the
 * process that made them no longer exists, so a crashed run does not leave the cluster full. */
static void drop_stale_databases(PGconn *c)
{
    static bool done;
    if (done)
        return;
    done = true;
    PGresult *r = PQexec(c, "SELECT datname FROM pg_database WHERE datname ~ '^t_[0-9]+_[0-9]+_'");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        PQclear(r);
        return;
    }
    for (int i = 0; i < PQntuples(r); i++) {
        const char *name = PQgetvalue(r, i, 0);
        long pid = strtol(name + 2, NULL, 10);
        if (pid <= 0 || pid == (long)getpid() || kill((pid_t)pid, 0) == 0 || errno != ESRCH)
            continue;
        char sql[128];
        snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS \"%s\" WITH (FORCE)", name);
        exec_ok(c, sql, NULL, 0);
    }
    PQclear(r);
}

void th_db_create(struct th_db *db)
{
    static unsigned counter;
    memset(db, 0, sizeof *db);
    unsigned char rnd[4];
    cr_assert(RAND_bytes(rnd, sizeof rnd) == 1, "RAND_bytes failed");
    /* db->name is set only once the database exists, so th_db_drop in a fixture's teardown
     * after a failed set-up has nothing to do */
    char name[sizeof db->name];
    snprintf(name, sizeof name, "t_%ld_%u_%02x%02x%02x%02x", (long)getpid(), counter++, rnd[0],
             rnd[1], rnd[2], rnd[3]);

    char maint[512];
    conninfo(maint, sizeof maint, "postgres", "postgres");
    PGconn *c = connect_or_fail(maint);
    drop_stale_databases(c);

    /* ROLLOUT_TEST_TEMPLATE: another migrated template, e.g. to try a schema change */
    const char *tmpl = getenv("ROLLOUT_TEST_TEMPLATE");
    if (tmpl == NULL || *tmpl == '\0')
        tmpl = TEMPLATE_DB_DEFAULT;
    char sql[256], err[1024] = "";
    snprintf(sql, sizeof sql, "CREATE DATABASE \"%s\" TEMPLATE \"%.100s\"", name, tmpl);
    bool ok = false;
    /* CREATE DATABASE refuses while anyone else is connected to the template (a developer's
     * psql, another test run's clone in progress): retry for a few seconds. */
    for (int attempt = 0; attempt < 100 && !ok; attempt++) {
        ok = exec_ok(c, sql, err, sizeof err);
        if (!ok && strstr(err, "is being accessed by other users") == NULL)
            break;
        if (!ok)
            sleep_ms(100);
    }
    PQfinish(c);
    cr_assert(ok,
              "CREATE DATABASE %s TEMPLATE %s failed: %s(tools/dev test creates and migrates "
              "%s)",
              name, tmpl, err, tmpl);
    memcpy(db->name, name, sizeof db->name);

    conninfo(db->conninfo_super, sizeof db->conninfo_super, db->name, "postgres");
    conninfo(db->conninfo_service, sizeof db->conninfo_service, db->name, "rolloutd");
    conninfo(db->conninfo_admin, sizeof db->conninfo_admin, db->name, "rolloutctl");
    db->conn = connect_or_fail(db->conninfo_super);

    size_t len;
    char *fixture = read_file(FIXTURE_PATH, &len);
    cr_assert(fixture != NULL, "cannot read %s: %s", FIXTURE_PATH, strerror(errno));
    ok = exec_ok(db->conn, fixture, err, sizeof err);
    free(fixture);
    cr_assert(ok, "loading %s into %s failed: %s", FIXTURE_PATH, db->name, err);
}

void th_db_drop(struct th_db *db)
{
    if (db->conn) {
        PQfinish(db->conn);
        db->conn = NULL;
    }
    if (db->name[0] == '\0')
        return;
    char maint[512], sql[256], err[1024] = "";
    conninfo(maint, sizeof maint, "postgres", "postgres");
    PGconn *c = connect_or_fail(maint);
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS \"%s\" WITH (FORCE)", db->name);
    bool ok = exec_ok(c, sql, err, sizeof err);
    PQfinish(c);
    cr_assert(ok, "DROP DATABASE %s failed: %s", db->name, err);
    db->name[0] = '\0';
}

PGresult *th_sql(struct th_db *db, const char *sql, int nparams, const char *const *params)
{
    cr_assert(db->conn != NULL, "th_sql without a database (call th_db_create first)");
    /* without parameters the simple protocol, so set-up SQL may hold several statements (the
     * result is the last one's) */
    PGresult *r = nparams == 0 ? PQexec(db->conn, sql)
                               : PQexecParams(db->conn, sql, nparams, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", PQresultErrorMessage(r));
        PQclear(r);
        cr_assert_fail("SQL failed: %s\n  statement: %s", msg, sql);
    }
    return r;
}

long long th_sql_int(struct th_db *db, const char *sql)
{
    PGresult *r = th_sql(db, sql, 0, NULL);
    if (PQntuples(r) < 1 || PQnfields(r) < 1 || PQgetisnull(r, 0, 0)) {
        PQclear(r);
        cr_assert_fail("expected a number from: %s (got no row or NULL)", sql);
    }
    char *end;
    errno = 0;
    const char *v = PQgetvalue(r, 0, 0);
    long long n = strtoll(v, &end, 10);
    bool ok = errno == 0 && end != v && *end == '\0';
    char copy[64];
    snprintf(copy, sizeof copy, "%s", v);
    PQclear(r);
    cr_assert(ok, "expected a whole number from: %s (got \"%s\")", sql, copy);
    return n;
}

char *th_sql_text(struct th_db *db, const char *sql)
{
    PGresult *r = th_sql(db, sql, 0, NULL);
    if (PQntuples(r) < 1 || PQnfields(r) < 1) {
        PQclear(r);
        cr_assert_fail("expected a row from: %s", sql);
    }
    char *v = PQgetisnull(r, 0, 0) ? NULL : xstrdup(PQgetvalue(r, 0, 0));
    PQclear(r);
    return v;
}

char *th_token(struct th_db *db, const char *name, const char *role, const char *ressorts)
{
    char token[TOKEN_LENGTH + 1];
    cr_assert(token_generate(token), "token_generate failed (RNG)");
    unsigned char hash[TOKEN_HASH_LEN];
    token_hash(token, strlen(token), hash);
    char hex[2 * TOKEN_HASH_LEN + 1];
    for (int i = 0; i < TOKEN_HASH_LEN; i++)
        snprintf(hex + 2 * i, 3, "%02x", hash[i]);
    const char *params[] = {name, role, ressorts ? ressorts : "", hex};
    PQclear(th_sql(db,
                   "INSERT INTO api_token (name, role, ressorts, hash) "
                   "VALUES ($1, $2::token_role, "
                   "coalesce(string_to_array(nullif($3, ''), ','), '{}'), decode($4, 'hex'))",
                   4, params));
    return xstrdup(token);
}

/* ------------------------------------------------------------------------------------------ */
/* The daemon */

/* Daemons and scratch directories of this process, cleaned up at exit. */
#define MAX_TRACKED 128
static struct {
    pid_t pid;
    char dir[256];
} tracked[MAX_TRACKED];
static bool cleanup_registered;

static void remove_dir(const char *dir)
{
    char path[320];
    static const char *const files[] = {"rolloutd.conf", "rolloutd.log"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        unlink(path);
    }
    rmdir(dir); /* fails, harmlessly, if a test put more files there */
}

static void cleanup_at_exit(void)
{
    const char *keep = getenv("ROLLOUT_TEST_KEEP");
    for (int i = 0; i < MAX_TRACKED; i++) {
        if (tracked[i].pid > 0) {
            kill(tracked[i].pid, SIGKILL);
            waitpid(tracked[i].pid, NULL, 0);
            tracked[i].pid = 0;
        }
        if (tracked[i].dir[0] && !(keep && strcmp(keep, "1") == 0))
            remove_dir(tracked[i].dir);
        tracked[i].dir[0] = '\0';
    }
}

static void track(pid_t pid, const char *dir)
{
    if (!cleanup_registered) {
        atexit(cleanup_at_exit);
        cleanup_registered = true;
    }
    for (int i = 0; i < MAX_TRACKED; i++) {
        if (tracked[i].pid == 0 && tracked[i].dir[0] == '\0') {
            tracked[i].pid = pid;
            snprintf(tracked[i].dir, sizeof tracked[i].dir, "%s", dir);
            return;
        }
    }
}

static void untrack_pid(pid_t pid)
{
    for (int i = 0; i < MAX_TRACKED; i++)
        if (tracked[i].pid == pid)
            tracked[i].pid = 0;
}

int th_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert(fd >= 0, "socket: %s", strerror(errno));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert(fd >= 0, "socket: %s", strerror(errno));
    struct sockaddr_in sa = {
        .sin_family = AF_INET, .sin_port = 0, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t slen = sizeof sa;
    int ok = bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
             getsockname(fd, (struct sockaddr *)&sa, &slen) == 0;
    int e = errno;
    close(fd);
    cr_assert(ok, "cannot find a free port on 127.0.0.1: %s", strerror(e));
    return ntohs(sa.sin_port);
}

/* Whether text defines the top-level group `name` (name, blanks, then '=' or ':'). */
static bool defines_group(const char *text, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = strstr(text, name); p; p = strstr(p + 1, name)) {
        if (p > text && (p[-1] == '_' || p[-1] == '.' || (p[-1] >= 'a' && p[-1] <= 'z') ||
                         (p[-1] >= 'A' && p[-1] <= 'Z') || (p[-1] >= '0' && p[-1] <= '9')))
            continue;
        const char *q = p + n;
        while (*q == ' ' || *q == '\t' || *q == '\r' || *q == '\n')
            q++;
        if (*q == '=' || *q == ':')
            return true;
    }
    return false;
}

/* A libconfig string literal's contents. */
static void config_quote(struct buf *b, const char *s)
{
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            buf_append(b, "\\", 1);
        buf_append(b, s, 1);
    }
}

static void append_substituted(struct buf *b, const char *text, const struct th_daemon *d)
{
    char port[16];
    snprintf(port, sizeof port, "%d", d->port);
    static const char *const names[] = {"@CONNINFO@", "@ADMIN_CONNINFO@", "@PORT@"};
    const char *values[] = {d->db ? d->db->conninfo_service : "",
                            d->db ? d->db->conninfo_admin : "", port};
    while (*text) {
        bool replaced = false;
        for (size_t i = 0; i < 3 && !replaced; i++) {
            size_t n = strlen(names[i]);
            if (strncmp(text, names[i], n) == 0) {
                config_quote(b, values[i]);
                text += n;
                replaced = true;
            }
        }
        if (!replaced)
            buf_append(b, text++, 1);
    }
}

static void write_config(struct th_daemon *d, const char *extra)
{
    struct buf b = {0};
    buf_puts(&b, "# written by tests/integration/harness.c\n");
    if (extra == NULL || !defines_group(extra, "listen")) {
        char line[128];
        snprintf(line, sizeof line, "listen = { address = \"127.0.0.1\"; port = %d; };\n", d->port);
        buf_puts(&b, line);
    }
    if (extra == NULL || !defines_group(extra, "database")) {
        buf_puts(&b, "database = { conninfo = \"");
        config_quote(&b, d->db ? d->db->conninfo_service : "");
        buf_puts(&b, "\"; };\n");
    }
    if (extra) {
        append_substituted(&b, extra, d);
        buf_puts(&b, "\n");
    }
    FILE *f = fopen(d->config_path, "w");
    cr_assert(f != NULL, "cannot write %s: %s", d->config_path, strerror(errno));
    size_t written = fwrite(b.data, 1, b.len, f);
    bool ok = fclose(f) == 0 && written == b.len;
    free(b.data);
    cr_assert(ok, "cannot write %s", d->config_path);
}

static void daemon_exec(const struct th_daemon *d, pid_t parent)
{
    child_common_setup(parent);
    int log = open(d->log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    int null = open("/dev/null", O_RDONLY);
    if (log < 0 || null < 0)
        _exit(127);
    dup2(null, STDIN_FILENO);
    dup2(log, STDOUT_FILENO);
    dup2(log, STDERR_FILENO);
    if (log > 2)
        close(log);
    if (null > 2)
        close(null);
    execl(ROLLOUTD_BIN, ROLLOUTD_BIN, "--config", d->config_path, (char *)NULL);
    dprintf(STDERR_FILENO, "harness: cannot execute %s: %s\n", ROLLOUTD_BIN, strerror(errno));
    _exit(127);
}

static void daemon_launch(struct th_daemon *d, struct th_db *db, const char *extra)
{
    memset(d, 0, sizeof *d);
    d->db = db;
    snprintf(d->dir, sizeof d->dir, "/tmp/rolloutd-test-XXXXXX");
    cr_assert(mkdtemp(d->dir) != NULL, "mkdtemp: %s", strerror(errno));
    snprintf(d->config_path, sizeof d->config_path, "%s/rolloutd.conf", d->dir);
    snprintf(d->log_path, sizeof d->log_path, "%s/rolloutd.log", d->dir);
    d->port = free_port();
    write_config(d, extra);
    fflush(NULL); /* nothing buffered may be written twice by the child */
    pid_t parent = getpid();
    pid_t pid = fork();
    cr_assert(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0)
        daemon_exec(d, parent);
    d->pid = pid;
    track(pid, d->dir);
}

/* Reaps the daemon if it has ended; returns its exit status or -1 if it still runs. */
static int daemon_reap(struct th_daemon *d, int wait_ms)
{
    if (d->pid <= 0)
        return -1;
    int st = wait_exit(d->pid, wait_ms);
    if (st >= 0) {
        untrack_pid(d->pid);
        d->pid = 0;
    }
    return st;
}

static int http_status(struct th_daemon *d, const char *path, int timeout_s);

void th_daemon_start(struct th_daemon *d, struct th_db *db, const char *extra_config)
{
    daemon_launch(d, db, extra_config);
    long long deadline = now_ms() + READY_TIMEOUT_MS;
    int last = 0;
    for (;;) {
        int st = daemon_reap(d, 0);
        if (st >= 0) {
            char *log = th_daemon_log(d);
            cr_log_error("rolloutd log (%s):\n%s", d->log_path, log);
            free(log);
            cr_assert_fail("rolloutd exited with status %d before it was ready (its log is "
                           "above; config %s)",
                           st, d->config_path);
        }
        last = http_status(d, "/readyz", 2);
        if (last == 200)
            return;
        if (now_ms() >= deadline)
            break;
        sleep_ms(READY_POLL_MS);
    }
    kill(d->pid, SIGKILL);
    daemon_reap(d, 5000);
    char *log = th_daemon_log(d);
    cr_log_error("rolloutd log (%s):\n%s", d->log_path, log);
    free(log);
    cr_assert_fail("rolloutd was not ready within %d ms (last GET /readyz: %d; killed it; its log "
                   "is above)",
                   READY_TIMEOUT_MS, last);
}

int th_daemon_spawn(struct th_daemon *d, struct th_db *db, const char *extra_config, int wait_ms)
{
    daemon_launch(d, db, extra_config);
    return daemon_reap(d, wait_ms);
}

int th_daemon_stop(struct th_daemon *d, int sig)
{
    th_daemon_signal(d, sig);
    return th_daemon_reap(d, sig);
}

void th_daemon_signal(struct th_daemon *d, int sig)
{
    if (d->pid > 0)
        kill(d->pid, sig);
}

int th_daemon_reap(struct th_daemon *d, int sig)
{
    if (d->pid <= 0)
        return -1; /* never started, or already reaped */
    pid_t pid = d->pid;
    int st = daemon_reap(d, STOP_TIMEOUT_MS);
    if (st >= 0)
        return st;
    kill(pid, SIGKILL);
    daemon_reap(d, 5000);
    cr_assert_fail("rolloutd (pid %d) did not exit within %d ms of signal %d; killed it", (int)pid,
                   STOP_TIMEOUT_MS, sig);
    return -1;
}

char *th_daemon_log(struct th_daemon *d)
{
    char *log = read_file(d->log_path, NULL);
    return log ? log : xstrdup("");
}

/* ------------------------------------------------------------------------------------------ */
/* HTTP */

struct http_call {
    struct event_base *base;
    struct th_response *resp;
    bool done;
};

static char *header_copy(struct evkeyvalq *h, const char *name)
{
    const char *v = evhttp_find_header(h, name);
    return v ? xstrdup(v) : NULL;
}

static void http_done(struct evhttp_request *req, void *arg)
{
    struct http_call *call = arg;
    struct th_response *r = call->resp;
    call->done = true;
    if (req != NULL) {
        r->status = evhttp_request_get_response_code(req);
        struct evbuffer *in = evhttp_request_get_input_buffer(req);
        size_t n = in ? evbuffer_get_length(in) : 0;
        r->body = malloc(n + 1);
        cr_assert(r->body != NULL, "out of memory");
        if (n)
            evbuffer_remove(in, r->body, n);
        r->body[n] = '\0';
        r->len = n;
        struct evkeyvalq *h = evhttp_request_get_input_headers(req);
        r->content_type = header_copy(h, "Content-Type");
        r->retry_after = header_copy(h, "Retry-After");
        r->replayed = header_copy(h, "Idempotent-Replayed");
        r->request_id = header_copy(h, "X-Request-Id");
    }
    event_base_loopbreak(call->base);
}

static bool method_type(const char *m, enum evhttp_cmd_type *out)
{
    static const struct {
        const char *name;
        enum evhttp_cmd_type type;
    } methods[] = {
        {"GET", EVHTTP_REQ_GET},       {"POST", EVHTTP_REQ_POST},
        {"HEAD", EVHTTP_REQ_HEAD},     {"PUT", EVHTTP_REQ_PUT},
        {"DELETE", EVHTTP_REQ_DELETE}, {"OPTIONS", EVHTTP_REQ_OPTIONS},
        {"TRACE", EVHTTP_REQ_TRACE},   {"CONNECT", EVHTTP_REQ_CONNECT},
        {"PATCH", EVHTTP_REQ_PATCH},
    };
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
        if (strcmp(m, methods[i].name) == 0) {
            *out = methods[i].type;
            return true;
        }
    }
    return false;
}

static struct th_response *http_request(int port, const char *method, const char *path,
                                        const char *token, const char *content_type,
                                        const char *body, size_t len, int timeout_s)
{
    enum evhttp_cmd_type type = EVHTTP_REQ_GET;
    cr_assert(method_type(method, &type), "th_http: unsupported method %s", method);

    struct th_response *r = calloc(1, sizeof *r);
    cr_assert(r != NULL, "out of memory");
    struct event_base *base = event_base_new();
    cr_assert(base != NULL, "event_base_new failed");
    struct evhttp_connection *conn =
        evhttp_connection_base_new(base, NULL, "127.0.0.1", (unsigned short)port);
    cr_assert(conn != NULL, "evhttp_connection_base_new failed");
    evhttp_connection_set_timeout(conn, timeout_s);
    evhttp_connection_set_retries(conn, 0);

    struct http_call call = {.base = base, .resp = r};
    struct evhttp_request *req = evhttp_request_new(http_done, &call);
    cr_assert(req != NULL, "evhttp_request_new failed");
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    char host[32];
    snprintf(host, sizeof host, "127.0.0.1:%d", port);
    evhttp_add_header(h, "Host", host);
    evhttp_add_header(h, "Connection", "close");
    if (token) {
        struct buf auth = {0};
        buf_puts(&auth, "Bearer ");
        buf_puts(&auth, token);
        evhttp_add_header(h, "Authorization", auth.data);
        free(auth.data);
    }
    if (body != NULL || (content_type != NULL && content_type[0] != '\0')) {
        const char *ct = content_type ? content_type : "application/json";
        if (ct[0] != '\0')
            evhttp_add_header(h, "Content-Type", ct);
    }
    if (body != NULL) {
        char clen[32];
        snprintf(clen, sizeof clen, "%zu", len);
        evhttp_add_header(h, "Content-Length", clen);
        evbuffer_add(evhttp_request_get_output_buffer(req), body, len);
    }
    if (evhttp_make_request(conn, req, type, path) != 0) {
        /* libevent freed req */
        evhttp_connection_free(conn);
        event_base_free(base);
        r->body = xstrdup("");
        return r;
    }
    /* the whole exchange gets timeout_s, too, not just each read and write */
    struct timeval limit = {timeout_s, 0};
    event_base_loopexit(base, &limit);
    event_base_dispatch(base);
    evhttp_connection_free(conn); /* frees a request still pending after the deadline */
    event_base_free(base);

    if (r->body == NULL)
        r->body = xstrdup("");
    if (r->len > 0)
        r->json = json_loadb(r->body, r->len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    return r;
}

struct th_response *th_http(struct th_daemon *d, const char *method, const char *path,
                            const char *token, const char *content_type, const char *body,
                            size_t len)
{
    return http_request(d->port, method, path, token, content_type, body, len, HTTP_TIMEOUT_S);
}

static int http_status(struct th_daemon *d, const char *path, int timeout_s)
{
    struct th_response *r = http_request(d->port, "GET", path, NULL, NULL, NULL, 0, timeout_s);
    int st = r->status;
    th_response_free(r);
    return st;
}

void th_response_free(struct th_response *r)
{
    if (r == NULL)
        return;
    free(r->body);
    json_decref(r->json);
    free(r->content_type);
    free(r->retry_after);
    free(r->replayed);
    free(r->request_id);
    free(r);
}

double th_metric(struct th_daemon *d, const char *series)
{
    struct th_response *r = th_http(d, "GET", "/metrics", NULL, NULL, NULL, 0);
    cr_assert_eq(r->status, 200, "GET /metrics: %d %s", r->status, r->body);
    double v = -1;
    size_t n = strlen(series);
    for (const char *line = r->body; line && *line; line = strchr(line, '\n')) {
        if (*line == '\n')
            line++;
        if (strncmp(line, series, n) == 0 && line[n] == ' ') {
            v = strtod(line + n + 1, NULL);
            break;
        }
    }
    th_response_free(r);
    return v;
}

/* ------------------------------------------------------------------------------------------ */
/* Running a program */

static void set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* pipe2(O_CLOEXEC) is a GNU extension; we build with POSIX and the default set. */
static int pipe_cloexec(int fds[2])
{
    if (pipe(fds) != 0)
        return -1;
    fcntl(fds[0], F_SETFD, FD_CLOEXEC);
    fcntl(fds[1], F_SETFD, FD_CLOEXEC);
    return 0;
}

int th_run(char *const argv[], const char *stdin_data, char **out, char **err)
{
    int pin[2] = {-1, -1}, pout[2], perr[2];
    cr_assert(pipe_cloexec(pout) == 0 && pipe_cloexec(perr) == 0, "pipe: %s", strerror(errno));
    if (stdin_data)
        cr_assert(pipe_cloexec(pin) == 0, "pipe: %s", strerror(errno));
    fflush(NULL);
    pid_t parent = getpid();
    pid_t pid = fork();
    cr_assert(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        child_common_setup(parent);
        int in = stdin_data ? pin[0] : open("/dev/null", O_RDONLY);
        if (in < 0)
            _exit(127);
        dup2(in, STDIN_FILENO);
        dup2(pout[1], STDOUT_FILENO);
        dup2(perr[1], STDERR_FILENO);
        execv(argv[0], argv);
        dprintf(STDERR_FILENO, "harness: cannot execute %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(pout[1]);
    close(perr[1]);
    if (stdin_data) {
        close(pin[0]);
        set_nonblock(pin[1]);
    }
    /* the child may exit without reading its input: a write must fail, not kill us */
    struct sigaction ign = {.sa_handler = SIG_IGN}, old;
    sigemptyset(&ign.sa_mask);
    sigaction(SIGPIPE, &ign, &old);

    struct buf ob = {0}, eb = {0};
    size_t in_left = stdin_data ? strlen(stdin_data) : 0;
    const char *in_p = stdin_data;
    int fd_in = pin[1], fd_out = pout[0], fd_err = perr[0];
    if (fd_in >= 0 && in_left == 0) {
        close(fd_in);
        fd_in = -1;
    }
    long long deadline = now_ms() + RUN_TIMEOUT_MS;
    bool timed_out = false;
    while (fd_out >= 0 || fd_err >= 0 || fd_in >= 0) {
        struct pollfd pfd[3] = {{fd_out, POLLIN, 0}, {fd_err, POLLIN, 0}, {fd_in, POLLOUT, 0}};
        long long left = deadline - now_ms();
        if (left <= 0) {
            timed_out = true;
            break;
        }
        int n = poll(pfd, 3, (int)(left > 1000 ? 1000 : left));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            break;
        char chunk[8192];
        for (int i = 0; i < 2; i++) {
            int *fd = i == 0 ? &fd_out : &fd_err;
            if (*fd < 0 || !(pfd[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            ssize_t got = read(*fd, chunk, sizeof chunk);
            if (got > 0)
                buf_append(i == 0 ? &ob : &eb, chunk, (size_t)got);
            else if (got == 0 || (errno != EINTR && errno != EAGAIN)) {
                close(*fd);
                *fd = -1;
            }
        }
        if (fd_in >= 0 && (pfd[2].revents & (POLLOUT | POLLERR | POLLHUP))) {
            ssize_t w = write(fd_in, in_p, in_left);
            if (w > 0) {
                in_p += w;
                in_left -= (size_t)w;
            }
            if (in_left == 0 || (w < 0 && errno != EAGAIN && errno != EINTR)) {
                close(fd_in);
                fd_in = -1;
            }
        }
    }
    sigaction(SIGPIPE, &old, NULL);
    if (fd_in >= 0)
        close(fd_in);
    if (fd_out >= 0)
        close(fd_out);
    if (fd_err >= 0)
        close(fd_err);
    if (timed_out)
        kill(pid, SIGKILL);
    int ws;
    while (waitpid(pid, &ws, 0) < 0 && errno == EINTR)
        ;
    char *o = buf_take(&ob), *e = buf_take(&eb);
    if (timed_out) {
        cr_log_error("%s stdout:\n%s\nstderr:\n%s", argv[0], o, e);
        free(o);
        free(e);
        cr_assert_fail("%s did not finish within %d ms; killed it", argv[0], RUN_TIMEOUT_MS);
    }
    if (out)
        *out = o;
    else
        free(o);
    if (err)
        *err = e;
    else
        free(e);
    return exit_status(ws);
}

/* ------------------------------------------------------------------------------------------ */

void th_uuid(char out[37])
{
    unsigned char b[16];
    cr_assert(RAND_bytes(b, sizeof b) == 1, "RAND_bytes failed");
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* variant RFC 4122 */
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
             b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
             b[14], b[15]);
}

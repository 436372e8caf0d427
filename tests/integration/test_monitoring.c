/* Monitoring as the operators run it (issue 4): `promtool check metrics` on /metrics, a real
 * Prometheus server scraping the daemon with config/prometheus.yml and reading a progress
 * figure back through its HTTP API, and check_http from monitoring-plugins against /readyz and
 * /status, OK with a healthy daemon and CRITICAL when its database is unreachable. The commands
 * proven here are listed in tests/monitoring/README.md. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "harness_load.h"

#define PROMETHEUS "/usr/bin/prometheus"
#define PROMTOOL "/usr/bin/promtool"
#define CHECK_HTTP "/usr/lib/nagios/plugins/check_http"
#define PROMETHEUS_EXAMPLE ROLLOUT_SOURCE_DIR "/config/prometheus.yml"
#define EXAMPLE_TARGET "\"rolloutd:8080\""

/* ------------------------------------------------------------------------------------------ */
/* Helpers */

static void need(const char *path, const char *package)
{
    cr_assert(access(path, X_OK) == 0,
              "%s is missing: install the Debian package %s (tools/dev test installs it)", path,
              package);
}

/* Runs a program (NULL-terminated arguments), returns its exit status, stdout+stderr in *out. */
static int run(char **out, const char *stdin_data, const char *const *args)
{
    char *argv[32];
    int n = 0;
    for (; args[n] != NULL; n++) {
        cr_assert(n < 31, "too many arguments");
        argv[n] = (char *)args[n];
    }
    argv[n] = NULL;
    char *o = NULL, *e = NULL;
    int st = th_run(argv, stdin_data, &o, &e);
    size_t lo = strlen(o), le = strlen(e);
    char *both = malloc(lo + le + 1);
    cr_assert(both != NULL, "out of memory");
    memcpy(both, o, lo);
    memcpy(both + lo, e, le + 1);
    free(o);
    free(e);
    *out = both;
    return st;
}

static void post_active(struct th_daemon *d, const char *token, int employee, const char *item)
{
    char id[37], body[300];
    th_uuid(id);
    snprintf(body, sizeof body,
             "{\"event_id\":\"%s\",\"employee\":\"P%07d\",\"item\":\"%s\",\"state\":\"active\","
             "\"occurred_at\":\"2026-01-05T10:00:00+01:00\"}",
             id, employee, item);
    struct th_response *r = th_http(d, "POST", "/v1/events", token, NULL, body, strlen(body));
    cr_assert_eq(r->status, 201, "POST /v1/events: expected 201, got %d: %s", r->status, r->body);
    th_response_free(r);
}

/* Polls until the daemon's own metric shows want (its snapshot follows commits within
 * progress.snapshot_refresh_ms). */
static void wait_metric(struct th_daemon *d, const char *series, double want)
{
    long long deadline = th_now_ms() + 5000;
    double v;
    while ((v = th_metric(d, series)) != want && th_now_ms() < deadline)
        th_sleep_ms(20);
    cr_assert(v == want, "rolloutd's own %s is %g, expected %g", series, v, want);
}

/* Polls GET /status until its "status" is want (the pool may still be connecting). */
static void wait_status(struct th_daemon *d, const char *want)
{
    long long deadline = th_now_ms() + 5000;
    char got[32] = "";
    for (;;) {
        struct th_response *r = th_http(d, "GET", "/status", NULL, NULL, NULL, 0);
        const char *s = r->json ? json_string_value(json_object_get(r->json, "status")) : NULL;
        snprintf(got, sizeof got, "%s", s ? s : "(none)");
        th_response_free(r);
        if (strcmp(got, want) == 0 || th_now_ms() >= deadline)
            break;
        th_sleep_ms(20);
    }
    cr_assert_str_eq(got, want, "GET /status says \"%s\", expected \"%s\"", got, want);
}

/* ------------------------------------------------------------------------------------------ */
/* promtool */

Test(monitoring, promtool_checks_metrics, .timeout = 60)
{
    need(PROMTOOL, "prometheus");
    struct th_db db;
    th_db_create(&db);
    char *token = th_token(&db, "monitor", "admin", NULL);
    struct th_daemon d;
    th_daemon_start(&d, &db, NULL);
    /* some traffic, so that the counters and histograms have samples with labels */
    post_active(&d, token, 1, "hessen_smartphone");
    post_active(&d, token, 2, "mobile_device");
    struct th_response *r = th_http(&d, "POST", "/v1/events", token, NULL, "{", 1);
    cr_assert_eq(r->status, 400, "a broken body: expected 400, got %d", r->status);
    th_response_free(r);
    r = th_http(&d, "GET", "/v1/progress", NULL, NULL, NULL, 0);
    th_response_free(r);
    wait_metric(&d, "rolloutd_rollout_done{item=\"hessen_smartphone\"}", 1);

    r = th_http(&d, "GET", "/metrics", NULL, NULL, NULL, 0);
    cr_assert_eq(r->status, 200, "GET /metrics: %d", r->status);
    cr_expect(r->content_type && strstr(r->content_type, "version=0.0.4"),
              "GET /metrics Content-Type is %s, expected text/plain; version=0.0.4",
              r->content_type ? r->content_type : "(none)");
    char *out = NULL;
    const char *args[] = {PROMTOOL, "check", "metrics", NULL};
    int st = run(&out, r->body, args);
    if (st != 0)
        cr_log_error("promtool check metrics:\n%s\nthe metrics:\n%s", out, r->body);
    cr_expect_eq(st, 0, "promtool check metrics exited %d on GET /metrics (its verdict is above)",
                 st);
    free(out);
    th_response_free(r);

    cr_expect_eq(th_daemon_stop(&d, SIGTERM), 0, "rolloutd did not exit with 0");
    free(token);
    th_db_drop(&db);
}

/* ------------------------------------------------------------------------------------------ */
/* A real Prometheus */

static pid_t prom_pid;
static char prom_dir[128];

static void prom_cleanup(void)
{
    if (prom_pid > 0) {
        kill(prom_pid, SIGKILL);
        waitpid(prom_pid, NULL, 0);
        prom_pid = 0;
    }
    const char *keep = getenv("ROLLOUT_TEST_KEEP");
    if (prom_dir[0] && !(keep && strcmp(keep, "1") == 0)) {
        char *argv[] = {(char *)"/bin/rm", (char *)"-rf", prom_dir, NULL};
        th_run(argv, NULL, NULL, NULL);
    }
    prom_dir[0] = '\0';
}

/* config/prometheus.yml (the example shipped with the compose set-up) pointed at the daemon and
 * scraping every second. */
static void write_prometheus_config(const char *path, int daemon_port)
{
    FILE *in = fopen(PROMETHEUS_EXAMPLE, "r");
    cr_assert(in != NULL, "cannot read %s: %s", PROMETHEUS_EXAMPLE, strerror(errno));
    FILE *out = fopen(path, "w");
    cr_assert(out != NULL, "cannot write %s: %s", path, strerror(errno));
    char line[512];
    bool target = false;
    while (fgets(line, sizeof line, in)) {
        char *t = strstr(line, EXAMPLE_TARGET);
        const char *key = NULL;
        if (strstr(line, "scrape_interval:"))
            key = "scrape_interval";
        else if (strstr(line, "evaluation_interval:"))
            key = "evaluation_interval";
        else if (strstr(line, "scrape_timeout:"))
            key = "scrape_timeout";
        if (t) {
            fprintf(out, "%.*s\"127.0.0.1:%d\"%s", (int)(t - line), line, daemon_port,
                    t + strlen(EXAMPLE_TARGET));
            target = true;
        } else if (key) {
            fprintf(out, "%.*s%s: 1s\n", (int)strspn(line, " "), line, key);
        } else {
            fputs(line, out);
        }
    }
    fclose(in);
    cr_assert(fclose(out) == 0, "cannot write %s", path);
    cr_assert(target, "%s no longer scrapes %s; adapt write_prometheus_config()",
              PROMETHEUS_EXAMPLE, EXAMPLE_TARGET);
}

static int free_tcp_port(void)
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

static void start_prometheus(int daemon_port, struct th_daemon *prom)
{
    need(PROMETHEUS, "prometheus");
    atexit(prom_cleanup);
    snprintf(prom_dir, sizeof prom_dir, "/tmp/rolloutd-prom-XXXXXX");
    cr_assert(mkdtemp(prom_dir) != NULL, "mkdtemp: %s", strerror(errno));
    char config[200], data[200], log[200], listen[64], cfg_arg[220], data_arg[220];
    snprintf(config, sizeof config, "%s/prometheus.yml", prom_dir);
    snprintf(data, sizeof data, "%s/data", prom_dir);
    snprintf(log, sizeof log, "%s/prometheus.log", prom_dir);
    write_prometheus_config(config, daemon_port);
    memset(prom, 0, sizeof *prom);
    prom->port = free_tcp_port();
    snprintf(listen, sizeof listen, "--web.listen-address=127.0.0.1:%d", prom->port);
    snprintf(cfg_arg, sizeof cfg_arg, "--config.file=%s", config);
    snprintf(data_arg, sizeof data_arg, "--storage.tsdb.path=%s", data);

    fflush(NULL);
    pid_t parent = getpid();
    pid_t pid = fork();
    cr_assert(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd < 0)
            _exit(127);
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
        execl(PROMETHEUS, PROMETHEUS, cfg_arg, data_arg, listen, (char *)NULL);
        _exit(127);
    }
    prom_pid = pid;

    long long deadline = th_now_ms() + 20000;
    int st = 0;
    while (th_now_ms() < deadline) {
        struct th_response *r = th_http(prom, "GET", "/-/ready", NULL, NULL, NULL, 0);
        st = r->status;
        th_response_free(r);
        if (st == 200 || waitpid(pid, NULL, WNOHANG) == pid)
            break;
        th_sleep_ms(100);
    }
    if (st != 200) {
        char *out = NULL;
        const char *args[] = {"/usr/bin/tail", "-n", "30", log, NULL};
        run(&out, NULL, args);
        cr_log_error("prometheus log:\n%s", out);
        free(out);
    }
    cr_assert_eq(st, 200, "Prometheus did not become ready within 20 s (its log is above)");
}

/* The value of the first sample of an instant query, or -1 when there is none. */
static double prom_query(struct th_daemon *prom, const char *query_encoded)
{
    char path[512];
    snprintf(path, sizeof path, "/api/v1/query?query=%s", query_encoded);
    struct th_response *r = th_http(prom, "GET", path, NULL, NULL, NULL, 0);
    cr_assert_eq(r->status, 200, "Prometheus %s: %d %s", path, r->status, r->body);
    json_t *result = json_object_get(json_object_get(r->json, "data"), "result");
    double v = -1;
    if (json_array_size(result) > 0) {
        const char *s = json_string_value(
            json_array_get(json_object_get(json_array_get(result, 0), "value"), 1));
        if (s)
            v = strtod(s, NULL);
    }
    th_response_free(r);
    return v;
}

static double prom_wait(struct th_daemon *prom, const char *query_encoded, double want,
                        int timeout_ms)
{
    long long deadline = th_now_ms() + timeout_ms;
    double v;
    while ((v = prom_query(prom, query_encoded)) != want && th_now_ms() < deadline)
        th_sleep_ms(200);
    return v;
}

#define Q_UP "up%7Bjob%3D%22rolloutd%22%7D"
#define Q_DONE "rolloutd_rollout_done%7Bitem%3D%22hessen_smartphone%22%7D"
#define SERIES_DONE "rolloutd_rollout_done{item=\"hessen_smartphone\"}"

Test(monitoring, prometheus_scrapes_progress, .timeout = 60)
{
    long long t0 = th_now_ms();
    struct th_db db;
    th_db_create(&db);
    char *token = th_token(&db, "monitor", "admin", NULL);
    struct th_daemon d, prom;
    th_daemon_start(&d, &db, NULL);
    for (int e = 1; e <= 3; e++)
        post_active(&d, token, e, "hessen_smartphone");
    post_active(&d, token, 4, "mobile_device");
    wait_metric(&d, SERIES_DONE, 3);

    start_prometheus(d.port, &prom);
    double up = prom_wait(&prom, Q_UP, 1, 20000);
    cr_assert(up == 1, "Prometheus does not see the daemon up within 20 s (up = %g)", up);
    double seen = prom_wait(&prom, Q_DONE, 3, 10000);
    cr_assert(seen == 3, "Prometheus has %s = %g, the daemon says 3", SERIES_DONE, seen);

    /* a change travels the same way */
    for (int e = 11; e <= 14; e++)
        post_active(&d, token, e, "hessen_smartphone");
    wait_metric(&d, SERIES_DONE, 7);
    struct th_response *r = th_http(&d, "GET", "/status", NULL, NULL, NULL, 0);
    json_t *items = r->json ? json_object_get(r->json, "items") : NULL;
    long long status_done = -1;
    for (size_t i = 0; i < json_array_size(items); i++) {
        json_t *it = json_array_get(items, i);
        if (strcmp(json_string_value(json_object_get(it, "item")), "hessen_smartphone") == 0)
            status_done = json_integer_value(json_object_get(it, "done"));
    }
    th_response_free(r);
    cr_expect_eq(status_done, 7, "GET /status says hessen_smartphone done %lld, /metrics 7",
                 status_done);
    seen = prom_wait(&prom, Q_DONE, 7, 10000);
    cr_assert(seen == 7, "Prometheus has %s = %g after the new activations, the daemon says 7",
              SERIES_DONE, seen);
    cr_log_info("prometheus: scraped and read back in %lld ms", th_now_ms() - t0);

    kill(prom_pid, SIGTERM);
    waitpid(prom_pid, NULL, 0);
    prom_pid = 0;
    prom_cleanup();
    cr_expect_eq(th_daemon_stop(&d, SIGTERM), 0, "rolloutd did not exit with 0");
    free(token);
    th_db_drop(&db);
}

/* ------------------------------------------------------------------------------------------ */
/* check_http */

/* check_http against the daemon; the exit status (0 OK, 1 WARNING, 2 CRITICAL), its one line
 * of output in *out. */
static int check_http(struct th_daemon *d, const char *path, const char *opt, const char *arg,
                      char **out)
{
    char port[16];
    snprintf(port, sizeof port, "%d", d->port);
    const char *args[] = {CHECK_HTTP, "-H", "127.0.0.1", "-p", port, "-u", path, opt, arg, NULL};
    return run(out, NULL, args);
}

Test(monitoring, check_http_ok_when_healthy, .timeout = 60)
{
    need(CHECK_HTTP, "monitoring-plugins-basic");
    struct th_db db;
    th_db_create(&db);
    struct th_daemon d;
    th_daemon_start(&d, &db, NULL);
    wait_status(&d, "ok"); /* every pool connection up */

    char *out = NULL;
    int st = check_http(&d, "/readyz", "-e", "200", &out);
    cr_expect_eq(st, 0, "check_http -u /readyz -e 200: exit %d: %s", st, out);
    cr_expect(strncmp(out, "HTTP OK", 7) == 0, "check_http said: %s", out);
    free(out);

    st = check_http(&d, "/status", "-s", "\"status\":\"ok\"", &out);
    cr_expect_eq(st, 0, "check_http -u /status -s '\"status\":\"ok\"': exit %d: %s", st, out);
    free(out);

    st = check_http(&d, "/status?format=text", "-s", "ROLLOUTD OK", &out);
    cr_expect_eq(st, 0, "check_http -u '/status?format=text' -s 'ROLLOUTD OK': exit %d: %s", st,
                 out);
    free(out);

    cr_expect_eq(th_daemon_stop(&d, SIGTERM), 0, "rolloutd did not exit with 0");
    th_db_drop(&db);
}

Test(monitoring, check_http_critical_when_database_unreachable, .timeout = 60)
{
    need(CHECK_HTTP, "monitoring-plugins-basic");
    /* nothing listens on /tmp/.s.PGSQL.1: rolloutd starts all the same and serves 503 */
    struct th_daemon d;
    int st = th_daemon_spawn(&d, NULL,
                             "database = { conninfo = \"host=/tmp port=1 dbname=rollout "
                             "user=rolloutd\"; };",
                             500);
    cr_assert_eq(st, -1, "rolloutd with an unreachable database exited (status %d)", st);
    long long deadline = th_now_ms() + 10000;
    int health = 0;
    while (health != 200 && th_now_ms() < deadline) {
        struct th_response *r = th_http(&d, "GET", "/healthz", NULL, NULL, NULL, 0);
        health = r->status;
        th_response_free(r);
        if (health != 200)
            th_sleep_ms(50);
    }
    cr_assert_eq(health, 200, "GET /healthz: %d (the daemon should live without its database)",
                 health);
    struct th_response *r = th_http(&d, "GET", "/status", NULL, NULL, NULL, 0);
    const char *status = r->json ? json_string_value(json_object_get(r->json, "status")) : NULL;
    cr_expect(r->status == 503 && status && strcmp(status, "down") == 0,
              "GET /status without a database: %d %s (expected 503 and \"down\")", r->status,
              r->body);
    th_response_free(r);

    char *out = NULL;
    st = check_http(&d, "/readyz", "-e", "200", &out);
    cr_expect_eq(st, 2, "check_http -u /readyz -e 200 without a database: exit %d: %s", st, out);
    cr_expect(strstr(out, "CRITICAL") != NULL, "check_http said: %s", out);
    free(out);

    st = check_http(&d, "/status", "-s", "\"status\":\"ok\"", &out);
    cr_expect_eq(st, 2,
                 "check_http -u /status -s '\"status\":\"ok\"' without a database: exit "
                 "%d: %s",
                 st, out);
    cr_expect(strstr(out, "CRITICAL") != NULL, "check_http said: %s", out);
    free(out);

    st = check_http(&d, "/status?format=text", "-s", "ROLLOUTD OK", &out);
    cr_expect_eq(st, 2, "check_http -u '/status?format=text' without a database: exit %d: %s", st,
                 out);
    free(out);

    cr_expect_eq(th_daemon_stop(&d, SIGTERM), 0, "rolloutd did not exit with 0");
}

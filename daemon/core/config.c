#include "config.h"

#include <libconfig.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

enum setting_type {
    SETTING_STRING, /* char *, owned by the config */
    SETTING_INT,    /* int within [min, max] */
    SETTING_BOOL,   /* bool */
    SETTING_LEVEL   /* char *, one of the log level names */
};

struct setting {
    const char *path; /* libconfig path, "group.name" */
    enum setting_type type;
    size_t offset; /* into struct rollout_config */
    const char *default_string;
    long long default_int; /* also the bool default */
    long long min, max;
    bool reloadable; /* takes effect on SIGHUP without a restart */
    const char *doc;
};

#define OFF(field) offsetof(struct rollout_config, field)

/* The one table of settings. Groups appear in the example file in this order. */
static const struct setting settings[] = {
    {"listen.address", SETTING_STRING, OFF(listen_address), "127.0.0.1", 0, 0, 0, false,
     "IP address to listen on (an address, not a host name)."},
    {"listen.port", SETTING_INT, OFF(listen_port), NULL, 8080, 0, 65535, false,
     "TCP port to listen on; 0 picks a free port (printed at start-up)."},
    {"listen.tls_certificate", SETTING_STRING, OFF(tls_certificate), "", 0, 0, 0, false,
     "PEM certificate chain; with tls_key set, the listener speaks HTTPS only."},
    {"listen.tls_key", SETTING_STRING, OFF(tls_key), "", 0, 0, 0, false, "PEM private key."},

    {"database.conninfo", SETTING_STRING, OFF(db_conninfo), "dbname=rollout", 0, 0, 0, false,
     "libpq connection string. Use hostaddr= or a unix socket directory: libpq resolves host "
     "names with a blocking call. Several hosts with target_session_attrs=read-write follow a "
     "fail-over."},
    {"database.admin_conninfo", SETTING_STRING, OFF(db_admin_conninfo), "", 0, 0, 0, false,
     "libpq connection string rolloutctl uses (a role in rollout_admin); empty: conninfo."},
    {"database.pool_size", SETTING_INT, OFF(db_pool_size), NULL, 4, 1, 64, false,
     "Connections to PostgreSQL. Each carries one group commit at a time."},
    {"database.connect_timeout", SETTING_INT, OFF(db_connect_timeout_s), NULL, 5, 1, 300, false,
     "Seconds a connection attempt may take before it is abandoned."},
    {"database.statement_timeout", SETTING_INT, OFF(db_statement_timeout_ms), NULL, 10000, 100,
     600000, false, "Milliseconds one statement may run on the server."},
    {"database.reconnect_max", SETTING_INT, OFF(db_reconnect_max_s), NULL, 10, 1, 300, false,
     "Upper bound in seconds of the back-off between reconnection attempts."},

    {"http.max_body_bytes", SETTING_INT, OFF(http_max_body_bytes), NULL, 4194304, 1024,
     268435456, false, "Largest request body accepted; larger ones get 413."},
    {"http.max_header_bytes", SETTING_INT, OFF(http_max_header_bytes), NULL, 16384, 1024, 1048576,
     false, "Largest request header block accepted."},
    {"http.timeout", SETTING_INT, OFF(http_timeout_s), NULL, 30, 1, 3600, false,
     "Seconds a connection may stay idle or take to send its request."},
    {"http.request_deadline_ms", SETTING_INT, OFF(http_request_deadline_ms), NULL, 20000, 100,
     600000, false,
     "Milliseconds a request may wait for its commit before it gets 503 with Retry-After."},
    {"http.max_connections", SETTING_INT, OFF(http_max_connections), NULL, 4096, 16, 1000000,
     false, "Open client connections at most; beyond that new ones wait in the kernel backlog."},
    {"http.batch_max_events", SETTING_INT, OFF(batch_max_events), NULL, 1000, 1, 100000, true,
     "Most events in one POST /v1/events batch; more get 413."},

    {"queue.max_events", SETTING_INT, OFF(queue_max_events), NULL, 20000, 1, 10000000, false,
     "Events waiting for the database at most; when full, posts get 503 with Retry-After."},
    {"queue.group_max_events", SETTING_INT, OFF(group_max_events), NULL, 2000, 1, 100000, false,
     "Most events written in one group commit."},
    {"queue.group_parallel_min_events", SETTING_INT, OFF(group_parallel_min_events), NULL, 100, 1,
     100000, false,
     "While a group commit runs, another starts beside it on a free connection only with at "
     "least this many events; fewer wait for the running one and then go as one group (each "
     "group costs the database a fixed part on top of its events). 1: every free connection "
     "takes the waiting events at once."},

    {"access.public_status", SETTING_BOOL, OFF(public_status), NULL, 1, 0, 1, true,
     "GET /status without a token."},
    {"access.public_metrics", SETTING_BOOL, OFF(public_metrics), NULL, 1, 0, 1, true,
     "GET /metrics without a token."},
    {"access.public_dashboard", SETTING_BOOL, OFF(public_dashboard), NULL, 1, 0, 1, true,
     "The dashboard's data (/v1/progress, /v1/progress/daily, /v1/ressorts) without a token. "
     "The page itself (GET /) holds no data and is always served; without this it asks for a "
     "reader token."},
    {"access.token_refresh_ms", SETTING_INT, OFF(token_refresh_ms), NULL, 1000, 100, 60000, true,
     "How often the token cache asks the database for revocations and new tokens."},

    {"progress.snapshot_refresh_ms", SETTING_INT, OFF(snapshot_refresh_ms), NULL, 250, 10, 60000,
     true, "How soon after a commit (own or another instance's) the progress snapshot is "
           "re-read."},

    {"log.level", SETTING_LEVEL, OFF(log_level), "info", 0, 0, 0, true,
     "error, warn, info (one line per request) or debug."},
    {"log.syslog", SETTING_BOOL, OFF(log_syslog), NULL, 0, 0, 1, false,
     "Log to syslog (facility daemon) instead of stderr."},
};

#define SETTING_COUNT (sizeof settings / sizeof settings[0])

static void *field(struct rollout_config *cfg, const struct setting *s)
{
    return (char *)cfg + s->offset;
}

static const void *cfield(const struct rollout_config *cfg, const struct setting *s)
{
    return (const char *)cfg + s->offset;
}

static void set_string(char **slot, const char *value)
{
    free(*slot);
    *slot = strdup(value);
    if (*slot == NULL)
        abort();
}

/* The report's figures until the configuration or `rolloutctl targets set` says otherwise:
 * every one of the 72,000 employees equipped, the smartphone for a wider but not universal
 * group. Written into the example file by config_write_example(). */
static const struct config_item_target default_targets[ITEM_COUNT] = {
    [ITEM_MOBILE_DEVICE] = {true, 72000, "2027-12-31"},
    [ITEM_HESSEN_SMARTPHONE] = {true, 30000, "2027-06-30"},
    [ITEM_HESSEN_VOICE] = {true, 72000, "2027-12-31"},
    [ITEM_WLAN_AUTOLOGIN] = {true, 72000, "2027-03-31"},
};

void config_defaults(struct rollout_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    memcpy(cfg->targets, default_targets, sizeof cfg->targets);
    for (size_t i = 0; i < SETTING_COUNT; i++) {
        const struct setting *s = &settings[i];
        switch (s->type) {
        case SETTING_STRING:
        case SETTING_LEVEL:
            set_string(field(cfg, s), s->default_string);
            break;
        case SETTING_INT:
            *(int *)field(cfg, s) = (int)s->default_int;
            break;
        case SETTING_BOOL:
            *(bool *)field(cfg, s) = s->default_int != 0;
            break;
        }
    }
}

void config_free(struct rollout_config *cfg)
{
    for (size_t i = 0; i < SETTING_COUNT; i++) {
        const struct setting *s = &settings[i];
        if (s->type == SETTING_STRING || s->type == SETTING_LEVEL) {
            char **slot = field(cfg, s);
            free(*slot);
            *slot = NULL;
        }
    }
}

static const struct setting *find_setting(const char *path)
{
    for (size_t i = 0; i < SETTING_COUNT; i++)
        if (strcmp(settings[i].path, path) == 0)
            return &settings[i];
    return NULL;
}

static bool fail(char err[CONFIG_ERROR_MAX], const char *file, const config_setting_t *where,
                 const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static bool fail(char err[CONFIG_ERROR_MAX], const char *file, const config_setting_t *where,
                 const char *fmt, ...)
{
    char reason[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    snprintf(err, CONFIG_ERROR_MAX, "%.150s:%d: %s", file,
             where ? config_setting_source_line(where) : 0, reason);
    return false;
}

static bool read_scalar(struct rollout_config *cfg, const struct setting *s,
                        const config_setting_t *node, const char *file, char *err)
{
    char buf[64];
    switch (s->type) {
    case SETTING_STRING:
    case SETTING_LEVEL: {
        if (config_setting_type(node) != CONFIG_TYPE_STRING)
            return fail(err, file, node, "%s must be a string in double quotes", s->path);
        const char *v = config_setting_get_string(node);
        if (s->type == SETTING_LEVEL) {
            enum log_level lvl;
            if (!log_level_parse(v, &lvl))
                return fail(err, file, node,
                            "%s is \"%s\"; use one of error, warn, info, debug", s->path, v);
        }
        set_string(field(cfg, s), v);
        return true;
    }
    case SETTING_INT: {
        int t = config_setting_type(node);
        if (t != CONFIG_TYPE_INT && t != CONFIG_TYPE_INT64)
            return fail(err, file, node, "%s must be a whole number", s->path);
        long long v = config_setting_get_int64(node);
        if (v < s->min || v > s->max) {
            snprintf(buf, sizeof buf, "%lld; allowed are %lld to %lld", v, s->min, s->max);
            return fail(err, file, node, "%s is %s", s->path, buf);
        }
        *(int *)field(cfg, s) = (int)v;
        return true;
    }
    case SETTING_BOOL:
        if (config_setting_type(node) != CONFIG_TYPE_BOOL)
            return fail(err, file, node, "%s must be true or false", s->path);
        *(bool *)field(cfg, s) = config_setting_get_bool(node) != 0;
        return true;
    }
    return false;
}

static bool valid_date(const char *d)
{
    if (strlen(d) != 10 || d[4] != '-' || d[7] != '-')
        return false;
    for (int i = 0; i < 10; i++)
        if (i != 4 && i != 7 && (d[i] < '0' || d[i] > '9'))
            return false;
    int year = (d[0] - '0') * 1000 + (d[1] - '0') * 100 + (d[2] - '0') * 10 + (d[3] - '0');
    int month = (d[5] - '0') * 10 + (d[6] - '0');
    int day = (d[8] - '0') * 10 + (d[9] - '0');
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (month < 1 || month > 12 || day < 1)
        return false;
    int leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    return day <= mdays[month - 1] + (month == 2 ? leap : 0);
}

/* targets = { hessen_smartphone = { target = 30000; deadline = "2027-06-30"; }; ... } */
static bool read_targets(struct rollout_config *cfg, const config_setting_t *group,
                         const char *file, char *err)
{
    if (!config_setting_is_group(group))
        return fail(err, file, group, "targets must be a group { item = { ... }; }");
    for (int i = 0; i < config_setting_length(group); i++) {
        const config_setting_t *it = config_setting_get_elem(group, (unsigned)i);
        const char *name = config_setting_name(it);
        enum item item;
        if (!item_parse(name, &item))
            return fail(err, file, it,
                        "unknown item \"%s\" in targets; items are mobile_device, "
                        "hessen_smartphone, hessen_voice, wlan_autologin",
                        name);
        if (!config_setting_is_group(it))
            return fail(err, file, it, "targets.%s must be a group { target = N; deadline = "
                                       "\"YYYY-MM-DD\"; }",
                        name);
        struct config_item_target *t = &cfg->targets[item];
        bool have_target = false, have_deadline = false;
        for (int j = 0; j < config_setting_length(it); j++) {
            const config_setting_t *kv = config_setting_get_elem(it, (unsigned)j);
            const char *key = config_setting_name(kv);
            if (strcmp(key, "target") == 0) {
                int ty = config_setting_type(kv);
                if ((ty != CONFIG_TYPE_INT && ty != CONFIG_TYPE_INT64) ||
                    config_setting_get_int64(kv) < 1 || config_setting_get_int64(kv) > 10000000)
                    return fail(err, file, kv,
                                "targets.%s.target must be a whole number from 1 to 10000000",
                                name);
                t->target = config_setting_get_int64(kv);
                have_target = true;
            } else if (strcmp(key, "deadline") == 0) {
                const char *d = config_setting_get_string(kv);
                if (d == NULL || !valid_date(d))
                    return fail(err, file, kv, "targets.%s.deadline must be a date \"YYYY-MM-DD\"",
                                name);
                memcpy(t->deadline, d, 11);
                have_deadline = true;
            } else {
                return fail(err, file, kv, "unknown setting targets.%s.%s", name, key);
            }
        }
        if (!have_target || !have_deadline)
            return fail(err, file, it, "targets.%s needs both target and deadline", name);
        t->set = true;
    }
    return true;
}

static bool walk(struct rollout_config *cfg, const config_setting_t *node, const char *prefix,
                 const char *file, char *err)
{
    for (int i = 0; i < config_setting_length(node); i++) {
        const config_setting_t *child = config_setting_get_elem(node, (unsigned)i);
        char path[256];
        snprintf(path, sizeof path, "%s%s%s", prefix, *prefix ? "." : "",
                 config_setting_name(child));
        if (*prefix == '\0' && strcmp(path, "targets") == 0) {
            if (!read_targets(cfg, child, file, err))
                return false;
            continue;
        }
        const struct setting *s = find_setting(path);
        if (s != NULL) {
            if (!read_scalar(cfg, s, child, file, err))
                return false;
            continue;
        }
        if (config_setting_is_group(child) && *prefix == '\0') {
            /* a known group? */
            size_t len = strlen(path);
            bool known = false;
            for (size_t k = 0; k < SETTING_COUNT; k++)
                if (strncmp(settings[k].path, path, len) == 0 && settings[k].path[len] == '.')
                    known = true;
            if (known) {
                if (!walk(cfg, child, path, file, err))
                    return false;
                continue;
            }
        }
        return fail(err, file, child, "unknown setting \"%s\" (see config/rolloutd.conf for the "
                                      "list)",
                    path);
    }
    return true;
}

static bool load(struct rollout_config *cfg, config_t *lc, int read_ok, const char *name,
                 char err[CONFIG_ERROR_MAX])
{
    config_defaults(cfg);
    if (!read_ok) {
        if (config_error_type(lc) == CONFIG_ERR_FILE_IO)
            snprintf(err, CONFIG_ERROR_MAX, "%s: cannot read the file", name);
        else
            snprintf(err, CONFIG_ERROR_MAX, "%s:%d: %s", name, config_error_line(lc),
                     config_error_text(lc));
        return false;
    }
    if (!walk(cfg, config_root_setting(lc), "", name, err)) {
        config_free(cfg);
        config_defaults(cfg);
        return false;
    }
    if ((cfg->tls_certificate[0] == '\0') != (cfg->tls_key[0] == '\0')) {
        snprintf(err, CONFIG_ERROR_MAX,
                 "%s: listen.tls_certificate and listen.tls_key go together; set both or neither",
                 name);
        config_free(cfg);
        config_defaults(cfg);
        return false;
    }
    return true;
}

bool config_load(struct rollout_config *cfg, const char *path, char err[CONFIG_ERROR_MAX])
{
    config_t lc;
    config_init(&lc);
    int ok = config_read_file(&lc, path);
    bool r = load(cfg, &lc, ok, path, err);
    config_destroy(&lc);
    return r;
}

bool config_load_string(struct rollout_config *cfg, const char *text, const char *name,
                        char err[CONFIG_ERROR_MAX])
{
    config_t lc;
    config_init(&lc);
    int ok = config_read_string(&lc, text);
    bool r = load(cfg, &lc, ok, name, err);
    config_destroy(&lc);
    return r;
}

void config_apply_reloadable(struct rollout_config *dst, const struct rollout_config *src)
{
    for (size_t i = 0; i < SETTING_COUNT; i++) {
        const struct setting *s = &settings[i];
        if (!s->reloadable)
            continue;
        switch (s->type) {
        case SETTING_STRING:
        case SETTING_LEVEL:
            set_string(field(dst, s), *(char *const *)cfield(src, s));
            break;
        case SETTING_INT:
            *(int *)field(dst, s) = *(const int *)cfield(src, s);
            break;
        case SETTING_BOOL:
            *(bool *)field(dst, s) = *(const bool *)cfield(src, s);
            break;
        }
    }
    memcpy(dst->targets, src->targets, sizeof dst->targets);
}

void config_write_example(FILE *out)
{
    fputs("# rolloutd.conf: the configuration of rolloutd and rolloutctl (libconfig syntax).\n"
          "# Generated by `rolloutd --print-config` from the one table of settings in\n"
          "# daemon/core/config.c; every setting is shown with its default.\n"
          "# Settings marked [reload] take effect on SIGHUP; the others need a restart.\n"
          "# An unknown setting or a bad value stops start-up with file, line and reason (exit 78).\n",
          out);
    const char *group = "";
    size_t glen = 0;
    for (size_t i = 0; i < SETTING_COUNT; i++) {
        const struct setting *s = &settings[i];
        const char *dot = strchr(s->path, '.');
        size_t len = (size_t)(dot - s->path);
        if (len != glen || strncmp(group, s->path, len) != 0) {
            if (glen)
                fputs("};\n", out);
            fprintf(out, "\n%.*s = {\n", (int)len, s->path);
            group = s->path;
            glen = len;
        }
        fprintf(out, "  # %s%s\n", s->doc, s->reloadable ? " [reload]" : "");
        switch (s->type) {
        case SETTING_STRING:
        case SETTING_LEVEL:
            fprintf(out, "  %s = \"%s\";\n", dot + 1, s->default_string);
            break;
        case SETTING_INT:
            fprintf(out, "  %s = %lld;\n", dot + 1, s->default_int);
            break;
        case SETTING_BOOL:
            fprintf(out, "  %s = %s;\n", dot + 1, s->default_int ? "true" : "false");
            break;
        }
    }
    if (glen)
        fputs("};\n", out);
    fputs("\n# Default targets per item (overall), stored in the database by `rolloutctl migrate`\n"
          "# when the database has none yet; `rolloutctl targets set` changes them later. [reload]\n"
          "targets = {\n",
          out);
    for (int i = 0; i < ITEM_COUNT; i++)
        fprintf(out, "  %s = { target = %lld; deadline = \"%s\"; };\n", item_info((enum item)i)->key,
                default_targets[i].target, default_targets[i].deadline);
    fputs("};\n", out);
}

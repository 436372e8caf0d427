/* The configuration of rolloutd and rolloutctl. Every setting is declared once, in the table in
 * config.c (name, type, default, limits, reloadable or not, documentation); that table drives the
 * libconfig parser, validation, SIGHUP reload, `rolloutd --print-config` and the commented example
 * config/rolloutd.conf. */
#ifndef ROLLOUT_CONFIG_H
#define ROLLOUT_CONFIG_H

#include <stdbool.h>
#include <stdio.h>

#include "domain.h"

#define CONFIG_ERROR_MAX 512

/* The default target of one item, used until `rolloutctl targets set` stores one. */
struct config_item_target {
    bool set;
    long long target;
    char deadline[11]; /* YYYY-MM-DD */
};

struct rollout_config {
    char *listen_address;
    int listen_port;
    char *tls_certificate;
    char *tls_key;

    char *db_conninfo;
    char *db_admin_conninfo;
    int db_pool_size;
    int db_connect_timeout_s;
    int db_statement_timeout_ms;
    int db_reconnect_max_s;

    int http_max_body_bytes;
    int http_max_header_bytes;
    int http_timeout_s;
    int http_request_deadline_ms;
    int http_max_connections;
    int batch_max_events;

    int queue_max_events;
    int group_max_events;
    int group_parallel_min_events;

    bool public_status;
    bool public_metrics;
    bool public_dashboard;

    int token_refresh_ms;
    int snapshot_refresh_ms;

    char *log_level;
    bool log_syslog;

    struct config_item_target targets[ITEM_COUNT];
};

/* Fills cfg with the built-in defaults. */
void config_defaults(struct rollout_config *cfg);

/* Reads path over the defaults. On error returns false and writes "file:line: reason" into err;
 * cfg is then left with the defaults and must still be released with config_free. */
bool config_load(struct rollout_config *cfg, const char *path, char err[CONFIG_ERROR_MAX]);

/* Same as config_load, from a string (for tests and fuzzing); name is used in messages. */
bool config_load_string(struct rollout_config *cfg, const char *text, const char *name,
                        char err[CONFIG_ERROR_MAX]);

/* Copies the settings that may change at run time (marked reloadable in the table) from src. */
void config_apply_reloadable(struct rollout_config *dst, const struct rollout_config *src);

/* Writes the documented example configuration (every setting, its default and its meaning). */
void config_write_example(FILE *out);

void config_free(struct rollout_config *cfg);

#endif

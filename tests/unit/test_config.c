/* The configuration (daemon/core/config.c): parsing, validation with file:line messages, the
 * documented example, reload. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

static struct rollout_config cfg;
static char err[CONFIG_ERROR_MAX];

static void setup(void)
{
    memset(&cfg, 0, sizeof cfg);
    memset(err, 0, sizeof err);
}

static void teardown(void)
{
    config_free(&cfg);
}

TestSuite(config, .init = setup, .fini = teardown);

/* Loads text that must be rejected and checks the message contains every given fragment. */
static void expect_error(const char *text, const char *const *fragments)
{
    bool ok = config_load_string(&cfg, text, "test.conf", err);
    cr_assert_not(ok, "this config must be rejected:\n%s", text);
    for (const char *const *f = fragments; *f; f++)
        cr_expect(strstr(err, *f) != NULL, "error \"%s\" should contain \"%s\"", err, *f);
}

#define EXPECT_ERROR(text, ...)                                                                    \
    do {                                                                                           \
        static const char *const frags_[] = {__VA_ARGS__, NULL};                                   \
        expect_error(text, frags_);                                                                \
    } while (0)

static void expect_defaults(const struct rollout_config *c)
{
    cr_expect_str_eq(c->listen_address, "127.0.0.1");
    cr_expect_eq(c->listen_port, 8080);
    cr_expect_str_eq(c->tls_certificate, "");
    cr_expect_str_eq(c->tls_key, "");
    cr_expect_str_eq(c->db_conninfo, "dbname=rollout");
    cr_expect_str_eq(c->db_admin_conninfo, "");
    cr_expect_eq(c->db_pool_size, 4);
    cr_expect_eq(c->db_connect_timeout_s, 5);
    cr_expect_eq(c->db_statement_timeout_ms, 10000);
    cr_expect_eq(c->db_reconnect_max_s, 10);
    cr_expect_eq(c->http_max_body_bytes, 4194304);
    cr_expect_eq(c->http_max_header_bytes, 16384);
    cr_expect_eq(c->http_timeout_s, 30);
    cr_expect_eq(c->http_request_deadline_ms, 20000);
    cr_expect_eq(c->http_max_connections, 4096);
    cr_expect_eq(c->batch_max_events, 1000);
    cr_expect_eq(c->queue_max_events, 20000);
    cr_expect_eq(c->group_max_events, 2000);
    cr_expect_eq(c->group_parallel_min_events, 100);
    cr_expect(c->public_status);
    cr_expect(c->public_metrics);
    cr_expect(c->public_dashboard);
    cr_expect_eq(c->token_refresh_ms, 1000);
    cr_expect_eq(c->snapshot_refresh_ms, 250);
    cr_expect_str_eq(c->log_level, "info");
    cr_expect_not(c->log_syslog);
    /* the report's figures are built in until the configuration or the CLI says otherwise */
    static const struct {
        long long target;
        const char *deadline;
    } targets[ITEM_COUNT] = {
        [ITEM_MOBILE_DEVICE] = {72000, "2027-12-31"},
        [ITEM_HESSEN_SMARTPHONE] = {30000, "2027-06-30"},
        [ITEM_HESSEN_VOICE] = {72000, "2027-12-31"},
        [ITEM_WLAN_AUTOLOGIN] = {72000, "2027-03-31"},
    };
    for (int i = 0; i < ITEM_COUNT; i++) {
        cr_expect(c->targets[i].set, "item %d has a default target", i);
        cr_expect_eq(c->targets[i].target, targets[i].target, "item %d", i);
        cr_expect_str_eq(c->targets[i].deadline, targets[i].deadline, "item %d", i);
    }
}

Test(config, defaults)
{
    config_defaults(&cfg);
    expect_defaults(&cfg);
}

Test(config, empty_text_gives_the_defaults)
{
    cr_assert(config_load_string(&cfg, "", "empty.conf", err), "%s", err);
    expect_defaults(&cfg);
}

Test(config, good_config)
{
    const char *text = "# a production-like configuration\n"
                       "listen = { address = \"0.0.0.0\"; port = 8443;\n"
                       "  tls_certificate = \"/etc/rolloutd/cert.pem\";\n"
                       "  tls_key = \"/etc/rolloutd/key.pem\"; };\n"
                       "database = {\n"
                       "  conninfo = \"host=/run/postgresql dbname=rollout user=rolloutd\";\n"
                       "  admin_conninfo = \"host=/run/postgresql dbname=rollout user=ctl\";\n"
                       "  pool_size = 8; connect_timeout = 3; statement_timeout = 5000;\n"
                       "  reconnect_max = 30;\n"
                       "};\n"
                       "http = { max_body_bytes = 1048576; max_header_bytes = 8192; timeout = 10;\n"
                       "  request_deadline_ms = 15000; max_connections = 1000;\n"
                       "  batch_max_events = 500; };\n"
                       "queue = { max_events = 5000; group_max_events = 250;\n"
                       "  group_parallel_min_events = 1; };\n"
                       "access = { public_status = false; public_metrics = false;\n"
                       "  public_dashboard = false; token_refresh_ms = 2000; };\n"
                       "progress = { snapshot_refresh_ms = 500; };\n"
                       "log = { level = \"debug\"; syslog = true; };\n"
                       "targets = {\n"
                       "  hessen_smartphone = { target = 25000; deadline = \"2027-09-30\"; };\n"
                       "  wlan_autologin = { deadline = \"2027-04-30\"; target = 60000; };\n"
                       "};\n";
    cr_assert(config_load_string(&cfg, text, "prod.conf", err), "%s", err);
    cr_expect_str_eq(cfg.listen_address, "0.0.0.0");
    cr_expect_eq(cfg.listen_port, 8443);
    cr_expect_str_eq(cfg.tls_certificate, "/etc/rolloutd/cert.pem");
    cr_expect_str_eq(cfg.tls_key, "/etc/rolloutd/key.pem");
    cr_expect_str_eq(cfg.db_conninfo, "host=/run/postgresql dbname=rollout user=rolloutd");
    cr_expect_str_eq(cfg.db_admin_conninfo, "host=/run/postgresql dbname=rollout user=ctl");
    cr_expect_eq(cfg.db_pool_size, 8);
    cr_expect_eq(cfg.db_connect_timeout_s, 3);
    cr_expect_eq(cfg.db_statement_timeout_ms, 5000);
    cr_expect_eq(cfg.db_reconnect_max_s, 30);
    cr_expect_eq(cfg.http_max_body_bytes, 1048576);
    cr_expect_eq(cfg.http_max_header_bytes, 8192);
    cr_expect_eq(cfg.http_timeout_s, 10);
    cr_expect_eq(cfg.http_request_deadline_ms, 15000);
    cr_expect_eq(cfg.http_max_connections, 1000);
    cr_expect_eq(cfg.batch_max_events, 500);
    cr_expect_eq(cfg.queue_max_events, 5000);
    cr_expect_eq(cfg.group_max_events, 250);
    cr_expect_eq(cfg.group_parallel_min_events, 1);
    cr_expect_not(cfg.public_status);
    cr_expect_not(cfg.public_metrics);
    cr_expect_not(cfg.public_dashboard);
    cr_expect_eq(cfg.token_refresh_ms, 2000);
    cr_expect_eq(cfg.snapshot_refresh_ms, 500);
    cr_expect_str_eq(cfg.log_level, "debug");
    cr_expect(cfg.log_syslog);
    cr_expect(cfg.targets[ITEM_HESSEN_SMARTPHONE].set);
    cr_expect_eq(cfg.targets[ITEM_HESSEN_SMARTPHONE].target, 25000);
    cr_expect_str_eq(cfg.targets[ITEM_HESSEN_SMARTPHONE].deadline, "2027-09-30");
    cr_expect(cfg.targets[ITEM_WLAN_AUTOLOGIN].set);
    cr_expect_eq(cfg.targets[ITEM_WLAN_AUTOLOGIN].target, 60000);
    cr_expect_str_eq(cfg.targets[ITEM_WLAN_AUTOLOGIN].deadline, "2027-04-30");
    /* the items the file leaves out keep their built-in targets */
    cr_expect(cfg.targets[ITEM_MOBILE_DEVICE].set);
    cr_expect_eq(cfg.targets[ITEM_MOBILE_DEVICE].target, 72000);
    cr_expect_str_eq(cfg.targets[ITEM_HESSEN_VOICE].deadline, "2027-12-31");
}

Test(config, partial_config_keeps_the_other_defaults)
{
    cr_assert(config_load_string(&cfg, "listen = { port = 9000; };", "p.conf", err), "%s", err);
    cr_expect_eq(cfg.listen_port, 9000);
    cr_expect_str_eq(cfg.listen_address, "127.0.0.1");
    cr_expect_eq(cfg.db_pool_size, 4);
}

Test(config, whole_numbers_may_be_64_bit_literals)
{
    cr_assert(config_load_string(&cfg, "listen = { port = 9000L; };", "p.conf", err), "%s", err);
    cr_expect_eq(cfg.listen_port, 9000);
}

Test(config, boundaries_are_inclusive)
{
    cr_assert(config_load_string(&cfg, "listen = { port = 0; }; database = { pool_size = 64; };",
                                 "b.conf", err),
              "%s", err);
    cr_expect_eq(cfg.listen_port, 0);
    cr_expect_eq(cfg.db_pool_size, 64);
    config_free(&cfg);
    cr_assert(config_load_string(&cfg, "listen = { port = 65535; }; database = { pool_size = 1; };",
                                 "b.conf", err),
              "%s", err);
    cr_expect_eq(cfg.listen_port, 65535);
    cr_expect_eq(cfg.db_pool_size, 1);
}

Test(config, unknown_key_names_file_line_and_key)
{
    EXPECT_ERROR("listen = {\n"
                 "  address = \"127.0.0.1\";\n"
                 "  prot = 8080;\n"
                 "};\n",
                 "test.conf:3:", "listen.prot");
}

Test(config, unknown_top_level_setting)
{
    EXPECT_ERROR("\n\nport = 8080;\n", "test.conf:3:", "\"port\"");
}

Test(config, unknown_group)
{
    EXPECT_ERROR("listen = { port = 1; };\nserver = { port = 8080; };\n", "test.conf:2:", "server");
}

Test(config, nested_group_inside_a_known_group_is_unknown)
{
    EXPECT_ERROR("database = {\n  pool = { size = 4; };\n};\n", "test.conf:2:", "database.pool");
}

Test(config, failed_load_leaves_the_defaults)
{
    cr_assert_not(config_load_string(&cfg, "listen = { port = 9999; bogus = 1; };", "x.conf", err));
    expect_defaults(&cfg);
}

Test(config, bad_type_int_given_a_string)
{
    EXPECT_ERROR("listen = { port = \"8080\"; };", "test.conf:1:", "listen.port", "whole number");
}

Test(config, bad_type_int_given_a_float)
{
    EXPECT_ERROR("\ndatabase = { pool_size = 4.5; };", "test.conf:2:", "database.pool_size",
                 "whole number");
}

Test(config, bad_type_string_given_a_number)
{
    EXPECT_ERROR("database = { conninfo = 5; };", "database.conninfo", "string");
}

Test(config, bad_type_bool_given_a_number)
{
    EXPECT_ERROR("access = { public_status = 1; };", "access.public_status", "true or false");
}

Test(config, bad_type_group_given_a_scalar)
{
    EXPECT_ERROR("listen = 8080;", "test.conf:1:", "listen");
}

Test(config, out_of_range_above)
{
    EXPECT_ERROR("listen = { port = 65536; };", "test.conf:1:", "listen.port", "65536",
                 "0 to 65535");
}

Test(config, out_of_range_below)
{
    EXPECT_ERROR("database = { pool_size = 0; };", "database.pool_size", "1 to 64");
}

Test(config, out_of_range_negative)
{
    EXPECT_ERROR("http = { timeout = -5; };", "http.timeout", "-5");
}

Test(config, out_of_range_beyond_int)
{
    EXPECT_ERROR("queue = { max_events = 99999999999L; };", "queue.max_events", "99999999999");
}

Test(config, bad_log_level)
{
    EXPECT_ERROR("log = {\n  level = \"verbose\";\n};", "test.conf:2:", "verbose",
                 "error, warn, info, debug");
}

Test(config, log_levels)
{
    static const char *const levels[] = {"error", "warn", "info", "debug"};
    for (size_t i = 0; i < 4; i++) {
        char text[64];
        snprintf(text, sizeof text, "log = { level = \"%s\"; };", levels[i]);
        cr_assert(config_load_string(&cfg, text, "l.conf", err), "%s: %s", levels[i], err);
        cr_expect_str_eq(cfg.log_level, levels[i]);
        config_free(&cfg);
    }
    EXPECT_ERROR("log = { level = \"INFO\"; };", "INFO");
}

Test(config, targets_unknown_item)
{
    EXPECT_ERROR("targets = {\n  tablets = { target = 5; deadline = \"2027-01-01\"; };\n};",
                 "test.conf:2:", "tablets");
}

Test(config, targets_zero_target)
{
    EXPECT_ERROR("targets = { mobile_device = { target = 0; deadline = \"2027-01-01\"; }; };",
                 "targets.mobile_device.target");
}

Test(config, targets_too_large)
{
    EXPECT_ERROR(
        "targets = { mobile_device = { target = 10000001; deadline = \"2027-01-01\"; }; };",
        "targets.mobile_device.target");
}

Test(config, targets_target_as_string)
{
    EXPECT_ERROR("targets = { mobile_device = { target = \"5\"; deadline = \"2027-01-01\"; }; };",
                 "targets.mobile_device.target");
}

Test(config, targets_missing_deadline)
{
    EXPECT_ERROR("targets = { hessen_voice = { target = 5; }; };", "targets.hessen_voice",
                 "deadline");
}

Test(config, targets_missing_target)
{
    EXPECT_ERROR("targets = { hessen_voice = { deadline = \"2027-01-01\"; }; };",
                 "targets.hessen_voice", "target");
}

Test(config, targets_bad_deadline_format)
{
    static const char *const bad[] = {"31.12.2027", "2027-13-01", "2027-00-10", "2027-12-32",
                                      "2027-1-01",  "27-12-31",   "2027/12/31", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[160];
        snprintf(text, sizeof text,
                 "targets = { wlan_autologin = { target = 5; deadline = \"%s\"; }; };", bad[i]);
        bool ok = config_load_string(&cfg, text, "t.conf", err);
        cr_expect_not(ok, "deadline \"%s\" must be rejected", bad[i]);
        if (!ok)
            cr_expect(strstr(err, "targets.wlan_autologin.deadline") != NULL, "%s", err);
        config_free(&cfg);
    }
}

/* A deadline is a date: one the calendar does not have must not pass validation and fail only
 * later, when rolloutctl migrate stores it in a date column. */
Test(config, targets_deadline_must_be_a_real_date)
{
    static const char *const bad[] = {"2027-02-30", "2027-02-29", "2027-04-31"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[160];
        snprintf(text, sizeof text,
                 "targets = { wlan_autologin = { target = 5; deadline = \"%s\"; }; };", bad[i]);
        cr_expect_not(config_load_string(&cfg, text, "t.conf", err),
                      "deadline \"%s\" is not a date and must be rejected", bad[i]);
        config_free(&cfg);
    }
    cr_assert(config_load_string(
                  &cfg,
                  "targets = { wlan_autologin = { target = 5; deadline = \"2028-02-29\"; }; };",
                  "t.conf", err),
              "2028 is a leap year: %s", err);
}

Test(config, targets_deadline_as_number)
{
    EXPECT_ERROR("targets = { wlan_autologin = { target = 5; deadline = 20270101; }; };",
                 "targets.wlan_autologin.deadline");
}

Test(config, targets_unknown_key)
{
    EXPECT_ERROR("targets = {\n mobile_device = {\n target = 5;\n deadline = \"2027-01-01\";\n "
                 "ressort = \"HMdF\"; };\n};",
                 "test.conf:5:", "targets.mobile_device.ressort");
}

Test(config, targets_not_a_group)
{
    EXPECT_ERROR("targets = 5;", "targets");
    config_free(&cfg);
    EXPECT_ERROR("targets = { mobile_device = 5; };", "targets.mobile_device");
}

Test(config, tls_certificate_without_key)
{
    EXPECT_ERROR("listen = { tls_certificate = \"/etc/cert.pem\"; };", "test.conf",
                 "tls_certificate", "tls_key");
    expect_defaults(&cfg);
}

Test(config, tls_key_without_certificate)
{
    EXPECT_ERROR("listen = { tls_key = \"/etc/key.pem\"; };", "tls_certificate", "tls_key");
}

Test(config, syntax_error_names_file_and_line)
{
    /* (a missing ';' is no error: libconfig makes the terminator optional) */
    EXPECT_ERROR("listen = {\n  address = \"127.0.0.1\";\n  port = = 80;\n};\n", "test.conf:3:");
}

Test(config, duplicate_setting_is_rejected)
{
    EXPECT_ERROR("listen = { port = 1; };\nlisten = { port = 2; };\n", "test.conf:2:");
}

Test(config, example_loads_back_cleanly)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    cr_assert_not_null(f);
    config_write_example(f);
    cr_assert_eq(fclose(f), 0);
    cr_assert_gt(len, 0);
    bool ok = config_load_string(&cfg, text, "rolloutd.conf", err);
    cr_assert(ok, "the example config does not load: %s\n%s", err, text);
    /* every value in the example, the targets included, is the default */
    expect_defaults(&cfg);
    cr_expect(strstr(text, "hessen_smartphone = { target = 30000; deadline = \"2027-06-30\"; }") !=
                  NULL,
              "the example documents the default targets");
    /* every setting is documented: one comment line per setting */
    cr_expect(strstr(text, "[reload]") != NULL);
    cr_expect(strstr(text, "statement_timeout") != NULL);
    free(text);
}

Test(config, load_from_a_file_names_the_path)
{
    char path[] = "/tmp/rolloutd-unit-XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    const char *text = "listen = { port = 7000; };\nlog = { level = \"loud\"; };\n";
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    bool ok = config_load(&cfg, path, err);
    unlink(path);
    cr_assert_not(ok);
    char want[64];
    snprintf(want, sizeof want, "%s:2:", path);
    cr_expect(strstr(err, want) != NULL, "error \"%s\" should name %s", err, want);
    cr_expect(strstr(err, "loud") != NULL, "%s", err);
}

Test(config, missing_file)
{
    cr_assert_not(config_load(&cfg, "/nonexistent/rolloutd.conf", err));
    cr_expect(strstr(err, "/nonexistent/rolloutd.conf") != NULL, "%s", err);
    expect_defaults(&cfg);
}

Test(config, reload_copies_only_reloadable_settings)
{
    struct rollout_config next;
    cr_assert(config_load_string(&cfg, "", "a.conf", err), "%s", err);
    cr_assert(config_load_string(&next,
                                 "listen = { port = 9999; };\n"
                                 "database = { pool_size = 9; };\n"
                                 "http = { batch_max_events = 7; max_body_bytes = 2048; };\n"
                                 "access = { public_status = false; token_refresh_ms = 500; };\n"
                                 "progress = { snapshot_refresh_ms = 100; };\n"
                                 "log = { level = \"warn\"; syslog = true; };\n"
                                 "targets = { hessen_voice = { target = 12; deadline = "
                                 "\"2028-01-31\"; }; };\n",
                                 "b.conf", err),
              "%s", err);
    config_apply_reloadable(&cfg, &next);
    /* reloadable */
    cr_expect_eq(cfg.batch_max_events, 7);
    cr_expect_not(cfg.public_status);
    cr_expect_eq(cfg.token_refresh_ms, 500);
    cr_expect_eq(cfg.snapshot_refresh_ms, 100);
    cr_expect_str_eq(cfg.log_level, "warn");
    cr_expect(cfg.targets[ITEM_HESSEN_VOICE].set);
    cr_expect_eq(cfg.targets[ITEM_HESSEN_VOICE].target, 12);
    /* need a restart */
    cr_expect_eq(cfg.listen_port, 8080);
    cr_expect_eq(cfg.db_pool_size, 4);
    cr_expect_eq(cfg.http_max_body_bytes, 4194304);
    cr_expect_not(cfg.log_syslog);
    /* the copy owns its strings */
    config_free(&next);
    cr_expect_str_eq(cfg.log_level, "warn");
}

/* PostgreSQL fails over (issue 8): a primary and a synchronous streaming standby, rolloutd
 * configured with both hosts and target_session_attrs=read-write, a posting load; the primary
 * is killed (pg_ctl stop -m immediate) and the standby promoted. rolloutd must move to the new
 * primary by itself, posting must resume, and every event that got a 2xx must be on the new
 * primary (synchronous replication: a commit acknowledged by the primary is on the standby). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "harness_cli.h"
#include "harness_load.h"
#include "harness_pg.h"

struct after {
    long long t;
};

static bool ok_after(const struct th_load_stats *st, void *arg)
{
    return st->last_ok_ms > ((struct after *)arg)->t;
}

static void sql(PGconn *c, const char *q)
{
    PGresult *r = PQexec(c, q);
    cr_assert(PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK,
              "%s: %s", q, PQresultErrorMessage(r));
    PQclear(r);
}

/* Waits until the primary reports the standby as a synchronous one. */
static void wait_sync_standby(PGconn *primary)
{
    for (int i = 0; i < 200; i++) {
        PGresult *r = PQexec(primary, "SELECT sync_state FROM pg_stat_replication "
                                      "WHERE application_name = 'standby1'");
        bool sync = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 &&
                    strcmp(PQgetvalue(r, 0, 0), "sync") == 0;
        PQclear(r);
        if (sync)
            return;
        th_sleep_ms(50);
    }
    cr_assert_fail("the standby did not become a synchronous standby within 10 s");
}

Test(failover, rolloutd_follows_a_promoted_standby_and_loses_nothing, .timeout = 120)
{
    struct th_pg primary, standby;
    th_pg_init(&primary, "wal_keep_size = '64MB'\n");
    th_pg_start(&primary);
    struct th_db db;
    th_pg_db_create(&primary, &db);
    char *token = th_token(&db, "failover-load", "admin", NULL);

    th_pg_init_standby(&standby, &primary, "cluster_name = 'standby1'\nhot_standby = on\n");
    th_pg_start(&standby);
    sql(db.conn, "ALTER SYSTEM SET synchronous_standby_names = 'standby1'");
    sql(db.conn, "SELECT pg_reload_conf()");
    wait_sync_standby(db.conn);

    /* reports and exports may read from the standby (rolloutctl --replica) */
    char on_standby[512];
    th_pg_conninfo(&standby, "rollout_private", "rolloutctl", on_standby, sizeof on_standby);
    PQclear(th_sql(&db, "SELECT 1", 0, NULL)); /* synchronous: the fixture is on the standby */
    struct th_ctl_run from_primary = th_ctl("--db", db.conninfo_admin, "progress", "--format",
                                            "csv", NULL);
    struct th_ctl_run from_standby = th_ctl("--db", db.conninfo_admin, "--replica", on_standby,
                                            "progress", "--format", "csv", NULL);
    cr_assert_eq(from_standby.status, 0, "progress --replica: %s", from_standby.err);
    cr_assert_str_eq(from_standby.out, from_primary.out,
                     "the standby's figures differ from the primary's");
    th_ctl_run_free(&from_primary);
    th_ctl_run_free(&from_standby);
    struct th_ctl_run report = th_ctl("--db", db.conninfo_admin, "--replica", on_standby, "report",
                                      NULL);
    cr_assert_eq(report.status, 0, "report --replica: %s", report.err);
    cr_assert(strstr(report.out, "HMdF,FIN-WI-01,mobile_device") != NULL, "%s", report.out);
    th_ctl_run_free(&report);

    /* both hosts in one conninfo: libpq tries them in order and keeps the writable one */
    char extra[1024];
    snprintf(extra, sizeof extra,
             "database = {\n  conninfo = \"host=%s,%s port=%d,%d dbname=rollout_private "
             "user=rolloutd target_session_attrs=read-write\";\n  connect_timeout = 2;\n"
             "  reconnect_max = 1;\n};\n",
             primary.dir, standby.dir, primary.port, standby.port);
    struct th_daemon d;
    th_daemon_start(&d, &db, extra);

    struct th_load_opts o = {.ports = {d.port}, .nports = 1, .token = token, .concurrency = 16};
    struct th_load *l = th_load_start(&o);
    cr_assert(th_load_wait_acked(l, 200, 20000), "no load before the fail-over: %s",
              th_load_summary(l));

    long long t_kill = th_now_ms();
    th_pg_stop(&primary, "immediate");
    th_pg_promote(&standby);
    struct after promoted = {th_now_ms()};
    bool resumed = th_load_wait(l, ok_after, &promoted, 30000);
    if (!resumed) {
        char *log = th_daemon_log(&d);
        size_t n = strlen(log);
        cr_log_error("rolloutd log:\n%s", n > 6000 ? log + n - 6000 : log);
        free(log);
    }
    cr_assert(resumed, "posting did not resume within 30 s of the promotion: %s",
              th_load_summary(l));
    long long t_resumed = th_now_ms();
    struct th_load_stats st;
    th_load_stats(l, &st);
    cr_assert(th_load_wait_acked(l, st.acked + 150, 20000),
              "posting did not carry on on the new primary: %s", th_load_summary(l));
    th_load_stop(l);
    cr_log_info("failover: primary killed, standby promoted %lld ms later, first 2xx on the new "
                "primary %lld ms after the promotion; %s",
                promoted.t - t_kill, t_resumed - promoted.t, th_load_summary(l));

    /* every acknowledged event is on the new primary, and its counters are exact */
    struct th_db on_new = db;
    on_new.conn = NULL;
    th_pg_conninfo(&standby, "rollout_private", "postgres", on_new.conninfo_super,
                   sizeof on_new.conninfo_super);
    th_pg_conninfo(&standby, "rollout_private", "rolloutctl", on_new.conninfo_admin,
                   sizeof on_new.conninfo_admin);
    th_pg_conninfo(&standby, "rollout_private", "rolloutd", on_new.conninfo_service,
                   sizeof on_new.conninfo_service);
    th_db_reconnect(&on_new);
    long stored = th_load_check_stored(l, &on_new);
    th_check_counters(&on_new);
    cr_log_info("failover: %ld events on the new primary", stored);

    cr_expect_eq(th_daemon_stop(&d, SIGTERM), 0);
    th_load_free(l);
    th_pg_db_close(&on_new);
    th_pg_db_close(&db);
    th_pg_destroy(&standby);
    th_pg_destroy(&primary);
    free(token);
}

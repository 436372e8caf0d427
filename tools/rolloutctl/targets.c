/* rolloutctl targets list|set: the target (a count and a deadline) of each item, overall and
 * optionally per Ressort. */
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "domain.h"
#include "out.h"

static const char help[] =
    "usage: rolloutctl targets list [--format table|csv|json]\n"
    "       rolloutctl targets set ITEM COUNT --deadline YYYY-MM-DD [--ressort R]\n"
    "\n"
    "list  every stored target: item, ressort (empty: the overall target), target, deadline\n"
    "set   stores the target of ITEM (mobile_device, hessen_smartphone, hessen_voice,\n"
    "      wlan_autologin): COUNT employees with the item active by the deadline, overall or,\n"
    "      with --ressort, for one Ressort. A Ressort without a target of its own gets its\n"
    "      share of the overall target by headcount (pro rata).\n"
    "      Running rolloutd instances show the new target within a minute.\n";

static int targets_list(struct ctl *ctl, int argc, char **argv)
{
    enum out_format fmt = OUT_TABLE;
    int rc = ctl_format_options(argc, argv, "targets list", help, &out_listing_formats, &fmt);
    if (rc >= 0)
        return rc;
    if (optind < argc)
        return ctl_usage_error("targets list", "unexpected argument \"%s\"", argv[optind]);
    rc = ctl_connect(ctl);
    if (rc)
        return rc;
    PGresult *res = ctl_query(ctl,
                              "SELECT t.item, t.ressort, t.target, t.deadline, " CTL_TS(
                                  "t.updated_at") " FROM target t JOIN item i ON i.key = t.item"
                                                  " ORDER BY i.position, t.ressort NULLS FIRST",
                              0, NULL, "targets list", &rc);
    if (rc)
        return rc;
    static const struct out_column cols[] = {
        {"item", OUT_T_TEXT, 0},     {"ressort", OUT_T_TEXT, 0}, {"target", OUT_T_INT, 0},
        {"deadline", OUT_T_TEXT, 0}, {"updated", OUT_T_TEXT, 0},
    };
    struct out_writer w;
    out_begin(&w, stdout, fmt, cols, 5, true, ctl->color);
    for (int r = 0; r < PQntuples(res); r++)
        out_row_pg(&w, res, r);
    out_end(&w);
    PQclear(res);
    return 0;
}

static int targets_set(struct ctl *ctl, int argc, char **argv)
{
    static const struct option opts[] = {{"help", no_argument, NULL, 'h'},
                                         {"deadline", required_argument, NULL, 'd'},
                                         {"ressort", required_argument, NULL, 'r'},
                                         {0, 0, 0, 0}};
    const char *deadline = NULL, *ressort = NULL;
    bool first = true;
    int c;
    while ((c = ctl_getopt(argc, argv, "h", opts, "targets set", &first)) != -1) {
        switch (c) {
        case 'h':
            fputs(help, stdout);
            return 0;
        case 'd':
            deadline = optarg;
            break;
        case 'r':
            ressort = optarg;
            break;
        default:
            return EX_USAGE;
        }
    }
    if (argc - optind != 2)
        return ctl_usage_error("targets set", "expected ITEM and COUNT");
    const char *item_key = argv[optind], *count = argv[optind + 1];
    enum item item;
    long long n;
    if (!item_parse(item_key, &item))
        return ctl_usage_error("targets set",
                               "unknown item \"%s\"; items are mobile_device, hessen_smartphone, "
                               "hessen_voice, wlan_autologin",
                               item_key);
    if (!ctl_parse_count(count, 10000000, &n))
        return ctl_usage_error("targets set",
                               "COUNT \"%s\" must be a whole number from 1 to "
                               "10000000",
                               count);
    if (deadline == NULL)
        return ctl_usage_error("targets set", "--deadline YYYY-MM-DD is required");
    if (!ctl_valid_date(deadline))
        return ctl_usage_error("targets set", "--deadline \"%s\" is not a date YYYY-MM-DD",
                               deadline);
    int rc = ctl_connect(ctl);
    if (rc)
        return rc;
    if ((rc = ctl_exec(ctl, "BEGIN", "targets set")) != 0)
        return rc;
    if ((rc = ctl_check_known(ctl, "targets set", CTL_SQL_RESSORT_KNOWN, ressort, "Ressort",
                              "; `rolloutctl import ressorts` loads them")))
        return ctl_rollback(ctl, rc);
    const char *p[] = {item_key, ressort, count, deadline};
    PGresult *res = ctl_query(ctl,
                              "INSERT INTO target AS t (item, ressort, target, deadline)"
                              " VALUES ($1, $2, $3, $4::date) ON CONFLICT (item, ressort) DO UPDATE"
                              " SET target = excluded.target, deadline = excluded.deadline,"
                              " updated_at = now()",
                              4, p, "targets set", &rc);
    PQclear(res);
    /* Running daemons re-read their figures on this notification; the payload "frame" says
     * that targets, offices or headcounts changed, not only counts. */
    if (rc == 0)
        rc = ctl_exec(ctl, "SELECT pg_notify('rollout_progress', 'frame')", "targets set");
    if (rc)
        return ctl_rollback(ctl, rc);
    return ctl_exec(ctl, "COMMIT", "targets set");
}

int cmd_targets(struct ctl *ctl, int argc, char **argv)
{
    static const struct ctl_command subs[] = {
        {"list", targets_list, NULL},
        {"set", targets_set, NULL},
        {NULL, NULL, NULL},
    };
    return ctl_dispatch(ctl, argc, argv, subs, "targets", help);
}

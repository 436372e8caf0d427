/* rolloutctl report: the counts for spreadsheets, one CSV row per Ressort, Dienststelle and
 * item, streamed. */
#include <string.h>

#include "ctl.h"
#include "out.h"

static const char help[] =
    "usage: rolloutctl report [--ressort R]\n"
    "\n"
    "Writes CSV (UTF-8, header row) to stdout, one row per Dienststelle and item:\n"
    "  ressort,dienststelle,item,planned,ordered,delivered,active,returned,cancelled,headcount\n"
    "The counts are the current states (as in `rolloutctl progress`); headcount is the number\n"
    "of employees of the Dienststelle. Every Dienststelle and item appears, with zeros where\n"
    "nothing happened yet. --ressort limits the report to one Ressort.\n";

static void report_row(void *arg, const PGresult *row)
{
    out_row_pg(arg, row, 0);
}

int cmd_report(struct ctl *ctl, int argc, char **argv)
{
    static const struct option opts[] = {
        {"help", no_argument, NULL, 'h'}, {"ressort", required_argument, NULL, 'r'}, {0, 0, 0, 0}};
    const char *ressort = NULL;
    bool first = true;
    int c;
    while ((c = ctl_getopt(argc, argv, "h", opts, "report", &first)) != -1) {
        switch (c) {
        case 'h':
            fputs(help, stdout);
            return 0;
        case 'r':
            ressort = optarg;
            break;
        default:
            return EX_USAGE;
        }
    }
    if (optind < argc)
        return ctl_usage_error("report", "unexpected argument \"%s\"", argv[optind]);
    int rc = ctl_connect_read(ctl);
    if (rc)
        return rc;
    if ((rc = ctl_check_known(ctl, "report", CTL_SQL_RESSORT_KNOWN, ressort, "Ressort", "")))
        return rc;
    const char *p[] = {ressort};
    static const struct out_column cols[] = {
        {"ressort", OUT_T_TEXT, 0},  {"dienststelle", OUT_T_TEXT, 0}, {"item", OUT_T_TEXT, 0},
        {"planned", OUT_T_INT, 0},   {"ordered", OUT_T_INT, 0},       {"delivered", OUT_T_INT, 0},
        {"active", OUT_T_INT, 0},    {"returned", OUT_T_INT, 0},      {"cancelled", OUT_T_INT, 0},
        {"headcount", OUT_T_INT, 0},
    };
    struct out_writer w;
    out_begin(&w, stdout, OUT_CSV, cols, 10, false, false);
    rc = ctl_stream(ctl,
                    "WITH c AS (SELECT dienststelle, item, state, sum(n) AS n"
                    "  FROM progress_counter GROUP BY dienststelle, item, state),"
                    " h AS (SELECT dienststelle, count(*) AS n FROM employee GROUP BY dienststelle)"
                    " SELECT d.ressort, d.code, i.key,"
                    "  coalesce(sum(c.n) FILTER (WHERE c.state = 'planned'), 0),"
                    "  coalesce(sum(c.n) FILTER (WHERE c.state = 'ordered'), 0),"
                    "  coalesce(sum(c.n) FILTER (WHERE c.state = 'delivered'), 0),"
                    "  coalesce(sum(c.n) FILTER (WHERE c.state = 'active'), 0),"
                    "  coalesce(sum(c.n) FILTER (WHERE c.state = 'returned'), 0),"
                    "  coalesce(sum(c.n) FILTER (WHERE c.state = 'cancelled'), 0),"
                    "  coalesce((SELECT n FROM h WHERE h.dienststelle = d.code), 0)"
                    " FROM dienststelle d CROSS JOIN item i"
                    " LEFT JOIN c ON c.dienststelle = d.code AND c.item = i.key"
                    " WHERE $1::text IS NULL OR d.ressort = $1"
                    " GROUP BY d.ressort, d.code, i.key, i.position"
                    " ORDER BY d.ressort, d.code, i.position",
                    1, p, "report", report_row, &w);
    out_end(&w);
    return rc;
}

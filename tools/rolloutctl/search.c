/* rolloutctl search: employees by Ressort, Dienststelle, item and state, streamed row by row. */
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "domain.h"
#include "out.h"

static const char help[] =
    "usage: rolloutctl search [--ressort R] [--dienststelle D] [--item ITEM]\n"
    "                         [--state S | --not-state S] [--format table|csv|json]\n"
    "\n"
    "Lists the employees that match every filter given, ordered by personnel number, with\n"
    "their Ressort, Dienststelle, the current state of each item and their name.\n"
    "  --item ITEM --state S      ITEM is in state S\n"
    "  --item ITEM --not-state S  ITEM is not in state S (nothing recorded counts as not S)\n"
    "  --item ITEM                something is recorded for ITEM\n"
    "  --state S (no --item)      some item is in state S\n"
    "  --not-state S (no --item)  no item is in state S\n"
    "States: planned, ordered, delivered, active, returned, cancelled, and none (nothing\n"
    "recorded). Items: mobile_device, hessen_smartphone, hessen_voice, wlan_autologin.\n"
    "Example, everyone in HMdF without an active HessenSmartphone:\n"
    "  rolloutctl search --ressort HMdF --item hessen_smartphone --not-state active\n"
    "Employees erased with `rolloutctl forget` are not listed. The output is streamed: any\n"
    "number of rows, in constant memory.\n";

struct search_out {
    struct out_writer w;
};

static void search_row(void *arg, const PGresult *row)
{
    struct search_out *s = arg;
    out_row_pg(&s->w, row, 0);
}

int cmd_search(struct ctl *ctl, int argc, char **argv)
{
    static const struct option opts[] = {{"help", no_argument, NULL, 'h'},
                                         {"ressort", required_argument, NULL, 'r'},
                                         {"dienststelle", required_argument, NULL, 'd'},
                                         {"item", required_argument, NULL, 'i'},
                                         {"state", required_argument, NULL, 's'},
                                         {"not-state", required_argument, NULL, 'n'},
                                         {"format", required_argument, NULL, 'f'},
                                         {0, 0, 0, 0}};
    const char *ressort = NULL, *dienststelle = NULL, *item_key = NULL, *state = NULL;
    bool negate = false;
    enum out_format fmt = OUT_TABLE;
    bool first = true;
    int c;
    while ((c = ctl_getopt(argc, argv, "h", opts, "search", &first)) != -1) {
        switch (c) {
        case 'h':
            fputs(help, stdout);
            return 0;
        case 'r':
            ressort = optarg;
            break;
        case 'd':
            dienststelle = optarg;
            break;
        case 'i':
            item_key = optarg;
            break;
        case 's':
        case 'n':
            if (state != NULL)
                return ctl_usage_error("search", "give one of --state and --not-state, once");
            state = optarg;
            negate = c == 'n';
            break;
        case 'f':
            if (!ctl_format_arg("search", optarg, &out_listing_formats, &fmt))
                return EX_USAGE;
            break;
        default:
            return EX_USAGE;
        }
    }
    if (optind < argc)
        return ctl_usage_error("search", "unexpected argument \"%s\"", argv[optind]);
    enum item item;
    enum rollout_state st;
    if (item_key && !item_parse(item_key, &item))
        return ctl_usage_error("search",
                               "unknown item \"%s\"; items are mobile_device, hessen_smartphone, "
                               "hessen_voice, wlan_autologin",
                               item_key);
    bool none = state && strcmp(state, "none") == 0;
    if (state && !none && !state_parse(state, &st))
        return ctl_usage_error("search",
                               "unknown state \"%s\"; states are planned, ordered, delivered, "
                               "active, returned, cancelled, none",
                               state);

    /* Only fixed fragments go into the text; every value is a parameter. */
    char where[1024] = "";
    const char *cond;
    if (item_key && state && !none)
        cond = negate ? "NOT EXISTS (SELECT 1 FROM item_state x WHERE x.employee_id = e.id"
                        " AND x.item = $3 AND x.state = $4::rollout_state)"
                      : "EXISTS (SELECT 1 FROM item_state x WHERE x.employee_id = e.id"
                        " AND x.item = $3 AND x.state = $4::rollout_state)";
    else if (item_key && (none || !state))
        cond = (none && !negate) ? "NOT EXISTS (SELECT 1 FROM item_state x"
                                   " WHERE x.employee_id = e.id AND x.item = $3)"
                                 : "EXISTS (SELECT 1 FROM item_state x"
                                   " WHERE x.employee_id = e.id AND x.item = $3)";
    else if (state && !none)
        cond = negate ? "NOT EXISTS (SELECT 1 FROM item_state x WHERE x.employee_id = e.id"
                        " AND x.state = $4::rollout_state)"
                      : "EXISTS (SELECT 1 FROM item_state x WHERE x.employee_id = e.id"
                        " AND x.state = $4::rollout_state)";
    else if (none)
        cond = negate ? "EXISTS (SELECT 1 FROM item_state x WHERE x.employee_id = e.id)"
                      : "NOT EXISTS (SELECT 1 FROM item_state x WHERE x.employee_id = e.id)";
    else
        cond = "true";
    snprintf(where, sizeof where, " AND %s", cond);

    /* The server must see every parameter once to know its type, used by cond or not. */
    char sql[4096];
    snprintf(sql, sizeof sql,
             "SELECT e.personnel_number, d.ressort, e.dienststelle,"
             " s1.state, s2.state, s3.state, s4.state, e.name"
             " FROM employee e JOIN dienststelle d ON d.code = e.dienststelle"
             " LEFT JOIN item_state s1 ON s1.employee_id = e.id AND s1.item = 'mobile_device'"
             " LEFT JOIN item_state s2 ON s2.employee_id = e.id AND s2.item = 'hessen_smartphone'"
             " LEFT JOIN item_state s3 ON s3.employee_id = e.id AND s3.item = 'hessen_voice'"
             " LEFT JOIN item_state s4 ON s4.employee_id = e.id AND s4.item = 'wlan_autologin'"
             " WHERE e.personnel_number IS NOT NULL"
             " AND ($1::text IS NULL OR d.ressort = $1)"
             " AND ($2::text IS NULL OR e.dienststelle = $2)"
             " AND ($3::text IS NULL OR true) AND ($4::text IS NULL OR true)"
             "%s ORDER BY e.personnel_number",
             where);

    int rc = ctl_connect_read(ctl);
    if (rc)
        return rc;
    if ((rc = ctl_check_known(ctl, "search", CTL_SQL_RESSORT_KNOWN, ressort, "Ressort", "")) ||
        (rc = ctl_check_known(ctl, "search", CTL_SQL_DIENSTSTELLE_KNOWN, dienststelle,
                              "Dienststelle", "")))
        return rc;

    static const struct out_column cols[] = {
        {"personnel_number", OUT_T_TEXT, 10}, {"ressort", OUT_T_TEXT, 6},
        {"dienststelle", OUT_T_TEXT, 12},     {"mobile_device", OUT_T_TEXT, 0},
        {"hessen_smartphone", OUT_T_TEXT, 0}, {"hessen_voice", OUT_T_TEXT, 0},
        {"wlan_autologin", OUT_T_TEXT, 0},    {"name", OUT_T_TEXT, 0},
    };
    struct search_out s;
    out_begin(&s.w, stdout, fmt, cols, 8, false, ctl->color);
    const char *params[] = {ressort, dienststelle, item_key, none ? NULL : state};
    rc = ctl_stream(ctl, sql, 4, params, "search", search_row, &s);
    out_end(&s.w);
    if (rc == 0 && ctl->out_tty)
        fprintf(stderr, "%zu employee%s\n", s.w.count, s.w.count == 1 ? "" : "s");
    return rc;
}

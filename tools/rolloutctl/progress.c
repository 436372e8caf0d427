/* rolloutctl progress: the figures of GET /v1/progress (docs/contract-notes.md), computed from
 * the same tables: counts per state summed over the counter shards, done = active, the target
 * (overall, the Ressort's own, or a pro-rata share by headcount), the net completions of the
 * last 7 days, the forecast and whether it meets the deadline. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "domain.h"
#include "out.h"

static const char help[] =
    "usage: rolloutctl progress [--ressort R] [--dienststelle D] [--format table|csv|json]\n"
    "\n"
    "Per item: target and deadline, counts per state, done (= active), ratio, rate_7d (net\n"
    "completions of the last 7 days), forecast (the day done reaches the target at that rate)\n"
    "and on_track (target reached, or forecast on or before the deadline). The same figures as\n"
    "GET /v1/progress; --format json gives its body.\n"
    "\n"
    "target_source: overall (the overall target; the configuration's default, or the built-in\n"
    "one, when none is stored), ressort (the Ressort's own target) or pro_rata (a share of the "
    "next\n"
    "wider target by headcount: round(target * headcount / wider headcount)); 0 when there is\n"
    "no target at all. Without filters: the whole state administration.\n"
    "The table shows bars when stdout is a terminal.\n";

/* Columns of the one query below, in order. */
enum {
    P_ITEM,
    P_TITLE,
    P_RECOMMENDATION,
    P_TARGET,
    P_SOURCE,
    P_DEADLINE,
    P_PLANNED,
    P_ORDERED,
    P_DELIVERED,
    P_ACTIVE,
    P_RETURNED,
    P_CANCELLED,
    P_DONE,
    P_RATIO,
    P_RATE,
    P_FORECAST,
    P_ON_TRACK,
    P_GENERATED,
    P_COLUMNS
};

/* $1 ressort or NULL, $2 dienststelle or NULL (its ressort then in $1), $3 the configuration's
 * default targets {"item": {"target": n, "deadline": "YYYY-MM-DD"}} for items without an
 * overall target in the database. The rules are rolloutd's (daemon/src/progress.c), so both
 * show the same numbers: a Ressort without its own target gets round(overall * headcount /
 * all), a Dienststelle round(its Ressort's target * headcount / the Ressort's); no target at
 * all is 0; a forecast more than 200 years ahead is none. */
static const char progress_sql[] =
    "WITH today AS (SELECT (now() AT TIME ZONE 'Europe/Berlin')::date AS d),"
    " hc AS (SELECT coalesce(sum(h.headcount), 0) AS h_all,"
    "  coalesce(sum(h.headcount) FILTER (WHERE d.ressort = $1), 0) AS h_r,"
    "  coalesce(sum(h.headcount) FILTER (WHERE d.code = $2), 0) AS h_d"
    "  FROM dienststelle d JOIN dienststelle_headcount h ON h.dienststelle = d.code),"
    " cnt AS (SELECT c.item, c.state, sum(c.n) AS n FROM progress_counter c"
    "  JOIN dienststelle d ON d.code = c.dienststelle"
    "  WHERE ($1::text IS NULL OR d.ressort = $1) AND ($2::text IS NULL OR c.dienststelle = $2)"
    "  GROUP BY c.item, c.state),"
    " rate AS (SELECT x.item, sum(x.n) AS n FROM daily_done x"
    "  JOIN dienststelle d ON d.code = x.dienststelle"
    "  WHERE x.day > (SELECT d FROM today) - 7"
    "  AND ($1::text IS NULL OR d.ressort = $1) AND ($2::text IS NULL OR x.dienststelle = $2)"
    "  GROUP BY x.item),"
    " base AS (SELECT i.key, i.position, i.title, i.recommendation,"
    "  coalesce(o.target, ($3::jsonb -> i.key ->> 'target')::bigint) AS o_target,"
    "  coalesce(o.deadline, ($3::jsonb -> i.key ->> 'deadline')::date) AS o_deadline,"
    "  r.target AS r_target, r.deadline AS r_deadline,"
    "  coalesce((SELECT n FROM rate WHERE rate.item = i.key), 0) AS rate_7d,"
    "  coalesce((SELECT n FROM cnt WHERE cnt.item = i.key AND cnt.state = 'planned'), 0) AS "
    "planned,"
    "  coalesce((SELECT n FROM cnt WHERE cnt.item = i.key AND cnt.state = 'ordered'), 0) AS "
    "ordered,"
    "  coalesce((SELECT n FROM cnt WHERE cnt.item = i.key AND cnt.state = 'delivered'), 0)"
    "   AS delivered,"
    "  coalesce((SELECT n FROM cnt WHERE cnt.item = i.key AND cnt.state = 'active'), 0) AS active,"
    "  coalesce((SELECT n FROM cnt WHERE cnt.item = i.key AND cnt.state = 'returned'), 0)"
    "   AS returned,"
    "  coalesce((SELECT n FROM cnt WHERE cnt.item = i.key AND cnt.state = 'cancelled'), 0)"
    "   AS cancelled"
    "  FROM item i LEFT JOIN target o ON o.item = i.key AND o.ressort IS NULL"
    "  LEFT JOIN target r ON r.item = i.key AND r.ressort = $1),"
    /* the Ressort's level first: its own target, or its share of the overall one */
    " lvl AS (SELECT b.*, hc.*,"
    "  CASE WHEN b.r_target IS NOT NULL THEN b.r_target::numeric"
    "  WHEN hc.h_all > 0 THEN round(coalesce(b.o_target, 0)::numeric * hc.h_r / hc.h_all)"
    "  ELSE 0 END AS r_level"
    "  FROM base b, hc),"
    " tgt AS (SELECT l.*,"
    "  (CASE WHEN $1::text IS NULL THEN coalesce(l.o_target, 0)"
    "  WHEN $2::text IS NULL THEN l.r_level"
    "  WHEN l.h_r > 0 THEN round(l.r_level * l.h_d / l.h_r) ELSE 0 END)::bigint AS target,"
    "  CASE WHEN $1::text IS NULL THEN 'overall'"
    "  WHEN $2::text IS NULL AND l.r_target IS NOT NULL THEN 'ressort'"
    "  ELSE 'pro_rata' END AS target_source,"
    "  CASE WHEN $1::text IS NOT NULL AND l.r_target IS NOT NULL THEN l.r_deadline"
    "  ELSE l.o_deadline END AS deadline"
    "  FROM lvl l),"
    " fc AS (SELECT t.*,"
    "  CASE WHEN t.target > 0 AND t.active >= t.target THEN (SELECT d FROM today)"
    "  WHEN t.target > 0 AND t.rate_7d > 0"
    "   AND ceil((t.target - t.active) * 7.0 / t.rate_7d) < 365 * 200"
    "   THEN (SELECT d FROM today) + ceil((t.target - t.active) * 7.0 / t.rate_7d)::integer"
    "  END AS forecast"
    "  FROM tgt t)"
    " SELECT key, title, recommendation, target, target_source, deadline,"
    "  planned, ordered, delivered, active, returned, cancelled, active AS done,"
    "  CASE WHEN target > 0 THEN round(active::numeric / target, 4) ELSE 0 END AS ratio,"
    "  rate_7d, forecast,"
    "  (target > 0 AND active >= target)"
    "  OR (forecast IS NOT NULL AND (deadline IS NULL OR forecast <= deadline)) AS on_track,"
    "  to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
    " FROM fc ORDER BY position";

/* The default targets as the JSON object progress_sql takes in $3: the configuration's, or
 * without --config the built-in ones, which rolloutd falls back on just the same. */
static char *config_defaults_json(const struct ctl *ctl)
{
    json_t *o = json_object();
    for (int i = 0; i < ITEM_COUNT; i++)
        if (ctl->cfg.targets[i].set)
            json_object_set_new(o, item_info((enum item)i)->key,
                                json_pack("{s:I, s:s}", "target",
                                          (json_int_t)ctl->cfg.targets[i].target, "deadline",
                                          ctl->cfg.targets[i].deadline));
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return text;
}

static json_t *jint(const PGresult *res, int row, int col)
{
    const char *v = out_cell(res, row, col);
    return v ? json_integer(strtoll(v, NULL, 10)) : json_null();
}

static void print_json(const PGresult *res, const char *ressort, const char *dienststelle)
{
    json_t *items = json_array();
    for (int r = 0; r < PQntuples(res); r++) {
        json_t *counts =
            json_pack("{s:o, s:o, s:o, s:o, s:o, s:o}", "planned", jint(res, r, P_PLANNED),
                      "ordered", jint(res, r, P_ORDERED), "delivered", jint(res, r, P_DELIVERED),
                      "active", jint(res, r, P_ACTIVE), "returned", jint(res, r, P_RETURNED),
                      "cancelled", jint(res, r, P_CANCELLED));
        const char *ratio = out_cell(res, r, P_RATIO), *on = out_cell(res, r, P_ON_TRACK);
        json_t *item = json_pack(
            "{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "item",
            out_cell_json_string(res, r, P_ITEM), "title", out_cell_json_string(res, r, P_TITLE),
            "recommendation", out_cell_json_string(res, r, P_RECOMMENDATION), "target",
            jint(res, r, P_TARGET), "target_source", out_cell_json_string(res, r, P_SOURCE),
            "deadline", out_cell_json_string(res, r, P_DEADLINE), "counts", counts, "done",
            jint(res, r, P_DONE), "ratio", ratio ? json_real(strtod(ratio, NULL)) : json_null(),
            "rate_7d", jint(res, r, P_RATE), "forecast", out_cell_json_string(res, r, P_FORECAST),
            "on_track", on ? json_boolean(strcmp(on, "t") == 0) : json_null());
        json_array_append_new(items, item);
    }
    json_t *root = json_pack(
        "{s:{s:o, s:o}, s:o, s:o}", "scope", "ressort",
        ressort ? json_string(ressort) : json_null(), "dienststelle",
        dienststelle ? json_string(dienststelle) : json_null(), "generated_at",
        PQntuples(res) ? out_cell_json_string(res, 0, P_GENERATED) : json_null(), "items", items);
    json_dumpf(root, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
    putchar('\n');
    json_decref(root);
}

static void print_csv(const PGresult *res)
{
    static const char *const header = "item,title,target,target_source,deadline,planned,ordered,"
                                      "delivered,active,returned,cancelled,done,ratio,rate_7d,"
                                      "forecast,on_track\n";
    fputs(header, stdout);
    static const int cols[] = {
        P_ITEM,   P_TITLE,    P_TARGET,    P_SOURCE, P_DEADLINE, P_PLANNED, P_ORDERED,  P_DELIVERED,
        P_ACTIVE, P_RETURNED, P_CANCELLED, P_DONE,   P_RATIO,    P_RATE,    P_FORECAST, P_ON_TRACK};
    for (int r = 0; r < PQntuples(res); r++) {
        for (size_t i = 0; i < sizeof cols / sizeof cols[0]; i++) {
            if (i)
                putchar(',');
            const char *v = out_cell(res, r, cols[i]);
            if (cols[i] == P_ON_TRACK && v)
                v = strcmp(v, "t") == 0 ? "true" : "false";
            out_csv_field(stdout, v);
        }
        putchar('\n');
    }
}

static void print_table(struct ctl *ctl, const PGresult *res, const char *ressort,
                        const char *dienststelle)
{
    const char *bold = ctl->color ? "\033[1m" : "", *reset = ctl->color ? "\033[0m" : "";
    if (dienststelle)
        printf("%sProgress of Dienststelle %s (Ressort %s)%s", bold, dienststelle, ressort, reset);
    else if (ressort)
        printf("%sProgress of Ressort %s%s", bold, ressort, reset);
    else
        printf("%sProgress of the whole state administration%s", bold, reset);
    if (PQntuples(res))
        printf(", %s", PQgetvalue(res, 0, P_GENERATED));
    printf("\n\n");
    for (int r = 0; r < PQntuples(res); r++) {
        const char *target = out_cell(res, r, P_TARGET), *ratio = out_cell(res, r, P_RATIO);
        const char *on = out_cell(res, r, P_ON_TRACK), *forecast = out_cell(res, r, P_FORECAST);
        double q = ratio ? strtod(ratio, NULL) : 0;
        printf("%s%-18s%s %7s / %-7s %5.1f%%", bold, PQgetvalue(res, r, P_ITEM), reset,
               PQgetvalue(res, r, P_DONE), target, q * 100);
        if (ctl->out_tty) {
            fputs("  ", stdout);
            out_bar(stdout, q, 24);
        }
        bool has_target = strcmp(target, "0") != 0;
        bool good = strcmp(on, "t") == 0;
        const char *verdict = !has_target ? "no target" : good ? "on track" : "behind";
        const char *colour = !ctl->color || !has_target ? "" : good ? "\033[32m" : "\033[31m";
        printf("  %s%s%s\n", colour, verdict, *colour ? reset : "");
        if (has_target)
            printf("    target %s (%s), deadline %s; 7-day rate %s, forecast %s\n", target,
                   PQgetvalue(res, r, P_SOURCE),
                   out_cell(res, r, P_DEADLINE) ? out_cell(res, r, P_DEADLINE) : "none",
                   PQgetvalue(res, r, P_RATE),
                   forecast ? forecast : "none (not enough net completions in the last 7 days)");
        else
            printf("    no target: `rolloutctl targets set %s COUNT --deadline DATE`; 7-day rate "
                   "%s\n",
                   PQgetvalue(res, r, P_ITEM), PQgetvalue(res, r, P_RATE));
        printf("    planned %s, ordered %s, delivered %s, active %s, returned %s, cancelled %s\n",
               PQgetvalue(res, r, P_PLANNED), PQgetvalue(res, r, P_ORDERED),
               PQgetvalue(res, r, P_DELIVERED), PQgetvalue(res, r, P_ACTIVE),
               PQgetvalue(res, r, P_RETURNED), PQgetvalue(res, r, P_CANCELLED));
    }
}

int cmd_progress(struct ctl *ctl, int argc, char **argv)
{
    static const struct option opts[] = {{"help", no_argument, NULL, 'h'},
                                         {"ressort", required_argument, NULL, 'r'},
                                         {"dienststelle", required_argument, NULL, 'd'},
                                         {"format", required_argument, NULL, 'f'},
                                         {0, 0, 0, 0}};
    const char *ressort = NULL, *dienststelle = NULL;
    enum out_format fmt = OUT_TABLE;
    bool first = true;
    int c;
    while ((c = ctl_getopt(argc, argv, "h", opts, "progress", &first)) != -1) {
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
        case 'f':
            if (!ctl_format_arg("progress", optarg, &out_listing_formats, &fmt))
                return EX_USAGE;
            break;
        default:
            return EX_USAGE;
        }
    }
    if (optind < argc)
        return ctl_usage_error("progress", "unexpected argument \"%s\"", argv[optind]);
    int rc = ctl_connect_read(ctl);
    if (rc)
        return rc;
    /* one snapshot for the scope check and the figures */
    if ((rc = ctl_exec(ctl, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", "progress")))
        return rc;
    char *scope_ressort = NULL;
    PGresult *res;
    if (dienststelle) {
        const char *p[] = {dienststelle};
        res = ctl_query(ctl, "SELECT ressort FROM dienststelle WHERE code = $1", 1, p, "progress",
                        &rc);
        if (rc)
            return ctl_rollback(ctl, rc);
        if (PQntuples(res) == 0) {
            ctl_err("progress: unknown Dienststelle \"%s\"", dienststelle);
            PQclear(res);
            return ctl_rollback(ctl, EX_DATAERR);
        }
        scope_ressort = ctl_xstrdup(PQgetvalue(res, 0, 0));
        PQclear(res);
        if (ressort && strcmp(ressort, scope_ressort) != 0) {
            ctl_err("progress: Dienststelle %s belongs to Ressort %s, not %s", dienststelle,
                    scope_ressort, ressort);
            free(scope_ressort);
            return ctl_rollback(ctl, EX_DATAERR);
        }
    } else if (ressort) {
        if ((rc = ctl_check_known(ctl, "progress", CTL_SQL_RESSORT_KNOWN, ressort, "Ressort", "")))
            return ctl_rollback(ctl, rc);
        scope_ressort = ctl_xstrdup(ressort);
    }
    char *defaults = config_defaults_json(ctl);
    const char *p[] = {scope_ressort, dienststelle, defaults};
    res = ctl_query(ctl, progress_sql, 3, p, "progress", &rc);
    free(defaults);
    ctl_rollback(ctl, 0); /* read only: nothing to commit */
    if (rc == 0) {
        if (fmt == OUT_JSON)
            print_json(res, scope_ressort, dienststelle);
        else if (fmt == OUT_CSV)
            print_csv(res);
        else
            print_table(ctl, res, scope_ressort, dienststelle);
        PQclear(res);
    }
    free(scope_ressort);
    return rc;
}

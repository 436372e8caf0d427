/* rolloutctl verify: recomputes what the database keeps incrementally and prints every place
 * where the two disagree:
 *   (a) the current state per employee and item from the event log (the applied event with
 *       the greatest (occurred_at, id) must be item_state's state and since),
 *   (b) the counters from the current states (progress_counter summed over its shards, per
 *       Dienststelle, item and state, against a count of item_state),
 *   (c) the daily completions from the event log (applied events entering or leaving
 *       `active`, per day in Europe/Berlin, Dienststelle and item, against daily_done).
 * All three read one snapshot, so a daemon writing meanwhile cannot cause a false alarm. */
#include <string.h>

#include "ctl.h"

static const char help[] =
    "usage: rolloutctl verify\n"
    "\n"
    "Recounts the current states from the event log, the counters from the current states and\n"
    "the daily completions from the event log, and prints every difference to stdout, one\n"
    "per line (state ..., counter ..., daily_done ...). Exit status 1 when there is any, 0\n"
    "when the books agree. Reads one consistent snapshot and changes nothing.\n";

static const char states_sql[] =
    "WITH last AS (SELECT DISTINCT ON (employee_id, item) employee_id, item, state,"
    "  occurred_at, event_id FROM event WHERE applied"
    "  ORDER BY employee_id, item, occurred_at DESC, id DESC),"
    " diff AS (SELECT coalesce(l.employee_id, s.employee_id) AS emp,"
    "  coalesce(l.item, s.item) AS item, s.state AS cur, s.since AS cur_since,"
    "  l.state AS log, l.occurred_at AS log_at, l.event_id"
    "  FROM last l FULL JOIN item_state s"
    "  ON s.employee_id = l.employee_id AND s.item = l.item"
    "  WHERE l.state IS DISTINCT FROM s.state OR l.occurred_at IS DISTINCT FROM s.since)"
    " SELECT coalesce(p.personnel_number, '(erased, id ' || d.emp || ')'), d.item,"
    "  d.cur, " CTL_TS("d.cur_since") ", d.log, " CTL_TS(
        "d.log_at") ", d.event_id"
                    " FROM diff d JOIN employee p ON p.id = d.emp ORDER BY d.emp, d.item";

static const char counters_sql[] =
    "WITH actual AS (SELECT e.dienststelle, s.item, s.state, count(*) AS n"
    "  FROM item_state s JOIN employee e ON e.id = s.employee_id"
    "  GROUP BY e.dienststelle, s.item, s.state),"
    " counted AS (SELECT dienststelle, item, state, sum(n) AS n FROM progress_counter"
    "  GROUP BY dienststelle, item, state)"
    " SELECT coalesce(a.dienststelle, c.dienststelle), coalesce(a.item, c.item),"
    "  coalesce(a.state, c.state), coalesce(c.n, 0), coalesce(a.n, 0)"
    " FROM actual a FULL JOIN counted c"
    " ON c.dienststelle = a.dienststelle AND c.item = a.item AND c.state = a.state"
    " WHERE coalesce(a.n, 0) <> coalesce(c.n, 0) ORDER BY 1, 2, 3";

/* The same deltas as rollout_apply_events() writes; the employee's current Dienststelle,
 * because `rolloutctl import employees` moves the completions of a moved employee along. */
static const char daily_sql[] =
    "WITH logged AS (SELECT (e.occurred_at AT TIME ZONE 'Europe/Berlin')::date AS day,"
    "  p.dienststelle, e.item,"
    "  sum(CASE WHEN e.state = 'active' AND e.previous_state IS DISTINCT FROM 'active' THEN 1"
    "   WHEN e.previous_state = 'active' AND e.state <> 'active' THEN -1 ELSE 0 END) AS n"
    "  FROM event e JOIN employee p ON p.id = e.employee_id WHERE e.applied"
    "  GROUP BY 1, 2, 3),"
    " kept AS (SELECT day, dienststelle, item, sum(n) AS n FROM daily_done"
    "  GROUP BY day, dienststelle, item)"
    " SELECT coalesce(l.day, k.day), coalesce(l.dienststelle, k.dienststelle),"
    "  coalesce(l.item, k.item), coalesce(k.n, 0), coalesce(l.n, 0)"
    " FROM logged l FULL JOIN kept k"
    " ON k.day = l.day AND k.dienststelle = l.dienststelle AND k.item = l.item"
    " WHERE coalesce(l.n, 0) <> coalesce(k.n, 0) ORDER BY 1, 2, 3";

struct tally {
    long long states, counters, days;
};

static const char *val(const PGresult *res, int col)
{
    return PQgetisnull(res, 0, col) ? NULL : PQgetvalue(res, 0, col);
}

static void state_diff(void *arg, const PGresult *row)
{
    struct tally *t = arg;
    const char *who = val(row, 0), *item = val(row, 1), *cur = val(row, 2);
    const char *cur_since = val(row, 3), *log = val(row, 4), *log_at = val(row, 5);
    const char *event = val(row, 6);
    printf("state %s %s: ", who, item);
    if (cur == NULL)
        printf("no current state recorded, but the event log ends in %s (event %s at %s)\n", log,
               event, log_at);
    else if (log == NULL)
        printf("current state %s since %s, but the event log has no applied event\n", cur,
               cur_since);
    else if (strcmp(cur, log) != 0)
        printf("current state %s since %s, but the event log ends in %s (event %s at %s)\n", cur,
               cur_since, log, event, log_at);
    else
        printf("current state %s since %s, but the event that set it (%s) occurred at %s\n", cur,
               cur_since, event, log_at);
    t->states++;
}

static void counter_diff(void *arg, const PGresult *row)
{
    struct tally *t = arg;
    printf("counter %s %s %s: progress_counter sums to %s, the current states count %s\n",
           val(row, 0), val(row, 1), val(row, 2), val(row, 3), val(row, 4));
    t->counters++;
}

static void daily_diff(void *arg, const PGresult *row)
{
    struct tally *t = arg;
    printf("daily_done %s %s %s: daily_done sums to %s, the event log gives %s\n", val(row, 0),
           val(row, 1), val(row, 2), val(row, 3), val(row, 4));
    t->days++;
}

int cmd_verify(struct ctl *ctl, int argc, char **argv)
{
    static const struct option opts[] = {{"help", no_argument, NULL, 'h'}, {0, 0, 0, 0}};
    bool first = true;
    int c;
    while ((c = ctl_getopt(argc, argv, "h", opts, "verify", &first)) != -1) {
        if (c == 'h') {
            fputs(help, stdout);
            return 0;
        }
        return EX_USAGE;
    }
    if (optind < argc)
        return ctl_usage_error("verify", "unexpected argument \"%s\"", argv[optind]);
    int rc = ctl_connect(ctl);
    if (rc)
        return rc;
    if ((rc = ctl_exec(ctl, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", "verify")))
        return rc;
    struct tally t = {0, 0, 0};
    if ((rc = ctl_stream(ctl, states_sql, 0, NULL, "verify: states", state_diff, &t)) == 0 &&
        (rc = ctl_stream(ctl, counters_sql, 0, NULL, "verify: counters", counter_diff, &t)) == 0)
        rc = ctl_stream(ctl, daily_sql, 0, NULL, "verify: daily_done", daily_diff, &t);
    ctl_rollback(ctl, 0);
    if (rc)
        return rc;
    long long total = t.states + t.counters + t.days;
    if (total > 0) {
        fprintf(stderr,
                "verify: %lld difference%s (%lld states, %lld counters, %lld daily figures)\n",
                total, total == 1 ? "" : "s", t.states, t.counters, t.days);
        return CTL_EXIT_DIFFERENCES;
    }
    if (ctl->err_tty)
        fprintf(stderr, "verify: clean\n");
    return 0;
}

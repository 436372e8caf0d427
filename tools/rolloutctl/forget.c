/* rolloutctl forget ID: the data-protection erasure of one employee through rollout_forget(),
 * in one transaction, followed by a plain statement of what was removed, what was kept and
 * why. */
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

static const char help[] =
    "usage: rolloutctl forget PERSONNEL_NUMBER [--yes]\n"
    "\n"
    "Erases the personal data of one employee (Art. 17 GDPR), in one transaction:\n"
    "  removed  the personnel number and the name; the free-text notes, device details\n"
    "           (serial, model, IMEI), features and request fingerprints of their events;\n"
    "           their link to the devices they held and to the device-holding records\n"
    "  kept     without anything that names the person: a surrogate id with the Dienststelle,\n"
    "           the current states and the events' dates, items and states, so the anonymous\n"
    "           counts and totals stay right; the access log (who read the record when); and\n"
    "           the erasure record itself (who erased whom, by surrogate id, and when)\n"
    "Prints that statement with the actual numbers on stderr.\n"
    "Asks for confirmation on a terminal; elsewhere --yes is required. Cannot be undone.\n"
    "A later `import employees` with the same personnel number creates a new, unrelated\n"
    "employee: remove the person from the source file too.\n";

/* What an erasure will touch, read before (and again, locked, during) the erasure. */
static const char facts_sql[] =
    "SELECT e.id, e.dienststelle, e.name IS NOT NULL,"
    " (SELECT count(*) FROM event v WHERE v.employee_id = e.id),"
    " (SELECT count(*) FROM event v WHERE v.employee_id = e.id AND v.note IS NOT NULL),"
    " (SELECT count(*) FROM event v WHERE v.employee_id = e.id"
    "   AND (v.device_serial IS NOT NULL OR v.features IS NOT NULL)),"
    " (SELECT string_agg(d.serial, ', ' ORDER BY d.serial) FROM device d"
    "   WHERE d.holder_id = e.id),"
    " (SELECT count(*) FROM device d WHERE d.holder_id = e.id),"
    " (SELECT count(*) FROM device_holding h WHERE h.employee_id = e.id),"
    " (SELECT count(*) FROM item_state s WHERE s.employee_id = e.id),"
    " (SELECT count(*) FROM access_log a WHERE a.employee_id = e.id)"
    " FROM employee e WHERE e.personnel_number = $1";

enum {
    F_ID,
    F_DST,
    F_HAS_NAME,
    F_EVENTS,
    F_NOTES,
    F_DEVICE_EVENTS,
    F_SERIALS,
    F_DEVICES,
    F_HOLDINGS,
    F_STATES,
    F_ACCESS
};

static long long num(const PGresult *r, int col)
{
    return strtoll(PQgetvalue(r, 0, col), NULL, 10);
}

static bool confirm(const char *id, const PGresult *facts)
{
    fprintf(stderr,
            "This erases the personal data of employee %s (Dienststelle %s, %lld event%s, %lld "
            "device%s held). It cannot be undone.\nType the personnel number to confirm: ",
            id, PQgetvalue(facts, 0, F_DST), num(facts, F_EVENTS),
            num(facts, F_EVENTS) == 1 ? "" : "s", num(facts, F_DEVICES),
            num(facts, F_DEVICES) == 1 ? "" : "s");
    fflush(stderr);
    char answer[128];
    if (fgets(answer, sizeof answer, stdin) == NULL)
        return false;
    answer[strcspn(answer, "\r\n")] = '\0';
    return strcmp(answer, id) == 0;
}

static void statement(const char *id, const PGresult *f, const PGresult *done)
{
    long long events = num(f, F_EVENTS);
    fprintf(stderr, "forget: the personal data of employee %s is erased.\n", id);
    fprintf(stderr, "Removed:\n");
    fprintf(stderr, "  - the personnel number %s%s\n", id,
            strcmp(PQgetvalue(f, 0, F_HAS_NAME), "t") == 0 ? " and the name" : "");
    fprintf(stderr,
            "  - %lld free-text note%s, the device details and features of %lld event%s "
            "and the request fingerprints of all %lld\n",
            num(f, F_NOTES), num(f, F_NOTES) == 1 ? "" : "s", num(f, F_DEVICE_EVENTS),
            num(f, F_DEVICE_EVENTS) == 1 ? "" : "s", events);
    if (num(f, F_DEVICES) > 0)
        fprintf(stderr,
                "  - the link to %lld device%s (%s), which stay%s in the inventory, "
                "without a holder\n",
                num(f, F_DEVICES), num(f, F_DEVICES) == 1 ? "" : "s", PQgetvalue(f, 0, F_SERIALS),
                num(f, F_DEVICES) == 1 ? "s" : "");
    else
        fprintf(stderr, "  - (no device was linked to the person)\n");
    fprintf(stderr,
            "  - the person from %lld device-holding record%s (the periods stay, "
            "without a holder)\n",
            num(f, F_HOLDINGS), num(f, F_HOLDINGS) == 1 ? "" : "s");
    fprintf(stderr, "Kept, with nothing that names the person:\n");
    fprintf(stderr,
            "  - surrogate id %s in Dienststelle %s with %lld current item state%s and the "
            "dates, items and states of %lld event%s: the counts per Dienststelle, Ressort "
            "and overall and the completion rates stay right\n",
            PQgetvalue(f, 0, F_ID), PQgetvalue(f, 0, F_DST), num(f, F_STATES),
            num(f, F_STATES) == 1 ? "" : "s", events, events == 1 ? "" : "s");
    fprintf(stderr,
            "  - %lld access-log entr%s (who read the record and when), as proof of "
            "lawful processing\n",
            num(f, F_ACCESS), num(f, F_ACCESS) == 1 ? "y" : "ies");
    fprintf(stderr,
            "  - the erasure record: surrogate id %s, erased by %s at %s (to show the "
            "erasure was done)\n",
            PQgetvalue(f, 0, F_ID), PQgetvalue(done, 0, 1), PQgetvalue(done, 0, 2));
}

int cmd_forget(struct ctl *ctl, int argc, char **argv)
{
    static const struct option opts[] = {
        {"help", no_argument, NULL, 'h'}, {"yes", no_argument, NULL, 'y'}, {0, 0, 0, 0}};
    bool first = true, yes = false;
    int c;
    while ((c = ctl_getopt(argc, argv, "hy", opts, "forget", &first)) != -1) {
        switch (c) {
        case 'h':
            fputs(help, stdout);
            return 0;
        case 'y':
            yes = true;
            break;
        default:
            return EX_USAGE;
        }
    }
    if (argc - optind != 1)
        return ctl_usage_error("forget", "expected one personnel number");
    const char *id = argv[optind];
    if (!yes && !(ctl->in_tty && ctl->err_tty))
        return ctl_usage_error("forget",
                               "not on a terminal: pass --yes to confirm the erasure "
                               "of %s",
                               id);
    int rc = ctl_connect(ctl);
    if (rc)
        return rc;
    const char *p[] = {id};
    PGresult *facts;
    if (!yes) {
        /* asked outside the transaction: no row stays locked while a person reads the prompt */
        facts = ctl_query(ctl, facts_sql, 1, p, "forget", &rc);
        if (rc)
            return rc;
        bool found = PQntuples(facts) == 1;
        bool ok = found && confirm(id, facts);
        PQclear(facts);
        if (!found) {
            ctl_err("forget: no employee with personnel number %s (erased already?)", id);
            return EX_DATAERR;
        }
        if (!ok) {
            ctl_err("forget: not confirmed; nothing was changed");
            return 1;
        }
    }
    if ((rc = ctl_exec(ctl, "BEGIN", "forget")))
        return rc;
    PGresult *lock = ctl_query(ctl, "SELECT 1 FROM employee WHERE personnel_number = $1 FOR UPDATE",
                               1, p, "forget", &rc);
    PQclear(lock);
    if (rc)
        return ctl_rollback(ctl, rc);
    facts = ctl_query(ctl, facts_sql, 1, p, "forget", &rc);
    if (rc)
        return ctl_rollback(ctl, rc);
    if (PQntuples(facts) != 1) {
        PQclear(facts);
        ctl_err("forget: no employee with personnel number %s (erased already?)", id);
        return ctl_rollback(ctl, EX_DATAERR);
    }
    PGresult *done =
        ctl_query(ctl, "SELECT rollout_forget($1, " CTL_ACTOR_SQL ")", 1, p, "forget", &rc);
    bool erased = rc == 0 && !PQgetisnull(done, 0, 0);
    PQclear(done);
    done = NULL;
    if (rc == 0) {
        /* a statement of its own: the function's insert is not visible to its own statement */
        const char *eid[] = {PQgetvalue(facts, 0, F_ID)};
        done = ctl_query(ctl,
                         "SELECT employee_id, erased_by, " CTL_TS(
                             "erased_at") " FROM erasure WHERE employee_id = $1",
                         1, eid, "forget", &rc);
    }
    if (rc == 0 && (!erased || PQntuples(done) != 1)) {
        ctl_err("forget: rollout_forget() did not record the erasure of %s; nothing was changed",
                id);
        rc = EX_SOFTWARE;
    }
    if (rc == 0)
        rc = ctl_exec(ctl, "COMMIT", "forget");
    if (rc == 0)
        statement(id, facts, done);
    PQclear(facts);
    PQclear(done);
    return rc ? ctl_rollback(ctl, rc) : 0;
}

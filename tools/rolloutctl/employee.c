/* rolloutctl employee show ID: one person's states, devices and history. Reading personal data
 * is recorded in access_log, as the API does for its reads. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "out.h"

static const char help[] =
    "usage: rolloutctl employee show PERSONNEL_NUMBER [--format text|json]\n"
    "\n"
    "Shows the employee's Ressort and Dienststelle, the current state of each item (and since\n"
    "when), the devices they hold and their whole history, newest first.\n"
    "The read is recorded in access_log (actor rolloutctl:<database user>), like every read of\n"
    "personal data through the API.\n";

struct employee_data {
    PGresult *person, *items, *devices, *events;
};

static void employee_data_free(struct employee_data *d)
{
    PQclear(d->person);
    PQclear(d->items);
    PQclear(d->devices);
    PQclear(d->events);
}

static void print_section(struct ctl *ctl, const char *title, const struct out_column *cols,
                          int ncols, const PGresult *res, int first_col)
{
    if (title)
        printf("\n%s%s%s\n", ctl->color ? "\033[1m" : "", title, ctl->color ? "\033[0m" : "");
    struct out_writer w;
    out_begin(&w, stdout, OUT_TABLE, cols, ncols, true, false);
    for (int r = 0; r < PQntuples(res); r++) {
        const char *v[16];
        for (int i = 0; i < ncols; i++)
            v[i] = out_cell(res, r, first_col + i);
        out_row(&w, v);
    }
    out_end(&w);
}

static void print_text(struct ctl *ctl, const struct employee_data *d)
{
    const PGresult *p = d->person;
    printf("Employee      %s\n", PQgetvalue(p, 0, 1));
    printf("Name          %s\n", out_cell(p, 0, 2) ? out_cell(p, 0, 2) : "-");
    printf("Ressort       %s – %s\n", PQgetvalue(p, 0, 6), PQgetvalue(p, 0, 7));
    printf("Dienststelle  %s – %s (%s)\n", PQgetvalue(p, 0, 3), PQgetvalue(p, 0, 4),
           PQgetvalue(p, 0, 5));
    putchar('\n');
    static const struct out_column item_cols[] = {
        {"item", OUT_T_TEXT, 0}, {"state", OUT_T_TEXT, 0}, {"since", OUT_T_TEXT, 0}};
    print_section(ctl, NULL, item_cols, 3, d->items, 0);
    static const struct out_column dev_cols[] = {{"serial", OUT_T_TEXT, 0},
                                                 {"item", OUT_T_TEXT, 0},
                                                 {"model", OUT_T_TEXT, 0},
                                                 {"imei", OUT_T_TEXT, 0},
                                                 {"since", OUT_T_TEXT, 0}};
    if (PQntuples(d->devices) > 0)
        print_section(ctl, "Devices held", dev_cols, 5, d->devices, 0);
    else
        printf("\nDevices held: none\n");
    static const struct out_column ev_cols[] = {
        {"occurred_at", OUT_T_TEXT, 0}, {"item", OUT_T_TEXT, 0},    {"state", OUT_T_TEXT, 0},
        {"previous", OUT_T_TEXT, 0},    {"applied", OUT_T_BOOL, 0}, {"device", OUT_T_TEXT, 0},
        {"note", OUT_T_TEXT, 0}};
    if (PQntuples(d->events) > 0)
        print_section(ctl,
                      "History (newest first; applied no: a late event, kept in the history only)",
                      ev_cols, 7, d->events, 0);
    else
        printf("\nHistory: no events\n");
}

static void print_json(const struct employee_data *d)
{
    const PGresult *p = d->person;
    json_t *items = json_object();
    for (int r = 0; r < PQntuples(d->items); r++)
        if (out_cell(d->items, r, 1))
            json_object_set_new(items, PQgetvalue(d->items, r, 0),
                                json_pack("{s:o, s:o}", "state",
                                          out_cell_json_string(d->items, r, 1), "since",
                                          out_cell_json_string(d->items, r, 2)));
    json_t *devices = json_array();
    for (int r = 0; r < PQntuples(d->devices); r++)
        json_array_append_new(devices, json_pack("{s:o, s:o, s:o, s:o, s:o}", "serial",
                                                 out_cell_json_string(d->devices, r, 0), "item",
                                                 out_cell_json_string(d->devices, r, 1), "model",
                                                 out_cell_json_string(d->devices, r, 2), "imei",
                                                 out_cell_json_string(d->devices, r, 3), "since",
                                                 out_cell_json_string(d->devices, r, 4)));
    json_t *events = json_array();
    for (int r = 0; r < PQntuples(d->events); r++) {
        json_t *e = json_loads(PQgetvalue(d->events, r, 7), 0, NULL);
        json_array_append_new(events, e ? e : json_null());
    }
    json_t *root = json_pack(
        "{s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "employee", out_cell_json_string(p, 0, 1), "name",
        out_cell_json_string(p, 0, 2), "ressort", out_cell_json_string(p, 0, 6), "dienststelle",
        out_cell_json_string(p, 0, 3), "items", items, "devices", devices, "events", events);
    json_dumpf(root, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    putchar('\n');
    json_decref(root);
}

static int employee_show(struct ctl *ctl, int argc, char **argv)
{
    enum out_format fmt = OUT_TEXT;
    int rc = ctl_format_options(argc, argv, "employee show", help, &out_show_formats, &fmt);
    if (rc >= 0)
        return rc;
    if (argc - optind != 1)
        return ctl_usage_error("employee show", "expected one personnel number");
    const char *id = argv[optind];
    rc = ctl_connect(ctl);
    if (rc)
        return rc;
    if ((rc = ctl_exec(ctl, "BEGIN", "employee show")) != 0)
        return rc;
    struct employee_data d = {0};
    const char *p[] = {id};
    d.person = ctl_query(ctl,
                         "SELECT e.id, e.personnel_number, e.name, e.dienststelle, d.name, d.city,"
                         " d.ressort, r.name FROM employee e"
                         " JOIN dienststelle d ON d.code = e.dienststelle"
                         " JOIN ressort r ON r.code = d.ressort WHERE e.personnel_number = $1",
                         1, p, "employee show", &rc);
    if (rc)
        return ctl_rollback(ctl, rc);
    if (PQntuples(d.person) == 0) {
        ctl_err("employee show: no employee with personnel number %s", id);
        employee_data_free(&d);
        return ctl_rollback(ctl, EX_DATAERR);
    }
    const char *eid[] = {PQgetvalue(d.person, 0, 0)};
    PGresult *res = ctl_query(ctl,
                              "INSERT INTO access_log (actor, employee_id, action)"
                              " VALUES (" CTL_ACTOR_SQL ", $1, 'cli.employee.show')",
                              1, eid, "employee show: recording the read", &rc);
    PQclear(res);
    if (rc == 0)
        d.items = ctl_query(
            ctl,
            "SELECT i.key, s.state, " CTL_TS(
                "s.since") " FROM item i"
                           " LEFT JOIN item_state s ON s.item = i.key AND s.employee_id = $1"
                           " ORDER BY i.position",
            1, eid, "employee show", &rc);
    if (rc == 0)
        d.devices =
            ctl_query(ctl,
                      "SELECT serial, item, model, imei, " CTL_TS(
                          "since") " FROM device WHERE holder_id = $1 ORDER BY since, serial",
                      1, eid, "employee show", &rc);
    if (rc == 0)
        d.events = ctl_query(
            ctl,
            "SELECT " CTL_TS(
                "occurred_at") ", item, state, previous_state, applied,"
                               " device_serial, note, json_strip_nulls(json_build_object("
                               " 'event_id', event_id, 'item', item, 'state', state, "
                               "'previous_state',"
                               " previous_state, 'applied', applied, 'occurred_at', " CTL_TS(
                                   "occurred_at") ","
                                                  " 'received_at', " CTL_TS(
                                                      "received_at") ", 'device', CASE WHEN "
                                                                     "device_serial IS NULL"
                                                                     " THEN NULL ELSE "
                                                                     "jsonb_strip_nulls(jsonb_"
                                                                     "build_object('serial', "
                                                                     "device_serial,"
                                                                     " 'model', device_model, "
                                                                     "'imei', device_imei)) END, "
                                                                     "'features', features,"
                                                                     " 'note', note))::text"
                                                                     " FROM event WHERE "
                                                                     "employee_id = $1 ORDER BY "
                                                                     "occurred_at DESC, id DESC",
            1, eid, "employee show", &rc);
    if (rc == 0)
        rc = ctl_exec(ctl, "COMMIT", "employee show");
    if (rc) {
        employee_data_free(&d);
        return ctl_rollback(ctl, rc);
    }
    if (fmt == OUT_JSON)
        print_json(&d);
    else
        print_text(ctl, &d);
    employee_data_free(&d);
    return 0;
}

int cmd_employee(struct ctl *ctl, int argc, char **argv)
{
    static const struct ctl_command subs[] = {{"show", employee_show, NULL}, {NULL, NULL, NULL}};
    return ctl_dispatch(ctl, argc, argv, subs, "employee", help);
}

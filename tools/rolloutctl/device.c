/* rolloutctl device show SERIAL: a device, its current holder and who held it when. Naming a
 * holder is a read of personal data, so it is recorded in access_log per person shown. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "out.h"

static const char help[] =
    "usage: rolloutctl device show SERIAL [--format text|json]\n"
    "\n"
    "Shows the device (item, model, IMEI), the personnel number of its current holder and\n"
    "every holder over time (from, until). Holders erased with `rolloutctl forget` appear as\n"
    "\"(erased)\". Each person shown is recorded in access_log.\n";

static int device_show(struct ctl *ctl, int argc, char **argv)
{
    enum out_format fmt = OUT_TEXT;
    int rc = ctl_format_options(argc, argv, "device show", help, &out_show_formats, &fmt);
    if (rc >= 0)
        return rc;
    if (argc - optind != 1)
        return ctl_usage_error("device show", "expected one serial number");
    const char *serial = argv[optind];
    rc = ctl_connect(ctl);
    if (rc)
        return rc;
    if ((rc = ctl_exec(ctl, "BEGIN", "device show")) != 0)
        return rc;
    const char *p[] = {serial};
    PGresult *dev = ctl_query(
        ctl,
        "SELECT d.serial, d.item, d.model, d.imei, e.personnel_number,"
        " CASE WHEN d.holder_id IS NULL THEN NULL"
        "  WHEN e.personnel_number IS NULL THEN '(erased)' END,"
        " " CTL_TS("d.since") " FROM device d"
                              " LEFT JOIN employee e ON e.id = d.holder_id WHERE d.serial = $1",
        1, p, "device show", &rc);
    if (rc)
        return ctl_rollback(ctl, rc);
    if (PQntuples(dev) == 0) {
        ctl_err("device show: no device with serial number %s", serial);
        PQclear(dev);
        return ctl_rollback(ctl, EX_DATAERR);
    }
    PGresult *hold = ctl_query(
        ctl,
        "SELECT coalesce(e.personnel_number, '(erased)'), " CTL_TS("h.held_from") ", " CTL_TS(
            "h.held_until") " FROM device_holding h"
                            " LEFT JOIN employee e ON e.id = h.employee_id"
                            " WHERE h.serial = $1"
                            " ORDER BY h.held_from DESC",
        1, p, "device show", &rc);
    if (rc == 0) {
        PGresult *res = ctl_query(ctl,
                                  "INSERT INTO access_log (actor, employee_id, action)"
                                  " SELECT DISTINCT " CTL_ACTOR_SQL ", h.employee_id,"
                                  " 'cli.device.show' FROM device_holding h"
                                  " JOIN employee e ON e.id = h.employee_id"
                                  " WHERE h.serial = $1 AND e.personnel_number IS NOT NULL",
                                  1, p, "device show: recording the read", &rc);
        PQclear(res);
    }
    if (rc == 0)
        rc = ctl_exec(ctl, "COMMIT", "device show");
    if (rc) {
        PQclear(dev);
        PQclear(hold);
        return ctl_rollback(ctl, rc);
    }
    const char *holder = out_cell(dev, 0, 4) ? out_cell(dev, 0, 4) : out_cell(dev, 0, 5);
    if (fmt == OUT_JSON) {
        json_t *holders = json_array();
        for (int r = 0; r < PQntuples(hold); r++)
            json_array_append_new(holders, json_pack("{s:o, s:o, s:o}", "employee",
                                                     out_cell_json_string(hold, r, 0), "from",
                                                     out_cell_json_string(hold, r, 1), "until",
                                                     out_cell_json_string(hold, r, 2)));
        json_t *root = json_pack(
            "{s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "serial", out_cell_json_string(dev, 0, 0),
            "item", out_cell_json_string(dev, 0, 1), "model", out_cell_json_string(dev, 0, 2),
            "imei", out_cell_json_string(dev, 0, 3), "holder",
            holder ? json_string(holder) : json_null(), "since", out_cell_json_string(dev, 0, 6),
            "holders", holders);
        json_dumpf(root, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        putchar('\n');
        json_decref(root);
    } else {
        printf("Device   %s\n", PQgetvalue(dev, 0, 0));
        printf("Item     %s\n", PQgetvalue(dev, 0, 1));
        printf("Model    %s\n", out_cell(dev, 0, 2) ? out_cell(dev, 0, 2) : "-");
        printf("IMEI     %s\n", out_cell(dev, 0, 3) ? out_cell(dev, 0, 3) : "-");
        printf("Holder   %s (since %s)\n", holder ? holder : "nobody (in stock)",
               PQgetvalue(dev, 0, 6));
        if (PQntuples(hold) > 0) {
            printf("\nHolders over time (newest first)\n");
            static const struct out_column cols[] = {
                {"employee", OUT_T_TEXT, 0}, {"from", OUT_T_TEXT, 0}, {"until", OUT_T_TEXT, 0}};
            struct out_writer w;
            out_begin(&w, stdout, OUT_TABLE, cols, 3, true, false);
            for (int r = 0; r < PQntuples(hold); r++)
                out_row_pg(&w, hold, r);
            out_end(&w);
        }
    }
    PQclear(dev);
    PQclear(hold);
    return 0;
}

int cmd_device(struct ctl *ctl, int argc, char **argv)
{
    static const struct ctl_command subs[] = {{"show", device_show, NULL}, {NULL, NULL, NULL}};
    return ctl_dispatch(ctl, argc, argv, subs, "device", help);
}

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

static const char *val(const PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? NULL : PQgetvalue(res, row, col);
}

static json_t *jstr(const PGresult *res, int row, int col)
{
    const char *v = val(res, row, col);
    return v ? json_string(v) : json_null();
}

static int device_show(struct ctl *ctl, int argc, char **argv)
{
    static const struct option opts[] = {
        {"help", no_argument, NULL, 'h'}, {"format", required_argument, NULL, 'f'}, {0, 0, 0, 0}};
    enum out_format fmt = OUT_TEXT;
    bool first = true;
    int c;
    while ((c = ctl_getopt(argc, argv, "h", opts, "device show", &first)) != -1) {
        switch (c) {
        case 'h':
            fputs(help, stdout);
            return 0;
        case 'f':
            if (!out_parse_format(optarg, OUT_ALLOW(OUT_TEXT) | OUT_ALLOW(OUT_JSON), &fmt))
                return ctl_usage_error("device show", "--format \"%s\"; use text or json", optarg);
            break;
        default:
            return EX_USAGE;
        }
    }
    if (argc - optind != 1)
        return ctl_usage_error("device show", "expected one serial number");
    const char *serial = argv[optind];
    int rc = ctl_connect(ctl);
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
    const char *holder = val(dev, 0, 4) ? val(dev, 0, 4) : val(dev, 0, 5);
    if (fmt == OUT_JSON) {
        json_t *holders = json_array();
        for (int r = 0; r < PQntuples(hold); r++)
            json_array_append_new(holders,
                                  json_pack("{s:o, s:o, s:o}", "employee", jstr(hold, r, 0), "from",
                                            jstr(hold, r, 1), "until", jstr(hold, r, 2)));
        json_t *root =
            json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "serial", jstr(dev, 0, 0), "item",
                      jstr(dev, 0, 1), "model", jstr(dev, 0, 2), "imei", jstr(dev, 0, 3), "holder",
                      holder ? json_string(holder) : json_null(), "since", jstr(dev, 0, 6),
                      "holders", holders);
        json_dumpf(root, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        putchar('\n');
        json_decref(root);
    } else {
        printf("Device   %s\n", PQgetvalue(dev, 0, 0));
        printf("Item     %s\n", PQgetvalue(dev, 0, 1));
        printf("Model    %s\n", val(dev, 0, 2) ? val(dev, 0, 2) : "-");
        printf("IMEI     %s\n", val(dev, 0, 3) ? val(dev, 0, 3) : "-");
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

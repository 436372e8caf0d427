/* rolloutctl events export|import.
 *
 * import reads NDJSON (one event per line), validates each line with event_validate() and
 * applies the valid ones with rollout_apply_events(): the very code and SQL function behind
 * POST /v1/events, so a backfill gets the API's validation, idempotency (event_id) and state
 * rules, not a copy of them. */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "ctl.h"
#include "event.h"
#include "out.h"
#include "pgutil.h"

static const char help[] =
    "usage: rolloutctl events export [--since T] [--format ndjson|csv]\n"
    "       rolloutctl events import FILE.ndjson\n"
    "\n"
    "export  writes the event log to stdout, oldest first (in the order it was received),\n"
    "        streamed. --since T (YYYY-MM-DD or an RFC 3339 time) keeps the events received\n"
    "        at or after T. ndjson (default): one event per line in the API's format, which\n"
    "        `events import` reads back; occurred_at is written in UTC (Z), so an event first\n"
    "        sent with another offset comes back as event_id_conflict in the same database\n"
    "        (the API's fingerprint covers the text of occurred_at). csv adds\n"
    "        previous_state, applied, received_at and the token's name. Events of employees\n"
    "        erased with `rolloutctl forget` are left out.\n"
    "import  reads one event per line (blank lines are skipped; FILE - reads stdin), checks\n"
    "        each exactly as POST /v1/events does and applies them in order, 500 lines per\n"
    "        transaction. Prints one line per event to stdout:\n"
    "          LINE created | LINE duplicate | LINE rejected CODE MESSAGE\n"
    "        and a summary on stderr (with a progress bar when stderr is a terminal).\n"
    "        An event_id seen before is a duplicate and changes nothing, so importing the same\n"
    "        file again is safe. Exit status 65 when any line was rejected.\n";

#define IMPORT_CHUNK 500

/* occurred_at as RFC 3339 in UTC, fractional seconds only when there are any. */
#define UTC_TS(col)                                                                                \
    "(to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS')"                            \
    " || CASE WHEN extract(microseconds FROM " col ")::bigint % 1000000 = 0 THEN ''"               \
    " ELSE '.' || rtrim(to_char(" col " AT TIME ZONE 'UTC', 'US'), '0') END || 'Z')"

/* A date means its start in Hessen; a time carries its own offset. */
#define SINCE_COND                                                                                 \
    " AND ($1::text IS NULL OR e.received_at >= CASE WHEN length($1) = 10"                         \
    " THEN $1::date::timestamp AT TIME ZONE 'Europe/Berlin' ELSE $1::timestamptz END)"

static const char export_ndjson_sql[] =
    "SELECT json_strip_nulls(json_build_object("
    " 'event_id', e.event_id, 'employee', p.personnel_number, 'item', e.item, 'state', e.state,"
    " 'occurred_at', " UTC_TS(
        "e.occurred_at") ","
                         " 'device', CASE WHEN e.device_serial IS NULL THEN NULL"
                         "  ELSE json_strip_nulls(json_build_object('serial', e.device_serial,"
                         "  'model', e.device_model, 'imei', e.device_imei)) END,"
                         " 'features', e.features, 'note', e.note))::text"
                         " FROM event e JOIN employee p ON p.id = e.employee_id"
                         " WHERE p.personnel_number IS NOT NULL" SINCE_COND " ORDER BY e.id";

static const char export_csv_sql[] =
    "SELECT e.event_id, p.personnel_number, e.item, e.state, e.previous_state, e.applied,"
    " " UTC_TS("e.occurred_at") ", " UTC_TS(
        "e.received_at") ","
                         " e.device_serial, e.device_model, e.device_imei, e.features::text, "
                         "e.note, t.name"
                         " FROM event e JOIN employee p ON p.id = e.employee_id"
                         " LEFT JOIN api_token t ON t.id = e.token_id"
                         " WHERE p.personnel_number IS NOT NULL" SINCE_COND " ORDER BY e.id";

static void export_line(void *arg, const PGresult *row)
{
    size_t *count = arg;
    fputs(PQgetvalue(row, 0, 0), stdout);
    fputc('\n', stdout);
    (*count)++;
}

static void export_csv_row(void *arg, const PGresult *row)
{
    out_row_pg(arg, row, 0);
}

static const struct out_formats export_formats = {OUT_ALLOW(OUT_NDJSON) | OUT_ALLOW(OUT_CSV),
                                                  "ndjson or csv"};

static int events_export(struct ctl *ctl, int argc, char **argv)
{
    static const struct option opts[] = {{"help", no_argument, NULL, 'h'},
                                         {"since", required_argument, NULL, 's'},
                                         {"format", required_argument, NULL, 'f'},
                                         {0, 0, 0, 0}};
    const char *since = NULL;
    enum out_format fmt = OUT_NDJSON;
    bool first = true;
    int c;
    while ((c = ctl_getopt(argc, argv, "h", opts, "events export", &first)) != -1) {
        switch (c) {
        case 'h':
            fputs(help, stdout);
            return 0;
        case 's': {
            int64_t us;
            if (!ctl_valid_date(optarg) && !event_parse_timestamp(optarg, &us))
                return ctl_usage_error("events export",
                                       "--since \"%s\" is neither a date YYYY-MM-DD nor an RFC "
                                       "3339 time such as 2026-11-20T09:30:00+01:00",
                                       optarg);
            since = optarg;
            break;
        }
        case 'f':
            if (!ctl_format_arg("events export", optarg, &export_formats, &fmt))
                return EX_USAGE;
            break;
        default:
            return EX_USAGE;
        }
    }
    if (optind < argc)
        return ctl_usage_error("events export", "unexpected argument \"%s\"", argv[optind]);
    int rc = ctl_connect_read(ctl);
    if (rc)
        return rc;
    const char *p[] = {since};
    size_t count = 0;
    if (fmt == OUT_NDJSON) {
        rc = ctl_stream(ctl, export_ndjson_sql, 1, p, "events export", export_line, &count);
    } else {
        static const struct out_column cols[] = {
            {"event_id", OUT_T_TEXT, 0},       {"employee", OUT_T_TEXT, 0},
            {"item", OUT_T_TEXT, 0},           {"state", OUT_T_TEXT, 0},
            {"previous_state", OUT_T_TEXT, 0}, {"applied", OUT_T_BOOL, 0},
            {"occurred_at", OUT_T_TEXT, 0},    {"received_at", OUT_T_TEXT, 0},
            {"device_serial", OUT_T_TEXT, 0},  {"device_model", OUT_T_TEXT, 0},
            {"device_imei", OUT_T_TEXT, 0},    {"features", OUT_T_JSON, 0},
            {"note", OUT_T_TEXT, 0},           {"token", OUT_T_TEXT, 0},
        };
        struct out_writer w;
        out_begin(&w, stdout, OUT_CSV, cols, 14, false, false);
        rc = ctl_stream(ctl, export_csv_sql, 1, p, "events export", export_csv_row, &w);
        out_end(&w);
        count = w.count;
    }
    if (rc == 0 && ctl->err_tty && !ctl->out_tty)
        fprintf(stderr, "events export: %zu events\n", count);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */

/* One input line of the chunk being applied. */
struct import_line {
    long line;
    char *result; /* the line's output once known (rejected by validation: at once) */
};

struct importer {
    struct ctl *ctl;
    const char *label;
    struct import_line lines[IMPORT_CHUNK];
    int n;
    json_t *batch; /* validated events of this chunk, each with "i" = its line number */
    long long created, duplicate, rejected;
};

static char *format_result(long line, const char *result, const char *code, const char *message)
{
    char buf[1600];
    if (code)
        snprintf(buf, sizeof buf, "%ld %s %s %s", line, result, code, message ? message : "");
    else
        snprintf(buf, sizeof buf, "%ld %s", line, result);
    /* one result per line, whatever a message holds */
    for (char *p = buf; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    char *out = ctl_xstrdup(buf);
    return out;
}

static void count_result(struct importer *im, const char *result)
{
    if (strcmp(result, "created") == 0)
        im->created++;
    else if (strcmp(result, "duplicate") == 0)
        im->duplicate++;
    else
        im->rejected++;
}

static struct import_line *find_line(struct importer *im, long line)
{
    for (int i = 0; i < im->n; i++)
        if (im->lines[i].line == line)
            return &im->lines[i];
    return NULL;
}

/* Takes the rows of rollout_apply_events(): (i, result, code, message, ...). */
static void take_results(struct importer *im, const PGresult *res)
{
    for (int r = 0; r < PQntuples(res); r++) {
        struct import_line *l = find_line(im, strtol(PQgetvalue(res, r, 0), NULL, 10));
        if (l == NULL || l->result)
            continue;
        const char *result = PQgetvalue(res, r, 1);
        bool rejected = strcmp(result, "rejected") == 0;
        l->result = format_result(l->line, result, rejected ? PQgetvalue(res, r, 2) : NULL,
                                  rejected ? PQgetvalue(res, r, 3) : NULL);
        count_result(im, result);
    }
}

/* Applies a JSON array of events in one transaction. 0, -1 when the statement failed (rolled
 * back, message in err), or an exit status when the connection is gone. */
static int apply(struct importer *im, const char *events_json, char *err, size_t errlen)
{
    struct ctl *ctl = im->ctl;
    int rc = ctl_exec(ctl, "BEGIN", "events import");
    if (rc)
        return rc;
    const char *p[] = {events_json};
    PGresult *res = PQexecParams(ctl->conn, "SELECT * FROM rollout_apply_events($1::jsonb)", 1,
                                 NULL, p, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        if (pgutil_connection_lost(ctl->conn, res)) {
            rc = ctl_db_fail(ctl, res, "events import");
            PQclear(res);
            return rc;
        }
        pgutil_error_text(ctl->conn, res, err, errlen);
        PQclear(res);
        ctl_rollback(ctl, 0);
        return -1;
    }
    /* the running rolloutd instances re-read their progress (the function leaves the NOTIFY
     * to its callers, see schema/002_group_commit.sql) */
    rc = ctl_exec(ctl, "SELECT pg_notify('rollout_progress', '')", "events import");
    if (rc == 0)
        rc = ctl_exec(ctl, "COMMIT", "events import");
    if (rc == 0)
        take_results(im, res);
    PQclear(res);
    return rc;
}

/* Applies the chunk and prints its results in line order. */
static int flush_chunk(struct importer *im)
{
    int rc = 0;
    if (json_array_size(im->batch) > 0) {
        char *text = json_dumps(im->batch, JSON_COMPACT);
        char err[PGUTIL_ERROR_MAX];
        rc = apply(im, text, err, sizeof err);
        free(text);
        if (rc < 0) {
            /* Something unexpected failed the whole group: apply the events one by one, so
             * that only the one at fault is rejected (as the daemon does). */
            rc = 0;
            size_t i;
            json_t *ev;
            json_array_foreach(im->batch, i, ev)
            {
                json_t *one = json_array();
                json_array_append(one, ev);
                char *t = json_dumps(one, JSON_COMPACT);
                json_decref(one);
                rc = apply(im, t, err, sizeof err);
                free(t);
                if (rc < 0) {
                    struct import_line *l =
                        find_line(im, (long)json_integer_value(json_object_get(ev, "i")));
                    if (l && !l->result) {
                        l->result = format_result(l->line, "rejected", "internal", err);
                        im->rejected++;
                    }
                    rc = 0;
                } else if (rc > 0) {
                    break;
                }
            }
        }
    }
    for (int i = 0; i < im->n; i++) {
        if (im->lines[i].result)
            printf("%s\n", im->lines[i].result);
        free(im->lines[i].result);
    }
    if (rc > 0 && im->n > 0)
        ctl_err("events import: stopped in the chunk of %s lines %ld to %ld; every line before "
                "is committed. Run the same import again: what was stored comes back as "
                "duplicate",
                im->label, im->lines[0].line, im->lines[im->n - 1].line);
    im->n = 0;
    json_array_clear(im->batch);
    fflush(stdout);
    return rc;
}

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Validates one line; a valid event joins the batch, an invalid one gets its result at once. */
static void take_line(struct importer *im, long lineno, const char *text, size_t len)
{
    struct import_line *l = &im->lines[im->n++];
    l->line = lineno;
    l->result = NULL;
    struct api_error err;
    json_t *doc = event_parse_body(text, len, &err);
    if (doc && !json_is_object(doc)) {
        api_error_set(&err, 400, "invalid_body", NULL,
                      "each line must hold one event (a JSON object), not a batch");
        json_decref(doc);
        doc = NULL;
    }
    json_t *ev = doc ? event_validate(doc, now_us(), &err) : NULL;
    json_decref(doc);
    if (ev == NULL) {
        l->result = format_result(lineno, "rejected", err.code, err.message);
        im->rejected++;
        return;
    }
    json_object_set_new(ev, "i", json_integer(lineno));
    json_object_set_new(ev, "token", json_null());
    json_object_set_new(ev, "scope", json_null());
    json_array_append_new(im->batch, ev);
}

static int events_import(struct ctl *ctl, int argc, char **argv)
{
    static const struct option opts[] = {{"help", no_argument, NULL, 'h'}, {0, 0, 0, 0}};
    bool first = true;
    int c;
    while ((c = ctl_getopt(argc, argv, "h", opts, "events import", &first)) != -1) {
        if (c == 'h') {
            fputs(help, stdout);
            return 0;
        }
        return EX_USAGE;
    }
    if (argc - optind != 1)
        return ctl_usage_error("events import", "expected one NDJSON file");
    const char *path = argv[optind];
    bool is_stdin = strcmp(path, "-") == 0;
    FILE *f = is_stdin ? stdin : fopen(path, "rb");
    if (f == NULL) {
        ctl_err("events import: cannot open %s: %s", path, strerror(errno));
        return EX_NOINPUT;
    }
    long long size = -1;
    struct stat st;
    if (!is_stdin && fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode))
        size = st.st_size;
    int rc = ctl_connect(ctl);
    if (rc) {
        if (!is_stdin)
            fclose(f);
        return rc;
    }

    struct importer *im = ctl_xcalloc(1, sizeof *im);
    im->ctl = ctl;
    im->label = is_stdin ? "stdin" : path;
    im->batch = json_array();
    char *buf = NULL;
    size_t cap = 0;
    ssize_t len;
    long lineno = 0;
    long long read_bytes = 0;
    bool progress = ctl->err_tty && size > 0;
    while ((len = getline(&buf, &cap, f)) >= 0) {
        lineno++;
        read_bytes += len;
        char *text = buf;
        if (lineno == 1 && len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) {
            text += 3; /* a byte order mark some editors write */
            len -= 3;
        }
        while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r' || text[len - 1] == ' ' ||
                           text[len - 1] == '\t'))
            len--;
        size_t lead = strspn(text, " \t");
        if ((ssize_t)lead >= len)
            continue; /* blank */
        take_line(im, lineno, text, (size_t)len);
        if (im->n == IMPORT_CHUNK) {
            if ((rc = flush_chunk(im)) != 0)
                break;
            if (progress) {
                char detail[96];
                snprintf(detail, sizeof detail,
                         "line %ld: %lld created, %lld duplicate, %lld "
                         "rejected",
                         lineno, im->created, im->duplicate, im->rejected);
                out_progress(im->label, (double)read_bytes / (double)size, detail);
            }
        }
    }
    if (rc == 0 && ferror(f)) {
        ctl_err("events import: read error in %s: %s", im->label, strerror(errno));
        rc = EX_IOERR;
    }
    if (rc == 0)
        rc = flush_chunk(im);
    if (progress)
        out_progress_done();
    free(buf);
    if (!is_stdin)
        fclose(f);
    long long total = im->created + im->duplicate + im->rejected;
    fprintf(stderr, "%s: %lld event%s, %lld created, %lld duplicate, %lld rejected\n", im->label,
            total, total == 1 ? "" : "s", im->created, im->duplicate, im->rejected);
    if (rc == 0 && im->rejected > 0)
        rc = EX_DATAERR;
    for (int i = 0; i < im->n; i++)
        free(im->lines[i].result);
    json_decref(im->batch);
    free(im);
    return rc;
}

int cmd_events(struct ctl *ctl, int argc, char **argv)
{
    static const struct ctl_command subs[] = {
        {"export", events_export, NULL},
        {"import", events_import, NULL},
        {NULL, NULL, NULL},
    };
    return ctl_dispatch(ctl, argc, argv, subs, "events", help);
}

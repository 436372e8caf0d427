#include "ctl.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "pgutil.h"

static void *enough(void *p)
{
    if (p == NULL) {
        fputs("rolloutctl: out of memory\n", stderr);
        exit(EX_OSERR);
    }
    return p;
}

void *ctl_xmalloc(size_t n)
{
    return enough(malloc(n ? n : 1));
}

void *ctl_xcalloc(size_t count, size_t n)
{
    return enough(calloc(count ? count : 1, n ? n : 1));
}

void *ctl_xrealloc(void *p, size_t n)
{
    return enough(realloc(p, n ? n : 1));
}

char *ctl_xstrdup(const char *s)
{
    return enough(strdup(s));
}

void ctl_err(const char *fmt, ...)
{
    va_list ap;
    fputs("rolloutctl: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* Opens ctl->conn to conninfo; `whom` names it in the error ("the replica (--replica)"). */
static int open_session(struct ctl *ctl, const char *conninfo, const char *whom, bool read_only)
{
    char err[PGUTIL_ERROR_MAX];
    ctl->conn = pgutil_connect(conninfo, "rolloutctl", err);
    if (ctl->conn == NULL) {
        ctl_err("cannot connect to %s: %s", whom, err);
        return EX_UNAVAILABLE;
    }
    /* a report must never write, even when --replica names the primary by mistake */
    if (read_only)
        PQclear(PQexec(ctl->conn, "SET default_transaction_read_only = on"));
    /* The admins work in Hessen: times are shown in German time unless PGTZ asks otherwise.
     * Day boundaries in queries name Europe/Berlin explicitly and do not depend on this. */
    if (getenv("PGTZ") == NULL)
        PQclear(PQexec(ctl->conn, "SET TimeZone = 'Europe/Berlin'"));
    return 0;
}

int ctl_connect(struct ctl *ctl)
{
    if (ctl->conn != NULL)
        return 0;
    const char *conninfo = "";
    const char *source = "the PG* environment variables";
    if (ctl->db_conninfo != NULL) {
        conninfo = ctl->db_conninfo;
        source = "--db";
    } else if (ctl->have_config) {
        bool admin = ctl->cfg.db_admin_conninfo && ctl->cfg.db_admin_conninfo[0];
        conninfo = admin ? ctl->cfg.db_admin_conninfo : ctl->cfg.db_conninfo;
        source = admin ? "database.admin_conninfo" : "database.conninfo";
    }
    char whom[128];
    snprintf(whom, sizeof whom, "the database (connection from %s)", source);
    return open_session(ctl, conninfo, whom, false);
}

int ctl_connect_read(struct ctl *ctl)
{
    if (ctl->replica_conninfo == NULL || ctl->conn != NULL)
        return ctl_connect(ctl);
    return open_session(ctl, ctl->replica_conninfo, "the replica (--replica)", true);
}

int ctl_db_fail(struct ctl *ctl, const PGresult *res, const char *what)
{
    char msg[PGUTIL_ERROR_MAX];
    pgutil_error_text(ctl->conn, res, msg, sizeof msg);
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    if (pgutil_connection_lost(ctl->conn, res)) {
        ctl_err("%s: the database connection was lost: %s", what, msg);
        return EX_UNAVAILABLE;
    }
    if (state && strcmp(state, "42501") == 0) {
        ctl_err("%s: %s; connect as a role in rollout_admin (database.admin_conninfo)", what, msg);
        return EX_NOPERM;
    }
    ctl_err("%s: %s", what, msg);
    /* class 22 (data exception) and 23 (integrity constraint): the input was refused */
    if (state && (strncmp(state, "22", 2) == 0 || strncmp(state, "23", 2) == 0))
        return EX_DATAERR;
    return EX_SOFTWARE;
}

int ctl_exec(struct ctl *ctl, const char *sql, const char *what)
{
    PGresult *res = PQexec(ctl->conn, sql);
    int rc = 0;
    if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK)
        rc = ctl_db_fail(ctl, res, what);
    PQclear(res);
    return rc;
}

PGresult *ctl_query(struct ctl *ctl, const char *sql, int nparams, const char *const *params,
                    const char *what, int *rc)
{
    PGresult *res = PQexecParams(ctl->conn, sql, nparams, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
        *rc = ctl_db_fail(ctl, res, what);
        PQclear(res);
        return NULL;
    }
    *rc = 0;
    return res;
}

int ctl_stream(struct ctl *ctl, const char *sql, int nparams, const char *const *params,
               const char *what, ctl_row_fn fn, void *arg)
{
    if (!PQsendQueryParams(ctl->conn, sql, nparams, NULL, params, NULL, NULL, 0)) {
        ctl_err("%s: %s", what, PQerrorMessage(ctl->conn));
        return EX_UNAVAILABLE;
    }
    PQsetSingleRowMode(ctl->conn);
    int rc = 0;
    PGresult *res;
    while ((res = PQgetResult(ctl->conn)) != NULL) {
        switch (PQresultStatus(res)) {
        case PGRES_SINGLE_TUPLE:
            if (rc == 0)
                fn(arg, res);
            break;
        case PGRES_TUPLES_OK: /* the end of the rows (or no rows at all) */
        case PGRES_COMMAND_OK:
            break;
        default:
            if (rc == 0)
                rc = ctl_db_fail(ctl, res, what);
            break;
        }
        PQclear(res);
    }
    return rc;
}

int ctl_rollback(struct ctl *ctl, int rc)
{
    if (ctl->conn && PQstatus(ctl->conn) == CONNECTION_OK &&
        PQtransactionStatus(ctl->conn) != PQTRANS_IDLE)
        PQclear(PQexec(ctl->conn, "ROLLBACK"));
    return rc;
}

int ctl_getopt(int argc, char **argv, const char *shortopts, const struct option *longopts,
               const char *cmd, bool *first)
{
    if (*first) {
        optind = 0; /* glibc: 0 re-initialises the scanner for a new argv */
        opterr = 0; /* we word the messages ourselves */
        *first = false;
    }
    char spec[64];
    snprintf(spec, sizeof spec, ":%s", shortopts); /* ':' to tell a missing value apart */
    int c = getopt_long(argc, argv, spec, longopts, NULL);
    if (c == '?') {
        const char *bad = argv[optind - 1];
        ctl_usage_error(cmd, "unknown option %s", bad);
    } else if (c == ':') {
        ctl_usage_error(cmd, "option %s needs a value", argv[optind - 1]);
        c = '?';
    }
    return c;
}

int ctl_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "rolloutctl %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "; see `rolloutctl %s --help`\n", cmd);
    return EX_USAGE;
}

bool ctl_format_arg(const char *cmd, const char *arg, const struct out_formats *formats,
                    enum out_format *fmt)
{
    if (out_parse_format(arg, formats->allowed, fmt))
        return true;
    ctl_usage_error(cmd, "--format \"%s\"; use %s", arg, formats->names);
    return false;
}

int ctl_format_options(int argc, char **argv, const char *cmd, const char *help,
                       const struct out_formats *formats, enum out_format *fmt)
{
    static const struct option opts[] = {
        {"help", no_argument, NULL, 'h'}, {"format", required_argument, NULL, 'f'}, {0, 0, 0, 0}};
    bool first = true;
    int c;
    while ((c = ctl_getopt(argc, argv, "h", opts, cmd, &first)) != -1) {
        switch (c) {
        case 'h':
            fputs(help, stdout);
            return 0;
        case 'f':
            if (!ctl_format_arg(cmd, optarg, formats, fmt))
                return EX_USAGE;
            break;
        default:
            return EX_USAGE;
        }
    }
    return -1;
}

int ctl_check_known(struct ctl *ctl, const char *cmd, const char *sql, const char *value,
                    const char *what, const char *hint)
{
    if (value == NULL)
        return 0;
    int rc;
    const char *p[] = {value};
    PGresult *res = ctl_query(ctl, sql, 1, p, cmd, &rc);
    if (rc)
        return rc;
    bool known = PQntuples(res) > 0;
    PQclear(res);
    if (!known) {
        ctl_err("%s: unknown %s \"%s\"%s", cmd, what, value, hint);
        return EX_DATAERR;
    }
    return 0;
}

int ctl_dispatch(struct ctl *ctl, int argc, char **argv, const struct ctl_command *table,
                 const char *parent, const char *help)
{
    if (argc < 2) {
        fputs(help, stderr);
        return EX_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        fputs(help, stdout);
        return 0;
    }
    for (const struct ctl_command *c = table; c->name; c++)
        if (strcmp(c->name, argv[1]) == 0)
            return c->run(ctl, argc - 1, argv + 1);
    return ctl_usage_error(parent, "unknown subcommand \"%s\"", argv[1]);
}

bool ctl_valid_date(const char *s)
{
    if (strlen(s) != 10 || s[4] != '-' || s[7] != '-')
        return false;
    for (int i = 0; i < 10; i++)
        if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9'))
            return false;
    int y = (int)strtol(s, NULL, 10), m = (int)strtol(s + 5, NULL, 10),
        d = (int)strtol(s + 8, NULL, 10);
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (y < 1970 || m < 1 || m > 12 || d < 1)
        return false;
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return d <= mdays[m - 1] + (m == 2 && leap);
}

bool ctl_parse_count(const char *s, long long max, long long *out)
{
    if (*s < '0' || *s > '9')
        return false;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (*end != '\0' || v < 1 || v > max)
        return false;
    *out = v;
    return true;
}

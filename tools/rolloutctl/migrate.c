/* rolloutctl migrate: applies schema/NNN_name.sql files not yet recorded in schema_migrations,
 * in order, each in its own transaction together with its record (version, name, SHA-256), and
 * refuses to go on when an applied file has changed since. */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "digest.h"
#include "domain.h"
#include "pgutil.h"

static const char help[] =
    "usage: rolloutctl [--config FILE | --db CONNINFO] [--schema-dir DIR] migrate [--status]\n"
    "\n"
    "Applies every DIR/NNN_name.sql not yet recorded in the table schema_migrations, in the\n"
    "order of NNN, each in its own transaction; records its version, name and SHA-256.\n"
    "Refuses (exit 65) when an applied file was changed afterwards: never edit an applied\n"
    "migration, add the next one. Prints one line per applied file on stderr, nothing when\n"
    "the database is current.\n"
    "\n"
    "With --config, the default targets of the configuration's `targets` group are stored for\n"
    "every item that has no overall target yet (`rolloutctl targets set` changes them later).\n"
    "\n"
    "  --status   list each migration as applied (with its date) or pending; change nothing\n"
    "\n"
    "Run it as a role that may create tables (the database owner), not as rolloutd's role.\n";

/* One rolloutctl migrate at a time per database: a second one waits for the first. */
#define MIGRATE_LOCK_KEY "7245001"

struct migration {
    int version;
    char name[256]; /* the file name, e.g. 001_init.sql */
    char checksum[65];
    char *sql;
};

static bool migration_file_name(const char *n, int *version)
{
    size_t len = strlen(n);
    if (len < 9 || len > 200 || strcmp(n + len - 4, ".sql") != 0 || n[3] != '_')
        return false;
    for (int i = 0; i < 3; i++)
        if (n[i] < '0' || n[i] > '9')
            return false;
    for (size_t i = 4; i < len - 4; i++)
        if (!((n[i] >= 'a' && n[i] <= 'z') || (n[i] >= 'A' && n[i] <= 'Z') ||
              (n[i] >= '0' && n[i] <= '9') || n[i] == '_' || n[i] == '-'))
            return false;
    *version = (n[0] - '0') * 100 + (n[1] - '0') * 10 + (n[2] - '0');
    return *version > 0;
}

static int by_version(const void *a, const void *b)
{
    const struct migration *x = a, *y = b;
    return (x->version > y->version) - (x->version < y->version);
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    size_t cap = 65536, n = 0;
    char *buf = ctl_xmalloc(cap);
    for (;;) {
        if (n + 1 >= cap) {
            cap *= 2;
            buf = ctl_xrealloc(buf, cap);
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0)
            break;
    }
    bool bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

static void free_migrations(struct migration *m, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(m[i].sql);
    free(m);
}

/* Reads DIR: every NNN_name.sql, sorted. Other files are ignored (README, editors' backups). */
static int load_migrations(const char *dir, struct migration **out, size_t *count)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        ctl_err("cannot read the schema directory %s: %s; pass --schema-dir DIR", dir,
                strerror(errno));
        return EX_NOINPUT;
    }
    struct migration *m = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        int version;
        if (!migration_file_name(de->d_name, &version))
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 8;
            m = ctl_xrealloc(m, cap * sizeof *m);
        }
        memset(&m[n], 0, sizeof m[n]);
        m[n].version = version;
        snprintf(m[n].name, sizeof m[n].name, "%s", de->d_name);
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        size_t len = 0;
        m[n].sql = read_file(path, &len);
        n++;
        if (m[n - 1].sql == NULL) {
            ctl_err("cannot read %s: %s", path, strerror(errno));
            rc = EX_NOINPUT;
            break;
        }
        if (!digest_sha256_hex(m[n - 1].sql, len, m[n - 1].checksum)) {
            ctl_err("cannot compute the checksum of %s: OpenSSL has no SHA-256", path);
            rc = EX_SOFTWARE;
            break;
        }
    }
    closedir(d);
    if (rc == 0 && n > 0) {
        qsort(m, n, sizeof *m, by_version);
        for (size_t i = 1; i < n; i++) {
            if (m[i].version == m[i - 1].version) {
                ctl_err("%s/%s and %s have the same number %03d; renumber one of them", dir,
                        m[i - 1].name, m[i].name, m[i].version);
                rc = EX_DATAERR;
            }
        }
    }
    if (rc == 0 && n == 0) {
        ctl_err("no migrations (NNN_name.sql) in %s; pass --schema-dir DIR", dir);
        rc = EX_NOINPUT;
    }
    if (rc != 0) {
        free_migrations(m, n);
        return rc;
    }
    *out = m;
    *count = n;
    return 0;
}

/* The line of a character position (1-based, in characters as the server counts them). */
static int line_of_position(const char *sql, long pos)
{
    int line = 1;
    long chars = 0;
    for (const unsigned char *p = (const unsigned char *)sql; *p; p++) {
        if ((*p & 0xC0) != 0x80 && ++chars >= pos)
            break;
        if (*p == '\n')
            line++;
    }
    return line;
}

static int apply_one(struct ctl *ctl, const char *dir, const struct migration *m)
{
    int rc = ctl_exec(ctl, "BEGIN", "migrate");
    if (rc)
        return rc;
    PGresult *res = PQexec(ctl->conn, m->sql);
    if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK) {
        char msg[PGUTIL_ERROR_MAX];
        pgutil_error_text(ctl->conn, res, msg, sizeof msg);
        const char *pos = PQresultErrorField(res, PG_DIAG_STATEMENT_POSITION);
        if (pgutil_connection_lost(ctl->conn, res)) {
            rc = EX_UNAVAILABLE;
            ctl_err("%s/%s: the database connection was lost: %s", dir, m->name, msg);
        } else {
            rc = EX_DATAERR;
            if (pos)
                ctl_err("%s/%s:%d: %s; nothing of this file was applied", dir, m->name,
                        line_of_position(m->sql, strtol(pos, NULL, 10)), msg);
            else
                ctl_err("%s/%s: %s; nothing of this file was applied", dir, m->name, msg);
        }
        PQclear(res);
        return ctl_rollback(ctl, rc);
    }
    PQclear(res);
    char version[16];
    snprintf(version, sizeof version, "%d", m->version);
    const char *params[] = {version, m->name, m->checksum};
    res = ctl_query(ctl,
                    "INSERT INTO " PGUTIL_MIGRATIONS_TABLE
                    " (version, name, checksum) VALUES ($1, $2, $3)",
                    3, params, m->name, &rc);
    PQclear(res);
    /* A migration may well REVOKE ALL ... FROM PUBLIC (001 does): rolloutd's role must still
     * read the version at start-up. */
    if (rc == 0)
        rc = ctl_exec(ctl, "GRANT SELECT ON " PGUTIL_MIGRATIONS_TABLE " TO PUBLIC", m->name);
    if (rc)
        return ctl_rollback(ctl, rc);
    rc = ctl_exec(ctl, "COMMIT", m->name);
    if (rc)
        return rc;
    fprintf(stderr, "migrate: applied %s\n", m->name);
    return 0;
}

/* The configuration's default targets, for items without an overall target. */
static int seed_targets(struct ctl *ctl)
{
    int rc = ctl_exec(ctl, "BEGIN", "migrate: storing the default targets");
    if (rc)
        return rc;
    for (int i = 0; i < ITEM_COUNT; i++) {
        const struct config_item_target *t = &ctl->cfg.targets[i];
        if (!t->set)
            continue;
        char count[32];
        snprintf(count, sizeof count, "%lld", t->target);
        const char *params[] = {item_info((enum item)i)->key, count, t->deadline};
        PGresult *res = ctl_query(ctl,
                                  "INSERT INTO target (item, ressort, target, deadline) "
                                  "VALUES ($1, NULL, $2, $3) ON CONFLICT (item, ressort) "
                                  "DO NOTHING RETURNING item",
                                  3, params, "migrate: storing the default targets", &rc);
        if (rc)
            return ctl_rollback(ctl, rc);
        if (PQntuples(res) == 1)
            fprintf(stderr, "migrate: target of %s set to %s by %s (from %s)\n", params[0], count,
                    t->deadline, ctl->config_path);
        PQclear(res);
    }
    return ctl_exec(ctl, "COMMIT", "migrate: storing the default targets");
}

/* applied: the rows of schema_migrations, NULL when the table does not exist yet. */
static int show_status(const struct migration *m, size_t n, const PGresult *applied)
{
    for (size_t i = 0; i < n; i++) {
        const char *at = NULL;
        for (int r = 0; applied && r < PQntuples(applied); r++)
            if ((int)strtol(PQgetvalue(applied, r, 0), NULL, 10) == m[i].version)
                at = PQgetvalue(applied, r, 3);
        printf("%-40s %s\n", m[i].name, at ? at : "pending");
    }
    return 0;
}

int cmd_migrate(struct ctl *ctl, int argc, char **argv)
{
    static const struct option opts[] = {
        {"help", no_argument, NULL, 'h'}, {"status", no_argument, NULL, 's'}, {0, 0, 0, 0}};
    bool first = true, status = false;
    int c;
    while ((c = ctl_getopt(argc, argv, "h", opts, "migrate", &first)) != -1) {
        switch (c) {
        case 'h':
            fputs(help, stdout);
            return 0;
        case 's':
            status = true;
            break;
        default:
            return EX_USAGE;
        }
    }
    if (optind < argc)
        return ctl_usage_error("migrate", "unexpected argument \"%s\"", argv[optind]);

    struct migration *m = NULL;
    size_t n = 0;
    int rc = load_migrations(ctl->schema_dir, &m, &n);
    if (rc)
        return rc;
    if ((rc = ctl_connect(ctl)) != 0)
        goto out;
    PGresult *res = ctl_query(ctl, "SELECT pg_advisory_lock(" MIGRATE_LOCK_KEY ")", 0, NULL,
                              "migrate: waiting for another migrate", &rc);
    PQclear(res);
    if (rc)
        goto out;

    /* Only create when missing: CREATE ... IF NOT EXISTS would still need the right to create
     * tables, which an admin role running `migrate` on a current database need not have. */
    res = ctl_query(ctl, "SELECT to_regclass('" PGUTIL_MIGRATIONS_TABLE "') IS NULL", 0, NULL,
                    "migrate", &rc);
    if (rc)
        goto out;
    bool missing = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    if (missing && !status) {
        rc = ctl_exec(ctl,
                      "BEGIN;"
                      "CREATE TABLE " PGUTIL_MIGRATIONS_TABLE " ("
                      " version integer PRIMARY KEY,"
                      " name text NOT NULL,"
                      " checksum text NOT NULL,"
                      " applied_at timestamptz NOT NULL DEFAULT now());"
                      /* rolloutd checks the version at start-up with its own, small role */
                      "GRANT SELECT ON " PGUTIL_MIGRATIONS_TABLE " TO PUBLIC;"
                      "COMMIT",
                      "migrate: creating " PGUTIL_MIGRATIONS_TABLE);
        if (rc)
            goto out;
    }

    PGresult *applied = NULL;
    if (!missing) {
        applied =
            ctl_query(ctl,
                      "SELECT version, name, checksum, "
                      "to_char(applied_at, 'YYYY-MM-DD HH24:MI:SSOF') FROM " PGUTIL_MIGRATIONS_TABLE
                      " ORDER BY version",
                      0, NULL, "migrate: reading " PGUTIL_MIGRATIONS_TABLE, &rc);
        if (rc)
            goto out;
    }
    if (status) {
        rc = show_status(m, n, applied);
        PQclear(applied);
        goto out;
    }

    /* Refuse before applying anything when the past no longer matches the files. */
    bool *done = ctl_xcalloc(n, sizeof *done);
    for (int r = 0; applied && r < PQntuples(applied); r++) {
        int version = (int)strtol(PQgetvalue(applied, r, 0), NULL, 10);
        const char *name = PQgetvalue(applied, r, 1);
        const char *sum = PQgetvalue(applied, r, 2);
        size_t i = 0;
        while (i < n && m[i].version != version)
            i++;
        if (i == n) {
            ctl_err("the database has migration %s applied, but %s has no file numbered %03d: "
                    "these files are older than the database; use the matching release",
                    name, ctl->schema_dir, version);
            rc = EX_DATAERR;
            continue;
        }
        done[i] = true;
        if (strcmp(sum, m[i].checksum) != 0) {
            ctl_err("%s/%s was changed after it was applied (checksum %.12s…, applied "
                    "%.12s…); restore the applied version and put the change in a new file",
                    ctl->schema_dir, m[i].name, m[i].checksum, sum);
            rc = EX_DATAERR;
        }
    }
    PQclear(applied);
    for (size_t i = 0; rc == 0 && i < n; i++)
        if (!done[i])
            rc = apply_one(ctl, ctl->schema_dir, &m[i]);
    free(done);
    if (rc == 0 && ctl->have_config)
        rc = seed_targets(ctl);

out:
    free_migrations(m, n);
    return rc;
}

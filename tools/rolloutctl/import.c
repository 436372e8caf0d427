/* rolloutctl import ressorts|dienststellen|employees FILE.csv
 *
 * The file is streamed with COPY into a temporary staging table, checked there with SQL (the
 * same rules as the schema's constraints, plus "known Ressort/Dienststelle" and "no key twice"),
 * and merged in the same transaction: every bad row is reported and nothing is applied, or
 * everything is. PostgreSQL parses the CSV fields; this file only finds where each record
 * starts, so that messages can name the physical line even when a quoted field holds a line
 * break, and checks the UTF-8 and the number of fields per record, so that every such row is
 * reported instead of COPY stopping at the first. */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "ctl.h"
#include "out.h"
#include "pgutil.h"

static const char help[] =
    "usage: rolloutctl import ressorts|dienststellen|employees FILE.csv\n"
    "\n"
    "Loads a CSV file (UTF-8, comma-separated, header row naming the columns):\n"
    "  ressorts       ressort,name                     e.g. HMdF,Hessisches Ministerium der "
    "Finanzen\n"
    "  dienststellen  dienststelle,ressort,name,city   (a stable code per office)\n"
    "  employees      personnel_number,dienststelle[,name]\n"
    "Columns may come in any order; the optional name may be left out. FILE - reads stdin.\n"
    "\n"
    "The file is loaded whole or not at all: every bad row is reported on stderr as\n"
    "FILE:LINE: reason, and then nothing is changed (exit 65). Otherwise new rows are added and\n"
    "changed rows updated in one transaction (keys: the ressort code, the dienststelle code, the\n"
    "personnel number). An employee who moved to another Dienststelle takes their counts along.\n"
    "Rows missing from the file are NOT deleted: an office or a person that left stays until it\n"
    "is removed on purpose (for a person: `rolloutctl forget`).\n"
    "Load ressorts first, then dienststellen, then employees. A summary goes to stderr.\n";

/* ------------------------------------------------------------------------------------------ */
/* What differs between the three files. */

struct import_kind {
    const char *name;
    const char *const *required; /* columns the header must name, NULL-ended */
    const char *optional;        /* a column it may name, or NULL */
    const char *stage_sql;       /* the staging table: "line" and every column as text */
    const char *check_sql;       /* (line, reason) of every bad row, ordered by line */
    int (*merge)(struct ctl *ctl, bool has_optional, long long counts[4]);
};

/* The checks repeat the CHECK constraints of schema/001_init.sql on purpose: there they guard
 * the tables, here they name the line. */
static const char ressort_check[] =
    "SELECT line, reason FROM ("
    " SELECT line, 1 AS o, 'ressort is empty' AS reason FROM import_stage WHERE ressort IS NULL"
    " UNION ALL SELECT line, 2, format('ressort code \"%s\" is not valid: a letter, then letters, "
    "digits, _ or -, at most 32 characters', ressort) FROM import_stage"
    "  WHERE ressort !~ '^[A-Za-z][A-Za-z0-9_-]{0,31}$'"
    " UNION ALL SELECT line, 3, format('ressort %s appears again (first on line %s)', ressort, "
    "first) FROM (SELECT line, ressort, min(line) OVER (PARTITION BY ressort) AS first"
    "  FROM import_stage WHERE ressort IS NOT NULL) d WHERE line <> first"
    " UNION ALL SELECT line, 4, 'name is empty' FROM import_stage WHERE name IS NULL"
    " UNION ALL SELECT line, 5, format('name has %s characters; at most 200', length(name))"
    "  FROM import_stage WHERE length(name) > 200"
    ") x ORDER BY line, o";

static const char dienststelle_check[] =
    "SELECT line, reason FROM ("
    " SELECT line, 1 AS o, 'dienststelle is empty' AS reason FROM import_stage"
    "  WHERE dienststelle IS NULL"
    " UNION ALL SELECT line, 2, format('dienststelle code \"%s\" is not valid: letters, digits, "
    "_ . or -, at most 32 characters', dienststelle) FROM import_stage"
    "  WHERE dienststelle !~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$'"
    " UNION ALL SELECT line, 3, format('dienststelle %s appears again (first on line %s)', "
    "dienststelle, first) FROM (SELECT line, dienststelle, min(line) OVER (PARTITION BY "
    "dienststelle) AS first FROM import_stage WHERE dienststelle IS NOT NULL) d WHERE line <> first"
    " UNION ALL SELECT line, 4, 'ressort is empty' FROM import_stage WHERE ressort IS NULL"
    " UNION ALL SELECT s.line, 5, format('unknown Ressort \"%s\"; import ressorts.csv first or "
    "correct the code', s.ressort) FROM import_stage s WHERE s.ressort IS NOT NULL"
    "  AND NOT EXISTS (SELECT 1 FROM ressort r WHERE r.code = s.ressort)"
    " UNION ALL SELECT line, 6, 'name is empty' FROM import_stage WHERE name IS NULL"
    " UNION ALL SELECT line, 7, format('name has %s characters; at most 200', length(name))"
    "  FROM import_stage WHERE length(name) > 200"
    " UNION ALL SELECT line, 8, 'city is empty' FROM import_stage WHERE city IS NULL"
    " UNION ALL SELECT line, 9, format('city has %s characters; at most 100', length(city))"
    "  FROM import_stage WHERE length(city) > 100"
    ") x ORDER BY line, o";

static const char employee_check[] =
    "SELECT line, reason FROM ("
    " SELECT line, 1 AS o, 'personnel_number is empty' AS reason FROM import_stage"
    "  WHERE personnel_number IS NULL"
    " UNION ALL SELECT line, 2, format('personnel_number \"%s\" is not valid: letters, digits, "
    "_ or -, starting with a letter or digit, at most 32 characters', personnel_number)"
    "  FROM import_stage WHERE personnel_number !~ '^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$'"
    " UNION ALL SELECT line, 3, format('personnel number %s appears again (first on line %s)', "
    "personnel_number, first) FROM (SELECT line, personnel_number, min(line) OVER (PARTITION BY "
    "personnel_number) AS first FROM import_stage WHERE personnel_number IS NOT NULL) d"
    "  WHERE line <> first"
    " UNION ALL SELECT line, 4, 'dienststelle is empty' FROM import_stage WHERE dienststelle IS "
    "NULL"
    " UNION ALL SELECT s.line, 5, format('unknown Dienststelle \"%s\"; import dienststellen.csv "
    "first or correct the code', s.dienststelle) FROM import_stage s"
    "  WHERE s.dienststelle IS NOT NULL"
    "  AND NOT EXISTS (SELECT 1 FROM dienststelle d WHERE d.code = s.dienststelle)"
    " UNION ALL SELECT line, 6, format('name has %s characters; at most 200', length(name))"
    "  FROM import_stage WHERE length(name) > 200"
    ") x ORDER BY line, o";

/* counts: [0] inserted, [1] updated, [2] moved (employees) or 0 */
static int exec_count(struct ctl *ctl, const char *sql, int nparams, const char *const *params,
                      long long *count)
{
    int rc;
    PGresult *res = ctl_query(ctl, sql, nparams, params, "import", &rc);
    if (rc)
        return rc;
    if (count)
        *count = strtoll(PQcmdTuples(res), NULL, 10);
    PQclear(res);
    return 0;
}

static int merge_ressorts(struct ctl *ctl, bool has_optional, long long counts[4])
{
    int rc = exec_count(ctl,
                        "UPDATE ressort r SET name = s.name FROM import_stage s"
                        " WHERE r.code = s.ressort AND r.name IS DISTINCT FROM s.name",
                        0, NULL, &counts[1]);
    if (rc == 0)
        rc = exec_count(ctl,
                        "INSERT INTO ressort (code, name) SELECT s.ressort, s.name"
                        " FROM import_stage s WHERE NOT EXISTS"
                        " (SELECT 1 FROM ressort r WHERE r.code = s.ressort) ORDER BY s.line",
                        0, NULL, &counts[0]);
    return rc;
}

static int merge_dienststellen(struct ctl *ctl, bool has_optional, long long counts[4])
{
    int rc = exec_count(ctl,
                        "UPDATE dienststelle d SET ressort = s.ressort, name = s.name,"
                        " city = s.city FROM import_stage s WHERE d.code = s.dienststelle"
                        " AND (d.ressort, d.name, d.city) IS DISTINCT FROM"
                        " (s.ressort, s.name, s.city)",
                        0, NULL, &counts[1]);
    if (rc == 0)
        rc = exec_count(ctl,
                        "INSERT INTO dienststelle (code, ressort, name, city)"
                        " SELECT s.dienststelle, s.ressort, s.name, s.city FROM import_stage s"
                        " WHERE NOT EXISTS (SELECT 1 FROM dienststelle d"
                        " WHERE d.code = s.dienststelle) ORDER BY s.line",
                        0, NULL, &counts[0]);
    return rc;
}

/* A file without the name column leaves the names as they are. */
#define EMPLOYEE_CHANGED                                                                           \
    "(e.dienststelle <> s.dienststelle OR ($1::boolean AND e.name IS DISTINCT FROM s.name))"

static int merge_employees(struct ctl *ctl, bool has_name, long long counts[4])
{
    const char *params[] = {has_name ? "true" : "false"};
    long long locked;
    /* Lock the employees that change, in id order as rollout_apply_events() does, so an event
     * for one of them waits for this import instead of counting them in the old office. */
    int rc = exec_count(ctl,
                        "SELECT 1 FROM (SELECT e.id FROM employee e JOIN import_stage s"
                        " ON s.personnel_number = e.personnel_number WHERE " EMPLOYEE_CHANGED
                        " ORDER BY e.id FOR NO KEY UPDATE OF e) l",
                        1, params, &locked);
    if (rc == 0)
        rc = exec_count(ctl,
                        "CREATE TEMP TABLE import_moved ON COMMIT DROP AS"
                        " SELECT e.id, e.dienststelle AS old_dst, s.dienststelle AS new_dst"
                        " FROM employee e JOIN import_stage s"
                        " ON s.personnel_number = e.personnel_number"
                        " WHERE e.dienststelle <> s.dienststelle",
                        0, NULL, &counts[2]);
    if (rc == 0)
        rc = exec_count(ctl,
                        "UPDATE employee e SET dienststelle = s.dienststelle,"
                        " name = CASE WHEN $1::boolean THEN s.name ELSE e.name END"
                        " FROM import_stage s WHERE e.personnel_number = s.personnel_number"
                        " AND " EMPLOYEE_CHANGED,
                        1, params, &counts[1]);
    if (rc == 0)
        rc = exec_count(ctl,
                        "INSERT INTO employee (personnel_number, dienststelle, name)"
                        " SELECT s.personnel_number, s.dienststelle, s.name FROM import_stage s"
                        " WHERE NOT EXISTS (SELECT 1 FROM employee e"
                        " WHERE e.personnel_number = s.personnel_number) ORDER BY s.line",
                        0, NULL, &counts[0]);
    if (rc || counts[2] == 0)
        return rc;
    /* The moved employees' current states leave the old office's counters and join the new
     * one's, in this transaction's counter lane (summed over the lanes, so one lane may go below
     * zero; only the sum means anything). */
    rc = exec_count(ctl,
                    "SELECT rollout_add_counts(array_agg(dst), array_agg(item), array_agg(state),"
                    "                          array_agg(n), rollout_counter_shard()) FROM ("
                    "  SELECT m.old_dst AS dst, s.item, s.state, -1 AS n FROM import_moved m"
                    "   JOIN item_state s ON s.employee_id = m.id"
                    "  UNION ALL SELECT m.new_dst, s.item, s.state, 1 FROM import_moved m"
                    "   JOIN item_state s ON s.employee_id = m.id) x",
                    0, NULL, NULL);
    if (rc)
        return rc;
    /* And their completions move along in daily_done, so that for every office the days add
     * up to its current `active` count (the burn-up chart ends where the counters stand, and
     * `rolloutctl verify` can check it). The deltas are the ones rollout_apply_events() wrote. */
    return exec_count(
        ctl,
        "WITH d AS (SELECT (e.occurred_at AT TIME ZONE 'Europe/Berlin')::date AS day,"
        "  m.old_dst, m.new_dst, e.item,"
        "  CASE WHEN e.state = 'active' AND e.previous_state IS DISTINCT FROM 'active'"
        "   THEN 1 WHEN e.previous_state = 'active' AND e.state <> 'active' THEN -1"
        "   ELSE 0 END AS n"
        "  FROM import_moved m JOIN event e ON e.employee_id = m.id WHERE e.applied)"
        " INSERT INTO daily_done AS c (day, dienststelle, item, shard, n)"
        " SELECT day, dst, item, (SELECT rollout_counter_shard()), sum(n) FROM ("
        "  SELECT day, old_dst AS dst, item, -n AS n FROM d"
        "  UNION ALL SELECT day, new_dst, item, n FROM d) x"
        " GROUP BY day, dst, item HAVING sum(n) <> 0 ORDER BY day, dst, item"
        " ON CONFLICT (day, dienststelle, item, shard)"
        " DO UPDATE SET n = c.n + excluded.n",
        0, NULL, NULL);
}

static const char *const ressort_cols[] = {"ressort", "name", NULL};
static const char *const dienststelle_cols[] = {"dienststelle", "ressort", "name", "city", NULL};
static const char *const employee_cols[] = {"personnel_number", "dienststelle", NULL};

static const struct import_kind kinds[] = {
    {"ressorts", ressort_cols, NULL,
     "CREATE TEMP TABLE import_stage (line integer NOT NULL, ressort text, name text)"
     " ON COMMIT DROP",
     ressort_check, merge_ressorts},
    {"dienststellen", dienststelle_cols, NULL,
     "CREATE TEMP TABLE import_stage (line integer NOT NULL, dienststelle text, ressort text,"
     " name text, city text) ON COMMIT DROP",
     dienststelle_check, merge_dienststellen},
    {"employees", employee_cols, "name",
     "CREATE TEMP TABLE import_stage (line integer NOT NULL, personnel_number text,"
     " dienststelle text, name text) ON COMMIT DROP",
     employee_check, merge_employees},
};

/* ------------------------------------------------------------------------------------------ */
/* Problems found while reading, before the database sees the row. */

struct problem {
    uint32_t line;
    char *reason;
};

struct problems {
    struct problem *v;
    size_t n, cap;
};

__attribute__((format(printf, 3, 4))) static void problem_add(struct problems *p, uint32_t line,
                                                              const char *fmt, ...)
{
    if (p->n == p->cap) {
        p->cap = p->cap ? p->cap * 2 : 16;
        p->v = ctl_xrealloc(p->v, p->cap * sizeof *p->v);
    }
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    p->v[p->n].line = line;
    p->v[p->n].reason = ctl_xstrdup(buf);
    p->n++;
}

static void problems_free(struct problems *p)
{
    for (size_t i = 0; i < p->n; i++)
        free(p->v[i].reason);
    free(p->v);
}

/* Offset of the first byte that is not part of valid UTF-8 (no overlong forms, no surrogates,
 * nothing above U+10FFFF, no NUL: what PostgreSQL accepts), or -1 when all is valid. */
static long utf8_invalid_at(const unsigned char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        unsigned char c = s[i];
        if (c == 0)
            return (long)i;
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t n;
        unsigned min;
        unsigned cp;
        if ((c & 0xE0) == 0xC0) {
            n = 2, min = 0x80, cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            n = 3, min = 0x800, cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            n = 4, min = 0x10000, cp = c & 0x07;
        } else {
            return (long)i;
        }
        if (i + n > len)
            return (long)i;
        for (size_t k = 1; k < n; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return (long)i;
            cp = cp << 6 | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return (long)i;
        i += n;
    }
    return -1;
}

/* ------------------------------------------------------------------------------------------ */
/* Reading the file record by record. */

struct reader {
    const char *label; /* the file as named on the command line */
    FILE *f;
    long long size; /* bytes, -1 when unknown (a pipe) */
    long long done; /* bytes read so far */
    char chunk[65536];
    size_t clen, cpos;
    uint32_t line;     /* physical line of the next byte */
    char *rec;         /* the current record, without its line break */
    size_t rlen, rcap; /* */
    uint32_t rec_line; /* physical line where it starts */
    int rec_fields;
};

/* Reads the next record (a CSV row: a line break inside quotes does not end it). Returns 1 with
 * r->rec set, 0 at the end, -1 on a read error; *unterminated when the file ended inside a
 * quoted field. Quote handling is PostgreSQL's: every '"' toggles, so "" inside quotes is an
 * escaped quote and leaves the state as it was. */
static int read_record(struct reader *r, bool *unterminated)
{
    bool in_quotes = false;
    r->rlen = 0;
    r->rec_line = r->line;
    r->rec_fields = 1;
    *unterminated = false;
    for (;;) {
        if (r->cpos == r->clen) {
            r->clen = fread(r->chunk, 1, sizeof r->chunk, r->f);
            r->cpos = 0;
            r->done += (long long)r->clen;
            if (r->clen == 0) {
                if (ferror(r->f))
                    return -1;
                if (r->rlen == 0 && !in_quotes)
                    return 0;
                *unterminated = in_quotes;
                break;
            }
        }
        char c = r->chunk[r->cpos++];
        if (c == '\n') {
            r->line++;
            if (!in_quotes)
                break;
        } else if (c == '"') {
            in_quotes = !in_quotes;
        } else if (c == ',' && !in_quotes) {
            r->rec_fields++;
        }
        if (r->rlen + 1 >= r->rcap) {
            r->rcap = r->rcap ? r->rcap * 2 : 4096;
            r->rec = ctl_xrealloc(r->rec, r->rcap);
        }
        r->rec[r->rlen++] = c;
    }
    if (r->rlen > 0 && r->rec[r->rlen - 1] == '\r') /* Windows line ends */
        r->rlen--;
    if (r->rec)
        r->rec[r->rlen] = '\0';
    return 1;
}

/* Splits the header record into column names (unquoted, trimmed, lower case). */
static int header_fields(char *rec, char **names, int max)
{
    int n = 0;
    char *p = rec;
    if ((unsigned char)p[0] == 0xEF && (unsigned char)p[1] == 0xBB && (unsigned char)p[2] == 0xBF)
        p += 3; /* the byte order mark spreadsheet programs write before UTF-8 */
    for (;;) {
        while (*p == ' ' || *p == '\t')
            p++;
        char *out = p, *start = p;
        bool quoted = *p == '"';
        if (quoted) {
            p++;
            while (*p && !(*p == '"' && p[1] != '"')) {
                if (*p == '"')
                    p++;
                *out++ = *p++;
            }
            if (*p == '"')
                p++;
            while (*p && *p != ',')
                p++;
        } else {
            while (*p && *p != ',')
                *out++ = *p++;
            while (out > start && (out[-1] == ' ' || out[-1] == '\t'))
                out--;
        }
        char sep = *p;
        *out = '\0';
        for (char *q = start; *q; q++)
            if (*q >= 'A' && *q <= 'Z')
                *q = (char)(*q - 'A' + 'a');
        if (n < max)
            names[n] = start;
        n++;
        if (sep != ',')
            break;
        p++;
    }
    return n;
}

static void expected_header(const struct import_kind *k, char *buf, size_t len)
{
    buf[0] = '\0';
    for (const char *const *c = k->required; *c; c++)
        snprintf(buf + strlen(buf), len - strlen(buf), "%s%s", c == k->required ? "" : ",", *c);
    if (k->optional)
        snprintf(buf + strlen(buf), len - strlen(buf), "[,%s]", k->optional);
}

/* Checks the header and writes the COPY column list ("line, a, b"). */
static bool check_header(const struct import_kind *k, struct reader *r, char *collist, size_t len,
                         int *ncols, bool *has_optional)
{
    char expected[256];
    expected_header(k, expected, sizeof expected);
    char *copy = ctl_xstrdup(r->rec);
    char *names[16];
    int n = header_fields(copy, names, 16);
    bool ok = n <= 16;
    *has_optional = false;
    snprintf(collist, len, "line");
    for (int i = 0; ok && i < n; i++) {
        bool known = k->optional && strcmp(names[i], k->optional) == 0;
        for (const char *const *c = k->required; *c; c++)
            known = known || strcmp(names[i], *c) == 0;
        for (int j = 0; j < i; j++)
            if (strcmp(names[i], names[j]) == 0) {
                fprintf(stderr, "%s:%u: column \"%s\" appears twice in the header; expected %s\n",
                        r->label, r->rec_line, names[i], expected);
                ok = false;
            }
        if (!known) {
            fprintf(stderr,
                    "%s:%u: unknown column \"%s\" in the header; %s files have the columns %s "
                    "(the first line must name them)%s\n",
                    r->label, r->rec_line, names[i], k->name, expected,
                    strchr(names[i], ';') ? "; separate the fields with commas, not semicolons"
                                          : "");
            ok = false;
        }
        if (k->optional && strcmp(names[i], k->optional) == 0)
            *has_optional = true;
        snprintf(collist + strlen(collist), len - strlen(collist), ", %s", names[i]);
    }
    for (const char *const *c = k->required; ok && *c; c++) {
        bool found = false;
        for (int i = 0; i < n; i++)
            found = found || strcmp(names[i], *c) == 0;
        if (!found) {
            fprintf(stderr,
                    "%s:%u: the header has no column \"%s\"; %s files have the columns %s (the "
                    "first line must name them)\n",
                    r->label, r->rec_line, *c, k->name, expected);
            ok = false;
        }
    }
    free(copy);
    *ncols = n;
    return ok;
}

/* ------------------------------------------------------------------------------------------ */

struct sent {
    uint32_t *lines; /* physical line of the n-th row given to COPY */
    size_t n, cap;
};

static void sent_add(struct sent *s, uint32_t line)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 1024;
        s->lines = ctl_xrealloc(s->lines, s->cap * sizeof *s->lines);
    }
    s->lines[s->n++] = line;
}

/* Maps COPY's "line N" (the N-th row it was given) back to the file's line. */
static uint32_t copy_error_line(const PGresult *res, const struct sent *s)
{
    const char *ctx = PQresultErrorField(res, PG_DIAG_CONTEXT);
    const char *p = ctx ? strstr(ctx, ", line ") : NULL;
    if (p == NULL)
        return 0;
    long n = strtol(p + 7, NULL, 10);
    return n >= 1 && (size_t)n <= s->n ? s->lines[n - 1] : 0;
}

struct flushbuf {
    char *data;
    size_t len, cap;
};

static void buf_append(struct flushbuf *b, const char *s, size_t n)
{
    if (n == 0)
        return;
    if (b->data == NULL || b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 262144;
        while (b->len + n > cap)
            cap *= 2;
        b->data = ctl_xrealloc(b->data, cap);
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
}

/* Streams the data rows into COPY. Returns 0, or an exit status after reporting; problems and
 * *rows are filled in as the rows go by. */
static int stream_rows(struct ctl *ctl, struct reader *r, int ncols, struct problems *probs,
                       struct sent *sent, long long *rows)
{
    struct flushbuf buf = {0};
    int rc = 0;
    bool copy_broken = false;
    for (;;) {
        bool unterminated;
        int got = read_record(r, &unterminated);
        if (got < 0) {
            ctl_err("%s: read error: %s", r->label, strerror(errno));
            rc = EX_IOERR;
            break;
        }
        if (got == 0)
            break;
        if (r->rlen == 0)
            continue; /* a blank line is not a row */
        (*rows)++;
        if (unterminated) {
            problem_add(probs, r->rec_line,
                        "a quoted field starts here and is never closed (a \" is missing)");
            break;
        }
        long bad = utf8_invalid_at((const unsigned char *)r->rec, r->rlen);
        if (bad >= 0) {
            problem_add(probs, r->rec_line,
                        "not valid UTF-8 (byte 0x%02X at position %ld); save the file as UTF-8 "
                        "(\"CSV UTF-8\" in spreadsheet programs)",
                        (unsigned char)r->rec[bad], bad + 1);
            continue;
        }
        if (r->rec_fields != ncols) {
            problem_add(probs, r->rec_line, "%d field%s, but the header names %d", r->rec_fields,
                        r->rec_fields == 1 ? "" : "s", ncols);
            continue;
        }
        char prefix[16];
        int plen = snprintf(prefix, sizeof prefix, "%u,", r->rec_line);
        buf_append(&buf, prefix, (size_t)plen);
        buf_append(&buf, r->rec, r->rlen);
        buf_append(&buf, "\n", 1);
        sent_add(sent, r->rec_line);
        if (buf.len >= 262144 && !copy_broken) {
            /* -1: COPY ended early (the server reported an error); read it after the loop */
            copy_broken = PQputCopyData(ctl->conn, buf.data, (int)buf.len) != 1;
            buf.len = 0;
            if (ctl->err_tty && r->size > 0) {
                char detail[64];
                snprintf(detail, sizeof detail, "%lld rows", *rows);
                out_progress(r->label, (double)r->done / (double)r->size, detail);
            }
        }
    }
    if (buf.len && !copy_broken) /* a failure shows in the results read below */
        (void)PQputCopyData(ctl->conn, buf.data, (int)buf.len);
    free(buf.data);
    if (ctl->err_tty && r->size > 0)
        out_progress_done();
    PQputCopyEnd(ctl->conn, rc ? "read error" : NULL);
    PGresult *res;
    while ((res = PQgetResult(ctl->conn)) != NULL) {
        if (PQresultStatus(res) != PGRES_COMMAND_OK && rc == 0) {
            uint32_t line = copy_error_line(res, sent);
            if (line && !pgutil_connection_lost(ctl->conn, res)) {
                char msg[PGUTIL_ERROR_MAX];
                pgutil_error_text(ctl->conn, res, msg, sizeof msg);
                problem_add(probs, line, "%s", msg);
                rc = -1; /* reported with the others */
            } else {
                rc = ctl_db_fail(ctl, res, r->label);
            }
        }
        PQclear(res);
    }
    return rc;
}

/* Prints the problems found while reading and those the SQL checks found, in line order.
 * Returns how many lines were printed. */
static size_t report_problems(const char *label, const struct problems *probs,
                              const PGresult *checked)
{
    size_t i = 0, count = 0;
    int r = 0, nr = checked ? PQntuples(checked) : 0;
    while (i < probs->n || r < nr) {
        uint32_t sql_line =
            r < nr ? (uint32_t)strtol(PQgetvalue(checked, r, 0), NULL, 10) : UINT32_MAX;
        if (i < probs->n && probs->v[i].line <= sql_line) {
            fprintf(stderr, "%s:%u: %s\n", label, probs->v[i].line, probs->v[i].reason);
            i++;
        } else {
            fprintf(stderr, "%s:%u: %s\n", label, sql_line, PQgetvalue(checked, r, 1));
            r++;
        }
        count++;
    }
    return count;
}

static int problem_cmp(const void *a, const void *b)
{
    const struct problem *x = a, *y = b;
    return (x->line > y->line) - (x->line < y->line);
}

static int import_file(struct ctl *ctl, const struct import_kind *k, const char *path)
{
    struct reader r;
    memset(&r, 0, sizeof r);
    r.line = 1;
    r.size = -1;
    bool is_stdin = strcmp(path, "-") == 0;
    r.label = is_stdin ? "stdin" : path;
    r.f = is_stdin ? stdin : fopen(path, "rb");
    if (r.f == NULL) {
        ctl_err("cannot open %s: %s", path, strerror(errno));
        return EX_NOINPUT;
    }
    struct stat st;
    if (!is_stdin && fstat(fileno(r.f), &st) == 0 && S_ISREG(st.st_mode))
        r.size = st.st_size;

    struct problems probs = {0};
    struct sent sent = {0};
    int rc = 0;
    bool unterminated, has_optional = false;
    char collist[256];
    int ncols = 0;
    int got;
    do
        got = read_record(&r, &unterminated);
    while (got == 1 && r.rlen == 0);
    if (got <= 0) {
        ctl_err("%s is empty; the first line must name the columns", r.label);
        rc = EX_DATAERR;
        goto out;
    }
    if (utf8_invalid_at((const unsigned char *)r.rec, r.rlen) >= 0 ||
        !check_header(k, &r, collist, sizeof collist, &ncols, &has_optional)) {
        if (utf8_invalid_at((const unsigned char *)r.rec, r.rlen) >= 0)
            fprintf(stderr, "%s:%u: the header is not valid UTF-8; save the file as UTF-8\n",
                    r.label, r.rec_line);
        rc = EX_DATAERR;
        goto out;
    }

    if ((rc = ctl_connect(ctl)) != 0)
        goto out;
    if ((rc = ctl_exec(ctl, "BEGIN", r.label)) != 0)
        goto out;
    /* one import at a time: two of them would each check against what the other changes */
    if ((rc = ctl_exec(ctl, "SELECT pg_advisory_xact_lock(7245002)", r.label)) != 0 ||
        (rc = ctl_exec(ctl, k->stage_sql, r.label)) != 0)
        goto fail;
    char copy_sql[512];
    snprintf(copy_sql, sizeof copy_sql,
             "COPY import_stage (%s) FROM STDIN WITH (FORMAT csv, ENCODING 'UTF8')", collist);
    PGresult *res = PQexec(ctl->conn, copy_sql);
    if (PQresultStatus(res) != PGRES_COPY_IN) {
        rc = ctl_db_fail(ctl, res, r.label);
        PQclear(res);
        goto fail;
    }
    PQclear(res);
    long long rows = 0;
    rc = stream_rows(ctl, &r, ncols, &probs, &sent, &rows);
    if (rc > 0)
        goto fail;
    if (probs.n > 1)
        qsort(probs.v, probs.n, sizeof *probs.v, problem_cmp);
    if (rc < 0) { /* COPY itself refused a row: report what we have and stop */
        report_problems(r.label, &probs, NULL);
        rc = EX_DATAERR;
        goto fail;
    }

    /* Surrounding blanks are spreadsheet noise; an empty field is a missing one. */
    char trim_sql[512];
    snprintf(trim_sql, sizeof trim_sql, "UPDATE import_stage SET ");
    char *cols = ctl_xstrdup(collist + strlen("line, "));
    bool firstcol = true;
    for (char *c = strtok(cols, ", "); c; c = strtok(NULL, ", ")) {
        snprintf(trim_sql + strlen(trim_sql), sizeof trim_sql - strlen(trim_sql),
                 "%s%s = nullif(btrim(%s, E' \\t'), '')", firstcol ? "" : ", ", c, c);
        firstcol = false;
    }
    free(cols);
    if ((rc = ctl_exec(ctl, trim_sql, r.label)) != 0 ||
        (rc = ctl_exec(ctl, "ANALYZE import_stage", r.label)) != 0)
        goto fail;

    PGresult *checked = ctl_query(ctl, k->check_sql, 0, NULL, r.label, &rc);
    if (rc)
        goto fail;
    if (probs.n > 0 || PQntuples(checked) > 0) {
        size_t n = report_problems(r.label, &probs, checked);
        PQclear(checked);
        ctl_err("%s: %zu problem%s in %lld rows; nothing was imported", r.label, n,
                n == 1 ? "" : "s", rows);
        rc = EX_DATAERR;
        goto fail;
    }
    PQclear(checked);

    long long counts[4] = {0, 0, 0, 0};
    if ((rc = k->merge(ctl, has_optional, counts)) != 0)
        goto fail;
    if ((counts[0] || counts[1]) &&
        (rc = ctl_exec(ctl, "SELECT pg_notify('rollout_progress', 'frame')", r.label)) != 0)
        goto fail;
    if ((rc = ctl_exec(ctl, "COMMIT", r.label)) != 0)
        goto out;
    fprintf(stderr, "%s: %lld rows, %lld unchanged, %lld updated", r.label, rows,
            rows - counts[0] - counts[1], counts[1]);
    if (counts[2])
        fprintf(stderr, " (%lld moved to another Dienststelle)", counts[2]);
    fprintf(stderr, ", %lld inserted\n", counts[0]);
    goto out;

fail:
    ctl_rollback(ctl, rc);
out:
    if (!is_stdin)
        fclose(r.f);
    free(r.rec);
    free(sent.lines);
    problems_free(&probs);
    return rc;
}

int cmd_import(struct ctl *ctl, int argc, char **argv)
{
    static const struct option opts[] = {{"help", no_argument, NULL, 'h'}, {0, 0, 0, 0}};
    bool first = true;
    int c;
    while ((c = ctl_getopt(argc, argv, "h", opts, "import", &first)) != -1) {
        if (c == 'h') {
            fputs(help, stdout);
            return 0;
        }
        return EX_USAGE;
    }
    if (argc - optind != 2)
        return ctl_usage_error("import", "expected ressorts|dienststellen|employees and a file");
    const char *what = argv[optind], *path = argv[optind + 1];
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (strcmp(kinds[i].name, what) == 0)
            return import_file(ctl, &kinds[i], path);
    return ctl_usage_error("import",
                           "cannot import \"%s\"; choose ressorts, dienststellen or "
                           "employees",
                           what);
}

/* rolloutctl token create|list|revoke: API tokens. A token is shown once, when it is created,
 * and only its SHA-256 is stored. */
#include <regex.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "out.h"
#include "token.h"

static const char help[] =
    "usage: rolloutctl token create --role support|reader|admin [--ressort R]... --name NAME\n"
    "                               [--expires YYYY-MM-DD]\n"
    "       rolloutctl token list [--format table|csv|json]\n"
    "       rolloutctl token revoke NAME\n"
    "\n"
    "create   makes a new token and prints it ALONE on stdout (once: only its hash is stored),\n"
    "         so a script can capture it: TOKEN=$(rolloutctl token create ...).\n"
    "         --role support  posts events for employees of the given Ressorts (--ressort,\n"
    "                         repeatable, at least one) and reads their data\n"
    "         --role reader   reads progress figures only\n"
    "         --role admin    everything the API offers\n"
    "         --name NAME     unique; letters, digits and _ . @ - (e.g. support-hmdf-kassel)\n"
    "         --expires DATE  last day the token is valid (Europe/Berlin); default: no expiry\n"
    "list     every token: name, role, ressorts, created, expires, revoked (never the hash)\n"
    "revoke   ends a token at once (rolloutd notices within a second); the name stays taken\n";

static bool matches(const char *re, const char *s)
{
    regex_t r;
    if (regcomp(&r, re, REG_EXTENDED | REG_NOSUB) != 0)
        return false;
    bool ok = regexec(&r, s, 0, NULL, 0) == 0;
    regfree(&r);
    return ok;
}

static int token_create(struct ctl *ctl, int argc, char **argv)
{
    static const struct option opts[] = {
        {"help", no_argument, NULL, 'h'},          {"role", required_argument, NULL, 'r'},
        {"ressort", required_argument, NULL, 'R'}, {"name", required_argument, NULL, 'n'},
        {"expires", required_argument, NULL, 'e'}, {0, 0, 0, 0}};
    const char *role = NULL, *name = NULL, *expires = NULL;
    char ressorts[1024] = "";
    int nressorts = 0;
    bool first = true;
    int c;
    while ((c = ctl_getopt(argc, argv, "h", opts, "token create", &first)) != -1) {
        switch (c) {
        case 'h':
            fputs(help, stdout);
            return 0;
        case 'r':
            role = optarg;
            break;
        case 'R':
            /* the same rule as ressort.code: nothing here can break the list syntax */
            if (!matches("^[A-Za-z][A-Za-z0-9_-]{0,31}$", optarg))
                return ctl_usage_error("token create", "--ressort \"%s\" is not a Ressort code",
                                       optarg);
            if (strlen(ressorts) + strlen(optarg) + 2 > sizeof ressorts)
                return ctl_usage_error("token create", "too many --ressort options");
            snprintf(ressorts + strlen(ressorts), sizeof ressorts - strlen(ressorts), "%s%s",
                     nressorts ? "," : "", optarg);
            nressorts++;
            break;
        case 'n':
            name = optarg;
            break;
        case 'e':
            expires = optarg;
            break;
        default:
            return EX_USAGE;
        }
    }
    if (optind < argc)
        return ctl_usage_error("token create", "unexpected argument \"%s\"", argv[optind]);
    if (role == NULL || name == NULL)
        return ctl_usage_error("token create", "--role and --name are required");
    if (strcmp(role, "support") != 0 && strcmp(role, "reader") != 0 && strcmp(role, "admin") != 0)
        return ctl_usage_error("token create", "--role is \"%s\"; use support, reader or admin",
                               role);
    if (strcmp(role, "support") == 0 && nressorts == 0)
        return ctl_usage_error("token create",
                               "a support token needs at least one --ressort it may write");
    if (strcmp(role, "support") != 0 && nressorts > 0)
        return ctl_usage_error("token create",
                               "--ressort is only for support tokens; %s tokens see every Ressort",
                               role);
    if (!matches("^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$", name))
        return ctl_usage_error("token create",
                               "--name \"%s\" is not valid: letters, digits and _ . @ -, at most "
                               "64 characters, starting with a letter or digit",
                               name);
    if (expires && !ctl_valid_date(expires))
        return ctl_usage_error("token create", "--expires \"%s\" is not a date YYYY-MM-DD",
                               expires);

    int rc = ctl_connect(ctl);
    if (rc)
        return rc;
    if ((rc = ctl_exec(ctl, "BEGIN", "token create")) != 0)
        return rc;
    PGresult *res;
    if (nressorts) {
        const char *p[] = {ressorts};
        res = ctl_query(ctl,
                        "SELECT string_agg(r, ', ') FROM unnest(string_to_array($1, ',')) r"
                        " WHERE NOT EXISTS (SELECT 1 FROM ressort WHERE code = r)",
                        1, p, "token create", &rc);
        if (rc)
            return ctl_rollback(ctl, rc);
        if (!PQgetisnull(res, 0, 0)) {
            ctl_err("token create: unknown Ressort %s; `rolloutctl import ressorts` loads them",
                    PQgetvalue(res, 0, 0));
            PQclear(res);
            return ctl_rollback(ctl, EX_DATAERR);
        }
        PQclear(res);
    }
    if (expires) {
        const char *p[] = {expires};
        res = ctl_query(ctl, "SELECT $1::date < (now() AT TIME ZONE 'Europe/Berlin')::date", 1, p,
                        "token create", &rc);
        if (rc)
            return ctl_rollback(ctl, rc);
        bool past = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
        PQclear(res);
        if (past) {
            ctl_err("token create: --expires %s lies in the past; give today or a later day",
                    expires);
            return ctl_rollback(ctl, EX_DATAERR);
        }
    }
    const char *p[] = {name};
    res = ctl_query(ctl, "SELECT " CTL_TS("created_at") " FROM api_token WHERE name = $1", 1, p,
                    "token create", &rc);
    if (rc)
        return ctl_rollback(ctl, rc);
    if (PQntuples(res) > 0) {
        ctl_err("token create: a token named %s exists already (created %s); names stay taken "
                "even after a revoke: choose another name",
                name, PQgetvalue(res, 0, 0));
        PQclear(res);
        return ctl_rollback(ctl, EX_DATAERR);
    }
    PQclear(res);

    char token[TOKEN_LENGTH + 1];
    if (!token_generate(token)) {
        ctl_err("token create: the random number generator failed; nothing was created");
        return ctl_rollback(ctl, EX_SOFTWARE);
    }
    unsigned char hash[TOKEN_HASH_LEN];
    token_hash(token, TOKEN_LENGTH, hash);
    char hex[2 * TOKEN_HASH_LEN + 1];
    for (int i = 0; i < TOKEN_HASH_LEN; i++)
        snprintf(hex + 2 * (size_t)i, 3, "%02x", hash[i]);
    const char *ins[] = {name, role, nressorts ? ressorts : NULL, hex, expires};
    /* expires: valid through the whole named day in Hessen */
    res = ctl_query(ctl,
                    "INSERT INTO api_token (name, role, ressorts, hash, expires_at)"
                    " VALUES ($1, $2::token_role, coalesce(string_to_array($3, ','), '{}'),"
                    " decode($4, 'hex'),"
                    " (($5::date + 1)::timestamp AT TIME ZONE 'Europe/Berlin'))",
                    5, ins, "token create", &rc);
    PQclear(res);
    if (rc)
        return ctl_rollback(ctl, rc);
    if ((rc = ctl_exec(ctl, "COMMIT", "token create")) != 0)
        return rc;
    /* the secret only after the commit: a token printed is a token that works */
    printf("%s\n", token);
    memset(token, 0, sizeof token);
    if (ctl->out_tty)
        fprintf(stderr, "token %s (%s) created; it is shown only this once: store it now\n", name,
                role);
    return 0;
}

static int token_list(struct ctl *ctl, int argc, char **argv)
{
    enum out_format fmt = OUT_TABLE;
    int rc = ctl_format_options(argc, argv, "token list", help, &out_listing_formats, &fmt);
    if (rc >= 0)
        return rc;
    if (optind < argc)
        return ctl_usage_error("token list", "unexpected argument \"%s\"", argv[optind]);
    rc = ctl_connect(ctl);
    if (rc)
        return rc;
    /* JSON gets the Ressorts as an array, the other formats as "HMdF,HMdJ" */
    const char *json_param[] = {fmt == OUT_JSON ? "true" : "false"};
    PGresult *res =
        ctl_query(ctl,
                  "SELECT name, role, CASE WHEN $1::boolean"
                  " THEN array_to_json(ressorts)::text"
                  " ELSE array_to_string(ressorts, ',') END,"
                  " " CTL_TS("created_at") ", " CTL_TS(
                      "expires_at") ","
                                    " " CTL_TS("revoked_at") " FROM api_token ORDER BY name",
                  1, json_param, "token list", &rc);
    if (rc)
        return rc;
    struct out_column cols[] = {
        {"name", OUT_T_TEXT, 0},    {"role", OUT_T_TEXT, 0},    {"ressorts", OUT_T_TEXT, 0},
        {"created", OUT_T_TEXT, 0}, {"expires", OUT_T_TEXT, 0}, {"revoked", OUT_T_TEXT, 0},
    };
    if (fmt == OUT_JSON)
        cols[2].type = OUT_T_JSON;
    struct out_writer w;
    out_begin(&w, stdout, fmt, cols, 6, true, ctl->color);
    for (int r = 0; r < PQntuples(res); r++)
        out_row_pg(&w, res, r);
    out_end(&w);
    PQclear(res);
    return 0;
}

static int token_revoke(struct ctl *ctl, int argc, char **argv)
{
    static const struct option opts[] = {{"help", no_argument, NULL, 'h'}, {0, 0, 0, 0}};
    bool first = true;
    int c;
    while ((c = ctl_getopt(argc, argv, "h", opts, "token revoke", &first)) != -1) {
        if (c == 'h') {
            fputs(help, stdout);
            return 0;
        }
        return EX_USAGE;
    }
    if (argc - optind != 1)
        return ctl_usage_error("token revoke", "expected the name of one token");
    const char *name = argv[optind];
    int rc = ctl_connect(ctl);
    if (rc)
        return rc;
    const char *p[] = {name};
    /* one statement: it either sets revoked_at now or tells when it was set before */
    PGresult *res = ctl_query(ctl,
                              "WITH t AS (SELECT id, revoked_at AS before FROM api_token"
                              "  WHERE name = $1 FOR UPDATE),"
                              " u AS (UPDATE api_token a SET revoked_at = now() FROM t"
                              "  WHERE a.id = t.id AND t.before IS NULL RETURNING a.id)"
                              " SELECT " CTL_TS("t.before") ", (SELECT count(*) FROM u) FROM t",
                              1, p, "token revoke", &rc);
    if (rc)
        return rc;
    if (PQntuples(res) == 0) {
        ctl_err("token revoke: no token named %s; `rolloutctl token list` shows the names", name);
        rc = EX_DATAERR;
    } else if (!PQgetisnull(res, 0, 0)) {
        fprintf(stderr, "token %s was already revoked at %s\n", name, PQgetvalue(res, 0, 0));
    }
    PQclear(res);
    return rc;
}

int cmd_token(struct ctl *ctl, int argc, char **argv)
{
    static const struct ctl_command subs[] = {
        {"create", token_create, NULL},
        {"list", token_list, NULL},
        {"revoke", token_revoke, NULL},
        {NULL, NULL, NULL},
    };
    return ctl_dispatch(ctl, argc, argv, subs, "token", help);
}

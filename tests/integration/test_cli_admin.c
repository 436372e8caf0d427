/* rolloutctl migrate, token, targets and the tool's conventions (help, exit statuses), against
 * the fixture (see harness.h). */
#include <dirent.h>
#include <openssl/evp.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness_cli.h"

static struct th_db db;
static char dir[64];

static void setup(void)
{
    th_db_create(&db);
    th_scratch_dir_create(dir, "rolloutctl-admin");
}

static void teardown(void)
{
    th_scratch_dir_remove(dir);
    th_db_drop(&db);
}

TestSuite(cli_admin, .init = setup, .fini = teardown, .timeout = 120);

#define ctl(...) th_ctl("--db", db.conninfo_admin, __VA_ARGS__)
#define ctl_super(...) th_ctl("--db", db.conninfo_super, __VA_ARGS__)

static char *read_whole(const char *path)
{
    FILE *f = fopen(path, "rb");
    cr_assert(f != NULL, "cannot read %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    cr_assert(fread(buf, 1, (size_t)n, f) == (size_t)n);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void sha256_hex(const char *text, char hex[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_Digest(text, strlen(text), md, &len, EVP_sha256(), NULL);
    for (unsigned i = 0; i < len; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
}

/* While a migration is still being written, the template may have been migrated from an
 * earlier text of it: record the checksums of the files as they are now, for the versions the
 * database has, so the tests below start from "the database matches these files". */
static void adopt_schema_files(const char *schema_dir)
{
    DIR *d = opendir(schema_dir);
    cr_assert(d != NULL, "cannot read %s", schema_dir);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        int version;
        if (sscanf(de->d_name, "%3d_", &version) != 1 || !strstr(de->d_name, ".sql"))
            continue;
        char path[512], sum[65], v[16];
        snprintf(path, sizeof path, "%s/%s", schema_dir, de->d_name);
        char *text = read_whole(path);
        sha256_hex(text, sum);
        free(text);
        snprintf(v, sizeof v, "%d", version);
        const char *p[] = {sum, v};
        PQclear(th_sql(&db, "UPDATE schema_migrations SET checksum = $1 WHERE version = $2::int", 2,
                       p));
    }
    closedir(d);
}

/* DIR/001_init.sql, a copy of the real one, which the database then has applied. */
static void schema_copy(void)
{
    char path[256];
    char *init = read_whole(ROLLOUT_SOURCE_DIR "/schema/001_init.sql");
    snprintf(path, sizeof path, "%s/001_init.sql", dir);
    th_write_file(path, init);
    free(init);
    PQclear(th_sql(&db, "DELETE FROM schema_migrations WHERE version > 1", 0, NULL));
    adopt_schema_files(dir);
}

Test(cli_admin, migrate_on_a_current_database_says_nothing)
{
    adopt_schema_files(ROLLOUT_SOURCE_DIR "/schema");
    struct th_ctl_run r = ctl_super("--schema-dir", ROLLOUT_SOURCE_DIR "/schema", "migrate", NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_str_empty(r.out);
    cr_assert_str_empty(r.err);
    th_ctl_run_free(&r);
    /* rolloutd's role reads the version at start-up */
    cr_assert_eq(th_sql_int(&db, "SELECT has_table_privilege('rolloutd', 'schema_migrations',"
                                 " 'SELECT')::int"),
                 1);
}

Test(cli_admin, migrate_applies_a_new_file_and_refuses_a_changed_one)
{
    /* a schema directory of our own: 001 as the database has it, and a new 002 */
    char path[256];
    schema_copy();
    snprintf(path, sizeof path, "%s/002_test_note.sql", dir);
    th_write_file(path, "CREATE TABLE test_note (id integer PRIMARY KEY, body text);\n"
                        "INSERT INTO test_note VALUES (1, 'migrated');\n");
    snprintf(path, sizeof path, "%s/README", dir);
    th_write_file(path, "not a migration\n");

    struct th_ctl_run r = ctl_super("--schema-dir", dir, "migrate", NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_str_eq(r.err, "migrate: applied 002_test_note.sql\n");
    th_ctl_run_free(&r);
    cr_assert_eq(th_sql_int(&db, "SELECT count(*) FROM test_note"), 1);
    char *name = th_sql_text(&db, "SELECT name || ' ' || length(checksum) FROM schema_migrations"
                                  " WHERE version = 2");
    cr_assert_str_eq(name, "002_test_note.sql 64");
    free(name);
    cr_assert_eq(th_sql_int(&db, "SELECT has_table_privilege('rolloutd', 'schema_migrations',"
                                 " 'SELECT')::int"),
                 1);

    /* changed after it was applied: refused, named, nothing run */
    snprintf(path, sizeof path, "%s/002_test_note.sql", dir);
    th_write_file(path, "CREATE TABLE test_note (id integer PRIMARY KEY, body text, extra int);\n");
    snprintf(path, sizeof path, "%s/003_more.sql", dir);
    th_write_file(path, "CREATE TABLE test_more (id integer);\n");
    r = ctl_super("--schema-dir", dir, "migrate", NULL);
    cr_assert_eq(r.status, 65, "exit %d: %s", r.status, r.err);
    th_assert_has(r.err, "002_test_note.sql was changed after it was applied");
    th_ctl_run_free(&r);
    cr_assert_eq(th_sql_int(&db, "SELECT count(*) FROM schema_migrations"), 2);
    cr_assert_eq(th_sql_int(&db, "SELECT (to_regclass('test_more') IS NULL)::int"), 1);
}

Test(cli_admin, a_failing_migration_leaves_nothing_behind)
{
    char path[256];
    schema_copy();
    snprintf(path, sizeof path, "%s/002_broken.sql", dir);
    th_write_file(path, "CREATE TABLE half_done (id integer);\n"
                        "\n"
                        "INSERT INTO no_such_table VALUES (1);\n");
    struct th_ctl_run r = ctl_super("--schema-dir", dir, "migrate", NULL);
    cr_assert_eq(r.status, 65, "exit %d", r.status);
    th_assert_has(r.err, "002_broken.sql:3: relation \"no_such_table\" does not exist");
    th_ctl_run_free(&r);
    cr_assert_eq(th_sql_int(&db, "SELECT (to_regclass('half_done') IS NULL)::int"), 1,
                 "a failed migration left a table behind");
    cr_assert_eq(th_sql_int(&db, "SELECT count(*) FROM schema_migrations"), 1);
}

Test(cli_admin, token_create_prints_only_the_token_and_stores_only_its_hash)
{
    struct th_ctl_run r =
        ctl("token", "create", "--role", "support", "--ressort", "HMdF", "--ressort", "HMdJ",
            "--name", "support-kassel", "--expires", "2099-12-31", NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_str_empty(r.err, "anything but the token goes to stderr, and here nothing");
    regex_t re;
    cr_assert(regcomp(&re, "^rlt_[A-Za-z0-9_-]{43}\n$", REG_EXTENDED | REG_NOSUB) == 0);
    cr_assert(regexec(&re, r.out, 0, NULL, 0) == 0, "stdout is not one token: \"%s\"", r.out);
    regfree(&re);
    char token[64];
    snprintf(token, sizeof token, "%.*s", (int)strlen(r.out) - 1, r.out);
    th_ctl_run_free(&r);

    const char *p[] = {token};
    PGresult *res = th_sql(&db,
                           "SELECT role::text, array_to_string(ressorts, ','),"
                           " hash = sha256(convert_to($1, 'UTF8')),"
                           " (expires_at AT TIME ZONE 'Europe/Berlin')::text,"
                           " (SELECT count(*) FROM api_token t WHERE t::text LIKE '%' || $1 || '%')"
                           " FROM api_token WHERE name = 'support-kassel'",
                           1, p);
    cr_assert_eq(PQntuples(res), 1);
    cr_assert_str_eq(PQgetvalue(res, 0, 0), "support");
    cr_assert_str_eq(PQgetvalue(res, 0, 1), "HMdF,HMdJ");
    cr_assert_str_eq(PQgetvalue(res, 0, 2), "t", "the stored hash is not SHA-256 of the token");
    cr_assert_str_eq(PQgetvalue(res, 0, 3), "2100-01-01 00:00:00", "valid through 2099-12-31");
    cr_assert_str_eq(PQgetvalue(res, 0, 4), "0", "the token itself was stored");
    PQclear(res);

    /* the name is taken now */
    r = ctl("token", "create", "--role", "reader", "--name", "support-kassel", NULL);
    cr_assert_eq(r.status, 65);
    th_assert_has(r.err, "support-kassel exists already");
    cr_assert_str_empty(r.out, "a refused token must not be printed");
    th_ctl_run_free(&r);
}

Test(cli_admin, token_create_refuses_what_cannot_work)
{
    struct th_ctl_run r = ctl("token", "create", "--role", "support", "--name", "nobody", NULL);
    cr_assert_eq(r.status, 64, "support without --ressort: exit %d", r.status);
    th_ctl_run_free(&r);
    r = ctl("token", "create", "--role", "admin", "--ressort", "HMdF", "--name", "x", NULL);
    cr_assert_eq(r.status, 64, "admin with --ressort: exit %d", r.status);
    th_ctl_run_free(&r);
    r = ctl("token", "create", "--role", "support", "--ressort", "HMXX", "--name", "x", NULL);
    cr_assert_eq(r.status, 65, "unknown Ressort: exit %d", r.status);
    th_assert_has(r.err, "HMXX");
    th_ctl_run_free(&r);
    r = ctl("token", "create", "--role", "root", "--name", "x", NULL);
    cr_assert_eq(r.status, 64);
    th_ctl_run_free(&r);
    r = ctl("token", "create", "--role", "reader", "--name", "x", "--expires", "2001-01-01", NULL);
    cr_assert_eq(r.status, 65, "expiry in the past: exit %d", r.status);
    th_ctl_run_free(&r);
    cr_assert_eq(th_sql_int(&db, "SELECT count(*) FROM api_token"), 0);
}

Test(cli_admin, token_list_and_revoke)
{
    struct th_ctl_run r = ctl("token", "create", "--role", "reader", "--name", "dashboard", NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    char token[64];
    snprintf(token, sizeof token, "%.*s", (int)strlen(r.out) - 1, r.out);
    th_ctl_run_free(&r);
    r = ctl("token", "create", "--role", "admin", "--name", "ops", NULL);
    th_ctl_run_free(&r);

    r = ctl("token", "revoke", "dashboard", NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_str_empty(r.out);
    th_ctl_run_free(&r);
    cr_assert_eq(th_sql_int(&db, "SELECT count(*) FROM api_token WHERE name = 'dashboard'"
                                 " AND revoked_at IS NOT NULL"),
                 1);
    cr_assert_eq(th_sql_int(&db, "SELECT count(*) FROM api_token WHERE name = 'ops'"
                                 " AND revoked_at IS NULL"),
                 1, "revoke touched another token");

    r = ctl("token", "revoke", "dashboard", NULL);
    cr_assert_eq(r.status, 0, "revoking twice is harmless");
    th_assert_has(r.err, "already revoked");
    th_ctl_run_free(&r);
    r = ctl("token", "revoke", "no-such-token", NULL);
    cr_assert_eq(r.status, 65);
    th_assert_has(r.err, "no-such-token");
    th_ctl_run_free(&r);

    r = ctl("token", "list", "--format", "json", NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    json_error_t jerr;
    json_t *list = json_loads(r.out, 0, &jerr);
    cr_assert(json_is_array(list) && json_array_size(list) == 2, "%s", r.out);
    json_t *first = json_array_get(list, 0);
    cr_assert_str_eq(json_string_value(json_object_get(first, "name")), "dashboard");
    cr_assert(json_is_string(json_object_get(first, "revoked")));
    cr_assert(json_is_null(json_object_get(json_array_get(list, 1), "revoked")));
    cr_assert(json_object_get(first, "hash") == NULL);
    json_decref(list);
    cr_assert(strstr(r.out, token) == NULL, "the list shows the token");
    th_ctl_run_free(&r);

    r = ctl("token", "list", NULL);
    cr_assert_eq(r.status, 0);
    cr_assert(th_starts_with(r.out, "NAME "), "%s", r.out);
    th_assert_has(r.out, "\ndashboard  reader ");
    th_assert_has(r.out, "\nops        admin ");
    th_ctl_run_free(&r);
}

Test(cli_admin, targets_set_and_list)
{
    struct th_ctl_run r = ctl("targets", "set", "hessen_voice", "12", "--deadline", "2028-01-31",
                              "--ressort", "HMdJ", NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_str_empty(r.out);
    cr_assert_str_empty(r.err);
    th_ctl_run_free(&r);
    r = ctl("targets", "set", "mobile_device", "38", "--deadline", "2027-10-01", NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    th_ctl_run_free(&r);
    cr_assert_eq(th_sql_int(&db, "SELECT target FROM target WHERE item = 'mobile_device'"
                                 " AND ressort IS NULL"),
                 38, "the overall target was not replaced");

    r = ctl("targets", "list", "--format", "csv", NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert(th_starts_with(r.out, "item,ressort,target,deadline,updated\n"), "%s", r.out);
    th_assert_has(r.out, "\nmobile_device,,38,2027-10-01,");
    th_assert_has(r.out, "\nhessen_smartphone,HMdF,15,2027-06-30,");
    th_assert_has(r.out, "\nhessen_voice,HMdJ,12,2028-01-31,");
    th_ctl_run_free(&r);

    r = ctl("targets", "set", "teleporter", "1", "--deadline", "2028-01-31", NULL);
    cr_assert_eq(r.status, 64);
    th_ctl_run_free(&r);
    r = ctl("targets", "set", "hessen_voice", "0", "--deadline", "2028-01-31", NULL);
    cr_assert_eq(r.status, 64);
    th_ctl_run_free(&r);
    r = ctl("targets", "set", "hessen_voice", "5", "--deadline", "2028-02-30", NULL);
    cr_assert_eq(r.status, 64, "30 February");
    th_ctl_run_free(&r);
    r = ctl("targets", "set", "hessen_voice", "5", "--deadline", "2028-01-31", "--ressort", "HMXX",
            NULL);
    cr_assert_eq(r.status, 65);
    th_ctl_run_free(&r);
    cr_assert_eq(th_sql_int(&db, "SELECT count(*) FROM target"), 6);
}

Test(cli_admin, help_usage_and_exit_statuses)
{
    static const char *const commands[][3] = {
        {"migrate", NULL, NULL},   {"import", NULL, NULL},     {"employee", "show", NULL},
        {"device", "show", NULL},  {"search", NULL, NULL},     {"progress", NULL, NULL},
        {"report", NULL, NULL},    {"events", "export", NULL}, {"events", "import", NULL},
        {"targets", "list", NULL}, {"targets", "set", NULL},   {"token", "create", NULL},
        {"token", "list", NULL},   {"token", "revoke", NULL},  {"verify", NULL, NULL},
        {"forget", NULL, NULL},
    };
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        struct th_ctl_run r = commands[i][1]
                                  ? th_ctl(commands[i][0], commands[i][1], "--help", NULL)
                                  : th_ctl(commands[i][0], "--help", NULL);
        cr_assert_eq(r.status, 0, "%s %s --help: exit %d", commands[i][0],
                     commands[i][1] ? commands[i][1] : "", r.status);
        cr_assert(th_starts_with(r.out, "usage: "), "%s --help:\n%s", commands[i][0], r.out);
        th_ctl_run_free(&r);
    }
    struct th_ctl_run r = th_ctl("--help", NULL);
    cr_assert_eq(r.status, 0);
    th_assert_has(r.out, "forget");
    th_ctl_run_free(&r);
    r = th_ctl("frobnicate", NULL);
    cr_assert_eq(r.status, 64);
    th_assert_has(r.err, "frobnicate");
    th_ctl_run_free(&r);
    r = ctl("search", "--colour", "red", NULL);
    cr_assert_eq(r.status, 64);
    th_assert_has(r.err, "--colour");
    th_ctl_run_free(&r);
    r = th_ctl("--db", "host=/nonexistent-socket-dir dbname=x connect_timeout=2", "token", "list",
               NULL);
    cr_assert_eq(r.status, 69, "unreachable database: exit %d", r.status);
    th_assert_has(r.err, "cannot connect to the database");
    th_ctl_run_free(&r);
    r = th_ctl("--config", "/nonexistent/rolloutd.conf", "token", "list", NULL);
    cr_assert_eq(r.status, 78, "unreadable configuration: exit %d", r.status);
    th_ctl_run_free(&r);
    /* a role outside rollout_admin may not write */
    r = th_ctl("--db", db.conninfo_service, "targets", "set", "hessen_voice", "5", "--deadline",
               "2028-01-31", NULL);
    cr_assert_eq(r.status, 77, "rolloutd's role wrote a target: exit %d", r.status);
    th_ctl_run_free(&r);
}

Test(cli_admin, the_configuration_file_names_the_database_and_the_default_targets)
{
    char path[256], conf[2048];
    snprintf(path, sizeof path, "%s/rolloutd.conf", dir);
    snprintf(conf, sizeof conf,
             "database = { conninfo = \"%s\"; admin_conninfo = \"%s\"; };\n"
             "targets = { hessen_voice = { target = 33; deadline = \"2029-03-31\"; }; };\n",
             db.conninfo_service, db.conninfo_super);
    th_write_file(path, conf);
    PQclear(th_sql(&db, "DELETE FROM target WHERE item = 'hessen_voice'", 0, NULL));
    schema_copy();
    struct th_ctl_run r = th_ctl("--config", path, "--schema-dir", dir, "migrate", NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    th_assert_has(r.err, "target of hessen_voice set to 33 by 2029-03-31");
    th_ctl_run_free(&r);
    cr_assert_eq(th_sql_int(&db, "SELECT target FROM target WHERE item = 'hessen_voice'"
                                 " AND ressort IS NULL AND deadline = '2029-03-31'"),
                 33);
    /* a stored target is never overwritten by the default */
    PQclear(th_sql(&db, "UPDATE target SET target = 34 WHERE item = 'hessen_voice'", 0, NULL));
    r = th_ctl("--config", path, "--schema-dir", dir, "migrate", NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_str_empty(r.err);
    th_ctl_run_free(&r);
    cr_assert_eq(th_sql_int(&db, "SELECT target FROM target WHERE item = 'hessen_voice'"), 34);
}

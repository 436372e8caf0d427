/* rolloutctl: the admins' inventory tool. Global options, then one subcommand from the table
 * below; each subcommand parses its own options and has its own --help. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl.h"
#include "version.h"

static const struct ctl_command commands[] = {
    {"migrate", cmd_migrate, "apply the schema migrations that are missing"},
    {"import", cmd_import, "load ressorts, dienststellen or employees from a CSV file"},
    {"employee", cmd_employee, "show one employee: states, devices, history"},
    {"device", cmd_device, "show one device and who held it"},
    {"search", cmd_search, "list employees by Ressort, Dienststelle, item and state"},
    {"progress", cmd_progress, "progress per item against the targets"},
    {"report", cmd_report, "CSV of the counts per Ressort, Dienststelle and item"},
    {"events", cmd_events, "export the event log, or import events from NDJSON"},
    {"targets", cmd_targets, "list or set the targets"},
    {"token", cmd_token, "create, list and revoke API tokens"},
    {"verify", cmd_verify, "recount states, counters and daily figures; print differences"},
    {"forget", cmd_forget, "erase an employee's personal data (data protection)"},
    {NULL, NULL, NULL},
};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: rolloutctl [--config FILE | --db CONNINFO] [--replica CONNINFO] [--schema-dir DIR] COMMAND "
            "[ARGS...]\n\n"
            "The admins' tool for the rollout inventory (rolloutd %s).\n\n"
            "Commands:\n",
            ROLLOUT_VERSION);
    for (const struct ctl_command *c = commands; c->name; c++)
        fprintf(f, "  %-10s %s\n", c->name, c->summary);
    fprintf(f,
            "\nGlobal options (before or after the command):\n"
            "  --config FILE      rolloutd's configuration file; rolloutctl connects with\n"
            "                     database.admin_conninfo, or database.conninfo when empty\n"
            "  --db CONNINFO      a libpq connection string (overrides --config's)\n"
            "                     without either: the PGHOST, PGDATABASE, ... variables\n"
            "  --replica CONNINFO a read-only standby for report, progress, search and\n"
            "                     events export (everything else uses the primary)\n"
            "  --schema-dir DIR   where the migrations are (default %s)\n"
            "  --version          print the version and exit\n\n"
            "`rolloutctl COMMAND --help` describes each command.\n"
            "Exit status: 0 done, 64 usage, 65 bad data, 66 no input file, 69 database\n"
            "unavailable, 70 internal error, 77 permission denied, 78 configuration.\n",
            ROLLOUT_SCHEMA_DIR);
}

/* Takes --config, --db and --schema-dir out of argv wherever they are (admins type them after
 * the command as often as before it), up to a "--". Returns the new argc, or -1 after an error. */
static int take_global_options(struct ctl *ctl, int argc, char **argv)
{
    static const struct {
        const char *name;
        size_t offset;
    } globals[] = {
        {"--config", offsetof(struct ctl, config_path)},
        {"--db", offsetof(struct ctl, db_conninfo)},
        {"--replica", offsetof(struct ctl, replica_conninfo)},
        {"--schema-dir", offsetof(struct ctl, schema_dir)},
    };
    int out = 1;
    bool literal = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (literal || strncmp(a, "--", 2) != 0) {
            argv[out++] = argv[i];
            continue;
        }
        if (strcmp(a, "--") == 0) {
            literal = true;
            argv[out++] = argv[i];
            continue;
        }
        bool taken = false;
        for (size_t g = 0; g < sizeof globals / sizeof globals[0]; g++) {
            size_t n = strlen(globals[g].name);
            if (strncmp(a, globals[g].name, n) != 0 || (a[n] != '\0' && a[n] != '='))
                continue;
            const char *value = a[n] == '=' ? a + n + 1 : NULL;
            if (value == NULL) {
                if (i + 1 >= argc) {
                    ctl_err("option %s needs a value; see `rolloutctl --help`", a);
                    return -1;
                }
                value = argv[++i];
            }
            *(const char **)((char *)ctl + globals[g].offset) = value;
            taken = true;
            break;
        }
        if (!taken)
            argv[out++] = argv[i];
    }
    argv[out] = NULL;
    return out;
}

int main(int argc, char **argv)
{
    struct ctl ctl;
    memset(&ctl, 0, sizeof ctl);
    config_defaults(&ctl.cfg);
    ctl.schema_dir = ROLLOUT_SCHEMA_DIR;
    ctl.out_tty = isatty(STDOUT_FILENO);
    ctl.err_tty = isatty(STDERR_FILENO);
    ctl.in_tty = isatty(STDIN_FILENO);
    const char *term = getenv("TERM");
    ctl.color = ctl.out_tty && getenv("NO_COLOR") == NULL && !(term && strcmp(term, "dumb") == 0);

    int rc = 0;
    argc = take_global_options(&ctl, argc, argv);
    if (argc < 0) {
        rc = EX_USAGE;
        goto out;
    }
    if (argc < 2) {
        usage(stderr);
        rc = EX_USAGE;
        goto out;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        goto out;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("rolloutctl %s (schema version %d)\n", ROLLOUT_VERSION, ROLLOUT_SCHEMA_VERSION);
        goto out;
    }
    if (ctl.config_path) {
        char err[CONFIG_ERROR_MAX];
        config_free(&ctl.cfg);
        if (!config_load(&ctl.cfg, ctl.config_path, err)) {
            ctl_err("%s", err);
            rc = EX_CONFIG;
            goto out;
        }
        ctl.have_config = true;
    }
    const struct ctl_command *cmd = NULL;
    for (const struct ctl_command *c = commands; c->name; c++)
        if (strcmp(c->name, argv[1]) == 0)
            cmd = c;
    if (cmd == NULL) {
        ctl_err("unknown command \"%s\"; see `rolloutctl --help` for the list", argv[1]);
        rc = EX_USAGE;
        goto out;
    }
    rc = cmd->run(&ctl, argc - 1, argv + 1);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        ctl_err("could not write the output (disk full, or the reader went away?)");
        if (rc == 0)
            rc = EX_IOERR;
    }

out:
    if (ctl.conn)
        PQfinish(ctl.conn);
    config_free(&ctl.cfg);
    return rc;
}

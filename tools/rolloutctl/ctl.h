/* rolloutctl: what every subcommand shares (the global options, the database connection, error
 * reporting, option parsing). Each subcommand lives in its own file and is listed once, in the
 * dispatch table in main.c. */
#ifndef ROLLOUTCTL_CTL_H
#define ROLLOUTCTL_CTL_H

#include <getopt.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stdio.h>
#include <sysexits.h>

#include "config.h"
#include "out.h"

/* Exit status of `verify` when it found differences (not a failure of the tool itself). */
#define CTL_EXIT_DIFFERENCES 1

struct ctl {
    const char *config_path; /* --config FILE, or NULL */
    const char *db_conninfo; /* --db CONNINFO, or NULL */
    const char *replica_conninfo; /* --replica CONNINFO: read-only commands go there, or NULL */
    const char *schema_dir;  /* --schema-dir DIR, or the built-in ROLLOUT_SCHEMA_DIR */
    bool have_config;        /* cfg was loaded from config_path */
    struct rollout_config cfg;
    PGconn *conn; /* set by ctl_connect */
    bool out_tty; /* stdout is a terminal: aligned tables, bars, colour */
    bool err_tty; /* stderr is a terminal: progress bars */
    bool in_tty;  /* stdin is a terminal: confirmation prompts */
    bool color;   /* stdout may carry ANSI colour (a terminal, NO_COLOR unset) */
};

/* One subcommand: argv[0] is its name, the global options are already removed. Returns the
 * process exit status. */
typedef int (*ctl_command_fn)(struct ctl *ctl, int argc, char **argv);

struct ctl_command {
    const char *name;
    ctl_command_fn run;
    const char *summary; /* one line for `rolloutctl --help` */
};

/* Allocation that ends the process when memory runs out: a command-line tool has nothing
 * better to do, and every caller stays free of checks that could only print the same. */
void *ctl_xmalloc(size_t n);
void *ctl_xcalloc(size_t count, size_t n);
void *ctl_xrealloc(void *p, size_t n);
char *ctl_xstrdup(const char *s);

/* The subcommands (one file each). */
int cmd_migrate(struct ctl *ctl, int argc, char **argv);
int cmd_import(struct ctl *ctl, int argc, char **argv);
int cmd_token(struct ctl *ctl, int argc, char **argv);
int cmd_targets(struct ctl *ctl, int argc, char **argv);
int cmd_employee(struct ctl *ctl, int argc, char **argv);
int cmd_device(struct ctl *ctl, int argc, char **argv);
int cmd_search(struct ctl *ctl, int argc, char **argv);
int cmd_progress(struct ctl *ctl, int argc, char **argv);
int cmd_report(struct ctl *ctl, int argc, char **argv);
int cmd_events(struct ctl *ctl, int argc, char **argv);
int cmd_verify(struct ctl *ctl, int argc, char **argv);
int cmd_forget(struct ctl *ctl, int argc, char **argv);

/* "rolloutctl: " and the message on stderr, with a newline. */
void ctl_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Connects once (later calls return 0 at once): --db, else the configuration's
 * database.admin_conninfo (database.conninfo when empty), else the PG* environment variables.
 * Returns 0, or EX_UNAVAILABLE after printing libpq's message. */
int ctl_connect(struct ctl *ctl);
/* For commands that only read (report, progress, search, events export): the standby given
 * with --replica when there is one (read-only), else the same as ctl_connect. */
int ctl_connect_read(struct ctl *ctl);

/* Reports a failed statement ("rolloutctl: what: message") and maps it to an exit status:
 * EX_UNAVAILABLE when the connection is gone, EX_NOPERM when the role may not do it,
 * EX_DATAERR for data the database refused, EX_SOFTWARE for anything else. */
int ctl_db_fail(struct ctl *ctl, const PGresult *res, const char *what);

/* Runs a statement that returns no rows (BEGIN, COMMIT, ...); 0 or an exit status (reported). */
int ctl_exec(struct ctl *ctl, const char *sql, const char *what);

/* Runs a parameterised statement (text parameters, NULL for SQL NULL) and checks the result
 * is rows or a command status. Returns the result, or NULL after reporting, with *rc set. */
PGresult *ctl_query(struct ctl *ctl, const char *sql, int nparams, const char *const *params,
                    const char *what, int *rc);

/* Runs a query in single-row mode and calls fn for each row as it arrives, so that a result of
 * any size passes through in constant memory. Returns 0 or an exit status (reported). */
typedef void (*ctl_row_fn)(void *arg, const PGresult *row);
int ctl_stream(struct ctl *ctl, const char *sql, int nparams, const char *const *params,
               const char *what, ctl_row_fn fn, void *arg);

/* Ends a failed write: rolls back (ignoring a second failure) and returns rc. */
int ctl_rollback(struct ctl *ctl, int rc);

/* getopt_long for a subcommand: resets the scanner on the first call (first = true), reports an
 * unknown option or a missing value naming cmd and returns '?' for both. Long options only
 * make sense here; shortopts may add "h" for --help. */
int ctl_getopt(int argc, char **argv, const char *shortopts, const struct option *longopts,
               const char *cmd, bool *first);

/* "rolloutctl CMD: message; see `rolloutctl CMD --help`" and EX_USAGE. */
int ctl_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The value of --format: true with *fmt set when it is one of formats, else false after the
 * usage error "--format \"ARG\"; use NAMES" (the caller then returns EX_USAGE). */
bool ctl_format_arg(const char *cmd, const char *arg, const struct out_formats *formats,
                    enum out_format *fmt);

/* The options of a subcommand that has no option but --help and --format: -1 to go on (*fmt
 * set when --format was given, optind at the first operand), else the exit status to end with:
 * 0 after printing help, EX_USAGE after a usage error. */
int ctl_format_options(int argc, char **argv, const char *cmd, const char *help,
                       const struct out_formats *formats, enum out_format *fmt);

/* Whether value names a row: 0 when value is NULL or sql ($1 = value) returns a row; else
 * "rolloutctl: CMD: unknown WHAT \"VALUE\"" followed by hint ("" for none) and EX_DATAERR, or
 * the exit status of a failed query (reported). */
int ctl_check_known(struct ctl *ctl, const char *cmd, const char *sql, const char *value,
                    const char *what, const char *hint);
#define CTL_SQL_RESSORT_KNOWN "SELECT 1 FROM ressort WHERE code = $1"
#define CTL_SQL_DIENSTSTELLE_KNOWN "SELECT 1 FROM dienststelle WHERE code = $1"

/* Runs the entry of table named by argv[1] with argv shifted by one ("token create" runs
 * create with argv[0] = "create"); prints help for --help or a missing/unknown name. */
int ctl_dispatch(struct ctl *ctl, int argc, char **argv, const struct ctl_command *table,
                 const char *parent, const char *help);

/* YYYY-MM-DD naming a real day of the Gregorian calendar. */
bool ctl_valid_date(const char *s);

/* A positive whole number up to max, no sign, no spaces. */
bool ctl_parse_count(const char *s, long long max, long long *out);

/* A timestamptz column as ISO 8601 with its offset, in the session's time zone (Europe/Berlin
 * unless PGTZ says otherwise): unambiguous for scripts, local for people. */
#define CTL_TS(col) "to_char(" col ", 'YYYY-MM-DD\"T\"HH24:MI:SSTZH:TZM')"

/* The name the database records as actor: "rolloutctl:" and the database user. */
#define CTL_ACTOR_SQL "'rolloutctl:' || current_user"

#endif

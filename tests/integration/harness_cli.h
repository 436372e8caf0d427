/* What the tests of rolloutctl (test_cli_*.c) share: running the real rolloutctl and looking at
 * what it printed, a scratch directory for the files it reads, and dates for the events they
 * import. Every helper asserts with Criterion, as in harness.h. */
#ifndef ROLLOUT_TEST_HARNESS_CLI_H
#define ROLLOUT_TEST_HARNESS_CLI_H

#include <stdbool.h>

#include "harness.h"

/* One run of rolloutctl: its exit status, stdout and stderr (new strings). */
struct th_ctl_run {
    int status;
    char *out, *err;
};

/* Runs ROLLOUTCTL_BIN with the arguments as given (NULL-terminated; up to 30 are passed): the
 * caller names the connection (--db CONNINFO or --config FILE). */
struct th_ctl_run th_ctl(const char *first, ...);
void th_ctl_run_free(struct th_ctl_run *r);

/* Creates a new directory /tmp/PREFIX-XXXXXX into dir (asserts it could). */
void th_scratch_dir_create(char dir[64], const char *prefix);
/* Removes dir with everything in it; a failure is only logged. */
void th_scratch_dir_remove(const char *dir);

/* Writes content to path, replacing the file (asserts it could). */
void th_write_file(const char *path, const char *content);

/* "YYYY-MM-DD" of n days ago in UTC (a new string): imported events must lie in the past. */
char *th_days_ago(struct th_db *db, int n);

bool th_starts_with(const char *text, const char *prefix);
/* Asserts that needle occurs in text, showing the whole text when it does not. */
void th_assert_has(const char *text, const char *needle);

#endif

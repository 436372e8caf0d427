#include "harness_cli.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct th_ctl_run th_ctl(const char *first, ...)
{
    char *argv[32];
    int n = 0;
    argv[n++] = (char *)ROLLOUTCTL_BIN;
    va_list ap;
    va_start(ap, first);
    for (const char *a = first; a && n < 31; a = va_arg(ap, const char *))
        argv[n++] = (char *)a;
    va_end(ap);
    argv[n] = NULL;
    struct th_ctl_run r;
    r.status = th_run(argv, NULL, &r.out, &r.err);
    return r;
}

void th_ctl_run_free(struct th_ctl_run *r)
{
    free(r->out);
    free(r->err);
}

void th_scratch_dir_create(char dir[64], const char *prefix)
{
    snprintf(dir, 64, "/tmp/%s-XXXXXX", prefix);
    cr_assert(mkdtemp(dir) != NULL, "mkdtemp failed");
}

void th_scratch_dir_remove(const char *dir)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        cr_log_warn("could not remove %s", dir);
}

void th_write_file(const char *path, const char *content)
{
    FILE *f = fopen(path, "wb");
    cr_assert(f != NULL, "cannot write %s", path);
    fputs(content, f);
    fclose(f);
}

char *th_days_ago(struct th_db *db, int n)
{
    char sql[128];
    snprintf(sql, sizeof sql,
             "SELECT to_char((now() AT TIME ZONE 'UTC') - interval '%d days', 'YYYY-MM-DD')", n);
    return th_sql_text(db, sql);
}

bool th_starts_with(const char *text, const char *prefix)
{
    return strncmp(text, prefix, strlen(prefix)) == 0;
}

void th_assert_has(const char *text, const char *needle)
{
    cr_assert(strstr(text, needle) != NULL, "expected \"%s\" in:\n%s", needle, text);
}

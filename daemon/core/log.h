/* Logging to stderr (journald picks it up) or syslog. Never pass a token, a request body or an
 * employee's personal data to these functions: log the request id and the token's name instead. */
#ifndef ROLLOUT_LOG_H
#define ROLLOUT_LOG_H

#include <stdbool.h>

enum log_level {
    LOG_LEVEL_ERROR, /* something failed and an operator should look */
    LOG_LEVEL_WARN,  /* something odd that the service survived */
    LOG_LEVEL_INFO,  /* one line per request, start-up and shutdown */
    LOG_LEVEL_DEBUG  /* internals, for developers */
};

void log_init(const char *ident, enum log_level level, bool use_syslog);
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* Parses "error", "warn", "info", "debug"; returns false for anything else. */
bool log_level_parse(const char *name, enum log_level *out);
const char *log_level_name(enum log_level level);

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...)                                                                             \
    do {                                                                                           \
        if (log_get_level() >= LOG_LEVEL_DEBUG)                                                    \
            log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__);                                                 \
    } while (0)

#endif

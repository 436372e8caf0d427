/* The token cache. Tokens live in the database as SHA-256 hashes; the daemon re-reads them
 * every access.token_refresh_ms (1 s by default), so a revocation with `rolloutctl token revoke`
 * takes effect within that time, without a restart. */
#ifndef ROLLOUT_AUTH_H
#define ROLLOUT_AUTH_H

#include <event2/event.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "db_pool.h"

enum auth_role { ROLE_SUPPORT, ROLE_READER, ROLE_ADMIN };

/* What a request keeps of its token (copied: the cache may be replaced while it waits). */
struct auth_identity {
    int token_id;
    char name[72];
    enum auth_role role;
    json_t *scope; /* array of Ressort codes for support tokens, NULL otherwise (owned) */
};

enum auth_result {
    AUTH_OK,
    AUTH_MISSING,    /* no Authorization header */
    AUTH_MALFORMED,  /* not "Bearer rlt_..." */
    AUTH_UNKNOWN,    /* no such token */
    AUTH_EXPIRED,
    AUTH_REVOKED,
    AUTH_UNAVAILABLE /* the cache has never been loaded (database down since start) */
};

struct auth;

struct auth *auth_new(struct event_base *base, struct db_pool *pool, int refresh_ms);
/* Loads now and then every refresh_ms. */
void auth_start(struct auth *auth);
void auth_set_refresh(struct auth *auth, int refresh_ms);
/* Reload at once (SIGHUP). */
void auth_reload(struct auth *auth);
/* Checks an Authorization header value (may be NULL). On AUTH_OK fills *who. */
enum auth_result auth_check(struct auth *auth, const char *header, int64_t now_us,
                            struct auth_identity *who);
void auth_identity_clear(struct auth_identity *who);
bool auth_loaded(const struct auth *auth);
const char *auth_role_name(enum auth_role role);
void auth_free(struct auth *auth);

/* SQL of the prepared statement the cache uses ("tokens"). */
#define AUTH_TOKENS_SQL                                                                            \
    "SELECT id, name, role::text, ressorts, encode(hash, 'hex'), "                                 \
    "coalesce((extract(epoch FROM expires_at) * 1000000)::bigint, 0), revoked_at IS NOT NULL "     \
    "FROM api_token"

#endif

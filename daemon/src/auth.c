#include "auth.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "token.h"

struct cached_token {
    int id;
    char name[72];
    enum auth_role role;
    json_t *scope;
    unsigned char hash[TOKEN_HASH_LEN];
    int64_t expires_us; /* 0: never */
    bool revoked;
};

struct auth {
    struct event_base *base;
    struct db_pool *pool;
    struct event *timer;
    int refresh_ms;
    struct cached_token *tokens;
    int count;
    bool loaded;
    bool in_flight;
    struct db_job job;
    struct cached_token *next; /* being read */
    int next_count;
};

const char *auth_role_name(enum auth_role role)
{
    static const char *const names[] = {"support", "reader", "admin"};
    return names[role];
}

static void free_tokens(struct cached_token *t, int n)
{
    for (int i = 0; i < n; i++)
        json_decref(t[i].scope);
    free(t);
}

static bool send_tokens(struct db_job *job, PGconn *conn)
{
    return PQsendQueryPrepared(conn, "tokens", 0, NULL, NULL, NULL, 0) == 1;
}

static int hexval(char c)
{
    return c >= 'a' ? c - 'a' + 10 : c - '0';
}

/* ressorts arrive as a PostgreSQL array literal: {HMdF,HMdIS} (codes never need quoting) */
static json_t *parse_ressorts(const char *lit)
{
    json_t *arr = json_array();
    char buf[64];
    size_t n = 0;
    for (const char *p = lit; *p; p++) {
        if (*p == '{' || *p == '"')
            continue;
        if (*p == ',' || *p == '}') {
            if (n > 0)
                json_array_append_new(arr, json_stringn(buf, n));
            n = 0;
        } else if (n < sizeof buf) {
            buf[n++] = *p;
        }
    }
    return arr;
}

static void on_tokens(struct db_job *job, const PGresult *res)
{
    struct auth *auth = job->arg;
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        return;
    int n = PQntuples(res);
    free_tokens(auth->next, auth->next_count);
    auth->next = calloc((size_t)(n ? n : 1), sizeof *auth->next);
    auth->next_count = n;
    for (int r = 0; r < n; r++) {
        struct cached_token *t = &auth->next[r];
        t->id = atoi(PQgetvalue(res, r, 0));
        snprintf(t->name, sizeof t->name, "%s", PQgetvalue(res, r, 1));
        const char *role = PQgetvalue(res, r, 2);
        t->role = strcmp(role, "admin") == 0    ? ROLE_ADMIN
                  : strcmp(role, "reader") == 0 ? ROLE_READER
                                                : ROLE_SUPPORT;
        t->scope = t->role == ROLE_SUPPORT ? parse_ressorts(PQgetvalue(res, r, 3)) : NULL;
        const char *hex = PQgetvalue(res, r, 4);
        for (int i = 0; i < TOKEN_HASH_LEN && hex[2 * i]; i++)
            t->hash[i] = (unsigned char)(hexval(hex[2 * i]) << 4 | hexval(hex[2 * i + 1]));
        t->expires_us = strtoll(PQgetvalue(res, r, 5), NULL, 10);
        t->revoked = PQgetvalue(res, r, 6)[0] == 't';
    }
}

static void on_tokens_done(struct db_job *job, enum db_job_outcome outcome, const char *error)
{
    struct auth *auth = job->arg;
    auth->in_flight = false;
    if (outcome == DB_JOB_OK && auth->next != NULL) {
        free_tokens(auth->tokens, auth->count);
        auth->tokens = auth->next;
        auth->count = auth->next_count;
        if (!auth->loaded)
            log_info("token cache loaded: %d tokens", auth->count);
        auth->loaded = true;
    } else {
        free_tokens(auth->next, auth->next_count);
        if (outcome == DB_JOB_FAILED)
            log_error("cannot read the tokens: %s", error ? error : "");
    }
    auth->next = NULL;
    auth->next_count = 0;
}

static void auth_tick(evutil_socket_t fd, short what, void *arg)
{
    struct auth *auth = arg;
    auth_reload(auth);
    struct timeval tv = {auth->refresh_ms / 1000, (auth->refresh_ms % 1000) * 1000};
    evtimer_add(auth->timer, &tv);
}

void auth_reload(struct auth *auth)
{
    if (auth->in_flight)
        return;
    auth->job = (struct db_job){.name = "tokens",
                                .send = send_tokens,
                                .on_result = on_tokens,
                                .on_done = on_tokens_done,
                                .arg = auth};
    if (db_pool_submit(auth->pool, &auth->job))
        auth->in_flight = true;
}

struct auth *auth_new(struct event_base *base, struct db_pool *pool, int refresh_ms)
{
    struct auth *auth = calloc(1, sizeof *auth);
    auth->base = base;
    auth->pool = pool;
    auth->refresh_ms = refresh_ms;
    auth->timer = evtimer_new(base, auth_tick, auth);
    return auth;
}

void auth_start(struct auth *auth)
{
    auth_tick(-1, 0, auth);
}

void auth_set_refresh(struct auth *auth, int refresh_ms)
{
    auth->refresh_ms = refresh_ms;
}

bool auth_loaded(const struct auth *auth)
{
    return auth->loaded;
}

enum auth_result auth_check(struct auth *auth, const char *header, int64_t now_us,
                            struct auth_identity *who)
{
    if (header == NULL)
        return AUTH_MISSING;
    if (strncasecmp(header, "Bearer ", 7) != 0)
        return AUTH_MALFORMED;
    const char *tok = header + 7;
    while (*tok == ' ')
        tok++;
    size_t len = strlen(tok);
    while (len > 0 && tok[len - 1] == ' ')
        len--;
    if (!token_well_formed(tok, len))
        return AUTH_MALFORMED;
    if (!auth->loaded)
        return AUTH_UNAVAILABLE;
    unsigned char hash[TOKEN_HASH_LEN];
    token_hash(tok, len, hash);
    const struct cached_token *found = NULL;
    for (int i = 0; i < auth->count; i++)
        if (CRYPTO_memcmp(hash, auth->tokens[i].hash, TOKEN_HASH_LEN) == 0)
            found = &auth->tokens[i];
    if (found == NULL)
        return AUTH_UNKNOWN;
    if (found->revoked)
        return AUTH_REVOKED;
    if (found->expires_us != 0 && found->expires_us <= now_us)
        return AUTH_EXPIRED;
    who->token_id = found->id;
    snprintf(who->name, sizeof who->name, "%s", found->name);
    who->role = found->role;
    who->scope = found->scope ? json_incref(found->scope) : NULL;
    return AUTH_OK;
}

void auth_identity_clear(struct auth_identity *who)
{
    json_decref(who->scope);
    who->scope = NULL;
}

void auth_free(struct auth *auth)
{
    if (auth == NULL)
        return;
    event_free(auth->timer);
    free_tokens(auth->tokens, auth->count);
    free_tokens(auth->next, auth->next_count);
    free(auth);
}

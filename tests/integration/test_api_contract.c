/* The HTTP contract of rolloutd (../shared/DOMAIN.md, docs/contract-notes.md), tested against the
 * real daemon and the real PostgreSQL through the harness.
 *
 * Most of it is data: one file per case in tests/api/cases/NNN-name.case, each run as one
 * Criterion test on a fresh database with a fresh daemon. The rest (the whole transition table,
 * paging through a long history, access_log) is C at the end. (Revocation within a second and
 * the database going away are in test_daemon.c and test_faults.c.)
 *
 * The case machinery is shared: test_api_badinput.c and test_api_concurrency.c define
 * TEST_API_LIBRARY_ONLY and include this file, which then leaves its own tests out.
 *
 * ==== The case format (also used by tests/api/badinput/, see test_api_badinput.c) ============
 *
 * A case is a list of directives `name: value`, one per line. Lines starting with `#` before
 * the first directive describe the case (shown when it fails); other `#` lines and blank lines
 * outside a block are ignored. Everything before the first `request:` belongs to the case, what
 * follows a `request:` to that request (a "step"); a case may have several steps, run in order.
 *
 * Case directives
 *   config: TEXT          libconfig text appended to the daemon's configuration (may repeat;
 *                         contract cases only: the catalogue shares one daemon)
 *   setup-sql: SQL        run as superuser before the daemon starts (may repeat, in order)
 *   token: SPEC           the default token of every step (default: admin)
 *
 * Step directives
 *   request: METHOD PATH  starts a step
 *   token: SPEC           this step's token
 *       admin | reader | support:HMdF[,HMdIS...]   a valid token of that role and scope
 *       expired | revoked                          an admin token that expired / was revoked
 *       unknown                                    well-formed (rlt_ + 43) but not issued
 *       malformed                                  "Bearer rlt_short"
 *       none                                       no Authorization header
 *       raw:VALUE                                  the Authorization header is VALUE, verbatim
 *   content-type: VALUE   the Content-Type header (default application/json when there is a
 *                         body; `none`: no Content-Type header at all)
 *   header: Name: Value   an extra request header (may repeat)
 *   body: TEXT            the body, inline; or `body:` alone, then the body on the following
 *                         lines (joined with \n) up to a line that is exactly `end`
 *   raw:                  alone, then lines up to `end`: bytes sent as they are over a plain
 *                         TCP connection (each line ends with CRLF; an empty line ends the
 *                         header block), for what an HTTP client library would not send.
 *                         `request:` still names METHOD and PATH for the messages.
 *   expect-status: N[|N...]          the status (one of the alternatives)
 *   expect-code: CODE[|CODE...]      error.code; also checks the error's shape: {"error":
 *                                    {"code": string, "message": string, "field": string|null}}
 *                                    and a JSON Content-Type
 *   expect-json: JSON                the answer contains this JSON: objects by subset (every key
 *                                    given must be there, matching), arrays element by element
 *                                    with the same length, scalars equal; the string "<<any>>"
 *                                    matches any value that is present (may repeat)
 *   expect-header: Name: Value       the answer has this header ("<<any>>": with any value)
 *   expect-no-header: Name           the answer lacks this header
 *   expect-body-same-as: N           the body is byte for byte the body of step N (1-based)
 *   expect-sql: SELECT ... => TEXT   after the step, the query's first value (as text, NULL
 *                                    as "NULL") equals TEXT; run as superuser (may repeat)
 *   retry-ms: N                      repeat the request until every expectation holds, for up
 *                                    to N ms (for reads of figures that follow commits a moment
 *                                    later, e.g. /v1/progress)
 *
 * Placeholders ("{{" and a letter), expanded in every value and block line:
 *   {{uuid:NAME}} a fresh random UUID, the same for the same NAME within one case run
 *   {{UUID:NAME}} the same UUID in upper case
 *   {{ts:SECONDS}} now + SECONDS (may be negative) as RFC 3339 UTC, e.g. 2026-11-27T10:00:00Z
 *   {{repeat:N:TEXT}} TEXT N times (TEXT may hold placeholders; a "}" in TEXT as {{hex:7d}})
 *   {{hex:HHHH...}} raw bytes (for invalid UTF-8 and NUL bytes in bodies)
 *   {{crlf}} CR LF
 *   {{port}} the daemon's port, {{token:SPEC}} the token of a spec (admin, reader,
 *                 support:...), for raw: requests; the catalogue of tests/api/badinput only
 *                 (a contract case is read before its daemon starts)
 *
 * ROLLOUT_TEST_VERBOSE=1 logs every answer (status and the start of its body).
 * ========================================================================================== */
#include <ctype.h>
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "token.h"

#define API_UNUSED __attribute__((unused))

/* ------------------------------------------------------------------------------------------ */
/* Small utilities */

API_UNUSED static long long api_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

API_UNUSED static void api_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

struct abuf {
    char *data;
    size_t len, cap;
};

API_UNUSED static void abuf_add(struct abuf *b, const void *p, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *d = realloc(b->data, cap);
        cr_assert(d != NULL, "out of memory");
        b->data = d;
        b->cap = cap;
    }
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

API_UNUSED static void abuf_puts(struct abuf *b, const char *s)
{
    abuf_add(b, s, strlen(s));
}

API_UNUSED static char *abuf_take(struct abuf *b)
{
    if (b->data == NULL)
        abuf_add(b, "", 0);
    char *d = b->data;
    memset(b, 0, sizeof *b);
    return d;
}

API_UNUSED static char *api_strdup(const char *s)
{
    char *p = strdup(s);
    cr_assert(p != NULL, "out of memory");
    return p;
}

/* RFC 3339 UTC of now + offset seconds. */
API_UNUSED static void api_timestamp(long long offset_s, char out[32])
{
    time_t t = time(NULL) + (time_t)offset_s;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* A short printable excerpt of bytes for messages. */
API_UNUSED static void api_excerpt(const char *p, size_t n, char *out, size_t size)
{
    size_t o = 0;
    for (size_t i = 0; i < n && o + 5 < size; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c >= 0x20 && c < 0x7f) {
            out[o++] = (char)c;
        } else {
            o += (size_t)snprintf(out + o, size - o, "\\x%02x", c);
        }
    }
    if (n > 0 && o + 5 >= size && size > 4)
        memcpy(out + size - 4, "...", 4);
    else
        out[o < size ? o : size - 1] = '\0';
}

/* ------------------------------------------------------------------------------------------ */
/* Answers, from th_http or from a plain socket */

#define API_MAX_HEADERS 64

struct api_resp {
    int status; /* 0: no answer */
    char *body;
    size_t len;
    json_t *json;
    int nheaders;
    char *hname[API_MAX_HEADERS], *hvalue[API_MAX_HEADERS];
};

API_UNUSED static void resp_free(struct api_resp *r)
{
    if (r == NULL)
        return;
    free(r->body);
    json_decref(r->json);
    for (int i = 0; i < r->nheaders; i++) {
        free(r->hname[i]);
        free(r->hvalue[i]);
    }
    free(r);
}

API_UNUSED static void resp_add_header(struct api_resp *r, const char *name, const char *value,
                                       size_t vlen)
{
    if (r->nheaders >= API_MAX_HEADERS || value == NULL)
        return;
    r->hname[r->nheaders] = api_strdup(name);
    r->hvalue[r->nheaders] = strndup(value, vlen);
    cr_assert(r->hvalue[r->nheaders] != NULL, "out of memory");
    r->nheaders++;
}

API_UNUSED static const char *resp_header(const struct api_resp *r, const char *name)
{
    for (int i = 0; i < r->nheaders; i++)
        if (strcasecmp(r->hname[i], name) == 0)
            return r->hvalue[i];
    return NULL;
}

API_UNUSED static void resp_parse_json(struct api_resp *r)
{
    if (r->len > 0)
        r->json = json_loadb(r->body, r->len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
}

/* Through the harness's libevent client (which exposes three headers). */
API_UNUSED static struct api_resp *api_http(struct th_daemon *d, const char *method,
                                            const char *path, const char *token,
                                            const char *content_type, const char *body,
                                            size_t len)
{
    struct th_response *t = th_http(d, method, path, token, content_type, body, len);
    struct api_resp *r = calloc(1, sizeof *r);
    cr_assert(r != NULL, "out of memory");
    r->status = t->status;
    r->body = t->body;
    r->len = t->len;
    r->json = t->json;
    t->body = NULL;
    t->json = NULL;
    if (t->content_type)
        resp_add_header(r, "Content-Type", t->content_type, strlen(t->content_type));
    if (t->retry_after)
        resp_add_header(r, "Retry-After", t->retry_after, strlen(t->retry_after));
    if (t->replayed)
        resp_add_header(r, "Idempotent-Replayed", t->replayed, strlen(t->replayed));
    th_response_free(t);
    return r;
}

/* Writes everything (or until the peer closes). */
API_UNUSED static bool api_write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

/* Reads one HTTP answer from fd: up to the end of Content-Length, or EOF, or timeout_ms. */
API_UNUSED static struct api_resp *api_read_answer(int fd, bool head_request, int timeout_ms)
{
    struct api_resp *r = calloc(1, sizeof *r);
    cr_assert(r != NULL, "out of memory");
    struct abuf in = {0};
    long long deadline = api_now_ms() + timeout_ms;
    size_t head_end = 0;
    long long clen = -1;
    for (;;) {
        if (head_end == 0 && in.len >= 4) {
            char *e = NULL;
            for (size_t i = 0; i + 3 < in.len; i++)
                if (memcmp(in.data + i, "\r\n\r\n", 4) == 0) {
                    e = in.data + i;
                    break;
                }
            if (e) {
                head_end = (size_t)(e - in.data) + 4;
                for (char *p = in.data; p < e; p++) {
                    if (strncasecmp(p, "\r\nContent-Length:", 17) == 0) {
                        clen = strtoll(p + 17, NULL, 10);
                        break;
                    }
                }
                if (head_request)
                    clen = 0;
            }
        }
        if (head_end && clen >= 0 && in.len >= head_end + (size_t)clen)
            break;
        long long left = deadline - api_now_ms();
        if (left <= 0)
            break;
        struct pollfd pfd = {fd, POLLIN, 0};
        int n = poll(&pfd, 1, (int)left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        char chunk[65536];
        ssize_t got = recv(fd, chunk, sizeof chunk, 0);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        abuf_add(&in, chunk, (size_t)got);
    }
    if (head_end == 0) {
        free(in.data);
        r->body = api_strdup("");
        return r;
    }
    /* status line and headers */
    char *p = in.data, *end = in.data + head_end - 2;
    char *eol = strstr(p, "\r\n");
    if (strncmp(p, "HTTP/1.", 7) == 0 && eol && eol - p >= 12)
        r->status = atoi(p + 9);
    p = eol ? eol + 2 : end;
    while (p < end) {
        eol = strstr(p, "\r\n");
        if (eol == NULL || eol > end)
            break;
        char *colon = memchr(p, ':', (size_t)(eol - p));
        if (colon) {
            char name[128];
            snprintf(name, sizeof name, "%.*s", (int)(colon - p), p);
            char *v = colon + 1;
            while (v < eol && (*v == ' ' || *v == '\t'))
                v++;
            resp_add_header(r, name, v, (size_t)(eol - v));
        }
        p = eol + 2;
    }
    size_t blen = in.len - head_end;
    if (clen >= 0 && (size_t)clen < blen)
        blen = (size_t)clen;
    r->body = malloc(blen + 1);
    cr_assert(r->body != NULL, "out of memory");
    memcpy(r->body, in.data + head_end, blen);
    r->body[blen] = '\0';
    r->len = blen;
    free(in.data);
    resp_parse_json(r);
    return r;
}

/* Sends bytes as they are on a new connection and reads the answer. */
API_UNUSED static struct api_resp *api_raw(int port, const char *bytes, size_t n, bool head)
{
    int fd = th_connect(port);
    if (fd < 0) {
        struct api_resp *r = calloc(1, sizeof *r);
        cr_assert(r != NULL, "out of memory");
        r->body = api_strdup("");
        return r;
    }
    api_write_all(fd, bytes, n); /* the server may answer and close before reading it all */
    struct api_resp *r = api_read_answer(fd, head, 30000);
    close(fd);
    return r;
}

/* A request written by hand (any Authorization value, extra headers), read whole. */
API_UNUSED static struct api_resp *api_request_raw(int port, const char *method, const char *path,
                                                   const char *authorization,
                                                   const char *content_type,
                                                   const char *extra_headers, const char *body,
                                                   size_t len)
{
    struct abuf b = {0};
    char line[128];
    abuf_puts(&b, method);
    abuf_puts(&b, " ");
    abuf_puts(&b, path);
    abuf_puts(&b, " HTTP/1.1\r\n");
    snprintf(line, sizeof line, "Host: 127.0.0.1:%d\r\nConnection: close\r\n", port);
    abuf_puts(&b, line);
    if (authorization) {
        abuf_puts(&b, "Authorization: ");
        abuf_puts(&b, authorization);
        abuf_puts(&b, "\r\n");
    }
    if (content_type) {
        abuf_puts(&b, "Content-Type: ");
        abuf_puts(&b, content_type);
        abuf_puts(&b, "\r\n");
    }
    if (extra_headers)
        abuf_puts(&b, extra_headers);
    if (body) {
        snprintf(line, sizeof line, "Content-Length: %zu\r\n", len);
        abuf_puts(&b, line);
    }
    abuf_puts(&b, "\r\n");
    if (body)
        abuf_add(&b, body, len);
    struct api_resp *r = api_raw(port, b.data, b.len, strcmp(method, "HEAD") == 0);
    free(b.data);
    return r;
}

/* ------------------------------------------------------------------------------------------ */
/* JSON matching */

/* Whether got contains want (see the format above). On a mismatch, path says where. */
API_UNUSED static bool json_contains(const json_t *got, const json_t *want, char *path,
                                     size_t size)
{
    if (json_is_string(want) && strcmp(json_string_value(want), "<<any>>") == 0)
        return got != NULL;
    if (got == NULL)
        return false;
    if (json_is_object(want)) {
        if (!json_is_object(got))
            return false;
        const char *key;
        json_t *v;
        size_t base = strlen(path);
        json_object_foreach((json_t *)want, key, v)
        {
            snprintf(path + base, size - base, ".%s", key);
            if (!json_contains(json_object_get(got, key), v, path, size))
                return false;
            path[base] = '\0';
        }
        return true;
    }
    if (json_is_array(want)) {
        if (!json_is_array(got) || json_array_size(got) != json_array_size(want))
            return false;
        size_t base = strlen(path);
        for (size_t i = 0; i < json_array_size(want); i++) {
            snprintf(path + base, size - base, "[%zu]", i);
            if (!json_contains(json_array_get(got, i), json_array_get(want, i), path, size))
                return false;
            path[base] = '\0';
        }
        return true;
    }
    if (json_is_number(want) && json_is_number(got))
        return json_number_value(want) == json_number_value(got);
    return json_equal((json_t *)got, (json_t *)want);
}

/* ------------------------------------------------------------------------------------------ */
/* Tokens */

struct api_token {
    char spec[96];
    char value[TOKEN_LENGTH + 1];
};

#define API_MAX_TOKENS 32

struct api_tokens {
    struct api_token t[API_MAX_TOKENS];
    int n;
};

/* Creates the token a spec needs (nothing for none/unknown/malformed/raw:). */
API_UNUSED static void tokens_need(struct api_tokens *ts, struct th_db *db, const char *spec)
{
    if (strcmp(spec, "none") == 0 || strcmp(spec, "unknown") == 0 ||
        strcmp(spec, "malformed") == 0 || strncmp(spec, "raw:", 4) == 0)
        return;
    for (int i = 0; i < ts->n; i++)
        if (strcmp(ts->t[i].spec, spec) == 0)
            return;
    cr_assert(ts->n < API_MAX_TOKENS, "too many different tokens");
    char name[96];
    const char *role, *ressorts = NULL;
    if (strcmp(spec, "admin") == 0 || strcmp(spec, "expired") == 0 ||
        strcmp(spec, "revoked") == 0) {
        role = "admin";
        snprintf(name, sizeof name, "test-%s", spec);
    } else if (strcmp(spec, "reader") == 0) {
        role = "reader";
        snprintf(name, sizeof name, "test-reader");
    } else if (strncmp(spec, "support:", 8) == 0 && spec[8]) {
        role = "support";
        ressorts = spec + 8;
        snprintf(name, sizeof name, "test-support-%s", ressorts);
        for (char *p = name; *p; p++)
            if (*p == ',')
                *p = '-';
    } else {
        cr_assert_fail("unknown token spec \"%s\" (see the format in test_api_contract.c)", spec);
        return;
    }
    char *tok = th_token(db, name, role, ressorts);
    struct api_token *t = &ts->t[ts->n++];
    snprintf(t->spec, sizeof t->spec, "%s", spec);
    snprintf(t->value, sizeof t->value, "%s", tok);
    free(tok);
    const char *params[] = {name};
    if (strcmp(spec, "expired") == 0)
        PQclear(th_sql(db, "UPDATE api_token SET expires_at = now() - interval '1 hour' "
                           "WHERE name = $1",
                       1, params));
    if (strcmp(spec, "revoked") == 0)
        PQclear(th_sql(db, "UPDATE api_token SET revoked_at = now() - interval '1 minute' "
                           "WHERE name = $1",
                       1, params));
}

/* The Authorization header value for a spec, or NULL for none. */
API_UNUSED static const char *tokens_authorization(const struct api_tokens *ts, const char *spec,
                                                   char *out, size_t size)
{
    if (strcmp(spec, "none") == 0)
        return NULL;
    if (strncmp(spec, "raw:", 4) == 0) {
        snprintf(out, size, "%s", spec + 4);
        return out;
    }
    if (strcmp(spec, "malformed") == 0) {
        snprintf(out, size, "Bearer rlt_short");
        return out;
    }
    if (strcmp(spec, "unknown") == 0) {
        char tok[TOKEN_LENGTH + 1];
        cr_assert(token_generate(tok), "token_generate failed");
        snprintf(out, size, "Bearer %s", tok);
        return out;
    }
    for (int i = 0; i < ts->n; i++)
        if (strcmp(ts->t[i].spec, spec) == 0) {
            snprintf(out, size, "Bearer %s", ts->t[i].value);
            return out;
        }
    cr_assert_fail("token \"%s\" was not created", spec);
    return NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* Case files */

#define API_MAX_STEPS 24
#define API_MAX_EXPECT 12

struct api_step {
    int line;
    char *method, *path;
    char *token;        /* NULL: the case's */
    char *content_type; /* NULL: default */
    char *headers;      /* extra request headers, CRLF-terminated */
    char *body;
    size_t body_len;
    bool has_body;
    char *raw;
    size_t raw_len;
    char *status;       /* "201" or "413|431" */
    char *code;
    char *json[API_MAX_EXPECT];
    int njson;
    char *hdr[API_MAX_EXPECT];
    int nhdr;
    char *nohdr[API_MAX_EXPECT];
    int nnohdr;
    char *sql[API_MAX_EXPECT], *sql_want[API_MAX_EXPECT];
    int nsql;
    int same_as;
    int retry_ms;
};

struct api_case {
    char name[128];
    char *description;
    char *config;
    char *setup[API_MAX_EXPECT * 2];
    int nsetup;
    char *token;
    struct api_step steps[API_MAX_STEPS];
    int nsteps;
    /* placeholders */
    char uuid_name[128][32];
    char uuid_value[128][37];
    int nuuid;
    int port;
    const struct api_tokens *tokens; /* for {{token:SPEC}}; NULL: expands to "" */
};

static void expand_into(struct api_case *c, struct abuf *out, const char *s, size_t n);

API_UNUSED static const char *case_uuid(struct api_case *c, const char *name, size_t n)
{
    for (int i = 0; i < c->nuuid; i++)
        if (strlen(c->uuid_name[i]) == n && strncmp(c->uuid_name[i], name, n) == 0)
            return c->uuid_value[i];
    cr_assert(c->nuuid < 128 && n < 32, "%s: too many or too long uuid names", c->name);
    memcpy(c->uuid_name[c->nuuid], name, n);
    c->uuid_name[c->nuuid][n] = '\0';
    th_uuid(c->uuid_value[c->nuuid]);
    return c->uuid_value[c->nuuid++];
}

/* The end of the placeholder whose "{{" is at s (pointing at the closing "}}"), nesting aware. */
static const char *placeholder_end(const char *s, const char *limit)
{
    int depth = 0;
    for (const char *p = s; p + 1 < limit; p++) {
        if (p[0] == '{' && p[1] == '{' && p + 2 < limit && isalpha((unsigned char)p[2])) {
            depth++;
            p++;
        } else if (p[0] == '}' && p[1] == '}') {
            if (--depth == 0)
                return p;
            p++;
        }
    }
    return NULL;
}

static void expand_into(struct api_case *c, struct abuf *out, const char *s, size_t n)
{
    const char *limit = s + n;
    while (s < limit) {
        /* a placeholder starts with {{ and a letter, so JSON's "{{{crlf}}" is "{" and CR LF */
        if (s + 2 < limit && s[0] == '{' && s[1] == '{' && isalpha((unsigned char)s[2])) {
            const char *e = placeholder_end(s, limit);
            cr_assert(e != NULL, "%s: unclosed {{ in \"%.60s\"", c->name, s);
            const char *in = s + 2;
            size_t inlen = (size_t)(e - in);
            if (strncmp(in, "uuid:", 5) == 0 || strncmp(in, "UUID:", 5) == 0) {
                const char *u = case_uuid(c, in + 5, inlen - 5);
                char up[37];
                for (int i = 0; i < 37; i++)
                    up[i] = in[0] == 'U' ? (char)toupper((unsigned char)u[i]) : u[i];
                abuf_puts(out, up);
            } else if (strncmp(in, "ts:", 3) == 0) {
                char ts[32];
                api_timestamp(strtoll(in + 3, NULL, 10), ts);
                abuf_puts(out, ts);
            } else if (strncmp(in, "repeat:", 7) == 0) {
                char *colon;
                long count = strtol(in + 7, &colon, 10);
                cr_assert(*colon == ':' && count >= 0 && count <= 10000000,
                          "%s: bad {{repeat:N:TEXT}}", c->name);
                struct abuf once = {0};
                expand_into(c, &once, colon + 1, (size_t)(e - colon - 1));
                for (long i = 0; i < count; i++)
                    abuf_add(out, once.data, once.len);
                free(once.data);
            } else if (strncmp(in, "hex:", 4) == 0) {
                for (size_t i = 4; i + 1 < inlen; i += 2) {
                    char h[3] = {in[i], in[i + 1], 0};
                    char *hend;
                    unsigned char byte = (unsigned char)strtoul(h, &hend, 16);
                    cr_assert(*hend == '\0', "%s: bad {{hex:...}}", c->name);
                    abuf_add(out, &byte, 1);
                }
            } else if (inlen == 4 && strncmp(in, "crlf", 4) == 0) {
                abuf_puts(out, "\r\n");
            } else if (strncmp(in, "token:", 6) == 0) {
                for (int i = 0; c->tokens && i < c->tokens->n; i++)
                    if (strlen(c->tokens->t[i].spec) == inlen - 6 &&
                        strncmp(c->tokens->t[i].spec, in + 6, inlen - 6) == 0)
                        abuf_puts(out, c->tokens->t[i].value);
            } else if (inlen == 4 && strncmp(in, "port", 4) == 0) {
                char port[16];
                snprintf(port, sizeof port, "%d", c->port);
                abuf_puts(out, port);
            } else {
                cr_assert_fail("%s: unknown placeholder {{%.*s}}", c->name, (int)inlen, in);
            }
            s = e + 2;
        } else {
            abuf_add(out, s, 1);
            s++;
        }
    }
}

/* A value with its placeholders expanded (a new string; *len may be NULL). */
API_UNUSED static char *case_expand(struct api_case *c, const char *s, size_t *len)
{
    struct abuf b = {0};
    expand_into(c, &b, s, strlen(s));
    if (len)
        *len = b.len;
    return abuf_take(&b);
}

API_UNUSED static void case_dir(const char *sub, char *out, size_t size)
{
    const char *src = getenv("ROLLOUT_SOURCE_DIR");
    snprintf(out, size, "%s/tests/api/%s", src && *src ? src : ROLLOUT_SOURCE_DIR, sub);
}

API_UNUSED static void case_free(struct api_case *c)
{
    free(c->description);
    free(c->config);
    free(c->token);
    for (int i = 0; i < c->nsetup; i++)
        free(c->setup[i]);
    for (int s = 0; s < c->nsteps; s++) {
        struct api_step *st = &c->steps[s];
        free(st->method);
        free(st->path);
        free(st->token);
        free(st->content_type);
        free(st->headers);
        free(st->body);
        free(st->raw);
        free(st->status);
        free(st->code);
        for (int i = 0; i < st->njson; i++)
            free(st->json[i]);
        for (int i = 0; i < st->nhdr; i++)
            free(st->hdr[i]);
        for (int i = 0; i < st->nnohdr; i++)
            free(st->nohdr[i]);
        for (int i = 0; i < st->nsql; i++) {
            free(st->sql[i]);
            free(st->sql_want[i]);
        }
    }
    memset(c, 0, sizeof *c);
}

/* Reads and parses dir/file. Placeholders are expanded here (uuids: once per case run);
 * {{port}} and {{token:SPEC}} need the port and the tokens, given when known. */
API_UNUSED static void case_load(struct api_case *c, const char *dir, const char *file, int port,
                                 const struct api_tokens *tokens)
{
    memset(c, 0, sizeof *c);
    snprintf(c->name, sizeof c->name, "%s", file);
    c->port = port;
    c->tokens = tokens;
    char path[640];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    FILE *f = fopen(path, "r");
    cr_assert(f != NULL, "cannot read %s: %s", path, strerror(errno));
    struct abuf desc = {0}, config = {0};
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    int lineno = 0;
    struct api_step *st = NULL;
    bool any_directive = false;
    while ((got = getline(&line, &cap, f)) >= 0) {
        lineno++;
        while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r'))
            line[--got] = '\0';
        if (line[0] == '#') {
            if (!any_directive) {
                abuf_puts(&desc, line[1] == ' ' ? line + 2 : line + 1);
                abuf_puts(&desc, " ");
            }
            continue;
        }
        if (line[0] == '\0')
            continue;
        char *colon = strchr(line, ':');
        cr_assert(colon != NULL, "%s:%d: expected `directive: value`, got \"%s\"", path, lineno,
                  line);
        *colon = '\0';
        /* the block below reuses `line`: keep the directive's name */
        char k[32];
        snprintf(k, sizeof k, "%s", line);
        char *value = colon + 1;
        while (*value == ' ')
            value++;
        any_directive = true;

        /* blocks: `body:` or `raw:` alone, then lines up to `end` */
        struct abuf blk = {0};
        if ((strcmp(k, "body") == 0 || strcmp(k, "raw") == 0) && *value == '\0') {
            bool first = true, ended = false;
            while ((got = getline(&line, &cap, f)) >= 0) {
                lineno++;
                while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r'))
                    line[--got] = '\0';
                if (strcmp(line, "end") == 0) {
                    ended = true;
                    break;
                }
                if (strcmp(k, "body") == 0 && !first)
                    abuf_puts(&blk, "\n");
                abuf_puts(&blk, line);
                if (strcmp(k, "raw") == 0)
                    abuf_puts(&blk, "{{crlf}}");
                first = false;
            }
            cr_assert(ended, "%s: a %s: block without its `end` line", path, k);
            if (blk.data == NULL)
                abuf_add(&blk, "", 0);
            value = blk.data;
        }

        if (strcmp(k, "request") == 0) {
            cr_assert(c->nsteps < API_MAX_STEPS, "%s:%d: too many steps", path, lineno);
            st = &c->steps[c->nsteps++];
            st->line = lineno;
            char m[16], p[8192];
            cr_assert(sscanf(value, "%15s %8191s", m, p) == 2,
                      "%s:%d: request: METHOD PATH", path, lineno);
            st->method = api_strdup(m);
            st->path = case_expand(c, p, NULL);
        } else if (strcmp(k, "config") == 0) {
            cr_assert(st == NULL, "%s:%d: config belongs before the first request", path, lineno);
            abuf_puts(&config, value);
            abuf_puts(&config, "\n");
        } else if (strcmp(k, "setup-sql") == 0) {
            cr_assert(st == NULL && c->nsetup < API_MAX_EXPECT * 2,
                      "%s:%d: setup-sql belongs before the first request", path, lineno);
            c->setup[c->nsetup++] = case_expand(c, value, NULL);
        } else if (strcmp(k, "token") == 0) {
            char **slot = st ? &st->token : &c->token;
            free(*slot);
            *slot = case_expand(c, value, NULL);
        } else {
            cr_assert(st != NULL, "%s:%d: %s: belongs to a request (after `request:`)", path,
                      lineno, k);
            if (strcmp(k, "content-type") == 0) {
                st->content_type = api_strdup(value);
            } else if (strcmp(k, "header") == 0) {
                struct abuf h = {0};
                if (st->headers)
                    abuf_puts(&h, st->headers);
                free(st->headers);
                char *v = case_expand(c, value, NULL);
                abuf_puts(&h, v);
                abuf_puts(&h, "\r\n");
                free(v);
                st->headers = abuf_take(&h);
            } else if (strcmp(k, "body") == 0) {
                st->body = case_expand(c, value, &st->body_len);
                st->has_body = true;
            } else if (strcmp(k, "raw") == 0) {
                st->raw = case_expand(c, value, &st->raw_len);
            } else if (strcmp(k, "expect-status") == 0) {
                st->status = api_strdup(value);
            } else if (strcmp(k, "expect-code") == 0) {
                st->code = api_strdup(value);
            } else if (strcmp(k, "expect-json") == 0) {
                cr_assert(st->njson < API_MAX_EXPECT, "%s:%d: too many expect-json", path, lineno);
                st->json[st->njson++] = case_expand(c, value, NULL);
            } else if (strcmp(k, "expect-header") == 0) {
                cr_assert(st->nhdr < API_MAX_EXPECT, "%s:%d: too many", path, lineno);
                st->hdr[st->nhdr++] = case_expand(c, value, NULL);
            } else if (strcmp(k, "expect-no-header") == 0) {
                cr_assert(st->nnohdr < API_MAX_EXPECT, "%s:%d: too many", path, lineno);
                st->nohdr[st->nnohdr++] = api_strdup(value);
            } else if (strcmp(k, "expect-body-same-as") == 0) {
                st->same_as = atoi(value);
                cr_assert(st->same_as >= 1 && st->same_as < c->nsteps,
                          "%s:%d: expect-body-same-as names an earlier step", path, lineno);
            } else if (strcmp(k, "expect-sql") == 0) {
                cr_assert(st->nsql < API_MAX_EXPECT, "%s:%d: too many expect-sql", path, lineno);
                char *arrow = strstr(value, " => ");
                cr_assert(arrow != NULL, "%s:%d: expect-sql: QUERY => VALUE", path, lineno);
                *arrow = '\0';
                st->sql[st->nsql] = case_expand(c, value, NULL);
                st->sql_want[st->nsql++] = case_expand(c, arrow + 4, NULL);
            } else if (strcmp(k, "retry-ms") == 0) {
                st->retry_ms = atoi(value);
            } else {
                cr_assert_fail("%s:%d: unknown directive \"%s\"", path, lineno, k);
            }
        }
        free(blk.data);
    }
    free(line);
    fclose(f);
    c->description = abuf_take(&desc);
    c->config = config.len ? abuf_take(&config) : NULL;
    free(config.data);
    if (c->token == NULL)
        c->token = api_strdup("admin");
    cr_assert(c->nsteps > 0, "%s: no request", path);
    for (int s = 0; s < c->nsteps; s++)
        cr_assert(c->steps[s].status != NULL, "%s:%d: a request without expect-status", path,
                  c->steps[s].line);
}

/* ------------------------------------------------------------------------------------------ */
/* Running a case */

struct api_run {
    struct th_daemon *d;
    struct th_db *db;
    struct api_tokens *tokens;
    int created; /* events the daemon said it stored (201s and batch "created" results) */
};

API_UNUSED static bool alt_match(const char *alternatives, const char *value)
{
    size_t n = strlen(value);
    for (const char *p = alternatives; p && *p;) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && strncmp(p, value, n) == 0)
            return true;
        p = bar ? bar + 1 : NULL;
    }
    return false;
}

API_UNUSED static struct api_resp *step_send(struct api_case *c, struct api_step *st,
                                             struct api_run *run)
{
    const char *spec = st->token ? st->token : c->token;
    if (st->raw)
        return api_raw(run->d->port, st->raw, st->raw_len, strcmp(st->method, "HEAD") == 0);
    char auth[256];
    const char *authz = tokens_authorization(run->tokens, spec, auth, sizeof auth);
    const char *ct = st->content_type;
    if (ct == NULL && st->has_body)
        ct = "application/json";
    if (ct && strcmp(ct, "none") == 0)
        ct = NULL;
    /* th_http knows three answer headers; everything else needs the plain client */
    bool plain = strncmp(spec, "raw:", 4) == 0 || st->headers != NULL || st->nnohdr > 0 ||
                 (st->has_body && ct == NULL);
    for (int i = 0; i < st->nhdr; i++)
        if (strncasecmp(st->hdr[i], "Content-Type:", 13) != 0 &&
            strncasecmp(st->hdr[i], "Retry-After:", 12) != 0 &&
            strncasecmp(st->hdr[i], "Idempotent-Replayed:", 20) != 0)
            plain = true;
    if (plain)
        return api_request_raw(run->d->port, st->method, st->path, authz, ct, st->headers,
                               st->has_body ? st->body : NULL, st->body_len);
    const char *tok = authz ? authz + 7 : NULL; /* th_http writes "Bearer " itself */
    return api_http(run->d, st->method, st->path, tok, ct ? ct : "", st->has_body ? st->body : NULL,
                    st->body_len);
}

/* Checks one answer. With report, every mismatch is a Criterion failure (cr_expect), else
 * only the result is returned (for retries). */
API_UNUSED static bool step_check(struct api_case *c, int si, struct api_resp *r,
                                  struct api_resp **earlier, struct api_run *run, bool report)
{
    struct api_step *st = &c->steps[si];
    char where[256];
    snprintf(where, sizeof where, "%s step %d (line %d: %s %.80s)", c->name, si + 1, st->line,
             st->method, st->path);
    char body[400];
    api_excerpt(r->body, r->len, body, sizeof body);
    bool ok = true;
#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            ok = false;                                                                            \
            if (report)                                                                            \
                cr_expect(0, __VA_ARGS__);                                                         \
        }                                                                                          \
    } while (0)

    char status[16];
    snprintf(status, sizeof status, "%d", r->status);
    CHECK(alt_match(st->status, status), "%s: expected status %s, got %d; body: %s", where,
          st->status, r->status, body);
    if (st->code) {
        const char *ct = resp_header(r, "Content-Type");
        CHECK(ct && strncmp(ct, "application/json", 16) == 0,
              "%s: an error answer must be JSON, Content-Type was %s; body: %s", where,
              ct ? ct : "(none)", body);
        json_t *err = r->json ? json_object_get(r->json, "error") : NULL;
        json_t *code = err ? json_object_get(err, "code") : NULL;
        json_t *field = err ? json_object_get(err, "field") : NULL;
        CHECK(json_is_object(err) && json_is_string(code) &&
                  json_is_string(json_object_get(err, "message")) &&
                  (json_is_string(field) || json_is_null(field)),
              "%s: expected the error shape {\"error\": {\"code\", \"message\", \"field\"}} "
              "with code %s, got: %s",
              where, st->code, body);
        if (json_is_string(code))
            CHECK(alt_match(st->code, json_string_value(code)),
                  "%s: expected error code %s, got %s; body: %s", where, st->code,
                  json_string_value(code), body);
    }
    for (int i = 0; i < st->njson; i++) {
        json_error_t jerr;
        json_t *want = json_loads(st->json[i], JSON_DECODE_ANY, &jerr);
        cr_assert(want != NULL, "%s: expect-json is not JSON: %s (%s)", where, jerr.text,
                  st->json[i]);
        char path[256] = "$";
        bool m = json_contains(r->json, want, path, sizeof path);
        CHECK(m, "%s: the answer does not contain %s (first difference at %s); body: %s", where,
              st->json[i], path, body);
        json_decref(want);
    }
    for (int i = 0; i < st->nhdr; i++) {
        const char *colon = strchr(st->hdr[i], ':');
        cr_assert(colon != NULL, "%s: expect-header: Name: Value", where);
        char name[128];
        snprintf(name, sizeof name, "%.*s", (int)(colon - st->hdr[i]), st->hdr[i]);
        const char *want = colon + 1;
        while (*want == ' ')
            want++;
        const char *got = resp_header(r, name);
        CHECK(got != NULL && (strcmp(want, "<<any>>") == 0 || strcmp(got, want) == 0),
              "%s: expected header %s: %s, got %s", where, name, want, got ? got : "(none)");
    }
    for (int i = 0; i < st->nnohdr; i++) {
        const char *got = resp_header(r, st->nohdr[i]);
        CHECK(got == NULL, "%s: expected no header %s, got %s", where, st->nohdr[i],
              got ? got : "");
    }
    if (st->same_as) {
        struct api_resp *e = earlier[st->same_as - 1];
        char eb[400];
        api_excerpt(e->body, e->len, eb, sizeof eb);
        CHECK(e->len == r->len && memcmp(e->body, r->body, r->len) == 0,
              "%s: expected the body of step %d byte for byte:\n  %s\ngot:\n  %s", where,
              st->same_as, eb, body);
    }
    for (int i = 0; i < st->nsql; i++) {
        PGresult *res = th_sql(run->db, st->sql[i], 0, NULL);
        const char *got = PQntuples(res) < 1 || PQnfields(res) < 1 ? "(no row)"
                          : PQgetisnull(res, 0, 0)                ? "NULL"
                                                                  : PQgetvalue(res, 0, 0);
        CHECK(strcmp(got, st->sql_want[i]) == 0, "%s: %s => expected %s, got %s", where,
              st->sql[i], st->sql_want[i], got);
        PQclear(res);
    }
#undef CHECK
    return ok;
}

/* What the daemon said it stored with this answer. */
API_UNUSED static int resp_created(const struct api_resp *r)
{
    if (r->status == 201)
        return 1;
    json_t *results = r->status == 200 && r->json ? json_object_get(r->json, "results") : NULL;
    int n = 0;
    size_t i;
    json_t *v;
    json_array_foreach(results, i, v)
    {
        const char *res = json_string_value(json_object_get(v, "result"));
        n += res && strcmp(res, "created") == 0;
    }
    return n;
}

/* Runs every step of a case against a running daemon. Returns whether all expectations held. */
API_UNUSED static bool case_run_steps(struct api_case *c, struct api_run *run)
{
    struct api_resp *got[API_MAX_STEPS] = {0};
    bool all = true;
    for (int s = 0; s < c->nsteps; s++) {
        struct api_step *st = &c->steps[s];
        struct api_resp *r = step_send(c, st, run);
        if (st->retry_ms > 0) {
            long long deadline = api_now_ms() + st->retry_ms;
            while (!step_check(c, s, r, got, run, false) && api_now_ms() < deadline) {
                api_sleep_ms(50);
                resp_free(r);
                r = step_send(c, st, run);
            }
        }
        if (strcmp(st->method, "POST") == 0)
            run->created += resp_created(r);
        if (getenv("ROLLOUT_TEST_VERBOSE")) {
            char ex[200];
            api_excerpt(r->body, r->len, ex, sizeof ex);
            cr_log_info("%s step %d: %s %.60s -> %d %s", c->name, s + 1, st->method, st->path,
                        r->status, ex);
        }
        all &= step_check(c, s, r, got, run, true);
        got[s] = r;
    }
    for (int s = 0; s < c->nsteps; s++)
        resp_free(got[s]);
    return all;
}

/* The case files of a directory, sorted. Returns the count. */
struct api_case_file {
    char file[120];
};

static int case_file_cmp(const void *a, const void *b)
{
    return strcmp(((const struct api_case_file *)a)->file, ((const struct api_case_file *)b)->file);
}

API_UNUSED static int case_list(const char *sub, struct api_case_file *out, int max)
{
    char dir[512];
    case_dir(sub, dir, sizeof dir);
    DIR *d = opendir(dir);
    if (d == NULL)
        return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < max) {
        size_t len = strlen(e->d_name);
        if (e->d_name[0] == '.' || len < 6 || len >= sizeof out[0].file ||
            strcmp(e->d_name + len - 5, ".case") != 0)
            continue;
        memcpy(out[n++].file, e->d_name, len + 1);
    }
    closedir(d);
    qsort(out, (size_t)n, sizeof out[0], case_file_cmp);
    return n;
}

/* An event as JSON text (for the C tests). extra: more members, e.g. ", \"note\": \"x\"". */
API_UNUSED static char *event_json(const char *id, const char *employee, const char *item,
                                   const char *state, const char *at, const char *extra)
{
    static const char fmt[] = "{\"event_id\": \"%s\", \"employee\": \"%s\", \"item\": \"%s\", "
                              "\"state\": \"%s\", \"occurred_at\": \"%s\"%s}";
    int n = snprintf(NULL, 0, fmt, id, employee, item, state, at, extra ? extra : "");
    char *s = malloc((size_t)n + 1);
    cr_assert(s != NULL, "out of memory");
    snprintf(s, (size_t)n + 1, fmt, id, employee, item, state, at, extra ? extra : "");
    return s;
}

/* The counters (progress_counter summed over its shards) against a recount of item_state. */
API_UNUSED static void expect_counters_match_item_state(struct th_db *db, const char *when)
{
    long long diff = th_sql_int(
        db, "SELECT count(*) FROM ("
            " (SELECT c.dienststelle, c.item, c.state::text, sum(c.n) AS n FROM progress_counter c"
            "   GROUP BY 1, 2, 3 HAVING sum(c.n) <> 0"
            "  EXCEPT"
            "  SELECT e.dienststelle, s.item, s.state::text, count(*) FROM item_state s"
            "   JOIN employee e ON e.id = s.employee_id GROUP BY 1, 2, 3)"
            " UNION ALL"
            " (SELECT e.dienststelle, s.item, s.state::text, count(*) FROM item_state s"
            "   JOIN employee e ON e.id = s.employee_id GROUP BY 1, 2, 3"
            "  EXCEPT"
            "  SELECT c.dienststelle, c.item, c.state::text, sum(c.n) FROM progress_counter c"
            "   GROUP BY 1, 2, 3 HAVING sum(c.n) <> 0)) x");
    cr_expect_eq(diff, 0, "%s: progress_counter differs from a recount of item_state in %lld "
                          "(office, item, state) rows",
                 when, diff);
}

#ifndef TEST_API_LIBRARY_ONLY

/* ========================================================================================== */
/* The data-driven contract cases: tests/api/cases/NNN-name.case                               */

#define CONTRACT_MAX 256

/* The daemon's first progress snapshot, and with it /readyz, waits progress.snapshot_refresh_ms
 * (250 by default): 20 ms makes every case's start about 0.25 s shorter, and /v1/progress
 * follow commits sooner. Added unless the case configures `progress` itself. */
#define CONTRACT_PROGRESS "progress = { snapshot_refresh_ms = 20; };\n"

static const char *contract_config(const char *extra)
{
    static char buf[4096];
    if (extra && strstr(extra, "progress"))
        return extra;
    snprintf(buf, sizeof buf, "%s%s", CONTRACT_PROGRESS, extra ? extra : "");
    return buf;
}

ParameterizedTestParameters(contract, case_file)
{
    struct api_case_file files[CONTRACT_MAX];
    int n = case_list("cases", files, CONTRACT_MAX);
    struct api_case_file *params = cr_malloc(sizeof files[0] * (size_t)(n ? n : 1));
    memcpy(params, files, sizeof files[0] * (size_t)n);
    return cr_make_param_array(struct api_case_file, params, (size_t)n);
}

ParameterizedTest(struct api_case_file *f, contract, case_file, .timeout = 120)
{
    char dir[512];
    case_dir("cases", dir, sizeof dir);
    struct th_db db;
    struct th_daemon d;
    struct api_tokens tokens = {0};
    struct api_case c;
    /* the port is not known before the start; no contract case uses {{port}} */
    case_load(&c, dir, f->file, 0, NULL);
    cr_log_info("%s: %s", c.name, c.description);
    th_db_create(&db);
    tokens_need(&tokens, &db, c.token);
    for (int s = 0; s < c.nsteps; s++)
        if (c.steps[s].token)
            tokens_need(&tokens, &db, c.steps[s].token);
    for (int i = 0; i < c.nsetup; i++)
        PQclear(th_sql(&db, c.setup[i], 0, NULL));
    th_daemon_start(&d, &db, contract_config(c.config));
    struct api_run run = {.d = &d, .db = &db, .tokens = &tokens};
    bool ok = case_run_steps(&c, &run);
    int st = th_daemon_stop(&d, SIGTERM);
    if (!ok) {
        char *log = th_daemon_log(&d);
        cr_log_error("%s failed; rolloutd's log:\n%s", c.name, log);
        free(log);
    }
    cr_expect_eq(st, 0, "%s: rolloutd exited with %d on SIGTERM", c.name, st);
    char *log = th_daemon_log(&d);
    cr_expect(strstr(log, " 500 ") == NULL, "%s: rolloutd answered 500; its log:\n%s", c.name,
              log);
    free(log);
    th_db_drop(&db);
    case_free(&c);
}

Test(contract, there_are_enough_cases)
{
    struct api_case_file files[CONTRACT_MAX];
    int n = case_list("cases", files, CONTRACT_MAX);
    cr_assert_geq(n, 40, "tests/api/cases holds %d cases; expected the whole contract (>= 40)", n);
}


/* ========================================================================================== */
/* What is easier said in C                                                                    */

struct fresh {
    struct th_db db;
    struct th_daemon d;
    char *admin;
};

static void fresh_start(struct fresh *f, const char *config)
{
    th_db_create(&f->db);
    f->admin = th_token(&f->db, "test-admin", "admin", NULL);
    th_daemon_start(&f->d, &f->db, contract_config(config));
}

static void fresh_stop(struct fresh *f)
{
    int st = th_daemon_stop(&f->d, SIGTERM);
    cr_expect_eq(st, 0, "rolloutd exited with %d on SIGTERM", st);
    th_db_drop(&f->db);
    free(f->admin);
}

static struct api_resp *post(struct fresh *f, const char *token, const char *body)
{
    return api_http(&f->d, "POST", "/v1/events", token, NULL, body, strlen(body));
}

/* The current state of an employee's item in the database ("none" when there is none). */
static char *db_state(struct th_db *db, const char *employee, const char *item)
{
    const char *params[] = {employee, item};
    PGresult *r = th_sql(db,
                         "SELECT coalesce((SELECT s.state::text FROM item_state s JOIN employee e "
                         "ON e.id = s.employee_id WHERE e.personnel_number = $1 AND s.item = $2), "
                         "'none')",
                         2, params);
    char *v = api_strdup(PQgetvalue(r, 0, 0));
    PQclear(r);
    return v;
}

/* ---- every transition --------------------------------------------------------------------- */

enum { S_NONE, S_PLANNED, S_ORDERED, S_DELIVERED, S_ACTIVE, S_RETURNED, S_CANCELLED, S_N };
static const char *const state_str[S_N] = {"none",   "planned",  "ordered",  "delivered",
                                           "active", "returned", "cancelled"};

/* Written out from DOMAIN.md: planned -> ordered -> delivered -> active, forwards with skips;
 * returned from active; cancelled from any state but active (not from nothing, not again);
 * returned and cancelled start again at planned or ordered. */
static const bool legal[S_N][S_N] = {
    /*                 none planned ordered delivered active returned cancelled */
    [S_NONE] = {false, true, true, true, true, false, false},
    [S_PLANNED] = {false, false, true, true, true, false, true},
    [S_ORDERED] = {false, false, false, true, true, false, true},
    [S_DELIVERED] = {false, false, false, false, true, false, true},
    [S_ACTIVE] = {false, false, false, false, false, true, false},
    [S_RETURNED] = {false, true, true, false, false, false, true},
    [S_CANCELLED] = {false, true, true, false, false, false, false},
};

/* How an employee's item is brought into a state by legal posts. */
static const int path_to[S_N][3] = {
    [S_NONE] = {-1},
    [S_PLANNED] = {S_PLANNED, -1},
    [S_ORDERED] = {S_ORDERED, -1},
    [S_DELIVERED] = {S_DELIVERED, -1},
    [S_ACTIVE] = {S_ACTIVE, -1},
    [S_RETURNED] = {S_ACTIVE, S_RETURNED, -1},
    [S_CANCELLED] = {S_PLANNED, S_CANCELLED, -1},
};

Test(contract_c, every_transition_through_the_api, .timeout = 120)
{
    static const char *const items[] = {"mobile_device", "hessen_smartphone", "hessen_voice",
                                        "wlan_autologin"};
    struct fresh f;
    fresh_start(&f, NULL);
    int slot = 0, checked = 0, stored = 0;
    for (int from = S_NONE; from < S_N; from++) {
        for (int to = S_PLANNED; to < S_N; to++, slot++) {
            char emp[16];
            snprintf(emp, sizeof emp, "P%07d", slot % 40 + 1);
            const char *item = items[slot / 40];
            char id[37], at[32];
            int prev = S_NONE, k = 0;
            for (; path_to[from][k] >= 0 && k < 3; k++) {
                th_uuid(id);
                snprintf(at, sizeof at, "2026-06-0%dT08:00:00Z", k + 1);
                char *ev = event_json(id, emp, item, state_str[path_to[from][k]], at, NULL);
                struct api_resp *r = post(&f, f.admin, ev);
                cr_assert_eq(r->status, 201, "driving %s %s to %s: posting %s got %d: %s", emp,
                             item, state_str[from], state_str[path_to[from][k]], r->status,
                             r->body);
                const char *ps = json_string_value(json_object_get(r->json, "previous_state"));
                cr_assert_str_eq(ps ? ps : "none", state_str[prev]);
                prev = path_to[from][k];
                stored++;
                resp_free(r);
                free(ev);
            }
            th_uuid(id);
            snprintf(at, sizeof at, "2026-06-0%dT08:00:00Z", k + 1);
            char *ev = event_json(id, emp, item, state_str[to], at, NULL);
            struct api_resp *r = post(&f, f.admin, ev);
            char *now = db_state(&f.db, emp, item);
            if (legal[from][to]) {
                cr_expect_eq(r->status, 201, "%s -> %s is legal: expected 201, got %d: %s",
                             state_str[from], state_str[to], r->status, r->body);
                const char *ps = json_string_value(json_object_get(r->json, "previous_state"));
                cr_expect_str_eq(ps ? ps : "none", state_str[from],
                                 "%s -> %s: previous_state %s", state_str[from], state_str[to],
                                 ps ? ps : "null");
                cr_expect(json_is_true(json_object_get(r->json, "applied")),
                          "%s -> %s: applied must be true: %s", state_str[from], state_str[to],
                          r->body);
                cr_expect_str_eq(now, state_str[to], "%s -> %s: the state is now %s",
                                 state_str[from], state_str[to], now);
                stored += r->status == 201;
            } else {
                cr_expect_eq(r->status, 409, "%s -> %s is illegal: expected 409, got %d: %s",
                             state_str[from], state_str[to], r->status, r->body);
                json_t *err = json_object_get(r->json, "error");
                cr_expect_str_eq(json_string_value(json_object_get(err, "code")) ?: "(none)",
                                 "illegal_transition", "%s -> %s: %s", state_str[from],
                                 state_str[to], r->body);
                json_t *cur = json_object_get(err, "current_state");
                cr_expect(from == S_NONE ? json_is_null(cur)
                                         : json_is_string(cur) &&
                                               strcmp(json_string_value(cur), state_str[from]) ==
                                                   0,
                          "%s -> %s: error.current_state must be %s: %s", state_str[from],
                          state_str[to], from == S_NONE ? "null" : state_str[from], r->body);
                const char *msg = json_string_value(json_object_get(err, "message"));
                cr_expect(from == S_NONE || (msg && strstr(msg, state_str[from])),
                          "%s -> %s: the message must name the current state: %s",
                          state_str[from], state_str[to], msg ? msg : "(none)");
                cr_expect_str_eq(now, state_str[from], "%s -> %s: the state moved to %s",
                                 state_str[from], state_str[to], now);
                const char *params[] = {id};
                PGresult *q = th_sql(&f.db, "SELECT count(*) FROM event WHERE event_id = $1", 1,
                                     params);
                cr_expect_str_eq(PQgetvalue(q, 0, 0), "0", "%s -> %s: the rejected event was "
                                                           "stored",
                                 state_str[from], state_str[to]);
                PQclear(q);
            }
            free(now);
            resp_free(r);
            free(ev);
            checked++;
        }
    }
    cr_expect_eq(checked, 42, "7 states (with none) times 6 targets");
    cr_expect_eq(th_sql_int(&f.db, "SELECT count(*) FROM event"), stored);
    expect_counters_match_item_state(&f.db, "after every transition");
    fresh_stop(&f);
}

/* ---- paging through a long history ------------------------------------------------------- */

/* Follows "next" from the first page of size limit; returns the event_ids in order (a JSON
 * array) and the number of pages. */
static json_t *all_pages(struct fresh *f, const char *employee, int limit, int *pages)
{
    json_t *ids = json_array();
    char path[512];
    char *cursor = NULL;
    *pages = 0;
    for (;;) {
        if (cursor)
            snprintf(path, sizeof path, "/v1/employees/%s/events?limit=%d&cursor=%s", employee,
                     limit, cursor);
        else
            snprintf(path, sizeof path, "/v1/employees/%s/events?limit=%d", employee, limit);
        free(cursor);
        cursor = NULL;
        struct api_resp *r = api_http(&f->d, "GET", path, f->admin, NULL, NULL, 0);
        cr_assert_eq(r->status, 200, "GET %s: %d %s", path, r->status, r->body);
        json_t *events = json_object_get(r->json, "events");
        json_t *next = json_object_get(r->json, "next");
        cr_assert(json_is_array(events), "GET %s: no events array: %s", path, r->body);
        cr_assert(json_is_null(next) || json_is_string(next), "GET %s: next must be a cursor or "
                                                             "null: %s",
                  path, r->body);
        cr_expect_leq(json_array_size(events), (size_t)limit, "GET %s: more than limit", path);
        size_t i;
        json_t *e;
        json_array_foreach(events, i, e) json_array_append(ids, json_object_get(e, "event_id"));
        (*pages)++;
        if (json_is_string(next)) {
            cr_expect_eq(json_array_size(events), (size_t)limit,
                         "GET %s: a page that is not full must be the last (next null)", path);
            cursor = api_strdup(json_string_value(next));
        }
        resp_free(r);
        if (cursor == NULL || *pages > 1000)
            break;
    }
    return ids;
}

Test(contract_c, history_pages_follow_next_without_gaps_or_repeats, .timeout = 120)
{
    struct fresh f;
    fresh_start(&f, NULL);
    /* 130 events of P0000001: the newest first (active), then 129 late ones, several sharing a
     * time, so that ties fall on page boundaries; plus another employee's, which must not show */
    struct abuf b = {0};
    abuf_puts(&b, "[");
    for (int i = 0; i < 130; i++) {
        char id[37], at[40], emp[16];
        th_uuid(id);
        /* i = 0 is the newest (a day later); of the late ones every three share a minute */
        if (i == 0)
            snprintf(at, sizeof at, "2026-05-02T08:00:00Z");
        else
            snprintf(at, sizeof at, "2026-05-01T%02d:%02d:00Z", 23 - (i / 3) / 60,
                     59 - (i / 3) % 60);
        snprintf(emp, sizeof emp, "P0000001");
        char *ev = event_json(id, emp, "mobile_device", i == 0 ? "active" : "ordered", at,
                              ", \"note\": \"history\"");
        abuf_puts(&b, i ? ", " : "");
        abuf_puts(&b, ev);
        free(ev);
    }
    char id[37];
    th_uuid(id);
    char *other = event_json(id, "P0000002", "mobile_device", "planned", "2026-05-01T12:00:00Z",
                             NULL);
    abuf_puts(&b, ", ");
    abuf_puts(&b, other);
    free(other);
    abuf_puts(&b, "]");
    struct api_resp *r = post(&f, f.admin, b.data);
    cr_assert_eq(r->status, 200, "posting the history: %d %s", r->status, r->body);
    cr_assert_eq(resp_created(r), 131, "all 131 events must be created: %s", r->body);
    resp_free(r);
    free(b.data);

    char *want_text = th_sql_text(
        &f.db, "SELECT json_agg(event_id ORDER BY occurred_at DESC, id DESC)::text FROM event "
               "WHERE employee_id = (SELECT id FROM employee WHERE personnel_number = 'P0000001')");
    json_t *want = json_loads(want_text, 0, NULL);
    free(want_text);
    cr_assert_eq(json_array_size(want), 130);

    static const int limits[] = {1, 7, 10, 129, 130, 1000};
    for (size_t k = 0; k < sizeof limits / sizeof limits[0]; k++) {
        int pages;
        json_t *got = all_pages(&f, "P0000001", limits[k], &pages);
        char *g = json_dumps(got, JSON_COMPACT);
        cr_expect(json_equal(got, want),
                  "limit=%d: the pages together must be the whole history, newest first, each "
                  "event once (%zu events in %d pages)",
                  limits[k], json_array_size(got), pages);
        int want_pages = (130 + limits[k] - 1) / limits[k];
        /* a last page that is exactly full may or may not be followed by an empty one */
        cr_expect(pages == want_pages || (130 % limits[k] == 0 && pages == want_pages + 1),
                  "limit=%d: %d pages, expected %d", limits[k], pages, want_pages);
        free(g);
        json_decref(got);
    }

    /* the default page is 100 events, with a cursor to the rest */
    r = api_http(&f.d, "GET", "/v1/employees/P0000001/events", f.admin, NULL, NULL, 0);
    cr_expect_eq(r->status, 200);
    cr_expect_eq(json_array_size(json_object_get(r->json, "events")), 100,
                 "the default limit is 100");
    cr_expect(json_is_string(json_object_get(r->json, "next")), "more are left: next is a cursor");
    json_t *first = json_object_get(json_array_get(json_object_get(r->json, "events"), 0),
                                    "event_id");
    cr_expect(json_equal(first, json_array_get(want, 0)), "newest first");
    resp_free(r);
    json_decref(want);
    fresh_stop(&f);
}

/* ---- access_log ------------------------------------------------------------------------- */

Test(contract_c, every_successful_read_and_only_those_is_in_access_log, .timeout = 120)
{
    struct fresh f;
    fresh_start(&f, NULL);
    char *fin = th_token(&f.db, "test-support-fin", "support", "HMdF");
    char *reader = th_token(&f.db, "test-reader", "reader", NULL);
    /* tokens made after the start reach the daemon within its refresh (1 s) */
    api_sleep_ms(1500);
    static const struct {
        int who; /* 0 admin, 1 support HMdF, 2 reader, 3 none */
        const char *path;
        int status;
        const char *action; /* NULL: must not be logged */
        const char *employee;
    } reads[] = {
        {0, "/v1/employees/P0000001", 200, "employee.show", "P0000001"},
        {0, "/v1/employees/P0000021/events", 200, "employee.events", "P0000021"},
        {1, "/v1/employees/P0000011", 200, "employee.show", "P0000011"},
        {1, "/v1/employees/P0000011/events?limit=5", 200, "employee.events", "P0000011"},
        {1, "/v1/employees/P0000021", 403, NULL, NULL},
        {1, "/v1/employees/P0000031/events", 403, NULL, NULL},
        {2, "/v1/employees/P0000001", 403, NULL, NULL},
        {3, "/v1/employees/P0000001", 401, NULL, NULL},
        {0, "/v1/employees/P9999999", 404, NULL, NULL},
        {0, "/v1/employees/P0000001/events?limit=0", 400, NULL, NULL},
        {0, "/v1/employees/P0000001/events?cursor=x", 400, NULL, NULL},
        {0, "/v1/progress", 200, NULL, NULL},
        {0, "/v1/employees/P0000001", 200, "employee.show", "P0000001"},
    };
    const char *tokens[] = {f.admin, fin, reader, NULL};
    const char *names[] = {"test-admin", "test-support-fin", "test-reader", ""};
    json_t *expected = json_array();
    for (size_t i = 0; i < sizeof reads / sizeof reads[0]; i++) {
        struct api_resp *r = api_http(&f.d, "GET", reads[i].path, tokens[reads[i].who], NULL,
                                      NULL, 0);
        cr_expect_eq(r->status, reads[i].status, "GET %s as %s: expected %d, got %d: %s",
                     reads[i].path, names[reads[i].who], reads[i].status, r->status, r->body);
        if (reads[i].action)
            json_array_append_new(expected, json_pack("[s, s, s]", names[reads[i].who],
                                                      reads[i].employee, reads[i].action));
        resp_free(r);
    }
    char *got_text = th_sql_text(
        &f.db, "SELECT coalesce(json_agg(json_build_array(t.name, e.personnel_number, a.action) "
               "ORDER BY a.id), '[]')::text FROM access_log a JOIN employee e ON e.id = "
               "a.employee_id LEFT JOIN api_token t ON t.id = a.token_id");
    json_t *got = json_loads(got_text, 0, NULL);
    char *want_text = json_dumps(expected, JSON_COMPACT);
    cr_expect(json_equal(got, expected),
              "access_log must hold one row per successful read (token, employee, action), in "
              "order, and nothing else:\n  expected %s\n  got      %s",
              want_text, got_text);
    cr_expect_eq(th_sql_int(&f.db, "SELECT count(*) FROM access_log WHERE at > now() - "
                                   "interval '1 minute' AND actor <> ''"),
                 (long long)json_array_size(expected), "each row has a time and an actor");
    free(want_text);
    free(got_text);
    json_decref(got);
    json_decref(expected);
    free(fin);
    free(reader);
    fresh_stop(&f);
}

#endif /* TEST_API_LIBRARY_ONLY */

/* bench/bare_evhttp: the ceiling for rolloutd's reads. A bare evhttp server on one libevent loop
 * (what rolloutd is built on) that answers fixed bytes from memory, with the same headers
 * rolloutd sends (Content-Type, X-Request-Id, Cache-Control, X-Content-Type-Options), so the
 * bytes on the wire are the same size. No routing table, no metrics, no logging, no JSON.
 *
 *   bare_evhttp PORT PATH FILE CONTENT-TYPE [PATH FILE CONTENT-TYPE]...
 *
 * Listens on 127.0.0.1:PORT until SIGTERM/SIGINT, with TCP_NODELAY (BARE_NAGLE=1: without).
 * Unknown paths get 404.
 * Built by bench/run: cc -O2 bench/bare_evhttp.c $(pkg-config --cflags --libs libevent) */
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct route {
    const char *path;
    const char *type;
    char *body;
    size_t len;
};

static struct route routes[8];
static int nroutes;

static char *slurp(const char *file, size_t *len)
{
    FILE *f = fopen(file, "rb");
    if (f == NULL)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc(n > 0 ? (size_t)n : 1);
    *len = n > 0 ? fread(buf, 1, (size_t)n, f) : 0;
    fclose(f);
    return buf;
}

static void on_request(struct evhttp_request *req, void *arg)
{
    (void)arg;
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
    for (int i = 0; path && i < nroutes; i++) {
        if (strcmp(path, routes[i].path) != 0)
            continue;
        struct evkeyvalq *h = evhttp_request_get_output_headers(req);
        evhttp_add_header(h, "Content-Type", routes[i].type);
        evhttp_add_header(h, "X-Request-Id", "6565a1b2000001");
        evhttp_add_header(h, "Cache-Control", "no-store");
        evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
        struct evbuffer *b = evbuffer_new();
        evbuffer_add_reference(b, routes[i].body, routes[i].len, NULL, NULL);
        evhttp_send_reply(req, 200, "OK", b);
        evbuffer_free(b);
        return;
    }
    evhttp_send_error(req, 404, NULL);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    event_base_loopbreak(arg);
}

int main(int argc, char **argv)
{
    if (argc < 5 || (argc - 2) % 3 != 0 || (argc - 2) / 3 > 8) {
        fprintf(stderr, "usage: %s PORT PATH FILE CONTENT-TYPE [PATH FILE CONTENT-TYPE]...\n",
                argv[0]);
        return 64;
    }
    for (int a = 2; a < argc; a += 3) {
        struct route *r = &routes[nroutes++];
        r->path = argv[a];
        r->type = argv[a + 2];
        r->body = slurp(argv[a + 1], &r->len);
        if (r->body == NULL) {
            perror(argv[a + 1]);
            return 66;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    /* as rolloutd's loop: epoll's adds and deletes batched (see daemon/src/main.c) */
    struct event_config *ec = event_config_new();
    event_config_set_flag(ec, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
    struct event_base *base = event_base_new_with_config(ec);
    event_config_free(ec);
    struct evhttp *http = evhttp_new(base);
    evhttp_set_gencb(http, on_request, NULL);
    struct evhttp_bound_socket *bound =
        evhttp_bind_socket_with_handle(http, "127.0.0.1", (ev_uint16_t)atoi(argv[1]));
    if (bound == NULL) {
        fprintf(stderr, "cannot listen on 127.0.0.1:%s\n", argv[1]);
        return 69;
    }
    /* Linux hands TCP_NODELAY on from the listening socket to the accepted ones. Without it,
     * an answer larger than bufferevent's 16 KiB write round waits for the client's delayed
     * ACK (about 40 ms) before its last segment goes out. BARE_NAGLE=1 leaves Nagle on. */
    const char *nagle = getenv("BARE_NAGLE");
    if (nagle == NULL || strcmp(nagle, "1") != 0) {
        int one = 1;
        setsockopt(evhttp_bound_socket_get_fd(bound), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    struct event *term = evsignal_new(base, SIGTERM, on_signal, base);
    struct event *intr = evsignal_new(base, SIGINT, on_signal, base);
    event_add(term, NULL);
    event_add(intr, NULL);
    event_base_dispatch(base);
    event_free(term);
    event_free(intr);
    evhttp_free(http);
    event_base_free(base);
    for (int i = 0; i < nroutes; i++)
        free(routes[i].body);
    return 0;
}

/* bench/idle_conns: opens N keep-alive connections to 127.0.0.1:PORT, sends one
 * "GET PATH HTTP/1.1" on each, reads the whole answer, and then holds them all open, idle,
 * until SIGTERM/SIGINT or HOLD seconds have passed. Prints "held N" (or "held K of N" when some
 * failed) on stdout once every connection has its answer, so a script can measure the server
 * while they are held.
 *
 *   idle_conns PORT N HOLD_SECONDS [PATH]
 *
 * Plain blocking sockets, one connection after the other, each with a 5 s receive timeout. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

/* Reads one HTTP answer with a Content-Length; true when it came whole. */
static int read_answer(int fd)
{
    char buf[8192];
    size_t have = 0;
    for (;;) {
        ssize_t n = recv(fd, buf + have, sizeof buf - 1 - have, 0);
        if (n <= 0)
            return 0;
        have += (size_t)n;
        buf[have] = '\0';
        char *end = strstr(buf, "\r\n\r\n");
        if (end == NULL) {
            if (have >= sizeof buf - 1)
                return 0;
            continue;
        }
        size_t body = 0;
        for (char *p = buf; p < end; p++) {
            if ((p == buf || p[-1] == '\n') && strncasecmp(p, "Content-Length:", 15) == 0) {
                body = (size_t)strtoul(p + 15, NULL, 10);
                break;
            }
        }
        if (have >= (size_t)(end + 4 - buf) + body)
            return strncmp(buf, "HTTP/1.1 200", 12) == 0;
        if (have >= sizeof buf - 1)
            return 0;
    }
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s PORT N HOLD_SECONDS [PATH]\n", argv[0]);
        return 64;
    }
    int port = atoi(argv[1]), n = atoi(argv[2]), hold = atoi(argv[3]);
    const char *path = argc > 4 ? argv[4] : "/healthz";
    if (n < 1 || n > 100000 || hold < 0 || hold > 3600) {
        fprintf(stderr, "N from 1 to 100000, HOLD_SECONDS from 0 to 3600\n");
        return 64;
    }
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    signal(SIGPIPE, SIG_IGN);
    char req[256];
    int reqlen = snprintf(req, sizeof req,
                          "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n",
                          path);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
    int *fds = calloc((size_t)n, sizeof *fds);
    int ok = 0;
    for (int i = 0; i < n && !stop; i++) {
        fds[i] = socket(AF_INET, SOCK_STREAM, 0);
        if (fds[i] < 0) {
            perror("socket");
            break;
        }
        struct timeval tv = {5, 0};
        setsockopt(fds[i], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        if (connect(fds[i], (struct sockaddr *)&sin, sizeof sin) != 0 ||
            send(fds[i], req, (size_t)reqlen, 0) != reqlen || !read_answer(fds[i])) {
            fprintf(stderr, "connection %d: %s\n", i, errno ? strerror(errno) : "bad answer");
            close(fds[i]);
            fds[i] = -1;
            continue;
        }
        ok++;
    }
    if (ok == n)
        printf("held %d\n", ok);
    else
        printf("held %d of %d\n", ok, n);
    fflush(stdout);
    for (int s = 0; s < hold * 10 && !stop; s++)
        usleep(100000);
    for (int i = 0; i < n; i++)
        if (fds[i] > 0)
            close(fds[i]);
    free(fds);
    return ok == n ? 0 : 1;
}

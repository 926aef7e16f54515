/*
 * blaster: the trivial SSE server that shows the load generator's own ceiling.
 *
 * One thread, epoll, no framework: GET /events subscribes (the response is a raw stream
 * with no chunking), POST /publish writes "data: BODY\n\n" to every subscriber at once
 * (one write each, buffered only for a socket whose buffer is full), GET /stream writes
 * events as fast as the socket takes them (one write per event; /stream-batched: 64 KiB
 * per write), and GET /stats answers {"subscribers": N}.
 * It does the least work an SSE server can do, so whatever the load generator measures
 * against it is the load generator's ceiling, not a server's.
 *
 * Usage: blaster PORT
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_FDS 65536
#define IN_MAX 8192
#define OUT_LIMIT (4 << 20)

enum kind { K_REQUEST, K_SUBSCRIBER, K_STREAM, K_STREAM1 };

struct client {
    int fd;
    enum kind kind;
    int in_len;
    char in[IN_MAX];
    char *out;
    size_t out_len, out_cap;
    int64_t seq;
};

static struct client *clients[MAX_FDS];
static int subscribers[MAX_FDS];
static int n_subscribers = 0;
static int epfd;

static int64_t now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void drop(struct client *c) {
    if (c->kind == K_SUBSCRIBER) {
        for (int i = 0; i < n_subscribers; i++) {
            if (subscribers[i] == c->fd) {
                subscribers[i] = subscribers[--n_subscribers];
                break;
            }
        }
    }
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    clients[c->fd] = NULL;
    free(c->out);
    free(c);
}

static void want_out(struct client *c, int on) {
    struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.fd = c->fd};
    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Writes now what the socket takes and buffers the rest; 0 on success, -1 when dropped. */
static int send_bytes(struct client *c, const char *data, size_t len) {
    if (c->out_len == 0) {
        ssize_t w = write(c->fd, data, len);
        if (w < 0) {
            if (errno != EAGAIN) return -1;
            w = 0;
        }
        data += w;
        len -= (size_t)w;
        if (len == 0) return 0;
        want_out(c, 1);
    }
    if (c->out_len + len > OUT_LIMIT) return -1;
    if (c->out_len + len > c->out_cap) {
        c->out_cap = (c->out_len + len) * 2;
        c->out = realloc(c->out, c->out_cap);
    }
    memcpy(c->out + c->out_len, data, len);
    c->out_len += len;
    return 0;
}

static void fill_stream(struct client *c) {
    char batch[65536];
    /* /stream writes one event per write(), as a generator view behind a WSGI or ASGI
     * server does; /stream-batched fills 64 KiB per write, the most a client can take. */
    size_t limit = c->kind == K_STREAM1 ? 200 : sizeof batch - 200;
    for (;;) {
        size_t n = 0;
        while (n < limit) {
            int k = snprintf(batch + n, 200, "data: @T%016lld S%08lld ", (long long)now_us(),
                             (long long)++c->seq);
            memset(batch + n + k, 'x', 100 - 26);
            n += (size_t)k + 100 - 26;
            batch[n++] = '\n';
            batch[n++] = '\n';
        }
        ssize_t w = write(c->fd, batch, n);
        if (w < (ssize_t)n) {
            if (w < 0 && errno != EAGAIN) {
                drop(c);
                return;
            }
            /* Keep the unwritten tail of this batch; the loop resumes when writable. */
            size_t done = w > 0 ? (size_t)w : 0;
            c->out_len = 0;
            send_bytes(c, batch + done, n - done);
            return;
        }
    }
}

static void flush_out(struct client *c) {
    while (c->out_len) {
        ssize_t w = write(c->fd, c->out, c->out_len);
        if (w < 0) {
            if (errno == EAGAIN) return;
            drop(c);
            return;
        }
        memmove(c->out, c->out + w, c->out_len - (size_t)w);
        c->out_len -= (size_t)w;
    }
    if (c->kind == K_STREAM || c->kind == K_STREAM1) {
        fill_stream(c);
        return;
    }
    want_out(c, 0);
}

static const char SSE_HEAD[] =
    "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
    "Connection: close\r\n\r\n: ok\n\n";

static void publish(const char *body, size_t len) {
    static char frame[4096];
    if (len > sizeof frame - 16) len = sizeof frame - 16;
    memcpy(frame, "data: ", 6);
    memcpy(frame + 6, body, len);
    memcpy(frame + 6 + len, "\n\n", 2);
    size_t flen = len + 8;
    for (int i = 0; i < n_subscribers; i++) {
        struct client *s = clients[subscribers[i]];
        if (send_bytes(s, frame, flen) < 0) {
            drop(s);
            i--;
        }
    }
}

/* Handles every complete request in c->in; returns -1 when the client was dropped. */
static int handle_requests(struct client *c) {
    for (;;) {
        char *end = memmem(c->in, (size_t)c->in_len, "\r\n\r\n", 4);
        if (!end) return 0;
        size_t head_len = (size_t)(end - c->in) + 4;
        long clen = 0;
        char *cl = strcasestr(c->in, "\r\ncontent-length:");
        if (cl && cl < end) clen = strtol(cl + 17, NULL, 10);
        if ((long)c->in_len < (long)head_len + clen) return 0;
        char reply[256];
        if (strncmp(c->in, "GET /events", 11) == 0) {
            c->kind = K_SUBSCRIBER;
            int one = 1;
            setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            subscribers[n_subscribers++] = c->fd;
            c->in_len = 0;
            return send_bytes(c, SSE_HEAD, sizeof SSE_HEAD - 1);
        }
        if (strncmp(c->in, "GET /stream", 11) == 0) {
            c->kind = strncmp(c->in, "GET /stream-batched", 19) == 0 ? K_STREAM : K_STREAM1;
            c->in_len = 0;
            if (send_bytes(c, SSE_HEAD, sizeof SSE_HEAD - 1) < 0) return -1;
            want_out(c, 1);
            return 0;
        }
        if (strncmp(c->in, "POST /publish", 13) == 0) {
            publish(c->in + head_len, (size_t)clen);
            snprintf(reply, sizeof reply, "HTTP/1.1 204 No Content\r\n\r\n");
        } else if (strncmp(c->in, "GET /stats", 10) == 0) {
            char body[64];
            int bl = snprintf(body, sizeof body, "{\"subscribers\":%d}", n_subscribers);
            snprintf(reply, sizeof reply,
                     "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
                     bl, body);
        } else {
            snprintf(reply, sizeof reply, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
        }
        if (send_bytes(c, reply, strlen(reply)) < 0) return -1;
        size_t used = head_len + (size_t)clen;
        memmove(c->in, c->in + used, (size_t)c->in_len - used);
        c->in_len -= (int)used;
        c->in[c->in_len] = 0;
    }
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: blaster PORT\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1]))};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (bind(lfd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(lfd, 4096) < 0) {
        perror("listen");
        return 1;
    }
    epfd = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd};
    epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &ev);
    static struct epoll_event evs[1024];
    for (;;) {
        int n = epoll_wait(epfd, evs, 1024, -1);
        for (int k = 0; k < n; k++) {
            int fd = evs[k].data.fd;
            if (fd == lfd) {
                for (;;) {
                    int cfd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK);
                    if (cfd < 0) break;
                    if (cfd >= MAX_FDS) {
                        close(cfd);
                        continue;
                    }
                    struct client *c = calloc(1, sizeof *c);
                    c->fd = cfd;
                    clients[cfd] = c;
                    struct epoll_event cev = {.events = EPOLLIN, .data.fd = cfd};
                    epoll_ctl(epfd, EPOLL_CTL_ADD, cfd, &cev);
                }
                continue;
            }
            struct client *c = clients[fd];
            if (!c) continue;
            if (evs[k].events & EPOLLOUT) {
                flush_out(c);
                if (!clients[fd]) continue;
            }
            if (evs[k].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                ssize_t r = read(fd, c->in + c->in_len, IN_MAX - 1 - (size_t)c->in_len);
                if (r <= 0) {
                    if (r < 0 && errno == EAGAIN) continue;
                    drop(c);
                    continue;
                }
                if (c->kind != K_REQUEST) continue; /* a subscriber sends nothing more */
                c->in_len += (int)r;
                c->in[c->in_len] = 0;
                if (handle_requests(c) < 0) drop(c);
            }
        }
    }
}

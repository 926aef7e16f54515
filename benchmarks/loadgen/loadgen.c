/*
 * loadgen: an epoll load generator for Server-Sent Events servers on 127.0.0.1.
 *
 * It opens N event-stream connections (GET PATH), parses just enough of each stream to
 * count events and read the publish timestamp embedded in each event's data, and (in the
 * fan-out and churn modes) publishes events itself at a fixed rate with HTTP POSTs. One
 * process, one thread, one epoll loop, so that on a 2-core machine it leaves a core to
 * the server.
 *
 * Event payload (the POST body, 100 bytes by default): "@T<16 digits> S<8 digits> xxxx...",
 * where T is CLOCK_MONOTONIC in microseconds when the publisher sent it (the same clock in
 * every process of the machine) and S a sequence number. A received event is any line of
 * the stream that contains "@T"; the timestamp gives the publish-to-receive latency and
 * the sequence number catches duplicates. Chunked transfer framing is not decoded: chunk
 * size lines contain no "@T", and every server measured writes whole events per chunk.
 *
 * Modes:
 *   idle     connect N, print "PHASE connected", hold them until stdin says "release"
 *            (or --hold seconds pass), then print the result.
 *   fanout   connect N, print "PHASE connected", wait for "go" on stdin (the driver checks
 *            the server counts N subscribers), publish --rate events/s for --duration
 *            seconds, then wait up to --drain seconds until every stream has every event.
 *            A stream the server ends is reconnected after --reconnect-ms with the
 *            Last-Event-ID it last saw, as a browser does.
 *   stream   one connection (or N) to a server-side generator: count events per second
 *            between --warmup and --warmup + --duration.
 *   churn    keep N connections open, each living a random 50..--life-ms ms, then closed
 *            (one in four with a reset), replaced at once; publish throughout.
 *
 * Targeted publishing (fan-out mode): with --path-pattern '/events?user=u%d' connection i
 * asks for that path with i in place of %d, and with --pub-path-pattern
 * '/publish?user=u%d' each publish is aimed at one of --pub-targets targets (default: the
 * connections), round-robin: publish k goes to target k mod T. A connection then expects
 * exactly the publishes aimed at its index that were answered 2xx (targets past the
 * connections, as in a publish-only run with --conns 0, are expected by nobody), and lost
 * is counted per connection against that.
 *
 * Output (stdout, one line each): "PHASE <name> ..." lines as phases change, and finally
 * "RESULT {json}". Everything is bounded in time; the process exits by itself.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

#define LINE_MAX_KEEP 160
#define ID_MAX 96
#define MAX_PUB 64
#define TAG_STDIN (-1)

enum cstate { C_IDLE, C_CONNECTING, C_HEADERS, C_STREAMING, C_WAIT_RECONNECT, C_DONE };

struct conn {
    int fd;
    int index;
    enum cstate state;
    int attempts;
    int got_status;        /* parsed status code, 0 before */
    int hdr_match;         /* how many bytes of "\r\n\r\n" matched */
    int hdr_len;
    char status_buf[16];
    int line_len;
    char line[LINE_MAX_KEEP];
    int id_len;
    char last_id[ID_MAX];
    uint64_t received;     /* unique events */
    uint64_t dups;
    int64_t max_seq;
    uint8_t *seen;         /* bitmap of sequence numbers received (fan-out mode) */
    int64_t reconnect_at;  /* µs, for C_WAIT_RECONNECT */
    int64_t close_at;      /* µs, churn mode */
    int reconnects;
    int ever_streamed;
    int64_t expected;      /* targeted publishing: publishes aimed here, answered 2xx */
};

struct pubconn {
    int fd;
    int busy;              /* a request is in flight */
    int connecting;
    int hdr_match;
    int status;
    int status_len;
    char status_buf[16];
    int64_t content_left;  /* body bytes still to skip, -1 while reading headers */
    int clen_state;
    char hdrline[128];
    int hdrline_len;
    int64_t pending_len;
    char pending[512];
    int64_t target;        /* targeted publishing: the target of the request in flight */
};

/* ---- options ---- */
static const char *opt_host = "127.0.0.1";
static int opt_port = 0;
static const char *opt_path = "/events";
static int opt_pub_port = 0;
static const char *opt_pub_path = "/publish";
static const char *opt_path_pattern = NULL;     /* per connection: %d is its index */
static const char *opt_pub_path_pattern = NULL; /* per publish: %d is its target */
static int opt_pub_targets = -1;                /* -1: as many as connections */
static int opt_pub_conns = 8;
static int opt_conns = 1;
static const char *opt_mode = "fanout";
static double opt_rate = 10;
static double opt_duration = 5;
static double opt_drain = 10;
static double opt_hold = 60;
static double opt_warmup = 1;
static double opt_connect_timeout = 60;
static int opt_size = 100;
static int opt_max_pending = 256;
static int opt_reconnect_ms = 1000;
static int opt_ready_on_sent = 0;
static int opt_life_ms = 2000;
static int opt_src_a = 0, opt_src_b = 0; /* source addresses 127.A.B.(1..250) */
static int opt_wait_go = 1;

static int epfd;
static struct conn *conns;
static int64_t seen_bits = 0;
static struct pubconn pubs[MAX_PUB];
static int n_pubs_open = 0;

/* ---- statistics ---- */
#define HIST_LINEAR 1024
#define HIST_SUB 64
#define HIST_BUCKETS (HIST_LINEAR + HIST_SUB * 40)
static uint64_t hist[HIST_BUCKETS];
static uint64_t hist_count = 0;
static int64_t lat_max = 0;
static uint64_t total_received = 0, total_dups = 0, total_bytes = 0;
static uint64_t window_received = 0;
static uint64_t published_ok = 0, published_fail = 0, publish_skipped = 0;
static uint64_t window_published = 0; /* publishes answered 2xx while measuring */
static int64_t pub_next_target = 0;
static uint64_t connects_ok = 0, connect_errors = 0, non200 = 0, server_closes = 0;
static uint64_t churn_closes = 0;
static int measuring = 0;       /* latency recorded only while measuring */
static int window_open = 0;     /* stream mode: counting window */
static int64_t first_pub_seq = 0;

static int64_t now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int hist_index(int64_t v) {
    if (v < 0) v = 0;
    if (v < HIST_LINEAR) return (int)v;
    int msb = 63 - __builtin_clzll((unsigned long long)v); /* >= 10 */
    int sub = (int)((v >> (msb - 6)) & (HIST_SUB - 1));
    int idx = HIST_LINEAR + (msb - 10) * HIST_SUB + sub;
    return idx < HIST_BUCKETS ? idx : HIST_BUCKETS - 1;
}

static int64_t hist_value(int idx) {
    if (idx < HIST_LINEAR) return idx;
    int k = idx - HIST_LINEAR;
    int msb = 10 + k / HIST_SUB;
    int sub = k % HIST_SUB;
    return ((int64_t)1 << msb) + ((int64_t)sub << (msb - 6)) + ((int64_t)1 << (msb - 7));
}

static int64_t hist_pct(double p) {
    if (hist_count == 0) return -1;
    uint64_t want = (uint64_t)(p * (double)hist_count);
    if (want >= hist_count) want = hist_count - 1;
    uint64_t seen = 0;
    for (int i = 0; i < HIST_BUCKETS; i++) {
        seen += hist[i];
        if (seen > want) return hist_value(i);
    }
    return lat_max;
}

static void die(const char *what) {
    perror(what);
    exit(2);
}

static void phase(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void phase(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("PHASE ", stdout);
    vfprintf(stdout, fmt, ap);
    fputc('\n', stdout);
    fflush(stdout);
    va_end(ap);
}

/* ---- subscriber connections ---- */

static void conn_open(struct conn *c);
static int pending_connects = 0;

static void conn_close_fd(struct conn *c, int reset) {
    if (c->fd < 0) return;
    if (c->state == C_CONNECTING) pending_connects--;
    if (reset) {
        struct linger lg = {1, 0};
        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
}

static void conn_schedule_reconnect(struct conn *c, int delay_ms) {
    conn_close_fd(c, 0);
    c->state = C_WAIT_RECONNECT;
    /* jitter so that a dropped crowd does not come back in one instant */
    int jitter = delay_ms > 0 ? rand() % (delay_ms / 2 + 1) : 0;
    c->reconnect_at = now_us() + (int64_t)(delay_ms + jitter) * 1000;
}

static void handle_line(struct conn *c, int64_t now) {
    char *l = c->line;
    int n = c->line_len;
    if (n > 0 && l[n - 1] == '\r') n--;
    if (n >= 3 && l[0] == 'i' && l[1] == 'd' && l[2] == ':') {
        int start = 3;
        if (start < n && l[start] == ' ') start++;
        int len = n - start;
        if (len >= ID_MAX) len = ID_MAX - 1;
        memcpy(c->last_id, l + start, (size_t)len);
        c->last_id[len] = 0;
        c->id_len = len;
        return;
    }
    char *mark = memmem(l, (size_t)n, "@T", 2);
    if (!mark) return;
    char *p = mark + 2, *end = l + n;
    int64_t ts = 0;
    while (p < end && *p >= '0' && *p <= '9') ts = ts * 10 + (*p++ - '0');
    int64_t seq = -1;
    if (p + 2 <= end && p[0] == ' ' && p[1] == 'S') {
        p += 2;
        seq = 0;
        while (p < end && *p >= '0' && *p <= '9') seq = seq * 10 + (*p++ - '0');
    }
    /* Publishes travel over several connections, so events may arrive out of order:
     * a bitmap, not the highest number seen, tells a duplicate. */
    if (seq >= 0 && c->seen && seq < seen_bits) {
        uint8_t bit = (uint8_t)(1u << (seq & 7));
        if (c->seen[seq >> 3] & bit) {
            c->dups++;
            total_dups++;
            return;
        }
        c->seen[seq >> 3] |= bit;
    }
    if (seq > c->max_seq) c->max_seq = seq;
    c->received++;
    total_received++;
    if (window_open) window_received++;
    if (measuring && seq >= first_pub_seq) {
        int64_t lat = now - ts;
        hist[hist_index(lat)]++;
        hist_count++;
        if (lat > lat_max) lat_max = lat;
    }
}

static void feed_body(struct conn *c, const char *buf, ssize_t n, int64_t now) {
    const char *p = buf, *end = buf + n;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *stop = nl ? nl : end;
        size_t take = (size_t)(stop - p);
        if (c->line_len + (int)take > LINE_MAX_KEEP) take = (size_t)(LINE_MAX_KEEP - c->line_len);
        memcpy(c->line + c->line_len, p, take);
        c->line_len += (int)take;
        if (!nl) break;
        handle_line(c, now);
        c->line_len = 0;
        p = nl + 1;
    }
}

static void conn_readable(struct conn *c, int64_t now) {
    static char buf[262144];
    for (;;) {
        ssize_t n = read(c->fd, buf, sizeof buf);
        if (n > 0) {
            total_bytes += (uint64_t)n;
            const char *p = buf;
            ssize_t left = n;
            if (c->state == C_HEADERS) {
                while (left > 0 && c->state == C_HEADERS) {
                    char ch = *p++;
                    left--;
                    if (c->hdr_len < (int)sizeof c->status_buf - 1) {
                        c->status_buf[c->hdr_len] = ch;
                        c->status_buf[c->hdr_len + 1] = 0;
                    }
                    c->hdr_len++;
                    static const char crlf2[] = "\r\n\r\n";
                    if (ch == crlf2[c->hdr_match]) {
                        if (++c->hdr_match == 4) {
                            int code = 0;
                            if (strncmp(c->status_buf, "HTTP/1.", 7) == 0) code = atoi(c->status_buf + 9);
                            c->got_status = code;
                            if (code != 200) {
                                non200++;
                                conn_close_fd(c, 0);
                                c->state = C_DONE;
                                return;
                            }
                            c->state = C_STREAMING;
                            if (!c->ever_streamed) connects_ok++;
                            c->ever_streamed = 1;
                        }
                    } else {
                        c->hdr_match = (ch == '\r') ? 1 : 0;
                    }
                }
            }
            if (left > 0 && c->state == C_STREAMING) feed_body(c, p, left, now);
            if (n < (ssize_t)sizeof buf) return;
            continue;
        }
        if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
            /* The server ended the stream (e.g. dropped a slow client): reconnect. */
            server_closes++;
            c->line_len = 0;
            conn_schedule_reconnect(c, opt_reconnect_ms);
            return;
        }
        if (errno == EAGAIN) return;
    }
}

/* A pattern holds exactly one %d and no other conversion: it is used as a format. */
static int valid_pattern(const char *pattern) {
    int conversions = 0;
    for (const char *p = pattern; *p; p++) {
        if (*p != '%') continue;
        if (p[1] == 'd') {
            conversions++;
            p++;
        } else {
            return 0;
        }
    }
    return conversions == 1 && strlen(pattern) < 200;
}

static const char *conn_path(const struct conn *c, char *buf, size_t size) {
    if (!opt_path_pattern) return opt_path;
    snprintf(buf, size, opt_path_pattern, c->index);
    return buf;
}

static void conn_send_request(struct conn *c) {
    char req[512];
    char path_buf[256];
    const char *path = conn_path(c, path_buf, sizeof path_buf);
    int len;
    if (c->id_len > 0)
        len = snprintf(req, sizeof req,
                       "GET %s HTTP/1.1\r\nHost: %s:%d\r\nAccept: text/event-stream\r\n"
                       "Cache-Control: no-cache\r\nLast-Event-ID: %s\r\n\r\n",
                       path, opt_host, opt_port, c->last_id);
    else
        len = snprintf(req, sizeof req,
                       "GET %s HTTP/1.1\r\nHost: %s:%d\r\nAccept: text/event-stream\r\n"
                       "Cache-Control: no-cache\r\n\r\n",
                       path, opt_host, opt_port);
    ssize_t w = write(c->fd, req, (size_t)len);
    if (w != len) {
        connect_errors++;
        conn_schedule_reconnect(c, 100);
        return;
    }
    c->state = C_HEADERS;
    c->hdr_match = 0;
    c->hdr_len = 0;
    c->status_buf[0] = 0;
    c->line_len = 0;
    if (opt_ready_on_sent && !c->ever_streamed) {
        /* Servers that send no header before the first event (flask-sse): count the
         * connection as made once the request is out; the driver checks the server. */
        c->state = C_HEADERS;
        connects_ok++;
        c->ever_streamed = 1;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = (uint64_t)c->index};
    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

static int make_socket(int src_index) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (opt_src_a || opt_src_b) {
        /* Spread connections over many 127/8 source addresses, so that tens of
         * thousands of connections and the TIME_WAITs of earlier runs never run out of
         * ephemeral ports towards one server port. */
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        struct sockaddr_in src = {.sin_family = AF_INET, .sin_port = 0};
        char ip[32];
        snprintf(ip, sizeof ip, "127.%d.%d.%d", opt_src_a, opt_src_b, 1 + src_index % 250);
        inet_pton(AF_INET, ip, &src.sin_addr);
        if (bind(fd, (struct sockaddr *)&src, sizeof src) < 0) {
            close(fd);
            return -1;
        }
    }
    return fd;
}

static int connect_to(int fd, int port) {
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, opt_host, &sa.sin_addr);
    int r = connect(fd, (struct sockaddr *)&sa, sizeof sa);
    if (r < 0 && errno != EINPROGRESS) return -1;
    return 0;
}

static void conn_open(struct conn *c) {
    int fd = make_socket(c->index);
    if (fd < 0 || connect_to(fd, opt_port) < 0) {
        if (fd >= 0) close(fd);
        connect_errors++;
        c->attempts++;
        conn_schedule_reconnect(c, 200);
        return;
    }
    c->fd = fd;
    c->state = C_CONNECTING;
    c->attempts++;
    pending_connects++;
    struct epoll_event ev = {.events = EPOLLOUT, .data.u64 = (uint64_t)c->index};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0) die("epoll_ctl");
}

static void conn_writable(struct conn *c) {
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    pending_connects--;
    c->state = C_HEADERS; /* no longer pending, whatever happens next */
    if (err) {
        connect_errors++;
        conn_schedule_reconnect(c, 200);
        return;
    }
    conn_send_request(c);
}

/* ---- publisher connections (keep-alive, one request in flight each) ---- */

static char payload_pad[4096];

static void pub_close(int i) {
    struct pubconn *p = &pubs[i];
    if (p->fd >= 0) {
        epoll_ctl(epfd, EPOLL_CTL_DEL, p->fd, NULL);
        close(p->fd);
        n_pubs_open--;
    }
    if (p->busy) published_fail++;
    memset(p, 0, sizeof *p);
    p->fd = -1;
}

static void pub_flush(int i) {
    struct pubconn *p = &pubs[i];
    if (p->pending_len == 0) return;
    ssize_t w = write(p->fd, p->pending, (size_t)p->pending_len);
    if (w == p->pending_len) {
        p->pending_len = 0;
        struct epoll_event ev = {.events = EPOLLIN, .data.u64 = (uint64_t)(1000000 + i)};
        epoll_ctl(epfd, EPOLL_CTL_MOD, p->fd, &ev);
    } else if (w > 0) {
        memmove(p->pending, p->pending + w, (size_t)(p->pending_len - w));
        p->pending_len -= w;
    } else if (errno != EAGAIN) {
        pub_close(i);
    }
}

static int64_t next_seq = 1;

static int pub_send(int64_t now) {
    int idle = -1, free_slot = -1;
    for (int i = 0; i < opt_pub_conns; i++) {
        if (pubs[i].fd >= 0 && !pubs[i].busy) { idle = i; break; }
        if (pubs[i].fd < 0 && free_slot < 0) free_slot = i;
    }
    int i = idle;
    if (i < 0) {
        if (free_slot < 0) return -1;
        i = free_slot;
        int fd = make_socket(0);
        if (fd < 0 || connect_to(fd, opt_pub_port) < 0) {
            if (fd >= 0) close(fd);
            return -1;
        }
        memset(&pubs[i], 0, sizeof pubs[i]);
        pubs[i].fd = fd;
        pubs[i].connecting = 1;
        n_pubs_open++;
        struct epoll_event ev = {.events = EPOLLOUT, .data.u64 = (uint64_t)(1000000 + i)};
        epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
    }
    struct pubconn *p = &pubs[i];
    char body[4096];
    int blen = snprintf(body, sizeof body, "@T%016lld S%08lld ", (long long)now, (long long)next_seq);
    if (blen < opt_size) {
        memcpy(body + blen, payload_pad, (size_t)(opt_size - blen));
        blen = opt_size;
    }
    next_seq++;
    const char *pub_path = opt_pub_path;
    char pub_path_buf[256];
    p->target = -1;
    if (opt_pub_path_pattern) {
        p->target = pub_next_target;
        pub_next_target = (pub_next_target + 1) % opt_pub_targets;
        snprintf(pub_path_buf, sizeof pub_path_buf, opt_pub_path_pattern, (int)p->target);
        pub_path = pub_path_buf;
    }
    p->pending_len = snprintf(p->pending, sizeof p->pending,
                              "POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: text/plain\r\n"
                              "Content-Length: %d\r\n\r\n%.*s",
                              pub_path, opt_host, opt_pub_port, blen, blen, body);
    p->busy = 1;
    p->content_left = -1;
    p->hdr_match = 0;
    p->status_len = 0;
    p->hdrline_len = 0;
    if (!p->connecting) {
        struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.u64 = (uint64_t)(1000000 + i)};
        epoll_ctl(epfd, EPOLL_CTL_MOD, p->fd, &ev);
        pub_flush(i);
    }
    return 0;
}

static void pub_readable(int i) {
    struct pubconn *p = &pubs[i];
    char buf[8192];
    for (;;) {
        ssize_t n = read(p->fd, buf, sizeof buf);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
            pub_close(i);
            return;
        }
        if (n < 0) return;
        for (ssize_t k = 0; k < n; k++) {
            char ch = buf[k];
            if (p->content_left < 0) {
                if (p->status_len < (int)sizeof p->status_buf - 1) {
                    p->status_buf[p->status_len++] = ch;
                    p->status_buf[p->status_len] = 0;
                }
                if (ch == '\n') {
                    p->hdrline[p->hdrline_len < 127 ? p->hdrline_len : 127] = 0;
                    if (strncasecmp(p->hdrline, "content-length:", 15) == 0)
                        p->clen_state = atoi(p->hdrline + 15);
                    if (p->hdrline_len <= 1) {
                        /* end of headers */
                        p->content_left = p->clen_state;
                        p->status = atoi(p->status_buf + 9);
                    }
                    p->hdrline_len = 0;
                } else if (p->hdrline_len < 127) {
                    p->hdrline[p->hdrline_len++] = ch;
                }
            } else if (p->content_left > 0) {
                p->content_left--;
            }
            if (p->content_left == 0 && p->busy) {
                if (p->status >= 200 && p->status < 300) {
                    published_ok++;
                    if (measuring) window_published++;
                    if (p->target >= 0 && p->target < opt_conns) conns[p->target].expected++;
                } else {
                    published_fail++;
                }
                p->busy = 0;
                p->clen_state = 0;
                p->content_left = -1;
                p->status_len = 0;
                p->hdrline_len = 0;
            }
        }
    }
}

static void pub_event(int i, uint32_t events) {
    struct pubconn *p = &pubs[i];
    if (p->connecting && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err) {
            pub_close(i);
            return;
        }
        p->connecting = 0;
    }
    if (events & EPOLLOUT) pub_flush(i);
    if (p->fd >= 0 && (events & (EPOLLIN | EPOLLHUP | EPOLLERR))) pub_readable(i);
}

/* ---- main loop ---- */

static char stdin_buf[256];
static int stdin_len = 0;
static int got_go = 0, got_release = 0, stdin_eof = 0;

static void read_stdin(void) {
    ssize_t n = read(0, stdin_buf + stdin_len, sizeof stdin_buf - 1 - (size_t)stdin_len);
    if (n <= 0) {
        if (n == 0 || errno != EAGAIN) {
            stdin_eof = 1;
            epoll_ctl(epfd, EPOLL_CTL_DEL, 0, NULL);
        }
        return;
    }
    stdin_len += (int)n;
    stdin_buf[stdin_len] = 0;
    char *nl;
    while ((nl = strchr(stdin_buf, '\n'))) {
        *nl = 0;
        if (strcmp(stdin_buf, "go") == 0) got_go = 1;
        if (strcmp(stdin_buf, "release") == 0) got_release = 1;
        size_t rest = (size_t)stdin_len - (size_t)(nl + 1 - stdin_buf);
        memmove(stdin_buf, nl + 1, rest);
        stdin_len = (int)rest;
        stdin_buf[stdin_len] = 0;
    }
}

static void poll_once(int timeout_ms) {
    static struct epoll_event evs[4096];
    int n = epoll_wait(epfd, evs, 4096, timeout_ms);
    if (n < 0 && errno != EINTR) die("epoll_wait");
    int64_t now = now_us();
    for (int k = 0; k < n; k++) {
        if (evs[k].data.u64 == (uint64_t)-1) {
            read_stdin();
            continue;
        }
        uint64_t id = evs[k].data.u64;
        if (id >= 1000000) {
            pub_event((int)(id - 1000000), evs[k].events);
            continue;
        }
        struct conn *c = &conns[id];
        if (c->fd < 0) continue;
        if (c->state == C_CONNECTING) {
            conn_writable(c);
        } else if (c->state == C_HEADERS || c->state == C_STREAMING) {
            conn_readable(c, now);
        }
    }
}

static int next_to_open = 0;

/* Opens connections within the pending-connect cap; reconnects those due. */
static void maintain(int64_t now) {
    while (next_to_open < opt_conns && pending_connects < opt_max_pending) {
        conn_open(&conns[next_to_open++]);
    }
    for (int i = 0; i < next_to_open; i++) {
        struct conn *c = &conns[i];
        if (c->state == C_WAIT_RECONNECT && now >= c->reconnect_at && pending_connects < opt_max_pending) {
            if (c->ever_streamed) c->reconnects++;
            conn_open(c);
        }
    }
}

static int count_state(enum cstate s) {
    int k = 0;
    for (int i = 0; i < opt_conns; i++) k += conns[i].state == s;
    return k;
}

static int count_ready(void) {
    int k = 0;
    for (int i = 0; i < opt_conns; i++) {
        if (conns[i].state == C_STREAMING) k++;
        else if (opt_ready_on_sent && conns[i].state == C_HEADERS) k++;
    }
    return k;
}

static void raise_nofile(void) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static double self_cpu(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* The load generator's own CPU from the start of the measured phase: against a busy
 * server it shows that the generator had room to spare. */
static double cpu_at_start = 0;

/* What connection i should have received: every publish, or those aimed at it. */
static int64_t expected_of(const struct conn *c, int64_t expected) {
    if (expected >= 0 && opt_pub_path_pattern) return c->expected;
    return expected;
}

static void print_result(const char *mode, int64_t all_expected, double pub_seconds, int held) {
    uint64_t lost = 0, complete = 0, min_recv = UINT64_MAX, max_recv = 0;
    int64_t expected_total = 0;
    int reconnects = 0;
    for (int i = 0; i < opt_conns; i++) {
        struct conn *c = &conns[i];
        int64_t expected = expected_of(c, all_expected);
        if (expected > 0) expected_total += expected;
        if (expected >= 0 && (int64_t)c->received < expected) lost += (uint64_t)(expected - (int64_t)c->received);
        if (expected >= 0 && (int64_t)c->received >= expected) complete++;
        if (c->received < min_recv) min_recv = c->received;
        if (c->received > max_recv) max_recv = c->received;
        reconnects += c->reconnects;
    }
    if (opt_conns == 0) min_recv = 0;
    printf("RESULT {\"mode\":\"%s\",\"conns\":%d,\"connected\":%llu,\"held\":%d,"
           "\"connect_errors\":%llu,\"non200\":%llu,\"server_closes\":%llu,\"reconnects\":%d,"
           "\"published\":%llu,\"publish_failed\":%llu,\"publish_skipped\":%llu,"
           "\"publish_seconds\":%.3f,\"expected_per_conn\":%lld,\"expected_total\":%lld,"
           "\"targeted\":%d,\"window_published\":%llu,"
           "\"received\":%llu,\"dups\":%llu,\"lost\":%llu,\"complete_conns\":%llu,"
           "\"min_per_conn\":%llu,\"max_per_conn\":%llu,\"bytes\":%llu,"
           "\"window_events\":%llu,\"window_seconds\":%.3f,"
           "\"lat_samples\":%llu,\"p50_us\":%lld,\"p90_us\":%lld,\"p99_us\":%lld,\"max_us\":%lld,"
           "\"churn_closes\":%llu,\"loadgen_cpu_s\":%.3f}\n",
           mode, opt_conns, (unsigned long long)connects_ok, held,
           (unsigned long long)connect_errors, (unsigned long long)non200,
           (unsigned long long)server_closes, reconnects, (unsigned long long)published_ok,
           (unsigned long long)published_fail, (unsigned long long)publish_skipped, pub_seconds,
           (long long)(opt_pub_path_pattern ? -1 : all_expected), (long long)expected_total,
           opt_pub_path_pattern != NULL, (unsigned long long)window_published,
           (unsigned long long)total_received, (unsigned long long)total_dups,
           (unsigned long long)lost, (unsigned long long)complete, (unsigned long long)min_recv,
           (unsigned long long)max_recv, (unsigned long long)total_bytes,
           (unsigned long long)window_received, opt_duration, (unsigned long long)hist_count,
           (long long)hist_pct(0.50), (long long)hist_pct(0.90), (long long)hist_pct(0.99),
           (long long)lat_max, (unsigned long long)churn_closes, self_cpu() - cpu_at_start);
    fflush(stdout);
}

/* Connects everything, bounded by --connect-timeout. Returns how many are ready. */
static int connect_all(void) {
    int64_t deadline = now_us() + (int64_t)(opt_connect_timeout * 1e6);
    int64_t last_report = now_us();
    for (;;) {
        int64_t now = now_us();
        maintain(now);
        int ready = count_ready();
        if (ready >= opt_conns || now > deadline) return ready;
        if (now - last_report > 1000000) {
            last_report = now;
            fprintf(stderr, "loadgen: %d/%d connected\n", ready, opt_conns);
        }
        poll_once(20);
    }
}

static void usage(void) {
    fprintf(stderr,
            "usage: loadgen --port P [--path /events] [--conns N] [--mode idle|fanout|stream|churn]\n"
            "  [--rate EV_PER_S] [--duration S] [--drain S] [--hold S] [--warmup S]\n"
            "  [--pub-port P] [--pub-path /publish] [--size BYTES] [--src A.B]\n"
            "  [--connect-timeout S] [--max-pending N] [--reconnect-ms MS] [--ready-on-sent]\n"
            "  [--life-ms MS] [--no-wait-go] [--path-pattern '/events?user=u%%d']\n"
            "  [--pub-path-pattern '/publish?user=u%%d'] [--pub-targets N] [--pub-conns N]\n");
    exit(2);
}

int main(int argc, char **argv) {
    static struct option longopts[] = {
        {"host", 1, 0, 'h'},        {"port", 1, 0, 'p'},         {"path", 1, 0, 'P'},
        {"conns", 1, 0, 'n'},       {"mode", 1, 0, 'm'},         {"rate", 1, 0, 'r'},
        {"duration", 1, 0, 'd'},    {"drain", 1, 0, 'D'},        {"hold", 1, 0, 'H'},
        {"warmup", 1, 0, 'w'},      {"pub-port", 1, 0, 'q'},     {"pub-path", 1, 0, 'Q'},
        {"size", 1, 0, 's'},        {"src", 1, 0, 'S'},          {"connect-timeout", 1, 0, 'T'},
        {"max-pending", 1, 0, 'x'}, {"reconnect-ms", 1, 0, 'R'}, {"ready-on-sent", 0, 0, 'y'},
        {"life-ms", 1, 0, 'l'},     {"no-wait-go", 0, 0, 'g'},   {"path-pattern", 1, 0, 'a'},
        {"pub-path-pattern", 1, 0, 'b'}, {"pub-targets", 1, 0, 'c'}, {"pub-conns", 1, 0, 'e'},
        {0, 0, 0, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (ch) {
        case 'h': opt_host = optarg; break;
        case 'p': opt_port = atoi(optarg); break;
        case 'P': opt_path = optarg; break;
        case 'n': opt_conns = atoi(optarg); break;
        case 'm': opt_mode = optarg; break;
        case 'r': opt_rate = atof(optarg); break;
        case 'd': opt_duration = atof(optarg); break;
        case 'D': opt_drain = atof(optarg); break;
        case 'H': opt_hold = atof(optarg); break;
        case 'w': opt_warmup = atof(optarg); break;
        case 'q': opt_pub_port = atoi(optarg); break;
        case 'Q': opt_pub_path = optarg; break;
        case 's': opt_size = atoi(optarg); break;
        case 'S': sscanf(optarg, "%d.%d", &opt_src_a, &opt_src_b); break;
        case 'T': opt_connect_timeout = atof(optarg); break;
        case 'x': opt_max_pending = atoi(optarg); break;
        case 'R': opt_reconnect_ms = atoi(optarg); break;
        case 'y': opt_ready_on_sent = 1; break;
        case 'l': opt_life_ms = atoi(optarg); break;
        case 'g': opt_wait_go = 0; break;
        case 'a': opt_path_pattern = optarg; break;
        case 'b': opt_pub_path_pattern = optarg; break;
        case 'c': opt_pub_targets = atoi(optarg); break;
        case 'e': opt_pub_conns = atoi(optarg); break;
        default: usage();
        }
    }
    if (opt_port <= 0 || opt_conns < 0 || opt_size < 40 || opt_size > 2000) usage();
    if (opt_pub_conns < 1 || opt_pub_conns > MAX_PUB) usage();
    if (opt_path_pattern && !valid_pattern(opt_path_pattern)) usage();
    if (opt_pub_path_pattern && !valid_pattern(opt_pub_path_pattern)) usage();
    if (opt_pub_targets < 0) opt_pub_targets = opt_conns;
    if (opt_pub_path_pattern && opt_pub_targets < 1) usage();
    if (opt_pub_port <= 0) opt_pub_port = opt_port;
    signal(SIGPIPE, SIG_IGN);
    raise_nofile();
    srand((unsigned)getpid());
    memset(payload_pad, 'x', sizeof payload_pad);
    for (int i = 0; i < MAX_PUB; i++) pubs[i].fd = -1;
    conns = calloc((size_t)(opt_conns ? opt_conns : 1), sizeof *conns);
    if (!conns) die("calloc");
    if (strcmp(opt_mode, "fanout") == 0)
        seen_bits = (int64_t)(opt_rate * (opt_duration + opt_warmup) * 1.2) + 1024;
    for (int i = 0; i < opt_conns; i++) {
        if (seen_bits) {
            conns[i].seen = calloc((size_t)(seen_bits / 8 + 1), 1);
            if (!conns[i].seen) die("calloc");
        }
        conns[i].fd = -1;
        conns[i].index = i;
        conns[i].state = C_IDLE;
        conns[i].max_seq = -1;
    }
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0) die("epoll_create1");
    fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
    struct epoll_event sev = {.events = EPOLLIN, .data.u64 = (uint64_t)-1};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, 0, &sev) < 0) stdin_eof = 1;

    int ready = connect_all();
    phase("connected %d %llu", ready, (unsigned long long)connect_errors);

    if (strcmp(opt_mode, "idle") == 0) {
        int64_t until = now_us() + (int64_t)(opt_hold * 1e6);
        while (!got_release && !stdin_eof && now_us() < until) {
            maintain(now_us());
            poll_once(100);
        }
        print_result("idle", -1, 0, count_ready());
        return 0;
    }

    if (strcmp(opt_mode, "stream") == 0) {
        int64_t t0 = now_us();
        int64_t w0 = t0 + (int64_t)(opt_warmup * 1e6);
        int64_t w1 = w0 + (int64_t)(opt_duration * 1e6);
        measuring = 1;
        cpu_at_start = self_cpu();
        for (;;) {
            int64_t now = now_us();
            if (now >= w1) break;
            window_open = now >= w0;
            poll_once(5);
        }
        window_open = 0;
        print_result("stream", -1, opt_duration, count_state(C_STREAMING));
        return 0;
    }

    int churn = strcmp(opt_mode, "churn") == 0;
    if (!churn && strcmp(opt_mode, "fanout") != 0) usage();

    if (opt_wait_go) {
        /* The driver checks that the server counts every subscriber, then says go. */
        int64_t until = now_us() + 120 * 1000000LL;
        while (!got_go && !stdin_eof && now_us() < until) {
            maintain(now_us());
            poll_once(50);
        }
    }
    /* Streams that the server ended before publishing starts are back before it. */
    /* The first --warmup seconds of publishing are delivered and counted as expected,
     * but their latency is not recorded and the measured window starts after them: the
     * first events meet cold caches, lazy imports and fresh greenlets. */
    phase("publish_start");
    int warm = opt_warmup > 0;
    int64_t t_measure = now_us() + (int64_t)(opt_warmup * 1e6);
    if (!warm) {
        measuring = 1;
        window_open = 1;
        first_pub_seq = 1;
        phase("measure_start");
        cpu_at_start = self_cpu();
    }
    int64_t t0 = now_us();
    int64_t interval = (int64_t)(1e6 / opt_rate);
    int64_t next_pub = t0;
    int64_t t_end = t0 + (int64_t)((opt_duration + (warm ? opt_warmup : 0)) * 1e6);
    int64_t last_maint = 0;
    if (churn) {
        for (int i = 0; i < opt_conns; i++) conns[i].close_at = t0 + (rand() % opt_life_ms) * 1000LL;
    }
    for (;;) {
        int64_t now = now_us();
        if (now >= t_end) break;
        if (warm && now >= t_measure) {
            warm = 0;
            measuring = 1;
            window_open = 1;
            first_pub_seq = next_seq;
            phase("measure_start");
            cpu_at_start = self_cpu();
        }
        while (next_pub <= now) {
            if (pub_send(now) < 0) publish_skipped++;
            next_pub += interval;
        }
        if (churn) {
            for (int i = 0; i < opt_conns; i++) {
                struct conn *c = &conns[i];
                if (c->state != C_WAIT_RECONNECT && c->state != C_IDLE && now >= c->close_at) {
                    conn_close_fd(c, rand() % 4 == 0);
                    churn_closes++;
                    c->id_len = 0; /* a new visitor, not a resume */
                    c->state = C_WAIT_RECONNECT;
                    c->reconnect_at = now;
                    c->close_at = now + (50 + rand() % opt_life_ms) * 1000LL;
                }
            }
        }
        if (now - last_maint > 10000) {
            maintain(now);
            last_maint = now;
        }
        int64_t wait = (next_pub - now) / 1000;
        /* From 500 publishes/s the next one is often less than a millisecond away: wait
         * a millisecond and send what is due in one go, rather than spin on a core the
         * server needs. (The payload's timestamp is taken when sent, so latency is not
         * affected; the lower rates of the fan-out scenarios keep their exact timing.) */
        if (interval <= 2000 && wait < 1 && next_pub > now) wait = 1;
        poll_once(wait < 0 ? 0 : (wait > 10 ? 10 : (int)wait));
    }
    double pub_seconds = (double)(now_us() - t_measure) / 1e6;
    /* Wait for in-flight publishes to be answered (bounded). */
    int64_t until = now_us() + 5000000;
    for (;;) {
        int busy = 0;
        for (int i = 0; i < opt_pub_conns; i++) busy += pubs[i].fd >= 0 && pubs[i].busy;
        if (!busy || now_us() > until) break;
        poll_once(10);
    }
    phase("publish_end %llu", (unsigned long long)published_ok);
    int64_t expected = churn ? -1 : (int64_t)published_ok;
    if (!churn) {
        int64_t drain_until = now_us() + (int64_t)(opt_drain * 1e6);
        for (;;) {
            int64_t now = now_us();
            int all = 1;
            for (int i = 0; i < opt_conns; i++) {
                if ((int64_t)conns[i].received < expected_of(&conns[i], expected) &&
                    conns[i].state != C_DONE) {
                    all = 0;
                    break;
                }
            }
            if (all || now > drain_until) break;
            maintain(now);
            poll_once(10);
        }
    }
    phase("drained");
    measuring = 0;
    window_open = 0;
    print_result(churn ? "churn" : "fanout", expected, pub_seconds, count_ready());
    return 0;
}

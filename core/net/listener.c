/* listener.c - the listening socket and its accept loop.
 *
 * moonwire listens itself and hands every accepted socket to ws.c (which keeps
 * WebSocket upgrades and gives plain HTTP to libwebsockets), rather than using lws's
 * listener, because:
 * - `workers: N` needs SO_REUSEPORT, and libwebsockets 4.1 sets it only when built for
 *   several service threads (LWS_MAX_SMP > 1; Debian's build has 1);
 * - the master opens the workers' sockets before it forks, so that a bind error is
 *   reported once and a restarted worker takes over the queue of the one that died;
 * - lws's listener costs system calls per handshake that this loop does not make:
 *   a poll() after every accept to see whether another is waiting, fcntl() to make the
 *   socket non-blocking (accept4 does it), and on every close the listening socket
 *   taken out of epoll and put back (its fd-limit throttle). */
#define _GNU_SOURCE /* accept4 */
#include "net/listener.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <uv.h>

#include "base/log.h"
#include "net/ws.h"

#define ACCEPT_BATCH 64        /* per readiness: the loop also has other work */
#define BACKLOG 4096           /* the kernel caps it at net.core.somaxconn */
#define FD_PAUSE_MS 100        /* out of descriptors: stop accepting this long */

unsigned long long mw_listener_accepted;

static int listen_fd = -1;
static uv_poll_t poll_h;
static uv_timer_t pause_timer;
static bool started;

int mw_listen_open(const char *host, int port, bool reuseport, int *bound_port, char *err,
                   size_t errlen)
{
    struct addrinfo hints, *ai = NULL;
    char service[16];
    memset(&hints, 0, sizeof hints);
    /* IPv4 unless the address is IPv6 (as with lws's DISABLE_IPV6 before). */
    hints.ai_family = strchr(host, ':') ? AF_INET6 : AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    snprintf(service, sizeof service, "%d", port);
    int rc = getaddrinfo(host, service, &hints, &ai);
    if (rc != 0) {
        snprintf(err, errlen, "cannot listen on %s:%d: %s", host, port, gai_strerror(rc));
        return -1;
    }
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    const char *what = "socket";
    if (fd >= 0) {
        what = "setsockopt";
        if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == 0 &&
            (!reuseport || setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) == 0) &&
            (what = "bind", bind(fd, ai->ai_addr, ai->ai_addrlen) == 0) &&
            (what = "listen", listen(fd, BACKLOG) == 0))
            what = NULL;
    }
    freeaddrinfo(ai);
    if (what) {
        snprintf(err, errlen, "cannot listen on %s:%d: %s: %s", host, port, what, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    *bound_port = port;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
        *bound_port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                     : ((struct sockaddr_in *)&ss)->sin_port);
    return fd;
}

static void on_readable(uv_poll_t *h, int status, int events);

static void on_pause_over(uv_timer_t *t)
{
    (void)t;
    if (listen_fd >= 0)
        uv_poll_start(&poll_h, UV_READABLE, on_readable);
}

static void on_readable(uv_poll_t *h, int status, int events)
{
    (void)h;
    (void)events;
    if (status < 0)
        return;
    for (int i = 0; i < ACCEPT_BATCH && listen_fd >= 0; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int fd = accept4(listen_fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* Level-triggered: without a pause the loop would spin on the queue. */
                mw_log_warn("accept paused", "reason=\"%s\" pause_ms=%d", strerror(errno),
                            FD_PAUSE_MS);
                uv_poll_stop(&poll_h);
                uv_timer_start(&pause_timer, on_pause_over, FD_PAUSE_MS, 0);
            }
            return; /* EAGAIN: the queue is empty */
        }
        mw_listener_accepted++;
        mw_ws_accept(fd, (const struct sockaddr *)&ss, sl);
    }
}

void mw_listener_start(int fd, size_t send_buffer)
{
    uv_loop_t *loop = uv_default_loop();
    listen_fd = fd;
    /* Set once here rather than on every accepted socket: Linux's accepted sockets
     * inherit both from the listening one (two system calls fewer per connection). */
    int one = 1; /* small frames go out at once */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    int sndbuf = send_buffer > (1u << 30) ? 1 << 30 : (int)send_buffer;
    if (sndbuf)
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    uv_poll_init(loop, &poll_h, fd);
    uv_timer_init(loop, &pause_timer);
    uv_poll_start(&poll_h, UV_READABLE, on_readable);
    started = true;
}

static void on_poll_closed(uv_handle_t *h)
{
    (void)h;
    close(listen_fd);
    listen_fd = -1;
}

void mw_listener_stop(void)
{
    if (!started)
        return;
    started = false;
    uv_close((uv_handle_t *)&pause_timer, NULL);
    uv_close((uv_handle_t *)&poll_h, on_poll_closed);
}

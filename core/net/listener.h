/* listener.h - the listening socket and the accept loop that hands connections to
 * ws.c. */
#ifndef MW_LISTENER_H
#define MW_LISTENER_H

#include <stdbool.h>
#include <stddef.h>

/* Opens a non-blocking TCP socket listening on host:port (port 0: a free one). With
 * `reuseport`, SO_REUSEPORT is set so that several sockets (one per worker) share the
 * port and the kernel spreads connections over them. Returns the fd and the port in
 * *bound_port, or -1 with a one-line message in err. */
int mw_listen_open(const char *host, int port, bool reuseport, int *bound_port, char *err,
                   size_t errlen);

/* Accepts on fd from the default loop and hands each connection to mw_ws_accept,
 * with TCP_NODELAY, and SO_SNDBUF set to send_buffer when it is not 0 (both set on fd:
 * accepted sockets inherit them). */
void mw_listener_start(int fd, size_t send_buffer);
/* Stops accepting (shutdown) and closes the socket. Queued connections that were
 * never accepted are reset by the kernel when the last copy of the socket closes. */
void mw_listener_stop(void);

/* Connections accepted so far (metrics). */
extern unsigned long long mw_listener_accepted;

#endif

/* admit.h - admission of new connections, the checks besides identity (auth.h) that
 * mw_server_check_open runs: the Origin allowlist of browser handshakes (`origins`),
 * and connections per IP and per user (limits.max_connections_per_ip / _per_user). */
#ifndef MW_ADMIT_H
#define MW_ADMIT_H

#include <stdbool.h>
#include <stdint.h>

#include "base/config.h"

struct mw_open_req;

void mw_admit_init(const struct mw_config *cfg);
void mw_admit_shutdown(void);

/* Before identity: the Origin (403) and the peer's connections (429). 0 or the HTTP
 * status with *why. */
int mw_admit_check(const struct mw_open_req *r, const char **why);
/* After identity: the user's connections on this node (429). 0 or the status. */
int mw_admit_check_user(const char *user, const char **why);

/* After a waiting connection was named by its first `auth` message: whether its user
 * now has more connections than allowed (it must then be closed). */
bool mw_admit_user_over(const char *user);

/* Counts a connection of this peer address while it lives (the server's open and
 * unlink); gone for an address never counted is ignored (virtual connections). */
void mw_admit_opened(const char *remote);
void mw_admit_gone(const char *remote);

/* Refusals by reason, for /metrics. */
struct mw_admit_stats {
    uint64_t origin, per_ip, per_user;
};
extern struct mw_admit_stats mw_admit_stats;

#endif

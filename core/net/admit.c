/* admit.c - admission checks for new connections (admit.h). */
#include "net/admit.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "net/conn.h"
#include "base/map.h"
#include "net/entry.h"
#include "base/util.h"

struct mw_admit_stats mw_admit_stats;

static char **origins;
static size_t norigins;
static uint32_t per_ip, per_user;

/* Connections per peer address: the entry owns its key. */
struct peer {
    uint32_t n;
    char ip[];
};
static struct mw_map peers;

void mw_admit_init(const struct mw_config *cfg)
{
    origins = cfg->origins;
    norigins = cfg->norigins;
    per_ip = cfg->max_conns_per_ip;
    per_user = cfg->max_conns_per_user;
}

void mw_admit_shutdown(void)
{
    for (uint32_t i = 0; i < peers.cap; i++)
        if (peers.slots[i].key)
            free(peers.slots[i].val);
    mw_map_free(&peers);
    origins = NULL;
    norigins = 0;
}

/* Whether origin (as sent) is allowed by pattern: equal (scheme and host are case-
 * insensitive), or pattern "scheme://" "*.domain" and origin one of its subdomains. */
static int origin_matches(const char *pattern, const char *origin)
{
    const char *star = strstr(pattern, "://*.");
    if (!star)
        return !strcasecmp(pattern, origin);
    size_t scheme = (size_t)(star - pattern) + 3, dlen = strlen(star + 4); /* ".domain" */
    size_t olen = strlen(origin);
    return olen > scheme + dlen && !strncasecmp(origin, pattern, scheme) &&
           !strcasecmp(origin + olen - dlen, star + 4) && origin[scheme] != '.';
}

int mw_admit_check(const struct mw_open_req *r, const char **why)
{
    if (norigins) {
        char origin[256];
        int n = r->header(r->tx, "origin", origin, sizeof origin);
        /* No Origin: not a browser, which the allowlist is about (a browser always
         * sends one with a WebSocket handshake). */
        if (n >= 0) {
            size_t i = 0;
            while (i < norigins && ((size_t)n >= sizeof origin || !origin_matches(origins[i], origin)))
                i++;
            if (i == norigins) {
                mw_admit_stats.origin++;
                *why = "origin not allowed (origins)";
                return 403;
            }
        }
    }
    struct peer *p = per_ip ? mw_map_get(&peers, r->remote) : NULL;
    if (p && p->n >= per_ip) {
        mw_admit_stats.per_ip++;
        *why = "too many connections from this address (limits.max_connections_per_ip)";
        return 429;
    }
    return 0;
}

int mw_admit_check_user(const char *user, const char **why)
{
    struct mw_user *u = per_user && user && *user ? mw_user_find(user) : NULL;
    if (u && u->nconns >= per_user) {
        mw_admit_stats.per_user++;
        *why = "too many connections for this user (limits.max_connections_per_user)";
        return 429;
    }
    return 0;
}

bool mw_admit_user_over(const char *user)
{
    struct mw_user *u = per_user ? mw_user_find(user) : NULL;
    if (!u || u->nconns <= per_user)
        return false;
    mw_admit_stats.per_user++;
    return true;
}

void mw_admit_opened(const char *remote)
{
    struct peer *p = mw_map_get(&peers, remote);
    if (!p) {
        size_t len = strlen(remote);
        p = mw_malloc(sizeof *p + len + 1);
        p->n = 0;
        memcpy(p->ip, remote, len + 1);
        mw_map_put(&peers, p->ip, p);
    }
    p->n++;
}

void mw_admit_gone(const char *remote)
{
    struct peer *p = mw_map_get(&peers, remote);
    if (p && --p->n == 0) {
        mw_map_del(&peers, p->ip);
        free(p);
    }
}

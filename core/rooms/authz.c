/* authz.c - room patterns per route (authz.h). */
#include "rooms/authz.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

struct mw_authz_stats mw_authz_stats;

/* Every route's patterns: a prefix (from "p*") or an exact name, and its specificity:
 * the literal length, plus one for an exact name so that it beats the prefix of the
 * same text. */
static struct pattern {
    const struct mw_route_config *route;
    const char *text; /* without the '*' */
    size_t len;
    bool prefix;
} *patterns;
static size_t npatterns;

void mw_authz_init(const struct mw_route_config *const *routes, size_t n)
{
    mw_authz_shutdown();
    for (size_t i = 0; i < n; i++)
        npatterns += routes[i]->nrooms ? routes[i]->nrooms : 1;
    patterns = mw_calloc(npatterns ? npatterns : 1, sizeof *patterns);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const struct mw_route_config *r = routes[i];
        for (size_t j = 0; j < (r->nrooms ? r->nrooms : 1); j++) {
            const char *p = r->nrooms ? r->rooms[j] : "*";
            size_t len = strlen(p);
            bool prefix = len && p[len - 1] == '*';
            patterns[k++] = (struct pattern){ r, p, prefix ? len - 1 : len, prefix };
        }
    }
}

void mw_authz_shutdown(void)
{
    free(patterns);
    patterns = NULL;
    npatterns = 0;
}

/* How specifically p matches room: 0 when it does not, else 1 + its literal length
 * (+1 more for an exact name). */
static size_t match(const struct pattern *p, const char *room, size_t rlen)
{
    if (p->prefix)
        return rlen >= p->len && !memcmp(room, p->text, p->len) ? p->len + 1 : 0;
    return rlen == p->len && !memcmp(room, p->text, rlen) ? p->len + 2 : 0;
}

const char *mw_authz_room_error(const struct mw_route_config *rc, const char *room)
{
    size_t rlen = strlen(room), best = 0;
    bool mine = false, known = false;
    for (size_t i = 0; i < npatterns; i++) {
        size_t m = match(&patterns[i], room, rlen);
        known |= patterns[i].route == rc;
        if (m > best) {
            best = m;
            mine = false;
        }
        if (m && m == best && patterns[i].route == rc)
            mine = true;
    }
    if (mine || !known) /* a route of no config (moonwire test's own): nothing to enforce */
        return NULL;
    return best ? "this room belongs to another route" : "this route's clients cannot use this room";
}

/* auth.c - connection identity. */
#include "auth.h"

#include "server.h"

int mw_auth_user_param(const struct mw_open_req *r, char user[MW_USER_ID_MAX + 1],
                       const char **why)
{
    int n = r->query(r->tx, "user", user, MW_USER_ID_MAX + 1);
    if (n <= 0) { /* absent or empty: anonymous */
        user[0] = '\0';
        return 0;
    }
    *why = mw_user_id_error(user, (size_t)n); /* a cut value is too long: refused */
    if (!*why)
        return 0;
    user[0] = '\0';
    return -1;
}

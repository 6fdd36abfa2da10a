/* auth.h - who a connection is: the `sub` of a verified token (JWT, libjwt), or for
 * development the `user` query parameter, else an anonymous generated id. Works on
 * server.h's mw_open_req, so it applies to every transport. */
#ifndef MW_AUTH_H
#define MW_AUTH_H

#include <stddef.h>

#include "userid.h"

struct mw_open_req;

/* The `user` query parameter (when dev.user_param allows it): 0 with user[] set (""
 * when absent or empty), or -1 with *why set when it breaks the user id rule. */
int mw_auth_user_param(const struct mw_open_req *r, char user[MW_USER_ID_MAX + 1],
                       const char **why);

#endif

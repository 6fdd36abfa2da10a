/* auth.h - who a connection is: the `sub` of a verified token (JWT, libjwt), or for
 * development the `user` query parameter, else an anonymous generated id. */
#ifndef MW_AUTH_H
#define MW_AUTH_H

#include <stddef.h>

#include "userid.h"

struct lws;

/* The value of query parameter `name` of the request (URL-decoded by lws), exactly:
 * 1 with buf holding it NUL-terminated and *len its length (a decoded %00 counts, so
 * such a value is told apart), 0 when absent, -1 when it does not fit in cap - 1. */
int mw_auth_query_arg(struct lws *wsi, const char *name, char *buf, size_t cap, size_t *len);

/* The `user` query parameter when dev.user_param allows it: 0 with user[] set ("" when
 * absent), or -1 with *why set when it breaks the user id rule (userid.h). */
int mw_auth_user_param(struct lws *wsi, char user[MW_USER_ID_MAX + 1], const char **why);

#endif

/* ident.h - the one rule for user ids, whatever their source (the `user` query
 * parameter, a token's subject, the HTTP API, Lua, simulated clients): 1..128 bytes,
 * no control characters (bytes below 0x20, and 0x7f). Ids cross nodes inside broker
 * payloads and Redis keys, so every source applies the same rule. Leaf module. */
#ifndef MW_IDENT_H
#define MW_IDENT_H

#include <stddef.h>

#define MW_USER_ID_MAX 128

/* NULL when id[0..len) is a valid user id, else why not (a message for the client). */
const char *mw_user_id_error(const char *id, size_t len);

#endif

/* ident.h - the one rule for user ids, whatever their source (the `user` query
 * parameter, a token's `sub`, the HTTP API, Lua, simulated clients): 1..128 bytes of
 * valid UTF-8 without control characters (C0, DEL, C1). Ids go into every frame that
 * names a user (hello, presence, `from`), into broker payloads, Redis keys and log
 * lines, so every source applies the same rule. Leaf module. */
#ifndef MW_IDENT_H
#define MW_IDENT_H

#include <stddef.h>

#define MW_USER_ID_MAX 128

/* NULL when id[0..len) is a valid user id, else why not (a sentence for the client). */
const char *mw_user_id_error(const char *id, size_t len);

#endif

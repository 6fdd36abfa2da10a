/* api_body.h - the request bodies of the HTTP API, decoded and checked without a
 * socket: what api.c acts on, and what tests/fuzz/fuzz_api_body.c feeds anything to.
 * A private Lua state runs the JSON codec. Leaf module (JSON codec, room and user-id
 * rules). */
#ifndef MW_API_BODY_H
#define MW_API_BODY_H

#include <stddef.h>

#include "base/buf.h"
#include "base/ident.h"

enum mw_api_call { MW_API_PUBLISH, MW_API_NOTIFY, MW_API_DISCONNECT };

struct mw_api_request {
    char room[129];          /* publish */
    char type[65];           /* publish */
    char user[MW_USER_ID_MAX + 1]; /* notify, disconnect */
    struct mw_buf json;      /* publish: the event {type, room, data}; notify: data */
};

/* Parses the body of a call:
 *   publish    {room, type, data?}  room by the room rule, type 1..64 of a-z 0-9 _ . : -
 *   notify     {user, data}         data any JSON but null, at most max_item bytes
 *   disconnect {user}
 * Returns 0 with req filled (free it with mw_api_request_free), or -1 with the error
 * code (bad_json, bad_message) in *code and a sentence in msg: an HTTP 400. */
int mw_api_body_parse(enum mw_api_call call, const char *body, size_t len, size_t max_item,
                      struct mw_api_request *req, const char **code, char *msg, size_t msglen);
void mw_api_request_free(struct mw_api_request *req);

/* Closes the private Lua state (exit). */
void mw_api_body_shutdown(void);

#endif

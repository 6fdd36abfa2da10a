/* fuzz_api_body.c - the HTTP API's request bodies (core/http/api_body.c): the first byte
 * picks the call (publish, notify, disconnect), the rest is the body. A body is either
 * refused with bad_json or bad_message, or gives a request whose fields hold by the
 * rules: what goes on to a room or an inbox is valid. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/api_body.h"
#include "base/ident.h"
#include "rooms/room.h"
#include "base/utf8.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!size)
        return 0;
    enum mw_api_call call = (enum mw_api_call)(data[0] % 3);
    struct mw_api_request req;
    const char *code = NULL;
    char msg[256];
    if (mw_api_body_parse(call, (const char *)data + 1, size - 1, 4096, &req, &code, msg,
                          sizeof msg) < 0) {
        if (!code || (strcmp(code, "bad_json") && strcmp(code, "bad_message")))
            abort();
        return 0;
    }
    if (call == MW_API_PUBLISH && (mw_room_name_error(req.room, strlen(req.room)) || !req.type[0]))
        abort();
    if (call != MW_API_PUBLISH && mw_user_id_error(req.user, strlen(req.user)))
        abort();
    if (call != MW_API_DISCONNECT && (!req.json.len || !mw_utf8_valid(req.json.p, req.json.len)))
        abort();
    if (call == MW_API_NOTIFY && req.json.len > 4096)
        abort();
    mw_api_request_free(&req);
    return 0;
}

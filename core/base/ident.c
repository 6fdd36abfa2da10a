/* ident.c - the user-id rule (ident.h). */
#include "base/ident.h"

#include "base/utf8.h"

const char *mw_user_id_error(const char *id, size_t len)
{
    if (!id || len < 1 || len > MW_USER_ID_MAX)
        return "user must be a string of 1..128 bytes";
    if (!mw_utf8_valid(id, len))
        return "user must be valid UTF-8";
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)id[i];
        /* C0 controls (NUL included), DEL, and C1 controls (U+0080..U+009F, which
         * UTF-8 writes as 0xc2 0x80..0x9f) */
        if (c < 0x20 || c == 0x7f || (c == 0xc2 && (unsigned char)id[i + 1] < 0xa0))
            return "user must not contain control characters";
    }
    return NULL;
}

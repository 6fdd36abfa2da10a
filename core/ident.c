/* ident.c - the user-id rule (ident.h). */
#include "ident.h"

#include <stdlib.h>

const char *mw_user_id_error(const char *id, size_t len)
{
    if (!id || len < 1 || len > MW_USER_ID_MAX)
        return "user must be a string of 1..128 bytes";
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)id[i] < ' ' || id[i] == 0x7f)
            return "user must not contain control characters";
    return NULL;
}

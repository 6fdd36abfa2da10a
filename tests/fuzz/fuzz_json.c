/* fuzz_json.c - the JSON codec (core/base/lua_json.c): anything decodes or fails cleanly;
 * what decodes encodes, and one round later the text is stable. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "base/buf.h"
#include "base/lua_json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static lua_State *L;
    char err[128];
    if (!L)
        L = luaL_newstate();
    lua_settop(L, 0);
    if (mw_json_decode(L, (const char *)data, size, err, sizeof err) == 0) {
        struct mw_buf a = { 0 }, b = { 0 };
        if (mw_json_encode(L, 1, &a, err, sizeof err) != 0)
            abort(); /* decoded, so it must encode */
        lua_settop(L, 0);
        if (mw_json_decode(L, a.p ? a.p : "", a.len, err, sizeof err) != 0)
            abort(); /* what we write we read */
        if (mw_json_encode(L, 1, &b, err, sizeof err) != 0 || a.len != b.len ||
            memcmp(a.p, b.p, a.len) != 0)
            abort(); /* stable after one round */
        mw_buf_free(&a);
        mw_buf_free(&b);
    }
    lua_settop(L, 0);
    return 0;
}

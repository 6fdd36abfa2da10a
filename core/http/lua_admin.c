/* lua_admin.c - module moonwire.admin: what the bundled admin app needs.
 *
 *   admin.snapshot()  -> the admin:snapshot event of this node, as JSON text
 *   admin.key_ok(key) -> whether key is one of the configured API keys */
#include <lauxlib.h>

#include "http/admin.h"
#include "http/api.h"
#include "base/buf.h"
#include "lua/lua_api.h"

static int l_snapshot(lua_State *L)
{
    struct mw_buf b = { 0 };
    mw_admin_snapshot(&b);
    lua_pushlstring(L, b.p, b.len);
    mw_buf_free(&b);
    return 1;
}

static int l_key_ok(lua_State *L)
{
    const char *key = luaL_checkstring(L, 1);
    lua_pushboolean(L, mw_api_key_ok(key));
    return 1;
}

int luaopen_moonwire_admin(lua_State *L)
{
    static const luaL_Reg fns[] = {
        { "snapshot", l_snapshot },
        { "key_ok", l_key_ok },
        { NULL, NULL },
    };
    lua_newtable(L);
    luaL_register(L, NULL, fns);
    return 1;
}

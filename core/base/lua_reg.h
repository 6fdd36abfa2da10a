/* lua_reg.h - registry slots the core looks up on every message, by negative integer
 * keys.
 *
 * A registry lookup by name (lua_getfield, luaL_checkudata) interns the name each
 * time, and one by a light userdata key pays for LuaJIT's light userdata encoding and
 * a hashed lookup: 150-250 instructions either way, and a chat message made ~20 of
 * them. A negative integer key is hashed as a number, with nothing to intern.
 * luaL_ref uses the keys 0 (its free list) and up, so these never collide with a
 * reference; Lua code cannot reach the registry (debug aside). */
#ifndef MW_LUA_REG_H
#define MW_LUA_REG_H

enum {
    MW_REG_ARRAY_MT = -0x6d7701, /* lua_json.c: the metatables of decoded arrays, */
    MW_REG_ORDER_MT,             /* key lists */
    MW_REG_LAZY_MT,              /* and lazy objects; */
    MW_REG_ENVELOPE_LISTS,       /* the key lists objects of envelope fields share */
    MW_REG_APP,                  /* script.c: the state's struct mw_app (light userdata) */
    MW_REG_CONN_MT,              /* lua_conn.c: the conn metatable, */
    MW_REG_CONN_CACHE,           /* the weak cache of conn userdata, */
    MW_REG_CONN_RING,            /* the ring of recently used ones */
};

#endif

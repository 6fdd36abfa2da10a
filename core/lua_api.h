/* lua_api.h - the C functions behind lua/moonwire: one luaopen per Lua module file
 * (lua_conn.c, lua_rooms.c, lua_core.c, lua_json.c) and the helpers they share. */
#ifndef MW_LUA_API_H
#define MW_LUA_API_H

#include <stdbool.h>

#include <lua.h>

#include "msg.h"

struct mw_conn;

int luaopen_moonwire_core(lua_State *L);
int luaopen_moonwire_conn(lua_State *L);
int luaopen_moonwire_rooms(lua_State *L);
int luaopen_moonwire_store(lua_State *L);
int luaopen_moonwire_redis(lua_State *L);
int luaopen_moonwire_timer(lua_State *L);
int luaopen_moonwire_inbox(lua_State *L);
int luaopen_moonwire_testing(lua_State *L); /* lua_testing.c: simulated clients (moonwire test) */

struct mw_app;
/* Cancels the timers of app a (every timer when a is NULL: shutdown). */
void mw_lua_timer_cancel_app(struct mw_app *a);

/* Pushes the conn object for c (the same userdata while it is referenced). */
void mw_lua_push_conn(lua_State *L, struct mw_conn *c);
/* The connection behind argument idx: raises when idx is not a conn; returns NULL once
 * the connection is freed (a closing one, e.g. in `disconnect`, is still returned). */
struct mw_conn *mw_lua_check_conn(lua_State *L, int idx);

/* Frames the value at idx: a string as is (text, or binary when `binary`), anything
 * else JSON-encoded as text. Raises a Lua error when it cannot be encoded. */
struct mw_msg *mw_lua_to_msg(lua_State *L, int idx, bool binary, unsigned flags);

/* Validates a room name argument (1..128 bytes, no control characters); raises. */
const char *mw_lua_check_room(lua_State *L, int idx);

/* The client message the running handler answers, as a token for idempotent
 * publishes (history.h): set by the router's dedup_begin for the coroutine that runs
 * the handler. NULL when none (no id, or another coroutine). */
const char *mw_lua_message_token(lua_State *L);

/* Cancels what the core module keeps waiting (sleep timers) at shutdown. */
void mw_lua_core_shutdown(void);

#endif

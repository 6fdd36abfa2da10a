/* lua_api.h - the C functions behind lua/moonwire: one luaopen per Lua module file
 * (lua_conn.c, lua_rooms.c, lua_core.c, lua_json.c) and the helpers they share. */
#ifndef MW_LUA_API_H
#define MW_LUA_API_H

#include <stdbool.h>
#include <stddef.h>

#include <lua.h>

#include "base/msg.h"

struct mw_conn;

int luaopen_moonwire_core(lua_State *L);
int luaopen_moonwire_conn(lua_State *L);
int luaopen_moonwire_rooms(lua_State *L);
int luaopen_moonwire_store(lua_State *L);
int luaopen_moonwire_redis(lua_State *L);
int luaopen_moonwire_timer(lua_State *L);
int luaopen_moonwire_inbox(lua_State *L);
int luaopen_moonwire_admin(lua_State *L);
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
 * else JSON-encoded as text. Raises a Lua error when it cannot be encoded, or when a
 * text frame would not be valid UTF-8. */
struct mw_msg *mw_lua_to_msg(lua_State *L, int idx, bool binary, unsigned flags);

/* Validates a room name argument (1..128 bytes of UTF-8, no control characters);
 * raises. */
const char *mw_lua_check_room(lua_State *L, int idx);

/* The client message the running handler answers, as a token for idempotent
 * publishes (history.h): set by the router's dedup_begin in the record of the
 * coroutine that runs the handler (script.h). NULL when none (no id, or another
 * coroutine). */
const char *mw_lua_message_token(lua_State *L);

/* Cancels what the core module keeps waiting (sleep timers) at shutdown. */
void mw_lua_core_shutdown(void);

/* HTTP API calls answered by an app's `app:api(name, fn)` handler (lua_http.c). */
typedef void (*mw_lua_http_cb)(void *ud, int status, const char *body, size_t len);
/* Whether app a has an api handler `name`. */
bool mw_lua_http_has(struct mw_app *a, const char *name);
/* Runs a's handler `name` with args (a JSON object text of args_len bytes) in a new
 * coroutine. cb fires exactly once with the HTTP status and a JSON body: before this
 * returns when the handler did not wait, else later from the loop. */
void mw_lua_http_call(struct mw_app *a, const char *name, const char *args_json,
                      size_t args_len, mw_lua_http_cb cb, void *ud);

#endif

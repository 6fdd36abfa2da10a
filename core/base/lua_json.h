/* lua_json.h - JSON <-> Lua values, the `moonwire.json` module.
 *
 * We do not use lua-cjson: Debian's 2.1.0 cannot tell an empty array from an empty
 * object, so `history: []` would go out as `{}` and a client's `[]` would come back
 * as `{}`. Here decoded arrays carry a shared metatable (json.array_mt) and encode
 * back as arrays even when empty; json.array(t) marks a table built in Lua. */
#ifndef MW_LUA_JSON_H
#define MW_LUA_JSON_H

#include <stddef.h>

#include <lua.h>

#include "base/buf.h"

/* Maximum nesting depth accepted by decode and encode. */
#define MW_JSON_MAX_DEPTH 64

/* Decodes s[0..len) and pushes the value. Returns 0, or -1 with nothing pushed and a
 * message like "unexpected character 'x' at offset 12" in err. JSON null decodes to
 * the json.null sentinel (a lightuserdata NULL) inside containers and at top level. */
int mw_json_decode(lua_State *L, const char *s, size_t len, char *err, size_t errlen);

/* Decodes a message (a frame's text) like mw_json_decode, except that when it is an
 * object, the object its `data` member holds is checked (the same errors at the same
 * offsets) but left undecoded: msg.data is a lazy object, decoded into itself on its
 * first use from Lua, and encoded as the client's own text while it was never used.
 * See "lazy data" in lua_json.c. */
int mw_json_decode_message(lua_State *L, const char *s, size_t len, char *err, size_t errlen);

/* Like mw_json_decode, but a top-level object, or each object in a top-level array,
 * is checked and pushed lazy (see mw_json_decode_message): for text the server keeps
 * (history events, presence lists) that Lua mostly passes on, as the chat app's join
 * reply does. */
int mw_json_decode_lazy(lua_State *L, const char *s, size_t len, char *err, size_t errlen);

/* Pushes a lazy object holding text[0..len), one JSON object the server wrote itself
 * (not checked again: a presence member built in C). */
void mw_json_push_lazy_object(lua_State *L, const char *text, size_t len);

/* Decodes the lazy object at idx into itself (it becomes an ordinary decoded object);
 * does nothing to any other value. C code that walks a table given by Lua with raw
 * access (lua_next) calls this first. Raises on failure (out of memory). */
void mw_json_unlazy(lua_State *L, int idx);

/* Wraps the base functions that look past metamethods (pairs, next, rawget,
 * getmetatable, setmetatable) so that they decode a lazy object first. Called once
 * per Lua state, after the standard libraries are open and before any script runs. */
void mw_json_lazy_install(lua_State *L);

/* Appends the JSON text of the value at `idx` to out. Returns 0, or -1 with err set
 * (cycle/too deep, a function/userdata value, a non-string non-integer key, NaN/inf).
 * Tables: array_mt or a non-empty sequence 1..n -> array; otherwise object (keys must
 * be strings, or integers written as strings); an empty plain table -> {}.
 * Object keys come in a stable order: at the top level the envelope fields first (type,
 * room, from, id, code, message, data, seq, ts); then an object decoded by
 * mw_json_decode keeps the order its keys came in; any other key follows, sorted by
 * its bytes. So a client's data goes out as it came, and nothing depends on Lua's
 * hash order (which differs between Lua states, e.g. after a reload).
 * Numbers: integral values with |v| < 2^53 print without a fraction; others with %.17g.
 * Strings are escaped (", \, control characters as \uXXXX) and must be valid UTF-8
 * (decode: the same, else an error naming the offset). */
int mw_json_encode(lua_State *L, int idx, struct mw_buf *out, char *err, size_t errlen);

/* The same for a value written inside an envelope the caller writes itself (the
 * envelope's own fields do not come first in it). */
int mw_json_encode_member(lua_State *L, int idx, struct mw_buf *out, char *err, size_t errlen);

/* Pushes the module table: encode(v) -> string (raises on error), decode(s) -> value |
 * nil, err, null, array_mt, array(t?) -> t marked as array, is_array(t). */
int luaopen_moonwire_json(lua_State *L);

/* Registry key of the array metatable (for C code that builds arrays). */
#define MW_JSON_ARRAY_MT "moonwire.json.array"

/* Registry key of the marker of key lists: a decoded object's metatable is the list
 * of its keys in the order they came (a sequence of strings), itself with this
 * metatable. Lua code that replaces the metatable loses the order, nothing else. */
#define MW_JSON_ORDER_MT "moonwire.json.order"

/* Registry key of the metatable of lazy objects (mw_json_decode_message). */
#define MW_JSON_LAZY_MT "moonwire.json.lazy"

/* Pushes a new empty table marked as a JSON array. */
void mw_json_push_array(lua_State *L, int narr);

/* 1 if the value at idx is a table marked as a JSON array (decoded `[...]`). */
int mw_json_is_array(lua_State *L, int idx);

#endif

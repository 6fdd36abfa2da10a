/* lua_json.c - JSON text <-> LuaJIT values (RFC 8259), and the `moonwire.json` module.
 *
 * Decoding is a recursive descent over the input bytes that pushes values straight onto
 * the Lua stack: strings without escapes are pushed with one lua_pushlstring from the
 * input, escaped ones are built in a luaL_Buffer (garbage collected, so an error or a
 * longjmp never leaks). Arrays get the shared array metatable so `[]` survives a round
 * trip; null is the lightuserdata NULL sentinel. Encoding walks the value with raw
 * accesses only (no metamethods run) into a struct mw_buf.
 *
 * Decisions the header leaves open:
 * - -0 encodes as "0" (as JavaScript's JSON.stringify does); decode keeps -0.0.
 * - Non-integral numbers use the shortest of %.15g/%.16g/%.17g that reads back to the
 *   same double, so 0.1 goes out as "0.1", not "0.10000000000000001".
 * - A number literal that overflows a double (1e400) is a decode error, so decoding
 *   never produces an infinity that could not be encoded back.
 * - On an encode error, out is truncated back to its length before the call.
 * - Strings must be valid UTF-8 both ways (decode: bad_json; encode: an error): JSON
 *   text is UTF-8 (RFC 8259), and text the server stores and sends is read by browsers,
 *   which drop a connection on the first invalid byte. A \u escape of a lone
 *   surrogate is refused for the same reason; \u0000 is valid and kept. */
#include "base/lua_json.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "base/lua_reg.h"
#include "base/utf8.h"
#include "base/util.h"

/* 2^53: integral doubles below this in magnitude are exact and printed as integers. */
#define MAX_EXACT_INT 9007199254740992.0

/* Pushes the registry's metatable `name` (luaL_newmetatable's, created on first use;
 * returns 1 then), found after the first use under the integer key `slot` (lua_reg.h):
 * every encode and decode needs up to three. */
static int push_registered_mt(lua_State *L, const char *name, int slot)
{
    lua_rawgeti(L, LUA_REGISTRYINDEX, slot);
    if (!lua_isnil(L, -1))
        return 0;
    lua_pop(L, 1);
    int created = luaL_newmetatable(L, name);
    lua_pushvalue(L, -1);
    lua_rawseti(L, LUA_REGISTRYINDEX, slot);
    return created;
}

/* Pushes the array metatable, creating it in the registry on first use. */
static void push_array_mt(lua_State *L)
{
    push_registered_mt(L, MW_JSON_ARRAY_MT, MW_REG_ARRAY_MT);
}

/* Pushes the key lists' marker (MW_JSON_ORDER_MT), creating it on first use. */
static void push_order_mt(lua_State *L)
{
    push_registered_mt(L, MW_JSON_ORDER_MT, MW_REG_ORDER_MT);
}

/* The metatable kept at stack index `slot` (reserved as nil by the caller), pushed
 * there on first use: most encodes and decodes need one of the three or none. */
static int slot_mt(lua_State *L, int slot, void (*push)(lua_State *L))
{
    if (lua_isnil(L, slot)) {
        push(L);
        lua_replace(L, slot);
    }
    return slot;
}

void mw_json_push_array(lua_State *L, int narr)
{
    lua_createtable(L, narr > 0 ? narr : 0, 0);
    push_array_mt(L);
    lua_setmetatable(L, -2);
}

/* ---- decoding ---- */

/* Which objects a decode leaves as text (see "lazy data" below). */
enum lazy_mode {
    LAZY_NONE,
    LAZY_DATA,   /* a message: the object in its top-level `data` */
    LAZY_STORED, /* text the server keeps: a top-level object, or the objects in a
                    top-level array */
};

struct dec {
    lua_State *L;
    const char *s;   /* start of input, for offsets in messages */
    const char *p;   /* cursor */
    const char *end;
    int mt;          /* stack index of the array metatable */
    int order_mt;    /* stack index of the key-list marker (MW_JSON_ORDER_MT) */
    char *err;
    size_t errlen;
    bool skip;       /* validate only: push nothing (an object that stays text) */
    enum lazy_mode lazy;
    int into;        /* stack index of the table the top-level object goes into, or 0 */
};

/* Bytes that end a run of literal string content: 1 for the end of it (a quote, an
 * escape, a control character), 2 for the start of a multi-byte sequence to check. */
static const char str_special[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    ['"'] = 1, ['\\'] = 1, [0x80 ... 0xff] = 2,
};

/* Sets "<what> at offset N" and returns -1. */
static int fail(struct dec *d, const char *at, const char *what)
{
    if (d->err && d->errlen)
        snprintf(d->err, d->errlen, "%s at offset %zu", what, (size_t)(at - d->s));
    return -1;
}

/* Reports the byte at `at` (or the end of input) as unexpected; returns -1. */
static int unexpected(struct dec *d, const char *at)
{
    char what[48];
    unsigned char c;

    if (at >= d->end)
        return fail(d, d->end, "unexpected end of input");
    c = (unsigned char)*at;
    if (c >= 0x20 && c < 0x7f)
        snprintf(what, sizeof what, "unexpected character '%c'", c);
    else
        snprintf(what, sizeof what, "unexpected byte 0x%02x", c);
    return fail(d, at, what);
}

static void skip_ws(struct dec *d)
{
    const char *p = d->p;
    while (p < d->end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
        p++;
    d->p = p;
}

static int is_digit(const char *p, const char *end)
{
    return p < end && *p >= '0' && *p <= '9';
}

static int dec_value(struct dec *d, int depth);
static int dec_lazy(struct dec *d, int depth);

/* Matches the keyword lit (true/false/null) at the cursor. */
static int dec_literal(struct dec *d, const char *lit, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const char *p = d->p + i;
        if (p == d->end || *p != lit[i])
            return unexpected(d, p);
    }
    d->p += n;
    return 0;
}

/* Parses a number per the RFC grammar. Up to 18 integer digits are converted here (an
 * integer to double conversion rounds exactly as strtod would); anything else goes to
 * strtod on a NUL-terminated copy, because the input need not be terminated. */
static int dec_number(struct dec *d)
{
    const char *start = d->p, *p = d->p, *end = d->end;
    int neg = 0, simple = 1;
    uint64_t ival = 0;
    double v;

    if (*p == '-') {
        neg = 1;
        p++;
    }
    if (p < end && *p == '0') {
        if (is_digit(++p, end))
            return fail(d, start, "leading zero in number");
    } else if (is_digit(p, end)) {
        while (is_digit(p, end))
            ival = ival * 10 + (uint64_t)(*p++ - '0');
    } else {
        return unexpected(d, p);
    }
    if (p - start - neg > 18)
        simple = 0;
    if (p < end && *p == '.') {
        simple = 0;
        if (!is_digit(++p, end))
            return unexpected(d, p);
        while (is_digit(p, end))
            p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        simple = 0;
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        if (!is_digit(p, end))
            return unexpected(d, p);
        while (is_digit(p, end))
            p++;
    }

    if (simple) {
        v = (double)ival;
        if (neg)
            v = -v;
    } else {
        size_t n = (size_t)(p - start);
        char small[64];
        char *copy = n < sizeof small ? small : mw_malloc(n + 1);
        memcpy(copy, start, n);
        copy[n] = '\0';
        v = strtod(copy, NULL);
        if (copy != small)
            free(copy);
        if (isinf(v))
            return fail(d, start, "number out of range");
    }
    if (!d->skip)
        lua_pushnumber(d->L, v);
    d->p = p;
    return 0;
}

/* Reads 4 hex digits at p; returns the value or -1. */
static long hex4(const char *p, const char *end)
{
    long v = 0;
    if (end - p < 4)
        return -1;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= c - '0';
        else if (c >= 'a' && c <= 'f')
            v |= c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            v |= c - 'A' + 10;
        else
            return -1;
    }
    return v;
}

/* b is NULL in skip mode: the escape is checked, nothing is built. */
static void add_utf8(luaL_Buffer *b, unsigned long cp)
{
    char u[4];
    size_t n;

    if (!b)
        return;
    if (cp < 0x80) {
        u[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xc0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3f));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xe0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        u[2] = (char)(0x80 | (cp & 0x3f));
        n = 3;
    } else {
        u[0] = (char)(0xf0 | (cp >> 18));
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
        u[3] = (char)(0x80 | (cp & 0x3f));
        n = 4;
    }
    luaL_addlstring(b, u, n);
}

/* Decodes the \uXXXX escape (or surrogate pair) whose backslash is at esc, appending
 * UTF-8 to b. Returns the position after it, or NULL with the error set. */
static const char *dec_unicode(struct dec *d, luaL_Buffer *b, const char *esc)
{
    long cp = hex4(esc + 2, d->end), lo;

    if (cp < 0) {
        fail(d, esc, "invalid \\u escape");
        return NULL;
    }
    if (cp >= 0xdc00 && cp <= 0xdfff) {
        fail(d, esc, "unpaired surrogate");
        return NULL;
    }
    if (cp < 0xd800 || cp > 0xdbff) {
        add_utf8(b, (unsigned long)cp);
        return esc + 6;
    }
    if (d->end - esc < 8 || esc[6] != '\\' || esc[7] != 'u') {
        fail(d, esc, "unpaired surrogate");
        return NULL;
    }
    lo = hex4(esc + 8, d->end);
    if (lo < 0) {
        fail(d, esc + 6, "invalid \\u escape");
        return NULL;
    }
    if (lo < 0xdc00 || lo > 0xdfff) {
        fail(d, esc, "unpaired surrogate");
        return NULL;
    }
    add_utf8(b, 0x10000 + (((unsigned long)cp - 0xd800) << 10) + ((unsigned long)lo - 0xdc00));
    return esc + 12;
}

/* Decodes the escape whose backslash is at esc; returns the position after it, or NULL
 * with the error set. */
static const char *dec_escape(struct dec *d, luaL_Buffer *b, const char *esc)
{
    char c;

    if (esc + 1 >= d->end)
        return NULL; /* caller reports the unterminated string */
    switch (esc[1]) {
    case '"': c = '"'; break;
    case '\\': c = '\\'; break;
    case '/': c = '/'; break;
    case 'b': c = '\b'; break;
    case 'f': c = '\f'; break;
    case 'n': c = '\n'; break;
    case 'r': c = '\r'; break;
    case 't': c = '\t'; break;
    case 'u': return dec_unicode(d, b, esc);
    default:
        fail(d, esc, "invalid escape");
        return NULL;
    }
    if (b)
        luaL_addchar(b, c);
    return esc + 2;
}

/* Skips literal string content from p: returns the first quote, backslash or control
 * character (or the end), or NULL with the error set at a byte that is not UTF-8. */
static const char *skip_literal(struct dec *d, const char *p)
{
    const char *end = d->end;
    for (;;) {
        while (p < end && !str_special[(unsigned char)*p])
            p++;
        if (p == end || str_special[(unsigned char)*p] != 2)
            return p;
        size_t n = mw_utf8_seq(p, end);
        if (!n) {
            fail(d, p, "invalid UTF-8 in string");
            return NULL;
        }
        p += n;
    }
}

/* The slow path of dec_string: the string starting at quote has an escape (or an
 * error) at p; everything in [quote + 1, p) is literal. */
static int dec_string_escaped(struct dec *d, const char *quote, const char *p)
{
    const char *run = quote + 1, *end = d->end;
    luaL_Buffer buf, *b = d->skip ? NULL : &buf;

    /* luaL_Buffer keeps up to LUA_MINSTACK / 2 pieces on the stack. */
    if (b && !lua_checkstack(d->L, LUA_MINSTACK / 2 + 2))
        return fail(d, quote, "out of Lua stack");
    if (b)
        luaL_buffinit(d->L, b);
    for (;;) {
        if (b)
            luaL_addlstring(b, run, (size_t)(p - run));
        if (p == end)
            return fail(d, quote, "unterminated string");
        if (*p == '"')
            break;
        if (*p != '\\') {
            char what[48];
            snprintf(what, sizeof what, "unescaped control character 0x%02x in string",
                     (unsigned char)*p);
            return fail(d, p, what);
        }
        run = dec_escape(d, b, p);
        if (!run)
            return p + 1 >= end ? fail(d, quote, "unterminated string") : -1;
        if (!(p = skip_literal(d, run)))
            return -1;
    }
    if (b)
        luaL_pushresult(b);
    d->p = p + 1;
    return 0;
}

/* Decodes the string at the cursor (which is on its opening quote). */
static int dec_string(struct dec *d)
{
    const char *quote = d->p, *p = skip_literal(d, quote + 1), *end = d->end;

    if (!p)
        return -1;
    if (p < end && *p == '"') {
        if (!d->skip)
            lua_pushlstring(d->L, quote + 1, (size_t)(p - quote - 1));
        d->p = p + 1;
        return 0;
    }
    return dec_string_escaped(d, quote, p);
}

/* Checks the nesting limit and Lua stack room before opening a container. */
static int enter(struct dec *d, int depth)
{
    if (depth > MW_JSON_MAX_DEPTH || !lua_checkstack(d->L, 6))
        return fail(d, d->p, "too deeply nested");
    return 0;
}

static int dec_array(struct dec *d, int depth)
{
    lua_State *L = d->L;
    bool push = !d->skip;

    if (enter(d, depth))
        return -1;
    d->p++;
    if (push) {
        lua_createtable(L, 0, 0);
        lua_pushvalue(L, slot_mt(L, d->mt, push_array_mt));
        lua_setmetatable(L, -2);
    }
    skip_ws(d);
    if (d->p < d->end && *d->p == ']') {
        d->p++;
        return 0;
    }
    bool lazy = push && d->lazy == LAZY_STORED && depth == 1;
    for (int i = 1;; i++) {
        if (lazy ? dec_lazy(d, depth) : dec_value(d, depth))
            return -1;
        if (push)
            lua_rawseti(L, -2, i);
        skip_ws(d);
        if (d->p < d->end && *d->p == ',') {
            d->p++;
        } else if (d->p < d->end && *d->p == ']') {
            d->p++;
            return 0;
        } else {
            return unexpected(d, d->p);
        }
    }
}

/* Stack: object, its key list, key. Appends the key to the list unless the object
 * has it already (a duplicate keeps its first place; its last value wins). */
static void note_key(lua_State *L, int *nkeys)
{
    lua_pushvalue(L, -1);
    lua_rawget(L, -4);
    int seen = !lua_isnil(L, -1);
    lua_pop(L, 1);
    if (!seen) {
        lua_pushvalue(L, -1);
        lua_rawseti(L, -3, ++*nkeys);
    }
}

/* Whether the key just pushed is "data". */
static bool key_is_data(lua_State *L)
{
    size_t n;
    const char *k = lua_tolstring(L, -1, &n);
    return n == 4 && memcmp(k, "data", 4) == 0;
}

/* type, room, from, id, code, message, data, seq, ts: see envelope_rank. */
#define NENVELOPE 9
static int envelope_rank(const char *s, size_t n);
static const char *const envelope_names[NENVELOPE] = {
    "type", "room", "from", "id", "code", "message", "data", "seq", "ts",
};

/* Pushes the shared key list of the objects whose keys are the envelope fields in
 * `seen` (a bit per rank), in rank order: made once per set and kept in the registry. */
static void push_envelope_list(struct dec *d, unsigned seen)
{
    lua_State *L = d->L;
    lua_rawgeti(L, LUA_REGISTRYINDEX, MW_REG_ENVELOPE_LISTS);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_createtable(L, 1 << NENVELOPE, 0);
        lua_pushvalue(L, -1);
        lua_rawseti(L, LUA_REGISTRYINDEX, MW_REG_ENVELOPE_LISTS);
    }
    lua_rawgeti(L, -1, (int)seen + 1);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_createtable(L, NENVELOPE, 0);
        for (int r = 0, n = 0; r < NENVELOPE; r++) {
            if (seen & (1u << r)) {
                lua_pushstring(L, envelope_names[r]);
                lua_rawseti(L, -2, ++n);
            }
        }
        lua_pushvalue(L, slot_mt(L, d->order_mt, push_order_mt));
        lua_setmetatable(L, -2);
        lua_pushvalue(L, -1);
        lua_rawseti(L, -3, (int)seen + 1);
    }
    lua_remove(L, -2);
}

/* Stack: object, nil (the key list's slot), key. Puts an object's own key list in the
 * slot, holding the envelope fields in `seen` (the keys so far), in rank order. */
static void make_key_list(lua_State *L, unsigned seen, int *nkeys)
{
    lua_createtable(L, 4, 0);
    for (int r = 0; r < NENVELOPE; r++) {
        if (seen & (1u << r)) {
            lua_pushstring(L, envelope_names[r]);
            lua_rawseti(L, -2, ++*nkeys);
        }
    }
    lua_replace(L, -3);
}

/* The object remembers its keys' order for the encoder (see MW_JSON_ORDER_MT). One
 * whose keys are envelope fields in protocol order (a client's message: type, room,
 * id, data) gets the key list shared by every such object with the same keys, not a
 * list of its own, made key by key. In skip mode it is only checked. */
static int dec_object(struct dec *d, int depth)
{
    lua_State *L = d->L;
    int nkeys = 0, last = -1;
    unsigned seen = 0;  /* the envelope fields so far, while they come in rank order */
    bool listed = false; /* the object has a key list of its own */
    bool push = !d->skip;

    if (enter(d, depth))
        return -1;
    d->p++;
    if (push && d->into) {
        lua_pushvalue(L, d->into);
        d->into = 0;
    } else if (push) {
        lua_createtable(L, 0, 4); /* the usual few keys without a rehash each */
    }
    skip_ws(d);
    if (d->p < d->end && *d->p == '}') {
        d->p++;
        return 0;
    }
    if (push)
        lua_pushnil(L); /* the key list's slot */
    for (;;) {
        skip_ws(d);
        if (d->p == d->end || *d->p != '"')
            return unexpected(d, d->p);
        if (dec_string(d))
            return -1;
        if (push && !listed) {
            size_t n;
            const char *k = lua_tolstring(L, -1, &n);
            int r = envelope_rank(k, n);
            if (r < NENVELOPE && r > last) {
                last = r;
                seen |= 1u << r;
            } else {
                make_key_list(L, seen, &nkeys);
                listed = true;
            }
        }
        if (push && listed)
            note_key(L, &nkeys);
        skip_ws(d);
        if (d->p == d->end || *d->p != ':')
            return unexpected(d, d->p);
        d->p++;
        if (push && d->lazy == LAZY_DATA && depth == 1 && key_is_data(L)) {
            if (dec_lazy(d, depth))
                return -1;
        } else if (dec_value(d, depth)) {
            return -1;
        }
        if (push)
            lua_rawset(L, -4);
        skip_ws(d);
        if (d->p < d->end && *d->p == ',') {
            d->p++;
        } else if (d->p < d->end && *d->p == '}') {
            d->p++;
            if (push && listed) {
                lua_pushvalue(L, slot_mt(L, d->order_mt, push_order_mt));
                lua_setmetatable(L, -2);
            } else if (push) {
                lua_pop(L, 1);
                push_envelope_list(d, seen);
            }
            if (push)
                lua_setmetatable(L, -2); /* the list becomes the object's metatable */
            return 0;
        } else {
            return unexpected(d, d->p);
        }
    }
}

/* Decodes one value and pushes it. On error the caller resets the stack. */
static int dec_value(struct dec *d, int depth)
{
    skip_ws(d);
    if (d->p == d->end)
        return unexpected(d, d->p);
    switch (*d->p) {
    case '{':
        return dec_object(d, depth + 1);
    case '[':
        return dec_array(d, depth + 1);
    case '"':
        return dec_string(d);
    case 't':
        if (dec_literal(d, "true", 4))
            return -1;
        if (!d->skip)
            lua_pushboolean(d->L, 1);
        return 0;
    case 'f':
        if (dec_literal(d, "false", 5))
            return -1;
        if (!d->skip)
            lua_pushboolean(d->L, 0);
        return 0;
    case 'n':
        if (dec_literal(d, "null", 4))
            return -1;
        if (!d->skip)
            lua_pushlightuserdata(d->L, NULL);
        return 0;
    case '-': case '0': case '1': case '2': case '3': case '4':
    case '5': case '6': case '7': case '8': case '9':
        return dec_number(d);
    default:
        return unexpected(d, d->p);
    }
}

/* ---- lazy data ----
 * A message's top-level `data` object (mw_json_decode_message) is checked as it would
 * be decoded, with the same errors at the same offsets, but kept as text: the value is
 * an empty table with the shared metatable MW_JSON_LAZY_MT, holding the text under a
 * key no Lua code can name (the address of raw_key). The first use from Lua (__index,
 * __newindex, or one of the functions that look past metamethods, which
 * mw_json_lazy_install wraps) decodes the text into the table itself, which from then
 * on is an ordinary decoded object. The encoder writes one that was never used as the
 * text it came as: a message that Lua passes on untouched is neither decoded nor
 * encoded, and goes out byte for byte as the client wrote it. */
static char raw_key;

static int lazy_index(lua_State *L);
static int lazy_newindex(lua_State *L);

/* Pushes the metatable of lazy objects, creating it in the registry on first use. */
static void push_lazy_mt(lua_State *L)
{
    if (push_registered_mt(L, MW_JSON_LAZY_MT, MW_REG_LAZY_MT)) {
        lua_pushcfunction(L, lazy_index);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, lazy_newindex);
        lua_setfield(L, -2, "__newindex");
    }
}

/* After `"data":` in a message (or at the top of a lazy decode): an object is checked
 * and pushed lazy, anything else decoded as usual. */
static int dec_lazy(struct dec *d, int depth)
{
    lua_State *L = d->L;
    skip_ws(d);
    const char *start = d->p;
    if (start == d->end || *start != '{')
        return dec_value(d, depth);
    d->skip = true;
    int rc = dec_value(d, depth);
    d->skip = false;
    if (rc)
        return -1;
    mw_json_push_lazy_object(L, start, (size_t)(d->p - start));
    return 0;
}

void mw_json_push_lazy_object(lua_State *L, const char *text, size_t len)
{
    lua_createtable(L, 0, 1);
    lua_pushlightuserdata(L, &raw_key);
    lua_pushlstring(L, text, len);
    lua_rawset(L, -3);
    push_lazy_mt(L);
    lua_setmetatable(L, -2);
}

/* Decodes s[0..len) onto the stack (or, with into, the top-level object into that
 * table), leaving the objects `mode` says as text. */
static int decode(lua_State *L, const char *s, size_t len, char *err, size_t errlen,
                  enum lazy_mode mode, int into)
{
    int base = lua_gettop(L);
    struct dec d = { L, s, s, s + len, base + 1, base + 2, err, errlen, false, mode, into };

    if (!lua_checkstack(L, 8)) {
        fail(&d, s, "out of Lua stack");
        return -1;
    }
    lua_pushnil(L); /* the array metatable and the key lists' marker, when needed */
    lua_pushnil(L);
    if ((mode == LAZY_STORED ? dec_lazy(&d, 0) : dec_value(&d, 0)) == 0) {
        skip_ws(&d);
        if (d.p == d.end) {
            lua_replace(L, d.mt); /* the value takes the metatable's slot */
            lua_settop(L, base + 1);
            return 0;
        }
        fail(&d, d.p, "trailing garbage");
    }
    lua_settop(L, base);
    return -1;
}

int mw_json_decode(lua_State *L, const char *s, size_t len, char *err, size_t errlen)
{
    return decode(L, s, len, err, errlen, LAZY_NONE, 0);
}

int mw_json_decode_message(lua_State *L, const char *s, size_t len, char *err, size_t errlen)
{
    return decode(L, s, len, err, errlen, LAZY_DATA, 0);
}

int mw_json_decode_lazy(lua_State *L, const char *s, size_t len, char *err, size_t errlen)
{
    return decode(L, s, len, err, errlen, LAZY_STORED, 0);
}

static bool is_lazy(lua_State *L, int idx)
{
    if (!lua_getmetatable(L, idx))
        return false;
    push_lazy_mt(L);
    bool r = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    return r;
}

/* Copies the members of the decoded object on top into the table at idx, where
 * idx does not have the key already, and gives idx its key list; pops it. */
static void merge_decoded(lua_State *L, int idx)
{
    int from = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, from)) {
        lua_pushvalue(L, -2);
        lua_rawget(L, idx);
        bool have = !lua_isnil(L, -1);
        lua_pop(L, 1);
        if (have) {
            lua_pop(L, 1);
            continue;
        }
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        lua_rawset(L, idx);
    }
    if (lua_getmetatable(L, from))
        lua_setmetatable(L, idx);
    lua_settop(L, from - 1);
}

void mw_json_unlazy(lua_State *L, int idx)
{
    char err[128];
    int top = lua_gettop(L);
    if (idx < 0 && idx > LUA_REGISTRYINDEX)
        idx = top + idx + 1;
    if (lua_type(L, idx) != LUA_TTABLE || !is_lazy(L, idx))
        return;
    luaL_checkstack(L, 12, "json: decoding data");
    lua_pushlightuserdata(L, &raw_key);
    lua_rawget(L, idx); /* the text stays on the stack while it is decoded */
    size_t n;
    const char *s = lua_tolstring(L, -1, &n);
    lua_pushlightuserdata(L, &raw_key);
    lua_pushnil(L);
    lua_rawset(L, idx);
    lua_pushnil(L);
    lua_setmetatable(L, idx);
    /* Keys set by raw access (rawset, table.insert) before the first use keep their
     * values, as they would have after a decode; the usual case has none. */
    lua_pushnil(L);
    bool merge = lua_next(L, idx) != 0;
    if (merge)
        lua_pop(L, 2);
    if (!s || decode(L, s, n, err, sizeof err, LAZY_NONE, merge ? 0 : idx) < 0)
        luaL_error(L, "json: cannot decode data: %s", s ? err : "no text");
    if (merge)
        merge_decoded(L, idx);
    lua_settop(L, top);
}

static int lazy_index(lua_State *L)
{
    mw_json_unlazy(L, 1);
    lua_settop(L, 2);
    lua_rawget(L, 1);
    return 1;
}

static int lazy_newindex(lua_State *L)
{
    mw_json_unlazy(L, 1);
    lua_settop(L, 3);
    lua_rawset(L, 1);
    return 0;
}

static int l_unlazy(lua_State *L)
{
    mw_json_unlazy(L, 1);
    return 0;
}

/* The base functions that look past metamethods, wrapped so that a lazy object is
 * decoded before they look (ipairs, unpack, # and table.* see an object's integer
 * keys only, which a lazy object does not have either). */
static const char lazy_wrappers[] =
    "local lazy, unlazy = ...\n"
    "local getmt, setmt, pairs0, next0, rawget0 = getmetatable, setmetatable, pairs, next, rawget\n"
    "function pairs(t) if getmt(t) == lazy then unlazy(t) end return pairs0(t) end\n"
    "function next(t, k) if getmt(t) == lazy then unlazy(t) end return next0(t, k) end\n"
    "function rawget(t, k) if getmt(t) == lazy then unlazy(t) end return rawget0(t, k) end\n"
    "function getmetatable(t) local mt = getmt(t) if mt ~= lazy then return mt end\n"
    "  unlazy(t) return getmt(t) end\n"
    "function setmetatable(t, mt) if getmt(t) == lazy then unlazy(t) end return setmt(t, mt) end\n";

void mw_json_lazy_install(lua_State *L)
{
    if (luaL_loadbuffer(L, lazy_wrappers, sizeof lazy_wrappers - 1, "=json.lazy"))
        lua_error(L);
    push_lazy_mt(L);
    lua_pushcfunction(L, l_unlazy);
    lua_call(L, 2, 0);
}

/* ---- encoding ---- */

struct enc {
    lua_State *L;
    struct mw_buf *out;
    int mt;          /* stack index of the array metatable */
    int order_mt;    /* stack index of the key-list marker */
    int lazy_mt;     /* stack index of the lazy objects' metatable */
    char *err;
    size_t errlen;
};

/* For each byte: 0 to copy it as is, else the letter after the backslash ('u' means
 * \u00XX), or 'U' for the start of a multi-byte sequence to check. */
static const char esc_tab[256] = {
    'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'b', 't', 'n', 'u', 'f', 'r', 'u', 'u',
    'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u',
    ['"'] = '"', ['\\'] = '\\', [0x80 ... 0xff] = 'U',
};

static int enc_fail(struct enc *e, const char *fmt, const char *arg)
{
    if (e->err && e->errlen)
        snprintf(e->err, e->errlen, fmt, arg);
    return -1;
}

/* Appends s[0..n) quoted, copying runs of plain bytes in one go; fails on bytes that
 * are not UTF-8. */
static int enc_string(struct enc *e, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s, *end = p + n, *run = p;
    struct mw_buf *out = e->out;

    mw_buf_reserve(out, n + 2);
    mw_buf_putc(out, '"');
    for (; p < end; p++) {
        char c = esc_tab[*p];
        if (!c)
            continue;
        if (c == 'U') {
            size_t len = mw_utf8_seq((const char *)p, (const char *)end);
            if (!len) {
                char what[64];
                snprintf(what, sizeof what, "byte %zu of a string", (size_t)(p - (const unsigned char *)s));
                return enc_fail(e, "invalid UTF-8 at %s", what);
            }
            p += len - 1;
            continue;
        }
        mw_buf_append(out, run, (size_t)(p - run));
        if (c == 'u') {
            char u[6] = { '\\', 'u', '0', '0', hex[*p >> 4], hex[*p & 15] };
            mw_buf_append(out, u, 6);
        } else {
            char two[2] = { '\\', c };
            mw_buf_append(out, two, 2);
        }
        run = p + 1;
    }
    mw_buf_append(out, run, (size_t)(end - run));
    mw_buf_putc(out, '"');
    return 0;
}

/* Appends an integer known to be exact (|v| < 2^53); -0 comes out as "0". */
static void enc_int(struct mw_buf *out, double v)
{
    char buf[24], *p = buf + sizeof buf;
    long long i = (long long)v;
    unsigned long long u = i < 0 ? 0ull - (unsigned long long)i : (unsigned long long)i;

    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (i < 0)
        *--p = '-';
    mw_buf_append(out, p, (size_t)(buf + sizeof buf - p));
}

static int is_exact_int(double v)
{
    return v == floor(v) && fabs(v) < MAX_EXACT_INT;
}

static int enc_number(struct enc *e, double v)
{
    char buf[32];
    int n = 0;

    if (isnan(v))
        return enc_fail(e, "cannot encode %s", "NaN");
    if (isinf(v))
        return enc_fail(e, "cannot encode %s", v > 0 ? "Infinity" : "-Infinity");
    if (is_exact_int(v)) {
        enc_int(e->out, v);
        return 0;
    }
    /* The shortest precision that reads back exactly; %.17g always does. */
    for (int prec = 15; prec <= 17; prec++) {
        n = snprintf(buf, sizeof buf, "%.*g", prec, v);
        if (prec == 17 || strtod(buf, NULL) == v)
            break;
    }
    mw_buf_append(e->out, buf, (size_t)n);
    return 0;
}

/* Object keys: strings, or integral numbers written as strings. */
static int enc_key(struct enc *e, int idx)
{
    lua_State *L = e->L;
    int t = lua_type(L, idx);

    if (t == LUA_TSTRING) {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n); /* already a string: no conversion */
        return enc_string(e, s, n);
    }
    if (t == LUA_TNUMBER && is_exact_int(lua_tonumber(L, idx))) {
        mw_buf_putc(e->out, '"');
        enc_int(e->out, lua_tonumber(L, idx));
        mw_buf_putc(e->out, '"');
        return 0;
    }
    if (t == LUA_TNUMBER)
        return enc_fail(e, "cannot encode a %s table key", "non-integer number");
    return enc_fail(e, "cannot encode a table key of type %s", lua_typename(L, t));
}

static int enc_value(struct enc *e, int idx, int depth);

/* 1 for a table marked as an array, 2 for a lazy object, else 0. */
static int table_kind(struct enc *e, int idx)
{
    int r = 0;
    if (!lua_getmetatable(e->L, idx))
        return 0;
    if (lua_rawequal(e->L, -1, slot_mt(e->L, e->lazy_mt, push_lazy_mt)))
        r = 2;
    else if (lua_rawequal(e->L, -1, slot_mt(e->L, e->mt, push_array_mt)))
        r = 1;
    lua_pop(e->L, 1);
    return r;
}

/* A lazy object that Lua never used: its text, as the client sent it (checked when
 * the message was decoded). Returns 0, or 1 when Lua changed it by raw access: then
 * it is decoded now, to be encoded as any object. */
static int enc_lazy(struct enc *e, int idx)
{
    lua_State *L = e->L;
    int n = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        if (++n > 1 || lua_touserdata(L, -1) != &raw_key) {
            lua_pop(L, 1);
            mw_json_unlazy(L, idx);
            return 1;
        }
    }
    size_t len;
    lua_pushlightuserdata(L, &raw_key);
    lua_rawget(L, idx);
    const char *text = lua_tolstring(L, -1, &len);
    mw_buf_append(e->out, text, len);
    lua_pop(L, 1);
    return 0;
}

/* Returns n if the table's keys are exactly 1..n with n > 0, else 0. */
static size_t sequence_len(lua_State *L, int idx)
{
    size_t n = lua_objlen(L, idx), count = 0;

    if (n == 0)
        return 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        double k;
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TNUMBER) {
            lua_pop(L, 1);
            return 0;
        }
        k = lua_tonumber(L, -1);
        if (k < 1 || k > (double)n || k != floor(k)) {
            lua_pop(L, 1);
            return 0;
        }
        count++;
    }
    return count == n ? n : 0;
}

/* Elements 1..n; holes (nil) encode as null. */
static int enc_array(struct enc *e, int idx, size_t n, int depth)
{
    mw_buf_putc(e->out, '[');
    for (size_t i = 1; i <= n; i++) {
        if (i > 1)
            mw_buf_putc(e->out, ',');
        lua_rawgeti(e->L, idx, (int)i);
        if (enc_value(e, lua_gettop(e->L), depth))
            return -1;
        lua_pop(e->L, 1);
    }
    mw_buf_putc(e->out, ']');
    return 0;
}

/* ---- object key order ----
 * Objects come out in an order that does not depend on Lua's hash layout: at the top
 * level the envelope fields first, in protocol order; then, for an object decoded
 * from JSON, the keys in the order they came (its metatable lists them); then every
 * other key sorted by its bytes. */

/* The rank of an envelope field (0 for `type` ... 8 for `ts`), or NENVELOPE. */
static int envelope_rank(const char *s, size_t n)
{
    switch (n) {
    case 2:
        return s[0] == 'i' && s[1] == 'd' ? 3 : s[0] == 't' && s[1] == 's' ? 8 : NENVELOPE;
    case 3:
        return memcmp(s, "seq", 3) ? NENVELOPE : 7;
    case 4:
        switch (s[0]) {
        case 't': return memcmp(s, "type", 4) ? NENVELOPE : 0;
        case 'r': return memcmp(s, "room", 4) ? NENVELOPE : 1;
        case 'f': return memcmp(s, "from", 4) ? NENVELOPE : 2;
        case 'c': return memcmp(s, "code", 4) ? NENVELOPE : 4;
        case 'd': return memcmp(s, "data", 4) ? NENVELOPE : 6;
        }
        return NENVELOPE;
    case 7:
        return memcmp(s, "message", 7) ? NENVELOPE : 5;
    }
    return NENVELOPE;
}

/* A member to write, sorted by rank (an envelope field's at the top level, then
 * NENVELOPE for listed keys, NENVELOPE + 1 for the others), then pos (the place in
 * the key list), then the key's bytes. Key and value are on the Lua stack at slot
 * and slot + 1, or, for members past MAX_STACKED, looked up again by key. */
struct member {
    const char *s;    /* a string key's bytes (kept alive by the table), or NULL */
    size_t n;
    int rank;
    int pos;
    int slot;         /* -1: not on the stack */
    char num[24];     /* an integer key's text */
};

#define MAX_STACKED 256

static const char *member_key(const struct member *m)
{
    return m->s ? m->s : m->num;
}

static int member_cmp(const void *a, const void *b)
{
    const struct member *x = a, *y = b;
    if (x->rank != y->rank)
        return x->rank - y->rank;
    if (x->pos != y->pos)
        return x->pos - y->pos;
    int c = memcmp(member_key(x), member_key(y), x->n < y->n ? x->n : y->n);
    return c ? c : (x->n > y->n) - (x->n < y->n);
}

/* Appends `"key":value` (after a comma unless first) for the key at stack index k and
 * the value at k + 1. */
static int enc_pair(struct enc *e, int k, int depth, int *first)
{
    if (!*first)
        mw_buf_putc(e->out, ',');
    *first = 0;
    if (enc_key(e, k))
        return -1;
    mw_buf_putc(e->out, ':');
    return enc_value(e, k + 1, depth);
}

/* Pushes the key list of an object decoded from JSON and returns 1; 0 for any other. */
static int push_key_list(struct enc *e, int idx)
{
    lua_State *L = e->L;
    if (!lua_getmetatable(L, idx))
        return 0;
    if (lua_getmetatable(L, -1)) {
        int ours = lua_rawequal(L, -1, slot_mt(L, e->order_mt, push_order_mt));
        lua_pop(L, 1);
        if (ours)
            return 1;
    }
    lua_pop(L, 1);
    return 0;
}

/* Pushes a table mapping each key of the list to its place (1..n). */
static void push_key_places(lua_State *L, int list)
{
    size_t len = lua_objlen(L, list);
    lua_createtable(L, 0, (int)len);
    for (size_t i = 1; i <= len; i++) {
        lua_rawgeti(L, list, (int)i);
        lua_pushinteger(L, (lua_Integer)i);
        lua_rawset(L, -3);
    }
}

/* Writes the listed members of a decoded object in the list's order; returns how
 * many it wrote, or -1. */
static int enc_listed(struct enc *e, int idx, int list, int depth, int *first)
{
    lua_State *L = e->L;
    int n = 0;
    for (size_t i = 1, len = lua_objlen(L, list); i <= len; i++) {
        lua_rawgeti(L, list, (int)i);
        lua_pushvalue(L, -1);
        lua_rawget(L, idx);
        if (!lua_isnil(L, -1)) {
            if (enc_pair(e, lua_gettop(L) - 1, depth, first))
                return -1;
            n++;
        }
        lua_pop(L, 2);
    }
    return n;
}

static int count_keys(lua_State *L, int idx)
{
    int n = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        n++;
    }
    return n;
}

struct members {
    struct member *m;
    size_t n, cap;
    struct member small[16];
};

static struct member *members_add(struct members *ms)
{
    if (ms->n == ms->cap) {
        struct member *grown = mw_malloc(2 * ms->cap * sizeof *grown);
        memcpy(grown, ms->m, ms->n * sizeof *grown);
        if (ms->m != ms->small)
            free(ms->m);
        ms->m = grown;
        ms->cap *= 2;
    }
    return &ms->m[ms->n++];
}

/* Collects the object's members into ms, ranked (see struct member); with `places`
 * (from push_key_places) and `skip_listed`, leaves the listed keys out. The first
 * MAX_STACKED keys and values stay on the stack. Returns 0, or -1 for a key JSON
 * cannot have. */
static int collect(struct enc *e, int idx, int top, int places, int skip_listed,
                   struct members *ms)
{
    lua_State *L = e->L;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        int kt = lua_type(L, -2), pos = 0;
        if (places) {
            lua_pushvalue(L, -2);
            lua_rawget(L, places);
            pos = (int)lua_tointeger(L, -1);
            lua_pop(L, 1);
            if (pos && skip_listed) {
                lua_pop(L, 1);
                continue;
            }
        }
        struct member *m = members_add(ms);
        if (kt == LUA_TSTRING) {
            m->s = lua_tolstring(L, -2, &m->n);
            m->rank = top ? envelope_rank(m->s, m->n) : (int)NENVELOPE;
        } else if (kt == LUA_TNUMBER && is_exact_int(lua_tonumber(L, -2))) {
            m->s = NULL;
            m->n = (size_t)snprintf(m->num, sizeof m->num, "%.0f", lua_tonumber(L, -2));
            m->rank = NENVELOPE;
        } else {
            return enc_key(e, lua_gettop(L) - 1);
        }
        m->pos = m->rank < (int)NENVELOPE ? 0 : pos;
        if (m->rank == (int)NENVELOPE && !pos)
            m->rank++;
        if (ms->n <= MAX_STACKED && lua_checkstack(L, 4)) {
            m->slot = lua_gettop(L) - 1; /* the pair stays; iterate on a copy of the key */
            lua_pushvalue(L, -2);
        } else {
            m->slot = -1;
            lua_pop(L, 1);
        }
    }
    return 0;
}

static int enc_collected(struct enc *e, int idx, int depth, struct members *ms, int *first)
{
    lua_State *L = e->L;
    if (ms->n > 16) {
        qsort(ms->m, ms->n, sizeof *ms->m, member_cmp);
    } else { /* the usual few keys: insertion sort, without qsort's overhead */
        for (size_t i = 1; i < ms->n; i++) {
            struct member t = ms->m[i];
            size_t j = i;
            for (; j > 0 && member_cmp(&ms->m[j - 1], &t) > 0; j--)
                ms->m[j] = ms->m[j - 1];
            ms->m[j] = t;
        }
    }
    for (size_t i = 0; i < ms->n; i++) {
        const struct member *m = &ms->m[i];
        if (m->slot >= 0) {
            if (enc_pair(e, m->slot, depth, first))
                return -1;
            continue;
        }
        if (m->s)
            lua_pushlstring(L, m->s, m->n);
        else
            lua_pushnumber(L, strtod(m->num, NULL));
        lua_pushvalue(L, -1);
        lua_rawget(L, idx);
        if (enc_pair(e, lua_gettop(L) - 1, depth, first))
            return -1;
        lua_pop(L, 2);
    }
    return 0;
}

/* On error the stack is left as is; mw_json_encode resets it. */
static int enc_object(struct enc *e, int idx, int depth)
{
    lua_State *L = e->L;
    int first = 1, top = depth == 1, base = lua_gettop(L), list = 0, places = 0, rc = -1;
    struct members ms;

    ms.m = ms.small;
    ms.n = 0;
    ms.cap = sizeof ms.small / sizeof *ms.small;
    mw_buf_putc(e->out, '{');
    if (push_key_list(e, idx))
        list = lua_gettop(L);
    if (list && !top) {
        /* The common case, a client's data: the listed keys, and done unless Lua
         * added keys to the object. */
        int written = enc_listed(e, idx, list, depth, &first);
        if (written < 0)
            goto out;
        if (count_keys(L, idx) == written)
            goto close;
    }
    if (list) {
        push_key_places(L, list);
        places = lua_gettop(L);
    }
    if (collect(e, idx, top, places, list && !top, &ms) < 0 ||
        enc_collected(e, idx, depth, &ms, &first) < 0)
        goto out;
close:
    mw_buf_putc(e->out, '}');
    lua_settop(L, base);
    rc = 0;
out:
    if (ms.m != ms.small)
        free(ms.m);
    return rc;
}

static int enc_table(struct enc *e, int idx, int depth)
{
    size_t n;

    if (depth > MW_JSON_MAX_DEPTH || !lua_checkstack(e->L, 4))
        return enc_fail(e, "%s", "nesting too deep (cycle?)");
    switch (table_kind(e, idx)) {
    case 1:
        return enc_array(e, idx, lua_objlen(e->L, idx), depth);
    case 2:
        if (enc_lazy(e, idx) == 0)
            return 0;
        break;
    }
    n = sequence_len(e->L, idx);
    if (n)
        return enc_array(e, idx, n, depth);
    return enc_object(e, idx, depth);
}

static int enc_value(struct enc *e, int idx, int depth)
{
    lua_State *L = e->L;
    int t = lua_type(L, idx);

    switch (t) {
    case LUA_TNIL:
        mw_buf_append(e->out, "null", 4);
        return 0;
    case LUA_TBOOLEAN:
        if (lua_toboolean(L, idx))
            mw_buf_append(e->out, "true", 4);
        else
            mw_buf_append(e->out, "false", 5);
        return 0;
    case LUA_TNUMBER:
        return enc_number(e, lua_tonumber(L, idx));
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        return enc_string(e, s, n);
    }
    case LUA_TTABLE:
        return enc_table(e, idx, depth + 1);
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, idx) == NULL) {
            mw_buf_append(e->out, "null", 4);
            return 0;
        }
        /* fall through */
    default:
        return enc_fail(e, "cannot encode a %s", lua_typename(L, t));
    }
}

static int encode(lua_State *L, int idx, struct mw_buf *out, char *err, size_t errlen, int depth)
{
    int top = lua_gettop(L);
    size_t start = out->len;
    struct enc e = { L, out, top + 1, top + 2, top + 3, err, errlen };
    int rc;

    if (idx < 0 && idx > LUA_REGISTRYINDEX)
        idx = top + idx + 1;
    if (!lua_checkstack(L, 8))
        return enc_fail(&e, "%s", "out of Lua stack");
    if (lua_type(L, idx) == LUA_TTABLE) { /* the metatables' slots, filled when needed */
        lua_pushnil(L);
        lua_pushnil(L);
        lua_pushnil(L);
    }
    rc = enc_value(&e, idx, depth);
    lua_settop(L, top);
    if (rc)
        out->len = start;
    return rc;
}

int mw_json_encode(lua_State *L, int idx, struct mw_buf *out, char *err, size_t errlen)
{
    return encode(L, idx, out, err, errlen, 0);
}

int mw_json_encode_member(lua_State *L, int idx, struct mw_buf *out, char *err, size_t errlen)
{
    return encode(L, idx, out, err, errlen, 1);
}

/* ---- the Lua module ---- */

/* json.encode(v) -> string; raises "json.encode: <why>". */
static int l_encode(lua_State *L)
{
    struct mw_buf b = { 0 };
    char err[128];

    luaL_checkany(L, 1);
    if (mw_json_encode(L, 1, &b, err, sizeof err)) {
        mw_buf_free(&b);
        return luaL_error(L, "json.encode: %s", err);
    }
    lua_pushlstring(L, b.p, b.len);
    mw_buf_free(&b);
    return 1;
}

/* json.decode(s) -> value | nil, err. */
static int l_decode(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    char err[128];

    if (mw_json_decode(L, s, n, err, sizeof err)) {
        lua_pushnil(L);
        lua_pushstring(L, err);
        return 2;
    }
    return 1;
}

/* json.array(t?) -> t (or a new table) with the array metatable; replaces any other
 * metatable t had. */
static int l_array(lua_State *L)
{
    if (lua_isnoneornil(L, 1)) {
        lua_settop(L, 0);
        lua_createtable(L, 0, 0);
    } else {
        luaL_checktype(L, 1, LUA_TTABLE);
        lua_settop(L, 1);
        mw_json_unlazy(L, 1);
    }
    push_array_mt(L);
    lua_setmetatable(L, 1);
    return 1;
}

int mw_json_is_array(lua_State *L, int idx)
{
    int r = 0;

    if (lua_type(L, idx) == LUA_TTABLE && lua_getmetatable(L, idx)) {
        push_array_mt(L);
        r = lua_rawequal(L, -1, -2);
        lua_pop(L, 2);
    }
    return r;
}

/* json.is_array(v) -> true if v is a table carrying the array metatable. */
static int l_is_array(lua_State *L)
{
    lua_pushboolean(L, mw_json_is_array(L, 1));
    return 1;
}

static const luaL_Reg json_funcs[] = {
    { "encode", l_encode },
    { "decode", l_decode },
    { "array", l_array },
    { "is_array", l_is_array },
    { NULL, NULL },
};

int luaopen_moonwire_json(lua_State *L)
{
    lua_createtable(L, 0, 6);
    luaL_register(L, NULL, json_funcs);
    lua_pushlightuserdata(L, NULL);
    lua_setfield(L, -2, "null");
    push_array_mt(L);
    lua_setfield(L, -2, "array_mt");
    return 1;
}

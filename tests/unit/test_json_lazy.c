/* test_json_lazy.c - a message's lazy `data` (core/lua_json.c, "lazy data"): kept as
 * the client's text while Lua does not use it, an ordinary decoded object as soon as
 * it does, and refused with the same errors as a full decode. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

#include "base/buf.h"
#include "base/lua_json.h"
#include "json_assert.h"

/* decode_message(text) and decode_lazy(text) -> value | nil, err: the decoders the
 * router and history use (upvalue 1: 0 for the first, 1 for the second). */
static int l_decode(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    char err[128];
    int rc = lua_tointeger(L, lua_upvalueindex(1)) ? mw_json_decode_lazy(L, s, n, err, sizeof err)
                                                   : mw_json_decode_message(L, s, n, err, sizeof err);
    if (rc < 0) {
        lua_pushnil(L);
        lua_pushstring(L, err);
        return 2;
    }
    return 1;
}

static int setup(void **state)
{
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    mw_json_lazy_install(L);
    lua_pushcfunction(L, luaopen_moonwire_json);
    lua_call(L, 0, 1);
    lua_setglobal(L, "json");
    for (int lazy = 0; lazy < 2; lazy++) {
        lua_pushinteger(L, lazy);
        lua_pushcclosure(L, l_decode, 1);
        lua_setglobal(L, lazy ? "decode_lazy" : "decode_message");
    }
    *state = L;
    return 0;
}

static int teardown(void **state)
{
    lua_close(*state);
    return 0;
}

/* Runs `code` (a chunk returning one value; `text` is the message) and asserts the
 * value's encoding. */
static void assert_encodes(lua_State *L, const char *text, const char *code, const char *expect)
{
    lua_pushstring(L, text);
    lua_setglobal(L, "text");
    assert_lua_encodes(L, code, expect);
}

/* Runs `code`, which must return true. */
static void assert_lua(lua_State *L, const char *text, const char *code)
{
    lua_pushstring(L, text);
    lua_setglobal(L, "text");
    if (luaL_loadstring(L, code) || lua_pcall(L, 0, 1, 0))
        fail_msg("lua error: %s\nin: %s", lua_tostring(L, -1), code);
    if (!lua_toboolean(L, -1))
        fail_msg("false: %s", code);
    lua_pop(L, 1);
}

/* Spacing, escapes, number spellings and a duplicate key that a decode and encode
 * would all rewrite. */
#define DATA "{ \"z\" : 1.50, \"a\":\"caf\\u00e9 \\/ \\ud83d\\ude00\", \"n\":[1e2, {}], \"z\":2 }"
#define MSG "{\"type\":\"chat:message\",\"room\":\"r\",\"data\":" DATA ",\"id\":7}"

static void test_untouched_data_goes_out_as_sent(void **state)
{
    lua_State *L = *state;
    /* Passed on in a new envelope, as the chat app does; also inside other tables. */
    assert_encodes(L, MSG,
                   "local m = decode_message(text) return { type = m.type, from = 'ana', data = m.data }",
                   "{\"type\":\"chat:message\",\"from\":\"ana\",\"data\":" DATA "}");
    assert_encodes(L, MSG, "local m = decode_message(text) return { list = { m.data, m.data } }",
                   "{\"list\":[" DATA "," DATA "]}");
    /* The rest of the message is decoded as usual. */
    assert_lua(L, MSG, "local m = decode_message(text) "
                       "return m.type == 'chat:message' and m.room == 'r' and m.id == 7 "
                       "and type(m.data) == 'table'");
}

static void test_used_data_is_an_ordinary_object(void **state)
{
    lua_State *L = *state;
    /* Read: the values, and from then on the encoder's usual text (order kept). */
    assert_lua(L, MSG, "local d = decode_message(text).data "
                       "return d.z == 2 and d.a == 'caf\\195\\169 / \\240\\159\\152\\128' "
                       "and json.is_array(d.n) and d.n[1] == 100 and d.missing == nil");
    assert_encodes(L, MSG, "local d = decode_message(text).data local _ = d.z return d",
                   "{\"z\":2,\"a\":\"caf\xc3\xa9 / \xf0\x9f\x98\x80\",\"n\":[100,{}]}");
    /* Changed. */
    assert_encodes(L, MSG, "local d = decode_message(text).data d.b = true d.a = nil return d",
                   "{\"z\":2,\"n\":[100,{}],\"b\":true}");
    /* Walked with the functions that look past metamethods. */
    assert_lua(L, MSG, "local d = decode_message(text).data local n = 0 "
                       "for k, v in pairs(d) do n = n + 1 end return n == 3");
    assert_lua(L, MSG, "local d = decode_message(text).data return next(d) ~= nil");
    assert_lua(L, MSG, "local d = decode_message(text).data return rawget(d, 'z') == 2");
    assert_lua(L, MSG, "local d = decode_message(text).data "
                       "return type(getmetatable(d)) == 'table' and getmetatable(d)[1] == 'z'");
    assert_encodes(L, MSG, "local d = decode_message(text).data return setmetatable(d, nil)",
                   "{\"a\":\"caf\xc3\xa9 / \xf0\x9f\x98\x80\",\"n\":[100,{}],\"z\":2}");
    /* Marked as an array: decoded first (its keys are then what an array sees). */
    assert_lua(L, MSG, "local d = json.array(decode_message(text).data) return d.z == 2");
}

/* rawset and table.insert skip __newindex: what they set is kept, as it would be on
 * a decoded table, and the rest decoded around it. */
static void test_raw_writes_before_use(void **state)
{
    lua_State *L = *state;
    assert_encodes(L, MSG, "local d = decode_message(text).data rawset(d, 'z', 9) "
                           "rawset(d, 'new', 1) return d",
                   "{\"z\":9,\"a\":\"caf\xc3\xa9 / \xf0\x9f\x98\x80\",\"n\":[100,{}],\"new\":1}");
    assert_lua(L, MSG, "local d = decode_message(text).data table.insert(d, 'x') "
                       "return d[1] == 'x' and d.z == 2");
}

static void test_only_the_messages_data_object_is_lazy(void **state)
{
    lua_State *L = *state;
    /* Not an object: decoded at once (arrays keep #, ipairs and is_array). */
    assert_lua(L, "{\"type\":\"t\",\"data\":[3,4]}",
               "local d = decode_message(text).data return #d == 2 and json.is_array(d)");
    assert_lua(L, "{\"type\":\"t\",\"data\":\"s\"}", "return decode_message(text).data == 's'");
    assert_lua(L, "{\"type\":\"t\",\"data\":null}", "return decode_message(text).data == json.null");
    /* A `data` below the top level, and json.decode, are ordinary. */
    assert_encodes(L, "{\"x\":{\"data\":{ \"b\" : 1 }}}", "return decode_message(text)",
                   "{\"x\":{\"data\":{\"b\":1}}}");
    assert_encodes(L, "{\"data\":{ \"b\" : 1 }}", "return json.decode(text)", "{\"data\":{\"b\":1}}");
    assert_lua(L, "[{\"data\":{}}]", "return json.is_array(decode_message(text))");
}

/* Each bad message gets exactly the error a full decode gives. */
static void test_bad_data_is_refused_as_before(void **state)
{
    lua_State *L = *state;
    static const char *const bad[] = {
        "{\"type\":\"t\",\"data\":{\"a\":\"\xff\"}}",            /* not UTF-8 */
        "{\"type\":\"t\",\"data\":{\"a\":\"\xed\xa0\x80\"}}",    /* an encoded surrogate */
        "{\"type\":\"t\",\"data\":{\"a\":\"\\ud800x\"}}",        /* a lone surrogate escape */
        "{\"type\":\"t\",\"data\":{\"a\":\"\\q\"}}",             /* a bad escape */
        "{\"type\":\"t\",\"data\":{\"a\":\"\x01\"}}",            /* a control character */
        "{\"type\":\"t\",\"data\":{\"a\":1e400}}",               /* out of range */
        "{\"type\":\"t\",\"data\":{\"a\":01}}",                  /* leading zero */
        "{\"type\":\"t\",\"data\":{\"a\":tru}}",
        "{\"type\":\"t\",\"data\":{\"a\" 1}}",
        "{\"type\":\"t\",\"data\":{\"a\":1,}}",
        "{\"type\":\"t\",\"data\":{\"a\":1}",                    /* unterminated */
        "{\"type\":\"t\",\"data\":{\"a\":1}} x",                 /* trailing garbage */
        "{\"type\":\"t\",\"data\":{\"a\":\"unterminated}}",
    };
    char want[128], got[128];
    int top = lua_gettop(L);
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_int_equal(mw_json_decode(L, bad[i], strlen(bad[i]), want, sizeof want), -1);
        assert_int_equal(mw_json_decode_message(L, bad[i], strlen(bad[i]), got, sizeof got), -1);
        assert_string_equal(got, want);
        assert_int_equal(lua_gettop(L), top);
    }
    /* Nesting past the limit inside data, and just within it. */
    for (int depth = MW_JSON_MAX_DEPTH - 1; depth <= MW_JSON_MAX_DEPTH; depth++) {
        struct mw_buf b = { 0 };
        mw_buf_puts(&b, "{\"data\":");
        for (int i = 0; i < depth; i++)
            mw_buf_puts(&b, "{\"a\":");
        mw_buf_puts(&b, "1");
        for (int i = 0; i < depth; i++)
            mw_buf_putc(&b, '}');
        mw_buf_putc(&b, '}');
        int full = mw_json_decode(L, b.p, b.len, want, sizeof want);
        int lazy = mw_json_decode_message(L, b.p, b.len, got, sizeof got);
        assert_int_equal(full, depth < MW_JSON_MAX_DEPTH ? 0 : -1);
        assert_int_equal(lazy, full);
        if (full < 0)
            assert_string_equal(got, want);
        else
            lua_pop(L, 2);
        mw_buf_free(&b);
    }
    assert_int_equal(lua_gettop(L), top);
}

/* A large data object: checked without building anything, decoded whole on use. */
static void test_large_data(void **state)
{
    lua_State *L = *state;
    struct mw_buf b = { 0 };
    mw_buf_puts(&b, "{\"type\":\"t\",\"data\":{");
    for (int i = 0; i < 5000; i++)
        mw_buf_printf(&b, "%s\"k%d\":[%d,\"v\"]", i ? "," : "", i, i);
    mw_buf_puts(&b, "}}");
    mw_buf_putc(&b, '\0');
    assert_lua(L, b.p, "local d = decode_message(text).data return d.k4999[1] == 4999");
    mw_buf_free(&b);
}

/* History entries (mw_json_decode_lazy): a whole object kept as text until used. */
static void test_whole_object_lazy(void **state)
{
    lua_State *L = *state;
    assert_encodes(L, " " MSG " ", "return json.array({ decode_lazy(text), decode_lazy(text) })",
                   "[" MSG "," MSG "]");
    assert_lua(L, MSG, "local e = decode_lazy(text) return e.id == 7 and e.data.z == 2");
    /* A list (presence): its objects lazy, the list an ordinary array. */
    assert_encodes(L, "[{ \"u\" : 1 }, 2, [{ }], {\"v\":{ }}]", "return decode_lazy(text)",
                   "[{ \"u\" : 1 },2,[{}],{\"v\":{ }}]");
    assert_lua(L, "[{\"u\":1},2]", "local t = decode_lazy(text) "
                                   "return json.is_array(t) and #t == 2 and t[1].u == 1");
    char want[128], got[128];
    static const char bad[] = "{\"a\":\"\\ud800\"}";
    assert_int_equal(mw_json_decode(L, bad, sizeof bad - 1, want, sizeof want), -1);
    assert_int_equal(mw_json_decode_lazy(L, bad, sizeof bad - 1, got, sizeof got), -1);
    assert_string_equal(got, want);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_untouched_data_goes_out_as_sent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_used_data_is_an_ordinary_object, setup, teardown),
        cmocka_unit_test_setup_teardown(test_raw_writes_before_use, setup, teardown),
        cmocka_unit_test_setup_teardown(test_only_the_messages_data_object_is_lazy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_data_is_refused_as_before, setup, teardown),
        cmocka_unit_test_setup_teardown(test_large_data, setup, teardown),
        cmocka_unit_test_setup_teardown(test_whole_object_lazy, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

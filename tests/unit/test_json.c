/* test_json.c - unit tests for core/base/lua_json.c through a real LuaJIT state. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

#include "base/buf.h"
#include "base/lua_json.h"

/* ---- helpers ---- */

/* A state with the standard libraries and the module as the global `json`. */
static int setup(void **state)
{
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    lua_pushcfunction(L, luaopen_moonwire_json);
    lua_call(L, 0, 1);
    lua_setglobal(L, "json");
    *state = L;
    return 0;
}

static int teardown(void **state)
{
    lua_close(*state);
    return 0;
}

/* Decodes s[0..n) from an exact-size heap copy (no terminating NUL, so the sanitizer
 * catches any read past the end). Returns mw_json_decode's result. */
static int decode_n(lua_State *L, const char *s, size_t n, char *err, size_t errlen)
{
    char *copy = malloc(n ? n : 1);
    int rc;

    memcpy(copy, s, n);
    rc = mw_json_decode(L, copy, n, err, errlen);
    free(copy);
    return rc;
}

/* Decodes json and asserts success; the value is left on the stack. */
static void decode_ok(lua_State *L, const char *json)
{
    char err[128] = "";
    int top = lua_gettop(L);

    if (decode_n(L, json, strlen(json), err, sizeof err))
        fail_msg("decode(%s) failed: %s", json, err);
    assert_int_equal(lua_gettop(L), top + 1);
}

static void assert_decode_error(lua_State *L, const char *json, size_t n, const char *msg)
{
    char err[128] = "";
    int top = lua_gettop(L);

    if (decode_n(L, json, n, err, sizeof err) == 0)
        fail_msg("decode(%.*s) succeeded, expected: %s", (int)n, json, msg);
    assert_string_equal(err, msg);
    assert_int_equal(lua_gettop(L), top);
}
#define DECODE_ERR(L, json, msg) assert_decode_error((L), (json), strlen(json), (msg))

/* Encodes the top value, pops it, and asserts the text. */
static void assert_encodes_top(lua_State *L, const char *expect)
{
    struct mw_buf b = { 0 };
    char err[128] = "";
    int top = lua_gettop(L);

    if (mw_json_encode(L, -1, &b, err, sizeof err))
        fail_msg("encode failed (%s), expected %s", err, expect);
    assert_int_equal(lua_gettop(L), top);
    mw_buf_putc(&b, '\0');
    assert_string_equal(b.p, expect);
    mw_buf_free(&b);
    lua_pop(L, 1);
}

static void run_lua(lua_State *L, const char *code)
{
    if (luaL_dostring(L, code))
        fail_msg("lua error: %s\nin: %s", lua_tostring(L, -1), code);
}

/* Evaluates the Lua chunk `code` (which returns one value) and pushes its result. */
static void push_lua(lua_State *L, const char *code)
{
    int top = lua_gettop(L);
    run_lua(L, code);
    assert_int_equal(lua_gettop(L), top + 1);
}

static void assert_encodes_lua(lua_State *L, const char *code, const char *expect)
{
    push_lua(L, code);
    assert_encodes_top(L, expect);
}

static void assert_encode_error_lua(lua_State *L, const char *code, const char *msg)
{
    struct mw_buf b = { 0 };
    char err[128] = "";
    int top;

    push_lua(L, code);
    top = lua_gettop(L);
    mw_buf_puts(&b, "prefix");
    if (mw_json_encode(L, -1, &b, err, sizeof err) == 0)
        fail_msg("encode of `%s` succeeded, expected: %s", code, msg);
    assert_string_equal(err, msg);
    assert_int_equal(lua_gettop(L), top);
    assert_int_equal(b.len, 6); /* output rolled back */
    mw_buf_free(&b);
    lua_pop(L, 1);
}

/* Decodes then encodes, asserting the text comes back as expect. */
static void assert_roundtrip_as(lua_State *L, const char *json, const char *expect)
{
    decode_ok(L, json);
    assert_encodes_top(L, expect);
}
#define ROUNDTRIP(L, json) assert_roundtrip_as((L), (json), (json))

/* Decodes json into the global `v` and runs the Lua assertions in check. */
static void decode_check(lua_State *L, const char *json, const char *check)
{
    decode_ok(L, json);
    lua_setglobal(L, "v");
    run_lua(L, check);
}

static void assert_decodes_to_bytes(lua_State *L, const char *json, const char *bytes, size_t n)
{
    size_t len;
    const char *s;

    decode_ok(L, json);
    assert_int_equal(lua_type(L, -1), LUA_TSTRING);
    s = lua_tolstring(L, -1, &len);
    assert_int_equal(len, n);
    assert_memory_equal(s, bytes, n);
    lua_pop(L, 1);
}
#define DECODES_TO(L, json, lit) assert_decodes_to_bytes((L), (json), (lit), sizeof(lit) - 1)

static double decode_number(lua_State *L, const char *json)
{
    double v;
    decode_ok(L, json);
    assert_int_equal(lua_type(L, -1), LUA_TNUMBER);
    v = lua_tonumber(L, -1);
    lua_pop(L, 1);
    return v;
}

/* n copies of open followed by n copies of close. */
static char *nested(const char *open, const char *inner, const char *close, int n)
{
    size_t lo = strlen(open), li = strlen(inner), lc = strlen(close);
    char *s = malloc((lo + lc) * (size_t)n + li + 1), *p = s;

    for (int i = 0; i < n; i++, p += lo)
        memcpy(p, open, lo);
    memcpy(p, inner, li);
    p += li;
    for (int i = 0; i < n; i++, p += lc)
        memcpy(p, close, lc);
    *p = '\0';
    return s;
}

/* ---- round trips ---- */

static void test_roundtrip_empty_containers(void **state)
{
    lua_State *L = *state;

    ROUNDTRIP(L, "[]");
    ROUNDTRIP(L, "{}");
    ROUNDTRIP(L, "{\"a\":[]}");
    ROUNDTRIP(L, "{\"a\":{}}");
    ROUNDTRIP(L, "[[],{},[[]]]");
    ROUNDTRIP(L, "{\"meta\":{\"tags\":[]}}");
}

static void test_roundtrip_nested(void **state)
{
    lua_State *L = *state;

    ROUNDTRIP(L, "[1,[2,[3,{\"a\":[true,false,null]}]]]");
    ROUNDTRIP(L, "{\"a\":{\"b\":{\"c\":\"d\"}}}");
    ROUNDTRIP(L, "[{\"x\":[{\"y\":[]}]},\"s\",-1.5,0]");
    ROUNDTRIP(L, "\"just a string\"");
    ROUNDTRIP(L, "true");
    ROUNDTRIP(L, "false");
    ROUNDTRIP(L, "null");
    ROUNDTRIP(L, "42");
    assert_roundtrip_as(L, " \t\n\r[ 1 , { \"a\" : [ ] } ,\"x\" ]\r\n ",
                        "[1,{\"a\":[]},\"x\"]");
}

/* Every byte below 0x80 and one sequence of each UTF-8 length, through encode and
 * decode and back. */
static void test_roundtrip_all_bytes(void **state)
{
    lua_State *L = *state;
    struct mw_buf b = { 0 };
    static const char wide[] = "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf";
    char s[128 + sizeof wide - 1], err[128];
    const char *back;
    size_t n;

    for (int i = 0; i < 128; i++)
        s[i] = (char)i;
    memcpy(s + 128, wide, sizeof wide - 1);
    lua_pushlstring(L, s, sizeof s);
    assert_int_equal(mw_json_encode(L, -1, &b, err, sizeof err), 0);
    lua_pop(L, 1);
    assert_int_equal(decode_n(L, b.p, b.len, err, sizeof err), 0);
    back = lua_tolstring(L, -1, &n);
    assert_int_equal(n, sizeof s);
    assert_memory_equal(back, s, sizeof s);
    lua_pop(L, 1);
    mw_buf_free(&b);
}

/* Text that is not UTF-8 is refused both ways, wherever it sits (a browser drops the
 * connection on the first invalid byte of a text frame). */
static void test_invalid_utf8(void **state)
{
    lua_State *L = *state;

    DECODE_ERR(L, "\"ab\xff\"", "invalid UTF-8 in string at offset 3");
    DECODE_ERR(L, "\"\xc0\xaf\"", "invalid UTF-8 in string at offset 1");      /* overlong */
    DECODE_ERR(L, "\"\xed\xa0\x80\"", "invalid UTF-8 in string at offset 1");  /* surrogate */
    DECODE_ERR(L, "\"\xf4\x90\x80\x80\"", "invalid UTF-8 in string at offset 1");
    DECODE_ERR(L, "\"\xe2\x82\"", "invalid UTF-8 in string at offset 1");     /* truncated */
    DECODE_ERR(L, "\"a\\n\xfe\"", "invalid UTF-8 in string at offset 4"); /* after an escape */
    DECODE_ERR(L, "{\"k\xff\":1}", "invalid UTF-8 in string at offset 3");   /* in a key */
    DECODE_ERR(L, "[\"ok\",\"\xc3\"]", "invalid UTF-8 in string at offset 7");

    assert_encode_error_lua(L, "return 'ab\\255'", "invalid UTF-8 at byte 2 of a string");
    assert_encode_error_lua(L, "return {x = {'\\237\\160\\128'}}",
                            "invalid UTF-8 at byte 0 of a string");
    assert_encode_error_lua(L, "return {['k\\192\\175'] = 1}",
                            "invalid UTF-8 at byte 1 of a string");
    assert_encodes_lua(L, "return 'caf\\195\\169'", "\"caf\xc3\xa9\"");
}

/* A byte in a string that needs a look (a quote, a backslash, a control character,
 * UTF-8, a bad byte) is found at every place, decoding and encoding. */
static void test_special_bytes_at_every_place(void **state)
{
    lua_State *L = *state;
    static const char *const specials[] = { "\\\"", "\\\\", "\\n", "\\u0001", "\xc3\xa9", "\x7f" };
    static const char *const raw[] = { "\"", "\\", "\n", "\x01", "\xc3\xa9", "\x7f" };
    struct mw_buf b = { 0 };
    char json[96], want[64], err[128];
    for (size_t k = 0; k < sizeof specials / sizeof *specials; k++) {
        for (int at = 0; at <= 20; at++) {
            /* "xxx<special>yyy" with the special at byte `at` of 24 or so */
            int n = snprintf(json, sizeof json, "\"%.*s%s%.*s\"", at, "aaaaaaaaaaaaaaaaaaaaa",
                             specials[k], 20 - at, "bbbbbbbbbbbbbbbbbbbbb");
            snprintf(want, sizeof want, "%.*s%s%.*s", at, "aaaaaaaaaaaaaaaaaaaaa", raw[k], 20 - at,
                     "bbbbbbbbbbbbbbbbbbbbb");
            assert_int_equal(decode_n(L, json, (size_t)n, err, sizeof err), 0);
            size_t len;
            const char *got = lua_tolstring(L, -1, &len);
            assert_int_equal(len, strlen(want));
            assert_memory_equal(got, want, len);
            mw_buf_reset(&b);
            assert_int_equal(mw_json_encode(L, -1, &b, err, sizeof err), 0);
            assert_int_equal(b.len, (size_t)n);
            assert_memory_equal(b.p, json, (size_t)n);
            lua_pop(L, 1);
        }
    }
    for (int at = 0; at <= 20; at++) { /* a bad byte, and a raw control character */
        char bad[64];
        int n = snprintf(bad, sizeof bad, "\"%.*s\xff%.*s\"", at, "aaaaaaaaaaaaaaaaaaaaa", 20 - at,
                         "bbbbbbbbbbbbbbbbbbbbb");
        char msg[64];
        snprintf(msg, sizeof msg, "invalid UTF-8 in string at offset %d", at + 1);
        assert_decode_error(L, bad, (size_t)n, msg);
        bad[at + 1] = '\t';
        snprintf(msg, sizeof msg, "unescaped control character 0x09 in string at offset %d", at + 1);
        assert_decode_error(L, bad, (size_t)n, msg);
    }
    mw_buf_free(&b);
}

/* ---- decoding ---- */

static void test_decode_types(void **state)
{
    lua_State *L = *state;

    decode_check(L, "{\"a\":[1,2],\"b\":\"x\",\"c\":true,\"d\":false,\"e\":null,\"f\":1.5,"
                    "\"1\":\"string key\"}",
                 "assert(json.is_array(v.a) and #v.a == 2 and v.a[2] == 2)\n"
                 "assert(not json.is_array(v) and #getmetatable(v) == 7)\n"
                 "assert(v.b == 'x' and v.c == true and v.d == false)\n"
                 "assert(v.e == json.null and type(v.e) == 'userdata')\n"
                 "assert(v.f == 1.5 and v['1'] == 'string key' and v[1] == nil)");
    decode_check(L, "[null,1,null]",
                 "assert(#v == 3 and v[1] == json.null and v[2] == 1 and v[3] == json.null)");
    decode_check(L, "{\"a\":1,\"a\":2}", "assert(v.a == 2)");

    decode_ok(L, "null");
    assert_int_equal(lua_type(L, -1), LUA_TLIGHTUSERDATA);
    assert_null(lua_touserdata(L, -1));
    lua_pop(L, 1);
}

static void test_decode_strings(void **state)
{
    lua_State *L = *state;

    DECODES_TO(L, "\"\"", "");
    DECODES_TO(L, "\"\\\" \\\\ \\/ \\b \\f \\n \\r \\t\"", "\" \\ / \b \f \n \r \t");
    DECODES_TO(L, "\"\\u0041\\u00e9\\u00E9\"", "A\xc3\xa9\xc3\xa9");
    DECODES_TO(L, "\"\\u0000\"", "\0");
    DECODES_TO(L, "\"\\u007f\\u0080\\u07ff\\u0800\"", "\x7f\xc2\x80\xdf\xbf\xe0\xa0\x80");
    DECODES_TO(L, "\"\\u20ac\\uffff\"", "\xe2\x82\xac\xef\xbf\xbf");
    DECODES_TO(L, "\"\\ud83d\\ude00\"", "\xf0\x9f\x98\x80");
    DECODES_TO(L, "\"\\uD800\\uDC00\\udbff\\udfff\"", "\xf0\x90\x80\x80\xf4\x8f\xbf\xbf");
    DECODES_TO(L, "\"caf\xc3\xa9 \xf0\x9f\x98\x80\"", "caf\xc3\xa9 \xf0\x9f\x98\x80");
    DECODES_TO(L, "\"a\\nb\\u00e9c\"", "a\nb\xc3\xa9" "c");
}

/* Escaped strings longer than a luaL_Buffer chunk are assembled correctly. */
static void test_decode_long_strings(void **state)
{
    lua_State *L = *state;
    enum { N = 3000 };
    struct mw_buf in = { 0 }, want = { 0 };
    size_t len;
    const char *s;

    mw_buf_putc(&in, '"');
    for (int i = 0; i < N; i++) {
        mw_buf_puts(&in, "abcdefgh\\n\\u00e9");
        mw_buf_puts(&want, "abcdefgh\n\xc3\xa9");
    }
    mw_buf_putc(&in, '"');
    mw_buf_putc(&in, '\0');
    decode_ok(L, in.p);
    s = lua_tolstring(L, -1, &len);
    assert_int_equal(len, want.len);
    assert_memory_equal(s, want.p, want.len);
    lua_pop(L, 1);
    mw_buf_free(&in);
    mw_buf_free(&want);
}

/* The length is honoured: the bytes after it are never read. */
static void test_decode_respects_length(void **state)
{
    lua_State *L = *state;
    char err[128];

    assert_int_equal(decode_n(L, "[1]xyz", 3, err, sizeof err), 0);
    lua_pop(L, 1);
    assert_int_equal(decode_n(L, "1234", 2, err, sizeof err), 0);
    assert_true(lua_tonumber(L, -1) == 12);
    lua_pop(L, 1);
    assert_int_equal(decode_n(L, "1.5e3999", 5, err, sizeof err), 0);
    assert_true(lua_tonumber(L, -1) == 1500);
    lua_pop(L, 1);
    assert_decode_error(L, "\"abc\"", 4, "unterminated string at offset 0");
    assert_decode_error(L, "true", 3, "unexpected end of input at offset 3");
}

static void test_decode_numbers(void **state)
{
    lua_State *L = *state;
    char longnum[120];
    double v;

    assert_true(decode_number(L, "0") == 0);
    v = decode_number(L, "-0");
    assert_true(v == 0 && signbit(v));
    assert_true(decode_number(L, "-12") == -12);
    assert_true(decode_number(L, "1.5") == 1.5);
    assert_true(decode_number(L, "1e300") == 1e300);
    assert_true(decode_number(L, "1E2") == 100);
    assert_true(decode_number(L, "-1.5e-3") == -1.5e-3);
    assert_true(decode_number(L, "2.5E+2") == 250);
    assert_true(decode_number(L, "0.1") == 0.1);
    assert_true(decode_number(L, "9007199254740992") == 9007199254740992.0);
    assert_true(decode_number(L, "9007199254740993") == 9007199254740992.0);
    assert_true(decode_number(L, "123456789012345678") == 123456789012345678.0);
    assert_true(decode_number(L, "12345678901234567890") == 12345678901234567890.0);
    assert_true(decode_number(L, "-123456789012345678901234567890") ==
                -123456789012345678901234567890.0);
    assert_true(decode_number(L, "1e-400") == 0);

    /* Longer than the on-stack copy. */
    memset(longnum, '0', sizeof longnum);
    memcpy(longnum, "0.", 2);
    longnum[sizeof longnum - 2] = '5';
    longnum[sizeof longnum - 1] = '\0';
    v = decode_number(L, longnum);
    assert_true(v > 0 && v < 1e-100);
}

/* ---- decode errors: every class, with the offset ---- */

static void test_decode_error_literals(void **state)
{
    lua_State *L = *state;

    DECODE_ERR(L, "", "unexpected end of input at offset 0");
    DECODE_ERR(L, "   ", "unexpected end of input at offset 3");
    DECODE_ERR(L, "tru", "unexpected end of input at offset 3");
    DECODE_ERR(L, "trux", "unexpected character 'x' at offset 3");
    DECODE_ERR(L, "[nulL]", "unexpected character 'L' at offset 4");
    DECODE_ERR(L, "[fals]", "unexpected character ']' at offset 5");
    DECODE_ERR(L, "True", "unexpected character 'T' at offset 0");
    DECODE_ERR(L, "undefined", "unexpected character 'u' at offset 0");
    DECODE_ERR(L, "'a'", "unexpected character ''' at offset 0");
    DECODE_ERR(L, "\x01", "unexpected byte 0x01 at offset 0");
    DECODE_ERR(L, "\xc3\xa9", "unexpected byte 0xc3 at offset 0");
}

static void test_decode_error_trailing(void **state)
{
    lua_State *L = *state;

    DECODE_ERR(L, "[1,2] x", "trailing garbage at offset 6");
    DECODE_ERR(L, "{} {}", "trailing garbage at offset 3");
    DECODE_ERR(L, "nulll", "trailing garbage at offset 4");
    DECODE_ERR(L, "1 2", "trailing garbage at offset 2");
    DECODE_ERR(L, "\"a\"\"b\"", "trailing garbage at offset 3");
}

static void test_decode_error_numbers(void **state)
{
    lua_State *L = *state;

    DECODE_ERR(L, "01", "leading zero in number at offset 0");
    DECODE_ERR(L, "[-01]", "leading zero in number at offset 1");
    DECODE_ERR(L, "00", "leading zero in number at offset 0");
    DECODE_ERR(L, "+1", "unexpected character '+' at offset 0");
    DECODE_ERR(L, ".5", "unexpected character '.' at offset 0");
    DECODE_ERR(L, "1.", "unexpected end of input at offset 2");
    DECODE_ERR(L, "[1.]", "unexpected character ']' at offset 3");
    DECODE_ERR(L, "[1.e5]", "unexpected character 'e' at offset 3");
    DECODE_ERR(L, "1e", "unexpected end of input at offset 2");
    DECODE_ERR(L, "1e+", "unexpected end of input at offset 3");
    DECODE_ERR(L, "[1e+x]", "unexpected character 'x' at offset 4");
    DECODE_ERR(L, "-", "unexpected end of input at offset 1");
    DECODE_ERR(L, "-a", "unexpected character 'a' at offset 1");
    DECODE_ERR(L, "NaN", "unexpected character 'N' at offset 0");
    DECODE_ERR(L, "Infinity", "unexpected character 'I' at offset 0");
    DECODE_ERR(L, "-Infinity", "unexpected character 'I' at offset 1");
    DECODE_ERR(L, "0x10", "trailing garbage at offset 1");
    DECODE_ERR(L, "[1e400]", "number out of range at offset 1");
    DECODE_ERR(L, "-1e400", "number out of range at offset 0");
}

static void test_decode_error_strings(void **state)
{
    lua_State *L = *state;

    DECODE_ERR(L, "\"abc", "unterminated string at offset 0");
    DECODE_ERR(L, "[\"a\", \"b", "unterminated string at offset 6");
    DECODE_ERR(L, "\"ab\\", "unterminated string at offset 0");
    DECODE_ERR(L, "\"a\\nb", "unterminated string at offset 0");
    DECODE_ERR(L, "\"a\nb\"", "unescaped control character 0x0a in string at offset 2");
    DECODE_ERR(L, "\"\t\"", "unescaped control character 0x09 in string at offset 1");
    DECODE_ERR(L, "\"\\n\x1f\"", "unescaped control character 0x1f in string at offset 3");
    assert_decode_error(L, "\"a\0\"", 4, "unescaped control character 0x00 in string at offset 2");
    DECODE_ERR(L, "\"\\x\"", "invalid escape at offset 1");
    DECODE_ERR(L, "\"ab\\'\"", "invalid escape at offset 3");
    DECODE_ERR(L, "\"\\U0041\"", "invalid escape at offset 1");
    DECODE_ERR(L, "\"\\u12G4\"", "invalid \\u escape at offset 1");
    DECODE_ERR(L, "\"\\u12\"", "invalid \\u escape at offset 1");
    DECODE_ERR(L, "\"\\u12", "invalid \\u escape at offset 1");
    DECODE_ERR(L, "\"\\ud800\"", "unpaired surrogate at offset 1");
    DECODE_ERR(L, "\"\\udc00\"", "unpaired surrogate at offset 1");
    DECODE_ERR(L, "\"x\\ud83d\\u0041\"", "unpaired surrogate at offset 2");
    DECODE_ERR(L, "\"\\ud83d\\ud83d\"", "unpaired surrogate at offset 1");
    DECODE_ERR(L, "\"\\ud83dx\"", "unpaired surrogate at offset 1");
    DECODE_ERR(L, "\"\\ud83d\\uzzzz\"", "invalid \\u escape at offset 7");
    DECODE_ERR(L, "\"\\ude00\\ud83d\"", "unpaired surrogate at offset 1");
}

static void test_decode_error_structure(void **state)
{
    lua_State *L = *state;

    DECODE_ERR(L, "[", "unexpected end of input at offset 1");
    DECODE_ERR(L, "{", "unexpected end of input at offset 1");
    DECODE_ERR(L, "[1", "unexpected end of input at offset 2");
    DECODE_ERR(L, "[1,]", "unexpected character ']' at offset 3");
    DECODE_ERR(L, "[,1]", "unexpected character ',' at offset 1");
    DECODE_ERR(L, "[1 2]", "unexpected character '2' at offset 3");
    DECODE_ERR(L, "[1}", "unexpected character '}' at offset 2");
    DECODE_ERR(L, "{\"a\" 1}", "unexpected character '1' at offset 5");
    DECODE_ERR(L, "{\"a\":1,}", "unexpected character '}' at offset 7");
    DECODE_ERR(L, "{\"a\":}", "unexpected character '}' at offset 5");
    DECODE_ERR(L, "{\"a\"", "unexpected end of input at offset 4");
    DECODE_ERR(L, "{1:2}", "unexpected character '1' at offset 1");
    DECODE_ERR(L, "{a:1}", "unexpected character 'a' at offset 1");
    DECODE_ERR(L, "{\"a\":1 \"b\":2}", "unexpected character '\"' at offset 7");
    DECODE_ERR(L, "]", "unexpected character ']' at offset 0");
    /* an error deep inside leaves nothing on the stack */
    DECODE_ERR(L, "{\"a\":[1,{\"b\":[\"x\\q\"]}]}", "invalid escape at offset 16");
}

static void test_decode_depth_limit(void **state)
{
    lua_State *L = *state;
    char *ok = nested("[", "", "]", MW_JSON_MAX_DEPTH);
    char *deep = nested("[", "", "]", MW_JSON_MAX_DEPTH + 1);
    char *ok_obj = nested("{\"a\":", "1", "}", MW_JSON_MAX_DEPTH);
    char *deep_obj = nested("{\"a\":", "1", "}", MW_JSON_MAX_DEPTH + 1);
    char *huge = nested("[", "", "]", 100000);
    char *ok_esc = nested("[", "\"a\\n\"", "]", MW_JSON_MAX_DEPTH);
    char msg[64];

    ROUNDTRIP(L, ok);
    ROUNDTRIP(L, ok_obj);
    ROUNDTRIP(L, ok_esc);
    snprintf(msg, sizeof msg, "too deeply nested at offset %d", MW_JSON_MAX_DEPTH);
    DECODE_ERR(L, deep, msg);
    snprintf(msg, sizeof msg, "too deeply nested at offset %d", MW_JSON_MAX_DEPTH * 5);
    DECODE_ERR(L, deep_obj, msg);
    DECODE_ERR(L, huge, "too deeply nested at offset 64");
    free(ok);
    free(deep);
    free(ok_obj);
    free(deep_obj);
    free(huge);
    free(ok_esc);
}

/* ---- encoding ---- */

static void test_encode_scalars(void **state)
{
    lua_State *L = *state;

    lua_pushnil(L);
    assert_encodes_top(L, "null");
    lua_pushlightuserdata(L, NULL);
    assert_encodes_top(L, "null");
    assert_encodes_lua(L, "return json.null", "null");
    assert_encodes_lua(L, "return true", "true");
    assert_encodes_lua(L, "return false", "false");
    assert_encodes_lua(L, "return ''", "\"\"");
    assert_encodes_lua(L, "return 'a\"b\\\\c/d\\n\\r\\t\\b\\f\\1\\31\\127'",
                       "\"a\\\"b\\\\c/d\\n\\r\\t\\b\\f\\u0001\\u001f\x7f\"");
    assert_encodes_lua(L, "return 'caf\\195\\169 \\226\\128\\168'",
                       "\"caf\xc3\xa9 \xe2\x80\xa8\"");
    assert_encodes_lua(L, "return 'nul\\0byte'", "\"nul\\u0000byte\"");
}

/* -0 encodes as 0 (like JavaScript); non-integers use the shortest exact form. */
static void test_encode_numbers(void **state)
{
    lua_State *L = *state;

    assert_encodes_lua(L, "return 0", "0");
    assert_encodes_lua(L, "return -0", "0");
    assert_encodes_lua(L, "return -1/(1/0) * 0", "0");
    assert_encodes_lua(L, "return -12", "-12");
    assert_encodes_lua(L, "return 1.5", "1.5");
    assert_encodes_lua(L, "return 0.1", "0.1");
    assert_encodes_lua(L, "return 1/3", "0.3333333333333333");
    assert_encodes_lua(L, "return -1.5e-3", "-0.0015");
    assert_encodes_lua(L, "return 1e-7", "1e-07");
    assert_encodes_lua(L, "return 1e300", "1e+300");
    assert_encodes_lua(L, "return 2^53 - 1", "9007199254740991");
    assert_encodes_lua(L, "return -(2^53 - 1)", "-9007199254740991");
    assert_encodes_lua(L, "return 2^53", "9007199254740992");
    assert_encodes_lua(L, "return 2^64", "1.8446744073709552e+19");
    assert_encodes_lua(L, "return 5e-324", "4.94065645841247e-324");
    assert_encodes_lua(L, "return 1700000000123", "1700000000123");

    /* decode(encode(x)) == x for awkward doubles */
    run_lua(L, "for _, x in ipairs({0.1, 1/3, 2^53, 2^53 + 2, 1e300, -1e-300, 5e-324,\n"
               "    1.7976931348623157e308, 123.456, 2^-1074 * 3}) do\n"
               "  local y = json.decode(json.encode(x))\n"
               "  assert(y == x, tostring(x) .. ' came back as ' .. tostring(y))\n"
               "end");

    /* -0 decodes as -0.0 but encodes as 0 */
    ROUNDTRIP(L, "0");
    assert_roundtrip_as(L, "-0", "0");
    assert_roundtrip_as(L, "1E2", "100");
    assert_roundtrip_as(L, "[1.0,-0.0,2.50]", "[1,0,2.5]");
}

static void test_encode_tables(void **state)
{
    lua_State *L = *state;

    assert_encodes_lua(L, "return {}", "{}");
    assert_encodes_lua(L, "return json.array()", "[]");
    assert_encodes_lua(L, "return {1, 2, 3}", "[1,2,3]");
    assert_encodes_lua(L, "return {[1] = 'a', [2] = 'b'}", "[\"a\",\"b\"]");
    assert_encodes_lua(L, "return {'x', json.null, 'z'}", "[\"x\",null,\"z\"]");
    /* with the array metatable, a hole below lua_objlen encodes as null (which border
     * # picks in a table with holes is up to LuaJIT, so build one whose length is 3) */
    mw_json_push_array(L, 3);
    lua_pushinteger(L, 1);
    lua_rawseti(L, -2, 1);
    lua_pushinteger(L, 3);
    lua_rawseti(L, -2, 3);
    assert_int_equal(lua_objlen(L, -1), 3);
    assert_encodes_top(L, "[1,null,3]");
    assert_encodes_lua(L, "return json.array({1, 2})", "[1,2]");
    assert_encodes_lua(L, "return {a = 1}", "{\"a\":1}");
    assert_encodes_lua(L, "return {a = {}}", "{\"a\":{}}");
    assert_encodes_lua(L, "return {a = json.array()}", "{\"a\":[]}");
    assert_encodes_lua(L, "return {['1'] = 'a'}", "{\"1\":\"a\"}");
    assert_encodes_lua(L, "return {[5] = 'a'}", "{\"5\":\"a\"}");
    assert_encodes_lua(L, "return {[-3] = true}", "{\"-3\":true}");
    assert_encodes_lua(L, "return {a = {b = {1, {c = true}}}}",
                       "{\"a\":{\"b\":[1,{\"c\":true}]}}");
    /* metamethods are not consulted */
    assert_encodes_lua(L, "return setmetatable({}, {__index = function() return 1 end,\n"
                          "  __len = function() return 3 end})", "{}");

    /* multi-key objects: order is unspecified, so check by decoding */
    run_lua(L, "local v = json.decode(json.encode({a = 1, b = 'x', c = {1, 2}}))\n"
               "assert(v.a == 1 and v.b == 'x' and v.c[2] == 2 and json.is_array(v.c))\n"
               "v = json.decode(json.encode({[1] = 'a', [3] = 'c'}))\n"
               "assert(not json.is_array(v) and v['1'] == 'a' and v['3'] == 'c')\n"
               "v = json.decode(json.encode({10, 20, x = 'y'}))\n"
               "assert(v['1'] == 10 and v['2'] == 20 and v.x == 'y')\n"
               "v = json.decode(json.encode({[0] = 'z', 'a'}))\n"
               "assert(v['0'] == 'z' and v['1'] == 'a')");
}

static void test_encode_errors(void **state)
{
    lua_State *L = *state;
    static int anchor;

    assert_encode_error_lua(L, "return function() end", "cannot encode a function");
    assert_encode_error_lua(L, "return {f = print}", "cannot encode a function");
    assert_encode_error_lua(L, "return {1, 2, print}", "cannot encode a function");
    assert_encode_error_lua(L, "return coroutine.create(print)", "cannot encode a thread");
    assert_encode_error_lua(L, "return io.stdout", "cannot encode a userdata");
    assert_encode_error_lua(L, "return 0/0", "cannot encode NaN");
    assert_encode_error_lua(L, "return {x = {1/0}}", "cannot encode Infinity");
    assert_encode_error_lua(L, "return -1/0", "cannot encode -Infinity");
    assert_encode_error_lua(L, "local t = {} t.self = t return t", "nesting too deep (cycle?)");
    assert_encode_error_lua(L, "local t = {} t[1] = {t} return t", "nesting too deep (cycle?)");
    assert_encode_error_lua(L, "local t = json.array() t[1] = t return t",
                            "nesting too deep (cycle?)");
    assert_encode_error_lua(L, "return {[true] = 1}", "cannot encode a table key of type boolean");
    assert_encode_error_lua(L, "return {1, 2, [false] = 3}",
                            "cannot encode a table key of type boolean");
    assert_encode_error_lua(L, "return {a = 1, [{}] = 2}",
                            "cannot encode a table key of type table");
    assert_encode_error_lua(L, "return {[1.5] = 1}", "cannot encode a non-integer number table key");
    assert_encode_error_lua(L, "return {[2^53] = 1}", "cannot encode a non-integer number table key");

    lua_pushlightuserdata(L, &anchor);
    lua_setglobal(L, "lud");
    assert_encode_error_lua(L, "return {lud}", "cannot encode a userdata");
}

static void test_encode_depth_limit(void **state)
{
    lua_State *L = *state;
    char *ok = nested("{\"k\":", "[]", "}", MW_JSON_MAX_DEPTH - 1);
    char *code = nested("{", "", "}", MW_JSON_MAX_DEPTH + 1);
    char *ret = malloc(strlen(code) + 8);

    ROUNDTRIP(L, ok);
    sprintf(ret, "return %s", code);
    assert_encode_error_lua(L, ret, "nesting too deep (cycle?)");
    free(ok);
    free(code);
    free(ret);
}

/* Relative and absolute indexes both work, and the stack is left as found. */
static void test_encode_index(void **state)
{
    lua_State *L = *state;
    struct mw_buf b = { 0 };
    char err[128];

    lua_pushstring(L, "first");
    lua_pushinteger(L, 7);
    assert_int_equal(mw_json_encode(L, -2, &b, err, sizeof err), 0);
    mw_buf_putc(&b, ' ');
    assert_int_equal(mw_json_encode(L, lua_gettop(L), &b, err, sizeof err), 0);
    mw_buf_putc(&b, '\0');
    assert_string_equal(b.p, "\"first\" 7");
    assert_int_equal(lua_gettop(L), 2);
    lua_pop(L, 2);
    mw_buf_free(&b);
}

/* ---- C helpers and the Lua module ---- */

/* Decode and mw_json_push_array work in a state where the module was never opened, and
 * the module then exposes the same metatable. */
static void test_array_mt_without_module(void **state)
{
    lua_State *L = luaL_newstate();
    (void)state;

    luaL_openlibs(L);
    decode_ok(L, "[]");
    assert_true(lua_getmetatable(L, -1));
    lua_getfield(L, LUA_REGISTRYINDEX, MW_JSON_ARRAY_MT);
    assert_true(lua_rawequal(L, -1, -2));
    lua_pop(L, 2);
    assert_encodes_top(L, "[]");

    mw_json_push_array(L, 4);
    assert_encodes_top(L, "[]");
    mw_json_push_array(L, 0);
    lua_pushstring(L, "x");
    lua_rawseti(L, -2, 1);
    assert_encodes_top(L, "[\"x\"]");

    lua_pushcfunction(L, luaopen_moonwire_json);
    lua_call(L, 0, 1);
    lua_getfield(L, -1, "array_mt");
    lua_getfield(L, LUA_REGISTRYINDEX, MW_JSON_ARRAY_MT);
    assert_true(lua_rawequal(L, -1, -2));
    lua_pop(L, 3);
    assert_int_equal(lua_gettop(L), 0);
    lua_close(L);
}

static void test_module_from_lua(void **state)
{
    lua_State *L = *state;

    run_lua(L,
        "local v, err = json.decode('[1,')\n"
        "assert(v == nil and err == 'unexpected end of input at offset 3', err)\n"
        "v, err = json.decode('')\n"
        "assert(v == nil and err == 'unexpected end of input at offset 0')\n"
        "v, err = json.decode('{\"a\": tru}')\n"
        "assert(v == nil and err == \"unexpected character '}' at offset 9\", err)\n"
        "assert(json.decode(12) == 12)  -- numbers coerce, as luaL_checklstring does\n"
        "assert(not pcall(json.decode, {}))\n"
        "assert(not pcall(json.decode))\n"

        "local ok, e = pcall(json.encode, {f = print})\n"
        "assert(not ok and e == 'json.encode: cannot encode a function', e)\n"
        "ok, e = pcall(json.encode, 0/0)\n"
        "assert(not ok and e == 'json.encode: cannot encode NaN', e)\n"
        "assert(not pcall(json.encode))\n"
        "assert(json.encode(nil) == 'null')\n"
        "assert(json.encode(json.decode('{\"a\":[]}')) == '{\"a\":[]}')\n"
        "assert(json.encode(json.decode('[]')) == '[]')\n"
        "assert(json.encode(json.decode('{}')) == '{}')\n"

        "assert(json.null ~= nil and json.decode('null') == json.null)\n"
        "assert(json.decode('[null]')[1] == json.null)\n"
        "assert(json.empty_array == nil)\n"
        "assert(type(json.array_mt) == 'table')\n"
        "assert(getmetatable(json.decode('[]')) == json.array_mt)\n"
        "assert(json.is_array(json.decode('[1]')))\n"
        "assert(not json.is_array(json.decode('{}')))\n"
        "assert(not json.is_array({1, 2}))\n"
        "assert(not json.is_array('x') and not json.is_array(nil) and not json.is_array())\n"
        "assert(not json.is_array(setmetatable({}, {})))\n"

        "local t = {}\n"
        "assert(json.array(t) == t and json.is_array(t))\n"
        "local a, b = json.array(), json.array(nil)\n"
        "assert(a ~= b and json.is_array(a) and json.is_array(b) and next(a) == nil)\n"
        "assert(json.encode(setmetatable(json.array(), json.array_mt)) == '[]')\n"
        "local c = json.array(setmetatable({1}, {__index = {}}))\n"
        "assert(getmetatable(c) == json.array_mt and json.encode(c) == '[1]')\n"
        "assert(not pcall(json.array, 5))\n"
        "assert(not pcall(json.array, 'x'))\n");
}

/* The loader is wired elsewhere; check the opener works through package.preload. */
static void test_module_require(void **state)
{
    lua_State *L = *state;

    lua_getglobal(L, "package");
    lua_getfield(L, -1, "preload");
    lua_pushcfunction(L, luaopen_moonwire_json);
    lua_setfield(L, -2, "moonwire.json");
    lua_pop(L, 2);
    run_lua(L, "local j = require('moonwire.json')\n"
               "assert(j.array_mt == json.array_mt and j.null == json.null)\n"
               "assert(j.encode(j.decode('[{\"x\":[]}]')) == '[{\"x\":[]}]')");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
        T(test_roundtrip_empty_containers),
        T(test_roundtrip_nested),
        T(test_roundtrip_all_bytes),
        T(test_invalid_utf8),
        T(test_decode_types),
        T(test_decode_strings),
        T(test_decode_long_strings),
        T(test_decode_respects_length),
        T(test_decode_numbers),
        T(test_decode_error_literals),
        T(test_decode_error_trailing),
        T(test_decode_error_numbers),
        T(test_decode_error_strings),
        T(test_decode_error_structure),
        T(test_decode_depth_limit),
        T(test_encode_scalars),
        T(test_encode_numbers),
        T(test_encode_tables),
        T(test_encode_errors),
        T(test_encode_depth_limit),
        T(test_encode_index),
        cmocka_unit_test(test_array_mt_without_module),
        cmocka_unit_test_setup_teardown(test_special_bytes_at_every_place, setup, teardown),
        T(test_module_from_lua),
        T(test_module_require),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

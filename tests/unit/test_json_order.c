/* test_json_order.c - the key order of objects encoded by core/base/lua_json.c: envelope
 * fields first at the top level, a decoded object's keys as they came, the rest sorted. */
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

static lua_State *new_state(void)
{
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    lua_pushcfunction(L, luaopen_moonwire_json);
    lua_call(L, 0, 1);
    lua_setglobal(L, "json");
    return L;
}

static int setup(void **state)
{
    *state = new_state();
    return 0;
}

static int teardown(void **state)
{
    lua_close(*state);
    return 0;
}

/* Decodes text, then encodes it back unchanged. */
static void assert_roundtrip(lua_State *L, const char *text, const char *expect)
{
    char code[1024];
    snprintf(code, sizeof code, "return (json.decode(%s%s%s))", "[==[", text, "]==]");
    assert_lua_encodes(L, code, expect ? expect : text);
}

static void test_decoded_objects_keep_their_order(void **state)
{
    lua_State *L = *state;
    assert_roundtrip(L, "{\"b\":1,\"a\":2,\"c\":{\"z\":1,\"y\":[{\"q\":1,\"p\":2}],\"x\":null}}", NULL);
    assert_roundtrip(L, "{\"data\":{\"pad\":\"xx\",\"t\":123,\"seq\":7}}", NULL);
    /* A duplicate keeps its first place and its last value. */
    assert_roundtrip(L, "{\"a\":1,\"b\":2,\"a\":3}", "{\"a\":3,\"b\":2}");
    assert_roundtrip(L, "{}", NULL);
    assert_roundtrip(L, "[{\"b\":1,\"a\":2},{}]", NULL);
}

static void test_envelope_fields_come_first_at_the_top(void **state)
{
    lua_State *L = *state;
    /* A client's frame with its fields in any order: the envelope is reordered, the
     * data inside is not. */
    assert_roundtrip(L, "{\"data\":{\"z\":1,\"type\":2},\"extra\":0,\"id\":7,\"room\":\"r\",\"type\":\"x\"}",
                     "{\"type\":\"x\",\"room\":\"r\",\"id\":7,\"data\":{\"z\":1,\"type\":2},\"extra\":0}");
    assert_lua_encodes(L,
        "return { ts = 1, seq = 2, data = { b = 1, a = 2 }, from = 'u', room = 'r', type = 't',"
        "         zeta = 1, alpha = 0, message = 'm', code = 'c', id = 'i' }",
        "{\"type\":\"t\",\"room\":\"r\",\"from\":\"u\",\"id\":\"i\",\"code\":\"c\",\"message\":\"m\","
        "\"data\":{\"a\":2,\"b\":1},\"seq\":2,\"ts\":1,\"alpha\":0,\"zeta\":1}");
    /* Below the top level, envelope names are keys like any other. */
    assert_lua_encodes(L, "return { x = { type = 1, a = 2, room = 3 } }",
                       "{\"x\":{\"a\":2,\"room\":3,\"type\":1}}");
}

static void test_other_tables_are_sorted(void **state)
{
    lua_State *L = *state;
    assert_lua_encodes(L, "return { b = 1, a = 2, ['B'] = 3, aa = 4, [''] = 5 }",
                       "{\"\":5,\"B\":3,\"a\":2,\"aa\":4,\"b\":1}");
    assert_lua_encodes(L, "return { [10] = 1, [2] = 2, x = 3 }", "{\"10\":1,\"2\":2,\"x\":3}");
    /* More keys than the encoder keeps on its stack. */
    assert_lua_encodes(L,
        "local t = {} for i = 40, 1, -1 do t[string.format('k%02d', i)] = i end return t",
        "{\"k01\":1,\"k02\":2,\"k03\":3,\"k04\":4,\"k05\":5,\"k06\":6,\"k07\":7,\"k08\":8,\"k09\":9,"
        "\"k10\":10,\"k11\":11,\"k12\":12,\"k13\":13,\"k14\":14,\"k15\":15,\"k16\":16,\"k17\":17,"
        "\"k18\":18,\"k19\":19,\"k20\":20,\"k21\":21,\"k22\":22,\"k23\":23,\"k24\":24,\"k25\":25,"
        "\"k26\":26,\"k27\":27,\"k28\":28,\"k29\":29,\"k30\":30,\"k31\":31,\"k32\":32,\"k33\":33,"
        "\"k34\":34,\"k35\":35,\"k36\":36,\"k37\":37,\"k38\":38,\"k39\":39,\"k40\":40}");
}

static void test_changed_decoded_objects(void **state)
{
    lua_State *L = *state;
    /* Removed keys vanish, changed values stay in place, added keys follow sorted. */
    assert_lua_encodes(L,
        "local v = json.decode('{\"b\":1,\"a\":2,\"c\":3}')"
        "v.a = nil; v.d = 4; v.aa = 5; v.b = 10; return v",
        "{\"b\":10,\"c\":3,\"aa\":5,\"d\":4}");
    /* The same with many keys (the encoder then looks the added ones up in a set). */
    assert_lua_encodes(L,
        "local parts = {} for i = 20, 1, -1 do parts[#parts + 1] = string.format('\"k%02d\":%d', i, i) end "
        "local v = json.decode('{' .. table.concat(parts, ',') .. '}') "
        "for i = 3, 20 do v[string.format('k%02d', i)] = nil end v.a = 0 return v",
        "{\"k02\":2,\"k01\":1,\"a\":0}");
    /* A replaced metatable drops the order, nothing else. */
    assert_lua_encodes(L, "local v = json.decode('{\"b\":1,\"a\":2}') return setmetatable(v, nil)",
                       "{\"a\":2,\"b\":1}");
}

/* Objects whose keys are envelope fields in protocol order share one key list per set
 * of keys (lua_json.c, push_envelope_list): the order they encode in, nested or
 * changed, is what a list of their own gave. */
static void test_envelope_objects_share_key_lists(void **state)
{
    lua_State *L = *state;
    /* In protocol order, below the top level: the client's order, not sorted. */
    assert_roundtrip(L, "{\"x\":{\"type\":\"t\",\"room\":\"r\",\"id\":1,\"data\":{\"a\":1}}}", NULL);
    /* Out of protocol order, or with other keys, or a duplicate: a list of its own. */
    assert_roundtrip(L, "{\"x\":{\"room\":\"r\",\"type\":\"t\"}}", NULL);
    assert_roundtrip(L, "{\"x\":{\"type\":1,\"zeta\":2,\"id\":3,\"alpha\":4}}", NULL);
    assert_roundtrip(L, "{\"x\":{\"type\":1,\"id\":2,\"type\":3}}", "{\"x\":{\"type\":3,\"id\":2}}");
    assert_roundtrip(L, "{\"x\":{\"seq\":1,\"ts\":2}}", NULL);
    /* The metatable lists exactly the object's keys. */
    assert_lua_encodes(L, "return getmetatable(json.decode('{\"type\":1,\"data\":2}'))",
                       "[\"type\",\"data\"]");
    /* Two objects with the same keys: changing one changes nothing in the other. */
    assert_lua_encodes(L,
        "local a = json.decode('{\"type\":1,\"room\":2}') "
        "local b = json.decode('{\"type\":3,\"room\":4}') "
        "a.room = nil; a.zz = 5; a.aa = 6 "
        "return { a = a, b = b, c = json.decode('{\"type\":7,\"room\":8}') }",
        "{\"a\":{\"type\":1,\"aa\":6,\"zz\":5},\"b\":{\"type\":3,\"room\":4},"
        "\"c\":{\"type\":7,\"room\":8}}");
}

/* Hash order differs between states (and so after a hot reload): the text does not. */
static void test_same_text_in_every_state(void **state)
{
    (void)state;
    const char *code =
        "local t = {} for i = 1, 30 do t['key' .. ((i * 7) %% 30)] = i end "
        "t.type = 'x' t.data = { %s } return t";
    char fwd[512], rev[512];
    snprintf(fwd, sizeof fwd, code, "a = 1, b = 2, c = 3, d = 4");
    snprintf(rev, sizeof rev, code, "d = 4, c = 3, b = 2, a = 1");
    struct mw_buf texts[2] = { { 0 }, { 0 } };
    for (int i = 0; i < 2; i++) {
        lua_State *L = new_state();
        /* Different string tables and allocation histories in each state. */
        luaL_dostring(L, i ? "for i = 1, 5000 do local _ = 'junk' .. i end" : "");
        if (luaL_loadstring(L, i ? rev : fwd) || lua_pcall(L, 0, 1, 0))
            fail_msg("lua error: %s", lua_tostring(L, -1));
        assert_int_equal(mw_json_encode(L, -1, &texts[i], NULL, 0), 0);
        lua_close(L);
    }
    assert_int_equal(texts[0].len, texts[1].len);
    assert_memory_equal(texts[0].p, texts[1].p, texts[0].len);
    mw_buf_free(&texts[0]);
    mw_buf_free(&texts[1]);
}

static void test_bad_keys_still_fail_cleanly(void **state)
{
    lua_State *L = *state;
    struct mw_buf b = { 0 };
    char err[128] = "";
    int top = lua_gettop(L);
    for (int i = 0; i < 2; i++) {
        /* A bad key among enough others that the key array lives on the heap. */
        luaL_dostring(L, i ? "local t = { [true] = 1 } return t"
                           : "local t = {} for i = 1, 40 do t['k' .. i] = i end t[true] = 1 return t");
        assert_int_equal(mw_json_encode(L, -1, &b, err, sizeof err), -1);
        assert_string_equal(err, "cannot encode a table key of type boolean");
        assert_int_equal(b.len, 0);
        lua_pop(L, 1);
        assert_int_equal(lua_gettop(L), top);
    }
    mw_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_decoded_objects_keep_their_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_envelope_fields_come_first_at_the_top, setup, teardown),
        cmocka_unit_test_setup_teardown(test_other_tables_are_sorted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_changed_decoded_objects, setup, teardown),
        cmocka_unit_test_setup_teardown(test_envelope_objects_share_key_lists, setup, teardown),
        cmocka_unit_test(test_same_text_in_every_state),
        cmocka_unit_test_setup_teardown(test_bad_keys_still_fail_cleanly, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

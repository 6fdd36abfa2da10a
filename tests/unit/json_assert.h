/* json_assert.h - for the JSON codec's unit tests (test_json_order.c, test_json_lazy.c):
 * runs a Lua chunk that returns one value and asserts the text mw_json_encode writes
 * for it. Include after cmocka.h, lua.h, lauxlib.h, base/buf.h and base/lua_json.h. */
#ifndef MW_TEST_JSON_ASSERT_H
#define MW_TEST_JSON_ASSERT_H

static void assert_lua_encodes(lua_State *L, const char *code, const char *expect)
{
    struct mw_buf b = { 0 };
    char err[128] = "";
    int top = lua_gettop(L);
    if (luaL_loadstring(L, code) || lua_pcall(L, 0, 1, 0))
        fail_msg("lua error: %s\nin: %s", lua_tostring(L, -1), code);
    if (mw_json_encode(L, -1, &b, err, sizeof err))
        fail_msg("encode failed (%s), expected %s", err, expect);
    mw_buf_putc(&b, '\0');
    assert_string_equal(b.p, expect);
    mw_buf_free(&b);
    lua_settop(L, top);
}

#endif

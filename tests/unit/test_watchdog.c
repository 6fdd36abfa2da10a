/* test_watchdog.c - the Lua watchdog on its own: a prepared state, a JIT-compiled loop
 * and an interpreted one stopped with file:line, the state usable afterwards. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "base/util.h"
#include "lua/watchdog.h"

static lua_State *L;
static void *vm;

static int setup(void **state)
{
    (void)state;
    mw_watchdog_set_timeout(100);
    L = luaL_newstate();
    luaL_openlibs(L);
    vm = mw_watchdog_prepare(L);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    lua_close(L);
    return 0;
}

/* Runs code under the watchdog; returns whether it was stopped, with the message. */
static bool run(const char *code, char *where, size_t n, const char **msg)
{
    assert_int_equal(luaL_loadbuffer(L, code, strlen(code), "=spin.lua"), 0);
    mw_watchdog_enter(L, vm, mw_now_us());
    int rc = lua_pcall(L, 0, 0, 0);
    bool stopped = mw_watchdog_leave(where, n);
    *msg = rc ? lua_tostring(L, -1) : "";
    return stopped && rc != 0;
}

/* This LuaJIT build lets the watchdog stop compiled code: the probe found the mask. */
static void test_prepared(void **state)
{
    (void)state;
    assert_non_null(vm);
    lua_getglobal(L, "require");
    lua_pushliteral(L, "jit.profile");
    assert_int_not_equal(lua_pcall(L, 1, 1, 0), 0); /* taken out: it could undo the checks */
    lua_pop(L, 1);
}

static void test_stops_compiled_loop(void **state)
{
    (void)state;
    char where[160];
    const char *msg;
    uint64_t before = mw_watchdog_stopped;
    assert_true(run("local i = 0\nwhile true do i = i + 1 end", where, sizeof where, &msg));
    assert_string_equal(where, "spin.lua:2");
    assert_non_null(strstr(msg, "spin.lua:2: stopped: ran longer than limits.handler_timeout (100 ms)"));
    assert_int_equal(mw_watchdog_stopped, before + 1);
    lua_pop(L, 1);
    /* it was compiled: there is a trace */
    assert_int_equal(luaL_dostring(L, "return require('jit.util').traceinfo(1) ~= nil"), 0);
    assert_true(lua_toboolean(L, -1));
    lua_pop(L, 1);
}

static void test_stops_interpreted_loop_and_pcall(void **state)
{
    (void)state;
    char where[160];
    const char *msg;
    assert_true(run("local function f() while true do end end\njit.off(f)\n"
                    "while true do pcall(f) end", where, sizeof where, &msg));
    lua_pop(L, 1);
}

static void test_state_works_after(void **state)
{
    (void)state;
    char where[160] = "";
    const char *msg;
    assert_true(run("while true do end", where, sizeof where, &msg));
    lua_pop(L, 1);
    assert_false(run("local s = 0 for i = 1, 1e6 do s = s + i end assert(s == 500000500000)",
                     where, sizeof where, &msg));
    assert_string_equal(msg, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prepared),
        cmocka_unit_test(test_stops_compiled_loop),
        cmocka_unit_test(test_stops_interpreted_loop_and_pcall),
        cmocka_unit_test(test_state_works_after),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

/* watchdog.h - stops Lua code that holds the loop longer than limits.handler_timeout
 * (a handler, a timer, a reload's top-level code), interpreted or JIT-compiled.
 *
 * A thread looks at the Lua call running on the loop every quarter of the timeout
 * (at most every 250 ms); once one has used more of the loop thread's CPU time than
 * the timeout (time the machine gave other processes does not count), it signals the
 * loop thread, whose signal handler installs a count hook that raises an error at the next Lua
 * instruction, and again at every instruction until the call has unwound, so a pcall
 * in the script cannot keep it alive. The caller (script.c) answers the client and
 * logs the file:line where it stopped.
 *
 * LuaJIT never runs hooks inside compiled traces: a `while true do end` that has been
 * compiled would run on forever. Each state is therefore prepared so that its traces
 * carry LuaJIT's own profiler check (mode "l": a test of one bit of the VM's hook mask
 * at each new source line, the check jit.profile relies on); the signal handler sets
 * that bit, the trace exits to the interpreter at its next check, and the hook runs
 * there. The profiler itself is held by a private idle state, so it never samples
 * anything. See docs/security.md for the cost. */
#ifndef MW_WATCHDOG_H
#define MW_WATCHDOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <lua.h>

/* The limit; 0 turns the watchdog off. Set before the first Lua call. */
void mw_watchdog_set_timeout(uint64_t ms);
uint64_t mw_watchdog_timeout(void);

/* Prepares a new state (right after luaL_newstate and luaL_openlibs) so that its
 * compiled code can be stopped. Returns the handle mw_watchdog_enter needs for it, or
 * NULL when this LuaJIT build does not allow that: then the JIT is turned off for the
 * state (logged once), and the hook alone stops it. */
void *mw_watchdog_prepare(lua_State *L);

/* Around every call into Lua made on the loop (nested calls allowed): L is any
 * thread of the state, vm what mw_watchdog_prepare returned for it, now_us the
 * current mw_now_us(). mw_watchdog_leave returns true when the watchdog stopped this
 * call, with "file:line" of where it stopped in where[]. */
void mw_watchdog_enter(lua_State *L, void *vm, uint64_t now_us);
bool mw_watchdog_leave(char *where, size_t n);

/* Calls stopped since the start (for /metrics). */
extern uint64_t mw_watchdog_stopped;

#endif

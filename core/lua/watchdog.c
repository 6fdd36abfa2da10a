/* watchdog.c - the Lua watchdog (watchdog.h).
 *
 * What the loop thread and the watch thread share is a few atomics: the nesting depth
 * of Lua calls and when the outermost one started. Entering and leaving a call is two
 * plain stores: no syscall, no lock. Everything else happens in the signal handler,
 * which runs on the loop thread itself, and in the hook.
 *
 * Two facts about LuaJIT 2.1 (the OpenResty branch Debian ships) this relies on, both
 * checked when a state is prepared or by tests/unit/test_watchdog.c:
 * - luaJIT_profile_start() applies its "l" mode to the state it is given before it
 *   finds the profiler held by another state, and then leaves: the state's traces get
 *   profiler checks while the profiler stays with its holder.
 * - The VM's hook mask is one byte of the state; bit 0x80 (HOOK_PROFILE) is what those
 *   checks test. Its address is not public: it is found by watching which byte of the
 *   main thread's memory follows lua_sethook's mask, exactly and alone. */
#include "lua/watchdog.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>
#include <luajit.h>

#include "base/log.h"

#define MAX_DEPTH 16
#define HOOK_VMEVENT 0x20 /* LuaJIT: inside a VM event handler or GC finalizer: */
#define HOOK_GC 0x40      /* leave the mask alone, try again at the next tick */
#define HOOK_PROFILE 0x80
#define PROBE_BYTES 1024  /* the hook mask lies in the global state right after L */

uint64_t mw_watchdog_stopped;

static uint64_t timeout_us = 1000000;

/* Shared with the watch thread. */
static _Atomic int depth;
static _Atomic uint64_t start_us; /* of the outermost call */

/* Loop thread only (its signal handler included). */
static struct level {
    lua_State *L;
    volatile unsigned char *hookmask; /* NULL: JIT off in this state */
    volatile sig_atomic_t stopping;   /* the hook is installed */
    volatile sig_atomic_t raised;     /* and has raised at least once */
    char where[160];
} levels[MAX_DEPTH];

static pthread_t loop_thread;
static clockid_t loop_cpu; /* the loop thread's CPU-time clock */
static bool started;
static int watch_signal;
static _Atomic bool thread_ready; /* the thread reached its loop */

static uint64_t clock_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

void mw_watchdog_set_timeout(uint64_t ms)
{
    timeout_us = ms * 1000u;
}

uint64_t mw_watchdog_timeout(void)
{
    return timeout_us / 1000u;
}

/* ---- stopping ---- */

/* Runs at every Lua instruction of the state once a call is being stopped. */
static void stop_hook(lua_State *L, lua_Debug *ar)
{
    int i = atomic_load_explicit(&depth, memory_order_relaxed) - 1;
    if (i < 0 || i >= MAX_DEPTH || !levels[i].stopping) { /* stale: the call is over */
        lua_sethook(L, NULL, 0, 0);
        return;
    }
    struct level *lv = &levels[i];
    if (lv->hookmask)
        *lv->hookmask &= (unsigned char)~HOOK_PROFILE;
    if (!lv->raised) {
        lv->raised = 1;
        if (lua_getinfo(L, "Sl", ar) && ar->currentline > 0)
            snprintf(lv->where, sizeof lv->where, "%s:%d", ar->short_src, ar->currentline);
        else
            snprintf(lv->where, sizeof lv->where, "%s", ar->short_src);
    }
    lua_pushfstring(L, "%s: stopped: ran longer than limits.handler_timeout (%d ms)", lv->where,
                    (int)(timeout_us / 1000u));
    lua_error(L);
}

/* The loop thread, interrupted: stop the innermost call if the outermost one has run
 * too long. Async-signal-safe as LuaJIT's own profiler is: it also updates the hook
 * mask and the dispatch table (lua_sethook) from a signal handler. */
static void on_signal(int sig)
{
    (void)sig;
    int d = atomic_load_explicit(&depth, memory_order_relaxed);
    if (d <= 0 || d > MAX_DEPTH)
        return;
    if (clock_us() - atomic_load_explicit(&start_us, memory_order_relaxed) < timeout_us)
        return;
    struct level *lv = &levels[d - 1];
    if (lv->hookmask && !(*lv->hookmask & (HOOK_VMEVENT | HOOK_GC)))
        *lv->hookmask |= HOOK_PROFILE; /* compiled code leaves at its next check */
    lv->stopping = 1;
    lua_sethook(lv->L, stop_hook, LUA_MASKCOUNT, 1); /* again at every tick: idempotent */
}

static uint64_t loop_cpu_us(void)
{
    struct timespec ts;
    if (clock_gettime(loop_cpu, &ts) < 0)
        return clock_us(); /* no CPU clock: wall time it is */
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Counts the loop thread's CPU time while one outermost call runs (a call is told
 * apart by its start time), from the first tick that sees it: a call is stopped after
 * timeout_us of CPU (plus up to a tick). CPU time, not wall time: on a machine busy
 * with other work a handler must not be stopped for the time it waited for a CPU.
 * Reading the loop thread's clock from here costs the loop nothing. */
static void *watch_main(void *arg)
{
    uint64_t seen = 0, cpu0 = 0;
    (void)arg;
    atomic_store(&thread_ready, true);
    for (;;) {
        uint64_t tick = timeout_us / 4;
        if (tick > 250000)
            tick = 250000;
        if (tick < 2000)
            tick = 2000;
        struct timespec ts = { (time_t)(tick / 1000000u), (long)(tick % 1000000u) * 1000 };
        nanosleep(&ts, NULL);
        if (!timeout_us || atomic_load_explicit(&depth, memory_order_relaxed) <= 0) {
            seen = 0;
            continue;
        }
        uint64_t start = atomic_load_explicit(&start_us, memory_order_relaxed), cpu = loop_cpu_us();
        if (start != seen) { /* a call this tick has not seen yet */
            seen = start;
            cpu0 = cpu;
            continue;
        }
        if (cpu - cpu0 >= timeout_us)
            pthread_kill(loop_thread, watch_signal);
    }
    return NULL;
}

/* A fork (workers.c) right after the thread was created could copy a lock its start
 * holds (the allocator's, under ASan) into the child, held forever: wait for it to
 * reach its loop, where it holds nothing but sleeps. */
static void before_fork(void)
{
    for (int i = 0; started && !atomic_load(&thread_ready) && i < 1000; i++) {
        struct timespec ts = { 0, 1000000 };
        nanosleep(&ts, NULL);
    }
}

static void after_fork_child(void)
{
    started = false; /* the thread did not come along: the next call starts one */
    atomic_store(&thread_ready, false);
}

static void start(void)
{
    static bool atfork;
    struct sigaction sa;
    sigset_t all, saved;
    pthread_t t;

    started = true;
    loop_thread = pthread_self();
    if (pthread_getcpuclockid(loop_thread, &loop_cpu) != 0)
        loop_cpu = CLOCK_MONOTONIC;
    watch_signal = SIGRTMIN + 7;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(watch_signal, &sa, NULL);
    if (!atfork) {
        pthread_atfork(before_fork, NULL, after_fork_child);
        atfork = true;
    }
    /* The thread takes no signal: the loop's handlers (libuv's) stay on the loop. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &saved);
    if (pthread_create(&t, NULL, watch_main, NULL) == 0)
        pthread_detach(t);
    else
        mw_log_error("cannot start the Lua watchdog thread", "%s", "");
    pthread_sigmask(SIG_SETMASK, &saved, NULL);
}

void mw_watchdog_enter(lua_State *L, void *vm, uint64_t now_us)
{
    if (!started && timeout_us)
        start();
    int d = atomic_load_explicit(&depth, memory_order_relaxed);
    if (d < MAX_DEPTH) {
        struct level *lv = &levels[d];
        lv->L = L;
        lv->hookmask = vm;
        lv->stopping = lv->raised = 0;
    }
    if (d == 0)
        atomic_store_explicit(&start_us, now_us, memory_order_relaxed);
    atomic_signal_fence(memory_order_seq_cst); /* the level is complete before it counts */
    atomic_store_explicit(&depth, d + 1, memory_order_relaxed);
}

bool mw_watchdog_leave(char *where, size_t n)
{
    int i = atomic_load_explicit(&depth, memory_order_relaxed) - 1;
    atomic_store_explicit(&depth, i, memory_order_relaxed); /* a signal now sees the outer call */
    atomic_signal_fence(memory_order_seq_cst);
    if (i < 0 || i >= MAX_DEPTH)
        return false;
    struct level *lv = &levels[i];
    bool raised = lv->raised;
    if (lv->stopping) {
        lua_sethook(lv->L, NULL, 0, 0);
        if (lv->hookmask)
            *lv->hookmask &= (unsigned char)~HOOK_PROFILE;
    }
    if (raised) {
        mw_watchdog_stopped++;
        if (where && n)
            snprintf(where, n, "%s", lv->where);
    }
    lv->stopping = lv->raised = 0;
    return raised;
}

/* ---- preparing a state ---- */

static void probe_hook(lua_State *L, lua_Debug *ar)
{
    (void)L;
    (void)ar;
}

/* The address of the state's hook mask: the one byte of the first PROBE_BYTES after
 * the main thread that equals every mask lua_sethook is given, and 0 after. */
static unsigned char *find_hookmask(lua_State *L)
{
    static const int masks[] = { LUA_MASKCALL, LUA_MASKRET, LUA_MASKLINE, LUA_MASKCOUNT,
                                 LUA_MASKCALL | LUA_MASKCOUNT, 0x0f };
    unsigned char *base = (unsigned char *)L, cand[PROBE_BYTES];
    memset(cand, 1, sizeof cand);
    for (size_t m = 0; m < sizeof masks / sizeof masks[0]; m++) {
        lua_sethook(L, probe_hook, masks[m], 1000);
        for (size_t i = 0; i < PROBE_BYTES; i++)
            cand[i] &= base[i] == masks[m];
    }
    lua_sethook(L, NULL, 0, 0);
    unsigned char *found = NULL;
    for (size_t i = 0; i < PROBE_BYTES; i++) {
        if (!cand[i] || base[i] != 0)
            continue;
        if (found)
            return NULL; /* two candidates: not sure */
        found = base + i;
    }
    return found;
}

static void profile_idle(void *data, lua_State *L, int samples, int vmstate)
{
    (void)data;
    (void)L;
    (void)samples;
    (void)vmstate;
}

void *mw_watchdog_prepare(lua_State *L)
{
    static lua_State *holder; /* holds LuaJIT's one profiler, idle, for the process */
    static bool warned;
    if (!holder) {
        holder = luaL_newstate();
        /* The longest interval there is (~24 days of CPU time): it never samples
         * anything that matters, and it keeps the profiler from every other state. */
        luaJIT_profile_start(holder, "i2147483647", profile_idle, NULL);
    }
    unsigned char *mask = find_hookmask(L);
    if (mask) {
        luaJIT_profile_start(L, "l", profile_idle, NULL); /* profiler checks in traces */
        /* Whatever the script does with jit.profile must not take them out. */
        lua_getglobal(L, "package");
        lua_getfield(L, -1, "preload");
        lua_pushnil(L);
        lua_setfield(L, -2, "jit.profile");
        lua_pop(L, 2);
        return mask;
    }
    if (!warned) {
        warned = true;
        mw_log_warn("Lua watchdog: cannot find LuaJIT's hook mask; scripts run without the "
                    "JIT so that runaway handlers can still be stopped", "%s", "");
    }
    luaJIT_setmode(L, 0, LUAJIT_MODE_ENGINE | LUAJIT_MODE_OFF);
    return NULL;
}

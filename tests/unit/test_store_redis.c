/* test_store_redis.c - the store's Redis backend (store_redis.c) against a real
 * redis-server that the test starts on a free port: the same semantics cases as the
 * memory backend (test_store.c's SHARED_OPS, on the real clock), then what only Redis
 * has: the stored form under mw:s:, data other clients left, "no memory" at Redis's
 * maxmemory, a lost script cache, raw calls, closing the store with requests in
 * flight, and "unavailable" at once while Redis is down, until it is back. */
#define MW_TEST_STORE_REDIS 1
#include "test_store.c"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "redis/redis.h"

static pid_t redis_pid;
static int redis_port;

/* ---- the loop, with a deadline ---- */

static void on_tick(uv_timer_t *t)
{
    (void)t;
}

/* Runs the loop until cond() holds or ms pass; returns cond(). */
static bool run_until(bool (*cond)(void), uint64_t ms)
{
    uv_timer_t tick;
    uv_timer_init(uv_default_loop(), &tick);
    uv_timer_start(&tick, on_tick, 10, 10); /* so that UV_RUN_ONCE returns */
    uint64_t t0 = mw_now_ms();
    while (!cond() && mw_now_ms() - t0 < ms)
        uv_run(uv_default_loop(), UV_RUN_ONCE);
    uv_close((uv_handle_t *)&tick, NULL);
    uv_run(uv_default_loop(), UV_RUN_NOWAIT);
    return cond();
}

static bool is_up(void)
{
    return mw_redis_up();
}

static bool is_down(void)
{
    return !mw_redis_up();
}

/* ---- redis-server ---- */

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof sa;
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) < 0) {
        perror("free port");
        exit(1);
    }
    close(fd);
    return ntohs(sa.sin_port);
}

/* Starts redis-server on redis_port (no persistence) and waits until it answers. */
static void redis_server_start(void)
{
    char port[16];
    snprintf(port, sizeof port, "%d", redis_port);
    redis_pid = fork();
    if (redis_pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, STDOUT_FILENO);
        execlp("redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1", "--save",
               "", "--appendonly", "no", "--protected-mode", "no", (char *)NULL);
        perror("redis-server");
        _exit(127);
    }
    for (int i = 0; i < 200; i++) {
        redisContext *c = redisConnect("127.0.0.1", redis_port);
        redisReply *r = c && !c->err ? redisCommand(c, "PING") : NULL;
        bool ok = r && r->type == REDIS_REPLY_STATUS;
        if (r)
            freeReplyObject(r);
        if (c)
            redisFree(c);
        if (ok)
            return;
        if (waitpid(redis_pid, NULL, WNOHANG) == redis_pid) {
            fprintf(stderr, "redis-server did not start on port %d\n", redis_port);
            exit(1);
        }
        usleep(25000);
    }
    fprintf(stderr, "redis-server did not answer on port %d\n", redis_port);
    exit(1);
}

static void redis_server_kill(void)
{
    kill(redis_pid, SIGKILL);
    waitpid(redis_pid, NULL, 0);
}

/* ---- raw commands, waited for ---- */

struct raw {
    int calls;
    int type; /* REDIS_REPLY_*, or -1 for no reply */
    long long integer;
    char str[256];
};

static void on_raw(void *ud, struct redisReply *r)
{
    struct raw *x = ud;
    x->calls++;
    x->type = r ? r->type : -1;
    if (r && r->type == REDIS_REPLY_INTEGER)
        x->integer = r->integer;
    if (r && r->str)
        snprintf(x->str, sizeof x->str, "%.*s", (int)r->len, r->str);
}

static struct raw *waiting_raw;

static bool raw_done(void)
{
    return waiting_raw->calls > 0;
}

/* Runs a command on the client's connection (not through the store). */
static struct raw cmd(int argc, const char **argv)
{
    struct raw x = { 0 };
    assert_int_equal(mw_redis_command(on_raw, &x, argc, argv, NULL), 0);
    waiting_raw = &x;
    assert_true(run_until(raw_done, 5000));
    return x;
}

#define CMD(...) cmd((int)(sizeof (const char *[]){ __VA_ARGS__ } / sizeof(const char *)), \
                     (const char *[]){ __VA_ARGS__ })

/* ---- the backend under test ---- */

static void redis_reset(void)
{
    assert_int_equal(CMD("FLUSHDB").type, REDIS_REPLY_STATUS);
}

/* Real time; and a little more, since Redis expires a key only once its deadline has
 * passed on its millisecond clock. */
static void redis_advance(uint64_t ms)
{
    struct timespec ts = { (time_t)((ms + 5) / 1000), (long)((ms + 5) % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

static uint64_t redis_keys(void)
{
    struct raw x = CMD("DBSIZE");
    assert_int_equal(x.type, REDIS_REPLY_INTEGER);
    return (uint64_t)x.integer;
}

static const struct backend redis_backend = {
    .reset = redis_reset,
    .advance = redis_advance,
    .keys = redis_keys,
    .ttl_slack = 0.08,
    .memory = false,
};

/* ---- what only Redis has ---- */

static void test_stored_form(void **state)
{
    (void)state;
    assert_int_equal(set("a", "12", 0), 0);
    assert_string_equal(CMD("GET", "mw:s:a").str, "12");
    assert_int_equal(CMD("EXISTS", "a").integer, 0);
    assert_int_equal(CMD("INCRBY", "mw:s:a", "5").integer, 17); /* a Redis number */
    assert_value("a", "17");
    assert_int_equal(set("s", "\"abc\"", 0), 0);
    assert_string_equal(CMD("GET", "mw:s:s").str, "\"abc\"");
    assert_int_equal(set("t", "1", 60000), 0);
    assert_in_range(CMD("PTTL", "mw:s:t").integer, 59000, 60000);
    assert_float_equal(put(MW_STORE_RPUSH, "l", "{\"x\":1}", 0).num, 1, 0);
    assert_string_equal(CMD("LINDEX", "mw:s:l", "0").str, "{\"x\":1}");
    assert_true(mw_store_may_defer());
    /* A hash is a Redis hash of JSON texts; a timed queue a sorted set whose scores are
     * due times in ms on Redis's clock (TIME), whatever the nodes' clocks say. */
    assert_int_equal(hset("h", "t1/19:00", "{\"user\":\"ana\"}"), 0);
    assert_string_equal(CMD("HGET", "mw:s:h", "t1/19:00").str, "{\"user\":\"ana\"}");
    assert_int_equal(schedule("q", "[\"venue:1\",\"a\"]", 60000), 0);
    struct raw now = CMD("EVAL", "local t = redis.call('TIME') return t[1] * 1000 + math.floor(t[2] / 1000)", "0");
    struct raw score = CMD("ZSCORE", "mw:s:q", "[\"venue:1\",\"a\"]");
    long long due_at = strtoll(score.str, NULL, 10);
    assert_in_range(due_at - now.integer, 59000, 60000);
}

/* What other clients may have left under the prefix. */
static void test_foreign_data(void **state)
{
    (void)state;
    CMD("HSET", "mw:s:h", "f", "v");
    assert_int_equal(op(MW_STORE_GET, "h").err, MW_STORE_EWRONGTYPE);
    assert_int_equal(incr_init("h", 1, 0, 0).err, MW_STORE_EWRONGTYPE);
    assert_int_equal(put(MW_STORE_LPUSH, "h", "1", 0).err, MW_STORE_EWRONGTYPE);
    assert_int_equal(op(MW_STORE_LLEN, "h").err, MW_STORE_EWRONGTYPE);
    assert_int_equal(set("h", "1", 0), 0); /* set overwrites any type */
    assert_value("h", "1");
    /* Texts that are no JSON number, though Redis may read some of them as numbers. */
    static const char *not_numbers[] = {
        "\"12\"", "abc", " 12", "12 ", "012", "1.", ".5", "0x10", "1e999", "inf", "nan", "",
        "1.0000000000000000000000000000000000000000000000000000000000000001",
    };
    for (size_t i = 0; i < sizeof not_numbers / sizeof *not_numbers; i++) {
        CMD("SET", "mw:s:q", not_numbers[i]);
        struct got g = incr("q", 1);
        if (g.err != MW_STORE_ENOTNUM)
            fail_msg("incr on \"%s\": err %d", not_numbers[i], g.err);
    }
    CMD("SET", "mw:s:q", "-0");
    assert_float_equal(incr("q", 0).num, 0, 0);
    assert_value("q", "0"); /* written back the way the memory backend writes it */
    CMD("SET", "mw:s:q", "2.5E+1");
    assert_float_equal(incr("q", 0.5).num, 25.5, 0);
    assert_value("q", "25.5");
}

static void test_no_memory(void **state)
{
    (void)state;
    assert_int_equal(set("a", "1", 0), 0);
    assert_int_equal(put(MW_STORE_RPUSH, "l", "1", 0).err, 0);
    CMD("CONFIG", "SET", "maxmemory", "1");
    assert_int_equal(set("b", "1", 0), MW_STORE_ENOMEM);
    assert_int_equal(put(MW_STORE_ADD, "b", "1", 0).err, MW_STORE_ENOMEM);
    assert_int_equal(put(MW_STORE_REPLACE, "a", "2", 0).err, MW_STORE_ENOMEM);
    assert_int_equal(incr("a", 1).err, MW_STORE_ENOMEM);
    assert_int_equal(incr_init("b", 1, 0, 0).err, MW_STORE_ENOMEM);
    assert_int_equal(put(MW_STORE_RPUSH, "l", "2", 0).err, MW_STORE_ENOMEM);
    assert_int_equal(put(MW_STORE_LPUSH, "m", "2", 0).err, MW_STORE_ENOMEM);
    assert_int_equal(cas("c", NULL, "1", 0).err, MW_STORE_ENOMEM);
    assert_int_equal(hset("h", "f", "1"), MW_STORE_ENOMEM);
    assert_int_equal(hash(MW_STORE_HCAS, "h", "f", NULL, "1").err, MW_STORE_ENOMEM);
    assert_int_equal(schedule("q", "1", 0), MW_STORE_ENOMEM);
    assert_int_equal(be->keys(), 2);
    /* Reads, deletes, pops and TTL changes still work. */
    assert_value("a", "1");
    assert_int_equal(incr("b", 1).err, MW_STORE_ENOTFOUND);
    assert_int_equal(expire("a", 0).err, 0);
    assert_string_equal(op(MW_STORE_LPOP, "l").value, "1");
    assert_int_equal(op(MW_STORE_DELETE, "a").err, 0);
    CMD("CONFIG", "SET", "maxmemory", "0");
    assert_int_equal(set("b", "1", 0), 0);
}

/* Redis forgets scripts on restart (or SCRIPT FLUSH): EVALSHA gets NOSCRIPT, and the
 * request runs again by EVAL. */
static void test_script_cache_lost(void **state)
{
    (void)state;
    assert_float_equal(incr_init("n", 1, 0, 0).num, 1, 0);
    assert_int_equal(expire("n", 0).err, 0);
    assert_int_equal(CMD("SCRIPT", "FLUSH").type, REDIS_REPLY_STATUS);
    assert_float_equal(incr("n", 1).num, 2, 0);
    assert_int_equal(expire("n", 0).err, 0);
    assert_int_equal(expire("absent", 0).err, MW_STORE_ENOTFOUND);
    assert_float_equal(incr("n", 1).num, 3, 0);
    /* And the scripts of cas, hcas and the timed queue. */
    assert_int_equal(cas("c", NULL, "1", 0).err, 0);
    assert_int_equal(hash(MW_STORE_HCAS, "h", "f", NULL, "1").err, 0);
    assert_int_equal(schedule("q", "1", 0), 0);
    assert_int_equal(CMD("SCRIPT", "FLUSH").type, REDIS_REPLY_STATUS);
    assert_int_equal(cas("c", "1", "2", 0).err, 0);
    assert_int_equal(hash(MW_STORE_HCAS, "h", "f", "1", "2").err, 0);
    assert_int_equal(schedule("q", "2", 0), 0);
    assert_string_equal(due("q", 10, 0).list, "1 2");
    assert_value("c", "2");
    /* Leave incr's script cached: test_free_completes_in_flight needs it to run in
     * Redis after the store let go of its requests (a detached one is not retried). */
    assert_float_equal(incr("n", 1).num, 4, 0);
}

static struct raw raw_reply;

static bool raw_reply_done(void)
{
    return raw_reply.calls > 0;
}

static void test_raw_call(void **state)
{
    (void)state;
    const char *argv[] = { "SET", "raw", "v" };
    memset(&raw_reply, 0, sizeof raw_reply);
    assert_int_equal(mw_store_redis_call(on_raw, &raw_reply, 3, argv, NULL), 0);
    assert_int_equal(raw_reply.calls, 0); /* never inside the call */
    assert_true(run_until(raw_reply_done, 5000));
    assert_string_equal(raw_reply.str, "OK");
    assert_string_equal(CMD("GET", "raw").str, "v"); /* raw keys are not prefixed */
}

static void on_unavailable_store(void *ud, const struct mw_store_result *r)
{
    int *n = ud;
    assert_int_equal(r->err, MW_STORE_EUNAVAIL);
    (*n)++;
    struct got g = { 0 };
    struct mw_store_req req = { .op = MW_STORE_GET, .key = "k", .keylen = 1 };
    assert_int_equal(mw_store_submit(&req, on_result, &g), 1); /* closed: at once */
    assert_int_equal(g.err, MW_STORE_EUNAVAIL);
}

/* Closing the store answers what is in flight at once; the replies, when they come,
 * are dropped (and their records freed: the sanitizer build checks). */
static void test_free_completes_in_flight(void **state)
{
    (void)state;
    int n = 0;
    struct mw_store_req req = { .op = MW_STORE_INCR, .key = "k", .keylen = 1, .n = 1,
                                .has_init = true };
    for (int i = 0; i < 3; i++)
        assert_int_equal(mw_store_submit(&req, on_unavailable_store, &n), 0);
    struct raw raw = { 0 };
    const char *argv[] = { "PING" };
    assert_int_equal(mw_store_redis_call(on_raw, &raw, 1, argv, NULL), 0);
    mw_store_free();
    assert_int_equal(n, 3);
    assert_int_equal(raw.calls, 1);
    assert_int_equal(raw.type, -1); /* no reply: "unavailable" */
    assert_int_equal(mw_store_redis_call(on_raw, &raw, 1, argv, NULL), -1);
    assert_false(mw_store_may_defer());
    /* The replies arrive and go nowhere; the increments did happen in Redis. */
    assert_string_equal(CMD("GET", "mw:s:k").str, "3");
    assert_int_equal(raw.calls, 1);
    mw_store_init(); /* for teardown */
}

/* Redis down: every request fails at once; back up, everything works again, scripts
 * included (the new server has none cached). */
static void test_unavailable_while_down(void **state)
{
    (void)state;
    assert_float_equal(incr_init("n", 1, 0, 0).num, 1, 0); /* the script's SHA1 is known */
    redis_server_kill();
    assert_true(run_until(is_down, 3000));
    struct mw_store_req get = { .op = MW_STORE_GET, .key = "n", .keylen = 1 };
    struct mw_store_req inc = { .op = MW_STORE_INCR, .key = "n", .keylen = 1, .n = 1,
                                .has_init = true };
    struct mw_store_req exp0 = { .op = MW_STORE_EXPIRE, .key = "n", .keylen = 1 };
    struct mw_store_req cas0 = { .op = MW_STORE_CAS, .key = "n", .keylen = 1, .value = "1",
                                 .valuelen = 1 };
    struct mw_store_req hcas0 = { .op = MW_STORE_HCAS, .key = "h", .keylen = 1, .field = "f",
                                  .fieldlen = 1, .value = "1", .valuelen = 1 };
    struct mw_store_req due0 = { .op = MW_STORE_DUE, .key = "q", .keylen = 1, .count = 1 };
    const struct mw_store_req *reqs[] = { &get, &inc, &exp0, &cas0, &hcas0, &due0 };
    for (size_t i = 0; i < sizeof reqs / sizeof *reqs; i++) {
        struct got g = { 0 };
        assert_int_equal(mw_store_submit(reqs[i], on_result, &g), 1);
        assert_int_equal(g.calls, 1);
        assert_int_equal(g.err, MW_STORE_EUNAVAIL);
    }
    struct raw raw = { 0 };
    const char *argv[] = { "PING" };
    assert_int_equal(mw_store_redis_call(on_raw, &raw, 1, argv, NULL), -1);
    assert_int_equal(raw.calls, 0);

    redis_server_start(); /* the same port */
    assert_true(run_until(is_up, 15000));
    assert_float_equal(incr_init("n", 1, 10, 0).num, 11, 0); /* NOSCRIPT, then EVAL */
    assert_int_equal(expire("n", 0).err, 0);
    assert_value("n", "11");
}

int main(void)
{
    mw_log_set(MW_LOG_ERROR, 0);
    signal(SIGPIPE, SIG_IGN);
    be = &redis_backend;
    deferred_group = true; /* every request completes from the loop */
    redis_port = free_port();
    redis_server_start();
    char url[64], err[256];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", redis_port);
    struct mw_redis_hooks hooks = { NULL, NULL };
    struct mw_redis_options opts = { 0 };
    if (mw_redis_start(url, &hooks, &opts, err, sizeof err) < 0 || !run_until(is_up, 5000)) {
        fprintf(stderr, "cannot connect to %s: %s\n", url, err);
        redis_server_kill();
        return 1;
    }
    mw_store_use_redis(true);

    const struct CMUnitTest tests[] = {
        SHARED_OPS,
        cmocka_unit_test_setup_teardown(test_stored_form, setup, teardown),
        cmocka_unit_test_setup_teardown(test_foreign_data, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_memory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_script_cache_lost, setup, teardown),
        cmocka_unit_test_setup_teardown(test_raw_call, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_completes_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unavailable_while_down, setup, teardown),
    };
    int failed = cmocka_run_group_tests_name("store, Redis backend", tests, NULL, NULL);

    mw_redis_stop();
    uv_run(uv_default_loop(), UV_RUN_DEFAULT); /* the connections finish closing */
    redis_server_kill();
    if (uv_loop_close(uv_default_loop()) != 0) {
        fprintf(stderr, "loop not empty at exit\n");
        failed++;
    }
    return failed;
}

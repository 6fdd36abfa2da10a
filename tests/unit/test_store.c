/* test_store.c - the store through its C interface (store.h): every operation and
 * its edge cases, expiry (lazy and the active sweep freeing memory), bounds, the
 * deferred (asynchronous) completion path, and the Lua binding's synchronous path and
 * argument errors.
 *
 * The semantics cases (SHARED_OPS) run against every backend: here against the memory
 * backend twice, with requests completing at once and deferred to the next loop
 * iteration (the path the Redis backend takes); and in test_store_redis.c, which
 * includes this file with MW_TEST_STORE_REDIS defined, against the Redis backend and
 * a real redis-server. What differs between backends (the clock, counting keys) is
 * behind `struct backend`; the memory backend's own cases (sweep, bounds, accounting)
 * are compiled here only. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>
#include <uv.h>

#include "lua/lua_api.h"
#include "base/log.h"
#include "base/lua_json.h"
#include "store/store.h"
#include "base/util.h"

/* ---- running requests whichever way they complete ---- */

struct got {
    int calls;
    int err;
    bool nil;
    char value[1024];
    double num;
    size_t nvalues;
    char list[4096]; /* lrange: the JSON texts joined by spaces */
};

static void on_result(void *ud, const struct mw_store_result *r)
{
    struct got *g = ud;
    g->calls++;
    g->err = r->err;
    g->num = r->num;
    g->nil = r->value == NULL;
    if (r->value)
        snprintf(g->value, sizeof g->value, "%.*s", (int)r->valuelen, r->value);
    g->nvalues = r->nvalues;
    g->list[0] = '\0';
    for (size_t i = 0; i < r->nvalues; i++) {
        size_t n = strlen(g->list);
        snprintf(g->list + n, sizeof g->list - n, "%s%.*s", i ? " " : "",
                 (int)r->values[i].len, r->values[i].p);
    }
}

static bool deferred_group;

/* Submits req and returns its result, running the loop when it completes later. */
static struct got run(struct mw_store_req req)
{
    struct got g = { 0 };
    int done = mw_store_submit(&req, on_result, &g);
    if (deferred_group) /* only what the front refuses completes at once */
        assert_true(!done || g.err == MW_STORE_EINVAL);
    if (done) {
        assert_int_equal(g.calls, 1);
    } else {
        assert_int_equal(g.calls, 0); /* never inside the call when it said "later" */
        while (!g.calls) /* a Redis reply may take several loop runs to read */
            uv_run(uv_default_loop(), UV_RUN_ONCE);
    }
    assert_int_equal(g.calls, 1);
    return g;
}

static struct got op(enum mw_store_op o, const char *key)
{
    return run((struct mw_store_req){ .op = o, .key = key, .keylen = strlen(key) });
}

static struct got put(enum mw_store_op o, const char *key, const char *json, uint64_t ttl_ms)
{
    return run((struct mw_store_req){ .op = o, .key = key, .keylen = strlen(key),
                                      .value = json, .valuelen = strlen(json),
                                      .ttl_ms = ttl_ms });
}

static int set(const char *key, const char *json, uint64_t ttl_ms)
{
    return put(MW_STORE_SET, key, json, ttl_ms).err;
}

static struct got incr(const char *key, double n)
{
    return run((struct mw_store_req){ .op = MW_STORE_INCR, .key = key,
                                      .keylen = strlen(key), .n = n });
}

static struct got incr_init(const char *key, double n, double init, uint64_t ttl_ms)
{
    return run((struct mw_store_req){ .op = MW_STORE_INCR, .key = key, .keylen = strlen(key),
                                      .n = n, .init = init, .has_init = true,
                                      .ttl_ms = ttl_ms });
}

static struct got expire(const char *key, uint64_t ttl_ms)
{
    return run((struct mw_store_req){ .op = MW_STORE_EXPIRE, .key = key,
                                      .keylen = strlen(key), .ttl_ms = ttl_ms });
}

static struct got lrange(const char *key, int64_t start, int64_t stop)
{
    return run((struct mw_store_req){ .op = MW_STORE_LRANGE, .key = key,
                                      .keylen = strlen(key), .start = start, .stop = stop });
}

static struct got cas(const char *key, const char *token, const char *json, uint64_t ttl_ms)
{
    return run((struct mw_store_req){ .op = MW_STORE_CAS, .key = key, .keylen = strlen(key),
                                      .token = token, .tokenlen = token ? strlen(token) : 0,
                                      .has_token = token != NULL, .value = json,
                                      .valuelen = json ? strlen(json) : 0, .ttl_ms = ttl_ms });
}

/* hget, hdel (json NULL), hset, or hcas when `token` is given or `absent` is set. */
static struct got hash(enum mw_store_op o, const char *key, const char *field,
                       const char *token, const char *json)
{
    return run((struct mw_store_req){ .op = o, .key = key, .keylen = strlen(key),
                                      .field = field, .fieldlen = strlen(field),
                                      .token = token, .tokenlen = token ? strlen(token) : 0,
                                      .has_token = token != NULL, .value = json,
                                      .valuelen = json ? strlen(json) : 0 });
}

static struct got hget(const char *key, const char *field)
{
    return hash(MW_STORE_HGET, key, field, NULL, NULL);
}

static int hset(const char *key, const char *field, const char *json)
{
    return hash(MW_STORE_HSET, key, field, NULL, json).err;
}

/* The hash's "field=value" pairs, sorted, joined by spaces ("" for none). */
static char *hgetall(const char *key, char *out, size_t n)
{
    struct got g = op(MW_STORE_HGETALL, key);
    char *pairs[64];
    size_t np = 0;
    char *save = NULL;
    assert_int_equal(g.err, 0);
    assert_int_equal(g.nvalues % 2, 0);
    for (char *t = strtok_r(g.list, " ", &save); t && np < 64; t = strtok_r(NULL, " ", &save))
        pairs[np++] = t;
    out[0] = '\0';
    /* fields and values alternate; sort the pairs by field (simple insertion sort) */
    for (size_t i = 2; i < np; i += 2)
        for (size_t j = i; j >= 2 && strcmp(pairs[j - 2], pairs[j]) > 0; j -= 2) {
            char *f = pairs[j], *v = pairs[j + 1];
            pairs[j] = pairs[j - 2], pairs[j + 1] = pairs[j - 1];
            pairs[j - 2] = f, pairs[j - 1] = v;
        }
    for (size_t i = 0; i + 1 < np; i += 2) {
        size_t len = strlen(out);
        snprintf(out + len, n - len, "%s%s=%s", i ? " " : "", pairs[i], pairs[i + 1]);
    }
    return out;
}

static int schedule(const char *q, const char *item, uint64_t delay_ms)
{
    return run((struct mw_store_req){ .op = MW_STORE_SCHEDULE, .key = q, .keylen = strlen(q),
                                      .value = item, .valuelen = strlen(item),
                                      .ttl_ms = delay_ms }).err;
}

static struct got due(const char *q, uint32_t count, uint64_t lease_ms)
{
    return run((struct mw_store_req){ .op = MW_STORE_DUE, .key = q, .keylen = strlen(q),
                                      .count = count, .ttl_ms = lease_ms });
}

static int unschedule(const char *q, const char *item)
{
    return run((struct mw_store_req){ .op = MW_STORE_UNSCHEDULE, .key = q, .keylen = strlen(q),
                                      .value = item, .valuelen = strlen(item) }).err;
}

/* Asserts key holds exactly this JSON text. */
static void assert_value(const char *key, const char *json)
{
    struct got g = op(MW_STORE_GET, key);
    assert_int_equal(g.err, 0);
    assert_false(g.nil);
    assert_string_equal(g.value, json);
}

static void assert_absent(const char *key)
{
    struct got g = op(MW_STORE_GET, key);
    assert_int_equal(g.err, 0);
    assert_true(g.nil);
}

static struct mw_store_stats stats(void)
{
    struct mw_store_stats s;
    mw_store_stats(&s);
    return s;
}

/* ---- the backend under test ---- */

struct backend {
    void (*reset)(void);          /* after mw_store_init: an empty store, test settings */
    void (*advance)(uint64_t ms); /* lets at least ms pass on the store's clock */
    uint64_t (*keys)(void);       /* keys in the store */
    double ttl_slack;             /* seconds a TTL may have run down by when read */
    bool memory;                  /* the memory backend: byte and expiry counters too */
};

static const struct backend *be;

/* Asserts key has a TTL of secs (0: none), less what time passed since it was set. */
static void assert_ttl(const char *key, double secs)
{
    struct got g = op(MW_STORE_TTL, key);
    assert_int_equal(g.err, 0);
    if (g.num > secs + 1e-9 || g.num < secs - be->ttl_slack - 1e-9 || (secs == 0) != (g.num == 0))
        fail_msg("ttl(%s) = %.6f, want %.6f (less at most %.3f)", key, g.num, secs, be->ttl_slack);
}

static int setup(void **state)
{
    (void)state;
    mw_store_init();
    be->reset();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    mw_store_free();
    uv_run(uv_default_loop(), UV_RUN_NOWAIT); /* its handles' close callbacks */
    return 0;
}

/* ---- operations ---- */

static void test_get_set(void **state)
{
    (void)state;
    assert_absent("a");
    assert_int_equal(set("a", "12", 0), 0);
    assert_value("a", "12");
    assert_int_equal(set("a", "{\"x\":[1,2,{}],\"y\":[]}", 0), 0);
    assert_value("a", "{\"x\":[1,2,{}],\"y\":[]}");
    assert_int_equal(set("b", "\"text\"", 0), 0);
    assert_value("b", "\"text\"");
    assert_int_equal(set("c", "null", 0), 0); /* JSON null is a value; nil is not */
    assert_value("c", "null");
    assert_int_equal(be->keys(), 3);
    /* Any bytes but NUL make a key, up to 256 of them. */
    char key[MW_STORE_MAX_KEY + 1];
    memset(key, 'k', MW_STORE_MAX_KEY);
    key[MW_STORE_MAX_KEY] = '\0';
    assert_int_equal(set(key, "1", 0), 0);
    assert_value(key, "1");
    assert_int_equal(set("sp ace/ü:{x}", "2", 0), 0);
    assert_value("sp ace/ü:{x}", "2");
}

static void test_set_resets_ttl(void **state)
{
    (void)state;
    assert_int_equal(set("a", "1", 100), 0);
    assert_ttl("a", 0.1);
    assert_int_equal(set("a", "2", 0), 0); /* like Redis SET: the TTL goes */
    assert_ttl("a", 0);
    be->advance(150);
    assert_value("a", "2");
}

static void test_add(void **state)
{
    (void)state;
    assert_int_equal(put(MW_STORE_ADD, "a", "1", 100).err, 0);
    assert_int_equal(put(MW_STORE_ADD, "a", "2", 0).err, MW_STORE_EEXIST);
    assert_value("a", "1");
    be->advance(100); /* expired: absent again */
    assert_int_equal(put(MW_STORE_ADD, "a", "3", 0).err, 0);
    assert_value("a", "3");
    assert_int_equal(put(MW_STORE_RPUSH, "l", "1", 0).err, 0);
    assert_int_equal(put(MW_STORE_ADD, "l", "1", 0).err, MW_STORE_EEXIST);
}

static void test_replace(void **state)
{
    (void)state;
    assert_int_equal(put(MW_STORE_REPLACE, "a", "1", 0).err, MW_STORE_ENOTFOUND);
    assert_absent("a");
    assert_int_equal(set("a", "1", 0), 0);
    assert_int_equal(put(MW_STORE_REPLACE, "a", "[2]", 200).err, 0);
    assert_value("a", "[2]");
    assert_ttl("a", 0.2);
    be->advance(200);
    assert_int_equal(put(MW_STORE_REPLACE, "a", "3", 0).err, MW_STORE_ENOTFOUND);
}

static void test_incr(void **state)
{
    (void)state;
    struct got g = incr("n", 1);
    assert_int_equal(g.err, MW_STORE_ENOTFOUND);
    assert_absent("n");
    g = incr_init("n", 1, 10, 0);
    assert_int_equal(g.err, 0);
    assert_float_equal(g.num, 11, 0);
    assert_value("n", "11"); /* stored as JSON text, the way Redis INCRBY sees it */
    g = incr("n", 0.5);
    assert_float_equal(g.num, 11.5, 0);
    assert_value("n", "11.5");
    g = incr_init("n", -12.5, 1000, 0); /* init is only for a missing key */
    assert_float_equal(g.num, -1, 0);
    assert_value("n", "-1");
    g = incr("n", 0.1);
    assert_value("n", "-0.9");

    assert_int_equal(set("s", "\"12\"", 0), 0);
    assert_int_equal(incr("s", 1).err, MW_STORE_ENOTNUM);
    assert_int_equal(set("s", "true", 0), 0);
    assert_int_equal(incr("s", 1).err, MW_STORE_ENOTNUM);
    assert_int_equal(set("s", "[1]", 0), 0);
    assert_int_equal(incr_init("s", 1, 0, 0).err, MW_STORE_ENOTNUM);
    assert_value("s", "[1]");
    assert_int_equal(set("e", "1e3", 0), 0); /* any JSON number */
    assert_float_equal(incr("e", 1).num, 1001, 0);

    assert_int_equal(set("big", "1e308", 0), 0);
    assert_int_equal(incr("big", 1e308).err, MW_STORE_ERANGE);
    assert_value("big", "1e308");

    assert_int_equal(put(MW_STORE_RPUSH, "l", "1", 0).err, 0);
    assert_int_equal(incr_init("l", 1, 0, 0).err, MW_STORE_EWRONGTYPE);
}

static void test_incr_ttl(void **state)
{
    (void)state;
    struct got g = incr_init("n", 1, 0, 200); /* init_ttl applies to the new key */
    assert_float_equal(g.num, 1, 0);
    assert_ttl("n", 0.2);
    be->advance(80);
    incr_init("n", 1, 0, 5000); /* existing key: keeps its TTL */
    assert_ttl("n", 0.12);
    assert_value("n", "2");
    be->advance(120);
    assert_int_equal(incr("n", 1).err, MW_STORE_ENOTFOUND);
}

static void test_delete(void **state)
{
    (void)state;
    assert_int_equal(op(MW_STORE_DELETE, "a").err, 0); /* absent: still ok */
    assert_int_equal(set("a", "1", 1000), 0);
    assert_int_equal(op(MW_STORE_DELETE, "a").err, 0);
    assert_absent("a");
    assert_int_equal(put(MW_STORE_RPUSH, "l", "1", 0).err, 0);
    assert_int_equal(op(MW_STORE_DELETE, "l").err, 0);
    assert_float_equal(op(MW_STORE_LLEN, "l").num, 0, 0);
    assert_int_equal(be->keys(), 0);
    if (be->memory) {
        assert_int_equal(stats().bytes, 0);
        assert_int_equal(stats().expired_total, 0);
    }
}

static void test_expire_and_ttl(void **state)
{
    (void)state;
    assert_int_equal(op(MW_STORE_TTL, "a").err, MW_STORE_ENOTFOUND);
    assert_int_equal(expire("a", 1000).err, MW_STORE_ENOTFOUND);
    assert_int_equal(set("a", "1", 0), 0);
    assert_ttl("a", 0); /* no expiry */
    assert_int_equal(expire("a", 150).err, 0);
    assert_ttl("a", 0.15);
    be->advance(50);
    assert_ttl("a", 0.1);
    assert_int_equal(expire("a", 0).err, 0); /* persist */
    assert_ttl("a", 0);
    assert_int_equal(expire("a", 0).err, 0); /* persisting a persistent key is fine */
    be->advance(200);
    assert_value("a", "1");
    assert_int_equal(expire("a", 1).err, 0);
    be->advance(1);
    assert_int_equal(op(MW_STORE_TTL, "a").err, MW_STORE_ENOTFOUND);
    assert_int_equal(expire("a", 0).err, MW_STORE_ENOTFOUND);
    /* Lists expire too. */
    assert_int_equal(put(MW_STORE_RPUSH, "l", "1", 0).err, 0);
    assert_int_equal(expire("l", 100).err, 0);
    assert_int_equal(put(MW_STORE_RPUSH, "l", "2", 0).err, 0); /* push keeps the TTL */
    assert_ttl("l", 0.1);
    be->advance(100);
    assert_float_equal(op(MW_STORE_LLEN, "l").num, 0, 0);
}

static void test_lists(void **state)
{
    (void)state;
    assert_float_equal(op(MW_STORE_LLEN, "l").num, 0, 0);
    assert_true(op(MW_STORE_LPOP, "l").nil);
    assert_true(op(MW_STORE_RPOP, "l").nil);
    assert_int_equal(lrange("l", 0, -1).nvalues, 0);

    assert_float_equal(put(MW_STORE_RPUSH, "l", "\"a\"", 0).num, 1, 0);
    assert_float_equal(put(MW_STORE_RPUSH, "l", "\"b\"", 0).num, 2, 0);
    assert_float_equal(put(MW_STORE_RPUSH, "l", "{\"c\":[]}", 0).num, 3, 0);
    assert_float_equal(put(MW_STORE_LPUSH, "l", "0", 0).num, 4, 0);
    assert_float_equal(op(MW_STORE_LLEN, "l").num, 4, 0);

    assert_string_equal(lrange("l", 0, -1).list, "0 \"a\" \"b\" {\"c\":[]}");
    assert_string_equal(lrange("l", 1, 1).list, "\"a\"");
    assert_string_equal(lrange("l", -2, -1).list, "\"b\" {\"c\":[]}");
    assert_string_equal(lrange("l", -100, 1).list, "0 \"a\"");
    assert_string_equal(lrange("l", 2, 100).list, "\"b\" {\"c\":[]}");
    assert_int_equal(lrange("l", 2, 1).nvalues, 0);
    assert_int_equal(lrange("l", 4, 10).nvalues, 0);
    assert_int_equal(lrange("l", -1, -2).nvalues, 0);
    assert_int_equal(lrange("l", 0, -5).nvalues, 0);
    assert_string_equal(lrange("l", 0, 0).list, "0");

    assert_string_equal(op(MW_STORE_LPOP, "l").value, "0");
    assert_string_equal(op(MW_STORE_RPOP, "l").value, "{\"c\":[]}");
    assert_string_equal(op(MW_STORE_RPOP, "l").value, "\"b\"");
    assert_int_equal(be->keys(), 1);
    assert_string_equal(op(MW_STORE_LPOP, "l").value, "\"a\"");
    /* An emptied list is gone, like in Redis. */
    assert_int_equal(be->keys(), 0);
    if (be->memory)
        assert_int_equal(stats().bytes, 0);
    assert_int_equal(op(MW_STORE_TTL, "l").err, MW_STORE_ENOTFOUND);
    assert_true(op(MW_STORE_LPOP, "l").nil);
    assert_int_equal(set("l", "1", 0), 0); /* and the key can be a scalar now */
}

static void test_wrong_type(void **state)
{
    (void)state;
    assert_int_equal(set("s", "1", 0), 0);
    assert_int_equal(put(MW_STORE_LPUSH, "s", "1", 0).err, MW_STORE_EWRONGTYPE);
    assert_int_equal(put(MW_STORE_RPUSH, "s", "1", 0).err, MW_STORE_EWRONGTYPE);
    assert_int_equal(op(MW_STORE_LPOP, "s").err, MW_STORE_EWRONGTYPE);
    assert_int_equal(op(MW_STORE_RPOP, "s").err, MW_STORE_EWRONGTYPE);
    assert_int_equal(op(MW_STORE_LLEN, "s").err, MW_STORE_EWRONGTYPE);
    assert_int_equal(lrange("s", 0, -1).err, MW_STORE_EWRONGTYPE);
    assert_value("s", "1");

    assert_int_equal(put(MW_STORE_RPUSH, "l", "1", 0).err, 0);
    assert_int_equal(op(MW_STORE_GET, "l").err, MW_STORE_EWRONGTYPE);
    assert_int_equal(incr("l", 1).err, MW_STORE_EWRONGTYPE);
    assert_int_equal(put(MW_STORE_REPLACE, "l", "2", 0).err, 0); /* set/replace overwrite */
    assert_value("l", "2");
    assert_int_equal(put(MW_STORE_RPUSH, "l2", "1", 0).err, 0);
    assert_int_equal(set("l2", "3", 0), 0);
    assert_value("l2", "3");
    if (be->memory) /* keys, values, overhead */
        assert_int_equal(stats().bytes, (1 + 17) + (1 + 17) + (2 + 17));
}

/* A list that grows past several ring sizes from both ends keeps its order, and one
 * that is popped down gives its bytes back. */
static void test_list_ring(void **state)
{
    (void)state;
    enum { N = 300 };
    char v[16];
    for (int i = 0; i < N; i++) {
        snprintf(v, sizeof v, "%d", i);
        put(i % 2 ? MW_STORE_RPUSH : MW_STORE_LPUSH, "l", v, 0);
    }
    /* Left pushes of 0, 2, 4... come out reversed before the right pushes 1, 3, 5... */
    struct got g = lrange("l", 0, -1);
    assert_int_equal(g.nvalues, N);
    char *p = g.list;
    for (int i = N - 2; i >= 0; i -= 2) {
        assert_int_equal(strtol(p, &p, 10), i);
    }
    for (int i = 1; i < N; i += 2)
        assert_int_equal(strtol(p, &p, 10), i);
    for (int i = 0; i < N - 2; i++)
        op(i % 3 ? MW_STORE_RPOP : MW_STORE_LPOP, "l");
    assert_float_equal(op(MW_STORE_LLEN, "l").num, 2, 0);
    op(MW_STORE_LPOP, "l");
    op(MW_STORE_LPOP, "l");
    assert_int_equal(be->keys(), 0);
    if (be->memory)
        assert_int_equal(stats().bytes, 0);
}

/* ---- compare-and-set ---- */

static void test_cas(void **state)
{
    (void)state;
    /* No token: only while absent (add), once. */
    assert_int_equal(cas("a", NULL, "{\"v\":1}", 0).err, 0);
    assert_int_equal(cas("a", NULL, "{\"v\":2}", 0).err, MW_STORE_ECHANGED);
    assert_value("a", "{\"v\":1}");
    /* A token: only while the value is still that text, byte for byte. */
    assert_int_equal(cas("a", "{\"v\": 1}", "{\"v\":2}", 0).err, MW_STORE_ECHANGED);
    assert_int_equal(cas("a", "{\"v\":1}", "{\"v\":2}", 300).err, 0);
    assert_value("a", "{\"v\":2}");
    assert_ttl("a", 0.3); /* the write sets the TTL, like set */
    assert_int_equal(cas("a", "{\"v\":1}", "{\"v\":3}", 0).err, MW_STORE_ECHANGED);
    assert_int_equal(cas("a", "{\"v\":2}", "{\"v\":3}", 0).err, 0);
    assert_ttl("a", 0);
    /* A NULL value deletes, under the same condition. */
    assert_int_equal(cas("a", "{\"v\":2}", NULL, 0).err, MW_STORE_ECHANGED);
    assert_value("a", "{\"v\":3}");
    assert_int_equal(cas("a", "{\"v\":3}", NULL, 0).err, 0);
    assert_absent("a");
    assert_int_equal(cas("a", "{\"v\":3}", NULL, 0).err, MW_STORE_ECHANGED);
    assert_int_equal(cas("a", NULL, NULL, 0).err, 0); /* absent, stays absent */
    assert_int_equal(be->keys(), 0);
    /* An expired value is absent. */
    assert_int_equal(cas("e", NULL, "1", 100).err, 0);
    be->advance(100);
    assert_int_equal(cas("e", "1", "2", 0).err, MW_STORE_ECHANGED);
    assert_int_equal(cas("e", NULL, "2", 0).err, 0);
    assert_value("e", "2");
    /* Only on values. */
    assert_int_equal(put(MW_STORE_RPUSH, "l", "1", 0).err, 0);
    assert_int_equal(cas("l", NULL, "1", 0).err, MW_STORE_EWRONGTYPE);
    assert_int_equal(cas("l", "1", "2", 0).err, MW_STORE_EWRONGTYPE);
    assert_float_equal(op(MW_STORE_LLEN, "l").num, 1, 0);
}

/* ---- hashes ---- */

static void test_hashes(void **state)
{
    (void)state;
    char all[512];
    assert_true(hget("h", "f").nil);
    assert_string_equal(hgetall("h", all, sizeof all), "");
    assert_int_equal(hset("h", "f", "1"), 0);
    assert_int_equal(hset("h", "g", "{\"x\":[]}"), 0);
    assert_int_equal(hset("h", "f", "\"one\""), 0); /* overwrites */
    assert_string_equal(hget("h", "f").value, "\"one\"");
    assert_true(hget("h", "nope").nil);
    assert_string_equal(hgetall("h", all, sizeof all), "f=\"one\" g={\"x\":[]}");
    assert_int_equal(be->keys(), 1);
    /* Any bytes but NUL make a field, up to 1024 of them. */
    char field[MW_STORE_MAX_FIELD + 1];
    memset(field, 'f', MW_STORE_MAX_FIELD);
    field[MW_STORE_MAX_FIELD] = '\0';
    assert_int_equal(hset("h2", field, "1"), 0);
    assert_string_equal(hget("h2", field).value, "1");
    assert_float_equal(hash(MW_STORE_HDEL, "h2", field, NULL, NULL).num, 1, 0);

    assert_float_equal(hash(MW_STORE_HDEL, "h", "f", NULL, NULL).num, 1, 0);
    assert_float_equal(hash(MW_STORE_HDEL, "h", "f", NULL, NULL).num, 0, 0);
    assert_string_equal(hgetall("h", all, sizeof all), "g={\"x\":[]}");
    /* The whole hash expires; an emptied one is gone, as in Redis. */
    assert_int_equal(expire("h", 100).err, 0);
    assert_int_equal(hset("h", "f", "2"), 0); /* keeps the TTL */
    assert_ttl("h", 0.1);
    assert_float_equal(hash(MW_STORE_HDEL, "h", "f", NULL, NULL).num, 1, 0);
    assert_float_equal(hash(MW_STORE_HDEL, "h", "g", NULL, NULL).num, 1, 0);
    assert_int_equal(op(MW_STORE_TTL, "h").err, MW_STORE_ENOTFOUND);
    assert_int_equal(be->keys(), 0);
    if (be->memory)
        assert_int_equal(stats().bytes, 0);
    assert_int_equal(hset("h", "f", "1"), 0);
    assert_int_equal(expire("h", 100).err, 0);
    be->advance(100);
    assert_true(hget("h", "f").nil);
}

static void test_hcas(void **state)
{
    (void)state;
    char all[512];
    /* Without a token: only while the field is absent. */
    assert_int_equal(hash(MW_STORE_HCAS, "h", "t1", NULL, "\"ana\"").err, 0);
    assert_int_equal(hash(MW_STORE_HCAS, "h", "t1", NULL, "\"bob\"").err, MW_STORE_ECHANGED);
    assert_int_equal(hash(MW_STORE_HCAS, "h", "t2", NULL, "\"bob\"").err, 0);
    /* With one: only while the field is still that text. */
    assert_int_equal(hash(MW_STORE_HCAS, "h", "t1", "\"bob\"", "1").err, MW_STORE_ECHANGED);
    assert_int_equal(hash(MW_STORE_HCAS, "h", "t1", "\"ana\"", "1").err, 0);
    assert_int_equal(hash(MW_STORE_HCAS, "h", "t1", "\"ana\"", "2").err, MW_STORE_ECHANGED);
    assert_string_equal(hgetall("h", all, sizeof all), "t1=1 t2=\"bob\"");
    assert_int_equal(hash(MW_STORE_HCAS, "h", "nope", "1", "2").err, MW_STORE_ECHANGED);
    /* NULL deletes the field, under the same condition; the last one takes the key. */
    assert_int_equal(hash(MW_STORE_HCAS, "h", "t1", "2", NULL).err, MW_STORE_ECHANGED);
    assert_int_equal(hash(MW_STORE_HCAS, "h", "t1", "1", NULL).err, 0);
    assert_int_equal(hash(MW_STORE_HCAS, "h", "t2", "\"bob\"", NULL).err, 0);
    assert_int_equal(be->keys(), 0);
    if (be->memory)
        assert_int_equal(stats().bytes, 0);
}

/* Every value kind refuses the others' operations; set overwrites any of them. */
static void test_wrong_type_hashes_queues(void **state)
{
    (void)state;
    assert_int_equal(set("s", "1", 0), 0);
    assert_int_equal(hget("s", "f").err, MW_STORE_EWRONGTYPE);
    assert_int_equal(hset("s", "f", "1"), MW_STORE_EWRONGTYPE);
    assert_int_equal(hash(MW_STORE_HDEL, "s", "f", NULL, NULL).err, MW_STORE_EWRONGTYPE);
    assert_int_equal(hash(MW_STORE_HCAS, "s", "f", NULL, "1").err, MW_STORE_EWRONGTYPE);
    assert_int_equal(op(MW_STORE_HGETALL, "s").err, MW_STORE_EWRONGTYPE);
    assert_int_equal(schedule("s", "1", 0), MW_STORE_EWRONGTYPE);
    assert_int_equal(due("s", 10, 0).err, MW_STORE_EWRONGTYPE);
    assert_int_equal(unschedule("s", "1"), MW_STORE_EWRONGTYPE);
    assert_value("s", "1");

    assert_int_equal(hset("h", "f", "1"), 0);
    assert_int_equal(op(MW_STORE_GET, "h").err, MW_STORE_EWRONGTYPE);
    assert_int_equal(put(MW_STORE_RPUSH, "h", "1", 0).err, MW_STORE_EWRONGTYPE);
    assert_int_equal(cas("h", NULL, "1", 0).err, MW_STORE_EWRONGTYPE);
    assert_int_equal(schedule("h", "1", 0), MW_STORE_EWRONGTYPE);
    assert_int_equal(schedule("q", "1", 0), 0);
    assert_int_equal(op(MW_STORE_GET, "q").err, MW_STORE_EWRONGTYPE);
    assert_int_equal(hget("q", "f").err, MW_STORE_EWRONGTYPE);
    assert_int_equal(op(MW_STORE_LLEN, "q").err, MW_STORE_EWRONGTYPE);
    assert_int_equal(set("h", "2", 0), 0);
    assert_int_equal(set("q", "3", 0), 0);
    assert_value("h", "2");
    assert_value("q", "3");
    assert_int_equal(be->keys(), 3);
    if (be->memory) /* keys, values, overhead */
        assert_int_equal(stats().bytes, 3 * (1 + 1 + 16));
}

/* ---- timed queues ---- */

static void test_queue(void **state)
{
    (void)state;
    assert_int_equal(due("q", 10, 0).nvalues, 0);
    assert_int_equal(unschedule("q", "\"a\""), MW_STORE_ENOTFOUND);
    assert_int_equal(schedule("q", "\"late\"", 600), 0);
    assert_int_equal(schedule("q", "[\"x\",2]", 300), 0);
    assert_int_equal(schedule("q", "\"now\"", 0), 0);
    struct got g = due("q", 10, 0);
    assert_string_equal(g.list, "\"now\"");
    assert_int_equal(due("q", 10, 0).nvalues, 0); /* handed out once */
    be->advance(300);
    assert_string_equal(due("q", 10, 0).list, "[\"x\",2]");
    /* Scheduling an item again moves it. */
    assert_int_equal(schedule("q", "\"late\"", 0), 0);
    assert_string_equal(due("q", 10, 0).list, "\"late\"");
    assert_int_equal(be->keys(), 0); /* an emptied queue is gone */
    if (be->memory)
        assert_int_equal(stats().bytes, 0);

    /* Earliest first, at most count at a time. */
    assert_int_equal(schedule("q", "3", 30), 0);
    assert_int_equal(schedule("q", "1", 10), 0);
    assert_int_equal(schedule("q", "2", 20), 0);
    assert_int_equal(schedule("q", "4", 1000), 0);
    be->advance(30);
    assert_string_equal(due("q", 2, 0).list, "1 2");
    assert_string_equal(due("q", 2, 0).list, "3");
    assert_int_equal(unschedule("q", "4"), 0);
    assert_int_equal(unschedule("q", "4"), MW_STORE_ENOTFOUND);
    assert_int_equal(be->keys(), 0);
}

/* A lease queues what it hands out again, so that it comes back unless its taker
 * unschedules it: a taker that dies loses nothing. */
static void test_queue_lease(void **state)
{
    (void)state;
    assert_int_equal(schedule("q", "\"job\"", 0), 0);
    assert_string_equal(due("q", 10, 300).list, "\"job\"");
    assert_int_equal(due("q", 10, 300).nvalues, 0);
    assert_int_equal(be->keys(), 1);
    be->advance(300);
    assert_string_equal(due("q", 10, 300).list, "\"job\"");
    assert_int_equal(unschedule("q", "\"job\""), 0);
    be->advance(300);
    assert_int_equal(due("q", 10, 300).nvalues, 0);
    assert_int_equal(be->keys(), 0);
    if (be->memory)
        assert_int_equal(stats().bytes, 0);
}

/* ---- requests the front refuses ---- */

static void test_invalid_requests(void **state)
{
    (void)state;
    char key[MW_STORE_MAX_KEY + 2];
    memset(key, 'k', sizeof key - 1);
    key[sizeof key - 1] = '\0';
    assert_int_equal(set(key, "1", 0), MW_STORE_EINVAL);
    assert_int_equal(set("", "1", 0), MW_STORE_EINVAL);
    assert_int_equal(run((struct mw_store_req){ .op = MW_STORE_SET, .key = "a\0b", .keylen = 3,
                                                .value = "1", .valuelen = 1 }).err,
                     MW_STORE_EINVAL);
    assert_int_equal(set("a", "", 0), MW_STORE_EINVAL);
    assert_int_equal(put(MW_STORE_RPUSH, "a", "", 0).err, MW_STORE_EINVAL);
    assert_int_equal(set("a", "1", MW_STORE_MAX_TTL_MS + 1), MW_STORE_EINVAL);
    assert_int_equal(incr("a", NAN).err, MW_STORE_EINVAL);
    assert_int_equal(hset("a", "", "1"), MW_STORE_EINVAL);
    assert_int_equal(hset("a", "f", ""), MW_STORE_EINVAL);
    char big[MW_STORE_MAX_FIELD + 2];
    memset(big, 'f', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(hset("a", big, "1"), MW_STORE_EINVAL);
    assert_int_equal(schedule("a", big, 0), MW_STORE_EINVAL);
    assert_int_equal(schedule("a", "", 0), MW_STORE_EINVAL);
    assert_int_equal(due("a", 0, 0).err, MW_STORE_EINVAL);
    assert_int_equal(due("a", MW_STORE_MAX_DUE + 1, 0).err, MW_STORE_EINVAL);
    assert_int_equal(run((struct mw_store_req){ .op = MW_STORE_CAS, .key = "a", .keylen = 1,
                                                .has_token = true }).err,
                     MW_STORE_EINVAL); /* a token is expected but none given */
    assert_int_equal(be->keys(), 0);
}

#define SHARED_OPS                                                              \
    cmocka_unit_test_setup_teardown(test_get_set, setup, teardown),             \
    cmocka_unit_test_setup_teardown(test_set_resets_ttl, setup, teardown),      \
    cmocka_unit_test_setup_teardown(test_add, setup, teardown),                 \
    cmocka_unit_test_setup_teardown(test_replace, setup, teardown),             \
    cmocka_unit_test_setup_teardown(test_incr, setup, teardown),                \
    cmocka_unit_test_setup_teardown(test_incr_ttl, setup, teardown),            \
    cmocka_unit_test_setup_teardown(test_delete, setup, teardown),              \
    cmocka_unit_test_setup_teardown(test_expire_and_ttl, setup, teardown),      \
    cmocka_unit_test_setup_teardown(test_lists, setup, teardown),               \
    cmocka_unit_test_setup_teardown(test_wrong_type, setup, teardown),          \
    cmocka_unit_test_setup_teardown(test_list_ring, setup, teardown),           \
    cmocka_unit_test_setup_teardown(test_cas, setup, teardown),                 \
    cmocka_unit_test_setup_teardown(test_hashes, setup, teardown),              \
    cmocka_unit_test_setup_teardown(test_hcas, setup, teardown),                \
    cmocka_unit_test_setup_teardown(test_wrong_type_hashes_queues, setup, teardown), \
    cmocka_unit_test_setup_teardown(test_queue, setup, teardown),               \
    cmocka_unit_test_setup_teardown(test_queue_lease, setup, teardown),         \
    cmocka_unit_test_setup_teardown(test_invalid_requests, setup, teardown)

#ifndef MW_TEST_STORE_REDIS

/* ---- the memory backend, on a test clock ---- */

static uint64_t fake_now = 1000000;

static uint64_t fake_clock(void)
{
    return fake_now;
}


static void memory_reset(void)
{
    mw_store_memory_set_deferred(deferred_group);
    fake_now = 1000000;
    mw_store_memory_set_clock(fake_clock);
}

static void memory_advance(uint64_t ms)
{
    fake_now += ms;
}

static uint64_t memory_keys(void)
{
    return stats().keys;
}

static const struct backend memory = {
    .reset = memory_reset,
    .advance = memory_advance,
    .keys = memory_keys,
    .ttl_slack = 0,
    .memory = true,
};

static int group_sync(void **state)
{
    (void)state;
    deferred_group = false;
    return 0;
}

static int group_deferred(void **state)
{
    (void)state;
    deferred_group = true;
    return 0;
}

/* ---- expiry ---- */

static void test_lazy_expiry(void **state)
{
    (void)state;
    assert_int_equal(set("a", "1", 100), 0);
    fake_now += 99;
    assert_value("a", "1");
    assert_float_equal(op(MW_STORE_TTL, "a").num, 0.001, 1e-9);
    fake_now += 1;
    assert_absent("a");
    struct mw_store_stats s = stats();
    assert_int_equal(s.keys, 0);
    assert_int_equal(s.bytes, 0);
    assert_int_equal(s.expired_total, 1);
}

/* Keys nobody reads again are freed by the sweep, at most `budget` per pass. */
static void test_sweep_frees_unread_keys(void **state)
{
    (void)state;
    char key[32];
    for (int i = 0; i < 100; i++) {
        snprintf(key, sizeof key, "t%d", i);
        assert_int_equal(set(key, "\"some value\"", 50 + (uint64_t)i), 0);
    }
    for (int i = 0; i < 10; i++) {
        snprintf(key, sizeof key, "p%d", i);
        assert_int_equal(set(key, "1", 0), 0);
    }
    uint64_t persistent_bytes = 10 * (2 + 1 + 16);
    assert_int_equal(stats().keys, 110);
    assert_int_equal(mw_store_memory_sweep(1000), 0); /* nothing due yet */
    fake_now += 50 + 99;
    assert_int_equal(mw_store_memory_sweep(30), 30);
    assert_int_equal(stats().keys, 80);
    assert_int_equal(stats().expired_total, 30);
    assert_int_equal(mw_store_memory_sweep(1000), 70);
    struct mw_store_stats s = stats();
    assert_int_equal(s.keys, 10);
    assert_int_equal(s.bytes, persistent_bytes);
    assert_int_equal(s.expired_total, 100);
}

/* The heap follows TTL changes: a refreshed or persisted key is not swept at its old
 * deadline, and keys go in deadline order whatever order they were set in. */
static void test_sweep_follows_ttl_changes(void **state)
{
    (void)state;
    assert_int_equal(set("refreshed", "1", 100), 0);
    assert_int_equal(set("persisted", "1", 100), 0);
    assert_int_equal(set("shortened", "1", 100000), 0);
    assert_int_equal(set("refreshed", "2", 1000), 0);
    assert_int_equal(expire("persisted", 0).err, 0);
    assert_int_equal(expire("shortened", 50).err, 0);
    fake_now += 200;
    assert_int_equal(mw_store_memory_sweep(1000), 1);
    assert_absent("shortened");
    assert_value("refreshed", "2");
    assert_value("persisted", "1");
    fake_now += 800;
    assert_int_equal(mw_store_memory_sweep(1000), 1);
    assert_int_equal(stats().keys, 1);

    /* Pseudo-random deadlines, with deletes and overwrites mixed in. */
    enum { N = 500 };
    uint64_t at[N];
    char key[16];
    uint64_t x = 12345;
    for (int i = 0; i < N; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        uint64_t ttl = 1 + (x >> 33) % 1000;
        snprintf(key, sizeof key, "k%d", i);
        assert_int_equal(set(key, "0", ttl), 0);
        at[i] = fake_now + ttl;
        if (i % 7 == 0) {
            op(MW_STORE_DELETE, key);
            at[i] = 0;
        }
    }
    uint64_t start = fake_now;
    for (uint64_t t = start; t <= start + 1000; t += 37) {
        fake_now = t;
        mw_store_memory_sweep(SIZE_MAX);
        uint64_t live = 0;
        for (int i = 0; i < N; i++)
            live += at[i] && at[i] > t;
        assert_int_equal(stats().keys, live + 1);
    }
    fake_now = start + 1001;
    mw_store_memory_sweep(SIZE_MAX);
    assert_int_equal(stats().keys, 1);
}

static void on_test_timer(uv_timer_t *t)
{
    (void)t;
}

/* The real thing: a 100 ms TTL, the real clock and the sweep timer on the loop; the
 * key is never read, yet its memory is freed. */
static void test_sweep_real_time(void **state)
{
    (void)state;
    mw_store_memory_set_clock(NULL);
    uint64_t t0 = mw_now_ms(); /* before the set: its TTL runs from there at the latest */
    assert_int_equal(set("gone", "\"soon\"", 100), 0);
    assert_int_equal(set("kept", "1", 0), 0);
    uv_timer_t t;
    uv_timer_init(uv_default_loop(), &t);
    while (stats().keys > 1 && mw_now_ms() - t0 < 2000) {
        uv_timer_start(&t, on_test_timer, 50, 0);
        uv_run(uv_default_loop(), UV_RUN_DEFAULT); /* the sweep timer alone would not keep it */
    }
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(uv_default_loop(), UV_RUN_NOWAIT);
    struct mw_store_stats s = stats();
    assert_int_equal(s.keys, 1);
    assert_int_equal(s.expired_total, 1);
    assert_int_equal(s.bytes, 4 + 1 + 16);
    assert_true(mw_now_ms() - t0 >= 100);
}

/* ---- deferred completion ---- */

static char order[64];

static void on_ordered(void *ud, const struct mw_store_result *r)
{
    size_t n = strlen(order);
    snprintf(order + n, sizeof order - n, "%s%s", (const char *)ud, r->err ? "!" : "");
}

static struct got resubmitted;

static void on_resubmit(void *ud, const struct mw_store_result *r)
{
    (void)ud;
    on_ordered("1", r);
    struct mw_store_req req = { .op = MW_STORE_GET, .key = "k", .keylen = 1 };
    /* A request made from a completion completes on a later iteration, not inside. */
    assert_int_equal(mw_store_submit(&req, on_result, &resubmitted), 0);
}

static void test_deferred_completes_later_in_order(void **state)
{
    (void)state;
    mw_store_memory_set_deferred(1);
    assert_true(mw_store_may_defer());
    order[0] = '\0';
    memset(&resubmitted, 0, sizeof resubmitted);
    char value[] = "41";
    struct mw_store_req set_req = { .op = MW_STORE_SET, .key = "k", .keylen = 1,
                                    .value = value, .valuelen = 2 };
    struct mw_store_req incr_req = { .op = MW_STORE_INCR, .key = "k", .keylen = 1, .n = 1 };
    assert_int_equal(mw_store_submit(&set_req, on_resubmit, NULL), 0);
    value[0] = 'x'; /* the backend copied the request: this does not reach the store */
    assert_int_equal(mw_store_submit(&incr_req, on_ordered, "2"), 0);
    assert_string_equal(order, "");
    uv_run(uv_default_loop(), UV_RUN_NOWAIT);
    assert_string_equal(order, "12");
    assert_int_equal(resubmitted.calls, 0);
    for (int i = 0; i < 10 && !resubmitted.calls; i++)
        uv_run(uv_default_loop(), UV_RUN_NOWAIT);
    assert_int_equal(resubmitted.calls, 1);
    assert_string_equal(resubmitted.value, "42");
    /* Nothing pending: the loop is free to end. */
    assert_int_equal(uv_run(uv_default_loop(), UV_RUN_DEFAULT), 0);
}

static void on_unavailable(void *ud, const struct mw_store_result *r)
{
    int *n = ud;
    assert_int_equal(r->err, MW_STORE_EUNAVAIL);
    (*n)++;
    struct mw_store_req req = { .op = MW_STORE_GET, .key = "k", .keylen = 1 };
    struct got g = { 0 };
    if (*n == 1) /* the store is closed already: answered at once */
        assert_int_equal(mw_store_submit(&req, on_result, &g), 1);
    if (*n == 1)
        assert_int_equal(g.err, MW_STORE_EUNAVAIL);
}

/* Closing the store completes what is pending with "unavailable", the way hiredis
 * calls back with no reply when its context goes. */
static void test_free_completes_pending(void **state)
{
    (void)state;
    mw_store_memory_set_deferred(1);
    int n = 0;
    struct mw_store_req req = { .op = MW_STORE_INCR, .key = "k", .keylen = 1, .n = 1,
                                .has_init = true };
    for (int i = 0; i < 3; i++)
        assert_int_equal(mw_store_submit(&req, on_unavailable, &n), 0);
    mw_store_free();
    assert_int_equal(n, 3);
    struct got g = { 0 };
    assert_int_equal(mw_store_submit(&req, on_result, &g), 1);
    assert_int_equal(g.err, MW_STORE_EUNAVAIL);
    assert_false(mw_store_may_defer());
    assert_int_equal(stats().keys, 0);
    uv_run(uv_default_loop(), UV_RUN_NOWAIT);
    mw_store_init(); /* for teardown */
}

static void on_close_store(void *ud, const struct mw_store_result *r)
{
    int *n = ud;
    assert_int_equal(r->err, 0);
    (*n)++;
    mw_store_free();
}

/* A completion that closes the store (shutdown from inside a callback): the rest of
 * the batch is refused, not run against freed state. */
static void test_free_inside_completion(void **state)
{
    (void)state;
    mw_store_memory_set_deferred(1);
    int closed = 0, n = 0;
    struct mw_store_req req = { .op = MW_STORE_INCR, .key = "k", .keylen = 1, .n = 1,
                                .has_init = true };
    assert_int_equal(mw_store_submit(&req, on_close_store, &closed), 0);
    for (int i = 0; i < 2; i++)
        assert_int_equal(mw_store_submit(&req, on_unavailable, &n), 0);
    uv_run(uv_default_loop(), UV_RUN_NOWAIT);
    assert_int_equal(closed, 1);
    assert_int_equal(n, 2);
    uv_run(uv_default_loop(), UV_RUN_NOWAIT);
    mw_store_init(); /* for teardown */
}

/* ---- bounds ---- */

static void test_limit_keys(void **state)
{
    (void)state;
    mw_store_memory_set_limits(3, 0);
    assert_int_equal(set("a", "1", 0), 0);
    assert_int_equal(set("b", "1", 0), 0);
    assert_int_equal(put(MW_STORE_RPUSH, "c", "1", 0).err, 0);
    assert_int_equal(set("d", "1", 0), MW_STORE_ENOMEM);
    assert_int_equal(put(MW_STORE_ADD, "d", "1", 0).err, MW_STORE_ENOMEM);
    assert_int_equal(put(MW_STORE_LPUSH, "d", "1", 0).err, MW_STORE_ENOMEM);
    assert_int_equal(incr_init("d", 1, 0, 0).err, MW_STORE_ENOMEM);
    assert_absent("d");
    assert_int_equal(set("a", "2", 0), 0); /* existing keys still change */
    assert_int_equal(put(MW_STORE_RPUSH, "c", "2", 0).err, 0);
    op(MW_STORE_DELETE, "a");
    assert_int_equal(set("d", "1", 0), 0);
    /* A key whose TTL passed makes room even before the sweep got to it. */
    assert_int_equal(expire("b", 10).err, 0);
    fake_now += 10;
    assert_int_equal(set("e", "1", 0), 0);
    assert_int_equal(stats().keys, 3);
    assert_int_equal(stats().expired_total, 1);
}

static void test_limit_bytes(void **state)
{
    (void)state;
    mw_store_memory_set_limits(0, 100);
    char big[80];
    memset(big, '1', 62);
    big[50] = '\0';
    assert_int_equal(set("k1", big, 0), 0); /* 2 + 50 + 16 = 68 */
    assert_int_equal(set("k2", big, 0), MW_STORE_ENOMEM);
    assert_int_equal(set("k2", "1", 0), 0); /* + 2 + 1 + 16 = 87 */
    assert_int_equal(stats().bytes, 87);
    big[50] = '1';
    big[62] = '\0';
    assert_int_equal(set("k1", big, 0), 0); /* 2 + 62 + 16 + 19 = 99 */
    assert_int_equal(incr("k2", 9).err, 0); /* "10": 100, just fits */
    assert_int_equal(stats().bytes, 100);
    assert_int_equal(incr("k2", 90).err, MW_STORE_ENOMEM); /* "100" would not */
    assert_value("k2", "10");
    assert_int_equal(put(MW_STORE_REPLACE, "k1", big, 0).err, 0); /* same size: fine */
    op(MW_STORE_DELETE, "k1");
    assert_int_equal(stats().bytes, 20);
    int pushed = 0;
    while (put(MW_STORE_RPUSH, "l", "\"x\"", 0).err == 0) /* 1 for the key, 19 each */
        pushed++;
    assert_int_equal(pushed, 4);
    assert_int_equal(stats().bytes, 97);
    /* Freed bytes are usable again. */
    op(MW_STORE_LPOP, "l");
    assert_int_equal(put(MW_STORE_RPUSH, "l", "\"x\"", 0).err, 0);
    /* One value over the whole bound never fits. */
    mw_store_memory_set_limits(0, 10);
    assert_int_equal(set("k3", "1", 0), MW_STORE_ENOMEM);
}

/* Hash fields and queued items count against the bounds too, and give back what they
 * took when they go. */
static void test_limit_hashes_queues(void **state)
{
    (void)state;
    mw_store_memory_set_limits(2, 100);
    assert_int_equal(hset("h", "f1", "1"), 0); /* 1 + 2 + 1 + 16 = 20 */
    assert_int_equal(hash(MW_STORE_HCAS, "h", "f2", NULL, "2").err, 0); /* 39 */
    assert_int_equal(stats().bytes, 39);
    assert_int_equal(schedule("q", "\"a\"", 0), 0); /* 1 + 3 + 32 = 36: 75 */
    assert_int_equal(stats().bytes, 75);
    assert_int_equal(hset("h2", "f", "1"), MW_STORE_ENOMEM); /* a third key */
    assert_int_equal(schedule("q", "\"b\"", 0), MW_STORE_ENOMEM); /* 35 more bytes */
    assert_int_equal(hset("h", "f3", "3"), 0); /* 94 */
    assert_int_equal(hset("h", "f4", "4"), MW_STORE_ENOMEM);
    assert_int_equal(hash(MW_STORE_HCAS, "h", "f3", "3", "33333333").err, MW_STORE_ENOMEM);
    assert_string_equal(hget("h", "f3").value, "3");
    assert_int_equal(due("q", 10, 0).nvalues, 1);
    assert_int_equal(stats().bytes, 58);
    op(MW_STORE_DELETE, "h");
    assert_int_equal(stats().bytes, 0);
    assert_int_equal(stats().keys, 0);
}

static void test_strerror(void **state)
{
    (void)state;
    assert_string_equal(mw_store_strerror(MW_STORE_EEXIST), "exists");
    assert_string_equal(mw_store_strerror(MW_STORE_ENOTFOUND), "not found");
    assert_string_equal(mw_store_strerror(MW_STORE_ENOTNUM), "not a number");
    assert_string_equal(mw_store_strerror(MW_STORE_EWRONGTYPE), "wrong type");
    assert_string_equal(mw_store_strerror(MW_STORE_ENOMEM), "no memory");
    assert_string_equal(mw_store_strerror(MW_STORE_EUNAVAIL), "unavailable");
}

static void test_numbers(void **state)
{
    (void)state;
    double v;
    static const char *good[] = { "0", "-0", "12", "-12.5", "1e3", "1E+3", "2.5e-1" };
    static const double want[] = { 0, 0, 12, -12.5, 1000, 1000, 0.25 };
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        assert_int_equal(mw__store_parse_number(good[i], strlen(good[i]), &v), 0);
        assert_float_equal(v, want[i], 0);
    }
    static const char *bad[] = { "", "-", "012", "1.", ".5", "1e", "\"1\"", " 1", "1 ",
                                 "nan", "inf", "0x10", "1e400", "true", "[1]" };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_equal(mw__store_parse_number(bad[i], strlen(bad[i]), &v), -1);
    char buf[32];
    mw__store_format_number(12, buf);
    assert_string_equal(buf, "12");
    mw__store_format_number(-0.0, buf);
    assert_string_equal(buf, "0");
    mw__store_format_number(0.1, buf);
    assert_string_equal(buf, "0.1");
    mw__store_format_number(1e20, buf);
    assert_string_equal(buf, "1e+20");
    mw__store_format_number(-9007199254740991.0, buf);
    assert_string_equal(buf, "-9007199254740991");
}

/* ---- the Lua binding, completing at once ---- */

static lua_State *lua_with_store(void)
{
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    lua_pushcfunction(L, luaopen_moonwire_json);
    lua_call(L, 0, 1);
    lua_setglobal(L, "json");
    lua_pushcfunction(L, luaopen_moonwire_store);
    lua_call(L, 0, 1);
    lua_setglobal(L, "store");
    return L;
}

static void run_lua(lua_State *L, const char *code)
{
    if (luaL_dostring(L, code) != 0)
        fail_msg("%s", lua_tostring(L, -1));
}

static void test_lua_sync(void **state)
{
    (void)state;
    lua_State *L = lua_with_store();
    run_lua(L,
            "assert(store.set('t', { n = 1, s = 'x', a = json.array(), o = {}, l = { 1, 2 } }) == true)\n"
            "local t = store.get('t')\n"
            "assert(t.n == 1 and t.s == 'x' and #t.l == 2 and t.l[2] == 2)\n"
            "assert(json.encode(t.a) == '[]' and json.encode(t.o) == '{}')\n"
            "assert(store.get('nope') == nil)\n"
            "assert(store.set('n', 5, 0.25) == true)\n"
            "assert(store.ttl('n') == 0.25)\n"
            "store.set('r', 1, 0.29) assert(store.ttl('r') == 0.29)\n"
            "store.set('r', 1, 1e-6) assert(store.ttl('r') == 0.001)\n"
            "assert(store.incr('n', 2) == 7)\n"
            "local ok, err = store.add('n', 1)\n"
            "assert(ok == false and err == 'exists')\n"
            "ok, err = store.replace('zz', 1)\n"
            "assert(ok == false and err == 'not found')\n"
            "ok, err = store.expire('zz', 1)\n"
            "assert(ok == false and err == 'not found')\n"
            "local v; v, err = store.incr('zz', 1)\n"
            "assert(v == nil and err == 'not found')\n"
            "assert(store.incr('zz', 1, 10, 60) == 11)\n"
            "assert(store.set('n', nil) == true and store.get('n') == nil)\n"
            "assert(store.rpush('l', 'a') == 1 and store.lpush('l', { b = 1 }) == 2)\n"
            "assert(store.llen('l') == 2)\n"
            "local r = store.lrange('l')\n"
            "assert(#r == 2 and r[1].b == 1 and r[2] == 'a' and json.is_array(r))\n"
            "assert(json.encode(store.lrange('l', 5, 9)) == '[]')\n"
            "assert(store.rpop('l') == 'a' and store.lpop('l').b == 1 and store.lpop('l') == nil)\n"
            "store.set('s', 'str')\n"
            "v, err = store.lpush('s', 1)\n"
            "assert(v == nil and err == 'wrong type')\n"
            "v, err = store.incr('s', 1)\n"
            "assert(v == nil and err == 'not a number')\n"
            "store.set('nul', json.null)\n"
            "assert(store.get('nul') == json.null)\n"
            "assert(store.delete('s') == true and store.delete('s') == true)\n");
    lua_close(L);
}

/* The new kinds through Lua: gets/cas with tokens, hashes, timed queues. */
static void test_lua_cas_hash_queue(void **state)
{
    (void)state;
    lua_State *L = lua_with_store();
    run_lua(L,
            /* gets: the value and its token; cas succeeds once per token */
            "assert(store.cas('r', nil, { status = 'held', n = 1 }) == true)\n"
            "local ok, err = store.cas('r', nil, { status = 'held' })\n"
            "assert(ok == false and err == 'changed')\n"
            "local r, token = store.gets('r')\n"
            "assert(r.status == 'held' and type(token) == 'string')\n"
            "r.status = 'confirmed'\n"
            "assert(store.cas('r', token, r, 60) == true)\n"
            "ok, err = store.cas('r', token, { status = 'expired' })\n"
            "assert(ok == false and err == 'changed' and store.get('r').status == 'confirmed')\n"
            "assert(store.ttl('r') == 60)\n"
            "local _, t2 = store.gets('r')\n"
            "assert(store.cas('r', t2, nil) == true and store.get('r') == nil)\n"
            "assert(store.gets('nope') == nil and select('#', store.gets('nope')) == 1)\n"
            "store.rpush('l', 1)\n"
            "ok, err = store.cas('l', nil, 1)\n"
            "assert(ok == false and err == 'wrong type')\n"
            /* hashes */
            "assert(next(store.hgetall('h')) == nil)\n"
            "assert(store.hset('h', 't1', { user = 'ana' }) == true)\n"
            "assert(store.hset('h', 't2', 2) == true)\n"
            "assert(store.hget('h', 't1').user == 'ana' and store.hget('h', 'x') == nil)\n"
            "local all = store.hgetall('h')\n"
            "assert(all.t1.user == 'ana' and all.t2 == 2)\n"
            "local v, tok = store.hgets('h', 't1')\n"
            "assert(v.user == 'ana' and type(tok) == 'string')\n"
            "assert(store.hcas('h', 't1', tok, { user = 'bob' }) == true)\n"
            "ok, err = store.hcas('h', 't1', tok, { user = 'eve' })\n"
            "assert(ok == false and err == 'changed' and store.hget('h', 't1').user == 'bob')\n"
            "ok, err = store.hcas('h', 't3', nil, 3)\n"
            "assert(ok == true and store.hcas('h', 't3', nil, 4) == false)\n"
            "assert(store.hdel('h', 't3') == true and store.hget('h', 't3') == nil)\n"
            "assert(store.hset('h', 't2', nil) == true and store.hget('h', 't2') == nil)\n"
            "v, err = store.get('h')\n"
            "assert(v == nil and err == 'wrong type')\n"
            /* timed queues */
            "assert(json.encode(store.due('q')) == '[]')\n"
            "assert(store.schedule('q', { 'venue:1', 'a' }, 0) == true)\n"
            "assert(store.schedule('q', 'later', 3600) == true)\n"
            "local items = store.due('q', 10, 30)\n"
            "assert(#items == 1 and items[1][1] == 'venue:1' and json.is_array(items))\n"
            "assert(#store.due('q') == 0)\n"
            "assert(store.unschedule('q', { 'venue:1', 'a' }) == true)\n"
            "ok, err = store.unschedule('q', { 'venue:1', 'a' })\n"
            "assert(ok == false and err == 'not found')\n");
    lua_close(L);
}

/* Argument errors raise, naming the function and the argument. */
static void test_lua_argument_errors(void **state)
{
    (void)state;
    static const struct { const char *call, *msg; } cases[] = {
        { "store.get(1)", "store.get: key must be a string of 1..256 bytes" },
        { "store.get({})", "store.get: key must be a string of 1..256 bytes" },
        { "store.set('', 1)", "store.set: key must be a string of 1..256 bytes" },
        { "store.set(string.rep('k', 257), 1)", "store.set: key must be a string of 1..256 bytes" },
        { "store.set('a\\0b', 1)", "store.set: key must not contain NUL bytes" },
        { "store.set('k', 1, -1)", "store.set: ttl must be a number of seconds >= 0" },
        { "store.set('k', 1, '5')", "store.set: ttl must be a number of seconds >= 0" },
        { "store.set('k', 1, 0/0)", "store.set: ttl must be a number of seconds >= 0" },
        { "store.set('k', 1, 1e12)", "store.set: ttl must be a number of seconds >= 0" },
        { "store.set('k', print)", "store.set: value cannot be stored: " },
        { "store.set('k', { f = print })", "store.set: value cannot be stored: " },
        { "store.add('k', nil)", "store.add: value must not be nil" },
        { "store.replace('k')", "store.replace: value must not be nil" },
        { "store.incr('k', 'x')", "store.incr: n must be a finite number" },
        { "store.incr('k', 1/0)", "store.incr: n must be a finite number" },
        { "store.incr('k', 1, 'x')", "store.incr: init must be a finite number" },
        { "store.incr('k', 1, 0, -5)", "store.incr: init_ttl must be a number of seconds >= 0" },
        { "store.expire('k')", "store.expire: ttl must be a number of seconds >= 0" },
        { "store.rpush('k')", "store.rpush: value must not be nil" },
        { "store.lpush(nil, 1)", "store.lpush: key must be a string of 1..256 bytes" },
        { "store.lrange('k', 1.5)", "store.lrange: start must be an integer" },
        { "store.lrange('k', 0, 'x')", "store.lrange: stop must be an integer" },
        { "store.cas('k', 1, 2)", "store.cas: token must be nil or a string from gets/hgets" },
        { "store.cas('k', nil, 1, -1)", "store.cas: ttl must be a number of seconds >= 0" },
        { "store.cas('k', nil, print)", "store.cas: value cannot be stored: " },
        { "store.hget('k')", "store.hget: field must be a string of 1..1024 bytes without NUL" },
        { "store.hset('k', '', 1)", "store.hset: field must be a string of 1..1024 bytes" },
        { "store.hset('k', string.rep('f', 1025), 1)", "store.hset: field must be a string" },
        { "store.hdel('k', 'a\\0b')", "store.hdel: field must be a string of 1..1024 bytes" },
        { "store.hcas('k', 'f', {}, 1)", "store.hcas: token must be nil or a string" },
        { "store.hgets(1, 'f')", "store.hgets: key must be a string of 1..256 bytes" },
        { "store.schedule('q', nil, 1)", "store.schedule: item must not be nil" },
        { "store.schedule('q', 'x')", "store.schedule: delay must be a number of seconds >= 0" },
        { "store.schedule('q', string.rep('x', 1100), 1)", "store.schedule: item must be at most 1024 bytes as JSON" },
        { "store.due('q', 0)", "store.due: limit must be an integer of 1..1000" },
        { "store.due('q', 1001)", "store.due: limit must be an integer of 1..1000" },
        { "store.due('q', 10, -1)", "store.due: lease must be a number of seconds >= 0" },
        { "store.unschedule('q')", "store.unschedule: item must not be nil" },
    };
    lua_State *L = lua_with_store();
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char code[256];
        snprintf(code, sizeof code, "local ok, err = pcall(function()\n%s\nend) return ok, err",
                 cases[i].call);
        run_lua(L, code);
        assert_false(lua_toboolean(L, -2));
        const char *err = lua_tostring(L, -1);
        if (!strstr(err, cases[i].msg))
            fail_msg("%s: got \"%s\", want \"%s\"", cases[i].call, err, cases[i].msg);
        /* The error points at the Lua line that made the call. */
        assert_non_null(strstr(err, ":2: store."));
        lua_pop(L, 2);
    }
    assert_int_equal(stats().keys, 0); /* none of them stored anything */
    lua_close(L);
}

/* Where a call cannot wait (load time), one that might have to is refused before it
 * takes effect; one that completes at once works anywhere. */
static void test_lua_cannot_wait_here(void **state)
{
    (void)state;
    lua_State *L = lua_with_store();
    mw_store_memory_set_deferred(1);
    run_lua(L, "local ok, err = pcall(store.set, 'k', 1) return ok, err");
    assert_false(lua_toboolean(L, -2));
    assert_non_null(strstr(lua_tostring(L, -1), "cannot wait here"));
    lua_pop(L, 2);
    uv_run(uv_default_loop(), UV_RUN_NOWAIT);
    mw_store_memory_set_deferred(0);
    run_lua(L, "assert(store.get('k') == nil) assert(store.set('k', 1))");
    assert_int_equal(stats().keys, 1);
    lua_close(L);
}

/* The memory backend's own cases, after the shared ones. */
#define OPS                                                                     \
    SHARED_OPS,                                                                 \
    cmocka_unit_test_setup_teardown(test_lazy_expiry, setup, teardown),         \
    cmocka_unit_test_setup_teardown(test_sweep_frees_unread_keys, setup, teardown), \
    cmocka_unit_test_setup_teardown(test_sweep_follows_ttl_changes, setup, teardown), \
    cmocka_unit_test_setup_teardown(test_limit_keys, setup, teardown),          \
    cmocka_unit_test_setup_teardown(test_limit_bytes, setup, teardown),         \
    cmocka_unit_test_setup_teardown(test_limit_hashes_queues, setup, teardown)

int main(void)
{
    mw_log_set(MW_LOG_WARN, 0);
    be = &memory;
    const struct CMUnitTest at_once[] = {
        OPS,
        cmocka_unit_test_setup_teardown(test_sweep_real_time, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deferred_completes_later_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_completes_pending, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_inside_completion, setup, teardown),
        cmocka_unit_test(test_strerror),
        cmocka_unit_test(test_numbers),
        cmocka_unit_test_setup_teardown(test_lua_sync, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lua_cas_hash_queue, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lua_argument_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lua_cannot_wait_here, setup, teardown),
    };
    const struct CMUnitTest deferred[] = { OPS };
    int failed = cmocka_run_group_tests_name("store, completing at once", at_once, group_sync, NULL);
    failed += cmocka_run_group_tests_name("store, deferred to the loop", deferred, group_deferred, NULL);
    /* Every handle the store opened has closed. */
    if (uv_loop_close(uv_default_loop()) != 0) {
        fprintf(stderr, "loop not empty at exit\n");
        failed++;
    }
    return failed;
}

#endif /* MW_TEST_STORE_REDIS */

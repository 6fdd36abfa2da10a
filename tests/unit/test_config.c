/* test_config.c - unit tests for core/base/config.c: defaults, every key, value syntax,
 * ${VAR} substitution, path and app: resolution, and the line of every error. */
#define _GNU_SOURCE /* nftw */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/config.h"
#include "base/log.h"

#define ERRLEN 512

/* A scratch tree made once for the whole run:
 *   TMP/app.lua  TMP/sub/other.lua  TMP/web/
 *   TMP/home/apps/{x,chat,echo,notify,reservations}/main.lua  TMP/home/examples/web/ */
static char tmp[PATH_MAX], home[PATH_MAX + 8];

static void make_dir(const char *rel)
{
    char path[PATH_MAX * 2];
    snprintf(path, sizeof path, "%s/%s", tmp, rel);
    if (mkdir(path, 0755) < 0)
        fail_msg("mkdir %s", path);
}

static void make_file(const char *rel, const char *text)
{
    char path[PATH_MAX * 2];
    snprintf(path, sizeof path, "%s/%s", tmp, rel);
    FILE *f = fopen(path, "w");
    if (!f)
        fail_msg("cannot write %s", path);
    fputs(text, f);
    fclose(f);
}

static int setup_tree(void **state)
{
    (void)state;
    char tmpl[] = "/tmp/mw_test_config.XXXXXX";
    if (!mkdtemp(tmpl) || !realpath(tmpl, tmp))
        return -1;
    snprintf(home, sizeof home, "%s/home", tmp);
    const char *dirs[] = { "sub", "web", "home", "home/apps", "home/apps/x", "home/apps/chat",
                           "home/apps/echo", "home/apps/notify", "home/apps/reservations",
                           "home/examples", "home/examples/web", "conf" };
    for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++)
        make_dir(dirs[i]);
    make_file("app.lua", "return {}\n");
    make_file("sub/other.lua", "return {}\n");
    make_file("home/apps/x/main.lua", "return {}\n");
    make_file("home/apps/chat/main.lua", "return {}\n");
    make_file("home/apps/echo/main.lua", "return {}\n");
    make_file("home/apps/notify/main.lua", "return {}\n");
    make_file("home/apps/reservations/main.lua", "return {}\n");
    make_file("conf/main.lua", "return {}\n");
    return 0;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static int teardown_tree(void **state)
{
    (void)state;
    return nftw(tmp, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static int parse(const char *yaml, struct mw_config *cfg, char *err)
{
    return mw_config_parse(yaml, strlen(yaml), "test.yaml", tmp, home, cfg, err, ERRLEN);
}

/* Parses `yaml` and returns the config, failing the test with the error if any. */
static struct mw_config parse_ok(const char *yaml)
{
    struct mw_config cfg;
    char err[ERRLEN];
    if (parse(yaml, &cfg, err) != 0)
        fail_msg("unexpected error: %s", err);
    return cfg;
}

static void assert_zeroed(const struct mw_config *cfg)
{
    struct mw_config zero;
    memset(&zero, 0, sizeof zero);
    assert_memory_equal(cfg, &zero, sizeof zero);
}

/* Expects `yaml` to fail with "test.yaml:LINE: " followed by text containing `needle`,
 * on one line, with the config left zeroed. */
static void expect_error(const char *yaml, int line, const char *needle)
{
    struct mw_config cfg;
    char err[ERRLEN], prefix[32];
    assert_int_equal(parse(yaml, &cfg, err), -1);
    snprintf(prefix, sizeof prefix, "test.yaml:%d: ", line);
    if (strncmp(err, prefix, strlen(prefix)) != 0 || !strstr(err, needle))
        fail_msg("got   \"%s\"\nwant  \"%s...%s...\"", err, prefix, needle);
    assert_null(strchr(err, '\n'));
    assert_zeroed(&cfg);
}

static void expect_exact_error(const char *yaml, const char *want)
{
    struct mw_config cfg;
    char err[ERRLEN];
    assert_int_equal(parse(yaml, &cfg, err), -1);
    assert_string_equal(err, want);
}

static char *in_tmp(const char *rel)
{
    static char path[PATH_MAX * 2];
    snprintf(path, sizeof path, "%s/%s", tmp, rel);
    return path;
}

/* ---- defaults ---- */

static void test_defaults(void **state)
{
    (void)state;
    struct mw_config cfg = parse_ok("# nothing but a comment\n");
    assert_string_equal(cfg.source, "test.yaml");
    assert_string_equal(cfg.base_dir, tmp);
    assert_string_equal(cfg.listen_host, "127.0.0.1");
    assert_int_equal(cfg.listen_port, 8080);
    assert_null(cfg.node_id);
    assert_null(cfg.static_dir);
    assert_int_equal(cfg.workers, 1);
    assert_int_equal(cfg.nroutes, 0);
    assert_int_equal(cfg.heartbeat_interval_ms, 25000);
    assert_int_equal(cfg.heartbeat_timeout_ms, 10000);
    assert_int_equal(cfg.max_message, 64 * 1024);
    assert_int_equal(cfg.send_queue, 1024 * 1024);
    assert_true(cfg.rate == 50.0);
    assert_true(cfg.burst == 100.0);
    assert_int_equal(cfg.max_connections, 100000);
    assert_int_equal(cfg.socket_send_buffer, 0);
    assert_int_equal(cfg.slow_handler_ms, 100);
    assert_null(cfg.redis_url);
    assert_int_equal(cfg.nredis_cluster, 0);
    assert_null(cfg.jwt_secret);
    assert_false(cfg.auth_required);
    assert_int_equal(cfg.napi_keys, 0);
    assert_false(cfg.hot_reload);
    assert_false(cfg.user_param);
    assert_int_equal(cfg.log_level, MW_LOG_INFO);
    assert_int_equal(cfg.log_format, MW_LOG_LOGFMT);
    assert_int_equal(cfg.inbox_size, 100);
    assert_int_equal(cfg.inbox_ttl_ms, 168 * 3600 * 1000ull);
    assert_int_equal(cfg.inbox_max_item, 4096);
    mw_config_free(&cfg);
    assert_zeroed(&cfg);
}

static void test_inbox(void **state)
{
    (void)state;
    struct mw_config cfg = parse_ok("inbox: { size: 5, ttl: 90s, max_item: 1KiB }\n");
    assert_int_equal(cfg.inbox_size, 5);
    assert_int_equal(cfg.inbox_ttl_ms, 90000);
    assert_int_equal(cfg.inbox_max_item, 1024);
    mw_config_free(&cfg);
    cfg = parse_ok("inbox: { ttl: 0 }\n"); /* no time bound */
    assert_int_equal(cfg.inbox_ttl_ms, 0);
    mw_config_free(&cfg);
    expect_error("inbox:\n  size: 0\n", 2, "inbox.size: must be between 1 and 10000, got '0'");
    expect_error("inbox:\n  size: 10001\n", 2, "inbox.size: must be between 1 and 10000");
    expect_error("inbox:\n  max_item: 2MiB\n", 2, "inbox.max_item: must be between 1 and 1048576");
    expect_error("inbox:\n  ttl: soon\n", 2, "inbox.ttl: invalid duration 'soon'");
    expect_error("inbox:\n  sise: 3\n", 2, "unknown key 'sise' in inbox (did you mean 'size'?)");
}

/* Topic feeds and booking boards have no presence events unless the file asks. */
static void test_notify_route_presence(void **state)
{
    (void)state;
    struct mw_config cfg = parse_ok("routes:\n  /n: { script: \"app:notify\" }\n"
                                    "  /m: { script: \"app:notify\", presence: { events: true } }\n"
                                    "  /x: { script: \"app:x\" }\n"
                                    "  /r: { script: \"app:reservations\" }\n"
                                    "  /s: { script: \"app:reservations\", presence: { events: true } }\n");
    assert_false(cfg.routes[0].presence_events);
    assert_true(cfg.routes[1].presence_events);
    assert_true(cfg.routes[2].presence_events);
    assert_false(cfg.routes[3].presence_events);
    assert_true(cfg.routes[4].presence_events);
    mw_config_free(&cfg);
}

static void test_route_defaults(void **state)
{
    (void)state;
    struct mw_config cfg = parse_ok("routes:\n  /chat:\n    script: app.lua\n");
    assert_int_equal(cfg.nroutes, 1);
    const struct mw_route_config *r = &cfg.routes[0];
    assert_string_equal(r->path, "/chat");
    assert_string_equal(r->script, in_tmp("app.lua"));
    assert_null(r->app);
    assert_int_equal(r->line, 2);
    assert_int_equal(r->protocol, MW_PROTO_JSON);
    assert_int_equal(r->slow_consumer, MW_SLOW_CLOSE);
    assert_false(r->compression);
    assert_int_equal(r->history_size, 100);
    assert_int_equal(r->history_ttl_ms, 0);
    assert_true(r->presence_events);
    assert_int_equal(r->presence_threshold, 100);
    assert_int_equal(r->hold_ttl_ms, 120000);
    assert_string_equal(r->options_json, "{}");
    mw_config_free(&cfg);
}

static void test_null_sections_keep_defaults(void **state)
{
    (void)state;
    struct mw_config cfg = parse_ok("heartbeat:\nlimits: ~\nredis:\nroutes:\n");
    assert_int_equal(cfg.heartbeat_interval_ms, 25000);
    assert_null(cfg.redis_url);
    assert_int_equal(cfg.nroutes, 0);
    mw_config_free(&cfg);
    cfg = parse_ok("heartbeat:\n  interval:\n  timeout: null\nlisten: ~\nstatic:\n"
                   "routes:\n  /a: { script: app.lua, options: , hold_ttl: ~ }\n");
    assert_int_equal(cfg.heartbeat_interval_ms, 25000);
    assert_int_equal(cfg.heartbeat_timeout_ms, 10000);
    assert_string_equal(cfg.listen_host, "127.0.0.1");
    assert_null(cfg.static_dir);
    assert_string_equal(cfg.routes[0].options_json, "{}");
    assert_int_equal(cfg.routes[0].hold_ttl_ms, 120000);
    mw_config_free(&cfg);
}

/* ---- every key ---- */

static const char full_yaml[] =
    "listen: \"[::1]:9090\"\n"
    "node_id: node-a.1\n"
    "static: web\n"
    "workers: 4\n"
    "routes:\n"
    "  /chat:\n"
    "    script: app.lua\n"
    "    protocol: json\n"
    "    slow_consumer: drop\n"
    "    compression: true\n"
    "    history: { size: 50, ttl: 1h }\n"
    "    presence: { events: false, threshold: 10 }\n"
    "    hold_ttl: 30s\n"
    "    options: { greeting: hi, max: 5 }\n"
    "  /raw:\n"
    "    script: app:x\n"
    "    protocol: raw\n"
    "    history: off\n"
    "heartbeat: { interval: 30s, timeout: 5s }\n"
    "limits: { max_message: 1MiB, send_queue: 10KB, rate: 2.5, burst: 10,\n"
    "          max_connections: 500, slow_handler: 250ms, socket_send_buffer: 64KiB }\n"
    "redis: { cluster: [redis://127.0.0.1:7000, \"rediss://h:7001\"] }\n"
    "auth: { jwt_secret: s3cret, required: true }\n"
    "api: { keys: [k1, k2] }\n"
    "dev: { hot_reload: yes, user_param: on }\n"
    "log: { level: debug, format: json }\n";

static void test_full_config(void **state)
{
    (void)state;
    struct mw_config cfg = parse_ok(full_yaml);
    assert_string_equal(cfg.listen_host, "::1");
    assert_int_equal(cfg.listen_port, 9090);
    assert_string_equal(cfg.node_id, "node-a.1");
    assert_string_equal(cfg.static_dir, in_tmp("web"));
    assert_int_equal(cfg.workers, 4);
    assert_int_equal(cfg.nroutes, 2);

    const struct mw_route_config *chat = mw_config_route(&cfg, "/chat");
    assert_non_null(chat);
    assert_int_equal(chat->line, 6);
    assert_int_equal(chat->protocol, MW_PROTO_JSON);
    assert_int_equal(chat->slow_consumer, MW_SLOW_DROP);
    assert_true(chat->compression);
    assert_int_equal(chat->history_size, 50);
    assert_int_equal(chat->history_ttl_ms, 3600000);
    assert_false(chat->presence_events);
    assert_int_equal(chat->presence_threshold, 10);
    assert_int_equal(chat->hold_ttl_ms, 30000);
    assert_string_equal(chat->options_json, "{\"greeting\":\"hi\",\"max\":5}");

    const struct mw_route_config *raw = mw_config_route(&cfg, "/raw");
    assert_ptr_equal(raw, &cfg.routes[1]);
    assert_string_equal(raw->app, "x");
    assert_int_equal(raw->protocol, MW_PROTO_RAW);
    assert_int_equal(raw->history_size, 0);
    assert_null(mw_config_route(&cfg, "/nope"));

    assert_int_equal(cfg.heartbeat_interval_ms, 30000);
    assert_int_equal(cfg.heartbeat_timeout_ms, 5000);
    assert_int_equal(cfg.max_message, 1024 * 1024);
    assert_int_equal(cfg.send_queue, 10000);
    assert_true(cfg.rate == 2.5);
    assert_true(cfg.burst == 10.0);
    assert_int_equal(cfg.max_connections, 500);
    assert_int_equal(cfg.socket_send_buffer, 64 * 1024);
    assert_int_equal(cfg.slow_handler_ms, 250);
    assert_null(cfg.redis_url);
    assert_int_equal(cfg.nredis_cluster, 2);
    assert_string_equal(cfg.redis_cluster[0], "redis://127.0.0.1:7000");
    assert_string_equal(cfg.redis_cluster[1], "rediss://h:7001");
    assert_null(cfg.redis_cluster[2]);
    assert_string_equal(cfg.jwt_secret, "s3cret");
    assert_true(cfg.auth_required);
    assert_int_equal(cfg.napi_keys, 2);
    assert_string_equal(cfg.api_keys[1], "k2");
    assert_true(cfg.hot_reload);
    assert_true(cfg.user_param);
    assert_int_equal(cfg.log_level, MW_LOG_DEBUG);
    assert_int_equal(cfg.log_format, MW_LOG_JSON);
    mw_config_free(&cfg);
}

/* The sample config of docs/config.md, whose keys outside tests rely on. */
static void test_spec_sample(void **state)
{
    (void)state;
    setenv("MOONWIRE_JWT_SECRET", "jwt", 1);
    unsetenv("MOONWIRE_API_KEY");
    struct mw_config cfg = parse_ok(
        "listen: 127.0.0.1:8080\n"
        "node_id: node-a                 # optional; generated when absent\n"
        "static: web                     # docroot, optional\n"
        "routes:\n"
        "  /chat:\n"
        "    script: app.lua\n"
        "    history: { size: 100 }\n"
        "heartbeat: { interval: 25s, timeout: 10s }\n"
        "limits: { max_message: 64KiB, send_queue: 1MiB, rate: 50, burst: 100, "
        "max_connections: 100000 }\n"
        "redis: { url: redis://127.0.0.1:6379 }\n"
        "auth: { jwt_secret: \"${MOONWIRE_JWT_SECRET}\", required: false }\n"
        "api: { keys: [\"${MOONWIRE_API_KEY}\"] }\n"
        "dev: { hot_reload: true, user_param: true }\n"
        "log: { level: info, format: logfmt }\n");
    assert_string_equal(cfg.redis_url, "redis://127.0.0.1:6379");
    assert_string_equal(cfg.jwt_secret, "jwt");
    assert_int_equal(cfg.napi_keys, 0);
    assert_int_equal(cfg.routes[0].history_size, 100);
    mw_config_free(&cfg);
    unsetenv("MOONWIRE_JWT_SECRET");
}

/* ---- value syntax ---- */

static void test_durations(void **state)
{
    (void)state;
    static const struct { const char *s; uint64_t ms; } good[] = {
        { "25s", 25000 }, { "500ms", 500 }, { "2m", 120000 }, { "1h", 3600000 },
        { "1.5s", 1500 }, { "25", 25000 }, { "0", 0 }, { "0.25s", 250 }, { "1.5m", 90000 },
    };
    static const char *const bad[] = {
        "", "fast", "-1s", "1.s", ".5s", "5 s", "5S", "5sec", "1d", "0.5ms", "1e3", "s",
        "99999999999999999999", "18446744073709551615h",
    };
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        uint64_t ms = 7;
        if (mw_parse_duration(good[i].s, &ms) != 0 || ms != good[i].ms)
            fail_msg("duration '%s': got %llu", good[i].s, (unsigned long long)ms);
    }
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        uint64_t ms;
        if (mw_parse_duration(bad[i], &ms) == 0)
            fail_msg("duration '%s' accepted", bad[i]);
    }
    uint64_t ms;
    assert_int_equal(mw_parse_duration(NULL, &ms), -1);
}

static void test_sizes(void **state)
{
    (void)state;
    static const struct { const char *s; size_t n; } good[] = {
        { "64KiB", 65536 }, { "1MiB", 1048576 }, { "1GiB", 1073741824 }, { "10KB", 10000 },
        { "512", 512 }, { "512B", 512 }, { "2MB", 2000000 }, { "1.5KiB", 1536 },
        { "64kib", 65536 }, { "0", 0 },
    };
    static const char *const bad[] = {
        "", "big", "-1", "-1KiB", "10 KB", "1.5B", "1K", "12xB", "1e3", "0x10",
        "999999999999999999GiB",
    };
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        size_t n = 7;
        if (mw_parse_size(good[i].s, &n) != 0 || n != good[i].n)
            fail_msg("size '%s': got %zu", good[i].s, n);
    }
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        size_t n;
        if (mw_parse_size(bad[i], &n) == 0)
            fail_msg("size '%s' accepted", bad[i]);
    }
}

static void test_duration_error(void **state)
{
    (void)state;
    expect_exact_error("listen: 127.0.0.1:8080\n\nheartbeat:\n  interval: fast\n",
                       "test.yaml:4: heartbeat.interval: invalid duration 'fast' "
                       "(use e.g. 25s, 500ms)");
    expect_error("heartbeat: { timeout: 0s }\n", 1, "heartbeat.timeout: must be greater than 0");
    unsetenv("MW_TEST_UNSET");
    expect_error("heartbeat:\n  timeout: ${MW_TEST_UNSET}\n", 2,
                 "heartbeat.timeout: invalid duration ''");
    expect_error("routes:\n  /a:\n    script: app.lua\n    hold_ttl: 2 minutes\n", 4,
                 "routes./a.hold_ttl: invalid duration '2 minutes'");
}

static void test_size_error(void **state)
{
    (void)state;
    expect_error("limits:\n  max_message: -1\n", 2,
                 "limits.max_message: invalid size '-1' (use e.g. 64KiB, 1MiB, 512B)");
    expect_error("limits:\n  send_queue: 0\n", 2, "limits.send_queue: must be greater than 0");
}

static void test_booleans(void **state)
{
    (void)state;
    const char *yes[] = { "true", "yes", "on", "True", "YES" };
    const char *no[] = { "false", "no", "off", "False", "OFF" };
    char yaml[128];
    for (size_t i = 0; i < 5; i++) {
        snprintf(yaml, sizeof yaml, "dev: { hot_reload: %s, user_param: %s }\n", yes[i], no[i]);
        struct mw_config cfg = parse_ok(yaml);
        assert_true(cfg.hot_reload);
        assert_false(cfg.user_param);
        mw_config_free(&cfg);
    }
    expect_error("dev:\n  hot_reload: maybe\n", 2,
                 "dev.hot_reload: expected true or false, got 'maybe'");
}

static void test_integers(void **state)
{
    (void)state;
    expect_error("workers: 4x\n", 1, "workers: expected a whole number, got '4x'");
    expect_error("workers: -2\n", 1, "workers: expected a whole number");
    expect_error("workers: 0\n", 1, "workers: must be between 1 and 256, got '0'");
    expect_error("workers: 257\n", 1, "workers: must be between 1 and 256, got '257'");
    expect_error("limits: { max_connections: 99999999999 }\n", 1,
                 "limits.max_connections: expected a whole number");
    expect_error("limits: { max_connections: 0 }\n", 1, "limits.max_connections: must be greater");
    struct mw_config cfg = parse_ok("workers: \"8\"\nredis: { url: redis://127.0.0.1:6379 }\n");
    assert_int_equal(cfg.workers, 8);
    mw_config_free(&cfg);
}

/* Several workers share rooms only through Redis: without it, an error at the key. */
static void test_workers_need_redis(void **state)
{
    (void)state;
    expect_error("listen: :1\nworkers: 2\n", 2,
                 "workers: 2 workers need `redis` (url or cluster)");
    expect_error("workers: 3\nredis: ~\n", 1, "workers: 3 workers need `redis`");
    struct mw_config cfg = parse_ok("redis: { cluster: [redis://127.0.0.1:7000] }\nworkers: 2\n");
    assert_int_equal(cfg.workers, 2);
    mw_config_free(&cfg);
    cfg = parse_ok("workers: 1\n");
    assert_int_equal(cfg.workers, 1);
    mw_config_free(&cfg);
}

static void test_numbers(void **state)
{
    (void)state;
    expect_error("limits:\n  rate: lots\n", 2, "limits.rate: expected a number, got 'lots'");
    expect_error("limits:\n  rate: 0\n", 2, "limits.rate: must be greater than 0");
    expect_error("limits:\n  rate: nan\n", 2, "limits.rate: expected a number");
    expect_error("limits:\n  burst: 0.5\n", 2, "limits.burst: must be at least 1");
    struct mw_config cfg = parse_ok("limits: { rate: 0.5, burst: 1 }\n");
    assert_true(cfg.rate == 0.5);
    mw_config_free(&cfg);
}

/* ---- ${VAR} substitution ---- */

static void test_env_substitution(void **state)
{
    (void)state;
    setenv("MW_TEST_HOST", "0.0.0.0", 1);
    setenv("MW_TEST_PORT", "9001", 1);
    setenv("MW_TEST_KEY", "key-1", 1);
    setenv("MW_TEST_EMPTY", "", 1);
    unsetenv("MW_TEST_UNSET");
    struct mw_config cfg = parse_ok(
        "listen: ${MW_TEST_HOST}:${MW_TEST_PORT}\n"
        "node_id: n-${MW_TEST_UNSET}x\n"
        "auth: { jwt_secret: \"${MW_TEST_UNSET}\" }\n"
        "api: { keys: [\"${MW_TEST_KEY}\", \"${MW_TEST_UNSET}\", \"${MW_TEST_EMPTY}\", "
        "\"a$b\", \"${MW_TEST_UNSET:-fallback}\", \"${MW_TEST_KEY:-unused}\"] }\n"
        "log: { level: \"${MW_TEST_UNSET:-warn}\" }\n");
    assert_string_equal(cfg.listen_host, "0.0.0.0");
    assert_int_equal(cfg.listen_port, 9001);
    assert_string_equal(cfg.node_id, "n-x");
    assert_null(cfg.jwt_secret);
    assert_int_equal(cfg.napi_keys, 4);
    assert_string_equal(cfg.api_keys[0], "key-1");
    assert_string_equal(cfg.api_keys[1], "a$b");
    assert_string_equal(cfg.api_keys[2], "fallback");
    assert_string_equal(cfg.api_keys[3], "key-1");
    assert_int_equal(cfg.log_level, MW_LOG_WARN);
    mw_config_free(&cfg);
}

/* Substitution happens before conversion, so a variable can hold a number. */
static void test_env_before_conversion(void **state)
{
    (void)state;
    setenv("MW_TEST_WORKERS", "3", 1);
    setenv("MW_TEST_BAD", "lots", 1);
    struct mw_config cfg = parse_ok("workers: ${MW_TEST_WORKERS}\nredis: { url: redis://h }\n");
    assert_int_equal(cfg.workers, 3);
    mw_config_free(&cfg);
    expect_error("\nworkers: ${MW_TEST_BAD}\n", 2, "workers: expected a whole number, got 'lots'");
}

static void test_env_errors(void **state)
{
    (void)state;
    expect_error("node_id: \"${OOPS\"\n", 1, "node_id: unterminated '${'");
    expect_error("node_id: \"${1BAD}\"\n", 1, "node_id: invalid variable reference '${1BAD}'");
    expect_error("node_id: \"${A B}\"\n", 1, "invalid variable reference");
}

/* ---- errors: keys, types, values ---- */

static void test_unknown_keys(void **state)
{
    (void)state;
    expect_exact_error("routes:\n  /chat:\n    script: app.lua\n\n\n\n    histroy: 5\n",
                       "test.yaml:7: unknown key 'histroy' in routes./chat "
                       "(did you mean 'history'?)");
    expect_exact_error("listen: :1\nfoo: 1\n", "test.yaml:2: unknown key 'foo'");
    expect_error("heartbeat:\n  interval: 1s\n  timeot: 1s\n", 3,
                 "unknown key 'timeot' in heartbeat (did you mean 'timeout'?)");
    expect_error("routes:\n  /a:\n    script: app.lua\n    presence: { evnts: true }\n", 4,
                 "unknown key 'evnts' in routes./a.presence");
}

static void test_duplicate_keys(void **state)
{
    (void)state;
    expect_error("workers: 1\nlisten: :1\nworkers: 2\n", 3,
                 "duplicate key 'workers' (first at line 1)");
    expect_error("routes:\n  /a: { script: app.lua }\n  /b: { script: app.lua }\n"
                 "  /a: { script: app.lua }\n", 4,
                 "duplicate key '/a' in routes (first at line 2)");
}

static void test_wrong_types(void **state)
{
    (void)state;
    expect_error("listen:\n  host: x\n", 2, "listen: expected a single value, found a map");
    expect_error("workers: [1, 2]\n", 1, "workers: expected a single value, found a list");
    expect_error("heartbeat: 25s\n", 1, "heartbeat: expected a map, found '25s'");
    expect_error("limits: [1]\n", 1, "limits: expected a map, found a list");
    expect_error("api: { keys: k1 }\n", 1, "api.keys: expected a list");
    expect_error("api:\n  keys:\n    - ok\n    - { a: b }\n", 4,
                 "api.keys: expected a single value, found a map");
    expect_error("- a\n- b\n", 1, "the top level must be a map");
    expect_error("routes: [/a]\n", 1, "routes: expected a map");
    expect_error("routes:\n  /a: app.lua\n", 2, "routes./a: expected a map, found 'app.lua'");
    expect_error("? [a]\n: b\n", 1, "keys must be single values");
}

static void test_bad_enums(void **state)
{
    (void)state;
    expect_error("routes:\n  /a:\n    script: app.lua\n    protocol: foo\n", 4,
                 "routes./a.protocol: unknown value 'foo' (one of: json, raw)");
    expect_error("routes:\n  /a:\n    script: app.lua\n    slow_consumer: wait\n", 4,
                 "routes./a.slow_consumer: unknown value 'wait' (one of: close, drop)");
    expect_error("log:\n  format: xml\n", 2, "log.format: unknown value 'xml'");
    expect_error("log:\n  level: loud\n", 2,
                 "log.level: unknown value 'loud' (one of: debug, info, warn, error)");
}

static void test_listen(void **state)
{
    (void)state;
    static const struct { const char *yaml, *host; int port; } good[] = {
        { "listen: 0.0.0.0:80", "0.0.0.0", 80 },
        { "listen: localhost:0", "localhost", 0 },
        { "listen: :8080", "0.0.0.0", 8080 },
        { "listen: \"[::1]:8080\"", "::1", 8080 },
        { "listen: \"[::]:65535\"", "::", 65535 },
    };
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        struct mw_config cfg = parse_ok(good[i].yaml);
        assert_string_equal(cfg.listen_host, good[i].host);
        assert_int_equal(cfg.listen_port, good[i].port);
        mw_config_free(&cfg);
    }
    expect_error("\nlisten: 127.0.0.1:65536\n", 2, "listen: invalid port in '127.0.0.1:65536'");
    expect_error("listen: 127.0.0.1:-1\n", 1, "listen: invalid port");
    expect_error("listen: 127.0.0.1:80x\n", 1, "listen: invalid port");
    expect_error("listen: \"127.0.0.1:\"\n", 1, "listen: invalid port");
    expect_error("listen: 8080\n", 1, "listen: expected HOST:PORT, [IPV6]:PORT or :PORT");
    expect_error("listen: \"::1:8080\"\n", 1, "listen: expected HOST:PORT");
    expect_error("listen: \"[::1]8080\"\n", 1, "listen: expected HOST:PORT");
    expect_error("listen: \"[]:80\"\n", 1, "listen: expected HOST:PORT");
}

static void test_node_id(void **state)
{
    (void)state;
    struct mw_config cfg = parse_ok("node_id: A_z-0.9\n");
    assert_string_equal(cfg.node_id, "A_z-0.9");
    mw_config_free(&cfg);
    expect_error("node_id: \"a b\"\n", 1, "node_id: 'a b' must be 1 to 64 characters");
    expect_error("node_id: a/b\n", 1, "node_id:");
    char yaml[128];
    snprintf(yaml, sizeof yaml, "node_id: %065d\n", 0);
    expect_error(yaml, 1, "must be 1 to 64 characters");
}

/* ---- routes ---- */

static void test_route_path_errors(void **state)
{
    (void)state;
    expect_error("routes:\n  /a: { script: app.lua }\n  chat:\n    script: app.lua\n", 3,
                 "routes: route path 'chat' must start with '/'");
    expect_error("routes:\n  /a?x=1: { script: app.lua }\n", 2,
                 "routes: route path '/a?x=1' must not contain");
    expect_error("routes:\n  \"/a b\": { script: app.lua }\n", 2, "must not contain spaces");
}

static void test_missing_script(void **state)
{
    (void)state;
    expect_error("routes:\n  /chat:\n    protocol: raw\n", 2,
                 "routes./chat: missing required key 'script'");
    expect_error("routes:\n  /chat:\n", 2, "routes./chat: missing required key 'script'");
    expect_error("routes:\n  /chat:\n    script:\n", 2, "routes./chat: missing required key");
    expect_error("routes:\n  /chat:\n    script: \"\"\n", 3, "routes./chat.script: empty script path");
}

static void test_script_not_found(void **state)
{
    (void)state;
    char want[PATH_MAX * 3];
    snprintf(want, sizeof want, "routes./chat.script: script not found: %s/nope.lua", tmp);
    expect_error("routes:\n  /chat:\n    protocol: raw\n    script: nope.lua\n", 4, want);
    expect_error("routes:\n  /chat:\n    script: web\n", 3, "script not found");
    expect_error("routes:\n  /chat:\n    script: app:nope\n", 3, "script not found: ");
}

static void test_script_paths(void **state)
{
    (void)state;
    char yaml[PATH_MAX * 3];
    snprintf(yaml, sizeof yaml,
             "routes:\n"
             "  /rel: { script: sub/other.lua }\n"
             "  /dots: { script: sub/../app.lua }\n"
             "  /abs: { script: \"%s/app.lua\" }\n", tmp);
    struct mw_config cfg = parse_ok(yaml);
    assert_string_equal(mw_config_route(&cfg, "/rel")->script, in_tmp("sub/other.lua"));
    assert_string_equal(mw_config_route(&cfg, "/dots")->script, in_tmp("app.lua"));
    assert_string_equal(mw_config_route(&cfg, "/abs")->script, in_tmp("app.lua"));
    assert_null(mw_config_route(&cfg, "/abs")->app);
    mw_config_free(&cfg);
}

static void test_app_scripts(void **state)
{
    (void)state;
    struct mw_config cfg = parse_ok("routes:\n  /x: { script: \"app:x\" }\n");
    assert_string_equal(cfg.routes[0].app, "x");
    assert_string_equal(cfg.routes[0].script, in_tmp("home/apps/x/main.lua"));
    mw_config_free(&cfg);
    expect_error("routes:\n  /x:\n    script: \"app:../x\"\n", 3,
                 "routes./x.script: invalid app name '../x'");
    expect_error("routes:\n  /x:\n    script: \"app:\"\n", 3, "invalid app name ''");

    char err[ERRLEN];
    const char *yaml = "routes:\n  /x:\n    script: app:x\n";
    assert_int_equal(mw_config_parse(yaml, strlen(yaml), "t.yaml", tmp, NULL, &cfg, err,
                                     sizeof err), -1);
    assert_string_equal(err, "t.yaml:3: routes./x.script: 'app:x' needs the moonwire home "
                             "(set MOONWIRE_HOME)");
}

/* The source tree (MOONWIRE_HOME under CTest) carries the bundled apps. */
static void test_app_in_real_home(void **state)
{
    (void)state;
    const char *real_home = getenv("MOONWIRE_HOME");
    char script[PATH_MAX * 2], err[ERRLEN];
    assert_non_null(real_home); /* CTest sets it to the source tree */
    snprintf(script, sizeof script, "%s/apps/chat/main.lua", real_home);
    assert_int_equal(access(script, R_OK), 0);
    struct mw_config cfg;
    const char *yaml = "routes:\n  /chat: { script: \"app:chat\" }\n";
    int rc = mw_config_parse(yaml, strlen(yaml), "t.yaml", tmp, real_home, &cfg, err, sizeof err);
    if (rc != 0)
        fail_msg("%s", err);
    char *want = realpath(script, NULL);
    assert_string_equal(cfg.routes[0].script, want);
    assert_string_equal(cfg.routes[0].app, "chat");
    free(want);
    mw_config_free(&cfg);
}

static void test_history(void **state)
{
    (void)state;
    struct mw_config cfg = parse_ok(
        "routes:\n"
        "  /off: { script: app.lua, history: off }\n"
        "  /false: { script: app.lua, history: false }\n"
        "  /on: { script: app.lua, history: on }\n"
        "  /ttl: { script: app.lua, history: { ttl: 10m } }\n"
        "  /null: { script: app.lua, history: }\n");
    assert_int_equal(mw_config_route(&cfg, "/off")->history_size, 0);
    assert_int_equal(mw_config_route(&cfg, "/false")->history_size, 0);
    assert_int_equal(mw_config_route(&cfg, "/on")->history_size, 100);
    assert_int_equal(mw_config_route(&cfg, "/ttl")->history_size, 100);
    assert_int_equal(mw_config_route(&cfg, "/ttl")->history_ttl_ms, 600000);
    assert_int_equal(mw_config_route(&cfg, "/null")->history_size, 100);
    mw_config_free(&cfg);
}

static void test_history_errors(void **state)
{
    (void)state;
    expect_error("routes:\n  /chat:\n    script: app.lua\n    history:\n      size: 0\n", 5,
                 "routes./chat.history.size: history size must be at least 1; "
                 "use 'history: off' to turn history off");
    expect_error("routes:\n  /chat:\n    script: app.lua\n    history: { size: -1 }\n", 4,
                 "routes./chat.history.size: expected a whole number, got '-1'");
    expect_error("routes:\n  /chat:\n    script: app.lua\n    history: { ttl: soon }\n", 4,
                 "routes./chat.history.ttl: invalid duration 'soon'");
    expect_error("routes:\n  /chat:\n    script: app.lua\n    history: lots\n", 4,
                 "routes./chat.history: expected a map like { size: 100 } or off");
}

static void test_presence(void **state)
{
    (void)state;
    struct mw_config cfg = parse_ok(
        "routes:\n  /a:\n    script: app.lua\n    presence:\n      threshold: 1\n");
    assert_true(cfg.routes[0].presence_events);
    assert_int_equal(cfg.routes[0].presence_threshold, 1);
    mw_config_free(&cfg);
    expect_error("routes:\n  /a:\n    script: app.lua\n    presence:\n      threshold: 0\n", 5,
                 "routes./a.presence.threshold: must be greater than 0");
    expect_error("routes:\n  /a:\n    script: app.lua\n    presence: { events: 2 }\n", 4,
                 "routes./a.presence.events: expected true or false, got '2'");
}

/* ---- options: free-form map as JSON ---- */

static void test_options_json(void **state)
{
    (void)state;
    setenv("MW_TEST_NUM", "42", 1);
    struct mw_config cfg = parse_ok(
        "routes:\n"
        "  /a:\n"
        "    script: app.lua\n"
        "    options:\n"
        "      int: 7\n"
        "      neg: -3\n"
        "      float: 2.5e3\n"
        "      yes_is_text: yes\n"
        "      t: true\n"
        "      f: False\n"
        "      n: ~\n"
        "      empty:\n"
        "      quoted_num: \"7\"\n"
        "      quoted_true: 'true'\n"
        "      leading_zero: 007\n"
        "      hex: 0x1F\n"
        "      env: ${MW_TEST_NUM}\n"
        "      esc: \"q\\\" b\\\\ nl\\n tab\\t bell\\a \xc3\xa9\"\n"
        "      list: [1, two, [3], {four: 4}]\n"
        "      map: { nested: { deep: null } }\n"
        "      empty_list: []\n"
        "      empty_map: {}\n");
    assert_string_equal(cfg.routes[0].options_json,
        "{\"int\":7,\"neg\":-3,\"float\":2.5e3,\"yes_is_text\":\"yes\",\"t\":true,"
        "\"f\":false,\"n\":null,\"empty\":null,\"quoted_num\":\"7\",\"quoted_true\":\"true\","
        "\"leading_zero\":\"007\",\"hex\":\"0x1F\",\"env\":42,"
        "\"esc\":\"q\\\" b\\\\ nl\\n tab\\t bell\\u0007 \xc3\xa9\","
        "\"list\":[1,\"two\",[3],{\"four\":4}],\"map\":{\"nested\":{\"deep\":null}},"
        "\"empty_list\":[],\"empty_map\":{}}");
    mw_config_free(&cfg);
}

/* Where each part of the options is in the file, for scripts' errors: a map entry at
 * its key's line, a list item at its own. */
static void test_options_lines(void **state)
{
    (void)state;
    struct mw_config cfg = parse_ok(
        "routes:\n"
        "  /a:\n"
        "    script: app.lua\n"
        "    options:\n"
        "      venues:\n"
        "        bistro:\n"
        "          tables: { t1: 2,\n"
        "                    t2: 4 }\n"
        "          slots:\n"
        "            - \"18:00\"\n"
        "            - [a, b]\n"
        "      max: 3\n");
    assert_string_equal(cfg.routes[0].options_lines_json,
        "[5,{\"venues\":[5,{\"bistro\":[6,{\"tables\":[7,{\"t1\":[7],\"t2\":[8]}],"
        "\"slots\":[9,[[10],[11,[[11],[11]]]]]}]}],\"max\":[12]}]");
    assert_string_equal(cfg.routes[0].source, "test.yaml");
    mw_config_free(&cfg);
    cfg = parse_ok("routes:\n  /a: { script: app.lua }\n");
    assert_null(cfg.routes[0].options_lines_json);
    mw_config_free(&cfg);
}

static void test_options_errors(void **state)
{
    (void)state;
    expect_error("routes:\n  /a:\n    script: app.lua\n    options: [1]\n", 4,
                 "routes./a.options: expected a map, found a list");
    expect_error("routes:\n  /a:\n    script: app.lua\n    options: { a: 1, a: 2 }\n", 4,
                 "duplicate key 'a' in routes./a.options");
    expect_error("routes:\n  /a:\n    script: app.lua\n    options: &x { a: [ *x ] }\n", 4,
                 "nested too deeply");
}

/* A "billion laughs" document must stop at the size bound, not eat the memory. */
static void test_options_alias_bomb(void **state)
{
    (void)state;
    expect_error("a: &a [x, x, x, x, x, x, x, x, x, x]\n"
                 "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                 "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
                 "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
                 "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
                 "f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n", 1, "unknown key 'a'");
    expect_error("routes:\n  /a:\n    script: app.lua\n    options:\n"
                 "      a: &a [x, x, x, x, x, x, x, x, x, x]\n"
                 "      b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                 "      c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
                 "      d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
                 "      e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
                 "      f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
                 "      g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]\n", 5,
                 "routes./a.options: options too large");
}

/* ---- redis, auth, static, log ---- */

static void test_redis(void **state)
{
    (void)state;
    struct mw_config cfg = parse_ok("redis: { url: \"rediss://:pw@h:6380/0\" }\n");
    assert_string_equal(cfg.redis_url, "rediss://:pw@h:6380/0");
    assert_int_equal(cfg.nredis_cluster, 0);
    mw_config_free(&cfg);
    expect_error("redis:\n  url: http://x\n", 2, "redis.url: invalid Redis URL 'http://x'");
    expect_error("redis:\n  url: \"redis://\"\n", 2, "redis.url: invalid Redis URL");
    expect_error("redis:\n  cluster:\n    - redis://a:1\n    - b:2\n", 4,
                 "redis.cluster: invalid Redis URL 'b:2'");
    expect_error("redis:\n  cluster: []\n", 2, "redis.cluster: needs at least one seed URL");
    expect_error("\nredis: { url: redis://a, cluster: [redis://b] }\n", 2,
                 "redis: set 'url' or 'cluster', not both");
    expect_error("redis: {}\n", 1, "redis: set 'url' (one node) or 'cluster' (seed URLs)");
    expect_error("redis: { host: x }\n", 1, "unknown key 'host' in redis");

    /* the watchdog's deadline and the bound on commands waiting */
    cfg = parse_ok("redis: { url: redis://h }\n");
    assert_int_equal(cfg.redis_timeout_ms, 0); /* from the heartbeat */
    assert_int_equal(cfg.redis_max_in_flight, 10000);
    mw_config_free(&cfg);
    cfg = parse_ok("redis: { url: redis://h, timeout: 2s, max_in_flight: 50 }\n");
    assert_int_equal(cfg.redis_timeout_ms, 2000);
    assert_int_equal(cfg.redis_max_in_flight, 50);
    mw_config_free(&cfg);
    expect_error("redis:\n  url: redis://h\n  timeout: 10ms\n", 3, "redis.timeout");
    expect_error("redis:\n  url: redis://h\n  timeout: soon\n", 3,
                 "redis.timeout: invalid duration 'soon'");
    expect_error("redis:\n  url: redis://h\n  max_in_flight: 0\n", 3, "redis.max_in_flight");
    expect_error("redis:\n  url: redis://h\n  max_in_flight: -1\n", 3,
                 "redis.max_in_flight: expected a whole number");
}

static void test_auth(void **state)
{
    (void)state;
    expect_error("auth:\n  required: true\n", 2,
                 "auth: required is true but neither jwt_secret nor jwt_public_key is set");
    unsetenv("MW_TEST_UNSET");
    expect_error("auth: { jwt_secret: \"${MW_TEST_UNSET}\", required: yes }\n", 1,
                 "auth: required is true");
    expect_error("auth: { jwt_public_key: \"${MW_TEST_UNSET}\", required: yes }\n", 1,
                 "auth: required is true");

    /* Keys, algorithms, checks: fail-closed. */
    struct mw_config cfg = parse_ok("auth:\n  jwt_secret: s\n  algorithms: [HS256, HS512]\n"
                                    "  issuer: me\n  audience: chat\n  leeway: 2s\n  timeout: 3s\n");
    assert_int_equal(cfg.njwt_algorithms, 2);
    assert_string_equal(cfg.jwt_algorithms[1], "HS512");
    assert_string_equal(cfg.jwt_issuer, "me");
    assert_string_equal(cfg.jwt_audience, "chat");
    assert_int_equal(cfg.auth_leeway_ms, 2000);
    assert_int_equal(cfg.auth_timeout_ms, 3000);
    mw_config_free(&cfg);
    cfg = parse_ok("auth: { jwt_public_key: \"-----BEGIN PUBLIC KEY-----\\nAAAA\\n\" }\n");
    assert_non_null(strstr(cfg.jwt_public_key, "-----BEGIN PUBLIC KEY-----"));
    assert_int_equal(cfg.auth_leeway_ms, 5000);
    mw_config_free(&cfg);
    expect_error("auth: { jwt_public_key: nope.pem }\n", 1, "auth.jwt_public_key: file not found:");
    expect_error("auth: { jwt_secret: s, algorithms: [none] }\n", 1,
                 "auth.algorithms: 'none' would accept unsigned tokens");
    expect_error("auth: { jwt_secret: s, algorithms: [HS257] }\n", 1,
                 "auth.algorithms: unknown algorithm 'HS257'");
    expect_error("auth: { jwt_secret: s, algorithms: [] }\n", 1,
                 "auth.algorithms: an empty list would refuse every token");
    expect_error("auth: { jwt_secret: s, algorithms: [RS256] }\n", 1,
                 "auth.algorithms: RS256 needs jwt_public_key");
    expect_error("auth: { issuer: me }\n", 1, "auth: issuer and audience need jwt_secret or jwt_public_key");
    expect_error("auth: { jwt_secret: s, leeway: 10m }\n", 1, "auth.leeway: must be between 0 and 300000");
}

/* The security keys: room patterns per route, origins and the new limits. */
static void test_security_keys(void **state)
{
    (void)state;
    struct mw_config cfg = parse_ok("routes:\n  /v: { script: app.lua, rooms: [\"venue:*\", lobby] }\n"
                                    "origins: [\"https://a.example.com\", \"https://*.example.org\"]\n"
                                    "limits: { max_rooms: 8, max_connections_per_ip: 0,\n"
                                    "          max_connections_per_user: 3, history_memory: 1MiB,\n"
                                    "          sessions_memory: 2MiB, handler_timeout: 250ms }\n");
    assert_int_equal(cfg.routes[0].nrooms, 2);
    assert_string_equal(cfg.routes[0].rooms[0], "venue:*");
    assert_int_equal(cfg.norigins, 2);
    assert_int_equal(cfg.max_rooms, 8);
    assert_int_equal(cfg.max_conns_per_ip, 0);
    assert_int_equal(cfg.max_conns_per_user, 3);
    assert_int_equal(cfg.history_memory, 1 << 20);
    assert_int_equal(cfg.sessions_memory, 2 << 20);
    assert_int_equal(cfg.handler_timeout_ms, 250);
    mw_config_free(&cfg);
    cfg = parse_ok("listen: :1\n");
    assert_int_equal(cfg.max_rooms, 128);
    assert_int_equal(cfg.max_conns_per_ip, 10000);
    assert_int_equal(cfg.max_conns_per_user, 100);
    assert_int_equal(cfg.handler_timeout_ms, 1000);
    assert_int_equal(cfg.norigins, 0);
    mw_config_free(&cfg);
    expect_error("routes:\n  /v: { script: app.lua, rooms: [] }\n", 2,
                 "routes./v.rooms: an empty list would refuse every join");
    expect_error("routes:\n  /v: { script: app.lua, rooms: [\"a*b\"] }\n", 2,
                 "routes./v.rooms: 'a*b': '*' only at the end");
    expect_error("origins: []\n", 1, "origins: an empty list would refuse every browser");
    expect_error("origins: [example.com]\n", 1, "origins: 'example.com' is not an origin");
    expect_error("origins: [\"https://a.com/path\"]\n", 1, "is not an origin");
    expect_error("origins: [\"https://a.*.com\"]\n", 1, "a wildcard only as scheme://*.domain");
    expect_error("limits: { max_rooms: 0 }\n", 1, "limits.max_rooms: must be greater than 0");
}

static void test_static_dir(void **state)
{
    (void)state;
    struct mw_config cfg = parse_ok("static: ./sub/../web/\n");
    assert_string_equal(cfg.static_dir, in_tmp("web"));
    mw_config_free(&cfg);
    char want[PATH_MAX * 3];
    snprintf(want, sizeof want, "static: directory not found: %s/missing", tmp);
    expect_error("listen: :1\nstatic: missing\n", 2, want);
    expect_error("static: app.lua\n", 1, "static: directory not found");
}

static void test_log(void **state)
{
    (void)state;
    struct mw_config cfg = parse_ok("log: { level: error }\n");
    assert_int_equal(cfg.log_level, MW_LOG_ERROR);
    assert_int_equal(cfg.log_format, MW_LOG_LOGFMT);
    mw_config_free(&cfg);
}

/* ---- YAML-level errors ---- */

static void test_yaml_syntax_error(void **state)
{
    (void)state;
    expect_error("listen: :1\nroutes:\n  /a: [1\n", 4, "invalid YAML:");
    expect_error("listen: :1\n  bad: indent\n", 2, "invalid YAML: mapping values are not allowed");
    expect_error("a: *nope\n", 1, "invalid YAML:");
    expect_error("listen: :1\n\"unterminated\n", 3, "invalid YAML:");
    expect_error("listen: :1\nbad: \"\xff\"\n", 2, "invalid YAML:");
}

static void test_multiple_documents(void **state)
{
    (void)state;
    expect_error("listen: :1\n---\nworkers: 2\n", 3, "only one YAML document is allowed");
}

static void test_error_is_one_line(void **state)
{
    (void)state;
    expect_error("node_id: \"a\\nb\"\n", 1, "node_id: 'a b' must be");
    expect_error("listen: |\n  a\n  b\n", 1, "listen: expected HOST:PORT");
}

/* ---- files, the embedded default, free ---- */

static void test_load_file(void **state)
{
    (void)state;
    make_file("conf/moonwire.yaml", "routes:\n  /m:\n    script: main.lua\nstatic: ../web\n");
    struct mw_config cfg;
    char err[ERRLEN], path[PATH_MAX * 2];
    snprintf(path, sizeof path, "%s/conf/./moonwire.yaml", tmp);
    if (mw_config_load_file(path, home, &cfg, err, sizeof err) != 0)
        fail_msg("%s", err);
    assert_string_equal(cfg.source, path);
    assert_string_equal(cfg.base_dir, in_tmp("conf"));
    assert_string_equal(cfg.routes[0].script, in_tmp("conf/main.lua"));
    assert_string_equal(cfg.static_dir, in_tmp("web"));
    mw_config_free(&cfg);

    make_file("conf/bad.yaml", "workers: 1\nnope: 2\n");
    snprintf(path, sizeof path, "%s/conf/bad.yaml", tmp);
    assert_int_equal(mw_config_load_file(path, home, &cfg, err, sizeof err), -1);
    char want[PATH_MAX * 3];
    snprintf(want, sizeof want, "%s:2: unknown key 'nope'", path);
    assert_string_equal(err, want);
    assert_zeroed(&cfg);
}

static void test_load_file_unreadable(void **state)
{
    (void)state;
    struct mw_config cfg;
    char err[ERRLEN];
    assert_int_equal(mw_config_load_file("/nonexistent/moonwire.yaml", home, &cfg, err,
                                         sizeof err), -1);
    assert_string_equal(err, "cannot read /nonexistent/moonwire.yaml: No such file or directory");
    assert_zeroed(&cfg);
    assert_int_equal(mw_config_load_file(tmp, home, &cfg, err, sizeof err), -1);
    assert_non_null(strstr(err, "Is a directory"));
}

static void test_embedded_default(void **state)
{
    (void)state;
    struct mw_config cfg;
    char err[ERRLEN];
    if (mw_config_load_embedded(home, &cfg, err, sizeof err) != 0)
        fail_msg("%s", err);
    assert_string_equal(cfg.source, "<embedded>");
    assert_string_equal(cfg.base_dir, in_tmp("home/examples"));
    assert_string_equal(cfg.listen_host, "127.0.0.1");
    assert_int_equal(cfg.listen_port, 8080);
    assert_string_equal(cfg.static_dir, in_tmp("home/examples/web"));
    const struct mw_route_config *chat = mw_config_route(&cfg, "/chat");
    const struct mw_route_config *echo = mw_config_route(&cfg, "/echo");
    const struct mw_route_config *notify = mw_config_route(&cfg, "/notify");
    assert_non_null(chat);
    assert_non_null(echo);
    assert_non_null(notify);
    assert_string_equal(notify->app, "notify");
    assert_false(notify->presence_events);
    const struct mw_route_config *resv = mw_config_route(&cfg, "/reservations");
    assert_non_null(resv);
    assert_string_equal(resv->script, in_tmp("home/apps/reservations/main.lua"));
    assert_string_equal(chat->app, "chat");
    assert_string_equal(chat->script, in_tmp("home/apps/chat/main.lua"));
    assert_int_equal(chat->protocol, MW_PROTO_JSON);
    assert_string_equal(echo->app, "echo");
    assert_int_equal(echo->protocol, MW_PROTO_RAW);
    assert_true(cfg.hot_reload);
    assert_true(cfg.user_param);
    assert_null(cfg.redis_url);
    mw_config_free(&cfg);

    assert_int_equal(mw_config_load_embedded(NULL, &cfg, err, sizeof err), -1);
    assert_non_null(strstr(err, "MOONWIRE_HOME"));
}

/* The real embedded default against the source tree and its bundled apps. */
static void test_embedded_default_in_real_home(void **state)
{
    (void)state;
    const char *real_home = getenv("MOONWIRE_HOME");
    const char *needed[] = { "apps/chat/main.lua", "apps/echo/main.lua", "apps/notify/main.lua",
                             "apps/reservations/main.lua", "examples/web" };
    char path[PATH_MAX * 2], err[ERRLEN];
    assert_non_null(real_home); /* CTest sets it to the source tree */
    for (size_t i = 0; i < sizeof needed / sizeof *needed; i++) {
        snprintf(path, sizeof path, "%s/%s", real_home, needed[i]);
        if (access(path, R_OK) != 0)
            fail_msg("bundled file missing: %s", path);
    }
    struct mw_config cfg;
    if (mw_config_load_embedded(real_home, &cfg, err, sizeof err) != 0)
        fail_msg("%s", err);
    assert_non_null(mw_config_route(&cfg, "/chat"));
    assert_non_null(mw_config_route(&cfg, "/echo"));
    const struct mw_route_config *r = mw_config_route(&cfg, "/reservations");
    assert_non_null(r);
    assert_string_equal(r->app, "reservations");
    assert_false(r->presence_events); /* a booking board: who is looking is private */
    assert_int_equal(r->hold_ttl_ms, 2 * 60 * 1000);
    mw_config_free(&cfg);
}

/* docs/config.md shows the embedded default as it is, comments included. */
static void test_embedded_default_is_documented(void **state)
{
    (void)state;
    char path[PATH_MAX];
    const char *real_home = getenv("MOONWIRE_HOME");
    assert_non_null(real_home);
    snprintf(path, sizeof path, "%s/docs/config.md", real_home);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    static char doc[1 << 16];
    size_t n = fread(doc, 1, sizeof doc - 1, f);
    fclose(f);
    doc[n] = '\0';
    const char *section = strstr(doc, "\n## The embedded default\n");
    assert_non_null(section);
    const char *start = strstr(section, "```yaml\n");
    assert_non_null(start);
    start += strlen("```yaml\n");
    const char *end = strstr(start, "```\n");
    assert_non_null(end);
    if ((size_t)(end - start) != strlen(mw_config_embedded_yaml) ||
        memcmp(start, mw_config_embedded_yaml, (size_t)(end - start)) != 0)
        fail_msg("docs/config.md shows:\n%.*s\nthe binary has:\n%s", (int)(end - start), start,
                 mw_config_embedded_yaml);
}

static void test_free_is_safe(void **state)
{
    (void)state;
    struct mw_config cfg;
    memset(&cfg, 0, sizeof cfg);
    mw_config_free(&cfg);
    cfg = parse_ok(full_yaml);
    mw_config_free(&cfg);
    mw_config_free(&cfg);
    assert_zeroed(&cfg);
}

/* A failure deep in the second route frees everything built before it. */
static void test_failure_frees_partial(void **state)
{
    (void)state;
    expect_error("node_id: n\nstatic: web\napi: { keys: [a, b] }\nredis: { url: redis://x }\n"
                 "routes:\n  /a: { script: app.lua, options: { x: 1 } }\n"
                 "  /b: { script: app.lua, protocol: bad }\n", 7, "routes./b.protocol");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_route_defaults),
        cmocka_unit_test(test_inbox),
        cmocka_unit_test(test_notify_route_presence),
        cmocka_unit_test(test_null_sections_keep_defaults),
        cmocka_unit_test(test_full_config),
        cmocka_unit_test(test_spec_sample),
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_duration_error),
        cmocka_unit_test(test_size_error),
        cmocka_unit_test(test_booleans),
        cmocka_unit_test(test_integers),
        cmocka_unit_test(test_workers_need_redis),
        cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_env_substitution),
        cmocka_unit_test(test_env_before_conversion),
        cmocka_unit_test(test_env_errors),
        cmocka_unit_test(test_unknown_keys),
        cmocka_unit_test(test_duplicate_keys),
        cmocka_unit_test(test_wrong_types),
        cmocka_unit_test(test_bad_enums),
        cmocka_unit_test(test_listen),
        cmocka_unit_test(test_node_id),
        cmocka_unit_test(test_route_path_errors),
        cmocka_unit_test(test_missing_script),
        cmocka_unit_test(test_script_not_found),
        cmocka_unit_test(test_script_paths),
        cmocka_unit_test(test_app_scripts),
        cmocka_unit_test(test_app_in_real_home),
        cmocka_unit_test(test_history),
        cmocka_unit_test(test_history_errors),
        cmocka_unit_test(test_presence),
        cmocka_unit_test(test_options_json),
        cmocka_unit_test(test_options_lines),
        cmocka_unit_test(test_options_errors),
        cmocka_unit_test(test_options_alias_bomb),
        cmocka_unit_test(test_redis),
        cmocka_unit_test(test_auth),
        cmocka_unit_test(test_security_keys),
        cmocka_unit_test(test_static_dir),
        cmocka_unit_test(test_log),
        cmocka_unit_test(test_yaml_syntax_error),
        cmocka_unit_test(test_multiple_documents),
        cmocka_unit_test(test_error_is_one_line),
        cmocka_unit_test(test_load_file),
        cmocka_unit_test(test_load_file_unreadable),
        cmocka_unit_test(test_embedded_default),
        cmocka_unit_test(test_embedded_default_in_real_home),
        cmocka_unit_test(test_embedded_default_is_documented),
        cmocka_unit_test(test_free_is_safe),
        cmocka_unit_test(test_failure_frees_partial),
    };
    return cmocka_run_group_tests(tests, setup_tree, teardown_tree);
}

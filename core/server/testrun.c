/* testrun.c - `moonwire test`: runs Lua test files (docs/testing.md) against the
 * server in this process. The config's routes are loaded as for `serve`, but nothing
 * listens: tests drive simulated clients (lua_testing.c) on the same loop. Prints
 * TAP-like lines and, last, "N passed, N failed". */
#include "server/testrun.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <uv.h>

#include "base/config.h"
#include "server/home.h"
#include "base/log.h"
#include "lua/lua_api.h"
#include "lua/script.h"
#include "server/server.h"
#include "base/util.h"

#define DEFAULT_TIMEOUT_S 60.0
#define TEST_SUFFIX "_test.lua"

struct strv {
    char **v;
    size_t n, cap;
};

/* The route a test file's state belongs to: its name in logs, its handler stats. Kept
 * to the end of the run, since a state may outlive its file (a test left sleeping). */
struct test_route {
    struct mw_route route;
    struct mw_route_config cfg;
};

struct run {
    struct mw_test_counts counts;
    uint64_t timeout_ms;
    uv_timer_t deadline;
    bool timed_out;
    struct test_route **routes;
    size_t nroutes;
};

static void usage(FILE *f)
{
    fprintf(f, "usage: moonwire test [-c FILE] [-t SECONDS] PATH...\n"
               "  PATH         a test file, or a directory: its *_test.lua files, sorted\n"
               "  -c FILE      the config whose routes the tests connect to (default: the\n"
               "               embedded one; `moonwire help` lists its routes)\n"
               "  -t SECONDS   time limit per file (default 60)\n");
}

static void strv_push(struct strv *s, char *str)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 8;
        s->v = mw_realloc(s->v, s->cap * sizeof *s->v);
    }
    s->v[s->n++] = str;
}

static void strv_free(struct strv *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Adds path, or the *_test.lua files of directory path in name order, to files.
 * Returns 0, or -1 with the reason in err. */
static int collect(const char *path, struct strv *files, char *err, size_t errlen)
{
    struct stat st;
    if (stat(path, &st) < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        strv_push(files, mw_strdup(path));
        return 0;
    }
    DIR *d = opendir(path);
    if (!d) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    struct strv found = { 0 };
    size_t plen = strlen(path), slen = strlen(TEST_SUFFIX);
    const char *sep = plen && path[plen - 1] == '/' ? "" : "/";
    for (struct dirent *e; (e = readdir(d));) {
        size_t n = strlen(e->d_name);
        if (e->d_name[0] == '.' || n <= slen || strcmp(e->d_name + n - slen, TEST_SUFFIX) != 0)
            continue;
        char *full = mw_malloc(plen + n + 2);
        snprintf(full, plen + n + 2, "%s%s%s", path, sep, e->d_name);
        if (stat(full, &st) == 0 && S_ISREG(st.st_mode))
            strv_push(&found, full);
        else
            free(full);
    }
    closedir(d);
    if (found.n == 0) {
        free(found.v);
        snprintf(err, errlen, "%s: no *%s files", path, TEST_SUFFIX);
        return -1;
    }
    qsort(found.v, found.n, sizeof *found.v, cmp_str);
    for (size_t i = 0; i < found.n; i++)
        strv_push(files, found.v[i]);
    free(found.v);
    return 0;
}

/* Prints "#   " before every line of text. */
static void print_diag(const char *text)
{
    while (*text) {
        const char *nl = strchr(text, '\n');
        int n = nl ? (int)(nl - text) : (int)strlen(text);
        printf("#   %.*s\n", n, text);
        text += n + (nl ? 1 : 0);
    }
}

/* A failure outside any test (the file does not load, a path is wrong). */
static void fail_outside(struct run *r, const char *what, const char *why)
{
    r->counts.failed++;
    printf("not ok %" PRIu32 " - %s\n", r->counts.passed + r->counts.failed, what);
    print_diag(why);
    fflush(stdout);
}

static void on_deadline(uv_timer_t *t)
{
    struct run *r = t->data;
    r->timed_out = true;
}

static struct test_route *new_route(struct run *r, const char *file)
{
    struct test_route *tr = mw_calloc(1, sizeof *tr);
    tr->cfg.path = mw_strdup(file);
    tr->cfg.script = mw_strdup(file);
    tr->cfg.protocol = MW_PROTO_JSON;
    tr->cfg.history_size = 100;
    tr->cfg.presence_events = true;
    tr->cfg.presence_threshold = 100;
    tr->cfg.hold_ttl_ms = 120000;
    tr->route.cfg = &tr->cfg;
    r->routes = mw_realloc(r->routes, (r->nroutes + 1) * sizeof *r->routes);
    r->routes[r->nroutes++] = tr;
    return tr;
}

/* Loads one test file into its own state and runs its tests on the loop until they
 * finish or the time limit. */
static void run_file(struct run *r, const char *file)
{
    char err[2048];
    bool done = false;
    struct test_route *tr = new_route(r, file);

    printf("# %s\n", file);
    fflush(stdout);
    struct mw_app *a = mw_app_new_test(&tr->route, mw_home(), file, err, sizeof err);
    if (!a) {
        fail_outside(r, file, err);
        return;
    }
    if (mw_lua_testing_run(a, &r->counts, &done, err, sizeof err) < 0) {
        fail_outside(r, file, err);
    } else if (!done) {
        r->timed_out = false;
        uv_timer_start(&r->deadline, on_deadline, r->timeout_ms, 0);
        while (!done && !r->timed_out) /* the deadline keeps the loop alive */
            uv_run(uv_default_loop(), UV_RUN_ONCE);
        uv_timer_stop(&r->deadline);
        if (!done) {
            char why[512];
            const char *test = mw_lua_testing_current();
            snprintf(why, sizeof why, "%s: timed out after %g s%s", file,
                     (double)r->timeout_ms / 1000.0,
                     test[0] ? " in this test; the rest of the file was skipped" : "");
            fail_outside(r, test[0] ? test : file, why);
        }
    }
    mw_lua_testing_end_file();
    mw_lua_timer_cancel_app(a);
    mw_app_decref(a); /* a test left sleeping keeps it until its timer or the end */
}

/* The server state `serve` sets up before it listens, without a socket. */
static int server_start(const struct mw_config *cfg)
{
    char err[1024];
    if (mw_server_prepare(cfg, mw_home(), err, sizeof err) < 0) {
        fprintf(stderr, "moonwire: %s\n", err);
        return -1;
    }
    return 0;
}

/* Everything closes in the order of the server's own shutdown. */
static void server_stop(void)
{
    mw_lua_testing_shutdown();
    mw_server_release();
    mw_server_teardown();
}

int mw_testrun_main(int argc, char **argv)
{
    const char *config = NULL;
    struct strv paths = { 0 }, files = { 0 };
    struct run r = { .timeout_ms = (uint64_t)(DEFAULT_TIMEOUT_S * 1000) };
    struct mw_config cfg;
    char err[1024];
    int rc = 2;

    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        if ((!strcmp(arg, "-c") || !strcmp(arg, "--config")) && i + 1 < argc) {
            config = argv[++i];
        } else if ((!strcmp(arg, "-t") || !strcmp(arg, "--timeout")) && i + 1 < argc) {
            char *end;
            double secs = strtod(argv[++i], &end);
            if (*end || !(secs > 0) || secs > 86400) {
                fprintf(stderr, "moonwire test: -t wants seconds (0 < s <= 86400)\n");
                goto out;
            }
            r.timeout_ms = (uint64_t)llround(secs * 1000.0);
        } else if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
            usage(stdout);
            rc = 0;
            goto out;
        } else if (arg[0] == '-') {
            fprintf(stderr, "moonwire test: unexpected argument '%s'\n", arg);
            usage(stderr);
            goto out;
        } else {
            strv_push(&paths, mw_strdup(arg));
        }
    }
    if (paths.n == 0) {
        usage(stderr);
        goto out;
    }
    rc = 1;
    if ((config ? mw_config_load_file(config, mw_home(), &cfg, err, sizeof err)
                : mw_config_load_embedded(mw_home(), &cfg, err, sizeof err)) < 0) {
        fprintf(stderr, "%s\n", err);
        goto out;
    }
    /* The embedded default logs at info: too chatty next to test results. */
    mw_log_set(config ? cfg.log_level : MW_LOG_WARN, cfg.log_format == MW_LOG_JSON);
    if (server_start(&cfg) < 0) {
        mw_config_free(&cfg);
        goto out;
    }
    uv_timer_init(uv_default_loop(), &r.deadline);
    r.deadline.data = &r;

    for (size_t i = 0; i < paths.n; i++) {
        if (collect(paths.v[i], &files, err, sizeof err) < 0)
            fail_outside(&r, paths.v[i], err);
    }
    for (size_t i = 0; i < files.n; i++)
        run_file(&r, files.v[i]);

    uv_close((uv_handle_t *)&r.deadline, NULL);
    server_stop();
    for (size_t i = 0; i < r.nroutes; i++) {
        free(r.routes[i]->cfg.path);
        free(r.routes[i]->cfg.script);
        free(r.routes[i]);
    }
    free(r.routes);
    mw_config_free(&cfg);
    printf("%" PRIu32 " passed, %" PRIu32 " failed\n", r.counts.passed, r.counts.failed);
    fflush(stdout);
    rc = r.counts.failed ? 1 : 0;
out:
    strv_free(&paths);
    strv_free(&files);
    return rc;
}

/* main.c - the moonwire command line: serve, check, test, version, help. */
#include <stdio.h>
#include <string.h>

#include "base/config.h"
#include "server/home.h"
#include "base/log.h"
#include "server/server.h"
#include "server/testrun.h"
#include "server/workers.h"

/* The embedded default's routes, "/chat (app:chat), /echo (app:echo, raw), ...", read
 * from the embedded config itself so that this text follows it. */
static void embedded_routes(char *out, size_t len)
{
    struct mw_config cfg;
    size_t n = 0;
    out[0] = '\0';
    if (mw_config_load_embedded(mw_home(), &cfg, NULL, 0) < 0) {
        snprintf(out, len, "(cannot read the embedded default: check MOONWIRE_HOME)");
        return;
    }
    for (size_t i = 0; i < cfg.nroutes && n < len; i++) {
        const struct mw_route_config *r = &cfg.routes[i];
        n += (size_t)snprintf(out + n, len - n, "%s%s%s (app:%s%s)", i ? "," : "",
                              i && i % 3 == 0 ? "\n  " : " ", r->path, r->app ? r->app : "?",
                              r->protocol == MW_PROTO_RAW ? ", raw" : "");
    }
    mw_config_free(&cfg);
}

static void usage(FILE *f)
{
    char routes[512];
    embedded_routes(routes, sizeof routes);
    fprintf(f,
            "usage: moonwire [serve] [-c FILE] [-l HOST:PORT]  run the server\n"
            "       moonwire check [-c FILE]     validate a config and compile its scripts\n"
            "       moonwire test [-c FILE] [-t SECONDS] PATH...\n"
            "                                    run Lua app tests in-process (docs/testing.md)\n"
            "       moonwire version             print the version\n"
            "       moonwire help                this text\n"
            "\n"
            "  -c, --config FILE       the YAML config (docs/config.md); without one, the\n"
            "                          embedded default\n"
            "  -l, --listen HOST:PORT  listen there instead of at the config's `listen`\n"
            "  -t SECONDS              time limit per test file (default 60)\n"
            "\n"
            "The embedded default listens on 127.0.0.1:8080 with the bundled apps at\n"
            " %s,\n"
            "the demo page at /, the browser client at /moonwire.js, hot reload on, any\n"
            "user name through ?user=NAME, and the development API key \"dev\" for /api/*.\n"
            "It is for development only. MOONWIRE_HOME overrides where the Lua library and\n"
            "the bundled apps are found (now: %s).\n",
            routes, mw_home());
}

static int load_config(const char *file, struct mw_config *cfg)
{
    char err[1024];
    int rc = file ? mw_config_load_file(file, mw_home(), cfg, err, sizeof err)
                  : mw_config_load_embedded(mw_home(), cfg, err, sizeof err);
    if (rc < 0)
        fprintf(stderr, "%s\n", err);
    return rc;
}

struct args {
    const char *file;   /* -c FILE, or the one plain argument */
    const char *listen; /* -l HOST:PORT */
};

/* Parses [-c FILE] [-l HOST:PORT] (the latter only when `listen` is allowed); returns
 * -1 on a bad argument. */
static int parse_args(int argc, char **argv, struct args *a, int listen)
{
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        if ((!strcmp(arg, "-c") || !strcmp(arg, "--config")) && i + 1 < argc) {
            a->file = argv[++i];
        } else if (listen && (!strcmp(arg, "-l") || !strcmp(arg, "--listen")) && i + 1 < argc) {
            a->listen = argv[++i];
        } else if (arg[0] != '-' && !a->file) {
            a->file = arg;
        } else {
            fprintf(stderr, "moonwire: unexpected argument '%s'\n", arg);
            return -1;
        }
    }
    return 0;
}

/* The embedded default's API key is public: say so where the newcomer looks. */
static void log_embedded(const struct mw_config *cfg)
{
    for (size_t i = 0; i < cfg->napi_keys; i++)
        mw_log_info("development api key", "key=%s use=\"curl -H 'Authorization: Bearer %s' "
                    "http://%s:%d/api/...\" note=\"embedded default only: set api.keys in "
                    "a config\"", cfg->api_keys[i], cfg->api_keys[i], cfg->listen_host,
                    cfg->listen_port);
}

/* The embedded default is for development: a public API key and ?user= impersonation.
 * Listening beyond this machine with it would publish both, so it stays on loopback. */
static int embedded_listen_ok(const char *host)
{
    return !strncmp(host, "127.", 4) || !strcmp(host, "::1") || !strcmp(host, "localhost");
}

static int cmd_serve(int argc, char **argv)
{
    struct args a = { 0 };
    struct mw_config cfg;
    if (parse_args(argc, argv, &a, 1) < 0) {
        usage(stderr);
        return 2;
    }
    if (load_config(a.file, &cfg) < 0)
        return 1;
    if (a.listen && mw_parse_listen(a.listen, &cfg.listen_host, &cfg.listen_port) < 0) {
        fprintf(stderr, "moonwire: --listen wants HOST:PORT, [IPV6]:PORT or :PORT, got '%s'\n",
                a.listen);
        mw_config_free(&cfg);
        return 2;
    }
    if (!a.file && !embedded_listen_ok(cfg.listen_host)) {
        fprintf(stderr, "moonwire: the embedded default listens on loopback only (it has a "
                "public development API key and lets ?user= set the user); to listen on %s, "
                "write a config (moonwire serve -c FILE)\n", cfg.listen_host);
        mw_config_free(&cfg);
        return 2;
    }
    mw_log_set(cfg.log_level, cfg.log_format == MW_LOG_JSON);
    if (!a.file)
        log_embedded(&cfg);
    /* workers: 1 is the plain single process, without a master. */
    int rc = cfg.workers > 1 ? mw_workers_run(&cfg, mw_home()) : mw_server_run(&cfg, mw_home());
    mw_config_free(&cfg);
    return rc;
}

static int cmd_check(int argc, char **argv)
{
    struct args a = { 0 };
    struct mw_config cfg;
    char err[1024];
    if (parse_args(argc, argv, &a, 0) < 0) {
        fprintf(stderr, "usage: moonwire check [-c FILE]\n");
        return 2;
    }
    if (load_config(a.file, &cfg) < 0)
        return 1;
    mw_log_set(MW_LOG_WARN, 0);
    if (mw_server_load_routes(&cfg, mw_home(), err, sizeof err) < 0) {
        fprintf(stderr, "%s\n", err);
        mw_config_free(&cfg);
        return 1;
    }
    printf("%s: ok (%zu route%s)\n", a.file ? a.file : "embedded default", cfg.nroutes,
           cfg.nroutes == 1 ? "" : "s");
    mw_server_unload_routes();
    mw_config_free(&cfg);
    return 0;
}

int main(int argc, char **argv)
{
    const char *cmd = argc > 1 ? argv[1] : "serve";
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("moonwire %s\n", MW_VERSION);
        return 0;
    }
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(cmd, "check") == 0)
        return cmd_check(argc - 2, argv + 2);
    if (strcmp(cmd, "test") == 0)
        return mw_testrun_main(argc - 2, argv + 2);
    if (strcmp(cmd, "serve") == 0)
        return cmd_serve(argc - 2, argv + 2);
    if (cmd[0] == '-')
        return cmd_serve(argc - 1, argv + 1);
    fprintf(stderr, "moonwire: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
}

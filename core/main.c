/* main.c - the moonwire command line: serve, check, test, version. */
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "home.h"
#include "log.h"
#include "server.h"
#include "testrun.h"
#include "workers.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: moonwire [serve] [-c FILE]   run the server (no file: the embedded default)\n"
            "       moonwire check -c FILE       validate a config and compile its scripts\n"
            "       moonwire test [-c FILE] PATH...  run Lua app tests (docs/testing.md)\n"
            "       moonwire version             print the version\n"
            "\n"
            "The embedded default listens on 127.0.0.1:8080 with the bundled apps at /chat,\n"
            "/echo, /notify and /reservations, the demo page at / and hot reload on.\n"
            "MOONWIRE_HOME overrides where the Lua library and bundled apps are found\n"
            "(now: %s).\n",
            mw_home());
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

/* Parses [-c FILE]; returns -1 on a bad argument. */
static int parse_args(int argc, char **argv, const char **file)
{
    for (int i = 0; i < argc; i++) {
        if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) && i + 1 < argc) {
            *file = argv[++i];
        } else if (argv[i][0] != '-' && !*file) {
            *file = argv[i];
        } else {
            fprintf(stderr, "moonwire: unexpected argument '%s'\n", argv[i]);
            return -1;
        }
    }
    return 0;
}

static int cmd_serve(int argc, char **argv)
{
    const char *file = NULL;
    struct mw_config cfg;
    if (parse_args(argc, argv, &file) < 0) {
        usage(stderr);
        return 2;
    }
    if (load_config(file, &cfg) < 0)
        return 1;
    mw_log_set(cfg.log_level, cfg.log_format == MW_LOG_JSON);
    /* workers: 1 is the plain single process, without a master. */
    int rc = cfg.workers > 1 ? mw_workers_run(&cfg, mw_home()) : mw_server_run(&cfg, mw_home());
    mw_config_free(&cfg);
    return rc;
}

static int cmd_check(int argc, char **argv)
{
    const char *file = NULL;
    struct mw_config cfg;
    char err[1024];
    if (parse_args(argc, argv, &file) < 0 || !file) {
        fprintf(stderr, "usage: moonwire check -c FILE\n");
        return 2;
    }
    if (load_config(file, &cfg) < 0)
        return 1;
    mw_log_set(MW_LOG_WARN, 0);
    if (mw_server_load_routes(&cfg, mw_home(), err, sizeof err) < 0) {
        fprintf(stderr, "%s\n", err);
        mw_config_free(&cfg);
        return 1;
    }
    printf("%s: ok (%zu route%s)\n", file, cfg.nroutes, cfg.nroutes == 1 ? "" : "s");
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

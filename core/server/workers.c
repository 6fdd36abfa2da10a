/* workers.c - `workers: N`: one master process, N server processes.
 *
 * The master opens one SO_REUSEPORT listening socket per worker before it forks, so
 * that the kernel spreads connections over the workers, a bind error is reported once,
 * and a worker restarted after a crash takes over the queue of connections the dead
 * one had not accepted yet (the master keeps every socket open). Each worker is a
 * complete node with its own loop, Lua states and Redis connections, named
 * "<node_id>-w<k>": rooms, presence and send_user span workers exactly as they span
 * machines (rooms/cluster.c, rooms/broker.c), which is why config.c requires Redis.
 *
 * The master itself runs no loop: it blocks the signals it handles and takes them
 * synchronously with sigtimedwait, which also serves as the timer for restarts. */
#define _GNU_SOURCE /* sigtimedwait */
#include "server/workers.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "net/listener.h"
#include "base/log.h"
#include "http/metrics.h"
#include "server/server.h"
#include "base/util.h"

#define STARTUP_GRACE_MS 2000   /* a worker failing this early after start: give up */
#define STABLE_MS 10000         /* a worker that ran this long restarts without delay */
#define BACKOFF_FIRST_MS 100
#define BACKOFF_MAX_MS 10000

struct worker {
    pid_t pid;                  /* 0: not running */
    int fd;                     /* its listening socket, kept open by the master */
    uint64_t started_ms;
    uint64_t restart_at_ms;     /* when pid == 0 and not stopping */
    uint32_t fails;             /* quick deaths in a row, for the backoff */
};

static struct worker *workers;
static int nworkers;
static char base_id[64];
static sigset_t handled, saved_mask;
static pid_t master_pid;

static void free_workers(void)
{
    free(workers);
    workers = NULL;
}

/* In the child: becomes worker k and never returns. */
static void run_worker(struct mw_config *cfg, const char *home, int k)
{
    int fd = workers[k].fd;
    for (int i = 0; i < nworkers; i++)
        if (i != k)
            close(workers[i].fd);
    free_workers();
    /* A worker must not outlive its master (killed with SIGKILL): it shuts down. */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != master_pid)
        _exit(1);
    sigprocmask(SIG_SETMASK, &saved_mask, NULL);
    mw_random_reseed(); /* else every worker draws the same anonymous ids */
    uv_loop_fork(uv_default_loop()); /* in case the master's script check touched it */
    char id[80];
    snprintf(id, sizeof id, "%s-w%d", base_id, k);
    free(cfg->node_id);
    cfg->node_id = mw_strdup(id);
    mw_server_use_socket(fd);
    mw_metrics_start(k); /* its page joins the others' (metrics.c) */
    int rc = mw_server_run(cfg, home);
    mw_config_free(cfg);
    exit(rc);
}

static int spawn(struct mw_config *cfg, const char *home, int k)
{
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        mw_log_error("cannot fork a worker", "worker=%d error=\"%s\"", k, strerror(errno));
        return -1;
    }
    if (pid == 0)
        run_worker(cfg, home, k);
    workers[k].pid = pid;
    workers[k].started_ms = mw_now_ms();
    mw_metrics_worker_started(k);
    mw_log_info("worker started", "worker=%d pid=%d node=%s-w%d", k, (int)pid, base_id, k);
    return 0;
}

static void signal_all(int signum)
{
    for (int i = 0; i < nworkers; i++)
        if (workers[i].pid > 0)
            kill(workers[i].pid, signum);
}

static int running(void)
{
    int n = 0;
    for (int i = 0; i < nworkers; i++)
        n += workers[i].pid > 0;
    return n;
}

static void describe(int status, char *buf, size_t len)
{
    if (WIFEXITED(status))
        snprintf(buf, len, "exit=%d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(buf, len, "signal=%d", WTERMSIG(status));
    else
        snprintf(buf, len, "status=%d", status);
}

struct master {
    bool stopping;
    int exit_code;
    uint64_t started_ms;
};

/* Collects every worker that ended; plans restarts or gives up. */
static void reap(struct master *m)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        int k = 0;
        while (k < nworkers && workers[k].pid != pid)
            k++;
        if (k == nworkers)
            continue;
        struct worker *w = &workers[k];
        uint64_t now = mw_now_ms(), uptime = now - w->started_ms;
        mw_metrics_worker_ended(k);
        char how[32];
        describe(status, how, sizeof how);
        w->pid = 0;
        if (m->stopping) {
            mw_log_info("worker stopped", "worker=%d pid=%d %s", k, (int)pid, how);
            if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                m->exit_code = 1;
            continue;
        }
        if (WIFEXITED(status) && WEXITSTATUS(status) != 0 && now - m->started_ms < STARTUP_GRACE_MS) {
            /* Every worker would fail the same way (the script check passed, so it is
             * something like Redis or a resource): stop instead of looping. */
            mw_log_error("worker failed at start: stopping", "worker=%d pid=%d %s", k, (int)pid, how);
            m->stopping = true;
            m->exit_code = 1;
            signal_all(SIGTERM);
            continue;
        }
        w->fails = uptime >= STABLE_MS ? 0 : w->fails + 1;
        uint64_t delay = w->fails ? (uint64_t)BACKOFF_FIRST_MS << (w->fails < 8 ? w->fails - 1 : 7) : 0;
        if (delay > BACKOFF_MAX_MS)
            delay = BACKOFF_MAX_MS;
        w->restart_at_ms = now + delay;
        mw_log_warn("worker died", "worker=%d pid=%d %s uptime_ms=%" PRIu64 " restart_in_ms=%" PRIu64,
                    k, (int)pid, how, uptime, delay);
    }
}

/* Milliseconds until the next planned restart, at most 1000 (-1: none planned). */
static int64_t next_restart_in(uint64_t now)
{
    int64_t best = -1;
    for (int i = 0; i < nworkers; i++) {
        if (workers[i].pid)
            continue;
        int64_t d = workers[i].restart_at_ms > now ? (int64_t)(workers[i].restart_at_ms - now) : 0;
        if (best < 0 || d < best)
            best = d;
    }
    return best;
}

static int open_sockets(const struct mw_config *cfg)
{
    char err[512];
    int port = cfg->listen_port;
    for (int i = 0; i < nworkers; i++) {
        /* Port 0: the first socket picks a free port, the others share it. */
        workers[i].fd = mw_listen_open(cfg->listen_host, port, true, &port, err, sizeof err);
        if (workers[i].fd < 0) {
            fprintf(stderr, "moonwire: %s\n", err);
            for (int j = 0; j < i; j++)
                close(workers[j].fd);
            return -1;
        }
    }
    mw_log_info("workers starting", "workers=%d addr=%s:%d node=%s", nworkers, cfg->listen_host,
                port, base_id);
    return 0;
}

int mw_workers_run(struct mw_config *cfg, const char *home)
{
    char err[1024];
    /* Script errors once, here, rather than once per worker. */
    if (mw_server_load_routes(cfg, home, err, sizeof err) < 0) {
        fprintf(stderr, "moonwire: %s\n", err);
        return 1;
    }
    mw_server_unload_routes();

    nworkers = cfg->workers;
    workers = mw_calloc((size_t)nworkers, sizeof *workers);
    if (cfg->node_id)
        snprintf(base_id, sizeof base_id, "%s", cfg->node_id);
    else
        snprintf(base_id, sizeof base_id, "node-%08" PRIx64, mw_random_u64() & 0xffffffffu);
    if (open_sockets(cfg) < 0) {
        free_workers();
        return 1;
    }
    /* Before the first fork: every worker answers /metrics for all of them. */
    if (mw_metrics_share(nworkers) < 0) {
        fprintf(stderr, "moonwire: cannot map the workers' metrics: %s\n", strerror(errno));
        for (int i = 0; i < nworkers; i++)
            close(workers[i].fd);
        free_workers();
        return 1;
    }

    /* Blocked before the first fork, so no signal is lost in between; workers
     * restore the old mask. */
    sigemptyset(&handled);
    sigaddset(&handled, SIGCHLD);
    sigaddset(&handled, SIGTERM);
    sigaddset(&handled, SIGINT);
    sigaddset(&handled, SIGHUP);
    sigprocmask(SIG_BLOCK, &handled, &saved_mask);
    master_pid = getpid();

    struct master m = { .started_ms = mw_now_ms() };
    for (int i = 0; i < nworkers && !m.stopping; i++)
        if (spawn(cfg, home, i) < 0) {
            m.stopping = true;
            m.exit_code = 1;
            signal_all(SIGTERM);
        }

    while (running() > 0 || !m.stopping) {
        uint64_t now = mw_now_ms();
        if (!m.stopping) {
            for (int i = 0; i < nworkers; i++)
                if (!workers[i].pid && workers[i].restart_at_ms <= now &&
                    spawn(cfg, home, i) < 0)
                    workers[i].restart_at_ms = now + BACKOFF_MAX_MS;
        }
        int64_t wait = m.stopping ? 1000 : next_restart_in(mw_now_ms());
        if (wait < 0 || wait > 1000)
            wait = 1000;
        struct timespec ts = { (time_t)(wait / 1000), (long)(wait % 1000) * 1000000L };
        siginfo_t si;
        int sig = sigtimedwait(&handled, &si, &ts);
        if (sig == SIGCHLD) {
            reap(&m);
        } else if (sig == SIGHUP) {
            mw_log_info("reloading workers", "workers=%d", running());
            signal_all(SIGHUP);
        } else if (sig == SIGTERM || sig == SIGINT) {
            /* A second signal is forwarded too: the workers then exit at once. */
            mw_log_info(m.stopping ? "second signal: forwarding" : "stopping workers",
                        "signal=%d workers=%d", sig, running());
            m.stopping = true;
            signal_all(sig);
        } else {
            reap(&m); /* a timeout; a SIGCHLD merged with another signal is caught here too */
        }
    }
    for (int i = 0; i < nworkers; i++)
        close(workers[i].fd);
    free_workers();
    sigprocmask(SIG_SETMASK, &saved_mask, NULL);
    mw_log_info("stopped", "workers=%d", nworkers);
    return m.exit_code;
}

/* mwbench.c - moonwire's load generator: command line, limits, and the scenarios of
 * benchmark scenarios against any server speaking the chat app's protocol. One thread,
 * one epoll loop, no dependencies beyond libc. Talks only to 127.0.0.0/8. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "blast.h"
#include "clock.h"
#include "proc.h"
#include "scen.h"
#include "selftest.h"

static const char usage[] =
    "usage: mwbench SCENARIO --port PORT [options]\n"
    "scenarios (every run stops by itself):\n"
    "  fanout   S members in room 'bench', P publishers at a fixed total rate:\n"
    "           deliveries/s, loss, latency p50/p99/p99.9\n"
    "  chat     K rooms x M members, each member sending R msg/s: latency\n"
    "  idle     hold N joined connections: server RSS per connection\n"
    "  connect  handshake + hello + join, then close, C in flight: per second\n"
    "  ramp     fanout at rising rates: the highest with p99 <= target and no loss\n"
    "  freeport print a free port on 127.0.0.1 and exit\n"
    "  wait     wait until --port accepts TCP connections (--duration s, default 10)\n"
    "  selftest check the generator's in-place event reader against its JSON walk\n"
    "  blast-server  serve on --port (none: a free one, printed) for --duration s\n"
    "           (default 10): the cheapest fan-out server there is (frames built once,\n"
    "           one write per member per loop), to see how far the generator goes\n"
    "common:  --host 127.0.0.x (default 127.0.0.1; nothing outside 127.0.0.0/8)\n"
    "         --path /chat  --label NAME  --pid PID (server; else found by its port)\n"
    "         --port2 PORT (a second node: members alternate between the two; publishers\n"
    "         stay on --port; for cross-node delivery over Redis)\n"
    "         --duration S (default 10; idle: hold time, default 2; at most 120)\n"
    "         --drain S (wait for deliveries after the last send, default 3, max 30)\n"
    "         --setup-timeout S (default 60)  --settle S (default 0.5)\n"
    "         --inflight N (set-ups at once, default 256)  --sources N (127.0.0.1..N, default 4)\n"
    "         --pad BYTES (default 60: data ~100 bytes)  --no-ack (send without ids)\n"
    "         --deflate (offer permessage-deflate; compressed events are inflated)\n"
    "         --strict (exit 1 on loss, errors, failed connections or no delivery)\n"
    "         --read-batch-us auto|US (read sockets at most every US; auto, the default:\n"
    "         0 while the generator uses under 30 % of its CPU, growing towards\n"
    "         --read-batch-max-us (20000) above 55 %. Bigger reads make a cheaper\n"
    "         generator; latency is taken at the arrival of a read's last bytes, so it\n"
    "         may read up to the interval high: the result says read_batch_max_us)\n"
    "         --check-parse (check every event read in place against the JSON walk and\n"
    "         abort on a difference: a self-test of the generator; costs CPU)\n"
    "fanout/ramp: --members S (1000) --publishers P (1) --rate MSG_PER_S (100, fanout)\n"
    "         --slow-readers N (fanout: the last N members stop reading; the server should\n"
    "         close them at its send-queue bound without slowing the others)\n"
    "         --ramp-start R (20) --ramp-factor F (2) --ramp-step S (3) --ramp-p99 MS (100)\n"
    "         --ramp-bisect N (3) --ramp-steps N (16) --max-rate R (1000000)\n"
    "chat:    --rooms K (100) --room-members M (10) --msg-rate R (10, per member)\n"
    "         --idle N (0: N more connections joined to rooms of --room-size of their\n"
    "         own, idle beside the chat: what heartbeats of many connections cost)\n"
    "idle:    --conns N (10000) --room-size M (10)\n"
    "connect: --concurrency C (32)\n";

enum {
    O_HOST = 1000, O_PORT, O_PORT2, O_PATH, O_LABEL, O_PID, O_DURATION, O_DRAIN, O_SETUP, O_SETTLE,
    O_INFLIGHT, O_SOURCES, O_PAD, O_NOACK, O_STRICT, O_MEMBERS, O_PUBS, O_RATE, O_RSTART,
    O_RFACTOR, O_RSTEP, O_RP99, O_RBISECT, O_RSTEPS, O_MAXRATE, O_ROOMS, O_RMEMBERS,
    O_MSGRATE, O_CONNS, O_ROOMSIZE, O_CONC, O_IDLE, O_BATCH, O_BATCH_MAX, O_CHECK, O_SLOW,
    O_DEFLATE, O_HELP
};

static const struct option longopts[] = {
    { "host", 1, 0, O_HOST }, { "port", 1, 0, O_PORT }, { "port2", 1, 0, O_PORT2 },
    { "path", 1, 0, O_PATH },
    { "label", 1, 0, O_LABEL }, { "pid", 1, 0, O_PID }, { "duration", 1, 0, O_DURATION },
    { "drain", 1, 0, O_DRAIN }, { "setup-timeout", 1, 0, O_SETUP }, { "settle", 1, 0, O_SETTLE },
    { "inflight", 1, 0, O_INFLIGHT }, { "sources", 1, 0, O_SOURCES }, { "pad", 1, 0, O_PAD },
    { "no-ack", 0, 0, O_NOACK }, { "strict", 0, 0, O_STRICT }, { "members", 1, 0, O_MEMBERS },
    { "publishers", 1, 0, O_PUBS }, { "rate", 1, 0, O_RATE }, { "ramp-start", 1, 0, O_RSTART },
    { "ramp-factor", 1, 0, O_RFACTOR }, { "ramp-step", 1, 0, O_RSTEP },
    { "ramp-p99", 1, 0, O_RP99 }, { "ramp-bisect", 1, 0, O_RBISECT },
    { "ramp-steps", 1, 0, O_RSTEPS }, { "max-rate", 1, 0, O_MAXRATE }, { "rooms", 1, 0, O_ROOMS },
    { "room-members", 1, 0, O_RMEMBERS }, { "msg-rate", 1, 0, O_MSGRATE },
    { "conns", 1, 0, O_CONNS }, { "idle", 1, 0, O_IDLE }, { "room-size", 1, 0, O_ROOMSIZE },
    { "concurrency", 1, 0, O_CONC }, { "read-batch-us", 1, 0, O_BATCH },
    { "read-batch-max-us", 1, 0, O_BATCH_MAX }, { "check-parse", 0, 0, O_CHECK },
    { "slow-readers", 1, 0, O_SLOW }, { "deflate", 0, 0, O_DEFLATE }, { "help", 0, 0, O_HELP },
    { 0, 0, 0, 0 }
};

static void die_usage(const char *fmt, const char *arg)
{
    fprintf(stderr, "mwbench: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n%s", usage);
    exit(2);
}

/* A number in [lo, hi], or exit 2. */
static double num(const char *name, const char *s, double lo, double hi)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "mwbench: --%s: '%s' is not a number in [%g, %g]\n", name, s, lo, hi);
        exit(2);
    }
    return v;
}

static void defaults(struct opts *o, const char *scenario)
{
    memset(o, 0, sizeof *o);
    o->scenario = scenario;
    o->label = "server";
    o->path = "/chat";
    inet_pton(AF_INET, "127.0.0.1", &o->host);
    o->duration = strcmp(scenario, "idle") == 0 ? 2 : 10;
    o->drain = 3;
    o->setup_timeout = 60;
    o->settle = 0.5;
    o->inflight = 256;
    o->sources = 4;
    o->pad = 60;
    o->ack = true;
    o->members = 1000;
    o->publishers = 1;
    o->rate = 100;
    o->ramp_start = 20;
    o->ramp_factor = 2;
    o->ramp_step = 3;
    o->ramp_p99_ms = 100;
    o->ramp_bisect = 3;
    o->ramp_steps = 16;
    o->max_rate = 1e6;
    o->rooms = 100;
    o->room_members = 10;
    o->msg_rate = 10;
    o->conns = 10000;
    o->room_size = 10;
    o->concurrency = 32;
    o->batch_auto = true;
}

static void set_host(struct opts *o, const char *s)
{
    if (inet_pton(AF_INET, s, &o->host) != 1)
        die_usage("--host: '%s' is not an IPv4 address", s);
    if ((ntohl(o->host.s_addr) >> 24) != 127) {
        fprintf(stderr, "mwbench: refusing to connect to %s: only 127.0.0.0/8 is allowed\n", s);
        exit(2);
    }
}

static void parse(struct opts *o, int argc, char **argv)
{
    int c;
    double batch_max = 20000;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        const char *a = optarg;
        switch (c) {
        case O_HOST: set_host(o, a); break;
        case O_PORT: o->port = (int)num("port", a, 1, 65535); break;
        case O_PORT2: o->port2 = (int)num("port2", a, 1, 65535); break;
        case O_PATH:
            if (a[0] != '/' || strlen(a) > 100 || strpbrk(a, " ?#"))
                die_usage("--path: '%s' must start with / and hold no space, ? or #", a);
            o->path = a;
            break;
        case O_LABEL: o->label = a; break;
        case O_PID: o->pid = (pid_t)num("pid", a, 1, 1 << 30); break;
        case O_DURATION: o->duration = num("duration", a, 0.1, MAX_DURATION_S); break;
        case O_DRAIN: o->drain = num("drain", a, 0, 30); break;
        case O_SETUP: o->setup_timeout = num("setup-timeout", a, 1, 300); break;
        case O_SETTLE: o->settle = num("settle", a, 0, 30); break;
        case O_INFLIGHT: o->inflight = (uint32_t)num("inflight", a, 1, 100000); break;
        case O_SOURCES: o->sources = (int)num("sources", a, 1, 250); break;
        case O_PAD: o->pad = (uint32_t)num("pad", a, 0, 900); break;
        case O_NOACK: o->ack = false; break;
        case O_DEFLATE: o->deflate = true; break;
        case O_STRICT: o->strict = true; break;
        case O_MEMBERS: o->members = (uint32_t)num("members", a, 1, 1000000); break;
        case O_PUBS: o->publishers = (uint32_t)num("publishers", a, 1, 1000000); break;
        case O_RATE: o->rate = num("rate", a, 0.1, 1e7); break;
        case O_RSTART: o->ramp_start = num("ramp-start", a, 0.1, 1e7); break;
        case O_RFACTOR: o->ramp_factor = num("ramp-factor", a, 1.05, 100); break;
        case O_RSTEP: o->ramp_step = num("ramp-step", a, 0.5, 30); break;
        case O_RP99: o->ramp_p99_ms = num("ramp-p99", a, 0.01, 10000); break;
        case O_RBISECT: o->ramp_bisect = (uint32_t)num("ramp-bisect", a, 0, 10); break;
        case O_RSTEPS: o->ramp_steps = (uint32_t)num("ramp-steps", a, 1, 40); break;
        case O_MAXRATE: o->max_rate = num("max-rate", a, 1, 1e8); break;
        case O_ROOMS: o->rooms = (uint32_t)num("rooms", a, 1, 100000); break;
        case O_RMEMBERS: o->room_members = (uint32_t)num("room-members", a, 1, 100000); break;
        case O_MSGRATE: o->msg_rate = num("msg-rate", a, 0.01, 100000); break;
        case O_CONNS: o->conns = (uint32_t)num("conns", a, 1, 1000000); break;
        case O_IDLE: o->idle = (uint32_t)num("idle", a, 0, 1000000); break;
        case O_ROOMSIZE: o->room_size = (uint32_t)num("room-size", a, 1, 100000); break;
        case O_CONC: o->concurrency = (uint32_t)num("concurrency", a, 1, 10000); break;
        case O_SLOW: o->slow_readers = (uint32_t)num("slow-readers", a, 0, 1000000); break;
        case O_BATCH:
            o->batch_auto = strcmp(a, "auto") == 0;
            if (!o->batch_auto)
                o->batch_us = num("read-batch-us", a, 0, 100000);
            break;
        case O_BATCH_MAX: batch_max = num("read-batch-max-us", a, 0, 100000); break;
        case O_CHECK: o->check_parse = true; break;
        case O_HELP: fputs(usage, stdout); exit(0);
        default: die_usage("%s", "bad option");
        }
    }
    if (optind != argc)
        die_usage("unexpected argument '%s'", argv[optind]);
    if (o->batch_auto)
        o->batch_us = batch_max;
}

/* Raises the soft open-files limit to the hard one; connections may use all but a
 * few descriptors. */
static void raise_nofile(struct opts *o)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        if (rl.rlim_cur < rl.rlim_max) {
            rl.rlim_cur = rl.rlim_max;
            setrlimit(RLIMIT_NOFILE, &rl);
        }
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    o->nofile = rl.rlim_cur > 1 << 30 ? 1 << 30 : (int)rl.rlim_cur;
    o->max_conns = o->nofile > 64 ? (uint32_t)(o->nofile - 32) : 16;
}

static void on_alarm(int sig)
{
    static const char msg[] = "mwbench: hard time limit reached, exiting\n";
    (void)sig;
    if (write(2, msg, sizeof msg - 1) < 0)
        _exit(3);
    _exit(3);
}

/* A hard bound on the whole process, whatever happens: set-up, the run, the drain,
 * and slack. */
static void arm_deadline(const struct opts *o)
{
    double s = o->setup_timeout * 2 + o->duration + o->drain + o->settle + 30;
    if (strcmp(o->scenario, "ramp") == 0)
        s = o->setup_timeout * 2 + 450;
    signal(SIGALRM, on_alarm);
    alarm((unsigned)(s < 900 ? s : 900));
}

static int cmd_freeport(void)
{
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001u) };
    socklen_t sl = sizeof sa;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &sl) < 0) {
        perror("mwbench: freeport");
        return 1;
    }
    printf("%d\n", ntohs(sa.sin_port));
    close(fd);
    return 0;
}

static int cmd_wait(const struct opts *o)
{
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)o->port),
                              .sin_addr = o->host };
    uint64_t end = now_ns() + (uint64_t)(o->duration * 1e9);
    do {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        int ok = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
        if (fd >= 0)
            close(fd);
        if (ok)
            return 0;
        nanosleep(&(struct timespec){ 0, 50000000 }, NULL);
    } while (now_ns() < end);
    fprintf(stderr, "mwbench: nothing accepts connections on port %d\n", o->port);
    return 1;
}

int main(int argc, char **argv)
{
    struct opts o;
    if (argc < 2 || argv[1][0] == '-') {
        fputs(usage, argc < 2 ? stderr : stdout);
        return argc < 2 || strcmp(argv[1], "--help") ? 2 : 0;
    }
    const char *scen = argv[1];
    defaults(&o, scen);
    parse(&o, argc - 1, argv + 1);
    signal(SIGPIPE, SIG_IGN);
    now_ns(); /* the time base */
    if (strcmp(scen, "freeport") == 0)
        return cmd_freeport();
    if (strcmp(scen, "selftest") == 0)
        return selftest_run();
    if (strcmp(scen, "blast-server") == 0)
        return blast_run(o.port, o.duration);
    if (!o.port)
        die_usage("%s", "--port is required");
    if (strcmp(scen, "wait") == 0)
        return cmd_wait(&o);
    raise_nofile(&o);
    if (!o.pid) {
        o.pid = proc_find_listener(o.host.s_addr, o.port);
        if (!o.pid)
            o.pid = proc_find_listener(htonl(0x7f000001u), o.port);
    }
    arm_deadline(&o);
    if (strcmp(scen, "fanout") == 0)
        return scen_fanout(&o);
    if (strcmp(scen, "chat") == 0)
        return scen_chat(&o);
    if (strcmp(scen, "idle") == 0)
        return scen_idle(&o);
    if (strcmp(scen, "connect") == 0)
        return scen_connect(&o);
    if (strcmp(scen, "ramp") == 0)
        return scen_ramp(&o);
    die_usage("unknown scenario '%s'", scen);
    return 2;
}

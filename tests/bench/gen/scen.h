/* scen.h - the benchmark scenarios: fanout, chat, idle, connect, ramp. Each
 * runs bounded in count and time, prints one "result" line of key=value pairs and a
 * short summary, and returns 0, or 1 when --strict found loss or failures. */
#ifndef MWB_SCEN_H
#define MWB_SCEN_H

#include <stdbool.h>
#include <stdint.h>
#include <netinet/in.h>
#include <sys/types.h>

#define MAX_DURATION_S 120.0

struct opts {
    const char *scenario, *label, *path;
    struct in_addr host;
    int port;
    int port2;                   /* a second node: every other connection goes there */
    pid_t pid;                   /* the server, for CPU and RSS; 0 unknown */
    double duration, drain, setup_timeout, settle;
    uint32_t members, publishers; double rate;    /* fanout, ramp */
    uint32_t slow_readers;                         /* fanout: members that stop reading */
    uint32_t rooms, room_members; double msg_rate; /* chat */
    uint32_t idle;                                 /* chat: idle connections beside it */
    uint32_t conns, room_size;                     /* idle */
    uint32_t inflight;                             /* set-ups in flight at once */
    uint32_t concurrency;                          /* connect: connections in flight */
    uint32_t pad;
    double batch_us;             /* net_opts.batch_ns: fixed, or the most batch_auto may use */
    bool batch_auto, check_parse;
    int sources;
    bool ack, strict;
    bool deflate;                /* net_opts.deflate */
    double ramp_start, ramp_factor, ramp_step, ramp_p99_ms, max_rate;
    uint32_t ramp_bisect, ramp_steps;
    uint32_t max_conns;          /* what RLIMIT_NOFILE allows */
    int nofile;
};

int scen_fanout(const struct opts *o);
int scen_chat(const struct opts *o);
int scen_idle(const struct opts *o);
int scen_connect(const struct opts *o);
int scen_ramp(const struct opts *o);

#endif

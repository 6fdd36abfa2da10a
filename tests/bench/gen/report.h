/* report.h - the one-line key=value result of a run and CPU snapshots around it. */
#ifndef MWB_REPORT_H
#define MWB_REPORT_H

#include <stdint.h>
#include <sys/types.h>

/* Starts a line "<tag> k=v k=v ..."; kv_* append; kv_print writes it to stdout. */
void kv_begin(const char *tag);
void kv_str(const char *key, const char *val);   /* spaces become '_' */
void kv_u64(const char *key, uint64_t v);
void kv_f(const char *key, double v, int decimals);
void kv_print(void);

/* Wall clock, our CPU and the server's CPU at one moment. */
struct snap {
    uint64_t wall_ns;
    int64_t self_ns, server_ns; /* server_ns -1 when unknown */
    int64_t busy_ns;            /* all CPUs, all processes (proc_busy_ns); -1 unknown */
};
void snap_take(struct snap *s, pid_t server);
/* CPU use between a and b in percent of one core: ours, and the server's (-1 unknown). */
void snap_cpu(const struct snap *a, const struct snap *b, double *self_pct, double *server_pct);
/* CPU (% of one core) used by other processes than us and the server between a and
 * b; -1 when unknown. */
double snap_other(const struct snap *a, const struct snap *b);
/* Adds gen_cpu_pct, server_cpu_pct, other_cpu_pct (everything else that ran on the
 * machine meanwhile: other load skews every figure) and gen_saturated. */
void kv_cpu(const struct snap *a, const struct snap *b);

#define GEN_SATURATED_PCT 90.0

#endif

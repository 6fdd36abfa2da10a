/* report.c - key=value result lines and CPU accounting (see report.h). */
#include "report.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "proc.h"

static char line[4096];
static size_t len;

static void add(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line + len, sizeof line - len, fmt, ap);
    va_end(ap);
    if (n > 0)
        len = len + (size_t)n < sizeof line ? len + (size_t)n : sizeof line - 1;
}

void kv_begin(const char *tag)
{
    len = 0;
    add("%s", tag);
}

void kv_str(const char *key, const char *val)
{
    size_t start = len;
    add(" %s=%s", key, val && *val ? val : "-");
    for (size_t i = start + 1 + strlen(key) + 1; i < len; i++)
        if (line[i] == ' ' || line[i] == '\n' || line[i] == '=')
            line[i] = '_';
}

void kv_u64(const char *key, uint64_t v)
{
    add(" %s=%llu", key, (unsigned long long)v);
}

void kv_f(const char *key, double v, int decimals)
{
    add(" %s=%.*f", key, decimals, v);
}

void kv_print(void)
{
    printf("%s\n", line);
    fflush(stdout);
}

void snap_take(struct snap *s, pid_t server)
{
    s->wall_ns = now_ns();
    s->self_ns = self_cpu_ns();
    s->server_ns = server > 0 ? proc_cpu_ns(server) : -1;
    s->busy_ns = proc_busy_ns();
}

void snap_cpu(const struct snap *a, const struct snap *b, double *self_pct, double *server_pct)
{
    double wall = (double)(b->wall_ns - a->wall_ns);
    if (wall <= 0)
        wall = 1;
    *self_pct = 100.0 * (double)(b->self_ns - a->self_ns) / wall;
    *server_pct = a->server_ns >= 0 && b->server_ns >= 0
                      ? 100.0 * (double)(b->server_ns - a->server_ns) / wall : -1;
}

double snap_other(const struct snap *a, const struct snap *b)
{
    double self, server, wall = (double)(b->wall_ns - a->wall_ns);
    snap_cpu(a, b, &self, &server);
    if (a->busy_ns < 0 || b->busy_ns < 0 || server < 0)
        return -1;
    double all = 100.0 * (double)(b->busy_ns - a->busy_ns) / (wall > 0 ? wall : 1);
    return all - self - server > 0 ? all - self - server : 0;
}

void kv_cpu(const struct snap *a, const struct snap *b)
{
    double self, server;
    snap_cpu(a, b, &self, &server);
    kv_f("gen_cpu_pct", self, 0);
    if (server >= 0)
        kv_f("server_cpu_pct", server, 0);
    else
        kv_str("server_cpu_pct", "-");
    double other = snap_other(a, b);
    if (other >= 0)
        kv_f("other_cpu_pct", other, 0);
    kv_u64("gen_saturated", self >= GEN_SATURATED_PCT);
}

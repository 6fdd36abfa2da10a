/* proc.c - /proc readers for server memory and CPU (see proc.h). */
#include "proc.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

long proc_rss_kib(pid_t pid)
{
    char path[64], line[256];
    long kib = -1;
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kib = strtol(line + 6, NULL, 10);
            break;
        }
    fclose(f);
    return kib;
}

int64_t proc_cpu_ns(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    if (!p)
        return -1;
    /* after ") ": state(3) ... utime(14) stime(15) */
    unsigned long long ut = 0, st = 0;
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    long hz = sysconf(_SC_CLK_TCK);
    return (int64_t)((ut + st) * (1000000000ull / (unsigned long long)(hz > 0 ? hz : 100)));
}

int64_t proc_busy_ns(void)
{
    unsigned long long v[8] = { 0 };
    FILE *f = fopen("/proc/stat", "r");
    if (!f)
        return -1;
    /* cpu user nice system idle iowait irq softirq steal */
    int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
                   &v[4], &v[5], &v[6], &v[7]);
    fclose(f);
    if (n != 8)
        return -1;
    long hz = sysconf(_SC_CLK_TCK);
    /* user + nice + system: process time. irq and softirq time is left out: the
     * kernel runs our own loopback traffic there when a CPU would otherwise idle. */
    unsigned long long busy = v[0] + v[1] + v[2];
    return (int64_t)(busy * (1000000000ull / (unsigned long long)(hz > 0 ? hz : 100)));
}

int64_t self_cpu_ns(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ((int64_t)ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000 +
           ((int64_t)ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000;
}

int64_t self_thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The inode of the socket listening on addr:port in /proc/net/tcp, or 0. */
static unsigned long listen_inode(uint32_t addr_be, int port)
{
    char line[512];
    unsigned long inode = 0;
    FILE *f = fopen("/proc/net/tcp", "r");
    if (!f)
        return 0;
    while (fgets(line, sizeof line, f)) {
        unsigned int a, p, st;
        unsigned long ino;
        /* sl local rem st tx:rx tr:when retrnsmt uid timeout inode */
        if (sscanf(line, " %*d: %x:%x %*x:%*x %x %*x:%*x %*x:%*x %*x %*u %*u %lu", &a, &p,
                   &st, &ino) != 4)
            continue;
        if (st == 0x0a && (int)p == port && (a == addr_be || a == 0)) {
            inode = ino;
            break;
        }
    }
    fclose(f);
    return inode;
}

static int holds_inode(const char *pid, const char *want)
{
    char dir[300], path[600], target[64];
    snprintf(dir, sizeof dir, "/proc/%s/fd", pid);
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    int found = 0;
    for (struct dirent *e; !found && (e = readdir(d));) {
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        ssize_t n = readlink(path, target, sizeof target - 1);
        if (n > 0) {
            target[n] = '\0';
            found = strcmp(target, want) == 0;
        }
    }
    closedir(d);
    return found;
}

pid_t proc_find_listener(uint32_t addr_be, int port)
{
    unsigned long inode = listen_inode(addr_be, port);
    char want[48];
    pid_t pid = 0;
    if (!inode)
        return 0;
    snprintf(want, sizeof want, "socket:[%lu]", inode);
    DIR *d = opendir("/proc");
    if (!d)
        return 0;
    for (struct dirent *e; !pid && (e = readdir(d));) {
        if (e->d_name[0] < '1' || e->d_name[0] > '9')
            continue;
        if (holds_inode(e->d_name, want))
            pid = (pid_t)atoi(e->d_name);
    }
    closedir(d);
    return pid;
}

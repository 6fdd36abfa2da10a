/* proc.h - what the generator reads about the server and itself from /proc and
 * getrusage: resident memory, CPU time, and the pid listening on a port. */
#ifndef MWB_PROC_H
#define MWB_PROC_H

#include <stdint.h>
#include <sys/types.h>

/* VmRSS of pid in KiB, or -1. */
long proc_rss_kib(pid_t pid);
/* user + system CPU time of pid (all threads) in ns, or -1. */
int64_t proc_cpu_ns(pid_t pid);
/* CPU time all CPUs spent running processes (user + nice + system), in ns, or -1. */
int64_t proc_busy_ns(void);
/* Our own user + system CPU time in ns. */
int64_t self_cpu_ns(void);
/* The calling thread's CPU time in ns (cheaper than getrusage). */
int64_t self_thread_cpu_ns(void);
/* The pid holding the IPv4 socket listening on addr:port (network order address),
 * or 0 when none is found (another user's process, or no such listener). */
pid_t proc_find_listener(uint32_t addr_be, int port);

#endif

/* Adaptive thread counts for a machine shared with other busy processes.
   Two threads whose partner is preempted wait at every barrier (spinning,
   with the CLI's idle spin count, for the core the partner needs), so one
   competing busy process can make a 2-thread run ten times slower than
   --threads 1 (docs/performance.md). So, where enabled, every forward first
   looks how many other tasks are runnable and leaves them their cores.

   The count is /proc/loadavg's instantaneous "running" field less this
   process's own running threads (its OpenMP workers may still be spinning
   after the last region), read with fixed buffers and raw getdents64, so
   the step loop allocates nothing. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include "core.h"

/* Threads of this process in state R ("pid (comm) R ..."; comm may hold
   spaces and parentheses, so the state follows the last ')'). */
static int own_running(void)
{
    int dir = open("/proc/self/task", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0) return -1;
    char ents[4096], path[64], stat[512];
    int running = 0;
    long n;
    while ((n = syscall(SYS_getdents64, dir, ents, sizeof ents)) > 0)
        for (long off = 0; off < n;) {
            unsigned short reclen;
            memcpy(&reclen, ents + off + 16, sizeof reclen);   /* d_ino, d_off, then d_reclen */
            const char *name = ents + off + 19;                 /* after d_type */
            off += reclen;
            if (name[0] < '0' || name[0] > '9') continue;
            snprintf(path, sizeof path, "/proc/self/task/%s/stat", name);
            if (me_read_small_file(path, stat, sizeof stat) < 0) continue;
            const char *close_paren = strrchr(stat, ')');
            running += close_paren && close_paren[1] == ' ' && close_paren[2] == 'R';
        }
    close(dir);
    return running;
}

int me_others_running(void)
{
    char buf[128];
    if (me_read_small_file("/proc/loadavg", buf, sizeof buf) < 0) return -1;
    const char *p = buf;
    for (int field = 0; field < 3 && p; field++) p = strchr(p, ' '), p = p ? p + 1 : NULL;
    int own = own_running();
    if (!p || own < 0) return -1;
    int others = atoi(p) - own;
    return others > 0 ? others : 0;
}

int me_adapt_step(me_adapt *s, int max, int cpus, int others, double now_ms)
{
    if (max <= 1 || others < 0) return s->cap = max > 1 ? max : 1;
    /* The free cores count, not our share of them: on a 64-core node whose
       other jobs run on 56 cores, 8 threads still find 8 free. */
    int free_cores = (cpus > 0 ? cpus : max) - others;
    int want = free_cores < 1 ? 1 : free_cores < max ? free_cores : max;
    if (s->cap <= 0 || s->cap > max || want < s->cap) {
        s->cap = want, s->calm = 0;   /* contention costs most: give way at once */
    } else if (want > s->cap) {
        /* Cores are taken back only when the looks have stayed calm for
           ADAPT_CALM_MS, so a process that comes and goes (a compiler, a
           test suite) does not flip the count back and forth. */
        if (!s->calm) s->calm = 1, s->calm_since = now_ms;
        else if (now_ms - s->calm_since >= ADAPT_CALM_MS) s->cap = want, s->calm = 0;
    } else {
        s->calm = 0;
    }
    s->checked = now_ms;
    return s->cap;
}

int me_adapt_threads(me_adapt *s)
{
    int max = me_threads_max();
    if (!me_threads_adaptive() || max <= 1) return max;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    double now = ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
    /* Forwards closer together than ADAPT_MS reuse the last decision. */
    if (s->cap > 0 && s->cap <= max && now - s->checked < ADAPT_MS) return s->cap;
    /* A busy look is taken again 200 µs later, and the fewer counted: a
       kernel thread or a shell that runs for microseconds is not a
       competitor (the second look costs only where the first saw one). */
    int others = me_others_running();
    if (others > 0) {
        nanosleep(&(struct timespec){0, 200000}, NULL);
        int again = me_others_running();
        others = again < others ? again : others;
    }
    return me_adapt_step(s, max, (int)sysconf(_SC_NPROCESSORS_ONLN), others, now);
}

/* OpenMP's waits, chosen before libgomp starts. libgomp reads its
   environment once, in its constructor, and by default spins ~300 000
   rounds before sleeping at every barrier: best on an idle machine, but
   where other busy processes share the cores the spinning thread takes the
   time its partner needs, and a run gets many times slower (measured in
   docs/performance.md). So, unless the user set OMP_WAIT_POLICY or
   GOMP_SPINCOUNT, moedit spins a bounded amount: briefly when other
   processes are running as it starts, longer when the machine is idle.

   The variable has to exist before libgomp's constructor runs, which is
   before main (and a .preinit_array setenv is undone when libc installs the
   original environment), so the process sets it and re-executes itself
   once (~1 ms). Programs embedding libmoedit choose their own policy. */
#include <fcntl.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include "cli/cli.h"

/* Spin rounds: idle ~ a few hundred µs, covering the gaps between parallel
   regions; busy ~ a few µs, about what the measured best (passive) does. */
#define SPIN_IDLE "30000"
#define SPIN_BUSY "300"
#define SAMPLES 5

/* Runnable tasks other than this one, from /proc/loadavg's "running/total"
   field; -1 when unreadable. */
static int others_running(void)
{
    char buf[128];
    int fd = open("/proc/loadavg", O_RDONLY);
    if (fd < 0) return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return -1;
    buf[n] = 0;
    int field = 0;
    for (char *p = buf; *p; p++)
        if (*p == ' ' && ++field == 3) return atoi(p + 1) - 1;
    return -1;
}

void cli_omp_defaults(char **argv)
{
    /* Where the waits spin long (the idle value below, libgomp's default,
       the user's), forwards leave other busy processes their cores
       (core/busy.c): load that comes after the start would otherwise meet
       the idle spin count. Read before the setenv below, so a failed
       re-execution keeps libgomp's default and stays adaptive. */
    moedit_set_adaptive_threads(1);
    if (getenv("OMP_WAIT_POLICY") || getenv("GOMP_SPINCOUNT")) return;
    /* Busy: another task ran in every sample (a transient one rarely does). */
    int busy = 1;
    for (int i = 0; i < SAMPLES && busy; i++) {
        if (others_running() < 1) busy = 0;
        else nanosleep(&(struct timespec){0, 200000}, NULL);
    }
    if (setenv("GOMP_SPINCOUNT", busy ? SPIN_BUSY : SPIN_IDLE, 0)) return;
    execv("/proc/self/exe", argv);   /* returns only on failure: run with libgomp's defaults */
}

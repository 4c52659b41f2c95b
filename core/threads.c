/* One thread count for OpenMP loops and OpenBLAS, so they never oversubscribe. */
#include <cblas.h>
#include <omp.h>
#include <stdlib.h>
#include <strings.h>
#include "core.h"

static int thread_count, adaptive;
/* Per calling thread: several host threads may each run their own model.
   The limit is an adaptive forward's decision; the cap, under it, is the
   caller's own bound for its thread (fid-sample's batch workers: one). */
static _Thread_local int thread_limit, thread_cap;

void moedit_set_threads(int threads)
{
    if (threads <= 0) {   /* the CPUs this process may run on, and its share of them */
        threads = omp_get_num_procs();
        int quota = me_cgroup_cpus();
        if (quota > 0 && quota < threads) threads = quota;
    }
    thread_count = threads;
    omp_set_num_threads(threads);
    openblas_set_num_threads(threads);
}

/* Whether libgomp's waits spin long: its default (300 000 rounds), an
   active policy, or a spin count above a few thousand rounds (the CLI's
   idle value, 30 000, included). Short spins sleep soon after a partner is
   preempted, so there every thread may keep its fair share of a crowded
   machine; long ones burn the partner's core (docs/performance.md). */
static int long_spins(void)
{
    const char *policy = getenv("OMP_WAIT_POLICY"), *count = getenv("GOMP_SPINCOUNT");
    if (count) return strncasecmp(count, "infinit", 7) == 0 || strtod(count, NULL) > 3000;
    return !policy || strcasecmp(policy, "passive") != 0;
}

void moedit_set_adaptive_threads(int on)
{
    adaptive = on && long_spins();
    thread_limit = 0;   /* a forward's last decision no longer holds here */
}

int me_threads_adaptive(void) { return adaptive; }

int me_threads_max(void)
{
    if (thread_count == 0) moedit_set_threads(0);
    return thread_count;
}

void me_threads_limit(int n) { thread_limit = n > 0 ? n : 0; }

void me_threads_cap(int n) { thread_cap = n > 0 ? n : 0; }

int me_threads(void)
{
    int max = me_threads_max(), n = thread_limit > 0 && thread_limit < max ? thread_limit : max;
    return thread_cap > 0 && thread_cap < n ? thread_cap : n;
}

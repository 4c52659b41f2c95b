/* Adaptive thread counts (core/busy.c): the decision gives cores away at
   once and takes them back only after calm looks ADAPT_CALM_MS apart, and
   the look at the machine sees a busy process that this one started, but
   not this process's own spinning threads. */
#include <criterion/criterion.h>
#include <omp.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "core/core.h"

Test(busy, gives_cores_away_at_once)
{
    me_adapt s = {0};
    cr_assert_eq(me_adapt_step(&s, 2, 2, 0, 0.0), 2);
    cr_assert_eq(me_adapt_step(&s, 2, 2, 1, 1.0), 1);
    cr_assert_eq(me_adapt_step(&s, 4, 4, 7, 2.0), 1, "never below one thread");
    cr_assert_eq(me_adapt_step(&s, 4, 4, 2, 3.0), 1, "more cores only after a calm period");
}

Test(busy, takes_cores_back_after_a_calm_period)
{
    me_adapt s = {0};
    cr_assert_eq(me_adapt_step(&s, 2, 2, 1, 0.0), 1);
    cr_assert_eq(me_adapt_step(&s, 2, 2, 0, 100.0), 1, "first calm look");
    cr_assert_eq(me_adapt_step(&s, 2, 2, 0, 100.0 + ADAPT_CALM_MS / 2), 1, "too soon after it");
    cr_assert_eq(me_adapt_step(&s, 2, 2, 0, 100.0 + ADAPT_CALM_MS), 2);
    /* a busy look in between starts the calm period again */
    cr_assert_eq(me_adapt_step(&s, 2, 2, 1, 400.0), 1);
    cr_assert_eq(me_adapt_step(&s, 2, 2, 0, 410.0), 1);
    cr_assert_eq(me_adapt_step(&s, 2, 2, 1, 415.0), 1);
    cr_assert_eq(me_adapt_step(&s, 2, 2, 0, 420.0), 1);
    cr_assert_eq(me_adapt_step(&s, 2, 2, 0, 420.0 + ADAPT_CALM_MS - 1), 1);
    cr_assert_eq(me_adapt_step(&s, 2, 2, 0, 420.0 + ADAPT_CALM_MS), 2);
}

Test(busy, counts_free_cores_on_a_bigger_machine)
{
    me_adapt s = {0};
    cr_assert_eq(me_adapt_step(&s, 8, 64, 56, 0.0), 8, "8 of 64 cores free: all 8 threads");
    cr_assert_eq(me_adapt_step(&s, 8, 64, 60, 1.0), 4, "4 free");
    cr_assert_eq(me_adapt_step(&s, 8, 64, 70, 2.0), 1, "overcommitted: one");
    me_adapt t = {0};
    cr_assert_eq(me_adapt_step(&t, 8, 0, 3, 0.0), 5, "cores unknown: taken as the thread count");
}

Test(busy, unknown_load_or_one_thread_keeps_the_count)
{
    me_adapt s = {0};
    cr_assert_eq(me_adapt_step(&s, 2, 2, -1, 0.0), 2);
    cr_assert_eq(me_adapt_step(&s, 1, 1, 3, 1.0), 1);
}

/* me_threads() as a second thread sees it. */
static int threads_elsewhere(void)
{
    int other = 0;
    #pragma omp parallel num_threads(2)
    if (omp_get_thread_num() == 1) other = me_threads();
    return other;
}

Test(busy, limit_caps_only_the_calling_thread)
{
    moedit_set_threads(4);
    me_threads_limit(1);
    cr_assert_eq(me_threads(), 1);
    cr_assert_eq(me_threads_max(), 4);
    cr_assert_eq(threads_elsewhere(), 4, "another thread keeps its own (no) cap");
    me_threads_limit(0);
    cr_assert_eq(me_threads(), 4);
    me_threads_limit(9);
    cr_assert_eq(me_threads(), 4, "a cap above the count changes nothing");
    me_threads_limit(0);
}

/* The caller's own cap holds under whatever limit a forward sets, on the
   calling thread only, and leaves the per-thread buffer count alone. */
Test(busy, own_cap_holds_under_a_forward_limit)
{
    moedit_set_threads(4);
    me_threads_cap(1);
    me_threads_limit(4);   /* what an adaptive forward on a quiet machine sets */
    cr_assert_eq(me_threads(), 1);
    cr_assert_eq(me_threads_max(), 4);
    cr_assert_eq(threads_elsewhere(), 4, "another thread keeps its own (no) cap");
    me_threads_cap(3);
    me_threads_limit(2);
    cr_assert_eq(me_threads(), 2, "the lower of the two");
    me_threads_cap(0);
    me_threads_limit(0);
    cr_assert_eq(me_threads(), 4);
}

/* The most others seen in `looks` looks 2 ms apart. */
static int most_others(int looks)
{
    int most = -1;
    for (int i = 0; i < looks; i++) {
        int o = me_others_running();
        most = o > most ? o : most;
        nanosleep(&(struct timespec){0, 2000000}, NULL);
    }
    return most;
}

Test(busy, sees_a_busy_process)
{
    cr_assert_geq(me_others_running(), 0, "/proc/loadavg readable on Linux");
    pid_t hog = fork();
    cr_assert_geq(hog, 0);
    if (hog == 0)
        for (;;) {}
    int seen = most_others(200);
    kill(hog, SIGKILL);
    waitpid(hog, NULL, 0);
    cr_assert_geq(seen, 1, "a spinning child is another runnable task");
}

/* Only long spins give threads away (each Test runs in its own process). */
Test(busy, adaptive_only_where_waits_spin_long)
{
    unsetenv("OMP_WAIT_POLICY");
    unsetenv("GOMP_SPINCOUNT");
    moedit_set_adaptive_threads(1);
    cr_assert(me_threads_adaptive(), "libgomp's default spins 300 000 rounds");
    setenv("GOMP_SPINCOUNT", "30000", 1);
    moedit_set_adaptive_threads(1);
    cr_assert(me_threads_adaptive());
    setenv("GOMP_SPINCOUNT", "300", 1);
    moedit_set_adaptive_threads(1);
    cr_assert_not(me_threads_adaptive(), "short spins keep every thread");
    setenv("GOMP_SPINCOUNT", "infinite", 1);
    moedit_set_adaptive_threads(1);
    cr_assert(me_threads_adaptive());
    unsetenv("GOMP_SPINCOUNT");
    setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
    moedit_set_adaptive_threads(1);
    cr_assert_not(me_threads_adaptive());
    unsetenv("OMP_WAIT_POLICY");
    moedit_set_adaptive_threads(0);
    cr_assert_not(me_threads_adaptive());
}

/* One thread count for OpenMP loops and OpenBLAS, so they never oversubscribe. */
#include <cblas.h>
#include <omp.h>
#include "core.h"

static int thread_count;

void moedit_set_threads(int threads)
{
    if (threads <= 0) threads = omp_get_num_procs();
    thread_count = threads;
    omp_set_num_threads(threads);
    openblas_set_num_threads(threads);
}

int me_threads(void)
{
    if (thread_count == 0) moedit_set_threads(0);
    return thread_count;
}

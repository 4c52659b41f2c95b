/* measure.h — the clock and the median the C benchmark tools share
   (tools/peak_drift.c, tools/cpu_pair.c). */
#ifndef MOEDIT_TOOLS_MEASURE_H
#define MOEDIT_TOOLS_MEASURE_H

#include <stdlib.h>
#include <string.h>
#include <time.h>

static inline double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static inline int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The median of v[n] (the upper one for even n), sorting a copy in scratch[n]. */
static inline double median(const double *v, int n, double *scratch)
{
    memcpy(scratch, v, sizeof *scratch * (size_t)n);
    qsort(scratch, (size_t)n, sizeof *scratch, by_value);
    return scratch[n / 2];
}

#endif

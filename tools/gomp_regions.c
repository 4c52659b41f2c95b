/* Counts and times OpenMP parallel regions per outlined function, for the
   profile in docs/performance.md ("Where the time goes"): an LD_PRELOAD
   shim around libgomp's GOMP_parallel and GOMP_barrier that prints, at
   exit, each region's count, how many of them opened inside another region
   (teams of one), the wall seconds of the top-level ones, and how long
   threads 0 and 1 spent in them outside the region's function (starting
   late or done early: waiting for the other), then the seconds each of the
   two waited at explicit barriers; and the region's address in its object
   (addr2line -f -e OBJECT ADDRESS names it):

     gcc -O2 -fopenmp -shared -fPIC -o /tmp/gomp_regions.so tools/gomp_regions.c -ldl
     LD_PRELOAD=/tmp/gomp_regions.so build/moedit bench --model M --batch 2 --iters 1
     LD_PRELOAD=/tmp/gomp_regions.so build/moedit bench --model M --batch 2 --iters 3

   The difference of the two runs over two forwards is one forward's count.
   A region that ran on one thread (an `if` clause) shows thread 1 idle for
   all of it: nothing waited there but the other core. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <omp.h>
#include <stdio.h>
#include <time.h>

#define SITES 256

static void *site[SITES];
static long calls[SITES], nested[SITES];
static double wall[SITES], busy[SITES][2], barrier_wait[2];
static int sites;

typedef void (*gomp_parallel_fn)(void (*)(void *), void *, unsigned, unsigned);

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

struct timed {
    void (*fn)(void *);
    void *data;
    int site;
};

static void run_timed(void *p)
{
    const struct timed *r = p;
    double t0 = now();
    r->fn(r->data);
    double t = now() - t0;
    int me = omp_get_thread_num();
    if (me < 2) {
        #pragma omp atomic
        busy[r->site][me] += t;
    }
}

void GOMP_parallel(void (*fn)(void *), void *data, unsigned threads, unsigned flags)
{
    static gomp_parallel_fn real;
    if (!real) real = (gomp_parallel_fn)dlsym(RTLD_NEXT, "GOMP_parallel");
    int inside = omp_in_parallel(), i = 0;
    #pragma omp critical(gomp_regions)
    {
        while (i < sites && site[i] != (void *)fn) i++;
        if (i == sites && sites < SITES) site[sites++] = (void *)fn;
        if (i < SITES) calls[i]++, nested[i] += inside;
    }
    if (inside || i == SITES) {
        real(fn, data, threads, flags);
        return;
    }
    struct timed r = {fn, data, i};
    double t0 = now();
    real(run_timed, &r, threads, flags);
    wall[i] += now() - t0;
}

void GOMP_barrier(void)
{
    static void (*real)(void);
    if (!real) real = (void (*)(void))dlsym(RTLD_NEXT, "GOMP_barrier");
    double t0 = now();
    real();
    double t = now() - t0;
    int me = omp_get_thread_num();
    if (me < 2) {
        #pragma omp atomic
        barrier_wait[me] += t;
    }
}

__attribute__((destructor)) static void report(void)
{
    fprintf(stderr, "%10s %10s %9s %9s %9s  address object\n", "regions", "nested", "wall s", "idle 0", "idle 1");
    for (int i = 0; i < sites; i++) {
        Dl_info d;
        if (!dladdr(site[i], &d)) continue;
        fprintf(stderr, "%10ld %10ld %9.3f %9.3f %9.3f  0x%lx %s\n", calls[i], nested[i], wall[i],
                wall[i] - busy[i][0], wall[i] - busy[i][1], (unsigned long)((char *)site[i] - (char *)d.dli_fbase),
                d.dli_fname);
    }
    fprintf(stderr, "explicit barriers: thread 0 waited %.3f s, thread 1 %.3f s\n", barrier_wait[0], barrier_wait[1]);
}

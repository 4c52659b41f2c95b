/* Counts OpenMP parallel regions per outlined function, for the profile in
   docs/performance.md ("Where the time goes"): an LD_PRELOAD shim around
   libgomp's GOMP_parallel that prints, at exit, each region's count, how
   many of them opened inside another region (teams of one), and its
   address in its object (addr2line -f -e OBJECT ADDRESS names it):

     gcc -O2 -fopenmp -shared -fPIC -o /tmp/gomp_regions.so tools/gomp_regions.c -ldl
     LD_PRELOAD=/tmp/gomp_regions.so build/moedit bench --model M --batch 2 --iters 1
     LD_PRELOAD=/tmp/gomp_regions.so build/moedit bench --model M --batch 2 --iters 3

   The difference of the two runs over two forwards is one forward's count. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <omp.h>
#include <stdio.h>

#define SITES 256

static void *site[SITES];
static long calls[SITES], nested[SITES];
static int sites;

typedef void (*gomp_parallel_fn)(void (*)(void *), void *, unsigned, unsigned);

void GOMP_parallel(void (*fn)(void *), void *data, unsigned threads, unsigned flags)
{
    static gomp_parallel_fn real;
    if (!real) real = (gomp_parallel_fn)dlsym(RTLD_NEXT, "GOMP_parallel");
    int inside = omp_in_parallel();
    #pragma omp critical(gomp_regions)
    {
        int i = 0;
        while (i < sites && site[i] != (void *)fn) i++;
        if (i == sites && sites < SITES) site[sites++] = (void *)fn;
        if (i < SITES) calls[i]++, nested[i] += inside;
    }
    real(fn, data, threads, flags);
}

__attribute__((destructor)) static void report(void)
{
    fprintf(stderr, "%10s %10s  address object\n", "regions", "nested");
    for (int i = 0; i < sites; i++) {
        Dl_info d;
        if (!dladdr(site[i], &d)) continue;
        fprintf(stderr, "%10ld %10ld  0x%lx %s\n", calls[i], nested[i],
                (unsigned long)((char *)site[i] - (char *)d.dli_fbase), d.dli_fname);
    }
}

/* cpu_pair — how far apart two CPUs are, for docs/performance.md and
   scripts/bench.sh (section 0): a VM's two vCPUs may sit on cores that
   share an L3 or on cores a fabric hop apart, and each may reach memory
   at its own speed. moedit's threads hand activations to each other at
   every parallel region (one writes rows, the next region's other thread
   reads them) and each streams its share of the weights from memory, so
   both distances show up in how far two threads fall short of twice one.

     build/cpu_pair [CPU_A CPU_B]   (default: the first two CPUs it may run on)

   Prints, the first three the median of 15 rounds:
     round_trip_ns        one cache line passed from A to B and back (a
                          flag each side waits for, then sets);
     handoff_a/b_gbps     a 768 KB buffer (an S/2 CFG pair's 512 × 384
                          activations) written by one CPU, then read by
                          the other (A reading B's, B reading A's);
     own_a/b_gbps         the same buffer read by the CPU that wrote it;
     memory_a/b_gbps      a 256 MB buffer read by each CPU after writing
                          it itself, best of three. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include "tools/measure.h"

#define ROUND_TRIPS 20000
#define ROUNDS 15
#define ROUND_SECONDS 0.2
#define HANDOFF_BYTES ((size_t)512 * 384 * sizeof(float))
#define MEMORY_BYTES ((size_t)256 << 20)

static int pin(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

/* Eight independent sums, so the loads, not an add chain, set the rate. */
static uint64_t read_all(const uint64_t *p, size_t bytes)
{
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0;
    for (size_t i = 0; i + 8 <= bytes / 8; i += 8) {
        s0 += p[i], s1 += p[i + 1], s2 += p[i + 2], s3 += p[i + 3];
        s4 += p[i + 4], s5 += p[i + 5], s6 += p[i + 6], s7 += p[i + 7];
    }
    return s0 + s1 + s2 + s3 + s4 + s5 + s6 + s7;
}

static void write_all(uint64_t *p, size_t bytes, uint64_t v)
{
    for (size_t i = 0; i < bytes / 8; i++) p[i] = v + i;
}

/* The partner thread: answers the main thread's requests on its CPU.
   step odd: the main thread's turn is done, the partner acts and sets
   step + 1. The step and the task share one cache line, so a round trip
   moves one line each way. */
enum { PING, WRITE, STOP };
static struct {
    _Alignas(64) atomic_long step;
    atomic_int task;
} line;
static uint64_t *shared;
static int partner_cpu;

static void *partner(void *arg)
{
    (void)arg;
    pin(partner_cpu);   /* main() checked that both CPUs are this process's */
    atomic_store(&line.step, 0);
    for (long s = 1;; s += 2) {
        while (atomic_load_explicit(&line.step, memory_order_acquire) != s) {}
        int t = atomic_load_explicit(&line.task, memory_order_relaxed);
        if (t == WRITE) write_all(shared, HANDOFF_BYTES, (uint64_t)s);
        atomic_store_explicit(&line.step, s + 1, memory_order_release);
        if (t == STOP) return NULL;
    }
}

/* Hands the partner one task and waits until it is done. */
static long next_step = 1;
static void partner_do(int t)
{
    atomic_store_explicit(&line.task, t, memory_order_relaxed);
    atomic_store_explicit(&line.step, next_step, memory_order_release);
    while (atomic_load_explicit(&line.step, memory_order_acquire) != next_step + 1) {}
    next_step += 2;
}

/* Runs on `me` with the partner on `other`: round trips, the handoff
   from `other` to `me`, and within `me`. */
static int measure_pair(int me, int other, double *round_ns, double *to_me, double *own)
{
    pthread_t th;
    partner_cpu = other;
    atomic_store(&line.step, -1);
    if (pin(me) != 0 || pthread_create(&th, NULL, partner, NULL) != 0) return 0;
    while (atomic_load(&line.step) != 0) {}
    next_step = 1;
    volatile uint64_t sink = 0;
    double trips[ROUNDS], in[ROUNDS], mine[ROUNDS];
    for (int r = 0; r < ROUNDS; r++) {
        /* at most ROUND_SECONDS a round: beside a busy process each trip
           can wait for a time slice */
        double t0 = now_s();
        int done = 0;
        while (done < ROUND_TRIPS && now_s() - t0 < ROUND_SECONDS)
            for (int i = 0; i < 256; i++, done++) partner_do(PING);
        trips[r] = (now_s() - t0) / done * 1e9;

        partner_do(WRITE);
        t0 = now_s();
        sink += read_all(shared, HANDOFF_BYTES);
        in[r] = HANDOFF_BYTES / (now_s() - t0) / 1e9;

        write_all(shared, HANDOFF_BYTES, (uint64_t)r);
        t0 = now_s();
        sink += read_all(shared, HANDOFF_BYTES);
        mine[r] = HANDOFF_BYTES / (now_s() - t0) / 1e9;
    }
    partner_do(STOP);
    pthread_join(th, NULL);
    (void)sink;
    double sorted[ROUNDS];
    *round_ns = median(trips, ROUNDS, sorted), *to_me = median(in, ROUNDS, sorted), *own = median(mine, ROUNDS, sorted);
    return 1;
}

/* Memory read rate on `cpu` over a buffer it has just written. */
static double memory_gbps(int cpu, uint64_t *buf)
{
    if (pin(cpu) != 0) return 0;
    write_all(buf, MEMORY_BYTES, (uint64_t)cpu);
    double best = 0;
    volatile uint64_t sink = 0;
    for (int r = 0; r < 3; r++) {
        double t0 = now_s();
        sink += read_all(buf, MEMORY_BYTES);
        double g = MEMORY_BYTES / (now_s() - t0) / 1e9;
        if (g > best) best = g;
    }
    (void)sink;
    return best;
}

int main(int argc, char **argv)
{
    cpu_set_t allowed;
    if (sched_getaffinity(0, sizeof allowed, &allowed) != 0) CPU_ZERO(&allowed);
    int a = -1, b = -1;
    if (argc == 3) {
        char *e1, *e2;
        a = (int)strtol(argv[1], &e1, 10), b = (int)strtol(argv[2], &e2, 10);
        if (*e1 || *e2 || a < 0 || b < 0 || a == b) {
            fprintf(stderr, "cpu_pair: two different CPU numbers expected\n");
            return 2;
        }
    } else if (argc == 1) {   /* the first two this process may run on */
        for (int c = 0; c < CPU_SETSIZE && b < 0; c++)
            if (CPU_ISSET(c, &allowed)) *(a < 0 ? &a : &b) = c;
        if (b < 0) {
            fprintf(stderr, "cpu_pair: this process may run on one CPU only\n");
            return 2;
        }
    } else {
        fprintf(stderr, "usage: cpu_pair [CPU_A CPU_B]\n");
        return 2;
    }
    if (a >= CPU_SETSIZE || b >= CPU_SETSIZE || !CPU_ISSET(a, &allowed) || !CPU_ISSET(b, &allowed)) {
        fprintf(stderr, "cpu_pair: CPUs %d and %d are not both available to this process\n", a, b);
        return 2;
    }
    shared = aligned_alloc(64, HANDOFF_BYTES);
    uint64_t *big = aligned_alloc(64, MEMORY_BYTES);
    if (!shared || !big) {
        fprintf(stderr, "cpu_pair: out of memory\n");
        return 2;
    }
    write_all(shared, HANDOFF_BYTES, 1);
    double trip_ab, in_a, own_a, trip_ba, in_b, own_b;
    if (!measure_pair(a, b, &trip_ab, &in_a, &own_a) || !measure_pair(b, a, &trip_ba, &in_b, &own_b)) {
        fprintf(stderr, "cpu_pair: could not run a thread on each of CPUs %d and %d\n", a, b);
        return 2;
    }
    double mem_a = memory_gbps(a, big), mem_b = memory_gbps(b, big);
    printf("cpu_a: %d\ncpu_b: %d\n", a, b);
    printf("round_trip_ns: %.0f\n", (trip_ab + trip_ba) / 2);
    printf("handoff_a_gbps: %.1f (A reads what B wrote)\nhandoff_b_gbps: %.1f (B reads what A wrote)\n", in_a, in_b);
    printf("own_a_gbps: %.1f (A reads what it wrote)\nown_b_gbps: %.1f\n", own_a, own_b);
    printf("memory_a_gbps: %.1f\nmemory_b_gbps: %.1f\n", mem_a, mem_b);
    free(shared);
    free(big);
    return 0;
}

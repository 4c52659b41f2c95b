/* Batch invariance of sampling with the native RNG (what fid-sample uses):
   each row has its own noise stream, MoE routing has no capacity limit, and
   no kernel may round a row differently because of the rows beside it. So a
   sample drawn alone, in a batch of 7 or in a batch of 64 (other rows, other
   positions, guided batches of 14 and 128 model rows) and with 1 or 2
   threads must be the same to the last bit, for DiT, DiT-MoE and Switch-DiT
   — also while another thread samples another model with PyTorch's RNG.
   ctest runs this file again on the OpenBLAS path (_openblas), where the
   invariance comes from the models' switch (ops/gemm.h), not the kernels. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "sampler/sampler.h"

enum { BIG = 64 };

typedef struct {
    moedit_model *m;
    moedit_sample_options o;
    size_t row;   /* floats per latent */
} runner;

static void open_model(runner *r, const char *file)
{
    char path[512];
    snprintf(path, sizeof path, "%s/dit/%s", FIXTURES, file);
    cr_assert_eq(moedit_model_load(path, &(moedit_load_options){.heads = 2}, &r->m), MOEDIT_OK, "%s",
                 moedit_last_error());
    moedit_sample_defaults(r->m, &r->o);
    r->o.rng = MOEDIT_RNG_NATIVE;
    r->o.steps = "6";
    r->o.cfg = 2.5f;   /* guided: the model sees twice the rows */
    r->o.seed = 16;
    const moedit_config *c = moedit_model_config(r->m);
    r->row = (size_t)c->in_channels * c->input_size * c->input_size;
}

/* Samples rows first..first+n-1 of the global sequence (label i % 10, seed
   stream of row i) as one batch into out. */
static void sample_rows(runner *r, int first, int n, float *out)
{
    int64_t labels[BIG];
    uint64_t seeds[BIG];
    for (int i = 0; i < n; i++) {
        labels[i] = (first + i) % 10;
        seeds[i] = me_native_row_seed(r->o.seed, (uint64_t)(first + i));
    }
    r->o.row_seeds = seeds;
    cr_assert_eq(moedit_sample(r->m, &r->o, n, labels, out), MOEDIT_OK, "%s", moedit_last_error());
}

static void check_family(const char *file, moedit_family family)
{
    runner r;
    open_model(&r, file);
    cr_assert_eq(moedit_model_config(r.m)->family, family);
    float *big = malloc(sizeof(float) * BIG * r.row), *small = malloc(sizeof(float) * BIG * r.row);
    cr_assert(big && small);
    moedit_set_threads(2);
    sample_rows(&r, 0, BIG, big);
    /* rows drawn alone, from the start, the middle and the end of the batch */
    static const int alone[] = {0, 1, 13, 40, 63};
    for (size_t k = 0; k < sizeof alone / sizeof alone[0]; k++) {
        int i = alone[k];
        sample_rows(&r, i, 1, small);
        cr_assert(!memcmp(small, big + (size_t)i * r.row, sizeof(float) * r.row),
                  "%s: row %d alone differs from row %d of a batch of %d", file, i, i, BIG);
    }
    /* batches of 7 at offsets that put every row at another batch position */
    for (int first = 0; first + 7 <= BIG; first += 19) {
        sample_rows(&r, first, 7, small);
        for (int i = 0; i < 7; i++)
            cr_assert(!memcmp(small + (size_t)i * r.row, big + (size_t)(first + i) * r.row, sizeof(float) * r.row),
                      "%s: row %d in a batch of 7 differs from the batch of %d", file, first + i, BIG);
    }
    /* the thread count changes the work split, not the rounding */
    moedit_set_threads(1);
    sample_rows(&r, 0, BIG, small);
    for (int i = 0; i < BIG; i++)
        cr_assert(!memcmp(small + (size_t)i * r.row, big + (size_t)i * r.row, sizeof(float) * r.row),
                  "%s: row %d differs between 1 and 2 threads", file, i);
    moedit_set_threads(0);
    free(big);
    free(small);
    moedit_model_free(r.m);
}

Test(batch_invariance, dit) { check_family("dit.pt", MOEDIT_FAMILY_DIT); }
Test(batch_invariance, dit_moe) { check_family("moe_top2.pt", MOEDIT_FAMILY_DIT_MOE); }
Test(batch_invariance, switch_dit) { check_family("switch_dmoe.pt", MOEDIT_FAMILY_SWITCH_DIT); }

/* Another model sampled with PyTorch's RNG, over and over, until stop. */
typedef struct {
    runner r;
    atomic_int stop;
    int runs, failed;
} torch_rng_sampler;

static void *sample_until_stopped(void *arg)
{
    torch_rng_sampler *b = arg;
    int64_t labels[1] = {4};
    float *out = malloc(sizeof(float) * b->r.row);
    while (out && !atomic_load(&b->stop)) {
        b->failed |= moedit_sample(b->r.m, &b->r.o, 1, labels, out) != MOEDIT_OK;
        b->runs++;
    }
    b->failed |= out == NULL;
    free(out);
    return NULL;
}

/* The switch once was one process-wide flag, saved and restored around each
   moedit_sample: a PyTorch-RNG sampler in another thread that started
   between two native-RNG runs (and saved "off") restored "off" in the
   middle of the next one. The pauses between runs here leave the other
   thread, whose runs are short, time to start there; with that flag this
   test failed every time. */
Test(batch_invariance, beside_a_torch_rng_sampler_in_another_thread)
{
    runner a;
    torch_rng_sampler b = {.runs = 0, .failed = 0};
    atomic_init(&b.stop, 0);
    open_model(&a, "moe_top2.pt");
    open_model(&b.r, "moe_top2.pt");
    b.r.o.rng = MOEDIT_RNG_TORCH;
    b.r.o.steps = "1";
    moedit_set_threads(1);
    float *batch = malloc(sizeof(float) * 7 * a.row), *alone = malloc(sizeof(float) * a.row);
    cr_assert(batch && alone);
    pthread_t other;
    cr_assert_eq(pthread_create(&other, NULL, sample_until_stopped, &b), 0);
    int mismatch = -1;
    const struct timespec pause = {0, 2000000};
    for (int round = 0; round < 12 && mismatch < 0; round++) {
        nanosleep(&pause, NULL);
        sample_rows(&a, 7 * round, 7, batch);
        for (int i = 0; i < 7 && mismatch < 0; i++) {
            nanosleep(&pause, NULL);
            sample_rows(&a, 7 * round + i, 1, alone);
            if (memcmp(alone, batch + (size_t)i * a.row, sizeof(float) * a.row)) mismatch = 7 * round + i;
        }
    }
    atomic_store(&b.stop, 1);
    pthread_join(other, NULL);
    moedit_set_threads(0);
    cr_assert_eq(mismatch, -1, "row %d alone differs from the batch of 7 while another thread samples", mismatch);
    cr_assert_not(b.failed, "the other thread's moedit_sample failed");
    cr_assert_gt(b.runs, 0, "the other thread never sampled alongside");
    free(batch);
    free(alone);
    moedit_model_free(a.m);
    moedit_model_free(b.r.m);
}

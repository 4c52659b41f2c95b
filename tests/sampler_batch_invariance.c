/* Batch invariance of sampling with the native RNG (what fid-sample uses):
   each row has its own noise stream, MoE routing has no capacity limit, and
   no kernel may round a row differently because of the rows beside it. So a
   sample drawn alone, in a batch of 7 or in a batch of 64 (other rows, other
   positions, guided batches of 14 and 128 model rows) and with 1 or 2
   threads must be the same to the last bit, for DiT, DiT-MoE and Switch-DiT. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

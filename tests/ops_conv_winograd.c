/* op_winograd_run (ops/conv_winograd.c) against torch (the conv3x3,
   conv3x3up and conv3x3wino fixtures of tools/make_vae_fixtures.py:
   several lane groups on a block row, heights that are no multiple of 4,
   two images, a ×2 nearest upsampling first) and, at the decoder's channel
   counts, against op_conv2d (im2col + sgemm, checked against torch in
   tests/ops_conv.c): in chunks a thread runs alone and in chunks all
   threads share, over several K blocks, upsampled or not, narrow images'
   block rows two to a lane group. Its results do
   not depend on the thread count nor on the other images of the batch.
   Skipped where only OpenBLAS runs; ctest runs it again on the AVX2
   kernels (ops_conv_winograd_avx2), the emulated build on AVX-512's. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/core.h"
#include "moedit.h"
#include "ops/conv.h"
#include "ops/conv_winograd.h"
#include "tests/testutil.h"

/* Winograd's transforms against a direct sum in float32: F(4×4, 3×3)
   differed from the direct convolution by up to 1.4e-5 of max |ref| on
   random layers of 128–512 channels (7e-6 in the 128 → 96 case here,
   9e-7 in conv3x3); the direct convolution's tests hold 1e-5. */
#define TOL 4e-5

static float *counter(const char *key, size_t n, float scale)
{
    float *v = malloc(n * sizeof *v);
    uint64_t k = tu_fnv1a64(key);
    for (size_t i = 0; i < n; i++) v[i] = tu_counter_uniform(k, i) * scale;
    return v;
}

typedef struct {
    op_conv_shape s;
    op_winograd c;
    void *mem;
    float *scratch;
} layer;

static void layer_init(layer *L, int cin, int cout, int up, const float *wt, const float *b)
{
    L->s = (op_conv_shape){cin, cout, 3, 3, 1, 1, 1, up};
    cr_assert(op_winograd_ok(&L->s));
    L->mem = me_alloc_aligned(op_winograd_bytes(&L->s));
    L->scratch = me_alloc_aligned(op_winograd_scratch(&L->s) * sizeof(float));
    cr_assert(L->mem && L->scratch);
    op_winograd_init(&L->c, &L->s, wt, b, L->mem);
}

static void layer_free(layer *L)
{
    me_free_aligned(L->mem);
    me_free_aligned(L->scratch);
}

static void skip_without_tiles(void)
{
    op_conv_shape s = {8, 8, 3, 3, 1, 1, 1, 0};
    if (!op_winograd_ok(&s)) cr_skip_test("no own float32 tiles on this CPU");
}

static void expect_close(const char *what, const float *got, const float *want, size_t n)
{
    double maxref, maxerr = tu_max_error(got, want, n, &maxref);
    cr_assert(maxerr <= TOL * maxref, "%s: max error %g vs max |ref| %g", what, maxerr, maxref);
}

/* A torch fixture case (inputs keyed "x", "w" × 0.3, "b" as tests/ops_conv.c's;
   up: a ×2 nearest upsampling first); res_act: also a residual and ReLU. */
static void torch_case(const char *name, int n, int cin, int h, int w, int cout, int up, int res_act)
{
    size_t out_n = (size_t)n * cout * h * w * (up ? 4 : 1);
    float *x = counter("x", (size_t)n * cin * h * w, 1.0f), *wt = counter("w", (size_t)cout * cin * 9, 0.3f);
    float *b = counter("b", cout, 1.0f), *res = res_act ? counter("res", out_n, 2.0f) : NULL;
    char path[512];
    snprintf(path, sizeof path, "%s/vae/%s.f32", FIXTURES, name);
    float *want = tu_read_exact(path, out_n * sizeof(float)), *y = malloc(out_n * sizeof *y);
    if (res_act)
        for (size_t i = 0; i < out_n; i++) want[i] = want[i] + res[i] > 0 ? want[i] + res[i] : 0.0f;
    layer L;
    layer_init(&L, cin, cout, up, wt, b);
    op_winograd_run(&L.c, n, h, w, x, y, res, res_act ? OP_ACT_RELU : OP_ACT_NONE, L.scratch);
    char what[96];
    snprintf(what, sizeof what, "%s%s", name, res_act ? " + residual, ReLU" : "");
    expect_close(what, y, want, out_n);
    layer_free(&L);
    free(x); free(wt); free(b); free(res); free(want); free(y);
}

Test(winograd, against_torch)
{
    skip_without_tiles();
    torch_case("conv3x3", 2, 5, 9, 7, 6, 0, 0);
    torch_case("conv3x3up", 2, 6, 5, 4, 3, 1, 0);
    torch_case("conv3x3wino", 2, 7, 10, 70, 9, 0, 0);
    torch_case("conv3x3wino", 2, 7, 10, 70, 9, 0, 1);
}

/* n images of cin × h × w through a cin → cout layer (up: upsampled ×2
   first), against op_conv2d image by image; returns the output (the
   caller frees it). */
static float *im2col_case(int n, int cin, int h, int w, int cout, int up)
{
    op_conv_shape s = {cin, cout, 3, 3, 1, 1, 1, up};
    size_t one = (size_t)cout * h * w * (up ? 4 : 1);
    float *x = counter("wx", (size_t)n * cin * h * w, 1.0f), *wt = counter("ww", (size_t)cout * cin * 9, 0.05f);
    float *b = counter("wb", cout, 1.0f), *y = malloc(n * one * sizeof *y), *want = malloc(one * sizeof *want);
    float *ref_scratch = malloc(op_conv2d_scratch(&s, h, w) * sizeof *ref_scratch + 4);
    layer L;
    layer_init(&L, cin, cout, up, wt, b);
    op_winograd_run(&L.c, n, h, w, x, y, NULL, OP_ACT_NONE, L.scratch);
    for (int i = 0; i < n; i++) {
        op_conv2d(&s, 1, h, w, x + (size_t)i * cin * h * w, wt, b, want, ref_scratch);
        char what[96];
        snprintf(what, sizeof what, "%d → %d at %d×%d%s, image %d of %d", cin, cout, h, w, up ? " ×2" : "", i, n);
        expect_close(what, y + i * one, want, one);
    }
    layer_free(&L);
    free(x); free(wt); free(b); free(want); free(ref_scratch);
    return y;
}

Test(winograd, decoder_channels_against_im2col)
{
    skip_without_tiles();
    free(im2col_case(2, 128, 20, 150, 96, 0));   /* 15 panels: chunks of one thread each */
    free(im2col_case(1, 520, 12, 12, 70, 0));    /* 2 panels: one chunk all threads share; 2 K blocks */
    free(im2col_case(1, 96, 11, 37, 64, 1));     /* upsampled: 22 × 74, lane 15 past a 16-column vector */
    free(im2col_case(2, 72, 17, 32, 80, 0));     /* 8 blocks a row: two block rows a group on AVX-512, th odd */
}

/* The same layer on one thread and on all, and each image alone against
   the batch: the same bits (each output's sums are the same whoever runs
   them and whatever lanes run beside them). */
Test(winograd, threads_and_batch_keep_the_bits)
{
    skip_without_tiles();
    int n = 2, cin = 96, cout = 80, h = 13, w = 150;
    size_t in1 = (size_t)cin * h * w, one = (size_t)cout * h * w;
    float *x = counter("bx", n * in1, 1.0f), *wt = counter("bw", (size_t)cout * cin * 9, 0.05f);
    float *res = counter("br", n * one, 1.0f), *all = malloc(n * one * sizeof *all);
    float *again = malloc(n * one * sizeof *again), *alone = malloc(one * sizeof *alone);
    moedit_set_threads(2);   /* before the scratch is sized: it is per thread */
    layer L;
    layer_init(&L, cin, cout, 0, wt, NULL);
    op_winograd_run(&L.c, n, h, w, x, all, res, OP_ACT_RELU, L.scratch);
    me_threads_limit(1);
    op_winograd_run(&L.c, n, h, w, x, again, res, OP_ACT_RELU, L.scratch);
    me_threads_limit(0);
    cr_assert_eq(memcmp(all, again, n * one * sizeof *all), 0, "one thread changed the result");
    for (int i = 0; i < n; i++) {
        op_winograd_run(&L.c, 1, h, w, x + i * in1, alone, res + i * one, OP_ACT_RELU, L.scratch);
        cr_assert_eq(memcmp(all + i * one, alone, one * sizeof *alone), 0, "image %d alone differs from the batch", i);
    }
    layer_free(&L);
    free(x); free(wt); free(res); free(all); free(again); free(alone);
}

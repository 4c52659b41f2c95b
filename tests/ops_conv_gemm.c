/* op_conv_run (the packed implicit-GEMM convolution, ops/conv_gemm.c)
   against torch.nn.functional.conv2d (the fixtures of tests/ops_conv.c,
   tools/make_vae_fixtures.py), and on shapes too large for fixtures —
   several K blocks, channel panels, output chunks and batch images per
   panel — against op_conv2d (im2col + sgemm, itself checked against torch
   in tests/ops_conv.c). Under MOEDIT_NO_AVX2=1 op_conv_run is op_conv2d. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/core.h"
#include "core/cpu.h"
#include "moedit.h"
#include "ops/conv.h"
#include "tests/testutil.h"

static float *counter(const char *key, size_t n, float scale)
{
    float *v = malloc(n * sizeof *v);
    uint64_t k = tu_fnv1a64(key);
    for (size_t i = 0; i < n; i++) v[i] = tu_counter_uniform(k, i) * scale;
    return v;
}

static void expect_close(const char *what, const float *got, const float *want, size_t n, double rel)
{
    double maxref, maxerr = tu_max_error(got, want, n, &maxref);
    cr_assert(maxerr <= rel * maxref, "%s: max error %g vs max |ref| %g", what, maxerr, maxref);
}

/* y of op_conv_run with weights packed as bf16 says. */
static float *run(const op_conv_shape *s, int bf16, int n, int h, int w, const float *x, const float *wt,
                  const float *b, const float *res, int act, size_t out_n)
{
    op_conv c;
    size_t bytes = op_conv_bytes(s, bf16);
    void *mem = me_alloc_aligned(bytes ? bytes : 64);
    op_conv_init(&c, s, wt, b, bf16, mem);
    size_t sn = op_conv_scratch(s, h, w);
    float *scratch = malloc((sn ? sn : 1) * sizeof *scratch);
    /* aligned as the models' arenas are: whole rows of a large y are then streamed */
    float *y = aligned_alloc(64, (out_n * sizeof *y + 63) / 64 * 64);
    for (size_t i = 0; i < out_n; i++) y[i] = NAN;   /* every element must be written */
    op_conv_run(&c, n, h, w, x, y, res, act, scratch);
    free(scratch);
    me_free_aligned(mem);
    return y;
}

static void fixture_case(const char *name, int n, int cin, int h, int w, int cout, int kh, int kw, int stride,
                         int ph, int pw, int up, int bias)
{
    op_conv_shape s = {cin, cout, kh, kw, stride, ph, pw, up};
    int oh = op_conv2d_out(up ? 2 * h : h, kh, stride, ph), ow = op_conv2d_out(up ? 2 * w : w, kw, stride, pw);
    size_t out_n = (size_t)n * cout * oh * ow;
    float *x = counter("x", (size_t)n * cin * h * w, 1.0f);
    float *wt = counter("w", (size_t)cout * cin * kh * kw, 0.3f);
    float *b = bias ? counter("b", cout, 1.0f) : NULL;
    float *y = run(&s, 0, n, h, w, x, wt, b, NULL, OP_ACT_NONE, out_n);
    char path[512];
    snprintf(path, sizeof path, "%s/vae/%s.f32", FIXTURES, name);
    float *want = tu_read_exact(path, out_n * sizeof(float));
    expect_close(name, y, want, out_n, 1e-5);
    free(x); free(wt); free(b); free(y); free(want);
}

Test(conv_gemm, shapes_against_torch)
{
    fixture_case("conv3x3", 2, 5, 9, 7, 6, 3, 3, 1, 1, 1, 0, 1);
    fixture_case("conv1x1", 2, 7, 5, 6, 3, 1, 1, 1, 0, 0, 0, 1);
    fixture_case("conv1x7", 1, 4, 6, 11, 5, 1, 7, 1, 0, 3, 0, 1);
    fixture_case("conv7x1", 1, 4, 11, 6, 5, 7, 1, 1, 3, 0, 0, 0);
    fixture_case("conv3x3s2", 2, 3, 13, 10, 4, 3, 3, 2, 0, 0, 0, 1);
    fixture_case("conv3x3s2p1", 1, 3, 9, 8, 4, 3, 3, 2, 1, 1, 0, 1);
    fixture_case("conv3x3up", 2, 6, 5, 4, 3, 3, 3, 1, 1, 1, 1, 1);
    fixture_case("conv5x5wide", 1, 64, 12, 300, 2, 5, 5, 1, 2, 2, 0, 1);
}

/* op_conv_run (plain, ReLU, + residual and ReLU) against op_conv2d on one shape. */
static void large_case(int n, int cin, int h, int w, int cout, int k, int stride, int pad, int up)
{
    op_conv_shape s = {cin, cout, k, k, stride, pad, pad, up};
    int oh = op_conv2d_out(up ? 2 * h : h, k, stride, pad), ow = op_conv2d_out(up ? 2 * w : w, k, stride, pad);
    size_t out_n = (size_t)n * cout * oh * ow;
    float *x = counter("lx", (size_t)n * cin * h * w, 1.0f), *wt = counter("lw", (size_t)cout * cin * k * k, 0.1f);
    float *b = counter("lb", cout, 1.0f), *res = counter("lr", out_n, 2.0f);
    float *want = malloc(out_n * sizeof *want), *scratch = malloc(op_conv2d_scratch(&s, h, w) * sizeof *scratch + 4);
    op_conv2d(&s, n, h, w, x, wt, b, want, scratch);
    char what[96];
    snprintf(what, sizeof what, "%d×%d×%d×%d → %d, %d×%d/%d up %d", n, cin, h, w, cout, k, k, stride, up);
    float *y = run(&s, 0, n, h, w, x, wt, b, NULL, OP_ACT_NONE, out_n);
    expect_close(what, y, want, out_n, 1e-5);
    free(y);
    float *relu = calloc(out_n, sizeof *relu);   /* ReLU alone: the folded layers' vector stores */
    for (size_t i = 0; i < out_n; i++) relu[i] = want[i] > 0 ? want[i] : 0;
    y = run(&s, 0, n, h, w, x, wt, b, NULL, OP_ACT_RELU, out_n);
    expect_close(what, y, relu, out_n, 1e-5);
    free(y);
    free(relu);
    for (size_t i = 0; i < out_n; i++) {
        want[i] += res[i];
        want[i] = want[i] > 0 ? want[i] : 0;
    }
    y = run(&s, 0, n, h, w, x, wt, b, res, OP_ACT_RELU, out_n);
    expect_close(what, y, want, out_n, 1e-5);
    free(x); free(wt); free(b); free(res); free(want); free(scratch); free(y);
}

Test(conv_gemm, large_shapes_against_im2col)
{
    large_case(1, 96, 17, 19, 70, 3, 1, 1, 0);    /* K 864: several K blocks; 12 channel panels */
    large_case(3, 40, 8, 8, 33, 3, 1, 1, 0);      /* 8×8 planes: panels of two rows, across images */
    large_case(2, 24, 9, 13, 29, 3, 2, 0, 0);     /* stride 2, odd sizes */
    large_case(2, 20, 11, 37, 9, 3, 2, 1, 0);     /* stride 2, 19-wide rows: vector groups, tails, padding both sides */
    large_case(1, 3, 9, 70, 8, 3, 2, 0, 0);       /* stride 2, 34-wide rows: whole 32-lane segments */
    large_case(3, 100, 9, 9, 20, 3, 2, 1, 0);     /* stride 2, K 900 in blocks from mid-channel, panels across images */
    large_case(3, 20, 9, 11, 13, 3, 1, 0, 0);     /* unpadded 3×3: flat grid, columns dropped, across images */
    large_case(1, 96, 19, 15, 40, 5, 1, 0, 0);    /* unpadded 5×5, K 2400: the same over several K blocks */
    large_case(1, 32, 12, 10, 20, 3, 1, 1, 1);    /* ×2 upsampling: four 2×2 convolutions, one per output parity */
    large_case(1, 24, 6, 24, 20, 3, 1, 1, 1);     /* the same, 48-wide rows: whole-row panels beside split ones */
    large_case(2, 80, 7, 9, 30, 3, 1, 1, 1);      /* the same, K 320 (two blocks), panels across rows and images */
    large_case(2, 16, 5, 16, 9, 5, 1, 2, 1);      /* 5×5, pad 2, 32-wide rows (one panel each), two images */
    large_case(1, 300, 6, 7, 700, 1, 1, 0, 0);    /* 1×1; output chunks smaller than the plane */
    large_case(1, 8, 64, 70, 2100, 1, 1, 0, 0);   /* more channels than one output block holds */
    large_case(2, 64, 32, 32, 20, 3, 1, 1, 0);   /* 4 KB planes: packed channel by channel, K blocks from mid-channel */
    large_case(1, 8, 256, 256, 64, 3, 1, 1, 0);  /* a 16 MB output, beyond the threads' L2s: whole rows streamed */
    large_case(1, 8, 128, 128, 64, 3, 1, 1, 1);  /* the same folded: parity pairs' rows streamed */
    large_case(1, 48, 256, 128, 8, 3, 1, 1, 0);   /* 128 KB planes, K 432: a packed block in two passes */
}

/* A NaN in the input stays NaN through bias and ReLU in every store path —
   the scalar rows, a large output's streamed rows, a folded layer's
   paired parities — so a broken input is never hidden as a zero:
   every output channel at the NaN's pixel (its 3×3 window's centre, or
   for the ×2 upsampling the 2×2 block it becomes) is NaN. */
Test(conv_gemm, nan_survives_relu)
{
    static const int shapes[][5] = {
        /* cin, h, w, cout, up */
        {16, 9, 13, 20, 0},
        {8, 256, 256, 64, 0},   /* 16 MB out: streamed */
        {16, 12, 10, 20, 1},
    };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        const int *d = shapes[i];
        op_conv_shape s = {d[0], d[3], 3, 3, 1, 1, 1, d[4]};
        int up = d[4] ? 2 : 1, oh = d[1] * up, ow = d[2] * up, y0 = d[1] / 2, x0 = d[2] / 2;
        size_t plane = (size_t)oh * ow, out_n = (size_t)d[3] * plane;
        float *x = counter("nx", (size_t)d[0] * d[1] * d[2], 1.0f), *wt = counter("nw", (size_t)d[3] * d[0] * 9, 0.1f);
        float *b = counter("nb", d[3], 1.0f);
        x[(size_t)1 * d[1] * d[2] + (size_t)y0 * d[2] + x0] = NAN;   /* channel 1 */
        float *y = run(&s, 0, 1, d[1], d[2], x, wt, b, NULL, OP_ACT_RELU, out_n);
        for (int c = 0; c < d[3]; c++)
            for (int py = 0; py < up; py++)
                for (int px = 0; px < up; px++)
                    cr_assert(isnan(y[c * plane + (size_t)(y0 * up + py) * ow + x0 * up + px]),
                              "shape %zu: channel %d at the NaN's pixel is %g", i, c,
                              y[c * plane + (size_t)(y0 * up + py) * ow + x0 * up + px]);
        free(x); free(wt); free(b); free(y);
    }
}

/* The threads claim pixel panels as they go (ops/conv_gemm.c, claim): how
   many there are, and so which thread computes a panel, must not change a
   bit of the output — plain, folded (four parity jobs in one queue), with
   residual and ReLU. */
Test(conv_gemm, same_bits_for_any_thread_count)
{
    static const int shapes[][9] = {
        /* n, cin, h, w, cout, k, stride, pad, up */
        {1, 96, 17, 19, 70, 3, 1, 1, 0},
        {2, 80, 7, 9, 30, 3, 1, 1, 1},
        {1, 32, 40, 40, 20, 3, 1, 1, 1},
    };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        const int *d = shapes[i];
        op_conv_shape s = {d[1], d[4], d[5], d[5], d[6], d[7], d[7], d[8]};
        int oh = op_conv2d_out(d[8] ? 2 * d[2] : d[2], d[5], d[6], d[7]);
        int ow = op_conv2d_out(d[8] ? 2 * d[3] : d[3], d[5], d[6], d[7]);
        size_t out_n = (size_t)d[0] * d[4] * oh * ow;
        float *x = counter("tx", (size_t)d[0] * d[1] * d[2] * d[3], 1.0f);
        float *wt = counter("tw", (size_t)d[4] * d[1] * d[5] * d[5], 0.1f), *b = counter("tb", d[4], 1.0f);
        float *res = counter("tr", out_n, 2.0f), *one = NULL;
        for (int threads = 1; threads <= 3; threads++) {
            moedit_set_threads(threads);
            float *y = run(&s, 0, d[0], d[2], d[3], x, wt, b, res, OP_ACT_RELU, out_n);
            if (!one) {
                one = y;
                continue;
            }
            cr_assert_eq(memcmp(y, one, out_n * sizeof *y), 0, "shape %zu: %d threads differ from one", i, threads);
            free(y);
        }
        moedit_set_threads(0);
        free(x); free(wt); free(b); free(res); free(one);
    }
}

/* bf16: every weight and input rounded to bfloat16, float32 sums. The
   error against float32 is then that of 8-bit mantissas: |Δy| ≤ Σ|w||x|·2⁻⁸
   (both factors off by ≤ 2⁻⁹ relative), and it must not be zero. On CPUs
   with AMX the products run on AMX tiles (channels in blocks of 32, K
   padded to 32): the shapes have channel counts and K (432, 900, 64 per
   parity) that are not multiples of 32, several K blocks, panels across
   images and a folded ×2 upsampling. */
static void bf16_case(op_conv_shape s, int n, int h, int w)
{
    int up = s.upsample2x ? 2 : 1;
    int oh = op_conv2d_out(h * up, s.kh, 1, s.pad_h), ow = op_conv2d_out(w * up, s.kw, 1, s.pad_w);
    size_t out_n = (size_t)n * s.cout * oh * ow, k = (size_t)s.cin * s.kh * s.kw, xn = (size_t)n * s.cin * h * w;
    float *x = counter("bx", xn, 1.0f), *wt = counter("bw", s.cout * k, 0.1f);
    float *y32 = run(&s, 0, n, h, w, x, wt, NULL, NULL, OP_ACT_NONE, out_n);
    float *y16 = run(&s, 1, n, h, w, x, wt, NULL, NULL, OP_ACT_NONE, out_n);
    /* Σ|w||x| ≤ k · max|w| · max|x| */
    double bound = (double)k * 0.1 * 1.0 * (1.0 / 256), maxd = 0;
    for (size_t i = 0; i < out_n; i++) maxd = fmax(maxd, fabs((double)y16[i] - y32[i]));
    cr_assert(maxd > 0, "bf16 gives the float32 result: the rounding is not applied");
    cr_assert(maxd <= bound, "bf16 error %g above the bound %g", maxd, bound);
    /* the same numerics: op_conv2d (im2col + sgemm) of pre-rounded operands,
       up to summation order (a folded layer rounds its sums of taps instead) */
    if (s.upsample2x) {
        free(x), free(wt), free(y32), free(y16);
        return;
    }
    for (size_t i = 0; i < xn; i++) x[i] = me_bf16_to_f32(me_f32_to_bf16(x[i]));
    for (size_t i = 0; i < s.cout * k; i++) wt[i] = me_bf16_to_f32(me_f32_to_bf16(wt[i]));
    float *yr = malloc(out_n * sizeof *yr), *scratch = malloc(op_conv2d_scratch(&s, h, w) * sizeof *scratch + 4);
    op_conv2d(&s, n, h, w, x, wt, NULL, yr, scratch);
    expect_close("bf16 vs float32 of rounded operands", y16, yr, out_n, 1e-5);
    free(x); free(wt); free(y32); free(y16); free(yr); free(scratch);
}

Test(conv_gemm, bf16_rounds_weights_and_image)
{
    if (!op_conv_bf16_ok()) {
        cr_log_info("no own kernels (OpenBLAS): bf16 convolutions are refused here");
        return;
    }
    op_conv_shape s = {48, 20, 3, 3, 1, 1, 1, 0};
    op_conv c;
    float *zeros = calloc((size_t)20 * 48 * 9, sizeof *zeros);
    void *mem = me_alloc_aligned(op_conv_bytes(&s, 1));
    op_conv_init(&c, &s, zeros, NULL, 1, mem);
    me_free_aligned(mem);
    free(zeros);
    int amx = me_cpu_bf16() && me_cpu_amx();
    cr_assert_eq(c.amx, amx, "AMX tiles %s where the CPU %s them", c.amx ? "used" : "not used", amx ? "has" : "lacks");
    bf16_case(s, 2, 11, 9);
    bf16_case((op_conv_shape){100, 70, 3, 3, 1, 1, 1, 0}, 1, 13, 10);
    bf16_case((op_conv_shape){16, 40, 3, 3, 1, 1, 1, 1}, 2, 7, 6);
    bf16_case((op_conv_shape){8, 64, 3, 3, 1, 1, 1, 0}, 1, 256, 256);   /* 16 MB output: streamed rows */
    bf16_case((op_conv_shape){64, 8, 3, 3, 1, 1, 1, 0}, 1, 256, 128);   /* 128 KB planes, K 576: two passes */
}

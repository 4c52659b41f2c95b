/* op_conv2d / op_groupnorm / op_upsample2x against torch.nn.functional
   (fixtures from tools/make_vae_fixtures.py). Inputs are the name-keyed
   splitmix64 counter values of tools/vae_reference.py, so only outputs are
   stored. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/core.h"
#include "ops/ops.h"
#include "tests/testutil.h"

static float *counter(const char *key, size_t n, float scale)
{
    float *v = malloc(n * sizeof *v);
    uint64_t k = tu_fnv1a64(key);
    for (size_t i = 0; i < n; i++) v[i] = tu_counter_uniform(k, i) * scale;
    return v;
}

static float *load_raw(const char *name, size_t n)
{
    char path[512];
    snprintf(path, sizeof path, "%s/vae/%s", FIXTURES, name);
    return tu_read_exact(path, n * sizeof(float));
}

static void expect_close(const char *what, const float *got, const float *want, size_t n, double rel)
{
    double maxref, maxerr = tu_max_error(got, want, n, &maxref);
    cr_assert(maxerr <= rel * maxref, "%s: max error %g vs max |ref| %g", what, maxerr, maxref);
}

static void conv_case(const char *name, int n, int cin, int h, int w, int cout, int kh, int kw,
                      int stride, int ph, int pw, int up, int bias)
{
    op_conv_shape s = {cin, cout, kh, kw, stride, ph, pw, up};
    int oh = op_conv2d_out(up ? 2 * h : h, kh, stride, ph), ow = op_conv2d_out(up ? 2 * w : w, kw, stride, pw);
    size_t out_n = (size_t)n * cout * oh * ow;
    float *x = counter("x", (size_t)n * cin * h * w, 1.0f);
    float *wt = counter("w", (size_t)cout * cin * kh * kw, 0.3f);
    float *b = bias ? counter("b", cout, 1.0f) : NULL;
    size_t sn = op_conv2d_scratch(&s, h, w);
    float *scratch = malloc((sn ? sn : 1) * sizeof *scratch);
    float *y = malloc(out_n * sizeof *y);
    op_conv2d(&s, n, h, w, x, wt, b, y, scratch);
    char file[64];
    snprintf(file, sizeof file, "%s.f32", name);
    float *want = load_raw(file, out_n);
    expect_close(name, y, want, out_n, 1e-5);
    free(x); free(wt); free(b); free(scratch); free(y); free(want);
}

Test(conv, shapes_against_torch)
{
    conv_case("conv3x3", 2, 5, 9, 7, 6, 3, 3, 1, 1, 1, 0, 1);
    conv_case("conv1x1", 2, 7, 5, 6, 3, 1, 1, 1, 0, 0, 0, 1);
    conv_case("conv1x7", 1, 4, 6, 11, 5, 1, 7, 1, 0, 3, 0, 1);
    conv_case("conv7x1", 1, 4, 11, 6, 5, 7, 1, 1, 3, 0, 0, 0);
    conv_case("conv3x3s2", 2, 3, 13, 10, 4, 3, 3, 2, 0, 0, 0, 1);
    conv_case("conv3x3s2p1", 1, 3, 9, 8, 4, 3, 3, 2, 1, 1, 0, 1);
    conv_case("conv3x3up", 2, 6, 5, 4, 3, 3, 3, 1, 1, 1, 1, 1);
    conv_case("conv5x5wide", 1, 64, 12, 300, 2, 5, 5, 1, 2, 2, 0, 1);
}

Test(conv, scratch_is_bounded)
{
    /* 256 channels at 256×256 would unfold to 600 MB at once. */
    op_conv_shape s = {256, 256, 3, 3, 1, 1, 1, 1};
    cr_assert_leq(op_conv2d_scratch(&s, 128, 128) * sizeof(float), (size_t)9 << 20);
    op_conv_shape p = {256, 128, 1, 1, 1, 0, 0, 0};
    cr_assert_eq(op_conv2d_scratch(&p, 256, 256), 0);
    cr_assert_eq(op_conv2d_out(299, 3, 2, 0), 149);
}

Test(groupnorm, affine_and_silu)
{
    size_t n = 2 * 12 * 7 * 5;
    float *x = counter("x", n, 3.0f), *g = counter("g", 12, 1.0f), *b = counter("b", 12, 1.0f);
    for (size_t i = 0; i < n; i++) x[i] += 2.0f;
    for (int i = 0; i < 12; i++) g[i] += 1.0f;
    float *y = malloc(n * sizeof *y);
    float *want = load_raw("gn.f32", n);
    op_groupnorm(2, 12, 35, 4, x, g, b, 1e-6f, 0, y);
    expect_close("groupnorm", y, want, n, 1e-5);
    free(want);
    want = load_raw("gn_silu.f32", n);
    op_groupnorm(2, 12, 35, 4, x, g, b, 1e-6f, 1, x);   /* in place */
    expect_close("groupnorm+silu", x, want, n, 1e-5);
    free(x); free(g); free(b); free(y); free(want);
}

Test(upsample, nearest2x)
{
    float *x = counter("x", 2 * 3 * 4 * 5, 1.0f), *y = malloc(2 * 3 * 8 * 10 * sizeof *y);
    float *want = load_raw("up.f32", 2 * 3 * 8 * 10);
    op_upsample2x(2, 3, 4, 5, x, y);
    cr_assert_eq(memcmp(y, want, 2 * 3 * 8 * 10 * sizeof *y), 0);
    free(x); free(y); free(want);
}

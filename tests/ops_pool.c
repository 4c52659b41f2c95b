/* op_maxpool2d / op_avgpool2d (count_include_pad=False) / op_global_avgpool /
   op_resize_bilinear against torch.nn.functional (fixture from
   tools/make_fid_fixtures.py: pool_cases.f32, raw float32 arrays in order). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include "ops/ops.h"

enum { N = 2, C = 3, H = 7, W = 9 };

static float *cases;   /* the whole fixture */
static size_t cases_len;

static void load(void)
{
    char path[512];
    snprintf(path, sizeof path, "%s/fid/pool_cases.f32", FIXTURES);
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "missing fixture %s", path);
    fseek(f, 0, SEEK_END);
    cases_len = (size_t)ftell(f) / sizeof(float);
    fseek(f, 0, SEEK_SET);
    cases = malloc(cases_len * sizeof *cases);
    cr_assert_eq(fread(cases, sizeof *cases, cases_len, f), cases_len);
    fclose(f);
}

static void unload(void) { free(cases); }

/* Offset of case k: x, max_k3s2, max_k3s1p1, avg_k3s1p1, avg_k3s2p1, gavg,
   resize 13×5, 4×20, 61×47. */
static const float *at(int k)
{
    static const size_t sizes[] = {N * C * H * W, N * C * 3 * 4, N * C * H * W, N * C * H * W,
                                   N * C * 4 * 5, N * C, N * C * 13 * 5, N * C * 4 * 20, N * C * 61 * 47};
    size_t off = 0;
    for (int i = 0; i < k; i++) off += sizes[i];
    cr_assert(off + sizes[k] <= cases_len, "fixture too short");
    return cases + off;
}

static void expect(const char *what, const float *got, const float *want, size_t n, double tol)
{
    double err = 0;
    for (size_t i = 0; i < n; i++) err = fmax(err, fabs(got[i] - want[i]));
    cr_assert(err <= tol, "%s: max abs error %g", what, err);
}

TestSuite(ops_pool, .init = load, .fini = unload);

Test(ops_pool, max_pool)
{
    float y[N * C * H * W];
    cr_assert_eq(op_conv2d_out(H, 3, 2, 0), 3);
    op_maxpool2d(N, C, H, W, 3, 2, 0, at(0), y);
    expect("max k3 s2", y, at(1), N * C * 3 * 4, 0);
    op_maxpool2d(N, C, H, W, 3, 1, 1, at(0), y);
    expect("max k3 s1 p1", y, at(2), N * C * H * W, 0);
}

Test(ops_pool, avg_pool_excludes_padding)
{
    float y[N * C * H * W];
    op_avgpool2d(N, C, H, W, 3, 1, 1, at(0), y);
    expect("avg k3 s1 p1", y, at(3), N * C * H * W, 1e-6);
    op_avgpool2d(N, C, H, W, 3, 2, 1, at(0), y);
    expect("avg k3 s2 p1", y, at(4), N * C * 4 * 5, 1e-6);
    op_global_avgpool(N, C, H * W, at(0), y);
    expect("adaptive avg 1x1", y, at(5), N * C, 1e-6);
}

Test(ops_pool, bilinear_resize)
{
    float *y = malloc(sizeof(float) * N * C * 61 * 47);
    op_resize_bilinear(N, C, H, W, 13, 5, at(0), y);
    /* a few float32 ulps: PyTorch groups the weighted sum differently */
    expect("resize 13x5", y, at(6), N * C * 13 * 5, 4e-6);
    op_resize_bilinear(N, C, H, W, 4, 20, at(0), y);
    expect("resize 4x20", y, at(7), N * C * 4 * 20, 4e-6);
    op_resize_bilinear(N, C, H, W, 61, 47, at(0), y);
    expect("resize 61x47", y, at(8), N * C * 61 * 47, 4e-6);
    /* same size: the identity, exactly */
    op_resize_bilinear(N, C, H, W, H, W, at(0), y);
    expect("resize identity", y, at(0), N * C * H * W, 0);
    free(y);
}

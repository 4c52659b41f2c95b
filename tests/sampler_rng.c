/* The torch-compatible generator against values torch.randn produced
   (tools/make_sampler_fixtures.py), and the native generator's contract. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include "sampler/sampler.h"
#include "weights/npy.h"
#include "tests/testutil.h"

static float *load(const char *name, int64_t *numel)
{
    char path[512];
    snprintf(path, sizeof path, "%s/sampler/%s.npy", FIXTURES, name);
    return tu_npy_f32(path, NULL, NULL, numel);
}

/* torch's AVX2 log/sin/cos are polynomials: about an ulp from libm */
static void assert_close(const float *got, const float *want, size_t n, const char *what)
{
    for (size_t i = 0; i < n; i++)
        cr_assert(fabsf(got[i] - want[i]) <= 1e-6f * fmaxf(1.0f, fabsf(want[i])),
                  "%s[%zu]: %.9g vs torch %.9g", what, i, got[i], want[i]);
}

Test(rng, torch_randn_sizes)
{
    static const int seeds[] = {0, 1234, 2024};
    static const int sizes[] = {1, 7, 15, 16, 17, 31, 1000};
    float buf[1000];
    for (int s = 0; s < 3; s++) {
        char name[32];
        snprintf(name, sizeof name, "rng_s%d", seeds[s]);
        int64_t numel;
        float *want = load(name, &numel), *w = want;
        for (int k = 0; k < 7; k++) {
            me_torch_rng r;
            me_torch_rng_seed(&r, (uint64_t)seeds[s]);
            me_torch_randn(&r, buf, (size_t)sizes[k]);
            char what[64];
            snprintf(what, sizeof what, "seed %d size %d", seeds[s], sizes[k]);
            assert_close(buf, w, (size_t)sizes[k], what);
            w += sizes[k];
        }
        cr_assert_eq(w - want, numel);
        free(want);
    }
}

/* the second Box–Muller value of the small-size path is cached across calls,
   and a large draw in between leaves it alone */
Test(rng, torch_randn_sequence)
{
    int64_t numel;
    float *want = load("rng_seq", &numel);
    static const int sizes[] = {3, 1, 20, 5, 6};
    float buf[64], *p = buf;
    me_torch_rng r;
    me_torch_rng_seed(&r, 42);
    for (int k = 0; k < 5; k++) {
        me_torch_randn(&r, p, (size_t)sizes[k]);
        p += sizes[k];
    }
    cr_assert_eq(p - buf, numel);
    assert_close(buf, want, (size_t)numel, "sequence");
    free(want);
}

Test(rng, mt19937_reference_value)
{
    /* the 10000th output of mt19937 with the default seed 5489 (C++11 std) */
    me_torch_rng r;
    me_torch_rng_seed(&r, 5489);
    uint32_t v = 0;
    for (int i = 0; i < 10000; i++) v = me_torch_rng_u32(&r);
    cr_assert_eq(v, 4123659995u);
}

Test(rng, native_is_per_draw_and_prefix_stable)
{
    float a[37], b[9], c[37];
    me_native_randn(99, 3, a, 37);
    me_native_randn(99, 3, b, 9);
    for (int i = 0; i < 9; i++) cr_assert_eq(a[i], b[i]);
    me_native_randn(99, 4, c, 37);
    int same = 0;
    double sum = 0, sq = 0;
    for (int i = 0; i < 37; i++) {
        same += a[i] == c[i];
        cr_assert(isfinite(a[i]));
    }
    cr_assert_eq(same, 0);
    static float big[100000];
    me_native_randn(me_native_row_seed(1, 0), 0, big, 100000);
    for (int i = 0; i < 100000; i++) {
        sum += big[i];
        sq += (double)big[i] * big[i];
    }
    cr_assert(fabs(sum / 1e5) < 0.02 && fabs(sq / 1e5 - 1) < 0.02, "mean %g var %g", sum / 1e5, sq / 1e5);
    cr_assert_neq(me_native_row_seed(1, 0), me_native_row_seed(1, 1));
    cr_assert_neq(me_native_row_seed(1, 0), me_native_row_seed(2, 0));
}

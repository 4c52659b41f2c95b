/* The vector loops (SiLU, tanh-GELU, exp) against the scalar formulas of
   ops/fastmath.h applied element by element: equal bit for bit (lengths
   around the 8- and 16-lane edges, masked tails that write nothing past
   n, the clamps at ±87/88, huge and tiny inputs), exp(x − m)'s sum within
   float rounding, and the scalar exp against libm. ctest runs it on each
   kernel path (on the scalar one the vector functions are the formulas
   themselves: dit_forward_openblas holds them to PyTorch there). */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>
#include "ops/fastmath.h"
#include "ops/vexp.h"

static void inputs(int n, float *x, float *u)
{
    unsigned s = 12345;
    for (int i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = ((s >> 8) / 16777216.0f - 0.5f) * 40.0f;
        u[i] = ((s >> 4) % 1000) / 500.0f - 1.0f;
    }
    float edge[] = {-87.0f, 88.0f, -200.0f, 200.0f, 1e30f, -1e30f, 0.0f, -0.0f, 1e-30f};
    for (int i = 0; i < (int)(sizeof edge / sizeof *edge) && i < n; i++) x[i * 3 % n] = edge[i];
}

Test(vexp, silu_matches_scalar_bit_for_bit)
{
    static const int lens[] = {1, 7, 8, 9, 31, 100, 1027};
    for (int li = 0; li < 7; li++) {
        int n = lens[li];
        float x[1028], u[1028], y[1028], yu[1028];
        inputs(n, x, u);
        y[n] = yu[n] = 7.0f;   /* a masked tail must not write past n */
        me_silu_vec((size_t)n, x, NULL, y);
        me_silu_vec((size_t)n, x, u, yu);
        cr_assert(y[n] == 7.0f && yu[n] == 7.0f, "n %d: wrote past the end", n);
        for (int i = 0; i < n; i++) {
            float want = me_silu_fused(x[i]);
            cr_assert(memcmp(&y[i], &want, 4) == 0, "n %d: silu(%g) = %.9g, want %.9g", n, x[i], y[i], want);
            want = want * u[i];
            cr_assert(memcmp(&yu[i], &want, 4) == 0, "n %d: silu(%g)·u = %.9g, want %.9g", n, x[i], yu[i], want);
        }
        me_silu_vec((size_t)n, x, u, x);   /* in place, as SwiGLU calls it */
        cr_assert(memcmp(x, yu, (size_t)n * 4) == 0, "n %d: in place differs", n);
    }
}

Test(vexp, gelu_tanh_matches_scalar_bit_for_bit)
{
    static const int lens[] = {1, 7, 8, 9, 31, 100, 1027};
    for (int li = 0; li < 7; li++) {
        int n = lens[li];
        float x[1028], u[1028], y[1028];
        inputs(n, x, u);
        y[n] = 7.0f;   /* a masked tail must not write past n */
        me_gelu_tanh_vec((size_t)n, x, y);
        cr_assert(y[n] == 7.0f, "n %d: wrote past the end", n);
        for (int i = 0; i < n; i++) {
            float want = me_gelu_tanh_fused(x[i]);
            cr_assert(memcmp(&y[i], &want, 4) == 0, "n %d: gelu(%g) = %.9g, want %.9g", n, x[i], y[i], want);
        }
        me_gelu_tanh_vec((size_t)n, x, x);   /* in place, as the MLP calls it */
        cr_assert(memcmp(x, y, (size_t)n * 4) == 0, "n %d: in place differs", n);
    }
}

/* GroupNorm's fused pass: silu(x·scale + shift) equals the two float32
   steps and me_expf_fused bit for bit, with and without streaming stores,
   from an aligned and a misaligned destination, tails included. */
Test(vexp, silu_affine_matches_two_steps_bit_for_bit)
{
    static const int lens[] = {1, 15, 16, 17, 64, 100, 1027};
    _Alignas(64) float x[1040], u[1040], y[1040];
    for (int li = 0; li < 7; li++)
        for (int stream = 0; stream < 2; stream++)
            for (int off = 0; off < 2; off++) {
                int n = lens[li];
                inputs(n, x, u);
                float scale = 0.75f, shift = -0.3f;
                float *dst = y + off;
                dst[n] = 7.0f;
                me_silu_affine_vec((size_t)n, x, scale, shift, dst, stream);
                cr_assert(dst[n] == 7.0f, "n %d: wrote past the end", n);
                for (int i = 0; i < n; i++) {
                    float v = x[i] * scale;
                    v = v + shift;
                    float want = v / (1.0f + me_expf_fused(-v));
                    cr_assert(memcmp(&dst[i], &want, 4) == 0, "n %d stream %d offset %d: silu(%g·%g + %g) = %.9g, want %.9g",
                              n, stream, off, x[i], scale, shift, dst[i], want);
                }
            }
}

/* The exp against libm's in double: within the accuracy fastmath.h
   promises (measured at 1.0 ulp at most). */
Test(vexp, exp_within_an_ulp_and_a_half_of_libm)
{
    double worst = 0;
    for (int i = 0; i <= 200000; i++) {
        float x = -87.0f + 175.0f * (float)i / 200000.0f;
        double want = exp((double)x);
        double ulps = fabs(me_expf_fused(x) - want) / (nextafterf((float)want, INFINITY) - (float)want);
        if (ulps > worst) worst = ulps;
    }
    cr_assert(worst <= 1.5, "worst error: me_expf_fused %.2f ulp", worst);
}

Test(vexp, exp_sub_sum_matches_scalar)
{
    for (int n = 1; n < 70; n += 5) {
        float x[70], u[70], y[70];
        inputs(n, x, u);
        memcpy(y, x, sizeof x);
        float m = 3.0f;
        float sum = me_exp_sub_sum(n, y, m);
        double want = 0;
        for (int i = 0; i < n; i++) {
            float e = me_expf_fused(x[i] - m);
            cr_assert(memcmp(&y[i], &e, 4) == 0, "n %d: exp(%g - m) = %.9g, want %.9g", n, x[i], y[i], e);
            want += e;
        }
        cr_assert(fabs(sum - want) <= 1e-6 * want, "n %d: sum %.9g, want %.9g", n, sum, want);
    }
}

/* Down the columns: every element exp(x − its column's maximum) as
   me_expf_fused gives it, every sum the row-order sum, bit for bit (so
   attention does not change with the kernel set). */
Test(vexp, exp_columns_match_scalar_bit_for_bit)
{
    static const int row_counts[] = {1, 2, 3, 67};
    for (int ri = 0; ri < 4; ri++) {
        int rows = row_counts[ri];
        float x[67 * 32], u[67 * 32], y[67 * 32], sums[32];
        inputs(rows * 32, x, u);
        for (int i = 0; i < rows * 32; i++) x[i] = fmaxf(-80.0f, fminf(80.0f, x[i]));   /* finite maxima */
        memcpy(y, x, sizeof(float) * rows * 32);
        me_exp_columns32(rows, y, sums);
        for (int j = 0; j < 32; j++) {
            float mx = x[j], sum = 0.0f;
            for (int r = 1; r < rows; r++) mx = fmaxf(mx, x[r * 32 + j]);
            for (int r = 0; r < rows; r++) {
                float e = me_expf_fused(x[r * 32 + j] - mx);
                cr_assert(memcmp(&y[r * 32 + j], &e, 4) == 0, "rows %d (%d, %d): %.9g, want %.9g", rows, r, j,
                          y[r * 32 + j], e);
                sum += e;
            }
            cr_assert(memcmp(&sums[j], &sum, 4) == 0, "rows %d column %d: sum %.9g, want %.9g", rows, j, sums[j], sum);
        }
    }
}

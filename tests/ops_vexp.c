/* The vector exponential loops against me_expf applied element by element:
   equal bit for bit (lengths around the 8-lane edge, the clamps at ±87/88,
   huge and tiny inputs), and exp(x − m)'s sum within float rounding. */
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
        float x[1027], u[1027], y[1027], yu[1027];
        inputs(n, x, u);
        me_silu_vec((size_t)n, x, NULL, y);
        me_silu_vec((size_t)n, x, u, yu);
        for (int i = 0; i < n; i++) {
            float want = x[i] / (1.0f + me_expf(-x[i]));
            cr_assert(memcmp(&y[i], &want, 4) == 0, "n %d: silu(%g) = %.9g, want %.9g", n, x[i], y[i], want);
            want = want * u[i];
            cr_assert(memcmp(&yu[i], &want, 4) == 0, "n %d: silu(%g)·u = %.9g, want %.9g", n, x[i], yu[i], want);
        }
        me_silu_vec((size_t)n, x, u, x);   /* in place, as SwiGLU calls it */
        cr_assert(memcmp(x, yu, (size_t)n * 4) == 0, "n %d: in place differs", n);
    }
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
            float e = me_expf(x[i] - m);
            cr_assert(memcmp(&y[i], &e, 4) == 0, "n %d: exp(%g - m) = %.9g, want %.9g", n, x[i], y[i], e);
            want += e;
        }
        cr_assert(fabs(sum - want) <= 1e-6 * want, "n %d: sum %.9g, want %.9g", n, sum, want);
    }
}

/* Linear, LayerNorm, SiLU and GELU against values PyTorch 1.13 computed for
   the same deterministic inputs (inputs are sin() sequences rebuilt here). */
#include <criterion/criterion.h>
#include <math.h>
#include "ops/ops.h"

static void seq(float *v, int n, double a, double b, double s)
{
    for (int i = 0; i < n; i++) v[i] = (float)(s * sin(a * i + b));
}

static void expect_close(const float *got, const float *want, int n, float rel, float abs_floor)
{
    for (int i = 0; i < n; i++) {
        float tol = fmaxf(abs_floor, rel * fabsf(want[i]));
        cr_assert(fabsf(got[i] - want[i]) <= tol, "element %d: got %.9g, want %.9g", i, got[i], want[i]);
    }
}

Test(ops, linear_bias_and_no_bias)
{
    float x[15], w[20], b[4], y[12];
    seq(x, 15, 0.37, 0.1, 2), seq(w, 20, 0.23, 0.5, 1), seq(b, 4, 1.1, 0.3, 1);
    static const float with_b[12] = {5.92970181f, 5.75160408f, -1.14188135f, -6.63049984f, 2.46678114f,
        4.79090071f, 1.53616905f, -3.4818964f, -6.53541803f, -5.87819529f, 1.82198536f, 7.42070341f};
    static const float no_b[12] = {5.6341815f, 4.76615429f, -1.74035347f, -6.18797922f, 2.17126083f,
        3.80545115f, 0.937696993f, -3.03937602f, -6.83093834f, -6.86364508f, 1.22351325f, 7.86322403f};
    op_linear(3, 5, 4, x, w, b, y);
    expect_close(y, with_b, 12, 1e-6f, 1e-6f);
    op_linear(3, 5, 4, x, w, NULL, y);
    expect_close(y, no_b, 12, 1e-6f, 1e-6f);
}

Test(ops, layernorm_affine_and_large_offset)
{
    float x[14], w[7], b[7], y[14];
    seq(x, 14, 0.61, 0.2, 3), seq(w, 7, 0.9, 0.4, 1), seq(b, 7, 0.5, 1.0, 1);
    static const float affine[14] = {0.726850986f, 1.63588727f, 1.83405936f, 0.63904959f, -0.0248587523f,
        0.487223953f, 0.104671545f, 0.355102003f, -0.159689322f, 0.324864864f, 0.599006295f,
        -0.419525445f, -1.52819586f, -1.32393229f};
    op_layernorm(2, 7, x, w, b, 1e-6f, y);
    expect_close(y, affine, 14, 1e-5f, 1e-6f);
    /* x + 1000 rounded to float, then torch's layer_norm in float64: its
       float32 path is itself off by 4e-5 relative here. */
    static const float offset[14] = {-0.294333935f, 0.662537098f, 1.14380598f, 0.975876689f, 0.219305977f,
        -0.852974772f, -1.85421705f, -1.2489599f, -1.20094836f, -0.722859442f, 0.012833802f, 0.740806758f,
        1.19843805f, 1.22068918f};
    for (int i = 0; i < 14; i++) x[i] += 1000.0f;
    op_layernorm(2, 7, x, NULL, NULL, 1e-6f, x);   /* in place */
    expect_close(x, offset, 14, 1e-6f, 1e-6f);
}

static const float act_in[16] = {-30, -10, -5, -2.5f, -1, -0.3f, -1e-3f, 0, 1e-3f, 0.3f, 1, 2.5f, 5, 10, 30, 88};

/* DiT's residual + adaLN: x += gate·delta, y = LN(x)·(1 + scale) + shift,
   two rows per conditioning row (chunks gate | shift | scale, stride 3d). */
Test(ops, gated_add_layernorm_modulate)
{
    enum { d = 6 };
    float x[4 * d], delta[4 * d], mod[2 * 3 * d], y[4 * d];
    seq(x, 4 * d, 0.61, 0.2, 3), seq(delta, 4 * d, 0.37, 0.9, 1), seq(mod, 2 * 3 * d, 0.23, 0.5, 0.5);
    static const float want_x[4 * d] = {0.783781469f, 2.49132538f, 3.37457061f, 3.10934639f, 1.78358972f,
        -0.134353161f, -1.96938384f, -3.02613711f, -3.06915617f, -2.08823109f, -0.44076547f, 1.2777189f,
        3.23789048f, 3.15423918f, 1.99091327f, 0.156440765f, -1.69931269f, -2.91883063f, -3.42642093f,
        -2.59446049f, -0.914434493f, 1.00838137f, 2.4834702f, 2.98358417f};
    static const float want_y[4 * d] = {-0.3645477f, 0.820253372f, 1.21519554f, 0.887109697f, 0.113885932f,
        -0.795121014f, 0.221214652f, -0.365839422f, -0.357614011f, 0.0480674207f, 0.579198956f, 1.01805055f,
        1.4606632f, 1.56318533f, 0.949720144f, -0.106770501f, -1.14029968f, -1.71178222f, -2.13001919f,
        -1.55939341f, -0.419892788f, 0.871230185f, 1.83096659f, 2.13184047f};
    op_gated_add_layernorm_modulate(4, d, x, mod, delta, mod + d, mod + 2 * d, 2, 3 * d, 1e-6f, y);
    expect_close(x, want_x, 4 * d, 1e-6f, 1e-6f);
    expect_close(y, want_y, 4 * d, 2e-6f, 2e-6f);
    /* and without the residual step, from the updated x */
    op_layernorm_modulate(4, d, x, mod + d, mod + 2 * d, 2, 3 * d, 1e-6f, y);
    expect_close(y, want_y, 4 * d, 2e-6f, 2e-6f);
}

Test(ops, silu)
{
    static const float want[16] = {-2.80728695e-12f, -0.000453978719f, -0.0334642529f, -0.189645454f,
        -0.268941432f, -0.127667248f, -0.000499750022f, 0, 0.000500250026f, 0.172332764f, 0.731058598f,
        2.31035447f, 4.96653557f, 9.99954605f, 30, 88};
    float y[16];
    op_silu(16, act_in, y);
    expect_close(y, want, 16, 1e-6f, 1e-12f);
}

Test(ops, gelu_tanh)
{
    static const float want[16] = {0, 0, -2.98023224e-07f, -0.0150842965f, -0.158807993f, -0.114629082f,
        -0.000499601068f, 0, 0.000500398979f, 0.185370937f, 0.841192007f, 2.48491573f, 4.99999952f, 10,
        30, 88};
    float y[16];
    op_gelu_tanh(16, act_in, y);
    /* torch's float tanh leaves 1 + tanh(u) at a multiple of 2^-24 in the
       far negative tail (-2.98e-7 at x = -5, exactly -2.3e-7), hence the
       absolute floor. */
    expect_close(y, want, 16, 1e-6f, 1e-7f);
}

Test(ops, activations_long_parallel)
{
    /* Long enough for the parallel path; compared with libm element by element. */
    enum { N = 200003 };
    float *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y);
    for (int i = 0; i < N; i++) x[i] = -20.0f + 40.0f * i / N;
    op_silu(N, x, y);
    for (int i = 0; i < N; i++) {
        double want = x[i] / (1.0 + exp(-(double)x[i]));
        cr_assert(fabs(y[i] - want) <= 1e-6 * fabs(want) + 1e-12, "silu(%g) = %g, want %g", x[i], y[i], want);
    }
    op_gelu_tanh(N, x, y);
    for (int i = 0; i < N; i++) {
        double v = x[i], want = 0.5 * v * (1.0 + tanh(0.7978845608028654 * (v + 0.044715 * v * v * v)));
        cr_assert(fabs(y[i] - want) <= 1e-6 * fabs(want) + 1e-7, "gelu(%g) = %g, want %g", x[i], y[i], want);
    }
    free(x), free(y);
}

/* Attention against PyTorch 1.13 (softmax(q·kᵀ/√d)·v) on token counts
   that do not fill the 32-query jobs nor the 64-row tiles, with
   interleaved (DiT qkv) and separate (VAE) q/k/v buffers; bfloat16
   operands within their rounding; both forms (fused: narrow heads,
   blocked: wide ones) against a double-precision sum. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include "core/core.h"
#include "ops/gemm.h"
#include "ops/ops.h"

static void seq(float *v, int n, double a, double b, double s)
{
    for (int i = 0; i < n; i++) v[i] = (float)(s * sin(a * i + b));
}

static void check_rows(const float *out, int tokens, int width, const int *rows, int nrows, int batch,
                       const float *want)
{
    int w = 0;
    for (int b = 0; b < batch; b++)
        for (int r = 0; r < nrows; r++)
            for (int c = 0; c < width; c++, w++) {
                float got = out[((size_t)b * tokens + rows[r]) * width + c];
                cr_assert(fabsf(got - want[w]) <= 2e-6f * fmaxf(1.0f, fabsf(want[w])),
                          "batch %d row %d col %d: got %.9g, want %.9g", b, rows[r], c, got, want[w]);
            }
}

static const float want_qkv[60] = {0.766160548f, 0.682155192f, 0.585366249f, 0.959951758f, 0.849120855f,
    0.72237736f, 0.485422701f, 0.424917966f, 0.356450409f, -0.380906522f, -0.340870172f, -0.294445992f,
    -1.00615835f, -0.887401581f, -0.752015471f, -0.933266521f, -0.818368435f, -0.688134253f, 0.993489444f,
    0.878257096f, 0.746566892f, 1.01933527f, 0.900082648f, 0.763962626f, -0.329062998f, -0.283308476f,
    -0.232244819f, 0.528117657f, 0.471243262f, 0.405537784f, 0.909821153f, 0.793407857f, 0.662126124f,
    0.686361551f, 0.595766902f, 0.494007826f, -0.981283784f, -0.862773061f, -0.728094399f, -0.988564849f,
    -0.873376489f, -0.741821229f, 0.822647572f, 0.722217858f, 0.608254254f, 0.93874228f, 0.822499871f,
    0.690843999f, 0.18580544f, 0.153147534f, 0.117619619f, -0.610291302f, -0.545642197f, -0.470767677f,
    0.988421917f, 0.865187526f, 0.725739777f, 0.933848679f, 0.814448416f, 0.67978555f};

static void run_qkv(void)
{
    enum { B = 2, T = 67, H = 2, HD = 3, LD = 3 * H * HD };
    float *qkv = malloc(sizeof(float) * B * T * LD), *out = malloc(sizeof(float) * B * T * H * HD);
    float *scratch = malloc(sizeof(float) * op_attention_scratch(B, T, H, HD));
    seq(qkv, B * T * LD, 0.137, 0.3, 1.5);
    op_attention(B, T, H, HD, qkv, qkv + H * HD, qkv + 2 * H * HD, LD, 0, out, scratch);
    check_rows(out, T, H * HD, (const int[]){0, 1, 63, 64, 66}, 5, B, want_qkv);
    free(qkv), free(out), free(scratch);
}

Test(attention, interleaved_qkv_partial_tile) { run_qkv(); }

/* q, k, v and the probabilities rounded to bf16 (8 significant bits, a
   relative 2^-9 each), float32 sums: within 1.5 % of PyTorch's float32. */
Test(attention, bf16_operands_within_their_rounding)
{
    enum { B = 2, T = 67, H = 2, HD = 3, LD = 3 * H * HD };
    static const int rows[5] = {0, 1, 63, 64, 66};
    float *qkv = malloc(sizeof(float) * B * T * LD), *out = malloc(sizeof(float) * B * T * H * HD);
    float *scratch = malloc(sizeof(float) * op_attention_scratch(B, T, H, HD));
    seq(qkv, B * T * LD, 0.137, 0.3, 1.5);
    op_attention(B, T, H, HD, qkv, qkv + H * HD, qkv + 2 * H * HD, LD, 1, out, scratch);
    float worst = 0.0f;
    for (int b = 0, w = 0; b < B; b++)
        for (int r = 0; r < 5; r++)
            for (int c = 0; c < H * HD; c++, w++) {
                float err = fabsf(out[((size_t)b * T + rows[r]) * H * HD + c] - want_qkv[w]);
                cr_assert(err <= 1.5e-2f * fmaxf(1.0f, fabsf(want_qkv[w])), "batch %d row %d col %d: off by %g", b,
                          rows[r], c, err);
                worst = fmaxf(worst, err);
            }
    /* where bf16 runs natively it must show; elsewhere it is float32, held
       to the float32 test's 2e-6 (outputs are under 1.5 here) */
    if (me_gemm_native(1)) cr_assert(worst > 1e-5f, "bf16 attention matches float32 to %g: not engaged", worst);
    else cr_assert(worst <= 3e-6f, "float32 fallback off by %g", worst);
    free(qkv), free(out), free(scratch);
}

Test(attention, same_result_on_one_thread)
{
    moedit_set_threads(1);
    run_qkv();
    moedit_set_threads(0);
}

Test(attention, one_head_separate_buffers)
{
    enum { T = 130, HD = 8 };
    static const float want[24] = {-0.0281138308f, -0.0287471004f, -0.0293562226f, -0.029940661f,
        -0.030499896f, -0.0310334936f, -0.0315409973f, -0.0320219882f, -0.0238463487f, -0.0235378481f,
        -0.0232095402f, -0.0228617042f, -0.0224946588f, -0.0221086834f, -0.0217040852f, -0.0212812629f,
        -0.0239455253f, -0.0236425381f, -0.0233196933f, -0.0229772162f, -0.022615416f, -0.0222346112f,
        -0.0218350962f, -0.0214172136f};
    float *q = malloc(sizeof(float) * T * HD), *k = malloc(sizeof(float) * T * HD);
    float *v = malloc(sizeof(float) * T * HD), *out = malloc(sizeof(float) * T * HD);
    float *scratch = malloc(sizeof(float) * op_attention_scratch(1, T, 1, HD));
    seq(q, T * HD, 0.071, 0.0, 2), seq(k, T * HD, 0.053, 1.0, 2), seq(v, T * HD, 0.029, 2.0, 1);
    op_attention(1, T, 1, HD, q, k, v, HD, 0, out, scratch);
    for (int i = 0; i < 24; i++) {
        int row = (int[]){0, 64, 129}[i / HD];
        float got = out[row * HD + i % HD];
        cr_assert(fabsf(got - want[i]) <= 1e-7f, "row %d col %d: got %.9g, want %.9g", row, i % HD, got, want[i]);
    }
    free(q), free(k), free(v), free(out), free(scratch);
}

/* softmax(q·kᵀ/√d)·v in double for one (batch, head), row r. */
static void reference_row(const float *qkv, int tokens, int heads, int hd, int b, int h, int r, double *o)
{
    int ld = 3 * heads * hd, D = heads * hd;
    const float *base = qkv + (size_t)b * tokens * ld + (size_t)h * hd;
    double s[200], mx = -INFINITY, sum = 0.0;
    cr_assert(tokens <= 200, "reference_row: %d tokens, room for 200", tokens);
    for (int t = 0; t < tokens; t++) {
        s[t] = 0.0;
        for (int d = 0; d < hd; d++) s[t] += (double)base[(size_t)r * ld + d] * base[(size_t)t * ld + D + d];
        s[t] /= sqrt((double)hd);
        mx = fmax(mx, s[t]);
    }
    for (int t = 0; t < tokens; t++) sum += s[t] = exp(s[t] - mx);
    for (int d = 0; d < hd; d++) {
        o[d] = 0.0;
        for (int t = 0; t < tokens; t++) o[d] += s[t] * base[(size_t)t * ld + 2 * D + d];
        o[d] /= sum;
    }
}

/* Head widths either side of the fused form's bound (the float32 K block,
   at most 256): 64 and 72 fused, 300 blocked; odd token counts (bf16's pad
   token) and partial 32-query jobs; in bf16 on AMX CPUs, the AMX form for
   head widths and token counts that are multiples of 32. */
static void against_double(int batch, int tokens, int heads, int hd, int bf16, double tol)
{
    int ld = 3 * heads * hd, D = heads * hd;
    float *qkv = malloc(sizeof(float) * batch * tokens * ld), *out = malloc(sizeof(float) * batch * tokens * D);
    float *scratch = malloc(sizeof(float) * op_attention_scratch(batch, tokens, heads, hd));
    double *want = malloc(sizeof(double) * hd), worst = 0.0;
    seq(qkv, batch * tokens * ld, 0.0137, 0.3, 1.0);
    op_attention(batch, tokens, heads, hd, qkv, qkv + D, qkv + 2 * D, ld, bf16, out, scratch);
    for (int b = 0; b < batch; b++)
        for (int h = 0; h < heads; h++)
            for (int r = 0; r < tokens; r += 7) {
                reference_row(qkv, tokens, heads, hd, b, h, r, want);
                for (int d = 0; d < hd; d++) {
                    float got = out[((size_t)b * tokens + r) * D + h * hd + d];
                    double err = fabs(got - want[d]) / fmax(1.0, fabs(want[d]));
                    cr_assert(err <= tol, "T %d hd %d bf16 %d: (%d, %d, %d, %d) off by %g", tokens, hd, bf16, b, h, r,
                              d, err);
                    worst = fmax(worst, err);
                }
            }
    if (bf16 && me_gemm_native(1)) cr_assert(worst > 1e-5, "T %d hd %d: bf16 not engaged (%g)", tokens, hd, worst);
    free(qkv), free(out), free(scratch), free(want);
}

Test(attention, both_forms_against_double)
{
    against_double(2, 77, 3, 64, 0, 2e-6);
    against_double(1, 45, 2, 72, 0, 2e-6);
    against_double(1, 45, 1, 300, 0, 2e-6);
    against_double(2, 77, 3, 64, 1, 1.5e-2);
    against_double(1, 45, 1, 300, 1, 1.5e-2);
    /* head_dim and tokens multiples of 32: on AMX tiles where the CPU has them */
    against_double(2, 96, 3, 64, 1, 1.5e-2);
    against_double(1, 64, 2, 32, 1, 1.5e-2);
}

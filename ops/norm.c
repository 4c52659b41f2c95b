/* LayerNorm over the last dimension: two passes per row (mean, then the
   centred variance), summed in double so that rows with a large common
   offset lose no precision (PyTorch's float path loses some there). The
   sums are vectorised in a fixed order (omp simd), so a row's result does
   not depend on how rows are spread over threads. */
#include <math.h>
#include "core/core.h"
#include "ops/ops.h"

#define PAR_MIN 65536

static void row_stats(int d, const float *x, float eps, double *mean, double *rstd)
{
    double s = 0.0;
    #pragma omp simd reduction(+ : s)
    for (int i = 0; i < d; i++) s += x[i];
    double mu = s / d, v = 0.0;
    #pragma omp simd reduction(+ : v)
    for (int i = 0; i < d; i++) v += (x[i] - mu) * (x[i] - mu);
    *mean = mu, *rstd = 1.0 / sqrt(v / d + eps);
}

static void layernorm_row(int d, const float *x, const float *w, const float *b, float eps, float *y)
{
    double mean, rstd;
    row_stats(d, x, eps, &mean, &rstd);
    if (w && b)
        for (int i = 0; i < d; i++) y[i] = (float)((x[i] - mean) * rstd) * w[i] + b[i];
    else if (w)
        for (int i = 0; i < d; i++) y[i] = (float)((x[i] - mean) * rstd) * w[i];
    else
        for (int i = 0; i < d; i++) y[i] = (float)((x[i] - mean) * rstd) + (b ? b[i] : 0.0f);
}

void op_layernorm(int n, int d, const float *x, const float *w, const float *b, float eps, float *y)
{
    #pragma omp parallel for num_threads(me_threads()) if ((size_t)n * d >= PAR_MIN) schedule(static)
    for (int r = 0; r < n; r++)
        layernorm_row(d, x + (size_t)r * d, w, b, eps, y + (size_t)r * d);
}

/* One row of adaLN: y = LN(x)·(1 + scale) + shift. */
static void modulate_row(int d, const float *x, const float *shift, const float *scale, float eps, float *y)
{
    double mean, rstd;
    row_stats(d, x, eps, &mean, &rstd);
    for (int i = 0; i < d; i++) y[i] = (float)((x[i] - mean) * rstd) * (1.0f + scale[i]) + shift[i];
}

void op_layernorm_modulate(int n, int d, const float *x, const float *shift, const float *scale, int group,
                           size_t stride, float eps, float *y)
{
    #pragma omp parallel for num_threads(me_threads()) if ((size_t)n * d >= PAR_MIN) schedule(static)
    for (int r = 0; r < n; r++) {
        size_t c = (size_t)(r / group) * stride;
        modulate_row(d, x + (size_t)r * d, shift + c, scale + c, eps, y + (size_t)r * d);
    }
}

void op_gated_add_layernorm_modulate(int n, int d, float *x, const float *gate, const float *delta,
                                     const float *shift, const float *scale, int group, size_t stride, float eps,
                                     float *y)
{
    #pragma omp parallel for num_threads(me_threads()) if ((size_t)n * d >= PAR_MIN) schedule(static)
    for (int r = 0; r < n; r++) {
        size_t c = (size_t)(r / group) * stride, o = (size_t)r * d;
        for (int i = 0; i < d; i++) x[o + i] += gate[c + i] * delta[o + i];
        modulate_row(d, x + o, shift + c, scale + c, eps, y + o);
    }
}

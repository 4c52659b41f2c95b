/* LayerNorm over the last dimension: two passes per row (mean, then the
   centred variance), centred in double so that rows with a large common
   offset lose no precision (PyTorch's float path loses some there). */
#include <math.h>
#include "core/core.h"
#include "ops/ops.h"

#define PAR_MIN 65536

static void layernorm_row(int d, const float *x, const float *w, const float *b, float eps, float *y)
{
    double s = 0.0;
    for (int i = 0; i < d; i++) s += x[i];
    double mean = s / d, v = 0.0;
    for (int i = 0; i < d; i++) v += (x[i] - mean) * (x[i] - mean);
    double rstd = 1.0 / sqrt(v / d + eps);
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

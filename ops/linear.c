/* Fully connected layers on raw PyTorch weights [out, in] (read transposed)
   through me_sgemm, which packs the weight per call; networks that run a
   layer many times pack it once instead (ops/gemm.h, as dit/ does). */
#include <string.h>
#include "core/core.h"
#include "ops/gemm.h"
#include "ops/ops.h"

void op_linear(int n, int in, int out, const float *x, const float *w, const float *b, float *y)
{
    if (n <= 0 || out <= 0) return;
    /* Seed y with the bias and let the product accumulate onto it. */
    for (int i = 0; i < n; i++)
        if (b) memcpy(y + (size_t)i * out, b, (size_t)out * sizeof *y);
        else memset(y + (size_t)i * out, 0, (size_t)out * sizeof *y);
    me_sgemm(0, 1, n, out, in, 1.0f, x, in, w, in, 1.0f, y, out);
}

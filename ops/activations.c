/* Elementwise activations, vectorised through me_expf (fastmath.h). */
#include <omp.h>
#include "core/core.h"
#include "ops/fastmath.h"
#include "ops/ops.h"
#include "ops/vexp.h"

/* Below this many elements a parallel region costs more than it saves. */
#define PAR_MIN 65536

void op_silu(size_t n, const float *x, float *y)
{
    /* chunks of whole cache lines, each on the vector loops */
    size_t chunks = (n + 4095) / 4096;
    #pragma omp parallel for num_threads(me_threads()) if (n >= PAR_MIN) schedule(static)
    for (size_t c = 0; c < chunks; c++) {
        size_t i = c * 4096, len = n - i < 4096 ? n - i : 4096;
        me_silu_vec(len, x + i, NULL, y + i);
    }
}

/* 0.5·x·(1 + tanh(u)), u = √(2/π)(x + 0.044715x³), rewritten with
   1 + tanh(u) = 2/(1 + e^{−2u}) so the far negative tail keeps its
   relative precision instead of cancelling. */
void op_gelu_tanh(size_t n, const float *x, float *y)
{
    #pragma omp parallel for simd num_threads(me_threads()) if (n >= PAR_MIN) schedule(static)
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        float u = 0.7978845608028654f * (v + 0.044715f * v * v * v);
        y[i] = v / (1.0f + me_expf(-2.0f * u));
    }
}

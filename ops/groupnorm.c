/* GroupNorm (as torch.nn.GroupNorm) with an optional fused SiLU, which every
   use in the VAE decoder but the attention's is followed by. Statistics are
   accumulated in double: a group holds up to 16·65536 values, where a float
   running sum would lose the digits that matter. */
#include <math.h>
#include "core/core.h"
#include "ops/vexp.h"
#include "ops/ops.h"

void op_groupnorm(int n, int c, int hw, int groups, const float *x, const float *gamma,
                  const float *beta, float eps, int silu, float *y)
{
    int cg = c / groups;
    size_t len = (size_t)cg * hw;
    #pragma omp parallel for schedule(static) num_threads(me_threads()) if (len * n * groups >= (1 << 16))
    for (int job = 0; job < n * groups; job++) {
        size_t base = (size_t)job * len;   /* groups are contiguous in NCHW */
        const float *xg = x + base;
        double sum = 0.0;
        #pragma omp simd reduction(+ : sum)
        for (size_t i = 0; i < len; i++) sum += xg[i];
        double mean = sum / (double)len, ss = 0.0;
        /* Two passes: the variance of values far from zero keeps its digits. */
        #pragma omp simd reduction(+ : ss)
        for (size_t i = 0; i < len; i++) {
            double d = xg[i] - mean;
            ss += d * d;
        }
        float inv = (float)(1.0 / sqrt(ss / (double)len + eps));
        int g = job % groups;
        for (int j = 0; j < cg; j++) {
            int ch = g * cg + j;
            float scale = inv * (gamma ? gamma[ch] : 1.0f);
            float shift = (beta ? beta[ch] : 0.0f) - (float)mean * scale;
            const float *xc = xg + (size_t)j * hw;
            float *yc = y + base + (size_t)j * hw;
            #pragma omp simd
            for (int i = 0; i < hw; i++) yc[i] = xc[i] * scale + shift;
            if (silu) me_silu_vec((size_t)hw, yc, NULL, yc);
        }
    }
}

/* Packing and the fused SwiGLU product: me_gemm_pack_b's float32 panel
   packer writes exactly the documented layout (panels of 32 columns,
   [k][32] each, zero past the last column; OpenBLAS: row-major [k][n]),
   wherever the packed range starts and ends, on one thread or a team;
   me_gemm_swiglu equals SiLU(G)·U multiplied in double precision here, and
   gives the same bits as SiLU·U written over G before a plain me_gemm (the
   forward's results did not move when the SiLU pass was fused). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "core/core.h"
#include "ops/gemm.h"
#include "ops/vexp.h"

static float *rnd(size_t n, unsigned seed)
{
    float *v = malloc(n * sizeof *v + 4);
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        v[i] = (float)((seed >> 8) / 16777216.0 * 4.0 - 2.0);
    }
    return v;
}

/* The layout, element by element: B[kk, j] = src(kk, j). */
static void expected(int k, int n, int trans, const float *src, size_t ld, float *out)
{
    int native = me_gemm_native(0);
    memset(out, 0, me_gemm_b_bytes(k, n, 0));
    for (int kk = 0; kk < k; kk++)
        for (int j = 0; j < n; j++) {
            float v = trans ? src[(size_t)j * ld + kk] : src[(size_t)kk * ld + j];
            if (native) out[((size_t)(j / 32) * k + kk) * 32 + j % 32] = v;
            else out[(size_t)kk * n + j] = v;
        }
}

Test(gemm_pack, float32_panels_match_the_layout)
{
    int ks[4] = {1, 7, 64, 700}, ns[5] = {1, 31, 32, 70, 100}, cuts[4] = {0, 5, 32, 45};
    for (int threads = 1; threads <= 2; threads++) {
        moedit_set_threads(threads);
        for (int trans = 0; trans < 2; trans++)
            for (int ki = 0; ki < 4; ki++)
                for (int ni = 0; ni < 5; ni++)
                    for (int ci = 0; ci < 4; ci++) {
                        int k = ks[ki], n = ns[ni], cut = cuts[ci] < n ? cuts[ci] : n;
                        size_t ld = (size_t)(trans ? k : n) + 3;
                        float *src = rnd((size_t)(trans ? n : k) * ld, (unsigned)(k * 131 + n));
                        size_t bytes = me_gemm_b_bytes(k, n, 0);
                        float *want = malloc(bytes), *mem = me_alloc_aligned(bytes);
                        expected(k, n, trans, src, ld, want);
                        me_gemm_b b;
                        me_gemm_b_init(&b, mem, k, n, 0);
                        /* two column ranges, as the fused gate/up weights are packed */
                        me_gemm_pack_b(&b, 0, cut, trans, ME_GEMM_F32, src, ld);
                        me_gemm_pack_b(&b, cut, n - cut, trans, ME_GEMM_F32,
                                       src + (trans ? (size_t)cut * ld : (size_t)cut), ld);
                        cr_assert(memcmp(mem, want, bytes) == 0,
                                  "packed bytes differ: k %d n %d cut %d trans %d threads %d", k, n, cut, trans,
                                  threads);
                        me_free_aligned(mem);
                        free(want), free(src);
                    }
    }
    moedit_set_threads(0);
}

Test(gemm_pack, swiglu_product)
{
    int ms[3] = {1, 7, 40}, hs[3] = {5, 300, 513}, n = 45;
    for (int mi = 0; mi < 3; mi++)
        for (int hi = 0; hi < 3; hi++) {
            int m = ms[mi], h = hs[hi];
            size_t lda = (size_t)2 * h + 1;
            float *a = rnd((size_t)m * lda, (unsigned)(m + h)), *w = rnd((size_t)n * h, 7);
            float *bias = rnd((size_t)n, 9), *fused = malloc((size_t)m * n * sizeof *fused);
            float *plain = malloc((size_t)m * n * sizeof *plain), *a2 = malloc((size_t)m * lda * sizeof *a2);
            float *orig = malloc((size_t)m * lda * sizeof *orig);
            memcpy(a2, a, (size_t)m * lda * sizeof *a);
            memcpy(orig, a, (size_t)m * lda * sizeof *a);
            void *mem = me_alloc_aligned(me_gemm_b_bytes(h, n, 0));
            me_gemm_b b;
            me_gemm_b_init(&b, mem, h, n, 0);
            me_gemm_pack_b(&b, 0, n, 1, ME_GEMM_F32, w, (size_t)h);
            me_gemm_swiglu(m, a, lda, (size_t)h, &b, 0.5f, bias, 0.0f, fused, (size_t)n);
            for (int i = 0; i < m; i++) {
                float *g = a2 + (size_t)i * lda;
                me_silu_vec((size_t)h, g, g + h, g);
            }
            me_gemm(m, a2, lda, &b, 0.5f, bias, 0.0f, plain, (size_t)n);
            cr_assert(memcmp(fused, plain, (size_t)m * n * sizeof *fused) == 0, "m %d hid %d: bits differ", m, h);
            for (int i = 0; i < m; i++)
                for (int j = 0; j < n; j++) {
                    double s = 0, mag = 0;
                    for (int kk = 0; kk < h; kk++) {
                        double g = orig[(size_t)i * lda + kk], u = orig[(size_t)i * lda + h + kk];
                        double t = g / (1.0 + exp(-g)) * u * w[(size_t)j * h + kk];
                        s += t, mag += fabs(t);
                    }
                    double ref = 0.5 * s + bias[j];
                    cr_assert(fabs(fused[(size_t)i * n + j] - ref) <= 1e-5 * (0.5 * mag + fabs(bias[j])) + 1e-6,
                              "m %d hid %d (%d,%d): %g vs %g", m, h, i, j, fused[(size_t)i * n + j], ref);
                }
            me_free_aligned(mem);
            free(a), free(a2), free(orig), free(w), free(bias), free(fused), free(plain);
        }
}

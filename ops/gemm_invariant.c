/* The batch-invariant product behind me_gemm on CPUs without AVX-512 (see
   gemm.h). OpenBLAS rounds a row differently depending on where it falls in
   its tiles (its result for a row changes with the rows around it), which
   would make a sample depend on its batch. Here every element is one
   sequential sum over k, acc = acc + a[i,k]·b[k,j] (a product rounded, then
   a sum rounded: C11 does not contract them), whatever the tile, the row
   count or the thread. Blocks of 4 rows × 16 columns in GCC vector types
   (eight accumulators and two loads of B per k fit 16 AVX2 registers) only
   share the loads; the scalar edges do the same two roundings. */
#include <omp.h>
#include <string.h>
#include "core/core.h"
#include "ops/gemm.h"

enum { IR = 4, JC = 16 };
typedef float v8 __attribute__((vector_size(32)));

static v8 load8(const float *p)
{
    v8 v;
    memcpy(&v, p, sizeof v);
    return v;
}

static void store8(float *p, v8 v) { memcpy(p, &v, sizeof v); }

/* Rows r[0..nr) of A times B [k, n] columns j0..j0+nc into acc. */
static void block(int nr, const float *const *r, int k, const float *b, int n, int j0, int nc, float acc[IR][JC])
{
    memset(acc, 0, sizeof(float) * IR * JC);
    if (nr == IR && nc == JC) {
        v8 c00 = {0}, c01 = {0}, c10 = {0}, c11 = {0}, c20 = {0}, c21 = {0}, c30 = {0}, c31 = {0};
        for (int kk = 0; kk < k; kk++) {
            const float *bk = b + (size_t)kk * n + j0;
            v8 b0 = load8(bk), b1 = load8(bk + 8);
            v8 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
            a0 += r[0][kk], a1 += r[1][kk], a2 += r[2][kk], a3 += r[3][kk];   /* broadcasts */
            c00 = c00 + a0 * b0, c01 = c01 + a0 * b1;
            c10 = c10 + a1 * b0, c11 = c11 + a1 * b1;
            c20 = c20 + a2 * b0, c21 = c21 + a2 * b1;
            c30 = c30 + a3 * b0, c31 = c31 + a3 * b1;
        }
        store8(acc[0], c00), store8(acc[0] + 8, c01), store8(acc[1], c10), store8(acc[1] + 8, c11);
        store8(acc[2], c20), store8(acc[2] + 8, c21), store8(acc[3], c30), store8(acc[3] + 8, c31);
        return;
    }
    for (int kk = 0; kk < k; kk++) {
        const float *bk = b + (size_t)kk * n + j0;
        for (int i = 0; i < nr; i++) {
            const float av = r[i][kk];
            for (int j = 0; j < nc; j++) {
                float p = av * bk[j];
                acc[i][j] = acc[i][j] + p;
            }
        }
    }
}

void me_gemm_invariant(int m, const float *a, size_t lda, const int *rows, const float *b, int k, int n,
                       float alpha, const float *bias, float beta, float *c, size_t ldc)
{
    const int mb = (m + IR - 1) / IR, nb = (n + JC - 1) / JC;
    const int threads = omp_in_parallel() ? 1 : me_threads();
    #pragma omp parallel for collapse(2) schedule(static) num_threads(threads) if ((double)m * n * k >= 1e6)
    for (int ib = 0; ib < mb; ib++)
        for (int jb = 0; jb < nb; jb++) {
            const float *r[IR];
            float acc[IR][JC];
            int nr = m - ib * IR < IR ? m - ib * IR : IR, j0 = jb * JC, nc = n - j0 < JC ? n - j0 : JC;
            for (int i = 0; i < nr; i++) r[i] = a + (size_t)(rows ? rows[ib * IR + i] : ib * IR + i) * lda;
            block(nr, r, k, b, n, j0, nc, acc);
            for (int i = 0; i < nr; i++)
                for (int j = 0; j < nc; j++) {
                    float *v = c + (size_t)(ib * IR + i) * ldc + j0 + j;
                    *v = alpha * acc[i][j] + (bias ? bias[j0 + j] : 0.0f) + (beta != 0.0f ? beta * *v : 0.0f);
                }
        }
}

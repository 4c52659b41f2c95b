/* The batch-invariant product behind me_gemm on CPUs without AVX-512 (see
   gemm.h). OpenBLAS rounds a row differently depending on where it falls in
   its tiles (its result for a row changes with the rows around it), which
   would make a sample depend on its batch. Here every element is one
   sequential sum over k, a[i,0]·b[0,j] + a[i,1]·b[1,j] + …, whatever the
   tile, the row count or the thread: blocks of 4 rows × 32 columns only
   share the loads of B. fmaf on every path (vector body and scalar tails
   alike), so no element is summed with another rounding. */
#include <math.h>
#include <omp.h>
#include "core/core.h"
#include "ops/gemm.h"

enum { IR = 4, JC = 32 };

/* Rows r[0..nr) of A (each k floats) times B [k, n] columns j0..j0+nc. */
static void block(int nr, const float *const *r, int k, const float *b, int n, int j0, int nc, float alpha,
                  const float *bias, float beta, float *const *c)
{
    float acc[IR][JC] = {{0}};
    if (nr == IR && nc == JC) {
        /* constant trip counts: the accumulators stay in registers */
        for (int kk = 0; kk < k; kk++) {
            const float *bk = b + (size_t)kk * n + j0;
            const float a0 = r[0][kk], a1 = r[1][kk], a2 = r[2][kk], a3 = r[3][kk];
            for (int j = 0; j < JC; j++) {
                acc[0][j] = fmaf(a0, bk[j], acc[0][j]);
                acc[1][j] = fmaf(a1, bk[j], acc[1][j]);
                acc[2][j] = fmaf(a2, bk[j], acc[2][j]);
                acc[3][j] = fmaf(a3, bk[j], acc[3][j]);
            }
        }
        k = 0;
    }
    for (int kk = 0; kk < k; kk++) {
        const float *bk = b + (size_t)kk * n + j0;
        for (int i = 0; i < nr; i++) {
            const float av = r[i][kk];
            if (nc == JC)
                for (int j = 0; j < JC; j++) acc[i][j] = fmaf(av, bk[j], acc[i][j]);
            else
                for (int j = 0; j < nc; j++) acc[i][j] = fmaf(av, bk[j], acc[i][j]);
        }
    }
    for (int i = 0; i < nr; i++)
        for (int j = 0; j < nc; j++) {
            float *v = c[i] + j0 + j;
            *v = alpha * acc[i][j] + (bias ? bias[j0 + j] : 0.0f) + (beta != 0.0f ? beta * *v : 0.0f);
        }
}

int me_gemm_batch_invariant;

void me_gemm_invariant(int m, const float *a, size_t lda, const int *rows, const float *b, int k, int n,
                       float alpha, const float *bias, float beta, float *c, size_t ldc)
{
    const int mb = (m + IR - 1) / IR, nb = (n + JC - 1) / JC;
    const int threads = omp_in_parallel() ? 1 : me_threads();
    #pragma omp parallel for collapse(2) schedule(static) num_threads(threads) if ((double)m * n * k >= 1e6)
    for (int ib = 0; ib < mb; ib++)
        for (int jb = 0; jb < nb; jb++) {
            const float *r[IR];
            float *cr[IR];
            int nr = m - ib * IR < IR ? m - ib * IR : IR;
            for (int i = 0; i < nr; i++) {
                int row = ib * IR + i;
                r[i] = a + (size_t)(rows ? rows[row] : row) * lda;
                cr[i] = c + (size_t)row * ldc;
            }
            int j0 = jb * JC;
            block(nr, r, k, b, n, j0, n - j0 < JC ? n - j0 : JC, alpha, bias, beta, cr);
        }
}

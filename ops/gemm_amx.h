/* gemm_amx.h — bfloat16 weight products on AMX tiles (internal to ops/).

   On CPUs with AMX-BF16 (me_cpu_amx), me_gemm's bf16 products whose K is
   a multiple of 32 run here instead of on the AVX512-BF16 dot-product
   tiles: one TDPBF16PS multiplies a 16-row × 32-k block of A by a 32-k ×
   16-column block of B into 16×16 float32 sums, 16 times the work of a
   zmm vdpbf16ps. The packed B panels are used as they are: a panel's row
   of 16 k pairs × 32 columns is two AMX B-tile rows side by side (stride
   128 bytes). A is rounded to bf16 as the dot-product tiles round it and
   packed row-major. Each C element is one sum over all of K, in the same
   order whatever the rows, the thread split or the batch, so results do
   not depend on the thread count nor on m — but they differ from the
   AVX512-BF16 tiles' in the last bits (another summation order), and the
   tiles take subnormal products as zero. */
#ifndef MOEDIT_OPS_GEMM_AMX_H
#define MOEDIT_OPS_GEMM_AMX_H

#include <stddef.h>
#include <stdint.h>

#define ME_AMX_K 32   /* K must be a multiple of this */
#define ME_AMX_ROWS 32  /* rows per block of C; thread row splits are multiples of it */

typedef struct {
    const float *a;        /* A, m×k, row stride lda; row i is a[rows[i]·lda] when rows */
    size_t lda;
    const int *rows;
    const uint16_t *b;     /* panels of 32 columns, [k/2][32][2] bf16, k·32 elements apart */
    int k, n;
    float alpha, beta;     /* C = alpha·A·B + bias + beta·C (beta 0 never reads C) */
    const float *bias;     /* NULL, or n values */
    float *c;
    size_t ldc;
} me_amx_job;

/* Largest K one call takes (A rows are packed whole into a stack buffer). */
#define ME_AMX_K_MAX 8192

/* Rows [i0, i1) × panels [p0, p1) of the job, on the calling thread. */
void me_amx_product(const me_amx_job *j, int i0, int i1, int p0, int p1);

/* ops/peak.c's loop: `iters` rounds of four TDPBF16PS (65536 flops) on
   registers only. */
float me_amx_dot_loop(long iters);

#endif

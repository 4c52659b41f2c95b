/* gemm_amx.h — bfloat16 weight products on AMX tiles (internal to ops/);
   also the 32×32 blocks the bf16 convolutions and attention run on.

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
    int swiglu;            /* 1: C[:, 0:n/2] = silu(A·B[:, 0:n/2]) ⊙ A·B[:, n/2:n] (n/2 a multiple
                              of 32, alpha 1, no bias, beta 0); panels count the gate half's */
} me_amx_job;

/* Largest K one call takes (A rows are packed whole into a stack buffer). */
#define ME_AMX_K_MAX 8192

/* Rows [i0, i1) × panels [p0, p1) of the job, on the calling thread. */
void me_amx_product(const me_amx_job *j, int i0, int i1, int p0, int p1);

/* Where element (row, kk) of a 32-row block of A sits in the order the
   tiles read it: per 32 k, the block's two 16-row × 32-k tiles, 1 KB
   each, row-major, so each tile load walks 1 KB of memory in order. */
static inline size_t me_amx_a_at(int row, int kk)
{
    return (size_t)(kk / ME_AMX_K) * ME_AMX_ROWS * ME_AMX_K + (size_t)(row / 16) * 16 * ME_AMX_K +
           (size_t)(row % 16) * ME_AMX_K + (size_t)(kk % ME_AMX_K);
}

/* Blocks for callers that keep the tiles configured across many of them
   (the convolutions, attention): me_amx_tiles_on before a thread's first
   me_amx_block, me_amx_tiles_off after its last. */
void me_amx_tiles_on(void);
void me_amx_tiles_off(void);
/* c [32][32] (rows ldc floats apart) = (first ? 0 : c) + A·B: A one 32-row
   block in me_amx_a_at order, B one panel [k/2][32][2], k a multiple of 32. */
void me_amx_block(const uint16_t *a, const uint16_t *b, int k, int first, float *c, size_t ldc);
/* rows (≤ 32) rows of a, lda floats apart, k (a multiple of 32) each, as
   one such block, rounded to bf16; rows past `rows` zero. */
void me_amx_pack_block(const float *a, size_t lda, int rows, int k, uint16_t *dst);

/* ops/peak.c's loop: `iters` rounds of four TDPBF16PS (65536 flops) on
   registers only. */
float me_amx_dot_loop(long iters);

#endif

/* gemm.h — float32 matrix products on own kernels chosen at run time
   (AVX-512, else AVX2+FMA; OpenBLAS when the CPU has neither), with the
   right-hand operand packed once and reused:

     me_gemm_b w;                                   // B is [k, n]
     void *mem = me_alloc_aligned(me_gemm_b_bytes(k, n, 0));
     me_gemm_b_init(&w, mem, k, n, 0);
     me_gemm_pack_b(&w, 0, n, 1, ME_GEMM_F32, W, k); // B = Wᵀ, W [n, k] as PyTorch stores it
     me_gemm(m, x, k, &w, 1.0f, bias, 0.0f, y, n);   // y = x·Wᵀ + bias

   bf16 = 1 (AVX512-BF16 CPUs) stores B as bfloat16 and rounds A to bfloat16 too, multiplying
   with AVX512-BF16 dot products (float32 accumulation) — on AMX tiles where
   the CPU has AMX-BF16 and K is a multiple of 32 (ops/gemm_amx.h): half
   the memory of float32 weights, about 3 significant digits per product.

   Thread count: me_threads(), one OpenMP pool; called inside a parallel
   region, a product runs on the calling thread only. On the own kernels
   the result does not depend on the thread count nor on m (a row's value
   is the same whatever rows come with it), bit for bit (OpenBLAS: within
   rounding). MOEDIT_NO_AVX512=1 in the environment rules the AVX-512
   kernels out, MOEDIT_NO_AVX2=1 the AVX2 ones too (core/cpu.h). */
#ifndef MOEDIT_OPS_GEMM_H
#define MOEDIT_OPS_GEMM_H

#include <stddef.h>
#include <stdint.h>

/* Element types a packed operand can be read from. */
enum { ME_GEMM_F32 = 0, ME_GEMM_BF16, ME_GEMM_F16 };

typedef struct {
    int k, n;        /* B is k×n */
    int bf16;        /* stored and multiplied as bfloat16 */
    int kp;          /* rows stored per column panel (k, or k rounded up to even; more in a view) */
    void *data;      /* layout private to gemm.c */
    const int *batch_invariant;   /* NULL, or the owner's switch (below) */
    const void *then;             /* NULL, or the first block of what the caller multiplies next (me_gemm_b_then) */
    int then_lines;               /* 64-byte lines at then */
} me_gemm_b;

/* 1 when the own kernels run, AVX-512 or AVX2 (bf16: AVX512-BF16 products). */
int me_gemm_native(int bf16);

/* Rows of A one microkernel tile takes on this CPU (1 on OpenBLAS): row
   ranges in multiples of it leave no partly filled tile but the last. */
int me_gemm_tile_rows(void);

/* Bytes a packed k×n operand needs (64-byte aligned memory). */
size_t me_gemm_b_bytes(int k, int n, int bf16);
/* Prepares b over mem (zeroed here, so padding multiplies as 0). bf16 is
   ignored (0) when the CPU cannot multiply bfloat16. */
void me_gemm_b_init(me_gemm_b *b, void *mem, int k, int n, int bf16);
/* Fills columns [col, col+cols) of b from src, whose element (kk, j) is
   src[kk·ld + j] (trans 0) or src[j·ld + kk] (trans 1: src is a PyTorch
   weight [cols, k]). */
void me_gemm_pack_b(me_gemm_b *b, int col, int cols, int trans, int type, const void *src, size_t ld);

/* The depth in which a product of depth k can be cut into products over
   views (below) with every sum the same: the own kernels' K block when k
   splits into equal blocks of a multiple of 32, else k (so on OpenBLAS,
   and for bf16 on AMX, whose layouts take no views). */
int me_gemm_k_chunk(int k, int bf16);
/* view = columns [col, col+cols) × rows [k0, k0+k) of b, sharing its memory;
   col a multiple of 32, k0 a multiple of me_gemm_k_chunk(b->k) and k that
   chunk (or k0 0 and k b->k: b itself). */
void me_gemm_b_view(const me_gemm_b *b, int col, int cols, int k0, int k, me_gemm_b *view);
/* Tells b what the calling thread multiplies after it (next NULL: nothing
   known): a product of b that runs on the calling thread alone (inside a
   parallel region, or too small to share) then prefetches next's first B
   panel during its own last one, as it does from panel to panel within a
   product, instead of leaving the next product to start on B from
   memory. Results never change. A view starts without it. */
void me_gemm_b_then(me_gemm_b *b, const me_gemm_b *next);

/* c[m, n] = alpha·a·b + bias[n] + beta·c; a is m×k with row stride lda;
   bias may be NULL; beta 0 never reads c. */
void me_gemm(int m, const float *a, size_t lda, const me_gemm_b *b, float alpha, const float *bias,
             float beta, float *c, size_t ldc);

/* me_gemm with A's rows gathered: row i of A is a[rows[i]·lda, +k). The
   gather happens while A is packed, so no copy of the rows is made. */
void me_gemm_rows(int m, const float *a, size_t lda, const int *rows, const me_gemm_b *b, float alpha,
                  const float *bias, float beta, float *c, size_t ldc);

/* A packed once for several products over the same rows of A (an expert's
   hidden chunks): buf holds me_gemm_apack_floats() floats; the caller sets
   valid to 0 before the first product over new rows. A product run on the
   calling thread whose A fits one packed block leaves it in buf and sets
   valid; the next product with the same A, m, k and B precision (B's
   columns may differ) then reads it instead of packing again. Any other
   product packs as always and clears valid. The results are the same bit
   for bit either way. */
typedef struct {
    void *buf;
    int valid;
} me_gemm_apack;
size_t me_gemm_apack_floats(void);

/* SwiGLU's first half: with g = A·B[:, 0:n/2] and u = A·B[:, n/2:n] (rows
   gathered as me_gemm_rows'), c[:, 0:n/2] = silu(g) ⊙ u as me_silu_vec
   computes it. c has n columns: the up half is scratch (left as u where
   the product runs without AMX, untouched on AMX). ap: NULL, or A's packed
   copy kept for the next product over the same rows (me_gemm_apack). */
void me_gemm_swiglu(int m, const float *a, size_t lda, const int *rows, const me_gemm_b *b, float *c, size_t ldc,
                    me_gemm_apack *ap);

/* OpenBLAS rounds a row differently with the rows around it. While
   *b->batch_invariant is set (a model's weights point at the model's
   switch, which moedit_sample sets for the native RNG, whose samples promise
   not to depend on their batch), me_gemm/me_gemm_rows on the OpenBLAS path
   run me_gemm_invariant instead: each element one sequential sum over k,
   the same whatever the batch, its order or the thread count (the own
   kernels are that already: their blocking depends on k only). The switch
   belongs to the operand, not the process, so samplers on other models in
   other threads never change it. */
void me_gemm_invariant(int m, const float *a, size_t lda, const int *rows, const float *b, int k, int n,
                       float alpha, const float *bias, float beta, float *c, size_t ldc);

/* cblas_sgemm(CblasRowMajor, …) with the same arguments, through the own
   kernels (packing B per call): a drop-in replacement. */
void me_sgemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda,
              const float *b, int ldb, float beta, float *c, int ldc);

#endif

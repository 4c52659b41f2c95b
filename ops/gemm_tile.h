/* gemm_tile.h — the contract between ops/gemm.c's blocked product and its
   per-ISA tile kernels (internal to ops/). A tile kernel multiplies one
   packed A micro-panel ([kc][mr] floats, or [kc/2][mr] bf16 pairs) by one
   packed B panel ([kc][32] floats, or [kc/2][32] pairs), summing over k in
   order, and stores C = alpha·acc + bias + beta·C over the live columns as
   fmadd(alpha, acc, bias) then fmadd(beta, C, ·) — the same operations in
   every kernel set, so AVX2 and AVX-512 tiles agree bit for bit; a row
   bias and a ReLU let a convolution's tile store its output channels
   straight into the image (ops/conv_gemm.c). While it
   runs, a tile also prefetches pf_lines 64-byte lines from pf (the next B
   panel, for the tiles that follow; prefetcht0, into L1 and L2), at most
   one per step of its k loop: spread out, they never fill the miss
   buffers at once. The AVX-512 tiles spread them evenly over the whole
   loop, the AVX2 ones share them between a tile's parts, each spreading
   its share over its own k loop (never more lines than steps: the next
   panel's K block may be the longer). */
#ifndef MOEDIT_OPS_GEMM_TILE_H
#define MOEDIT_OPS_GEMM_TILE_H

#include <stddef.h>
#include <stdint.h>
#include "ops/gemm.h"

#define ME_GEMM_NR 32      /* columns per packed B panel, every kernel set */
#define ME_GEMM_MR_AVX2 6  /* rows per AVX2 tile: two parts of 3 rows × 4 ymm accumulators */
#define ME_GEMM_MR_AVX512 14  /* rows per AVX-512 tile: 14 × 2 zmm accumulators */

typedef struct {
    float *c;
    size_t ldc;
    int nr;             /* live columns, 1..32 */
    const float *bias;  /* NULL, or at the tile's first column */
    float alpha, beta;
    const char *pf;     /* NULL, or lines to prefetch */
    int pf_lines;       /* lines at pf (the next panel: it may have more K steps than this tile) */
    const float *row_bias;   /* NULL, or one value per row (at the tile's first), added with bias */
    int relu;           /* results below zero stored as 0 (NaN and -0 kept), after beta·C */
} me_tile_out;

typedef void (*me_tile_fn)(int kc, const void *a, const void *b, const me_tile_out *o);
/* A float32 tile whose B rows are read where they lie instead of from a
   packed panel (AVX-512; ops/conv_gemm.c's stride-1 convolutions, whose
   rows are shifted runs of the input): row k is the 32 floats at base +
   off[k]; with mask, lanes outside mask[k] (bit t: lane t) are zeros and
   never read. next: NULL, or the next panel's base, whose rows at the
   same offsets the tile fetches as it goes (o->pf is not used). Bit for
   bit the packed tile's result over a panel of those rows. */
typedef void (*me_tile_rows_fn)(int kc, const float *a, const float *base, const int32_t *off, const uint32_t *mask,
                                const float *next, const me_tile_out *o);

/* AVX2+FMA float32 tiles, indexed by live rows 1..6 (ops/gemm_avx2.c). */
extern const me_tile_fn me_tiles_avx2[ME_GEMM_MR_AVX2 + 1];
/* Their A panel: [kc][6] floats from 6 row pointers, rows ≥ live zero. */
void me_pack_a_avx2(const float *const *row, int live, int kc, float *d);
/* The same panel from `live` columns of a row-major source: row i, k is
   src[k·ld + i] (me_gemm_pack_a_cols' AVX2 form). */
void me_pack_a_cols_avx2(const float *src, size_t ld, int live, int kc, float *d);
/* me_gemm_transpose32 on AVX2. */
void me_transpose32_avx2(const float *src, int rows, int cols, const float *scale, float *out, size_t ldo);
/* One whole B panel [k][32] from float32 columns: column c, row kk is
   src[kk·ld + c] (trans 0: row segments, copied) or src[c·ld + kk] (trans
   1: 8×8 blocks transposed in registers). Needs AVX2 only. */
void me_pack_b_avx2(const float *src, size_t ld, int trans, int k, float *d);

/* [rows][32] floats as the bf16 tiles' B panel, [⌈rows/2⌉][32] pairs (the
   odd pad row zero). Needs AVX512-BF16. */
void me_pack_pairs_bf16(const float *src, int rows, uint16_t *dst);

/* Panels of 32 columns covering n, and the element index of panel p, row
   kk (kk even in bf16) in a packed B (ops/gemm_pack.c). */
static inline int me_gemm_panels(int n) { return (n + ME_GEMM_NR - 1) / ME_GEMM_NR; }
static inline size_t me_gemm_panel_offset(const me_gemm_b *b, int p, int kk)
{
    return ((size_t)p * b->kp + kk) * ME_GEMM_NR;
}
/* me_sgemm's B block: columns [j, j+live) × k-range [k0, k0+kc) of a
   row-major B (tb: transposed) into one [kc][32] panel, zero past live. */
void me_gemm_pack_b_block(const float *b, size_t ldb, int tb, int k0, int kc, int j, int live, float *dst);

/* Tile t of the `tiles` (tiles of at most mr rows) that cover `rows`
   rows: its first row and row count. AVX-512 tiles (mr 14) take counts
   that differ by one at most, AVX2 ones whole tiles and a remainder. */
void me_gemm_tile_span(int rows, int tiles, int mr, int t, int *r0, int *live);

/* The tiles and K block bound me_gemm uses on this CPU, for the
   convolutions (ops/conv_gemm.c), which pack their own operands: float32
   tiles (bf16 0) or bfloat16-pair tiles (bf16 1, AVX512-BF16 only). kc is
   the K block bound in elements (bf16: its own, up to twice the float32 one). Returns 0,
   filling nothing, where no own kernel of that kind runs. */
typedef struct {
    int mr, kc;
    const me_tile_fn *tiles;   /* by live rows 1..mr */
    const me_tile_rows_fn *rows;   /* the same reading B in place, by live rows; NULL but on AVX-512 float32 */
} me_tile_plan;
int me_gemm_tile_plan(int bf16, me_tile_plan *p);

/* One A panel of the plan's tiles from `live` rows (row pointers, kc
   floats each; rows past live zero): [kc][mr] floats, or with bf16
   [⌈kc/2⌉][mr] pairs (the odd pad k zero). Own kernels only. */
void me_gemm_pack_a(const float *const *row, int live, int kc, int bf16, void *dst);
/* The same panel from `live` columns of a row-major source: row i, k is
   src[k·ld + i]. */
void me_gemm_pack_a_cols(const float *src, size_t ld, int live, int kc, int bf16, void *dst);

/* A tile output block [rows][32] (row stride 32) written transposed:
   out[j·ldo + d] = src[d·32 + j] · scale[j] for d < rows, j < cols. */
void me_gemm_transpose32(const float *src, int rows, int cols, const float *scale, float *out, size_t ldo);

#endif

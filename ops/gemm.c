/* Float32 GEMM, BLIS-style, on own kernels chosen at run time: AVX-512
   (14×32 tiles, and their bfloat16 twin on AVX512-BF16) or AVX2+FMA (6×32
   tiles, ops/gemm_avx2.c), with block sizes from this CPU's caches
   (core/cpu.h); OpenBLAS where the CPU has neither.

   Blocking, from the inside out:
   - Microkernel (AVX-512): a 14×32 tile of C in 28 zmm accumulators. Per k
     it loads two 16-float vectors of B and broadcasts 14 values of A: 28
     FMAs for 16 loads. The bf16 kernel does the same per pair of k with
     vdpbf16ps, each lane multiplying two bf16 products into one float32 sum.
   - B is packed in panels of NR = 32 columns, k-major ([kp][32] floats, or
     [kp/2][32][2] bf16), zero-padded to whole panels, the same layout for
     every kernel set. Weights are packed once at load (me_gemm_b); me_sgemm
     packs KC×NC blocks per call (the packing: ops/gemm_pack.c).
   - A is packed per KC×MC block into panels of MR rows ([kc][MR], or
     [kc/2][MR][2] bf16), zero-padded; alpha scales the tile when stored.
   - Loops: K in blocks of ≤ KC (C accumulates from the second block on) →
     M in equal blocks of ≤ MC (the packed A block stays in L2) → B panels
     (a KC×32 micro-panel, which fills L1d; the next one is prefetched
     meanwhile, by the tiles — after the last, the next M or K block's
     first, or the caller's next product's: me_gemm_b_then) → A panels →
     kernel, which prefetches its C lines before its k loop. When a
     thread's rows of A, packed for all of K, fit its 512 KB buffer, A is
     packed once and the B panels go outermost instead, each through all
     its K blocks (resident_product): same sums, C kept in L1 between K
     blocks.
     KC is K split evenly, so the blocking, and with it every element's
     summation order, depends on K and the CPU's L1 size only — never on M
     or the thread count.
   - Threads: one OpenMP region per product. Each thread takes a range of
     B panels or a range of rows, whichever moves less data (split_by_rows);
     the same kernels run either way, so results do not change with the
     thread count.

   - AMX (ops/gemm_amx.c): on CPUs with AMX-BF16, bf16 products whose K
     is a multiple of 32 run on tile products instead, over the same
     packed B panels, each thread a share of 32-row blocks or of panels.

   On OpenBLAS the same interface holds: a "packed" B is then a plain
   row-major float copy. */
#include <stdlib.h>
#include <string.h>
#include <omp.h>
#include <cblas.h>
#include "core/core.h"
#include "core/cpu.h"
#include "ops/gemm.h"
#include "ops/gemm_amx.h"
#include "ops/vexp.h"
#include "ops/gemm_tile.h"
#include "ops/simd512.h"

#define MR ME_GEMM_MR_AVX512
#define NR ME_GEMM_NR
#define KC_MAX_F32 384   /* float32 K block bound of either tile set */
#define KC_MAX_BF16 512  /* bf16 K block bound */
#define ABUF_FLOATS 131072 /* one thread's packed A: 512 KB on its stack */
#define MC_FLOATS 65536  /* bound of the MC×KC A block of the K-block-outer order (256 KB) */
#define SGEMM_B_FLOATS (256 * NR * 16)   /* me_sgemm's B block on the stack (512 KB): KC × NC */

/* Below this many flops a parallel region costs more than it saves. */
#define PAR_MIN_FLOPS 2e6

int me_gemm_native(int bf16)
{
    return bf16 ? me_cpu_bf16() : me_cpu_isa() != ME_ISA_BLAS;
}

/* ---- kernels ---------------------------------------------------------- */

ME_AVX512_BEGIN

/* Where a tile goes: C = alpha·acc + bias + beta·C over the live columns
   (beta 0 never reads C). */
typedef me_tile_out tile_out;

/* extras (a constant after inlining): o's row bias and ReLU, which only the
   convolutions' tiles that store into the image set (tile_done picks); the
   products' stores compile without them. The settings are read once: the
   masked stores may alias anything, so read through o they were loaded
   and tested again after every row's store (as in the AVX2 tiles, where
   reading them once took a Zen 2 core's tile from 89 to 91 % of its
   peak). */
static inline __attribute__((always_inline)) void store_tile(int mr, int extras, __m512 acc[MR][2],
                                                            const tile_out *o)
{
    __mmask16 m0 = o->nr >= 16 ? 0xffff : (__mmask16)((1u << o->nr) - 1);
    __mmask16 m1 = o->nr >= 32 ? 0xffff : o->nr <= 16 ? 0 : (__mmask16)((1u << (o->nr - 16)) - 1);
    float *c0 = o->c;
    const float *bias = o->bias, *row_bias = extras ? o->row_bias : NULL;
    size_t ldc = o->ldc;
    int add_c = o->beta != 0.0f, relu = extras && o->relu;
    __m512 b0 = _mm512_setzero_ps(), b1 = _mm512_setzero_ps();
    if (bias) b0 = _mm512_maskz_loadu_ps(m0, bias), b1 = _mm512_maskz_loadu_ps(m1, bias + 16);
    __m512 alpha = _mm512_set1_ps(o->alpha), beta = _mm512_set1_ps(o->beta);
    #pragma GCC unroll 14
    for (int i = 0; i < mr; i++) {
        float *c = c0 + (size_t)i * ldc;
        __m512 r0 = b0, r1 = b1;
        if (row_bias) {
            __m512 r = _mm512_set1_ps(row_bias[i]);
            r0 = bias ? _mm512_add_ps(b0, r) : r, r1 = bias ? _mm512_add_ps(b1, r) : r;
        }
        __m512 v0 = _mm512_fmadd_ps(alpha, acc[i][0], r0), v1 = _mm512_fmadd_ps(alpha, acc[i][1], r1);
        if (add_c) {
            v0 = _mm512_fmadd_ps(beta, _mm512_maskz_loadu_ps(m0, c), v0);
            v1 = _mm512_fmadd_ps(beta, _mm512_maskz_loadu_ps(m1, c + 16), v1);
        }
        if (relu) {   /* max(0, v) is v unless 0 > v: NaN and -0 stay */
            v0 = _mm512_max_ps(_mm512_setzero_ps(), v0);
            v1 = _mm512_max_ps(_mm512_setzero_ps(), v1);
        }
        _mm512_mask_storeu_ps(c, m0, v0);
        _mm512_mask_storeu_ps(c + 16, m1, v1);
    }
}

static inline __attribute__((always_inline)) void tile_done(int mr, __m512 acc[MR][2], const tile_out *o)
{
    if (o->row_bias || o->relu)
        store_tile(mr, 1, acc, o);
    else
        store_tile(mr, 0, acc, o);
}

/* C's rows are ldc apart, a stride the hardware prefetchers miss: fetch the
   tile's lines a whole k loop before the store needs them. */
static inline __attribute__((always_inline)) void prefetch_c(int mr, const tile_out *o)
{
    #pragma GCC unroll 14
    for (int i = 0; i < mr; i++) {
        const float *c = o->c + (size_t)i * o->ldc;
        __builtin_prefetch(c, 1, 3);
        __builtin_prefetch(c + 16, 1, 3);
        __builtin_prefetch(c + 31, 1, 3);
    }
}

/* One k step of the 14×32 tile: two 16-float loads of B, mr broadcasts of A. */
static inline __attribute__((always_inline)) void f32_step(int mr, const float *a, const float *b, __m512 acc[MR][2])
{
    __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16);
    #pragma GCC unroll 14
    for (int i = 0; i < mr; i++) {
        __m512 ai = _mm512_set1_ps(a[i]);
        acc[i][0] = _mm512_fmadd_ps(ai, b0, acc[i][0]);
        acc[i][1] = _mm512_fmadd_ps(ai, b1, acc[i][1]);
    }
}

/* The same for one pair of k: 32 columns of bf16 pairs, mr broadcast pairs. */
static inline __attribute__((always_inline)) void bf16_step(int mr, const uint32_t *ap, const uint16_t *b,
                                                           __m512 acc[MR][2])
{
    __m512bh b0 = (__m512bh)_mm512_load_si512(b), b1 = (__m512bh)_mm512_load_si512(b + 32);
    #pragma GCC unroll 14
    for (int i = 0; i < mr; i++) {
        __m512bh ai = (__m512bh)_mm512_set1_epi32((int)ap[i]);
        acc[i][0] = _mm512_dpbf16_ps(acc[i][0], ai, b0);
        acc[i][1] = _mm512_dpbf16_ps(acc[i][1], ai, b1);
    }
}

/* mr rows (a compile-time constant after inlining) × 32 columns over kc. */
static inline __attribute__((always_inline)) void kernel_f32(int mr, int kc, const float *a, const float *b,
                                                            const tile_out *o)
{
    __m512 acc[MR][2];
    #pragma GCC unroll 14
    for (int i = 0; i < mr; i++) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
    prefetch_c(mr, o);
    /* one prefetched line per `every` steps, from step 0 on: the steps in
       between run without a branch of their own */
    int pf_n = o->pf ? o->pf_lines : 0, every = pf_n ? kc / pf_n : 0, k = 0;
    for (int line = 0; line < pf_n; line++) {
        __builtin_prefetch(o->pf + 64 * line, 0, 3);
        for (int j = 0; j < every; j++, k++, a += MR, b += NR) f32_step(mr, a, b, acc);
    }
    for (; k < kc; k++, a += MR, b += NR) f32_step(mr, a, b, acc);
    tile_done(mr, acc, o);
}

/* The same over kc/2 pairs of k: a holds [kc/2][14] pairs, b [kc/2][32] pairs. */
static inline __attribute__((always_inline)) void kernel_bf16(int mr, int kc, const uint16_t *a,
                                                             const uint16_t *b, const tile_out *o)
{
    __m512 acc[MR][2];
    #pragma GCC unroll 14
    for (int i = 0; i < mr; i++) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
    prefetch_c(mr, o);
    const uint32_t *ap = (const uint32_t *)a;
    int pf_n = o->pf ? o->pf_lines : 0, every = pf_n ? kc / 2 / pf_n : 0, k = 0;
    for (int line = 0; line < pf_n; line++) {
        __builtin_prefetch(o->pf + 64 * line, 0, 3);
        for (int j = 0; j < every; j++, k += 2, ap += MR, b += 2 * NR) bf16_step(mr, ap, b, acc);
    }
    for (; k < kc; k += 2, ap += MR, b += 2 * NR) bf16_step(mr, ap, b, acc);
    tile_done(mr, acc, o);
}

/* kernel_f32 with B's rows read where they lie (me_tile_rows_fn): row k is
   the 32 floats at base + off[k], lanes outside mask[k] read as zeros
   (masked: never loaded). The same sums in the same order as over a
   packed panel of those rows. next: the next panel's lane 0, whose rows
   at the same offsets are fetched into L1 and L2 along the way. */
static inline __attribute__((always_inline)) void rows_step(int mr, int masked, int fetch, int k, const float *a,
                                                           const float *base, const int32_t *off,
                                                           const uint32_t *mask, const float *next,
                                                           __m512 acc[MR][2])
{
    const float *b = base + off[k];
    if (fetch) {
        __builtin_prefetch(next + off[k], 0, 3);
        __builtin_prefetch(next + off[k] + 16, 0, 3);
    }
    __m512 b0, b1;
    if (masked) {
        b0 = _mm512_maskz_loadu_ps((__mmask16)mask[k], b);
        b1 = _mm512_maskz_loadu_ps((__mmask16)(mask[k] >> 16), b + 16);
    } else {
        b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16);
    }
    #pragma GCC unroll 14
    for (int i = 0; i < mr; i++) {
        __m512 ai = _mm512_set1_ps(a[(size_t)k * MR + i]);
        acc[i][0] = _mm512_fmadd_ps(ai, b0, acc[i][0]);
        acc[i][1] = _mm512_fmadd_ps(ai, b1, acc[i][1]);
    }
}

static inline __attribute__((always_inline)) void kernel_rows(int mr, int masked, int kc, const float *a,
                                                             const float *base, const int32_t *off,
                                                             const uint32_t *mask, const float *next,
                                                             const tile_out *o)
{
    __m512 acc[MR][2];
    #pragma GCC unroll 14
    for (int i = 0; i < mr; i++) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
    prefetch_c(mr, o);
    if (next)
        for (int k = 0; k < kc; k++) rows_step(mr, masked, 1, k, a, base, off, mask, next, acc);
    else
        for (int k = 0; k < kc; k++) rows_step(mr, masked, 0, k, a, base, off, mask, next, acc);
    tile_done(mr, acc, o);
}

typedef me_tile_fn kernel_fn;

#define KERNELS(R)                                                                              \
    static void kf_##R(int kc, const void *a, const void *b, const tile_out *o)                 \
    {                                                                                           \
        kernel_f32(R, kc, a, b, o);                                                             \
    }                                                                                           \
    static void kb_##R(int kc, const void *a, const void *b, const tile_out *o)                 \
    {                                                                                           \
        kernel_bf16(R, kc, a, b, o);                                                            \
    }                                                                                           \
    static void kr_##R(int kc, const float *a, const float *base, const int32_t *off,           \
                       const uint32_t *mask, const float *next, const tile_out *o)              \
    {                                                                                           \
        if (mask)                                                                               \
            kernel_rows(R, 1, kc, a, base, off, mask, next, o);                                 \
        else                                                                                    \
            kernel_rows(R, 0, kc, a, base, off, mask, next, o);                                 \
    }
KERNELS(1) KERNELS(2) KERNELS(3) KERNELS(4) KERNELS(5) KERNELS(6) KERNELS(7)
KERNELS(8) KERNELS(9) KERNELS(10) KERNELS(11) KERNELS(12) KERNELS(13) KERNELS(14)
#undef KERNELS

/* Indexed by live rows. */
static const kernel_fn kernels_f32[MR + 1] = {NULL, kf_1, kf_2, kf_3, kf_4, kf_5, kf_6, kf_7,
                                              kf_8, kf_9, kf_10, kf_11, kf_12, kf_13, kf_14};
static const kernel_fn kernels_bf16[MR + 1] = {NULL, kb_1, kb_2, kb_3, kb_4, kb_5, kb_6, kb_7,
                                               kb_8, kb_9, kb_10, kb_11, kb_12, kb_13, kb_14};
static const me_tile_rows_fn kernels_rows[MR + 1] = {NULL, kr_1, kr_2, kr_3, kr_4, kr_5, kr_6, kr_7,
                                                     kr_8, kr_9, kr_10, kr_11, kr_12, kr_13, kr_14};

/* ---- blocked product --------------------------------------------------- */

/* One product: A (m×k, row stride lda, transposed when trans_a), alpha,
   bias, beta, C; B comes as panels. */
typedef struct {
    const float *a;
    size_t lda;
    const int *rows;    /* NULL, or row i of A is a + rows[i]·lda (untransposed only) */
    int trans_a, bf16;
    float alpha, beta;
    const float *bias;
    float *c;
    size_t ldc;
    void *abuf;         /* NULL, or where A is packed (me_gemm_apack) instead of the stack */
    int a_packed;       /* abuf already holds this A: no packing */
    const void *then;   /* NULL, or prefetched during the last panel (me_gemm_b_then; one-thread products) */
    int then_lines;
} gemm_job;

ME_AVX512_END

/* Tile shape and block sizes for this CPU, fixed at the first product. */
typedef struct {
    int mr;                /* tile rows: MR (AVX-512) or ME_GEMM_MR_AVX2 */
    int kc;                /* float32 K block bound */
    int kc_bf16;           /* bf16 K block bound: 2·kc (the same bytes) up to KC_MAX_BF16 */
    long mc_bytes;         /* bound of a packed A block */
    const kernel_fn *f32;  /* tiles by live rows */
} gemm_plan;

static gemm_plan the_plan;

/* KC: the KC×32 micro-panel a tile streams (all 32 columns per k, the
   AVX2 tiles once per part of three rows) fills up to one and a half
   L1d, up to KC_MAX_F32. The panel is then re-read
   partly from L2 by each tile, at 128 bytes per 28 FMAs, far below L2's
   bandwidth; what a longer K block buys is fewer passes of C through the
   store and of the tiles' start and drain. Measured on a Zen 3 core
   (AVX2, 6×32 tiles of 6×16 halves over 19 A panels): KC 128 86–93
   GFLOP/s of 103, KC 256 95–98; on a Zen 4 core (AVX-512, 32 KB L1d):
   KC 256 against 128, the tile alone 115.6 against
   113.4 GFLOP/s of 118, S/2 CFG-pair forwards 2.5 % (float32) and 4.5 %
   (bf16, K blocks of 512) faster; then 384 (a 48 KB micro-panel) against
   256, alternate forwards of one process: float32 S/2 pairs 1.3–1.7 %,
   B/2 pairs 0.2–1.3 %, S/2 batches of 16 0.7 % faster, the VAE decode and
   Inception even (±0.1 %). On a Zen 5 core (48 KB L1d) KC 384 against
   256: float32 S/2 and B/2 CFG pairs and batches of 16 1.7–3.9 % faster
   in five of six runs (one even), the K = 384 products then one K block;
   bf16 (768 against 512) even, so bf16 stays at 512; the VAE decode and
   Inception even (±1 %). The AVX2 tiles of three-row parts (ops/
   gemm_avx2.c) on a Zen 2 core (32 KB L1d), KC 384 against 192 (until
   then their bound; 256 had measured slower than 192, its K blocks of 192
   and 256 for K 384 and 768), alternate processes: float32 S/2 CFG pairs
   2.4 % faster (medians 350.7 → 342.3 ms), B/2 pairs 2.0 %, S/2 batches
   of 16 2.6 %, B/2 batches of 16 1.9 %, the VAE decode and Inception
   even; 768 (a 96 KB panel) against 384: even. KC is rounded down to 16;
   MC is mc_rows'. */
static const gemm_plan *plan(void)
{
    if (__atomic_load_n(&the_plan.mr, __ATOMIC_ACQUIRE)) return &the_plan;
    const me_cpu *cpu = me_cpu_info();
    long l1 = cpu->l1d > 0 ? cpu->l1d : 32768, l2 = cpu->l2 > 0 ? cpu->l2 : 524288;
    gemm_plan p;
    p.mr = me_cpu_isa() == ME_ISA_AVX512 ? MR : ME_GEMM_MR_AVX2;
    p.f32 = p.mr == MR ? kernels_f32 : me_tiles_avx2;
    long kc = 3 * l1 / (2 * NR * (long)sizeof(float)) / 16 * 16;
    p.kc = kc < 64 ? 64 : kc > KC_MAX_F32 ? KC_MAX_F32 : (int)kc;
    p.kc_bf16 = 2 * p.kc < KC_MAX_BF16 ? 2 * p.kc : KC_MAX_BF16;
    p.mc_bytes = l2 / 2 < MC_FLOATS * (long)sizeof(float) ? l2 / 2 : MC_FLOATS * (long)sizeof(float);
    /* Racing first calls compute the same plan; mr, stored last, publishes it. */
    the_plan.kc = p.kc, the_plan.kc_bf16 = p.kc_bf16, the_plan.mc_bytes = p.mc_bytes, the_plan.f32 = p.f32;
    __atomic_store_n(&the_plan.mr, p.mr, __ATOMIC_RELEASE);
    return &the_plan;
}

/* MC: rows per packed A block for K blocks of kcp elements, whole tiles
   (at least one), the block filling half of L2 (within the stack
   buffers) whatever the K block: products whose K blocks are short of the
   bound (K 384 in float32 halves of 192, or one bf16 block of 384) then
   take up to 336 rows per block instead of 252, and B is streamed once
   for 256 rows rather than twice. Rows count as 64 floats at least, so a
   tiny K never makes a block of thousands of rows. */
static int mc_rows(int kcp, int bf16)
{
    const gemm_plan *pl = plan();
    long row = (long)kcp * (bf16 ? sizeof(uint16_t) : sizeof(float));
    if (row < 64 * (long)sizeof(float)) row = 64 * (long)sizeof(float);
    int mc = (int)(pl->mc_bytes / row) / pl->mr * pl->mr;
    return mc < pl->mr ? pl->mr : mc;
}

/* Tile t of the `tiles` that cover `rows` rows in tiles of at most mr:
   its first row and row count. AVX-512 tiles share the rows out evenly
   (counts differ by one at most) rather than as full tiles and a
   remainder: on a Zen 4 core they ran 8–14 rows at 113–116 GFLOP/s but
   2–4 rows at 78–79, and products of 100, 128 and 142 rows (n 3072, k 384;
   one thread) went from 108–109 to 110.5–111.5 GFLOP/s. The 6-row AVX2
   tiles keep full tiles: dealt evenly (5 and 6 rows) they ran as fast or
   up to 0.5 % slower (same host, AVX-512 turned off). */
void me_gemm_tile_span(int rows, int tiles, int mr, int t, int *r0, int *live)
{
    if (mr != MR) {
        *r0 = t * mr;
        *live = rows - *r0 < mr ? rows - *r0 : mr;
        return;
    }
    int base = rows / tiles, extra = rows % tiles;
    *r0 = t * base + (t < extra ? t : extra);
    *live = base + (t < extra);
}

/* Rows [i0, i0+rows) × k-range [k0, k0+kc) of A into `tiles` panels of
   mr rows each, the me_gemm_tile_span rows live and the rest zero (kc
   rounded up to even for bf16; the pad is zero). */
static void pack_a(const gemm_job *g, int mr, int i0, int rows, int tiles, int k0, int kc, void *buf)
{
    int kcp = g->bf16 ? (kc + 1) & ~1 : kc;
    for (int p = 0; p < tiles; p++) {
        int r0, live;
        me_gemm_tile_span(rows, tiles, mr, p, &r0, &live);
        void *panel = (char *)buf + (size_t)p * kcp * mr * (g->bf16 ? sizeof(uint16_t) : sizeof(float));
        if (!g->trans_a) {
            const float *row[MR];
            for (int i = 0; i < live; i++) {
                int r = i0 + r0 + i;
                row[i] = g->a + (size_t)(g->rows ? g->rows[r] : r) * g->lda + k0;
            }
            me_gemm_pack_a(row, live, kc, g->bf16, panel);
            continue;
        }
        /* Transposed A (me_sgemm, float32 only): row i is column i0 + r0 + i. */
        me_gemm_pack_a_cols(g->a + (size_t)k0 * g->lda + i0 + r0, g->lda, live, kc, 0, panel);
    }
}

/* One packed A block's tiles (rows ic + r0[t], rows[t] of them; panels
   of mr rows over kcp k steps) against one B micro-panel bp: columns
   [j, j+nr) of C, bias and beta applied when first. `next` (NULL: none),
   `lines` 64-byte lines long, is the B micro-panel that runs next: a
   slice per tile is prefetched, each tile spreading its slice over its k
   loop — the hardware prefetchers would only start on it at its first
   misses. In the tile instead of a burst before it: S/2 and B/2 forwards
   2 % faster (Zen 3 host, three interleaved rounds), and no longer held
   to 8 tiles or more (bursts of long slices stalled more than they hid:
   2-row products lost a third), 16-row products 2 % faster. Evenly over
   the whole loop rather than one line per step from its start (AVX-512
   tiles; Zen 5 host, alternate forwards of one process): S/2 CFG pair
   1.9–2.4 % faster, bf16 1.8–5.4 %, batch 16 2.9–4.9 %, B/2 0.1–0.6 %.
   From two tiles on, a slice (≤ lines/2) fits a tile's k steps. As
   prefetcht0 rather than prefetcht1 (into L1 as well, presumably what the
   next panel's first tile gains; the same process, alternate forwards,
   Zen 5 host): S/2 CFG pair 2.6 % faster in bf16 and 2.3 % in
   float32, B/2 pair 4.1 % (bf16), S/2 batch 16 1.1 %; a cold-weights
   128×384×1536 bf16 product 82.4–82.8 → 84.5 % of the peak; VAE decode
   unchanged, Inception 2 %; the AVX2 tiles (same host, AVX-512 off) 1.9 %.
   Front-loading the lines (the first half of the k loop) lost half of it. */
static void panel_tiles(const gemm_job *g, const kernel_fn *kern, int mr, int ic, int tiles, const int *r0,
                        const int *rows, int kcp, const void *abuf, const void *bp, int j, int nr, int first,
                        const char *next, int lines)
{
    size_t esz = g->bf16 ? sizeof(uint16_t) : sizeof(float);
    int per_tile = (lines + tiles - 1) / tiles;
    if (tiles < 2) next = NULL;
    for (int t = 0; t < tiles; t++) {
        int l0 = t * per_tile, nl = lines - l0 < per_tile ? lines - l0 : per_tile;
        tile_out o = {.c = g->c + (size_t)(ic + r0[t]) * g->ldc + j, .ldc = g->ldc, .nr = nr,
                      .bias = first && g->bias ? g->bias + j : NULL, .alpha = g->alpha, .beta = first ? g->beta : 1.0f,
                      .pf = next && nl > 0 ? next + (size_t)l0 * 64 : NULL, .pf_lines = nl};
        kern[rows[t]](kcp, (const char *)abuf + (size_t)t * mr * kcp * esz, bp, &o);
    }
}

/* The tiles that cover `rows` rows (at most ABUF_FLOATS / 64: K blocks
   are at least 64 long). */
#define MAX_TILES (ABUF_FLOATS / 64 / ME_GEMM_MR_AVX2 + 1)
static int tile_spans(int rows, int mr, int *r0, int *live)
{
    int tiles = (rows + mr - 1) / mr;
    for (int t = 0; t < tiles; t++) me_gemm_tile_span(rows, tiles, mr, t, &r0[t], &live[t]);
    return tiles;
}

/* 64-byte lines in one B micro-panel of a kc-deep K block (bf16: kc
   rounded up to even pairs): what the tiles prefetch of the next one. */
static int panel_lines(int kc, int bf16)
{
    int kcp = bf16 ? (kc + 1) & ~1 : kc;
    return (int)((size_t)kcp * NR * (bf16 ? sizeof(uint16_t) : sizeof(float)) / 64);
}

/* C[i0.., j0..] over one K block: rows [i0, i1) against B panels [p0, p1)
   (pb points at panel p0, row k0; consecutive panels pstride elements
   apart; j0 = p0·NR is the first column). first: apply bias and beta,
   else accumulate. abuf holds one packed A block. */
static void block_product(const gemm_job *g, int i0, int i1, int k0, int kc, const void *pb, size_t pstride,
                          int p0, int p1, int n, int first, const void *after, int after_lines, void *abuf)
{
    const gemm_plan *pl = plan();
    const kernel_fn *kern = g->bf16 ? kernels_bf16 : pl->f32;
    size_t esz = g->bf16 ? sizeof(uint16_t) : sizeof(float);
    int kcp = g->bf16 ? (kc + 1) & ~1 : kc, MRp = pl->mr;
    /* Rows in equal blocks of at most mc (whole tiles): a small last block
       would stream every B panel again for a few rows. */
    int mc_max = mc_rows(kcp, g->bf16);
    int nb = (i1 - i0 + mc_max - 1) / mc_max, per = (i1 - i0 + nb - 1) / nb;
    int MC = (per + MRp - 1) / MRp * MRp;
    int lines = panel_lines(kc, g->bf16);
    for (int ic = i0; ic < i1; ic += MC) {
        int mc = i1 - ic < MC ? i1 - ic : MC;
        int tile_r0[MAX_TILES], tile_rows[MAX_TILES];
        int tiles = tile_spans(mc, MRp, tile_r0, tile_rows);
        if (!g->a_packed) pack_a(g, MRp, ic, mc, tiles, k0, kc, abuf);
        for (int p = p0; p < p1; p++) {
            const char *bp = (const char *)pb + (size_t)(p - p0) * pstride * esz;
            int j = p * NR, nr = n - j < NR ? n - j : NR, last = p + 1 == p1 && ic + MC >= i1;
            panel_tiles(g, kern, MRp, ic, tiles, tile_r0, tile_rows, kcp, abuf, bp, j, nr, first,
                        p + 1 < p1 ? bp + pstride * esz : last ? after : pb, last ? after_lines : lines);
        }
    }
}

/* Whether `rows` rows of A, packed for every K block, fit abuf (and K
   takes more than one block: otherwise the two orders are the same). */
static int a_resident(const gemm_job *g, int rows, int k, int kc)
{
    int mr = plan()->mr, tiles = (rows + mr - 1) / mr, nkb = (k + kc - 1) / kc;
    size_t elems = (size_t)tiles * mr * nkb * kc, floats = g->bf16 ? (elems + 1) / 2 : elems;
    return nkb > 1 && tiles <= MAX_TILES && floats <= ABUF_FLOATS;
}

/* Rows [i0, i1) (a_resident) against B panels [p0, p1) over all of K: A
   packed once for every K block, then each B panel through every K block
   before the next panel. A tile's C is then accumulated while it is still
   in L1, rather than after a pass over all the panels (from L3 once C
   outgrows L2: a 128-row expert's gate·up product is 128×3072 floats),
   and B is read in its stored order, each panel's K blocks back to back.
   Every element is summed as in block_product's order, so the results do
   not change. Measured on a Zen 5 core (interleaved rounds, cold weights):
   S/2 expert gate·up products (K 384, 128–161 rows) 3–4.5 % faster, B/2's
   (K 768, 128–168 rows) 2–6.5 %; S/2 and B/2 forwards 1–2.4 %. */
static void resident_product(const gemm_job *g, int i0, int i1, const me_gemm_b *b, int kc, int p0, int p1,
                             void *abuf)
{
    const gemm_plan *pl = plan();
    const kernel_fn *kern = g->bf16 ? kernels_bf16 : pl->f32;
    size_t esz = g->bf16 ? sizeof(uint16_t) : sizeof(float);
    int MRp = pl->mr, k = b->k, nkb = (k + kc - 1) / kc;
    int tile_r0[MAX_TILES], tile_rows[MAX_TILES];
    int tiles = tile_spans(i1 - i0, MRp, tile_r0, tile_rows);
    size_t block_bytes = (size_t)tiles * MRp * kc * esz;   /* every K block but the last is kc long (even) */
    for (int kb = 0; kb < nkb && !g->a_packed; kb++)
        pack_a(g, MRp, i0, i1 - i0, tiles, kb * kc, k - kb * kc < kc ? k - kb * kc : kc,
               (char *)abuf + kb * block_bytes);
    for (int p = p0; p < p1; p++) {
        int j = p * NR, nr = b->n - j < NR ? b->n - j : NR;
        for (int kb = 0; kb < nkb; kb++) {
            int k0 = kb * kc, len = k - k0 < kc ? k - k0 : kc, kcp = g->bf16 ? (len + 1) & ~1 : len;
            const char *bp = (const char *)b->data + me_gemm_panel_offset(b, p, k0) * esz;
            /* Panel p's K blocks and then panel p+1's lie back to back. */
            int last = kb + 1 == nkb, more = !last || p + 1 < p1;
            int next_len = last ? (k < kc ? k : kc) : k - k0 - kc < kc ? k - k0 - kc : kc;
            panel_tiles(g, kern, MRp, i0, tiles, tile_r0, tile_rows, kcp, (const char *)abuf + kb * block_bytes, bp, j,
                        nr, kb == 0, more ? bp + (size_t)kcp * NR * esz : g->then,
                        more ? panel_lines(next_len, g->bf16) : g->then_lines);
        }
    }
}

/* K split into equal blocks of at most kc_max (even, for the bf16 pairs). */
static int k_block(int k, int kc_max)
{
    int nb = (k + kc_max - 1) / kc_max, kc = (k + nb - 1) / nb;
    return (kc + 1) & ~1;
}

/* This thread's share: B panels [*p0, *p1) and rows [*i0, *i1). Rows go
   in equal ranges, not whole tiles: each thread deals its own rows to its
   tiles, and 512 rows cut into tiles (266 + 246) had one thread idle 7.5 %
   of every product split by rows (an S/2 pair's qkv and proj: the worker
   9.5 % idle in them against 2.5 % with equal ranges, Zen 5). */
static void share(int t, int nt, int m, int np, int split_rows, int *i0, int *i1, int *p0, int *p1)
{
    *i0 = 0, *i1 = m, *p0 = 0, *p1 = np;
    if (split_rows) {
        *i0 = (int)((long)m * t / nt), *i1 = (int)((long)m * (t + 1) / nt);
    } else {
        *p0 = (int)((long)np * t / nt), *p1 = (int)((long)np * (t + 1) / nt);
    }
}

static int threads_for(double flops)
{
    int nt = me_threads();
    return nt > 1 && !omp_in_parallel() && flops >= PAR_MIN_FLOPS ? nt : 1;
}

/* Split by rows when there are too few panels for every thread, or when
   it moves less data: by panels every thread packs all of A and streams
   its share of B once per M block; by rows it packs its share of A and
   streams all of B once per M block of its own (k cancels out). Rows that
   stay packed for all of K (a_resident; g NULL: never) stream B once:
   B/2's bf16 qkv and proj products (512 rows, K 768) split by rows so ran
   7–8 % faster (Zen 5 host, two threads, alternate calls). */
static int split_by_rows(const gemm_job *g, int m, int k, int kc, int np, int nt)
{
    const gemm_plan *pl = plan();
    if (nt < 2 || m < 2 * pl->mr) return 0;
    if (np < 2 * nt) return 1;
    int mine = (m + nt - 1) / nt;   /* the most rows share() gives a thread */
    double n = (double)np * NR;
    int bf16 = g && g->bf16, mc = mc_rows(bf16 ? (kc + 1) & ~1 : kc, bf16);
    int all_passes = g && a_resident(g, m, k, kc) ? 1 : (m + mc - 1) / mc;
    int my_passes = g && a_resident(g, mine, k, kc) ? 1 : (mine + mc - 1) / mc;
    return mine + n * my_passes < m + n / nt * all_passes;
}

/* ---- OpenBLAS fallback ------------------------------------------------- */

/* C = alpha·op(A)·op(B) + beta·C (+ bias) on columns split over the OpenMP
   pool, OpenBLAS single-threaded in each. */
static void blas_product(int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda,
                         const float *b, int ldb, const float *bias, float beta, float *c, int ldc)
{
    int nt = threads_for(2.0 * m * n * k), ob = openblas_get_num_threads();
    if (nt > 1) openblas_set_num_threads(1);
    #pragma omp parallel num_threads(nt)
    {
        int t = omp_get_thread_num(), chunk = ((n + nt - 1) / nt + 15) / 16 * 16;
        int j0 = t * chunk, len = n - j0 < chunk ? n - j0 : chunk;
        if (len > 0) {
            float bt = beta;
            if (bias) {
                for (int i = 0; i < m; i++)
                    for (int j = j0; j < j0 + len; j++) {
                        float *v = c + (size_t)i * ldc + j;
                        *v = bias[j] + (beta != 0.0f ? beta * *v : 0.0f);
                    }
                bt = 1.0f;
            }
            cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, len, k,
                        alpha, a, lda, tb ? b + (size_t)j0 * ldb : b + j0, ldb, bt, c + j0, ldc);
        }
    }
    if (nt > 1) openblas_set_num_threads(ob);
}

/* ---- public entry points ----------------------------------------------- */

/* c = beta·c where k = 0 leaves no product to carry bias and beta. */
static void scale_only(int m, int n, const float *bias, float beta, float *c, size_t ldc)
{
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            float *v = c + (size_t)i * ldc + j;
            *v = (bias ? bias[j] : 0.0f) + (beta != 0.0f ? beta * *v : 0.0f);
        }
}

/* Thread t of nt's share of one me_gemm_rows product, over every K block. */
static void rows_share(const gemm_job *g, const me_gemm_b *b, int m, int np, int kc, int by_rows, int t, int nt)
{
    _Alignas(64) float stack_abuf[ABUF_FLOATS];
    void *abuf = g->abuf ? g->abuf : stack_abuf;
    int i0, i1, p0, p1, k = b->k;
    share(t, nt, m, np, by_rows, &i0, &i1, &p0, &p1);
    if (i0 >= i1 || p0 >= p1) return;
    if (a_resident(g, i1 - i0, k, kc)) {
        resident_product(g, i0, i1, b, kc, p0, p1, abuf);
        return;
    }
    size_t esz = b->bf16 ? sizeof(uint16_t) : sizeof(float);
    for (int k0 = 0; k0 < k; k0 += kc) {
        int kb = k - k0 < kc ? k - k0 : kc, next_kb = k - k0 - kb < kc ? k - k0 - kb : kc;
        const char *pb = (const char *)b->data + me_gemm_panel_offset(b, p0, k0) * esz;
        /* after the block's last panel, the next block's first one */
        const void *after = k0 + kb < k ? (const char *)b->data + me_gemm_panel_offset(b, p0, k0 + kb) * esz : g->then;
        int after_lines = k0 + kb < k ? panel_lines(next_kb, b->bf16) : g->then_lines;
        block_product(g, i0, i1, k0, kb, pb, (size_t)b->kp * NR, p0, p1, b->n, k0 == 0, after, after_lines, abuf);
    }
}

/* Whether b's products run on AMX tiles (own kernels only). */
static int amx_runs(const me_gemm_b *b)
{
    return b->bf16 && me_cpu_amx() && b->k % ME_AMX_K == 0 && b->k <= ME_AMX_K_MAX;
}

/* A bf16 product on AMX tiles: rows split in 32-row blocks when every
   thread gets one (each packs only its rows), else B panels (a SwiGLU
   product's gate panels, each with its up panel). */
static void amx_gemm(int m, const float *a, size_t lda, const int *rows, const me_gemm_b *b, float alpha,
                     const float *bias, float beta, float *c, size_t ldc, int swiglu)
{
    me_amx_job j = {a, lda, rows, b->data, b->k, b->n, alpha, beta, bias, c, ldc, swiglu};
    int np = me_gemm_panels(swiglu ? b->n / 2 : b->n), nt = threads_for(2.0 * m * b->n * b->k);
    if (nt == 1) {
        me_amx_product(&j, 0, m, 0, np);
        return;
    }
    int blocks = (m + ME_AMX_ROWS - 1) / ME_AMX_ROWS, by_rows = blocks >= nt;
    #pragma omp parallel num_threads(nt)
    {
        int t = omp_get_thread_num(), n_t = omp_get_num_threads();
        if (by_rows) {
            int i0 = blocks * t / n_t * ME_AMX_ROWS, i1 = blocks * (t + 1) / n_t * ME_AMX_ROWS;
            if (i0 < m) me_amx_product(&j, i0, i1 < m ? i1 : m, 0, np);
        } else {
            int p0 = (int)((long)np * t / n_t), p1 = (int)((long)np * (t + 1) / n_t);
            if (p0 < p1) me_amx_product(&j, 0, m, p0, p1);
        }
    }
}

void me_gemm(int m, const float *a, size_t lda, const me_gemm_b *b, float alpha, const float *bias, float beta,
             float *c, size_t ldc)
{
    me_gemm_rows(m, a, lda, NULL, b, alpha, bias, beta, c, ldc);
}

/* Whether one thread's product keeps all of its packed A in one buffer:
   A packed for every K block (a_resident), or one K block and one block of
   rows (block_product then packs it once, at the buffer's start). */
static int a_fits_once(const gemm_job *g, int m, int k, int kc)
{
    int kcp = g->bf16 ? (kc + 1) & ~1 : kc;
    return a_resident(g, m, k, kc) || (k <= kc && m <= mc_rows(kcp, g->bf16));
}

size_t me_gemm_apack_floats(void) { return ABUF_FLOATS; }

static void gemm_rows(int m, const float *a, size_t lda, const int *rows, const me_gemm_b *b, float alpha,
                      const float *bias, float beta, float *c, size_t ldc, me_gemm_apack *ap)
{
    int n = b->n, k = b->k;
    int reuse = ap && ap->valid;
    if (ap) ap->valid = 0;
    if (m <= 0 || n <= 0) return;
    if (k <= 0) {
        scale_only(m, n, bias, beta, c, ldc);
        return;
    }
    if (!me_gemm_native(0) && b->batch_invariant && *b->batch_invariant) {
        me_gemm_invariant(m, a, lda, rows, b->data, k, n, alpha, bias, beta, c, ldc);
        return;
    }
    if (!me_gemm_native(0)) {
        if (rows) {   /* OpenBLAS reads A in place: gather blocks of rows into a stack buffer */
            float buf[32768];
            int per = 32768 / k;   /* 0: rows too long to copy, multiplied in place one by one */
            for (int i0 = 0; i0 < m; i0 += per ? per : 1) {
                int cnt = per == 0 ? 1 : m - i0 < per ? m - i0 : per;
                const float *src = a + (size_t)rows[i0] * lda;
                for (int i = 0; i < cnt && per; i++)
                    memcpy(buf + (size_t)i * k, a + (size_t)rows[i0 + i] * lda, (size_t)k * sizeof *buf);
                blas_product(0, 0, cnt, n, k, alpha, per ? buf : src, per ? k : (int)lda, b->data, n, bias, beta,
                             c + (size_t)i0 * ldc, (int)ldc);
            }
            return;
        }
        blas_product(0, 0, m, n, k, alpha, a, (int)lda, b->data, n, bias, beta, c, (int)ldc);
        return;
    }
    if (amx_runs(b)) {
        amx_gemm(m, a, lda, rows, b, alpha, bias, beta, c, ldc, 0);
        return;
    }
    gemm_job g = {.a = a, .lda = lda, .rows = rows, .bf16 = b->bf16, .alpha = alpha, .beta = beta, .bias = bias,
                  .c = c, .ldc = ldc};
    int np = me_gemm_panels(n), kc_max = b->bf16 ? plan()->kc_bf16 : plan()->kc, kc = k_block(k, kc_max);
    int nt = threads_for(2.0 * m * n * k), by_rows = split_by_rows(&g, m, k, kc, np, nt);
    /* One thread (a product inside the MoE or attention regions) runs
       without a team: opening a team of one costs more than a small product. */
    if (nt == 1) {
        g.then = b->then, g.then_lines = b->then_lines;
        if (ap && a_fits_once(&g, m, k, kc)) {
            g.abuf = ap->buf, g.a_packed = reuse;
            ap->valid = 1;
        }
        rows_share(&g, b, m, np, kc, 0, 0, 1);
        return;
    }
    #pragma omp parallel num_threads(nt)
    rows_share(&g, b, m, np, kc, by_rows, omp_get_thread_num(), omp_get_num_threads());
}

void me_gemm_rows(int m, const float *a, size_t lda, const int *rows, const me_gemm_b *b, float alpha,
                  const float *bias, float beta, float *c, size_t ldc)
{
    gemm_rows(m, a, lda, rows, b, alpha, bias, beta, c, ldc, NULL);
}

/* On AMX the gate and up sums of a block meet in the tiles' buffers and
   only silu(gate)·up is written: C (1.5 MB for a 128-row S/2 expert) is
   streamed past the caches there, and a separate pass would read it back
   from memory. */
void me_gemm_swiglu(int m, const float *a, size_t lda, const int *rows, const me_gemm_b *b, float *c, size_t ldc,
                    me_gemm_apack *ap)
{
    int half = b->n / 2;
    if (m > 0 && b->k > 0 && me_gemm_native(0) && amx_runs(b) && half % NR == 0) {
        if (ap) ap->valid = 0;
        amx_gemm(m, a, lda, rows, b, 1.0f, NULL, 0.0f, c, ldc, 1);
        return;
    }
    gemm_rows(m, a, lda, rows, b, 1.0f, NULL, 0.0f, c, ldc, ap);
    for (int r = 0; r < m; r++) {
        float *gate = c + (size_t)r * ldc;
        me_silu_vec((size_t)half, gate, gate + half, gate);
    }
}

void me_sgemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda,
              const float *b, int ldb, float beta, float *c, int ldc)
{
    int ta = trans_a == 1 || trans_a == CblasTrans || trans_a == CblasConjTrans;
    int tb = trans_b == 1 || trans_b == CblasTrans || trans_b == CblasConjTrans;
    if (m <= 0 || n <= 0) return;
    if (k <= 0 || alpha == 0.0f) {
        scale_only(m, n, NULL, beta, c, (size_t)ldc);
        return;
    }
    if (!me_gemm_native(0)) {
        blas_product(ta, tb, m, n, k, alpha, a, lda, b, ldb, NULL, beta, c, ldc);
        return;
    }
    /* B in blocks of KC×NC, packed by all threads together into the calling
       thread's stack, then multiplied as in me_gemm: the same K blocks, so
       the same sums; NC is what the buffer holds at this KC (≥ 320 columns). */
    _Alignas(64) float bbuf[SGEMM_B_FLOATS];
    gemm_job g = {.a = a, .lda = (size_t)lda, .trans_a = ta, .alpha = alpha, .beta = beta, .c = c, .ldc = (size_t)ldc};
    int kc = k_block(k, plan()->kc), nc_max = SGEMM_B_FLOATS / (kc * NR) * NR;
    int nt = threads_for(2.0 * m * n * k);
    #pragma omp parallel num_threads(nt)
    {
        _Alignas(64) float abuf[MC_FLOATS];   /* block_product's A blocks only */
        for (int j0 = 0; j0 < n; j0 += nc_max) {
            int nc = n - j0 < nc_max ? n - j0 : nc_max, np = me_gemm_panels(nc);
            for (int k0 = 0; k0 < k; k0 += kc) {
                int kb = k - k0 < kc ? k - k0 : kc;
                #pragma omp for schedule(static)
                for (int p = 0; p < np; p++) {
                    int j = j0 + p * NR;
                    int live = n - j < NR ? n - j : NR;
                    float *dst = bbuf + (size_t)p * kb * NR;
                    me_gemm_pack_b_block(b, (size_t)ldb, tb, k0, kb, j, live, dst);
                }
                /* (the loop's barrier: the block is packed) */
                int i0, i1, p0, p1;
                int t = omp_get_thread_num(), nth = omp_get_num_threads();
                share(t, nth, m, np, split_by_rows(NULL, m, k, kb, np, nth), &i0, &i1, &p0, &p1);
                gemm_job gj = g;
                gj.c = c + j0;
                if (i0 < i1 && p0 < p1)
                    block_product(&gj, i0, i1, k0, kb, bbuf + (size_t)p0 * kb * NR, (size_t)kb * NR, p0, p1,
                                  nc, k0 == 0, NULL, 0, abuf);
                #pragma omp barrier
            }
        }
    }
}

int me_gemm_k_chunk(int k, int bf16)
{
    bf16 = bf16 && me_gemm_native(1);
    if (k <= 0 || !me_gemm_native(0) || (bf16 && me_cpu_amx())) return k;
    int kc = k_block(k, bf16 ? plan()->kc_bf16 : plan()->kc);
    return k % kc == 0 && kc % NR == 0 ? kc : k;
}

void me_gemm_b_view(const me_gemm_b *b, int col, int cols, int k0, int k, me_gemm_b *view)
{
    size_t off = me_gemm_panel_offset(b, col / NR, k0) * (b->bf16 ? sizeof(uint16_t) : sizeof(float));
    *view = *b;
    view->n = cols, view->k = k, view->data = (char *)b->data + off, view->then = NULL;
}

void me_gemm_b_then(me_gemm_b *b, const me_gemm_b *next)
{
    b->then = NULL, b->then_lines = 0;
    if (!next || next->k <= 0 || next->n <= 0 || !me_gemm_native(0)) return;
    b->then = next->data;
    b->then_lines = panel_lines(k_block(next->k, next->bf16 ? plan()->kc_bf16 : plan()->kc), next->bf16);
}

int me_gemm_tile_rows(void)
{
    return me_gemm_native(0) ? plan()->mr : 1;
}

int me_gemm_tile_plan(int bf16, me_tile_plan *p)
{
    if (!me_gemm_native(bf16)) return 0;
    const gemm_plan *pl = plan();
    p->mr = pl->mr;
    p->kc = bf16 ? pl->kc_bf16 : pl->kc;
    p->tiles = bf16 ? kernels_bf16 : pl->f32;
    p->rows = !bf16 && pl->mr == MR ? kernels_rows : NULL;
    return 1;
}

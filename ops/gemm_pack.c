/* Operands into the tiles' panels (ops/gemm.c, ops/gemm_tile.h): the
   weights' B panels, packed once at load (me_gemm_b); A panels, packed per
   product; me_sgemm's B blocks; bfloat16 pairs; and the 32-column
   transposes the attention uses. The AVX-512 forms transpose 16×16 blocks
   in registers; the AVX2 kernel set's packers are in ops/gemm_avx2.c, and
   plain C covers what neither has. */
#include <string.h>
#include <omp.h>
#include "core/core.h"
#include "core/cpu.h"
#include "ops/gemm.h"
#include "ops/gemm_tile.h"
#include "ops/simd512.h"

#define NR ME_GEMM_NR
#define MR ME_GEMM_MR_AVX512
#define PAIR_ROWS 256   /* float32 rows staged per bf16 panel piece (32 KB on the stack) */

static int avx512_tiles(void) { return me_gemm_tile_rows() == MR; }

static float src_value(int type, const void *src, size_t i)
{
    switch (type) {
    case ME_GEMM_BF16: return me_bf16_to_f32(((const uint16_t *)src)[i]);
    case ME_GEMM_F16: return me_f16_to_f32(((const uint16_t *)src)[i]);
    default: return ((const float *)src)[i];
    }
}

/* ---- packed B --------------------------------------------------------- */

size_t me_gemm_b_bytes(int k, int n, int bf16)
{
    if (!me_gemm_native(0)) return (size_t)k * n * sizeof(float);
    if (bf16 && me_gemm_native(1)) return (size_t)me_gemm_panels(n) * NR * ((k + 1) & ~1) * sizeof(uint16_t);
    return (size_t)me_gemm_panels(n) * NR * k * sizeof(float);
}

void me_gemm_b_init(me_gemm_b *b, void *mem, int k, int n, int bf16)
{
    b->k = k, b->n = n, b->data = mem, b->batch_invariant = NULL, b->then = NULL, b->then_lines = 0;
    b->bf16 = bf16 && me_gemm_native(1);
    b->kp = b->bf16 ? (k + 1) & ~1 : k;
    /* Packing writes every element but the padding; without any, skip the
       extra pass over (possibly gigabytes of) memory. */
    if (n % NR || b->kp != k || !me_gemm_native(0)) memset(mem, 0, me_gemm_b_bytes(k, n, b->bf16));
}

/* Column j of the source (k values) as floats, kk in [k0, k0+len). */
static void source_column(int type, const void *src, size_t ld, int trans, int j, int k0, int len, float *out)
{
    size_t at = trans ? (size_t)j * ld + k0 : (size_t)k0 * ld + j, step = trans ? 1 : ld;
    if (type == ME_GEMM_F32) {
        const float *s = (const float *)src + at;
        for (int i = 0; i < len; i++) out[i] = s[i * step];
    } else {
        const uint16_t *s = (const uint16_t *)src + at;
        for (int i = 0; i < len; i++) out[i] = src_value(type, s, i * step);
    }
}

/* Column j of the source into column col + j of b. */
static void pack_b_column(me_gemm_b *b, int col, int j, int trans, int type, const void *src, size_t ld)
{
    int k = b->k, native = me_gemm_native(0);
    int n = col + j, p = n / NR, lane = n % NR;
    if (b->bf16 && type == ME_GEMM_BF16) {   /* bf16 to bf16: a plain copy */
        const uint16_t *s = src;
        uint16_t *d = (uint16_t *)b->data + me_gemm_panel_offset(b, p, 0) + lane * 2;
        for (int kk = 0; kk < k; kk++)
            d[(size_t)(kk & ~1) * NR + (kk & 1)] = s[trans ? (size_t)j * ld + kk : (size_t)kk * ld + j];
        return;
    }
    float v[512];
    for (int k0 = 0; k0 < k; k0 += 512) {
        int len = k - k0 < 512 ? k - k0 : 512;
        source_column(type, src, ld, trans, j, k0, len, v);
        if (!native) {
            float *d = (float *)b->data + (size_t)k0 * b->n + n;
            for (int i = 0; i < len; i++) d[(size_t)i * b->n] = v[i];
        } else if (b->bf16) {   /* pairs of rows: [kp/2][NR][2] */
            uint16_t *d = (uint16_t *)b->data + me_gemm_panel_offset(b, p, k0) + lane * 2;
            for (int i = 0; i < len; i++) d[(size_t)(i & ~1) * NR + (i & 1)] = me_f32_to_bf16(v[i]);
        } else {
            float *d = (float *)b->data + me_gemm_panel_offset(b, p, k0) + lane;
            for (int i = 0; i < len; i++) d[(size_t)i * NR] = v[i];
        }
    }
}

/* Packing unit u of me_gemm_pack_b: a single column, or (fast) a whole
   32-column panel of a float32 source, which me_pack_b_avx2 copies or
   transposes 8×8 at a time instead of gathering each column with stride
   ld: head columns up to the first panel boundary, then whole panels, then
   the tail columns. A bf16 panel goes through float32 rows on the stack,
   PAIR_ROWS at a time, into pairs (me_pack_pairs_bf16; its subnormals become the
   zeros vdpbf16ps would take them as). The products are the same either way. */
static void pack_b_unit(me_gemm_b *b, int col, int head, int whole, int u, int trans, int type, const void *src,
                        size_t ld)
{
    if (u < head || u >= head + whole) {
        int j = u < head ? u : u - whole + whole * NR;
        pack_b_column(b, col, j, trans, type, src, ld);
        return;
    }
    int j = head + (u - head) * NR, p = (col + j) / NR;
    const float *s = (const float *)src + (trans ? (size_t)j * ld : (size_t)j);
    if (!b->bf16) {
        me_pack_b_avx2(s, ld, trans, b->k, (float *)b->data + me_gemm_panel_offset(b, p, 0));
        return;
    }
    _Alignas(64) float rows[PAIR_ROWS * NR];   /* 32 KB: any even row count would do */
    for (int k0 = 0; k0 < b->k; k0 += PAIR_ROWS) {
        int len = b->k - k0 < PAIR_ROWS ? b->k - k0 : PAIR_ROWS;
        me_pack_b_avx2(s + (trans ? (size_t)k0 : (size_t)k0 * ld), ld, trans, len, rows);
        me_pack_pairs_bf16(rows, len, (uint16_t *)b->data + me_gemm_panel_offset(b, p, k0));
    }
}

void me_gemm_pack_b(me_gemm_b *b, int col, int cols, int trans, int type, const void *src, size_t ld)
{
    int fast = type == ME_GEMM_F32 && me_gemm_native(0) && me_cpu_info()->avx2;
    int head = fast ? (NR - col % NR) % NR : cols;
    if (head > cols) head = cols;
    int whole = fast ? (cols - head) / NR : 0, units = cols - whole * NR + whole;
    /* Small or nested packs (attention's K and V per head) run without a
       team: a team of one costs more than packing a few thousand values. */
    if ((size_t)b->k * cols < 65536 || omp_in_parallel() || me_threads() == 1) {
        for (int u = 0; u < units; u++) pack_b_unit(b, col, head, whole, u, trans, type, src, ld);
        return;
    }
    #pragma omp parallel for num_threads(me_threads())
    for (int u = 0; u < units; u++) pack_b_unit(b, col, head, whole, u, trans, type, src, ld);
}


/* ---- per-product packing ------------------------------------------------ */

ME_AVX512_BEGIN

/* 16 rows of 16 32-bit lanes, transposed in place: row pairs interleaved
   by 32 then 64 bits (each 128-bit lane then holds one column of four
   rows), then two rounds of 128-bit lane shuffles. Single-source-pair
   unpacks and lane shuffles in place of four rounds of vpermt2d: A panels
   packed 15–25 % faster on a Zen 5 core (bf16 K 384: 0.049 → 0.039 ns per
   element), S/2 bf16 CFG pair forwards 0.6 % faster. */
static inline __attribute__((always_inline)) void transpose16(__m512i r[16])
{
    __m512i t[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
        r[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
        r[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
        r[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
        r[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
    }
    /* r[4b + j], 128-bit lane L: column 4L + j of rows 4b..4b+3 */
    for (int j = 0; j < 4; j++) {
        t[j] = _mm512_shuffle_i32x4(r[j], r[4 + j], 0x88);   /* lanes 0, 2 of each */
        t[4 + j] = _mm512_shuffle_i32x4(r[j], r[4 + j], 0xdd);   /* lanes 1, 3 */
        t[8 + j] = _mm512_shuffle_i32x4(r[8 + j], r[12 + j], 0x88);
        t[12 + j] = _mm512_shuffle_i32x4(r[8 + j], r[12 + j], 0xdd);
    }
    for (int j = 0; j < 4; j++) {
        r[j] = _mm512_shuffle_i32x4(t[j], t[8 + j], 0x88);
        r[8 + j] = _mm512_shuffle_i32x4(t[j], t[8 + j], 0xdd);
        r[4 + j] = _mm512_shuffle_i32x4(t[4 + j], t[12 + j], 0x88);
        r[12 + j] = _mm512_shuffle_i32x4(t[4 + j], t[12 + j], 0xdd);
    }
}

/* One MR-row panel of untransposed A, k-range [k0, k0+kc): 16 columns at a
   time are loaded row-wise and transposed in registers into [kc][MR]; bf16
   converts 32 columns into 16 pairs first (vcvtne2ps2bf16 rounds to nearest
   even, as me_f32_to_bf16) and transposes the pairs into [kc/2][MR]. */
static void pack_a_panel_avx512(const float *const *row, int live, int kc, int bf16, void *dst)
{
    int per = bf16 ? 32 : 16, units = bf16 ? (kc + 1) / 2 : kc;
    uint32_t *d = dst;
    for (int k = 0; k < kc; k += per) {
        int left = kc - k;
        __mmask16 m0 = left >= 16 ? 0xffff : (__mmask16)((1u << left) - 1);
        __mmask16 m1 = left >= 32 ? 0xffff : left <= 16 ? 0 : (__mmask16)((1u << (left - 16)) - 1);
        __m512i r[16];
        for (int i = 0; i < 16; i++) {
            r[i] = _mm512_setzero_si512();
            if (i >= live) continue;
            const float *src = row[i] + k;
            __m512 lo = _mm512_maskz_loadu_ps(m0, src);
            if (bf16)
                r[i] = (__m512i)_mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(m1, src + 16), lo);
            else
                r[i] = _mm512_castps_si512(lo);
        }
        transpose16(r);
        int u0 = bf16 ? k / 2 : k, n = units - u0 < 16 ? units - u0 : 16;
        for (int u = 0; u < n; u++) _mm512_mask_storeu_epi32(d + (size_t)(u0 + u) * MR, 0x3fff, r[u]);
    }
}

/* Words of two converted rows (vcvtne2ps2bf16: the first row's 16 in the
   low half) reordered into 16 (first, second) pairs. */
static const uint16_t pair_interleave[32] = {0, 16, 1, 17, 2,  18, 3,  19, 4,  20, 5,  21, 6,  22, 7,  23,
                                             8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31};

/* One MR-row panel whose rows are columns of a row-major source (row i,
   k: src[k·ld + i]): per k a masked row segment, stored as is; bf16 rounds
   two k at a time (vcvtne2ps2bf16) and interleaves them into pairs, the
   odd pad k zero. */
static void pack_a_cols_avx512(const float *src, size_t ld, int live, int kc, int bf16, void *dst)
{
    __mmask16 m = live >= 16 ? 0xffff : (__mmask16)((1u << live) - 1);
    if (!bf16) {
        float *d = dst;
        for (int k = 0; k < kc; k++)
            _mm512_mask_storeu_ps(d + (size_t)k * MR, 0x3fff, _mm512_maskz_loadu_ps(m, src + (size_t)k * ld));
        return;
    }
    __m512i idx = _mm512_loadu_si512(pair_interleave);
    uint32_t *d = dst;
    for (int k = 0; k < kc; k += 2, d += MR) {
        __m512 lo = _mm512_maskz_loadu_ps(m, src + (size_t)k * ld), hi = _mm512_setzero_ps();
        if (k + 1 < kc) hi = _mm512_maskz_loadu_ps(m, src + (size_t)(k + 1) * ld);
        __m512i pairs = _mm512_permutexvar_epi16(idx, (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
        _mm512_mask_storeu_epi32(d, 0x3fff, pairs);
    }
}

/* A [rows][32] block written transposed, 16×16 at a time through
   transpose16, column j scaled by scale[j] on the way. */
static void transpose32_avx512(const float *src, int rows, int cols, const float *scale, float *out, size_t ldo)
{
    for (int d0 = 0; d0 < rows; d0 += 16) {
        int n = rows - d0 < 16 ? rows - d0 : 16;
        __mmask16 m = n >= 16 ? 0xffff : (__mmask16)((1u << n) - 1);
        for (int j0 = 0; j0 < cols; j0 += 16) {
            __m512i r[16];
            for (int i = 0; i < 16; i++)
                r[i] = i < n ? _mm512_loadu_si512(src + (size_t)(d0 + i) * NR + j0) : _mm512_setzero_si512();
            transpose16(r);
            for (int u = 0; u < 16 && j0 + u < cols; u++) {
                __m512 v = _mm512_mul_ps(_mm512_castsi512_ps(r[u]), _mm512_set1_ps(scale[j0 + u]));
                _mm512_mask_storeu_ps(out + (size_t)(j0 + u) * ldo + d0, m, v);
            }
        }
    }
}

/* me_sgemm's B block: columns [j, j+live) × k-range [k0, k0+kc) of B into
   one [kc][NR] panel, zero past `live`. Untransposed B: each k is a row
   segment; transposed: 16 columns × 16 k at a time through transpose16. */
static void pack_b_block_avx512(const float *b, size_t ldb, int tb, int k0, int kc, int j, int live, float *dst)
{
    __mmask16 m0 = live >= 16 ? 0xffff : (__mmask16)((1u << live) - 1);
    __mmask16 m1 = live >= 32 ? 0xffff : live <= 16 ? 0 : (__mmask16)((1u << (live - 16)) - 1);
    if (!tb) {
        for (int kk = 0; kk < kc; kk++) {
            const float *src = b + (size_t)(k0 + kk) * ldb + j;
            _mm512_store_ps(dst + (size_t)kk * NR, _mm512_maskz_loadu_ps(m0, src));
            _mm512_store_ps(dst + (size_t)kk * NR + 16, _mm512_maskz_loadu_ps(m1, src + 16));
        }
        return;
    }
    for (int kk = 0; kk < kc; kk += 16) {
        int left = kc - kk, n = left < 16 ? left : 16;
        __mmask16 mk = left >= 16 ? 0xffff : (__mmask16)((1u << left) - 1);
        for (int half = 0; half < 2; half++) {
            __m512i r[16];
            for (int c = 0; c < 16; c++) {
                int col = half * 16 + c;
                r[c] = col < live ? _mm512_castps_si512(_mm512_maskz_loadu_ps(mk, b + (size_t)(j + col) * ldb + k0 + kk))
                                  : _mm512_setzero_si512();
            }
            transpose16(r);
            for (int u = 0; u < n; u++) _mm512_store_si512(dst + (size_t)(kk + u) * NR + half * 16, r[u]);
        }
    }
}

/* [rows][32] floats into [⌈rows/2⌉][32] bfloat16 pairs (the odd pad row
   zero): per pair of rows, vcvtne2ps2bf16 rounds both and a word
   permutation interleaves them. Subnormals become zero, which vdpbf16ps
   would make of them anyway. */
void me_pack_pairs_bf16(const float *src, int rows, uint16_t *dst)
{
    __m512i idx = _mm512_loadu_si512(pair_interleave);
    for (int r = 0; r < rows; r += 2, src += 2 * NR, dst += 2 * NR) {
        __m512 a0 = _mm512_loadu_ps(src), a1 = _mm512_loadu_ps(src + 16);
        __m512 b0 = _mm512_setzero_ps(), b1 = _mm512_setzero_ps();
        if (r + 1 < rows) b0 = _mm512_loadu_ps(src + NR), b1 = _mm512_loadu_ps(src + NR + 16);
        __m512i lo = (__m512i)_mm512_cvtne2ps_pbh(b0, a0), hi = (__m512i)_mm512_cvtne2ps_pbh(b1, a1);
        _mm512_storeu_si512(dst, _mm512_permutexvar_epi16(idx, lo));
        _mm512_storeu_si512(dst + NR, _mm512_permutexvar_epi16(idx, hi));
    }
}


ME_AVX512_END

/* pack_b_block_avx512 in plain C, for the other kernel sets. */
static void pack_b_block_c(const float *b, size_t ldb, int tb, int k0, int kc, int j, int live, float *dst)
{
    if (!tb && live == NR) {   /* whole panels of row segments: plain copies */
        for (int kk = 0; kk < kc; kk++) memcpy(dst + (size_t)kk * NR, b + (size_t)(k0 + kk) * ldb + j, NR * sizeof *dst);
        return;
    }
    for (int kk = 0; kk < kc; kk++) {
        float *d = dst + (size_t)kk * NR;
        for (int c = 0; c < NR; c++)
            d[c] = c >= live ? 0.0f : tb ? b[(size_t)(j + c) * ldb + k0 + kk] : b[(size_t)(k0 + kk) * ldb + j + c];
    }
}


void me_gemm_pack_b_block(const float *b, size_t ldb, int tb, int k0, int kc, int j, int live, float *dst)
{
    if (avx512_tiles()) pack_b_block_avx512(b, ldb, tb, k0, kc, j, live, dst);
    else pack_b_block_c(b, ldb, tb, k0, kc, j, live, dst);
}

void me_gemm_pack_a(const float *const *row, int live, int kc, int bf16, void *dst)
{
    if (avx512_tiles()) pack_a_panel_avx512(row, live, kc, bf16, dst);
    else me_pack_a_avx2(row, live, kc, dst);
}

void me_gemm_pack_a_cols(const float *src, size_t ld, int live, int kc, int bf16, void *dst)
{
    if (avx512_tiles()) pack_a_cols_avx512(src, ld, live, kc, bf16, dst);
    else me_pack_a_cols_avx2(src, ld, live, kc, dst);   /* float32 only: bf16 runs on AVX-512 alone */
}

void me_gemm_transpose32(const float *src, int rows, int cols, const float *scale, float *out, size_t ldo)
{
    if (avx512_tiles()) {
        transpose32_avx512(src, rows, cols, scale, out, ldo);
        return;
    }
    me_transpose32_avx2(src, rows, cols, scale, out, ldo);
}

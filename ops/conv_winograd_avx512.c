/* The Winograd transforms on AVX-512 (ops/conv_winograd.c deals the work;
   ops/conv_winograd_job.h): 16 blocks a vector, one lane each. */
#include <string.h>
#include "ops/conv.h"
#include "ops/conv_winograd_job.h"
#include "ops/simd512.h"

ME_AVX512_BEGIN

WINO_1D_TRANSFORMS(__m512, _mm512)

/* Row `row` of the input (its plane src) as lane group L's blocks see it:
   d[j] the value at column j of each block's six (Bᵀ not applied yet).
   Lane l's block reads columns 4(tx0 + l) − 1 + j, j < 6: five vectors of
   16 consecutive columns, from which column j of the 16 blocks is picked
   by two two-source permutes (j < 4) or is column j − 4 of the next block
   (one lane along). Upsampled, it reads source columns 2(tx0 + l) − 1 +
   ⌊(j + 1) / 2⌋: three vectors, offsets 0, 1, 1, 2, 2, 3 from each lane's
   first, lane 15 from the second and third. */
static void input_row(const wino_grid *g, const wino_lanes *L, const float *src, const float *next, int row, __m512 *d)
{
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const float *at = src + (size_t)row * g->sw + L->scol0;   /* scol0 may be −1: that lane is masked */
    int nv = g->up == 2 ? 3 : 5;
    if (next)   /* the next channel's row: its plane is far from this one, out of the prefetchers' reach */
        for (int k = 0; k < nv; k++)
            _mm_prefetch((const char *)(next + (size_t)row * g->sw + L->scol0 + 16 * k), _MM_HINT_T0);
    __m512 l[5];
    for (int k = 0; k < nv; k++) l[k] = _mm512_maskz_loadu_ps((__mmask16)L->in[k], at + 16 * k);
    if (g->up == 2) {
        __m512 pick[4];
        for (int o = 0; o < 4; o++) {
            __m512i at2 = _mm512_add_epi32(_mm512_slli_epi32(lane, 1), _mm512_set1_epi32(o));   /* 2l + o */
            __m512i at3 = _mm512_sub_epi32(at2, _mm512_set1_epi32(16));   /* lane 15: 2l + o − 16 in l[1], l[2] */
            pick[o] = _mm512_mask_blend_ps(0x8000, _mm512_permutex2var_ps(l[0], at2, l[1]),
                                           _mm512_permutex2var_ps(l[1], at3, l[2]));
        }
        static const int offset[6] = {0, 1, 1, 2, 2, 3};
        for (int j = 0; j < 6; j++) d[j] = pick[offset[j]];
        return;
    }
    for (int j = 0; j < 4; j++) {   /* lane l: column 4(l mod 8) + j of a pair of vectors */
        __m512i pick = _mm512_add_epi32(_mm512_slli_epi32(_mm512_and_si512(lane, _mm512_set1_epi32(7)), 2),
                                        _mm512_set1_epi32(j));
        d[j] = _mm512_mask_blend_ps(0xFF00, _mm512_permutex2var_ps(l[0], pick, l[1]),
                                    _mm512_permutex2var_ps(l[2], pick, l[3]));
    }
    __m512i after = _mm512_castps_si512(l[4]);
    d[4] = _mm512_castsi512_ps(_mm512_alignr_epi32(after, _mm512_castps_si512(d[0]), 1));
    d[5] = _mm512_castsi512_ps(_mm512_alignr_epi32(_mm512_alignr_epi32(after, after, 1), _mm512_castps_si512(d[1]), 1));
}

/* Row `row` of the input for the first block row of a pair group, row + 4
   for the second: lanes 0–7 and 8–15 each read their row's first 32
   columns (from −1) as the single-row groups read columns −1..62, and
   columns 4 and 5 of blocks 7 and 15 (input columns 31 and 32) come in
   through a third source. */
static void input_row_pair(const wino_grid *g, const wino_lanes *L, const float *src, const float *next, int row,
                           __m512 *d)
{
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    __m512 l[4], edge[2];
    for (int half = 0; half < 2; half++) {
        int r = row + 4 * half;
        int inside = r >= 0 && r < g->sh;
        const float *at = src + (size_t)r * g->sw + L->scol0;   /* scol0 is −1: that lane is masked */
        if (inside && next) _mm_prefetch((const char *)(next + (size_t)r * g->sw), _MM_HINT_T0);
        for (int k = 0; k < 2; k++)
            l[2 * half + k] = _mm512_maskz_loadu_ps(inside ? (__mmask16)L->in[k] : 0, at + 16 * k);
        for (int c = 0; c < 2; c++) {   /* columns 31 and 32 into lane 0 (block 7) or 8 (block 15) */
            float v = inside && 31 + c < g->sw ? src[(size_t)r * g->sw + 31 + c] : 0.0f;
            edge[c] = half ? _mm512_mask_mov_ps(edge[c], 0xFF00, _mm512_set1_ps(v)) : _mm512_set1_ps(v);
        }
    }
    for (int j = 0; j < 4; j++) {
        __m512i pick = _mm512_add_epi32(_mm512_slli_epi32(_mm512_and_si512(lane, _mm512_set1_epi32(7)), 2),
                                        _mm512_set1_epi32(j));
        d[j] = _mm512_mask_blend_ps(0xFF00, _mm512_permutex2var_ps(l[0], pick, l[1]),
                                    _mm512_permutex2var_ps(l[2], pick, l[3]));
    }
    /* lane l: lane l + 1 of columns 0 and 1, but blocks 7 and 15 from edge */
    __m512i along = _mm512_setr_epi32(1, 2, 3, 4, 5, 6, 7, 16, 9, 10, 11, 12, 13, 14, 15, 24);
    d[4] = _mm512_permutex2var_ps(d[0], along, edge[0]);
    d[5] = _mm512_permutex2var_ps(d[1], along, edge[1]);
}

/* Bᵀ along the columns of the rows' Bᵀ d, and the 36 vectors out. */
static inline void input_columns(__m512 d[6][6], float *v, size_t pstride)
{
    for (int j = 0; j < 6; j++) {
        __m512 col[6] = {d[0][j], d[1][j], d[2][j], d[3][j], d[4][j], d[5][j]};
        input_1d(col);
        for (int i = 0; i < 6; i++) _mm512_store_ps(v + (size_t)(i * 6 + j) * pstride, col[i]);
    }
}

/* Upsampled, rows 1 and 2 of each block are the same source row, and rows
   3 and 4: each carried through Bᵀ once. */
void wino_input_avx512(const wino_grid *g, const wino_lanes *L, const float *src, const float *next, float *v,
                       size_t pstride)
{
    static const int offset[2][6] = {{0, 1, 2, 3, 4, 5}, {0, 1, 1, 2, 2, 3}};
    const int *rel = offset[g->up == 2];
    __m512 d[6][6];
    for (int i = 0; i < 6; i++) {
        int row = L->srow0 + rel[i];
        if (g->pair && row + 4 >= 0 && row < g->sh) {   /* either half's row inside: each half checks its own */
            input_row_pair(g, L, src, next, row, d[i]);
            input_1d(d[i]);
        } else if (i > 0 && rel[i] == rel[i - 1]) {
            memcpy(d[i], d[i - 1], sizeof d[i]);
        } else if (g->pair || row < 0 || row >= g->sh) {
            for (int j = 0; j < 6; j++) d[i][j] = _mm512_setzero_ps();
        } else {
            input_row(g, L, src, next, row, d[i]);
            input_1d(d[i]);
        }
    }
    input_columns(d, v, pstride);
}

/* Gathered: element (i, j) of the 16 blocks' 6×6 inputs in one gather. */
void wino_input_gathered_avx512(const wino_grid *g, const wino_gathered *G, const float *src, float *v,
                                size_t pstride)
{
    __m512i at = _mm512_loadu_si512(G->in);
    __m512 d[6][6];
    for (int i = 0; i < 6; i++) {
        __m512i row = _mm512_add_epi32(at, _mm512_set1_epi32(i * g->sw));
        for (int j = 0; j < 6; j++)
            d[i][j] = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), (__mmask16)(G->row_in[i] & G->col_in[j]),
                                               _mm512_add_epi32(row, _mm512_set1_epi32(j)), src, 4);
        input_1d(d[i]);
    }
    input_columns(d, v, pstride);
}

/* Four vectors of 16 blocks' columns 0..3 → 64 pixels in order:
   out[k] holds blocks 4k..4k+3. */
static inline void interleave4(const __m512 *y, __m512 *out)
{
    __m512 t0 = _mm512_unpacklo_ps(y[0], y[1]), t1 = _mm512_unpackhi_ps(y[0], y[1]);
    __m512 t2 = _mm512_unpacklo_ps(y[2], y[3]), t3 = _mm512_unpackhi_ps(y[2], y[3]);
    __m512 u0 = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t0), _mm512_castps_pd(t2)));
    __m512 u1 = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t0), _mm512_castps_pd(t2)));
    __m512 u2 = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t1), _mm512_castps_pd(t3)));
    __m512 u3 = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t1), _mm512_castps_pd(t3)));
    __m512 v0 = _mm512_shuffle_f32x4(u0, u1, 0x44), v1 = _mm512_shuffle_f32x4(u2, u3, 0x44);
    __m512 v2 = _mm512_shuffle_f32x4(u0, u1, 0xEE), v3 = _mm512_shuffle_f32x4(u2, u3, 0xEE);
    out[0] = _mm512_shuffle_f32x4(v0, v1, 0x88);
    out[1] = _mm512_shuffle_f32x4(v0, v1, 0xDD);
    out[2] = _mm512_shuffle_f32x4(v2, v3, 0x88);
    out[3] = _mm512_shuffle_f32x4(v2, v3, 0xDD);
}

/* Aᵀ M A of 16 blocks' 36 products, plus bias: yb[r][c] pixel (r, c) of each. */
static inline void output_blocks(const float *cm, size_t pstride, float bias, __m512 yb[4][4])
{
    __m512 m[WINO_POS], z[6][4];
    for (int p = 0; p < WINO_POS; p++) m[p] = _mm512_load_ps(cm + (size_t)p * pstride);
    for (int i = 0; i < 6; i++) output_1d(m + 6 * i, z[i]);
    for (int j = 0; j < 4; j++) {
        __m512 col[6] = {z[0][j], z[1][j], z[2][j], z[3][j], z[4][j], z[5][j]}, o[4];
        output_1d(col, o);
        for (int r = 0; r < 4; r++) yb[r][j] = _mm512_add_ps(o[r], _mm512_set1_ps(bias));
    }
}

/* Each block row leaves as 64 contiguous pixels (interleave4); in a pair
   group as 32 of one block row and 32 of the next. */
void wino_output_avx512(const wino_grid *g, const wino_lanes *L, int cout, int co, float bias, const float *cm,
                         size_t pstride, float *y, const float *res, int act)
{
    int halves = g->pair ? 2 : 1, per = 4 / halves;   /* block rows a group, vectors a block row */
    if (co + 1 < cout) {   /* the next channel's rows, as on input */
        size_t next = (size_t)L->img * g->y_img + (size_t)(co + 1) * g->h * g->w + (size_t)(L->row0 + 1) * g->w +
                      L->col0 + 1;
        for (int r = 0; r < L->rows + L->rows_next; r++)
            for (int k = 0; k < per && L->out[k]; k++) {
                if (res) _mm_prefetch((const char *)(res + next + (size_t)r * g->w + 16 * k), _MM_HINT_T0);
                _mm_prefetch((const char *)(y + next + (size_t)r * g->w + 16 * k), _MM_HINT_T0);
            }
    }
    __m512 yb[4][4], out[4], zero = _mm512_setzero_ps();
    output_blocks(cm, pstride, bias, yb);
    size_t base = (size_t)L->img * g->y_img + (size_t)co * g->h * g->w + (size_t)(L->row0 + 1) * g->w + L->col0 + 1;
    for (int r = 0; r < L->rows; r++) {
        interleave4(yb[r], out);
        for (int half = 0; half < halves && r < (half ? L->rows_next : L->rows); half++)
            for (int k = 0; k < per && L->out[k]; k++) {
                size_t at = base + (size_t)(4 * half + r) * g->w + 16 * k;
                __m512 v = out[per * half + k];
                if (res) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps((__mmask16)L->out[k], res + at));
                if (act == OP_ACT_RELU) v = _mm512_mask_mov_ps(v, _mm512_cmp_ps_mask(v, zero, _CMP_LT_OQ), zero);
                _mm512_mask_storeu_ps(y + at, (__mmask16)L->out[k], v);
            }
    }
}

/* Gathered: each block row's four pixels stored alone, a 128-bit lane of
   the interleaved row (a masked store of the whole vector, placed so that
   lane lands on them, cost several times as much: the output transform
   twice as long). */
void wino_output_gathered_avx512(const wino_grid *g, const wino_gathered *G, float bias, const float *cm,
                                 size_t pstride, float *y, const float *res, int act)
{
    __m512 yb[4][4], out[4];
    output_blocks(cm, pstride, bias, yb);
    for (int r = 0; r < 4; r++) {
        interleave4(yb[r], out);
        for (int k = 0; k < 4; k++) {
            __m128 px[4] = {_mm512_castps512_ps128(out[k]), _mm512_extractf32x4_ps(out[k], 1),
                            _mm512_extractf32x4_ps(out[k], 2), _mm512_extractf32x4_ps(out[k], 3)};
            for (int j = 0; j < 4; j++) {
                int t = 4 * k + j;
                if (r >= G->rows[t]) continue;
                size_t at = (size_t)G->out[t] + (size_t)r * g->w;
                __mmask8 keep = (__mmask8)((1u << G->cols[t]) - 1);
                __m128 v = px[j];
                if (res) v = _mm_add_ps(v, _mm_maskz_loadu_ps(keep, res + at));
                if (act == OP_ACT_RELU) v = _mm_max_ps(_mm_setzero_ps(), v);   /* NaN stays NaN, as in the direct convolution */
                if (G->cols[t] == 4)
                    _mm_storeu_ps(y + at, v);
                else
                    _mm_mask_storeu_ps(y + at, keep, v);
            }
        }
    }
}

/* Along rows each block's eight input values are contiguous: one masked
   8-float load a lane (lanes k and k + 8 in one vector), then an 8×8
   transpose in each half — cheaper than eight gathers. */
static void input_along_rows(const wino_gathered *G, const float *src, __m512 *d)
{
    __m512 r[8], t[8], s[8];
    for (int k = 0; k < 8; k++) {   /* insertf64x4: AVX-512F (insertf32x8 would need DQ) */
        __m256 lo = _mm256_maskz_loadu_ps(G->along[k], src + G->in[k]);
        __m256 hi = _mm256_maskz_loadu_ps(G->along[k + 8], src + G->in[k + 8]);
        r[k] = _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castpd256_pd512(_mm256_castps_pd(lo)), _mm256_castps_pd(hi), 1));
    }
    for (int k = 0; k < 8; k += 2) {
        t[k] = _mm512_unpacklo_ps(r[k], r[k + 1]);
        t[k + 1] = _mm512_unpackhi_ps(r[k], r[k + 1]);
    }
    for (int k = 0; k < 8; k += 4) {
        s[k] = _mm512_shuffle_ps(t[k], t[k + 2], 0x44);
        s[k + 1] = _mm512_shuffle_ps(t[k], t[k + 2], 0xEE);
        s[k + 2] = _mm512_shuffle_ps(t[k + 1], t[k + 3], 0x44);
        s[k + 3] = _mm512_shuffle_ps(t[k + 1], t[k + 3], 0xEE);
    }
    /* column j: 128-bit lanes 0 of s[j mod 4] and s[4 + j mod 4] (j < 4) or lanes 1, each half */
    const __m512i lo = _mm512_setr_epi32(0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27);
    const __m512i hi = _mm512_setr_epi32(4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31);
    for (int j = 0; j < 4; j++) {
        d[j] = _mm512_permutex2var_ps(s[j], lo, s[4 + j]);
        d[4 + j] = _mm512_permutex2var_ps(s[j], hi, s[4 + j]);
    }
}

/* Along columns, lanes of one block row read consecutive columns of each
   input row: a masked load a run of them (lane a of a run starting at
   input offset o reads from o − a, so each lands in its lane). */
static void input_along_columns(const wino_grid *g, const wino_gathered *G, const float *src, __m512 *d)
{
    for (int i = 0; i < 8; i++) {
        d[i] = _mm512_setzero_ps();
        for (int r = 0; r < G->runs; r++) {
            unsigned a = G->run_at[r], b = r + 1 < G->runs ? G->run_at[r + 1] : 16;
            __mmask16 lanes = (__mmask16)(((1u << b) - (1u << a)) & G->row_in[i]);
            d[i] = _mm512_mask_loadu_ps(d[i], lanes, src + ((ptrdiff_t)G->in[a] - (ptrdiff_t)a + (ptrdiff_t)i * g->sw));
        }
    }
}

/* F(2, 7): the block's eight input values along its row (input_along_rows)
   or column (input_along_columns; one gather each where a group holds
   more than four runs), then Bᵀ (input_f27). */
void wino_input_1d_avx512(const wino_grid *g, const wino_gathered *G, const float *src, float *v, size_t pstride)
{
    __m512 d[8];
    if (g->ext_r == 1) {
        input_along_rows(G, src, d);
    } else if (G->runs) {
        input_along_columns(g, G, src, d);
    } else {
        __m512i at = _mm512_loadu_si512(G->in);
        for (int i = 0; i < 8; i++)
            d[i] = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), (__mmask16)(G->row_in[i] & G->col_in[0]),
                                            _mm512_add_epi32(at, _mm512_set1_epi32(i * g->sw)), src, 4);
    }
    __m512 r[8];
    input_f27(d, r);
    for (int p = 0; p < WINO_POS_1D; p++) _mm512_store_ps(v + (size_t)p * pstride, r[p]);
}

/* F(2, 7): Aᵀ (2×8) and bias, then each lane's one or two pixels stored
   alone (a few dozen stores against the products' 8·cin multiply-adds). */
void wino_output_1d_avx512(const wino_grid *g, const wino_gathered *G, float bias, const float *cm, size_t pstride,
                           float *y, const float *res, int act)
{
    float px[2][16];
    __m512 m[WINO_POS_1D], o[2];
    for (int p = 0; p < WINO_POS_1D; p++) m[p] = _mm512_load_ps(cm + (size_t)p * pstride);
    output_f27(m, _mm512_set1_ps(bias), o);
    _mm512_storeu_ps(px[0], o[0]);
    _mm512_storeu_ps(px[1], o[1]);
    for (int t = 0; t < 16; t++)
        for (int r = 0; r < G->rows[t]; r++)
            for (int c = 0; c < G->cols[t]; c++) {
                size_t at = (size_t)G->out[t] + (size_t)r * g->w + c;
                float v = px[r + c][t] + (res ? res[at] : 0.0f);
                y[at] = act == OP_ACT_RELU && v < 0.0f ? 0.0f : v;
            }
}

ME_AVX512_END

/* The Winograd transforms on AVX2+FMA CPUs without AVX-512 (ops/conv_winograd.c
   deals the work; ops/conv_winograd_job.h): 8 blocks a vector, one lane
   each, compiled for those instructions whatever the build's -march. The
   same arithmetic as ops/conv_winograd_avx512.c, step for step; the 4×4
   blocks' input columns are gathered (AVX2 has no two-source permute),
   F(2, 7)'s inputs loaded a lane or a run of lanes at a time as there. */
#include <immintrin.h>
#include <string.h>
#include "ops/conv.h"
#include "ops/conv_winograd_job.h"

#pragma GCC push_options
#pragma GCC target("avx2,fma")

WINO_1D_TRANSFORMS(__m256, _mm256)

/* Lanes [0, live) of 8 as a mask vector (live may be ≤ 0 or ≥ 8). */
static inline __m256i first_lanes(int live)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(live), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* Row `row` of the input as lane group L's blocks see it: d[j] the value
   at column j of each block's six. Lane l's block reads columns 4(tx0 +
   l) − 1 + j, or upsampled source columns 2(tx0 + l) − 1 + ⌊(j + 1) / 2⌋;
   lanes whose column lies outside the image read zero. */
static void input_row(const wino_grid *g, const wino_lanes *L, const float *src, const float *next, int row, __m256 *d)
{
    static const int offset[2][6] = {{0, 1, 2, 3, 4, 5}, {0, 1, 1, 2, 2, 3}};
    const int *off = offset[g->up == 2];
    const float *at = src + (size_t)row * g->sw;
    if (next)   /* the next channel's row: its plane is far from this one, out of the prefetchers' reach */
        for (int k = 0; k < 3; k++)
            _mm_prefetch((const char *)(next + (size_t)row * g->sw + L->scol0 + 16 * k), _MM_HINT_T0);
    __m256i first = _mm256_add_epi32(_mm256_set1_epi32(L->scol0),
                                     _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                                                        _mm256_set1_epi32(g->up == 2 ? 2 : 4)));
    for (int j = 0; j < 6; j++) {
        if (j > 0 && off[j] == off[j - 1]) {
            d[j] = d[j - 1];
            continue;
        }
        __m256i col = _mm256_add_epi32(first, _mm256_set1_epi32(off[j]));
        __m256i inside = _mm256_andnot_si256(_mm256_cmpgt_epi32(_mm256_setzero_si256(), col),
                                             _mm256_cmpgt_epi32(_mm256_set1_epi32(g->sw), col));
        d[j] = _mm256_mask_i32gather_ps(_mm256_setzero_ps(), at, col, _mm256_castsi256_ps(inside), 4);
    }
}

/* Bᵀ along the columns of the rows' Bᵀ d, and the 36 vectors out. */
static inline void input_columns(__m256 d[6][6], float *v, size_t pstride)
{
    for (int j = 0; j < 6; j++) {
        __m256 col[6] = {d[0][j], d[1][j], d[2][j], d[3][j], d[4][j], d[5][j]};
        input_1d(col);
        for (int i = 0; i < 6; i++) _mm256_store_ps(v + (size_t)(i * 6 + j) * pstride, col[i]);
    }
}

void wino_input_avx2(const wino_grid *g, const wino_lanes *L, const float *src, const float *next, float *v,
                     size_t pstride)
{
    static const int offset[2][6] = {{0, 1, 2, 3, 4, 5}, {0, 1, 1, 2, 2, 3}};
    const int *rel = offset[g->up == 2];
    __m256 d[6][6];
    for (int i = 0; i < 6; i++) {
        int row = L->srow0 + rel[i];
        if (i > 0 && rel[i] == rel[i - 1]) {
            memcpy(d[i], d[i - 1], sizeof d[i]);
        } else if (row < 0 || row >= g->sh) {
            for (int j = 0; j < 6; j++) d[i][j] = _mm256_setzero_ps();
        } else {
            input_row(g, L, src, next, row, d[i]);
            input_1d(d[i]);
        }
    }
    input_columns(d, v, pstride);
}

/* Lanes whose bit is set in `bits` as a mask vector. */
static inline __m256i lanes_of(unsigned bits)
{
    const __m256i bit = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
    return _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32((int)bits), bit), bit);
}

/* Gathered: element (i, j) of the 8 blocks' 6×6 inputs in one gather. */
void wino_input_gathered_avx2(const wino_grid *g, const wino_gathered *G, const float *src, float *v,
                              size_t pstride)
{
    __m256i at = _mm256_loadu_si256((const __m256i *)G->in);
    __m256i col_in[6];
    for (int j = 0; j < 6; j++) col_in[j] = lanes_of(G->col_in[j]);
    __m256 d[6][6];
    for (int i = 0; i < 6; i++) {
        __m256i row = _mm256_add_epi32(at, _mm256_set1_epi32(i * g->sw)), row_in = lanes_of(G->row_in[i]);
        for (int j = 0; j < 6; j++)
            d[i][j] = _mm256_mask_i32gather_ps(_mm256_setzero_ps(), src, _mm256_add_epi32(row, _mm256_set1_epi32(j)),
                                               _mm256_castsi256_ps(_mm256_and_si256(row_in, col_in[j])), 4);
        input_1d(d[i]);
    }
    input_columns(d, v, pstride);
}

/* Four vectors of 8 blocks' columns 0..3 → 32 pixels in order: out[k]
   holds blocks 2k and 2k + 1. */
static inline void interleave4(const __m256 *y, __m256 *out)
{
    __m256 t0 = _mm256_unpacklo_ps(y[0], y[1]), t1 = _mm256_unpackhi_ps(y[0], y[1]);
    __m256 t2 = _mm256_unpacklo_ps(y[2], y[3]), t3 = _mm256_unpackhi_ps(y[2], y[3]);
    __m256 u0 = _mm256_castpd_ps(_mm256_unpacklo_pd(_mm256_castps_pd(t0), _mm256_castps_pd(t2)));
    __m256 u1 = _mm256_castpd_ps(_mm256_unpackhi_pd(_mm256_castps_pd(t0), _mm256_castps_pd(t2)));
    __m256 u2 = _mm256_castpd_ps(_mm256_unpacklo_pd(_mm256_castps_pd(t1), _mm256_castps_pd(t3)));
    __m256 u3 = _mm256_castpd_ps(_mm256_unpackhi_pd(_mm256_castps_pd(t1), _mm256_castps_pd(t3)));
    out[0] = _mm256_permute2f128_ps(u0, u1, 0x20);
    out[1] = _mm256_permute2f128_ps(u2, u3, 0x20);
    out[2] = _mm256_permute2f128_ps(u0, u1, 0x31);
    out[3] = _mm256_permute2f128_ps(u2, u3, 0x31);
}

/* Aᵀ M A of 8 blocks' 36 products, plus bias: yb[r][c] pixel (r, c) of each. */
static inline void output_blocks(const float *cm, size_t pstride, float bias, __m256 yb[4][4])
{
    __m256 m[WINO_POS], z[6][4];
    for (int p = 0; p < WINO_POS; p++) m[p] = _mm256_load_ps(cm + (size_t)p * pstride);
    for (int i = 0; i < 6; i++) output_1d(m + 6 * i, z[i]);
    for (int j = 0; j < 4; j++) {
        __m256 col[6] = {z[0][j], z[1][j], z[2][j], z[3][j], z[4][j], z[5][j]}, o[4];
        output_1d(col, o);
        for (int r = 0; r < 4; r++) yb[r][j] = _mm256_add_ps(o[r], _mm256_set1_ps(bias));
    }
}

void wino_output_avx2(const wino_grid *g, const wino_lanes *L, int cout, int co, float bias, const float *cm,
                      size_t pstride, float *y, const float *res, int act)
{
    if (co + 1 < cout) {   /* the next channel's rows, as on input */
        size_t next = (size_t)L->img * g->y_img + (size_t)(co + 1) * g->h * g->w + (size_t)(L->row0 + 1) * g->w +
                      L->col0 + 1;
        for (int r = 0; r < L->rows; r++)
            for (int k = 0; k < 2 && L->out[2 * k]; k++) {
                if (res) _mm_prefetch((const char *)(res + next + (size_t)r * g->w + 16 * k), _MM_HINT_T0);
                _mm_prefetch((const char *)(y + next + (size_t)r * g->w + 16 * k), _MM_HINT_T0);
            }
    }
    __m256 yb[4][4], out[4], zero = _mm256_setzero_ps();
    output_blocks(cm, pstride, bias, yb);
    size_t base = (size_t)L->img * g->y_img + (size_t)co * g->h * g->w + (size_t)(L->row0 + 1) * g->w + L->col0 + 1;
    for (int r = 0; r < L->rows; r++) {
        interleave4(yb[r], out);
        for (int k = 0; k < 4 && L->out[k]; k++) {
            size_t at = base + (size_t)r * g->w + 8 * k;
            __m256i mask = first_lanes(__builtin_popcount(L->out[k]));
            __m256 v = out[k];
            if (res) v = _mm256_add_ps(v, _mm256_maskload_ps(res + at, mask));
            if (act == OP_ACT_RELU) v = _mm256_blendv_ps(v, zero, _mm256_cmp_ps(v, zero, _CMP_LT_OQ));
            _mm256_maskstore_ps(y + at, mask, v);
        }
    }
}

/* Gathered: each block row's four pixels stored alone (a 128-bit half of
   the interleaved row). */
void wino_output_gathered_avx2(const wino_grid *g, const wino_gathered *G, float bias, const float *cm,
                               size_t pstride, float *y, const float *res, int act)
{
    __m256 yb[4][4], out[4];
    output_blocks(cm, pstride, bias, yb);
    for (int r = 0; r < 4; r++) {
        interleave4(yb[r], out);
        for (int t = 0; t < 8; t++) {
            if (r >= G->rows[t]) continue;
            __m128i keep = _mm_cmpgt_epi32(_mm_set1_epi32(G->cols[t]), _mm_setr_epi32(0, 1, 2, 3));
            size_t at = (size_t)G->out[t] + (size_t)r * g->w;
            __m128 v = t % 2 ? _mm256_extractf128_ps(out[t / 2], 1) : _mm256_castps256_ps128(out[t / 2]);
            if (res) v = _mm_add_ps(v, _mm_maskload_ps(res + at, keep));
            if (act == OP_ACT_RELU) v = _mm_blendv_ps(v, _mm_setzero_ps(), _mm_cmplt_ps(v, _mm_setzero_ps()));
            if (G->cols[t] == 4)   /* most blocks */
                _mm_storeu_ps(y + at, v);
            else
                _mm_maskstore_ps(y + at, keep, v);
        }
    }
}

/* Along rows each block's eight input values are contiguous: one masked
   load a lane, then an 8×8 transpose (as ops/conv_winograd_avx512.c). */
static void input_along_rows(const wino_gathered *G, const float *src, __m256 *d)
{
    __m256 r[8], t[8], s[8];
    for (int k = 0; k < 8; k++) r[k] = _mm256_maskload_ps(src + G->in[k], lanes_of(G->along[k]));
    for (int k = 0; k < 8; k += 2) {
        t[k] = _mm256_unpacklo_ps(r[k], r[k + 1]);
        t[k + 1] = _mm256_unpackhi_ps(r[k], r[k + 1]);
    }
    for (int k = 0; k < 8; k += 4) {
        s[k] = _mm256_shuffle_ps(t[k], t[k + 2], 0x44);
        s[k + 1] = _mm256_shuffle_ps(t[k], t[k + 2], 0xEE);
        s[k + 2] = _mm256_shuffle_ps(t[k + 1], t[k + 3], 0x44);
        s[k + 3] = _mm256_shuffle_ps(t[k + 1], t[k + 3], 0xEE);
    }
    /* column j: the low 128-bit halves of s[j mod 4] and s[4 + j mod 4] (j < 4), else the high ones */
    for (int j = 0; j < 4; j++) {
        d[j] = _mm256_permute2f128_ps(s[j], s[4 + j], 0x20);
        d[4 + j] = _mm256_permute2f128_ps(s[j], s[4 + j], 0x31);
    }
}

/* Along columns, lanes of one block row read consecutive columns of each
   input row: a masked load a run of them (lane a of a run starting at
   input offset o reads from o − a); the runs' lanes do not overlap, and
   maskload zeroes the others. */
static void input_along_columns(const wino_grid *g, const wino_gathered *G, const float *src, __m256 *d)
{
    for (int i = 0; i < 8; i++) {
        d[i] = _mm256_setzero_ps();
        for (int r = 0; r < G->runs; r++) {
            unsigned a = G->run_at[r], b = r + 1 < G->runs ? G->run_at[r + 1] : 8;
            __m256i lanes = lanes_of(((1u << b) - (1u << a)) & G->row_in[i]);
            d[i] = _mm256_or_ps(d[i], _mm256_maskload_ps(src + ((ptrdiff_t)G->in[a] - (ptrdiff_t)a + (ptrdiff_t)i * g->sw), lanes));
        }
    }
}

/* F(2, 7): the block's eight input values along its row (input_along_rows)
   or column (input_along_columns; eight gathers where a group holds more
   than four runs), then Bᵀ; Aᵀ and bias, then each lane's pixels stored
   alone. */
void wino_input_1d_avx2(const wino_grid *g, const wino_gathered *G, const float *src, float *v, size_t pstride)
{
    __m256 d[8];
    if (g->ext_r == 1) {
        input_along_rows(G, src, d);
    } else if (G->runs) {
        input_along_columns(g, G, src, d);
    } else {
        __m256i at = _mm256_loadu_si256((const __m256i *)G->in);
        for (int i = 0; i < 8; i++)
            d[i] = _mm256_mask_i32gather_ps(_mm256_setzero_ps(), src, _mm256_add_epi32(at, _mm256_set1_epi32(i * g->sw)),
                                            _mm256_castsi256_ps(lanes_of(G->row_in[i] & G->col_in[0])), 4);
    }
    __m256 r[8];
    input_f27(d, r);
    for (int p = 0; p < WINO_POS_1D; p++) _mm256_store_ps(v + (size_t)p * pstride, r[p]);
}

void wino_output_1d_avx2(const wino_grid *g, const wino_gathered *G, float bias, const float *cm, size_t pstride,
                         float *y, const float *res, int act)
{
    float px[2][8];
    __m256 m[WINO_POS_1D], o[2];
    for (int p = 0; p < WINO_POS_1D; p++) m[p] = _mm256_load_ps(cm + (size_t)p * pstride);
    output_f27(m, _mm256_set1_ps(bias), o);
    _mm256_storeu_ps(px[0], o[0]);
    _mm256_storeu_ps(px[1], o[1]);
    for (int t = 0; t < 8; t++)
        for (int r = 0; r < G->rows[t]; r++)
            for (int c = 0; c < G->cols[t]; c++) {
                size_t at = (size_t)G->out[t] + (size_t)r * g->w + c;
                float v = px[r + c][t] + (res ? res[at] : 0.0f);
                y[at] = act == OP_ACT_RELU && v < 0.0f ? 0.0f : v;
            }
}

#pragma GCC pop_options

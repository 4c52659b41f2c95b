/* Winograd F(4×4, 3×3) convolutions on the AVX-512 float32 tiles (see
   ops/conv_winograd.h for the arithmetic).

   - The output is cut into 4×4 pixel blocks, taken in lane groups of 16
     blocks side by side on one block row (lanes past the image's right
     edge are computed and never stored); two lane groups make one
     32-lane B panel of the tile kernels.
   - The panels go in chunks, each in three phases:
     1. the chunk's input channels are carried into V [36][panel][cin][32]:
        per channel and lane group, six rows of 66 columns read as five
        vectors each, the blocks' columns picked out by permutes, Bᵀ d B
        in registers;
     2. C [36][panel][cout][32] = U [36][cout][cin] · V: 36 products on the
        GEMM's tiles, the transformed weights packed at load as their A
        panels, each B panel in L1 while the channel tiles run over it;
     3. C is carried back (Aᵀ M A), bias, residual and ReLU added, and each
        block row stored as 64 contiguous pixels.
     A chunk holds enough panels that the weights (36·cin·cout floats,
     read once per chunk) are no more than its V and C.
   - Threads: with two chunks or more a thread, each thread runs whole
     chunks alone in its own part of the scratch; with fewer (the
     512-channel layers at 32² and 64²), all threads share each chunk,
     phase 1 split by input channels, phases 2–3 by output channel tiles,
     with a barrier after each (op_winograd_run says why). */
#include <omp.h>
#include <stdint.h>
#include <string.h>
#include "core/core.h"
#include "core/cpu.h"
#include "ops/conv.h"
#include "ops/conv_winograd.h"
#include "ops/gemm_tile.h"
#include "ops/simd512.h"

#define POS 36                      /* 6×6 transformed positions */
#define LANES 16                    /* blocks per lane group */
#define NR ME_GEMM_NR               /* lanes per B panel: two lane groups */
#define MAX_CHUNK_PANELS 32         /* a chunk's panels at most (from 2048 channels on): its lane groups are on the stack */
#define PAR_MIN_FLOPS 2e6
#define KSTEP 16                    /* input channels transformed at a time at load */

int op_winograd_ok(const op_conv_shape *s)
{
    me_tile_plan p;
    return s->kh == 3 && s->kw == 3 && s->stride <= 1 && s->pad_h == 1 && s->pad_w == 1 && s->cin > 0 && s->cout > 0 && me_cpu_isa() == ME_ISA_AVX512 && me_gemm_tile_plan(0, &p) &&
           p.mr == ME_GEMM_MR_AVX512;
}

int op_winograd_pays(const op_conv_shape *s)
{
    return op_winograd_ok(s) && s->cin >= 64 && s->cout >= 64;
}

/* The products' K blocks (equal, at most the GEMM's bound) and channel tiles. */
static void layout(const op_conv_shape *s, int *mr, int *kc, int *kblocks, int *tiles)
{
    me_tile_plan p;
    me_gemm_tile_plan(0, &p);
    *mr = p.mr;
    *kblocks = (s->cin + p.kc - 1) / p.kc;
    *kc = (s->cin + *kblocks - 1) / *kblocks;
    *tiles = (s->cout + p.mr - 1) / p.mr;
}

size_t op_winograd_bytes(const op_conv_shape *s)
{
    int mr, kc, kblocks, tiles;
    if (!op_winograd_ok(s)) return 0;
    layout(s, &mr, &kc, &kblocks, &tiles);
    return (size_t)POS * kblocks * tiles * kc * mr * sizeof(float);
}

/* G (6×3) of F(4, 3) at the points 0, 1, −1, 2, −2 and ∞. */
static const double G[6][3] = {{1 / 4.0, 0, 0},           {-1 / 6.0, -1 / 6.0, -1 / 6.0}, {-1 / 6.0, 1 / 6.0, -1 / 6.0},
                               {1 / 24.0, 1 / 12.0, 1 / 6.0}, {1 / 24.0, -1 / 12.0, 1 / 6.0}, {0, 0, 1}};

void op_winograd_init(op_winograd *c, const op_conv_shape *s, const float *weight, const float *bias, void *mem)
{
    memset(c, 0, sizeof *c);
    c->cin = s->cin;
    c->cout = s->cout;
    c->up = s->upsample2x ? 2 : 1;
    c->bias = bias;
    c->a = mem;
    layout(s, &c->mr, &c->kc, &c->kblocks, &c->tiles);
    /* U = G g Gᵀ for every channel pair, into the A panels of its
       position, K block and channel tile ([kc][mr] floats; rows past a
       tile's live ones zero): KSTEP input channels of one tile at a time
       into u, then each position's [KSTEP][mr] run copied out whole. Every
       float of mem is written once (a last K block's tail with zeros):
       at load, touching 4× the layer's weights is most of the cost. */
    size_t panel = (size_t)c->kc * c->mr;
    #pragma omp parallel for schedule(dynamic) num_threads(me_threads()) if ((size_t)s->cin * s->cout >= 4096)
    for (int t = 0; t < c->tiles; t++) {
        float u[POS][KSTEP][ME_GEMM_MR_AVX512];
        int r0, live;
        me_gemm_tile_span(s->cout, c->tiles, c->mr, t, &r0, &live);
        for (int kb = 0; kb < c->kblocks; kb++)
            for (int kk = 0; kk < c->kc; kk += KSTEP) {
                int k0 = kb * c->kc + kk, kn = c->kc - kk < KSTEP ? c->kc - kk : KSTEP;
                memset(u, 0, sizeof u);
                for (int i = 0; i < live; i++)
                    for (int q = 0; q < kn && k0 + q < s->cin; q++) {
                        const float *g = weight + ((size_t)(r0 + i) * s->cin + k0 + q) * 9;
                        double gt[6][3];
                        for (int a = 0; a < 6; a++)
                            for (int k = 0; k < 3; k++) gt[a][k] = G[a][0] * g[k] + G[a][1] * g[3 + k] + G[a][2] * g[6 + k];
                        for (int a = 0; a < 6; a++)
                            for (int b = 0; b < 6; b++)
                                u[a * 6 + b][q][i] = (float)(gt[a][0] * G[b][0] + gt[a][1] * G[b][1] + gt[a][2] * G[b][2]);
                    }
                for (int p = 0; p < POS; p++)
                    memcpy(c->a + (((size_t)p * c->kblocks + kb) * c->tiles + t) * panel + (size_t)kk * c->mr, u[p],
                           (size_t)kn * c->mr * sizeof(float));
            }
    }
}

/* Panels per chunk: enough that the weights (36·cin·cout floats, read
   once per chunk) are no more than the chunk's V and C. */
static int chunk_panels(int cin, int cout)
{
    size_t cp = ((size_t)cin * cout + (size_t)NR * (cin + cout) - 1) / ((size_t)NR * (cin + cout));
    return cp < 1 ? 1 : cp > MAX_CHUNK_PANELS ? MAX_CHUNK_PANELS : (int)cp;
}

/* V and C of one chunk, floats. */
static size_t chunk_floats(int cin, int cout) { return (size_t)POS * (cin + cout) * NR * chunk_panels(cin, cout); }

size_t op_winograd_scratch(const op_conv_shape *s)
{
    return op_winograd_ok(s) ? chunk_floats(s->cin, s->cout) * me_threads_max() : 0;
}

/* The output's 4×4 blocks: th rows of tw, lane groups of 16 on a row;
   h × w the size the kernel sees, sh × sw the input's (half of it where
   a ×2 nearest upsampling comes first). */
typedef struct {
    int n, h, w, sh, sw, up, th, tw, groups_per_row;
    long groups, panels;
} grid;

/* Lane group lg: its image, block row and first block column. */
static void group_at(const grid *g, long lg, int *img, int *ty, int *tx0)
{
    long per_img = (long)g->th * g->groups_per_row;
    *img = (int)(lg / per_img);
    *ty = (int)(lg % per_img / g->groups_per_row);
    *tx0 = (int)(lg % g->groups_per_row) * LANES;
}

ME_AVX512_BEGIN

/* Bᵀ of F(4, 3) on six vectors, in place. */
static inline void input_1d(__m512 *d)
{
    __m512 four = _mm512_set1_ps(4.0f), five = _mm512_set1_ps(5.0f), two = _mm512_set1_ps(2.0f);
    __m512 t0 = _mm512_fnmadd_ps(four, d[2], d[4]), t1 = _mm512_fnmadd_ps(four, d[1], d[3]);
    __m512 t2 = _mm512_sub_ps(d[4], d[2]), t3 = _mm512_mul_ps(two, _mm512_sub_ps(d[3], d[1]));
    __m512 r0 = _mm512_fmadd_ps(four, d[0], _mm512_fnmadd_ps(five, d[2], d[4]));
    __m512 r5 = _mm512_fmadd_ps(four, d[1], _mm512_fnmadd_ps(five, d[3], d[5]));
    d[0] = r0;
    d[1] = _mm512_add_ps(t0, t1);
    d[2] = _mm512_sub_ps(t0, t1);
    d[3] = _mm512_add_ps(t2, t3);
    d[4] = _mm512_sub_ps(t2, t3);
    d[5] = r5;
}

/* Aᵀ of F(4, 3): six vectors to four. */
static inline void output_1d(const __m512 *m, __m512 *o)
{
    __m512 a1 = _mm512_add_ps(m[1], m[2]), s1 = _mm512_sub_ps(m[1], m[2]);
    __m512 a2 = _mm512_add_ps(m[3], m[4]), s2 = _mm512_sub_ps(m[3], m[4]);
    o[0] = _mm512_add_ps(_mm512_add_ps(m[0], a1), a2);
    o[1] = _mm512_fmadd_ps(_mm512_set1_ps(2.0f), s2, s1);
    o[2] = _mm512_fmadd_ps(_mm512_set1_ps(4.0f), a2, a1);
    o[3] = _mm512_add_ps(_mm512_fmadd_ps(_mm512_set1_ps(8.0f), s2, s1), m[5]);
}

/* Where a lane group's blocks read and write: the first row and column
   its blocks see (4ty − 1, 4tx0 − 1) and where they lie in the input
   (halved where it is upsampled), which of the 16-column input vectors
   along a row lie inside the image, how many output rows exist. */
typedef struct {
    int img, row0, col0, srow0, scol0, rows;
    __mmask16 in[5], out[4];
} lane_group;

static void lane_group_at(const grid *g, long lg, lane_group *L)
{
    int ty, tx0;
    group_at(g, lg, &L->img, &ty, &tx0);
    L->row0 = 4 * ty - 1;
    L->col0 = 4 * tx0 - 1;
    L->srow0 = g->up == 2 ? 2 * ty - 1 : L->row0;   /* ⌊(4ty − 1) / 2⌋ */
    L->scol0 = g->up == 2 ? 2 * tx0 - 1 : L->col0;
    L->rows = g->h - 4 * ty < 4 ? g->h - 4 * ty : 4;
    for (int k = 0; k < 5; k++) {
        __m512i col = _mm512_add_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                       _mm512_set1_epi32(L->scol0 + 16 * k));
        L->in[k] = _mm512_cmpge_epi32_mask(col, _mm512_setzero_si512()) &
                   _mm512_cmplt_epi32_mask(col, _mm512_set1_epi32(g->sw));
    }
    for (int k = 0; k < 4; k++) {
        int left = g->w - (L->col0 + 1) - 16 * k;
        L->out[k] = left >= 16 ? 0xFFFF : left > 0 ? (__mmask16)((1u << left) - 1) : 0;
    }
}

/* Row `row` of the input (its plane src) as lane group L's blocks see it:
   d[j] the value at column j of each block's six (Bᵀ not applied yet).
   Lane l's block reads columns 4(tx0 + l) − 1 + j, j < 6: five vectors of
   16 consecutive columns, from which column j of the 16 blocks is picked
   by two two-source permutes (j < 4) or is column j − 4 of the next block
   (one lane along). Upsampled, it reads source columns 2(tx0 + l) − 1 +
   ⌊(j + 1) / 2⌋: three vectors, offsets 0, 1, 1, 2, 2, 3 from each lane's
   first, lane 15 from the second and third. */
static void input_row(const grid *g, const lane_group *L, const float *src, const float *next, int row, __m512 *d)
{
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const float *at = src + (size_t)row * g->sw + L->scol0;   /* scol0 may be −1: that lane is masked */
    int nv = g->up == 2 ? 3 : 5;
    if (next)   /* the next channel's row: its plane is far from this one, out of the prefetchers' reach */
        for (int k = 0; k < nv; k++) _mm_prefetch((const char *)(next + (size_t)row * g->sw + L->scol0 + 16 * k), _MM_HINT_T0);
    __m512 l[5];
    for (int k = 0; k < nv; k++) l[k] = _mm512_maskz_loadu_ps(L->in[k], at + 16 * k);
    if (g->up == 2) {
        __m512 pick[4];
        for (int o = 0; o < 4; o++) {
            __m512i at2 = _mm512_add_epi32(_mm512_slli_epi32(lane, 1), _mm512_set1_epi32(o));   /* 2l + o */
            pick[o] = _mm512_mask_blend_ps(0x8000, _mm512_permutex2var_ps(l[0], at2, l[1]),
                                           _mm512_permutex2var_ps(l[1], _mm512_sub_epi32(at2, _mm512_set1_epi32(16)), l[2]));
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

/* One input channel (its plane src; next: the next channel's, or NULL) of
   lane group L into v (position 0, its panel and half, this channel),
   positions pstride floats apart. Upsampled, rows 1 and 2 of each block
   are the same source row, and rows 3 and 4. */
static void input_block(const grid *g, const lane_group *L, const float *src, const float *next, float *v, size_t pstride)
{
    static const int offset[2][6] = {{0, 1, 2, 3, 4, 5}, {0, 1, 1, 2, 2, 3}};
    const int *rel = offset[g->up == 2];
    __m512 d[6][6];
    for (int i = 0; i < 6; i++) {
        int row = L->srow0 + rel[i];
        if (i > 0 && rel[i] == rel[i - 1]) {
            memcpy(d[i], d[i - 1], sizeof d[i]);
        } else if (row < 0 || row >= g->sh) {
            for (int j = 0; j < 6; j++) d[i][j] = _mm512_setzero_ps();
        } else {
            input_row(g, L, src, next, row, d[i]);
            input_1d(d[i]);
        }
    }
    for (int j = 0; j < 6; j++) {
        __m512 col[6] = {d[0][j], d[1][j], d[2][j], d[3][j], d[4][j], d[5][j]};
        input_1d(col);
        for (int i = 0; i < 6; i++) _mm512_store_ps(v + (size_t)(i * 6 + j) * pstride, col[i]);
    }
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

/* One output channel co of lane group L from cm (position 0, its panel
   and half, this channel) into y: bias, residual and ReLU added. */
static void output_block(const grid *g, const lane_group *L, int cout, int co, float bias, const float *cm,
                         size_t pstride, float *y, const float *res, int act)
{
    if (co + 1 < cout) {   /* the next channel's rows, as in input_block */
        size_t next = ((size_t)L->img * cout + co + 1) * g->h * g->w + (size_t)(L->row0 + 1) * g->w + L->col0 + 1;
        for (int r = 0; r < L->rows; r++)
            for (int k = 0; k < 4 && L->out[k]; k++) {
                if (res) _mm_prefetch((const char *)(res + next + (size_t)r * g->w + 16 * k), _MM_HINT_T0);
                _mm_prefetch((const char *)(y + next + (size_t)r * g->w + 16 * k), _MM_HINT_T0);
            }
    }
    __m512 m[POS], z[6][4], yb[4][4], out[4], zero = _mm512_setzero_ps();
    for (int p = 0; p < POS; p++) m[p] = _mm512_load_ps(cm + (size_t)p * pstride);
    for (int i = 0; i < 6; i++) output_1d(m + 6 * i, z[i]);
    for (int j = 0; j < 4; j++) {
        __m512 col[6] = {z[0][j], z[1][j], z[2][j], z[3][j], z[4][j], z[5][j]}, o[4];
        output_1d(col, o);
        for (int r = 0; r < 4; r++) yb[r][j] = _mm512_add_ps(o[r], _mm512_set1_ps(bias));
    }
    size_t base = ((size_t)L->img * cout + co) * g->h * g->w + (size_t)(L->row0 + 1) * g->w + L->col0 + 1;
    for (int r = 0; r < L->rows; r++) {
        interleave4(yb[r], out);
        for (int k = 0; k < 4 && L->out[k]; k++) {
            size_t at = base + (size_t)r * g->w + 16 * k;
            __m512 v = out[k];
            if (res) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(L->out[k], res + at));
            if (act == OP_ACT_RELU) v = _mm512_mask_mov_ps(v, _mm512_cmp_ps_mask(v, zero, _CMP_LT_OQ), zero);
            _mm512_mask_storeu_ps(y + at, L->out[k], v);
        }
    }
}

ME_AVX512_END

/* The 36 products of a chunk's np panels over channel tiles [t0, t1). */
static void products(const op_winograd *c, const me_tile_fn *tiles, int np, const float *v, float *cm, int t0, int t1)
{
    size_t panel = (size_t)c->kc * c->mr;
    for (int p = 0; p < POS; p++)
        for (int kb = 0; kb < c->kblocks; kb++) {
            int k0 = kb * c->kc, klen = c->cin - k0 < c->kc ? c->cin - k0 : c->kc;
            const float *a = c->a + (((size_t)p * c->kblocks + kb) * c->tiles) * panel;
            for (int q = 0; q < np; q++) {
                const float *b = v + ((size_t)(p * np + q) * c->cin + k0) * NR;
                const float *next = q + 1 < np ? b + (size_t)c->cin * NR : NULL;
                for (int t = t0; t < t1; t++) {
                    int r0, live;
                    me_gemm_tile_span(c->cout, c->tiles, c->mr, t, &r0, &live);
                    /* the first and last tiles fetch the next panel's two halves */
                    int half = t == t0 ? 0 : t == t1 - 1 ? 1 : -1;
                    me_tile_out o = {.c = cm + ((size_t)(p * np + q) * c->cout + r0) * NR,
                                     .ldc = NR,
                                     .nr = NR,
                                     .alpha = 1.0f,
                                     .beta = kb ? 1.0f : 0.0f,
                                     .pf = next && half >= 0 ? (const char *)(next + (size_t)half * klen / 2 * NR) : NULL,
                                     .pf_lines = klen};
                    tiles[live](klen, a + (size_t)t * panel, b, &o);
                }
            }
        }
}

/* The panels [q0, q0 + np) of a chunk through the three phases, as
   thread t of tn (tn 1: alone, no barriers) with v and cm as V and C. */
static void run_chunk(const op_winograd *c, const grid *g, const me_tile_fn *tiles, long q0, int np, float *v,
                      float *cm, int t, int tn, const float *x, float *y, const float *res, int act)
{
    size_t vstride = (size_t)np * c->cin * NR, cstride = (size_t)np * c->cout * NR;
    int ci0 = (int)((long)c->cin * t / tn), ci1 = (int)((long)c->cin * (t + 1) / tn);
    int t0 = c->tiles * t / tn, t1 = c->tiles * (t + 1) / tn, r0, co0, co1, live;
    me_gemm_tile_span(c->cout, c->tiles, c->mr, t0, &co0, &live);
    if (t1 > t0) me_gemm_tile_span(c->cout, c->tiles, c->mr, t1 - 1, &r0, &live);
    co1 = t1 > t0 ? r0 + live : co0;
    int ng = g->groups - 2 * q0 < 2 * np ? (int)(g->groups - 2 * q0) : 2 * np;
    lane_group L[2 * MAX_CHUNK_PANELS];
    for (int l = 0; l < ng; l++) lane_group_at(g, 2 * q0 + l, &L[l]);
    size_t plane = (size_t)g->sh * g->sw;
    /* channel by channel, the chunk's groups along it: consecutive groups
       read consecutive stretches of the same rows */
    for (int ci = ci0; ci < ci1; ci++)
        for (int l = 0; l < 2 * np; l++) {
            float *dst = v + ((size_t)(l / 2) * c->cin + ci) * NR + (size_t)(l % 2) * LANES;
            if (l < ng) {
                const float *src = x + ((size_t)L[l].img * c->cin + ci) * plane;
                input_block(g, &L[l], src, ci + 1 < ci1 ? src + plane : NULL, dst, vstride);
            } else {   /* the last panel's empty half */
                for (int p = 0; p < POS; p++) memset(dst + (size_t)p * vstride, 0, LANES * sizeof(float));
            }
        }
    if (tn > 1) {
        #pragma omp barrier
    }
    products(c, tiles, np, v, cm, t0, t1);
    for (int co = co0; co < co1; co++)
        for (int l = 0; l < ng; l++)
            output_block(g, &L[l], c->cout, co, c->bias ? c->bias[co] : 0.0f,
                         cm + ((size_t)(l / 2) * c->cout + co) * NR + (size_t)(l % 2) * LANES, cstride, y, res, act);
    if (tn > 1) {
        #pragma omp barrier
    }
}

void op_winograd_run(const op_winograd *c, int n, int h, int w, const float *x, float *y, const float *res, int act,
                     float *scratch)
{
    if (n <= 0 || h <= 0 || w <= 0) return;
    me_tile_plan plan;
    me_gemm_tile_plan(0, &plan);
    grid g = {.n = n, .h = c->up * h, .w = c->up * w, .sh = h, .sw = w, .up = c->up};
    g.th = (g.h + 3) / 4;
    g.tw = (g.w + 3) / 4;
    g.groups_per_row = (g.tw + LANES - 1) / LANES;
    g.groups = (long)n * g.th * g.groups_per_row;
    g.panels = (g.groups + 1) / 2;
    int cp = chunk_panels(c->cin, c->cout), nt = me_threads();
    long chunks = (g.panels + cp - 1) / cp;
    double flops = 2.0 * POS * NR * (double)g.panels * c->cin * c->cout;
    int par = nt > 1 && !omp_in_parallel() && flops >= PAR_MIN_FLOPS;
    /* With two chunks or more a thread, each thread runs whole chunks of
       its own: nothing one thread writes is read by another, and on the
       Zen 5 host (vCPUs without a common L3) that ran the VAE's 128- and
       256-channel layers 10–28 % faster than chunks shared by all threads
       (which stay for the layers of few panels, 512 channels at 32² and
       64², whose weights are then split between the threads instead of
       read by each). */
    if (!par || chunks >= 2L * nt) {
        #pragma omp parallel num_threads(nt) if (par)
        {
            float *v = scratch + (size_t)omp_get_thread_num() * chunk_floats(c->cin, c->cout);
            #pragma omp for schedule(dynamic)
            for (long k = 0; k < chunks; k++) {
                int np = g.panels - k * cp < cp ? (int)(g.panels - k * cp) : cp;
                run_chunk(c, &g, plan.tiles, k * cp, np, v, v + (size_t)POS * np * c->cin * NR, 0, 1, x, y, res, act);
            }
        }
        return;
    }
    #pragma omp parallel num_threads(nt)
    {
        int t = omp_get_thread_num(), tn = omp_get_num_threads();
        for (long k = 0; k < chunks; k++) {
            int np = g.panels - k * cp < cp ? (int)(g.panels - k * cp) : cp;
            run_chunk(c, &g, plan.tiles, k * cp, np, scratch, scratch + (size_t)POS * np * c->cin * NR, t, tn, x, y,
                      res, act);
        }
    }
}

/* Winograd F(4×4, 3×3) and F(2, 7) convolutions on the GEMM's own float32
   tiles (see ops/conv_winograd.h for the arithmetic; the transforms per
   vector ISA in ops/conv_winograd_avx512.c and ops/conv_winograd_avx2.c).
   Described for F(4×4, 3×3); F(2, 7) has blocks of 1×2 or 2×1 pixels, 8
   positions instead of 36, and is always gathered.

   - The output is cut into 4×4 pixel blocks, taken in lane groups of 16
     blocks (AVX-512; 8 on AVX2) side by side on one block row (lanes past
     the image's right edge are computed and never stored); the lane
     groups fill the tile kernels' 32-lane B panels. Where that leaves
     lanes empty (block rows of 9 or 18 blocks) or there is no padding,
     a group holds consecutive blocks of the whole grid instead, across
     rows and images, its input gathered (wino_gathered).
   - The panels go in chunks, each in three phases:
     1. the chunk's input channels are carried into V [36][panel][cin][32]:
        per channel and lane group, the six input rows each block sees,
        Bᵀ d B in registers;
     2. C [36][panel][cout][32] = U [36][cout][cin] · V: 36 products on the
        GEMM's tiles, the transformed weights packed at load as their A
        panels, each B panel in L1 while the channel tiles run over it;
     3. C is carried back (Aᵀ M A), bias, residual and ReLU added, and each
        block row stored as contiguous pixels.
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
#include "ops/conv_winograd_job.h"
#include "ops/gemm_tile.h"

#define POS WINO_POS
#define NR ME_GEMM_NR               /* lanes per B panel: two lane groups of 16 blocks (AVX-512), four of 8 (AVX2) */
#define MAX_CHUNK_PANELS 32         /* a chunk's panels at most (reached from 2048 channels on) */
#define MAX_GROUPS (MAX_CHUNK_PANELS * NR / 8)   /* its lane groups at most (8 blocks each on AVX2), on the stack */
#define PAR_MIN_FLOPS 2e6
#define KSTEP 16                    /* input channels transformed at a time at load */
#define GATHER_BELOW 0.9            /* the gathered layout where block rows fill less of their lanes */

/* The OP_WINO_* kind of s, or −1. */
static int kind_of(const op_conv_shape *s)
{
    if (s->stride > 1 || s->cin <= 0 || s->cout <= 0) return -1;
    if (s->kh == 3 && s->kw == 3 && s->pad_h == s->pad_w && (s->pad_h == 1 || (s->pad_h == 0 && !s->upsample2x)))
        return OP_WINO_3X3;
    if (s->upsample2x) return -1;
    if (s->kh == 1 && s->kw == 7 && s->pad_h == 0 && s->pad_w == 3) return OP_WINO_1X7;
    if (s->kh == 7 && s->kw == 1 && s->pad_h == 3 && s->pad_w == 0) return OP_WINO_7X1;
    return -1;
}

static int positions(int kind) { return kind == OP_WINO_3X3 ? POS : WINO_POS_1D; }

int op_winograd_ok(const op_conv_shape *s)
{
    me_tile_plan p;
    int isa = me_cpu_isa();
    return kind_of(s) >= 0 && (isa == ME_ISA_AVX512 || isa == ME_ISA_AVX2) && me_gemm_tile_plan(0, &p);
}

int op_winograd_pays(const op_conv_shape *s)
{
    int least = kind_of(s) == OP_WINO_3X3 ? 64 : 128;
    return op_winograd_ok(s) && s->cin >= least && s->cout >= least;
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
    return (size_t)positions(kind_of(s)) * kblocks * tiles * kc * mr * sizeof(float);
}

/* G (6×3) of F(4, 3) at the points 0, 1, −1, 2, −2 and ∞. */
static const double G[6][3] = {{1 / 4.0, 0, 0},           {-1 / 6.0, -1 / 6.0, -1 / 6.0}, {-1 / 6.0, 1 / 6.0, -1 / 6.0},
                               {1 / 24.0, 1 / 12.0, 1 / 6.0}, {1 / 24.0, -1 / 12.0, 1 / 6.0}, {0, 0, 1}};

/* G (8×7) of F(2, 7) at 0, 1, −1, 2, −2, ½, −½ and ∞ (input_f27's points):
   row j the powers of a_j over ∏ (a_j − a_l) of the other finite points. */
static void g_1d(double G7[8][7])
{
    static const double at[7] = {0, 1, -1, 2, -2, 0.5, -0.5};
    for (int j = 0; j < 8; j++)
        for (int k = 0; k < 7; k++) G7[j][k] = j == 7 ? (k == 6) : 0;
    for (int j = 0; j < 7; j++) {
        double f = 1, power = 1;
        for (int l = 0; l < 7; l++)
            if (l != j) f *= at[j] - at[l];
        for (int k = 0; k < 7; k++, power *= at[j]) G7[j][k] = power / f;
    }
}

/* One channel pair's kernel g (9 taps, or 7 with F(2, 7)'s G7) carried
   into its positions. */
static void transform_kernel(int kind, const double G7[8][7], const float *g, double *u)
{
    if (kind != OP_WINO_3X3) {
        for (int p = 0; p < WINO_POS_1D; p++) {
            u[p] = 0;
            for (int k = 0; k < 7; k++) u[p] += G7[p][k] * g[k];
        }
        return;
    }
    double gt[6][3];   /* G g */
    for (int a = 0; a < 6; a++)
        for (int k = 0; k < 3; k++) gt[a][k] = G[a][0] * g[k] + G[a][1] * g[3 + k] + G[a][2] * g[6 + k];
    for (int a = 0; a < 6; a++)
        for (int b = 0; b < 6; b++) u[a * 6 + b] = gt[a][0] * G[b][0] + gt[a][1] * G[b][1] + gt[a][2] * G[b][2];
}

void op_winograd_init(op_winograd *c, const op_conv_shape *s, const float *weight, const float *bias, void *mem)
{
    memset(c, 0, sizeof *c);
    c->kind = kind_of(s);
    c->pos = positions(c->kind);
    c->cin = s->cin;
    c->cout = s->cout;
    c->up = s->upsample2x ? 2 : 1;
    c->pad = c->kind == OP_WINO_1X7 ? s->pad_w : s->pad_h;
    c->lanes = me_cpu_isa() == ME_ISA_AVX512 ? 16 : 8;
    c->bias = bias;
    c->a = mem;
    layout(s, &c->mr, &c->kc, &c->kblocks, &c->tiles);
    /* U = G g Gᵀ (F(2, 7): G g) for every channel pair, into the A panels of its
       position, K block and channel tile ([kc][mr] floats; rows past a
       tile's live ones zero): KSTEP input channels of one tile at a time
       into u, then each position's [KSTEP][mr] run copied out whole. Every
       float of mem is written once (a last K block's tail with zeros):
       at load, touching 4× the layer's weights (F(2, 7): 8/7) is most of
       the cost. */
    size_t panel = (size_t)c->kc * c->mr;
    int taps = s->kh * s->kw;
    double G7[8][7];
    g_1d(G7);
    #pragma omp parallel for schedule(dynamic) num_threads(me_threads()) if ((size_t)s->cin * s->cout >= 4096)
    for (int t = 0; t < c->tiles; t++) {
        float u[POS][KSTEP * ME_GEMM_MR_AVX512];   /* [KSTEP][mr] runs */
        int r0, live;
        me_gemm_tile_span(s->cout, c->tiles, c->mr, t, &r0, &live);
        for (int kb = 0; kb < c->kblocks; kb++)
            for (int kk = 0; kk < c->kc; kk += KSTEP) {
                int k0 = kb * c->kc + kk, kn = c->kc - kk < KSTEP ? c->kc - kk : KSTEP;
                memset(u, 0, sizeof u);
                for (int i = 0; i < live; i++)
                    for (int q = 0; q < kn && k0 + q < s->cin; q++) {
                        double t[POS];
                        transform_kernel(c->kind, (const double(*)[7])G7,
                                         weight + ((size_t)(r0 + i) * s->cin + k0 + q) * taps, t);
                        for (int p = 0; p < c->pos; p++) u[p][q * c->mr + i] = (float)t[p];
                    }
                for (int p = 0; p < c->pos; p++)
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

/* V and C of one chunk of g's, floats: a thread's part of the scratch. */
static size_t chunk_floats(int pos, int cin, int cout, long panels)
{
    int cp = chunk_panels(cin, cout);
    return (size_t)pos * (cin + cout) * NR * (panels < cp ? panels : cp);
}

/* The block grid of n images of sh × sw (the input's size) and how its
   lane groups are laid out (g->n set by the caller per pass). */
static void plan_grid(int kind, int up, int pad, int lanes, int sh, int sw, size_t y_img, wino_grid *g)
{
    *g = (wino_grid){.h = up * sh + 2 * pad - 2, .w = up * sw + 2 * pad - 2, .sh = sh, .sw = sw, .up = up,
                     .pad = pad, .lanes = lanes, .y_img = y_img, .bh = 4, .bw = 4, .ext_r = 6, .ext_c = 6,
                     .pad_r = pad, .pad_c = pad};
    if (kind != OP_WINO_3X3) {   /* F(2, 7), padding 3 along: the output is the input's size */
        int rows = kind == OP_WINO_7X1;
        *g = (wino_grid){.h = sh, .w = sw, .sh = sh, .sw = sw, .up = 1, .lanes = lanes, .y_img = y_img,
                         .gathered = 1, .bh = rows ? 2 : 1, .bw = rows ? 1 : 2, .ext_r = rows ? 8 : 1,
                         .ext_c = rows ? 1 : 8, .pad_r = rows ? 3 : 0, .pad_c = rows ? 0 : 3};
        g->th = (g->h + g->bh - 1) / g->bh;
        g->tw = (g->w + g->bw - 1) / g->bw;
        return;
    }
    g->th = (g->h + 3) / 4;
    g->tw = (g->w + 3) / 4;
    /* rows of 8 blocks or fewer in 16 lanes would leave half of them past
       the edge (the decoder's mid block at 32²): two block rows a group */
    g->pair = lanes == 16 && up == 1 && g->tw <= 8;
    g->groups_per_row = (g->tw + lanes - 1) / lanes;
    /* Block rows that leave lanes of their groups empty (Inception's 35²,
       71² and 8² planes: 9, 18 and 2 blocks a row), and the unpadded
       layers, take the gathered layout. */
    int row_lanes = g->pair ? 8 : g->groups_per_row * lanes;
    g->gathered = pad != 1 || (up == 1 && g->tw < row_lanes * GATHER_BELOW);
}

/* Blocks, lane groups and panels of g's n images. */
static void count_groups(wino_grid *g, int n)
{
    g->n = n;
    g->blocks = (long)n * g->th * g->tw;
    g->groups = g->gathered ? (g->blocks + g->lanes - 1) / g->lanes
                : g->pair   ? (long)n * ((g->th + 1) / 2)
                            : (long)n * g->th * g->groups_per_row;
    g->panels = (g->groups + NR / g->lanes - 1) / (NR / g->lanes);
}

double op_winograd_flops(const op_conv_shape *s, int h, int w)
{
    if (!op_winograd_ok(s) || h <= 0 || w <= 0) return 0;
    wino_grid g;
    int kind = kind_of(s);
    plan_grid(kind, s->upsample2x ? 2 : 1, s->pad_h, 16, h, w, 0, &g);
    return 2.0 * g.th * g.tw * positions(kind) * s->cin * s->cout;
}

size_t op_winograd_scratch(const op_conv_shape *s, int n, int h, int w)
{
    if (!op_winograd_ok(s) || n <= 0 || h <= 0 || w <= 0) return 0;
    wino_grid g;
    int kind = kind_of(s);
    plan_grid(kind, s->upsample2x ? 2 : 1, s->pad_h, me_cpu_isa() == ME_ISA_AVX512 ? 16 : 8, h, w, 0, &g);
    count_groups(&g, n);
    return chunk_floats(positions(kind), s->cin, s->cout, g.panels) * me_threads_max();
}

/* The positions' products (36, or 8) of a chunk's np panels over channel
   tiles [t0, t1). */
static void products(const op_winograd *c, const me_tile_fn *tiles, int np, const float *v, float *cm, int t0, int t1)
{
    size_t panel = (size_t)c->kc * c->mr;
    for (int p = 0; p < c->pos; p++)
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
                    const float *pf = next && half >= 0 ? next + (size_t)half * klen / 2 * NR : NULL;
                    me_tile_out o = {.c = cm + ((size_t)(p * np + q) * c->cout + r0) * NR,
                                     .ldc = NR,
                                     .nr = NR,
                                     .alpha = 1.0f,
                                     .beta = kb ? 1.0f : 0.0f,
                                     .pf = (const char *)pf,
                                     .pf_lines = klen};
                    tiles[live](klen, a + (size_t)t * panel, b, &o);
                }
            }
        }
}

/* Lane group lg of g: where it reads and writes (ops/conv_winograd_job.h). */
static void lanes_at(const wino_grid *g, long lg, wino_lanes *L)
{
    long per_img = g->pair ? (g->th + 1) / 2 : (long)g->th * g->groups_per_row;
    int ty = g->pair ? (int)(lg % per_img) * 2 : (int)(lg % per_img / g->groups_per_row);
    int tx0 = g->pair ? 0 : (int)(lg % g->groups_per_row) * g->lanes;
    L->img = (int)(lg / per_img);
    L->row0 = 4 * ty - 1;
    L->col0 = 4 * tx0 - 1;
    L->srow0 = g->up == 2 ? 2 * ty - 1 : L->row0;   /* ⌊(4ty − 1) / 2⌋ */
    L->scol0 = g->up == 2 ? 2 * tx0 - 1 : L->col0;
    L->rows = g->h - 4 * ty < 4 ? g->h - 4 * ty : 4;
    L->rows_next = !g->pair || ty + 1 >= g->th ? 0 : g->h - 4 * (ty + 1) < 4 ? g->h - 4 * (ty + 1) : 4;
    for (int k = 0; k < 5; k++) {
        L->in[k] = 0;
        for (int t = 0; t < g->lanes; t++) {
            int col = L->scol0 + g->lanes * k + t;
            if (col >= 0 && col < g->sw) L->in[k] |= (uint16_t)(1u << t);
        }
    }
    for (int k = 0; k < 4; k++) {
        int left = g->w - (L->col0 + 1) - g->lanes * k;
        L->out[k] = left >= g->lanes ? (uint16_t)((1u << g->lanes) - 1) : left > 0 ? (uint16_t)((1u << left) - 1) : 0;
    }
}

/* Gathered lane group lg of g: its blocks, counted image by image and row
   by row from the call's first image (x's images cin planes each). */
static void gathered_at(const wino_grid *g, int cin, long lg, wino_gathered *G)
{
    memset(G, 0, sizeof *G);
    long per_img = (long)g->th * g->tw;
    for (int t = 0; t < g->lanes; t++) {
        long b = lg * g->lanes + t;
        if (b >= g->blocks) break;
        int img = (int)(b / per_img), ty = (int)(b % per_img / g->tw), tx = (int)(b % g->tw);
        int orow = g->bh * ty, ocol = g->bw * tx, row = orow - g->pad_r, col = ocol - g->pad_c;
        G->in[t] = (int32_t)((size_t)img * cin * g->sh * g->sw + (size_t)row * g->sw + col);
        G->out[t] = (int32_t)((size_t)img * g->y_img + (size_t)orow * g->w + ocol);
        G->rows[t] = (uint8_t)(g->h - orow < g->bh ? g->h - orow : g->bh);
        G->cols[t] = (uint8_t)(g->w - ocol < g->bw ? g->w - ocol : g->bw);
        for (int i = 0; i < g->ext_r; i++)
            if (row + i >= 0 && row + i < g->sh) G->row_in[i] |= (uint16_t)(1u << t);
        for (int j = 0; j < g->ext_c; j++)
            if (col + j >= 0 && col + j < g->sw) {
                G->col_in[j] |= (uint16_t)(1u << t);
                G->along[t] |= (uint8_t)(1u << j);
            }
        if (t == 0 || G->in[t] != G->in[t - 1] + 1) {
            if (G->runs < 4) G->run_at[G->runs] = (uint8_t)t;
            G->runs++;
        }
    }
    if (G->runs > 4) G->runs = 0;
}

/* A chunk's lane groups, in either layout. */
typedef union {
    wino_lanes row;
    wino_gathered gathered;
} group;

/* Phase 3 for output channels [co0, co1) of a chunk's ng lane groups:
   their products in cm (position p's np panels cstride floats after p−1's)
   carried back into y. */
static void output_channels(const op_winograd *c, const wino_grid *g, const group *L, int ng, const float *cm,
                            size_t cstride, int co0, int co1, float *y, const float *res, int act)
{
    int per_panel = NR / g->lanes;
    for (int co = co0; co < co1; co++)
        for (int l = 0; l < ng; l++) {
            const float *src = cm + ((size_t)(l / per_panel) * c->cout + co) * NR + (size_t)(l % per_panel) * g->lanes;
            float bias = c->bias ? c->bias[co] : 0.0f;
            size_t at = (size_t)co * g->h * g->w;   /* the gathered groups' channel plane in the first image */
            if (c->kind != OP_WINO_3X3 && g->lanes == 16)
                wino_output_1d_avx512(g, &L[l].gathered, bias, src, cstride, y + at, res ? res + at : NULL, act);
            else if (c->kind != OP_WINO_3X3)
                wino_output_1d_avx2(g, &L[l].gathered, bias, src, cstride, y + at, res ? res + at : NULL, act);
            else if (g->gathered && g->lanes == 16)
                wino_output_gathered_avx512(g, &L[l].gathered, bias, src, cstride, y + at, res ? res + at : NULL, act);
            else if (g->gathered)
                wino_output_gathered_avx2(g, &L[l].gathered, bias, src, cstride, y + at, res ? res + at : NULL, act);
            else if (g->lanes == 16)
                wino_output_avx512(g, &L[l].row, c->cout, co, bias, src, cstride, y, res, act);
            else
                wino_output_avx2(g, &L[l].row, c->cout, co, bias, src, cstride, y, res, act);
        }
}

/* The panels [q0, q0 + np) of a chunk through the three phases, as
   thread t of tn (tn 1: alone, no barriers) with v and cm as V and C. */
static void run_chunk(const op_winograd *c, const wino_grid *g, const me_tile_fn *tiles, long q0, int np, float *v,
                      float *cm, int t, int tn, const float *x, float *y, const float *res, int act)
{
    size_t vstride = (size_t)np * c->cin * NR, cstride = (size_t)np * c->cout * NR;
    int ci0 = (int)((long)c->cin * t / tn), ci1 = (int)((long)c->cin * (t + 1) / tn);
    int t0 = c->tiles * t / tn, t1 = c->tiles * (t + 1) / tn;
    int per_panel = NR / g->lanes, all = per_panel * np;
    int ng = g->groups - per_panel * q0 < all ? (int)(g->groups - per_panel * q0) : all;
    group L[MAX_GROUPS];
    for (int l = 0; l < ng; l++)
        if (g->gathered)
            gathered_at(g, c->cin, per_panel * q0 + l, &L[l].gathered);
        else
            lanes_at(g, per_panel * q0 + l, &L[l].row);
    size_t plane = (size_t)g->sh * g->sw;
    /* channel by channel, the chunk's groups along it: consecutive groups
       read consecutive stretches of the same rows */
    for (int ci = ci0; ci < ci1; ci++)
        for (int l = 0; l < all; l++) {
            float *dst = v + ((size_t)(l / per_panel) * c->cin + ci) * NR + (size_t)(l % per_panel) * g->lanes;
            if (l < ng && c->kind != OP_WINO_3X3) {
                const float *src = x + (size_t)ci * plane;
                if (g->lanes == 16)
                    wino_input_1d_avx512(g, &L[l].gathered, src, dst, vstride);
                else
                    wino_input_1d_avx2(g, &L[l].gathered, src, dst, vstride);
            } else if (l < ng && g->gathered) {
                const float *src = x + (size_t)ci * plane;
                if (g->lanes == 16)
                    wino_input_gathered_avx512(g, &L[l].gathered, src, dst, vstride);
                else
                    wino_input_gathered_avx2(g, &L[l].gathered, src, dst, vstride);
            } else if (l < ng) {
                const float *src = x + ((size_t)L[l].row.img * c->cin + ci) * plane;
                const float *next = ci + 1 < ci1 ? src + plane : NULL;
                if (g->lanes == 16)
                    wino_input_avx512(g, &L[l].row, src, next, dst, vstride);
                else
                    wino_input_avx2(g, &L[l].row, src, next, dst, vstride);
            } else {   /* the last panel's empty lanes */
                for (int p = 0; p < c->pos; p++) memset(dst + (size_t)p * vstride, 0, (size_t)g->lanes * sizeof(float));
            }
        }
    if (tn > 1) {
        #pragma omp barrier
    }
    products(c, tiles, np, v, cm, t0, t1);
    if (t1 > t0) {
        int co0, last, live;
        me_gemm_tile_span(c->cout, c->tiles, c->mr, t0, &co0, &live);
        me_gemm_tile_span(c->cout, c->tiles, c->mr, t1 - 1, &last, &live);
        output_channels(c, g, L, ng, cm, cstride, co0, last + live, y, res, act);
    }
    if (tn > 1) {
        #pragma omp barrier
    }
}

/* The n images of g through the chunks (see op_winograd_run_into). */
static void run_images(const op_winograd *c, const wino_grid *g, const float *x, float *y, const float *res, int act,
                       float *scratch)
{
    me_tile_plan plan;
    me_gemm_tile_plan(0, &plan);
    int cp = chunk_panels(c->cin, c->cout), nt = me_threads();
    long chunks = (g->panels + cp - 1) / cp;
    double flops = 2.0 * c->pos * NR * (double)g->panels * c->cin * c->cout;
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
            float *v = scratch + (size_t)omp_get_thread_num() * chunk_floats(c->pos, c->cin, c->cout, g->panels);
            #pragma omp for schedule(dynamic)
            for (long k = 0; k < chunks; k++) {
                int np = g->panels - k * cp < cp ? (int)(g->panels - k * cp) : cp;
                run_chunk(c, g, plan.tiles, k * cp, np, v, v + (size_t)c->pos * np * c->cin * NR, 0, 1, x, y, res, act);
            }
        }
        return;
    }
    #pragma omp parallel num_threads(nt)
    {
        int t = omp_get_thread_num(), tn = omp_get_num_threads();
        for (long k = 0; k < chunks; k++) {
            int np = g->panels - k * cp < cp ? (int)(g->panels - k * cp) : cp;
            run_chunk(c, g, plan.tiles, k * cp, np, scratch, scratch + (size_t)c->pos * np * c->cin * NR, t, tn, x, y,
                      res, act);
        }
    }
}

void op_winograd_run(const op_winograd *c, int n, int h, int w, const float *x, float *y, const float *res, int act,
                     float *scratch)
{
    int same = c->kind != OP_WINO_3X3;   /* F(2, 7)'s layers keep the size */
    size_t oh = same ? (size_t)h : (size_t)c->up * h + 2 * c->pad - 2;
    size_t ow = same ? (size_t)w : (size_t)c->up * w + 2 * c->pad - 2;
    op_winograd_run_into(c, n, h, w, x, y, (size_t)c->cout * oh * ow, res, act, scratch);
}

void op_winograd_run_into(const op_winograd *c, int n, int h, int w, const float *x, float *y, size_t y_img,
                          const float *res, int act, float *scratch)
{
    wino_grid g;
    plan_grid(c->kind, c->up, c->pad, c->lanes, h, w, y_img, &g);
    if (n <= 0 || g.h <= 0 || g.w <= 0) return;
    /* The gathered groups' offsets are 32-bit: as many images a pass as
       they reach (past the first image's planes, which they always do). */
    size_t in_img = (size_t)c->cin * h * w, most = y_img > in_img ? y_img : in_img;
    int step = !g.gathered || most * n <= INT32_MAX ? n : most < INT32_MAX ? (int)(INT32_MAX / most) : 1;
    for (int i0 = 0; i0 < n; i0 += step) {
        count_groups(&g, n - i0 < step ? n - i0 : step);
        run_images(c, &g, x + i0 * in_img, y + i0 * y_img, res ? res + i0 * y_img : NULL, act, scratch);
    }
}

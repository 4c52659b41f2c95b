/* Convolution as an implicit GEMM on the own tile kernels (ops/gemm.c,
   ops/gemm_tile.h): C [cout, pixels] = W [cout, cin·kh·kw] · X, where
   column j of X is what output pixel j sees through the kernel.

   - W is packed once, at load, into the tiles' A panels: K split into the
     same equal blocks as me_gemm's (≤ the plan's KC), and per block, mr
     output channels at a time as [kc][mr] floats ([kc/2][mr][2] bfloat16
     on AVX512-BF16).
   - X never exists: a KC×32 B panel (32 output pixels, contiguous over the
     rows and images of the batch) is filled straight from the NCHW input,
     zeros for the padding, source pixel (y/2, x/2) for a folded ×2 nearest
     upsampling, and strides as given. The panel stays in L1 while every
     tile of output channels runs over it, so its cost is spread over
     cout/mr kernel calls.
   - The output of a chunk of pixel panels × the thread's channels builds up
     over the K blocks in the thread's part of the scratch (≤ 1 MB, so it
     stays in L2/L3), in tile order; when
     the last block is done it leaves for y once, with bias, residual and
     ReLU applied on the way — no separate pass over y, and tiles never
     straddle a row or image boundary of y.
   - Threads: one OpenMP region per convolution, each thread a range of
     pixel panels (or, when there are too few, a range of output channels),
     with no barrier inside: a thread packs its own B panels. */
#include <omp.h>
#include <stdint.h>
#include <string.h>
#include "core/core.h"
#include "ops/conv.h"
#include "ops/gemm_tile.h"

#define NR ME_GEMM_NR
#define KC_LIMIT 512          /* the largest K block any plan gives (bf16 pairs: 2 × 256) */
/* One thread's block of output, 1 MB: measured on the Zen 3 host, 256 KB
   blocks (3 pixel panels at 512 channels) ran the 512- and 128-channel 3×3
   convolutions 10–20 % slower — with few panels per block the weights are
   re-read from L3 for every block, while a larger block streams from L3 at
   a quarter of the weights' traffic per tile. */
#define CBUF_FLOATS 262144
#define PAR_MIN_FLOPS 2e6     /* below this a parallel region costs more than it saves */

/* float → bfloat16 → float: the value a bf16 product sees. */
static inline float round_bf16(float f) { return me_bf16_to_f32(me_f32_to_bf16(f)); }

int op_conv_bf16_ok(void)
{
    me_tile_plan p;
    return me_gemm_tile_plan(0, &p);
}

/* The plan c was packed for; 0 on OpenBLAS. */
static int conv_plan(int bf16, me_tile_plan *p, int *native_bf16)
{
    *native_bf16 = bf16 && me_gemm_tile_plan(1, p);
    return *native_bf16 || me_gemm_tile_plan(0, p);
}

/* K split into equal blocks of at most kc_max, even (bf16 pairs), as me_gemm. */
static int k_block(int k, int kc_max)
{
    int nb = (k + kc_max - 1) / kc_max, kc = (k + nb - 1) / nb;
    return (kc + 1) & ~1;
}

static int k_total(const op_conv_shape *s) { return s->cin * s->kh * s->kw; }

size_t op_conv_bytes(const op_conv_shape *s, int bf16)
{
    me_tile_plan p;
    int nb;
    if (!conv_plan(bf16, &p, &nb)) return 0;
    size_t mpad = (size_t)(s->cout + p.mr - 1) / p.mr * p.mr, k = (size_t)k_total(s);
    return nb ? mpad * ((k + 1) & ~(size_t)1) * sizeof(uint16_t) : mpad * k * sizeof(float);
}

void op_conv_init(op_conv *c, const op_conv_shape *s, const float *weight, const float *bias, int bf16,
                  void *mem)
{
    me_tile_plan p;
    memset(c, 0, sizeof *c);
    c->s = *s;
    c->w = weight;
    c->bias = bias;
    if (!conv_plan(bf16, &p, &c->native_bf16)) return;
    int k = k_total(s), cout = s->cout;
    c->bf16 = bf16 != 0;
    c->packed = mem;
    c->mr = p.mr;
    c->kc = k_block(k, p.kc);
    c->mpad = (cout + p.mr - 1) / p.mr * p.mr;
    memset(mem, 0, op_conv_bytes(s, c->bf16));
    /* Block [k0, k0+kb) starts at element k0·mpad (k0 is even: kc is), then
       panel q of mr rows at q·mr·kbp. */
    for (int k0 = 0; k0 < k; k0 += c->kc) {
        int kb = k - k0 < c->kc ? k - k0 : c->kc, kbp = c->native_bf16 ? (kb + 1) & ~1 : kb;
        for (int r = 0; r < cout; r++) {
            size_t at = (size_t)k0 * c->mpad + (size_t)(r / p.mr) * p.mr * kbp;
            int i = r % p.mr;
            const float *src = weight + (size_t)r * k + k0;
            if (c->native_bf16) {
                uint16_t *d = (uint16_t *)mem + at;
                for (int kk = 0; kk < kb; kk++) d[(size_t)(kk / 2) * p.mr * 2 + i * 2 + (kk & 1)] = me_f32_to_bf16(src[kk]);
            } else {
                float *d = (float *)mem + at;
                for (int kk = 0; kk < kb; kk++) d[(size_t)kk * p.mr + i] = c->bf16 ? round_bf16(src[kk]) : src[kk];
            }
        }
    }
}

size_t op_conv_scratch(const op_conv_shape *s, int h, int w)
{
    me_tile_plan p;
    return me_gemm_tile_plan(0, &p) ? (size_t)CBUF_FLOATS * me_threads_max() : op_conv2d_scratch(s, h, w);
}

/* ---- the implicit GEMM ------------------------------------------------- */

typedef struct {
    const op_conv *c;
    const float *x;
    float *y;
    const float *res;
    int act, h, w;            /* stored input size */
    int ih, iw, oh, ow;       /* the size the kernel sees (upsampled), output size */
    size_t plane;             /* oh·ow */
    size_t y_img;             /* floats from one image of y (and res) to the next */
    int flat;                 /* stride 1, no upsampling, ow ≤ w: see pack_b */
    int gw;                   /* row length of the pixel grid: ow, or w for a flat job */
    size_t gplane;            /* oh·gw */
    long pixels;              /* n·gplane */
    const me_tile_fn *tiles;
} conv_job;

/* A run of a panel's lanes on one output row of one image. */
typedef struct { int img, oy, ox, len, lane; } segment;

/* Lanes [0, 32) of panel q, split where the output row or image changes;
   returns the number of segments (lanes past the last pixel are none). */
static int panel_segments(const conv_job *j, long q, int by_row, segment *seg)
{
    int ns = 0;
    for (int lane = 0; lane < NR;) {
        long g = q * NR + lane;
        if (g >= j->pixels) break;
        int img = (int)(g / (long)j->gplane);
        long pix = g % (long)j->gplane;
        int oy = (int)(pix / j->gw), ox = (int)(pix % j->gw);
        long left = by_row ? j->gw - ox : (long)j->gplane - pix;
        int len = (int)(left < NR - lane ? left : NR - lane);
        if (g + len > j->pixels) len = (int)(j->pixels - g);
        seg[ns++] = (segment){img, oy, ox, len, lane};
        lane += len;
    }
    return ns;
}

/* dst[0, len) = src[0, len) with dst[t] = 0 where t < lo or t ≥ hi. The
   copy goes in fixed 8-float pieces, which compile to vector moves; a
   variable-length loop would become a call to memcpy, whose overhead is
   larger than these 32-float rows. */
static inline void copy_row(float *restrict dst, const float *restrict src, int lo, int hi, int len)
{
    int t = 0;
    for (; t < lo; t++) dst[t] = 0.0f;
    for (; t + 8 <= hi; t += 8) memcpy(dst + t, src + t, 8 * sizeof *dst);
    for (; t < hi; t++) dst[t] = src[t];
    for (; t < len; t++) dst[t] = 0.0f;
}

/* The same through a ×2 nearest upsampling: dst[t] = row[(ix0 + t) / 2]. */
static inline void copy_row_up(float *restrict dst, const float *restrict row, int ix0, int lo, int hi, int len)
{
    int t = 0;
    for (; t < lo; t++) dst[t] = 0.0f;
    if (t < hi && (ix0 + t) & 1) {
        dst[t] = row[(ix0 + t) >> 1];
        t++;
    }
    for (const float *src = row + ((ix0 + t) >> 1); t + 1 < hi; t += 2, src++) dst[t] = dst[t + 1] = *src;
    if (t < hi) dst[t] = row[(ix0 + t) >> 1], t++;
    for (; t < len; t++) dst[t] = 0.0f;
}

/* Lanes [0, len) of a flat panel from grid column ox on, rows w wide: zero
   where tap column kx, d = pad_w − kx, reads across a row edge — the grid
   columns [0, d) (d > 0) or [w + d, w) (d < 0), i.e. the column padding. */
static void zero_wrapped(float *o, int ox, int len, int w, int d)
{
    int a = d > 0 ? 0 : w + d, b = d > 0 ? d : w;
    for (long t0 = -ox; t0 < len; t0 += w) {
        long from = t0 + a < 0 ? 0 : t0 + a, to = t0 + b < len ? t0 + b : len;
        for (long t = from; t < to; t++) o[t] = 0.0f;
    }
}

/* B panel [kb][32] of panel q over K range [k0, k0+kb): row kk holds, for
   each of the panel's pixels, the input value tap k0+kk = (ci, ky, kx)
   sees (0 in the padding and past the last pixel). With stride 1 (the
   common case) it is a few row copies per k with the padding's columns
   cut off. A flat job (stride 1, at most "same" column padding) reads
   whole planes: its pixel grid is oh rows of the input's w columns (the
   last w − ow of each row computed and dropped by store_block), so the
   input pixel a tap (ky, kx) sees is the grid pixel shifted by
   (ky − pad_h)·w + kx − pad_w, and an image's pixels are one copy per k,
   zero in the rows padding covers, then zero in the few columns whose
   shifted read wrapped into the neighbouring row — no split at every
   output row, which costs the 17×17 and 8×8 layers' panels two or three
   copies each and the stem's 147- and 71-wide rows a copy with a ragged
   tail per row and k. */
static void pack_b(const conv_job *j, const segment *seg, int ns, int k0, int kb, float *d)
{
    const op_conv_shape *s = &j->c->s;
    int taps = s->kh * s->kw, st = s->stride > 0 ? s->stride : 1, up = s->upsample2x;
    int ci = k0 / taps, ky = k0 % taps / s->kw, kx = k0 % s->kw;
    size_t in_plane = (size_t)j->h * j->w, img_size = (size_t)s->cin * in_plane;
    int filled = ns ? seg[ns - 1].lane + seg[ns - 1].len : 0;
    for (int kk = 0; kk < kb; kk++, d += NR) {
        const float *xc = j->x + ci * in_plane;
        for (int g = 0; j->flat && g < ns; g++) {
            const segment *e = &seg[g];
            long pix = (long)e->oy * j->gw + e->ox, shift = (long)(ky - s->pad_h) * j->w + kx - s->pad_w;
            /* valid: source pixels [0, ih·w) of the plane, i.e. the rows
               [pad_h − ky, ih + pad_h − ky) for the kept columns */
            long lo = -(pix + shift), hi = (long)j->ih * j->w - (pix + shift);
            lo = lo < 0 ? 0 : lo > e->len ? e->len : lo;
            hi = hi > e->len ? e->len : hi < lo ? lo : hi;
            float *o = d + e->lane;
            for (int t = 0; t < lo; t++) o[t] = 0.0f;
            if (hi > lo) {
                const float *src = xc + e->img * img_size + pix + shift + lo;
                __builtin_prefetch(src + 32);
                __builtin_prefetch(src + 48);
                copy_row(o + lo, src, 0, (int)(hi - lo), (int)(hi - lo));
            }
            for (int t = (int)hi; t < e->len; t++) o[t] = 0.0f;
            if (kx != s->pad_w) zero_wrapped(o, e->ox, e->len, j->w, s->pad_w - kx);
        }
        for (int g = 0; !j->flat && g < ns; g++) {
            const segment *e = &seg[g];
            float *o = d + e->lane;
            int iy = e->oy * st - s->pad_h + ky, len = e->len;
            if (iy < 0 || iy >= j->ih) {
                for (int t = 0; t < len; t++) o[t] = 0.0f;
                continue;
            }
            const float *row = xc + e->img * img_size + (size_t)(up ? iy >> 1 : iy) * j->w;
            int ix0 = e->ox * st - s->pad_w + kx;
            /* The next panel reads the next 32 pixels of these rows: ask for
               them now (a dozen short rows per panel are too many streams
               for the hardware prefetcher, so each would wait on memory). */
            const float *next = row + (up ? (ix0 + 32) >> 1 : ix0 + 32 * st);
            __builtin_prefetch(next);
            if (!up) __builtin_prefetch(next + 16);
            if (st == 1) {
                int lo = ix0 < 0 ? -ix0 : 0, hi = j->iw - ix0 < len ? j->iw - ix0 : len;
                if (lo > len) lo = len;
                if (hi < lo) hi = lo;
                if (up) copy_row_up(o, row, ix0, lo, hi, len);
                else copy_row(o, row + ix0, lo, hi, len);
            } else {
                for (int t = 0, ix = ix0; t < len; t++, ix += st)
                    o[t] = ix < 0 || ix >= j->iw ? 0.0f : row[up ? ix >> 1 : ix];
            }
        }
        for (int t = filled; t < NR; t++) d[t] = 0.0f;
        if (++kx == s->kw) {
            kx = 0;
            if (++ky == s->kh) ky = 0, ci++;
        }
    }
}

/* Output channels [r0, r1) of panels [q0, q0 + nq) from the thread's block
   (rows r1 - r0 per panel, 32 floats each) into y, with bias, residual and
   activation. */
static void store_block(const conv_job *j, long q0, int nq, int r0, int r1, const float *cbuf)
{
    const op_conv *c = j->c;
    int rows = r1 - r0, cout = c->s.cout;
    for (int q = 0; q < nq; q++) {
        segment seg[NR];
        int narrow = j->gw != j->ow;   /* a flat grid's columns [ow, gw) are dropped */
        int ns = panel_segments(j, q0 + q, narrow, seg);
        for (int g = 0; g < ns; g++) {
            const segment *e = &seg[g];
            int len = narrow && e->ox + e->len > j->ow ? j->ow - e->ox : e->len;
            size_t pix = (size_t)e->oy * j->ow + e->ox;
            for (int r = r0; r < r1 && r < cout; r++) {
                const float *src = cbuf + ((size_t)q * rows + (r - r0)) * NR + e->lane;
                size_t at = (size_t)e->img * j->y_img + (size_t)r * j->plane + pix;
                float *dst = j->y + at, b = c->bias ? c->bias[r] : 0.0f;
                const float *res = j->res ? j->res + at : NULL;
                for (int t = 0; t < len; t++) {
                    float v = src[t] + b;
                    if (res) v += res[t];
                    dst[t] = j->act == OP_ACT_RELU && v < 0.0f ? 0.0f : v;
                }
            }
        }
    }
}

/* Panels [q0, q1) × channel panels [m0, m1): K blocks outermost so the
   weight block stays in L2 across the chunk's panels. */
static void run_chunk(const conv_job *j, long q0, long q1, int m0, int m1, float *cbuf)
{
    const op_conv *c = j->c;
    int k = k_total(&c->s), mr = c->mr, rows = (m1 - m0) * mr, cout = c->s.cout;
    _Alignas(64) float bp[KC_LIMIT * NR];
    _Alignas(64) uint16_t bpair[KC_LIMIT * NR];
    for (int k0 = 0; k0 < k; k0 += c->kc) {
        int kb = k - k0 < c->kc ? k - k0 : c->kc, kbp = c->native_bf16 ? (kb + 1) & ~1 : kb;
        for (long q = q0; q < q1; q++) {
            segment seg[NR];
            int ns = panel_segments(j, q, !j->flat, seg);
            int live = 0;
            for (int g = 0; g < ns; g++) live += seg[g].len;
            pack_b(j, seg, ns, k0, kb, bp);
            const void *b = bp;
            if (c->native_bf16) {   /* [kb/2][32][2] pairs, the odd pad row zero */
                for (int kk = 0; kk < kbp; kk++)
                    for (int t = 0; t < NR; t++)
                        bpair[(size_t)(kk / 2) * 2 * NR + t * 2 + (kk & 1)] = kk < kb ? me_f32_to_bf16(bp[kk * NR + t]) : 0;
                b = bpair;
            } else if (c->bf16) {
                for (int t = 0; t < kb * NR; t++) bp[t] = round_bf16(bp[t]);
            }
            for (int m = m0; m < m1; m++) {
                int lr = cout - m * mr < mr ? cout - m * mr : mr;
                size_t at = (size_t)k0 * c->mpad + (size_t)m * mr * kbp;
                const void *a = c->native_bf16 ? (const void *)((const uint16_t *)c->packed + at)
                                               : (const void *)((const float *)c->packed + at);
                me_tile_out o = {cbuf + ((size_t)(q - q0) * rows + (size_t)(m - m0) * mr) * NR, NR, live, NULL,
                                 1.0f, k0 == 0 ? 0.0f : 1.0f};
                j->tiles[lr](kbp, a, b, &o);
            }
        }
    }
    store_block(j, q0, (int)(q1 - q0), m0 * mr, m1 * mr, cbuf);
}

/* This thread's panels [q0, q1) and channel panels [m0, m1), in chunks whose
   output fits the block buffer. */
static void run_share(const conv_job *j, long q0, long q1, int m0, int m1, float *cbuf)
{
    int mr = j->c->mr, mstep = CBUF_FLOATS / (NR * mr);
    for (int ma = m0; ma < m1; ma += mstep) {
        int mb = m1 - ma < mstep ? m1 : ma + mstep;
        long per = CBUF_FLOATS / ((long)(mb - ma) * mr * NR), np = q1 - q0;
        long chunks = (np + per - 1) / per;
        for (long i = 0; i < chunks; i++)
            run_chunk(j, q0 + np * i / chunks, q0 + np * (i + 1) / chunks, ma, mb, cbuf);
    }
}

static void blas_run(const op_conv *c, int n, int h, int w, const float *x, float *y, const float *res, int act,
                     float *scratch, size_t len)
{
    op_conv2d(&c->s, n, h, w, x, c->w, c->bias, y, scratch);
    if (!res && act == OP_ACT_NONE) return;
    #pragma omp parallel for simd schedule(static) num_threads(me_threads()) if (len >= 65536 && !omp_in_parallel())
    for (size_t i = 0; i < len; i++) {
        float v = y[i] + (res ? res[i] : 0.0f);
        y[i] = act == OP_ACT_RELU && v < 0.0f ? 0.0f : v;
    }
}

void op_conv_run_into(const op_conv *c, int n, int h, int w, const float *x, float *y, size_t y_img,
                      const float *res, int act, float *scratch)
{
    const op_conv_shape *s = &c->s;
    int up = s->upsample2x ? 2 : 1, st = s->stride > 0 ? s->stride : 1;
    int oh = op_conv2d_out(h * up, s->kh, st, s->pad_h), ow = op_conv2d_out(w * up, s->kw, st, s->pad_w);
    if (oh <= 0 || ow <= 0 || n <= 0) return;
    size_t plane = (size_t)oh * ow;
    if (!c->packed) {
        if (y_img != s->cout * plane) {   /* op_conv2d writes whole images: one at a time */
            for (int i = 0; i < n; i++)
                blas_run(c, 1, h, w, x + (size_t)i * s->cin * h * w, y + i * y_img, res ? res + i * y_img : NULL,
                         act, scratch, s->cout * plane);
            return;
        }
        blas_run(c, n, h, w, x, y, res, act, scratch, (size_t)n * s->cout * plane);
        return;
    }
    me_tile_plan p;
    me_gemm_tile_plan(c->native_bf16, &p);
    int flat = st == 1 && up == 1 && 2 * s->pad_w < s->kw, gw = flat ? w : ow;
    conv_job j = {c, x, y, res, act, h, w, h * up, w * up, oh, ow, plane, y_img, flat, gw, (size_t)oh * gw,
                  (long)n * oh * gw, p.tiles};
    long np = (j.pixels + NR - 1) / NR;
    int mp = c->mpad / c->mr, nt = me_threads();
    double flops = 2.0 * (double)j.pixels * s->cout * k_total(s);
    int par = nt > 1 && !omp_in_parallel() && flops >= PAR_MIN_FLOPS;
    #pragma omp parallel num_threads(nt) if (par)
    {
        int t = omp_get_thread_num(), tn = omp_get_num_threads();
        /* Pixel panels split when each thread gets two or more, else channels. */
        float *cbuf = scratch + (size_t)t * CBUF_FLOATS;
        if (np >= 2L * tn)
            run_share(&j, np * t / tn, np * (t + 1) / tn, 0, mp, cbuf);
        else if (mp * t / tn < mp * (t + 1) / tn)
            run_share(&j, 0, np, mp * t / tn, mp * (t + 1) / tn, cbuf);
    }
}

void op_conv_run(const op_conv *c, int n, int h, int w, const float *x, float *y, const float *res, int act,
                 float *scratch)
{
    const op_conv_shape *s = &c->s;
    int up = s->upsample2x ? 2 : 1, st = s->stride > 0 ? s->stride : 1;
    int oh = op_conv2d_out(h * up, s->kh, st, s->pad_h), ow = op_conv2d_out(w * up, s->kw, st, s->pad_w);
    op_conv_run_into(c, n, h, w, x, y, oh > 0 && ow > 0 ? (size_t)s->cout * oh * ow : 0, res, act, scratch);
}

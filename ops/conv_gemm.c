/* Convolution as an implicit GEMM on the own tile kernels (ops/gemm.c,
   ops/gemm_tile.h): C [cout, pixels] = W [cout, cin·kh·kw] · X, where
   column j of X is what output pixel j sees through the kernel.

   - W is packed once, at load, into the tiles' A panels: K split into the
     same equal blocks as me_gemm's (≤ the plan's KC), as many of those per
     packed block as fit 1024 (one on AMX), and per block, a tile's output
     channels at a time (dealt to the tiles as me_gemm deals rows) as
     [kc][mr] floats ([kc/2][mr][2] bfloat16 on AVX512-BF16); the tiles run
     a block in one pass over input planes under 128 KB, else in passes of
     me_gemm's blocks (op_conv_run_split says why); on
     CPUs with AMX, bf16 weights go in blocks of 32 channels in the AMX
     tiles' order, K blocks padded with zeros to multiples of 32, and the
     products run on AMX blocks (me_amx_block) accumulating in the block
     buffer below.
   - X never exists: a KC×32 B panel (32 output pixels, contiguous over the
     rows and images of the batch) is filled straight from the NCHW input,
     zeros for the padding, source pixel (y/2, x/2) for a ×2 nearest
     upsampling, and strides as given; at stride 1 (most layers) a panel
     row is one masked vector load per image it touches (ops/conv_pack.c). The
     panel stays in L1 while every tile of output channels runs over it,
     so its cost is spread over cout/mr kernel calls — convolutions that
     read the same input are best run as one (op_conv_run_split).
   - On AVX-512, float32 stride-1 convolutions of more than one tap (the
     VAE's 3×3 layers and folded parities, Inception's 3×3, 1×7, 7×1, 5×5)
     skip even that: each row of a one-image panel is the input at a fixed
     offset from the panel's first pixel (conv_row_offsets), so the tiles
     read it where it lies (me_tile_rows_fn), lanes in the padding masked
     to zeros — the same sums bit for bit. A Zen 5 core reads rows at a
     one-float offset as fast as a packed panel, and the packing had been
     6 % of a decode (docs/performance.md, "Convolutions"); 1×1 layers,
     whose pack is a plain copy, measured slower in place and keep it, as
     do panels across two images. A panel's first and last tiles fetch
     the next panel's rows.
   - A ×2 upsampling before a 3×3 convolution is folded into four 2×2
     convolutions of the source, 4/9 of the products (see folds); on
     AVX-512 the two column parities of an output row run over the same
     panels and are stored together (store_pair).
   - The output of a chunk of pixel panels × the thread's channels builds up
     over the K passes in the thread's part of the scratch (≤ 1 MB, so it
     stays in L2/L3), in tile order; when the last pass is done it
     leaves for y once (each channel range for its own destination), with
     bias, residual and ReLU applied on the way — no separate pass over y,
     and tiles never straddle a row or image boundary of y. A y larger
     than the threads' L2s gets whole rows by streaming stores. Where one
     pass makes the sums final, a panel whose pixels are one run of y
     skips the block: its tiles store into y themselves, bias and ReLU in
     their store (me_tile_out's row_bias and relu).
   - Threads: one OpenMP region per convolution, each thread claiming
     ranges of pixel panels as it goes (or, when there are too few, taking
     a range of output channels), with no barrier inside: a thread packs
     (or reads) its own B panels. */
#include <immintrin.h>
#include <omp.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "core/core.h"
#include "core/cpu.h"
#include "ops/conv.h"
#include "ops/conv_job.h"
#include "ops/gemm_amx.h"
#include "ops/gemm_tile.h"
#include "ops/simd512.h"

#define NR ME_GEMM_NR
#define KC_LIMIT 1024         /* K blocks as packed (not on AMX): as many of the GEMM's blocks as fit this */
#define KC_AMX 384            /* AMX K block bound: its bf16 B panel, 24 KB, stays in L1 */
/* One thread's block of output, 1 MB: measured on the Zen 3 host, 256 KB
   blocks (3 pixel panels at 512 channels) ran the 512- and 128-channel 3×3
   convolutions 10–20 % slower — with few panels per block the weights are
   re-read from L3 for every block, while a larger block streams from L3 at
   a quarter of the weights' traffic per tile. */
#define CBUF_FLOATS 262144
/* Input planes under this many bytes take a packed K block in one pass (op_conv_run_split). */
#define LONG_PASS_PLANE 131072
#define PAR_MIN_FLOPS 2e6     /* below this a parallel region costs more than it saves */

/* float → bfloat16 → float: the value a bf16 product sees. */
static inline float round_bf16(float f) { return me_bf16_to_f32(me_f32_to_bf16(f)); }

int op_conv_bf16_ok(void)
{
    me_tile_plan p;
    return me_gemm_tile_plan(0, &p);
}

/* K split into equal blocks of at most kc_max, whole multiples of `unit`
   (the last block may be shorter): pairs of k for the bf16 tiles, as
   me_gemm's blocks, 32 k for AMX. */
static int k_block(int k, int kc_max, int unit)
{
    int nb = (k + kc_max - 1) / kc_max, kc = (k + nb - 1) / nb;
    return (kc + unit - 1) / unit * unit;
}

/* A nearest ×2 upsampling followed by a 3×3 convolution (padding 1, stride
   1) is folded: output pixel (2y + py, 2x + px) sees, per input channel,
   only a 2×2 window of the source, rows y − 1 + py + a and columns
   x − 1 + px + b (a, b ∈ {0, 1}), each weighted by the sum of the 3×3 taps
   that land on it — the taps ky of S(py, a): S(0, 0) = {0}, S(0, 1) = {1, 2},
   S(1, 0) = {0, 1}, S(1, 1) = {2} (the same for kx). So the layer is four
   2×2 convolutions of the source, one per output parity, each writing every
   other pixel of every other row: 4 multiply-adds per input channel and
   output pixel instead of 9 (the upsampled image is never read, so a panel
   row is one load instead of a copy that duplicates pixels). The sums of
   taps change the rounding of the products, not what is computed. */
static int folds(const op_conv_shape *s)
{
    return s->upsample2x && s->kh == 3 && s->kw == 3 && s->stride <= 1 && s->pad_h == 1 && s->pad_w == 1;
}

/* K per output channel as packed: cin·kh·kw, or cin·4 for each parity of a folded layer. */
static int k_total(const op_conv_shape *s) { return folds(s) ? s->cin * 4 : s->cin * s->kh * s->kw; }

/* How a convolution's weights are packed on this CPU: the tiles (rows per
   channel tile, K block) and whether bf16 products run on AVX512-BF16
   (native_bf16) and, within those, on AMX tiles (then the channels go in
   blocks of 32 and each K block is padded with zeros to a multiple of 32,
   so any cin·kh·kw fits). 0 on OpenBLAS. */
typedef struct { int native_bf16, amx, mr, kc, kc_pass; } conv_layout;

static int conv_layout_of(const op_conv_shape *s, int bf16, conv_layout *L)
{
    me_tile_plan p;
    L->native_bf16 = bf16 && me_gemm_tile_plan(1, &p);
    if (!L->native_bf16 && !me_gemm_tile_plan(0, &p)) return 0;
    L->amx = L->native_bf16 && me_cpu_amx();
    L->mr = L->amx ? ME_AMX_ROWS : p.mr;
    L->kc = L->amx ? k_block(k_total(s), KC_AMX, ME_AMX_K) : k_block(k_total(s), p.kc, 2);
    L->kc_pass = L->kc;
    if (!L->amx && L->kc < KC_LIMIT) L->kc *= KC_LIMIT / L->kc;
    return 1;
}

/* The K block [k0, k0 + kb) as packed: kb rounded up to what the products take. */
static int k_padded(const op_conv *c, int kb)
{
    return c->amx ? (kb + ME_AMX_K - 1) / ME_AMX_K * ME_AMX_K : c->native_bf16 ? (kb + 1) & ~1 : kb;
}

size_t op_conv_bytes(const op_conv_shape *s, int bf16)
{
    conv_layout L;
    if (!conv_layout_of(s, bf16, &L)) return 0;
    size_t mpad = (size_t)(s->cout + L.mr - 1) / L.mr * L.mr, k = (size_t)k_total(s);
    size_t kpad = L.amx ? (k + L.kc - 1) / L.kc * L.kc : L.native_bf16 ? (k + 1) & ~(size_t)1 : k;
    size_t one = mpad * kpad * (L.native_bf16 ? sizeof(uint16_t) : sizeof(float));
    return folds(s) ? 4 * one : one;
}

/* The first output channel of channel tile m (cout for m = mpad/mr): the
   channels are dealt to the tiles as me_gemm deals rows (evenly on
   AVX-512), since a tile of a few rows runs at two thirds of the rate of
   a full one (Inception's 32 channels were 14 + 14 + 4, the VAE's 128
   were 9 × 14 + 2). */
static int tile_row(const op_conv *c, int m)
{
    int tiles = c->mpad / c->mr, r0, live;
    if (m >= tiles) return c->s.cout;
    me_gemm_tile_span(c->s.cout, tiles, c->mr, m, &r0, &live);
    return r0;
}

/* Weight kk (of k_total) of output channel r, as packed: the 3×3 tap, or
   for parity p = 2·py + px of a folded layer the sum of the taps on 2×2
   position (a, b), kk = ci·4 + a·2 + b. */
static float packed_weight(const op_conv *c, int r, int kk, int parity)
{
    const op_conv_shape *s = &c->s;
    if (parity < 0) return c->w[(size_t)r * k_total(s) + kk];
    static const int first[2][2] = {{0, 1}, {0, 2}}, count[2][2] = {{1, 2}, {2, 1}};
    int ci = kk / 4, a = kk / 2 % 2, b = kk % 2, py = parity / 2, px = parity % 2;
    const float *w = c->w + ((size_t)r * s->cin + ci) * 9;
    float sum = 0.0f;
    for (int ky = first[py][a]; ky < first[py][a] + count[py][a]; ky++)
        for (int kx = first[px][b]; kx < first[px][b] + count[px][b]; kx++) sum += w[ky * 3 + kx];
    return sum;
}

/* The weights (one parity's, or parity −1: as given) into tile A panels at mem. */
static void pack_weights(const op_conv *c, int parity, void *mem)
{
    int k = k_total(&c->s), mr = c->mr;
    /* Block [k0, k0+kb) starts at element k0·mpad (k0 is even: kc is), then
       panel q of mr rows at q·mr·kbp. */
    for (int k0 = 0; k0 < k; k0 += c->kc) {
        int kb = k - k0 < c->kc ? k - k0 : c->kc, kbp = k_padded(c, kb);
        for (int m = 0; m < c->mpad / mr; m++) {
            size_t at = (size_t)k0 * c->mpad + (size_t)m * mr * kbp;
            for (int r = tile_row(c, m), end = tile_row(c, m + 1), i = 0; r < end; r++, i++)
                for (int kk = 0; kk < kb; kk++) {
                    float v = packed_weight(c, r, k0 + kk, parity);
                    if (c->amx)
                        ((uint16_t *)mem)[at + me_amx_a_at(i, kk)] = me_f32_to_bf16(v);
                    else if (c->native_bf16)
                        ((uint16_t *)mem)[at + (size_t)(kk / 2) * mr * 2 + i * 2 + (kk & 1)] = me_f32_to_bf16(v);
                    else
                        ((float *)mem)[at + (size_t)kk * mr + i] = c->bf16 ? round_bf16(v) : v;
                }
        }
    }
}

void op_conv_init(op_conv *c, const op_conv_shape *s, const float *weight, const float *bias, int bf16,
                  void *mem)
{
    conv_layout L;
    memset(c, 0, sizeof *c);
    c->s = *s;
    c->w = weight;
    c->bias = bias;
    if (!conv_layout_of(s, bf16, &L)) return;
    size_t bytes = op_conv_bytes(s, bf16);
    c->bf16 = bf16 != 0;
    c->native_bf16 = L.native_bf16;
    c->amx = L.amx;
    c->packed = mem;
    c->mr = L.mr;
    c->kc = L.kc;
    c->kc_pass = L.kc_pass;
    c->mpad = (s->cout + L.mr - 1) / L.mr * L.mr;
    c->folded = folds(s);
    memset(mem, 0, bytes);
    if (!c->folded) {
        pack_weights(c, -1, mem);
        return;
    }
    for (int parity = 0; parity < 4; parity++) pack_weights(c, parity, (char *)mem + parity * (bytes / 4));
}

size_t op_conv_scratch(const op_conv_shape *s, int h, int w)
{
    me_tile_plan p;
    return me_gemm_tile_plan(0, &p) ? (size_t)CBUF_FLOATS * me_threads_max() : op_conv2d_scratch(s, h, w);
}

/* ---- the implicit GEMM ------------------------------------------------- */

/* dst[0, len) = src + b (+ res), 0 where relu and negative (len ≤ 32),
   in masked vectors: GCC's vectorisation of the scalar loop rebuilt the
   ReLU mask bit by bit for every 32-float row (Inception's stores, 5 % of
   its samples, were mostly that). With stream (len 32, dst 64-byte
   aligned) by streaming stores: a y larger than the threads' L2s leaves
   them before the next layer reads it; a plain store first reads every
   line it writes and evicts the weights and block buffer the next panels
   need. Whether a shared L3 would have kept y for the next layer (Zen's)
   is not measured. 256² VAE decodes, one process alternating with and without
   (Intel AMX host): float32 3.66 → 3.60 s (median of 11), bf16 1.39 →
   1.31 s (of 21); with every size streamed, in a quieter minute, 3.29 →
   3.09 and 1.02 → 0.78 s. Inception 0.684 → 0.665 s, noise: its planes
   rarely start rows on a line. */
ME_TARGET_AVX512 static void store_row(float *dst, const float *src, const float *res, float b, int relu, int len,
                                       int stream)
{
    const __m512 bias = _mm512_set1_ps(b), zero = _mm512_setzero_ps();
    for (int t = 0; t < len; t += 16) {
        __mmask16 m = len - t >= 16 ? 0xffff : (__mmask16)((1u << (len - t)) - 1);
        __m512 v = _mm512_add_ps(_mm512_maskz_loadu_ps(m, src + t), bias);
        if (res) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, res + t));
        if (relu)   /* as the scalar path: only v < 0 becomes 0 (NaN and -0 stay) */
            v = _mm512_mask_mov_ps(v, _mm512_cmp_ps_mask(v, zero, _CMP_LT_OQ), zero);
        if (stream)
            _mm512_stream_ps(dst + t, v);
        else
            _mm512_mask_storeu_ps(dst + t, m, v);
    }
}

/* Whether panel q's tiles store their channels straight into y (see
   run_pass): its pixels are one run of one output row or image (*e), all
   kept. */
static int tiles_store(const conv_job *j, long q, segment *e)
{
    if (!j->direct) return 0;
    segment seg[NR];
    int narrow = j->gw != j->ow;
    if (conv_panel_segments(j, q, narrow, seg) != 1 || seg[0].ox + seg[0].len > j->ow) return 0;
    *e = seg[0];
    return 1;
}

/* Channels [r0, r1) of one segment of a panel into their destinations,
   with bias, residual and activation: channel r's values at src + (r -
   r0)·32. */
static void store_channels(const conv_job *j, const segment *e, int r0, int r1, const float *src)
{
    const float *bias = j->c->bias;
    int narrow = j->gw != j->ow;   /* a flat grid's columns [ow, gw) are dropped */
    int len = narrow && e->ox + e->len > j->ow ? j->ow - e->ox : e->len, st = j->step;
    size_t pix = (size_t)(st * e->oy + j->py) * (st * j->ow) + (size_t)st * e->ox + j->px;
    /* destination i holds channels [c0, c0 + channels) */
    for (int i = 0, c0 = 0; i < j->ndst && c0 < r1; c0 += j->dst[i++].channels) {
        const op_conv_dst *ds = &j->dst[i];
        int lo = r0 > c0 ? r0 : c0, hi = r1 < c0 + ds->channels ? r1 : c0 + ds->channels;
        int relu = j->act == OP_ACT_RELU && !ds->no_act;
        for (int r = lo; r < hi; r++) {
            const float *row = src + (size_t)(r - r0) * NR;
            size_t at = (size_t)e->img * ds->y_img + (size_t)(r - c0) * j->plane + pix;
            float *dst = ds->y + at, b = bias ? bias[r] : 0.0f;
            const float *res = ds->res ? ds->res + at : NULL;
            /* The next panel reads and writes the next 32 pixels of this
               channel: fetch them now (for writing, unless streamed).
               Every channel is a stream of its own, too many for the
               hardware prefetcher, and a store that misses waits on the
               line's read (without this every Inception layer ran slower,
               5 % in all, Zen 3 host, best of 6 in situ). */
            if (res) {
                __builtin_prefetch(res + st * NR);
                __builtin_prefetch(res + st * NR + 16);
            }
            int whole = j->stream && st == 1 && len == NR && ((uintptr_t)dst & 63) == 0;
            if (!whole) {
                __builtin_prefetch(dst + st * NR, 1);
                __builtin_prefetch(dst + st * NR + 16, 1);
            }
            if (st == 1 && j->avx512) {
                store_row(dst, row, res, b, relu, len, whole);
                continue;
            }
            if (st == 1) {
                for (int t = 0; t < len; t++) {
                    float v = row[t] + b;
                    if (res) v += res[t];
                    dst[t] = relu && v < 0.0f ? 0.0f : v;
                }
                continue;
            }
            for (int t = 0; t < len; t++) {
                float v = row[t] + b;
                if (res) v += res[(size_t)t * st];
                dst[(size_t)t * st] = relu && v < 0.0f ? 0.0f : v;
            }
        }
    }
}

/* Output channels [r0, r1) of panels [q0, q0 + nq) from the thread's block
   (`rows` rows per panel, r1 - r0 of them live, 32 floats each) into their
   destinations — but the panels whose tiles stored themselves. */
static void store_block(const conv_job *j, long q0, int nq, int r0, int r1, int rows, const float *cbuf)
{
    for (int q = 0; q < nq; q++) {
        segment seg[NR];
        if (tiles_store(j, q0 + q, seg)) continue;
        int narrow = j->gw != j->ow;
        /* split by row where a row of the grid is not one of y (narrow, folded) */
        int ns = conv_panel_segments(j, q0 + q, narrow || j->step != 1, seg);
        for (int g = 0; g < ns; g++)
            store_channels(j, &seg[g], r0, r1, cbuf + (size_t)q * rows * NR + seg[g].lane);
    }
    if (j->stream) _mm_sfence();   /* streamed rows are weakly ordered: visible before the region's barrier */
}

/* dst[0, 2n) = a[0], b[0], a[1], b[1], … + bias (+ res), ReLU as the
   scalar path, for n ≤ 16 pixel pairs; streamed when whole (n = 16) and
   dst is 64-byte aligned. */
ME_TARGET_AVX512 static void store_pairs16(float *dst, const float *a, const float *b, const float *res, int n,
                                           float bias_value, int relu, int stream)
{
    const __m512i lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i hi = _mm512_add_epi32(lo, _mm512_set1_epi32(8));
    const __m512 bias = _mm512_set1_ps(bias_value), zero = _mm512_setzero_ps();
    __mmask16 m = (__mmask16)((1u << n) - 1);
    __m512 va = _mm512_add_ps(_mm512_maskz_loadu_ps(m, a), bias), vb = _mm512_add_ps(_mm512_maskz_loadu_ps(m, b), bias);
    __m512 v[2] = {_mm512_permutex2var_ps(va, lo, vb), _mm512_permutex2var_ps(va, hi, vb)};
    __mmask16 mv[2] = {(__mmask16)(n >= 8 ? 0xffff : (1u << 2 * n) - 1),
                       (__mmask16)(n >= 16 ? 0xffff : n <= 8 ? 0 : (1u << 2 * (n - 8)) - 1)};
    for (int h = 0; h < 2; h++) {
        if (res) v[h] = _mm512_add_ps(v[h], _mm512_maskz_loadu_ps(mv[h], res + 16 * h));
        if (relu) v[h] = _mm512_mask_mov_ps(v[h], _mm512_cmp_ps_mask(v[h], zero, _CMP_LT_OQ), zero);
        if (stream && n == 16)
            _mm512_stream_ps(dst + 16 * h, v[h]);
        else
            _mm512_mask_storeu_ps(dst + 16 * h, mv[h], v[h]);
    }
}

/* store_block for the two column parities of a folded layer (ja: px 0,
   ja + 1: px 1, the same py), whose blocks ca and cb hold the same
   panels and channels: each output row segment gets both parities'
   pixels interleaved in one pass, so every line is written once and
   whole (streamed where y outgrows the L2s) rather than half by each
   parity's job, far apart in time (each line read for ownership and
   written twice). Per layer (two threads, best of 5,
   Intel AMX host), 256 channels 128² → 256²: bf16 78–89 → 47–70 ms,
   float32 215–260 → 187–197 ms; 512 channels 64² → 128²: bf16 61–72 →
   54–70 ms, float32 187–234 → 191–194 ms. Whole 256² decodes, one
   process alternating: bf16 1.45 → 1.30 and 1.43 → 1.31 s (medians of
   15 and 21), float32 3.39 → 3.34 s (of 9); bit for bit the same. */
static void store_pair(const conv_job *ja, long q0, int nq, int r0, int r1, int rows, const float *ca,
                       const float *cb)
{
    const float *bias = ja->c->bias;
    for (int q = 0; q < nq; q++) {
        segment seg[NR];
        int ns = conv_panel_segments(ja, q0 + q, 1, seg);
        for (int g = 0; g < ns; g++) {
            const segment *e = &seg[g];
            size_t pix = (size_t)(2 * e->oy + ja->py) * (2 * ja->ow) + (size_t)2 * e->ox;
            for (int i = 0, c0 = 0; i < ja->ndst && c0 < r1; c0 += ja->dst[i++].channels) {
                const op_conv_dst *ds = &ja->dst[i];
                int lo = r0 > c0 ? r0 : c0, hi = r1 < c0 + ds->channels ? r1 : c0 + ds->channels;
                int relu = ja->act == OP_ACT_RELU && !ds->no_act;
                for (int r = lo; r < hi; r++) {
                    size_t off = ((size_t)q * rows + (r - r0)) * NR + e->lane;
                    size_t at = (size_t)e->img * ds->y_img + (size_t)(r - c0) * ja->plane + pix;
                    float *dst = ds->y + at, b = bias ? bias[r] : 0.0f;
                    const float *res = ds->res ? ds->res + at : NULL;
                    int whole = ja->stream && ((uintptr_t)dst & 63) == 0;
                    if (!whole) {
                        __builtin_prefetch(dst + 2 * NR, 1);
                        __builtin_prefetch(dst + 2 * NR + 16, 1);
                        __builtin_prefetch(dst + 2 * NR + 32, 1);
                        __builtin_prefetch(dst + 2 * NR + 48, 1);
                    }
                    for (int t = 0; t < e->len; t += 16)
                        store_pairs16(dst + 2 * t, ca + off + t, cb + off + t, res ? res + 2 * t : NULL,
                                      e->len - t < 16 ? e->len - t : 16, b, relu, whole);
                }
            }
        }
    }
    if (ja->stream) _mm_sfence();
}

/* A chunk's block over channel tiles [m0, m1): its first channel, live
   channels, and rows per panel (AMX blocks write all 32 rows of a tile). */
static void block_rows(const op_conv *c, int m0, int m1, int *first, int *live, int *rows)
{
    *first = tile_row(c, m0);
    *live = tile_row(c, m1) - *first;
    *rows = c->amx ? (m1 - m0) * c->mr : *live;
}

/* A panel (its segments seg[0, ns)) whose B rows the j->rows tiles read
   in place — one image's pixels: returns the address of its lane 0's
   pixel, with *mask the lane masks of K block [k0, k0 + kb) in lane_mask,
   or NULL when every lane of every tap lies inside the image. Returns NULL
   where the panel must be packed. */
static const float *in_place(const conv_job *j, const segment *seg, int ns, int k0, int kb, uint32_t *lane_mask,
                             const uint32_t **mask)
{
    uint32_t tap_mask[CONV_ROWS_TAPS_MAX];
    ptrdiff_t base;
    int taps = j->s->kh * j->s->kw;
    if (!j->rows || ns != 1) return NULL;
    *mask = NULL;
    if (!conv_panel_rows(j, seg, &base, tap_mask)) {
        for (int kk = 0, tap = k0 % taps; kk < kb; kk++, tap = tap + 1 == taps ? 0 : tap + 1)
            lane_mask[kk] = tap_mask[tap];
        *mask = lane_mask;
    }
    return j->x + base;
}

/* Points o at the place in y of channels [r0, r1) of segment e, with the
   bias and activation the store applies, when they go to one destination
   without a residual; returns 0 otherwise (the tile then stores into a
   buffer of its own, and store_channels takes it from there). */
static int into_y(const conv_job *j, const segment *e, int r0, int r1, me_tile_out *o)
{
    int i = 0, c0 = 0;
    while (i < j->ndst && c0 + j->dst[i].channels <= r0) c0 += j->dst[i++].channels;
    if (i == j->ndst || r1 > c0 + j->dst[i].channels || j->dst[i].res) return 0;
    const op_conv_dst *ds = &j->dst[i];
    o->c = ds->y + (size_t)e->img * ds->y_img + (size_t)(r0 - c0) * j->plane + (size_t)e->oy * j->ow + e->ox;
    o->ldc = j->plane;
    o->nr = e->len;
    o->row_bias = j->c->bias ? j->c->bias + r0 : NULL;
    o->relu = j->act == OP_ACT_RELU && !ds->no_act;
    return 1;
}

/* One pass of the tiles over K range [k0 + p0, k0 + p0 + pb) of packed
   block [k0, k0 + kb) (kbp as packed), panels [q0, q1) × channel tiles
   [m0, m1) into the block buffer. A panel is packed once per pass for all
   its tiles, or, on the tiles that read B in place (j->rows), not at all. */
static void run_pass(const conv_job *j, long q0, long q1, int m0, int m1, int k0, int kbp, int p0, int pb,
                     float *cbuf)
{
    const op_conv *c = j->c;
    /* the first channel of each tile m0..m1, looked up once per pass */
    int start[CBUF_FLOATS / (NR * ME_GEMM_MR_AVX2) + 2];
    for (int m = m0; m <= m1; m++) start[m - m0] = tile_row(c, m);
    int mr = c->mr, kk = k0 + p0, pbp = k_padded(c, pb), first, live_rows, rows;
    block_rows(c, m0, m1, &first, &live_rows, &rows);
    _Alignas(64) float bp[KC_LIMIT * NR];
    _Alignas(64) uint16_t bpair[KC_LIMIT * NR];
    _Alignas(64) float tile[ME_GEMM_MR_AVX512 * NR];
    int32_t off[KC_LIMIT];
    uint32_t lane_mask[KC_LIMIT];
    if (j->rows) conv_row_offsets(j, kk, pb, off);
    for (long q = q0; q < q1; q++) {
        segment seg[NR];
        int ns = conv_panel_segments(j, q, !j->flat, seg);
        int live = 0;
        for (int g = 0; g < ns; g++) live += seg[g].len;
        const uint32_t *mask;
        const float *x = in_place(j, seg, ns, kk, pb, lane_mask, &mask);
        /* the next panel's rows, fetched by the first and the last tile:
           where a panel serves few tiles the first one's lines are gone
           from L1 (the weights stream through) before they are read */
        const float *next = x && q + 1 < q1 ? x + NR : NULL;
        segment seg_y;
        int direct = tiles_store(j, q, &seg_y);
        const void *b = bp;
        if (!x) conv_pack_b(j, seg, ns, kk, pb, bp);
        if (!x && c->native_bf16) {
            me_pack_pairs_bf16(bp, pb, bpair);
            int paired = (pb + 1) & ~1;   /* AMX's padding rows: zeros, never stale values */
            memset(bpair + (size_t)paired * NR, 0, (size_t)(pbp - paired) * NR * sizeof *bpair);
            b = bpair;
        } else if (!x && c->bf16) {
            for (int t = 0; t < pb * NR; t++) bp[t] = round_bf16(bp[t]);
        }
        for (int m = m0; m < m1; m++) {
            int r0 = start[m - m0], r1 = start[m - m0 + 1];
            /* a panel is [kb][mr] floats or [kb/2][mr][2] bf16 (p0 even): the pass's rows start p0·mr in */
            size_t at = (size_t)k0 * c->mpad + (size_t)m * mr * kbp + (size_t)p0 * mr;
            float *out = cbuf + ((size_t)(q - q0) * rows + (size_t)(r0 - first)) * NR;
            if (c->amx) {
                me_amx_block((const uint16_t *)j->packed + at, bpair, pbp, kk == 0, out, NR);
                continue;
            }
            const void *a = c->native_bf16 ? (const void *)((const uint16_t *)j->packed + at)
                                           : (const void *)((const float *)j->packed + at);
            me_tile_out o = {.c = out, .ldc = NR, .nr = live, .alpha = 1.0f, .beta = kk == 0 ? 0.0f : 1.0f};
            int via_tile = direct && !into_y(j, &seg_y, r0, r1, &o);
            if (via_tile) o.c = tile, o.ldc = NR;
            if (x)
                j->rows[r1 - r0](pbp, a, x, off, mask, m == m0 || m == m1 - 1 ? next : NULL, &o);
            else
                j->tiles[r1 - r0](pbp, a, b, &o);
            if (via_tile) store_channels(j, &seg_y, r0, r1, tile);
        }
    }
}

/* Panels [q0, q1) × channel panels [m0, m1) into the block (not stored):
   K outermost so the weights of a pass stay in L2 across the chunk's
   panels; each packed block in passes of j->kc_run. */
static void run_chunk(const conv_job *j, long q0, long q1, int m0, int m1, float *cbuf)
{
    const op_conv *c = j->c;
    int k = j->s->cin * j->s->kh * j->s->kw;
    for (int k0 = 0; k0 < k; k0 += c->kc) {
        int kb = k - k0 < c->kc ? k - k0 : c->kc, kbp = k_padded(c, kb);
        for (int p0 = 0; p0 < kb; p0 += j->kc_run)
            run_pass(j, q0, q1, m0, m1, k0, kbp, p0, kb - p0 < j->kc_run ? kb - p0 : j->kc_run, cbuf);
    }
}

/* This thread's panels [q0, q1) and channel panels [m0, m1), in chunks whose
   output fits the block buffer, each stored when done. pair: j and j + 1
   are the two column parities of a folded layer's output rows, each
   computed into half of the buffer and stored together (store_pair). */
static void run_share(const conv_job *j, int pair, long q0, long q1, int m0, int m1, float *cbuf)
{
    long cap = CBUF_FLOATS / (pair ? 2 : 1);
    int mr = j->c->mr, mstep = (int)(cap / (NR * mr));
    for (int ma = m0; ma < m1; ma += mstep) {
        int mb = m1 - ma < mstep ? m1 : ma + mstep, first, live, rows;
        block_rows(j->c, ma, mb, &first, &live, &rows);
        long per = cap / ((long)(mb - ma) * mr * NR), np = q1 - q0;
        long chunks = (np + per - 1) / per;
        for (long i = 0; i < chunks; i++) {
            long a = q0 + np * i / chunks, b = q0 + np * (i + 1) / chunks;
            run_chunk(j, a, b, ma, mb, cbuf);
            if (!pair) {
                store_block(j, a, (int)(b - a), first, first + live, rows, cbuf);
                continue;
            }
            run_chunk(j + 1, a, b, ma, mb, cbuf + cap);
            store_pair(j, a, (int)(b - a), first, first + live, rows, cbuf, cbuf + cap);
        }
    }
}

/* Pixel panels of a convolution's jobs, handed to the threads a claim at a
   time: a thread that runs ahead (a busy sibling, an uneven share of the
   host) takes more instead of waiting at the end of the region. Claims
   shrink as the work left does (a 2·threads-th of it, at most a block
   buffer's worth), so the last ones finish close together. Which thread
   computes a panel does not change its result. */
typedef struct { int job, njobs; long next, np, cap; } claims;

static int claim(claims *cl, int tn, int *job, long *q0, long *q1)
{
    int got = 0;
    #pragma omp critical(me_conv_claims)
    {
        if (cl->next == cl->np && cl->job + 1 < cl->njobs) cl->job++, cl->next = 0;
        long here = cl->np - cl->next, left = here + (long)(cl->njobs - 1 - cl->job) * cl->np;
        long size = (left + 2L * tn - 1) / (2L * tn);
        if (size > cl->cap) size = cl->cap;
        if (size > here) size = here;
        if (size > 0) {
            *job = cl->job, *q0 = cl->next, *q1 = cl->next + size;
            cl->next += size;
            got = 1;
        }
    }
    return got;
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

void op_conv_run_split(const op_conv *c, int n, int h, int w, const float *x, const op_conv_dst *dst, int ndst,
                       int act, float *scratch)
{
    const op_conv_shape *s = &c->s;
    int up = s->upsample2x ? 2 : 1, st = s->stride > 0 ? s->stride : 1;
    int oh = op_conv2d_out(h * up, s->kh, st, s->pad_h), ow = op_conv2d_out(w * up, s->kw, st, s->pad_w);
    if (oh <= 0 || ow <= 0 || n <= 0) return;
    size_t plane = (size_t)oh * ow;
    if (!c->packed) {   /* OpenBLAS: each destination its own op_conv2d over its rows of the weights */
        size_t k = (size_t)s->cin * s->kh * s->kw;
        for (int i = 0, c0 = 0; i < ndst; c0 += dst[i++].channels) {
            const op_conv_dst *d = &dst[i];
            int a = d->no_act ? OP_ACT_NONE : act;
            op_conv part = *c;
            part.s.cout = d->channels;
            part.w = c->w + (size_t)c0 * k;
            part.bias = c->bias ? c->bias + c0 : NULL;
            size_t one = (size_t)d->channels * plane;
            if (d->y_img == one) {
                blas_run(&part, n, h, w, x, d->y, d->res, a, scratch, (size_t)n * one);
                continue;
            }
            for (int b = 0; b < n; b++)   /* op_conv2d writes whole images: one at a time */
                blas_run(&part, 1, h, w, x + (size_t)b * s->cin * h * w, d->y + b * d->y_img,
                         d->res ? d->res + b * d->y_img : NULL, a, scratch, one);
        }
        return;
    }
    me_tile_plan p;
    me_gemm_tile_plan(c->native_bf16, &p);
    int flat = st == 1 && up == 1 && 2 * s->pad_w < s->kw, gw = flat ? w : ow;
    conv_job jobs[4] = {{.c = c, .s = s, .packed = c->packed, .x = x, .dst = dst, .ndst = ndst, .act = act, .h = h,
                         .w = w, .ih = h * up, .iw = w * up, .oh = oh, .ow = ow, .plane = plane, .step = 1,
                         .flat = flat, .gw = gw, .gplane = (size_t)oh * gw, .pixels = (long)n * oh * gw,
                         .avx512 = me_cpu_isa() == ME_ISA_AVX512, .tiles = p.tiles}};
    /* B rows in place (see the file's head): float32 flat jobs of more than
       one tap whose offsets fit the tiles' int32 */
    const me_tile_rows_fn *rows = !c->bf16 && (size_t)s->cin * h * w < INT32_MAX / 2 ? p.rows : NULL;
    if (flat && s->kh * s->kw > 1 && s->kh * s->kw <= CONV_ROWS_TAPS_MAX) jobs[0].rows = rows;
    jobs[0].gather = jobs[0].avx512 && st > 1 && up == 1 && s->kh * s->kw <= CONV_ROWS_TAPS_MAX &&
                     (size_t)n * s->cin * h * w < INT32_MAX / 2;   /* gather indices are int32 */
    jobs[0].stream = jobs[0].avx512 && me_cpu_outgrows_l2s((double)n * s->cout * plane * sizeof(float), me_threads());
    /* Over small input planes the tiles run each packed block in one pass:
       fewer passes of the output through the block buffer and fewer tile
       starts (Zen 5 host, the two alternating in one process: Inception
       3–5 % faster, the 256² decode 3–5 %, its 32²–128² layers 1–15 %,
       `--vae-bf16` 2–5 %). Over 256² planes (the decode's last stage)
       long passes ran those layers 10–20 % slower, so they keep the
       GEMM's blocks: planes 256 KB apart put every channel's row of a
       tap on the same cache sets, and a pass over more than 64–72
       channels no longer keeps them (at 255² long passes gain 2.8 %;
       docs/performance.md, "Convolutions"). */
    jobs[0].kc_run = (size_t)h * w * sizeof(float) < LONG_PASS_PLANE ? c->kc : c->kc_pass;
    /* The tiles store into y where one pass makes their sums final; not
       where y is streamed and its planes are whole lines (each channel's
       rows then start on lines and go out streamed). */
    jobs[0].direct = !c->amx && !c->folded && k_total(s) <= jobs[0].kc_run &&
                     !(jobs[0].stream && plane % 16 == 0);
    int njobs = 1;
    op_conv_shape parity_shape[4];
    if (c->folded) {   /* four 2×2 convolutions of the source, flat, each to every other pixel */
        size_t bytes = op_conv_bytes(s, c->bf16) / 4;
        for (int i = 0; i < 4; i++) {
            parity_shape[i] = (op_conv_shape){s->cin, s->cout, 2, 2, 1, 1 - i / 2, 1 - i % 2, 0};
            conv_job *ji = &jobs[i];
            *ji = jobs[0];
            ji->s = &parity_shape[i];
            ji->packed = (const char *)c->packed + i * bytes;
            ji->ih = ji->oh = h;
            ji->iw = ji->ow = ji->gw = w;
            ji->py = i / 2, ji->px = i % 2, ji->step = 2, ji->flat = 1;
            ji->rows = rows;
            ji->gplane = (size_t)h * w, ji->pixels = (long)n * h * w;
        }
        njobs = 4;
    }
    long np = (jobs[0].pixels + NR - 1) / NR;
    int mp = c->mpad / c->mr, nt = me_threads();
    double flops = 2.0 * (double)jobs[0].pixels * njobs * s->cout * k_total(s);
    int par = nt > 1 && !omp_in_parallel() && flops >= PAR_MIN_FLOPS;
    /* A folded layer's column parities go in pairs on AVX-512 (store_pair):
       two units of work, each over half the block buffer. */
    int pair = c->folded && jobs[0].avx512, units = pair ? 2 : njobs;
    long cap = CBUF_FLOATS / (pair ? 2 : 1);
    int widest = mp < cap / (NR * c->mr) ? mp : (int)(cap / (NR * c->mr));
    claims cl = {0, units, 0, np, cap / ((long)widest * c->mr * NR)};
    #pragma omp parallel num_threads(nt) if (par)
    {
        int t = omp_get_thread_num(), tn = omp_get_num_threads(), i;
        float *cbuf = scratch + (size_t)t * CBUF_FLOATS;
        long q0, q1;
        if (c->amx) me_amx_tiles_on();
        /* Pixel panels are dealt when each thread gets two or more, else channels. */
        if (np >= 2L * tn)
            while (claim(&cl, tn, &i, &q0, &q1)) run_share(&jobs[pair ? 2 * i : i], pair, q0, q1, 0, mp, cbuf);
        else if (mp * t / tn < mp * (t + 1) / tn)
            for (i = 0; i < units; i++)
                run_share(&jobs[pair ? 2 * i : i], pair, 0, np, mp * t / tn, mp * (t + 1) / tn, cbuf);
        if (c->amx) me_amx_tiles_off();
    }
}

void op_conv_run_into(const op_conv *c, int n, int h, int w, const float *x, float *y, size_t y_img,
                      const float *res, int act, float *scratch)
{
    op_conv_dst d = {c->s.cout, y, y_img, res, 0};
    op_conv_run_split(c, n, h, w, x, &d, 1, act, scratch);
}

void op_conv_run(const op_conv *c, int n, int h, int w, const float *x, float *y, const float *res, int act,
                 float *scratch)
{
    const op_conv_shape *s = &c->s;
    int up = s->upsample2x ? 2 : 1, st = s->stride > 0 ? s->stride : 1;
    int oh = op_conv2d_out(h * up, s->kh, st, s->pad_h), ow = op_conv2d_out(w * up, s->kw, st, s->pad_w);
    op_conv_run_into(c, n, h, w, x, y, oh > 0 && ow > 0 ? (size_t)s->cout * oh * ow : 0, res, act, scratch);
}

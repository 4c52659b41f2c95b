/* The image side of the implicit-GEMM convolution (ops/conv_gemm.c): each
   32-pixel B panel is filled straight from the NCHW input, zeros for the
   padding, source pixel (y/2, x/2) for a ×2 nearest upsampling, strides as
   given. At stride 1 without upsampling (most layers) a panel row is one
   masked vector load per image it touches (pack_flat); at larger strides
   on AVX-512, two gathers (pack_gather); any other job goes row by row
   (pack_rows). */
#include <immintrin.h>
#include <stdint.h>
#include <string.h>
#include "ops/conv_job.h"
#include "ops/simd512.h"

#define NR ME_GEMM_NR

int conv_panel_segments(const conv_job *j, long q, int by_row, segment *seg)
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

/* The same at stride 2 (Inception's reductions): dst[t] = row[ix0 + 2t],
   0 outside [0, iw), for t < len ≤ 32; lanes from len on are left alone
   (the next segment's). Per 8 lanes, two masked loads of 16 source floats
   (the mask zeroes the padding and reads nothing outside the row) and
   their even elements picked by a shuffle and a lane permutation; the
   partial tail goes lane by lane (vmaskmovps stores are slow on AMD).
   Against the scalar loop, Inception's stride-2 layers ran 8–27 % faster
   in situ (Zen 3 host, best of 6, one thread). */
__attribute__((target("avx2"))) static void copy_row_s2(float *dst, const float *row, int ix0, int iw, int len)
{
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i lo = _mm256_set1_epi32(-1), hi = _mm256_set1_epi32(iw);
    for (int t = 0; t < len; t += 8) {
        __m256i s0 = _mm256_add_epi32(_mm256_set1_epi32(ix0 + 2 * t), lane);
        __m256i s1 = _mm256_add_epi32(s0, _mm256_set1_epi32(8));
        __m256i m0 = _mm256_and_si256(_mm256_cmpgt_epi32(s0, lo), _mm256_cmpgt_epi32(hi, s0));
        __m256i m1 = _mm256_and_si256(_mm256_cmpgt_epi32(s1, lo), _mm256_cmpgt_epi32(hi, s1));
        const float *src = row + ix0 + 2 * t;
        __m256 a = _mm256_maskload_ps(src, m0), b = _mm256_maskload_ps(src + 8, m1);
        __m256 even = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, 0x88)), 0xd8));
        if (t + 8 <= len) {
            _mm256_storeu_ps(dst + t, even);
        } else {
            _Alignas(32) float tail[8];
            _mm256_store_ps(tail, even);
            for (int u = 0; u < len - t; u++) dst[t + u] = tail[u];
        }
    }
}

/* Which of the 32 lanes (grid rows rv, columns cv) tap (dy, dx) finds
   inside an ih × w image, per 8-lane vector; 1 when all of them do. */
__attribute__((target("avx2"))) static inline int tap_mask(const __m256i *rv, const __m256i *cv, int ih, int w, int dy,
                                                           int dx, __m256i *m)
{
    const __m256i ylo = _mm256_set1_epi32(-dy - 1), yhi = _mm256_set1_epi32(ih - dy);
    const __m256i xlo = _mm256_set1_epi32(-dx - 1), xhi = _mm256_set1_epi32(w - dx);
    __m256i all = _mm256_set1_epi32(-1);
    for (int v = 0; v < NR / 8; v++) {
        m[v] = _mm256_and_si256(_mm256_and_si256(_mm256_cmpgt_epi32(rv[v], ylo), _mm256_cmpgt_epi32(yhi, rv[v])),
                                _mm256_and_si256(_mm256_cmpgt_epi32(cv[v], xlo), _mm256_cmpgt_epi32(xhi, cv[v])));
        all = _mm256_and_si256(all, m[v]);
    }
    return _mm256_movemask_ps(_mm256_castsi256_ps(all)) == 0xff;
}

/* L1d: 64 sets of 64-byte lines on every x86 the own kernels run on (Zen
   3–5: 32 or 48 KB, 8 or 12 ways; Intel's 48 KB, 12 ways), so addresses
   4 KB apart share a set. */
#define L1_SET_SPAN 4096
#define CHANNEL_TAPS_MAX 49

/* Whether the tap-order pack would read more planes through one L1 set
   than it holds: each tap reads the same lines of every input channel of
   the K block, and where the planes are a multiple of 4 KB apart (the
   VAE's 32²–256² images: all of them) those lines share a set and alias
   the panel's stores in their low 12 bits — presumably each evicts the
   last before the next tap reads it again, the previous panel's
   prefetches included. Channel by channel, a plane's rows serve its taps
   back to back. Packing a 3×3 K block (232 rows) of a 256² image, one
   thread: 820–940 ns tap by tap, 465–505 ns channel by channel (64²:
   690–715 against 445–455; Zen 5 host); where the planes spread over the
   sets (Inception's 147², 71², 35²; 62²) the tap order is the faster,
   380–430 against 470–500 ns. In situ (the same host), a 256² 128-channel
   3×3 layer 100.6 → 98.3 ms on one thread, 50.9 → 49.8 on two; whole 256²
   decodes alternating in one process, medians of 14 and 20: float32
   1.593 → 1.580 s, --vae-bf16 0.960 → 0.914 s. */
static int planes_collide(const conv_job *j, int kb)
{
    int taps = j->s->kh * j->s->kw;
    if (taps > CHANNEL_TAPS_MAX || taps == 1) return 0;
    unsigned step = (unsigned)((size_t)j->h * j->w * sizeof(float) % L1_SET_SPAN), g = L1_SET_SPAN;
    for (unsigned a = step; a;) {   /* gcd(step, span): the planes fall on span / g set positions */
        unsigned r = g % a;
        g = a, a = r;
    }
    int positions = L1_SET_SPAN / g, channels = kb / taps + 2;
    return (channels + positions - 1) / positions > 8;   /* 8: the fewest ways of those L1s */
}

/* pack_flat's rows for a one-image panel (x + base: its lane 0's pixel)
   in K order, channel by channel (see planes_collide). */
__attribute__((target("avx2"))) static void pack_channels(const conv_job *j, const __m256i *rv, const __m256i *cv,
                                                          ptrdiff_t base, int k0, int kb, float *d)
{
    const op_conv_shape *s = j->s;
    const int taps = s->kh * s->kw;
    const size_t in_plane = (size_t)j->h * j->w;
    __m256i mask[CHANNEL_TAPS_MAX][NR / 8];
    ptrdiff_t at[CHANNEL_TAPS_MAX];
    int inside[CHANNEL_TAPS_MAX];
    for (int tap = 0; tap < taps; tap++) {
        int dy = tap / s->kw - s->pad_h, dx = tap % s->kw - s->pad_w;
        inside[tap] = tap_mask(rv, cv, j->ih, j->w, dy, dx, mask[tap]);
        at[tap] = base + (ptrdiff_t)dy * j->w + dx;
    }
    int tap = k0 % taps;
    const float *xc = j->x + (size_t)(k0 / taps) * in_plane;
    for (int kk = 0; kk < kb; kk++, d += NR) {
        const float *src = xc + at[tap];
        if (tap % s->kw == s->kw - 1) {   /* as in pack_flat: the next panel's lines of this row */
            __builtin_prefetch(src + NR);
            __builtin_prefetch(src + NR + 16);
        }
        if (inside[tap])
            for (int v = 0; v < NR / 8; v++) _mm256_store_ps(d + 8 * v, _mm256_loadu_ps(src + 8 * v));
        else
            for (int v = 0; v < NR / 8; v++) _mm256_store_ps(d + 8 * v, _mm256_maskload_ps(src + 8 * v, mask[tap][v]));
        if (++tap == taps) tap = 0, xc += in_plane;
    }
}

/* A flat job's panel, lane by lane: grid row and column (rv, cv) and
   segment (sv), 8 lanes a vector, and per segment the x offset of its lane
   0's pixel (base); lanes past the last pixel get a row no tap reaches. */
__attribute__((target("avx2"))) static void lane_grid(const conv_job *j, const segment *seg, int ns, __m256i *rv,
                                                      __m256i *cv, __m256i *sv, ptrdiff_t *base)
{
    const size_t img_size = (size_t)j->s->cin * j->h * j->w;
    _Alignas(32) int32_t row[NR], col[NR], sid[NR];
    for (int t = 0; t < NR; t++) row[t] = INT32_MIN / 2, col[t] = 0, sid[t] = 0;
    for (int g = 0; g < ns; g++) {
        const segment *e = &seg[g];
        base[g] = (ptrdiff_t)(e->img * img_size) + (ptrdiff_t)e->oy * j->w + e->ox - e->lane;
        for (int t = e->lane, oy = e->oy, ox = e->ox; t < e->lane + e->len; t++) {
            row[t] = oy, col[t] = ox, sid[t] = g;
            if (++ox == j->w) ox = 0, oy++;
        }
    }
    for (int v = 0; v < NR / 8; v++) {
        rv[v] = _mm256_load_si256((const __m256i *)(row + 8 * v));
        cv[v] = _mm256_load_si256((const __m256i *)(col + 8 * v));
        sv[v] = _mm256_load_si256((const __m256i *)(sid + 8 * v));
    }
}

__attribute__((target("avx2"))) int conv_panel_rows(const conv_job *j, const segment *seg, ptrdiff_t *base,
                                                    uint32_t *mask)
{
    const op_conv_shape *s = j->s;
    __m256i rv[NR / 8], cv[NR / 8], sv[NR / 8], m[NR / 8];
    lane_grid(j, seg, 1, rv, cv, sv, base);
    int all = 1;
    for (int tap = 0; tap < s->kh * s->kw; tap++) {
        all &= tap_mask(rv, cv, j->ih, j->w, tap / s->kw - s->pad_h, tap % s->kw - s->pad_w, m);
        mask[tap] = 0;
        for (int v = 0; v < NR / 8; v++)
            mask[tap] |= (uint32_t)_mm256_movemask_ps(_mm256_castsi256_ps(m[v])) << 8 * v;
    }
    return all;
}

void conv_row_offsets(const conv_job *j, int k0, int kb, int32_t *off)
{
    const op_conv_shape *s = j->s;
    const int taps = s->kh * s->kw;
    const size_t in_plane = (size_t)j->h * j->w;
    int32_t shift[CONV_ROWS_TAPS_MAX], plane = (int32_t)((size_t)(k0 / taps) * in_plane);
    for (int tap = 0; tap < taps; tap++) shift[tap] = (tap / s->kw - s->pad_h) * j->w + tap % s->kw - s->pad_w;
    for (int kk = 0, tap = k0 % taps; kk < kb; kk++) {
        off[kk] = plane + shift[tap];
        if (++tap == taps) tap = 0, plane += (int32_t)in_plane;
    }
}

/* B panel [kb][32] of panel q over K range [k0, k0+kb): row kk holds, for
   each of the panel's pixels, the input value tap k0+kk = (ci, ky, kx)
   sees (0 in the padding and past the last pixel).

   A flat job (stride 1, no upsampling, at most "same" column padding)
   reads whole planes: its pixel grid is oh rows of the input's w columns
   (the last w − ow of each row computed and dropped by store_block), so
   the input pixel a tap (ky, kx) sees is the grid pixel shifted by
   (ky − pad_h)·w + kx − pad_w, and a row of the panel is, per image the
   panel touches, one masked 32-lane load from one address: no split at
   every output row (the 17×17 and 8×8 layers' panels would need two or
   three copies each, the stem's 147-wide rows a ragged tail). Which lanes
   are inside the image (not in the padding, not wrapped into the
   neighbouring row, not past the last pixel) depends only on the tap, so
   the masks are made once per tap and used for every input channel of
   the K block: the rows go in tap order, each to its place in the panel
   (or channel by channel where the planes collide in L1: pack_channels).
   Every CPU with the own kernels has AVX2 (AVX-512 ones included), so the
   loads are AVX2's vmaskmovps, which read nothing in the masked lanes. */
__attribute__((target("avx2"))) static void pack_flat(const conv_job *j, const segment *seg, int ns, int k0,
                                                      int kb, float *d)
{
    const op_conv_shape *s = j->s;
    const int taps = s->kh * s->kw, w = j->w;
    const size_t in_plane = (size_t)j->h * w;
    __m256i rv[NR / 8], cv[NR / 8], sv[NR / 8];
    ptrdiff_t base[NR];
    lane_grid(j, seg, ns, rv, cv, sv, base);
    if (ns == 1 && planes_collide(j, kb)) {
        pack_channels(j, rv, cv, base[0], k0, kb, d);
        return;
    }
    for (int tap = 0; tap < taps; tap++) {
        /* the input channels whose k = ci·taps + tap fall in the block */
        int ci0 = k0 > tap ? (k0 - tap + taps - 1) / taps : 0, ci1 = (k0 + kb - tap + taps - 1) / taps;
        if (ci0 >= ci1) continue;
        int dy = tap / s->kw - s->pad_h, dx = tap % s->kw - s->pad_w;
        __m256i m[NR / 8];
        /* All 32 lanes inside the image (most taps of most panels):
           plain loads, cheaper than vmaskmovps (with the single prefetch
           below, the stem's 3×3 layers ran 4–6 % faster in situ on the
           Zen 3 host, best of 6, one thread). */
        int inside = tap_mask(rv, cv, j->ih, w, dy, dx, m);
        const ptrdiff_t shift = (ptrdiff_t)dy * w + dx;
        float *o = d + (size_t)(ci0 * taps + tap - k0) * NR;
        const float *xc = j->x + ci0 * in_plane + shift;
        if (ns == 1) {
            /* The row's last tap asks for the next panel's lines; the
               row's other taps read the same lines shifted left. */
            int fetch = tap % s->kw == s->kw - 1;
            for (int ci = ci0; ci < ci1; ci++, o += taps * NR, xc += in_plane) {
                const float *src = xc + base[0];
                /* the next panel reads the next 32 pixels of this plane:
                   ask for them now (a few hundred planes are too many
                   streams for the hardware prefetcher) */
                if (fetch) {
                    __builtin_prefetch(src + NR);
                    __builtin_prefetch(src + NR + 16);
                }
                if (inside)
                    for (int v = 0; v < NR / 8; v++) _mm256_store_ps(o + 8 * v, _mm256_loadu_ps(src + 8 * v));
                else
                    for (int v = 0; v < NR / 8; v++) _mm256_store_ps(o + 8 * v, _mm256_maskload_ps(src + 8 * v, m[v]));
            }
            continue;
        }
        /* a panel across images: each image's lanes from its own address */
        for (int ci = ci0; ci < ci1; ci++, o += taps * NR, xc += in_plane) {
            __m256 acc[NR / 8];
            for (int v = 0; v < NR / 8; v++) acc[v] = _mm256_setzero_ps();
            for (int g = 0; g < ns; g++) {
                const float *src = xc + base[g];
                __builtin_prefetch(src + NR);
                for (int v = 0; v < NR / 8; v++) {
                    __m256i mg = _mm256_and_si256(m[v], _mm256_cmpeq_epi32(sv[v], _mm256_set1_epi32(g)));
                    acc[v] = _mm256_or_ps(acc[v], _mm256_maskload_ps(src + 8 * v, mg));
                }
            }
            for (int v = 0; v < NR / 8; v++) _mm256_store_ps(o + 8 * v, acc[v]);
        }
    }
}

/* The same for any other job (strides, upsampling, wide padding): per k,
   per output row the panel touches, a row copy with the padding's columns
   cut off. */
static void pack_rows(const conv_job *j, const segment *seg, int ns, int k0, int kb, float *d)
{
    const op_conv_shape *s = j->s;
    int taps = s->kh * s->kw, st = s->stride > 0 ? s->stride : 1, up = s->upsample2x;
    int ci = k0 / taps, ky = k0 % taps / s->kw, kx = k0 % s->kw;
    size_t in_plane = (size_t)j->h * j->w, img_size = (size_t)s->cin * in_plane;
    int filled = ns ? seg[ns - 1].lane + seg[ns - 1].len : 0;
    for (int kk = 0; kk < kb; kk++, d += NR) {
        const float *xc = j->x + ci * in_plane;
        for (int g = 0; g < ns; g++) {
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
            } else if (st == 2 && !up) {
                copy_row_s2(o, row, ix0, j->iw, len);
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

/* A strided job on AVX-512 (Inception's stride-2 reductions): each row of
   the panel is two 16-lane gathers, whatever output rows and images its
   lanes come from, lanes in the padding or past the last pixel masked
   (never read). pack_rows' row copies, three or four per row where the
   output rows are 17 or 8 wide, had made the pack a fifth of Mixed_6a's
   3×3 reduction (perf, one thread); gathers fed from lines fetched a panel
   ahead took that layer 9.7 % faster, the 1a, 7a ones 6–17 % (measured in
   docs/performance.md, "Convolutions"). */
ME_TARGET_AVX512 static void pack_gather(const conv_job *j, const segment *seg, int ns, int k0, int kb, float *d)
{
    const op_conv_shape *s = j->s;
    const int taps = s->kh * s->kw, st = s->stride;
    const size_t in_plane = (size_t)j->h * j->w, img_size = (size_t)s->cin * in_plane;
    /* lane t's first input pixel, its row and column (lanes past the last
       pixel get a row no tap reaches) */
    _Alignas(64) int32_t iy[NR], ix[NR], at[NR];
    for (int t = 0; t < NR; t++) iy[t] = INT32_MIN / 2, ix[t] = 0, at[t] = 0;
    for (int g = 0; g < ns; g++) {
        const segment *e = &seg[g];
        for (int t = e->lane, ox = e->ox; t < e->lane + e->len; t++, ox++) {
            iy[t] = e->oy * st - s->pad_h, ix[t] = ox * st - s->pad_w;
            at[t] = (int32_t)(e->img * img_size) + iy[t] * j->w + ix[t];
        }
    }
    /* The next panel's lanes 0, 8, 16, 24 and 31, whose rows each row here
       fetches: at stride 2 eight lanes span one line, and a dozen planes
       of short rows are too many streams for the hardware prefetcher
       (without this the gathers were no faster than the copies). */
    int32_t ahead[5];
    const segment *e = &seg[ns - 1];
    for (int t = 0, a = 0, img = e->img, oy = e->oy, ox = e->ox + e->len; a < 5; t++, ox++) {
        if (ox == j->ow) ox = 0, oy++;
        if (oy == j->oh) oy = 0, img++;
        if (t == 8 * a || t == NR - 1)
            ahead[a++] = (int32_t)(img * img_size) + (oy * st - s->pad_h) * j->w + ox * st - s->pad_w;
    }
    __m512i vat[NR / 16];
    __mmask16 inside[CONV_ROWS_TAPS_MAX][NR / 16];
    int32_t shift[CONV_ROWS_TAPS_MAX];
    for (int v = 0; v < NR / 16; v++) vat[v] = _mm512_load_si512(at + 16 * v);
    for (int tap = 0; tap < taps; tap++) {
        int ky = tap / s->kw, kx = tap % s->kw;
        shift[tap] = ky * j->w + kx;
        for (int v = 0; v < NR / 16; v++) {
            __m512i y = _mm512_add_epi32(_mm512_load_si512(iy + 16 * v), _mm512_set1_epi32(ky));
            __m512i x = _mm512_add_epi32(_mm512_load_si512(ix + 16 * v), _mm512_set1_epi32(kx));
            inside[tap][v] = _mm512_cmpgt_epi32_mask(y, _mm512_set1_epi32(-1)) &
                             _mm512_cmpgt_epi32_mask(_mm512_set1_epi32(j->h), y) &
                             _mm512_cmpgt_epi32_mask(x, _mm512_set1_epi32(-1)) &
                             _mm512_cmpgt_epi32_mask(_mm512_set1_epi32(j->w), x);
        }
    }
    int tap = k0 % taps;
    const float *xc = j->x + (size_t)(k0 / taps) * in_plane;
    for (int kk = 0; kk < kb; kk++, d += NR) {
        for (int a = 0; a < 5; a++) __builtin_prefetch(xc + shift[tap] + ahead[a]);
        for (int v = 0; v < NR / 16; v++) {
            __m512i idx = _mm512_add_epi32(vat[v], _mm512_set1_epi32(shift[tap]));
            _mm512_store_ps(d + 16 * v, _mm512_mask_i32gather_ps(_mm512_setzero_ps(), inside[tap][v], idx, xc, 4));
        }
        if (++tap == taps) tap = 0, xc += in_plane;
    }
}

void conv_pack_b(const conv_job *j, const segment *seg, int ns, int k0, int kb, float *d)
{
    if (j->flat) pack_flat(j, seg, ns, k0, kb, d);
    else if (j->gather) pack_gather(j, seg, ns, k0, kb, d);
    else pack_rows(j, seg, ns, k0, kb, d);
}

/* 2-D convolution as GEMM. A 1×1 stride-1 convolution is already a matrix
   product (weight [cout, cin] · x [cin, h·w]). Anything else is unfolded
   (im2col) into the caller's scratch a band of output rows at a time, so the
   scratch stays around 8 MB even for 256 channels at 256×256, and each band
   is one sgemm. The ×2 nearest upsampling that precedes a VAE upsampler conv
   is folded into the unfolding: it reads source pixel (y/2, x/2), so the
   four-times-larger upsampled tensor never exists. */
#include <cblas.h>
#include <omp.h>
#include <string.h>
#include "core/core.h"
#include "ops/gemm.h"
#include "ops/ops.h"

/* Floats of unfolded input per band (8 MB): a few hundred pixels even for
   512 channels, enough for sgemm to run near peak, while the scratch stays
   small next to the activations. */
#define BAND_FLOATS (1 << 21)
/* Below this many floats a parallel region costs more than it saves (and on
   a loaded machine waiting for the second thread dominates). */
#define PAR_MIN (1 << 16)
#define PAR_MIN_MACS 262144.0

int op_conv2d_out(int size, int k, int stride, int pad)
{
    return (size + 2 * pad - k) / (stride > 0 ? stride : 1) + 1;
}

static int is_pointwise(const op_conv_shape *s)
{
    return s->kh == 1 && s->kw == 1 && s->stride <= 1 && s->pad_h == 0 && s->pad_w == 0 &&
           !s->upsample2x;
}

/* Output rows per band for an output of width ow. */
static int band_rows(const op_conv_shape *s, int oh, int ow)
{
    size_t k = (size_t)s->cin * s->kh * s->kw;
    size_t rows = BAND_FLOATS / (k * (size_t)ow);
    if (rows < 1) rows = 1;
    return rows > (size_t)oh ? oh : (int)rows;
}

static void out_size(const op_conv_shape *s, int h, int w, int *oh, int *ow)
{
    int up = s->upsample2x ? 2 : 1;
    *oh = op_conv2d_out(h * up, s->kh, s->stride, s->pad_h);
    *ow = op_conv2d_out(w * up, s->kw, s->stride, s->pad_w);
}

size_t op_conv2d_scratch(const op_conv_shape *s, int h, int w)
{
    if (is_pointwise(s)) return 0;
    int oh, ow;
    out_size(s, h, w, &oh, &ow);
    if (oh <= 0 || ow <= 0) return 0;
    return (size_t)s->cin * s->kh * s->kw * (size_t)band_rows(s, oh, ow) * ow;
}

/* Unfolds output rows [oy0, oy0 + rows) of one sample: row k = (ci, ky, kx)
   of col holds, for every output pixel of the band, the input pixel that
   kernel tap sees (zero in the padding). Called inside op_conv2d's parallel
   region, whose threads share the rows. */
static void im2col(const op_conv_shape *s, int h, int w, int ow, const float *x, int oy0,
                   int rows, float *col)
{
    int up = s->upsample2x, stride = s->stride > 0 ? s->stride : 1;
    int ih = up ? 2 * h : h, iw = up ? 2 * w : w;   /* the size the kernel sees */
    int taps = s->kh * s->kw, k_total = s->cin * taps;
    size_t band = (size_t)rows * ow;
    #pragma omp for schedule(static)
    for (int k = 0; k < k_total; k++) {
        int ci = k / taps, ky = k % taps / s->kw, kx = k % s->kw;
        const float *plane = x + (size_t)ci * h * w;
        float *dst = col + (size_t)k * band;
        /* Output columns whose input column is inside the image. */
        int lo = s->pad_w - kx > 0 ? (s->pad_w - kx + stride - 1) / stride : 0;
        int hi = (iw - 1 + s->pad_w - kx) / stride + 1;   /* exclusive */
        if (iw - 1 + s->pad_w - kx < 0) hi = 0;
        if (hi > ow) hi = ow;
        if (lo > hi) lo = hi;
        for (int r = 0; r < rows; r++) {
            float *d = dst + (size_t)r * ow;
            int iy = (oy0 + r) * stride - s->pad_h + ky;
            if (iy < 0 || iy >= ih) {
                memset(d, 0, (size_t)ow * sizeof *d);
                continue;
            }
            const float *src = plane + (size_t)(up ? iy >> 1 : iy) * w;
            for (int ox = 0; ox < lo; ox++) d[ox] = 0.0f;
            int ix0 = lo * stride - s->pad_w + kx;
            if (up)
                for (int ox = lo, ix = ix0; ox < hi; ox++, ix += stride) d[ox] = src[ix >> 1];
            else if (stride == 1)
                memcpy(d + lo, src + ix0, (size_t)(hi - lo) * sizeof *d);
            else
                for (int ox = lo, ix = ix0; ox < hi; ox++, ix += stride) d[ox] = src[ix];
            for (int ox = hi; ox < ow; ox++) d[ox] = 0.0f;
        }
    }
}

/* y[c, 0..len) = bias[c] for every output channel, so sgemm can accumulate. */
static void fill_bias(int cout, int len, size_t ld, const float *bias, float *y)
{
    for (int c = 0; c < cout; c++) {
        float *yc = y + (size_t)c * ld;
        float b = bias ? bias[c] : 0.0f;
        for (int i = 0; i < len; i++) yc[i] = b;
    }
}

/* This thread's share of y[:, 0..cols) = bias + weight · col[:, 0..cols):
   a range of columns (pixels), in multiples of 32 so the own kernels work
   on whole 32-column panels (ops/gemm.c), and every output channel — so a
   3-channel conv_out splits as well as a 512-channel one. */
static void gemm_share(const op_conv_shape *s, int k, const float *weight, const float *bias,
                       const float *col, int cols, float *y, size_t ldy)
{
    int t = omp_get_thread_num(), nt = omp_get_num_threads();
    int chunk = ((cols + nt - 1) / nt + 31) / 32 * 32;
    int lo = t * chunk, len = cols - lo < chunk ? cols - lo : chunk;
    if (len <= 0) return;
    fill_bias(s->cout, len, ldy, bias, y + lo);
    me_sgemm(CblasNoTrans, CblasNoTrans, s->cout, len, k, 1.0f, weight, k, col + lo,
                cols, 1.0f, y + lo, (int)ldy);
}

void op_conv2d(const op_conv_shape *s, int n, int h, int w, const float *x,
               const float *weight, const float *bias, float *y, float *scratch)
{
    int oh, ow;
    out_size(s, h, w, &oh, &ow);
    if (oh <= 0 || ow <= 0 || n <= 0) return;
    size_t in_plane = (size_t)h * w, out_plane = (size_t)oh * ow;
    int k = s->cin * s->kh * s->kw, rows = band_rows(s, oh, ow);
    /* One OpenMP pool does everything, each thread running single-threaded
       sgemm: OpenBLAS's own threads and OpenMP's spinning on the same cores
       starve each other. */
    int nt = me_threads();
    int par = nt > 1 && !omp_in_parallel() && (double)n * out_plane * s->cout * k >= PAR_MIN_MACS;
    if (par) openblas_set_num_threads(1);
    #pragma omp parallel num_threads(nt) if (par)
    for (int b = 0; b < n; b++) {
        const float *xb = x + (size_t)b * s->cin * in_plane;
        float *yb = y + (size_t)b * s->cout * out_plane;
        if (is_pointwise(s)) {
            gemm_share(s, s->cin, weight, bias, xb, (int)in_plane, yb, out_plane);
            continue;
        }
        for (int oy = 0; oy < oh; oy += rows) {
            int r = oh - oy < rows ? oh - oy : rows;
            im2col(s, h, w, ow, xb, oy, r, scratch);   /* ends with a barrier */
            gemm_share(s, k, weight, bias, scratch, r * ow, yb + (size_t)oy * ow, out_plane);
            #pragma omp barrier   /* the next band overwrites scratch */
        }
    }
    if (par) openblas_set_num_threads(nt);
}

void op_upsample2x(int n, int c, int h, int w, const float *x, float *y)
{
    size_t planes = (size_t)n * c;
    #pragma omp parallel for schedule(static) num_threads(me_threads()) if (planes * h * w >= PAR_MIN)
    for (size_t p = 0; p < planes; p++) {
        const float *src = x + p * h * w;
        float *dst = y + p * 4 * h * w;
        for (int i = 0; i < h; i++) {
            float *row = dst + (size_t)2 * i * 2 * w;
            for (int j = 0; j < w; j++) row[2 * j] = row[2 * j + 1] = src[(size_t)i * w + j];
            memcpy(row + 2 * w, row, (size_t)2 * w * sizeof *row);
        }
    }
}

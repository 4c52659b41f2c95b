/* Pooling for the Inception network: max and average pooling over k×k
   windows, and the global average that makes pool3 features. Windows follow
   PyTorch (floor mode): the output has (size + 2·pad − k) / stride + 1 cells,
   and cells of a window that fall in the padding are skipped — for max
   pooling as if they were −∞, for average pooling by dividing by the number
   of real cells (count_include_pad=False, the TensorFlow behaviour the FID
   Inception relies on). */
#include "core/core.h"
#include "ops/ops.h"

/* One k×k window's bounds, clipped to the image. */
static void window(int o, int k, int stride, int pad, int size, int *lo, int *hi)
{
    int s = o * stride - pad, e = s + k;
    *lo = s < 0 ? 0 : s;
    *hi = e > size ? size : e;
}

/* The cells of x a window reads directly, for widths beyond the row buffer. */
static void pool_plane_direct(const float *xp, float *yp, int h, int w, int oh, int ow, int k, int stride,
                              int pad, int is_max)
{
    for (int oy = 0; oy < oh; oy++) {
        int y0, y1;
        window(oy, k, stride, pad, h, &y0, &y1);
        for (int ox = 0; ox < ow; ox++) {
            int x0, x1;
            window(ox, k, stride, pad, w, &x0, &x1);
            float acc = is_max ? xp[(size_t)y0 * w + x0] : 0.0f;
            for (int iy = y0; iy < y1; iy++)
                for (int ix = x0; ix < x1; ix++) {
                    float v = xp[(size_t)iy * w + ix];
                    if (is_max) acc = v > acc ? v : acc;
                    else acc += v;
                }
            yp[(size_t)oy * ow + ox] = is_max ? acc : acc / (float)((y1 - y0) * (x1 - x0));
        }
    }
}

#define ROW_MAX 1024   /* widest row the separable path buffers (Inception's is 147) */

/* Separable: a window's rows are first combined into v (whole rows, so the
   loops vectorise), then each output cell combines k neighbours of v. The
   3-wide windows inside the row (all of them but the edges) are unrolled
   per stride, 1 and 2 being Inception's: the scalar cell-by-cell loops
   this replaced were a tenth or more of a feature pass (measurements in
   docs/performance.md, InceptionV3). */
static void pool_plane(const float *xp, float *yp, int h, int w, int oh, int ow, int k, int stride, int pad,
                       int is_max)
{
    float v[ROW_MAX];
    /* cells ox in [oa, ob) have windows wholly inside the row */
    int oa = (pad + stride - 1) / stride, ob = w + pad - k < 0 ? 0 : (w + pad - k) / stride + 1;
    if (ob > ow) ob = ow;
    if (oa > ob) oa = ob;
    for (int oy = 0; oy < oh; oy++) {
        int y0, y1;
        window(oy, k, stride, pad, h, &y0, &y1);
        const float *r = xp + (size_t)y0 * w;
        for (int x = 0; x < w; x++) v[x] = r[x];
        for (int iy = y0 + 1; iy < y1; iy++) {
            r = xp + (size_t)iy * w;
            if (is_max)
                for (int x = 0; x < w; x++) v[x] = r[x] > v[x] ? r[x] : v[x];
            else
                for (int x = 0; x < w; x++) v[x] += r[x];
        }
        float *o = yp + (size_t)oy * ow, rows = (float)(y1 - y0);
        for (int ox = 0; ox < ow; ox++) {
            if (ox == oa && k == 3 && (stride == 1 || stride == 2)) {
                const float *c = v + oa * stride - pad;
                const float div = 3 * rows;
                if (is_max && stride == 1)
                    for (int t = 0; t < ob - oa; t++) {
                        float m = c[t + 1] > c[t] ? c[t + 1] : c[t];
                        o[oa + t] = c[t + 2] > m ? c[t + 2] : m;
                    }
                else if (is_max)
                    for (int t = 0; t < ob - oa; t++) {
                        float m = c[2 * t + 1] > c[2 * t] ? c[2 * t + 1] : c[2 * t];
                        o[oa + t] = c[2 * t + 2] > m ? c[2 * t + 2] : m;
                    }
                else if (stride == 1)
                    for (int t = 0; t < ob - oa; t++) o[oa + t] = (c[t] + c[t + 1] + c[t + 2]) / div;
                else
                    for (int t = 0; t < ob - oa; t++) o[oa + t] = (c[2 * t] + c[2 * t + 1] + c[2 * t + 2]) / div;
                ox = ob;
                if (ox == ow) break;
            }
            int x0, x1;
            window(ox, k, stride, pad, w, &x0, &x1);
            float acc = v[x0];
            for (int ix = x0 + 1; ix < x1; ix++) acc = is_max ? (v[ix] > acc ? v[ix] : acc) : acc + v[ix];
            o[ox] = is_max ? acc : acc / (rows * (float)(x1 - x0));
        }
    }
}

static void pool2d(int n, int c, int h, int w, int k, int stride, int pad, int is_max,
                   const float *x, float *y)
{
    int oh = op_conv2d_out(h, k, stride, pad), ow = op_conv2d_out(w, k, stride, pad);
    if (oh <= 0 || ow <= 0) return;
    long planes = (long)n * c;
    #pragma omp parallel for schedule(static) num_threads(me_threads()) if (planes * oh * ow > 65536)
    for (long p = 0; p < planes; p++) {
        const float *xp = x + (size_t)p * h * w;
        float *yp = y + (size_t)p * oh * ow;
        if (w <= ROW_MAX) pool_plane(xp, yp, h, w, oh, ow, k, stride, pad, is_max);
        else pool_plane_direct(xp, yp, h, w, oh, ow, k, stride, pad, is_max);
    }
}

void op_maxpool2d(int n, int c, int h, int w, int k, int stride, int pad, const float *x, float *y)
{
    pool2d(n, c, h, w, k, stride, pad, 1, x, y);
}

void op_avgpool2d(int n, int c, int h, int w, int k, int stride, int pad, const float *x, float *y)
{
    pool2d(n, c, h, w, k, stride, pad, 0, x, y);
}

void op_global_avgpool(int n, int c, int hw, const float *x, float *y)
{
    for (long p = 0; p < (long)n * c; p++) {
        const float *xp = x + (size_t)p * hw;
        double s = 0;   /* 64 cells at most here, but features feed a covariance */
        for (int i = 0; i < hw; i++) s += xp[i];
        y[p] = (float)(s / hw);
    }
}

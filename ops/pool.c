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

/* TF1's legacy bilinear resize (tensorflow/core/kernels/resize_bilinear_op.cc
   with half_pixel_centers = false) and the sFID tap's layout. */
#include <math.h>
#include <stddef.h>
#include "fid/preprocess.h"

#define MAX_SIDE 8192

typedef struct {
    int lo, hi;
    float lerp;
} tap;

/* Source rows (or columns) of each output one: in = i · (in_size/out_size)
   in float32, lower = floor(in), upper = min(ceil(in), in_size − 1). */
static void taps(int in_size, int out_size, tap *t)
{
    const float scale = (float)in_size / (float)out_size;
    for (int i = 0; i < out_size; i++) {
        float in = (float)i * scale, f = floorf(in);
        int up = (int)ceilf(in);
        t[i].lo = (int)f;
        t[i].hi = up < in_size - 1 ? up : in_size - 1;
        t[i].lerp = in - f;
    }
}

void me_resize_bilinear_tf1(int c, int h, int w, int oh, int ow, const float *x, float *y)
{
    tap ty[MAX_SIDE], tx[MAX_SIDE];
    taps(h, oh, ty);
    taps(w, ow, tx);
    for (int ch = 0; ch < c; ch++) {
        const float *p = x + (size_t)ch * h * w;
        float *q = y + (size_t)ch * oh * ow;
        for (int i = 0; i < oh; i++) {
            const float *top = p + (size_t)ty[i].lo * w, *bot = p + (size_t)ty[i].hi * w;
            const float yl = ty[i].lerp;
            for (int j = 0; j < ow; j++) {
                /* the kernel's compute_lerp: along x first, then y */
                const float xl = tx[j].lerp;
                const float t = top[tx[j].lo] + (top[tx[j].hi] - top[tx[j].lo]) * xl;
                const float b = bot[tx[j].lo] + (bot[tx[j].hi] - bot[tx[j].lo]) * xl;
                q[(size_t)i * ow + j] = t + (b - t) * yl;
            }
        }
    }
}

void me_spatial_tap(const float *x, int plane, int keep, float *out)
{
    for (int p = 0; p < plane; p++)
        for (int ch = 0; ch < keep; ch++) out[(size_t)p * keep + ch] = x[(size_t)ch * plane + p];
}

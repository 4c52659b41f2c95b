/* Bilinear resizing as F.interpolate(mode="bilinear", align_corners=False):
   output pixel d samples the input at (d + 0.5)·in/out − 0.5, clamped at 0,
   between the pixel below and the next one (the last pixel repeats). The
   FID Inception sees every image through this resize to 299×299, so the
   arithmetic mirrors PyTorch's CPU kernel (float scale and weights). */
#include "core/core.h"
#include "ops/ops.h"

/* Source pixels and the weight of the second one for output position d. */
static void tap(int d, int in, float scale, int *i0, int *i1, float *l1)
{
    float s = scale * ((float)d + 0.5f) - 0.5f;
    if (s < 0) s = 0;
    int i = (int)s;
    *i0 = i;
    *i1 = i + (i < in - 1);
    *l1 = s - (float)i;
}

/* Columns per block of taps, computed once for every row of every plane
   (per output pixel they had been 1 % of an Inception pass). */
#define TAPS_BLOCK 512

void op_resize_bilinear(int n, int c, int h, int w, int oh, int ow, const float *x, float *y)
{
    float sy = (float)h / (float)oh, sx = (float)w / (float)ow;
    long planes = (long)n * c;
    for (int xb = 0; xb < ow; xb += TAPS_BLOCK) {
        int nx = ow - xb < TAPS_BLOCK ? ow - xb : TAPS_BLOCK, x0[TAPS_BLOCK], x1[TAPS_BLOCK];
        float dx[TAPS_BLOCK];
        for (int i = 0; i < nx; i++) tap(xb + i, w, sx, &x0[i], &x1[i], &dx[i]);
        #pragma omp parallel for schedule(static) num_threads(me_threads()) if (planes * oh * nx > 65536)
        for (long p = 0; p < planes; p++) {
            const float *xp = x + (size_t)p * h * w;
            float *yp = y + (size_t)p * oh * ow + xb;
            for (int oy = 0; oy < oh; oy++) {
                int y0, y1;
                float b;
                tap(oy, h, sy, &y0, &y1, &b);
                const float *r0 = xp + (size_t)y0 * w, *r1 = xp + (size_t)y1 * w;
                for (int i = 0; i < nx; i++) {
                    float d = dx[i];
                    yp[(size_t)oy * ow + i] = (1.0f - b) * ((1.0f - d) * r0[x0[i]] + d * r0[x1[i]]) +
                                              b * ((1.0f - d) * r1[x0[i]] + d * r1[x1[i]]);
                }
            }
        }
    }
}

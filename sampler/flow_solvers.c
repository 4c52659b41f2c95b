/* Second-order solvers for rectified-flow models (DiT-MoE XL/G): Heun's
   method (the explicit trapezoid rule) and the explicit midpoint rule, on the time grid of DiT-MoE's sample_with_xps — t from 1 down to 0
   in M equal steps, the model seeing t = i/M — with M = N/2 so that N model
   evaluations cost as much as N Euler steps (--sampler flow). The velocity
   is the first C output channels; dz/dt = v, so a step to t − dt is
   z − dt·v. */
#include <stdlib.h>
#include <string.h>
#include "core/core.h"
#include "sampler/solver.h"

int me_flow_solver_run(const moedit_sample_options *o, const me_sample_shape *s, me_denoise_fn fn, void *ctx, int n,
                       const int64_t *labels, float *latents)
{
    float *times;   /* both evaluations' model times, step by step */
    int N, rc = me_sample_times(o, &times, &N);
    if (rc) return rc;
    const int M = N / 2, heun = o->sampler == MOEDIT_SAMPLER_HEUN;
    const size_t chw = (size_t)s->channels * s->size * s->size, len = (size_t)n * chw;
    me_guided g;
    me_noise z;
    float *v1 = NULL, *zt = NULL;
    int grc = me_guided_init(&g, o, s, fn, ctx, n, labels, N), zrc = me_noise_init(&z, o, n, chw);
    v1 = me_alloc(sizeof(float) * len);
    zt = me_alloc(sizeof(float) * len);
    if (grc || zrc || !v1 || !zt) {
        rc = MOEDIT_EINTERNAL;
        goto done;
    }
    /* as loop.c's flow path: DiT-MoE's sample.py draws one randn it does
       not use, then the initial noise */
    if (o->noise) {
        memcpy(latents, o->noise, sizeof(float) * len);
    } else {
        if (o->rng == MOEDIT_RNG_TORCH) me_noise_draw(&z, 0, latents);
        me_noise_draw(&z, 0, latents);
    }
    const float dt = (float)(1.0 / M), half = dt / 2;
    for (int i = M; i >= 1; i--) {
        const float *pred;
        if ((rc = me_guided_eval(&g, latents, times[2 * (M - i)], &pred))) goto done;
        for (int r = 0; r < n; r++) {
            const float *v = pred + r * g.row;
            float *a = v1 + r * chw, *b = zt + r * chw;
            const float *x = latents + r * chw;
            for (size_t j = 0; j < chw; j++) {
                a[j] = v[j];
                b[j] = x[j] - (heun ? dt : half) * v[j];
            }
        }
        /* Heun evaluates at the Euler step's end, midpoint half way */
        if ((rc = me_guided_eval(&g, zt, times[2 * (M - i) + 1], &pred))) goto done;
        for (int r = 0; r < n; r++) {
            const float *v = pred + r * g.row, *a = v1 + r * chw;
            float *x = latents + r * chw;
            for (size_t j = 0; j < chw; j++) x[j] = heun ? x[j] - dt * (a[j] + v[j]) / 2 : x[j] - dt * v[j];
        }
        if ((rc = me_check_step_finite(latents, n, chw, 2 * (M - i) + 1, N, (double)i / M))) goto done;
    }
done:
    free(times);
    free(v1);
    free(zt);
    me_noise_free(&z);
    me_guided_free(&g);
    return rc;
}

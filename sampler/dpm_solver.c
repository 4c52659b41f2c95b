/* DPM-Solver++ updates (Lu et al. 2022, "DPM-Solver++: Fast Solver for
   Guided Sampling of Diffusion Probabilistic Models"), written from
   diffusers' DPMSolverMultistepScheduler with algorithm_type dpmsolver++ /
   sde-dpmsolver++ and solver_type midpoint: exponential integrators in
   λ = log(α/σ) over the data prediction x0 = (x − σ ε) / α.

   The step coefficients are computed in double from the float32 sigmas,
   the update itself in float32 as diffusers does after upcasting. */
#include <math.h>
#include "sampler/solver.h"

me_vp me_vp_of(float sigma)
{
    me_vp v;
    v.alpha = 1 / sqrt((double)sigma * sigma + 1);
    v.sigma = sigma * v.alpha;
    v.lambda = log(v.alpha) - log(v.sigma);   /* +inf at sigma 0 */
    return v;
}

void me_dpm_update(int order, float sig_t, const float *sig, const float *const *m, const float *noise, size_t len,
                   float *x)
{
    const me_vp t = me_vp_of(sig_t), s0 = me_vp_of(sig[0]);
    const double h = t.lambda - s0.lambda, e = exp(-h);
    float cx, c0, c1, c2 = 0, cn = 0, r0inv = 0, r1inv = 0, k1 = 0, k2 = 0, d2f = 0;
    if (noise) {
        /* sde-dpmsolver++: the ODE step's decay e^{-h} on x and the
           matching injected variance σ_t² (1 − e^{-2h}) */
        const double e2 = exp(-2 * h);
        cx = (float)(t.sigma / s0.sigma * e);
        c0 = (float)(t.alpha * (1 - e2));
        c1 = 0.5f * c0;
        cn = (float)(t.sigma * sqrt(1 - e2));
    } else {
        cx = (float)(t.sigma / s0.sigma);
        c0 = (float)(-t.alpha * (e - 1));
        c1 = 0.5f * c0;
        /* third order: D1 and D2 weights */
        c2 = (float)(t.alpha * ((e - 1) / h + 1));
        k2 = (float)(-t.alpha * ((e - 1 + h) / (h * h) - 0.5));
    }
    if (order >= 2) {
        const me_vp s1 = me_vp_of(sig[1]);
        r0inv = (float)(h / (s0.lambda - s1.lambda));
        if (order == 3) {
            const me_vp s2 = me_vp_of(sig[2]);
            const double r0 = (s0.lambda - s1.lambda) / h, r1 = (s1.lambda - s2.lambda) / h;
            r1inv = (float)(1 / r1);
            k1 = (float)(r0 / (r0 + r1));
            d2f = (float)(1 / (r0 + r1));
        }
    }
    for (size_t i = 0; i < len; i++) {
        const float m0 = m[0][i];
        float v = cx * x[i] + c0 * m0;
        if (order == 2) {
            v += c1 * (r0inv * (m0 - m[1][i]));
        } else if (order == 3) {
            const float d10 = r0inv * (m0 - m[1][i]), d11 = r1inv * (m[1][i] - m[2][i]);
            const float d1 = d10 + k1 * (d10 - d11), d2 = d2f * (d10 - d11);
            v += c2 * d1 + k2 * d2;
        }
        if (noise) v += cn * noise[i];
        x[i] = v;
    }
}

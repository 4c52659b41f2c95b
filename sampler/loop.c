/* The sampling loop: DDPM (p_sample), DDIM (ddim_sample) and rectified flow
   (DiT-MoE's sample_with_xps), with classifier-free guidance, over a model
   callback. Every buffer is allocated before the first step.

   Guidance as upstream forward_with_cfg: the model sees [x, x] with labels
   [y, null]; the first k raw output channels of the conditional rows become
   u + s·(c − u), the other channels stay the conditional rows' own. Upstream
   also steps the null half, but forward_with_cfg overwrites its x with the
   conditional half every time, so only the conditional rows are stepped
   here; the null half's noise is still drawn to keep torch's RNG in step.
   With a guidance interval, steps outside it run the conditional rows
   alone (the draws stay the same). The few-step solvers live in
   multistep.c and flow_solvers.c; me_sample_run hands them over. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "core/core.h"
#include "sampler/sampler.h"

typedef struct {
    const moedit_sample_options *o;
    int n;                       /* conditional rows; only they use their noise */
    size_t chw;                  /* one row of x */
    me_torch_rng torch;
    uint64_t *seeds;             /* native: one stream per row */
} noise_source;

/* Draw number `draw` (0 = initial noise) for all rows into buf [rows, chw]. */
static void draw_noise(noise_source *ns, uint32_t draw, int rows, float *buf)
{
    if (ns->o->rng == MOEDIT_RNG_TORCH) {
        me_torch_randn(&ns->torch, buf, (size_t)rows * ns->chw);
        return;
    }
    /* null rows never use their noise: skip them */
    for (int r = 0; r < rows && r < ns->n; r++) me_native_randn(ns->seeds[r], draw, buf + r * ns->chw, ns->chw);
}

/* In place: out[:n, :k] = u + s·(c − u), with u the null rows' output. */
static void guide(float *out, int n, int k, size_t hw, size_t row_stride, float s)
{
    for (int r = 0; r < n; r++) {
        float *c = out + r * row_stride;
        const float *u = out + (size_t)(r + n) * row_stride;
        for (size_t i = 0; i < (size_t)k * hw; i++) c[i] = u[i] + s * (c[i] - u[i]);
    }
}

/* One p_sample update of row x (C·HW values) from the model output o. */
static void ddpm_row(const me_diffusion *d, int k, int learn_sigma, size_t chw, float *x,
                     const float *o, const float *noise)
{
    const float sra = (float)d->sqrt_recip_alphas_cumprod[k], srm1 = (float)d->sqrt_recipm1_alphas_cumprod[k];
    const float c1 = (float)d->posterior_mean_coef1[k], c2 = (float)d->posterior_mean_coef2[k];
    const float min_log = (float)d->posterior_log_variance_clipped[k], max_log = (float)d->log_betas[k];
    const float fixed_log = (float)d->fixed_large_log_variance[k];
    for (size_t i = 0; i < chw; i++) {
        float x0 = sra * x[i] - srm1 * o[i];   /* no clipping: clip_denoised=False */
        float mean = c1 * x0 + c2 * x[i];
        if (k == 0) {
            x[i] = mean;   /* no noise at the last step (it was drawn all the same) */
            continue;
        }
        float log_var = fixed_log;
        if (learn_sigma) {
            float frac = (o[chw + i] + 1) / 2;
            log_var = frac * max_log + (1 - frac) * min_log;
        }
        x[i] = mean + expf(0.5f * log_var) * noise[i];
    }
}

/* One ddim_sample update (Equation 12 of the DDIM paper). */
static void ddim_row(const me_diffusion *d, int k, float eta, size_t chw, float *x, const float *o,
                     const float *noise)
{
    const float sra = (float)d->sqrt_recip_alphas_cumprod[k], srm1 = (float)d->sqrt_recipm1_alphas_cumprod[k];
    const float ab = (float)d->alphas_cumprod[k], abp = (float)d->alphas_cumprod_prev[k];
    const float sigma = eta * sqrtf((1 - abp) / (1 - ab)) * sqrtf(1 - ab / abp);
    const float dir = sqrtf(1 - abp - sigma * sigma), sqrt_abp = sqrtf(abp);
    for (size_t i = 0; i < chw; i++) {
        float x0 = sra * x[i] - srm1 * o[i];
        float eps = (sra * x[i] - x0) / srm1;   /* re-derived from x0, as upstream */
        float v = x0 * sqrt_abp + dir * eps;
        x[i] = k == 0 ? v : v + sigma * noise[i];
    }
}

int me_sample_run(const moedit_sample_options *o, const me_sample_shape *s, me_denoise_fn fn,
                  void *ctx, int n, const int64_t *labels, float *latents)
{
    if (n < 1) return me_fail(MOEDIT_EINPUT, "sample: no rows to sample");
    if (o->cfg < 1 || !isfinite(o->cfg)) return me_fail(MOEDIT_EINPUT, "sample: cfg %g must be >= 1", o->cfg);
    /* past 1, σ² can exceed 1 − ᾱ_prev and √(1 − ᾱ_prev − σ²) is NaN near the end */
    if (o->sampler == MOEDIT_SAMPLER_DDIM && !(o->eta >= 0 && o->eta <= 1))
        return me_fail(MOEDIT_EINPUT, "sample: eta %g is not in [0, 1]", o->eta);
    for (int i = 0; i < n; i++)
        if (labels[i] < 0 || labels[i] > s->num_classes)
            return me_fail(MOEDIT_EINPUT, "sample: class %lld outside 0..%d", (long long)labels[i], s->num_classes);
    const int C = s->channels, OC = s->out_channels, flow = o->sampler == MOEDIT_SAMPLER_FLOW;
    const int learn_sigma = OC == 2 * C;
    if (OC != C && !learn_sigma) return me_fail(MOEDIT_EINPUT, "sample: %d output channels for %d input channels", OC, C);
    if (o->cfg_interval && !(o->cfg_lo < o->cfg_hi))
        return me_fail(MOEDIT_EINPUT, "sample: guidance interval [%g, %g] is empty", o->cfg_lo, o->cfg_hi);
    /* one beside the timesteps would guide nothing, silently */
    const float tmax = me_sampler_is_flow(o->sampler) ? 1 : 999;
    if (o->cfg_interval && (o->cfg_hi < 0 || o->cfg_lo > tmax))
        return me_fail(MOEDIT_EINPUT, "sample: guidance interval [%g, %g] holds none of the timesteps 0..%g",
                       o->cfg_lo, o->cfg_hi, tmax);
    /* one within them may still miss every step the run takes */
    int rc = me_cfg_interval_check(o);
    if (rc) return rc;
    if (o->sampler == MOEDIT_SAMPLER_HEUN || o->sampler == MOEDIT_SAMPLER_MIDPOINT)
        return me_flow_solver_run(o, s, fn, ctx, n, labels, latents);
    if (o->sampler > MOEDIT_SAMPLER_FLOW) return me_multistep_run(o, s, fn, ctx, n, labels, latents);

    me_diffusion d = {0};
    float *times;   /* each step's model time */
    int steps;
    if ((rc = me_sample_times(o, &times, &steps))) return rc;
    if (!flow && (rc = me_diffusion_init(&d, o->cosine_schedule > 0, o->steps))) {
        free(times);
        return rc;
    }

    const int guided = o->cfg > 1, rows = guided ? 2 * n : n;
    const size_t hw = (size_t)s->size * s->size, chw = (size_t)C * hw;
    /* guided channels: all C predictions, or upstream's model_out[:, :k] */
    int gk = o->cfg_channels == 0 ? C : (o->cfg_channels < OC ? o->cfg_channels : OC);
    if (flow && gk > C) gk = C;   /* flow reads only the first C channels */

    noise_source ns = {.o = o, .n = n, .chw = chw};
    float *xin = me_alloc(sizeof(float) * rows * chw);
    float *out = me_alloc(sizeof(float) * rows * OC * hw);
    float *noise = me_alloc(sizeof(float) * rows * chw);
    float *t = me_alloc(sizeof(float) * rows);
    int64_t *y = me_alloc(sizeof(int64_t) * rows);
    if (o->rng == MOEDIT_RNG_NATIVE) ns.seeds = me_alloc(sizeof(uint64_t) * n);
    if (!xin || !out || !noise || !t || !y || (o->rng == MOEDIT_RNG_NATIVE && !ns.seeds)) {
        rc = MOEDIT_EINTERNAL;
        goto done;
    }
    if (o->rng == MOEDIT_RNG_TORCH) {
        me_torch_rng_seed(&ns.torch, o->seed);
    } else {
        for (int r = 0; r < n; r++) ns.seeds[r] = o->row_seeds ? o->row_seeds[r] : me_native_row_seed(o->seed, r);
    }

    /* initial noise: randn(n, C, H, W); DiT-MoE's flow path in sample.py
       draws one such tensor, then the init_noise it actually uses */
    if (o->noise) {
        memcpy(latents, o->noise, sizeof(float) * n * chw);
    } else {
        if (flow && o->rng == MOEDIT_RNG_TORCH) me_torch_randn(&ns.torch, latents, (size_t)n * chw);
        draw_noise(&ns, 0, n, latents);
    }
    for (int r = 0; r < rows; r++) y[r] = r < n ? labels[r] : s->num_classes;

    for (int step = 0; step < steps; step++) {
        const int k = steps - 1 - step;   /* respaced index / flow i-1 */
        const float tv = times[step];
        /* outside the guidance interval the null half is not run */
        const int g = guided && me_cfg_active(o, tv), grows = g ? rows : n;
        for (int r = 0; r < grows; r++) t[r] = tv;
        memcpy(xin, latents, sizeof(float) * n * chw);
        if (g) memcpy(xin + n * chw, latents, sizeof(float) * n * chw);
        rc = fn(ctx, step, grows, g ? n : grows, xin, t, y, out);
        if (rc) goto done;
        if (g) guide(out, n, gk, hw, (size_t)OC * hw, o->cfg);

        if (flow) {
            const float dt = (float)(1.0 / steps);
            for (int r = 0; r < n; r++) {
                float *z = latents + r * chw;
                const float *v = out + (size_t)r * OC * hw;
                for (size_t i = 0; i < chw; i++) z[i] = z[i] - dt * v[i];
            }
        } else {
            /* upstream draws randn_like(x) of the whole (doubled) batch every step */
            draw_noise(&ns, (uint32_t)step + 1, rows, noise);
            for (int r = 0; r < n; r++) {
                float *x = latents + r * chw;
                const float *mo = out + (size_t)r * OC * hw, *nz = noise + r * chw;
                if (o->sampler == MOEDIT_SAMPLER_DDIM) ddim_row(&d, k, o->eta, chw, x, mo, nz);
                else ddpm_row(&d, k, learn_sigma, chw, x, mo, nz);
            }
        }
        /* one pass over the latents: a model that diverges stops here, named */
        if ((rc = me_check_step_finite(latents, n, chw, step, steps, tv))) goto done;
        if (o->progress) o->progress(o->progress_user, step + 1, steps);
    }
done:
    free(times);
    free(xin);
    free(out);
    free(noise);
    free(t);
    free(y);
    free(ns.seeds);
    me_diffusion_free(&d);
    return rc;
}

/* The multistep solver loop for DDPM-trained models: DPM-Solver++ 2M / 3M,
   its SDE variant and UniPC, driven as diffusers' pipelines drive
   DPMSolverMultistepScheduler and UniPCMultistepScheduler: one model
   evaluation per timestep, the ε prediction (the first C channels; a
   learned-sigma model's variance channels are ignored) turned into a data
   prediction x0 = (x − σ ε) / α, a history of those, and the warm-up and
   lower_order_final rules of the schedulers. Every buffer is allocated
   before the first step. */
#include <stdlib.h>
#include <string.h>
#include "core/core.h"
#include "sampler/solver.h"

static int solver_order(const moedit_sample_options *o)
{
    switch (o->sampler) {
    case MOEDIT_SAMPLER_DPM3M:
        return 3;
    case MOEDIT_SAMPLER_UNIPC:
        return o->order ? o->order : 2;
    default:
        return 2;
    }
}

int me_multistep_run(const moedit_sample_options *o, const me_sample_shape *s, me_denoise_fn fn, void *ctx, int n,
                     const int64_t *labels, float *latents)
{
    const int unipc = o->sampler == MOEDIT_SAMPLER_UNIPC, sde = o->sampler == MOEDIT_SAMPLER_DPM2M_SDE;
    const int order = solver_order(o);
    if (order < 1 || order > 3) return me_fail(MOEDIT_EINPUT, "order: UniPC takes order 1, 2 or 3, not %d", order);
    int N, rc = me_sample_evaluations(o, &N);
    if (rc) return rc;
    me_solver_schedule sc;
    if ((rc = me_solver_schedule_init(&sc, o->cosine_schedule > 0, N, o->spacing, o->karras))) return rc;

    const size_t chw = (size_t)s->channels * s->size * s->size, len = (size_t)n * chw;
    me_guided g;
    me_noise z;
    float *bufs[4] = {0}, *last = NULL, *noise = NULL;
    int grc = me_guided_init(&g, o, s, fn, ctx, n, labels, N), zrc = me_noise_init(&z, o, n, chw);
    int ok = !grc && !zrc;
    for (int k = 0; k <= order; k++) ok = ok && (bufs[k] = me_alloc(sizeof(float) * len));
    if (unipc) ok = ok && (last = me_alloc(sizeof(float) * len));
    if (sde) ok = ok && (noise = me_alloc(sizeof(float) * len));
    if (!ok) {
        rc = MOEDIT_EINTERNAL;
        goto done;
    }
    if (o->noise) memcpy(latents, o->noise, sizeof(float) * len);
    else me_noise_draw(&z, 0, latents);

    /* hist[0] is the newest data prediction, hist[order] the spare slot
       the next one is written to */
    float *hist[4];
    memcpy(hist, bufs, sizeof hist);
    int lower = 0, prev_order = 0;
    for (int i = 0; i < N; i++) {
        const float *pred;
        if ((rc = me_guided_eval(&g, latents, (float)sc.timestep[i], &pred))) goto done;
        const me_vp vp = me_vp_of(sc.sigma[i]);
        const float a = (float)vp.alpha, sg = (float)vp.sigma;
        float *m_new = hist[order];
        for (int r = 0; r < n; r++) {
            const float *eps = pred + r * g.row, *x = latents + r * chw;
            float *m = m_new + r * chw;
            for (size_t j = 0; j < chw; j++) m[j] = (x[j] - sg * eps[j]) / a;
        }
        if (unipc && i > 0) {
            /* UniC: correct the last predictor's result with the new evaluation
               (made at the uncorrected sample, as diffusers does) */
            float sig[3];
            for (int k = 0; k < 3; k++) sig[k] = i - 1 - k >= 0 ? sc.sigma[i - 1 - k] : 0;
            me_unipc_correct(prev_order, sc.sigma[i], sig, (const float *const *)hist, m_new, last, len, latents);
        }
        for (int k = order; k > 0; k--) hist[k] = hist[k - 1];
        hist[0] = m_new;
        float sig[3];
        for (int k = 0; k < 3; k++) sig[k] = i - k >= 0 ? sc.sigma[i - k] : 0;

        if (unipc) {
            int p = N - i < order ? N - i : order;   /* lower_order_final */
            if (p > lower + 1) p = lower + 1;        /* warm-up */
            memcpy(last, latents, sizeof(float) * len);
            me_unipc_predict(p, sc.sigma[i + 1], sig, (const float *const *)hist, len, latents);
            prev_order = p;
        } else {
            /* final sigma zero: the last step is first order; below 15
               steps the one before it is at most second order */
            const int final = i == N - 1, second = i == N - 2 && N < 15;
            const int p = order == 1 || lower < 1 || final ? 1 : order == 2 || lower < 2 || second ? 2 : 3;
            if (sde) me_noise_draw(&z, (uint32_t)i + 1, noise);
            me_dpm_update(p, sc.sigma[i + 1], sig, (const float *const *)hist, noise, len, latents);
        }
        if (lower < order) lower++;
        if ((rc = me_check_step_finite(latents, n, chw, i, N, sc.timestep[i]))) goto done;
    }
done:
    for (int k = 0; k < 4; k++) free(bufs[k]);
    free(last);
    free(noise);
    me_noise_free(&z);
    me_guided_free(&g);
    me_solver_schedule_free(&sc);
    return rc;
}

/* What the solvers share before the first step: sampler names, the step
   count each sampler accepts, the guidance interval, and diffusers'
   set_timesteps() for DPMSolverMultistepScheduler / UniPCMultistepScheduler
   (linspace / leading / trailing spacing, Karras sigmas, final sigma zero).

   diffusers keeps the schedule in float32: betas and 1 - betas in float32,
   their cumulative product accumulated in double by torch's CPU cumprod
   and stored as float32, sigmas = sqrt((1 - ᾱ) / ᾱ) in float32. The same
   roundings are made here so that the sigmas agree to the last bit or so. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "core/core.h"
#include "sampler/sampler.h"

static const char *const names[] = {"ddpm", "ddim", "flow", "dpm++2m", "dpm++3m", "unipc", "dpm++2m-sde",
                                    "heun", "midpoint"};

const char *me_sampler_name(moedit_sampler s)
{
    return (unsigned)s < sizeof names / sizeof names[0] ? names[s] : NULL;
}

int me_sampler_is_flow(moedit_sampler s)
{
    return s == MOEDIT_SAMPLER_FLOW || s == MOEDIT_SAMPLER_HEUN || s == MOEDIT_SAMPLER_MIDPOINT;
}

const char *me_default_steps(moedit_sampler s, int cosine)
{
    if (me_sampler_is_flow(s)) return "50";
    if (s <= MOEDIT_SAMPLER_DDIM) return cosine ? "ddim250" : "250";
    return "20";
}

int me_cfg_active(const moedit_sample_options *o, float t)
{
    return !o->cfg_interval || (t >= o->cfg_lo && t <= o->cfg_hi);
}

int me_sample_times(const moedit_sample_options *o, float **times, int *count)
{
    int N, rc = me_sample_evaluations(o, &N);
    if (rc) return rc;
    float *t = me_alloc(sizeof(float) * N);
    if (!t) return MOEDIT_EINTERNAL;
    if (o->sampler == MOEDIT_SAMPLER_DDPM || o->sampler == MOEDIT_SAMPLER_DDIM) {
        me_diffusion d;
        if ((rc = me_diffusion_init(&d, o->cosine_schedule > 0, o->steps))) {
            free(t);
            return rc;
        }
        for (int i = 0; i < N; i++) t[i] = (float)d.timestep[N - 1 - i];
        me_diffusion_free(&d);
    } else if (o->sampler == MOEDIT_SAMPLER_FLOW) {
        for (int i = 0; i < N; i++) t[i] = (float)((double)(N - i) / N);
    } else if (o->sampler == MOEDIT_SAMPLER_HEUN || o->sampler == MOEDIT_SAMPLER_MIDPOINT) {
        /* M = N/2 steps from t = 1: the step's start, then its end (Heun)
           or its middle (midpoint) */
        const int M = N / 2, heun = o->sampler == MOEDIT_SAMPLER_HEUN;
        for (int i = M; i >= 1; i--) {
            t[2 * (M - i)] = (float)((double)i / M);
            t[2 * (M - i) + 1] = (float)(heun ? (double)(i - 1) / M : (i - 0.5) / M);
        }
    } else {
        me_solver_schedule sc;
        if ((rc = me_solver_schedule_init(&sc, o->cosine_schedule > 0, N, o->spacing, o->karras))) {
            free(t);
            return rc;
        }
        for (int i = 0; i < N; i++) t[i] = (float)sc.timestep[i];
        me_solver_schedule_free(&sc);
    }
    *times = t;
    *count = N;
    return MOEDIT_OK;
}

int me_cfg_interval_check(const moedit_sample_options *o)
{
    if (!(o->cfg > 1) || !o->cfg_interval) return MOEDIT_OK;
    float *t;
    int n, rc = me_sample_times(o, &t, &n), guided = 0;
    if (rc) return rc;
    for (int i = 0; i < n && !guided; i++) guided = me_cfg_active(o, t[i]);
    if (!guided)
        rc = me_fail(MOEDIT_EINPUT, "guidance interval [%g, %g] holds none of the %d model evaluations' times "
                     "(%g down to %g): nothing would be guided", o->cfg_lo, o->cfg_hi, n, t[0], t[n - 1]);
    free(t);
    return rc;
}

/* A plain decimal count in 1..max. */
static int plain_count(const char *spec, int max, int *out)
{
    if (!spec || spec[0] < '0' || spec[0] > '9') return -1;
    char *end;
    errno = 0;
    long v = strtol(spec, &end, 10);
    if (*end || errno || v < 1 || v > max) return -1;
    *out = (int)v;
    return 0;
}

int me_sample_evaluations(const moedit_sample_options *o, int *evals)
{
    const char *spec = o->steps ? o->steps : "";
    int k;
    switch (o->sampler) {
    case MOEDIT_SAMPLER_DDPM:
    case MOEDIT_SAMPLER_DDIM: {
        unsigned char use[ME_DIFFUSION_STEPS];
        k = me_space_timesteps(ME_DIFFUSION_STEPS, spec, use);
        if (k < 0) return -k;
        *evals = k;
        return MOEDIT_OK;
    }
    case MOEDIT_SAMPLER_FLOW:
        return me_flow_steps(spec, evals);
    case MOEDIT_SAMPLER_HEUN:
    case MOEDIT_SAMPLER_MIDPOINT:
        /* two evaluations a step, so equal --steps cost the same as Euler */
        if (plain_count(spec, 1 << 20, &k) || k % 2)
            return me_fail(MOEDIT_EINPUT, "steps: %s takes an even number of model evaluations (>= 2), not '%s'",
                           names[o->sampler], spec);
        *evals = k;
        return MOEDIT_OK;
    case MOEDIT_SAMPLER_DPM2M:
    case MOEDIT_SAMPLER_DPM3M:
    case MOEDIT_SAMPLER_UNIPC:
    case MOEDIT_SAMPLER_DPM2M_SDE:
        if (plain_count(spec, ME_DIFFUSION_STEPS, &k))
            return me_fail(MOEDIT_EINPUT, "steps: %s takes a plain step count in 1..%d, not '%s'", names[o->sampler],
                           ME_DIFFUSION_STEPS, spec);
        *evals = k;
        return MOEDIT_OK;
    }
    return me_fail(MOEDIT_EINPUT, "sampler: unknown sampler %d", (int)o->sampler);
}

/* np.round: halves to even */
static double round_even(double v)
{
    return nearbyint(v);
}

/* diffusers' _sigma_to_t: the fractional timestep whose log-sigma brackets
   log(sigma), from the float32 log-sigma table. */
static double sigma_to_t(double sigma, const float *log_sigmas, int T)
{
    double ls = log(sigma > 1e-10 ? sigma : 1e-10);
    int low = 0;
    for (int j = 0; j < T; j++)
        if (ls - log_sigmas[j] >= 0) low = j;
    if (low > T - 2) low = T - 2;
    double lo = log_sigmas[low], hi = log_sigmas[low + 1];
    double w = (lo - ls) / (lo - hi);
    w = w < 0 ? 0 : w > 1 ? 1 : w;
    return (1 - w) * low + w * (low + 1);
}

int me_solver_schedule_init(me_solver_schedule *s, int cosine, int N, moedit_spacing spacing, int karras)
{
    enum { T = ME_DIFFUSION_STEPS };
    memset(s, 0, sizeof *s);
    if (N < 1 || N > T) return me_fail(MOEDIT_EINPUT, "steps: %d is not in 1..%d", N, T);
    double betas[T];
    float sig[T], log_sig[T];
    me_beta_schedule(cosine, T, betas);
    double acc = 1;
    for (int t = 0; t < T; t++) {
        float alpha = 1.0f - (float)betas[t];
        acc *= alpha;
        float ac = (float)acc;
        sig[t] = sqrtf((1.0f - ac) / ac);
        log_sig[t] = (float)log(sig[t]);
    }
    s->timestep = me_alloc(sizeof(int) * N);
    s->sigma = me_alloc(sizeof(float) * (N + 1));
    if (!s->timestep || !s->sigma) {
        me_solver_schedule_free(s);
        return MOEDIT_EINTERNAL;
    }
    s->steps = N;
    if (karras) {
        /* ρ = 7 ramp between the schedule's extreme sigmas; timesteps are the
           rounded fractional timesteps of those sigmas */
        const double rho = 7, lo = pow(sig[0], 1 / rho), hi = pow(sig[T - 1], 1 / rho);
        for (int i = 0; i < N; i++) {
            double ramp = N == 1 ? 0 : i == N - 1 ? 1 : i * (1.0 / (N - 1));   /* np.linspace */
            double sg = pow(hi + ramp * (lo - hi), rho);
            s->sigma[i] = (float)sg;
            s->timestep[i] = (int)round_even(sigma_to_t(sg, log_sig, T));
        }
    } else {
        switch (spacing) {
        case MOEDIT_SPACING_LINSPACE:
            /* np.linspace(0, T - 1, N + 1).round()[::-1][:-1] */
            for (int i = 0; i < N; i++)
                s->timestep[i] = i == 0 ? T - 1 : (int)round_even((N - i) * ((double)(T - 1) / N));
            break;
        case MOEDIT_SPACING_LEADING: {
            int ratio = T / (N + 1);
            for (int i = 0; i < N; i++) s->timestep[i] = (N - i) * ratio;
            break;
        }
        case MOEDIT_SPACING_TRAILING: {
            /* np.arange(T, 0, -T / N).round() - 1, whose length numpy takes
               as ceil(T / (T / N)): N + 1 for some N */
            double ratio = (double)T / N;
            if ((int)ceil(-(double)T / -ratio) != N) {
                me_solver_schedule_free(s);
                return me_fail(MOEDIT_EINPUT, "steps: diffusers' trailing spacing makes %d timesteps for %d steps; "
                               "take another count", (int)ceil(-(double)T / -ratio), N);
            }
            for (int i = 0; i < N; i++) s->timestep[i] = (int)round_even(T - i * ratio) - 1;
            break;
        }
        default:
            me_solver_schedule_free(s);
            return me_fail(MOEDIT_EINPUT, "spacing: unknown spacing %d", (int)spacing);
        }
        for (int i = 0; i < N; i++) {
            if (s->timestep[i] < 0 || (i && s->timestep[i] >= s->timestep[i - 1])) {
                me_solver_schedule_free(s);
                return me_fail(MOEDIT_EINPUT, "steps: %d steps with this spacing repeat a timestep; take fewer", N);
            }
            s->sigma[i] = sig[s->timestep[i]];
        }
    }
    s->sigma[N] = 0;
    return MOEDIT_OK;
}

void me_solver_schedule_free(me_solver_schedule *s)
{
    free(s->timestep);
    free(s->sigma);
    memset(s, 0, sizeof *s);
}

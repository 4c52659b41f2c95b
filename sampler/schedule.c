/* Diffusion schedules and respacing, in float64 as upstream's numpy code:
   get_named_beta_schedule, space_timesteps and SpacedDiffusion's respaced
   betas (facebookresearch/DiT diffusion/), and the flow step count. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "core/core.h"
#include "sampler/sampler.h"

static double cosine_alpha_bar(double t)
{
    double c = cos((t + 0.008) / 1.008 * M_PI / 2);
    return c * c;
}

void me_beta_schedule(int cosine, int T, double *betas)
{
    if (cosine) {
        for (int i = 0; i < T; i++) {
            double b = 1 - cosine_alpha_bar((double)(i + 1) / T) / cosine_alpha_bar((double)i / T);
            betas[i] = b < 0.999 ? b : 0.999;
        }
        return;
    }
    /* np.linspace(start, end, T): start + i*step, the last value exact */
    double scale = 1000.0 / T, start = scale * 0.0001, end = scale * 0.02;
    double step = (end - start) / (T - 1);
    for (int i = 0; i < T; i++) betas[i] = start + i * step;
    betas[T - 1] = end;
}

/* A non-negative decimal integer taking the whole of [s, e). */
static int parse_count(const char *s, const char *e, int *out)
{
    if (s == e || e - s > 9) return -1;
    int v = 0;
    for (const char *p = s; p < e; p++) {
        if (*p < '0' || *p > '9') return -1;
        v = v * 10 + (*p - '0');
    }
    *out = v;
    return 0;
}

int me_space_timesteps(int T, const char *spec, unsigned char *use)
{
    memset(use, 0, (size_t)T);
    if (!spec || !*spec) return -me_fail(MOEDIT_EINPUT, "steps: empty respacing");
    if (!strncmp(spec, "ddim", 4)) {
        int want;
        if (parse_count(spec + 4, spec + strlen(spec), &want) || want < 1)
            return -me_fail(MOEDIT_EINPUT, "steps: '%s' is not ddimN", spec);
        for (int stride = 1; stride < T; stride++)
            if ((T + stride - 1) / stride == want) {
                for (int t = 0; t < T; t += stride) use[t] = 1;
                return want;
            }
        return -me_fail(MOEDIT_EINPUT, "steps: cannot create exactly %d steps with an integer stride", want);
    }
    int sections = 1;
    for (const char *p = spec; *p; p++) sections += *p == ',';
    if (sections > T) return -me_fail(MOEDIT_EINPUT, "steps: too many sections in '%s'", spec);
    int size_per = T / sections, extra = T % sections, start = 0;
    const char *p = spec;
    for (int i = 0; i < sections; i++) {
        const char *e = strchr(p, ',');
        if (!e) e = p + strlen(p);
        int count;
        if (parse_count(p, e, &count))
            return -me_fail(MOEDIT_EINPUT, "steps: '%s' is not a step count or respacing (e.g. 250, 10,10,10, ddim25)", spec);
        int size = size_per + (i < extra);
        if (size < count)
            return -me_fail(MOEDIT_EINPUT, "steps: cannot divide a section of %d steps into %d", size, count);
        double stride = count <= 1 ? 1 : (double)(size - 1) / (count - 1), cur = 0;
        for (int j = 0; j < count; j++) {
            /* Python's round() rounds halves to even, as nearbyint does */
            use[start + (int)nearbyint(cur)] = 1;
            cur += stride;
        }
        start += size;
        p = *e ? e + 1 : e;
    }
    int kept = 0;
    for (int t = 0; t < T; t++) kept += use[t];
    if (!kept) return -me_fail(MOEDIT_EINPUT, "steps: '%s' keeps no timestep", spec);
    return kept;
}

int me_diffusion_init(me_diffusion *d, int cosine, const char *spec)
{
    enum { T = ME_DIFFUSION_STEPS };
    memset(d, 0, sizeof *d);
    double base[T];
    unsigned char use[T];
    int K = me_space_timesteps(T, spec, use);
    if (K < 0) return -K;
    me_beta_schedule(cosine, T, base);

    d->steps = K;
    d->timestep = me_alloc(sizeof(int) * K);
    double *block = me_alloc(sizeof(double) * 10 * K);
    if (!d->timestep || !block) {
        free(d->timestep);
        free(block);
        d->timestep = NULL;
        return MOEDIT_EINTERNAL;
    }
    double **arrays[] = {&d->betas, &d->alphas_cumprod, &d->alphas_cumprod_prev,
                         &d->posterior_log_variance_clipped, &d->log_betas,
                         &d->fixed_large_log_variance, &d->posterior_mean_coef1,
                         &d->posterior_mean_coef2, &d->sqrt_recip_alphas_cumprod,
                         &d->sqrt_recipm1_alphas_cumprod};
    for (int a = 0; a < 10; a++) *arrays[a] = block + (size_t)a * K;

    /* respaced betas from the kept alpha-bars (SpacedDiffusion) */
    double ac = 1, last = 1;
    int k = 0;
    for (int t = 0; t < T; t++) {
        ac *= 1 - base[t];
        if (!use[t]) continue;
        d->betas[k] = 1 - ac / last;
        d->timestep[k++] = t;
        last = ac;
    }
    /* GaussianDiffusion.__init__ on the respaced betas */
    double prod = 1;
    for (k = 0; k < K; k++) {
        double b = d->betas[k];
        d->alphas_cumprod_prev[k] = prod;
        prod *= 1 - b;
        d->alphas_cumprod[k] = prod;
        d->posterior_mean_coef1[k] = b * sqrt(d->alphas_cumprod_prev[k]) / (1 - prod);
        d->posterior_mean_coef2[k] = (1 - d->alphas_cumprod_prev[k]) * sqrt(1 - b) / (1 - prod);
        d->sqrt_recip_alphas_cumprod[k] = sqrt(1 / prod);
        d->sqrt_recipm1_alphas_cumprod[k] = sqrt(1 / prod - 1);
        d->log_betas[k] = log(b);
    }
    /* the posterior variance is 0 at k = 0, so upstream takes k = 1's there;
       with a single step (where upstream fails) beta_0 stands in */
    for (k = 0; k < K; k++) {
        int j = k == 0 && K > 1 ? 1 : k;
        double pv = d->betas[j] * (1 - d->alphas_cumprod_prev[j]) / (1 - d->alphas_cumprod[j]);
        if (K == 1) pv = d->betas[0];
        d->posterior_log_variance_clipped[k] = log(pv);
        d->fixed_large_log_variance[k] = k == 0 ? log(pv) : d->log_betas[k];
    }
    return MOEDIT_OK;
}

void me_diffusion_free(me_diffusion *d)
{
    free(d->timestep);
    free(d->betas);   /* the start of the coefficient block */
    memset(d, 0, sizeof *d);
}

int me_flow_steps(const char *spec, int *steps)
{
    int v;
    if (!spec || parse_count(spec, spec + strlen(spec), &v) || v < 1)
        return me_fail(MOEDIT_EINPUT, "steps: flow sampling takes a plain step count, not '%s'",
                       spec ? spec : "");
    *steps = v;
    return MOEDIT_OK;
}

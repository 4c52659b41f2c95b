/* The sampling loop with an analytic toy denoiser, against the same runs of
   tools/sampler_reference.py (DDPM learned/fixed variance, DDIM with η = 0
   and η > 0, rectified flow; guidance on 3 or all channels; torch RNG and
   given noise). The native RNG's batch independence is checked on its own. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "sampler/sampler.h"
#include "weights/npy.h"
#include "tests/testutil.h"

enum { N = 3, C = 2, S = 3, CLASSES = 10 };   /* 54 and 108 values: randn redraws a tail */
static const int64_t labels[N] = {3, 0, 9};

typedef struct {
    int out_channels, calls, null_from;
} toy_ctx;

/* same formula as sampler_reference.toy_model, in float32 */
static int toy(void *vctx, int step, int rows, int null_from, const float *x, const float *t,
               const int64_t *y, float *out)
{
    toy_ctx *ctx = vctx;
    const int OC = ctx->out_channels, hw = S * S;
    cr_assert_eq(step, ctx->calls);
    ctx->calls++;
    ctx->null_from = null_from;
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < OC; c++) {
            float a = 0.3f * cosf(0.01f * t[r] + (float)c);
            float b = 0.05f * (float)y[r] * (float)(c + 1) / (float)OC;
            for (int i = 0; i < hw; i++) {
                float xc = x[((size_t)r * C + c % C) * hw + i];
                out[((size_t)r * OC + c) * hw + i] = tanhf(0.5f * xc + (a + b) + (float)i * 0.001f);
            }
        }
    return 0;
}

static float *load(const char *name)
{
    char path[512];
    int64_t numel;
    snprintf(path, sizeof path, "%s/sampler/%s.npy", FIXTURES, name);
    float *v = tu_npy_f32(path, NULL, NULL, &numel);
    cr_assert_eq(numel, N * C * S * S);
    return v;
}

static int progress_calls;
static void progress(void *user, int step, int total)
{
    cr_assert_eq(step, ++progress_calls);
    cr_assert_geq(total, step);
}

Test(loop, toy_runs_match_reference)
{
    static const struct {
        const char *name;
        moedit_sampler sampler;
        const char *steps;
        float cfg;
        int cfg_channels;
        float eta;
        int cosine, learn_sigma;
        uint64_t seed;
        int noise, expect_steps;
    } cases[] = {
        {"ddpm_learned_cfg", MOEDIT_SAMPLER_DDPM, "12", 1.5f, 3, 0, 0, 1, 1234, 0, 12},
        {"ddpm_fixed_nocfg", MOEDIT_SAMPLER_DDPM, "10,5", 1.0f, 3, 0, 0, 0, 7, 0, 15},
        {"ddpm_cosine_all", MOEDIT_SAMPLER_DDPM, "25", 1.5f, 0, 0, 1, 1, 99, 0, 25},
        {"ddim_eta0_cfg4", MOEDIT_SAMPLER_DDIM, "ddim10", 4.0f, 3, 0, 0, 1, 0, 1, 10},
        {"ddim_eta05_cos", MOEDIT_SAMPLER_DDIM, "8", 2.0f, 0, 0.5f, 1, 1, 5, 0, 8},
        {"flow_cfg2_noise", MOEDIT_SAMPLER_FLOW, "8", 2.0f, 0, 0, 0, 1, 0, 1, 8},
        {"flow_cfg3_torch", MOEDIT_SAMPLER_FLOW, "6", 3.0f, 0, 0, 0, 0, 3, 0, 6},
    };
    float *noise = load("toy_noise");
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        moedit_sample_options o = {0};
        o.sampler = cases[c].sampler;
        o.steps = cases[c].steps;
        o.cfg = cases[c].cfg;
        o.cfg_channels = cases[c].cfg_channels;
        o.eta = cases[c].eta;
        o.cosine_schedule = cases[c].cosine;
        o.seed = cases[c].seed;
        o.rng = MOEDIT_RNG_TORCH;
        o.noise = cases[c].noise ? noise : NULL;
        o.progress = progress;
        progress_calls = 0;
        toy_ctx ctx = {cases[c].learn_sigma ? 2 * C : C, 0, 0};
        me_sample_shape s = {C, S, ctx.out_channels, CLASSES};
        float z[N * C * S * S];
        cr_assert_eq(me_sample_run(&o, &s, toy, &ctx, N, labels, z), MOEDIT_OK, "%s: %s",
                     cases[c].name, moedit_last_error());
        cr_assert_eq(ctx.calls, cases[c].expect_steps, "%s", cases[c].name);
        cr_assert_eq(progress_calls, cases[c].expect_steps);
        cr_assert_eq(ctx.null_from, N);   /* guided: rows N.. are null; else no null rows */
        char name[64];
        snprintf(name, sizeof name, "toy_%s", cases[c].name);
        float *want = load(name);
        double scale, err = tu_max_error(z, want, N * C * S * S, &scale);
        cr_assert(err <= 1e-4 * scale, "%s: max error %g of max %g", cases[c].name, err, scale);
        cr_log_info("%s: max abs error %g, relative to max %g", cases[c].name, err, err / scale);
        free(want);
    }
    free(noise);
}

/* with per-row seeds, a row's sample does not depend on its batch */
Test(loop, native_rows_are_independent)
{
    moedit_sample_options o = {0};
    o.sampler = MOEDIT_SAMPLER_DDPM;
    o.steps = "7";
    o.cfg = 2;
    o.cfg_channels = 3;
    o.cosine_schedule = 0;
    o.rng = MOEDIT_RNG_NATIVE;
    static const uint64_t seeds[N] = {11, 22, 33};
    o.row_seeds = seeds;
    me_sample_shape s = {C, S, 2 * C, CLASSES};
    toy_ctx ctx = {2 * C, 0, 0};
    float all[N * C * S * S], one[C * S * S];
    cr_assert_eq(me_sample_run(&o, &s, toy, &ctx, N, labels, all), MOEDIT_OK);
    o.row_seeds = seeds + 2;
    ctx.calls = 0;
    cr_assert_eq(me_sample_run(&o, &s, toy, &ctx, 1, labels + 2, one), MOEDIT_OK);
    cr_assert_eq(memcmp(one, all + 2 * C * S * S, sizeof one), 0);
    for (int i = 0; i < N * C * S * S; i++) cr_assert(isfinite(all[i]));
}

Test(loop, bad_options)
{
    moedit_sample_options o = {0};
    o.sampler = MOEDIT_SAMPLER_DDPM;
    o.steps = "7";
    o.cfg = 0.5f;
    me_sample_shape s = {C, S, 2 * C, CLASSES};
    toy_ctx ctx = {2 * C, 0, 0};
    float z[N * C * S * S];
    cr_assert_eq(me_sample_run(&o, &s, toy, &ctx, N, labels, z), MOEDIT_EINPUT);
    o.cfg = 1;
    o.steps = "ddimx";
    cr_assert_eq(me_sample_run(&o, &s, toy, &ctx, N, labels, z), MOEDIT_EINPUT);
    o.steps = "5";
    int64_t bad[1] = {11};
    cr_assert_eq(me_sample_run(&o, &s, toy, &ctx, 1, bad, z), MOEDIT_EINPUT);
    cr_assert_eq(ctx.calls, 0);
}

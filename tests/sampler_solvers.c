/* The few-step solvers (DPM-Solver++ 2M / 3M / 2M-SDE, UniPC, flow Heun and
   midpoint) and the guidance interval on the tiny dense DiT, DiT-MoE,
   Switch-DiT and rectified-flow checkpoints, against the same runs of
   tools/solver_reference.py / tools/sampler_reference.py
   (tools/make_solver_fixtures.py): final latents to 1e-4 of their largest
   value. A toy denoiser checks what an interval saves: outside it the null
   half is not evaluated. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "sampler/sampler.h"
#include "tests/testutil.h"

#define SOL FIXTURES "/solver/"
#define SAM FIXTURES "/sampler/"
enum { N = 2, LEN = N * 4 * 8 * 8 };
static const int64_t labels[N] = {1, 7};

typedef struct {
    const char *name, *model;
    moedit_sampler sampler;
    int steps;
    float cfg, lo, hi;   /* lo < hi: a guidance interval */
    moedit_spacing spacing;
    int karras, order;
    int torch_seed;      /* -1: the noise file */
} run_case;

#define DPM2 MOEDIT_SAMPLER_DPM2M
#define DPM3 MOEDIT_SAMPLER_DPM3M
#define UNI MOEDIT_SAMPLER_UNIPC
#define LIN MOEDIT_SPACING_LINSPACE
/* keep in step with RUNS / OLD_RUNS in tools/make_solver_fixtures.py */
#define FAMILY(m, M)                                                            \
    {m "_dpmpp2m_8", M, DPM2, 8, 1, 0, 0, LIN, 0, 0, -1},                       \
    {m "_dpmpp2m_16_cfg4", M, DPM2, 16, 4, 0, 0, LIN, 0, 0, -1},                \
    {m "_dpmpp2m_12_cfg4_iv", M, DPM2, 12, 4, 200, 700, LIN, 0, 0, -1},         \
    {m "_dpmpp3m_8", M, DPM3, 8, 1, 0, 0, LIN, 0, 0, -1},                       \
    {m "_dpmpp3m_16_cfg4", M, DPM3, 16, 4, 0, 0, LIN, 0, 0, -1},                \
    {m "_dpmpp3m_12_cfg4_iv", M, DPM3, 12, 4, 200, 700, LIN, 0, 0, -1},         \
    {m "_unipc_8", M, UNI, 8, 1, 0, 0, LIN, 0, 0, -1},                          \
    {m "_unipc_16_cfg4", M, UNI, 16, 4, 0, 0, LIN, 0, 0, -1},                   \
    {m "_unipc_12_cfg4_iv", M, UNI, 12, 4, 200, 700, LIN, 0, 0, -1}

#define M_DIT SOL "model_dit"
#define M_MOE SAM "model_moe_top2"
#define M_SWITCH SAM "model_switch_dmoe"
#define M_FLOW SAM "model_moe_qknorm"

static const run_case cases[] = {
    FAMILY("dit", M_DIT),
    FAMILY("moe", M_MOE),
    FAMILY("switch", M_SWITCH),
    {"moe_dpmp2m_10_cfg4_karras", M_MOE, DPM2, 10, 4, 0, 0, LIN, 1, 0, -1},
    {"dit_unipc_8_karras", M_DIT, UNI, 8, 1, 0, 0, LIN, 1, 0, -1},
    {"moe_dpmp3m_10_cfg15_leading", M_MOE, DPM3, 10, 1.5f, 0, 0, MOEDIT_SPACING_LEADING, 0, 0, -1},
    {"moe_unipc_10_cfg4_trailing", M_MOE, UNI, 10, 4, 0, 0, MOEDIT_SPACING_TRAILING, 0, 0, -1},
    {"switch_dpmp2m_10_cfg4_leading", M_SWITCH, DPM2, 10, 4, 0, 0, MOEDIT_SPACING_LEADING, 0, 0, -1},
    {"moe_unipc3_12_cfg4", M_MOE, UNI, 12, 4, 0, 0, LIN, 0, 3, -1},
    {"moe_unipc1_10_cfg4", M_MOE, UNI, 10, 4, 0, 0, LIN, 0, 1, -1},
    {"dit_unipc3_16_iv", M_DIT, UNI, 16, 4, 0, 500, LIN, 0, 3, -1},
    {"moe_dpmp2msde_10_cfg4_torch", M_MOE, MOEDIT_SAMPLER_DPM2M_SDE, 10, 4, 0, 0, LIN, 0, 0, 3},
    {"switch_dpmp2msde_12_iv_torch", M_SWITCH, MOEDIT_SAMPLER_DPM2M_SDE, 12, 4, 300, 900, MOEDIT_SPACING_LEADING, 0, 0, 5},
    {"flow_heun_8_cfg2", M_FLOW, MOEDIT_SAMPLER_HEUN, 8, 2, 0, 0, LIN, 0, 0, -1},
    {"flow_midpoint_8_cfg2_iv", M_FLOW, MOEDIT_SAMPLER_MIDPOINT, 8, 2, 0.3f, 0.8f, LIN, 0, 0, -1},
    {"flow_heun_6_torch", M_FLOW, MOEDIT_SAMPLER_HEUN, 6, 3, 0, 0.6f, LIN, 0, 0, 9},
    /* DDPM, DDIM and Euler flow with an interval */
    {"moe_ddim10_cfg4_iv", M_MOE, MOEDIT_SAMPLER_DDIM, 10, 4, 250, 650, LIN, 0, 0, -1},
    {"moe_ddpm12_cfg4_iv_torch", M_MOE, MOEDIT_SAMPLER_DDPM, 12, 4, 250, 650, LIN, 0, 0, 1234},
    {"switch_ddpm10_cfg4_iv_torch", M_SWITCH, MOEDIT_SAMPLER_DDPM, 10, 4, 0, 450, LIN, 0, 0, 7},
    {"flow_flow8_cfg2_iv", M_FLOW, MOEDIT_SAMPLER_FLOW, 8, 2, 0.3f, 0.8f, LIN, 0, 0, -1},
};

static float *load(const char *path)
{
    int64_t numel;
    float *v = tu_npy_f32(path, NULL, NULL, &numel);
    cr_assert_eq(numel, LEN, "%s", path);
    return v;
}

static int progress_calls, progress_total;
static void progress(void *user, int step, int total)
{
    cr_assert_eq(step, ++progress_calls);
    progress_total = total;
}

static moedit_model *load_model(const char *base)
{
    char path[512], json[512];
    snprintf(path, sizeof path, "%s.pt", base);
    snprintf(json, sizeof json, "%s.json", base);
    cJSON *j = tu_json_file(json);
    moedit_load_options lo = {.heads = cJSON_GetObjectItem(j, "heads")->valueint,
                              .top_k = cJSON_GetObjectItem(j, "top_k")->valueint};
    cJSON_Delete(j);
    moedit_model *m;
    cr_assert_eq(moedit_model_load(path, &lo, &m), MOEDIT_OK, "%s: %s", path, moedit_last_error());
    return m;
}

Test(solvers, reference_runs)
{
    float *noise = load(SOL "noise.npy");
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const run_case *k = &cases[c];
        moedit_model *m = load_model(k->model);
        moedit_sample_options o;
        moedit_sample_defaults(m, &o);
        char steps[32];
        if (k->sampler == MOEDIT_SAMPLER_DDIM) snprintf(steps, sizeof steps, "%d", k->steps);
        else if (k->sampler == MOEDIT_SAMPLER_DDPM && strstr(k->name, "switch")) snprintf(steps, sizeof steps, "ddim%d", k->steps);
        else snprintf(steps, sizeof steps, "%d", k->steps);
        o.sampler = k->sampler;
        o.steps = steps;
        o.cfg = k->cfg;
        o.cfg_interval = k->lo < k->hi;
        o.cfg_lo = k->lo;
        o.cfg_hi = k->hi;
        o.spacing = k->spacing;
        o.karras = k->karras;
        o.order = k->order;
        o.noise = k->torch_seed < 0 ? noise : NULL;
        o.seed = k->torch_seed < 0 ? 0 : (uint64_t)k->torch_seed;
        o.rng = MOEDIT_RNG_TORCH;
        o.progress = progress;
        progress_calls = 0;
        float z[LEN];
        cr_assert_eq(moedit_sample(m, &o, N, labels, z), MOEDIT_OK, "%s: %s", k->name, moedit_last_error());
        cr_assert_eq(progress_calls, k->steps, "%s: %d evaluations", k->name, progress_calls);
        cr_assert_eq(progress_total, k->steps);
        char path[512];
        snprintf(path, sizeof path, SOL "%s.npy", k->name);
        float *want = load(path);
        double scale, err = tu_max_error(z, want, LEN, &scale);
        cr_assert(err <= 1e-4 * scale, "%s: max error %g of max %g", k->name, err, scale);
        cr_log_info("%s: relative error %.2g", k->name, err / scale);
        free(want);
        moedit_model_free(m);
    }
    free(noise);
}

/* 1e-4 tells the algorithms apart: the three solvers' results differ by far more */
Test(solvers, tolerance_separates_solvers)
{
    static const char *sets[][3] = {{"dit_dpmpp2m_8", "dit_dpmpp3m_8", "dit_unipc_8"},
                                    {"moe_dpmpp2m_16_cfg4", "moe_dpmpp3m_16_cfg4", "moe_unipc_16_cfg4"}};
    for (int s = 0; s < 2; s++)
        for (int a = 0; a < 3; a++)
            for (int b = a + 1; b < 3; b++) {
                char pa[256], pb[256];
                snprintf(pa, sizeof pa, SOL "%s.npy", sets[s][a]);
                snprintf(pb, sizeof pb, SOL "%s.npy", sets[s][b]);
                float *x = load(pa), *y = load(pb);
                double scale, d = tu_max_error(x, y, LEN, &scale);
                cr_assert(d > 1e-2 * scale, "%s vs %s: only %g apart", sets[s][a], sets[s][b], d);
                free(x);
                free(y);
            }
}

/* ---- the interval's cost, with a toy denoiser ---------------------------- */

typedef struct {
    int guided_evals, plain_evals;
} count_ctx;

static int toy(void *vctx, int step, int rows, int null_from, const float *x, const float *t, const int64_t *y,
               float *out)
{
    count_ctx *c = vctx;
    if (null_from < rows) {
        cr_assert_eq(rows, 2 * null_from);
        c->guided_evals++;
    } else {
        cr_assert_eq(rows, 1);
        c->plain_evals++;
    }
    for (int i = 0; i < rows * 2 * 9; i++) out[i] = 0.1f * x[i % (rows * 9)] + 0.01f * t[0] / 1000;
    return 0;
}

Test(solvers, interval_skips_the_null_half)
{
    static const moedit_sampler samplers[] = {MOEDIT_SAMPLER_DDPM, MOEDIT_SAMPLER_DDIM, DPM2, DPM3, UNI,
                                              MOEDIT_SAMPLER_DPM2M_SDE};
    me_sample_shape s = {1, 3, 2, 10};
    const int64_t y[1] = {4};
    for (size_t k = 0; k < sizeof samplers / sizeof samplers[0]; k++) {
        moedit_sample_options o = {0};
        o.sampler = samplers[k];
        o.steps = "20";
        o.cfg = 3;
        o.cfg_channels = 0;
        o.cosine_schedule = 0;
        o.rng = MOEDIT_RNG_NATIVE;
        o.cfg_interval = 1;
        o.cfg_lo = 300;
        o.cfg_hi = 700;
        count_ctx c = {0};
        float z[9];
        cr_assert_eq(me_sample_run(&o, &s, toy, &c, 1, y, z), MOEDIT_OK, "%s", moedit_last_error());
        /* 20 steps about 50 apart: 8 of them in [300, 700] */
        cr_assert_eq(c.guided_evals + c.plain_evals, 20);
        cr_assert(c.guided_evals >= 7 && c.guided_evals <= 9, "%s: %d guided", me_sampler_name(o.sampler),
                  c.guided_evals);
        o.cfg_interval = 0;
        c = (count_ctx){0};
        cr_assert_eq(me_sample_run(&o, &s, toy, &c, 1, y, z), MOEDIT_OK);
        cr_assert_eq(c.guided_evals, 20);
    }
}

/* An interval within the timesteps that still holds none of the run's own
   times (0.2..0.8 between a DDPM run's integer steps, 0.3..0.45 between a
   4-step flow run's quarters) is refused before the first evaluation: it
   once sampled every image unguided. */
Test(solvers, interval_between_the_steps_refused)
{
    static const struct { moedit_sampler sampler; const char *steps; float lo, hi; } cases[] = {
        {MOEDIT_SAMPLER_DDPM, "ddim5", 0.2f, 0.8f}, {MOEDIT_SAMPLER_DDIM, "10", 0.2f, 0.8f},
        {DPM2, "20", 0.2f, 0.8f},   {UNI, "5", 0.2f, 0.8f},
        {MOEDIT_SAMPLER_FLOW, "4", 0.3f, 0.45f}, {MOEDIT_SAMPLER_HEUN, "4", 0.3f, 0.45f},
        {MOEDIT_SAMPLER_MIDPOINT, "4", 0.3f, 0.45f},
    };
    me_sample_shape s = {1, 3, 2, 10};
    const int64_t y[1] = {4};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        moedit_sample_options o = {0};
        o.sampler = cases[k].sampler;
        o.steps = cases[k].steps;
        o.cfg = 3;
        o.rng = MOEDIT_RNG_NATIVE;
        o.cfg_interval = 1;
        o.cfg_lo = cases[k].lo;
        o.cfg_hi = cases[k].hi;
        count_ctx c = {0};
        float z[9];
        cr_assert_eq(me_sample_run(&o, &s, toy, &c, 1, y, z), MOEDIT_EINPUT, "%s: accepted", me_sampler_name(o.sampler));
        cr_assert(strstr(moedit_last_error(), "holds none of the") && strstr(moedit_last_error(), "nothing would be guided"),
                  "%s: %s", me_sampler_name(o.sampler), moedit_last_error());
        cr_assert_eq(c.guided_evals + c.plain_evals, 0, "%s: evaluated before refusing", me_sampler_name(o.sampler));
        o.cfg_hi = 1000;   /* reaching the next step: runs, guided there */
        cr_assert_eq(me_sample_run(&o, &s, toy, &c, 1, y, z), MOEDIT_OK, "%s: %s", me_sampler_name(o.sampler),
                     moedit_last_error());
        cr_assert(c.guided_evals > 0, "%s: nothing guided", me_sampler_name(o.sampler));
        o.cfg = 1;   /* no guidance asked: the interval guides nothing by design */
        o.cfg_hi = cases[k].hi;
        cr_assert_eq(me_sample_run(&o, &s, toy, &c, 1, y, z), MOEDIT_OK, "%s: %s", me_sampler_name(o.sampler),
                     moedit_last_error());
    }
}

Test(solvers, bad_options)
{
    me_sample_shape s = {1, 3, 2, 10};
    const int64_t y[1] = {4};
    count_ctx c = {0};
    float z[9];
    moedit_sample_options o = {0};
    o.sampler = DPM2;
    o.cfg = 3;
    o.rng = MOEDIT_RNG_NATIVE;
    const char *bad_steps[] = {"0", "1001", "ddim25", "10,10", "", "-3"};
    for (size_t i = 0; i < sizeof bad_steps / sizeof bad_steps[0]; i++) {
        o.steps = bad_steps[i];
        cr_assert_eq(me_sample_run(&o, &s, toy, &c, 1, y, z), MOEDIT_EINPUT, "steps '%s'", bad_steps[i]);
    }
    o.steps = "10";
    o.cfg_interval = 1;
    o.cfg_lo = 500;
    o.cfg_hi = 100;
    cr_assert_eq(me_sample_run(&o, &s, toy, &c, 1, y, z), MOEDIT_EINPUT);
    o.cfg_interval = 0;
    o.sampler = UNI;
    o.order = 4;
    cr_assert_eq(me_sample_run(&o, &s, toy, &c, 1, y, z), MOEDIT_EINPUT);
    o.order = 0;
    o.sampler = MOEDIT_SAMPLER_HEUN;
    o.steps = "7";   /* two evaluations a step */
    cr_assert_eq(me_sample_run(&o, &s, toy, &c, 1, y, z), MOEDIT_EINPUT);
    o.sampler = MOEDIT_SAMPLER_DPM2M;
    o.spacing = MOEDIT_SPACING_TRAILING;
    o.steps = "61";   /* numpy's arange makes 62 timesteps here */
    cr_assert_eq(me_sample_run(&o, &s, toy, &c, 1, y, z), MOEDIT_EINPUT);
    cr_assert_eq(c.guided_evals + c.plain_evals, 0);
}

/* diffusers' timesteps for the three spacings and Karras sigmas */
Test(solvers, schedules)
{
    me_solver_schedule sc;
    cr_assert_eq(me_solver_schedule_init(&sc, 0, 10, MOEDIT_SPACING_LINSPACE, 0), MOEDIT_OK);
    static const int lin[10] = {999, 899, 799, 699, 599, 500, 400, 300, 200, 100};
    cr_assert_arr_eq(sc.timestep, lin, sizeof lin);
    cr_assert_eq(sc.sigma[10], 0);
    me_solver_schedule_free(&sc);
    cr_assert_eq(me_solver_schedule_init(&sc, 0, 10, MOEDIT_SPACING_LEADING, 0), MOEDIT_OK);
    static const int lead[10] = {900, 810, 720, 630, 540, 450, 360, 270, 180, 90};
    cr_assert_arr_eq(sc.timestep, lead, sizeof lead);
    me_solver_schedule_free(&sc);
    cr_assert_eq(me_solver_schedule_init(&sc, 0, 10, MOEDIT_SPACING_TRAILING, 0), MOEDIT_OK);
    static const int trail[10] = {999, 899, 799, 699, 599, 499, 399, 299, 199, 99};
    cr_assert_arr_eq(sc.timestep, trail, sizeof trail);
    me_solver_schedule_free(&sc);
    cr_assert_eq(me_solver_schedule_init(&sc, 0, 5, MOEDIT_SPACING_LINSPACE, 1), MOEDIT_OK);
    cr_assert_eq(sc.timestep[0], 999);
    cr_assert(fabsf(sc.sigma[0] - 157.4073f) < 0.05f, "%g", sc.sigma[0]);   /* the largest sigma */
    cr_assert(fabsf(sc.sigma[4] - 0.01f) < 1e-4f, "%g", sc.sigma[4]);       /* the smallest */
    for (int i = 1; i < 5; i++) cr_assert_lt(sc.sigma[i], sc.sigma[i - 1]);
    me_solver_schedule_free(&sc);
}

/* moedit sample with the few-step solvers as a separate process: the flags
   reach the library (a run against tools/solver_reference.py's fixture),
   defaults.json can name a solver, a trace counts one step per model
   evaluation and has null rows only inside the guidance interval, and the
   usage errors: exit 2, one line naming the flag, no output left behind. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "tests/testutil.h"
#include "trace/trace.h"
#include "weights/npy.h"

#define SAM FIXTURES "/sampler/"
#define SOL FIXTURES "/solver/"

static char tmp[64], out_path[128], err_text[8192];

static void setup(void)
{
    tu_tmpdir(tmp, sizeof tmp, "solvers");
    snprintf(out_path, sizeof out_path, "%s/z.npy", tmp);
}

static void teardown(void) { cr_assert_eq(tu_rmtree(tmp), 0); }

TestSuite(solvers, .init = setup, .fini = teardown);

/* Runs MOEDIT_BIN sample with args (NULL-terminated); the exit status. */
static int run(const char *const *args) { return tu_run_cmd("sample", args, tmp, err_text, sizeof err_text); }

static void assert_matches(const char *path, const char *ref) { tu_npy_close(path, ref, 1e-4); }

Test(solvers, unipc_order3_interval_matches_reference)
{
    const char *args[] = {"--model", SOL "model_dit.pt", "--heads", "4", "--no-vae", "--latents-out", out_path,
                          "--sampler", "unipc", "--order", "3", "--steps", "16", "--cfg", "4",
                          "--cfg-interval", "0,500", "--class", "1,7", "--noise", SOL "noise.npy", NULL};
    cr_assert_eq(run(args), 0, "%s", err_text);
    cr_assert_not_null(strstr(err_text, "--sampler unipc --steps 16 --spacing linspace --order 3 --cfg-interval 0,500"),
                       "%s", err_text);
    assert_matches(out_path, SOL "dit_unipc3_16_iv.npy");
}

Test(solvers, karras_and_spacing_flags)
{
    const char *karras[] = {"--model", SAM "model_moe_top2.pt", "--heads", "2", "--no-vae", "--latents-out", out_path,
                            "--sampler", "dpm++2m", "--karras", "--steps", "10", "--cfg", "4", "--class", "1,7",
                            "--noise", SOL "noise.npy", NULL};
    cr_assert_eq(run(karras), 0, "%s", err_text);
    assert_matches(out_path, SOL "moe_dpmp2m_10_cfg4_karras.npy");
    const char *trailing[] = {"--model", SAM "model_moe_top2.pt", "--heads", "2", "--no-vae", "--latents-out", out_path,
                              "--sampler", "unipc", "--spacing", "trailing", "--steps", "10", "--cfg", "4",
                              "--class", "1,7", "--noise", SOL "noise.npy", NULL};
    cr_assert_eq(run(trailing), 0, "%s", err_text);
    assert_matches(out_path, SOL "moe_unipc_10_cfg4_trailing.npy");
}

/* a defaults.json beside the checkpoint may name the solver and its settings */
Test(solvers, defaults_json_names_a_solver)
{
    char model[192], json[192];
    tu_model_copy(tmp, SAM "model_moe_top2.pt", model, sizeof model, json, sizeof json);
    const char *j = "{\"sampler\": \"dpm++3m\", \"steps\": 10, \"spacing\": \"leading\", \"cfg\": 1.5, \"heads\": 2}";
    tu_write_file(json, j, strlen(j));
    const char *args[] = {"--model", model, "--no-vae", "--latents-out", out_path, "--class", "1,7",
                          "--noise", SOL "noise.npy", NULL};
    cr_assert_eq(run(args), 0, "%s", err_text);
    assert_matches(out_path, SOL "moe_dpmp3m_10_cfg15_leading.npy");
    /* the solver's spacing and steps do not stick to another sampler */
    const char *ddim[] = {"--model", model, "--no-vae", "--latents-out", out_path, "--class", "1,7",
                          "--sampler", "ddim", NULL};
    cr_assert_eq(run(ddim), 0, "%s", err_text);
    cr_assert_not_null(strstr(err_text, "--sampler ddim --steps 250 --cfg"), "%s", err_text);
}

/* defaults.json's interval applies with its guidance and goes with it at --cfg 1
   (only the flag is refused without guidance); the repeat line prints the
   settings that ran, digits enough to read back the same floats */
Test(solvers, defaults_json_interval_follows_guidance)
{
    char model[192], json[192];
    tu_model_copy(tmp, SAM "model_moe_top2.pt", model, sizeof model, json, sizeof json);
    const char *j = "{\"sampler\": \"ddim\", \"steps\": 4, \"cfg\": 2, \"cfg_interval\": \"0.1234567,500.25\", \"heads\": 2}";
    tu_write_file(json, j, strlen(j));
    const char *guided[] = {"--model", model, "--no-vae", "--latents-out", out_path, "--class", "1,7",
                            "--cfg", "1.2345678", NULL};
    cr_assert_eq(run(guided), 0, "%s", err_text);
    cr_assert_not_null(strstr(err_text, "--cfg-interval 0.1234567,500.25 --cfg 1.2345678 "), "%s", err_text);
    const char *unguided[] = {"--model", model, "--no-vae", "--latents-out", out_path, "--class", "1,7",
                              "--cfg", "1", NULL};
    cr_assert_eq(run(unguided), 0, "%s", err_text);
    cr_assert_not_null(strstr(err_text, "--steps 4 --cfg 1 "), "%s", err_text);
    cr_assert_null(strstr(err_text, "--cfg-interval"), "%s", err_text);
}

/* one traced step per model evaluation; null rows only inside the interval */
Test(solvers, trace_steps_are_evaluations)
{
    char trace[128];
    snprintf(trace, sizeof trace, "%s/run.trace", tmp);
    const char *args[] = {"--model", SAM "model_moe_qknorm.pt", "--heads", "2", "--no-vae", "--latents-out", out_path,
                          "--sampler", "midpoint", "--steps", "8", "--cfg", "2", "--cfg-interval", "0.3,0.8",
                          "--class", "1,7", "--noise", SOL "noise.npy", "--trace", trace, NULL};
    cr_assert_eq(run(args), 0, "%s", err_text);
    assert_matches(out_path, SOL "flow_midpoint_8_cfg2_iv.npy");
    me_trace_reader *rd;
    cr_assert_eq(me_trace_read_open(&rd, trace), MOEDIT_OK, "%s", moedit_last_error());
    const me_trace_info *info = me_trace_reader_info(rd);
    cr_assert_str_eq(info->sampler, "midpoint");
    cr_assert_eq(info->steps, 8);
    int seen[8] = {0}, nulls[8] = {0};
    for (uint64_t i = 0; i < info->count; i++) {
        me_trace_record r;
        cr_assert_eq(me_trace_read(rd, i, &r), MOEDIT_OK);
        cr_assert(r.step >= 0 && r.step < 8, "step %d", r.step);
        seen[r.step] = 1;
        if (r.is_null) {
            nulls[r.step] = 1;
            cr_assert(r.timestep >= 0.3f && r.timestep <= 0.8f, "null row at t = %g", r.timestep);
        }
    }
    /* times 1, .875, .75, .625, .5, .375, .25, .125: guided at .75 … .375 */
    static const int want_nulls[8] = {0, 0, 1, 1, 1, 1, 0, 0};
    for (int s = 0; s < 8; s++) {
        cr_assert(seen[s], "no records at step %d", s);
        cr_assert_eq(nulls[s], want_nulls[s], "step %d", s);
    }
    me_trace_read_close(rd);
}

static void assert_usage_error(const char *const *args, const char *needle)
{
    cr_assert_eq(run(args), 2, "expected exit 2:\n%s", err_text);
    cr_assert_not_null(strstr(err_text, needle), "stderr lacks '%s':\n%s", needle, err_text);
    cr_assert(tu_one_line(err_text), "not one line:\n%s", err_text);
    struct stat st;
    cr_assert_neq(stat(out_path, &st), 0, "output file left behind");
}

Test(solvers, usage_errors)
{
#define BASE "--model", SAM "model_moe_top2.pt", "--heads", "2", "--no-vae", "--latents-out", out_path
#define FLOW "--model", SAM "model_moe_qknorm.pt", "--heads", "2", "--no-vae", "--latents-out", out_path
    assert_usage_error((const char *[]){BASE, "--sampler", "dpm++4m", NULL}, "--sampler");
    assert_usage_error((const char *[]){FLOW, "--sampler", "dpm++2m", NULL}, "--sampler");
    assert_usage_error((const char *[]){FLOW, "--sampler", "unipc", NULL}, "--sampler");
    assert_usage_error((const char *[]){BASE, "--sampler", "heun", NULL}, "--sampler");
    assert_usage_error((const char *[]){BASE, "--sampler", "dpm++2m", "--steps", "0", NULL}, "--steps");
    assert_usage_error((const char *[]){BASE, "--sampler", "dpm++2m", "--steps", "1001", NULL}, "--steps");
    assert_usage_error((const char *[]){BASE, "--sampler", "unipc", "--steps", "ddim20", NULL}, "--steps");
    assert_usage_error((const char *[]){BASE, "--sampler", "ddim", "--steps", "0", NULL}, "--steps");
    assert_usage_error((const char *[]){BASE, "--sampler", "ddpm", "--steps", "1001", NULL}, "--steps");
    assert_usage_error((const char *[]){FLOW, "--sampler", "heun", "--steps", "7", NULL}, "--steps");
    assert_usage_error((const char *[]){BASE, "--sampler", "dpm++2m", "--spacing", "trailing", "--steps", "61", NULL},
                       "--steps");
    assert_usage_error((const char *[]){BASE, "--sampler", "dpm++2m", "--spacing", "cosine", NULL}, "--spacing");
    assert_usage_error((const char *[]){BASE, "--sampler", "ddpm", "--spacing", "leading", NULL}, "--spacing");
    assert_usage_error((const char *[]){BASE, "--sampler", "ddim", "--karras", NULL}, "--karras");
    assert_usage_error((const char *[]){BASE, "--sampler", "dpm++2m", "--order", "3", NULL}, "--order");
    assert_usage_error((const char *[]){BASE, "--sampler", "unipc", "--order", "4", NULL}, "--order");
    assert_usage_error((const char *[]){BASE, "--cfg-interval", "600,100", NULL}, "--cfg-interval");
    assert_usage_error((const char *[]){BASE, "--cfg-interval", "300,300", NULL}, "--cfg-interval");
    assert_usage_error((const char *[]){BASE, "--cfg-interval", "2000,3000", NULL},
                       "--cfg-interval: [2000, 3000] holds none of the timesteps 0..999");
    assert_usage_error((const char *[]){BASE, "--cfg-interval", "0.2,0.8", NULL},
                       "--cfg-interval: guidance interval [0.2, 0.8] holds none of the 250 model evaluations' times");
    assert_usage_error((const char *[]){BASE, "--cfg-interval", "100", NULL}, "--cfg-interval");
    assert_usage_error((const char *[]){BASE, "--cfg-interval", "a,b", NULL}, "--cfg-interval");
    assert_usage_error((const char *[]){BASE, "--cfg-interval", "100,500,", NULL}, "--cfg-interval");
    assert_usage_error((const char *[]){BASE, "--cfg", "1", "--cfg-interval", "100,500", NULL}, "--cfg-interval");
    assert_usage_error((const char *[]){FLOW, "--cfg-interval", "2,3", NULL}, "--cfg-interval");
#undef BASE
#undef FLOW
}

/* fid-sample with the stochastic solver and an interval: per-row noise
   streams, so the shards merge into the single run byte for byte */
Test(solvers, fid_sample_shards_with_a_solver)
{
#define FS "cd '%s' && '%s' fid-sample --model %s/dit/moe_top2.pt --vae %s/vae/small --sampler dpm++2m-sde " \
           "--steps 6 --cfg 3 --cfg-interval 200,700 --seed 5 --num 6 --batch 2 --threads 1"
    char err[4096];
    cr_assert_eq(tu_shell(err, sizeof err, FS " --npz all.npz", tmp, MOEDIT_BIN, FIXTURES, FIXTURES), 0, "%s", err);
    for (int k = 0; k < 3; k++)
        cr_assert_eq(tu_shell(err, sizeof err, FS " --npz s%d.npz --shard %d/3", tmp, MOEDIT_BIN, FIXTURES, FIXTURES, k, k),
                     0, "%s", err);
    cr_assert_eq(tu_shell(err, sizeof err, "cd '%s' && '%s' npz-merge --out merged.npz s0.npz s1.npz s2.npz", tmp,
                          MOEDIT_BIN), 0, "%s", err);
    char a[192], b[192];
    snprintf(a, sizeof a, "%s/all.npz", tmp);
    snprintf(b, sizeof b, "%s/merged.npz", tmp);
    size_t la, lb;
    char *x = tu_slurp(a, &la), *y = tu_slurp(b, &lb);
    cr_assert(x && y && la == lb && !memcmp(x, y, la), "the merged shards differ from the single run");
    free(x);
    free(y);
#undef FS
}

/* DDPM on a cosine-schedule model without --steps takes the ddim250
   spacing: "250" keeps t = 999, where ᾱ ≈ 2e-9 makes sampling diverge */
Test(solvers, cosine_ddpm_defaults_to_ddim250)
{
    const char *args[] = {"--model", SAM "model_switch_dmoe.pt", "--heads", "3", "--no-vae", "--latents-out", out_path,
                          "--sampler", "ddpm", "--class", "1", NULL};
    cr_assert_eq(run(args), 0, "%s", err_text);
    cr_assert_not_null(strstr(err_text, "--sampler ddpm --steps ddim250 "), "%s", err_text);
}

/* The guidance interval is in the sampler's timesteps: 0..1 for flow, the
   integer steps for DDIM even on a rectified-flow model (the CLI took the
   model's kind, refusing 100,500 there that the library guides by). */
#define FLOW_MODEL "--model", SAM "model_moe_qknorm.pt", "--heads", "2", "--no-vae", "--latents-out", out_path
Test(solvers, guidance_interval_in_the_samplers_timesteps)
{
    const char *ddim[] = {FLOW_MODEL, "--sampler", "ddim", "--steps", "5", "--cfg", "2", "--cfg-interval", "100,500",
                          "--class", "1", NULL};
    cr_assert_eq(run(ddim), 0, "%s", err_text);
    unlink(out_path);
    const char *flow[] = {FLOW_MODEL, "--sampler", "flow", "--steps", "4", "--cfg", "2", "--cfg-interval", "100,500",
                          "--class", "1", NULL};
    assert_usage_error(flow, "[100, 500] holds none of the timesteps 0..1");
}

/* moedit sample as a separate process on tiny DiT-MoE and Switch-DiT models
   (copies of tests/fixtures/dit/ checkpoints), against
   tools/sampler_reference.py runs of the PyTorch reference models (DDIM 10
   steps cfg 4 and rectified flow 8 steps cfg 2 from noise files, DDPM 12
   steps cfg 1.5 with torch's RNG, Switch-DiT with its cosine/all-channel
   defaults), and its usage errors: exit status 2, one line on stderr, no
   output file left behind. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "ops/gemm.h"
#include "tests/testutil.h"
#include "weights/npy.h"

#define SAM FIXTURES "/sampler/"

static char tmp[64], out_path[128], err_text[8192];

static void setup(void)
{
    tu_tmpdir(tmp, sizeof tmp, "sample");
    snprintf(out_path, sizeof out_path, "%s/z.npy", tmp);
}

static void teardown(void) { cr_assert_eq(tu_rmtree(tmp), 0); }

TestSuite(sample, .init = setup, .fini = teardown);

/* Runs MOEDIT_BIN sample with args (NULL-terminated); the exit status. */
static int run(const char *const *args) { return tu_run_cmd("sample", args, tmp, err_text, sizeof err_text); }

static void assert_matches(const char *path, const char *ref) { tu_npy_close(path, ref, 1e-3); }

Test(sample, ddim_moe_matches_reference)
{
    const char *args[] = {"--model", SAM "model_moe_top2.pt", "--heads", "2", "--no-vae", "--latents-out", out_path,
                          "--sampler", "ddim", "--steps", "10", "--cfg", "4", "--class", "1,7",
                          "--noise", SAM "moe_ddim10_cfg4_noise.npy", NULL};
    cr_assert_eq(run(args), 0, "%s", err_text);
    assert_matches(out_path, SAM "moe_ddim10_cfg4.npy");
}

/* --bf16 reaches the model: bfloat16 products (3 significant digits) over
   ten guided steps stay within 2 % of the float32 reference. On a CPU
   without AVX512-BF16, where the library runs float32, a note says so and
   the reproduction line leaves --bf16 out. */
Test(sample, ddim_moe_bf16_near_reference)
{
    const char *args[] = {"--model", SAM "model_moe_top2.pt", "--heads", "2", "--no-vae", "--latents-out", out_path,
                          "--sampler", "ddim", "--steps", "10", "--cfg", "4", "--class", "1,7", "--bf16",
                          "--noise", SAM "moe_ddim10_cfg4_noise.npy", NULL};
    cr_assert_eq(run(args), 0, "%s", err_text);
    const char *note = "note: --bf16 runs float32 here: this CPU has no AVX512-BF16";
    char *line = strstr(err_text, "moedit sample --model"), *end = line ? strchr(line, '\n') : NULL;
    cr_assert(line && end, "no reproduction line: %s", err_text);
    *end = 0;
    if (me_gemm_native(1))
        cr_assert(strstr(line, " --bf16") && !strstr(err_text, note), "the reproduction line names --bf16: %s", line);
    else
        cr_assert(strstr(err_text, note) && !strstr(line, " --bf16"), "no note, or --bf16 reported: %s", err_text);
    double rel = tu_npy_close(out_path, SAM "moe_ddim10_cfg4.npy", 2e-2);
    if (me_gemm_native(1)) cr_assert(rel > 1e-5, "bf16 error %g: were the products float32?", rel);
}

Test(sample, ddpm_moe_torch_rng_matches_reference)
{
    const char *args[] = {"--model", SAM "model_moe_top2.pt", "--heads", "2", "--no-vae", "--latents-out", out_path,
                          "--sampler", "ddpm", "--steps", "12", "--cfg", "1.5", "--seed", "1234",
                          "--rng", "torch", "--class", "1,7", NULL};
    cr_assert_eq(run(args), 0, "%s", err_text);
    cr_assert_not_null(strstr(err_text, "--seed 1234"), "the run is not printed for repeating:\n%s", err_text);
    assert_matches(out_path, SAM "moe_ddpm12_cfg15.npy");
}

Test(sample, flow_qknorm_matches_reference)
{
    const char *args[] = {"--model", SAM "model_moe_qknorm.pt", "--heads", "2", "--no-vae", "--latents-out", out_path,
                          "--sampler", "flow", "--steps", "8", "--cfg", "2", "--class", "1,7",
                          "--noise", SAM "qknorm_flow8_cfg2_noise.npy", NULL};
    cr_assert_eq(run(args), 0, "%s", err_text);
    assert_matches(out_path, SAM "qknorm_flow8_cfg2.npy");
}

/* no --schedule / --cfg-channels: Switch-DiT's defaults (cosine, all channels) */
Test(sample, switch_dit_defaults_match_reference)
{
    const char *args[] = {"--model", SAM "model_switch_dmoe.pt", "--heads", "3", "--no-vae", "--latents-out",
                          out_path, "--steps", "10", "--cfg", "1.5", "--seed", "7", "--class", "1,7", NULL};
    cr_assert_eq(run(args), 0, "%s", err_text);
    cr_assert_not_null(strstr(err_text, "--cfg-channels all"), "%s", err_text);
    cr_assert_not_null(strstr(err_text, "--schedule cosine"), "%s", err_text);
    assert_matches(out_path, SAM "switch_ddpm10_cfg15.npy");
}

/* a defaults.json beside the checkpoint fills the flags left out */
Test(sample, defaults_json)
{
    char model[128], json[128];
    tu_model_copy(tmp, SAM "model_moe_top2.pt", model, sizeof model, json, sizeof json);
    FILE *f = fopen(json, "w");
    fputs("{\"sampler\": \"ddim\", \"steps\": 10, \"cfg\": 4, \"cfg_channels\": 3, \"heads\": 2, "
          "\"schedule\": \"linear\", \"top_k\": 2, \"vae\": \"vae\"}\n", f);
    fclose(f);
    const char *args[] = {"--model", model, "--no-vae", "--latents-out", out_path, "--class", "1,7",
                          "--noise", SAM "moe_ddim10_cfg4_noise.npy", NULL};
    cr_assert_eq(run(args), 0, "%s", err_text);
    assert_matches(out_path, SAM "moe_ddim10_cfg4.npy");
}

static void assert_usage_error(const char *const *args, const char *needle)
{
    cr_assert_eq(run(args), 2, "expected exit 2:\n%s", err_text);
    cr_assert_not_null(strstr(err_text, needle), "stderr lacks '%s':\n%s", needle, err_text);
    cr_assert(tu_one_line(err_text), "not one line:\n%s", err_text);
    struct stat st;
    cr_assert_neq(stat(out_path, &st), 0, "output file left behind");
}

/* a bad value in defaults.json is reported as the file's, not as a flag the
   user never gave, and is never coerced into another value */
Test(sample, defaults_json_errors_name_the_file)
{
    char model[128], json[128];
    tu_model_copy(tmp, SAM "model_moe_top2.pt", model, sizeof model, json, sizeof json);
    const char *cases[][2] = {
        {"{\"heads\": -2}", "defaults.json: \"heads\" is not an integer"},
        {"{\"heads\": 3.7}", "defaults.json: \"heads\" is not an integer"},
        {"{\"order\": 5}", "defaults.json: \"order\" is not an integer from 1 to 3"},
        {"{\"karras\": \"yes\"}", "defaults.json: \"karras\" is not true or false"},
        {"{\"cfg\": 1e300}", "defaults.json: \"cfg\" is not a number >= 1"},
        {"{\"heads\": 2, \"steps\": \"abc\"}", "defaults.json \"steps\": "},
        {"{\"heads\": 2, \"schedule\": \"quad\"}", "defaults.json \"schedule\": 'quad'"},
        {"{\"heads\": 2, \"sampler\": \"euler\"}", "defaults.json \"sampler\": 'euler'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tu_write_file(json, cases[i][0], strlen(cases[i][0]));
        assert_usage_error((const char *[]){"--model", model, "--no-vae", "--latents-out", out_path, NULL}, cases[i][1]);
    }
    /* --steps that the file's sampler, not one the user named, refuses */
    const char *sde = "{\"heads\": 2, \"sampler\": \"dpm++2m-sde\", \"steps\": \"20\"}";
    tu_write_file(json, sde, strlen(sde));
    assert_usage_error((const char *[]){"--model", model, "--no-vae", "--latents-out", out_path, "--steps", "ddim5", NULL},
                       "--steps: dpm++2m-sde takes a plain step count");
    cr_assert(strstr(err_text, "(the sampler from ") && strstr(err_text, "defaults.json \"sampler\"; --sampler picks"),
              "the sampler's source not named:\n%s", err_text);
}

Test(sample, usage_errors)
{
#define BASE "--model", SAM "model_moe_top2.pt", "--heads", "2", "--no-vae", "--latents-out", out_path
    assert_usage_error((const char *[]){BASE, "--steps", "ddimx", NULL}, "steps");
    assert_usage_error((const char *[]){BASE, "--steps", "2000", NULL}, "steps");
    assert_usage_error((const char *[]){BASE, "--sampler", "flow", "--steps", "10,10", NULL}, "steps");
    assert_usage_error((const char *[]){BASE, "--cfg", "0.5", NULL}, "--cfg");
    assert_usage_error((const char *[]){BASE, "--cfg", "x", NULL}, "--cfg");
    assert_usage_error((const char *[]){BASE, "--cfg-channels", "some", NULL}, "--cfg-channels");
    assert_usage_error((const char *[]){BASE, "--sampler", "euler", NULL}, "--sampler");
    assert_usage_error((const char *[]){BASE, "--schedule", "quad", NULL}, "--schedule");
    assert_usage_error((const char *[]){BASE, "--rng", "cuda", NULL}, "--rng");
    assert_usage_error((const char *[]){BASE, "--seed", "-1", NULL}, "--seed");
    assert_usage_error((const char *[]){BASE, "--class", "1,99", NULL}, "--class");
    assert_usage_error((const char *[]){BASE, "--class", "1,,2", NULL}, "--class");
    assert_usage_error((const char *[]){BASE, "--class", "1,2", "--noise", SAM "moe_ddim10_cfg4.npy", "--class", "1,2,3", NULL},
                       "expected float [3,4,8,8] (one row per class), got F32 [2,4,8,8]");
    assert_usage_error((const char *[]){BASE, "--noise", SAM "missing.npy", NULL}, "missing.npy");
    /* NaN noise stopped the run only after its first step */
    float nan_noise[2 * 4 * 8 * 8] = {0};
    nan_noise[77] = NAN;
    cr_assert_eq(me_npy_write(tu_join(tmp, "nan.npy"), ME_F32, 4, (int64_t[]){2, 4, 8, 8}, nan_noise), MOEDIT_OK);
    assert_usage_error((const char *[]){BASE, "--class", "1,7", "--noise", tu_join(tmp, "nan.npy"), NULL},
                       "nan.npy: holds NaN or inf");
    assert_usage_error((const char *[]){BASE, "--eta", "0.5", NULL}, "--eta");
    assert_usage_error((const char *[]){BASE, "--sampler", "ddim", "--eta", "1.5", NULL}, "--eta");
    assert_usage_error((const char *[]){BASE, "--bogus", NULL}, "--bogus");
    assert_usage_error((const char *[]){"--model", SAM "model_moe_top2.pt", "--heads", "2", "--no-vae", "--out", "x.png", NULL}, "--no-vae");
    assert_usage_error((const char *[]){"--model", SAM "model_moe_top2.pt", "--out", "x.png", NULL}, "VAE");
    assert_usage_error((const char *[]){"--model", SAM "nothing.pt", "--no-vae", "--latents-out", out_path, NULL}, "nothing.pt");
    /* a missing checkpoint named as such, not as a missing VAE (it has no defaults.json either) */
    assert_usage_error((const char *[]){"--model", SAM "nothing.pt", "--out", "x.png", NULL},
                       "--model " SAM "nothing.pt: no such file or folder");
    const char *fid[] = {"--model", SAM "nothing.pt", "--num", "2", "--npz", tu_join(tmp, "f.npz"), NULL};
    cr_assert_eq(tu_run_cmd("fid-sample", fid, tmp, err_text, sizeof err_text), 2, "%s", err_text);
    cr_assert(tu_one_line(err_text) && strstr(err_text, "nothing.pt: no such file or folder"), "%s", err_text);
#undef BASE
}

/* Outputs are checked before sampling: a missing folder, a file where a
   folder goes, an empty path, two outputs or an output and an input that
   are one file fail at once, leaving none of the other outputs behind. */
Test(sample, output_paths_checked_first)
{
    char afile[128], nodir_sub[128], nodir_png[128], grid[128], model[128], cmd[512];
    snprintf(afile, sizeof afile, "%s/afile", tmp);
    snprintf(nodir_sub, sizeof nodir_sub, "%s/nodir/sub", tmp);
    snprintf(nodir_png, sizeof nodir_png, "%s/nodir/x.png", tmp);
    snprintf(grid, sizeof grid, "%s/o.png", tmp);
    snprintf(model, sizeof model, "%s/mm.pt", tmp);
    tu_write_file(afile, "x", 1);
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", SAM "model_moe_top2.pt", model);
    cr_assert_eq(system(cmd), 0);
    size_t model_len;
    char *model_bytes = tu_slurp(model, &model_len);
#define BASE "--model", model, "--heads", "2", "--vae", FIXTURES "/vae/small", "--steps", "2", "--latents-out", out_path
    assert_usage_error((const char *[]){BASE, "--outdir", afile, NULL}, "a file, not a folder");
    assert_usage_error((const char *[]){BASE, "--outdir", nodir_sub, NULL}, "nodir");
    assert_usage_error((const char *[]){BASE, "--out", nodir_png, NULL}, "nodir");
    assert_usage_error((const char *[]){BASE, "--outdir", "", NULL}, "--outdir: an empty path");
    assert_usage_error((const char *[]){BASE, "--out", grid, "--trace", grid, NULL}, "--out and --trace");
    assert_usage_error((const char *[]){BASE, "--trace", out_path, NULL}, "--latents-out and --trace");
    assert_usage_error((const char *[]){BASE, "--trace", model, NULL}, "--model and --trace");
    assert_usage_error((const char *[]){BASE, "--outdir", FIXTURES "/vae/small", NULL}, "--vae and --outdir");
#undef BASE
    size_t len;
    char *after = tu_slurp(model, &len);
    cr_assert(after && len == model_len && !memcmp(after, model_bytes, len), "the checkpoint was changed");
    free(after);
    free(model_bytes);
    cr_assert_eq(tu_count_files(tmp), 3, "an output was left behind");   /* afile, mm.pt, stderr */
}

/* decoding through the (tiny) VAE fixture into a grid and per-sample PNGs,
   with the expert trace alongside */
Test(sample, images_and_trace)
{
    char grid[128], dir[128], trace[128], path[192];
    snprintf(grid, sizeof grid, "%s/grid.png", tmp);
    snprintf(dir, sizeof dir, "%s/imgs", tmp);
    snprintf(trace, sizeof trace, "%s/run.trace", tmp);
    const char *args[] = {"--model", SAM "model_moe_top2.pt", "--heads", "2", "--vae", FIXTURES "/vae/small",
                          "--out", grid, "--outdir", dir, "--trace", trace, "--class", "1,7",
                          "--steps", "3", "--latents-out", out_path, NULL};
    cr_assert_eq(run(args), 0, "%s", err_text);
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    snprintf(path, sizeof path, "%s/0001_class7.png", dir);
    const char *pngs[] = {grid, path};
    for (int i = 0; i < 2; i++) {
        unsigned char head[8] = {0};
        FILE *f = fopen(pngs[i], "rb");
        cr_assert_not_null(f, "%s missing", pngs[i]);
        cr_assert_eq(fread(head, 1, 8, f), 8);
        fclose(f);
        cr_assert_eq(memcmp(head, sig, 8), 0, "%s is not a PNG", pngs[i]);
    }
    struct stat st;
    cr_assert_eq(stat(trace, &st), 0);
    cr_assert_gt(st.st_size, 64);
    cr_assert_eq(stat(out_path, &st), 0);
}

/* --out naming the file --outdir writes for a sample (its folder spelled
   another way) is refused before any work; a grid of another name beside
   the samples is written. */
Test(sample, grid_named_as_a_sample_refused)
{
    char dir[128], clash[192], beside[192];
    snprintf(dir, sizeof dir, "%s/imgs", tmp);
    snprintf(clash, sizeof clash, "%s/imgs/../imgs/0001_class7.png", tmp);
    snprintf(beside, sizeof beside, "%s/imgs/grid.png", tmp);
    cr_assert_eq(mkdir(dir, 0755), 0);
#define BASE "--model", SAM "model_moe_top2.pt", "--heads", "2", "--vae", FIXTURES "/vae/small", "--class", "1,7", \
             "--steps", "2", "--outdir", dir
    assert_usage_error((const char *[]){BASE, "--out", clash, NULL}, "is the file --outdir");
    cr_assert_eq(tu_count_files(dir), 0, "an output was written");
    cr_assert_eq(run((const char *[]){BASE, "--out", beside, NULL}), 0, "%s", err_text);
#undef BASE
    cr_assert_eq(tu_count_files(dir), 3, "expected the grid and two samples");
    /* one sample, one image: the summary lines in the singular */
    const char *one[] = {"--model", SAM "model_moe_top2.pt", "--heads", "2", "--vae", FIXTURES "/vae/small",
                         "--class", "1", "--steps", "2", "--outdir", dir, NULL};
    cr_assert_eq(run(one), 0, "%s", err_text);
    cr_assert(strstr(err_text, "sampled 1 latent in") && strstr(err_text, "decoded 1 image in") &&
              strstr(err_text, "wrote 1 image into"), "%s", err_text);
}

/* A grid past 32767 pixels (16 samples of one class in one column, 32-pixel
   images magnified 64 times: 33186 pixels tall) was found only after the
   sampling and the decode; now refused before them, one line naming --out. */
Test(sample, grid_too_tall_refused_before_sampling)
{
    char grid[128];
    snprintf(grid, sizeof grid, "%s/grid.png", tmp);
    assert_usage_error((const char *[]){"--model", SAM "model_moe_top2.pt", "--heads", "2", "--vae",
                                        FIXTURES "/vae/small", "--class", "1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1",
                                        "--steps", "2", "--scale", "64", "--out", grid, NULL},
                       "x33186 pixels");
    cr_assert_not_null(strstr(err_text, "--out"), "%s", err_text);
    struct stat st;
    cr_assert_neq(stat(grid, &st), 0, "a grid was written");
}

/* without --sampler, a qk-norm (rectified flow) model samples with flow */
Test(sample, flow_is_the_qknorm_default)
{
    const char *args[] = {"--model", SAM "model_moe_qknorm.pt", "--heads", "2", "--no-vae", "--latents-out", out_path,
                          "--steps", "8", "--cfg", "2", "--class", "1,7",
                          "--noise", SAM "qknorm_flow8_cfg2_noise.npy", NULL};
    cr_assert_eq(run(args), 0, "%s", err_text);
    cr_assert_not_null(strstr(err_text, "--sampler flow"), "%s", err_text);
    assert_matches(out_path, SAM "qknorm_flow8_cfg2.npy");
}

/* Latents that blew up are named, with the cause, instead of passing as an
   image: the shipped Switch-DiT (cosine schedule) under DDIM's plain "10",
   which starts at t=999 (alpha_bar 2.4e-9), reads about 2.8e3; "ddim10"
   starts at 900 and is left alone, as is fid-sample of the same model at its
   defaults — and the run still writes what upstream would. */
Test(sample, blown_up_latents_are_named)
{
    const char *plain[] = {"--model", "fmnist-switch", "--sampler", "ddim", "--steps", "10", "--class", "1",
                           "--no-vae", "--latents-out", out_path, NULL};
    cr_assert_eq(run(plain), 0, "%s", err_text);
    cr_assert(strstr(err_text, "moedit sample: warning: the latents reach ") &&
              strstr(err_text, "the cosine schedule's step at t=999") && strstr(err_text, "--steps ddimN"),
              "%s", err_text);
    int ndim;
    int64_t shape[4], numel;
    float *z = tu_npy_f32(out_path, &ndim, shape, &numel);
    float peak = 0;
    for (int64_t i = 0; i < numel; i++) peak = fmaxf(peak, fabsf(z[i]));
    free(z);
    cr_assert_gt(peak, 100, "the latents did not blow up (%g): the test no longer shows the case", peak);

    const char *respaced[] = {"--model", "fmnist-switch", "--sampler", "ddim", "--steps", "ddim10", "--class", "1",
                              "--no-vae", "--latents-out", out_path, NULL};
    cr_assert_eq(run(respaced), 0, "%s", err_text);
    cr_assert(!strstr(err_text, "warning"), "%s", err_text);

    char f_npz[128], g_npz[128];   /* in the test's folder, not the working one */
    snprintf(f_npz, sizeof f_npz, "%s/f.npz", tmp);
    snprintf(g_npz, sizeof g_npz, "%s/g.npz", tmp);
    const char *fid[] = {"--model", "fmnist-switch", "--num", "4", "--npz", f_npz, NULL};
    cr_assert_eq(tu_run_cmd("fid-sample", fid, tmp, err_text, sizeof err_text), 0, "%s", err_text);
    cr_assert(!strstr(err_text, "warning"), "%s", err_text);
    const char *fid_plain[] = {"--model", "fmnist-switch", "--sampler", "ddim", "--steps", "10", "--num", "4",
                               "--npz", g_npz, NULL};
    cr_assert_eq(tu_run_cmd("fid-sample", fid_plain, tmp, err_text, sizeof err_text), 0, "%s", err_text);
    cr_assert(strstr(err_text, "moedit fid-sample: warning: the latents reach "), "%s", err_text);
}

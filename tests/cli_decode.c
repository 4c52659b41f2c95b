/* moedit decode end to end: output against PyTorch, PNG output, and bad
   input → exit 2 with one line and nothing left in the output folder. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "moedit.h"
#include "weights/npy.h"
#include "tests/testutil.h"

static char dir[64];

static void setup(void) { tu_tmpdir(dir, sizeof dir, "decode"); }
static void teardown(void) { cr_assert_eq(tu_rmtree(dir), 0); }

/* Runs moedit decode with args; returns the exit status, stderr in err. */
static int run(const char *args, char *err, size_t errsize)
{
    return tu_shell(err, errsize, "%s decode %s", MOEDIT_BIN, args);
}

static int files_in_dir(void) { return tu_count_files(dir); }

#define SMALL FIXTURES "/vae/small"
#define LATENT FIXTURES "/vae/small_latent.npy"

Test(decode, npy_matches_torch, .init = setup, .fini = teardown)
{
    char args[1024], err[512];
    snprintf(args, sizeof args, "--vae %s --latent %s --out %s/out.npy --threads 2", SMALL, LATENT, dir);
    cr_assert_eq(run(args, err, sizeof err), 0, "%s", err);
    char path[128];
    snprintf(path, sizeof path, "%s/out.npy", dir);
    me_array got, want;
    cr_assert_eq(me_npy_read(path, &got), MOEDIT_OK, "%s", moedit_last_error());
    cr_assert_eq(me_npy_read(FIXTURES "/vae/small_expected.npy", &want), MOEDIT_OK);
    cr_assert_eq(got.dtype, ME_F32);
    cr_assert_eq(got.numel, want.numel);
    cr_assert_eq(memcmp(got.shape, want.shape, sizeof got.shape[0] * 4), 0);
    double maxref, maxerr = tu_max_error(got.data, want.data, (size_t)got.numel, &maxref);
    cr_assert(maxerr <= 1e-3 * maxref, "max error %g, max |ref| %g", maxerr, maxref);
    me_array_free(&got);
    me_array_free(&want);
}

Test(decode, time_flag_reports_the_decode, .init = setup, .fini = teardown)
{
    char args[1024], err[512];
    snprintf(args, sizeof args, "--vae %s --latent %s --out %s/out.npy --time", SMALL, LATENT, dir);
    cr_assert_eq(run(args, err, sizeof err), 0, "%s", err);
    double ms = -1;
    const char *at = strstr(err, "decode_ms: ");
    cr_assert(at && sscanf(at, "decode_ms: %lf", &ms) == 1 && ms > 0, "stderr: %s", err);
}

/* --repeat 3 --time: three passes, each timed, the output written once and
   the same as one decode's (bench.sh takes the median of the three). */
Test(decode, repeat_times_every_pass, .init = setup, .fini = teardown)
{
    char args[1024], err[512];
    snprintf(args, sizeof args, "--vae %s --latent %s --out %s/once.npy --threads 2", SMALL, LATENT, dir);
    cr_assert_eq(run(args, err, sizeof err), 0, "%s", err);
    snprintf(args, sizeof args, "--vae %s --latent %s --out %s/thrice.npy --threads 2 --time --repeat 3", SMALL,
             LATENT, dir);
    cr_assert_eq(run(args, err, sizeof err), 0, "%s", err);
    int passes = 0;
    for (const char *at = err; (at = strstr(at, "decode_ms: ")); at++) {
        double ms = -1;
        cr_assert(sscanf(at, "decode_ms: %lf", &ms) == 1 && ms > 0, "stderr: %s", err);
        passes++;
    }
    cr_assert_eq(passes, 3, "stderr: %s", err);
    char path[128];
    me_array once, thrice;
    snprintf(path, sizeof path, "%s/once.npy", dir);
    cr_assert_eq(me_npy_read(path, &once), MOEDIT_OK, "%s", moedit_last_error());
    snprintf(path, sizeof path, "%s/thrice.npy", dir);
    cr_assert_eq(me_npy_read(path, &thrice), MOEDIT_OK, "%s", moedit_last_error());
    cr_assert_eq(once.numel, thrice.numel);
    cr_assert_eq(memcmp(once.data, thrice.data, (size_t)once.numel * sizeof(float)), 0);
    me_array_free(&once);
    me_array_free(&thrice);
    cr_assert_eq(files_in_dir(), 2);
}

Test(decode, png_grid, .init = setup, .fini = teardown)
{
    char args[1024], err[512];
    snprintf(args, sizeof args, "--vae %s --latent %s --out %s/grid.png --scaling-factor 0.5 --cols 1", SMALL,
             LATENT, dir);
    cr_assert_eq(run(args, err, sizeof err), 0, "%s", err);
    char path[128];
    snprintf(path, sizeof path, "%s/grid.png", dir);
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f);
    uint8_t head[26];
    cr_assert_eq(fread(head, 1, sizeof head, f), sizeof head);
    fclose(f);
    cr_assert_eq(memcmp(head, "\x89PNG\r\n\x1a\n", 8), 0);
    int w = head[16] << 24 | head[17] << 16 | head[18] << 8 | head[19];
    int h = head[20] << 24 | head[21] << 16 | head[22] << 8 | head[23];
    cr_assert_eq(w, 20 + 4);            /* one column of 20-pixel tiles, 2-pixel padding */
    cr_assert_eq(h, 2 * 24 + 3 * 2);
    cr_assert_eq(head[25], 0, "grayscale model → grayscale PNG");
    cr_assert_eq(files_in_dir(), 1);
}

static void expect_input_error(const char *args, const char *mention)
{
    char err[512];
    cr_assert_eq(run(args, err, sizeof err), 2, "args: %s\nstderr: %s", args, err);
    cr_assert_not_null(strstr(err, mention), "stderr '%s' does not mention '%s'", err, mention);
    cr_assert_eq(strchr(err, '\n'), err + strlen(err) - 1, "more than one line: %s", err);
    cr_assert_eq(files_in_dir(), 0, "output left behind for: %s", args);
}

Test(decode, bad_input_exit_2, .init = setup, .fini = teardown)
{
    char args[1024], path[128];
    snprintf(args, sizeof args, "--vae %s --latent %s/missing.npy --out %s/o.npy", SMALL, dir, dir);
    expect_input_error(args, "missing.npy");

    snprintf(path, sizeof path, "%s/bad.npy", dir);
    FILE *f = fopen(path, "wb");
    fputs("\x93NUMPY\x01\x00garbage", f);
    fclose(f);
    snprintf(args, sizeof args, "--vae %s --latent %s --out %s/o.png", SMALL, path, dir);
    char err[512];
    cr_assert_eq(run(args, err, sizeof err), 2, "%s", err);
    remove(path);
    cr_assert_eq(files_in_dir(), 0);

    /* Right file, wrong channel count for this VAE (the LDM fixture's latents are fine; 3 channels are not). */
    cr_assert_eq(me_npy_write(path, ME_F32, 4, (int64_t[]){1, 3, 2, 2}, (float[12]){0}), MOEDIT_OK);
    snprintf(args, sizeof args, "--vae %s --latent %s --out %s/o.npy", SMALL, path, dir);
    cr_assert_eq(run(args, err, sizeof err), 2, "%s", err);
    cr_assert_not_null(strstr(err, "bad.npy"), "%s", err);
    remove(path);

    snprintf(args, sizeof args, "--vae %s/no-vae --latent %s --out %s/o.npy", dir, LATENT, dir);
    expect_input_error(args, "no-vae");
    snprintf(args, sizeof args, "--vae %s --latent %s --out %s/o.jpg", SMALL, LATENT, dir);
    expect_input_error(args, "o.jpg");
    snprintf(args, sizeof args, "--vae %s --latent %s --out %s/o.npy --scaling-factor 0", SMALL, LATENT, dir);
    expect_input_error(args, "--scaling-factor");
    snprintf(args, sizeof args, "--vae %s --latent %s --out %s/o.npy --repeat 0", SMALL, LATENT, dir);
    expect_input_error(args, "--repeat");
    snprintf(args, sizeof args, "--vae %s --latent %s --out /nonexistent-dir/o.npy", SMALL, LATENT);
    cr_assert_eq(run(args, err, sizeof err), 2, "%s", err);
    snprintf(args, sizeof args, "--latent %s --out %s/o.npy", LATENT, dir);
    expect_input_error(args, "--vae");
}

/* A config.json scaling_factor beyond float (1e39): once inf, which
   scaled every latent to 0 and decoded those with exit 0; now exit 2 with
   one line naming the folder's config.json (not "<weights file>/config.json"). */
Test(decode, config_scaling_factor_beyond_float, .init = setup, .fini = teardown)
{
    cr_assert_eq(tu_system("mkdir %s/vae && cp %s/diffusion_pytorch_model.bin %s/vae/ && "
                           "sed 's/\"scaling_factor\": 0.5/\"scaling_factor\": 1e39/' %s/config.json > %s/vae/config.json "
                           "&& grep -q 1e39 %s/vae/config.json", dir, SMALL, dir, SMALL, dir, dir), 0);
    char args[1024], err[512], want[128], out[128];
    snprintf(out, sizeof out, "%s/o.npy", dir);
    snprintf(args, sizeof args, "--vae %s/vae --latent %s --out %s", dir, LATENT, out);
    cr_assert_eq(run(args, err, sizeof err), 2, "%s", err);
    snprintf(want, sizeof want, "%s/vae/config.json: scaling_factor", dir);
    cr_assert(tu_one_line(err) && strstr(err, want), "%s", err);
    cr_assert(!tu_exists(out), "an output after a failure");
}

/* A decode that needs more memory than there is (here a 10 MB budget for a
   64×64 latent's ~30 MB of buffers) is refused before it allocates: one
   line, exit 2, nothing written. Not an out-of-memory kill half-way. */
Test(decode, memory_estimate_over_the_limit, .init = setup, .fini = teardown)
{
    char path[128], err[512];
    snprintf(path, sizeof path, "%s/big.npy", dir);
    static float zeros[4 * 64 * 64];
    cr_assert_eq(me_npy_write(path, ME_F32, 4, (int64_t[]){1, 4, 64, 64}, zeros), MOEDIT_OK);
    cr_assert_eq(tu_shell(err, sizeof err, "MOEDIT_MEMORY_LIMIT=10000000 %s decode --vae %s --latent %s --out %s/o.npy",
                          MOEDIT_BIN, SMALL, path, dir), 2, "%s", err);
    cr_assert_not_null(strstr(err, "the VAE decode of 64x64 latents would need"), "%s", err);
    cr_assert_eq(strchr(err, '\n'), err + strlen(err) - 1, "more than one line: %s", err);
    cr_assert_eq(files_in_dir(), 1, "output left behind");
    cr_assert_eq(tu_shell(err, sizeof err, "%s decode --vae %s --latent %s --out %s/o.npy", MOEDIT_BIN, SMALL, path,
                          dir), 0, "%s", err);
}

/* --vae-bf16: decodes within the bf16 bound of tests/vae_decode.c and not
   to the float32 bytes; refused (exit 2, nothing written) where only
   OpenBLAS runs, and by sample when nothing is decoded. */
Test(decode, vae_bf16, .init = setup, .fini = teardown)
{
    char args[1024], err[512], path[128], f32path[128];
    snprintf(path, sizeof path, "%s/b16.npy", dir);
    snprintf(f32path, sizeof f32path, "%s/f32.npy", dir);
    snprintf(args, sizeof args, "--vae %s --latent %s --out %s", SMALL, LATENT, f32path);
    cr_assert_eq(run(args, err, sizeof err), 0, "%s", err);
    snprintf(args, sizeof args, "--vae %s --latent %s --out %s --vae-bf16", SMALL, LATENT, path);
    cr_assert_eq(run(args, err, sizeof err), 0, "%s", err);
    me_array got, f32, want;
    cr_assert_eq(me_npy_read(path, &got), MOEDIT_OK, "%s", moedit_last_error());
    cr_assert_eq(me_npy_read(f32path, &f32), MOEDIT_OK, "%s", moedit_last_error());
    cr_assert_eq(me_npy_read(FIXTURES "/vae/small_expected.npy", &want), MOEDIT_OK);
    cr_assert_eq(got.numel, want.numel);
    double maxref, maxerr = tu_max_error(got.data, want.data, (size_t)got.numel, &maxref);
    cr_assert(maxerr <= 3e-2 * maxref, "max error %g, max |ref| %g", maxerr, maxref);
    cr_assert_neq(memcmp(got.data, f32.data, (size_t)got.numel * sizeof(float)), 0, "--vae-bf16 changed nothing");
    me_array_free(&got);
    me_array_free(&f32);
    me_array_free(&want);

    snprintf(args, sizeof args, "--vae %s --latent %s --out %s/refused.npy --vae-bf16", SMALL, LATENT, dir);
    cr_assert_eq(tu_shell(err, sizeof err, "MOEDIT_NO_AVX2=1 MOEDIT_NO_AVX512=1 %s decode %s", MOEDIT_BIN, args), 2,
                 "%s", err);
    cr_assert(tu_one_line(err) && strstr(err, "bf16"), "stderr: %s", err);
    cr_assert_eq(files_in_dir(), 2);
    cr_assert_eq(tu_shell(err, sizeof err, "%s sample --vae-bf16 --no-vae --latents-out %s/l.npy", MOEDIT_BIN, dir), 2,
                 "%s", err);
    cr_assert(tu_one_line(err) && strstr(err, "--vae-bf16"), "stderr: %s", err);
    cr_assert_eq(files_in_dir(), 2);
}

/* A PNG grid past ME_GRID_MAX_PX (two 1x4096 latents, 4x upscaled, side by
   side: 32774 pixels wide) was found only after the decode (a decode_ms
   line before the error); now refused from the shapes before it: one line
   naming --out and --cols, nothing written. */
Test(decode, png_grid_too_wide_refused_before_decode, .init = setup, .fini = teardown)
{
    char path[128], args[1024];
    snprintf(path, sizeof path, "%s/wide.npy", dir);
    static float zeros[2 * 4 * 1 * 4096];
    cr_assert_eq(me_npy_write(path, ME_F32, 4, (int64_t[]){2, 4, 1, 4096}, zeros), MOEDIT_OK);
    snprintf(args, sizeof args, "--vae %s --latent %s --out %s/grid.png --cols 2 --time", SMALL, path, dir);
    char err[512];
    cr_assert_eq(run(args, err, sizeof err), 2, "%s", err);
    cr_assert(tu_one_line(err) && strstr(err, "--out") && strstr(err, "32774x") && strstr(err, "--cols"),
              "stderr: %s", err);
    cr_assert_eq(files_in_dir(), 1, "output left behind");
    /* one column of the same two fits: the check is the grid's, not the latents' */
    snprintf(args, sizeof args, "--vae %s --latent %s --out %s/grid.png --cols 1", SMALL, path, dir);
    cr_assert_eq(run(args, err, sizeof err), 0, "%s", err);
}

/* --out naming an existing folder was found only when the decoded images
   were written; now refused before the VAE is loaded. */
Test(decode, out_naming_a_folder_refused, .init = setup, .fini = teardown)
{
    char args[1024], err[512];
    cr_assert_eq(tu_system("mkdir %s/o.npy %s/o.png", dir, dir), 0);
    for (int png = 0; png < 2; png++) {
        snprintf(args, sizeof args, "--vae %s --latent %s --out %s/o.%s --time", SMALL, LATENT, dir,
                 png ? "png" : "npy");
        cr_assert_eq(run(args, err, sizeof err), 2, "%s", err);
        cr_assert(tu_one_line(err) && strstr(err, "a folder, not a file"), "stderr: %s", err);
    }
    cr_assert_eq(tu_system("rmdir %s/o.npy %s/o.png", dir, dir), 0);
    cr_assert_eq(files_in_dir(), 0);
}

/* ...and so is a link to a missing file, which me_atomic_open refuses only
   at the write, after the decode. */
Test(decode, out_linking_to_nothing_refused, .init = setup, .fini = teardown)
{
    char args[1024], err[512];
    cr_assert_eq(tu_system("ln -s missing/o.npy %s/o.npy", dir), 0);
    snprintf(args, sizeof args, "--vae %s --latent %s --out %s/o.npy --time", SMALL, LATENT, dir);
    cr_assert_eq(run(args, err, sizeof err), 2, "%s", err);
    cr_assert(tu_one_line(err) && strstr(err, "o.npy: a symbolic link to a missing file") && !strstr(err, "decode_ms"),
              "stderr: %s", err);
    cr_assert_eq(files_in_dir(), 1, "files left behind");
}

/* A subnormal --scaling-factor (1e-38, under FLT_MIN) was reported as "not
   a finite number"; it is finite but too near zero: dividing the latents
   by it overflows them to inf. The message says so. */
Test(decode, subnormal_scaling_factor_named_as_such, .init = setup, .fini = teardown)
{
    char args[1024], err[512];
    snprintf(args, sizeof args, "--vae %s --latent %s --out %s/o.npy --scaling-factor 1e-38", SMALL, LATENT, dir);
    cr_assert_eq(run(args, err, sizeof err), 2, "%s", err);
    cr_assert(tu_one_line(err) && strstr(err, "--scaling-factor") && strstr(err, "smallest normal") &&
                  !strstr(err, "not a finite"),
              "stderr: %s", err);
    cr_assert_eq(files_in_dir(), 0);
}

/* Latents holding NaN are refused as input (they gave a warning-free decode
   failure after the work); finite ones past ±100, which no sampler that
   worked makes, are decoded with one warning line saying so. */
Test(decode, latents_out_of_range_named, .init = setup, .fini = teardown)
{
    char args[1024], path[128], err[1024];
    float z[16];
    snprintf(path, sizeof path, "%s/z.npy", dir);
    for (int i = 0; i < 16; i++) z[i] = 0.5f;
    z[5] = NAN;
    cr_assert_eq(me_npy_write(path, ME_F32, 4, (int64_t[]){1, 4, 2, 2}, z), MOEDIT_OK);
    snprintf(args, sizeof args, "--vae %s --latent %s --out %s/o.npy", SMALL, path, dir);
    cr_assert_eq(run(args, err, sizeof err), 2, "%s", err);
    cr_assert(tu_one_line(err) && strstr(err, "z.npy: the latents hold NaN or inf"), "%s", err);
    cr_assert(!tu_exists(tu_join(dir, "o.npy")));

    z[5] = 150.0f;
    cr_assert_eq(me_npy_write(path, ME_F32, 4, (int64_t[]){1, 4, 2, 2}, z), MOEDIT_OK);
    cr_assert_eq(run(args, err, sizeof err), 0, "%s", err);
    cr_assert(strstr(err, "moedit decode: warning: the latents reach 150 (a model's stay within a few units)"), "%s",
              err);
    cr_assert(tu_exists(tu_join(dir, "o.npy")));
    z[5] = 99.0f;
    cr_assert_eq(me_npy_write(path, ME_F32, 4, (int64_t[]){1, 4, 2, 2}, z), MOEDIT_OK);
    cr_assert_eq(run(args, err, sizeof err), 0, "%s", err);
    cr_assert(!strstr(err, "warning"), "%s", err);
}

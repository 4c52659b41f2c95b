/* `moedit forward` end to end: fixture arrays in, the PyTorch output out;
   bad shapes and dtypes exit 2 with one line naming the file and leave no
   output behind. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cjson/cJSON.h>
#include "weights/npy.h"
#include "tests/testutil.h"

#define DIR FIXTURES "/dit/"

static int run(const char *args, char *err, size_t errcap)
{
    return tu_shell(err, errcap, "%s %s", MOEDIT_BIN, args);
}

/* The fixture's head count (no shape carries it). */
static int heads(const char *variant)
{
    char path[512];
    snprintf(path, sizeof path, DIR "%s.json", variant);
    cJSON *j = tu_json_file(path);
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(j, "heads");
    cr_assert(cJSON_IsNumber(h));
    int v = h->valueint;
    cJSON_Delete(j);
    return v;
}

static const char *tmp_path(const char *name)
{
    static char buf[4][256];
    static int next;
    char *p = buf[next++ % 4];
    snprintf(p, 256, "/tmp/moedit_cli_forward_%d_%s", (int)getpid(), name);
    return p;
}

static void expect_output(const char *out, const char *want_path, double tol)
{
    me_array got, want;
    cr_assert_eq(me_npy_read(out, &got), MOEDIT_OK, "%s", moedit_last_error());
    cr_assert_eq(me_npy_read(want_path, &want), MOEDIT_OK, "%s", moedit_last_error());
    cr_assert_eq(got.dtype, ME_F32);
    cr_assert_eq(got.ndim, want.ndim);
    for (int i = 0; i < got.ndim; i++) cr_assert_eq(got.shape[i], want.shape[i]);
    double maxref, maxdiff = tu_max_error(got.data, want.data, (size_t)got.numel, &maxref);
    cr_expect(maxdiff <= tol * maxref, "relative error %g", maxdiff / maxref);
    me_array_free(&got), me_array_free(&want);
}

Test(cli_forward, writes_the_torch_output)
{
    const char *out = tmp_path("out.npy");
    char args[1024], err[1024];
    snprintf(args, sizeof args, "forward --model " DIR "moe_top2.pt --heads %d --x " DIR "moe_top2_x.npy --t " DIR
             "moe_top2_t.npy --y " DIR "moe_top2_y.npy --out %s --threads 2", heads("moe_top2"), out);
    cr_assert_eq(run(args, err, sizeof err), 0, "%s", err);
    expect_output(out, DIR "moe_top2_out.npy", 1e-4);
    unlink(out);
}

Test(cli_forward, int32_labels)
{
    me_array y;
    cr_assert_eq(me_npy_read(DIR "switch_dmoe_y.npy", &y), MOEDIT_OK);
    int32_t y32[64];
    cr_assert(y.numel <= 64);
    for (int64_t i = 0; i < y.numel; i++) y32[i] = (int32_t)((const int64_t *)y.data)[i];
    const char *yp = tmp_path("y32.npy"), *out = tmp_path("out32.npy");
    cr_assert_eq(me_npy_write(yp, ME_I32, 1, y.shape, y32), MOEDIT_OK);
    me_array_free(&y);
    char args[1024], err[1024];
    snprintf(args, sizeof args, "forward --model " DIR "switch_dmoe.pt --heads %d --x " DIR "switch_dmoe_x.npy --t " DIR
             "switch_dmoe_t.npy --y %s --out %s", heads("switch_dmoe"), yp, out);
    cr_assert_eq(run(args, err, sizeof err), 0, "%s", err);
    expect_output(out, DIR "switch_dmoe_out.npy", 1e-4);
    unlink(out), unlink(yp);
}

Test(cli_forward, shape_mismatch_exits_2_without_output)
{
    /* dit_x is [N,4,8,8]; a 16×16 latent does not fit the 8×8 model. */
    static float x[2 * 4 * 16 * 16];
    const char *xp = tmp_path("x16.npy"), *out = tmp_path("bad.npy");
    cr_assert_eq(me_npy_write(xp, ME_F32, 4, (int64_t[]){2, 4, 16, 16}, x), MOEDIT_OK);
    char args[1024], err[1024];
    snprintf(args, sizeof args, "forward --model " DIR "dit.pt --heads %d --x %s --t " DIR "dit_t.npy --y " DIR
             "dit_y.npy --out %s", heads("dit"), xp, out);
    cr_expect_eq(run(args, err, sizeof err), 2);
    cr_expect_not_null(strstr(err, "x16.npy"), "%s", err);
    cr_expect_not_null(strstr(err, "[N,4,8,8]"), "%s", err);
    struct stat st;
    cr_expect_neq(stat(out, &st), 0, "no output after a failure");
    unlink(xp);

    /* Row counts must agree: t has 4 rows, x 2. */
    cr_assert_eq(me_npy_write(xp, ME_F32, 4, (int64_t[]){2, 4, 8, 8}, x), MOEDIT_OK);
    cr_expect_eq(run(args, err, sizeof err), 2);
    cr_expect_not_null(strstr(err, "dit_t.npy"), "%s", err);
    unlink(xp);
}

Test(cli_forward, float_labels_and_missing_flags_exit_2)
{
    char args[1024], err[1024];
    snprintf(args, sizeof args, "forward --model " DIR "dit.pt --x " DIR "dit_x.npy --t " DIR
             "dit_t.npy --y " DIR "dit_t.npy --out %s", tmp_path("never.npy"));
    cr_expect_eq(run(args, err, sizeof err), 2);
    cr_expect_not_null(strstr(err, "int64 or int32"), "%s", err);
    cr_expect_eq(run("forward --model " DIR "dit.pt", err, sizeof err), 2);
    cr_expect_eq(run("forward --model " DIR "dit.pt --x", err, sizeof err), 2);
}

Test(cli_forward, bench_prints_time_and_gflops)
{
    char args[512], err[1024];
    snprintf(args, sizeof args, "bench --model " DIR "moe_top2.pt --heads %d --batch 2 --iters 3 > %s",
             heads("moe_top2"), tmp_path("bench.txt"));
    cr_assert_eq(run(args, err, sizeof err), 0, "%s", err);
    FILE *f = fopen(tmp_path("bench.txt"), "r");
    cr_assert_not_null(f);
    double ms = -1, gf = -1;
    cr_expect_eq(fscanf(f, "forward_ms: %lf\ngflops: %lf", &ms, &gf), 2);
    /* and the host and the share of the same run's peak */
    char line[512];
    int cpu = 0, pct = 0, peak = 0;
    while (fgets(line, sizeof line, f)) {
        cpu |= !strncmp(line, "cpu: ", 5) && strstr(line, "family") && strstr(line, "L1d");
        pct |= !strncmp(line, "pct_of_peak: ", 13);
        double p = 0;
        if (sscanf(line, "peak_fp32_gflops: %lf", &p) == 1) peak = p > 0;
    }
    cr_expect(cpu && pct && peak, "cpu line %d, pct_of_peak %d, peak_fp32_gflops > 0 %d", cpu, pct, peak);
    fclose(f);
    unlink(tmp_path("bench.txt"));
    cr_expect(ms > 0 && gf > 0, "forward_ms %g gflops %g", ms, gf);
}

/* x with a NaN, x at 3e38 (finite, but the forward overflows) and an
   output that is not .npy: exit 2, one line, no output file. */
Test(cli_forward, non_finite_x_and_output_exit_2_without_output)
{
    me_array x;
    cr_assert_eq(me_npy_read(DIR "dit_x.npy", &x), MOEDIT_OK, "%s", moedit_last_error());
    cr_assert_eq(x.dtype, ME_F32);
    float *v = malloc(sizeof(float) * (size_t)x.numel);
    cr_assert_not_null(v);
    const char *xp = tmp_path("xbad.npy"), *out = tmp_path("bad_out.npy");
    char args[1024], err[1024];
    snprintf(args, sizeof args, "forward --model " DIR "dit.pt --heads %d --x %s --t " DIR "dit_t.npy --y " DIR
             "dit_y.npy --out %s", heads("dit"), xp, out);
    struct stat st;
    const char *says[2] = {"NaN or inf", "overflows"};
    for (int c = 0; c < 2; c++) {
        memcpy(v, x.data, sizeof(float) * (size_t)x.numel);
        if (c == 0) v[x.numel - 3] = NAN;
        else for (int64_t i = 0; i < x.numel; i++) v[i] = 3e38f;
        cr_assert_eq(me_npy_write(xp, ME_F32, x.ndim, x.shape, v), MOEDIT_OK);
        cr_expect_eq(run(args, err, sizeof err), 2, "case %d: %s", c, err);
        cr_expect(tu_one_line(err) && strstr(err, "xbad.npy") && strstr(err, says[c]), "case %d: %s", c, err);
        cr_expect_neq(stat(out, &st), 0, "case %d: an output after a failure", c);
    }
    unlink(xp);
    free(v);
    me_array_free(&x);

    const char *txt = tmp_path("o.txt");
    snprintf(args, sizeof args, "forward --model " DIR "dit.pt --heads %d --x " DIR "dit_x.npy --t " DIR
             "dit_t.npy --y " DIR "dit_y.npy --out %s", heads("dit"), txt);
    cr_expect_eq(run(args, err, sizeof err), 2, "%s", err);
    cr_expect(tu_one_line(err) && strstr(err, ".npy"), "%s", err);
    cr_expect_neq(stat(txt, &st), 0, "a .txt written");
}

/* Values out of range name the flag and the range (70000 was reported as
   "must be positive"); --peak runs no model, so a model or batch given
   with it is refused rather than ignored. */
Test(cli_forward, bench_flag_errors_name_the_value)
{
    char err[1024];
    cr_expect_eq(run("bench --model " DIR "moe_top2.pt --batch 70000", err, sizeof err), 2, "%s", err);
    cr_expect(tu_one_line(err) && strstr(err, "--batch: 70000") && strstr(err, "65536"), "%s", err);
    cr_expect_eq(run("bench --model " DIR "moe_top2.pt --iters 0", err, sizeof err), 2, "%s", err);
    cr_expect(tu_one_line(err) && strstr(err, "--iters: 0"), "%s", err);
    const char *with_peak[] = {"--model " DIR "moe_top2.pt", "--batch 4", "--iters 3", "--bf16", "--heads 2"};
    for (size_t i = 0; i < sizeof with_peak / sizeof with_peak[0]; i++) {
        char args[512];
        snprintf(args, sizeof args, "bench --peak %s > /dev/null", with_peak[i]);
        cr_expect_eq(run(args, err, sizeof err), 2, "--peak %s: %s", with_peak[i], err);
        cr_expect(tu_one_line(err) && strstr(err, "--peak"), "--peak %s: %s", with_peak[i], err);
    }
}

/* A NaN timestep: the message gives its value and row ("timestep 1 is not
   finite" read as a timestep of value 1). */
Test(cli_forward, non_finite_timestep_names_value_and_row)
{
    me_array t;
    cr_assert_eq(me_npy_read(DIR "moe_top2_t.npy", &t), MOEDIT_OK, "%s", moedit_last_error());
    cr_assert(t.dtype == ME_F32 && t.numel >= 2 && t.numel <= 64);
    float tv[64];
    memcpy(tv, t.data, sizeof(float) * (size_t)t.numel);
    tv[1] = NAN;
    const char *tp = tmp_path("tnan.npy"), *out = tmp_path("tnan_out.npy");
    cr_assert_eq(me_npy_write(tp, ME_F32, 1, t.shape, tv), MOEDIT_OK);
    me_array_free(&t);
    char args[1024], err[1024];
    snprintf(args, sizeof args, "forward --model " DIR "moe_top2.pt --heads %d --x " DIR "moe_top2_x.npy --t %s --y "
             DIR "moe_top2_y.npy --out %s", heads("moe_top2"), tp, out);
    cr_expect_eq(run(args, err, sizeof err), 2, "%s", err);
    cr_expect(tu_one_line(err) && strstr(err, "timestep nan (row 1)"), "%s", err);
    struct stat st;
    cr_expect_neq(stat(out, &st), 0, "an output after a failure");
    unlink(tp);
}

/* --out naming --x: once the forward replaced its own input with the
   output, exit 0; now exit 2 before loading anything, the input kept. */
Test(cli_forward, out_naming_an_input_exits_2_and_keeps_it)
{
    me_array x;
    cr_assert_eq(me_npy_read(DIR "moe_top2_x.npy", &x), MOEDIT_OK, "%s", moedit_last_error());
    const char *xp = tmp_path("x_in_out.npy");
    cr_assert_eq(me_npy_write(xp, x.dtype, x.ndim, x.shape, x.data), MOEDIT_OK);
    char args[1024], err[1024];
    snprintf(args, sizeof args, "forward --model " DIR "moe_top2.pt --heads %d --x %s --t " DIR "moe_top2_t.npy --y "
             DIR "moe_top2_y.npy --out %s", heads("moe_top2"), xp, xp);
    cr_expect_eq(run(args, err, sizeof err), 2, "%s", err);
    cr_expect(tu_one_line(err) && strstr(err, "--x and --out"), "%s", err);
    me_array kept;
    cr_assert_eq(me_npy_read(xp, &kept), MOEDIT_OK, "%s", moedit_last_error());
    cr_expect(kept.numel == x.numel && !memcmp(kept.data, x.data, sizeof(float) * (size_t)x.numel),
              "the input was overwritten");
    me_array_free(&kept), me_array_free(&x);
    unlink(xp);
}

/* --out naming an existing folder: once found only when the output was
   written, after the model load and the forward; now exit 2 with one line
   naming the folder before anything is loaded. */
Test(cli_forward, out_naming_a_folder_exits_2_before_the_work)
{
    const char *out = tmp_path("folder.npy");
    cr_assert_eq(mkdir(out, 0700), 0);
    char args[1024], err[1024];
    snprintf(args, sizeof args, "forward --model " DIR "moe_top2.pt --heads %d --x " DIR "moe_top2_x.npy --t " DIR
             "moe_top2_t.npy --y " DIR "moe_top2_y.npy --out %s", heads("moe_top2"), out);
    cr_expect_eq(run(args, err, sizeof err), 2, "%s", err);
    cr_expect(tu_one_line(err) && strstr(err, "--out") && strstr(err, "a folder, not a file"), "%s", err);
    struct stat st;
    cr_expect(stat(out, &st) == 0 && S_ISDIR(st.st_mode), "the folder was replaced");
    rmdir(out);
}

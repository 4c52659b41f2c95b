/* moedit fid / npz-merge / fid-sample end to end.

   fid: the counter-based Inception weights (tests/fid_weights.h) are written
   to a temporary safetensors file (the real pt_inception .pth is not in the
   repository); FID, IS and the features are compared with PyTorch/NumPy
   (tests/fixtures/fid/scores.npy, features_a.npy).
   fid-sample: the tiny DiT-MoE fixture (tests/fixtures/dit/moe_top2.pt,
   8×8×4 latents) decoded by the tiny VAE (tests/fixtures/vae/small, 1
   channel, ×4) into 32×32 grayscale-as-RGB images; three shards merged must
   equal one run byte for byte, a run killed with SIGKILL then resumed must
   equal an uninterrupted one (also when only the final file was left to
   write), and a run on batch workers (one batch per thread) a one-thread
   run, also when memory holds fewer copies of the model than threads. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "fid/inception.h"
#include "ops/conv_winograd.h"
#include "tests/fid_weights.h"
#include "tests/testutil.h"
#include "weights/formats.h"
#include "weights/npy.h"

static char dir[64];

static void setup(void) { tu_tmpdir(dir, sizeof dir, "cli_fid"); }

static void teardown(void)
{
    if (tu_rmtree(dir)) cr_log_warn("could not remove %s", dir);
}

/* Runs `moedit args` in the temporary folder; stdout and stderr go to
   files there. Returns the exit status. */
static int moedit(const char *fmt, ...)
{
    char args[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    return tu_system("cd '%s' && '%s' %s > out.txt 2> err.txt", dir, MOEDIT_BIN, args);
}

/* moedit with every file it writes held below `bytes` (TU_FILES_BELOW). */
static int moedit_files_below(long bytes, const char *fmt, ...)
{
    char args[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    return tu_system("cd '%s' && " TU_FILES_BELOW "'%s' %s > out.txt 2> err.txt", dir, bytes, MOEDIT_BIN, args);
}

static char *slurp(const char *name, size_t *len) { return tu_slurp(tu_join(dir, name), len); }
static int exists(const char *name) { return tu_exists(tu_join(dir, name)); }

static void same_file(const char *a, const char *b)
{
    size_t la, lb;
    char *x = slurp(a, &la), *y = slurp(b, &lb);
    cr_assert(x && y, "missing %s or %s", a, b);
    cr_assert(la == lb && !memcmp(x, y, la), "%s and %s differ", a, b);
    free(x);
    free(y);
}

/* One line on stderr. */
static void one_line_error(void)
{
    char *e = slurp("err.txt", NULL);
    cr_assert(tu_one_line(e), "stderr is not one line: '%s'", e ? e : "");
    free(e);
}

static double value_after(const char *text, const char *key)
{
    const char *p = strstr(text, key);
    cr_assert_not_null(p, "no '%s' in: %s", key, text);
    return atof(p + strlen(key));
}

TestSuite(cli_fid, .init = setup, .fini = teardown, .timeout = 900);

/* The counter-based Inception weights as dir/inception.safetensors. */
static void write_inception(void)
{
    me_tensors *ts = random_weights(0);
    char path[600];
    snprintf(path, sizeof path, "%s/inception.safetensors", dir);
    cr_assert_eq(me_write_safetensors(ts, path, ME_F32), 0, "%s", moedit_last_error());
    me_tensors_free(ts);
}

Test(cli_fid, fid_matches_pytorch_and_reuses_statistics)
{
    char path[600];
    write_inception();
    cr_assert_eq(moedit("fid --inception inception.safetensors --samples %s/fid/images_a.npz --ref "
                        "%s/fid/images_b.npz --features-out f.npy --stats-out s.npz --batch 3", FIXTURES, FIXTURES),
                 0, "%s", slurp("err.txt", NULL));
    char *out = slurp("out.txt", NULL);
    me_array want;
    snprintf(path, sizeof path, "%s/fid/scores.npy", FIXTURES);
    cr_assert_eq(me_npy_read(path, &want), 0);
    const double *scores = want.data;
    double fid = value_after(out, "FID: "), is = value_after(out, "IS: ");
    cr_log_info("cli fid %.6f (numpy %.6f), IS %.6f (numpy %.6f)", fid, scores[0], is, scores[1]);
    cr_expect_lt(fabs(fid - scores[0]) / scores[0], 1e-5);
    cr_expect_lt(fabs(is - scores[1]), 1e-5);
    free(out);

    /* the features written are PyTorch's */
    me_array f, ref;
    snprintf(path, sizeof path, "%s/f.npy", dir);
    cr_assert_eq(me_npy_read(path, &f), 0);
    snprintf(path, sizeof path, "%s/fid/features_a.npy", FIXTURES);
    cr_assert_eq(me_npy_read(path, &ref), 0);
    cr_assert_eq(f.numel, ref.numel);
    double mx, err = tu_max_error(f.data, ref.data, (size_t)f.numel, &mx);
    cr_expect_lt(err / mx, 1e-3);
    me_array_free(&f);
    me_array_free(&ref);

    /* statistics as the reference (ADM layout): the same distance, swapped */
    cr_assert_eq(moedit("fid --inception inception.safetensors --samples %s/fid/images_b.npz --ref s.npz", FIXTURES),
                 0, "%s", slurp("err.txt", NULL));
    out = slurp("out.txt", NULL);
    cr_expect_lt(fabs(value_after(out, "FID: ") - scores[0]) / scores[0], 1e-5, "%s", out);
    free(out);
    me_array_free(&want);
}

static void write_batch(const char *name, me_dtype img_dtype, int n, const int64_t *labels);

Test(cli_fid, bad_inputs_fail_cleanly)
{
    char path[600];
    /* a truncated npz: exit 2, one line, before any weights are read */
    size_t n;
    snprintf(path, sizeof path, "%s/fid/images_a.npz", FIXTURES);
    FILE *in = fopen(path, "rb");
    char *buf = malloc(20000);
    n = fread(buf, 1, 20000, in);
    fclose(in);
    snprintf(path, sizeof path, "%s/bad.npz", dir);
    FILE *o = fopen(path, "wb");
    fwrite(buf, 1, n / 2, o);
    fclose(o);
    free(buf);
    cr_assert_eq(moedit("fid --inception none.pth --samples bad.npz --ref %s/fid/images_b.npz", FIXTURES), 2);
    one_line_error();
    cr_assert_eq(moedit("fid --inception none.pth --samples %s/fid/images_a.npz --ref bad.npz", FIXTURES), 2);
    one_line_error();
    cr_assert_eq(moedit("fid --inception %s/fid/conv1a_only.pth --samples %s/fid/images_a.npz --ref %s/fid/images_b.npz",
                        FIXTURES, FIXTURES, FIXTURES), 2);
    one_line_error();
    cr_assert_eq(moedit("fid --samples x.npz"), 2);
    one_line_error();
    /* merge: mismatched image shapes, no output left behind */
    cr_assert_eq(moedit("npz-merge --out m.npz %s/fid/images_a.npz %s/fid/images_b.npz", FIXTURES, FIXTURES), 2);
    one_line_error();
    cr_assert(!exists("m.npz"));
    cr_assert_eq(moedit("npz-merge --out m.npz bad.npz"), 2);
    one_line_error();
    /* merge: one file named twice (another path to it too) would repeat its images */
    cr_assert_eq(moedit("npz-merge --out m.npz %s/fid/images_a.npz %s/fid/../fid/images_a.npz", FIXTURES, FIXTURES), 2);
    one_line_error();
    char *err = slurp("err.txt", NULL);
    cr_assert(strstr(err, "are the same file"), "%s", err);
    free(err);
    cr_assert(!exists("m.npz"));
    cr_assert_eq(moedit("fid-sample --npz x.npz --num 4 --shard 3/3"), 2);
    one_line_error();
    /* one image has no covariance */
    int64_t label = 0;
    write_batch("one.npz", ME_U8, 1, &label);
    cr_assert_eq(moedit("fid --inception none.pth --samples one.npz --ref %s/fid/images_b.npz", FIXTURES), 2);
    one_line_error();
    err = slurp("err.txt", NULL);
    cr_assert(strstr(err, "holds 1 image (need at least 2)"), "%s", err);
    free(err);
}

/* dir/name: arr_0 of n 2x2 RGB images of dtype img_dtype (all zero) and
   arr_1 = labels. */
static void write_batch(const char *name, me_dtype img_dtype, int n, const int64_t *labels)
{
    float img[4 * 2 * 2 * 3] = {0};   /* room for up to 4 images of 4-byte elements */
    cr_assert(n <= 4 && me_dtype_size(img_dtype) <= sizeof *img);
    me_zip_writer w;
    cr_assert_eq(me_zip_writer_open(&w, tu_join(dir, name)), MOEDIT_OK, "%s", moedit_last_error());
    cr_assert_eq(me_npz_add(&w, "arr_0", img_dtype, 4, (int64_t[]){n, 2, 2, 3}, img), MOEDIT_OK);
    cr_assert_eq(me_npz_add(&w, "arr_1", ME_I64, 1, (int64_t[]){n}, labels), MOEDIT_OK);
    cr_assert_eq(me_zip_writer_finish(&w), MOEDIT_OK, "%s", moedit_last_error());
}

static void merge_refused(const char *inputs, const char *needle)
{
    cr_assert_eq(moedit("npz-merge --out m.npz %s", inputs), 2, "%s merged", inputs);
    one_line_error();
    char *err = slurp("err.txt", NULL);
    cr_assert(strstr(err, needle), "'%s' lacks '%s'", err, needle);
    free(err);
    cr_assert(!exists("m.npz"), "%s left m.npz", inputs);
}

/* npz-merge takes only class labels that are not negative... */
Test(cli_fid, merge_refuses_negative_labels)
{
    write_batch("good.npz", ME_U8, 2, (int64_t[]){0, 1});
    write_batch("neg.npz", ME_U8, 3, (int64_t[]){1, 0, -1});
    merge_refused("good.npz neg.npz", "neg.npz: arr_1[2] is -1");
    merge_refused("neg.npz", "neg.npz: arr_1[2] is -1");
    /* float labels too (np.float32 class ids) */
    float img[2 * 2 * 2 * 3] = {0}, labels[2] = {3.0f, -1.0f};
    me_zip_writer w;
    cr_assert_eq(me_zip_writer_open(&w, tu_join(dir, "negf.npz")), MOEDIT_OK, "%s", moedit_last_error());
    cr_assert_eq(me_npz_add(&w, "arr_0", ME_U8, 4, (int64_t[]){2, 2, 2, 3}, img), MOEDIT_OK);
    cr_assert_eq(me_npz_add(&w, "arr_1", ME_F32, 1, (int64_t[]){2}, labels), MOEDIT_OK);
    cr_assert_eq(me_zip_writer_finish(&w), MOEDIT_OK, "%s", moedit_last_error());
    merge_refused("good.npz negf.npz", "negf.npz: arr_1[1] is -1");
}

/* dir/name: arr_0 uint8 zeros of the given shape (at most 96 bytes), no labels. */
static void write_images(const char *name, int ndim, const int64_t *shape)
{
    uint8_t img[96] = {0};
    int64_t bytes = 1;
    for (int i = 0; i < ndim; i++) bytes *= shape[i];
    cr_assert(bytes <= (int64_t)sizeof img);
    me_zip_writer w;
    cr_assert_eq(me_zip_writer_open(&w, tu_join(dir, name)), MOEDIT_OK, "%s", moedit_last_error());
    cr_assert_eq(me_npz_add(&w, "arr_0", ME_U8, ndim, shape, img), MOEDIT_OK);
    cr_assert_eq(me_zip_writer_finish(&w), MOEDIT_OK, "%s", moedit_last_error());
}

/* ...and only uint8 images [N, H, W, 3 or 1], the format fid and eval read. */
Test(cli_fid, merge_refuses_what_is_not_images)
{
    write_images("four.npz", 4, (int64_t[]){2, 2, 2, 4});
    write_images("flat.npz", 2, (int64_t[]){2, 12});
    write_images("wide.npz", 5, (int64_t[]){1, 2, 2, 3, 2});
    write_images("empty_side.npz", 4, (int64_t[]){2, 0, 2, 3});
    merge_refused("four.npz", "four.npz: arr_0 is [2,2,2,4], not images [N, H, W, 3]");
    merge_refused("flat.npz", "flat.npz: arr_0 is [2,12], not images");
    merge_refused("wide.npz", "wide.npz: arr_0 is [1,2,2,3,2], not images");
    merge_refused("empty_side.npz", "empty_side.npz: arr_0 holds images of 0x2 (sides 1 to 8192)");
    /* one-channel batches, as eval reads them, merge */
    write_images("gray.npz", 3, (int64_t[]){2, 2, 2});
    write_images("gray3.npz", 3, (int64_t[]){3, 2, 2});
    cr_assert_eq(moedit("npz-merge --out m.npz gray.npz gray3.npz"), 0, "%s", slurp("err.txt", NULL));
    unlink(tu_join(dir, "m.npz"));

    write_batch("good.npz", ME_U8, 2, (int64_t[]){0, 1});
    write_batch("bool.npz", ME_BOOL, 2, (int64_t[]){0, 1});
    write_batch("f32.npz", ME_F32, 2, (int64_t[]){0, 1});
    merge_refused("good.npz bool.npz", "bool.npz: arr_0 is BOOL, not uint8");
    merge_refused("bool.npz", "bool.npz: arr_0 is BOOL, not uint8");
    merge_refused("f32.npz", "f32.npz: arr_0 is F32, not uint8");
    write_batch("good2.npz", ME_U8, 1, (int64_t[]){5});
    cr_assert_eq(moedit("npz-merge --out m.npz good.npz good2.npz"), 0, "%s", slurp("err.txt", NULL));
}

/* dir/name: 2048-d statistics, mu 0 and sigma the identity, but for
   mu[mu_at] = mu_v (mu_at >= 0) and sigma[s_at, s_at] = s_v (s_at >= 0). */
static void write_stats(const char *name, int mu_at, float mu_v, int s_at, float s_v)
{
    const int d = ME_INCEPTION_DIM;
    float *mu = calloc(d, sizeof *mu), *sigma = calloc((size_t)d * d, sizeof *sigma);
    cr_assert(mu && sigma);
    for (int i = 0; i < d; i++) sigma[(size_t)i * d + i] = 1;
    if (mu_at >= 0) mu[mu_at] = mu_v;
    if (s_at >= 0) sigma[(size_t)s_at * d + s_at] = s_v;
    me_zip_writer w;
    cr_assert_eq(me_zip_writer_open(&w, tu_join(dir, name)), 0, "%s", moedit_last_error());
    cr_assert_eq(me_npz_add(&w, "mu", ME_F32, 1, (int64_t[]){d}, mu), 0);
    cr_assert_eq(me_npz_add(&w, "sigma", ME_F32, 2, (int64_t[]){d, d}, sigma), 0);
    cr_assert_eq(me_zip_writer_finish(&w), 0, "%s", moedit_last_error());
    free(mu);
    free(sigma);
}

static void err_has(const char *what)
{
    char *e = slurp("err.txt", NULL);
    cr_expect(e && strstr(e, what), "'%s' not in: %s", what, e ? e : "");
    free(e);
}

/* Statistics no features could have (a NaN mean, a negative variance) are
   refused with the file named, not turned into "FID: nan" or a FID < 0;
   so is a network whose batch norm has a negative variance. */
Test(cli_fid, impossible_statistics_and_weights_exit_2)
{
    write_inception();
    write_stats("st_nan.npz", 7, NAN, -1, 0);
    write_stats("st_neg.npz", -1, 0, 100, -1000);
    const char *refs[2][2] = {{"st_nan.npz", "'mu'[7] is nan"}, {"st_neg.npz", "negative variance"}};
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(moedit("fid --inception inception.safetensors --samples %s/fid/images_a.npz --ref %s", FIXTURES,
                            refs[i][0]), 2, "%s", refs[i][0]);
        one_line_error();
        err_has(refs[i][0]);
        err_has(refs[i][1]);
    }

    me_tensors *ts = random_weights(0);
    ((float *)me_tensors_find(ts, "Mixed_7c.branch_pool.bn.running_var")->data)[0] = -0.25f;
    cr_assert_eq(me_write_safetensors(ts, tu_join(dir, "bad.safetensors"), ME_F32), 0, "%s", moedit_last_error());
    me_tensors_free(ts);
    cr_assert_eq(moedit("fid --inception bad.safetensors --samples %s/fid/images_a.npz --ref %s/fid/images_b.npz "
                        "--features-out f.npy", FIXTURES, FIXTURES), 2);
    one_line_error();
    err_has("Mixed_7c.branch_pool.bn.running_var");
    cr_assert(!exists("f.npy"), "features written after a failure");
}

/* bench --inception: the same network timed on given images, its figures
   per image from the network's own count (PyTorch's, tests/fid_inception.c). */
Test(cli_fid, bench_times_the_features)
{
    write_inception();
    cr_assert_eq(moedit("bench --inception inception.safetensors --images %s/fid/images_a.npz --batch 3 --iters 2",
                        FIXTURES), 0, "%s", slurp("err.txt", NULL));
    char *out = slurp("out.txt", NULL);
    double ips = value_after(out, "images_per_s: "), gflops = value_after(out, "gflops: ");
    cr_expect_gt(ips, 0, "%s", out);
    /* gflops = the best rate × 11.426 GFLOP, both printed rounded (to 0.1 and 0.01) */
    cr_expect_leq(fabs(gflops - ips * 11.42646496), 0.05 + 0.005 * 11.42646496 + 1e-9, "%s", out);
    cr_expect_eq(value_after(out, "gflop_per_image: "), 11.43, "%s", out);
    /* fewer multiplied where this CPU runs Winograd (the count: tests/fid_inception.c) */
    op_conv_shape wino = {64, 96, 3, 3, 1, 1, 1, 0};
    cr_expect_eq(value_after(out, "gflop_multiplied_per_image: "), op_winograd_ok(&wino) ? 8.37 : 11.43, "%s", out);
    /* the best pass is reported, the median beside it; the share is of the printed peak:
       gflops, the peak and the share are each printed to 0.1, so the share lies within
       what the rounded pair allows. (A bound of 0.05 for the peak's rounding, used before,
       is too tight where the peak is low, as under ASan: 43.3 % of 8.6 / 19.7 failed.) */
    cr_expect_leq(value_after(out, "median_images_per_s: "), ips, "%s", out);
    double pct = value_after(out, "pct_of_peak: "), peak = value_after(out, "peak_fp32_gflops: ");
    cr_expect_geq(pct, 100 * (gflops - 0.05) / (peak + 0.05) - 0.05 - 1e-9, "%s", out);
    cr_expect_leq(pct, 100 * (gflops + 0.05) / (peak - 0.05) + 0.05 + 1e-9, "%s", out);
    cr_expect(strstr(out, "images: 4 (") && strstr(out, "batch: 3 ") && strstr(out, "peak_fp32_gflops: "), "%s", out);
    free(out);

    cr_assert_eq(moedit("bench --inception inception.safetensors"), 2);
    one_line_error();
    cr_assert_eq(moedit("bench --inception inception.safetensors --images %s/fid/images_a.npz --bf16", FIXTURES), 2);
    one_line_error();
    cr_assert_eq(moedit("bench --inception %s/fid/conv1a_only.pth --images %s/fid/images_a.npz", FIXTURES, FIXTURES), 2);
    one_line_error();
    cr_assert_eq(moedit("bench --inception inception.safetensors --images %s/fid/manifest.txt", FIXTURES), 2);
    one_line_error();
}

#define SAMPLE "fid-sample --model %s/dit/moe_top2.pt --vae %s/vae/small --steps 4 --cfg 1.5 --seed 11 --num %d --batch %d"

Test(cli_fid, shards_merge_into_the_single_run)
{
    cr_assert_eq(moedit(SAMPLE " --npz all.npz --labels random", FIXTURES, FIXTURES, 10, 3), 0, "%s",
                 slurp("err.txt", NULL));
    for (int k = 0; k < 3; k++)
        cr_assert_eq(moedit(SAMPLE " --npz s%d.npz --labels random --shard %d/3", FIXTURES, FIXTURES, 10, 3, k, k), 0,
                     "%s", slurp("err.txt", NULL));
    cr_assert_eq(moedit("npz-merge --out merged.npz s0.npz s1.npz s2.npz"), 0, "%s", slurp("err.txt", NULL));
    same_file("merged.npz", "all.npz");
    cr_assert(!exists("all.npz.partial") && !exists("all.npz.state"));

    me_npz z;
    me_array img, lab;
    char path[600];
    snprintf(path, sizeof path, "%s/all.npz", dir);
    cr_assert_eq(me_npz_open(path, &z), 0);
    cr_assert_eq(me_npz_get(&z, "arr_0", &img), 0);
    cr_assert_eq(me_npz_get(&z, "arr_1", &lab), 0);
    cr_assert(img.dtype == ME_U8 && img.ndim == 4 && img.shape[0] == 10 && img.shape[1] == 32 &&
              img.shape[2] == 32 && img.shape[3] == 3);
    cr_assert(lab.dtype == ME_I64 && lab.ndim == 1 && lab.shape[0] == 10);
    const uint8_t *px = img.data;
    for (int64_t i = 0; i < img.numel; i += 3) cr_assert(px[i] == px[i + 1] && px[i] == px[i + 2]);
    for (int i = 0; i < 10; i++) cr_assert(((const int64_t *)lab.data)[i] >= 0 && ((const int64_t *)lab.data)[i] < 10);
    me_array_free(&img);
    me_array_free(&lab);
    me_npz_close(&z);
}

/* The tiny model samples one batch per thread: with --threads 3, three
   workers share 4 batches (the last one short); the file equals a
   one-thread run's byte for byte. */
Test(cli_fid, batch_workers_equal_one_thread)
{
    cr_assert_eq(moedit(SAMPLE " --npz one.npz --threads 1", FIXTURES, FIXTURES, 11, 3), 0, "%s",
                 slurp("err.txt", NULL));
    char *err = slurp("err.txt", NULL);
    cr_assert(err && !strstr(err, "at a time"), "%s", err);
    free(err);
    cr_assert_eq(moedit(SAMPLE " --npz three.npz --threads 3", FIXTURES, FIXTURES, 11, 3), 0, "%s",
                 slurp("err.txt", NULL));
    err = slurp("err.txt", NULL);
    cr_assert(err && strstr(err, "3 batches at a time (one per thread)"), "%s", err);
    free(err);
    same_file("one.npz", "three.npz");
}

/* MOEDIT_MEMORY_LIMIT counts what the run holds already, so a budget for one
   copy (the model's weights, the activations of 512 rows and the decoder's
   buffers: ~14.5 MB) but not two (~29.5 MB) leaves the second thread's copy
   unloaded, and the run goes on with one batch at a time to the same file.
   27 MB holds two copies' weights and activations (~24.5 MB) but not their
   decoder buffers: those are checked before the batches too, not at the
   first decode, where the run used to fail half-way. */
Test(cli_fid, batch_workers_fall_back_to_what_fits_in_memory)
{
    char args[1000];
    snprintf(args, sizeof args, SAMPLE " --threads 2", FIXTURES, FIXTURES, 512, 256);
    const char *run = "cd '%s' && MOEDIT_MEMORY_LIMIT=%d '%s' %s --npz %s 2> err.txt";
    cr_assert_eq(tu_system(run, dir, 40000000, MOEDIT_BIN, args, "two.npz"), 0, "%s", slurp("err.txt", NULL));
    char *err = slurp("err.txt", NULL);
    cr_assert(err && strstr(err, "2 batches at a time"), "%s", err);
    free(err);
    cr_assert_eq(tu_system(run, dir, 27000000, MOEDIT_BIN, args, "one.npz"), 0, "%s", slurp("err.txt", NULL));
    err = slurp("err.txt", NULL);
    cr_assert(err && strstr(err, "256 per batch") && !strstr(err, "at a time"), "%s", err);
    free(err);
    same_file("one.npz", "two.npz");
}

/* Samples done so far according to the state file, or -1. */
static long state_done(const char *name) { return tu_state_done(tu_join(dir, name)); }

Test(cli_fid, resume_after_sigkill_equals_an_uninterrupted_run)
{
    cr_assert_eq(moedit(SAMPLE " --npz ref.npz", FIXTURES, FIXTURES, 12, 2), 0, "%s", slurp("err.txt", NULL));
    char args[1000];
    snprintf(args, sizeof args, SAMPLE " --npz run.npz", FIXTURES, FIXTURES, 12, 2);
    /* killed once at least one batch is checkpointed and before the end */
    int killed;
    long done = tu_kill_when_done(dir, MOEDIT_BIN, args, "run.npz.state", 2, 6000, &killed);
    cr_log_info("killed after %ld of 12 samples", done);
    cr_assert(killed, "the run ended before it could be killed");
    cr_assert(!exists("run.npz"), "a final file after a kill");
    cr_assert(done >= 2 && done < 12);
    /* a different setting is refused, the same one resumes */
    cr_assert_eq(moedit(SAMPLE " --npz run.npz --resume", FIXTURES, FIXTURES, 12, 4), 2);
    one_line_error();
    cr_assert_eq(moedit(SAMPLE " --npz run.npz --resume", FIXTURES, FIXTURES, 12, 2), 0, "%s", slurp("err.txt", NULL));
    char *err = slurp("err.txt", NULL);
    cr_assert(strstr(err, "resuming"), "%s", err);
    free(err);
    same_file("run.npz", "ref.npz");
    cr_assert(!exists("run.npz.partial") && !exists("run.npz.state"));

    /* balanced labels (the default): sample i is class i mod 10 */
    me_npz z;
    me_array lab;
    char path[600];
    snprintf(path, sizeof path, "%s/run.npz", dir);
    cr_assert_eq(me_npz_open(path, &z), 0);
    cr_assert_eq(me_npz_get(&z, "arr_1", &lab), 0);
    cr_assert_eq(lab.numel, 12);
    for (int i = 0; i < 12; i++) cr_assert_eq(((const int64_t *)lab.data)[i], i % 10);
    me_array_free(&lab);
    me_npz_close(&z);
}

/* ref.npz from an uninterrupted run, then the same run into run.npz with
   its files held a byte below ref.npz's size (a disk filling up at the
   end): every batch done (the partial file holds only the images), the
   final write failed (status 2). */
static void every_batch_done_but_the_file(void)
{
    cr_assert_eq(moedit(SAMPLE " --npz ref.npz", FIXTURES, FIXTURES, 12, 2), 0, "%s", slurp("err.txt", NULL));
    long below = (long)tu_file_size(tu_join(dir, "ref.npz")) - 1;
    cr_assert_eq(moedit_files_below(below, SAMPLE " --npz run.npz", FIXTURES, FIXTURES, 12, 2), 2);
}

/* Every batch done but the final file not written (the disk full at the
   end): status 2 with the error as the last line, the partial file
   and the state kept with all samples done; --resume then only writes the
   file, the same as an uninterrupted run's. */
Test(cli_fid, resume_with_every_batch_done)
{
    every_batch_done_but_the_file();
    char *err = slurp("err.txt", NULL), *line = err ? strstr(err, "\nmoedit: run.npz") : NULL;
    const char *end = line ? strchr(line + 1, '\n') : NULL;
    cr_assert(end && !end[1], "the last line is not the error: %s", err);
    free(err);
    cr_assert_eq(state_done("run.npz.state"), 12);
    cr_assert(!exists("run.npz"), "a final file cut short");
    cr_assert_eq(moedit(SAMPLE " --npz run.npz --resume", FIXTURES, FIXTURES, 12, 2), 0, "%s", slurp("err.txt", NULL));
    same_file("run.npz", "ref.npz");
    cr_assert(!exists("run.npz.partial") && !exists("run.npz.state"));
}

/* A partial file shorter than its state says (a copy cut short, a disk that
   lost the tail) is refused with both lengths, never padded with zeros that
   would pass for images; a longer one is cut back to the state's count. */
Test(cli_fid, resume_refuses_a_short_partial)
{
    every_batch_done_but_the_file();
    cr_assert_eq(state_done("run.npz.state"), 12);
    const long full = 12L * 32 * 32 * 3;
    struct stat st;
    cr_assert_eq(stat(tu_join(dir, "run.npz.partial"), &st), 0);
    cr_assert_eq(st.st_size, full);

    cr_assert_eq(tu_system("cd '%s' && cp run.npz.partial keep && truncate -s %ld run.npz.partial", dir, full - 5000),
                 0);
    cr_assert_eq(moedit(SAMPLE " --npz run.npz --resume", FIXTURES, FIXTURES, 12, 2), 2);
    one_line_error();
    char *err = slurp("err.txt", NULL), want[160];
    snprintf(want, sizeof want, "run.npz.partial has %ld bytes, run.npz.state says %ld", full - 5000, full);
    cr_assert(strstr(err, want), "%s", err);
    free(err);
    cr_assert(!exists("run.npz"));
    cr_assert_eq(stat(tu_join(dir, "run.npz.partial"), &st), 0);
    cr_assert_eq(st.st_size, full - 5000, "the partial file was changed");

    /* the tail of a batch in flight beyond the state's count is dropped */
    cr_assert_eq(tu_system("cd '%s' && cp keep run.npz.partial && head -c 777 keep >> run.npz.partial", dir), 0);
    cr_assert_eq(moedit(SAMPLE " --npz run.npz --resume", FIXTURES, FIXTURES, 12, 2), 0, "%s", slurp("err.txt", NULL));
    same_file("run.npz", "ref.npz");
    cr_assert(!exists("run.npz.partial") && !exists("run.npz.state"));
}

#define SAMPLE_W "fid-sample --model w.safetensors --vae %s/vae/small --steps 4 --cfg 1.5 --seed 11 --num 12 --batch 2"

/* The state names the weights by content as well as by path: other weights
   put behind the same path (a checkpoint overwritten by training) are
   refused instead of resumed into a file of the old one's samples, the
   same weights written again resume; a state from a build that named the
   weights by path only still resumes, saying the weights go unchecked. */
Test(cli_fid, resume_refuses_other_weights_behind_the_same_path)
{
    const char *to_f32 = "convert %s/dit/moe_top2.pt --out w.safetensors",
               *to_f16 = "convert %s/dit/moe_top2.pt --out w.safetensors --dtype f16";
    cr_assert_eq(moedit(to_f32, FIXTURES), 0, "%s", slurp("err.txt", NULL));
    cr_assert_eq(moedit(SAMPLE_W " --npz ref.npz", FIXTURES), 0, "%s", slurp("err.txt", NULL));
    long below = (long)tu_file_size(tu_join(dir, "ref.npz")) - 1;   /* the final write fails */
    cr_assert_eq(moedit_files_below(below, SAMPLE_W " --npz run.npz", FIXTURES), 2);
    cr_assert_eq(state_done("run.npz.state"), 12);

    cr_assert_eq(moedit(to_f16, FIXTURES), 0, "%s", slurp("err.txt", NULL));
    cr_assert_eq(moedit(SAMPLE_W " --npz run.npz --resume", FIXTURES), 2);
    one_line_error();
    char *err = slurp("err.txt", NULL);
    cr_assert(strstr(err, "from a run with other settings"), "%s", err);
    free(err);
    cr_assert(!exists("run.npz"));

    /* the state as an older build wrote it: no weights= on its settings line */
    cr_assert_eq(moedit(to_f32, FIXTURES), 0, "%s", slurp("err.txt", NULL));
    cr_assert_eq(tu_system("cd '%s' && cp run.npz.state keep && sed -i 's/ weights=[0-9a-f]* vae_weights=[0-9a-f]*$//' "
                           "run.npz.state && ! grep -q weights= run.npz.state", dir), 0);
    cr_assert_eq(tu_system("cd '%s' && cp run.npz.partial keep.partial", dir), 0);
    cr_assert_eq(moedit(SAMPLE_W " --npz run.npz --resume", FIXTURES), 0, "%s", slurp("err.txt", NULL));
    err = slurp("err.txt", NULL);
    cr_assert(strstr(err, "named the weights by path only"), "%s", err);
    free(err);
    same_file("run.npz", "ref.npz");

    /* and the state of this build, with the same weights converted again */
    cr_assert_eq(tu_system("cd '%s' && rm run.npz && mv keep run.npz.state && mv keep.partial run.npz.partial", dir), 0);
    cr_assert_eq(moedit(SAMPLE_W " --npz run.npz --resume", FIXTURES), 0, "%s", slurp("err.txt", NULL));
    err = slurp("err.txt", NULL);
    cr_assert(strstr(err, "resuming") && !strstr(err, "path only"), "%s", err);
    free(err);
    same_file("run.npz", "ref.npz");
}

static ino_t inode_of(const char *name) { return tu_inode(tu_join(dir, name)); }

/* --resume with no state and a finished OUT.npz of the same shard, settings
   and weights (a script rerun after some shards finished, a requeued array
   task that had finished) keeps the file instead of sampling it again; other
   settings, other weights behind the same path, or no --resume sample anew
   (the file is written anew: another inode). */
Test(cli_fid, resume_keeps_a_finished_file)
{
    cr_assert_eq(moedit("convert %s/dit/moe_top2.pt --out w.safetensors", FIXTURES), 0, "%s", slurp("err.txt", NULL));
    cr_assert_eq(moedit(SAMPLE_W " --npz run.npz --resume", FIXTURES), 0, "%s", slurp("err.txt", NULL));
    ino_t ino = inode_of("run.npz");
    cr_assert_eq(moedit(SAMPLE_W " --npz run.npz --resume", FIXTURES), 0, "%s", slurp("err.txt", NULL));
    char *err = slurp("err.txt", NULL);
    cr_assert(strstr(err, "run.npz: already holds samples 0..11 of these settings and weights: kept") &&
                  !strstr(err, "samples/s"),
              "%s", err);
    free(err);
    cr_assert_eq(inode_of("run.npz"), ino, "the finished file was written again");
    cr_assert(!exists("run.npz.partial") && !exists("run.npz.state"));

    cr_assert_eq(moedit(SAMPLE_W " --npz run.npz --resume --shard 1/3", FIXTURES), 0, "%s", slurp("err.txt", NULL));
    cr_assert_neq(inode_of("run.npz"), ino, "another shard kept the whole run's file");
    ino = inode_of("run.npz");
    cr_assert_eq(moedit(SAMPLE_W " --npz run.npz --resume --shard 1/3 --steps 5", FIXTURES), 0, "%s",
                 slurp("err.txt", NULL));
    cr_assert_neq(inode_of("run.npz"), ino, "other steps kept the file");
    ino = inode_of("run.npz");
    cr_assert_eq(moedit("convert %s/dit/moe_top2.pt --out w.safetensors --dtype f16", FIXTURES), 0, "%s",
                 slurp("err.txt", NULL));
    cr_assert_eq(moedit(SAMPLE_W " --npz run.npz --resume --shard 1/3 --steps 5", FIXTURES), 0, "%s",
                 slurp("err.txt", NULL));
    cr_assert_neq(inode_of("run.npz"), ino, "other weights behind the same path kept the file");
    ino = inode_of("run.npz");
    cr_assert_eq(moedit(SAMPLE_W " --npz run.npz --shard 1/3 --steps 5", FIXTURES), 0, "%s", slurp("err.txt", NULL));
    cr_assert_neq(inode_of("run.npz"), ino, "a run without --resume kept the file");
}

/* An --npz that is a link to a missing file is refused before the work (it
   was found by the final write, after every batch), leaving nothing. */
Test(cli_fid, npz_linking_to_nothing_refused_before_the_work)
{
    cr_assert_eq(symlink("missing/run.npz", tu_join(dir, "run.npz")), 0);
    cr_assert_eq(moedit(SAMPLE " --npz run.npz", FIXTURES, FIXTURES, 4, 2), 2);
    one_line_error();
    char *err = slurp("err.txt", NULL);
    cr_assert(strstr(err, "--npz run.npz: a symbolic link to a missing file"), "%s", err);
    free(err);
    cr_assert(!exists("run.npz.lock") && !exists("run.npz.partial") && !exists("run.npz.state"));
    cr_assert_eq(tu_count_files(dir), 3, "files left behind");   /* the link, out.txt, err.txt */
}

/* The output and the trace on one path are refused before the lock, the
   partial file or the state appear. */
Test(cli_fid, npz_and_trace_on_one_path_refused)
{
    cr_assert_eq(moedit(SAMPLE " --npz a.npz --trace ./a.npz", FIXTURES, FIXTURES, 4, 2), 2);
    one_line_error();
    char *err = slurp("err.txt", NULL);
    cr_assert(strstr(err, "--npz and --trace name the same file"), "%s", err);
    free(err);
    cr_assert(!exists("a.npz") && !exists("a.npz.lock") && !exists("a.npz.partial") && !exists("a.npz.state"));
    cr_assert_eq(moedit(SAMPLE " --npz a.npz --trace a.npz.partial", FIXTURES, FIXTURES, 4, 2), 2);
    one_line_error();
    cr_assert(!exists("a.npz") && !exists("a.npz.lock") && !exists("a.npz.partial") && !exists("a.npz.state"));
}

/* fid's outputs are checked against its inputs before the work: --stats-out
   naming the samples replaced the images with their statistics (exit 0). */
Test(cli_fid, outputs_naming_inputs_refused)
{
    cr_assert_eq(tu_system("cp %s/fid/images_a.npz %s/a.npz && cp %s/fid/images_b.npz %s/b.npz", FIXTURES, dir,
                           FIXTURES, dir), 0);
    const off_t size = tu_file_size(tu_join(dir, "a.npz"));
    const char *outs[][2] = {{"--stats-out a.npz", "--samples and --stats-out name the same file"},
                             {"--features-out b.npz", "--ref and --features-out name the same file"},
                             {"--stats-out o.npz --features-out o.npz", "--features-out and --stats-out name the same"},
                             {"--stats-out nowhere/s.npz", "--stats-out nowhere/s.npz"}};
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(moedit("fid --inception none.pth --samples a.npz --ref b.npz %s", outs[i][0]), 2, "%s",
                     outs[i][0]);
        one_line_error();
        char *err = slurp("err.txt", NULL);
        cr_assert(strstr(err, outs[i][1]), "%s: %s", outs[i][0], err);
        free(err);
    }
    cr_assert_eq(tu_file_size(tu_join(dir, "a.npz")), size, "the samples were overwritten");
    cr_assert(!exists("o.npz"));
}

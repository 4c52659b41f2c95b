/* moedit eval end to end against an independent implementation of the ADM
   evaluator (tools/adm_evaluator_reference.py; fixtures from
   tools/make_eval_fixtures.py) on the counter-based random Inception
   (tests/fid_weights.h, written to a temporary safetensors file).

   Tolerances (the issue's): FID and sFID 1e-3 relative, Inception Score
   1e-3 relative, Precision and Recall within 0.01. The random network's
   softmax is nearly flat (IS ≈ 1.004), where a relative 1e-3 on IS would
   accept almost anything, so log IS (the mean KL) is held to 1e-3 relative
   as well. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "fid/eval.h"
#include "fid/inception.h"
#include "tests/fid_weights.h"
#include "tests/testutil.h"
#include "weights/formats.h"
#include "weights/npy.h"

static char dir[64];

static void setup(void)
{
    tu_tmpdir(dir, sizeof dir, "cli_eval");
    me_tensors *ts = random_weights(0);
    cr_assert_eq(me_write_safetensors(ts, tu_join(dir, "inc.safetensors"), ME_F32), 0, "%s", moedit_last_error());
    me_tensors_free(ts);
}

static void teardown(void)
{
    if (tu_rmtree(dir)) cr_log_warn("could not remove %s", dir);
}

static int moedit(const char *fmt, ...)
{
    char args[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    return tu_system("cd '%s' && '%s' %s > out.txt 2> err.txt", dir, MOEDIT_BIN, args);
}

static char *slurp(const char *name) { return tu_slurp(tu_join(dir, name), NULL); }
static int exists(const char *name) { return tu_exists(tu_join(dir, name)); }

static void one_line_error(void)
{
    char *e = slurp("err.txt");
    cr_assert(tu_one_line(e), "stderr is not one line: '%s'", e ? e : "");
    free(e);
}

#define EX FIXTURES "/eval/"
#define EVAL "eval --inception inc.safetensors "

static const double *expected(void)
{
    static me_array a;
    if (!a.data) cr_assert_eq(me_npy_read(EX "expected.npy", &a), 0, "%s", moedit_last_error());
    cr_assert(a.dtype == ME_F64 && a.numel == 30);
    return a.data;
}

/* Python's repr(float) in its positional range. */
static void py_repr(double v, char *buf, size_t cap)
{
    for (int p = 1; p <= 17; p++) {
        snprintf(buf, cap, "%.*g", p, v);
        if (strtod(buf, NULL) == v) break;
    }
    if (!strpbrk(buf, ".e")) strncat(buf, ".0", cap - strlen(buf) - 1);
}

/* out.txt is exactly the evaluator's five lines, matching expected row. */
static void check_output(int row, const char *what)
{
    static const char *keys[5] = {"Inception Score: ", "FID: ", "sFID: ", "Precision: ", "Recall: "};
    const double *e = expected() + 5 * row;
    char *out = slurp("out.txt"), *p = out;
    cr_assert_not_null(out);
    double v[5];
    for (int i = 0; i < 5; i++) {
        cr_assert(!strncmp(p, keys[i], strlen(keys[i])), "%s: line %d is not '%s…':\n%s", what, i + 1, keys[i], out);
        p += strlen(keys[i]);
        char *end;
        v[i] = strtod(p, &end);
        cr_assert(end > p && *end == '\n', "%s: line %d: %s", what, i + 1, out);
        if (i >= 3) {   /* a share of images: its repr is exact */
            char want[64];
            py_repr(e[i], want, sizeof want);
            if (fabs(v[i] - e[i]) < 1e-12)
                cr_expect(!strncmp(p, want, strlen(want)) && end - p == (long)strlen(want), "%s: '%.*s' is not '%s'",
                          what, (int)(end - p), p, want);
        }
        p = end + 1;
    }
    cr_assert_eq(*p, 0, "%s: more than five lines:\n%s", what, out);
    cr_log_info("%s: IS %.6f (%.6f) FID %.6f (%.6f) sFID %.6f (%.6f) P %.3f (%.3f) R %.3f (%.3f)", what, v[0], e[0],
                v[1], e[1], v[2], e[2], v[3], e[3], v[4], e[4]);
    cr_expect_lt(fabs(v[0] - e[0]) / e[0], 1e-3, "%s IS", what);
    cr_expect_lt(fabs(log(v[0]) - log(e[0])) / log(e[0]), 1e-3, "%s log IS", what);
    cr_expect_lt(fabs(v[1] - e[1]) / e[1], 1e-3, "%s FID", what);
    cr_expect_lt(fabs(v[2] - e[2]) / e[2], 1e-3, "%s sFID", what);
    cr_expect_leq(fabs(v[3] - e[3]), 0.01, "%s Precision", what);
    cr_expect_leq(fabs(v[4] - e[4]), 0.01, "%s Recall", what);
    free(out);
}

/* An .npz of ref.npz's images plus the statistics members of stats_file. */
static void adm_reference(const char *out, const char *stats_file, int spatial_too)
{
    me_npz imgs, st;
    me_array a;
    cr_assert_eq(me_npz_open(EX "ref.npz", &imgs), 0);
    cr_assert_eq(me_npz_get(&imgs, "arr_0", &a), 0);
    cr_assert_eq(me_npz_open(tu_join(dir, stats_file), &st), 0, "%s", moedit_last_error());
    me_zip_writer w;
    cr_assert_eq(me_zip_writer_open(&w, tu_join(dir, out)), 0);
    cr_assert_eq(me_npz_add(&w, "arr_0", ME_U8, a.ndim, a.shape, a.data), 0);
    static const char *names[4] = {"mu", "sigma", "mu_s", "sigma_s"};
    for (int i = 0; i < (spatial_too ? 4 : 2); i++) {
        me_array m;
        cr_assert_eq(me_npz_get(&st, names[i], &m), 0, "%s", moedit_last_error());
        cr_assert_eq(me_npz_add(&w, names[i], m.dtype, m.ndim, m.shape, m.data), 0);
        me_array_free(&m);
    }
    cr_assert_eq(me_zip_writer_finish(&w), 0);
    me_array_free(&a);
    me_npz_close(&imgs);
    me_npz_close(&st);
}

TestSuite(cli_eval, .init = setup, .fini = teardown, .timeout = 1800);

Test(cli_eval, matches_the_evaluator_and_honours_stored_statistics)
{
    /* adm preprocessing, images on both sides; the reference kept as stats */
    cr_assert_eq(moedit(EVAL "--samples " EX "samples.npz --ref " EX "ref.npz --features-out fs.npz --stats-out rs.npz "
                        "--json m.json --batch 4"), 0, "%s", slurp("err.txt"));
    check_output(0, "adm");
    char *err = slurp("err.txt");
    cr_assert(strstr(err, "img/s") && strstr(err, "ETA"), "no progress: %s", err);
    free(err);
    cJSON *j = tu_json_file(tu_join(dir, "m.json"));
    const char *num[5] = {"inception_score", "fid", "sfid", "precision", "recall"};
    for (int i = 0; i < 5; i++) {
        cJSON *v = cJSON_GetObjectItem(j, num[i]);
        cr_assert(cJSON_IsNumber(v), "json lacks %s", num[i]);
        cr_expect_lt(fabs(v->valuedouble - expected()[i]), 1e-3 * fabs(expected()[i]) + 0.01 * (i >= 3));
    }
    cr_expect_eq(cJSON_GetObjectItem(j, "n")->valuedouble, 10);
    cr_expect_str_eq(cJSON_GetObjectItem(j, "preprocess")->valuestring, "adm");
    cr_expect_str_eq(cJSON_GetObjectItem(j, "reference")->valuestring, EX "ref.npz");
    cJSON_Delete(j);

    /* the reference featurised once: its --stats-out file, and feature files, need no network */
    cr_assert_eq(moedit("eval --samples fs.npz --ref rs.npz"), 0, "%s", slurp("err.txt"));
    check_output(0, "features + stats-out reference");
    cr_assert_eq(moedit(EVAL "--samples fs.npz --ref rs.npz --is-split 3"), 0, "%s", slurp("err.txt"));
    check_output(4, "IS splits of 3");
    cr_assert_eq(moedit(EVAL "--samples " EX "ref.npz --features-out fr.npz"), 0, "%s", slurp("err.txt"));
    cr_assert_eq(moedit("eval --samples fr.npz --ref fs.npz"), 0, "%s", slurp("err.txt"));
    check_output(5, "roles swapped");
    /* features of one preprocessing are refused under the other */
    cr_assert_eq(moedit("eval --samples fs.npz --ref rs.npz --preprocess pytorch-fid"), 2);
    one_line_error();

    cr_assert_eq(moedit(EVAL "--samples " EX "samples.npz --ref " EX "ref.npz --preprocess pytorch-fid --batch 5"), 0,
                 "%s", slurp("err.txt"));
    check_output(1, "pytorch-fid");

    /* ADM reference batch: other's statistics stored with ref's images */
    cr_assert_eq(moedit(EVAL "--ref " EX "other.npz --stats-out os.npz"), 0, "%s", slurp("err.txt"));
    adm_reference("adm_ref.npz", "os.npz", 1);
    cr_assert_eq(moedit(EVAL "--samples fs.npz --ref adm_ref.npz"), 0, "%s", slurp("err.txt"));
    check_output(2, "stored mu, sigma, mu_s, sigma_s");
    adm_reference("mu_ref.npz", "os.npz", 0);
    cr_assert_eq(moedit(EVAL "--samples fs.npz --ref mu_ref.npz"), 0, "%s", slurp("err.txt"));
    check_output(3, "stored mu, sigma only");
}

/* Rows done according to a state file, or -1. */
static long state_done(const char *name) { return tu_state_done(tu_join(dir, name)); }

static void same_features(const char *a, const char *b)
{
    me_npz x, y;
    cr_assert_eq(me_npz_open(tu_join(dir, a), &x), 0, "%s", moedit_last_error());
    cr_assert_eq(me_npz_open(tu_join(dir, b), &y), 0, "%s", moedit_last_error());
    static const char *m[3] = {"pool", "spatial", "logits"};
    for (int i = 0; i < 3; i++) {
        me_array p, q;
        cr_assert_eq(me_npz_get(&x, m[i], &p), 0);
        cr_assert_eq(me_npz_get(&y, m[i], &q), 0);
        cr_assert_eq(p.numel, q.numel, "%s: %s", a, m[i]);
        double ref, e = tu_max_error(p.data, q.data, (size_t)p.numel, &ref);
        /* the same image may run on one thread or on all: last bits differ */
        cr_expect_leq(e, 1e-5 * ref, "%s vs %s: %s differ by %g", a, b, m[i], e);
        me_array_free(&p);
        me_array_free(&q);
    }
    me_npz_close(&x);
    me_npz_close(&y);
}

/* Ten 32×32 RGB images other than the fixture's samples.npz, as many. */
static void write_other_images(const char *name)
{
    static uint8_t px[10 * 32 * 32 * 3];
    for (size_t i = 0; i < sizeof px; i++) px[i] = (uint8_t)(i * 7);
    me_zip_writer w;
    cr_assert_eq(me_zip_writer_open(&w, tu_join(dir, name)), MOEDIT_OK, "%s", moedit_last_error());
    cr_assert_eq(me_npz_add(&w, "arr_0", ME_U8, 4, (int64_t[]){10, 32, 32, 3}, px), MOEDIT_OK);
    cr_assert_eq(me_zip_writer_finish(&w), MOEDIT_OK, "%s", moedit_last_error());
}

/* eval of the feature files parts (a list) against fr.npz gives the five
   numbers of whole.npz against it. */
static void evaluate_as_the_whole(const char *parts)
{
    cr_assert_eq(moedit("eval --samples whole.npz --ref fr.npz --json a.json"), 0, "%s", slurp("err.txt"));
    cr_assert_eq(moedit("eval --samples %s --ref fr.npz --json b.json", parts), 0, "%s", slurp("err.txt"));
    cJSON *a = tu_json_file(tu_join(dir, "a.json")), *b = tu_json_file(tu_join(dir, "b.json"));
    const char *num[5] = {"inception_score", "fid", "sfid", "precision", "recall"};
    for (int i = 0; i < 5; i++) {
        double x = cJSON_GetObjectItem(a, num[i])->valuedouble, y = cJSON_GetObjectItem(b, num[i])->valuedouble;
        cr_expect_leq(fabs(x - y), 1e-5 * fabs(x), "%s: whole %g, shards %g", num[i], x, y);
    }
    cJSON_Delete(a);
    cJSON_Delete(b);
}

Test(cli_eval, killed_feature_run_resumes_and_shards_join)
{
    cr_assert_eq(moedit(EVAL "--samples " EX "samples.npz --features-out whole.npz --batch 2"), 0, "%s", slurp("err.txt"));
    char args[1000];
    snprintf(args, sizeof args, EVAL "--samples " EX "samples.npz --features-out run.npz --batch 2");
    int killed;
    long done = tu_kill_when_done(dir, MOEDIT_BIN, args, "run.npz.state", 2, 120000, &killed);
    cr_log_info("killed after %ld of 10 images", done);
    cr_assert(killed, "the run ended before it could be killed");
    cr_assert(!exists("run.npz"), "a final file after a kill");
    cr_assert(done >= 2 && done < 10);
    /* a partial file shorter than the state says is refused, not padded */
    const long rows = done * (long)sizeof(float) * ME_ADM_ROW;
    cr_assert_eq(tu_system("cd '%s' && cp run.npz.partial keep && truncate -s %ld run.npz.partial", dir, rows - 4), 0);
    cr_assert_eq(moedit(EVAL "--samples " EX "samples.npz --features-out run.npz --batch 2 --resume"), 2);
    one_line_error();
    char *short_err = slurp("err.txt");
    cr_assert(strstr(short_err, "run.npz.partial has"), "%s", short_err);
    free(short_err);
    cr_assert(!exists("run.npz"));
    cr_assert_eq(tu_system("cd '%s' && mv keep run.npz.partial", dir), 0);
    /* other settings are refused; the same ones resume */
    cr_assert_eq(moedit(EVAL "--samples " EX "samples.npz --features-out run.npz --batch 3 --resume"), 2);
    one_line_error();
    cr_assert_eq(moedit(EVAL "--samples " EX "samples.npz --features-out run.npz --batch 2 --resume"), 0, "%s",
                 slurp("err.txt"));
    char *err = slurp("err.txt");
    cr_assert(strstr(err, "resuming"), "%s", err);
    free(err);
    cr_assert(!exists("run.npz.partial") && !exists("run.npz.state"));
    same_features("run.npz", "whole.npz");

    /* three shards, given in any order, evaluate as the whole */
    for (int k = 0; k < 3; k++)
        cr_assert_eq(moedit(EVAL "--samples " EX "samples.npz --features-out s%d.npz --shard %d/3 --batch 2", k, k), 0,
                     "%s", slurp("err.txt"));
    cr_assert_eq(moedit(EVAL "--samples " EX "ref.npz --features-out fr.npz"), 0, "%s", slurp("err.txt"));
    evaluate_as_the_whole("s2.npz,s0.npz,s1.npz");
    /* a missing or duplicated shard is named */
    cr_assert_eq(moedit("eval --samples s0.npz,s2.npz --ref fr.npz"), 2);
    one_line_error();
    cr_assert_eq(moedit("eval --samples s0.npz,s1.npz,s1.npz,s2.npz --ref fr.npz"), 2);
    one_line_error();
    err = slurp("err.txt");
    cr_expect(strstr(err, "s1.npz"), "%s", err);
    free(err);
    /* a shard of another batch of as many images is not a shard of this one */
    write_other_images("other10.npz");
    cr_assert_eq(moedit(EVAL "--samples other10.npz --features-out o1.npz --shard 1/3 --batch 2"), 0, "%s",
                 slurp("err.txt"));
    cr_assert_eq(moedit("eval --samples s0.npz,o1.npz,s2.npz --ref fr.npz"), 2);
    one_line_error();
    err = slurp("err.txt");
    cr_expect(strstr(err, "o1.npz: features of other images than s0.npz's"), "%s", err);
    free(err);
}

/* More shards than images: of 12 parts of 10 images, 0 and 6 are empty. They
   say so (they said "images 0..-1"), and join with the others in any order
   (an empty part sorted after the part starting where it does was taken for
   an overlap). */
Test(cli_eval, empty_parts_say_so_and_join)
{
    cr_assert_eq(moedit(EVAL "--samples " EX "samples.npz --features-out whole.npz"), 0, "%s", slurp("err.txt"));
    cr_assert_eq(moedit(EVAL "--samples " EX "ref.npz --features-out fr.npz"), 0, "%s", slurp("err.txt"));
    char list[400] = "";
    for (int k = 11; k >= 0; k--) {
        cr_assert_eq(moedit(EVAL "--samples " EX "samples.npz --features-out p%d.npz --shard %d/12", k, k), 0, "%s",
                     slurp("err.txt"));
        char *err = slurp("err.txt");
        if (k == 0 || k == 6)
            cr_assert(strstr(err, "no features (this part of the 10 images is empty)"), "%s", err);
        else
            cr_assert(!strstr(err, "..-1") && !strstr(err, "no features"), "%s", err);
        free(err);
        snprintf(list + strlen(list), sizeof list - strlen(list), "%sp%d.npz", k == 11 ? "" : ",", k);
    }
    evaluate_as_the_whole(list);
    cr_assert_eq(moedit(EVAL "--samples " EX "samples.npz --features-out p6.npz --shard 6/12 --resume"), 0, "%s",
                 slurp("err.txt"));
    char *err = slurp("err.txt");
    cr_assert(strstr(err, "p6.npz: already holds this empty part of these samples"), "%s", err);
    free(err);
}

static ino_t inode_of(const char *name) { return tu_inode(tu_join(dir, name)); }

/* --resume with no state and a finished feature file of the same images,
   range, preprocessing and Inception weights (a script rerun after some
   shards finished) keeps the file; other weights behind the same
   --inception path featurise anew. Feature files name their network, and
   features of two networks are never compared or joined. */
Test(cli_eval, resume_keeps_a_finished_file_of_the_same_network)
{
    me_tensors *ts = random_weights(1);
    cr_assert_eq(me_write_safetensors(ts, tu_join(dir, "other.safetensors"), ME_F32), 0, "%s", moedit_last_error());
    me_tensors_free(ts);
    cr_assert_eq(moedit(EVAL "--samples " EX "samples.npz --features-out f.npz --resume"), 0, "%s", slurp("err.txt"));
    ino_t ino = inode_of("f.npz");
    cr_assert_eq(moedit(EVAL "--samples " EX "samples.npz --features-out f.npz --resume"), 0, "%s", slurp("err.txt"));
    char *err = slurp("err.txt");
    cr_assert(strstr(err, "f.npz: already holds the features of images 0..9 of these samples, preprocessing and "
                          "Inception weights: kept") && !strstr(err, "img/s"),
              "%s", err);
    free(err);
    cr_assert_eq(inode_of("f.npz"), ino, "the finished file was written again");
    cr_assert(!exists("f.npz.partial") && !exists("f.npz.state"));
    /* the kept rows are the samples' features for the metrics too */
    cr_assert_eq(moedit(EVAL "--samples " EX "samples.npz --features-out f.npz --resume --ref " EX "ref.npz"), 0, "%s",
                 slurp("err.txt"));
    check_output(0, "kept features");
    cr_assert_eq(inode_of("f.npz"), ino, "the finished file was written again");
    cr_assert_eq(moedit(EVAL "--samples " EX "samples.npz --features-out f.npz --resume --preprocess pytorch-fid"), 0, "%s",
                 slurp("err.txt"));
    cr_assert_neq(inode_of("f.npz"), ino, "other preprocessing kept the file");
    cr_assert_eq(moedit(EVAL "--samples " EX "samples.npz --features-out f.npz"), 0, "%s", slurp("err.txt"));
    ino = inode_of("f.npz");
    cr_assert_eq(tu_system("cd '%s' && cp inc.safetensors keep.safetensors && cp other.safetensors inc.safetensors",
                           dir), 0);
    cr_assert_eq(moedit(EVAL "--samples " EX "samples.npz --features-out f.npz --resume"), 0, "%s", slurp("err.txt"));
    cr_assert_neq(inode_of("f.npz"), ino, "other Inception weights behind the same path kept the file");

    /* f.npz is now the other network's: refused against this one's images
       before they are featurised, against its features, and in a join */
    cr_assert_eq(tu_system("cd '%s' && mv keep.safetensors inc.safetensors", dir), 0);
    cr_assert_eq(moedit(EVAL "--samples f.npz --ref " EX "ref.npz"), 2);
    one_line_error();
    err = slurp("err.txt");
    cr_assert(strstr(err, "f.npz: features of other Inception weights (") && strstr(err, "than --inception's"), "%s",
              err);
    free(err);
    cr_assert_eq(moedit(EVAL "--samples " EX "ref.npz --features-out fr.npz"), 0, "%s", slurp("err.txt"));
    cr_assert_eq(moedit("eval --samples f.npz --ref fr.npz"), 2);
    one_line_error();
    err = slurp("err.txt");
    cr_assert(strstr(err, "fr.npz: features of other Inception weights (") && strstr(err, "than f.npz's"), "%s", err);
    free(err);
    for (int k = 0; k < 2; k++)
        cr_assert_eq(moedit("eval --inception %s.safetensors --samples " EX "samples.npz --features-out s%d.npz "
                            "--shard %d/2", k ? "other" : "inc", k, k), 0, "%s", slurp("err.txt"));
    cr_assert_eq(moedit("eval --samples s0.npz,s1.npz --ref fr.npz"), 2);
    one_line_error();
    err = slurp("err.txt");
    cr_assert(strstr(err, "s1.npz: features of other Inception weights ("), "%s", err);
    free(err);
}

/* The state names the images by content as well as by path: other images
   of the same count put behind the same path are refused instead of
   resumed into the first ones' features; a state from a build that named
   them by path only still resumes, saying they go unchecked. */
Test(cli_eval, resume_refuses_other_images_behind_the_same_path)
{
    cr_assert_eq(moedit(EVAL "--samples " EX "samples.npz --features-out whole.npz --batch 2"), 0, "%s", slurp("err.txt"));
    write_other_images("other10.npz");
    cr_assert_eq(tu_system("cd '%s' && cp '%s' mine.npz", dir, EX "samples.npz"), 0);
    /* all done, not written: files held a byte below whole.npz's size fail the final write */
    cr_assert_eq(tu_system("cd '%s' && " TU_FILES_BELOW "'%s' " EVAL "--samples mine.npz --features-out run.npz "
                           "--batch 2 > out.txt 2> err.txt", dir, (long)tu_file_size(tu_join(dir, "whole.npz")) - 1,
                           MOEDIT_BIN), 2);
    cr_assert_eq(state_done("run.npz.state"), 10, "%s", slurp("err.txt"));
    cr_assert(!exists("run.npz"), "a final file cut short");
    cr_assert_eq(tu_system("cd '%s' && cp mine.npz keep.npz && cp other10.npz mine.npz", dir), 0);
    cr_assert_eq(moedit(EVAL "--samples mine.npz --features-out run.npz --batch 2 --resume"), 2);
    one_line_error();
    char *err = slurp("err.txt");
    cr_assert(strstr(err, "from a run with other settings or images"), "%s", err);
    free(err);
    cr_assert(!exists("run.npz"));

    cr_assert_eq(tu_system("cd '%s' && mv keep.npz mine.npz && sed -i 's/ source=[0-9a-f]*$//' run.npz.state && "
                           "! grep -q source= run.npz.state", dir), 0);
    cr_assert_eq(moedit(EVAL "--samples mine.npz --features-out run.npz --batch 2 --resume"), 0, "%s",
                 slurp("err.txt"));
    err = slurp("err.txt");
    cr_assert(strstr(err, "named the images by path only"), "%s", err);
    free(err);
    same_features("run.npz", "whole.npz");
}

/* An ADM-style reference (the fixture's images) whose stored mu holds a
   NaN: refused at load, naming the file, rather than "fid": null with exit
   0; a network with a negative batch-norm variance writes no features. */
Test(cli_eval, impossible_statistics_and_weights_exit_2)
{
    const int d = ME_INCEPTION_DIM;
    me_npz z;
    me_array img;
    cr_assert_eq(me_npz_open(EX "ref.npz", &z), 0);
    cr_assert_eq(me_npz_get(&z, "arr_0", &img), 0);
    float *mu = calloc(d, sizeof *mu), *sigma = calloc((size_t)d * d, sizeof *sigma);
    cr_assert(mu && sigma);
    for (int i = 0; i < d; i++) sigma[(size_t)i * d + i] = 1;
    mu[3] = NAN;
    me_zip_writer w;
    cr_assert_eq(me_zip_writer_open(&w, tu_join(dir, "st_nan.npz")), 0);
    cr_assert_eq(me_npz_add(&w, "arr_0", ME_U8, img.ndim, img.shape, img.data), 0);
    cr_assert_eq(me_npz_add(&w, "mu", ME_F32, 1, (int64_t[]){d}, mu), 0);
    cr_assert_eq(me_npz_add(&w, "sigma", ME_F32, 2, (int64_t[]){d, d}, sigma), 0);
    cr_assert_eq(me_zip_writer_finish(&w), 0);
    me_array_free(&img);
    me_npz_close(&z);
    free(mu);
    free(sigma);
    cr_assert_eq(moedit(EVAL "--samples " EX "samples.npz --ref st_nan.npz --json m.json"), 2);
    one_line_error();
    char *err = slurp("err.txt");
    cr_expect(strstr(err, "st_nan.npz") && strstr(err, "'mu'[3] is nan"), "%s", err);
    free(err);
    cr_assert(!exists("m.json"), "an output after a failure");

    me_tensors *ts = random_weights(0);
    ((float *)me_tensors_find(ts, "Conv2d_4a_3x3.bn.running_var")->data)[9] = -3.0f;
    cr_assert_eq(me_write_safetensors(ts, tu_join(dir, "bad.safetensors"), ME_F32), 0, "%s", moedit_last_error());
    me_tensors_free(ts);
    cr_assert_eq(moedit("eval --inception bad.safetensors --samples " EX "samples.npz --features-out f.npz"), 2);
    one_line_error();
    err = slurp("err.txt");
    cr_expect(strstr(err, "bad.safetensors") && strstr(err, "Conv2d_4a_3x3.bn.running_var"), "%s", err);
    free(err);
    cr_assert(!exists("f.npz"), "features written after a failure");

    /* a feature file with a NaN row: refused as it is read, not carried into
       precision/recall */
    me_adm_file f = {.n = 3, .total = 3, .prep = -1};
    f.pool = calloc(3 * (size_t)ME_INCEPTION_DIM, sizeof(float));
    f.spatial = calloc(3 * (size_t)ME_INCEPTION_SPATIAL, sizeof(float));
    f.logits = calloc(3 * (size_t)ME_INCEPTION_CLASSES, sizeof(float));
    cr_assert(f.pool && f.spatial && f.logits);
    f.pool[2 * ME_INCEPTION_DIM + 5] = NAN;
    cr_assert_eq(me_adm_file_save(tu_join(dir, "nan_rows.npz"), &f), 0, "%s", moedit_last_error());
    me_adm_file_free(&f);
    cr_assert_eq(moedit("eval --samples nan_rows.npz --ref nan_rows.npz --json m.json"), 2);
    one_line_error();
    err = slurp("err.txt");
    cr_expect(strstr(err, "nan_rows.npz: 'pool' holds NaN or inf (as float32) in 1 of 3 rows: 2"), "%s", err);
    free(err);
    cr_assert(!exists("m.json"), "an output after a failure");
}

Test(cli_eval, bad_inputs_exit_2_with_one_line)
{
    /* checked before any network loads: none.pth does not exist */
    cr_assert_eq(moedit("eval --inception none.pth --samples " EX "samples.npz," EX "ref.npz --ref " EX "ref.npz"), 2);
    one_line_error();
    /* Inception runs on the CPU only: another device is a usage error */
    cr_assert_eq(moedit("eval --inception none.pth --samples " EX "samples.npz --ref " EX "ref.npz --device cuda:0"), 2);
    one_line_error();
    me_zip_writer w;
    float px[4 * 8 * 8 * 3] = {0};
    cr_assert_eq(me_zip_writer_open(&w, tu_join(dir, "float.npz")), 0);
    cr_assert_eq(me_npz_add(&w, "arr_0", ME_F32, 4, (int64_t[]){4, 8, 8, 3}, px), 0);
    cr_assert_eq(me_zip_writer_finish(&w), 0);
    cr_assert_eq(moedit("eval --inception none.pth --samples float.npz --ref " EX "ref.npz"), 2);
    one_line_error();
    /* statistics of the wrong size (64-d) with the reference images */
    me_npz z, s;
    me_array img, mu, sigma;
    cr_assert_eq(me_npz_open(EX "ref.npz", &z), 0);
    cr_assert_eq(me_npz_get(&z, "arr_0", &img), 0);
    cr_assert_eq(me_npz_open(FIXTURES "/fid/stats64_a.npz", &s), 0);
    cr_assert_eq(me_npz_get(&s, "mu", &mu), 0);
    cr_assert_eq(me_npz_get(&s, "sigma", &sigma), 0);
    cr_assert_eq(me_zip_writer_open(&w, tu_join(dir, "stats64.npz")), 0);
    cr_assert_eq(me_npz_add(&w, "arr_0", ME_U8, img.ndim, img.shape, img.data), 0);
    cr_assert_eq(me_npz_add(&w, "mu", mu.dtype, mu.ndim, mu.shape, mu.data), 0);
    cr_assert_eq(me_npz_add(&w, "sigma", sigma.dtype, sigma.ndim, sigma.shape, sigma.data), 0);
    cr_assert_eq(me_zip_writer_finish(&w), 0);
    me_array_free(&img);
    me_array_free(&mu);
    me_array_free(&sigma);
    me_npz_close(&z);
    me_npz_close(&s);
    cr_assert_eq(moedit("eval --inception none.pth --samples " EX "samples.npz --ref stats64.npz --json m.json"), 2);
    one_line_error();
    /* fewer than 4 images for the k-NN radii */
    cr_assert_eq(moedit("eval --inception none.pth --samples " FIXTURES "/fid/images_b.npz --ref " EX "ref.npz"), 2);
    one_line_error();
    /* a statistics-only reference cannot give Precision/Recall */
    cr_assert_eq(moedit("eval --inception none.pth --samples " EX "samples.npz --ref " FIXTURES "/fid/stats64_a.npz"), 2);
    one_line_error();
    /* an Inception file with the wrong keys */
    cr_assert_eq(moedit("eval --inception " FIXTURES "/fid/conv1a_only.pth --samples " EX "samples.npz --ref " EX
                        "ref.npz --json m.json"), 2);
    one_line_error();
    cr_assert(!exists("m.json"), "an output after a failure");
    /* usage */
    cr_assert_eq(moedit(EVAL "--samples " EX "samples.npz --ref " EX "ref.npz --preprocess tf"), 2);
    one_line_error();
    cr_assert_eq(moedit(EVAL "--samples " EX "samples.npz --features-out f.npz --shard 3/3"), 2);
    one_line_error();
    cr_assert_eq(moedit(EVAL "--samples " EX "samples.npz --ref " EX "ref.npz --shard 0/2"), 2);
    one_line_error();
    cr_assert(!exists("f.npz") && !exists("f.npz.partial") && !exists("f.npz.state") && !exists("m.json"),
              "files left behind");
}

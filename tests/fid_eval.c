/* The ADM evaluator's pieces in the library: TF1's legacy resize, the sFID
   tap and the bias-free logits against tools/adm_evaluator_reference.py
   (fixtures from tools/make_eval_fixtures.py, on the counter-based random
   Inception of tests/fid_weights.h), and the k-NN manifold (radii,
   Precision/Recall) on sets whose answers are known by hand or by a plain
   all-pairs double-precision loop written here. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "fid/eval.h"
#include "fid/npz_stream.h"
#include "fid/preprocess.h"
#include "tests/fid_weights.h"
#include "tests/testutil.h"
#include "weights/npy.h"

static me_array member(me_npz *z, const char *file, const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/eval/%s", FIXTURES, file);
    if (!z->file.data) cr_assert_eq(me_npz_open(path, z), 0, "%s", moedit_last_error());
    me_array a;
    cr_assert_eq(me_npz_get(z, name, &a), 0, "%s", moedit_last_error());
    return a;
}

static double rel_error(const float *got, const float *want, int64_t n)
{
    double ref, err = tu_max_error(got, want, (size_t)n, &ref);
    return err / ref;
}

Test(fid_eval, tf1_legacy_resize_matches_numpy)
{
    me_npz z = {0};
    me_array x = member(&z, "resize.npz", "x"), y = member(&z, "resize.npz", "y"), w = member(&z, "resize.npz", "z");
    float got[2 * 3 * 16];
    me_resize_bilinear_tf1(2, 5, 7, 11, 4, x.data, got);
    cr_expect_lt(rel_error(got, y.data, y.numel), 1e-6);
    me_resize_bilinear_tf1(2, 5, 7, 3, 16, x.data, got);
    cr_expect_lt(rel_error(got, w.data, w.numel), 1e-6);
    /* no half-pixel centres: output pixel 0 is input pixel 0 exactly */
    cr_expect_eq(got[0], ((const float *)x.data)[0]);
    me_array_free(&x);
    me_array_free(&y);
    me_array_free(&w);
    me_npz_close(&z);
}

Test(fid_eval, adm_features_match_pytorch, .timeout = 900)
{
    me_tensors *ts = random_weights(0);
    me_inception *net;
    cr_assert_eq(me_inception_from_tensors(ts, &net), 0, "%s", moedit_last_error());
    me_tensors_free(ts);
    /* the images through the streaming reader, in two uneven pieces */
    char path[512];
    snprintf(path, sizeof path, "%s/eval/samples.npz", FIXTURES);
    me_npz_stream st;
    cr_assert_eq(me_npz_stream_open(path, "arr_0", &st), 0, "%s", moedit_last_error());
    cr_assert(st.array.dtype == ME_U8 && st.array.ndim == 4 && st.array.shape[0] == 10);
    const int n = 10, h = (int)st.array.shape[1], w = (int)st.array.shape[2];
    uint8_t *px = malloc((size_t)n * h * w * 3);
    cr_assert_eq(me_npz_stream_read(&st, px, (size_t)3 * h * w * 3), 0, "%s", moedit_last_error());
    cr_assert_eq(me_npz_stream_read(&st, px + (size_t)3 * h * w * 3, (size_t)7 * h * w * 3), 0, "%s",
                 moedit_last_error());
    me_npz_stream_close(&st);

    float *pool = malloc(sizeof(float) * n * ME_INCEPTION_DIM), *sp = malloc(sizeof(float) * n * ME_INCEPTION_SPATIAL);
    float *lg = malloc(sizeof(float) * n * ME_INCEPTION_CLASSES);
    cr_assert_eq(me_adm_features_u8(net, ME_PREPROCESS_ADM, n, h, w, 3, px, pool, sp, lg), 0, "%s", moedit_last_error());
    me_npz z = {0};
    me_array p = member(&z, "features_adm.npz", "pool"), s = member(&z, "features_adm.npz", "spatial");
    me_array l = member(&z, "features_adm.npz", "logits");
    cr_assert_eq(p.numel, n * ME_INCEPTION_DIM);
    cr_assert_eq(s.numel, n * ME_INCEPTION_SPATIAL);
    cr_assert_eq(l.numel, n * ME_INCEPTION_CLASSES);
    double ep = rel_error(pool, p.data, p.numel), es = rel_error(sp, s.data, s.numel), el = rel_error(lg, l.data, l.numel);
    cr_log_info("adm features vs PyTorch: pool %.2e, spatial %.2e, logits %.2e", ep, es, el);
    cr_expect_lt(ep, 1e-3);
    cr_expect_lt(es, 1e-3);
    cr_expect_lt(el, 1e-3);

    /* the preprocessing matters: pytorch-fid's input gives other features */
    cr_assert_eq(me_adm_features_u8(net, ME_PREPROCESS_PYTORCH_FID, n, h, w, 3, px, pool, sp, lg), 0);
    cr_expect_gt(rel_error(pool, p.data, p.numel), 1e-3);
    me_array_free(&p);
    me_array_free(&s);
    me_array_free(&l);
    me_npz_close(&z);
    me_inception_free(net);
    free(px);
    free(pool);
    free(sp);
    free(lg);
}

Test(fid_eval, radii_and_precision_recall_by_hand)
{
    /* points on a line; a radius is the 4th smallest squared distance of
       the row, itself (0) included: from 0 they are 0, 1, 4, 9, 100 → 9 */
    const float x[5] = {0, 1, 2, 3, 10};
    float r[5];
    cr_assert_eq(me_manifold_radii(5, 1, x, 3, r), 0, "%s", moedit_last_error());
    const float want[5] = {9, 4, 4, 9, 81};
    for (int i = 0; i < 5; i++) cr_expect_eq(r[i], want[i], "radius %d: %g", i, r[i]);
    /* samples: 2.5 and 2.6 lie within 0's radius (6.25 <= 9), 13 within
       10's (9 <= 81), 30 within none (400 > 81) */
    const float s[4] = {2.5f, 30, 13, 2.6f};
    float rs[4];
    cr_assert_eq(me_manifold_radii(4, 1, s, 3, rs), 0);
    double p, rc;
    cr_assert_eq(me_precision_recall(5, x, r, 4, s, rs, 1, &p, &rc), 0);
    cr_expect_float_eq(p, 0.75, 1e-12);
    /* with 4 samples a radius reaches the farthest one (2.5's: 27.5²), so
       every reference point is recalled */
    cr_expect_float_eq(rc, 1.0, 1e-12);
    /* "<=": 6 is exactly at 3's radius (9); a sample radius of 0 recalls nothing */
    const float x2[4] = {0, 1, 2, 3}, e2[1] = {6}, zero[1] = {0};
    float r2[4];
    cr_assert_eq(me_manifold_radii(4, 1, x2, 3, r2), 0);
    cr_assert_eq(me_precision_recall(4, x2, r2, 1, e2, zero, 1, &p, &rc), 0);
    cr_expect_float_eq(p, 1.0, 1e-12);
    cr_expect_float_eq(rc, 0.0, 1e-12);
    /* fewer than k + 1 points: an input error */
    cr_expect_eq(me_manifold_radii(3, 1, x, 3, r), MOEDIT_EINPUT);
}

/* Radii and P/R over several row and column blocks against all pairs in
   double precision. */
Test(fid_eval, blockwise_matches_all_pairs, .timeout = 300)
{
    const int n = 2600, m = 2200, d = 6;
    float *a = malloc(sizeof(float) * n * d), *b = malloc(sizeof(float) * m * d);
    for (int i = 0; i < n * d; i++) a[i] = tu_counter_uniform(1, (uint64_t)i) * 4;
    for (int i = 0; i < m * d; i++) b[i] = tu_counter_uniform(2, (uint64_t)i) * 4 + (i % d == 0 ? 1.5f : 0);
    float *ra = malloc(sizeof(float) * n), *rb = malloc(sizeof(float) * m);
    cr_assert_eq(me_manifold_radii(n, d, a, 3, ra), 0);
    cr_assert_eq(me_manifold_radii(m, d, b, 3, rb), 0);
    double *row = malloc(sizeof(double) * (n > m ? n : m));
    for (int i = 0; i < n; i += 97) {   /* a sample of rows: 4th smallest of the row */
        for (int j = 0; j < n; j++) {
            double s = 0;
            for (int k = 0; k < d; k++) s += ((double)a[i * d + k] - a[j * d + k]) * ((double)a[i * d + k] - a[j * d + k]);
            row[j] = s;
        }
        double best[4] = {INFINITY, INFINITY, INFINITY, INFINITY};
        for (int j = 0; j < n; j++)
            for (int q = 0; q < 4; q++)
                if (row[j] < best[q]) {
                    memmove(best + q + 1, best + q, sizeof(double) * (3 - q));
                    best[q] = row[j];
                    break;
                }
        cr_expect(fabs(ra[i] - best[3]) <= 1e-4 * best[3] + 1e-5, "row %d: %g vs %g", i, ra[i], best[3]);
    }
    double p, r;
    cr_assert_eq(me_precision_recall(n, a, ra, m, b, rb, d, &p, &r), 0);
    long pin = 0, rin = 0;
    for (int j = 0; j < m; j++) {
        int in = 0;
        for (int i = 0; i < n && !in; i++) {
            double s = 0;
            for (int k = 0; k < d; k++) s += ((double)a[i * d + k] - b[j * d + k]) * ((double)a[i * d + k] - b[j * d + k]);
            in = s <= ra[i];
        }
        pin += in;
    }
    for (int i = 0; i < n; i++) {
        int in = 0;
        for (int j = 0; j < m && !in; j++) {
            double s = 0;
            for (int k = 0; k < d; k++) s += ((double)a[i * d + k] - b[j * d + k]) * ((double)a[i * d + k] - b[j * d + k]);
            in = s <= rb[j];
        }
        rin += in;
    }
    cr_log_info("blockwise P %.4f R %.4f, all pairs %.4f %.4f", p, r, (double)pin / m, (double)rin / n);
    cr_expect_lt(fabs(p - (double)pin / m), 0.002);
    cr_expect_lt(fabs(r - (double)rin / n), 0.002);
    cr_expect(p > 0.05 && p < 0.95 && r > 0.05 && r < 0.95, "a trivial case: P %g R %g", p, r);
    free(a);
    free(b);
    free(ra);
    free(rb);
    free(row);
}

/* A feature file's range [first, n, total] is checked as count against what
   is left: first INT64_MAX and one row wrapped first + n below total and
   was read as valid. */
Test(fid_eval, feature_file_range_is_checked_without_overflow)
{
    char dir[64];
    tu_tmpdir(dir, sizeof dir, "fid_eval_range");
    float *rows = calloc(ME_INCEPTION_DIM, sizeof *rows);
    cr_assert(rows);
    const int64_t ranges[2][3] = {{INT64_MAX, 1, 5}, {4, 1, 5}};
    for (int i = 0; i < 2; i++) {
        me_zip_writer w;
        cr_assert_eq(me_zip_writer_open(&w, tu_join(dir, "f.npz")), MOEDIT_OK, "%s", moedit_last_error());
        cr_assert_eq(me_npz_add(&w, "pool", ME_F32, 2, (int64_t[]){1, ME_INCEPTION_DIM}, rows), MOEDIT_OK);
        cr_assert_eq(me_npz_add(&w, "range", ME_I64, 1, (int64_t[]){3}, ranges[i]), MOEDIT_OK);
        cr_assert_eq(me_zip_writer_finish(&w), MOEDIT_OK, "%s", moedit_last_error());
        me_adm_file f;
        int rc = me_adm_file_load(tu_join(dir, "f.npz"), &f);
        if (i == 0) {
            cr_assert_eq(rc, MOEDIT_EINPUT, "range %lld+1 of 5 read", (long long)ranges[i][0]);
            cr_expect(strstr(moedit_last_error(), "'range' 9223372036854775807+1 is outside 0..5"), "%s",
                      moedit_last_error());
        } else {
            cr_assert_eq(rc, MOEDIT_OK, "%s", moedit_last_error());   /* the last row of five */
            cr_expect(f.first == 4 && f.n == 1 && f.total == 5);
            me_adm_file_free(&f);
        }
    }
    free(rows);
    cr_assert_eq(tu_rmtree(dir), 0);
}

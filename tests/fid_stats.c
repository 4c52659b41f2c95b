/* Statistics, Fréchet distance and Inception Score against NumPy
   (tools/inception_reference.py: np.cov, pytorch-fid's
   calculate_frechet_distance with the sqrtm taken by general
   eigendecomposition of Σ₁Σ₂ — a different route from the C code's
   symmetric eigensolver of √Σ₁Σ₂√Σ₁). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "fid/fid.h"
#include "fid/inception.h"
#include "tests/testutil.h"
#include "weights/npy.h"

static void fixture(char *path, size_t cap, const char *name)
{
    snprintf(path, cap, "%s/fid/%s", FIXTURES, name);
}

static double *npy_f64(const char *name, int64_t *n)
{
    char path[512];
    me_array a;
    fixture(path, sizeof path, name);
    cr_assert_eq(me_npy_read(path, &a), 0, "%s", moedit_last_error());
    double *v = malloc(sizeof(double) * a.numel);
    if (a.dtype == ME_F64) memcpy(v, a.data, sizeof(double) * a.numel);
    else for (int64_t i = 0; i < a.numel; i++) v[i] = ((const float *)a.data)[i];
    *n = a.numel;
    me_array_free(&a);
    return v;
}

static float *npy_f32(const char *name, int64_t *n)
{
    char path[512];
    fixture(path, sizeof path, name);
    return tu_npy_f32(path, NULL, NULL, n);
}

Test(fid_stats, frechet_distance_64d_matches_numpy)
{
    char pa[512], pb[512];
    me_fid_stats a, b;
    fixture(pa, sizeof pa, "stats64_a.npz");
    fixture(pb, sizeof pb, "stats64_b.npz");
    cr_assert_eq(me_fid_stats_load(pa, &a), 0, "%s", moedit_last_error());
    cr_assert_eq(me_fid_stats_load(pb, &b), 0, "%s", moedit_last_error());
    cr_assert_eq(a.dim, 64);
    int64_t n;
    double *want = npy_f64("fid64.npy", &n), fid;
    cr_assert_eq(me_frechet_distance(&a, &b, &fid), 0, "%s", moedit_last_error());
    double rel = fabs(fid - want[0]) / fabs(want[0]);
    cr_log_info("fid64: %.12g vs numpy %.12g, relative error %.3g", fid, want[0], rel);
    cr_expect_lt(rel, 1e-6);
    /* a distribution is at distance 0 from itself (up to rounding) */
    cr_assert_eq(me_frechet_distance(&a, &a, &fid), 0);
    cr_expect_lt(fabs(fid), 1e-9, "FID(a, a) = %g", fid);
    free(want);
    me_fid_stats_free(&a);
    me_fid_stats_free(&b);
}

/* Statistics from the reference features (4 and 3 samples in 2048
   dimensions: rank-deficient covariances, the clamped-eigenvalue path). */
Test(fid_stats, features_to_fid_and_inception_score)
{
    int64_t na, nb, nl, ns;
    float *fa = npy_f32("features_a.npy", &na), *fb = npy_f32("features_b.npy", &nb);
    float *logits = npy_f32("logits_a.npy", &nl);
    double *scores = npy_f64("scores.npy", &ns), fid, is;
    me_fid_stats a, b;
    cr_assert_eq(me_fid_stats_from_features(na / 2048, 2048, fa, &a), 0);
    cr_assert_eq(me_fid_stats_from_features(nb / 2048, 2048, fb, &b), 0);
    cr_assert_eq(me_frechet_distance(&a, &b, &fid), 0, "%s", moedit_last_error());
    double rel = fabs(fid - scores[0]) / scores[0];
    cr_log_info("fid(a, b): %.10g vs numpy %.10g, relative error %.3g", fid, scores[0], rel);
    cr_expect_lt(rel, 1e-6);
    cr_assert_eq(me_inception_score(nl / 1008, 1008, logits, 5000, &is), 0);
    rel = fabs(is - scores[1]) / scores[1];
    cr_log_info("IS(a): %.12g vs numpy %.12g", is, scores[1]);
    cr_expect_lt(rel, 1e-9);
    cr_assert_eq(me_inception_score(nl / 1008, 1008, logits, 3, &is), 0);   /* chunks of 3 and 1 */
    cr_log_info("IS(a, splits of 3): %.12g vs numpy %.12g", is, scores[2]);
    cr_expect_lt(fabs(is - scores[2]) / scores[2], 1e-9);

    /* save → load keeps every bit (float64) */
    char tmp[] = "/tmp/fid_stats_XXXXXX.npz";
    int fd = mkstemps(tmp, 4);
    close(fd);
    cr_assert_eq(me_fid_stats_save(tmp, &a), 0, "%s", moedit_last_error());
    me_fid_stats c;
    cr_assert_eq(me_fid_stats_load(tmp, &c), 0, "%s", moedit_last_error());
    cr_assert_eq(c.dim, 2048);
    cr_assert_eq(memcmp(c.mu, a.mu, 2048 * sizeof(double)), 0);
    cr_assert_eq(memcmp(c.sigma, a.sigma, 2048 * 2048 * sizeof(double)), 0);
    unlink(tmp);
    me_fid_stats_free(&c);
    me_fid_stats_free(&a);
    me_fid_stats_free(&b);
    free(fa);
    free(fb);
    free(logits);
    free(scores);
}

Test(fid_stats, bad_inputs_are_refused)
{
    me_fid_stats s;
    float one[4] = {1, 2, 3, 4};
    cr_assert_eq(me_fid_stats_from_features(1, 4, one, &s), MOEDIT_EINPUT);
    char path[512];
    fixture(path, sizeof path, "images_a.npz");   /* no mu/sigma */
    cr_assert_eq(me_fid_stats_load(path, &s), MOEDIT_EINPUT);
    cr_assert(strstr(moedit_last_error(), "mu"), "%s", moedit_last_error());
    fixture(path, sizeof path, "manifest.txt");   /* not a zip */
    cr_assert_eq(me_fid_stats_load(path, &s), MOEDIT_EINPUT);
    fixture(path, sizeof path, "stats64_a.npz");
    me_fid_stats a, b;
    cr_assert_eq(me_fid_stats_load(path, &a), 0);
    float two[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    cr_assert_eq(me_fid_stats_from_features(2, 4, two, &b), 0);
    double fid;
    cr_assert_eq(me_frechet_distance(&a, &b, &fid), MOEDIT_EINPUT);
    me_fid_stats_free(&a);
    me_fid_stats_free(&b);
}

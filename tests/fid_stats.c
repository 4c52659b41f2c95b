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

/* dir/name.npz holding mu [d] and sigma [d, d] as float64. */
static void write_stats(const char *path, int d, const double *mu, const double *sigma)
{
    me_zip_writer w;
    cr_assert_eq(me_zip_writer_open(&w, path), 0, "%s", moedit_last_error());
    cr_assert_eq(me_npz_add(&w, "mu", ME_F64, 1, (int64_t[]){d}, mu), 0);
    cr_assert_eq(me_npz_add(&w, "sigma", ME_F64, 2, (int64_t[]){d, d}, sigma), 0);
    cr_assert_eq(me_zip_writer_finish(&w), 0, "%s", moedit_last_error());
}

/* Loading refuses what no mean and covariance can be, naming the file and
   the member, instead of a FID of nan or below 0 later. */
Test(fid_stats, impossible_statistics_are_refused_at_load)
{
    char dir[64], path[600];
    tu_tmpdir(dir, sizeof dir, "fid_stats");
    snprintf(path, sizeof path, "%s/st.npz", dir);
    struct {
        int at;          /* index into mu (< 3) or 3 + index into sigma */
        double v, mirror;   /* the value there, and at the transposed place */
        const char *says;
    } cases[] = {
        {1, NAN, 0, "'mu'[1] is nan"},
        {0, INFINITY, 0, "'mu'[0] is inf"},
        {3 + 4, -2, -2, "negative variance"},
        {3 + 1, NAN, NAN, "is nan"},
        {3 + 1, 0.5, 0.25, "not symmetric"},
        {3 + 1, 1.5, 1.5, "exceeds"},
    };
    me_fid_stats s;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        double mu[3] = {0.5, -1, 2}, sigma[9] = {1, 0.2, 0, 0.2, 1, 0, 0, 0, 1};
        int at = cases[c].at;
        if (at < 3) mu[at] = cases[c].v;
        else {
            int i = (at - 3) / 3, j = (at - 3) % 3;
            sigma[i * 3 + j] = cases[c].v;
            sigma[j * 3 + i] = i == j ? cases[c].v : cases[c].mirror;
        }
        write_stats(path, 3, mu, sigma);
        cr_assert_eq(me_fid_stats_load(path, &s), MOEDIT_EINPUT, "case %zu loads", c);
        const char *e = moedit_last_error();
        cr_expect(strstr(e, path) && strstr(e, cases[c].says), "case %zu: %s", c, e);
        cr_expect(!strchr(e, '\n'), "%s", e);
    }
    /* float32-rounded asymmetry is rounding, not a refusal */
    double mu[3] = {0}, sigma[9] = {1, 0.2, 0, 0.2 * (1 + 1e-7), 1, 0, 0, 0, 0};
    write_stats(path, 3, mu, sigma);
    cr_assert_eq(me_fid_stats_load(path, &s), 0, "%s", moedit_last_error());
    me_fid_stats_free(&s);
    tu_rmtree(dir);
}

/* Past the load checks: NaN from features, a sigma that is not positive
   semi-definite (eigenvalues 2, 2, −1: FID(a, a) = −2), a distance that
   overflows; each MOEDIT_EINPUT, never a number. */
Test(fid_stats, distance_refuses_what_is_not_a_distance)
{
    double mu[3] = {0}, bad[9] = {1, 1, 1, 1, 1, -1, 1, -1, 1}, id[9] = {1, 0, 0, 0, 1, 0, 0, 0, 1}, fid;
    me_fid_stats a = {3, 0, mu, bad}, b = {3, 0, mu, id};
    cr_assert_eq(me_frechet_distance(&a, &a, &fid), MOEDIT_EINPUT);
    cr_expect(strstr(moedit_last_error(), "positive semi-definite"), "%s", moedit_last_error());
    /* eigenvalues 2, 2, -1: symmetric, variances 1, no covariance beyond
       them — clipping -1 to 0 gave a distance of 0.343 against the identity */
    cr_assert_eq(me_frechet_distance(&a, &b, &fid), MOEDIT_EINPUT, "distance %g", fid);
    cr_expect(strstr(moedit_last_error(), "the first covariance is not positive semi-definite (an eigenvalue of -1"),
              "%s", moedit_last_error());
    cr_assert_eq(me_frechet_distance(&b, &a, &fid), MOEDIT_EINPUT, "distance %g", fid);
    cr_expect(strstr(moedit_last_error(), "the second covariance is not positive semi-definite"), "%s",
              moedit_last_error());
    /* a rank-deficient covariance (one image: all zeros) is one */
    double zero[9] = {0};
    me_fid_stats z = {3, 0, mu, zero};
    cr_assert_eq(me_frechet_distance(&z, &b, &fid), MOEDIT_OK, "%s", moedit_last_error());
    cr_expect_float_eq(fid, 3.0, 1e-12);
    double far[3] = {1e200, 0, 0};
    me_fid_stats c = {3, 0, far, id};
    cr_assert_eq(me_frechet_distance(&c, &b, &fid), MOEDIT_EINPUT);
    cr_expect(strstr(moedit_last_error(), "overflows"), "%s", moedit_last_error());
    float rows[8] = {0, 1, NAN, 3, 4, 5, 6, 7};
    me_fid_stats f;
    cr_assert_eq(me_fid_stats_from_features(2, 4, rows, &f), 0);
    me_fid_stats b4 = {4, 0, (double[4]){0}, (double[16]){1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1}};
    cr_assert_eq(me_frechet_distance(&f, &b4, &fid), MOEDIT_EINPUT);
    cr_expect(strstr(moedit_last_error(), "first statistics hold NaN"), "%s", moedit_last_error());
    me_fid_stats_free(&f);
}

/* Fewer images than features: a set against itself is a distance of 0 up to
   rounding, not "negative: not positive semi-definite" — the square roots of
   √Σ₁Σ₂√Σ₁'s rounding-level eigenvalues overstate its trace (three images
   against themselves read -1.5e-5 and were refused, where pytorch-fid prints
   -1.3e-5). Rows as pool3 features are: non-negative, a few units. */
Test(fid_stats, few_images_against_themselves_are_zero_up_to_rounding, .timeout = 120)
{
    enum { N = 3, D = 2048 };
    float *rows = malloc(sizeof(float) * N * D);
    for (int i = 0; i < N * D; i++)
        rows[i] = 2.0f * tu_counter_uniform(11, (uint64_t)i) * tu_counter_uniform(12, (uint64_t)i);
    me_fid_stats s;
    cr_assert_eq(me_fid_stats_from_features(N, D, rows, &s), 0);
    double fid, trace = 0;
    for (int i = 0; i < D; i++) trace += s.sigma[(size_t)i * D + i];
    cr_assert_eq(me_frechet_distance(&s, &s, &fid), MOEDIT_OK, "%s", moedit_last_error());
    cr_log_info("distance %g for traces of %g", fid, trace);
    cr_expect_leq(fabs(fid), 1e-4 * trace, "distance %g against traces of %g", fid, trace);
    me_fid_stats_free(&s);
    free(rows);
}

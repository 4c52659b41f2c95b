/* The public evaluation metrics (moedit.h) over fid.h and inception.h. */
#include <stdlib.h>
#include <string.h>
#include "core/core.h"
#include "fid/eval.h"
#include "fid/fid.h"
#include "fid/inception.h"

/* NaN or inf in rows [n, len] of x: MOEDIT_EINPUT naming the first rows
   (a NaN row would carry into every metric: the statistics, the scores, and
   precision/recall, whose distance comparisons would silently count it). */
static int finite_rows(const char *what, const char *name, int64_t n, size_t len, const float *x)
{
    const int64_t chunk = 1 << 30;   /* me_non_finite_rows counts rows in an int */
    for (int64_t r0 = 0; r0 < n; r0 += chunk) {
        int rows = (int)(n - r0 < chunk ? n - r0 : chunk), nbad;
        char bad[96];
        if (!(nbad = me_non_finite_rows(x + (size_t)r0 * len, rows, len, bad, sizeof bad))) continue;
        if (!r0) return me_fail(MOEDIT_EINPUT, "%s: %s hold NaN or inf in rows %s", what, name, bad);
        return me_fail(MOEDIT_EINPUT, "%s: %s hold NaN or inf in rows %lld + %s", what, name, (long long)r0, bad);
    }
    return MOEDIT_OK;
}

int moedit_feature_stats(int64_t n, int dim, const float *features, double *mu, double *sigma)
{
    if (!features || !mu || !sigma) return me_fail(MOEDIT_EINPUT, "feature stats: missing argument");
    me_fid_stats s;
    int rc = n >= 2 && dim >= 1 ? finite_rows("feature stats", "the features", n, (size_t)dim, features) : MOEDIT_OK;
    if (!rc) rc = me_fid_stats_from_features(n, dim, features, &s);
    if (rc) return rc;
    memcpy(mu, s.mu, sizeof(double) * (size_t)dim);
    memcpy(sigma, s.sigma, sizeof(double) * (size_t)dim * (size_t)dim);
    me_fid_stats_free(&s);
    return MOEDIT_OK;
}

int moedit_frechet_distance(int dim, const double *mu1, const double *sigma1, const double *mu2,
                            const double *sigma2, double *fid)
{
    if (dim < 1 || !mu1 || !sigma1 || !mu2 || !sigma2 || !fid)
        return me_fail(MOEDIT_EINPUT, "frechet distance: missing argument or dim %d < 1", dim);
    /* the statistics are only read: the casts lend the caller's arrays */
    me_fid_stats a = {dim, 0, (double *)mu1, (double *)sigma1}, b = {dim, 0, (double *)mu2, (double *)sigma2};
    return me_frechet_distance(&a, &b, fid);
}

int moedit_inception_score(int64_t n, int classes, const float *logits, int64_t split_size, double *is)
{
    if (!logits || !is) return me_fail(MOEDIT_EINPUT, "inception score: missing argument");
    int rc = n > 0 && classes > 0 ? finite_rows("inception score", "the logits", n, (size_t)classes, logits)
                                  : MOEDIT_OK;
    return rc ? rc : me_inception_score(n, classes, logits, split_size, is);
}

struct moedit_inception {
    me_inception *net;
};

int moedit_inception_load(const char *path, moedit_inception **out)
{
    if (!out) return me_fail(MOEDIT_EINPUT, "inception: missing argument");
    *out = me_calloc(1, sizeof **out);
    if (!*out) return MOEDIT_EINTERNAL;
    int rc = me_inception_load(path, &(*out)->net);
    if (rc) {
        free(*out);
        *out = NULL;
    }
    return rc;
}

void moedit_inception_free(moedit_inception *net)
{
    if (!net) return;
    me_inception_free(net->net);
    free(net);
}

int moedit_inception_digest(const moedit_inception *net, uint32_t *crc)
{
    if (!net || !crc) return me_fail(MOEDIT_EINPUT, "inception digest: missing argument");
    *crc = me_inception_digest(net->net);
    return MOEDIT_OK;
}

int moedit_inception_features(moedit_inception *net, int n, int h, int w, int c, const uint8_t *images,
                              float *features, float *logits)
{
    if (!net || !images || !features) return me_fail(MOEDIT_EINPUT, "inception: missing argument");
    return me_inception_forward_u8(net->net, n, h, w, c, images, features, logits);
}

double moedit_inception_flops(const moedit_inception *net) { return net ? me_inception_flops(net->net) : 0.0; }

double moedit_inception_flops_multiplied(const moedit_inception *net)
{
    return net ? me_inception_flops_multiplied(net->net) : 0.0;
}

int moedit_inception_adm_features(moedit_inception *net, const char *preprocess, int n, int h, int w, int c,
                                  const uint8_t *images, float *pool, float *spatial, float *logits)
{
    if (!net || !preprocess || !images || !pool) return me_fail(MOEDIT_EINPUT, "inception: missing argument");
    me_preprocess prep;
    int rc = me_preprocess_parse(preprocess, &prep);
    return rc ? rc : me_adm_features_u8(net->net, prep, n, h, w, c, images, pool, spatial, logits);
}

int moedit_precision_recall(int64_t n_ref, const float *ref, int64_t n_samples, const float *samples, int dim,
                            int k, double *precision, double *recall)
{
    if (!ref || !samples || !precision || !recall || dim < 1)
        return me_fail(MOEDIT_EINPUT, "precision/recall: missing argument or dim %d < 1", dim);
    int rc = finite_rows("precision/recall", "the reference features", n_ref, (size_t)dim, ref);
    if (!rc) rc = finite_rows("precision/recall", "the sample features", n_samples, (size_t)dim, samples);
    if (rc) return rc;
    float *ref_radii = me_alloc(sizeof(float) * (size_t)(n_ref > 0 ? n_ref : 1));
    float *sample_radii = me_alloc(sizeof(float) * (size_t)(n_samples > 0 ? n_samples : 1));
    rc = ref_radii && sample_radii ? MOEDIT_OK : MOEDIT_EINTERNAL;
    if (!rc) rc = me_manifold_radii(n_ref, dim, ref, k, ref_radii);
    if (!rc) rc = me_manifold_radii(n_samples, dim, samples, k, sample_radii);
    if (!rc) rc = me_precision_recall(n_ref, ref, ref_radii, n_samples, samples, sample_radii, dim, precision, recall);
    free(ref_radii);
    free(sample_radii);
    return rc;
}

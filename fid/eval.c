/* The ADM evaluator's five numbers from features (see fid.h), read like
   guided-diffusion's evaluations/evaluator.py: Evaluator.compute_* and
   ManifoldEstimator.manifold_radii / evaluate_pr. Distances are squared
   Euclidean, max(|u|² − 2u·v + |v|², 0) as its DistanceBlock, in float32
   blocks of ROWS × COLS so 50K × 50K never exists in memory. */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "core/core.h"
#include "fid/eval.h"
#include "fid/fid.h"
#include "fid/inception.h"

#define ROWS 512
#define COLS 2048

static float *norms(int64_t n, int dim, const float *x)
{
    float *r = me_alloc(sizeof(float) * (size_t)(n ? n : 1));
    if (!r) return NULL;
    #pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        double s = 0;
        for (int j = 0; j < dim; j++) s += (double)x[i * dim + j] * x[i * dim + j];
        r[i] = (float)s;
    }
    return r;
}

/* d [ra, rb] = pairwise squared distances of a's and b's rows. */
static void distances(int ra, const float *a, const float *na, int rb, const float *b, const float *nb, int dim,
                      float *d)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, ra, rb, dim, -2.0f, a, dim, b, dim, 0.0f, d, rb);
    #pragma omp parallel for schedule(static)
    for (int i = 0; i < ra; i++)
        for (int j = 0; j < rb; j++) {
            float v = na[i] + d[(size_t)i * rb + j] + nb[j];
            d[(size_t)i * rb + j] = v > 0 ? v : 0;
        }
}

int me_manifold_radii(int64_t n, int dim, const float *x, int k, float *radii)
{
    if (k < 1 || k > 64 || n <= k)
        return me_fail(MOEDIT_EINPUT, "precision/recall: %lld images, need at least %d for k = %d", (long long)n,
                       k + 1, k);
    float *nx = norms(n, dim, x), *d = me_alloc(sizeof(float) * ROWS * COLS);
    /* per row its k+1 smallest distances so far, ascending */
    float *best = me_alloc(sizeof(float) * ROWS * (k + 1));
    int rc = nx && d && best ? MOEDIT_OK : MOEDIT_EINTERNAL;
    for (int64_t r0 = 0; !rc && r0 < n; r0 += ROWS) {
        int rows = n - r0 < ROWS ? (int)(n - r0) : ROWS;
        for (int i = 0; i < rows * (k + 1); i++) best[i] = INFINITY;
        for (int64_t c0 = 0; c0 < n; c0 += COLS) {
            int cols = n - c0 < COLS ? (int)(n - c0) : COLS;
            distances(rows, x + r0 * dim, nx + r0, cols, x + c0 * dim, nx + c0, dim, d);
            #pragma omp parallel for schedule(static)
            for (int i = 0; i < rows; i++) {
                float *b = best + (size_t)i * (k + 1);
                for (int j = 0; j < cols; j++) {
                    float v = d[(size_t)i * cols + j];
                    if (v >= b[k]) continue;
                    int p = k;
                    while (p > 0 && b[p - 1] > v) {
                        b[p] = b[p - 1];
                        p--;
                    }
                    b[p] = v;
                }
            }
        }
        for (int i = 0; i < rows; i++) radii[r0 + i] = best[(size_t)i * (k + 1) + k];
    }
    free(nx);
    free(d);
    free(best);
    return rc;
}

int me_precision_recall(int64_t n_ref, const float *ref, const float *ref_radii, int64_t n_s, const float *s,
                        const float *s_radii, int dim, double *precision, double *recall)
{
    if (n_ref < 1 || n_s < 1) return me_fail(MOEDIT_EINPUT, "precision/recall: an empty set");
    float *nr = norms(n_ref, dim, ref), *ns = norms(n_s, dim, s), *d = me_alloc(sizeof(float) * ROWS * COLS);
    uint8_t *ref_in = me_calloc((size_t)n_ref, 1), *s_in = me_calloc((size_t)n_s, 1);
    int rc = nr && ns && d && ref_in && s_in ? MOEDIT_OK : MOEDIT_EINTERNAL;
    for (int64_t r0 = 0; !rc && r0 < n_ref; r0 += ROWS) {
        int rows = n_ref - r0 < ROWS ? (int)(n_ref - r0) : ROWS;
        for (int64_t c0 = 0; c0 < n_s; c0 += COLS) {
            int cols = n_s - c0 < COLS ? (int)(n_s - c0) : COLS;
            distances(rows, ref + r0 * dim, nr + r0, cols, s + c0 * dim, ns + c0, dim, d);
            /* a reference point is recalled when within some sample's radius */
            #pragma omp parallel for schedule(static)
            for (int i = 0; i < rows; i++)
                for (int j = 0; j < cols && !ref_in[r0 + i]; j++)
                    if (d[(size_t)i * cols + j] <= s_radii[c0 + j]) ref_in[r0 + i] = 1;
            /* a sample is precise when within some reference point's radius */
            #pragma omp parallel for schedule(static)
            for (int j = 0; j < cols; j++)
                for (int i = 0; i < rows && !s_in[c0 + j]; i++)
                    if (d[(size_t)i * cols + j] <= ref_radii[r0 + i]) s_in[c0 + j] = 1;
        }
    }
    if (!rc) {
        int64_t p = 0, r = 0;
        for (int64_t j = 0; j < n_s; j++) p += s_in[j];
        for (int64_t i = 0; i < n_ref; i++) r += ref_in[i];
        *precision = (double)p / (double)n_s;
        *recall = (double)r / (double)n_ref;
    }
    free(nr);
    free(ns);
    free(d);
    free(ref_in);
    free(s_in);
    return rc;
}

/* Fréchet distance of the samples' features against stored statistics
   (when given) or the reference's features. */
static int frechet(const char *what, int dim, const float *s, int64_t ns, const float *r, int64_t nr,
                   const me_fid_stats *stored, double *out)
{
    me_fid_stats a = {0}, b = {0};
    if (stored && stored->dim != dim)
        return me_fail(MOEDIT_EINPUT, "%s: reference statistics of dimension %d, not %d", what, stored->dim, dim);
    if (!stored && !r) return me_fail(MOEDIT_EINPUT, "%s: the reference has neither statistics nor features", what);
    int rc = me_fid_stats_from_features(ns, dim, s, &a);
    if (!rc && !stored) rc = me_fid_stats_from_features(nr, dim, r, &b);
    if (!rc) rc = me_frechet_distance(&a, stored ? stored : &b, out);
    me_fid_stats_free(&a);
    me_fid_stats_free(&b);
    return rc;
}

int me_adm_evaluate(const me_adm_features *samples, const me_adm_features *ref, const me_fid_stats *ref_stats,
                    const me_fid_stats *ref_stats_s, int64_t is_split, me_adm_metrics *out)
{
    const me_adm_features *S = samples, *R = ref;
    if (!S->pool || !S->spatial || !S->logits || !R->pool)
        return me_fail(MOEDIT_EINPUT, "evaluate: the samples need pool, spatial and logits, the reference pool");
    if (S->n <= ME_PR_K || R->n <= ME_PR_K)
        return me_fail(MOEDIT_EINPUT, "evaluate: %lld samples and %lld reference images; precision/recall need at "
                       "least %d each", (long long)S->n, (long long)R->n, ME_PR_K + 1);
    memset(out, 0, sizeof *out);
    int rc = me_inception_score(S->n, ME_INCEPTION_CLASSES, S->logits, is_split, &out->inception_score);
    if (!rc) rc = frechet("FID", ME_INCEPTION_DIM, S->pool, S->n, R->pool, R->n, ref_stats, &out->fid);
    if (!rc)
        rc = frechet("sFID", ME_INCEPTION_SPATIAL, S->spatial, S->n, R->spatial, R->n, ref_stats_s, &out->sfid);
    if (rc) return rc;
    float *rr = me_alloc(sizeof(float) * (size_t)R->n), *rs = me_alloc(sizeof(float) * (size_t)S->n);
    rc = rr && rs ? MOEDIT_OK : MOEDIT_EINTERNAL;
    if (!rc) rc = me_manifold_radii(R->n, ME_INCEPTION_DIM, R->pool, ME_PR_K, rr);
    if (!rc) rc = me_manifold_radii(S->n, ME_INCEPTION_DIM, S->pool, ME_PR_K, rs);
    if (!rc)
        rc = me_precision_recall(R->n, R->pool, rr, S->n, S->pool, rs, ME_INCEPTION_DIM, &out->precision,
                                 &out->recall);
    free(rr);
    free(rs);
    return rc;
}

int me_adm_features_u8(me_inception *net, me_preprocess prep, int n, int h, int w, int c, const uint8_t *hwc,
                       float *pool, float *spatial, float *logits)
{
    int rc = me_inception_forward_u8_taps(net, prep, n, h, w, c, hwc, pool, spatial, NULL);
    /* the TF graph's softmax/logits/MatMul: pool3 · W, the bias is not added */
    if (!rc && logits && n > 0)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, ME_INCEPTION_CLASSES, ME_INCEPTION_DIM, 1.0f, pool,
                    ME_INCEPTION_DIM, me_inception_fc_weight(net), ME_INCEPTION_DIM, 0.0f, logits,
                    ME_INCEPTION_CLASSES);
    return rc;
}

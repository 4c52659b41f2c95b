/* fid.h — Fréchet Inception Distance and Inception Score from features.

     me_fid_stats a, b;
     me_fid_stats_from_features(n, 2048, feats, &a);     // mean, covariance (N-1)
     me_fid_stats_load("VIRTUAL_imagenet256_labeled.npz", &b);   // ADM mu/sigma
     double fid;
     me_frechet_distance(&a, &b, &fid);
     me_fid_stats_free(&a); me_fid_stats_free(&b);

   Everything is double precision. FID = |μ₁−μ₂|² + tr Σ₁ + tr Σ₂ − 2 tr (Σ₁Σ₂)^½,
   where tr (Σ₁Σ₂)^½ = Σᵢ √λᵢ(√Σ₁ Σ₂ √Σ₁) — the same eigenvalues, but of a
   symmetric positive semi-definite matrix, so LAPACK's symmetric solver
   gives them real and no complex sqrtm is needed (pytorch-fid uses
   scipy.linalg.sqrtm of the non-symmetric product). Eigenvalues that
   rounding makes slightly negative count as 0, which also covers the rank-
   deficient covariances of fewer samples than dimensions. */
#ifndef MOEDIT_FID_H
#define MOEDIT_FID_H

#include <stdint.h>
#include "weights/npy.h"

typedef struct {
    int dim;
    int64_t count;    /* samples behind the statistics (0 when loaded from mu/sigma) */
    double *mu;       /* [dim] */
    double *sigma;    /* [dim, dim] */
} me_fid_stats;

/* Mean and unbiased covariance (as np.cov) of n >= 2 rows of dim floats. */
int me_fid_stats_from_features(int64_t n, int dim, const float *features, me_fid_stats *out);
/* An .npz with "mu" [d] and "sigma" [d, d] (float32 or float64). */
int me_fid_stats_load(const char *path, me_fid_stats *out);
/* The same from an open npz and the members mu_name, sigma_name ("mu",
   "sigma"; ADM references also hold "mu_s", "sigma_s"); path names it in
   messages. sigma's header is checked before d*d doubles are allocated. */
int me_fid_stats_from_npz(me_npz *z, const char *path, const char *mu_name, const char *sigma_name,
                          me_fid_stats *out);
/* Writes mu and sigma as float64, atomically. */
int me_fid_stats_save(const char *path, const me_fid_stats *s);
void me_fid_stats_free(me_fid_stats *s);

int me_frechet_distance(const me_fid_stats *a, const me_fid_stats *b, double *fid);

/* Inception Score as guided-diffusion's evaluator: p(y|x) = softmax of the
   logits; exp(mean_x KL(p(y|x) ‖ p(y))) over each chunk of split_size
   samples (the last may be shorter; <= 0: one chunk), averaged. */
int me_inception_score(int64_t n, int classes, const float *logits, int64_t split_size, double *is);

/* ---- the ADM evaluator (guided-diffusion evaluations/evaluator.py) ------ */

/* Precision/Recall neighbourhood: the radius of a point is the squared
   distance to its 3rd nearest neighbour in its own set. */
#define ME_PR_K 3

/* One featurised image batch (rows in the same order in each array):
   pool3 [n, 2048], the sFID tap [n, 2023], logits pool3 · fc.weightᵀ
   without the bias [n, 1008]. spatial / logits may be NULL where unused. */
typedef struct {
    int64_t n;
    const float *pool, *spatial, *logits;
} me_adm_features;

typedef struct {
    double inception_score, fid, sfid, precision, recall;
} me_adm_metrics;

/* The five numbers of the evaluator. samples needs all three arrays; ref
   needs pool (Precision/Recall use the reference's images always) and
   spatial unless ref_stats_s is given. ref_stats / ref_stats_s: stored
   statistics (an ADM reference batch's mu, sigma / mu_s, sigma_s) that win
   over the reference's features, or NULL. is_split: 5000 in the evaluator.
   Fails with MOEDIT_EINPUT on fewer than ME_PR_K + 1 images in a set or
   statistics of the wrong dimension. */
int me_adm_evaluate(const me_adm_features *samples, const me_adm_features *ref, const me_fid_stats *ref_stats,
                    const me_fid_stats *ref_stats_s, int64_t is_split, me_adm_metrics *out);

/* ManifoldEstimator.manifold_radii: radii[i] = the (k+1)-th smallest of
   the squared distances from row i to every row (itself included, at 0).
   Computed in column blocks, never an n × n matrix. n > k. */
int me_manifold_radii(int64_t n, int dim, const float *x, int k, float *radii);
/* ManifoldEstimator.evaluate_pr with the radii of both sets: precision =
   share of samples within (<=) the radius of some reference point, recall =
   share of reference points within the radius of some sample. */
int me_precision_recall(int64_t n_ref, const float *ref, const float *ref_radii, int64_t n_s, const float *s,
                        const float *s_radii, int dim, double *precision, double *recall);

#endif

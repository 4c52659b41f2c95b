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

#endif

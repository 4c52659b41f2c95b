/* Statistics of Inception features and the distances and scores made from
   them, all in double precision (see fid.h for the formula). */
#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "core/core.h"
#include "fid/fid.h"
#include "weights/npy.h"

/* Rows per dsyrk update: enough for a fast rank-k update, small enough to
   keep the centred copy (CHUNK × dim doubles) at 4 MB for dim 2048. */
#define CHUNK 256

void me_fid_stats_free(me_fid_stats *s)
{
    free(s->mu);
    free(s->sigma);
    memset(s, 0, sizeof *s);
}

static int stats_alloc(int dim, me_fid_stats *s)
{
    memset(s, 0, sizeof *s);
    s->dim = dim;
    s->mu = me_calloc((size_t)dim, sizeof(double));
    s->sigma = me_calloc((size_t)dim * dim, sizeof(double));
    if (!s->mu || !s->sigma) {
        me_fid_stats_free(s);
        return MOEDIT_EINTERNAL;
    }
    return MOEDIT_OK;
}

int me_fid_stats_from_features(int64_t n, int dim, const float *f, me_fid_stats *out)
{
    if (n < 2 || dim < 1)
        return me_fail(MOEDIT_EINPUT, "statistics need at least 2 samples (got %lld)", (long long)n);
    int rc = stats_alloc(dim, out);
    if (rc) return rc;
    out->count = n;
    double *c = me_alloc(sizeof(double) * CHUNK * dim);
    if (!c) {
        me_fid_stats_free(out);
        return MOEDIT_EINTERNAL;
    }
    for (int64_t i = 0; i < n; i++)
        for (int j = 0; j < dim; j++) out->mu[j] += f[i * dim + j];
    for (int j = 0; j < dim; j++) out->mu[j] /= (double)n;
    /* Two passes (mean first, then centred products) rather than
       E[xxᵀ] − μμᵀ, which cancels catastrophically for features far from 0. */
    for (int64_t i0 = 0; i0 < n; i0 += CHUNK) {
        int rows = n - i0 < CHUNK ? (int)(n - i0) : CHUNK;
        for (int r = 0; r < rows; r++)
            for (int j = 0; j < dim; j++) c[(size_t)r * dim + j] = f[(i0 + r) * dim + j] - out->mu[j];
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, dim, rows, 1.0, c, dim, 1.0, out->sigma, dim);
    }
    free(c);
    for (int i = 0; i < dim; i++)
        for (int j = i; j < dim; j++) {
            double v = out->sigma[(size_t)i * dim + j] / (double)(n - 1);
            out->sigma[(size_t)i * dim + j] = out->sigma[(size_t)j * dim + i] = v;
        }
    return MOEDIT_OK;
}

/* A float32/float64 array member of an npz as doubles. */
static int get_f64(me_npz *z, const char *path, const char *name, int ndim, int64_t d, double *dst)
{
    me_array a;
    int rc = me_npz_get(z, name, &a);
    if (rc) return rc;
    int ok = a.ndim == ndim && a.shape[0] == d && (ndim == 1 || a.shape[1] == d) &&
             (a.dtype == ME_F32 || a.dtype == ME_F64);
    if (ok && a.dtype == ME_F64) memcpy(dst, a.data, sizeof(double) * a.numel);
    else if (ok)
        for (int64_t i = 0; i < a.numel; i++) dst[i] = ((const float *)a.data)[i];
    me_array_free(&a);
    if (!ok)
        return me_fail(MOEDIT_EINPUT, "%s: '%s' is not a float array of %s %lld", path, name,
                       ndim == 1 ? "length" : "size square", (long long)d);
    return MOEDIT_OK;
}

/* The size a square (ndim 2) or vector (ndim 1) member claims, -1 for any
   other shape; read as a view of the archive, so nothing d*d is allocated. */
static int member_dim(me_npz *z, const char *name, int ndim, int64_t *d)
{
    me_array a;
    int rc = me_npz_get(z, name, &a);
    if (rc) return rc;
    *d = a.ndim == ndim && (ndim == 1 || a.shape[1] == a.shape[0]) ? a.shape[0] : -1;
    me_array_free(&a);
    return MOEDIT_OK;
}

/* What a mean and covariance must be for the distance to mean anything:
   finite, sigma symmetric (the eigensolver reads one triangle, where
   pytorch-fid's sqrtm of Σ₁Σ₂ would see both: a non-symmetric sigma would
   give a different number than the reference, silently), variances ≥ 0 and
   no covariance beyond √(σᵢᵢσⱼⱼ) — a negative variance alone turns the
   traces into a negative FID. The tolerances cover a float32 round trip of
   np.cov's output and rounding of perfectly correlated features. */
static int stats_check(const me_fid_stats *s, const char *path, const char *mu_name, const char *sigma_name)
{
    const int d = s->dim;
    for (int i = 0; i < d; i++)
        if (!isfinite(s->mu[i])) return me_fail(MOEDIT_EINPUT, "%s: '%s'[%d] is %g", path, mu_name, i, s->mu[i]);
    for (size_t i = 0; i < (size_t)d * d; i++)
        if (!isfinite(s->sigma[i]))
            return me_fail(MOEDIT_EINPUT, "%s: '%s'[%zu, %zu] is %g", path, sigma_name, i / d, i % d, s->sigma[i]);
    for (int i = 0; i < d; i++) {
        double vi = s->sigma[(size_t)i * d + i];
        if (vi < 0)
            return me_fail(MOEDIT_EINPUT, "%s: '%s' has a negative variance (%g at [%d, %d]): not a covariance",
                           path, sigma_name, vi, i, i);
        for (int j = i + 1; j < d; j++) {
            double a = s->sigma[(size_t)i * d + j], b = s->sigma[(size_t)j * d + i];
            double bound = sqrt(vi * s->sigma[(size_t)j * d + j]);
            if (fabs(a - b) > 1e-5 * (bound + fabs(a) + fabs(b)))
                return me_fail(MOEDIT_EINPUT, "%s: '%s' is not symmetric ([%d, %d] = %g, [%d, %d] = %g)", path,
                               sigma_name, i, j, a, j, i, b);
            if (fabs(a) > bound * (1 + 1e-5))
                return me_fail(MOEDIT_EINPUT, "%s: '%s'[%d, %d] = %g exceeds the square root of its variances "
                               "(%g): not a covariance", path, sigma_name, i, j, a, bound);
        }
    }
    return MOEDIT_OK;
}

int me_fid_stats_from_npz(me_npz *z, const char *path, const char *mu_name, const char *sigma_name,
                          me_fid_stats *out)
{
    memset(out, 0, sizeof *out);
    int64_t d, ds;
    int rc = member_dim(z, mu_name, 1, &d);
    if (rc) return rc;
    if (d < 1 || d > 65536) return me_fail(MOEDIT_EINPUT, "%s: '%s' is not a vector", path, mu_name);
    if ((rc = member_dim(z, sigma_name, 2, &ds))) return rc;
    if (ds != d)
        return me_fail(MOEDIT_EINPUT, "%s: '%s' is not a float array of size square %lld", path, sigma_name,
                       (long long)d);
    rc = stats_alloc((int)d, out);
    if (!rc && !(rc = get_f64(z, path, mu_name, 1, d, out->mu))) rc = get_f64(z, path, sigma_name, 2, d, out->sigma);
    if (!rc) rc = stats_check(out, path, mu_name, sigma_name);
    if (rc) me_fid_stats_free(out);
    return rc;
}

int me_fid_stats_load(const char *path, me_fid_stats *out)
{
    memset(out, 0, sizeof *out);
    me_npz z;
    int rc = me_npz_open(path, &z);
    if (rc) return rc;
    rc = me_fid_stats_from_npz(&z, path, "mu", "sigma", out);
    me_npz_close(&z);
    return rc;
}

int me_fid_stats_save(const char *path, const me_fid_stats *s)
{
    me_zip_writer w;
    int rc = me_zip_writer_open(&w, path);
    if (rc) return rc;
    int64_t d = s->dim;
    if (!(rc = me_npz_add(&w, "mu", ME_F64, 1, &d, s->mu)) &&
        !(rc = me_npz_add(&w, "sigma", ME_F64, 2, (int64_t[]){d, d}, s->sigma)))
        return me_zip_writer_finish(&w);
    me_zip_writer_abort(&w);
    return rc;
}

/* Eigenvalues (ascending) of the symmetric a [d, d], and its eigenvectors in
   a's rows when vectors is set. a is overwritten. */
static int eigh(int d, double *a, double *w, int vectors)
{
    lapack_int info = LAPACKE_dsyevd(LAPACK_ROW_MAJOR, vectors ? 'V' : 'N', 'U', d, a, d, w);
    /* the inputs are finite (checked first), so what fails here is a
       product that overflowed or a matrix no covariance could be */
    if (info)
        return me_fail(MOEDIT_EINPUT, "fid: the covariances are not valid (the symmetric eigensolver failed, info %d)",
                       (int)info);
    return MOEDIT_OK;
}

/* Statistics from features carry any NaN of the features; loaded ones are
   checked by stats_check, the library's callers' are not. */
static int stats_finite(const me_fid_stats *s)
{
    for (int i = 0; i < s->dim; i++)
        if (!isfinite(s->mu[i])) return 0;
    for (size_t i = 0; i < (size_t)s->dim * s->dim; i++)
        if (!isfinite(s->sigma[i])) return 0;
    return 1;
}

/* Eigenvalues w (ascending, as dsyevd gives them) of a covariance, or of
   √Σ₁Σ₂√Σ₁ for the second: one below zero beyond rounding is a matrix no
   covariance could be, which clipping it to 0 for the square root would
   turn into a plausible, wrong distance (pytorch-fid's sqrtm refuses such
   a product for its imaginary part). The bound leaves room for a float32
   round trip of a rank-deficient covariance (fewer images than features). */
static int semi_definite(const char *which, int d, const double *w)
{
    if (d < 1) return MOEDIT_OK;
    double radius = fmax(fabs(w[0]), fabs(w[d - 1]));
    if (w[0] < -1e-4 * radius)
        return me_fail(MOEDIT_EINPUT, "fid: the %s covariance is not positive semi-definite (an eigenvalue of %g, "
                       "the largest %g)", which, w[0], w[d - 1]);
    return MOEDIT_OK;
}

int me_frechet_distance(const me_fid_stats *a, const me_fid_stats *b, double *fid)
{
    int d = a->dim;
    if (b->dim != d)
        return me_fail(MOEDIT_EINPUT, "fid: statistics of different dimensions (%d and %d)", a->dim, b->dim);
    if (!stats_finite(a) || !stats_finite(b))
        return me_fail(MOEDIT_EINPUT, "fid: the %s statistics hold NaN or inf (non-finite features?)",
                       stats_finite(a) ? "second" : "first");
    size_t dd = (size_t)d * d;
    double *v = me_alloc(sizeof(double) * dd), *r = me_alloc(sizeof(double) * dd);
    double *m = me_alloc(sizeof(double) * dd), *w = me_alloc(sizeof(double) * d);
    int rc = v && r && m && w ? MOEDIT_OK : MOEDIT_EINTERNAL;
    /* √Σ₁ = V diag(√λ) Vᵀ: with the eigenvectors in V's columns (row-major
       output of dsyevd), r = V·diag(λ^¼) so √Σ₁ = r·rᵀ */
    if (!rc) {
        memcpy(v, a->sigma, sizeof(double) * dd);
        rc = eigh(d, v, w, 1);
    }
    if (!rc) rc = semi_definite("first", d, w);
    if (!rc) {
        for (int i = 0; i < d; i++)
            for (int j = 0; j < d; j++) r[(size_t)i * d + j] = v[(size_t)i * d + j] * sqrt(sqrt(w[j] > 0 ? w[j] : 0));
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, d, d, 1.0, r, d, 0.0, v, d);
        for (int i = 0; i < d; i++)
            for (int j = 0; j < i; j++) v[(size_t)i * d + j] = v[(size_t)j * d + i];
        /* m = √Σ₁ Σ₂ √Σ₁ */
        cblas_dsymm(CblasRowMajor, CblasLeft, CblasUpper, d, d, 1.0, b->sigma, d, v, d, 0.0, r, d);
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, d, d, d, 1.0, v, d, r, d, 0.0, m, d);
        rc = eigh(d, m, w, 0);
    }
    if (!rc) rc = semi_definite("second", d, w);
    if (!rc) {
        /* eigenvalues within semi_definite's rounding bound of 0 may be
           rounding alone, and their square roots (1e-7 of the largest for
           one of 1e-14) then overstate the trace: with fewer images than
           features (a rank-deficient Σ) a set against itself comes out a
           little below 0, as in pytorch-fid */
        const double floor = 1e-4 * fmax(fabs(w[0]), fabs(w[d - 1]));
        double tr_sqrt = 0, tr1 = 0, tr2 = 0, diff = 0, rounding = 0;
        for (int i = 0; i < d; i++) {
            tr_sqrt += sqrt(w[i] > 0 ? w[i] : 0);
            if (w[i] > 0 && w[i] <= floor) rounding += sqrt(w[i]);
            tr1 += a->sigma[(size_t)i * d + i];
            tr2 += b->sigma[(size_t)i * d + i];
            double e = a->mu[i] - b->mu[i];
            diff += e * e;
        }
        *fid = diff + tr1 + tr2 - 2 * tr_sqrt;
        /* finite inputs can still overflow; a distance below 0 beyond
           rounding means a sigma that is not positive semi-definite */
        if (!isfinite(*fid))
            rc = me_fail(MOEDIT_EINPUT, "fid: the distance overflows (%g): statistics out of range", *fid);
        else if (*fid < -(2 * rounding + 1e-6 * (diff + tr1 + tr2)))
            rc = me_fail(MOEDIT_EINPUT, "fid: the distance is negative (%g): the covariances are not positive "
                         "semi-definite", *fid);
    }
    free(v);
    free(r);
    free(m);
    free(w);
    return rc;
}

/* exp(KL) of one chunk of n samples' softmax rows p (py: scratch [classes]). */
static double chunk_score(int64_t n, int classes, const double *p, double *py)
{
    memset(py, 0, sizeof(double) * classes);
    for (int64_t i = 0; i < n; i++)
        for (int k = 0; k < classes; k++) py[k] += p[i * classes + k] / (double)n;
    double kl = 0;
    for (int64_t i = 0; i < n * classes; i++)
        if (p[i] > 0) kl += p[i] * (log(p[i]) - log(py[i % classes]));
    return exp(kl / (double)n);
}

int me_inception_score(int64_t n, int classes, const float *logits, int64_t split_size, double *is)
{
    if (n < 1 || classes < 1) return me_fail(MOEDIT_EINPUT, "inception score: no samples");
    if (split_size <= 0 || split_size > n) split_size = n;
    double *p = me_alloc(sizeof(double) * (size_t)split_size * classes), *py = me_alloc(sizeof(double) * classes);
    if (!p || !py) {
        free(p);
        free(py);
        return MOEDIT_EINTERNAL;
    }
    double sum = 0;
    int64_t chunks = 0;
    for (int64_t c0 = 0; c0 < n; c0 += split_size, chunks++) {
        int64_t m = n - c0 < split_size ? n - c0 : split_size;
        for (int64_t i = 0; i < m; i++) {   /* softmax, shifted by the row's max */
            const float *l = logits + (c0 + i) * classes;
            double *pi = p + i * classes, mx = l[0], s = 0;
            for (int k = 1; k < classes; k++) mx = l[k] > mx ? l[k] : mx;
            for (int k = 0; k < classes; k++) s += pi[k] = exp(l[k] - mx);
            for (int k = 0; k < classes; k++) pi[k] /= s;
        }
        sum += chunk_score(m, classes, p, py);
    }
    *is = sum / (double)chunks;
    free(p);
    free(py);
    return MOEDIT_OK;
}

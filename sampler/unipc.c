/* UniPC (Zhao et al. 2023, "UniPC: A Unified Predictor-Corrector Framework
   for Fast Sampling of Diffusion Models"), written from diffusers'
   UniPCMultistepScheduler with predict_x0 and solver_type bh2
   (B(h) = expm1(−h)): the predictor UniP-p and the corrector UniC-p over
   data predictions, with the φ-function coefficients b_k and the
   Vandermonde system in the ratios r_k = (λ_{s_k} − λ_{s_0}) / h.

   Coefficients in double from the float32 sigmas; the update in float32. */
#include <math.h>
#include "sampler/solver.h"

/* Solves the p×p system a·x = b (p ≤ 3) by Gaussian elimination with
   partial pivoting, as torch.linalg.solve's LU does. */
static void solve(int p, double a[3][3], double *b, double *x)
{
    for (int c = 0; c < p; c++) {
        int piv = c;
        for (int r = c + 1; r < p; r++)
            if (fabs(a[r][c]) > fabs(a[piv][c])) piv = r;
        for (int k = 0; k < p; k++) {
            double tmp = a[c][k];
            a[c][k] = a[piv][k];
            a[piv][k] = tmp;
        }
        double tb = b[c];
        b[c] = b[piv];
        b[piv] = tb;
        for (int r = c + 1; r < p; r++) {
            double f = a[r][c] / a[c][c];
            for (int k = c; k < p; k++) a[r][k] -= f * a[c][k];
            b[r] -= f * b[c];
        }
    }
    for (int r = p - 1; r >= 0; r--) {
        double v = b[r];
        for (int k = r + 1; k < p; k++) v -= a[r][k] * x[k];
        x[r] = v / a[r][r];
    }
}

/* The shared part of UniP / UniC of order p: the ratios rk[0..p-1]
   (rk[p-1] = 1), R[i][k] = rk[k]^i, b[i], and the step's scalars. */
typedef struct {
    double rk[3], R[3][3], b[3];
    double cx, h_phi_1, B_h, alpha_t;
} bh_coefs;

static bh_coefs coefs(int p, float sig_t, const float *sig)
{
    bh_coefs c = {0};
    const me_vp t = me_vp_of(sig_t), s0 = me_vp_of(sig[0]);
    const double h = t.lambda - s0.lambda, hh = -h;
    for (int k = 1; k < p; k++) c.rk[k - 1] = (me_vp_of(sig[k]).lambda - s0.lambda) / h;
    c.rk[p - 1] = 1;
    c.h_phi_1 = expm1(hh);
    c.B_h = expm1(hh);   /* bh2 */
    double h_phi_k = c.h_phi_1 / hh - 1, fact = 1;
    for (int i = 1; i <= p; i++) {
        for (int k = 0; k < p; k++) c.R[i - 1][k] = pow(c.rk[k], i - 1);
        c.b[i - 1] = h_phi_k * fact / c.B_h;
        fact *= i + 1;
        h_phi_k = h_phi_k / hh - 1 / fact;
    }
    c.cx = t.sigma / s0.sigma;
    c.alpha_t = t.alpha;
    return c;
}

void me_unipc_predict(int p, float sig_t, const float *sig, const float *const *m, size_t len, float *x)
{
    bh_coefs c = coefs(p, sig_t, sig);
    double rhos[2] = {0.5, 0};
    if (p == 3) solve(2, c.R, c.b, rhos);
    /* w[k]: the weight of (m_k − m0), the divided difference D1_k = (m_k − m0) / r_k */
    float w[2] = {0, 0};
    for (int k = 1; k < p; k++) w[k - 1] = (float)(-c.alpha_t * c.B_h * rhos[k - 1] / c.rk[k - 1]);
    const float cx = (float)c.cx, c0 = (float)(-c.alpha_t * c.h_phi_1);
    for (size_t i = 0; i < len; i++) {
        const float m0 = m[0][i];
        float v = cx * x[i] + c0 * m0;
        for (int k = 1; k < p; k++) v += w[k - 1] * (m[k][i] - m0);
        x[i] = v;
    }
}

void me_unipc_correct(int p, float sig_t, const float *sig, const float *const *m, const float *model_t,
                      const float *last, size_t len, float *x)
{
    bh_coefs c = coefs(p, sig_t, sig);
    double rhos[3] = {0.5, 0, 0};
    if (p > 1) solve(p, c.R, c.b, rhos);
    float w[2] = {0, 0};
    for (int k = 1; k < p; k++) w[k - 1] = (float)(-c.alpha_t * c.B_h * rhos[k - 1] / c.rk[k - 1]);
    const float cx = (float)c.cx, c0 = (float)(-c.alpha_t * c.h_phi_1), ct = (float)(-c.alpha_t * c.B_h * rhos[p - 1]);
    for (size_t i = 0; i < len; i++) {
        const float m0 = m[0][i];
        float v = cx * last[i] + c0 * m0 + ct * (model_t[i] - m0);
        for (int k = 1; k < p; k++) v += w[k - 1] * (m[k][i] - m0);
        x[i] = v;
    }
}

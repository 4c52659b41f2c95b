/* solver.h — internals the multistep and flow solvers share: one guided
   model evaluation (with the guidance interval), the noise streams, and the
   update rules of DPM-Solver++ (dpm_solver.c) and UniPC (unipc.c) on flat
   float32 arrays. */
#ifndef MOEDIT_SOLVER_H
#define MOEDIT_SOLVER_H

#include "sampler/sampler.h"

/* ---- evaluations ------------------------------------------------------- */

typedef struct {
    const moedit_sample_options *o;
    me_denoise_fn fn;
    void *ctx;
    int n, total;          /* conditional rows; evaluations in the run */
    int gk;                /* guided channels, at most C */
    size_t hw, chw, row;   /* row: one output row, OC·HW values */
    float *xin, *out, *t;
    int64_t *y;
    int evals;             /* evaluations so far: the step the model is told */
} me_guided;

/* Allocates the buffers for 2n rows; fails with MOEDIT_EINTERNAL. */
int me_guided_init(me_guided *g, const moedit_sample_options *o, const me_sample_shape *s, me_denoise_fn fn,
                   void *ctx, int n, const int64_t *labels, int total);
void me_guided_free(me_guided *g);

/* One model evaluation of x [n, C, H, W] at model time t: with guidance
   when cfg > 1 and t lies in the interval (then rows n.. are the null
   half), else the conditional rows alone. *pred points at the prediction
   of row r at (*pred) + r·g->row, its first C channels the ε (or flow
   velocity) to use. Reports progress. */
int me_guided_eval(me_guided *g, const float *x, float t, const float **pred);

/* ---- noise ------------------------------------------------------------- */

typedef struct {
    const moedit_sample_options *o;
    int n;
    size_t chw;
    me_torch_rng torch;
    uint64_t *seeds;
} me_noise;

int me_noise_init(me_noise *z, const moedit_sample_options *o, int n, size_t chw);
void me_noise_free(me_noise *z);
/* Draw `draw` of all n rows into buf: torch.randn(n, C, H, W) from the one
   torch generator, or each row's native stream. */
void me_noise_draw(me_noise *z, uint32_t draw, float *buf);

/* ---- update rules ------------------------------------------------------ */

/* diffusers' _sigma_to_alpha_sigma_t and λ = log α − log σ of a sigma. */
typedef struct {
    double alpha, sigma, lambda;
} me_vp;
me_vp me_vp_of(float sigma);

/* DPM-Solver++ (midpoint) of the given order from σ_s0 = sig[0] to
   sig_t, over len values: x ← update(x, m[0] newest data prediction,
   m[1], m[2]; sig[1], sig[2] their sigmas). noise != NULL: the
   sde-dpmsolver++ variant (order ≤ 2). */
void me_dpm_update(int order, float sig_t, const float *sig, const float *const *m, const float *noise, size_t len,
                   float *x);

/* UniPC bh2, data prediction. Predictor of order p from sig[0] to sig_t:
   x ← P(x; m[0..p-1]) with sig[k] the sigma of m[k]. */
void me_unipc_predict(int p, float sig_t, const float *sig, const float *const *m, size_t len, float *x);
/* Corrector of order p at sig_t for the previous step from sig[0]:
   x ← C(last, model_t; m[0..p-1]), with last the sample before that
   step's predictor and model_t the data prediction at sig_t. */
void me_unipc_correct(int p, float sig_t, const float *sig, const float *const *m, const float *model_t,
                      const float *last, size_t len, float *x);

#endif

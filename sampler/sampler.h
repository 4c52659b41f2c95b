/* sampler.h — the sampler module's internals: noise generators, diffusion
   schedules with respacing, and the sampling loop behind moedit_sample().

   The loop takes the network as a callback so that tests can drive it with
   an analytic toy denoiser (tools/sampler_reference.py has the same one).

   Numerics follow the upstream Python (facebookresearch/DiT diffusion/,
   feizc/DiT-MoE diffusion/rectified_flow.py): schedules in double, the
   per-step update in float32 with float32 coefficients, as torch does after
   _extract_into_tensor. */
#ifndef MOEDIT_SAMPLER_H
#define MOEDIT_SAMPLER_H

#include <stddef.h>
#include <stdint.h>
#include "moedit.h"

/* ---- noise ------------------------------------------------------------- */

/* PyTorch's CPU generator: mt19937 seeded as torch.manual_seed(seed), plus
   the cached second value of the double-precision Box–Muller. */
typedef struct {
    uint32_t mt[624];
    int idx;
    int has_cached;
    double cached;
} me_torch_rng;

void me_torch_rng_seed(me_torch_rng *r, uint64_t seed);
uint32_t me_torch_rng_u32(me_torch_rng *r);
/* torch.randn(n) into out: the vectorised float path for n >= 16, the
   double-precision scalar path (with its cached value) below. */
void me_torch_randn(me_torch_rng *r, float *out, size_t n);

/* Native generator: Philox4x32-10, counter-based. Value j of draw `draw` of
   stream `seed` is a pure function of (seed, draw, j), so a row's noise does
   not depend on which batch it is sampled in. */
void me_native_randn(uint64_t seed, uint32_t draw, float *out, size_t n);
/* The stream seed of row i when no per-row seeds are given. */
uint64_t me_native_row_seed(uint64_t seed, uint64_t row);

/* ---- schedules --------------------------------------------------------- */

#define ME_DIFFUSION_STEPS 1000

/* 1000 betas: linear 1e-4..0.02 (DiT's "linear") or the cosine schedule
   (Switch-DiT's "cosine", max beta 0.999). */
void me_beta_schedule(int cosine, int T, double *betas);

/* space_timesteps(): marks use[t] for the kept timesteps of 0..T-1 and
   returns how many, or fails (MOEDIT_EINPUT, negative return) on a bad
   spec: "250", "10,10,10", "ddim25". */
int me_space_timesteps(int T, const char *spec, unsigned char *use);

/* The respaced process: index k = 0..steps-1, k = steps-1 is the first
   (noisiest) sampling step. All arrays [steps], float64. */
typedef struct {
    int steps;
    int *timestep;          /* original timestep t_k the model receives */
    double *betas, *alphas_cumprod, *alphas_cumprod_prev;
    double *posterior_log_variance_clipped, *log_betas, *fixed_large_log_variance;
    double *posterior_mean_coef1, *posterior_mean_coef2;
    double *sqrt_recip_alphas_cumprod, *sqrt_recipm1_alphas_cumprod;
} me_diffusion;

int me_diffusion_init(me_diffusion *d, int cosine, const char *spec);
void me_diffusion_free(me_diffusion *d);

/* Flow step count from a spec: a plain positive integer. */
int me_flow_steps(const char *spec, int *steps);

/* ---- the loop ---------------------------------------------------------- */

/* The network: out[rows, out_channels, H, W] for x[rows, C, H, W] at model
   timesteps t[rows] and labels y[rows]; rows from null_from on are the
   guidance null rows; step is the sampling step index (0 = noisiest). */
typedef int (*me_denoise_fn)(void *ctx, int step, int rows, int null_from, const float *x,
                             const float *t, const int64_t *y, float *out);

typedef struct {
    int channels, size, out_channels, num_classes;
} me_sample_shape;

/* Samples n latents. o must be resolved: cfg_channels >= 0 (0 = all of the
   C prediction channels, else the first min(k, out_channels) raw output
   channels, as upstream's model_out[:, :k]) and cosine_schedule >= 0. */
int me_sample_run(const moedit_sample_options *o, const me_sample_shape *s, me_denoise_fn fn,
                  void *ctx, int n, const int64_t *labels, float *latents);

/* ---- multistep solvers and flow solvers (solver_*.c, dpm_solver.c,
   unipc.c, flow_solvers.c) ------------------------------------------------ */

/* "ddpm", "dpm++2m", … as the CLI and traces name them; NULL if unknown. */
const char *me_sampler_name(moedit_sampler s);
/* 1 for the samplers of rectified-flow models (flow, heun, midpoint). */
int me_sampler_is_flow(moedit_sampler s);
/* The steps a sampler takes when none are given: DDPM/DDIM "250" (with a
   cosine schedule "ddim250", which stops at t = 996: ᾱ₉₉₉ ≈ 2e-9 makes t =
   999 diverge), flow solvers "50", the multistep solvers "20". */
const char *me_default_steps(moedit_sampler s, int cosine);

/* Model evaluations the sampler makes with o->steps, or fails
   (MOEDIT_EINPUT) on steps that do not fit it. */
int me_sample_evaluations(const moedit_sample_options *o, int *evals);

/* Whether guidance runs for an evaluation at model time t. */
int me_cfg_active(const moedit_sample_options *o, float t);
/* The model times of a run's evaluations, in the order they are made
   (the noisiest first), into *times (me_alloc'd; the caller frees) and
   their number into *count: the respaced timesteps (DDPM/DDIM), the
   solver schedule's (dpm++/unipc), t = k/steps down to 1/steps (flow),
   and both evaluations of each step (heun, midpoint). */
int me_sample_times(const moedit_sample_options *o, float **times, int *count);
/* Fails (MOEDIT_EINPUT) when guidance is asked for (cfg > 1) in an
   interval that none of the run's evaluation times falls in: every image
   would come out unguided, silently (flow times 0.2,0.8 given to a DDPM
   model, whose timesteps are 0..999). */
int me_cfg_interval_check(const moedit_sample_options *o);

/* diffusers' set_timesteps for N inference steps: timestep[N] (first the
   noisiest, integers) and sigma[N + 1] (float32 as diffusers stores them;
   the last is zero: final_sigmas_type "zero"). */
typedef struct {
    int steps;
    int *timestep;
    float *sigma;
} me_solver_schedule;

int me_solver_schedule_init(me_solver_schedule *s, int cosine, int steps, moedit_spacing spacing, int karras);
void me_solver_schedule_free(me_solver_schedule *s);

/* The DPM-Solver++ / UniPC loop and the flow heun / midpoint loop; same
   contract as me_sample_run, which calls them. */
int me_multistep_run(const moedit_sample_options *o, const me_sample_shape *s, me_denoise_fn fn, void *ctx,
                     int n, const int64_t *labels, float *latents);
int me_flow_solver_run(const moedit_sample_options *o, const me_sample_shape *s, me_denoise_fn fn, void *ctx,
                       int n, const int64_t *labels, float *latents);

#endif

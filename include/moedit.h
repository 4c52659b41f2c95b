/* moedit.h — class-conditional image generation with (Mixture-of-Experts)
   diffusion transformers: DiT, DiT-MoE and Switch-DiT, in C11.

   The pipeline, one module each:
     checkpoint (weights/) → transformer (dit/) → sampler (sampler/) → VAE (vae/)
     → image / expert trace / npz (cli/, fid/).

   Typical use:

     moedit_model *m;
     if (moedit_model_load("DiT-MoE-S-2-8E2A.pt", NULL, &m) != MOEDIT_OK)
         fprintf(stderr, "%s\n", moedit_last_error());
     moedit_model_forward(m, n, x, t, y, out);   // one evaluation, no guidance
     moedit_model_free(m);

   Conventions
   - Every function that can fail returns MOEDIT_OK (0), MOEDIT_EINPUT (2: the
     caller's file or arguments are bad) or MOEDIT_EINTERNAL (1), and leaves a
     one-line message in moedit_last_error() (per thread). Nothing prints.
   - Images and latents are float32 NCHW, row-major, contiguous.
   - Class labels are int64; label == num_classes is the classifier-free
     guidance null class.

   Threads
   - A moedit_model, moedit_vae, moedit_inception or moedit_route_log is used
     by one thread at a time (it owns its working buffers); distinct objects
     may be used from different threads at once. For parallel sampling, load
     one model per thread. Each call itself runs on moedit_set_threads()
     OpenMP/BLAS threads.
   - The thread count is the library's only global setting; set it before
     starting other threads. Otherwise there are only read-only caches made
     once, thread-safely (the CPU feature probe). Error
     messages are per thread. The library never prints and never exits:
     every failure is a return code.

   Buffer ownership
   - Arrays and strings passed in (x, t, y, labels, noise, latents, z,
     images, features, paths, moedit_sample_options.steps) belong to the
     caller: read during the call only, never kept or freed. Output arrays
     are allocated by the caller with the documented shape. The one pointer
     kept is a tracer's user pointer (moedit_model_set_tracer), until the
     tracer is replaced or the model freed.
   - Objects made by moedit_*_load / _new are freed by the matching _free
     (NULL is accepted). A moedit_config pointer lives as long as its model;
     a moedit_route passed to a tracer lives for that callback only; a
     moedit_route_table stays valid until its log is cleared, fed or freed.
   - Strings returned (moedit_last_error, moedit_version) are the library's;
     the error text changes with the thread's next failure. */
#ifndef MOEDIT_H
#define MOEDIT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The version of this header; CMake's project version must match (checked
   at configure time). moedit_version() gives the library's at run time. */
#define MOEDIT_VERSION_MAJOR 0
#define MOEDIT_VERSION_MINOR 1
#define MOEDIT_VERSION_PATCH 0
#define MOEDIT_VERSION "0.1.0"

enum { MOEDIT_OK = 0, MOEDIT_EINTERNAL = 1, MOEDIT_EINPUT = 2 };

/* Message of the most recent failure on this thread ("" if none). */
const char *moedit_last_error(void);

/* Number of threads used by moedit's own kernels and by BLAS (0 = all cores
   the process may run on, capped by its cgroup's CPU quota, rounded up). */
void moedit_set_threads(int threads);

/* 1: where OpenMP's waits spin long (libgomp's default, or the environment
   has GOMP_SPINCOUNT above 3000 or OMP_WAIT_POLICY=active), every model
   forward first counts the other runnable tasks on the machine
   (/proc/loadavg less this process's running threads) and runs on the
   cores they leave free (online CPUs less that many), at most
   moedit_set_threads' count and at least 1, and so do the
   calling thread's other moedit calls (a VAE decode between forwards)
   until the next forward looks again; cores come back once the machine
   has stayed calm for 200 ms. A spinning thread whose
   partner is preempted holds the core the partner needs; short spins
   sleep instead, and keep every thread. Read the environment when called;
   default 0 (the CLI turns it on, except for `bench`). Linux only: where
   /proc cannot be read the count is not changed. */
void moedit_set_adaptive_threads(int on);

/* Whether every ZIP entry read (torch .pt/.pth/.bin, .npz) is checked against
   its CRC-32 (default 1; a mismatch fails naming the file and the entry).
   0 skips the check for the whole process: for huge files already trusted. */
void moedit_set_verify(int on);

/* 1 when this CPU multiplies bfloat16 natively (AVX512-BF16, or AMX tiles
   where present). Where 0, a model's bf16 option is ignored (the forward
   runs float32) and the VAE's bf16 convolutions are emulated: the same
   numerics as on such a CPU, no faster. */
int moedit_cpu_bf16(void);

/* ---- models ------------------------------------------------------------ */

typedef enum {
    MOEDIT_FAMILY_DIT = 0,     /* facebookresearch/DiT, dense feed-forward */
    MOEDIT_FAMILY_DIT_MOE,     /* feizc/DiT-MoE */
    MOEDIT_FAMILY_SWITCH_DIT   /* byeongjun-park/Switch-DiT */
} moedit_family;

typedef enum { MOEDIT_ATTN_TIMM = 0, MOEDIT_ATTN_QKNORM } moedit_attention;
typedef enum { MOEDIT_ROUTING_NONE = 0, MOEDIT_ROUTING_DMOE, MOEDIT_ROUTING_DTR } moedit_routing;

/* Everything the forward pass needs to know; detected from tensor names and
   shapes, except heads and top_k, which the weights cannot tell. */
typedef struct {
    moedit_family family;
    int depth, hidden, heads, patch, input_size, in_channels, out_channels;
    int num_classes;       /* the null class id is num_classes */
    int learn_sigma;       /* out_channels == 2 * in_channels */
    int mlp_hidden;        /* dense DiT fc1 width; DiT-MoE routed expert width */
    int shared_hidden;     /* DiT-MoE shared expert width (0: none) */
    int num_experts;       /* 0 for dense DiT */
    int top_k;
    moedit_attention attention;
    moedit_routing routing;
    int flow;              /* trained with rectified flow: t in [0,1] */
} moedit_config;

/* Where the transformer runs; zero-initialised means the CPU. */
typedef enum { MOEDIT_DEVICE_CPU = 0, MOEDIT_DEVICE_CUDA } moedit_device_kind;
typedef struct {
    moedit_device_kind kind;
    int index;   /* CUDA device ordinal */
} moedit_device;

/* MOEDIT_OK when d can run here, else MOEDIT_EINPUT with one of
   "moedit was built without CUDA (-DMOEDIT_CUDA=ON)", "no CUDA device",
   "no CUDA device N (M present)". */
int moedit_device_check(moedit_device d);

typedef struct {
    int heads;   /* 0 = default from the hidden size (384→6, 768→12, 1024/1152/1408→16) */
    int top_k;   /* 0 = 2, or what the checkpoint's metadata says */
    int bf16;    /* 1: keep the block matrices as bfloat16 and multiply them with
                    AVX512-BF16 dot products, or AMX tiles where the CPU has
                    them (activations rounded to bf16 per product, attention's
                    two products too; ignored on CPUs without AVX512-BF16:
                    moedit_cpu_bf16) */
    moedit_device device;  /* CUDA: the weights are uploaded once and every forward
                              runs on that GPU (inputs and outputs stay host arrays) */
    int fp32;    /* CUDA only: float32 weights and products with TF32 off, for
                    parity checks; the default on a GPU is bfloat16 */
    int no_verify;  /* 1: skip the CRC-32 check of a torch checkpoint's entries */
} moedit_load_options;

typedef struct moedit_model moedit_model;

/* Loads a .pt/.pth/.bin torch checkpoint, a .safetensors file or a diffusers
   folder; train.py checkpoints yield their "ema" weights. opt may be NULL. */
int moedit_model_load(const char *path, const moedit_load_options *opt, moedit_model **out);
void moedit_model_free(moedit_model *m);
const moedit_config *moedit_model_config(const moedit_model *m);

/* One evaluation of the network for n rows, all in one pass.
   x [n, in_channels, input_size, input_size]; t [n] timesteps as the model
   receives them; y [n] labels; out [n, out_channels, input_size, input_size]. */
int moedit_model_forward(moedit_model *m, int n, const float *x, const float *t,
                         const int64_t *y, float *out);

/* Allocates the activations for forwards of up to n rows now (a forward
   otherwise does so when it first needs them): MOEDIT_EINPUT when they
   would not fit in the memory available. Nothing to do on a GPU. */
int moedit_model_reserve(moedit_model *m, int n);

/* FLOPs of one forward of n rows counting only the experts that run. */
double moedit_model_flops(const moedit_model *m, int n);

/* The weights' identity: a CRC-32 over every tensor of the checkpoint as
   stored (name, type, shape, bytes), the same on any machine and for any
   copy of the file, different for other weights behind the same path.
   Taken at the first call, reading the weights once more (on a GPU while
   they are uploaded). */
int moedit_model_digest(moedit_model *m, uint32_t *crc);

/* ---- expert tracing ---------------------------------------------------- */

/* One routing decision of one token (DiT-MoE) or one row (Switch-DiT, where
   the gate depends on the timestep only and token is -1). */
typedef struct {
    int layer, step, row, token;
    float timestep;
    int64_t label;
    int is_null;           /* the row is the guidance null-class half */
    int k;                 /* number of chosen experts */
    const int *experts;    /* [k] */
    const float *weights;  /* [k] gate probabilities of the chosen experts */
    int num_probs;         /* Switch-DiT: all E gate probabilities, else 0 */
    const float *probs;
} moedit_route;

typedef void (*moedit_route_fn)(void *user, const moedit_route *r);

/* Calls fn for every routing decision of every later forward; NULL stops.
   step is whatever moedit_model_set_step() last set. */
void moedit_model_set_tracer(moedit_model *m, moedit_route_fn fn, void *user);
void moedit_model_set_step(moedit_model *m, int step, int null_rows_from);

/* ---- sampling ---------------------------------------------------------- */

typedef enum {
    MOEDIT_SAMPLER_DDPM = 0, MOEDIT_SAMPLER_DDIM, MOEDIT_SAMPLER_FLOW,
    /* multistep ODE/SDE solvers for DDPM-trained (ε-prediction) models, as
       diffusers' DPMSolverMultistepScheduler (dpmsolver++ / sde-dpmsolver++,
       midpoint) and UniPCMultistepScheduler (bh2) */
    MOEDIT_SAMPLER_DPM2M, MOEDIT_SAMPLER_DPM3M, MOEDIT_SAMPLER_UNIPC, MOEDIT_SAMPLER_DPM2M_SDE,
    /* second-order solvers for rectified-flow models (two evaluations a step) */
    MOEDIT_SAMPLER_HEUN, MOEDIT_SAMPLER_MIDPOINT
} moedit_sampler;
/* diffusers' timestep_spacing for the multistep solvers */
typedef enum { MOEDIT_SPACING_LINSPACE = 0, MOEDIT_SPACING_LEADING, MOEDIT_SPACING_TRAILING } moedit_spacing;
typedef enum { MOEDIT_RNG_TORCH = 0, MOEDIT_RNG_NATIVE } moedit_rng;

typedef void (*moedit_progress_fn)(void *user, int step, int total_steps);

typedef struct {
    moedit_sampler sampler;
    const char *steps;     /* respacing: "250", "10,10,10", "ddim25" (flow and the
                              other solvers: "N" model evaluations) */
    float cfg;             /* 1 = no guidance */
    int cfg_channels;      /* channels guided: 3, or 0 = all; -1 = family default */
    float eta;             /* DDIM, 0 … 1 */
    int cosine_schedule;   /* -1 = family default (Switch-DiT: cosine) */
    uint64_t seed;
    moedit_rng rng;
    const float *noise;    /* optional initial noise [n, C, H, W] */
    const uint64_t *row_seeds; /* native rng: optional [n] seeds, one noise stream per
                                  row, so a sample depends only on its own seed */
    moedit_progress_fn progress;
    void *progress_user;
    /* multistep solvers: steps is the number of model evaluations "N" */
    moedit_spacing spacing;
    int karras;            /* Karras et al. sigmas (DPM++ / UniPC) */
    int order;             /* UniPC order 2 or 3; 0 = 2 */
    int cfg_interval;      /* 1: guidance only while cfg_lo <= t <= cfg_hi (timesteps,
                              flow: t in [0,1]); elsewhere the null half is not run */
    float cfg_lo, cfg_hi;
} moedit_sample_options;

/* Fills o with the defaults for model m (DDPM 250 steps, cfg 1.5 for
   DiT/DiT-MoE with 3 guided channels, etc.). */
void moedit_sample_defaults(const moedit_model *m, moedit_sample_options *o);

/* Samples n latents for labels[n] into latents [n, in_channels, H, W].
   progress and the tracer's step count model evaluations (with guidance,
   one evaluation is one batched conditional + null pair). */
int moedit_sample(moedit_model *m, const moedit_sample_options *o, int n,
                  const int64_t *labels, float *latents);

/* ---- VAE decoder ------------------------------------------------------- */

typedef struct moedit_vae moedit_vae;

/* A diffusers folder (config.json + weights) or a single weights file. */
int moedit_vae_load(const char *path, moedit_vae **out);
void moedit_vae_free(moedit_vae *v);
float moedit_vae_scaling_factor(const moedit_vae *v);
int moedit_vae_latent_channels(const moedit_vae *v);
int moedit_vae_out_channels(const moedit_vae *v);
int moedit_vae_upscale(const moedit_vae *v);   /* image size / latent size */
/* moedit_model_digest's identity of the VAE's weights. */
int moedit_vae_digest(moedit_vae *v, uint32_t *crc);

/* Decodes z (already divided by the scaling factor) [n, latent_c, h, w] into
   img [n, out_channels, h*up, w*up], range about [-1, 1], unclamped. */
int moedit_vae_decode(moedit_vae *v, int n, int h, int w, const float *z, float *img);
/* Allocates the decoder's buffers for h×w latents now (a decode otherwise
   does so when it first needs them): MOEDIT_EINPUT when they would not fit
   in the memory available. */
int moedit_vae_reserve(moedit_vae *v, int h, int w);
/* on = 1: the decoder's convolutions round weights and activations to
   bfloat16 (float32 sums), on AMX tiles where the CPU has them, else on
   AVX512-BF16 (twice the float32 rate on AMD, half of it on Intel), on
   other AVX2/AVX-512 CPUs emulated (same numerics, no faster). They stay
   direct convolutions, while float32 runs the 3×3 layers by Winograd: on
   Zen 5 the float32 decode is the faster (docs/performance.md).
   MOEDIT_EINPUT where only OpenBLAS runs. on = 0 (the default) restores
   float32. */
int moedit_vae_set_bf16(moedit_vae *v, int on);

/* ---- installation, bindings, evaluation -------------------------------- */

/* "MAJOR.MINOR.PATCH" of the library actually loaded. */
const char *moedit_version(void);

/* sizeof the public struct named type ("moedit_config",
   "moedit_load_options", "moedit_sample_options", "moedit_route_table"),
   0 for another name: lets bindings check their copy of a struct. */
size_t moedit_sizeof(const char *type);

/* Shipped-model aliases ("fmnist-moe", "fmnist-switch", "fmnist-vae") to a
   path; any other name is copied unchanged. Searched in order: the folder
   $MOEDIT_MODELS, share/moedit/models beside the installed library or
   program (../share relative to its own file), the source tree it was built
   from, and the install prefix compiled in. moedit_model_load and
   moedit_vae_load resolve aliases themselves. */
int moedit_model_path(const char *name, char *path, size_t size);
/* A shipped data file ("imagenet_classes.txt": the class names of the
   1000-class ImageNet models), searched as moedit_model_path searches
   models: share/moedit beside the library or program, the source tree's
   data/, the install prefix. MOEDIT_EINPUT when it is in none of them. */
int moedit_data_path(const char *file, char *path, size_t size);
/* One class, as `moedit sample --class` takes it: a decimal id
   0..num_classes (num_classes: the null class, an unconditional sample),
   or a name of names[0..count) — case ignored, '_' read as a space, a
   whole name or the start of exactly one. An unknown or ambiguous name is
   MOEDIT_EINPUT with a message naming the candidates. */
int moedit_class_lookup(const char *const *names, int count, const char *token, int num_classes, int *id);

/* An in-memory expert trace, column by column, for bindings and analysis:
     moedit_route_log *log;
     moedit_route_log_new(&log);
     moedit_model_set_tracer(m, moedit_route_log_add, log);
     moedit_sample(...);
     moedit_model_set_tracer(m, NULL, NULL);
     moedit_route_table tab;
     if (moedit_route_log_table(log, &tab) == MOEDIT_OK) ... tab.experts[i * tab.k + j]
     moedit_route_log_free(log);
   Memory grows geometrically while recording (tracing is optional; an
   untraced forward allocates nothing). */
typedef struct moedit_route_log moedit_route_log;
typedef struct {
    size_t count;          /* decisions recorded */
    int k, num_probs;      /* experts per decision; all-expert probabilities (Switch-DiT: E, else 0) */
    const int32_t *step, *layer, *row, *token, *is_null;   /* [count] each */
    const int64_t *label;  /* [count] */
    const float *timestep; /* [count] */
    const int32_t *experts;/* [count, k] in the gate's order */
    const float *weights;  /* [count, k] their gate probabilities */
    const float *probs;    /* [count, num_probs], NULL when num_probs is 0 */
} moedit_route_table;
int moedit_route_log_new(moedit_route_log **out);
void moedit_route_log_free(moedit_route_log *log);
void moedit_route_log_clear(moedit_route_log *log);
void moedit_route_log_add(void *log, const moedit_route *r);   /* a moedit_route_fn */
/* MOEDIT_EINTERNAL if memory ran out while recording, or MOEDIT_EINPUT if
   decisions of different k or num_probs were mixed. */
int moedit_route_log_table(const moedit_route_log *log, moedit_route_table *out);

/* A trace file's header (`moedit sample --trace`, docs/trace-format.md). */
typedef struct {
    moedit_family family;
    int depth, num_experts, top_k;
    int grid_h, grid_w;    /* tokens per image: grid_h * grid_w */
    int num_classes;       /* the null label is num_classes */
    int steps;             /* 0 if not recorded */
    float cfg;             /* 0 if not recorded */
    char sampler[16];      /* "" if not recorded */
} moedit_trace_header;
/* Reads a trace file into log (cleared first: its decisions in file order)
   and, unless NULL, its header into *header. Every record is checked as
   `moedit heatmap` checks it: MOEDIT_EINPUT names the file and the first
   problem (the log is then left empty). */
int moedit_route_log_read(moedit_route_log *log, const char *path, moedit_trace_header *header);

/* Evaluation metrics, in double precision (see docs/fid.md). The features
   and logits they take must be finite: MOEDIT_EINPUT names the rows holding
   NaN or inf (they would carry into every metric).
   Mean mu [dim] and unbiased covariance sigma [dim, dim] of n >= 2 rows. */
int moedit_feature_stats(int64_t n, int dim, const float *features, double *mu, double *sigma);
/* Fréchet distance between the Gaussians (mu1, sigma1) and (mu2, sigma2).
   MOEDIT_EINPUT for NaN or inf in them, and for a distance that overflows
   or comes out below 0 (a sigma not positive semi-definite). */
int moedit_frechet_distance(int dim, const double *mu1, const double *sigma1, const double *mu2,
                            const double *sigma2, double *fid);
/* Inception Score of logits [n, classes], averaged over chunks of
   split_size rows (<= 0: one chunk). */
int moedit_inception_score(int64_t n, int classes, const float *logits, int64_t split_size, double *is);

/* pytorch-fid's Inception network (pt_inception-2015-12-05-6726825d.pth):
   uint8 images HWC [n, h, w, c], c = 1 or 3 → features [n, 2048] and
   logits [n, 1008] (may be NULL). */
typedef struct moedit_inception moedit_inception;
int moedit_inception_load(const char *path, moedit_inception **out);
void moedit_inception_free(moedit_inception *net);
/* moedit_model_digest's identity of the network's weights: the `inception`
   member of eval's feature files, so features of two networks never mix. */
int moedit_inception_digest(const moedit_inception *net, uint32_t *crc);
int moedit_inception_features(moedit_inception *net, int n, int h, int w, int c, const uint8_t *images,
                              float *features, float *logits);
/* FLOPs of one image's features and logits (convolutions and fc,
   multiply-adds ×2; the same whatever the image size, which is resized to
   299×299 first). */
double moedit_inception_flops(const moedit_inception *net);
/* The same counting what is multiplied: fewer where the own kernels run
   layers by Winograd's minimal filtering (docs/performance.md). */
double moedit_inception_flops_multiplied(const moedit_inception *net);
/* The ADM evaluator's three taps of the same images: pool3 [n, 2048], the
   sFID tap (TF mixed_6/conv's first 7 channels at 17×17, [n, 2023]) and the logits
   pool3 · fc.weightᵀ without the bias [n, 1008] (spatial and logits may be
   NULL). preprocess: "adm" (the evaluator's TF resize) or "pytorch-fid". */
int moedit_inception_adm_features(moedit_inception *net, const char *preprocess, int n, int h, int w, int c,
                                  const uint8_t *images, float *pool, float *spatial, float *logits);
/* The evaluator's Precision and Recall (ManifoldEstimator, k = 3 there) of
   samples [n_samples, dim] against ref [n_ref, dim]: a point's radius is
   the squared distance to its k-th nearest neighbour in its own set; a
   sample is precise inside some reference radius, a reference point
   recalled inside some sample radius. Each set needs more than k rows. */
int moedit_precision_recall(int64_t n_ref, const float *ref, int64_t n_samples, const float *samples, int dim,
                            int k, double *precision, double *recall);

#ifdef __cplusplus
}
#endif
#endif

/* cli.h — the moedit command line: one function per subcommand, each a thin
   layer over libmoedit that parses flags, calls the library and reports.
   Exit status: 0 success, 2 bad input or usage, 1 internal error. */
#ifndef MOEDIT_CLI_H
#define MOEDIT_CLI_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Adaptive thread counts for shared machines (cli/omp_env.c). */
void cli_omp_defaults(void);
int cmd_inspect(int argc, char **argv);
int cmd_convert(int argc, char **argv);
int cmd_forward(int argc, char **argv);
int cmd_sample(int argc, char **argv);
int cmd_decode(int argc, char **argv);
int cmd_heatmap(int argc, char **argv);
int cmd_fid_sample(int argc, char **argv);
int cmd_npz_merge(int argc, char **argv);
int cmd_fid(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_bench(int argc, char **argv);

/* Flag parsing shared by the subcommands. A command declares its flags in a
   table; cli_parse fills them and collects positional arguments. Unknown
   flags, missing values and malformed numbers are usage errors (exit 2). */
typedef enum { CLI_STR, CLI_INT, CLI_FLOAT, CLI_BOOL, CLI_U64 } cli_kind;
typedef struct {
    const char *name;   /* "--model" */
    cli_kind kind;
    void *value;        /* const char **, int *, float *, int *, uint64_t * */
    const char *arg;    /* the value's name in the help ("CKPT"), NULL for a switch */
    const char *help;
} cli_flag;

/* Every command that reads a .pt/.pth/.bin or .npz declares
   {"--no-verify", CLI_BOOL, &v, NULL, CLI_NO_VERIFY_HELP}; cli_parse then turns the
   CRC-32 check off for the process (moedit_set_verify(0)). */
#define CLI_NO_VERIFY_HELP "skip the CRC-32 check of .pt/.npz entries (huge trusted files)"
/* --model of every command that runs a transformer (cli_model_path) */
#define CLI_MODEL_HELP "checkpoint (.pt/.safetensors/diffusers folder), or fmnist-moe (default) / fmnist-switch"
#define CLI_THREADS_HELP "threads (default: SLURM_CPUS_PER_TASK, else OMP_NUM_THREADS, else all cores)"
/* --heads and --top-k of every command that reads a checkpoint (cli_defaults_hints) */
#define CLI_HEADS_HELP                                                                                  \
    "attention heads (default: defaults.json beside the checkpoint, else the file's metadata, else from " \
    "the hidden size)"
#define CLI_TOP_K_HELP "experts per token (default: defaults.json beside the checkpoint, else the file's metadata, else 2)"
#define CLI_VAE_BF16_HELP                                                                       \
    "VAE convolutions in bfloat16 (AMX tiles, else AVX512-BF16, else emulated: same numerics, " \
    "no faster); they stay direct, so on Zen 4 and Zen 5 slower than the float32 default's Winograd"

/* Returns 0, or 2 after printing one line "moedit CMD: …" on stderr.
   positional receives up to max_pos arguments; *npos their count. */
int cli_parse(const char *cmd, int argc, char **argv, const cli_flag *flags,
              char **positional, int max_pos, int *npos);
void cli_usage(const char *cmd, const char *synopsis, const cli_flag *flags);

/* The one number parser behind every flag (and the lists some flags hold):
   the whole string must be the number. Integers outside [lo, hi] and floats
   that are nan, inf or overflow are refused. 0, or an errno value: for
   floats EDOM when the number is nonzero but under FLT_MIN (underflow). */
int cli_parse_int(const char *s, long long lo, long long hi, long long *out);
int cli_parse_u64(const char *s, uint64_t *out);
int cli_parse_float(const char *s, float *out);
/* v in the fewest digits (at least %g's six) that read back as v, so printed
   settings (the repeat line, fid-sample's fingerprint) are the ones that ran. */
enum { CLI_FLOAT_STR = 32 };
const char *cli_float_str(float v, char buf[CLI_FLOAT_STR]);

/* The one of names[n] within two edits of typed[0..len) (a transposed pair
   counts as one; at most one edit per three characters past the leading
   dashes), or NULL when none or several are: a typo's intended flag or
   command, named in its error line. */
const char *cli_nearest(const char *typed, size_t len, const char *const *names, int n);

/* Prints "moedit: <library error>" and returns the exit status for rc. */
int cli_fail(int rc);
/* Prints "moedit CMD: msg" and returns 2. */
int cli_usage_error(const char *cmd, const char *fmt, ...);

/* Applies --threads N (0 = all cores); n INT_MIN ("not given") takes
   cli_env_threads' count, else leaves all cores. Returns 0, or 2 after a
   usage error for n outside 0..CLI_MAX_THREADS or a malformed variable. */
#define CLI_MAX_THREADS 4096
int cli_threads(const char *cmd, int n);
/* The thread count the environment asks for: SLURM_CPUS_PER_TASK (sbatch
   -c), else OMP_NUM_THREADS (of a per-level list, the first), into
   *threads (0: neither is set) with the variable's name in *from; 2 after
   "CMD: <context>VAR='…' is not a thread count" for a value no count can
   come from (rather than silently running on every core). */
int cli_env_threads(const char *cmd, const char *context, int *threads, const char **from);
/* Takes an exclusive lock on lock_path (created if missing) for as long as
   the process runs or until cli_unlock, which also removes the file. 0 and
   *fd, or 2 after "another run is writing the same output". */
int cli_lock(const char *cmd, const char *lock_path, int *fd);
void cli_unlock(const char *lock_path, int fd);
/* The files one command reads and writes, checked before any work: an
   output's path must not be empty and its folder must exist; a CLI_OUT
   must not be an existing folder, a CLI_OUT_DIR must be a folder or not
   exist yet; no output may be another
   output or an input (the same file when both exist: device and inode;
   else the same last name in the same real folder). A NULL path is a flag
   not given. 0, or 2 after one line naming both flags. */
typedef enum { CLI_IN, CLI_OUT, CLI_OUT_DIR } cli_file_role;
typedef struct {
    const char *flag, *path;
    cli_file_role role;
} cli_file;
int cli_check_files(const char *cmd, const cli_file *files, int n);
/* Monotonic seconds, for progress and timings. */
double cli_now(void);
/* A resumable output's state file (cli/resume_state.c): write records that
   `done` items are finished with settings fp; read gives that count, 0 when
   there is no state file, -1 when it belongs to other settings. */
int cli_state_write(const char *path, const char *magic, const char *fp, int64_t done);
int64_t cli_state_read(const char *path, const char *magic, const char *fp);
/* The partial file beside a state that says `bytes` are done, opened at its
   start: one longer is cut back to bytes (the batch a killed run was
   writing), one missing or shorter is refused. 0 and *f, or 2 after one line. */
int cli_partial_reopen(const char *cmd, const char *part, const char *state, int64_t bytes, FILE **f);
/* Whether path ends in ext (".png"), ignoring case. */
int cli_has_ext(const char *path, const char *ext);

/* Parses --device cpu|cuda|cuda:N (NULL: cpu) and checks that the device
   can run here; returns 0, or 2 after one line ("moedit was built without
   CUDA (-DMOEDIT_CUDA=ON)", "no CUDA device", a malformed value). */
#include "moedit.h"
int cli_device(const char *cmd, const char *spec, moedit_device *out);
/* For commands with no GPU path yet (what: "the VAE"): cli_device, then 2
   with one line unless the device is the CPU. */
int cli_cpu_only(const char *cmd, const char *spec, const char *what);

/* How a transformer is loaded and run, the flags of every command that
   loads one (forward, bench, sample, fid-sample): --threads, --heads,
   --top-k, --bf16, --device, --fp32, --no-verify. INT_MIN: not given. */
typedef struct {
    int threads, heads, top_k, bf16, fp32, no_verify;
    const char *device;
} cli_model_opts;
#define CLI_MODEL_FLAGS 7   /* entries cli_model_flags writes */
void cli_model_opts_init(cli_model_opts *o);
int cli_model_flags(cli_model_opts *o, cli_flag *f);
/* Applies --threads, checks --heads/--top-k (≥ 1) and --device and fills
   lo; 0, or 2 after one line. --bf16 on a CPU without AVX512-BF16, which
   the library would ignore, is turned off in o and lo with a note, so that
   what the command reports and records is what runs. */
int cli_model_options(const char *cmd, cli_model_opts *o, moedit_load_options *lo);
/* Only --heads/--top-k (INT_MIN: not given) into lo->heads/top_k (0 there
   means "not given", so an explicit 0 is refused rather than read as the
   default), for the commands that read a checkpoint without running it
   (inspect, convert) and cli_model_options; 0, or 2 after one line. */
int cli_model_hints(const char *cmd, int heads, int top_k, moedit_load_options *lo);

/* Resolves --model aliases ("fmnist-moe", "fmnist-switch") and the default
   model with moedit_model_path (source tree, install prefix, $MOEDIT_MODELS);
   other values pass through. */
const char *cli_model_path(const char *model);
/* 0 when the checkpoint at path (cli_model_path's) is there, else 2 after
   "moedit CMD: --model PATH: no such file or folder". For the commands that
   read the defaults.json beside it first: a missing checkpoint would
   otherwise surface as a missing setting (the VAE, the class names). */
int cli_model_exists(const char *cmd, const char *path);

/* Sampling flags shared by `sample` and `fid-sample` (cli/sampling.c).
   NULL / NAN / INT_MIN mean "not given"; precedence is flag, then the
   defaults.json beside the checkpoint, then moedit_sample_defaults(). */
#include "moedit.h"
typedef struct {
    const char *model, *vae, *sampler, *steps, *cfg_channels, *schedule, *seed;
    float cfg, eta;
    cli_model_opts load;
    char *owned[5];   /* strings read from defaults.json */
    const char *spacing, *cfg_interval;
    int karras, order;
    char *owned_solver[2];   /* "spacing" and "cfg_interval" from defaults.json */
    int json_karras, json_order;   /* defaults.json "karras" / "order" (0: none) */
    char *json_path;               /* that defaults.json, for messages about its values */
    int vae_bf16;                  /* --vae-bf16: moedit_vae_set_bf16 */
} cli_sampling;
#define CLI_SAMPLING_FLAGS 21   /* entries cli_sampling_flags writes */
void cli_sampling_init(cli_sampling *s);
/* How a message names a setting: `flag`, or `PATH "key"` where value is the
   string read from defaults.json (json_value), so no error blames a flag the
   user never gave. buf holds the latter. */
const char *cli_sampling_source(const cli_sampling *s, const char *value, const char *json_value, const char *flag,
                                const char *key, char *buf, size_t cap);
void cli_sampling_free(cli_sampling *s);
/* Writes the flag-table entries (--model … --no-verify) to f; returns their count. */
int cli_sampling_flags(cli_sampling *s, cli_flag *f);
/* Each returns 0 or the exit status after a one-line message. */
int cli_sampling_defaults(const char *cmd, cli_sampling *s, const char *model_path);
/* The same over the text of a defaults.json (path names it in messages; a
   relative "vae" is taken from dir). */
int cli_sampling_defaults_json(const char *cmd, cli_sampling *s, const char *dir, const char *path,
                               const char *text, size_t size);
int cli_sampling_resolve(const char *cmd, const cli_sampling *s, const moedit_model *m,
                         moedit_sample_options *o);
/* *heads and *top_k left INT_MIN (not given) taken from the defaults.json
   beside model_path, as sample and fid-sample (and Python's Model) take
   them, so that forward, bench, inspect and convert run and record the
   model the same way. 0, or 2 after a usage error naming the file. */
int cli_defaults_hints(const char *cmd, const char *model_path, int *heads, int *top_k);
/* The solver flags (cli/sampling_solvers.c): --spacing, --karras, --order,
   --cfg-interval and whether the sampler fits the model; defaults.json's
   solver settings only where they apply to the sampler. */
int cli_solver_options(const char *cmd, const cli_sampling *s, const moedit_model *m, moedit_sample_options *o);
/* Latents a sampler made go past CLI_LATENT_PEAK only when the sampling
   blew up (a model's stay within a few units): a cosine schedule's first
   step at t=999, whose alpha_bar of 2.4e-9 multiplies the noise prediction's
   error by 2e4 (upstream does the same; docs/sampling.md). cli_latents_peak
   is the largest |value| (NaN if any); cli_warn_blown_up prints one warning
   line when peak is past the bound, naming the cause and the remedy where
   o (NULL: latents from a file) says it is that schedule. */
#define CLI_LATENT_PEAK 100.0f
float cli_latents_peak(size_t count, const float *z);
void cli_warn_blown_up(const char *cmd, const moedit_sample_options *o, float peak);
/* The solver settings of o as flags (" --spacing leading --cfg-interval
   82,579"), "" for none, to repeat a run or fingerprint it. */
void cli_solver_describe(const moedit_sample_options *o, char *buf, size_t cap);

#endif

/* cli.h — the moedit command line: one function per subcommand, each a thin
   layer over libmoedit that parses flags, calls the library and reports.
   Exit status: 0 success, 2 bad input or usage, 1 internal error. */
#ifndef MOEDIT_CLI_H
#define MOEDIT_CLI_H

#include <stdint.h>

int cmd_inspect(int argc, char **argv);
int cmd_convert(int argc, char **argv);
int cmd_forward(int argc, char **argv);
int cmd_sample(int argc, char **argv);
int cmd_decode(int argc, char **argv);
int cmd_heatmap(int argc, char **argv);
int cmd_fid_sample(int argc, char **argv);
int cmd_npz_merge(int argc, char **argv);
int cmd_fid(int argc, char **argv);
int cmd_bench(int argc, char **argv);

/* Flag parsing shared by the subcommands. A command declares its flags in a
   table; cli_parse fills them and collects positional arguments. Unknown
   flags, missing values and malformed numbers are usage errors (exit 2). */
typedef enum { CLI_STR, CLI_INT, CLI_FLOAT, CLI_BOOL, CLI_U64 } cli_kind;
typedef struct {
    const char *name;   /* "--model" */
    cli_kind kind;
    void *value;        /* const char **, int *, float *, int *, uint64_t * */
    const char *help;
} cli_flag;

/* Returns 0, or 2 after printing one line "moedit CMD: …" on stderr.
   positional receives up to max_pos arguments; *npos their count. */
int cli_parse(const char *cmd, int argc, char **argv, const cli_flag *flags,
              char **positional, int max_pos, int *npos);
void cli_usage(const char *cmd, const char *synopsis, const cli_flag *flags);

/* Prints "moedit: <library error>" and returns the exit status for rc. */
int cli_fail(int rc);
/* Prints "moedit CMD: msg" and returns 2. */
int cli_usage_error(const char *cmd, const char *fmt, ...);

/* Applies --threads N (0 = all cores) unless n is INT_MIN ("not given");
   returns 0, or 2 after a usage error for a negative n. */
int cli_threads(const char *cmd, int n);
/* Monotonic seconds, for progress and timings. */
double cli_now(void);
/* Whether path ends in ext (".png"), ignoring case. */
int cli_has_ext(const char *path, const char *ext);

/* Resolves --model aliases ("fmnist-moe", "fmnist-switch") and the default
   model to a path under the source tree's models/; other values pass through. */
const char *cli_model_path(const char *model);

/* Sampling flags shared by `sample` and `fid-sample` (cli/sampling.c).
   NULL / NAN / INT_MIN mean "not given"; precedence is flag, then the
   defaults.json beside the checkpoint, then moedit_sample_defaults(). */
#include "moedit.h"
typedef struct {
    const char *model, *vae, *sampler, *steps, *cfg_channels, *schedule, *seed;
    float cfg, eta;
    int threads, heads, top_k, bf16;
    char *owned[5];   /* strings read from defaults.json */
    const char *spacing, *cfg_interval;
    int karras, order;
    char *owned_solver[2];   /* "spacing" and "cfg_interval" from defaults.json */
    int json_karras, json_order;   /* defaults.json "karras" / "order" (0: none) */
} cli_sampling;
#define CLI_SAMPLING_FLAGS 17   /* entries cli_sampling_flags writes */
void cli_sampling_init(cli_sampling *s);
void cli_sampling_free(cli_sampling *s);
/* Writes the flag-table entries (--model … --top-k) to f; returns their count. */
int cli_sampling_flags(cli_sampling *s, cli_flag *f);
/* Each returns 0 or the exit status after a one-line message. */
int cli_sampling_defaults(const char *cmd, cli_sampling *s, const char *model_path);
int cli_sampling_load_options(const char *cmd, const cli_sampling *s, moedit_load_options *lo);
int cli_sampling_resolve(const char *cmd, const cli_sampling *s, const moedit_model *m,
                         moedit_sample_options *o);
/* The solver flags (cli/sampling_solvers.c): --spacing, --karras, --order,
   --cfg-interval and whether the sampler fits the model; defaults.json's
   solver settings only where they apply to the sampler. */
int cli_solver_options(const char *cmd, const cli_sampling *s, const moedit_model *m, moedit_sample_options *o);
/* The solver settings of o as flags (" --spacing leading --cfg-interval
   82,579"), "" for none, to repeat a run or fingerprint it. */
void cli_solver_describe(const moedit_sample_options *o, char *buf, size_t cap);

#endif

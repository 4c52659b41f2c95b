/* --device cpu|cuda[:N], the one parser every command that runs the
   transformer (or says it cannot run elsewhere) shares, and the flags that
   say how the transformer is loaded (cli_model_opts). */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include "cli/cli.h"
#include "moedit.h"

int cli_device(const char *cmd, const char *spec, moedit_device *out)
{
    *out = (moedit_device){MOEDIT_DEVICE_CPU, 0};
    if (!spec || !strcmp(spec, "cpu")) return 0;
    if (strncmp(spec, "cuda", 4) || (spec[4] && spec[4] != ':'))
        return cli_usage_error(cmd, "--device: '%s' is not cpu, cuda or cuda:N", spec);
    out->kind = MOEDIT_DEVICE_CUDA;
    if (spec[4] == ':') {
        char *end;
        errno = 0;
        long v = strtol(spec + 5, &end, 10);
        if (errno || end == spec + 5 || *end || v < 0 || v > 1023)
            return cli_usage_error(cmd, "--device: '%s' is not cpu, cuda or cuda:N", spec);
        out->index = (int)v;
    }
    if (moedit_device_check(*out)) return cli_usage_error(cmd, "--device %s: %s", spec, moedit_last_error());
    return 0;
}

int cli_cpu_only(const char *cmd, const char *spec, const char *what)
{
    moedit_device d;
    if (cli_device(cmd, spec, &d)) return 2;
    if (d.kind != MOEDIT_DEVICE_CPU) return cli_usage_error(cmd, "--device %s: %s runs on the CPU only so far", spec, what);
    return 0;
}

void cli_model_opts_init(cli_model_opts *o)
{
    *o = (cli_model_opts){.threads = INT_MIN, .heads = INT_MIN, .top_k = INT_MIN};
}

int cli_model_flags(cli_model_opts *o, cli_flag *f)
{
    const cli_flag table[] = {
        {"--threads", CLI_INT, &o->threads, "N", CLI_THREADS_HELP},
        {"--heads", CLI_INT, &o->heads, "H", CLI_HEADS_HELP},
        {"--top-k", CLI_INT, &o->top_k, "K", CLI_TOP_K_HELP "; per row for Switch-DiT"},
        {"--bf16", CLI_BOOL, &o->bf16, NULL, "block matrices and attention in bfloat16 (AVX512-BF16, or AMX tiles where the CPU has them; elsewhere float32, with a note)"},
        {"--device", CLI_STR, &o->device, "cpu|cuda[:N]", "where the transformer runs (default cpu; cuda: -DMOEDIT_CUDA=ON builds)"},
        {"--fp32", CLI_BOOL, &o->fp32, NULL, "on a GPU: float32 weights and products, TF32 off (default bf16)"},
        {"--no-verify", CLI_BOOL, &o->no_verify, NULL, CLI_NO_VERIFY_HELP},
    };
    _Static_assert(sizeof table / sizeof table[0] == CLI_MODEL_FLAGS, "update CLI_MODEL_FLAGS in cli.h");
    memcpy(f, table, sizeof table);
    return CLI_MODEL_FLAGS;
}

int cli_model_hints(const char *cmd, int heads, int top_k, moedit_load_options *lo)
{
    if ((heads != INT_MIN && heads < 1) || (top_k != INT_MIN && top_k < 1))
        return cli_usage_error(cmd, "--heads and --top-k must be positive");
    lo->heads = heads == INT_MIN ? 0 : heads;
    lo->top_k = top_k == INT_MIN ? 0 : top_k;
    return 0;
}

int cli_model_options(const char *cmd, cli_model_opts *o, moedit_load_options *lo)
{
    memset(lo, 0, sizeof *lo);   /* fields added later keep their default */
    if (cli_threads(cmd, o->threads) || cli_model_hints(cmd, o->heads, o->top_k, lo)) return 2;
    lo->bf16 = o->bf16;
    lo->no_verify = o->no_verify;
    lo->fp32 = o->fp32;
    if (cli_device(cmd, o->device, &lo->device)) return 2;
    /* the library ignores bf16 there: say so, and report and record what runs */
    if (lo->bf16 && lo->device.kind == MOEDIT_DEVICE_CPU && !moedit_cpu_bf16()) {
        fprintf(stderr, "moedit %s: note: --bf16 runs float32 here: this CPU has no AVX512-BF16\n", cmd);
        o->bf16 = lo->bf16 = 0;
    }
    return 0;
}

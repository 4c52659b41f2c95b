/* moedit — command-line entry: dispatches to one function per subcommand. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include "cli/cli.h"
#include "moedit.h"

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} commands[] = {
    {"sample", cmd_sample, "generate class-conditional images (or latents)"},
    {"forward", cmd_forward, "one model evaluation on given x, t, y arrays"},
    {"decode", cmd_decode, "decode latents with the VAE"},
    {"inspect", cmd_inspect, "list a checkpoint's tensors and detected config"},
    {"convert", cmd_convert, "rewrite a checkpoint as safetensors"},
    {"heatmap", cmd_heatmap, "expert-specialization heatmaps from a trace"},
    {"fid-sample", cmd_fid_sample, "write FID sample batches (.npz)"},
    {"npz-merge", cmd_npz_merge, "concatenate sample shards"},
    {"fid", cmd_fid, "Frechet Inception Distance of two sample sets"},
    {"eval", cmd_eval, "ADM evaluator: IS, FID, sFID, Precision, Recall"},
    {"bench", cmd_bench, "time the transformer forward"},
};

static void usage(FILE *out)
{
    fprintf(out, "moedit %s — Mixture-of-Experts diffusion transformers in C\n\n"
                 "usage: moedit COMMAND [flags]   (moedit COMMAND --help for its flags)\n\n",
            MOEDIT_VERSION);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-11s %s\n", commands[i].name, commands[i].summary);
}

int main(int argc, char **argv)
{
    cli_omp_defaults();
    /* a full disk or `ulimit -f` then fails the write (EFBIG), which removes
       the temporary file, instead of killing the process mid-file */
    signal(SIGXFSZ, SIG_IGN);
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("moedit %s\n", MOEDIT_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "moedit: unknown command '%s' (moedit --help lists them)\n", argv[1]);
    return 2;
}

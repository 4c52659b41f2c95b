/* moedit — command-line entry: dispatches to one function per subcommand. */
#include <errno.h>
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

/* Results printed to stdout sit in its buffer until exit, so a full disk or
   /dev/full only shows here; without this check they are lost with status 0.
   A closed stdout (EBADF) with nothing written to it is no error. After a
   failed command its own line is the one error reported. */
static int close_stdout(int rc)
{
    if (rc) return rc;
    int err = fflush(stdout) != 0 ? errno : 0;
    if (!err && ferror(stdout)) err = EIO;
    if (fclose(stdout) != 0 && !err && errno != EBADF) err = errno;
    if (!err) return rc;
    fprintf(stderr, "moedit: writing standard output: %s\n", strerror(err));
    return 1;
}

static int run(int argc, char **argv)
{
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
    const char *names[sizeof commands / sizeof commands[0]];
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) names[i] = commands[i].name;
    const char *near = cli_nearest(argv[1], strlen(argv[1]), names, (int)(sizeof names / sizeof names[0]));
    if (near) fprintf(stderr, "moedit: unknown command '%s' (did you mean %s?)\n", argv[1], near);
    else fprintf(stderr, "moedit: unknown command '%s' (moedit --help lists them)\n", argv[1]);
    return 2;
}

int main(int argc, char **argv)
{
    cli_omp_defaults();
    return close_stdout(run(argc, argv));
}

/* --device cpu|cuda[:N], the one parser every command that runs the
   transformer (or says it cannot run elsewhere) shares. */
#include <errno.h>
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

/* A non-negative integer environment variable, or -1. */
static int env_int(const char *name)
{
    const char *v = getenv(name);
    char *end;
    if (!v || !*v) return -1;
    errno = 0;
    long x = strtol(v, &end, 10);
    return errno || *end || x < 0 || x > 1 << 20 ? -1 : (int)x;
}

int cli_shard_auto(const char *cmd, int *k, int *n, int *local)
{
    /* launcher variables: rank, size, rank on this node */
    static const char *const vars[][3] = {
        {"RANK", "WORLD_SIZE", "LOCAL_RANK"},                                            /* torchrun */
        {"SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID"},                              /* Slurm */
        {"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK"}, /* Open MPI */
        {"PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID"},                                    /* MPICH, Intel MPI */
    };
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        int r = env_int(vars[i][0]), s = env_int(vars[i][1]);
        if (r < 0 && s < 0) continue;
        if (r < 0 || s < 1 || r >= s)
            return cli_usage_error(cmd, "--shard auto: %s=%s and %s=%s are not a rank below a size", vars[i][0],
                                   getenv(vars[i][0]) ? getenv(vars[i][0]) : "", vars[i][1],
                                   getenv(vars[i][1]) ? getenv(vars[i][1]) : "");
        int l = env_int(vars[i][2]);
        *k = r, *n = s, *local = l < 0 ? r : l;
        return 0;
    }
    /* One process per GPU on one machine, without a launcher: LOCAL_RANK alone. */
    int l = env_int("LOCAL_RANK"), ls = env_int("LOCAL_WORLD_SIZE");
    if (l >= 0 && ls > l) {
        *k = *local = l, *n = ls;
        return 0;
    }
    return cli_usage_error(cmd, "--shard auto: no launcher environment (RANK/WORLD_SIZE, SLURM_PROCID/SLURM_NTASKS, "
                                "OMPI_COMM_WORLD_RANK/_SIZE, PMI_RANK/PMI_SIZE or LOCAL_RANK/LOCAL_WORLD_SIZE)");
}

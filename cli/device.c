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

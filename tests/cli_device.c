/* --device on every command that takes it: a malformed value, a CUDA
   request that this build or machine cannot serve (exit 2, one line naming
   the reason), and the commands whose stages run on the CPU only. On a
   machine with a GPU and a -DMOEDIT_CUDA=ON build, `bench --device cuda`
   must instead run. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include "moedit.h"
#include "tests/testutil.h"

static const char *model(void) { return MOEDIT_SOURCE_DIR "/models/fmnist-moe/model.pt"; }

static int lines(const char *s)
{
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

Test(cli_device, malformed_value_is_a_usage_error)
{
    const char *bad[] = {"gpu", "cuda:", "cuda:x", "cuda:-1", "cuda0", "CPU"};
    char err[1024];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int st = tu_shell(err, sizeof err, "%s bench --model %s --iters 1 --batch 1 --device '%s'", MOEDIT_BIN,
                          model(), bad[i]);
        cr_expect_eq(st, 2, "--device %s: status %d", bad[i], st);
        cr_expect_eq(lines(err), 1, "--device %s: %s", bad[i], err);
        cr_expect_not_null(strstr(err, "is not cpu, cuda or cuda:N"), "--device %s: %s", bad[i], err);
    }
}

Test(cli_device, cpu_is_the_default_and_accepted)
{
    char err[1024];
    cr_expect_eq(tu_shell(err, sizeof err, "%s bench --model %s --iters 1 --batch 1 --device cpu >/dev/null",
                          MOEDIT_BIN, model()), 0, "%s", err);
}

/* Every transformer command refuses an unusable CUDA device the same way,
   before loading anything. */
Test(cli_device, unusable_cuda_is_one_line_exit_2)
{
    moedit_device cuda0 = {MOEDIT_DEVICE_CUDA, 0};
    if (moedit_device_check(cuda0) == MOEDIT_OK) cr_skip_test("a CUDA device is present");
    char why[256], err[1024];
    snprintf(why, sizeof why, "%s", moedit_last_error());
    const char *cmds[] = {
        "bench --batch 1 --iters 1",
        "forward --x a.npy --t b.npy --y c.npy --out /tmp/moedit_never.npy",
        "sample --out /tmp/moedit_never.png",
        "fid-sample --npz /tmp/moedit_never.npz --num 1",
    };
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        int st = tu_shell(err, sizeof err, "%s %s --model %s --device cuda", MOEDIT_BIN, cmds[i], model());
        cr_expect_eq(st, 2, "%s: status %d (%s)", cmds[i], st, err);
        cr_expect_eq(lines(err), 1, "%s: %s", cmds[i], err);
        cr_expect_not_null(strstr(err, why), "%s: '%s' lacks '%s'", cmds[i], err, why);
    }
    cr_expect(!tu_exists("/tmp/moedit_never.png") && !tu_exists("/tmp/moedit_never.npz"));
}

/* The VAE and Inception have no GPU path yet: asking for one says so
   rather than silently running on the CPU. */
Test(cli_device, cpu_only_stages_refuse_cuda)
{
    char err[1024];
    int st = tu_shell(err, sizeof err, "%s decode --vae x --latent y.npy --out z.png --device cuda", MOEDIT_BIN);
    cr_expect_eq(st, 2, "%s", err);
    cr_expect_eq(lines(err), 1, "%s", err);
    st = tu_shell(err, sizeof err, "%s fid --inception a --samples b.npz --ref c.npz --device cuda:0", MOEDIT_BIN);
    cr_expect_eq(st, 2, "%s", err);
    cr_expect_eq(lines(err), 1, "%s", err);
    if (moedit_device_check((moedit_device){MOEDIT_DEVICE_CUDA, 0}) == MOEDIT_OK)
        cr_expect_not_null(strstr(err, "runs on the CPU only"), "%s", err);
}

Test(cli_device, cuda_bench_runs_when_a_gpu_is_present)
{
    if (moedit_device_check((moedit_device){MOEDIT_DEVICE_CUDA, 0})) {
        if (!strcmp(moedit_last_error(), "no CUDA device")) cr_skip_test("skipped: no CUDA device");
        cr_skip_test("skipped: no CUDA device (%s)", moedit_last_error());
    }
    char err[1024];
    int st = tu_shell(err, sizeof err, "%s bench --model %s --iters 2 --batch 4 --device cuda --fp32 >/dev/null",
                      MOEDIT_BIN, model());
    cr_expect_eq(st, 0, "%s", err);
}

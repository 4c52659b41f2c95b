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

/* ---- fid-sample --shard auto --------------------------------------------- */

#define SAMPLE "%s fid-sample --model %s/dit/moe_top2.pt --vae %s/vae/small --steps 4 --seed 11 --num 10 --batch 3"
#define NO_LAUNCHER "env -u RANK -u WORLD_SIZE -u LOCAL_RANK -u LOCAL_WORLD_SIZE -u SLURM_PROCID -u SLURM_NTASKS " \
                    "-u OMPI_COMM_WORLD_RANK -u OMPI_COMM_WORLD_SIZE -u PMI_RANK -u PMI_SIZE"

static char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s", path);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)len + 1);
    cr_assert_eq(fread(buf, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    *n = (size_t)len;
    return buf;
}

/* The part a launcher's variables name is the part --shard k/n names,
   byte for byte; torchrun's and Slurm's variables alike. */
Test(cli_device, shard_auto_takes_the_launchers_rank)
{
    char dir[64], err[2048];
    tu_tmpdir(dir, sizeof dir, "shard_auto");
    int st = tu_shell(err, sizeof err, NO_LAUNCHER " " SAMPLE " --shard 1/3 --npz %s/k.npz", MOEDIT_BIN, FIXTURES,
                      FIXTURES, dir);
    cr_assert_eq(st, 0, "%s", err);
    const char *envs[] = {"RANK=1 WORLD_SIZE=3 LOCAL_RANK=0", "SLURM_PROCID=1 SLURM_NTASKS=3"};
    for (int i = 0; i < 2; i++) {
        st = tu_shell(err, sizeof err, NO_LAUNCHER " %s " SAMPLE " --shard auto --npz %s/a%d-%%k.npz", envs[i],
                      MOEDIT_BIN, FIXTURES, FIXTURES, dir, i);
        cr_assert_eq(st, 0, "%s: %s", envs[i], err);
        cr_expect_not_null(strstr(err, "shard 1/3 from"), "%s: %s", envs[i], err);
        char a[128], b[128];
        snprintf(a, sizeof a, "%s/k.npz", dir);
        snprintf(b, sizeof b, "%s/a%d-1.npz", dir, i);
        size_t na, nb;
        char *da = slurp(a, &na), *db = slurp(b, &nb);
        cr_expect(na == nb && !memcmp(da, db, na), "%s: %s differs from --shard 1/3", envs[i], b);
        free(da), free(db);
    }
    cr_assert_eq(tu_rmtree(dir), 0);
}

Test(cli_device, shard_auto_without_a_launcher_is_a_usage_error)
{
    char err[1024];
    int st = tu_shell(err, sizeof err, NO_LAUNCHER " %s fid-sample --npz /tmp/moedit_never.npz --num 4 --shard auto",
                      MOEDIT_BIN);
    cr_expect_eq(st, 2, "%s", err);
    cr_expect_eq(lines(err), 1, "%s", err);
    cr_expect_not_null(strstr(err, "no launcher found"), "%s", err);
    st = tu_shell(err, sizeof err, NO_LAUNCHER " RANK=3 WORLD_SIZE=3 %s fid-sample --npz /tmp/moedit_never.npz "
                                   "--num 4 --shard auto", MOEDIT_BIN);
    cr_expect_eq(st, 2, "%s", err);
    cr_expect_eq(lines(err), 1, "%s", err);
    cr_expect(!tu_exists("/tmp/moedit_never.npz"));
}

/* The multi-machine FID recipes on a real single-node Slurm and Open MPI:
   tests/cluster/run.sh starts scripts/slurm_local.sh and runs the shipped
   batch scripts (job array with a requeued task, srun -n 3, mpirun -np 3),
   each merged result byte-identical to one process with the same metrics.
   This test provides what the script needs: the counter-based random FID
   Inception (tests/fid_weights.h) as a safetensors file.

   It runs in the optimised build only: the sanitizer build would repeat the
   same shell-level checks ten times slower, and the C code they run
   (--shard auto, the shard records, npz-merge's checks) is covered there
   by tests/cli_shard.c. Slurm (slurm-wlm, munge) and Open MPI (openmpi-bin)
   come from scripts/deps.sh; without them the test fails, saying so. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include "tests/fid_weights.h"
#include "tests/testutil.h"
#include "weights/formats.h"

#if defined(__SANITIZE_ADDRESS__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANITIZED 1
#endif
#endif

/* The folder is made after the skip (Criterion runs no .fini for a skipped
   test) and removed only after a pass, so a failure leaves its logs. */
TestSuite(cli_cluster, .timeout = 600);

Test(cli_cluster, slurm_array_srun_and_mpirun_equal_one_process)
{
#ifdef SANITIZED
    cr_skip_test("the cluster recipes run in the optimised build only");
#endif
    cr_assert_eq(tu_system("{ command -v sbatch && command -v mpirun && test -x /usr/sbin/slurmctld && "
                           "test -x /usr/sbin/munged; } > /dev/null"),
                 0, "Slurm or Open MPI is not installed (scripts/deps.sh: slurm-wlm munge openmpi-bin)");
    char dir[64];
    tu_tmpdir(dir, sizeof dir, "cli_cluster");
    me_tensors *ts = random_weights(0);
    char inception[600], path[600];
    snprintf(inception, sizeof inception, "%s/inception.safetensors", dir);
    cr_assert_eq(me_write_safetensors(ts, inception, ME_F32), 0, "%s", moedit_last_error());
    me_tensors_free(ts);

    /* a bound of 9 minutes: 255 s were measured on 2 cores at a load average of 24 */
    int rc = tu_system("cd '%s' && MOEDIT='%s' INCEPTION='%s' WORK='%s/work' timeout 540 tests/cluster/run.sh "
                       "> '%s/log.txt' 2>&1",
                       MOEDIT_SOURCE_DIR, MOEDIT_BIN, inception, dir, dir);
    unlink(inception);   /* 95 MB */
    snprintf(path, sizeof path, "%s/log.txt", dir);
    char *log = tu_slurp(path, NULL);
    /* the recipes' wall times, for the CI log (ctest -V shows them) */
    fprintf(stderr, "%s", log ? log : "(no log)\n");
    cr_assert_eq(rc, 0, "tests/cluster/run.sh failed (exit %d), its files are in %s", rc, dir);
    free(log);
    if (tu_rmtree(dir)) cr_log_warn("could not remove %s", dir);
}

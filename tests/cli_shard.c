/* --shard auto, the shard record in fid-sample's npz, and npz-merge's
   checks of a shard set — without Slurm or MPI: the launchers' variables
   are set by hand (env -i, so nothing of the test's own environment leaks
   in), on the tiny DiT-MoE fixture (tests/fixtures/dit/moe_top2.pt) and VAE.

   Resolution order (cli/shard.h): job array (counted from
   SLURM_ARRAY_TASK_MIN in SLURM_ARRAY_TASK_STEP), SLURM_PROCID/NTASKS,
   OMPI_COMM_WORLD_RANK/SIZE, PMI_RANK/SIZE, RANK/WORLD_SIZE; SLURM_PROCID is
   passed over when an MPI or torchrun pair disagrees with it (mpirun or
   torchrun inside an allocation). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>
#include "tests/testutil.h"
#include "weights/npy.h"
#include "weights/zip.h"

static char dir[64];

static void setup(void) { tu_tmpdir(dir, sizeof dir, "cli_shard"); }

static void teardown(void)
{
    if (tu_rmtree(dir)) cr_log_warn("could not remove %s", dir);
}

TestSuite(cli_shard, .init = setup, .fini = teardown, .timeout = 300);

#define SAMPLE "fid-sample --model %s/dit/moe_top2.pt --vae %s/vae/small --steps 3 --cfg 1.5 --num 6 --batch 1"

/* `env -i ENV moedit ARGS` in the temporary folder (stdout, stderr to
   out.txt, err.txt); the exit status. */
static int run_env(const char *env, const char *fmt, ...)
{
    char args[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    return tu_system("cd '%s' && env -i PATH=/usr/bin:/bin %s '%s' %s > out.txt 2> err.txt", dir, env, MOEDIT_BIN,
                     args);
}

static char *err_text(void) { return tu_slurp(tu_join(dir, "err.txt"), NULL); }
static int exists(const char *name) { return tu_exists(tu_join(dir, name)); }

/* fid-sample --shard auto under env must write shard k/n and say from where. */
static void resolves(const char *env, int k, int n, const char *source)
{
    char name[64];
    snprintf(name, sizeof name, "auto-%d-of-%d.npz", k, n);
    unlink(tu_join(dir, name));
    cr_assert_eq(run_env(env, SAMPLE " --shard auto --npz auto-%%k-of-%%n.npz", FIXTURES, FIXTURES), 0, "%s: %s", env,
                 err_text());
    char *e = err_text(), want[200];
    snprintf(want, sizeof want, "shard %d/%d from %s", k, n, source);
    cr_assert(strstr(e, want), "%s: expected '%s' in:\n%s", env, want, e);
    cr_assert(exists(name), "%s: no %s", env, name);
    free(e);
}

/* Exit 2 with one line on stderr that contains what. */
static void refused(const char *what)
{
    char *e = err_text();
    cr_assert(tu_one_line(e), "not one line: '%s'", e);
    cr_assert(strstr(e, what), "expected '%s' in: %s", what, e);
    free(e);
}

Test(cli_shard, auto_takes_the_launchers_in_order)
{
    /* an array task wins over its batch step (task 0 of sbatch -n 2) and a
       one-process MPI world, counted from its minimum */
    resolves("SLURM_ARRAY_TASK_ID=5 SLURM_ARRAY_TASK_MIN=4 SLURM_ARRAY_TASK_COUNT=3 SLURM_PROCID=0 SLURM_NTASKS=2 "
             "OMPI_COMM_WORLD_RANK=0 OMPI_COMM_WORLD_SIZE=1",
             1, 3, "SLURM_ARRAY_TASK_ID=5 (SLURM_ARRAY_TASK_MIN=4)");
    /* the batch step of an array job without -n: SLURM_PROCID but no SLURM_NTASKS */
    resolves("SLURM_ARRAY_TASK_ID=2 SLURM_ARRAY_TASK_COUNT=3 SLURM_PROCID=0", 2, 3, "SLURM_ARRAY_TASK_ID=2");
    resolves("SLURM_ARRAY_TASK_ID=4 SLURM_ARRAY_TASK_MIN=0 SLURM_ARRAY_TASK_STEP=2 SLURM_ARRAY_TASK_COUNT=3", 2, 3,
             "SLURM_ARRAY_TASK_ID=4");
    /* srun's task before an MPI launcher's rank that agrees with it */
    resolves("SLURM_PROCID=2 SLURM_NTASKS=3 OMPI_COMM_WORLD_RANK=2 OMPI_COMM_WORLD_SIZE=3", 2, 3,
             "SLURM_PROCID=2 of SLURM_NTASKS=3");
    /* mpirun inside an allocation: its ranks, not the launcher step's SLURM_PROCID */
    resolves("SLURM_PROCID=0 SLURM_NTASKS=1 OMPI_COMM_WORLD_RANK=1 OMPI_COMM_WORLD_SIZE=3", 1, 3,
             "OMPI_COMM_WORLD_RANK=1 of OMPI_COMM_WORLD_SIZE=3");
    resolves("OMPI_COMM_WORLD_RANK=0 OMPI_COMM_WORLD_SIZE=2 PMI_RANK=1 PMI_SIZE=2", 0, 2, "OMPI_COMM_WORLD_RANK=0");
    resolves("PMI_RANK=1 PMI_SIZE=2", 1, 2, "PMI_RANK=1 of PMI_SIZE=2");
}

/* torchrun inside an srun step (one task per node, torchrun starting a
   process per GPU): every process inherits the step's SLURM_PROCID, so
   taking it would give them all one shard. */
Test(cli_shard, auto_takes_torchrun_inside_a_slurm_step)
{
    resolves("SLURM_PROCID=0 SLURM_NTASKS=1 RANK=1 WORLD_SIZE=2", 1, 2, "RANK=1 of WORLD_SIZE=2 (torchrun)");
    resolves("SLURM_PROCID=1 SLURM_NTASKS=2 RANK=1 WORLD_SIZE=2", 1, 2, "SLURM_PROCID=1 of SLURM_NTASKS=2");
}

/* A bare --device cuda takes the GPU of the launcher that gave the shard:
   the outer step's SLURM_LOCALID is 0 for every process mpirun or torchrun
   starts on a node. A CPU build names the device it refuses; a CUDA build
   with one GPU fails on cuda:1 and with two runs on it. */
Test(cli_shard, auto_takes_the_gpu_of_the_launcher_that_gave_the_shard)
{
    const char *envs[] = {
        "SLURM_PROCID=0 SLURM_NTASKS=1 SLURM_LOCALID=0 OMPI_COMM_WORLD_RANK=1 OMPI_COMM_WORLD_SIZE=2 "
        "OMPI_COMM_WORLD_LOCAL_RANK=1",
        "SLURM_PROCID=0 SLURM_NTASKS=1 SLURM_LOCALID=0 RANK=3 WORLD_SIZE=4 LOCAL_RANK=1",
    };
    for (size_t i = 0; i < sizeof envs / sizeof envs[0]; i++) {
        int st = run_env(envs[i], SAMPLE " --shard auto --device cuda --npz g-%%k.npz", FIXTURES, FIXTURES);
        char *e = err_text();
        cr_assert(!strstr(e, "cuda:0"), "%s: took GPU 0: %s", envs[i], e);
        cr_assert(st == 0 || strstr(e, "cuda:1"), "%s: %s", envs[i], e);
        free(e);
    }
}

/* Several processes in one array task would all take the task's shard. */
Test(cli_shard, auto_refuses_several_processes_in_one_array_task)
{
    const char *bad[] = {
        "SLURM_ARRAY_TASK_ID=1 SLURM_ARRAY_TASK_COUNT=3 SLURM_PROCID=1 SLURM_NTASKS=2",
        "SLURM_ARRAY_TASK_ID=1 SLURM_ARRAY_TASK_COUNT=3 SLURM_PROCID=1",
        "SLURM_ARRAY_TASK_ID=1 SLURM_ARRAY_TASK_COUNT=3 SLURM_PROCID=0 SLURM_NTASKS=1 RANK=0 WORLD_SIZE=2",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(run_env(bad[i], SAMPLE " --shard auto --npz a-%%k.npz", FIXTURES, FIXTURES), 2, "%s", bad[i]);
        refused("runs several processes");
    }
    cr_assert_eq(tu_count_files(dir), 2, "files left behind");   /* out.txt, err.txt */
}

/* Every process of --shard auto runs one command line: an output without %k
   would be one file for all shards, each replacing the last (array tasks
   run one after the other, so no lock sees them). */
Test(cli_shard, auto_refuses_one_output_for_all_shards)
{
    const char *array = "SLURM_ARRAY_TASK_ID=1 SLURM_ARRAY_TASK_COUNT=3";
    cr_assert_eq(run_env(array, SAMPLE " --shard auto --npz same.npz", FIXTURES, FIXTURES), 2);
    refused("put %k in it");
    cr_assert_eq(run_env(array, SAMPLE " --shard auto --npz 'same-%%%%k.npz'", FIXTURES, FIXTURES), 2);
    refused("put %k in it");
    cr_assert_eq(run_env(array, "eval --samples s.npz --shard auto --features-out f.npz --inception i.pth"), 2);
    refused("put %k in it");
    cr_assert_eq(tu_count_files(dir), 2, "files left behind");   /* out.txt, err.txt */
    /* one shard in all: nothing to tell apart */
    resolves("SLURM_ARRAY_TASK_ID=0 SLURM_ARRAY_TASK_COUNT=1", 0, 1, "SLURM_ARRAY_TASK_ID=0");
}

/* The note saying where the shard came from waits for the command line's
   checks, so that a usage error stays the only line. */
Test(cli_shard, auto_usage_errors_are_one_line)
{
    cr_assert_eq(run_env("SLURM_PROCID=1 SLURM_NTASKS=2", SAMPLE " --shard auto --labels odd --npz a-%%k.npz",
                         FIXTURES, FIXTURES), 2);
    refused("--labels");
}

/* eval --features-out takes the lock fid-sample's --npz does: two runs
   featurising into one file would interleave rows in its .partial, which
   --resume reads back as features. Refused before the network loads (the
   --inception here is not one). */
Test(cli_shard, eval_features_out_is_locked)
{
    cr_assert_eq(run_env("", SAMPLE " --npz s.npz", FIXTURES, FIXTURES), 0);
    FILE *f = fopen(tu_join(dir, "inc.pth"), "w");
    cr_assert_not_null(f);
    fclose(f);
    int held = open(tu_join(dir, "f.npz.lock"), O_RDWR | O_CREAT, 0644);
    cr_assert(held >= 0 && flock(held, LOCK_EX | LOCK_NB) == 0);
    cr_assert_eq(run_env("", "eval --inception inc.pth --samples s.npz --shard 0/2 --features-out f.npz"), 2);
    refused("another run is writing the same output");
    close(held);
    /* released: the run goes on (to the bad network) and removes its lock */
    cr_assert_eq(run_env("", "eval --inception inc.pth --samples s.npz --shard 0/2 --features-out f.npz"), 2);
    char *e = err_text();
    cr_assert(!strstr(e, "locked"), "%s", e);
    free(e);
    cr_assert(!exists("f.npz.lock"));
}

/* A launcher's thread count that none can come from is refused naming the
   variable (not --threads, which was not given); OpenMP's per-level list
   gives its first level; --threads overrides the variables unread. */
Test(cli_shard, auto_checks_the_launchers_thread_count)
{
    const char *bad[][2] = {
        {"PMI_RANK=0 PMI_SIZE=1 SLURM_CPUS_PER_TASK=abc", "SLURM_CPUS_PER_TASK='abc'"},
        {"PMI_RANK=0 PMI_SIZE=1 SLURM_CPUS_PER_TASK=100000", "SLURM_CPUS_PER_TASK='100000'"},
        {"PMI_RANK=0 PMI_SIZE=1 OMP_NUM_THREADS=0", "OMP_NUM_THREADS='0'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(run_env(bad[i][0], SAMPLE " --shard auto --npz a.npz", FIXTURES, FIXTURES), 2, "%s", bad[i][0]);
        char *e = err_text();
        /* libgomp warns about an OMP_NUM_THREADS it cannot use before main */
        const char *last = strstr(e, "moedit fid-sample:");
        cr_assert(last && tu_one_line(last), "not one line: '%s'", e);
        cr_assert(strstr(last, bad[i][1]), "expected '%s' in: %s", bad[i][1], e);
        free(e);
    }
    resolves("PMI_RANK=0 PMI_SIZE=1 OMP_NUM_THREADS=2,1", 0, 1,
             "PMI_RANK=0 of PMI_SIZE=1; 2 threads from OMP_NUM_THREADS");
    const char *overridden[] = {"SLURM_CPUS_PER_TASK=2", "SLURM_CPUS_PER_TASK=abc"};
    for (size_t i = 0; i < sizeof overridden / sizeof overridden[0]; i++) {
        char env[96];
        snprintf(env, sizeof env, "PMI_RANK=0 PMI_SIZE=1 %s", overridden[i]);
        cr_assert_eq(run_env(env, SAMPLE " --shard auto --threads 1 --npz t.npz", FIXTURES, FIXTURES), 0, "%s", env);
        char *e = err_text();
        cr_assert(!strstr(e, "from SLURM_CPUS_PER_TASK"), "%s: a thread note although --threads was given: %s", env, e);
        free(e);
    }
}

Test(cli_shard, auto_takes_threads_from_the_launcher)
{
    resolves("PMI_RANK=0 PMI_SIZE=1 SLURM_CPUS_PER_TASK=1 OMP_NUM_THREADS=2", 0, 1,
             "PMI_RANK=0 of PMI_SIZE=1; 1 thread from SLURM_CPUS_PER_TASK");
    resolves("PMI_RANK=0 PMI_SIZE=1 OMP_NUM_THREADS=2", 0, 1,
             "PMI_RANK=0 of PMI_SIZE=1; 2 threads from OMP_NUM_THREADS");
}

/* The count `bench` reports it ran on, from out.txt. */
static int bench_threads(void)
{
    char *o = tu_slurp(tu_join(dir, "out.txt"), NULL), *p = o ? strstr(o, "threads: ") : NULL;
    cr_assert_not_null(p, "no threads: line in %s", o ? o : "(nothing)");
    int t = atoi(p + 9);
    free(o);
    return t;
}

/* Without --shard auto and without --threads every command takes its
   thread count from the environment as other programs do (Slurm's -c, then
   OpenMP's variable), refuses one no count can come from, and --threads
   overrides both unread. */
#define BENCH "bench --model %s/dit/moe_top2.pt --batch 2 --iters 1"
Test(cli_shard, threads_from_the_environment_without_a_shard)
{
    const struct {
        const char *env;
        int threads;
    } take[] = {{"OMP_NUM_THREADS=1", 1}, {"OMP_NUM_THREADS=3,1", 3}, {"SLURM_CPUS_PER_TASK=1 OMP_NUM_THREADS=3", 1}};
    for (size_t i = 0; i < sizeof take / sizeof take[0]; i++) {
        cr_assert_eq(run_env(take[i].env, BENCH, FIXTURES), 0, "%s: %s", take[i].env, err_text());
        cr_assert_eq(bench_threads(), take[i].threads, "%s", take[i].env);
    }
    cr_assert_eq(run_env("OMP_NUM_THREADS=abc", SAMPLE " --npz a.npz", FIXTURES, FIXTURES), 2);
    char *e = err_text();
    const char *last = strstr(e, "moedit fid-sample:");   /* after libgomp's own warning */
    cr_assert(last && tu_one_line(last) && strstr(last, "OMP_NUM_THREADS='abc' is not a thread count"), "%s", e);
    free(e);
    cr_assert(!exists("a.npz"));
    cr_assert_eq(run_env("OMP_NUM_THREADS=abc SLURM_CPUS_PER_TASK=x", BENCH " --threads 1", FIXTURES), 0, "%s", err_text());
    cr_assert_eq(bench_threads(), 1);
}

Test(cli_shard, auto_refuses_what_it_cannot_place)
{
    const char *bad[][2] = {
        {"", "no launcher found"},
        {"SLURM_ARRAY_TASK_ID=1", "SLURM_ARRAY_TASK_COUNT"},
        {"SLURM_ARRAY_TASK_ID=7 SLURM_ARRAY_TASK_MIN=1 SLURM_ARRAY_TASK_COUNT=3", "SLURM_ARRAY_TASK_ID=7"},
        {"SLURM_ARRAY_TASK_ID=3 SLURM_ARRAY_TASK_MIN=0 SLURM_ARRAY_TASK_STEP=2 SLURM_ARRAY_TASK_COUNT=3",
         "SLURM_ARRAY_TASK_ID=3"},
        {"SLURM_PROCID=3 SLURM_NTASKS=3", "SLURM_PROCID=3 is not below SLURM_NTASKS=3"},
        {"OMPI_COMM_WORLD_RANK=x OMPI_COMM_WORLD_SIZE=2", "not numbers"},
        {"PMI_RANK=0", "PMI_SIZE"},
        /* blanks or a sign: not what a launcher writes, so not a rank */
        {"RANK=' 1' WORLD_SIZE=2", "not numbers"},
        {"RANK=+1 WORLD_SIZE=2", "not numbers"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(run_env(bad[i][0], SAMPLE " --shard auto --npz a.npz", FIXTURES, FIXTURES), 2, "%s", bad[i][0]);
        refused(bad[i][1]);
    }
    cr_assert_eq(run_env("", SAMPLE " --shard 1/3 --npz 'a-%%q.npz'", FIXTURES, FIXTURES), 2);
    refused("%k");
    cr_assert_eq(tu_count_files(dir), 2, "files left behind");   /* out.txt, err.txt */
}

/* Shard k of 3 into NAME with extra flags. */
static void shard(const char *name, int k, const char *extra)
{
    cr_assert_eq(run_env("", SAMPLE " --shard %d/3 --npz %s %s", FIXTURES, FIXTURES, k, name, extra), 0, "%s",
                 err_text());
}

static void merge_refused(const char *inputs, const char *what)
{
    cr_assert_eq(run_env("", "npz-merge --out m.npz %s", inputs), 2, "%s merged", inputs);
    refused(what);
    cr_assert(!exists("m.npz"), "output left behind");
}

/* one.npz in one process and s0..s2.npz as shards k/3, with extra flags;
   each shard's stderr into errs[k] (the caller frees) unless errs is NULL. */
static void sample_set(const char *extra, char **errs)
{
    cr_assert_eq(run_env("", SAMPLE " %s --npz one.npz", FIXTURES, FIXTURES, extra), 0, "%s", err_text());
    for (int k = 0; k < 3; k++) {
        char name[32];
        snprintf(name, sizeof name, "s%d.npz", k);
        shard(name, k, extra);
        if (errs) errs[k] = err_text();
    }
}

/* npz-merge of s0..s2.npz given out of order is one.npz byte for byte: the
   shard record decides the order. */
static void merged_is_one_process(void)
{
    cr_assert_eq(run_env("", "npz-merge --out m.npz s2.npz s0.npz s1.npz"), 0, "%s", err_text());
    size_t la, lb;
    char *a = tu_slurp(tu_join(dir, "m.npz"), &la), *b = tu_slurp(tu_join(dir, "one.npz"), &lb);
    cr_assert(a && b && la == lb && !memcmp(a, b, la), "merged shards differ from one process");
    free(a);
    free(b);
    unlink(tu_join(dir, "m.npz"));
}

Test(cli_shard, merge_orders_shards_and_refuses_a_broken_set)
{
    sample_set("", NULL);
    merged_is_one_process();

    merge_refused("s0.npz s2.npz", "shard 1/3 is missing");
    merge_refused("s0.npz s1.npz", "shard 2/3 is missing");
    merge_refused("s0.npz s1.npz s1.npz s2.npz", "s1.npz and s1.npz are both shard 1/3");
    merge_refused("s0.npz s1.npz one.npz", "one.npz is shard 0/1, but s0.npz is one of 3 shards");
    merge_refused("s0.npz s1.npz s2.npz " FIXTURES "/fid/images_a.npz", "images_a.npz is not a fid-sample shard");

    shard("seed.npz", 1, "--seed 9");
    merge_refused("s0.npz seed.npz s2.npz", "seed.npz was sampled with other settings than s0.npz: seed=9, not seed=0");
    shard("sampler.npz", 1, "--sampler ddim");
    merge_refused("s0.npz sampler.npz s2.npz", "sampler.npz was sampled with other settings than s0.npz: sampler=");
    cr_assert_eq(run_env("", "fid-sample --model %s/dit/moe_top1.pt --vae %s/vae/small --steps 3 --cfg 1.5 --num 6 "
                         "--batch 1 --shard 1/3 --npz model.npz", FIXTURES, FIXTURES), 0, "%s", err_text());
    merge_refused("s0.npz model.npz s2.npz", "model.npz was sampled with other settings than s0.npz: model=");
    cr_assert_eq(run_env("", SAMPLE " --num 9 --shard 1/3 --npz num.npz", FIXTURES, FIXTURES), 0, "%s", err_text());
    merge_refused("s0.npz num.npz s2.npz", "num=9, not num=6");

    /* labels that are not one per image: a table, not a count of -1 */
    me_zip_writer w;
    uint8_t img[2 * 2 * 2 * 3] = {0};
    int64_t lab[4] = {0};
    cr_assert_eq(me_zip_writer_open(&w, tu_join(dir, "table.npz")), MOEDIT_OK, "%s", moedit_last_error());
    cr_assert_eq(me_npz_add(&w, "arr_0", ME_U8, 4, (int64_t[]){2, 2, 2, 3}, img), MOEDIT_OK);
    cr_assert_eq(me_npz_add(&w, "arr_1", ME_I64, 2, (int64_t[]){2, 2}, lab), MOEDIT_OK);
    cr_assert_eq(me_zip_writer_finish(&w), MOEDIT_OK, "%s", moedit_last_error());
    merge_refused("table.npz s1.npz", "table.npz: arr_1 has 2 dimensions, not one label per image");

    /* a shard record whose first + count overflows int64 (it wrapped below
       num and passed) */
    cr_assert_eq(me_zip_writer_open(&w, tu_join(dir, "huge.npz")), MOEDIT_OK, "%s", moedit_last_error());
    cr_assert_eq(me_npz_add(&w, "arr_0", ME_U8, 4, (int64_t[]){2, 2, 2, 3}, img), MOEDIT_OK);
    cr_assert_eq(me_npz_add(&w, "moedit_shard", ME_I64, 1, (int64_t[]){5}, (int64_t[]){0, 1, INT64_MAX, 2, 5}),
                 MOEDIT_OK);
    cr_assert_eq(me_npz_add(&w, "moedit_settings", ME_U8, 1, (int64_t[]){1}, "x"), MOEDIT_OK);
    cr_assert_eq(me_zip_writer_finish(&w), MOEDIT_OK, "%s", moedit_last_error());
    merge_refused("huge.npz", "huge.npz: moedit_shard says shard 0/1, samples 9223372036854775807+2 of 5");
}

/* Fewer batches than shards: shards take whole batches, so one holds none —
   it says so (it printed "samples 0..-1"), writes its empty file, and the set
   still merges into the one-process file; a rerun with --resume keeps it. */
Test(cli_shard, a_shard_without_batches_says_so_and_merges)
{
    char *errs[3];
    sample_set("--batch 4", errs);
    cr_assert(strstr(errs[0], "s0.npz: no samples for shard 0/3 (6 samples make 2 batches of 4, and shards take "
                              "whole batches)") && strstr(errs[0], "wrote s0.npz: 0 samples"), "%s", errs[0]);
    for (int k = 0; k < 3; k++) {
        if (k) cr_assert(!strstr(errs[k], "no samples") && !strstr(errs[k], "..-1"), "%s", errs[k]);
        free(errs[k]);
    }
    /* a rerun with --resume keeps the finished empty file, and says so */
    ino_t before = tu_inode(tu_join(dir, "s0.npz"));
    shard("s0.npz", 0, "--batch 4 --resume");
    char *e = err_text();
    cr_assert(strstr(e, "s0.npz: already holds shard 0/3, which has no samples, of these settings and weights: kept"),
              "%s", e);
    free(e);
    cr_assert_eq(tu_inode(tu_join(dir, "s0.npz")), before, "the finished empty shard was written again");
    merged_is_one_process();
}

/* "done N" of a state file, or -1. */
static long state_done(const char *name) { return tu_state_done(tu_join(dir, name)); }

Test(cli_shard, resume_refuses_a_state_of_other_settings)
{
    /* a shard killed after its first checkpoint */
    char args[1000];
    snprintf(args, sizeof args, SAMPLE " --num 60 --shard 1/3 --seed 4 --npz k.npz", FIXTURES, FIXTURES);
    int killed;
    long done = tu_kill_when_done(dir, MOEDIT_BIN, args, "k.npz.state", 1, 6000, &killed);
    cr_assert(killed, "the run ended before it could be killed");
    cr_assert(done >= 1 && done < 20, "done %ld", done);
    /* another seed, sampler or model: exit 2, the state untouched */
    const char *other[] = {"--seed 5", "--seed 4 --sampler ddim", "--seed 4 --steps 4", "--seed 4 --cfg 2"};
    for (size_t i = 0; i < sizeof other / sizeof other[0]; i++) {
        cr_assert_eq(run_env("", SAMPLE " --num 60 --shard 1/3 %s --npz k.npz --resume", FIXTURES, FIXTURES, other[i]),
                     2, "%s", other[i]);
        refused("other settings");
        cr_assert_eq(state_done("k.npz.state"), done);
    }
    cr_assert_eq(run_env("", "fid-sample --model %s/dit/moe_top1.pt --vae %s/vae/small --steps 3 --cfg 1.5 --num 60 "
                         "--batch 1 --shard 1/3 --seed 4 --npz k.npz --resume", FIXTURES, FIXTURES), 2);
    refused("other settings");
    /* the same settings resume, and equal an uninterrupted shard */
    cr_assert_eq(run_env("", SAMPLE " --num 60 --shard 1/3 --seed 4 --npz k.npz --resume", FIXTURES, FIXTURES), 0,
                 "%s", err_text());
    cr_assert_eq(run_env("", SAMPLE " --num 60 --shard 1/3 --seed 4 --npz full.npz", FIXTURES, FIXTURES), 0);
    size_t la, lb;
    char *a = tu_slurp(tu_join(dir, "k.npz"), &la), *b = tu_slurp(tu_join(dir, "full.npz"), &lb);
    cr_assert(a && b && la == lb && !memcmp(a, b, la), "resumed shard differs");
    free(a);
    free(b);
}

/* A copy of member key (arr_0, arr_1) of dir/name: its bytes (the caller
   frees), their count in *bytes. */
static void *member(const char *name, const char *key, size_t *bytes)
{
    me_npz z;
    me_array a = {0};
    cr_assert_eq(me_npz_open(tu_join(dir, name), &z), MOEDIT_OK, "%s", moedit_last_error());
    cr_assert_eq(me_npz_get(&z, key, &a), MOEDIT_OK, "%s: %s", name, moedit_last_error());
    *bytes = (size_t)a.numel * me_dtype_size(a.dtype);
    void *copy = malloc(*bytes ? *bytes : 1);
    memcpy(copy, a.data, *bytes);
    me_array_free(&a);
    me_npz_close(&z);
    return copy;
}

/* --class: the samples' labels from a list, cycled (or drawn) as --labels
   says; the list of every class in order is the default run image for image,
   shards of a list merge into its one-process file, and a list is a setting
   npz-merge holds shards to. */
Test(cli_shard, class_list_labels_the_samples)
{
    sample_set("--class 3,7", NULL);
    merged_is_one_process();
    size_t n, m;
    int64_t *y = member("one.npz", "arr_1", &n);
    const int64_t cycled[6] = {3, 7, 3, 7, 3, 7};
    cr_assert(n == sizeof cycled && !memcmp(y, cycled, sizeof cycled), "labels not cycled over the list");
    free(y);

    cr_assert_eq(run_env("", SAMPLE " --class 3,7 --labels random --npz random.npz", FIXTURES, FIXTURES), 0, "%s",
                 err_text());
    y = member("random.npz", "arr_1", &n);
    for (size_t i = 0; i < n / sizeof *y; i++) cr_assert(y[i] == 3 || y[i] == 7, "label %lld", (long long)y[i]);
    free(y);

    cr_assert_eq(run_env("", SAMPLE " --npz plain.npz", FIXTURES, FIXTURES), 0, "%s", err_text());
    cr_assert_eq(run_env("", SAMPLE " --class 0,1,2,3,4,5,6,7,8,9 --npz all.npz", FIXTURES, FIXTURES), 0, "%s",
                 err_text());
    for (int k = 0; k < 2; k++) {
        const char *key = k ? "arr_1" : "arr_0";
        void *a = member("plain.npz", key, &n), *b = member("all.npz", key, &m);
        cr_assert(n == m && !memcmp(a, b, n), "%s: every class in order is not the default", key);
        free(a);
        free(b);
    }

    shard("plain1.npz", 1, "");
    merge_refused("s0.npz plain1.npz s2.npz", ", not classes=3,7");
    cr_assert_eq(run_env("", SAMPLE " --class 3,99 --npz bad.npz", FIXTURES, FIXTURES), 2);
    refused("--class: 99 is outside 0..9");
    cr_assert(!exists("bad.npz"));
}

/* shard.h — which part of a sharded job this process does, and the record
   of it a shard file carries (cli/shard.c).

   --shard takes "k/n" (0 <= k < n) or "auto": the shard from the launcher's
   environment, tried in this order
     SLURM_ARRAY_TASK_ID / SLURM_ARRAY_TASK_COUNT   (sbatch --array; IDs are
         counted from SLURM_ARRAY_TASK_MIN in steps of SLURM_ARRAY_TASK_STEP)
     SLURM_PROCID / SLURM_NTASKS                    (srun -n)
     OMPI_COMM_WORLD_RANK / OMPI_COMM_WORLD_SIZE    (Open MPI's mpirun)
     PMI_RANK / PMI_SIZE                            (MPICH, Intel MPI)
     RANK / WORLD_SIZE                              (torchrun)
     LOCAL_RANK / LOCAL_WORLD_SIZE                  (alone)
   with one exception: an mpirun or torchrun started inside a Slurm
   allocation hands its processes the SLURM_PROCID of its own launcher step,
   so SLURM_PROCID/NTASKS is passed over when an MPI or torchrun rank/size
   pair is present and disagrees with it. An array task that runs several
   processes (SLURM_PROCID > 0, or an MPI/torchrun size > 1) is refused: they
   would all take the task's shard. The local rank (a bare --device cuda's
   GPU) comes from the launcher that gave the shard (SLURM_LOCALID,
   OMPI_COMM_WORLD_LOCAL_RANK, MPI_LOCALRANKID, LOCAL_RANK), else k.
   The thread count comes from SLURM_CPUS_PER_TASK, else OMP_NUM_THREADS
   (its first level), unless --threads is given, as in every command
   (cli_threads); "auto" names it on its line, and refuses a value that is
   not a count in 1..CLI_MAX_THREADS while parsing. No MPI library is
   involved: the ranks are independent processes.

   A shard file (fid-sample's npz) carries two small members besides arr_0
   and arr_1, which readers that ask for arr_0/arr_1 never see:
     moedit_shard.npy     int64 [5]: k, n, first sample, samples, --num
     moedit_settings.npy  uint8 [L]: the settings every shard of the set
                          shares (the resume fingerprint less its shard=)
   npz-merge uses them to put shards in order and to refuse a set with a
   missing, duplicated or foreign member. */
#ifndef MOEDIT_CLI_SHARD_H
#define MOEDIT_CLI_SHARD_H

#include <stddef.h>
#include <stdint.h>
#include "weights/npy.h"

typedef struct {
    int k, n;
    int local;          /* rank on this machine (auto only; else k): a bare --device cuda's GPU */
    int from_launcher;  /* auto: every process runs the same command line */
    char source[400];   /* auto: where k/n (and threads) came from, for cli_shard_report */
} cli_shard;

/* spec NULL → 0/1. With threads_given (--threads) the launcher's thread
   variables are not read. Returns 0, or 2 after a one-line usage error. */
int cli_shard_parse(const char *cmd, const char *spec, int threads_given, cli_shard *s);

/* Says on stderr, as one line, where "auto" found the shard (and threads);
   nothing for k/n. Called once the command line has been checked, so that
   a usage error stays the only line. */
void cli_shard_report(const char *cmd, const cli_shard *s);

/* path with "%k" and "%n" replaced by the shard's k and n ("%%" is "%"):
   one command line names every shard's own file. Returns 0, or 2 after a
   usage error (another %-sequence, too long, or a path without %k for one
   of several shards from the launcher, which every process would share). */
int cli_shard_expand(const char *cmd, const char *flag, const char *path, const cli_shard *s, char *out,
                     size_t cap);

#define CLI_SHARD_META_MAX 8192
typedef struct {
    int64_t k, n, first, count, num;
    char settings[CLI_SHARD_META_MAX];
} cli_shard_meta;

/* The shared settings of a resume fingerprint: fp without its " shard=k/n"
   field, into out. */
void cli_shard_settings(const char *fp, char *out, size_t cap);

/* Appends the two members to an npz being written. */
int cli_shard_write_meta(me_zip_writer *w, const cli_shard_meta *m);
/* 1 and *m filled when the npz has the members, 0 when it has none, or a
   negative value after a library error (malformed members). */
int cli_shard_read_meta(me_npz *z, const char *path, cli_shard_meta *m);

/* Checks that metas[0..n) (of files names[]) form one complete shard set:
   the same settings and shard count, every k once, consecutive sample
   ranges matching the image counts (images[i]). Fills order[] with the input
   index of shard 0, 1, … and *merged with the record of the whole set.
   Returns 0, or 2 after a one-line usage error naming the offending file. */
int cli_shard_check_set(const char *cmd, const cli_shard_meta *metas, const int64_t *images, char **names,
                        int n, int *order, cli_shard_meta *merged);

#endif

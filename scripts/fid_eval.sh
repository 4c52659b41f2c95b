#!/bin/sh
# fid_eval.sh — checkpoint to the ADM evaluator's five numbers: sample N
# images in shards, merge, score with `moedit eval`.
#
#   scripts/fid_eval.sh --out DIR --num 50000 --shards 8 --inception pt_inception.pth \
#       --ref VIRTUAL_imagenet256_labeled.npz -- --model DiT-MoE-S-2-8E2A.pt --vae sd-vae-ft-mse \
#       --steps 250 --cfg 1.5 --seed 0
#
# Everything after "--" goes to `moedit fid-sample` unchanged (model and
# sampling flags). Shard files: DIR/shard-K-of-S.npz (each written with
# --resume, so a rerun after a crash or a preempted job continues and keeps
# the shards that finished); results:
# DIR/samples.npz, DIR/eval.txt (the five lines `moedit eval` prints:
# Inception Score, FID, sFID, Precision, Recall) and DIR/eval.json. --ref is
# an ADM reference batch (e.g. VIRTUAL_imagenet256_labeled.npz) or its
# `moedit eval --stats-out` file (featurised once); --preprocess adm (default)
# or pytorch-fid. Modes:
#   (default)      S local processes in parallel (--threads T each; default
#                  cores / S),
#                  then --finish; under a launcher (the variables below) as
#                  --sample-only, and MPI rank 0 then waits for every shard
#                  file (a shard's .npz appears only when complete, so a
#                  shared folder is the barrier) and finishes; under srun
#                  give --sample-only (scripts/slurm_fid_srun.sbatch does)
#   --sample-only  this process's shard only, from the launcher's environment
#                  (`fid-sample --shard auto`: a Slurm array task, an srun
#                  task, an mpirun rank); what scripts/slurm_fid_*.sbatch and
#                  scripts/mpi_fid.sh run on every task
#   --finish       merge DIR/shard-*-of-*.npz (npz-merge orders them and
#                  refuses a missing, duplicated or foreign shard) and score
# The merge and the score accept the sampling flags and ignore them, so one
# argument list serves both steps.
set -eu

MOEDIT=${MOEDIT:-$(dirname "$0")/../build/moedit}
out='' num='' shards=1 inception='' ref='' batch=16 mode=default labels=balanced threads= preprocess=adm
while [ $# -gt 0 ]; do
  case $1 in
    --out) out=$2; shift 2 ;;
    --num) num=$2; shift 2 ;;
    --shards) shards=$2; shift 2 ;;
    --inception) inception=$2; shift 2 ;;
    --ref) ref=$2; shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    --labels) labels=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --preprocess) preprocess=$2; shift 2 ;;
    --sample-only) mode=sample; shift ;;
    --finish) mode=finish; shift ;;
    --) shift; break ;;
    *) echo "fid_eval.sh: unknown flag $1 (flags for fid-sample go after --)" >&2; exit 2 ;;
  esac
done
need() {
  for v in "$@"; do
    eval "val=\${$v}"
    [ -n "$val" ] || { echo "fid_eval.sh: --$v is required" >&2; exit 2; }
  done
}
need out
[ "$mode" = finish ] || need num
[ "$mode" = sample ] || need inception ref
mkdir -p "$out"

# One shard: SHARD is k/n or auto; the sampling flags are the remaining arguments.
sample() {
  shard=$1; shift
  "$MOEDIT" fid-sample --npz "$out/shard-%k-of-%n.npz" --num "$num" --batch "$batch" --labels "$labels" \
    --shard "$shard" --resume "$@"
}

# The evaluation of the merged samples. Threads: --threads, else as the
# launcher gave (0: all cores).
score() {
  "$MOEDIT" eval --inception "$inception" --samples "$out/samples.npz" --ref "$ref" --preprocess "$preprocess" \
    --json "$out/eval.json" --threads "${threads:-${SLURM_CPUS_PER_TASK:-${OMP_NUM_THREADS:-0}}}"
}

finish() {
  # shellcheck disable=SC2046  # the shard names have no spaces when DIR has none
  "$MOEDIT" npz-merge --out "$out/samples.npz" $(ls "$out"/shard-*-of-*.npz)
  score > "$out/eval.txt.tmp"
  mv "$out/eval.txt.tmp" "$out/eval.txt"
  cat "$out/eval.txt"
}

rank=${OMPI_COMM_WORLD_RANK:-${PMI_RANK:-}}
size=${OMPI_COMM_WORLD_SIZE:-${PMI_SIZE:-}}
case $mode in
  finish) finish ;;
  sample) sample auto ${threads:+--threads "$threads"} "$@" ;;
  *)
    if [ -n "${SLURM_ARRAY_TASK_ID:-}" ] || [ -n "$rank" ]; then
      sample auto ${threads:+--threads "$threads"} "$@"
      if [ -z "${SLURM_ARRAY_TASK_ID:-}" ] && [ "$rank" = 0 ]; then
        # shellcheck disable=SC2012  # counting files whose names we made
        while [ "$(ls "$out"/shard-*-of-"$size".npz 2>/dev/null | wc -l)" -lt "$size" ]; do sleep 5; done
        finish
      fi
    else
      per=${threads:-$(( $(nproc) / shards ))}; [ "$per" -ge 1 ] || per=1
      i=0 pids=''
      while [ $i -lt "$shards" ]; do
        sample "$i/$shards" --threads "$per" "$@" 2> "$out/shard-$i.log" & pids="$pids $!"
        i=$((i + 1))
      done
      status=0
      for p in $pids; do wait "$p" || status=1; done
      if [ $status != 0 ]; then
        echo "fid_eval.sh: a shard failed (see $out/shard-*.log); rerun to resume" >&2
        exit 1
      fi
      finish
    fi
    ;;
esac

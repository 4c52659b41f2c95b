#!/bin/sh
# fid_eval.sh — checkpoint to the ADM evaluator's five numbers in one command:
# sample N images in S shards (local processes, a Slurm job array or an MPI
# job), featurise each shard where it was sampled, merge, score.
#
#   scripts/fid_eval.sh --out DIR --num 50000 --shards 8 --inception pt_inception.pth \
#       --ref VIRTUAL_imagenet256_labeled.npz -- --model DiT-MoE-S-2-8E2A.pt --vae sd-vae-ft-mse \
#       --steps 250 --cfg 1.5 --seed 0
#
# Everything after "--" goes to `moedit fid-sample` unchanged (model and
# sampling flags). Where the shards run:
#   default       S local processes in parallel (--threads each: cores / S)
#   under Slurm   (SLURM_ARRAY_TASK_ID set, e.g. sbatch --array=0-7) this task
#                 writes shard $SLURM_ARRAY_TASK_ID of SLURM_ARRAY_TASK_COUNT;
#                 run again with --finish (e.g. a dependent job) to merge and score
#   under mpirun  (OMPI_COMM_WORLD_RANK/SIZE or PMI_RANK/PMI_SIZE set) each rank
#                 writes its shard; rank 0 waits for all of them (a barrier
#                 through the shared folder: a shard's .npz appears only when
#                 complete) and then merges and scores
# Every shard samples and featurises with --resume, so rerunning after a
# crash or a preempted job continues where it stopped. Shard files:
# DIR/shard-K-of-S.npz and their Inception features DIR/features-K-of-S.npz;
# results: DIR/samples.npz, DIR/eval.txt (the five lines `moedit eval`
# prints: Inception Score, FID, sFID, Precision, Recall) and DIR/eval.json.
# --ref is an ADM reference batch (e.g. VIRTUAL_imagenet256_labeled.npz) or
# its `moedit eval --stats-out` file (featurised once); --preprocess adm
# (default) or pytorch-fid.
set -eu

MOEDIT=${MOEDIT:-$(dirname "$0")/../build/moedit}
out='' num='' shards=1 inception='' ref='' batch=16 finish=0 labels=balanced preprocess=adm eval_threads=0
while [ $# -gt 0 ]; do
  case $1 in
    --out) out=$2; shift 2 ;;
    --num) num=$2; shift 2 ;;
    --shards) shards=$2; shift 2 ;;
    --inception) inception=$2; shift 2 ;;
    --ref) ref=$2; shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    --labels) labels=$2; shift 2 ;;
    --preprocess) preprocess=$2; shift 2 ;;
    --finish) finish=1; shift ;;
    --) shift; break ;;
    *) echo "fid_eval.sh: unknown flag $1 (flags for fid-sample go after --)" >&2; exit 2 ;;
  esac
done
if [ -z "$out" ] || [ -z "$num" ] || [ -z "$inception" ] || [ -z "$ref" ]; then
  echo "fid_eval.sh: --out, --num, --inception and --ref are required" >&2
  exit 2
fi
mkdir -p "$out"

shard_file() { echo "$out/shard-$1-of-$shards.npz"; }
feature_file() { echo "$out/features-$1-of-$shards.npz"; }

# One shard; the sampling flags are the remaining arguments.
run_shard() {
  k=$1; shift
  "$MOEDIT" fid-sample --npz "$(shard_file "$k")" --num "$num" --batch "$batch" --labels "$labels" \
    --shard "$k/$shards" --resume "$@" 2> "$out/shard-$k.log"
  "$MOEDIT" eval --inception "$inception" --samples "$(shard_file "$k")" --features-out "$(feature_file "$k")" \
    --preprocess "$preprocess" --resume --threads "$eval_threads" 2>> "$out/shard-$k.log"
}

merge_and_score() {
  i=0 files='' features=''
  while [ $i -lt "$shards" ]; do
    files="$files $(shard_file $i)"
    features="$features${features:+,}$(feature_file $i)"
    i=$((i + 1))
  done
  # shellcheck disable=SC2086  # the shard names have no spaces: DIR is quoted in shard_file
  "$MOEDIT" npz-merge --out "$out/samples.npz" $files
  # the shards' feature files, concatenated in shard order = samples.npz's features
  "$MOEDIT" eval --inception "$inception" --samples "$features" --ref "$ref" --preprocess "$preprocess" \
    --json "$out/eval.json" | tee "$out/eval.txt"
}

rank=${OMPI_COMM_WORLD_RANK:-${PMI_RANK:-}}
size=${OMPI_COMM_WORLD_SIZE:-${PMI_SIZE:-}}
if [ "$finish" = 1 ]; then
  merge_and_score
elif [ -n "${SLURM_ARRAY_TASK_ID:-}" ]; then
  shards=${SLURM_ARRAY_TASK_COUNT:-$shards}
  run_shard "$SLURM_ARRAY_TASK_ID" "$@"
elif [ -n "$rank" ] && [ -n "$size" ]; then
  shards=$size
  run_shard "$rank" "$@"
  if [ "$rank" = 0 ]; then
    i=0
    while [ $i -lt "$shards" ]; do
      while [ ! -f "$(shard_file $i)" ]; do sleep 5; done
      i=$((i + 1))
    done
    merge_and_score
  fi
else
  cores=$(nproc)
  threads=$(( cores / shards )); [ "$threads" -ge 1 ] || threads=1
  eval_threads=$threads
  i=0 pids=''
  while [ $i -lt "$shards" ]; do
    run_shard $i --threads "$threads" "$@" & pids="$pids $!"
    i=$((i + 1))
  done
  status=0
  for p in $pids; do wait "$p" || status=1; done
  if [ $status != 0 ]; then
    echo "fid_eval.sh: a shard failed (see $out/shard-*.log); rerun to resume" >&2
    exit 1
  fi
  merge_and_score
fi

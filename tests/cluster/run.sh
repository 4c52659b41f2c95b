#!/bin/bash
# tests/cluster/run.sh — the multi-machine FID recipes of docs/fid.md, run for
# real: a private single-node Slurm (scripts/slurm_local.sh) and Open MPI's
# mpirun execute the very scripts shipped in scripts/, on the shipped
# fmnist-moe model, and every merged sample file must equal a one-process
# run's byte for byte, with the same five evaluation numbers:
#   one      scripts/fid_eval.sh --shards 1            (the reference)
#   procs    scripts/fid_eval.sh --shards 3            (plain & processes)
#   array    sbatch --array=0-2 scripts/slurm_fid_array.sbatch, task 1
#            stopped once it has checkpointed a batch and requeued
#            (scontrol requeue) — it must resume — then
#            scripts/slurm_fid_finish.sbatch as an afterok dependency
#   srun     sbatch -n 3 scripts/slurm_fid_srun.sbatch
#   mpirun   scripts/mpi_fid.sh 3 (mpirun -np 3)
# and stopping the cluster must leave none of its processes behind.
#
#   MOEDIT=build/moedit INCEPTION=inception.pth tests/cluster/run.sh
# INCEPTION: FID Inception weights (the test, tests/cli_cluster.c, writes the
# counter-based random ones); REF: reference images (default a fixture);
# WORK: the folder to work in (default a fresh one, removed on success);
# NUM, STEPS: samples and sampling steps (default 12 and 50). Wall times go to
# stdout and WORK/times.txt.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
: "${MOEDIT:?set MOEDIT to the moedit binary}" "${INCEPTION:?set INCEPTION to Inception weights}"
MOEDIT=$(cd "$(dirname "$MOEDIT")" && pwd)/$(basename "$MOEDIT")
export MOEDIT
ref=${REF:-$root/tests/fixtures/eval/ref.npz}
num=${NUM:-12}
steps=${STEPS:-50}
own_work=0
if [ -z "${WORK:-}" ]; then WORK=$(mktemp -d /tmp/moedit_cluster_XXXXXX); own_work=1; fi
mkdir -p "$WORK"
# a CI job may itself run under Slurm or MPI: none of its variables leak in
# shellcheck disable=SC2046  # variable names, one word each
unset $(env | grep -oE '^(SLURM|OMPI|PMI|PMIX)_[A-Za-z0-9_]*' || true) OMP_NUM_THREADS SLURM_CONF
cd "$root"

# The fid_eval.sh arguments every recipe shares: 12 samples in batches of 1,
# so every shard of 3 has 4 batches to be interrupted in. Every process runs
# one thread (--threads 1 here, SLURM_CPUS_PER_TASK=1 from the batch
# scripts, OMP_NUM_THREADS=1 under mpirun): moedit's bytes depend on the
# thread count.
args=(--num "$num" --batch 1 --inception "$INCEPTION" --ref "$ref" -- --model fmnist-moe --steps "$steps" --seed 3)

fail() { echo "cluster test: $*" >&2; exit 1; }
now() { date +%s.%N; }
timed() {   # timed NAME START
  local t
  t=$(awk -v a="$2" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }')
  printf '%-8s %6s s\n' "$1" "$t" | tee -a "$WORK/times.txt"
}
same_result() {   # same_result NAME: DIR/samples.npz and eval.txt as the one-process run's
  cmp "$WORK/one/samples.npz" "$WORK/$1/samples.npz" || fail "$1: samples.npz differs from the one-process run"
  diff "$WORK/one/eval.txt" "$WORK/$1/eval.txt" || fail "$1: the metrics differ from the one-process run"
  echo "$1: samples.npz byte-identical, metrics the same: $(tr '\n' ' ' < "$WORK/$1/eval.txt")"
}

# Waits until job $1 has left the queue; its final state (scontrol) on stdout.
wait_job() {
  local deadline=$(( $(date +%s) + ${2:-240} )) state
  while [ -n "$(squeue -h -j "$1" -o %i 2>/dev/null)" ]; do
    state=$(squeue -h -j "$1" -o '%t %r' | sort -u | tr '\n' ' ')
    case $state in *DependencyNeverSatisfied*) fail "job $1: a dependency failed ($state)" ;; esac
    [ "$(date +%s)" -lt "$deadline" ] || fail "job $1 still queued after ${2:-240} s: $state"
    sleep 0.5
  done
  scontrol show job "$1" 2>/dev/null | grep -oE 'JobState=[A-Z_]+' | sort -u | tr '\n' ' '
}

echo "cluster test in $WORK: $num samples, $steps steps, host $(nproc) cores" | tee "$WORK/times.txt"
echo "load average at the start: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$WORK/times.txt"

t=$(now)
scripts/fid_eval.sh --out "$WORK/one" --shards 1 --threads 1 "${args[@]}" > /dev/null 2> "$WORK/one.err" \
  || { cat "$WORK/one.err" >&2; fail "the one-process run failed"; }
timed one "$t"
t=$(now)
scripts/fid_eval.sh --out "$WORK/procs" --shards 3 --threads 1 "${args[@]}" > /dev/null 2> "$WORK/procs.err" \
  || { cat "$WORK/procs.err" >&2; fail "the & processes run failed"; }
timed procs "$t"
same_result procs

t=$(now)
eval "$(scripts/slurm_local.sh start)"
trap 'scripts/slurm_local.sh stop "$SLURM_LOCAL_DIR" || true' EXIT
timed start "$t"
pids=$(cat "$SLURM_LOCAL_DIR"/*.pid)

# The pid of array task $2 of job $1's moedit process, from its environment.
array_task_pid() {
  local p env
  for p in $(pgrep -x moedit); do
    env=$(tr '\0' '\n' < "/proc/$p/environ" 2>/dev/null) || continue
    if grep -qx "SLURM_ARRAY_JOB_ID=$1" <<< "$env" && grep -qx "SLURM_ARRAY_TASK_ID=$2" <<< "$env"; then
      echo "$p"
      return 0
    fi
  done
  return 1
}

# job array, task 1 requeued mid-run. The task is stopped (SIGSTOP) as soon as
# its state shows a batch done, so the requeue reaches it mid-run however long
# slurmctld takes to act on a loaded host; Slurm's kill (SIGCONT, SIGTERM)
# ends it from there.
t=$(now)
jid=$(sbatch --parsable -o "$WORK/array-%a.out" scripts/slurm_fid_array.sbatch --out "$WORK/array" "${args[@]}")
fin=$(sbatch --parsable --dependency=afterok:"$jid" --kill-on-invalid-dep=yes -o "$WORK/array-finish.out" \
      scripts/slurm_fid_finish.sbatch --out "$WORK/array" "${args[@]}")
state=$WORK/array/shard-1-of-3.npz.state
deadline=$(( $(date +%s) + 120 ))
until [ -f "$state" ] && [ "$(sed -n 's/^done //p' "$state")" -ge 1 ] 2>/dev/null; do
  [ ! -f "$WORK/array/shard-1-of-3.npz" ] || fail "array task 1 finished before it could be requeued"
  [ "$(date +%s)" -lt "$deadline" ] || fail "array task 1 never checkpointed a batch (see $WORK/array-1.out)"
  sleep 0.05
done
pid=$(array_task_pid "$jid" 1) || fail "array task 1 has a state but no moedit process"
kill -STOP "$pid"
[ ! -f "$WORK/array/shard-1-of-3.npz" ] || fail "array task 1 finished before it could be stopped"
done_at=$(sed -n 's/^done //p' "$state")
scontrol requeue "${jid}_1"
echo "array: requeued task ${jid}_1 after $done_at samples"
echo "array: tasks $(wait_job "$jid"), finish $(wait_job "$fin")"
grep -q "resuming" "$WORK/array-1.out" || fail "the requeued task did not resume (see $WORK/array-1.out)"
grep -q "CANCELLED AT .* DUE TO JOB REQUEUE" "$WORK/array-1.out" || fail "task 1 was not requeued while running"
grep "resuming" "$WORK/array-1.out"
timed array "$t"
same_result array

# one job, srun -n 3
t=$(now)
jid=$(sbatch --parsable -o "$WORK/srun.out" scripts/slurm_fid_srun.sbatch --out "$WORK/srun" "${args[@]}")
echo "srun: job $(wait_job "$jid")"
timed srun "$t"
same_result srun

t=$(now)
scripts/slurm_local.sh stop "$SLURM_LOCAL_DIR"
trap - EXIT
timed stop "$t"
for p in $pids; do
  if kill -0 "$p" 2>/dev/null; then fail "process $p of the local Slurm is still running"; fi
done
[ ! -e "$SLURM_LOCAL_DIR" ] || fail "$SLURM_LOCAL_DIR was not removed"

# Open MPI, outside Slurm: 3 ranks, one thread each
t=$(now)
flags="--oversubscribe -x OMP_NUM_THREADS"
[ "$(id -u)" != 0 ] || flags="$flags --allow-run-as-root"
OMP_NUM_THREADS=1 MPIRUN_FLAGS=$flags scripts/mpi_fid.sh 3 --out "$WORK/mpirun" "${args[@]}" > /dev/null 2> "$WORK/mpirun.err" \
  || { cat "$WORK/mpirun.err" >&2; fail "mpirun failed"; }
timed mpirun "$t"
same_result mpirun

echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$WORK/times.txt"
[ "$own_work" = 0 ] || rm -rf "$WORK"
echo "cluster test passed"

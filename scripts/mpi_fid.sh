#!/bin/sh
# FID sampling as an MPI job: `mpirun -np NP` starts one fid-sample per rank
# (the shard from OMPI_COMM_WORLD_RANK/SIZE or PMI_RANK/SIZE, `--shard auto`;
# moedit links no MPI library), then this script merges and scores.
#
#   scripts/mpi_fid.sh 16 --out /shared/fid --num 50000 --inception pt_inception.pth \
#       --ref VIRTUAL_imagenet256_labeled.npz -- --model DiT-MoE-S-2-8E2A.pt --vae sd-vae-ft-mse
#
# The arguments after NP are scripts/fid_eval.sh's. MPIRUN names the launcher
# (default mpirun); MPIRUN_FLAGS are added to it, e.g.
# "--hostfile hosts --map-by node:PE=32 -x OMP_NUM_THREADS=32" (and, as root,
# "--allow-run-as-root"). DIR must be shared by all nodes.
set -eu
[ $# -ge 1 ] || { echo "usage: $0 NP fid_eval.sh-arguments…" >&2; exit 2; }
np=$1; shift
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck disable=SC2086  # MPIRUN_FLAGS is a list of flags
${MPIRUN:-mpirun} -np "$np" ${MPIRUN_FLAGS:-} "$here/fid_eval.sh" --sample-only "$@"
exec "$here/fid_eval.sh" --finish "$@"

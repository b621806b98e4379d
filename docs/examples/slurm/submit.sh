#!/usr/bin/env bash
# Many jobs on SLURM, each in a worktree of its own, merged home by one job.
#
# Usage: submit.sh DATASET SCRATCH N
#
#   DATASET  the top dataset of the hierarchy (its main worktree)
#   SCRATCH  a directory on a filesystem that every node sees; task I makes
#            its worktree at SCRATCH/job-I, on branch job-I of every dataset
#   N        the number of array tasks
#
# Submits a job array of N tasks (job.sh: worktree, one `datalad run`, exit)
# and a merge job (merge.sh: merge every job-* worktree into DATASET, then
# remove them) that starts once every task has succeeded. If a task fails,
# SLURM cancels the merge job, nothing is merged, and the worktrees stay in
# SCRATCH for a look. After a task was killed (its time limit, a dead
# node), run this again with the same arguments: each task goes on in its
# worktree, one whose run is committed does nothing, one killed before
# puts its own output directory back first (job.sh), and the new merge
# job merges every worktree, those of the first submission included.
# Prints the two job ids: ARRAY_JOB_ID MERGE_JOB_ID.
# Job output goes to SCRATCH/logs/ (job-ARRAY_JOB_ID_I.out, merge-ID.out).
#
# The jobs get this shell's environment (sbatch --export=ALL): `datalad`
# on PATH, the git identity. ANALYSIS, the path of the dataset in which
# each task runs, relative to DATASET, is passed on too (default: DATASET
# itself), and so are INPUTS and EXPLICIT (see job.sh). Other sbatch
# options come from SBATCH_* variables as usual, e.g. SBATCH_PARTITION.
set -euo pipefail

if [ $# -ne 3 ]; then
    echo "usage: $0 DATASET SCRATCH N" >&2
    exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
dataset=$(cd "$1" && pwd)       # the jobs start elsewhere: absolute paths
mkdir -p "$2/logs"
scratch=$(cd "$2" && pwd)
tasks=$3

# --parsable prints the job id (and ";CLUSTER" on a multi-cluster setup)
array=$(sbatch --parsable --export=ALL --job-name=worktree-job \
    --array="1-$tasks" --output="$scratch/logs/job-%A_%a.out" \
    "$here/job.sh" "$dataset" "$scratch")
array=${array%%;*}

# afterok: only when every task succeeded; --kill-on-invalid-dep: cancel
# the merge job when one fails, instead of leaving it pending for ever
merge=$(sbatch --parsable --export=ALL --job-name=worktree-merge \
    --dependency="afterok:$array" --kill-on-invalid-dep=yes \
    --output="$scratch/logs/merge-%j.out" \
    "$here/merge.sh" "$dataset" "$scratch")
merge=${merge%%;*}

echo "$array $merge"

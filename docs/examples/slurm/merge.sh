#!/usr/bin/env bash
# The merge job that submit.sh submits to run after every array task
# succeeded: merge the results of every job-* worktree in SCRATCH (also
# those an earlier submission left) into DATASET, subdatasets first, then
# remove those worktrees and their (merged) job-* branches.
#
# Usage: merge.sh DATASET SCRATCH
set -euo pipefail

dataset=$1
scratch=$2
shopt -s nullglob
worktrees=("$scratch"/job-*)
if [ ${#worktrees[@]} -eq 0 ]; then
    echo "no job worktrees in $scratch" >&2
    exit 1
fi

# Run records and annexed outputs into every dataset of DATASET, bottom-up,
# all worktrees in one merge commit per dataset. Annexed content needs no
# copying: the annex is shared.
datalad worktree-merge -d "$dataset" -r "${worktrees[@]}"

# Every worktree is merged: remove them and their merged job-* branches.
# A worktree that holds something not merged is refused and named (and
# the job fails); the others are removed.
datalad worktree-remove -d "$dataset" "${worktrees[@]}"

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

# Run records and annexed outputs into every dataset of DATASET, bottom-up.
# Annexed content needs no copying: the annex is shared.
# (all at once, one merge per dataset, replace the line with:
#  datalad worktree-merge -d "$dataset" -r "${worktrees[@]}")
for wt in "${worktrees[@]}"; do datalad worktree-merge -d "$dataset" -r "$wt"; done

# Every worktree is merged: remove them. This refuses (and the job fails)
# if any holds something that was not merged.
# (all at once, replace the line with:
#  datalad worktree-remove -d "$dataset" "${worktrees[@]}")
for wt in "${worktrees[@]}"; do datalad worktree-remove -d "$dataset" "$wt"; done

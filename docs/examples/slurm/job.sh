#!/usr/bin/env bash
# One task of the job array that submit.sh submits: a worktree of the
# dataset hierarchy of its own at SCRATCH/job-I (I: the task id), one
# `datalad run` in it, and exit. The worktree stays for merge.sh.
#
# Usage (as an array task): job.sh DATASET SCRATCH
# Environment: ANALYSIS, the dataset to run in, relative to DATASET
# (default: DATASET itself).
set -euo pipefail

dataset=$1
scratch=$2
task=${SLURM_ARRAY_TASK_ID:?job.sh runs as a task of a SLURM job array}
analysis=${ANALYSIS:-.}
worktree=$scratch/job-$task

# A worktree of every installed dataset of the hierarchy, on a new branch
# job-I in each. It shares history and annexed content with DATASET:
# inputs are readable at once, nothing is copied.
# (sparse, only the datasets on the way to ANALYSIS, replace the line with:
#  datalad worktree-add -d "$dataset" --sparse "$analysis" --branch "job-$task" "$worktree")
datalad worktree-add -d "$dataset" -r --branch "job-$task" "$worktree"

# The task's work, recorded by `datalad run` with its output, which is
# annexed where the dataset annexes files. Put your command here (or use
# `datalad containers-run`); this one writes a result that depends on I.
cd "$worktree/$analysis"
datalad run -m "task $task" --output "results/task-$task.txt" \
    "mkdir -p results && echo 'result of task $task' > results/task-$task.txt"

# Nothing else to commit: the datasets above ANALYSIS need not record its
# new state here, worktree-merge -r records it in DATASET when it merges.

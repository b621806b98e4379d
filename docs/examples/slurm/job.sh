#!/usr/bin/env bash
# One task of the job array that submit.sh submits: a worktree of the
# dataset hierarchy of its own at SCRATCH/job-I (I: the task id), one
# `datalad run` in it, and exit. The worktree stays for merge.sh.
#
# Usage (as an array task): job.sh DATASET SCRATCH
# Environment: ANALYSIS, the dataset to run in, relative to DATASET
# (default: DATASET itself); INPUTS, the directories the task reads,
# relative to DATASET, separated by spaces (default: none); EXPLICIT, if
# not empty: `datalad run --explicit` instead of a plain `datalad run`.
set -euo pipefail

dataset=$1
scratch=$2
task=${SLURM_ARRAY_TASK_ID:?job.sh runs as a task of a SLURM job array}
analysis=${ANALYSIS:-.}
worktree=$scratch/job-$task

# A sparse worktree, on a new branch job-I in each dataset it spans: only
# ANALYSIS's code, the task's output directory, the directories named in
# INPUTS (relative to DATASET; e.g. "inputs/data/sub-01") and the files on
# the way to them are checked out, and only the datasets on the way to
# them get a worktree. It shares history and annexed content with DATASET:
# inputs are readable at once, nothing is copied.
out=results/task-$task
sparse=(--sparse "$analysis/code" --sparse "$analysis/$out")
for input in ${INPUTS:-}; do sparse+=(--sparse "$input"); done
datalad worktree-add -d "$dataset" -r --branch "job-$task" "${sparse[@]}" \
    "$worktree"

# The task's work, recorded by `datalad run` with its output, which is
# annexed where the dataset annexes files. Put your command here (or use
# `datalad containers-run`); this one writes a result that depends on I.
# A plain `datalad run` (as the handbook writes it) saves the whole
# dataset: in a sparse worktree that also records the files the checkout
# left out as deleted (DataLad does not know sparse checkouts yet,
# datalad/datalad#7815), and worktree-merge keeps those files when it
# merges. With EXPLICIT=1, `datalad run --explicit` saves the outputs only.
# Either way, write only below the --sparse directories above: git refuses
# to add files it stores itself outside them.
explicit=()
if [ -n "${EXPLICIT:-}" ]; then explicit=(--explicit); fi
cd "$worktree/$analysis"

# A task that SLURM ends at its time limit (SIGTERM, then SIGKILL), or
# that a dead node or the OOM killer ends, is submitted again as it was
# (submit.sh with the same arguments; see docs/jobs.rst). worktree-add
# above then finds the task's worktree and goes on. If this task's run is
# already committed on its branch (a task that had finished, or one killed
# after its run's commit), there is nothing left to do: no second run and
# no second run record.
message="task $task"
base=$(git -C "$dataset/$analysis" rev-parse HEAD)
own=$(git log --format=%s HEAD --not "$base")   # commits of this branch only
if grep -qxF "[DATALAD RUNCMD] $message" <<<"$own"; then
    echo "task $task: its run is already committed in $worktree"
    exit 0
fi
# Otherwise an earlier attempt may have left part of its output: files
# under the task's own output directory that its command wrote, or that
# a killed save staged, and that no commit holds. They are the task's
# own (this worktree and this directory are the task's and nobody
# else's), a plain `datalad run` refuses to start while they are there,
# and a leftover that the run does not overwrite would stay uncommitted
# in the worktree: put that directory back as its branch has it. Nothing outside it is
# touched: a file there that no commit holds makes `datalad run` refuse,
# and stays for a look.
git reset -q -- "$out"
if [ -n "$(git ls-files -- "$out")" ]; then git checkout -q -- "$out"; fi
git clean -fdxq -- "$out"
datalad run ${explicit[@]+"${explicit[@]}"} -m "$message" \
    --output "$out/result.txt" \
    "mkdir -p $out && echo 'result of task $task' > $out/result.txt"

# Nothing else to commit: the datasets above ANALYSIS need not record its
# new state here, worktree-merge -r records it in DATASET when it merges.

#!/usr/bin/env bash
# A real run of the main job, end to end: a small nested dataset, a
# recursive worktree of it, in which annexed data is readable and `datalad
# run` works; meanwhile new code in the main worktree, brought into the
# worktree with worktree-sync; the result merged back with worktree-merge,
# and the worktree removed.
# Usage: bash docs/examples/demo.sh [DIRECTORY]   (default: a new temporary one)
set -eu

# commits need an identity; keep the user's if there is one
export GIT_AUTHOR_NAME="${GIT_AUTHOR_NAME:-$(git config user.name || echo 'Demo User')}"
export GIT_AUTHOR_EMAIL="${GIT_AUTHOR_EMAIL:-$(git config user.email || echo demo@example.com)}"
export GIT_COMMITTER_NAME="$GIT_AUTHOR_NAME" GIT_COMMITTER_EMAIL="$GIT_AUTHOR_EMAIL"

work="${1:-$(mktemp -d)}"
mkdir -p "$work"
cd "$work"
echo "# working in $work"

echo "# a superdataset with an annexed raw data subdataset, a plain-git code"
echo "# subdataset, and an analysis subdataset that installs the raw data"
datalad -f disabled create project
cd project
datalad -f disabled create -d . raw
echo "trial,response" > raw/trials.csv
echo "1,left" >> raw/trials.csv
datalad -f disabled save -d raw -m "first trials"
datalad -f disabled create -d . --no-annex code
printf 'import sys\nprint(len(open(sys.argv[1]).readlines()) - 1, "trials")\n' > code/count.py
datalad -f disabled create -d . analysis
# like the blog post: the input is an ephemeral clone sharing the annex of raw/
datalad -f disabled clone --reckless ephemeral -d analysis raw analysis/inputs/raw
datalad -f disabled save -r -m "raw data, code and an analysis"

echo "# one command: a worktree of every dataset, on branch 'runs'"
datalad worktree-add -r --branch runs ../runs

cd ../runs
echo "# annexed data is readable at once, nothing was copied or fetched:"
cat analysis/inputs/raw/trials.csv
echo "# the new hierarchy is clean, so 'datalad run' can work here:"
datalad worktree-list -d ../project -r
datalad run -d . -m "count trials" -o counts.txt \
    "python code/count.py analysis/inputs/raw/trials.csv > counts.txt"
echo "# the result is committed on branch 'runs', the main worktree is untouched:"
git log --oneline -1
git -C ../project log --oneline -1

echo "# meanwhile, in the main worktree: the code learns to count responses,"
echo "# committed with plain git (as 'datalad save -r' would)"
cd ../project
printf 'import sys\nrows = open(sys.argv[1]).readlines()[1:]\nprint(len(rows), "trials,", sum("left" in r for r in rows), "left")\n' > code/count.py
git -C code commit -q -m "count left responses too" count.py
git commit -q -m "count left responses too" code

echo "# worktree-sync brings the new code into the worktree; its own result"
echo "# commit stays (a merge where both sides have commits):"
cd ../runs
datalad worktree-sync -r
cat code/count.py | tail -1

echo "# worktree-merge brings the result home; the worktree has nothing left"
echo "# that main lacks, so worktree-remove takes it, branches and all:"
cd ../project
datalad worktree-merge -r ../runs
datalad worktree-remove ../runs
echo "# the result is in the main worktree, and no worktree is left:"
cat counts.txt
datalad worktree-list -r
git log --oneline -3

"""One repository: questions answered by git or its files, what a commit
records, the worktree registry, the annex, configuration, sparse checkout"""

"""worktree-add: plan every dataset, then make the worktrees"""

"""worktree-remove: plan every dataset, then execute"""

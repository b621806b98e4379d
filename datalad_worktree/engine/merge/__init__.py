"""worktree-merge: sources, the merged tree, the merge of one dataset"""

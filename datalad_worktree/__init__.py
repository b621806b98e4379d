"""DataLad extension: nested git worktrees for dataset hierarchies"""

__version__ = '0.1.0.dev0'

# defines a datalad command suite
# this symbol must be identified as a setuptools entrypoint
# to be found by datalad
command_suite = (
    "Nested git worktrees for whole dataset hierarchies",
    [
        (
            'datalad_worktree.commands.worktree_add',
            'WorktreeAdd',
            'worktree-add',
            'worktree_add',
        ),
        (
            'datalad_worktree.commands.worktree_sync',
            'WorktreeSync',
            'worktree-sync',
            'worktree_sync',
        ),
        (
            'datalad_worktree.commands.worktree_get',
            'WorktreeGet',
            'worktree-get',
            'worktree_get',
        ),
        (
            'datalad_worktree.commands.worktree_merge',
            'WorktreeMerge',
            'worktree-merge',
            'worktree_merge',
        ),
        (
            'datalad_worktree.commands.worktree_list',
            'WorktreeList',
            'worktree-list',
            'worktree_list',
        ),
        (
            'datalad_worktree.commands.worktree_remove',
            'WorktreeRemove',
            'worktree-remove',
            'worktree_remove',
        ),
        (
            'datalad_worktree.commands.worktree_repair',
            'WorktreeRepair',
            'worktree-repair',
            'worktree_repair',
        ),
        (
            'datalad_worktree.commands.worktree_move',
            'WorktreeMove',
            'worktree-move',
            'worktree_move',
        ),
    ],
)

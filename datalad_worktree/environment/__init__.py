"""What a worktree gets besides git: modification times, the setup
command, container bind paths"""

"""git's files read directly (refs, HEAD, the worktree registry, objects),
where that is certain to give git's own answer; anything else goes to git"""

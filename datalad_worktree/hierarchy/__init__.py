"""The dataset tree: as commits record it, as nested worktrees make it up,
separate clones in it, and sparse cones across its dataset boundaries"""

"""What removing a nested worktree would do, decided before anything goes

``worktree-remove`` plans every dataset of every worktree it is given
before it removes anything (``plan_removal``): which worktrees PATH names
(paths, patterns), and per dataset whether its worktree is removed, only
pruned, deleted as a separate clone holding nothing of its own, or
refused, and why. Everything here reads and nothing changes; ``execute``
carries the plan out.
"""

from __future__ import annotations

import os
import pwd
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Callable

from datalad_worktree.base.advice import command, option
from datalad_worktree.base.outcome import (
    Outcome,
    Problem,
    Refusal,
    Result,
    failure,
)
from datalad_worktree.base.paths import at_or_below, same_path
from datalad_worktree.engine.named import matching_worktrees, named
from datalad_worktree.engine.recover import recover
from datalad_worktree.engine.relink import moved_hint, moved_place
from datalad_worktree.hierarchy.clones import clone_refusal, unique_holdings
from datalad_worktree.hierarchy.nested import (
    Member,
    checked_out_in_hierarchy,
    find_members,
)
from datalad_worktree.hierarchy.unmerged import unmerged
from datalad_worktree.repo.annex import own_annex_problem
from datalad_worktree.repo.queries import (
    branch_name_problem,
    short_log,
    worktree_changes,
)
from datalad_worktree.repo.links import leads_nowhere, links_broken, written_target
from datalad_worktree.repo.store.refs import git_dirs
from datalad_worktree.repo.worktrees import (
    find_worktree,
    list_worktrees,
    registration,
)
from datalad_worktree.runners.locks import branch_locks, lock_message


TRASH = 'worktree-remove-trash'
"""Where, in a worktree's own git directory, ``execute`` moves the
worktree's directory to delete it: while it is there, the removal is one
of ours, also of a run that was killed"""


def removing(m: Member) -> bool:
    """Whether the member ``m``, whose directory is gone, is being removed
    by a run of ours (one that was killed, before its registration went):
    its directory is in ``TRASH`` of its registration"""
    admin = registration(m.main.path, m.path)
    return admin is not None and os.path.lexists(admin / TRASH)


class Removal(Enum):
    """How a member's worktree goes"""
    REMOVE = 'remove'
    """Delete its directory, then prune its registration"""
    DELETE_CLONE = 'delete the separate clone'
    """A separate clone holding nothing the main worktree lacks: delete it"""
    PRUNE = 'prune the registration of'
    """Its directory is gone already: only prune its registration"""
    REFUSE = 'refuse'
    """It must stay: nothing is removed"""


@dataclass(frozen=True)
class Plan:
    """What removing one member does, decided before anything is removed"""
    member: Member
    how: Removal
    delete_branch: bool = False
    given_up: tuple[str, ...] = ()
    """Commits given up with --force"""
    reasons: tuple[Problem, ...] = ()
    """Why it is refused: every reason at once"""

    def refusal(self) -> Outcome:
        """The refusal of this member: every reason in the message, the
        first one's code as the code"""
        return Outcome.refused(
            self.reasons[0].refusal,
            '; '.join(p.message for p in self.reasons) +
            '; nothing was removed', self.keys)

    @property
    def keys(self) -> dict:
        """The result keys of this member"""
        keys = dict(branch=self.member.branch,
                    branch_deleted=self.delete_branch)
        if self.given_up:
            keys['given_up'] = list(self.given_up)
        return keys


@dataclass(frozen=True)
class TargetPlan:
    """What removing one worktree named by PATH does"""
    target: Path
    plans: tuple[Plan, ...] = ()
    """One per dataset's worktree in it, inner ones first"""
    refused: tuple[Result, ...] = ()
    """Why it stays, if it does: then nothing of it is removed"""


@dataclass(frozen=True)
class RemovalPlan:
    """What ``worktree-remove`` does, decided before anything is removed"""
    refused: tuple[Result, ...] = ()
    """Why nothing at all is removed: the PATHs that name no linked
    worktree"""
    targets: tuple[TargetPlan, ...] = ()


def plan_removal(top: Path, given: list[str], place: Callable[[str], Path],
                 force: bool, keep_branch: bool) -> RemovalPlan:
    """The plan of removing the linked worktrees of ``top`` that the
    PATHs ``given`` name (``place(text)``: the absolute path a text names),
    every dataset of every one of them checked before anything goes (see
    ``check``)"""
    targets, problems = read_targets(top, given, place)
    if problems:
        return RemovalPlan(refused=tuple(
            Result(where, problem.outcome()) for where, problem in problems))
    listed: dict = {}
    found = []
    for target in targets:
        refused, plans = inspect(top, target, force, keep_branch, listed)
        found.append(TargetPlan(target, tuple(plans), tuple(refused)))
    return RemovalPlan(targets=tuple(found))


def target_problem(top: Path, target: Path) -> Problem | None:
    """Why ``target`` is not a linked worktree of ``top`` to remove"""
    if leads_nowhere(target):
        return Problem(Refusal.MOVED, (
            f'the .git of {target} leads to {written_target(target)}, which '
            'is gone (was the main dataset moved?); repair its links with '
            f'{command("worktree-repair", dataset=str(top))}, or with '
            f'{command("worktree-repair", str(target), dataset="MAIN")} '
            'naming the main dataset where it is now; nothing was removed'))
    worktrees = list_worktrees(top)
    if same_path(worktrees[0].path, target):
        return Problem(Refusal.MAIN_WORKTREE, (
            f'{target} is the main worktree of {top}; it is never removed'))
    if not find_worktree(worktrees[1:], target):
        hint = moved_hint(target, top)
        if hint:
            return Problem(Refusal.MOVED, f'{hint}; nothing was removed')
        linked = ', '.join(str(w.path) for w in worktrees[1:]) or 'none'
        return Problem(Refusal.NOT_A_LINKED_WORKTREE, (
            f'{target} is not a linked worktree of {top} (its linked '
            f'worktrees: {linked}); nothing was removed'))
    return None


def check(m: Member, force: bool, keep_branch: bool, top: Path) -> Plan:
    """What removing one member (of a worktree of ``top``) would do, or
    why it must not happen: every reason at once"""
    if same_path(m.main.path, m.path):
        return check_clone(m, top / m.relpath)
    # what a dead run of ours left there, before the checks
    recover(m.main.path)
    problems = []
    if m.entry.locked is not None:
        reason = f' ({m.entry.locked})' if m.entry.locked else ''
        problems.append(Problem(Refusal.LOCKED, (
            f'{m.path} is locked{reason}; unlock it with '
            f"'git -C {m.main.path} worktree unlock {m.path}' first")))
    stale = m.entry.prunable or not m.path.is_dir()
    moved = moved_place(m.main.path, m.path) if stale else None
    if stale and os.path.lexists(m.path / '.git'):
        # there, but its .git leads nowhere: its main dataset was moved
        problems.append(Problem(Refusal.MOVED, (
            f'the links of {m.path} to its repository are broken (was its '
            'main dataset moved?); repair them with '
            f'{command("worktree-repair", dataset=str(m.main.path))}')))
    elif moved:
        problems.append(Problem(Refusal.MOVED, (
            f'the directory of {m.path} is gone, but it was moved to {moved} '
            'with its main dataset: repair it with '
            f'{command("worktree-repair", str(moved), dataset=str(m.main.path))}'
            ' (then remove it there, if that is what you want)')))
    elif stale and not force and not removing(m):
        # inside a worktree that is there, only the part was moved or
        # deleted: moving it back is the repair
        repair = ('move it back' if m.root.is_dir() else
                  're-link it with '
                  f'{command("worktree-repair", "NEWPATH", dataset=str(top))}'
                  ' instead')
        problems.append(Problem(Refusal.STALE_REGISTRATION, (
            f'the directory of {m.path} is gone. If '
            f'{m.path if m.root.is_dir() else m.root} was moved rather '
            'than deleted, this registration holds its HEAD and index, '
            f'which pruning would delete for good: {repair}. If it was '
            f'deleted, give {option("force")} to prune what is left of it '
            '(which also gives up commits no other branch or tag holds; '
            f'with {option("keep_branch")} its branch stays)')))
    if not stale and links_broken(m.path, m.main.path):
        # there, but its .git leads to another repository's registration:
        # the worktree of the project this one was copied from
        problems.append(Problem(Refusal.MOVED, (
            f'{m.path} is registered as a worktree of {m.main.path}, but its '
            '.git leads elsewhere (was this project copied or moved, and '
            f'is {m.path} the other copy\'s worktree?); re-link the '
            'worktrees of this one with '
            f'{command("worktree-repair", dataset=str(top))}')))
    if not stale:
        problems += filter(None, [permission_problem(m.path)])
        problems += local_files_problems(m.path)
    delete = bool(m.branch) and not keep_branch
    if delete:
        problems += filter(None, [branch_lock_problem(m)])
    lost = []
    if m.head and m.main.head and m.head != m.main.head:
        # commits that only record subdataset states the main worktree's
        # subdatasets contain are not the user's: they go with the branch
        lost = list(unmerged(m.main.path, m.head, [m.main.head],
                             None if keep_branch else m.branch,
                             branches=True).work)
    if lost and not force:
        problems.append(Problem(Refusal.UNMERGED_COMMITS, (
            f'{m.path} has {len(lost)} commit(s) that neither the main '
            'worktree nor another branch or a tag contains '
            f'({short_log(m.main.path, lost)}); merge them first '
            f'({command("worktree-merge")}), keep the branch '
            f'({option("keep_branch")}), or give {option("force")} to give '
            'them up')))
    if problems:
        return Plan(m, Removal.REFUSE, reasons=tuple(problems))
    return Plan(m, Removal.PRUNE if stale else Removal.REMOVE, delete,
                tuple(lost))


def check_clone(m: Member, main_copy: Path) -> Plan:
    """What removing a member that is a separate clone would do: delete
    it, where it holds nothing that ``main_copy`` lacks, else refuse"""
    holdings = unique_holdings(m.path, main_copy)
    if holdings:
        return Plan(m, Removal.REFUSE, reasons=(Problem(
            Refusal.SEPARATE_CLONE, clone_refusal(
                m.path, main_copy, holdings, 'run this again')),))
    return Plan(m, Removal.DELETE_CLONE)


def branch_lock_problem(m: Member) -> Problem | None:
    """Why lock files that a killed git left keep the member's branch from
    being deleted, or None"""
    problem = lock_message(m.main.path,
                           branch_locks(git_dirs(m.main.path)[1], m.branch,
                                        packed=True))
    return Problem(Refusal.LOCK_FILES, problem) if problem else None


def permission_problem(path: Path) -> Problem | None:
    """Why this user may not delete the worktree at ``path``: the
    directory that holds it, it, or its git directory is not writable for
    them (as where another user made it outside a directory the group may
    change); or None"""
    try:
        private = [git_dirs(path)[0]]
    except OSError:
        private = []
    for place in (path.parent, path, *private):
        if not os.access(place, os.W_OK | os.X_OK):
            try:
                owner = pwd.getpwuid(place.stat().st_uid).pw_name
            except (KeyError, OSError):
                owner = 'another user'
            return Problem(Refusal.NO_PERMISSION, (
                f'{path} cannot be removed by you: {place} belongs to '
                f'{owner} and you may not change it; ask {owner} to remove '
                'the worktree, or to make it writable for the group'))
    return None


def local_files_problems(path: Path) -> list[Problem]:
    """Why files in the worktree at ``path`` would be lost by removing it"""
    changed, untracked = worktree_changes(path)
    problems = []
    if changed:
        problems.append(Problem(Refusal.UNCOMMITTED_CHANGES, (
            f'uncommitted changes in {path}: {", ".join(changed)}; commit '
            'or discard them by hand first')))
    if untracked:
        problems.append(Problem(Refusal.UNTRACKED_FILES, (
            f'untracked files in {path}: {", ".join(untracked)}; save, '
            'move or delete them first (ignored files do not block)')))
    own = own_annex_problem(path)
    if own:
        problems.append(Problem(Refusal.OWN_ANNEX, own))
    return problems


def read_targets(top: Path, given: list[str], place: Callable[[str], Path]
                 ) -> tuple[list[Path], list[tuple[Path, Problem]]]:
    """The linked worktrees of ``top`` that ``given`` names, each once
    (``place(text)``: the absolute path a text names; an existing path
    wins over a pattern, which is matched with ``fnmatch`` against the
    paths of ``top``'s linked worktrees, see ``named``), and each given
    path that names none, with why"""
    targets: dict[str, Path] = {}
    problems = []
    for text in given:
        arg = named(text, place)
        where = arg.path
        if not arg.exists and not arg.pattern and \
                not find_worktree(list_worktrees(top)[1:], where):
            problem, found = branch_targets(top, text, where)
        elif not arg.pattern:
            problem = target_problem(top, where)
            found = [where]
        else:
            found = matching_worktrees(top, arg)
            problem = None if found else Problem(Refusal.NO_MATCH, (
                f'the pattern {text!r} matches no linked worktree of {top} '
                f'(matched as {where}); nothing was removed'))
        if problem:
            problems.append((where, problem))
        for target in found:
            targets.setdefault(os.path.normpath(target), target)
    return list(targets.values()), problems


def branch_targets(top: Path, branch: str, where: Path
                   ) -> tuple[Problem | None, list[Path]]:
    """The linked worktrees that the branch name ``branch`` names (given
    where no path ``where`` exists, nor a registration of one): where it
    is checked out in the datasets of ``top``'s hierarchy, the outermost
    of them (the ones inside those go with them, as for a path); or why
    it names none. A name that no branch can have is a path that names
    no worktree; one that looks like an option never reaches git"""
    if branch.startswith('-'):
        return Problem(Refusal.BAD_BRANCH, (
            f'refusing {branch!r}: it looks like an option, and no worktree '
            f'exists at {where}; nothing was removed')), []
    if branch_name_problem(top, branch):
        # no branch can be named so: a path, and not a worktree's
        return target_problem(top, where), []
    linked, main = checked_out_in_hierarchy(top, branch)
    if not linked:
        mains = (f' (it is checked out only in the main worktree '
                 f'{", ".join(map(str, main))}, which is never removed)'
                 if main else '')
        return Problem(Refusal.NO_MATCH, (
            f'{branch!r} is neither a linked worktree of {top} (no path '
            f'{where}) nor a branch checked out in a linked worktree of '
            f'its hierarchy{mains}; nothing was removed')), []
    outermost: list[Path] = []
    for path in sorted(linked, key=lambda p: len(Path(
            os.path.normpath(p)).parts)):
        if not any(at_or_below(os.path.normpath(path),
                               os.path.normpath(o)) for o in outermost):
            outermost.append(path)
    return None, outermost


def inspect(top: Path, target: Path, force: bool, keep_branch: bool,
            listed: dict) -> tuple[list[Result], list[Plan]]:
    """The plans of removing the worktree ``target`` of ``top``, or the
    results that refuse it (then nothing of it is removed); ``listed``:
    see ``nested.find_members``"""
    try:
        members, linked = find_members(top, target, listed)
        plans = [check(m, force, keep_branch, top) for m in members]
    except Exception as e:
        outcome = failure(target, e, 'cannot inspect the worktrees below '
                                     f'{target}')
        return [Result(target, outcome.noted('nothing was removed'))], []
    refused = [Result(Path(p), Outcome.refused(
        why.refusal, f'{why.message}; nothing was removed'))
        for p, why in linked.items()]
    refused += [Result(p.member.path, p.refusal())
                for p in plans if p.how is Removal.REFUSE]
    return refused, plans

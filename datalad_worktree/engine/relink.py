"""Nested worktrees that were moved: found, re-linked (``worktree-repair``)
and moved (``worktree-move``)

A nested worktree is a linked worktree of every dataset of a hierarchy;
each knows its repository, and is known to it, by path (see
``repo.links``). Moving the worktree's directory, or the main dataset,
with ``mv`` breaks those links: git-annex's ``.git`` symbolic links lead
nowhere, the registrations name the old place, a ``.git`` file names the
old place of the main dataset. git repairs a ``.git`` file and a
registration (``git worktree repair``), not git-annex's links ('.git is
not a file'); those are rewritten here, checked first, one file at a time.

What is written: a worktree's ``.git``, the ``gitdir`` and ``annex`` of its
registration (below ``<common>/worktrees``), its own configuration
(``config.worktree``), and in a moved main dataset the ``.git`` of a
subdataset whose git directory is absorbed into its superdataset. A
``.git`` is only rewritten where it already names the registration (by
its name) and leads nowhere, and a registration only where the worktree's
``.git`` leads to it or names it: a copy of a worktree, or a directory of
something else, is refused.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path, PurePath
from typing import Iterator

from datalad_next.runners import CommandError

from datalad_worktree.base.advice import command
from datalad_worktree.base.outcome import (
    Outcome,
    Problem,
    Refusal,
    Result,
    error_line,
    failure,
)
from datalad_worktree.base.paths import at_or_below, same_path
from datalad_worktree.hierarchy.walk import TOP, Node, subdataset_pointers, walk_hierarchy
from datalad_worktree.repo.links import (
    is_registration,
    leads_to,
    link_dotgit,
    make_gitfile_relative,
    move_config_paths,
    old_target,
    registered_at,
    relative_by_git,
    relink_annex,
    write_gitfile,
    write_registration,
    written_target,
)
from datalad_worktree.repo.queries import head_commit, toplevel
from datalad_worktree.repo.store.refs import git_dirs
from datalad_worktree.repo.worktrees import absorbed_checkout, registration
from datalad_worktree.runners import git, journal

REPAIR = 'worktree-repair'


@dataclass(frozen=True)
class Found:
    """A nested worktree, where it is registered and where it is now"""
    main: Path
    """The main worktree of its top dataset"""
    admin: Path
    """The registration of its top dataset's worktree"""
    old: Path
    """Where that registration records it"""
    new: Path
    """Where it is now (``old`` where it was not moved)"""


def real(path: Path) -> str:
    return os.path.realpath(path)


def is_main_worktree(path: Path) -> bool:
    """Whether ``path`` is a repository's main worktree (its ``.git`` a
    directory of its own)"""
    dotgit = path / '.git'
    return dotgit.is_dir() and not dotgit.is_symlink()


def main_of(common: Path) -> Path | None:
    """The main worktree of the repository with the common git directory
    ``common``: the directory holding it, or where a superdataset checks
    out a git directory absorbed into its ``.git/modules``"""
    if common.name == '.git' and is_main_worktree(common.parent):
        return common.parent
    return absorbed_checkout(common)


def in_use(admin: Path) -> bool:
    """Whether the registration ``admin`` belongs to a worktree that is
    where it records it (whose ``.git`` leads back to it)"""
    old = registered_at(admin)
    return bool(old) and str(leads_to(old) or '') == real(admin)


def names_registration(place: Path, admin: Path) -> bool:
    """Whether the ``.git`` at ``place`` leads to ``admin``, or leads
    nowhere but names a git directory of ``admin``'s name below a
    ``worktrees`` directory (as it was written before a move)"""
    led = leads_to(place)
    if led is not None:
        return str(led) == real(admin)
    named = written_target(place)
    if named is None:
        return False
    parts = PurePath(named).parts
    return len(parts) >= 2 and parts[-2:] == ('worktrees', admin.name)


def locate(path: Path, main: Path | None) -> Found | Problem:
    """The nested worktree at ``path``, moved or not, with its
    registration; where it leads nowhere, the registration is looked for
    in ``main`` (the main dataset, where given) and where a relative link
    leads from each directory above ``path``; or why it is not a worktree
    of ours that can be re-linked"""
    dotgit = path / '.git'
    if not path.is_dir() or not os.path.lexists(dotgit):
        return Problem(Refusal.NOT_MOVED, (
            f'{path} is no worktree: ' + ('it has no .git' if path.is_dir()
                                          else 'there is no such directory')
            + '; nothing was changed'))
    if is_main_worktree(path):
        return Problem(Refusal.NOT_MOVED, (
            f'{path} is a main worktree, not a linked one; nothing was '
            'changed'))
    admin = leads_to(path)
    if admin is None:
        admin = _search(path, main)
        if admin is None:
            return Problem(Refusal.MOVED, unfound_message(path, main))
    elif not is_registration(admin):
        return Problem(Refusal.NOT_MOVED, (
            f'{path} is not a linked worktree (its .git leads to {admin}); '
            'nothing was changed'))
    old = registered_at(admin)
    if not old:
        return Problem(Refusal.NOT_MOVED, (
            f'the registration {admin} of {path} records no worktree; '
            f"let git repair it: git -C {path} worktree repair"))
    if not same_path(old, path) and in_use(admin):
        return Problem(Refusal.NOT_MOVED, (
            f'{path} is a copy of the worktree at {old}, which is still '
            'there and linked; a copy cannot be linked to the same '
            'registration: make a worktree of its own with datalad '
            'worktree-add; nothing was changed'))
    top = main_of(admin.parent.parent)
    if top is None:
        return Problem(Refusal.NOT_MOVED, (
            f'the main worktree of {path} (repository {admin.parent.parent}) '
            'was not found; nothing was changed'))
    if main is not None and not same_path(top, main):
        return Problem(Refusal.NOT_A_WORKTREE, (
            f'{path} is a worktree of {top}, not of {main}; nothing was '
            'changed'))
    return Found(main=top, admin=admin, old=old, new=path)


def topmost(found: Found) -> Found:
    """The nested worktree that ``found`` is part of, moved with it: the
    outermost directory above it that is a worktree moved from the same
    place above ``found.old``"""
    while True:
        up = next((p for p in found.new.parents
                   if os.path.lexists(p / '.git')), None)
        if up is None:
            return found
        outer = locate(up, None)
        rel = found.new.relative_to(up)
        if isinstance(outer, Problem) or \
                not same_path(outer.old / rel, found.old):
            return found
        found = outer


def _search(path: Path, main: Path | None) -> Path | None:
    """The registration that the broken ``.git`` of ``path`` names: in
    the repository of ``main``, or where its relative target leads from
    a directory above ``path``; one in use elsewhere is none"""
    named = written_target(path)
    if named is None:
        return None
    parts = PurePath(named).parts
    if len(parts) < 2 or parts[-2] != 'worktrees':
        return None
    candidates = []
    if main is not None and is_main_worktree(main):
        candidates.append(git_dirs(main)[1] / 'worktrees' / parts[-1])
    if not os.path.isabs(named):
        rest = [p for p in parts if p != '..']
        candidates += [up.joinpath(*rest) for up in path.parents]
    for candidate in candidates:
        if is_registration(candidate) and not in_use(candidate):
            return Path(os.path.normpath(candidate))
    return None


def unfound_message(path: Path, main: Path | None) -> str:
    """What to do where the registration of ``path`` was not found"""
    where = f' in {main}' if main else ''
    return (
        f'the .git of {path} leads to {written_target(path)}, which is gone, '
        f'and its registration was not found{where}: the worktree or its '
        'main dataset was moved; repair it from the main dataset with: '
        f"{command(REPAIR, str(path), dataset='MAIN')} (MAIN: where the "
        'main dataset is now); nothing was changed')


def find_place(admin: Path, main: Path) -> Path | None:
    """Where the worktree that ``admin`` (a registration of ``main``'s
    repository) records is now: there, where its ``.git`` is still there;
    else where main and it were moved together (the same path below a
    directory above ``main``), or beside where it was (renamed in place),
    where a ``.git`` names ``admin``"""
    old = registered_at(admin)
    if not old:
        return None
    if os.path.lexists(old / '.git') and names_registration(old, admin):
        return old
    # renamed in place: its relative links still lead home
    place = _leading_home(old.parent).get(real(admin))
    if place is not None:
        return place
    for i in range(1, len(old.parts)):
        for up in main.parents:
            place = up.joinpath(*old.parts[i:])
            if place != old and os.path.lexists(place / '.git') and \
                    names_registration(place, admin):
                return place
    return None


def _leading_home(parent: Path) -> dict[str, Path]:
    """The directories in ``parent`` whose ``.git`` leads to a git
    directory, by its real path; read once while ``parent`` stays the
    same (many registrations of one directory of jobs ask it)"""
    try:
        st = os.stat(parent)
    except OSError:
        return {}
    return _leading_home_at(str(parent), st.st_mtime_ns, st.st_ino)


@lru_cache(maxsize=64)
def _leading_home_at(parent: str, mtime_ns: int, inode: int
                     ) -> dict[str, Path]:
    found = {}
    try:
        entries = sorted(Path(parent).iterdir())
    except OSError:
        return found
    for place in entries:
        if place.is_dir() and not place.is_symlink() and \
                os.path.lexists(place / '.git'):
            led = leads_to(place)
            if led is not None:
                found.setdefault(str(led), place)
    return found


def relink_hierarchy(found: Found, action: str | None = None
                     ) -> Iterator[Result]:
    """Re-link the worktree of every dataset of the nested worktree
    ``found`` at its new place (its datasets found by the hierarchy of
    the main dataset and the registrations there)"""
    for node in walk_hierarchy(found.main, head_commit(found.main), None):
        if not node.installed or node.problem:
            continue
        new, old = node.at(found.new), node.at(found.old)
        admin = found.admin if node.relpath == TOP else \
            registration(node.path, old)
        if admin is None and node.relpath != TOP:
            admin = _registration_at(node.path, new)
        if admin is None:
            continue
        if not os.path.lexists(new / '.git'):
            yield Result(new, Outcome.refused(Refusal.STALE_REGISTRATION, (
                f'{node.path} registers a worktree at {old}, which is not at '
                f'{new}; repair it where it is with '
                f'{command(REPAIR, "NEWPATH", dataset=str(found.main))}, or '
                'remove its registration with datalad worktree-remove'),
                dict(moved_from=str(old))), action)
            continue
        try:
            outcome = relink(node.path, admin, old, new)
        except (CommandError, OSError) as e:
            outcome = failure(new, e, f're-linking {new} failed')
        yield Result(new, outcome, action)


def _registration_at(repo: Path, place: Path) -> Path | None:
    """The registration of ``repo`` that records ``place``, or that the
    ``.git`` at ``place`` names"""
    found = registration(repo, place)
    if found:
        return found
    try:
        base = git_dirs(repo)[1] / 'worktrees'
    except OSError:
        return None
    named = written_target(place)
    if named is None or not os.path.lexists(place / '.git'):
        return None
    candidate = base / PurePath(named).name
    return candidate if is_registration(candidate) and \
        names_registration(place, candidate) and \
        not in_use(candidate) else None


def relink(repo: Path, admin: Path, old: Path, new: Path) -> Outcome:
    """Link the worktree at ``new`` (registered by ``admin``, in the
    repository of ``repo``, at ``old``) and its registration to each
    other, its annex link and own configuration to where things are now"""
    dotgit = new / '.git'
    if is_main_worktree(new):
        return Outcome.refused(Refusal.NOT_MOVED, (
            f'{new} has a repository of its own, not a worktree of {repo}; '
            'nothing was changed'))
    if not names_registration(new, admin):
        return Outcome.refused(Refusal.NOT_MOVED, (
            f'the .git of {new} does not lead to {admin}, the registration '
            f'of its worktree of {repo}; nothing was changed'))
    before = old_target(new, old)
    fixed = []
    registered = registered_at(admin)
    linked = leads_to(new) is not None
    at_place = bool(registered) and same_path(registered, new)
    if not (linked and at_place):
        if relative_by_git(repo) or not dotgit.is_symlink():
            # a .git file, or links that git writes itself: git repairs
            try:
                git.run(repo, ['worktree', 'repair', '--', str(new)])
            except CommandError as e:
                return Outcome('error', (
                    f'git worktree repair failed for {new}: {error_line(e)}'))
            if not relative_by_git(repo):
                make_gitfile_relative(new, repo)
        else:
            if not linked:
                link_dotgit(new, admin)
            if not at_place:
                write_registration(admin, new)
        fixed.append('.git and registration' if not linked and not at_place
                     else '.git' if not linked else 'registration')
    if relink_annex(admin):
        fixed.append('annex link')
    moved = {old: new}
    if before is not None and before.parent.name == 'worktrees':
        moved[before.parent.parent] = admin.parent.parent
    if (admin / 'config.worktree').is_file() and move_config_paths(new, moved):
        fixed.append('paths in its own configuration')
    if str(leads_to(new) or '') != real(admin) or \
            not same_path(registered_at(admin) or Path('/'), new):
        return Outcome('error', (
            f'{new} and its registration {admin} are still not linked to '
            "each other; see 'git worktree repair'"))
    if not fixed:
        return Outcome('notneeded', 'linked already',
                       dict(moved_from=None))
    return Outcome('ok', (
        f'moved from {old}: re-linked its {", ".join(fixed)}'
        if old != new else f're-linked its {", ".join(fixed)}'),
        dict(moved_from=str(old) if old != new else None))


def relink_absorbed(parent: Node) -> Iterator[Result]:
    """Re-link each subdataset of ``parent`` (a main worktree) whose
    ``.git`` names its git directory, absorbed into ``parent``'s, by a path
    that leads nowhere (an absolute one, before the main dataset moved)"""
    try:
        pointers = subdataset_pointers(parent.path, parent.commit)
        gitdir, common = git_dirs(parent.path)
    except (CommandError, OSError):
        return
    for path, commit in pointers:
        place = parent.path / path if commit else None
        if place is None or not os.path.lexists(place / '.git') or \
                is_main_worktree(place) or leads_to(place) is not None:
            continue
        named = written_target(place)
        if named is None or 'modules' not in PurePath(named).parts:
            continue
        tail = ('modules', *PurePath(path).parts)
        for candidate in dict.fromkeys((gitdir.joinpath(*tail),
                                        common.joinpath(*tail))):
            if PurePath(named).parts[-len(tail):] != tail or \
                    not (candidate / 'HEAD').is_file() or \
                    not (candidate / 'objects').is_dir():
                continue
            if (place / '.git').is_symlink():
                link_dotgit(place, candidate)
            else:
                write_gitfile(place, candidate)
            yield Result(place, Outcome('ok', (
                f're-linked its .git to {candidate}, its git directory '
                f'absorbed into {parent.path} (it named {named})')))
            break


def repair_main(main: Path, action: str | None = None) -> Iterator[Result]:
    """Repair the links of a main dataset that was moved: the ``.git`` of
    its subdatasets whose git directories it absorbed, then every linked
    worktree of every dataset (nested ones as a whole)"""
    done = False
    for node in walk_hierarchy(main, head_commit(main), None):
        if node.installed and not node.problem:
            for result in relink_absorbed(node):
                done = True
                yield Result(result.path, result.outcome, action)
    base = git_dirs(main)[1] / 'worktrees'
    admins = sorted(base.iterdir()) if base.is_dir() else []
    covered = []
    for admin in admins:
        if not is_registration(admin):
            continue
        old = registered_at(admin)
        new = find_place(admin, main)
        if new is None:
            yield Result(old or admin, Outcome.refused(
                Refusal.STALE_REGISTRATION, (
                    f'{main} registers a worktree at {old}, which is gone and '
                    'was not found moved together with the main dataset; '
                    'if you moved it, repair it with '
                    f'{command(REPAIR, "NEWPATH", dataset=str(main))}; if '
                    'you deleted it, datalad worktree-remove '
                    f'{old} forgets it')), action)
            continue
        covered += [old, new]
        done = True
        yield from relink_hierarchy(Found(main, admin, old, new), action)
    for node in walk_hierarchy(main, head_commit(main), None):
        if node.relpath == TOP or not node.installed or node.problem:
            continue
        yield from _relink_single(node, covered, action)
    if not done:
        yield Result(main, Outcome('notneeded', (
            'no linked worktrees to re-link')), action)


def _relink_single(node: Node, covered: list[Path], action: str | None
                   ) -> Iterator[Result]:
    """Re-link the worktrees of one subdataset that are not part of a
    nested worktree of the top dataset, where they are still registered"""
    base = git_dirs(node.path)[1] / 'worktrees'
    for admin in sorted(base.iterdir()) if base.is_dir() else []:
        old = registered_at(admin)
        if not is_registration(admin) or not old or any(
                at_or_below(str(old), str(c)) for c in covered) or \
                not os.path.lexists(old / '.git'):
            continue
        try:
            outcome = relink(node.path, admin, old, old)
        except (CommandError, OSError) as e:
            outcome = failure(old, e, f're-linking {old} failed')
        yield Result(old, outcome, action)


def repair(path: Path, main: Path | None) -> Iterator[Result]:
    """``worktree-repair``: re-link the nested worktree at ``path`` (with
    the main dataset ``main`` where given), or, where ``path`` is a main
    dataset, every linked worktree of its hierarchy"""
    if is_main_worktree(path) and (main is None or same_path(path, main)):
        yield from repair_main(path)
        return
    found = locate(path, main)
    if isinstance(found, Problem):
        yield Result(path, found.outcome())
        return
    yield from relink_hierarchy(found if main else topmost(found))


def moved_problem(path: Path) -> Problem | None:
    """Why the worktree at ``path`` (or containing it) cannot be worked on
    because it, or its main dataset, was moved by hand, with the command
    that repairs it; None where it was not moved"""
    root = next((p for p in (path, *path.parents)
                 if os.path.lexists(p / '.git')), None)
    if root is None or is_main_worktree(root):
        return None
    admin = leads_to(root)
    if admin is not None:
        old = registered_at(admin) if is_registration(admin) else None
        if not old or same_path(old, root) or in_use(admin) or \
                not os.path.isabs(written_target(root) or '/'):
            # linked by a relative path that leads to its registration:
            # moved together with its main dataset, and every relative
            # link of its datasets with it; only the registrations name
            # the old places (worktree-list in main says so)
            return None
    found = locate(root, None)
    if isinstance(found, Problem):
        return found if found.refusal is Refusal.MOVED else None
    found = topmost(found)
    root = found.new
    return Problem(Refusal.MOVED, (
        f'{root} was moved from {found.old} (a worktree of {found.main}), '
        f'and its links to its repositories are broken; repair them with: '
        f'{command(REPAIR, str(root))}, then run this command again'))


def moved_hint(path: Path, main: Path) -> str | None:
    """Where ``path``, which ``main`` does not register as its worktree,
    is one that was moved: what to run, else None"""
    if not os.path.lexists(path / '.git') or is_main_worktree(path):
        return None
    found = locate(path, main)
    if isinstance(found, Problem) or same_path(found.old, found.new):
        return None
    return (f'{path} is a worktree of {main} moved from {found.old}; repair '
            f'its links first with {command(REPAIR, str(path), dataset=str(main))}')


def moved_place(main: Path, old: Path) -> Path | None:
    """Where the worktree of ``main`` registered at ``old``, whose
    directory is gone, was moved together with ``main``, or None"""
    admin = registration(main, old)
    if admin is None or not is_registration(admin):
        return None
    place = find_place(admin, main)
    return place if place is not None and place != old else None


def registrations(found: Found) -> list[tuple[Node, Path]]:
    """Each dataset of the nested worktree ``found`` (not moved yet) with
    its worktree's registration"""
    pairs = []
    for node in walk_hierarchy(found.main, head_commit(found.main), None):
        if not node.installed or node.problem:
            continue
        admin = found.admin if node.relpath == TOP else \
            registration(node.path, node.at(found.old))
        if admin is not None:
            pairs.append((node, admin))
    return pairs


def move_problem(found: Found, new: Path) -> Problem | None:
    """Why the nested worktree ``found`` cannot be moved to ``new``, or
    None; nothing is read but what is needed to tell"""
    old = found.new
    if at_or_below(os.path.normpath(new), os.path.normpath(old)) or \
            at_or_below(real(new), real(old)):
        return Problem(Refusal.BAD_PATH, (
            f'cannot move {old} into itself ({new})'))
    if any(part.startswith('-') for part in new.parts):
        return Problem(Refusal.BAD_PATH, (
            f'refusing {new}: a part of it looks like an option'))
    if '.git' in new.parts:
        return Problem(Refusal.BAD_PATH, (
            f'refusing to move a worktree into a .git directory: {new}'))
    if os.path.lexists(new) and (not new.is_dir() or new.is_symlink() or
                                 any(new.iterdir())):
        return Problem(Refusal.EXISTS, (
            f'{new} exists and is not an empty directory; choose another '
            'place'))
    ancestor = new.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        return Problem(Refusal.BAD_PATH, f'{ancestor} is not a directory')
    inside = toplevel(ancestor)
    if inside:
        return Problem(Refusal.BAD_PATH, (
            f'{new} is inside the git working tree {inside}; choose a place '
            'outside of any dataset'))
    for node, admin in registrations(found):
        if (admin / 'locked').exists():
            reason = (admin / 'locked').read_text().strip()
            return Problem(Refusal.LOCKED, (
                f'the worktree {node.at(old)} is locked'
                + (f' ({reason})' if reason else '') +
                f"; unlock it with 'git -C {node.path} worktree unlock "
                f"{node.at(old)}' first, as git worktree move would ask"))
        common = admin.parent.parent
        run = journal.current()
        live = [r for r in journal.records(common)
                if not (run and run.is_mine(r)) and journal.alive(r)]
        if live:
            return Problem(Refusal.LOCKED, (
                f'{live[0].name} is working in {node.path}; move the '
                'worktree when it has ended'))
    return None


def move(old: Path, new: Path, main: Path | None) -> Iterator[Result]:
    """``worktree-move``: move the nested worktree at ``old`` to ``new``
    (one rename of its directory), then re-link every dataset there; where
    ``old`` is gone and ``new`` is the worktree moved there (by an earlier
    run that was interrupted, or by hand), only re-link"""
    if not os.path.lexists(old) and os.path.isdir(new) and \
            os.path.lexists(new / '.git'):
        found = locate(new, main)
        if isinstance(found, Problem):
            yield Result(new, found.outcome())
            return
        yield from relink_hierarchy(found)
        return
    found = locate(old, main)
    if isinstance(found, Problem):
        yield Result(old, found.outcome())
        return
    if not same_path(found.old, found.new):
        yield Result(old, Outcome.refused(Refusal.MOVED, (
            f'{old} was moved by hand already (from {found.old}); repair it '
            f'first with {command(REPAIR, str(old))}; nothing was moved')))
        return
    problem = move_problem(found, new)
    commons = {admin.parent.parent for _, admin in registrations(found)}
    if problem:
        yield Result(old, problem.outcome(dict(moved_to=str(new))))
        return
    for common in commons:
        # other runs see that this one works there (see move_problem)
        journal.enter(common)
    new.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.rename(old, new)
    except OSError as e:
        why = ('it is on another file system than the place it would go; '
               'git cannot move a worktree there either. Copy it (cp -a), '
               f'then run {command(REPAIR, str(new), dataset=str(found.main))}'
               if e.errno == errno.EXDEV else str(e))
        yield Result(old, Outcome('error', (
            f'cannot move {old} to {new}: {why}; nothing was moved')))
        return
    yield from relink_hierarchy(Found(found.main, found.admin, found.old,
                                      new))

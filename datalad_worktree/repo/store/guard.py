"""Whether git's files of a repository may be read directly: the one
decision for every reader of ``store`` (refs, objects, the worktree
registry, configuration files)

``refs`` and ``objects`` read the files of git's default layout, as git
2.39 writes them. A newer git, or a setting, can make those files say
something else than git would, or be the wrong files: then git is asked
instead. Files are read only where it is certain that they are what git
itself reads:

- the environment names no other repository, object store, namespace or
  replacement refs (``REDIRECTING``);
- the repository's format (``core.repositoryformatversion`` and
  ``extensions.*`` of the common directory's ``config``, which is where git
  reads them, without includes) is version 0 or 1 with no extension but
  those proven harmless for what is read (``HARMLESS``); a config file
  this module cannot read with certainty (a value continued on the next
  line, a quoted version) counts as an unknown format;
- there is no ``reftable`` directory (the reftable ref storage, also a
  worktree's own, whose ``HEAD`` file is a dummy);
- for objects: no replacement ref (``refs/replace/*``, loose or packed),
  since git reads the replacement wherever an object is named.

The extensions, decided one by one:

- harmless for everything read here: ``noop`` and ``noop-v1`` (no effect,
  the latter under version 1 only), ``preciousObjects`` (only forbids
  deleting objects), ``partialClone`` (objects may be missing: a reader
  that does not find one hands the question to git, which fetches it),
  ``objectFormat = sha1`` (the default, said aloud), and ``worktreeConfig``
  (a worktree's ``config.worktree`` is read as well: it changes neither
  refs nor objects, and ``config.may_be_configured`` already looks into
  ``config.worktree`` and only asks whether a key is mentioned anywhere,
  which the order of merging does not change);
- to git: ``objectFormat`` other than ``sha1`` (SHA-256 objects are not
  read here), ``compatObjectFormat`` (names of another hash stand for
  objects), ``refStorage`` (reftable, or refs at another place),
  ``relativeWorktrees`` (worktrees linked by relative paths; git 2.39
  refuses such a repository, and the answer must be git's),
  ``submodulePathConfig`` (submodules' git directories where the
  configuration says), and every extension not named here.

The decision about a config file is remembered for as long as the file is
the same (inode, size, times), so it costs a ``stat`` per question.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path

REFS = 'refs'
"""What is read: HEAD and branches"""

OBJECTS = 'objects'
"""What is read: commits, trees and blobs of the object store"""

WORKTREES = 'worktrees'
"""What is read: the registry of linked worktrees (``worktrees/<id>``)"""

CONFIG = 'config'
"""What is read: configuration files, for whether a key is mentioned"""


REDIRECTING = ('GIT_DIR', 'GIT_COMMON_DIR', 'GIT_WORK_TREE',
               'GIT_OBJECT_DIRECTORY', 'GIT_ALTERNATE_OBJECT_DIRECTORIES',
               'GIT_QUARANTINE_PATH', 'GIT_NAMESPACE', 'GIT_REPLACE_REF_BASE',
               'GIT_NO_REPLACE_OBJECTS', 'GIT_REF_URI')
"""Environment variables with which git reads another repository, object
store, ref storage or namespace than the files of the working tree's
``.git``, or reads replacements differently"""


HARMLESS = {
    0: {'noop', 'preciousobjects', 'partialclone', 'worktreeconfig'},
    1: {'noop', 'noop-v1', 'preciousobjects', 'partialclone',
        'worktreeconfig', 'objectformat'},
}
"""The extensions (lower case) with which the files are still read, by
repository format version; ``objectformat`` only as ``sha1``. git honors
only these under version 0 (and refuses the v1-only ones there)"""


WHAT = (REFS, OBJECTS, WORKTREES, CONFIG)


def unreadable(common: Path, gitdir: Path | None = None,
               what: str = REFS) -> str | None:
    """Why git has to be asked about ``what`` (``REFS``, ``OBJECTS``,
    ``WORKTREES`` or ``CONFIG``) of the repository with the common git
    directory ``common`` (and, where a worktree's own files are read, its
    git directory ``gitdir``) instead of reading its files; None where
    they may be read directly"""
    if what not in WHAT:
        raise ValueError(f'unknown kind of files: {what!r}')
    found = next((v for v in REDIRECTING if v in os.environ), None)
    if found:
        return f'{found} is set'
    problem = format_problem(common)
    if problem:
        return problem
    for where in {common, gitdir or common}:
        if os.path.lexists(where / 'reftable'):
            return f'{where} keeps refs in a reftable'
    if what == OBJECTS and has_replacements(common):
        return f'{common} has replacement refs (refs/replace)'
    return None


def readable(common: Path, gitdir: Path | None = None,
             what: str = REFS) -> bool:
    """Whether the files of ``what`` may be read directly (see
    ``unreadable``)"""
    return unreadable(common, gitdir, what) is None


def format_problem(common: Path) -> str | None:
    """Why the repository format that ``common/config`` declares is not
    one whose files are read here, or None"""
    config = common / 'config'
    try:
        st = os.stat(config)
    except FileNotFoundError:
        return None  # git takes it for version 0 without extensions
    except OSError as e:
        return f'{config} cannot be read: {e}'
    return _format_problem(str(config), st.st_ino, st.st_size,
                           st.st_mtime_ns, st.st_ctime_ns)


@lru_cache(maxsize=4096)
def _format_problem(config: str, inode: int, size: int, mtime_ns: int,
                    ctime_ns: int) -> str | None:
    try:
        with open(config, 'rb') as f:
            text = os.fsdecode(f.read())
    except OSError as e:
        return f'{config} cannot be read: {e}'
    try:
        version, extensions = repository_format(text)
    except ValueError as e:
        return f'{config}: {e}'
    if version not in HARMLESS:
        return f'{config}: repository format version {version}'
    for name, value in extensions.items():
        if name not in HARMLESS[version] or (
                name == 'objectformat' and value != 'sha1'):
            return f'{config}: extensions.{name}'
    return None


HEADER = re.compile(r'\[([A-Za-z0-9.-]+)(?:\s+("(?:[^"\\]|\\.)*"))?\]')
"""A section header, with or without a subsection (quoted, or after a dot
in the old syntax)"""

KEY = re.compile(r'([A-Za-z][A-Za-z0-9-]*)\s*(?:=(.*))?')
"""A key, with or without a value"""


def repository_format(text: str) -> tuple[int, dict[str, str]]:
    """The repository format version and the extensions (lower-case name:
    value) that a git config file's ``text`` declares, as git reads them:
    the last value counts, no version is version 0, a key without a value
    is true. Raises ``ValueError`` where this cannot be told with
    certainty: a line git would not take or that goes on at the next, a
    quoted or escaped value of these keys, a version that is no plain
    number."""
    version = '0'
    extensions: dict[str, str] = {}
    section = None
    for number, line in enumerate(text.lstrip('\ufeff').splitlines(), 1):
        line = _uncommented(line, number).strip()
        if line.startswith('['):
            header = HEADER.match(line)
            if header is None:
                raise ValueError(f'line {number} is no section header')
            name = header.group(1).lower()
            # git names the keys of [extensions "x"] or [extensions.x]
            # extensions.x.KEY: unknown extensions
            sub = header.group(2) is not None or '.' in name
            section = name.split('.', 1)[0] + ('.' if sub else '')
            line = line[header.end():].strip()
        if not line:
            continue
        key = KEY.fullmatch(line)
        if key is None or section is None:
            raise ValueError(f'line {number} is no configuration entry')
        name, value = key.group(1).lower(), key.group(2)
        if section == 'core' and name == 'repositoryformatversion':
            version = _plain(value, number)
        elif section == 'extensions':
            extensions[name] = _plain(value, number)
        elif section == 'extensions.':
            extensions[f'(subsection).{name}'] = ''
    if not version.isdigit():
        raise ValueError(f'repository format version {version!r}')
    return int(version), extensions


def _plain(value: str | None, number: int) -> str:
    """A value of the repository's format as git reads it: a key without
    one is true; raises ``ValueError`` for a quoted or escaped one"""
    if value is None:
        return 'true'
    if '"' in value or '\\' in value:
        raise ValueError(f'line {number} has a quoted value')
    return value.strip()


def _uncommented(line: str, number: int) -> str:
    """``line`` without its comment (``#`` or ``;`` outside quotes);
    raises ``ValueError`` where it goes on at the next line (a backslash at
    its end) or leaves a quote open"""
    quoted = escaped = False
    for at, char in enumerate(line):
        if escaped:
            escaped = False
        elif char == '\\':
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char in '#;' and not quoted:
            return line[:at]
    if escaped or quoted:
        raise ValueError(f'line {number} goes on at the next')
    return line


def has_replacements(common: Path) -> bool:
    """Whether the repository with the common directory ``common`` has a
    replacement ref (``refs/replace/*``), loose or packed; True also where
    that cannot be told"""
    try:
        with os.scandir(common / 'refs' / 'replace') as entries:
            if any(_holds_a_ref(Path(e.path)) for e in entries):
                return True
    except FileNotFoundError:
        pass
    except OSError:
        return True
    packed = common / 'packed-refs'
    try:
        st = os.stat(packed)
    except FileNotFoundError:
        return False
    except OSError:
        return True
    return _packs_replacements(str(packed), st.st_ino, st.st_size,
                               st.st_mtime_ns, st.st_ctime_ns)


def _holds_a_ref(path: Path) -> bool:
    """Whether ``path`` (below ``refs/replace``) is a ref file, or a
    directory with one somewhere below it"""
    if not path.is_dir() or path.is_symlink():
        return True
    return any(_holds_a_ref(p) for p in path.iterdir())


@lru_cache(maxsize=1024)
def _packs_replacements(packed: str, inode: int, size: int, mtime_ns: int,
                        ctime_ns: int) -> bool:
    try:
        with open(packed, 'rb') as f:
            return b' refs/replace/' in f.read()
    except OSError:
        return True

"""A new, empty bare git repository: the folder ``.dsstore/meta`` starts as.

Written here rather than by libgit2 so that ``ds init`` does not import pygit2 (60–100 ms,
more than the rest of the command). The files are the ones ``git init --bare`` makes
that a repository needs (``gitrepository-layout``); the store appears whole by the
rename of the folder that holds it (``Store.create``), so nothing here is synced.
"""

from __future__ import annotations

from pathlib import Path

DEFAULT_BRANCH = "main"
# logAllRefUpdates: every ref keeps a reflog, not only branches (tags, remote-tracking refs)
CONFIG = ("[core]\n\tbare = true\n\trepositoryformatversion = 0\n\tfilemode = true\n"
          "\tlogAllRefUpdates = always\n")


def lost_parts(path: Path) -> list[str]:
    """What of the three a repository must have (libgit2 opens none without them) is gone."""
    return [name for name in ("HEAD", "objects", "refs") if not (path / name).exists()]


def mend_skeleton(path: Path) -> list[str]:
    """Write again a lost ``refs/`` folder (empty: the refs that were in it are damage the
    reflogs mend) and a lost ``HEAD``, detached at where HEAD's reflog last left it (the
    repair then puts it back on its branch), else on the default branch. ``objects/`` is
    never made: an empty one would turn lost versions into an empty store. Returns what
    was written."""
    from .reflog import ZERO, is_hex40, read_reflog

    lost = lost_parts(path)
    if "objects" in lost:
        return []
    if "refs" in lost:
        for sub in ("refs/heads", "refs/tags"):
            (path / sub).mkdir(parents=True, exist_ok=True)
    if "HEAD" in lost:
        from .fsutil import atomic_write

        try:
            moves = [e.new for e in read_reflog(path / "logs" / "HEAD") if is_hex40(e.new) and e.new != ZERO]
        except OSError:
            moves = []
        atomic_write(path / "HEAD", f"{moves[-1]}\n".encode() if moves else
                     f"ref: refs/heads/{a_branch(path)}\n".encode())
    return lost


def a_branch(path: Path) -> str:
    """The branch a HEAD with no reflog goes on: the default one if it is there, else the
    first there is (loose or packed), else the default (a store with no version yet)."""
    from .reflog import loose_refs, packed_refs

    names = sorted({n for n, _ in loose_refs(path)} | set(packed_refs(path)))
    branches = [n.removeprefix("refs/heads/") for n in names if n.startswith("refs/heads/")]
    return DEFAULT_BRANCH if not branches or DEFAULT_BRANCH in branches else branches[0]


def init_bare(path: Path, branch: str = DEFAULT_BRANCH) -> None:
    """Create an empty bare repository at ``path`` (which must not exist), HEAD on ``branch``."""
    path.mkdir()
    for sub in ("objects/info", "objects/pack", "refs/heads", "refs/tags"):
        (path / sub).mkdir(parents=True)
    (path / "HEAD").write_text(f"ref: refs/heads/{branch}\n", encoding="utf-8")
    # as libgit2 probes: a file system that folds case makes ref names differing only in
    # case one file, which git must know (filemode stays true: a bare repository has no
    # working files whose modes it would compare)
    folds = (path / "head").exists()
    (path / "config").write_text(CONFIG + ("\tignorecase = true\n" if folds else ""), encoding="utf-8")

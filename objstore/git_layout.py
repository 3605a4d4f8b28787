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

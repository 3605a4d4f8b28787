"""``ds get``: a version as plain, writable files in a folder of the user's choice.

The copy is built in a temp folder beside the destination and moved into place at the
end, so a failure (a corrupt chunk, a full disk, Ctrl-C) leaves the destination as it
was. A non-empty destination is refused unless ``overwrite``; then it is replaced whole.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pathspec

from .errors import DsError, TargetNotEmpty
from .manifest import FileEntry
from .materialize import Materializer, WriteReport, repository_inside
from .paths import STORE_DIR
from .progress import announce
from .store import Store, outside_git


def is_case_insensitive(folder: Path) -> bool:
    probe = folder / f".ds-CaseProbe-{os.getpid()}"
    probe.touch()
    try:
        return (folder / probe.name.lower()).exists()
    finally:
        probe.unlink()


def case_collisions(paths: list[str]) -> list[tuple[str, str]]:
    seen: dict[str, str] = {}
    out = []
    for p in sorted(paths):
        key = p.casefold()
        if key in seen:
            out.append((seen[key], p))
        else:
            seen[key] = p
    return out


def get_copy(store: Store, rev: str, dest: str | os.PathLike[str], overwrite: bool = False,
             include: list[str] | None = None,
             progress: Callable[[int, int], None] | None = None,
             paths: list[str] | None = None) -> WriteReport:
    """Copy version ``rev`` (only paths matching ``include`` globs / in ``paths``) to ``dest``."""
    commit_id = store.resolve(rev)
    items = list(store.meta.walk(store.meta.tree_of(commit_id)))
    if include:
        spec = pathspec.GitIgnoreSpec.from_lines(include)
        every = len(items)
        items = [(p, e) for p, e in items if spec.match_file(p)]
        if every and not items:  # as git's "pathspec did not match": an empty copy is a mistake
            globs = " ".join(repr(g) for g in include)
            raise DsError(f"no file of version {commit_id[:12]} matches --include {globs}; nothing was "
                          f"written (`ds ls -r {rev}` lists its files)")
    if paths is not None:
        wanted = set(paths)
        items = [(p, e) for p, e in items if p in wanted]
    return copy_items(store, items, dest, overwrite, progress, version=commit_id)


def copy_items(store: Store, items: list[tuple[str, FileEntry]], dest: str | os.PathLike[str],
               overwrite: bool = False,
               progress: Callable[[int, int], None] | None = None,
               version: str | None = None) -> WriteReport:
    """Write ``items`` as a new folder ``dest``, all at once or not at all; never a path inside
    a ``.git`` folder (a version from a remote is data: git would run a ``.git/config`` it wrote)."""
    items = [(p, e) for p, e in items if outside_git(p)]
    dest = Path(os.path.abspath(dest))
    if dest.is_symlink():
        raise DsError(f"{dest} is a symbolic link; give a real folder as the destination")
    if dest.exists() and not dest.is_dir():
        raise DsError(f"{dest} exists and is not a folder")
    store_path, real = store.path.resolve(), dest.resolve()
    copies = store_path / "cache" / "copies"  # the SDK's read-only cached copies live here
    for folder in (real, *real.parents):  # this store or any other: never write into one
        if folder.name == STORE_DIR and not (folder == store_path and copies in real.parents):
            raise DsError(f"{dest} is inside the store {folder}; choose a folder outside it")
    if real in store_path.parents or (dest / STORE_DIR).exists():
        raise DsError(f"{dest} holds a store; use `ds checkout` to change a working folder")
    non_empty = dest.exists() and any(os.scandir(dest))
    if non_empty and not overwrite:
        raise TargetNotEmpty(f"{dest} is not empty; pass --overwrite to replace its content")
    if non_empty:
        nested = repository_inside(str(real))  # a store or a git repository, at any depth
        if nested is not None:
            raise DsError(f"{dest} holds a repository at {nested}; --overwrite would delete it, so it is "
                          "refused: choose another folder")
    if store.fetcher is not None:  # bytes that live only on a remote: fetch just these
        store.ensure_chunks(c for _p, e in items for c, _ in e.chunk_list())
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".{dest.name}.ds-get-{os.getpid()}"
    tmp.mkdir()
    try:
        collisions = case_collisions([p for p, _ in items])
        if collisions and is_case_insensitive(tmp):
            a, b = collisions[0]
            raise DsError(f"{a} and {b} differ only in case and this disk ignores case; "
                          "use --include to take one of them, or a case-sensitive disk")
        announce(progress, len(items), sum(e.size for _p, e in items))
        report = Materializer(str(tmp), store.chunks, progress=progress, force=True, version=version,
                              record=False, fresh=True).write(items)
        if non_empty:
            old = dest.parent / f".{dest.name}.ds-old-{os.getpid()}"
            os.replace(dest, old)
            os.replace(tmp, dest)
            shutil.rmtree(old)
        else:
            os.replace(tmp, dest)  # onto a missing or empty folder: atomic
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return report



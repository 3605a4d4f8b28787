"""The fast answer to `ds status` on an unchanged working folder.

After a full status proves the folder equal to HEAD, the stat cache records that commit
(``clean_head``) with exactly its files. Next time, if HEAD is still that commit, nothing
is staged, and every file's stat data matches, the answer is "nothing changed" without
opening the metadata database, decoding a manifest or reading a file. Any doubt (a
stage, a sparse folder, a new or missing or touched file, a racy entry) returns False
and the caller runs the full status. This module deliberately imports no pygit2.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from .paths import STORE_DIR
from .scan import scan
from .statcache import StatCache


def _store_dir(start: str) -> Path | None:
    here = Path(start).resolve()
    for folder in (here, *here.parents):
        if (folder / STORE_DIR / "config").is_file():
            return folder / STORE_DIR
    return None


def head_commit(meta: Path) -> str | None:
    """HEAD's commit id read from the git files themselves (loose or packed ref)."""
    try:
        head = (meta / "HEAD").read_text().strip()
    except OSError:
        return None
    if not head.startswith("ref: "):
        return head if len(head) == 40 else None
    ref = head[5:]
    try:
        return (meta / ref).read_text().strip()
    except OSError:
        pass
    try:
        for line in (meta / "packed-refs").read_text().splitlines():
            sha, _, name = line.partition(" ")
            if name == ref:
                return sha
    except OSError:
        return None
    return None


def quick_clean(start: str) -> bool:
    """True only when the working folder is certainly unchanged since HEAD; else look fully."""
    store = _store_dir(start)
    if store is None or (store / "STAGE").exists():
        return False
    try:
        config = tomllib.loads((store / "config").read_text("utf-8"))
    except (OSError, ValueError):
        return False
    if config.get("store", {}).get("format") != 1 or config.get("worktree", {}).get("sparse"):
        return False
    head = head_commit(store / "meta")
    cache = StatCache(store / "cache" / "stat")
    if head is None or cache.clean_head != head:
        return False
    result = scan(str(store.parent))
    if result.skipped or result.bad_names or result.files.keys() != cache.entries.keys():
        return False
    return all(cache.get(path, st) is not None for path, st in result.files.items())

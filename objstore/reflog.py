"""Reading refs and reflogs as files, without trusting libgit2's view of them.

libgit2 skips a loose ref file it cannot parse (an empty ``refs/heads/main`` simply
vanishes from the ref list) and reports an unborn branch when the file is gone. Both
would make a damaged store look like an empty one, so gc would free everything and a
commit would start a new root. This module reads the files themselves, so the metadata
layer can tell *damaged* from *empty* and name the last good id the reflog recorded.

Layouts (git's, inside ``.dsstore/meta``)::

    HEAD                  "ref: refs/heads/NAME\\n", or 40 hex (detached)
    refs/**/NAME          40 hex + "\\n" (a loose ref), or "ref: TARGET\\n"
    packed-refs           "# comment", "HEX NAME" lines, "^HEX" (peeled tag) lines
    logs/HEAD, logs/refs/**/NAME
                          one move per line: OLD NEW NAME <EMAIL> SECONDS ZONE\\tMESSAGE
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ZERO = "0" * 40
_HEX40 = re.compile(r"[0-9a-f]{40}")
_LINE = re.compile(r"([0-9a-f]{40}) ([0-9a-f]{40}) [^\n]*?> (-?\d+) [+-]\d{4}(?:\t([^\n]*))?")


@dataclass(frozen=True, slots=True)
class ReflogEntry:
    old: str
    new: str
    time: int  # seconds since the epoch
    message: str


def read_reflog(path: Path) -> list[ReflogEntry]:
    """The entries of one reflog file, oldest first; unreadable lines are skipped."""
    try:
        text = path.read_text("utf-8", errors="replace")
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return []
    out = []
    for line in text.splitlines():
        m = _LINE.fullmatch(line)
        if m:
            out.append(ReflogEntry(m[1], m[2], int(m[3]), m[4] or ""))
    return out


def log_path(git_dir: Path, name: str) -> Path | None:
    """The reflog of ``name`` (HEAD, a branch, a tag, a remote's branch, or a full ref
    name), kept after the ref is deleted; None if there is none."""
    logs = git_dir / "logs"
    candidates = [name] if name == "HEAD" or name.startswith("refs/") else [
        f"refs/heads/{name}", f"refs/tags/{name}", f"refs/remotes/{name}"]
    for c in candidates:
        if (logs / c).is_file():
            return logs / c
    for c in candidates:  # renamed aside to make room for a ref under its name (a/ for a/b)
        aside = _newest_aside(logs, c)
        if aside is not None:
            return aside
    return None


def _newest_aside(logs: Path, name: str) -> Path | None:
    """The newest reflog of ``name`` renamed aside (``meta._put_aside``): the file itself
    as ``NAME~deleted-N``, or in a folder above it renamed so (``a~deleted-N/b``)."""
    parts = name.split("/")
    found = []
    for i in range(len(parts)):
        parent, stem, rest = logs.joinpath(*parts[:i]), parts[i], parts[i + 1:]
        if not parent.is_dir():
            break
        prefix = f"{stem}~deleted-"
        for p in parent.iterdir():
            if p.name.startswith(prefix) and p.name[len(prefix):].isdigit():
                log = p.joinpath(*rest)
                entries = read_reflog(log) if log.is_file() else []
                if entries:  # the last entry is the deletion, kept by every expiry: when it went
                    found.append((entries[-1].time, int(p.name[len(prefix):]), log))
    return max(found)[2] if found else None


_MOVED = re.compile(r"checkout: moving from (\S+) to (\S+)")


def previous_branch(git_dir: Path, n: int) -> str | None:
    """git's ``@{-N}``: the branch (or id) checked out N switches ago, from HEAD's reflog."""
    seen = 0
    for e in reversed(read_reflog(git_dir / "logs" / "HEAD")):
        m = _MOVED.fullmatch(e.message)
        if m:
            seen += 1
            if seen == n:
                return m[1]
    return None


def reflog_files(git_dir: Path) -> Iterator[tuple[str, Path]]:
    """(ref name, reflog path) for HEAD and every ref that has a reflog."""
    logs = git_dir / "logs"
    if (logs / "HEAD").is_file():
        yield "HEAD", logs / "HEAD"
    for folder, _dirs, names in os.walk(logs / "refs"):
        for name in names:
            if name.startswith(".tmp-"):  # an expiry killed before its rename
                continue
            path = Path(folder, name)
            yield path.relative_to(logs).as_posix(), path


def expire(text: str, before: float) -> tuple[str, int]:
    """A reflog without its entries older than ``before``; returns (text, entries dropped).

    The newest entry always stays (it records where the ref is, which ``ds fsck --repair``
    needs if the ref file is ever lost); when it is itself expired, its old id is zeroed,
    so it keeps nothing else alive."""
    lines = [line for line in text.splitlines() if _LINE.fullmatch(line)]
    keep = [line for line in lines[:-1] if int(_LINE.fullmatch(line)[3]) >= before]
    if lines:
        last = lines[-1]
        if int(_LINE.fullmatch(last)[3]) < before:
            last = ZERO + last[40:]
        keep.append(last)
    dropped = len(text.splitlines()) - len(keep)
    return "".join(f"{line}\n" for line in keep), dropped


def loose_refs(git_dir: Path) -> Iterator[tuple[str, str]]:
    """(ref name, raw content stripped) of every loose ref file (lock files left out)."""
    for folder, _dirs, names in os.walk(git_dir / "refs"):
        for name in names:
            if name.endswith(".lock"):
                continue
            path = Path(folder, name)
            try:
                raw = path.read_bytes()
            except OSError:
                raw = b""
            yield path.relative_to(git_dir).as_posix(), raw.decode("ascii", errors="replace").strip()


def packed_refs(git_dir: Path) -> dict[str, str]:
    """name -> id of the refs in ``packed-refs`` (well-formed lines only)."""
    try:
        text = (git_dir / "packed-refs").read_text("ascii", errors="replace")
    except FileNotFoundError:
        return {}
    out = {}
    for line in text.splitlines():
        hex_id, _, name = line.partition(" ")
        if _HEX40.fullmatch(hex_id) and name.startswith("refs/"):
            out[name] = hex_id
    return out


def is_hex40(text: str) -> bool:
    return bool(_HEX40.fullmatch(text))


def last_good(entries: list[ReflogEntry], usable) -> str | None:
    """The newest id the reflog moved to that ``usable(id)`` accepts (present, a commit)."""
    for e in reversed(entries):
        if e.new != ZERO and usable(e.new):
            return e.new
    return None

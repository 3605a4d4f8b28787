"""Where the current branch stands against its upstream, from files alone, when that is
certain without walking history: the branch line of a no-op `ds status`.

Like ``quickstatus``, this imports no pygit2 (its import alone costs more than a no-op
status). It answers only what needs no history walk: HEAD on a branch with no upstream,
an upstream at the same version as the branch, or an upstream the last fetch did not
find. Anything else (ahead, behind, diverged, detached, a ref it cannot read) returns
None, and the caller takes the full path (``branches.tracking``).
"""

from __future__ import annotations

import os

from .quickconfig import config_facts
from .quickstatus import read_text, store_dir


def _ref(meta: str, name: str) -> str | None:
    """A direct ref's id, loose or packed (as libgit2 reads it: loose first); None if absent."""
    try:
        value = read_text(os.path.join(meta, name)).strip()
    except FileNotFoundError:
        value = None
    except OSError:
        raise ValueError(name) from None
    if value is None:
        try:
            lines = read_text(os.path.join(meta, "packed-refs")).splitlines()
        except FileNotFoundError:
            return None
        value = next((line.partition(" ")[0] for line in lines
                      if not line.startswith(("#", "^")) and line.partition(" ")[2] == name), None)
        if value is None:
            return None
    if len(value) != 40 or any(c not in "0123456789abcdef" for c in value):
        raise ValueError(name)  # symbolic or damaged: the full path says what it is
    return value


def quick_tracking(start: str) -> dict | None:
    """``branches.tracking``'s answer for the store above ``start`` when files alone settle
    it, else None."""
    store = store_dir(start)
    if store is None:
        return None
    meta = os.path.join(store, "meta")
    try:
        head_text = read_text(os.path.join(meta, "HEAD")).strip()
        if not head_text.startswith("ref: refs/heads/"):
            return None
        branch = head_text[len("ref: refs/heads/"):]
        head = _ref(meta, f"refs/heads/{branch}")
    except (OSError, ValueError):
        return None
    config = config_facts(store)
    if config is None:
        return None
    out = {"branch": branch, "head": head, "upstream": None, "ahead": 0, "behind": 0, "gone": False}
    entry = config.get("branch", {}).get(branch, {})
    remote, merge = entry.get("remote"), entry.get("merge", "")
    if not isinstance(remote, str) or not remote or not isinstance(merge, str) \
            or not merge.startswith("refs/heads/"):
        return out
    out["upstream"] = f"{remote}/{merge[len('refs/heads/'):]}"
    try:
        theirs = _ref(meta, f"refs/remotes/{out['upstream']}")
    except ValueError:
        return None
    if theirs is None:
        out["gone"] = True
        return out
    return out if theirs == head else None

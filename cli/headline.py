"""The branch line of `ds status`, as text and JSON.

Kept free of typer and pygit2: the no-op `ds status` answered before the command modules
load (``cli/main.py``) prints it too.
"""

from __future__ import annotations


def _versions(n: int) -> str:
    return f"{n} version{'' if n == 1 else 's'}"


def branch_lines(tr: dict) -> list[str]:
    """What git's status says first, from ``branches.tracking``'s answer."""
    if tr["branch"] is None:
        return [f"HEAD detached at {tr['head'][:12]} (`ds switch -c NAME` keeps new versions on a branch)"
                ] if tr["head"] else []
    lines = [f"On branch {tr['branch']}"]
    up, ahead, behind = tr["upstream"], tr["ahead"], tr["behind"]
    if up is None:
        return lines
    if tr["gone"]:
        lines.append(f"Your branch is based on '{up}', but the upstream is gone "
                     "(`ds push` sends the branch there again).")
    elif ahead and behind:
        lines.append(f"Your branch and '{up}' have diverged: {_versions(ahead)} here and "
                     f"{_versions(behind)} there (`ds pull` merges them).")
    elif ahead:
        lines.append(f"Your branch is {_versions(ahead)} ahead of '{up}' (`ds push` sends them).")
    elif behind:
        lines.append(f"Your branch is {_versions(behind)} behind '{up}' (`ds pull` brings them).")
    else:
        lines.append(f"Your branch is up to date with '{up}'.")
    return lines


def head_json(tr: dict) -> dict:
    """The ``branch`` and ``upstream`` keys of `ds status --json`."""
    up = None if tr["upstream"] is None else {
        "name": tr["upstream"], "ahead": tr["ahead"], "behind": tr["behind"], "gone": tr["gone"]}
    return {"branch": tr["branch"], "upstream": up}

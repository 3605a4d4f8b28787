"""Which module defines each `ds` command, so a run imports only the one it needs.

Importing every command module (and letting typer build every command) cost ~25 ms of each
run's start-up; ``app._Sections`` looks a command up here and imports its module on first
use. ``tests/test_startup.py`` checks this table against what the modules register.
"""

from __future__ import annotations

# command name -> module under objstore_cli, in the order `ds --help` lists them
MODULES: dict[str, str] = {
    "init": "workflow", "clone": "remotes",
    "add": "workflow", "rm": "workflow", "mv": "workflow", "restore": "workflow",
    "status": "workflow", "commit": "workflow",
    "branch": "branches", "switch": "branches", "checkout": "workflow", "log": "history",
    "reflog": "history",
    "show": "history", "diff": "history", "ls": "inspect_cmd", "tag": "history", "merge": "remotes",
    "squash": "history",
    "remote": "remotes", "push": "remotes", "fetch": "remotes", "pull": "remotes",
    "fsck": "admin", "gc": "admin", "du": "inspect_cmd", "config": "inspect_cmd",
    "dataset": "dataset_cmd", "ui": "ui_cmd", "get": "workflow",
}


def load(name: str) -> None:
    """Import the module that registers command ``name`` on the root app (``__import__``, the
    import statement's own path, so ``-X importtime`` counts it as it does every other)."""
    __import__(f"{__package__}.{MODULES[name]}")


def load_all() -> None:
    """Import every command module (the test of this table; nothing on a command's path)."""
    for name in MODULES:
        load(name)

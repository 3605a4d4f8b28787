"""Console entry point: ``ds``.

A plain ``ds status`` (or ``-s``, ``--short``, ``--porcelain``; optionally with ``-C DIR``)
on an unchanged folder, and a plain ``ds --version``, are answered here, before typer and
the command modules are imported: that import alone costs more than checking 20,000 files.
Any other command, option or any doubt takes the full path.

SIGINT and SIGTERM raise KeyboardInterrupt in the main thread, so every ``finally`` and
``except BaseException`` runs (a writer keeps what it stored); the command then prints
one line and exits 128 + the signal's number, as a shell reports a process it killed.
"""

import sys


class Signals:
    received: int | None = None  # SIGINT or SIGTERM, once one arrived


class Walked:
    """What the walk of a plain ``ds status`` found (``quickstatus.quick_look``) when the
    folder was not clean, handed to the status command that follows in this process (and
    taken once), so that it does not walk the folder again."""

    start: str | None = None
    folders: set[str] | None = None


def quick_look(start: str) -> tuple[bool, set[str] | None]:
    """``quickstatus.quick_look`` for folder ``start``: what was handed over, else a new walk."""
    import os

    from objstore.quickstatus import quick_look as look

    start = os.path.abspath(start)
    if Walked.start == start:
        Walked.start = None
        return False, Walked.folders
    return look(start)


def _on_signal(signum: int, _frame: object) -> None:
    Signals.received = signum
    raise KeyboardInterrupt


def catch_signals() -> None:
    """Handle SIGINT and SIGTERM (unless this process was started with them ignored).

    Through ``_signal``, the C core of ``signal``: the module's enums cost more to import
    than the rest of a no-op ``ds status``'s imports."""
    import _signal

    for sig in (_signal.SIGINT, _signal.SIGTERM):
        if _signal.getsignal(sig) in (_signal.default_int_handler, _signal.SIG_DFL, _on_signal):
            _signal.signal(sig, _on_signal)


def interrupted() -> None:
    """The one line an interrupted command prints, and its exit (never returns)."""
    import signal

    signum = Signals.received or signal.SIGINT
    sys.stderr.write(f"Interrupted ({signal.Signals(signum).name}): run the command again to finish it.\n")
    sys.exit(128 + signum)


def _quick_status(argv: list[str]) -> bool:
    """Print the clean answer and return True if ``argv`` is a plain status of a clean folder."""
    if argv[:1] == ["-C"] and len(argv) == 3:
        folder, rest = argv[1], argv[2:]
    else:
        folder, rest = ".", argv
    if rest[:1] != ["status"] or rest[1:] not in ([], ["-s"], ["--short"], ["--porcelain"]):
        return False
    import os

    from objstore.quicktrack import quick_tracking

    try:
        start = os.path.abspath(folder)
        if not os.path.isdir(start):  # -C names no folder: the full command says so (exit 1)
            return False
        head = quick_tracking(start)  # the branch line, when files alone settle it
        if head is None:
            return False
        clean, folders = quick_look(start)
        if not clean:  # the status command takes what this walk found
            Walked.start, Walked.folders = start, folders
    except Exception:  # any surprise: the full command reports it properly
        return False
    if clean and rest == ["status"]:  # the short forms print nothing for a clean folder
        from .headline import branch_lines

        sys.stdout.write("\n".join([*branch_lines(head), "Nothing changed."]) + "\n")
    return clean


def version_line() -> str:
    """What ``ds --version`` prints: the package's version (``objstore.__version__``, the
    installed one: importing importlib.metadata to ask would cost more than the rest)."""
    from objstore import __version__

    return f"ds (objstore) {__version__}"


def fewer_collections() -> None:
    """Run the cyclic garbage collector less often. A command holds up to millions of small
    objects at once (index rows, tables of contents, stat-cache rows), none in a cycle, and
    the default thresholds walk them again and again: ``ds fsck`` of a million index rows
    spent 2 of its 7 s there. Cycles are still collected, after 50,000 allocations
    instead of 700."""
    import gc

    gc.set_threshold(50_000, 20, 10)


def main() -> None:
    fewer_collections()
    if sys.argv[1:] == ["--version"]:
        sys.stdout.write(version_line() + "\n")
        return
    catch_signals()
    try:
        if _quick_status(sys.argv[1:]):
            return
    except KeyboardInterrupt:
        interrupted()
    from .app import main as full_main

    full_main()


if __name__ == "__main__":
    main()

"""How long operations report progress to whoever called them.

The library never draws anything: an operation calls ``progress(files_done, bytes_done)``
as it advances. A callback that also has a ``total(files, nbytes)`` method is told the
totals first, once they are known, so it can show a rate and the time left. The CLI
passes a bar (or plain lines when stderr is not a terminal); the SDK's ``show_progress``
and ``verbose`` pass ``LogProgress``, which reports on the ``objstore`` logger, so the
calling program decides where (and whether) it appears.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

Progress = Callable[[int, int], None]  # (files done, bytes done)


def announce(progress: Progress | None, files: int | None, nbytes: int | None) -> None:
    """Tell ``progress`` the totals of the work about to start, if it takes them."""
    total = getattr(progress, "total", None)
    if callable(total):
        total(files, nbytes)


def as_transfer(progress: Progress) -> Callable[[int, int], None]:
    """Adapt a (files, bytes) progress to transfers, which report (bytes done, bytes to move)."""
    seen = {"total": -1}

    def report(done: int, total: int) -> None:
        if total != seen["total"]:
            seen["total"] = total
            announce(progress, None, total)
        progress(0, done)

    return report


def _to_logger(line: str) -> None:
    """An INFO record on the ``objstore`` logger (logging is imported here: the CLI, which
    passes its own ``emit``, never needs it)."""
    import logging

    logging.getLogger("objstore").info("%s", line)


class LogProgress:
    """Progress as lines, at most one per ``every`` seconds; silent for work shorter than that.

    Lines go to ``emit`` (default: INFO records on the ``objstore`` logger). Once a line
    has been shown, the last one (all done) is shown too. ``every`` defaults to
    ``$DS_PROGRESS_INTERVAL`` seconds, else 2 (CI logs may want fewer or more lines).
    """

    def __init__(self, label: str, every: float | None = None, emit: Callable[[str], None] | None = None,
                 count_files: bool = True):
        self.label = label
        self.count_files = count_files
        if every is None:
            try:
                every = float(os.environ.get("DS_PROGRESS_INTERVAL", "2"))
            except ValueError:
                every = 2.0
        self.every = every
        self.emit = emit or _to_logger
        self.files: int | None = None
        self.nbytes: int | None = None
        self.start = time.monotonic()
        self._last = self.start
        self._shown = False

    def total(self, files: int | None, nbytes: int | None) -> None:
        self.files, self.nbytes = files, nbytes

    def __call__(self, files: int, nbytes: int) -> None:
        now = time.monotonic()
        done = (self.nbytes is not None and nbytes >= self.nbytes) or (
            self.files is not None and files >= self.files)
        if now - self._last < self.every and not (done and self._shown):
            return
        self._last, self._shown = now, True
        self.emit(describe(self.label, files if self.count_files else None, nbytes, self.files,
                           self.nbytes, now - self.start))


def describe(label: str, files: int | None, nbytes: int, total_files: int | None,
             total_bytes: int | None, elapsed: float) -> str:
    """One line: what is done, of how much, how fast, and the time left when it can be told."""
    parts = [f"{_mib(nbytes)}" + (f"/{_mib(total_bytes)}" if total_bytes is not None else "")]
    if files is not None:
        parts.insert(0, f"{files}" + (f"/{total_files}" if total_files is not None else "") + " files")
    parts[0] = f"{label}: {parts[0]}"
    if elapsed > 0 and nbytes:
        rate = nbytes / elapsed
        parts.append(f"{_mib(int(rate))}/s")
        if total_bytes and total_bytes > nbytes:
            parts.append(f"{(total_bytes - nbytes) / rate:.0f} s left")
    return ", ".join(parts)


def _mib(n: int) -> str:
    return f"{n / 1048576:.1f} MiB"

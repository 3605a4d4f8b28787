"""Wrappers around any ``Backend``, stacked as restic stacks its retry and logger backends:
a remote is ``Retrying(Counting(Checked(backend)))``."""
from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .backend import Backend, PreconditionFailed, ShortRead, Transient


class Checked:
    """No read is trusted short: a range must come back at its exact length, a whole file at
    its size (given by the caller, else asked first), a download must pass the caller's check
    (a content hash) or match the file's size. A short read is a ``ShortRead`` (``Transient``)."""

    def __init__(self, inner: Backend):
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def read(self, rel: str, start: int = 0, end: int | None = None, size: int | None = None) -> bytes:
        """``size``: what a whole file should hold, if the caller knows."""
        if end is not None:
            data = self.inner.read(rel, start, end)
            if len(data) != end - start:
                raise ShortRead(f"read {len(data)} bytes of {end - start} at offset {start}")
            return data
        expected = self.inner.stat(rel).size if size is None else size
        data = self.inner.read(rel)
        if len(data) != expected:
            raise ShortRead(f"read {len(data)} bytes of {expected}")
        return data

    def download(self, rel: str, dest: Path, check: Callable[[Path], bool] | None = None) -> None:
        """``check(dest)`` verifies the download; without it its size is compared with the file's."""
        self.inner.download(rel, dest)
        ok = check(dest) if check is not None else dest.stat().st_size == self.inner.stat(rel).size
        if not ok:
            raise ShortRead(f"downloaded {dest.stat().st_size} bytes that fail verification")


class Counting:
    """Requests per kind and bytes moved, for request budgets (tests) and reports (the CLI);
    thread-safe (transfers run on several threads). Bytes are counted for requests that
    completed. A whole read of unknown size counts as a ``get`` and the ``head`` that asks
    the size; a ref read likewise."""

    def __init__(self, inner: Any):
        self.inner = inner
        self.requests: Counter[str] = Counter()
        self.bytes_sent = 0
        self.bytes_received = 0
        self._lock = threading.Lock()
        self._checked = isinstance(inner, Checked)

    def tally(self, *kinds: str, sent: int = 0, received: int = 0) -> None:
        with self._lock:
            self.requests.update(kinds)
            self.bytes_sent += sent
            self.bytes_received += received

    # the requests counted as one of their kind and nothing more: method -> kind
    ONE_REQUEST = {"list": "list", "stat": "head", "exists": "head", "delete": "delete", "swap_ref": "put-if"}

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.inner, name)
        if name not in self.ONE_REQUEST:
            return method

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.tally(self.ONE_REQUEST[name])
            return method(*args, **kwargs)

        return counted

    def read(self, rel: str, start: int = 0, end: int | None = None, **checks: Any) -> bytes:
        if start or end is not None:
            self.tally("get-range")
        else:  # a checker asks the size of a whole file first, unless it is given
            self.tally("get", *(("head",) if self._checked and checks.get("size") is None else ()))
        data = self.inner.read(rel, start, end, **checks)
        self.tally(received=len(data))
        return data

    def download(self, rel: str, dest: Path, **checks: Any) -> None:
        self.tally("get", *(("head",) if self._checked and checks.get("check") is None else ()))
        self.inner.download(rel, dest, **checks)
        self.tally(received=dest.stat().st_size)

    def write(self, rel: str, data: bytes | Path) -> None:
        self.tally("put")
        self.inner.write(rel, data)
        self.tally(sent=data.stat().st_size if isinstance(data, Path) else len(data))

    def read_ref(self, rel: str) -> tuple[bytes | None, Any]:
        self.tally("get", "head")  # the version token, then the body
        data, token = self.inner.read_ref(rel)
        self.tally(received=len(data or b""))
        return data, token


class RetryPolicy:
    """The retry knobs, class-wide so that a test or an embedding program can tighten
    them for every remote at once (``RemoteFS`` is one)."""

    RETRIES = 3  # retries after the first attempt
    BACKOFF = 0.2  # seconds before the first retry, doubled each time...
    BACKOFF_MAX = 5.0  # ...up to this; each delay is jittered down by up to half
    RETRY_BUDGET = 120.0  # no retry starts later than this many seconds after the first attempt


class Retrying:
    """Every call of the inner backend retried while it fails ``Transient`` (as
    ``RetryPolicy`` says); when the retries or the budget run out, the last ``Transient`` is
    raised with ``attempts`` set. A refused swap after a failed attempt is checked against
    the ref: that attempt may have been applied, its answer lost."""

    def __init__(self, inner: Any, policy: RetryPolicy | None = None, retries: int | None = None):
        self.inner = inner
        self.policy = policy or RetryPolicy()
        self.retries = self.policy.RETRIES if retries is None else retries

    def run(self, fn: Callable[[], Any]) -> Any:
        start = time.monotonic()
        seen: set[str] = set()
        for attempt in range(self.retries + 1):
            try:
                return fn()
            except Transient as e:
                seen.add(f"{type(e).__name__}: {e}")
                p = self.policy
                delay = min(p.BACKOFF * 2**attempt, p.BACKOFF_MAX) * random.uniform(0.5, 1.0)
                if attempt == self.retries or time.monotonic() - start + delay > p.RETRY_BUDGET:
                    e.attempts = attempt + 1
                    e.repeated = attempt > 0 and len(seen) == 1  # the very same failure at every try
                    raise
                time.sleep(delay)
        return None

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.inner, name)
        if not callable(method):
            return method
        return lambda *args, **kwargs: self.run(lambda: method(*args, **kwargs))

    def swap_ref(self, rel: str, data: bytes, token: Any) -> None:
        faulted = False

        def attempt() -> None:
            nonlocal faulted
            try:
                self.inner.swap_ref(rel, data, token)
            except PreconditionFailed:
                if faulted and (self.read_ref(rel)[0] or b"").strip() == data.strip():
                    return  # an earlier attempt went through
                raise
            except Transient:
                faulted = True
                raise

        self.run(attempt)

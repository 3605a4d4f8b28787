"""A fault-injecting fsspec filesystem for the remote tests.

``faulty://<path>`` wraps any real fsspec filesystem (``target_protocol`` and
``target_options`` in the storage options, as fsspec's own wrappers take them) and makes a
seeded share of its calls raise a transient error (before the call, or after it took
effect with the answer lost), stall for a bounded time, or - for reads - return short
data; ``down`` makes every call fail, and ``outage_at`` starts such an outage mid-way.
The remote is configured with this URL and these options like any other, so the library
needs no test hook: the wrapper presents the wrapped backend's protocol, so ``RemoteFS``
picks that backend's compare-and-swap, whose requests (``call_s3``, GCS ``call``) are
faulted too.

Knobs and tallies live in a ``Faults`` plan shared by every filesystem opened with the
same ``plan`` name in this process (a Remote, a clone's probe, ...); a process that does
not know the plan (a ``ds`` subprocess) builds one from the options.
"""

from __future__ import annotations

import errno
import json
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fsspec
from fsspec.spec import AbstractFileSystem

READS = ("cat_file", "get_file", "open")
LOOKUPS = ("info", "exists", "find", "ls", "size", "isdir", "isfile")
WRITES = ("pipe_file", "put_file", "mv", "rm", "rm_file", "makedirs", "mkdir", "copy")
REQUESTS = ("call_s3", "call")  # backend-specific requests RemoteFS makes (compare-and-swap)


@dataclass
class Faults:
    seed: int = 0
    error_rate: float = 0.0  # share of calls that raise a transient error
    stall_rate: float = 0.0  # share of calls that stall for ``stall_seconds`` first
    short_rate: float = 0.0  # share of reads that return fewer bytes than they should
    stall_seconds: float = 0.001
    down: bool = False  # every call fails, as with an unreachable service
    outage_at: int | None = None  # the service goes down at this call (until ``down`` is reset)
    injected: Counter = field(default_factory=Counter)
    calls: int = 0
    writes: list[str] = field(default_factory=list)  # paths written (completed), in order
    reads: list[str] = field(default_factory=list)  # paths read (whole files and ranges)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._lock = threading.Lock()

    @property
    def total(self) -> int:
        return sum(self.injected.values())

    def _roll(self, rate: float, kind: str) -> bool:
        with self._lock:
            hit = rate > 0 and self._rng.random() < rate
            if hit:
                self.injected[kind] += 1
            return hit

    def before(self, name: str) -> None:
        with self._lock:
            self.calls += 1
            if self.outage_at is not None and self.calls >= self.outage_at:
                self.down, self.outage_at = True, None
        if self.down:
            with self._lock:
                self.injected["down"] += 1
            raise ConnectionRefusedError(errno.ECONNREFUSED, f"injected: service down ({name})")
        if self._roll(self.stall_rate, "stall"):
            time.sleep(self.stall_seconds)
        if self._roll(self.error_rate / 2, "error-before"):
            raise self._error(name)

    def after(self, name: str) -> None:
        """The call took effect, but its answer is lost."""
        if self._roll(self.error_rate / 2, "error-after"):
            raise self._error(name)

    def _error(self, name: str) -> Exception:
        with self._lock:
            pick = self._rng.randrange(4)
        return [ConnectionResetError(errno.ECONNRESET, f"injected: connection reset ({name})"),
                TimeoutError(f"injected: read timed out ({name})"),
                OSError(errno.EIO, f"injected: I/O error ({name})"),
                ConnectionError(f"injected: connection aborted ({name})")][pick]

    def shorten(self, data: bytes) -> bytes:
        if len(data) and self._roll(self.short_rate, "short"):
            with self._lock:
                return data[: self._rng.randrange(len(data))]
        return data

    def note(self, where: list[str], path: str) -> None:
        with self._lock:
            where.append(path)


PLANS: dict[str, Faults] = {}


def plan(name: str, **knobs: Any) -> Faults:
    """A fresh plan under ``name``: what every ``faulty://`` filesystem naming it obeys."""
    PLANS[name] = Faults(**knobs)
    return PLANS[name]


class FaultyFileSystem(AbstractFileSystem):
    protocol = "faulty"
    cachable = False  # each RemoteFS gets its own wrapper (the plan is what is shared)

    def __init__(self, target_protocol: str = "file", target_options: dict | str | None = None,
                 plan: str | None = None, **knobs: Any):
        super().__init__()
        if isinstance(target_options, str):  # a store's config keeps flat options: JSON text
            target_options = json.loads(target_options)
        self.target = fsspec.filesystem(target_protocol, **(target_options or {}))
        self.faults = PLANS.get(plan or "") or Faults(**knobs)
        self.protocol = self.target.protocol  # RemoteFS picks the backend's compare-and-swap by it

    def _run(self, name: str, args: tuple, kwargs: dict) -> Any:
        f = self.faults
        f.before(name)
        result = getattr(self.target, name)(*args, **kwargs)
        if name in ("mv", "put_file"):
            f.note(f.writes, str(args[1]))
        elif name == "pipe_file":
            f.note(f.writes, str(args[0]))
        elif name == "cat_file":
            f.note(f.reads, str(args[0]))
            result = f.shorten(result)
        elif name == "get_file":
            f.note(f.reads, str(args[0]))
            local = Path(args[1])
            data = local.read_bytes()
            short = f.shorten(data)
            if len(short) != len(data):
                local.write_bytes(short)
        elif name == "open" and "r" in kwargs.get("mode", args[1] if len(args) > 1 else "rb"):
            result = _ShortReads(result, f)
        f.after(name)
        return result

    def invalidate_cache(self, path: str | None = None) -> None:
        self.target.invalidate_cache(path)

    def __getattr__(self, name: str) -> Any:
        if name in ("target", "faults") or name.startswith("__"):
            raise AttributeError(name)
        value = getattr(self.target, name)
        if name in REQUESTS and callable(value):
            return lambda *args, **kwargs: self._run(name, args, kwargs)
        return value


def _method(name: str):
    def method(self: FaultyFileSystem, *args: Any, **kwargs: Any) -> Any:
        return self._run(name, args, kwargs)

    method.__name__ = name
    return method


for _name in (*READS, *LOOKUPS, *WRITES):
    setattr(FaultyFileSystem, _name, _method(_name))


class _ShortReads:
    """A file whose reads may come back short."""

    def __init__(self, f: Any, faults: Faults):
        self._f, self._faults = f, faults

    def read(self, n: int = -1) -> bytes:
        return self._faults.shorten(self._f.read(n))

    def __enter__(self) -> _ShortReads:
        return self

    def __exit__(self, *exc: Any) -> None:
        self._f.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._f, name)


fsspec.register_implementation("faulty", FaultyFileSystem, clobber=True)


def faulty(url: str, options: dict, plan_name: str) -> tuple[str, dict]:
    """(URL, storage options) reaching the remote ``url`` through the plan ``plan_name``."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "file", url
    return f"faulty://{rest}", {"target_protocol": scheme, "target_options": json.dumps(options),
                                "plan": plan_name}

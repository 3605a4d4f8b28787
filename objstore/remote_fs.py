"""A remote's storage and the errors a user sees.

``RemoteFS`` is ``Retrying(Counting(Checked(backend)))`` over the ``Backend`` of its URL; what
each layer promises (counted requests, bounded retries, no short read, whole files only, shared
refs changed by compare-and-swap or refused) is in ``backend.py``, ``backend_fsspec.py`` and
``backend_wrappers.py``. What still fails after the retries is one ``RemoteUnavailable`` naming
the remote, the operation and the fix; what retrying cannot mend (no credentials, access
denied, no such bucket, a host that does not exist or refuses connections) fails at once with
its own fix.

``RemoteLock`` keeps a remote gc from deleting what a push is about to name: see its
docstring and docs/architecture.md.
"""
from __future__ import annotations

import json
import os
import random
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from . import backend as be
from .backend import CREDENTIALS, DENIED, NO_BUCKET, PERMANENT, TRANSIENT, UNREACHABLE  # noqa: F401
from .backend_fsspec import classify, open_backend  # noqa: F401 (callers import classify from here)
from .backend_wrappers import Checked, Counting, Retrying, RetryPolicy
from .errors import DsError
from .links import storage_options
from .paths import pid_space, process_gone


class RemoteError(DsError):
    """A remote could not be reached, read or written."""


class RemoteUnavailable(RemoteError):
    """A remote kept failing (network, service, short reads) through every retry."""


class RemoteDamaged(RemoteUnavailable):
    """A remote file kept reading short or failing its check through every retry."""

    why = ""  # the last failure, as one line


class RemoteLocked(RemoteError):
    """A remote gc (or, for gc, a push) holds the remote's lock for longer than we wait."""


class RefConflict(DsError):
    """A shared ref moved under us: fetch and merge first."""


class RemoteDenied(RemoteError):
    """No usable credentials, or the storage refused them: retrying cannot help."""


class RemoteMissing(RemoteError):
    """The bucket, container or folder of a remote does not exist."""


# What to tell the user when an operation gives up: every one of them resumes.
HINTS = {
    "push": "run `ds push` again: it resumes and sends only what the remote still lacks",
    "upload": "upload again: it resumes and sends only what the remote still lacks",
    "fetch": "run `ds fetch` again: it downloads only what is still missing",
    "pull": "run `ds pull` again: it downloads only what is still missing",
    "clone": "run `ds clone` again (the failed clone left nothing behind)",
    "gc": "run `ds gc --remote` again; an interrupted gc leaves the remote readable",
    "fsck": "run `ds fsck --remote` again",
    "read": "run the command again: it fetches only the file bytes still missing",
}


# Where the credentials of each backend come from, for the message when there are none.
CREDENTIAL_HINTS = {
    "s3": "set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or give the remote "
          "`-o key=... -o secret=...`",
    "gcs": "run `gcloud auth application-default login`, or set GOOGLE_APPLICATION_CREDENTIALS, "
           "or give the remote `-o token=PATH`",
    "azure": "set AZURE_STORAGE_CONNECTION_STRING, or give the remote `-o account_name=...` with "
             "`-o account_key=...` or `-o sas_token=...`",
}


def fsspec_url(url: str) -> str:
    """The URL fsspec can open for ``url``: ClearML's Azure form ``azure://ACCOUNT.blob.core.windows.net/
    CONTAINER/PATH`` becomes adlfs's ``az://CONTAINER@ACCOUNT.blob.core.windows.net/PATH`` (the
    account is read from the host) and ``azure://CONTAINER/PATH`` becomes ``az://CONTAINER/PATH``
    (the account comes from the options or the environment); any other URL is returned as it is.
    Why: ClearML scripts and pages name Azure storage as ``azure://``, which no fsspec backend knows.
    """
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() != "azure":
        return url
    host, _slash, path = rest.partition("/")
    if "." not in host:  # azure://CONTAINER/PATH
        return f"az://{rest}"
    container, _slash, inner = path.partition("/")
    if not container:
        raise DsError(f"{url}: no container after the account's host; write "
                      f"azure://{host}/CONTAINER/PATH")
    return f"az://{container}@{host}/{inner}"


class RemoteFS(RetryPolicy):
    """One remote's storage, the retry policy of its requests (``RetryPolicy``'s knobs)."""

    def __init__(self, url: str, options: dict[str, Any] | None = None, retries: int | None = None):
        self.url = url
        self.op: str | None = None  # the user-level operation, for error messages
        try:
            self.backend = open_backend(fsspec_url(url), storage_options(options))
        except ImportError as e:
            raise RemoteError(f"remote {url}: its filesystem is not installed ({e}); "
                              "install objstore[s3] (or [gcs], [azure], [all])") from None
        except (ValueError, TypeError) as e:
            raise RemoteError(f"remote {url}: {e}") from None
        self.kind = self.backend.kind
        self.counting = Counting(Checked(self.backend))
        self.io = Retrying(self.counting, self, retries)
        self._probed = False

    # -- plumbing ----------------------------------------------------------------------
    def path(self, rel: str) -> str:
        return self.backend.path(rel)

    def rel(self, path: str) -> str:
        return self.backend.rel(path)

    @property
    def requests(self) -> Counter[str]:
        return self.counting.requests

    @property
    def request_count(self) -> int:
        return sum(self.requests.values())

    @property
    def bytes_sent(self) -> int:
        return self.counting.bytes_sent

    @property
    def bytes_received(self) -> int:
        return self.counting.bytes_received

    @contextmanager
    def operation(self, name: str) -> Iterator[None]:
        """Name what the user asked for (push, fetch, ...) in errors; the outermost wins."""
        outer = self.op
        self.op = outer or name
        try:
            yield
        finally:
            self.op = outer

    @contextmanager
    def _errors(self, what: str, rel: str) -> Iterator[None]:
        """Backend errors as the user's: with the remote, the operation and the fix. The
        first request is preceded by one connection to the endpoint (``probe``)."""
        try:
            if not self._probed:
                self._probed = True
                self.backend.probe()
            yield
        except (be.Unsupported, be.Hostile) as e:
            raise RemoteError(f"remote {self.url}: {e.message}") from None
        except be.Permanent as e:
            raise self.permanent(e.kind, what, rel, e.cause, e.where) from None
        except be.Transient as e:
            failed = (f"remote {self.url}: {self.op or 'access'} did not complete: {what} {rel or '/'} "
                      f"failed {e.attempts} time(s), last with {be.describe(e.cause)}")
            if isinstance(e, be.ShortRead) and e.repeated:  # the same bad bytes each time: damage
                damaged = RemoteDamaged(f"{failed}. The remote's copy of {rel} looks damaged (shorter "
                                        "than its listing, or failing its check, at every try); `ds fsck "
                                        "--remote NAME` names what it affects, and `ds fsck --remote NAME "
                                        "--repair`, in a store that holds those versions, mends it")
                damaged.why = be.describe(e.cause)
                raise damaged from None
            raise RemoteUnavailable(f"{failed}. Nothing incomplete is visible on the remote; "
                                    f"{self._hint()}") from None

    def _call(self, what: str, fn: Callable[[], Any], rel: str = "") -> Any:
        """Run one request of any kind, counted and retried as every other."""
        def attempt() -> Any:
            self.counting.tally(what)
            with self.backend.typed_errors():
                return fn()

        with self._errors(what, rel):
            return self.io.run(attempt)

    def _hint(self) -> str:
        return HINTS.get(self.op or "", "run the command again: it resumes where it stopped")

    def permanent(self, kind: str, what: str, rel: str, e: BaseException, where: str = "") -> RemoteError:
        """The error for a failure that retrying cannot mend, naming its fix."""
        url, why = self.url, be.describe(e)
        if kind == CREDENTIALS:
            hint = CREDENTIAL_HINTS.get(self.kind, "give the remote's credentials as storage options (-o)")
            return RemoteDenied(f"remote {url}: no usable credentials ({why}); {hint}, then run the "
                                "command again")
        if kind == DENIED:
            return RemoteDenied(f"remote {url}: access denied ({why}); check the credentials and "
                                "that they may read and write this location")
        if kind == NO_BUCKET:
            return RemoteMissing(f"remote {url}: its bucket or container does not exist; create it, "
                                 "or correct the URL")
        op = self.op or "access"
        if kind == UNREACHABLE:
            at = f" at {where}" if where else ""
            return RemoteUnavailable(f"remote {url}: {op} did not complete: cannot reach the storage{at} "
                                     f"({why}). Check the URL, the endpoint and the network; "
                                     f"{self._hint()}")
        return RemoteError(f"remote {url}: {what} {rel or '/'} failed with {why}, which retrying "
                           "cannot mend; fix that (the URL, the storage options or the storage "
                           "itself), then run the command again")

    def not_a_remote(self) -> RemoteError:
        """The error for a location without a remote's config: missing, or not a remote."""
        if self.kind == "local":
            missing = not self.backend.exists()
        else:
            with self._errors("head", self.backend.root.split("/", 1)[0]):
                missing = not self.io.exists()
        if missing:
            return RemoteMissing(f"{self.url} is not an objstore remote: it does not exist (no such "
                                 "bucket, container or folder); check the URL, or push to create it")
        return RemoteError(f"{self.url} is not an objstore remote (no config); push to it first")

    # -- reading -----------------------------------------------------------------------
    def list(self, rel: str) -> list[str]:
        """Paths (relative to the remote root) of every file under ``rel``; [] if none."""
        return sorted(self.list_detail(rel))

    def list_detail(self, rel: str) -> dict[str, tuple[int, float]]:
        """rel path -> (size, modification time in the storage's clock) under ``rel``."""
        with self._errors("list", rel):
            return self.io.list(rel)

    def size(self, rel: str) -> int | None:
        """The file's size, or None if there is no such file."""
        try:
            with self._errors("head", rel):
                return self.io.stat(rel).size
        except FileNotFoundError:
            return None

    def exists(self, rel: str) -> bool:
        return self.size(rel) is not None

    def mtime(self, rel: str) -> float | None:
        """The file's modification time in the storage's clock, or None if there is no such
        file: the age of a ref being deleted is measured against a lease's time, never ours."""
        try:
            with self._errors("head", rel):
                return self.io.stat(rel).mtime
        except FileNotFoundError:
            return None

    def cat(self, rel: str, size: int | None = None) -> bytes:
        """A whole file, checked against its size (``size`` if known, else asked for; asked
        again after a read of another length: the file may have been replaced)."""
        known = [size]

        def get() -> bytes:
            try:
                return self.counting.read(rel, size=known[0])
            except be.ShortRead:
                known[0] = None
                raise

        with self._errors("get", rel):
            return self.io.run(get)

    def cat_ranges(self, rel: str, ranges: list[tuple[int, int]]) -> list[bytes]:
        """Byte ranges [start, end) of one file, one request per range, each of its exact length."""
        out = []
        for start, end in ranges:
            with self._errors("get-range", rel):
                out.append(self.io.read(rel, start, end))
        return out

    def get_file(self, rel: str, dest: Path, check: Callable[[Path], bool] | None = None) -> None:
        """Download to a temp name beside ``dest`` and rename: never a half file. ``check``
        verifies the download (``Checked.download``); a failed check is retried like a network fault."""
        tmp = dest.parent / f".tmp-{uuid.uuid4().hex}"
        try:
            with self._errors("get", rel):
                self.io.download(rel, tmp, check=check)
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)

    # -- writing -----------------------------------------------------------------------
    def put(self, rel: str, data: bytes | Path) -> None:
        """Write a whole file, visible under its name only once complete."""
        try:
            with self._errors("put", rel):
                self.io.write(rel, data)
        except FileNotFoundError:
            raise RemoteError(f"remote {self.url}: cannot write {rel}: the bucket or folder does not "
                              "exist; create it first") from None

    def delete(self, rels: list[str]) -> None:
        """Remove files; one already gone is not an error (a retry may find it deleted)."""
        for start in range(0, len(rels), 1000):  # object stores delete up to 1000 per request
            with self._errors("delete", rels[start]):
                self.io.delete(rels[start:start + 1000])

    # -- refs: compare-and-swap --------------------------------------------------------
    def read_ref(self, rel: str) -> tuple[str | None, Any]:
        """(value, token) of a small text file; token feeds ``swap_ref``."""
        with self._errors("get", rel):
            data, token = self.io.read_ref(rel)
        return (None if data is None else data.decode(errors="replace").strip()), token

    def swap_ref(self, rel: str, value: str, token: Any) -> None:
        """Set ``rel`` to ``value`` only if it still holds what ``token`` was read from."""
        try:
            with self._errors("update", rel):
                self.io.swap_ref(rel, (value + "\n").encode(), token)
        except be.PreconditionFailed as e:
            raise RefConflict(f"{rel} on {self.url} {e.reason}") from None
        except FileNotFoundError:  # a token of a ref deleted since (S3 answers If-Match with 404)
            raise RefConflict(f"{rel} on {self.url} was deleted meanwhile; fetch and try again") from None


class RemoteLock:
    """A lease on a remote: shared by writers (push, upload), exclusive for a remote gc.

    Each holder writes its own object ``locks/<kind>-<id>.json``, then lists ``locks/``:
    since both sides write before they look, of a push and a gc starting together at
    least one sees the other (every backend lists what was written, strongly consistent).
    A push that sees a live exclusive lock withdraws and waits; a gc that sees live
    shared locks keeps its own (so no new push starts) and waits for them to finish; of
    two gcs the later withdraws. Ages are measured in the storage's clock (a listing's
    modification times against the one of our own freshly written lock), so client clocks
    never matter. Holders rewrite their lock every ``REFRESH`` s; one not rewritten for
    ``STALE`` s is ignored (its holder died) and removed by the next gc. A holder checks
    before each irreversible step that its lease is younger than ``STALE / 2`` and gives
    up otherwise, so a paused writer never acts on a lease others consider expired.
    """

    REFRESH = 120.0
    STALE = 600.0
    WAIT = 120.0  # how long to wait for a conflicting lock before giving up

    def __init__(self, fs: RemoteFS, exclusive: bool, op: str):
        self.fs = fs
        self.exclusive = exclusive
        self.kind = "exclusive" if exclusive else "shared"
        self.id = uuid.uuid4().hex
        self.rel = f"locks/{self.kind}-{self.id}.json"
        self.body = json.dumps({"op": op, "host": socket.gethostname(), "pid": os.getpid(),
                                "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                "pids": pid_space()}).encode()
        self.server_now = 0.0  # storage time when the lock was taken (a remote gc ages files by it)
        self._written = 0.0  # monotonic time the last successful write of our lock began
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> RemoteLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def acquire(self) -> None:
        try:
            self._acquire()
        except BaseException:
            self._remove()  # never leave a lock behind that nobody holds
            raise
        self._thread = threading.Thread(target=self._refresh, daemon=True, name="remote-lock")
        self._thread.start()

    def _acquire(self) -> None:
        deadline = time.monotonic() + self.WAIT
        attempt = 0
        while True:
            if not self._written or time.monotonic() - self._written > self.STALE / 4:
                self._write()
            seen = self.fs.list_detail("locks")
            mine = seen.get(self.rel)
            blocker = self.rel if mine is None else self._blocker(seen, mine)
            if blocker is None:
                self.server_now = mine[1]
                break
            if time.monotonic() > deadline:
                raise self._locked(blocker, seen, mine)
            if mine is not None and (not self.exclusive or "/exclusive-" in blocker):
                self._remove()  # give way, and come back after a pause
                self._written = 0.0
            time.sleep(min(0.05 * 2**attempt, 2.0) * random.uniform(0.5, 1.0))
            attempt += 1

    @classmethod
    def stale(cls, mtime: float, now: float) -> bool:
        """Whether a lock of this modification time is dead, ``now`` being a fresh time in the
        same storage's clock: not refreshed for ``STALE`` s, or dated more than ``STALE`` s
        ahead (no holder's refresh lands that far ahead; a live one is rewritten in our
        clock within ``REFRESH`` s, so a lock dated in the future never blocks for good)."""
        return abs(now - mtime) > cls.STALE

    def _blocker(self, seen: dict[str, tuple[int, float]], mine: tuple[int, float]) -> str | None:
        """A live lock that keeps us from going on, or None."""
        for rel, (_size, mtime) in sorted(seen.items()):
            name = rel.rsplit("/", 1)[-1]
            if rel == self.rel or self.stale(mtime, mine[1]) or not name.endswith(".json"):
                continue
            earlier = (mtime, rel) < (mine[1], self.rel)  # of two gcs, the earlier wins
            blocks = (name.startswith("exclusive-") and (not self.exclusive or earlier)
                      or self.exclusive and name.startswith("shared-"))
            if blocks and not self._holder_died(rel):
                return rel
        return None

    def _locked(self, blocker: str, seen: dict[str, tuple[int, float]],
                mine: tuple[int, float] | None) -> RemoteLocked:
        """The error when ``blocker`` kept us waiting: whose lock it is, when it expires, and
        how to remove it when no command holds it."""
        url = self.fs.url
        if mine is None:  # our own lock never showed in the listing
            return RemoteLocked(f"remote {url}: our lock {blocker} was written but never listed, so "
                                "no lease could be taken; check the storage, then run the command again")
        what = "a remote gc or repair is running" if "/exclusive-" in blocker else "pushes are in progress"
        size, mtime = seen[blocker]
        holder = ""
        if size <= 4096:
            with suppress(DsError, FileNotFoundError, ValueError, AttributeError):
                body = json.loads(self.fs.cat(blocker))
                holder = f": {body.get('op', '?')} by pid {body.get('pid', '?')} on {body.get('host', '?')}"
        ahead = f", dated {mtime - mine[1]:.0f} s ahead of the storage's clock" if mtime > mine[1] else ""
        left = self.STALE - (mine[1] - mtime)
        where = (f"`rm {self.fs.path(blocker)}`" if self.fs.kind == "local"
                 else f"delete {url.rstrip('/')}/{blocker}")
        return RemoteLocked(
            f"remote {url}: {what} (lock {blocker}{holder}{ahead}); try again later. If no command "
            f"is running on this remote from any machine, that lock was left by one that was "
            f"killed: it expires by itself in {left:.0f} s (unrefreshed for {self.STALE:.0f} s), or "
            f"remove it now with {where} and run the command again")

    def _holder_died(self, rel: str) -> bool:
        """The lock's holder was a process of this machine's boot and PID namespace that is
        gone (killed): its lock is removed at once instead of blocking everyone until it
        goes stale. A host name alone proves nothing (containers sharing the host's
        network, cloned machines): without both ids, a lock waits to go stale."""
        here = pid_space()
        try:
            body = json.loads(self.fs.cat(rel))
            dead = (here is not None and body.get("pids") == here and body["host"] == socket.gethostname()
                    and process_gone(int(body["pid"])))
        except (DsError, FileNotFoundError, ValueError, KeyError, TypeError, AttributeError):
            return False
        if dead:
            with suppress(DsError):
                self.fs.delete([rel])
        return dead

    def _write(self) -> None:
        started = time.monotonic()
        self.fs.put(self.rel, self.body)
        self._written = started

    def _refresh(self) -> None:
        while not self._stop.wait(self.REFRESH):
            with suppress(DsError):  # the next tick tries again; check() stops the holder if it lasts
                self._write()

    def check(self) -> None:
        """Raise unless our lease is surely still honoured by everyone else."""
        if time.monotonic() - self._written > self.STALE / 2:
            raise RemoteLocked(f"remote {self.fs.url}: our lock could not be refreshed in time, so "
                               "another command may have taken over; nothing more was changed. "
                               + HINTS.get(self.fs.op or "", "Run the command again."))

    def _remove(self) -> None:
        with suppress(DsError):  # left behind, it expires after STALE
            self.fs.delete([self.rel])

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._remove()


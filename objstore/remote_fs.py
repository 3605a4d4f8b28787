"""A remote's storage: any fsspec URL, with retries, request counting and safe writes.

Everything the remote code sends or reads goes through ``RemoteFS`` so that (1) each
call is counted (tests assert request budgets, the CLI reports them), (2) transient
errors are retried with backoff, (3) a file appears under its final name only once it
is complete (object stores publish a PUT atomically; a folder remote writes a temp
name and renames), and (4) refs shared by writers change by compare-and-swap.

Compare-and-swap, per backend: a folder takes an ``O_EXCL`` lock file next to the ref;
S3 sends ``If-Match: <etag>`` (``If-None-Match: *`` to create); GCS uploads with
``ifGenerationMatch`` (0 to create); Azure sends the ETag with ``IfNotModified`` (or
creates without overwrite). Other backends are refused for shared refs.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import DsError


class RemoteError(DsError):
    """A remote could not be reached, read or written."""


class RefConflict(DsError):
    """A shared ref moved under us: fetch and merge first."""


class RemoteFS:
    def __init__(self, url: str, options: dict[str, Any] | None = None, retries: int = 3):
        import fsspec

        self.url = url
        self.retries = retries
        self.requests: Counter[str] = Counter()
        self.bytes_sent = 0
        self.bytes_received = 0
        self._count_lock = threading.Lock()  # transfers run on several threads
        try:
            self.fs, root = fsspec.core.url_to_fs(url, **(options or {}))
        except ImportError as e:
            raise RemoteError(f"remote {url}: its filesystem is not installed ({e}); "
                              "install objstore[s3] (or [gcs], [azure], [all])") from None
        except (ValueError, TypeError) as e:
            raise RemoteError(f"remote {url}: {e}") from None
        self.root = root.rstrip("/")
        protocol = set(self.fs.protocol if isinstance(self.fs.protocol, tuple) else (self.fs.protocol,))
        self.kind = ("local" if {"file", "local"} & protocol else "s3" if {"s3", "s3a"} & protocol
                     else "gcs" if {"gs", "gcs"} & protocol else "azure" if {"az", "abfs", "abfss"} & protocol
                     else "other")
        self.local = self.kind == "local"

    # -- plumbing ----------------------------------------------------------------------
    def path(self, rel: str) -> str:
        return f"{self.root}/{rel}" if rel else self.root

    def _count(self, what: str | None = None, sent: int = 0, received: int = 0) -> None:
        with self._count_lock:
            if what:
                self.requests[what] += 1
            self.bytes_sent += sent
            self.bytes_received += received

    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        self._count(what)
        for attempt in range(self.retries + 1):
            try:
                return fn()
            except FileNotFoundError:
                raise
            except PermissionError as e:
                raise RemoteError(f"remote {self.url}: access denied ({e}); check the credentials") from None
            except Exception as e:  # network and service errors of any fsspec backend
                if attempt == self.retries:
                    raise RemoteError(f"remote {self.url}: {what} failed after {attempt + 1} "
                                      f"attempts ({e})") from None
                time.sleep(min(0.2 * 2**attempt, 5))
        return None

    @property
    def request_count(self) -> int:
        return sum(self.requests.values())

    # -- reading -----------------------------------------------------------------------
    def list(self, rel: str) -> list[str]:
        """Paths (relative to the remote root) of every file under ``rel``; [] if none."""
        try:
            found = self._call("list", lambda: self.fs.find(self.path(rel)))
        except FileNotFoundError:
            return []
        n = len(self.root) + 1
        return sorted(p[n:] for p in found)

    def cat(self, rel: str) -> bytes:
        data = self._call("get", lambda: self.fs.cat_file(self.path(rel)))
        self._count(received=len(data))
        return data

    def cat_ranges(self, rel: str, ranges: list[tuple[int, int]]) -> list[bytes]:
        """Byte ranges [start, end) of one file, one request per range."""
        p = self.path(rel)
        out = []
        for start, end in ranges:
            data = self._call("get-range", lambda s=start, e=end: self.fs.cat_file(p, start=s, end=e))
            if len(data) != end - start:
                raise RemoteError(f"remote {self.url}: short read of {rel} at {start}")
            self._count(received=len(data))
            out.append(data)
        return out

    def get_file(self, rel: str, dest: Path) -> None:
        """Download to a temp name beside ``dest`` and rename: never a half file."""
        tmp = dest.parent / f".tmp-{uuid.uuid4().hex}"
        try:
            self._call("get", lambda: self.fs.get_file(self.path(rel), str(tmp)))
            self._count(received=tmp.stat().st_size)
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)

    def exists(self, rel: str) -> bool:
        return bool(self._call("head", lambda: self.fs.exists(self.path(rel))))

    # -- writing -----------------------------------------------------------------------
    def put(self, rel: str, data: bytes | Path) -> None:
        """Write a whole file, visible under its name only once complete."""
        target = self.path(rel)
        size = data.stat().st_size if isinstance(data, Path) else len(data)

        def send() -> None:
            dest = target
            if self.local:
                parent = target.rsplit("/", 1)[0]
                self.fs.makedirs(parent, exist_ok=True)
                dest = f"{parent}/.tmp-{uuid.uuid4().hex}"
            if isinstance(data, Path):
                self.fs.put_file(str(data), dest)
            else:
                self.fs.pipe_file(dest, data)
            if dest != target:
                self.fs.mv(dest, target)

        try:
            self._call("put", send)
        except FileNotFoundError:
            raise RemoteError(f"remote {self.url}: cannot write {rel}: the bucket or folder does not "
                              "exist; create it first") from None
        self._count(sent=size)

    # -- refs: compare-and-swap --------------------------------------------------------
    def read_ref(self, rel: str) -> tuple[str | None, Any]:
        """(value, token) of a small text file; token feeds ``swap_ref``.

        On object stores the version token (S3/Azure ETag, GCS generation) is read
        before the body: if the ref moves in between, the swap is refused (a spurious
        conflict), never accepted on a stale base.
        """
        key = {"s3": "ETag", "gcs": "generation", "azure": "etag"}.get(self.kind)
        token = None
        if key is not None:
            try:
                info = self._call("head", lambda: self.fs.info(self.path(rel), refresh=True))
            except FileNotFoundError:
                return None, None
            token = info[key]
        try:
            value = self.cat(rel).decode().strip()
        except FileNotFoundError:
            return None, None
        return value, (token if key is not None else value)

    def swap_ref(self, rel: str, value: str, token: Any) -> None:
        """Set ``rel`` to ``value`` only if it still holds what ``token`` was read from."""
        data = (value + "\n").encode()
        if self.kind == "local":
            return self._swap_local(rel, data, token)
        if self.kind not in ("s3", "gcs", "azure"):
            raise RemoteError(f"remote {self.url}: shared refs need compare-and-swap, which objstore "
                              f"does not know how to do on {self.fs.protocol}")
        self._count("put-if")
        try:  # not retried: a refused condition is an answer, not a fault
            getattr(self, f"_swap_{self.kind}")(self.path(rel), data, token)
        except Exception as e:  # each SDK has its own exception for a failed condition
            text = str(e).lower().replace("-", "")
            if isinstance(e, FileExistsError) or type(e).__name__ == "ResourceModifiedError" or any(
                    k in text for k in ("precondition", "412", "conditionalrequestconflict",
                                        "condition specified")):
                raise RefConflict(f"{rel} on {self.url} changed meanwhile; "
                                  "fetch and merge first") from None
            raise RemoteError(f"remote {self.url}: cannot update {rel} ({e})") from None
        finally:
            self.fs.invalidate_cache(self.path(rel))
        return None

    def _swap_s3(self, path: str, data: bytes, token: Any) -> None:
        bucket, key, _ = self.fs.split_path(path)
        cond = {"IfMatch": token} if token is not None else {"IfNoneMatch": "*"}
        self.fs.call_s3("put_object", Bucket=bucket, Key=key, Body=data, **cond)

    def _swap_gcs(self, path: str, data: bytes, token: Any) -> None:
        from urllib.parse import quote

        bucket, key, _ = self.fs.split_path(path)
        head = json.dumps({"name": key})
        body = (f"--==0==\nContent-Type: application/json; charset=UTF-8\n\n{head}\n--==0==\n"
                "Content-Type: text/plain\n\n").encode() + data + b"\n--==0==--"
        self.fs.call("POST", f"{self.fs._location}/upload/storage/v1/b/{quote(bucket)}/o",
                     uploadType="multipart", headers={"Content-Type": 'multipart/related; boundary="==0=="'},
                     data=body, json_out=True, ifGenerationMatch=str(token or 0))

    def _swap_azure(self, path: str, data: bytes, token: Any) -> None:
        if token is None:
            self.fs.pipe_file(path, data, mode="create")
            return
        from azure.core import MatchConditions

        self.fs.pipe_file(path, data, etag=token, match_condition=MatchConditions.IfNotModified)

    def _swap_local(self, rel: str, data: bytes, token: Any) -> None:
        target = Path(self.path(rel))
        target.parent.mkdir(parents=True, exist_ok=True)
        lock = target.with_name(target.name + ".lock")
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            raise RefConflict(f"{rel} on {self.url} is being updated by another writer "
                              f"(lock {lock}); retry, or remove the lock if no push is running") from None
        try:
            os.close(fd)
            current = target.read_text().strip() if target.exists() else None
            if current != token:
                raise RefConflict(f"{rel} on {self.url} changed meanwhile; fetch and merge first")
            self._count("put-if")
            tmp = target.with_name(f".tmp-{uuid.uuid4().hex}")
            tmp.write_bytes(data)
            os.replace(tmp, target)
        finally:
            lock.unlink(missing_ok=True)

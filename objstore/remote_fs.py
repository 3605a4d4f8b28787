"""A remote's storage: any fsspec URL, with retries, request counting, safe writes and locks.

Everything the remote code sends or reads goes through ``RemoteFS`` so that (1) each
request is counted (tests assert request budgets, the CLI reports them), (2) transient
errors are retried with bounded, jittered backoff within a time budget, and what still
fails afterwards is one ``RemoteUnavailable`` naming the remote, the operation and the
fix; errors that retrying cannot mend (no credentials, access denied, no such bucket, a
host that does not exist or refuses connections) fail at once, told apart by exception
type (``classify``), never by message text where a type exists, (3) no read is
trusted short: whole files are checked against their size (or their content hash) and
ranges against their length, a short one is retried like a fault, (4) a file appears
under its final name only once it is complete (object stores publish a PUT atomically; a
folder remote writes a temp name and renames), and (5) refs shared by writers change by
compare-and-swap.

Compare-and-swap, per backend: a folder takes an ``O_EXCL`` lock file next to the ref;
S3 sends ``If-Match: <etag>`` (``If-None-Match: *`` to create); GCS uploads with
``ifGenerationMatch`` (0 to create); Azure sends the ETag with ``IfNotModified`` (or
creates without overwrite). Other backends are refused for shared refs.

``RemoteLock`` keeps a remote gc from deleting what a push is about to name: see its
docstring and docs/architecture.md.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import random
import socket
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from .errors import DsError
from .links import storage_options


class RemoteError(DsError):
    """A remote could not be reached, read or written."""


class RemoteUnavailable(RemoteError):
    """A remote kept failing (network, service, short reads) through every retry."""


class RemoteLocked(RemoteError):
    """A remote gc (or, for gc, a push) holds the remote's lock for longer than we wait."""


class RefConflict(DsError):
    """A shared ref moved under us: fetch and merge first."""


class ShortRead(RemoteError):
    """Fewer (or other) bytes than the remote said it holds; retried like a network fault."""


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

TRANSIENT, CREDENTIALS, DENIED, NO_BUCKET, UNREACHABLE, PERMANENT = (
    "transient", "credentials", "denied", "no-bucket", "unreachable", "permanent")


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


class RemoteFS:
    """One remote's filesystem. ``RETRIES``/``BACKOFF``/``RETRY_BUDGET`` are the retry
    policy (class-wide so a test, or an embedding program, can tighten it for every remote
    at once). Only transient errors are retried (``classify``); a permanent one (no
    credentials, access denied, no such bucket, a host that does not exist or refuses
    connections) fails at once with the fix."""

    RETRIES = 3  # retries after the first attempt
    BACKOFF = 0.2  # seconds before the first retry, doubled each time...
    BACKOFF_MAX = 5.0  # ...up to this; each delay is jittered down by up to half
    RETRY_BUDGET = 120.0  # no retry starts later than this many seconds after the first attempt

    def __init__(self, url: str, options: dict[str, Any] | None = None, retries: int | None = None):
        import fsspec

        self.url = url
        self.retries = self.RETRIES if retries is None else retries
        self.requests: Counter[str] = Counter()
        self.bytes_sent = 0
        self.bytes_received = 0
        self.op: str | None = None  # the user-level operation, for error messages
        self._count_lock = threading.Lock()  # transfers run on several threads
        try:
            self.fs, root = fsspec.core.url_to_fs(fsspec_url(url), **storage_options(options))
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
        self._probed = False

    def _probe(self) -> None:
        """One TCP connection to a cloud remote's endpoint before any request: a host that
        does not exist or refuses connections fails here at once, instead of after the
        storage library's own retries (gcsfs: six tries, half a minute). Skipped behind a
        proxy, where this machine may not resolve the host itself; a slow answer is left
        to the requests and their retries."""
        from urllib.parse import urlsplit

        self._probed = True
        if self.kind not in ("s3", "gcs") or any(
                os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy",
                                            "ALL_PROXY", "all_proxy")):
            return
        endpoint = _endpoint(self.fs, self.kind)
        parts = urlsplit(endpoint) if endpoint else None
        if parts is None or not parts.hostname:
            return
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            socket.create_connection((parts.hostname, port), timeout=5).close()
        except (socket.gaierror, ConnectionRefusedError) as e:
            if classify(e, self.kind) == UNREACHABLE:
                raise RemoteUnavailable(
                    f"remote {self.url}: {self.op or 'access'} did not complete: cannot reach the storage "
                    f"at {parts.hostname}:{port} ({e}). Check the URL, the endpoint and the network; "
                    f"{self._hint()}") from None
        except OSError:
            return  # a timeout or an odd network: the requests will say more

    # -- plumbing ----------------------------------------------------------------------
    def path(self, rel: str) -> str:
        return f"{self.root}/{rel}" if rel else self.root

    def rel(self, path: str) -> str:
        return path[len(self.root) + 1:]

    @contextmanager
    def operation(self, name: str) -> Iterator[None]:
        """Name what the user asked for (push, fetch, ...) in errors; the outermost wins."""
        outer = self.op
        self.op = outer or name
        try:
            yield
        finally:
            self.op = outer

    def _count(self, what: str | None = None, sent: int = 0, received: int = 0) -> None:
        with self._count_lock:
            if what:
                self.requests[what] += 1
            self.bytes_sent += sent
            self.bytes_received += received

    def _delay(self, attempt: int) -> float:
        return min(self.BACKOFF * 2**attempt, self.BACKOFF_MAX) * random.uniform(0.5, 1.0)

    def _call(self, what: str, fn: Callable[[], Any], rel: str = "") -> Any:
        """Run one request, retrying transient failures (within ``RETRY_BUDGET``); each
        attempt is counted. A permanent failure is raised at once, with its fix."""
        if not self._probed:
            self._probe()
        start = time.monotonic()
        for attempt in range(self.retries + 1):
            self._count(what)
            try:
                return fn()
            except FileNotFoundError as e:
                if classify(e, self.kind) == NO_BUCKET:
                    raise self.permanent(NO_BUCKET, what, rel, e) from None
                raise
            except ShortRead as e:
                kind: str = TRANSIENT
                error: Exception = e
            except DsError:
                raise
            except Exception as e:  # network and service errors of any fsspec backend
                kind, error = classify(e, self.kind), e
            if kind != TRANSIENT:
                raise self.permanent(kind, what, rel, error) from None
            delay = self._delay(attempt)
            if attempt == self.retries or time.monotonic() - start + delay > self.RETRY_BUDGET:
                raise RemoteUnavailable(self._gave_up(what, rel, attempt + 1, error)) from None
            time.sleep(delay)
        return None

    def _hint(self) -> str:
        return HINTS.get(self.op or "", "run the command again: it resumes where it stopped")

    def _gave_up(self, what: str, rel: str, attempts: int, e: BaseException) -> str:
        op = self.op or "access"
        return (f"remote {self.url}: {op} did not complete: {what} {rel or '/'} failed {attempts} "
                f"time(s), last with {_describe(e)}. Nothing incomplete is visible on the "
                f"remote; {self._hint()}")

    def permanent(self, kind: str, what: str, rel: str, e: BaseException) -> RemoteError:
        """The error for a failure that retrying cannot mend, naming its fix."""
        url, why = self.url, _describe(e)
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
            return RemoteUnavailable(f"remote {url}: {op} did not complete: cannot reach the storage "
                                     f"({why}). Check the URL, the endpoint and the network; "
                                     f"{self._hint()}")
        return RemoteError(f"remote {url}: {what} {rel or '/'} failed with {why}, which retrying "
                           "cannot mend; fix that (the URL, the storage options or the storage "
                           "itself), then run the command again")

    def not_a_remote(self) -> RemoteError:
        """The error for a location without a remote's config: missing, or not a remote."""
        if self.kind == "local":
            missing = not os.path.isdir(self.root)
        else:
            bucket = self.root.split("/", 1)[0]
            missing = not self._call("head", lambda: self.fs.exists(bucket), bucket)
        if missing:
            return RemoteMissing(f"{self.url} is not an objstore remote: it does not exist (no such "
                                 "bucket, container or folder); check the URL, or push to create it")
        return RemoteError(f"{self.url} is not an objstore remote (no config); push to it first")

    @property
    def request_count(self) -> int:
        return sum(self.requests.values())

    # -- reading -----------------------------------------------------------------------
    def list(self, rel: str) -> list[str]:
        """Paths (relative to the remote root) of every file under ``rel``; [] if none."""
        return sorted(self.list_detail(rel))

    def list_detail(self, rel: str) -> dict[str, tuple[int, float]]:
        """rel path -> (size, modification time in the storage's clock) under ``rel``."""
        try:
            found = self._call("list", lambda: self.fs.find(self.path(rel), detail=True), rel)
        except FileNotFoundError:
            return {}
        return {self.rel(p): (int(info.get("size") or 0), mtime_of(info)) for p, info in found.items()}

    def size(self, rel: str) -> int | None:
        """The file's size, or None if there is no such file."""
        try:
            info = self._call("head", lambda: self.fs.info(self.path(rel), refresh=True), rel)
        except FileNotFoundError:
            return None
        return int(info["size"]) if info.get("type", "file") == "file" else None

    def cat(self, rel: str, size: int | None = None) -> bytes:
        """A whole file, checked against its size (``size`` if known, else asked for)."""
        return self._cat_checked(rel, size)[1]

    def _cat_checked(self, rel: str, size: int | None) -> tuple[dict, bytes]:
        p = self.path(rel)
        known = {"size": size}

        def get() -> tuple[dict, bytes]:
            info: dict = {}
            if known["size"] is None:
                self._count("head")
                info = self.fs.info(p, refresh=True)
                known["size"] = int(info["size"])
            data = self.fs.cat_file(p)
            if len(data) != known["size"]:
                expected, known["size"] = known["size"], None  # ask again: it may have been replaced
                raise ShortRead(f"read {len(data)} bytes of {expected}")
            return info, data

        info, data = self._call("get", get, rel)
        self._count(received=len(data))
        return info, data

    def cat_ranges(self, rel: str, ranges: list[tuple[int, int]]) -> list[bytes]:
        """Byte ranges [start, end) of one file, one request per range, each of its exact length."""
        p = self.path(rel)
        out = []
        for start, end in ranges:
            def get(s: int = start, e: int = end) -> bytes:
                data = self.fs.cat_file(p, start=s, end=e)
                if len(data) != e - s:
                    raise ShortRead(f"read {len(data)} bytes of {e - s} at offset {s}")
                return data

            data = self._call("get-range", get, rel)
            self._count(received=len(data))
            out.append(data)
        return out

    def get_file(self, rel: str, dest: Path, check: Callable[[Path], bool] | None = None) -> None:
        """Download to a temp name beside ``dest`` and rename: never a half file.

        ``check(path)`` verifies the download (a content hash); without it the size is
        compared with the remote's. A failed check is retried like a network fault.
        """
        tmp = dest.parent / f".tmp-{uuid.uuid4().hex}"
        p = self.path(rel)

        def get() -> None:
            self.fs.get_file(p, str(tmp))
            if check is not None:
                ok = check(tmp)
            else:
                self._count("head")
                ok = tmp.stat().st_size == int(self.fs.info(p, refresh=True)["size"])
            if not ok:
                raise ShortRead(f"downloaded {tmp.stat().st_size} bytes that fail verification")

        try:
            self._call("get", get, rel)
            self._count(received=tmp.stat().st_size)
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)

    def exists(self, rel: str) -> bool:
        return bool(self._call("head", lambda: self.fs.exists(self.path(rel)), rel))

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
            try:
                if isinstance(data, Path):
                    self.fs.put_file(str(data), dest)
                else:
                    self.fs.pipe_file(dest, data)
                if dest != target:
                    self.fs.mv(dest, target)
            except BaseException:
                if dest != target:  # best effort; a left temp file is removed by `ds gc --remote`
                    try:
                        self.fs.rm_file(dest)
                    except Exception:
                        pass
                raise

        try:
            self._call("put", send, rel)
        except FileNotFoundError:
            raise RemoteError(f"remote {self.url}: cannot write {rel}: the bucket or folder does not "
                              "exist; create it first") from None
        self._count(sent=size)

    def delete(self, rels: list[str]) -> None:
        """Remove files; one already gone is not an error (a retry may find it deleted)."""
        for start in range(0, len(rels), 1000):  # object stores delete up to 1000 per request
            paths = [self.path(r) for r in rels[start:start + 1000]]

            def rm(paths: list[str] = paths) -> None:
                try:
                    self.fs.rm(paths)
                except FileNotFoundError:
                    for p in paths:
                        try:
                            self.fs.rm_file(p)
                        except FileNotFoundError:
                            pass
                for p in paths:
                    self.fs.invalidate_cache(p)

            self._call("delete", rm, rels[start])

    # -- refs: compare-and-swap --------------------------------------------------------
    def read_ref(self, rel: str) -> tuple[str | None, Any]:
        """(value, token) of a small text file; token feeds ``swap_ref``.

        On object stores the version token (S3/Azure ETag, GCS generation) is read
        before the body: if the ref moves in between, the swap is refused (a spurious
        conflict), never accepted on a stale base.
        """
        key = {"s3": "ETag", "gcs": "generation", "azure": "etag"}.get(self.kind)
        try:
            info, data = self._cat_checked(rel, None)
        except FileNotFoundError:
            return None, None
        value = data.decode(errors="replace").strip()
        return value, (info[key] if key is not None else value)

    def swap_ref(self, rel: str, value: str, token: Any) -> None:
        """Set ``rel`` to ``value`` only if it still holds what ``token`` was read from.

        Transient failures are retried; a refusal after one of them is checked against
        the ref itself, since the failed attempt may have been applied (its answer lost).
        """
        data = (value + "\n").encode()
        if self.kind == "local":
            return self._swap_local(rel, data, token)
        if self.kind not in ("s3", "gcs", "azure"):
            raise RemoteError(f"remote {self.url}: shared refs need compare-and-swap, which objstore "
                              f"does not know how to do on {self.fs.protocol}")
        faulted = False
        if not self._probed:
            self._probe()
        start = time.monotonic()
        for attempt in range(self.retries + 1):
            self._count("put-if")
            try:
                getattr(self, f"_swap_{self.kind}")(self.path(rel), data, token)
                return None
            except Exception as e:  # each SDK has its own exception for a failed condition
                if _condition_failed(e):
                    if faulted and self.read_ref(rel)[0] == value:
                        return None  # an earlier attempt went through
                    raise RefConflict(f"{rel} on {self.url} changed meanwhile; "
                                      "fetch and merge first") from None
                kind = classify(e, self.kind)
                if kind != TRANSIENT:
                    raise self.permanent(kind, "update", rel, e) from None
                if attempt == self.retries or time.monotonic() - start > self.RETRY_BUDGET:
                    raise RemoteUnavailable(self._gave_up("update", rel, attempt + 1, e)) from None
                faulted = True
                time.sleep(self._delay(attempt))
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
        fd = _flock(target.with_name(target.name + ".lock"), f"{rel} on {self.url}")
        try:
            current = target.read_text().strip() if target.exists() else None
            if current != token:
                raise RefConflict(f"{rel} on {self.url} changed meanwhile; fetch and merge first")
            self._count("put-if")
            tmp = target.with_name(f".tmp-{uuid.uuid4().hex}")
            tmp.write_bytes(data)
            os.replace(tmp, target)
        finally:
            os.close(fd)  # releases the lock; the empty lock file stays (readers skip *.lock)


def _causes(e: BaseException) -> list[BaseException]:
    """``e`` and what it wraps, outermost first: ``__cause__``/``__context__`` and the
    attributes SDKs keep the underlying error in (botocore ``kwargs['error']``, azure
    ``inner_exception``, aiohttp ``os_error``)."""
    out: list[BaseException] = []
    todo: list[Any] = [e]
    while todo and len(out) < 16:
        x = todo.pop(0)
        if not isinstance(x, BaseException) or any(x is y for y in out):
            continue
        out.append(x)
        kwargs = getattr(x, "kwargs", None)
        todo += [x.__cause__, x.__context__, getattr(x, "inner_exception", None),
                 getattr(x, "os_error", None), kwargs.get("error") if isinstance(kwargs, dict) else None]
    return out


def classify(e: BaseException, backend: str = "other") -> str:
    """How to treat a storage error: TRANSIENT (retry), or CREDENTIALS, DENIED, NO_BUCKET,
    UNREACHABLE, PERMANENT (fail at once). Decided by the exception's type (and the codes
    SDKs attach to their types), outermost first; what no rule decides is transient."""
    for x in _causes(e):
        kind = _kind_of(x, backend)
        if kind is not None:
            return kind
    return TRANSIENT


def _module(name: str) -> Any:
    """A module only if something already imported it: an error cannot be an instance of a
    class that was never loaded, so classifying imports nothing."""
    return sys.modules.get(name)


def _status_kind(status: Any) -> str | None:
    """An HTTP status's kind: 401 no credentials, 403 denied, 408/429/5xx transient,
    other 4xx permanent."""
    try:
        code = int(status)
    except (TypeError, ValueError):
        return None
    if code == 401:
        return CREDENTIALS
    if code == 403:
        return DENIED
    if code in (408, 429) or code >= 500:
        return TRANSIENT
    if 400 <= code < 500 and code not in (404, 409, 412):
        return PERMANENT
    return None


_S3_DENIED = {"AccessDenied", "AccountProblem", "AllAccessDisabled", "InvalidAccessKeyId",
              "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken", "InvalidSecurity", "NotSignedUp"}


def _kind_of(x: BaseException, backend: str) -> str | None:
    """One exception's kind, or None when its type does not tell (look at what it wraps)."""
    bx = _module("botocore.exceptions")
    if bx is not None:
        if isinstance(x, tuple(getattr(bx, n) for n in (
                "NoCredentialsError", "PartialCredentialsError", "CredentialRetrievalError",
                "ProfileNotFound", "TokenRetrievalError", "SSOError") if hasattr(bx, n))):
            return CREDENTIALS
        if isinstance(x, (bx.NoRegionError, bx.ParamValidationError)):
            return PERMANENT
        if isinstance(x, bx.ClientError):
            code = x.response.get("Error", {}).get("Code")
            if code in ("NoSuchBucket", "NoSuchContainer"):
                return NO_BUCKET
            if code in _S3_DENIED:
                return DENIED
            return _status_kind(x.response.get("ResponseMetadata", {}).get("HTTPStatusCode"))
        if isinstance(x, bx.BotoCoreError):
            return None  # connection errors and the like: what they wrap decides
    ax = _module("aiohttp.client_exceptions")
    if ax is not None:
        if isinstance(x, ax.ClientConnectorCertificateError):
            return PERMANENT
        if isinstance(x, ax.ClientResponseError):
            return _status_kind(x.status)
    ga = _module("google.auth.exceptions")
    if ga is not None and isinstance(x, ga.GoogleAuthError):
        if isinstance(x, ga.DefaultCredentialsError):
            return CREDENTIALS
        retryable = getattr(x, "retryable", False) or isinstance(x, ga.TransportError)
        return TRANSIENT if retryable else CREDENTIALS
    gr = _module("gcsfs.retry")
    if gr is not None and isinstance(x, gr.HttpError):
        return _status_kind(x.code)
    az = _module("azure.core.exceptions")
    if az is not None and isinstance(x, az.AzureError):
        ident = _module("azure.identity")
        if ident is not None and isinstance(x, ident.CredentialUnavailableError):
            return CREDENTIALS
        if isinstance(x, az.ClientAuthenticationError):
            return DENIED
        if isinstance(x, az.ResourceNotFoundError) and getattr(x, "error_code", None) == "ContainerNotFound":
            return NO_BUCKET
        if isinstance(x, az.HttpResponseError):
            return _status_kind(getattr(x, "status_code", None))
        if isinstance(x, az.ServiceResponseError):
            return TRANSIENT
        return None  # ServiceRequestError: the connection error it wraps decides
    return _os_kind(x, backend)


def _os_kind(x: BaseException, backend: str) -> str | None:
    """Kinds of the standard library's errors (by type and errno)."""
    if isinstance(x, PermissionError):
        return DENIED
    if isinstance(x, ConnectionRefusedError):
        return UNREACHABLE
    if isinstance(x, socket.gaierror):  # name resolution: "no such host" will not get better
        return TRANSIENT if x.errno in (socket.EAI_AGAIN,) else UNREACHABLE
    if isinstance(x, OSError):
        if x.errno == errno.ECONNREFUSED:
            return UNREACHABLE
        if x.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.ENAMETOOLONG, errno.ENOTDIR,
                       errno.EISDIR):
            return PERMANENT
        if x.errno is None and backend == "gcs" and str(x).startswith("Forbidden"):
            return DENIED  # gcsfs raises a bare OSError for HTTP 403: no type says it
        return None
    if isinstance(x, (TypeError, AttributeError, NotImplementedError, ImportError)):
        return PERMANENT  # a wrong option or a bug: the same every time
    return None


_CONDITION_CODES = ("PreconditionFailed", "ConditionalRequestConflict")
_CONDITION_TEXT = ("precondition", "412", "conditionalrequestconflict", "condition specified")


def _condition_failed(e: BaseException) -> bool:
    """Whether a compare-and-swap write was refused because the ref moved (per backend)."""
    bx, az = _module("botocore.exceptions"), _module("azure.core.exceptions")
    for x in _causes(e):
        if isinstance(x, FileExistsError):  # gcsfs (412), s3fs (If-None-Match)
            return True
        if (bx is not None and isinstance(x, bx.ClientError)
                and x.response.get("Error", {}).get("Code") in _CONDITION_CODES):
            return True
        if az is not None and isinstance(x, (az.ResourceModifiedError, az.ResourceExistsError)):
            return True
    text = str(e).lower().replace("-", "")  # a backend without a type for it
    return any(k in text for k in _CONDITION_TEXT)


def _describe(e: BaseException) -> str:
    """An error as one short line: its type and its text, whitespace collapsed."""
    text = " ".join(str(e).split())
    if len(text) > 300:
        text = text[:297] + "..."
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def _flock(lock: Path, what: str) -> int:
    """An exclusive ``flock`` on ``lock``: the kernel drops it when its holder dies, so a
    push killed in the middle leaves no lock that blocks the next one (an ``O_EXCL`` file
    would). The file is kept; if something removed it meanwhile, lock the new one."""
    for _attempt in range(3):
        fd = os.open(lock, os.O_CREAT | os.O_RDWR | os.O_NOFOLLOW, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RefConflict(f"{what} is being updated by another writer right now; retry") from None
        try:
            same = os.stat(lock, follow_symlinks=False).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)
    raise RefConflict(f"{what}: its lock file keeps being replaced; retry")


def mtime_of(info: dict) -> float:
    """A listing entry's modification time as epoch seconds, whatever the backend calls it."""
    for key in ("mtime", "LastModified", "last_modified", "updated", "timeCreated", "created"):
        value = info.get(key)
        if isinstance(value, datetime):
            return value.timestamp()
        if isinstance(value, int | float):
            return float(value)
        if isinstance(value, str):
            try:
                return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
            except ValueError:
                continue
    return 0.0


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
                                "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}).encode()
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
                started = time.monotonic()
                self.fs.put(self.rel, self.body)
                self._written = started
            seen = self.fs.list_detail("locks")
            mine = seen.get(self.rel)
            blocker = self.rel if mine is None else self._blocker(seen, mine)
            if blocker is None:
                self.server_now = mine[1]
                break
            if time.monotonic() > deadline:
                what = "a remote gc is running" if "/exclusive-" in blocker else "pushes are in progress"
                raise RemoteLocked(
                    f"remote {self.fs.url}: {what} ({blocker}); try again later. If no such command "
                    f"is running, the lock expires {self.STALE:.0f} s after it was last refreshed")
            if mine is not None and (not self.exclusive or "/exclusive-" in blocker):
                self._remove()  # give way, and come back after a pause
                self._written = 0.0
            time.sleep(min(0.05 * 2**attempt, 2.0) * random.uniform(0.5, 1.0))
            attempt += 1

    def _blocker(self, seen: dict[str, tuple[int, float]], mine: tuple[int, float]) -> str | None:
        """A live lock that keeps us from going on, or None."""
        for rel, (_size, mtime) in sorted(seen.items()):
            name = rel.rsplit("/", 1)[-1]
            if rel == self.rel or mine[1] - mtime > self.STALE or not name.endswith(".json"):
                continue
            if name.startswith("exclusive-"):
                if not self.exclusive or (mtime, rel) < (mine[1], self.rel):
                    return rel  # for gcs, the earlier exclusive lock wins
            elif self.exclusive and name.startswith("shared-"):
                return rel
        return None

    def _refresh(self) -> None:
        while not self._stop.wait(self.REFRESH):
            started = time.monotonic()
            try:
                self.fs.put(self.rel, self.body)
                self._written = started
            except DsError:
                pass  # the next tick tries again; check() stops the holder if it lasts

    def check(self) -> None:
        """Raise unless our lease is surely still honoured by everyone else."""
        if time.monotonic() - self._written > self.STALE / 2:
            raise RemoteLocked(f"remote {self.fs.url}: our lock could not be refreshed in time, so "
                               "another command may have taken over; nothing more was changed. "
                               + HINTS.get(self.fs.op or "", "Run the command again."))

    def _remove(self) -> None:
        try:
            self.fs.delete([self.rel])
        except DsError:
            pass  # left behind, it expires after STALE

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._remove()


def _endpoint(fs: Any, kind: str) -> str | None:
    """The URL an S3 or GCS filesystem sends its requests to, when it is plain to see (S3's
    default depends on botocore's configuration chain: region, profiles; not probed)."""
    if kind == "gcs":
        return getattr(fs, "_location", None)
    client = getattr(fs, "client_kwargs", None) or {}
    return (getattr(fs, "endpoint_url", None) or client.get("endpoint_url")
            or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL"))

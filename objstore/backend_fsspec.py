"""Backends over fsspec filesystems: one class per kind of storage (S3, GCS, Azure, any
other), each owning its compare-and-swap and the rules that tell its errors apart
(``classify``), and ``open_backend``, which picks the backend of a remote's URL. The class is
picked by the filesystem's protocol, so a wrapping filesystem that presents the protocol it
wraps (the tests' fault injector) gets that backend's class.
"""
from __future__ import annotations

import json
import os
import socket
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager, suppress
from datetime import datetime
from pathlib import Path
from typing import Any

from .backend import (
    CREDENTIALS,
    DENIED,
    NO_BUCKET,
    PERMANENT,
    TRANSIENT,
    UNREACHABLE,
    Backend,
    Info,
    LocalBackend,
    NotFound,
    Permanent,
    RefsByStat,
    Unsupported,
    backend_errors,
    causes,
    fsync_file,
    os_kind,
    status_kind,
)

PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


# A module only if something already imported it: an error cannot be an instance of a class
# that was never loaded, so classifying imports nothing.
_module = sys.modules.get


class FsspecBackend(RefsByStat):
    """Any fsspec filesystem, rooted at ``root``: reading and writing work, shared refs are
    refused (no compare-and-swap is known for it)."""

    kind = "other"
    PROTOCOLS: tuple[str, ...] = ()  # the fsspec protocols this class serves
    TOKEN: str | None = None  # the listing key that versions a file, for compare-and-swap

    def __init__(self, fs: Any, root: str):
        self.fs = fs
        self.root = root.rstrip("/")

    def path(self, rel: str) -> str:
        return f"{self.root}/{rel}" if rel else self.root

    def rel(self, path: str) -> str:
        return path[len(self.root) + 1:]

    # -- errors ------------------------------------------------------------------------
    @staticmethod
    def kind_of(x: BaseException) -> str | None:
        """The HTTP layer's types (aiohttp, under s3fs and gcsfs)."""
        ax = _module("aiohttp.client_exceptions")
        if ax is not None:
            if isinstance(x, ax.ClientConnectorCertificateError):
                return PERMANENT
            if isinstance(x, ax.ClientResponseError):
                return status_kind(x.status)
        return None

    @staticmethod
    def text_kind(x: BaseException) -> str | None:
        """A rule by message text, for an error of this backend that no type tells apart."""
        return None

    @staticmethod
    def refused(x: BaseException) -> bool:
        """Whether ``x`` says a conditional write found the file changed."""
        return isinstance(x, FileExistsError)

    def classify(self, e: BaseException) -> str:
        return classify(e, self.kind)

    def typed_errors(self) -> AbstractContextManager[None]:
        return backend_errors(self.classify)

    def endpoint(self) -> str | None:
        """The URL requests go to, when plain to see (for ``probe``)."""
        return None

    def probe(self) -> None:
        """One TCP connection to the endpoint before any request: a host that does not exist
        or refuses connections fails here at once (``Permanent`` UNREACHABLE), instead of
        after the storage library's own retries (gcsfs: six tries, half a minute). Skipped
        behind a proxy, where this machine may not resolve the host itself; a slow answer
        is left to the requests and their retries."""
        from urllib.parse import urlsplit

        endpoint = self.endpoint()
        if endpoint is None or any(os.environ.get(v) for v in PROXY_VARIABLES):
            return
        parts = urlsplit(endpoint)
        if not parts.hostname:
            return
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            socket.create_connection((parts.hostname, port), timeout=5).close()
        except (socket.gaierror, ConnectionRefusedError) as e:
            if self.classify(e) == UNREACHABLE:
                raise Permanent(UNREACHABLE, e, f"{parts.hostname}:{port}") from None
        except OSError:
            return  # a timeout or an odd network: the requests will say more

    # -- files -------------------------------------------------------------------------
    def list(self, prefix: str) -> dict[str, tuple[int, float]]:
        try:
            with self.typed_errors():
                found = self.fs.find(self.path(prefix), detail=True)
        except NotFound:
            return {}
        return {self.rel(p): (int(info.get("size") or 0), mtime_of(info)) for p, info in found.items()}

    def stat(self, rel: str) -> Info:
        with self.typed_errors():
            info = self.fs.info(self.path(rel), refresh=True)
        if info.get("type", "file") != "file":
            raise NotFound(rel)
        return Info(int(info["size"]), mtime_of(info), info[self.TOKEN] if self.TOKEN else None)

    def read(self, rel: str, start: int = 0, end: int | None = None) -> bytes:
        with self.typed_errors():
            if not start and end is None:
                return self.fs.cat_file(self.path(rel))
            return self.fs.cat_file(self.path(rel), start=start, end=end)

    def download(self, rel: str, dest: Path) -> None:
        with self.typed_errors():
            self.fs.get_file(self.path(rel), str(dest))

    def _send(self, path: str, data: bytes | Path) -> None:
        if isinstance(data, Path):
            self.fs.put_file(str(data), path)
        else:
            self.fs.pipe_file(path, data)

    def write(self, rel: str, data: bytes | Path) -> None:
        """One PUT: object stores publish it whole or not at all."""
        with self.typed_errors():
            self._send(self.path(rel), data)

    def delete(self, rels: list[str]) -> None:
        paths = [self.path(r) for r in rels]
        with self.typed_errors():
            try:
                self.fs.rm(paths)
            except FileNotFoundError:
                for p in paths:
                    with suppress(FileNotFoundError):
                        self.fs.rm_file(p)
            for p in paths:
                self.fs.invalidate_cache(p)

    def exists(self) -> bool:
        with self.typed_errors():
            return bool(self.fs.exists(self.root.split("/", 1)[0]))

    def swap_ref(self, rel: str, data: bytes, token: Any) -> None:
        raise Unsupported(f"shared refs need compare-and-swap, which objstore does not know how to do "
                          f"on {self.fs.protocol}")

    def _swap(self, rel: str, send: Callable[[str], None]) -> None:
        """Run a conditional write of ``rel`` (a failed condition is ``PreconditionFailed``); the
        listing cache forgets it either way."""
        try:
            with backend_errors(self.classify, self.refused):
                send(self.path(rel))
        finally:
            self.fs.invalidate_cache(self.path(rel))


_S3_DENIED = {"AccessDenied", "AccountProblem", "AllAccessDisabled", "InvalidAccessKeyId",
              "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken", "InvalidSecurity", "NotSignedUp"}
_S3_CREDENTIALS = ("NoCredentialsError", "PartialCredentialsError", "CredentialRetrievalError",
                   "ProfileNotFound", "TokenRetrievalError", "SSOError")
_S3_REFUSED = ("PreconditionFailed", "ConditionalRequestConflict")


class S3Backend(FsspecBackend):
    """S3: a swap sends ``If-Match: <etag>`` (``If-None-Match: *`` to create)."""

    kind, PROTOCOLS, TOKEN = "s3", ("s3", "s3a"), "ETag"

    @staticmethod
    def kind_of(x: BaseException) -> str | None:
        bx = _module("botocore.exceptions")
        if bx is None:
            return None
        if isinstance(x, tuple(getattr(bx, n) for n in _S3_CREDENTIALS if hasattr(bx, n))):
            return CREDENTIALS
        if isinstance(x, (bx.NoRegionError, bx.ParamValidationError)):
            return PERMANENT
        if isinstance(x, bx.ClientError):
            code = x.response.get("Error", {}).get("Code")
            if code in ("NoSuchBucket", "NoSuchContainer"):
                return NO_BUCKET
            if code in _S3_DENIED:
                return DENIED
            return status_kind(x.response.get("ResponseMetadata", {}).get("HTTPStatusCode"))
        return None  # connection errors and the like: what they wrap decides

    @staticmethod
    def refused(x: BaseException) -> bool:
        bx = _module("botocore.exceptions")
        return isinstance(x, FileExistsError) or (  # s3fs's answer to If-None-Match
            bx is not None and isinstance(x, bx.ClientError)
            and x.response.get("Error", {}).get("Code") in _S3_REFUSED)

    def endpoint(self) -> str | None:
        """S3's default endpoint depends on botocore's configuration chain (region,
        profiles): only an explicit one is probed."""
        client = getattr(self.fs, "client_kwargs", None) or {}
        return (getattr(self.fs, "endpoint_url", None) or client.get("endpoint_url")
                or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL"))

    def swap_ref(self, rel: str, data: bytes, token: Any) -> None:
        cond = {"IfMatch": token} if token is not None else {"IfNoneMatch": "*"}

        def send(path: str) -> None:
            bucket, key, _ = self.fs.split_path(path)
            self.fs.call_s3("put_object", Bucket=bucket, Key=key, Body=data, **cond)

        self._swap(rel, send)


class GCSBackend(FsspecBackend):
    """Google Cloud Storage: a swap uploads with ``ifGenerationMatch`` (0 to create)."""

    kind, PROTOCOLS, TOKEN = "gcs", ("gs", "gcs"), "generation"

    @staticmethod
    def text_kind(x: BaseException) -> str | None:
        if isinstance(x, OSError) and x.errno is None and str(x).startswith("Forbidden"):
            return DENIED  # gcsfs raises a bare OSError for HTTP 403: no type says it
        return None

    @staticmethod
    def kind_of(x: BaseException) -> str | None:
        ga = _module("google.auth.exceptions")
        if ga is not None and isinstance(x, ga.GoogleAuthError):
            if isinstance(x, ga.DefaultCredentialsError):
                return CREDENTIALS
            retryable = getattr(x, "retryable", False) or isinstance(x, ga.TransportError)
            return TRANSIENT if retryable else CREDENTIALS
        gr = _module("gcsfs.retry")
        if gr is not None and isinstance(x, gr.HttpError):
            return status_kind(x.code)
        return None

    def endpoint(self) -> str | None:
        return getattr(self.fs, "_location", None)

    def swap_ref(self, rel: str, data: bytes, token: Any) -> None:
        from urllib.parse import quote

        def send(path: str) -> None:
            bucket, key, _ = self.fs.split_path(path)
            head = json.dumps({"name": key})
            body = (f"--==0==\nContent-Type: application/json; charset=UTF-8\n\n{head}\n--==0==\n"
                    "Content-Type: text/plain\n\n").encode() + data + b"\n--==0==--"
            self.fs.call("POST", f"{self.fs._location}/upload/storage/v1/b/{quote(bucket)}/o",
                         uploadType="multipart", data=body, json_out=True, ifGenerationMatch=str(token or 0),
                         headers={"Content-Type": 'multipart/related; boundary="==0=="'})

        self._swap(rel, send)


class AzureBackend(FsspecBackend):
    """Azure Blob Storage: a swap sends the ETag with ``IfNotModified`` (or creates
    without overwriting)."""

    kind, PROTOCOLS, TOKEN = "azure", ("az", "abfs", "abfss"), "etag"

    @staticmethod
    def kind_of(x: BaseException) -> str | None:
        az = _module("azure.core.exceptions")
        if az is None or not isinstance(x, az.AzureError):
            return None
        ident = _module("azure.identity")
        if ident is not None and isinstance(x, ident.CredentialUnavailableError):
            return CREDENTIALS
        if isinstance(x, az.ClientAuthenticationError):
            return DENIED
        if isinstance(x, az.ResourceNotFoundError) and getattr(x, "error_code", None) == "ContainerNotFound":
            return NO_BUCKET
        if isinstance(x, az.HttpResponseError):
            return status_kind(getattr(x, "status_code", None))
        if isinstance(x, az.ServiceResponseError):
            return TRANSIENT
        return None  # ServiceRequestError: the connection error it wraps decides

    @staticmethod
    def refused(x: BaseException) -> bool:
        az = _module("azure.core.exceptions")
        return isinstance(x, FileExistsError) or (
            az is not None and isinstance(x, (az.ResourceModifiedError, az.ResourceExistsError)))

    def swap_ref(self, rel: str, data: bytes, token: Any) -> None:
        def send(path: str) -> None:
            if token is None:
                self.fs.pipe_file(path, data, mode="create")
                return
            from azure.core import MatchConditions

            self.fs.pipe_file(path, data, etag=token, match_condition=MatchConditions.IfNotModified)

        self._swap(rel, send)


KINDS: dict[str, type[FsspecBackend]] = {c.kind: c for c in (S3Backend, GCSBackend, AzureBackend)}
LOCAL_PROTOCOLS = {"file", "local"}


class FolderBackend(LocalBackend):
    """A folder reached through an fsspec filesystem that wraps fsspec's own (one presenting
    the local protocol, as the tests' fault injector does): ``LocalBackend``'s writes and
    fsyncs, with file writes, reads, listings and deletes run through that filesystem (the
    last three as ``FsspecBackend`` makes them). Compare-and-swap of a ref is
    ``LocalBackend``'s own ``flock`` on the folder itself: a lock must be the kernel's."""

    TOKEN = None
    list, stat, read = FsspecBackend.list, FsspecBackend.stat, FsspecBackend.read
    download = FsspecBackend.download

    def __init__(self, fs: Any, root: str):
        super().__init__(root.rstrip("/"))
        self.fs = fs

    def _makedirs(self, folder: str) -> None:
        """Through the filesystem, then checked as ``LocalBackend`` checks its own (the folders
        already there were checked before: nothing is created through a link)."""
        self.fs.makedirs(folder, exist_ok=True)
        self._guard(self.rel(folder) if folder != str(self.root) else "", whole=True)

    def delete(self, rels: list[str]) -> None:
        for rel in rels:
            self._guard(rel)  # never through a linked folder
        FsspecBackend.delete(self, rels)

    def _send(self, tmp: str, data: bytes | Path) -> None:
        FsspecBackend._send(self, tmp, data)  # the same requests as an fsspec write
        if self.durable:
            fsync_file(tmp)

    def _move(self, tmp: str, target: str) -> None:
        self.fs.mv(tmp, target)

    def _discard(self, tmp: str) -> None:
        with suppress(Exception):  # best effort: the write's own error is what matters
            self.fs.rm_file(tmp)


def open_backend(url: str, options: dict) -> Backend:
    """The backend of a remote's fsspec URL: a folder (a path, ``file://``) is a
    ``LocalBackend``, a filesystem wrapping one a ``FolderBackend``, any other the class of
    its protocol (``FsspecBackend`` when none is known)."""
    import fsspec
    from fsspec.implementations.local import LocalFileSystem

    fs, root = fsspec.core.url_to_fs(url, **options)
    if _protocols(fs) & LOCAL_PROTOCOLS:
        return LocalBackend(root) if isinstance(fs, LocalFileSystem) else FolderBackend(fs, root)
    return backend_class(fs)(fs, root)


def _protocols(fs: Any) -> set[str]:
    return set(fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,))


def backend_class(fs: Any) -> type[FsspecBackend]:
    """The backend class of an fsspec filesystem, by its protocol (``FsspecBackend`` if none)."""
    protocol = _protocols(fs)
    return next((c for c in KINDS.values() if protocol & set(c.PROTOCOLS)), FsspecBackend)


def classify(e: BaseException, backend: str = "other") -> str:
    """How to treat a storage error: TRANSIENT (retry), or CREDENTIALS, DENIED, NO_BUCKET,
    UNREACHABLE, PERMANENT (fail at once). Decided by the exception's type (and the codes
    SDKs attach to their types), never by message text where a type exists, outermost
    first through what it wraps: the type rules of ``backend`` first, then every other
    backend's (a wrapping filesystem may raise another's), the standard library's, then its
    own text rule; what no rule decides is transient."""
    own = KINDS.get(backend, FsspecBackend)
    rules = list(dict.fromkeys([own.kind_of, *(c.kind_of for c in (*KINDS.values(), FsspecBackend)),
                                os_kind, own.text_kind]))
    for x in causes(e):
        for rule in rules:
            kind = rule(x)
            if kind is not None:
                return kind
    return TRANSIENT


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

"""A small local stand-in for the ClearML ``Task`` behind a dataset (``dataset._task``).

ClearML scripts reach the dataset's task for artifacts, user properties, parameters, the
logger and the web page. All of it is kept in the dataset's record under ``task``::

    "task": {"artifacts": {NAME: {type, content_type, file, blob | url, size, sha256,
                                  timestamp, metadata, preview}},
             "properties": {NAME: {section, name, value, type?, description?}},
             "parameters": {"Section/name": "value"}, "configuration": {NAME: value},
             "reports": [REPORT, ...]}  # the logger's (dataset_logger)

An artifact's bytes are a blob kept with the version (``dataset_attachments``). As in
ClearML, a finalized dataset's task is completed and still takes artifacts, properties and
reports: each change is one record update, under the store lock, written atomically.
Such a change made after ``upload()`` reaches the remote with the next ``upload()``.

Types follow ClearML's ``upload_artifact``: a path to a file (kept as is) or to a folder
or wildcard (a zip), a dict (JSON, or YAML with ``extension_name=".yaml"``), a pandas
DataFrame (``.csv.gz``, or ``.parquet`` / ``.feather`` / ``.pickle``), a numpy array (``.npz``
or ``.csv.gz``), a PIL image (``.png``), a str (text, or a remote URL kept as a link),
anything else pickled (``auto_pickle``, on by default as in ClearML). A list that JSON
can hold is kept as JSON (ClearML would pickle it). Reading back never unpickles a
pickle this store did not make (see ``Artifact.get``).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import mimetypes
import os
import pickle
import re
import shutil
import sys
import tempfile
import warnings
import zipfile
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from . import dataset_attachments as blobs
from .dataset_logger import plain, reports_of, task_part, user_metadata
from .dataset_metadata import MARK, decode, is_dataframe, is_ndarray, read_parquet
from .errors import DsError, FormatError
from .fsutil import atomic_write
from .paths import check_name, check_relpath

if TYPE_CHECKING:
    from .dataset import Dataset
    from .dataset_logger import DatasetLogger
    from .store import Store

UI_PORT = 8484  # ``ds ui``'s default port
PREVIEW_CHARS = 16 * 1024
NAME_BYTES = 200  # a local copy's name (its suffix aside) is cut to this
_SUFFIX = re.compile(r"(\.[A-Za-z0-9]{1,8}){1,2}$")
REMOTE_SCHEMES = ("s3", "gs", "azure", "az", "http", "https")
TRUST_FILE = "trusted-pickles"  # blob hashes of pickles made in this store, one per line
REPORTS = "reports"  # the name get_metadata reads the logger's reports under
# a DataFrame artifact's suffix -> its content type (else ``.csv.gz``, "text/csv")
_FRAME_TYPES = {".parquet": "application/parquet", ".feather": "application/feather",
                ".pickle": "application/pickle"}


class Artifacts(dict):
    """The task's artifacts: ClearML's read-only ``artifacts`` mapping (a dict: ``isinstance(x, dict)``
    holds). ``get("reports")``, when no artifact or metadata has that name, gives the logger's
    reports as an artifact (not listed, not indexable): that is how ``Dataset.get_metadata("reports")``
    reads them back, as it did when they were kept as metadata."""

    def __init__(self, items: dict, reports: Callable[[], Artifact | None]):
        super().__init__(items)
        self._reports = reports

    def _refuse(self, *args: Any, **kwargs: Any) -> None:
        raise DsError("task.artifacts is read-only; add one with task.upload_artifact(name, object)")

    __setitem__ = __delitem__ = update = pop = popitem = setdefault = clear = _refuse  # type: ignore[assignment]

    def get(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
        if name == REPORTS and name not in self:
            found = self._reports()
            return default if found is None else found
        return super().get(name, default)


class Artifact:
    """One artifact, read-only, as ClearML's ``Artifact``: ``get()`` gives the object back."""

    _not_set = object()

    def __init__(self, store: Store, name: str, info: dict, inline: Any = _not_set):
        self._store = store
        self._name = name
        self._info = info
        self._inline = inline  # metadata kept as JSON in the record: no blob to read
        self._object: Any = self._not_set

    name = property(lambda self: self._name, doc="The artifact's name.")
    type = property(lambda self: self._info.get("type", ""), doc="ClearML's type: numpy, pandas, ...")
    mode = property(lambda self: "output")
    hash = property(lambda self: self._info.get("sha256"), doc="SHA-256 of the artifact's file.")
    size = property(lambda self: self._info.get("size"), doc="Bytes in the artifact's file.")
    preview = property(lambda self: self._info.get("preview", ""))

    @property
    def metadata(self) -> dict[str, str]:
        meta = self._info.get("metadata")
        return dict(meta) if isinstance(meta, dict) else {}

    @property
    def timestamp(self) -> datetime:
        try:
            return datetime.fromisoformat(str(self._info.get("timestamp")).replace("Z", "+00:00"))
        except ValueError:
            return datetime.fromtimestamp(0, UTC)

    @property
    def url(self) -> str | None:
        """A remote URL registered as the artifact, else the ``file://`` URL of its local copy."""
        if self._info.get("url"):
            return self._info["url"]
        path = self.get_local_copy(extract_archive=False, raise_on_error=True)
        return Path(path).as_uri()

    def _what(self) -> str:
        return f"artifact {self._name!r}"

    def get_local_copy(self, extract_archive: bool = True, raise_on_error: bool = False,
                       force_download: bool = False) -> str | None:
        """The path of a read-only local copy (an archive: its extracted folder, if asked).

        On failure ClearML returns None (raising only with ``raise_on_error``); so does this,
        with a warning saying why.
        """
        try:
            return str(self._local_copy(extract_archive, force_download))
        except DsError as e:
            if raise_on_error:
                raise
            warnings.warn(str(e), stacklevel=2)
            return None

    def _local_copy(self, extract_archive: bool, force: bool) -> Path:
        if self._info.get("url") and not blobs.is_ref(self._info.get("blob")):
            raise DsError(f"{self._what()} is a link to {self._info['url']}; only the URL is kept: "
                          "read it from there (fsspec, StorageManager)")
        if self._inline is not self._not_set:
            return self._inline_copy(force)
        ref = self._info.get("blob")
        # the record may come from a remote: its hash names a folder only once it is checked
        folder = self._store.path / "cache" / "artifacts" / self._blob_hash()
        dest = folder / _file_name(self._info.get("file"), self._name)
        if force or not dest.is_file():
            blobs.write_to(self._store, ref, dest, self._what())
        if extract_archive and self.type == "archive":
            return _extract(dest, folder / "extracted", force, self._what())
        return dest

    def _blob_hash(self) -> str:
        """The artifact's content hash, from a reference checked first (FormatError if damaged)."""
        ref = self._info.get("blob")
        if not blobs.is_ref(ref):
            raise FormatError(f"{self._what()} has no stored content; upload it again")
        return blobs.entry_of(self._store, ref, self._what()).hash.hex()

    def _inline_copy(self, force: bool) -> Path:
        data = json.dumps(self._inline, sort_keys=True, indent=4).encode()
        digest = hashlib.sha256(data).hexdigest()
        dest = self._store.path / "cache" / "artifacts" / digest / f"{_file_name(None, self._name)}.json"
        if force or not dest.is_file():
            dest.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(dest, data, durable=False)
        return dest

    def get(self, force_download: bool = False,
            deserialization_function: Callable[[bytes], Any] | None = None,
            block_unsafe_artifacts: bool = False) -> Any:
        """The object: ndarray, DataFrame, PIL image, dict/list, str; else a Path to a local copy.

        A pickle (a ``pickle`` artifact, a DataFrame kept as ``.pickle``) is loaded only if it
        was made in this store: one that arrived from elsewhere could run any code when
        unpickled, so it is refused unless you pass ``deserialization_function=pickle.loads``
        yourself. ``block_unsafe_artifacts=True`` refuses every pickle.
        """
        if self._object is not self._not_set and not force_download:
            return self._object
        if self._inline is not self._not_set:
            self._object = self._inline
        elif self._info.get("metadata_kind") in ("pandas", "numpy"):
            self._object = decode(self._store, self._info.get("stored"), self._name)
        else:
            local = self._local_copy(extract_archive=True, force=force_download)
            self._object = (self._load(local, block_unsafe_artifacts) if deserialization_function is None
                            else deserialization_function(local.read_bytes()))
        return self._object

    def _load(self, local: Path, block_pickles: bool) -> Any:
        kind, ctype = self.type, self._info.get("content_type") or ""
        try:
            if kind == "numpy":
                import numpy as np

                if ctype == "text/csv":
                    with _open_text(local) as f:
                        return np.genfromtxt(f, delimiter=",")
                with np.load(local, allow_pickle=False) as npz:
                    return npz[self._name] if self._name in npz else npz[npz.files[0]]
            if kind == "pandas":
                import pandas as pd

                if ctype == "application/parquet":
                    return read_parquet(local)
                if ctype == "application/feather":
                    return pd.read_feather(local)
                if ctype == "application/pickle":
                    self._check_pickle(block_pickles)
                    return pd.read_pickle(local)
                return pd.read_csv(local, index_col=[0], compression=_compression(local))
            if kind == "image":
                from PIL import Image

                return Image.open(local)
            if kind in ("dict", "JSON"):
                if ctype == "application/yaml":
                    import yaml

                    return yaml.safe_load(local.read_text("utf-8"))
                return json.loads(local.read_text("utf-8"))
            if kind == "string":
                return local.read_text("utf-8")
            if kind == "pickle":
                self._check_pickle(block_pickles)
                with open(local, "rb") as f:
                    return pickle.load(f)
        except ImportError:
            pass  # the library that reads it is not installed: the file itself, as ClearML gives
        return local

    def _check_pickle(self, block: bool) -> None:
        if block:
            raise DsError(f"{self._what()} is a pickle and block_unsafe_artifacts=True; read its file "
                          "with get_local_copy() instead")
        if not _trusted(self._store, self._blob_hash()):
            raise DsError(f"{self._what()} is a pickle that was not made in this store (it came from a "
                          "remote or another store), and unpickling runs any code it holds; if you trust its "
                          "source, call get(deserialization_function=pickle.loads)")

    def __repr__(self) -> str:
        return repr({"name": self.name, "size": self.size, "type": self.type, "mode": self.mode,
                     "url": self._info.get("url"), "hash": self.hash, "timestamp": self.timestamp,
                     "metadata": self.metadata, "preview": self.preview})


class DatasetTask:
    """What ClearML scripts use of a dataset's task, kept with the dataset version."""

    def __init__(self, dataset: Dataset):
        self._ds = dataset

    # -- identity ----------------------------------------------------------------------
    @property
    def id(self) -> str:
        return self._ds.id

    task_id = id

    @property
    def name(self) -> str:
        return self._ds.name

    def get_project_name(self) -> str:
        return self._ds.project

    @property
    def status(self) -> str:
        """ClearML's task status: a draft's task is in progress, a finalized one's completed."""
        return {"draft": "in_progress"}.get(self._ds._reload()["status"], "completed")

    def get_status(self) -> str:
        return self.status

    @property
    def comment(self) -> str:
        return self._ds.description

    def get_logger(self) -> DatasetLogger:
        return self._ds.get_logger()

    def get_tags(self) -> list[str]:
        return self._ds.tags

    def add_tags(self, tags: str | Iterable[str]) -> None:
        """The dataset's tags (a ClearML dataset's tags are its task's)."""
        self._ds.add_tags(tags.split(" ") if isinstance(tags, str) else list(tags))

    def set_comment(self, comment: str) -> None:
        self._ds.set_description(comment)

    # -- what the logger kept, read back as ClearML's task gives it ----------------------
    def _reports(self, kind: str) -> list[dict]:
        return [r for r in reports_of(self._ds._reload()) if r.get("kind") == kind]

    def get_reported_scalars(self, max_samples: int = 0, x_axis: str = "iter") -> dict[str, Any]:
        """``{title: {series: {"x": [iterations], "y": [values]}}}``, in reporting order."""
        if x_axis != "iter":
            raise DsError("get_reported_scalars: only x_axis='iter' is kept here (no report times)")
        out: dict[str, Any] = {}
        for r in self._reports("scalar"):
            xy = out.setdefault(str(r.get("title")), {}).setdefault(str(r.get("series")), {"x": [], "y": []})
            xy["x"].append(r.get("iteration"))
            xy["y"].append(r.get("value"))
        return out

    def get_last_scalar_metrics(self) -> dict[str, Any]:
        """``{title: {series: {"last", "min", "max"}}}``."""
        out: dict[str, Any] = {}
        for title, series in self.get_reported_scalars().items():
            for name, xy in series.items():
                nums = [y for y in xy["y"] if isinstance(y, int | float)]
                out.setdefault(title, {})[name] = {"last": xy["y"][-1], "min": min(nums, default=None),
                                                   "max": max(nums, default=None)}
        return out

    def get_reported_single_values(self) -> dict[str, Any]:
        return {str(r.get("series")): r.get("value") for r in self._reports("single_value")}

    def get_reported_single_value(self, name: str) -> Any:
        return self.get_reported_single_values().get(name)

    def get_output_log_web_page(self) -> str:
        """Where ``ds ui`` (on its default port; ``ds ui --port`` moves it) shows this version."""
        return f"http://127.0.0.1:{UI_PORT}/#dataset={self.id}"

    def flush(self, wait_for_uploads: bool = False) -> bool:
        return True

    def mark_completed(self, *args: Any, **kwargs: Any) -> None:
        """Accepted: the dataset's ``finalize()`` completes its task."""

    def close(self) -> None:
        """Accepted: nothing stays open."""

    # -- the record ------------------------------------------------------------------------
    def _read(self, key: str) -> dict:
        task = self._ds._reload().get("task")
        value = task.get(key) if isinstance(task, dict) else None
        return value if isinstance(value, dict) else {}

    def _update(self, key: str, change: Callable[[dict], Any], publish: bool = True) -> Any:
        """Apply ``change`` to one section of the task under the store lock, then save the
        record; ``publish``: then send it to the remotes of a finalized, uploaded version
        (never while a caller holds the lock: a network push would block every writer)."""
        store = self._ds._store
        with store.locked():
            result = change(task_part(self._ds._reload(), key, dict))
            self._ds._save()
        if publish:
            self._ds._publish_record()
        return result

    # -- artifacts ---------------------------------------------------------------------
    @property
    def artifacts(self) -> Artifacts:
        """name -> Artifact: uploaded artifacts, and metadata set with ``set_metadata`` (in
        ClearML metadata is an artifact of the same task)."""
        record = self._ds._reload()
        store = self._ds._store
        out = {name: _metadata_artifact(store, name, value) for name, value in user_metadata(record).items()}
        out.update((name, Artifact(store, name, info)) for name, info in self._read("artifacts").items()
                   if isinstance(info, dict))

        def reports() -> Artifact | None:
            kept = reports_of(record)
            if not kept:
                return None
            return Artifact(store, REPORTS, {"type": "JSON", "content_type": "application/json",
                                             "file": f"{REPORTS}.json", "preview": f"{len(kept)} reports"},
                            inline=kept)

        return Artifacts(out, reports)

    def upload_artifact(self, name: str, artifact_object: Any, metadata: Mapping | None = None,
                        delete_after_upload: bool = False, auto_pickle: bool | None = None,
                        preview: Any = None, wait_on_upload: bool = False, extension_name: str | None = None,
                        serialization_function: Callable[[Any], bytes | bytearray] | None = None,
                        retries: int = 0, sort_keys: bool = True) -> bool:
        """Keep ``artifact_object`` with the dataset version under ``name`` (replacing one of that
        name); returns True, as ClearML does once the upload is done. Unsupported types raise."""
        if not isinstance(name, str) or not name:
            raise DsError("upload_artifact needs a non-empty name")
        store = self._ds._store
        with tempfile.TemporaryDirectory(prefix="ds-artifact-") as tmp:
            made = _serialize(name, artifact_object, Path(tmp), auto_pickle, extension_name,
                              serialization_function, sort_keys)
            info = {"type": made.type, "content_type": made.content_type, "file": made.file,
                    "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                    "metadata": {str(k): str(v) for k, v in (metadata or {}).items()},
                    "preview": _cut(str(preview) if preview is not None and preview is not False
                                    else made.preview)}
            with store.locked():
                if made.path is not None:
                    info["blob"] = blobs.put_file(store, made.path)
                    info["size"] = made.path.stat().st_size
                    info["sha256"] = _sha256(made.path)
                    if made.type == "pickle" or made.content_type == "application/pickle":
                        _trust(store, info["blob"]["hash"])
                else:
                    info["url"] = made.url
                self._update("artifacts", lambda arts: arts.__setitem__(name, info), publish=False)
            self._ds._publish_record()
        if delete_after_upload and made.source is not None:
            with contextlib.suppress(OSError):
                os.unlink(made.source)
        return True

    # -- user properties ---------------------------------------------------------------
    def set_user_properties(self, *iterables: Mapping | Iterable[dict], **properties: Any) -> bool:
        """ClearML's forms: ``name=value``, ``name={"value": ..., "description": ..., "type": ...}``,
        a mapping of those, or dicts each with ``name`` and ``value``. Values are kept as text."""
        items = [_property(n, v) for n, v in properties.items()]
        for it in iterables:
            if isinstance(it, Mapping) and not ("name" in it and "value" in it):
                items.extend(_property(n, v) for n, v in it.items())
            elif isinstance(it, Mapping):
                items.append(_property(None, it))
            else:
                for one in it:
                    items.append(_property(None, one) if isinstance(one, Mapping) else _property(*one))
        self._update("properties", lambda props: props.update((item["name"], item) for item in items))
        return True

    def get_user_properties(self, value_only: bool = False) -> dict[str, Any]:
        props = {n: dict(v) for n, v in self._read("properties").items() if isinstance(v, dict)}
        return {n: v.get("value") for n, v in props.items()} if value_only else props

    def delete_user_properties(self, *iterables: Iterable[Any]) -> bool:
        """Each entry: a dict with ``section`` and ``name``, or a (section, name) pair."""
        names = set()
        for it in iterables:
            for one in it:
                if isinstance(one, Mapping):
                    section, name = one.get("section"), one.get("name")
                else:
                    section, name = tuple(one)[:2]
                if section == "properties":
                    names.add(str(name))
        self._update("properties", lambda props: [props.pop(n, None) for n in names])
        return True

    # -- parameters (light: kept and given back, never overridden remotely) -------------
    def connect(self, mutable: Any, name: str | None = None, ignore_remote_overrides: bool = False) -> Any:
        """Keep a dict's (or an object's public attributes', or an argparse parser's defaults)
        values as parameters under section ``name`` (default ``General``); returns ``mutable``."""
        import argparse

        section = name or "General"
        if isinstance(mutable, argparse.ArgumentParser):
            section = name or "Args"
            values = {a.dest: a.default for a in mutable._actions if a.dest != "help"}
        elif isinstance(mutable, Mapping):
            values = dict(mutable)
        else:
            values = {k: v for k, v in vars(mutable).items()
                      if not k.startswith("_") and not callable(v)} if hasattr(mutable, "__dict__") else {}
        flat = _flatten(values, section)
        self._update("parameters", lambda params: params.update(flat))
        return mutable

    def connect_configuration(self, configuration: Any, name: str | None = None,
                              description: str | None = None, ignore_remote_overrides: bool = False) -> Any:
        """Keep a configuration dict/list (or a file's text); returns it unchanged."""
        value: Any = configuration
        if isinstance(configuration, str | Path):
            path = Path(configuration)
            value = path.read_text("utf-8", errors="replace") if path.is_file() else str(configuration)
        kept = plain(value)
        self._update("configuration", lambda conf: conf.__setitem__(name or "General", kept))
        return configuration

    def get_configuration_object(self, name: str) -> str | None:
        value = self._read("configuration").get(name)
        return None if value is None else (value if isinstance(value, str) else json.dumps(value))

    def get_parameters(self, backwards_compatibility: bool = True, cast: bool = False) -> dict[str, Any]:
        """``{"Section/name": value}``; values are text unless ``cast``."""
        params = self._read("parameters")
        return {k: _cast(v) if cast else v for k, v in params.items()}

    def get_parameters_as_dict(self, cast: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in self.get_parameters(cast=cast).items():
            section, _, rest = key.partition("/")
            out.setdefault(section, {})[rest] = value
        return out

    def get_parameter(self, name: str, default: Any = None, cast: bool = False) -> Any:
        value = self.get_parameters(cast=cast).get(name)
        return default if value is None else value

    def set_parameter(self, name: str, value: Any, description: str | None = None,
                      value_type: Any = None) -> None:
        self.set_parameters({name: value})

    def set_parameters(self, *args: Any, **kwargs: Any) -> None:
        values: dict[str, Any] = {}
        for a in args:
            values.update(dict(a))
        values.update(kwargs)
        flat = {k if "/" in k else f"General/{k}": _text(v) for k, v in values.items()}
        self._update("parameters", lambda params: params.update(flat))


# -- serializing ----------------------------------------------------------------------
class _Made:
    """What ``_serialize`` produced: a file to keep (or a URL), and how ClearML labels it."""

    def __init__(self, type_: str, content_type: str | None, file: str, path: Path | None,
                 preview: str = "", url: str | None = None, source: Path | None = None):
        self.type, self.content_type, self.file, self.path = type_, content_type, file, path
        self.preview, self.url, self.source = preview, url, source


def _serialize(name: str, obj: Any, tmp: Path, auto_pickle: bool | None, ext: str | None,
               serialization_function: Callable[[Any], bytes | bytearray] | None,
               sort_keys: bool) -> _Made:
    """ClearML's choice of file for an artifact object (see the module docstring)."""
    auto_pickle = True if auto_pickle is None else auto_pickle
    out = tmp / "artifact"
    if isinstance(obj, str) and obj and len(obj) < 2048:
        with contextlib.suppress(OSError, ValueError):
            p = Path(obj).expanduser()
            if p.exists() or (("*" in obj or "?" in obj) and p.parent.is_dir()):
                obj = p
    if serialization_function is not None:
        out.write_bytes(bytes(serialization_function(obj)))
        return _Made("custom", _guess(name + (ext or "")), name + (ext or ""), out, _repr(obj))
    if ext == ".pkl":
        return _pickled(name, obj, out)
    if is_ndarray(obj):
        return _numpy(name, obj, out, ext, auto_pickle)
    if is_dataframe(obj):
        return _frame(name, obj, out, ext)
    if _is_pil(obj):
        suffix = ext if ext and ext.startswith(".") else ".png"
        fmt = {".jpg": "JPEG", ".jpeg": "JPEG"}.get(suffix.lower())
        obj.save(out.with_suffix(suffix), format=fmt)
        desc = repr(obj)
        return _Made("image", _guess(name + suffix) or "image/unknown-type", name + suffix,
                     out.with_suffix(suffix), desc[1:desc.find(" at ")] if " at " in desc else desc)
    if isinstance(obj, dict):
        return _mapping(name, obj, out, ext, auto_pickle, sort_keys)
    if isinstance(obj, Path):
        return _path(name, obj, out)
    if isinstance(obj, list | tuple) and obj and all(isinstance(p, Path) for p in obj):
        return _zip(name + ".zip", obj, out, None)
    if isinstance(obj, str) and obj and len(obj) < 4096 and obj.partition("://")[0] in REMOTE_SCHEMES \
            and "://" in obj:
        return _Made("custom", _guess(obj), obj.rstrip("/").rpartition("/")[2] or name, None, "", url=obj)
    if isinstance(obj, str) and obj:
        out.write_text(obj, "utf-8")
        return _Made("string", "text/plain", name + ".txt", out, obj)
    if isinstance(obj, list):
        try:
            out.write_text(json.dumps(obj, sort_keys=sort_keys, indent=4), "utf-8")
            return _Made("JSON", "application/json", name + ".json", out, out.read_text("utf-8"))
        except (TypeError, ValueError):
            pass
    if obj is None or (isinstance(obj, str) and not obj) or auto_pickle:
        return _pickled(name, obj, out)
    raise DsError(f"artifact {name!r}: type {type(obj).__name__} is not supported; pass auto_pickle=True "
                  "to keep it pickled, or convert it to a dict, DataFrame, array, image or file")


def _pickled(name: str, obj: Any, out: Path) -> _Made:
    with open(out, "wb") as f:
        pickle.dump(obj, f)
    return _Made("pickle", "application/pickle", name + ".pkl", out, _repr(obj))


def _numpy(name: str, arr: Any, out: Path, ext: str | None, auto_pickle: bool) -> _Made:
    import numpy as np

    if arr.dtype.hasobject:  # would be pickled inside the .npz: keep it as a pickle, plainly
        return _pickled(name, arr, out)
    if ext == ".csv.gz":
        np.savetxt(out.with_suffix(".gz"), arr, delimiter=",")
        return _Made("numpy", "text/csv", name + ".csv.gz", out.with_suffix(".gz"), _repr(arr))
    path = out.with_suffix(".npz")
    # np.savez_compressed(path, **{name: arr}), without its keyword clash for a name like "file"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as zf, \
            zf.open(f"{name}.npy", "w", force_zip64=True) as member:
        np.lib.format.write_array(member, np.asanyarray(arr), allow_pickle=False)
    return _Made("numpy", "application/numpy", name + ".npz", path, _repr(arr))


def _frame(name: str, frame: Any, out: Path, ext: str | None) -> _Made:
    import pandas as pd

    multi = isinstance(frame.index, pd.MultiIndex) or isinstance(frame.columns, pd.MultiIndex)
    ext = ext if ext in _FRAME_TYPES else ".csv.gz"
    if multi and ext == ".csv.gz":
        return _pickled(name, frame, out)
    path = out.with_suffix(".data")
    ctype = _FRAME_TYPES.get(ext, "text/csv")
    if ext in _FRAME_TYPES:
        getattr(frame, "to_" + ext[1:])(path)  # to_parquet, to_feather, to_pickle
    else:
        with gzip.GzipFile(path, "wb", mtime=0) as gz, io.TextIOWrapper(gz, "utf-8") as text:
            frame.to_csv(text)
    return _Made("pandas", ctype, name + ext, path, _repr(frame))


def _mapping(name: str, obj: dict, out: Path, ext: str | None, auto_pickle: bool, sort_keys: bool) -> _Made:
    try:
        if ext == ".yaml":
            import yaml

            text = yaml.dump(obj, sort_keys=sort_keys, indent=4)
            ctype, suffix = "application/yaml", ".yaml"
        else:
            text = json.dumps(obj, sort_keys=sort_keys, indent=4)
            ctype, suffix = "application/json", ".json"
    except (TypeError, ValueError, ImportError) as e:
        if auto_pickle:
            return _pickled(name, obj, out)
        raise DsError(f"artifact {name!r}: the dict cannot be written as {ext or '.json'} ({e}); "
                      "pass auto_pickle=True or make it JSON-serialisable") from None
    out.write_text(text, "utf-8")
    return _Made("dict", ctype, name + suffix, out, text)


def _path(name: str, p: Path, out: Path) -> _Made:
    p = p.expanduser().absolute()
    if p.is_file():
        st = p.stat()
        return _Made("custom", _guess(p.name), p.name, p, f"{p.name} - {st.st_size} bytes\n", source=p)
    if p.is_dir():
        return _zip(p.name + ".zip", sorted(f for f in p.rglob("*")), out, p)
    if ("*" in p.name or "?" in p.name) and p.parent.is_dir():
        return _zip(p.parent.name + ".zip", sorted(p.parent.rglob(p.name)), out, p.parent)
    raise DsError(f"artifact {name!r}: {p} could not be found; give an existing file or folder")


def _zip(file: str, files: list[Path], out: Path, root: Path | None) -> _Made:
    """A folder, wildcard or list of files as a zip (ClearML's ``archive``), names relative to ``root``."""
    files = [f.expanduser().absolute() for f in files]
    regular = [f for f in files if f.is_file()]
    if root is None:
        root = Path(os.path.commonpath([str(f.parent) for f in regular])) if regular else Path("/")
    path = out.with_suffix(".zip")
    lines = [f"Archive content {root.as_posix()}:"]
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
        for f in sorted(regular):
            rel = f.relative_to(root).as_posix()
            lines.append(f"{rel} - {f.stat().st_size} bytes")
            zf.write(f, arcname=rel)
    return _Made("archive", "application/zip", file, path, "\n".join(lines) + "\n")


def _extract(archive: Path, dest: Path, force: bool, what: str) -> Path:
    """Unpack a zip into ``dest`` (built beside it, then renamed); every member name is
    checked first, so an archive from a remote cannot write outside ``dest``."""
    if dest.is_dir() and not force:
        return dest
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=dest.parent))
    try:
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                name = info.filename.rstrip("/")
                check_relpath(name, what)
                if (info.external_attr >> 16) & 0o170000 == 0o120000:
                    raise DsError(f"{what}: the archive holds a symbolic link ({name}); refused")
                target = tmp / name
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(target, "xb") as out:
                    shutil.copyfileobj(src, out)
    except (zipfile.BadZipFile, OSError) as e:  # not a zip; a name twice, or both file and folder
        shutil.rmtree(tmp, ignore_errors=True)
        raise DsError(f"{what} is not an archive that can be unpacked ({e}); upload it again") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if force:
        shutil.rmtree(dest, ignore_errors=True)
    try:
        os.replace(tmp, dest)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not dest.is_dir():
            raise
        # another process unpacked it first: the same bytes, so its copy serves
    return dest


# -- helpers ---------------------------------------------------------------------------
def _metadata_artifact(store: Store, name: str, stored: Any) -> Artifact:
    """``set_metadata`` values seen as ClearML sees them: artifacts of the task."""
    if isinstance(stored, dict) and stored.get(MARK) in ("pandas", "numpy"):
        kind = stored[MARK]
        blob = stored.get("blob") if blobs.is_ref(stored.get("blob")) else None
        info = {"type": kind, "file": f"{name}.{stored.get('format', 'bin')}", "blob": blob,
                "content_type": "application/parquet" if kind == "pandas" else "application/x-npy",
                "size": blob["size"] if blob else None, "metadata_kind": kind, "stored": stored,
                "preview": f"{kind} {stored.get('shape')}"}
        return Artifact(store, name, info)
    value = decode(store, stored, name)
    return Artifact(store, name, {"type": "dict" if isinstance(value, dict) else "JSON",
                                  "content_type": "application/json", "file": f"{name}.json",
                                  "preview": _cut(json.dumps(value))}, inline=value)


def _property(name: Any, value: Any) -> dict:
    """One user property in ClearML's shape, every field as text."""
    if isinstance(value, Mapping):
        item = {str(k): None if v is None else _text(v) for k, v in value.items()}
        if name is not None:
            item["name"] = str(name)
        if "value" not in item:
            raise DsError(f"user property {item.get('name')!r} needs a 'value'")
    else:
        item = {"name": str(name), "value": _text(value)}
    if not item.get("name"):
        raise DsError(f"user property {value!r} needs a name")
    item["section"] = "properties"
    return item


def _text(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


def _flatten(values: Mapping, prefix: str) -> dict[str, str]:
    out = {}
    for k, v in values.items():
        key = f"{prefix}/{k}"
        if isinstance(v, Mapping) and v:
            out.update(_flatten(v, key))
        else:
            out[key] = _text(v)
    return out


def _cast(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    for parse in (int, float):
        with contextlib.suppress(ValueError):
            return parse(value)
    return {"True": True, "False": False, "None": None}.get(value, value)


def _file_name(file: Any, name: str) -> str:
    """A safe single file name for the local copy (names from a record are untrusted).

    An unsafe one (an artifact named ``raw/metadata``, ``..``) is made safe keeping its suffix
    (``.csv.gz``): some readers choose how to read a file by it."""
    candidate = file if isinstance(file, str) and file else name
    with contextlib.suppress(DsError):
        return check_name(candidate)
    clean = "".join("_" if c in "/\\" or not c.isprintable() else c for c in candidate)
    found = _SUFFIX.search(clean)
    suffix = found.group(0) if found else ""
    stem = clean[: len(clean) - len(suffix)].encode()[:NAME_BYTES].decode("utf-8", "ignore")
    with contextlib.suppress(DsError):
        return check_name(stem + suffix)
    return "artifact" + suffix


def _compression(path: Path) -> str | None:
    """"gzip" when the file is gzip data, whatever its name says."""
    with open(path, "rb") as f:
        return "gzip" if f.read(2) == b"\x1f\x8b" else None


def _open_text(path: Path) -> IO[str]:
    if _compression(path):
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def _guess(name: str) -> str | None:
    return mimetypes.guess_type(name)[0]


def _is_pil(obj: Any) -> bool:
    image = sys.modules.get("PIL.Image")
    return image is not None and isinstance(obj, image.Image)


def _repr(obj: Any) -> str:
    try:
        return _cut(repr(obj))
    except Exception:  # a broken __repr__ must not fail an upload
        return ""


def _cut(text: str) -> str:
    return text if len(text) <= PREVIEW_CHARS else text[:PREVIEW_CHARS] + "\n…"


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _trust(store: Store, blob_hash: str) -> None:
    """Note a pickle made here (caller holds the lock): ``get`` may load it."""
    path = store.path / TRUST_FILE
    known = set(path.read_text("ascii").split()) if path.is_file() else set()
    if blob_hash not in known:
        atomic_write(path, "".join(f"{h}\n" for h in sorted(known | {blob_hash})).encode())


def _trusted(store: Store, blob_hash: str) -> bool:
    path = store.path / TRUST_FILE
    return bool(blob_hash) and path.is_file() and blob_hash in path.read_text("ascii").split()

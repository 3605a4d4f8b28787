"""How ``Dataset.set_metadata`` values are kept in the dataset's record.

ClearML keeps metadata as task artifacts and gives the same type back. Here:
- JSON values (dict, list, str, numbers, bool, None) stay in the record as they are;
- a pandas DataFrame is stored as Parquet and a numpy array as ``.npy``, each a blob kept
  with the version (``dataset_attachments``), the record holding a small marker
  ``{"$ds": "pandas" | "numpy", "blob": REF, ...}``; ``get_metadata`` reads them back as
  an equal DataFrame / array (dtype and shape included);
- a JSON dict that has a ``"$ds"`` key of its own is wrapped (``{"$ds": "json", "value": ...}``),
  so no value is ever mistaken for a marker.
Anything else is refused: ClearML would pickle it, and a pickle read back from a store that
came from a remote could run code (docs/security.md: what a remote sends is data).
Reading never unpickles: ``.npy`` is loaded with ``allow_pickle=False``.
"""

from __future__ import annotations

import io
import json
import sys
from typing import Any

from . import dataset_attachments as blobs
from .errors import DsError
from .store import Store

MARK = "$ds"
SUPPORTED = ("JSON values (dict, list, str, int, float, bool, None), pandas.DataFrame (kept as Parquet) "
             "and numpy.ndarray (kept as .npy)")


def is_dataframe(value: Any) -> bool:
    pd = sys.modules.get("pandas")
    return pd is not None and isinstance(value, pd.DataFrame)


def is_ndarray(value: Any) -> bool:
    np = sys.modules.get("numpy")
    return np is not None and isinstance(value, np.ndarray)


def encode(store: Store, name: str, value: Any) -> Any:
    """The record form of a metadata value (raises DsError for a type it cannot keep)."""
    if is_dataframe(value):
        return _encode_frame(store, name, value)
    if is_ndarray(value):
        return _encode_array(store, name, value)
    try:
        json.dumps(value, allow_nan=True)
    except (TypeError, ValueError) as e:
        raise DsError(f"metadata {name!r} is a {type(value).__name__}, which cannot be kept ({e}); "
                      f"supported: {SUPPORTED}. Convert it first, or keep it as an artifact "
                      "(dataset._task.upload_artifact)") from None
    if isinstance(value, dict) and MARK in value:
        return {MARK: "json", "value": value}
    return value


def _encode_frame(store: Store, name: str, frame: Any) -> dict:
    buf = io.BytesIO()
    try:
        frame.to_parquet(buf)
    except ImportError as e:
        raise DsError(f"metadata {name!r}: a DataFrame is kept as Parquet, which needs pyarrow ({e}); "
                      "pip install pyarrow") from None
    except Exception as e:  # pyarrow refuses some frames: non-string column names, mixed objects
        raise DsError(f"metadata {name!r}: this DataFrame cannot be stored as Parquet ({e}); "
                      "give it plain column types (numbers, text, dates, categories)") from None
    ref = blobs.put_bytes(store, buf.getvalue())
    return {MARK: "pandas", "format": "parquet", "blob": ref, "shape": list(frame.shape),
            "columns": [str(c) for c in list(frame.columns)[:200]]}


def _encode_array(store: Store, name: str, array: Any) -> dict:
    import numpy as np

    if array.dtype.hasobject:
        raise DsError(f"metadata {name!r}: a numpy array of Python objects can only be kept by pickling "
                      "it, which is refused; convert it to a numeric or string dtype")
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    ref = blobs.put_bytes(store, buf.getvalue())
    return {MARK: "numpy", "format": "npy", "blob": ref, "shape": list(array.shape),
            "dtype": str(array.dtype)}


def decode(store: Store, stored: Any, name: str | None = None) -> Any:
    """The value ``encode`` was given (an equal DataFrame or array for a blob)."""
    if not isinstance(stored, dict) or MARK not in stored:
        return stored
    kind = stored[MARK]
    what = f"metadata {name!r}" if name else "dataset metadata"
    if kind == "json":
        return stored.get("value")
    if kind == "pandas":
        return read_parquet(io.BytesIO(blobs.read_bytes(store, stored.get("blob"), what)))
    if kind == "numpy":
        import numpy as np

        data = blobs.read_bytes(store, stored.get("blob"), what)
        try:
            return np.load(io.BytesIO(data), allow_pickle=False)
        except ValueError as e:
            raise DsError(f"{what} is not a plain .npy array ({e}); set it again") from None
    raise DsError(f"{what} is kept as {kind!r}, which this objstore does not know; upgrade objstore")


def read_parquet(source: Any) -> Any:
    """A DataFrame from Parquet, read on this thread: pyarrow's threaded read leaves pool
    threads that abort the process at exit now and then ("terminate called without an active
    exception", exit -6), which would fail the user's script after its work is done."""
    import pandas as pd

    return pd.read_parquet(source, use_threads=False)

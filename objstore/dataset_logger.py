"""ClearML's ``dataset.get_logger()``: reports kept with the dataset's record, no server needed.

Each report is one JSON object appended to the record's ``metadata["reports"]`` (so
``Dataset.get_metadata("reports")`` reads them back) with ``kind``, ``title``, ``series``
and the kind's data. Numbers and small tables stay inline; binary payloads (images, media,
a matplotlib figure's PNG, a plotly figure's JSON) are blobs kept with the version
(``dataset_attachments``) and the report holds their reference under ``blob``. A URL given
instead of content is kept as text and never fetched. ``ds ui`` shows them all.

Signatures are ClearML 2.x's. ClearML's server draws reports; here the page draws them, so
options that only style a plot (``extra_layout``, ``data_args``) are accepted and ignored.
"""

from __future__ import annotations

import io
import json
import math
import mimetypes
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import dataset_attachments as blobs
from .errors import DsError

if TYPE_CHECKING:
    from .dataset import Dataset

TABLE_ROWS = 1000  # data rows kept inline per table (the header aside)
SINGLE_VALUE_ITERATION = -(2 ** 31)  # ClearML reports single values as this iteration of "Summary"


class DatasetLogger:
    """ClearML's ``Logger`` for a dataset: every ``report_*`` is kept with the version."""

    def __init__(self, dataset: Dataset):
        self._ds = dataset

    # -- keeping ----------------------------------------------------------------------
    def _add(self, kind: str, title: str, series: str, payload: bytes | None = None,
             content_type: str | None = None, file: str | None = None, **data: Any) -> None:
        """Append one report to the record under the store lock (its blob stored in the same hold)."""
        report: dict[str, Any] = {"kind": kind, "title": str(title), "series": str(series)}
        report.update(plain(data))
        store = self._ds._store
        with store.locked():
            if payload is not None:
                report["blob"] = blobs.put_bytes(store, payload)
                report["content_type"] = content_type or "application/octet-stream"
                report["file"] = file or "report"
            r = self._ds._reload()
            metadata = r.get("metadata")
            if not isinstance(metadata, dict):
                metadata = r["metadata"] = {}
            reports = metadata.get("reports")
            if not isinstance(reports, list):
                reports = metadata["reports"] = []
            reports.append(report)
            self._ds._save()

    # -- numbers and tables -------------------------------------------------------------
    def report_table(self, title: str, series: str, iteration: int | None = None, table_plot: Any = None,
                     csv: str | None = None, url: str | None = None, extra_layout: dict | None = None,
                     extra_data: dict | None = None) -> None:
        """A table: a DataFrame or list of rows, a local CSV file, or a CSV URL (kept, not fetched)."""
        _one_of(table_plot=table_plot, csv=csv, url=url)
        rows: list[list[Any]] = []
        total = None
        if csv is not None:
            import csv as csv_mod

            try:
                with open(csv, newline="", encoding="utf-8") as f:
                    rows = [row for _, row in zip(range(TABLE_ROWS + 1), csv_mod.reader(f), strict=False)]
            except (OSError, UnicodeDecodeError, csv_mod.Error) as e:
                raise DsError(f"report_table: cannot read the CSV file {csv} ({e}); give the path of a "
                              "UTF-8 CSV file, or table_plot=") from None
        elif table_plot is not None:
            rows, total = table_rows(table_plot)
        self._add("table", title, series, iteration=iteration, rows=rows, url=url,
                  total_rows=total)

    def report_histogram(self, title: str, series: str, values: Any, iteration: int | None = None,
                         labels: Sequence[str] | None = None, xlabels: Sequence[str] | None = None,
                         xaxis: str | None = None, yaxis: str | None = None, mode: str | None = None,
                         data_args: dict | None = None, extra_layout: dict | None = None) -> None:
        self._add("histogram", title, series, values=values, iteration=iteration, labels=labels,
                  xlabels=xlabels, xaxis=xaxis, yaxis=yaxis, mode=mode)

    def report_vector(self, title: str, series: str, values: Any, iteration: int | None = None,
                      labels: Sequence[str] | None = None, xlabels: Sequence[str] | None = None,
                      xaxis: str | None = None, yaxis: str | None = None, mode: str | None = None,
                      extra_layout: dict | None = None) -> None:
        self.report_histogram(title, series, values, iteration, labels, xlabels, xaxis, yaxis, mode)

    def report_scalar(self, title: str, series: str, value: float, iteration: int) -> None:
        self._add("scalar", title, series, value=value, iteration=iteration)

    def report_single_value(self, name: str, value: float) -> None:
        """One summary number (ClearML: series ``name`` of the "Summary" scalar)."""
        self._add("single_value", "Summary", name, value=value, iteration=SINGLE_VALUE_ITERATION)

    def report_text(self, msg: str, level: int = 20, print_console: bool = True, *args: Any,
                    **_: Any) -> None:
        """A line of the version's log (nothing is printed: the library never prints)."""
        self._add("text", "text", "text", msg=str(msg), level=level)

    def report_scatter2d(self, title: str, series: str, scatter: Any, iteration: int | None = None,
                         xaxis: str | None = None, yaxis: str | None = None,
                         labels: Sequence[str] | None = None, mode: str = "lines",
                         comment: str | None = None, extra_layout: dict | None = None) -> None:
        """Points ``[(x, y), ...]`` (or an N x 2 array) of one series."""
        self._add("scatter2d", title, series, points=_points(scatter, 2, "scatter"), iteration=iteration,
                  xaxis=xaxis, yaxis=yaxis, labels=labels, mode=mode, comment=comment)

    def report_scatter3d(self, title: str, series: str, scatter: Any, iteration: int | None = None,
                         xaxis: str | None = None, yaxis: str | None = None, zaxis: str | None = None,
                         labels: Sequence[str] | None = None, mode: str = "markers", fill: bool = False,
                         comment: str | None = None, extra_layout: dict | None = None) -> None:
        self._add("scatter3d", title, series, points=_points(scatter, 3, "scatter"), iteration=iteration,
                  xaxis=xaxis, yaxis=yaxis, zaxis=zaxis, labels=labels, mode=mode, comment=comment)

    def report_line_plot(self, title: str, series: Sequence[Any], xaxis: str, yaxis: str,
                         mode: str = "lines", iteration: int | None = None, reverse_xaxis: bool = False,
                         comment: str | None = None, extra_layout: dict | None = None) -> None:
        """Several lines; each series is ClearML's ``SeriesInfo`` (or a dict) with name, data, labels.

        Deprecated in ClearML (use ``report_scatter2d``), and it warns the same way.
        """
        import warnings

        warnings.warn("Logger.report_line_plot is deprecated; use Logger.report_scatter2d instead, "
                      "e.g. with mode='lines'", DeprecationWarning, stacklevel=2)
        lines = []
        for s in series:
            get = s.get if isinstance(s, dict) else (lambda k, s=s: getattr(s, k, None))
            lines.append({"name": str(get("name")), "points": _points(get("data"), 2, "series data"),
                          "labels": get("labels")})
        self._add("line_plot", title, lines[0]["name"] if lines else "", lines=lines, xaxis=xaxis,
                  yaxis=yaxis, mode=mode, iteration=iteration, reverse_xaxis=reverse_xaxis, comment=comment)

    def report_confusion_matrix(self, title: str, series: str, matrix: Any, iteration: int | None = None,
                                xaxis: str | None = None, yaxis: str | None = None,
                                xlabels: Sequence[str] | None = None, ylabels: Sequence[str] | None = None,
                                yaxis_reversed: bool = False, comment: str | None = None,
                                extra_layout: dict | None = None) -> None:
        self._add("confusion_matrix", title, series, matrix=_matrix(matrix), iteration=iteration,
                  xaxis=xaxis, yaxis=yaxis, xlabels=xlabels, ylabels=ylabels,
                  yaxis_reversed=yaxis_reversed, comment=comment)

    def report_surface(self, title: str, series: str, matrix: Any, iteration: int | None = None,
                       xaxis: str | None = None, yaxis: str | None = None, zaxis: str | None = None,
                       xlabels: Sequence[str] | None = None, ylabels: Sequence[str] | None = None,
                       camera: Sequence[float] | None = None, comment: str | None = None,
                       extra_layout: dict | None = None) -> None:
        self._add("surface", title, series, matrix=_matrix(matrix), iteration=iteration, xaxis=xaxis,
                  yaxis=yaxis, zaxis=zaxis, xlabels=xlabels, ylabels=ylabels, comment=comment)

    # -- images, media and figures ---------------------------------------------------------
    def report_image(self, title: str, series: str, iteration: int | None = None,
                     local_path: str | None = None, image: Any = None, matrix: Any = None,
                     max_image_history: int | None = None, delete_after_upload: bool = False,
                     url: str | None = None) -> None:
        """An image from a file, a PIL image or a numpy array (stored as PNG), or a URL (kept as text)."""
        _one_of(local_path=local_path or None, url=url or None, image=image, matrix=matrix)
        if image is None:
            image = matrix
        if url:
            self._add("image", title, series, iteration=iteration, url=url)
            return
        if local_path:
            self._add_file("image", title, series, local_path, iteration, delete_after_upload)
            return
        self._add("image", title, series, payload=png_bytes(image), content_type="image/png",
                  file=f"{_safe(series)}.png", iteration=iteration)

    def report_media(self, title: str, series: str, iteration: int | None = None,
                     local_path: str | None = None, stream: Any = None, file_extension: str | None = None,
                     max_history: int | None = None, delete_after_upload: bool = False,
                     url: str | None = None) -> None:
        """Audio, video, images or any file: from a path, a stream (with ``file_extension``) or a URL."""
        _one_of(local_path=local_path or None, url=url or None, stream=stream)
        if stream is not None and not file_extension:
            raise DsError("report_media: a stream needs file_extension (e.g. file_extension='.wav')")
        if url:
            self._add("media", title, series, iteration=iteration, url=url)
            return
        if local_path:
            self._add_file("media", title, series, local_path, iteration, delete_after_upload)
            return
        data = stream.getvalue() if hasattr(stream, "getvalue") else stream.read()
        if isinstance(data, str):
            data = data.encode("utf-8")
        ext = file_extension if file_extension.startswith(".") else f".{file_extension}"
        name = f"{_safe(series)}{ext}"
        self._add("media", title, series, payload=bytes(data), content_type=_content_type(name),
                  file=name, iteration=iteration)

    def _add_file(self, kind: str, title: str, series: str, path: str, iteration: int | None,
                  delete_after_upload: bool) -> None:
        p = Path(path).expanduser()
        if not p.is_file():
            raise DsError(f"report_{kind}: {p} is not a file; give the path of an existing file")
        self._add(kind, title, series, payload=p.read_bytes(), content_type=_content_type(p.name),
                  file=p.name, iteration=iteration)
        if delete_after_upload:
            os.unlink(p)

    def report_plotly(self, title: str, series: str, figure: Any, iteration: int | None = None) -> None:
        """A plotly figure (a dict as plotly.js defines it, or a Figure), kept as its JSON."""
        plot = figure if isinstance(figure, dict) else figure.to_plotly_json()
        plot = plain(plot)
        if isinstance(plot.get("layout"), dict):
            plot["layout"]["title"] = series  # as ClearML does
        data = json.dumps(plot, allow_nan=False).encode()
        self._add("plotly", title, series, payload=data, content_type="application/json",
                  file=f"{_safe(series)}.json", iteration=iteration)

    def report_matplotlib_figure(self, title: str, series: str, figure: Any, iteration: int | None = None,
                                 report_image: bool = False, report_interactive: bool = True) -> None:
        """A matplotlib Figure (or ``pyplot``), kept as PNG: anything with ``savefig`` will do."""
        if not hasattr(figure, "savefig"):
            raise DsError(f"report_matplotlib_figure: a {type(figure).__name__} has no savefig(); "
                          "give a matplotlib Figure or matplotlib.pyplot")
        buf = io.BytesIO()
        figure.savefig(buf, format="png")
        self._add("matplotlib", title, series, payload=buf.getvalue(), content_type="image/png",
                  file=f"{_safe(series)}.png", iteration=iteration, as_image=bool(report_image))

    # -- the rest of ClearML's Logger that scripts call ----------------------------------
    def flush(self, wait: bool = False) -> bool:
        """Reports are kept when made; nothing waits."""
        return True

    def set_default_upload_destination(self, uri: str) -> None:
        """Accepted for ClearML scripts: reports are kept with the version, wherever that goes."""

    def get_default_upload_destination(self) -> str | None:
        return None


# -- helpers ---------------------------------------------------------------------------
def _one_of(**given: Any) -> None:
    """ClearML's rule: exactly one source of content."""
    named = [k for k, v in given.items() if v is not None]
    if len(named) != 1:
        raise DsError(f"give exactly one of {', '.join(given)} (got {', '.join(named) or 'none'})")


def _safe(text: str) -> str:
    keep = "".join(c if c.isalnum() or c in "-_." else "_" for c in str(text))[:80].strip(".")
    return keep or "report"


def _content_type(name: str) -> str:
    return mimetypes.guess_type(name)[0] or "application/octet-stream"


def png_bytes(image: Any) -> bytes:
    """A PIL image or a numpy array (H x W, H x W x 1/3/4; floats taken as 0..1) as PNG bytes."""
    try:
        from PIL import Image
    except ImportError:
        raise DsError("reporting an image object needs Pillow: pip install pillow "
                      "(or pass local_path= with an image file)") from None
    if not isinstance(image, Image.Image):
        import numpy as np

        if not isinstance(image, np.ndarray):
            raise DsError(f"image must be a PIL.Image or a numpy.ndarray, not {type(image).__name__}")
        arr = image
        if arr.dtype.kind == "f":
            arr = np.clip(arr * (255 if arr.size and arr.max() <= 1 else 1), 0, 255)
        arr = arr.astype(np.uint8)
        if arr.ndim == 3 and arr.shape[2] == 1:
            arr = arr[:, :, 0]
        if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
            raise DsError(f"an image array must be H x W, H x W x 3 or H x W x 4 (got shape {arr.shape})")
        image = Image.fromarray(arr)
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def table_rows(table: Any, limit: int = TABLE_ROWS) -> tuple[list[list[Any]], int | None]:
    """A DataFrame (header: index name, columns) or a list of rows, as rows; and the total
    number of data rows when more than ``limit`` were left out."""
    if hasattr(table, "columns") and hasattr(table, "itertuples"):
        header = [table.index.name or "", *[str(c) for c in table.columns]]
        rows = [plain(list(r)) for _, r in zip(range(limit), table.itertuples(index=True), strict=False)]
        n = len(table)
        return [header, *rows], (n if n > limit else None)
    rows = [plain(list(r)) for r in table]
    if len(rows) > limit + 1:
        return rows[:limit + 1], len(rows) - 1
    return rows, None


def _points(data: Any, width: int, what: str) -> list[list[Any]]:
    rows = plain(data)
    if not isinstance(rows, list) or not all(isinstance(r, list) and len(r) == width for r in rows):
        raise DsError(f"{what} must be a list of {width}-value points (or an N x {width} array)")
    return rows


def _matrix(data: Any) -> list[list[Any]]:
    rows = plain(data)
    if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
        raise DsError("matrix must be a 2-D list or numpy array")
    return rows


def plain(value: Any) -> Any:
    """The JSON form of report data: numpy and pandas values as lists and numbers; NaN and
    infinities as ClearML writes them ("NaN", "Inf", "-Inf"), since JSON has no such numbers."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "NaN" if math.isnan(value) else ("Inf" if value > 0 else "-Inf")
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if hasattr(value, "tolist"):  # numpy arrays and scalars, pandas Series and Index
        return plain(value.tolist())
    if hasattr(value, "item"):
        return plain(value.item())
    if hasattr(value, "to_dict"):
        return plain(value.to_dict())
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)

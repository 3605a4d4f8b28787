"""ClearML's ``dataset.get_logger()``: reports kept with the dataset's record, no server needed.

Each report is one JSON object with ``kind``, ``title``, ``series`` and the kind's data,
appended to the record's ``task["reports"]``: a key of its own, so metadata a user names
"reports" is never touched. ``Dataset.get_metadata("reports")`` still reads them back when no
metadata or artifact has that name (``DatasetTask.artifacts``). Records written before kept
them as ``metadata["reports"]`` (a list of objects with ``kind``): ``reports_of`` reads them
there too, and the next report moves them to ``task["reports"]``.

A record is rewritten on every change and a remote skips records over 16 MiB, so no report
keeps more than ``INLINE_BYTES`` of JSON in the record:
- binary payloads (images, media, a matplotlib figure's PNG, a plotly figure's JSON) are
  always blobs kept with the version (``dataset_attachments``), the report holding their
  reference under ``blob`` with ``content_type`` and ``file``;
- a table over the budget is a CSV blob (a CSV file given is kept as it is); the report
  keeps as ``rows`` its header and first rows (``PREVIEW_COLUMNS`` columns at most, long
  cells cut), with ``total_rows`` and ``total_columns``;
- any other report over the budget (points, values, matrices, a long log line) moves its
  large fields to a blob, a JSON object of them (a log line: its text, its first
  ``TEXT_CHARS`` characters kept as ``msg`` with ``truncated``), and lists them in ``in_blob``.
``full_report`` reads a report back whole. A URL given instead of content is kept as text and
never fetched. ``ds ui`` shows them all.

Signatures are ClearML 2.x's. ClearML's server draws reports; here the page draws them, so
options that only style a plot (``extra_layout``, ``data_args``) are accepted and ignored.
"""

from __future__ import annotations

import csv as csv_mod
import io
import json
import math
import mimetypes
import os
import tempfile
import warnings
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import dataset_attachments as blobs
from .errors import DsError

if TYPE_CHECKING:
    from .dataset import Dataset
    from .store import Store

REPORTS = "reports"  # task["reports"]; metadata["reports"] in records written before
INLINE_BYTES = 64 * 1024  # JSON one report may keep in the record
PREVIEW_ROWS = 10  # data rows of a big table kept in the record
PREVIEW_COLUMNS = 50
PREVIEW_BYTES = 16 * 1024
CELL_CHARS = 100  # a preview cell's text is cut to this
TEXT_CHARS = 4096  # the start of a long log line kept in the record
FIELD_BYTES = 256  # fields of a report over the budget larger than this go to its blob
NAME_CHARS = 1024  # a title or series longer than this is refused
KEEP = ("kind", "title", "series", "iteration")  # never moved to a blob
SINGLE_VALUE_ITERATION = -(2 ** 31)  # ClearML reports single values as this iteration of "Summary"


class DatasetLogger:
    """ClearML's ``Logger`` for a dataset: every ``report_*`` is kept with the version."""

    def __init__(self, dataset: Dataset):
        self._ds = dataset

    # -- keeping ----------------------------------------------------------------------
    def _add(self, kind: str, title: str, series: str, payload: bytes | Path | None = None,
             content_type: str | None = None, file: str | None = None, **data: Any) -> None:
        """Append one report to the record under the store lock (its blob stored in the same hold).

        A report without a payload whose JSON passes ``INLINE_BYTES`` keeps its large fields in a
        blob instead (``_spill``)."""
        report: dict[str, Any] = {"kind": kind, "title": _name(title, "title"),
                                  "series": _name(series, "series")}
        report.update(plain(data))
        if payload is None and _size(report) > INLINE_BYTES:
            report, payload, content_type, file = _spill(report)
        store = self._ds._store
        with store.locked():
            if payload is not None:
                put = blobs.put_file if isinstance(payload, Path) else blobs.put_bytes
                report["blob"] = put(store, payload)
                report["content_type"] = content_type or "application/octet-stream"
                report["file"] = file or "report"
            _append(self._ds._reload(), report)
            self._ds._save()
        self._ds._publish_record()  # a finalized, uploaded version: its remotes see it too

    # -- numbers and tables -------------------------------------------------------------
    def report_table(self, title: str, series: str, iteration: int | None = None, table_plot: Any = None,
                     csv: str | None = None, url: str | None = None, extra_layout: dict | None = None,
                     extra_data: dict | None = None) -> None:
        """A table: a DataFrame or list of rows, a local CSV file, or a CSV URL (kept, not fetched).

        A table whose rows fit the record's budget is kept whole in it; a bigger one is a CSV
        blob, the record keeping its header, first rows and size (see the module docstring)."""
        _one_of(table_plot=table_plot, csv=csv, url=url)
        if url is not None:
            self._add("table", title, series, iteration=iteration, rows=[], url=url, total_rows=None)
            return
        source = _CsvTable(csv) if csv is not None else _table_source(table_plot)
        room = INLINE_BYTES - _size({"kind": "table", "title": str(title), "series": str(series),
                                     "iteration": iteration, "url": None, "total_rows": None})
        rows, complete = _take(source.rows(), room)
        if complete:
            self._add("table", title, series, iteration=iteration, rows=rows, url=None, total_rows=None)
            return
        with tempfile.TemporaryDirectory(prefix="ds-table-") as tmp:
            self._add("table", title, series, iteration=iteration, rows=_preview(rows), url=None,
                      total_rows=source.total_rows(), total_columns=len(rows[0]) if rows else 0,
                      payload=source.csv_file(Path(tmp)), content_type="text/csv",
                      file=source.file_name or f"{_safe(series)}.csv")

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
        if self._add_given("image", title, series, iteration, url, local_path, delete_after_upload):
            return
        self._add("image", title, series, payload=png_bytes(matrix if image is None else image),
                  content_type="image/png", file=f"{_safe(series)}.png", iteration=iteration)

    def report_media(self, title: str, series: str, iteration: int | None = None,
                     local_path: str | None = None, stream: Any = None, file_extension: str | None = None,
                     max_history: int | None = None, delete_after_upload: bool = False,
                     url: str | None = None) -> None:
        """Audio, video, images or any file: from a path, a stream (with ``file_extension``) or a URL."""
        _one_of(local_path=local_path or None, url=url or None, stream=stream)
        if stream is not None and not file_extension:
            raise DsError("report_media: a stream needs file_extension (e.g. file_extension='.wav')")
        if self._add_given("media", title, series, iteration, url, local_path, delete_after_upload):
            return
        data = stream.getvalue() if hasattr(stream, "getvalue") else stream.read()
        if isinstance(data, str):
            data = data.encode("utf-8")
        ext = file_extension if file_extension.startswith(".") else f".{file_extension}"
        name = f"{_safe(series)}{ext}"
        self._add("media", title, series, payload=bytes(data), content_type=_content_type(name),
                  file=name, iteration=iteration)

    def _add_given(self, kind: str, title: str, series: str, iteration: int | None, url: str | None,
                   path: str | None, delete_after_upload: bool) -> bool:
        """Keep ``url`` (as text) or the file at ``path``, whichever was given; False if neither."""
        if url:
            self._add(kind, title, series, iteration=iteration, url=url)
            return True
        if not path:
            return False
        p = Path(path).expanduser()
        if not p.is_file():
            raise DsError(f"report_{kind}: {p} is not a file; give the path of an existing file")
        self._add(kind, title, series, payload=p, content_type=_content_type(p.name),
                  file=p.name, iteration=iteration)
        if delete_after_upload:
            os.unlink(p)
        return True

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


# -- where reports are kept, and the record's budget ----------------------------------------
def is_old_layout(value: Any) -> bool:
    """True for reports as records kept them under ``metadata["reports"]`` before: a list whose
    objects all have a ``kind``."""
    if not isinstance(value, list):
        return False
    objects = [v for v in value if isinstance(v, dict)]
    return bool(objects) and all("kind" in v for v in objects)


def reports_of(record: Any) -> list[dict]:
    """Every report a record keeps, in reporting order (the previous layout's first)."""
    if not isinstance(record, dict):
        return []
    metadata, task = record.get("metadata"), record.get("task")
    old = metadata.get(REPORTS) if isinstance(metadata, dict) else None
    new = task.get(REPORTS) if isinstance(task, dict) else None
    found = (old if is_old_layout(old) else []) + (new if isinstance(new, list) else [])
    return [r for r in found if isinstance(r, dict)]


def user_metadata(record: Any) -> dict:
    """The record's metadata as the user set it: without reports kept there by the previous layout."""
    metadata = record.get("metadata") if isinstance(record, dict) else None
    if not isinstance(metadata, dict):
        return {}
    return {k: v for k, v in metadata.items() if not (k == REPORTS and is_old_layout(v))}


def task_part(record: dict, key: str, kind: type[dict] | type[list]) -> Any:
    """``record["task"][key]``, made anew (an empty ``kind``) where missing or not a ``kind``."""
    task = record.get("task")
    if not isinstance(task, dict):
        task = record["task"] = {}
    if not isinstance(task.get(key), kind):
        task[key] = kind()
    return task[key]


def _append(record: dict, report: dict) -> None:
    """Add ``report`` to ``task["reports"]``, first moving there any the previous layout kept."""
    reports = task_part(record, REPORTS, list)
    metadata = record.get("metadata")
    if isinstance(metadata, dict) and is_old_layout(metadata.get(REPORTS)):
        reports[:0] = metadata.pop(REPORTS)
    reports.append(report)


def full_report(store: Store, report: dict) -> dict:
    """``report`` with what its blob holds read back (and fetched if need be): every row of a
    big table (as text, from its CSV), the fields listed in ``in_blob``."""
    ref, moved = report.get("blob"), report.get("in_blob")
    what = f"report {str(report.get('title'))[:80]!r} / {str(report.get('series'))[:80]!r}"
    out = dict(report)
    if report.get("kind") == "table" and blobs.is_ref(ref):
        text = blobs.read_bytes(store, ref, what).decode("utf-8", "replace")
        out["rows"] = list(csv_mod.reader(io.StringIO(text, newline="")))
    elif isinstance(moved, list) and blobs.is_ref(ref):
        data = blobs.read_bytes(store, ref, what)
        if report.get("content_type") == "text/plain":
            out["msg"] = data.decode("utf-8", "replace")
            out.pop("truncated", None)
        else:
            value = json.loads(data)
            if not isinstance(value, dict):
                raise DsError(f"{what}: its stored data is not a JSON object; report it again")
            out.update({k: value[k] for k in moved if isinstance(k, str) and k in value})
        del out["in_blob"]
    return out


def _size(value: Any) -> int:
    """Bytes ``value`` takes in a record file (written with indent=1; a report sits three deep)."""
    text = json.dumps(value, indent=1)
    return len(text) + 4 * text.count("\n")


def _name(value: Any, what: str) -> str:
    text = str(value)
    if len(text) > NAME_CHARS:
        raise DsError(f"a report's {what} is {len(text)} characters long; keep titles and series names "
                      f"under {NAME_CHARS} characters (put long text in report_text)")
    return text


def _spill(report: dict) -> tuple[dict, bytes, str, str]:
    """A report over the budget: (what stays in the record, the blob's bytes, content type, file)."""
    if report["kind"] == "text" and isinstance(report.get("msg"), str):
        msg = report["msg"]
        kept = report | {"msg": msg[:TEXT_CHARS], "truncated": True, "in_blob": ["msg"]}
        return kept, msg.encode("utf-8", "replace"), "text/plain", "log.txt"
    moved = {k: v for k, v in report.items() if k not in KEEP and _size(v) > FIELD_BYTES}
    kept = {k: v for k, v in report.items() if k not in moved} | {"in_blob": sorted(moved)}
    data = json.dumps(moved, allow_nan=False).encode()
    return kept, data, "application/json", f"{_safe(report['series'])}.json"


# -- tables ------------------------------------------------------------------------------------
# A table source gives its rows (header first), its size, and its CSV file for when it is too big
# to inline; ``file_name``: the name to keep that file under (None: one made from the series).
class _FrameTable:
    """A DataFrame: header (index name, columns), then one row per index value."""

    file_name = None

    def __init__(self, frame: Any):
        self.frame = frame

    def rows(self) -> Iterator[list[Any]]:
        yield [self.frame.index.name or "", *[str(c) for c in self.frame.columns]]
        for r in self.frame.itertuples(index=True):
            yield plain(list(r))

    def total_rows(self) -> int:
        return len(self.frame)

    def csv_file(self, tmp: Path) -> Path:
        path = tmp / "table.csv"
        self.frame.to_csv(path)
        return path


class _ListTable:
    """A list of rows, the first one the header."""

    file_name = None

    def __init__(self, rows: Iterable[Any]):
        self.all = [plain(list(r)) for r in rows]

    def rows(self) -> Iterator[list[Any]]:
        return iter(self.all)

    def total_rows(self) -> int:
        return max(0, len(self.all) - 1)

    def csv_file(self, tmp: Path) -> Path:
        path = tmp / "table.csv"
        with open(path, "w", newline="", encoding="utf-8") as f:
            out = csv_mod.writer(f)
            for row in self.all:
                out.writerow(["" if v is None else json.dumps(v) if isinstance(v, list | dict) else v
                              for v in row])
        return path


class _CsvTable:
    """A local CSV file: read as rows to decide, kept as it is when big."""

    def __init__(self, path: str):
        self.path = Path(path)
        self.file_name = self.path.name

    def rows(self) -> Iterator[list[Any]]:
        try:
            with open(self.path, newline="", encoding="utf-8") as f:
                yield from csv_mod.reader(f)
        except (OSError, UnicodeDecodeError, csv_mod.Error) as e:
            raise DsError(f"report_table: cannot read the CSV file {self.path} ({e}); give the path of a "
                          "UTF-8 CSV file, or table_plot=") from None

    def total_rows(self) -> int:
        return max(0, sum(1 for _ in self.rows()) - 1)

    def csv_file(self, tmp: Path) -> Path:
        return self.path


def _table_source(table: Any) -> _FrameTable | _ListTable:
    if hasattr(table, "columns") and hasattr(table, "itertuples"):
        return _FrameTable(table)
    return _ListTable(table)


def _take(rows: Iterator[list[Any]], room: int) -> tuple[list[list[Any]], bool]:
    """Rows while they fit ``room`` bytes of the record, at least the header and ``PREVIEW_ROWS``
    more; and whether that was all of them."""
    taken: list[list[Any]] = []
    used = 0
    for row in rows:
        taken.append(row)
        used += _size(row) + 8
        if used > room and len(taken) > PREVIEW_ROWS:
            return taken, False
    return taken, used <= room


def _preview(rows: list[list[Any]]) -> list[list[Any]]:
    """The header and first rows of a big table, cut to ``PREVIEW_COLUMNS`` and ``PREVIEW_BYTES``."""
    out: list[list[Any]] = []
    used = 0
    for row in rows[:PREVIEW_ROWS + 1]:
        cut = [_cell(v) for v in row[:PREVIEW_COLUMNS]]
        used += _size(cut)
        if out and used > PREVIEW_BYTES:
            break
        out.append(cut)
    return out


def _cell(value: Any) -> Any:
    """A preview cell: numbers as they are, anything else as text of at most ``CELL_CHARS``."""
    if value is None or isinstance(value, bool | int | float):
        return value
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= CELL_CHARS else text[:CELL_CHARS] + "…"


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

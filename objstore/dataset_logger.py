"""ClearML's ``dataset.get_logger()``: reports kept with the dataset's record, no server needed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .dataset import Dataset


class DatasetLogger:
    """ClearML's ``dataset.get_logger()`` reports, kept as JSON in the dataset's record.

    There is no server to draw them; ``Dataset.get_metadata("reports")`` reads them back.
    """

    def __init__(self, dataset: Dataset):
        self._ds = dataset

    def _add(self, kind: str, title: str, series: str, **data: Any) -> None:
        import json

        report = {"kind": kind, "title": title, "series": series}
        report.update(json.loads(json.dumps(data, default=_plain)))
        with self._ds._store.locked():
            r = self._ds._reload()
            r.setdefault("metadata", {}).setdefault("reports", []).append(report)
            self._ds._save()

    def report_table(self, title: str, series: str, iteration: int | None = None, table_plot: Any = None,
                     csv: str | None = None, url: str | None = None, extra_layout: dict | None = None,
                     extra_data: dict | None = None) -> None:
        rows: list[list[str]] = []
        if csv is not None:
            import csv as csv_mod

            with open(csv, newline="", encoding="utf-8") as f:
                rows = [row for _, row in zip(range(101), csv_mod.reader(f), strict=False)]
        elif table_plot is not None:
            rows = _plain(table_plot)
        self._add("table", title, series, iteration=iteration, rows=rows, url=url)

    def report_histogram(self, title: str, series: str, values: Any, iteration: int | None = None,
                         labels: Sequence[str] | None = None, xlabels: Sequence[str] | None = None,
                         xaxis: str | None = None, yaxis: str | None = None, mode: str | None = None,
                         data_args: dict | None = None, extra_layout: dict | None = None) -> None:
        self._add("histogram", title, series, values=values, iteration=iteration, labels=labels,
                  xlabels=xlabels, xaxis=xaxis, yaxis=yaxis)

    def report_scalar(self, title: str, series: str, value: float, iteration: int) -> None:
        self._add("scalar", title, series, value=value, iteration=iteration)

    def report_text(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self._add("text", "text", "text", msg=msg)


def _plain(value: Any) -> Any:
    """Best-effort JSON form of pandas / numpy values for reports."""
    for attr in ("tolist", "to_dict"):
        if hasattr(value, attr):
            return getattr(value, attr)()
    return str(value)


"""A small local stand-in for the ClearML ``Task`` behind a dataset (``dataset._task``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .dataset import Dataset


class DatasetTask:
    """What ClearML scripts use of a dataset's task, kept with the dataset version."""

    def __init__(self, dataset: Dataset):
        self._ds = dataset

    @property
    def id(self) -> str:
        return self._ds.id

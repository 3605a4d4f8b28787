"""Dataset records: the mutable facts about each dataset version, one JSON file each.

A finalized version's content and lineage are an immutable commit (``refs/datasets/<id>``
points at it, and the commit's ``.ds.meta`` blob keeps the record as it was at
finalize). What may still change — tags, published state, name, project — and whole
drafts (their content is a tree in the object database) live in
``.dsstore/datasets/<id>.json``, replaced atomically under the store lock.

Record fields: ``id``, ``name``, ``project``, ``version``, ``tags``, ``description``,
``status`` (``draft`` | ``completed`` | ``published``), ``parents`` (dataset ids),
``tree`` (draft content), ``commit`` (after finalize), ``created``, ``metadata``,
``output_uri``, ``uploaded`` (URLs the content was mirrored to), ``dirty``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from .errors import DsError, FormatError
from .fsutil import atomic_write

DRAFT, COMPLETED, PUBLISHED = "draft", "completed", "published"
_ID = re.compile(r"[0-9a-f]{32}")


class RecordStore:
    def __init__(self, store_path: Path):
        self.folder = store_path / "datasets"

    def _path(self, dataset_id: str) -> Path:
        if not _ID.fullmatch(dataset_id):
            raise DsError(f"{dataset_id!r} is not a dataset id (32 hexadecimal characters)")
        return self.folder / f"{dataset_id}.json"

    def read(self, dataset_id: str) -> dict | None:
        try:
            text = self._path(dataset_id).read_text("utf-8")
        except FileNotFoundError:
            return None
        try:
            record = json.loads(text)
        except ValueError as e:
            raise FormatError(f"dataset record {dataset_id} is damaged ({e}); run `ds fsck`") from None
        if not isinstance(record, dict) or record.get("id") != dataset_id:
            raise FormatError(f"dataset record {dataset_id} does not describe itself; run `ds fsck`")
        return record

    def write(self, record: dict) -> None:
        self.folder.mkdir(exist_ok=True)
        data = json.dumps(record, indent=1, sort_keys=True).encode()
        atomic_write(self._path(record["id"]), data)

    def delete(self, dataset_id: str) -> None:
        self._path(dataset_id).unlink(missing_ok=True)

    def all(self) -> list[dict]:
        if not self.folder.is_dir():
            return []
        out = []
        for p in sorted(self.folder.glob("*.json")):
            if _ID.fullmatch(p.stem):
                rec = self.read(p.stem)
                if rec is not None:
                    out.append(rec)
        return out

    def draft_trees(self) -> list[str]:
        """Trees that drafts name: live for gc even though no ref reaches them."""
        return [r["tree"] for r in self.all() if r.get("status") == DRAFT and r.get("tree")]

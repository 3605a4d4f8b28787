"""``ds://`` names versions as the SDK does: the one resolver (``revisions``) decides which
version a string names, and a remote version comes with the same lineage."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from objstore import Dataset
from objstore import dataset as dataset_module
from objstore.dsfs import DsFileSystem
from objstore.records import RecordStore
from objstore.revisions import lineage_to_fetch
from objstore.store import Store

from .conftest import write


@pytest.fixture(autouse=True)
def sdk(tmp_path: Path, monkeypatch) -> Path:
    """The SDK's store, its clock a counter: each timestamp one second after the last."""
    store = tmp_path / "sdk" / ".dsstore"
    monkeypatch.setenv("DSSTORE_DIR", str(store))
    monkeypatch.delenv("DSSTORE_REMOTE", raising=False)
    monkeypatch.chdir(tmp_path)
    seconds = itertools.count()
    monkeypatch.setattr(dataset_module, "_now", lambda: f"2030-01-01T00:{next(seconds):05d}Z")
    DsFileSystem.clear_instance_cache()
    Store.create(store).close()
    yield store
    DsFileSystem.clear_instance_cache()


def version(tmp_path: Path, text: str, finalize: bool = False) -> Dataset:
    folder = tmp_path / f"files-{text}"
    write(folder, "f.txt", text)
    ds = Dataset.create(dataset_name="cats", dataset_project="team", dataset_version="1.0.0")
    ds.add_files(folder)
    if finalize:
        ds.finalize()
    return ds


def test_a_version_named_twice_is_the_one_dataset_get_picks(tmp_path: Path) -> None:
    """Two datasets with one version text: the most recently finalized, for ``Dataset.get``
    and ``ds://`` alike (it read the most recently created one)."""
    a = version(tmp_path, "a")  # created first...
    b = version(tmp_path, "b", finalize=True)
    a.finalize()  # ...finalized last
    assert Dataset.get(dataset_project="team", dataset_name="cats", dataset_version="1.0.0").id == a.id
    fs = DsFileSystem()
    assert fs.cat("ds://team/cats@1.0.0/f.txt") == b"a"
    assert fs.cat("ds://team/cats@latest/f.txt") == b"a"
    assert [d["dataset_id"] for d in fs.ls("ds://team/cats")] == [a.id]
    assert fs.cat(f"ds://team/cats@{b.id[:8]}/f.txt") == b"b"  # an id still names either


def test_a_revision_names_what_the_sdk_names(tmp_path: Path) -> None:
    """``ds://@REV``: a unique prefix of a dataset id names its version, as in
    ``Dataset.get(dataset_id=)`` and ``ds ui``; a draft's id is refused, saying why."""
    a = version(tmp_path, "a", finalize=True)
    draft = version(tmp_path, "draft")
    fs = DsFileSystem()
    assert Dataset.get(dataset_id=a.id[:8]).id == a.id
    assert fs.cat(f"ds://@{a.id[:8]}/f.txt") == b"a"
    assert fs.cat(f"ds://@{a.id}/f.txt") == b"a"
    with pytest.raises(FileNotFoundError, match=f"dataset {draft.id} is a draft; finalize it"):
        fs.info(f"ds://@{draft.id}/f.txt")
    with pytest.raises(FileNotFoundError, match="no version matches 'nope'"):
        fs.info("ds://@nope/f.txt")


def test_the_lineage_to_fetch_is_each_missing_ancestor_once(sdk: Path, tmp_path: Path) -> None:
    """A version and its ancestors the store lacks, each before its parents; a version the
    store has ends the walk (a diamond's shared ancestor comes once)."""
    have = version(tmp_path, "local", finalize=True)
    store = Store(sdk)
    base, left, right, top, gone = (f"{i:032x}" for i in range(1, 6))
    known = [{"id": base, "parents": [have.id]}, {"id": left, "parents": [base]},
             {"id": right, "parents": [base]}, {"id": top, "parents": [left, right, gone]},
             RecordStore(store.path).read(have.id)]
    assert [r["id"] for r in lineage_to_fetch(store, known[3], known)] == [top, right, base, left]
    assert lineage_to_fetch(store, RecordStore(store.path).read(have.id), known) == []
    store.close()

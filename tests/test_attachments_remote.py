"""Files kept beside a dataset version (artifacts, typed metadata, report images) travel with
it: ``upload()`` sends them, a later change to the record sends what it added, another
machine reads them, and a remote gc keeps them."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from objstore import Dataset
from objstore.remote_gc import gc_remote
from objstore.store import Store

from .conftest import write


@pytest.fixture(params=["folder", "s3"])
def remote(request, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "folder":
        url = str(tmp_path / "shared")
    else:
        server = request.getfixturevalue("moto_s3")
        url = f"s3://{server.new_bucket()}/data"
        for key, value in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                           "AWS_ENDPOINT_URL": server.endpoint, "AWS_CONFIG_FILE": "/dev/null"}.items():
            monkeypatch.setenv(key, value)
    monkeypatch.setenv("DSSTORE_REMOTE", url)
    return url


def machine(monkeypatch: pytest.MonkeyPatch, folder: Path) -> Path:
    store = folder / ".dsstore"
    monkeypatch.setenv("DSSTORE_DIR", str(store))
    return store


def test_attachments_reach_another_machine_and_survive_remote_gc(
        remote: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    frame = pd.DataFrame({"clip": ["a", "b"], "label": ["dog", "cat"]})
    first = machine(monkeypatch, tmp_path / "one")
    write(tmp_path / "src", "a.wav", b"RIFF")
    d = Dataset.create(dataset_name="sounds", dataset_project="audio")
    d.add_files(tmp_path / "src")
    d.set_metadata(frame, metadata_name="labels")
    d._task.upload_artifact("classes", {"0": "dog", "1": "cat"})
    d.get_logger().report_image("spec", "a", iteration=0, image=np.full((4, 6, 3), 9, dtype=np.uint8))
    d.upload()
    d.finalize()
    d._task.upload_artifact("late", np.arange(5))  # added to a finalized version: sent with its record

    def read_everything() -> None:
        got = Dataset.get(dataset_project="audio", dataset_name="sounds")
        assert got.id == d.id
        pd.testing.assert_frame_equal(got.get_metadata("labels"), frame)
        assert got._task.artifacts["classes"].get() == {"0": "dog", "1": "cat"}
        assert got._task.artifacts["late"].get().tolist() == [0, 1, 2, 3, 4]
        image = next(r for r in got.get_metadata("reports") if r["kind"] == "image")
        from objstore.dataset_attachments import read_bytes

        data = read_bytes(got._store, image["blob"], "the report image")
        assert Image.open(io.BytesIO(data)).size == (6, 4)

    machine(monkeypatch, tmp_path / "two")
    read_everything()
    with Store(first) as store:
        gc_remote(store, remote, grace_seconds=0)
    machine(monkeypatch, tmp_path / "three")  # a machine that has nothing yet, after the gc
    read_everything()


def test_two_machines_adding_artifacts_to_one_version_keep_both(
        remote: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = machine(monkeypatch, tmp_path / "one")
    write(tmp_path / "src", "a.txt", b"a")
    d = Dataset.create(dataset_name="shared", dataset_project="p")
    d.add_files(tmp_path / "src")
    d.upload()
    d.finalize()
    machine(monkeypatch, tmp_path / "two")
    theirs = Dataset.get(dataset_id=d.id)
    machine(monkeypatch, tmp_path / "one")
    d._task.upload_artifact("from-one", {"who": 1})
    machine(monkeypatch, tmp_path / "two")
    theirs._task.upload_artifact("from-two", np.arange(3))  # its record lacks from-one
    theirs.get_logger().report_text("two was here")
    with Store(first) as store:
        gc_remote(store, remote, grace_seconds=0)
    machine(monkeypatch, tmp_path / "three")
    got = Dataset.get(dataset_id=d.id)
    assert got._task.artifacts["from-one"].get() == {"who": 1}
    assert got._task.artifacts["from-two"].get().tolist() == [0, 1, 2]


def test_remote_gc_refuses_a_record_whose_attachment_reference_is_damaged(
        remote: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    import fsspec

    first = machine(monkeypatch, tmp_path / "one")
    d = Dataset.create(dataset_name="bad", dataset_project="p")
    d._task.upload_artifact("cfg", {"a": 1})
    d.upload()
    d.finalize()
    fs, root = fsspec.core.url_to_fs(remote)
    rel = f"{root}/datasets/{d.id}.json"
    record = json.loads(fs.cat_file(rel))
    record["task"]["artifacts"]["cfg"]["blob"]["size"] += 1  # no longer the sum of its chunks
    fs.pipe_file(rel, json.dumps(record).encode())
    before = sorted(fs.find(root))
    with Store(first) as store, pytest.raises(Exception, match="gc refused.*nothing was deleted"):
        gc_remote(store, remote, grace_seconds=0)
    assert sorted(fs.find(root)) == before


def test_a_change_saved_during_a_push_keeps_the_unsynced_mark(
        remote: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from objstore.errors import DsError
    from objstore.remote import Remote

    machine(monkeypatch, tmp_path / "one")
    d = Dataset.create(dataset_name="marks", dataset_project="p")
    d.upload()
    d.finalize()
    other = Dataset.get(dataset_id=d.id)
    real = Remote.push_record
    calls = []

    def push(self, record):
        calls.append(record.get("description"))
        if len(calls) == 1:  # meanwhile another writer changes the record; its own push fails
            with pytest.raises(DsError, match="down"):
                other.set_description("theirs")
            return real(self, record)
        raise DsError("remote down (test)")

    monkeypatch.setattr(Remote, "push_record", push)
    d.add_tags(["mine"])
    saved = Dataset.get(dataset_id=d.id)._record
    assert saved["description"] == "theirs" and saved.get("unsynced") is True

"""One resolver: the SDK, ``ds://``, ``ds ui`` and the CLI give the same version for the same string."""

from __future__ import annotations

import os
from pathlib import Path

import fsspec
import pytest

from objstore import Dataset
from objstore.browse import Browser, NotFound
from objstore.errors import RevisionNotFound
from objstore.revisions import latest, pick, resolve
from objstore.store import Store

from .conftest import ds, write


@pytest.fixture
def sdk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    store = tmp_path / "w" / ".dsstore"
    monkeypatch.setenv("DSSTORE_DIR", str(store))
    monkeypatch.delenv("DSSTORE_REMOTE", raising=False)
    return store


def version(text: str, body: bytes, src: Path) -> Dataset:
    write(src, "v.txt", body)
    d = Dataset.create(dataset_name="cats", dataset_project="rev", dataset_version=text)
    d.add_files(src / "v.txt")
    d.finalize()
    return d


def test_latest_is_the_same_for_the_sdk_ds_urls_and_the_resolver(sdk: Path, tmp_path: Path) -> None:
    # ClearML's order: 1.0.10 > 1.0.9 > 1.0.2; made out of order on purpose
    made = {v: version(v, v.encode(), tmp_path / v) for v in ("1.0.9", "1.0.10", "1.0.2")}
    assert Dataset.get(dataset_project="rev", dataset_name="cats").id == made["1.0.10"].id
    with fsspec.open("ds://rev/cats@latest/v.txt", "rb") as f:
        assert f.read() == b"1.0.10"
    records = [d._record for d in made.values()]
    assert latest(records)["id"] == pick(records, "latest")["id"] == made["1.0.10"].id
    assert pick(records, "1.0.2")["id"] == made["1.0.2"].id
    assert pick(records, "9.9") is None


def test_a_dataset_id_its_prefix_and_its_commit_prefix_name_one_version_everywhere(
        sdk: Path, tmp_path: Path) -> None:
    one = version("1.0.0", b"one", tmp_path / "a")
    two = version("1.0.1", b"two", tmp_path / "b")
    draft = Dataset.create(dataset_name="cats", dataset_project="rev")
    write(tmp_path / "c", "v.txt", b"draft")
    draft.add_files(tmp_path / "c" / "v.txt")
    commit = two._record["commit"]
    with Store(sdk) as store:
        browser = Browser(store)
        for rev in (two.id, two.id[:8], commit[:10], commit):
            found = resolve(store, rev)
            assert found.commit == commit and found.id == commit
            assert Dataset.get(dataset_id=rev).id == two.id
            assert browser._version(rev)[0] == commit
        assert resolve(store, two.id).record["id"] == two.id
        d = resolve(store, draft.id)
        assert d.commit is None and d.id == draft.id and d.record["status"] == "draft"
        assert browser._version(draft.id)[0] == draft.id
        with pytest.raises(RevisionNotFound):
            resolve(store, "0" * 32)
        with pytest.raises(NotFound):
            browser._version("0" * 32)
    for rev in (two.id[:8], commit[:10]):
        with fsspec.open(f"ds://rev/cats@{rev}/v.txt", "rb") as f:
            assert f.read() == b"two"
    env = dict(os.environ, DSSTORE_DIR=str(sdk))
    assert ds("ls", one.id, cwd=tmp_path, env=env).stdout.split() == ["v.txt"]


def test_an_ambiguous_prefix_is_refused_not_guessed() -> None:
    records = [{"id": "abcd" + "0" * 28, "version": "1.0.0", "commit": "1" * 40, "created": "a"},
               {"id": "abcd" + "1" * 28, "version": "1.0.1", "commit": "2" * 40, "created": "b"}]
    with pytest.raises(RevisionNotFound, match="matches 2 versions of the dataset; give more characters"):
        pick(records, "abcd")
    assert pick(records, "abcd1")["version"] == "1.0.1"
    assert pick(records, "2222")["version"] == "1.0.1"  # a commit prefix
    assert pick(records, "abc") is None  # under 4 characters names nothing

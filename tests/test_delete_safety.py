"""Dataset deletes that ClearML refuses are refused here too, in the SDK and in `ds dataset delete`.

ClearML 2.1's ``Dataset.delete`` raises for a call that selects nothing or gives an id
together with a project/name, and logs a warning and deletes nothing for an ambiguous
project/name or for ``entire_dataset`` without ``force``. Each test also checks that the
refused call left every record and every version ref in place.
"""

from __future__ import annotations

import os
import subprocess
import warnings
from pathlib import Path

import pytest

from objstore import Dataset
from objstore.errors import DsError

from .conftest import DS


@pytest.fixture(autouse=True)
def env(tmp_path: Path, monkeypatch) -> Path:
    store = tmp_path / "store" / ".dsstore"
    monkeypatch.setenv("DSSTORE_DIR", str(store))
    monkeypatch.delenv("DSSTORE_REMOTE", raising=False)
    monkeypatch.chdir(tmp_path)
    return store


def final(name: str = "ds", project: str = "proj", version: str | None = None) -> str:
    """A finalized, independent version (no parents, so no dependency blocks its delete)."""
    ds = Dataset.create(dataset_name=name, dataset_project=project, dataset_version=version)
    ds.finalize()
    return ds.id


def state(env: Path) -> tuple[list[str], list[str]]:
    """(record ids, dataset refs) as they are on disk: what a delete removes."""
    from objstore.records import RecordStore
    from objstore.store import Store

    ids = sorted(r["id"] for r in RecordStore(env).all())
    store = Store(env)
    try:
        refs = sorted(r for r in store.meta.repo.references if r.startswith("refs/datasets/"))
    finally:
        store.close()
    return ids, refs


@pytest.fixture
def two_versions(env: Path) -> tuple[str, str]:
    """Two versions of proj/ds plus one unrelated dataset."""
    ids = final(version="1.0.0"), final(version="1.0.1")
    final("other", "elsewhere")
    return ids


def ds_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([DS, "dataset", "delete", *args], env=dict(os.environ), capture_output=True,
                          text=True, timeout=120)


def assert_refused(proc: subprocess.CompletedProcess, *words: str) -> None:
    """Non-zero exit, exactly one line on stderr naming the problem, no success message."""
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), proc.stderr
    assert all(w in lines[0] for w in words), lines[0]
    assert "deleted" not in proc.stdout.replace("nothing deleted", "")


# -- SDK ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs", [{}, {"dataset_version": "1.0.0"}, {"force": True, "entire_dataset": True},
                                    {"dataset_id": "", "dataset_project": "", "dataset_name": ""}])
def test_sdk_refuses_a_delete_that_selects_nothing(env: Path, two_versions, kwargs: dict) -> None:
    before = state(env)
    with pytest.raises(ValueError, match="nothing selected") as raised:
        Dataset.delete(**kwargs)
    assert isinstance(raised.value, DsError)
    assert state(env) == before


@pytest.mark.parametrize("extra", [{"dataset_project": "proj"}, {"dataset_name": "ds"},
                                   {"dataset_project": "proj", "dataset_name": "ds"}])
def test_sdk_refuses_an_id_given_with_a_project_or_name(env: Path, two_versions, extra: dict) -> None:
    before = state(env)
    with pytest.raises(DsError, match="either dataset_id or"):
        Dataset.delete(dataset_id=two_versions[0], **extra)
    assert state(env) == before


@pytest.mark.parametrize("kwargs", [{"dataset_project": "proj", "dataset_name": "ds"},
                                    {"dataset_project": "proj"},
                                    {"dataset_name": "ds", "force": True}])
def test_sdk_ambiguous_selection_warns_and_deletes_nothing(env: Path, two_versions, kwargs: dict) -> None:
    if "dataset_name" in kwargs and "dataset_project" not in kwargs:
        final("ds", "another-proj")  # the same name in a second project
    before = state(env)
    with pytest.warns(UserWarning, match="nothing deleted") as caught:
        assert Dataset.delete(**kwargs) is None
    assert len(caught) == 1 and caught[0].filename == __file__  # points at the caller's line
    assert "dataset_version" in str(caught[0].message) and "entire_dataset" in str(caught[0].message)
    assert state(env) == before


def test_sdk_entire_dataset_without_force_warns_and_deletes_nothing(env: Path, two_versions) -> None:
    before = state(env)
    with pytest.warns(UserWarning, match="force=True"):
        Dataset.delete(dataset_project="proj", dataset_name="ds", entire_dataset=True)
    assert state(env) == before
    Dataset.delete(dataset_project="proj", dataset_name="ds", entire_dataset=True, force=True)
    ids, refs = state(env)
    assert len(ids) == len(refs) == 1 and not set(two_versions) & set(ids)


def test_entire_dataset_without_force_is_refused_even_for_a_single_version(env: Path) -> None:
    final()
    before = state(env)
    with pytest.warns(UserWarning, match="force=True"):
        Dataset.delete(dataset_project="proj", dataset_name="ds", entire_dataset=True)
    assert state(env) == before


def test_a_refusal_can_be_made_an_exception(env: Path, two_versions) -> None:
    from objstore.dataset import DeleteRefused

    before = state(env)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeleteRefused)
        with pytest.raises(DsError, match="nothing deleted"):
            Dataset.delete(dataset_project="proj", dataset_name="ds")
    assert state(env) == before


def test_an_unambiguous_selection_still_deletes_one_version(env: Path, two_versions) -> None:
    first, second = two_versions
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Dataset.delete(dataset_project="proj", dataset_name="ds", dataset_version="1.0.0")
        assert first not in state(env)[0] and second in state(env)[0]
        Dataset.delete(dataset_project="proj", dataset_name="ds")  # now one version: not ambiguous
        Dataset.delete(dataset_name="other")
    assert state(env) == ([], [])


def test_clearml_2_keywords_and_positions_are_accepted(env: Path, two_versions) -> None:
    first, second = two_versions
    Dataset.delete(dataset_id=first, shallow_search=True, delete_files=True, delete_external_files=False)
    # ClearML 2.x's positional order: id, project, name, force, version, entire, shallow_search
    Dataset.delete(None, "proj", "ds", False, "1.0.1", False, False)
    assert state(env)[0] == [r["id"] for r in Dataset.list_datasets()]
    assert {first, second}.isdisjoint(state(env)[0])


# -- CLI ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("args", [(), ("--version", "1.0.0"), ("--force",), ("--entire-dataset", "--force")])
def test_cli_refuses_a_delete_without_a_selection(env: Path, two_versions, args: tuple) -> None:
    before = state(env)
    assert_refused(ds_cli(*args), "--id", "--project", "--name")
    assert state(env) == before


def test_cli_refuses_an_id_given_with_a_project(env: Path, two_versions) -> None:
    before = state(env)
    assert_refused(ds_cli("--id", two_versions[0], "--project", "proj"), "--id")
    assert state(env) == before


def test_cli_refuses_an_ambiguous_selection(env: Path, two_versions) -> None:
    before = state(env)
    assert_refused(ds_cli("--project", "proj", "--name", "ds"), "2 datasets", "--version", "--id")
    assert state(env) == before


def test_cli_refuses_entire_dataset_without_force(env: Path, two_versions) -> None:
    before = state(env)
    assert_refused(ds_cli("--project", "proj", "--name", "ds", "--entire-dataset"), "--force")
    assert state(env) == before
    proc = ds_cli("--project", "proj", "--name", "ds", "--entire-dataset", "--force")
    assert proc.returncode == 0 and "Dataset(s) deleted" in proc.stdout, proc.stderr
    assert len(state(env)[0]) == 1


def test_cli_deletes_one_named_version(env: Path, two_versions) -> None:
    proc = ds_cli("--project", "proj", "--name", "ds", "--version", "1.0.1")
    assert proc.returncode == 0 and "Dataset(s) deleted" in proc.stdout, proc.stderr
    assert two_versions[0] in state(env)[0] and two_versions[1] not in state(env)[0]

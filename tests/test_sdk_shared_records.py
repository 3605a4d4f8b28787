"""Machines sharing one default remote see one set of dataset records, as ClearML's clients
see one server: a change made on one machine is applied to the freshest shared record and
never undoes another machine's (publish, rename, tags); reads refresh from the remote;
deletes reach it. Plus the SDK's smaller ClearML rules (version text, file/folder clashes,
finalize/publish on the wrong state)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

from objstore import Dataset
from objstore.dataset import DeleteRefused
from objstore.errors import DsError
from objstore.revisions import DatasetNotFound

from .conftest import write


@pytest.fixture
def machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """``machine(name)`` switches the SDK to that machine's store; all share one remote."""
    monkeypatch.setattr(Dataset, "_offline", False)

    def switch(name: str) -> None:
        monkeypatch.setenv("DSSTORE_DIR", str(tmp_path / name / ".dsstore"))
        monkeypatch.setenv("DSSTORE_REMOTE", str(tmp_path / "shared"))

    switch("one")
    return switch


def shared_record(tmp_path: Path, dataset_id: str) -> dict | None:
    path = tmp_path / "shared" / "datasets" / f"{dataset_id}.json"
    return json.loads(path.read_text()) if path.exists() else None


def version(tmp_path: Path, name: str = "z", project: str = "P", parents=None, files=("a.txt",)) -> Dataset:
    src = tmp_path / f"src-{name}-{len(files)}"
    for f in files:
        write(src, f, f)
    d = Dataset.create(dataset_name=name, dataset_project=project, parent_datasets=parents)
    d.add_files(src)
    d.upload()
    d.finalize()
    return d


# -- 1. a stale copy never undoes another machine's changes ------------------------------------
def test_a_stale_copy_never_undoes_another_machines_publish_rename_and_tags(
        machine, tmp_path: Path) -> None:
    z = version(tmp_path)
    machine("two")
    stale = Dataset.get(dataset_id=z.id)
    machine("one")
    z.publish()
    z.add_tags(["gold"])
    Dataset.rename("z2", dataset_project="P", dataset_name="z")
    machine("two")
    stale.add_tags(["m2tag"])  # its record still says z, completed, no tags
    stale.set_description("from two")
    Dataset.get(dataset_id=z.id).add_tags(["m2b"])
    machine("one")
    got = Dataset.get(dataset_project="P", dataset_name="z2")
    assert got.id == z.id
    assert got.tags == ["gold", "m2tag", "m2b"] and got._record["status"] == "published"
    assert got.description == "from two"
    with pytest.raises(DatasetNotFound):
        Dataset.get(dataset_project="P", dataset_name="z")
    remote = shared_record(tmp_path, z.id)
    assert (remote["name"], remote["status"], remote["tags"]) == ("z2", "published", ["gold", "m2tag", "m2b"])
    assert "synced" not in remote and "unsynced" not in remote


def test_publishing_is_one_way_and_tags_removed_on_one_machine_stay_removed(machine, tmp_path: Path) -> None:
    z = version(tmp_path)
    z.add_tags(["a", "b"])
    machine("two")
    two = Dataset.get(dataset_id=z.id)
    two.publish()
    machine("one")
    z.remove_tags("a")  # z's copy is still completed: publish is kept, only "a" goes
    assert shared_record(tmp_path, z.id)["status"] == "published"
    assert shared_record(tmp_path, z.id)["tags"] == ["b"]
    machine("two")
    two.add_tags(["c"])  # two still has "a": it did not remove it, so it is not sent back
    assert Dataset.get(dataset_id=z.id).tags == ["b", "c"]


# -- 2. reads refresh from the remote ----------------------------------------------------------
def test_get_by_id_and_list_datasets_read_the_remotes_facts(machine, tmp_path: Path) -> None:
    z = version(tmp_path)
    machine("two")
    assert Dataset.get(dataset_id=z.id).name == "z"
    machine("one")
    z.publish()
    z.add_tags(["gold"])
    Dataset.rename("z2", dataset_project="P", dataset_name="z")
    Dataset.move_to_project("Q", dataset_project="P", dataset_name="z2")
    machine("two")
    got = Dataset.get(dataset_id=z.id)
    assert (got.name, got.project, got.tags, got._record["status"]) == ("z2", "Q", ["gold"], "published")
    listed = [r for r in Dataset.list_datasets() if r["id"] == z.id]
    assert [(r["name"], r["project"], r["tags"], r["status"]) for r in listed] == [
        ("z2", "Q", ["gold"], "published")]


# -- 3. deletes, renames and moves reach the shared remote --------------------------------------
def test_delete_reaches_the_shared_remote(machine, tmp_path: Path) -> None:
    z = version(tmp_path)
    kept = version(tmp_path, name="kept")
    machine("two")
    two = Dataset.get(dataset_id=z.id)
    machine("one")
    Dataset.delete(dataset_id=z.id)
    assert shared_record(tmp_path, z.id) is None and shared_record(tmp_path, kept.id) is not None
    assert z.id not in {r["id"] for r in Dataset.list_datasets()}
    with pytest.raises(DatasetNotFound):
        Dataset.get(dataset_id=z.id)
    with pytest.raises(DatasetNotFound):
        Dataset.get(dataset_project="P", dataset_name="z")
    machine("three")
    assert {r["id"] for r in Dataset.list_datasets()} == {kept.id}
    machine("two")  # its old copy is not sent back behind the deleter's back
    with pytest.raises(DsError, match="no longer on .*upload\\(\\) the version to share it again"):
        two.add_tags(["late"])
    assert shared_record(tmp_path, z.id) is None


def test_deleting_every_version_and_versions_only_the_remote_has(machine, tmp_path: Path) -> None:
    v1 = version(tmp_path)
    v2 = version(tmp_path, parents=[v1.id], files=("a.txt", "b.txt"))
    other = version(tmp_path, name="other")
    machine("three")  # has fetched nothing: the versions are only on the remote
    Dataset.delete(dataset_project="P", dataset_name="z", entire_dataset=True, force=True)
    assert shared_record(tmp_path, v1.id) is None and shared_record(tmp_path, v2.id) is None
    Dataset.delete(dataset_project="P", dataset_name="other")
    assert shared_record(tmp_path, other.id) is None
    machine("four")
    assert Dataset.list_datasets() == []


def test_rename_and_move_of_a_dataset_only_the_remote_has(machine, tmp_path: Path) -> None:
    z = version(tmp_path)
    machine("three")
    Dataset.rename("z2", dataset_project="P", dataset_name="z")
    Dataset.move_to_project("Q", dataset_project="P", dataset_name="z2")
    assert (shared_record(tmp_path, z.id)["name"], shared_record(tmp_path, z.id)["project"]) == ("z2", "Q")
    machine("one")
    assert Dataset.get(dataset_project="Q", dataset_name="z2").id == z.id


# -- 4. a version others are built on, deleted by name: a warning, as in ClearML ------------------
def test_deleting_by_name_a_version_others_depend_on_warns_and_deletes_nothing(
        machine, tmp_path: Path) -> None:
    base = version(tmp_path, name="base")
    machine("two")  # the child exists only on machine two and the remote
    child = version(tmp_path, name="child", parents=[base.id], files=("a.txt", "c.txt"))
    with pytest.warns(DeleteRefused, match=f"{child.id}.*depends on .*nothing deleted"):
        Dataset.delete(dataset_project="P", dataset_name="base")  # the child is here too
    machine("one")
    with pytest.warns(DeleteRefused, match="depends on .*nothing deleted"):
        assert Dataset.delete(dataset_project="P", dataset_name="base") is None
    with pytest.raises(DsError, match=f"depends on.*{child.id}|{child.id}.*depends on"):
        Dataset.delete(dataset_id=base.id)
    assert shared_record(tmp_path, base.id) is not None
    assert Dataset.get(dataset_id=base.id).id == base.id


# -- 5. the version text is stripped -------------------------------------------------------------
def test_create_strips_the_version_text(machine) -> None:
    d = Dataset.create(dataset_name="v", dataset_project="P", dataset_version=" 1.2.3 ")
    assert d.version == "1.2.3"
    with pytest.raises(DsError, match="dataset_version is empty"):
        Dataset.create(dataset_name="v", dataset_project="P", dataset_version="  ")


# -- 6. a path that is both a file and a folder is refused, never silently dropped ----------------
def test_a_file_and_a_folder_at_one_path_are_refused_in_add_files(machine, tmp_path: Path) -> None:
    for n in ("y1", "y2", "y3"):
        write(tmp_path / "f2", f"x/{n}", n)
    write(tmp_path / "f1", "x", "file x")
    d = Dataset.create(dataset_name="clash", dataset_project="P")
    d.add_files(tmp_path / "f2")
    before = (d.list_files(), d.changed_files)
    with pytest.raises(DsError, match="cannot add file 'x': the dataset has a folder 'x'.*remove_files"):
        d.add_files(tmp_path / "f1")
    assert (d.list_files(), d.changed_files) == before == (["x/y1", "x/y2", "x/y3"], before[1])
    d.add_files(tmp_path / "f1", dataset_path="elsewhere")  # the fix the message names
    e = Dataset.create(dataset_name="clash2", dataset_project="P")
    e.add_files(tmp_path / "f1")
    with pytest.raises(DsError, match="the dataset has a file 'x'.*dataset_path"):
        e.add_files(tmp_path / "f2")
    assert e.list_files() == ["x"]


def test_parents_with_a_file_and_a_folder_at_one_path_are_refused(machine, tmp_path: Path) -> None:
    write(tmp_path / "a", "x", "file x")
    write(tmp_path / "b", "x/y", "y")
    a = Dataset.create(dataset_name="a", dataset_project="P")
    a.add_files(tmp_path / "a")
    a.finalize(auto_upload=True)
    b = Dataset.create(dataset_name="b", dataset_project="P")
    b.add_files(tmp_path / "b")
    b.finalize(auto_upload=True)
    count = len(Dataset.list_datasets(only_completed=False))
    with pytest.raises(DsError, match="cannot be merged.*file 'x'.*folder 'x'.*remove_files"):
        Dataset.create(dataset_name="c", dataset_project="P", parent_datasets=[a.id, b.id])
    assert len(Dataset.list_datasets(only_completed=False)) == count


# -- 7. finalize and publish on the wrong state raise, whatever raise_on_error says ---------------
def test_finalize_twice_and_publishing_a_draft_raise_whatever_the_flag(machine) -> None:
    d = Dataset.create(dataset_name="f", dataset_project="P")
    with pytest.raises(DsError, match="finalized before it is published"):
        d.publish(raise_on_error=False)
    d.finalize()
    with pytest.raises(DsError, match="already finalized"):
        d.finalize(raise_on_error=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert d.publish(raise_on_error=False) is True


def test_a_write_between_the_read_and_the_swap_is_merged_not_lost(
        machine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another machine's write landing between this push's read and its write makes the
    compare-and-swap fail; the push reads again and applies its change to that record."""
    from objstore.remote_fs import RemoteFS

    z = version(tmp_path)
    machine("two")
    two = Dataset.get(dataset_id=z.id)
    machine("one")
    real = RemoteFS.swap_ref
    raced = []

    def swap(self, rel, value, token):
        if rel.endswith(f"{z.id}.json") and not raced:
            raced.append(rel)
            monkeypatch.setenv("DSSTORE_DIR", str(tmp_path / "one" / ".dsstore"))
            z.add_tags(["gold"])  # machine one's write lands first
            monkeypatch.setenv("DSSTORE_DIR", str(tmp_path / "two" / ".dsstore"))
        return real(self, rel, value, token)

    machine("two")
    monkeypatch.setattr(RemoteFS, "swap_ref", swap)
    two.add_tags(["silver"])
    assert raced and shared_record(tmp_path, z.id)["tags"] == ["gold", "silver"]
    assert Dataset.get(dataset_id=z.id).tags == ["gold", "silver"]


def test_add_files_passes_over_git_folders_and_refuses_a_dataset_path_inside_one(
        tmp_path: Path, machine) -> None:
    machine("m1")
    src = tmp_path / "src"
    (src / ".git").mkdir(parents=True)
    (src / ".git" / "config").write_text("[core]\n\tfsmonitor = touch PWNED\n")
    (src / "sub").mkdir()
    (src / "sub" / ".git").write_text("gitdir: ../elsewhere\n")
    (src / "d").mkdir()
    (src / "d" / "x").write_text("x")
    ds = Dataset.create(dataset_name="g", dataset_project="P")
    ds.add_files(str(src))
    assert ds.list_files() == ["d/x"]
    with pytest.raises(DsError, match="inside a .git folder"):
        ds.add_files(str(src / "d"), dataset_path=".git/hooks")

"""The ClearML-compatible Dataset SDK: every method against the stated behaviour."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from objstore import Dataset
from objstore.dataset import DatasetFinalized, DatasetNotFound, split_parts
from objstore.errors import DsError, TargetNotEmpty

from .conftest import read_tree, write


@pytest.fixture(autouse=True)
def env(tmp_path: Path, monkeypatch) -> Path:
    store = tmp_path / "store" / ".dsstore"
    monkeypatch.setenv("DSSTORE_DIR", str(store))
    monkeypatch.delenv("DSSTORE_REMOTE", raising=False)
    monkeypatch.chdir(tmp_path)
    return store


@pytest.fixture
def data(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    write(d, "a.csv", "x,y\n1,2\n")
    write(d, "img/cat.jpg", os.urandom(3000))
    write(d, "img/dog.jpg", os.urandom(2000))
    write(d, "notes.txt", "hello")
    return d


def make(name="ds", project="proj", **kw) -> Dataset:
    return Dataset.create(dataset_name=name, dataset_project=project, **kw)


def test_create_has_id_at_once_and_keeps_it(data: Path) -> None:
    ds = make()
    first = ds.id
    assert len(first) == 32 and not ds.is_final()
    assert ds.add_files(data) == 4
    assert ds.finalize() is True
    assert ds.id == first and ds.is_final()
    again = Dataset.get(dataset_id=first)
    assert again.id == first and again.version == "1.0.0"
    assert sorted(again.list_files()) == ["a.csv", "img/cat.jpg", "img/dog.jpg", "notes.txt"]


def test_draft_survives_a_restart(data: Path) -> None:
    ds = make()
    ds.add_files(data / "a.csv")
    reopened = Dataset.get(dataset_id=ds.id)  # as a new process would
    assert reopened.list_files() == ["a.csv"] and not reopened.is_final()
    reopened.add_files(data / "notes.txt")
    reopened.finalize()
    assert Dataset.get(dataset_id=ds.id).list_files() == ["a.csv", "notes.txt"]


def test_add_files_options(data: Path) -> None:
    ds = make()
    assert ds.add_files(data, wildcard="*.jpg") == 2
    assert ds.list_files() == ["img/cat.jpg", "img/dog.jpg"]
    assert ds.add_files(data, wildcard=["*.csv", "*.txt"], dataset_path="meta") == 2
    assert ds.add_files(data / "img", local_base_folder=data, dataset_path="/copy/") == 2
    assert ds.add_files(data, recursive=False) == 2
    assert sorted(ds.list_files()) == ["a.csv", "copy/img/cat.jpg", "copy/img/dog.jpg", "img/cat.jpg",
                                       "img/dog.jpg", "meta/a.csv", "meta/notes.txt", "notes.txt"]
    # unchanged content is not counted; changed content replaces, new files count
    write(data, "a.csv", "x,y\n9,9\n")
    assert ds.add_files(data, recursive=False) == 0
    assert ds.file_entries_dict["a.csv"].size == len("x,y\n9,9\n")
    with pytest.raises(DsError, match="does not exist"):
        ds.add_files(data / "missing")


def test_versions_bump_and_get_picks_highest(data: Path) -> None:
    v1 = make()
    v1.add_files(data / "a.csv")
    v1.finalize()
    v2 = make(parent_datasets=[v1.id])
    assert v2.version == "1.0.1"
    v2.finalize()
    v3 = make(dataset_version="1.2")
    v3.finalize()
    assert make(dataset_version=None).version == "1.3"
    assert Dataset.get(dataset_project="proj", dataset_name="ds", only_completed=True).id == v3.id
    assert Dataset.get(dataset_project="proj", dataset_name="ds", dataset_version="1.0.1").id == v2.id
    with pytest.raises(DatasetNotFound, match="no dataset matches"):
        Dataset.get(dataset_project="proj", dataset_name="nope")
    with pytest.raises(ValueError, match="criteria"):
        Dataset.get()
    with pytest.raises(ValueError, match="Invalid"):
        Dataset.get(dataset_name="ds", bogus=1)
    auto = Dataset.get(dataset_project="proj", dataset_name="fresh", auto_create=True)
    assert auto.name == "fresh" and not auto.is_final()


def test_get_by_commit_prefix_and_tags(data: Path) -> None:
    ds = make(dataset_tags=["raw"])
    ds.add_files(data)
    ds.finalize()
    commit = ds._record["commit"]
    assert Dataset.get(dataset_id=commit[:10]).id == ds.id
    assert Dataset.get(dataset_project="proj", dataset_tags="raw").id == ds.id
    ds.add_tags(["clean", "v1"])
    assert ds.tags == ["raw", "clean", "v1"]  # in the order given, as ClearML keeps them
    with pytest.raises(DatasetNotFound):
        Dataset.get(dataset_project="proj", dataset_tags=["missing"])


def test_parents_merge_in_order_and_must_be_final(data: Path, tmp_path: Path) -> None:
    a = make("a")
    write(tmp_path / "pa", "shared.txt", "from a")
    write(tmp_path / "pa", "only_a.txt", "a")
    a.add_files(tmp_path / "pa")
    draft = make("draft")
    with pytest.raises(DsError, match="not finalized"):
        make("child", parent_datasets=[a.id])
    a.finalize()
    b = make("b")
    write(tmp_path / "pb", "shared.txt", "from b")
    b.add_files(tmp_path / "pb")
    b.finalize()
    child = make("child", parent_datasets=[a, b.id])
    out = child.get_mutable_local_copy(tmp_path / "child")
    assert (Path(out) / "shared.txt").read_text() == "from b"
    assert (Path(out) / "only_a.txt").read_text() == "a"
    assert child.get_dependency_graph() == {child.id: [a.id, b.id], a.id: [], b.id: []}
    assert draft.is_final() is False


def test_finalized_version_is_immutable(data: Path) -> None:
    ds = make()
    ds.add_files(data)
    ds.finalize()
    for call in (lambda: ds.add_files(data), lambda: ds.remove_files("*.csv"),
                 lambda: ds.sync_folder(data), lambda: ds.set_metadata({"a": 1})):
        with pytest.raises(DatasetFinalized, match="finalized"):
            call()
    with pytest.raises(DatasetFinalized):
        ds.finalize()
    with pytest.raises(DatasetFinalized, match="already finalized"):  # as ClearML, whatever the flag
        ds.finalize(raise_on_error=False)


def test_remove_and_sync_folder(data: Path, tmp_path: Path) -> None:
    ds = make()
    ds.add_files(data)
    assert ds.remove_files("*.jpg") == 2
    assert ds.list_files() == ["a.csv", "notes.txt"]
    local = tmp_path / "local"
    write(local, "a.csv", "x,y\n1,2\n")  # same content
    write(local, "notes.txt", "changed")  # modified
    write(local, "new.bin", os.urandom(10))  # added
    (local / "sub").mkdir()
    assert ds.sync_folder(local) == (0, 1, 1)
    os.unlink(local / "a.csv")
    assert ds.sync_folder(local) == (1, 0, 0)
    assert ds.list_files() == ["new.bin", "notes.txt"]
    assert ds.remove_files() == 2 and ds.list_files() == []


def test_lists_of_changes_against_parents(data: Path, tmp_path: Path) -> None:
    p = make()
    p.add_files(data)
    p.finalize()
    c = make(parent_datasets=[p.id])
    c.remove_files("notes.txt")
    write(tmp_path / "x", "a.csv", "changed")
    write(tmp_path / "x", "new.txt", "new")
    c.add_files(tmp_path / "x")
    c.finalize()
    assert c.list_added_files() == ["new.txt"]
    assert c.list_modified_files() == ["a.csv"]
    assert c.list_removed_files() == ["notes.txt"]
    assert p.list_added_files(dataset_id=c.id) == ["notes.txt"]
    owners = {k: v.parent_dataset_id for k, v in c.file_entries_dict.items()}
    assert owners == {"a.csv": c.id, "new.txt": c.id, "img/cat.jpg": p.id, "img/dog.jpg": p.id}
    assert c.list_files(dataset_id=p.id) == ["img/cat.jpg", "img/dog.jpg"]
    assert c.list_files("img/*") == ["img/cat.jpg", "img/dog.jpg"]
    assert c.get_num_chunks() == 4 and c.get_num_chunks(include_parents=False) == 2


def test_local_copies(data: Path, tmp_path: Path) -> None:
    ds = make()
    ds.add_files(data)
    with pytest.raises(DsError, match="not finalized"):
        ds.get_local_copy()
    ds.finalize()
    ro = ds.get_local_copy()
    assert read_tree(Path(ro)) == {k: (v[0], False) for k, v in read_tree(data).items()}
    assert not os.access(Path(ro) / "a.csv", os.W_OK) or os.geteuid() == 0
    assert not (os.stat(Path(ro) / "a.csv").st_mode & 0o222)
    assert ds.get_local_copy() == ro  # cached
    assert ds.verify_dataset_hash() == []
    target = tmp_path / "mutable"
    write(target, "mine", "keep me")
    with pytest.raises(TargetNotEmpty):
        ds.get_mutable_local_copy(target)
    assert read_tree(target) == {"mine": (b"keep me", False)}
    out = ds.get_mutable_local_copy(target, overwrite=True)
    assert read_tree(Path(out)) == read_tree(data)
    write(Path(out), "a.csv", "x,y\n1,3\n")  # same size, other content
    write(Path(out), "img/cat.jpg", b"short")
    os.unlink(Path(out) / "notes.txt")
    assert ds.verify_dataset_hash(out) == ["a.csv", "img/cat.jpg", "notes.txt"]
    assert ds.verify_dataset_hash(out, skip_hash=True) == ["img/cat.jpg", "notes.txt"]


def test_parts_are_deterministic_and_balanced(data: Path, tmp_path: Path) -> None:
    ds = make()
    for i in range(20):
        write(tmp_path / "many", f"f{i:02d}", os.urandom(100 * (i + 1)))
    ds.add_files(tmp_path / "many")
    ds.finalize()
    parts = [sorted(os.listdir(ds.get_local_copy(part=k, num_parts=3))) for k in range(3)]
    assert sorted(sum(parts, [])) == sorted(ds.list_files())
    sizes = [sum(100 * (int(f[1:]) + 1) for f in p) for p in parts]
    assert max(sizes) - min(sizes) <= 2000
    # worked by hand: sizes 2000, 1900, ..., 100 in turn to the lightest part (ties: the first)
    # reach loads 7100 / 7000 / 6900
    assert parts == [["f01", "f02", "f07", "f08", "f13", "f14", "f19"],
                     ["f00", "f03", "f06", "f09", "f12", "f15", "f18"],
                     ["f04", "f05", "f10", "f11", "f16", "f17"]]
    with pytest.raises(DsError, match="part"):
        ds.get_local_copy(part=3, num_parts=3)


def test_split_parts_against_splits_worked_by_hand() -> None:
    from objstore.manifest import FILE, FileEntry

    def entries(**sizes: int) -> dict[str, FileEntry]:
        return {name: FileEntry(name, FILE, size, bytes(16)) for name, size in sizes.items()}

    # largest first: a (5) to part 0, b (5, tie broken by name) to part 1, c (3) to the
    # lighter-or-first part 0 (5 vs 5), d (1) to part 1 (8 vs 5): loads 8 / 6
    assert split_parts(entries(d=1, c=3, b=5, a=5), 2) == [["a", "c"], ["b", "d"]]
    # z (9) alone outweighs the rest, which all go to the other part
    assert split_parts(entries(x=2, y=3, z=9, w=4), 2) == [["z"], ["w", "x", "y"]]
    # more parts than files: the extra parts are empty, never an error
    assert split_parts(entries(a=1, b=2), 4) == [["b"], ["a"], [], []]
    assert split_parts({}, 2) == [[], []]


def test_squash_keeps_removals_and_unions_unrelated(data: Path, tmp_path: Path) -> None:
    v1 = make()
    v1.add_files(data)
    v1.finalize()
    v2 = make(parent_datasets=[v1.id])
    v2.remove_files("notes.txt")
    v2.finalize()
    sq = Dataset.squash("squashed", dataset_ids=[v1.id, v2.id])
    assert sq.is_final() and sq.get_dependency_graph() == {sq.id: []}
    assert sq.list_files() == v2.list_files()
    other = make("other")
    write(tmp_path / "o", "a.csv", "other a")
    other.add_files(tmp_path / "o")
    other.finalize()
    both = Dataset.squash("both", dataset_project_name_pairs=[("proj", "ds"), ("proj", "other")])
    copy = Path(both.get_local_copy())
    assert (copy / "a.csv").read_text() == "other a" and (copy / "img/cat.jpg").exists()


def test_list_delete_rename_move(data: Path) -> None:
    v1 = make()
    v1.add_files(data)
    v1.finalize()
    v2 = make(parent_datasets=[v1.id])
    v2.finalize()
    make("draft-only")
    listed = Dataset.list_datasets(dataset_project="proj")
    assert [d["id"] for d in listed] == [v1.id, v2.id]
    assert {"id", "name", "project", "version", "tags", "created"} <= set(listed[0])
    assert len(Dataset.list_datasets(only_completed=False)) == 3
    assert Dataset.list_datasets(partial_name="^dr") == []
    with pytest.raises(DsError, match="depends on"):
        Dataset.delete(dataset_id=v1.id)
    Dataset.rename("renamed", dataset_project="proj", dataset_name="ds")
    Dataset.move_to_project("new-proj", dataset_project="proj", dataset_name="renamed")
    assert Dataset.get(dataset_id=v2.id).project == "new-proj"
    assert Dataset.get(dataset_project="new-proj", dataset_name="renamed").id == v2.id
    Dataset.delete(dataset_id=v1.id, force=True)
    with pytest.raises(DatasetNotFound):
        Dataset.get(dataset_id=v1.id)
    # what is not there: ClearML logs a warning and goes on, so a cleanup script can run twice
    from objstore.dataset import DeleteRefused, NothingDone

    with pytest.warns(DeleteRefused, match="nothing deleted"):
        Dataset.delete(dataset_project="proj", dataset_name="nothing")
    with pytest.warns(DeleteRefused, match="nothing deleted"):
        Dataset.delete(dataset_id=v1.id, force=True)
    with pytest.warns(NothingDone, match="nothing changed"):
        Dataset.rename("x", dataset_project="proj", dataset_name="nothing")
    with pytest.warns(NothingDone, match="nothing changed"):
        Dataset.move_to_project("x", dataset_project="proj", dataset_name="nothing")


def test_delete_then_gc_frees_bytes(data: Path, env: Path) -> None:
    from objstore.maintenance import fsck, gc
    from objstore.store import Store

    ds = make()
    write(data, "big.bin", os.urandom(400_000))
    ds.add_files(data)
    ds.finalize()
    Dataset.delete(dataset_id=ds.id)
    store = Store(env)
    assert gc(store).bytes_freed > 390_000
    assert fsck(store, read_data=True).ok


def test_draft_content_survives_gc(data: Path, env: Path) -> None:
    from objstore.maintenance import gc
    from objstore.store import Store

    ds = make()
    ds.add_files(data)
    gc(Store(env))
    ds.finalize()
    assert ds.verify_dataset_hash() == []


def test_metadata_description_publish(data: Path) -> None:
    ds = make(description="first")
    ds.set_metadata({"rows": 2, "cols": ["x", "y"]})
    ds.set_metadata([1, 2], metadata_name="extra")
    with pytest.raises(DsError, match="data_"):
        ds.set_metadata({}, metadata_name="data_x")
    with pytest.raises(DsError, match="JSON"):
        ds.set_metadata(object())
    ds.set_description("second")
    with pytest.raises(DsError, match="finalized before"):
        ds.publish()
    ds.finalize()
    ds.publish()
    got = Dataset.get(dataset_project="proj", dataset_name="ds", only_published=True)
    assert got.get_metadata() == {"rows": 2, "cols": ["x", "y"]} and got.get_metadata("extra") == [1, 2]
    assert got.description == "second"


def test_external_files_are_linked_not_stored(tmp_path: Path) -> None:
    remote = tmp_path / "bucket"
    write(remote, "a.jpg", os.urandom(5000))
    write(remote, "sub/b.jpg", os.urandom(7000))
    write(remote, "c.txt", "text")
    ds = make()
    assert ds.add_external_files(f"file://{remote}", wildcard="*.jpg", dataset_path="/ext/") == 2
    ds.finalize()
    links = ds.link_entries_dict
    assert sorted(links) == ["ext/a.jpg", "ext/sub/b.jpg"]
    assert links["ext/a.jpg"].link.endswith("/bucket/a.jpg") and links["ext/a.jpg"].size == 5000
    packs = sum(p.stat().st_size for p in (Path(os.environ["DSSTORE_DIR"]) / "packs").glob("*/*.pack"))
    assert packs < 2000  # the bytes were not copied into the store
    out = Path(ds.get_mutable_local_copy(tmp_path / "copy"))
    assert (out / "ext/sub/b.jpg").read_bytes() == (remote / "sub/b.jpg").read_bytes()


def test_upload_and_get_from_remote_only(data: Path, tmp_path: Path, monkeypatch) -> None:
    remote = tmp_path / "remote"
    ds = make()
    ds.add_files(data)
    assert ds.is_dirty()
    ds.upload()  # no remote configured: the local store is the storage
    assert not ds.is_dirty()
    ds.add_files(data / "a.csv", dataset_path="again")
    monkeypatch.setenv("DSSTORE_REMOTE", str(remote))
    with pytest.raises(DsError, match="upload"):
        ds.finalize()
    ds.upload(output_url=str(remote))
    ds.finalize()
    assert (remote / "datasets" / f"{ds.id}.json").exists()
    # another machine: an empty store, the same default remote
    monkeypatch.setenv("DSSTORE_DIR", str(tmp_path / "other" / ".dsstore"))
    got = Dataset.get(dataset_project="proj", dataset_name="ds")
    assert got.id == ds.id and got.is_final()
    assert read_tree(Path(got.get_local_copy()))["a.csv"][0] == (data / "a.csv").read_bytes()
    assert got.verify_dataset_hash() == []


def test_logger_reports_are_kept(data: Path, tmp_path: Path) -> None:
    ds = make()
    csv = write(tmp_path, "t.csv", "a,b\n1,2\n")
    ds.get_logger().report_table(title="Raw", series="Raw", csv=str(csv))
    ds.get_logger().report_histogram(title="h", series="h", values=[1, 2], iteration=0,
                                     xlabels=["a", "b"], yaxis="n")
    reports = ds.get_metadata("reports")
    assert reports[0]["rows"] == [["a", "b"], ["1", "2"]] and reports[1]["values"] == [1, 2]


def test_store_location_rules(tmp_path: Path, monkeypatch) -> None:
    from objstore.dataset_store import store_path
    from objstore.store import Store

    assert store_path() == Path(os.environ["DSSTORE_DIR"])
    monkeypatch.delenv("DSSTORE_DIR")
    Store.init(tmp_path / "proj")
    deep = tmp_path / "proj" / "a" / "b"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    assert store_path() == tmp_path / "proj" / ".dsstore"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert store_path() == tmp_path / "xdg" / "objstore" / ".dsstore"


def test_finalize_interrupted_after_commit_is_adopted(data: Path) -> None:
    ds = make()
    ds.add_files(data)
    store = ds._store
    # what a finalize killed between writing the ref and the record leaves behind
    tree = store.meta.repo.TreeBuilder().write()
    orphan = store.meta.commit(tree, [], "interrupted")
    store.meta.set_ref(f"refs/datasets/{ds.id}", orphan)
    assert ds.finalize() is True
    assert ds.is_final() and ds._record["commit"] == orphan

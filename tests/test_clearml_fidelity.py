"""ClearML fidelity: scripts written as ClearML's examples write them, run on objstore.

Each test is a short ClearML-style script (only the import differs) for one point where a
script that goes a little beyond ClearML's own examples used to break: keywords of ClearML
2.x, ``output_uri=True`` and ``azure://`` URLs, tag queries, wildcards, parts, versions,
listings and the ``clearml-data`` lines of ``ds dataset``. The last test compares the
signature of every public ``Dataset`` member with ClearML 2.1's.
"""

from __future__ import annotations

import inspect
import os
import re
import subprocess
from datetime import datetime
from pathlib import Path

import pytest

from objstore import Dataset
from objstore.errors import DsError

from .conftest import DS, write


@pytest.fixture(autouse=True)
def env(tmp_path: Path, monkeypatch) -> Path:
    store = tmp_path / "store" / ".dsstore"
    monkeypatch.setenv("DSSTORE_DIR", str(store))
    monkeypatch.delenv("DSSTORE_REMOTE", raising=False)
    monkeypatch.chdir(tmp_path)
    return store


@pytest.fixture
def images(tmp_path: Path) -> Path:
    """A folder as image datasets hold them: files at the top, in sub, and deeper."""
    d = tmp_path / "images"
    write(d, "top.jpg", os.urandom(300))
    write(d, "readme.txt", "about")
    write(d, "sub/a.jpg", os.urandom(400))
    write(d, "sub/deeper/c.jpg", os.urandom(500))
    write(d, "train/sub/b.jpg", os.urandom(600))
    write(d, "train/x.png", os.urandom(700))
    return d


# -- item 3: ClearML 2.x keywords ------------------------------------------------------------------
def test_upload_takes_preview_and_clearml_2x_keywords(images: Path) -> None:
    dataset = Dataset.create(dataset_name="images", dataset_project="fidelity")
    dataset.add_files(path=images)
    dataset.upload(show_progress=False, preview=False)
    dataset.finalize()

    same = Dataset.get(dataset_project="fidelity", dataset_name="images", silence_alias_warnings=True)
    assert same.id == dataset.id

    squashed = Dataset.squash(dataset_name="flat", dataset_ids=[dataset.id], close_squashed_dataset=False)
    assert not squashed.is_final()  # left open: a script may add to it before closing it
    write(images, "late.txt", "added after the squash")
    squashed.add_files(images / "late.txt")
    squashed.upload()
    squashed.finalize()
    assert "late.txt" in squashed.list_files() and "sub/a.jpg" in squashed.list_files()

    Dataset.delete(dataset_project="fidelity", dataset_name="flat", shallow_search=True)
    assert [d["name"] for d in Dataset.list_datasets(dataset_project="fidelity")] == ["images"]


def test_upload_as_external_links_writes_each_file_and_links_it(images: Path, tmp_path: Path) -> None:
    bucket = tmp_path / "bucket"
    base = Dataset.create(dataset_name="base", dataset_project="fidelity")
    base.add_files(images / "readme.txt")
    base.upload(output_url=str(bucket))
    base.finalize()

    dataset = Dataset.create(dataset_name="linked", dataset_project="fidelity", parent_datasets=[base.id])
    dataset.add_files(images / "sub", dataset_path="sub")
    with pytest.raises(DsError, match="output_url"):
        dataset.upload(upload_as_external_links=True)  # nowhere to put them
    dataset.upload(output_url=str(bucket), upload_as_external_links=True)
    dataset.finalize()

    folder = bucket / "external_links" / dataset.id
    assert (folder / "sub/a.jpg").read_bytes() == (images / "sub/a.jpg").read_bytes()
    links = dataset.link_entries_dict
    assert sorted(links) == ["sub/a.jpg", "sub/deeper/c.jpg"]
    assert links["sub/a.jpg"].link == f"{folder}/sub/a.jpg" and links["sub/a.jpg"].hash is None
    assert list(dataset.file_entries_dict) == ["readme.txt"]  # the parent's file stays stored
    copy = Path(dataset.get_local_copy())
    assert (copy / "sub/deeper/c.jpg").read_bytes() == (images / "sub/deeper/c.jpg").read_bytes()
    assert (copy / "readme.txt").read_text() == "about"


# -- item 5: output_uri=True and azure:// ----------------------------------------------------------
def test_output_uri_true_means_the_default_remote(images: Path, tmp_path: Path, monkeypatch) -> None:
    remote = tmp_path / "shared"
    monkeypatch.setenv("DSSTORE_REMOTE", str(remote))
    dataset = Dataset.create(dataset_name="images", dataset_project="fidelity", output_uri=True)
    dataset.add_files(path=images)
    dataset.upload()
    dataset.finalize()
    assert dataset.get_default_storage() == str(remote)
    assert (remote / "datasets" / f"{dataset.id}.json").is_file()


def test_azure_urls_name_the_azure_backend() -> None:
    from objstore.remote_fs import fsspec_url

    assert fsspec_url("azure://company.blob.core.windows.net/folder/data/x") == \
        "az://folder@company.blob.core.windows.net/data/x"
    assert fsspec_url("azure://container/data") == "az://container/data"
    assert fsspec_url("s3://bucket/azure://x") == "s3://bucket/azure://x"
    with pytest.raises(DsError, match="no container"):
        fsspec_url("azure://company.blob.core.windows.net/")


def test_upload_to_and_get_from_an_azure_url(images: Path, tmp_path: Path, azurite, monkeypatch) -> None:
    container = azurite.new_bucket()
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.options["connection_string"])
    url = f"azure://devstoreaccount1.blob.core.windows.net/{container}/datasets"
    dataset = Dataset.create(dataset_name="images", dataset_project="fidelity", output_uri=url)
    dataset.add_files(path=images)
    dataset.upload()
    dataset.finalize()
    # another machine, the same storage as its default remote
    monkeypatch.setenv("DSSTORE_DIR", str(tmp_path / "other" / ".dsstore"))
    monkeypatch.setenv("DSSTORE_REMOTE", url)
    got = Dataset.get(dataset_project="fidelity", dataset_name="images")
    assert got.id == dataset.id
    assert Path(got.get_local_copy(), "sub/a.jpg").read_bytes() == (images / "sub/a.jpg").read_bytes()


def test_external_azure_links_are_read_by_copies_and_ds_urls(tmp_path: Path, azurite, monkeypatch) -> None:
    import adlfs
    import fsspec

    container = azurite.new_bucket()
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.options["connection_string"])
    adlfs.AzureBlobFileSystem(connection_string=azurite.options["connection_string"]).pipe_file(
        f"{container}/ext/x.bin", b"linked bytes")
    url = f"azure://devstoreaccount1.blob.core.windows.net/{container}/ext/x.bin"
    dataset = Dataset.create(dataset_name="links", dataset_project="fidelity")
    assert dataset.add_external_files(source_url=url) == 1
    dataset.finalize()
    assert Path(dataset.get_local_copy(), "x.bin").read_bytes() == b"linked bytes"
    with fsspec.open("ds://fidelity/links@latest/x.bin", "rb") as f:
        assert f.read() == b"linked bytes"


# -- item 6: tag queries ---------------------------------------------------------------------------
def _tagged(name: str, tags: list[str]) -> str:
    ds = Dataset.create(dataset_name=name, dataset_project="tags", dataset_tags=tags)
    ds.finalize()
    return ds.id


def test_tag_filters_are_or_by_default_with_all_and_exclude_forms() -> None:
    cats, dogs, both = _tagged("cats", ["cat"]), _tagged("dogs", ["dog"]), _tagged("both", ["cat", "dog"])
    _tagged("none", [])

    def listed(tags):
        return {d["id"] for d in Dataset.list_datasets(dataset_project="tags", tags=tags)}

    assert listed(["cat", "dog"]) == {cats, dogs, both}
    assert listed(["__$all", "cat", "dog"]) == {both}
    assert listed(["cat", "-dog"]) == {cats}
    assert listed(["-cat"]) == {dogs, _id_of("none")}
    assert listed(["__$all", "cat", "__$not", "dog"]) == {cats}
    assert Dataset.get(dataset_project="tags", dataset_tags=["__$all", "dog", "cat"]).id == both
    assert Dataset.get(dataset_project="tags", dataset_name="cats", dataset_tags=["dog", "cat"]).id == cats
    with pytest.raises(DsError, match="unknown operator"):
        listed(["__$maybe", "cat"])


def _id_of(name: str) -> str:
    return Dataset.get(dataset_project="tags", dataset_name=name).id


def test_tags_keep_their_order() -> None:
    dataset = Dataset.create(dataset_name="ordered", dataset_project="tags", dataset_tags=["raw", "2024"])
    dataset.add_tags(["validated", "raw"])
    assert dataset.tags == ["raw", "2024", "validated"]
    dataset.tags = ["z", "a", "m"]
    assert Dataset.get(dataset_id=dataset.id).tags == ["z", "a", "m"]


# -- item 7: wildcards -----------------------------------------------------------------------------
def test_add_files_picks_what_pathlib_globbing_picks(images: Path) -> None:
    dataset = Dataset.create(dataset_name="glob", dataset_project="fidelity")
    # rglob('sub/*.jpg'): a jpg directly inside any folder named sub, at any depth
    assert dataset.add_files(path=images, wildcard="sub/*.jpg") == 2
    assert dataset.list_files() == ["sub/a.jpg", "train/sub/b.jpg"]
    # glob('*.jpg'): the top folder only
    assert dataset.add_files(path=images, wildcard="*.jpg", recursive=False, dataset_path="top") == 1
    assert dataset.list_files("top/*") == ["top/top.jpg"]
    # glob('sub/*.jpg') without recursion still looks into sub
    assert dataset.add_files(path=images, wildcard="sub/*.jpg", recursive=False, dataset_path="nr") == 1
    assert dataset.list_files("nr/*") == ["nr/sub/a.jpg"]
    # a file is added whatever the wildcard says, as ClearML does
    assert dataset.add_files(path=images / "readme.txt", wildcard="*.jpg") == 1
    assert "readme.txt" in dataset.list_files()


def test_list_and_remove_match_as_clearml(images: Path) -> None:
    dataset = Dataset.create(dataset_name="match", dataset_project="fidelity")
    dataset.add_files(path=images)
    assert dataset.list_files("*.jpg", recursive=False) == ["top.jpg"]
    assert dataset.list_files("*.jpg") == ["sub/a.jpg", "sub/deeper/c.jpg", "top.jpg", "train/sub/b.jpg"]
    assert dataset.list_files("/sub/*") == ["sub/a.jpg", "sub/deeper/c.jpg"]
    assert dataset.list_files("sub/*", recursive=False) == ["sub/a.jpg"]
    assert dataset.remove_files("sub") == 0  # a folder name alone names no file in ClearML
    assert dataset.remove_files("sub/") == 0
    assert dataset.remove_files("*.jpg", recursive=False) == 1
    assert dataset.remove_files("/train/*") == 2
    assert dataset.list_files() == ["readme.txt", "sub/a.jpg", "sub/deeper/c.jpg"]


def test_external_files_are_removed_by_their_url_and_tagged(tmp_path: Path) -> None:
    bucket = tmp_path / "bucket"
    write(bucket, "frames/f1.jpg", os.urandom(100))
    write(bucket, "frames/f2.jpg", os.urandom(100))
    write(bucket, "frames/deep/f3.jpg", os.urandom(100))
    dataset = Dataset.create(dataset_name="links", dataset_project="fidelity")
    assert dataset.add_external_files(source_url=f"file://{bucket}/frames/", dataset_path="/frames",
                                      wildcard="*.jpg", recursive=False) == 2
    assert "external files" in dataset.tags
    assert sorted(dataset.link_entries_dict) == ["frames/f1.jpg", "frames/f2.jpg"]
    assert dataset.file_entries_dict == {}  # links are not stored files
    assert dataset.remove_files(dataset_path=f"file://{bucket}/frames/f2.jpg") == 1
    assert dataset.list_files() == ["frames/f1.jpg"]


# -- item 8: smaller points ------------------------------------------------------------------------
def test_part_without_num_parts_is_one_of_the_chunks(tmp_path: Path) -> None:
    for i in range(3):
        write(tmp_path / "shards", f"shard{i}.bin", os.urandom(1000 + i))
    dataset = Dataset.create(dataset_name="shards", dataset_project="fidelity")
    dataset.add_files(tmp_path / "shards")
    dataset.finalize()
    assert dataset.get_num_chunks() == 3
    parts = [sorted(os.listdir(dataset.get_local_copy(part=k))) for k in range(3)]
    assert sorted(sum(parts, [])) == dataset.list_files() and all(len(p) == 1 for p in parts)
    with pytest.raises(DsError, match="part"):
        dataset.get_local_copy(part=3)


def test_mutable_copy_into_a_full_folder_without_raising(images: Path, tmp_path: Path) -> None:
    dataset = Dataset.create(dataset_name="images", dataset_project="fidelity")
    dataset.add_files(images)
    dataset.finalize()
    target = write(tmp_path / "busy", "mine.txt", "keep").parent
    assert dataset.get_mutable_local_copy(target, raise_on_error=False) is None
    assert os.listdir(target) == ["mine.txt"]


def test_changes_against_own_id_are_against_the_parents(images: Path) -> None:
    parent = Dataset.create(dataset_name="images", dataset_project="fidelity")
    parent.add_files(images / "sub")
    parent.finalize()
    child = Dataset.create(dataset_name="images", dataset_project="fidelity", parent_datasets=[parent.id])
    child.add_files(images / "readme.txt")
    child.finalize()
    assert child.list_added_files(dataset_id=child.id) == child.list_added_files() == ["readme.txt"]
    assert child.list_removed_files(dataset_id=child.id) == []


@pytest.mark.parametrize(("first", "then"), [("1.0.0", "1.0.1"), ("v1", "2"), ("1.0rc1", "1.0rc2"),
                                             ("2.3.dev4", "2.3.dev5"), ("1.0.post1", "1.0.post2"),
                                             ("snapshot", "1.0.0")])
def test_next_version_follows_clearmls_version_rule(first: str, then: str) -> None:
    Dataset.create(dataset_name="versioned", dataset_project="fidelity", dataset_version=first).finalize()
    assert Dataset.create(dataset_name="versioned", dataset_project="fidelity").version == then


def test_get_picks_the_highest_version_by_clearmls_order() -> None:
    for v in ("1.9", "1.10", "1.10rc1", "latest"):
        Dataset.create(dataset_name="v", dataset_project="fidelity", dataset_version=v).finalize()
    assert Dataset.get(dataset_project="fidelity", dataset_name="v").version == "1.10"


def test_list_datasets_gives_datetimes_and_clearml_statuses() -> None:
    done = Dataset.create(dataset_name="done", dataset_project="fidelity")
    done.finalize()
    Dataset.create(dataset_name="draft", dataset_project="fidelity")
    listed = {d["name"]: d for d in Dataset.list_datasets(dataset_project="fidelity", only_completed=False)}
    assert isinstance(listed["done"]["created"], datetime) and listed["done"]["created"].tzinfo
    assert (listed["done"]["status"], listed["draft"]["status"]) == ("completed", "in_progress")
    assert set(listed["done"]) == {"name", "created", "project", "id", "tags", "version", "status"}


def test_changed_files_are_counted_and_update_changed_files_adds(images: Path) -> None:
    dataset = Dataset.create(dataset_name="counted", dataset_project="fidelity")
    dataset.add_files(images / "sub")
    write(images, "sub/a.jpg", os.urandom(10))
    dataset.add_files(images / "sub")
    dataset.remove_files("deeper/*")
    assert dataset.changed_files == {"files added": 2, "files removed": 1, "files modified": 1}
    dataset.update_changed_files(num_files_added=3, num_files_removed=None)
    assert Dataset.get(dataset_id=dataset.id).changed_files["files added"] == 5


# -- the rules themselves, against cases worked out from ClearML's code and its server's query ------
def test_tag_query_buckets_as_the_clearml_server() -> None:
    from objstore.clearml_rules import tag_filter

    # the server puts each tag in a bucket by the operator in force: all[a b c], any[d f g], none[e]
    query = tag_filter(["__$all", "a", "b", "c", "__$or", "d", "__$not", "e", "__$and", "__$or", "f", "g"])
    assert query(["a", "b", "c", "f"]) and not query(["a", "b", "c"]) and not query(["a", "b", "c", "f", "e"])
    either = tag_filter(["__$or", "a", "__$not", "b"])  # joined by OR: a, or not b
    assert either(["a", "b"]) and either([]) and not either(["b"])
    assert tag_filter(["__$all", "-x"])(["-x"])  # after an operator, '-' is part of the tag
    assert tag_filter(["a", None])([]) and not tag_filter(["a"])([])  # None: untagged versions too
    for bad in (["__$not"], ["__$not", "__$all", "a"], ["-"], ["__$xor"]):
        with pytest.raises(DsError):
            tag_filter(bad)


def test_versions_parse_order_and_bump_as_clearml() -> None:
    from objstore.clearml_rules import Version, version_order

    assert str(Version.parse("V1.0-ALPHA")) == "1.0a0" and str(Version.parse("1.0-2")) == "1.0.post2"
    assert str(Version.parse("1!2.0.preview3").next()) == "1!2.0rc4"
    assert Version.parse("1.0.post") is None and Version.parse("") is None
    # ClearML's order, not PEP 440's: a dev release sorts after a pre-release of the same
    # release, and 1.0 < 1.0.post1 < 1.0.0 (release numbers compare as tuples)
    ordered = ["nightly", "1.0a1", "1.0.dev1", "1.0", "1.0.post1", "1.0.0", "1.9", "1.10"]
    assert sorted(reversed(ordered), key=version_order) == ordered


def test_matches_any_wildcard_cases() -> None:
    from objstore.clearml_rules import glob_match, matches_any_wildcard

    assert matches_any_wildcard("a/b/c.json", "a/*.json")
    assert not matches_any_wildcard("a/b/c.json", "a/*.json", recursive=False)
    assert matches_any_wildcard("x/data/y", "data") is False and matches_any_wildcard("x/data", "data")
    assert matches_any_wildcard("./a//b.txt", ["*.csv", "a/b.txt"]) and matches_any_wildcard("f", None)
    assert glob_match("a/b/c.txt", "a/**/c.txt", recursive=False)
    assert glob_match("a/c.txt", "a/**/c.txt", recursive=False)
    with pytest.raises(DsError, match="whole path part"):
        glob_match("a", "a**")


# -- item 9: the clearml-data lines of `ds dataset` -------------------------------------------------
def run(*args: str, cwd: Path, code: int = 0) -> subprocess.CompletedProcess:
    proc = subprocess.run([DS, "dataset", *args], cwd=cwd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == code, (args, proc.stdout, proc.stderr)
    return proc


def test_cli_prints_clearml_data_lines(images: Path, tmp_path: Path) -> None:
    out = run("create", "--project", "cli", "--name", "imgs", "--tags", "raw", "cam1", cwd=tmp_path).stdout
    ds_id = re.fullmatch(r"Creating a new dataset:\nNew dataset created id=([0-9a-f]{32})\n", out).group(1)
    run("add", "--files", str(images / "sub"), cwd=tmp_path)
    run("close", cwd=tmp_path)
    lines = run("list", "--id", ds_id, cwd=tmp_path).stdout.splitlines()
    entries = Dataset.get(dataset_id=ds_id).file_entries_dict
    assert lines[:2] == [f"List dataset content: {ds_id}", "Listing dataset content"]
    assert lines[2] == f"{'file name':64} | {'size':10} | {'hash':64}"
    assert lines[3] == "-" * len(lines[2])
    size = entries["a.jpg"].size
    assert lines[4] == f"{'a.jpg':64} | {size:10,} | {entries['a.jpg'].hash:64}"
    assert lines[-1] == f"Total 2 files, {sum(e.size for e in entries.values())} bytes"
    search = run("search", "--project", "cli", "--tags", "__$all", "raw", "cam1", cwd=tmp_path).stdout
    search = search.splitlines()
    cells = [c.strip() for c in search[3].split(" | ")]
    assert search[1].split(" | ")[:5] == [f"{'project':16}", f"{'name':32}", f"{'version':19}",
                                          f"{'tags':19}", f"{'created':32}"]
    assert cells[:4] == ["cli", "imgs", "1.0.0", "'raw', 'cam1'"] and cells[5] == ds_id
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", cells[4])
    assert "cli" not in run("search", "--project", "cli", "--tags=-raw", cwd=tmp_path).stdout


def test_cli_verbose_and_verify_exit(images: Path, tmp_path: Path) -> None:
    out = run("create", "--project", "cli", "--name", "v", cwd=tmp_path).stdout
    ds_id = re.search(r"id=([0-9a-f]{32})", out).group(1)
    out = run("add", "--files", str(images / "readme.txt"), "--verbose", cwd=tmp_path).stdout
    assert f"id={ds_id}" in out.splitlines() and "non_recursive=False" in out.splitlines()
    run("close", cwd=tmp_path)
    copy = tmp_path / "copy"
    run("get", "--id", ds_id, "--copy", str(copy), cwd=tmp_path)
    (copy / "readme.txt").write_text("other")
    out = run("verify", "--id", ds_id, "--folder", str(copy), "--verbose", cwd=tmp_path, code=1).stdout
    assert "Error: hash mismatch readme.txt expected size/hash 5/" in out  # same size, other bytes
    assert out.splitlines()[-1] == "Dataset verification completed, 1 errors found!"


def test_cli_unknown_dataset_is_one_cli_worded_line(tmp_path: Path) -> None:
    proc = run("get", "--id", "nope", cwd=tmp_path, code=1)
    assert proc.stderr.splitlines() == [
        "Error: no dataset with id nope; `ds dataset search --not-only-completed` lists the datasets"]
    assert "Dataset." not in proc.stderr and "Traceback" not in proc.stderr
    proc = run("list", "--project", "nowhere", "--name", "none", cwd=tmp_path, code=1)
    assert proc.stderr.startswith("Error: no dataset matches project='nowhere'")
    assert "`ds dataset search" in proc.stderr


# -- the signature check ---------------------------------------------------------------------------
REQUIRED = object()
# ClearML 2.1 (clearml/datasets/dataset.py): every public member of Dataset.
# kind: "property" (with "setter" when it has one), "classmethod", "method";
# params: (name, default) in order after self/cls, REQUIRED for none; "**kwargs" as written.
CLEARML_DATASET = {
    "id": ("property", []), "file_entries": ("property", []), "link_entries": ("property", []),
    "file_entries_dict": ("property", []), "link_entries_dict": ("property", []),
    "project": ("property", []), "name": ("property", []),
    "version": ("property+setter", []), "tags": ("property+setter", []),
    "add_tags": ("method", [("tags", REQUIRED)]),
    "add_files": ("method", [("path", REQUIRED), ("wildcard", None), ("local_base_folder", None),
                             ("dataset_path", None), ("recursive", True), ("verbose", False),
                             ("max_workers", None)]),
    "add_external_files": ("method", [("source_url", REQUIRED), ("wildcard", None), ("dataset_path", None),
                                      ("recursive", True), ("verbose", False), ("max_workers", None),
                                      ("read_hash", False)]),
    "remove_files": ("method", [("dataset_path", None), ("recursive", True), ("verbose", False)]),
    "sync_folder": ("method", [("local_path", REQUIRED), ("dataset_path", None), ("verbose", False)]),
    "upload": ("method", [("show_progress", True), ("verbose", False), ("output_url", None),
                          ("compression", None), ("chunk_size", None), ("max_workers", None),
                          ("retries", 3), ("preview", True), ("upload_as_external_links", False)]),
    "finalize": ("method", [("verbose", False), ("raise_on_error", True), ("auto_upload", False)]),
    "set_metadata": ("method", [("metadata", REQUIRED), ("metadata_name", "metadata"), ("ui_visible", True)]),
    "get_metadata": ("method", [("metadata_name", "metadata")]),
    "set_description": ("method", [("description", REQUIRED)]),
    "publish": ("method", [("raise_on_error", True)]),
    "is_final": ("method", []),
    "get_local_copy": ("method", [("use_soft_links", None), ("part", None), ("num_parts", None),
                                  ("raise_on_error", True), ("max_workers", None), ("files", None)]),
    "get_mutable_local_copy": ("method", [("target_folder", REQUIRED), ("overwrite", False), ("part", None),
                                          ("num_parts", None), ("raise_on_error", True),
                                          ("max_workers", None)]),
    "list_files": ("method", [("dataset_path", None), ("recursive", True), ("dataset_id", None)]),
    "list_removed_files": ("method", [("dataset_id", None)]),
    "list_modified_files": ("method", [("dataset_id", None)]),
    "list_added_files": ("method", [("dataset_id", None)]),
    "get_dependency_graph": ("method", []),
    "verify_dataset_hash": ("method", [("local_copy_path", None), ("skip_hash", False), ("verbose", False)]),
    "get_default_storage": ("method", []),
    "create": ("classmethod", [("dataset_name", None), ("dataset_project", None), ("dataset_tags", None),
                               ("parent_datasets", None), ("use_current_task", False),
                               ("dataset_version", None), ("output_uri", None), ("description", None)]),
    "delete": ("classmethod", [("dataset_id", None), ("dataset_project", None), ("dataset_name", None),
                               ("force", False), ("dataset_version", None), ("entire_dataset", False),
                               ("shallow_search", False), ("delete_files", True),
                               ("delete_external_files", False)]),
    "rename": ("classmethod", [("new_dataset_name", REQUIRED), ("dataset_project", REQUIRED),
                               ("dataset_name", REQUIRED)]),
    "move_to_project": ("classmethod", [("new_dataset_project", REQUIRED), ("dataset_project", REQUIRED),
                                        ("dataset_name", REQUIRED)]),
    "get": ("classmethod", [("dataset_id", None), ("dataset_project", None), ("dataset_name", None),
                            ("dataset_tags", None), ("only_completed", False), ("only_published", False),
                            ("include_archived", False), ("auto_create", False), ("writable_copy", False),
                            ("dataset_version", None), ("alias", None), ("overridable", False),
                            ("shallow_search", False), ("silence_alias_warnings", False),
                            ("**kwargs", REQUIRED)]),
    "get_logger": ("method", []),
    "get_num_chunks": ("method", [("include_parents", True)]),
    "squash": ("classmethod", [("dataset_name", REQUIRED), ("dataset_ids", None),
                               ("dataset_project_name_pairs", None), ("output_url", None),
                               ("close_squashed_dataset", True)]),
    "list_datasets": ("classmethod", [("dataset_project", None), ("partial_name", None), ("tags", None),
                                      ("ids", None), ("only_completed", True),
                                      ("recursive_project_search", True), ("include_archived", True)]),
    "update_changed_files": ("method", [("num_files_added", None), ("num_files_modified", None),
                                        ("num_files_removed", None)]),
    "is_offline": ("classmethod", []),
    "set_offline": ("classmethod", [("offline_mode", False)]),
    "get_offline_mode_folder": ("method", []),
    "import_offline_session": ("classmethod", [("session_folder_zip", REQUIRED), ("upload", True),
                                               ("finalize", False)]),
    "is_dirty": ("method", []),
}


def _kind(name: str) -> str:
    raw = inspect.getattr_static(Dataset, name)
    if isinstance(raw, property):
        return "property+setter" if raw.fset is not None else "property"
    if isinstance(raw, classmethod):
        return "classmethod"
    if isinstance(raw, staticmethod):
        return "staticmethod"
    return "method"


@pytest.mark.parametrize("name", sorted(CLEARML_DATASET))
def test_signature_matches_clearml(name: str) -> None:
    kind, expected = CLEARML_DATASET[name]
    assert hasattr(Dataset, name), f"Dataset.{name} is missing"
    assert _kind(name) == kind
    if kind.startswith("property"):
        return
    member = getattr(Dataset, name)
    params = list(inspect.signature(member).parameters.values())
    if kind == "method":
        params = params[1:]  # self
    ours = [(f"**{p.name}" if p.kind is p.VAR_KEYWORD else p.name,
             REQUIRED if p.default is p.empty else p.default) for p in params]
    assert ours[:len(expected)] == expected
    for extra in params[len(expected):]:  # ours may add keyword-only extras, documented
        assert extra.kind is extra.KEYWORD_ONLY, f"{name}: {extra.name} must be keyword-only"
        assert extra.name in (member.__doc__ or ""), f"{name}: {extra.name} is not documented"


# -- review findings: concurrent writers, failed pushes, CLI wording ---------------------------------
def test_two_writers_adding_tags_keep_both(images: Path) -> None:
    d = Dataset.create(dataset_name="t", dataset_project="rev")
    d.finalize()
    a, b = Dataset.get(dataset_id=d.id), Dataset.get(dataset_id=d.id)
    a.add_tags(["from-a"])
    b.add_tags(["from-b"])
    assert Dataset.get(dataset_id=d.id).tags == ["from-a", "from-b"]
    a.remove_tags("from-b")
    assert Dataset.get(dataset_id=d.id).tags == ["from-a"]


def test_a_change_the_remote_did_not_take_is_not_undone_by_the_next_get(
        images: Path, tmp_path: Path, monkeypatch) -> None:
    from objstore.remote import Remote

    monkeypatch.setenv("DSSTORE_REMOTE", str(tmp_path / "shared"))
    d = Dataset.create(dataset_name="facts", dataset_project="rev", dataset_tags=["raw"])
    d.add_files(images)
    d.upload()
    d.finalize()

    def down(self, record):
        raise DsError("remote down (test)")

    with monkeypatch.context() as m:
        m.setattr(Remote, "push_record", down)
        with pytest.raises(DsError, match="remote down"):
            d.add_tags(["validated"])
        with pytest.raises(DsError, match="remote down"):
            d.publish()
    got = Dataset.get(dataset_project="rev", dataset_name="facts")  # reads the remote's older facts
    assert got.tags == ["raw", "validated"] and got._record["status"] == "published"
    got.add_tags(["again"])  # the remote is back: it takes the change, and the mark goes
    assert "unsynced" not in Dataset.get(dataset_id=d.id)._record
    import json

    remote_record = json.loads((tmp_path / "shared" / "datasets" / f"{d.id}.json").read_text())
    assert remote_record["tags"] == ["raw", "validated", "again"] and "unsynced" not in remote_record


def test_a_broken_name_pattern_is_one_clear_error() -> None:
    with pytest.raises(DsError, match="is not a regular expression"):
        Dataset.list_datasets(partial_name="a(")
    proc = run("search", "--name", "a(", cwd=Path.cwd(), code=1)
    assert proc.stderr.count("\n") == 1 and "not a regular expression" in proc.stderr


def test_cli_errors_speak_of_cli_flags_not_sdk_calls(images: Path, tmp_path: Path) -> None:
    proc = run("create", "--name", "x", cwd=tmp_path, code=1)
    assert proc.stderr.splitlines() == ["Error: a new dataset needs a project: give --project (or --parents, "
                                        "whose project it takes)"]
    out = run("create", "--project", "cli", "--name", "done", cwd=tmp_path).stdout
    ds_id = re.search(r"id=([0-9a-f]{32})", out).group(1)
    run("close", "--id", ds_id, cwd=tmp_path)
    proc = run("add", "--id", ds_id, "--files", str(images), cwd=tmp_path, code=1)
    assert f"ds dataset create --parents {ds_id}" in proc.stderr and "Dataset." not in proc.stderr
    proc = run("close", "--id", ds_id, cwd=tmp_path, code=1)  # closing twice: nothing to create
    assert proc.stderr.splitlines() == [f"Error: dataset {ds_id} is already finalized"]


def test_get_link_is_replaced_on_a_rerun_and_never_deletes_files(images: Path, tmp_path: Path) -> None:
    out = run("create", "--project", "cli", "--name", "linked", cwd=tmp_path).stdout
    ds_id = re.search(r"id=([0-9a-f]{32})", out).group(1)
    run("add", "--id", ds_id, "--files", str(images), cwd=tmp_path)
    run("close", "--id", ds_id, cwd=tmp_path)
    for _ in range(2):  # a second run replaces the link it made
        run("get", "--id", ds_id, "--link", "linked", cwd=tmp_path)
        assert (tmp_path / "linked").is_symlink() and (tmp_path / "linked" / "sub" / "a.jpg").is_file()
    write(tmp_path / "mine", "keep.txt", "mine")
    for flags in ([], ["--overwrite"]):
        proc = run("get", "--id", ds_id, "--link", "mine", *flags, cwd=tmp_path, code=1)
        assert "never deletes files" in proc.stderr and proc.stderr.count("\n") == 1
        assert (tmp_path / "mine" / "keep.txt").read_text() == "mine"


# -- two machines sharing one remote: what ClearML's server lets every machine see ---------

def _machine(tmp_path: Path, monkeypatch, name: str) -> None:
    """Switch the SDK to machine ``name``: its own store, the one shared remote."""
    monkeypatch.setenv("DSSTORE_DIR", str(tmp_path / name / ".dsstore"))
    monkeypatch.setenv("DSSTORE_REMOTE", str(tmp_path / "shared"))


def test_every_finalized_version_reaches_the_shared_remote_and_others_build_on_it(
        images: Path, tmp_path: Path, monkeypatch) -> None:
    """A version without file changes (new metadata, an empty dataset) is finalized where
    every machine sees it, as on ClearML's server; another machine lists it, builds a child
    of its id, and numbers that child after the versions the remote holds."""
    _machine(tmp_path, monkeypatch, "a")
    d = Dataset.create(dataset_name="n", dataset_project="p")
    d.add_files(images)
    d.finalize(auto_upload=True)
    e = Dataset.create(dataset_name="n", dataset_project="p", parent_datasets=[d])
    e.set_metadata({"note": "metadata only"}, metadata_name="notes")
    e.finalize(auto_upload=True)  # nothing new to upload: still published to the remote
    empty = Dataset.create(dataset_name="empty", dataset_project="p")
    empty.finalize()

    _machine(tmp_path, monkeypatch, "b")
    listed = {(r["name"], r["version"]) for r in Dataset.list_datasets(dataset_project="p")}
    assert listed == {("n", "1.0.0"), ("n", "1.0.1"), ("empty", "1.0.0")}
    assert Dataset.get(dataset_id=e.id).version == "1.0.1"
    child = Dataset.create(dataset_name="n", dataset_project="p", parent_datasets=[e.id])
    assert child.version == "1.0.2", "numbered after what the remote holds"
    assert sorted(child.list_files()) == sorted(d.list_files())
    fresh = Dataset.create(dataset_name="n", dataset_project="p")  # on a third machine too
    assert fresh.version == "1.0.3"
    _machine(tmp_path, monkeypatch, "c")
    flat = Dataset.squash("flat", dataset_ids=[d.id, e.id])  # ids only the remote has here
    assert sorted(flat.list_files()) == sorted(d.list_files())


def test_get_by_id_ignores_the_status_filters_and_auto_create_numbers_itself() -> None:
    """ClearML applies only_completed / only_published to a query by name, not to an id;
    and auto_create makes the next version whatever version was asked for."""
    draft = Dataset.create(dataset_name="d", dataset_project="p")
    assert Dataset.get(dataset_id=draft.id, only_completed=True).id == draft.id
    assert Dataset.get(dataset_id=draft.id, only_published=True).id == draft.id
    made = Dataset.get(dataset_project="p", dataset_name="zz", dataset_version="3.0", auto_create=True)
    assert made.version == "1.0.0"


def test_a_cached_copy_missing_or_changing_files_is_made_again(images: Path) -> None:
    """As ClearML checks each cached file's size: a script that moved, deleted or cut a
    file of its cached copy gets the whole version back on the next get_local_copy(), and
    a copy killed part-way (left in its temp folder) is never taken for a whole one."""
    d = Dataset.create(dataset_name="c", dataset_project="p")
    d.add_files(images)
    d.finalize()
    first = Path(d.get_local_copy())
    whole = sorted(p.relative_to(first).as_posix() for p in first.rglob("*") if p.is_file())
    victim = first / whole[0]
    os.chmod(victim, 0o644)
    victim.unlink()
    again = Path(Dataset.get(dataset_id=d.id).get_local_copy())
    assert again == first
    assert sorted(p.relative_to(again).as_posix() for p in again.rglob("*") if p.is_file()) == whole
    cut = again / whole[-1]
    os.chmod(cut, 0o644)
    cut.write_bytes(cut.read_bytes()[:1])
    third = Path(Dataset.get(dataset_id=d.id).get_local_copy())
    assert (third / whole[-1]).stat().st_size > 1
    assert not list(third.parent.glob(".tmp-*"))
    (third / "extra.out").write_text("the script's own")  # as ClearML: only expected files count
    fourth = Path(Dataset.get(dataset_id=d.id).get_local_copy())
    assert (fourth / "extra.out").read_text() == "the script's own"


def test_dataset_path_is_read_as_clearml_reads_it(images: Path) -> None:
    """ClearML builds paths with Path(dataset_path or ".") / rel: ".", "./x", "/x//y/" and a
    Path are all fine there, and so here."""
    d = Dataset.create(dataset_name="paths", dataset_project="p")
    one = next(p for p in images.rglob("*") if p.is_file())
    for given, where in ((".", ""), ("./x", "x/"), ("/x//y/", "x/y/"), (Path("z"), "z/")):
        d.add_files(one, dataset_path=given)
        assert f"{where}{one.name}" in d.list_files(), (given, d.list_files())
    assert d.sync_folder(images, dataset_path=Path("synced"))[1] > 0
    assert any(p.startswith("synced/") for p in d.list_files())


def test_a_dead_external_link_is_left_out_with_a_warning_when_raise_on_error_is_false(
        tmp_path: Path) -> None:
    """ClearML logs a link it cannot download and returns the rest; with raise_on_error
    (the default) the copy fails, naming the URL."""
    ext = tmp_path / "ext"
    write(ext, "a.txt", "a")
    write(ext, "b.txt", "b")
    d = Dataset.create(dataset_name="e", dataset_project="p")
    d.add_external_files(f"file://{ext}/")
    d.finalize()
    (ext / "b.txt").unlink()
    with pytest.warns(UserWarning, match="external file b.txt cannot be read"):
        assert sorted(os.listdir(d.get_local_copy(raise_on_error=False))) == ["a.txt"]
    with pytest.warns(UserWarning, match="external file b.txt"):
        mutable = d.get_mutable_local_copy(tmp_path / "m", raise_on_error=False)
    assert sorted(os.listdir(mutable)) == ["a.txt"]
    with pytest.raises(DsError, match="cannot fetch external file .*b.txt"):
        d.get_local_copy()


def test_the_dependency_graph_leaves_out_versions_that_supply_no_file(tmp_path: Path) -> None:
    """ClearML's _update_dependency_graph: v1's only file is removed in v2, so v3 (a child of
    v2) depends on v2 alone; v2 still names its own parent."""
    write(tmp_path / "one", "a.txt", "a")
    write(tmp_path / "two", "b.txt", "b")
    v1 = Dataset.create(dataset_name="g", dataset_project="p")
    v1.add_files(tmp_path / "one")
    v1.finalize()
    v2 = Dataset.create(dataset_name="g", dataset_project="p", parent_datasets=[v1])
    v2.remove_files("a.txt")
    v2.add_files(tmp_path / "two")
    v2.finalize()
    assert v2.get_dependency_graph() == {v2.id: [v1.id]}
    v3 = Dataset.create(dataset_name="g", dataset_project="p", parent_datasets=[v2])
    assert v3.get_dependency_graph() == {v3.id: [v2.id], v2.id: []}

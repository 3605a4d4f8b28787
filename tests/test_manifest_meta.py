"""manifest.py (per-folder file lists), meta.py (git trees, refs) and tree_edit.py."""

from __future__ import annotations

import sys
from pathlib import Path

import pygit2
import pytest

from objstore import manifest as manifest_mod
from objstore import meta as meta_mod
from objstore.errors import DsError, FormatError, RevisionNotFound, UnsafePath
from objstore.hashing import BLAKE3, XXH3_128
from objstore.manifest import (
    EXEC,
    EXTERNAL,
    FILE,
    LINK,
    MAX_CHUNK,
    FileEntry,
    decode_manifest,
    encode_manifest,
)
from objstore.meta import BLOB, MANIFEST, TREE, MetaStore
from objstore.tree_edit import TreeEditor

MiB = 1024 * 1024


def fe(name: str, data: bytes = b"", kind: int = FILE, chunks=(), hsize: int = 16) -> FileEntry:
    algo = XXH3_128 if hsize == 16 else BLAKE3
    return FileEntry(name, kind, len(data), algo.digest(data + name.encode()), chunks)


def cid(i: int, hsize: int = 16) -> bytes:
    return i.to_bytes(4, "big") * (hsize // 4)


def sample_entries(hsize: int = 16) -> list[FileEntry]:
    big = (cid(1, hsize), 4 * MiB), (cid(2, hsize), MAX_CHUNK), (cid(3, hsize), 123)
    return [
        fe("zeta.bin", b"z" * 100, hsize=hsize),
        fe("run.sh", b"#!/bin/sh\n", EXEC, hsize=hsize),
        fe("latest", b"data/v2", LINK, hsize=hsize),
        fe("empty", b"", hsize=hsize),
        FileEntry("huge.parquet", FILE, 4 * MiB + MAX_CHUNK + 123, cid(9, hsize), big),
        # one chunk whose id differs from the file hash stays listed explicitly
        FileEntry("one.bin", FILE, 10, cid(7, hsize), ((cid(8, hsize), 10),)),
        fe("données.csv", b"a,b\n", hsize=hsize),
        fe("日本語.txt", b"x", hsize=hsize),
        fe("emoji-🎉", b"party", hsize=hsize),
        fe("A", b"upper", hsize=hsize),
        fe("a", b"lower", hsize=hsize),
        fe(".hidden", b"h", hsize=hsize),
        fe(".ds.manifest", b"a user file may use a reserved-looking name", hsize=hsize),
        fe("x" * 255, b"long name", hsize=hsize),
    ]


# -- manifest round trip ----------------------------------------------------------------


@pytest.mark.parametrize("hsize", [16, 32])
def test_manifest_round_trip(hsize):
    entries = sample_entries(hsize)
    data = encode_manifest(entries, hsize)
    got = decode_manifest(data, hsize, "test")
    assert got == sorted(entries, key=lambda e: e.name.encode())
    by_name = {e.name: e for e in got}
    assert by_name["run.sh"].kind == EXEC
    assert by_name["latest"].kind == LINK
    assert by_name["empty"].size == 0 and by_name["empty"].chunk_list() == ()
    assert sum(n for _, n in by_name["huge.parquet"].chunk_list()) == by_name["huge.parquet"].size
    assert len(by_name["huge.parquet"].chunks) == 3
    assert by_name["one.bin"].chunk_list() == ((cid(8, hsize), 10),)
    # re-encoding what was decoded gives the same bytes
    assert encode_manifest(got, hsize) == data


def test_manifest_is_sorted_by_utf8_bytes_and_independent_of_input_order():
    entries = sample_entries()
    data = encode_manifest(entries, 16)
    assert encode_manifest(entries[::-1], 16) == data
    names = [e.name for e in decode_manifest(data, 16, "t")]
    assert names == sorted(names, key=lambda n: n.encode("utf-8"))
    assert names.index("A") < names.index("a") < names.index("zeta.bin") < names.index("日本語.txt")
    # byte order, not code point order: U+00E9 (0xC3 0xA9) sorts after "z", "emoji-🎉" after "données"
    assert names.index("données.csv") < names.index("emoji-🎉")


def test_manifest_single_chunk_equal_to_hash_is_stored_implicitly():
    h = cid(5)
    explicit = FileEntry("f", FILE, 1000, h, ((h, 1000),))
    implicit = FileEntry("f", FILE, 1000, h)
    data = encode_manifest([explicit], 16)
    assert data == encode_manifest([implicit], 16)
    (got,) = decode_manifest(data, 16, "t")
    assert got.chunks == () and got.chunk_list() == ((h, 1000),)


def test_empty_manifest_round_trip():
    data = encode_manifest([], 16)
    assert data[:6] == b"DSMF\x01\x10"  # magic, version 1, hash size
    assert decode_manifest(data, 16, "t") == []
    assert encode_manifest([], 32)[:6] == b"DSMF\x01\x20"


def test_manifest_header_names_magic_version_and_hash_size():
    data = encode_manifest(sample_entries(), 16)
    assert data[:6] == b"DSMF\x01\x10"
    for name in (e.name.encode() for e in sample_entries()):
        assert name in data  # names are stored verbatim as UTF-8


def test_manifest_largest_single_chunk_is_accepted():
    (got,) = decode_manifest(encode_manifest([FileEntry("f", FILE, MAX_CHUNK, cid(1))], 16), 16, "t")
    assert got.size == MAX_CHUNK


# -- manifest refusals ------------------------------------------------------------------
# The invalid manifests are made with the library's own encoder (which does not validate),
# so these tests hold whatever the row layout is.


def enc(*entries: FileEntry) -> bytes:
    return encode_manifest(list(entries), 16)


def f(name: str, size: int = 1, kind: int = FILE, chunks=()) -> FileEntry:
    return FileEntry(name, kind, size, b"\1" * 16, chunks)


@pytest.fixture
def unsorted_encoder(monkeypatch):
    """encode_manifest sorts its input by name; with this fixture rows keep the given order."""
    monkeypatch.setattr(manifest_mod, "sorted", lambda items, key=None: list(items), raising=False)


def test_unsorted_encoder_control(unsorted_encoder):
    assert enc(f("a"), f("b")) == encode_manifest([f("a"), f("b")], 16)
    assert [e.name for e in decode_manifest(enc(f("a"), f("b"), f("c")), 16, "t")] == ["a", "b", "c"]


def test_encoder_sorts_unsorted_input():
    assert enc(f("b"), f("a")) == enc(f("a"), f("b"))


def test_manifest_refuses_duplicate_names():
    with pytest.raises(FormatError, match="duplicated or out of order"):
        decode_manifest(enc(f("a"), f("a", 2)), 16, "t")
    with pytest.raises(FormatError, match="duplicated or out of order"):
        decode_manifest(enc(f("a"), f("x"), f("x"), f("z")), 16, "t")


@pytest.mark.parametrize("names", [("b", "a"), ("a", "c", "b"), ("é", "z"), ("ab", "a"), ("a", "B")])
def test_manifest_refuses_unsorted_names(unsorted_encoder, names):
    with pytest.raises(FormatError, match="duplicated or out of order"):
        decode_manifest(enc(*(f(n) for n in names)), 16, "t")


UNSAFE = ["", ".", "..", "a/b", "/", "/abs", "a\\b", "\\", "C:x", "c:", "Z:\\x", ".dsstore", ".DSStore",
          ".DSSTORE", "a\0b", "\0", "x" * 256, "é" * 128]


@pytest.mark.parametrize("name", UNSAFE, ids=repr)
def test_manifest_refuses_unsafe_names(name):
    with pytest.raises(UnsafePath):
        decode_manifest(enc(f(name)), 16, "t")
    # also when the unsafe name is not the first entry
    with pytest.raises(UnsafePath):
        decode_manifest(enc(f(name), f("!first")), 16, "t")


def test_manifest_accepts_the_longest_name():
    (got,) = decode_manifest(enc(f("x" * 255)), 16, "t")
    assert got.name == "x" * 255
    (got,) = decode_manifest(enc(f("é" * 127 + "x")), 16, "t")
    assert len(got.name.encode()) == 255


@pytest.mark.parametrize("raw_name", [b"\xff", b"a\xc3", b"\xed\xa0\x80", b"\xc0\xaf"], ids=repr)
def test_manifest_refuses_names_that_are_not_utf8(raw_name):
    marker = "Q" * len(raw_name)
    data = enc(f(marker))
    assert data.count(marker.encode()) == 1
    with pytest.raises(FormatError, match="not UTF-8"):
        decode_manifest(data.replace(marker.encode(), raw_name), 16, "t")


@pytest.mark.parametrize(
    "size,chunks",
    [
        (10, ((b"\1" * 16, 4), (b"\2" * 16, 5))),  # sums to 9
        (10, ((b"\1" * 16, 4), (b"\2" * 16, 7))),  # sums to 11
        (10, ((b"\2" * 16, 9),)),  # one explicit chunk, wrong length
        (0, ((b"\1" * 16, 1),)),
        (5, ((b"\1" * 16, 5), (b"\2" * 16, 0))),  # a chunk of zero bytes
        (MAX_CHUNK + 1, ((b"\2" * 16, MAX_CHUNK + 1),)),  # one chunk over the maximum
        (2 * MAX_CHUNK + 2, ((b"\1" * 16, MAX_CHUNK + 1), (b"\2" * 16, MAX_CHUNK + 1))),
        (1 << 32, ((b"\1" * 16, 0xFFFFFFFF), (b"\2" * 16, 1))),
    ],
)
def test_manifest_refuses_bad_chunk_lists(size, chunks):
    with pytest.raises(FormatError, match="chunk"):
        decode_manifest(enc(f("f", size, chunks=chunks)), 16, "t")


@pytest.mark.parametrize("size", [MAX_CHUNK + 1, 1 << 40, (1 << 64) - 1])
def test_manifest_refuses_single_implicit_chunk_over_16_mib(size):
    with pytest.raises(FormatError, match="in one chunk"):
        decode_manifest(enc(f("f", size)), 16, "t")
    # the same size split into valid chunks is fine
    if size < 1 << 30:
        chunks = ((b"\3" * 16, MAX_CHUNK), (b"\4" * 16, size - MAX_CHUNK))
        assert decode_manifest(enc(f("f", size, chunks=chunks)), 16, "t")[0].size == size


@pytest.mark.parametrize("kind", [4, 5, 255])
def test_manifest_refuses_unknown_kind(kind):
    with pytest.raises(FormatError, match="unknown kind"):
        decode_manifest(enc(f("f", kind=kind)), 16, "t")


def test_manifest_refuses_long_link_target():
    with pytest.raises(FormatError, match="target"):
        decode_manifest(enc(f("l", 4097, LINK)), 16, "t")
    assert decode_manifest(enc(f("l", 4096, LINK)), 16, "t")[0].size == 4096


def test_manifest_external_entry_needs_exactly_one_url_chunk():
    url = b"s3://bucket/key.jpg"
    cid = XXH3_128.digest(url)
    good = FileEntry("x", EXTERNAL, 123456, cid, ((cid, len(url)),))
    assert decode_manifest(encode_manifest([good], 16), 16, "t") == [good]
    for bad in (FileEntry("x", EXTERNAL, 5, cid, ()), FileEntry("x", EXTERNAL, 5, cid, ((cid, 9000),))):
        with pytest.raises(FormatError, match="external"):
            decode_manifest(encode_manifest([bad], 16), 16, "t")


@pytest.mark.parametrize("extra", [b"\0", b"junk", b"\0" * 64])
def test_manifest_refuses_trailing_bytes(extra):
    with pytest.raises(FormatError):
        decode_manifest(encode_manifest(sample_entries(), 16) + extra, 16, "t")
    with pytest.raises(FormatError):
        decode_manifest(enc() + extra, 16, "t")


@pytest.mark.parametrize("hsize", [16, 32])
def test_manifest_truncated_at_every_length(hsize):
    data = encode_manifest(sample_entries(hsize), hsize)
    for n in range(len(data)):
        with pytest.raises(FormatError):
            decode_manifest(data[:n], hsize, "t")


def test_manifest_refuses_wrong_header():
    good = enc(f("a"))
    with pytest.raises(FormatError, match="not a version-1"):
        decode_manifest(b"DSMG" + good[4:], 16, "t")
    with pytest.raises(FormatError, match="not a version-1"):
        decode_manifest(good[:4] + b"\x02" + good[5:], 16, "t")
    with pytest.raises(FormatError, match="32"):
        decode_manifest(good, 32, "t")
    with pytest.raises(FormatError):
        decode_manifest(encode_manifest([fe("a", hsize=32)], 32), 16, "t")
    assert decode_manifest(good, 16, "t")[0].name == "a"


# -- meta: folders ----------------------------------------------------------------------


def entry_for(path: str, data: bytes = b"", kind: int = FILE) -> FileEntry:
    return fe(path.rsplit("/", 1)[-1], data or path.encode(), kind)


def build(meta: MetaStore, files: dict[str, FileEntry], base=None) -> pygit2.Oid:
    ed = TreeEditor(meta, base)
    for path, e in files.items():
        ed.set(path, e)
    return ed.write()


def listing(meta: MetaStore, tree: pygit2.Oid) -> dict[str, FileEntry]:
    return dict(meta.walk(tree))


def fresh(store) -> MetaStore:
    """A new MetaStore on the same database: nothing cached, everything read from disk."""
    return MetaStore(store.meta.path, store.meta.hash_size)


FILES = {
    "README.md": entry_for("README.md"),
    "run.sh": entry_for("run.sh", b"#!/bin/sh", EXEC),
    "current": entry_for("current", b"data/v1", LINK),
    "data/v1/a.csv": entry_for("data/v1/a.csv"),
    "data/v1/b.csv": entry_for("data/v1/b.csv"),
    "data/v2/a.csv": entry_for("data/v2/a.csv"),
    "data/empty.txt": fe("empty.txt", b""),
    "models/日本/重み.bin": entry_for("models/日本/重み.bin"),
}


def test_tree_editor_write_and_read_back(store):
    tree = build(store.meta, FILES)
    assert listing(fresh(store), tree) == FILES
    root = fresh(store).read_folder(tree)
    assert set(root.files) == {"README.md", "run.sh", "current"}
    assert set(root.dirs) == {"data", "models"}
    assert root.record is None
    # one manifest blob and two subtrees at the root, nothing else
    names = sorted((e.name, e.filemode) for e in store.meta.repo[tree])
    assert names == [(MANIFEST, BLOB), ("data", TREE), ("models", TREE)]


def test_tree_editor_files_under_and_get(store):
    ed = TreeEditor(store.meta, build(store.meta, FILES))
    assert ed.files_under("") == sorted(FILES)
    assert ed.files_under("data") == ["data/empty.txt", "data/v1/a.csv", "data/v1/b.csv", "data/v2/a.csv"]
    assert ed.files_under("data/v1") == ["data/v1/a.csv", "data/v1/b.csv"]
    assert ed.files_under("nope") == []
    assert ed.files_under("README.md") == []  # a file, not a folder
    assert ed.get("data/v1/a.csv") == FILES["data/v1/a.csv"]
    assert ed.get("data/v1/zz") is None and ed.get("nope/x") is None


def test_tree_editor_remove(store):
    base = build(store.meta, FILES)
    ed = TreeEditor(store.meta, base)
    assert ed.remove("data/v1/a.csv") is True
    assert ed.remove("data/v1/a.csv") is False
    assert ed.remove("nope/x") is False
    assert ed.remove("data/v2") is True  # a whole folder
    assert ed.files_under("data") == ["data/empty.txt", "data/v1/b.csv"]
    tree = ed.write()
    expected = {k: v for k, v in FILES.items() if k not in ("data/v1/a.csv", "data/v2/a.csv")}
    assert listing(fresh(store), tree) == expected
    # the base version is unchanged
    assert listing(fresh(store), base) == FILES


def test_tree_editor_empty_folders_vanish(store):
    ed = TreeEditor(store.meta, build(store.meta, FILES))
    for p in ed.files_under("data"):
        assert ed.remove(p)
    tree = ed.write()
    assert "data" not in fresh(store).read_folder(tree).dirs
    ed = TreeEditor(store.meta, tree)
    for p in ed.files_under(""):
        ed.remove(p)
    assert ed.write() == store.meta.empty_tree
    assert TreeEditor(store.meta, None).write() == store.meta.empty_tree


def test_tree_editor_file_and_folder_replace_each_other(store):
    ed = TreeEditor(store.meta, build(store.meta, FILES))
    ed.set("README.md/inner.txt", entry_for("README.md/inner.txt"))  # file becomes a folder
    ed.set("data", entry_for("data"))  # folder becomes a file
    tree = ed.write()
    got = listing(fresh(store), tree)
    assert "README.md" not in got and got["README.md/inner.txt"].name == "inner.txt"
    assert got["data"] == entry_for("data")
    assert not any(p.startswith("data/") for p in got)


def test_tree_editor_is_copy_on_write(store):
    base = build(store.meta, FILES)
    ed = TreeEditor(store.meta, base)
    ed.set("data/v2/new.csv", entry_for("data/v2/new.csv"))
    tree = ed.write()
    old_root, new_root = fresh(store).read_folder(base), fresh(store).read_folder(tree)
    assert new_root.dirs["models"] == old_root.dirs["models"]
    old_data = fresh(store).read_folder(old_root.dirs["data"])
    new_data = fresh(store).read_folder(new_root.dirs["data"])
    assert new_data.dirs["v1"] == old_data.dirs["v1"]
    assert new_data.dirs["v2"] != old_data.dirs["v2"]
    # setting an identical entry changes nothing
    ed2 = TreeEditor(store.meta, tree)
    ed2.set("README.md", FILES["README.md"])
    assert ed2.write() == tree


def test_tree_is_independent_of_insertion_order(store):
    a = build(store.meta, FILES)
    b = build(store.meta, dict(reversed(list(FILES.items()))))
    assert a == b


def test_tree_editor_root_record(store):
    blob = store.meta.repo.create_blob(b'{"name": "ds", "n": 1}')
    ed = TreeEditor(store.meta, build(store.meta, FILES))
    ed.set_record(blob)
    tree = ed.write()
    assert fresh(store).read_record(tree) == {"name": "ds", "n": 1}
    assert fresh(store).read_folder(tree).record == blob
    assert listing(fresh(store), tree) == FILES
    assert fresh(store).read_record(build(store.meta, FILES)) == {}


@pytest.mark.parametrize("n_extra", [1, 500])
def test_large_folder_is_split_into_buckets(store, n_extra):
    n = meta_mod.BUCKET_MAX + n_extra
    files = {f"big/f{i:06d}.dat": entry_for(f"big/f{i:06d}.dat") for i in range(n)}
    files["big/sub/x"] = entry_for("big/sub/x")
    tree = build(store.meta, files)
    m = fresh(store)
    big_oid = m.read_folder(tree).dirs["big"]
    entries = list(store.meta.repo[big_oid])
    blobs = [e.name for e in entries if e.filemode == BLOB]
    assert len(blobs) >= 2
    assert MANIFEST not in blobs
    assert all(b.startswith(MANIFEST + ".") and b[len(MANIFEST) + 1 :].isdigit() for b in blobs)
    for b in blobs:  # every bucket is a valid manifest on its own
        part = decode_manifest(store.meta.repo[next(e.id for e in entries if e.name == b)].data, 16, b)
        assert part
    assert listing(m, tree) == files
    folder = m.read_folder(big_oid, "big")
    assert len(folder.files) == n


def test_many_buckets_with_small_bucket_max(store, monkeypatch):
    monkeypatch.setattr(meta_mod, "BUCKET_MAX", 8)
    files = {f"d/{i}": entry_for(f"d/{i}") for i in range(300)}
    tree = build(store.meta, files)
    m = fresh(store)
    d = m.read_folder(tree).dirs["d"]
    blobs = [e.name for e in store.meta.repo[d] if e.filemode == BLOB]
    assert len(blobs) > 8
    assert listing(m, tree) == files
    # editing a bucketed folder, then shrinking it back to one manifest
    ed = TreeEditor(store.meta, tree)
    for i in range(295):
        ed.remove(f"d/{i}")
    small = ed.write()
    d2 = fresh(store).read_folder(small).dirs["d"]
    assert [e.name for e in store.meta.repo[d2]] == [MANIFEST]
    assert listing(fresh(store), small) == {f"d/{i}": files[f"d/{i}"] for i in range(295, 300)}


RESERVED_LOOKING = [".ds.", ".ds.manifest", ".ds.manifest.0", ".ds.meta", ".ds.d.x", ".ds.d.", ".ds.foo"]


@pytest.mark.parametrize("dirname", RESERVED_LOOKING)
def test_user_folders_named_like_reserved_entries_round_trip(store, dirname):
    files = {
        f"{dirname}/inner.txt": entry_for(f"{dirname}/inner.txt"),
        f"{dirname}/{dirname}/deeper": entry_for(f"{dirname}/{dirname}/deeper"),
        "plain.txt": entry_for("plain.txt"),
    }
    tree = build(store.meta, files)
    assert listing(fresh(store), tree) == files
    stored = {e.name for e in store.meta.repo[tree]}
    assert stored == {".ds.d." + dirname, MANIFEST}
    ed = TreeEditor(fresh(store), tree)
    assert ed.files_under(dirname) == sorted(p for p in files if p.startswith(dirname + "/"))


def test_folder_named_ds_d_escapes_and_plain_folder_coexist(store):
    files = {"x/a": entry_for("x/a"), ".ds.d.x/b": entry_for(".ds.d.x/b"), ".ds.x/c": entry_for(".ds.x/c")}
    tree = build(store.meta, files)
    assert listing(fresh(store), tree) == files


# -- meta: hand-built trees that must be refused ------------------------------------------


def hand_tree(repo: pygit2.Repository, items) -> pygit2.Oid:
    tb = repo.TreeBuilder()
    for name, oid, mode in items:
        tb.insert(name, oid, mode)
    return tb.write()


@pytest.fixture
def parts(store):
    repo = store.meta.repo
    m_a = repo.create_blob(encode_manifest([entry_for("a")], 16))
    m_b = repo.create_blob(encode_manifest([entry_for("b")], 16))
    m_x = repo.create_blob(encode_manifest([entry_for("x")], 16))
    sub = hand_tree(repo, [(MANIFEST, m_b, BLOB)])
    return repo, m_a, m_b, m_x, sub


def test_hand_built_control_tree_is_accepted(store, parts):
    repo, m_a, _, _, sub = parts
    tree = hand_tree(repo, [(MANIFEST, m_a, BLOB), ("sub", sub, TREE), (".ds.meta", m_a, BLOB)])
    f = fresh(store).read_folder(tree)
    assert set(f.files) == {"a"} and set(f.dirs) == {"sub"} and f.record is not None


@pytest.mark.parametrize(
    "name,mode",
    [
        ("data.csv", BLOB),
        (".ds.metadata", BLOB),
        (".ds.other", BLOB),
        ("manifest", BLOB),
        (MANIFEST, pygit2.enums.FileMode.BLOB_EXECUTABLE),
        (MANIFEST, pygit2.enums.FileMode.LINK),
        ("link", pygit2.enums.FileMode.LINK),
    ],
)
def test_read_folder_refuses_unexpected_blob(store, parts, name, mode):
    repo, m_a, _, _, _ = parts
    items = [(name, m_a, mode)] if name == MANIFEST else [(MANIFEST, m_a, BLOB), (name, m_a, mode)]
    tree = hand_tree(repo, items)
    with pytest.raises(FormatError, match="unexpected tree entry"):
        fresh(store).read_folder(tree)


@pytest.mark.parametrize("name", [".ds.manifestfoo", ".ds.manifest.x"])
def test_read_folder_refuses_misnamed_manifest_blob(store, parts, name):
    repo, m_a, m_b, _, _ = parts
    tree = hand_tree(repo, [(MANIFEST, m_a, BLOB), (name, m_b, BLOB)])
    with pytest.raises(FormatError):
        fresh(store).read_folder(tree)


def test_read_folder_refuses_meta_below_the_root(store, parts):
    repo, m_a, m_b, _, _ = parts
    sub = hand_tree(repo, [(MANIFEST, m_b, BLOB), (".ds.meta", m_a, BLOB)])
    tree = hand_tree(repo, [("sub", sub, TREE)])
    m = fresh(store)
    assert set(m.read_folder(tree).dirs) == {"sub"}
    with pytest.raises(FormatError, match="unexpected tree entry"):
        list(m.walk(tree))


@pytest.mark.parametrize("name", [".ds.sub", ".ds.manifest", ".ds.meta"])
def test_read_folder_refuses_unknown_reserved_subtree(store, parts, name):
    repo, _, _, _, sub = parts
    with pytest.raises(FormatError, match="reserved"):
        fresh(store).read_folder(hand_tree(repo, [(name, sub, TREE)]))


@pytest.mark.parametrize("name", [".ds.d.", ".dsstore", ".DSStore", ".ds.d..dsstore", "C:x", ".ds.d.C:x"])
def test_read_folder_refuses_unsafe_subtree_names(store, parts, name):
    repo, _, _, _, sub = parts
    with pytest.raises(UnsafePath):
        fresh(store).read_folder(hand_tree(repo, [(name, sub, TREE)]))


@pytest.mark.parametrize("dirname", ["x", ".ds.d.x"])  # ".ds.d.x" is decoded to "x" too
def test_read_folder_refuses_file_and_folder_with_same_name(store, parts, dirname):
    repo, _, _, m_x, sub = parts
    tree = hand_tree(repo, [(MANIFEST, m_x, BLOB), (dirname, sub, TREE)])
    with pytest.raises(FormatError, match="both a file and a folder"):
        fresh(store).read_folder(tree)


def test_read_folder_refuses_escaped_file_folder_clash(store, parts):
    repo, _, m_b, _, sub = parts
    m_dsx = repo.create_blob(encode_manifest([entry_for(".ds.x")], 16))
    tree = hand_tree(repo, [(MANIFEST, m_dsx, BLOB), (".ds.d..ds.x", sub, TREE)])
    with pytest.raises(FormatError, match="both a file and a folder"):
        fresh(store).read_folder(tree)


def test_read_folder_refuses_two_subtrees_decoding_to_the_same_name(store, parts):
    repo, m_a, _, _, sub = parts
    other = hand_tree(repo, [(MANIFEST, m_a, BLOB)])
    tree = hand_tree(repo, [("foo", sub, TREE), (".ds.d.foo", other, TREE)])
    with pytest.raises(FormatError):
        fresh(store).read_folder(tree)


def test_read_folder_refuses_a_file_listed_in_two_buckets(store, parts):
    repo, m_a, _, _, _ = parts
    tree = hand_tree(repo, [(MANIFEST + ".0", m_a, BLOB), (MANIFEST + ".1", m_a, BLOB)])
    with pytest.raises(FormatError, match="listed twice"):
        fresh(store).read_folder(tree)


def test_read_folder_refuses_a_damaged_manifest_blob(store, parts):
    repo, m_a, _, _, _ = parts
    data = repo[m_a].data
    bad = repo.create_blob(data[:-1])
    with pytest.raises(FormatError, match="truncated"):
        fresh(store).read_folder(hand_tree(repo, [(MANIFEST, bad, BLOB)]))
    wrong_size = repo.create_blob(encode_manifest([fe("a", hsize=32)], 32))
    with pytest.raises(FormatError, match="32 bytes"):
        fresh(store).read_folder(hand_tree(repo, [(MANIFEST, wrong_size, BLOB)]))


def test_read_folder_refuses_missing_or_non_tree_objects(store, parts):
    repo, m_a, _, _, _ = parts
    with pytest.raises(FormatError, match="missing"):
        fresh(store).read_folder(pygit2.Oid(hex="12" * 20))
    with pytest.raises(FormatError, match="not a tree"):
        fresh(store).read_folder(m_a)


# -- meta: revisions ----------------------------------------------------------------------


def commit(store, files: dict[str, FileEntry], message: str) -> str:
    ed = TreeEditor(store.meta, store.staged_tree())
    for path, e in files.items():
        ed.set(path, e)
    store.set_stage(ed.write())
    return store.commit(message, author="tester").id


@pytest.fixture
def history(store) -> list[str]:
    return [commit(store, {f"f{i}.txt": entry_for(f"f{i}.txt")}, f"version {i}") for i in range(3)]


def test_resolve_head_and_ancestors(store, history):
    c0, c1, c2 = history
    assert store.resolve("HEAD") == c2
    assert store.resolve("HEAD~1") == c1
    assert store.resolve("HEAD~2") == c0
    assert store.resolve("HEAD^") == c1
    assert store.resolve("HEAD^^") == c0
    assert store.resolve("  HEAD~1\n") == c1
    assert store.meta.commit_info(c1).parents == (c0,)
    assert [i.id for i in store.log()] == [c2, c1, c0]


def test_resolve_tags_and_branches(store, history):
    c0, c1, c2 = history
    assert store.tag("v1.0", "HEAD~2") == c0
    store.tag("latest")
    store.meta.set_ref("refs/heads/dev", c1)
    assert store.resolve("v1.0") == c0
    assert store.resolve("refs/tags/v1.0") == c0
    assert store.resolve("latest") == c2
    assert store.resolve("main") == c2
    assert store.resolve("dev") == c1
    assert store.resolve("dev~1") == c0
    assert store.meta.tags() == {"v1.0": c0, "latest": c2}
    with pytest.raises(DsError, match="already exists"):
        store.tag("v1.0", "HEAD")
    store.tag("v1.0", "HEAD", force=True)
    assert store.resolve("v1.0") == c2
    # a tag stays where it was when HEAD moves on
    c3 = commit(store, {"later": entry_for("later")}, "version 3")
    assert store.resolve("latest") == c2 and store.resolve("HEAD") == c3


@pytest.mark.parametrize("length", [7, 10, 39, 40])
def test_resolve_unique_id_prefix(store, history, length):
    for c in history:
        assert store.resolve(c[:length]) == c
        assert store.resolve(c[:length].upper()) == c


@pytest.mark.parametrize("rev", ["nope", "HEAD~3", "HEAD~100", "v9", "0" * 40, "deadbeef", "", "   ",
                                 "HEAD~~~^{", "refs/heads/missing", "main~5"])
def test_resolve_unknown_revision(store, history, rev):
    with pytest.raises(RevisionNotFound):
        store.resolve(rev)


def test_resolve_tree_or_blob_id_is_not_a_version(store, history):
    tree = str(store.meta.tree_of(history[0]))
    with pytest.raises(RevisionNotFound):
        store.resolve(tree)
    blob = next(e.id for e in store.meta.repo[store.meta.tree_of(history[0])] if e.name == MANIFEST)
    with pytest.raises(RevisionNotFound):
        store.resolve(str(blob))


def test_resolve_in_an_empty_store(store):
    for rev in ("HEAD", "main", "HEAD~1"):
        with pytest.raises(RevisionNotFound, match="no commit yet"):
            store.resolve(rev)
    assert store.log() == []


def test_commit_tree_round_trips_through_a_version(store, history):
    tree = store.tree("HEAD")
    assert listing(fresh(store), tree) == {f"f{i}.txt": entry_for(f"f{i}.txt") for i in range(3)}
    info = store.info("HEAD~1")
    assert info.message == "version 1" and info.author == "tester"


def test_many_new_objects_go_into_one_pack_and_small_packs_are_merged(tmp_path, monkeypatch) -> None:
    from objstore.worktree import add

    from .conftest import read_tree, write
    from .test_git_pack import EMPTY_TREE  # written while the branch was unborn: it stays loose

    monkeypatch.setattr(meta_mod, "PACK_MERGE_AT", 4)
    from objstore.store import Store

    work = tmp_path / "w"
    work.mkdir()
    store = Store.init(work)
    objects = store.meta.path / "objects"
    packs = objects / "pack"
    versions = []
    for v in range(7):
        for i in range(meta_mod.PACK_NEW_MIN + 6):  # every folder changes: > PACK_NEW_MIN new objects
            write(work, f"d{i}/f", f"version {v} of {i}")
        add(store, [str(work)])
        versions.append((store.commit(f"v{v}").id, read_tree(work)))
        loose = [f for f in objects.glob("??/*") if f.parent.name + f.name != EMPTY_TREE]
        assert len(loose) <= v + 1, "only the commit objects stay loose, not the folders' trees"
        assert len(list(packs.glob("pack-*.idx"))) <= 5
        assert len(list(packs.glob("pack-*.pack"))) == len(list(packs.glob("pack-*.idx")))
    assert not list(packs.glob(".tmp-*"))
    # a merge killed between its two unlinks leaves a lone .idx: nothing may trip on it
    lone = next(packs.glob("pack-*.idx"))
    (packs / ("pack-" + "0" * 40 + ".idx")).write_bytes(lone.read_bytes())
    for i in range(meta_mod.PACK_NEW_MIN + 6):
        write(work, f"d{i}/f", f"after the crash {i}")
    add(store, [str(work)])
    versions.append((store.commit("after").id, read_tree(work)))
    assert store.meta.repack() > 0
    store.close()
    reopened = Store.open(work)
    from objstore.get import get_copy
    from objstore.maintenance import fsck

    assert fsck(reopened).ok
    for n, (commit, tree) in enumerate(versions):
        get_copy(reopened, commit, tmp_path / f"get{n}")
        assert read_tree(tmp_path / f"get{n}") == tree


def _names(repo, tree) -> list[str]:
    return sorted(e.name for e in repo[tree])


def test_a_small_change_stores_only_the_difference_from_the_base_manifest(store) -> None:
    meta, repo = store.meta, store.meta.repo
    files = {f"d/f{i:03d}": entry_for(f"d/f{i:03d}") for i in range(100)}
    v1 = build(meta, files)
    d1 = fresh(store).read_folder(v1).dirs["d"]
    base_blob = repo[d1][MANIFEST].id
    ed = TreeEditor(meta, v1)
    ed.set("d/f005", entry_for("d/f005", b"changed"))
    ed.set("d/new", entry_for("d/new"))
    ed.remove("d/f010")
    v2 = ed.write()
    d2 = fresh(store).read_folder(v2).dirs["d"]
    assert _names(repo, d2) == [meta_mod.ADDED, meta_mod.BASE, meta_mod.REMOVED]
    assert repo[d2][meta_mod.BASE].id == base_blob, "the base is the old blob: no new bytes"
    assert len(repo[repo[d2][meta_mod.ADDED].id].data) < 200
    want = dict(files)
    want["d/f005"] = entry_for("d/f005", b"changed")
    want["d/new"] = entry_for("d/new")
    del want["d/f010"]
    assert dict(fresh(store).walk(v2)) == want
    # a further change is still a difference from the same base: never a chain of patches
    ed = TreeEditor(fresh(store), v2)
    ed.set("d/f020", entry_for("d/f020", b"again"))
    v3 = ed.write()
    d3 = fresh(store).read_folder(v3).dirs["d"]
    assert repo[d3][meta_mod.BASE].id == base_blob
    assert len(meta_mod.decode_manifest(repo[repo[d3][meta_mod.ADDED].id].data, 16, "t")) == 3
    # undoing every change gives back the very first tree
    ed = TreeEditor(fresh(store), v3)
    for path in ("d/f005", "d/f010", "d/f020"):
        ed.set(path, files[path])
    ed.remove("d/new")
    assert ed.write() == v1


def test_a_large_change_stores_the_whole_manifest_again(store) -> None:
    meta, repo = store.meta, store.meta.repo
    files = {f"f{i:03d}": entry_for(f"f{i:03d}") for i in range(40)}
    v1 = build(meta, files)
    ed = TreeEditor(meta, v1)
    for i in range(11):  # more than a quarter of 40 rows
        ed.set(f"f{i:03d}", entry_for(f"f{i:03d}", b"x"))
    v2 = ed.write()
    assert _names(repo, v2) == [MANIFEST]
    assert repo[v2][MANIFEST].id != repo[v1][MANIFEST].id


@pytest.mark.parametrize("case", ["no base", "base alone", "beside a manifest", "unknown removal",
                                  "unsorted removals", "removals not UTF-8", "bad added rows"])
def test_hostile_manifest_patches_are_refused(store, case) -> None:
    repo = store.meta.repo
    base = repo.create_blob(encode_manifest([entry_for("a"), entry_for("b"), entry_for("c")], 16))
    added = repo.create_blob(encode_manifest([entry_for("d")], 16))
    items = {
        "no base": [(meta_mod.ADDED, added, BLOB)],
        "base alone": [(meta_mod.BASE, base, BLOB)],
        "beside a manifest": [(meta_mod.BASE, base, BLOB), (meta_mod.ADDED, added, BLOB),
                              (MANIFEST, added, BLOB)],
        "unknown removal": [(meta_mod.BASE, base, BLOB), (meta_mod.REMOVED, repo.create_blob(b"zz"), BLOB)],
        "unsorted removals": [(meta_mod.BASE, base, BLOB),
                              (meta_mod.REMOVED, repo.create_blob(b"b\0a"), BLOB)],
        "removals not UTF-8": [(meta_mod.BASE, base, BLOB),
                               (meta_mod.REMOVED, repo.create_blob(b"\xff"), BLOB)],
        "bad added rows": [(meta_mod.BASE, base, BLOB),
                           (meta_mod.ADDED, repo.create_blob(b"DSMF junk"), BLOB)],
    }[case]
    tree = hand_tree(repo, items)
    with pytest.raises(FormatError):
        fresh(store).read_folder(tree)
    good = hand_tree(repo, [(meta_mod.BASE, base, BLOB), (meta_mod.ADDED, added, BLOB),
                            (meta_mod.REMOVED, repo.create_blob(b"a\0c"), BLOB)])
    assert sorted(fresh(store).read_folder(good).files) == ["b", "d"]


def test_folders_git_refuses_as_entries_are_versioned_as_named(tmp_path: Path) -> None:
    """`git~1`, `.git.` (spellings of git's own folder that libgit2 refuses as tree entries)
    are a user's folders like any other: stored escaped, read back as named. `.git` itself
    (in any case, at any depth) is git's folder, never versioned, as in git and DVC."""
    from .conftest import ds, read_tree, write

    w = tmp_path / "w"
    ds("init", str(w), cwd=tmp_path)
    kept = ["GIT~1", ".git.", ".gitx", "sub/git~1"] if sys.platform == "linux" else ["GIT~1", ".gitx"]
    for n in kept + [".git", "sub/.git", "sub/deeper/.GIT"]:
        write(w, f"{n}/f.txt", n)
    ds("add", ".", cwd=w)
    ds("commit", "-m", "v1", cwd=w)
    ds("get", "HEAD", str(tmp_path / "out"), cwd=w)
    assert read_tree(tmp_path / "out") == {f"{n}/f.txt": (n.encode(), False) for n in kept}
    assert sorted(ds("ls", "-r", "HEAD", cwd=w).stdout.split()) == sorted(f"{n}/f.txt" for n in kept)

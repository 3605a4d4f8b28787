"""The metadata database read without libgit2 (``git_read``) gives libgit2's answers.

Every object, ref and revision is read both ways: through the reader (as a command that
only reads does) and through libgit2 alone (the reader switched off), on databases holding
loose objects, packs with deltas, packed refs, annotated tags, merges, non-UTC authors and
odd messages. Where the reader is unsure (a damaged file, a form it does not take), the
command's answer and its error must be libgit2's, word for word.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pygit2
import pytest

from objstore.git_read import ObjectReader, Unsure, plain_ref_name
from objstore.meta import MetaStore
from objstore.store import Store
from objstore.worktree import commit_all

from .conftest import write


class _NoReader:
    """A reader that is never sure: every answer comes from libgit2."""

    def __getattr__(self, name: str):
        def unsure(*_args, **_kwargs):
            raise Unsure(name)
        return unsure


def slow(meta: MetaStore) -> MetaStore:
    """A MetaStore on the same database that reads through libgit2 alone."""
    m = MetaStore(meta.path, meta.hash_size)
    m._reader = _NoReader()
    return m


def fast(meta: MetaStore) -> MetaStore:
    """A MetaStore on the same database that has not opened libgit2."""
    return MetaStore(meta.path, meta.hash_size)


def answer(call):
    """What a call returns, or the type and text of the error it raises."""
    try:
        return ("ok", call())
    except Exception as e:  # noqa: BLE001 (the error is the answer compared)
        return ("error", type(e).__name__, str(e))


@pytest.fixture
def history(store: Store, work: Path) -> Store:
    """Three versions of 80 folders (new folders go into packs), a side branch merged back,
    a lightweight and an annotated tag, packed refs, a commit by a non-UTC author with a
    message that starts with blank lines; then a repack packs it all with deltas, and one more
    version stays loose."""
    for i in range(80):
        write(work, f"d{i:02d}/f.txt", f"file {i}\n")
    commit_all(store, "one")
    for i in range(0, 80, 3):
        write(work, f"d{i:02d}/f.txt", f"changed {i}\n" * 50)
    commit_all(store, "two")
    repo = store.meta.repo
    main = repo.head.target
    c2 = repo[main]
    zone = pygit2.Signature("Zoë Ørsted", "zoe@example.org", 1_700_000_000, -330)
    side = repo.create_commit("refs/heads/side", zone, zone, "\n\nside line\n\nbody\n", c2.tree_id, [main])
    merge = repo.create_commit("refs/heads/main", zone, zone, "merge side", c2.tree_id, [main, side])
    repo.create_reference("refs/tags/light", merge)
    repo.create_tag("annotated", side, pygit2.enums.ObjectType.COMMIT, zone, "an annotated tag")
    repo.create_reference("refs/tags/side", main)  # a tag named like a branch
    subprocess.run(["git", "--git-dir", str(store.meta.path), "pack-refs", "--all"], check=True)
    store.meta.repack()  # every object into one pack, with deltas
    write(work, "d00/f.txt", "loose again\n")
    commit_all(store, "four")
    return store


def test_every_object_reads_as_libgit2_reads_it(history: Store) -> None:
    repo = history.meta.repo
    reader = ObjectReader(history.meta.path)
    ids = [str(o) for o in repo.odb]
    packs = list((history.meta.path / "objects" / "pack").glob("pack-*.idx"))
    loose = list((history.meta.path / "objects").glob("[0-9a-f][0-9a-f]/*"))
    assert len(ids) > 200 and packs and loose
    deltas = 0
    for hex_id in ids:
        kind, data = repo.odb.read(hex_id)
        assert reader.read(hex_id) == (kind, data)
    for idx in packs:  # some records are deltas, so chains were followed
        out = subprocess.run(["git", "verify-pack", "-v", str(idx)], capture_output=True, text=True,
                             check=True).stdout
        deltas += sum(1 for line in out.splitlines() if len(line.split()) == 7)
    assert deltas > 0


def test_commits_read_as_libgit2_reads_them(history: Store) -> None:
    f, s = fast(history.meta), slow(history.meta)
    commits = [str(o) for o in history.meta.repo.odb
               if history.meta.repo[o].type == pygit2.enums.ObjectType.COMMIT]
    assert len(commits) >= 5
    for cid in commits:
        a, b = f._commit(cid), s._commit(cid)
        fields = ("id", "tree", "parents", "author", "email", "message", "author_time", "offset")
        assert [getattr(a, k) for k in fields] == [getattr(b, k) for k in fields]
        assert f.commit_info(cid) == s.commit_info(cid)
    assert f._repo is None  # read without libgit2


REVS = ["HEAD", "HEAD~1", "HEAD~2", "HEAD^", "HEAD^2", "HEAD^0", "HEAD~", "HEAD^^", "HEAD~1^2",
        "main", "main~1", "side", "side~1", "light", "light^2", "annotated", "annotated~1", "HEAD~99",
        "HEAD^3", "nosuch", "nosuch~1", "config", "refs/heads/main", "HEAD~" + "9" * 5000, "main^{tree}",
        "@", "@~1", "-x", "main..side", "side@{0}", "0" * 40, "HEAD:d00"]


READ_HERE = {"HEAD", "HEAD~1", "HEAD^", "HEAD~1^2", "main", "side", "light", "light^2"}


@pytest.mark.parametrize("rev", REVS, ids=lambda r: r[:20])
def test_revisions_resolve_as_libgit2_resolves_them(history: Store, rev: str) -> None:
    f, s = fast(history.meta), slow(history.meta)
    assert answer(lambda: f.resolve(rev)) == answer(lambda: s.resolve(rev))
    if rev in READ_HERE:  # the everyday forms need no libgit2
        assert f._repo is None


def test_whole_ids_and_their_steps_resolve_as_libgit2_resolves_them(history: Store) -> None:
    f, s = fast(history.meta), slow(history.meta)
    head = s.resolve("HEAD")
    for rev in (head, head + "~1", head + "^2", head.upper(), s.resolve("HEAD~1") + "^"):
        assert answer(lambda r=rev: f.resolve(r)) == answer(lambda r=rev: s.resolve(r))


def test_history_walks_as_libgit2_walks_it(history: Store) -> None:
    f, s = fast(history.meta), slow(history.meta)
    for rev in ("HEAD", "HEAD~1", "side", "light", "main~1"):
        cid = s.resolve(rev)
        assert list(f.ancestors(cid)) == list(s.ancestors(cid))
    head = s.resolve("HEAD~1")  # the linear tip of a merge: read here up to the merge only
    walk = f.ancestors(s.resolve("HEAD"))
    assert next(walk) == s.resolve("HEAD")
    assert list(walk) == list(s.ancestors(s.resolve("HEAD")))[1:]
    assert head in list(f.ancestors(s.resolve("HEAD")))


def test_refs_read_as_libgit2_reads_them(history: Store) -> None:
    f, s = fast(history.meta), slow(history.meta)
    assert (history.meta.path / "packed-refs").is_file()
    for call in ("refs", "tags", "branches", "head_commit", "head_branch", "ref_names"):
        assert answer(getattr(f, call)) == answer(getattr(s, call)), call
    for name in ("refs/heads/main", "refs/heads/side", "refs/tags/light", "refs/tags/annotated",
                 "refs/tags/nosuch", "refs/heads/../config", "HEAD"):
        assert answer(lambda n=name: f.ref_target(n)) == answer(lambda n=name: s.ref_target(n)), name
        assert answer(lambda n=name: f.has_ref(n)) == answer(lambda n=name: s.has_ref(n)), name


def test_refs_are_read_without_libgit2_when_each_names_a_commit(history: Store) -> None:
    history.meta.repo.references.delete("refs/tags/annotated")  # a tag object: for libgit2 to peel
    f, s = fast(history.meta), slow(history.meta)
    for call in ("refs", "tags", "branches", "head_commit", "head_branch", "ref_names"):
        assert answer(getattr(f, call)) == answer(getattr(s, call)), call
    assert f.tags() == {"light": s.resolve("HEAD~1"), "side": s.resolve("HEAD~2")}
    assert f._repo is None


def test_a_detached_head_reads_as_libgit2_reads_it(history: Store) -> None:
    target = history.meta.resolve("HEAD~1")
    (history.meta.path / "HEAD").write_text(target + "\n")
    f, s = fast(history.meta), slow(history.meta)
    for call in ("head_commit", "head_branch"):
        assert answer(getattr(f, call)) == answer(getattr(s, call)) == ("ok", target if call == "head_commit"
                                                                         else None)
    assert answer(lambda: f.resolve("HEAD~1")) == answer(lambda: s.resolve("HEAD~1"))


def _damage(path: Path, at: int) -> None:
    path.chmod(0o644)
    data = bytearray(path.read_bytes())
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))


def test_a_damaged_loose_object_is_reported_as_libgit2_reports_it(history: Store) -> None:
    head = history.meta.resolve("HEAD")
    loose = history.meta.loose_path(head)
    assert loose.exists()
    _damage(loose, len(loose.read_bytes()) // 2)
    with pytest.raises(Unsure):
        ObjectReader(history.meta.path).read(head)
    f, s = fast(history.meta), slow(history.meta)
    assert answer(lambda: f.commit_info(head)) == answer(lambda: s.commit_info(head))
    assert answer(lambda: f.commit_info(head))[0] == "error"
    assert answer(lambda: list(f.ancestors(head))) == answer(lambda: list(s.ancestors(head)))
    assert answer(lambda: f.resolve("HEAD~1")) == answer(lambda: s.resolve("HEAD~1"))


def test_a_damaged_pack_record_is_reported_as_libgit2_reports_it(history: Store) -> None:
    """A byte flipped inside a packed tree: the reader does not guess, and the folder's
    error is libgit2's."""
    s = slow(history.meta)
    tree = s.tree_of(s.resolve("HEAD~1"))
    reader = ObjectReader(history.meta.path)
    pack = next((history.meta.path / "objects" / "pack").glob("pack-*.pack"))
    offset = next(p.offset(bytes.fromhex(tree)) for p in reader._pack_list().values()
                  if p.offset(bytes.fromhex(tree)) is not None)
    _damage(pack, offset + 6)
    with pytest.raises(Unsure):
        ObjectReader(history.meta.path).read(tree)
    f, s = fast(history.meta), slow(history.meta)
    assert answer(lambda: f.read_folder(tree)) == answer(lambda: s.read_folder(tree))
    assert answer(lambda: f.read_folder(tree))[0] == "error"


def test_a_ref_file_the_reader_does_not_take_is_left_to_libgit2(history: Store) -> None:
    """An empty branch file, a symbolic ref, a garbled packed-refs line: libgit2 answers."""
    meta = history.meta
    (meta.path / "refs" / "heads" / "empty").write_text("")
    (meta.path / "refs" / "remotes" / "o").mkdir(parents=True)
    (meta.path / "refs" / "remotes" / "o" / "HEAD").write_text("ref: refs/heads/main\n")
    f, s = fast(meta), slow(meta)
    for call in ("refs", "tags", "branches", "ref_names", "head_commit"):
        assert answer(getattr(f, call)) == answer(getattr(s, call)), call
    with (meta.path / "packed-refs").open("a") as out:
        out.write("not a line git writes\n")
    f, s = fast(meta), slow(meta)
    for call in ("refs", "tags", "head_commit"):
        assert answer(getattr(f, call)) == answer(getattr(s, call)), call


def test_objects_written_after_the_first_read_are_found(history: Store, work: Path) -> None:
    """A pack published after the reader listed the packs is read (the list is read again)."""
    meta = history.meta
    reader = ObjectReader(meta.path)
    reader.read(meta.resolve("HEAD"))
    for i in range(80):
        write(work, f"d{i:02d}/g.txt", f"new {i}\n")
    commit_all(history, "five")
    tree = meta.tree_of(meta.resolve("HEAD"))
    assert not meta.loose_path(tree).exists()  # in a new pack
    assert reader.read(tree) == tuple(meta.repo.odb.read(tree))


@pytest.mark.parametrize("name,plain", [
    ("refs/heads/main", True), ("refs/tags/v1.0", True), ("refs/heads/a/b", True),
    ("refs/heads/x.lock", False), ("refs/heads/../x", False), ("refs/heads/.x", False),
    ("refs/heads/a..b", False), ("refs/heads/a.", False), ("refs//x", False), ("HEAD", False),
    ("refs/heads/a b", False), ("refs/heads/a~1", False), ("refs/heads/é", False),
])
def test_plain_ref_names_are_names_git_accepts(name: str, plain: bool) -> None:
    assert plain_ref_name(name) is plain
    if plain:
        assert pygit2.reference_is_valid_name(name)


@pytest.mark.parametrize("folders", [1, 100])
def test_add_writes_its_folders_without_libgit2(tmp_path: Path, folders: int) -> None:
    """`ds add` writes new folders loose (a few) or as one pack (many) and reads the pack
    back, all without pygit2; git takes what it wrote as sound."""
    from .conftest import ds
    from .test_startup import imported, tops

    w = tmp_path / "w"
    ds("init", str(w), cwd=tmp_path)
    for i in range(folders):
        write(w, f"d{i}/f.txt", f"file {i}\n")
    modules = tops(imported(w, "add", "."))
    assert "pygit2" not in modules
    assert "Staged" in ds("status", cwd=w).stdout
    ds("commit", "-m", "v1", cwd=w)
    meta = w / ".dsstore" / "meta"
    packs = list((meta / "objects" / "pack").glob("pack-*.pack"))
    assert bool(packs) == (folders > 1)
    subprocess.run(["git", "--git-dir", str(meta), "fsck", "--strict", "--no-dangling"], check=True,
                   capture_output=True)
    assert ds("fsck", cwd=w).returncode == 0


def test_a_loose_object_written_here_is_one_libgit2_writes(store: Store) -> None:
    """Byte for byte the object libgit2 would store (after inflating): same id, same content;
    read-only; and written once, even when a pack already holds it."""
    meta = store.meta
    hex_id = meta.create_blob(b"some bytes\n")
    path = meta.loose_path(hex_id)
    assert hex_id == str(pygit2.hash(b"some bytes\n"))
    assert path.stat().st_mode & 0o777 == 0o444
    assert meta.repo.odb.read(hex_id)[1] == b"some bytes\n"
    meta.repack()
    assert not path.exists()
    assert meta.create_blob(b"some bytes\n") == hex_id
    assert not path.exists()  # the pack holds it: not written again
    assert not list(meta.path.glob("objects/*/tmp_obj_*"))  # no temp file left anywhere


# -- databases the reader must leave to libgit2 (found by a review, each compared both ways) --
def _git(meta: MetaStore, *args: str, data: bytes | None = None, env: dict | None = None) -> str:
    import os

    out = subprocess.run(["git", "--git-dir", str(meta.path), *args], input=data, capture_output=True,
                         check=True, env={**os.environ, **(env or {})})
    return out.stdout.decode().strip()


def _same(meta: MetaStore, *calls) -> None:
    for call in calls:
        assert answer(lambda c=call: c(fast(meta))) == answer(lambda c=call: c(slow(meta)))


@pytest.fixture
def two(store: Store, work: Path) -> Store:
    """Three versions (two before HEAD), their objects loose."""
    for i in range(3):
        write(work, f"f{i}.txt", f"v{i}\n")
        commit_all(store, f"c{i}")
    return store


def _history(m: MetaStore) -> tuple:
    return (m.resolve("HEAD~1"), list(m.ancestors(m.resolve("HEAD"))), m.head_commit(), m.refs())


def test_an_index_that_cannot_be_read_is_left_to_libgit2(two: Store) -> None:
    """A pack whose .idx went between the listing and the read (a merge elsewhere), here a
    folder where the .idx should be: the reader does not crash."""
    two.meta.repack()  # every object in a pack: the reader lists the packs
    folder = two.meta.path / "objects" / "pack"
    (folder / f"pack-{'0' * 40}.idx").mkdir()
    (folder / f"pack-{'0' * 40}.pack").touch()
    head = slow(two.meta).resolve("HEAD")
    _same(two.meta, lambda m: m.commit_info(head), _history, lambda m: m.has_tree(m.tree_of(head)))


def test_commits_git_writes_that_libgit2_reads_its_own_way(two: Store) -> None:
    """An author zone past +14:00 (libgit2 reads 0), a NUL in the message, a time past 2^63:
    the reader gives libgit2's answer or none; an amend keeps libgit2's reading."""
    meta = two.meta
    head = slow(meta).resolve("HEAD")
    tree = slow(meta).tree_of(head)
    people = {"GIT_AUTHOR_NAME": "A", "GIT_AUTHOR_EMAIL": "a@x", "GIT_COMMITTER_NAME": "C",
              "GIT_COMMITTER_EMAIL": "c@x", "GIT_COMMITTER_DATE": "2023-06-01T12:00:00+00:00"}
    far = _git(meta, "commit-tree", tree, "-p", head, "-m", "zone",
               env=people | {"GIT_AUTHOR_DATE": "2023-06-01T12:00:00+15:00"})
    author = b"A <a@x> 1700000000 +0000"
    odd = [_git(meta, "hash-object", "-t", "commit", "-w", "--stdin", "--literally", data=body) for body in (
        b"tree %s\nauthor %s\ncommitter %s\n\nbefore\0after\n" % (tree.encode(), author, author),
        b"tree %s\nauthor A <a@x> %d +0000\ncommitter %s\n\nm\n" % (tree.encode(), 1 << 63, author))]
    fields = ("id", "tree", "parents", "author", "email", "message", "author_time", "offset")
    for cid in (far, *odd):
        _same(meta, lambda m, c=cid: tuple(getattr(m._commit(c), k) for k in fields),
              lambda m, c=cid: m.commit_info(c), lambda m, c=cid: list(m.ancestors(c)))
    amended = {m: m.recommit(far, tree, "amended", ("C", "c@x")) for m in (fast(meta), slow(meta))}
    lines = {_git(meta, "cat-file", "-p", cid).splitlines()[2] for cid in amended.values()}
    assert len(lines) == 1 and lines.pop().endswith("+0000")  # (both amends: libgit2's zone)


def test_a_tag_named_like_a_dataset_id_is_resolved_as_libgit2_resolves_it(two: Store) -> None:
    meta = slow(two.meta)
    name = "0123456789abcdef0123456789abcdef"
    meta.set_ref(f"refs/datasets/{name}", meta.resolve("HEAD~1"))
    meta.set_ref(f"refs/tags/{name}", meta.resolve("HEAD"))
    _same(two.meta, lambda m: m.resolve(name), lambda m: m.resolve(name + "~1"))


@pytest.mark.parametrize("spoil", [" {}", "{}\n", "{}\t", "{} ", "{0}  {1}"])
def test_an_id_with_spaces_names_no_object(two: Store, spoil: str) -> None:
    two.meta.repack()  # (a loose object's path would not be found with the spaces in it)
    head = slow(two.meta).resolve("HEAD")
    tree = slow(two.meta).tree_of(head)
    for oid in (head, tree):
        bad = spoil.format(oid[:2], oid[2:]) if "{1}" in spoil else spoil.format(oid)
        _same(two.meta, lambda m, b=bad: m.commit_info(b), lambda m, b=bad: m.has_tree(b),
              lambda m, b=bad: m.read_folder(b), lambda m, b=bad: list(m.ancestors(b)))


@pytest.mark.parametrize("where", ["shallow", "info/grafts"])
def test_a_shallow_or_grafted_database_is_left_to_libgit2(two: Store, where: str) -> None:
    meta = two.meta
    parent = slow(meta).resolve("HEAD~1")
    path = meta.path / where
    path.parent.mkdir(exist_ok=True)
    path.write_text(parent + "\n")
    _same(meta, _history, lambda m: m.resolve("HEAD~2"))


@pytest.mark.parametrize("config", [
    "[core]\n\trepositoryformatversion = 99\n",
    "[core]\n\trepositoryformatversion = 0\n[extensions]\n\tobjectformat = sha256\n",
    "[core]\n\trepositoryformatversion = 0\n\tnot a line git reads [\n",
    "",
])
def test_a_config_libgit2_would_not_open_is_left_to_libgit2(two: Store, config: str) -> None:
    """Reads answered anyway would hide a database libgit2 refuses: fsck must say so."""
    (two.meta.path / "config").write_text(config)
    _same(two.meta, _history, lambda m: m.head_branch(), lambda m: m.ref_target("refs/heads/main"))


@pytest.mark.parametrize("packed", [
    "{a} refs/heads/x",  # no newline at the end
    "{a} refs/heads/x\n\n{b} refs/heads/y\n",  # a blank line
    "{a} refs/heads/x\n# a comment below the header\n",
    "^{a}\n{b} refs/heads/y\n",  # a peeled line with no ref above it
    "{a} refs/heads/x\n^{a}\n^{b}\n",  # two peeled lines
])
def test_a_packed_refs_file_libgit2_calls_corrupt_is_left_to_it(two: Store, packed: str) -> None:
    meta = two.meta
    a, b = slow(meta).resolve("HEAD"), slow(meta).resolve("HEAD~1")
    (meta.path / "packed-refs").write_text(packed.format(a=a, b=b))
    _same(meta, lambda m: m.refs(), lambda m: m.resolve("x"), lambda m: m.has_ref("refs/heads/x"),
          lambda m: m.tags(), lambda m: m.ref_target("refs/heads/y"))


def test_a_loose_object_with_bytes_past_its_stream_is_left_to_libgit2(two: Store) -> None:
    meta = two.meta
    head = slow(meta).resolve("HEAD")
    path = meta.loose_path(head)
    path.chmod(0o644)
    path.write_bytes(path.read_bytes() + b"garbage")
    with pytest.raises(Unsure):
        ObjectReader(meta.path).read(head)
    _same(meta, lambda m: m.readable(head), lambda m: m.commit_info(head))


def test_trees_libgit2_cannot_parse_are_left_to_it(two: Store) -> None:
    """An entry with no name, a tree cut inside an entry: `has_tree` and the folder read
    give libgit2's answers."""
    meta = two.meta
    blob = bytes.fromhex(meta.create_blob(b"x"))
    bodies = [b"100644 \0" + blob, b"100644 a\0" + blob[:7]]
    for body in bodies:
        tree = _git(meta, "hash-object", "-t", "tree", "-w", "--stdin", "--literally", data=body)
        _same(meta, lambda m, t=tree: m.has_tree(t), lambda m, t=tree: m.read_folder(t))

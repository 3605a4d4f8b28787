"""``ds fsck --remote NAME --repair``: a remote that lost or damaged files is mended from a
store that holds them, and nothing the remote held is lost on the way. Damage is done
through the remote's own storage API, so the same tests run on every backend."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from objstore.remote import push
from objstore.remote_fs import RemoteFS
from objstore.remote_fsck import fsck_remote
from objstore.store import Store
from objstore.worktree import commit_all

from .conftest import ds, read_tree, write
from .test_remote import clone_to, make_store


def _pushed(tmp_path: Path, url: str, opts: dict, files: int = 30) -> Store:
    a = make_store(tmp_path / "a", url, opts)
    for i in range(files):
        write(a.worktree, f"d{i % 3}/f{i:02d}.bin", os.urandom(5000 + 100 * i))
    commit_all(a, "v1")
    push(a)
    return a


def _files(fs: RemoteFS, prefix: str, suffix: str) -> list[str]:
    return [r for r in fs.list(prefix) if r.endswith(suffix) and "/.tmp-" not in r]


def _flip(fs: RemoteFS, rel: str, at: int) -> None:
    data = bytearray(fs.cat(rel))
    data[at] ^= 0xFF
    fs.put(rel, bytes(data))


DAMAGE = {  # kind -> (where, which files, byte to flip or None to delete, a word the check says)
    "pack-missing": ("packs", ".pack", None, "which is missing"),
    "pack-damaged": ("packs", ".pack", 100, "fails verification"),
    "meta-missing": ("meta", ".pack", None, "has no pack"),
    "meta-damaged": ("meta", ".pack", 30, "is damaged"),
    "fragment-damaged": ("index", ".idx", 20, "is damaged"),
    "fragment-missing": ("index", ".idx", None, "is not on the remote"),
}
KINDS = list(DAMAGE)


def _damage(fs: RemoteFS, kind: str) -> str:
    """Damage the first file of one kind on the remote; returns a word the check's problem must hold."""
    prefix, suffix, at, word = DAMAGE[kind]
    rel = _files(fs, prefix, suffix)[0]
    if at is None:
        fs.delete([rel])
    else:
        _flip(fs, rel, at)
    return word


def _aside(fs: RemoteFS, rel: str) -> str:
    """Where a repair kept a damaged file: ``damaged/<when>/<rel>``."""
    [kept] = [r for r in fs.list("damaged") if r.endswith("/" + rel)]
    return kept


def _listing(fs: RemoteFS) -> dict[str, int]:
    return {rel: size for rel, (size, _t) in fs.list_detail("").items() if not rel.startswith("locks/")}


@pytest.mark.parametrize("kind", KINDS)
def test_repair_mends_each_kind_of_damage_and_a_clone_reads_every_file(tmp_path: Path, kind: str) -> None:
    url = str(tmp_path / "remote")
    a = _pushed(tmp_path, url, {})
    fs = RemoteFS(url, {})
    word = _damage(fs, kind)
    if kind == "fragment-damaged":
        cached = sorted((a.path / "remotes" / "origin" / "index").iterdir())
        assert not fsck_remote(a, "origin", read_data_subset=1.0)["ok"]
        assert sorted((a.path / "remotes" / "origin" / "index").iterdir()) == cached, \
            "a check keeps this store's copies of the remote's fragments"
    # a second store checks it: its caches know nothing of the damage
    checker = make_store(tmp_path / "checker", url, {})
    before = fsck_remote(checker, "origin", read_data_subset=1.0)
    assert not before["ok"] and any(word in p for p in before["problems"]), before["problems"]
    fixed = fsck_remote(a, "origin", read_data_subset=1.0, repair=True)
    assert fixed["ok"], fixed["problems"]
    assert fixed["problems_found"] and fixed["repaired"] is not None
    mended = fixed["repaired"]
    if kind.startswith("pack"):
        assert mended["chunks_sent"] == (30 if kind == "pack-missing" else 1)
    elif kind.startswith("meta"):
        assert mended["metadata_objects_sent"] > 0 and mended["chunks_sent"] == 0
    elif kind == "fragment-damaged":  # this store's cached copy, checked when it came, is put back
        assert mended["files_restored"] and mended["chunks_sent"] == 0
    else:  # the index is rebuilt from the packs' own tables of contents: nothing sent again
        assert mended["chunks_reindexed"] == 30 and mended["chunks_sent"] == 0
    assert fsck_remote(checker, "origin", read_data_subset=1.0)["ok"]
    b = clone_to(url, {}, tmp_path / "b")
    assert read_tree(b.worktree) == read_tree(a.worktree)


@pytest.mark.parametrize("backend", ["s3", "gcs", "azure"])
def test_repair_on_each_cloud_backend(tmp_path: Path, request, backend: str) -> None:
    from .conftest import SCHEMES

    fixture, scheme = SCHEMES[backend]
    server = request.getfixturevalue(fixture)
    url, opts = f"{scheme}://{server.new_bucket()}/data", server.options
    a = _pushed(tmp_path, url, opts, files=12)
    fs = RemoteFS(url, opts)
    for kind in ("pack-damaged", "meta-missing", "fragment-damaged"):
        _damage(fs, kind)
    assert not fsck_remote(a, "origin", read_data_subset=1.0)["ok"]
    fixed = fsck_remote(a, "origin", read_data_subset=1.0, repair=True)
    assert fixed["ok"], fixed["problems"]
    b = clone_to(url, opts, tmp_path / "b")
    assert read_tree(b.worktree) == read_tree(a.worktree)


def test_a_healthy_remote_is_left_as_it_is(tmp_path: Path) -> None:
    url = str(tmp_path / "remote")
    a = _pushed(tmp_path, url, {})
    fs = RemoteFS(url, {})
    files = _listing(fs)
    result = fsck_remote(a, "origin", read_data_subset=1.0, repair=True)
    assert result["ok"] and result["repaired"] is None
    assert _listing(fs) == files


def test_a_damaged_fragment_that_does_not_come_back_the_same_is_kept_aside(tmp_path: Path) -> None:
    url = str(tmp_path / "remote")
    a = _pushed(tmp_path, url, {})
    write(a.worktree, "more.bin", os.urandom(9000))
    commit_all(a, "v2")
    push(a)
    fs = RemoteFS(url, {})
    fragments = _files(fs, "index", ".idx")
    assert len(fragments) == 2
    damaged = fragments[0]
    _flip(fs, damaged, 20)
    bad = fs.cat(damaged)
    other = make_store(tmp_path / "other", url, {})  # holds no copy of that fragment
    fixed = fsck_remote(other, "origin", repair=True)
    assert fixed["ok"], fixed["problems"]
    assert fixed["repaired"]["moved_aside"] == [damaged]
    assert fs.cat(_aside(fs, damaged)) == bad, "the damaged bytes are kept, not deleted"
    assert _files(fs, "index", ".idx") != fragments  # one new fragment names every chunk
    b = clone_to(url, {}, tmp_path / "b")
    assert read_tree(b.worktree) == read_tree(a.worktree)


def test_a_damaged_metadata_pack_holding_what_no_version_needs_is_kept_aside(tmp_path: Path) -> None:
    url = str(tmp_path / "remote")
    a = _pushed(tmp_path, url, {})
    v1 = a.meta.head_commit()
    write(a.worktree, "more.bin", os.urandom(9000))
    commit_all(a, "v2")
    push(a)  # a second metadata pack, holding v2 only
    push(a, refs=[f"+{v1}:refs/heads/main"])  # the remote goes back to v1: v2 is needed no more
    fs = RemoteFS(url, {})
    metas = _files(fs, "meta", ".pack")
    assert len(metas) == 2
    held = fsck_remote(a, "origin", read_data_subset=1.0)
    assert held["ok"], held["problems"]
    for rel in metas:  # damage both: v1's must come back, v2's only be kept aside
        _flip(fs, rel, 30)
    fixed = fsck_remote(a, "origin", repair=True)
    assert fixed["ok"], fixed["problems"]
    aside = fixed["repaired"]["moved_aside"]
    assert len(aside) == 2 and all(_aside(fs, rel) for rel in aside)
    b = clone_to(url, {}, tmp_path / "b")
    assert b.meta.head_commit() == v1


def test_a_chunk_damaged_here_too_is_reported_and_the_remote_is_no_worse(tmp_path: Path) -> None:
    url = str(tmp_path / "remote")
    a = _pushed(tmp_path, url, {})
    fs = RemoteFS(url, {})
    pack = _files(fs, "packs", ".pack")[0]
    _flip(fs, pack, 100)  # the first chunk of the remote's only pack
    before = fsck_remote(a, "origin", read_data_subset=1.0)
    [problem] = [p for p in before["problems"] if "fails verification" in p]
    cid = problem.split()[1]
    loc = a.chunks.index.lookup(bytes.fromhex(cid))
    local = next((a.path / "packs").glob(f"*/{loc.pack}.pack"))
    data = bytearray(local.read_bytes())
    data[loc.offset + loc.stored_len // 2] ^= 0xFF
    local.write_bytes(bytes(data))
    files = _listing(fs)
    result = fsck_remote(Store.open(a.worktree), "origin", read_data_subset=1.0, repair=True)
    assert not result["ok"]
    assert result["repaired"]["chunks_damaged_here"] == 1 and result["repaired"]["chunks_sent"] == 0
    assert any(cid in p for p in result["problems"]), result["problems"]
    assert _listing(fs) == files, "nothing was sent, moved or removed"
    after = fsck_remote(a, "origin", read_data_subset=1.0)
    assert [p for p in after["problems"] if "fails verification" in p] == [problem]


def test_the_cli_repairs_and_exits_non_zero_only_while_problems_are_left(tmp_path: Path) -> None:
    url = str(tmp_path / "remote")
    a = _pushed(tmp_path, url, {})
    fs = RemoteFS(url, {})
    fs.delete(_files(fs, "packs", ".pack"))
    check = ds("fsck", "--remote", "origin", cwd=a.worktree, check=False)
    assert check.returncode == 1 and "hint: `ds fsck --remote origin --repair`" in check.stderr
    fixed = ds("fsck", "--remote", "origin", "--repair", cwd=a.worktree, check=False)
    assert fixed.returncode == 0, fixed.stderr
    assert "30 sent again" in fixed.stderr and "OK" in fixed.stdout
    assert ds("fsck", "--remote", "origin", "--read-data-subset", "1", cwd=a.worktree).returncode == 0


HOLD_LOCK = """
import sys
from objstore.remote_fs import RemoteFS, RemoteLock
lock = RemoteLock(RemoteFS(sys.argv[1], {}), exclusive=True, op="repair")
lock.acquire()
print("held", flush=True)
sys.stdin.read()
"""


def test_a_lock_left_by_a_killed_command_on_this_machine_does_not_block(tmp_path: Path, monkeypatch) -> None:
    """A repair or gc killed while it holds the remote's exclusive lock: while the process
    lives, pushes wait (and give up); once it is gone, the next push goes ahead at once."""
    import subprocess
    import sys

    from objstore.remote_fs import RemoteLock, RemoteLocked

    url = str(tmp_path / "remote")
    a = _pushed(tmp_path, url, {}, files=3)
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, url], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline() == b"held\n"
        write(a.worktree, "new.bin", b"new")
        commit_all(a, "v2")
        monkeypatch.setattr(RemoteLock, "WAIT", 0.5)
        with pytest.raises(RemoteLocked, match="remote gc or repair is running"):
            push(a)
    finally:
        holder.kill()
        holder.wait()
    fs = RemoteFS(url, {})
    assert fs.list("locks"), "the killed holder's lock is still there"
    push(a)
    assert fs.list("locks") == []
    assert fsck_remote(a, "origin", read_data_subset=1.0)["ok"]


def test_a_damaged_pack_that_comes_out_the_same_is_replaced(tmp_path: Path) -> None:
    """One chunk in one pack: sent again, it makes the very same pack (named by its content,
    of the same size), which must replace the damaged one, not be skipped as landed."""
    url = str(tmp_path / "remote")
    a = _pushed(tmp_path, url, {}, files=1)
    fs = RemoteFS(url, {})
    [pack] = _files(fs, "packs", ".pack")
    _flip(fs, pack, 100)
    fixed = fsck_remote(a, "origin", read_data_subset=1.0, repair=True)
    assert fixed["ok"], fixed["problems"]
    assert _files(fs, "packs", ".pack") == [pack]
    assert fsck_remote(a, "origin", read_data_subset=1.0)["ok"]
    assert read_tree(clone_to(url, {}, tmp_path / "b").worktree) == read_tree(a.worktree)


def test_a_pack_cut_short_is_found_without_reading_it_and_mended(tmp_path: Path) -> None:
    url = str(tmp_path / "remote")
    a = _pushed(tmp_path, url, {})
    fs = RemoteFS(url, {})
    [pack] = _files(fs, "packs", ".pack")
    fs.put(pack, fs.cat(pack)[:50_000])
    quick = fsck_remote(a, "origin")
    assert not quick["ok"] and quick["chunks_read"] == 0
    assert any("cut short" in p for p in quick["problems"]), quick["problems"]
    assert fsck_remote(a, "origin", repair=True)["ok"]
    assert fsck_remote(a, "origin", read_data_subset=1.0)["ok"]


def test_a_missing_pack_no_version_needs_is_dropped_from_the_index(tmp_path: Path) -> None:
    url = str(tmp_path / "remote")
    a = _pushed(tmp_path, url, {}, files=3)
    v1 = a.meta.head_commit()
    fs = RemoteFS(url, {})
    before = set(_files(fs, "packs", ".pack"))
    write(a.worktree, "more.bin", os.urandom(9000))
    commit_all(a, "v2")
    push(a)
    push(a, refs=[f"+{v1}:refs/heads/main"])  # v2 is needed no more
    [v2_pack] = set(_files(fs, "packs", ".pack")) - before
    fs.delete([v2_pack])
    check = fsck_remote(a, "origin")
    assert not check["ok"] and check["hint"]
    fixed = fsck_remote(a, "origin", repair=True)
    assert fixed["ok"], fixed["problems"]
    assert fsck_remote(a, "origin", read_data_subset=1.0)["ok"]


def test_a_damaged_fragment_of_versions_this_store_never_saw_keeps_its_chunks_indexed(
        tmp_path: Path) -> None:
    """Another store pushed a branch this one never fetched, and both that push's fragment
    and its metadata pack are damaged: this store's repair indexes the branch's pack from
    its own table of contents, so no chunk of it becomes unindexed; the store that pushed
    the branch then sends its metadata again, and the branch clones whole."""
    url = str(tmp_path / "remote")
    a = _pushed(tmp_path, url, {}, files=3)
    b = clone_to(url, {}, tmp_path / "b")
    write(b.worktree, "feat.bin", os.urandom(20_000))
    commit_all(b, "feat")
    push(b, refs=["HEAD:refs/heads/feat"])
    fs = RemoteFS(url, {})
    newest = max(_files(fs, "index", ".idx"), key=lambda rel: fs.list_detail("index")[rel][1])
    metas = _files(fs, "meta", ".pack")
    _flip(fs, newest, 20)
    for rel in metas:
        if rel.rsplit("/", 1)[-1] not in {p.name for p in a.meta.pack_folder.iterdir()}:
            _flip(fs, rel, 30)
    a = Store.open(a.worktree)
    first = fsck_remote(a, "origin", repair=True)
    from objstore.remote import Remote

    chunk = b.meta.lookup(b.meta.head_commit() and b.meta.tree_of(b.meta.head_commit()), "feat.bin")
    fresh = Remote(make_store(tmp_path / "fresh", url, {}), "origin")
    assert all(fresh.index().lookup(cid) is not None for cid, _len in chunk.chunk_list()), first
    fixed = fsck_remote(b, "origin", read_data_subset=1.0, repair=True)
    assert fixed["ok"], fixed["problems"]
    c = clone_to(url, {}, tmp_path / "c", rev="feat")
    assert read_tree(c.worktree) == read_tree(b.worktree)


def test_a_lock_of_another_pid_namespace_is_never_taken_for_dead(tmp_path: Path, monkeypatch) -> None:
    """Same host name, a pid that does not run here: a container sharing the host's
    network, or a cloned machine. Its lock waits to go stale, never removed early."""
    import json
    import socket

    from objstore.remote_fs import RemoteLock, RemoteLocked

    url = str(tmp_path / "remote")
    a = _pushed(tmp_path, url, {}, files=2)
    fs = RemoteFS(url, {})
    body = {"op": "gc", "host": socket.gethostname(), "pid": 2**22 + 12345, "pids": "another/pid:[1]"}
    fs.put("locks/exclusive-0000.json", json.dumps(body).encode())
    write(a.worktree, "new.bin", b"new")
    commit_all(a, "v2")
    monkeypatch.setattr(RemoteLock, "WAIT", 0.3)
    with pytest.raises(RemoteLocked):
        push(a)
    assert fs.exists("locks/exclusive-0000.json")


def _put_fragment(fs: RemoteFS, store: Store, rows) -> str:
    from objstore.index import encode_fragment

    frag = encode_fragment(store.algo, rows)
    rel = f"index/{frag[-16:].hex()}.idx"
    fs.put(rel, frag)
    return rel


def test_a_chunk_indexed_twice_is_read_in_both_places_and_the_whole_copy_kept(tmp_path: Path) -> None:
    """Two fragments name one chunk in two packs, and the copy one of them names is
    damaged: even the quick check reads both rows (readers search fragments in their own
    order), and the repair keeps the one that reads."""
    from objstore.index import Location
    from objstore.remote import Remote

    url = str(tmp_path / "remote")
    a = _pushed(tmp_path, url, {}, files=1)
    fs = RemoteFS(url, {})
    [pack] = _files(fs, "packs", ".pack")
    copy = "f" * 32
    fs.put(f"packs/ff/{copy}.pack", fs.cat(pack))  # the same chunk in a second pack
    rows = list(Remote(a, "origin").index())
    _put_fragment(fs, a, [(cid, Location(copy, loc.offset, loc.stored_len, loc.raw_len, loc.flags))
                          for cid, loc in rows])
    _flip(fs, pack, 100)
    quick = fsck_remote(make_store(tmp_path / "c1", url, {}), "origin")
    assert not quick["ok"] and any("indexed twice" in p for p in quick["problems"]), quick["problems"]
    fixed = fsck_remote(a, "origin", repair=True)
    assert fixed["ok"] and fixed["repaired"]["chunks_sent"] == 0, fixed
    fresh = Remote(make_store(tmp_path / "c2", url, {}), "origin")
    assert {loc.pack for _cid, loc in fresh.index()} == {copy}
    assert read_tree(clone_to(url, {}, tmp_path / "b").worktree) == read_tree(a.worktree)


def test_an_unnamed_damaged_pack_that_comes_out_the_same_is_replaced(tmp_path: Path) -> None:
    url = str(tmp_path / "remote")
    a = _pushed(tmp_path, url, {}, files=1)
    fs = RemoteFS(url, {})
    fs.delete(_files(fs, "index", ".idx"))
    [pack] = _files(fs, "packs", ".pack")
    _flip(fs, pack, 100)
    fixed = fsck_remote(a, "origin", repair=True)
    assert fixed["ok"] and fixed["repaired"]["chunks_sent"] == 1, fixed
    assert fsck_remote(make_store(tmp_path / "c", url, {}), "origin", read_data_subset=1.0)["ok"]


def test_a_damaged_copy_of_a_fragment_here_too_is_not_put_back(tmp_path: Path) -> None:
    url = str(tmp_path / "remote")
    a = _pushed(tmp_path, url, {})
    fs = RemoteFS(url, {})
    [fragment] = _files(fs, "index", ".idx")
    _flip(fs, fragment, 20)
    mine = a.path / "remotes" / "origin" / fragment
    data = bytearray(mine.read_bytes())
    data[30] ^= 0xFF
    mine.write_bytes(bytes(data))
    fixed = fsck_remote(a, "origin", repair=True)
    assert fixed["ok"], fixed["problems"]
    assert fixed["repaired"]["files_restored"] == [] and fixed["repaired"]["chunks_reindexed"] == 30
    assert read_tree(clone_to(url, {}, tmp_path / "b").worktree) == read_tree(a.worktree)


def test_a_damaged_chunk_no_version_needs_is_not_indexed_again(tmp_path: Path) -> None:
    """A chunk no version needs, in a pack no fragment names, whose bytes are damaged: the
    repair leaves it unindexed, so a later push of a version that needs it sends it."""
    url = str(tmp_path / "remote")
    a = _pushed(tmp_path, url, {}, files=1)  # x: f00.bin
    fs = RemoteFS(url, {})
    [x_pack] = _files(fs, "packs", ".pack")
    b = make_store(tmp_path / "b", url, {})
    write(b.worktree, "w.bin", os.urandom(3000))
    commit_all(b, "unrelated")
    push(b, force=True)  # main no longer reaches x
    fs.delete([f for f in _files(fs, "index", ".idx")
               if x_pack.rsplit("/", 1)[-1][:-5] in {loc.pack for _c, loc in _fragment_rows(fs, a, f)}])
    _flip(fs, x_pack, 100)
    fs.delete([p for p in _files(fs, "packs", ".pack") if p != x_pack])  # w's: something to repair
    assert fsck_remote(b, "origin", repair=True)["repaired"]["chunks_sent"] == 1
    write(a.worktree, "later.bin", b"later")
    commit_all(a, "x again")
    t = push(a, refs=["HEAD:refs/heads/x"])
    assert t.chunks >= 2, "x was sent again, not taken as there"
    c = clone_to(url, {}, tmp_path / "c", rev="x")
    assert read_tree(c.worktree) == read_tree(a.worktree)


def _fragment_rows(fs: RemoteFS, store: Store, rel: str):
    from objstore.index import Fragment

    path = store.path / "frag-tmp.idx"
    path.write_bytes(fs.cat(rel))
    try:
        return list(Fragment(path))
    finally:
        path.unlink()


@pytest.mark.parametrize("suffix", [".pack", ".idx"])
def test_a_quick_check_from_a_new_store_reports_a_damaged_metadata_pack(tmp_path: Path, suffix: str) -> None:
    """A store that never saw a metadata pack downloads it to check it (as a fetch would):
    one that fails its check is a problem on the list, never the end of the check."""
    url = str(tmp_path / "remote")
    _pushed(tmp_path, url, {}, files=2)
    fs = RemoteFS(url, {})
    [rel] = _files(fs, "meta", suffix)
    _flip(fs, rel, 30)
    quick = fsck_remote(make_store(tmp_path / "new", url, {}), "origin")
    assert not quick["ok"] and quick["hint"]
    assert any("is damaged" in p for p in quick["problems"]), quick["problems"]

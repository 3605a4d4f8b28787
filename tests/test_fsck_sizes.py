"""A version whose file entries give lengths its chunks do not have (forged by a hostile
remote) is found by ``ds fsck`` and ``ds fsck --remote`` from the index alone, named with
what reaches it, and let go by ``--repair`` (a remote's refs only, never a user's branch).
A remote whose index lies while its packs are whole is re-indexed from the packs' own
tables of contents; hints keep the flags that found the problem."""

from __future__ import annotations

import os
from pathlib import Path

import pygit2
import pytest

from objstore.errors import DsError
from objstore.index import Location, encode_fragment
from objstore.maintenance import fsck
from objstore.manifest import FileEntry
from objstore.remote import Remote
from objstore.remote_fs import RemoteFS
from objstore.remote_fsck import fsck_remote
from objstore.store import Store
from objstore.worktree import commit_all

from .conftest import ds, read_tree, write
from .test_remote import clone_to, make_store
from .test_unsafe_versions import plant_version


def _publish(tmp_path: Path, files: dict[str, bytes]) -> tuple[Store, str]:
    url = str(tmp_path / "remote")
    a = make_store(tmp_path / "a", url, {})
    for rel, data in files.items():
        write(a.worktree, rel, data)
    commit_all(a, "v1")
    Remote(a).push()
    return a, url


plant_wrong_sizes = plant_version  # a root manifest listing lengths its chunks do not have


def _one_chunk_too_long(old: dict[str, FileEntry]) -> list[FileEntry]:
    e = old["a.txt"]  # 5 bytes, listed as 6
    return [FileEntry(e.name, e.kind, e.size + 1, e.hash), *(v for k, v in old.items() if k != "a.txt")]


def _chunks_misadd(old: dict[str, FileEntry]) -> list[FileEntry]:
    """c.bin of a.txt's chunk and b.txt's, given 4 and 5 bytes (they hold 5 and 3): the
    manifest's own sums agree, the chunks do not."""
    a, b = old["a.txt"], old["b.txt"]
    return [*old.values(), FileEntry("c.bin", a.kind, 9, a.hash, ((a.hash, 4), (b.hash, 5)))]


def _same_sum_wrong_split(old: dict[str, FileEntry]) -> list[FileEntry]:
    """c.bin of a.txt's chunk and b.txt's, given 3 and 5 bytes (they hold 5 and 3): the sum
    is right, so a checkout writes the file, but every ranged read of it is off."""
    a, b = old["a.txt"], old["b.txt"]
    return [*old.values(), FileEntry("c.bin", a.kind, 8, a.hash, ((a.hash, 3), (b.hash, 5)))]


FORGERIES = {"one-chunk": _one_chunk_too_long, "multi-chunk": _chunks_misadd,
             "same-sum": _same_sum_wrong_split}


@pytest.fixture(params=list(FORGERIES))
def forged(request, tmp_path: Path) -> tuple[Store, Store, str, str, str]:
    """(publisher, a clone that fetched the forged version, good version, forged version, url)."""
    a, url = _publish(tmp_path, {"a.txt": b"hello", "b.txt": b"abc"})
    good = a.head()
    c = clone_to(url, {}, tmp_path / "c")
    bad = plant_wrong_sizes(a, FORGERIES[request.param])
    Remote(c).fetch()  # the forged version's folders read back: a fetch takes it
    assert c.meta.resolve("refs/remotes/origin/main") == bad
    return a, c, good, bad, url


def test_local_fsck_finds_wrong_lengths_and_names_what_reaches_the_version(forged) -> None:
    _a, c, good, bad, _url = forged
    for read_data in (False, True):
        report = fsck(c, read_data=read_data)
        assert not report.ok, report
        [problem] = [p for p in report.problems if p.startswith(f"version {bad}")]
        assert ("a.txt" in problem or "c.bin" in problem) and "no chunk can mend it" in problem
        hint = report.problems[-1]
        assert bad[:12] in hint and "refs/remotes/origin/main" in hint, hint
        assert "lengths their chunks do not have" in hint and "`ds fsck --repair` drops" in hint
    r = ds("fsck", cwd=c.worktree, check=False)
    assert r.returncode == 1 and f"version {bad}" in r.stderr
    repaired = fsck(c, repair=True)
    assert repaired.ok, repaired.problems
    assert any(d.startswith("refs/remotes/origin/main") for d in repaired.refs_dropped)
    assert c.head() == good and c.meta.resolve("refs/heads/main") == good
    assert fsck(c, read_data=True).ok


def test_local_repair_never_moves_a_users_branch_off_such_a_version(forged) -> None:
    _a, c, good, bad, _url = forged
    c.meta.set_ref("refs/heads/kept", bad, force=False, message="made by hand")
    report = fsck(c, repair=True)
    assert c.meta.resolve("refs/heads/kept") == bad and c.head() == good
    assert not report.ok and "refs/heads/kept" in report.problems[-1]
    assert "move your branches and tags off them" in report.problems[-1]


def test_a_get_of_such_a_version_names_the_problem_and_fsck_then_finds_it(forged, tmp_path: Path) -> None:
    _a, c, _good, bad, _url = forged
    r = ds("get", "origin/main", str(tmp_path / "out"), cwd=c.worktree, check=False)
    if r.returncode == 0:  # the same sum: the file is written, the split is what is wrong
        assert read_tree(tmp_path / "out")["c.bin"][0] == b"helloabc"
    else:
        said = ("a.txt: wrote 5 bytes, expected 6", "c.bin: wrote 8 bytes, expected 9")
        assert any(w in r.stderr for w in said), r.stderr
        assert "lists a length its chunks do not have" in r.stderr, r.stderr
        assert "metadata is wrong" in r.stderr and "`ds fsck` names the version" in r.stderr
    r = ds("fsck", cwd=c.worktree, check=False)
    assert r.returncode == 1 and f"version {bad}" in r.stderr


def test_remote_fsck_finds_wrong_lengths_and_says_which_remote_refs_reach_them(forged) -> None:
    a, _c, good, bad, _url = forged
    for subset in (0.0, 1.0):
        check = fsck_remote(a, "origin", read_data_subset=subset)
        assert not check["ok"]
        [problem] = [p for p in check["problems"] if p.startswith(f"version {bad}")]
        assert "no chunk can mend it" in problem
        assert bad[:12] in check["hint"] and "refs/heads/main" in check["hint"], check["hint"]
        assert "ds push --force origin" in check["hint"], check["hint"]
    fixed = fsck_remote(a, "origin", repair=True)  # nothing a chunk mends: nothing changes
    assert not fixed["ok"] and fixed["repaired"]["chunks_sent"] == 0
    assert "ds push --force origin" in fixed["hint"]
    r = ds("push", "--force", "origin", f"{good}:main", cwd=a.worktree)  # as the hint says
    assert r.returncode == 0
    assert fsck_remote(a, "origin", read_data_subset=1.0)["ok"]


def test_the_checks_read_no_data_for_lengths(tmp_path: Path) -> None:
    """A healthy store and remote: the length check adds no reads of chunks."""
    a, _url = _publish(tmp_path, {f"f{i}.bin": os.urandom(100 + i) for i in range(20)})
    assert fsck(a).ok
    quick = fsck_remote(a, "origin")
    assert quick["ok"] and quick["chunks_read"] == 0


# -- the hint keeps the flags that found the problem ----------------------------------------
def test_a_hint_after_reading_data_keeps_the_read_and_its_command_mends(tmp_path: Path) -> None:
    a, url = _publish(tmp_path, {"f.bin": os.urandom(5000)})
    fs = RemoteFS(url, {})
    [pack] = [r for r in fs.list("packs") if r.endswith(".pack")]
    data = bytearray(fs.cat(pack))
    data[100] ^= 0xFF  # inside the one record: found only by reading it back
    fs.put(pack, bytes(data))
    assert fsck_remote(a, "origin")["ok"]  # nothing read: nothing found
    check = fsck_remote(a, "origin", read_data_subset=1.0)
    assert not check["ok"]
    assert "`ds fsck --remote origin --read-data-subset 1 --repair`" in check["hint"], check["hint"]
    r = ds("fsck", "--remote", "origin", "--read-data-subset", "1", "--repair", cwd=a.worktree)
    assert "1 sent again" in r.stderr and "OK" in r.stdout
    assert fsck_remote(a, "origin", read_data_subset=1.0)["ok"]


def test_a_hint_for_what_no_read_found_needs_no_read(tmp_path: Path) -> None:
    a, url = _publish(tmp_path, {"f.bin": os.urandom(5000)})
    fs = RemoteFS(url, {})
    fs.delete([r for r in fs.list("packs") if r.endswith(".pack")])
    check = fsck_remote(a, "origin")
    assert not check["ok"] and "`ds fsck --remote origin --repair`" in check["hint"], check["hint"]


# -- an index that lies about packs that are whole ------------------------------------------
def _lying_index(fs: RemoteFS, a: Store, url: str) -> list[bytes]:
    """Replace the remote's index by one whose rows name the wrong bytes of whole packs: one
    row past its pack's end, the others one byte off. Returns the chunks."""
    rows = sorted(Remote(a, "origin").index(), key=lambda row: row[0])
    size = {rel.rsplit("/", 1)[-1][:-5]: n for rel, (n, _t) in fs.list_detail("packs").items()}
    lies = [(cid, Location(loc.pack, size[loc.pack] + 10 if i == 0 else loc.offset + 1, loc.stored_len,
                           loc.raw_len, loc.flags)) for i, (cid, loc) in enumerate(rows)]
    old = [r for r in fs.list("index") if r.endswith(".idx")]
    frag = encode_fragment(a.algo, lies)
    fs.put(f"index/{frag[-16:].hex()}.idx", frag)
    fs.delete(old)
    return [cid for cid, _loc in rows]


def test_a_lying_index_over_whole_packs_is_named_so_and_reindexed_from_their_tables(tmp_path: Path) -> None:
    a, url = _publish(tmp_path, {f"d/f{i}.bin": os.urandom(3000 + i) for i in range(6)})
    fs = RemoteFS(url, {})
    chunks = _lying_index(fs, a, url)
    empty = make_store(tmp_path / "e", url, {})  # holds no chunk: the packs alone must do
    quick = fsck_remote(empty, "origin")  # an index found lying is worth reading whole
    assert "`ds fsck --remote origin --read-data-subset 1 --repair`" in quick["hint"], quick["hint"]
    check = fsck_remote(empty, "origin", read_data_subset=1.0)
    assert not check["ok"]
    assert not any("cut short" in p for p in check["problems"]), check["problems"]
    assert any("past the end of pack" in p and "the index is wrong" in p for p in check["problems"])
    assert any("names the wrong bytes of pack" in p and "the index is wrong" in p for p in check["problems"])
    fixed = fsck_remote(empty, "origin", read_data_subset=1.0, repair=True)
    assert fixed["ok"], fixed["problems"]
    assert fixed["repaired"]["chunks_sent"] == 0 and fixed["repaired"]["chunks_reindexed"] == len(chunks)
    assert fsck_remote(make_store(tmp_path / "f", url, {}), "origin", read_data_subset=1.0)["ok"]
    assert read_tree(clone_to(url, {}, tmp_path / "b").worktree) == read_tree(a.worktree)


def test_a_pack_truly_cut_short_is_still_called_so(tmp_path: Path) -> None:
    a, url = _publish(tmp_path, {f"f{i}.bin": os.urandom(5000) for i in range(10)})
    fs = RemoteFS(url, {})
    [pack] = [r for r in fs.list("packs") if r.endswith(".pack")]
    fs.put(pack, fs.cat(pack)[:20_000])
    quick = fsck_remote(a, "origin")
    assert any("is shorter than the index says: cut short" in p for p in quick["problems"])
    assert not any("the index is wrong" in p for p in quick["problems"])


# -- a chunk failing its check in a fetch points to the remote's check ----------------------
def test_a_damaged_remote_chunk_met_in_a_fetch_points_to_the_remote_check(tmp_path: Path) -> None:
    _a, url = _publish(tmp_path, {"f.bin": os.urandom(5000)})
    fs = RemoteFS(url, {})
    [pack] = [r for r in fs.list("packs") if r.endswith(".pack")]
    data = bytearray(fs.cat(pack))
    data[100] ^= 0xFF
    fs.put(pack, bytes(data))
    c = make_store(tmp_path / "c", url, {})
    r = ds("pull", cwd=c.worktree, check=False)
    assert r.returncode != 0
    assert "`ds fsck --remote origin`" in r.stderr and "--read-data" not in r.stderr, r.stderr


def test_a_checkout_told_the_version_and_remote_names_them(forged, tmp_path: Path) -> None:
    from objstore.materialize import Materializer

    _a, c, _good, bad, _url = forged
    items = list(c.meta.walk(c.meta.tree_of(bad)))
    out = tmp_path / "out"
    out.mkdir()
    writer = Materializer(str(out), c.chunks, version=bad, remote="origin", fresh=True)
    try:
        writer.write(items)
    except DsError as e:
        assert f"version {bad[:12]} (from remote origin) lists a length" in str(e)
    else:  # the same sum: written whole; fsck finds the split (above)
        assert (out / "c.bin").read_bytes() == b"helloabc"


def test_later_versions_holding_the_same_file_are_one_problem_and_go_too(forged) -> None:
    a, c, good, bad, _url = forged
    repo: pygit2.Repository = a.meta.repo
    sig = pygit2.Signature("x", "x@x")
    later = str(repo.create_commit(None, sig, sig, "later", repo[bad].tree.id, [repo[bad].id]))
    remote = Remote(a)
    remote.put_meta_pack({later})
    remote.fs.put("refs/heads/main", f"{later}\n".encode())
    Remote(c).fetch()
    report = fsck(c)
    [problem] = [p for p in report.problems if "no chunk can mend it" in p]
    assert problem.startswith(f"version {bad}:") and "(and 1 more version(s) holding that file)" in problem
    assert bad[:12] in report.problems[-1] and later[:12] not in report.problems[-1]
    assert fsck(c, repair=True).ok and c.head() == good
    check = fsck_remote(a, "origin")
    assert f"version {bad}:" in " ".join(check["problems"]) and "refs/heads/main" in check["hint"]

"""The Repository contract, one suite run on every side gc and fsck work on: the local
store, a folder remote, S3 (moto), GCS (fake-gcs-server) and Azure (azurite), as
tests/test_backend_contract.py does for the backends below them. A server that is not
installed skips its cases, or fails them under DS_REQUIRE_ALL_BACKENDS (CI).

Each case builds the same history on its side: version 1 holds files ``a*`` and ``s``,
version 2 drops ``a*`` and adds ``b`` (on a remote each version is pushed on its own, so
both sides hold two packs: {a*, s} and {b}). The engine (``maintenance.plan`` and
``sweep``) then runs with version 2's chunks live, so the first pack is mostly dead.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import pytest

from objstore.errors import CorruptObject, DsError
from objstore.maintenance import GcReport, plan, sweep
from objstore.remote import Remote
from objstore.repository import LocalRepository, Repository
from objstore.store import Store
from objstore.worktree import commit_all

from .conftest import SCHEMES, write
from .test_remote import make_store

SIDES = ("local", "folder", "s3", "gcs", "azure")


@dataclass
class Case:
    """One side holding the two versions, and what version 2 keeps alive."""

    kind: str
    store: Store
    live: dict[bytes, str]
    dead: set[bytes]

    def repo(self) -> Repository:
        """A repository opened afresh (a remote's cached index synced with its listing)."""
        if self.kind == "local":
            return LocalRepository(Store(self.store.path))
        return Remote(Store(self.store.path))

    def put(self, repo: Repository, rel: str, data: bytes) -> None:
        """Write a file straight into the side's storage (to damage it, or leave a temp file)."""
        if isinstance(repo, LocalRepository):
            repo.backend.write(rel, data)
        else:
            repo.fs.put(rel, data)

    def get(self, repo: Repository, rel: str) -> bytes:
        return repo.backend.read(rel) if isinstance(repo, LocalRepository) else repo.fs.cat(rel)


@pytest.fixture(params=SIDES)
def new_case(request, tmp_path: Path):
    """Build a fresh case on the side (a new store, and a new folder or bucket), each call."""
    counter = iter(range(1000))

    def make() -> Case:
        n = next(counter)
        if request.param == "local":
            store = Store.init(tmp_path / f"w{n}")
        elif request.param == "folder":
            store = make_store(tmp_path / f"w{n}", str(tmp_path / f"remote{n}"), {})
        else:
            fixture, scheme = SCHEMES[request.param]
            server = request.getfixturevalue(fixture)
            store = make_store(tmp_path / f"w{n}", f"{scheme}://{server.new_bucket()}/data", server.options)
        rnd = random.Random(n)
        for i in range(3):
            write(store.worktree, f"a{i}.bin", rnd.randbytes(20_000))
        write(store.worktree, "s.bin", rnd.randbytes(5_000))
        v1 = commit_all(store, "v1").id
        if request.param != "local":
            Remote(store).push()
        for i in range(3):
            (store.worktree / f"a{i}.bin").unlink()
        write(store.worktree, "b.bin", rnd.randbytes(8_000))
        v2 = commit_all(store, "v2").id
        if request.param != "local":
            Remote(store).push()
        live = {c: p for p, e in store.meta.walk(store.meta.tree_of(v2)) for c, _ in e.chunk_list()}
        old = {c for _p, e in store.meta.walk(store.meta.tree_of(v1)) for c, _ in e.chunk_list()}
        return Case(request.param, store, live, old - live.keys())

    return make


def now_of(repo: Repository) -> float:
    """A moment after every file of the repository was written, in the storage's clock."""
    return max(mtime for _size, mtime in repo.listing().values()) + 1


def indexed(repo: Repository) -> dict[bytes, object]:
    return dict(repo.index())


def assert_every_live_chunk_readable(case: Case) -> None:
    """The invariant gc keeps whenever it stops: every live chunk indexed in an existing
    pack, and its bytes there verify."""
    repo = case.repo()
    packs = repo.packs(repo.listing())
    rows = [(c, repo.index().lookup(c)) for c in sorted(case.live)]
    assert all(loc is not None and loc.pack in packs for _c, loc in rows), rows
    rows.sort(key=lambda r: (r[1].pack, r[1].offset))
    assert {c for c, _loc, _stored in repo.read_chunks(rows)} == case.live.keys()


def test_packs_their_rows_and_the_index_agree(new_case) -> None:
    case = new_case()
    repo = case.repo()
    packs = repo.packs(repo.listing())
    assert len(packs) == 2 and all(size > 0 for size, _mtime in packs.values())
    rows = dict(repo.pack_rows(sorted(packs)))
    index = indexed(repo)
    assert {c: loc for r in rows.values() for c, loc in r.items()} == index
    assert index.keys() == case.live.keys() | case.dead
    assert all(repo.home(c) in (None, loc.pack) for c, loc in index.items())
    assert len(repo.fragments()) == 2


def test_chunks_read_back_verified_and_a_damaged_record_is_caught(new_case) -> None:
    case = new_case()
    repo = case.repo()
    items = sorted(indexed(repo).items(), key=lambda r: (r[1].pack, r[1].offset))
    for cid, loc, stored in repo.read_chunks(items):
        assert len(stored) == loc.stored_len and repo.algo.digest(repo.decode(cid, loc, stored)) == cid
    problems: dict = {}
    assert repo.verify(items, problems) == sum(loc.raw_len for _c, loc in items) and problems == {}
    cid, loc = items[0]
    rel = f"packs/{loc.pack[:2]}/{loc.pack}.pack"
    data = bytearray(case.get(repo, rel))
    data[loc.offset] ^= 0xFF
    case.put(repo, rel, bytes(data))
    repo = case.repo()
    stored = next(repo.read_chunks([(cid, loc)], verify=False))[2]
    with pytest.raises(CorruptObject):
        repo.decode(cid, loc, stored)
    with pytest.raises(DsError):
        list(repo.read_chunks([(cid, loc)]))
    assert repo.verify(items, problems) and list(problems) == [(cid, loc)] and cid.hex() in problems[cid, loc]


def test_new_packs_and_one_fragment_replace_the_old_ones(new_case) -> None:
    case = new_case()
    repo = case.repo()
    with case.store.locked():
        items = sorted(indexed(repo).items(), key=lambda r: (r[1].pack, r[1].offset))
        rows, written = repo.write_packs((c, stored, loc.raw_len, loc.flags)
                                         for c, loc, stored in repo.read_chunks(items))
        assert written == 1 and {c for c, _loc in rows} == {c for c, _loc in items}
        old = repo.fragments()
        assert repo.replace_index(rows, old) == 2
        old_packs = {loc.pack for _c, loc in items}
        repo.delete([f"packs/{p[:2]}/{p}.pack" for p in old_packs])
    repo = case.repo()
    assert repo.packs(repo.listing()).keys() == {loc.pack for _c, loc in rows}
    assert len(repo.fragments()) == 1 and indexed(repo) == dict(rows)
    assert_every_live_chunk_readable(case)


def test_leftovers_are_temp_files_past_the_grace_period(new_case) -> None:
    case = new_case()
    repo = case.repo()
    case.put(repo, "packs/.tmp-interrupted", b"half a pack")
    listing = repo.listing()
    size, mtime = listing["packs/.tmp-interrupted"]
    assert size == len(b"half a pack")
    assert "packs/.tmp-interrupted" not in repo.packs(listing)
    assert repo.leftovers(listing, mtime, grace=1)[0] == []  # younger than the grace period
    late = mtime + max(1, repo.temp_age)
    assert repo.leftovers(listing, late, grace=1)[0] == ["packs/.tmp-interrupted"]


def test_gc_rewrites_the_mostly_dead_pack_and_keeps_every_live_chunk(new_case) -> None:
    case = new_case()
    repo = case.repo()
    report = GcReport()
    with case.store.locked():
        todo = plan(repo, case.live, report, now_of(repo), grace=0, below=0.8)
        assert (report.packs_rewritten, report.packs_deleted, report.chunks_dropped) == (1, 0, len(case.dead))
        assert todo.lost == [] and {c for c, _loc in todo.moved} == {case.store.meta.lookup(
            case.store.meta.tree_of(case.store.head()), "s.bin").chunk_list()[0][0]}
        assert sweep(repo, todo) == (1, 2)
    repo = case.repo()
    assert indexed(repo).keys() == case.live.keys() and len(repo.fragments()) == 1
    assert len(repo.packs(repo.listing())) == 2
    assert_every_live_chunk_readable(case)
    again = GcReport()
    with case.store.locked():
        todo = plan(repo, case.live, again, now_of(repo), grace=0, below=0.8)
    assert (again.packs_rewritten, again.packs_deleted, again.chunks_dropped) == (0, 0, 0)
    assert not todo.new_index


def test_a_young_pack_is_kept_whole(new_case) -> None:
    case = new_case()
    repo = case.repo()
    report = GcReport()
    todo = plan(repo, case.live, report, now_of(repo), grace=10 ** 9, below=0.8)
    assert (report.packs_rewritten, report.packs_deleted, todo.young_garbage) == (0, 0, 1)
    assert not todo.new_index and todo.moved == []


class Stop(BaseException):
    """The process dies here."""


def crash_at(repo: Repository, step: int | None) -> list[str]:
    """Make the repository's ``step``-th write or delete (1-based) kill the run; returns
    the log of the calls made."""
    calls: list[str] = []
    for name in ("write_packs", "put_fragment", "delete"):
        real = getattr(repo, name)

        def call(*args, _real=real, _name=name):
            calls.append(_name)
            if len(calls) == step:
                raise Stop
            return _real(*args)

        setattr(repo, name, call)
    return calls


def collect(case: Case, step: int | None = None) -> list[str]:
    repo = case.repo()
    calls = crash_at(repo, step)
    with case.store.locked():
        sweep(repo, plan(repo, case.live, GcReport(), now_of(repo), grace=0, below=0.8))
    return calls


def test_a_full_gc_writes_and_deletes_in_the_safe_order(new_case) -> None:
    """New packs, then the new fragment, then the old fragments, then dead packs, then
    leftovers: the steps the next test kills a gc before, one by one."""
    assert collect(new_case()) == STEPS


STEPS = ["write_packs", "put_fragment", "delete", "delete", "delete"]


@pytest.mark.parametrize("step", range(1, len(STEPS) + 1))
def test_a_gc_killed_at_any_step_leaves_every_live_chunk_readable(new_case, step: int) -> None:
    case = new_case()
    with pytest.raises(Stop):
        collect(case, step)
    assert_every_live_chunk_readable(case)
    collect(case)  # the next gc finishes the job
    repo = case.repo()
    assert indexed(repo).keys() == case.live.keys() and len(repo.fragments()) == 1
    assert len(repo.packs(repo.listing())) == 2
    assert_every_live_chunk_readable(case)

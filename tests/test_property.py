"""Property: any tree -> add -> commit -> get gives identical bytes and modes; fsck passes."""

from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from objstore.chunking import ChunkParams
from objstore.get import get_copy
from objstore.maintenance import fsck
from objstore.store import Store
from objstore.worktree import add, status

from .conftest import read_tree, write

SMALL_CHUNKS = ChunkParams(avg_size=1024, min_size=256, max_size=4096)

_char = st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="/\\:\0")
names = st.one_of(
    st.text(_char, min_size=1, max_size=12),
    st.sampled_from([".ds.manifest", ".ds.d.x", "with space", "ünïcødé", "日本語", "a" * 200, "git~1"]),
).filter(lambda n: n not in (".", "..") and n.casefold() not in (".dsstore", ".dsignore", ".git")
         and not n.startswith(".dsstore.init-")  # (those are never versioned)
         and len(n.encode()) <= 255)
contents = st.one_of(st.binary(max_size=64),
                     st.builds(lambda seed, n: random.Random(seed).randbytes(n),
                               st.integers(0, 2**32), st.integers(4000, 20000)),
                     st.just(b""), st.builds(lambda n: b"abc" * n, st.integers(0, 5000)))
trees = st.dictionaries(st.lists(names, min_size=1, max_size=5).map(tuple),
                        st.tuples(contents, st.booleans()), min_size=1, max_size=20)


def _consistent(tree: dict) -> dict:
    """Drop paths that would need a name to be both a file and a folder."""
    out = {}
    for path in sorted(tree, key=len):
        if any(path[:i] in out for i in range(1, len(path))):
            continue
        if any(other[: len(path)] == path for other in out):
            continue
        out[path] = tree[path]
    return out


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(trees, trees)
def test_tree_roundtrip(first: dict, second: dict) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp, "w")
        store = Store.init(work, chunking=SMALL_CHUNKS)
        versions = []
        for tree in (_consistent(first), _consistent(second)):
            for p in list(work.iterdir()):
                if p.name != ".dsstore":
                    _rm(p)
            for parts, (data, exe) in tree.items():
                write(work, "/".join(parts), data, mode=0o755 if exe else 0o644)
            expected = read_tree(work)
            add(store, [str(work)])
            versions.append((store.commit("v", allow_empty=True).id, expected))
            assert status(store).clean
        for i, (cid, expected) in enumerate(versions):
            out = Path(tmp, f"out{i}")
            get_copy(store, cid, out)
            assert read_tree(out) == expected
        report = fsck(store, read_data=True)
        assert report.ok, report.problems
        store.close()


def _rm(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        for c in p.iterdir():
            _rm(c)
        p.rmdir()
    else:
        os.unlink(p)

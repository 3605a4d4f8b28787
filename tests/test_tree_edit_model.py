"""The tree editor against a plain dict of paths: folders become files and files become
folders in any order, and every answer (and the written tree) is the model's."""

from __future__ import annotations

import random

from objstore.hashing import XXH3_128
from objstore.manifest import FILE, FileEntry
from objstore.store import Store
from objstore.tree_edit import TreeEditor

NAMES = ["a", "b", "c"]


def _entry(path: str, n: int) -> FileEntry:
    return FileEntry(path.rpartition("/")[2], FILE, n, XXH3_128.digest(str(n).encode()))


def _path(rnd: random.Random) -> str:
    return "/".join(rnd.choice(NAMES) for _ in range(rnd.randint(1, 4)))


def _model_set(model: dict[str, FileEntry], path: str, entry: FileEntry) -> None:
    for p in [p for p in model if p.startswith(path + "/")]:  # a folder becomes a file
        del model[p]
    parts = path.split("/")
    for i in range(1, len(parts)):  # a file becomes a folder
        model.pop("/".join(parts[:i]), None)
    model[path] = entry


def _model_remove(model: dict[str, FileEntry], path: str) -> bool:
    gone = [p for p in model if p == path or p.startswith(path + "/")]
    for p in gone:
        del model[p]
    return bool(gone)


def test_the_editor_answers_as_a_dict_of_paths_does(store: Store) -> None:
    for seed in range(40):
        rnd = random.Random(seed)
        editor = TreeEditor(store.meta, None)
        model: dict[str, FileEntry] = {}
        for step in range(120):
            path, op = _path(rnd), rnd.random()
            if op < 0.6:
                entry = _entry(path, step)
                editor.set(path, entry)
                _model_set(model, path, entry)
            elif op < 0.8:
                removed = editor.remove(path)  # True for an emptied folder too, which the model lacks
                assert removed or not _model_remove(model, path), (seed, step, path)
                _model_remove(model, path)
            else:
                assert editor.get(path) == model.get(path), (seed, step, path)
            assert editor.files_under("") == sorted(model), (seed, step)
        tree = editor.write()
        assert {p: e.hash for p, e in store.meta.walk(tree)} == {p: e.hash for p, e in model.items()}

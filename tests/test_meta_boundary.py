"""Module boundaries the design asks for, checked from the source with ``ast``.

``MetaStore`` (objstore/meta.py) is the only code that speaks pygit2: no other module of
objstore/ or cli/ imports it or reaches the raw repository (``meta.repo``) or MetaStore's
private members; everything else goes through MetaStore's methods, with hex-string ids.
``ds get`` lives in ``objstore.get``: the module was ``objstore.copy``, a name that
shadowed the standard library's ``copy`` and did not say what it does.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
META = "objstore/meta.py"


def _modules(*folders: str) -> dict[str, ast.Module]:
    """Each Python file under ``folders`` (relative to the project), parsed."""
    return {str(p.relative_to(ROOT)): ast.parse(p.read_text("utf-8"), str(p))
            for folder in folders for p in sorted((ROOT / folder).rglob("*.py"))}


def _imported(path: str, tree: ast.Module) -> set[str]:
    """Absolute names of what the file at ``path`` imports, modules and names from them
    (a relative import resolved against the file's folder, taken as its package)."""
    package = str(Path(path).parent).replace("/", ".")
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, *([base] if base else [])])
            out.add(base)
            out.update(f"{base}.{alias.name}" for alias in node.names)
    return out


def _imports_pygit2(path: str, tree: ast.Module) -> bool:
    return any(name == "pygit2" or name.startswith("pygit2.") for name in _imported(path, tree))


def _meta_internals(tree: ast.Module) -> list[str]:
    """``meta.repo`` / ``X.meta.repo``, ``meta.path`` (its files are MetaStore's) and
    ``meta._private`` / ``X.meta._private`` read in a file, as "line: text"."""
    out = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute) or not (
                node.attr in ("repo", "path") or node.attr.startswith("_")):
            continue
        owner = node.value
        if (isinstance(owner, ast.Name) and owner.id == "meta") or (
                isinstance(owner, ast.Attribute) and owner.attr == "meta"):
            out.append(f"{node.lineno}: {ast.unparse(node)}")
    return sorted(out, key=lambda line: int(line.partition(":")[0]))


def test_only_meta_imports_pygit2() -> None:
    modules = _modules("objstore", "cli")
    assert _imports_pygit2(META, modules[META])
    importers = {path for path, tree in modules.items() if _imports_pygit2(path, tree)}
    others = sorted(importers - {META})
    assert not others, f"use MetaStore's methods instead of pygit2 in {others}"


def test_no_module_reaches_into_the_metadata_database() -> None:
    found = {path: where for path, tree in _modules("objstore", "cli").items()
             if path != META and (where := _meta_internals(tree))}
    assert not found, f"use MetaStore's public methods: {found}"


def _store_meta(tree: ast.Module) -> list[int]:
    """Lines that read ``.meta`` of anything but click's context (``ctx.meta``)."""
    return sorted(node.lineno for node in ast.walk(tree)
                  if isinstance(node, ast.Attribute) and node.attr == "meta"
                  and not (isinstance(node.value, ast.Name) and node.value.id == "ctx"))


def test_the_command_line_asks_the_library_not_the_metadata_database() -> None:
    """The CLI presents: ref lookups and history walks are library functions (``Store``,
    ``objstore.history``, ``objstore.branches``), not queries of ``store.meta``."""
    found = {path: lines for path, tree in _modules("cli").items()
             if (lines := _store_meta(tree))}
    assert not found, f"lines reading store.meta: {found}"
    assert _store_meta(ast.parse("a = ctx.meta[1]\nb = store.meta.tags()\n")) == [2]


def test_the_checks_see_what_they_look_for() -> None:
    """The two checks above catch each form (so an empty answer means something)."""
    code = ast.parse("import pygit2.enums\nx = store.meta.repo.references\ny = meta._new(b)\n"
                     "z = self.repo\nw = meta.refs()\nv = store.meta.path / 'objects'\n")
    assert _imports_pygit2("objstore/x.py", code)
    assert _imports_pygit2("cli/x.py", ast.parse("from pygit2 import Oid"))
    assert _meta_internals(code) == ["2: store.meta.repo", "3: meta._new", "6: store.meta.path"]


def test_get_is_its_own_module_and_nothing_in_the_code_imports_copy() -> None:
    get = importlib.import_module("objstore.get")
    assert callable(get.get_copy) and callable(get.copy_items)
    users = {path for path, tree in _modules("objstore", "cli").items()
             if path != "objstore/copy.py"
             and "objstore.copy" in _imported(path, tree)}
    assert not users, f"import objstore.get instead of objstore.copy in {sorted(users)}"


def test_objstore_copy_is_gone_and_no_test_imports_it() -> None:
    tests = {Path(path).name for path, tree in _modules("tests").items()
             if any(name == "objstore.copy" or name.startswith("objstore.copy.")
                    for name in _imported(path, tree))}
    assert not tests, f"import objstore.get instead of objstore.copy in {sorted(tests)}"
    assert not (ROOT / "objstore" / "copy.py").exists()
    assert importlib.util.find_spec("objstore.copy") is None


def test_one_default_remote_rule_for_the_sdk_and_the_commands(tmp_path: Path, monkeypatch) -> None:
    """``Store.default_remote`` is the rule; the SDK's ``dataset_store.default_remote`` is it
    with ``DSSTORE_REMOTE`` first: env (SDK only), then the store's, then the user's."""
    from dataclasses import replace

    from objstore import dataset_store, userconfig
    from objstore.store import Store

    monkeypatch.setenv(userconfig.ENV_HOME, str(tmp_path / "home"))
    monkeypatch.delenv("DSSTORE_REMOTE", raising=False)
    store = Store.init(tmp_path / "w")

    def both() -> tuple[str | None, str | None]:
        return store.default_remote(), dataset_store.default_remote(store)

    assert both() == (None, None)
    userconfig.set_value("remote.default", "users")
    assert both() == ("users", "users")
    store.set_config(replace(store.config, remote="stores"))
    assert both() == ("stores", "stores")
    monkeypatch.setenv("DSSTORE_REMOTE", "scripts")
    assert both() == ("stores", "scripts")


def test_the_sdk_opens_its_store_by_its_own_name(tmp_path: Path, monkeypatch) -> None:
    """Two functions were called ``open_store``; the SDK's is ``open_sdk_store`` (the CLI keeps
    ``objstore_cli.app.open_store``), and it creates the store it is pointed at."""
    from objstore import dataset_store

    monkeypatch.delenv("DSSTORE_REMOTE", raising=False)
    monkeypatch.setenv("DS_CONFIG_HOME", str(tmp_path / "home"))
    assert not hasattr(dataset_store, "open_store")
    store = dataset_store.open_sdk_store(tmp_path / "sdk" / ".dsstore")
    assert (store.path / "config").is_file() and store.fetcher is None


def test_merge_of_a_remote_branch_names_its_tracking_ref(store, work: Path) -> None:
    """`ds merge origin/main` merges ``refs/remotes/origin/main`` and says so in the message,
    as before the lookup moved from the command into ``branches.ref_of``."""
    from objstore.branches import ref_of
    from objstore.worktree import add

    from .conftest import ds, write

    write(work, "a.txt", "base\n")
    add(store, [str(work)])
    base = store.commit("base").id
    write(work, "theirs.txt", "theirs\n")
    add(store, [str(work)])
    theirs = store.commit("theirs").id
    store.meta.set_ref("refs/remotes/origin/main", theirs)  # as a fetch leaves it
    ds("switch", "-c", "mine", base, cwd=work)
    assert not (work / "theirs.txt").exists()
    write(work, "mine.txt", "mine\n")
    ds("add", "mine.txt", cwd=work)
    ds("commit", "-m", "mine", cwd=work)
    assert (ref_of(store, "origin/main"), ref_of(store, "refs/heads/main"), ref_of(store, "HEAD~1")) == (
        "refs/remotes/origin/main", "refs/heads/main", "HEAD~1")
    merged = ds("merge", "origin/main", cwd=work).stdout.strip()
    info = store.meta.commit_info(merged)
    assert info.message == "merge refs/remotes/origin/main" and info.parents[1] == theirs
    assert (work / "theirs.txt").read_text() == "theirs\n"

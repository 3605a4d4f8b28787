"""Module boundaries the design asks for, checked from the source with ``ast``.

``ds get`` lives in ``objstore.get``: the module was ``objstore.copy``, a name that
shadowed the standard library's ``copy`` and did not say what it does.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Tests, edited elsewhere, that still import objstore.copy: objstore/copy.py re-exports
# objstore.get for them alone and is deleted once this set is empty.
COPY_IMPORTERS = {"test_clear_errors.py", "test_deltas.py", "test_links_and_safety.py", "test_recovery.py",
                  "test_remote_gc.py", "test_torture.py", "test_worktree_safety.py"}


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


def test_get_is_its_own_module_and_nothing_in_the_code_imports_copy() -> None:
    get = importlib.import_module("objstore.get")
    assert callable(get.get_copy) and callable(get.copy_items)
    users = {path for path, tree in _modules("objstore", "cli").items()
             if path != "objstore/copy.py"
             and "objstore.copy" in _imported(path, tree)}
    assert not users, f"import objstore.get instead of objstore.copy in {sorted(users)}"


def test_objstore_copy_is_only_kept_for_the_tests_not_yet_moved() -> None:
    tests = {Path(path).name for path, tree in _modules("tests").items()
             if any(name == "objstore.copy" or name.startswith("objstore.copy.")
                    for name in _imported(path, tree))}
    assert tests <= COPY_IMPORTERS, f"new imports of objstore.copy: {sorted(tests - COPY_IMPORTERS)}"
    if not COPY_IMPORTERS:
        assert not (ROOT / "objstore" / "copy.py").exists(), "objstore/copy.py has no user left: delete it"
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
    assert store.config_remote() == "stores"  # the old name, still called by remote.py


def test_the_sdk_opens_its_store_by_its_own_name(tmp_path: Path, monkeypatch) -> None:
    """Two functions were called ``open_store``; the SDK's is ``open_sdk_store`` (the CLI keeps
    ``objstore_cli.app.open_store``), and it creates the store it is pointed at."""
    from objstore import dataset_store

    monkeypatch.delenv("DSSTORE_REMOTE", raising=False)
    monkeypatch.setenv("DS_CONFIG_HOME", str(tmp_path / "home"))
    assert not hasattr(dataset_store, "open_store")
    store = dataset_store.open_sdk_store(tmp_path / "sdk" / ".dsstore")
    assert (store.path / "config").is_file() and store.fetcher is None

"""The config values a no-op `ds status` keeps (objstore.quickconfig): used only while the
config file is the one they were read from, and never kept for a config young enough that a
second write could share its times.

No test waits for the clock: "later" is a patched ``time_ns`` (as tests/test_startup.py
does for the stat cache).
"""

from __future__ import annotations

import os
import types
from pathlib import Path

import pytest

from objstore import quickconfig
from objstore.quickconfig import CACHE_NAME, config_facts
from objstore.quickstatus import quick_clean
from objstore.quicktrack import quick_tracking

from .conftest import ds, write

CONFIG = """[store]
format = 1

[worktree]
sparse = ["a/**"]

[branch.main]
remote = "origin"
merge = "refs/heads/main"
"""


def store_with(tmp_path: Path, text: str = CONFIG) -> Path:
    store = tmp_path / ".dsstore"
    (store / "cache").mkdir(parents=True)
    (store / "config").write_text(text)
    return store


def later(monkeypatch: pytest.MonkeyPatch, seconds: float = 10.0) -> None:
    """The clock as it will read ``seconds`` from now: the config is old by then."""
    import time

    monkeypatch.setattr(quickconfig, "time", types.SimpleNamespace(
        time_ns=lambda: time.time_ns() + int(seconds * 1e9)))


def parsed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record each time the TOML is parsed."""
    calls: list[str] = []
    real = quickconfig._parse

    def counting(path: str) -> dict | None:
        calls.append(path)
        return real(path)
    monkeypatch.setattr(quickconfig, "_parse", counting)
    return calls


def test_values_are_read_once_then_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = store_with(tmp_path)
    later(monkeypatch)
    calls = parsed(monkeypatch)
    want = {"store": {"format": 1}, "worktree": {"sparse": ["a/**"]},
            "branch": {"main": {"remote": "origin", "merge": "refs/heads/main"}}}
    assert config_facts(str(store)) == want
    assert (store / "cache" / CACHE_NAME).is_file()
    assert config_facts(str(store)) == want
    assert len(calls) == 1


@pytest.mark.parametrize("rewrite", ["in place, other size", "renamed over it", "touched"])
def test_a_changed_config_is_read_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        rewrite: str) -> None:
    store = store_with(tmp_path)
    later(monkeypatch)
    config_facts(str(store))
    config = store / "config"
    before = config.stat()
    if rewrite == "in place, other size":
        config.write_text(CONFIG.replace('"a/**"', '"bb/**"'))
        want = ["bb/**"]
    elif rewrite == "renamed over it":  # same size, same times: only the inode differs
        (store / "new").write_text(CONFIG.replace('"a/**"', '"b/**"'))
        os.utime(store / "new", ns=(before.st_atime_ns, before.st_mtime_ns))
        os.replace(store / "new", config)
        want = ["b/**"]
    else:  # same bytes put back in place, the mtime set by hand
        config.write_text(CONFIG.replace('"a/**"', '"c/**"'))
        os.utime(config, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000_000))
        want = ["c/**"]
    assert config_facts(str(store))["worktree"]["sparse"] == want


def test_a_config_written_within_the_tick_is_not_kept(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Read right after it was written, the config could be rewritten again with the same size
    and times: its values are used but not kept."""
    store = store_with(tmp_path)
    st = (store / "config").stat()
    just_after = types.SimpleNamespace(time_ns=lambda: st.st_ctime_ns + 1_000_000)
    monkeypatch.setattr(quickconfig, "time", just_after)
    assert config_facts(str(store))["store"] == {"format": 1}
    assert not (store / "cache" / CACHE_NAME).exists()


@pytest.mark.parametrize("content", [b"", b"\x00garbage", b"\xe3" * 40])
def test_a_damaged_cache_is_rebuilt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: bytes) -> None:
    store = store_with(tmp_path)
    later(monkeypatch)
    (store / "cache" / CACHE_NAME).write_bytes(content)
    assert config_facts(str(store))["store"] == {"format": 1}
    assert (store / "cache" / CACHE_NAME).read_bytes() != content


def test_a_cache_of_another_config_is_not_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A cache file copied from another store (or left by a config since replaced) names
    another file's stat data: never used."""
    one = store_with(tmp_path / "one")
    two = store_with(tmp_path / "two", CONFIG.replace("format = 1", "format = 2"))
    later(monkeypatch)
    config_facts(str(one))
    (two / "cache" / CACHE_NAME).write_bytes((one / "cache" / CACHE_NAME).read_bytes())
    assert config_facts(str(two))["store"] == {"format": 2}


@pytest.mark.parametrize("text", ["[store\nformat = 1\n", "[store]\nformat = 1\nformat = 2\n"])
def test_a_broken_config_gives_no_values_and_no_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      text: str) -> None:
    store = store_with(tmp_path, text)
    later(monkeypatch)
    assert config_facts(str(store)) is None
    assert not (store / "cache" / CACHE_NAME).exists()


def test_no_cache_folder_still_answers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = store_with(tmp_path)
    (store / "cache").rmdir()  # nowhere to keep the values: they are parsed each time
    later(monkeypatch)
    calls = parsed(monkeypatch)
    assert config_facts(str(store))["store"] == {"format": 1}
    assert config_facts(str(store))["store"] == {"format": 1}
    assert len(calls) == 2 and not (store / "cache").exists()


def test_the_quick_status_follows_a_changed_checked_out_part(work: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """End to end: a clean folder's quick answer holds while the config is unchanged, and a
    new checked-out part (the config rewritten) is never answered from the kept values."""
    ds("init", str(work), cwd=work.parent)
    write(work, "a/x.txt", "x\n")
    write(work, "b/y.txt", "y\n")
    ds("add", ".", cwd=work)
    ds("commit", "-m", "one", cwd=work)
    import objstore.statcache as sc
    from objstore import Store

    later(monkeypatch)
    real = sc.time
    monkeypatch.setattr(sc, "time", types.SimpleNamespace(time_ns=lambda: real.time_ns() + 10**10))
    with Store(work / ".dsstore") as store:
        from objstore.worktree import status

        status(store)  # the full status marks the folder clean
    assert quick_clean(str(work)) is True
    assert quick_tracking(str(work))["upstream"] is None
    assert (work / ".dsstore" / "cache" / CACHE_NAME).is_file()
    config = work / ".dsstore" / "config"
    config.write_text(config.read_text() + '\n[worktree]\nsparse = ["a/**"]\n')
    assert quick_clean(str(work)) is False  # another part: the clean mark does not name it
    config.write_text(config.read_text().replace('sparse = ["a/**"]', 'sparse = []') +
                      '\n[branch.main]\nremote = "origin"\nmerge = "refs/heads/main"\n')
    assert quick_tracking(str(work))["upstream"] == "origin/main"


def test_the_store_dir_variable_names_the_store_the_full_commands_use(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``..`` after a link is resolved by the kernel, as pathlib leaves it (``locate_store``):
    X/lnk/../.dsstore with lnk -> B/sub is B's store, not X's."""
    from objstore.quickstatus import store_dir
    from objstore.store import locate_store

    for name in ("X", "B"):
        store_with(tmp_path / name)
    (tmp_path / "B" / "sub").mkdir()
    (tmp_path / "X" / "lnk").symlink_to(tmp_path / "B" / "sub")
    monkeypatch.chdir(tmp_path)
    for given in ("X/lnk/../.dsstore", str(tmp_path / "X" / "lnk" / ".." / ".dsstore") + "/",
                  "./X/./lnk/../.dsstore/."):
        monkeypatch.setenv("DSSTORE_DIR", given)
        found = store_dir(str(tmp_path))
        assert found is not None and os.path.samefile(found, tmp_path / "B" / ".dsstore"), given
        assert os.path.samefile(found, locate_store(tmp_path))

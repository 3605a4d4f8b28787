"""The bare repository ``ds init`` writes without libgit2 is one libgit2 and git accept as
their own: HEAD unborn on main, a reflog for every ref, the same config as libgit2 makes."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pygit2
import pytest

from objstore.git_layout import init_bare
from objstore.meta import MetaStore


def _config(repo: pygit2.Repository) -> dict[str, str]:
    return {e.name: e.value for e in repo.config if e.level == pygit2.enums.ConfigLevel.LOCAL}


def test_libgit2_reads_it_as_the_repository_it_would_make(tmp_path: Path) -> None:
    """On this file system: libgit2 also probes case folding (written the same way, below)
    and, on macOS, Unicode composition."""
    init_bare(tmp_path / "ours")
    theirs = pygit2.init_repository(str(tmp_path / "theirs"), bare=True, initial_head="main")
    theirs.config["core.logAllRefUpdates"] = "always"
    ours = pygit2.Repository(str(tmp_path / "ours"))
    assert ours.is_bare and ours.head_is_unborn
    assert ours.references["HEAD"].target == "refs/heads/main"
    assert _config(ours) == _config(theirs)
    for sub in ("objects/info", "objects/pack", "refs/heads", "refs/tags"):
        assert (tmp_path / "ours" / sub).is_dir()


def test_a_version_in_it_has_a_reflog_and_passes_git_fsck(tmp_path: Path) -> None:
    init_bare(tmp_path / "meta")
    meta = MetaStore(tmp_path / "meta", 16)
    commit = meta.commit(meta.empty_tree, [], "v1", ("t", "t@example.com"))
    meta.make_durable()
    meta.set_ref("refs/tags/v1", commit, message="tag: v1")  # a tag too: logAllRefUpdates=always
    assert [m.new for m in meta.moves("refs/tags/v1")] == [commit]
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    done = subprocess.run(["git", "--git-dir", str(tmp_path / "meta"), "fsck", "--strict"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_ds_init_loads_no_pygit2(tmp_path: Path) -> None:
    probe = ("import sys; from objstore.store import Store; Store.init(sys.argv[1]); "
             "print('pygit2' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe, str(tmp_path / "w")], capture_output=True,
                         text=True, check=True).stdout.strip()
    assert out == "False"
    assert pygit2.Repository(str(tmp_path / "w" / ".dsstore" / "meta")).head_is_unborn


def test_it_refuses_a_path_that_exists(tmp_path: Path) -> None:
    (tmp_path / "meta").mkdir()
    with pytest.raises(FileExistsError):
        init_bare(tmp_path / "meta")


def test_a_file_system_that_folds_case_is_said_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = Path.exists
    monkeypatch.setattr(Path, "exists", lambda p: p.name == "head" or real(p))  # as it would answer
    init_bare(tmp_path / "meta")
    monkeypatch.undo()
    assert _config(pygit2.Repository(str(tmp_path / "meta")))["core.ignorecase"] == "true"
    init_bare(tmp_path / "here")  # this one does not fold
    assert "core.ignorecase" not in _config(pygit2.Repository(str(tmp_path / "here")))

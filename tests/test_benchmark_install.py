"""The benchmark times ``ds`` as a user installs it: from a wheel, with no import hook."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from benchmarks import run
from benchmarks.release_install import release_ds


def test_the_benchmark_installs_this_tree_from_a_wheel(tmp_path: Path) -> None:
    ds = release_ds(tmp_path)
    venv = tmp_path / "ds-venv"
    assert ds == [str(venv / "bin" / "ds")]
    probe = ("import sys, objstore, objstore_cli; "
             "print(objstore.__file__); print(objstore_cli.__file__); "
             "print(any('editable' in repr(f).lower() for f in sys.meta_path)); "
             "print('pathlib' in sys.modules)")
    out = subprocess.run([str(venv / "bin" / "python"), "-c", probe], cwd=tmp_path,
                         capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[0].startswith(str(venv)) and out[1].startswith(str(venv))
    assert out[2:4] == ["False", "False"]  # no import hook, and nothing it would load
    source = (Path(run.__file__).parents[1] / "objstore" / "meta.py").read_bytes()
    installed = next(venv.glob("lib/python*/site-packages/objstore/meta.py")).read_bytes()
    assert installed == source  # this tree's code, not an older install
    work = tmp_path / "data"
    work.mkdir()
    (work / "a.txt").write_text("a\n")
    for args in (["init", "-q"], ["add", "-q", "."], ["commit", "-q", "-m", "v1"]):
        subprocess.run([*ds, *args], cwd=work, check=True, capture_output=True)
    assert "Nothing changed." in subprocess.run([*ds, "status"], cwd=work, check=True,
                                                capture_output=True, text=True).stdout


def test_ds_cmd_wins_and_a_failed_install_falls_back_with_a_note(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DS_CMD", "python -m objstore_cli.main")
    assert run._ds_command(tmp_path) == (["python", "-m", "objstore_cli.main"], None)
    monkeypatch.delenv("DS_CMD")

    def broken(work: Path) -> list[str]:
        raise RuntimeError("pip wheel exited 1: no network")

    monkeypatch.setattr(run, "release_ds", broken)
    cmd, note = run._ds_command(tmp_path)
    assert cmd == ["ds"] and note is not None and "no network" in note

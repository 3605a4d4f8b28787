"""The ``ds`` a user runs: this source tree installed from a wheel, not in editable mode.

A developer's ``pip install -e`` maps the ``objstore_cli`` package onto ``cli/`` through an
import hook that ``site`` loads in every process: about 15 ms of start-up (pathlib,
importlib.util) that ``pip install objstore`` never pays, and more than a fifth of a no-op
``ds status``. So, unless ``$DS_CMD`` names a command, the benchmark builds a wheel of the
tree, installs it into a venv of its own (no pip, no setuptools: nothing else on its
``site`` path) and finds the dependencies in this interpreter's ``site-packages`` through a
plain path entry, which loads no hook.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ("pyproject.toml", "README.md", "objstore", "cli")  # what the wheel is built from


def _run(cmd: list[str], timeout: float) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if done.returncode:
        raise RuntimeError(f"{' '.join(cmd)} exited {done.returncode}: {done.stderr.strip()[-400:]}")


def release_ds(work: Path, timeout: float = 600.0) -> list[str]:
    """Install this tree into ``work/ds-venv`` from a wheel; returns the command to run it.

    Raises RuntimeError naming the step that failed (the caller falls back to ``ds``)."""
    source, wheels, venv = work / "ds-source", work / "wheel", work / "ds-venv"
    # a copy: a build in the tree would reuse its build/ folder, stale modules and all
    for name in SOURCE:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            source.mkdir(exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    pip = [sys.executable, "-m", "pip"]
    try:  # the build back-end the project names (needs the package index)
        _run([*pip, "wheel", "-q", "--no-deps", "-w", str(wheels), str(source)], timeout)
    except RuntimeError:  # offline: this interpreter's own setuptools
        _run([*pip, "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(wheels),
              str(source)], timeout)
    wheel = next(wheels.glob("objstore-*.whl"), None)
    if wheel is None:
        raise RuntimeError(f"no objstore wheel in {wheels}")
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], timeout)
    python = venv / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True, timeout=timeout).stdout.strip()
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (Path(site) / "objstore-bench-deps.pth").write_text("".join(f"{p}\n" for p in sorted(ours)))
    _run([*pip, "--python", str(python), "install", "-q", "--no-deps", "--ignore-installed",
          str(wheel)], timeout)
    ds = venv / "bin" / "ds"
    _run([str(ds), "--version"], timeout)
    return [str(ds)]

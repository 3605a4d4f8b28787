"""Profiles of the benchmark's hot paths, as pyinstrument text reports.

Usage::

    pip install pyinstrument
    python -m benchmarks.profile [--small-files 20000] [--large-mib 128] [--out benchmarks/profiles]

Generates S and L (the same generators as ``benchmarks.run``), then runs each step under
pyinstrument in a fresh process: ``ds add`` + ``ds commit`` of S and of L, a no-op
``ds status`` of S, ``ds get`` of S, ``ds clone`` of S from a folder remote. Each
report is written to ``OUT/<step>.txt``; the wall time of the profiled run is in its
header (profiling adds a little overhead, so read shares, not absolute times). This is
where a missed target in RESULTS.md is explained.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from .generate import generate_large, generate_small

HERE = Path(__file__).resolve().parent


def _ds() -> str:
    found = shutil.which("ds") or str(Path(sys.executable).with_name("ds"))
    return found


def profile(name: str, args: list[str], cwd: Path, out: Path) -> None:
    """Run ``ds ARGS`` under pyinstrument; keep its text report as OUT/NAME.txt."""
    report = out / f"{name}.txt"
    cmd = [sys.executable, "-m", "pyinstrument", "-r", "text", "--show-all", "-o", str(report),
           _ds(), *args]
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{name}: {' '.join(args)} failed: {proc.stderr.strip()}")
    print(f"{name}: {report}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.profile", description=__doc__.split("\n\n")[0])
    p.add_argument("--small-files", type=int, default=20000)
    p.add_argument("--large-mib", type=int, default=128)
    p.add_argument("--out", default=str(HERE / "profiles"))
    a = p.parse_args(argv)
    try:
        import pyinstrument  # noqa: F401
    except ImportError:
        raise SystemExit("pyinstrument is not installed: pip install pyinstrument") from None
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="objstore-profile-") as tmp:
        small, large = Path(tmp, "S"), Path(tmp, "L")
        generate_small(small, n_files=a.small_files)
        generate_large(large, size=a.large_mib * 1024 * 1024)
        for label, data in (("S", small), ("L", large)):
            subprocess.run([_ds(), "init"], cwd=data, check=True, capture_output=True)
            profile(f"{label}-add", ["add", "-q", "."], data, out)
            profile(f"{label}-commit", ["commit", "-q", "-m", "v1"], data, out)
        subprocess.run([_ds(), "status"], cwd=small, check=True, capture_output=True)  # proves it clean
        profile("S-status-noop", ["status"], small, out)
        profile("S-get", ["get", "HEAD", str(Path(tmp, "S-get"))], small, out)
        remote = Path(tmp, "S-remote")
        subprocess.run([_ds(), "remote", "add", "bench", str(remote)], cwd=small, check=True,
                       capture_output=True)
        subprocess.run([_ds(), "push", "-q", "bench"], cwd=small, check=True, capture_output=True)
        profile("S-clone", ["clone", "-q", str(remote), str(Path(tmp, "S-clone"))], Path(tmp), out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

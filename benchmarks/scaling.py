"""How `ds add` + `ds commit` scale with the cores they may use (``taskset``).

Usage::

    python -m benchmarks.scaling                 # S and L, 1, 2, 4, ... and all cores, 3 rounds
    python -m benchmarks.scaling --sets S --rounds 5 --md /tmp/scaling.md

Each round makes a new store on a fresh copy of the data set and times ``ds add .`` and
``ds commit`` under ``taskset -c 0..N-1`` for each core count N, the counts in an order
that swaps every round. The ingest reads, hashes and compresses on a thread pool (the C
libraries release the GIL) and stores every chunk from one thread: the speed-up from one
core to all tells how far threads scale before the GIL (Python per file) limits them,
where a process pool would be the next step. Figures are medians [min–max] of the rounds.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .generate import generate_large, generate_small
from .startup import LAUNCH, ROOT, layout


def core_counts() -> list[int]:
    cores = len(os.sched_getaffinity(0))
    counts = [1]
    while counts[-1] * 2 < cores:
        counts.append(counts[-1] * 2)
    return counts + [cores] if cores > 1 else counts


def add_commit(data: Path, work: Path, cores: int, env: dict[str, str]) -> tuple[float, float]:
    """(wall s, CPU s) of ``ds add .`` then ``ds commit`` on a fresh copy, on ``cores`` cores."""
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(data, work)
    pin = ["taskset", "-c", f"0-{cores - 1}"]
    ds = [sys.executable, "-c", LAUNCH]
    subprocess.run([*ds, "init", "-q"], cwd=work, env=env, check=True, capture_output=True)
    before = os.times()
    start = time.perf_counter()
    for args in (["add", "-q", "."], ["commit", "-q", "-m", "v1"]):
        subprocess.run([*pin, *ds, *args], cwd=work, env=env, check=True, capture_output=True)
    wall = time.perf_counter() - start
    after = os.times()
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    return wall, cpu


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="ds add + commit at 1, 2, ... and all cores.")
    parser.add_argument("--sets", default="S,L", help="S (20,000 small files), L (2 x 128 MiB), or both")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--md", metavar="PATH", help="write the Markdown table here too")
    args = parser.parse_args(argv)
    if shutil.which("taskset") is None:
        raise SystemExit("taskset (util-linux) is needed")
    counts = core_counts()
    lines = ["| set | cores | add+commit wall s | CPU s | speed-up over 1 core |",
             "| --- | ---: | ---: | ---: | ---: |"]
    with tempfile.TemporaryDirectory(prefix="ds-scaling-") as tmp:
        top = Path(tmp)
        env = {k: v for k, v in os.environ.items() if k not in ("DSSTORE_DIR", "PYTHONDONTWRITEBYTECODE")}
        env |= {"HOME": str(top / "home"), "PYTHONPYCACHEPREFIX": str(top / "pycache"),
                "PYTHONPATH": str(layout(ROOT, top / "code")), "DS_AUTHOR": "Data Team <data@example.com>"}
        for name in args.sets.split(","):
            data = top / f"data-{name}"
            generate_small(data) if name == "S" else generate_large(data)
            walls: dict[int, list[float]] = {n: [] for n in counts}
            cpus: dict[int, list[float]] = {n: [] for n in counts}
            for r in range(args.rounds):
                for n in counts if r % 2 == 0 else counts[::-1]:
                    wall, cpu = add_commit(data, top / "work", n, env)
                    walls[n].append(wall)
                    cpus[n].append(cpu)
            one = statistics.median(walls[1])
            for n in counts:
                w = walls[n]
                lines.append(f"| {name} | {n} | {statistics.median(w):.3f} [{min(w):.3f}–{max(w):.3f}] | "
                             f"{statistics.median(cpus[n]):.3f} | {one / statistics.median(w):.2f} |")
            shutil.rmtree(data)
    text = "\n".join(lines) + (f"\n\nMedians [min–max] of {args.rounds} rounds; {os.cpu_count()} CPUs, "
                               f"Python {sys.version.split()[0]}; threads only (the ingest has no "
                               "process pool).\n")
    sys.stdout.write(text)
    if args.md:
        Path(args.md).write_text(text)


if __name__ == "__main__":
    main()

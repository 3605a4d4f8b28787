"""Start-up cost of `ds` commands: import time and wall time, as medians.

Usage::

    python -m benchmarks.startup                       # this checkout, 15 runs per command
    python -m benchmarks.startup --against HEAD~3      # this checkout and an older commit, alternating
    python -m benchmarks.startup --runs 25 --md /tmp/startup.md

Every command runs in a small store made for the purpose (a few files, two versions, one
dataset). Each run is a fresh ``python`` process started as the ``ds`` console script starts
(``import re, sys`` then ``objstore_cli.main.main()``), once with ``-X importtime`` (the "self"
column summed over every module: what the imports cost, the interpreter's own included) and
once without it (wall time: ``-X importtime`` itself slows a run down). Bytecode is written
to a folder of its own and reused (``PYTHONPYCACHEPREFIX``), as an installed package's is, even
where ``PYTHONDONTWRITEBYTECODE`` is set. The first row,
``(python alone)``, is that launcher importing nothing of ds: the floor no change to ds can
go below.

With ``--against REV`` the files of ``objstore/`` and ``cli/`` at git revision REV are
exported (``git archive``, nothing in the checkout changes) and both trees run in turn, in
an order that swaps every round, so a busy machine slows both alike.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAUNCH = "import re, sys\nfrom objstore_cli.main import main\nsys.argv[0] = 'ds'\nsys.exit(main())\n"
FLOOR = "import re, sys\n"

# (label, arguments): what a person types most, the help, and the error paths.
COMMANDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("--version", ("--version",)),
    ("--help", ("--help",)),
    ("status (clean)", ("status",)),
    ("log -n 1", ("log", "-n", "1")),
    ("ls", ("ls",)),
    ("diff", ("diff",)),
    ("commit, nothing staged", ("commit", "-m", "nothing")),
    ("branch", ("branch",)),
    ("dataset search", ("dataset", "search")),
    ("usage error (log -n x)", ("log", "-n", "x")),
)


@dataclass
class Variant:
    """One tree of ds code: where its packages are, as a PYTHONPATH entry."""

    name: str
    path: Path
    imports: dict[str, list[float]] = field(default_factory=dict)  # label -> ms per run
    wall: dict[str, list[float]] = field(default_factory=dict)


def layout(src: Path, dest: Path) -> Path:
    """``dest`` holding ``objstore`` and ``objstore_cli`` (the installed names) of tree ``src``."""
    dest.mkdir(parents=True, exist_ok=True)
    for name, sub in (("objstore", "objstore"), ("objstore_cli", "cli")):
        (dest / name).symlink_to(src / sub, target_is_directory=True)
    return dest


def export(rev: str, dest: Path) -> Path:
    """The ``objstore/`` and ``cli/`` files of git revision ``rev``, laid out under ``dest``."""
    tree = dest / "tree"
    tree.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", rev, "objstore", "cli"],
                             capture_output=True, check=True).stdout
    with tempfile.TemporaryFile() as f:
        f.write(archive)
        f.seek(0)
        with tarfile.open(fileobj=f) as tar:
            tar.extractall(tree, filter="data")
    return layout(tree, dest / "path")


def make_store(folder: Path, env: dict[str, str]) -> None:
    """A store with two versions of a few files and one finalized dataset; status is clean."""
    def ds(*args: str) -> None:
        subprocess.run([sys.executable, "-c", LAUNCH, *args], cwd=folder, env=env, check=True,
                       capture_output=True)

    folder.mkdir()
    ds("init", "-q")
    for i in range(20):
        path = folder / f"d{i % 4}" / f"f{i}.txt"
        path.parent.mkdir(exist_ok=True)
        path.write_text(f"file {i}\n" * (i + 1))
    ds("add", ".", "-q")
    ds("commit", "-m", "one", "-q")
    (folder / "d0" / "f0.txt").write_text("changed\n")
    ds("add", ".", "-q")
    ds("commit", "-m", "two", "-q")
    data = folder.parent / "data"
    data.mkdir()
    (data / "x.csv").write_text("a,b\n1,2\n")
    ds("dataset", "create", "--project", "p", "--name", "n")
    ds("dataset", "add", "--files", str(data))
    ds("dataset", "close")
    past = time.time() - 3600  # older than any stat-cache tick, so status can answer from stat data
    for dirpath, _dirs, names in os.walk(folder):
        if ".dsstore" not in Path(dirpath).parts:
            for name in names:
                os.utime(os.path.join(dirpath, name), (past, past))
    ds("status")  # records the clean state the quick path reads


def import_ms(stderr: str) -> float:
    """The self column of ``-X importtime`` summed, in milliseconds."""
    total = 0
    for line in stderr.splitlines():
        if line.startswith("import time:"):
            self_us = line[len("import time:"):].split("|", 1)[0].strip()
            if self_us.isdigit():  # the header says "self [us]"
                total += int(self_us)
    return total / 1000


def run_once(code: str, args: tuple[str, ...], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """(import ms, wall ms) of one command: two fresh processes, with and without -X importtime."""
    profiled = subprocess.run([sys.executable, "-X", "importtime", "-c", code, *args], cwd=cwd, env=env,
                              capture_output=True, text=True)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, env=env, capture_output=True)
    return import_ms(profiled.stderr), (time.perf_counter() - start) * 1000


def measure(variants: list[Variant], runs: int, cwd: Path, base_env: dict[str, str]) -> None:
    """Every command, ``runs`` times per variant, alternating variants (order swapped each round)."""
    rows = [("(python alone)", FLOOR, ()), *((label, LAUNCH, args) for label, args in COMMANDS)]
    for variant in variants:  # warm up: bytecode compiled, files in the page cache
        for _label, code, args in rows:
            run_once(code, args, cwd, base_env | {"PYTHONPATH": str(variant.path)})
    for round_ in range(runs):
        order = variants if round_ % 2 == 0 else variants[::-1]
        for label, code, args in rows:
            for variant in order:
                imp, wall = run_once(code, args, cwd, base_env | {"PYTHONPATH": str(variant.path)})
                variant.imports.setdefault(label, []).append(imp)
                variant.wall.setdefault(label, []).append(wall)


def table(variants: list[Variant], runs: int) -> str:
    """The Markdown table: per command, median import ms and median wall ms of each variant."""
    head = ["command"] + [f"{what} {v.name}" for v in variants for what in ("imports ms", "wall ms")]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label in variants[0].imports:
        cells = [label]
        for v in variants:
            cells += [f"{statistics.median(v.imports[label]):.1f}", f"{statistics.median(v.wall[label]):.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    note = (f"\nMedians of {runs} runs each; imports = `-X importtime` self column summed (the interpreter's "
            f"own imports included), wall = a run without `-X importtime`; {os.cpu_count()} CPUs, "
            f"Python {sys.version.split()[0]}.\n")
    return "\n".join(lines) + "\n" + note


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Start-up cost of ds commands (imports and wall time).")
    parser.add_argument("--runs", type=int, default=15, help="runs per command and variant (default 15)")
    parser.add_argument("--against", metavar="REV", help="also run ds as it was at git revision REV")
    parser.add_argument("--md", metavar="PATH", help="write the Markdown table here too")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ds-startup-") as tmp:
        top = Path(tmp)
        variants = [Variant("now", layout(ROOT, top / "now"))]
        if args.against:
            variants.insert(0, Variant(args.against, export(args.against, top / "before")))
        skip = ("DSSTORE_DIR", "DS_CONFIG_HOME", "XDG_CONFIG_HOME", "PYTHONPROFILEIMPORTTIME",
                "PYTHONDONTWRITEBYTECODE")
        env = {k: v for k, v in os.environ.items() if k not in skip}
        env["HOME"] = str(top / "home")  # the user settings' usual place, empty: no one's settings
        # compiled once, as an installed package is: without bytecode every run compiles the sources
        env["PYTHONPYCACHEPREFIX"] = str(top / "pycache")
        store = top / "store"
        make_store(store, env | {"PYTHONPATH": str(variants[-1].path)})
        measure(variants, args.runs, store, env)
        text = table(variants, args.runs)
    sys.stdout.write(text)
    if args.md:
        Path(args.md).write_text(text)


if __name__ == "__main__":
    main()

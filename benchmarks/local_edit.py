"""The everyday loop on a big folder: one file edited, then status, add, commit, status.

Usage::

    python -m benchmarks.local_edit                        # 100,000 files, 5 rounds, ds beside git
    python -m benchmarks.local_edit --files 300000 --against 499ac7f --md /tmp/edit.md

A folder of ``--files`` small files (the 1M set's generator: ~1 KiB each, 1,000 a folder) is
committed once by each tool on its own copy. Each round then appends a line to one file
(another one each round, the same in every copy) and times, in each copy, ``status``,
``add`` of the whole folder, ``commit`` and ``status`` again: `ds status`, `ds add .`,
`ds commit -m`, and git's `git status`, `git add -A`, `git commit -m`. The tools alternate
and the order swaps every round, so a busy machine slows all alike. Each figure is the
median [min–max] of the rounds' wall times; a ratio is the median of the rounds' ratios.
With ``--against REV`` ds as it was at git revision REV runs too, on a copy of its own.
Bytecode is compiled once and reused, as an installed package's is.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .generate import generate_million
from .startup import LAUNCH, ROOT, export, layout

STEPS = ("status", "add", "commit", "status again")


def ds_steps(n: int) -> dict[str, list[str]]:
    return {"status": ["status"], "add": ["add", "-q", "."], "commit": ["commit", "-q", "-m", f"r{n}"],
            "status again": ["status"]}


def git_steps(n: int) -> dict[str, list[str]]:
    return {"status": ["status"], "add": ["add", "-A"], "commit": ["commit", "-q", "-m", f"r{n}"],
            "status again": ["status"]}


class Tool:
    """One tool on its own copy of the folder: how to run it, and its wall times per step."""

    def __init__(self, name: str, folder: Path, command: list[str], env: dict[str, str], steps) -> None:
        self.name, self.folder, self.command, self.env, self.steps = name, folder, command, env, steps
        self.times: dict[str, list[float]] = {step: [] for step in STEPS}

    def run(self, args: list[str]) -> float:
        start = time.perf_counter()
        proc = subprocess.run([*self.command, *args], cwd=self.folder, env=self.env, capture_output=True)
        took = time.perf_counter() - start
        if proc.returncode != 0:
            raise SystemExit(f"{self.name} {' '.join(args)} failed: {proc.stderr.decode(errors='replace')}")
        return took

    def round(self, n: int) -> None:
        for step, args in self.steps(n).items():
            self.times[step].append(self.run(args))


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} [{min(values):.3f}–{max(values):.3f}]"


def _ratio(a: list[float], b: list[float]) -> str:
    ratios = [x / y for x, y in zip(a, b, strict=True)]
    return f"{statistics.median(ratios):.2f} [{min(ratios):.2f}–{max(ratios):.2f}]"


def table(tools: list[Tool], files: int, rounds: int) -> str:
    git, ds = tools[0], tools[1]
    older = tools[2] if len(tools) > 2 else None
    head = ["step", "git s", "ds s", "ds / git"]
    head += [f"{older.name} s", f"ds / {older.name}"] if older else []
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" + " ---: |" * (len(head) - 1)]
    for step in STEPS:
        cells = [step, _spread(git.times[step]), _spread(ds.times[step]),
                 _ratio(ds.times[step], git.times[step])]
        if older:
            cells += [_spread(older.times[step]), _ratio(ds.times[step], older.times[step])]
        lines.append("| " + " | ".join(cells) + " |")
    total = {t.name: [sum(t.times[s][i] for s in STEPS) for i in range(rounds)] for t in tools}
    cells = ["the loop", _spread(total[git.name]), _spread(total[ds.name]),
             _ratio(total[ds.name], total[git.name])]
    if older:
        cells += [_spread(total[older.name]), _ratio(total[ds.name], total[older.name])]
    lines.append("| " + " | ".join(cells) + " |")
    git_version = subprocess.run(["git", "--version"], capture_output=True, text=True).stdout.strip()
    note = (f"\n{files:,} files of ~1 KiB, one file edited per round; wall seconds, median [min–max] of "
            f"{rounds} rounds; ratios are medians of the rounds' ratios. {os.cpu_count()} CPUs, Python "
            f"{sys.version.split()[0]}, {git_version}.\n")
    return "\n".join(lines) + "\n" + note


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="One file edited in a big folder: status, add, commit.")
    parser.add_argument("--files", type=int, default=100_000, help="files in the folder (default 100,000)")
    parser.add_argument("--rounds", type=int, default=5, help="edits, each timed in every tool (default 5)")
    parser.add_argument("--against", metavar="REV", help="also run ds as it was at git revision REV")
    parser.add_argument("--md", metavar="PATH", help="write the Markdown table here too")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ds-edit-") as tmp:
        top = Path(tmp)
        skip = ("DSSTORE_DIR", "DS_CONFIG_HOME", "XDG_CONFIG_HOME", "PYTHONDONTWRITEBYTECODE",
                "GIT_DIR", "GIT_WORK_TREE")
        env = {k: v for k, v in os.environ.items() if k not in skip}
        env |= {"HOME": str(top / "home"), "PYTHONPYCACHEPREFIX": str(top / "pycache"),
                "GIT_AUTHOR_NAME": "Data Team", "GIT_AUTHOR_EMAIL": "data@example.com",
                "GIT_COMMITTER_NAME": "Data Team", "GIT_COMMITTER_EMAIL": "data@example.com",
                "DS_AUTHOR": "Data Team <data@example.com>"}
        (top / "home").mkdir()
        data = top / "data"
        generate_million(data, n_files=args.files, seed=args.seed)
        files = sorted(p.relative_to(data).as_posix() for p in data.rglob("*") if p.is_file())
        ds_launch = [sys.executable, "-c", LAUNCH]
        variants = [("ds", layout(ROOT, top / "now"))]
        if args.against:
            variants.append((f"ds@{args.against}", export(args.against, top / "before")))
        tools = [Tool("git", top / "git", ["git"], env, git_steps)]
        tools += [Tool(name, top / name.replace("@", "-"), ds_launch, env | {"PYTHONPATH": str(path)},
                       ds_steps) for name, path in variants]
        for tool in tools:  # each its own copy, committed once; not timed
            shutil.copytree(data, tool.folder, symlinks=True)
            first = [["init", "-q"], ["add", "-A" if tool.name == "git" else "."],
                     ["commit", "-q", "-m", "v1"], ["status"], ["status"]]
            for step in first:
                tool.run(step)
        rng = random.Random(args.seed)
        for n in range(args.rounds):
            edited = rng.choice(files)
            order = tools if n % 2 == 0 else tools[::-1]
            for tool in order:
                with open(tool.folder / edited, "a") as f:
                    f.write(f"edited in round {n}\n")
                tool.round(n)
        text = table(tools, args.files, args.rounds)
    sys.stdout.write(text)
    if args.md:
        Path(args.md).write_text(text)


if __name__ == "__main__":
    main()

"""End-to-end benchmark of the ``ds`` CLI against cp -r, tar|zstd, git, git-lfs, s3fs and DVC.

Usage::

    python -m benchmarks.run [--quick] [--rounds N] [--small-files N] [--large-mib M]
                             [--million [--million-files N]] [--chart PNG | --no-chart]
                             [--out benchmarks/results.json] [--md benchmarks/RESULTS.md]

This module reads the command line and runs the data sets in order; the work is split:

- :mod:`benchmarks.harness`: running and timing one command (wall, CPU, peak RSS through
  a small C helper), medians of repeated runs, sizes, the machine's description;
- :mod:`benchmarks.peers`: cp -r, tar | zstd, git, git-lfs, DVC, s3fs and the moto S3
  server, set up and run on their own copy of the data;
- :mod:`benchmarks.scenarios`: what each data set runs, step by step;
- :mod:`benchmarks.report`: ratios, the Markdown, the targets, the chart, ``--render``.

All runs are on a warm page cache (the data has just been written). Each data set is
measured in ``--rounds`` paired rounds (3 by default, 1 with ``--quick``): ds and the peers
one after the other from fresh copies, ds first in odd rounds and the peers first in even
ones; each ratio is the median of the per-round ratios, with its min and max.

Remotes: ``ds push`` / ``ds clone`` / incremental ``ds push`` / ``ds pull`` to a
folder and to S3. The S3 server is moto's, started in this process on
127.0.0.1 (a free port); it counts the requests it serves and its CPU time
(``RUSAGE_SELF`` delta of this otherwise idle process) per step. Peers: ``cp -r``
(folder), s3fs ``put``/``get`` of the raw files (each a fresh ``python``
subprocess), DVC if installed (``dvc add``, no-op ``dvc status``, ``dvc push`` to a
folder and to the same moto S3, ``dvc pull`` into a fresh project, then the change
set, ``dvc status``, ``dvc add`` of v2 and the ``.dvc/cache`` growth) and git-lfs if
installed (``git lfs track`` on every data file pattern, add+commit v1, no-op status,
v2 after the change set, ``.git`` and ``.git/lfs`` growth).

``--million`` adds data set S1M (1M files of ~1 KiB; ``--million-files N`` for a
smaller test): ds add+commit, status (no-op and after the change set), diff of the two
versions, get, against cp -r, tar | zstd and git; no remotes, s3fs, DVC or git-lfs.

At the end the issue's targets are checked (:mod:`benchmarks.chart`: the "Targets"
table of the Markdown) and, when matplotlib is importable, the ratios are drawn into a
PNG next to ``--out``.

``ds`` is taken from ``$DS_CMD`` (split like a shell would); without it, this tree is
installed from a wheel into a venv in the work folder (:mod:`benchmarks.release_install`:
what ``pip install objstore`` gives, not a developer's editable install) and, should that
fail, ``ds`` on ``PATH`` is used and a note says so;
``dvc`` from ``$DVC_CMD`` (default: ``dvc`` on ``PATH``, else ``python -m dvc``
if importable, else skipped).
A failing ``ds`` step is recorded with its error text and the run goes on; the
exit status is 1 if any step failed.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.chart import evaluate_targets
from benchmarks.generate import (
    MIB,
    MILLION_FILES,
    DatasetInfo,
    generate_large,
    generate_million,
    generate_small,
)
from benchmarks.harness import (
    ERROR_TAIL,
    HERE,
    Runner,
    build_rusage_helper,
    machine_info,
    package_version,
    tool_version,
)
from benchmarks.peers import Ctx, find_dvc, find_git_lfs, s3_bucket, start_s3
from benchmarks.release_install import release_ds
from benchmarks.report import diff_scaling, draw_chart, render, write_outputs
from benchmarks.scenarios import bench_dataset

QUICK_SMALL_FILES = 2000
QUICK_LARGE_MIB = 8
DEFAULT_SMALL_FILES = 20000
DEFAULT_LARGE_MIB = 128
MILLION_SET = "S1M"
MILLION_TIMEOUT = 3600.0
DEFAULT_ROUNDS = 3


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true",
                   help=f"{QUICK_SMALL_FILES} small files, 2 x {QUICK_LARGE_MIB} MiB large")
    p.add_argument("--small-files", type=int, default=None,
                   help=f"files in S (default {DEFAULT_SMALL_FILES}, quick {QUICK_SMALL_FILES})")
    p.add_argument("--large-mib", type=int, default=None,
                   help=f"size of each of L's two files in MiB (default {DEFAULT_LARGE_MIB}, "
                        f"quick {QUICK_LARGE_MIB})")
    p.add_argument("--million", action="store_true",
                   help=f"also run S1M: {MILLION_FILES} files of ~1 KiB (ds, cp -r, tar | zstd, git)")
    p.add_argument("--million-files", type=int, default=None,
                   help="files in S1M (implies --million; for testing, e.g. 20000)")
    p.add_argument("--out", default=str(HERE / "results.json"))
    p.add_argument("--md", default=str(HERE / "RESULTS.md"))
    p.add_argument("--chart", default=None,
                   help="PNG of the ratios against the targets (default: --out with .png)")
    p.add_argument("--no-chart", action="store_true", help="do not draw the chart")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sets", default="S,L", help="comma list of data sets (S, L, S1M)")
    p.add_argument("--timeout", type=float, default=None,
                   help="per-command timeout in seconds (default 600, quick 120; S1M 3600)")
    p.add_argument("--rounds", type=int, default=None,
                   help=f"paired rounds per data set, ds and the peers alternating; each ratio "
                        f"is the median of the rounds' (default {DEFAULT_ROUNDS}, quick 1)")
    p.add_argument("--repeat", type=int, default=None,
                   help="runs of the stateless peers (cp -r, tar|zstd) within a round, median "
                        "kept (default 1: the rounds repeat them; S1M 1)")
    p.add_argument("--workdir", default=None, help="parent of the temp dir (default $TMPDIR)")
    p.add_argument("--keep", action="store_true", help="keep the temp dir and logs")
    p.add_argument("--no-s3", action="store_true",
                   help="skip the S3 part (moto server, ds and dvc push to S3, s3fs peers)")
    p.add_argument("--no-dvc", action="store_true", help="skip the DVC peer")
    p.add_argument("--no-git-lfs", action="store_true", help="skip the git-lfs peer")
    p.add_argument("--render", metavar="RESULTS_JSON", default=None,
                   help="run nothing: redo the targets, the Markdown (--md) and the chart from a "
                        "results file (after a change to the targets)")
    return p


def _sets(a: argparse.Namespace, p: argparse.ArgumentParser) -> list[str]:
    """The data sets to run, in order (``--million`` appends S1M); an unknown one is refused."""
    sets = [s.strip().upper() for s in a.sets.split(",") if s.strip()]
    if (a.million or a.million_files) and MILLION_SET not in sets:
        sets.append(MILLION_SET)
    for label in sets:
        if label not in ("S", "L", MILLION_SET):
            p.error(f"unknown data set {label!r}")
    return sets


def rounds_of(a: argparse.Namespace, p: argparse.ArgumentParser) -> int:
    """Paired rounds: ``--rounds``, else 1 for ``--quick`` (the CI smoke run stays fast) and
    DEFAULT_ROUNDS for a full run (a median needs at least 3)."""
    rounds = a.rounds if a.rounds is not None else (1 if a.quick else DEFAULT_ROUNDS)
    if rounds < 1:
        p.error("--rounds must be at least 1")
    return rounds


def _peers(a: argparse.Namespace, runner: Runner, ds_cmd: list[str],
           repeat: int, rounds: int) -> tuple[Ctx, list[str], dict[str, Any]]:
    """The S3 server and the optional peers this run has (or why not): what every data set
    shares, the run's notes, and what the machine section says of the peers."""
    notes: list[str] = []
    s3, why = (None, "S3 skipped: --no-s3") if a.no_s3 else start_s3(runner)
    if why:
        notes.append(why)
        runner.log(why)
    dvc_cmd = None if a.no_dvc else find_dvc()
    git_lfs = None if a.no_git_lfs else find_git_lfs()
    info = {
        "s3_server": (f"{package_version('moto') or 'moto'} ThreadedMotoServer at {s3.endpoint}"
                      if s3 else None),
        "s3fs": (package_version("s3fs") or "").removeprefix("s3fs ") or None,
        "dvc_cmd": dvc_cmd,
        "dvc": tool_version([*dvc_cmd, "--version"]) if dvc_cmd else None,
        "git_lfs": git_lfs,
    }
    ctx = Ctx(runner, ds_cmd, a.seed, a.keep, repeat, s3, dvc_cmd, git_lfs is not None,
              rounds=rounds)
    if a.no_dvc:
        ctx.dvc_skipped = "--no-dvc"
    if a.no_git_lfs:
        ctx.git_lfs_skipped = "--no-git-lfs"
    return ctx, notes, info


def run_sets(sets: list[str], work: Path, makers: dict[str, Callable[[Path], DatasetInfo]],
             ctx: Ctx, results: dict[str, Any], timeout: float, million_timeout: float) -> None:
    """Each data set in turn into ``results``; a harness error is recorded and the next set runs."""
    runner, s3 = ctx.runner, ctx.s3
    for label in sets:
        runner.timeout = million_timeout if label == MILLION_SET else timeout
        try:
            results["datasets"][label] = bench_dataset(label, work, makers[label], ctx,
                                                       full=label != MILLION_SET)
        except Exception as exc:  # keep going: the other set may still run
            text = "".join(traceback.format_exception(exc))
            runner.log(f"[{label}] harness error: {exc!r}")
            runner.errors.append({"dataset": label, "step": "harness", "cmd": [],
                                  "error": text[-ERROR_TAIL:]})
        finally:
            if s3 is not None:
                s3.drop_bucket(s3_bucket(label))  # moto keeps objects in this process
    if s3 is not None:
        s3.stop()


def _ds_command(work: Path) -> tuple[list[str], str | None]:
    """``$DS_CMD`` if set, else this tree as a user installs it; and a note if that failed."""
    if os.environ.get("DS_CMD"):
        return shlex.split(os.environ["DS_CMD"]) or ["ds"], None
    try:
        return release_ds(work), None
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        return ["ds"], f"ds is the one on PATH (installing this tree from a wheel failed: {exc})"


def main(argv: list[str] | None = None) -> int:
    p = _parser()
    a = p.parse_args(argv)
    if a.render:
        return render(Path(a.render), Path(a.md), a.chart, draw=not a.no_chart)

    small_files = a.small_files or (QUICK_SMALL_FILES if a.quick else DEFAULT_SMALL_FILES)
    large_mib = a.large_mib or (QUICK_LARGE_MIB if a.quick else DEFAULT_LARGE_MIB)
    million_files = a.million_files or MILLION_FILES
    timeout = a.timeout or (120.0 if a.quick else 600.0)
    repeat = a.repeat or 1
    rounds = rounds_of(a, p)
    sets = _sets(a, p)

    t_start = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="objstore-bench-", dir=a.workdir)).resolve()
    log_dir = work / "logs"
    log_dir.mkdir()
    helper, rss_method = build_rusage_helper(work)
    runner = Runner(log_dir, timeout, helper)
    ds_cmd, ds_note = _ds_command(work)
    runner.log(f"work dir {work}; ds = {shlex.join(ds_cmd)}; rusage: {rss_method}")
    ctx, notes, peers_info = _peers(a, runner, ds_cmd, repeat, rounds)
    if ds_note:
        notes.append(ds_note)
        runner.log(ds_note)
    results: dict[str, Any] = {
        "schema": 2,
        "machine": {**machine_info(ds_cmd, work), "rss_method": rss_method, **peers_info},
        "config": {"quick": a.quick, "small_files": small_files, "large_mib": large_mib,
                   "million_files": million_files if MILLION_SET in sets else None,
                   "seed": a.seed, "timeout_s": timeout, "sets": sets,
                   "repeat": repeat, "rounds": rounds, "s3": ctx.s3 is not None,
                   "dvc": ctx.dvc_cmd is not None,
                   "git_lfs": ctx.git_lfs},
        "notes": notes,
        "datasets": {},
        "errors": runner.errors,
    }
    makers: dict[str, Callable[[Path], DatasetInfo]] = {
        "S": lambda d: generate_small(d, n_files=small_files, seed=a.seed),
        "L": lambda d: generate_large(d, size=large_mib * MIB, seed=a.seed),
        MILLION_SET: lambda d: generate_million(d, n_files=million_files, seed=a.seed),
    }
    run_sets(sets, work, makers, ctx, results, timeout, a.timeout or MILLION_TIMEOUT)
    results["diff_scaling"] = diff_scaling(results["datasets"])
    results["targets"] = evaluate_targets(results)
    results["total_wall_s"] = time.perf_counter() - t_start
    if a.keep:
        results["workdir"] = str(work)
    else:
        shutil.rmtree(work, ignore_errors=True)

    out = Path(a.out)
    md = Path(a.md)
    chart = None if a.no_chart else draw_chart(results, Path(a.chart or out.with_suffix(".png")),
                                               runner)
    write_outputs(results, out, md, chart)
    runner.log(f"wrote {out}, {md}{f' and {chart}' if chart else ''} in "
               f"{results['total_wall_s']:.1f}s; {len(runner.errors)} failed step(s)")
    return 1 if runner.errors else 0


if __name__ == "__main__":
    sys.exit(main())

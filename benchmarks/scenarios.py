"""What is measured on one data set, in order.

Generate the data once; then ``--rounds`` rounds, each in folders of its own, from fresh
copies of the data, fresh remotes and a fresh S3 bucket. In a round, ds on its own copy (init,
add+commit v1, no-op status, push and clone to each remote, change set I, status, add+commit
v2, diff, get, incremental push and pull in the clone) and the peers (cp -r, tar | zstd; s3fs,
DVC and git-lfs on copies; git on its copy) run one after the other, ds first in rounds 1, 3,
... and the peers first in rounds 2, 4, ... (:func:`round_orders`). Each round's ratios pair
that round's ds with that round's peers; the data set's ratios are their medians.
``full=False`` (S1M) keeps ds, cp -r, tar | zstd and git, each peer run once a round.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from benchmarks.generate import MIB, ChangeStats, DatasetInfo, apply_changes, tree_digest
from benchmarks.harness import Measurement, Steps, copy_tree, du, growth
from benchmarks.peers import (
    Ctx,
    DataSet,
    bench_copies,
    bench_dvc,
    bench_git_lfs,
    bench_git_repo,
    bench_s3fs,
    s3_bucket,
    same_tree,
)
from benchmarks.report import compute_ratios, merge_rounds

STORE_DIR = ".dsstore"


def round_orders(rounds: int) -> list[tuple[str, str]]:
    """Who runs first in each round: ds, then the peers first, and so on, so that what one
    side leaves behind (a warm cache, a busy disk) does not always favour the same side."""
    return [("ds", "peer") if i % 2 == 0 else ("peer", "ds") for i in range(max(1, rounds))]


def bench_dataset(
    label: str,
    work: Path,
    make: Callable[[Path], DatasetInfo],
    ctx: Ctx,
    full: bool = True,
) -> dict[str, Any]:
    """Generate one data set and time ds and the peers on it, ``ctx.rounds`` times in
    alternating order (:func:`round_orders`), each round from fresh copies of the data.

    Every round's figures are kept under ``rounds``; ``ratios`` are the medians of the
    per-round ratios (``ratio_spread``: min, max), the step records the median round's.
    ``full=False`` (S1M): ds, cp -r, tar | zstd and git only, each peer once a round; no
    remotes, s3fs, DVC or git-lfs."""
    d = DataSet(label, work / label, ctx, [])
    d.root.mkdir(parents=True)
    t0 = time.perf_counter()
    info = make(d.src)
    gen_s = time.perf_counter() - t0
    d.runner.log(f"[{label}] generated {info.files} files, {info.bytes / MIB:.1f} MiB "
                 f"in {gen_s:.1f}s")
    d.data_bytes = info.bytes
    if full:
        d.digest = tree_digest(d.src)
    else:
        d.notes.append(f"{label}: remotes, s3fs, DVC and git-lfs skipped; peers are cp -r, "
                       "tar | zstd and git, each run once a round")
    rounds = []
    orders = round_orders(ctx.rounds)
    for i, order in enumerate(orders, 1):
        d.runner.log(f"[{label}] round {i} of {len(orders)}: {' then '.join(order)}")
        one = replace(d, root=d.root / f"round-{i}", source=d.src)
        failed = len(d.runner.errors)
        rounds.append(bench_round(one, order, info, full))
        for e in d.runner.errors[failed:]:
            e["round"] = i  # which round's step failed
    if not ctx.keep:
        shutil.rmtree(d.root, ignore_errors=True)
    res: dict[str, Any] = {"dataset": info.to_dict(), "generate_s": gen_s,
                           "notes": list(dict.fromkeys(d.notes))}
    res.update(merge_rounds(rounds))
    return res


def bench_round(d: DataSet, order: tuple[str, str], info: DatasetInfo, full: bool) -> dict[str, Any]:
    """One round in ``d.root`` (fresh folders, remotes and S3 bucket): ds and the peers on
    their own copies of ``d.src``, in ``order``; its figures and its ratios."""
    ctx = d.ctx
    d.root.mkdir(parents=True)
    if full and ctx.s3 is not None:
        bucket = s3_bucket(d.label)
        ctx.s3.drop_bucket(bucket)  # the last round's objects: each round pushes from scratch
        ctx.s3.new_bucket(bucket)
    out: dict[str, Any] = {"order": list(order), "dataset": info.to_dict()}
    peer_changes: list[tuple[str, ChangeStats | None]] = []
    remotes = DsRemotes(d, d.root / "ds", full)

    def run_ds() -> None:
        copy_tree(d.src, remotes.ds_dir)
        out["ds"], out["change"] = bench_ds(d, remotes.ds_dir, remotes)
        out["remote"] = remotes.remote

    def run_peers() -> None:
        peers = bench_copies(d, ctx.repeat if full else 1)
        peers["s3fs_put"] = peers["s3fs_get"] = None
        if full:
            peer_changes.extend(remote_peers(d, peers))
        else:
            skipped = f"not run on {d.label} (remotes, s3fs, DVC and git-lfs are skipped at this scale)"
            peers["dvc"] = {"skipped": skipped}
            peers["git_lfs"] = {"skipped": skipped}
        git_dir = d.root / "git"
        copy_tree(d.src, git_dir)
        peers["git"], git_change = bench_git_repo(d, git_dir)
        peer_changes.append(("git", git_change))
        if not ctx.keep:
            shutil.rmtree(git_dir, ignore_errors=True)
        out["peers"] = peers

    for side in order:
        if side == "ds":
            run_ds()
        else:
            run_peers()
    for tool, other in peer_changes:
        if other is not None and other.to_dict() != out["change"].to_dict():
            d.notes.append(f"change set differed between the ds and {tool} copies")
    out["change"] = out["change"].to_dict()
    if not ctx.keep:
        shutil.rmtree(d.root, ignore_errors=True)
    out["ratios"] = compute_ratios(out)
    del out["dataset"]  # the same for every round: kept once, beside the rounds
    return out


def remote_peers(d: DataSet, peers: dict[str, Any]) -> list[tuple[str, ChangeStats | None]]:
    """s3fs put/get (with the S3 server), DVC and git-lfs, into ``peers``; the change set
    each of DVC and git-lfs applied."""
    if d.ctx.s3 is not None:
        peers["s3fs_put"], peers["s3fs_get"] = bench_s3fs(d, d.ctx.s3, s3_bucket(d.label))
    peers["dvc"], dvc_change = bench_dvc(d)
    peers["git_lfs"], lfs_change = bench_git_lfs(d)
    return [("dvc", dvc_change), ("git-lfs", lfs_change)]


def bench_ds(d: DataSet, ds_dir: Path, remotes: DsRemotes) -> tuple[dict[str, Any], ChangeStats]:
    """ds on its copy of the data, with push and clone after v1 and push and pull after v2."""
    ds = Steps(d.runner, d.label, d.ctx.ds_cmd, ds_dir)
    out = ds.out

    def add_commit(v: str) -> None:
        ds.add_commit(f"add_commit_{v}", f"ds add+commit ({v})",
                      (f"ds add ({v})", "add", "."), (f"ds commit ({v})", "commit", "-m", v))

    ds("ds --help (startup)", "--help")
    ds("ds init", "init")
    add_commit("v1")
    ds("ds status (no-op, 1st)", "status")
    ds("ds status (no-op)", "status")
    out["store_v1"] = du(ds_dir / STORE_DIR)
    remotes.push_and_clone()

    # growth is measured from here: the v1 pushes above left each remote's index cached in
    # .dsstore/remotes/, which is not what the change set costs
    out["store_before_change"] = du(ds_dir / STORE_DIR)
    change = apply_changes(ds_dir, d.ctx.seed)
    ds("ds status (changed)", "status")
    add_commit("v2")
    out["store_v2"] = du(ds_dir / STORE_DIR)
    out["store_growth_disk_bytes"] = growth(out["store_v2"], out["store_before_change"])
    out["store_growth_apparent_bytes"] = growth(out["store_v2"], out["store_before_change"],
                                                "apparent_bytes")

    diff_m = ds("ds diff --json", "diff", "HEAD~1", "HEAD", "--json")
    out["diff_json_valid"] = None
    if diff_m.ok:
        try:
            json.loads(Path(diff_m.stdout_file or "").read_text() or "null")
            out["diff_json_valid"] = True
        except (OSError, ValueError):
            out["diff_json_valid"] = False
            d.notes.append("ds diff --json output is not valid JSON")

    get_dir = d.root / "ds-get"
    get_m = ds("ds get", "get", "HEAD", str(get_dir))
    digest_v2 = tree_digest(ds_dir) if get_m.ok or remotes.targets else None
    out["get_matches_worktree"] = same_tree(get_m, get_dir, digest_v2, d.notes,
                                            "ds get HEAD output differs from the committed work tree")
    shutil.rmtree(get_dir, ignore_errors=True)
    remotes.push_and_pull(digest_v2)
    return out, change


def transfer_json(m: Measurement) -> dict[str, Any] | None:
    """The ``--json`` object a ds push/clone/pull printed, or None."""
    if not m.ok or not m.stdout_file:
        return None
    try:
        data = json.loads(Path(m.stdout_file).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


class DsRemotes:
    """ds against each remote of a data set, a folder and (with the S3 server) a bucket:
    push and clone of v1, then incremental push of v2 and pull in the clone."""

    def __init__(self, d: DataSet, ds_dir: Path, full: bool) -> None:
        self.d, self.ds_dir, self.full = d, ds_dir, full
        self.s3 = d.ctx.s3 if full else None
        self.remote: dict[str, Any] = {}
        self.targets = [("folder", str(d.root / "remote-folder"), [])] if full else []
        if self.s3 is not None:
            self.targets.append(("s3", f"s3://{s3_bucket(d.label)}/ds", self.s3.ds_options()))

    def step(self, kind: str, name: str, *args: str, cwd: Path | None = None) -> Measurement:
        """One ds command against the ``kind`` remote: on S3 with the requests the server
        served, and with ``--json`` the transfer figures ds printed."""
        s3 = self.s3 if kind == "s3" else None
        mark = s3.mark() if s3 is not None else None
        m = self.d.runner.run(f"{name} ({kind})", [*self.d.ctx.ds_cmd, *args], cwd or self.ds_dir,
                              env=s3.env if s3 is not None else None, dataset=self.d.label)
        rec = m.to_dict()
        if s3 is not None and mark is not None:
            rec.update(s3.since(mark))
        if "--json" in args:
            rec["transfer"] = transfer_json(m)
            if m.ok and rec["transfer"] is None:
                self.d.notes.append(f"{name} ({kind}) --json output is not a JSON object")
        self.remote[kind][name] = rec
        return m

    def push(self, kind: str, url: str, v: str) -> None:
        """``ds push --json`` of version ``v``, then the remote's size."""
        self.step(kind, f"ds push ({v})", "push", kind, "--json")
        if kind == "s3":
            size = self.s3.size(url.removeprefix("s3://")) if self.s3 is not None else None
        else:
            size = du(Path(url))["apparent_bytes"]
        self.remote[kind][f"size_{v}_bytes"] = size

    def push_and_clone(self) -> None:
        for kind, url, opts in self.targets:
            self.remote[kind] = {"url": url}
            self.step(kind, "ds remote add", "remote", "add", kind, url, *opts)
            self.push(kind, url, "v1")
            clone_dir = self.d.root / f"clone-{kind}"
            cm = self.step(kind, "ds clone", "clone", url, str(clone_dir), *opts, "--json", cwd=self.d.root)
            differs = f"ds clone ({kind}) differs from the committed v1 tree"
            self.remote[kind]["clone_matches_v1"] = (same_tree(cm, clone_dir, self.d.digest, self.d.notes,
                                                               differs) if clone_dir.is_dir() else None)

    def push_and_pull(self, digest_v2: str | None) -> None:
        for kind, url, _opts in self.targets:
            self.push(kind, url, "v2")
            clone_dir = self.d.root / f"clone-{kind}"
            self.remote[kind]["pull_matches_v2"] = None
            if clone_dir.is_dir():
                pm = self.step(kind, "ds pull", "pull", "--json", cwd=clone_dir)
                self.remote[kind]["pull_matches_v2"] = same_tree(
                    pm, clone_dir, digest_v2, self.d.notes,
                    f"ds pull ({kind}) in the clone differs from the v2 tree")
            shutil.rmtree(clone_dir, ignore_errors=True)
        if self.full and self.s3 is None:
            self.remote["s3"] = None

"""The benchmark's ratios against the project's targets, as one PNG (matplotlib).

Usage::

    python -m benchmarks.chart benchmarks/results.json benchmarks/results.png

One horizontal bar per ratio, a panel per data set (S, L, S1M), on a log scale (the ratios
span 0.01 to 100s): the bar ends at the median over the paired rounds and a line with caps
spans the lowest to the highest round's ratio. Where the project sets a target for that
ratio on that data set, a black tick marks the bound and the bar is green (met) or red
(missed); grey bars have no target. ``run.py`` calls :func:`write_chart` at the end of a
run when matplotlib is importable. matplotlib stays optional (``pip install '.[bench]'``):
this module only imports it inside :func:`write_chart`, so ``run.py`` can use
:data:`TARGETS` and :func:`evaluate_targets` without it.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SET_ORDER = ("S", "L", "S1M")
MET, MISSED, NO_TARGET = "#2e7d32", "#c62828", "#9e9e9e"


@dataclass(frozen=True)
class Target:
    """A bound on one ratio of ``results["datasets"][set]["ratios"]``, for some data sets."""

    key: str
    sets: tuple[str, ...]
    op: str  # "<=", "<" (upper bounds) or ">=" (a lower bound)
    bound: float
    text: str

    def met(self, value: float) -> bool:
        if self.op == "<":
            return value < self.bound
        if self.op == "<=":
            return value <= self.bound
        return value >= self.bound

    def margin(self, value: float) -> float:
        """How many times better than the bound (> 1: inside it, < 1: outside)."""
        good, bad = (value, self.bound) if self.op == ">=" else (self.bound, value)
        return float("inf") if bad == 0 else good / bad

    def bound_text(self) -> str:
        return f"{self.op} {self.bound:.3g}"


# The targets. Ratios are ds / peer (wall time or bytes) unless named otherwise;
# "N x faster than P" is ds / P <= 1/N.
TARGETS: tuple[Target, ...] = (
    # the sets each target names in the issue: "add+commit of S", "get of S", "push of S", ...
    Target("ds_add_commit_over_cp_r", ("S",), "<=", 2.0, "ds add+commit <= 2x cp -r"),
    Target("ds_add_commit_over_git_add_commit", ("S",), "<", 1.0, "ds add+commit < git add+commit"),
    Target("ds_add_commit_over_dvc_add", ("S",), "<=", 1 / 5, "ds add+commit >= 5x faster than dvc add"),
    Target("ds_throughput_over_tar_zstd", ("L",), ">=", 0.7,
           "add+commit throughput >= 0.7x tar | zstd -T0 -3"),
    Target("ds_status_over_git_status", ("S",), "<=", 5.0, "no-op ds status <= 5x git status"),
    Target("ds_status_over_git_status", ("S1M",), "<=", 3.0, "no-op ds status <= 3x git status at 1M"),
    Target("store_growth_over_bytes_changed", SET_ORDER, "<=", 1.2,
           "store growth (du) <= 1.2x bytes changed"),
    Target("ds_push_s3_requests", ("S",), "<=", 50, "ds push of S to S3 <= 50 requests"),
    Target("ds_push_folder_over_dvc_push", ("S",), "<=", 1 / 3,
           "ds push of S >= 3x faster than dvc push (folder)"),
    Target("ds_push_s3_over_dvc_push_s3", ("S",), "<=", 1 / 3,
           "ds push of S >= 3x faster than dvc push (S3)"),
    Target("ds_get_over_cp_r", ("S",), "<=", 2.0, "ds get <= 2x cp -r"),
    Target("ds_clone_folder_over_dvc_pull", ("S",), "<=", 1 / 3,
           "ds clone >= 3x faster than dvc pull (folder)"),
    Target("ds_peak_rss_gb", ("S1M",), "<", 1.0,
           "peak RSS of ds add, commit, status, diff, get < 1 GB at 1M (GB, not a ratio)"),
)

# What the chart shows, top to bottom (a bar only where the run measured it).
CHART_RATIOS: tuple[tuple[str, str], ...] = (
    ("ds_add_commit_over_cp_r", "ds add+commit / cp -r"),
    ("ds_add_commit_over_git_add_commit", "ds add+commit / git add+commit"),
    ("ds_add_commit_over_git_lfs_add_commit", "ds add+commit / git-lfs add+commit"),
    ("ds_add_commit_over_dvc_add", "ds add+commit / dvc add"),
    ("ds_add_commit_v2_over_dvc_add_v2", "ds add+commit / dvc add (v2)"),
    ("ds_throughput_over_tar_zstd", "ds add+commit MiB/s / tar|zstd MiB/s (higher is better)"),
    ("ds_status_over_git_status", "ds status / git status (no-op)"),
    ("ds_status_over_dvc_status", "ds status / dvc status (no-op)"),
    ("store_growth_over_bytes_changed", "ds store growth / bytes changed"),
    ("ds_growth_over_dvc_cache_growth", "ds store growth / dvc cache growth"),
    ("ds_growth_over_git_lfs_growth", "ds store growth / git-lfs .git growth"),
    ("ds_push_s3_requests", "ds push requests, S3 (count)"),
    ("ds_push_folder_over_dvc_push", "ds push / dvc push (folder)"),
    ("ds_push_s3_over_dvc_push_s3", "ds push / dvc push (S3)"),
    ("ds_get_over_cp_r", "ds get / cp -r"),
    ("ds_clone_folder_over_dvc_pull", "ds clone / dvc pull (folder)"),
    ("ds_peak_rss_gb", "ds peak RSS, GB (largest step)"),
)


def target_for(key: str, label: str) -> Target | None:
    return next((t for t in TARGETS if t.key == key and label in t.sets), None)


def ordered_sets(results: dict[str, Any]) -> list[str]:
    have = list(results.get("datasets", {}))
    return [s for s in SET_ORDER if s in have] + [s for s in have if s not in SET_ORDER]


def spread_of(res: dict[str, Any], key: str) -> dict[str, Any] | None:
    """``{"min", "max", "n"}`` of one ratio of a data set across its rounds; a results file
    of one round (or from before rounds) has min = max = the value. None when unmeasured."""
    value = (res.get("ratios") or {}).get(key)
    if value is None:
        return None
    spread = (res.get("ratio_spread") or {}).get(key)
    return spread or {"min": value, "max": value, "n": 1}


def evaluate_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (target, data set that ran): the median value, its min and max across
    rounds, met or not (by the median), and the margin."""
    rows: list[dict[str, Any]] = []
    datasets = results.get("datasets", {})
    for t in TARGETS:
        for label in t.sets:
            if label not in datasets:
                continue
            value = (datasets[label].get("ratios") or {}).get(t.key)
            spread = spread_of(datasets[label], t.key) or {}
            rows.append({
                "target": t.text, "key": t.key, "set": label, "op": t.op, "bound": t.bound,
                "value": value, "min": spread.get("min"), "max": spread.get("max"),
                "rounds": spread.get("n"),
                "met": None if value is None else t.met(value),
                "margin": None if value is None else t.margin(value),
            })
    return rows


def margin_text(row: dict[str, Any]) -> str:
    """'met, 2.4x inside' / 'missed by 1.7x' / 'not measured'."""
    margin = row.get("margin")
    if row.get("met") is None or margin is None:
        return "not measured"
    if row["met"]:
        return "met" if margin == float("inf") else f"met, {margin:.2f}x inside the bound"
    return "missed" if margin == 0 else f"missed by {1 / margin:.2f}x"


@dataclass(frozen=True)
class Bar:
    """One ratio of one data set: its median and its min and max across rounds."""

    text: str
    value: float
    low: float
    high: float
    target: Target | None


def _bars(res: dict[str, Any], label: str) -> list[Bar]:
    ratios = res.get("ratios") or {}
    out = []
    for key, text in CHART_RATIOS:
        value = ratios.get(key)
        if isinstance(value, int | float) and value > 0:
            spread = spread_of(res, key) or {}
            low = spread.get("min") or value  # a log scale has no room for 0
            out.append(Bar(text, float(value), float(min(low, value)),
                           float(max(spread.get("max") or value, value)), target_for(key, label)))
    return out


def write_chart(results: dict[str, Any], out: str | Path) -> Path:
    """Draw the ratios of every data set in ``results`` into ``out`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    datasets = results.get("datasets", {})
    groups = [(label, bars) for label in ordered_sets(results)
              if (bars := _bars(datasets[label], label))]
    if not groups:
        raise ValueError("no ratios to plot")
    xs = [b.low for _, bars in groups for b in bars] + [b.high for _, bars in groups for b in bars]
    xs += [b.target.bound for _, bars in groups for b in bars if b.target is not None]
    lo, hi = min(xs) / 3, max(xs) * 3
    heights = [len(bars) for _, bars in groups]
    fig, axes = plt.subplots(
        len(groups), 1, sharex=True, squeeze=False,
        figsize=(11, 1.2 + 0.34 * sum(heights) + 0.6 * len(groups)),
        gridspec_kw={"height_ratios": heights},
    )
    for ax, (label, bars) in zip(axes[:, 0], groups, strict=True):
        ys = list(range(len(bars)))
        colors = [NO_TARGET if b.target is None else MET if b.target.met(b.value) else MISSED
                  for b in bars]
        ax.barh(ys, [b.value - lo for b in bars], left=lo, color=colors, height=0.7)
        # the spread across rounds: a line from the lowest to the highest round's ratio
        ax.errorbar([b.value for b in bars], ys, fmt="none", ecolor="#212121", elinewidth=1,
                    capsize=3, xerr=[[b.value - b.low for b in bars], [b.high - b.value for b in bars]])
        for y, b in zip(ys, bars, strict=True):
            t = b.target
            right = max(b.value, b.high)
            near = t is not None and right < t.bound < 2.5 * right  # keep the label off the tick
            ax.text((t.bound if near and t else right) * 1.08, y, f"{b.value:.3g}", va="center",
                    fontsize=8)
            if t is not None:
                ax.vlines(t.bound, y - 0.45, y + 0.45, colors="black", linewidth=2)
        ax.axvline(1.0, color="#616161", linewidth=0.8, linestyle=":")
        ax.set_yticks(ys, [b.text for b in bars], fontsize=8)
        ax.set_ylim(len(bars) - 0.5, -0.5)
        d = datasets[label].get("dataset") or {}
        size = f", {d['bytes'] / 2**20:.0f} MiB" if d.get("bytes") else ""
        ax.set_title(f"{label}: {d.get('files', '?')} files{size}", fontsize=10, loc="left")
        ax.set_xscale("log")
        ax.set_xlim(lo, hi)
        ax.grid(axis="x", which="major", color="#e0e0e0", linewidth=0.6)
    rounds = (results.get("config") or {}).get("rounds", 1)
    axes[-1, 0].set_xlabel(f"ds / peer (wall time or bytes; < 1: ds faster or smaller), log scale; "
                           f"median of {rounds} paired round(s)")
    fig.legend(
        handles=[Patch(color=MET, label="target met"), Patch(color=MISSED, label="target missed"),
                 Patch(color=NO_TARGET, label="no target"),
                 Line2D([], [], color="black", linewidth=2, label="target bound"),
                 Line2D([], [], color="#212121", linewidth=1, marker="|",
                        label="min to max across rounds (bar: median)")],
        loc="lower center", ncol=5, fontsize=8, frameon=False,
    )
    cfg = results.get("config") or {}
    fig.suptitle(f"objstore benchmark: ds against its peers ({'quick' if cfg.get('quick') else 'full'}"
                 f" scale, {(results.get('machine') or {}).get('date', '')})",
                 x=0.01, ha="left", fontsize=11)
    fig.tight_layout(rect=(0, 0.03, 1, 0.97))
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.chart",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("results", help="results.json written by benchmarks.run")
    p.add_argument("out", help="PNG to write")
    a = p.parse_args(argv)
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("matplotlib is not installed: pip install '.[bench]'", file=sys.stderr)
        return 2
    results = json.loads(Path(a.results).read_text())
    path = write_chart(results, a.out)
    for row in evaluate_targets(results):
        print(f"{row['set']:>4}  {row['target']:<52} {margin_text(row)}")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``benchmarks.run --render``: the tables and the targets again from a results file."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from benchmarks.report import peak_rss_gb
from benchmarks.run import main

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results.json"


def test_render_adds_the_peak_rss_figure_and_its_target(tmp_path: Path) -> None:
    source = tmp_path / "results.json"
    shutil.copy(RESULTS, source)
    data = json.loads(source.read_text())
    s = data["datasets"]["S"]
    s["ratios"].pop("ds_peak_rss_gb", None)
    s["ds"]["ds get"]["maxrss_kib"] = 2_000_000  # as if get had peaked at 2 GB...
    data["datasets"]["S1M"] = s  # ...on the 1M set, where the bound is 1 GB
    source.write_text(json.dumps(data))
    md = tmp_path / "R.md"
    assert main(["--render", str(source), "--md", str(md), "--no-chart"]) == 0
    out = json.loads(source.read_text())
    assert out["datasets"]["S1M"]["ratios"]["ds_peak_rss_gb"] == 2_000_000 * 1024 / 1e9
    rows = [t for t in out["targets"] if t["key"] == "ds_peak_rss_gb"]
    assert [(r["set"], r["met"]) for r in rows] == [("S1M", False)]
    assert "peak RSS of ds add, commit, status, diff, get < 1 GB at 1M" in md.read_text()


def test_peak_rss_ignores_failed_steps() -> None:
    ds = {"ds add (v1)": {"ok": True, "maxrss_kib": 1000}, "ds get": {"ok": False, "maxrss_kib": 9_000_000}}
    assert peak_rss_gb(ds) == 1000 * 1024 / 1e9
    assert peak_rss_gb({}) is None

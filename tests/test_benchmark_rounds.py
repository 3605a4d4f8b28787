"""Paired rounds of the benchmark: their order, the medians and spreads the results show."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from benchmarks.chart import _bars
from benchmarks.report import compute_ratios, merge_rounds, ratio_medians, spread_text
from benchmarks.run import _parser, main, rounds_of
from benchmarks.scenarios import round_orders

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results.json"
KEY = "ds_add_commit_over_git_add_commit"


def test_three_rounds_alternate_who_runs_first() -> None:
    assert round_orders(3) == [("ds", "peer"), ("peer", "ds"), ("ds", "peer")]
    assert round_orders(1) == [("ds", "peer")]


@pytest.mark.parametrize(("argv", "rounds"), [
    (["--quick"], 1), ([], 3), (["--quick", "--rounds", "3"], 3), (["--rounds", "5"], 5)])
def test_quick_runs_one_round_and_a_full_run_three(argv: list[str], rounds: int) -> None:
    p = _parser()
    assert rounds_of(p.parse_args(argv), p) == rounds


def test_zero_rounds_is_refused() -> None:
    p = _parser()
    with pytest.raises(SystemExit):
        rounds_of(p.parse_args(["--rounds", "0"]), p)


def test_each_ratio_is_the_median_of_the_pairs_not_the_ratio_of_medians() -> None:
    ratios, spread = ratio_medians([{"r": 0.5, "n": None}, {"r": 2.0, "n": None}, {"r": 0.25, "n": None}])
    assert ratios == {"r": 0.5, "n": None}  # the medians of ds (2) and peer (2) would give 1.0
    assert spread == {"r": {"min": 0.25, "max": 2.0, "n": 3}, "n": None}
    assert spread_text(0.5, spread["r"]) == "0.500 [0.250–2.000]"
    assert spread_text(None, None) == "n/a"


def _template() -> dict[str, Any]:
    """The S set of the committed results, as the figures of one round."""
    data = json.loads(RESULTS.read_text())
    s = data["datasets"]["S"]
    for key in ("rounds", "ratio_spread"):
        s.pop(key, None)
    data["config"].pop("rounds", None)
    return data


def _render(tmp_path: Path, data: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Render ``data`` as the runner's ``--render`` does: (the Markdown, the JSON it rewrote)."""
    source, md = tmp_path / "results.json", tmp_path / "R.md"
    source.write_text(json.dumps(data))
    assert main(["--render", str(source), "--md", str(md), "--no-chart"]) == 0
    return md.read_text(), json.loads(source.read_text())


def _round(base: dict[str, Any], ds_wall: float, git_wall: float) -> dict[str, Any]:
    """One round: the template's figures with ds and git add+commit (v1) timed as given."""
    r = {k: copy.deepcopy(base[k]) for k in ("change", "ds", "remote", "peers")}
    r["ds"]["add_commit_v1"].update(wall_s=ds_wall, ok=True)
    r["peers"]["git"]["add_commit_v1"].update(wall_s=git_wall, ok=True)
    r["ratios"] = compute_ratios({**r, "dataset": base["dataset"]})
    return r


def test_three_rounds_render_medians_and_spreads(tmp_path: Path) -> None:
    data = _template()
    s = data["datasets"]["S"]
    rounds = [_round(s, 1.0, 2.0), _round(s, 4.0, 2.0), _round(s, 2.0, 8.0)]
    data["datasets"] = {"S": {"dataset": s["dataset"], "generate_s": 0.0, "notes": [],
                              **merge_rounds(rounds)}}
    data["config"]["rounds"] = 3
    text, out = _render(tmp_path, data)
    # per-round ratios 0.5, 2.0, 0.25: median 0.5 (not 2 / 2 = 1.0, the ratio of the medians)
    assert "| ds add+commit / git add+commit (v1, wall) | 0.500 [0.250–2.000] |" in text
    assert ("| ds add+commit < git add+commit | S | < 1 | 0.5 [0.25–2] | "
            "met, 2.00x inside the bound |") in text
    # the step row: the median round's wall time (2.0 s) and the range of the three
    assert "| ds add+commit (v1) | 2.000 [1.000–4.000] |" in text
    assert "| git add+commit (v1) | 2.000 [2.000–8.000] |" in text
    assert "- rounds: 3 paired rounds per data set" in text
    assert [r["ratios"][KEY] for r in out["datasets"]["S"]["rounds"]] == [0.5, 2.0, 0.25]
    bar = next(b for b in _bars(out["datasets"]["S"], "S") if b.text == "ds add+commit / git add+commit")
    assert (bar.value, bar.low, bar.high) == (0.5, 0.25, 2.0)


def test_rounds_without_spread_get_it_on_render(tmp_path: Path) -> None:
    data = _template()
    s = data["datasets"]["S"]
    merged = merge_rounds([_round(s, 1.0, 2.0), _round(s, 3.0, 2.0), _round(s, 6.0, 2.0)])
    del merged["ratio_spread"]
    merged["ratios"] = {}
    data["datasets"] = {"S": {"dataset": s["dataset"], "generate_s": 0.0, "notes": [], **merged}}
    out = _render(tmp_path, data)[1]["datasets"]["S"]
    assert out["ratios"][KEY] == 1.5
    assert out["ratio_spread"][KEY] == {"min": 0.5, "max": 3.0, "n": 3}


def test_a_single_round_file_from_before_rounds_still_renders(tmp_path: Path) -> None:
    data = _template()
    s = data["datasets"]["S"]
    s["ratios"][KEY] = 0.456
    for rec in (s["ds"]["add_commit_v1"], s["peers"]["git"]["add_commit_v1"]):
        for key in ("wall_s_min", "wall_s_max", "rounds"):
            rec.pop(key, None)
    s["ds"]["add_commit_v1"]["wall_s"] = 3.617
    text, out = _render(tmp_path, data)
    assert "| ds add+commit / git add+commit (v1, wall) | 0.456 [0.456–0.456] |" in text
    assert ("| ds add+commit < git add+commit | S | < 1 | 0.456 [0.456–0.456] | "
            "met, 2.19x inside the bound |") in text
    assert "| ds add+commit (v1) | 3.617 |" in text
    assert "- rounds: 1 (ds, then the peers)" in text
    row = next(r for r in out["targets"] if r["key"] == KEY)
    assert (row["value"], row["min"], row["max"], row["rounds"]) == (0.456, 0.456, 0.456, 1)


def test_the_chart_draws_three_rounds(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from benchmarks.chart import write_chart

    data = _template()
    s = data["datasets"]["S"]
    rounds = [_round(s, 1.0, 2.0), _round(s, 4.0, 2.0), _round(s, 2.0, 8.0)]
    data["datasets"] = {"S": {"dataset": s["dataset"], **merge_rounds(rounds)}}
    assert write_chart(data, tmp_path / "c.png").stat().st_size > 0


def test_committed_results_render_as_they_are(tmp_path: Path) -> None:
    source = tmp_path / "results.json"
    shutil.copy(RESULTS, source)
    assert main(["--render", str(source), "--md", str(tmp_path / "R.md"), "--no-chart"]) == 0

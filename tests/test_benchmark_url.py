"""The benchmark of adding from object storage (benchmarks/url_ingest.py): a small quick run
end to end in a subprocess, and the parts that decide its verdicts."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import url_ingest as ub

ROOT = Path(__file__).resolve().parent.parent


def test_quick_run_measures_every_step_and_the_same_version(tmp_path):
    pytest.importorskip("distributed")
    pytest.importorskip("moto.server")
    out, md = tmp_path / "url.json", tmp_path / "url.md"
    args = ["--quick", "--objects", "120", "--large-mib", "2", "--json", str(out), "--md", str(md),
            "--workdir", str(tmp_path)]
    proc = subprocess.run([sys.executable, "-m", "benchmarks.url_ingest", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(out.read_text())
    assert got["machine"]["cpu_count"] >= 1 and got["source"]["objects"] == 122
    assert set(got["steps"]) == set(ub.STEPS)
    assert got["trees_equal"] and not got["tree_failures"]
    (only_round,) = got["per_round"]
    steps = only_round["steps"]
    assert only_round["order"] == list(ub.STEPS)
    # every ds variant staged the very tree a local add of the same files staged
    assert {steps[s]["tree"] for s in ub.STEPS if s != "peer"} == {got["source"]["local_tree"]}
    assert steps["peer"]["copied_objects"] == 122 and steps["peer"]["copied_bytes"] == got["source"]["bytes"]
    for name in ub.STEPS:
        d = steps[name]
        assert "error" not in d, d
        assert d["requests"]["GET"] >= 122 and d["requests"]["LIST"] >= 1  # counted by the server
        assert d["requests_total"] == sum(d["requests"].values())
        assert d["wall_s"] > 0 and d["mb_s"] > 0 and d["objects_s"] > 0
        assert math.isclose(d["over_copy"], d["wall_s"] / steps["peer"]["wall_s"])
        summary = got["steps"][name]
        assert summary["rounds"] == 1 and summary["wall_s"]["median"] == d["wall_s"]
    for name in ("ds", "ds_local1", "ds_local2", "ds_remote"):
        assert steps[name]["objects"] == 122 and steps[name]["bytes_read"] == got["source"]["bytes"]
    for name in ub.CLUSTERS:  # the workers' requests reach the server's count too
        assert steps[name]["tasks"] >= 1 and steps[name]["cluster_startup_s"] > 0
        assert steps[name]["requests"]["GET"] >= 122
    remote = steps["ds_remote"]
    assert remote["packs"] >= max(1, remote["packs_expected"])
    assert remote["requests"]["PUT"] > remote["packs"]  # each pack, then the fragment naming them
    assert steps["ds"]["requests"]["PUT"] == 0  # into a local store: nothing written to S3
    text = md.read_text()
    assert "| ds add --dask local:2 |" in text and "all equal to the local add's" in text
    assert text in proc.stdout


@pytest.mark.parametrize(("method", "path", "query", "kind"), [
    ("GET", "/bucket", "list-type=2&prefix=data%2F", "LIST"),
    ("GET", "/bucket/", "", "LIST"),
    ("GET", "/bucket", "location", "other"),
    ("GET", "/bucket/data/a.bin", "", "GET"),
    ("HEAD", "/bucket/data/a.bin", "", "HEAD"),
    ("PUT", "/bucket/store/packs/ab.pack", "", "PUT"),
    ("POST", "/bucket", "delete", "POST"),
    ("PATCH", "/bucket/x", "", "other"),
])
def test_request_kinds(method, path, query, kind):
    assert ub.request_kind(method, path, query) == kind


def test_steps_alternate_their_order():
    assert ub.round_order(1) == list(ub.STEPS)
    assert ub.round_order(2) == list(reversed(ub.STEPS))
    assert ub.round_order(3) == list(ub.STEPS)


def test_a_different_tree_is_a_failure():
    rounds = [{"round": 1, "steps": {"peer": {"wall_s": 1.0}, "ds": {"tree": "a"},
                                     "ds_local1": {"tree": "a"}}},
              {"round": 2, "steps": {"ds": {"tree": "a"}, "ds_local2": {"tree": "b"},
                                     "ds_remote": {"wall_s": 1.0}}}]
    assert ub.check_trees(rounds, "a") == ["round 2 ds_local2: tree b != a (local add)",
                                           "round 2 ds_remote: no tree"]
    assert ub.check_trees(rounds[:1], "a") == []


def test_summary_is_median_min_max_per_step():
    rounds = [{"round": n, "steps": {s: {"wall_s": w, "requests": {"GET": g}, "tree": "t"} for s in ub.STEPS}}
              for n, w, g in ((1, 3.0, 10), (2, 1.0, 30), (3, 2.0, 20))]
    rounds[1]["steps"]["ds"] = {"error": "RuntimeError: boom"}
    s = ub.summarize(rounds)
    assert s["peer"]["wall_s"] == {"median": 2.0, "min": 1.0, "max": 3.0, "n": 3}
    assert s["peer"]["requests"]["GET"]["median"] == 20
    assert s["ds"]["rounds"] == 2 and s["ds"]["errors"] == ["RuntimeError: boom"]
    assert s["ds"]["wall_s"] == {"median": 2.5, "min": 2.0, "max": 3.0, "n": 2}
    assert ub.fmt(s["peer"]["wall_s"]) == "2.00 [1.00–3.00]"


def _results(trees: dict[str, str]) -> dict:
    """What ``run`` returns for one round whose ds variants staged ``trees``."""
    steps = {s: {"wall_s": 1.0, "requests": {"GET": 5}, "requests_total": 5} for s in ub.STEPS}
    for name, tree in trees.items():
        steps[name]["tree"] = tree
    rounds = [{"round": 1, "order": ub.round_order(1), "steps": steps}]
    bad = ub.check_trees(rounds, "a")
    source = {"objects": 7, "small_objects": 5, "large_mib": 1, "bytes": 100, "local_tree": "a",
              "local_add_s": 0.1}
    return {"machine": ub.machine(), "source": source, "rounds": 1, "per_round": rounds,
            "steps": ub.summarize(rounds), "trees_equal": not bad, "tree_failures": bad,
            "tree_check": "DIFFER" if bad else "all equal"}


@pytest.mark.parametrize(("trees", "status"), [
    ({"ds": "a", "ds_local1": "a", "ds_local2": "a", "ds_remote": "a"}, 0),
    ({"ds": "a", "ds_local1": "a", "ds_local2": "b", "ds_remote": "a"}, 1),
])
def test_exit_status_and_failure_line_when_trees_differ(monkeypatch, tmp_path, capsys, trees, status):
    monkeypatch.setattr(ub, "run", lambda *a, **k: _results(trees))
    assert ub.main(["--quick", "--json", str(tmp_path / "r.json"), "--md", str(tmp_path / "r.md")]) == status
    err = capsys.readouterr().err
    assert ("FAILED: round 1 ds_local2: tree b != a (local add)" in err) == bool(status)
    assert json.loads((tmp_path / "r.json").read_text())["trees_equal"] is not bool(status)

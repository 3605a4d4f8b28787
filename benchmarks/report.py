"""The results: ratios against the peers, the Markdown tables, the targets and the chart.

Ratios are ds / peer (wall time, or bytes); the targets they are held to live in
:mod:`benchmarks.chart` (``TARGETS``), which also draws the chart when matplotlib is
importable. ``render`` redoes all of it from a results file, running nothing.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shlex
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.chart import evaluate_targets, margin_text, spread_of, write_chart
from benchmarks.generate import MIB
from benchmarks.harness import Measurement, Runner, mdict

# --------------------------------------------------------------------------
# Ratios
# --------------------------------------------------------------------------


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


def _wall(m: Measurement | dict[str, Any] | None) -> float | None:
    if m is None:
        return None
    d = mdict(m)
    return d["wall_s"] if d["ok"] else None


def _ok_value(d: dict[str, Any] | None, key: str, step: str) -> Any:
    """``d[key]`` when ``d[step]`` ran fine, else None."""
    if not d or not (d.get(step) or {}).get("ok"):
        return None
    return d.get(key)


def _ok_disk(d: dict[str, Any] | None, key: str, step: str) -> int | None:
    """``d[key]["disk_bytes"]`` (a ``du`` result) when ``d[step]`` ran fine, else None."""
    sizes = _ok_value(d, key, step)
    return sizes["disk_bytes"] if sizes else None


# the ds steps whose peak memory the 1M target bounds (add, commit, status, diff, get)
RSS_STEPS = ("ds add (v1)", "ds commit (v1)", "ds status (no-op)", "ds status (changed)",
             "ds add (v2)", "ds commit (v2)", "ds diff --json", "ds get")


def peak_rss_gb(ds: dict[str, Any]) -> float | None:
    """The largest peak RSS of one ds process among RSS_STEPS, in GB (10**9 bytes)."""
    peaks = [ds[k]["maxrss_kib"] for k in RSS_STEPS if isinstance(ds.get(k), dict) and ds[k].get("ok")]
    return max(peaks) * 1024 / 1e9 if peaks else None


def compute_ratios(res: dict[str, Any]) -> dict[str, Any]:
    """Every ratio of one data set's results (its ds, peers, remote, change and data)."""
    ds, peers, change = res["ds"], res["peers"], res["change"]
    data_bytes = res["dataset"]["bytes"]
    git = peers["git"]
    dvc = peers.get("dvc") or {}
    lfs = peers.get("git_lfs") or {}
    cp = peers.get("cp_r")
    tar = peers.get("tar_zstd")
    ds_ac1 = _wall(ds["add_commit_v1"])
    ds_ac2 = _wall(ds["add_commit_v2"])
    ds_noop = _wall(ds["ds status (no-op)"])
    ds_ok = ds["add_commit_v1"]["ok"] and ds["add_commit_v2"]["ok"]
    growth = ds["store_growth_disk_bytes"] if ds_ok else None
    growth_app = ds["store_growth_apparent_bytes"] if ds_ok else None
    store1 = ds["store_v1"]["disk_bytes"] if ds["add_commit_v1"]["ok"] else None
    dvc_growth = _ok_value(dvc, "cache_growth_disk_bytes", "dvc add (v2)")
    lfs_growth = _ok_value(lfs, "repo_growth_disk_bytes", "add_commit_v2")
    ds_tput = _ratio(float(data_bytes), ds_ac1)
    tar_tput = _ratio(float(data_bytes), _wall(tar))
    tar_bytes = (tar or {}).get("output_bytes")
    changed = change["bytes_changed"]
    return {
        "ds_add_commit_over_cp_r": _ratio(ds_ac1, _wall(cp)),
        "ds_add_commit_over_git_add_commit": _ratio(ds_ac1, _wall(git["add_commit_v1"])),
        "ds_add_commit_v2_over_git_v2": _ratio(ds_ac2, _wall(git["add_commit_v2"])),
        "ds_status_over_git_status": _ratio(ds_noop, _wall(git["git status (no-op)"])),
        "ds_get_over_cp_r": _ratio(_wall(ds["ds get"]), _wall(cp)),
        "ds_add_commit_mib_s": _ratio(ds_tput, float(MIB)),
        "tar_zstd_mib_s": _ratio(tar_tput, float(MIB)),
        "ds_throughput_over_tar_zstd": _ratio(ds_tput, tar_tput),
        "store_growth_over_bytes_changed": _ratio(growth, changed),
        "store_growth_apparent_over_bytes_changed": _ratio(growth_app, changed),
        "store_growth_over_bytes_touched": _ratio(growth, change["bytes_touched"]),
        "git_growth_over_bytes_changed": _ratio(git["repo_growth_disk_bytes"], changed),
        "dvc_cache_growth_over_bytes_changed": _ratio(dvc_growth, changed),
        "git_lfs_growth_over_bytes_changed": _ratio(lfs_growth, changed),
        "ds_growth_over_dvc_cache_growth": _ratio(growth, dvc_growth),
        "ds_growth_over_git_lfs_growth": _ratio(growth, lfs_growth),
        "store_v1_over_data": _ratio(store1, data_bytes),
        "git_repo_v1_over_data": _ratio(git["repo_v1"]["disk_bytes"], data_bytes),
        "dvc_cache_v1_over_data": _ratio(_ok_disk(dvc, "cache_v1", "dvc add"), data_bytes),
        "git_lfs_repo_v1_over_data": _ratio(_ok_disk(lfs, "repo_v1", "add_commit_v1"), data_bytes),
        "tar_zstd_over_data": _ratio(tar_bytes, data_bytes),
        "ds_add_commit_over_dvc_add": _ratio(ds_ac1, _wall(dvc.get("dvc add"))),
        "ds_add_commit_v2_over_dvc_add_v2": _ratio(ds_ac2, _wall(dvc.get("dvc add (v2)"))),
        "ds_status_over_dvc_status": _ratio(ds_noop, _wall(dvc.get("dvc status (no-op)"))),
        "ds_add_commit_over_git_lfs_add_commit": _ratio(ds_ac1, _wall(lfs.get("add_commit_v1"))),
        "ds_add_commit_v2_over_git_lfs_v2": _ratio(ds_ac2, _wall(lfs.get("add_commit_v2"))),
        "ds_status_over_git_lfs_status": _ratio(ds_noop, _wall(lfs.get("git-lfs status (no-op)"))),
        "ds_peak_rss_gb": peak_rss_gb(ds),
        **remote_ratios(res.get("remote") or {}, peers, changed, data_bytes),
    }


def _median_step(values: list[dict[str, Any]]) -> dict[str, Any]:
    """One step across rounds: the record of the round with the median wall time (the
    lower one of an even count), or the first failed round's; with the min and max wall."""
    failed = [v for v in values if not v.get("ok")]
    ranked = sorted(values, key=lambda v: v["wall_s"])
    rec = dict(failed[0] if failed else ranked[(len(ranked) - 1) // 2])
    rec.update(wall_s_min=ranked[0]["wall_s"], wall_s_max=ranked[-1]["wall_s"], rounds=len(values))
    return rec


def merge_figures(values: list[Any]) -> Any:
    """The rounds' figures of one thing as one: a step record (``wall_s`` and ``ok``) by
    :func:`_median_step`, a dict key by key, anything else (sizes, counts) from round 1."""
    first = values[0]
    if not all(isinstance(v, dict) for v in values):
        return first
    if "wall_s" in first and "ok" in first:
        return _median_step(values)
    return {k: merge_figures([v[k] for v in values if k in v]) for k in first}


def ratio_medians(per_round: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Each ratio's median over the rounds that measured it (pairs of the same round), and
    its spread: ``{"min", "max", "n"}`` (None where no round measured it)."""
    medians: dict[str, Any] = {}
    spread: dict[str, Any] = {}
    for key in dict.fromkeys(k for r in per_round for k in r):
        vals = [v for r in per_round if isinstance(v := r.get(key), int | float)
                and not isinstance(v, bool)]
        medians[key] = statistics.median(vals) if vals else None
        spread[key] = {"min": min(vals), "max": max(vals), "n": len(vals)} if vals else None
    return medians, spread


def merge_rounds(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """A data set's results from its rounds: every round as it ran (``rounds``), the step
    records of the median round, and each ratio's median and spread."""
    merged = {key: merge_figures([r[key] for r in rounds])
              for key in ("change", "ds", "remote", "peers")}
    ratios, spread = ratio_medians([r["ratios"] for r in rounds])
    return {**merged, "ratios": ratios, "ratio_spread": spread, "rounds": rounds}


def remote_ratios(remote: dict[str, Any], peers: dict[str, Any], changed: int,
                  data_bytes: int) -> dict[str, Any]:
    """The ratios of ds push, clone and pull, against s3fs, cp -r and DVC."""
    def step(kind: str, name: str) -> dict[str, Any] | None:
        return (remote.get(kind) or {}).get(name)

    def wall(kind: str, name: str) -> float | None:
        return _wall(step(kind, name))

    def sent(kind: str, name: str, key: str) -> float | None:
        d = step(kind, name)
        if not d or not d.get("ok"):
            return None
        return (d.get("transfer") or {}).get(key)

    def server(d: dict[str, Any] | None) -> int | None:
        return d.get("server_requests") if d and d.get("ok") else None

    dvc = peers.get("dvc") or {}
    put = peers.get("s3fs_put")
    get = peers.get("s3fs_get")
    cp = peers.get("cp_r")
    out: dict[str, Any] = {
        "ds_push_s3_over_s3fs_put": _ratio(wall("s3", "ds push (v1)"), _wall(put)),
        "ds_clone_s3_over_s3fs_get": _ratio(wall("s3", "ds clone"), _wall(get)),
        "ds_push_folder_over_cp_r": _ratio(wall("folder", "ds push (v1)"), _wall(cp)),
        "ds_clone_folder_over_cp_r": _ratio(wall("folder", "ds clone"), _wall(cp)),
        "ds_push_s3_requests": sent("s3", "ds push (v1)", "requests"),
        "ds_push_s3_server_requests": server(step("s3", "ds push (v1)")),
        "s3fs_put_server_requests": server(put),
        "dvc_push_s3_server_requests": server(dvc.get("dvc push (s3)")),
        "ds_clone_s3_requests": sent("s3", "ds clone", "requests"),
        "ds_clone_s3_server_requests": server(step("s3", "ds clone")),
        "s3fs_get_server_requests": server(get),
        "ds_push_v2_s3_requests": sent("s3", "ds push (v2)", "requests"),
        "ds_pull_s3_requests": sent("s3", "ds pull", "requests"),
        "ds_push_s3_mib_s": _ratio(_ratio(float(data_bytes), wall("s3", "ds push (v1)")), float(MIB)),
        "s3fs_put_mib_s": _ratio(_ratio(float(data_bytes), _wall(put)), float(MIB)),
        "push_v1_bytes_over_data": _ratio(sent("folder", "ds push (v1)", "bytes_sent"), data_bytes),
    }
    for kind in ("folder", "s3"):
        out[f"incremental_push_bytes_over_bytes_changed_{kind}"] = _ratio(
            sent(kind, "ds push (v2)", "bytes_sent"), changed)
        out[f"pull_bytes_over_bytes_changed_{kind}"] = _ratio(
            sent(kind, "ds pull", "bytes_received"), changed)
    out["ds_push_folder_over_dvc_push"] = _ratio(wall("folder", "ds push (v1)"),
                                                 _wall(dvc.get("dvc push")))
    out["ds_push_s3_over_dvc_push_s3"] = _ratio(wall("s3", "ds push (v1)"),
                                                _wall(dvc.get("dvc push (s3)")))
    out["ds_clone_folder_over_dvc_pull"] = _ratio(wall("folder", "ds clone"),
                                                  _wall(dvc.get("dvc pull")))
    return out


def diff_scaling(datasets: dict[str, Any]) -> dict[str, Any]:
    """``ds diff HEAD~1 HEAD`` of the 1% change set per data set; S1M against S."""
    rows: dict[str, Any] = {}
    for label, res in datasets.items():
        ch = res.get("change") or {}
        m = (res.get("ds") or {}).get("ds diff --json")
        files_changed = sum(ch.get(k, 0) for k in ("modified_files", "added_files", "removed_files"))
        wall = _wall(m)
        rows[label] = {
            "files": res["dataset"]["files"],
            "files_changed": files_changed,
            "bytes_changed": ch.get("bytes_changed"),
            "diff_wall_s": wall,
            "diff_cpu_s": m["cpu_s"] if m and m.get("ok") else None,
            "diff_maxrss_kib": m["maxrss_kib"] if m and m.get("ok") else None,
            "diff_ms_per_changed_file": _ratio(None if wall is None else 1000 * wall, files_changed),
        }
    out: dict[str, Any] = {"sets": rows}
    small, million = rows.get("S"), rows.get("S1M")
    if small and million:
        out["S1M_over_S"] = {
            "diff_wall": _ratio(million["diff_wall_s"], small["diff_wall_s"]),
            "files_changed": _ratio(million["files_changed"], small["files_changed"]),
            "bytes_changed": _ratio(million["bytes_changed"], small["bytes_changed"]),
            "files": _ratio(million["files"], small["files"]),
        }
    return out


# --------------------------------------------------------------------------
# Markdown
# --------------------------------------------------------------------------


def _f(x: float | None, fmt: str = "{:.3f}") -> str:
    return "n/a" if x is None else fmt.format(x)


def spread_text(value: float | None, spread: dict[str, Any] | None, fmt: str = "{:.3f}") -> str:
    """``median [min–max]``: a ratio and its range across the paired rounds."""
    if value is None:
        return "n/a"
    spread = spread or {"min": value, "max": value}
    return f"{fmt.format(value)} [{fmt.format(spread['min'])}–{fmt.format(spread['max'])}]"


def _wall_cell(m: dict[str, Any]) -> str:
    """A step's wall time: the median round's, with the range when there were rounds."""
    if (m.get("rounds") or 1) > 1:
        return f"{m['wall_s']:.3f} [{m['wall_s_min']:.3f}–{m['wall_s_max']:.3f}]"
    return f"{m['wall_s']:.3f}"


def _mib(n: int | None) -> str:
    return "n/a" if n is None else f"{n / MIB:.2f}"


RATIO_LABELS = [
    ("ds_add_commit_over_cp_r", "ds add+commit / cp -r (wall)"),
    ("ds_add_commit_over_git_add_commit", "ds add+commit / git add+commit (v1, wall)"),
    ("ds_add_commit_v2_over_git_v2", "ds add+commit / git add+commit (v2, wall)"),
    ("ds_status_over_git_status", "ds status / git status (no-op, wall)"),
    ("ds_get_over_cp_r", "ds get / cp -r (wall)"),
    ("ds_add_commit_mib_s", "ds add+commit throughput (MiB/s)"),
    ("tar_zstd_mib_s", "tar \\| zstd -3 throughput (MiB/s)"),
    ("ds_throughput_over_tar_zstd", "ds add+commit throughput / tar \\| zstd throughput"),
    ("store_growth_over_bytes_changed", "store growth (du) / bytes changed"),
    ("store_growth_apparent_over_bytes_changed", "store growth (apparent) / bytes changed"),
    ("store_growth_over_bytes_touched", "store growth (du) / bytes of touched files"),
    ("git_growth_over_bytes_changed", "git .git growth (du) / bytes changed"),
    ("store_v1_over_data", "store v1 (du) / data bytes"),
    ("git_repo_v1_over_data", ".git v1 (du) / data bytes"),
    ("tar_zstd_over_data", "tar.zst / data bytes"),
    ("ds_add_commit_over_dvc_add", "ds add+commit / dvc add (v1, wall)"),
    ("ds_add_commit_v2_over_dvc_add_v2", "ds add+commit / dvc add (v2, wall)"),
    ("ds_status_over_dvc_status", "ds status / dvc status (no-op, wall)"),
    ("dvc_cache_growth_over_bytes_changed", "dvc cache growth (du) / bytes changed"),
    ("ds_growth_over_dvc_cache_growth", "ds store growth / dvc cache growth (du)"),
    ("dvc_cache_v1_over_data", "dvc cache v1 (du) / data bytes"),
    ("ds_add_commit_over_git_lfs_add_commit", "ds add+commit / git-lfs add+commit (v1, wall)"),
    ("ds_add_commit_v2_over_git_lfs_v2", "ds add+commit / git-lfs add+commit (v2, wall)"),
    ("ds_status_over_git_lfs_status", "ds status / git-lfs status (no-op, wall)"),
    ("git_lfs_growth_over_bytes_changed", "git-lfs .git growth (du) / bytes changed"),
    ("ds_growth_over_git_lfs_growth", "ds store growth / git-lfs .git growth (du)"),
    ("git_lfs_repo_v1_over_data", "git-lfs .git v1 (du) / data bytes"),
]

COUNT = "{:.0f}"
REMOTE_RATIO_LABELS = [
    ("ds_push_s3_over_s3fs_put", "ds push / s3fs put (S3, v1, wall)"),
    ("ds_clone_s3_over_s3fs_get", "ds clone / s3fs get (S3, wall)"),
    ("ds_push_folder_over_cp_r", "ds push / cp -r (folder, v1, wall)"),
    ("ds_clone_folder_over_cp_r", "ds clone / cp -r (folder, wall)"),
    ("ds_push_s3_mib_s", "ds push throughput (S3, MiB of data/s)"),
    ("s3fs_put_mib_s", "s3fs put throughput (S3, MiB/s)"),
    ("ds_push_s3_requests", "ds push requests (S3, v1; as ds reports them; target for S <= 50)", COUNT),
    ("ds_push_s3_server_requests", "ds push requests (S3, v1; served by moto)", COUNT),
    ("s3fs_put_server_requests", "s3fs put requests (served by moto)", COUNT),
    ("dvc_push_s3_server_requests", "dvc push requests (S3; served by moto)", COUNT),
    ("ds_clone_s3_requests", "ds clone requests (S3; as ds reports them)", COUNT),
    ("ds_clone_s3_server_requests", "ds clone requests (S3; served by moto)", COUNT),
    ("s3fs_get_server_requests", "s3fs get requests (served by moto)", COUNT),
    ("ds_push_v2_s3_requests", "ds push requests (S3, v2 incremental)", COUNT),
    ("ds_pull_s3_requests", "ds pull requests (S3)", COUNT),
    ("push_v1_bytes_over_data", "ds push bytes sent (v1) / data bytes"),
    ("incremental_push_bytes_over_bytes_changed_folder", "incremental push bytes / bytes changed (folder)"),
    ("incremental_push_bytes_over_bytes_changed_s3", "incremental push bytes / bytes changed (S3)"),
    ("pull_bytes_over_bytes_changed_folder", "ds pull bytes received / bytes changed (folder)"),
    ("pull_bytes_over_bytes_changed_s3", "ds pull bytes received / bytes changed (S3)"),
    ("ds_push_folder_over_dvc_push", "ds push / dvc push (folder, wall)"),
    ("ds_push_s3_over_dvc_push_s3", "ds push / dvc push (S3, wall)"),
    ("ds_clone_folder_over_dvc_pull", "ds clone / dvc pull (folder, wall)"),
    ("ds_peak_rss_gb", "ds peak RSS of add, commit, status, diff, get (GB, largest process)"),
]


def _row(tool: str, m: dict[str, Any] | None) -> str:
    if m is None:
        return f"| {tool} | skipped | | | |"
    status = "ok" if m["ok"] else "**FAILED**"
    return (f"| {tool} | {_wall_cell(m)} | {m['cpu_s']:.3f} | "
            f"{m['maxrss_kib'] / 1024:.1f} | {status} |")


def _rrow(tool: str, m: dict[str, Any] | None) -> str:
    """A remote step: also requests (ds's count / served by moto) and bytes moved."""
    if m is None:
        return f"| {tool} | skipped | | | | | | |"
    status = "ok" if m["ok"] else "**FAILED**"
    t = m.get("transfer") or {}

    def num(x: Any) -> str:
        return "-" if x is None else str(x)

    def kib(x: Any) -> str:
        return "-" if x is None else f"{x / 1024:,.1f}"

    srv = m.get("server_cpu_s")
    return (f"| {tool} | {_wall_cell(m)} | {m['cpu_s']:.3f} | "
            f"{'-' if srv is None else f'{srv:.3f}'} | {m['maxrss_kib'] / 1024:.1f} | "
            f"{num(t.get('requests'))} / {num(m.get('server_requests'))} | "
            f"{kib(t.get('bytes_sent', m.get('bytes_sent')))} / {kib(t.get('bytes_received'))} | "
            f"{status} |")


def peer_rows(tool: str, d: dict[str, Any] | None, rows: list[tuple[str, str]],
              row: Callable[[str, dict[str, Any] | None], str] = _row) -> list[str]:
    """Table rows of one optional peer (DVC, git-lfs): its steps, or one 'skipped' row."""
    if not d or d.get("skipped"):
        cells = row(tool, None).count("|") - 3
        return [f"| {tool} | skipped: {(d or {}).get('skipped', 'not run')} |" + " |" * cells]
    return [row(text, d.get(name)) for name, text in rows]


def remote_lines(res: dict[str, Any]) -> list[str]:
    remote = res.get("remote") or {}
    peers = res["peers"]
    if not remote:
        return []
    lines = [
        "| remote step | wall s | CPU s | server CPU s | peak RSS MiB | requests (ds / server) "
        "| KiB sent / received | status |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for kind, where in (("folder", "folder"), ("s3", "S3")):
        r = remote.get(kind)
        for step in ("ds push (v1)", "ds clone", "ds push (v2)", "ds pull"):
            text = step.replace("(v2)", "(v2, incremental)")
            if step == "ds pull":
                text = "ds pull (in the clone)"
            lines.append(_rrow(f"{text} - {where}", r.get(step) if r else None))
    lines += [
        _rrow("cp -r (folder peer)", peers.get("cp_r")),
        _rrow("s3fs put (raw files)", peers.get("s3fs_put")),
        _rrow("s3fs get (raw files)", peers.get("s3fs_get")),
    ]
    lines += peer_rows("dvc push / pull", peers.get("dvc"), [
        ("dvc push", "dvc push (folder remote)"),
        ("dvc pull", "dvc pull (folder remote, fresh project)"),
        ("dvc push (s3)", "dvc push (S3 remote)"),
    ], _rrow)
    return lines + [""]


def targets_lines(results: dict[str, Any], chart: str | None) -> list[str]:
    """The issue's targets: value measured, met or missed, and by how much."""
    rows = results.get("targets") or []
    lines = ["## Targets", ""]
    if chart:
        lines += [f"![ratios against the targets]({chart})", ""]
    if not rows:
        return lines + ["No target applies to the data sets of this run.", ""]
    lines += ["| target | set | bound | measured: median [min–max] | result (by the median) |",
              "| --- | --- | ---: | ---: | --- |"]
    for r in rows:
        verdict = margin_text(r)
        if r["met"] is not None:
            verdict = f"**{verdict}**" if not r["met"] else verdict
        spread = {"min": r["min"], "max": r["max"]} if r.get("min") is not None else None
        value = spread_text(r["value"], spread, "{:.3g}")
        lines.append(f"| {r['target'].replace('|', chr(92) + '|')} | {r['set']} | "
                     f"{r['op']} {r['bound']:.3g} | {value} | {verdict} |")
    met = sum(1 for r in rows if r["met"])
    measured = sum(1 for r in rows if r["met"] is not None)
    lines += ["", f"{met} of {measured} measured targets met; ratios are ds / peer (wall time "
              "or bytes), so '5x faster' is a bound of 0.2.", ""]
    return lines


def diff_lines(results: dict[str, Any]) -> list[str]:
    """ds diff of the 1% change set on each data set, and S1M against S."""
    scaling = results.get("diff_scaling") or {}
    sets = scaling.get("sets") or {}
    if not sets:
        return []
    lines = [
        "## Diff cost against the size of the change", "",
        "`ds diff HEAD~1 HEAD --json` between v1 and v2 (change set I: 1% of the files "
        "modified, 1% added, 1% removed on S and S1M).", "",
        "| set | files | files changed | bytes changed | diff wall s | CPU s | peak RSS MiB "
        "| ms per changed file |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for label, r in sets.items():
        rss = r["diff_maxrss_kib"]
        lines.append(f"| {label} | {r['files']} | {r['files_changed']} | {r['bytes_changed']} | "
                     f"{_f(r['diff_wall_s'])} | {_f(r['diff_cpu_s'])} | "
                     f"{_f(None if rss is None else rss / 1024, '{:.1f}')} | "
                     f"{_f(r['diff_ms_per_changed_file'])} |")
    ratio = scaling.get("S1M_over_S")
    if ratio:
        lines += ["", f"S1M / S: diff wall {_f(ratio['diff_wall'], '{:.2f}')}x for "
                  f"{_f(ratio['files_changed'], '{:.1f}')}x the files changed "
                  f"({_f(ratio['bytes_changed'], '{:.1f}')}x the bytes changed, "
                  f"{_f(ratio['files'], '{:.1f}')}x the files). A cost proportional to the "
                  "change gives a diff-wall ratio near the files-changed ratio."]
    else:
        lines += ["", "Run with `--million` for the second size (S1M) and its ratio to S."]
    return lines + [""]


def _sizes(d: dict[str, Any], key: str) -> int | None:
    return (d.get(key) or {}).get("disk_bytes")


def size_lines(dvc: dict[str, Any], lfs: dict[str, Any]) -> list[str]:
    """Store sizes of the DVC and git-lfs peers (du), when they ran."""
    lines = []
    if "cache_v1" in dvc:
        growth = dvc.get("cache_growth_disk_bytes")
        lines.append(f"| .dvc/cache after v1 / v2 (du); growth | {_mib(_sizes(dvc, 'cache_v1'))} / "
                     f"{_mib(_sizes(dvc, 'cache_v2'))}; {_mib(growth)} |")
    if "repo_v1" in lfs:
        lines += [
            f"| .git (git-lfs) after v1 / v2 (du); growth | {_mib(_sizes(lfs, 'repo_v1'))} / "
            f"{_mib(_sizes(lfs, 'repo_v2'))}; {_mib(lfs.get('repo_growth_disk_bytes'))} |",
            f"| of which .git/lfs after v1 / v2 (du) | {_mib(_sizes(lfs, 'lfs_v1'))} / "
            f"{_mib(_sizes(lfs, 'lfs_v2'))} |",
        ]
    return lines


def _not_run(key: str, res: dict[str, Any]) -> bool:
    """Whether the ratio ``key`` needs a peer or remote this data set skipped on purpose."""
    peers = res["peers"]
    if "git_lfs" in key:
        return bool((peers.get("git_lfs") or {}).get("skipped"))
    if "dvc" in key:
        return bool((peers.get("dvc") or {}).get("skipped"))
    return not res.get("remote") and any(key == k for k, *_ in REMOTE_RATIO_LABELS)


def rounds_line(cfg: dict[str, Any]) -> str:
    """How the figures were taken: rounds, their order, what a ratio's cell holds."""
    n = cfg.get("rounds") or 1
    if n == 1:
        return ("- rounds: 1 (ds, then the peers); each ratio is that round's, shown as "
                "median [min–max] with min = max")
    return (f"- rounds: {n} paired rounds per data set, each from fresh copies of the data, "
            "ds and the peers alternating (ds first in rounds 1, 3, ..., the peers first in "
            "2, 4, ...); each ratio is the median [min–max] of the per-round ratios (ds and the "
            "peer of the same round); a step's wall time is the median round's [min–max]")


def to_markdown(results: dict[str, Any], chart: str | None = None) -> str:
    mi = results["machine"]
    cfg = results["config"]
    lines = [
        "# objstore benchmark results",
        "",
        f"- date: {mi['date']}",
        f"- machine: nproc {mi['nproc']}, {mi['cpu_model'] or 'unknown CPU'}, "
        f"{mi['mem_total_mib']} MiB RAM, {mi['platform']}",
        f"- python {mi['python']}; peers: {mi['git'] or 'git: n/a'}; "
        f"{(mi['zstd'] or 'zstd: n/a').strip('* ')}; {mi.get('cp') or 'cp: version n/a'}; "
        f"{mi.get('tar') or 'tar: version n/a'}",
        f"- ds command: `{shlex.join(mi['ds_cmd'])}` ({mi['ds_version'] or 'version n/a'}); "
        f"repo {mi.get('repo_commit') or 'n/a'}",
        f"- scale: {'quick' if cfg['quick'] else 'full'}; S = {cfg['small_files']} files, "
        f"L = 2 x {cfg['large_mib']} MiB"
        f"{f'; S1M = {m} files' if (m := cfg.get('million_files')) else ''}; seed {cfg['seed']}; total run "
        f"{results['total_wall_s']:.1f}s",
        *[f"- note: {n}" for n in results.get("notes", [])],
        rounds_line(cfg),
        "- timings: warm page cache, each step once a round; CPU = user+sys of the command and "
        "its children; RSS = peak of the largest process "
        f"({mi.get('rss_method', 'n/a')})",
        f"- remotes: folder = a local temp dir; S3 = {mi.get('s3_server') or 'n/a'}; "
        f"s3fs {mi.get('s3fs') or 'n/a'}; dvc: {mi.get('dvc') or 'not installed'}; "
        f"{mi.get('git_lfs') or 'git-lfs: not installed'}. The S3 "
        "server runs in the harness process and shares the CPUs with the client; its CPU "
        "time is the 'server CPU' column, not included in 'CPU s'",
        "",
        *targets_lines(results, chart),
        *diff_lines(results),
    ]
    for label, res in results["datasets"].items():
        d = res["dataset"]
        ch = res["change"]
        ds = res["ds"]
        peers = res["peers"]
        git = peers["git"]
        dvc = peers.get("dvc") or {}
        lfs = peers.get("git_lfs") or {}
        lines += [
            f"## {label}: {d['files']} files, {d['bytes'] / MIB:.1f} MiB",
            "",
            f"Change set: {ch['modified_files']} modified, {ch['added_files']} added, "
            f"{ch['removed_files']} removed; bytes changed {ch['bytes_changed']}, "
            f"bytes of touched files {ch['bytes_touched']}.",
            "",
            "| step | wall s | CPU s | peak RSS MiB | status |",
            "| --- | ---: | ---: | ---: | --- |",
            _row("ds --help (CLI start-up)", ds.get("ds --help (startup)")),
            _row("ds init", ds.get("ds init")),
            _row("ds add+commit (v1)", ds.get("add_commit_v1")),
            _row("ds status (no-op, 2nd run)", ds.get("ds status (no-op)")),
            _row("ds status (after change)", ds.get("ds status (changed)")),
            _row("ds add+commit (v2)", ds.get("add_commit_v2")),
            _row("ds diff HEAD~1 HEAD --json", ds.get("ds diff --json")),
            _row("ds get HEAD", ds.get("ds get")),
            _row("cp -r", peers.get("cp_r")),
            _row("tar \\| zstd -T0 -3", peers.get("tar_zstd")),
            _row("git add+commit (v1)", git.get("add_commit_v1")),
            _row("git status (no-op, 2nd run)", git.get("git status (no-op)")),
            _row("git status (after change)", git.get("git status (changed)")),
            _row("git add+commit (v2)", git.get("add_commit_v2")),
            *peer_rows("dvc", dvc, [
                ("dvc add", "dvc add (v1)"),
                ("dvc status (no-op)", "dvc status (no-op, 2nd run)"),
                ("dvc status (changed)", "dvc status (after change)"),
                ("dvc add (v2)", "dvc add (v2)"),
            ]),
            *peer_rows("git-lfs", lfs, [
                ("add_commit_v1", "git-lfs add+commit (v1)"),
                ("git-lfs status (no-op)", "git-lfs status (no-op, 2nd run)"),
                ("git-lfs status (changed)", "git-lfs status (after change)"),
                ("add_commit_v2", "git-lfs add+commit (v2)"),
            ]),
            "",
            *remote_lines(res),
            "| size | MiB |",
            "| --- | ---: |",
            f"| data | {_mib(d['bytes'])} |",
            f"| .dsstore after v1 (du / apparent) | {_mib(ds['store_v1']['disk_bytes'])} / "
            f"{_mib(ds['store_v1']['apparent_bytes'])} |",
            f"| .dsstore after v2 (du / apparent) | {_mib(ds['store_v2']['disk_bytes'])} / "
            f"{_mib(ds['store_v2']['apparent_bytes'])} |",
            f"| .dsstore growth (du / apparent) | {_mib(ds['store_growth_disk_bytes'])} / "
            f"{_mib(ds['store_growth_apparent_bytes'])} |",
            f"| .git after v1 / v2 (du) | {_mib(git['repo_v1']['disk_bytes'])} / "
            f"{_mib(git['repo_v2']['disk_bytes'])} |",
            f"| tar.zst | {_mib((peers.get('tar_zstd') or {}).get('output_bytes'))} |",
            *size_lines(dvc, lfs),
            *[f"| remote ({kind}) after v1 / v2 (apparent) | {_mib(r.get('size_v1_bytes'))} / "
              f"{_mib(r.get('size_v2_bytes'))} |"
              for kind, r in (res.get("remote") or {}).items() if r],
            "",
            "| ratio | median [min–max] |",
            "| --- | ---: |",
        ]
        for key, text, *fmt in RATIO_LABELS + REMOTE_RATIO_LABELS:
            value = res["ratios"].get(key)
            if value is not None or not _not_run(key, res):
                lines.append(f"| {text} | {spread_text(value, spread_of(res, key), *fmt)} |")
        checks = []
        if ds.get("diff_json_valid") is not None:
            checks.append(f"diff --json valid JSON: {ds['diff_json_valid']}")
        if ds.get("get_matches_worktree") is not None:
            checks.append(f"ds get output == committed tree: {ds['get_matches_worktree']}")
        for kind, r in (res.get("remote") or {}).items():
            if r and r.get("clone_matches_v1") is not None:
                checks.append(f"ds clone ({kind}) == v1 tree: {r['clone_matches_v1']}")
            if r and r.get("pull_matches_v2") is not None:
                checks.append(f"ds pull ({kind}) in the clone == v2 tree: {r['pull_matches_v2']}")
        if (peers.get("s3fs_get") or {}).get("matches_data") is not None:
            checks.append(f"s3fs get output == data: {peers['s3fs_get']['matches_data']}")
        if (peers.get("dvc") or {}).get("pull_matches_data") is not None:
            checks.append(f"dvc pull output == data: {peers['dvc']['pull_matches_data']}")
        if (peers.get("git_lfs") or {}).get("patterns"):
            checks.append(f"git lfs track: {' '.join(peers['git_lfs']['patterns'])}")
        lines += [""] + [f"- {c}" for c in checks] + [f"- note: {n}" for n in res["notes"]]
        lines.append("")
    if results["errors"]:
        lines += ["## Failures", ""]
        for e in results["errors"]:
            err = (e["error"] or "").replace("\n", " ")[:500]
            where = f" (round {e['round']})" if e.get("round") else ""
            lines.append(f"- **{e['dataset']} / {e['step']}**{where} (`{shlex.join(e['cmd'])}`): {err}")
        lines.append("")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------
# Outputs
# --------------------------------------------------------------------------


def render(source: Path, md: Path, chart: str | None, draw: bool = True) -> int:
    """Targets, Markdown and chart again from a results file: derived figures that file
    lacks (a target added since it ran) are computed from its steps. The chart is drawn
    only with ``draw`` and matplotlib installed."""
    results = json.loads(source.read_text())
    for d in results.get("datasets", {}).values():
        if d.get("rounds") and "ratio_spread" not in d:
            d["ratios"], d["ratio_spread"] = ratio_medians([r["ratios"] for r in d["rounds"]])
        ratios = d.setdefault("ratios", {})
        if ratios.get("ds_peak_rss_gb") is None:
            ratios["ds_peak_rss_gb"] = peak_rss_gb(d.get("ds", {}))
    results["targets"] = evaluate_targets(results)
    png = None
    if draw and importlib.util.find_spec("matplotlib") is not None:
        png = write_chart(results, Path(chart or source.with_suffix(".png")))
        results["chart"] = str(png.resolve())
    write_outputs(results, source, md, png)
    print(f"wrote {source}, {md}{f' and {png}' if png else ''}")
    return 0


def write_outputs(results: dict[str, Any], out: Path, md: Path, chart: Path | None) -> None:
    """The results as JSON and as Markdown (linking the chart relative to the Markdown)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    md.parent.mkdir(parents=True, exist_ok=True)
    link = os.path.relpath(chart, md.resolve().parent) if chart else None
    md.write_text(to_markdown(results, link))


def draw_chart(results: dict[str, Any], path: Path, runner: Runner) -> Path | None:
    """The PNG of :mod:`benchmarks.chart`, or None (and a note) without matplotlib."""
    if importlib.util.find_spec("matplotlib") is None:
        why = "chart skipped: matplotlib not installed (pip install '.[bench]')"
    else:
        try:
            results["chart"] = str(write_chart(results, path).resolve())
            return Path(results["chart"])
        except Exception as exc:  # a chart problem must not lose the measurements
            why = f"chart skipped: {exc!r}"
    results["notes"].append(why)
    runner.log(why)
    return None

"""Progress reporting: totals, plain lines off a terminal, a bar on one, silence with --quiet."""

from __future__ import annotations

import logging
import os
import pty
import subprocess
from pathlib import Path

from objstore.progress import LogProgress, announce, describe

from .conftest import DS, ds, write


def test_log_progress_is_silent_for_quick_work_and_reports_totals_rate_and_time_left() -> None:
    lines: list[str] = []
    quick = LogProgress("adding", every=60, emit=lines.append)
    announce(quick, 3, 3000)
    quick(1, 1000)
    quick(3, 3000)
    assert lines == [], "work shorter than the interval prints nothing"
    slow = LogProgress("adding", every=0, emit=lines.append)
    announce(slow, 4, 4 * 1048576)
    slow(1, 1048576)
    slow(4, 4 * 1048576)
    assert lines[0].startswith("adding: 1/4 files, 1.0 MiB/4.0 MiB, ")
    assert lines[0].endswith(" s left") and "MiB/s" in lines[0]
    assert lines[-1].startswith("adding: 4/4 files, 4.0 MiB/4.0 MiB")
    assert "left" not in lines[-1]


def test_describe_without_totals_or_files() -> None:
    assert describe("pushing", None, 2 * 1048576, None, None, 0) == "pushing: 2.0 MiB"
    assert announce(None, 1, 1) is None  # a plain callback, or none, is fine


def test_cli_prints_plain_progress_lines_off_a_terminal(work: Path) -> None:
    for i in range(40):
        write(work, f"d/f{i}", os.urandom(50_000))
    ds("init", cwd=work)
    env = dict(os.environ, DS_PROGRESS_INTERVAL="0")
    proc = subprocess.run([DS, "add", "."], cwd=work, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("adding: ")]
    assert lines and lines[-1].startswith("adding: 40/40 files, 1.9 MiB/1.9 MiB"), proc.stderr
    quiet = subprocess.run([DS, "add", "-q", "."], cwd=work, env=env, capture_output=True, text=True,
                           timeout=120)
    assert quiet.stderr == ""
    ds("commit", "-m", "v1", cwd=work)
    got = subprocess.run([DS, "get", "HEAD", str(work.parent / "copy")], cwd=work, env=env,
                         capture_output=True, text=True, timeout=120)
    assert got.returncode == 0 and "writing: 40/40 files" in got.stderr, got.stderr


def test_cli_draws_a_bar_on_a_terminal(work: Path) -> None:
    for i in range(20):
        write(work, f"f{i}", os.urandom(20_000))
    ds("init", cwd=work)
    main, child = pty.openpty()
    proc = subprocess.Popen([DS, "add", "."], cwd=work, stdin=subprocess.DEVNULL, stdout=child, stderr=child,
                            env=dict(os.environ, COLUMNS="100", TERM="xterm", DS_PROGRESS_INTERVAL="0"))
    os.close(child)
    out = b""
    while True:
        try:
            data = os.read(main, 65536)
        except OSError:  # the terminal closed with the process
            break
        if not data:
            break
        out += data
    os.close(main)
    assert proc.wait(timeout=120) == 0
    text = out.decode("utf-8", "replace")
    assert "Staged 20 file(s)" in text
    # off a terminal this interval prints a line per file; on one, only the bar may draw
    assert "adding: " not in text, "a terminal gets the bar, not plain lines"


def test_sdk_verbose_reports_on_the_objstore_logger(tmp_path: Path, monkeypatch, caplog) -> None:
    from objstore import Dataset

    monkeypatch.setenv("DSSTORE_DIR", str(tmp_path / "store"))
    monkeypatch.setenv("DS_PROGRESS_INTERVAL", "0")
    for i in range(5):
        write(tmp_path / "data", f"f{i}", os.urandom(10_000))
    d = Dataset.create(dataset_name="n", dataset_project="p")
    with caplog.at_level(logging.INFO, logger="objstore"):
        d.add_files(tmp_path / "data", verbose=True)
    assert any(r.getMessage().startswith("add_files: 5/5 files") for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="objstore"):
        d.add_files(tmp_path / "data")
    assert not caplog.records, "not verbose: nothing reported"


def test_fsck_and_gc_report_their_packs_and_gc_leaves_one_metadata_pack(store, work: Path) -> None:
    from objstore.get import get_copy
    from objstore.maintenance import fsck, gc
    from objstore.worktree import commit_all

    from .conftest import read_tree

    trees = []
    for v in range(3):
        for i in range(70):  # enough folders that each commit writes a metadata pack
            write(work, f"d{i}/f", f"{v}-{i}")
        trees.append((commit_all(store, f"v{v}").id, read_tree(work)))

    class Seen(list):
        def total(self, files, nbytes):
            self.append(("total", files, nbytes))

        def __call__(self, files, nbytes):
            self.append((files, nbytes))

    seen = Seen()
    assert fsck(store, read_data=True, progress=seen).ok
    assert seen[0][0] == "total" and seen[-1] == (seen[0][1], seen[0][2])
    seen = Seen()
    report = gc(store, progress=seen)
    assert seen[0][0] == "total" and seen[-1] == (seen[0][1], seen[0][2])
    assert report.meta_objects_packed > 0
    packs = list((store.meta.path / "objects" / "pack").glob("pack-*.pack"))
    assert len(packs) == 1 and not list((store.meta.path / "objects").glob("??/*"))
    assert fsck(store, read_data=True).ok
    for n, (commit, tree) in enumerate(trees):
        get_copy(store, commit, work.parent / f"v{n}")
        assert read_tree(work.parent / f"v{n}") == tree


def test_sdk_upload_show_progress_reports_bytes_sent(tmp_path: Path, monkeypatch, caplog) -> None:
    from objstore import Dataset

    monkeypatch.setenv("DSSTORE_DIR", str(tmp_path / "store"))
    monkeypatch.setenv("DS_PROGRESS_INTERVAL", "0")
    write(tmp_path / "data", "big", os.urandom(3 * 1048576))
    d = Dataset.create(dataset_name="n", dataset_project="p", output_uri=str(tmp_path / "remote"))
    d.add_files(tmp_path / "data")
    with caplog.at_level(logging.INFO, logger="objstore"):
        d.upload(show_progress=True)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("upload: ")]
    assert lines and "files" not in lines[-1]
    done, total = lines[-1].split(": ", 1)[1].split(",")[0].split("/")
    assert done == total and float(total.split()[0]) >= 3.0, lines
    d.add_files(tmp_path / "data")  # nothing new, nothing to report
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="objstore"):
        d.upload(show_progress=False)
    assert not [r for r in caplog.records if r.getMessage().startswith("upload: ")]


def test_cli_fetch_reports_metadata_bytes(tmp_path: Path) -> None:
    a, b, remote = tmp_path / "a", tmp_path / "b", tmp_path / "remote"
    a.mkdir()
    b.mkdir()
    for i in range(100):
        write(a, f"d{i}/f", f"{i}")
    ds("init", cwd=a)
    ds("add", ".", cwd=a)
    ds("commit", "-m", "v1", cwd=a)
    ds("push", str(remote), cwd=a)
    ds("init", cwd=b)
    ds("remote", "add", "origin", str(remote), cwd=b)
    env = dict(os.environ, DS_PROGRESS_INTERVAL="0")
    proc = subprocess.run([DS, "fetch", "origin"], cwd=b, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("fetching: ")]
    assert lines, proc.stderr
    done, total = lines[-1].split(": ", 1)[1].split(",")[0].split("/")
    assert done == total and "files" not in lines[-1]
    quiet = subprocess.run([DS, "fetch", "-q", "origin"], cwd=b, env=env, capture_output=True, text=True,
                           timeout=120)
    assert "fetching" not in quiet.stderr

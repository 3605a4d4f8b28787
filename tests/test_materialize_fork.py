"""Many files are written by this process and forked children (``materialize.FORK_FILES``).

The children must give what one process gives (tests/test_materialize_fast.py runs every
case that way too), and every way it can go wrong must end as one process would: a child's
error raised here as it was, a failure here stopping the children between two files, a
child that dies reported, nothing half-written, no child left unreaped.
"""

from __future__ import annotations

import os
import select
import signal
import threading
from pathlib import Path

import pytest

from objstore import materialize
from objstore.errors import DsError
from objstore.manifest import FileEntry
from objstore.materialize import Materializer, _runs
from objstore.store import Store
from objstore.worktree import commit_all

from .conftest import write

N = 30


@pytest.fixture
def items(store: Store, work: Path) -> list[tuple[str, FileEntry]]:
    for i in range(N):
        write(work, f"d{i % 3}/f{i:02d}.txt", f"file {i}\n" * (i + 1))
    commit_all(store, "v1")
    return sorted(store.meta.walk(store.head_tree()))


@pytest.fixture
def forks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Fork from the second file on, into two children; the pids made are listed."""
    monkeypatch.setattr(materialize, "FORK_FILES", 2)
    monkeypatch.setattr(materialize, "fork_cores", lambda: 3)
    made: list[int] = []
    real = os.fork

    def fork() -> int:
        pid = real()
        if pid:
            made.append(pid)
        return pid
    monkeypatch.setattr(os, "fork", fork)
    return made


def reaped(pids: list[int]) -> bool:
    """Every one of ``pids`` was waited for already (none left running or as a zombie)."""
    for pid in pids:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            continue
        return False
    return True


def leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.rglob("*") if ".ds-tmp-" in p.name)


def test_children_write_their_runs_and_send_back_the_stat_rows(store: Store, items, tmp_path: Path,
                                                                forks: list[int]) -> None:
    out = tmp_path / "out"
    out.mkdir()
    report = Materializer(str(out), store.chunks, fresh=True).write(items)
    assert len(forks) == 2 and reaped(forks)
    assert report.count == N and sorted(report.written) == [p for p, _e in items]
    for path, entry in items:
        st = os.lstat(out / path)
        row = report.written[path]
        assert (out / path).read_bytes() == store.chunks.get(entry.chunk_list()[0][0])
        assert (row.size, row.mtime_ns, row.ino, row.ctime_ns) == (
            st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)


def test_a_childs_error_is_raised_here_as_it_was(store: Store, items, tmp_path: Path,
                                                 forks: list[int]) -> None:
    """A folder standing where the last file goes (no --force): the serial writer's error."""
    out, alone = tmp_path / "out", tmp_path / "alone"
    last = items[-1][0]
    (out / last).mkdir(parents=True)
    (alone / last).mkdir(parents=True)
    with pytest.raises(DsError) as serial:  # one file: written here
        Materializer(str(alone), store.chunks).write([items[-1]])
    assert forks == []
    with pytest.raises(DsError) as forked:
        Materializer(str(out), store.chunks).write(items)
    assert len(forks) == 2 and reaped(forks)
    assert type(forked.value) is type(serial.value) and str(forked.value) == str(serial.value)
    assert leftovers(out) == []


def test_a_failure_here_stops_the_children_and_leaves_nothing_half_written(
        store: Store, items, tmp_path: Path, forks: list[int], monkeypatch: pytest.MonkeyPatch) -> None:
    parent, first = os.getpid(), items[0][0]
    real = Materializer._write_file

    def failing(self, path: str, entry: FileEntry):
        if os.getpid() == parent and path == first:
            raise OSError(28, "No space left on device")
        return real(self, path, entry)
    monkeypatch.setattr(Materializer, "_write_file", failing)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(OSError, match="No space left"):
        Materializer(str(out), store.chunks, fresh=True).write(items)
    assert len(forks) == 2 and reaped(forks)
    assert leftovers(out) == []
    for path, entry in items:  # each file there is whole
        if (out / path).exists():
            assert (out / path).stat().st_size == entry.size


def test_a_child_that_dies_is_an_error(store: Store, items, tmp_path: Path, forks: list[int],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    parent, last = os.getpid(), items[-1][0]
    real = Materializer._write_file

    def dying(self, path: str, entry: FileEntry):
        if os.getpid() != parent and path == last:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(self, path, entry)
    monkeypatch.setattr(Materializer, "_write_file", dying)
    (tmp_path / "out").mkdir()
    with pytest.raises(DsError, match="ended without a whole answer"):
        Materializer(str(tmp_path / "out"), store.chunks).write(items)
    assert len(forks) == 2 and reaped(forks)


def test_an_error_that_cannot_travel_comes_back_as_its_text(store: Store, items, tmp_path: Path,
                                                             forks: list[int],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    class Odd(Exception):
        def __init__(self, a, b):  # pickle rebuilds it with one argument: it cannot
            super().__init__(f"odd {a} {b}")

    parent, last = os.getpid(), items[-1][0]
    real = Materializer._write_file

    def odd(self, path: str, entry: FileEntry):
        if os.getpid() != parent and path == last:
            raise Odd(1, 2)
        return real(self, path, entry)
    monkeypatch.setattr(Materializer, "_write_file", odd)
    (tmp_path / "out").mkdir()
    with pytest.raises(DsError, match="Odd: odd 1 2"):
        Materializer(str(tmp_path / "out"), store.chunks).write(items)
    assert reaped(forks)


def test_no_fork_while_another_thread_runs(store: Store, items, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A child must not inherit a lock another thread holds (a progress bar's, say)."""
    monkeypatch.setattr(materialize, "FORK_FILES", 2)
    made: list[int] = []
    real = os.fork
    monkeypatch.setattr(os, "fork", lambda: made.append(1) or real())
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    (tmp_path / "out").mkdir()
    try:
        report = Materializer(str(tmp_path / "out"), store.chunks).write(items)
    finally:
        stop.set()
        other.join()
    assert made == [] and report.count == N


def test_every_child_stops_at_its_next_batch_once_told(store: Store, items, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Three processes, a batch per file: each child writes its first file only once the
    parent failed and closed the stop pipes, so each child writes exactly that one file
    (a later child holding an earlier child's stop pipe open kept that one writing)."""
    monkeypatch.setattr(materialize, "FORK_FILES", 2)
    monkeypatch.setattr(materialize, "fork_cores", lambda: 3)
    monkeypatch.setattr(materialize, "_BATCH_FILES", 1)
    gate_r, gate_w = os.pipe()
    ready_r, ready_w = os.pipe()
    parent, first = os.getpid(), items[0][0]
    real_write, real_stop = Materializer._write_file, materialize._Child.stop
    children: list[materialize._Child] = []

    def gated(self, path: str, entry: FileEntry):
        if os.getpid() == parent:
            if path == first:  # fail once both children are at their first file
                for _child in range(2):
                    assert select.select([ready_r], [], [], 60)[0], "a child never started"
                    os.read(ready_r, 1)
                raise OSError(28, "No space left on device")
        elif not getattr(self, "_gated", False):
            self._gated = True
            os.write(ready_w, b"r")
            assert select.select([gate_r], [], [], 60)[0], "the parent never opened the gate"
            os.read(gate_r, 1)
        return real_write(self, path, entry)

    def stop(child: materialize._Child) -> None:
        children.append(child)
        os.close(child.stop_fd)
        child.stop_fd = -1
        if len(children) == 2:  # both told: now both may go on, and find their stop pipes closed
            os.write(gate_w, b"xx")
            for c in children:
                real_stop(c)

    monkeypatch.setattr(Materializer, "_write_file", gated)
    monkeypatch.setattr(materialize._Child, "stop", stop)
    out = tmp_path / "out"
    out.mkdir()
    try:
        with pytest.raises(OSError, match="No space left"):
            Materializer(str(out), store.chunks, fresh=True).write(items)
    finally:
        for fd in (gate_r, gate_w, ready_r, ready_w):
            os.close(fd)
    assert len(children) == 2 and reaped([c.pid for c in children])
    written = [p for p, _e in items if (out / p).exists()]
    assert len(written) == 2, written
    assert leftovers(out) == []


def test_descriptors_past_1024_are_no_obstacle(store: Store, items, tmp_path: Path, forks: list[int]) -> None:
    """A process holding many open files (a pack reader each) still writes with children."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if max(soft, hard) < 1200:
        pytest.skip("this system allows fewer than 1,200 open files")
    if soft < 1200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (1200, hard))
    held = []
    try:
        while not held or held[-1] < 1100:
            held.append(os.open(os.devnull, os.O_RDONLY))
        out = tmp_path / "out"
        out.mkdir()
        report = Materializer(str(out), store.chunks, fresh=True).write(items)
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert len(forks) == 2 and reaped(forks) and report.count == N


def test_an_interrupt_just_after_a_fork_leaves_no_child_behind(store: Store, items, tmp_path: Path,
                                                              forks: list[int],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C arriving between the fork and noting the child: it waits until the child is
    noted, so the child is stopped and reaped like the others."""
    real = os.fork
    sent = []

    def fork() -> int:
        pid = real()
        if pid and not sent:
            sent.append(pid)
            forks.append(pid)
            os.kill(os.getpid(), signal.SIGINT)
        return pid
    monkeypatch.setattr(os, "fork", fork)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(KeyboardInterrupt):
        Materializer(str(out), store.chunks, fresh=True).write(items)
    assert sent and reaped(sent)
    assert leftovers(out) == []


@pytest.mark.parametrize("sizes,n", [([1] * 10, 3), ([10 << 20, 1, 1, 1], 2), ([5], 4), ([], 3)])
def test_runs_are_consecutive_and_cover_every_file(sizes: list[int], n: int) -> None:
    files = [(f"f{i}", FileEntry(f"f{i}", 0, size, b"\0" * 16)) for i, size in enumerate(sizes)]
    runs = _runs(files, n)
    assert [f for run in runs for f in run] == files
    assert 1 <= len(runs) <= n and (all(runs) or files == [])


def test_a_clone_of_many_files_is_whole_and_clean(tmp_path: Path) -> None:
    """End to end through the CLI, past ``FORK_FILES``: every file arrives with its bytes, and
    the stat rows the children sent make the first status of the clone a clean one."""
    from .conftest import ds, read_tree

    src, remote, dst = tmp_path / "src", tmp_path / "remote", tmp_path / "dst"
    ds("init", str(src), cwd=tmp_path)
    for i in range(materialize.FORK_FILES + 100):
        write(src, f"d{i % 40}/f{i}.txt", f"file {i}\n")
    ds("add", ".", cwd=src)
    ds("commit", "-q", "-m", "many", cwd=src)
    ds("push", "-q", str(remote), "HEAD:main", cwd=src)
    ds("clone", "-q", str(remote), str(dst), cwd=tmp_path)
    assert read_tree(dst) == read_tree(src)
    assert ds("status", cwd=dst).stdout.endswith("Nothing changed.\n")

"""Running and measuring commands: wall and CPU time, peak RSS, medians, sizes, the machine.

Every command runs in a fresh subprocess (its own session/process group).
Wall time is ``time.perf_counter`` around spawn..exit; CPU time comes from the
``resource.getrusage(RUSAGE_CHILDREN)`` delta (cross-checked with the
``os.wait4`` rusage of that one process); peak RSS is ``ru_maxrss`` of that
process (which covers the descendants it waited for, e.g. both sides of a
``sh -c 'a | b'`` pipeline: the max of them).

Peak RSS caveat: Linux seeds a process's ``ru_maxrss`` at ``execve`` with the
RSS of the image it replaces, so anything spawned straight from this (large)
Python process reports at least the harness's own RSS. To avoid that, commands
are started through a tiny C helper (compiled at start-up with ``cc`` into the
temp dir) that forks the command from a ~1 MiB process, reaps it with
``wait4`` and hands back its rusage. Without ``cc`` the harness falls back to
``os.wait4`` on the direct child and marks RSS figures as upper bounds
(``machine.rss_method`` in the JSON).
"""

from __future__ import annotations

import contextlib
import datetime
import importlib.metadata
import os
import platform
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ERROR_TAIL = 2000

RUSAGE_HELPER_C = r"""
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

/* usage: rusage-exec REPORT CMD [ARG...]
   Runs CMD as a child of this small process and writes
   "utime stime maxrss_kib" of it to REPORT; exits with its status. */
int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s REPORT CMD [ARG...]\n", argv[0]);
        return 125;
    }
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return 125;
    }
    if (pid == 0) {
        execvp(argv[2], argv + 2);
        fprintf(stderr, "%s: %s\n", argv[2], strerror(errno));
        _exit(127);
    }
    int status = 0;
    struct rusage ru;
    while (wait4(pid, &status, 0, &ru) < 0) {
        if (errno != EINTR) {
            perror("wait4");
            return 125;
        }
    }
    FILE *f = fopen(argv[1], "w");
    if (f != NULL) {
        fprintf(f, "%ld.%06ld %ld.%06ld %ld\n",
                (long)ru.ru_utime.tv_sec, (long)ru.ru_utime.tv_usec,
                (long)ru.ru_stime.tv_sec, (long)ru.ru_stime.tv_usec,
                (long)ru.ru_maxrss);
        fclose(f);
    }
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return 125;
}
"""


def build_rusage_helper(work: Path) -> tuple[Path | None, str]:
    """Compile the rusage helper; returns (path or None, description)."""
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        return None, "wait4-direct (no C compiler; peak RSS >= harness RSS)"
    src = work / "rusage_exec.c"
    exe = work / "rusage-exec"
    src.write_text(RUSAGE_HELPER_C)
    r = subprocess.run([cc, "-O2", "-o", str(exe), str(src)], capture_output=True,
                       text=True, check=False)
    if r.returncode != 0 or not exe.exists():
        return None, f"wait4-direct (helper build failed: {r.stderr.strip()[:200]})"
    return exe, f"wait4 via forked C helper ({cc})"


@dataclass
class Measurement:
    name: str
    cmd: list[str]
    cwd: str
    wall_s: float = 0.0
    cpu_user_s: float = 0.0
    cpu_sys_s: float = 0.0
    cpu_s: float = 0.0  # RUSAGE_CHILDREN delta (user+sys)
    cpu_wait4_s: float = 0.0  # os.wait4 rusage of the process (user+sys)
    maxrss_kib: int = 0
    returncode: int | None = None
    error: str | None = None
    stdout_file: str | None = None
    stderr_file: str | None = None
    stdout_bytes: int | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.returncode == 0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ok"] = self.ok
        return d


def _tail(path: Path, limit: int = ERROR_TAIL) -> str:
    try:
        data = path.read_bytes()
    except OSError:
        return ""
    return data[-limit:].decode("utf-8", "replace").strip()


class Runner:
    """Spawns commands, measures them, keeps logs and failure records."""

    def __init__(self, log_dir: Path, timeout: float, helper: Path | None = None,
                 verbose: bool = True) -> None:
        self.log_dir = log_dir
        self.helper = helper
        self.timeout = timeout
        self.verbose = verbose
        self.counter = 0
        self.errors: list[dict[str, Any]] = []

    def log(self, msg: str) -> None:
        if self.verbose:
            print(msg, file=sys.stderr, flush=True)

    def run(
        self,
        name: str,
        cmd: list[str],
        cwd: Path,
        env: dict[str, str] | None = None,
        dataset: str = "",
        record_error: bool = True,
    ) -> Measurement:
        self.counter += 1
        stem = f"{self.counter:03d}-{dataset}-{name}".replace("/", "_")
        out_path = self.log_dir / f"{stem}.out"
        err_path = self.log_dir / f"{stem}.err"
        m = Measurement(name, list(cmd), str(cwd),
                        stdout_file=str(out_path), stderr_file=str(err_path))
        search_path = (env or os.environ).get("PATH")
        if not cmd or shutil.which(cmd[0], path=search_path) is None:
            m.error = f"command not found: {cmd[0] if cmd else '(empty)'}"
            return self._finish(m, dataset, record_error)
        report = self.log_dir / f"{stem}.rusage"
        argv = [str(self.helper), str(report), *cmd] if self.helper else list(cmd)
        with open(out_path, "wb") as out_f, open(err_path, "wb") as err_f:
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.perf_counter()
            try:
                proc = subprocess.Popen(
                    argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                    stdout=out_f, stderr=err_f, start_new_session=True,
                )
            except OSError as exc:
                m.wall_s = time.perf_counter() - t0
                m.error = f"failed to start {cmd[0]!r}: {exc}"
                return self._finish(m, dataset, record_error)
            timed_out, status, ru = self._wait(proc, t0, m)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
        m.returncode = os.waitstatus_to_exitcode(status)
        m.stdout_bytes = out_path.stat().st_size
        m.cpu_user_s = after.ru_utime - before.ru_utime
        m.cpu_sys_s = after.ru_stime - before.ru_stime
        m.cpu_s = m.cpu_user_s + m.cpu_sys_s
        m.cpu_wait4_s = ru.ru_utime + ru.ru_stime
        m.maxrss_kib = ru.ru_maxrss
        if self.helper is not None:
            self._helper_report(m, report)
        if timed_out:
            m.error = f"timed out after {self.timeout:.0f}s\n{_tail(err_path)}"
        elif m.returncode != 0:
            text = _tail(err_path) or _tail(out_path) or "(no output)"
            m.error = f"exit status {m.returncode}: {text}"
        return self._finish(m, dataset, record_error)

    def _wait(self, proc: subprocess.Popen[bytes], t0: float,
              m: Measurement) -> tuple[bool, int, resource.struct_rusage]:
        """(timed out, wait status, rusage) of ``proc``, killed with its group at the timeout;
        ``m.wall_s`` stops at its exit, before the timer is cancelled and the process reaped."""
        lock = threading.Lock()
        state = {"exited": False, "timed_out": False}

        def on_timeout() -> None:
            with lock:
                if state["exited"]:
                    return
                state["timed_out"] = True
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)

        timer = threading.Timer(self.timeout, on_timeout)
        timer.daemon = True
        timer.start()
        # Wait without reaping so the timer can never signal a reused pid.
        os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
        m.wall_s = time.perf_counter() - t0
        with lock:
            state["exited"] = True
        timer.cancel()
        _, status, ru = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        return state["timed_out"], status, ru

    @staticmethod
    def _helper_report(m: Measurement, report: Path) -> None:
        """CPU and peak RSS of the command itself, as the C helper reaped it."""
        try:
            utime, stime, maxrss = report.read_text().split()
            m.cpu_wait4_s = float(utime) + float(stime)
            m.maxrss_kib = int(maxrss)
        except (OSError, ValueError):
            m.maxrss_kib = 0  # the helper's own figure would be the harness's RSS
            if m.returncode == 0:
                m.error = "rusage helper wrote no report"

    def _finish(self, m: Measurement, dataset: str, record_error: bool) -> Measurement:
        status = "ok" if m.ok else "FAILED"
        self.log(f"  [{dataset}] {m.name:<22} {m.wall_s:8.3f}s wall {m.cpu_s:8.3f}s cpu "
                 f"{m.maxrss_kib / 1024:7.1f} MiB  {status}")
        if not m.ok and record_error:
            first = (m.error or "").splitlines()[0] if m.error else ""
            self.log(f"      {shlex.join(m.cmd)}: {first[:300]}")
            self.errors.append({"dataset": dataset, "step": m.name,
                                "cmd": m.cmd, "error": m.error})
        return m


@dataclass
class Steps:
    """One tool's commands on one data set: each run is recorded in ``out`` under its name,
    so the results of ds, git, git-lfs and DVC keep one shape."""

    runner: Runner
    dataset: str
    command: list[str]  # the tool's command, before each step's arguments
    cwd: Path
    env: dict[str, str] | None = None
    out: dict[str, Any] = field(default_factory=dict)

    def __call__(self, name: str, *args: str, cwd: Path | None = None) -> Measurement:
        m = self.runner.run(name, [*self.command, *args], cwd or self.cwd, env=self.env,
                            dataset=self.dataset)
        self.out[name] = m.to_dict()
        return m

    def add_commit(self, key: str, name: str, add: tuple[str, ...], commit: tuple[str, ...]) -> None:
        """Two steps (each ``(name, *args)``) recorded once more as one under ``key``."""
        self.out[key] = combine(name, [self(*add), self(*commit)])


def median_of(
    repeat: int, once: Callable[[], Measurement]
) -> tuple[Measurement, dict[str, Any]]:
    """Run a stateless command ``repeat`` times; keep the run with the median wall time."""
    runs = [once() for _ in range(max(1, repeat))]
    ok_runs = sorted((m for m in runs if m.ok), key=lambda m: m.wall_s)
    chosen = ok_runs[(len(ok_runs) - 1) // 2] if ok_runs else runs[-1]
    d = chosen.to_dict()
    d["runs_wall_s"] = [m.wall_s for m in runs]
    return chosen, d


def combine(name: str, parts: list[Measurement]) -> dict[str, Any]:
    """Sequential steps as one: times add up, peak RSS is the max."""
    errors = [f"{p.name}: {p.error}" for p in parts if not p.ok]
    return {
        "name": name,
        "steps": [p.name for p in parts],
        "wall_s": sum(p.wall_s for p in parts),
        "cpu_s": sum(p.cpu_s for p in parts),
        "cpu_wait4_s": sum(p.cpu_wait4_s for p in parts),
        "maxrss_kib": max((p.maxrss_kib for p in parts), default=0),
        "ok": not errors,
        "error": "\n".join(errors) or None,
    }


def mdict(m: Measurement | dict[str, Any]) -> dict[str, Any]:
    return m.to_dict() if isinstance(m, Measurement) else m


# --------------------------------------------------------------------------
# Files and sizes
# --------------------------------------------------------------------------


def du(path: Path) -> dict[str, Any]:
    """Like ``du -s`` (disk, 512-byte blocks) and ``du -sb`` (apparent) in one walk."""
    if not path.exists():
        return {"exists": False, "disk_bytes": 0, "apparent_bytes": 0, "files": 0}
    seen: set[tuple[int, int]] = set()
    disk = apparent = files = 0
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            st = os.lstat(os.path.join(dirpath, name))
            key = (st.st_dev, st.st_ino)
            if key in seen:
                continue
            seen.add(key)
            disk += st.st_blocks * 512
            apparent += st.st_size
            if name in filenames:
                files += 1
    st = os.lstat(path)
    disk += st.st_blocks * 512
    apparent += st.st_size
    return {"exists": True, "disk_bytes": disk, "apparent_bytes": apparent, "files": files}


def growth(after: dict[str, Any], before: dict[str, Any], key: str = "disk_bytes") -> int:
    """What a store grew by between two ``du`` results."""
    return after[key] - before[key]


def copy_tree(src: Path, dst: Path) -> None:
    """A copy of the data for one tool (``cp -a``: much faster than shutil on 1M files)."""
    if shutil.which("cp"):
        r = subprocess.run(["cp", "-a", "--", str(src), str(dst)], capture_output=True, check=False)
        if r.returncode == 0:
            return
        shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst, symlinks=True)


# --------------------------------------------------------------------------
# The environment
# --------------------------------------------------------------------------


def tool_version(cmd: list[str]) -> str | None:
    """The first line ``cmd`` prints, or None when it fails or is missing."""
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=False,
                           stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (r.stdout or r.stderr).strip().splitlines()
    return text[0] if r.returncode == 0 and text else None


def package_version(name: str) -> str | None:
    try:
        return f"{name} {importlib.metadata.version(name)}"
    except importlib.metadata.PackageNotFoundError:
        return None


def _proc_field(path: str, prefix: str) -> str | None:
    """What follows ``prefix`` on the first line of ``path`` (a /proc file) that starts with it."""
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(prefix):
                return line[len(prefix):]
    except OSError:
        pass
    return None


def machine_info(ds_cmd: list[str], tmp_root: Path) -> dict[str, Any]:
    cpu_model = _proc_field("/proc/cpuinfo", "model name")
    mem = _proc_field("/proc/meminfo", "MemTotal:")
    mem_kib = int(mem.split()[0]) if mem else None
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model.split(":", 1)[1].strip() if cpu_model else None,
        "mem_total_mib": mem_kib // 1024 if mem_kib else None,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "tmp_dir": str(tmp_root),
        "git": tool_version(["git", "--version"]),
        "zstd": tool_version(["zstd", "--version"]),
        "cp": tool_version(["cp", "--version"]),
        "tar": tool_version(["tar", "--version"]),
        "ds_cmd": ds_cmd,
        "ds_version": tool_version([*ds_cmd, "--version"]) or package_version("objstore"),
        "repo_commit": tool_version(["git", "-C", str(HERE.parent), "describe", "--always",
                                     "--dirty"]),
    }

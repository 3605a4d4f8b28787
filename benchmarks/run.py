"""End-to-end benchmark of the ``ds`` CLI against cp -r, tar|zstd, git, git-lfs, s3fs and DVC.

Usage::

    python -m benchmarks.run [--quick] [--small-files N] [--large-mib M]
                             [--million [--million-files N]] [--chart PNG | --no-chart]
                             [--out benchmarks/results.json] [--md benchmarks/RESULTS.md]

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

All runs are on a warm page cache (the data has just been written).

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

``ds`` is taken from ``$DS_CMD`` (split like a shell would, default ``ds``),
``dvc`` from ``$DVC_CMD`` (default: ``dvc`` on ``PATH``, else ``python -m dvc``
if importable, else skipped).
A failing ``ds`` step is recorded with its error text and the run goes on; the
exit status is 1 if any step failed.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib.metadata
import importlib.util
import json
import logging
import os
import platform
import re
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks.chart import evaluate_targets, margin_text, write_chart
from benchmarks.generate import (
    MIB,
    MILLION_FILES,
    ChangeStats,
    DatasetInfo,
    apply_changes,
    generate_large,
    generate_million,
    generate_small,
    list_data_files,
    tree_digest,
)

HERE = Path(__file__).resolve().parent
STORE_DIR = ".dsstore"
QUICK_SMALL_FILES = 2000
QUICK_LARGE_MIB = 8
DEFAULT_SMALL_FILES = 20000
DEFAULT_LARGE_MIB = 128
MILLION_SET = "S1M"
MILLION_TIMEOUT = 3600.0
ERROR_TAIL = 2000
GIT_FLAGS = [
    "-c", "user.name=objstore-bench",
    "-c", "user.email=bench@example.invalid",
    "-c", "init.defaultBranch=main",
    "-c", "commit.gpgsign=false",
    "-c", "gc.auto=0",  # no background auto-gc/maintenance skewing timings
    "-c", "maintenance.auto=false",
    "-c", "core.hooksPath=/dev/null",
]


# --------------------------------------------------------------------------
# Measuring one command
# --------------------------------------------------------------------------

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
        report = self.log_dir / f"{stem}.rusage"
        m = Measurement(name, list(cmd), str(cwd),
                        stdout_file=str(out_path), stderr_file=str(err_path))
        search_path = (env or os.environ).get("PATH")
        if not cmd or shutil.which(cmd[0], path=search_path) is None:
            m.error = f"command not found: {cmd[0] if cmd else '(empty)'}"
            return self._finish(m, dataset, record_error)
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
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            proc.returncode = os.waitstatus_to_exitcode(status)
        m.returncode = proc.returncode
        m.stdout_bytes = out_path.stat().st_size
        m.cpu_user_s = after.ru_utime - before.ru_utime
        m.cpu_sys_s = after.ru_stime - before.ru_stime
        m.cpu_s = m.cpu_user_s + m.cpu_sys_s
        m.cpu_wait4_s = ru.ru_utime + ru.ru_stime
        m.maxrss_kib = ru.ru_maxrss
        if self.helper is not None:
            try:
                utime, stime, maxrss = report.read_text().split()
                m.cpu_wait4_s = float(utime) + float(stime)
                m.maxrss_kib = int(maxrss)
            except (OSError, ValueError):
                m.maxrss_kib = 0  # the helper's own figure would be the harness's RSS
                if m.returncode == 0:
                    m.error = "rusage helper wrote no report"
        if state["timed_out"]:
            m.error = f"timed out after {self.timeout:.0f}s\n{_tail(err_path)}"
        elif m.returncode != 0:
            text = _tail(err_path) or _tail(out_path) or "(no output)"
            m.error = f"exit status {m.returncode}: {text}"
        return self._finish(m, dataset, record_error)

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
# S3: moto's server in this process, and the s3fs peer
# --------------------------------------------------------------------------

S3_KEY = "test"
S3_SECRET = "test"
_ANSI_RE = re.compile(r"\x1b\[[0-9;]*m")
_REQUEST_RE = re.compile(r'"([A-Z]+) /')

# Run as ``python -c S3FS_PEER OP ENDPOINT KEY SECRET SRC DST`` so that it is
# measured like every other command (its own process, start-up included).
S3FS_PEER = """
import sys
import s3fs
op, endpoint, key, secret, src, dst = sys.argv[1:7]
fs = s3fs.S3FileSystem(endpoint_url=endpoint, key=key, secret=secret)
if op == "put":
    fs.put(src, dst, recursive=True)
elif op == "get":
    fs.get(src, dst, recursive=True)
else:
    sys.exit("unknown op " + op)
"""


class _RequestLog(logging.Handler):
    """Counts the requests werkzeug logs for the moto server, by method."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.counts: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:  # runs under the handler lock
        try:
            text = _ANSI_RE.sub("", record.getMessage())
        except Exception:  # a malformed record must not break the server
            return
        m = _REQUEST_RE.search(text)
        self.counts[m.group(1) if m else "other"] += 1

    def snapshot(self) -> Counter[str]:
        self.acquire()
        try:
            return Counter(self.counts)
        finally:
            self.release()


class MotoS3:
    """moto's S3 server on 127.0.0.1 (a free port) in a thread of this process."""

    def __init__(self) -> None:
        import s3fs
        from moto.server import ThreadedMotoServer

        self.requests = _RequestLog()
        wlog = logging.getLogger("werkzeug")  # one record per request served
        wlog.setLevel(logging.INFO)
        wlog.propagate = False
        wlog.handlers[:] = [self.requests]
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.server.start()
        host, port = self.server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        self.fs = s3fs.S3FileSystem(endpoint_url=self.endpoint, key=S3_KEY, secret=S3_SECRET,
                                    skip_instance_cache=True)
        # Subprocess environment: the fake credentials, no profile, no metadata lookups.
        self.env = dict(os.environ, AWS_ACCESS_KEY_ID=S3_KEY, AWS_SECRET_ACCESS_KEY=S3_SECRET,
                        AWS_DEFAULT_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true")
        for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
            self.env.pop(var, None)

    def ds_options(self) -> list[str]:
        return ["-o", f"endpoint_url={self.endpoint}", "-o", f"key={S3_KEY}",
                "-o", f"secret={S3_SECRET}"]

    def new_bucket(self, name: str) -> None:
        self.fs.mkdir(name)

    def drop_bucket(self, name: str) -> None:
        with contextlib.suppress(Exception):
            self.fs.rm(name, recursive=True)

    def size(self, prefix: str) -> int | None:
        try:
            self.fs.invalidate_cache()
            return int(self.fs.du(prefix))
        except Exception:
            return None

    def mark(self) -> tuple[Counter[str], float]:
        ru = resource.getrusage(resource.RUSAGE_SELF)
        return self.requests.snapshot(), ru.ru_utime + ru.ru_stime

    def since(self, mark: tuple[Counter[str], float]) -> dict[str, Any]:
        """Requests served and server CPU (this process's, which is idle otherwise)."""
        ru = resource.getrusage(resource.RUSAGE_SELF)
        by_method = self.requests.snapshot() - mark[0]
        return {"server_requests": sum(by_method.values()),
                "server_requests_by_method": dict(sorted(by_method.items())),
                "server_cpu_s": ru.ru_utime + ru.ru_stime - mark[1]}

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.server.stop()


def start_s3(runner: Runner) -> tuple[MotoS3 | None, str | None]:
    """The S3 server, or (None, why not)."""
    missing = [mod for mod in ("moto", "s3fs", "flask") if importlib.util.find_spec(mod) is None]
    if missing:
        return None, f"S3 skipped: {', '.join(missing)} not installed (pip install 'moto[server]' s3fs)"
    try:
        s3 = MotoS3()
    except Exception as exc:
        return None, f"S3 skipped: moto server did not start: {exc!r}"
    runner.log(f"moto S3 server at {s3.endpoint}")
    return s3, None


def find_dvc() -> list[str] | None:
    if os.environ.get("DVC_CMD"):
        return shlex.split(os.environ["DVC_CMD"])
    if shutil.which("dvc"):
        return ["dvc"]
    if importlib.util.find_spec("dvc") is not None:
        return [sys.executable, "-m", "dvc"]
    return None


# --------------------------------------------------------------------------
# Sizes and environment
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


def _version(cmd: list[str]) -> str | None:
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=False,
                           stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (r.stdout or r.stderr).strip().splitlines()
    return text[0] if r.returncode == 0 and text else None


def machine_info(ds_cmd: list[str], tmp_root: Path) -> dict[str, Any]:
    cpu_model = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kib = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
                break
    except OSError:
        pass
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model,
        "mem_total_mib": mem_kib // 1024 if mem_kib else None,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "tmp_dir": str(tmp_root),
        "git": _version(["git", "--version"]),
        "zstd": _version(["zstd", "--version"]),
        "ds_cmd": ds_cmd,
        "ds_version": _version([*ds_cmd, "--version"]) or _package_version("objstore"),
        "repo_commit": _version(["git", "-C", str(HERE.parent), "describe", "--always",
                                 "--dirty"]),
    }


def _package_version(name: str) -> str | None:
    try:
        return f"{name} {importlib.metadata.version(name)}"
    except importlib.metadata.PackageNotFoundError:
        return None


# --------------------------------------------------------------------------
# One data set
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


def s3_bucket(label: str) -> str:
    return f"bench-{label.lower()}"


def transfer_json(m: Measurement) -> dict[str, Any] | None:
    """The ``--json`` object a ds push/clone/pull printed, or None."""
    if not m.ok or not m.stdout_file:
        return None
    try:
        data = json.loads(Path(m.stdout_file).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def bench_s3fs(
    label: str,
    root: Path,
    src: Path,
    bucket: str,
    runner: Runner,
    s3: MotoS3,
    digest: str,
    data_bytes: int,
    notes: list[str],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """s3fs put of the raw files to s3://BUCKET/raw/, then get back into a new folder."""

    def peer(name: str, *args: str) -> dict[str, Any]:
        mark = s3.mark()
        m = runner.run(name, [sys.executable, "-c", S3FS_PEER, args[0], s3.endpoint, S3_KEY,
                              S3_SECRET, *args[1:]], root, env=s3.env, dataset=label)
        return m.to_dict() | s3.since(mark)

    put = peer("s3fs put", "put", str(src), f"{bucket}/raw/")
    put["bytes_sent"] = data_bytes  # the raw files, as they are
    got = root / "s3fs-get"
    get = peer("s3fs get", "get", f"{bucket}/raw/{src.name}/", f"{got}/")
    get["matches_data"] = None
    if get["ok"]:
        get["matches_data"] = got.is_dir() and tree_digest(got) == digest
        if not get["matches_data"]:
            notes.append("s3fs get output differs from the data")
    shutil.rmtree(got, ignore_errors=True)
    return put, get


@dataclass
class Ctx:
    """What the steps of every data set share."""

    runner: Runner
    ds_cmd: list[str]
    seed: int
    keep: bool
    repeat: int = 1
    s3: MotoS3 | None = None
    dvc_cmd: list[str] | None = None
    git_lfs: bool = False
    dvc_skipped: str = "dvc not installed"  # why, when dvc_cmd is None
    git_lfs_skipped: str = "git-lfs not installed"  # why, when not git_lfs


def copy_tree(src: Path, dst: Path) -> None:
    """A copy of the data for one tool (``cp -a``: much faster than shutil on 1M files)."""
    if shutil.which("cp"):
        r = subprocess.run(["cp", "-a", "--", str(src), str(dst)], capture_output=True, check=False)
        if r.returncode == 0:
            return
        shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst, symlinks=True)


def git_env() -> dict[str, str]:
    """No system/global git config: the same git for every run."""
    return dict(os.environ, GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull, LC_ALL="C")


def find_git_lfs() -> str | None:
    """git-lfs's version line when ``git lfs`` works, else None."""
    if shutil.which("git-lfs") is None or shutil.which("git") is None:
        return None
    return _version(["git", "lfs", "version"])


def lfs_patterns(src: Path) -> list[str]:
    """One ``git lfs track`` pattern per file extension of the data (the file name if none)."""
    return sorted({f"*{Path(rel).suffix}" if Path(rel).suffix else rel
                   for rel in list_data_files(src)})


def bench_git_repo(
    label: str,
    repo: Path,
    ctx: Ctx,
    tool: str = "git",
    setup: tuple[tuple[str, ...], ...] = (),
) -> tuple[dict[str, Any], ChangeStats]:
    """git on its own copy of the data: init (+ ``setup`` steps), add+commit v1, no-op
    status, change set I, status, add+commit v2; .git (and .git/lfs) sizes."""
    out: dict[str, Any] = {}
    env = git_env()
    lfs_dir = repo / ".git" / "lfs"

    def gitr(name: str, *args: str) -> Measurement:
        m = ctx.runner.run(name, ["git", *GIT_FLAGS, *args], repo, env=env, dataset=label)
        out[name] = m.to_dict()
        return m

    def add_commit(v: str) -> None:
        add = gitr(f"{tool} add -A ({v})", "add", "-A")
        com = gitr(f"{tool} commit ({v})", "commit", "-q", "-m", v)
        out[f"add_commit_{v}"] = combine(f"{tool} add+commit ({v})", [add, com])
        out[f"repo_{v}"] = du(repo / ".git")
        if lfs_dir.is_dir():
            out[f"lfs_{v}"] = du(lfs_dir)

    gitr(f"{tool} init", "init", "-q")
    for name, *args in setup:
        gitr(name, *args)
    add_commit("v1")
    gitr(f"{tool} status (no-op, 1st)", "status")
    gitr(f"{tool} status (no-op)", "status")
    change = apply_changes(repo, ctx.seed)
    gitr(f"{tool} status (changed)", "status")
    add_commit("v2")
    out["repo_growth_disk_bytes"] = out["repo_v2"]["disk_bytes"] - out["repo_v1"]["disk_bytes"]
    return out, change


def bench_git_lfs(
    label: str, root: Path, src: Path, ctx: Ctx, notes: list[str]
) -> tuple[dict[str, Any], ChangeStats | None]:
    """git with ``git lfs track`` on every data file pattern (``.git/lfs`` holds the bytes)."""
    if not ctx.git_lfs:
        notes.append(f"{ctx.git_lfs_skipped}: git-lfs peer skipped")
        return {"skipped": ctx.git_lfs_skipped}, None
    repo = root / "git-lfs"
    copy_tree(src, repo)
    patterns = lfs_patterns(src)
    setup = (("git-lfs install", "lfs", "install", "--local", "--skip-repo"),
             ("git-lfs track", "lfs", "track", *patterns))
    out, change = bench_git_repo(label, repo, ctx, "git-lfs", setup)
    out["patterns"] = patterns
    shutil.rmtree(repo, ignore_errors=True)
    return out, change


def bench_dvc(
    label: str,
    root: Path,
    src: Path,
    ctx: Ctx,
    digest: str,
    notes: list[str],
) -> tuple[dict[str, Any], ChangeStats | None]:
    """DVC peer: init --no-scm, add, no-op status, push to a folder and to S3 (moto), pull
    into a fresh project; then change set I, status, add (v2) and the cache growth."""
    if ctx.dvc_cmd is None:
        notes.append(f"{ctx.dvc_skipped}: DVC peer skipped")
        return {"skipped": ctx.dvc_skipped}, None
    dvc_cmd, s3 = ctx.dvc_cmd, ctx.s3
    proj = root / "dvc"
    clone = root / "dvc-clone"
    store = root / "dvc-remote"
    proj.mkdir()
    copy_tree(src, proj / "data")
    # No AWS_* credentials here: DVC finds them in the S3 remote's config.
    env = dict(os.environ, DVC_NO_ANALYTICS="1", AWS_EC2_METADATA_DISABLED="true")
    out: dict[str, Any] = {"cmd": dvc_cmd}

    def dvcr(name: str, *args: str, cwd: Path = proj) -> Measurement:
        m = ctx.runner.run(name, [*dvc_cmd, *args], cwd, env=env, dataset=label)
        out[name] = m.to_dict()
        return m

    cache = proj / ".dvc" / "cache"
    dvcr("dvc init", "init", "--no-scm", "-q")
    dvcr("dvc add", "add", "data")
    out["cache_v1"] = du(cache)
    dvcr("dvc status (no-op, 1st)", "status")
    dvcr("dvc status (no-op)", "status")
    dvcr("dvc remote add", "remote", "add", "-d", "bench", str(store))
    dvcr("dvc push", "push")
    out["remote_bytes"] = du(store)["apparent_bytes"]
    if s3 is not None:
        # Endpoint and credentials in the remote's config, as a user of a private S3 would.
        url = f"s3://{s3_bucket(label)}/dvc"
        dvcr("dvc remote add (s3)", "remote", "add", "s3", url)
        for key, value in (("endpointurl", s3.endpoint), ("access_key_id", S3_KEY),
                           ("secret_access_key", S3_SECRET)):
            dvcr(f"dvc remote modify (s3 {key})", "remote", "modify", "s3", key, value)
        mark = s3.mark()
        dvcr("dvc push (s3)", "push", "-r", "s3")
        out["dvc push (s3)"].update(s3.since(mark))
        out["s3_remote_bytes"] = s3.size(url.removeprefix("s3://"))
    # A fresh clone of the tracked folder: a new project with the same config and .dvc file.
    clone.mkdir()
    dvcr("dvc init (clone)", "init", "--no-scm", "-q", cwd=clone)
    for rel in (".dvc/config", "data.dvc"):
        if (proj / rel).is_file():
            (clone / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(proj / rel, clone / rel)
    pull = dvcr("dvc pull", "pull", cwd=clone)
    out["pull_matches_data"] = None
    if pull.ok:
        out["pull_matches_data"] = (clone / "data").is_dir() and tree_digest(clone / "data") == digest
        if not out["pull_matches_data"]:
            notes.append("dvc pull output differs from the data")
    shutil.rmtree(clone, ignore_errors=True)
    shutil.rmtree(store, ignore_errors=True)
    # v2: the same change set, then what DVC stores for it.
    change = apply_changes(proj / "data", ctx.seed)
    dvcr("dvc status (changed)", "status")
    dvcr("dvc add (v2)", "add", "data")
    out["cache_v2"] = du(cache)
    out["cache_growth_disk_bytes"] = out["cache_v2"]["disk_bytes"] - out["cache_v1"]["disk_bytes"]
    shutil.rmtree(proj, ignore_errors=True)
    return out, change


def bench_dataset(
    label: str,
    work: Path,
    make: Callable[[Path], DatasetInfo],
    ctx: Ctx,
    full: bool = True,
) -> dict[str, Any]:
    """Generate one data set and time ds and the peers on it.

    ``full=False`` (S1M): ds, cp -r, tar | zstd and git only, each peer once; no remotes,
    s3fs, DVC or git-lfs."""
    runner = ctx.runner
    s3 = ctx.s3 if full else None
    root = work / label
    src = root / "src"
    root.mkdir(parents=True)
    t0 = time.perf_counter()
    info = make(src)
    gen_s = time.perf_counter() - t0
    runner.log(f"[{label}] generated {info.files} files, {info.bytes / MIB:.1f} MiB "
               f"in {gen_s:.1f}s")
    res: dict[str, Any] = {"dataset": info.to_dict(), "generate_s": gen_s, "notes": []}
    notes: list[str] = res["notes"]
    data_bytes = info.bytes
    repeat = ctx.repeat if full else 1

    # ---------------- peers on the pristine data ----------------
    peers: dict[str, Any] = {}

    def cp_once() -> Measurement:
        m = runner.run("cp -r", ["cp", "-r", str(src), str(root / "cp")], root, dataset=label)
        shutil.rmtree(root / "cp", ignore_errors=True)
        return m

    _, peers["cp_r"] = median_of(repeat, cp_once)

    tar_out = root / "peer.tar.zst"
    if shutil.which("zstd") and shutil.which("tar"):
        script = f"tar -cf - . | zstd -T0 -3 > {shlex.quote(str(tar_out))}"
        tar_bytes: list[int | None] = []

        def tar_once() -> Measurement:
            m = runner.run("tar | zstd -3", ["sh", "-c", script], src, dataset=label)
            tar_bytes.append(tar_out.stat().st_size if tar_out.exists() else None)
            tar_out.unlink(missing_ok=True)
            return m

        _, peers["tar_zstd"] = median_of(repeat, tar_once)
        peers["tar_zstd"]["output_bytes"] = tar_bytes[-1]
    else:
        peers["tar_zstd"] = None
        notes.append("tar | zstd skipped: zstd (or tar) binary not found")
        runner.log(f"  [{label}] tar | zstd skipped (zstd not found)")

    # ---------------- remote peers: s3fs put/get, DVC; git-lfs ----------------
    bucket = s3_bucket(label)
    peer_changes: list[tuple[str, ChangeStats | None]] = []
    peers["s3fs_put"] = peers["s3fs_get"] = None
    digest_v1 = tree_digest(src) if full else ""
    if full:
        if s3 is not None:
            s3.new_bucket(bucket)
            peers["s3fs_put"], peers["s3fs_get"] = bench_s3fs(label, root, src, bucket, runner, s3,
                                                              digest_v1, data_bytes, notes)
        peers["dvc"], dvc_change = bench_dvc(label, root, src, ctx, digest_v1, notes)
        peers["git_lfs"], lfs_change = bench_git_lfs(label, root, src, ctx, notes)
        peer_changes += [("dvc", dvc_change), ("git-lfs", lfs_change)]
    else:
        skipped = f"not run on {label} (remotes, s3fs, DVC and git-lfs are skipped at this scale)"
        peers["dvc"] = {"skipped": skipped}
        peers["git_lfs"] = {"skipped": skipped}
        notes.append(f"{label}: remotes, s3fs, DVC and git-lfs skipped; peers are cp -r, "
                     "tar | zstd and git, each run once")

    # ---------------- copies for ds and git ----------------
    ds_dir = root / "ds"
    git_dir = root / "git"
    copy_tree(src, ds_dir)
    copy_tree(src, git_dir)
    if not ctx.keep:
        shutil.rmtree(src)

    # ---------------- ds ----------------
    ds: dict[str, Any] = {}

    def dsr(name: str, *args: str, cwd: Path = ds_dir) -> Measurement:
        m = runner.run(name, [*ctx.ds_cmd, *args], cwd, dataset=label)
        ds[name] = m.to_dict()
        return m

    dsr("ds --help (startup)", "--help")
    dsr("ds init", "init")
    add1 = dsr("ds add (v1)", "add", ".")
    com1 = dsr("ds commit (v1)", "commit", "-m", "v1")
    ds["add_commit_v1"] = combine("ds add+commit (v1)", [add1, com1])
    dsr("ds status (no-op, 1st)", "status")
    dsr("ds status (no-op)", "status")
    ds["store_v1"] = du(ds_dir / STORE_DIR)

    # ---------------- ds remotes, v1: push, clone ----------------
    remote: dict[str, Any] = {}
    targets = [("folder", str(root / "remote-folder"), [])] if full else []
    if s3 is not None:
        targets.append(("s3", f"s3://{bucket}/ds", s3.ds_options()))

    def rstep(kind: str, name: str, *args: str, cwd: Path = ds_dir) -> Measurement:
        on_s3 = kind == "s3" and s3 is not None
        mark = s3.mark() if on_s3 else None
        m = runner.run(f"{name} ({kind})", [*ctx.ds_cmd, *args], cwd,
                       env=s3.env if on_s3 else None, dataset=label)
        d = m.to_dict()
        if s3 is not None and mark is not None:
            d.update(s3.since(mark))
        if "--json" in args:
            d["transfer"] = transfer_json(m)
            if m.ok and d["transfer"] is None:
                notes.append(f"{name} ({kind}) --json output is not a JSON object")
        remote[kind][name] = d
        return m

    def remote_size(kind: str, url: str) -> int | None:
        if kind == "s3":
            return s3.size(url.removeprefix("s3://")) if s3 is not None else None
        return du(Path(url))["apparent_bytes"]

    for kind, url, opts in targets:
        remote[kind] = {"url": url}
        rstep(kind, "ds remote add", "remote", "add", kind, url, *opts)
        rstep(kind, "ds push (v1)", "push", kind, "--json")
        remote[kind]["size_v1_bytes"] = remote_size(kind, url)
        clone_dir = root / f"clone-{kind}"
        cm = rstep(kind, "ds clone", "clone", url, str(clone_dir), *opts, "--json", cwd=root)
        remote[kind]["clone_matches_v1"] = (
            tree_digest(clone_dir) == digest_v1 if cm.ok and clone_dir.is_dir() else None)
        if remote[kind]["clone_matches_v1"] is False:
            notes.append(f"ds clone ({kind}) differs from the committed v1 tree")

    # growth is measured from here: the v1 pushes above left each remote's index cached in
    # .dsstore/remotes/, which is not what the change set costs
    ds["store_before_change"] = du(ds_dir / STORE_DIR)
    change = apply_changes(ds_dir, ctx.seed)
    dsr("ds status (changed)", "status")
    add2 = dsr("ds add (v2)", "add", ".")
    com2 = dsr("ds commit (v2)", "commit", "-m", "v2")
    ds["add_commit_v2"] = combine("ds add+commit (v2)", [add2, com2])
    ds["store_v2"] = du(ds_dir / STORE_DIR)
    ds["store_growth_disk_bytes"] = (ds["store_v2"]["disk_bytes"]
                                     - ds["store_before_change"]["disk_bytes"])
    ds["store_growth_apparent_bytes"] = (
        ds["store_v2"]["apparent_bytes"] - ds["store_before_change"]["apparent_bytes"])

    diff_m = dsr("ds diff --json", "diff", "HEAD~1", "HEAD", "--json")
    ds["diff_json_valid"] = None
    if diff_m.ok:
        try:
            json.loads(Path(diff_m.stdout_file or "").read_text() or "null")
            ds["diff_json_valid"] = True
        except (OSError, ValueError):
            ds["diff_json_valid"] = False
            notes.append("ds diff --json output is not valid JSON")

    get_dir = root / "ds-get"
    get_m = dsr("ds get", "get", "HEAD", str(get_dir))
    ds["get_matches_worktree"] = None
    if get_m.ok:
        same = get_dir.is_dir() and tree_digest(get_dir) == tree_digest(ds_dir)
        ds["get_matches_worktree"] = same
        if not same:
            notes.append("ds get HEAD output differs from the committed work tree")
    shutil.rmtree(get_dir, ignore_errors=True)

    # ---------------- ds remotes, v2: incremental push, pull in the clone ----------------
    digest_v2 = tree_digest(ds_dir) if targets else None
    for kind, url, _opts in targets:
        rstep(kind, "ds push (v2)", "push", kind, "--json")
        remote[kind]["size_v2_bytes"] = remote_size(kind, url)
        clone_dir = root / f"clone-{kind}"
        remote[kind]["pull_matches_v2"] = None
        if clone_dir.is_dir():
            pm = rstep(kind, "ds pull", "pull", "--json", cwd=clone_dir)
            if pm.ok:
                remote[kind]["pull_matches_v2"] = tree_digest(clone_dir) == digest_v2
                if not remote[kind]["pull_matches_v2"]:
                    notes.append(f"ds pull ({kind}) in the clone differs from the v2 tree")
        shutil.rmtree(clone_dir, ignore_errors=True)
    if full and s3 is None:
        remote["s3"] = None

    # ---------------- git ----------------
    peers["git"], git_change = bench_git_repo(label, git_dir, ctx)
    peer_changes.append(("git", git_change))
    for tool, other in peer_changes:
        if other is not None and other.to_dict() != change.to_dict():
            notes.append(f"change set differed between the ds and {tool} copies")

    if not ctx.keep:
        shutil.rmtree(root, ignore_errors=True)

    res["change"] = change.to_dict()
    res["ds"] = ds
    res["remote"] = remote
    res["peers"] = peers
    res["ratios"] = compute_ratios(ds, peers, change, data_bytes, remote)
    return res


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


def compute_ratios(
    ds: dict[str, Any],
    peers: dict[str, Any],
    change: ChangeStats,
    data_bytes: int,
    remote: dict[str, Any] | None = None,
) -> dict[str, Any]:
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
    return {
        "ds_add_commit_over_cp_r": _ratio(ds_ac1, _wall(cp)),
        "ds_add_commit_over_git_add_commit": _ratio(ds_ac1, _wall(git["add_commit_v1"])),
        "ds_add_commit_v2_over_git_v2": _ratio(ds_ac2, _wall(git["add_commit_v2"])),
        "ds_status_over_git_status": _ratio(ds_noop, _wall(git["git status (no-op)"])),
        "ds_get_over_cp_r": _ratio(_wall(ds["ds get"]), _wall(cp)),
        "ds_add_commit_mib_s": _ratio(ds_tput, float(MIB)),
        "tar_zstd_mib_s": _ratio(tar_tput, float(MIB)),
        "ds_throughput_over_tar_zstd": _ratio(ds_tput, tar_tput),
        "store_growth_over_bytes_changed": _ratio(growth, change.bytes_changed),
        "store_growth_apparent_over_bytes_changed": _ratio(growth_app, change.bytes_changed),
        "store_growth_over_bytes_touched": _ratio(growth, change.bytes_touched),
        "git_growth_over_bytes_changed": _ratio(git["repo_growth_disk_bytes"],
                                                change.bytes_changed),
        "dvc_cache_growth_over_bytes_changed": _ratio(dvc_growth, change.bytes_changed),
        "git_lfs_growth_over_bytes_changed": _ratio(lfs_growth, change.bytes_changed),
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
        **remote_ratios(remote or {}, peers, change, data_bytes),
    }


def remote_ratios(
    remote: dict[str, Any],
    peers: dict[str, Any],
    change: ChangeStats,
    data_bytes: int,
) -> dict[str, Any]:
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
            sent(kind, "ds push (v2)", "bytes_sent"), change.bytes_changed)
        out[f"pull_bytes_over_bytes_changed_{kind}"] = _ratio(
            sent(kind, "ds pull", "bytes_received"), change.bytes_changed)
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
    return (f"| {tool} | {m['wall_s']:.3f} | {m['cpu_s']:.3f} | "
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
    return (f"| {tool} | {m['wall_s']:.3f} | {m['cpu_s']:.3f} | "
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
    lines += ["| target | set | bound | measured | result |", "| --- | --- | ---: | ---: | --- |"]
    for r in rows:
        verdict = margin_text(r)
        if r["met"] is not None:
            verdict = f"**{verdict}**" if not r["met"] else verdict
        value = "n/a" if r["value"] is None else f"{r['value']:.3g}"
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


def to_markdown(results: dict[str, Any], chart: str | None = None) -> str:
    mi = results["machine"]
    cfg = results["config"]
    lines = [
        "# objstore benchmark results",
        "",
        f"- date: {mi['date']}",
        f"- machine: nproc {mi['nproc']}, {mi['cpu_model'] or 'unknown CPU'}, "
        f"{mi['mem_total_mib']} MiB RAM, {mi['platform']}",
        f"- python {mi['python']}; {mi['git'] or 'git: n/a'}; "
        f"{(mi['zstd'] or 'zstd: n/a').strip('* ')}",
        f"- ds command: `{shlex.join(mi['ds_cmd'])}` ({mi['ds_version'] or 'version n/a'}); "
        f"repo {mi.get('repo_commit') or 'n/a'}",
        f"- scale: {'quick' if cfg['quick'] else 'full'}; S = {cfg['small_files']} files, "
        f"L = 2 x {cfg['large_mib']} MiB"
        f"{f'; S1M = {m} files' if (m := cfg.get('million_files')) else ''}; seed {cfg['seed']}; total run "
        f"{results['total_wall_s']:.1f}s",
        *[f"- note: {n}" for n in results.get("notes", [])],
        "- timings: warm page cache, one run each; CPU = user+sys of the command and "
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
            "| ratio | value |",
            "| --- | ---: |",
        ]
        for key, text, *fmt in RATIO_LABELS + REMOTE_RATIO_LABELS:
            value = res["ratios"].get(key)
            if value is not None or not _not_run(key, res):
                lines.append(f"| {text} | {_f(value, *fmt)} |")
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
            lines.append(f"- **{e['dataset']} / {e['step']}** (`{shlex.join(e['cmd'])}`): {err}")
        lines.append("")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
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
    p.add_argument("--repeat", type=int, default=None,
                   help="runs of the stateless peers (cp -r, tar|zstd), median kept "
                        "(default 3, quick 1; S1M 1)")
    p.add_argument("--workdir", default=None, help="parent of the temp dir (default $TMPDIR)")
    p.add_argument("--keep", action="store_true", help="keep the temp dir and logs")
    p.add_argument("--no-s3", action="store_true",
                   help="skip the S3 part (moto server, ds and dvc push to S3, s3fs peers)")
    p.add_argument("--no-dvc", action="store_true", help="skip the DVC peer")
    p.add_argument("--no-git-lfs", action="store_true", help="skip the git-lfs peer")
    p.add_argument("--render", metavar="RESULTS_JSON", default=None,
                   help="run nothing: redo the targets, the Markdown (--md) and the chart from a "
                        "results file (after a change to the targets)")
    a = p.parse_args(argv)
    if a.render:
        return render(Path(a.render), Path(a.md), a.chart, draw=not a.no_chart)

    small_files = a.small_files or (QUICK_SMALL_FILES if a.quick else DEFAULT_SMALL_FILES)
    large_mib = a.large_mib or (QUICK_LARGE_MIB if a.quick else DEFAULT_LARGE_MIB)
    million_files = a.million_files or MILLION_FILES
    timeout = a.timeout or (120.0 if a.quick else 600.0)
    million_timeout = a.timeout or MILLION_TIMEOUT
    repeat = a.repeat or (1 if a.quick else 3)
    ds_cmd = shlex.split(os.environ.get("DS_CMD", "ds")) or ["ds"]
    sets = [s.strip().upper() for s in a.sets.split(",") if s.strip()]
    if (a.million or a.million_files) and MILLION_SET not in sets:
        sets.append(MILLION_SET)
    for label in sets:
        if label not in ("S", "L", MILLION_SET):
            p.error(f"unknown data set {label!r}")

    t_start = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="objstore-bench-", dir=a.workdir)).resolve()
    log_dir = work / "logs"
    log_dir.mkdir()
    helper, rss_method = build_rusage_helper(work)
    runner = Runner(log_dir, timeout, helper)
    runner.log(f"work dir {work}; ds = {shlex.join(ds_cmd)}; rusage: {rss_method}")
    notes: list[str] = []
    s3, why = (None, "S3 skipped: --no-s3") if a.no_s3 else start_s3(runner)
    if why:
        notes.append(why)
        runner.log(why)
    dvc_cmd = None if a.no_dvc else find_dvc()
    git_lfs = None if a.no_git_lfs else find_git_lfs()
    remotes_info = {
        "s3_server": (f"{_package_version('moto') or 'moto'} ThreadedMotoServer at {s3.endpoint}"
                      if s3 else None),
        "s3fs": (_package_version("s3fs") or "").removeprefix("s3fs ") or None,
        "dvc_cmd": dvc_cmd,
        "dvc": _version([*dvc_cmd, "--version"]) if dvc_cmd else None,
        "git_lfs": git_lfs,
    }
    results: dict[str, Any] = {
        "schema": 2,
        "machine": {**machine_info(ds_cmd, work), "rss_method": rss_method, **remotes_info},
        "config": {"quick": a.quick, "small_files": small_files, "large_mib": large_mib,
                   "million_files": million_files if MILLION_SET in sets else None,
                   "seed": a.seed, "timeout_s": timeout, "sets": sets,
                   "repeat": repeat, "s3": s3 is not None, "dvc": dvc_cmd is not None,
                   "git_lfs": git_lfs is not None},
        "notes": notes,
        "datasets": {},
        "errors": runner.errors,
    }
    makers: dict[str, Callable[[Path], DatasetInfo]] = {
        "S": lambda d: generate_small(d, n_files=small_files, seed=a.seed),
        "L": lambda d: generate_large(d, size=large_mib * MIB, seed=a.seed),
        MILLION_SET: lambda d: generate_million(d, n_files=million_files, seed=a.seed),
    }
    ctx = Ctx(runner, ds_cmd, a.seed, a.keep, repeat, s3, dvc_cmd, git_lfs is not None)
    if a.no_dvc:
        ctx.dvc_skipped = "--no-dvc"
    if a.no_git_lfs:
        ctx.git_lfs_skipped = "--no-git-lfs"
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


def render(source: Path, md: Path, chart: str | None, draw: bool = True) -> int:
    """Targets, Markdown and chart again from a results file: derived figures that file
    lacks (a target added since it ran) are computed from its steps. The chart is drawn
    only with ``draw`` and matplotlib installed."""
    results = json.loads(source.read_text())
    for d in results.get("datasets", {}).values():
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


if __name__ == "__main__":
    sys.exit(main())

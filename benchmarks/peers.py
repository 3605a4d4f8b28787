"""The tools ds is measured against, set up and run on their own copy of the data.

``cp -r`` and ``tar | zstd`` (copies), git and git-lfs (add+commit, status, the change set),
DVC (add, status, push to a folder and to S3, pull into a fresh project, v2 and its cache
growth), s3fs (put and get of the raw files), and the S3 server they and ds push to: moto's,
in a thread of this process, counting the requests it serves.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import re
import resource
import shlex
import shutil
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.generate import ChangeStats, apply_changes, list_data_files, tree_digest
from benchmarks.harness import Measurement, Runner, Steps, copy_tree, du, growth, median_of, tool_version

GIT_FLAGS = [
    "-c", "user.name=objstore-bench",
    "-c", "user.email=bench@example.invalid",
    "-c", "init.defaultBranch=main",
    "-c", "commit.gpgsign=false",
    "-c", "gc.auto=0",  # no background auto-gc/maintenance skewing timings
    "-c", "maintenance.auto=false",
    "-c", "core.hooksPath=/dev/null",
]
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


# --------------------------------------------------------------------------
# S3: moto's server in this process
# --------------------------------------------------------------------------


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


def s3_bucket(label: str) -> str:
    return f"bench-{label.lower()}"


# --------------------------------------------------------------------------
# Which peers there are
# --------------------------------------------------------------------------


def find_dvc() -> list[str] | None:
    if os.environ.get("DVC_CMD"):
        return shlex.split(os.environ["DVC_CMD"])
    if shutil.which("dvc"):
        return ["dvc"]
    if importlib.util.find_spec("dvc") is not None:
        return [sys.executable, "-m", "dvc"]
    return None


def find_git_lfs() -> str | None:
    """git-lfs's version line when ``git lfs`` works, else None."""
    if shutil.which("git-lfs") is None or shutil.which("git") is None:
        return None
    return tool_version(["git", "lfs", "version"])


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
    rounds: int = 1  # paired rounds per data set (ds and the peers, alternating)


@dataclass
class DataSet:
    """One data set being measured: its folder, what every step shares, its notes."""

    label: str
    root: Path  # the generated data (src/), each tool's copy, the remotes and clones
    ctx: Ctx
    notes: list[str]
    digest: str = ""  # tree digest of the generated data (only where a peer checks a copy)
    data_bytes: int = 0
    source: Path | None = None  # the data when it is not under root (a round's folder)

    @property
    def src(self) -> Path:
        return self.source or self.root / "src"

    @property
    def runner(self) -> Runner:
        return self.ctx.runner


def same_tree(m: Measurement | dict[str, Any], folder: Path, digest: str | None,
              notes: list[str], differs: str) -> bool | None:
    """Whether step ``m`` left ``folder`` holding the tree ``digest`` (None when the step
    failed); when it did not, the note ``differs``."""
    if not (m.ok if isinstance(m, Measurement) else m["ok"]):
        return None
    same = folder.is_dir() and tree_digest(folder) == digest
    if not same:
        notes.append(differs)
    return same


# --------------------------------------------------------------------------
# The peers
# --------------------------------------------------------------------------


def bench_copies(d: DataSet, repeat: int) -> dict[str, Any]:
    """``cp -r`` and ``tar -cf - . | zstd -T0 -3`` of the data, each the median of ``repeat``."""
    label, root, src, runner = d.label, d.root, d.src, d.runner
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
        d.notes.append("tar | zstd skipped: zstd (or tar) binary not found")
        runner.log(f"  [{label}] tar | zstd skipped (zstd not found)")
    return peers


def bench_s3fs(d: DataSet, s3: MotoS3, bucket: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """s3fs put of the raw files to s3://BUCKET/raw/, then get back into a new folder."""

    def peer(name: str, *args: str) -> dict[str, Any]:
        mark = s3.mark()
        m = d.runner.run(name, [sys.executable, "-c", S3FS_PEER, args[0], s3.endpoint, S3_KEY,
                                S3_SECRET, *args[1:]], d.root, env=s3.env, dataset=d.label)
        return m.to_dict() | s3.since(mark)

    put = peer("s3fs put", "put", str(d.src), f"{bucket}/raw/")
    put["bytes_sent"] = d.data_bytes  # the raw files, as they are
    got = d.root / "s3fs-get"
    get = peer("s3fs get", "get", f"{bucket}/raw/{d.src.name}/", f"{got}/")
    get["matches_data"] = same_tree(get, got, d.digest, d.notes, "s3fs get output differs from the data")
    shutil.rmtree(got, ignore_errors=True)
    return put, get


def git_env() -> dict[str, str]:
    """No system/global git config: the same git for every run."""
    return dict(os.environ, GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull, LC_ALL="C")


def lfs_patterns(src: Path) -> list[str]:
    """One ``git lfs track`` pattern per file extension of the data (the file name if none)."""
    return sorted({f"*{Path(rel).suffix}" if Path(rel).suffix else rel
                   for rel in list_data_files(src)})


def bench_git_repo(d: DataSet, repo: Path, tool: str = "git",
                   setup: tuple[tuple[str, ...], ...] = ()) -> tuple[dict[str, Any], ChangeStats]:
    """git on its own copy of the data: init (+ ``setup`` steps), add+commit v1, no-op
    status, change set I, status, add+commit v2; .git (and .git/lfs) sizes."""
    git = Steps(d.runner, d.label, ["git", *GIT_FLAGS], repo, git_env())
    out = git.out
    lfs_dir = repo / ".git" / "lfs"

    def add_commit(v: str) -> None:
        git.add_commit(f"add_commit_{v}", f"{tool} add+commit ({v})", (f"{tool} add -A ({v})", "add", "-A"),
                       (f"{tool} commit ({v})", "commit", "-q", "-m", v))
        out[f"repo_{v}"] = du(repo / ".git")
        if lfs_dir.is_dir():
            out[f"lfs_{v}"] = du(lfs_dir)

    git(f"{tool} init", "init", "-q")
    for name, *args in setup:
        git(name, *args)
    add_commit("v1")
    git(f"{tool} status (no-op, 1st)", "status")
    git(f"{tool} status (no-op)", "status")
    change = apply_changes(repo, d.ctx.seed)
    git(f"{tool} status (changed)", "status")
    add_commit("v2")
    out["repo_growth_disk_bytes"] = growth(out["repo_v2"], out["repo_v1"])
    return out, change


def bench_git_lfs(d: DataSet) -> tuple[dict[str, Any], ChangeStats | None]:
    """git with ``git lfs track`` on every data file pattern (``.git/lfs`` holds the bytes)."""
    if not d.ctx.git_lfs:
        d.notes.append(f"{d.ctx.git_lfs_skipped}: git-lfs peer skipped")
        return {"skipped": d.ctx.git_lfs_skipped}, None
    repo = d.root / "git-lfs"
    copy_tree(d.src, repo)
    patterns = lfs_patterns(d.src)
    setup = (("git-lfs install", "lfs", "install", "--local", "--skip-repo"),
             ("git-lfs track", "lfs", "track", *patterns))
    out, change = bench_git_repo(d, repo, "git-lfs", setup)
    out["patterns"] = patterns
    shutil.rmtree(repo, ignore_errors=True)
    return out, change


def bench_dvc(d: DataSet) -> tuple[dict[str, Any], ChangeStats | None]:
    """DVC peer: init --no-scm, add, no-op status, push to a folder and to S3 (moto), pull
    into a fresh project; then change set I, status, add (v2) and the cache growth."""
    ctx = d.ctx
    if ctx.dvc_cmd is None:
        d.notes.append(f"{ctx.dvc_skipped}: DVC peer skipped")
        return {"skipped": ctx.dvc_skipped}, None
    proj = d.root / "dvc"
    clone = d.root / "dvc-clone"
    store = d.root / "dvc-remote"
    proj.mkdir()
    copy_tree(d.src, proj / "data")
    # No AWS_* credentials here: DVC finds them in the S3 remote's config.
    env = dict(os.environ, DVC_NO_ANALYTICS="1", AWS_EC2_METADATA_DISABLED="true")
    dvc = Steps(d.runner, d.label, ctx.dvc_cmd, proj, env, {"cmd": ctx.dvc_cmd})
    out = dvc.out
    cache = proj / ".dvc" / "cache"
    dvc("dvc init", "init", "--no-scm", "-q")
    dvc("dvc add", "add", "data")
    out["cache_v1"] = du(cache)
    dvc("dvc status (no-op, 1st)", "status")
    dvc("dvc status (no-op)", "status")
    dvc("dvc remote add", "remote", "add", "-d", "bench", str(store))
    dvc("dvc push", "push")
    out["remote_bytes"] = du(store)["apparent_bytes"]
    if ctx.s3 is not None:
        _dvc_push_s3(dvc, ctx.s3, s3_bucket(d.label))
    # A fresh clone of the tracked folder: a new project with the same config and .dvc file.
    clone.mkdir()
    dvc("dvc init (clone)", "init", "--no-scm", "-q", cwd=clone)
    for rel in (".dvc/config", "data.dvc"):
        if (proj / rel).is_file():
            (clone / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(proj / rel, clone / rel)
    pull = dvc("dvc pull", "pull", cwd=clone)
    out["pull_matches_data"] = same_tree(pull, clone / "data", d.digest, d.notes,
                                         "dvc pull output differs from the data")
    shutil.rmtree(clone, ignore_errors=True)
    shutil.rmtree(store, ignore_errors=True)
    # v2: the same change set, then what DVC stores for it.
    change = apply_changes(proj / "data", ctx.seed)
    dvc("dvc status (changed)", "status")
    dvc("dvc add (v2)", "add", "data")
    out["cache_v2"] = du(cache)
    out["cache_growth_disk_bytes"] = growth(out["cache_v2"], out["cache_v1"])
    shutil.rmtree(proj, ignore_errors=True)
    return out, change


def _dvc_push_s3(dvc: Steps, s3: MotoS3, bucket: str) -> None:
    """``dvc push -r s3`` to the moto server, with the requests it served. The endpoint and
    credentials are in the remote's config, as a user of a private S3 would set them."""
    url = f"s3://{bucket}/dvc"
    dvc("dvc remote add (s3)", "remote", "add", "s3", url)
    for key, value in (("endpointurl", s3.endpoint), ("access_key_id", S3_KEY),
                       ("secret_access_key", S3_SECRET)):
        dvc(f"dvc remote modify (s3 {key})", "remote", "modify", "s3", key, value)
    mark = s3.mark()
    dvc("dvc push (s3)", "push", "-r", "s3")
    dvc.out["dvc push (s3)"].update(s3.since(mark))
    dvc.out["s3_remote_bytes"] = s3.size(url.removeprefix("s3://"))

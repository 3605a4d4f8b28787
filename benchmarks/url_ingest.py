"""Adding from object storage: ``add_url`` of an S3 prefix, in this process, on a Dask
cluster of 1 and 2 local workers, and straight into an S3 remote, against a plain copy of
the prefix to local disk (s3fs ``get``).

moto's S3 server runs in a process of its own on 127.0.0.1 (so it does not share this
process's GIL with the client) behind a WSGI wrapper that counts every request it serves by
kind: those of this process, of s3fs and of the Dask workers alike. The data set is S's
(``generate.generate_small``) plus L's two files (``generate.generate_large``), written to
local disk once, added there once as the reference version, and uploaded to a bucket.

    python -m benchmarks.url_ingest [--objects N] [--large-mib M] [--rounds R] [--md PATH]
                                    [--json PATH] [--quick] [--seed N] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import gc
import importlib.metadata
import json
import math
import multiprocessing
import os
import platform
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from benchmarks.generate import MIB, generate_large, generate_small

KEY = SECRET = "test"
SOURCE_BUCKET = "bench-src"
SOURCE_PREFIX = "data"
TO = "raw"  # the folder every variant adds the prefix as
STEPS = ("peer", "ds", "ds_local1", "ds_local2", "ds_remote")
LABELS = {
    "peer": "copy: s3fs get (the reference)",
    "ds": "ds add, in process",
    "ds_local1": "ds add --dask local:1",
    "ds_local2": "ds add --dask local:2",
    "ds_remote": "ds add --into-remote, in process",
}
CLUSTERS = {"ds_local1": "local:1", "ds_local2": "local:2"}
KINDS = ("GET", "HEAD", "PUT", "LIST", "POST", "DELETE", "other")


# -- the server ------------------------------------------------------------------------------------

def request_kind(method: str, path: str, query: str) -> str:
    """What an S3 request is, from its method and path-style URL: a GET of a bucket (no key)
    is a listing; anything but GET/HEAD/PUT/POST/DELETE is "other"."""
    keyless = len([p for p in path.split("/") if p]) <= 1
    if method == "GET" and keyless:
        listing = not query or any(k in query for k in ("list-type", "prefix", "delimiter"))
        return "LIST" if listing else "other"
    return method if method in KINDS else "other"


def _serve(conn: Any) -> None:
    """The server process: moto's app behind the counter, until the parent says stop."""
    import logging
    import threading

    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
    counts: Counter[str] = Counter()
    lock = threading.Lock()
    app = DomainDispatcherApplication(create_backend_app)

    def counted(environ: dict, start_response: Callable) -> Any:
        kind = request_kind(environ["REQUEST_METHOD"], environ.get("PATH_INFO", ""),
                            environ.get("QUERY_STRING", ""))
        with lock:
            counts[kind] += 1
        return app(environ, start_response)

    server = make_server("127.0.0.1", 0, counted, threaded=True, request_handler=MotoRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    conn.send(server.server_address[1])
    while conn.recv() == "counts":
        with lock:
            snapshot = dict(counts)
        ru = resource.getrusage(resource.RUSAGE_SELF)
        conn.send((snapshot, ru.ru_utime + ru.ru_stime))
    server.shutdown()
    conn.send("stopped")


class S3Server:
    """moto's S3 server in a child process; ``mark``/``since`` give the requests it served
    (by kind) and the CPU time it spent in between."""

    def __init__(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(child,), daemon=True)
        self._proc.start()
        child.close()  # the child's end lives on in the child only: its death reads as EOF here
        try:
            if not self._conn.poll(120):
                raise TimeoutError
            port = self._conn.recv()
        except (EOFError, TimeoutError):
            self._proc.kill()
            raise RuntimeError("the moto S3 server did not start (its error is above, if any); "
                               "check that moto[server] is installed") from None
        self.endpoint = f"http://127.0.0.1:{port}"
        self.options = {"endpoint_url": self.endpoint, "key": KEY, "secret": SECRET}

    def fs(self) -> Any:
        """A new s3fs client (no cached instance, no cached listing)."""
        import s3fs

        return s3fs.S3FileSystem(**self.options, skip_instance_cache=True)

    def mark(self) -> tuple[dict[str, int], float]:
        self._conn.send("counts")
        return self._conn.recv()

    def since(self, mark: tuple[dict[str, int], float]) -> dict[str, Any]:
        counts, cpu = self.mark()
        by_kind = {k: counts.get(k, 0) - mark[0].get(k, 0) for k in KINDS}
        return {"requests": {k: v for k, v in by_kind.items() if v or k in ("GET", "HEAD", "PUT", "LIST")},
                "requests_total": sum(by_kind.values()), "server_cpu_s": cpu - mark[1]}

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self._conn.send("stop")
            self._conn.poll(30) and self._conn.recv()
        self._proc.join(30)
        if self._proc.is_alive():
            self._proc.kill()


# -- the data --------------------------------------------------------------------------------------

def make_source(server: S3Server, work: Path, objects: int, large_mib: int, seed: int) -> dict[str, Any]:
    """S (``objects`` small files) and L (two files of ``large_mib`` MiB) under work/local/raw,
    its tree as a local ``ds add`` stages it, and the same files uploaded under the source
    prefix."""
    from objstore.store import Store
    from objstore.worktree import add

    root = work / "local"
    data = root / TO
    small = generate_small(data, objects, seed)
    large = generate_large(data / "large", large_mib * MIB, seed)
    store = Store.init(root)
    try:
        t0 = time.perf_counter()
        add(store, [TO], cwd=str(root))
        local_add_s = time.perf_counter() - t0
        tree = store.staged_tree()
    finally:
        store.close()
    fs = server.fs()
    fs.mkdir(SOURCE_BUCKET)
    fs.put(str(data), f"{SOURCE_BUCKET}/{SOURCE_PREFIX}", recursive=True)
    found = fs.find(f"{SOURCE_BUCKET}/{SOURCE_PREFIX}", detail=True)
    total = small.bytes + large.bytes
    uploaded = sum(int(i["size"]) for i in found.values())
    if len(found) != objects + 2 or uploaded != total:
        raise RuntimeError(f"upload: {len(found)} objects of {uploaded} bytes in the bucket, "
                           f"{objects + 2} of {total} expected")
    shutil.rmtree(root)
    return {"objects": objects + 2, "small_objects": objects, "large_mib": large_mib,
            "bytes": total, "seed": seed, "local_tree": tree, "local_add_s": local_add_s}


# -- the steps -------------------------------------------------------------------------------------

def round_order(round_no: int) -> list[str]:
    """Steps in order in odd rounds, reversed in even ones (1-based)."""
    return list(STEPS) if round_no % 2 else list(reversed(STEPS))


def cluster_startup(spec: str) -> float:
    """Seconds to start the cluster ``spec``, run one trivial task and stop it: the part of
    an add on that cluster that does not depend on the data."""
    from objstore.cluster import run_tasks

    t0 = time.perf_counter()
    run_tasks(spec, abs, [(-1,)])
    return time.perf_counter() - t0


def _fresh() -> None:
    """Each step starts like a new command: no cached s3fs client or listing."""
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
    gc.collect()


def run_peer(server: S3Server, folder: Path) -> dict[str, Any]:
    _fresh()
    fs = server.fs()
    mark = server.mark()
    t0 = time.perf_counter()
    fs.get(f"{SOURCE_BUCKET}/{SOURCE_PREFIX}", str(folder / "copy"), recursive=True)
    record = {"wall_s": time.perf_counter() - t0, **server.since(mark)}
    files = [p for p in (folder / "copy").rglob("*") if p.is_file()]
    record["copied_objects"] = len(files)
    record["copied_bytes"] = sum(p.stat().st_size for p in files)
    return record


def run_ds(server: S3Server, folder: Path, step: str, round_no: int) -> dict[str, Any]:
    """One ``add_url`` into a fresh store (and, for ds_remote, a fresh target bucket)."""
    from objstore.store import Store
    from objstore.url_ingest import add_url

    cluster = CLUSTERS.get(step)
    record: dict[str, Any] = {}
    if cluster is not None:
        record["cluster_startup_s"] = cluster_startup(cluster)
    store = Store.init(folder / "work")
    target = f"bench-target-{round_no}" if step == "ds_remote" else None
    try:
        if target is not None:
            server.fs().mkdir(target)
            store.set_config(replace(store.config, remote="origin", remotes={
                "origin": {"url": f"s3://{target}/store", "options": server.options}}))
        _fresh()
        mark = server.mark()
        t0 = time.perf_counter()
        report = add_url(store, f"s3://{SOURCE_BUCKET}/{SOURCE_PREFIX}", TO, server.options,
                         cluster=cluster, remote="origin" if target else None)
        record["wall_s"] = time.perf_counter() - t0
        record.update(server.since(mark))
        record.update(tree=store.staged_tree(), objects=report.objects, bytes_read=report.bytes_read,
                      bytes_new=report.bytes_new, tasks=report.tasks)
        if cluster is not None:
            record["wall_after_startup_s"] = record["wall_s"] - record["cluster_startup_s"]
        if target is not None:
            record.update(_packs(server, target, store.config.pack_target))
            record["put_minus_packs"] = record["requests"].get("PUT", 0) - record["packs"]
    finally:
        store.close()
        if target is not None:
            with contextlib.suppress(Exception):
                server.fs().rm(target, recursive=True)
    return record


def _packs(server: S3Server, bucket: str, pack_target: int) -> dict[str, Any]:
    """The packs the remote holds, against the fewest that bytes/pack_target allows."""
    found = server.fs().find(bucket, detail=True)
    sizes = [int(i["size"]) for p, i in found.items() if p.endswith(".pack")]
    stored = sum(sizes)
    return {"packs": len(sizes), "pack_bytes": stored, "pack_target": pack_target,
            "packs_expected": math.ceil(stored / pack_target) if stored else 0,
            "remote_objects": len(found)}


def run_step(server: S3Server, work: Path, step: str, round_no: int) -> dict[str, Any]:
    folder = work / f"round-{round_no}" / step
    folder.mkdir(parents=True)
    try:
        return run_peer(server, folder) if step == "peer" else run_ds(server, folder, step, round_no)
    except Exception as e:  # recorded: the other steps still run, the exit status is 1
        return {"error": f"{type(e).__name__}: {e}"}
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# -- the figures -----------------------------------------------------------------------------------

def spread(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def add_rates(record: dict[str, Any], source: dict[str, Any], peer: dict[str, Any] | None) -> None:
    """MB/s and objects/s of the source, and this round's ratio against its copy."""
    if "wall_s" not in record:
        return
    record["mb_s"] = source["bytes"] / record["wall_s"] / 1e6
    record["objects_s"] = source["objects"] / record["wall_s"]
    if peer is not None and "wall_s" in peer:
        record["over_copy"] = record["wall_s"] / peer["wall_s"]
        if "wall_after_startup_s" in record:
            record["over_copy_after_startup"] = record["wall_after_startup_s"] / peer["wall_s"]


def summarize(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Per step: the median [min, max] over the rounds of every figure."""
    out: dict[str, Any] = {}
    for step in STEPS:
        done = [r["steps"][step] for r in rounds if "error" not in r["steps"][step]]
        errors = [r["steps"][step]["error"] for r in rounds if "error" in r["steps"][step]]
        s: dict[str, Any] = {"label": LABELS[step], "rounds": len(done), "errors": errors}
        for key in ("wall_s", "mb_s", "objects_s", "over_copy", "cluster_startup_s", "wall_after_startup_s",
                    "over_copy_after_startup", "server_cpu_s", "requests_total", "packs", "packs_expected",
                    "pack_bytes", "pack_target", "put_minus_packs", "tasks"):
            got = spread([d[key] for d in done if key in d])
            if got is not None:
                s[key] = got
        kinds = sorted({k for d in done for k in d.get("requests", {})}, key=KINDS.index)
        s["requests"] = {k: spread([d["requests"].get(k, 0) for d in done]) for k in kinds}
        s["trees"] = sorted({d["tree"] for d in done if "tree" in d})
        out[step] = s
    return out


def check_trees(rounds: list[dict[str, Any]], local_tree: str) -> list[str]:
    """Failure lines: every ds variant, every round, must stage the local add's tree."""
    bad = []
    for r in rounds:
        for step, d in r["steps"].items():
            if step != "peer" and d.get("tree") not in (None, local_tree):
                bad.append(f"round {r['round']} {step}: tree {d['tree']} != {local_tree} (local add)")
            if step != "peer" and "error" not in d and "tree" not in d:
                bad.append(f"round {r['round']} {step}: no tree")
    return bad


def machine() -> dict[str, Any]:
    def version(name: str) -> str:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"
    return {"cpu_count": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            **{name: version(name) for name in ("moto", "s3fs", "distributed", "objstore")}}


# -- Markdown --------------------------------------------------------------------------------------

def fmt(s: dict[str, float] | None, digits: int = 2) -> str:
    if s is None:
        return "n/a"
    m, lo, hi = (f"{s[k]:.{digits}f}" for k in ("median", "min", "max"))
    return m if s["n"] == 1 else f"{m} [{lo}–{hi}]"


def render(results: dict[str, Any]) -> str:
    src, steps, mach = results["source"], results["steps"], results["machine"]
    lines = [
        "# Adding from object storage", "",
        f"{mach['cpu_count']} cores (os.cpu_count), Python {mach['python']}, moto {mach['moto']}, "
        f"s3fs {mach['s3fs']}, distributed {mach['distributed']}; {mach['date']}.",
        f"Source: s3://{SOURCE_BUCKET}/{SOURCE_PREFIX}, {src['objects']} objects "
        f"({src['small_objects']} of 1-8 KiB in 200 folders + 2 x {src['large_mib']} MiB), "
        f"{src['bytes'] / 1e6:.1f} MB, on moto's server in its own process on 127.0.0.1. "
        f"{results['rounds']} round(s), the order of the steps alternating; figures are "
        "median [min–max] over the rounds.", "",
        "| step | wall s | MB/s | objects/s | ds / copy | GET | HEAD | PUT | LIST | other | server CPU s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for step in STEPS:
        s = steps[step]
        req = s["requests"]
        other = sum(v["median"] for k, v in req.items() if k not in ("GET", "HEAD", "PUT", "LIST"))
        lines.append(
            f"| {s['label']} | {fmt(s.get('wall_s'))} | {fmt(s.get('mb_s'), 1)} "
            f"| {fmt(s.get('objects_s'), 0)} "
            f"| {'1' if step == 'peer' else fmt(s.get('over_copy'))} "
            + "".join(f"| {fmt(req.get(k), 0)} " for k in ("GET", "HEAD", "PUT", "LIST"))
            + f"| {other:.0f} | {fmt(s.get('server_cpu_s'), 1)} |")
    lines += ["", "Dask cluster start-up (a trivial task on a new cluster, timed just before the add; "
              "the add's wall time above includes its own start-up):", "",
              "| step | start-up s | wall s after start-up | ds / copy after start-up | tasks |",
              "| --- | --- | --- | --- | --- |"]
    for step in CLUSTERS:
        s = steps[step]
        lines.append(f"| {s['label']} | {fmt(s.get('cluster_startup_s'))} "
                     f"| {fmt(s.get('wall_after_startup_s'))} | {fmt(s.get('over_copy_after_startup'))} "
                     f"| {fmt(s.get('tasks'), 0)} |")
    r = steps["ds_remote"]
    lines += ["", "Into the remote: the packs written against the fewest their stored bytes allow, "
              "and the PUTs:", "",
              "| packs | ceil(stored bytes / pack_target) | stored MB | pack_target MiB | PUT "
              "| PUT - packs |",
              "| --- | --- | --- | --- | --- | --- |"]
    if "packs" in r:
        lines.append(f"| {fmt(r['packs'], 0)} | {fmt(r['packs_expected'], 0)} | "
                     f"{r['pack_bytes']['median'] / 1e6:.1f} | {r['pack_target']['median'] / MIB:.0f} "
                     f"| {fmt(r['requests'].get('PUT'), 0)} | {fmt(r['put_minus_packs'], 0)} |")
    else:
        lines.append("| n/a | n/a | n/a | n/a | n/a | n/a |")
    lines += ["", f"Reference: `ds add` of the same files from local disk took {src['local_add_s']:.2f} s "
              f"(once, before the rounds). Tree ids: {results['tree_check']}."]
    errors = [f"- {s['label']}: {e}" for s in steps.values() for e in s["errors"]]
    if errors:
        lines += ["", "Failed steps:", "", *errors]
    return "\n".join(lines) + "\n"


# -- running ---------------------------------------------------------------------------------------

def run(objects: int, large_mib: int, rounds: int, seed: int, workdir: str | None,
        log: Callable[[str], None]) -> dict[str, Any]:
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    server = S3Server()
    try:
        with tempfile.TemporaryDirectory(prefix="ds-url-bench-", dir=workdir) as tmp:
            work = Path(tmp)
            log(f"moto at {server.endpoint}; generating and uploading {objects} + 2 objects")
            source = make_source(server, work, objects, large_mib, seed)
            log(f"source: {source['objects']} objects, {source['bytes'] / 1e6:.1f} MB; "
                f"local add {source['local_add_s']:.2f} s")
            done = []
            for n in range(1, rounds + 1):
                steps: dict[str, Any] = {}
                for step in round_order(n):
                    steps[step] = run_step(server, work, step, n)
                    d = steps[step]
                    log(f"round {n} {step}: " + (d["error"] if "error" in d else
                                                 f"{d['wall_s']:.2f} s, {d['requests_total']} requests"))
                for d in steps.values():
                    add_rates(d, source, steps["peer"])
                done.append({"round": n, "order": round_order(n), "steps": steps})
    finally:
        server.stop()
    bad = check_trees(done, source["local_tree"])
    return {"machine": machine(), "source": source, "rounds": rounds, "per_round": done,
            "steps": summarize(done), "trees_equal": not bad, "tree_failures": bad,
            "tree_check": "all equal to the local add's, " + source["local_tree"] if not bad else "DIFFER"}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.url_ingest", description=__doc__.split("\n\n")[0])
    p.add_argument("--objects", type=int, help="small objects (default 20000; quick 500)")
    p.add_argument("--large-mib", type=int, help="MiB of each of the two large objects (default 64; quick 4)")
    p.add_argument("--rounds", type=int, help="rounds, the steps' order alternating (default 3; quick 1)")
    p.add_argument("--quick", action="store_true", help="1 round, 500 objects, 2 x 4 MiB")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--md", help="write the Markdown here (it is printed either way)")
    p.add_argument("--json", help="write the results here")
    p.add_argument("--workdir", help="parent of the temporary folder (default $TMPDIR)")
    a = p.parse_args(argv)
    objects = a.objects or (500 if a.quick else 20000)
    large_mib = a.large_mib if a.large_mib is not None else (4 if a.quick else 64)
    rounds = a.rounds or (1 if a.quick else 3)

    def log(text: str) -> None:
        print(text, file=sys.stderr, flush=True)
    results = run(objects, large_mib, rounds, a.seed, a.workdir, log)
    md = render(results)
    if a.md:
        Path(a.md).write_text(md)
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    print(md)
    failed = [*results["tree_failures"],
              *(f"{s}: {e}" for s, d in results["steps"].items() for e in d["errors"])]
    for line in failed:
        print(f"FAILED: {line}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

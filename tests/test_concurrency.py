"""Several processes on one store at once: nothing committed is lost."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from objstore import Dataset
from objstore.maintenance import fsck
from objstore.store import Store

from .conftest import DS, write

WORKER = """
import json, os, random, sys
from pathlib import Path
from objstore import Dataset
n, out = int(sys.argv[1]), []
for k in range(3):
    folder = Path(sys.argv[2]) / f"w{n}-{k}"
    rnd = random.Random(n * 100 + k)
    for i in range(40):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{i}").write_bytes(rnd.randbytes(rnd.randint(10, 60000)))
    ds = Dataset.create(dataset_name=f"w{n}", dataset_project="p")
    ds.add_files(folder)
    ds.finalize()
    out.append(ds.id)
print(json.dumps(out))
"""

GC = """
import sys, time
from objstore.store import Store
from objstore.maintenance import gc
s = Store(__import__("pathlib").Path(sys.argv[1]))
for _ in range(15):
    gc(s)
    time.sleep(0.05)
"""


def test_parallel_finalize_and_gc(tmp_path: Path, monkeypatch) -> None:
    store = tmp_path / ".dsstore"
    monkeypatch.setenv("DSSTORE_DIR", str(store))
    Store.create(store)
    env = dict(os.environ, DSSTORE_DIR=str(store))
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, str(n), str(tmp_path)], env=env,
                                stdout=subprocess.PIPE, text=True) for n in range(3)]
    collector = subprocess.Popen([sys.executable, "-c", GC, str(store)], env=env)
    ids = []
    for w in workers:
        out, _ = w.communicate(timeout=300)
        assert w.returncode == 0
        ids.extend(json.loads(out))
    collector.wait(timeout=300)
    assert collector.returncode == 0
    assert len(ids) == 9
    for did in ids:
        ds = Dataset.get(dataset_id=did)
        assert ds.is_final() and ds.verify_dataset_hash() == []
    assert fsck(Store(store), read_data=True).ok


def test_two_processes_committing(tmp_path: Path) -> None:
    work = tmp_path / "w"
    subprocess.run([DS, "init", str(work)], check=True, capture_output=True)
    procs = []
    for n in range(2):
        for i in range(30):
            write(work, f"part{n}/f{i}", os.urandom(2000))
    for n in range(2):
        procs.append(subprocess.Popen(
            ["sh", "-c", f"{DS} add part{n} && {DS} commit -m 'part {n}' || true"], cwd=work,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    for p in procs:
        p.wait(timeout=120)
    subprocess.run([DS, "add", "-A"], cwd=work, check=True, capture_output=True)
    subprocess.run([DS, "commit", "-m", "rest"], cwd=work, capture_output=True)
    log = json.loads(subprocess.run([DS, "log", "--json"], cwd=work, capture_output=True, text=True).stdout)
    assert 1 <= len(log) <= 3
    files = subprocess.run([DS, "status", "--json"], cwd=work, capture_output=True, text=True)
    st = json.loads(files.stdout)
    assert st["added"] == st["modified"] == st["removed"] == []  # everything ended up committed
    assert fsck(Store.open(work), read_data=True).ok

"""Mirroring dataset versions to any fsspec URL (a folder, s3://, gs://, az://).

A remote holds the store's own layout::

    config                  format version and hash (refused if they differ from ours)
    packs/xx/<hex>.pack     chunk packs, copied whole and never rewritten
    index/<hex>.idx         index fragments naming those packs
    meta/pack-<sha>.pack    git packs of metadata (commits, trees, manifests) + .idx
    datasets/<id>.json      dataset records

Order makes it safe: packs, then index fragments, then metadata, then the record, so a
reader never finds a version whose bytes are missing; an interrupted push is resumed
by pushing again (files already there are skipped after one listing per folder, not
one request per object).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pygit2

from .errors import DsError, FormatError
from .index import Location
from .packs import pack_path, read_pack_toc
from .records import RecordStore
from .store import Store

FORMAT = 1


def _fs(url: str):
    import fsspec

    try:
        fs, root = fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as e:
        raise DsError(f"cannot open remote {url}: {e}") from None
    return fs, root.rstrip("/")


def _retry(what: str, fn: Callable, retries: int = 3):
    for attempt in range(retries + 1):
        try:
            return fn()
        except FileNotFoundError:
            raise
        except OSError as e:
            if attempt == retries:
                raise DsError(f"{what} failed after {retries + 1} attempts: {e}") from None
            time.sleep(min(2**attempt * 0.2, 5))
    return None


def _is_local(fs) -> bool:
    protocol = fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
    return bool({"file", "local"} & set(protocol))


def _put(fs, data: bytes | Path, path: str, retries: int = 3) -> None:
    """Write a whole remote file, visible under its name only once complete.

    Object stores publish a PUT atomically; a folder remote gets a temp name and a rename.
    """
    parent = path.rsplit("/", 1)[0]

    def send() -> None:
        target = path
        if _is_local(fs):
            fs.makedirs(parent, exist_ok=True)
            target = f"{parent}/.tmp-{os.getpid()}-{path.rsplit('/', 1)[-1]}"
        if isinstance(data, Path):
            fs.put_file(str(data), target)
        else:
            fs.pipe_file(target, data)
        if target != path:
            fs.mv(target, path)

    _retry(f"upload of {path}", send, retries)


def _listing(fs, folder: str) -> set[str]:
    """Base names of the files under ``folder`` (one listing, however many files)."""
    try:
        return {p.rsplit("/", 1)[-1] for p in fs.find(folder)}
    except FileNotFoundError:
        return set()


def _check_config(store: Store, fs, root: str, create: bool) -> None:
    path = f"{root}/config"
    try:
        raw = fs.cat_file(path)
    except FileNotFoundError:
        if not create:
            raise DsError(f"{root} is not an objstore remote (no config); push to it first") from None
        _put(fs, f'[store]\nformat = {FORMAT}\nhash = "{store.algo.name}"\n'.encode(), path)
        return
    import tomllib

    try:
        cfg = tomllib.loads(raw.decode()).get("store", {})
    except (ValueError, UnicodeDecodeError) as e:
        raise FormatError(f"remote {root}: config is unreadable ({e})") from None
    if cfg.get("format") != FORMAT:
        raise FormatError(f"remote {root} has format {cfg.get('format')!r}; this objstore reads {FORMAT}")
    if cfg.get("hash") != store.algo.name:
        raise FormatError(f"remote {root} uses {cfg.get('hash')}, this store {store.algo.name}; "
                          "a store can only mirror to a remote with the same hash")


def push_dataset(store: Store, record: dict, url: str, retries: int = 3) -> dict:
    """Send what the remote lacks for this version; returns counts of files sent."""
    fs, root = _fs(url)
    _check_config(store, fs, root, create=True)
    meta = store.meta
    if record.get("commit"):
        top = pygit2.Oid(hex=record["commit"])
        tree = meta.tree_of(record["commit"])
    else:
        top = tree = pygit2.Oid(hex=record["tree"])
    needed = {cid for _p, e in meta.walk(tree) for cid, _ in e.chunk_list()}
    packs: set[str] = set()
    for cid in needed:
        loc = store.chunks.locate(cid)
        if loc is None:
            raise DsError(f"chunk {cid.hex()} of dataset {record['id']} is missing locally; run `ds fsck`")
        packs.add(loc.pack)
    sent = {"packs": 0, "index": 0, "meta": 0}
    have = _listing(fs, f"{root}/packs")
    for p in sorted(packs):
        if f"{p}.pack" not in have:
            local = pack_path(store.chunks.packs_dir, p)
            _put(fs, local, f"{root}/packs/{p[:2]}/{p}.pack", retries)
            sent["packs"] += 1
    # one fragment naming exactly these packs, written after them
    from .index import encode_fragment

    rows = []
    for p in sorted(packs):
        _algo, entries = read_pack_toc(pack_path(store.chunks.packs_dir, p))
        rows.extend((e.chunk_id, Location(p, e.offset, e.stored_len, e.raw_len, e.flags)) for e in entries)
    if rows:
        frag = encode_fragment(store.algo, rows)
        name = f"{frag[-16:].hex()}.idx"
        if name not in _listing(fs, f"{root}/index"):
            _put(fs, frag, f"{root}/index/{name}", retries)
            sent["index"] += 1
    # metadata: the version, its lineage and its folders, as one git pack
    pb = pygit2.PackBuilder(meta.repo)
    pb.add_recur(top)
    for pid in record.get("parents", []):
        prec = RecordStore(store.path).read(pid)
        if prec and prec.get("commit"):
            pb.add_recur(pygit2.Oid(hex=prec["commit"]))
    with tempfile.TemporaryDirectory() as tmp:
        pb.write(tmp)
        have_meta = _listing(fs, f"{root}/meta")
        for f in sorted(Path(tmp).iterdir(), key=lambda f: f.suffix != ".pack"):  # .pack before .idx
            if f.name not in have_meta:
                _put(fs, f, f"{root}/meta/{f.name}", retries)
                sent["meta"] += 1
    body = json.dumps({k: v for k, v in record.items() if k not in ("dirty", "uploaded")},
                      indent=1, sort_keys=True).encode()
    _put(fs, body, f"{root}/datasets/{record['id']}.json", retries)
    return sent


def remote_records(store: Store, url: str) -> list[dict]:
    fs, root = _fs(url)
    try:
        names = [p for p in fs.find(f"{root}/datasets") if p.endswith(".json")]
    except FileNotFoundError:
        return []
    _check_config(store, fs, root, create=False)
    out = []
    for p in names:
        try:
            out.append(json.loads(fs.cat_file(p)))
        except ValueError as e:
            raise FormatError(f"remote record {p} is damaged ({e})") from None
    return out


def fetch_dataset(store: Store, url: str, record: dict) -> None:
    """Bring a remote version (its metadata, chunks and record) into the local store."""
    fs, root = _fs(url)
    _check_config(store, fs, root, create=False)
    objects_pack = store.meta.path / "objects" / "pack"
    objects_pack.mkdir(parents=True, exist_ok=True)
    local_meta = {p.name for p in objects_pack.iterdir()}
    try:
        remote_meta = sorted(fs.find(f"{root}/meta"), key=lambda p: not p.endswith(".pack"))
    except FileNotFoundError:
        remote_meta = []
    for p in remote_meta:
        name = p.rsplit("/", 1)[-1]
        if name not in local_meta:
            _download(fs, p, objects_pack / name)
    local_packs = {p.name for p in store.chunks.packs_dir.glob("*/*.pack")}
    fetched = []
    for p in sorted(fs.find(f"{root}/packs")) if fs.exists(f"{root}/packs") else []:
        name = p.rsplit("/", 1)[-1]
        if name not in local_packs:
            dest = store.chunks.packs_dir / name[:2] / name
            dest.parent.mkdir(exist_ok=True)
            _download(fs, p, dest)
            fetched.append(dest)
    with store.locked():
        rows = []
        for dest in fetched:
            algo, entries = read_pack_toc(dest)
            if algo is not store.algo:
                raise FormatError(f"remote pack {dest.name} uses {algo.name}")
            rows.extend((e.chunk_id, Location(dest.stem, e.offset, e.stored_len, e.raw_len, e.flags))
                        for e in entries)
        if rows:
            store.chunks.index.write_fragment(rows)
        record = dict(record, dirty=False, uploaded=[url])
        if record.get("commit"):
            if record["commit"] not in store.meta.repo:
                raise FormatError(f"remote version {record['id']} names commit {record['commit']} "
                                  "that the remote's metadata lacks")
            store.meta.set_ref(f"refs/datasets/{record['id']}", record["commit"], force=True)
        RecordStore(store.path).write(record)


def _download(fs, remote_path: str, dest: Path) -> None:
    """Download to a temp name beside ``dest`` and rename: never a half file under the real name."""
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=dest.parent)
    os.close(fd)
    try:
        _retry(f"download of {remote_path}", lambda: fs.get_file(remote_path, tmp))
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

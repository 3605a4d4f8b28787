"""``ds ui``: the JSON API in-process, and the page end to end in headless Chromium."""

from __future__ import annotations

import hashlib
import http.client
import io
import json
import os
import re
import select
import shutil
import signal
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from objstore.store import Store

from .conftest import DS, write

NODE_FILL = (0x25, 0x63, 0xEB)  # --node in style.css


# -- a store with every shape the page draws ------------------------------------------------
def _png(size: tuple[int, int] = (40, 30)) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buf, "PNG")
    return buf.getvalue()


def _parquet(rows: int = 120) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"id": list(range(rows)), "label": [f"item-{i}" for i in range(rows)],
                      "score": [i / 4 for i in range(rows)]})
    buf = io.BytesIO()
    pq.write_table(table, buf, row_group_size=50)
    return buf.getvalue()


def build_store(w: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Commits on two branches, a merge of them, a squashed root, a tag, SDK datasets; returns ids."""
    from objstore import Dataset
    from objstore.merge import merge
    from objstore.squash import squash
    from objstore.worktree import add, checkout

    ids: dict[str, str] = {}
    store = Store.init(w)
    try:
        write(w, "data/a.csv", "x,y,name\n1,2,one\n3,4,two\n5,6,three\n")
        write(w, "notes.txt", "hello\nworld\n")
        add(store, [str(w)])
        ids["first"] = store.commit("first: a csv and notes").id
        write(w, "images/cat.png", _png())
        write(w, "data/table.parquet", _parquet())
        write(w, "blob.bin", bytes(range(256)) * 4)
        add(store, [str(w)])
        ids["second"] = store.commit("second: image, parquet, binary").id
        store.tag("v1", ids["first"])
        store.meta.set_ref("refs/heads/feature", ids["second"])
        checkout(store, "feature")
        write(w, "data/b.csv", "k,v\na,1\n")
        add(store, [str(w)])
        ids["feature"] = store.commit("feature: b.csv").id
        checkout(store, "main")
        write(w, "notes.txt", "hello again\n")
        os.unlink(w / "blob.bin")
        add(store, [str(w)])
        ids["main"] = store.commit("main: notes changed, blob removed").id
        ids["merge"] = merge(store, "feature", message="merge feature").id
        ids["squash"] = squash(store, [ids["first"], ids["second"]], "squashed history",
                               branch="archive").id
    finally:
        store.close()
    monkeypatch.setenv("DSSTORE_DIR", str(w / ".dsstore"))
    monkeypatch.delenv("DSSTORE_REMOTE", raising=False)
    src = w.parent / "sdk-src"
    write(src, "train/x.txt", "sample 1\n")
    write(src, "train/y.txt", "sample 2\n")
    base = Dataset.create(dataset_name="digits", dataset_project="vision")
    base.add_files(src)
    base.finalize()
    write(src, "test/z.txt", "sample 3\n")
    child = Dataset.create(dataset_name="digits", dataset_project="vision", parent_datasets=[base.id])
    child.add_files(src)
    child.finalize()
    draft = Dataset.create(dataset_name="scratch", dataset_project="vision")
    draft.add_files(src / "train")
    ids.update(ds_base=base.id, ds_child=child.id, ds_draft=draft.id,
               ds_base_commit=base._record["commit"], ds_child_commit=child._record["commit"])
    return ids


def snapshot(folder: Path) -> dict[str, tuple[str, str]]:
    """path -> (kind, content hash or link target) of everything under ``folder``."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            p = Path(dirpath, name)
            rel = p.relative_to(folder).as_posix()
            if p.is_symlink():
                out[rel] = ("link", os.readlink(p))
            elif p.is_dir():
                out[rel] = ("dir", "")
            else:
                out[rel] = ("file", hashlib.sha256(p.read_bytes()).hexdigest())
    return out


@pytest.fixture(scope="module")
def built_once(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    w = tmp_path_factory.mktemp("ui") / "work"
    with pytest.MonkeyPatch.context() as mp:
        return w, build_store(w, mp)


@pytest.fixture
def built(built_once, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A private copy of the built store (building it takes most of a second)."""
    src, ids = built_once
    w = tmp_path / "work"
    shutil.copytree(src, w, symlinks=True)
    return w, ids


@contextmanager
def running(store: Store) -> Iterator:
    """The UI server on a free port, in a thread, for the ``with`` block."""
    from objstore_cli.ui import make_server

    srv = make_server(store, 0)
    threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True).start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()


@pytest.fixture
def server(built) -> Iterator[tuple[object, dict[str, str], Path]]:
    w, ids = built
    before = snapshot(w / ".dsstore")
    with Store.open(w) as store, running(store) as srv:
        yield srv, ids, w
    assert snapshot(w / ".dsstore") == before, "the UI wrote to the store"


def request(srv, path: str, method: str = "GET", host: str | None = None,
            body: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
    try:
        conn.putrequest(method, path, skip_host=True)
        conn.putheader("Host", host if host is not None else f"127.0.0.1:{srv.port}")
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def get_json(srv, path: str, status: int = 200) -> dict | list:
    code, headers, body = request(srv, path)
    assert code == status, (path, code, body[:300])
    assert headers["content-type"].startswith("application/json")
    return json.loads(body)


# -- the JSON API ---------------------------------------------------------------------------
def test_graph_has_every_version_with_parents_and_names(server) -> None:
    srv, ids, _ = server
    g = get_json(srv, "/api/graph")
    by_id = {c["id"]: c for c in g["commits"]}
    wanted = {ids[k] for k in ("first", "second", "feature", "main", "merge", "squash",
                               "ds_base_commit", "ds_child_commit")}
    assert set(by_id) == wanted and not g["truncated"]
    assert by_id[ids["merge"]]["parents"] == [ids["main"], ids["feature"]]
    assert by_id[ids["squash"]]["parents"] == []
    assert by_id[ids["ds_child_commit"]]["parents"] == [ids["ds_base_commit"]]
    order = [c["id"] for c in g["commits"]]
    for c in g["commits"]:  # children before parents, as the page's lanes need
        assert all(order.index(p) > order.index(c["id"]) for p in c["parents"])
    names = {(lb["kind"], lb["name"]) for c in g["commits"] for lb in c["labels"]}
    assert {("branch", "main"), ("branch", "feature"), ("branch", "archive"), ("tag", "v1"),
            ("head", "HEAD"), ("dataset", "vision/digits 1.0.0"), ("dataset", "vision/digits 1.0.1")} <= names
    assert {lb["name"] for lb in by_id[ids["first"]]["labels"]} == {"v1"}
    assert g["head"] == ids["merge"] and g["branch"] == "main"


def test_datasets_listing(server) -> None:
    srv, ids, _ = server
    data = get_json(srv, "/api/datasets")
    rows = {d["id"]: d for d in data}
    assert set(rows) == {ids["ds_base"], ids["ds_child"], ids["ds_draft"]}
    assert rows[ids["ds_child"]]["parents"] == [ids["ds_base"]]
    assert rows[ids["ds_child"]]["version"] == "1.0.1" and rows[ids["ds_child"]]["status"] == "completed"
    assert rows[ids["ds_draft"]]["status"] == "draft" and rows[ids["ds_draft"]]["commit"] is None
    assert [d["name"] for d in data] == ["digits", "digits", "scratch"]


def test_folder_listing_with_sizes_and_totals(server) -> None:
    srv, ids, _ = server
    root = get_json(srv, f"/api/tree?rev={ids['merge']}")
    assert root["version"] == ids["merge"] and root["path"] == ""
    assert [f["name"] for f in root["files"]] == ["notes.txt"]
    assert root["files"][0]["size"] == len("hello again\n")
    folders = {d["name"]: d for d in root["folders"]}
    assert set(folders) == {"data", "images"}
    assert folders["data"]["files"] == 3  # a.csv, b.csv, table.parquet
    assert folders["data"]["bytes"] == len(_parquet()) + len("k,v\na,1\n") + len(
        "x,y,name\n1,2,one\n3,4,two\n5,6,three\n")
    sub = get_json(srv, "/api/tree?rev=main&path=data")
    assert [f["path"] for f in sub["files"]] == ["data/a.csv", "data/b.csv", "data/table.parquet"]
    # by tag, by dataset id (its commit), and a draft dataset's content
    assert [f["name"] for f in get_json(srv, "/api/tree?rev=v1")["files"]] == ["notes.txt"]
    ds_root = get_json(srv, f"/api/tree?rev={ids['ds_child']}")
    assert ds_root["version"] == ids["ds_child_commit"]
    assert {d["name"] for d in ds_root["folders"]} == {"train", "test"}
    draft = get_json(srv, f"/api/tree?rev={ids['ds_draft']}")
    assert draft["version"] == ids["ds_draft"] and [f["name"] for f in draft["files"]] == ["x.txt", "y.txt"]


def test_diff_between_versions(server) -> None:
    srv, ids, _ = server
    d = get_json(srv, f"/api/diff?a={ids['second']}&b={ids['merge']}")
    assert [r["path"] for r in d["added"]] == ["data/b.csv"]
    assert d["added"][0]["size"] == len("k,v\na,1\n")
    assert d["removed"] == [{"path": "blob.bin", "size": 1024}]
    assert d["modified"] == [{"path": "notes.txt", "old_size": len("hello\nworld\n"),
                              "size": len("hello again\n")}]
    assert d["stat"]["added"] == 1 and d["stat"]["bytes_removed"] == 1024
    same = get_json(srv, f"/api/diff?a={ids['second']}&b={ids['squash']}")
    assert same["stat"] == {"added": 0, "modified": 0, "removed": 0, "renamed": 0, "bytes_added": 0,
                            "bytes_removed": 0, "bytes_modified": 0}


def test_previews(server) -> None:
    srv, ids, _ = server
    rev = ids["merge"]
    text = get_json(srv, f"/api/preview?rev={rev}&path=notes.txt")
    assert text["type"] == "text" and text["text"] == "hello again\n" and not text["truncated"]
    table = get_json(srv, f"/api/preview?rev={rev}&path=data/a.csv")
    assert table["type"] == "table" and table["columns"] == ["x", "y", "name"]
    assert table["rows"] == [["1", "2", "one"], ["3", "4", "two"], ["5", "6", "three"]]
    pq = get_json(srv, f"/api/preview?rev={rev}&path=data/table.parquet")
    assert pq["type"] == "table" and pq["format"] == "parquet" and pq["columns"] == ["id", "label", "score"]
    assert pq["total_rows"] == 120 and len(pq["rows"]) == 50 and pq["rows"][3] == [3, "item-3", 0.75]
    img = get_json(srv, f"/api/preview?rev={rev}&path=images/cat.png")
    assert img["type"] == "image" and img["content_type"] == "image/png"
    code, headers, body = request(srv, f"/api/raw?rev={rev}&path=images/cat.png")
    assert code == 200 and headers["content-type"] == "image/png" and body == _png()
    assert "sandbox" in headers["content-security-policy"]
    binary = get_json(srv, f"/api/preview?rev={ids['second']}&path=blob.bin")
    assert binary["type"] == "binary" and binary["head_hex"].startswith("000102")
    # a non-image is not served raw
    assert get_json(srv, f"/api/raw?rev={rev}&path=notes.txt", 404)["error"]


def test_long_text_is_cut(tmp_path: Path) -> None:
    from objstore.browse import TEXT_BYTES, Browser
    from objstore.worktree import add

    w = tmp_path / "w"
    store = Store.init(w)
    write(w, "big.txt", "é" * TEXT_BYTES)  # two bytes each: the cut falls inside a character
    add(store, [str(w)])
    store.commit("big")
    p = Browser(store).preview("HEAD", "big.txt")
    store.close()
    assert p["type"] == "text" and p["truncated"] and set(p["text"]) == {"é"}
    assert len(p["text"]) == TEXT_BYTES // 2


def test_links_and_external_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from objstore import Dataset
    from objstore.browse import Browser, NotFound
    from objstore.worktree import add

    w = tmp_path / "w"
    with Store.init(w) as store:
        write(w, "data/a.csv", "x\n1\n")
        os.symlink("data/a.csv", w / "latest.csv")
        add(store, [str(w)])
        store.commit("with a link")
    monkeypatch.setenv("DSSTORE_DIR", str(w / ".dsstore"))
    monkeypatch.delenv("DSSTORE_REMOTE", raising=False)
    outside = write(tmp_path / "elsewhere", "big.bin", b"\0" * 100)
    d = Dataset.create(dataset_name="ext", dataset_project="p")
    d.add_external_files(outside.as_uri())
    d.finalize()
    with Store.open(w) as store:
        b = Browser(store)
        link = b.preview("main", "latest.csv")
        assert (link["type"], link["kind"], link["target"]) == ("link", "link", "data/a.csv")
        assert {f["name"]: f["kind"] for f in b.folder("main")["files"]} == {"latest.csv": "link"}
        ext = b.preview(d.id, "big.bin")
        assert ext["type"] == "external" and ext["url"] == outside.as_uri() and ext["size"] == 100
        with pytest.raises(NotFound):
            b.image(d.id, "big.bin")


def test_parquet_without_pyarrow_says_so(server, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    srv, ids, _ = server
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    p = get_json(srv, f"/api/preview?rev={ids['merge']}&path=data/table.parquet")
    assert p["type"] == "message" and "pyarrow" in p["message"]


def test_graph_limit(built) -> None:
    from objstore.browse import Browser

    w, ids = built
    with Store.open(w) as store:
        g = Browser(store).graph(limit=3)
    assert g["truncated"] and len(g["commits"]) == 3


def test_content_missing_locally_is_reported(built, tmp_path: Path) -> None:
    """A clone that has the metadata but not the bytes (chunks come on demand) previews nothing."""
    from objstore.browse import Browser, NotFound

    w, ids = built
    copy = tmp_path / "partial"
    shutil.copytree(w / ".dsstore", copy / ".dsstore")
    for frag in (copy / ".dsstore" / "index").glob("*.idx"):
        frag.unlink()
    with Store.open(copy) as store:
        b = Browser(store)
        p = b.preview("main", "notes.txt")
        assert p["type"] == "unavailable" and "remote" in p["message"]
        with pytest.raises(NotFound):
            b.image("main", "images/cat.png")
        assert [f["name"] for f in b.folder("main")["files"]] == ["notes.txt"]  # metadata is enough


def test_sees_versions_made_while_running(tmp_path: Path) -> None:
    from objstore.worktree import add

    w = tmp_path / "w"
    with Store.init(w) as writer:
        write(w, "a.txt", "one")
        add(writer, [str(w)])
        writer.commit("one")
        with Store.open(w) as reader, running(reader) as srv:
            assert len(get_json(srv, "/api/graph")["commits"]) == 1
            assert get_json(srv, "/api/preview?rev=HEAD&path=a.txt")["text"] == "one"
            write(w, "b.txt", "two")
            add(writer, [str(w)])
            second = writer.commit("two").id
            g = get_json(srv, "/api/graph")
            assert [c["id"] for c in g["commits"]][0] == second and g["head"] == second
            assert get_json(srv, "/api/preview?rev=HEAD&path=b.txt")["text"] == "two"


@pytest.mark.parametrize("path, status, words", [
    ("/api/tree?rev=nosuchversion", 404, "no version matches"),
    ("/api/tree?rev=main&path=missing/folder", 404, "not in this version"),
    ("/api/tree?rev=main&path=notes.txt", 404, "is a file"),
    ("/api/tree?rev=main&path=../etc", 400, "refusing path"),
    ("/api/tree?rev=-rf", 400, "not a version name"),
    ("/api/tree?rev=main..feature", 400, "not a version name"),
    ("/api/tree", 400, "'rev' is required"),
    ("/api/preview?rev=main&path=data", 404, "is a folder"),
    ("/api/preview?rev=main&path=nope.txt", 404, "not in this version"),
    ("/api/diff?a=main&b=0123456789abcdef0123456789abcdef", 404, "no version matches"),
    ("/api/nothing", 404, "no API call"),
    ("/etc/passwd", 404, "no page"),
    ("/../../etc/passwd", 404, "no page"),
])
def test_bad_requests_get_clear_errors(server, path: str, status: int, words: str) -> None:
    srv, _, _ = server
    assert words in get_json(srv, path, status)["error"]


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "FOO"])
def test_only_get_and_head(server, method: str) -> None:
    srv, _, _ = server
    code, headers, body = request(srv, "/api/graph", method, body=b"{}")
    assert code == 405 and headers["allow"] == "GET, HEAD"
    assert "read-only" in json.loads(body)["error"]


def test_head_has_no_body(server) -> None:
    srv, _, _ = server
    code, headers, body = request(srv, "/api/graph", "HEAD")
    assert code == 200 and body == b"" and int(headers["content-length"]) > 0


@pytest.mark.parametrize("host", ["evil.example:{port}", "127.0.0.1:1", "localhost", "",
                                  "127.0.0.1.nip.io:{port}"])
def test_foreign_host_header_is_refused(server, host: str) -> None:
    srv, _, _ = server
    code, _, body = request(srv, "/api/graph", host=host.format(port=srv.port))
    assert code == 403 and "Host header" in json.loads(body)["error"]
    for ok in (f"127.0.0.1:{srv.port}", f"localhost:{srv.port}", f"LOCALHOST:{srv.port}"):
        assert request(srv, "/api/summary", host=ok)[0] == 200


def test_page_and_security_headers(server) -> None:
    srv, _, _ = server
    code, headers, body = request(srv, "/")
    assert code == 200 and headers["content-type"].startswith("text/html") and b"/app.js" in body
    assert "default-src 'none'" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY" and "access-control-allow-origin" not in headers
    assert headers["server"] == "ds-ui"  # no Python version given away
    for path, kind in (("/app.js", "text/javascript"), ("/style.css", "text/css")):
        code, headers, _ = request(srv, path)
        assert code == 200 and headers["content-type"].startswith(kind)


def test_binds_loopback_only(tmp_path: Path) -> None:
    from objstore_cli.ui import make_server

    from objstore.errors import DsError

    store = Store.init(tmp_path / "w")
    try:
        srv = make_server(store, 0)
        try:
            assert srv.server_address[0] == "127.0.0.1" and srv.port > 0
            assert srv.url == f"http://127.0.0.1:{srv.port}/"
        finally:
            srv.server_close()
        for host in ("0.0.0.0", "::", "192.168.1.10", ""):
            with pytest.raises(DsError, match="127.0.0.1 only"):
                make_server(store, 0, host=host)
        with pytest.raises(DsError, match="0..65535"):
            make_server(store, 70000)
    finally:
        store.close()


def test_empty_store(tmp_path: Path) -> None:
    with Store.init(tmp_path / "w") as store, running(store) as srv:
        g = get_json(srv, "/api/graph")
        assert g == {"head": None, "branch": "main", "commits": [], "truncated": False}
        assert get_json(srv, "/api/datasets") == []
        assert "no version" in get_json(srv, "/api/tree?rev=HEAD", 404)["error"]


# -- end to end in headless Chromium ---------------------------------------------------------
@pytest.fixture
def ds_ui(built) -> Iterator[tuple[str, dict[str, str], Path]]:
    """``ds ui --port 0`` as a real process; yields the URL it printed."""
    w, ids = built
    before = snapshot(w / ".dsstore")
    proc = subprocess.Popen([DS, "-C", str(w), "ui", "--port", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        line = proc.stdout.readline() if ready else ""
        m = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        assert m, f"no URL printed: {line!r} {proc.stderr.read() if proc.poll() is not None else ''}"
        yield m.group(0), ids, w
    finally:
        proc.send_signal(signal.SIGINT)  # Ctrl-C: a clean stop
        _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0 and "Stopped." in stderr, stderr
    assert snapshot(w / ".dsstore") == before, "the UI wrote to the store"


def open_page(browser, url: str):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(url)
    page.wait_for_selector("body[data-ready='1']", timeout=30_000)
    return page, errors


def blobs(mask: set[tuple[int, int]]) -> int:
    """Connected areas (4-neighbour) of the pixels in ``mask``."""
    seen: set[tuple[int, int]] = set()
    count = 0
    for start in mask:
        if start in seen:
            continue
        count += 1
        todo = [start]
        seen.add(start)
        while todo:
            x, y = todo.pop()
            for n in ((x + 1, y), (x - 1, y), (x, y + 1), (x, y - 1)):
                if n in mask and n not in seen:
                    seen.add(n)
                    todo.append(n)
    return count


def fill_mask(image, box: tuple[int, int, int, int] | None = None, tol: int = 8) -> set[tuple[int, int]]:
    img = image.convert("RGB")
    x0, y0, x1, y1 = box or (0, 0, img.width, img.height)
    px = img.load()
    return {(x, y) for x in range(max(0, x0), min(img.width, x1))
            for y in range(max(0, y0), min(img.height, y1))
            if all(abs(c - f) <= tol for c, f in zip(px[x, y], NODE_FILL, strict=True))}


def test_page_end_to_end(browser, ds_ui, tmp_path: Path) -> None:
    from PIL import Image, ImageStat

    url, ids, _ = ds_ui
    page, errors = open_page(browser, url)
    try:
        nodes = page.locator("#graph g.node")
        assert nodes.count() == 8  # one per version
        assert set(nodes.evaluate_all("els => els.map(e => e.dataset.id)")) == {
            ids[k] for k in ("first", "second", "feature", "main", "merge", "squash", "ds_base_commit",
                             "ds_child_commit")}
        incoming = page.locator(f"#graph path.edge[data-to='{ids['merge']}']")
        assert incoming.count() == 2
        parents = set(incoming.evaluate_all("els => els.map(e => e.dataset.from)"))
        assert parents == {ids["main"], ids["feature"]}
        assert page.locator(f"#graph path.edge[data-to='{ids['squash']}']").count() == 0
        assert page.locator("#datasets tbody tr").count() == 3

        shot = tmp_path / "page.png"
        page.screenshot(path=str(shot))
        image = Image.open(shot)
        assert max(hi - lo for lo, hi in ImageStat.Stat(image.convert("RGB")).extrema) > 100, "blank page"
        boxes = [n.locator("circle").bounding_box() for n in nodes.all()]
        for b in boxes:  # every node is drawn in the node colour where the DOM puts it
            assert fill_mask(image, (int(b["x"]), int(b["y"]), int(b["x"] + b["width"]) + 1,
                                     int(b["y"] + b["height"]) + 1)), f"no node colour at {b}"
        graph_box = page.locator("#graph").bounding_box()
        area = (int(graph_box["x"]), int(graph_box["y"]), int(graph_box["x"] + graph_box["width"]),
                int(graph_box["y"] + graph_box["height"]))
        assert blobs(fill_mask(image, area)) >= 8

        # a version's folders and files
        page.locator(f"#graph g.node[data-id='{ids['second']}']").click()
        page.wait_for_selector("#files tr.file[data-path='blob.bin']")
        assert page.locator("#graph g.node.selected").get_attribute("data-id") == ids["second"]
        page.locator("#files tr.dir[data-path='data']").click()
        page.wait_for_selector("#files tr.file[data-path='data/table.parquet']")
        assert page.locator("#files tr.file").count() == 2

        # CSV and Parquet previews, then the image
        page.locator("#files tr.file[data-path='data/a.csv']").click()
        page.wait_for_selector("#preview table.csv")
        assert page.locator("#preview table.csv tbody tr").count() == 3
        assert page.locator("#preview table.csv th").all_inner_texts() == ["x", "y", "name"]
        page.locator("#files tr.file[data-path='data/table.parquet']").click()
        page.wait_for_selector("#preview table.parquet")
        assert page.locator("#preview table.parquet tbody tr").count() == 50
        page.locator("#crumbs a", has_text="root").click()
        page.locator("#files tr.dir[data-path='images']").click()
        page.locator("#files tr.file[data-path='images/cat.png']").click()
        img = page.locator("#preview img")
        img.wait_for()
        page.wait_for_function("() => document.querySelector('#preview img').naturalWidth > 0")
        assert img.evaluate("i => [i.naturalWidth, i.naturalHeight]") == [40, 30]

        # two versions and their diff
        page.select_option("#diff-a", ids["second"])
        page.select_option("#diff-b", ids["merge"])
        page.click("#diff-go")
        page.wait_for_selector("#diff tr.added")
        assert page.locator("#diff tr.added").get_attribute("data-path") == "data/b.csv"
        assert page.locator("#diff tr.removed").get_attribute("data-path") == "blob.bin"
        assert page.locator("#diff tr.modified").get_attribute("data-path") == "notes.txt"
        assert "1 added" in page.locator("#diff .summary").inner_text()
        page.locator("#diff tr.modified").click()
        page.wait_for_selector("#preview pre")
        assert page.locator("#preview pre").inner_text().strip() == "hello again"

        # a dataset row opens its version; a draft opens its draft content
        page.locator(f"#datasets tr[data-id='{ids['ds_draft']}']").click()
        page.wait_for_selector("#files tr.file[data-path='x.txt']")
        page.locator(f"#datasets tr[data-id='{ids['ds_child']}']").click()
        page.wait_for_selector("#files tr.dir[data-path='test']")
        assert page.locator("#graph g.node.selected").get_attribute("data-id") == ids["ds_child_commit"]
        assert not page.locator("#error").is_visible()
        assert errors == []
    finally:
        page.close()


def test_page_shows_api_errors(browser, server) -> None:
    srv, _, _ = server
    page, errors = open_page(browser, srv.url)
    try:
        page.evaluate("() => { const o = document.createElement('option'); o.value = 'nosuch'; "
                      "document.querySelector('#diff-a').append(o); "
                      "document.querySelector('#diff-a').value = 'nosuch'; }")
        page.click("#diff-go")
        page.wait_for_selector("#error:not([hidden])")
        assert "no version matches" in page.locator("#error").inner_text()
    finally:
        page.close()


def test_page_of_an_empty_store(browser, tmp_path: Path) -> None:
    with Store.init(tmp_path / "w") as store, running(store) as srv:
        page, errors = open_page(browser, srv.url)
        assert page.locator("#graph-empty").is_visible() and page.locator("#graph g.node").count() == 0
        assert errors == []
        page.close()


def test_ds_ui_refuses_a_busy_port(built) -> None:
    import socket

    w, _ = built
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        proc = subprocess.run([DS, "ui", "--port", str(port)], cwd=w, capture_output=True, text=True,
                              timeout=60)
    assert proc.returncode == 1 and "--port 0" in proc.stderr

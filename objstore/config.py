"""The store's ``config`` file (TOML): format version, hash algorithm, chunking.

An unknown format version is refused, never guessed at. The file is written by us,
in a fixed small shape, so it is serialised here rather than through a TOML writer.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from .chunking import ChunkParams
from .errors import FormatError
from .fsutil import atomic_write
from .hashing import get_algo

FORMAT_VERSION = 1


@dataclass(frozen=True)
class StoreConfig:
    hash: str = "xxh3-128"
    chunking: ChunkParams = field(default_factory=ChunkParams)
    zstd_level: int = 3
    pack_target: int = 64 * 1024 * 1024
    remote: str | None = None  # default remote URL
    format: int = FORMAT_VERSION

    def to_toml(self) -> str:
        c = self.chunking
        return (
            "# objstore store configuration; see docs/format.md\n"
            "[store]\n"
            f"format = {self.format}\n"
            f'hash = "{self.hash}"\n'
            f"zstd_level = {self.zstd_level}\n"
            f"pack_target = {self.pack_target}\n"
            "\n[chunking]\n"
            f"avg_size = {c.avg_size}\n"
            f"min_size = {c.min_size}\n"
            f"max_size = {c.max_size}\n"
        ) + (f"\n[remote]\ndefault = {json.dumps(self.remote)}\n" if self.remote else "")


def load_config(path: Path) -> StoreConfig:
    try:
        raw = tomllib.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise FormatError(f"{path} is missing: this is not an objstore store (run `ds init`)") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise FormatError(f"{path} is not valid TOML ({e}); restore it from a backup") from None
    store = raw.get("store", {})
    version = store.get("format")
    if version != FORMAT_VERSION:
        raise FormatError(
            f"{path}: store format {version!r} is not supported by this objstore "
            f"(it reads format {FORMAT_VERSION}); upgrade objstore"
        )
    chunk = raw.get("chunking", {})
    try:
        algo = get_algo(str(store.get("hash", "xxh3-128"))).name
        params = ChunkParams(
            avg_size=int(chunk.get("avg_size", ChunkParams.avg_size)),
            min_size=int(chunk.get("min_size", ChunkParams.min_size)),
            max_size=int(chunk.get("max_size", ChunkParams.max_size)),
        )
        level = int(store.get("zstd_level", 3))
        pack_target = int(store.get("pack_target", 64 * 1024 * 1024))
    except (TypeError, ValueError) as e:
        raise FormatError(f"{path}: invalid setting ({e}); fix or restore the file") from None
    if not (64 <= params.min_size <= params.avg_size <= params.max_size <= 16 * 1024 * 1024):
        raise FormatError(f"{path}: chunk sizes must satisfy 64 <= min <= avg <= max <= 16 MiB")
    remote = raw.get("remote", {}).get("default")
    if remote is not None and not isinstance(remote, str):
        raise FormatError(f"{path}: [remote] default must be a URL string")
    return StoreConfig(hash=algo, chunking=params, zstd_level=level, pack_target=pack_target,
                       remote=remote)


def save_config(path: Path, config: StoreConfig) -> None:
    atomic_write(path, config.to_toml().encode())

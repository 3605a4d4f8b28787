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
    remote: str | None = None  # default remote: a name from ``remotes`` or a URL
    remotes: dict[str, dict] = field(default_factory=dict)  # name -> {"url": ..., "options": {...}}
    sparse: list[str] = field(default_factory=list)  # gitignore-style globs: the checked-out part
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
        ) + (f"\n[remote]\ndefault = {json.dumps(self.remote)}\n" if self.remote else "") + "".join(
            f"\n[remotes.{json.dumps(name)}]\nurl = {json.dumps(r['url'])}\n"
            + "".join(f"options.{json.dumps(k)} = {_toml_value(v)}\n"
                      for k, v in sorted(r.get("options", {}).items()))
            for name, r in sorted(self.remotes.items())) + (
            f"\n[worktree]\nsparse = {json.dumps(self.sparse)}\n" if self.sparse else "")


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
        raise FormatError(f"{path}: [remote] default must be a remote name or URL")
    remotes = raw.get("remotes", {})
    if not isinstance(remotes, dict) or any(
            not isinstance(r, dict) or not isinstance(r.get("url"), str) for r in remotes.values()):
        raise FormatError(f"{path}: every [remotes.NAME] needs a url string")
    sparse = raw.get("worktree", {}).get("sparse", [])
    if not isinstance(sparse, list) or not all(isinstance(g, str) for g in sparse):
        raise FormatError(f"{path}: [worktree] sparse must be a list of globs")
    return StoreConfig(hash=algo, chunking=params, zstd_level=level, pack_target=pack_target,
                       remote=remote, remotes=remotes, sparse=sparse)


def _toml_value(v: object) -> str:
    """A TOML value: booleans, numbers, strings, and lists / tables of them (remote options
    such as s3fs's ``config_kwargs`` are nested)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)  # also right for TOML's inf and nan
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(str(k), ensure_ascii=False)} = {_toml_value(x)}"
                               for k, x in v.items()) + "}"
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return json.dumps(str(v), ensure_ascii=False)  # TOML refuses JSON's surrogate-pair escapes


def save_config(path: Path, config: StoreConfig) -> None:
    atomic_write(path, config.to_toml().encode())

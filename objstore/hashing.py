"""Content ids: xxh3-128 (default, fast) or blake3-256 (collision resistant).

Pure functions, no I/O. An id is raw ``bytes`` (``*_id`` names); its hex form is
``str`` (``*_hex`` names). The length tells the algorithm apart: 16 bytes for
xxh3-128, 32 for blake3. xxh3 detects corruption but not a deliberate collision; a
team whose remote is writable by people it does not fully trust picks blake3.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import xxhash

from .errors import DsError, FormatError


class Hasher(Protocol):
    def update(self, data: bytes | memoryview, /) -> None: ...
    def digest(self) -> bytes: ...


@dataclass(frozen=True)
class HashAlgo:
    name: str
    size: int
    code: int  # one byte, recorded in every binary format that stores ids
    digest: Callable[[bytes | memoryview], bytes]
    new: Callable[[], Hasher]


def _blake3_digest(data: bytes | memoryview) -> bytes:
    import blake3

    return blake3.blake3(data, max_threads=1).digest()


def _blake3_new() -> Hasher:
    import blake3

    return blake3.blake3()


XXH3_128 = HashAlgo("xxh3-128", 16, 1, lambda d: xxhash.xxh3_128_digest(d), xxhash.xxh3_128)
BLAKE3 = HashAlgo("blake3", 32, 2, _blake3_digest, _blake3_new)

ALGOS = {a.name: a for a in (XXH3_128, BLAKE3)}
ALGOS_BY_CODE = {a.code: a for a in (XXH3_128, BLAKE3)}


def get_algo(name: str) -> HashAlgo:
    try:
        return ALGOS[name]
    except KeyError:
        known = ", ".join(sorted(ALGOS))
        raise DsError(f"unknown hash algorithm {name!r}; choose one of: {known}") from None


def algo_by_code(code: int) -> HashAlgo:
    try:
        return ALGOS_BY_CODE[code]
    except KeyError:
        raise FormatError(
            f"unknown hash algorithm code {code}; the data is damaged or needs a newer objstore"
        ) from None

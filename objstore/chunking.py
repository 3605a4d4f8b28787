"""Content-defined chunk boundaries (FastCDC, via the Cython ``pyfastcdc``).

Pure functions over buffers: no I/O. ``pyfastcdc`` was picked over ``fastcdc`` by
measurement (``benchmarks/chunkers.py``). Boundaries depend on content only, so an
insertion in the middle of a large file changes one or two chunks, not all that follow.
A buffer shorter than ``min_size`` is one chunk.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

MiB = 1024 * 1024


@dataclass(frozen=True)
class ChunkParams:
    # 384 KiB on average, chosen by measurement (docs/architecture.md): inserting 100 bytes
    # into a large file rewrites about one chunk, so smaller chunks store less per change
    # (1 MiB: 1.64x the changed bytes on the benchmark's L change set; 384 KiB: 0.90x) for
    # about 4% more CPU when adding; 256 KiB cost 10% more for 0.68x.
    avg_size: int = 384 * 1024
    min_size: int = 96 * 1024
    max_size: int = 1536 * 1024


_CUTTERS: dict = {}


def _cutter(params: ChunkParams):
    from pyfastcdc import FastCDC  # imported on first use: keeps `ds status` start-up short

    cutter = _CUTTERS.get(params)
    if cutter is None:
        cutter = FastCDC(params.avg_size, min_size=params.min_size, max_size=params.max_size)
        _CUTTERS[params] = cutter
    return cutter


def cut(buf: bytes | memoryview, params: ChunkParams) -> Iterator[memoryview]:
    """Yield consecutive chunk views covering ``buf`` exactly."""
    view = memoryview(buf)
    if len(view) <= params.min_size:
        if len(view):
            yield view
        return
    for chunk in _cutter(params).cut_buf(view):
        yield chunk.data

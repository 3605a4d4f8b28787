"""A byte range of a file over its chunk list ((chunk id, size) rows): the chunks covering it and
the part of each. ``ds://`` (``dsfs``, which fetches missing chunks) and ``ds ui`` (``browse``,
which reads only what the store holds) both read through it."""

from __future__ import annotations

import bisect
from collections import OrderedDict
from itertools import accumulate

LRU_CHUNKS = 4  # decoded chunks kept per open file


def chunk_starts(chunks) -> list[int]:
    """Each chunk's offset in the file."""
    return [0, *accumulate(size for _chunk_id, size in chunks)][:-1]


def pieces(chunks, starts: list[int], start: int, end: int) -> list[tuple[bytes, slice]]:
    """(chunk id, its part inside [start, end)) of each chunk covering bytes [start, end), start < end."""
    first = bisect.bisect_right(starts, start) - 1
    return [(chunks[i][0], slice(max(start - starts[i], 0), end - starts[i]))
            for i in range(first, bisect.bisect_left(starts, end))]


class Lru:
    """The last few decoded chunks of one open file."""

    def __init__(self, size: int = LRU_CHUNKS):
        self.size = size
        self.items: OrderedDict[bytes, bytes] = OrderedDict()

    def get(self, chunk_id: bytes) -> bytes | None:
        data = self.items.get(chunk_id)
        if data is not None:
            self.items.move_to_end(chunk_id)
        return data

    def put(self, chunk_id: bytes, data: bytes) -> None:
        self.items[chunk_id] = data
        self.items.move_to_end(chunk_id)
        while len(self.items) > self.size:
            self.items.popitem(last=False)

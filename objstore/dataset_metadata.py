"""How ``Dataset.set_metadata`` values are kept in the dataset's record.

JSON-serialisable values are kept as they are.
"""

from __future__ import annotations

import json
from typing import Any

from .errors import DsError
from .store import Store


def encode(store: Store, name: str, value: Any) -> Any:
    """The record form of a metadata value (raises DsError for a type it cannot keep)."""
    try:
        json.dumps(value)
    except (TypeError, ValueError) as e:
        raise DsError(f"metadata {name!r} is not JSON-serialisable ({e}); "
                      "convert it (e.g. DataFrame.to_dict()) first") from None
    return value


def decode(store: Store, stored: Any) -> Any:
    """The value ``encode`` was given."""
    return stored

"""Transitional alias: ``ds get`` lives in ``objstore.get`` (``copy`` shadowed the standard
library's module). Deleted once the last tests importing this name (``COPY_IMPORTERS`` in
tests/test_meta_boundary.py) import ``objstore.get``; nothing in objstore/ or cli/ uses it."""

from .get import get_copy

__all__ = ["get_copy"]

"""The one exception family for problems a user (or a remote) can cause.

Every message says what went wrong and what to do about it; the CLI prints it as one
line and exits non-zero. Subclasses ValueError because ClearML's Dataset raises
ValueError for the same situations, so existing ``except ValueError`` code keeps working.
"""

from __future__ import annotations


class DsError(ValueError):
    """Base of every user-facing objstore error."""


class StoreNotFound(DsError):
    """No `.dsstore` where one was expected."""


class FormatError(DsError):
    """Bytes on disk (or from a remote) do not follow the documented format."""


class CorruptObject(FormatError):
    """A stored object fails verification against its id."""

    def __init__(self, message: str, *, where: str = "", expected: str = "", got: str = ""):
        super().__init__(message)
        self.where = where
        self.expected = expected
        self.got = got


class UnsafePath(FormatError):
    """A path from a store or a remote that could escape or confuse a target folder."""


class RevisionNotFound(DsError):
    """A REV that names no version."""


class DirtyWorktree(DsError):
    """An operation would throw away uncommitted changes."""


class TargetNotEmpty(DsError):
    """A destination folder has content and overwriting was not asked for."""


class NothingToCommit(DsError):
    """A commit with no staged change."""

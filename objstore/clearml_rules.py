"""ClearML's rules for versions, wildcards and tag filters, reproduced so scripts select the same things.

Why a module of its own: a ClearML script moved to objstore must pick the same files, the same
"latest" version and the same datasets as it did there, and these rules are subtle enough
(written from ClearML 2.1's sources and its server's query rules, not guessed) to deserve
their own tests. Pure functions, no I/O.

- ``Version``: ClearML's PEP 440-like dataset versions: parsing, ordering and the next version
  (``1.0.0`` -> ``1.0.1``, ``v1`` -> ``2``, ``1.0rc1`` -> ``1.0rc2``, ``1.0.dev3`` -> ``1.0.dev4``).
- ``matches_any_wildcard``: how ``list_files``, ``remove_files`` and ``add_external_files`` match
  dataset paths (``*`` crosses folders when ``recursive``; one folder level when not).
- ``glob_match``: how ``add_files`` picks files under a folder (pathlib's ``rglob``/``glob``).
- ``tag_filter``: the server's tag query: OR by default, ``-tag`` excludes, ``__$all``/``__$and``
  and ``__$any``/``__$or`` switch the operator for the tags after them, ``__$not`` excludes the
  next tag, ``__$nop`` resets, ``None`` also accepts versions without tags.
"""

from __future__ import annotations

import fnmatch
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import PurePosixPath

from .errors import DsError

# -- versions ---------------------------------------------------------------------------------------
_SEP = r"[-_.]?"
_VERSION = re.compile(
    r"^\s*v?"
    r"(?:(?P<epoch>\d+)!)?"
    r"(?P<release>\d+(?:\.\d+)*)"
    rf"(?:{_SEP}(?P<pre_l>alpha|beta|preview|pre|rc|a|b|c){_SEP}(?P<pre_n>\d+)?)?"
    rf"(?:-(?P<post_n1>\d+)|{_SEP}(?P<post_l>post|rev|r){_SEP}(?P<post_n2>\d+)?)?"
    rf"(?:{_SEP}(?P<dev_l>dev){_SEP}(?P<dev_n>\d+)?)?"
    r"(?:\+(?P<local>[a-z0-9]+(?:[-_.][a-z0-9]+)*))?"
    r"\s*$",
    re.IGNORECASE,
)
_PRE_NAMES = {"alpha": "a", "beta": "b", "c": "rc", "pre": "rc", "preview": "rc"}


@dataclass(frozen=True)
class Version:
    """A parsed dataset version, as ClearML's ``Version`` reads, orders and bumps it."""

    epoch: int
    release: tuple[int, ...]
    pre: tuple[str, int] | None
    post: int | None
    dev: int | None
    local: tuple[str, ...] | None

    @classmethod
    def parse(cls, text: object) -> Version | None:
        """The version ``text`` names, or None where ClearML cannot order it (it then neither
        wins a "latest" choice nor is bumped; a new version starts at 1.0.0)."""
        m = _VERSION.match(str(text)) if text else None
        if m is None:
            return None
        if (m["post_l"] and m["post_n2"] is None) or (m["dev_l"] and m["dev_n"] is None):
            return None  # ClearML's parser fails on a post/dev label without a number
        pre = None
        if m["pre_l"]:
            label = m["pre_l"].lower()
            pre = (_PRE_NAMES.get(label, label), int(m["pre_n"] or 0))
        post = m["post_n1"] or m["post_n2"]
        local = tuple(p.lower() for p in re.split(r"[-_.]", m["local"])) if m["local"] else None
        return cls(int(m["epoch"] or 0), tuple(int(x) for x in m["release"].split(".")), pre,
                   int(post) if post is not None else None,
                   int(m["dev_n"]) if m["dev_l"] else None, local)

    def __str__(self) -> str:
        text = f"{self.epoch}!" if self.epoch else ""
        text += ".".join(map(str, self.release))
        if self.pre is not None:
            text += f"{self.pre[0]}{self.pre[1]}"
        if self.post is not None:
            text += f".post{self.post}"
        if self.dev is not None:
            text += f".dev{self.dev}"
        if self.local is not None:
            text += "+" + ".".join(self.local)
        return text

    def next(self) -> Version:
        """The version after this one: the last of dev, post, pre or release goes up by one."""
        if self.dev is not None:
            return replace(self, dev=self.dev + 1)
        if self.post is not None:
            return replace(self, post=self.post + 1)
        if self.pre is not None:
            return replace(self, pre=(self.pre[0], self.pre[1] + 1))
        return replace(self, release=(*self.release[:-1], self.release[-1] + 1))

    @property
    def key(self) -> tuple:
        """ClearML's order: release numbers as tuples (``1.0`` < ``1.0.0``), a pre-release before
        its release (only its number counts), a post-release after, a dev release before."""
        return (self.epoch, self.release,
                math.inf if self.pre is None else self.pre[1],
                -math.inf if self.post is None else self.post,
                math.inf if self.dev is None else self.dev,
                0 if self.local else 1)


def version_order(version: object) -> tuple:
    """A sort key for any version text: versions ClearML can order by its rule, above any it cannot."""
    v = Version.parse(version)
    return (1, v.key, "") if v is not None else (0, (), str(version))


def next_version(existing: Sequence[str]) -> str:
    """The version ``Dataset.create`` gives a new version of a dataset with these versions."""
    parsed = [v for v in map(Version.parse, existing) if v is not None]
    if not parsed:
        return "1.0.0"
    return str(max(parsed, key=lambda v: v.key).next())


# -- wildcards --------------------------------------------------------------------------------------
def _wildcard_list(wildcards: str | Sequence[str] | None) -> list[str]:
    if wildcards is None:
        return ["*"]
    if isinstance(wildcards, list | tuple):
        return [str(w) for w in wildcards]
    return [str(wildcards)]


def matches_any_wildcard(path: str, wildcards: str | Sequence[str] | None, recursive: bool = True) -> bool:
    """ClearML's match of a dataset path (or an external file's URL) against wildcards.

    ``recursive``: the part after the wildcard's last ``/`` must match the end of the path and
    the part before it its start, with ``*`` crossing folders (``*.jpg`` matches ``a/b.jpg``,
    ``folder`` only a file named ``folder``, ``folder/`` nothing). Not recursive: the path and
    the wildcard have as many parts, each matching its own (``*`` stays in one folder).
    """
    path = PurePosixPath(path).as_posix()
    parts = path.split("/")
    for wildcard in _wildcard_list(wildcards):
        if not recursive:
            pattern = wildcard.split("/")
            if len(pattern) == len(parts) and all(map(fnmatch.fnmatch, parts, pattern)):
                return True
            continue
        name = wildcard.split("/")[-1]
        head = wildcard[: len(wildcard) - len(name)] if name else ""
        if fnmatch.fnmatch(path, head + "*") and fnmatch.fnmatch("/" + path, "*/" + name):
            return True
    return False


def _glob_parts(pattern: str) -> tuple[str, ...]:
    if not pattern or pattern.startswith("/"):
        raise DsError(f"wildcard {pattern!r} is not a relative pattern; give one such as '*.jpg' "
                      "or 'sub/*.jpg'")
    parts = PurePosixPath(pattern).parts
    for part in parts:
        if "**" in part and part != "**":
            raise DsError(f"wildcard {pattern!r}: '**' can only be a whole path part (as 'a/**/b')")
    return parts


def _glob(pattern: tuple[str, ...], parts: tuple[str, ...]) -> bool:
    if not pattern:
        return not parts
    if not parts:
        return False
    if pattern[0] == "**":  # any number of folders (never the file itself)
        return any(_glob(pattern[1:], parts[i:]) for i in range(len(parts)))
    return fnmatch.fnmatchcase(parts[0], pattern[0]) and _glob(pattern[1:], parts[1:])


def glob_match(relpath: str, wildcards: str | Sequence[str] | None, recursive: bool = True) -> bool:
    """Whether ``add_files`` takes the file at ``relpath`` (relative to the folder added):
    pathlib's ``folder.rglob(w)`` when ``recursive``, else ``folder.glob(w)``, for any ``w``."""
    parts = tuple(relpath.split("/"))
    for wildcard in _wildcard_list(wildcards):
        pattern = _glob_parts(wildcard)
        if _glob(("**", *pattern) if recursive else pattern, parts):
            return True
    return False


# -- tag filters ------------------------------------------------------------------------------------
_AND, _OR = "and", "or"
_OPERATORS = {"__$all": _AND, "__$and": _AND, "__$any": _OR, "__$or": _OR}
# (operator in force, wanted) -> how the tag's bucket is tested, as the server's query does
_BUCKET = {(_AND, True): "all", (_AND, False): "none", (_OR, True): "any", (_OR, False): "none"}


def tag_filter(query: str | Sequence[str | None] | None) -> Callable[[Sequence[str]], bool]:
    """A test of a version's tags for a ClearML tag query (``Dataset.get(dataset_tags=)``,
    ``list_datasets(tags=)``). Each tag goes to a bucket by the operator in force (OR at first)
    and whether it is wanted: OR-wanted tags need any of them, AND-wanted tags all of them,
    unwanted ones none of them; the buckets are joined by the first operator given (AND if
    none). So ``["a", "b"]`` is a OR b, ``["a", "-b"]`` a and not b, ``["__$all", "a", "b"]``
    a and b. A bad query raises DsError naming the problem."""
    if query is None:
        return lambda tags: True
    terms = [query] if isinstance(query, str) else list(query)
    buckets: dict[str, list[str]] = {"any": [], "all": [], "none": []}
    context, joined, legacy, negate, allow_empty = _OR, None, True, False, False
    for term in terms:
        if term is None:
            negate, allow_empty = False, True
            joined = joined or _AND
            continue
        if not isinstance(term, str):
            raise DsError(f"tag filter {terms!r}: {term!r} is not a string; give tags as strings")
        if term == "__$nop":
            negate, context, legacy = False, _OR, True
            joined = joined or _AND
            continue
        if term.startswith("__$"):
            if negate:
                raise DsError(f"tag filter {terms!r}: '__$not' must be followed by a tag, not {term!r}")
            if term == "__$not":
                negate = True
                continue
            if term not in _OPERATORS:
                raise DsError(f"tag filter {terms!r}: unknown operator {term!r}; use __$all, __$and, "
                              "__$any, __$or, __$not or __$nop")
            context, legacy = _OPERATORS[term], False
            joined = joined or context
            continue
        joined = joined or _AND
        wanted = not negate
        if not negate and legacy and term.startswith("-"):
            term, wanted = term[1:], False
            if not term:
                raise DsError(f"tag filter {terms!r}: '-' must be followed by the tag to exclude")
        negate = False
        buckets[_BUCKET[(context, wanted)]].append(term)
    if negate:
        raise DsError(f"tag filter {terms!r}: '__$not' must be followed by a tag")
    tests = [test for test in (
        (lambda have: any(t in have for t in buckets["any"])) if buckets["any"] else None,
        (lambda have: all(t in have for t in buckets["all"])) if buckets["all"] else None,
        (lambda have: not any(t in have for t in buckets["none"])) if buckets["none"] else None,
    ) if test is not None]
    join = all if (joined or _AND) == _AND else any

    def matches(tags: Sequence[str]) -> bool:
        have = set(tags or [])
        ok = join(test(have) for test in tests) if tests else True
        return ok or (allow_empty and not have)

    return matches

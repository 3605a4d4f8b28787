"""The store's ``config`` file (TOML): format version, hash algorithm, chunking.

An unknown format version is refused, never guessed at. It is read with ``tomllib`` and
written with ``tomli-w``, imported only when a config is written: ``ds status``'s quick path
(``quickstatus``, ``quicktrack``) reads configs and never pays for the writer.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path

from .chunking import ChunkParams
from .errors import DsError, FormatError
from .hashing import get_algo
from .limits import MAX_RAW

FORMAT_VERSION = 1
BRANCH_KEYS = ("remote", "merge")  # a branch's upstream: git's branch.NAME.remote / .merge


@dataclass(frozen=True)
class StoreConfig:
    hash: str = "xxh3-128"
    chunking: ChunkParams = field(default_factory=ChunkParams)
    zstd_level: int = 3
    pack_target: int = 64 * 1024 * 1024
    remote: str | None = None  # default remote: a name from ``remotes`` or a URL
    remotes: dict[str, dict] = field(default_factory=dict)  # name -> {"url": ..., "options": {...}}
    sparse: list[str] = field(default_factory=list)  # gitignore-style globs: the checked-out part
    # branch -> {"remote": NAME, "merge": "refs/heads/BRANCH"}: its upstream, as git's branch.NAME.*
    branches: dict[str, dict[str, str]] = field(default_factory=dict)
    format: int = FORMAT_VERSION

    def to_toml(self) -> str:
        return toml_text(self.tables(), "objstore store configuration; see docs/format.md")

    def tables(self) -> dict[str, object]:
        """The file's tables, sorted by name so the same config is always the same text."""
        c = self.chunking
        tables: dict[str, object] = {
            "store": {"format": self.format, "hash": self.hash, "zstd_level": self.zstd_level,
                      "pack_target": self.pack_target},
            "chunking": {"avg_size": c.avg_size, "min_size": c.min_size, "max_size": c.max_size},
        }
        if self.remote:
            tables["remote"] = {"default": self.remote}
        if self.remotes:
            tables["remotes"] = {name: _remote_table(r) for name, r in sorted(self.remotes.items())}
        if self.sparse:
            tables["worktree"] = {"sparse": list(self.sparse)}
        branches = {name: dict(sorted(b.items())) for name, b in sorted(self.branches.items()) if b}
        if branches:
            tables["branch"] = branches
        return tables


def _remote_table(remote: dict) -> dict[str, object]:
    """``url``, then ``options`` when there are any (an empty table would be noise)."""
    table: dict[str, object] = {"url": remote["url"]}
    if remote.get("options"):
        table["options"] = dict(sorted(remote["options"].items()))
    return table


def load_config(path: Path) -> StoreConfig:
    try:
        raw = tomllib.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise FormatError(f"{path} is missing: this is not an objstore store (run `ds init`)") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise FormatError(f"{path} is not valid TOML ({e}); restore it from a backup") from None
    store = raw.get("store", {})
    if not raw:
        raise FormatError(f"{path} is empty: the store's settings are lost; restore it from a backup, or "
                          "copy the config of a store made by `ds init` (with the same --hash) there")
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
    if not (64 <= params.min_size <= params.avg_size <= params.max_size <= MAX_RAW):  # what readers accept
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
    branches = _load_branches(path, raw.get("branch", {}))
    return StoreConfig(hash=algo, chunking=params, zstd_level=level, pack_target=pack_target,
                       remote=remote, remotes=remotes, sparse=sparse, branches=branches)


def _load_branches(path: Path, raw: object) -> dict[str, dict[str, str]]:
    """``[branch.NAME]`` tables: each upstream's ``remote`` and ``merge`` (other keys, which a
    later objstore may write, are left out rather than refused)."""
    ok = isinstance(raw, dict) and all(
        isinstance(b, dict) and all(isinstance(b.get(k, ""), str) for k in BRANCH_KEYS)
        and b.get("merge", "refs/heads/").startswith("refs/heads/") for b in raw.values())
    if not ok:
        raise FormatError(f'{path}: every [branch.NAME] holds remote = "NAME" and '
                          'merge = "refs/heads/BRANCH"; fix or remove that table')
    return {name: {k: b[k] for k in BRANCH_KEYS if k in b} for name, b in raw.items()}


def _plain(v: object) -> object:
    """``v`` in the types TOML holds; anything else (None, a path, ...) becomes its text, so an
    odd remote option given through the SDK is kept rather than failing the write."""
    if isinstance(v, bool | int | float | str):
        return v
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_plain(x) for x in v]
    return str(v)


def toml_text(tables: dict[str, object], comment: str) -> str:
    """``tables`` as TOML under a ``# comment`` line. tomli-w is imported here, not at the
    top: every ``ds`` command imports this module, few write a config."""
    import tomli_w

    return f"# {comment}\n" + tomli_w.dumps({name: _plain(t) for name, t in tables.items()})


def save_config(path: Path, config: StoreConfig) -> None:
    from .fsutil import atomic_write

    atomic_write(path, config.to_toml().encode())


# -- settings by name (``ds config KEY [VALUE]``) ----------------------------------------
# key -> what it means (and why it is fixed, for those that are)
_FIXED_AT_INIT = "fixed when the store was made (changing it would store the same data again)"
STORE_KEYS: dict[str, str] = {
    "store.format": "format version of the store; fixed",
    "store.hash": f"content hash; {_FIXED_AT_INIT}",
    "store.zstd_level": "zstd level for new chunks (1-22)",
    "store.pack_target": "target size of new pack files in bytes (1 MiB to 4 GiB)",
    "chunking.avg_size": f"average chunk size; {_FIXED_AT_INIT}",
    "chunking.min_size": f"minimum chunk size; {_FIXED_AT_INIT}",
    "chunking.max_size": f"maximum chunk size; {_FIXED_AT_INIT}",
    "remote.default": "remote used when none is named (a configured name or a URL)",
    "worktree.sparse": "the checked-out part of a sparse clone; set by `ds clone --include`",
    "branch.NAME.remote": "remote of branch NAME's upstream; set by `ds clone` and `ds push -u`",
    "branch.NAME.merge": "branch on that remote (refs/heads/BRANCH) that `ds pull` and `ds push` use",
}
_SETTABLE = ("store.zstd_level", "store.pack_target", "remote.default")


def check_store_key(key: str) -> None:
    if key not in STORE_KEYS and _branch_key(key) is None:
        raise DsError(f"unknown store setting {key!r}; known: {', '.join(STORE_KEYS)}")


def store_items(config: StoreConfig) -> dict[str, object]:
    """Every store setting that has a value, by name (remotes as ``remotes.NAME.url``)."""
    c = config.chunking
    out: dict[str, object] = {
        "store.format": config.format, "store.hash": config.hash,
        "store.zstd_level": config.zstd_level, "store.pack_target": config.pack_target,
        "chunking.avg_size": c.avg_size, "chunking.min_size": c.min_size, "chunking.max_size": c.max_size,
    }
    if config.remote:
        out["remote.default"] = config.remote
    if config.sparse:
        out["worktree.sparse"] = list(config.sparse)
    for name, r in sorted(config.remotes.items()):
        out[f"remotes.{name}.url"] = r["url"]
    for name, b in sorted(config.branches.items()):
        for k in BRANCH_KEYS:
            if k in b:
                out[f"branch.{name}.{k}"] = b[k]
    return out


def _branch_key(key: str) -> tuple[str, str] | None:
    """(branch, "remote" or "merge") for ``branch.NAME.remote`` / ``branch.NAME.merge``."""
    head, _dot, leaf = key.rpartition(".")
    if not head.startswith("branch.") or leaf not in BRANCH_KEYS or len(head) <= len("branch."):
        return None
    return head[len("branch."):], leaf


def store_get(config: StoreConfig, key: str) -> object | None:
    if (key.startswith("remotes.") and key.endswith(".url")) or _branch_key(key):
        return store_items(config).get(key)
    check_store_key(key)
    return store_items(config).get(key)


def store_set(config: StoreConfig, key: str, raw: str | None) -> StoreConfig:
    """``config`` with ``key`` set from its command-line text (``None``: unset it)."""
    if key.startswith("remotes."):
        raise DsError(f"{key} is managed by `ds remote` (add, remove)")
    if (branch_key := _branch_key(key)) is not None:
        return _set_branch(config, *branch_key, raw)
    check_store_key(key)
    if key not in _SETTABLE:
        raise DsError(f"{key} cannot be changed: {STORE_KEYS[key]}")
    if key == "remote.default":
        if raw is not None and raw not in config.remotes and "://" not in raw and not raw.startswith("/"):
            raise DsError(f"no remote named {raw!r}; `ds remote add {raw} URL` first, or give a URL")
        return replace(config, remote=raw or None)
    if raw is None:
        raise DsError(f"{key} always has a value; set another one instead of unsetting it")
    low, high = (1, 22) if key == "store.zstd_level" else (1 << 20, 4 << 30)
    try:
        value = int(raw)
    except ValueError:
        raise DsError(f"{key} takes a whole number, not {raw!r}") from None
    if not low <= value <= high:
        raise DsError(f"{key} must be between {low} and {high} (got {value})")
    field_name = key.partition(".")[2]
    return replace(config, **{field_name: value})


def _set_branch(config: StoreConfig, branch: str, leaf: str, raw: str | None) -> StoreConfig:
    """``config`` with one half of a branch's upstream set (or unset), checked as git would
    need it: the remote is a configured one, the merge ref a branch of it."""
    entry = dict(config.branches.get(branch, {}))
    if raw is None:
        entry.pop(leaf, None)
    elif leaf == "remote":
        if raw not in config.remotes:
            raise DsError(f"no remote named {raw!r}; `ds remote add {raw} URL` first")
        entry[leaf] = raw
    else:
        ref = raw if raw.startswith("refs/heads/") else f"refs/heads/{raw}"
        name = ref[len("refs/heads/"):]
        if (not name or name.startswith(("-", "/")) or name.endswith(("/", ".", ".lock")) or ".." in name
                or "//" in name or any(c in name for c in " ~^:?*[\\") or not name.isprintable()):
            raise DsError(f"{raw!r} is not a valid branch name for branch.{branch}.merge")
        entry[leaf] = ref
    branches = {k: v for k, v in config.branches.items() if k != branch}
    if entry:
        branches[branch] = entry
    return replace(config, branches=branches)

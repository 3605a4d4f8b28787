"""A store: the ``.dsstore`` folder beside a working folder, and its versions.

Layout (see docs/format.md)::

    .dsstore/config        TOML: format version, hash, chunking, zstd level
    .dsstore/packs/xx/     immutable pack files, named by content hash
    .dsstore/index/        immutable chunk-index fragments
    .dsstore/meta/         git object database: manifests, trees, commits, refs
    .dsstore/STAGE         staged tree + the commit it was staged on (replaced atomically)
    .dsstore/cache/stat    stat cache (local, disposable)
    .dsstore/lock          advisory lock held by every writer

Writers take the lock (``flock``: released by the kernel if the process dies, so it is
never stale). Order of a commit: chunks durable and indexed, then trees and the commit
object, then the ref: a crash leaves at worst unreferenced objects for ``ds gc``.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from .config import StoreConfig, load_config, save_config
from .errors import DsError, FormatError, NothingToCommit, StoreNotFound
from .hashing import get_algo
from .paths import STORE_DIR, STORE_ENV, STORE_INIT_PREFIX, pid_space, process_gone

if TYPE_CHECKING:  # imported where used: opening a store must not cost pygit2 (~50 ms) or the packs
    from .chunking import ChunkParams
    from .chunkstore import ChunkStore
    from .meta import CommitInfo, MetaStore
    from .statcache import StatCache


_UPSTREAM = re.compile(r"([^@{}~^:\s]*)@\{(?:u|upstream)\}(.*)", re.IGNORECASE)  # git's @{u}
_NAME_EMAIL = re.compile(r"([^<>\n\0]*?)\s*<([^<>\n\0]+)>")  # git's author form
_GIT_PART = re.compile(r"(?:^|/)\.git(?:/|$)", re.IGNORECASE)


def split_range(rev: str) -> tuple[str, str, bool] | None:
    """git's ``A..B`` / ``A...B`` (an empty side is HEAD): (A, B, three dots), or None for a
    single version (``..`` cannot be in a ref name)."""
    i = rev.find("..")
    if i < 0:
        return None
    three = rev[i:i + 3] == "..."
    return rev[:i] or "HEAD", rev[i + (3 if three else 2):] or "HEAD", three


def outside_git(path: str) -> bool:
    """A store path not inside a ``.git`` folder (git's, never the working folder's data)."""
    return ".git" not in path.casefold() or _GIT_PART.search(path) is None
INIT_OWNER = "init-owner"  # in a store being made (.dsstore.init-PID-RANDOM): whose PID that is
INIT_PREFIX = STORE_INIT_PREFIX  # a store being made, renamed into place whole
CLONING = "CLONING"  # in a store a clone is still filling: the URL it copies


def drop_dead_inits(folder: Path) -> None:
    """Remove what store creations killed part-way left in ``folder`` (their process is
    gone, or had this process's id): else ``ds add .`` would version it."""
    import shutil

    for child in folder.glob(f"{INIT_PREFIX}*"):
        pid = child.name[len(INIT_PREFIX):].split("-", 1)[0]  # PID-RANDOM (older: PID)
        if not (pid.isascii() and pid.isdigit() and len(pid) <= 9 and child.is_dir()):
            continue
        try:  # the pid means something only in the PID namespace that made it (a shared volume)
            if (child / INIT_OWNER).read_text() != str(pid_space()):
                continue
        except FileNotFoundError:
            pass  # killed before it said: as old as its mkdir, so its pid is all there is
        except OSError:
            continue
        if int(pid) == os.getpid() or process_gone(int(pid)):
            shutil.rmtree(child, ignore_errors=True)


def _damaged_stage(why: str) -> FormatError:
    return FormatError(f"the stage (.dsstore/STAGE) cannot be read ({why}): what was staged cannot be "
                       "used, the working folder is untouched; `ds restore --staged .` at the top of the "
                       "working folder clears the stage, then `ds add` again")


def _exists(path: Path) -> DsError:
    if path.is_dir() and (path / "config").exists():
        return DsError(f"{path} already exists: this folder is already a store")
    if _config_lost(path):
        return FormatError(config_lost(path))
    return DsError(f"{path} exists but is not a store (on a case-insensitive disk this may be "
                   "Finder's .DS_Store); remove it, or init the store in another folder")


def _config_lost(path: Path) -> bool:
    """``path`` holds a store's versions (its metadata database) but no config file."""
    return not (path / "config").is_file() and (path / "meta" / "HEAD").exists()


def config_lost(path: Path) -> str:
    """The answer for a store whose config file is gone: never a store further up instead
    (a commit would land there), never `ds init` over it. The config is rebuilt from the
    hash its packs were written with; its other settings have defaults, remotes are added
    again."""
    from .packs import written_with

    algos = (written_with(pack) for pack in sorted((path / "packs").glob("*/*.pack")))
    found = next((a.name for a in algos if a is not None), "")
    how = (f"`ds init --hash {found}` in an empty folder makes one to copy there (its packs were "
           f"written with {found})" if found else "`ds init` in an empty folder makes one to copy there "
           "(with the same --hash as the store was made with)")
    return (f"{path} holds a store whose config file is missing, so nothing here uses it (nor a store "
            f"further up): restore {path / 'config'} from a backup, or {how}; then add its remotes again "
            "(`ds remote add`, `ds branch -u`), and if it was a sparse clone (`ds clone --include`), "
            "write its globs back as sparse = [...] under [worktree] in the config before any commit: "
            "without them the files it left out look removed")


def find_store(start: str | os.PathLike[str] = ".") -> Path:
    """The nearest ``.dsstore`` at or above ``start``; one that lost its config stops the
    search with an error (the store above it is not the one the user works in)."""
    here = Path(start).resolve()
    for folder in (here, *here.parents):
        candidate = folder / STORE_DIR
        if (candidate / "config").is_file():
            return candidate
        if _config_lost(candidate):
            raise StoreNotFound(config_lost(candidate))
    raise StoreNotFound(f"no {STORE_DIR} in {here} or any parent folder; run `ds init` first")


INTERNAL_REFS = "refs/objstore/"  # the store's own bookkeeping (dataset attachments), not versions


def locate_store(start: str | os.PathLike[str] = ".") -> Path:
    """The store a command uses: ``DSSTORE_DIR`` when set (as git's ``GIT_DIR``; its
    working folder is its parent), else the nearest ``.dsstore`` at or above ``start``."""
    env = os.environ.get(STORE_ENV)
    if not env:
        return find_store(start)
    path = Path(env).expanduser().absolute()
    if path.name != STORE_DIR:
        raise StoreNotFound(f"DSSTORE_DIR is {env}, but a command's store folder must be named "
                            f"{STORE_DIR} (its parent is the working folder); move it to .../{STORE_DIR} "
                            "or unset DSSTORE_DIR")
    if _config_lost(path):
        raise StoreNotFound(config_lost(path))
    if not (path / "config").is_file():
        raise StoreNotFound(f"DSSTORE_DIR is {env}, which holds no store; run `ds init` to create it "
                            "there, or unset DSSTORE_DIR to use the store of the current folder")
    return path


class Store:
    """A store folder: its config, its metadata database (``meta``) and its chunks (``chunks``).

    ``meta`` and ``chunks`` are opened on first use: a command that reads only refs and
    versions never imports the chunk store, and one that reads neither never imports pygit2.
    """

    def __init__(self, path: Path):
        self.path = path
        self.worktree = path.parent
        self.config: StoreConfig = load_config(path / "config")
        self.algo = get_algo(self.config.hash)
        self._meta: MetaStore | None = None
        self._chunks: ChunkStore | None = None
        self._lock_fd: int | None = None
        self._lock_depth = 0
        self.fetcher = None  # callable(list of chunk ids): brings missing chunks from a remote

    @property
    def meta(self) -> MetaStore:
        """The git object database (folders, commits, refs)."""
        if self._meta is None:
            from .meta import MetaStore

            self._meta = MetaStore(self.path / "meta", self.algo.size)
        return self._meta

    def reopen_meta(self) -> None:
        """Read the metadata database afresh: libgit2 keeps the packs it opened, even one
        replaced under the same name (``fsck --repair``), until their handles are released."""
        if self._meta is not None:
            self._meta.close()
        self._meta = None

    @property
    def chunks(self) -> ChunkStore:
        """The chunks: packs and their index."""
        if self._chunks is None:
            from .chunkstore import ChunkStore

            self._chunks = ChunkStore(self.path, self.algo, self.config.pack_target)
        return self._chunks

    # -- opening -----------------------------------------------------------------------
    @classmethod
    def init(cls, folder: str | os.PathLike[str], hash: str = "xxh3-128",
             chunking: ChunkParams | None = None, cloning: str | None = None) -> Store:
        """Create ``folder/.dsstore`` for a working folder (``cloning``: see ``create``)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        return cls.create(folder / STORE_DIR, hash, chunking, cloning)

    @classmethod
    def create(cls, path: str | os.PathLike[str], hash: str = "xxh3-128",
               chunking: ChunkParams | None = None, cloning: str | None = None) -> Store:
        """Create a store folder at exactly ``path`` (it must not exist yet). ``cloning``:
        the URL a clone is copying, kept in ``CLONING`` until the clone is done (a killed
        clone is finished by cloning again)."""
        path = Path(path)
        from .chunking import ChunkParams
        from .git_layout import init_bare

        config = StoreConfig(hash=get_algo(hash).name, chunking=chunking or ChunkParams())
        if path.exists() or path.is_symlink():
            raise _exists(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        drop_dead_inits(path.parent)
        tmp = path.parent / f"{INIT_PREFIX}{os.getpid()}-{os.urandom(4).hex()}"  # unique on a shared disk
        try:
            tmp.mkdir()
            (tmp / INIT_OWNER).write_text(str(pid_space()))  # whose pid the folder's name holds
            for sub in ("packs", "index", "cache"):
                (tmp / sub).mkdir()
            init_bare(tmp / "meta")
            save_config(tmp / "config", config)
            if cloning is not None:
                (tmp / CLONING).write_text(cloning, encoding="utf-8")
            os.replace(tmp, path)  # the store appears whole or not at all
            (path / INIT_OWNER).unlink()
        except BaseException as e:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
            if isinstance(e, OSError) and path.exists():  # made meanwhile by another init
                raise _exists(path) from None
            raise
        return cls(path)

    @classmethod
    def open(cls, start: str | os.PathLike[str] = ".") -> Store:
        return cls(find_store(start))

    def close(self) -> None:
        if self._chunks is not None:
            self._chunks.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def locked(self, wait: bool = True) -> Iterator[bool]:
        """Hold the store's writer lock (re-entrant within this object); yields True.
        ``wait=False``: only if no other process holds it (and this user may take it), else
        yields False at once: a reader's optional write, as git's status refreshes its index
        only when it can."""
        if self._lock_depth == 0:
            import fcntl

            try:
                fd = os.open(self.path / "lock", os.O_RDWR | os.O_CREAT, 0o644)
            except OSError:
                if wait:
                    raise
                yield False  # a store this user may only read: nothing optional is written
                return
            try:
                fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                yield False
                return
            except BaseException:
                os.close(fd)
                raise
            try:
                self._drop_dead_ref_locks()
                if self._chunks is not None:  # not opened yet: it will read the index when it is
                    self._chunks.index.reload()  # see what other writers published
            except BaseException:  # released at once: held on, it would stop every other writer
                os.close(fd)
                raise
            self._lock_fd = fd
        self._lock_depth += 1
        try:
            yield True
        finally:
            self._lock_depth -= 1
            if self._lock_depth == 0 and self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None

    def _drop_dead_ref_locks(self) -> None:
        """Remove ``*.lock`` files a killed writer left in the metadata database.

        libgit2 moves a ref by writing ``<ref>.lock`` and renaming it; a process killed in
        between leaves the file, and every later update of that ref fails. Every ds writer
        moves refs only while it holds this store's lock, so while we hold it such a file
        is dead unless a process still has it open (one that broke that rule, or git run by
        hand in the database): the next command, run at once after a kill, goes on. Where
        open files cannot be read (no ``/proc``, another user's lock), a lock is dead once
        it is two seconds old.
        """
        import time

        from .fsutil import held_open

        meta = self.path / "meta"
        candidates = [meta / n for n in ("HEAD.lock", "packed-refs.lock", "config.lock")]
        for folder, _dirs, names in os.walk(meta / "refs"):
            candidates.extend(Path(folder, n) for n in names if n.endswith(".lock"))
        for lock in candidates:
            try:
                held = held_open(lock)
                if held or (held is None and os.lstat(lock).st_mtime >= time.time() - 2):
                    continue  # a live writer's: libgit2 refuses the update, naming the lock
                if lock.parent != meta and self._finish_killed_move(lock):
                    continue  # the move its reflog already records, made
                lock.unlink()
            except FileNotFoundError:
                pass
            except OSError as e:  # a folder of that name, no permission: only a person can tell
                raise DsError(f"{lock} is a lock left by a writer that is gone, and it cannot be "
                              f"removed ({e.strerror}); remove it by hand, then run the command "
                              "again") from None

    def _finish_killed_move(self, lock: Path) -> bool:
        """``MetaStore.finish_killed_move``; False (the lock is removed, as before) when the
        metadata database cannot even be opened: the command then says why itself."""
        try:
            return self.meta.finish_killed_move(lock)
        except (DsError, OSError):
            return False

    def default_remote(self, sdk: bool = False) -> str | None:
        """The default remote (a configured name or a URL), the one rule for every caller:
        for the SDK (``sdk``: ``Dataset``, ``ds://``, ``ds dataset``) ``DSSTORE_REMOTE`` first,
        as a script's environment names where its datasets go; then the store config's
        ``[remote] default``; then the user's ``remote.default`` setting. Commands (push, fetch,
        chunks read on demand) leave ``sdk`` off: ``DSSTORE_REMOTE`` is the SDK's setting
        (README) and does not redirect them."""
        if sdk and (env := os.environ.get("DSSTORE_REMOTE")):
            return env
        from . import userconfig

        return self.config.remote or userconfig.default_remote()

    def set_config(self, config: StoreConfig) -> None:
        with self.locked():
            save_config(self.path / "config", config)
            self.config = config

    def ensure_chunks(self, chunk_ids) -> None:
        """Make sure these chunks are local, fetching them through ``fetcher`` if one is set.

        The remote layer installs ``fetcher`` (it sits above this one): a checkout of a
        version that is only on a remote then reads just the chunks it needs.
        """
        missing = [c for c in dict.fromkeys(chunk_ids) if not self.chunks.has(c)]
        if missing and self.fetcher is not None:
            self.fetcher(missing)

    def in_scope(self):
        """Predicate on store paths: inside the checked-out part (all, unless sparse), and
        never inside a ``.git`` folder. Those are git's and never versioned from the folder
        (the scan passes them over); a version that holds some (stored before that rule)
        keeps them, and no checkout writes or removes them, nor does status list them."""
        if not self.config.sparse:
            return outside_git
        import pathspec

        spec = pathspec.GitIgnoreSpec.from_lines(self.config.sparse)
        return lambda path: spec.match_file(path) and outside_git(path)

    def stat_cache(self) -> StatCache:
        from .statcache import StatCache

        return StatCache(self.path / "cache" / "stat")

    # -- versions ----------------------------------------------------------------------
    def head(self) -> str | None:
        return self.meta.head_commit()

    def head_branch(self) -> str | None:
        """The branch HEAD is on; None when HEAD is detached."""
        return self.meta.head_branch()

    def tags(self) -> dict[str, str]:
        """Tag name -> the version it names."""
        return self.meta.tags()

    def head_tree(self) -> str:
        head = self.head()
        return self.meta.tree_of(head) if head else self.meta.empty_tree

    def resolve(self, rev: str) -> str:
        """The version ``rev`` names: what ``MetaStore.resolve`` takes, and git's ``@{u}`` /
        ``NAME@{upstream}`` (the remote branch a branch follows, as last fetched)."""
        if (m := _UPSTREAM.fullmatch(rev.strip())) is not None:
            rev = self._upstream_ref(m[1]) + m[2]
        return self.meta.resolve(rev)

    def _upstream_ref(self, branch: str) -> str:
        from .branches import upstream

        name = self.head_branch() if branch in ("", "HEAD", "@") else branch
        if name is None:
            raise DsError("HEAD is detached, and @{u} names a branch's upstream; `ds switch BRANCH` first")
        up = upstream(self, name)
        if up is None:
            raise DsError(f"branch {name!r} has no upstream; `ds push -u REMOTE {name}` sets one")
        return f"refs/remotes/{up.remote}/{up.branch}"

    def merge_base(self, a: str, b: str) -> str:
        """The best common ancestor of versions ``a`` and ``b`` (git's ``A...B`` starts there)."""
        base = self.meta.merge_base(self.resolve(a), self.resolve(b))
        if base is None:
            raise DsError(f"{a} and {b} share no history, so {a}...{b} names nothing; compare them "
                          f"with `ds diff {a} {b}`")
        return base

    def tree(self, rev: str) -> str:
        return self.meta.tree_of(self.resolve(rev))

    def info(self, rev: str) -> CommitInfo:
        return self.meta.commit_info(self.resolve(rev))

    def log(self, rev: str = "HEAD", limit: int | None = None,
            paths: list[str] | None = None, all_refs: bool = False) -> list[CommitInfo]:
        """Versions reachable from ``rev`` (``all_refs``: from every ref and HEAD, as
        ``git log --all``, so datasets and remote branches too), newest first; with ``paths``
        (store paths, "" for the root) only those that changed one of them: the path's entry
        or subtree differs from the first parent's, or the version is a root that holds it.

        A path costs a lookup per version (folders on its way, read through the metadata
        cache); equal subtree ids make a changed folder as cheap to spot as a file."""
        if limit is not None and limit < 0:  # git: a negative count is no limit, 0 shows nothing
            limit = None
        if limit == 0:
            return []
        hide: list[str] = []
        only: set[str] | None = None  # A...B: the versions one side has and the other lacks
        if all_refs:
            versions = [commit_id for name, commit_id in self.meta.refs().items()
                        if not name.startswith(INTERNAL_REFS)]
            starts = sorted({*versions, *([self.head()] if self.head() else [])})
        elif rev == "HEAD" and self.head() is None:
            starts = []
        elif (span := split_range(rev)) is not None:  # git's A..B (B's, not A's) and A...B (either's)
            a, b = self.resolve(span[0]), self.resolve(span[1])
            starts, hide = ([a, b], []) if span[2] else ([b], [a])
            if span[2]:  # every common ancestor left out, however many merge bases (criss-cross)
                only = {*self.meta.ancestors(a, hide=[b]), *self.meta.ancestors(b, hide=[a])}
        else:
            starts = [self.resolve(rev)]
        if not starts:
            return []
        out = []
        for commit_id in self.meta.ancestors(*starts, hide=hide):
            if only is not None and commit_id not in only:
                continue
            info = self.meta.commit_info(commit_id)
            if paths is not None and not self._touches(info, paths):
                continue
            out.append(info)
            if limit is not None and len(out) >= limit:
                break
        return out

    def _touches(self, info: CommitInfo, paths: list[str]) -> bool:
        """True if version ``info`` changed one of ``paths`` against its first parent."""
        tree = info.tree
        parent = self.meta.tree_of(info.parents[0]) if info.parents else None
        for path in paths:
            here = self.meta.lookup(tree, path)
            before = self.meta.lookup(parent, path) if parent is not None else None
            if here != before:
                return True
        return False

    # -- the stage ---------------------------------------------------------------------
    def staged_tree(self) -> str:
        """The tree the next commit will record (HEAD's tree when nothing is staged)."""
        try:
            text = (self.path / "STAGE").read_bytes().decode("ascii").split()
        except FileNotFoundError:
            return self.head_tree()
        except (OSError, UnicodeDecodeError) as e:
            raise _damaged_stage(str(e)) from None
        if len(text) not in (4, 8) or any(text[i] != "tree" or text[i + 2] != "base"
                                          for i in range(0, len(text), 4)):
            raise _damaged_stage("not a stage record")
        head = self.head() or "-"
        staged = next((text[i + 1] for i in range(0, len(text), 4) if text[i + 3] == head), None)
        if staged is None:
            return self.head_tree()  # staged on another commit: stale
        from .reflog import is_hex40

        if not (is_hex40(staged) and self.meta.has_tree(staged)):
            raise _damaged_stage(f"it names folder {staged[:40]!r}, which the store does not hold")
        return staged

    def set_stage(self, tree: str, base: str | None = None,
                  also: tuple[str, str | None] | None = None) -> None:
        """Record ``tree`` as staged on ``base`` (default HEAD). ``also`` (tree, base): a second
        record kept beside it, for a checkout about to move HEAD: killed before or after the
        move, the stage read is the one staged on where HEAD is."""
        base = base or self.head()
        if tree == self.head_tree() and also is None:
            self.clear_stage()
            return
        from .fsutil import atomic_write

        self.meta.make_durable()
        records = [(tree, base), *([also] if also is not None else [])]
        atomic_write(self.path / "STAGE",
                     "".join(f"tree {t}\nbase {b or '-'}\n" for t, b in records).encode())

    def refused_links(self) -> frozenset[str]:
        """Paths of links the last checkouts did not create (their target leads out of the
        folder): their absence from the working folder is no change (``links-refused``)."""
        try:
            return frozenset((self.path / "links-refused").read_text("utf-8").splitlines())
        except FileNotFoundError:
            return frozenset()

    def set_refused_links(self, paths: set[str]) -> None:
        from .fsutil import atomic_write

        if paths:
            atomic_write(self.path / "links-refused", "".join(f"{p}\n" for p in sorted(paths)).encode())
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path / "links-refused")

    def clear_stage(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path / "STAGE")

    @classmethod
    def check_commit(cls, message: str, author: str | None = None) -> tuple[str, str]:
        """The author a commit of ``message`` would record; raises before anything is staged
        (``ds commit -a``) if the message or the author cannot be recorded."""
        if not message.strip():
            raise DsError("a commit needs a message: pass -m MESSAGE")
        return cls.author(author)

    def commit(self, message: str, author: str | None = None, allow_empty: bool = False) -> CommitInfo:
        who = self.check_commit(message, author)
        with self.locked():
            tree = self.staged_tree()
            head = self.head()
            if not allow_empty and tree == self.head_tree():
                raise NothingToCommit("nothing staged to commit; `ds add PATH` first (or use -a)")
            self.chunks.flush()
            commit_id = self.meta.commit(tree, [head] if head else [], message, who)
            self.meta.set_head(commit_id, f"commit: {message.splitlines()[0][:60]}")
            self.clear_stage()
            self._carry_clean_mark(head, commit_id)
            return self.meta.commit_info(commit_id)

    def amend(self, message: str | None = None, allow_empty: bool = False) -> CommitInfo:
        """git's ``commit --amend``: HEAD's version is replaced by one with the staged
        content, the same parents (both of a merge), the same author (and author's time;
        the committer is who amends, now), and its message unless ``message`` is given.
        Only the ref moves: the old version stays in the reflog (``commit (amend): ...``),
        so ``NAME@{1}`` still reaches it. As git, an amend that would leave a one-parent
        version with its parent's content is refused unless ``allow_empty``."""
        with self.locked():
            head = self.check_amend(message)
            old = self.meta.commit_info(head)
            text = old.message if message is None else message
            if not text.strip():
                raise DsError(f"version {head[:12]} has no message to keep: pass -m MESSAGE")
            tree = self.staged_tree()
            if not allow_empty and len(old.parents) <= 1:
                before = self.meta.tree_of(old.parents[0]) if old.parents else self.meta.empty_tree
                if tree == before:
                    raise NothingToCommit(
                        "You asked to amend the most recent version, but doing so would make it empty "
                        "(it would hold what its parent holds); repeat with --allow-empty, or drop "
                        "the version with `ds switch -C BRANCH HEAD~1`")
            self.chunks.flush()
            commit_id = self.meta.recommit(head, tree, text, self.author())
            self.meta.set_head(commit_id, f"commit (amend): {text.splitlines()[0][:60]}")
            self.clear_stage()
            self._carry_clean_mark(head, commit_id)
            return self.meta.commit_info(commit_id)

    def _carry_clean_mark(self, old: str | None, new: str) -> None:
        """HEAD moved from ``old`` to ``new`` and the working folder was not touched (a
        commit): a stat cache marked clean at ``old`` is marked at ``new``, with the folders
        whose files differ between the two listed off the mark. Every other folder's rows
        are ``new``'s files too, so the status after a commit need not compare them all.
        Only an optimisation: if anything fails, the mark names ``old`` and the next status
        compares everything."""
        if old is None:
            return
        from .statcache import clean_key

        cache = self.stat_cache()
        sparse = self.config.sparse
        if cache.clean_head != clean_key(old, sparse) or cache.upgraded:
            return
        with contextlib.suppress(DsError, OSError):
            off = set(self.meta.folders_differing(self.meta.tree_of(old), self.meta.tree_of(new)))
            cache.move_mark(clean_key(new, sparse), off)
            cache.save()

    def check_amend(self, message: str | None) -> str:
        """The version an amend would replace, or the error it would raise: called before
        ``commit -a --amend`` stages anything, as ``check_commit`` is for a commit."""
        if message is not None and not message.strip():
            raise DsError("a commit needs a message: pass -m MESSAGE (or leave -m out to keep the old one)")
        head = self.head()
        if head is None:
            raise DsError("You have nothing to amend: this branch has no version yet; "
                          "`ds commit -m MESSAGE` makes the first")
        return head

    @staticmethod
    def author(name: str | None = None) -> tuple[str, str]:
        from . import userconfig

        who = (name or os.environ.get("DS_AUTHOR") or userconfig.user_name() or _user()).strip()
        if (m := _NAME_EMAIL.fullmatch(who)) is not None:  # git's "Name <email>"
            return (m[1] or m[2]), m[2]
        if not who or any(c in who for c in "<>\n\0"):
            raise DsError(f"author {who!r} is neither a name nor 'Name <email>'; set DS_AUTHOR or "
                          "`ds config --global user.name NAME`")
        return who, f"{who}@objstore"

    def tag(self, name: str, rev: str = "HEAD", force: bool = False) -> str:
        from .meta import valid_ref_name

        if (not name or name.startswith("-") or name in ("HEAD", "@") or len(name) > 200
                or not valid_ref_name(f"refs/tags/{name}")):
            raise DsError(f"{name!r} is not a valid tag name")
        if self.meta.has_ref(f"refs/heads/{name}"):
            raise DsError(f"{name!r} is a branch name; a tag of the same name would be ambiguous")
        if self.meta.has_ref(f"refs/remotes/{name}"):
            from .branches import shadows

            raise DsError(shadows(name, "tag"))
        commit_id = self.resolve(rev)
        with self.locked():
            self.meta.set_ref(f"refs/tags/{name}", commit_id, force, message=f"tag: {rev}")
        return commit_id


def _user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "objstore"

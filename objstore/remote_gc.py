"""``ds gc --remote``: delete from a remote what none of its branches, tags and dataset
records needs any more.

Why it is safe with pushes running (see docs/architecture.md, "Remote gc"):

- **Lock.** It runs under the remote's exclusive lock; every push and upload holds a
  shared one from reading the remote's refs and index until its refs have moved. A push
  trusts the remote's index (it does not send a chunk the index lists), so this closes
  the one dangerous window: gc cannot decide a chunk is dead while a push has found it
  there and is about to name it. Leases expire when not refreshed, and a holder that
  cannot prove its lease is fresh stops before its next irreversible step.
- **Grace.** Only files older than the grace period (default one day, measured in the
  storage's clock) are deleted or rewritten: packs of a push that was interrupted (its
  next run reuses them instead of sending them again) or of a writer that does not lock
  (an older objstore) survive. A day is far longer than any one push takes.
- **Order.** New packs first, then a new metadata pack, then one new index fragment;
  only then the old fragments, then old metadata packs (each ``.idx`` before its
  ``.pack``), then dead packs. A gc killed at any point leaves every live chunk indexed
  in an existing pack, and the remote's own index never names a deleted pack. Readers
  take no lock: one holding an older cached index that names a pack gc removed gets
  "not found", syncs its index and reads the chunk where it now is.

Packs whose live share is below ``REPACK_BELOW`` are rewritten with only their live
chunks (read back and verified first); fuller ones are kept whole, dead chunks and all:
rewriting them would move mostly live bytes to free little. Planning and that order are
the local gc's own (``maintenance.plan`` and ``sweep`` over the ``RemoteRepo``);
what is the remote's alone is here: the names that keep versions alive, the lease, the
grace period, and its metadata packs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from .errors import DsError, FormatError
from .maintenance import GcReport, Marked, Plan, mark_versions, plan, sweep
from .record_sync import attachment_chunks
from .remote import Remote
from .store import Store

DEFAULT_GRACE = 24 * 3600.0
REPACK_BELOW = 0.5  # rewrite an old pack when less than this share of its bytes is live
MAX_META_PACKS = 8  # more old metadata packs than this are merged into one


@dataclass
class RemoteGcReport(GcReport):
    """The local gc's counts, and what only a remote has (leases, metadata packs, grace)."""

    grace_seconds: float = DEFAULT_GRACE
    versions: int = 0
    packs_written: int = 0
    young_packs_kept: int = 0  # packs holding unreferenced chunks, kept for the grace period
    fragments_replaced: int = 0
    meta_packs_deleted: int = 0
    meta_packs_written: int = 0
    stale_locks_removed: int = 0
    requests: int = 0


def gc_remote(store: Store, name_or_url: str | None = None, grace_seconds: float = DEFAULT_GRACE,
              dry_run: bool = False) -> RemoteGcReport:
    """Mark what the remote's refs and records need, then delete or repack the rest that is
    older than ``grace_seconds``. ``dry_run`` only reports (and takes no lock)."""
    if grace_seconds < 0:
        raise DsError("the grace period cannot be negative")
    remote = Remote(store, name_or_url)
    report = RemoteGcReport(dry_run=dry_run, grace_seconds=grace_seconds)
    with remote.fs.operation("gc"):
        remote.check_config(create=False)
        if dry_run:
            _collect(remote, report, time.time())
        else:
            with remote.lock("gc", exclusive=True) as remote.lease:
                try:
                    _collect(remote, report, remote.lease.server_now)
                finally:
                    remote.lease = None
    report.requests = remote.fs.request_count
    return report


def _collect(repo: Remote, report: RemoteGcReport, now: float) -> None:
    live_chunks, live_objects = _mark(repo, report)
    todo = plan(repo, live_chunks, report, now, report.grace_seconds, REPACK_BELOW)
    if todo.lost:
        cid = todo.lost[0]
        raise DsError(f"gc refused: remote {repo.url}: chunk {cid.hex()} of {live_chunks[cid]} "
                      "is not there; nothing was deleted. Run `ds fsck --remote`")
    report.young_packs_kept, report.stale_locks_removed = todo.young_garbage, len(todo.locks)
    meta = _MetaPacks(repo, todo, live_objects, report, now)
    if repo.lease is None:  # a dry run
        report.meta_packs_deleted = len(meta.drop)
        report.fragments_replaced = len(todo.fragments) if todo.new_index else 0
        return
    report.packs_written, report.fragments_replaced = sweep(repo, todo, meta.write, meta.delete)


def mark_remote(remote: Remote) -> tuple[Marked, list[dict], list[str]]:
    """What the remote's branches, tags and dataset records keep alive: (marked, the valid
    records, problems of names that point at what is not there or is no version). Invalid
    refs and records are skipped and kept in ``remote.bad_refs`` / ``bad_records``."""
    refs = remote.read_refs()
    remote.fetch_meta()
    records = remote.dataset_records()
    commits, trees, problems = remote.named_versions(refs, records)
    return mark_versions(remote.store.meta, commits, [str(t) for t in trees]), records, problems


def _mark(remote: Remote, report: RemoteGcReport) -> tuple[dict[bytes, str], set[str]]:
    """Chunks and git objects that some ref or dataset record on the remote needs; refuses
    (deleting nothing) when what it would keep is unknown: guessing could lose data."""
    m, records, problems = mark_remote(remote)
    if remote.bad_refs:
        rel, why = sorted(remote.bad_refs.items())[0]
        raise DsError(f"gc refused: {remote.label}: {rel} is not a valid ref ({why}); nothing "
                      "was deleted. Delete or fix that ref on the remote, then run gc again")
    if remote.bad_records:
        rel, why = sorted(remote.bad_records.items())[0]
        raise DsError(f"gc refused: {remote.label}: dataset record {rel} is invalid ({why}); "
                      "nothing was deleted. Fix or delete that record on the remote, then run gc again")
    if problems:
        raise DsError(f"gc refused: remote {remote.url}: {problems[0]}; nothing was deleted. Run "
                      "`ds fsck --remote` to list every such problem, then fix or delete them there")
    if m.problems:
        raise DsError(f"gc refused: remote {remote.url}: {m.problems[0]}; run `ds fsck --remote`")
    for record in records:  # files kept beside a version (artifacts, report images)
        try:
            chunks = attachment_chunks(remote.store, record, strict=True)
        except FormatError as e:
            raise DsError(f"gc refused: {remote.label}: dataset record {record['id']}: {e}; nothing was "
                          "deleted. Fix or delete that record on the remote, then run gc again") from None
        for cid in chunks:
            m.chunks.setdefault(cid, f"dataset {record['id']} attachment")
    objects: set[str] = set()
    remote.store.meta.reachable(m.commits | m.trees, objects)  # (what the names reach: they are among them)
    report.versions = len(m.commits)
    return m.chunks, objects


class _MetaPacks:
    """The remote's metadata packs: those holding dead objects (or all, past
    ``MAX_META_PACKS``) are replaced by one pack of their live objects, written before the
    new index fragment and deleted after it, each ``.idx`` before its ``.pack``."""

    def __init__(self, repo: Remote, todo: Plan, live: set[str], report: RemoteGcReport,
                 now: float):
        self.repo, self.todo, self.report = repo, todo, report
        stems: dict[str, dict[str, tuple[int, float]]] = {}
        for rel, info in todo.listing.items():
            name = rel.rsplit("/", 1)[-1]
            if rel.startswith("meta/") and name.startswith("pack-"):
                stem, _dot, suffix = name.rpartition(".")
                stems.setdefault(stem, {})[suffix] = info
        old = sorted(s for s, files in stems.items() if {"pack", "idx"} <= files.keys()
                     and now - files["pack"][1] >= report.grace_seconds)
        contents = {s: repo.meta_pack_objects(s) for s in old}
        dead = [s for s in old if any(o not in live for o in contents[s])]
        self.drop = old if len(old) > MAX_META_PACKS else dead
        kept = {o for s in set(contents) - set(self.drop) for o in contents[s]}
        self.carry = {o for s in self.drop for o in contents[s] if o in live and o not in kept}

    def write(self) -> None:
        """Upload one pack of the live objects (.idx last). The same objects make the same
        pack, perhaps one an interrupted gc left half sent: that one is kept, not swept."""
        names = self.repo.put_meta_pack(self.carry) if self.drop else []
        if names:
            written = names[0].rsplit(".", 1)[0]
            self.report.meta_packs_written = 1
            self.drop = [s for s in self.drop if s != written]
            self.todo.temps = [rel for rel in self.todo.temps if not rel.startswith(f"meta/{written}.")]
            self.report.temp_files_removed = len(self.todo.temps)

    def delete(self) -> None:
        if self.drop:
            self.repo.delete([f"meta/{s}.idx" for s in self.drop])
            self.repo.delete([f"meta/{s}.pack" for s in self.drop])
            self.report.meta_packs_deleted = len(self.drop)

"""Keeping a store healthy: fsck and gc."""

from __future__ import annotations

from typing import Annotated

import typer

from .app import JsonOpt, QuietOpt, app, err, open_store, out_json, progress


@app.command()
def fsck(
    read_data: Annotated[bool, typer.Option("--read-data", help="Also read and verify every chunk.")] = False,
    repair: Annotated[bool, typer.Option("--repair", help=(
        "Mend what is damaged: the index rebuilt from the packs, refs from their reflogs, metadata "
        "from remotes; with --remote, send that remote again what it lost and this store holds, and "
        "replace its damaged packs."))] = False,
    remote: Annotated[str | None, typer.Option("--remote", help="Verify this remote instead.")] = None,
    subset: Annotated[float, typer.Option("--read-data-subset",
                                          help="With --remote: share of chunks to read back (0-1).")] = 0.0,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Verify the store: refs, versions, folders, index, packs (and data); or a remote."""
    from objstore.maintenance import fsck as do_fsck

    if remote is not None:
        from objstore.remote_fsck import fsck_remote

        from .remotes import remote_target

        store = open_store()
        result = fsck_remote(store, remote_target(store, remote), subset, repair=repair)
        if as_json:
            out_json(result)
        else:
            mended = result.get("repaired")
            if mended:
                done = [f"{len(result['problems_found'])} problem(s) found",
                        f"{len(mended['files_restored'])} file(s) put back from this store's copy",
                        f"{mended['chunks_reindexed']} chunk(s) indexed from their packs",
                        f"{mended['chunks_sent']} sent again in {mended['packs_sent']} pack(s)",
                        f"{mended['metadata_objects_sent']} metadata object(s) sent again"]
                if mended["chunks_moved"]:
                    done.append(f"{mended['chunks_moved']} chunk(s) of damaged packs copied to new packs")
                if mended["moved_aside"]:
                    done.append(f"moved to damaged/ on the remote: {', '.join(mended['moved_aside'])}")
                if mended["chunks_damaged_here"]:
                    done.append(f"{mended['chunks_damaged_here']} chunk(s) damaged here too")
                if mended["damaged_packs_kept"]:
                    done.append("damaged pack(s) left in place: "
                                + ", ".join(kept["pack"] for kept in mended["damaged_packs_kept"]))
                err("repaired: " + "; ".join(done))
            for p in result["problems"]:
                err(f"problem: {p}")
            if result.get("hint"):
                err(f"hint: {result['hint']}")
            typer.echo(f"remote: {result['versions']} versions, {result['chunks_needed']} chunks needed, "
                       f"{result['chunks_indexed']} indexed, {result['packs']} packs, "
                       f"{result['chunks_read']} read back: "
                       + ("OK" if result["ok"] else f"{len(result['problems'])} problem(s)"))
        if not result["ok"]:
            raise typer.Exit(1)
        return

    store = open_store()
    restore = None
    if repair and store.config.remotes:
        from functools import partial

        from objstore.remote import restore_objects

        restore = partial(restore_objects, store, warn=lambda text: err(f"Warning: {text}"))
    with progress("verifying", quiet, count_files=False) as cb:
        report = do_fsck(store, read_data=read_data, repair=repair, progress=cb, restore=restore)
    if as_json:
        out_json(report.as_json())
    else:
        for part in report.meta_mended:
            err(f"wrote the lost {part}{'' if part == 'HEAD' else ' folder'} of the metadata database again")
        for pack in report.meta_packs_reindexed:
            err(f"rebuilt the lost index of metadata pack {pack}")
        if report.objects_restored:
            err(f"restored {len(report.objects_restored)} metadata object(s) from a remote")
        for r in report.refs_restored:
            err(f"restored ref {r} (from its reflog)")
        for r in report.refs_dropped:
            err(f"dropped {r}: it reached a version with unsafe folders or wrong file lengths")
        if report.salvage is not None:
            s = report.salvage
            err(f"index rebuilt: {s.rows} chunk(s) indexed, {s.verified} kept after reading them back, "
                f"{s.scanned} found by scanning damaged packs, {s.dropped} old row(s) no longer readable"
                + (f"; damaged files moved aside: {', '.join(s.moved_aside)}" if s.moved_aside else ""))
        for p in report.problems:  # this is fsck: a hint to run it again is no help here
            err(f"problem: {p.removesuffix('; run `ds fsck`')}")
        typer.echo(f"{report.commits} versions, {report.trees} folders, {report.chunks} chunks, "
                   f"{report.packs} packs checked" +
                   (f", {report.remote_only} chunks on a remote only (`ds get` and checkout fetch them when "
                    "they need them)" if report.remote_only else "") +
                   (f", {report.unindexed_packs} unindexed pack(s) left by an interrupted command "
                    "(`ds fsck --repair` indexes them; `ds gc` removes those no version needs)"
                    if report.unindexed_packs else "") +
                   (f", {report.bytes_verified} bytes verified" if read_data else "") +
                   (": OK" if report.ok else f": {len(report.problems)} problem(s)"))
    if not report.ok:
        raise typer.Exit(1)


def parse_duration(text: str, option: str = "--grace") -> float:
    """Seconds in "90", "90s", "15m", "12h", "1d" or "2w"."""
    from objstore.errors import DsError

    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
    text = text.strip().lower()
    number, unit = (text[:-1], text[-1]) if text[-1:] in units else (text, "s")
    try:
        value = float(number) * units[unit]
    except ValueError:
        raise DsError(f"{option} takes a duration such as 0, 90s, 15m, 12h or 1d, not {text!r}") from None
    if value < 0:
        raise DsError(f"{option} cannot be negative")
    return value


@app.command()
def gc(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only say what would be freed.")] = False,
    remote: Annotated[str | None, typer.Option(
        "--remote", help="Collect this remote instead: what none of its branches, tags and dataset "
        "records needs.")] = None,
    grace: Annotated[str, typer.Option(
        "--grace", help="With --remote: keep files younger than this (0, 90s, 15m, 12h, 1d), so an "
        "interrupted push can resume with what it sent.")] = "1d",
    prune_reflog: Annotated[str, typer.Option(
        "--prune-reflog-older-than", help="Keep versions a reflog reached more recently than this "
        "(work left on a detached HEAD or a moved branch); 'now' keeps only what refs reach.")] = "14d",
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Delete chunks no version refers to any more (locally, or on a remote)."""
    verb = "would free" if dry_run else "freed"
    if remote is not None:
        from objstore.remote_gc import gc_remote

        from .remotes import remote_target

        store = open_store()
        r = gc_remote(store, remote_target(store, remote), grace_seconds=parse_duration(grace),
                      dry_run=dry_run)
        if as_json:
            out_json(r.as_json())
        if as_json or quiet:
            return
        err(f"remote gc {verb} {r.bytes_freed} bytes: {r.packs_deleted} pack(s) deleted, "
            f"{r.packs_rewritten} rewritten, {r.chunks_dropped} chunk(s) dropped, "
            f"{r.meta_packs_deleted} metadata pack(s) replaced; {r.young_packs_kept} pack(s) younger "
            f"than {grace} kept; {r.versions} versions kept; {r.requests} requests")
        return
    from objstore.maintenance import gc as do_gc

    with progress("collecting", quiet, count_files=False) as cb:
        report = do_gc(open_store(), dry_run=dry_run, progress=cb,
                       reflog_grace=None if prune_reflog.strip().lower() == "now"
                       else parse_duration(prune_reflog, "--prune-reflog-older-than"))
    if as_json:
        out_json(report.as_json())
    if as_json or quiet:
        return
    err(f"gc {verb} {report.bytes_freed} bytes: {report.packs_deleted} pack(s) deleted, "
        f"{report.packs_rewritten} rewritten, {report.chunks_dropped} chunk(s) dropped")

"""``ds dataset ...``: the clearml-data command line on objstore's Dataset SDK.

Same subcommands, flags and messages as ``clearml-data``, parsed with argparse so
space-separated lists (``--files a b c``) work exactly as they do there: a script moves
over by replacing ``clearml-data`` with ``ds dataset``. The dataset last created or used
is remembered per store (``cache/cli-dataset.json``) and is the default ``--id``.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path
from typing import NoReturn

import typer

import objstore
from objstore.errors import DsError

from .app import app


def _state_file() -> Path:
    from objstore.dataset_store import store_path

    return store_path() / "cache" / "cli-dataset.json"


def _remember(dataset_id: str | None) -> None:
    import json

    from objstore.fsutil import atomic_write

    path = _state_file()
    if path.parent.is_dir():
        atomic_write(path, json.dumps({"id": dataset_id} if dataset_id else {}).encode(), durable=False)


def _current_id(given: str | None) -> str:
    if given:
        return given
    import json

    try:
        remembered = json.loads(_state_file().read_text()).get("id")
    except (OSError, ValueError):
        remembered = None
    if not remembered:
        raise DsError("Dataset ID not specified, add --id <dataset_id>")
    return remembered


class _OneLineParser(argparse.ArgumentParser):
    """Usage errors as every other ds command gives them: one line, the fix, exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"Error: {message} (see '{self.prog} --help')\n")


# what follows an option's name in a spec of ``_parser``: its add_argument keywords
_MARKS = {"*": ("nargs", "*"), "?": ("action", "store_true"), "#": ("type", int), "!": ("required", True)}


def _parser() -> argparse.ArgumentParser:
    p = _OneLineParser(prog="ds dataset",
                                description="Dataset management & versioning (clearml-data compatible)")
    sub = p.add_subparsers(dest="command")

    def opts(c: argparse.ArgumentParser, spec: str) -> None:
        """Add the options ``spec`` lists, without help: ``--opt`` takes a value, ``--opt*`` a list,
        ``--opt#`` a number, ``--opt=512`` a number with that default, ``--opt?`` is a switch; ``!``
        after any of these makes the option required."""
        for flag in spec.split():
            flag, _, default = flag.partition("=")
            name = flag.rstrip("".join(_MARKS))
            kw = dict(_MARKS[m] for m in flag[len(name):])
            if default:
                kw.update(type=int, default=int(default))
            c.add_argument(name, **kw)

    def cmd(name: str, help: str, spec: str = "") -> argparse.ArgumentParser:
        c = sub.add_parser(name, help=help, description=help)
        opts(c, spec)
        return c

    c = cmd("create", "Create a new dataset")
    c.add_argument("--parents", nargs="*", help="Parent dataset ids (merged in order)")
    c.add_argument("--project", help="Dataset project")
    c.add_argument("--name", required=True, help="Dataset name")
    c.add_argument("--version", help="Dataset version (default: next of the latest)")
    c.add_argument("--output-uri", help="Deprecated, use --storage")
    c.add_argument("--storage", help="Remote URL to upload to")
    c.add_argument("--tags", nargs="*", help="Dataset tags")

    a = cmd("add", "Add files or links to a dataset", "--id")
    a.add_argument("--dataset-folder", help="Location inside the dataset")
    a.add_argument("--files", nargs="*", help="Files or folders to add")
    a.add_argument("--wildcard", nargs="*", help="Only add files matching these wildcards")
    a.add_argument("--links", nargs="*", help="URLs of external files to link")
    opts(a, "--non-recursive? --verbose? --max-workers#")

    r = cmd("remove", "Remove files from a dataset", "--id")
    r.add_argument("--files", nargs="*", help="Dataset paths or wildcards to remove")
    opts(r, "--non-recursive? --verbose?")

    u = cmd("upload", "Upload the dataset's content to remote storage", "--id --storage")
    u.add_argument("--chunk-size", type=int, default=512, help="Accepted for compatibility")
    opts(u, "--verbose? --max-workers#")

    cmd("close", "Finalize the dataset (uploading first if needed)",
        "--id --storage --disable-upload? --chunk-size=512 --verbose? --max-workers#")
    cmd("sync", "Make a dataset equal a local folder",
        "--id --dataset-folder --folder! --parents* --project --name --version --output-uri --tags* "
        "--storage --skip-close? --chunk-size=512 --verbose?")
    cmd("list", "List a dataset's files", "--id --project --name --version --filter* --modified?")
    cmd("search", "Search datasets",
        "--ids* --project --name --tags* --not-only-completed? --non-recursive-project-search?")
    cmd("verify", "Verify a local copy against the dataset's hashes", "--id --folder --filesize? --verbose?")
    cmd("compare", "Compare two datasets", "--source! --target! --verbose?")
    cmd("squash", "Squash datasets into a new root dataset", "--name! --ids*! --storage --verbose?")
    cmd("get", "Get a local copy of a dataset",
        "--id --copy --link --part# --num-parts# --overwrite? --verbose? --max-workers#")
    cmd("publish", "Publish a finalized dataset", "--id!")
    cmd("delete", "Delete dataset versions", "--id --project --name --version --force? --entire-dataset?")
    cmd("rename", "Rename every version of a dataset", "--new-name! --project! --name!")
    cmd("move", "Move every version of a dataset to another project", "--new-project! --project! --name!")
    cmd("set-description", "Set a dataset's description", "--id --description!")
    return p


def _plural(n: int, word: str = "file") -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


# the fix the command line gives where the SDK's message names Python (Dataset.list_datasets())
LIST_HINT = "`ds dataset search --not-only-completed` lists the datasets"


def _print_args(args: argparse.Namespace) -> None:
    """With --verbose, each given option as NAME=VALUE, as clearml-data prints them."""
    if not getattr(args, "verbose", False):
        return
    for name, value in vars(args).items():
        if name not in ("command", "verbose") and value is not None:
            print(f"{name}={value}")


def _open(dataset_id: str):
    return objstore.Dataset.get(dataset_id=dataset_id)


def _start(args: argparse.Namespace, doing: str):
    """The dataset of --id (by default the one remembered), after clearml-data's first line
    (``doing`` and the id) and, with --verbose, the options given."""
    args.id = _current_id(args.id)
    print(f"{doing} {args.id}")
    _print_args(args)
    return _open(args.id)


def _create(args: argparse.Namespace):
    print("Creating a new dataset:")
    _print_args(args)
    if args.output_uri:
        print("Warning: '--output-uri' is deprecated, use '--storage' instead")
    if not args.project and not args.parents:
        raise DsError("a new dataset needs a project: give --project (or --parents, whose project it takes)")
    ds = objstore.Dataset.create(dataset_name=args.name, dataset_project=args.project,
                                 parent_datasets=args.parents or None, dataset_version=args.version,
                                 output_uri=args.storage or args.output_uri)
    if args.tags:
        ds.tags = ds.tags + args.tags
    _remember(ds.id)
    print(f"New dataset created id={ds.id}")
    return ds


def _close(ds, storage: str | None, disable_upload: bool) -> None:
    if (storage or ds.get_default_storage()) and ds.is_dirty():
        if disable_upload:
            raise DsError("Pending uploads, cannot finalize dataset. run `ds dataset upload`")
        print(f"Pending uploads, starting dataset upload to {storage or ds.get_default_storage()}")
        ds.upload(output_url=storage)
    ds.finalize()
    print("Dataset closed and finalized")


def run(argv: list[str]) -> int:
    """Run one ``ds dataset`` command; its exit code. A dataset that is not there is one
    line naming it and the command that lists datasets."""
    from objstore.dataset import DatasetFinalized, DatasetNotFound
    args = _parser().parse_args(argv)
    if not args.command:
        _parser().print_help()
        return 0
    try:
        code = COMMANDS[args.command](args)
    except DatasetNotFound as e:
        raise DsError(f"{e.what}; {LIST_HINT}") from None
    except DatasetFinalized as e:
        if not e.child_fix:
            raise DsError(e.what) from None
        raise DsError(f"{e.what}; create a child version: ds dataset create --parents "
                      f"{getattr(args, 'id', None) or 'ID'} --name NAME") from None
    return code if isinstance(code, int) else 0


def _add(args: argparse.Namespace) -> None:
    ds = _start(args, "Adding files/folder/links to dataset id")
    _remember(ds.id)
    n = 0
    for f in args.files or []:
        n += ds.add_files(path=f, wildcard=args.wildcard, dataset_path=args.dataset_folder,
                          recursive=not args.non_recursive, verbose=args.verbose,
                          max_workers=args.max_workers)
    for link in args.links or []:
        n += ds.add_external_files(source_url=link, wildcard=args.wildcard, dataset_path=args.dataset_folder,
                                   recursive=not args.non_recursive, verbose=args.verbose,
                                   max_workers=args.max_workers)
    print(f"{_plural(n)} added")


def _remove(args: argparse.Namespace) -> None:
    ds = _start(args, "Removing files/folder from dataset id")
    n = sum(ds.remove_files(dataset_path=f, recursive=not args.non_recursive, verbose=args.verbose)
            for f in args.files or [])
    print(f"{_plural(n)} removed")


def _upload(args: argparse.Namespace) -> None:
    ds = _start(args, "uploading local files to dataset id")
    ds.upload(verbose=args.verbose, output_url=args.storage, max_workers=args.max_workers)
    print("Dataset upload completed")


def _close_cmd(args: argparse.Namespace) -> None:
    _close(_start(args, "Finalizing dataset id"), args.storage, args.disable_upload)
    _remember(None)


def _sync(args: argparse.Namespace) -> int:
    created = bool(args.parents or (args.project and args.name))
    args.id = _create(args).id if created else _current_id(args.id)
    print(f"Syncing dataset id {args.id} to local folder {args.folder}")
    _print_args(args)
    ds = _open(args.id)
    removed, added, modified = ds.sync_folder(local_path=args.folder, dataset_path=args.dataset_folder,
                                              verbose=args.verbose)
    print(f"Sync completed: {removed} files removed, {added} added, {modified} modified")
    if not args.skip_close:
        if created and removed + added + modified == 0:
            print("Zero modifications on local copy, reverting dataset creation.")
            objstore.Dataset.delete(ds.id, force=True)
            _remember(None)
            return 0
        print("Finalizing dataset")
        _close(ds, args.storage, False)
        _remember(None)
    return 0


def _print_lines(columns: tuple[tuple[str, int], ...], rows: list[tuple[str, ...]],
                 right: int | None = None) -> None:
    """clearml-data's table: " | " between columns, dashes under the header, each column at
    least clearml-data's width and as wide as its widest cell by display width (rich's
    ``cell_len``: a CJK character takes two); column ``right`` is right-aligned. Never
    wrapped or cut, plain text: scripts parse these lines. The lines are those of a
    ``rich.table.Table`` without edges (a test compares them), padded here because drawing
    that table took 30 s and 290 MB for a 100,000-file listing."""
    if rows:
        from rich.cells import cell_len
    else:  # the header alone, without importing rich (~50 ms of a search that finds nothing)
        cell_len = len

    widths = [max([width, len(name)] + [cell_len(r[i]) for r in rows])
              for i, (name, width) in enumerate(columns)]

    def line(cells) -> str:
        return " | ".join(f"{' ' * (w - cell_len(c))}{c}" if i == right else f"{c}{' ' * (w - cell_len(c))}"
                          for i, (c, w) in enumerate(zip(cells, widths, strict=True)))

    header = " | ".join(f"{name:{w}}" for (name, _), w in zip(columns, widths, strict=True))
    print(header, "-" * len(header), sep="\n")
    sys.stdout.writelines(line(r) + "\n" for r in rows)


def _list(args: argparse.Namespace) -> None:
    """clearml-data's listing: one table of every filter's files."""
    print(f"List dataset content: {args.id or (args.project, args.name)}")
    _print_args(args)
    if args.id or not (args.project or args.name):
        ds = _open(_current_id(args.id))
    else:
        ds = objstore.Dataset.get(dataset_project=args.project, dataset_name=args.name,
                                  dataset_version=args.version)
    entries = {**ds.link_entries_dict, **ds.file_entries_dict}
    found = [ds.list_files(dataset_path=mask, dataset_id=ds.id if args.modified else None)
             for mask in args.filter or [None]]
    shown = [entries[p] for files in found for p in files]
    print("Listing dataset content")
    _print_lines((("file name", 64), ("size", 10), ("hash", 64)),
                 [(e.relative_path, f"{e.size:,}", str(e.hash)) for e in shown], right=1)
    print(f"Total {len(shown)} files, {sum(e.size for e in shown)} bytes")


def _search(args: argparse.Namespace) -> None:
    """clearml-data's table (project, name, version, tags, created), with each dataset's id
    in a last column, which clearml-data leaves out."""
    print("Search datasets")
    _print_args(args)
    found = objstore.Dataset.list_datasets(
        dataset_project=args.project or None, partial_name=args.name or None, tags=args.tags or None,
        ids=args.ids or None, only_completed=not args.not_only_completed,
        recursive_project_search=not args.non_recursive_project_search)
    rows = [(d["project"], d["name"], d["version"] or "", str(d["tags"] or [])[1:-1],
             str(d["created"]).split(".")[0], d["id"]) for d in found]
    _print_lines((("project", 16), ("name", 32), ("version", 19), ("tags", 19), ("created", 32), ("id", 32)),
                 rows)


def _verify(args: argparse.Namespace) -> int:
    """Like clearml-data, but an error found exits 1 (clearml-data exits 0 either way)."""
    ds = _start(args, "Verify dataset id")
    bad = ds.verify_dataset_hash(local_copy_path=args.folder, skip_hash=args.filesize)
    if args.verbose and bad:
        _print_mismatches(ds, bad, Path(args.folder or ds.get_local_copy()), args.filesize)
    if bad:
        print(f"Dataset verification completed, {len(bad)} errors found!")
        return 1
    print("Dataset verification completed successfully, no errors found.")
    return 0


def _print_mismatches(ds, bad: list[str], root: Path, skip_hash: bool) -> None:
    """clearml-data's --verbose lines for the files that failed verification."""
    entries = {**ds.link_entries_dict, **ds.file_entries_dict}
    for p in bad:
        e = entries[p]
        f = root / p
        current = f.stat().st_size if f.is_file() else "missing"
        if skip_hash or current != e.size:
            print(f"Error: file size mismatch {p} expected size {e.size} current {current}")
        else:
            print(f"Error: hash mismatch {p} expected size/hash {e.size}/{e.hash}")


def _compare(args: argparse.Namespace) -> None:
    print(f"Comparing target dataset id {args.target} with source dataset id {args.source}")
    _print_args(args)
    target = _open(args.target)
    _open(args.source)
    removed = target.list_removed_files(dataset_id=args.source)
    modified = target.list_modified_files(dataset_id=args.source)
    added = target.list_added_files(dataset_id=args.source)
    if args.verbose:
        print("Removed files:", *removed, sep="\n")
        print("\nModified files:", *modified, sep="\n")
        print("\nAdded files:", *added, sep="\n")
        print()
    print(f"Comparison summary: {len(removed)} files removed, {len(modified)} files modified, "
          f"{len(added)} files added")


def _squash(args: argparse.Namespace) -> None:
    print(f"Squashing datasets ids={args.ids} into target dataset named '{args.name}'")
    _print_args(args)
    ds = objstore.Dataset.squash(dataset_name=args.name, dataset_ids=args.ids, output_url=args.storage)
    print(f"Squashing completed, new dataset created id={ds.id}")


def _get(args: argparse.Namespace) -> None:
    ds = _start(args, "Download dataset id")
    if args.copy:
        folder = ds.get_mutable_local_copy(target_folder=args.copy, overwrite=args.overwrite,
                                           part=args.part, num_parts=args.num_parts)
    else:
        folder = ds.get_local_copy(part=args.part, num_parts=args.num_parts)
        if args.link:
            _link(Path(args.link), Path(folder), args.overwrite)
            folder = args.link
    print(f"Dataset local copy available for files at: {folder}")


def _publish(args: argparse.Namespace) -> None:
    print(f"Publishing dataset id {args.id}")
    ds = _open(args.id)
    if not ds.is_final():
        raise DsError("Cannot publish dataset. Please finalize it first, run `ds dataset close`")
    ds.publish()
    _remember(None)
    print("Dataset published")


@contextlib.contextmanager
def _refusals_fail():
    """What the SDK only warns about (ClearML logs it and goes on) fails here: the command
    line must not print "deleted" or "renamed" when nothing was."""
    import warnings

    from objstore.dataset import NothingDone

    with warnings.catch_warnings():
        warnings.simplefilter("error", NothingDone)
        yield


def _rename(args: argparse.Namespace) -> None:
    print(f"Renaming dataset with project={args.project}, name={args.name} to {args.new_name}")
    with _refusals_fail():
        objstore.Dataset.rename(args.new_name, dataset_project=args.project, dataset_name=args.name)
    _remember(None)
    print("Dataset(s) renamed")


def _move(args: argparse.Namespace) -> None:
    print(f"Moving dataset with project={args.project}, name={args.name} to {args.new_project}")
    with _refusals_fail():
        objstore.Dataset.move_to_project(args.new_project, dataset_project=args.project,
                                         dataset_name=args.name)
    _remember(None)
    print("Dataset(s) moved")


def _set_description(args: argparse.Namespace) -> None:
    args.id = _current_id(args.id)
    print(f"Setting description '{args.description}' to dataset {args.id}")
    _open(args.id).set_description(args.description)


def _delete(args: argparse.Namespace) -> None:
    """Delete only an explicit selection (never the remembered dataset); every refusal of the
    SDK, warnings included, is an error here, where clearml-data would print "deleted"."""
    if not (args.id or args.project or args.name):
        raise DsError("nothing selected to delete; give --id ID, or --project/--name (with --version V "
                      "for one version, or --entire-dataset --force for all)")
    if args.id:
        print(f"Deleting dataset id {args.id}")
    else:
        print(f"Deleting dataset with project={args.project}, name={args.name}, version={args.version}")
    _print_args(args)
    with _refusals_fail():
        objstore.Dataset.delete(dataset_id=args.id, dataset_project=args.project, dataset_name=args.name,
                                dataset_version=args.version, entire_dataset=args.entire_dataset,
                                force=args.force)
    _remember(None)
    print("Dataset(s) deleted")


COMMANDS = {
    "create": _create, "add": _add, "remove": _remove, "upload": _upload, "close": _close_cmd,
    "sync": _sync, "list": _list, "search": _search, "verify": _verify, "compare": _compare,
    "squash": _squash, "get": _get, "publish": _publish, "delete": _delete, "rename": _rename,
    "move": _move, "set-description": _set_description,
}


def _link(link: Path, folder: Path, overwrite: bool) -> None:
    if link.is_symlink():  # an earlier --link: replaced, as clearml-data does
        link.unlink()
    elif link.is_dir() and not any(link.iterdir()):
        link.rmdir()
    elif link.exists():
        what = "a folder with files" if link.is_dir() else "a file"
        even = " (even with --overwrite)" if overwrite else ""
        raise DsError(f"{link} is {what}; --link never deletes files{even}, so choose another path "
                      "or remove it yourself")
    link.symlink_to(folder, target_is_directory=True)


@app.command(
    "dataset",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)
def dataset(ctx: typer.Context) -> None:
    """Datasets, clearml-data style: create, add, remove, sync, upload, close, get, list, ...

    Run `ds dataset --help` for the subcommands and `ds dataset CMD --help` for flags.
    """
    code = run(list(ctx.args))
    sys.stdout.flush()
    if code:
        raise typer.Exit(code)

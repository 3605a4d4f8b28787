"""``ds dataset ...``: the clearml-data command line on objstore's Dataset SDK.

Same subcommands, flags and messages as ``clearml-data``, parsed with argparse so
space-separated lists (``--files a b c``) work exactly as they do there: a script moves
over by replacing ``clearml-data`` with ``ds dataset``. The dataset last created or used
is remembered per store (``cache/cli-dataset.json``) and is the default ``--id``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import typer

from .app import app


def _state_file() -> Path:
    from objstore.dataset_store import store_path

    return store_path() / "cache" / "cli-dataset.json"


def _remember(dataset_id: str | None) -> None:
    from objstore.fsutil import atomic_write

    path = _state_file()
    if path.parent.is_dir():
        atomic_write(path, json.dumps({"id": dataset_id} if dataset_id else {}).encode(), durable=False)


def _current_id(given: str | None) -> str:
    if given:
        return given
    try:
        remembered = json.loads(_state_file().read_text()).get("id")
    except (OSError, ValueError):
        remembered = None
    if not remembered:
        from objstore.errors import DsError

        raise DsError("Dataset ID not specified, add --id <dataset_id>")
    return remembered


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ds dataset",
                                description="Dataset management & versioning (clearml-data compatible)")
    sub = p.add_subparsers(dest="command")

    def cmd(name: str, help: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, description=help)

    c = cmd("create", "Create a new dataset")
    c.add_argument("--parents", nargs="*", help="Parent dataset ids (merged in order)")
    c.add_argument("--project", help="Dataset project")
    c.add_argument("--name", required=True, help="Dataset name")
    c.add_argument("--version", help="Dataset version (default: next of the latest)")
    c.add_argument("--output-uri", help="Deprecated, use --storage")
    c.add_argument("--storage", help="Remote URL to upload to")
    c.add_argument("--tags", nargs="*", help="Dataset tags")

    a = cmd("add", "Add files or links to a dataset")
    a.add_argument("--id")
    a.add_argument("--dataset-folder", help="Location inside the dataset")
    a.add_argument("--files", nargs="*", help="Files or folders to add")
    a.add_argument("--wildcard", nargs="*", help="Only add files matching these wildcards")
    a.add_argument("--links", nargs="*", help="URLs of external files to link")
    a.add_argument("--non-recursive", action="store_true")
    a.add_argument("--verbose", action="store_true")
    a.add_argument("--max-workers", type=int)

    r = cmd("remove", "Remove files from a dataset")
    r.add_argument("--id")
    r.add_argument("--files", nargs="*", help="Dataset paths or wildcards to remove")
    r.add_argument("--non-recursive", action="store_true")
    r.add_argument("--verbose", action="store_true")

    u = cmd("upload", "Upload the dataset's content to remote storage")
    u.add_argument("--id")
    u.add_argument("--storage")
    u.add_argument("--chunk-size", type=int, default=512, help="Accepted for compatibility")
    u.add_argument("--verbose", action="store_true")
    u.add_argument("--max-workers", type=int)

    cl = cmd("close", "Finalize the dataset (uploading first if needed)")
    cl.add_argument("--id")
    cl.add_argument("--storage")
    cl.add_argument("--disable-upload", action="store_true")
    cl.add_argument("--chunk-size", type=int, default=512)
    cl.add_argument("--verbose", action="store_true")
    cl.add_argument("--max-workers", type=int)

    s = cmd("sync", "Make a dataset equal a local folder")
    s.add_argument("--id")
    s.add_argument("--dataset-folder")
    s.add_argument("--folder", required=True)
    s.add_argument("--parents", nargs="*")
    s.add_argument("--project")
    s.add_argument("--name")
    s.add_argument("--version")
    s.add_argument("--output-uri")
    s.add_argument("--tags", nargs="*")
    s.add_argument("--storage")
    s.add_argument("--skip-close", action="store_true")
    s.add_argument("--chunk-size", type=int, default=512)
    s.add_argument("--verbose", action="store_true")

    li = cmd("list", "List a dataset's files")
    li.add_argument("--id")
    li.add_argument("--project")
    li.add_argument("--name")
    li.add_argument("--version")
    li.add_argument("--filter", nargs="*")
    li.add_argument("--modified", action="store_true")

    se = cmd("search", "Search datasets")
    se.add_argument("--ids", nargs="*")
    se.add_argument("--project")
    se.add_argument("--name")
    se.add_argument("--tags", nargs="*")
    se.add_argument("--not-only-completed", action="store_true")
    se.add_argument("--non-recursive-project-search", action="store_true")

    v = cmd("verify", "Verify a local copy against the dataset's hashes")
    v.add_argument("--id")
    v.add_argument("--folder")
    v.add_argument("--filesize", action="store_true")
    v.add_argument("--verbose", action="store_true")

    co = cmd("compare", "Compare two datasets")
    co.add_argument("--source", required=True)
    co.add_argument("--target", required=True)
    co.add_argument("--verbose", action="store_true")

    sq = cmd("squash", "Squash datasets into a new root dataset")
    sq.add_argument("--name", required=True)
    sq.add_argument("--ids", nargs="*", required=True)
    sq.add_argument("--storage")
    sq.add_argument("--verbose", action="store_true")

    g = cmd("get", "Get a local copy of a dataset")
    g.add_argument("--id")
    g.add_argument("--copy")
    g.add_argument("--link")
    g.add_argument("--part", type=int)
    g.add_argument("--num-parts", type=int)
    g.add_argument("--overwrite", action="store_true")
    g.add_argument("--verbose", action="store_true")
    g.add_argument("--max-workers", type=int)

    pb = cmd("publish", "Publish a finalized dataset")
    pb.add_argument("--id", required=True)

    d = cmd("delete", "Delete dataset versions")
    d.add_argument("--id")
    d.add_argument("--project")
    d.add_argument("--name")
    d.add_argument("--version")
    d.add_argument("--force", action="store_true")
    d.add_argument("--entire-dataset", action="store_true")

    rn = cmd("rename", "Rename every version of a dataset")
    rn.add_argument("--new-name", required=True)
    rn.add_argument("--project", required=True)
    rn.add_argument("--name", required=True)

    mv = cmd("move", "Move every version of a dataset to another project")
    mv.add_argument("--new-project", required=True)
    mv.add_argument("--project", required=True)
    mv.add_argument("--name", required=True)

    sd = cmd("set-description", "Set a dataset's description")
    sd.add_argument("--id")
    sd.add_argument("--description", required=True)
    return p


def _plural(n: int, word: str = "file") -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _create(args: argparse.Namespace):
    from objstore import Dataset

    print("Creating a new dataset:")
    if args.output_uri:
        print("Warning: '--output-uri' is deprecated, use '--storage' instead")
    ds = Dataset.create(dataset_name=args.name, dataset_project=args.project,
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
            from objstore.errors import DsError

            raise DsError("Pending uploads, cannot finalize dataset. run `ds dataset upload`")
        print(f"Pending uploads, starting dataset upload to {storage or ds.get_default_storage()}")
        ds.upload(output_url=storage)
    ds.finalize()
    print("Dataset closed and finalized")


def run(argv: list[str]) -> int:
    from objstore import Dataset

    args = _parser().parse_args(argv)
    if not args.command:
        _parser().print_help()
        return 0
    c = args.command
    if c == "create":
        _create(args)
    elif c == "add":
        ds = Dataset.get(dataset_id=_current_id(args.id))
        _remember(ds.id)
        print(f"Adding files/folder/links to dataset id {ds.id}")
        n = 0
        for f in args.files or []:
            n += ds.add_files(path=f, wildcard=args.wildcard, dataset_path=args.dataset_folder,
                              recursive=not args.non_recursive, verbose=args.verbose,
                              max_workers=args.max_workers)
        for link in args.links or []:
            n += ds.add_external_files(source_url=link, wildcard=args.wildcard,
                                       dataset_path=args.dataset_folder, recursive=not args.non_recursive)
        print(f"{_plural(n)} added")
    elif c == "remove":
        ds = Dataset.get(dataset_id=_current_id(args.id))
        print(f"Removing files/folder from dataset id {ds.id}")
        n = sum(ds.remove_files(dataset_path=f, recursive=not args.non_recursive) for f in args.files or [])
        print(f"{_plural(n)} removed")
    elif c == "upload":
        ds = Dataset.get(dataset_id=_current_id(args.id))
        print(f"uploading local files to dataset id {ds.id}")
        ds.upload(verbose=args.verbose, output_url=args.storage, max_workers=args.max_workers)
        print("Dataset upload completed")
    elif c == "close":
        ds = Dataset.get(dataset_id=_current_id(args.id))
        print(f"Finalizing dataset id {ds.id}")
        _close(ds, args.storage, args.disable_upload)
        _remember(None)
    elif c == "sync":
        created = bool(args.parents or (args.project and args.name))
        ds = _create(args) if created else Dataset.get(dataset_id=_current_id(args.id))
        print(f"Syncing dataset id {ds.id} to local folder {args.folder}")
        removed, added, modified = ds.sync_folder(local_path=args.folder, dataset_path=args.dataset_folder)
        print(f"Sync completed: {removed} files removed, {added} added, {modified} modified")
        if not args.skip_close:
            if created and removed + added + modified == 0:
                print("Zero modifications on local copy, reverting dataset creation.")
                Dataset.delete(ds.id, force=True)
                _remember(None)
                return 0
            print("Finalizing dataset")
            _close(ds, args.storage, False)
            _remember(None)
    elif c == "list":
        ds = (Dataset.get(dataset_id=args.id) if args.id else
              Dataset.get(dataset_id=None if args.project or args.name else _current_id(None),
                          dataset_project=args.project, dataset_name=args.name,
                          dataset_version=args.version))
        print(f"List dataset content: {ds.id}")
        entries = ds.file_entries_dict
        paths: list[str] = []
        for mask in args.filter or [None]:
            paths += ds.list_files(dataset_path=mask, dataset_id=ds.id if args.modified else None)
        paths = sorted(set(paths))
        print("Listing dataset content")
        header = f"{'file name':<64} | {'size':>10} | {'hash':<64}"
        print(header)
        print("-" * len(header))
        for p in paths:
            e = entries[p]
            print(f"{p:<64} | {e.size:>10,} | {e.hash:<64}")
        print(f"Total {len(paths)} files, {sum(entries[p].size for p in paths)} bytes")
    elif c == "search":
        print("Search datasets")
        found = Dataset.list_datasets(dataset_project=args.project, partial_name=args.name, tags=args.tags,
                                      ids=args.ids, only_completed=not args.not_only_completed,
                                      recursive_project_search=not args.non_recursive_project_search)
        print(f"{'project':<16} | {'name':<32} | {'version':<16} | {'tags':<19} | {'created':<19} | id")
        print("-" * 140)
        for d in found:
            tags = str(d["tags"])[1:-1]
            print(f"{d['project']:<16} | {d['name']:<32} | {d['version']:<16} | {tags:<19} | "
                  f"{d['created'][:19]:<19} | {d['id']}")
    elif c == "verify":
        ds = Dataset.get(dataset_id=_current_id(args.id))
        print(f"Verify dataset id {ds.id}")
        bad = ds.verify_dataset_hash(local_copy_path=args.folder, skip_hash=args.filesize)
        for p in bad if args.verbose else []:
            print(f"Error: {p}")
        if bad:
            print(f"Dataset verification completed, {len(bad)} errors found!")
            return 1
        print("Dataset verification completed successfully, no errors found.")
    elif c == "compare":
        target = Dataset.get(dataset_id=args.target)
        print(f"Comparing target dataset id {args.target} with source dataset id {args.source}")
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
    elif c == "squash":
        print(f"Squashing datasets ids={args.ids} into target dataset named '{args.name}'")
        ds = Dataset.squash(dataset_name=args.name, dataset_ids=args.ids, output_url=args.storage)
        print(f"Squashing completed, new dataset created id={ds.id}")
    elif c == "get":
        ds = Dataset.get(dataset_id=_current_id(args.id))
        print(f"Download dataset id {ds.id}")
        if args.copy:
            folder = ds.get_mutable_local_copy(target_folder=args.copy, overwrite=args.overwrite,
                                               part=args.part, num_parts=args.num_parts)
        else:
            folder = ds.get_local_copy(part=args.part, num_parts=args.num_parts)
            if args.link:
                _link(Path(args.link), Path(folder), args.overwrite)
                folder = args.link
        print(f"Dataset local copy available for files at: {folder}")
    elif c == "publish":
        ds = Dataset.get(dataset_id=args.id)
        print(f"Publishing dataset id {ds.id}")
        if not ds.is_final():
            from objstore.errors import DsError

            raise DsError("Cannot publish dataset. Please finalize it first, run `ds dataset close`")
        ds.publish()
        _remember(None)
        print("Dataset published")
    elif c == "delete":
        _delete(args)
    elif c == "rename":
        print(f"Renaming dataset with project={args.project}, name={args.name} to {args.new_name}")
        Dataset.rename(args.new_name, dataset_project=args.project, dataset_name=args.name)
        _remember(None)
        print("Dataset(s) renamed")
    elif c == "move":
        print(f"Moving dataset with project={args.project}, name={args.name} to {args.new_project}")
        Dataset.move_to_project(args.new_project, dataset_project=args.project, dataset_name=args.name)
        _remember(None)
        print("Dataset(s) moved")
    elif c == "set-description":
        ds = Dataset.get(dataset_id=_current_id(args.id))
        print(f"Setting description '{args.description}' to dataset {ds.id}")
        ds.set_description(args.description)
    return 0


def _delete(args: argparse.Namespace) -> None:
    """Delete only an explicit selection (never the remembered dataset); every refusal of the
    SDK, warnings included, is an error here, where clearml-data would print "deleted"."""
    import warnings

    from objstore import Dataset
    from objstore.dataset import DeleteRefused
    from objstore.errors import DsError

    if not (args.id or args.project or args.name):
        raise DsError("nothing selected to delete; give --id ID, or --project/--name (with --version V "
                      "for one version, or --entire-dataset --force for all)")
    if args.id:
        print(f"Deleting dataset id {args.id}")
    else:
        print(f"Deleting dataset with project={args.project}, name={args.name}, version={args.version}")
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeleteRefused)
        Dataset.delete(dataset_id=args.id, dataset_project=args.project, dataset_name=args.name,
                       dataset_version=args.version, entire_dataset=args.entire_dataset, force=args.force)
    _remember(None)
    print("Dataset(s) deleted")


def _link(link: Path, folder: Path, overwrite: bool) -> None:
    from objstore.errors import DsError

    if link.is_symlink() and overwrite:
        link.unlink()
    elif link.exists():
        if link.is_dir() and not any(link.iterdir()):
            link.rmdir()
        else:
            raise DsError(f"Target directory {link} is not empty. Use --overwrite.")
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

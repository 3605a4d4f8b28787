"""``ds ui``'s command line; the server itself (``ui.py``) is imported only when it runs."""

from __future__ import annotations

from typing import Annotated

import typer

from .app import app, cwd, err


@app.command()
def ui(
    port: Annotated[int, typer.Option("--port", help="Port on 127.0.0.1 (0: any free port).")] = 8484,
    open_browser: Annotated[bool, typer.Option("--open", help="Also open the page in a browser.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log every request on stderr.")] = False,
) -> None:
    """Browse versions, datasets, files, diffs and previews in a local web page (read-only)."""
    from .ui import make_server

    store = _store()
    server = make_server(store, port, quiet=not verbose)
    typer.echo(f"ds ui: {store.worktree} at {server.url}  (read-only; Ctrl-C to stop)")
    if open_browser:
        import webbrowser

        webbrowser.open(server.url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        err("Stopped.")
    finally:
        server.server_close()
        store.close()


def _store():
    """The store the SDK uses too: DSSTORE_DIR, else the nearest .dsstore, else the per-user
    store, so the page shows the datasets a script made; never created here."""
    from objstore.dataset_store import store_path
    from objstore.errors import StoreNotFound
    from objstore.store import Store

    path = store_path(cwd())
    if not (path / "config").is_file():
        raise StoreNotFound(f"no store to show: none at {path} (DSSTORE_DIR, else the nearest .dsstore, "
                            "else the per-user store); run ds init, or make a dataset first")
    return Store(path)

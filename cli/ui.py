"""``ds ui``: a read-only web page over the store, served on 127.0.0.1 only.

The HTTP layer is the standard library's threading server. Defences, since any web page
the user visits can make the browser send requests to localhost: only GET and HEAD are
answered (every other method is 405); a request whose Host header is not this server's
own loopback name is refused (DNS rebinding); responses carry a strict
Content-Security-Policy and no CORS headers, so other origins cannot read them.
The data comes from ``objstore.browse``, which never writes to the store. Raw bytes
(images, and a dataset's audio and video) are served only as types the page shows, with
``nosniff`` and a sandboxing CSP of their own.
"""

from __future__ import annotations

import json
import sys
import traceback
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

STATIC = Path(__file__).with_name("ui_static")
PAGES = {"/": ("index.html", "text/html; charset=utf-8"),
         "/app.js": ("app.js", "text/javascript; charset=utf-8"),
         "/style.css": ("style.css", "text/css; charset=utf-8")}
LOOPBACK = "127.0.0.1"
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "media-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
RAW_CSP = "default-src 'none'; sandbox"  # raw bytes from the store: nothing in them may run


class UiServer(ThreadingHTTPServer):
    """The HTTP server with the store's browser attached for the handlers."""

    daemon_threads = True

    def __init__(self, browser: Any, port: int, quiet: bool = True):
        super().__init__((LOOPBACK, port), Handler)
        self.browser = browser
        self.quiet = quiet
        self.port = self.server_address[1]
        self.allowed_hosts = {f"{LOOPBACK}:{self.port}", f"localhost:{self.port}"}

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}/"


def make_server(store: Any, port: int = 0, host: str = LOOPBACK, quiet: bool = True) -> UiServer:
    """A server for ``store`` on 127.0.0.1:``port`` (0: a free port); any other host is refused."""
    from objstore.browse import Browser
    from objstore.errors import DsError

    if host not in (LOOPBACK, "localhost"):
        raise DsError(f"ds ui serves on {LOOPBACK} only (asked for {host!r}): the page shows "
                      "every file of the store and has no login")
    if not 0 <= port <= 65535:
        raise DsError(f"--port must be 0..65535 (got {port})")
    try:
        return UiServer(Browser(store), port, quiet)
    except OSError as e:
        raise DsError(f"cannot listen on {LOOPBACK}:{port} ({e.strerror}); "
                      "pass --port 0 to take a free port") from None


class Handler(BaseHTTPRequestHandler):
    server: UiServer

    def version_string(self) -> str:
        return "ds-ui"  # not the Python version

    def __getattr__(self, name: str) -> Any:
        # the base class answers 501 to a method it has no do_<METHOD> for; this page
        # answers every method but GET and HEAD with 405
        if name.startswith("do_"):
            return self._not_allowed
        raise AttributeError(name)

    def do_GET(self) -> None:
        self._serve()

    do_HEAD = do_GET  # _send leaves the body out

    def _not_allowed(self) -> None:
        self._send_json({"error": f"method {self.command} is not allowed: this page is read-only"},
                        HTTPStatus.METHOD_NOT_ALLOWED, extra={"Allow": "GET, HEAD"})

    def log_message(self, format: str, *args: Any) -> None:
        if not self.server.quiet:
            super().log_message(format, *args)

    # -- responses ---------------------------------------------------------------------
    def _send(self, body: bytes, content_type: str, status: int = HTTPStatus.OK,
              extra: dict[str, str] | None = None) -> None:
        headers = {"Content-Type": content_type, "Content-Length": str(len(body)),
                   "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff",
                   "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer",
                   "Cross-Origin-Resource-Policy": "same-origin", "Content-Security-Policy": CSP}
        self.send_response(status)
        for k, v in (headers | (extra or {})).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_json(self, data: Any, status: int = HTTPStatus.OK,
                   extra: dict[str, str] | None = None) -> None:
        body = json.dumps(data, ensure_ascii=False).encode()
        self._send(body, "application/json; charset=utf-8", status, extra)

    # -- routing -----------------------------------------------------------------------
    def _serve(self) -> None:
        from objstore.browse import BadRequest, NotFound, TooLarge
        from objstore.errors import DsError, RevisionNotFound, UnsafePath

        if self.headers.get("Host", "").lower() not in self.server.allowed_hosts:
            self._send_json({"error": "this server answers only requests addressed to "
                                      f"{self.server.url} (Host header refused)"},
                            HTTPStatus.FORBIDDEN)
            return
        url = urlsplit(self.path)
        try:
            query = {k: v[0] for k, v in parse_qs(url.query, keep_blank_values=True,
                                                  max_num_fields=20).items()}
        except ValueError:
            self._send_json({"error": "malformed query string"}, HTTPStatus.BAD_REQUEST)
            return
        try:
            if url.path in PAGES:
                name, content_type = PAGES[url.path]
                self._send((STATIC / name).read_bytes(), content_type)
            elif url.path == "/api/raw":
                data, content_type = self.server.browser.image(_param(query, "rev"), _param(query, "path"))
                self._send(data, content_type, extra={"Content-Security-Policy": RAW_CSP})
            elif url.path == "/api/blob":
                data, content_type = self.server.browser.blob(_param(query, "id"), _param(query, "hash"))
                self._send(data, content_type, extra={"Content-Security-Policy": RAW_CSP})
            elif url.path.startswith("/api/"):
                self._send_json(self._api(url.path[5:], query))
            else:
                raise NotFound(f"no page at {url.path}")
        except (NotFound, RevisionNotFound) as e:
            self._send_json({"error": str(e)}, HTTPStatus.NOT_FOUND)
        except (BadRequest, UnsafePath) as e:
            self._send_json({"error": str(e)}, HTTPStatus.BAD_REQUEST)
        except TooLarge as e:
            self._send_json({"error": str(e)}, HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
        except DsError as e:
            self._send_json({"error": str(e)}, HTTPStatus.INTERNAL_SERVER_ERROR)
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as e:
            traceback.print_exc(file=sys.stderr)
            self._send_json({"error": f"internal error: {type(e).__name__}: {e}"},
                            HTTPStatus.INTERNAL_SERVER_ERROR)

    def _api(self, name: str, q: dict[str, str]) -> Any:
        from objstore.browse import NotFound

        b = self.server.browser
        calls = {"summary": b.summary, "graph": b.graph, "datasets": b.datasets,
                 "tree": lambda: b.folder(_param(q, "rev"), q.get("path", "")),
                 "diff": lambda: b.diff(_param(q, "a"), _param(q, "b")),
                 "preview": lambda: b.preview(_param(q, "rev"), _param(q, "path")),
                 "dataset": lambda: b.dataset(_param(q, "id")),
                 "attachment": lambda: b.attachment(_param(q, "id"), _param(q, "hash"), _row(q, "start"))}
        if name in calls:
            return calls[name]()
        raise NotFound(f"no API call {name!r}; known: summary, graph, datasets, tree, diff, preview, raw, "
                       "dataset, attachment, blob")


def _row(query: dict[str, str], name: str) -> int:
    """An optional row number (0 when absent): digits only, so no sign, exponent or huge value."""
    from objstore.browse import BadRequest

    value = query.get(name, "0")
    if not value.isascii() or not value.isdigit() or len(value) > 12:
        raise BadRequest(f"parameter {name!r} must be a row number (0 or more, digits only)")
    return int(value)


def _param(query: dict[str, str], name: str) -> str:
    from objstore.browse import BadRequest

    value = query.get(name, "")
    if not value:
        raise BadRequest(f"parameter {name!r} is required")
    return value

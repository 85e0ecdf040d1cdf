"""The browser side, served by every node: `<ctx>/static/…` and the agent console `<ctx>/agent/`.

The files ship with the package (`cobrowse/static/`) and are read once, when the app is built:
every node answers the same bytes with the same `ETag` (a hash of the content), so a browser's
cached copy stays valid whichever node the load balancer picks. `If-None-Match` gets 304; a
client that accepts gzip gets the compressed copy, made once. No CDN at run time.

- `<ctx>/static/cobrowse.js`: the customer script (one tag on the customer's site);
- `<ctx>/static/vendor/rrweb/…`: the vendored rrweb bundles, loaded by the script and the console;
- `<ctx>/agent/`: the agent console (`index.html`, `agent.js`, `agent.css`).

The demo site (`static/demo/`) is not served by nodes: `cobrowse cluster` runs it on its own port.
"""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import falcon
import falcon.asgi

STATIC_ROOT = Path(__file__).resolve().parents[2] / "static"

CONTENT_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".json": "application/json",
    ".png": "image/png",
    ".svg": "image/svg+xml",
}
# The script's URL is fixed (sites embed it): short freshness, then a cheap 304.
SCRIPT_CACHE = "public, max-age=300"
# The console's page and its assets change together: always revalidate.
CONSOLE_CACHE = "no-cache"
# The replay runs the customer's recorded page inside the console: no script but the console's
# own (the replay iframe inherits this policy, on top of rrweb's script-less sandbox); the
# recorded page's images, fonts and stylesheets may come from anywhere.
CONSOLE_CSP = (
    "default-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'self'; form-action 'none'; connect-src 'self' http: https: ws: wss:; "
    "img-src * data: blob:; media-src * data: blob:; font-src * data:; "
    "style-src * 'unsafe-inline'"
)
MIN_GZIP_BYTES = 1024


@dataclass(frozen=True, slots=True)
class StaticFile:
    """One file, in memory, with its validators and its gzip copy."""

    body: bytes
    gzipped: bytes | None
    etag: str
    content_type: str
    cache_control: str
    csp: str | None = None

    @classmethod
    def read(cls, path: Path, cache_control: str, csp: str | None = None) -> StaticFile:
        body = path.read_bytes()
        digest = hashlib.sha256(body).hexdigest()[:32]
        gzipped = None
        if len(body) >= MIN_GZIP_BYTES:
            # mtime=0: the same bytes on every node and at every start.
            packed = gzip.compress(body, compresslevel=9, mtime=0)
            gzipped = packed if len(packed) < len(body) else None
        content_type = CONTENT_TYPES.get(path.suffix, "text/plain; charset=utf-8")
        return cls(body, gzipped, f'"{digest}"', content_type, cache_control, csp)

    def tags(self) -> tuple[str, str]:
        """The ETags of both representations (the gzip one is marked: strong ETags differ)."""
        return self.etag, self.etag[:-1] + '-gz"'


def _matches(if_none_match: str, tags: Iterable[str]) -> bool:
    if if_none_match.strip() == "*":
        return True
    given = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return any(tag in given for tag in tags)


class StaticFiles:
    """A Falcon sink serving a fixed set of files under a URL prefix, from memory."""

    def __init__(self, prefix: str, files: dict[str, StaticFile], route: str) -> None:
        self.prefix = prefix  # e.g. /cobrowse/static/
        self.files = files  # by path under the prefix ("" is the index)
        self.route = route  # the access-log and metrics label (never a raw path)

    @classmethod
    def scripts(cls, context_path: str, root: Path = STATIC_ROOT) -> StaticFiles:
        """`<ctx>/static/`: the customer script and vendored rrweb."""
        files = {"cobrowse.js": StaticFile.read(root / "cobrowse.js", SCRIPT_CACHE)}
        vendor = root / "vendor" / "rrweb"
        for path in sorted(vendor.iterdir()):
            if path.is_file():
                files[f"vendor/rrweb/{path.name}"] = StaticFile.read(path, SCRIPT_CACHE)
        return cls(f"{context_path}/static/", files, f"{context_path}/static/{{file}}")

    @classmethod
    def console(cls, context_path: str, root: Path = STATIC_ROOT) -> StaticFiles:
        """`<ctx>/agent/`: the agent console."""
        agent = root / "agent"
        files = {
            path.name: StaticFile.read(
                path, CONSOLE_CACHE, CONSOLE_CSP if path.suffix == ".html" else None
            )
            for path in sorted(agent.iterdir())
            if path.is_file()
        }
        files[""] = files["index.html"]
        return cls(f"{context_path}/agent/", files, f"{context_path}/agent/{{file}}")

    async def __call__(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response | None, **kwargs: object
    ) -> None:
        if resp is None:  # a WebSocket: the node's channel endpoint takes those before Falcon
            return
        req.context.route = self.route
        if req.path == self.prefix[:-1]:
            # `<ctx>/agent` → `<ctx>/agent/`: the console's relative URLs need the slash.
            # Relative: right behind a node prefix (`/<node>/<ctx>/agent`) too.
            raise falcon.HTTPMovedPermanently(self.prefix.rstrip("/").rsplit("/", 1)[1] + "/")
        if req.method not in ("GET", "HEAD"):
            resp.set_header("Allow", "GET, HEAD")
            raise falcon.HTTPMethodNotAllowed(["GET", "HEAD"])
        found = self.files.get(req.path[len(self.prefix) :])
        if found is None:
            raise falcon.HTTPNotFound(description="No such file.")
        gzip_ok = found.gzipped is not None and "gzip" in (req.get_header("Accept-Encoding") or "")
        etag = found.tags()[1] if gzip_ok else found.etag
        resp.set_header("ETag", etag)
        resp.set_header("Cache-Control", found.cache_control)
        resp.set_header("X-Content-Type-Options", "nosniff")
        if found.gzipped is not None:
            resp.vary = ("Accept-Encoding",)
        if found.csp is not None:
            resp.set_header("Content-Security-Policy", found.csp)
            resp.set_header("Referrer-Policy", "same-origin")
        if_none_match = req.get_header("If-None-Match")
        if if_none_match is not None and _matches(if_none_match, found.tags()):
            resp.status = falcon.HTTP_304
            return
        resp.content_type = found.content_type
        if gzip_ok:
            assert found.gzipped is not None
            resp.set_header("Content-Encoding", "gzip")
            resp.data = found.gzipped
        else:
            resp.data = found.body
